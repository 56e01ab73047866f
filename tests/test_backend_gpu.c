/* test_backend_gpu.c — every op of the CUDA backend against the CPU backend (the reference), in
 * the manner of ggml's test-backend-ops: random inputs of awkward sizes (C = 37, T = 1, T = 130,
 * padded batches, fully masked samples, causal on and off), one tolerance per op with its reason,
 * and the max abs / rel error printed for each comparison. Then the full forward of the tiny HF
 * fixtures on both backends (attention probabilities on valid rows, last hidden state); the HF
 * references themselves are checked by test_model with ATTNSCOPE_BACKEND=cuda.
 *
 * "rel" is normwise: max |gpu − cpu| / max |cpu| (element-wise relative error is meaningless
 * where a GEMM output cancels to ~0). Built without CUDA, or run without a device: SKIP, exit 0.
 * Exits non-zero on any failure. */
#include "backend.h"
#include "config.h"
#include "model.h"
#include "util.h"
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#ifndef ATTNSCOPE_CUDA
int main(void)
{
    printf("test_backend_gpu: SKIP (built without CUDA)\n");
    return 0;
}
#else
#include "kernels.h"      /* the bf16 variants of the decoder ops, which the backend table does not carry yet */

static int failures;
static backend *cpu, *gpu, *gpu_bf16;

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double rnd(void)                     /* uniform [0, 1), xorshift64* */
{
    rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
    return (double)((rng_state * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}
static float *rand_vec(size_t n, float lo, float hi)
{
    float *v = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) v[i] = (float)(lo + (hi - lo) * rnd());
    return v;
}

/* device copy of a host array, and host copy of a device array */
static void *to_dev(const void *h, size_t bytes)
{
    void *d = gpu->alloc(gpu, bytes);
    if (!d) { printf("FAIL: out of GPU memory (%zu bytes)\n", bytes); exit(1); }
    gpu->upload(gpu, d, h, bytes);
    return d;
}
static void *to_host(const void *d, size_t bytes)
{
    void *h = xmalloc(bytes ? bytes : 1);
    gpu->download(gpu, h, d, bytes);
    return h;
}

typedef struct { double abs, rel; } err;
static err compare(const float *got, const float *want, size_t n)
{
    double e = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= e)) e = d;                /* NaN counts as failure */
        if (fabs(want[i]) > m) m = fabs(want[i]);
    }
    return (err){e, e / (m > 0 ? m : 1)};
}
/* tol applies to e.rel when rel, else to e.abs */
static void report(const char *op, const char *what, err e, double tol, int rel, const char *why)
{
    int ok = (rel ? e.rel : e.abs) <= tol;
    printf("%s %-10s %-40s max abs %.3g, rel %.3g (tol %.0e %s: %s)\n", ok ? "ok  " : "FAIL", op, what, e.abs, e.rel,
           tol, rel ? "rel" : "abs", why);
    failures += !ok;
}

static void test_embed(int T, int C, int with_types, int with_pos)
{
    const int V = 50, P = T + 3, TT = 2;
    int32_t *ids = xmalloc(T * sizeof(int32_t)), *pos = xmalloc(T * sizeof(int32_t)), *typ = xmalloc(T * sizeof(int32_t));
    for (int t = 0; t < T; t++) { ids[t] = (int32_t)(rnd() * V); pos[t] = (int32_t)(rnd() * P); typ[t] = (int32_t)(rnd() * TT); }
    float *wte = rand_vec((size_t)V * C, -1, 1), *wpe = rand_vec((size_t)P * C, -1, 1), *wtt = rand_vec((size_t)TT * C, -1, 1);
    float *want = xmalloc((size_t)T * C * sizeof(float));
    cpu->embed(cpu, want, ids, pos, typ, wte, with_pos ? wpe : NULL, with_types ? wtt : NULL, T, C);
    int32_t *d_ids = to_dev(ids, T * 4), *d_pos = to_dev(pos, T * 4), *d_typ = to_dev(typ, T * 4);
    float *d_wte = to_dev(wte, (size_t)V * C * 4), *d_wpe = to_dev(wpe, (size_t)P * C * 4), *d_wtt = to_dev(wtt, (size_t)TT * C * 4);
    float *d_out = gpu->alloc(gpu, (size_t)T * C * 4);
    gpu->embed(gpu, d_out, d_ids, d_pos, d_typ, d_wte, with_pos ? d_wpe : NULL, with_types ? d_wtt : NULL, T, C);
    float *got = to_host(d_out, (size_t)T * C * 4);
    char what[96];
    snprintf(what, sizeof what, "T=%d C=%d %s%s", T, C, with_types ? "with token types" : "no token types",
             with_pos ? "" : ", no position table (rotary)");
    report("embed", what, compare(got, want, (size_t)T * C), 0, 0, "same float adds in the same order");
    void *dv[] = {d_ids, d_pos, d_typ, d_wte, d_wpe, d_wtt, d_out};
    for (size_t i = 0; i < sizeof dv / sizeof *dv; i++) gpu->free(gpu, dv[i]);
    free(ids); free(pos); free(typ); free(wte); free(wpe); free(wtt); free(want); free(got);
}

static void test_linear(backend *g, const char *prec, int M, int K, int N, int bias, double tol, const char *why)
{
    float *in = rand_vec((size_t)M * K, -1, 1), *W = rand_vec((size_t)N * K, -1, 1), *b = rand_vec(N, -1, 1);
    float *want = xmalloc((size_t)M * N * sizeof(float));
    cpu->linear(cpu, want, DT_F32, in, DT_F32, W, bias ? b : NULL, M, K, N);
    float *d_in = to_dev(in, (size_t)M * K * 4), *d_W = to_dev(W, (size_t)N * K * 4), *d_b = to_dev(b, N * 4);
    float *d_out = g->alloc(g, (size_t)M * N * 4);
    g->linear(g, d_out, DT_F32, d_in, DT_F32, d_W, bias ? d_b : NULL, M, K, N);
    float *got = to_host(d_out, (size_t)M * N * 4);
    char what[96];
    snprintf(what, sizeof what, "%s M=%d K=%d N=%d %s", prec, M, K, N, bias ? "bias" : "no bias");
    report("linear", what, compare(got, want, (size_t)M * N), tol, 1, why);
    /* freed through g, the backend that used them: its derived copy of W (3xTF32 split or bf16)
     * goes too — freed through another backend, a later buffer at the same address would find
     * the stale copy (seen under compute-sanitizer, whose allocator reuses addresses) */
    g->free(g, d_in); g->free(g, d_W); g->free(g, d_b); g->free(g, d_out);
    free(in); free(W); free(b); free(want); free(got);
}

