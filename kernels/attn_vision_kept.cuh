// attn_vision_kept.cuh — private to attn_fused.cu: a patch model's vision outputs (vstats.h's
// definitions, as attn_vision.cuh computes them) from probabilities the fused kernel kept, where
// attn_vision.cuh makes them again from the scores. attn_fused_kernel stores each probability
// relative to its key tile's running max, p̃ = 2^(s·sl2 − m_tile), in fp16 (p̃ ≤ 2^AF_SLACK: no
// overflow), with m_tile per (row, key tile); here p = p̃ · 2^(m_tile − M_i), M_i the row's final
// log2 normaliser (lse). fp16 rounds p̃ to 2^-11 relative (below 2^-14 to an absolute 2^-25): the
// outputs are within that of the second pass's. The second pass was latency-bound (a chain of
// head steps a block, 16 blocks an image at T = 197); this one streams the stored rows.
//  * One warp per (image b, query row i), lanes over groups of 8 keys (one 16-byte load a head);
//    the keys' pairs (‖(dx, dy)‖ in patches, 1 within the 3 x 3 patches; a prefix key, a row that
//    is no patch: none) are made once per row, then every head in turn: the fused map of the 8
//    keys stays in registers (mean, max or min over the heads), the [CLS] row (i = 0) goes out as
//    it comes, and each lane's Σ p·‖c_i − c_j‖ and locality mass go to its own slot in shared
//    memory. At the end the warp adds each head's 32 slots in lane order (deterministic) and writes
//    the row's sums (double) to part (B, T, NH, 2); vis_finish_rows_kernel adds them over the rows
//    in a fixed order.
//  * vis->roll: the row of the map leaves as the rollout's Â ((A + I)/2 over its sum, the sum in
//    double: vision.cu's rollout_norm_kernel, one pass over the batch's maps fewer).
#ifndef ATTNSCOPE_ATTN_VISION_KEPT_CUH
#define ATTNSCOPE_ATTN_VISION_KEPT_CUH
#include <cuda_fp16.h>
#include "attn_vision.cuh"

#define AVK_WARPS 4     // query rows a block
#ifndef AVK_AHEAD
#define AVK_AHEAD 4     // heads whose rows are loaded at once
#endif
// blocks an SM (launch bound): 6 holds the kernel to 80 registers, 34% of the warps active. At
// T = 197, B = 128 under ncu: 85.9 µs, against 106.6 with no bound (126 registers, 23%), 90.7 with
// 8 (64 registers and a few spills), 94.0 with 6 heads ahead and no bound, 157.0 with all 12 ahead
// (188 registers): BENCHMARKS.md run 42
#ifndef AVK_MINB
#define AVK_MINB 6
#endif

// the kept store: p̃ (B, NH, T, avk_stride(T)) in fp16, rows a multiple of 8 keys (16-byte
// groups), then the key tiles' maxima (B, NH, T, key tiles) in fp32, each part 256-byte aligned
__host__ __device__ static inline int avk_stride(int T) { return (T + 7) / 8 * 8; }
static inline size_t avk_pst_bytes(int B, int NH, int T)
{
    return ((size_t)B * NH * T * avk_stride(T) * sizeof(__half) + 255) / 256 * 256;
}
static inline float *avk_maxima(__half *pst, int B, int NH, int T) { return (float *)((char *)pst + avk_pst_bytes(B, NH, T)); }
static inline size_t avk_bytes(int B, int NH, int T)
{
    const int ntk = (T + AF_KEYS - 1) / AF_KEYS;
    return avk_pst_bytes(B, NH, T) + ((size_t)B * NH * T * ntk * sizeof(float) + 255) / 256 * 256;
}
// shared memory: per warp, per head and sum (distance, locality), 32 lanes' slots (+1: no bank
// conflicts when a lane adds one slot's 32)
static inline size_t avk_smem_bytes(int NH) { return (size_t)AVK_WARPS * NH * 2 * 33 * sizeof(float); }

