/* kernels.h — the plain-C face of the .cu files of kernels/ (built only with `make CUDA=1`). Every
 * launcher is extern "C", runs on the default stream, checks its launch (a failure ends the job
 * through check_fail with file, line and kernel name) and does not synchronise. All pointers but
 * those of cuda_bind_device are device memory; tensors are float32 row-major, shapes as in
 * backend.h. No model logic lives in kernels/: src/backend_cuda.c composes these into the ops of
 * the backend table, and each is checked against backend_cpu.c by tests/test_backend_gpu.c (the
 * attention kernels by tests/test_attn_gpu.c). */
#ifndef ATTNSCOPE_KERNELS_H
#define ATTNSCOPE_KERNELS_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
#include "../src/stats.h"   /* attn_tokens */

/* Binds the calling rank to GPU (local_rank mod visible devices) and describes it in
 * out[cap] as "gpu=<i>/<n> <name> pci=<bus id>". Returns the number of visible devices
 * (0: none, out says so; the CPU backend is used). */
int cuda_bind_device(int local_rank, char *out, int cap);

/* embed.cu: out (T, C) = wte[ids] (+ wpe[pos] when wpe is not NULL) (+ wtt[types] when wtt is not NULL). */
void cuda_embed(float *out, const int32_t *ids, const int32_t *pos, const int32_t *types, const float *wte,
                const float *wpe, const float *wtt, int T, int C);
/* the same with a bf16 token table (--precision bf16: backend token_table) */
void cuda_embed_bf16(float *out, const int32_t *ids, const int32_t *pos, const int32_t *types, const void *wte,
                     const float *wpe, const float *wtt, int T, int C);
/* layernorm.cu: out (M, C) = LayerNorm(in + res) · w + b (in float32, or bfloat16 when in_bf16;
 * res NULL: none, float32, or bfloat16 when res_bf16), statistics in double; out may equal in, or
 * be NULL; out_bf16 (M, C) bfloat16 receives the same values rounded, or NULL (it may equal a
 * bf16 in). */
void cuda_layernorm(float *out, void *out_bf16, const void *in, int in_bf16, const void *res, int res_bf16,
                    const float *w, const float *b, int M, int C, float eps);
/* add_norm.cu: backend.h add_norm — x (M, C) += res (res NULL: none; float32, or bfloat16 when
 * res_bf16); then xn (M, C) = norm(x)·w (+ b when b is not NULL), norm LayerNorm (rms 0) or RMSNorm
 * (rms 1), statistics in double; w NULL: xn = x. xn may equal x. xn_bf16 (M, C) bfloat16 receives
 * xn rounded (the next GEMM's input under --precision bf16), or NULL. norms (M), or NULL: each row's L2
 * norm after the add (in double, as cuda_row_norms). */
void cuda_add_norm(float *x, float *xn, void *xn_bf16, const void *res, int res_bf16, const float *w, const float *b,
                   int M, int C, float eps, int rms, float *norms);
/* add_norm.cu: backend.h add_norm_stream — the bf16 stream s (M, C) = bf16(x0) when x0 (float32)
 * is not NULL, else bf16(s + res) (res bf16, or NULL); then xn_bf16 and xn (each may be NULL) =
 * norm(s)·w (+ b) as cuda_add_norm, from s's rounded values; norms of s's rows, or NULL. */
void cuda_add_norm_stream(void *s, const float *x0, void *xn_bf16, float *xn, const void *res, const float *w,
                          const float *b, int M, int C, float eps, int rms, float *norms);
/* rope.cu: backend.h rope — in place on T rows of ld elements (float32, or bfloat16 when bf16),
 * heads [0, nh) of HS columns; pos (T) int32, inv_freq (HS/2) float32. */
void cuda_rope(void *x, int bf16, int ld, const int32_t *pos, const float *inv_freq, int T, int nh, int HS);
/* gated_act.cu: backend.h gated_act — out (M, F) = act(in[:, :F]) · in[:, F:], in (M, 2F); each
 * float32 or bfloat16 (out_bf16, in_bf16); out does not overlap in. */
void cuda_gated_act(void *out, int out_bf16, const void *in, int in_bf16, int M, int F, int act);
/* bias.cu: out (M, N) += b (N) on every row; _bf16: out bfloat16. */
void cuda_bias_add(float *out, const float *b, int M, int N);
void cuda_bias_add_bf16(void *out, const float *b, int M, int N);
/* activation.cu: x[i] = act(x[i]) in place, act a config.h act_kind; _bf16: n bfloat16 (x 16-byte aligned). */
void cuda_activation(float *x, size_t n, int act);
void cuda_activation_bf16(void *x, size_t n, int act);
/* permute.cu: in_q (B, T, ·) rows of ld floats → q (B, NH, T, HS), in_k/in_v (same ld) → k/v
 * (B, NKV, T, HS) (NKV kv heads at columns g·HS); split (sm_80+): q and k rows of 3·HS instead,
 * as split.cu's activations and weights (QKᵀ as one 3xTF32 GEMM).
 * unpermute: (B, NH, T, HS) → (B, T, NH·HS). */
