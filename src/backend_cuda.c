/* backend_cuda.c — the CUDA backend: cuBLAS for every matrix product (linear, QKᵀ and P·V as
 * strided-batched GEMMs over the B·NKV kv heads), kernels/ for the rest, all on the default
 * stream. Compiled only with `make CUDA=1`. The CPU backend is the reference;
 * tests/test_backend_gpu.c (the attention ops: tests/test_attn_gpu.c) states and checks each op's
 * tolerance against it.
 *
 * Invariants: ops do not allocate model buffers; the context owns only scratch (head-major q, k,
 * v and the attention output, and attn_stats' small device arrays), grown on demand and freed
 * by release. Every CUDA/cuBLAS call is checked: any error but an out-of-memory in alloc ends
 * the job with the call and file:line (check.h). */
#ifdef ATTNSCOPE_CUDA
#include "backend_cuda_int.h"
#include "kernels.h"
#include "util.h"
#include <math.h>
#include <string.h>


static void *cuda_alloc(backend *be, size_t bytes)
{
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();           /* not sticky: clear it so that the caller may retry smaller */
        return NULL;
    }
    CHECK_CUDA(e);
    return p;
}
static void cuda_free(backend *be, void *p)
{
    cuda_ctx *c = be->ctx;
    for (int i = 0; i < c->n_wcache; i++)       /* a freed weight's bf16 copy goes with it */
        if (c->wcache[i].w == p) {
            if (c->wcache[i].bf != p) CHECK_CUDA(cudaFree(c->wcache[i].bf));   /* (a linear_weight: its own key) */
            c->wcache[i] = c->wcache[--c->n_wcache];
            break;
        }
    for (int i = 0; i < c->n_tables; i++)
        if (c->tables[i] == p) { c->tables[i] = c->tables[--c->n_tables]; break; }
    CHECK_CUDA(cudaFree(p));
}
static void cuda_upload(backend *be, void *dst, const void *src, size_t bytes)
{
    CHECK_CUDA(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}
static void cuda_upload_async(backend *be, void *dst, const void *src, size_t bytes)
{
    (void)be;
    CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, 0));
}
static void cuda_download(backend *be, void *dst, const void *src, size_t bytes)
{
    CHECK_CUDA(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}
/* download_async through a staging arena in device memory: on the op stream the copy is device
 * to device (a batch of 128 ViT-B images' vision outputs, token norms and rollout, 36 MB, in
 * ~25 µs), and the crossing to the host (~1.4 ms of it) runs on a stream of its own (dside) while
 * the next batch computes; in the op stream it held the GPU's kernels back for as long (ViT-B
 * runs 2-3% faster: BENCHMARKS.md run 36). A fence after such downloads is recorded on dside
 * once the op stream has reached it, so it passes when both have. The arena is reused after that
 * fence: before its first copy there the op stream waits for the last crossing (dl_done).
 * ATTNSCOPE_NO_SIDE_COPY=1: the crossings in the op stream, as before. */
static void cuda_download_async(backend *be, void *dst, const void *src, size_t bytes)
{
    cuda_ctx *c = be->ctx;
    if (!c->dside) {
        CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, 0));
        return;
    }
    const size_t span = (bytes + 255) / 256 * 256;
    if (c->dl_off + span > c->dl_cap) {           /* (the first batches) */
        CHECK_CUDA(cudaDeviceSynchronize());       /* every crossing is done: the arena may go */
        if (c->dl_arena) CHECK_CUDA(cudaFree(c->dl_arena));
        c->dl_arena = NULL;
        c->dl_cap = 2 * c->dl_cap > span ? 2 * c->dl_cap : span;
        CHECK_CUDA(cudaMalloc(&c->dl_arena, c->dl_cap));
        c->dl_off = 0;
        c->dl_reuse = 0;
    }
    if (c->dl_reuse) CHECK_CUDA(cudaStreamWaitEvent(cudaStreamLegacy, c->dl_done, 0));
    c->dl_reuse = 0;
    char *stage = (char *)c->dl_arena + c->dl_off;
    CHECK_CUDA(cudaMemcpyAsync(stage, src, bytes, cudaMemcpyDeviceToDevice, 0));
    CHECK_CUDA(cudaEventRecord(c->dl_mark, 0));
    CHECK_CUDA(cudaStreamWaitEvent(c->dside, c->dl_mark, 0));
    CHECK_CUDA(cudaMemcpyAsync(dst, stage, bytes, cudaMemcpyDeviceToHost, c->dside));
    CHECK_CUDA(cudaEventRecord(c->dl_done, c->dside));
    c->dl_off += span;
    c->dl_pending = 1;
}
static void cuda_sync(backend *be)
{
    cuda_ctx *c = be->ctx;
    CHECK_CUDA(cudaDeviceSynchronize());          /* (every stream: the crossings too) */
    c->dl_off = 0;
    c->dl_pending = c->dl_reuse = 0;
}
/* fences: one event per slot, recorded in the stream every op runs in (the legacy default stream),
 * or, after downloads, on dside behind it (above) */
