/* test_vision_gpu.c — the vision ops of the CUDA backend (kernels/vision.cu) against the CPU
 * backend, whose ops are vstats.c itself (checked against NumPy from the definitions by
 * test_vision.py): vision_stats (distance in pixels, 3 × 3 locality, the [CLS] row), rollout_step
 * (head fusion mean/max/min, vit-explain's discard with tied values, chained over layers) and
 * row_norms, the patch stem's patch_rows and the CNN ops (conv_rows, maxpool, add_relu). Grids: ViT's square one with [CLS], DeiT's two prefix tokens on a non-square grid.
 *
 * Built without CUDA, or run without a device: SKIP, exit 0. Exits non-zero on any failure. */
#include "backend.h"
#include "util.h"
#include "vstats.h"
#include <stdio.h>

#ifndef ATTNSCOPE_CUDA
int main(void)
{
    printf("test_vision_gpu: SKIP (built without CUDA)\n");
    return 0;
}
#else
#include "gpu_check.h"

/* (B, NH, T, T) rows that sum to 1; levels > 0: values from that many levels only (tied entries) */
static float *rand_probs(int B, int NH, int T, int levels)
{
    const size_t rows = (size_t)B * NH * T;
    float *P = xmalloc(rows * T * sizeof(float));
    for (size_t r = 0; r < rows; r++) {
        float *p = P + r * T;
        double s = 0;
        for (int j = 0; j < T; j++) {
            p[j] = levels ? (float)(1 + (int)(rnd() * levels)) : (float)exp(4 * rnd());
            s += p[j];
        }
        for (int j = 0; j < T; j++) p[j] = levels ? p[j] / 64.0f : (float)(p[j] / s);   /* ties survive: powers of 2 */
    }
    return P;
}

static void test_stats(const char *what, int B, int NH, const vgrid *g)
{
    const int np = g->gh * g->gw, T = g->n_prefix + np;
    const size_t heads = (size_t)B * NH;
    float *P = rand_probs(B, NH, T, 0), *d_P = to_dev(P, heads * T * T * sizeof(float));
    float *d1 = xmalloc(heads * 4), *d2 = xmalloc(heads * 4), *l1 = xmalloc(heads * 4), *l2 = xmalloc(heads * 4);
    float *c1 = xmalloc(heads * np * 4), *c2 = xmalloc(heads * np * 4);
    cpu->vision_stats(cpu, P, B, NH, T, g, d1, l1, c1);
    gpu->vision_stats(gpu, d_P, B, NH, T, g, d2, l2, c2);
    char w[160];
    snprintf(w, sizeof w, "%s distance_px", what);
    report("vision", w, compare(d2, d1, heads), 1e-6, 1, "float products, double sums, order differs");
    snprintf(w, sizeof w, "%s locality2d", what);
    report("vision", w, compare(l2, l1, heads), 1e-6, 0, "float row parts, double sums");
    snprintf(w, sizeof w, "%s cls row", what);
    report("vision", w, compare(c2, c1, heads * np), 0, 0, "a copy");
    gpu->free(gpu, d_P);
    free(P); free(d1); free(d2); free(l1); free(l2); free(c1); free(c2);
}

/* layers steps of the rollout from the identity, CPU and GPU side by side; ready: each step's map
 * given as Â (one map an image, made by vstats_rollout_norm as the fused kernel's vis->roll
 * gives it), the product alone */
static void test_rollout(const char *what, int B, int NH, int T, int layers, int fusion, double discard, int levels,
                         int ready)
{
    if (ready) NH = 1;
    const size_t TT = (size_t)T * T, n = (size_t)B * TT;
    float *R1 = xmalloc(n * 4), *R1b = xmalloc(n * 4);
    float *d_R[2] = {gpu->alloc(gpu, n * 4), gpu->alloc(gpu, n * 4)};
    int cur = 0;
    for (int l = 0; l < layers; l++) {
        float *P = rand_probs(B, NH, T, levels);
        if (ready)
            for (int b = 0; b < B; b++) vstats_rollout_norm(P + b * TT, T);
        float *d_P = to_dev(P, (size_t)B * NH * TT * 4);
        cpu->rollout_step(cpu, R1b, l ? R1 : NULL, P, B, NH, T, fusion, discard, ready);
        memcpy(R1, R1b, n * 4);
        gpu->rollout_step(gpu, d_R[!cur], l ? d_R[cur] : NULL, d_P, B, NH, T, fusion, discard, ready);
        cur = !cur;
        gpu->free(gpu, d_P);
        free(P);
    }
    float *R2 = to_host(d_R[cur], n * 4);
    char w[160];
    snprintf(w, sizeof w, "%s B=%d NH=%d T=%d layers=%d fusion=%d discard=%.2f%s%s", what, B, NH, T, layers, fusion,
             discard, levels ? " tied" : "", ready ? " (maps given as Â)" : "");
    report("rollout", w, compare(R2, R1, n), 2e-6, 0, "fp32 GEMM against double sums");
    size_t zeros1 = 0, zeros2 = 0;
    for (size_t i = 0; i < n; i++) { zeros1 += R1[i] == 0; zeros2 += R2[i] == 0; }
    if (zeros1 != zeros2) {
        printf("FAIL rollout   %s: %zu zero entries on the CPU, %zu on the GPU\n", w, zeros1, zeros2);
        failures++;
    }
    gpu->free(gpu, d_R[0]);
    gpu->free(gpu, d_R[1]);
    free(R1); free(R1b); free(R2);
}

