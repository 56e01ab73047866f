// attn_stats.cu — every per-head statistic of stats_head() (stats.h) computed from the attention
// probabilities where they are, so that only (B, NH, STAT_N) scalars, key importances and top-k
// lists cross the bus.
//
// Design: one block of 8 warps per (sample b, head h, tile of AS_TILE query rows), so that a
// batch of few long sequences still fills the GPU (B·NH·T/AS_TILE blocks), then a finalize
// kernel per (b, h). Partial sums go through a small double scratch, summed in a fixed order:
// the result is deterministic.
//  * Rows: warp w takes rows w, w+8, ... of its tile; its 32 lanes read row i coalesced. Every
//    row statistic is a sum of per-key terms (entropy_norm's 1/ln|K_i| is a per-row factor), so
//    each lane adds its keys' terms over all of the warp's rows in double (p ln p itself in float:
//    logf has ~1 ulp) and the warp reduces once at the end. The warps' and then the tiles' sums
//    are added in a fixed order: deterministic, and different from the CPU's sequential double
//    sums only by the order of double additions before the rounding to float.
//  * Top-k per row: each lane keeps its keys' k best (value descending, ties to the lower
//    index, by the same rule as stats_head) in a list of compile-time size (4, 16 or 64, the
//    smallest that holds k; unrolled, so it stays in registers), then k rounds of a warp arg-max
//    over the lanes' list heads under that total order pick the row's k best: exactly the CPU's
//    list, ties included, since it is a pure selection of the stored floats. k = 0: no top-k.
//  * Key importance α_j: thread j of the block sums column j over its tile's rows that see key j
//    (coalesced across threads; the tile is still in L2), in double; the finalize kernel adds the
//    tiles in order. α_0 is the sink statistic: without --key-importance only column 0 is summed.
#include "kernels.h"
#include "kernel_util.cuh"
#include <limits.h>
extern "C" {
#include "stats.h"     /* STAT_* order of the scalars */
}

#define AS_WARPS 8
#define AS_TILE 32                /* query rows per block */
#define AS_BATCH 8                /* loads in flight per lane */
#define AS_ROWSUMS STAT_SINK      /* STAT_ENTROPY .. STAT_ATTN_NEXT are means over rows */

// (v1, i1) ranks before (v2, i2): larger probability, ties to the lower key; i = INT_MAX: empty
__device__ static inline bool ranks_before(float v1, int i1, float v2, int i2)
{
    if (i2 == INT_MAX) return i1 != INT_MAX;
    if (i1 == INT_MAX) return false;
    return v1 > v2 || (v1 == v2 && i1 < i2);
}

