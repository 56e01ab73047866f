/* collect.c — see collect.h. */
#include "collect.h"
#include "check.h"
#include "util.h"
#include <math.h>
#include <utf8proc.h>

/* A token is punctuation when every character of it (after a "##" continuation prefix) is in a
 * Unicode P* category, as BERT's pre-tokenizer splits punctuation into tokens of its own. */
static int token_is_punct(const char *s)
{
    if (!s) return 0;
    if (s[0] == '#' && s[1] == '#' && s[2]) s += 2;
    if (!*s || (s[0] == '[' && s[strlen(s) - 1] == ']' && strlen(s) > 2)) return 0;  /* [CLS] etc. */
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    while (*p) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p, -1, &cp);
        if (k <= 0) return 0;
        utf8proc_category_t cat = utf8proc_category(cp);
        if (cat < UTF8PROC_CATEGORY_PC || cat > UTF8PROC_CATEGORY_PO) return 0;
        p += k;
    }
    return 1;
}

static hid_t make_ds(h5out *out, const char *name, hid_t type, int nd, const hsize_t *dims, const char *units, const char *def)
{
    hid_t ds = h5out_dataset(out, name, type, nd, dims, NULL);
    if (units) h5_attr_str(ds, "units", units);
    if (def) h5_attr_str(ds, "definition", def);
    return ds;
}

static const char *const stat_defs[STAT_N] = {
    "mean over the sample's valid query rows i of -sum_j p_ij ln p_ij (Clark et al. 2019)",
    "mean over valid query rows with more than one visible key of H_i / ln(number of visible keys)",
    "mean over valid query rows of sum_j p_ij |i - j|, in tokens",
    "mean over valid query rows of the mass on keys with |i - j| <= window (attribute of /stats)",
    "mean over valid query rows of p_i0, the first token ([CLS] or BOS) (Clark et al. 2019)",
    "mean over valid query rows of the mass on [SEP]/EOS tokens (Clark et al. 2019)",
    "mean over valid query rows of the mass on punctuation tokens (every character Unicode P*)",
    "mean over valid query rows of p_ii",
    "mean over valid query rows of p_i,i-1 (row 0 contributes 0)",
    "mean over valid query rows of p_i,i+1 (the last row contributes 0)",
    "alpha_0 = mean of p_i0 over the query rows that see key 0 (Gu et al. 2025, importance score)"};

