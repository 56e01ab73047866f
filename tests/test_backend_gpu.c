/* test_backend_gpu.c — every op of the CUDA backend against the CPU backend (the reference), in
 * the manner of ggml's test-backend-ops: random inputs of awkward sizes (C = 37, T = 1, T = 130,
 * padded batches, causal on and off), one tolerance per op with its reason, and the max abs / rel
 * error printed for each comparison; the attention ops (attention, attn_stats, attn_pack,
 * head_sim, attention_stats) are tests/test_attn_gpu.c's and the norms (layernorm, add_norm,
 * add_norm_stream) tests/test_norms_gpu.c's, with the helpers of gpu_check.h. Then
 * the full forward of the tiny HF fixtures on both backends (attention probabilities on valid rows,
 * last hidden state; mistral_sw and qwen2_sw: GQA and sliding windows through the explicit path);
 * the HF references themselves are checked by test_model with ATTNSCOPE_BACKEND=cuda.
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
#include "gpu_check.h"
#include "kernels.h"      /* the bf16 variants of the decoder ops, which the backend table does not carry yet */

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
    /* the bf16 backend's token table (token_table): bf16 on the device, the gather converts; against
     * the CPU on the table rounded to bf16, the same adds */
    if (gpu_bf16 && gpu_bf16->token_table) {
        float *wr = xmalloc((size_t)V * C * 4);
        for (size_t i = 0; i < (size_t)V * C; i++) wr[i] = bf16_round(wte[i]);
        cpu->embed(cpu, want, ids, pos, typ, wr, with_pos ? wpe : NULL, with_types ? wtt : NULL, T, C);
        void *tb = gpu_bf16->token_table(gpu_bf16, wte, V, C);
        int32_t *b_ids = to_dev(ids, T * 4), *b_pos = to_dev(pos, T * 4), *b_typ = to_dev(typ, T * 4);
        float *b_wpe = to_dev(wpe, (size_t)P * C * 4), *b_wtt = to_dev(wtt, (size_t)TT * C * 4);
        float *b_out = gpu_bf16->alloc(gpu_bf16, (size_t)T * C * 4);
        gpu_bf16->embed(gpu_bf16, b_out, b_ids, b_pos, b_typ, tb, with_pos ? b_wpe : NULL, with_types ? b_wtt : NULL, T, C);
        float *gb = to_host(b_out, (size_t)T * C * 4);
        snprintf(what, sizeof what, "bf16 token table T=%d C=%d%s", T, C, with_pos ? "" : ", no position table");
        report("embed", what, compare(gb, want, (size_t)T * C), 0, 0, "the table rounded to bf16, then the same adds");
        void *bv[] = {tb, b_ids, b_pos, b_typ, b_wpe, b_wtt, b_out};
        for (size_t i = 0; i < sizeof bv / sizeof *bv; i++) gpu_bf16->free(gpu_bf16, bv[i]);
        free(wr); free(gb);
    }
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

/* linear_act (the activation in cuBLASLt's epilogue, bf16 out) against the CPU's linear then its
 * activation (erf or tanh form as the act says), on bf16-exact inputs, weights and bias (the GPU's
 * copies are then exact): each element within 2^-8 of its magnitude (the output's bf16 rounding)
 * + 1e-5 absolute (fp32 sums in another order), + 4.7e-4 where an erf GELU runs as the tanh form. And where linear_act must decline: an fp32 backend, an fp32 out, an
 * erf GELU without gelu_tanh, SiLU. */
