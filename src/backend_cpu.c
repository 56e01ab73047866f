/* backend_cpu.c — the reference backend: OpenBLAS sgemm for every matrix product, OpenMP loops
 * for the rest. Reductions accumulate in double so that this backend is the accurate one that
 * faster backends are compared with. */
#include "backend.h"
#include "config.h"
#include "patch.h"
#include "check.h"
#include "util.h"
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <string.h>

static void *cpu_alloc(backend *be, size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64)) return NULL;
    return p;
}
static void cpu_free(backend *be, void *p) { free(p); }
static void cpu_copy(backend *be, void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); }
static void cpu_sync(backend *be) {}

/* the CPU keeps every activation in float32 (bf16_acts = 0): another type is a caller's bug */
static void need_f32(int dt, const char *op)
{
    if (dt != DT_F32) check_fail(__FILE__, __LINE__, op, "the CPU backend has float32 activations only");
}

static void cpu_embed(backend *be, float *out, const int32_t *ids, const int32_t *pos, const int32_t *types,
                      const float *wte, const float *wpe, const float *wtt, int T, int C)
{
#pragma omp parallel for
    for (int t = 0; t < T; t++) {
        const float *a = wte + (size_t)ids[t] * C, *b = wpe ? wpe + (size_t)pos[t] * C : NULL;
        const float *c = wtt ? wtt + (size_t)types[t] * C : NULL;
        float *o = out + (size_t)t * C;
        for (int i = 0; i < C; i++) o[i] = a[i] + (b ? b[i] : 0.0f) + (c ? c[i] : 0.0f);
    }
}

static void cpu_linear(backend *be, void *out_, int odt, const void *in_, int idt, const float *W, const float *b, int M,
                       int K, int N)
{
    need_f32(odt, "cpu_linear");
    need_f32(idt, "cpu_linear");
    float *out = out_;
    const float *in = in_;
    if (b) {
        for (int m = 0; m < M; m++) memcpy(out + (size_t)m * N, b, (size_t)N * sizeof(float));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, in, K, W, K, b ? 1.0f : 0.0f, out, N);
}

static void cpu_layernorm(backend *be, float *out, void *out_bf16, const void *in_, int in_dt, const void *res_,
                          int res_dt, const float *w, const float *b, int M, int C, float eps)
{
    if (out_bf16) check_fail(__FILE__, __LINE__, "cpu_layernorm", "no bf16 copy: the CPU backend has float32 activations only");
    need_f32(in_dt, "cpu_layernorm");
    need_f32(res_dt, "cpu_layernorm");
    const float *in = in_, *res = res_;
#pragma omp parallel for
    for (int m = 0; m < M; m++) {
        float *y = out + (size_t)m * C;
        const float *x = in + (size_t)m * C;
        if (res) {                   /* the residual sum, in out's row (each row is its own) */
            for (int i = 0; i < C; i++) y[i] = x[i] + res[(size_t)m * C + i];
            x = y;
        }
        double mean = 0, var = 0;
        for (int i = 0; i < C; i++) mean += x[i];
        mean /= C;
        for (int i = 0; i < C; i++) var += (x[i] - mean) * (x[i] - mean);
        var /= C;
        double rstd = 1.0 / sqrt(var + eps);
        for (int i = 0; i < C; i++) y[i] = (float)((x[i] - mean) * rstd) * w[i] + b[i];
    }
}

/* act (config.h act_kind) in double */
static double act_apply(double v, int act)
{
    switch (act) {
    case ACT_GELU: return 0.5 * v * (1.0 + erf(v * M_SQRT1_2));
    case ACT_GELU_TANH: return 0.5 * v * (1.0 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
    case ACT_RELU: return v > 0 ? v : 0;
    case ACT_SILU: return v / (1.0 + exp(-v));
    case ACT_QUICK_GELU: return v / (1.0 + exp(-1.702 * v));
    }
    return v;
}

static void cpu_activation(backend *be, void *x_, int dt, size_t n, int act)
{
    need_f32(dt, "cpu_activation");
    float *x = x_;
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) x[i] = (float)act_apply(x[i], act);
}

/* a row's L2 norm, Σ x² in double in element order (row_norms, and add_norm's norms) */
static float row_norm(const float *r, int C)
{
    double s = 0;
    for (int k = 0; k < C; k++) s += (double)r[k] * r[k];
    return (float)sqrt(s);
}

