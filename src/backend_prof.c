/* backend_prof.c — `attnscope run --profile`: a backend that wraps another one and times every op.
 * By default the inner backend is synchronised after each op, so the time is the op's own (the
 * run gets slower); at the end, a table per op says where the forward's time goes, and the rest
 * of the loop's time is the host's (statistics bookkeeping, copies, waiting for writes).
 * `--timeline` synchronises nothing: a mark before and after each op in the device's stream
 * (backend.h mark) gives each op's time on the device as the run really goes, and the gaps in
 * which the device had nothing to do, each charged to the op that came after it. */
#include "backend.h"
#include "util.h"
#include <stdio.h>
#include <string.h>

enum { P_EMBED, P_LINEAR, P_LINEAR_ACT, P_LINEAR_ADD, P_LAYERNORM, P_ADDNORM, P_ROPE, P_GATED, P_ACT, P_ATTENTION, P_FUSED, P_STATS, P_PACK, P_SIM, P_VIS, P_ROLL, P_NORMS, P_PATCH, P_CONV, P_POOL, P_ADDRELU, P_CHSTATS, P_UPLOAD, P_DOWNLOAD, P_N };
static const char *const prof_names[P_N] = {"embed", "linear (GEMM + bias)", "linear + activation (epilogue)", "linear + residual (epilogue)", "layernorm (+ residual add)", "add_norm (residual + norm)", "rope", "gated activation", "activation",
                                            "attention (QK^T, softmax, PV)", "attention + statistics (fused)", "attn_stats", "attn_pack", "head similarity", "vision_stats", "rollout_step", "row_norms", "patch_rows", "conv_rows (im2col)", "maxpool", "add_relu", "channel_stats", "upload", "download"};
typedef struct { backend *in; int timeline; double t[P_N]; long n[P_N]; } prof_ctx;

#define IN(be) (((prof_ctx *)(be)->ctx)->in)
/* a mark's tag: the op's slot, and 1 at its end */
#define TIMED(be, slot, call) do { prof_ctx *p_ = (be)->ctx; p_->n[slot]++; \
    if (p_->timeline) { p_->in->mark(p_->in, 2 * (slot)); call; p_->in->mark(p_->in, 2 * (slot) + 1); } \
    else { double t0_ = util_now(); call; p_->in->sync(p_->in); p_->t[slot] += util_now() - t0_; } } while (0)

