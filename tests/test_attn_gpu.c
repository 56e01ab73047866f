/* test_attn_gpu.c — the attention ops of the CUDA backend against the CPU backend (the reference):
 * attention (explicit path: permute, QKᵀ, softmax, P·V), attn_stats on given probabilities,
 * attn_pack and head_sim, and attention_stats (the fused kernel, fp32 3xTF32 and bf16), each with
 * its tolerance and reason, as test_backend_gpu.c does for the other ops. Shapes cover padding,
 * empty samples, causal on and off, grouped-query attention (NKV < NH kv heads, read in place:
 * query head h on kv head h / (NH/NKV)) and sliding windows (keys j <= i - sw masked; windows of
 * 1, shorter than a key tile, and reaching back over several tiles so that the fused kernel skips
 * whole tiles). The statistics under a window count only the visible keys (stats.h), on both sides.
 * The fused kernel leaves the output rows of padding queries that see no key at 0 where the CPU's
 * softmax is uniform (backend.h): those rows are left out of its output comparison.
 *
 * Built without CUDA, or run without a device: SKIP, exit 0. Exits non-zero on any failure. */
#include "backend.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>

#ifndef ATTNSCOPE_CUDA
int main(void)
{
    printf("test_attn_gpu: SKIP (built without CUDA)\n");
    return 0;
}
#else
#include "gpu_check.h"

/* the shape of one attention case: NKV kv heads (NKV = NH: plain), sliding window sw (0: none) */
typedef struct { int B, T, NH, NKV, HS; const int *len; int causal, sw; } shape;

static void describe(char *out, size_t cap, const char *prec, const shape *s, const char *extra)
{
    char lens[48] = "", *l = lens;
    for (int b = 0; b < s->B && l < lens + sizeof lens - 8; b++) l += sprintf(l, b ? ",%d" : "%d", s->len[b]);
    snprintf(out, cap, "%s B=%d T=%d NH=%d NKV=%d HS=%d len=%s causal=%d sw=%d%s", prec, s->B, s->T, s->NH, s->NKV, s->HS,
             lens, s->causal, s->sw, extra);
}

/* attn_stats on probs (B, NH, T, T) given on the host: both backends read the same floats */
static void test_attn_stats(const char *what, const float *probs, const int *len, int B, int NH, int T, int causal,
                            int sw, int topk, int flags)
{
    const size_t heads = (size_t)B * NH, nP = heads * T * T;
    uint8_t *sep = xmalloc((size_t)B * T), *punct = xmalloc((size_t)B * T);
    for (int i = 0; i < B * T; i++) { sep[i] = rnd() < 0.2; punct[i] = rnd() < 0.2; }
    stats_params sp = {.causal = causal, .window = 2, .topk = topk, .sliding_window = sw};
    float *o1 = xmalloc(heads * STAT_N * 4), *o2 = xmalloc(heads * STAT_N * 4);
    float *k1 = xmalloc(heads * T * 4), *k2 = xmalloc(heads * T * 4);
    int32_t *i1 = xmalloc(heads * T * topk * 4), *i2 = xmalloc(heads * T * topk * 4);
    float *w1 = xmalloc(heads * T * topk * 4), *w2 = xmalloc(heads * T * topk * 4);
    cpu->attn_stats(cpu, probs, len, flags ? sep : NULL, flags ? punct : NULL, B, NH, T, &sp, o1, k1, i1, w1);
    float *d_p = to_dev(probs, nP * 4);
    gpu->attn_stats(gpu, d_p, len, flags ? sep : NULL, flags ? punct : NULL, B, NH, T, &sp, o2, k2, i2, w2);
    /* scalars: 1e-6 abs, or one float ulp (2^-23 relative) where that is coarser (distance in tokens) */
    double es = 0, worst_excess = 0;
    int worst_stat = 0;
    for (size_t i = 0; i < heads * STAT_N; i++) {
        double d = fabs((double)o1[i] - o2[i]), tol = fmax(1e-6, fabs(o1[i]) * 0x1p-23);
        if (!(d <= es)) es = d;
        if (!(d - tol <= worst_excess)) { worst_excess = d - tol; worst_stat = (int)(i % STAT_N); }
    }
    int ok_s = worst_excess <= 0;
    char full[192];
    snprintf(full, sizeof full, "%s causal=%d sw=%d k=%d%s", what, causal, sw, topk, flags ? "" : " sep/punct NULL");
    printf("%s attn_stats %-40s scalars max abs %.3g (tol 1e-6 abs or 1 ulp: double sums, order differs)%s%s\n",
           ok_s ? "ok  " : "FAIL", full, es, ok_s ? "" : " worst: ", ok_s ? "" : stats_names[worst_stat]);
    failures += !ok_s;
    report("attn_stats", "  key importance", compare(k2, k1, heads * T), 1e-6, 0, "double column sums, same order");
    size_t idx_diff = 0, w_diff = 0;
    for (size_t i = 0; i < heads * T * topk; i++) {
        idx_diff += i1[i] != i2[i];
        w_diff += memcmp(&w1[i], &w2[i], 4) != 0;
    }
    printf("%s attn_stats   top-k %zu entries: %zu index, %zu weight mismatches (tol 0: a selection of stored floats, ties to the lower index)\n",
           idx_diff || w_diff ? "FAIL" : "ok  ", heads * T * topk, idx_diff, w_diff);
    failures += idx_diff || w_diff;
    gpu->free(gpu, d_p);
    free(sep); free(punct); free(o1); free(o2); free(k1); free(k2); free(i1); free(i2); free(w1); free(w2);
}

