/* model.c — see model.h. One forward pass for every family; weights are loaded by role under the
 * Hugging Face module names of the family's row (arch.c), or llama.cpp's names (gguf_names) from a
 * GGUF file, where they are dequantized to float32 and the Q/K rows the converter permuted are put
 * back in Hugging Face's order. */
#include "model.h"
#include "safetensors.h"
#include "util.h"
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* Where the weights come from: a checkpoint directory's safetensors files or one GGUF file. */
typedef struct {
    const char *path;          /* the directory or the GGUF file (messages) */
    const st_model *st;        /* safetensors, or NULL */
    const gguf_file *gg;       /* GGUF, or NULL */
} wsrc;

/* The row's names for the weights of this source. */
static const char *const *row_names(const model *m)
{
    return m->gguf ? m->cfg.arch->gguf_names : m->cfg.arch->names;
}

/* The name of role (arch.h) for layer l with suffix (".weight", ".bias") and the model's prefix. */
static void role_name(const model *m, weight_role role, int l, const char *suffix, char *out, size_t cap)
{
    char base[192];
    snprintf(base, sizeof base, row_names(m)[role], l);
    snprintf(out, cap, "%s%s%s", m->weight_prefix, base, suffix);
}

/* The shape a tensor has, for messages: "[a, b]" in row-major (PyTorch) order. */
static void shape_str(const int64_t *shape, int nd, int reverse, char *out, size_t cap)
{
    char *g = out;
    *g = 0;
    for (int i = 0; i < nd; i++)
        g += snprintf(g, out + cap - g, i ? ", %lld" : "%lld", (long long)shape[reverse ? nd - 1 - i : i]);
}

/* Reads the tensor full into host as float32 of shape (d0[, d1]) (d1 = 0: a vector), transposed
 * from the file's (d1, d0) when tr. Returns 1, 0 when absent and not required, -1 with err_set(). */
static int read_tensor(const wsrc *s, const char *full, int d0, int d1, int tr, int required, float *host)
{
    const int f0 = tr ? d1 : d0, f1 = tr ? d0 : d1, want_nd = d1 ? 2 : 1;
    const char *implied = s->gg ? "the GGUF metadata implies" : "config.json implies";
    char want[64], got[128];
    if (d1) snprintf(want, sizeof want, "[%d, %d]", f0, f1);
    else snprintf(want, sizeof want, "[%d]", d0);
    if (s->gg) {
        /* ggml's ne is (in, out): a PyTorch (out, in) weight, read row-major as such */
        const gguf_tensor *t = gguf_find_tensor(s->gg, full);
        if (!t) return required ? err_set("%s: missing tensor \"%s\"", s->path, full) : 0;
        if (t->n_dims != want_nd || t->ne[want_nd - 1] != f0 || (d1 && t->ne[0] != f1)) {
            shape_str(t->ne, t->n_dims, 1, got, sizeof got);
            return err_set("%s: tensor \"%s\" has shape [%s], %s %s", s->path, full, got, implied, want);
        }
        return gguf_tensor_f32(s->gg, full, host, (size_t)d0 * (d1 ? d1 : 1)) ? -1 : 1;
    }
    const st_model *st = s->st;
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
    if (!t) return required ? err_set("%s: missing tensor \"%s\"", s->path, full) : 0;
    const char *file = st->paths[t->file];
    if (t->ndim != want_nd || t->shape[0] != f0 || (d1 && t->shape[1] != f1)) {
        int64_t sh[8];
        for (int i = 0; i < t->ndim && i < 8; i++) sh[i] = t->shape[i];
        shape_str(sh, t->ndim < 8 ? t->ndim : 8, 0, got, sizeof got);
        return err_set("%s: tensor \"%s\" has shape [%s], %s %s", file, full, got, implied, want);
    }
    if (!tr) return st_to_f32(t, host) ? -1 : 1;
    float *tmp = xmalloc((size_t)d0 * d1 * sizeof(float));
    if (st_to_f32(t, tmp)) { free(tmp); return -1; }
    for (int i = 0; i < d0; i++)
        for (int j = 0; j < d1; j++) host[(size_t)i * d1 + j] = tmp[(size_t)j * d0 + i];
    free(tmp);
    return 1;
}