static void *p_alloc(backend *be, size_t bytes) { return IN(be)->alloc(IN(be), bytes); }
static void p_free(backend *be, void *p) { IN(be)->free(IN(be), p); }
static void p_upload(backend *be, void *d, const void *s, size_t n) { TIMED(be, P_UPLOAD, IN(be)->upload(IN(be), d, s, n)); }
static void p_upload_async(backend *be, void *d, const void *s, size_t n)
{ TIMED(be, P_UPLOAD, IN(be)->upload_async(IN(be), d, s, n)); }
static void p_download(backend *be, void *d, const void *s, size_t n) { TIMED(be, P_DOWNLOAD, IN(be)->download(IN(be), d, s, n)); }
static void p_sync(backend *be) { IN(be)->sync(IN(be)); }
/* (the timeline's: the asynchronous copies and fences as the inner backend has them) */
static void p_download_async(backend *be, void *d, const void *s, size_t n)
{ TIMED(be, P_DOWNLOAD, IN(be)->download_async(IN(be), d, s, n)); }
static void p_upload_side(backend *be, void *d, const void *s, size_t n, int after)
{ TIMED(be, P_UPLOAD, IN(be)->upload_side(IN(be), d, s, n, after)); }
static void p_fence(backend *be, int slot) { IN(be)->fence(IN(be), slot); }
static void p_fence_wait(backend *be, int slot) { IN(be)->fence_wait(IN(be), slot); }
static void p_embed(backend *be, float *out, const int32_t *ids, const int32_t *pos, const int32_t *types, const float *wte,
                    const float *wpe, const float *wtt, int T, int C)
{ TIMED(be, P_EMBED, IN(be)->embed(IN(be), out, ids, pos, types, wte, wpe, wtt, T, C)); }
static void p_linear(backend *be, void *out, int odt, const void *in, int idt, const float *W, const float *b, int M, int K,
                     int N)
{ TIMED(be, P_LINEAR, IN(be)->linear(IN(be), out, odt, in, idt, W, b, M, K, N)); }
static int p_linear_act(backend *be, void *out, int odt, const void *in, int idt, const float *W, const float *b, int M,
                        int K, int N, int act)
{
    int done = 0;
    IN(be)->gelu_tanh = be->gelu_tanh;
    TIMED(be, P_LINEAR_ACT, done = IN(be)->linear_act(IN(be), out, odt, in, idt, W, b, M, K, N, act));
    return done;
}
static int p_linear_add(backend *be, void *s, const void *in, int idt, const float *W, const float *b, int M, int K, int N)
{
    int done = 0;
    TIMED(be, P_LINEAR_ADD, done = IN(be)->linear_add(IN(be), s, in, idt, W, b, M, K, N));
    return done;
}
static void p_layernorm(backend *be, float *out, void *ob, const void *in, int idt, const void *res, int rdt, const float *w,
                        const float *b, int M, int C, float eps)
{ TIMED(be, P_LAYERNORM, IN(be)->layernorm(IN(be), out, ob, in, idt, res, rdt, w, b, M, C, eps)); }
static void p_add_norm(backend *be, float *x, float *xn, void *xb, const void *res, int rdt, const float *w,
                       const float *b, int M, int C, float eps, int rms, float *norms)
{ TIMED(be, P_ADDNORM, IN(be)->add_norm(IN(be), x, xn, xb, res, rdt, w, b, M, C, eps, rms, norms)); }
static void p_add_norm_stream(backend *be, void *s, const float *x0, void *xb, float *xn, const void *res, const float *w,
                              const float *b, int M, int C, float eps, int rms, float *norms)
{ TIMED(be, P_ADDNORM, IN(be)->add_norm_stream(IN(be), s, x0, xb, xn, res, w, b, M, C, eps, rms, norms)); }
static void p_rope(backend *be, void *x, int dt, int ld, const int32_t *pos, const float *inv_freq, int T, int nh, int HS)
{ TIMED(be, P_ROPE, IN(be)->rope(IN(be), x, dt, ld, pos, inv_freq, T, nh, HS)); }
static void p_gated(backend *be, void *out, const void *in, int dt, int M, int F, int act)
{ TIMED(be, P_GATED, IN(be)->gated_act(IN(be), out, in, dt, M, F, act)); }
static void p_act(backend *be, void *x, int dt, size_t n, int act) { TIMED(be, P_ACT, IN(be)->activation(IN(be), x, dt, n, act)); }
static void p_attention(backend *be, float *out, float *probs, const float *q, const float *k, const float *v, int ld,
                        const float *keymask, int B, int T, int NH, int NKV, int HS, int causal, int sw)
{ TIMED(be, P_ATTENTION, IN(be)->attention(IN(be), out, probs, q, k, v, ld, keymask, B, T, NH, NKV, HS, causal, sw)); }
static void p_attention_stats(backend *be, void *out, const void *q, const void *k, const void *v, int dt, int ld,
                              const int32_t *len, const uint8_t *tokcls, int B, int T, int NH, int NKV, int HS,
                              int causal, int sw, int window, float *stats, const attn_tokens *tok)
{ TIMED(be, P_FUSED, IN(be)->attention_stats(IN(be), out, q, k, v, dt, ld, len, tokcls, B, T, NH, NKV, HS, causal, sw,
                                             window, stats, tok)); }