/* A case's q | k | v rows, (B, T, C + 2·KVC): q of NH heads (scaled by qscale: peaked rows), k and v
 * of NKV; bf16: every value rounded to bf16 first (the bf16 fused kernel's inputs then are exact). */
static float *rand_qkv(const shape *s, float qscale, int bf16)
{
    const int C = s->NH * s->HS, ld = C + 2 * s->NKV * s->HS;
    float *qkv = rand_vec((size_t)s->B * s->T * ld, -1, 1);
    for (size_t r = 0; r < (size_t)s->B * s->T; r++)
        for (int c = 0; c < ld; c++) {
            const float x = qkv[r * ld + c] * (c < C ? qscale : 1.0f);
            qkv[r * ld + c] = bf16 ? bf16_round(x) : x;
        }
    return qkv;
}

/* attention on a case; fused: q, k, v as the parts of one (B, T, C + 2KVC) buffer (as the model's
 * projection makes them), else three buffers of rows of C floats (k, v in their first KVC columns).
 * The CPU probabilities then feed attn_pack, head_sim and attn_stats. */
static void test_attention(backend *g, const char *prec, const shape *s, float qscale, double tol_p, double tol_o,
                           const char *why, int fused)
{
    const int B = s->B, T = s->T, NH = s->NH, NKV = s->NKV, HS = s->HS, C = NH * HS, KVC = NKV * HS, ldf = C + 2 * KVC;
    const int *len = s->len;
    const size_t n = (size_t)B * T * C, nP = (size_t)B * NH * T * T;
    float *qkv = rand_qkv(s, qscale, 0);
    float *mask = xmalloc((size_t)B * T * 4);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) mask[b * T + t] = t < len[b];
    /* the layout under test, on the host (both backends read the same floats) */
    const int ld = fused ? ldf : C;
    float *q, *k, *v;
    if (fused) {
        q = qkv; k = qkv + C; v = qkv + C + KVC;
    } else {
        q = xcalloc(n, 4); k = xcalloc(n, 4); v = xcalloc(n, 4);
        for (size_t r = 0; r < (size_t)B * T; r++) {
            memcpy(q + r * C, qkv + r * ldf, C * 4);
            memcpy(k + r * C, qkv + r * ldf + C, KVC * 4);
            memcpy(v + r * C, qkv + r * ldf + C + KVC, KVC * 4);
        }
    }
    float *out = xmalloc(n * 4), *P = xmalloc(nP * 4);
    cpu->attention(cpu, out, P, q, k, v, ld, mask, B, T, NH, NKV, HS, s->causal, s->sw);
    float *d_m = to_dev(mask, (size_t)B * T * 4), *d_q, *d_k, *d_v, *d_qkv = NULL;
    if (fused) {
        d_qkv = to_dev(qkv, (size_t)B * T * ldf * 4);
        d_q = d_qkv; d_k = d_qkv + C; d_v = d_qkv + C + KVC;
    } else {
        d_q = to_dev(q, n * 4); d_k = to_dev(k, n * 4); d_v = to_dev(v, n * 4);
    }
    float *d_out = g->alloc(g, n * 4), *d_P = g->alloc(g, nP * 4);
    g->attention(g, d_out, d_P, d_q, d_k, d_v, ld, d_m, B, T, NH, NKV, HS, s->causal, s->sw);
    float *got_P = to_host(d_P, nP * 4), *got_o = to_host(d_out, n * 4);
    char what[160];
    describe(what, sizeof what, prec, s, fused ? " qkv" : "");
    report("attention", what, compare(got_P, P, nP), tol_p, 0, why);
    report("attention", "  output P·V", compare(got_o, out, n), tol_o, 1, why);
    if (g == gpu) {
        /* attn_pack: the layout /attention stores, f32 and half, bit for bit */
        const int Lmax = T + 3;
        float *d_Pc = to_dev(P, nP * 4);          /* the CPU's probabilities, packed by both */
        for (int f16 = 0; f16 < 2; f16++) {
            const size_t nb = (size_t)B * NH * Lmax * Lmax * (f16 ? 2 : 4);
            unsigned char *want = xmalloc(nb), *got = xmalloc(nb);
            cpu->attn_pack(cpu, want, P, len, B, NH, T, Lmax, f16);
            gpu->attn_pack(gpu, got, d_Pc, len, B, NH, T, Lmax, f16);
            size_t diff = 0;
            for (size_t e = 0; e < nb; e++) diff += want[e] != got[e];
            printf("%s attn_pack    %s Lmax=%d: %zu of %zu bytes differ (tol 0: the same selection and rounding)\n",
                   diff ? "FAIL" : "ok  ", f16 ? "f16" : "f32", Lmax, diff, nb);
            failures += diff != 0;
            free(want); free(got);
        }
        /* head_sim: the batch's heads as the similarity's heads (nh = NH), JS and Gram */
        {
            const size_t nn = (size_t)NH * NH;
            double *js_c = xcalloc(nn, sizeof(double)), *g_c = xcalloc(nn, sizeof(double));
            double *js_g = xcalloc(nn, sizeof(double)), *g_g = xcalloc(nn, sizeof(double));
            int *lens = xmalloc(B * sizeof(int));
            for (int b = 0; b < B; b++) lens[b] = len[b] > 0 ? len[b] : 1;   /* JS needs n >= 1 */
            cpu->head_sim(cpu, P, lens, B, NH, T, js_c, g_c);
            gpu->head_sim(gpu, d_Pc, lens, B, NH, T, js_g, g_g);
            double ej = 0, eg = 0;
            for (size_t e = 0; e < nn; e++) {
                double dj = fabs(js_g[e] - js_c[e]) / fmax(1.0, fabs(js_c[e])), dg = fabs(g_g[e] - g_c[e]) / fmax(1.0, fabs(g_c[e]));
                if (dj > ej) ej = dj;
                if (dg > eg) eg = dg;
            }
            int ok = ej <= 1e-5 && eg <= 1e-6;
            printf("%s head_sim     nh=%d T=%d: JS max err %.3g (tol 1e-5: logf vs log, double sums), Gram %.3g (tol 1e-6)\n",
                   ok ? "ok  " : "FAIL", NH, T, ej, eg);
            failures += !ok;
            free(js_c); free(g_c); free(js_g); free(g_g); free(lens);
        }
        gpu->free(gpu, d_Pc);
        test_attn_stats("on these probabilities", P, len, B, NH, T, s->causal, s->sw, 3, 1);
        test_attn_stats("on these probabilities", P, len, B, NH, T, s->causal, s->sw, 64, 0);
    }
    if (fused) gpu->free(gpu, d_qkv);
    else { gpu->free(gpu, d_q); gpu->free(gpu, d_k); gpu->free(gpu, d_v); free(q); free(k); free(v); }
    gpu->free(gpu, d_m); gpu->free(gpu, d_out);
    gpu->free(gpu, d_P);
    free(qkv); free(mask); free(out); free(P); free(got_P); free(got_o);
}