static void cuda_fence(backend *be, int slot)
{
    cuda_ctx *c = be->ctx;
    if (!c->dl_pending) {
        CHECK_CUDA(cudaEventRecord(c->fence[slot], 0));
        return;
    }
    CHECK_CUDA(cudaEventRecord(c->dl_mark, 0));
    CHECK_CUDA(cudaStreamWaitEvent(c->dside, c->dl_mark, 0));
    CHECK_CUDA(cudaEventRecord(c->fence[slot], c->dside));
    c->dl_pending = 0;
    c->dl_off = 0;
    c->dl_reuse = 1;
}
static void cuda_fence_wait(backend *be, int slot)
{
    cuda_ctx *c = be->ctx;
    CHECK_CUDA(cudaEventSynchronize(c->fence[slot]));
}
/* on the side stream (non-blocking: no implicit order with the legacy stream), after fence `after`
 * (an event never recorded is no wait); the legacy stream waits for the copy */
static void cuda_upload_side(backend *be, void *dst, const void *src, size_t bytes, int after)
{
    cuda_ctx *c = be->ctx;
    if (after >= 0) CHECK_CUDA(cudaStreamWaitEvent(c->side, c->fence[after], 0));
    CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->side));
    CHECK_CUDA(cudaEventRecord(c->side_done, c->side));
    CHECK_CUDA(cudaStreamWaitEvent(cudaStreamLegacy, c->side_done, 0));
}

/* Scratch slot s with at least bytes; contents are not kept when it grows. Out of memory here
 * is fatal: the model's own buffers already fit, and scratch is a few of their size. */
void *cuda_scratch(cuda_ctx *c, int s, size_t bytes)
{
    if (c->scr_bytes[s] >= bytes) return c->scr[s];
    if (c->scr[s]) CHECK_CUDA(cudaFree(c->scr[s]));
    c->scr[s] = NULL;
    CHECK_CUDA(cudaMalloc(&c->scr[s], bytes));
    if (s == SCR_FUSED) CHECK_CUDA(cudaMemset(c->scr[s], 0, bytes));   /* the fused kernel's counters start at 0 */
    c->scr_bytes[s] = bytes;
    return c->scr[s];
}

static void cuda_embed_op(backend *be, float *out, const int32_t *ids, const int32_t *pos, const int32_t *types,
                          const float *wte, const float *wpe, const float *wtt, int T, int C)
{
    cuda_ctx *c = be->ctx;
    for (int i = 0; i < c->n_tables; i++)
        if (c->tables[i] == wte) { cuda_embed_bf16(out, ids, pos, types, wte, wpe, wtt, T, C); return; }
    cuda_embed(out, ids, pos, types, wte, wpe, wtt, T, C);
}

/* The device copy of weight W (N, K) that the GEMMs take, made on first use and kept: bf16, or the
 * 3xTF32 split (N, 3K) rows [lo | hi | hi] (split.cu) */
static cudaError_t derive(cuda_ctx *c, const float *W, int N, int K, void **out)
{
    const size_t n = (size_t)N * K;
    *out = NULL;
    cudaError_t e = cudaMalloc(out, c->split ? n * 3 * sizeof(float) : n * 2);
    if (e != cudaSuccess) return e;
    if (c->split) cuda_split_tf32(*out, W, N, K, 1);
    else cuda_f32_to_bf16(*out, W, n);
    return cudaSuccess;
}
static void remember(cuda_ctx *c, const void *key, void *copy)
{
    c->wcache = xrealloc(c->wcache, (c->n_wcache + 1) * sizeof *c->wcache);
    c->wcache[c->n_wcache++] = (bf16_weight){key, copy};
}
const void *cuda_derived_of(cuda_ctx *c, const float *W, int N, int K)
{
    for (int i = 0; i < c->n_wcache; i++)
        if (c->wcache[i].w == W) return c->wcache[i].bf;
    void *bf;
    CHECK_CUDA(derive(c, W, N, K, &bf));
    remember(c, W, bf);
    return bf;
}

/* token_table: under bf16 the table in bf16 (half the bytes; the row gather converts), remembered
 * so that embed reads it so */
static void *cuda_token_table(backend *be, const float *host, int rows, int C)
{
    cuda_ctx *c = be->ctx;
    const size_t n = (size_t)rows * C;
    float *w = cuda_alloc(be, n * sizeof(float));
    if (!w) return NULL;
    cuda_upload(be, w, host, n * sizeof(float));
    if (c->precision != 2) return w;
    void *t = cuda_alloc(be, n * 2);
    if (t) cuda_f32_to_bf16(t, w, n);
    CHECK_CUDA(cudaFree(w));                        /* (synchronous: the conversion is done) */
    if (!t) return NULL;
    c->tables = xrealloc(c->tables, (c->n_tables + 1) * sizeof *c->tables);
    c->tables[c->n_tables++] = t;
    return t;
}

