/* collect.c — see collect.h. */
#include "collect.h"
#include "check.h"
#include "util.h"
#include <math.h>
#include <unistd.h>

static void *scatter_main(void *arg);

void collect_init(collect *c, const model *m, const dataset *d, const tokenizer *tok,
                  const collect_opts *o, int64_t N, int Lmax, int tokmax)
{
    memset(c, 0, sizeof *c);
    const model_config *mc = &m->cfg;
    c->m = m; c->d = d; c->tok = tok; c->o = *o; c->N = N;
    c->L = mc->n_layer; c->NH = mc->n_head; c->Lmax = Lmax; c->tokmax = tokmax;
    c->sp = (stats_params){.causal = mc->causal, .window = o->window, .topk = o->topk};
    c->fd = -1;
    const int L = c->L, NH = c->NH, k = o->topk;

    /* token-class flags per vocabulary id */
    c->sep_of_id = xcalloc(mc->vocab > 0 ? mc->vocab : 1, 1);      /* (images: vocab 0, every id 0) */
    c->punct_of_id = xcalloc(mc->vocab > 0 ? mc->vocab : 1, 1);
    /* the end-of-sequence class: the post-processor's last token ([SEP]), else the EOS of a decoder */
    c->sep_id = tok ? (tok_sep_id(tok) >= 0 ? tok_sep_id(tok) : tok_eos_id(tok)) : mc->sep_token_id;
    if (c->sep_id >= 0 && c->sep_id < mc->vocab) c->sep_of_id[c->sep_id] = 1;
    if (tok)
        for (int id = 0; id < tok_vocab_size(tok) && id < mc->vocab; id++)   /* from the surface: "##," and "Ġ," alike */
            c->punct_of_id[id] = (tok_id_class(tok, id) & TOK_PUNCT) != 0;

    /* the datasets of this run's output */
    static const char *const fixed[CO_PROBE] = {
        "/samples/length", "/samples/length_untruncated", "/samples/source_row", "/samples/input_ids", "/samples/tokens",
        "/stats/key_importance", "/stats/topk_index", "/stats/topk_weight", "/stats/sink_rate", "/attention",
        "/attention_offset", "/summary/head_similarity_js_sum", "/summary/head_similarity_js_mean", "/summary/head_similarity_cos",
        "/summary/head_similarity_gram"};
    const int present[CO_PROBE] = {1, 1, 1, 1, tok != NULL, o->key_importance, k > 0, k > 0, 1, o->save_attention,
                                  o->save_attention, o->similarity, o->similarity, o->similarity, o->similarity};
    for (int i = 0; i < CO_PROBE; i++) c->names[i] = present[i] ? fixed[i] : NULL;
    for (int s = 0; s < PROBE_N && o->probe; s++) {
        snprintf(c->probe_names[s], sizeof c->probe_names[s], "/probe/%s_per_sample", probe_names[s]);
        snprintf(c->probe_names[PROBE_N + s], sizeof c->probe_names[PROBE_N + s], "/probe/%s", probe_names[s]);
        c->names[CO_PROBE + s] = c->probe_names[s];
        c->names[CO_PROBE_MEAN + s] = c->probe_names[PROBE_N + s];
    }
    for (int s = 0; s < STAT_N; s++) {
        snprintf(c->stat_names[s], sizeof c->stat_names[s], "/stats/%s", stats_names[s]);
        c->names[CO_STAT + s] = c->stat_names[s];
    }
    if (o->save_attention) {
        /* /attention without padding: sample i's block [L, NH, n_i, n_i] starts at element att_off[i],
         * after every earlier sample's, those of the ranks before this one included */
        const int64_t LH = (int64_t)L * NH;
        int64_t mine = 0, before = 0;
        c->att_off = xmalloc((d->n + 1) * sizeof(int64_t));
        for (int i = 0; i < d->n; i++) { c->att_off[i] = mine; mine += LH * d->len[i] * d->len[i]; }
        CHECK_MPI(MPI_Exscan(&mine, &before, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD));
        CHECK_MPI(MPI_Allreduce(&mine, &c->att_total, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD));
        if (d->first == 0) before = 0;     /* no sample before (MPI_Exscan leaves rank 0's result undefined) */
        for (int i = 0; i < d->n; i++) c->att_off[i] += before;
        /* a batch's blocks, packed one after another, fit in batch·NH·Lmax² elements */
        c->pool_bytes = (size_t)o->batch * NH * Lmax * Lmax * (o->att_f16 ? 2 : 4);
        c->pool_cap = (int)(((size_t)1 << 30) / c->pool_bytes);
        if (c->pool_cap < 2) c->pool_cap = 2;
        if (c->pool_cap > 64) c->pool_cap = 64;
        c->pool = xcalloc(c->pool_cap, sizeof(void *));
    }
    collect_vision_init(c);
    /* top-k and key importance come from the fused kernel too, the vision outputs where the
     * backend takes them (collect_vision.c); /attention, the head similarity and the probe need the
     * probabilities */
    c->no_probs = !o->save_attention && !o->similarity && !o->probe && (!c->names[CO_VIS] || collect_vision_fuses(c)) &&
                  k <= ATTN_FUSED_TOPK_MAX;
    pthread_mutex_init(&c->pool_mu, NULL);
    pthread_cond_init(&c->pool_cv, NULL);
    c->wr = writer_start((size_t)1 << 30, 1);
    if (o->similarity) stats_sim_init(&c->sim, L * NH);

    /* window capacity: about 256 MiB of per-sample outputs */
    size_t per = (size_t)L * NH * ((STAT_N + PROBE_N) * 4 + (size_t)Lmax * (4 + 8 * (size_t)k));
    for (int v = 0; v < VIS_N; v++) per += c->vis_row[v] * 4;
    size_t cap = ((size_t)256 << 20) / per;
    c->wcap = cap < 1 ? 1 : cap > 4096 ? 4096 : (int)cap;
    /* test hook: ATTNSCOPE_TEST_WINDOW caps the window, so that small inputs span several windows */
    const char *tw = getenv("ATTNSCOPE_TEST_WINDOW");
    if (tw && atoi(tw) > 0 && atoi(tw) < c->wcap) c->wcap = atoi(tw);
    if (o->window_multiple > 1 && c->wcap > o->window_multiple) c->wcap -= c->wcap % o->window_multiple;
    /* the per-token sets (none without per-token outputs): one being filled, one being written,
     * one queued; a window waits for one when the disk is slower than the compute */
    pthread_cond_init(&c->tok_cv, NULL);
    c->tok_cur = -1;
    const size_t set_bytes = (size_t)c->wcap * L * NH * Lmax * ((o->key_importance ? 4 : 0) + 8 * (size_t)k);
    c->tok_cap = set_bytes || c->names[CO_VIS] ? COLLECT_TOK_SETS : 0;
    pthread_mutex_init(&c->sc_mu, NULL);
    pthread_cond_init(&c->sc_cv, NULL);
    if ((c->no_probs && set_bytes) || c->names[CO_VIS]) c->sc_on = pthread_create(&c->sc_thread, NULL, scatter_main, c) == 0;
}

