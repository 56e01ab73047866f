// attn_fused.cu — attention and the per-head scalar statistics of stats_head() (STAT_ENTROPY ..
// STAT_SINK) in one kernel, the probabilities never stored: the fused path when no per-token
// output (top-k, key importance, /attention, head similarity) wants them. Two operand policies
// share everything but the matrix products:
//  * ops_bf16 (`--precision bf16`): bf16 q, k, v; mma.sync m16n8k16 bf16, fp32 accumulation.
//  * ops_tf32x3 (`--precision fp32`): fp32 q, k, v; every product as 3xTF32 (x = hi + lo, both
//    TF32: hi·hi + hi·lo + lo·hi, as split.cu) on mma.sync m16n8k8, the small terms first and
//    each key tile's P·V in a fresh accumulator (the tensor cores' fp32 accumulation truncates):
//    scores and output within fp32 rounding of the CPU's.
//
// Design (flash-attention style):
//  * One block of AF_WARPS warps per (sample b, head h, tile of 16·AF_WARPS query rows); warp w
//    owns 16 rows, its Q fragments stay in registers. Keys go through shared memory in tiles of
//    AF_KEYS, only the tiles below the sample's length (and the diagonal when causal): padding
//    costs nothing.
//  * One pass over the keys with the online softmax: every statistic is a p-weighted sum, so it is
//    kept unnormalised and rescaled with the running max like the output O (bf16: P̃·V with P̃
//    rounded to bf16, as transformers' eager bf16 rounds P before P·V: the same relative rounding).
//  * Entropy without a log per element: ln p = (s − m) − ln l, so H = ln l − Σ p (s − m).
//  * Statistics that weight p by a property of the key alone go through the tensor cores: P̃ times
//    per-key columns (af_smem::x) in one more n-tile of P·V gives the [SEP], punctuation and
//    [CLS] masses, and on key tiles wholly left or right of the warp's rows the distance
//    sgn·(Σ p̃·(j − kt) + (kt − i)·Σ p̃) from the same n-tile's columns j − kt and 1. The bf16
//    policy thus rounds p̃ to bf16 in these (≤ 2^-8 relative, as in P·V); 3xTF32 keeps them
//    fp32-accurate. Only tiles within reach of the warp's rows test |i − j| per
//    element (distance, locality, self, previous, next), and there only the 8-key groups within
//    reach; a far tile costs five instructions per probability (FFMA, FMNMX, EX2, two adds).
//  * The running max may lag the true one by AF_SLACK (log2 units): most tiles skip the rescale.
//  * Row sums reduce over the quad (the 4 lanes of a row), then over the block's rows in double,
//    in a fixed order; the last block of a head to finish sums the tiles in tile order
//    (deterministic) and writes the head's means.
//  * Masking as softmax.cu: keys ≥ len, (causal) j > i and (sliding window sw) j <= i − sw get
//    probability exactly 0; a sample of length 0 attends uniformly to all T keys (HF adds
//    finfo.min to every score). Under a window, the key tiles wholly left of the block's first
//    row's window are skipped (never loaded); a padding row that sees no key at all (i >= len − 1 + sw)
//    gets output 0, where the explicit path's softmax is uniform: such rows feed no statistic and
//    no valid row.
//  * Grouped-query attention: the block of query head h copies the key/value rows of kv head
//    h / (NH/NKV) (HF's repeat_kv order) straight from the q | k | v rows: no repeated copies.
//  * Key tiles are copied global → shared with cp.async into two buffers: the next tile's copies
//    run while this one is computed; one barrier per tile. bf16 heads of 64 on sm_90 take them by
//    TMA instead (attn_tma.cuh: one thread, two boxes a tile, an mbarrier per buffer; the same
//    bits out; ATTNSCOPE_NO_TMA=1 keeps the threads' copies). V stays row-major (bf16: ldmatrix.trans makes P·V's B
//    fragments; tf32: the keys of an 8-key step are taken in the order 0 2 4 6 | 1 3 5 7 on both
//    sides, so that S's accumulator layout is P's A layout).
// The inputs are rows of ld elements ((B, T, ·), query head h at columns h·HS of q, kv head g at
// columns g·HS of k and v); the output is (B, T, ldo) fp32 or bf16.
#include "attn_fused_ops.cuh"
#include "attn_tma.cuh"
#include "attn_keyimp.cuh"   // the key-importance pass
#include <stdlib.h>
#include <string.h>
// bf16: 4 blocks per SM for HS <= 64 (a few spilled registers; 3% faster than 3 at L = 512 before
// the key columns, within 0.5% after: -DAF_MIN_BLOCKS=3 to compare); tf32x3 holds twice the Q
// fragments: no minimum
#ifndef AF_MIN_BLOCKS
#define AF_MIN_BLOCKS 4
#endif
template <class Ops, int HS>
constexpr int af_min_blocks() { return std::is_same<typename Ops::elem, float>::value || HS > 64 ? 1 : AF_MIN_BLOCKS; }
#include "attn_vision.cuh"   // (after af_min_blocks: its kernel takes the same bound)
#include "attn_vision_kept.cuh"

