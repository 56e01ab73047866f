/* runstate.h — what makes a run resumable: the partial directory OUT.partial/ beside the output.
 *
 *   OUT.partial/lock              held (fcntl write lock) by rank 0 while a run works on OUT
 *   OUT.partial/manifest          the run's identity: options that change the output, ranks, the
 *                                 weights' and the samples' SHA-256; written last at creation
 *   OUT.partial/data.h5           the output file, created complete (every dataset and attribute)
 *                                 before any data; afterwards only raw pwrites into its datasets
 *                                 touch it, so a SIGKILL never breaks its HDF5 metadata
 *   OUT.partial/rank-R.progress   rank R's durable progress (progress_rec), replaced atomically
 *                                 after the data it describes was fdatasync'ed
 *
 * A run that completes renames data.h5 to OUT (atomic; fsync'ed before and after) and removes the
 * directory. A run started again with the same command finds the manifest, checks that nothing
 * that changes the output differs, and continues from each rank's record. Everything here is
 * created exclusively (O_EXCL, O_NOFOLLOW) or through rename inside the locked directory.
 * Functions that touch files are called by the ranks named in their contract; errors: err_set,
 * -1. */
#ifndef ATTNSCOPE_RUNSTATE_H
#define ATTNSCOPE_RUNSTATE_H
#include <stdint.h>

typedef struct {
    char out[4096];     /* the final path */
    char dir[4096];     /* OUT.partial */
    char data[4200];    /* OUT.partial/data.h5 */
    char data_new[4200];/* OUT.partial/data.h5.new (being created) */
    int lock_fd;        /* rank 0: the locked file, -1 elsewhere */
    int out_exists;
} runstate;

/* Rank 0, before any expensive work: refuses an --out that is one of the inputs (same file), an
 * existing OUT without overwrite, an OUT.partial that is not our directory, or one locked by
 * another run; makes OUT.partial and takes its lock; with restart, discards what it holds. */
int runstate_open(runstate *s, const char *out, int overwrite, int restart, const char *const *inputs, int n_inputs);

/* Rank 0: compares manifest (the text of this run's identity, "key=value" lines) with the one in
 * OUT.partial. Returns 1 when data.h5 and a matching manifest are there (resume), 0 when there is
 * nothing to resume (the directory is emptied for a fresh start), -1 with a message naming the
 * first option that differs. */
int runstate_match(runstate *s, const char *manifest);

/* Rank 0, after data.h5.new was created, closed and its creation fsync'ed: renames it to
 * data.h5 and writes the manifest (atomically). */
int runstate_commit_creation(runstate *s, const char *manifest);

/* Rank 0 at the end of a complete run: fsync data.h5, rename it to OUT, fsync OUT's directory,
 * remove the partial directory. */
int runstate_finish(runstate *s);

/* Rank 0: releases the lock (the directory stays for a later resume). */
void runstate_close(runstate *s);
/* Rank 0, when a run fails before it saved anything: removes the directory if it holds nothing
 * to resume (no manifest), then releases the lock. */
void runstate_abandon(runstate *s);

/* One rank's durable progress: the samples before wstart (local indices) are done, and of the
 * window [wstart, wstart + wn) the first q samples of its processing order (by length) too. The
 * head-similarity sums are those of exactly these samples. */
typedef struct {
    int64_t first;      /* the shard: global index of its first sample, and its size */
    int64_t n;
    int64_t wstart, wn, q;
    int64_t samples_done, tokens_done;
    int64_t nsim;       /* entries of js and gram (heads²), 0 without head similarity */
    double n_rows;
    double *js, *gram;  /* [nsim] each */
} progress_rec;

/* Any rank: writes its record (rank-R.progress.new, fsync, rename, fsync the directory). The
 * run_id ties the record to the manifest. */
int progress_write(const char *dir, int rank, int nranks, uint64_t run_id, const progress_rec *p);
/* Any rank: reads its record into p (js/gram allocated when nsim > 0, caller frees). Returns 1
 * found and valid (shard, ranks, run_id and nsim as expected), 0 none, -1 invalid. */
int progress_read(const char *dir, int rank, int nranks, uint64_t run_id, int64_t first, int64_t n, int64_t nsim, progress_rec *p);

/* 64-bit FNV-1a of a string (the run id of a manifest). */
uint64_t runstate_hash(const char *s);
#endif
