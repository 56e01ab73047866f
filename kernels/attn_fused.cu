// attn_fused.cu — attention and the per-head scalar statistics of stats_head() (STAT_ENTROPY ..
// STAT_SINK) in one kernel, the probabilities never stored: the fused path of `--precision bf16`
// when no per-token output (top-k, key importance, /attention, head similarity) wants them.
//
// Design (flash-attention style, bf16 tensor cores: mma.sync m16n8k16, fp32 accumulation):
//  * One block of AF_WARPS warps per (sample b, head h, tile of 16·AF_WARPS query rows); warp w
//    owns 16 rows, its Q fragments stay in registers. Keys go through shared memory in tiles of
//    AF_KEYS, only the tiles below the sample's length (and the diagonal when causal): padding
//    costs nothing.
//  * Two passes over the keys. Pass 1: S = Q·Kᵀ·scale, the row max m and Σ exp(s − m) = l.
//    Pass 2 recomputes S (bit-identical), p = exp(s − m)/l is final, so every statistic is a
//    plain sum of p-weighted terms as in attn_stats.cu — no online rescaling of statistics —
//    and O += P·V with P rounded to bf16 (as transformers' eager bf16: softmax in fp32, then
//    .to(bf16) before P·V).
//  * Entropy without a log per element: ln p = (s − m) − ln l, so H = ln l − Σ p (s − m).
//  * Row sums reduce over the quad (the 4 lanes of a row), then over the block's rows in double,
//    in a fixed order; the tiles go through the same finalize as attn_stats.cu (deterministic).
//  * Masking as softmax.cu: keys ≥ len and (causal) j > i get probability exactly 0; a sample of
//    length 0 attends uniformly to all T keys (HF adds finfo.min to every score).
// The inputs are fp32 or bf16 rows of ld elements ((B, T, ·), head h at columns h·HS), converted
// to bf16 on their way to shared memory; the output is (B, T, ldo) fp32 or bf16.
#include "kernels.h"
#include "kernel_util.cuh"
#include <cuda_bf16.h>
#include <float.h>
#include <stdint.h>
extern "C" {
#include "stats.h"
}

#define AF_WARPS 4
#define AF_QROWS (16 * AF_WARPS)   // query rows per block
#define AF_KEYS 64                 // keys per shared-memory tile
#define AF_PAD 8                   // bf16 of padding per shared row: conflict-free fragment loads
#define AF_ROWSUMS STAT_SINK       // STAT_ENTROPY .. STAT_ATTN_NEXT: means over rows

__device__ static inline uint32_t pack_bf16(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);   // .x (low half) = the lower column
    return *reinterpret_cast<uint32_t *>(&v);
}

// c (16x8, fp32) += a (16x16, bf16, row) · b (16x8, bf16, col)
__device__ static inline void mma_bf16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
#if __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

// four consecutive elements as floats (16-byte / 8-byte aligned: the launcher checks ld and HS)
__device__ static inline void load4(const float *p, float v[4])
{
    const float4 x = *reinterpret_cast<const float4 *>(p);
    v[0] = x.x; v[1] = x.y; v[2] = x.z; v[3] = x.w;
}
__device__ static inline void load4(const __nv_bfloat16 *p, float v[4])
{
    const uint2 x = *reinterpret_cast<const uint2 *>(p);
    const __nv_bfloat162 a = *reinterpret_cast<const __nv_bfloat162 *>(&x.x), b = *reinterpret_cast<const __nv_bfloat162 *>(&x.y);
    v[0] = __low2float(a); v[1] = __high2float(a); v[2] = __low2float(b); v[3] = __high2float(b);
}
__device__ static inline void store2(float *p, float a, float b) { *reinterpret_cast<float2 *>(p) = make_float2(a, b); }
__device__ static inline void store2(__nv_bfloat16 *p, float a, float b) { *reinterpret_cast<uint32_t *>(p) = pack_bf16(a, b); }

