/* model.c — see model.h: the forward pass, one for every family (the weights: model_load.c). */
#include "check.h"
#include "model_int.h"
#include "patch.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The rotary frequencies for sequences of T positions, into m->inv_freq. */
void model_upload_inv_freq(model *m, int T)
{
    const int half = m->cfg.head_dim / 2;
    float *h = xmalloc(half * sizeof(float));
    config_rope_inv_freq(&m->cfg, T, h);
    m->be->upload(m->be, m->inv_freq, h, half * sizeof(float));
    free(h);
    m->rope_T = T;
}

static void free_activations(model *m)
{
    if (m->xn == m->x) m->xn = NULL;       /* aliases (post-norm, plain MLP): freed once */
    if (m->ffa == m->ff) m->ffa = NULL;
    void **bufs[] = {(void **)&m->x, (void **)&m->xn, (void **)&m->xb, &m->xs, (void **)&m->qkv, (void **)&m->ctx,
                     (void **)&m->tmp, (void **)&m->ff, (void **)&m->ffa, (void **)&m->probs, &m->inputs, (void **)&m->fstats,
                     &m->ftok};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) {
        if (*bufs[i]) m->be->free(m->be, *bufs[i]);
        *bufs[i] = NULL;
    }
    if (m->stage) m->be->host_free(m->be, m->stage);
    m->stage = NULL;
    float **pbufs[] = {&m->px, &m->prow, &m->ptab, &m->wpe_grid, &m->plut};
    for (size_t i = 0; i < sizeof pbufs / sizeof *pbufs; i++) {
        if (*pbufs[i]) m->be->free(m->be, *pbufs[i]);
        *pbufs[i] = NULL;
    }
    m->pos_grid = NULL;
    m->cap_patches = m->cap_px = 0;
    m->pos_gh = m->pos_gw = 0;
    m->ids = m->pos = m->types = m->lens = NULL;
    m->keymask = NULL;
    m->tokcls = NULL;
    m->cap_BT = m->cap_BTT = m->cap_B = 0;
    m->cap_qes = 0;
    m->cap_ftok = 0;
}

/* The batch's inputs in one block (device: inputs, host: stage), so that one copy uploads them:
 * ids, pos, types (int32) and the key mask (float) per token, lens (int32) per sequence, tokcls
 * (bytes) per token; off[] receives the sections' byte offsets for BT tokens and B sequences. */
static size_t inputs_layout(int64_t BT, int64_t B, size_t off[6])
{
    off[0] = 0;                                    /* ids */
    off[1] = off[0] + BT * 4;                      /* pos */
    off[2] = off[1] + BT * 4;                      /* types */
    off[3] = off[2] + BT * 4;                      /* keymask */
    off[4] = off[3] + BT * 4;                      /* lens */
    off[5] = off[4] + B * 4;                       /* tokcls */
    return off[5] + BT;
}

void model_free(model *m)
{
    if (m->be) {
        free_activations(m);
        for (int i = 0; i < m->n_owned; i++) m->be->free(m->be, m->owned[i]);
    }
    free(m->owned);
    free(m->layers);
    for (int i = 0; i < m->n_weight_files; i++) free(m->weight_files[i]);
    free(m->weight_files);
    config_free(&m->cfg);
    memset(m, 0, sizeof *m);
}

int model_fuses(const model *m)
{
    return m->be->attention_stats && m->be->fused_ok && m->be->fused_ok(m->be, m->cfg.head_dim);
}

int model_fuses_vision(const model *m, int T)
{
    const model_config *c = &m->cfg;
    return c->arch->stem == STEM_PATCHES && model_fuses(m) && m->be->vision_fused_ok &&
           m->be->vision_fused_ok(m->be, T, c->n_head, c->head_dim);
}

/* the floats of a batch's fused vision outputs: every layer's (B, NH, 2 + patches), then the
 * heads' fused map (B, T, T) of the layer at hand */
static size_t vis_floats(const model *m, int B, int T)
{
    const model_config *c = &m->cfg;
    return (size_t)c->n_layer * B * c->n_head * (2 + (size_t)(T - c->n_prefix)) + (size_t)B * T * T;
}

/* the attention width A = NH·HS, the key/value width KV = NKV·HS, the up projection's width Fg
 * and the activation's extra output */
