// attn_vision.cuh — private to attn_fused.cu: the vision outputs of a patch model's layer
// (vstats.h's definitions) from the fused path, the probabilities never stored per head. A second
// pass over the scores, as the key-importance pass: each row's final log2 normaliser M_i from the
// first kernel (lse) gives p_ij = 2^(s_ij·sl2 − M_i) exactly as a flash backward recomputes P.
//  * One block per (image b, tile of AF_QROWS query rows, key tile). Every head in turn:
//    its Q fragments (from global memory, in L2), its kv head's K tile through shared memory
//    (cp.async, double-buffered over the heads), p from the scores. (A block per row tile that went
//    over every key tile was one wave of long blocks on an H200 for ViT-B at B = 128, a quarter of
//    them with one warp of rows: BENCHMARKS.md run 30.)
//  * The heads' fused map (mean, max or min: the rollout's input) of the key tile stays in the
//    thread's registers (its 2 rows x 16 keys) while the heads go by, then is written once:
//    (B, T, T) floats instead of (B, NH, T, T).
//  * Per head, each row's Σ p·‖c_i − c_j‖ and 2-D locality mass over the patch keys, from a table
//    in shared memory over every displacement of the grid (−(gh−1) .. gh−1 rows, −(gw−1) .. gw−1
//    columns) of pairs (‖(dx, dy)‖, 1 if |dx| ≤ 1 and |dy| ≤ 1 else 0), then half as many pairs
//    (0, 0): row i and key j carry offsets into it (ri, kj) and their pair is dtab[ri − kj], one
//    subtraction and one 8-byte load a probability, then two FMAs. A prefix key (or one past T)
//    has kj = −(ndisp − c0) (c0: the grid's centre, (ndisp − 1)/2), which lands in the zeros; a
//    row that is no patch (prefix, padding) takes the centre, looks up real pairs, and its sums
//    are dropped. Summed over the quad per step and kept in
//    shared memory per (head, row) in float (≤ T/4·⌈T/64⌉ terms), then over the block's rows in
//    double in a fixed order; and the [CLS] row (query 0) straight to cls. The rows' sums of each
//    (image, row tile, key tile, head) go to scratch; vis_finish_rows_kernel (attn_vision_kept.cuh)
//    adds them in a fixed order (deterministic) and writes the means.
// Images only: no padding (keys j >= len are not visible, but every image has len = T), not causal,
// no window.
#ifndef ATTNSCOPE_ATTN_VISION_CUH
#define ATTNSCOPE_ATTN_VISION_CUH
#include "attn_fused_ops.cuh"

#define AV_MAX_T 4096              // tokens (and av_fits: the displacement table, < 48 bytes a token, in shared memory)

template <class Ops, int HS> struct av_smem {
    typename Ops::krow k[2][AF_KEYS];            // key tiles (double-buffered)
    typename Ops::qspill qspill[AF_WARPS];
    // then, sized by the launch (av_smem_bytes): dtab (av_tab(av_disp)) float2 — (‖(dx, dy)‖ in patches,
    // 1 if within the 3 x 3 patches) at (dy + gh − 1)·(2gw − 1) + dx + gw − 1, then (av_disp + 1)/2
    // pairs (0, 0);
    // rs (NH, AF_QROWS, 2) floats — per head and row Σ p·distance and Σ p over the 3 x 3 patches;
    // kc (AF_KEYS) ints — key kt + j's offset dy·(2gw − 1) + dx (a prefix token, or none: −(av_disp − c0))
};
template <class Ops, int HS> __host__ __device__ constexpr size_t av_head_bytes() { return (sizeof(av_smem<Ops, HS>) + 15) / 16 * 16; }
// the displacements of a grid of gh x gw patches (< 4·gh·gw ≤ 4T)
static inline size_t av_disp(int gh, int gw) { return gh > 0 && gw > 0 ? (size_t)(2 * gh - 1) * (2 * gw - 1) : 0; }
// the table's pairs: every displacement, then the zeros that a prefix key's lookups land in
__host__ __device__ static inline size_t av_tab(size_t disp) { return disp + (disp + 1) / 2; }
template <class Ops, int HS> static size_t av_smem_bytes(int NH, size_t disp)
{
    return av_head_bytes<Ops, HS>() + av_tab(disp) * sizeof(float2) + ((size_t)NH * AF_QROWS * 2 + AF_KEYS) * sizeof(float);
}

