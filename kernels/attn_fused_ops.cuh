// attn_fused_ops.cuh — private to attn_fused.cu: the kernel's geometry (AF_*), the PTX wrappers
// (mma.sync, ldmatrix, the TF32 split; Hopper's wgmma and its descriptors) and the two operand
// policies it is instantiated with: ops_bf16 (`--precision bf16`) and ops_tf32x3 (`--precision
// fp32`, 3xTF32), each giving the Q fragments, the scores of a key tile and the tile's P·V (with
// the per-key columns) for one warp's 16 query rows; ops_bf16 also from TMA's swizzled tiles, by
// ldmatrix (scores_sw, pv_sw) or on the warpgroup MMA (scores_wg, pv_wg: the block's 4 warps
// together). attn_fused.cu's header comment describes the design they serve.
#ifndef ATTNSCOPE_ATTN_FUSED_OPS_CUH
#define ATTNSCOPE_ATTN_FUSED_OPS_CUH
#include "kernels.h"
#include "kernel_util.cuh"
#include <cuda_bf16.h>
#include <float.h>
#include <stdint.h>
#include <type_traits>
extern "C" {
#include "stats.h"
}

#define AF_WARPS 4
#define AF_QROWS (16 * AF_WARPS)   // query rows per block
#define AF_KEYS 64                 // keys per shared-memory tile
#define AF_ROWSUMS STAT_SINK       // STAT_ENTROPY .. STAT_ATTN_NEXT: means over rows
#define AF_SLACK 8.0f              // log2 units the running max may lag the true one

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