static void widths(const model_config *c, size_t *A, size_t *KV, size_t *Fg, size_t *Fa)
{
    *A = (size_t)c->n_head * c->head_dim;
    *KV = (size_t)c->n_kv_head * c->head_dim;
    *Fg = (size_t)c->d_ff * (c->arch->mlp == MLP_GATED ? 2 : 1);
    *Fa = c->arch->mlp == MLP_GATED ? (size_t)c->d_ff : 0;
}

/* whether a pre-norm model keeps its residual stream in bf16 (m->xs, residual_step): under bf16
 * activations on a backend with add_norm_stream, as transformers' bf16 model keeps its hidden
 * states (ATTNSCOPE_F32_STREAM=1: float32, for accuracy comparisons) */
static int bf16_stream(const model *m)
{
    return m->be->bf16_acts && m->be->add_norm_stream && m->cfg.arch->pre_norm && !util_env_on("ATTNSCOPE_F32_STREAM");
}

size_t model_batch_bytes(const model *m, int B, int T, int fused, int tok_bytes)
{
    const model_config *c = &m->cfg;
    size_t A, KV, Fg, Fa;
    widths(c, &A, &KV, &Fg, &Fa);
    /* W: the widest of C and A (every C-sized buffer counted as W); F: the MLP's buffers */
    const size_t BT = (size_t)B * T, C = (size_t)c->d_model > A ? (size_t)c->d_model : A, F = Fg + Fa;
    const size_t xn = c->arch->pre_norm ? 4 * BT * c->d_model : 0;
    /* activations (x ctx tmp: 3W, qkv: A + 2KV, ff, probs, mask ids pos types) + the attention's
     * scratch (per head: q and y of A, k and v of KV, q and k 3x when split: 4A + 4KV) + the
     * statistics' outputs (~ 8 bytes per key and head) and partial sums (T/32 x T doubles per
     * head) + the linear layers' scratch (for the widest input, ff). Fused: no probabilities, no
     * per-head copies; per head ⌈T/64⌉ rows of partial sums (< STAT_N doubles) and every layer's
     * STAT_N scalars. */
    const size_t BTT = (size_t)B * c->n_head * T * T, heads = (size_t)B * c->n_head, qkv = A + 2 * KV;
    const size_t lin = BT * F * (size_t)m->be->linear_scratch;
    /* (fused: the top-k and key importance of every layer stay on the device until the batch ends,
     * the rows' normalisers take 4 bytes per row and head) */
    /* (under bf16 activations the residual branches and the MLP's buffers hold bf16, and on the
     * fused path q k v and the attention output too) */
    const size_t ge = m->be->bf16_acts ? 2 : 4, xs = bf16_stream(m) ? 2 * BT * C : 0;
    /* (a patch model's fused vision outputs and the fused map, and the rollout's two products) */
    const size_t vis = c->arch->stem == STEM_PATCHES ? 4 * vis_floats(m, B, T) + 8 * (size_t)B * T * T : 0;
    if (fused)
        return xn + 4 * BT * (C + 5) + ge * BT * (2 * C + qkv + F) + heads * STAT_N * (8 * ((size_t)T / 64 + 1) + 4 * c->n_layer) + lin +
               heads * T * (4 + (size_t)c->n_layer * tok_bytes) + vis + xs;
    return xn + 4 * (BT * (3 * C + qkv + 4 * A + 4 * KV + F + 4) + BTT) + BTT / 4 + heads * T * 40 + lin + xs;
}