/* the per-stat comparison of two (heads, STAT_N) arrays: normwise per statistic */
/* tol_cols, why_cols: the statistics the fused kernel takes from the tensor cores' product of P̃
 * with the key columns (distance off the diagonal, [CLS], [SEP], punctuation) */
static void report_stats(const char *what, const float *got, const float *want, size_t heads, double tol, const char *why,
                         double tol_cols, const char *why_cols)
{
    for (int s = 0; s < STAT_N; s++) {
        float *g = xmalloc(heads * 4), *w = xmalloc(heads * 4);
        for (size_t i = 0; i < heads; i++) { g[i] = got[i * STAT_N + s]; w[i] = want[i * STAT_N + s]; }
        char name[224];
        snprintf(name, sizeof name, "%s %s", what, stats_names[s]);
        const int cols = s == STAT_DISTANCE || s == STAT_ATTN_CLS || s == STAT_ATTN_SEP || s == STAT_ATTN_PUNCT ||
                         s == STAT_SINK;   /* (the sink α_0 is the mass on key 0, as attn_cls) */
        report("fused", name, compare(g, w, heads), cols ? tol_cols : tol, 1, cols ? why_cols : why);
        free(g); free(w);
    }
}

/* the fused kernel's top-k (k per row of nrow) against the CPU's: the weights at each rank within
 * tol, and every index equal but where the two weights at that rank agree within tol (a near tie,
 * which the two sums may order either way); padding rows (−1, 0) exactly */
static void report_topk(const int32_t *gi, const float *gw, const int32_t *wi, const float *ww, size_t nrow, int k, double tol)
{
    size_t diff = 0, ties = 0;
    double werr = 0;
    for (size_t e = 0; e < nrow * k; e++) {
        const double d = fabs((double)gw[e] - ww[e]);
        if (!(d <= werr)) werr = d;
        if (gi[e] != wi[e]) {
            if (gi[e] >= 0 && wi[e] >= 0 && d <= tol) ties++;
            else diff++;
        }
    }
    const int ok = diff == 0 && werr <= tol;
    printf("%s fused          top-k (k=%d) %zu entries: %zu index mismatches, %zu near ties; weights max abs %.3g (tol %.0e)\n",
           ok ? "ok  " : "FAIL", k, nrow * k, diff, ties, werr, tol);
    failures += !ok;
}

/* zeroes the output rows (B, T, C) of padding queries that see no key under the window (i >= len - 1
 * + sw, len > 0): not defined for the fused kernel (backend.h) */
static void drop_blind_rows(float *out, const shape *s)
{
    const int C = s->NH * s->HS;
    for (int b = 0; b < s->B && s->sw > 0; b++)
        for (int i = s->len[b] - 1 + s->sw; i < s->T && s->len[b] > 0; i++)
            memset(out + ((size_t)b * s->T + i) * C, 0, (size_t)C * 4);
}