static float bf16_round(float x)            /* to the nearest bf16 (even on ties), as a float */
{
    uint32_t u;
    memcpy(&u, &x, 4);
    u = (u + 0x7FFFu + ((u >> 16) & 1)) & 0xFFFF0000u;
    memcpy(&x, &u, 4);
    return x;
}

/* bf16 bits (upper half of the float) of values already rounded to bf16, and back */
static uint16_t *to_bf16_bits(const float *x, size_t n)
{
    uint16_t *o = xmalloc(n * 2);
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        float r = bf16_round(x[i]);
        memcpy(&u, &r, 4);
        o[i] = (uint16_t)(u >> 16);
    }
    return o;
}
static float *from_bf16_bits(const uint16_t *h, size_t n)
{
    float *o = xmalloc(n * 4);
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)h[i] << 16;
        memcpy(&o[i], &u, 4);
    }
    return o;
}

/* with_res: the residual add fused in (out = LayerNorm(in + res), in place as the model calls it),
 * 1: a float32 residual, 2: a bfloat16 one (the bf16 path's attention and MLP outputs) */
static void test_layernorm(int M, int C, int in_place, int with_res)
{
    float *x = rand_vec((size_t)M * C, 2, 8), *w = rand_vec(C, 0.5f, 1.5f), *b = rand_vec(C, -1, 1);  /* mean ≠ 0 */
    float *r = with_res ? rand_vec((size_t)M * C, -3, 3) : NULL;
    if (with_res == 2)
        for (size_t i = 0; i < (size_t)M * C; i++) r[i] = bf16_round(r[i]);
    float *want = xmalloc((size_t)M * C * sizeof(float));
    cpu->layernorm(cpu, want, NULL, x, r, DT_F32, w, b, M, C, 1e-12f);
    float *d_x = to_dev(x, (size_t)M * C * 4), *d_w = to_dev(w, C * 4), *d_b = to_dev(b, C * 4);
    uint16_t *rb = with_res == 2 ? to_bf16_bits(r, (size_t)M * C) : NULL;
    void *d_r = !r ? NULL : rb ? to_dev(rb, (size_t)M * C * 2) : to_dev(r, (size_t)M * C * 4);
    float *d_out = in_place ? d_x : gpu->alloc(gpu, (size_t)M * C * 4);
    void *d_ob = gpu->alloc(gpu, (size_t)M * C * 2);
    gpu->layernorm(gpu, d_out, d_ob, d_x, d_r, rb ? DT_BF16 : DT_F32, d_w, d_b, M, C, 1e-12f);
    float *got = to_host(d_out, (size_t)M * C * 4);
    uint16_t *ob = to_host(d_ob, (size_t)M * C * 2), *want_b = to_bf16_bits(got, (size_t)M * C);
    char what[96];
    snprintf(what, sizeof what, "M=%d C=%d%s%s", M, C, in_place ? " in place" : "",
             with_res == 2 ? " + bf16 residual" : r ? " + residual" : "");
    report("layernorm", what, compare(got, want, (size_t)M * C), 1e-5, 1, "float add, double statistics on both sides");
    const int bdiff = memcmp(ob, want_b, (size_t)M * C * 2) != 0;
    printf("%s layernorm    bf16 copy of the output: %s (tol 0: the same floats, rounded to nearest even)\n",
           bdiff ? "FAIL" : "ok  ", bdiff ? "differs" : "bit-identical");
    failures += bdiff;
    gpu->free(gpu, d_ob);
    free(ob); free(want_b);
    if (!in_place) gpu->free(gpu, d_out);
    if (d_r) gpu->free(gpu, d_r);
    gpu->free(gpu, d_x); gpu->free(gpu, d_w); gpu->free(gpu, d_b);
    free(x); free(r); free(rb); free(w); free(b); free(want); free(got);
}

static void test_activation(int act, const char *name, size_t n)
{
    float *x = rand_vec(n, -6, 6), *want = xmalloc(n * sizeof(float));
    memcpy(want, x, n * sizeof(float));
    cpu->activation(cpu, want, DT_F32, n, act);
    float *d_x = to_dev(x, n * 4);
    gpu->activation(gpu, d_x, DT_F32, n, act);
    float *got = to_host(d_x, n * 4);
    char what[64];
    snprintf(what, sizeof what, "%s n=%zu", name, n);
    report("activation", what, compare(got, want, n), 1e-6, 1, "float erff/tanhf (<= 2 ulp) vs the CPU in double");
    gpu->free(gpu, d_x);
    free(x); free(want); free(got);
}