/* fused: the probabilities are not stored (cap_BTT stays 0 until a forward needs them) */
static int ensure_activations(model *m, int B, int T, int fused)
{
    const model_config *c = &m->cfg;
    int64_t BT = (int64_t)B * T, BTT = fused ? 0 : (int64_t)B * c->n_head * T * T;
    /* element sizes: what only feeds a GEMM is bf16 under bf16 activations (forward_blocks' gdt),
     * q k v and the attention output only on the fused path (its dt) */
    const size_t ge = m->be->bf16_acts ? 2 : 4, qe = fused ? ge : 4;
    if (BT <= m->cap_BT && BTT <= m->cap_BTT && B <= m->cap_B && (int)qe <= m->cap_qes) return 0;
    m->be->sync(m->be);                  /* a deferred forward's copies may still read these buffers */
    m->inputs_fenced = 0;
    free_activations(m);
    /* test hook: batches needing more than ATTNSCOPE_TEST_MEM_LIMIT bytes fail as if the backend
     * were out of memory, so that the tests exercise the halving without a GPU */
    const char *lim = getenv("ATTNSCOPE_TEST_MEM_LIMIT");
    if (lim && model_batch_bytes(m, B, T, fused, 0) > strtoull(lim, NULL, 10))
        return err_set("out of %s memory for a batch of %d x %d tokens (ATTNSCOPE_TEST_MEM_LIMIT)", m->be->name, B, T);
    backend *be = m->be;
    size_t C = c->d_model, A, KV, Fg, Fa;
    widths(c, &A, &KV, &Fg, &Fa);
    if (!(m->x = be->alloc(be, BT * C * sizeof(float)))) goto oom;
    m->xn = m->x;
    if (c->arch->pre_norm && !(m->xn = be->alloc(be, BT * C * sizeof(float)))) goto oom;
    if (be->bf16_acts && !(m->xb = be->alloc(be, BT * C * 2))) goto oom;
    if (bf16_stream(m) && !(m->xs = be->alloc(be, BT * C * 2))) goto oom;
    if (!(m->qkv = be->alloc(be, BT * (A + 2 * KV) * qe))) goto oom;
    if (!(m->ctx = be->alloc(be, BT * A * qe))) goto oom;
    if (!(m->tmp = be->alloc(be, BT * C * ge))) goto oom;
    if (!(m->ff = be->alloc(be, BT * Fg * ge))) goto oom;
    m->ffa = m->ff;
    if (Fa && !(m->ffa = be->alloc(be, BT * Fa * ge))) goto oom;
    if (BTT && !(m->probs = be->alloc(be, BTT * sizeof(float)))) goto oom;
    size_t off[6];
    m->inputs_bytes = inputs_layout(BT, B, off);
    if (!(m->inputs = be->alloc(be, m->inputs_bytes))) goto oom;
    if (!(m->stage = be->host_alloc(be, m->inputs_bytes))) goto oom;
    char *in = m->inputs;
    m->ids = (int32_t *)(in + off[0]);
    m->pos = (int32_t *)(in + off[1]);
    m->types = (int32_t *)(in + off[2]);
    m->keymask = (float *)(in + off[3]);
    m->lens = (int32_t *)(in + off[4]);
    m->tokcls = (uint8_t *)(in + off[5]);
    if (!(m->fstats = be->alloc(be, (size_t)c->n_layer * B * c->n_head * STAT_N * sizeof(float)))) goto oom;
    m->cap_BT = BT;
    m->cap_BTT = BTT;
    m->cap_B = B;
    m->cap_qes = (int)qe;
    return 0;
oom:
    free_activations(m);
    return err_set("out of %s memory for a batch of %d x %d tokens", be->name, B, T);
}

/* the device block of the fused per-token outputs of every layer (forward_blocks' layout) */
static int ensure_tokens(model *m, const attn_request *req, int B, int T, int fused)
{
    if (!fused) return 0;
    const size_t per = (req->topk_idx ? 8 * (size_t)req->topk : 0) + (req->key_imp ? 4 : 0);
    const size_t bytes = (size_t)m->cfg.n_layer * B * m->cfg.n_head * T * per + (req->vis_grid ? 4 * vis_floats(m, B, T) : 0);
    if (bytes <= m->cap_ftok) return 0;
    backend *be = m->be;
    be->sync(be);                        /* (a deferred forward's downloads read the old block) */
    if (m->ftok) be->free(be, m->ftok);
    m->cap_ftok = 0;
    if (!(m->ftok = be->alloc(be, bytes)))
        return err_set("out of %s memory for the per-token outputs of a batch of %d x %d tokens", be->name, B, T);
    m->cap_ftok = bytes;
    return 0;
}