/* attention_stats (the fused kernel) against the CPU's explicit attention + stats_head.
 * bf16 backend: q, k, v are bf16 values, so that the GPU's products are exact and its scores differ
 * from the CPU's only by the fp32 summation order: the statistics must agree to fp32 rounding; the
 * output P·V rounds P to bf16 (as transformers' eager bf16 does). fp32 backend (3xTF32): any
 * float inputs, everything to fp32 rounding. */
static void test_attention_fused(backend *g, const shape *s, float qscale, int window, int dt)
{
    const int B = s->B, T = s->T, NH = s->NH, NKV = s->NKV, HS = s->HS, C = NH * HS, ld = C + 2 * NKV * HS;
    const int fp32 = g != gpu_bf16;
    const size_t n = (size_t)B * T * C, nq = (size_t)B * T * ld;
    float *qkv = rand_qkv(s, qscale, !fp32);
    uint8_t *cls = xmalloc((size_t)B * T);
    for (size_t i = 0; i < (size_t)B * T; i++) cls[i] = (uint8_t)(rnd() * 4);
    float *out = xmalloc(n * 4), *st = xmalloc((size_t)B * NH * STAT_N * 4);
    /* the per-token outputs: k cycles through 3, 8, 0, 1, 5 (both lengths of the kernel's lists;
     * 0: no top-k, the kernel a default run takes) */
    static int kcase;
    const int k = (int[]){3, 8, 0, 1, 5}[kcase++ % 5];
    const size_t nrow = (size_t)B * NH * T;
    int32_t *ti = k ? xmalloc(nrow * k * 4) : NULL;
    float *tw = k ? xmalloc(nrow * k * 4) : NULL, *ki = xmalloc(nrow * 4);
    const attn_tokens ctok = {k, ti, tw, ki, NULL};
    cpu->attention_stats(cpu, out, qkv, qkv + C, qkv + C + NKV * HS, DT_F32, ld, s->len, cls, B, T, NH, NKV, HS, s->causal,
                         s->sw, window, st, &ctok);
    const size_t es = dt == DT_BF16 ? 2 : 4;
    uint16_t *qkvb = to_bf16_bits(qkv, nq);
    char *d_qkv = dt == DT_BF16 ? to_dev(qkvb, nq * 2) : to_dev(qkv, nq * 4);
    void *d_out = g->alloc(g, n * 4);
    float *d_st = g->alloc(g, (size_t)B * NH * STAT_N * 4);
    int32_t *d_len = to_dev(s->len, B * 4);
    uint8_t *d_cls = to_dev(cls, (size_t)B * T);
    int32_t *d_ti = k ? g->alloc(g, nrow * k * 4) : NULL;
    float *d_tw = k ? g->alloc(g, nrow * k * 4) : NULL, *d_ki = g->alloc(g, nrow * 4);
    const attn_tokens gtok = {k, d_ti, d_tw, d_ki, NULL};
    g->attention_stats(g, d_out, d_qkv, d_qkv + C * es, d_qkv + (C + NKV * HS) * es, dt, ld, d_len, d_cls, B, T, NH, NKV,
                       HS, s->causal, s->sw, window, d_st, &gtok);
    int32_t *got_ti = k ? to_host(d_ti, nrow * k * 4) : NULL;
    float *got_tw = k ? to_host(d_tw, nrow * k * 4) : NULL, *got_ki = to_host(d_ki, nrow * 4);
    float *got_o, *got_s = to_host(d_st, (size_t)B * NH * STAT_N * 4);
    if (dt == DT_BF16) {
        uint16_t *h = to_host(d_out, n * 2);
        got_o = from_bf16_bits(h, n);
        free(h);
    } else {
        got_o = to_host(d_out, n * 4);
    }
    drop_blind_rows(out, s);
    drop_blind_rows(got_o, s);
    char what[160];
    char kdesc[16];
    snprintf(kdesc, sizeof kdesc, " k=%d", k);
    describe(what, sizeof what, fp32 ? "fp32 3xTF32" : dt == DT_BF16 ? "bf16 io" : "f32 io", s, kdesc);
    if (fp32)
        report_stats(what, got_s, st, (size_t)B * NH, 2e-5, "3xTF32 products, fp32 softmax", 2e-5,
                     "P̃ as hi + lo TF32 times exact columns");
    else
        report_stats(what, got_s, st, (size_t)B * NH, 2e-5, "bf16 inputs exact, fp32 scores and softmax", 4e-3,
                     "P̃ rounded to bf16 (≤ 2^-8 rel), as for P·V");
    if (fp32) report("fused", "  output P·V", compare(got_o, out, n), 1e-5, 1, "3xTF32, each key tile's P·V summed apart");
    else report("fused", "  output P·V", compare(got_o, out, n), 8e-3, 1, "P rounded to bf16 (8-bit mantissa)");
    report("fused", "  key importance", compare(got_ki, ki, nrow), 2e-6, 0,
           fp32 ? "second pass: 3xTF32 scores, each row's log2 normaliser" : "second pass: exact bf16 inputs, fp32 scores");
    if (k) report_topk(got_ti, got_tw, ti, tw, nrow, k, 2e-6);
    g->free(g, d_qkv); g->free(g, d_out); g->free(g, d_st); g->free(g, d_len); g->free(g, d_cls);
    if (k) { g->free(g, d_ti); g->free(g, d_tw); }
    g->free(g, d_ki);
    free(qkv); free(qkvb); free(cls); free(out); free(st); free(got_o); free(got_s);
    free(ti); free(tw); free(ki); free(got_ti); free(got_tw); free(got_ki);
}

