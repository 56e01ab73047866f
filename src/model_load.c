/* model_load.c — see model.h: the weights of a family's row loaded by role under the Hugging
 * Face module names (arch.c), or llama.cpp's names (gguf_names) from a GGUF file, where they are
 * dequantized to float32 and the Q/K rows the converter permuted are put back in Hugging Face's
 * order. */
#include "model_int.h"
#include "safetensors.h"
#include "util.h"
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int nonfinite_policy = NONFINITE_REFUSE;

void model_set_nonfinite(int policy) { nonfinite_policy = policy; }
static void (*files_hook)(char *const *files, int n);
void model_set_files_hook(void (*fn)(char *const *files, int n)) { files_hook = fn; }

int model_check_finite(const char *file, const char *name, const float *x, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += !isfinite(x[i]);
    if (!bad) return 0;
    if (nonfinite_policy == NONFINITE_REFUSE)
        return err_set("%s: tensor \"%s\" has %zu non-finite value%s (NaN/Inf); --allow-nonfinite to run anyway", file, name, bad,
                       bad == 1 ? "" : "s");
    if (nonfinite_policy == NONFINITE_WARN)
        fprintf(stderr, "attnscope: warning: %s: tensor \"%s\" has %zu non-finite value%s (NaN/Inf); running anyway (--allow-nonfinite)\n",
                file, name, bad, bad == 1 ? "" : "s");
    return 0;
}

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

/* Whether the row stores role as a bare parameter (no ".weight"; ViT's cls_token). */
static int is_bare(const model *m, weight_role role)
{
    return !m->gguf && (m->cfg.arch->bare >> role & 1u);
}

/* The name of role (arch.h) for layer l with suffix (".weight", ".bias") and the model's prefix;
 * a bare parameter's ".weight" is its name alone. */