template <bool MEAN>
__global__ static void __launch_bounds__(32 * AVK_WARPS, AVK_MINB)
attn_vision_kept_kernel(const __half *pst, const float *pmt, const float *lse, int NH, int T, int npre, int gh, int gw,
                        int fusion, int roll, double *part, float *cls, float *map)
{
    extern __shared__ float avk_rs[];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, b = blockIdx.y, i = blockIdx.x * AVK_WARPS + warp;
    float *rs = avk_rs + (size_t)warp * NH * 2 * 33;   // [h][c][lane]
    if (i >= T) return;                                // (warp-uniform; no barrier below)
    const int tp = avk_stride(T), ngroups = tp / 8, ntk = (T + AF_KEYS - 1) / AF_KEYS, np = gh * gw;
    const bool prow = i >= npre;                       // a patch row: its sums count
    const int yi = prow ? (i - npre) / gw : 0, xi = prow ? (i - npre) % gw : 0;
    for (int e = lane; e < NH * 2; e += 32) {
        float *slot = rs + e * 33;
        for (int l = 0; l < 32; l++) slot[l] = 0.0f;
    }
    __syncwarp();
    const float init = !MEAN && fusion == 2 ? INFINITY : 0.0f, inv = MEAN ? 1.0f / (float)NH : 1.0f;
    // roll: the row becomes the rollout's Â, (A + I)/2 renormalised (rollout_norm_kernel's
    // arithmetic): the row's sum in double as the groups are done, then each value over it, from
    // the registers where each lane has one group (T <= 256), else read back
    const bool single = ngroups <= 32;
    double rsum = 0.0;
    float keep[8];
    for (int gi = lane; gi < ngroups; gi += 32) {
        const int j0 = gi * 8;
        // the 8 keys' pairs: distance in patches, and the locality mask (bit e: key j0 + e within
        // the 3 x 3 patches); a prefix key or one past T: 0, 0
        float dd[8];
        unsigned near = 0;
        {
            int q = j0 - npre, y = q >= 0 ? q / gw : 0, x = q >= 0 ? q % gw : 0;
#pragma unroll
            for (int e = 0; e < 8; e++, q++) {
                const bool key = q >= 0 && j0 + e < T && prow;
                const int dx = x - xi, dy = y - yi;
                dd[e] = key ? sqrtf((float)(dx * dx + dy * dy)) : 0.0f;
                near |= key && dx >= -1 && dx <= 1 && dy >= -1 && dy <= 1 ? 1u << e : 0u;
                if (q >= 0 && ++x == gw) { x = 0; y++; }
            }
        }
        float acc[8];
#pragma unroll
        for (int e = 0; e < 8; e++) acc[e] = init;
        // AVK_AHEAD heads at a time, their loads issued together (one at a time left the kernel
        // latency-bound: 1.2 TB/s)
        for (int h0 = 0; h0 < NH; h0 += AVK_AHEAD) {
            uint4 raw[AVK_AHEAD];
            float f[AVK_AHEAD];
#pragma unroll
            for (int u = 0; u < AVK_AHEAD; u++) {
                const size_t rh = ((size_t)b * NH + (h0 + u < NH ? h0 + u : h0)) * T + i;
                raw[u] = __ldcs(reinterpret_cast<const uint4 *>(pst + rh * tp + j0));
                f[u] = __ldg(&pmt[rh * ntk + j0 / AF_KEYS]) - __ldg(&lse[rh]);
            }
#pragma unroll
            for (int u = 0; u < AVK_AHEAD; u++) {
                const int h = h0 + u;
                if (h >= NH) break;
                const float fu = ex2(f[u]);   // (M = +inf: 0)
                const __half2 *h2 = reinterpret_cast<const __half2 *>(&raw[u]);
                float p[8], d = 0.0f, lc = 0.0f;
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const float2 v = __half22float2(h2[e]);
                    p[2 * e] = v.x * fu;
                    p[2 * e + 1] = v.y * fu;
                }
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    acc[e] = MEAN ? acc[e] + p[e] : fusion == 1 ? fmaxf(acc[e], p[e]) : fminf(acc[e], p[e]);
                    d = fmaf(p[e], dd[e], d);
                    lc += near >> e & 1 ? p[e] : 0.0f;
                }
                rs[(h * 2) * 33 + lane] += d;
                rs[(h * 2 + 1) * 33 + lane] += lc;
                if (i == 0)   // the [CLS] row over the patch keys
#pragma unroll
                    for (int e = 0; e < 8; e++) {
                        const int j = j0 + e;
                        if (j >= npre && j < T) cls[((size_t)b * NH + h) * np + (j - npre)] = p[e];
                    }
            }
        }
        float *dst = map + ((size_t)b * T + i) * T;
