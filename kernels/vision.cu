// vision.cu — the vision statistics of vstats.h where the probabilities are, so that a vision run
// copies only its small results to the host: per head the mean attention distance in pixels, the
// 2-D locality and the [CLS] row; the attention rollout's fused, discarded and renormalised map Â
// of each image (the product R <- Â·R is a cuBLAS strided-batched GEMM in backend_cuda.c); the L2
// norm of every token's hidden state. Sums in double, as vstats.c; the per-element products in
// float, so the two agree to ~1e-7 relative.
#include "kernels.h"
#include "kernel_util.cuh"

// one block per head (b, h): warps over the patch query rows, lanes over the patch keys; the keys'
// grid coordinates in shared memory (no division per element; grids up to VIS_MAX_PATCHES patches,
// larger ones compute them per element)
#define VIS_MAX_PATCHES 4096
__global__ static void vision_stats_kernel(const float *probs, int T, int npre, int gh, int gw, int patch,
                                           float *dist, float *loc, float *cls)
{
    const size_t head = blockIdx.x;
    const float *P = probs + head * T * T;
    const int np = gh * gw, lane = threadIdx.x % 32, w = threadIdx.x / 32, nw = blockDim.x / 32;
    __shared__ short ys[VIS_MAX_PATCHES], xs[VIS_MAX_PATCHES];
    const int table = np <= VIS_MAX_PATCHES;
    if (table)
        for (int q = threadIdx.x; q < np; q += blockDim.x) { ys[q] = (short)(q / gw); xs[q] = (short)(q % gw); }
    __syncthreads();
    double sd = 0, sl = 0;
    for (int qi = w; qi < np; qi += nw) {
        const float *row = P + (size_t)(npre + qi) * T + npre;
        const int yi = qi / gw, xi = qi % gw;
        float rd = 0, rl = 0;                     // this lane's part of the row (<= np/32 terms)
        for (int qj = lane; qj < np; qj += 32) {
            const int dy = yi - (table ? ys[qj] : qj / gw), dx = xi - (table ? xs[qj] : qj % gw);
            const float p = row[qj];
            rd += p * sqrtf((float)(dx * dx + dy * dy));
            rl += (abs(dy) <= 1 && abs(dx) <= 1) ? p : 0.0f;
        }
        sd += rd;
        sl += rl;
    }
    for (int q = threadIdx.x; q < np; q += blockDim.x) cls[head * np + q] = P[npre + q];
    __shared__ double rs[32], rl[32];
    sd = warp_sum(sd);
    sl = warp_sum(sl);
    if (lane == 0) { rs[w] = sd; rl[w] = sl; }
    __syncthreads();
    if (threadIdx.x == 0) {
        double td = 0, tl = 0;
        for (int k = 0; k < nw; k++) { td += rs[k]; tl += rl[k]; }
        dist[head] = np ? (float)(td * patch / np) : 0.0f;
        loc[head] = np ? (float)(tl / np) : 0.0f;
    }
}

extern "C" void cuda_vision_stats(const float *probs, int B, int NH, int T, int n_prefix, int gh, int gw, int patch,
                                  float *dist, float *loc, float *cls)
{
    vision_stats_kernel<<<(unsigned)(B * NH), 512>>>(probs, T, n_prefix, gh, gw, patch, dist, loc, cls);
    KERNEL_CHECK("vision_stats_kernel");
}

// A (B, T, T) = the heads of probs (B, NH, T, T) fused elementwise: mean, max or min
__global__ static void rollout_fuse_kernel(float *A, const float *probs, int B, int NH, size_t TT, int fusion)
{
    const size_t n = (size_t)B * TT;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
        const size_t b = e / TT, i = e % TT;
        const float *p = probs + b * NH * TT + i;
        double acc = p[0];                          // in double, in vstats.c's order: the same floats
        for (int h = 1; h < NH; h++) {
            const double v = p[h * TT];
            acc = fusion == 0 ? acc + v : fusion == 1 ? fmax(acc, v) : fmin(acc, v);
        }
        A[e] = (float)(fusion == 0 ? acc / NH : acc);
    }
}

// float bits -> unsigned with the same order (negative values reversed below the positive ones)
__device__ static inline unsigned ordered(float x)
{
    const unsigned u = __float_as_uint(x);
    return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}

