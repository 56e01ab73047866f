/* backend.h — the small interface the forward pass is written against: memory, copies and the
 * handful of ops a transformer needs. One table of function pointers per backend (ggml-style):
 * CPU (backend_cpu.c, the reference) and CUDA (backend_cuda.c + kernels/) behind it. All
 * tensors are float32, row-major, in the backend's memory; shapes are given in each contract —
 * except where an op takes an element type (dt): a backend with bf16_acts also accepts
 * DT_BF16 there, for the activations that only feed GEMMs (`--precision bf16`).
 *
 * Invariant: an op never allocates; the model owns every buffer (allocated through alloc). */
#ifndef ATTNSCOPE_BACKEND_H
#define ATTNSCOPE_BACKEND_H
#include "stats.h"
#include "vstats.h"
#include <stddef.h>
#include <stdint.h>

typedef struct backend backend;
enum { DT_F32, DT_BF16 };             /* element types of activations: float32, bfloat16 */
struct backend {
    const char *name;                 /* "cpu", "cuda" */
    void *ctx;                        /* backend-private state */
    void (*release)(backend *be);     /* frees ctx (called by backend_free); NULL: nothing to free */

    /* bytes of backend memory, or NULL when exhausted (not fatal: the caller may retry smaller).
     * A weight's derived copies (CUDA: bf16 or 3xTF32 split) are keyed by its address and go
     * with it: free a buffer through the backend that used it. */
    void *(*alloc)(backend *be, size_t bytes);
    void (*free)(backend *be, void *p);
    void (*upload)(backend *be, void *dst, const void *src, size_t bytes);
    void (*download)(backend *be, void *dst, const void *src, size_t bytes);
    void (*sync)(backend *be);
    /* upload from host_alloc memory that may return before the copy is done (CUDA: in stream order,
     * before the ops enqueued after it): src must stay unchanged until the next sync or download.
     * NULL: upload. */
    void (*upload_async)(backend *be, void *dst, const void *src, size_t bytes);
    /* download into host_alloc memory that may return before the copy is done (CUDA: src is read
     * in stream order, and it crosses to the host on a stream of its own): dst is valid after a
     * fence recorded later has been waited for, or a sync. NULL: download. */
    void (*download_async)(backend *be, void *dst, const void *src, size_t bytes);
    /* fence(slot) marks the point of the op stream reached so far; fence_wait(slot) returns once
     * every op before that mark is done (slots 0..BACKEND_FENCES-1). NULL: every op is done when
     * it returns (the CPU), or use sync. */
    void (*fence)(backend *be, int slot);
    void (*fence_wait)(backend *be, int slot);
    /* upload_async on a copy engine of its own (CUDA: a second stream), so that it overlaps the
     * ops enqueued before it: it starts once fence `after` (a slot, or -1) has passed, and every op
     * enqueued after it waits for it. NULL: upload_async. */
    void (*upload_side)(backend *be, void *dst, const void *src, size_t bytes, int after);