static void *p_linear_weight(backend *be, const float *host, int N, int K) { return IN(be)->linear_weight(IN(be), host, N, K); }
static void *p_token_table(backend *be, const float *host, int rows, int C) { return IN(be)->token_table(IN(be), host, rows, C); }
static int p_fused_ok(backend *be, int HS) { return IN(be)->fused_ok && IN(be)->fused_ok(IN(be), HS); }
static int p_vision_fused_ok(backend *be, int T, int NH, int HS)
{
    return IN(be)->vision_fused_ok && IN(be)->vision_fused_ok(IN(be), T, NH, HS);
}
static void p_stats(backend *be, const float *probs, const int *len, const uint8_t *sep, const uint8_t *punct, int B,
                    int NH, int T, const stats_params *sp, float *out, float *ki, int32_t *ti, float *tw)
{ TIMED(be, P_STATS, IN(be)->attn_stats(IN(be), probs, len, sep, punct, B, NH, T, sp, out, ki, ti, tw)); }
static void p_pack(backend *be, void *dst, const float *probs, const int *len, int B, int NH, int T, int Lmax, int f16)
{ TIMED(be, P_PACK, IN(be)->attn_pack(IN(be), dst, probs, len, B, NH, T, Lmax, f16)); }
static void *p_host_alloc(backend *be, size_t bytes) { return IN(be)->host_alloc(IN(be), bytes); }
static void p_host_free(backend *be, void *p) { IN(be)->host_free(IN(be), p); }
static size_t p_mem_free(backend *be) { return IN(be)->mem_free(IN(be)); }
static void p_copy_rows(backend *be, void *d, size_t dp, const void *s, size_t sp, size_t w, size_t h)
{ TIMED(be, P_SIM, IN(be)->copy_rows(IN(be), d, dp, s, sp, w, h)); }
static void p_head_sim(backend *be, const float *maps, const int *len, int B, int nh, int T, double *js, double *g)
{ TIMED(be, P_SIM, IN(be)->head_sim(IN(be), maps, len, B, nh, T, js, g)); }
static void p_vision_stats(backend *be, const float *probs, int B, int NH, int T, const vgrid *g, float *dist, float *loc,
                           float *cls)
{ TIMED(be, P_VIS, IN(be)->vision_stats(IN(be), probs, B, NH, T, g, dist, loc, cls)); }
static void p_rollout_step(backend *be, float *Rout, const float *Rin, const float *probs, int B, int NH, int T, int fusion,
                           double discard, int ready)
{ TIMED(be, P_ROLL, IN(be)->rollout_step(IN(be), Rout, Rin, probs, B, NH, T, fusion, discard, ready)); }
static void p_row_norms(backend *be, float *out, const float *x, size_t M, int C)
{ TIMED(be, P_NORMS, IN(be)->row_norms(IN(be), out, x, M, C)); }
static void p_patch_rows(backend *be, float *rows, const void *px, const float *lut, int B, int ch, int H, int W, int P)
{ TIMED(be, P_PATCH, IN(be)->patch_rows(IN(be), rows, px, lut, B, ch, H, W, P)); }
static void p_conv_rows(backend *be, float *rows, const float *x, int B, int H, int W, int C, int k, int stride, int pad)
{ TIMED(be, P_CONV, IN(be)->conv_rows(IN(be), rows, x, B, H, W, C, k, stride, pad)); }
static void p_maxpool(backend *be, float *y, const float *x, int B, int H, int W, int C)
{ TIMED(be, P_POOL, IN(be)->maxpool(IN(be), y, x, B, H, W, C)); }
static void p_add_relu(backend *be, float *y, const float *a, size_t n) { TIMED(be, P_ADDRELU, IN(be)->add_relu(IN(be), y, a, n)); }
static void p_channel_stats(backend *be, const float *x, int B, int hw, int C, float *mean, float *active, float *ent)
{ TIMED(be, P_CHSTATS, IN(be)->channel_stats(IN(be), x, B, hw, C, mean, active, ent)); }
static void p_release(backend *be) { backend_free(IN(be)); free(be->ctx); }

backend *backend_profiled(backend *inner, int timeline)
{
    backend *be = xcalloc(1, sizeof *be);
    prof_ctx *p = xcalloc(1, sizeof *p);
    p->in = inner;
    p->timeline = timeline && inner->mark;
    *be = (backend){.name = inner->name, .ctx = p, .release = p_release, .alloc = p_alloc, .free = p_free,
                    .upload = p_upload, .upload_async = inner->upload_async ? p_upload_async : NULL, .download = p_download, .sync = p_sync, .embed = p_embed, .linear = p_linear,
                    .linear_act = inner->linear_act ? p_linear_act : NULL,
                    .linear_add = inner->linear_add ? p_linear_add : NULL,
                    .linear_weight = inner->linear_weight ? p_linear_weight : NULL,
                    .token_table = inner->token_table ? p_token_table : NULL,
                    .layernorm = p_layernorm, .activation = p_act,
                    .add_norm = inner->add_norm ? p_add_norm : NULL,
                    .add_norm_stream = inner->add_norm_stream ? p_add_norm_stream : NULL, .rope = inner->rope ? p_rope : NULL,
                    .gated_act = inner->gated_act ? p_gated : NULL, .attention = p_attention,
                    .attention_stats = inner->attention_stats ? p_attention_stats : NULL, .fused_ok = p_fused_ok,
                    .vision_fused_ok = p_vision_fused_ok,
                    .attn_stats = p_stats, .attn_pack = p_pack, .host_alloc = p_host_alloc, .host_free = p_host_free,
                    .mem_free = p_mem_free, .copy_rows = p_copy_rows, .head_sim = p_head_sim,
                    .vision_stats = p_vision_stats, .rollout_step = p_rollout_step, .row_norms = p_row_norms,
                    .patch_rows = p_patch_rows, .conv_rows = p_conv_rows, .maxpool = p_maxpool, .add_relu = p_add_relu,
                    .channel_stats = p_channel_stats,
                    .linear_scratch = inner->linear_scratch, .bf16_acts = inner->bf16_acts, .gelu_tanh = inner->gelu_tanh};
    if (p->timeline) {
        be->download_async = inner->download_async ? p_download_async : NULL;
        be->upload_side = inner->upload_side ? p_upload_side : NULL;
        be->fence = inner->fence ? p_fence : NULL;
        be->fence_wait = inner->fence_wait ? p_fence_wait : NULL;
    }
    return be;
}