void collect_restore_similarity(collect *c, const progress_rec *p)
{
    if (!c->o.similarity || p->nsim != (int64_t)c->L * c->NH * c->L * c->NH) return;
    memcpy(c->sim.js_sum, p->js, (size_t)p->nsim * sizeof(double));
    memcpy(c->sim.gram, p->gram, (size_t)p->nsim * sizeof(double));
    c->sim.n_rows = p->n_rows;
}

/* A free per-token set from the pool (allocated when fewer than tok_cap exist), waiting while the
 * writer holds every one; its index. */
static int tok_get(collect *c)
{
    const size_t heads = (size_t)c->wcap * c->L * c->NH, k = c->o.topk;
    pthread_mutex_lock(&c->pool_mu);
    for (;;) {
        for (int i = 0; i < c->tok_n; i++)
            if (!c->tok_busy[i]) { c->tok_busy[i] = 1; pthread_mutex_unlock(&c->pool_mu); return i; }
        if (c->tok_n < c->tok_cap) {
            const int i = c->tok_n++;
            c->tok_busy[i] = 1;
            pthread_mutex_unlock(&c->pool_mu);
            collect_tokbuf *t = &c->tok_set[i];
            *t = (collect_tokbuf){c->names[CO_KI] ? xmalloc(heads * c->Lmax * sizeof(float)) : NULL,
                                  k ? xmalloc(heads * c->Lmax * k * sizeof(int32_t)) : NULL,
                                  k ? xmalloc(heads * c->Lmax * k * sizeof(float)) : NULL, {NULL}};
            for (int v = 0; v < VIS_N; v++)
                if (c->names[CO_VIS + v]) t->vis[v] = xmalloc((size_t)c->wcap * c->vis_row[v] * sizeof(float));
            return i;
        }
        const double t0 = util_now();                  /* every set is still being written */
        pthread_cond_wait(&c->tok_cv, &c->pool_mu);
        c->pool_wait_s += util_now() - t0;
    }
}