static void cpu_add_norm(backend *be, float *x, float *xn, void *xn_bf16, const void *res_, int res_dt, const float *w,
                         const float *b, int M, int C, float eps, int rms, float *norms)
{
    need_f32(res_dt, "cpu_add_norm");
    if (xn_bf16) check_fail(__FILE__, __LINE__, "cpu_add_norm", "no bf16 copy: the CPU backend has float32 activations only");
    const float *res = res_;
#pragma omp parallel for
    for (int m = 0; m < M; m++) {
        float *r = x + (size_t)m * C, *y = xn + (size_t)m * C;
        if (res)
            for (int i = 0; i < C; i++) r[i] += res[(size_t)m * C + i];
        if (norms) norms[m] = row_norm(r, C);
        if (!w) {
            if (y != r) memcpy(y, r, (size_t)C * sizeof(float));
            continue;
        }
        double mean = 0, var = 0;
        if (!rms) {
            for (int i = 0; i < C; i++) mean += r[i];
            mean /= C;
        }
        for (int i = 0; i < C; i++) var += (r[i] - mean) * (r[i] - mean);
        var /= C;
        const double rstd = 1.0 / sqrt(var + eps);
        for (int i = 0; i < C; i++) y[i] = (float)((r[i] - mean) * rstd) * w[i] + (b ? b[i] : 0.0f);
    }
}

static void cpu_rope(backend *be, void *x_, int dt, int ld, const int32_t *pos, const float *inv_freq, int T, int nh,
                     int HS)
{
    need_f32(dt, "cpu_rope");
    float *x = x_;
    const int half = HS / 2;
#pragma omp parallel for
    for (int t = 0; t < T; t++) {
        float *row = x + (size_t)t * ld;
        for (int i = 0; i < half; i++) {
            const float th = (float)pos[t] * inv_freq[i];       /* float32, as torch's position · inv_freq */
            const float c = (float)cos(th), s = (float)sin(th);
            for (int h = 0; h < nh; h++) {
                float *a = row + (size_t)h * HS + i, *b = a + half;
                const float a0 = *a, b0 = *b;
                *a = a0 * c - b0 * s;
                *b = b0 * c + a0 * s;
            }
        }
    }
}

static void cpu_gated_act(backend *be, void *out_, const void *in_, int dt, int M, int F, int act)
{
    need_f32(dt, "cpu_gated_act");
    float *out = out_;
    const float *in = in_;
#pragma omp parallel for
    for (int m = 0; m < M; m++) {
        const float *g = in + (size_t)m * 2 * F, *u = g + F;
        float *o = out + (size_t)m * F;
        for (int i = 0; i < F; i++) o[i] = (float)act_apply(g[i], act) * u[i];   /* act(g) in float, times u: torch's order */
    }
}

static void cpu_attention(backend *be, float *out, float *probs, const float *q, const float *k, const float *v, int ld,
                          const float *keymask, int B, int T, int NH, int NKV, int HS, int causal, int sw)
{
    const int C = NH * HS, G = NH / NKV;
    const float scale = 1.0f / sqrtf((float)HS);
#pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            /* query head h reads kv head h / G in place (HF's repeat_kv, without the copies) */
            const float *qb = q + (size_t)b * T * ld + (size_t)h * HS;
            const float *kb = k + (size_t)b * T * ld + (size_t)(h / G) * HS;
            const float *vb = v + (size_t)b * T * ld + (size_t)(h / G) * HS;
            const float *mask = keymask + (size_t)b * T;
            float *P = probs + ((size_t)b * NH + h) * T * T;      /* (T, T) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HS, scale, qb, ld, kb, ld, 0.0f, P, T);
            for (int i = 0; i < T; i++) {
                float *row = P + (size_t)i * T;
                float mx = -FLT_MAX;
                for (int j = 0; j < T; j++) {
                    /* HF adds finfo.min to masked scores; exp() of that minus the max is exactly 0 */
                    if (mask[j] == 0.0f || (causal && j > i) || (sw > 0 && j <= i - sw)) row[j] = -FLT_MAX;
                    if (row[j] > mx) mx = row[j];
                }
                double sum = 0;
                for (int j = 0; j < T; j++) {
                    float e = row[j] == -FLT_MAX && mx != -FLT_MAX ? 0.0f : expf(row[j] - mx);
                    row[j] = e;
                    sum += e;
                }
                float inv = (float)(1.0 / sum);
                for (int j = 0; j < T; j++) row[j] *= inv;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HS, T, 1.0f, P, T, vb, ld, 0.0f,
                        out + (size_t)b * T * C + (size_t)h * HS, C);
        }
    }
}