/* the timeline's table: each op's time on the device (its end mark less its start mark), the idle
 * time before its start (since the mark before), and the gaps by size */
static void timeline_print(prof_ctx *p, double loop_s, FILE *f)
{
    int *tag;
    double *ms;
    long lost;
    const int n = p->in->marks_read(p->in, &tag, &ms, &lost);
    double busy[P_N] = {0}, idle[P_N] = {0}, all_busy = 0, all_idle = 0;
    long big[P_N] = {0};
    static const double edge[] = {0.010, 0.100, 1.0};   /* ms: the gap sizes' classes */
    double gsum[4] = {0};
    long gn[4] = {0};
    for (int i = 1; i < n; i++) {
        const int slot = tag[i] / 2, end = tag[i] & 1;
        const double dt = ms[i] - ms[i - 1];
        if (end && tag[i - 1] == 2 * slot) { busy[slot] += dt; all_busy += dt; continue; }
        if (end) continue;                                 /* (a mark lost in between) */
        idle[slot] += dt;
        all_idle += dt;
        int k = 0;
        while (k < 3 && dt >= edge[k]) k++;
        gsum[k] += dt;
        gn[k]++;
        if (dt >= 0.1) big[slot]++;
    }
    const double span = n ? ms[n - 1] : 0;
    fprintf(f, "[timeline] device: %.3f s from the first mark to the last (loop %.3f s); ops %.3f s (%.1f%%), idle %.3f s (%.1f%%); "
               "%d marks%s\n", span / 1e3, loop_s, all_busy / 1e3, span > 0 ? 100 * all_busy / span : 0.0, all_idle / 1e3,
            span > 0 ? 100 * all_idle / span : 0.0, n, lost ? " (later ones dropped: the table covers the run's start)" : "");
    fprintf(f, "[timeline] idle gaps: < 10 us %ld (%.3f s), 10-100 us %ld (%.3f s), 0.1-1 ms %ld (%.3f s), >= 1 ms %ld (%.3f s)\n",
            gn[0], gsum[0] / 1e3, gn[1], gsum[1] / 1e3, gn[2], gsum[2] / 1e3, gn[3], gsum[3] / 1e3);
    fprintf(f, "[timeline] %-32s %10s %9s %7s %14s %14s\n", "op", "calls", "device s", "share", "idle before s", "gaps >= 0.1 ms");
    for (int i = 0; i < P_N; i++)
        if (p->n[i])
            fprintf(f, "[timeline] %-32s %10ld %9.3f %6.1f%% %14.3f %14ld\n", prof_names[i], p->n[i], busy[i] / 1e3,
                    span > 0 ? 100 * busy[i] / span : 0.0, idle[i] / 1e3, big[i]);
    free(tag);
    free(ms);
}

void backend_profile_begin(backend *be)
{
    if (be->release != p_release) return;
    prof_ctx *p = be->ctx;
    memset(p->t, 0, sizeof p->t);
    memset(p->n, 0, sizeof p->n);
    if (!p->timeline) return;
    int *tag;
    double *ms;
    long lost;
    p->in->marks_read(p->in, &tag, &ms, &lost);
    free(tag);
    free(ms);
}

void backend_profile_print(backend *be, double loop_s, FILE *f)
{
    if (be->release != p_release) return;
    prof_ctx *p = be->ctx;
    if (p->timeline) { timeline_print(p, loop_s, f); return; }
    double sum = 0;
    for (int i = 0; i < P_N; i++) sum += p->t[i];
    fprintf(f, "[profile] %-32s %10s %8s %7s\n", "op", "calls", "seconds", "share");
    for (int i = 0; i < P_N; i++)
        if (p->n[i]) fprintf(f, "[profile] %-32s %10ld %8.3f %6.1f%%\n", prof_names[i], p->n[i], p->t[i], 100 * p->t[i] / loop_s);
    fprintf(f, "[profile] %-32s %10s %8.3f %6.1f%%\n", "host (bookkeeping, copies, I/O)", "", loop_s - sum, 100 * (loop_s - sum) / loop_s);
}
