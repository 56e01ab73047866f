/* collect_out.c — the output side of collect.h: creating the run's datasets, finding them again,
 * and the writer thread's jobs (a window's rows, /attention blocks, progress records). */
#include "collect.h"
#include "check.h"
#include "util.h"
#include <fcntl.h>
#include <math.h>
#include <unistd.h>

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

static const char *const sim_defs[4] = {
    "sum over samples and query rows of the Jensen-Shannon divergence between two heads' rows, Clark et al. 2019 smoothing (nats); head index layer*heads + head",
    "head_similarity_js_sum / n_rows: mean JS divergence per query row (nats)",
    "cosine similarity of the heads' attention maps over the dataset: G_ab / sqrt(G_aa G_bb), G = sum over samples of <A_a, A_b>",
    "G: sum over samples of the inner products of the heads' attention maps"};

void collect_create(collect *c, h5out *out, int64_t n_tokens)
{
    const model_config *mc = &c->m->cfg;
    const int L = c->L, NH = c->NH, Lmax = c->Lmax, k = c->o.topk;
    const hsize_t N = (hsize_t)c->N;
    hsize_t dN[1] = {N}, dNL[2] = {N, (hsize_t)Lmax}, dNLH[3] = {N, (hsize_t)L, (hsize_t)NH};
    hsize_t dKI[4] = {N, (hsize_t)L, (hsize_t)NH, (hsize_t)Lmax};
    hsize_t dTK[5] = {N, (hsize_t)L, (hsize_t)NH, (hsize_t)Lmax, (hsize_t)k};
    hid_t ds[CO_N];
    for (int i = 0; i < CO_N; i++) ds[i] = -1;
    ds[CO_LEN] = make_ds(out, c->names[CO_LEN], H5T_STD_I32LE, 1, dN, "tokens", "valid tokens of the sample after truncation");
    ds[CO_FULL] = make_ds(out, c->names[CO_FULL], H5T_STD_I32LE, 1, dN, "tokens", "tokens before truncation");
    ds[CO_ROW] = make_ds(out, c->names[CO_ROW], H5T_STD_I64LE, 1, dN, NULL, NULL);
    ds[CO_IDS] = make_ds(out, c->names[CO_IDS], H5T_STD_I32LE, 2, dNL, NULL, "token ids, padded with pad_token_id");
    if (c->names[CO_TOK]) {
        hid_t str_t = h5_type_str(c->tokmax);
        ds[CO_TOK] = make_ds(out, c->names[CO_TOK], str_t, 2, dNL, NULL, "token strings, empty beyond the length");
        H5Tclose(str_t);
    }
    for (int s = 0; s < STAT_N; s++)
        ds[CO_STAT + s] = make_ds(out, c->names[CO_STAT + s], H5T_IEEE_F32LE, 3, dNLH, stats_units[s], stat_defs[s]);
    if (c->names[CO_KI])
        ds[CO_KI] = make_ds(out, c->names[CO_KI], H5T_IEEE_F32LE, 4, dKI, "mean probability",
                            "alpha_k = mean of p_ik over the query rows that see key k (Gu et al. 2025); 0 beyond the length");
    if (c->names[CO_TI]) {
        ds[CO_TI] = make_ds(out, c->names[CO_TI], H5T_STD_I32LE, 5, dTK, "key position",
                            "the k most attended keys of each query row, largest first; -1 for padding");
        ds[CO_TW] = make_ds(out, c->names[CO_TW], H5T_IEEE_F32LE, 5, dTK, "probability", "their probabilities; 0 for padding");
    }
    ds[CO_SINK] = make_ds(out, c->names[CO_SINK], H5T_IEEE_F32LE, 1, dN, "fraction of heads",
                          "fraction of the sample's layer x head pairs with sink_importance > sink_eps (Gu et al. 2025)");
    hid_t g = H5Gopen2(out->file, "/stats", H5P_DEFAULT);
    h5_attr_i64(g, "window", c->o.window);
    h5_attr_i64(g, "topk", k);
    h5_attr_f64(g, "sink_eps", c->o.sink_eps);
    h5_attr_i64(g, "causal", mc->causal);
    h5_attr_i64(g, "sep_token_id", c->sep_id);
    H5Gclose(g);
    /* which query heads share a key/value head (GQA); identity without GQA */
    int32_t *kvg = xmalloc(NH * sizeof(int32_t));
    for (int h = 0; h < NH; h++) kvg[h] = h / (NH / mc->n_kv_head);
    hsize_t dH[1] = {(hsize_t)NH};
    hid_t ds_kv = make_ds(out, "/model/kv_group", H5T_STD_I32LE, 1, dH, NULL, "key/value head of each query head");
    h5out_write_rows(ds_kv, H5T_NATIVE_INT32, 0, NH, kvg);
    H5Dclose(ds_kv);
    free(kvg);
    /* each layer's sliding window (Mistral, Qwen2): the statistics count only the keys it shows */
    int32_t *sw = xmalloc(L * sizeof(int32_t));
    for (int l = 0; l < L; l++) sw[l] = config_window(mc, l);
    hsize_t dL[1] = {(hsize_t)L};
    hid_t ds_sw = make_ds(out, "/model/sliding_window", H5T_STD_I32LE, 1, dL, "tokens",
                          "each layer's sliding window sw: query i sees keys i - sw + 1 .. i; 0: full attention");
    h5out_write_rows(ds_sw, H5T_NATIVE_INT32, 0, L, sw);
    H5Dclose(ds_sw);
    free(sw);
    if (c->names[CO_ATT]) {
        /* no padding: sample i's [L, NH, n_i, n_i] block at /attention_offset[i], n_i = /samples/length[i]
         * (a padded [N, L, NH, Lmax, Lmax] array is mostly zeros when one sample is long) */
        hid_t f16_t = h5_type_f16();
        hsize_t dA[1] = {(hsize_t)c->att_total};
        ds[CO_ATT] = make_ds(out, c->names[CO_ATT], c->o.att_f16 ? f16_t : H5T_IEEE_F32LE, 1, dA, "probability",
                             "post-softmax attention probabilities of every sample, layer, head, query and key");
        h5_attr_str(ds[CO_ATT], "layout",
                    "packed, no padding: the samples' blocks one after another; sample i's block [layer, head, query, key] "
                    "has shape [n_layers, n_heads, n, n], n = /samples/length[i], and starts at element /attention_offset[i]");
        h5_attr_str(ds[CO_ATT], "read",
                    "a = f['attention']; L, H = a.attrs['n_layers'], a.attrs['n_heads']\n"
                    "n = f['samples/length'][i]; o = f['attention_offset'][i]\n"
                    "att_i = a[o:o + L*H*n*n].reshape(L, H, n, n)");
        h5_attr_i64(ds[CO_ATT], "n_layers", L);
        h5_attr_i64(ds[CO_ATT], "n_heads", NH);
        H5Tclose(f16_t);
        ds[CO_ATT_OFF] = make_ds(out, c->names[CO_ATT_OFF], H5T_STD_I64LE, 1, dN, "elements",
                                 "index in /attention of the first value of each sample's [L, H, n, n] block");
    }
    if (c->names[CO_SIM_JS_SUM]) {
        const hsize_t d2[2] = {(hsize_t)L * NH, (hsize_t)L * NH};
        for (int i = 0; i < 4; i++) {
            ds[CO_SIM_JS_SUM + i] = make_ds(out, c->names[CO_SIM_JS_SUM + i], H5T_IEEE_F64LE, 2, d2, NULL, sim_defs[i]);
            h5_attr_f64(ds[CO_SIM_JS_SUM + i], "n_rows", (double)n_tokens);   /* every valid query row of the dataset */
        }
    }
    if (c->o.probe) {
        const probe_params *pp = c->o.probe;
        const hsize_t dLH[2] = {(hsize_t)L, (hsize_t)NH};
        for (int s = 0; s < PROBE_N; s++) {
            ds[CO_PROBE + s] = make_ds(out, c->names[CO_PROBE + s], H5T_IEEE_F32LE, 3, dNLH, "probability mass", probe_defs[s]);
            ds[CO_PROBE_MEAN + s] = make_ds(out, c->names[CO_PROBE_MEAN + s], H5T_IEEE_F32LE, 2, dLH, "probability mass", probe_defs[s]);
            h5_attr_str(ds[CO_PROBE_MEAN + s], "averaged", "mean of the per-sample score over the probe's samples");
        }
        hid_t g = H5Gopen2(out->file, "/probe", H5P_DEFAULT);
        h5_attr_str(g, "probe", "induction");
        h5_attr_str(g, "sequence", "[BOS] + R + R: R is probe_len token ids drawn uniformly (with replacement) from the vocabulary "
                                   "without its special ids; no BOS when bos_token_id is -1");
        h5_attr_str(g, "token_ids", "/samples/input_ids");
        h5_attr_i64(g, "probe_len", pp->K);
        h5_attr_i64(g, "probe_samples", pp->N);
        h5_attr_i64(g, "probe_seed", (int64_t)pp->seed);
        h5_attr_i64(g, "bos_token_id", pp->bos);
        h5_attr_i64(g, "n_allowed_ids", pp->n_allowed);
        h5_attr_str(g, "source", "Olsson et al. 2022, In-context Learning and Induction Heads (repeated random tokens); "
                                 "TransformerLens head_detector.py and its induction-head demo (the three head types)");
        H5Gclose(g);
    }
    for (int i = 0; i < CO_N; i++)
        if (ds[i] >= 0) H5Dclose(ds[i]);
    collect_vision_create(c, out);
}