/* One residual step of the chain (model.h): x += res (res of type res_dt), then xn = norm(x)
 * (xn == x: post-norm), and xb = bf16(xn) when xb is not NULL (the bf16 path's next GEMM input). A
 * post-norm LayerNorm takes the backend's layernorm, which every backend has; every other step
 * add_norm. keep_xn = 0: a pre-norm model's float32 xn is not wanted (with xb, the next GEMM reads
 * the copy; only the last step's xn is the hidden state a caller may download).
 * A post-norm model under bf16 activations keeps its stream in xb, as transformers' bf16 model
 * keeps its hidden states in bf16: each norm reads xb (from_x: the embeddings' float32 x, the first
 * step) and the bf16 residual, adds and normalises in float/double, and writes xb again; the
 * float32 x only where keep_xn asks for it. That is 6 bytes an element instead of 12.
 * A pre-norm model under bf16 activations keeps its stream in bf16 too (m->xs, bf16_stream): the
 * first step (no residual) rounds the embeddings' x into it, each later one adds the bf16 branch
 * in float and rounds once (torch's bf16 add), and the norm reads the rounded values: 8 bytes an
 * element instead of 12.
 * res == m->xs: the branch is in the bf16 stream already (branch_step's linear_add): the norm only.
 * norms (BT), or NULL: the rows' L2 norms of x after the step (add_norm makes them as it adds). */
static void residual_step(model *m, const void *res, int res_dt, const norm_weights *n, void *xb, int BT, int keep_xn,
                          int from_x, float *norms)
{
    const model_config *c = &m->cfg;
    backend *be = m->be;
    float *xn = m->xn != m->x && xb && n->w && !keep_xn ? NULL : m->xn;
    if (m->xn == m->x && c->arch->norm == NORM_LAYER && n->w) {
        if (xb && !from_x)
            be->layernorm(be, keep_xn ? m->x : NULL, xb, xb, DT_BF16, res, res_dt, n->w, n->b, BT, c->d_model, c->ln_eps);
        else
            be->layernorm(be, m->x, xb, m->x, DT_F32, res, res_dt, n->w, n->b, BT, c->d_model, c->ln_eps);
        if (norms) be->row_norms(be, norms, m->x, (size_t)BT, c->d_model);
    } else if (m->xs && xb) {
        /* a pre-norm model's bf16 stream: it starts from the embeddings' x at the first step (the
         * one without a residual), every later step adds a bf16 branch */
        if (res && res_dt != DT_BF16) check_fail(__FILE__, __LINE__, "residual_step", "the bf16 stream takes bf16 branches");
        be->add_norm_stream(be, m->xs, res ? NULL : m->x, xb, xn, res == m->xs ? NULL : res, n->w, n->b, BT, c->d_model,
                            c->ln_eps, c->arch->norm == NORM_RMS, norms);
    } else
        be->add_norm(be, m->x, xn, xb, res, res_dt, n->w, n->b, BT, c->d_model, c->ln_eps, c->arch->norm == NORM_RMS,
                     norms);
}

/* A residual branch, in (BT, K) · W (C, K)ᵀ + b, and its residual step: on a bf16 stream the GEMM
 * adds it into the stream itself where the backend can (linear_add: the stream read once by the
 * GEMM's epilogue, not written by it and read again by the norm), else it goes to m->tmp (gdt) and
 * the norm adds it. */
static void branch_step(model *m, const void *in, int idt, const float *W, const float *b, int K, const norm_weights *n,
                        void *xb, int BT, int keep_xn, int from_x, float *norms)
{
    backend *be = m->be;
    const int C = m->cfg.d_model, gdt = be->bf16_acts ? DT_BF16 : DT_F32;
    if (m->xs && xb && be->linear_add && be->linear_add(be, m->xs, in, idt, W, b, BT, K, C)) {
        residual_step(m, m->xs, DT_BF16, n, xb, BT, keep_xn, from_x, norms);
        return;
    }
    be->linear(be, m->tmp, gdt, in, idt, W, b, BT, K, C);
    residual_step(m, m->tmp, gdt, n, xb, BT, keep_xn, from_x, norms);
}

/* The layers, from the embedded input in m->x (and the inputs block uploaded) to the last hidden
 * state; fused as model_forward decided. */