void collect_init(collect *c, h5out *out, const model *m, const dataset *d, const tokenizer *tok,
                  const collect_opts *o, int64_t N, int Lmax, int tokmax)
{
    memset(c, 0, sizeof *c);
    const model_config *mc = &m->cfg;
    c->m = m; c->d = d; c->tok = tok; c->o = *o;
    c->L = mc->n_layer; c->NH = mc->n_head; c->Lmax = Lmax; c->tokmax = tokmax;
    c->sp = (stats_params){.causal = mc->causal, .window = o->window, .topk = o->topk};
    const int L = c->L, NH = c->NH, k = o->topk;

    /* token-class flags per vocabulary id */
    c->sep_of_id = xcalloc(mc->vocab, 1);
    c->punct_of_id = xcalloc(mc->vocab, 1);
    int sep = tok ? tok_sep_id(tok) : mc->sep_token_id;
    if (sep >= 0 && sep < mc->vocab) c->sep_of_id[sep] = 1;
    if (tok)
        for (int id = 0; id < tok_vocab_size(tok) && id < mc->vocab; id++) c->punct_of_id[id] = (uint8_t)token_is_punct(tok_id_to_token(tok, id));

    hsize_t dN[1] = {(hsize_t)N}, dNL[2] = {(hsize_t)N, (hsize_t)Lmax}, dNLH[3] = {(hsize_t)N, (hsize_t)L, (hsize_t)NH};
    hsize_t dKI[4] = {(hsize_t)N, (hsize_t)L, (hsize_t)NH, (hsize_t)Lmax};
    hsize_t dTK[5] = {(hsize_t)N, (hsize_t)L, (hsize_t)NH, (hsize_t)Lmax, (hsize_t)k};
    c->ds_len = make_ds(out, "/samples/length", H5T_STD_I32LE, 1, dN, "tokens", "valid tokens of the sample after truncation");
    c->ds_full = make_ds(out, "/samples/length_untruncated", H5T_STD_I32LE, 1, dN, "tokens", "tokens before truncation");
    c->ds_row = make_ds(out, "/samples/source_row", H5T_STD_I64LE, 1, dN, NULL, NULL);
    c->ds_ids = make_ds(out, "/samples/input_ids", H5T_STD_I32LE, 2, dNL, NULL, "token ids, padded with pad_token_id");
    c->str_t = c->ds_tok = c->f16_t = c->ds_att = -1;
    if (tok) {
        c->str_t = h5_type_str(tokmax);
        c->ds_tok = make_ds(out, "/samples/tokens", c->str_t, 2, dNL, NULL, "token strings, empty beyond the length");
    }
    char name[128];
    for (int s = 0; s < STAT_N; s++) {
        snprintf(name, sizeof name, "/stats/%s", stats_names[s]);
        c->ds_stat[s] = make_ds(out, name, H5T_IEEE_F32LE, 3, dNLH, stats_units[s], stat_defs[s]);
    }
    c->ds_ki = c->ds_ti = c->ds_tw = -1;
    if (o->key_importance)
        c->ds_ki = make_ds(out, "/stats/key_importance", H5T_IEEE_F32LE, 4, dKI, "mean probability",
                           "alpha_k = mean of p_ik over the query rows that see key k (Gu et al. 2025); 0 beyond the length");
    if (k > 0) {
        c->ds_ti = make_ds(out, "/stats/topk_index", H5T_STD_I32LE, 5, dTK, "key position",
                           "the k most attended keys of each query row, largest first; -1 for padding");
        c->ds_tw = make_ds(out, "/stats/topk_weight", H5T_IEEE_F32LE, 5, dTK, "probability", "their probabilities; 0 for padding");
    }
    c->ds_sink = make_ds(out, "/stats/sink_rate", H5T_IEEE_F32LE, 1, dN, "fraction of heads",
                         "fraction of the sample's layer x head pairs with sink_importance > sink_eps (Gu et al. 2025)");
    hid_t g = H5Gopen2(out->file, "/stats", H5P_DEFAULT);
    h5_attr_i64(g, "window", o->window);
    h5_attr_i64(g, "topk", k);
    h5_attr_f64(g, "sink_eps", o->sink_eps);
    h5_attr_i64(g, "causal", mc->causal);
    h5_attr_i64(g, "sep_token_id", sep);
    H5Gclose(g);
    /* which query heads share a key/value head (GQA); identity without GQA */
    int32_t *kvg = xmalloc(NH * sizeof(int32_t));
    for (int h = 0; h < NH; h++) kvg[h] = h / (NH / mc->n_kv_head);
    hsize_t dH[1] = {(hsize_t)NH};
    hid_t ds_kv = make_ds(out, "/model/kv_group", H5T_STD_I32LE, 1, dH, NULL, "key/value head of each query head");
    h5out_write_rows(ds_kv, H5T_NATIVE_INT32, 0, out->rank == 0 ? NH : 0, kvg, 1);
    H5Dclose(ds_kv);
    free(kvg);
    if (o->save_attention) {
        if (o->att_f16) c->f16_t = h5_type_f16();
        hsize_t dA[5] = {(hsize_t)N, (hsize_t)L, (hsize_t)NH, (hsize_t)Lmax, (hsize_t)Lmax};
        hsize_t cA[5] = {1, 1, (hsize_t)NH, (hsize_t)Lmax, (hsize_t)Lmax};
        c->ds_att = h5out_dataset(out, "/attention", o->att_f16 ? c->f16_t : H5T_IEEE_F32LE, 5, dA, cA);
        h5_attr_str(c->ds_att, "layout", "[sample, layer, head, query, key]; entries outside the sample's length are 0");
        c->pool_bytes = (size_t)o->batch * NH * Lmax * Lmax * (o->att_f16 ? 2 : 4);
        c->pool_cap = (int)(((size_t)1 << 30) / c->pool_bytes);
        if (c->pool_cap < 2) c->pool_cap = 2;
        if (c->pool_cap > 64) c->pool_cap = 64;
        c->pool = xcalloc(c->pool_cap, sizeof(void *));
    }
    c->scalars_only = !o->key_importance && k == 0 && !o->save_attention && !o->similarity;
    pthread_mutex_init(&c->pool_mu, NULL);
    pthread_cond_init(&c->pool_cv, NULL);
    c->wr = writer_start((size_t)1 << 30, o->threaded_writes);
    if (o->similarity) stats_sim_init(&c->sim, L * NH);

    /* window capacity: about 256 MiB of per-sample outputs */
    size_t per = (size_t)L * NH * (STAT_N * 4 + (size_t)Lmax * (4 + 8 * (size_t)k));
    size_t cap = ((size_t)256 << 20) / per;
    c->wcap = cap < 1 ? 1 : cap > 4096 ? 4096 : (int)cap;
}