/* linear_weight: under bf16 or 3xTF32 only the derived copy stays on the device, and is its own key
 * (derived_of finds it: linear takes the handle as W) */
static void *cuda_linear_weight(backend *be, const float *host, int N, int K)
{
    cuda_ctx *c = be->ctx;
    const size_t bytes = (size_t)N * K * sizeof(float);
    float *w = cuda_alloc(be, bytes);
    if (!w) return NULL;
    cuda_upload(be, w, host, bytes);
    if (c->precision != 2 && !c->split) return w;     /* tf32, fp32-sgemm: the floats themselves */
    void *d;
    cudaError_t e = derive(c, w, N, K, &d);
    CHECK_CUDA(cudaFree(w));                        /* (synchronous: the conversion is done) */
    if (e == cudaErrorMemoryAllocation) { cudaGetLastError(); return NULL; }
    CHECK_CUDA(e);
    remember(c, d, d);
    return d;
}


static void cuda_layernorm_op(backend *be, float *out, void *out_bf16, const void *in, int in_dt, const void *res,
                              int res_dt, const float *w, const float *b, int M, int C, float eps)
{
    cuda_layernorm(out, out_bf16, in, in_dt == DT_BF16, res, res_dt == DT_BF16, w, b, M, C, eps);
}
static void cuda_activation_op(backend *be, void *x, int dt, size_t n, int act)
{
    if (dt == DT_BF16) cuda_activation_bf16(x, n, act);
    else cuda_activation(x, n, act);
}

/* The decoder families' ops: float32, or bf16 where the forward keeps that activation in bf16 */
static void cuda_add_norm_op(backend *be, float *x, float *xn, void *xn_bf16, const void *res, int res_dt,
                             const float *w, const float *b, int M, int C, float eps, int rms, float *norms)
{
    cuda_add_norm(x, xn, xn_bf16, res, res_dt == DT_BF16, w, b, M, C, eps, rms, norms);
}

static void cuda_add_norm_stream_op(backend *be, void *s, const float *x0, void *xn_bf16, float *xn, const void *res,
                                    const float *w, const float *b, int M, int C, float eps, int rms, float *norms)
{
    cuda_add_norm_stream(s, x0, xn_bf16, xn, res, w, b, M, C, eps, rms, norms);
}
static void cuda_rope_op(backend *be, void *x, int dt, int ld, const int32_t *pos, const float *inv_freq, int T, int nh,
                         int HS)
{
    cuda_rope(x, dt == DT_BF16, ld, pos, inv_freq, T, nh, HS);
}
static void cuda_gated_act_op(backend *be, void *out, const void *in, int dt, int M, int F, int act)
{
    cuda_gated_act(out, dt == DT_BF16, in, dt == DT_BF16, M, F, act);
}

/* probs doubles as the score buffer: QKᵀ·scale is written there and the softmax runs in place.
 * Grouped-query attention without copies: the G = NH/NKV query heads of kv head g are consecutive
 * in the head-major q (B, NH, T, HS), so they form one (G·T, HS) matrix, and their probabilities
 * one (G·T, T) block of probs: each GEMM is batched over the B·NKV kv heads with G·T query rows
 * (G = 1: the plain per-head GEMMs). */
static void cuda_attention(backend *be, float *out, float *probs, const float *q, const float *k, const float *v, int ld,
                           const float *keymask, int B, int T, int NH, int NKV, int HS, int causal, int sw)
{
    cuda_ctx *c = be->ctx;
    const size_t n = (size_t)B * T * NH * HS * sizeof(float), nkv = (size_t)B * T * NKV * HS * sizeof(float);
    const int sq = c->split ? 3 : 1;   /* fp32 on tensor cores: q, k as 3xTF32 operands (permute.cu) */
    float *qh = cuda_scratch(c, SCR_Q, sq * n), *kh = cuda_scratch(c, SCR_K, sq * nkv), *vh = cuda_scratch(c, SCR_V, nkv);  /* (B, ·, T, ·) */
    float *yh = cuda_scratch(c, SCR_Y, n);                                                                         /* (B, NH, T, HS) */
    cuda_permute_qkv(qh, kh, vh, q, k, v, ld, B, T, NH, NKV, HS, c->split);
    const int G = NH / NKV, GT = G * T;
    const float scale = 1.0f / sqrtf((float)HS), one = 1.0f, zero = 0.0f;
    const long long sH = (long long)T * HS, sP = (long long)T * T;
    /* per kv head, row-major S (G·T, T) = Q Kᵀ is column-major Sᵀ = K·Qᵀ: A = K with op T, B = Q. Split:
     * K' = 3·HS, the cross terms first (24 k-steps for HS = 64: one accumulation is accurate). */
    if (c->split)
        CHECK_CUBLAS(cublasGemmStridedBatchedEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, T, GT, 3 * HS, &scale, kh, CUDA_R_32F,
                                                3 * HS, 3 * sH, qh, CUDA_R_32F, 3 * HS, 3 * G * sH, &zero, probs,
                                                CUDA_R_32F, T, G * sP, B * NKV, CUBLAS_COMPUTE_32F_FAST_TF32,
                                                CUBLAS_GEMM_DEFAULT));
    else
        CHECK_CUBLAS(cublasSgemmStridedBatched(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, T, GT, HS, &scale, kh, HS, sH, qh, HS,
                                               G * sH, &zero, probs, T, G * sP, B * NKV));
    cuda_softmax(probs, keymask, B, NH, T, causal, sw);
    /* row-major Y (G·T, HS) = P V is column-major Yᵀ = Vᵀ·Pᵀ: both operands as stored */
    CHECK_CUBLAS(cublasSgemmStridedBatched(c->blas, CUBLAS_OP_N, CUBLAS_OP_N, HS, GT, T, &one, vh, HS, sH, probs, T,
                                           G * sP, &zero, yh, HS, G * sH, B * NKV));
    cuda_unpermute(out, yh, B, T, NH, HS);
}