static void forward_blocks(model *m, int B, int T, attn_request *req, float *hidden, int fused)
{
    const model_config *c = &m->cfg;
    const arch_row *a = c->arch;
    backend *be = m->be;
    const int C = c->d_model, F = c->d_ff, BT = B * T, NH = c->n_head, NKV = c->n_kv_head, HS = c->head_dim;
    const int A = NH * HS, KV = NKV * HS, QKV = A + 2 * KV;   /* q | k | v of one projection row */
    const int Fg = a->mlp == MLP_GATED ? 2 * F : F;
    const size_t per_layer = (size_t)B * NH * STAT_N;
    /* the fused per-token outputs of every layer in one device block: top-k indices, weights, key
     * importance (layer l's at l·nk, l·nk, l·nki) */
    const int k = fused && req->topk_idx ? req->topk : 0, want_ki = fused && req->key_imp;
    const size_t nk = (size_t)B * NH * T * k, nki = want_ki ? (size_t)B * NH * T : 0;
    int32_t *d_ti = m->ftok;                 /* (ensure_tokens made room) */
    float *d_tw = (float *)(d_ti + c->n_layer * nk), *d_ki = d_tw + c->n_layer * nk;
    /* then a patch model's vision outputs: layer l's dist | loc | cls at l·nv, and the fused map */
    const vgrid *vg = fused ? req->vis_grid : NULL;
    const size_t nv = vg ? (size_t)B * NH * (2 + (size_t)vg->gh * vg->gw) : 0;
    float *d_vis = d_ki + c->n_layer * nki, *d_map = d_vis + c->n_layer * nv;
    /* Under bf16 GEMMs (bf16_acts), what only feeds a GEMM is bf16: the norms' copies (xb), the
     * residual branches and the MLP's hidden layer (gdt); q k v and the attention output too (dt)
     * where the fused attention reads them — the explicit path's attention op is float32. */
    const int gdt = be->bf16_acts ? DT_BF16 : DT_F32, dt = fused ? gdt : DT_F32;
    const size_t es = dt == DT_BF16 ? 2 : 4;
    char *qkv = (char *)m->qkv;
    /* every norm also writes x's bf16 copy, the input of the next GEMM */
    void *xb = gdt == DT_BF16 ? m->xb : NULL;
    const void *lin_in = xb ? xb : (const void *)m->xn;
    /* a pre-norm model with an embedding norm (CLIP's pre_layrnorm) normalises the stream itself first */
    if (a->pre_norm && m->emb_norm.w)
        be->add_norm(be, m->x, m->x, NULL, NULL, DT_F32, m->emb_norm.w, m->emb_norm.b, BT, C, c->ln_eps, a->norm == NORM_RMS,
                     NULL);
    /* (a post-norm model whose first norm has no weights goes through add_norm, which keeps x:
     * its bf16 stream starts at the first layer's norm, from x) */
    /* (ATTNSCOPE_F32_STREAM=1: the float32 stream as before, for accuracy comparisons; keep_each: a
     * post-norm model whose token norms are wanted keeps the float32 x at every step as well) */
    const int post_ln = !a->pre_norm && a->norm == NORM_LAYER, keep_each = post_ln && req && req->norms;
    const int f32_stream = util_env_on("ATTNSCOPE_F32_STREAM");
    residual_step(m, NULL, DT_F32, &m->first, xb, BT, keep_each, 1, NULL);
    int from_x = !(post_ln && m->first.w) || f32_stream;
    for (int l = 0; l < c->n_layer; l++) {
        const layer_weights *w = &m->layers[l];
        const int sw = config_window(c, l);
        be->linear(be, m->qkv, dt, lin_in, gdt, w->wqkv, w->bqkv, BT, C, QKV);
        /* q and k are the first NH + NKV heads of each q | k | v row */
        if (m->inv_freq) be->rope(be, m->qkv, dt, QKV, m->pos, m->inv_freq, BT, NH + NKV, HS);
        if (fused) {
            float *lv = d_vis + l * nv;
            const attn_vis vis = {vg ? vg->n_prefix : 0, vg ? vg->gh : 0, vg ? vg->gw : 0, vg ? vg->patch : 0,
                                  req->vis_fusion, lv, lv + B * NH, lv + 2 * B * NH, d_map, 0, req->vis_roll};
            const attn_tokens tok = {k, k ? d_ti + l * nk : NULL, k ? d_tw + l * nk : NULL, want_ki ? d_ki + l * nki : NULL,
                                     vg ? &vis : NULL};
            be->attention_stats(be, m->ctx, qkv, qkv + A * es, qkv + (A + KV) * es, dt, QKV, m->lens,
                                req->tokcls ? m->tokcls : NULL, B, T, NH, NKV, HS, c->causal, sw, req->window,
                                m->fstats + l * per_layer, k || want_ki || vg ? &tok : NULL);
            if (vg && req->vis_map) req->vis_map(req->user, l, d_map, B, T);
        } else {
            be->attention(be, m->ctx, m->probs, m->qkv, m->qkv + A, m->qkv + A + KV, QKV, m->keymask, B, T, NH, NKV, HS,
                          c->causal, sw);
            if (req && req->capture) req->capture(req->user, l, m->probs, B, T);
        }
        /* the residual branches (attention output, MLP output): branch_step */
        branch_step(m, m->ctx, dt, w->wo, w->bo, A, &w->after_attn, xb, BT, keep_each, from_x, NULL);
        from_x = f32_stream;
        /* (the activation in the GEMM's epilogue where the backend can: linear_act) */
        if (a->mlp == MLP_GATED) {
            be->linear(be, m->ff, gdt, lin_in, gdt, w->wup, w->bup, BT, C, Fg);
            be->gated_act(be, m->ffa, m->ff, gdt, BT, F, c->act);
        } else if (!be->linear_act || !be->linear_act(be, m->ff, gdt, lin_in, gdt, w->wup, w->bup, BT, C, F, c->act)) {
            be->linear(be, m->ff, gdt, lin_in, gdt, w->wup, w->bup, BT, C, Fg);
            be->activation(be, m->ff, gdt, (size_t)BT * F, c->act);
        }
        branch_step(m, m->ffa, gdt, w->wdown, w->bdown, F, &w->after_mlp, xb, BT, keep_each || l == c->n_layer - 1, f32_stream,
                    req && req->norms ? req->norms + (size_t)l * BT : NULL);
    }
    /* the last hidden state: after the final norm (pre-norm) or the last post-norm; the first
     * download waits for the backend */
    const double t0 = util_now();
    if (hidden) be->download(be, hidden, m->xn, (size_t)BT * C * sizeof(float));
    if (fused) {
        /* deferred: in stream order, into the caller's page-locked sets; the caller's fence marks their end */
        void (*get)(backend *, void *, const void *, size_t) = req->defer ? backend_download_async : be->download;
        get(be, req->stats, m->fstats, c->n_layer * per_layer * sizeof(float));
        if (k) get(be, req->topk_idx, d_ti, c->n_layer * nk * sizeof(int32_t));
        if (k) get(be, req->topk_w, d_tw, c->n_layer * nk * sizeof(float));
        if (want_ki) get(be, req->key_imp, d_ki, c->n_layer * nki * sizeof(float));
        if (vg) get(be, req->vis_out, d_vis, c->n_layer * nv * sizeof(float));
        req->fused = 1;
    }
    if (req && req->defer && !hidden) return;
    be->sync(be);
    m->wait_s += util_now() - t0;
}