/* attn_stats on probs (B, NH, T, T) given on the host: both backends read the same floats */
static void test_attn_stats(const char *what, const float *probs, const int *len, int B, int NH, int T, int causal,
                            int topk, int flags)
{
    const size_t heads = (size_t)B * NH, nP = heads * T * T;
    uint8_t *sep = xmalloc((size_t)B * T), *punct = xmalloc((size_t)B * T);
    for (int i = 0; i < B * T; i++) { sep[i] = rnd() < 0.2; punct[i] = rnd() < 0.2; }
    stats_params sp = {.causal = causal, .window = 2, .topk = topk};
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
    char full[160];
    snprintf(full, sizeof full, "%s causal=%d k=%d%s", what, causal, topk, flags ? "" : " sep/punct NULL");
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

/* attention on (B, T, NH·HS) inputs with per-sample lengths; the CPU probabilities then feed attn_stats */
static void test_attention(backend *g, const char *prec, int B, int T, int NH, int HS, const int *len, int causal,
                           float qscale, double tol_p, double tol_o, const char *why, int fused)
{
    const int C = NH * HS;
    const size_t n = (size_t)B * T * C, nP = (size_t)B * NH * T * T;
    float *q = rand_vec(n, -qscale, qscale), *k = rand_vec(n, -1, 1), *v = rand_vec(n, -1, 1);
    float *mask = xmalloc((size_t)B * T * 4);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) mask[b * T + t] = t < len[b];
    float *out = xmalloc(n * 4), *P = xmalloc(nP * 4);
    cpu->attention(cpu, out, P, q, k, v, C, mask, B, T, NH, HS, causal);
    float *d_q, *d_k, *d_v, *d_m = to_dev(mask, (size_t)B * T * 4), *d_qkv = NULL;
    if (fused) {      /* q | k | v as the thirds of one (B, T, 3C) buffer, as the fused QKV projection makes */
        float *qkv = xmalloc(3 * n * 4);
        for (size_t r = 0; r < (size_t)B * T; r++) {
            memcpy(qkv + r * 3 * C, q + r * C, C * 4);
            memcpy(qkv + r * 3 * C + C, k + r * C, C * 4);
            memcpy(qkv + r * 3 * C + 2 * C, v + r * C, C * 4);
        }
        d_qkv = to_dev(qkv, 3 * n * 4);
        free(qkv);
        d_q = d_qkv; d_k = d_qkv + C; d_v = d_qkv + 2 * C;
    } else {
        d_q = to_dev(q, n * 4); d_k = to_dev(k, n * 4); d_v = to_dev(v, n * 4);
    }
    float *d_out = g->alloc(g, n * 4), *d_P = g->alloc(g, nP * 4);
    g->attention(g, d_out, d_P, d_q, d_k, d_v, fused ? 3 * C : C, d_m, B, T, NH, HS, causal);
    float *got_P = to_host(d_P, nP * 4), *got_o = to_host(d_out, n * 4);
    char what[128], lens[48] = "", *l = lens;
    for (int b = 0; b < B && l < lens + sizeof lens - 8; b++) l += sprintf(l, b ? ",%d" : "%d", len[b]);
    snprintf(what, sizeof what, "%s B=%d T=%d NH=%d HS=%d len=%s causal=%d%s", prec, B, T, NH, HS, lens, causal,
             fused ? " qkv" : "");
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
        test_attn_stats("on these probabilities", P, len, B, NH, T, causal, 3, 1);
        test_attn_stats("on these probabilities", P, len, B, NH, T, causal, 64, 0);
    }
    if (fused) gpu->free(gpu, d_qkv);
    else { gpu->free(gpu, d_q); gpu->free(gpu, d_k); gpu->free(gpu, d_v); }
    gpu->free(gpu, d_m); gpu->free(gpu, d_out);
    gpu->free(gpu, d_P);
    free(q); free(k); free(v); free(mask); free(out); free(P); free(got_P); free(got_o);
}

/* rows of few distinct values (0, 1/8, 1/4, 3/8): many exact ties for top-k */
/* linear under --precision bf16 with bf16 activations in and/or out (the fused path's GEMMs) */
static void test_linear_bf16(backend *g, int M, int K, int N, int idt, int odt)
{
    float *in = rand_vec((size_t)M * K, -1, 1), *W = rand_vec((size_t)N * K, -1, 1), *b = rand_vec(N, -1, 1);
    for (size_t i = 0; i < (size_t)M * K; i++) in[i] = bf16_round(in[i]);
    float *want = xmalloc((size_t)M * N * 4);
    cpu->linear(cpu, want, DT_F32, in, DT_F32, W, b, M, K, N);
    uint16_t *inb = to_bf16_bits(in, (size_t)M * K);
    void *d_in = idt == DT_BF16 ? to_dev(inb, (size_t)M * K * 2) : to_dev(in, (size_t)M * K * 4);
    float *d_W = to_dev(W, (size_t)N * K * 4), *d_b = to_dev(b, N * 4);
    void *d_out = g->alloc(g, (size_t)M * N * 4);
    g->linear(g, d_out, odt, d_in, idt, d_W, d_b, M, K, N);
    float *got;
    if (odt == DT_BF16) {
        uint16_t *h = to_host(d_out, (size_t)M * N * 2);
        got = from_bf16_bits(h, (size_t)M * N);
        free(h);
    } else {
        got = to_host(d_out, (size_t)M * N * 4);
    }
    char what[96];
    snprintf(what, sizeof what, "bf16 M=%d K=%d N=%d in %s out %s", M, K, N, idt ? "bf16" : "f32", odt ? "bf16" : "f32");
    report("linear", what, compare(got, want, (size_t)M * N), 1e-2, 1, "bf16 weights (8-bit mantissa), bf16 output rounding");
    g->free(g, d_in); g->free(g, d_W); g->free(g, d_b); g->free(g, d_out);
    free(in); free(W); free(b); free(want); free(inb); free(got);
}

/* activation in place on bf16 (the MLP's hidden layer of the fused path) */
/* Each element against its own magnitude. GELU over [-10, 10], its negative tail included, against
 * x·erfc(−x/√2)/2 in double: the CPU's (and PyTorch's) 0.5·x·(1 + erf(x/√2)) cancels there (from
 * x ≈ −5 on), the GPU's bf16 kernel does not. The tanh form as the CPU computes it, over
 * [-2.5, 2.5] (the float tanhf on the GPU cancels in the tail as PyTorch's does); SiLU over
 * [-10, 10] (x / (1 + e^-x) does not cancel). */
static void test_activation_bf16(int act, const char *name, size_t n)
{
    const float range = act == ACT_GELU || act == ACT_SILU ? 10.0f : 2.5f;
    float *x = rand_vec(n, -range, range);
    for (size_t i = 0; i < n; i++) x[i] = bf16_round(x[i]);
    uint16_t *xb = to_bf16_bits(x, n);
    if (act == ACT_GELU)
        for (size_t i = 0; i < n; i++) x[i] = (float)(0.5 * x[i] * erfc(-x[i] * 0.70710678118654752440));
    else
        cpu->activation(cpu, x, DT_F32, n, act);
    void *d_x = to_dev(xb, n * 2);
    gpu_bf16->activation(gpu_bf16, d_x, DT_BF16, n, act);
    uint16_t *h = to_host(d_x, n * 2);
    float *got = from_bf16_bits(h, n);
    char what[64];
    snprintf(what, sizeof what, "bf16 %s n=%zu", name, n);
    /* one bf16 rounding (≤ 2^-8 relative) of a float within 5e-5 */
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        const double e = fabs((double)got[i] - x[i]) / (x[i] != 0 ? fabs(x[i]) : 1.0);
        if (!(e <= worst)) worst = e;
    }
    report("activation", what, (err){worst, worst}, 1.0 / 256 + 5e-5, 1, "elementwise rel: bf16 rounding 2^-8 + 5e-5");
    gpu_bf16->free(gpu_bf16, d_x);
    free(x); free(xb); free(h); free(got);
}