void cuda_permute_qkv(float *q, float *k, float *v, const float *in_q, const float *in_k, const float *in_v, int ld,
                      int B, int T, int NH, int NKV, int HS, int split);
void cuda_unpermute(float *out, const float *in, int B, int T, int NH, int HS);
/* softmax.cu: att (B, NH, T, T) scores → probabilities in place; keymask (B, T) 1 = real key,
 * 0 = padding; causal masks j > i; sw > 0 (a sliding window) masks j <= i − sw. Masked keys get
 * exactly 0; a fully masked row is uniform. */
void cuda_softmax(float *att, const float *keymask, int B, int NH, int T, int causal, int sw);

/* attn_stats.cu: stats_head() (stats.h) of every head of probs (B, NH, T, T). len[B] valid
 * tokens; sw the attention's sliding window (0: none; the statistics count only the keys it
 * shows); sep/punct (B, T) flags or NULL; out (B, NH, STAT_N); key_imp (B, NH, T), 0 beyond
 * len, or NULL (then only the sink α_0 is computed); topk_idx/topk_w (B, NH, T, k) with
 * 0 <= k <= KERNEL_TOPK_MAX (else the job ends); scratch: cuda_attn_stats_scratch bytes. */
size_t cuda_attn_stats_scratch(int B, int NH, int T);
#define KERNEL_TOPK_MAX 64

/* attn_fused.cu: attention and stats_head()'s scalars (STAT_ENTROPY .. STAT_SINK) in one kernel
 * on tensor cores, the probabilities never stored; with tok (or NULL), also the top-k of every
 * query row (in the same kernel) and the key importance (a second kernel over the scores, from the
 * rows' normalisers the first one leaves in the scratch): stats.h's attn_tokens. q, k, v (B, T, ·)
 * rows of ld elements, query head h at columns h·HS of q, kv head g at columns g·HS of k and v
 * (NKV kv heads; query head h reads kv head h / (NH/NKV)); sw > 0: a sliding window (keys
 * j <= i − sw masked, key tiles wholly left of it skipped); bf16 (cuda_attn_fused: fp32 out; _bf16: bf16 out)
 * or fp32 (_f32: every product as 3xTF32, fp32-accurate); out (B, T, ldo); len[B] valid tokens
 * (right padding); tokcls (B, T) bit 0 [SEP]/EOS, bit 1 punctuation, or NULL; stats
 * (B, NH, STAT_N); scratch: cuda_attn_fused_scratch bytes, all zero before the first launch (its
 * head holds per-head finish counters, which every launch leaves at zero). HS must be one that
 * cuda_attn_fused_supported(HS, fp32) accepts (else the job ends); rows 16-byte aligned;
 * sm_80 and newer. */
int cuda_attn_fused_supported(int HS, int fp32);
/* whether tok->vis (stats.h attn_vis: a patch model's vision outputs, by a second pass over the
 * scores, attn_vision.cuh, or with vis->kept from the probabilities the kernel keeps in fp16,
 * attn_vision_kept.cuh) is taken for a layer of T tokens and NH heads of HS: its tables must fit
 * in shared memory (T up to 4096) */
int cuda_attn_vision_supported(int T, int NH, int HS, int fp32);
/* the bytes of vis->kept's store for B samples of NH heads and T tokens: the fp16 probabilities
 * and their key tiles' maxima (part of cuda_attn_fused_scratch's with kept) */
size_t cuda_attn_vision_kept_bytes(int B, int NH, int T);
/* the scratch for B samples of NH heads and T tokens; kept: room for tok->vis->kept's fp16
 * probabilities (B·NH·T·⌈T/8⌉·16 bytes) */
size_t cuda_attn_fused_scratch(int B, int NH, int T, int kept);
size_t cuda_attn_fused_count_bytes(int B, int NH);   /* the counters' part of the scratch, at its head */
void cuda_attn_fused(float *out, int ldo, const void *q, const void *k, const void *v, int ld, const int *len,
                     const uint8_t *tokcls, int B, int NH, int NKV, int T, int HS, int causal, int sw, int window,
                     float *stats, const attn_tokens *tok, void *scratch);