static backend *bf16_exact;   /* the bf16 backend made with ATTNSCOPE_VIS_EXACT=1: the second pass */

/* elementwise |got − want| <= rel·|want| + abs (NaN fails): the kept probabilities' bound */
static void report_elem(const char *what, const float *got, const float *want, size_t n, double rel, double abs,
                        const char *why)
{
    double worst = 0;
    size_t at = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - want[i]), lim = rel * fabs(want[i]) + abs;
        if (!(d / lim <= worst)) { worst = d / lim; at = i; }
        bad += !(d <= lim);
    }
    printf("%s vision     %-40s worst |d| / (%.1e |x| + %.0e) %.3g at %zu, %zu beyond (%s)\n", bad ? "FAIL" : "ok  ", what,
           rel, abs, worst, at, bad, why);
    failures += bad > 0;
}

/* attention_stats with the vision outputs (stats.h attn_vis) against the CPU's explicit attention
 * + vstats.c: B images of npre prefix tokens and gh x gw patches (no padding), every len = T. As
 * test_attention_fused: bf16 q, k are bf16 values (the products exact), fp32 any floats (3xTF32).
 * The bf16 backend takes them from its kept fp16 probabilities (within 2^-11 relative, elementwise,
 * of the exact ones; the means too, their terms all ≥ 0); bf16_exact and fp32 by the second pass
 * over the scores. */
static void test_attention_vision(backend *g, int dt, int B, int npre, int gh, int gw, int NH, int HS, float qscale,
                                  int fusion, int roll)
{
    const int T = npre + gh * gw, np = gh * gw, patch = 16, C = NH * HS, ld = 3 * C;
    const int fp32 = g != gpu_bf16 && g != bf16_exact, kept = g == gpu_bf16;
    int *lens = xmalloc(B * sizeof(int));
    for (int b = 0; b < B; b++) lens[b] = T;
    const shape s = {B, T, NH, NH, HS, lens, 0, 0};
    const size_t n = (size_t)B * T * C, nq = (size_t)B * T * ld, bh = (size_t)B * NH, TT = (size_t)T * T;
    float *qkv = rand_qkv(&s, qscale, !fp32);
    float *out = xmalloc(n * 4), *st = xmalloc(bh * STAT_N * 4);
    float *dist = xmalloc(bh * 4), *loc = xmalloc(bh * 4), *cls = xmalloc(bh * np * 4), *map = xmalloc(B * TT * 4);
    const attn_vis cv = {npre, gh, gw, patch, fusion, dist, loc, cls, map, 0, roll};
    const attn_tokens ctok = {0, NULL, NULL, NULL, &cv};
    cpu->attention_stats(cpu, out, qkv, qkv + C, qkv + 2 * C, DT_F32, ld, lens, NULL, B, T, NH, NH, HS, 0, 0, 1, st, &ctok);
    const size_t es = dt == DT_BF16 ? 2 : 4;
    uint16_t *qkvb = to_bf16_bits(qkv, nq);
    char *d_qkv = dt == DT_BF16 ? to_dev(qkvb, nq * 2) : to_dev(qkv, nq * 4);
    void *d_out = g->alloc(g, n * 4);
    float *d_st = g->alloc(g, bh * STAT_N * 4);
    int32_t *d_len = to_dev(lens, B * 4);
    float *d_dist = g->alloc(g, bh * 4), *d_loc = g->alloc(g, bh * 4), *d_cls = g->alloc(g, bh * np * 4);
    float *d_map = g->alloc(g, B * TT * 4);
    const attn_vis gv = {npre, gh, gw, patch, fusion, d_dist, d_loc, d_cls, d_map, 0, roll};
    const attn_tokens gtok = {0, NULL, NULL, NULL, &gv};
    char what[160];
    snprintf(what, sizeof what, "%s vision B=%d T=%d (%d + %dx%d) NH=%d HS=%d fusion=%d%s",
             fp32 ? "fp32 3xTF32" : kept ? "bf16 kept fp16 p" : "bf16 second pass",
             B, T, npre, gh, gw, NH, HS, fusion, roll ? ", the map as the rollout's Â" : "");
    if (!g->vision_fused_ok(g, T, NH, HS)) {
        printf("FAIL %s: vision_fused_ok refuses it\n", what);
        failures++;
    } else {
        g->attention_stats(g, d_out, d_qkv, d_qkv + C * es, d_qkv + 2 * C * es, dt, ld, d_len, NULL, B, T, NH, NH, HS, 0,
                           0, 1, d_st, &gtok);
        float *gd = to_host(d_dist, bh * 4), *gl = to_host(d_loc, bh * 4), *gc = to_host(d_cls, bh * np * 4);
        float *gm = to_host(d_map, B * TT * 4), *gs = to_host(d_st, bh * STAT_N * 4);
        const char *why = fp32 ? "3xTF32 scores, p = 2^(s - M) from the first pass's normaliser"
                               : "bf16 inputs exact, fp32 scores, p = 2^(s - M) from the first pass's normaliser";
        printf("     %s\n", what);
        if (kept) {   /* 2^-11 = 4.9e-4 relative on top of the second pass's tolerances */
            const char *kwhy = "p̃ kept in fp16 (2^-11 rel; 2^-25 abs below 2^-14), as the second pass otherwise";
            report_elem("  distance in pixels", gd, dist, bh, 4.9e-4 + 2e-5, 0, kwhy);
            report_elem("  2-D locality", gl, loc, bh, 4.9e-4, 2e-6, kwhy);
            report_elem("  [CLS] row", gc, cls, bh * np, 4.9e-4, 2e-6, kwhy);
            report_elem("  heads' fused map", gm, map, B * TT, 4.9e-4, 2e-6, kwhy);
        } else {
            report("vision", "  distance in pixels", compare(gd, dist, bh), 2e-5, 1, why);
            report("vision", "  2-D locality", compare(gl, loc, bh), 2e-6, 0, why);
            report("vision", "  [CLS] row", compare(gc, cls, bh * np), 2e-6, 0, why);
            report("vision", "  heads' fused map", compare(gm, map, B * TT), 2e-6, 0, fusion ? why : "float sum over the heads");
        }
        report("vision", "  entropy (first pass)", compare(gs, st, bh * STAT_N), 4e-3, 1, "as the fused kernel's scalars");
        free(gd); free(gl); free(gc); free(gm); free(gs);
    }
    g->free(g, d_qkv); g->free(g, d_out); g->free(g, d_st); g->free(g, d_len);
    g->free(g, d_dist); g->free(g, d_loc); g->free(g, d_cls); g->free(g, d_map);
    free(qkv); free(qkvb); free(out); free(st); free(dist); free(loc); free(cls); free(map); free(lens);
}