/* add_norm (the pre-norm residual step): the stream x (x + res) and the normed xn against the CPU,
 * LayerNorm or RMSNorm, with and without bias and residual, xn == x (post-norm) and w NULL (the add
 * alone). bf16: a bf16 residual and the bf16 copy of xn that the bf16 path's next GEMM reads. */
static void test_add_norm(int M, int C, int rms, int bias, int with_res, int in_place, int no_w)
{
    const size_t n = (size_t)M * C;
    float *x = rand_vec(n, 2, 8), *w = rand_vec(C, 0.5f, 1.5f), *b = rand_vec(C, -1, 1);      /* mean ≠ 0 */
    float *r = with_res ? rand_vec(n, -3, 3) : NULL;
    if (with_res == 2)
        for (size_t i = 0; i < n; i++) r[i] = bf16_round(r[i]);
    float *wx = xmalloc(n * 4), *wn = in_place ? wx : xmalloc(n * 4);
    memcpy(wx, x, n * 4);
    cpu->add_norm(cpu, wx, wn, NULL, r, DT_F32, no_w ? NULL : w, bias ? b : NULL, M, C, 1e-6f, rms);
    float *d_x = to_dev(x, n * 4), *d_w = to_dev(w, C * 4), *d_b = to_dev(b, C * 4);
    uint16_t *rb = with_res == 2 ? to_bf16_bits(r, n) : NULL;
    void *d_r = !r ? NULL : rb ? to_dev(rb, n * 2) : to_dev(r, n * 4);
    float *d_n = in_place ? d_x : gpu->alloc(gpu, n * 4);
    void *d_nb = with_res == 2 ? gpu->alloc(gpu, n * 2) : NULL;
    backend *g = with_res == 2 ? gpu_bf16 : gpu;
    g->add_norm(g, d_x, d_n, d_nb, d_r, with_res == 2 ? DT_BF16 : DT_F32, no_w ? NULL : d_w, bias ? d_b : NULL, M, C,
                1e-6f, rms);
    float *gx = to_host(d_x, n * 4), *gn = to_host(d_n, n * 4);
    char what[128];
    snprintf(what, sizeof what, "%s M=%d C=%d%s%s%s%s", no_w ? "add only" : rms ? "rms" : "layer", M, C,
             bias ? " bias" : "", with_res == 2 ? " + bf16 res" : r ? " + res" : "", in_place ? " xn=x" : "",
             d_nb ? " + bf16 copy" : "");
    const char *why = "float add, double statistics on both sides";
    if (!in_place) report("add_norm", what, compare(gx, wx, n), 0, 0, "  the stream x + res: one float add");
    report("add_norm", what, compare(gn, wn, n), 1e-5, 1, why);
    if (d_nb) {
        uint16_t *ob = to_host(d_nb, n * 2), *want_b = to_bf16_bits(gn, n);
        const int bdiff = memcmp(ob, want_b, n * 2) != 0;
        printf("%s add_norm   bf16 copy of xn: %s (tol 0: the same floats, rounded to nearest even)\n",
               bdiff ? "FAIL" : "ok  ", bdiff ? "differs" : "bit-identical");
        failures += bdiff;
        free(ob); free(want_b);
        gpu->free(gpu, d_nb);
    }
    if (!in_place) { gpu->free(gpu, d_n); free(wn); }
    if (d_r) gpu->free(gpu, d_r);
    gpu->free(gpu, d_x); gpu->free(gpu, d_w); gpu->free(gpu, d_b);
    free(x); free(r); free(rb); free(w); free(b); free(wx); free(gx); free(gn);
}

/* rope in place on the q | k heads of a fused (T, ld) row (the v third untouched), positions
 * as the model gives them (padding rows too) up to pmax, inv_freq = base^(-2i/HS) / scale (a
 * linear scaling's shape); bf16 (the kernel): against the CPU on the bf16 inputs, rounded */
static void test_rope(int T, int nh, int HS, int ld, int pmax, double base, double scale, int bf16)
{
    const size_t n = (size_t)T * ld;
    float *x = rand_vec(n, -2, 2), *f = xmalloc(HS / 2 * 4);
    int32_t *pos = xmalloc(T * 4);
    for (int t = 0; t < T; t++) pos[t] = (int32_t)(rnd() * (pmax + 1));
    pos[0] = 0;
    for (int i = 0; i < HS / 2; i++) f[i] = (float)(pow(base, -2.0 * i / HS) / scale);
    if (bf16)
        for (size_t i = 0; i < n; i++) x[i] = bf16_round(x[i]);
    float *want = xmalloc(n * 4);
    memcpy(want, x, n * 4);
    cpu->rope(cpu, want, DT_F32, ld, pos, f, T, nh, HS);
    int32_t *d_pos = to_dev(pos, T * 4);
    float *d_f = to_dev(f, HS / 2 * 4), *got;
    uint16_t *xb = bf16 ? to_bf16_bits(x, n) : NULL;
    void *d_x = bf16 ? to_dev(xb, n * 2) : to_dev(x, n * 4);
    if (bf16) {
        gpu_bf16->rope(gpu_bf16, d_x, DT_BF16, ld, d_pos, d_f, T, nh, HS);
        uint16_t *h = to_host(d_x, n * 2);
        got = from_bf16_bits(h, n);
        free(h);
        for (size_t i = 0; i < n; i++) want[i] = bf16_round(want[i]);
    } else {
        gpu->rope(gpu, d_x, DT_F32, ld, d_pos, d_f, T, nh, HS);
        got = to_host(d_x, n * 4);
    }
    char what[128];
    snprintf(what, sizeof what, "%sT=%d nh=%d HS=%d ld=%d pos<=%d", bf16 ? "bf16 " : "", T, nh, HS, ld, pmax);
    if (bf16) report("rope", what, compare(got, want, n), 1.0 / 256, 1, "one bf16 rounding (2^-8) of the same floats");
    else report("rope", what, compare(got, want, n), 1e-6, 1, "same float ops; cos/sin in double, rounded");
    gpu->free(gpu, d_x); gpu->free(gpu, d_pos); gpu->free(gpu, d_f);
    free(x); free(f); free(pos); free(want); free(got); free(xb);
}