    /* out[t,:] = wte[ids[t],:] + (wpe ? wpe[pos[t],:] : 0) + (wtt ? wtt[types[t],:] : 0);  out (T, C);
     * wpe NULL (rotary families) only on a backend with rope */
    void (*embed)(backend *be, float *out, const int32_t *ids, const int32_t *pos, const int32_t *types,
                  const float *wte, const float *wpe, const float *wtt, int T, int C);
    /* out (M, N) = in (M, K) · W (N, K)ᵀ + b (N) — b may be NULL (a torch Linear); out and in of
     * element types odt and idt (DT_F32 unless bf16_acts) */
    void (*linear)(backend *be, void *out, int odt, const void *in, int idt, const float *W, const float *b, int M,
                   int K, int N);
    /* linear, then out = act(out) (config.h act_kind) in the GEMM's epilogue. Returns 1 when done
     * so, 0 when this backend cannot for these arguments (nothing done: the caller runs linear and
     * activation). NULL: never. CUDA: under --precision bf16 with a bf16 out, ACT_GELU_TANH and
     * ACT_RELU as they are, and ACT_GELU (erf) as its tanh form only when gelu_tanh is set
     * (cuBLASLt has no erf GELU) */
    int (*linear_act)(backend *be, void *out, int odt, const void *in, int idt, const float *W, const float *b, int M,
                      int K, int N, int act);
    /* linear added into s: s (M, N) bf16 = bf16(s + in (M, K) · W (N, K)ᵀ + b) — a pre-norm
     *   model's residual add in the GEMM's epilogue, where the stream is bf16 (add_norm_stream then
     *   only normalises it). Returns 1 when done so, 0 when this backend cannot (nothing done: the
     *   caller runs linear and add_norm_stream). NULL: never.
     *   (transformers rounds the branch to bf16 first, then the sum; cuBLASLt's bf16 epilogue may
     *   do the same or round once: either is within half an ulp of the branch of the other.) */
    int (*linear_add)(backend *be, void *s, const void *in, int idt, const float *W, const float *b, int M, int K, int N);
    /* A model's linear weight W (N, K) from the host, stored as this backend's linear takes it —
     * CUDA under bf16 or 3xTF32: only that copy, no float32 one (half the memory of float32 +
     * bf16; 3/4 of float32 + split) — as a handle for linear's W, freed with free; NULL: out of
     * memory. NULL op: alloc + upload of the floats. */
    void *(*linear_weight)(backend *be, const float *host, int N, int K);
    /* A model's token embedding table (rows, C) from the host, as embed takes it as wte — CUDA
     * under bf16: bf16 (HF's bf16 model holds it so too); freed with free. NULL: out of memory. NULL
     * op: alloc + upload of the floats. */
    void *(*token_table)(backend *be, const float *host, int rows, int C);
    /* out (M, C) = LayerNorm(in + res) with weight w, bias b — the residual add (a float add, as
     * torch's) fused in; in (M, C) of element type in_dt; res (M, C) of element type res_dt may be
     * NULL (no residual); out may equal in; out_bf16 (M, C) receives a bf16 copy of out (only with
     * bf16_acts; else NULL), and then out may be NULL (the copy alone) and out_bf16 may equal a
     * bf16 in (a post-norm model's bf16 stream, model.c residual_step) */
    void (*layernorm)(backend *be, float *out, void *out_bf16, const void *in, int in_dt, const void *res, int res_dt,
                      const float *w, const float *b, int M, int C, float eps);
    /* x[i] = act(x[i]) in place, elements of type dt; act as config.h act_kind */
    void (*activation)(backend *be, void *x, int dt, size_t n, int act);
    /* The ops of the pre-norm, RMSNorm, rotary and gated-MLP families (GPT-2, Llama, Qwen2, Mistral);
     * NULL on a backend that lacks them (the model refuses such a family at load). Where they take
     * an element type, DT_BF16 only on a backend with bf16_acts (as linear).
     * add_norm: x (M, C) += res (M, C) when res is not NULL (element type res_dt; a float add, as
     *   torch's); then xn (M, C) = norm(x)·w (+ b when b is not NULL) with norm LayerNorm (rms 0:
     *   (x - mean) / sqrt(var + eps)) or RMSNorm (rms 1: x / sqrt(mean(x²) + eps)); w NULL: xn = x
     *   (the add alone). xn may equal x: post-norm, x replaced by its norm (then as layernorm). The
     *   pre-norm residual step: the stream stays in x, the next sub-block's input is xn. xn_bf16
     *   (M, C) receives a bf16 copy of xn (only with bf16_acts; else NULL): the next GEMM's input;
     *   with it, xn may be NULL (the copy alone). norms (M), when not NULL, receives the L2 norm of
     *   each row of x after the add, as row_norms computes it (the residual stream's norms at no
     *   extra read of x).
     */
    void (*add_norm)(backend *be, float *x, float *xn, void *xn_bf16, const void *res, int res_dt, const float *w,
                     const float *b, int M, int C, float eps, int rms, float *norms);
    /* add_norm_stream (NULL where the backend lacks it: the float32 stream of add_norm): a pre-norm
     *   model's residual stream in bf16 under bf16_acts, as transformers' bf16 model keeps it.
     *   s (M, C) bf16 = bf16(x0) when x0 (float32) is not NULL (the stream's start), else bf16(s +
     *   res), res (M, C) bf16 (one float add of the two values, rounded once to nearest even), or
     *   with neither s as it is (not written: linear_add added the branch); then xn_bf16 and xn
     *   (each may be NULL) = norm(s)·w (+ b) as add_norm, from s's rounded values, and norms (or
     *   NULL) the L2 norms of s's rows. */
    void (*add_norm_stream)(backend *be, void *s, const float *x0, void *xn_bf16, float *xn, const void *res,
                            const float *w, const float *b, int M, int C, float eps, int rms, float *norms);
    /* Rotary embeddings in place, HF's rotate_half layout: x has T rows of ld elements of type dt,
     * heads [0, nh) of HS columns at h·HS; in each head the pair (i, i + HS/2) turns by the angle
     * θ = float(pos[t]·inv_freq[i]): (a, b) -> (a cos θ - b sin θ, b cos θ + a sin θ), in float
     * (bf16: from the bf16 values, rounded once to nearest even). pos (T) int32 and inv_freq (HS/2)
     * in backend memory. */
    void (*rope)(backend *be, void *x, int dt, int ld, const int32_t *pos, const float *inv_freq, int T, int nh,
                 int HS);
    /* The gated MLP's activation: out (M, F) = act(in[:, :F]) · in[:, F:] with in (M, 2F) the
     * gate | up projections side by side (SwiGLU: act = ACT_SILU), both of element type dt (float
     * arithmetic, bf16 rounded once); out does not overlap in. */
    void (*gated_act)(backend *be, void *out, const void *in, int dt, int M, int F, int act);
    /* Multi-head attention over B sequences padded to T, with NKV key/value heads (grouped-query
     * attention: NH a multiple of NKV; query head h reads kv head h / (NH/NKV), HF's repeat_kv
     * order; NKV = NH: plain multi-head attention).
     *   q (B, T, ·) rows of ld floats, query head h at columns [h*HS, (h+1)*HS);  C = NH*HS (the
     *   attention width, which need not be the model's hidden size)
     *   k, v (B, T, ·) rows of the same ld, kv head g at columns [g*HS, (g+1)*HS) — ld >= C for
     *   separate tensors; C + 2·NKV·HS when q | k | v are the parts of one fused projection row
     *   keymask (B, T): 1 = real token, 0 = padding (additive -FLT_MAX before softmax, as HF)
     *   probs (B, NH, T, T): post-softmax probabilities, written
     *   out (B, T, C): probs · v per head
     * scale = 1/sqrt(HS); causal adds the upper-triangular mask; sw > 0 (a sliding window, HF's
     * sliding_window_overlay) also masks the keys j <= i - sw, so that row i sees at most the sw
     * keys i - sw + 1 .. i (0: no window). Masked keys get probability exactly 0; a row with every
     * key masked (a sample of length 0, or under a window a padding row beyond len - 1 + sw) is
     * uniform over all T keys, as HF's eager attention. */
    void (*attention)(backend *be, float *out, float *probs, const float *q, const float *k, const float *v, int ld,
                      const float *keymask, int B, int T, int NH, int NKV, int HS, int causal, int sw);
    /* Attention and the per-head scalars of stats_head() (out[STAT_*]) in one pass that never
     * stores the probabilities — the fused kernel of the GPU (kernels/attn_fused.cu) — and, where
     * tok (stats.h; NULL: none) asks, the per-token top-k (topk <= ATTN_FUSED_TOPK_MAX) and key
     * importance, as stats_head gives them, still without an L x L buffer. As attention (NKV kv heads, sliding window sw),
     * but with len (B) valid tokens (right padding) in place of the key mask, tokcls (B, T) token
     * flags (bit 0 [SEP]/EOS, bit 1 punctuation; NULL: none) and stats (B, NH, STAT_N), all three
     * in backend memory; out, q, k, v of element type dt; window: the locality statistic's window
     * (stats_params.window). The output rows of padding queries that see no key (beyond
     * len - 1 + sw) are not defined (the GPU writes 0). tok->vis (a patch model's layer: every
     * len = T, not causal, no window) also asks for the vision outputs and the heads' fused map,
     * still without storing the probabilities per head (the GPU: a second pass over the scores),
     * only where vision_fused_ok(be, T, NH, HS). Only where fused_ok(be, HS); all three NULL on a
     * backend without it. */
    void (*attention_stats)(backend *be, void *out, const void *q, const void *k, const void *v, int dt, int ld,
                            const int32_t *len, const uint8_t *tokcls, int B, int T, int NH, int NKV, int HS,
                            int causal, int sw, int window, float *stats, const attn_tokens *tok);
    int (*fused_ok)(backend *be, int HS);
    int (*vision_fused_ok)(backend *be, int T, int NH, int HS);
    /* Per-head statistics (stats.h) of probs (B, NH, T, T) in backend memory, results on the host
     * (sp: causal, locality window, top-k and the attention's sliding window, which decides the
     * visible keys that the statistics count):
     *   len[B], sep/punct (B, T) token-class flags: host arrays (sep/punct may be NULL: masses 0)
     *   out (B, NH, STAT_N); key_imp (B, NH, T), 0 beyond len, or NULL: not wanted;
     *   topk_idx/topk_w (B, NH, T, k), or NULL when k = 0
     * The GPU computes them where the probabilities are; only these small arrays cross the bus. */
    void (*attn_stats)(backend *be, const float *probs, const int *len, const uint8_t *sep, const uint8_t *punct,
                       int B, int NH, int T, const stats_params *sp, float *out, float *key_imp, int32_t *topk_idx,
                       float *topk_w);
    /* The probabilities as /attention stores them, into host memory dst (B, NH, Lmax, Lmax):
     * sample b's len[b] × len[b] block at the top-left, zeros elsewhere; float32, or IEEE half
     * bits (uint16, round to nearest even) when f16. Packing and conversion happen on the device;
     * only the packed bytes cross the bus. len: host array. */
    void (*attn_pack)(backend *be, void *dst, const float *probs, const int *len, int B, int NH, int T, int Lmax, int f16);
    /* Host memory for buffers that cross the bus often (pinned for CUDA), or NULL when exhausted. */
    void *(*host_alloc)(backend *be, size_t bytes);
    void (*host_free)(backend *be, void *p);
    /* height rows of width bytes from src (pitch spitch) to dst (pitch dpitch), both in backend
     * memory (cudaMemcpy2D on the GPU). */
    void (*copy_rows)(backend *be, void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height);
    /* Head similarity of a batch (stats_sim_add's definitions): maps (B, nh, T, T) in backend
     * memory, len[B] on the host; adds every sample's Σ-over-rows JS and Gram into the host
     * (nh, nh) arrays js_sum and gram. */
    void (*head_sim)(backend *be, const float *maps, const int *len, int B, int nh, int T, double *js_sum, double *gram);
    /* The vision statistics (vstats.h's definitions) where the probabilities are, for a vision run
     * that copies only these to the host:
     * vision_stats: of probs (B, NH, T, T) of B images on grid g (T = n_prefix + gh·gw, no padding),
     *   into host arrays dist and loc (B, NH) (locality: radius 1) and cls (B, NH, gh·gw).
     * rollout_step: Rout (B, T, T) = Â·Rin, vstats_rollout_step for B images at once: Â the heads of
     *   probs fused (fusion 0 mean, 1 max, 2 min), the smallest ⌊discard·T²⌋ entries discarded,
     *   (A + I)/2 with rows renormalised; Rin NULL: the identity (the first layer). ready: probs
     *   is Â already, one map a image (attention_stats' map with vis->roll; NH, fusion and discard
     *   unused): the product alone. Rout, Rin and probs in backend memory; Rout does not overlap
     *   Rin (nor probs when ready).
     * row_norms: out (M) = the L2 norms of the M rows of C floats of x, both in backend memory. */
    void (*vision_stats)(backend *be, const float *probs, int B, int NH, int T, const vgrid *g, float *dist, float *loc,
                         float *cls);
    void (*rollout_step)(backend *be, float *Rout, const float *Rin, const float *probs, int B, int NH, int T, int fusion,
                         double discard, int ready);
    void (*row_norms)(backend *be, float *out, const float *x, size_t M, int C);
    /* The patch stem's im2col: rows (B·gh·gw, ch·P·P) = the patches of B images px (B, ch, H, W),
     * all in backend memory, as patch.h's patch_rows (gh = H / P, gw = W / P): px float32 when lut
     * is NULL, else 8-bit values mapped through lut (ch, 256) as patch_rows_u8. */
    void (*patch_rows)(backend *be, float *rows, const void *px, const float *lut, int B, int ch, int H, int W, int P);
    /* The CNN ops (cnn.c, ResNet), in backend memory, activations NHWC (B, H, W, C):
     * conv_rows: rows (B·OH·OW, C·k·k) of x, each row in (c, ky, kx) order as a flattened torch
     *   convolution weight, 0 outside the image (zero padding); OH = (H + 2·pad − k)/stride + 1, OW alike.
     * maxpool: y (B, OH, OW, C) = the max of x over 3 × 3 windows of stride 2 and padding 1 (the
     *   padding never wins), OH = (H − 1)/2 + 1, OW alike.
     * add_relu: y[i] = max(y[i] + a[i], 0), i < n (one float add, as torch's in-place +=). */
    void (*conv_rows)(backend *be, float *rows, const float *x, int B, int H, int W, int C, int k, int stride, int pad);
    void (*maxpool)(backend *be, float *y, const float *x, int B, int H, int W, int C);
    void (*add_relu)(backend *be, float *y, const float *a, size_t n);
    /* channel_stats: of x (B, hw, C) (NHWC) per image b and channel c over its hw positions, into
     *   host arrays (B, C): the mean, the fraction of positions > 0, and the spatial entropy
     *   −Σ p ln p, p = max(x, 0) / Σ max(x, 0), in nats (NaN when no position is > 0); sums in double. */
    void (*channel_stats)(backend *be, const float *x, int B, int hw, int C, float *mean, float *active, float *entropy);
    /* `run --timeline` (NULL: not offered, the CPU): mark records, in the op stream, the moment
     * every op enqueued before it is done, with the caller's tag, synchronising nothing;
     * marks_read waits for the last and returns the n marks since the last read, their tags and
     * milliseconds since the first (arrays the caller frees), and how many were dropped. */
    void (*mark)(backend *be, int tag);
    int (*marks_read)(backend *be, int **tags, double **ms, long *lost);
    /* Free bytes of backend memory now, or 0 when unknown (CPU). */
    size_t (*mem_free)(backend *be);
    /* Scratch bytes linear takes per element of its input (the TF32 split or bf16 copy; 0: none),
     * for model_batch_bytes. */
    int linear_scratch;
    /* 1: the GEMM-side activations of the fused path (q k v, the attention output, the MLP's
     * hidden layer) may be DT_BF16 — they feed only bf16 GEMMs anyway (`--precision bf16`) */
    int bf16_acts;
    /* 1: linear_act may compute an erf GELU (ACT_GELU) as the tanh form (within 4.7e-4 of it,
     * below a bf16 rounding of GELU's outputs above 0.12): the caller's choice (--gelu) */
    int gelu_tanh;
};