/* rows of few distinct values (0, 1/8, 1/4, 3/8): many exact ties for top-k */
static void test_attn_stats_ties(void)
{
    const int B = 3, NH = 2, T = 70, len[3] = {70, 33, 0};
    float *P = xmalloc((size_t)B * NH * T * T * 4);
    for (size_t i = 0; i < (size_t)B * NH * T * T; i++) P[i] = (float)((int)(rnd() * 4) / 8.0);
    for (int causal = 0; causal < 2; causal++)
        for (int k = 1; k <= 5; k += 4) test_attn_stats("tied values B=3 T=70 len=70,33,0", P, len, B, NH, T, causal, 0, k, 1);
    test_attn_stats("tied values B=3 T=70 len=70,33,0", P, len, B, NH, T, 1, 9, 5, 1);
    free(P);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);        /* lines reach the log even if something crashes */
    gpu = backend_init("cuda", 0);
    if (!gpu) {
        printf("test_attn_gpu: SKIP (%s)\n", err_get());
        return 0;
    }
    backend *tf32 = backend_init("cuda", 1), *bf16 = backend_init("cuda", 2);
    setenv("ATTNSCOPE_VIS_EXACT", "1", 1);   /* (read when a backend is made) */
    bf16_exact = backend_init("cuda", 2);
    unsetenv("ATTNSCOPE_VIS_EXACT");
    cpu = backend_init("cpu", 0);
    gpu_bf16 = bf16;

    /* TEST_ATTN_VISION_ONLY=1: only the vision pass's cases (compute-sanitizer runs in little time) */
    const int vision_only = getenv("TEST_ATTN_VISION_ONLY") && *getenv("TEST_ATTN_VISION_ONLY") == '1';
    if (vision_only) goto vision;
    const char *whyp = "fp32 scores; softmax ops as the CPU";
    const int l3[] = {130, 77, 1}, l1[] = {1, 0}, l37[] = {37, 20, 0}, l520[] = {520, 300}, l200[] = {200, 64};
    for (int causal = 0; causal < 2; causal++) {
        const shape a = {3, 130, 2, 2, 64, l3, causal, 0}, b = {2, 1, 3, 3, 32, l1, causal, 0},
                    c = {3, 37, 4, 4, 32, l37, causal, 0};
        test_attention(gpu, "fp32", &a, 1, 1e-5, 1e-5, whyp, 0);
        test_attention(gpu, "fp32", &a, 1, 1e-5, 1e-5, whyp, 1);
        test_attention(gpu, "fp32", &b, 1, 1e-5, 1e-5, whyp, 0);
        test_attention(gpu, "fp32", &c, 8, 1e-5, 1e-5, whyp, 1);  /* peaked rows */
    }
    /* grouped-query attention (G = 2, 4, 8) and sliding windows (1; 5 < a key tile; 70 over tiles),
     * on the explicit path in fp32 (3xTF32 QKᵀ) and fp32-sgemm-like TF32 */
    {
        const shape g2 = {3, 130, 4, 2, 64, l3, 1, 0}, g4 = {3, 37, 4, 1, 32, l37, 1, 5}, g8 = {2, 200, 8, 1, 64, l200, 1, 70};
        const shape w1 = {3, 130, 2, 2, 64, l3, 1, 1}, wb = {3, 37, 4, 2, 32, l37, 0, 4};
        test_attention(gpu, "fp32", &g2, 1, 1e-5, 1e-5, whyp, 0);
        test_attention(gpu, "fp32", &g2, 1, 1e-5, 1e-5, whyp, 1);
        test_attention(gpu, "fp32", &g4, 8, 1e-5, 1e-5, whyp, 1);
        test_attention(gpu, "fp32", &g8, 1, 1e-5, 1e-5, whyp, 1);
        test_attention(gpu, "fp32", &w1, 1, 1e-5, 1e-5, whyp, 1);
        test_attention(gpu, "fp32", &wb, 1, 1e-5, 1e-5, whyp, 0);  /* the contract's bidirectional window */
        test_attention(tf32, "tf32", &g8, 1, 5e-3, 5e-3, "TF32 QKᵀ and P·V", 1);
    }
    const shape t = {3, 130, 2, 2, 64, l3, 0, 0};
    test_attention(tf32, "tf32", &t, 1, 5e-3, 5e-3, "TF32 QKᵀ and P·V", 0);
    if (bf16->fused_ok(bf16, 64)) {
        for (int causal = 0; causal < 2; causal++) {
            const shape a = {3, 130, 2, 2, 64, l3, causal, 0}, b = {3, 37, 4, 4, 32, l37, causal, 0},
                        c = {2, 200, 2, 2, 128, l200, causal, 0}, d = {2, 520, 2, 2, 64, l520, causal, 0};
            for (int dt = DT_F32; dt <= DT_BF16; dt++) {
                test_attention_fused(bf16, &a, 1, 3, dt);
                test_attention_fused(bf16, &b, 8, 1, dt);   /* peaked rows, empty sample */
                test_attention_fused(bf16, &c, 2, 5, dt);
                test_attention_fused(bf16, &d, 2, 5, dt);   /* far tiles */
            }
        }
        const shape e = {2, 1, 3, 3, 32, l1, 0, 0};
        test_attention_fused(bf16, &e, 1, 3, DT_BF16);
        for (int causal = 0; causal < 2; causal++) {            /* fp32: the 3xTF32 kernel */
            const shape a = {3, 130, 2, 2, 64, l3, causal, 0}, b = {3, 37, 4, 4, 32, l37, causal, 0},
                        d = {2, 520, 2, 2, 64, l520, causal, 0};
            test_attention_fused(gpu, &a, 1, 3, DT_F32);
            test_attention_fused(gpu, &b, 8, 1, DT_F32);
            test_attention_fused(gpu, &d, 2, 5, DT_F32);
            /* heads of 128: Q's lo parts in shared memory; GQA and a window at 128 too */
            const int l300[] = {300, 1};
            const shape h1 = {2, 200, 2, 2, 128, l200, causal, 0}, h2 = {2, 300, 3, 3, 128, l300, causal, 0},
                        h3 = {2, 520, 4, 2, 128, l520, causal, causal ? 70 : 0};
            test_attention_fused(gpu, &h1, 2, 5, DT_F32);
            test_attention_fused(gpu, &h2, 1, 3, DT_F32);
            test_attention_fused(gpu, &h3, 2, 5, DT_F32);
            test_attention_fused(bf16, &h3, 2, 5, DT_BF16);
        }
        test_attention_fused(gpu, &e, 1, 3, DT_F32);
        /* GQA and sliding windows in the fused kernel: kv head h/G read in place; windows of 1, 5
         * (inside one key tile), 70 and 200 (tiles left of the window skipped: 520 keys, 64 a tile) */
        static const struct { int NH, NKV, HS, causal, sw; } fw[] = {
            {4, 2, 64, 1, 0}, {8, 1, 64, 1, 0}, {4, 1, 32, 1, 5}, {2, 2, 64, 1, 1}, {4, 2, 64, 1, 70},
            {8, 2, 64, 1, 200}, {4, 2, 32, 0, 70}};
        for (size_t i = 0; i < sizeof fw / sizeof *fw; i++) {
            const shape s = {2, 520, fw[i].NH, fw[i].NKV, fw[i].HS, l520, fw[i].causal, fw[i].sw};
            const shape s3 = {3, 130, fw[i].NH, fw[i].NKV, fw[i].HS, l3, fw[i].causal, fw[i].sw};
            test_attention_fused(gpu, &s, 2, 5, DT_F32);
            test_attention_fused(gpu, &s3, 1, 3, DT_F32);
            for (int dt = DT_F32; dt <= DT_BF16; dt++) test_attention_fused(bf16, &s, 2, 5, dt);
        }
        const shape e4 = {3, 37, 4, 2, 32, l37, 1, 4};     /* an empty sample under a window: uniform rows */
        test_attention_fused(gpu, &e4, 8, 1, DT_F32);
        test_attention_fused(bf16, &e4, 8, 1, DT_BF16);
    }