/* gated_act: out (M, F) = act(gate) · up; bf16 in and/or out through the kernel, against the CPU
 * on the bf16 inputs (a bf16 output: rounded once) */
static void test_gated_act(int M, int F, int act, const char *name, int in_bf16, int out_bf16)
{
    const size_t n = (size_t)M * F;
    float *in = rand_vec(2 * n, -6, 6), *want = xmalloc(n * 4);
    if (in_bf16)
        for (size_t i = 0; i < 2 * n; i++) in[i] = bf16_round(in[i]);
    cpu->gated_act(cpu, want, in, DT_F32, M, F, act);
    uint16_t *ib = in_bf16 ? to_bf16_bits(in, 2 * n) : NULL;
    void *d_in = in_bf16 ? to_dev(ib, 2 * n * 2) : to_dev(in, 2 * n * 4);
    void *d_out = gpu->alloc(gpu, n * 4);
    if (in_bf16 != out_bf16) {          /* mixed types: the kernel itself (the op has one type) */
        cuda_gated_act(d_out, out_bf16, d_in, in_bf16, M, F, act);
        gpu->sync(gpu);
    } else {
        backend *g = in_bf16 ? gpu_bf16 : gpu;
        g->gated_act(g, d_out, d_in, in_bf16 ? DT_BF16 : DT_F32, M, F, act);
    }
    float *got;
    if (out_bf16) {
        uint16_t *h = to_host(d_out, n * 2);
        got = from_bf16_bits(h, n);
        free(h);
    } else {
        got = to_host(d_out, n * 4);
    }
    char what[128];
    snprintf(what, sizeof what, "%s M=%d F=%d%s%s", name, M, F, in_bf16 ? " bf16 in" : "", out_bf16 ? " bf16 out" : "");
    if (out_bf16) report("gated_act", what, compare(got, want, n), 1.0 / 256 + 1e-6, 1, "bf16 rounding 2^-8 + float act");
    else report("gated_act", what, compare(got, want, n), 1e-6, 1, "float act (<= 2 ulp) vs the CPU in double, one float mul");
    gpu->free(gpu, d_in); gpu->free(gpu, d_out);
    free(in); free(want); free(ib); free(got);
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
        char name[160];
        snprintf(name, sizeof name, "%s %s", what, stats_names[s]);
        const int cols = s == STAT_DISTANCE || s == STAT_ATTN_CLS || s == STAT_ATTN_SEP || s == STAT_ATTN_PUNCT ||
                         s == STAT_SINK;   /* (the sink α_0 is the mass on key 0, as attn_cls) */
        report("fused", name, compare(g, w, heads), cols ? tol_cols : tol, 1, cols ? why_cols : why);
        free(g); free(w);
    }
}

/* attention_stats (the fused kernel) against the CPU's explicit attention + stats_head.
 * bf16 backend: q, k, v are bf16 values, so that the GPU's products are exact and its scores differ
 * from the CPU's only by the fp32 summation order: the statistics must agree to fp32 rounding; the
 * output P·V rounds P to bf16 (as transformers' eager bf16 does). fp32 backend (3xTF32): any
 * float inputs, everything to fp32 rounding. */
static void test_attention_fused(backend *g, int B, int T, int NH, int HS, const int *len, int causal, float qscale, int window,
                                 int dt)
{
    const int C = NH * HS, fp32 = g != gpu_bf16;
    const size_t n = (size_t)B * T * C;
    float *qkv = rand_vec(3 * n, -1, 1);
    for (size_t r = 0; r < (size_t)B * T; r++)
        for (int c = 0; c < 3 * C; c++) {
            const float x = qkv[r * 3 * C + c] * (c < C ? qscale : 1.0f);
            qkv[r * 3 * C + c] = fp32 ? x : bf16_round(x);
        }
    uint8_t *cls = xmalloc((size_t)B * T);
    for (size_t i = 0; i < (size_t)B * T; i++) cls[i] = (uint8_t)(rnd() * 4);
    float *out = xmalloc(n * 4), *st = xmalloc((size_t)B * NH * STAT_N * 4);
    cpu->attention_stats(cpu, out, qkv, qkv + C, qkv + 2 * C, DT_F32, 3 * C, len, cls, B, T, NH, HS, causal, window, st);
    const size_t es = dt == DT_BF16 ? 2 : 4;
    uint16_t *qkvb = to_bf16_bits(qkv, 3 * n);
    char *d_qkv = dt == DT_BF16 ? to_dev(qkvb, 3 * n * 2) : to_dev(qkv, 3 * n * 4);
    void *d_out = g->alloc(g, n * 4);
    float *d_st = g->alloc(g, (size_t)B * NH * STAT_N * 4);
    int32_t *d_len = to_dev(len, B * 4);
    uint8_t *d_cls = to_dev(cls, (size_t)B * T);
    g->attention_stats(g, d_out, d_qkv, d_qkv + C * es, d_qkv + 2 * C * es, dt, 3 * C, d_len, d_cls, B, T, NH, HS, causal,
                       window, d_st);
    float *got_o, *got_s = to_host(d_st, (size_t)B * NH * STAT_N * 4);
    if (dt == DT_BF16) {
        uint16_t *h = to_host(d_out, n * 2);
        got_o = from_bf16_bits(h, n);
        free(h);
    } else {
        got_o = to_host(d_out, n * 4);
    }
    char what[128], lens[48] = "", *l = lens;
    for (int b = 0; b < B && l < lens + sizeof lens - 8; b++) l += sprintf(l, b ? ",%d" : "%d", len[b]);
    snprintf(what, sizeof what, "%s B=%d T=%d NH=%d HS=%d len=%s causal=%d", fp32 ? "fp32 3xTF32" : dt == DT_BF16 ? "bf16 io" : "f32 io",
             B, T, NH, HS, lens, causal);
    if (fp32)
        report_stats(what, got_s, st, (size_t)B * NH, 2e-5, "3xTF32 products, fp32 softmax", 2e-5,
                     "P̃ as hi + lo TF32 times exact columns");
    else
        report_stats(what, got_s, st, (size_t)B * NH, 2e-5, "bf16 inputs exact, fp32 scores and softmax", 4e-3,
                     "P̃ rounded to bf16 (≤ 2^-8 rel), as for P·V");
    if (fp32) report("fused", "  output P·V", compare(got_o, out, n), 1e-5, 1, "3xTF32, each key tile's P·V summed apart");
    else report("fused", "  output P·V", compare(got_o, out, n), 8e-3, 1, "P rounded to bf16 (8-bit mantissa)");
    g->free(g, d_qkv); g->free(g, d_out); g->free(g, d_st); g->free(g, d_len); g->free(g, d_cls);
    free(qkv); free(qkvb); free(cls); free(out); free(st); free(got_o); free(got_s);
}