static void cpu_attn_stats(backend *be, const float *probs, const int *len, const uint8_t *sep, const uint8_t *punct,
                           int B, int NH, int T, const stats_params *sp, float *out, float *key_imp, int32_t *topk_idx,
                           float *topk_w)
{
    const int k = sp->topk;
#pragma omp parallel for collapse(2) schedule(dynamic)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const size_t bh = (size_t)b * NH + h;
            float *ki = key_imp ? key_imp + bh * T : NULL;
            if (ki) memset(ki, 0, (size_t)T * sizeof(float));
            stats_head(probs + bh * T * T, T, len[b], sp, sep ? sep + (size_t)b * T : NULL,
                       punct ? punct + (size_t)b * T : NULL, out + bh * STAT_N, ki,
                       topk_idx && k ? topk_idx + bh * T * k : NULL, topk_w && k ? topk_w + bh * T * k : NULL);
        }
}

/* The CPU's "fused" path is the explicit one on a scratch copy of the probabilities (kept between
 * calls, grown on demand: a fresh buffer per layer would fault its pages in every time): the
 * reference that the GPU's fused kernel is checked against, and the same numbers as
 * attention + attn_stats. */
typedef struct { float *probs; size_t cap; } cpu_ctx;

static void cpu_release(backend *be)
{
    cpu_ctx *c = be->ctx;
    if (c) free(c->probs);
    free(c);
    be->ctx = NULL;
}

/* attention_stats' vision outputs (stats.h attn_vis) of probs (B, NH, T, T), vstats.c's definitions */
static void cpu_vision_stats(backend *be, const float *probs, int B, int NH, int T, const vgrid *g, float *dist,
                             float *loc, float *cls);
static void cpu_attn_vision(const float *probs, int B, int NH, int T, const attn_vis *v)
{
    const vgrid g = {v->n_prefix, v->gh, v->gw, v->patch};
    const size_t TT = (size_t)T * T;
    cpu_vision_stats(NULL, probs, B, NH, T, &g, v->dist, v->loc, v->cls);
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        vstats_fuse(v->map + b * TT, probs + (size_t)b * NH * TT, NH, T, v->fusion);
        if (v->roll) vstats_rollout_norm(v->map + b * TT, T);
    }
}

static void cpu_attention_stats(backend *be, void *out, const void *q, const void *k, const void *v, int dt, int ld,
                                const int32_t *len, const uint8_t *tokcls, int B, int T, int NH, int NKV, int HS,
                                int causal, int sw, int window, float *stats, const attn_tokens *tok)
{
    need_f32(dt, "cpu_attention_stats");
    cpu_ctx *cc = be->ctx;
    const size_t np = (size_t)B * NH * T * T;
    if (np > cc->cap) {
        free(cc->probs);
        cc->probs = xmalloc(np * sizeof(float));
        cc->cap = np;
    }
    float *probs = cc->probs, *mask = xmalloc((size_t)B * T * sizeof(float));
    uint8_t *sep = xcalloc((size_t)B * T, 1), *punct = xcalloc((size_t)B * T, 1);
    int *n = xmalloc(B * sizeof(int));
    for (int b = 0; b < B; b++) {
        n[b] = len[b];
        for (int t = 0; t < T; t++) {
            const size_t i = (size_t)b * T + t;
            mask[i] = t < len[b];
            if (tokcls) { sep[i] = tokcls[i] & 1; punct[i] = (tokcls[i] >> 1) & 1; }
        }
    }
    cpu_attention(be, out, probs, q, k, v, ld, mask, B, T, NH, NKV, HS, causal, sw);
    const int topk = tok && tok->topk_idx ? tok->topk : 0;
    const stats_params sp = {.causal = causal, .window = window, .topk = topk, .sliding_window = sw};
    cpu_attn_stats(be, probs, n, sep, punct, B, NH, T, &sp, stats, tok ? tok->key_imp : NULL, topk ? tok->topk_idx : NULL,
                   topk ? tok->topk_w : NULL);
    if (tok && tok->vis) cpu_attn_vision(probs, B, NH, T, tok->vis);
    free(mask); free(sep); free(punct); free(n);
}
static int cpu_fused_ok(backend *be, int HS) { return 1; }
static int cpu_vision_fused_ok(backend *be, int T, int NH, int HS) { return 1; }

