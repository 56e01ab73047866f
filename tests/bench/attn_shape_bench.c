/* attn_shape_bench.c — one layer's fused attention (cuda_attn_fused_bf16) alone, with the vision
 * outputs by the second pass over the scores, and with them from the kept fp16 probabilities
 * (attn_vis.kept: the bf16 default), on random bf16 q | k | v, at several token counts of the same model width: what a
 * token count that is no multiple of the 64-row tiles costs (ViT-B/16 at 224: T = 197 = 3·64 + 5;
 * CLIP ViT-B/16: 257 = 4·64 + 1). Per shape: µs a call (CUDA events over 50 calls after 5), and µs
 * per million (query, key) pairs of the B·NH heads; the kept path's largest difference from the
 * second pass's vision outputs (relative to each output's largest value).
 * Built here against a CUDA build's kernel object, run on the GPU host:
 *   gcc -O2 -std=c11 -Isrc -Ikernels -I/usr/local/cuda/include tests/bench/attn_shape_bench.c \
 *       BUILD/obj/cu_attn_fused.o -L/usr/local/cuda/lib64 -lcudart -lstdc++ -lm -o attn_shape_bench
 *   ./attn_shape_bench [B [n_prefix:gh:gw ...]]
 * Shapes: T = n_prefix + gh·gw (n_prefix 1: a [CLS] token). */
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "kernels.h"

#define CK(x) do { cudaError_t e_ = (x); if (e_) { fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); exit(1); } } while (0)

void check_fail(const char *file, int line, const char *call, const char *msg)
{
    fprintf(stderr, "%s:%d: %s: %s\n", file, line, call, msg);
    exit(1);
}

/* FNV-1a of a device buffer's bytes: two binaries' outputs compared bit for bit */
static uint64_t fnv(const void *d, size_t bytes)
{
    unsigned char *h = malloc(bytes);
    if (!h || cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost)) { fprintf(stderr, "fnv: copy failed\n"); exit(1); }
    uint64_t x = 1469598103934665603ull;
    for (size_t i = 0; i < bytes; i++) x = (x ^ h[i]) * 1099511628211ull;
    free(h);
    return x;
}