template <class Ops, int HS> struct af_smem {
    typename Ops::krow k[2][AF_KEYS];            // key tiles (double-buffered): keys × dims
    typename Ops::krow v[2][AF_KEYS];
    // per key j of the tile, columns that P̃ multiplies on the tensor cores like V: 0: [SEP] (1/0),
    // 1: punctuation (1/0), 2: j == 0, 3: 1, 4: j − kt; 5..7 0 (8.. unused)
    typename Ops::xrow x[2][AF_KEYS];
    typename Ops::qspill qspill[AF_WARPS];       // Q fragments that do not fit in registers
    double acc[AF_WARPS * 8][AF_ROWSUMS];        // the row-holding lanes' sums (8 a warp)
    int last;                                    // this block is the last of its (b, h) to finish
};
// the same under TMA (attn_tma.cuh; bf16, HS = 64): dense swizzled key tiles, 1024-byte aligned
// (the swizzle's period), and one mbarrier per buffer
template <class Ops, int HS> struct alignas(1024) af_smem_tma {
    typename Ops::elem k[2][AF_KEYS * HS];
    typename Ops::elem v[2][AF_KEYS * HS];
    typename Ops::xrow x[2][AF_KEYS];
    typename Ops::qspill qspill[AF_WARPS];
    double acc[AF_WARPS * 8][AF_ROWSUMS];
    uint64_t bar[2];
    int last;
};


