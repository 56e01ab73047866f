/* model.c — see model.h. One forward pass for every family; weights are named after the
 * Hugging Face module paths of each family. */
#include "model.h"
#include "safetensors.h"
#include "util.h"
#include <stdio.h>
#include <string.h>

/* Checks tensor <prefix><name> against shape (d0[, d1]) and converts it to float32 at host[]. */
static int read_tensor(model *m, const st_model *st, const char *dir, const char *name, int d0, int d1, float *host)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", m->weight_prefix, name);
    const st_tensor *t = st_find(st, full);
    if (!t) {
        /* checkpoints from older BERT code name LayerNorm parameters gamma/beta */
        char alt[256];
        snprintf(alt, sizeof alt, "%s", full);
        char *p = strstr(alt, "LayerNorm.weight");
        if (p) { strcpy(p, "LayerNorm.gamma"); t = st_find(st, alt); }
        p = strstr(alt, "LayerNorm.bias");
        if (!t && p) { strcpy(p, "LayerNorm.beta"); t = st_find(st, alt); }
    }
    if (!t) return err_set("%s: missing tensor \"%s\"", dir, full);
    const char *file = st->paths[t->file];
    int want_nd = d1 ? 2 : 1;
    if (t->ndim != want_nd || t->shape[0] != d0 || (d1 && t->shape[1] != d1)) {
        char got[128] = "", *g = got;
        for (int i = 0; i < t->ndim; i++) g += snprintf(g, got + sizeof got - g, i ? ", %lld" : "%lld", (long long)t->shape[i]);
        if (d1) return err_set("%s: tensor \"%s\" has shape [%s], config.json implies [%d, %d]", file, full, got, d0, d1);
        return err_set("%s: tensor \"%s\" has shape [%s], config.json implies [%d]", file, full, got, d0);
    }
    return st_to_f32(t, host);
}

/* Loads the n tensors names[] of shape (d0[, d1]) each, stacked along d0, to one new backend
 * buffer (n = 1: a single tensor; n = 3: the fused q, k, v projection). */
static float *load_stacked(model *m, const st_model *st, const char *dir, const char *const *names, int n, int d0, int d1)
{
    const size_t each = (size_t)d0 * (d1 ? d1 : 1);
    float *host = xmalloc(n * each * sizeof(float));
    for (int i = 0; i < n; i++)
        if (read_tensor(m, st, dir, names[i], d0, d1, host + i * each)) { free(host); return NULL; }
    float *dev = m->be->alloc(m->be, n * each * sizeof(float));
    if (!dev) { free(host); err_set("%s: out of backend memory loading \"%s%s\"", dir, m->weight_prefix, names[0]); return NULL; }
    m->be->upload(m->be, dev, host, n * each * sizeof(float));
    free(host);
    m->owned = xrealloc(m->owned, (m->n_owned + 1) * sizeof(void *));
    m->owned[m->n_owned++] = dev;
    return dev;
}
static float *load_tensor(model *m, const st_model *st, const char *dir, const char *name, int d0, int d1)
{
    return load_stacked(m, st, dir, &name, 1, d0, d1);
}

int model_load(model *m, const char *dir, backend *be)
{
    memset(m, 0, sizeof *m);
    m->be = be;
    if (config_load(&m->cfg, dir)) return -1;
    st_model st;
    if (st_open_dir(&st, dir)) { config_free(&m->cfg); return -1; }
    const model_config *c = &m->cfg;
    m->n_weight_files = st.nfiles;
    m->weight_files = xcalloc(st.nfiles, sizeof(char *));
    for (int i = 0; i < st.nfiles; i++) m->weight_files[i] = xstrdup(st.paths[i]);
    static const char *prefixes[] = {"", "bert.", "roberta.", "model."};
    int found = 0;
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes && !found; i++) {
        char name[64];
        snprintf(name, sizeof name, "%sembeddings.word_embeddings.weight", prefixes[i]);
        if (st_find(&st, name)) { snprintf(m->weight_prefix, sizeof m->weight_prefix, "%s", prefixes[i]); found = 1; }
    }
    if (!found) {
        err_set("%s: no tensor \"embeddings.word_embeddings.weight\" (with or without a bert./roberta. prefix): not a %s checkpoint",
                dir, c->model_type);
        goto fail;
    }
    const int C = c->d_model, F = c->d_ff;