static void test_norms(size_t M, int C)
{
    float *x = rand_vec(M * C, -3, 3), *d_x = to_dev(x, M * C * 4);
    float *o1 = xmalloc(M * 4), *o2 = xmalloc(M * 4), *d_o = gpu->alloc(gpu, M * 4);
    cpu->row_norms(cpu, o1, x, M, C);
    gpu->row_norms(gpu, d_o, d_x, M, C);
    gpu->download(gpu, o2, d_o, M * 4);
    gpu->free(gpu, d_o);
    char w[64];
    snprintf(w, sizeof w, "M=%zu C=%d", M, C);
    report("row_norms", w, compare(o2, o1, M), 1e-6, 1, "double sums, order differs");
    gpu->free(gpu, d_x);
    free(x); free(o1); free(o2);
}

/* the patch stem's im2col: a copy, bit for bit; float4 runs (P, W multiples of 4) and single floats */
static void test_patch(int B, int ch, int H, int W, int P)
{
    const size_t npx = (size_t)B * ch * H * W, nrow = (size_t)B * (H / P) * (W / P) * ch * P * P;
    float *px = rand_vec(npx, -2, 2), *d_px = to_dev(px, npx * 4), *r1 = xmalloc(nrow * 4);
    float *d_r = gpu->alloc(gpu, nrow * 4);
    cpu->patch_rows(cpu, r1, px, NULL, B, ch, H, W, P);
    gpu->patch_rows(gpu, d_r, d_px, NULL, B, ch, H, W, P);
    float *r2 = to_host(d_r, nrow * 4);
    char w[64];
    snprintf(w, sizeof w, "B=%d ch=%d %dx%d P=%d", B, ch, H, W, P);
    report("patch_rows", w, compare(r2, r1, nrow), 0, 0, "a copy");
    /* 8-bit pixels through a table (the processor's rescale and normalize): a gather, bit for bit */
    unsigned char *u = xmalloc(npx);
    for (size_t i = 0; i < npx; i++) u[i] = (unsigned char)(rand() & 255);
    float *lut = rand_vec((size_t)ch * 256, -3, 3), *d_lut = to_dev(lut, (size_t)ch * 256 * 4);
    unsigned char *d_u = to_dev(u, npx);
    cpu->patch_rows(cpu, r1, u, lut, B, ch, H, W, P);
    gpu->patch_rows(gpu, d_r, d_u, d_lut, B, ch, H, W, P);
    float *r3 = to_host(d_r, nrow * 4);
    report("patch_rows 8-bit", w, compare(r3, r1, nrow), 0, 0, "a table lookup");
    gpu->free(gpu, d_u); gpu->free(gpu, d_lut);
    free(u); free(lut); free(r3);
    gpu->free(gpu, d_px);
    gpu->free(gpu, d_r);
    free(px); free(r1); free(r2);
}

/* the CNN ops (ResNet): im2col rows, max pool, residual add + ReLU — copies, comparisons and one
 * float add: bit for bit */