static uint16_t bf16_of(float f)
{
    union { float f; uint32_t u; } v = {f};
    return (uint16_t)((v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16);
}

int main(int argc, char **argv)
{
    const int B = argc > 1 ? atoi(argv[1]) : 128, NH = 12, HS = 64, C = NH * HS, ld = 3 * C;
    int shapes[32][3] = {{1, 14, 14}, {0, 12, 16}, {1, 12, 16}, {0, 16, 16}, {1, 16, 16}, {2, 14, 14}, {1, 7, 7}, {1, 24, 24}};
    int nshape = 8;
    if (argc > 2) nshape = 0;   /* shapes as n_prefix:gh:gw */
    for (int a = 2; a < argc && nshape < 32; a++)
        if (sscanf(argv[a], "%d:%d:%d", &shapes[nshape][0], &shapes[nshape][1], &shapes[nshape][2]) == 3) nshape++;
    int Tmax = 0;
    for (int s = 0; s < nshape; s++) {
        const int T = shapes[s][0] + shapes[s][1] * shapes[s][2];
        if (T > Tmax) Tmax = T;
    }
    const size_t nqkv = (size_t)B * Tmax * ld;
    uint16_t *h = malloc(nqkv * 2);
    srand(1);
    for (size_t i = 0; i < nqkv; i++) h[i] = bf16_of(((float)rand() / RAND_MAX - 0.5f) * 4.0f);
    void *qkv, *out, *scratch;
    float *stats, *vis;
    int *len;
    CK(cudaMalloc(&qkv, nqkv * 2));
    CK(cudaMemcpy(qkv, h, nqkv * 2, cudaMemcpyHostToDevice));
    CK(cudaMalloc(&out, (size_t)B * Tmax * C * 2));
    CK(cudaMalloc((void **)&stats, (size_t)B * NH * 64 * sizeof(float)));
    const size_t nvis = (size_t)B * NH * (2 + Tmax) + (size_t)B * Tmax * Tmax;
    CK(cudaMalloc((void **)&vis, nvis * sizeof(float)));
    const size_t nscr = cuda_attn_fused_scratch(B, NH, Tmax, 1);
    CK(cudaMalloc(&scratch, nscr));
    CK(cudaMemset(scratch, 0, nscr));
    CK(cudaMalloc((void **)&len, B * sizeof(int)));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    printf("B = %d, %d heads of %d, bf16; µs a call (50 calls), µs per 1e6 (query, key) pairs of the B·NH heads\n", B, NH, HS);
    printf("%5s %9s  %10s %8s  %10s %8s  %10s  %10s %10s  %9s %9s  %s\n", "T", "grid", "fused", "/Mpair", "+vision",
           "/Mpair", "vision", "+kept", "kept", "rel diff", "(map)", "FNV-1a of out | stats | vision outputs (second pass)");
    for (int s = 0; s < nshape; s++) {
        const int npre = shapes[s][0], gh = shapes[s][1], gw = shapes[s][2], T = npre + gh * gw;
        int *hl = malloc(B * sizeof(int));
        for (int b = 0; b < B; b++) hl[b] = T;
        CK(cudaMemcpy(len, hl, B * sizeof(int), cudaMemcpyHostToDevice));
        free(hl);
        const attn_vis vs = {npre, gh, gw, 16, 0, vis, vis + B * NH, vis + 2 * B * NH, vis + (size_t)B * NH * (2 + gh * gw), 0};
        attn_vis vk = vs;
        vk.kept = 1;
        const attn_tokens tv = {0, NULL, NULL, NULL, &vs}, tk = {0, NULL, NULL, NULL, &vk};
        double us[3];
        uint64_t hs[3] = {0, 0, 0};
        const size_t nv = (size_t)B * NH * (2 + gh * gw) + (size_t)B * T * T, nmap = (size_t)B * T * T;
        float *hv[2] = {malloc(nv * sizeof(float)), malloc(nv * sizeof(float))};
        for (int withvis = 0; withvis < 3; withvis++) {
            const attn_tokens *tok = withvis == 2 ? &tk : withvis ? &tv : NULL;
            for (int it = 0; it < 55; it++) {
                if (it == 5) CK(cudaEventRecord(e0, 0));
                cuda_attn_fused_bf16(out, C, qkv, (char *)qkv + C * 2, (char *)qkv + 2 * C * 2, ld, len, NULL, B, NH, NH, T, HS,
                                     0, 0, 1, stats, tok, scratch);
            }
            CK(cudaEventRecord(e1, 0));
            CK(cudaEventSynchronize(e1));
            CK(cudaGetLastError());
            float ms = 0;
            CK(cudaEventElapsedTime(&ms, e0, e1));
            us[withvis] = ms * 1000.0 / 50;
            if (withvis == 1) {
                hs[0] = fnv(out, (size_t)B * T * C * 2);
                hs[1] = fnv(stats, (size_t)B * NH * STAT_N * sizeof(float));
                hs[2] = fnv(vis, nv * sizeof(float));
            }
            if (withvis) CK(cudaMemcpy(hv[withvis - 1], vis, nv * sizeof(float), cudaMemcpyDeviceToHost));
        }
        /* the kept outputs against the second pass's: the largest |difference| over the largest
         * |value|, over the per-head means and [CLS] rows, and over the map */
        double dmax[2] = {0, 0}, vmax[2] = {0, 0};
        for (size_t i = 0; i < nv; i++) {
            const int m = i >= nv - nmap;
            const double d = fabs((double)hv[1][i] - hv[0][i]);
            if (!(d <= dmax[m])) dmax[m] = d;
            if (fabs(hv[0][i]) > vmax[m]) vmax[m] = fabs(hv[0][i]);
        }
        free(hv[0]);
        free(hv[1]);
        const double mpair = (double)B * NH * T * T / 1e6;
        char grid[16];
        snprintf(grid, sizeof grid, "%d+%dx%d", npre, gh, gw);
        printf("%5d %9s  %10.1f %8.3f  %10.1f %8.3f  %10.1f  %10.1f %10.1f  %9.2e %9.2e  %016llx %016llx %016llx\n", T, grid,
               us[0], us[0] / mpair, us[1], us[1] / mpair, us[1] - us[0], us[2], us[2] - us[0], dmax[0] / (vmax[0] > 0 ? vmax[0] : 1),
               dmax[1] / (vmax[1] > 0 ? vmax[1] : 1), (unsigned long long)hs[0], (unsigned long long)hs[1],
               (unsigned long long)hs[2]);
    }
    return 0;
}