#define LOAD(dst, name, d0, d1) do { if (!((dst) = load_tensor(m, &st, dir, name, d0, d1))) goto fail; } while (0)
    LOAD(m->wte, "embeddings.word_embeddings.weight", c->vocab, C);
    LOAD(m->wpe, "embeddings.position_embeddings.weight", c->max_pos, C);
    if (c->type_vocab > 0) LOAD(m->wtt, "embeddings.token_type_embeddings.weight", c->type_vocab, C);
    LOAD(m->emb_ln_w, "embeddings.LayerNorm.weight", C, 0);
    LOAD(m->emb_ln_b, "embeddings.LayerNorm.bias", C, 0);
    m->layers = xcalloc(c->n_layer, sizeof *m->layers);
    for (int l = 0; l < c->n_layer; l++) {
        layer_weights *w = &m->layers[l];
        char n[128];
#define LL(dst, suffix, d0, d1) do { snprintf(n, sizeof n, "encoder.layer.%d.%s", l, suffix); LOAD(dst, n, d0, d1); } while (0)
        /* q, k, v as one (3C, C) projection: one GEMM of N = 3C instead of three of N = C */
        char qkv[6][128];
        static const char *const part[] = {"query", "key", "value"};
        for (int i = 0; i < 3; i++) {
            snprintf(qkv[i], sizeof qkv[i], "encoder.layer.%d.attention.self.%s.weight", l, part[i]);
            snprintf(qkv[3 + i], sizeof qkv[3 + i], "encoder.layer.%d.attention.self.%s.bias", l, part[i]);
        }
        const char *wn[] = {qkv[0], qkv[1], qkv[2]}, *bn[] = {qkv[3], qkv[4], qkv[5]};
        if (!(w->wqkv = load_stacked(m, &st, dir, wn, 3, C, C))) goto fail;
        if (!(w->bqkv = load_stacked(m, &st, dir, bn, 3, C, 0))) goto fail;
        LL(w->wo, "attention.output.dense.weight", C, C);
        LL(w->bo, "attention.output.dense.bias", C, 0);
        LL(w->ln1_w, "attention.output.LayerNorm.weight", C, 0);
        LL(w->ln1_b, "attention.output.LayerNorm.bias", C, 0);
        LL(w->w1, "intermediate.dense.weight", F, C);
        LL(w->b1, "intermediate.dense.bias", F, 0);
        LL(w->w2, "output.dense.weight", C, F);
        LL(w->b2, "output.dense.bias", C, 0);
        LL(w->ln2_w, "output.LayerNorm.weight", C, 0);
        LL(w->ln2_b, "output.LayerNorm.bias", C, 0);
#undef LL
    }
#undef LOAD
    st_close(&st);
    return 0;
fail:
    st_close(&st);
    model_free(m);
    return -1;
}

static void free_activations(model *m)
{
    void **bufs[] = {(void **)&m->x, (void **)&m->xb, (void **)&m->qkv, (void **)&m->ctx,
                     (void **)&m->tmp, (void **)&m->ff, (void **)&m->probs, &m->inputs, (void **)&m->fstats};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) {
        if (*bufs[i]) m->be->free(m->be, *bufs[i]);
        *bufs[i] = NULL;
    }
    if (m->stage) m->be->host_free(m->be, m->stage);
    m->stage = NULL;
    m->ids = m->pos = m->types = m->lens = NULL;
    m->keymask = NULL;
    m->tokcls = NULL;
    m->cap_BT = m->cap_BTT = m->cap_B = 0;
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

