/* prefetch.c — see prefetch.h. One worker thread for the run's life: a thread made per batch
 * also made a new OpenMP team per batch (libgomp keeps a team per thread that starts one). With
 * the worker a ViT-B batch of 128 8-bit images takes it 1.3 ms, and the loop no longer waits for
 * it (BENCHMARKS.md run 30). */
#include "prefetch.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int produce(const prefetch *p, const int *idx, int n, void *out)
{
    return p->raw ? dataset_pixels_raw(p->d, idx, n, out) : dataset_pixels(p->d, idx, n, out);
}

/* the worker: waits for a guess (job), produces it into buf, says it is done; until quit */
static void *prefetch_main(void *arg)
{
    prefetch *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->job && !p->quit) pthread_cond_wait(&p->cv, &p->mu);
        if (p->quit) break;
        pthread_mutex_unlock(&p->mu);
        const double t0 = util_now();
        const int rc = produce(p, p->idx, p->n, p->buf);
        if (rc) snprintf(p->msg, sizeof p->msg, "%s", err_get());   /* err_get is per thread */
        const double t = util_now() - t0;
        pthread_mutex_lock(&p->mu);
        p->rc = rc;
        p->busy_s += t;
        p->job = 0;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void prefetch_wait(prefetch *p)
{
    if (!p->buf) return;
    pthread_mutex_lock(&p->mu);
    while (p->job) pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void prefetch_init(prefetch *p, const dataset *d, backend *be, int cap, int raw)
{
    memset(p, 0, sizeof *p);
    p->d = d;
    p->be = be;
    p->raw = raw;
    p->per_image = raw ? dataset_pixel_bytes(d) : (size_t)d->channels * d->height * d->width * sizeof(float);
    const char *pe = getenv("ATTNSCOPE_PREFETCH");
    if (!dataset_pixels_threadsafe(d) || !(pe && *pe ? strcmp(pe, "0") : strcmp(be->name, "cpu"))) return;
    p->buf = be->host_alloc(be, (size_t)cap * p->per_image);
    if (!p->buf) return;           /* no memory for it: every batch read on the spot */
    p->idx = xmalloc((size_t)cap * sizeof(int));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (pthread_create(&p->th, NULL, prefetch_main, p)) {   /* no worker: every batch read on the spot */
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        be->host_free(be, p->buf);
        free(p->idx);
        p->buf = NULL;
        p->idx = NULL;
    }
}

int prefetch_batch(prefetch *p, void **bpx, const int *idx, int B, const int *next, int n_next)
{
    int k = 0;
    double t0 = util_now();
    if (p->buf) {
        prefetch_wait(p);
        p->wait_s += util_now() - t0;
        t0 = util_now();
        while (k < p->n && k < B && p->idx[k] == idx[k]) k++;
        if (k > 0 && p->rc) {
            if (k == p->n) return err_set("%s", p->msg);   /* a bad image of this batch */
            k = 0;                 /* the bad one may lie past this batch: this batch's own verdict, now */
        }
        if (k > 0) { void *t = *bpx; *bpx = p->buf; p->buf = t; }
        p->n = 0;
    }
    if (k < B && produce(p, idx + k, B - k, (char *)*bpx + (size_t)k * p->per_image)) return -1;
    p->read_s += util_now() - t0;
    if (p->buf && n_next > 0) {    /* the worker is idle (waited for above): the guess handed over */
        pthread_mutex_lock(&p->mu);
        p->n = n_next;
        memcpy(p->idx, next, (size_t)n_next * sizeof(int));
        p->rc = 0;
        p->job = 1;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    return 0;
}

void prefetch_free(prefetch *p)
{
    if (p->buf) {                  /* (a buffer: the worker exists) */
        pthread_mutex_lock(&p->mu);
        p->quit = 1;               /* (a guess being produced is finished first, one not started is dropped) */
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->th, NULL);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        p->be->host_free(p->be, p->buf);
    }
    free(p->idx);
    p->buf = NULL;
    p->idx = NULL;
}