/* A window's buffers: each window gets new ones, the writer frees them after their write. */
static void window_alloc(collect *c)
{
    const size_t heads = (size_t)c->wcap * c->L * c->NH, k = c->o.topk;
    c->stat = xmalloc(STAT_N * heads * sizeof(float));
    c->ki = c->ds_ki >= 0 ? xmalloc(heads * c->Lmax * sizeof(float)) : NULL;
    c->ti = k ? xmalloc(heads * c->Lmax * k * sizeof(int32_t)) : NULL;
    c->tw = k ? xmalloc(heads * c->Lmax * k * sizeof(float)) : NULL;
}

void collect_window_begin(collect *c, int w0, int wn)
{
    c->w0 = w0;
    c->wn = wn;
    window_alloc(c);
    const size_t heads = (size_t)wn * c->L * c->NH, rows = heads * c->Lmax * c->o.topk;
    if (c->ki) memset(c->ki, 0, heads * c->Lmax * sizeof(float));
    for (size_t i = 0; i < rows; i++) { c->ti[i] = -1; c->tw[i] = 0.0f; }
}

/* ---- the pool of /attention buffers ------------------------------------------------------------ */

static void *pool_get(collect *c)
{
    backend *be = c->m->be;
    pthread_mutex_lock(&c->pool_mu);
    for (;;) {
        if (c->pool_free > 0) { void *p = c->pool[--c->pool_free]; pthread_mutex_unlock(&c->pool_mu); return p; }
        if (c->pool_n < c->pool_cap) {
            c->pool_n++;
            pthread_mutex_unlock(&c->pool_mu);
            void *p = be->host_alloc(be, c->pool_bytes);
            if (!p) { fprintf(stderr, "attnscope: out of host memory for /attention buffers (%zu bytes)\n", c->pool_bytes); exit(1); }
            return p;
        }
        const double t0 = util_now();                  /* every buffer is still being written */
        pthread_cond_wait(&c->pool_cv, &c->pool_mu);
        c->pool_wait_s += util_now() - t0;
    }
}

static void pool_put(collect *c, void *p)
{
    pthread_mutex_lock(&c->pool_mu);
    c->pool[c->pool_free++] = p;
    pthread_cond_signal(&c->pool_cv);
    pthread_mutex_unlock(&c->pool_mu);
}

typedef struct { collect *c; void *buf; int layer, B; int64_t *rows; } att_job;

/* writer thread: one (sample, layer) chunk per sample of the batch */
static void att_job_run(void *ctx)
{
    att_job *j = ctx;
    collect *c = j->c;
    const size_t per = (size_t)c->NH * c->Lmax * c->Lmax * (c->o.att_f16 ? 2 : 4);
    for (int b = 0; b < j->B; b++) {
        hsize_t start[5] = {(hsize_t)j->rows[b], (hsize_t)j->layer, 0, 0, 0};
        hsize_t count[5] = {1, 1, (hsize_t)c->NH, (hsize_t)c->Lmax, (hsize_t)c->Lmax};
        h5out_write_block(c->ds_att, c->o.att_f16 ? c->f16_t : H5T_NATIVE_FLOAT, 5, start, count, (char *)j->buf + b * per);
    }
    pool_put(c, j->buf);
    free(j->rows);
    free(j);
}

void collect_batch_begin(collect *c, const int *idx, int B, int T)
{
    const dataset *d = c->d;
    c->batch_idx = idx;
    c->bsep = xrealloc(c->bsep, (size_t)B * T);
    c->bpunct = xrealloc(c->bpunct, (size_t)B * T);
    c->btokcls = xrealloc(c->btokcls, (size_t)B * T);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int i = idx[b], real = t < d->len[i];
            int32_t id = real ? d->ids[d->off[i] + t] : 0;
            const size_t e = (size_t)b * T + t;
            c->bsep[e] = real && c->sep_of_id[id];
            c->bpunct[e] = real && c->punct_of_id[id];
            c->btokcls[e] = (uint8_t)(c->bsep[e] | c->bpunct[e] << 1);
        }
    const size_t fs = (size_t)c->L * B * c->NH * STAT_N;
    if (c->scalars_only && fs > c->fstat_cap) {
        c->fstat = xrealloc(c->fstat, fs * sizeof(float));
        c->fstat_cap = fs;
    }
    c->req = (attn_request){.capture = collect_capture, .user = c, .scalars_only = c->scalars_only,
                            .window = c->o.window, .tokcls = c->btokcls, .stats = c->fstat};
    if (c->o.similarity) {   /* every layer's maps of the batch, in backend memory */
        backend *be = c->m->be;
        size_t need = (size_t)B * c->L * c->NH * T * T;
        if (need > c->sim_cap) {
            if (c->sim_maps) be->free(be, c->sim_maps);
            c->sim_maps = be->alloc(be, need * sizeof(float));
            if (!c->sim_maps) check_fail(__FILE__, __LINE__, "head similarity", "out of backend memory for the batch's maps");
            c->sim_cap = need;
        }
    }
}