void cuda_attn_fused_bf16(void *out, int ldo, const void *q, const void *k, const void *v, int ld, const int *len,
                          const uint8_t *tokcls, int B, int NH, int NKV, int T, int HS, int causal, int sw, int window,
                          float *stats, const attn_tokens *tok, void *scratch);
void cuda_attn_fused_f32(float *out, int ldo, const float *q, const float *k, const float *v, int ld, const int *len,
                         const uint8_t *tokcls, int B, int NH, int NKV, int T, int HS, int causal, int sw, int window,
                         float *stats, const attn_tokens *tok, void *scratch);

/* Per sample s < B and heads a <= b < nh of maps (B, nh, T, T), len[B] on the device: mm and gram
 * (B, nh, nh) doubles receive Σ m ln m (m the mean of the two smoothed maps; a == b: Σ p' ln p')
 * and Σ p_a p_b over the n × n block; entries with a > b are not written. */
void cuda_head_sim(double *mm, double *gram, const float *maps, const int *len, int B, int nh, int T);

/* split.cu: in (M, K) → out (M, 3K) = [hi | lo | hi] (weight = 0: activations) or [lo | hi | hi]
 * (weight = 1), hi = tf32(x), lo = tf32(x − hi), both rounded to nearest: one TF32 GEMM of the two
 * with K' = 3K is the fp32 product up to the dropped lo·lo term ("3xTF32"), cross terms first.
 * sm_80 and newer. */
void cuda_split_tf32(float *out, const float *in, int M, int K, int weight);

/* out[n] bfloat16 (round to nearest even) of in[n]. */
void cuda_f32_to_bf16(void *out, const float *in, size_t n);
/* how many 4-byte words (and tail bytes) of a and b differ, synchronously; dscratch: one device
 * unsigned long long; ~0 when a copy failed */
unsigned long long cuda_bytes_differ(const void *a, const void *b, size_t bytes, unsigned long long *dscratch);

/* out (B, NH, Lmax, Lmax), float or IEEE half (f16 = 1): each sample's probs (B, NH, T, T) block
 * of len[b] × len[b] (device array) at the top-left, zeros elsewhere; Lmax >= T. */
void cuda_attn_pack(void *out, const float *probs, const int *len, int B, int NH, int T, int Lmax, int f16);
void cuda_attn_stats(const float *probs, const int *len, const uint8_t *sep, const uint8_t *punct, int B, int NH, int T,
                     int causal, int sw, int window, int k, float *out, float *key_imp, int32_t *topk_idx, float *topk_w,
                     void *scratch);

/* vision.cu: vstats.h's statistics where the probabilities are. vision_stats: of probs (B, NH, T, T)
 * of images on a gh × gw grid of patch pixels (T = n_prefix + gh·gw), dist and loc (B, NH) — mean
 * distance in pixels and 3 × 3 locality over the patch rows — and cls (B, NH, gh·gw), the [CLS] row
 * over the patches. rollout_map: A (B, T, T) = the heads of probs fused (fusion 0 mean, 1 max,
 * 2 min), the smallest discard_k entries of each image's map set to 0 (not entry 0; 0: none), then
 * (A + I)/2 with rows renormalised. row_norms: out (M) the L2 norms of the rows of x (M, C). */
void cuda_vision_stats(const float *probs, int B, int NH, int T, int n_prefix, int gh, int gw, int patch, float *dist,
                       float *loc, float *cls);
void cuda_rollout_map(float *A, const float *probs, int B, int NH, int T, int fusion, size_t discard_k);
void cuda_row_norms(float *out, const float *x, size_t M, int C);
/* cnn.cu: backend.h's CNN ops (NHWC activations): conv_rows (im2col), maxpool (3 × 3, stride 2,
 * padding 1), add_relu (y = max(y + a, 0)). */
void cuda_conv_rows(float *rows, const float *x, int B, int H, int W, int C, int k, int stride, int pad);
void cuda_maxpool(float *y, const float *x, int B, int H, int W, int C);
void cuda_add_relu(float *y, const float *a, size_t n);
/* cnn.cu: backend.h channel_stats of x (B, hw, C) into device arrays mean, active, entropy (B, C). */
void cuda_channel_stats(const float *x, int B, int hw, int C, float *mean, float *active, float *entropy);
/* patch.cu: rows (B·gh·gw, ch·P·P) = the patches of px (B, ch, H, W), as patch.h's patch_rows: px
 * float32 (lut NULL), or 8-bit values with value v of channel c mapped to lut[c·256 + v] (device memory). */
void cuda_patch_rows(float *rows, const void *px, const float *lut, int B, int ch, int H, int W, int P);

#ifdef __cplusplus
}
#endif
#endif
