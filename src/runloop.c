/* runloop.c — see runloop.h. */
#include "runloop.h"
#include "check.h"
#include "prefetch.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_len_desc(const void *a, const void *b, void *ctx)
{
    const int *len = ctx;
    int x = *(const int *)a, y = *(const int *)b;
    if (len[x] != len[y]) return len[y] - len[x];
    return x - y;
}

int run_batch_size(const int *order, const int *len, int s, int wn, int bmax)
{
    const int64_t T = len[order[s]];
    int64_t real = 0;
    int B = 0;
    /* longest first: each sample added brings more padding than the one before it */
    while (B < bmax && s + B < wn) {
        const int64_t l = len[order[s + B]], cells = (B + 1) * T;
        if (B > 0 && 10 * (cells - real - l) > cells) break;
        real += l;
        B++;
    }
    return B ? B : 1;
}

/* a batch sent to the backend (collect_batch_sent's set, or -1: none), its samples and valid tokens */
typedef struct { int set, B; int64_t real; } sent_batch;

/* b's results into the window (collect_batch_end); the samples done so far (*q, sorted positions
 * of the window) and the tokens grow by it */
static void end_batch(collect *col, sent_batch *b, int *q, int64_t *done_tok)
{
    collect_batch_end(col, b->set);
    *q += b->B;
    *done_tok += b->real;
    b->set = -1;
}

/* the progress record for "window [w0, w0+wn) done up to sorted position q" */
static progress_rec record(const collect *col, const dataset *d, int w0, int wn, int q, int64_t tokens_done)
{
    progress_rec r = {.first = d->first, .n = d->n, .wstart = q == wn ? w0 + wn : w0, .wn = q == wn ? 0 : wn, .q = q == wn ? 0 : q,
                      .samples_done = w0 + q, .tokens_done = tokens_done};
    if (col->o.similarity) {
        r.nsim = (int64_t)col->L * col->NH * col->L * col->NH;
        r.js = col->sim.js_sum;
        r.gram = col->sim.gram;
        r.n_rows = col->sim.n_rows;
    }
    return r;
}

/* window [w0, w0+wn), every batch of it ended, to the writer with its record */
static void close_window(collect *col, const dataset *d, int w0, int wn, int64_t done_tok)
{
    progress_rec r = record(col, d, w0, wn, wn, done_tok);
    collect_window_write(col, &r, NULL, 0);
}

/* the carried batch b (the last of window [w0, w0+wn), the others ended) ends; its window to the
 * writer unless writing has failed */
static void end_carried(collect *col, const dataset *d, sent_batch *b, int w0, int wn, int64_t *done_tok)
{
    int q = wn - b->B;
    end_batch(col, b, &q, done_tok);
    if (!collect_write_failed(col)) close_window(col, d, w0, wn, *done_tok);
}