// KMAX: the length of the running top-k lists (0: no top-k; 4 or 8: k <= KMAX, the first k written);
// TMA: key tiles by the tensor maps in maps (bf16, HS = 64, sm_90), else by the threads' cp.async;
// KEPT: a bf16 vision layer's probabilities kept in pst, pmt (attn_vision_kept.cuh), a parameter
// of its own so that the other layers' kernels carry none of the store's code (it cost them 6%)
template <class Ops, int HS, typename TOut, int KMAX, bool TMA, bool KEPT>
__global__ static void __launch_bounds__(32 * AF_WARPS, af_min_blocks<Ops, HS>())
attn_fused_kernel(TOut *out, int ldo, const typename Ops::elem *q, const typename Ops::elem *k,
                  const typename Ops::elem *v, int ld, const int *len, const uint8_t *tokcls, int NH, int NKV, int T,
                  float scale, int causal, int sw, int window, double *part_rows, unsigned *count, float *stats,
                  int topk, int32_t *topi, float *topw, float *lse, __half *pst, float *pmt,
                  const __grid_constant__ af_maps maps)
{
    typedef typename Ops::elem elem;
    constexpr int VEC = 16 / sizeof(elem);               // elements per 16-byte copy
    extern __shared__ __align__(16) unsigned char af_raw[];
    typedef typename std::conditional<TMA, af_smem_tma<Ops, HS>, af_smem<Ops, HS>>::type smem_t;
    // (TMA: the launch asks for 1 KiB more, to align the block's part to the swizzle's period)
    const unsigned raw_off = TMA ? (1024u - (smem_u32(af_raw) & 1023u)) & 1023u : 0u;
    smem_t &sm = *reinterpret_cast<smem_t *>(af_raw + raw_off);

    // query head h reads kv head h / (NH/NKV) in place (HF's repeat_kv without the copies)
    const int bh = blockIdx.y, b = bh / NH, h = bh % NH, kvh = h / (NH / NKV), tile = blockIdx.x;
    const int q0 = tile * AF_QROWS, warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
    const int n = len[b] < 0 ? 0 : len[b] > T ? T : len[b];
    // n = 0: every score is finfo.min after HF's masks (causal ones too): uniform over all T keys
    const int nkeys = n > 0 ? n : T, flat = n == 0, causal_ = causal && !flat, sw_ = flat ? 0 : sw;
    const int kend = causal_ ? min(nkeys, q0 + AF_QROWS) : nkeys;
    // a sliding window hides every key j <= q0 − sw from all the block's rows: whole tiles left of
    // it are never loaded
    const int kbeg = sw_ > 0 && q0 - sw_ + 1 > 0 ? (q0 - sw_ + 1) / AF_KEYS * AF_KEYS : 0;
    const int row[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
    const size_t base = (size_t)b * T;
    const float sl2 = scale * 1.4426950408889634f;        // scores in log2 units: ex2

    // Q fragments of the warp's 16 rows, in registers for the whole kernel
    typename Ops::qfrag qf;
    Ops::load_q(qf, row[0] < T ? q + (base + row[0]) * ld + h * HS : NULL, row[1] < T ? q + (base + row[1]) * ld + h * HS : NULL,
                t, &sm.qspill[warp], lane);

    // the key tile's S (16 x AF_KEYS per warp) from buffer buf, unscaled (the scale is folded into
    // x = S·sl2 − m below; the top-k compares raw scores), masked keys −inf (a sample of length 0:
    // all 0); full: every key of the tile visible to every row of the block (no padding, below the
    // diagonal, right of the window): no masking
    auto scores = [&](int kt, int buf, bool full, float s[AF_KEYS / 8][4]) {
        if constexpr (TMA) {
#ifdef AF_WGMMA
            Ops::scores_wg(s, qf, sm.k[buf]);
#else
            Ops::scores_sw(s, qf, sm.k[buf], lane);
#endif
        } else {
            Ops::scores(s, qf, sm.k[buf], lane);
        }
        if (full) return;
#pragma unroll
        for (int nt = 0; nt < AF_KEYS / 8; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int j = kt + nt * 8 + 2 * t + (e & 1), i = row[e >> 1];
                const bool ok = j < nkeys && (!causal_ || j <= i) && (sw_ <= 0 || j > i - sw_);
                s[nt][e] = !ok ? -INFINITY : flat ? 0.0f : s[nt][e];
            }
        }
    };
    // starts the copies of key tile kt (and its V rows and key columns) into buffer buf
    // (thread: a fixed 16-byte column cv of rows r0, r0 + CP_ROWS, ...; rows ≥ T zero-filled from
    // row T − 1). A tile whose rows all exist (all but a sample's last) takes the rows' offsets as one
    // product and constant steps: half the instructions of the general form, every tile
    constexpr int CP_COLS = HS / VEC, CP_ROWS = 32 * AF_WARPS / CP_COLS, CP_N = AF_KEYS / CP_ROWS;
    static_assert(AF_KEYS % CP_ROWS == 0, "key tile rows per copy pass");
    const int cp_r0 = threadIdx.x / CP_COLS, cp_cv = threadIdx.x % CP_COLS * VEC;
    const size_t cp_off = base * ld + (size_t)kvh * HS + cp_cv;
    // key kt + threadIdx.x's class byte ([SEP] 1, punctuation 2) for the key columns: loaded before
    // a tile's waits and written after them, so that the load's latency does not stand between
    // the barrier and the tile's first product (it did: 2% of the stall samples at L = 512, the
    // warpgroup waiting on the two warps that load)
    auto key_class = [&](int kt) -> uint8_t {
        const int j = kt + threadIdx.x;
        return tokcls && threadIdx.x < AF_KEYS && j < T ? tokcls[base + j] : 0;
    };
    auto issue = [&](int kt, int buf, uint8_t cls) {
        if constexpr (TMA) {                               // one thread: two boxes on the buffer's barrier
            if (threadIdx.x == 0) {
                mbar_expect_tx(&sm.bar[buf], 2 * AF_KEYS * HS * (unsigned)sizeof(elem));
                tma_load_3d(sm.k[buf], &maps.k, &sm.bar[buf], kvh * HS, kt, b);
                tma_load_3d(sm.v[buf], &maps.v, &sm.bar[buf], kvh * HS, kt, b);
            }
        } else if (kt + AF_KEYS <= T) {                    // (block-uniform)
            const size_t src = cp_off + (size_t)(kt + cp_r0) * ld, step = (size_t)CP_ROWS * ld;
#pragma unroll
            for (int c = 0; c < CP_N; c++) {
                cp_async16(&sm.k[buf][cp_r0 + c * CP_ROWS][cp_cv], k + src + c * step, true);
                cp_async16(&sm.v[buf][cp_r0 + c * CP_ROWS][cp_cv], v + src + c * step, true);
            }
        } else {
            for (int r = cp_r0; r < AF_KEYS; r += CP_ROWS) {
                const int j = kt + r;
                const size_t src = cp_off + (size_t)(j < T ? j : T - 1) * ld;
                cp_async16(&sm.k[buf][r][cp_cv], k + src, j < T);
                cp_async16(&sm.v[buf][r][cp_cv], v + src, j < T);
            }
        }
        // the key columns that change from tile to tile, 0 .. 2, in the row's first 16 bytes (with
        // 3, 4 where those bytes hold them); the others are written once, below
        if (threadIdx.x < AF_KEYS) {
            const int j = kt + threadIdx.x;
            __align__(16) elem x[16 / sizeof(elem)];
#pragma unroll
            for (int e = 0; e < (int)(16 / sizeof(elem)); e++) x[e] = (elem)0.0f;
            x[0] = (elem)(cls & 1 ? 1.0f : 0.0f);
            x[1] = (elem)(cls & 2 ? 1.0f : 0.0f);
            x[2] = (elem)(j == 0 ? 1.0f : 0.0f);
            x[3] = (elem)1.0f;
            if constexpr (16 / sizeof(elem) > 4) x[4] = (elem)(float)threadIdx.x;
            *reinterpret_cast<uint4 *>(sm.x[buf][threadIdx.x]) = *reinterpret_cast<const uint4 *>(x);
        }
        if constexpr (!TMA) cp_async_commit();
    };
    // the key columns that stay: 3 (1), 4 (j − kt), the rest 0, in both buffers (made visible to
    // every warp by the loop's first barrier)
    if (threadIdx.x < AF_KEYS) {
#pragma unroll
        for (int bf = 0; bf < 2; bf++) {
#pragma unroll
            for (int e = 0; e < 16; e++) sm.x[bf][threadIdx.x][e] = (elem)(e == 3 ? 1.0f : e == 4 ? (float)threadIdx.x : 0.0f);
        }
    }

    // one pass, online softmax (as flash attention): per row a reference max m (log2 units, the
    // same in the quad's 4 lanes), and this lane's sums of p̃ = 2^(x), x = s − m: l = Σ p̃, the
    // statistics' Σ p̃·f and U = Σ p̃·x; when m moves by δ every sum scales by 2^−δ (U also loses
    // δ·l). m moves only when a score exceeds it by more than AF_SLACK (p̃ ≤ 2^AF_SLACK: far from
    // overflow; most tiles then skip the rescale). At the end p = p̃ / l, so each statistic is its
    // sum / l and H = ln l − ln 2 · U / l, whatever m is.
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    // [row][stat]: STAT_ENTROPY holds U; STAT_ATTN_SEP and STAT_ATTN_PUNCT hold this lane's two
    // key columns (t = 0: [SEP], punctuation; t = 1: key 0, 1; t = 2: j − kt, 0)
    float acc[2][AF_ROWSUMS];
#pragma unroll
    for (int r = 0; r < 2; r++)
#pragma unroll
        for (int s = 0; s < AF_ROWSUMS; s++) acc[r][s] = 0.0f;
    float o[HS / 8][4];
#pragma unroll
    for (int dn = 0; dn < HS / 8; dn++) o[dn][0] = o[dn][1] = o[dn][2] = o[dn][3] = 0.0f;
    // per row, this lane's KMAX largest raw scores so far and their keys, largest first (keys come
    // in increasing order, so a later equal score ranks after: ties to the lower position)
    float tv[2][KMAX > 0 ? KMAX : 1];
    int ti[2][KMAX > 0 ? KMAX : 1];
#pragma unroll
    for (int r = 0; r < 2; r++)
#pragma unroll
        for (int sl = 0; sl < (KMAX > 0 ? KMAX : 1); sl++) { tv[r][sl] = -INFINITY; ti[r][sl] = -1; }
    const int wrow0 = q0 + warp * 16, reach = max(window, 1);
    if constexpr (TMA) {
        if (threadIdx.x == 0) {
            mbar_init(&sm.bar[0], 1);
            mbar_init(&sm.bar[1], 1);
            mbar_init_fence();
        }
        __syncthreads();
    }
    if (kbeg < kend) issue(kbeg, 0, key_class(kbeg));   // (none: a block of padding rows beyond every window)
    for (int kt = kbeg, it = 0; kt < kend; kt += AF_KEYS, it++) {
        const int buf = it & 1;
        const uint8_t cls_next = key_class(kt + AF_KEYS);
        if constexpr (TMA) mbar_wait(&sm.bar[buf], (it >> 1) & 1);   // buffer buf's (it/2)-th phase
        else cp_async_wait<0>();                           // this tile's copies are done
        // one barrier per tile: every thread's copies of this tile are visible, and every warp is
        // done with the previous tile, whose buffer the next tile's copies (issued now) reuse
        __syncthreads();
        if (kt + AF_KEYS < kend) issue(kt + AF_KEYS, buf ^ 1, cls_next);
        // a warp whose 16 rows all lie past T (the last row tile of a T that is not a multiple of
        // 16, as ViT-B's 197) only helps with the copies: nothing of its rows is stored or counted
        // (on the warpgroup MMA such a warp takes part in the block's two products, and no more)
#ifdef AF_WGMMA
        constexpr bool wg = TMA;
#else
        constexpr bool wg = false;
#endif
        if (!wg && wrow0 >= T) continue;
        float s[AF_KEYS / 8][4];
        const bool full = !flat && kt + AF_KEYS <= nkeys && (!causal_ || kt + AF_KEYS - 1 <= q0) &&
                          (sw_ <= 0 || kt >= q0 + AF_QROWS - sw_);
        scores(kt, buf, full, s);
        if constexpr (wg) {
            if (wrow0 >= T) {
                float xc[4];
                Ops::pv_wg(o, s, sm.v[buf], sm.x[buf], lane, xc);
                continue;
            }
        }
        // the tile's row maxima, both rows' trees and shuffles before any branch: their latencies
        // overlap (one row after the other's branch made a chain twice as long on every tile)
        float mt[2];
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float mx[AF_KEYS / 8];                         // (a tree: 4 dependent steps, not 16)
#pragma unroll
            for (int nt = 0; nt < AF_KEYS / 8; nt++) mx[nt] = fmaxf(s[nt][2 * r], s[nt][2 * r + 1]);
#pragma unroll
            for (int w = AF_KEYS / 16; w > 0; w /= 2)
#pragma unroll
                for (int nt = 0; nt < w; nt++) mx[nt] = fmaxf(mx[nt], mx[nt + w]);
            // the top-k: only a lane whose tile max beats its k-th best looks at the elements
            if constexpr (KMAX > 0) {
                if (mx[0] > tv[r][KMAX - 1])
#pragma unroll
                    for (int nt = 0; nt < AF_KEYS / 8; nt++)
#pragma unroll
                        for (int c = 0; c < 2; c++)
                            if (s[nt][2 * r + c] > tv[r][KMAX - 1])
                                topk_insert<KMAX>(tv[r], ti[r], s[nt][2 * r + c], kt + nt * 8 + 2 * t + c);
            }
            mt[r] = mx[0] * sl2;                           // (rounding is monotonic: max, then scale)
        }
#pragma unroll
        for (int r = 0; r < 2; r++) mt[r] = fmaxf(mt[r], __shfl_xor_sync(0xffffffffu, mt[r], 1));
#pragma unroll
        for (int r = 0; r < 2; r++) mt[r] = fmaxf(mt[r], __shfl_xor_sync(0xffffffffu, mt[r], 2));
#pragma unroll
        for (int r = 0; r < 2; r++) {
            if (!(mt[r] > m[r] + AF_SLACK)) continue;      // nothing visible yet, or within the slack
            if (m[r] != -INFINITY) {                       // (before the first visible key all sums are 0)
                const float delta = mt[r] - m[r], alpha = ex2(-delta);
                acc[r][STAT_ENTROPY] = alpha * (acc[r][STAT_ENTROPY] - delta * l[r]);
                l[r] *= alpha;
                // (entropy_norm and [CLS] are filled in at the end: 0 until then, in no register)
#pragma unroll
                for (int st = 1; st < AF_ROWSUMS; st++)
                    if (st != STAT_ENTROPY_NORM && st != STAT_ATTN_CLS) acc[r][st] *= alpha;
#pragma unroll
                for (int dn = 0; dn < HS / 8; dn++) { o[dn][2 * r] *= alpha; o[dn][2 * r + 1] *= alpha; }
            }
            m[r] = mt[r];
        }
        // warp-uniform: only tiles near the warp's rows need the per-key tests of distance,
        // locality, self, previous and next; the others have every key on one side of every row
        // (dsign: +1 right, −1 left) and get the distance from the tensor cores
        const bool near = kt <= wrow0 + 15 + reach && kt + AF_KEYS - 1 >= wrow0 - reach;
        const int dsign = near ? 0 : kt > wrow0 ? 1 : -1;
        // j − i as a float: a per-tile base and a compile-time offset per element
        const float dj[2] = {(float)(kt + 2 * t - row[0]), (float)(kt + 2 * t - row[1])};
        // the element loop, compiled for near tiles and far ones. One loop for full tiles and
        // partial ones (a separate partial variant doubled the code the SM's instruction cache
        // had to hold: at 255 tokens 30% of the warps' stalls were instruction fetches, none at
        // 256; ViT's 197 mixes the two kinds of tile as 255 does: BENCHMARKS.md run 40).
        // Masked: s = −inf → x clamps to −1e4 (also where m is still −inf: fmaxf drops the NaN)
        // → p̃ = 0 exactly, and p̃·x = 0, not NaN; a visible key's x is far above −1e4 or its p̃
        // is 0 either way. Keys past the last one get p̃ = 0 the same way, for P·V too (adding 0
        // changes no sum).
        // (l and U of the tile in two chains per row, by nt's parity: half the dependent adds)
        float lt[2][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}}, ut[2][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}};
        auto elements = [&](auto near_tile) {
#pragma unroll
        for (int nt = 0; nt < AF_KEYS / 8; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int r = e >> 1, i = row[r], jl = nt * 8 + 2 * t + (e & 1), j = kt + jl;
                const float x = fmaxf(fmaf(s[nt][e], sl2, -m[r]), -1.0e4f);
                const float p = ex2(x);
                s[nt][e] = p;
                lt[r][nt & 1] += p;
                ut[r][nt & 1] = fmaf(p, x, ut[r][nt & 1]);
                if (decltype(near_tile)::value) {
                    acc[r][STAT_DISTANCE] += p * fabsf(dj[r] + (float)(nt * 8 + (e & 1)));
                    // (warp-uniform: only the 8-key groups within reach of the warp's rows). Selects,
                    // not branches: the lanes' offsets differ, and branches here diverged (adding 0
                    // changes no sum)
                    if (kt + nt * 8 <= wrow0 + 15 + reach && kt + nt * 8 + 7 >= wrow0 - reach) {
                        const int dd = j - i;
                        acc[r][STAT_LOCALITY] += abs(dd) <= window ? p : 0.0f;
                        acc[r][STAT_ATTN_SELF] += dd == 0 ? p : 0.0f;
                        acc[r][STAT_ATTN_PREV] += dd == -1 ? p : 0.0f;
                        acc[r][STAT_ATTN_NEXT] += dd == 1 ? p : 0.0f;
                    }
                }
            }
        }
        };
        if (near) elements(std::true_type{});
        else elements(std::false_type{});