template <int KMAX>
__global__ static void __launch_bounds__(32 * AS_WARPS)
attn_stats_kernel(const float *probs, const int *len, const uint8_t *sep, const uint8_t *punct, int NH, int T,
                  int causal, int sw, int window, int k, int all_keys, double *part_rows, double *part_cols,
                  int32_t *topk_idx, float *topk_w)
{
    __shared__ double warp_acc[AS_WARPS][AS_ROWSUMS];
    const int bh = blockIdx.y, b = bh / NH, tile = blockIdx.x, ntiles = gridDim.x;
    const int r0 = tile * AS_TILE, r1 = min(T, r0 + AS_TILE);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int n = len[b] < 0 ? 0 : len[b] > T ? T : len[b];
    const float *P = probs + (size_t)bh * T * T;
    const uint8_t *sepb = sep ? sep + (size_t)b * T : NULL, *punctb = punct ? punct + (size_t)b * T : NULL;

    // every row statistic is a sum over rows of a sum over keys: each lane accumulates its own
    // keys' terms over all of the warp's rows, and the warp reduces once at the end
    double acc[AS_ROWSUMS];
    for (int s = 0; s < AS_ROWSUMS; s++) acc[s] = 0;
    float lw[KMAX];              // this lane's best keys of the row, in rank order; empty: INT_MAX
    int li[KMAX];                // (compile-time size, unrolled loops: the lists stay in registers)
    for (int i = r0 + warp; i < r1; i += AS_WARPS) {
        int32_t *ti = topk_idx + ((size_t)bh * T + i) * k;
        float *tw = topk_w + ((size_t)bh * T + i) * k;
        if (i >= n) {
            for (int r = lane; r < k; r += 32) { ti[r] = -1; tw[r] = 0.0f; }
            continue;
        }
        const float *row = P + (size_t)i * T;
        int lo;                                          // visible keys lo..nk-1 (stats.h)
        const int nk = stats_visible(i, n, causal, sw, &lo);
        const double inv_ln = nk - lo > 1 ? 1.0 / log((double)(nk - lo)) : 0.0;
        double h = 0;
        if (k > 0) {
#pragma unroll
            for (int m = 0; m < KMAX; m++) { lw[m] = -INFINITY; li[m] = INT_MAX; }
        }
        // AS_BATCH loads in flight per lane before any use: one load at a time per warp leaves
        // the memory system idle (measured: 0.4 ms per bert-base layer at L = 512)
        for (int j0 = lo + lane; j0 < nk; j0 += 32 * AS_BATCH) {
            float pv[AS_BATCH];
#pragma unroll
            for (int u = 0; u < AS_BATCH; u++) pv[u] = j0 + 32 * u < nk ? row[j0 + 32 * u] : 0.0f;
#pragma unroll
            for (int u = 0; u < AS_BATCH; u++) {
                const int j = j0 + 32 * u;
                if (j >= nk) break;
                const float pf = pv[u];
                const double p = pf;
                // (a NaN or Inf p, from non-finite weights, reaches the entropy as NaN/Inf: never skipped)
                if (!(pf <= 0.0f)) h -= (double)(pf * logf(pf));
                const int d = i > j ? i - j : j - i;
                acc[STAT_DISTANCE] += p * d;
                if (d <= window) acc[STAT_LOCALITY] += p;
                if (sepb && sepb[j]) acc[STAT_ATTN_SEP] += p;
                if (punctb && punctb[j]) acc[STAT_ATTN_PUNCT] += p;
                if (j == 0) acc[STAT_ATTN_CLS] += p;
                if (d == 0) acc[STAT_ATTN_SELF] += p;
                else if (d == 1) acc[j < i ? STAT_ATTN_PREV : STAT_ATTN_NEXT] += p;
                if (k == 0) continue;
                // bubble (pf, j) into the list: this lane's keys come in increasing j, so a strict >
                // keeps an equal value behind the earlier key, as stats_head's insertion does
                float v = pf;
                int id = j;
#pragma unroll
                for (int m = 0; m < KMAX; m++)
                    if (m < k && (li[m] == INT_MAX || v > lw[m])) {
                        const float tv = lw[m]; const int tid = li[m];
                        lw[m] = v; li[m] = id; v = tv; id = tid;
                    }
            }
        }
        acc[STAT_ENTROPY] += h;
        acc[STAT_ENTROPY_NORM] += h * inv_ln;
        for (int r = 0; r < k; r++) {                    // warp arg-max over the lanes' list heads
            float bv = li[0] == INT_MAX ? 0.0f : lw[0];
            int bi = li[0];
            for (int o = 16; o > 0; o >>= 1) {
                const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
                const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
                if (ranks_before(ov, oi, bv, bi)) { bv = ov; bi = oi; }
            }
            if (lane == 0) { ti[r] = bi == INT_MAX ? -1 : bi; tw[r] = bi == INT_MAX ? 0.0f : bv; }
            if (bi != INT_MAX && li[0] == bi) {          // key indices are unique: the owner pops its head
#pragma unroll
                for (int m = 0; m + 1 < KMAX; m++) { lw[m] = lw[m + 1]; li[m] = li[m + 1]; }
                lw[KMAX - 1] = -INFINITY;
                li[KMAX - 1] = INT_MAX;
            }
        }
    }
    for (int s = 0; s < AS_ROWSUMS; s++) acc[s] = warp_sum(acc[s]);
    if (lane == 0)
        for (int s = 0; s < AS_ROWSUMS; s++) warp_acc[warp][s] = acc[s];

    // key importance: this tile's rows that see key j (rows < n; i >= j when causal; i < j + sw
    // under a sliding window)
    const int i1 = min(r1, n);
    for (int j = threadIdx.x; j < (all_keys ? T : 1); j += blockDim.x) {
        double a = 0;
        if (j < n) {
            const int first = causal ? j : 0, end = min(i1, first + stats_seen_by(j, n, causal, sw));
            for (int i = max(first, r0); i < end; i++) a += P[(size_t)i * T + j];
        }
        part_cols[((size_t)bh * ntiles + tile) * T + j] = a;
    }
    __syncthreads();
    if (threadIdx.x < AS_ROWSUMS) {
        double sum = 0;
        for (int w = 0; w < AS_WARPS; w++) sum += warp_acc[w][threadIdx.x];
        part_rows[((size_t)bh * ntiles + tile) * AS_ROWSUMS + threadIdx.x] = sum;
    }
}

