/* prefetch.h — the next batch's pixels made on a worker thread while the current batch computes
 * (the transformer run loop and the CNN run): a GPU run otherwise waits for the decoding (or
 * reading) of every batch. Used where dataset_pixels_threadsafe allows it and on a device backend
 * (on the CPU the work would only compete with the forward for the same cores);
 * ATTNSCOPE_PREFETCH=1 or 0 overrides the choice (the tests run the thread on the CPU). The thread
 * calls dataset_pixels only: no MPI, no HDF5. */
#ifndef ATTNSCOPE_PREFETCH_H
#define ATTNSCOPE_PREFETCH_H
#include "backend.h"
#include "dataset.h"
#include <pthread.h>

typedef struct {
    const dataset *d;
    backend *be;               /* whose host_alloc made buf */
    int raw;                   /* dataset_pixels_raw's pixels, else dataset_pixels' float32 */
    size_t per_image;          /* bytes */
    pthread_t th;              /* the worker, for the run's life */
    pthread_mutex_t mu;
    pthread_cond_t cv;         /* job or quit set; job cleared */
    int job;                   /* a guess handed to the worker, not yet produced */
    int quit;
    int n;                     /* images of the guess in flight or done (0: none) */
    int *idx;                  /* [cap] the guess */
    void *buf;                 /* [cap][per_image], or NULL: no read-ahead (and no worker) */
    int rc;
    char msg[1024];
    double wait_s, read_s;     /* seconds prefetch_batch waited for the worker, read itself */
    double busy_s;             /* seconds the worker spent producing (under mu) */
} prefetch;

/* A read-ahead for batches of up to cap images of d, when it pays (see above); else p->buf NULL.
 * raw: the pixels as dataset_pixels_raw gives them (8-bit where the source is), else float32. */
void prefetch_init(prefetch *p, const dataset *d, backend *be, int cap, int raw);
/* The pixels of images idx[0..B) into *bpx (cap images, made by be->host_alloc): the leading ones
 * the read-ahead holds (the buffers swapped), the rest read now; then the read-ahead of
 * next[0..n_next) started (n_next ≤ cap; 0: none). Returns 0, or -1 with err_set() naming the
 * first image that cannot be read. */
int prefetch_batch(prefetch *p, void **bpx, const int *idx, int B, const int *next, int n_next);
/* Ends the worker (after the guess it is producing) and frees the read-ahead's buffers. */
void prefetch_free(prefetch *p);
#endif
