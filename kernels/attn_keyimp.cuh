// attn_keyimp.cuh — private to attn_fused.cu: the key-importance pass, a second pass over the
// scores with each row's log2 normaliser from attn_fused_kernel (its design below).
#ifndef ATTNSCOPE_ATTN_KEYIMP_CUH
#define ATTNSCOPE_ATTN_KEYIMP_CUH
#include "attn_fused_ops.cuh"

// ---- key importance: α_j = the mean of p_ij over the rows i that see key j (stats_head), a
// second pass over the scores with each row's final log2 normaliser M_i from the first (lse):
// p_ij = 2^(s_ij·sl2 − M_i), as a flash backward recomputes P. The roles of Q and K swap: a block
// owns AF_QROWS keys (warp w: 16, as A fragments in registers, Ops::load_q) and streams the query
// rows that can see them through shared memory in tiles of AF_KEYS (Ops::scores gives S^T), so
// each column sum is one thread's, in a fixed order: deterministic, no atomics, no L x L buffer.
// Per tile the lane's sum is a float of 16 terms, added to a double.
template <class Ops, int HS> struct ki_smem {
    typename Ops::krow q[2][AF_KEYS];            // query tiles (double-buffered)
    float M[2][AF_KEYS];                         // their rows' log2 normalisers (+inf: no row)
    typename Ops::qspill qspill[AF_WARPS];
};

template <class Ops, int HS>
__global__ static void __launch_bounds__(32 * AF_WARPS)
attn_keyimp_kernel(float *ki, const typename Ops::elem *q, const typename Ops::elem *k, int ld, const int *len,
                   const float *lse, int NH, int NKV, int T, float scale, int causal, int sw)
{
    typedef typename Ops::elem elem;
    constexpr int VEC = 16 / sizeof(elem);
    extern __shared__ __align__(16) unsigned char ki_raw[];
    ki_smem<Ops, HS> &sm = *reinterpret_cast<ki_smem<Ops, HS> *>(ki_raw);
    const int bh = blockIdx.y, b = bh / NH, h = bh % NH, kvh = h / (NH / NKV);
    const int j0 = blockIdx.x * AF_QROWS, warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
    const int n = len[b] < 0 ? 0 : len[b] > T ? T : len[b];
    const int key[2] = {j0 + warp * 16 + g, j0 + warp * 16 + g + 8};
    const size_t base = (size_t)b * T;
    const float sl2 = scale * 1.4426950408889634f;
    if (j0 >= n) {                                         // no valid key here (a sample of length 0: none at all)
        for (int j = j0 + threadIdx.x; j < j0 + AF_QROWS && j < T; j += blockDim.x) ki[(size_t)bh * T + j] = 0.0f;
        return;
    }
    typename Ops::qfrag kf;                                // the warp's 16 keys, as Q in the first pass
    Ops::load_q(kf, key[0] < n ? k + (base + key[0]) * ld + kvh * HS : NULL,
                key[1] < n ? k + (base + key[1]) * ld + kvh * HS : NULL, t, &sm.qspill[warp], lane);
    // the rows that see any of the block's keys: i < n, i >= j (causal), i < j + sw (window)
    const int ibeg = causal ? j0 : 0;
    const int iend = sw > 0 ? min(n, j0 + AF_QROWS - 1 + sw) : n;
    constexpr int CP_COLS = HS / VEC, CP_ROWS = 32 * AF_WARPS / CP_COLS;
    const int cp_r0 = threadIdx.x / CP_COLS, cp_cv = threadIdx.x % CP_COLS * VEC;
    const size_t cp_off = base * ld + (size_t)h * HS + cp_cv;
    auto issue = [&](int it0, int buf) {
        for (int r = cp_r0; r < AF_KEYS; r += CP_ROWS) {
            const int i = it0 + r;
            cp_async16(&sm.q[buf][r][cp_cv], q + cp_off + (size_t)(i < T ? i : T - 1) * ld, i < T);
        }
        if (threadIdx.x < AF_KEYS) {
            const int i = it0 + threadIdx.x;
            sm.M[buf][threadIdx.x] = i < n ? lse[(size_t)bh * T + i] : INFINITY;
        }
        cp_async_commit();
    };
    double acc[2] = {0.0, 0.0};
    if (ibeg < iend) issue(ibeg, 0);
    for (int it0 = ibeg, it = 0; it0 < iend; it0 += AF_KEYS, it++) {
        const int buf = it & 1;
        cp_async_wait<0>();
        __syncthreads();
        if (it0 + AF_KEYS < iend) issue(it0 + AF_KEYS, buf ^ 1);
        float s[AF_KEYS / 8][4];
        Ops::scores(s, kf, sm.q[buf], lane);               // s[nt][e]: key row e >> 1, query column nt·8 + 2t + (e & 1)
        // every (query, key) pair visible: past the diagonal, inside the window, no padding row
        const bool full = it0 + AF_KEYS <= n && (!causal || it0 >= j0 + AF_QROWS - 1) && (sw <= 0 || it0 + AF_KEYS - 1 < j0 + sw);
        float cs[2] = {0.0f, 0.0f};
#pragma unroll
        for (int nt = 0; nt < AF_KEYS / 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int r = e >> 1, cl = nt * 8 + 2 * t + (e & 1), i = it0 + cl, j = key[r];
                const float p = ex2(fmaf(s[nt][e], sl2, -sm.M[buf][cl]));   // (M = +inf: 0)
                if (full) cs[r] += p;
                else if ((!causal || j <= i) && (sw <= 0 || i < j + sw)) cs[r] += p;
            }
        acc[0] += cs[0];
        acc[1] += cs[1];
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], 1);
        acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], 2);
        const int j = key[r];
        if (t == 0 && j < T) ki[(size_t)bh * T + j] = j < n ? (float)(acc[r] / stats_seen_by(j, n, causal, sw)) : 0.0f;
    }
}
#endif