template <int HS, typename TIn, typename TOut>
__global__ static void __launch_bounds__(32 * AF_WARPS)
attn_fused_kernel(TOut *out, int ldo, const TIn *q, const TIn *k, const TIn *v, int ld, const int *len,
                  const uint8_t *tokcls, int NH, int T, float scale, int causal, int window, double *part_rows,
                  double *part_cols)
{
    __shared__ __align__(16) __nv_bfloat16 sK[AF_KEYS][HS + AF_PAD];    // keys × dims
    __shared__ __align__(16) __nv_bfloat16 sVt[HS][AF_KEYS + AF_PAD];   // dims × keys (V transposed)
    __shared__ uint8_t sCls[AF_KEYS];
    __shared__ double sAcc[AF_WARPS][AF_ROWSUMS];

    const int bh = blockIdx.y, b = bh / NH, h = bh % NH, tile = blockIdx.x;
    const int q0 = tile * AF_QROWS, warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
    const int n = len[b] < 0 ? 0 : len[b] > T ? T : len[b];
    // n = 0: every score is finfo.min after HF's masks (causal ones too): uniform over all T keys
    const int nkeys = n > 0 ? n : T, flat = n == 0, causal_ = causal && !flat;
    const int kend = causal_ ? min(nkeys, q0 + AF_QROWS) : nkeys;
    const int row[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
    const size_t base = (size_t)b * T;
    const float sl2 = scale * 1.4426950408889634f;        // scores in log2 units: exp2f

    // Q fragments of the warp's 16 rows (A operand, row-major 16 x 16 per k-step)
    uint32_t qa[HS / 16][4];
#pragma unroll
    for (int ks = 0; ks < HS / 16; ks++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float lo[4] = {0, 0, 0, 0}, hi[4] = {0, 0, 0, 0};
            if (row[r] < T) {
                const TIn *src = q + (base + row[r]) * ld + h * HS + ks * 16;
                // elements 2t, 2t+1 and 2t+8, 2t+9: two aligned pairs of the row
                lo[0] = (float)src[2 * t]; lo[1] = (float)src[2 * t + 1];
                hi[0] = (float)src[2 * t + 8]; hi[1] = (float)src[2 * t + 9];
            }
            qa[ks][r] = pack_bf16(lo[0], lo[1]);          // a0: row g, a1: row g + 8
            qa[ks][r + 2] = pack_bf16(hi[0], hi[1]);      // a2, a3: the same rows, columns + 8
        }

    // the key tile's S (16 x AF_KEYS per warp), scaled to log2 units and masked (−inf)
    auto scores = [&](int kt, float s[AF_KEYS / 8][4]) {
#pragma unroll
        for (int nt = 0; nt < AF_KEYS / 8; nt++) {
            s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
            for (int ks = 0; ks < HS / 16; ks++) {
                const __nv_bfloat16 *kr = &sK[nt * 8 + g][ks * 16 + 2 * t];
                mma_bf16(s[nt], qa[ks], *reinterpret_cast<const uint32_t *>(kr), *reinterpret_cast<const uint32_t *>(kr + 8));
            }
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int j = kt + nt * 8 + 2 * t + (e & 1), i = row[e >> 1];
                const bool ok = j < nkeys && (!causal_ || j <= i);
                s[nt][e] = !ok ? -INFINITY : flat ? 0.0f : s[nt][e] * sl2;
            }
        }
    };
    auto load_tile = [&](int kt, bool with_v) {
        __syncthreads();                                   // the previous tile is consumed
        for (int c = threadIdx.x; c < AF_KEYS * HS / 4; c += blockDim.x) {
            const int r = c / (HS / 4), c4 = (c % (HS / 4)) * 4, j = kt + r;
            float x[4] = {0, 0, 0, 0};
            if (j < T) load4(k + (base + j) * ld + h * HS + c4, x);
            *reinterpret_cast<uint2 *>(&sK[r][c4]) = make_uint2(pack_bf16(x[0], x[1]), pack_bf16(x[2], x[3]));
        }
        if (with_v) {
            // consecutive threads take consecutive keys: the transposed stores hit distinct banks
            for (int c = threadIdx.x; c < AF_KEYS * HS / 4; c += blockDim.x) {
                const int r = c % AF_KEYS, c4 = (c / AF_KEYS) * 4, j = kt + r;
                float x[4] = {0, 0, 0, 0};
                if (j < T) load4(v + (base + j) * ld + h * HS + c4, x);
#pragma unroll
                for (int e = 0; e < 4; e++) sVt[c4 + e][r] = __float2bfloat16_rn(x[e]);
            }
            if (threadIdx.x < AF_KEYS) {
                const int j = kt + threadIdx.x;
                sCls[threadIdx.x] = tokcls && j < T ? tokcls[base + j] : 0;
            }
        }
        __syncthreads();
    };

    // pass 1: row max and Σ exp (per thread over its columns, then over the quad)
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    for (int kt = 0; kt < kend; kt += AF_KEYS) {
        load_tile(kt, false);
        float s[AF_KEYS / 8][4];
        scores(kt, s);
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float mt = m[r];
#pragma unroll
            for (int nt = 0; nt < AF_KEYS / 8; nt++) mt = fmaxf(mt, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
            mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 1));
            mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 2));
            if (mt == -INFINITY) continue;                 // nothing visible yet
            float sum = 0.0f;