void model_inputs_wait(model *m)
{
    if (!m->inputs_fenced) return;
    backend_fence_wait(m->be, MODEL_FENCE_INPUTS);
    m->inputs_fenced = 0;
}

/* The staging block's sections (inputs_layout) for the current capacity. */
typedef struct { int32_t *ids, *pos, *types, *lens; float *mask; uint8_t *cls; } staging;
static staging stage_of(model *m)
{
    size_t off[6];
    inputs_layout(m->cap_BT, m->cap_B, off);
    char *st = m->stage;
    return (staging){(int32_t *)(st + off[0]), (int32_t *)(st + off[1]), (int32_t *)(st + off[2]),
                     (int32_t *)(st + off[4]), (float *)(st + off[3]), (uint8_t *)(st + off[5])};
}

int model_forward(model *m, const int32_t *ids, const int32_t *types, const int *len, int B, int T,
                  attn_request *req, float *hidden)
{
    const model_config *c = &m->cfg;
    const arch_row *a = c->arch;
    backend *be = m->be;
    if (a->stem != STEM_TOKENS) return err_set("model_forward: a %s model takes images (model_forward_pixels)", a->family);
    const int fused = req && req->no_probs && (!req->topk_idx || req->topk <= ATTN_FUSED_TOPK_MAX) && model_fuses(m);
    if (req) req->fused = 0;
    if (ensure_activations(m, B, T, fused) || ensure_tokens(m, req, B, T, fused)) return -1;
    const int BT = B * T;
    model_inputs_wait(m);                /* the previous forward's upload has left the staging block */
    /* host-side inputs into the staging block (the capacity's layout: the device block's):
     * positions (learned+offset: RoBERTa counts from pad+1 over real tokens), key mask, types,
     * lengths, token classes — then one upload (pinned memory on a GPU) */
    const staging s = stage_of(m);
    memcpy(s.ids, ids, (size_t)BT * sizeof(int32_t));
    for (int b = 0; b < B; b++) {
        s.lens[b] = len[b];
        for (int t = 0; t < T; t++) {
            int i = b * T + t, real = t < len[b];
            s.mask[i] = real ? 1.0f : 0.0f;
            s.pos[i] = a->pos == POS_LEARNED_OFFSET ? (real ? c->pos_offset + t : c->pad_token_id) : t;
            s.types[i] = types && c->type_vocab > 0 ? types[i] : 0;
        }
    }
    if (fused && req->tokcls) memcpy(s.cls, req->tokcls, (size_t)BT);
    backend_upload_async(be, m->inputs, m->stage, m->inputs_bytes);
    backend_fence(be, MODEL_FENCE_INPUTS);
    m->inputs_fenced = 1;
    if (m->inv_freq && c->rope_type == ROPE_DYNAMIC && T != m->rope_T) model_upload_inv_freq(m, T);
    be->embed(be, m->x, m->ids, m->pos, m->types, m->wte, m->wpe, m->wtt, BT, c->d_model);
    forward_blocks(m, B, T, req, hidden, fused);
    return 0;
}