static void cpu_attn_pack(backend *be, void *dst, const float *probs, const int *len, int B, int NH, int T, int Lmax, int f16)
{
    const size_t LL = (size_t)Lmax * Lmax;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const size_t bh = (size_t)b * NH + h;
            const int n = len[b];
            for (int q = 0; q < Lmax; q++) {
                const float *row = q < n ? probs + (bh * T + q) * T : NULL;
                if (f16) {
                    uint16_t *o = (uint16_t *)dst + bh * LL + (size_t)q * Lmax;
                    for (int k = 0; k < Lmax; k++) o[k] = q < n && k < n ? util_f32_to_f16(row[k]) : 0;
                } else {
                    float *o = (float *)dst + bh * LL + (size_t)q * Lmax;
                    for (int k = 0; k < Lmax; k++) o[k] = q < n && k < n ? row[k] : 0.0f;
                }
            }
        }
}

static void *cpu_host_alloc(backend *be, size_t bytes) { return malloc(bytes ? bytes : 1); }
static void cpu_host_free(backend *be, void *p) { free(p); }
static size_t cpu_mem_free(backend *be) { return 0; }

static void cpu_copy_rows(backend *be, void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height)
{
    for (size_t r = 0; r < height; r++) memcpy((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
}

static void cpu_head_sim(backend *be, const float *maps, const int *len, int B, int nh, int T, double *js_sum, double *gram)
{
    stats_sim acc = {.nh = nh, .js_sum = js_sum, .gram = gram};
    const float **m = xmalloc(nh * sizeof(float *));
    for (int b = 0; b < B; b++) {
        for (int a = 0; a < nh; a++) m[a] = maps + ((size_t)b * nh + a) * T * T;
        stats_sim_add(&acc, m, T, len[b]);
    }
    free(m);
}

/* the vision statistics: vstats.c itself, the images in parallel */
static void cpu_vision_stats(backend *be, const float *probs, int B, int NH, int T, const vgrid *g, float *dist, float *loc,
                             float *cls)
{
    const size_t TT = (size_t)T * T, np = (size_t)g->gh * g->gw;
#pragma omp parallel for schedule(dynamic)
    for (int bh = 0; bh < B * NH; bh++) {
        const float *P = probs + bh * TT;
        dist[bh] = (float)vstats_distance_px(P, g);
        loc[bh] = (float)vstats_locality2d(P, g, 1);
        vstats_cls(P, g, cls + bh * np);
    }
}

static void cpu_rollout_step(backend *be, float *Rout, const float *Rin, const float *probs, int B, int NH, int T,
                             int fusion, double discard, int ready)
{
    const size_t TT = (size_t)T * T;
#pragma omp parallel for schedule(dynamic)
    for (int b = 0; b < B; b++) {
        float *R = Rout + b * TT, *work = xmalloc(TT * sizeof(float));
        if (Rin) memcpy(R, Rin + b * TT, TT * sizeof(float));
        else vstats_rollout_init(R, T);
        if (ready) vstats_rollout_product(R, probs + b * TT, T);
        else vstats_rollout_step(R, probs + (size_t)b * NH * TT, NH, T, fusion, discard, work);
        free(work);
    }
}

static void cpu_row_norms(backend *be, float *out, const float *x, size_t M, int C)
{
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < M; r++) out[r] = row_norm(x + r * C, C);
}

static void cpu_patch_rows(backend *be, float *rows, const void *px, const float *lut, int B, int ch, int H, int W, int P)
{
    patch_rows(px, lut, B, ch, H, W, P, rows);
}

static int conv_out(int n, int k, int stride, int pad) { return (n + 2 * pad - k) / stride + 1; }

static void cpu_conv_rows(backend *be, float *rows, const float *x, int B, int H, int W, int C, int k, int stride, int pad)
{
    const int OH = conv_out(H, k, stride, pad), OW = conv_out(W, k, stride, pad), K = C * k * k;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                float *r = rows + (((size_t)b * OH + oy) * OW + ox) * K;
                for (int ky = 0; ky < k; ky++) {
                    const int iy = oy * stride - pad + ky;
                    for (int kx = 0; kx < k; kx++) {
                        const int ix = ox * stride - pad + kx;
                        const int in = iy >= 0 && iy < H && ix >= 0 && ix < W;
                        const float *p = in ? x + (((size_t)b * H + iy) * W + ix) * C : NULL;
                        for (int ci = 0; ci < C; ci++) r[(ci * k + ky) * k + kx] = in ? p[ci] : 0.0f;
                    }
                }
            }
}