int run_loop(run_loop_result *res, collect *col, model *m, const dataset *d, runctl *ctl, const run_loop_opts *lo,
             const progress_rec *restored)
{
    backend *be = m->be;
    const model_config *c = &m->cfg;
    const int L = c->n_layer, NH = c->n_head, Lmax = col->Lmax;
    int rank;
    MPI_Comm_rank(ctl->comm, &rank);
    memset(res, 0, sizeof *res);
    int *order = xmalloc((d->n ? d->n : 1) * sizeof(int));
    int32_t *bids = xmalloc((size_t)lo->batch * Lmax * sizeof(int32_t)), *btypes = xmalloc((size_t)lo->batch * Lmax * sizeof(int32_t));
    int *blen = xmalloc(lo->batch * sizeof(int));
    /* images: the batch's pixels produced (dataset_pixels_raw: decoded, resized and cropped, or
     * read; 8-bit where the source is, which the backend rescales and normalizes as it cuts the
     * patches) into host memory the backend copies from fastest (pinned for CUDA); every image of
     * a dataset has the same size, and this buffer is all the pixels a rank holds */
    const size_t per_image = d->px ? dataset_pixel_bytes(d) : 0;
    const float *lut = d->px ? dataset_pixel_lut(d) : NULL;
    void *bpx = d->px ? be->host_alloc(be, (size_t)lo->batch * per_image) : NULL;
    if (d->px && !bpx) check_fail(__FILE__, __LINE__, "host_alloc", "out of host memory for a batch of images");
    prefetch pf;
    if (bpx) prefetch_init(&pf, d, be, lo->batch, 1);
    int bcap = lo->batch, state = RUNCTL_RUNNING;
    int *next_win = bpx ? xmalloc((size_t)lo->batch * sizeof(int)) : NULL;   /* the read-ahead's guess past a window */
    int64_t done_tok = restored ? restored->tokens_done : 0;
    int w0 = restored ? (int)restored->wstart : 0;
    int64_t done_s = restored ? restored->samples_done : 0;
    double last_ckpt = util_now();
    /* ATTNSCOPE_PHASES=1: where rank 0's loop spent its wall time, printed at its end (a benchmark's
     * aid: the phases are timed without synchronising anything) */
    enum { PH_WINDOW, PH_UPLOADED, PH_PIXELS, PH_BEGIN, PH_FORWARD, PH_END, PH_POLL, PH_N };
    double ph[PH_N] = {0}, tp = util_now();
    /* ATTNSCOPE_NO_OVERLAP=1: every batch ends before the next is sent (for comparisons) */
    const int no_overlap = util_env_on("ATTNSCOPE_NO_OVERLAP");
#define PHASE(p) do { const double now_ = util_now(); ph[p] += now_ - tp; tp = now_; } while (0)
    /* One batch may be in flight (pend): batch i is sent to the backend before batch i-1's
     * results are taken, so that the device does not wait for the host between batches. A
     * window's last batch stays in flight while the next window's first is sent (carry: pend is
     * of window [cw0, cw0+cwn), whose other batches have ended); then it ends, its window goes
     * to the writer and the next window begins. Before, the device waited at every window's end
     * for the window's hand-over and the next batch's set-up: ~9% of a ViT-B/16 run at 17
     * windows of 16,384 images (BENCHMARKS.md run 37). The explicit path's batches, and the
     * last window's last, end at once. */
    sent_batch pend = {-1, 0, 0};
    int carry = 0, cw0 = 0, cwn = 0;
    for (int first = 1; w0 < d->n && state == RUNCTL_RUNNING; first = 0) {
        const int resume_part = first && restored && restored->q > 0;
        const int wn = resume_part ? (int)restored->wn : d->n - w0 < col->wcap ? d->n - w0 : col->wcap;
        if (!carry && collect_window_begin(col, w0, wn, resume_part)) {
            collect_fail(col, err_get());
            state = RUNCTL_FAILED;
            break;
        }
        PHASE(PH_WINDOW);
        for (int i = 0; i < wn; i++) order[i] = w0 + i;
        qsort_r(order, wn, sizeof(int), cmp_len_desc, d->len);
        /* s: the next batch's position in order; q: every batch before it has ended (its
         * results in the window) */
        int s = resume_part ? (int)restored->q : 0, q = s, stop = 0;
        while (s < wn) {
            const int T = d->len[order[s]];
            int B = lo->max_tokens / T;
            if (B > lo->batch) B = lo->batch;
            if (B > bcap) B = bcap;
            if (lo->similarity) {           /* the batch keeps every layer's maps: cap at 1 GiB */
                int64_t per = (int64_t)L * NH * T * T * 4, cap = ((int64_t)1 << 30) / per;
                if (B > cap) B = (int)cap;
            }
            if (B < 1) B = 1;
            /* from free backend memory (GPU): what the batch needs beyond what is already held */
            size_t avail = be->mem_free(be);
            if (avail) {
                const int fused = col->no_probs && model_fuses(m);
                const int tok = 8 * col->o.topk + (col->ki ? 4 : 0);   /* per-token outputs per layer, head, token */
                size_t held = model_batch_bytes(m, (int)(m->cap_BT / T), T, fused, tok);   /* activations already allocated */
                while (B > 1 && model_batch_bytes(m, B, T, fused, tok) > held + avail * 9 / 10) B /= 2;
            }
            B = run_batch_size(order, d->len, s, wn, B);
            /* a retry below with B/2 uses the first half of these pixels; a file that fails to
             * decode now fails the run as a failed write does (one line naming it; the work
             * checkpointed so far stays) */
            /* the read-ahead's guess: the next images of the window, as many as this batch */
            /* (past the window's end: the next window's first images, which is its order too, every
             * image being of one size) */
            int n_next = !bpx || s + B >= wn ? 0 : wn - s - B < B ? wn - s - B : B;
            const int *next = order + s + B;
            if (bpx && s + B >= wn && w0 + wn < d->n) {
                const int w1 = w0 + wn, left = d->n - w1 < col->wcap ? d->n - w1 : col->wcap;
                n_next = left < B ? left : B;
                for (int i = 0; i < n_next; i++) next_win[i] = w1 + i;
                next = next_win;
            }
            if (bpx) model_inputs_wait(m);   /* the batch in flight has its pixels on the device */
            PHASE(PH_UPLOADED);
            if (bpx && prefetch_batch(&pf, &bpx, order + s, B, next, n_next)) {
                if (carry) {                   /* the window before is complete: it stays (written before the failure) */
                    end_carried(col, d, &pend, cw0, cwn, &done_tok);
                    carry = 0;
                    done_s = cw0 + cwn;
                }
                collect_fail_input(col, err_get());
                state = RUNCTL_FAILED;
                break;
            }
            PHASE(PH_PIXELS);
            for (;;) {
                for (int b = 0; b < B; b++) {
                    int i = order[s + b];
                    blen[b] = d->len[i];
                    for (int t = 0; t < T; t++) {
                        int real = t < d->len[i];
                        bids[b * T + t] = real ? d->ids[d->off[i] + t] : c->pad_token_id;
                        btypes[b * T + t] = real && d->types ? d->types[d->off[i] + t] : 0;
                    }
                }
                collect_batch_begin(col, order + s, B, T);
                PHASE(PH_BEGIN);
                if (bpx) {
                    if (!model_forward_pixels(m, bpx, lut, B, d->height, d->width, &col->req, NULL)) break;
                } else if (!model_forward(m, bids, btypes, blen, B, T, &col->req, NULL)) {
                    break;
                }
                if (B == 1) check_fail(__FILE__, __LINE__, "model_forward", err_get());   /* one sample does not fit */
                fprintf(stderr, "[rank %d] %s: retrying with %d samples per batch\n", rank, err_get(), B / 2);
                B /= 2;
                bcap = B;                 /* the error is not sticky; later batches start no larger */
            }
            PHASE(PH_FORWARD);
            sent_batch now = {collect_batch_sent(col, B, T, w0), B, 0};
            for (int b = 0; b < B; b++) now.real += d->len[order[s + b]];
            res->tokens_computed += now.real;
            res->tokens_padded += (int64_t)B * T - now.real;
            s += B;
            /* the batch before, while this one computes (the window before's last: that window
             * complete, then this one begins); this one at once where it cannot wait */
            if (carry) {
                end_carried(col, d, &pend, cw0, cwn, &done_tok);
                last_ckpt = util_now();
                carry = 0;
                if (collect_window_begin(col, w0, wn, 0)) {   /* (nothing to read back: it cannot fail) */
                    collect_fail(col, err_get());
                    state = RUNCTL_FAILED;
                    break;
                }
            }
            if (pend.set >= 0) end_batch(col, &pend, &q, &done_tok);
            pend = now;
            const int keep = col->req.fused && !no_overlap && (s < wn || w0 + wn < d->n);
            if (!keep) end_batch(col, &pend, &q, &done_tok);
            PHASE(PH_END);
            stop = runctl_poll(ctl, w0 + q, done_tok);
            if (stop && pend.set >= 0) end_batch(col, &pend, &q, &done_tok);   /* (the batch in flight is kept) */
            done_s = w0 + q;
            if (collect_write_failed(col)) { state = RUNCTL_FAILED; break; }
            const double now_s = util_now();
            if (q < wn && (stop || now_s - last_ckpt >= lo->checkpoint_every)) {
                progress_rec r = record(col, d, w0, wn, q, done_tok);
                collect_window_write(col, &r, order, q);
                last_ckpt = now_s;
            }
            PHASE(PH_POLL);
            if (stop) { state = RUNCTL_STOPPED; break; }
        }
        if (pend.set >= 0 && state == RUNCTL_RUNNING) {   /* its last batch in flight: carried */
            carry = 1;
            cw0 = w0;
            cwn = wn;
            w0 += wn;
        } else if (q == wn) {                              /* the window is complete */
            close_window(col, d, w0, wn, done_tok);
            last_ckpt = util_now();
            w0 += wn;
        }
        PHASE(PH_WINDOW);
    }
    if (bpx) prefetch_free(&pf);   /* (its worker's time complete) */
    if (rank == 0 && getenv("ATTNSCOPE_PHASES")) {
        double all = 0;
        for (int p = 0; p < PH_N; p++) all += ph[p];
        /* (the helper is waited for at a batch's end and at a window's: its time is part of both) */
        fprintf(stderr, "[phases] loop %.3f s: windows %.3f, the last pixels' upload %.3f, pixels %.3f (of it waiting for "
                        "the read-ahead %.3f, reading in the loop %.3f; the read-ahead's own reading %.3f), batch set-up "
                        "%.3f, forward %.3f, batch end %.3f, poll+checkpoints %.3f; waiting for the backend (in forwards and batch ends) %.3f; waiting for "
                        "the helper (in batch ends and windows) %.3f\n",
                all, ph[PH_WINDOW], ph[PH_UPLOADED], ph[PH_PIXELS], bpx ? pf.wait_s : 0.0, bpx ? pf.read_s : 0.0,
                bpx ? pf.busy_s : 0.0, ph[PH_BEGIN],
                ph[PH_FORWARD], ph[PH_END], ph[PH_POLL], m->wait_s + col->gpu_wait_s, col->sc_wait_s);
    }
#undef PHASE
    res->samples_done = done_s;
    if (state == RUNCTL_RUNNING || (state == RUNCTL_STOPPED && w0 >= d->n)) state = RUNCTL_DONE;
    res->tokens_done = done_tok;
    free(order); free(bids); free(btypes); free(blen); free(next_win);
    if (bpx) be->host_free(be, bpx);
    return state;
}