#pragma unroll
        for (int e = 0; e < 8; e++) {
            float x = acc[e] * inv;
            if (roll && j0 + e == i) x += 1.0f;
            if (roll && j0 + e < T) rsum += 0.5 * (double)x;
            keep[e] = x;
            if (j0 + e < T && !(roll && single)) dst[j0 + e] = x;
        }
    }
    if (roll) {                                        // (warp-uniform)
        const double tot = warp_sum(rsum), r = tot > 0 ? 0.5 / tot : 0.0;
        for (int gi = lane; gi < ngroups; gi += 32) {
            float *dst = map + ((size_t)b * T + i) * T + gi * 8;
#pragma unroll
            for (int e = 0; e < 8; e++)
                if (gi * 8 + e < T) dst[e] = (float)((double)(single ? keep[e] : dst[e]) * r);
        }
    }
    __syncwarp();
    // each head's two sums: the 32 lanes' slots in lane order, one (head, sum) a lane
    for (int e = lane; e < NH * 2; e += 32) {
        const float *slot = rs + e * 33;
        double s = 0.0;
        for (int l = 0; l < 32; l++) s += slot[l];
        part[((size_t)b * T + i) * NH * 2 + e] = prow ? s : 0.0;
    }
}
// dist, loc (B, NH) from row sums part (B, T, NH, 2) — the kept path's rows, or the second pass's
// (row tile, key tile) pairs as T: one warp per (b, h), lane l adding l, l + 32, ... in order, then
// a fixed shuffle tree (deterministic); means over the np patch rows (a thread per (b, h) adding
// the kept path's 197 rows in turn took 50 µs a layer)
__global__ static void vis_finish_rows_kernel(const double *part, int B, int NH, int T, int np, int patch, float *dist,
                                              float *loc)
{
    const int bh = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
    if (bh >= B * NH) return;   // (warp-uniform)
    const int b = bh / NH, h = bh % NH;
    double d = 0.0, l = 0.0;
    for (int i = lane; i < T; i += 32) {
        const double *pp = part + (((size_t)b * T + i) * NH + h) * 2;
        d += pp[0];
        l += pp[1];
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        d += __shfl_xor_sync(0xffffffffu, d, o);
        l += __shfl_xor_sync(0xffffffffu, l, o);
    }
    if (lane == 0) {
        dist[bh] = np > 0 ? (float)(d * patch / np) : 0.0f;   // (distances in patches)
        loc[bh] = np > 0 ? (float)(l / np) : 0.0f;
    }
}

// the vision pass's row sums: (B, row tiles, key tiles, NH, 2) from the second pass, (B, T, NH, 2)
// from the kept probabilities
static size_t av_part_bytes(int B, int NH, int T)
{
    const size_t tiles = (size_t)((T + AF_QROWS - 1) / AF_QROWS) * ((T + AF_KEYS - 1) / AF_KEYS);
    return ((size_t)B * (tiles > (size_t)T ? tiles : T) * NH * 2 * sizeof(double) + 255) / 256 * 256;
}