/* one layer's per-head scalars of the batch, bstat (B, NH, STAT_N), into the window */
static void scatter_scalars(collect *c, int layer, int B, const float *bstat)
{
    const int L = c->L, NH = c->NH;
    const size_t wstride = (size_t)c->wn * L * NH;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const size_t o = ((size_t)(c->batch_idx[b] - c->w0) * L + layer) * NH + h, src = (size_t)b * NH + h;
            for (int s = 0; s < STAT_N; s++) c->stat[s * wstride + o] = bstat[src * STAT_N + s];
        }
}

void collect_capture(void *user, int layer, const float *probs, int B, int T)
{
    collect *c = user;
    const int L = c->L, NH = c->NH, Lmax = c->Lmax, k = c->o.topk;
    const size_t TT = (size_t)T * T;
    backend *be = c->m->be;
    /* statistics where the probabilities are (on the GPU for the CUDA backend) */
    int *len = xmalloc(B * sizeof(int));
    for (int b = 0; b < B; b++) len[b] = c->d->len[c->batch_idx[b]];
    const size_t bh = (size_t)B * NH;
    if (bh * T > c->bstat_cap) {
        c->bstat_cap = bh * T;
        c->bstat = xrealloc(c->bstat, bh * T * STAT_N * sizeof(float));   /* T >= 1: room for any bh <= cap */
        c->bki = xrealloc(c->bki, bh * T * sizeof(float));
        c->bti = xrealloc(c->bti, bh * T * k * sizeof(int32_t));
        c->btw = xrealloc(c->btw, bh * T * k * sizeof(float));
    }
    be->attn_stats(be, probs, len, c->bsep, c->bpunct, B, NH, T, &c->sp, c->bstat, c->ki ? c->bki : NULL,
                   k ? c->bti : NULL, k ? c->btw : NULL);
    scatter_scalars(c, layer, B, c->bstat);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const int w = c->batch_idx[b] - c->w0;
            const size_t o = ((size_t)w * L + layer) * NH + h, src = (size_t)b * NH + h;
            if (c->ki) memcpy(c->ki + o * Lmax, c->bki + src * T, (size_t)T * sizeof(float));
            if (k) {
                memcpy(c->ti + o * Lmax * k, c->bti + src * T * k, (size_t)T * k * sizeof(int32_t));
                memcpy(c->tw + o * Lmax * k, c->btw + src * T * k, (size_t)T * k * sizeof(float));
            }
        }
    if (c->ds_att >= 0) {
        /* packed (and converted to half) where the probabilities are; written by the writer */
        att_job *j = xmalloc(sizeof *j);
        *j = (att_job){c, pool_get(c), layer, B, xmalloc(B * sizeof(int64_t))};
        for (int b = 0; b < B; b++) j->rows[b] = c->d->first + c->batch_idx[b];
        be->attn_pack(be, j->buf, probs, len, B, NH, T, Lmax, c->o.att_f16);
        writer_submit(c->wr, att_job_run, j, (size_t)B * NH * Lmax * Lmax * (c->o.att_f16 ? 2 : 4));
    }
    free(len);
    if (!c->o.similarity) return;
    /* keep this layer's maps for the batch's head similarity: (B, NH, T, T) into (B, L, NH, T, T) */
    be->copy_rows(be, c->sim_maps + (size_t)layer * NH * TT, (size_t)L * NH * TT * sizeof(float), probs,
                  (size_t)NH * TT * sizeof(float), (size_t)NH * TT * sizeof(float), (size_t)B);
}