static void test_linear_act(backend *g, int act, const char *name, int gelu_tanh)
{
    const int M = 130, K = 256, N = 384;
    float *in = rand_vec((size_t)M * K, -1, 1), *W = rand_vec((size_t)N * K, -1, 1), *b = rand_vec(N, -1, 1);
    for (size_t i = 0; i < (size_t)M * K; i++) in[i] = bf16_round(in[i]);
    for (size_t i = 0; i < (size_t)N * K; i++) W[i] = bf16_round(W[i] * 0.125f);   /* outputs of order 1 */
    for (int i = 0; i < N; i++) b[i] = bf16_round(b[i]);
    float *want = xmalloc((size_t)M * N * 4);
    cpu->linear(cpu, want, DT_F32, in, DT_F32, W, b, M, K, N);
    cpu->activation(cpu, want, DT_F32, (size_t)M * N, act);
    uint16_t *inb = to_bf16_bits(in, (size_t)M * K);
    void *d_in = to_dev(inb, (size_t)M * K * 2);
    float *d_W = to_dev(W, (size_t)N * K * 4), *d_b = to_dev(b, N * 4);
    void *d_out = g->alloc(g, (size_t)M * N * 4);
    g->gelu_tanh = gelu_tanh;
    const int done = g->linear_act && g->linear_act(g, d_out, DT_BF16, d_in, DT_BF16, d_W, d_b, M, K, N, act);
    char what[128];
    snprintf(what, sizeof what, "bf16 M=%d K=%d N=%d, %s in the epilogue%s", M, K, N, name, gelu_tanh ? " (gelu_tanh)" : "");
    if (!done) {
        printf("FAIL linear_act %s: declined\n", what);
        failures++;
    } else {
        uint16_t *h = to_host(d_out, (size_t)M * N * 2);
        float *got = from_bf16_bits(h, (size_t)M * N);
        const double extra = act == ACT_GELU ? 4.7e-4 : 0;
        double worst = 0;   /* the largest error over its allowance */
        for (size_t i = 0; i < (size_t)M * N; i++) {
            const double d = fabs((double)got[i] - want[i]), allow = fabs(want[i]) / 256 + 1e-5 + extra;
            if (!(d / allow <= worst)) worst = d / allow;
        }
        printf("%s linear_act %s: worst error / allowance %.3f (allowance 2^-8·|y| + 1e-5%s)\n", worst <= 1 ? "ok  " : "FAIL",
               what, worst, extra ? " + 4.7e-4, the tanh form" : "");
        failures += !(worst <= 1);
        free(h); free(got);
    }
    /* the cases it must decline, without touching out */
    float *d_o32 = g->alloc(g, (size_t)M * N * 4);
    const int d1 = g->linear_act(g, d_o32, DT_F32, d_in, DT_BF16, d_W, d_b, M, K, N, act);
    const int d2 = g->linear_act(g, d_out, DT_BF16, d_in, DT_BF16, d_W, d_b, M, K, N, ACT_SILU);
    g->gelu_tanh = 0;
    const int d3 = g->linear_act(g, d_out, DT_BF16, d_in, DT_BF16, d_W, d_b, M, K, N, ACT_GELU);
    const int bad = d1 || d2 || d3;
    printf("%s linear_act declines fp32 out (%d), SiLU (%d), erf GELU without gelu_tanh (%d): want 0 0 0\n",
           bad ? "FAIL" : "ok  ", d1, d2, d3);
    failures += bad;
    g->free(g, d_o32);
    g->free(g, d_in); g->free(g, d_W); g->free(g, d_b); g->free(g, d_out);
    free(in); free(W); free(b); free(want); free(inb);
}

/* linear_add (a pre-norm model's residual add in the GEMM's epilogue: s = bf16(s + in·Wᵀ + b))
 * against the CPU's linear y added to s in double, on bf16-exact inputs, weights, bias and stream:
 * each element within 2^-8 of |s + y| and of |y| + 1e-5 absolute (cuBLASLt's bf16 epilogue rounds
 * the branch before it adds s, as transformers does: two roundings, each within 2^-9 of its
 * value; fp32 sums in another order). How many elements equal bf16(s + bf16(y)) (transformers'
 * two roundings) and bf16(s + y) (one) is printed. And an fp32 backend has none (or declines). */