#pragma unroll
        for (int r = 0; r < 2; r++) {
            l[r] += lt[r][0] + lt[r][1];
            acc[r][STAT_ENTROPY] += ut[r][0] + ut[r][1];
        }
        // kept probabilities (a vision layer's, attn_vision_kept.cuh): p̃ in fp16, keys up to the
        // row's stride (past the length p̃ = 0), and the tile's reference max m
        if constexpr (KEPT) {
            const int tp = avk_stride(T);
#pragma unroll
            for (int r = 0; r < 2; r++) {
                if (row[r] >= T) continue;
                __half2 *dst = reinterpret_cast<__half2 *>(pst + ((size_t)bh * T + row[r]) * tp + kt + 2 * t);
#pragma unroll
                for (int nt = 0; nt < AF_KEYS / 8; nt++)
                    if (kt + nt * 8 + 2 * t < tp) dst[nt * 4] = __floats2half2_rn(s[nt][2 * r], s[nt][2 * r + 1]);
                if (t == 0) pmt[((size_t)bh * T + row[r]) * ((T + AF_KEYS - 1) / AF_KEYS) + kt / AF_KEYS] = m[r];
            }
        }
        float xc[4];
        if constexpr (TMA) {
#ifdef AF_WGMMA
            Ops::pv_wg(o, s, sm.v[buf], sm.x[buf], lane, xc);
#else
            Ops::pv_sw(o, s, sm.v[buf], sm.x[buf], lane, xc);
#endif
        } else {
            Ops::pv(o, s, sm.v[buf], sm.x[buf], lane, xc);
        }
        // the tile's column sums, added in round-to-nearest (lane t holds columns 2t, 2t + 1: t = 1's
        // [CLS] and Σ p̃, t = 2's Σ p̃·(j − kt) land in slots the end clears); on a far tile the
        // distance Σ sgn·p̃·((j − kt) + (kt − i)) in lane t = 2, with lane t = 1's Σ p̃