size_t model_batch_bytes(const model *m, int B, int T, int fused)
{
    const model_config *c = &m->cfg;
    const size_t BT = (size_t)B * T, C = c->d_model, F = c->d_ff;
    /* activations (x qkv ctx tmp, ff, probs, mask ids pos types) + the attention's scratch
     * (q k v y per head, q and k 3x when split: 8 BT C) + the statistics' outputs (~ 8 bytes per
     * key and head) and partial sums (T/32 x T doubles per head) + the linear layers' scratch (for
     * the widest input, ff). Fused: no probabilities, no per-head copies; per head ⌈T/64⌉ rows of
     * partial sums (< STAT_N doubles) and every layer's STAT_N scalars. */
    const size_t BTT = (size_t)B * c->n_head * T * T, heads = (size_t)B * c->n_head;
    const size_t lin = BT * F * (size_t)m->be->linear_scratch;
    if (fused) return 4 * BT * (6 * C + F + 5) + heads * STAT_N * (8 * ((size_t)T / 64 + 1) + 4 * c->n_layer) + lin;
    return 4 * (BT * (14 * C + F + 4) + BTT) + BTT / 4 + heads * T * 40 + lin;
}

/* fused: the probabilities are not stored (cap_BTT stays 0 until a forward needs them) */
static int ensure_activations(model *m, int B, int T, int fused)
{
    const model_config *c = &m->cfg;
    int64_t BT = (int64_t)B * T, BTT = fused ? 0 : (int64_t)B * c->n_head * T * T;
    if (BT <= m->cap_BT && BTT <= m->cap_BTT && B <= m->cap_B) return 0;
    free_activations(m);
    /* test hook: batches needing more than ATTNSCOPE_TEST_MEM_LIMIT bytes fail as if the backend
     * were out of memory, so that the tests exercise the halving without a GPU */
    const char *lim = getenv("ATTNSCOPE_TEST_MEM_LIMIT");
    if (lim && model_batch_bytes(m, B, T, fused) > strtoull(lim, NULL, 10))
        return err_set("out of %s memory for a batch of %d x %d tokens (ATTNSCOPE_TEST_MEM_LIMIT)", m->be->name, B, T);
    backend *be = m->be;
    size_t C = c->d_model, F = c->d_ff;
    if (!(m->x = be->alloc(be, BT * C * sizeof(float)))) goto oom;
    if (be->bf16_acts && !(m->xb = be->alloc(be, BT * C * 2))) goto oom;
    if (!(m->qkv = be->alloc(be, BT * 3 * C * sizeof(float)))) goto oom;
    if (!(m->ctx = be->alloc(be, BT * C * sizeof(float)))) goto oom;
    if (!(m->tmp = be->alloc(be, BT * C * sizeof(float)))) goto oom;
    if (!(m->ff = be->alloc(be, BT * F * sizeof(float)))) goto oom;
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
    return 0;
oom:
    free_activations(m);
    return err_set("out of %s memory for a batch of %d x %d tokens", be->name, B, T);
}