// the vision outputs of a layer whose fused kernel has run: from the kept probabilities pst, pmt
// (vs->kept) or by the second pass over q, k; vpart: av_part_bytes of scratch
template <class Ops, int HS>
static void av_launch(const attn_vis *vs, const typename Ops::elem *q, const typename Ops::elem *k, int ld,
                      const int *len, const float *lse, int B, int NH, int NKV, int T, float scale, double *vpart,
                      const __half *pst, const float *pmt)
{
    if (vs->kept) {          // from the kept probabilities
        const dim3 kgrid((T + AVK_WARPS - 1) / AVK_WARPS, B);
        const size_t kb = avk_smem_bytes(NH);
        static size_t avk_attr_bytes[2];
        const int mean = vs->fusion == 0;
        if (kb > avk_attr_bytes[mean]) {
            int once = 0;
            if (mean) smem_opt_in(attn_vision_kept_kernel<true>, kb, &once);
            else smem_opt_in(attn_vision_kept_kernel<false>, kb, &once);
            avk_attr_bytes[mean] = kb;
        }
#define AVK_ARGS pst, pmt, lse, NH, T, vs->n_prefix, vs->gh, vs->gw, vs->fusion, vs->roll, vpart, vs->cls, vs->map
        if (mean) attn_vision_kept_kernel<true><<<kgrid, 32 * AVK_WARPS, kb>>>(AVK_ARGS);
        else attn_vision_kept_kernel<false><<<kgrid, 32 * AVK_WARPS, kb>>>(AVK_ARGS);
#undef AVK_ARGS
        KERNEL_CHECK("attn_vision_kept_kernel");
        vis_finish_rows_kernel<<<(B * NH * 32 + 127) / 128, 128>>>(vpart, B, NH, T, vs->gh * vs->gw, vs->patch, vs->dist,
                                                              vs->loc);
        KERNEL_CHECK("vis_finish_rows_kernel");
    } else {                 // the second pass over the scores (attn_vision.cuh), from the same normalisers
        const size_t av_bytes = av_smem_bytes<Ops, HS>(NH, av_disp(vs->gh, vs->gw));
        const dim3 vgrid_((T + AF_QROWS - 1) / AF_QROWS, B, (T + AF_KEYS - 1) / AF_KEYS);
#define AV_ARGS q, k, ld, len, lse, NH, NKV, T, scale, vs->n_prefix, vs->gh, vs->gw, vs->fusion, vpart, vs->cls, vs->map
        static size_t av_attr_bytes[2];   // each kernel's opt-in, raised as larger grids come
        const int mean = vs->fusion == 0;
        if (av_bytes > av_attr_bytes[mean]) {
            int once = 0;
            if (mean) smem_opt_in(attn_vision_kernel<Ops, HS, true>, av_bytes, &once);
            else smem_opt_in(attn_vision_kernel<Ops, HS, false>, av_bytes, &once);
            av_attr_bytes[mean] = av_bytes;
        }
        if (mean) attn_vision_kernel<Ops, HS, true><<<vgrid_, 32 * AF_WARPS, av_bytes>>>(AV_ARGS);
        else attn_vision_kernel<Ops, HS, false><<<vgrid_, 32 * AF_WARPS, av_bytes>>>(AV_ARGS);
#undef AV_ARGS
        KERNEL_CHECK("attn_vision_kernel");
        vis_finish_rows_kernel<<<(B * NH * 32 + 127) / 128, 128>>>(vpart, B, NH, vgrid_.x * vgrid_.z, vs->gh * vs->gw, vs->patch,
                                                              vs->dist, vs->loc);
        KERNEL_CHECK("vis_finish_rows_kernel");
        if (vs->roll) cuda_rollout_map(vs->map, vs->map, B, 1, T, 0, 0);   // the rollout's Â in place
    }
}
#endif