#pragma unroll
        for (int r = 0; r < 2; r++) {
            acc[r][STAT_ATTN_SEP] += xc[2 * r];
            acc[r][STAT_ATTN_PUNCT] += xc[2 * r + 1];
            if (dsign) {                                   // (warp-uniform)
                const float one = __shfl_xor_sync(0xffffffffu, xc[2 * r + 1], 3);
                const float d = fmaf((float)(kt - row[r]), one, xc[2 * r]);
                if (t == 2) acc[r][STAT_DISTANCE] += dsign > 0 ? d : -d;
            }
        }
    }
    // l over the quad; the output rows O / l
    float inv_l[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        inv_l[r] = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        if (row[r] < T) {
            TOut *dst = out + (base + row[r]) * ldo + h * HS;
#pragma unroll
            for (int dn = 0; dn < HS / 8; dn++)
                store2(dst + dn * 8 + 2 * t, o[dn][2 * r] * inv_l[r], o[dn][2 * r + 1] * inv_l[r]);
        }
        // the row's log2 normaliser for the key-importance pass: p = 2^(s·sl2 − M) (padding: +inf, p = 0)
        if (lse && t == 0 && row[r] < T) lse[(size_t)bh * T + row[r]] = row[r] < n ? m[r] + log2f(l[r]) : INFINITY;
    }
    // the top-k: the quad's four lists merged (every lane ends with the row's list), weights p = p̃ / l
    if constexpr (KMAX > 0) {
#pragma unroll
        for (int r = 0; r < 2; r++) {
#pragma unroll
            for (int lm = 1; lm <= 2; lm <<= 1) {         // lanes t ^ 1, then t ^ 2
                float pv[KMAX];
                int pj[KMAX];
#pragma unroll
                for (int sl = 0; sl < KMAX; sl++) {
                    pv[sl] = __shfl_xor_sync(0xffffffffu, tv[r][sl], lm);
                    pj[sl] = __shfl_xor_sync(0xffffffffu, ti[r][sl], lm);
                }
#pragma unroll
                for (int sl = 0; sl < KMAX; sl++) topk_merge<KMAX>(tv[r], ti[r], pv[sl], pj[sl]);
            }
            const int i = row[r];
            if (t != 0 || i >= T) continue;
            int32_t *oi = topi + ((size_t)bh * T + i) * topk;
            float *ow = topw + ((size_t)bh * T + i) * topk;
#pragma unroll
            for (int sl = 0; sl < KMAX; sl++) {
                if (sl >= topk) break;
                const bool ok = i < n && ti[r][sl] >= 0;
                oi[sl] = ok ? ti[r][sl] : -1;
                ow[sl] = ok ? ex2(fmaf(tv[r][sl], sl2, -m[r])) * inv_l[r] : 0.0f;
            }
        }
    }

    // per row: the quad's sums; then the rows' sums in double over the warp and the block
    double wacc[AF_ROWSUMS];
