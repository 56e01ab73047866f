/* runloop.h — one rank's forward over its shard: windows of consecutive samples (collect.h), each
 * processed in order of length with batches whose padding stays at most 10% of their tokens, a
 * durable checkpoint every few seconds, and a stop at a batch boundary when runctl says so. */
#ifndef ATTNSCOPE_RUNLOOP_H
#define ATTNSCOPE_RUNLOOP_H
#include "collect.h"
#include "runctl.h"

typedef struct {
    int batch, max_tokens, similarity;
    double checkpoint_every;   /* seconds between checkpoints inside a window (0: after every batch) */
    int64_t nsim;              /* head-similarity entries of a progress record */
} run_loop_opts;

typedef struct {
    int64_t samples_done, tokens_done;       /* this rank's, restored work included */
    int64_t tokens_computed, tokens_padded;  /* by this start: valid tokens and padding */
} run_loop_result;

/* Runs the rest of this rank's shard from `restored` (NULL: from its start). Returns
 * RUNCTL_DONE, RUNCTL_STOPPED (a stop: the work so far is checkpointed) or RUNCTL_FAILED (a
 * write failed: collect_write_failed). */
int run_loop(run_loop_result *res, collect *col, model *m, const dataset *d, runctl *ctl, const run_loop_opts *lo,
             const progress_rec *restored);

/* The batch that starts at position s of order[0..wn) (sorted by length, longest first): at most
 * bmax samples, and no more padding than 10% of its B·T tokens. Returns B ≥ 1. */
int run_batch_size(const int *order, const int *len, int s, int wn, int bmax);
#endif