void collect_batch_end(collect *c, int B, int T)
{
    if (c->req.fused)
        for (int l = 0; l < c->L; l++) scatter_scalars(c, l, B, c->fstat + (size_t)l * B * c->NH * STAT_N);
    if (!c->o.similarity) return;
    int *len = xmalloc(B * sizeof(int));
    for (int b = 0; b < B; b++) { len[b] = c->d->len[c->batch_idx[b]]; c->sim.n_rows += len[b]; }
    c->m->be->head_sim(c->m->be, c->sim_maps, len, B, c->L * c->NH, T, c->sim.js_sum, c->sim.gram);
    free(len);
}


typedef struct {
    collect *c;
    int64_t g0; int w0, wn;
    float *stat, *ki, *sink; int32_t *ti, *ids; float *tw; char *toks;
} window_job;

/* writer thread: every per-sample output of one window, one contiguous block per dataset */
static void window_job_run(void *ctx)
{
    window_job *j = ctx;
    collect *c = j->c;
    const dataset *d = c->d;
    const size_t wstride = (size_t)j->wn * c->L * c->NH;
    h5out_write_rows(c->ds_len, H5T_NATIVE_INT, j->g0, j->wn, d->len + j->w0, 0);
    h5out_write_rows(c->ds_full, H5T_NATIVE_INT, j->g0, j->wn, d->len_full + j->w0, 0);
    h5out_write_rows(c->ds_row, H5T_NATIVE_INT64, j->g0, j->wn, d->source_row + j->w0, 0);
    h5out_write_rows(c->ds_ids, H5T_NATIVE_INT32, j->g0, j->wn, j->ids, 0);
    h5out_write_rows(c->ds_tok, c->str_t, j->g0, j->wn, j->toks, 0);
    for (int s = 0; s < STAT_N; s++) h5out_write_rows(c->ds_stat[s], H5T_NATIVE_FLOAT, j->g0, j->wn, j->stat + s * wstride, 0);
    h5out_write_rows(c->ds_ki, H5T_NATIVE_FLOAT, j->g0, j->wn, j->ki, 0);
    h5out_write_rows(c->ds_ti, H5T_NATIVE_INT32, j->g0, j->wn, j->ti, 0);
    h5out_write_rows(c->ds_tw, H5T_NATIVE_FLOAT, j->g0, j->wn, j->tw, 0);
    h5out_write_rows(c->ds_sink, H5T_NATIVE_FLOAT, j->g0, j->wn, j->sink, 0);
    free(j->stat); free(j->ki); free(j->ti); free(j->tw); free(j->sink); free(j->ids); free(j->toks);
    free(j);
}

void collect_window_write(collect *c)
{
    const dataset *d = c->d;
    const int L = c->L, NH = c->NH, Lmax = c->Lmax, wn = c->wn, w0 = c->w0;
    const size_t wstride = (size_t)wn * L * NH;
    window_job *j = xcalloc(1, sizeof *j);
    j->c = c; j->g0 = d->first + w0; j->w0 = w0; j->wn = wn;
    /* sink rate: fraction of heads whose first-token importance exceeds eps */
    j->sink = xmalloc((wn ? wn : 1) * sizeof(float));
    for (int w = 0; w < wn; w++) {
        int cnt = 0;
        for (int a = 0; a < L * NH; a++) cnt += c->stat[STAT_SINK * wstride + (size_t)w * L * NH + a] > c->o.sink_eps;
        j->sink[w] = (float)cnt / (L * NH);
    }
    j->ids = xmalloc(((size_t)wn * Lmax + 1) * sizeof(int32_t));
    j->toks = c->ds_tok >= 0 ? xcalloc((size_t)wn * Lmax + 1, c->tokmax) : NULL;
    for (int w = 0; w < wn; w++) {
        int i = w0 + w;
        for (int t = 0; t < Lmax; t++) {
            int real = t < d->len[i];
            j->ids[(size_t)w * Lmax + t] = real ? d->ids[d->off[i] + t] : c->m->cfg.pad_token_id;
            if (j->toks && real) {
                const char *s = tok_id_to_token(c->tok, d->ids[d->off[i] + t]);
                if (s) memcpy(j->toks + ((size_t)w * Lmax + t) * c->tokmax, s, strlen(s));
            }
        }
    }
    j->stat = c->stat; j->ki = c->ki; j->ti = c->ti; j->tw = c->tw;   /* the writer owns them now */
    c->stat = c->ki = c->tw = NULL;
    c->ti = NULL;
    size_t bytes = wstride * (STAT_N * 4 + (j->ki ? (size_t)Lmax * 4 : 0) + (size_t)Lmax * c->o.topk * 8) + (size_t)wn * Lmax * (4 + c->tokmax);
    writer_submit(c->wr, window_job_run, j, bytes);
}