/* Reads role's tensor (suffix ".weight" or ".bias") for layer l into host as float32 of shape
 * (d0[, d1]) — transposed from the file's (d1, d0) where the row stores linear weights (in, out)
 * in safetensors; Q and K rows unpermuted where the row's GGUF converter permuted them.
 * Returns 1, 0 when absent and not required, -1 with err_set(). */
static int read_role(model *m, const wsrc *s, weight_role role, int l, const char *suffix, int d0, int d1,
                     int required, float *host)
{
    char full[256];
    role_name(m, role, l, suffix, full, sizeof full);
    const int r = read_tensor(s, full, d0, d1, d1 && m->cfg.arch->transposed && !m->gguf, required, host);
    if (r == 1 && m->gguf && m->cfg.arch->gguf_permute_qk && (role == ROLE_Q || role == ROLE_K) &&
        gguf_unpermute_qk(host, role == ROLE_Q ? m->cfg.n_head : m->cfg.n_kv_head, d0, d1 ? d1 : 1))
        return -1;
    return r;
}

/* host[0..n) to a new backend buffer that the model owns; frees host. NULL with err_set(). */
static float *upload_owned(model *m, const char *dir, float *host, size_t n, weight_role role, int l)
{
    float *dev = m->be->alloc(m->be, n * sizeof(float));
    if (dev) m->be->upload(m->be, dev, host, n * sizeof(float));
    free(host);
    if (!dev) {
        char name[256];
        role_name(m, role, l, "", name, sizeof name);
        err_set("%s: out of %s memory loading \"%s\"", dir, m->be->name, name);
        return NULL;
    }
    m->owned = xrealloc(m->owned, (m->n_owned + 1) * sizeof(void *));
    m->owned[m->n_owned++] = dev;
    return dev;
}

/* Weight (and optional bias) of n parts stacked along the rows: roles[i] of (rows[i], K) each. A
 * bias is taken when the first part has one; then every part must. *w and *b (NULL: no bias) are
 * set. Returns 0, or -1 with err_set(). */
static int load_linear(model *m, const wsrc *s, const weight_role *roles, const int *rows, int n, int l, int K,
                       float **w, float **b)
{
    int total = 0;
    for (int i = 0; i < n; i++) total += rows[i];
    float *hw = xmalloc((size_t)total * K * sizeof(float)), *hb = xmalloc((size_t)total * sizeof(float));
    int has_bias = 0, at = 0;
    for (int i = 0; i < n; i++) {
        if (read_role(m, s, roles[i], l, ".weight", rows[i], K, 1, hw + (size_t)at * K) < 0) goto fail;
        int r = read_role(m, s, roles[i], l, ".bias", rows[i], 0, i > 0 && has_bias, hb + at);
        if (r < 0) goto fail;
        if (i == 0) has_bias = r;
        at += rows[i];
    }
    if (!(*w = upload_owned(m, s->path, hw, (size_t)total * K, roles[0], l))) { free(hb); return -1; }
    if (!has_bias) { free(hb); *b = NULL; return 0; }
    return (*b = upload_owned(m, s->path, hb, total, roles[0], l)) ? 0 : -1;
fail:
    free(hw); free(hb);
    return -1;
}

/* A norm of role for layer l: weight (C), optional bias (C); a role the row does not name leaves
 * *n empty (no norm). */
static int load_norm(model *m, const wsrc *s, weight_role role, int l, norm_weights *n)
{
    const int C = m->cfg.d_model;
    n->w = n->b = NULL;
    if (!row_names(m)[role]) return 0;
    float *h = xmalloc(C * sizeof(float));
    if (read_role(m, s, role, l, ".weight", C, 0, 1, h) < 0) { free(h); return -1; }
    if (!(n->w = upload_owned(m, s->path, h, C, role, l))) return -1;
    h = xmalloc(C * sizeof(float));
    const int r = read_role(m, s, role, l, ".bias", C, 0, 0, h);
    if (r <= 0) { free(h); return r; }
    return (n->b = upload_owned(m, s->path, h, C, role, l)) ? 0 : -1;
}