/* The CPU backend (OpenBLAS sgemm + OpenMP). Never fails. */
backend *backend_cpu_init(void);

#ifdef ATTNSCOPE_CUDA
/* The CUDA backend on the current device (cuda_bind_device chose it): cuBLAS for the matrix
 * products, kernels/ for the rest, checked against the CPU by tests/test_backend_gpu.c and
 * tests/test_attn_gpu.c (the attention ops).
 * precision 0: fp32 — the linear layers and QKᵀ as 3xTF32 tensor-core GEMMs (split.cu: within
 *   HF's fp32 tolerance, measured in tests/bench/accuracy.sh) on sm_80 and newer, SGEMM below;
 *   P·V stays SGEMM (P is not split);
 * 1: TF32 tensor cores for every GEMM (~1e-3 relative);
 * 2: bf16 inputs to the linear layers (fp32 accumulation and outputs); attention with only
 *   per-head scalars wanted: attention_stats on bf16 tensor cores (attn_fused.cu, softmax and
 *   statistics in fp32); else attention GEMMs in TF32, softmax and statistics in fp32/fp64;
 * 0 and 1 with only per-head scalars wanted (sm_80+, head sizes 32, 64 and 128): attention_stats
 *   as 3xTF32 on tensor cores (attn_fused.cu), fp32-accurate;
 * 3: fp32 with every GEMM an SGEMM (the FFMA path PyTorch's fp32 takes).
 * Returns NULL with err_set() when no device is usable or precision is not 0..3. A CUDA error
 * after init ends the job (check.h); only alloc's out-of-memory is reported (NULL). */