static void cpu_maxpool(backend *be, float *y, const float *x, int B, int H, int W, int C)
{
    const int oh = conv_out(H, 3, 2, 1), ow = conv_out(W, 3, 2, 1);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                float *o = y + (((size_t)b * oh + oy) * ow + ox) * C;
                for (int c = 0; c < C; c++) o[c] = -FLT_MAX;
                for (int iy = 2 * oy - 1; iy <= 2 * oy + 1; iy++)
                    for (int ix = 2 * ox - 1; ix <= 2 * ox + 1; ix++) {
                        if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                        const float *p = x + (((size_t)b * H + iy) * W + ix) * C;
                        for (int c = 0; c < C; c++) o[c] = p[c] > o[c] ? p[c] : o[c];
                    }
            }
}

static void cpu_add_relu(backend *be, float *y, const float *a, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        const float v = y[i] + a[i];
        y[i] = v > 0.0f ? v : 0.0f;
    }
}

static void cpu_channel_stats(backend *be, const float *x, int B, int hw, int C, float *mean, float *active, float *entropy)
{
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const float *v = x + (size_t)b * hw * C + c;
            double sum = 0, pos = 0;
            int n_act = 0;
            for (int i = 0; i < hw; i++) {
                const float e = v[(size_t)i * C];
                sum += e;
                if (e > 0) { pos += e; n_act++; }
            }
            double H = NAN;
            if (pos > 0) {
                H = 0;
                for (int i = 0; i < hw; i++) {
                    const float e = v[(size_t)i * C];
                    if (e > 0) { const double p = e / pos; H -= p * log(p); }
                }
            }
            mean[(size_t)b * C + c] = (float)(sum / hw);
            active[(size_t)b * C + c] = (float)n_act / hw;
            entropy[(size_t)b * C + c] = (float)H;
        }
}

backend *backend_cpu_init(void)
{
    backend *be = xcalloc(1, sizeof *be);
    be->name = "cpu";
    be->ctx = xcalloc(1, sizeof(cpu_ctx));
    be->release = cpu_release;
    be->alloc = cpu_alloc;
    be->free = cpu_free;
    be->upload = cpu_copy;
    be->download = cpu_copy;
    be->sync = cpu_sync;
    be->embed = cpu_embed;
    be->linear = cpu_linear;
    be->layernorm = cpu_layernorm;
    be->activation = cpu_activation;
    be->add_norm = cpu_add_norm;
    be->rope = cpu_rope;
    be->gated_act = cpu_gated_act;
    be->attention = cpu_attention;
    be->attn_stats = cpu_attn_stats;
    be->attention_stats = cpu_attention_stats;
    be->fused_ok = cpu_fused_ok;
    be->vision_fused_ok = cpu_vision_fused_ok;
    be->attn_pack = cpu_attn_pack;
    be->host_alloc = cpu_host_alloc;
    be->host_free = cpu_host_free;
    be->mem_free = cpu_mem_free;
    be->copy_rows = cpu_copy_rows;
    be->head_sim = cpu_head_sim;
    be->vision_stats = cpu_vision_stats;
    be->rollout_step = cpu_rollout_step;
    be->row_norms = cpu_row_norms;
    be->patch_rows = cpu_patch_rows;
    be->conv_rows = cpu_conv_rows;
    be->maxpool = cpu_maxpool;
    be->add_relu = cpu_add_relu;
    be->channel_stats = cpu_channel_stats;
    return be;
}