/* An embedding table of role (rows, C), or NULL when the row does not name it. */
static int load_table(model *m, const wsrc *s, weight_role role, int rows, float **out)
{
    *out = NULL;
    if (!row_names(m)[role] || rows <= 0) return 0;
    const int C = m->cfg.d_model;
    float *h = xmalloc((size_t)rows * C * sizeof(float));
    /* tables are (rows, C) in every family, Conv1D or not: never transposed */
    char full[256];
    role_name(m, role, 0, ".weight", full, sizeof full);
    if (read_tensor(s, full, rows, C, 0, 1, h) < 0) { free(h); return -1; }
    return (*out = upload_owned(m, s->path, h, (size_t)rows * C, role, 0)) ? 0 : -1;
}

/* The op of backend be that model c needs and be lacks, or NULL. */
static const char *missing_op(const backend *be, const model_config *c)
{
    const arch_row *a = c->arch;
    if ((a->pre_norm || a->norm == NORM_RMS) && !be->add_norm) return "add_norm";
    if (a->pos == POS_ROPE && !be->rope) return "rope";
    if (a->mlp == MLP_GATED && !be->gated_act) return "gated_act";
    /* silu came with the gated MLP's ops: a backend without them has no silu activation either */
    if (c->act == ACT_SILU && !be->gated_act) return "silu activation";
    return NULL;
}

/* The rotary frequencies for sequences of T positions, into m->inv_freq. */
static void upload_inv_freq(model *m, int T)
{
    const int half = m->cfg.head_dim / 2;
    float *h = xmalloc(half * sizeof(float));
    config_rope_inv_freq(&m->cfg, T, h);
    m->be->upload(m->be, m->inv_freq, h, half * sizeof(float));
    free(h);
    m->rope_T = T;
}

/* Whether path is a file (a GGUF model) rather than a checkpoint directory. */
static int is_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