/* The patch stem's buffers for B images of gh x gw patches: the patch rows, the token table (the
 * prefix tokens' rows, then every patch's embedding) and the position table for this grid
 * (the model's own, or resampled as interpolate_pos_encoding does). */
static int ensure_patch_buffers(model *m, int B, int H, int W, int gh, int gw)
{
    const model_config *c = &m->cfg;
    backend *be = m->be;
    const size_t C = c->d_model, K = (size_t)c->n_channels * c->patch_size * c->patch_size, N = (size_t)gh * gw;
    const size_t npx = (size_t)B * c->n_channels * H * W;
    if (npx > m->cap_px || (size_t)B * N > m->cap_patches) be->sync(be);   /* (see ensure_activations) */
    if (npx > m->cap_px) {
        if (m->px) be->free(be, m->px);
        m->px = be->alloc(be, npx * sizeof(float));
        m->cap_px = m->px ? npx : 0;
        if (!m->px) return err_set("out of %s memory for the pixels of %d images", be->name, B);
    }
    if ((size_t)B * N > m->cap_patches) {
        if (m->prow) be->free(be, m->prow);
        if (m->ptab) be->free(be, m->ptab);
        m->prow = be->alloc(be, (size_t)B * N * K * sizeof(float));
        m->ptab = be->alloc(be, (c->n_prefix + (size_t)B * N) * C * sizeof(float));
        m->cap_patches = m->prow && m->ptab ? (size_t)B * N : 0;
        if (!m->cap_patches) return err_set("out of %s memory for the patches of %d images", be->name, B);
    }
    const int g0 = c->image_size / c->patch_size;
    if (gh == g0 && gw == g0) { m->pos_grid = m->wpe; return 0; }
    if (m->pos_gh == gh && m->pos_gw == gw && m->wpe_grid) { m->pos_grid = m->wpe_grid; return 0; }
    const size_t rows0 = c->n_prefix + (size_t)g0 * g0, rows = c->n_prefix + N;
    float *t0 = xmalloc(rows0 * C * sizeof(float)), *t = xmalloc(rows * C * sizeof(float));
    be->download(be, t0, m->wpe, rows0 * C * sizeof(float));
    patch_pos_interpolate(t0, c->n_prefix, g0, (int)C, gh, gw, t);
    if (m->wpe_grid) be->free(be, m->wpe_grid);
    m->wpe_grid = be->alloc(be, rows * C * sizeof(float));
    if (m->wpe_grid) be->upload(be, m->wpe_grid, t, rows * C * sizeof(float));
    free(t0);
    free(t);
    if (!m->wpe_grid) return err_set("out of %s memory for the position table of %d x %d patches", be->name, gh, gw);
    m->pos_gh = gh;
    m->pos_gw = gw;
    m->pos_grid = m->wpe_grid;
    return 0;
}