/* bf16: the bf16 kernel; fp32 (on tensor cores) and tf32: the 3xTF32 kernel, fp32-accurate;
 * fp32-sgemm keeps the explicit path (every product an SGEMM, by its definition) */
static int cuda_fused_ok(backend *be, int HS)
{
    cuda_ctx *c = be->ctx;
    const int fp32 = c->precision != 2;
    return c->precision != 3 && c->sm >= 80 && cuda_attn_fused_supported(HS, fp32) && !util_env_on("ATTNSCOPE_NO_FUSED");
}

static int cuda_vision_fused_ok(backend *be, int T, int NH, int HS)
{
    cuda_ctx *c = be->ctx;
    return cuda_fused_ok(be, HS) && cuda_attn_vision_supported(T, NH, HS, c->precision != 2);
}

#define KEPT_MAX_BYTES ((size_t)1 << 31)
static void cuda_attention_stats(backend *be, void *out, const void *q, const void *k, const void *v, int dt, int ld,
                                 const int32_t *len, const uint8_t *tokcls, int B, int T, int NH, int NKV, int HS,
                                 int causal, int sw, int window, float *stats, const attn_tokens *tok)
{
    cuda_ctx *c = be->ctx;
    /* bf16 vision layers keep their probabilities in fp16 for the vision outputs (2^-11 relative
     * of the second pass's, which ATTNSCOPE_VIS_EXACT=1 keeps), where they and their tiles' maxima
     * take at most KEPT_MAX_BYTES (ViT-B/16 at 224, 128 images: 126 MB) */
    attn_vis kv;
    attn_tokens kt;
    if (tok && tok->vis && (dt == DT_BF16 || c->precision == 2) && !c->vis_exact &&
        cuda_attn_vision_kept_bytes(B, NH, T) <= KEPT_MAX_BYTES) {
        kv = *tok->vis;
        kv.kept = 1;
        kt = *tok;
        kt.vis = &kv;
        tok = &kt;
    }
    const int kept = tok && tok->vis && tok->vis->kept;
    /* the finish counters at the scratch's head are zero after every launch for the (b, h) pairs it
     * had; the partial sums follow them, so a launch with fewer pairs writes its partial sums where
     * a later launch with more finds its counters: zeroed whenever B·NH exceeds the last launch's
     * (a new buffer is all zero). Only "exceeds the largest so far" missed the window's small last
     * batch followed by the next window's full one: stale counts, wrong per-head statistics. */
    const size_t need = cuda_attn_fused_scratch(B, NH, T, kept);
    if (c->scr_bytes[SCR_FUSED] < need) c->fused_bh = B * NH;
    void *part = cuda_scratch(c, SCR_FUSED, need);
    if (B * NH > c->fused_bh) CHECK_CUDA(cudaMemsetAsync(part, 0, cuda_attn_fused_count_bytes(B, NH), 0));
    c->fused_bh = B * NH;
    if (dt == DT_BF16) {
        cuda_attn_fused_bf16(out, NH * HS, q, k, v, ld, len, tokcls, B, NH, NKV, T, HS, causal, sw, window, stats, tok, part);
        return;
    }
    if (c->precision != 2) {           /* fp32: the 3xTF32 kernel on the float32 rows as they are */
        cuda_attn_fused_f32(out, NH * HS, q, k, v, ld, len, tokcls, B, NH, NKV, T, HS, causal, sw, window, stats, tok, part);
        return;
    }
    /* bf16 with float32 q, k, v (the parts of one fused projection row q | k | v): a bf16 copy, the
     * kernel's input */
    const int C = NH * HS, KV = NKV * HS;
    const float *qf = q;
    if ((const float *)k != qf + C || (const float *)v != qf + C + KV || ld != C + 2 * KV)
        check_fail(__FILE__, __LINE__, "cuda_attention_stats", "float32 q, k, v must be the parts of one (B, T, C + 2KV) buffer");
    char *qb = cuda_scratch(c, SCR_Q, (size_t)B * T * ld * 2);
    cuda_f32_to_bf16(qb, qf, (size_t)B * T * ld);
    cuda_attn_fused(out, C, qb, qb + 2 * C, qb + 2 * (C + KV), ld, len, tokcls, B, NH, NKV, T, HS, causal, sw, window,
                    stats, tok, part);
}