int model_load(model *m, const char *dir, backend *be)
{
    memset(m, 0, sizeof *m);
    m->be = be;
    st_model st;
    gguf_file gg;
    memset(&st, 0, sizeof st);
    memset(&gg, 0, sizeof gg);
    gg.fd = -1;
    wsrc src = {.path = dir};
    m->gguf = is_file(dir);
    if (m->gguf) {
        if (gguf_open(&gg, dir)) return -1;
        if (config_load_gguf(&m->cfg, &gg)) { gguf_close(&gg); return -1; }
        src.gg = &gg;
    } else if (config_load(&m->cfg, dir)) {
        return -1;
    }
    const model_config *c = &m->cfg;
    const arch_row *a = c->arch;
    if (a->stem == STEM_PATCHES) {        /* the config reads; the forward's patch stem is not written yet */
        err_set("%s: %s models (images) are not supported yet", dir, a->family);
        gguf_close(&gg);
        config_free(&m->cfg);
        return -1;
    }
    const char *lack = missing_op(be, c);
    if (lack) {
        err_set("%s: the %s backend does not run %s models yet (it has no %s op); use --backend cpu", dir, be->name,
                a->family, lack);
        gguf_close(&gg);
        config_free(&m->cfg);
        return -1;
    }
    if (m->gguf) {
        m->n_weight_files = 1;
        m->weight_files = xcalloc(1, sizeof(char *));
        m->weight_files[0] = xstrdup(dir);
    } else {
        if (st_open_dir(&st, dir)) { config_free(&m->cfg); return -1; }
        src.st = &st;
        m->n_weight_files = st.nfiles;
        m->weight_files = xcalloc(st.nfiles, sizeof(char *));
        for (int i = 0; i < st.nfiles; i++) m->weight_files[i] = xstrdup(st.paths[i]);
        int found = 0;
        for (const char *p = a->prefixes; !found;) {
            const char *e = strchr(p, '|');
            const int k = e ? (int)(e - p) : (int)strlen(p);
            char name[256];
            snprintf(name, sizeof name, "%.*s%s.weight", k, p, a->names[ROLE_TOK_EMB]);
            if (st_find(&st, name)) { snprintf(m->weight_prefix, sizeof m->weight_prefix, "%.*s", k, p); found = 1; }
            if (!e) break;
            p = e + 1;
        }
        if (!found) {
            err_set("%s: no tensor \"%s.weight\" (with any of the prefixes \"%s\"): not a %s checkpoint", dir,
                    a->names[ROLE_TOK_EMB], a->prefixes, a->family);
            goto fail;
        }
    }
    const int C = c->d_model, F = c->d_ff, NH = c->n_head, HS = c->head_dim, A = NH * HS;
    const int KV = c->n_kv_head * HS, G = NH / c->n_kv_head;
    const char *const *names = row_names(m);
    if (names[ROLE_QKV] && G != 1) { err_set("%s: a fused q|k|v projection with %d kv heads is not supported", dir, c->n_kv_head); goto fail; }
    if (load_table(m, &src, ROLE_TOK_EMB, c->vocab, &m->wte) ||
        load_table(m, &src, ROLE_POS_EMB, c->max_pos, &m->wpe) ||
        load_table(m, &src, ROLE_TYPE_EMB, c->type_vocab, &m->wtt) ||
        load_norm(m, &src, ROLE_EMB_NORM, 0, &m->emb_norm) ||
        load_norm(m, &src, ROLE_FINAL_NORM, 0, &m->final_norm))
        goto fail;
    m->layers = xcalloc(c->n_layer, sizeof *m->layers);
    for (int l = 0; l < c->n_layer; l++) {
        layer_weights *w = &m->layers[l];
        /* q, k, v as one (A + 2KV, C) projection: one GEMM instead of three */
        const weight_role qkv[] = {ROLE_Q, ROLE_K, ROLE_V}, fused[] = {ROLE_QKV}, o[] = {ROLE_O}, down[] = {ROLE_DOWN};
        const int qkv_rows[] = {A, KV, KV}, fused_rows[] = {3 * A};
        const int C1[] = {C}, F1[] = {F}, FF[] = {F, F};
        const weight_role gu[] = {ROLE_GATE, ROLE_UP}, up[] = {ROLE_UP};
        const int gated = a->mlp == MLP_GATED;
        if ((names[ROLE_QKV] ? load_linear(m, &src, fused, fused_rows, 1, l, C, &w->wqkv, &w->bqkv)
                             : load_linear(m, &src, qkv, qkv_rows, 3, l, C, &w->wqkv, &w->bqkv)) ||
            load_linear(m, &src, o, C1, 1, l, A, &w->wo, &w->bo) ||
            load_linear(m, &src, gated ? gu : up, gated ? FF : F1, gated ? 2 : 1, l, C, &w->wup, &w->bup) ||
            load_linear(m, &src, down, C1, 1, l, F, &w->wdown, &w->bdown) ||
            load_norm(m, &src, ROLE_ATTN_NORM, l, &w->attn_norm) ||
            load_norm(m, &src, ROLE_MLP_NORM, l, &w->mlp_norm))
            goto fail;
    }
    /* the chain of residual steps (model.h): which norm follows each add */
    m->first = a->pre_norm ? m->layers[0].attn_norm : m->emb_norm;
    for (int l = 0; l < c->n_layer; l++) {
        layer_weights *w = &m->layers[l];
        w->after_attn = a->pre_norm ? w->mlp_norm : w->attn_norm;
        w->after_mlp = !a->pre_norm ? w->mlp_norm : l + 1 < c->n_layer ? m->layers[l + 1].attn_norm : m->final_norm;
    }
    if (a->pos == POS_ROPE) {
        if (!(m->inv_freq = upload_owned(m, dir, xcalloc(HS / 2, sizeof(float)), HS / 2, ROLE_Q, 0))) goto fail;
        upload_inv_freq(m, 0);
    }
    if (src.st) st_close(&st);
    gguf_close(&gg);
    return 0;
fail:
    if (src.st) st_close(&st);
    gguf_close(&gg);
    model_free(m);
    return -1;
}