static void role_name(const model *m, weight_role role, int l, const char *suffix, char *out, size_t cap)
{
    char base[192];
    snprintf(base, sizeof base, row_names(m)[role], l);
    if (is_bare(m, role) && !strcmp(suffix, ".weight")) suffix = "";
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
 * from the file's (d1, d0) when tr. In safetensors, leading dimensions of 1 beyond those are
 * accepted (ViT's [1, 1, C] cls_token), and with flat a (d0, a, b, ...) tensor whose trailing
 * dimensions multiply to d1 is read as (d0, d1) (a convolution's weight as its GEMM matrix).
 * Returns 1, 0 when absent and not required, -1 with err_set(). */
static int read_tensor(const wsrc *s, const char *full, int d0, int d1, int tr, int flat, int required, float *host)
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
        const size_t n = (size_t)d0 * (d1 ? d1 : 1);
        return gguf_tensor_f32(s->gg, full, host, n) || model_check_finite(s->path, full, host, n) ? -1 : 1;
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
    int lead = 0;                                   /* leading dimensions of 1 to skip */
    while (t->ndim - lead > want_nd && t->shape[lead] == 1) lead++;
    const int nd = t->ndim - lead;
    const int64_t *sh0 = t->shape + lead;
    int64_t rest = 1;                               /* flat: the trailing dimensions' product */
    for (int i = 1; i < nd; i++) rest = rest <= INT64_MAX / (sh0[i] ? sh0[i] : 1) ? rest * sh0[i] : -1;
    const int shape_ok = flat && d1 ? nd >= 2 && sh0[0] == f0 && rest == f1
                                    : nd == want_nd && sh0[0] == f0 && (!d1 || sh0[1] == f1);
    if (!shape_ok) {
        int64_t sh[8];
        for (int i = 0; i < t->ndim && i < 8; i++) sh[i] = t->shape[i];
        shape_str(sh, t->ndim < 8 ? t->ndim : 8, 0, got, sizeof got);
        return err_set("%s: tensor \"%s\" has shape [%s], %s %s", file, full, got, implied, want);
    }
    const size_t n = (size_t)d0 * (d1 ? d1 : 1);
    if (!tr) return st_to_f32(t, host) || model_check_finite(file, t->name, host, n) ? -1 : 1;
    float *tmp = xmalloc(n * sizeof(float));
    if (st_to_f32(t, tmp) || model_check_finite(file, t->name, tmp, n)) { free(tmp); return -1; }
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
    if (is_bare(m, role) && strcmp(suffix, ".weight")) return 0;   /* a bare parameter has no bias */
    role_name(m, role, l, suffix, full, sizeof full);
    const int flat = role == ROLE_PATCH;            /* the patch convolution (C, ch, P, P) as (C, ch·P·P) */
    const int r = read_tensor(s, full, d0, d1, d1 && m->cfg.arch->transposed && !m->gguf, flat, required, host);
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
    if (m->be->linear_weight) {                     /* stored as the backend's linear takes it */
        *w = m->be->linear_weight(m->be, hw, total, K);
        free(hw);
        if (!*w) {
            char name[256];
            role_name(m, roles[0], l, "", name, sizeof name);
            free(hb);
            return err_set("%s: out of %s memory loading \"%s\"", s->path, m->be->name, name);
        }
        m->owned = xrealloc(m->owned, (m->n_owned + 1) * sizeof(void *));
        m->owned[m->n_owned++] = *w;
    } else if (!(*w = upload_owned(m, s->path, hw, (size_t)total * K, roles[0], l))) {
        free(hb);
        return -1;
    }
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
    if (read_tensor(s, full, rows, C, 0, 0, 1, h) < 0) { free(h); return -1; }
    if (role != ROLE_TOK_EMB || !m->be->token_table) return (*out = upload_owned(m, s->path, h, (size_t)rows * C, role, 0)) ? 0 : -1;
    *out = m->be->token_table(m->be, h, rows, C);   /* (as the backend's embed takes it: bf16 under bf16) */
    free(h);
    if (!*out) return err_set("%s: out of %s memory loading \"%s\"", s->path, m->be->name, full);
    m->owned = xrealloc(m->owned, (m->n_owned + 1) * sizeof(void *));
    m->owned[m->n_owned++] = *out;
    return 0;
}

/* The patch stem's weights: the convolution as (C, channels·P·P) with its optional bias, the
 * [CLS] embedding and DeiT's distillation token (C each). */
static int load_patch_stem(model *m, const wsrc *s)
{
    const model_config *c = &m->cfg;
    const int C = c->d_model, K = c->n_channels * c->patch_size * c->patch_size;
    const weight_role patch[] = {ROLE_PATCH};
    const int rows[] = {C};
    if (load_linear(m, s, patch, rows, 1, 0, K, &m->wpatch, &m->bpatch)) return -1;
    float **dst[] = {&m->wcls, &m->wdist};
    const weight_role roles[] = {ROLE_CLS, ROLE_DIST};
    for (int i = 0; i < 2; i++) {
        *dst[i] = NULL;
        if (!row_names(m)[roles[i]]) continue;
        float *h = xmalloc((size_t)C * sizeof(float));
        if (read_role(m, s, roles[i], 0, ".weight", C, 0, 1, h) < 0) { free(h); return -1; }
        if (!(*dst[i] = upload_owned(m, s->path, h, C, roles[i], 0))) return -1;
    }
    return 0;
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

/* Whether path is a file (a GGUF model) rather than a checkpoint directory; -1 with err_set() when
 * it is neither (a named pipe, a device: never opened) */
static int is_file(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0 || S_ISDIR(sb.st_mode)) return 0;   /* (a missing path: config.json's loader names it) */
    return S_ISREG(sb.st_mode) ? 1 : err_set("%s: not a regular file or a directory", path);
}

int model_load(model *m, const char *dir, backend *be) { return model_load_tower(m, dir, be, TOWER_ANY); }

int model_load_tower(model *m, const char *dir, backend *be, int tower)
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
    if (m->gguf < 0) return -1;
    if (m->gguf) {
        if (gguf_open(&gg, dir)) return -1;
        if (config_load_gguf(&m->cfg, &gg)) { gguf_close(&gg); return -1; }
        src.gg = &gg;
    } else if (config_load(&m->cfg, dir, tower)) {
        return -1;
    }
    const model_config *c = &m->cfg;
    const arch_row *a = c->arch;
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
        if (files_hook) files_hook(m->weight_files, m->n_weight_files);
    } else {
        if (st_open_dir(&st, dir)) { config_free(&m->cfg); return -1; }
        src.st = &st;
        m->n_weight_files = st.nfiles;
        m->weight_files = xcalloc(st.nfiles, sizeof(char *));
        for (int i = 0; i < st.nfiles; i++) m->weight_files[i] = xstrdup(st.paths[i]);
        if (files_hook) files_hook(m->weight_files, m->n_weight_files);
        int found = 0;
        /* the prefix under which the stem's first weight is found */
        const char *first = a->names[a->stem == STEM_PATCHES ? ROLE_PATCH : ROLE_TOK_EMB];
        for (const char *p = a->prefixes; !found;) {
            const char *e = strchr(p, '|');
            const int k = e ? (int)(e - p) : (int)strlen(p);
            char name[256];
            snprintf(name, sizeof name, "%.*s%s.weight", k, p, first);
            if (st_find(&st, name)) { snprintf(m->weight_prefix, sizeof m->weight_prefix, "%.*s", k, p); found = 1; }
            if (!e) break;
            p = e + 1;
        }
        if (!found) {
            err_set("%s: no tensor \"%s.weight\" (with any of the prefixes \"%s\"): not a %s checkpoint", dir,
                    first, a->prefixes, a->family);
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
        load_norm(m, &src, ROLE_FINAL_NORM, 0, &m->final_norm) ||
        (a->stem == STEM_PATCHES && load_patch_stem(m, &src)))
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
        model_upload_inv_freq(m, 0);
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