static void test_attn_stats_ties(void)
{
    const int B = 3, NH = 2, T = 70, len[3] = {70, 33, 0};
    float *P = xmalloc((size_t)B * NH * T * T * 4);
    for (size_t i = 0; i < (size_t)B * NH * T * T; i++) P[i] = (float)((int)(rnd() * 4) / 8.0);
    for (int causal = 0; causal < 2; causal++)
        for (int k = 1; k <= 5; k += 4) test_attn_stats("tied values B=3 T=70 len=70,33,0", P, len, B, NH, T, causal, k, 1);
    free(P);
}

/* The per-head scalars of the fused path (scalars only) of model mg against those of the CPU's mc
 * on the same tokens, every layer: the largest difference of entropy (nats), distance (tokens)
 * and of the mass statistics, reported against the three tolerances. */
static void fused_scalars_vs_cpu(model *mc, model *mg, const int32_t *ids, const int *len, int B, int T,
                                 const char *what, double tol_ent, double tol_dist, double tol_mass, const char *why)
{
    const model_config *c = &mc->cfg;
    const size_t ns = (size_t)c->n_layer * B * c->n_head * STAT_N;
    float *sc = xmalloc(ns * 4), *sg = xmalloc(ns * 4);
    attn_request rc = {.scalars_only = 1, .window = 2, .stats = sc}, rg = {.scalars_only = 1, .window = 2, .stats = sg};
    const int okc = !model_forward(mc, ids, NULL, len, B, T, &rc, NULL) && rc.fused;
    const int okg = !model_forward(mg, ids, NULL, len, B, T, &rg, NULL) && rg.fused;
    if (!okc || !okg) {
        printf("FAIL forward   %s: the fused path did not run (cpu %d, gpu %d)\n", what, okc, okg);
        failures++;
    } else {
        double e[STAT_N] = {0}, mass = 0;
        for (size_t i = 0; i < ns; i++) {
            const double d = fabs((double)sg[i] - sc[i]);
            if (!(d <= e[i % STAT_N])) e[i % STAT_N] = d;
        }
        for (int s = 0; s < STAT_N; s++)
            if (s != STAT_ENTROPY && s != STAT_DISTANCE && s != STAT_ENTROPY_NORM && !(e[s] <= mass)) mass = e[s];
        char line[128];
        snprintf(line, sizeof line, "%s: entropy (nats)", what);
        report("forward", line, (err){e[STAT_ENTROPY], e[STAT_ENTROPY]}, tol_ent, 0, why);
        report("forward", "  distance (tokens)", (err){e[STAT_DISTANCE], e[STAT_DISTANCE]}, tol_dist, 0, why);
        report("forward", "  masses (max over the mass statistics)", (err){mass, mass}, tol_mass, 0, why);
    }
    free(sc); free(sg);
}

/* forward of a fixture on both backends: probabilities on valid rows and the last hidden state */
typedef struct { float *ref; int NH, T, B; const int *len; int record; double max_err; } fwd_cmp;
static void fwd_capture(void *user, int layer, const float *probs, int B, int T)
{
    fwd_cmp *c = user;
    const size_t nP = (size_t)B * c->NH * T * T;
    float *ref = c->ref + (size_t)layer * nP;
    if (c->record) { memcpy(ref, probs, nP * 4); return; }
    float *got = to_host(probs, nP * 4);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < c->NH; h++)
            for (int i = 0; i < c->len[b]; i++)
                for (int j = 0; j < c->len[b]; j++) {
                    size_t e = (((size_t)b * c->NH + h) * T + i) * T + j;
                    double d = fabs((double)got[e] - ref[e]);
                    if (!(d <= c->max_err)) c->max_err = d;
                }
    free(got);
}

static void test_forward(const char *name, const char *dir)
{
    model mc, mg;
    if (model_load(&mc, dir, cpu) || model_load(&mg, dir, gpu)) {
        printf("FAIL forward %s: %s\n", name, err_get());
        failures++;
        return;
    }
    const model_config *c = &mc.cfg;
    const int B = 3, T = 13, len[3] = {13, 7, 1}, C = c->d_model;
    int32_t *ids = xmalloc(B * T * 4), *types = xmalloc(B * T * 4);
    for (int i = 0; i < B * T; i++) {
        ids[i] = 3 + (int32_t)(rnd() * (c->vocab - 3));
        types[i] = c->type_vocab > 1 ? (int32_t)(rnd() * 2) : 0;
    }
    const size_t nP = (size_t)B * c->n_head * T * T;
    fwd_cmp cmp = {xmalloc(nP * c->n_layer * 4), c->n_head, T, B, len, 1, 0};
    float *h_cpu = xmalloc((size_t)B * T * C * 4), *h_gpu = xmalloc((size_t)B * T * C * 4);
    attn_request req = {.capture = fwd_capture, .user = &cmp};
    model_forward(&mc, ids, types, len, B, T, &req, h_cpu);
    cmp.record = 0;
    model_forward(&mg, ids, types, len, B, T, &req, h_gpu);
    double e = 0, m = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < len[b]; t++)
            for (int i = 0; i < C; i++) {
                size_t x = ((size_t)b * T + t) * C + i;
                if (!(fabs(h_gpu[x] - h_cpu[x]) <= e)) e = fabs(h_gpu[x] - h_cpu[x]);
                if (fabs(h_cpu[x]) > m) m = fabs(h_cpu[x]);
            }
    char what[96];
    snprintf(what, sizeof what, "%s L=%d B=3 T=13 len=13,7,1 probs", name, c->n_layer);
    report("forward", what, (err){cmp.max_err, cmp.max_err}, 1e-5, 0, "fp32 chain, as test_model vs HF");
    report("forward", "  last hidden state (valid tokens)", (err){e, e / (m > 0 ? m : 1)}, 1e-5, 1, "fp32 chain");
    if (model_fuses(&mg)) {      /* the fused kernel (3xTF32) on this head size: its scalars, every layer */
        snprintf(what, sizeof what, "%s fp32 fused vs cpu", name);
        fused_scalars_vs_cpu(&mc, &mg, ids, len, B, T, what, 1e-5, 1e-4, 1e-5, "3xTF32 products, fp32 softmax");
    }
    free(ids); free(types); free(cmp.ref); free(h_cpu); free(h_gpu);
    model_free(&mc);
    model_free(&mg);
}