#pragma unroll
            for (int nt = 0; nt < AF_KEYS / 8; nt++) sum += exp2f(s[nt][2 * r] - mt) + exp2f(s[nt][2 * r + 1] - mt);
            l[r] = l[r] * exp2f(m[r] - mt) + sum;
            m[r] = mt;
        }
    }
    float inv_l[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        inv_l[r] = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
    }

    // pass 2: final p, the statistics' per-row sums, O = P·V
    float acc[2][AF_ROWSUMS];                              // [row][stat]
#pragma unroll
    for (int r = 0; r < 2; r++)
#pragma unroll
        for (int s = 0; s < AF_ROWSUMS; s++) acc[r][s] = 0.0f;
    float o[HS / 8][4];
#pragma unroll
    for (int dn = 0; dn < HS / 8; dn++) o[dn][0] = o[dn][1] = o[dn][2] = o[dn][3] = 0.0f;
    for (int kt = 0; kt < kend; kt += AF_KEYS) {
        load_tile(kt, true);
        float s[AF_KEYS / 8][4];
        scores(kt, s);
#pragma unroll
        for (int nt = 0; nt < AF_KEYS / 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int r = e >> 1, i = row[r], jl = nt * 8 + 2 * t + (e & 1), j = kt + jl;
                const float x = s[nt][e] - m[r];           // log2 units, <= 0; -inf when masked
                const float p = x == -INFINITY ? 0.0f : exp2f(x) * inv_l[r];
                s[nt][e] = p;
                if (p == 0.0f) continue;
                const int d = i > j ? i - j : j - i;
                acc[r][STAT_ENTROPY] += p * x;             // Σ p (s − m), log2 units
                acc[r][STAT_DISTANCE] += p * (float)d;
                if (d <= window) acc[r][STAT_LOCALITY] += p;
                if (j == 0) acc[r][STAT_ATTN_CLS] += p;
                const uint8_t cls = sCls[jl];
                if (cls & 1) acc[r][STAT_ATTN_SEP] += p;
                if (cls & 2) acc[r][STAT_ATTN_PUNCT] += p;
                if (d == 0) acc[r][STAT_ATTN_SELF] += p;
                else if (d == 1) {                         // constant indices: acc stays in registers
                    if (j < i) acc[r][STAT_ATTN_PREV] += p;
                    else acc[r][STAT_ATTN_NEXT] += p;
                }
            }
        // P (16 x AF_KEYS) as A fragments: the C layout of key columns 16kk.. is the A layout
#pragma unroll
        for (int kk = 0; kk < AF_KEYS / 16; kk++) {
            const uint32_t pa[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                                    pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                    pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
            for (int dn = 0; dn < HS / 8; dn++) {
                const __nv_bfloat16 *vr = &sVt[dn * 8 + g][kk * 16 + 2 * t];
                mma_bf16(o[dn], pa, *reinterpret_cast<const uint32_t *>(vr), *reinterpret_cast<const uint32_t *>(vr + 8));
            }
        }
    }

    // the output rows
#pragma unroll
    for (int r = 0; r < 2; r++)
        if (row[r] < T) {
            TOut *dst = out + (base + row[r]) * ldo + h * HS;
#pragma unroll
            for (int dn = 0; dn < HS / 8; dn++) store2(dst + dn * 8 + 2 * t, o[dn][2 * r], o[dn][2 * r + 1]);
        }

    // per row: the quad's sums; then the rows' sums in double over the warp and the block
    double wacc[AF_ROWSUMS];
#pragma unroll
    for (int s = 0; s < AF_ROWSUMS; s++) wacc[s] = 0.0;
#pragma unroll
    for (int r = 0; r < 2; r++) {
#pragma unroll
        for (int s = 0; s < AF_ROWSUMS; s++) {
            acc[r][s] += __shfl_xor_sync(0xffffffffu, acc[r][s], 1);
            acc[r][s] += __shfl_xor_sync(0xffffffffu, acc[r][s], 2);
        }
        const int i = row[r];
        if (t != 0 || i >= n) continue;                    // one lane per valid query row
        const int nk = causal ? i + 1 : n;                 // visible keys
        const double H = (double)logf(l[r]) - 0.6931471805599453 * (double)acc[r][STAT_ENTROPY];
        acc[r][STAT_ENTROPY_NORM] = 0.0f;
        for (int s = 0; s < AF_ROWSUMS; s++)
            if (s != STAT_ENTROPY && s != STAT_ENTROPY_NORM) wacc[s] += acc[r][s];
        wacc[STAT_ENTROPY] += H;
        if (nk > 1) wacc[STAT_ENTROPY_NORM] += H / log((double)nk);
    }
#pragma unroll
    for (int s = 0; s < AF_ROWSUMS; s++) wacc[s] = warp_sum(wacc[s]);
    if (lane == 0)
#pragma unroll
        for (int s = 0; s < AF_ROWSUMS; s++) sAcc[warp][s] = wacc[s];
    __syncthreads();
    const size_t ntiles = gridDim.x;
    if (threadIdx.x < AF_ROWSUMS) {
        double sum = 0;
        for (int w = 0; w < AF_WARPS; w++) sum += sAcc[w][threadIdx.x];
        part_rows[((size_t)bh * ntiles + tile) * AF_ROWSUMS + threadIdx.x] = sum;
        // the sink α_0 is the mean of p_i0 over the rows that see key 0: all valid rows, as attn_cls
        if (threadIdx.x == STAT_ATTN_CLS) part_cols[((size_t)bh * ntiles + tile) * T] = sum;
    }
}