#pragma unroll
    for (int s = 0; s < AF_ROWSUMS; s++) wacc[s] = 0.0;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        // the class tile's columns to their statistics (lane t holds columns 2t, 2t + 1)
        acc[r][STAT_ATTN_CLS] = t == 1 ? acc[r][STAT_ATTN_SEP] : 0.0f;
        if (t != 0) acc[r][STAT_ATTN_SEP] = acc[r][STAT_ATTN_PUNCT] = 0.0f;
#pragma unroll
        for (int s = 0; s < AF_ROWSUMS; s++) {
            acc[r][s] += __shfl_xor_sync(0xffffffffu, acc[r][s], 1);
            acc[r][s] += __shfl_xor_sync(0xffffffffu, acc[r][s], 2);
        }
        const int i = row[r];
        if (t != 0 || i >= n) continue;                    // one lane per valid query row
        int lo;
        const int nk = stats_visible(i, n, causal, sw_, &lo) - lo;   // visible keys (stats.h)
        const float H = logf(l[r]) - 0.6931471805599453f * (acc[r][STAT_ENTROPY] * inv_l[r]);
        for (int s = 0; s < AF_ROWSUMS; s++)
            if (s != STAT_ENTROPY && s != STAT_ENTROPY_NORM) wacc[s] += acc[r][s] * inv_l[r];
        wacc[STAT_ENTROPY] += H;
        if (nk > 1) wacc[STAT_ENTROPY_NORM] += H / logf((float)nk);
    }
    // the block's 8·AF_WARPS row-holding lanes (t = 0) through shared memory; thread s adds
    // statistic s's in a fixed order (a shuffle tree in double over every warp cost more)
    if (t == 0)
#pragma unroll
        for (int s = 0; s < AF_ROWSUMS; s++) sm.acc[warp * 8 + g][s] = wacc[s];
    __syncthreads();
    const int ntiles = gridDim.x;
    if (threadIdx.x < AF_ROWSUMS) {
        double sum = 0;
        for (int w = 0; w < AF_WARPS * 8; w++) sum += sm.acc[w][threadIdx.x];
        part_rows[((size_t)bh * ntiles + tile) * AF_ROWSUMS + threadIdx.x] = sum;
        __threadfence();                                   // (only the writers fence)
    }
    // the last block of (b, h) to finish sums the tiles in tile order (deterministic) and writes
    // the means: no finalize kernel. count[bh] goes back to 0 for the next launch.
    __syncthreads();
    if (threadIdx.x == 0) sm.last = atomicAdd(&count[bh], 1u) == (unsigned)ntiles - 1;
    __syncthreads();
    if (!sm.last) return;
    __threadfence();
    if (threadIdx.x < AF_ROWSUMS) {
        const int st = threadIdx.x;
        double sum = 0;
        for (int tl = 0; tl < ntiles; tl++) sum += __ldcg(&part_rows[((size_t)bh * ntiles + tl) * AF_ROWSUMS + st]);
        const int rows = st == STAT_ENTROPY_NORM ? stats_norm_rows(n, causal, sw) : n;
        const float mean = rows ? (float)(sum / rows) : 0.0f;
        stats[(size_t)bh * STAT_N + st] = mean;
        // the sink α_0 is the mean of p_i0 over the rows that see key 0: all valid rows, as attn_cls,
        // or under a sliding window the first sw (the others' p_i0 are 0: the same sum)
        if (st == STAT_ATTN_CLS)
            stats[(size_t)bh * STAT_N + STAT_SINK] = n > 0 ? (float)(sum / stats_seen_by(0, n, causal, sw)) : 0.0f;
    }
    if (threadIdx.x == 0) count[bh] = 0;
}

extern "C" int cuda_attn_fused_supported(int HS, int fp32)
{
    return HS == 32 || HS == 64 || HS == 128;
}

// the scratch's head: one finish counter per (b, h), zero between launches
static size_t af_count_bytes(int B, int NH) { return ((size_t)B * NH * sizeof(unsigned) + 255) / 256 * 256; }
static size_t af_part_bytes(int B, int NH, int T)
{
    return ((size_t)B * NH * ((T + AF_QROWS - 1) / AF_QROWS) * AF_ROWSUMS * sizeof(double) + 255) / 256 * 256;
}


// whether this process's device takes the TMA kernel: compute capability 9 or above (Hopper's
// tensor memory accelerator), unless ATTNSCOPE_NO_TMA is set (the threads' copies, as on sm_80)
static int af_tma_device()
{
    static int on = -1;
    if (on < 0) {
        int dev = 0, major = 0;
        const char *no = getenv("ATTNSCOPE_NO_TMA");
        on = cudaGetDevice(&dev) == cudaSuccess &&
             cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess && major >= 9 &&
             !(no && *no && strcmp(no, "0"));
    }
    return on;
}