void collect_tok_release(collect *c, int i)
{
    pthread_mutex_lock(&c->pool_mu);
    c->tok_busy[i] = 0;
    pthread_cond_signal(&c->tok_cv);
    pthread_mutex_unlock(&c->pool_mu);
}

/* A window's buffers: the per-token ones from the pool, the others new (the writer frees them
 * after their write). */
static void window_alloc(collect *c)
{
    const size_t heads = (size_t)c->wcap * c->L * c->NH;
    c->stat = xmalloc(STAT_N * heads * sizeof(float));
    c->probe = c->o.probe ? xcalloc(PROBE_N * heads, sizeof(float)) : NULL;
    c->tok_cur = c->tok_cap ? tok_get(c) : -1;
    const collect_tokbuf z = {0}, *t = c->tok_cur >= 0 ? &c->tok_set[c->tok_cur] : &z;
    c->ki = t->ki; c->ti = t->ti; c->tw = t->tw;
    for (int v = 0; v < VIS_N; v++) c->vis[v] = t->vis[v];
}

int collect_window_begin(collect *c, int w0, int wn, int resume)
{
    collect_tok_sync(c);
    c->w0 = w0;
    c->wn = wn;
    window_alloc(c);
    const size_t heads = (size_t)wn * c->L * c->NH;
    const int64_t g0 = c->d->first + w0;
    collect_vision_window(c, resume, g0);
    if (resume) {   /* part of the window is done: its rows come back from the file */
        int rc = 0;
        for (int s = 0; s < STAT_N && !rc; s++) rc = h5raw_read_rows(c->fd, &c->raw[CO_STAT + s], g0, wn, c->stat + s * heads);
        for (int s = 0; s < PROBE_N && c->probe && !rc; s++)
            rc = h5raw_read_rows(c->fd, &c->raw[CO_PROBE + s], g0, wn, c->probe + s * heads);
        if (!rc) rc = h5raw_read_rows(c->fd, &c->raw[CO_KI], g0, wn, c->ki);
        if (!rc) rc = h5raw_read_rows(c->fd, &c->raw[CO_TI], g0, wn, c->ti);
        if (!rc) rc = h5raw_read_rows(c->fd, &c->raw[CO_TW], g0, wn, c->tw);
        return rc ? err_set("%s: cannot read back the interrupted window: %s", c->data_path, strerror(errno)) : 0;
    }
    /* the per-token rows need no fill: every sample of the window is in a batch, whose scatter
     * writes its rows whole, padding beyond T included (a checkpoint in the middle of the window
     * writes the done samples' rows only; a resume reads the others back as the file holds them
     * and computes them again) */
    memset(c->stat, 0, STAT_N * heads * sizeof(float));
    return 0;
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

/* one layer of a batch for /attention: buf holds the B samples' packed [NH, n_b, n_b] blocks one
 * after another; block b goes to byte at[b] of the dataset (fixed by the sample and the layer) */
typedef struct { collect *c; void *buf; int B; int64_t *at; size_t *bytes; } att_job;

/* writer thread: one (sample, layer) block per sample of the batch */
static void att_job_run(void *ctx)
{
    att_job *j = ctx;
    collect *c = j->c;
    size_t o = 0;
    for (int b = 0; b < j->B && !collect_write_failed(c); o += j->bytes[b], b++)
        if (h5raw_write(c->fd, &c->raw[CO_ATT], j->at[b], j->bytes[b], (char *)j->buf + o))
            collect_write_error(c, CO_ATT, errno);
    pool_put(c, j->buf);
    free(j->at); free(j->bytes);
    free(j);
}

/* the fused path's per-token outputs of a batch (page-locked host memory) */
void *collect_grow_host(collect *c, void *p, size_t *cap, size_t n, size_t es, const char *what)
{
    if (n <= *cap) return p;
    backend *be = c->m->be;
    if (p) be->host_free(be, p);
    if (!(p = be->host_alloc(be, n * es))) check_fail(__FILE__, __LINE__, "collect", what);
    *cap = n;
    return p;
}

static collect_bset *set_ready(collect *c, int f)
{
    /* the helper may still scatter this set's previous batch only when the loop has not ended it
     * since (the run loop's order makes this rare): wait for it */
    if (c->sc_job.set == f && c->sc_job.B) collect_tok_sync(c);
    return &c->bset[f];
}

static void collect_free_sets(collect *c)
{
    backend *be = c->m->be;
    for (int f = 0; f < COLLECT_SETS; f++) {
        collect_bset *s = &c->bset[f];
        void *bufs[7] = {s->stat, s->ti, s->tw, s->ki, s->vis, s->norm, s->roll};
        for (int i = 0; i < 7; i++)
            if (bufs[i]) be->host_free(be, bufs[i]);
        free(s->idx);
        memset(s, 0, sizeof *s);
    }
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
    const size_t fs = (size_t)c->L * B * c->NH * STAT_N, ft = (size_t)c->L * B * c->NH * T;
    const int k = c->o.topk, f = c->fcur;
    collect_bset *st = set_ready(c, f);
    if (c->no_probs) {
        /* page-locked on a GPU: the downloads run at the bus's speed (a few KB per token) and
         * without waiting */
        st->stat = collect_grow_host(c, st->stat, &st->stat_cap, fs, sizeof(float), "out of host memory for a batch's scalars");
        if (ft > st->tok_cap && (k || c->ki)) {
            size_t cap = 0;
            if (k) st->ti = collect_grow_host(c, st->ti, &cap, ft * k, sizeof(int32_t), "out of host memory for a batch's top-k");
            cap = 0;
            if (k) st->tw = collect_grow_host(c, st->tw, &cap, ft * k, sizeof(float), "out of host memory for a batch's top-k");
            cap = 0;
            if (c->ki) st->ki = collect_grow_host(c, st->ki, &cap, ft, sizeof(float), "out of host memory for a batch's key importance");
            st->tok_cap = ft;
        }
    }
    c->req = (attn_request){.capture = collect_capture, .user = c, .no_probs = c->no_probs,
                            .window = c->o.window, .tokcls = c->btokcls, .stats = st->stat,
                            .topk = k, .topk_idx = k ? st->ti : NULL, .topk_w = k ? st->tw : NULL,
                            .key_imp = c->ki ? st->ki : NULL, .defer = 1};
    collect_vision_request(c, &c->req, B, T);
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

/* one layer's per-token outputs of the batch (local samples idx[B]), ki (B, NH, T) and ti, tw
 * (B, NH, T, k), into rows of Lmax of the window buffers wki, wti, wtw of the window starting at
 * w0: the T rows copied, the rest the padding's 0 (ki, tw) and -1 (ti) */
static void scatter_tokens(const collect *c, const int *idx, int w0, float *wki, int32_t *wti, float *wtw,
                           int layer, int B, int T, const float *ki, const int32_t *ti, const float *tw)
{
    const int L = c->L, NH = c->NH, Lmax = c->Lmax, k = c->o.topk;
    const size_t pad = (size_t)(Lmax - T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const size_t o = ((size_t)(idx[b] - w0) * L + layer) * NH + h, src = (size_t)b * NH + h;
            if (wki) {
                memcpy(wki + o * Lmax, ki + src * T, (size_t)T * sizeof(float));
                memset(wki + o * Lmax + T, 0, pad * sizeof(float));
            }
            if (k) {
                memcpy(wti + o * Lmax * k, ti + src * T * k, (size_t)T * k * sizeof(int32_t));
                memset(wti + (o * Lmax + T) * k, 0xff, pad * k * sizeof(int32_t));    /* -1 */
                memcpy(wtw + o * Lmax * k, tw + src * T * k, (size_t)T * k * sizeof(float));
                memset(wtw + (o * Lmax + T) * k, 0, pad * k * sizeof(float));
            }
        }
}

/* every layer of the fused path's per-token outputs in set s of a batch into the window */
static void scatter_fused(const collect *c, int s, const int *idx, int w0, float *wki, int32_t *wti, float *wtw, int B, int T)
{
    const collect_bset *st = &c->bset[s];
    for (int l = 0; l < c->L; l++) {
        const size_t ft = (size_t)l * B * c->NH * T, k = c->o.topk;
        scatter_tokens(c, idx, w0, wki, wti, wtw, l, B, T, st->ki ? st->ki + ft : NULL, st->ti ? st->ti + ft * k : NULL,
                       st->tw ? st->tw + ft * k : NULL);
    }
}

/* one batch's scatter (collect.h collect_scatter_job) */
static void run_job(collect *c, const collect_scatter_job *j)
{
    if (j->tok) scatter_fused(c, j->set, j->idx, j->w0, j->ki, j->ti, j->tw, j->B, j->T);
    if (j->vis) collect_vision_scatter(c, j);
}

/* the helper thread: one batch's scatter (sc_job) at a time, while the main thread runs the next
 * forward; it touches only the job's set and the window rows of the job's samples */
static void *scatter_main(void *arg)
{
    collect *c = arg;
    pthread_mutex_lock(&c->sc_mu);
    for (;;) {
        while (!c->sc_busy && !c->sc_stop) pthread_cond_wait(&c->sc_cv, &c->sc_mu);
        if (!c->sc_busy) break;
        pthread_mutex_unlock(&c->sc_mu);
        run_job(c, &c->sc_job);
        pthread_mutex_lock(&c->sc_mu);
        c->sc_busy = 0;
        pthread_cond_broadcast(&c->sc_cv);
    }
    pthread_mutex_unlock(&c->sc_mu);
    return NULL;
}

void collect_tok_sync(collect *c)
{
    if (!c->sc_on) return;
    const double t0 = util_now();
    pthread_mutex_lock(&c->sc_mu);
    while (c->sc_busy) pthread_cond_wait(&c->sc_cv, &c->sc_mu);
    pthread_mutex_unlock(&c->sc_mu);
    c->sc_wait_s += util_now() - t0;
}

/* one layer's per-head scalars of the batch (local samples idx[B]), bstat (B, NH, STAT_N), into the window */
static void scatter_scalars(collect *c, const int *idx, int layer, int B, const float *bstat)
{
    const int L = c->L, NH = c->NH;
    const size_t wstride = (size_t)c->wn * L * NH;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const size_t o = ((size_t)(idx[b] - c->w0) * L + layer) * NH + h, src = (size_t)b * NH + h;
            for (int s = 0; s < STAT_N; s++) {
                const float v = bstat[src * STAT_N + s];
                c->n_nonfinite += !isfinite(v);
                c->stat[s * wstride + o] = v;
            }
        }
}

void collect_capture(void *user, int layer, const float *probs, int B, int T)
{
    collect *c = user;
    const int L = c->L, NH = c->NH, k = c->o.topk;
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
    stats_params sp = c->sp;                           /* this layer's sliding window decides the visible keys */
    sp.sliding_window = config_window(&c->m->cfg, layer);
    be->attn_stats(be, probs, len, c->bsep, c->bpunct, B, NH, T, &sp, c->bstat, c->ki ? c->bki : NULL,
                   k ? c->bti : NULL, k ? c->btw : NULL);
    scatter_scalars(c, c->batch_idx, layer, B, c->bstat);
    scatter_tokens(c, c->batch_idx, c->w0, c->ki, c->ti, c->tw, layer, B, T, c->bki, c->bti, c->btw);
    if (c->probe) {
        /* the probe's scores on the host, from a packed copy (on the GPU the probabilities are
         * in device memory; the probe's sequences are short) */
        const size_t need = bh * TT;
        if (need > c->bprobe_cap) { free(c->bprobe); c->bprobe = xmalloc(need * sizeof(float)); c->bprobe_cap = need; }
        be->attn_pack(be, c->bprobe, probs, len, B, NH, T, T, 0);
        const int b0 = c->o.probe->bos >= 0, K = c->o.probe->K;
        const size_t wstride = (size_t)c->wn * L * NH;
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++) {
                float sc[PROBE_N];
                probe_head(c->bprobe + ((size_t)b * NH + h) * TT, K, b0, sc);
                const size_t o = ((size_t)(c->batch_idx[b] - c->w0) * L + layer) * NH + h;
                for (int s = 0; s < PROBE_N; s++) c->probe[s * wstride + o] = sc[s];
            }
    }
    collect_vision_capture(c, layer, probs, B, T);     /* where the probabilities are (images: no padding) */
    if (c->names[CO_ATT]) {
        /* each sample packed to its own n × n (and converted to half) where the probabilities are,
         * written by the writer. One pack per run of consecutive samples of one length n (a batch
         * is filled by length, so runs are common): Lmax = n makes their (k, NH, n, n) output the
         * k blocks one after another, and saves a launch and two copies per sample on the GPU */
        const size_t es = c->o.att_f16 ? 2 : 4;
        att_job *j = xmalloc(sizeof *j);
        *j = (att_job){c, pool_get(c), B, xmalloc(B * sizeof(int64_t)), xmalloc(B * sizeof(size_t))};
        size_t o = 0;
        for (int b = 0, e; b < B; b = e) {
            const int64_t n = len[b];
            for (e = b + 1; e < B && len[e] == len[b]; e++) {}
            be->attn_pack(be, (char *)j->buf + o, probs + (size_t)b * NH * TT, len + b, e - b, NH, T, len[b], c->o.att_f16);
            for (int s = b; s < e; s++) {
                j->at[s] = (c->att_off[c->batch_idx[s]] + (int64_t)layer * NH * n * n) * (int64_t)es;
                j->bytes[s] = (size_t)NH * n * n * es;
                o += j->bytes[s];
            }
        }
        writer_submit(c->wr, att_job_run, j, o);
    }
    free(len);
    if (!c->o.similarity) return;
    /* keep this layer's maps for the batch's head similarity: (B, NH, T, T) into (B, L, NH, T, T) */
    be->copy_rows(be, c->sim_maps + (size_t)layer * NH * TT, (size_t)L * NH * TT * sizeof(float), probs,
                  (size_t)NH * TT * sizeof(float), (size_t)NH * TT * sizeof(float), (size_t)B);
}