// c (16x8, fp32) += a (16x8, tf32, row) · b (8x8, tf32, col): the operands' registers hold floats
// already rounded to TF32
__device__ static inline void mma_tf32(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
#if __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}
// x = hi + lo, both TF32 (3xTF32 operands), as the 32-bit registers mma_tf32 takes
__device__ static inline void split_tf32(float x, uint32_t &hi, uint32_t &lo)
{
#if __CUDA_ARCH__ >= 800
    const float h = tf32_rna(x);
    hi = __float_as_uint(h);
    lo = __float_as_uint(tf32_rna(x - h));
#endif
}

// 2^x in one MUFU op; results below 2^-126 flush to 0 (p that small adds nothing to a float sum
// of probabilities; x = -1e4 for masked keys gives exactly 0)
__device__ static inline float ex2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

// A running top-k list, largest first: tv scores, ti keys (−1: empty, score −inf).
// topk_insert: (v, j) with j above every key in the list, so an equal score ranks after
// (ties to the lower position); the caller has checked v > tv[K − 1]. From the first slot v beats,
// every entry moves down one.
template <int K> __device__ static inline void topk_insert(float (&tv)[K], int (&ti)[K], float v, int j)
{
    bool moved = false;
#pragma unroll
    for (int r = 0; r < K; r++) {
        const bool take = moved || v > tv[r];
        const float ov = tv[r];
        const int oj = ti[r];
        if (take) { tv[r] = v; ti[r] = j; v = ov; j = oj; }
        moved = take;
    }
}
// topk_merge: (v, j) from another list, any j: ranks before an equal score with a higher key
template <int K> __device__ static inline void topk_merge(float (&tv)[K], int (&ti)[K], float v, int j)
{
    bool moved = false;
#pragma unroll
    for (int r = 0; r < K; r++) {
        const bool take = moved || (j >= 0 && (v > tv[r] || (v == tv[r] && (ti[r] < 0 || j < ti[r]))));
        const float ov = tv[r];
        const int oj = ti[r];
        if (take) { tv[r] = v; ti[r] = j; v = ov; j = oj; }
        moved = take;
    }
}

// a shared-memory pointer as the 32-bit address the PTX below takes
__device__ static inline unsigned smem_u32(const void *p) { return (unsigned)__cvta_generic_to_shared(p); }
__device__ static inline void store2(float *p, float a, float b) { *reinterpret_cast<float2 *>(p) = make_float2(a, b); }
__device__ static inline void store2(__nv_bfloat16 *p, float a, float b) { *reinterpret_cast<uint32_t *>(p) = pack_bf16(a, b); }

// 16 bytes global → shared without a register stop (sm_80+); ok = 0 zero-fills (src stays valid)
__device__ static inline void cp_async16(void *dst, const void *src, bool ok)
{
#if __CUDA_ARCH__ >= 800
    const unsigned d = smem_u32(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(ok ? 16 : 0));
#endif
}
__device__ static inline void cp_async_commit()
{
#if __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::);
#endif
}
template <int N> __device__ static inline void cp_async_wait()
{
#if __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}
// four 8x8 bf16 matrices: the B fragments of Q·Kᵀ straight from K's rows
__device__ static inline void ldsm_x4(uint32_t r[4], const void *p)
{
#if __CUDA_ARCH__ >= 800
    const unsigned a = smem_u32(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
#endif
}
// four 8x8 bf16 matrices, transposed: the B fragments of P·V straight from V's rows
__device__ static inline void ldsm_x4_trans(uint32_t r[4], const void *p)
{
#if __CUDA_ARCH__ >= 800
    const unsigned a = smem_u32(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
#endif
}
// two 8x8 bf16 matrices, transposed (lanes 0..15 address their rows)
__device__ static inline void ldsm_x2_trans(uint32_t r[2], const void *p)
{
#if __CUDA_ARCH__ >= 800
    const unsigned a = smem_u32(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(a));
#endif
}

// ---- Hopper's warpgroup MMA (sm_90a): the block's 4 warps are one warpgroup; D (64 x 64, fp32)
// += A (64 x 16, bf16, from registers: warp w's rows 16w.., the m16n8k16 A layout) · B (16 x 64,
// bf16, in shared memory through a descriptor). D's registers take the m16n8 accumulator layout
// of each 8-column tile in turn: the same s[nt][e] / o[dn][e] as mma.sync's.
// The descriptor of a tile in the 128-byte swizzle (attn_tma.cuh): start address, the leading and
// stride byte offsets (16-byte units; stride: 8 rows of 128 bytes), layout 1 (SWIZZLE_128B).
#ifndef WG_K_LBO
#define WG_K_LBO 1     // K (B of Q·Kᵀ, K-major): unused by the swizzled K-major layout
#endif
#ifndef WG_K_SBO
#define WG_K_SBO 64    // 1024 bytes between 8-key groups
#endif
#ifndef WG_V_LBO
#define WG_V_LBO 64    // V (B of P·V, MN-major: trans-b): 1024 bytes between 8-key groups (the
                       // layout reads one of LBO, SBO for it, the other strides along N: unused, N = 64 is one 128-byte row)
#endif
#ifndef WG_V_SBO
#define WG_V_SBO 64
#endif
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define AF_WGMMA 1
#endif
__device__ static inline uint64_t wg_desc(const void *p, int lbo, int sbo)
{
    const unsigned a = smem_u32(p);
    return (uint64_t)((a & 0x3FFFF) >> 4) | ((uint64_t)lbo << 16) | ((uint64_t)sbo << 32) | ((uint64_t)1 << 62);
}
__device__ static inline void wg_fence()
{
#ifdef AF_WGMMA
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ static inline void wg_commit_wait()
{
#ifdef AF_WGMMA
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
#endif
}
// d (8 tiles of 4) = [d +] a · B; TB: B MN-major (trans-b); acc = 0: d = a · B
template <int TB> __device__ static inline void wg_m64n64k16(float (&d)[8][4], const uint32_t a[4], uint64_t desc, int acc)
{
#ifdef AF_WGMMA
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %38, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
                 "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,"
                 "%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, p, 1, 1, %37;\n}\n"
                 : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]),
                   "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]),
                   "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]),
                   "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),
                   "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "n"(TB), "r"(acc));
#endif
}

// ---- the operand policies: element type, shared-memory padding, Q fragments, S = Q·Kᵀ, O += P̃·V.
// S and O use the m16n8 accumulator layout (lane g = lane/4, t = lane%4 holds rows g and g + 8,
// columns 2t and 2t + 1 of each 8-column tile).

// bf16 tensor cores (m16n8k16). Rows padded by 8 elements: conflict-free fragment loads.
template <int HS> struct ops_bf16 {
    typedef __nv_bfloat16 elem;
    static constexpr int PAD = 8;
    typedef elem krow[HS + PAD];
    typedef elem xrow[16 + PAD];                  // the key columns (af_smem::x: 0..7 used), 48-byte rows: no bank conflicts
    struct qfrag { uint32_t a[HS / 16][4]; };
    struct qspill { uint4 unused; };              // every Q fragment fits in registers
    // A fragments of 16 rows: pairs 2t, 2t+1 and 2t+8, 2t+9 of rows g (src0) and g + 8 (src1)
    __device__ static void load_q(qfrag &f, const elem *src0, const elem *src1, int t, qspill *, int)
    {
#pragma unroll
        for (int ks = 0; ks < HS / 16; ks++) {
            f.a[ks][0] = src0 ? *reinterpret_cast<const uint32_t *>(src0 + ks * 16 + 2 * t) : 0;
            f.a[ks][1] = src1 ? *reinterpret_cast<const uint32_t *>(src1 + ks * 16 + 2 * t) : 0;
            f.a[ks][2] = src0 ? *reinterpret_cast<const uint32_t *>(src0 + ks * 16 + 2 * t + 8) : 0;
            f.a[ks][3] = src1 ? *reinterpret_cast<const uint32_t *>(src1 + ks * 16 + 2 * t + 8) : 0;
        }
    }
    // A key tile's rows as ldmatrix addresses them (row r, 16-byte chunk c): padded rows (krow:
    // the threads' copies), or TMA's dense 128-byte rows in the 128-byte swizzle (attn_tma.cuh;
    // HS = 64: the chunk c of row r at chunk c ^ (r % 8); every row a lane addresses is ≡ lane
    // (mod 8), so the eight rows of a matrix fall on distinct banks)
    struct rows_padded {
        const krow *t;
        __device__ const elem *at(int r, int c) const { return &t[r][c * 8]; }
    };
    struct rows_sw {
        const elem *t;
        __device__ const elem *at(int r, int c) const { return t + r * HS + ((c ^ (r & 7)) << 3); }
    };
    // K's B fragments by ldmatrix: lane l addresses key row 8nt + l%8, columns 16ks + 8(l/8):
    // matrices 0, 1 are b0, b1 of step ks, matrices 2, 3 those of ks + 1
    template <class R> __device__ static void scores_rows(float s[AF_KEYS / 8][4], const qfrag &f, R K, int lane)
    {
#pragma unroll
        for (int nt = 0; nt < AF_KEYS / 8; nt++) {
            s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
            for (int ks = 0; ks < HS / 16; ks += 2) {
                uint32_t kb[4];
                ldsm_x4(kb, K.at(nt * 8 + (lane & 7), 2 * ks + (lane >> 3)));
                mma_bf16(s[nt], f.a[ks], kb[0], kb[1]);
                mma_bf16(s[nt], f.a[ks + 1], kb[2], kb[3]);
            }
        }
    }
    // P̃ (the s registers) as A fragments: the C layout of key columns 16kk.. is the A layout. V's
    // B fragments by ldmatrix.trans: lane l addresses row 16kk + 8((l/8) & 1) + l%8, columns
    // 8(dn + l/16): matrices 0, 1 are b0, b1 of d-tile dn, matrices 2, 3 those of dn + 1
    // The key columns' tile (columns 0..7) the same way, into the fresh per-tile accumulator xc.
    template <class R>
    __device__ static void pv_rows(float o[HS / 8][4], float s[AF_KEYS / 8][4], R V, const xrow *X, int lane, float xc[4])
    {
#pragma unroll
        for (int e = 0; e < 4; e++) xc[e] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < AF_KEYS / 16; kk++) {
            const uint32_t pa[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                                    pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                    pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
            const int vr = kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7);
#pragma unroll
            for (int dn = 0; dn < HS / 8; dn += 2) {
                uint32_t vb[4];
                ldsm_x4_trans(vb, V.at(vr, dn + (lane >> 4)));
                mma_bf16(o[dn], pa, vb[0], vb[1]);
                mma_bf16(o[dn + 1], pa, vb[2], vb[3]);
            }
            uint32_t xb[2];
            ldsm_x2_trans(xb, &X[vr][0]);
            mma_bf16(xc, pa, xb[0], xb[1]);
        }
    }
    __device__ static void scores(float s[AF_KEYS / 8][4], const qfrag &f, const krow *K, int lane)
    {
        scores_rows(s, f, rows_padded{K}, lane);
    }
    __device__ static void pv(float o[HS / 8][4], float s[AF_KEYS / 8][4], const krow *V, const xrow *X, int lane,
                              float xc[4])
    {
        pv_rows(o, s, rows_padded{V}, X, lane, xc);
    }
    // the same from TMA's swizzled tiles
    __device__ static void scores_sw(float s[AF_KEYS / 8][4], const qfrag &f, const elem *K, int lane)
    {
        static_assert(HS == 64, "128-byte rows");
        scores_rows(s, f, rows_sw{K}, lane);
    }
    __device__ static void pv_sw(float o[HS / 8][4], float s[AF_KEYS / 8][4], const elem *V, const xrow *X, int lane,
                                 float xc[4])
    {
        static_assert(HS == 64, "128-byte rows");
        pv_rows(o, s, rows_sw{V}, X, lane, xc);
    }
    // The same on the warpgroup MMA (sm_90a, HS = 64): every warp of the block calls them together
    __device__ static void scores_wg(float s[AF_KEYS / 8][4], const qfrag &f, const elem *K)
    {
        static_assert(HS == 64 && AF_KEYS == 64 && AF_WARPS == 4, "one m64n64 warpgroup tile");
        float (&d)[8][4] = *reinterpret_cast<float (*)[8][4]>(s);
        wg_fence();
#pragma unroll
        for (int ks = 0; ks < HS / 16; ks++) wg_m64n64k16<0>(d, f.a[ks], wg_desc(K + ks * 16, WG_K_LBO, WG_K_SBO), ks);
        wg_commit_wait();
    }
    __device__ static void pv_wg(float o[HS / 8][4], float s[AF_KEYS / 8][4], const elem *V, const xrow *X, int lane,
                                 float xc[4])
    {
        static_assert(HS == 64 && AF_KEYS == 64 && AF_WARPS == 4, "one m64n64 warpgroup tile");
        float (&d)[8][4] = *reinterpret_cast<float (*)[8][4]>(o);
        uint32_t pa[AF_KEYS / 16][4];
#pragma unroll
        for (int kk = 0; kk < AF_KEYS / 16; kk++) {
            pa[kk][0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
            pa[kk][1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
            pa[kk][2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            pa[kk][3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
        }
        // the key columns on mma.sync first (pa may not be read while a wgmma holds it)
#pragma unroll
        for (int e = 0; e < 4; e++) xc[e] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < AF_KEYS / 16; kk++) {
            const int vr = kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7);
            uint32_t xb[2];
            ldsm_x2_trans(xb, &X[vr][0]);
            mma_bf16(xc, pa[kk], xb[0], xb[1]);
        }
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < AF_KEYS / 16; kk++) wg_m64n64k16<1>(d, pa[kk], wg_desc(V + kk * 16 * HS, WG_V_LBO, WG_V_SBO), 1);
        wg_commit_wait();
    }
};

// 3xTF32 (m16n8k8). Rows padded by 4 floats: the K fragments (row g, column t) and V fragments
// (rows 2t, 2t + 1, column g) fall on distinct banks.
// Heads of 128 (BIG): Q's hi and lo fragments (128 registers), O and a fresh per-tile P·V
// accumulator (64 each) do not fit in a thread's 255 registers. There Q's lo fragments live in
// shared memory (qspill: 8 KiB per warp, one 16-byte load per use), the scores' cross terms and
// hi·hi go to two accumulators summed once, and P·V takes each 8-column slice of O in a fresh
// 4-register accumulator over the tile's keys, from P̃ split to hi/lo once per tile.
template <int HS> struct ops_tf32x3 {
    typedef float elem;
    static constexpr int PAD = 4;
    static constexpr bool BIG = HS > 64;
    typedef elem krow[HS + PAD];
    typedef elem xrow[16 + PAD];                  // the key columns (af_smem::x)
    struct qfrag { uint32_t hi[HS / 8][4], lo[BIG ? 1 : HS / 8][4]; const uint4 *lo_sm; };
    struct qspill { uint4 lo[BIG ? HS / 8 : 1][32]; };   // [ks][lane]: the lane's lo fragment
    // A fragments: a0 (row g, column t), a1 (g + 8, t), a2 (g, t + 4), a3 (g + 8, t + 4)
    __device__ static void load_q(qfrag &f, const elem *src0, const elem *src1, int t, qspill *sp, int lane)
    {
        f.lo_sm = BIG ? &sp->lo[0][lane] : nullptr;
#pragma unroll
        for (int ks = 0; ks < HS / 8; ks++) {
            const float x[4] = {src0 ? src0[ks * 8 + t] : 0.0f, src1 ? src1[ks * 8 + t] : 0.0f,
                                src0 ? src0[ks * 8 + t + 4] : 0.0f, src1 ? src1[ks * 8 + t + 4] : 0.0f};
            uint32_t lo[4];
#pragma unroll
            for (int e = 0; e < 4; e++) split_tf32(x[e], f.hi[ks][e], lo[e]);
            if constexpr (BIG) {
                sp->lo[ks][lane] = make_uint4(lo[0], lo[1], lo[2], lo[3]);
            } else {
#pragma unroll
                for (int e = 0; e < 4; e++) f.lo[ks][e] = lo[e];
            }
        }
    }
    // per 8-key tile: the cross terms over all of HS first, then hi·hi (its truncation stays ~ulp);
    // BIG: the cross terms and hi·hi in two accumulators, K split once per element
    __device__ static void scores(float s[AF_KEYS / 8][4], const qfrag &f, const krow *K, int lane)
    {
        const int g = lane >> 2, t = lane & 3;
        if constexpr (BIG) {
#pragma unroll
            for (int nt = 0; nt < AF_KEYS / 8; nt++) {
                float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
                s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
                for (int ks = 0; ks < HS / 8; ks++) {
                    uint32_t kh0, kl0, kh1, kl1;
                    split_tf32(K[nt * 8 + g][ks * 8 + t], kh0, kl0);
                    split_tf32(K[nt * 8 + g][ks * 8 + t + 4], kh1, kl1);
                    const uint4 l4 = f.lo_sm[ks * 32];
                    const uint32_t lo[4] = {l4.x, l4.y, l4.z, l4.w};
                    mma_tf32(c, lo, kh0, kh1);
                    mma_tf32(c, f.hi[ks], kl0, kl1);
                    mma_tf32(s[nt], f.hi[ks], kh0, kh1);
                }
#pragma unroll
                for (int e = 0; e < 4; e++) s[nt][e] += c[e];
            }
        } else {
#pragma unroll
            for (int nt = 0; nt < AF_KEYS / 8; nt++) {
                s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
                uint32_t kh[HS / 8][2], kl[HS / 8][2];
#pragma unroll
                for (int ks = 0; ks < HS / 8; ks++) {          // b0 (k = t, n = g), b1 (k = t + 4, n = g)
                    split_tf32(K[nt * 8 + g][ks * 8 + t], kh[ks][0], kl[ks][0]);
                    split_tf32(K[nt * 8 + g][ks * 8 + t + 4], kh[ks][1], kl[ks][1]);
                    mma_tf32(s[nt], f.lo[ks], kh[ks][0], kh[ks][1]);
                    mma_tf32(s[nt], f.hi[ks], kl[ks][0], kl[ks][1]);
                }
#pragma unroll
                for (int ks = 0; ks < HS / 8; ks++) mma_tf32(s[nt], f.hi[ks], kh[ks][0], kh[ks][1]);
            }
        }
    }
    // 8-key step kk: its S tile holds keys 2t, 2t + 1 of rows g, g + 8; as the A operand's
    // columns t and t + 4 they pair with V's rows 2t and 2t + 1 (b0, b1). Each key tile's product
    // in a fresh accumulator, added to O in round-to-nearest.
    // The key columns (integers and 0/1: exact in TF32, no lo part) times P̃'s hi and lo, into the
    // fresh per-tile accumulator xc.
    __device__ static void pv(float o[HS / 8][4], float s[AF_KEYS / 8][4], const krow *V, const xrow *X, int lane,
                              float xc[4])
    {
        const int g = lane >> 2, t = lane & 3;
#pragma unroll
        for (int e = 0; e < 4; e++) xc[e] = 0.0f;
        if constexpr (BIG) {
            uint32_t ph[AF_KEYS / 8][4], pl[AF_KEYS / 8][4];
#pragma unroll
            for (int kk = 0; kk < AF_KEYS / 8; kk++) {     // the A layout as below
                split_tf32(s[kk][0], ph[kk][0], pl[kk][0]);
                split_tf32(s[kk][2], ph[kk][1], pl[kk][1]);
                split_tf32(s[kk][1], ph[kk][2], pl[kk][2]);
                split_tf32(s[kk][3], ph[kk][3], pl[kk][3]);
            }
#pragma unroll
            for (int dn = 0; dn < HS / 8; dn++) {
                float ot[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
                for (int kk = 0; kk < AF_KEYS / 8; kk++) {
                    uint32_t vh0, vl0, vh1, vl1;
                    split_tf32(V[kk * 8 + 2 * t][dn * 8 + g], vh0, vl0);
                    split_tf32(V[kk * 8 + 2 * t + 1][dn * 8 + g], vh1, vl1);
                    mma_tf32(ot, pl[kk], vh0, vh1);
                    mma_tf32(ot, ph[kk], vl0, vl1);
                    mma_tf32(ot, ph[kk], vh0, vh1);
                }
#pragma unroll
                for (int e = 0; e < 4; e++) o[dn][e] += ot[e];
            }
#pragma unroll
            for (int kk = 0; kk < AF_KEYS / 8; kk++) {
                const uint32_t c0 = __float_as_uint(X[kk * 8 + 2 * t][g]), c1 = __float_as_uint(X[kk * 8 + 2 * t + 1][g]);
                mma_tf32(xc, pl[kk], c0, c1);
                mma_tf32(xc, ph[kk], c0, c1);
            }
        } else {
            float ot[HS / 8][4];
#pragma unroll
            for (int dn = 0; dn < HS / 8; dn++) ot[dn][0] = ot[dn][1] = ot[dn][2] = ot[dn][3] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < AF_KEYS / 8; kk++) {
                uint32_t ph[4], pl[4];
                split_tf32(s[kk][0], ph[0], pl[0]);           // (g, key 2t)
                split_tf32(s[kk][2], ph[1], pl[1]);           // (g + 8, key 2t)
                split_tf32(s[kk][1], ph[2], pl[2]);           // (g, key 2t + 1)
                split_tf32(s[kk][3], ph[3], pl[3]);           // (g + 8, key 2t + 1)
#pragma unroll
                for (int dn = 0; dn < HS / 8; dn++) {
                    uint32_t vh0, vl0, vh1, vl1;
                    split_tf32(V[kk * 8 + 2 * t][dn * 8 + g], vh0, vl0);
                    split_tf32(V[kk * 8 + 2 * t + 1][dn * 8 + g], vh1, vl1);
                    mma_tf32(ot[dn], pl, vh0, vh1);
                    mma_tf32(ot[dn], ph, vl0, vl1);
                    mma_tf32(ot[dn], ph, vh0, vh1);
                }
                const uint32_t c0 = __float_as_uint(X[kk * 8 + 2 * t][g]), c1 = __float_as_uint(X[kk * 8 + 2 * t + 1][g]);
                mma_tf32(xc, pl, c0, c1);
                mma_tf32(xc, ph, c0, c1);
            }
#pragma unroll
            for (int dn = 0; dn < HS / 8; dn++)
#pragma unroll
                for (int e = 0; e < 4; e++) o[dn][e] += ot[dn][e];
        }
    }
};
// > 48 KiB of shared memory is opt-in, once per kernel
template <typename K> static void smem_opt_in(K kernel, size_t smem, int *done)
{
    if (*done) return;
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) check_fail(__FILE__, __LINE__, "cudaFuncSetAttribute", cudaGetErrorString(e));
    *done = 1;
}

#endif