static void cuda_attn_stats_op(backend *be, const float *probs, const int *len, const uint8_t *sep,
                               const uint8_t *punct, int B, int NH, int T, const stats_params *sp, float *out,
                               float *key_imp, int32_t *topk_idx, float *topk_w)
{
    cuda_ctx *c = be->ctx;
    const int k = topk_idx ? sp->topk : 0;       /* 0: the kernel ranks nothing */
    const size_t heads = (size_t)B * NH, bt = (size_t)B * T;
    int *d_len = cuda_scratch(c, SCR_LEN, B * sizeof(int));
    uint8_t *d_sep = sep ? cuda_scratch(c, SCR_SEP, bt) : NULL, *d_punct = punct ? cuda_scratch(c, SCR_PUNCT, bt) : NULL;
    float *d_out = cuda_scratch(c, SCR_OUT, heads * STAT_N * sizeof(float));
    float *d_kimp = key_imp ? cuda_scratch(c, SCR_KIMP, heads * T * sizeof(float)) : NULL;
    int32_t *d_ti = k ? cuda_scratch(c, SCR_TKI, heads * T * k * sizeof(int32_t)) : NULL;
    float *d_tw = k ? cuda_scratch(c, SCR_TKW, heads * T * k * sizeof(float)) : NULL;
    CHECK_CUDA(cudaMemcpy(d_len, len, B * sizeof(int), cudaMemcpyHostToDevice));
    if (sep) CHECK_CUDA(cudaMemcpy(d_sep, sep, bt, cudaMemcpyHostToDevice));
    if (punct) CHECK_CUDA(cudaMemcpy(d_punct, punct, bt, cudaMemcpyHostToDevice));
    void *d_part = cuda_scratch(c, SCR_STATS, cuda_attn_stats_scratch(B, NH, T));
    cuda_attn_stats(probs, d_len, d_sep, d_punct, B, NH, T, sp->causal, sp->sliding_window, sp->window, k, d_out, d_kimp,
                    d_ti, d_tw, d_part);
    CHECK_CUDA(cudaMemcpy(out, d_out, heads * STAT_N * sizeof(float), cudaMemcpyDeviceToHost));
    if (key_imp) CHECK_CUDA(cudaMemcpy(key_imp, d_kimp, heads * T * sizeof(float), cudaMemcpyDeviceToHost));
    if (k > 0) {
        CHECK_CUDA(cudaMemcpy(topk_idx, d_ti, heads * T * k * sizeof(int32_t), cudaMemcpyDeviceToHost));
        CHECK_CUDA(cudaMemcpy(topk_w, d_tw, heads * T * k * sizeof(float), cudaMemcpyDeviceToHost));
    }
}

static void cuda_attn_pack_op(backend *be, void *dst, const float *probs, const int *len, int B, int NH, int T, int Lmax, int f16)
{
    cuda_ctx *c = be->ctx;
    const size_t bytes = (size_t)B * NH * Lmax * Lmax * (f16 ? 2 : 4);
    int *d_len = cuda_scratch(c, SCR_LEN, B * sizeof(int));
    void *d_out = cuda_scratch(c, SCR_PACK, bytes);
    CHECK_CUDA(cudaMemcpy(d_len, len, B * sizeof(int), cudaMemcpyHostToDevice));
    cuda_attn_pack(d_out, probs, d_len, B, NH, T, Lmax, f16);
    CHECK_CUDA(cudaMemcpy(dst, d_out, bytes, cudaMemcpyDeviceToHost));
}

/* pinned host memory: copies from the device run at full bus speed and can be asynchronous */
static void *cuda_host_alloc(backend *be, size_t bytes)
{
    void *p = NULL;
    if (cudaMallocHost(&p, bytes ? bytes : 1) != cudaSuccess) { cudaGetLastError(); return NULL; }
    return p;
}
static void cuda_host_free(backend *be, void *p) { if (p) CHECK_CUDA(cudaFreeHost(p)); }
static void cuda_copy_rows(backend *be, void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height)
{
    CHECK_CUDA(cudaMemcpy2D(dst, dpitch, src, spitch, width, height, cudaMemcpyDeviceToDevice));
}