int collect_batch_sent(collect *c, int B, int T, int w0)
{
    const int f = c->fcur;
    collect_bset *st = &c->bset[f];
    collect_vision_batch_sent(c, B, T);
    backend_fence(c->m->be, COLLECT_FENCE0 + f);
    if (B > st->idx_cap) { st->idx = xrealloc(st->idx, B * sizeof(int)); st->idx_cap = B; }
    memcpy(st->idx, c->batch_idx, B * sizeof(int));
    st->B = B; st->T = T; st->w0 = w0; st->fused = c->req.fused;
    c->fcur = (f + 1) % COLLECT_SETS;
    return f;
}

void collect_batch_end(collect *c, int f)
{
    collect_bset *st = &c->bset[f];
    const int B = st->B, T = st->T;
    if (st->w0 != c->w0) check_fail(__FILE__, __LINE__, "collect_batch_end", "a batch ended outside its window");
    const double t0 = util_now();
    backend_fence_wait(c->m->be, COLLECT_FENCE0 + f);
    c->gpu_wait_s += util_now() - t0;
    if (st->fused)
        for (int l = 0; l < c->L; l++) scatter_scalars(c, st->idx, l, B, st->stat + (size_t)l * B * c->NH * STAT_N);
    const int tok = st->fused && (c->ki || c->o.topk), vis = c->vis[VIS_DIST] ? 1 + st->fused : 0;
    if (tok || vis) {
        collect_tok_sync(c);                           /* the helper is done with the previous batch */
        collect_scatter_job *j = &c->sc_job;
        *j = (collect_scatter_job){.B = B, .T = T, .set = f, .w0 = st->w0, .tok = tok, .vis = vis, .idx = st->idx,
                                   .ki = c->ki, .ti = c->ti, .tw = c->tw};
        if (!c->sc_on) {
            run_job(c, j);
        } else {   /* on the helper while the next batches run in the other sets */
            pthread_mutex_lock(&c->sc_mu);
            c->sc_busy = 1;
            pthread_cond_broadcast(&c->sc_cv);
            pthread_mutex_unlock(&c->sc_mu);
        }
    }
    if (!c->o.similarity) return;
    int *len = xmalloc(B * sizeof(int));
    for (int b = 0; b < B; b++) { len[b] = c->d->len[st->idx[b]]; c->sim.n_rows += len[b]; }
    c->m->be->head_sim(c->m->be, c->sim_maps, len, B, c->L * c->NH, T, c->sim.js_sum, c->sim.gram);
    free(len);
}