template <class Ops, int HS, typename TOut, int KMAX>
static void launch(TOut *out, int ldo, const typename Ops::elem *q, const typename Ops::elem *k,
                   const typename Ops::elem *v, int ld, const int *len, const uint8_t *tokcls, int B, int NH, int NKV,
                   int T, int causal, int sw, int window, double *part_rows, unsigned *count, float *stats,
                   const attn_tokens *tok, float *lse)
{
    const dim3 grid((T + AF_QROWS - 1) / AF_QROWS, B * NH);
    // the vision pass's row sums after the normalisers; then (kept) the fp16 probabilities and the
    // tiles' maxima (cuda_attn_fused_scratch)
    const attn_vis *vs = tok ? tok->vis : NULL;
    double *vpart = (double *)((char *)lse + ((size_t)B * NH * T * sizeof(float) + 255) / 256 * 256);
    __half *pst = vs && vs->kept ? (__half *)((char *)vpart + av_part_bytes(B, NH, T)) : NULL;
    float *pmt = pst ? avk_maxima(pst, B, NH, T) : NULL;
    const float scale = 1.0f / sqrtf((float)HS);
    af_maps maps;
    memset(&maps, 0, sizeof maps);
    bool tma = false;
    if constexpr (std::is_same<Ops, ops_bf16<64>>::value)
        tma = af_tma_device() && af_encode_map(&maps.k, k, NKV * HS, ld, T, B, HS, AF_KEYS) &&
              af_encode_map(&maps.v, v, NKV * HS, ld, T, B, HS, AF_KEYS);
#define AF_KARGS out, ldo, q, k, v, ld, len, tokcls, NH, NKV, T, scale, causal, sw, window, part_rows, count, stats, \
        tok ? tok->topk : 0, tok ? tok->topk_idx : NULL, tok ? tok->topk_w : NULL, tok && (tok->key_imp || tok->vis) ? lse : NULL, pst, pmt, maps
    if (tma) {
        if constexpr (std::is_same<Ops, ops_bf16<64>>::value) {
            static int attr_set[2];
            const size_t smem = sizeof(af_smem_tma<Ops, HS>) + 1024;
            if (pst) {
                smem_opt_in(attn_fused_kernel<Ops, HS, TOut, KMAX, true, true>, smem, &attr_set[1]);
                attn_fused_kernel<Ops, HS, TOut, KMAX, true, true><<<grid, 32 * AF_WARPS, smem>>>(AF_KARGS);
            } else {
                smem_opt_in(attn_fused_kernel<Ops, HS, TOut, KMAX, true, false>, smem, &attr_set[0]);
                attn_fused_kernel<Ops, HS, TOut, KMAX, true, false><<<grid, 32 * AF_WARPS, smem>>>(AF_KARGS);
            }
        }
    } else {
        static int attr_set[2];
        const size_t smem = sizeof(af_smem<Ops, HS>);
        if constexpr (std::is_same<Ops, ops_bf16<HS>>::value) {   // (only bf16 layers keep p̃)
            if (pst) {
                smem_opt_in(attn_fused_kernel<Ops, HS, TOut, KMAX, false, true>, smem, &attr_set[1]);
                attn_fused_kernel<Ops, HS, TOut, KMAX, false, true><<<grid, 32 * AF_WARPS, smem>>>(AF_KARGS);
            }
        }
        if (!pst) {
            smem_opt_in(attn_fused_kernel<Ops, HS, TOut, KMAX, false, false>, smem, &attr_set[0]);
            attn_fused_kernel<Ops, HS, TOut, KMAX, false, false><<<grid, 32 * AF_WARPS, smem>>>(AF_KARGS);
        }
    }
#undef AF_KARGS
    KERNEL_CHECK("attn_fused_kernel");
    if (vs) av_launch<Ops, HS>(vs, q, k, ld, len, lse, B, NH, NKV, T, scale, vpart, pst, pmt);
    if (!tok || !tok->key_imp) return;
    static int ki_attr_set;
    const size_t ki_smem_bytes = sizeof(ki_smem<Ops, HS>);
    smem_opt_in(attn_keyimp_kernel<Ops, HS>, ki_smem_bytes, &ki_attr_set);
    attn_keyimp_kernel<Ops, HS><<<grid, 32 * AF_WARPS, ki_smem_bytes>>>(tok->key_imp, q, k, ld, len, lse, NH, NKV, T, scale,
                                                                       causal, sw);
    KERNEL_CHECK("attn_keyimp_kernel");
}

// the running top-k lists' length for k (0, 4 or 8: registers per row)
template <class Ops, int HS, typename TOut>
static void launch_k(TOut *out, int ldo, const typename Ops::elem *q, const typename Ops::elem *k,
                     const typename Ops::elem *v, int ld, const int *len, const uint8_t *tokcls, int B, int NH, int NKV,
                     int T, int causal, int sw, int window, double *part_rows, unsigned *count, float *stats,
                     const attn_tokens *tok, float *lse)
{
#define AF_ARGS out, ldo, q, k, v, ld, len, tokcls, B, NH, NKV, T, causal, sw, window, part_rows, count, stats, tok, lse
    const int kk = tok && tok->topk_idx ? tok->topk : 0;
    if (kk <= 0) launch<Ops, HS, TOut, 0>(AF_ARGS);
    else if (kk <= 4) launch<Ops, HS, TOut, 4>(AF_ARGS);
    else launch<Ops, HS, TOut, 8>(AF_ARGS);
#undef AF_ARGS
}