double collect_finish(collect *c, h5out *out, MPI_Comm comm)
{
    /* every write done: HDF5 and MPI are ours again. Waited: in the writer's queue, and for a
     * free /attention buffer (the ones in flight are all being written) */
    const double waited = writer_finish(c->wr) + c->pool_wait_s;
    if (c->o.similarity) {
        const int nh = c->L * c->NH;
        const size_t nn = (size_t)nh * nh;
        double *js = out->rank == 0 ? xmalloc(nn * sizeof(double)) : NULL, *gram = out->rank == 0 ? xmalloc(nn * sizeof(double)) : NULL;
        double rows = 0;
        CHECK_MPI(MPI_Reduce(c->sim.js_sum, js, (int)nn, MPI_DOUBLE, MPI_SUM, 0, comm));
        CHECK_MPI(MPI_Reduce(c->sim.gram, gram, (int)nn, MPI_DOUBLE, MPI_SUM, 0, comm));
        CHECK_MPI(MPI_Allreduce(&c->sim.n_rows, &rows, 1, MPI_DOUBLE, MPI_SUM, comm));
        double *mean = NULL, *cosv = NULL;
        if (out->rank == 0) {
            mean = xmalloc(nn * sizeof(double));
            cosv = xmalloc(nn * sizeof(double));
            for (size_t e = 0; e < nn; e++) mean[e] = rows > 0 ? js[e] / rows : 0;
            for (int a = 0; a < nh; a++)
                for (int b = 0; b < nh; b++) {
                    double den = sqrt(gram[(size_t)a * nh + a] * gram[(size_t)b * nh + b]);
                    cosv[(size_t)a * nh + b] = den > 0 ? gram[(size_t)a * nh + b] / den : 0;
                }
        }
        hsize_t d2[2] = {(hsize_t)nh, (hsize_t)nh};
        struct { const char *name; double *v; const char *def; } outs[] = {
            {"/summary/head_similarity_js_sum", js, "sum over samples and query rows of the Jensen-Shannon divergence between two heads' rows, Clark et al. 2019 smoothing (nats); head index layer*heads + head"},
            {"/summary/head_similarity_js_mean", mean, "head_similarity_js_sum / n_rows: mean JS divergence per query row (nats)"},
            {"/summary/head_similarity_cos", cosv, "cosine similarity of the heads' attention maps over the dataset: G_ab / sqrt(G_aa G_bb), G = sum over samples of <A_a, A_b>"},
            {"/summary/head_similarity_gram", gram, "G: sum over samples of the inner products of the heads' attention maps"}};
        for (size_t i = 0; i < sizeof outs / sizeof *outs; i++) {
            hid_t ds = h5out_dataset(out, outs[i].name, H5T_IEEE_F64LE, 2, d2, NULL);
            h5_attr_str(ds, "definition", outs[i].def);
            h5_attr_f64(ds, "n_rows", rows);
            h5out_write_rows(ds, H5T_NATIVE_DOUBLE, 0, out->rank == 0 ? nh : 0, outs[i].v, 1);
            H5Dclose(ds);
        }
        free(js); free(gram); free(mean); free(cosv);
        stats_sim_free(&c->sim);
    }
    hid_t dss[] = {c->ds_len, c->ds_full, c->ds_row, c->ds_ids, c->ds_tok, c->ds_ki, c->ds_ti, c->ds_tw, c->ds_sink, c->ds_att};
    for (size_t i = 0; i < sizeof dss / sizeof *dss; i++)
        if (dss[i] >= 0) H5Dclose(dss[i]);
    for (int s = 0; s < STAT_N; s++) H5Dclose(c->ds_stat[s]);
    if (c->str_t >= 0) H5Tclose(c->str_t);
    if (c->f16_t >= 0) H5Tclose(c->f16_t);
    free(c->sep_of_id); free(c->punct_of_id); free(c->stat); free(c->ki); free(c->ti); free(c->tw);
    free(c->bsep); free(c->bpunct); free(c->btokcls); free(c->fstat);
    if (c->sim_maps) c->m->be->free(c->m->be, c->sim_maps);
    free(c->bstat); free(c->bki); free(c->bti); free(c->btw);
    for (int i = 0; i < c->pool_free; i++) c->m->be->host_free(c->m->be, c->pool[i]);
    free(c->pool);
    pthread_mutex_destroy(&c->pool_mu);
    pthread_cond_destroy(&c->pool_cv);
    return waited;
}