static void cuda_head_sim_op(backend *be, const float *maps, const int *len, int B, int nh, int T, double *js_sum, double *gram)
{
    cuda_ctx *c = be->ctx;
    const size_t nn = (size_t)nh * nh;
    int *d_len = cuda_scratch(c, SCR_LEN, B * sizeof(int));
    double *d_mm = cuda_scratch(c, SCR_MM, B * nn * sizeof(double)), *d_g = cuda_scratch(c, SCR_GRAM, B * nn * sizeof(double));
    CHECK_CUDA(cudaMemcpy(d_len, len, B * sizeof(int), cudaMemcpyHostToDevice));
    cuda_head_sim(d_mm, d_g, maps, d_len, B, nh, T);
    double *mm = xmalloc(B * nn * sizeof(double)), *g = xmalloc(B * nn * sizeof(double));
    CHECK_CUDA(cudaMemcpy(mm, d_mm, B * nn * sizeof(double), cudaMemcpyDeviceToHost));
    CHECK_CUDA(cudaMemcpy(g, d_g, B * nn * sizeof(double), cudaMemcpyDeviceToHost));
    for (int s = 0; s < B; s++) {
        const double *M = mm + s * nn, *G = g + s * nn;
        for (int a = 0; a < nh; a++) {
            gram[(size_t)a * nh + a] += G[(size_t)a * nh + a];
            for (int b = a + 1; b < nh; b++) {
                const double js = 0.5 * (M[(size_t)a * nh + a] + M[(size_t)b * nh + b]) - M[(size_t)a * nh + b];
                js_sum[(size_t)a * nh + b] += js;
                js_sum[(size_t)b * nh + a] += js;
                gram[(size_t)a * nh + b] += G[(size_t)a * nh + b];
                gram[(size_t)b * nh + a] += G[(size_t)a * nh + b];
            }
        }
    }
    free(mm);
    free(g);
}

/* the small results in one device buffer, one copy to the host */
static void cuda_vision_stats_op(backend *be, const float *probs, int B, int NH, int T, const vgrid *g, float *dist,
                                 float *loc, float *cls)
{
    cuda_ctx *c = be->ctx;
    const size_t heads = (size_t)B * NH, np = (size_t)g->gh * g->gw;
    float *d = cuda_scratch(c, SCR_VIS, heads * (2 + np) * sizeof(float));
    cuda_vision_stats(probs, B, NH, T, g->n_prefix, g->gh, g->gw, g->patch, d, d + heads, d + 2 * heads);
    CHECK_CUDA(cudaMemcpy(dist, d, heads * sizeof(float), cudaMemcpyDeviceToHost));
    CHECK_CUDA(cudaMemcpy(loc, d + heads, heads * sizeof(float), cudaMemcpyDeviceToHost));
    CHECK_CUDA(cudaMemcpy(cls, d + 2 * heads, heads * np * sizeof(float), cudaMemcpyDeviceToHost));
}

/* Â in scratch, then Rout = Â·Rin for the B images as one strided-batched GEMM: in full fp32
 * (pedantic: no TF32 whatever the handle's math mode) but under --precision bf16, where TF32
 * tensor cores take it (~2^-11 relative per product, below what the bf16 forward's maps already
 * carry: BENCHMARKS.md run 28; ATTNSCOPE_ROLLOUT_FP32=1 keeps fp32 there too). Row-major
 * Rout = Â·Rin is column-major Routᵀ = Rinᵀ·Âᵀ: both operands as stored. ready: probs is Â (the
 * fused kernel's map with vis->roll): the product alone, or at the first layer a copy. */
static void cuda_rollout_step_op(backend *be, float *Rout, const float *Rin, const float *probs, int B, int NH, int T,
                                 int fusion, double discard, int ready)
{
    cuda_ctx *c = be->ctx;
    const size_t TT = (size_t)T * T;
    const float *A = probs;
    if (ready && !Rin) CHECK_CUDA(cudaMemcpyAsync(Rout, probs, (size_t)B * TT * sizeof(float), cudaMemcpyDeviceToDevice, 0));
    if (!ready) {
        float *Ah = Rin ? cuda_scratch(c, SCR_ROLL, (size_t)B * TT * sizeof(float)) : Rout;
        cuda_rollout_map(Ah, probs, B, NH, T, fusion, (size_t)(discard * (double)TT));
        A = Ah;
    }
    if (!Rin) return;                          /* the first layer: R = Â·I */
    const float one = 1.0f, zero = 0.0f;
    CHECK_CUBLAS(cublasGemmStridedBatchedEx(c->blas, CUBLAS_OP_N, CUBLAS_OP_N, T, T, T, &one, Rin, CUDA_R_32F, T,
                                            (long long)TT, A, CUDA_R_32F, T, (long long)TT, &zero, Rout, CUDA_R_32F, T,
                                            (long long)TT, B, c->roll_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F_PEDANTIC,
                                            CUBLAS_GEMM_DEFAULT));
}