vision:
    if (bf16->fused_ok(bf16, 64)) {
        /* the finish counters across launches: a launch of fewer (b, h) pairs (beyond the first 64,
         * the counters' first 256 bytes) writes its partial sums where the next, larger launch's
         * counters lie — a vision run's small last batch of a window, then a full one (these
         * statistics came out wrong before the counters were zeroed on every growth) */
        const int l8[] = {70, 70, 70, 70, 70, 70, 70, 70}, l1b[] = {70};
        const shape big = {8, 70, 12, 12, 32, l8, 0, 0}, small = {1, 70, 12, 12, 32, l1b, 0, 0};
        test_attention_fused(bf16, &big, 1, 3, DT_BF16);
        test_attention_fused(bf16, &small, 1, 3, DT_BF16);
        test_attention_fused(bf16, &big, 1, 3, DT_BF16);
        test_attention_fused(gpu, &big, 1, 3, DT_F32);
        test_attention_fused(gpu, &small, 1, 3, DT_F32);
        test_attention_fused(gpu, &big, 1, 3, DT_F32);
        /* the vision pass: ViT-B/16's 1 + 14 x 14 (T not a multiple of the tiles), DeiT's two prefix
         * tokens on a non-square grid, a grid of one patch, ViT at 384 and 512 pixels (1 + 24 x 24,
         * 1 + 32 x 32), heads of 32, 64 and 128; each fusion */
        for (int f = 0; f < 3; f++) {
            test_attention_vision(bf16, DT_BF16, 3, 1, 14, 14, 4, 64, 1, f, 0);
            test_attention_vision(bf16_exact, DT_BF16, 3, 1, 14, 14, 4, 64, 1, f, 0);
            test_attention_vision(gpu, DT_F32, 3, 1, 14, 14, 4, 64, 1, f, 0);
        }
        test_attention_vision(bf16, DT_BF16, 2, 2, 5, 7, 3, 32, 8, 0, 0);     /* peaked rows */
        test_attention_vision(bf16_exact, DT_BF16, 2, 2, 5, 7, 3, 32, 8, 0, 0);
        test_attention_vision(bf16, DT_BF16, 2, 2, 5, 7, 3, 32, 16, 2, 0);    /* very peaked: fp16 subnormals */
        test_attention_vision(gpu, DT_F32, 2, 2, 5, 7, 3, 32, 8, 1, 0);
        test_attention_vision(bf16, DT_BF16, 2, 1, 1, 1, 2, 64, 1, 0, 0);
        test_attention_vision(gpu, DT_F32, 2, 1, 9, 9, 2, 128, 2, 0, 0);
        test_attention_vision(bf16, DT_BF16, 1, 1, 24, 24, 12, 64, 1, 0, 0);
        test_attention_vision(bf16_exact, DT_BF16, 1, 1, 24, 24, 12, 64, 1, 0, 0);
        test_attention_vision(bf16, DT_BF16, 2, 1, 14, 14, 12, 64, 4, 0, 0);   /* ViT-B's heads, peaked */
        test_attention_vision(gpu, DT_F32, 1, 1, 24, 24, 2, 64, 1, 2, 0);
        test_attention_vision(bf16, DT_BF16, 1, 1, 32, 32, 3, 64, 1, 1, 0);
        /* a large grid on the fused path (ViT-B/16 at 768 x 768 pixels, 1 + 48 x 48): the displacement
         * table (< 48 bytes a token) still fits beside the key tiles, on an A100 too */
        test_attention_vision(bf16, DT_BF16, 1, 1, 48, 48, 2, 64, 1, 0, 0);
        test_attention_vision(bf16_exact, DT_BF16, 1, 1, 48, 48, 2, 64, 1, 0, 0);
        test_attention_vision(bf16, DT_BF16, 2, 1, 14, 14, 4, 128, 1, 1, 0);
        /* the map as the rollout's Â (vis->roll): kept (one key group a lane at T = 197; read back
         * at T = 577), the second pass and fp32 (then normalised in place) */
        for (int f = 0; f < 2; f++) {
            test_attention_vision(bf16, DT_BF16, 3, 1, 14, 14, 4, 64, 1, f, 1);
            test_attention_vision(bf16_exact, DT_BF16, 3, 1, 14, 14, 4, 64, 1, f, 1);
            test_attention_vision(gpu, DT_F32, 3, 1, 14, 14, 4, 64, 1, f, 1);
        }
        test_attention_vision(bf16, DT_BF16, 1, 1, 24, 24, 12, 64, 1, 0, 1);
        test_attention_vision(bf16, DT_BF16, 2, 2, 5, 7, 3, 32, 8, 2, 1);
        test_attention_vision(bf16, DT_F32, 2, 1, 14, 14, 4, 64, 1, 0, 0);    /* bf16 backend, fp32 q k v */
    } else {
        printf("FAIL fused attention: not available on this GPU with --precision bf16\n");
        failures++;
    }
    if (!vision_only) test_attn_stats_ties();

    backend_free(cpu);
    backend_free(tf32);
    backend_free(bf16);
    backend_free(bf16_exact);
    backend_free(gpu);
    printf("test_attn_gpu: %d failure(s)\n", failures);
    return failures ? 1 : 0;
}
#endif