template <template <int> class Ops, typename Elem, typename TOut>
static void dispatch(TOut *out, int ldo, const Elem *q, const Elem *k, const Elem *v, int ld, const int *len,
                     const uint8_t *tokcls, int B, int NH, int NKV, int T, int HS, int causal, int sw, int window,
                     float *stats, const attn_tokens *tok, void *scratch)
{
    const int fp32 = sizeof(Elem) == 4;
    if (!cuda_attn_fused_supported(HS, fp32) || (ld * sizeof(Elem)) % 16 || ldo % 2 || (size_t)q % 16 ||
        (size_t)k % 16 || (size_t)v % 16)
        check_fail(__FILE__, __LINE__, "cuda_attn_fused", "head size not supported, or rows not 16-byte aligned");
    if (NKV < 1 || NH % NKV) check_fail(__FILE__, __LINE__, "cuda_attn_fused", "NH is not a multiple of NKV");
    if (tok && tok->topk_idx && (tok->topk < 1 || tok->topk > ATTN_FUSED_TOPK_MAX))
        check_fail(__FILE__, __LINE__, "cuda_attn_fused", "top-k beyond ATTN_FUSED_TOPK_MAX");
    if (tok && tok->vis && (causal || sw > 0 || !cuda_attn_vision_supported(T, NH, HS, fp32)))
        check_fail(__FILE__, __LINE__, "cuda_attn_fused", "vision outputs of a causal, windowed or too long attention");
    const attn_vis *vs = tok ? tok->vis : NULL;
    if (vs && (vs->gh < 1 || vs->gw < 1 || (size_t)vs->gh * vs->gw != (size_t)(T - vs->n_prefix) || vs->fusion < 0 ||
               vs->fusion > 2))
        check_fail(__FILE__, __LINE__, "cuda_attn_fused", "vision outputs: the patch grid is not T - n_prefix tokens");
    if (vs && vs->kept && fp32) check_fail(__FILE__, __LINE__, "cuda_attn_fused", "kept probabilities are bf16 layers' only");
    if (B * NH == 0 || T == 0) return;
    unsigned *count = (unsigned *)scratch;
    double *part_rows = (double *)((char *)scratch + af_count_bytes(B, NH));
    float *lse = (float *)((char *)part_rows + af_part_bytes(B, NH, T));
#define AF_ARGS out, ldo, q, k, v, ld, len, tokcls, B, NH, NKV, T, causal, sw, window, part_rows, count, stats, tok, lse
    if (HS == 32) launch_k<Ops<32>, 32>(AF_ARGS);
    else if (HS == 64) launch_k<Ops<64>, 64>(AF_ARGS);
    else launch_k<Ops<128>, 128>(AF_ARGS);
#undef AF_ARGS
}

extern "C" size_t cuda_attn_fused_count_bytes(int B, int NH) { return af_count_bytes(B, NH); }

// the counters, the row sums' partials, the rows' log2 normalisers (key importance, vision), the
// vision pass's row sums and (kept) the fp16 probabilities with their tiles' maxima
extern "C" size_t cuda_attn_fused_scratch(int B, int NH, int T, int kept)
{
    const size_t lse = ((size_t)B * NH * T * sizeof(float) + 255) / 256 * 256;
    return af_count_bytes(B, NH) + af_part_bytes(B, NH, T) + lse + av_part_bytes(B, NH, T) + (kept ? avk_bytes(B, NH, T) : 0);
}

extern "C" size_t cuda_attn_vision_kept_bytes(int B, int NH, int T) { return avk_bytes(B, NH, T); }

// whether the vision pass takes a layer of T tokens and NH heads of HS (its shared memory)
extern "C" int cuda_attn_vision_supported(int T, int NH, int HS, int fp32)
{
    if (!cuda_attn_fused_supported(HS, fp32)) return 0;
    if (fp32) return HS == 32 ? av_fits<ops_tf32x3<32>, 32>(T, NH) : HS == 64 ? av_fits<ops_tf32x3<64>, 64>(T, NH)
                                                                            : av_fits<ops_tf32x3<128>, 128>(T, NH);
    return HS == 32 ? av_fits<ops_bf16<32>, 32>(T, NH) : HS == 64 ? av_fits<ops_bf16<64>, 64>(T, NH)
                                                                : av_fits<ops_bf16<128>, 128>(T, NH);
}

extern "C" void cuda_attn_fused(float *out, int ldo, const void *q, const void *k, const void *v, int ld, const int *len,
                                const uint8_t *tokcls, int B, int NH, int NKV, int T, int HS, int causal, int sw,
                                int window, float *stats, const attn_tokens *tok, void *scratch)
{
    dispatch<ops_bf16>(out, ldo, (const __nv_bfloat16 *)q, (const __nv_bfloat16 *)k, (const __nv_bfloat16 *)v, ld, len,
                       tokcls, B, NH, NKV, T, HS, causal, sw, window, stats, tok, scratch);
}

extern "C" void cuda_attn_fused_bf16(void *out, int ldo, const void *q, const void *k, const void *v, int ld,
                                     const int *len, const uint8_t *tokcls, int B, int NH, int NKV, int T, int HS,
                                     int causal, int sw, int window, float *stats, const attn_tokens *tok, void *scratch)
{
    dispatch<ops_bf16>((__nv_bfloat16 *)out, ldo, (const __nv_bfloat16 *)q, (const __nv_bfloat16 *)k,
                       (const __nv_bfloat16 *)v, ld, len, tokcls, B, NH, NKV, T, HS, causal, sw, window, stats, tok, scratch);
}

extern "C" void cuda_attn_fused_f32(float *out, int ldo, const float *q, const float *k, const float *v, int ld,
                                    const int *len, const uint8_t *tokcls, int B, int NH, int NKV, int T, int HS,
                                    int causal, int sw, int window, float *stats, const attn_tokens *tok, void *scratch)
{
    dispatch<ops_tf32x3>(out, ldo, q, k, v, ld, len, tokcls, B, NH, NKV, T, HS, causal, sw, window, stats, tok, scratch);
}