/* --precision bf16 on a decoder: the explicit path (bf16 GEMMs, fp32 activations; what a run with
 * per-token outputs takes) and, where the head size has the fused kernel, the fused path (per-head
 * scalars only: the whole chain bf16 — q k v, the residual branches, the MLP's hidden layer, each
 * norm's bf16 copy), against the CPU's fp32 forward of the same tokens. The bounds are the bf16
 * chain's, stated per quantity: ~2^-8 relative per bf16 rounding through the layers. */
static void test_forward_bf16(backend *g, const char *name, const char *dir)
{
    model mc, mg;
    if (model_load(&mc, dir, cpu) || model_load(&mg, dir, g)) {
        printf("FAIL forward bf16 %s: %s\n", name, err_get());
        failures++;
        return;
    }
    const model_config *c = &mc.cfg;
    const int B = 3, T = 13, len[3] = {13, 7, 1};
    int32_t *ids = xmalloc(B * T * 4);
    for (int i = 0; i < B * T; i++) ids[i] = 3 + (int32_t)(rnd() * (c->vocab - 3));
    const size_t nP = (size_t)B * c->n_head * T * T;
    fwd_cmp cmp = {xmalloc(nP * c->n_layer * 4), c->n_head, T, B, len, 1, 0};
    attn_request req = {.capture = fwd_capture, .user = &cmp};
    model_forward(&mc, ids, NULL, len, B, T, &req, NULL);
    cmp.record = 0;
    model_forward(&mg, ids, NULL, len, B, T, &req, NULL);
    char what[96];
    snprintf(what, sizeof what, "%s L=%d bf16 explicit vs cpu fp32: probs", name, c->n_layer);
    /* bf16 q and k (2^-8 relative) move a logit of ~10 by ~0.04: up to ~0.01 in a probability per
     * layer, compounding through the residual stream — measured 0.006–0.029 on the fixtures */
    report("forward", what, (err){cmp.max_err, cmp.max_err}, 5e-2, 0, "bf16 GEMM inputs through the layers");
    if (model_fuses(&mg)) {
        snprintf(what, sizeof what, "%s bf16 fused vs cpu fp32", name);
        fused_scalars_vs_cpu(&mc, &mg, ids, len, B, T, what, 3e-2, 5e-2, 1e-2, "the whole chain in bf16");
    } else {
        printf("     forward    %s: head size %d has no fused kernel: explicit path only\n", name, c->head_dim);
    }
    free(ids); free(cmp.ref);
    model_free(&mc);
    model_free(&mg);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);        /* lines reach the log even if something crashes */
    gpu = backend_init("cuda", 0);
    if (!gpu) {
        printf("test_backend_gpu: SKIP (%s)\n", err_get());
        return 0;
    }
    backend *tf32 = backend_init("cuda", 1), *bf16 = backend_init("cuda", 2), *sgemm = backend_init("cuda", 3);
    cpu = backend_init("cpu", 0);
    gpu_bf16 = bf16;

    test_embed(130, 37, 1, 1);
    test_embed(1, 64, 0, 1);
    test_embed(130, 37, 0, 0);
    const char *why32 = "3xTF32 (hi·hi + hi·lo + lo·hi, fp32 accumulation)", *whytf = "TF32 inputs (10-bit mantissa)";
    const char *whysg = "fp32 SGEMM, summation order differs";
    test_linear(gpu, "fp32", 130, 37, 37, 1, 1e-5, why32);
    test_linear(gpu, "fp32", 1, 64, 37, 0, 1e-5, why32);
    test_linear(gpu, "fp32", 257, 768, 3072, 1, 1e-5, why32);
    test_linear(gpu, "fp32", 8192, 768, 2304, 1, 1e-5, why32);    /* bert-base's fused QKV */
    test_linear(gpu, "fp32", 300, 3072, 768, 1, 1e-5, why32);
    test_linear(sgemm, "fp32-sgemm", 130, 37, 37, 1, 1e-5, whysg);
    test_linear(sgemm, "fp32-sgemm", 257, 768, 3072, 1, 1e-5, whysg);
    test_linear(tf32, "tf32", 130, 37, 37, 1, 2e-3, whytf);
    test_linear(tf32, "tf32", 257, 768, 3072, 1, 2e-3, whytf);
    test_linear(bf16, "bf16", 130, 37, 37, 1, 1e-2, "bf16 inputs (8-bit mantissa), fp32 accumulation");
    test_linear(bf16, "bf16", 257, 768, 3072, 1, 1e-2, "bf16 inputs (8-bit mantissa), fp32 accumulation");
    for (int idt = DT_F32; idt <= DT_BF16; idt++)
        for (int odt = DT_F32; odt <= DT_BF16; odt++) test_linear_bf16(bf16, 257, 768, 2304, idt, odt);
    test_linear_bf16(bf16, 130, 37, 38, DT_BF16, DT_BF16);
    test_layernorm(130, 37, 0, 0);
    test_layernorm(3, 768, 1, 0);
    test_layernorm(130, 37, 0, 1);
    test_layernorm(257, 768, 1, 1);
    test_layernorm(130, 37, 0, 2);
    test_layernorm(257, 768, 1, 2);
    test_activation(ACT_GELU, "gelu (erf)", 4099);
    test_activation(ACT_GELU_TANH, "gelu (tanh)", 4099);
    test_activation(ACT_RELU, "relu", 4099);
    test_activation(ACT_SILU, "silu", 4099);
    test_activation(ACT_QUICK_GELU, "quick gelu", 4099);
    /* the decoder families' ops: odd C (the scalar kernel), C = 128·V (the registers kernel),
     * padding rows (positions beyond the sequence), both norm kinds */
    for (int rms = 0; rms < 2; rms++) {
        test_add_norm(130, 37, rms, 0, 1, 0, 0);
        test_add_norm(130, 37, rms, 1, 1, 0, 0);
        test_add_norm(257, 768, rms, 0, 1, 0, 0);
        test_add_norm(257, 768, rms, 1, 1, 0, 0);
        test_add_norm(3, 896, rms, 1, 0, 0, 0);            /* the first step: no residual */
        test_add_norm(130, 37, rms, 1, 1, 1, 0);           /* xn == x (post-norm) */
        test_add_norm(257, 768, rms, 0, 1, 1, 0);
        test_add_norm(130, 37, rms, 0, 2, 0, 0);           /* bf16 residual + bf16 copy (kernel) */
        test_add_norm(257, 2048, rms, 1, 2, 0, 0);
    }
    test_add_norm(130, 37, 0, 0, 1, 0, 1);                 /* w NULL: the add alone */
    test_add_norm(257, 768, 0, 0, 1, 0, 1);
    test_add_norm(257, 768, 0, 0, 1, 1, 1);
    test_rope(130, 8, 64, 3 * 512, 129, 10000.0, 1.0, 0);  /* q and k of a fused QKV row: 2·NH heads of 3·NH */
    test_rope(39, 6, 16, 3 * 48, 38, 10000.0, 1.0, 0);
    test_rope(300, 4, 128, 4 * 128, 8191, 500000.0, 8.0, 0);   /* far positions, llama3-like base, scaled */
    test_rope(7, 3, 10, 37, 6, 10000.0, 1.0, 0);            /* HS/2 odd, ld odd */
    test_rope(130, 8, 64, 3 * 512, 129, 10000.0, 1.0, 1);
    test_rope(39, 6, 16, 3 * 48, 38, 1000000.0, 1.0, 1);
    test_gated_act(130, 37, ACT_SILU, "silu", 0, 0);
    test_gated_act(257, 1376, ACT_SILU, "silu", 0, 0);
    test_gated_act(3, 37, ACT_GELU_TANH, "gelu (tanh)", 0, 0);
    for (int ib = 0; ib < 2; ib++)
        for (int ob = !ib; ob < 2; ob++) test_gated_act(130, 37, ACT_SILU, "silu", ib, ob);
    test_gated_act(257, 1376, ACT_SILU, "silu", 1, 1);
    test_activation_bf16(ACT_GELU, "gelu (erf)", 4098);
    test_activation_bf16(ACT_GELU_TANH, "gelu (tanh)", 4098);
    test_activation_bf16(ACT_SILU, "silu", 4098);
    test_activation_bf16(ACT_QUICK_GELU, "quick gelu", 4098);

    const char *whyp = "fp32 scores; softmax ops as the CPU";
    for (int causal = 0; causal < 2; causal++) {
        test_attention(gpu, "fp32", 3, 130, 2, 64, (int[]){130, 77, 1}, causal, 1, 1e-5, 1e-5, whyp, 0);
        test_attention(gpu, "fp32", 3, 130, 2, 64, (int[]){130, 77, 1}, causal, 1, 1e-5, 1e-5, whyp, 1);
        test_attention(gpu, "fp32", 2, 1, 3, 32, (int[]){1, 0}, causal, 1, 1e-5, 1e-5, whyp, 0);
        test_attention(gpu, "fp32", 3, 37, 4, 32, (int[]){37, 20, 0}, causal, 8, 1e-5, 1e-5, whyp, 1);  /* peaked rows */
    }
    test_attention(tf32, "tf32", 3, 130, 2, 64, (int[]){130, 77, 1}, 0, 1, 5e-3, 5e-3, "TF32 QKᵀ and P·V", 0);
    if (bf16->fused_ok(bf16, 64)) {
        for (int causal = 0; causal < 2; causal++) {
            for (int dt = DT_F32; dt <= DT_BF16; dt++) {
                test_attention_fused(bf16, 3, 130, 2, 64, (int[]){130, 77, 1}, causal, 1, 3, dt);
                test_attention_fused(bf16, 3, 37, 4, 32, (int[]){37, 20, 0}, causal, 8, 1, dt);   /* peaked rows, empty sample */
                test_attention_fused(bf16, 2, 200, 2, 128, (int[]){200, 64}, causal, 2, 5, dt);
                test_attention_fused(bf16, 2, 520, 2, 64, (int[]){520, 300}, causal, 2, 5, dt);   /* far tiles */
            }
        }
        test_attention_fused(bf16, 2, 1, 3, 32, (int[]){1, 0}, 0, 1, 3, DT_BF16);
        for (int causal = 0; causal < 2; causal++) {            /* fp32: the 3xTF32 kernel */
            test_attention_fused(gpu, 3, 130, 2, 64, (int[]){130, 77, 1}, causal, 1, 3, DT_F32);
            test_attention_fused(gpu, 3, 37, 4, 32, (int[]){37, 20, 0}, causal, 8, 1, DT_F32);
            test_attention_fused(gpu, 2, 520, 2, 64, (int[]){520, 300}, causal, 2, 5, DT_F32);
            test_attention_fused(gpu, 2, 200, 2, 128, (int[]){200, 64}, causal, 2, 5, DT_F32);   /* Q's lo in shared memory */
            test_attention_fused(gpu, 2, 300, 3, 128, (int[]){300, 1}, causal, 1, 3, DT_F32);
        }
        test_attention_fused(gpu, 2, 1, 3, 32, (int[]){1, 0}, 0, 1, 3, DT_F32);
    } else {
        printf("FAIL fused attention: not available on this GPU with --precision bf16\n");
        failures++;
    }
    test_attn_stats_ties();

    test_forward("bert_tiny", "tests/fixtures/hf/bert_tiny");
    test_forward("roberta_tiny", "tests/fixtures/hf/roberta_tiny");
    static const char *dec[] = {"gpt2_tiny", "llama_tiny", "llama3_tiny", "qwen2_tiny", "mistral_tiny", "gpt2_hd64",
                                "llama_hd128"};
    char dir[128];
    for (size_t i = 0; i < sizeof dec / sizeof *dec; i++) {
        snprintf(dir, sizeof dir, "tests/fixtures/hf/%s", dec[i]);
        test_forward(dec[i], dir);
        test_forward_bf16(bf16, dec[i], dir);
    }

    backend_free(cpu);
    backend_free(tf32);
    backend_free(bf16);
    backend_free(sgemm);
    backend_free(gpu);
    printf("test_backend_gpu: %d failure(s)\n", failures);
    return failures ? 1 : 0;
}
#endif