/* (into device memory, no wait: a run keeps every layer's norms there until the batch ends) */
static void cuda_row_norms_op(backend *be, float *out, const float *x, size_t M, int C)
{
    (void)be;
    cuda_row_norms(out, x, M, C);
}

static void cuda_patch_rows_op(backend *be, float *rows, const void *px, const float *lut, int B, int ch, int H, int W,
                               int P)
{
    cuda_patch_rows(rows, px, lut, B, ch, H, W, P);
}

static void cuda_conv_rows_op(backend *be, float *rows, const float *x, int B, int H, int W, int C, int k, int stride,
                              int pad)
{
    cuda_conv_rows(rows, x, B, H, W, C, k, stride, pad);
}
static void cuda_maxpool_op(backend *be, float *y, const float *x, int B, int H, int W, int C) { cuda_maxpool(y, x, B, H, W, C); }
static void cuda_add_relu_op(backend *be, float *y, const float *a, size_t n) { cuda_add_relu(y, a, n); }

/* the three (B, C) results in one device buffer */
static void cuda_channel_stats_op(backend *be, const float *x, int B, int hw, int C, float *mean, float *active,
                                  float *entropy)
{
    cuda_ctx *c = be->ctx;
    const size_t n = (size_t)B * C;
    float *d = cuda_scratch(c, SCR_VIS, 3 * n * sizeof(float));
    cuda_channel_stats(x, B, hw, C, d, d + n, d + 2 * n);
    float *const dst[3] = {mean, active, entropy};
    for (int k = 0; k < 3; k++) CHECK_CUDA(cudaMemcpy(dst[k], d + k * n, n * sizeof(float), cudaMemcpyDeviceToHost));
}

static size_t cuda_mem_free(backend *be)
{
    size_t f = 0, t = 0;
    CHECK_CUDA(cudaMemGetInfo(&f, &t));
    return f;
}

static void cuda_release(backend *be)
{
    cuda_ctx *c = be->ctx;
    if (!c) return;
    for (int s = 0; s < SCR_N; s++)
        if (c->scr[s]) CHECK_CUDA(cudaFree(c->scr[s]));
    CHECK_CUBLAS(cublasDestroy(c->blas));
    if (c->workspace) CHECK_CUDA(cudaFree(c->workspace));
    for (int i = 0; i < c->n_wcache; i++) CHECK_CUDA(cudaFree(c->wcache[i].bf));
    free(c->wcache);
    free(c->tables);
    for (int i = 0; i < c->n_plans; i++) {
        lt_plan *p = &c->plans[i];
        cublasLtMatrixLayoutDestroy(p->a); cublasLtMatrixLayoutDestroy(p->b); cublasLtMatrixLayoutDestroy(p->c);
        cublasLtMatmulDescDestroy(p->op);
    }
    cublasLtDestroy(c->lt);
    for (int i = 0; i < BACKEND_FENCES; i++) CHECK_CUDA(cudaEventDestroy(c->fence[i]));
    CHECK_CUDA(cudaEventDestroy(c->side_done));
    CHECK_CUDA(cudaStreamDestroy(c->side));
    if (c->dside) {
        CHECK_CUDA(cudaStreamDestroy(c->dside));
        CHECK_CUDA(cudaEventDestroy(c->dl_mark));
        CHECK_CUDA(cudaEventDestroy(c->dl_done));
    }
    if (c->dl_arena) CHECK_CUDA(cudaFree(c->dl_arena));
    cuda_marks_free(c);
    free(c);
    be->ctx = NULL;
}