int model_forward(model *m, const int32_t *ids, const int32_t *types, const int *len, int B, int T,
                  attn_request *req, float *hidden)
{
    const model_config *c = &m->cfg;
    backend *be = m->be;
    const int fused = req && req->scalars_only && model_fuses(m);
    if (req) req->fused = 0;
    if (ensure_activations(m, B, T, fused)) return -1;
    const int C = c->d_model, F = c->d_ff, BT = B * T, NH = c->n_head;
    const size_t per_layer = (size_t)B * NH * STAT_N;
    /* the GEMM-side activations (q k v, the attention output, the MLP's hidden layer) in bf16
     * where the backend's GEMMs take bf16 anyway and the fused attention reads them */
    const int dt = fused && be->bf16_acts ? DT_BF16 : DT_F32;
    const size_t es = dt == DT_BF16 ? 2 : 4;
    char *qkv = (char *)m->qkv;

    /* host-side inputs into the staging block (the capacity's layout: the device block's):
     * positions (RoBERTa counts from pad+1 over real tokens), key mask, types, lengths, token
     * classes — then one upload (pinned memory on a GPU) */
    size_t off[6];
    inputs_layout(m->cap_BT, m->cap_B, off);
    char *st = m->stage;
    int32_t *s_ids = (int32_t *)(st + off[0]), *pos = (int32_t *)(st + off[1]), *typ = (int32_t *)(st + off[2]);
    float *mask = (float *)(st + off[3]);
    int32_t *lens = (int32_t *)(st + off[4]);
    uint8_t *cls = (uint8_t *)(st + off[5]);
    memcpy(s_ids, ids, (size_t)BT * sizeof(int32_t));
    for (int b = 0; b < B; b++) {
        lens[b] = len[b];
        for (int t = 0; t < T; t++) {
            int i = b * T + t, real = t < len[b];
            mask[i] = real ? 1.0f : 0.0f;
            pos[i] = c->arch == ARCH_ROBERTA ? (real ? c->pos_offset + t : c->pad_token_id) : t;
            typ[i] = types && c->type_vocab > 0 ? types[i] : 0;
        }
    }
    if (fused && req->tokcls) memcpy(cls, req->tokcls, (size_t)BT);
    be->upload(be, m->inputs, m->stage, m->inputs_bytes);

    be->embed(be, m->x, m->ids, m->pos, m->types, m->wte, m->wpe, m->wtt, BT, C);
    /* bf16 path: every LayerNorm also writes x's bf16 copy, the input of the next GEMM */
    void *xb = dt == DT_BF16 ? m->xb : NULL;
    const void *lin_in = xb ? xb : (const void *)m->x;
    be->layernorm(be, m->x, xb, m->x, NULL, DT_F32, m->emb_ln_w, m->emb_ln_b, BT, C, c->ln_eps);
    for (int l = 0; l < c->n_layer; l++) {
        const layer_weights *w = &m->layers[l];
        be->linear(be, m->qkv, dt, lin_in, dt, w->wqkv, w->bqkv, BT, C, 3 * C);
        if (fused) {
            be->attention_stats(be, m->ctx, qkv, qkv + C * es, qkv + 2 * C * es, dt, 3 * C, m->lens,
                                req->tokcls ? m->tokcls : NULL, B, T, NH, c->head_dim, c->causal, req->window,
                                m->fstats + l * per_layer);
        } else {
            be->attention(be, m->ctx, m->probs, m->qkv, m->qkv + C, m->qkv + 2 * C, 3 * C, m->keymask, B, T, NH,
                          c->head_dim, c->causal);
            if (req && req->capture) req->capture(req->user, l, m->probs, B, T);
        }
        /* the residual branches (attention output, MLP output) in dt too: LayerNorm adds them in fp32 */
        be->linear(be, m->tmp, dt, m->ctx, dt, w->wo, w->bo, BT, C, C);
        be->layernorm(be, m->x, xb, m->x, m->tmp, dt, w->ln1_w, w->ln1_b, BT, C, c->ln_eps);
        be->linear(be, m->ff, dt, lin_in, dt, w->w1, w->b1, BT, C, F);
        be->activation(be, m->ff, dt, (size_t)BT * F, c->act);
        be->linear(be, m->tmp, dt, m->ff, dt, w->w2, w->b2, BT, F, C);
        be->layernorm(be, m->x, xb, m->x, m->tmp, dt, w->ln2_w, w->ln2_b, BT, C, c->ln_eps);
    }
    if (hidden) be->download(be, hidden, m->x, (size_t)BT * C * sizeof(float));
    if (fused) {
        be->download(be, req->stats, m->fstats, c->n_layer * per_layer * sizeof(float));
        req->fused = 1;
    }
    be->sync(be);
    return 0;
}