// blocks per SM: as the first kernel's unless -DAV_MIN_BLOCKS=n (5: 96 registers, more spills, the
// same speed on an H200: BENCHMARKS.md run 36)
#ifdef AV_MIN_BLOCKS
template <class Ops, int HS> constexpr int av_min_blocks() { return af_min_blocks<Ops, HS>() > 1 ? AV_MIN_BLOCKS : 1; }
#else
template <class Ops, int HS> constexpr int av_min_blocks() { return af_min_blocks<Ops, HS>(); }
#endif

// MEAN: the heads' mean (the default fusion); else fusion 1 max, 2 min
template <class Ops, int HS, bool MEAN>
__global__ static void __launch_bounds__(32 * AF_WARPS, av_min_blocks<Ops, HS>())
attn_vision_kernel(const typename Ops::elem *q, const typename Ops::elem *k, int ld, const int *len, const float *lse,
                   int NH, int NKV, int T, float scale, int npre, int gh, int gw, int fusion, double *part, float *cls,
                   float *map)
{
    typedef typename Ops::elem elem;
    constexpr int VEC = 16 / sizeof(elem);
    extern __shared__ __align__(16) unsigned char av_raw[];
    av_smem<Ops, HS> &sm = *reinterpret_cast<av_smem<Ops, HS> *>(av_raw);
    const int dw = 2 * gw - 1, ndisp = (2 * gh - 1) * dw;   // the table's row length, the displacements
    const int c0 = (gh - 1) * dw + gw - 1, ntab = (int)av_tab(ndisp);   // the centre (0, 0); the pairs
    float2 *dtab = reinterpret_cast<float2 *>(av_raw + av_head_bytes<Ops, HS>());
    float *rs = reinterpret_cast<float *>(dtab + ntab);
    int *kc = reinterpret_cast<int *>(rs + NH * AF_QROWS * 2);
    const int b = blockIdx.y, tile = blockIdx.x, q0 = tile * AF_QROWS, kt = blockIdx.z * AF_KEYS;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
    const int n = len[b] < 0 ? 0 : len[b] > T ? T : len[b], np = T - npre;
    const int row[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
    const int lrow[2] = {warp * 16 + g, warp * 16 + g + 8};   // the rows in the block
    const size_t base = (size_t)b * T;
    const float sl2 = scale * 1.4426950408889634f;
    // a warp whose 16 rows all lie past the length (ViT-B's 197 tokens: 3 of the last tile's 4
    // warps) only helps with the copies; key columns past it are skipped (warp-uniform tests)
    const bool live = q0 + warp * 16 < n;
    for (int jj = threadIdx.x; jj < AF_KEYS; jj += blockDim.x) {
        const int j = kt + jj;
        kc[jj] = j < npre || j >= T ? -(ndisp - c0) : (j - npre) / gw * dw + (j - npre) % gw;
    }
    for (int e = threadIdx.x; e < ntab; e += blockDim.x) {
        const int dy = e / dw - (gh - 1), dx = e % dw - (gw - 1);
        dtab[e] = e < ndisp ? make_float2(sqrtf((float)(dx * dx + dy * dy)), dx >= -1 && dx <= 1 && dy >= -1 && dy <= 1 ? 1.0f : 0.0f)
                            : make_float2(0.0f, 0.0f);
    }
    for (int e = threadIdx.x; e < NH * AF_QROWS * 2; e += blockDim.x) rs[e] = 0.0f;
    // the rows' pointers into the table: dtab[ri − kj] is row i's pair for key j (a row that is no
    // patch takes the grid's centre, whose lookups stay in the table: its sums are dropped)
    const float2 *rtab[2];
    bool rpatch[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        rpatch[r] = row[r] >= npre && row[r] < n;
        rtab[r] = dtab + (rpatch[r] ? (row[r] - npre) / gw * dw + (row[r] - npre) % gw : 0) + c0;
    }
    constexpr int CP_COLS = HS / VEC, CP_ROWS = 32 * AF_WARPS / CP_COLS;
    const int cp_r0 = threadIdx.x / CP_COLS, cp_cv = threadIdx.x % CP_COLS * VEC;
    // the copies of step s = (key tile s / NH, head s % NH) into buffer buf
    const int grp = NH / NKV;                    // query heads a kv head
    auto issue = [&](int s, int buf) {
        const int h = s, kvh = grp == 1 ? h : h / grp;   // (no division per step where every head has its own)
        const size_t off = base * ld + (size_t)kvh * HS + cp_cv;
        if (kt + AF_KEYS <= T) {                 // (every row exists: one product, constant steps, as attn_fused_kernel)
            const size_t src = off + (size_t)(kt + cp_r0) * ld, step = (size_t)CP_ROWS * ld;
#pragma unroll
            for (int c = 0; c < AF_KEYS / CP_ROWS; c++) cp_async16(&sm.k[buf][cp_r0 + c * CP_ROWS][cp_cv], k + src + c * step, true);
        } else {
            for (int r = cp_r0; r < AF_KEYS; r += CP_ROWS) {
                const int j = kt + r;
                cp_async16(&sm.k[buf][r][cp_cv], k + off + (size_t)(j < T ? j : T - 1) * ld, j < T);
            }
        }
        cp_async_commit();
    };
    const int steps = kt < n ? NH : 0;         // (a key tile past the length: nothing)
    if (steps > 0) issue(0, 0);
    const float init = !MEAN && fusion == 2 ? INFINITY : 0.0f;
    float acc[AF_KEYS / 8][4];                   // the fused map of the key tile: row g + 8(e >> 1), key 2t + (e & 1)
#pragma unroll
    for (int nt = 0; nt < AF_KEYS / 8; nt++) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = init;
    // head h's Q fragments and the rows' normalisers (+inf: p = 0), loaded a head ahead: head h + 1's
    // loads are issued once head h's scores are made, and arrive while its probabilities are
    // summed (loaded just before their use, their latency stalled every step)
    typename Ops::qfrag qf;
    float M[2];
    auto load_head = [&](int h) {
        Ops::load_q(qf, row[0] < n ? q + (base + row[0]) * ld + h * HS : NULL,
                    row[1] < n ? q + (base + row[1]) * ld + h * HS : NULL, t, &sm.qspill[warp], lane);
#pragma unroll
        for (int r = 0; r < 2; r++) M[r] = row[r] < n ? lse[((size_t)b * NH + h) * T + row[r]] : INFINITY;
    };
    if (live && steps > 0) load_head(0);
    for (int s = 0; s < steps; s++) {
        const int h = s, buf = s & 1;
        cp_async_wait<0>();
        __syncthreads();   // this step's tile is in; every warp is done with the buffer the next copies reuse
        if (s + 1 < steps) issue(s + 1, buf ^ 1);
        if (live) {   // (a dead warp's map rows are written 0 below)
            float sc[AF_KEYS / 8][4];
            Ops::scores(sc, qf, sm.k[buf], lane);
            const float Mh[2] = {M[0], M[1]};
            if (s + 1 < steps) load_head(h + 1);   // (qf is free: its scores are made)
            float rd[2] = {0.0f, 0.0f}, rl[2] = {0.0f, 0.0f};
            // the probabilities (in place of the scores), then the map, the pairs' sums and the [CLS]
            // row from them; keys past the length p = 0 (a tile wholly below it tests none)
            auto elements = [&](auto full_tile) {
#pragma unroll
                for (int nt = 0; nt < AF_KEYS / 8; nt++) {
                    if (!decltype(full_tile)::value && kt + nt * 8 >= n) break;   // (their map entries are written 0)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const bool ok = decltype(full_tile)::value || kt + nt * 8 + 2 * t + (e & 1) < n;
                        sc[nt][e] = ok ? ex2(fmaf(sc[nt][e], sl2, -Mh[e >> 1])) : 0.0f;
                        acc[nt][e] = MEAN ? acc[nt][e] + sc[nt][e] : fusion == 1 ? fmaxf(acc[nt][e], sc[nt][e]) : fminf(acc[nt][e], sc[nt][e]);
                    }
#pragma unroll
                    for (int c = 0; c < 2; c++) {
                        const int kj = kc[nt * 8 + 2 * t + c];
#pragma unroll
                        for (int r = 0; r < 2; r++) {
                            const float2 dl = rtab[r][-kj];
                            rd[r] = fmaf(sc[nt][2 * r + c], dl.x, rd[r]);
                            rl[r] = fmaf(sc[nt][2 * r + c], dl.y, rl[r]);   // (p·1 + rl: the add, exactly)
                        }
                    }
                }
            };
            if (kt + AF_KEYS <= n) elements(std::true_type{});
            else elements(std::false_type{});
            // the [CLS] row (query 0: lanes g = 0 of the first warp of the first row tile)
            if (q0 == 0 && warp == 0 && g == 0)
#pragma unroll
                for (int nt = 0; nt < AF_KEYS / 8; nt++)
#pragma unroll
                    for (int c = 0; c < 2; c++) {
                        const int j = kt + nt * 8 + 2 * t + c;
                        if (j < n && j >= npre) cls[((size_t)b * NH + h) * np + (j - npre)] = sc[nt][c];
                    }
            // the step's row sums over the quad, into the head's per-row sums
#pragma unroll
            for (int r = 0; r < 2; r++) {
                rd[r] += __shfl_xor_sync(0xffffffffu, rd[r], 1);
                rd[r] += __shfl_xor_sync(0xffffffffu, rd[r], 2);
                rl[r] += __shfl_xor_sync(0xffffffffu, rl[r], 1);
                rl[r] += __shfl_xor_sync(0xffffffffu, rl[r], 2);
                if (t == 0 && rpatch[r]) { rs[(h * AF_QROWS + lrow[r]) * 2] += rd[r]; rs[(h * AF_QROWS + lrow[r]) * 2 + 1] += rl[r]; }
            }
        }
        if (h != NH - 1) continue;
        // the key tile's fused map after its last head (mean: the sum times 1/NH); padding 0
        const float inv = MEAN ? 1.0f / (float)NH : 1.0f;
#pragma unroll
        for (int r = 0; r < 2; r++) {
            if (row[r] >= T) continue;
            float *dst = map + (base + row[r]) * T;
#pragma unroll
            for (int nt = 0; nt < AF_KEYS / 8; nt++)
#pragma unroll
                for (int c = 0; c < 2; c++) {
                    const int j = kt + nt * 8 + 2 * t + c;
                    if (j < T) dst[j] = j < n && row[r] < n ? acc[nt][2 * r + c] * inv : 0.0f;
                }
        }
    }
    __syncthreads();
    // the block's rows' sums per head, rows in order, in double
    for (int h = threadIdx.x; h < NH; h += blockDim.x) {
        double d = 0.0, l = 0.0;
        for (int r = 0; r < AF_QROWS; r++) { d += rs[(h * AF_QROWS + r) * 2]; l += rs[(h * AF_QROWS + r) * 2 + 1]; }
        double *pp = part + ((((size_t)b * gridDim.x + tile) * gridDim.z + blockIdx.z) * NH + h) * 2;
        pp[0] = d;
        pp[1] = l;
    }
    // rows of a sample with no token (none for an image): the map's rows 0
    if (n == 0 && blockIdx.z == 0)
        for (int e = threadIdx.x; e < AF_QROWS * T && q0 + e / T < T; e += blockDim.x) map[(base + q0 + e / T) * T + e % T] = 0.0f;
}

// whether a layer of T tokens and NH heads fits (the tables in shared memory)
template <class Ops, int HS> static bool av_fits(int T, int NH)
{
    int dev = 0, optin = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    return T <= AV_MAX_T && av_smem_bytes<Ops, HS>(NH, 4 * (size_t)T) <= (size_t)optin;
}
#endif