backend *backend_cuda_init(int precision);
#endif

/* The backend named name ("cpu" or "cuda"; precision as backend_cuda_init, ignored by the CPU).
 * Returns NULL with err_set() for an unknown name, a build without CUDA, or no usable device. */
backend *backend_init(const char *name, int precision);
/* Releases the backend's own state (release) and the table; buffers from alloc must be freed
 * before. NULL is a no-op. */
void backend_free(backend *be);
/* A backend that times every op of inner for `run --profile`; it owns inner. Without timeline,
 * it synchronises after each op, so each op's time is its own; with timeline (inner has mark), it
 * synchronises nothing: marks before and after each op give the device's timeline, its idle gaps
 * and the op each gap held back. backend_profile_print writes the table against the loop's
 * seconds (nothing for a backend that is not profiled). */
backend *backend_profiled(backend *inner, int timeline);
#include <stdio.h>
void backend_profile_begin(backend *be);   /* what was timed so far is forgotten */
void backend_profile_print(backend *be, double loop_s, FILE *f);

/* The asynchronous copies and fences, with their fallbacks where a backend lacks them (the
 * synchronous copy; a sync for a wait) */
#define BACKEND_FENCES 8
static inline void backend_download_async(backend *be, void *dst, const void *src, size_t bytes)
{
    (be->download_async ? be->download_async : be->download)(be, dst, src, bytes);
}
static inline void backend_upload_async(backend *be, void *dst, const void *src, size_t bytes)
{
    (be->upload_async ? be->upload_async : be->upload)(be, dst, src, bytes);
}
static inline void backend_fence(backend *be, int slot)
{
    if (be->fence) be->fence(be, slot);
}
static inline void backend_fence_wait(backend *be, int slot)
{
    if (be->fence_wait) be->fence_wait(be, slot);
    else be->sync(be);
}
#endif