extern "C" int cuda_attn_fused_supported(int HS) { return HS == 32 || HS == 64 || HS == 128; }

template <int HS, typename TIn, typename TOut>
static void launch(TOut *out, int ldo, const TIn *q, const TIn *k, const TIn *v, int ld, const int *len,
                   const uint8_t *tokcls, int B, int NH, int T, int causal, int window, double *part_rows,
                   double *part_cols)
{
    const dim3 grid((T + AF_QROWS - 1) / AF_QROWS, B * NH);
    attn_fused_kernel<HS, TIn, TOut><<<grid, 32 * AF_WARPS>>>(out, ldo, q, k, v, ld, len, tokcls, NH, T,
                                                              1.0f / sqrtf((float)HS), causal, window, part_rows, part_cols);
    KERNEL_CHECK("attn_fused_kernel");
}

template <typename TIn, typename TOut>
static void dispatch(TOut *out, int ldo, const TIn *q, const TIn *k, const TIn *v, int ld, const int *len,
                     const uint8_t *tokcls, int B, int NH, int T, int HS, int causal, int window, float *stats,
                     void *scratch)
{
    if (!cuda_attn_fused_supported(HS) || ld % 4 || ldo % 2 || (size_t)q % 16 || (size_t)k % 16 || (size_t)v % 16)
        check_fail(__FILE__, __LINE__, "cuda_attn_fused", "head size must be 32, 64 or 128, rows 16-byte aligned");
    if (B * NH == 0 || T == 0) return;
    const int ntiles = (T + AF_QROWS - 1) / AF_QROWS;
    double *part_rows = (double *)scratch, *part_cols = part_rows + (size_t)B * NH * ntiles * AF_ROWSUMS;
    if (HS == 32) launch<32>(out, ldo, q, k, v, ld, len, tokcls, B, NH, T, causal, window, part_rows, part_cols);
    else if (HS == 64) launch<64>(out, ldo, q, k, v, ld, len, tokcls, B, NH, T, causal, window, part_rows, part_cols);
    else launch<128>(out, ldo, q, k, v, ld, len, tokcls, B, NH, T, causal, window, part_rows, part_cols);
    attn_stats_finish(part_rows, part_cols, len, B, NH, T, ntiles, causal, stats);
}

extern "C" size_t cuda_attn_fused_scratch(int B, int NH, int T)
{
    const size_t tiles = (size_t)(T + AF_QROWS - 1) / AF_QROWS;
    return (size_t)B * NH * tiles * (AF_ROWSUMS + (size_t)T) * sizeof(double);
}

extern "C" void cuda_attn_fused(float *out, int ldo, const float *q, const float *k, const float *v, int ld,
                                const int *len, const uint8_t *tokcls, int B, int NH, int T, int HS, int causal,
                                int window, float *stats, void *scratch)
{
    dispatch(out, ldo, q, k, v, ld, len, tokcls, B, NH, T, HS, causal, window, stats, scratch);
}

extern "C" void cuda_attn_fused_bf16(void *out, int ldo, const void *q, const void *k, const void *v, int ld,
                                     const int *len, const uint8_t *tokcls, int B, int NH, int T, int HS, int causal,
                                     int window, float *stats, void *scratch)
{
    dispatch((__nv_bfloat16 *)out, ldo, (const __nv_bfloat16 *)q, (const __nv_bfloat16 *)k, (const __nv_bfloat16 *)v, ld,
             len, tokcls, B, NH, T, HS, causal, window, stats, scratch);
}