// per (b, h): the tiles' partial sums in tile order → means, sink and key importances
__global__ static void attn_stats_finalize(const double *part_rows, const double *part_cols, const int *len, int NH,
                                           int T, int ntiles, int causal, int sw, int all_keys, float *out, float *key_imp)
{
    const int bh = blockIdx.x, b = bh / NH;
    const int n = len[b] < 0 ? 0 : len[b] > T ? T : len[b];
    const double *pc = part_cols + (size_t)bh * ntiles * T;
    for (int j = threadIdx.x; j < (all_keys ? T : 1); j += blockDim.x) {
        float a_out = 0.0f;
        if (j < n) {
            double a = 0;
            for (int t = 0; t < ntiles; t++) a += pc[(size_t)t * T + j];
            a /= stats_seen_by(j, n, causal, sw);
            a_out = (float)a;
        }
        if (j == 0) out[(size_t)bh * STAT_N + STAT_SINK] = n > 0 ? a_out : 0.0f;
        if (all_keys) key_imp[(size_t)bh * T + j] = a_out;
    }
    if (threadIdx.x < AS_ROWSUMS) {
        const int s = threadIdx.x;
        double sum = 0;
        for (int t = 0; t < ntiles; t++) sum += part_rows[((size_t)bh * ntiles + t) * AS_ROWSUMS + s];
        const int rows = s == STAT_ENTROPY_NORM ? stats_norm_rows(n, causal, sw) : n;
        out[(size_t)bh * STAT_N + s] = rows ? (float)(sum / rows) : 0.0f;
    }
}

extern "C" size_t cuda_attn_stats_scratch(int B, int NH, int T)
{
    const size_t tiles = (size_t)(T + AS_TILE - 1) / AS_TILE;
    return (size_t)B * NH * tiles * (AS_ROWSUMS + (size_t)T) * sizeof(double);
}

extern "C" void cuda_attn_stats(const float *probs, const int *len, const uint8_t *sep, const uint8_t *punct, int B,
                                int NH, int T, int causal, int sw, int window, int k, float *out, float *key_imp,
                                int32_t *topk_idx, float *topk_w, void *scratch)
{
    if (k < 0 || k > KERNEL_TOPK_MAX)
        check_fail(__FILE__, __LINE__, "cuda_attn_stats", "top-k must be in 0..KERNEL_TOPK_MAX");
    if (B * NH == 0 || T == 0) return;
    const int ntiles = (T + AS_TILE - 1) / AS_TILE, all_keys = key_imp != NULL;
    double *part_rows = (double *)scratch, *part_cols = part_rows + (size_t)B * NH * ntiles * AS_ROWSUMS;
    const dim3 grid(ntiles, B * NH);
    /* the smallest list size that holds k: small lists stay in registers */
    if (k <= 4)
        attn_stats_kernel<4><<<grid, 32 * AS_WARPS>>>(probs, len, sep, punct, NH, T, causal, sw, window, k, all_keys, part_rows,
                                                      part_cols, topk_idx, topk_w);
    else if (k <= 16)
        attn_stats_kernel<16><<<grid, 32 * AS_WARPS>>>(probs, len, sep, punct, NH, T, causal, sw, window, k, all_keys, part_rows,
                                                       part_cols, topk_idx, topk_w);
    else
        attn_stats_kernel<KERNEL_TOPK_MAX><<<grid, 32 * AS_WARPS>>>(probs, len, sep, punct, NH, T, causal, sw, window, k,
                                                                    all_keys, part_rows, part_cols, topk_idx, topk_w);
    KERNEL_CHECK("attn_stats_kernel");
    attn_stats_finalize<<<B * NH, 256>>>(part_rows, part_cols, len, NH, T, ntiles, causal, sw, all_keys, out, key_imp);
    KERNEL_CHECK("attn_stats_finalize");
}