backend *backend_cuda_init(int precision)
{
    if (precision < 0 || precision > 3) {
        err_set("CUDA backend: precision must be 0 (fp32), 1 (tf32), 2 (bf16) or 3 (fp32 SGEMM), not %d", precision);
        return NULL;
    }
    int ndev = 0;
    cudaError_t e = cudaGetDeviceCount(&ndev);
    if (e != cudaSuccess || ndev == 0) {
        err_set("--backend cuda: no usable CUDA device (%s)", e != cudaSuccess ? cudaGetErrorString(e) : "none visible");
        cudaGetLastError();
        return NULL;
    }
    cuda_ctx *c = xcalloc(1, sizeof *c);
    c->precision = precision;
    int dev = 0, major = 0, minor = 0;
    CHECK_CUDA(cudaGetDevice(&dev));
    CHECK_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    CHECK_CUDA(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
    c->sm = 10 * major + minor;
    c->split = precision == 0 && major >= 8 && !util_env_on("ATTNSCOPE_NO_SPLIT");   /* TF32: sm_80+; the env: comparisons */
    const char *chunks = getenv("ATTNSCOPE_SPLIT_CHUNKS");      /* for measurements; see cuda_linear */
    c->chunks = chunks && atoi(chunks) > 0 ? atoi(chunks) : 0;
    c->roll_tf32 = precision == 2 && major >= 8 && !util_env_on("ATTNSCOPE_ROLLOUT_FP32");
    cublasStatus_t s = cublasCreate(&c->blas);
    if (s != CUBLAS_STATUS_SUCCESS) {
        err_set("--backend cuda: cublasCreate failed: %s", cublasGetStatusString(s));
        free(c);
        return NULL;
    }
    /* fp32: CUBLAS_DEFAULT_MATH never uses TF32 for Sgemm (only NVIDIA_TF32_OVERRIDE could turn it off further) */
    CHECK_CUBLAS(cublasSetMathMode(c->blas, precision == 1 || precision == 2 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    const size_t ws = LT_WORKSPACE;   /* shared by cuBLAS and cuBLASLt (same stream, never concurrent) */
    if (cudaMalloc(&c->workspace, ws) == cudaSuccess) CHECK_CUBLAS(cublasSetWorkspace(c->blas, c->workspace, ws));
    else { cudaGetLastError(); c->workspace = NULL; }
    CHECK_LT(cublasLtCreate(&c->lt));
    c->use_lt = !util_env_on("ATTNSCOPE_NO_CUBLASLT");   /* for comparisons: plain cublasSgemm + bias kernel */
    /* GEMM algorithms chosen by time (backend_cuda_linear.c lt_tune): opt-in, as ViT-B/16 runs of
     * 16k and 65k images were no faster with it (BENCHMARKS.md run 41) */
    c->tune = util_env_on("ATTNSCOPE_GEMM_TUNE");
    c->vis_exact = util_env_on("ATTNSCOPE_VIS_EXACT");   /* (cuda_attention_stats; for comparisons) */
    for (int i = 0; i < BACKEND_FENCES; i++) CHECK_CUDA(cudaEventCreateWithFlags(&c->fence[i], cudaEventDisableTiming));
    CHECK_CUDA(cudaEventCreateWithFlags(&c->side_done, cudaEventDisableTiming));
    CHECK_CUDA(cudaStreamCreateWithFlags(&c->side, cudaStreamNonBlocking));
    if (!util_env_on("ATTNSCOPE_NO_SIDE_COPY")) {
        CHECK_CUDA(cudaStreamCreateWithFlags(&c->dside, cudaStreamNonBlocking));
        CHECK_CUDA(cudaEventCreateWithFlags(&c->dl_mark, cudaEventDisableTiming));
        CHECK_CUDA(cudaEventCreateWithFlags(&c->dl_done, cudaEventDisableTiming));
    }
    backend *be = xcalloc(1, sizeof *be);
    be->name = "cuda";
    be->ctx = c;
    be->release = cuda_release;
    be->alloc = cuda_alloc;
    be->free = cuda_free;
    be->upload = cuda_upload;
    be->upload_async = cuda_upload_async;
    be->download = cuda_download;
    be->download_async = cuda_download_async;
    be->sync = cuda_sync;
    be->fence = cuda_fence;
    be->fence_wait = cuda_fence_wait;
    be->upload_side = util_env_on("ATTNSCOPE_NO_SIDE_COPY") ? NULL : cuda_upload_side;
    be->embed = cuda_embed_op;
    be->linear = cuda_linear;
    be->linear_act = cuda_linear_act;
    be->linear_weight = cuda_linear_weight;
    be->token_table = cuda_token_table;
    be->layernorm = cuda_layernorm_op;
    be->activation = cuda_activation_op;
    be->add_norm = cuda_add_norm_op;
    if (precision == 2) be->add_norm_stream = cuda_add_norm_stream_op;
    if (precision == 2 && !util_env_on("ATTNSCOPE_NO_LINEAR_ADD")) be->linear_add = cuda_linear_add;
    be->rope = cuda_rope_op;
    be->gated_act = cuda_gated_act_op;
    be->attention = cuda_attention;
    be->attn_stats = cuda_attn_stats_op;
    be->attention_stats = cuda_attention_stats;
    be->fused_ok = cuda_fused_ok;
    be->vision_fused_ok = cuda_vision_fused_ok;
    be->attn_pack = cuda_attn_pack_op;
    be->host_alloc = cuda_host_alloc;
    be->host_free = cuda_host_free;
    be->mem_free = cuda_mem_free;
    be->copy_rows = cuda_copy_rows;
    be->head_sim = cuda_head_sim_op;
    be->vision_stats = cuda_vision_stats_op;
    be->rollout_step = cuda_rollout_step_op;
    be->row_norms = cuda_row_norms_op;
    be->patch_rows = cuda_patch_rows_op;
    be->conv_rows = cuda_conv_rows_op;
    be->maxpool = cuda_maxpool_op;
    be->add_relu = cuda_add_relu_op;
    be->channel_stats = cuda_channel_stats_op;
    be->mark = cuda_mark;
    be->marks_read = cuda_marks_read;
    be->linear_scratch = c->split ? 3 * sizeof(float) : precision == 2 ? 2 : 0;
    be->bf16_acts = precision == 2;
    return be;
}
#endif