static void free_activations(model *m)
{
    if (m->xn == m->x) m->xn = NULL;       /* aliases (post-norm, plain MLP): freed once */
    if (m->ffa == m->ff) m->ffa = NULL;
    void **bufs[] = {(void **)&m->x, (void **)&m->xn, (void **)&m->xb, (void **)&m->qkv, (void **)&m->ctx,
                     (void **)&m->tmp, (void **)&m->ff, (void **)&m->ffa, (void **)&m->probs, &m->inputs, (void **)&m->fstats};
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

/* the attention width A = NH·HS, the key/value width KV = NKV·HS, the up projection's width Fg
 * and the activation's extra output */
static void widths(const model_config *c, size_t *A, size_t *KV, size_t *Fg, size_t *Fa)
{
    *A = (size_t)c->n_head * c->head_dim;
    *KV = (size_t)c->n_kv_head * c->head_dim;
    *Fg = (size_t)c->d_ff * (c->arch->mlp == MLP_GATED ? 2 : 1);
    *Fa = c->arch->mlp == MLP_GATED ? (size_t)c->d_ff : 0;
}

size_t model_batch_bytes(const model *m, int B, int T, int fused)
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
    if (fused) return xn + 4 * BT * (3 * C + qkv + F + 5) + heads * STAT_N * (8 * ((size_t)T / 64 + 1) + 4 * c->n_layer) + lin;
    return xn + 4 * (BT * (3 * C + qkv + 4 * A + 4 * KV + F + 4) + BTT) + BTT / 4 + heads * T * 40 + lin;
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
    size_t C = c->d_model, A, KV, Fg, Fa;
    widths(c, &A, &KV, &Fg, &Fa);
    if (!(m->x = be->alloc(be, BT * C * sizeof(float)))) goto oom;
    m->xn = m->x;
    if (c->arch->pre_norm && !(m->xn = be->alloc(be, BT * C * sizeof(float)))) goto oom;
    if (be->bf16_acts && !(m->xb = be->alloc(be, BT * C * 2))) goto oom;
    if (!(m->qkv = be->alloc(be, BT * (A + 2 * KV) * sizeof(float)))) goto oom;
    if (!(m->ctx = be->alloc(be, BT * A * sizeof(float)))) goto oom;
    if (!(m->tmp = be->alloc(be, BT * C * sizeof(float)))) goto oom;
    if (!(m->ff = be->alloc(be, BT * Fg * sizeof(float)))) goto oom;
    m->ffa = m->ff;
    if (Fa && !(m->ffa = be->alloc(be, BT * Fa * sizeof(float)))) goto oom;
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

/* One residual step of the chain (model.h): x += res (res of type res_dt), then xn = norm(x)
 * (xn == x: post-norm), and xb = bf16(xn) when xb is not NULL (the bf16 path's next GEMM input). A
 * post-norm LayerNorm takes the backend's layernorm, which every backend has; every other step
 * add_norm. */
static void residual_step(model *m, const void *res, int res_dt, const norm_weights *n, void *xb, int BT)
{
    const model_config *c = &m->cfg;
    backend *be = m->be;
    if (m->xn == m->x && c->arch->norm == NORM_LAYER && n->w)
        be->layernorm(be, m->x, xb, m->x, res, res_dt, n->w, n->b, BT, c->d_model, c->ln_eps);
    else
        be->add_norm(be, m->x, m->xn, xb, res, res_dt, n->w, n->b, BT, c->d_model, c->ln_eps, c->arch->norm == NORM_RMS);
}

int model_forward(model *m, const int32_t *ids, const int32_t *types, const int *len, int B, int T,
                  attn_request *req, float *hidden)
{
    const model_config *c = &m->cfg;
    const arch_row *a = c->arch;
    backend *be = m->be;
    const int fused = req && req->scalars_only && model_fuses(m);
    if (req) req->fused = 0;
    if (ensure_activations(m, B, T, fused)) return -1;
    const int C = c->d_model, F = c->d_ff, BT = B * T, NH = c->n_head, NKV = c->n_kv_head, HS = c->head_dim;
    const int A = NH * HS, KV = NKV * HS, QKV = A + 2 * KV;   /* q | k | v of one projection row */
    const int Fg = a->mlp == MLP_GATED ? 2 * F : F;
    const size_t per_layer = (size_t)B * NH * STAT_N;
    /* the GEMM-side activations (q k v, the attention output, the MLP's hidden layer) in bf16
     * where the backend's GEMMs take bf16 anyway and the fused attention reads them */
    const int dt = fused && be->bf16_acts ? DT_BF16 : DT_F32;
    const size_t es = dt == DT_BF16 ? 2 : 4;
    char *qkv = (char *)m->qkv;

    /* host-side inputs into the staging block (the capacity's layout: the device block's):
     * positions (learned+offset: RoBERTa counts from pad+1 over real tokens), key mask, types,
     * lengths, token classes — then one upload (pinned memory on a GPU) */
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
            pos[i] = a->pos == POS_LEARNED_OFFSET ? (real ? c->pos_offset + t : c->pad_token_id) : t;
            typ[i] = types && c->type_vocab > 0 ? types[i] : 0;
        }
    }
    if (fused && req->tokcls) memcpy(cls, req->tokcls, (size_t)BT);
    be->upload(be, m->inputs, m->stage, m->inputs_bytes);
    if (m->inv_freq && c->rope_type == ROPE_DYNAMIC && T != m->rope_T) upload_inv_freq(m, T);

    be->embed(be, m->x, m->ids, m->pos, m->types, m->wte, m->wpe, m->wtt, BT, C);
    /* bf16 path: every LayerNorm also writes x's bf16 copy, the input of the next GEMM */
    void *xb = dt == DT_BF16 ? m->xb : NULL;
    const void *lin_in = xb ? xb : (const void *)m->xn;
    residual_step(m, NULL, DT_F32, &m->first, xb, BT);
    for (int l = 0; l < c->n_layer; l++) {
        const layer_weights *w = &m->layers[l];
        const int sw = config_window(c, l);
        be->linear(be, m->qkv, dt, lin_in, dt, w->wqkv, w->bqkv, BT, C, QKV);
        /* q and k are the first NH + NKV heads of each q | k | v row */
        if (m->inv_freq) be->rope(be, m->qkv, dt, QKV, m->pos, m->inv_freq, BT, NH + NKV, HS);
        if (fused) {
            be->attention_stats(be, m->ctx, qkv, qkv + A * es, qkv + (A + KV) * es, dt, QKV, m->lens,
                                req->tokcls ? m->tokcls : NULL, B, T, NH, NKV, HS, c->causal, sw, req->window,
                                m->fstats + l * per_layer);
        } else {
            be->attention(be, m->ctx, m->probs, m->qkv, m->qkv + A, m->qkv + A + KV, QKV, m->keymask, B, T, NH, NKV, HS,
                          c->causal, sw);
            if (req && req->capture) req->capture(req->user, l, m->probs, B, T);
        }
        /* the residual branches (attention output, MLP output) in dt too: the norm adds them in fp32 */
        be->linear(be, m->tmp, dt, m->ctx, dt, w->wo, w->bo, BT, A, C);
        residual_step(m, m->tmp, dt, &w->after_attn, xb, BT);
        be->linear(be, m->ff, dt, lin_in, dt, w->wup, w->bup, BT, C, Fg);
        if (a->mlp == MLP_GATED) be->gated_act(be, m->ffa, m->ff, dt, BT, F, c->act);
        else be->activation(be, m->ff, dt, (size_t)BT * F, c->act);
        be->linear(be, m->tmp, dt, m->ffa, dt, w->wdown, w->bdown, BT, F, C);
        residual_step(m, m->tmp, dt, &w->after_mlp, xb, BT);
    }
    /* the last hidden state: after the final norm (pre-norm) or the last post-norm */
    if (hidden) be->download(be, hidden, m->xn, (size_t)BT * C * sizeof(float));
    if (fused) {
        be->download(be, req->stats, m->fstats, c->n_layer * per_layer * sizeof(float));
        req->fused = 1;
    }
    be->sync(be);
    return 0;
}
