/* test_norms_gpu.c — the CUDA backend's norms against the CPU backend (the reference), as
 * test_backend_gpu.c does every other op: layernorm (post-norm, ± a float32 or bf16 residual, the
 * bf16 stream of a post-norm model), add_norm (the pre-norm residual step, LayerNorm and RMSNorm,
 * its bf16 copy and the rows' norms) and add_norm_stream (a pre-norm model's bf16 stream). Awkward
 * sizes (C = 37: the scalar kernels; C = 128·V: the registers kernels), one tolerance per
 * comparison with its reason, the max abs / rel error printed. Built without CUDA, or run without a
 * device: SKIP, exit 0. Exits non-zero on any failure. */
#include "backend.h"
#include "util.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#ifndef ATTNSCOPE_CUDA
int main(void)
{
    printf("test_norms_gpu: SKIP (built without CUDA)\n");
    return 0;
}
#else
#include "gpu_check.h"

/* with_res: the residual add fused in (out = LayerNorm(in + res), in place as the model calls it),
 * 1: a float32 residual, 2: a bfloat16 one (the bf16 path's attention and MLP outputs) */
static void test_layernorm(int M, int C, int in_place, int with_res)
{
    float *x = rand_vec((size_t)M * C, 2, 8), *w = rand_vec(C, 0.5f, 1.5f), *b = rand_vec(C, -1, 1);  /* mean ≠ 0 */
    float *r = with_res ? rand_vec((size_t)M * C, -3, 3) : NULL;
    if (with_res == 2)
        for (size_t i = 0; i < (size_t)M * C; i++) r[i] = bf16_round(r[i]);
    float *want = xmalloc((size_t)M * C * sizeof(float));
    cpu->layernorm(cpu, want, NULL, x, DT_F32, r, DT_F32, w, b, M, C, 1e-12f);
    float *d_x = to_dev(x, (size_t)M * C * 4), *d_w = to_dev(w, C * 4), *d_b = to_dev(b, C * 4);
    uint16_t *rb = with_res == 2 ? to_bf16_bits(r, (size_t)M * C) : NULL;
    void *d_r = !r ? NULL : rb ? to_dev(rb, (size_t)M * C * 2) : to_dev(r, (size_t)M * C * 4);
    float *d_out = in_place ? d_x : gpu->alloc(gpu, (size_t)M * C * 4);
    void *d_ob = gpu->alloc(gpu, (size_t)M * C * 2);
    gpu->layernorm(gpu, d_out, d_ob, d_x, DT_F32, d_r, rb ? DT_BF16 : DT_F32, d_w, d_b, M, C, 1e-12f);
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

/* A post-norm model's bf16 stream (model.c residual_step): the input and the residual bf16, the
 * output only as the bf16 copy, written over the input; with_f32: the float32 output too (the last
 * layer). Against the CPU on the same (bf16-exact) values: within one bf16 rounding. */
static void test_layernorm_bf16_stream(int M, int C, int with_f32)
{
    const size_t n = (size_t)M * C;
    float *x = rand_vec(n, 2, 8), *w = rand_vec(C, 0.5f, 1.5f), *b = rand_vec(C, -1, 1), *r = rand_vec(n, -3, 3);
    for (size_t i = 0; i < n; i++) { x[i] = bf16_round(x[i]); r[i] = bf16_round(r[i]); }
    float *want = xmalloc(n * sizeof(float));
    cpu->layernorm(cpu, want, NULL, x, DT_F32, r, DT_F32, w, b, M, C, 1e-12f);
    uint16_t *xb = to_bf16_bits(x, n), *rb = to_bf16_bits(r, n);
    void *d_xb = to_dev(xb, n * 2), *d_r = to_dev(rb, n * 2);
    float *d_w = to_dev(w, C * 4), *d_b = to_dev(b, C * 4), *d_out = with_f32 ? gpu->alloc(gpu, n * 4) : NULL;
    gpu->layernorm(gpu, d_out, d_xb, d_xb, DT_BF16, d_r, DT_BF16, d_w, d_b, M, C, 1e-12f);
    uint16_t *h = to_host(d_xb, n * 2);
    float *got = from_bf16_bits(h, n);
    char what[96];
    snprintf(what, sizeof what, "M=%d C=%d bf16 in + bf16 residual -> bf16 in place", M, C);
    report("layernorm", what, compare(got, want, n), 1.0 / 256, 1, "one bf16 rounding of the CPU's float");
    if (with_f32) {
        float *got32 = to_host(d_out, n * 4);
        snprintf(what, sizeof what, "M=%d C=%d bf16 in, the float32 output too", M, C);
        report("layernorm", what, compare(got32, want, n), 1e-5, 1, "float add, double statistics on both sides");
        free(got32);
        gpu->free(gpu, d_out);
    }
    gpu->free(gpu, d_xb); gpu->free(gpu, d_r); gpu->free(gpu, d_w); gpu->free(gpu, d_b);
    free(x); free(w); free(b); free(r); free(want); free(xb); free(rb); free(h); free(got);
}

/* add_norm_stream (a pre-norm model's bf16 stream under bf16): the stream s = bf16(x0) (start 1) or
 * bf16(s + res) (start 0) bit for bit against the host's rounding of the same float add, or with
 * neither (start 2: linear_add added the branch) s as it is; the norm of the rounded stream, its
 * bf16 copy and the rows' norms against the CPU's add_norm of those rounded values; with xn NULL
 * the same stream and copy. */
static void test_add_norm_stream(int M, int C, int rms, int bias, int start, int no_w)
{
    const size_t n = (size_t)M * C;
    float *x = rand_vec(n, 2, 8), *w = rand_vec(C, 0.5f, 1.5f), *b = rand_vec(C, -1, 1), *r = rand_vec(n, -3, 3);
    for (size_t i = 0; i < n; i++) {
        r[i] = bf16_round(r[i]);
        if (start != 1) x[i] = bf16_round(x[i]);       /* the stream before the step holds bf16 values */
    }
    float *sref = xmalloc(n * 4), *wn = xmalloc(n * 4), *cnorm = xmalloc((size_t)M * 4);
    for (size_t i = 0; i < n; i++) sref[i] = bf16_round(start ? x[i] : x[i] + r[i]);
    float *tmp = xmalloc(n * 4);
    memcpy(tmp, sref, n * 4);
    cpu->add_norm(cpu, tmp, wn, NULL, NULL, DT_F32, no_w ? NULL : w, bias ? b : NULL, M, C, 1e-6f, rms, cnorm);
    uint16_t *xbits = to_bf16_bits(x, n), *rbits = to_bf16_bits(r, n), *want_s = to_bf16_bits(sref, n);
    float *d_x0 = start == 1 ? to_dev(x, n * 4) : NULL, *d_w = to_dev(w, C * 4), *d_b = to_dev(b, C * 4);
    void *d_s = start == 1 ? gpu_bf16->alloc(gpu_bf16, n * 2) : to_dev(xbits, n * 2), *d_r = start ? NULL : to_dev(rbits, n * 2);
    void *d_nb = gpu_bf16->alloc(gpu_bf16, n * 2);
    float *d_n = gpu_bf16->alloc(gpu_bf16, n * 4), *d_norm = gpu_bf16->alloc(gpu_bf16, (size_t)M * 4);
    gpu_bf16->add_norm_stream(gpu_bf16, d_s, d_x0, d_nb, d_n, d_r, no_w ? NULL : d_w, bias ? d_b : NULL, M, C, 1e-6f, rms,
                              d_norm);
    uint16_t *gs = to_host(d_s, n * 2), *gb = to_host(d_nb, n * 2);
    float *gn = to_host(d_n, n * 4), *gnorm = to_host(d_norm, (size_t)M * 4);
    char what[128];
    snprintf(what, sizeof what, "%s M=%d C=%d%s%s", no_w ? "add only" : rms ? "rms" : "layer", M, C, bias ? " bias" : "",
             start == 1 ? " (start from float32)" : start ? " (the stream as it is)" : " + bf16 res");
    const int sdiff = memcmp(gs, want_s, n * 2) != 0;
    printf("%s add_norm_stream %s: the stream %s (tol 0: one float add, rounded to nearest even)\n",
           sdiff ? "FAIL" : "ok  ", what, sdiff ? "differs" : "bit-identical");
    failures += sdiff;
    report("add_norm_stream", what, compare(gn, wn, n), 1e-5, 1, "the norm of the rounded stream, double statistics");
    report("add_norm_stream", "norms of the stream", compare(gnorm, cnorm, M), 1e-6, 1, "double sums, order differs");
    uint16_t *want_b = to_bf16_bits(gn, n);
    const int bdiff = memcmp(gb, want_b, n * 2) != 0;
    printf("%s add_norm_stream   bf16 copy of xn: %s (tol 0)\n", bdiff ? "FAIL" : "ok  ", bdiff ? "differs" : "bit-identical");
    failures += bdiff;
    /* xn NULL (the copy alone, as the forward asks): the same stream and copy */
    void *d_s2 = start == 1 ? gpu_bf16->alloc(gpu_bf16, n * 2) : to_dev(xbits, n * 2), *d_nb2 = gpu_bf16->alloc(gpu_bf16, n * 2);
    gpu_bf16->add_norm_stream(gpu_bf16, d_s2, d_x0, d_nb2, NULL, d_r, no_w ? NULL : d_w, bias ? d_b : NULL, M, C, 1e-6f,
                              rms, NULL);
    uint16_t *gs2 = to_host(d_s2, n * 2), *gb2 = to_host(d_nb2, n * 2);
    const int d2 = memcmp(gs2, gs, n * 2) != 0 || memcmp(gb2, gb, n * 2) != 0;
    printf("%s add_norm_stream   xn NULL: stream and copy %s the xn run's (tol 0)\n", d2 ? "FAIL" : "ok  ",
           d2 ? "differ from" : "bit-identical to");
    failures += d2;
    free(x); free(w); free(b); free(r); free(sref); free(wn); free(cnorm); free(tmp); free(xbits); free(rbits);
    free(want_s); free(gs); free(gb); free(gn); free(gnorm); free(want_b); free(gs2); free(gb2);
    void *bufs[] = {d_x0, d_w, d_b, d_s, d_r, d_nb, d_n, d_norm, d_s2, d_nb2};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        if (bufs[i]) gpu_bf16->free(gpu_bf16, bufs[i]);
}

/* add_norm (the pre-norm residual step): the stream x (x + res) and the normed xn against the CPU,
 * LayerNorm or RMSNorm, with and without bias and residual, xn == x (post-norm) and w NULL (the add
 * alone). bf16: a bf16 residual and the bf16 copy of xn that the bf16 path's next GEMM reads. The
 * rows' norms after the add (the vision outputs' token norms) against the CPU's row_norms of its
 * stream, on both backends. */
static void test_add_norm(int M, int C, int rms, int bias, int with_res, int in_place, int no_w)
{
    const size_t n = (size_t)M * C;
    float *x = rand_vec(n, 2, 8), *w = rand_vec(C, 0.5f, 1.5f), *b = rand_vec(C, -1, 1);      /* mean ≠ 0 */
    float *r = with_res ? rand_vec(n, -3, 3) : NULL;
    if (with_res == 2)
        for (size_t i = 0; i < n; i++) r[i] = bf16_round(r[i]);
    float *wx = xmalloc(n * 4), *wn = in_place ? wx : xmalloc(n * 4);
    memcpy(wx, x, n * 4);
    float *wnorm = xmalloc((size_t)M * 4), *cnorm = xmalloc((size_t)M * 4);
    cpu->add_norm(cpu, wx, wn, NULL, r, DT_F32, no_w ? NULL : w, bias ? b : NULL, M, C, 1e-6f, rms, cnorm);
    float *cx = xmalloc(n * 4);   /* the stream after the add (wx is the norm's output when in place) */
    memcpy(cx, x, n * 4);
    if (r)
        for (size_t i = 0; i < n; i++) cx[i] += r[i];
    cpu->row_norms(cpu, wnorm, cx, M, C);
    float *d_x = to_dev(x, n * 4), *d_w = to_dev(w, C * 4), *d_b = to_dev(b, C * 4);
    uint16_t *rb = with_res == 2 ? to_bf16_bits(r, n) : NULL;
    void *d_r = !r ? NULL : rb ? to_dev(rb, n * 2) : to_dev(r, n * 4);
    float *d_n = in_place ? d_x : gpu->alloc(gpu, n * 4);
    void *d_nb = with_res == 2 ? gpu->alloc(gpu, n * 2) : NULL;
    backend *g = with_res == 2 ? gpu_bf16 : gpu;
    float *d_norm = gpu->alloc(gpu, (size_t)M * 4);
    g->add_norm(g, d_x, d_n, d_nb, d_r, with_res == 2 ? DT_BF16 : DT_F32, no_w ? NULL : d_w, bias ? d_b : NULL, M, C,
                1e-6f, rms, d_norm);
    float *gx = to_host(d_x, n * 4), *gn = to_host(d_n, n * 4), *gnorm = to_host(d_norm, (size_t)M * 4);
    char what[128];
    snprintf(what, sizeof what, "%s M=%d C=%d%s%s%s%s", no_w ? "add only" : rms ? "rms" : "layer", M, C,
             bias ? " bias" : "", with_res == 2 ? " + bf16 res" : r ? " + res" : "", in_place ? " xn=x" : "",
             d_nb ? " + bf16 copy" : "");
    const char *why = "float add, double statistics on both sides";
    if (!in_place) report("add_norm", what, compare(gx, wx, n), 0, 0, "  the stream x + res: one float add");
    report("add_norm", what, compare(gn, wn, n), 1e-5, 1, why);
    report("add_norm", "CPU norms vs row_norms", compare(cnorm, wnorm, M), 0, 0, "  the rows' norms: the same sums");
    report("add_norm", "GPU norms vs row_norms", compare(gnorm, wnorm, M), 1e-6, 1, "  the rows' norms: double sums, order differs");
    free(wnorm); free(cnorm); free(cx); free(gnorm);
    gpu->free(gpu, d_norm);
    if (d_nb) {
        uint16_t *ob = to_host(d_nb, n * 2), *want_b = to_bf16_bits(gn, n);
        const int bdiff = memcmp(ob, want_b, n * 2) != 0;
        printf("%s add_norm   bf16 copy of xn: %s (tol 0: the same floats, rounded to nearest even)\n",
               bdiff ? "FAIL" : "ok  ", bdiff ? "differs" : "bit-identical");
        failures += bdiff;
        /* xn NULL (the copy alone: a pre-norm model's float32 xn is never read under bf16): the
         * same stream and the same copy, bit for bit */
        if (!in_place) {
            float *d_x2 = to_dev(x, n * 4);
            void *d_nb2 = gpu->alloc(gpu, n * 2);
            g->add_norm(g, d_x2, NULL, d_nb2, d_r, DT_BF16, no_w ? NULL : d_w, bias ? d_b : NULL, M, C, 1e-6f, rms, NULL);
            float *gx2 = to_host(d_x2, n * 4);
            uint16_t *ob2 = to_host(d_nb2, n * 2);
            const int d2 = memcmp(gx2, gx, n * 4) != 0 || memcmp(ob2, ob, n * 2) != 0;
            printf("%s add_norm   xn NULL, the bf16 copy alone: stream and copy %s the xn run's (tol 0)\n",
                   d2 ? "FAIL" : "ok  ", d2 ? "differ from" : "bit-identical to");
            failures += d2;
            free(gx2); free(ob2);
            gpu->free(gpu, d_x2); gpu->free(gpu, d_nb2);
        }
        free(ob); free(want_b);
        gpu->free(gpu, d_nb);
    }
    if (!in_place) { gpu->free(gpu, d_n); free(wn); }
    if (d_r) gpu->free(gpu, d_r);
    gpu->free(gpu, d_x); gpu->free(gpu, d_w); gpu->free(gpu, d_b);
    free(x); free(r); free(rb); free(w); free(b); free(wx); free(gx); free(gn);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);        /* lines reach the log even if something crashes */
    gpu = backend_init("cuda", 0);
    if (!gpu) {
        printf("test_norms_gpu: SKIP (%s)\n", err_get());
        return 0;
    }
    gpu_bf16 = backend_init("cuda", 2);
    cpu = backend_init("cpu", 0);
    test_layernorm(130, 37, 0, 0);
    test_layernorm(3, 768, 1, 0);
    test_layernorm(130, 37, 0, 1);
    test_layernorm(257, 768, 1, 1);
    test_layernorm(130, 37, 0, 2);
    test_layernorm(257, 768, 1, 2);
    test_layernorm_bf16_stream(130, 37, 0);
    test_layernorm_bf16_stream(257, 768, 0);
    test_layernorm_bf16_stream(257, 768, 1);
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
    /* the bf16 stream: odd C (scalar kernel), C = 128·V (registers), 2048 (V = 16), its start */
    for (int rms = 0; rms < 2; rms++) {
        test_add_norm_stream(130, 37, rms, 1, 0, 0);
        test_add_norm_stream(257, 768, rms, 1, 0, 0);
        test_add_norm_stream(257, 768, rms, 0, 1, 0);
        test_add_norm_stream(65, 2048, rms, 1, 0, 0);
        test_add_norm_stream(33, 5120, rms, 1, 0, 0);
        test_add_norm_stream(257, 768, rms, 1, 2, 0);       /* the norm alone (linear_add's step) */
        test_add_norm_stream(130, 37, rms, 0, 2, 0);
    }
    test_add_norm_stream(130, 37, 0, 0, 1, 1);
    test_add_norm_stream(257, 768, 0, 0, 0, 1);
    test_add_norm(130, 37, 0, 0, 1, 0, 1);                 /* w NULL: the add alone */
    test_add_norm(257, 768, 0, 0, 1, 0, 1);
    test_add_norm(257, 768, 0, 0, 1, 1, 1);

    backend_free(cpu);
    backend_free(gpu_bf16);
    backend_free(gpu);
    printf("test_norms_gpu: %d failure(s)\n", failures);
    return failures ? 1 : 0;
}
#endif