static void test_linear_add(backend *g, int M, int K, int N, int bias)
{
    float *in = rand_vec((size_t)M * K, -1, 1), *W = rand_vec((size_t)N * K, -1, 1), *b = rand_vec(N, -1, 1);
    float *s0 = rand_vec((size_t)M * N, -4, 4);
    for (size_t i = 0; i < (size_t)M * K; i++) in[i] = bf16_round(in[i]);
    for (size_t i = 0; i < (size_t)N * K; i++) W[i] = bf16_round(W[i] * 0.125f);   /* branches of order 1 */
    for (int i = 0; i < N; i++) b[i] = bf16_round(b[i]);
    for (size_t i = 0; i < (size_t)M * N; i++) s0[i] = bf16_round(s0[i]);
    float *y = xmalloc((size_t)M * N * 4);
    cpu->linear(cpu, y, DT_F32, in, DT_F32, W, bias ? b : NULL, M, K, N);
    uint16_t *inb = to_bf16_bits(in, (size_t)M * K), *sb = to_bf16_bits(s0, (size_t)M * N);
    void *d_in = to_dev(inb, (size_t)M * K * 2), *d_s = to_dev(sb, (size_t)M * N * 2);
    float *d_W = to_dev(W, (size_t)N * K * 4), *d_b = to_dev(b, N * 4);
    const int done = g->linear_add && g->linear_add(g, d_s, d_in, DT_BF16, d_W, bias ? d_b : NULL, M, K, N);
    char what[96];
    snprintf(what, sizeof what, "bf16 M=%d K=%d N=%d%s", M, K, N, bias ? " + bias" : "");
    if (!done) {
        printf("FAIL linear_add %s: declined\n", what);
        failures++;
    } else {
        uint16_t *h = to_host(d_s, (size_t)M * N * 2);
        float *got = from_bf16_bits(h, (size_t)M * N);
        double worst = 0, moved = 0;   /* the largest error over its allowance; the largest change of s */
        size_t two = 0, one = 0;
        for (size_t i = 0; i < (size_t)M * N; i++) {
            const double want = (double)s0[i] + y[i], d = fabs(got[i] - want);
            const double allow = (fabs(want) + fabs(y[i])) / 256 + 1e-5;
            if (!(d / allow <= worst)) worst = d / allow;
            if (fabs(got[i] - s0[i]) > moved) moved = fabs(got[i] - s0[i]);
            two += got[i] == bf16_round(s0[i] + bf16_round(y[i]));
            one += got[i] == bf16_round(s0[i] + y[i]);
        }
        const int ok = worst <= 1 && moved > 0.1;
        printf("%s linear_add %s: worst error / allowance %.3f (allowance 2^-8·(|s + y| + |y|) + 1e-5), largest change of "
               "s %.3g; equal to bf16(s + bf16(y)) %.1f%%, to bf16(s + y) %.1f%%\n", ok ? "ok  " : "FAIL", what, worst, moved,
               100.0 * two / ((double)M * N), 100.0 * one / ((double)M * N));
        failures += !ok;
        free(h); free(got);
    }
    g->free(g, d_in); g->free(g, d_s); g->free(g, d_W); g->free(g, d_b);
    free(in); free(W); free(b); free(s0); free(y); free(inb); free(sb);
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

/* The per-head scalars of the fused path (scalars only) of model mg against those of the CPU's mc
 * on the same tokens, every layer: the largest difference of entropy (nats), distance (tokens)
 * and of the mass statistics, reported against the three tolerances. */
static void fused_scalars_vs_cpu(model *mc, model *mg, const int32_t *ids, const int *len, int B, int T,
                                 const char *what, double tol_ent, double tol_dist, double tol_mass, const char *why)
{
    const model_config *c = &mc->cfg;
    const size_t ns = (size_t)c->n_layer * B * c->n_head * STAT_N;
    float *sc = xmalloc(ns * 4), *sg = xmalloc(ns * 4);
    attn_request rc = {.no_probs = 1, .window = 2, .stats = sc}, rg = {.no_probs = 1, .window = 2, .stats = sg};
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
     * layer, compounding through the residual stream; the residual branches and the MLP's hidden
     * layer are bf16 too (as on the fused path; torch's bf16 model rounds every activation) —
     * measured up to 0.051 (gpt2_hd64, 2 layers) on the fixtures with the float32 stream, 0.035
     * with the bf16 stream of a pre-norm model (BENCHMARKS.md run 42) */
    report("forward", what, (err){cmp.max_err, cmp.max_err}, 8e-2, 0, "bf16 GEMM inputs and branches through the layers");
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
    test_embed(300, 768, 1, 1);                            /* a block per row, 16-byte loads */
    test_embed(257, 768, 0, 1);
    test_embed(65, 2048, 0, 0);
    test_embed(33, 36, 1, 0);                              /* C = 4·9: fewer threads than 32 a row */
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
    test_activation(ACT_GELU, "gelu (erf)", 4099);
    test_activation(ACT_GELU_TANH, "gelu (tanh)", 4099);
    test_activation(ACT_RELU, "relu", 4099);
    test_activation(ACT_SILU, "silu", 4099);
    test_activation(ACT_QUICK_GELU, "quick gelu", 4099);
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

    test_linear_act(bf16, ACT_GELU_TANH, "tanh GELU", 0);
    test_linear_act(bf16, ACT_RELU, "ReLU", 0);
    test_linear_act(bf16, ACT_GELU, "erf GELU as the tanh form", 1);
    {   /* an fp32 backend declines */
        const int d = gpu->linear_act && gpu->linear_act(gpu, NULL, DT_BF16, NULL, DT_BF16, NULL, NULL, 1, 1, 1, ACT_GELU_TANH);
        printf("%s linear_act on the fp32 backend declines: %d (want 0)\n", d ? "FAIL" : "ok  ", d);
        failures += d;
    }

    test_linear_add(bf16, 130, 256, 384, 1);
    test_linear_add(bf16, 257, 768, 768, 1);                /* ViT-B's out projection */
    test_linear_add(bf16, 300, 3072, 768, 0);               /* a down projection without bias (Llama) */
    {   /* the fp32 backend has none, or declines */
        const int d = gpu->linear_add && gpu->linear_add(gpu, NULL, NULL, DT_BF16, NULL, NULL, 1, 1, 1);
        printf("%s linear_add on the fp32 backend declines: %d (want 0)\n", d ? "FAIL" : "ok  ", d);
        failures += d;
    }

    test_forward("bert_tiny", "tests/fixtures/hf/bert_tiny");
    test_forward("roberta_tiny", "tests/fixtures/hf/roberta_tiny");
    /* post-norm under bf16: the stream in bf16 (model.c residual_step); then the erf GELU as the
     * tanh form in the epilogue (--gelu tanh) */
    test_forward_bf16(bf16, "bert_tiny", "tests/fixtures/hf/bert_tiny");
    test_forward_bf16(bf16, "roberta_tiny", "tests/fixtures/hf/roberta_tiny");
    bf16->gelu_tanh = 1;
    test_forward_bf16(bf16, "bert_tiny --gelu tanh", "tests/fixtures/hf/bert_tiny");
    bf16->gelu_tanh = 0;
    static const char *dec[] = {"gpt2_tiny", "llama_tiny", "llama3_tiny", "qwen2_tiny", "mistral_tiny", "mistral_sw",
                                "qwen2_sw", "gpt2_hd64", "llama_hd128"};
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