void collect_free(collect *c)
{
    if (c->sc_on) {
        pthread_mutex_lock(&c->sc_mu);
        c->sc_stop = 1;
        pthread_cond_broadcast(&c->sc_cv);
        pthread_mutex_unlock(&c->sc_mu);
        pthread_join(c->sc_thread, NULL);              /* after its last job */
        c->sc_on = 0;
    }
    if (c->wr) writer_finish(c->wr);
    if (c->fd >= 0) close(c->fd);
    if (c->o.similarity) stats_sim_free(&c->sim);
    collect_vision_free(c);
    free(c->probe); free(c->bprobe);
    free(c->sep_of_id); free(c->punct_of_id); free(c->stat);
    for (int i = 0; i < c->tok_n; i++) {
        collect_tokbuf *t = &c->tok_set[i];
        free(t->ki); free(t->ti); free(t->tw);
        for (int v = 0; v < VIS_N; v++) free(t->vis[v]);
    }
    free(c->bsep); free(c->bpunct); free(c->btokcls);
    collect_free_sets(c);
    if (c->sim_maps) c->m->be->free(c->m->be, c->sim_maps);
    free(c->bstat); free(c->bki); free(c->bti); free(c->btw);
    for (int i = 0; i < c->pool_free; i++) c->m->be->host_free(c->m->be, c->pool[i]);
    free(c->pool);
    free(c->att_off);
    pthread_mutex_destroy(&c->pool_mu);
    pthread_cond_destroy(&c->pool_cv);
    pthread_cond_destroy(&c->tok_cv);
    pthread_mutex_destroy(&c->sc_mu);
    pthread_cond_destroy(&c->sc_cv);
}