int model_forward_pixels(model *m, const void *px, const float *lut, int B, int H, int W, attn_request *req, float *hidden)
{
    const model_config *c = &m->cfg;
    backend *be = m->be;
    if (c->arch->stem != STEM_PATCHES) return err_set("model_forward_pixels: a %s model takes tokens", c->arch->family);
    const int P = c->patch_size, gh = H / P, gw = W / P, N = gh * gw, T = c->n_prefix + N, C = c->d_model;
    const int K = c->n_channels * P * P;
    if (gh < 1 || gw < 1) return err_set("images of %d x %d pixels are smaller than one patch of %d", H, W, P);
    const int fused = req && req->no_probs && (!req->topk_idx || req->topk <= ATTN_FUSED_TOPK_MAX) && model_fuses(m) &&
                      (!req->vis_grid || model_fuses_vision(m, T));
    if (req) req->fused = 0;
    if (req && req->vis_grid && (req->vis_grid->gh != gh || req->vis_grid->gw != gw || req->vis_grid->n_prefix != c->n_prefix))
        return err_set("model_forward_pixels: the request's patch grid is not the images' %d x %d", gh, gw);
    if (lut && c->n_channels != 3) return err_set("model_forward_pixels: 8-bit pixels are RGB; the model takes %d channels", c->n_channels);
    if (ensure_activations(m, B, T, fused) || ensure_tokens(m, req, B, T, fused) || ensure_patch_buffers(m, B, H, W, gh, gw))
        return -1;
    /* token t of image b reads row t of the table for a prefix token, its own patch's row after */
    model_inputs_wait(m);
    if (lut && (!m->plut || memcmp(m->plut_host, lut, sizeof m->plut_host))) {   /* once a run: a new table */
        if (!m->plut && !(m->plut = be->alloc(be, sizeof m->plut_host))) return err_set("out of %s memory", be->name);
        be->sync(be);                    /* (a forward in flight may still read the old one) */
        memcpy(m->plut_host, lut, sizeof m->plut_host);
        be->upload(be, m->plut, m->plut_host, sizeof m->plut_host);
    }
    const staging s = stage_of(m);
    for (int b = 0; b < B; b++) {
        s.lens[b] = T;
        for (int t = 0; t < T; t++) {
            const int i = b * T + t;
            s.ids[i] = t < c->n_prefix ? t : c->n_prefix + b * N + (t - c->n_prefix);
            s.pos[i] = t;
            s.types[i] = 0;
            s.mask[i] = 1.0f;
        }
    }
    if (fused) memset(s.cls, 0, (size_t)B * T);
    /* the inputs and the pixels cross the bus as they are, without waiting (px and the staging
     * block stay unchanged until the fence has passed: model_inputs_wait); the pixels on a copy
     * engine of their own where the backend has one, as soon as the previous forward has read
     * its own (while that forward computes); the backend cuts them into the patch rows */
    backend_upload_async(be, m->inputs, m->stage, m->inputs_bytes);
    const size_t px_bytes = (size_t)B * c->n_channels * H * W * (lut ? 1 : sizeof(float));
    if (be->upload_side) be->upload_side(be, m->px, px, px_bytes, MODEL_FENCE_PX);
    else backend_upload_async(be, m->px, px, px_bytes);
    backend_fence(be, MODEL_FENCE_INPUTS);
    m->inputs_fenced = 1;
    be->patch_rows(be, m->prow, m->px, lut ? m->plut : NULL, B, c->n_channels, H, W, P);
    backend_fence(be, MODEL_FENCE_PX);
    /* the patch convolution as one GEMM into the table's patch rows; the prefix rows copied in */
    be->linear(be, m->ptab + (size_t)c->n_prefix * C, DT_F32, m->prow, DT_F32, m->wpatch, m->bpatch, B * N, K, C);
    be->copy_rows(be, m->ptab, C * sizeof(float), m->wcls, C * sizeof(float), C * sizeof(float), 1);
    if (m->wdist) be->copy_rows(be, m->ptab + C, C * sizeof(float), m->wdist, C * sizeof(float), C * sizeof(float), 1);
    be->embed(be, m->x, m->ids, m->pos, NULL, m->ptab, m->pos_grid, NULL, B * T, C);
    forward_blocks(m, B, T, req, hidden, fused);
    return 0;
}