// vit-explain's discard: one block per image sets the k smallest entries of its map (ascending by
// value, ties by index, as vstats.c's sort) to 0, all but entry 0 (the [CLS] row's own). A radix
// select finds the k-th smallest key in four passes of 8 bits; the entries below it go, and of
// those equal to it the first by index until k are gone.
#define DISCARD_THREADS 1024
__global__ static void __launch_bounds__(DISCARD_THREADS) rollout_discard_kernel(float *A, size_t TT, size_t k)
{
    float *a = A + blockIdx.x * TT;
    __shared__ unsigned hist[256];
    __shared__ unsigned prefix_s, want_s;
    __shared__ unsigned counts[DISCARD_THREADS];
    unsigned prefix = 0, mask = 0;
    size_t want = k;                                // rank (1-based) of the sought key among those matching prefix
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int i = threadIdx.x; i < 256; i += blockDim.x) hist[i] = 0;
        __syncthreads();
        for (size_t e = threadIdx.x; e < TT; e += blockDim.x) {
            const unsigned u = ordered(a[e]);
            if ((u & mask) == prefix) atomicAdd(&hist[(u >> shift) & 255u], 1u);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            size_t acc = 0;
            int d = 0;
            while (d < 255 && acc + hist[d] < want) acc += hist[d++];
            prefix_s = prefix | (unsigned)d << shift;
            want_s = (unsigned)(want - acc);
        }
        __syncthreads();
        prefix = prefix_s;
        want = want_s;
        mask |= 255u << shift;
        __syncthreads();
    }
    // prefix: the k-th smallest key; want: how many of the entries equal to it are among the k
    const size_t chunk = (TT + blockDim.x - 1) / blockDim.x, lo = threadIdx.x * chunk;
    const size_t hi = lo + chunk < TT ? lo + chunk : TT;
    unsigned eq = 0;
    for (size_t e = lo; e < hi; e++) eq += ordered(a[e]) == prefix;
    counts[threadIdx.x] = eq;
    __syncthreads();
    if (threadIdx.x == 0) {                          // exclusive prefix sum, in index order
        unsigned run = 0;
        for (int t = 0; t < (int)blockDim.x; t++) { const unsigned c = counts[t]; counts[t] = run; run += c; }
    }
    __syncthreads();
    unsigned seen = counts[threadIdx.x];
    for (size_t e = lo; e < hi; e++) {
        const unsigned u = ordered(a[e]);
        const int go = u < prefix || (u == prefix && seen++ < want);
        if (go && e != 0) a[e] = 0.0f;
    }
}

// Â = (A + I)/2 with rows renormalised, one warp per row (b, i), from src into A (src may be A);
// a row summing to 0 stays 0. The diagonal's A + 1 is rounded to float first, as vstats.c's.
// (It was a block of 128 threads a row, reduced through shared memory: 26.8 µs a layer of 128
// ViT-B images on an H200 against 17.9 µs now, the same bits: BENCHMARKS.md run 36.)
#define NORM_ROWS 8                              // rows (warps) a block
__global__ static void __launch_bounds__(32 * NORM_ROWS) rollout_norm_kernel(float *A, const float *src, size_t rows, int T)
{
    const size_t r = (size_t)blockIdx.x * NORM_ROWS + threadIdx.x / 32;
    if (r >= rows) return;
    float *a = A + r * T;
    const float *x = src + r * T;
    const int i = (int)(r % T), lane = threadIdx.x % 32;
    double s = 0;
    for (int j = lane; j < T; j += 32) s += 0.5 * (double)(j == i ? x[j] + 1.0f : x[j]);
    const double tot = warp_sum(s), rt = tot > 0 ? 0.5 / tot : 0.0;   // (one division a row)
    for (int j = lane; j < T; j += 32) a[j] = (float)((double)(j == i ? x[j] + 1.0f : x[j]) * rt);
}

extern "C" void cuda_rollout_map(float *A, const float *probs, int B, int NH, int T, int fusion, size_t discard_k)
{
    const size_t TT = (size_t)T * T;
    const float *src = probs;                   // one head (the fused path's map) and no discard: read as it is
    if (NH > 1 || discard_k > 0) {
        rollout_fuse_kernel<<<kernel_blocks((size_t)B * TT, 256), 256>>>(A, probs, B, NH, TT, fusion);
        KERNEL_CHECK("rollout_fuse_kernel");
        src = A;
    }
    if (discard_k > 0) {
        rollout_discard_kernel<<<(unsigned)B, DISCARD_THREADS>>>(A, TT, discard_k < TT ? discard_k : TT);
        KERNEL_CHECK("rollout_discard_kernel");
    }
    const size_t rows = (size_t)B * T;
    rollout_norm_kernel<<<(unsigned)((rows + NORM_ROWS - 1) / NORM_ROWS), 32 * NORM_ROWS>>>(A, src, rows, T);
    KERNEL_CHECK("rollout_norm_kernel");
}

// one warp per row
__global__ static void row_norms_kernel(float *out, const float *x, size_t M, int C)
{
    const size_t r = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32;
    if (r >= M) return;
    const float *v = x + r * C;
    double s = 0;
    for (int k = threadIdx.x % 32; k < C; k += 32) s += (double)v[k] * v[k];
    s = warp_sum(s);
    if (threadIdx.x % 32 == 0) out[r] = (float)sqrt(s);
}

extern "C" void cuda_row_norms(float *out, const float *x, size_t M, int C)
{
    row_norms_kernel<<<(unsigned)((M * 32 + 255) / 256), 256>>>(out, x, M, C);
    KERNEL_CHECK("row_norms_kernel");
}