int collect_attach(collect *c, const char *data_path, const char *state_dir, uint64_t run_id, MPI_Comm comm)
{
    MPI_Comm_rank(comm, &c->rank);
    MPI_Comm_size(comm, &c->nranks);
    c->data_path = data_path;
    c->state_dir = state_dir;
    c->run_id = run_id;
    if (h5out_locate(data_path, c->names, CO_N, c->raw, comm)) return -1;
    int rc = 0;
    for (int i = 0; i < CO_N; i++)
        if (c->names[i] && (i < CO_SIM_JS_SUM || (i >= CO_PROBE && i < CO_PROBE_MEAN) || i >= CO_VIS) &&
            c->raw[i].rows != (i == CO_ATT ? c->att_total : c->N))
            rc = err_set("%s: %s has %lld rows, this run %lld", data_path, c->names[i], (long long)c->raw[i].rows,
                         (long long)(i == CO_ATT ? c->att_total : c->N));
    c->fd = rc ? -1 : open(data_path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (!rc && c->fd < 0) rc = err_set("%s: cannot open for writing: %s", data_path, strerror(errno));
    return rc;
}

void collect_fail(collect *c, const char *msg)
{
    int expected = 0;
    if (!__atomic_compare_exchange_n(&c->werr, &expected, 2, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return;
    snprintf(c->werr_msg, sizeof c->werr_msg, "%s", msg);
    __atomic_store_n(&c->werr, 1, __ATOMIC_RELEASE);
}

/* an input's failure, on the writer thread behind the jobs submitted before it: the windows
 * handed over so far are written and recorded first (collect_fail stops every later write) */
typedef struct { collect *c; char msg[1024]; } fail_job;
static void fail_job_run(void *ctx)
{
    fail_job *f = ctx;
    collect_fail(f->c, f->msg);
    free(f);
}
void collect_fail_input(collect *c, const char *msg)
{
    c->werr_input = 1;
    fail_job *f = xmalloc(sizeof *f);
    f->c = c;
    snprintf(f->msg, sizeof f->msg, "%s", msg);
    writer_submit(c->wr, fail_job_run, f, 0);
}

void collect_write_error(collect *c, int co, int err)
{
    char m[1024];
    if (co >= 0) snprintf(m, sizeof m, "%s: cannot write %s: %s", c->data_path, c->names[co], strerror(err));
    else snprintf(m, sizeof m, "%s: cannot flush to disk (fdatasync): %s", c->data_path, strerror(err));
    c->werr_errno = err;
    collect_fail(c, m);
}

int64_t collect_dataset_bytes(const collect *c, int co)
{
    if (!c->names[co]) return 0;
    const int64_t N = c->N, LH = (int64_t)c->L * c->NH, Lmax = c->Lmax, k = c->o.topk;
    if (co >= CO_VIS) return N * (int64_t)c->vis_row[co - CO_VIS] * 4;
    switch (co) {
    case CO_LEN: case CO_FULL: case CO_SINK: return N * 4;
    case CO_ROW: return N * 8;
    case CO_IDS: return N * Lmax * 4;
    case CO_TOK: return N * Lmax * c->tokmax;
    case CO_KI: return N * LH * Lmax * 4;
    case CO_TI: case CO_TW: return N * LH * Lmax * k * 4;
    case CO_ATT: return c->att_total * (c->o.att_f16 ? 2 : 4);
    case CO_ATT_OFF: return N * 8;
    case CO_SIM_JS_SUM: case CO_SIM_JS_MEAN: case CO_SIM_COS: case CO_SIM_GRAM: return LH * LH * 8;
    case CO_PROBE_MEAN: case CO_PROBE_MEAN + 1: case CO_PROBE_MEAN + 2: return LH * 4;

    default: return N * LH * 4;   /* /stats/<statistic> */
    }
}

int collect_write_failed(const collect *c) { return __atomic_load_n(&c->werr, __ATOMIC_ACQUIRE) != 0; }

/* ---- a window's rows on the writer thread ------------------------------------------------------- */

typedef struct {
    collect *c;
    int64_t g0; int w0, wn;
    float *stat, *probe, *ki, *sink; int32_t *ti, *ids; float *tw; char *toks;
    float *vis[VIS_N];
    int tok_set;                       /* ki, ti, tw, vis are pool set tok_set (handed back), or -1 */
    int borrowed;                      /* a checkpoint: the buffers are the window's own, not freed */
    int nrun; int (*run)[2];           /* the rows written: runs (first, count) of the window's rows */
    progress_rec *rec;
} window_job;

/* rows run[r] of dataset co from buf, a window's rows */
static void put_rows(collect *c, int co, const window_job *j, const void *buf)
{
    if (collect_write_failed(c) || !c->names[co] || !buf) return;
    const size_t rb = c->raw[co].row_bytes;
    for (int r = 0; r < j->nrun && !collect_write_failed(c); r++)
        if (h5raw_write_rows(c->fd, &c->raw[co], j->g0 + j->run[r][0], j->run[r][1], (const char *)buf + (size_t)j->run[r][0] * rb))
            collect_write_error(c, co, errno);
}

/* writer thread: every per-sample output of one window's rows run[], one contiguous block per
 * dataset and run; then (with a record) fdatasync and the record, so that what a record says is
 * done is on disk */
static void window_job_run(void *ctx)
{
    window_job *j = ctx;
    collect *c = j->c;
    const dataset *d = c->d;
    const size_t wstride = (size_t)j->wn * c->L * c->NH;
    put_rows(c, CO_LEN, j, d->len + j->w0);
    put_rows(c, CO_FULL, j, d->len_full + j->w0);
    put_rows(c, CO_ROW, j, d->source_row + j->w0);
    put_rows(c, CO_IDS, j, j->ids);
    put_rows(c, CO_TOK, j, j->toks);
    for (int s = 0; s < STAT_N; s++) put_rows(c, CO_STAT + s, j, j->stat + s * wstride);
    for (int s = 0; s < PROBE_N && j->probe; s++) put_rows(c, CO_PROBE + s, j, j->probe + s * wstride);
    put_rows(c, CO_KI, j, j->ki);
    put_rows(c, CO_TI, j, j->ti);
    put_rows(c, CO_TW, j, j->tw);
    put_rows(c, CO_SINK, j, j->sink);
    if (c->att_off) put_rows(c, CO_ATT_OFF, j, c->att_off + j->w0);   /* fixed for the run */
    for (int v = 0; v < VIS_N; v++) put_rows(c, CO_VIS + v, j, j->vis[v]);
    if (j->rec && !collect_write_failed(c)) {
        if (fdatasync(c->fd)) collect_write_error(c, -1, errno);
        else if (progress_write(c->state_dir, c->rank, c->nranks, c->run_id, j->rec)) collect_fail(c, err_get());
        else {
            __atomic_store_n(&c->saved_samples, j->rec->samples_done, __ATOMIC_RELEASE);
            __atomic_store_n(&c->saved_tokens, j->rec->tokens_done, __ATOMIC_RELEASE);
        }
    }
    if (j->rec) { free(j->rec->js); free(j->rec->gram); free(j->rec); }
    if (j->tok_set >= 0) collect_tok_release(c, j->tok_set);
    if (!j->borrowed) { free(j->stat); free(j->probe); }
    free(j->sink); free(j->ids); free(j->toks); free(j->run);
    free(j);
}

static void *dup_or_null(const void *p, size_t n)
{
    if (!p) return NULL;
    void *q = xmalloc(n ? n : 1);
    memcpy(q, p, n);
    return q;
}

static int cmp_int(const void *a, const void *b) { return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b); }

void collect_window_write(collect *c, const progress_rec *rec, const int *done, int q)
{
    const dataset *d = c->d;
    const int L = c->L, NH = c->NH, Lmax = c->Lmax, wn = c->wn, w0 = c->w0, k = c->o.topk;
    const size_t wstride = (size_t)wn * L * NH;
    collect_tok_sync(c);                               /* every batch's rows are in the window */
    window_job *j = xcalloc(1, sizeof *j);
    j->c = c; j->g0 = d->first + w0; j->w0 = w0; j->wn = wn; j->tok_set = -1;
    /* the rows: the whole window, or (a checkpoint) the done samples' rows as runs of adjacent
     * rows (a window's samples are computed longest first: a prefix of the rows for images) */
    int *rows = xmalloc((done ? (q ? q : 1) : 1) * sizeof(int));
    if (done) {
        for (int i = 0; i < q; i++) rows[i] = done[i] - w0;
        qsort(rows, q, sizeof(int), cmp_int);
    }
    j->run = xmalloc((done ? (q ? q : 1) : 1) * sizeof *j->run);
    if (!done) { j->run[0][0] = 0; j->run[0][1] = wn; j->nrun = 1; }
    for (int i = 0; done && i < q; i++) {
        if (j->nrun && j->run[j->nrun - 1][0] + j->run[j->nrun - 1][1] == rows[i]) j->run[j->nrun - 1][1]++;
        else { j->run[j->nrun][0] = rows[i]; j->run[j->nrun][1] = 1; j->nrun++; }
    }
    free(rows);
    /* sink rate: fraction of heads whose first-token importance exceeds eps (of the rows written:
     * the others may be filling in) */
    j->sink = xcalloc(wn ? wn : 1, sizeof(float));
    j->ids = xmalloc(((size_t)wn * Lmax + 1) * sizeof(int32_t));
    j->toks = c->names[CO_TOK] ? xcalloc((size_t)wn * Lmax + 1, c->tokmax) : NULL;
    int64_t nrows = 0;
    for (int r = 0; r < j->nrun; r++)
        for (int w = j->run[r][0]; w < j->run[r][0] + j->run[r][1]; w++) {
            int cnt = 0;
            for (int a = 0; a < L * NH; a++) cnt += c->stat[STAT_SINK * wstride + (size_t)w * L * NH + a] > c->o.sink_eps;
            j->sink[w] = (float)cnt / (L * NH);
            const int i = w0 + w;
            for (int t = 0; t < Lmax; t++) {
                int real = t < d->len[i];
                j->ids[(size_t)w * Lmax + t] = real ? d->ids[d->off[i] + t] : c->m->cfg.pad_token_id;
                if (j->toks && real) {
                    const char *s = tok_id_to_token(c->tok, d->ids[d->off[i] + t]);
                    if (s) memcpy(j->toks + ((size_t)w * Lmax + t) * c->tokmax, s, strlen(s));
                }
            }
            nrows++;
        }
    j->stat = c->stat; j->probe = c->probe; j->ki = c->ki; j->ti = c->ti; j->tw = c->tw;
    for (int v = 0; v < VIS_N; v++) j->vis[v] = c->vis[v];
    if (done) {   /* a checkpoint: the writer reads the done rows in place while the window goes
                   * on filling the others (no copy: it would double the window's memory); the
                   * window's own write, later in the same queue, hands the buffers over */
        j->borrowed = 1;
    } else {      /* the writer owns them now */
        j->tok_set = c->tok_cur;
        c->stat = c->probe = c->ki = c->tw = NULL;
        c->ti = NULL;
        c->tok_cur = -1;
        for (int v = 0; v < VIS_N; v++) c->vis[v] = NULL;
    }
    if (rec) {
        j->rec = xmalloc(sizeof *j->rec);
        *j->rec = *rec;
        j->rec->js = dup_or_null(rec->js, (size_t)rec->nsim * sizeof(double));
        j->rec->gram = dup_or_null(rec->gram, (size_t)rec->nsim * sizeof(double));
    }
    size_t bytes = (size_t)nrows * L * NH * (STAT_N * 4 + (j->ki ? (size_t)Lmax * 4 : 0) + (size_t)Lmax * k * 8) + (size_t)nrows * Lmax * (4 + c->tokmax);
    writer_submit(c->wr, window_job_run, j, bytes);
}

double collect_drain(collect *c)
{
    collect_tok_sync(c);
    /* waited: in the writer's queue, and for a free /attention buffer or per-token set (all were
     * being written) */
    const double waited = writer_finish(c->wr) + c->pool_wait_s;
    c->wr = NULL;
    if (!collect_write_failed(c) && c->fd >= 0 && fdatasync(c->fd)) collect_write_error(c, -1, errno);
    return waited;
}

int collect_write_similarity(collect *c, MPI_Comm comm)
{
    if (!c->names[CO_SIM_JS_SUM]) return 0;
    const int nh = c->L * c->NH;
    const size_t nn = (size_t)nh * nh;
    double *js = c->rank == 0 ? xmalloc(nn * sizeof(double)) : NULL, *gram = c->rank == 0 ? xmalloc(nn * sizeof(double)) : NULL;
    double rows = 0;
    CHECK_MPI(MPI_Reduce(c->sim.js_sum, js, (int)nn, MPI_DOUBLE, MPI_SUM, 0, comm));
    CHECK_MPI(MPI_Reduce(c->sim.gram, gram, (int)nn, MPI_DOUBLE, MPI_SUM, 0, comm));
    CHECK_MPI(MPI_Allreduce(&c->sim.n_rows, &rows, 1, MPI_DOUBLE, MPI_SUM, comm));
    int rc = 0;
    if (c->rank == 0) {
        double *mean = xmalloc(nn * sizeof(double)), *cosv = xmalloc(nn * sizeof(double));
        for (size_t e = 0; e < nn; e++) mean[e] = rows > 0 ? js[e] / rows : 0;
        for (int a = 0; a < nh; a++)
            for (int b = 0; b < nh; b++) {
                double den = sqrt(gram[(size_t)a * nh + a] * gram[(size_t)b * nh + b]);
                cosv[(size_t)a * nh + b] = den > 0 ? gram[(size_t)a * nh + b] / den : 0;
            }
        const double *v[4] = {js, mean, cosv, gram};
        for (int i = 0; i < 4 && !rc; i++)
            if (h5raw_write_rows(c->fd, &c->raw[CO_SIM_JS_SUM + i], 0, nh, v[i]))
                rc = err_set("%s: cannot write %s: %s", c->data_path, c->names[CO_SIM_JS_SUM + i], strerror(errno));
        if (!rc && fdatasync(c->fd)) rc = err_set("%s: cannot write: %s", c->data_path, strerror(errno));
        free(mean); free(cosv);
    }
    free(js); free(gram);
    return rc;
}

int collect_write_probe(collect *c, MPI_Comm comm)
{
    if (!c->o.probe) return 0;
    CHECK_MPI(MPI_Barrier(comm));     /* every rank's rows are on disk (collect_drain) */
    if (c->rank != 0) return 0;
    /* the rows read back in blocks of 4,096 samples (the sums in sample order, as one pass): the
     * memory does not grow with the run */
    const int64_t LH = (int64_t)c->L * c->NH, N = c->N, BLK = 4096;
    float *rows = xmalloc((size_t)((N < BLK ? N : BLK) * LH + 1) * sizeof(float)), *mean = xmalloc(LH * sizeof(float));
    double *acc = xmalloc(LH * sizeof(double));
    int rc = 0;
    for (int s = 0; s < PROBE_N && !rc; s++) {
        for (int64_t a = 0; a < LH; a++) acc[a] = 0;
        for (int64_t i0 = 0; i0 < N && !rc; i0 += BLK) {
            const int64_t n = N - i0 < BLK ? N - i0 : BLK;
            if (h5raw_read_rows(c->fd, &c->raw[CO_PROBE + s], i0, n, rows)) {
                rc = err_set("%s: cannot read back %s: %s", c->data_path, c->names[CO_PROBE + s], strerror(errno));
                break;
            }
            for (int64_t i = 0; i < n; i++)
                for (int64_t a = 0; a < LH; a++) acc[a] += rows[i * LH + a];
        }
        if (rc) break;
        for (int64_t a = 0; a < LH; a++) mean[a] = N > 0 ? (float)(acc[a] / N) : 0.0f;
        if (h5raw_write_rows(c->fd, &c->raw[CO_PROBE_MEAN + s], 0, c->L, mean))
            rc = err_set("%s: cannot write %s: %s", c->data_path, c->names[CO_PROBE_MEAN + s], strerror(errno));
    }
    if (!rc && fdatasync(c->fd)) rc = err_set("%s: cannot write: %s", c->data_path, strerror(errno));
    free(rows); free(mean); free(acc);
    return rc;
}