static void test_cnn_ops(int B, int H, int W, int C, int k, int stride, int pad)
{
    const int OH = (H + 2 * pad - k) / stride + 1, OW = (W + 2 * pad - k) / stride + 1;
    const size_t nx = (size_t)B * H * W * C, nr = (size_t)B * OH * OW * C * k * k;
    float *x = rand_vec(nx, -2, 2), *d_x = to_dev(x, nx * 4), *r1 = xmalloc(nr * 4), *d_r = gpu->alloc(gpu, nr * 4);
    cpu->conv_rows(cpu, r1, x, B, H, W, C, k, stride, pad);
    gpu->conv_rows(gpu, d_r, d_x, B, H, W, C, k, stride, pad);
    float *r2 = to_host(d_r, nr * 4);
    char w[96];
    snprintf(w, sizeof w, "B=%d %dx%dx%d k=%d s=%d p=%d", B, H, W, C, k, stride, pad);
    report("conv_rows", w, compare(r2, r1, nr), 0, 0, "a copy");
    const size_t np = (size_t)B * ((H - 1) / 2 + 1) * ((W - 1) / 2 + 1) * C;
    float *p1 = xmalloc(np * 4), *d_p = gpu->alloc(gpu, np * 4);
    cpu->maxpool(cpu, p1, x, B, H, W, C);
    gpu->maxpool(gpu, d_p, d_x, B, H, W, C);
    float *p2 = to_host(d_p, np * 4);
    snprintf(w, sizeof w, "B=%d %dx%dx%d", B, H, W, C);
    report("maxpool", w, compare(p2, p1, np), 0, 0, "comparisons");
    float *a = rand_vec(nx, -2, 2), *d_a = to_dev(a, nx * 4);
    cpu->add_relu(cpu, x, a, nx);
    gpu->add_relu(gpu, d_x, d_a, nx);
    float *y2 = to_host(d_x, nx * 4);
    report("add_relu", w, compare(y2, x, nx), 0, 0, "one float add");
    /* channel statistics of the ReLU'd map (channel 0 of image 0 all zero: NaN entropy on both) */
    for (int p = 0; p < H * W; p++) x[(size_t)p * C] = 0.0f;
    gpu->upload(gpu, d_x, x, nx * 4);
    const size_t bc = (size_t)B * C;
    float *s1 = xmalloc(3 * bc * 4), *s2 = xmalloc(3 * bc * 4);
    cpu->channel_stats(cpu, x, B, H * W, C, s1, s1 + bc, s1 + 2 * bc);
    gpu->channel_stats(gpu, d_x, B, H * W, C, s2, s2 + bc, s2 + 2 * bc);
    const int nan_ok = isnan(s1[2 * bc]) && isnan(s2[2 * bc]);
    s1[2 * bc] = s2[2 * bc] = 0;
    report("chan_stats", w, compare(s2, s1, 3 * bc), 1e-6, 1, "double sums; the entropy in one pass on the GPU");
    printf("%s chan_stats an all-zero channel: entropy NaN on both sides\n", nan_ok ? "ok  " : "FAIL");
    failures += !nan_ok;
    free(s1); free(s2);
    gpu->free(gpu, d_x); gpu->free(gpu, d_r); gpu->free(gpu, d_p); gpu->free(gpu, d_a);
    free(x); free(r1); free(r2); free(p1); free(p2); free(a); free(y2);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    gpu = backend_init("cuda", 0);
    if (!gpu) {
        printf("test_vision_gpu: SKIP (%s)\n", err_get());
        return 0;
    }
    cpu = backend_init("cpu", 0);
    const vgrid vit = {1, 14, 14, 16}, deit = {2, 5, 7, 16}, one = {1, 1, 1, 32};
    test_stats("ViT 14x14 [CLS]", 3, 12, &vit);
    test_stats("DeiT 5x7 two prefix", 2, 3, &deit);
    test_stats("one patch", 2, 2, &one);
    for (int fusion = 0; fusion < 3; fusion++) {
        test_rollout("ViT", 3, 12, 197, 1, fusion, 0.0, 0, 0);
        test_rollout("ViT", 3, 12, 197, 4, fusion, 0.0, 0, 0);
        test_rollout("ViT", 2, 4, 197, 3, fusion, 0.9, 0, 0);
        test_rollout("DeiT", 2, 3, 37, 3, fusion, 0.5, 4, 0);   /* many tied values at the threshold */
    }
    test_rollout("small", 2, 2, 5, 2, 1, 1.0, 2, 0);              /* every entry but [CLS]'s own discarded */
    test_rollout("ViT", 3, 12, 197, 1, 0, 0.0, 0, 1);          /* the maps as Â: the first layer's copy */
    test_rollout("ViT", 3, 12, 197, 4, 0, 0.0, 0, 1);
    test_rollout("DeiT", 2, 3, 37, 3, 0, 0.0, 4, 1);
    test_patch(3, 3, 224, 224, 16);
    test_patch(2, 3, 48, 40, 8);
    test_patch(2, 1, 31, 22, 5);     /* remainders ignored, single floats */
    test_cnn_ops(2, 32, 30, 3, 7, 2, 3);     /* ResNet's stem */
    test_cnn_ops(2, 15, 17, 16, 3, 1, 1);
    test_cnn_ops(3, 9, 8, 24, 3, 2, 1);
    test_cnn_ops(2, 9, 9, 8, 1, 2, 0);      /* a downsampling shortcut */
    test_norms(64 * 197, 768);
    test_norms(3, 5);
    backend_free(cpu);
    backend_free(gpu);
    printf("test_vision_gpu: %d failure(s)\n", failures);
    return failures ? 1 : 0;
}
#endif
