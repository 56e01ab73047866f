/* summary.h — the dataset-level reduction of `attnscope reduce`: for every per-head statistic
 * under /stats, its mean and (population) standard deviation per layer × head, a histogram with
 * fixed edges, the mean per key/value group, and the k exemplar samples that score highest;
 * the mean sink rate; a clustered head order from the head similarity. Every rank reads its own
 * block of samples; Welford accumulators merge with Chan's formula, histograms and exemplars
 * merge exactly, so the result does not depend on the number of ranks. */
#ifndef ATTNSCOPE_SUMMARY_H
#define ATTNSCOPE_SUMMARY_H
#include "stats.h"
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int64_t N;
    int L, H, KV, Lmax, bins, k;
    int have[STAT_N];           /* the statistic is in the file */
    float *mean[STAT_N], *std[STAT_N];   /* (L, H) */
    int64_t *hist[STAT_N];      /* (L, H, bins) */
    double lo[STAT_N], hi[STAT_N];
    int64_t *exemplars[STAT_N]; /* (L, H, k), -1 when fewer samples */
    float *group_mean[STAT_N];  /* (L, KV) */
    int32_t *kv_group;          /* [H] */
    float sink_rate_mean;
    int have_sink_rate;
    int32_t *head_order;        /* [L·H] clustered order, or NULL without head similarity */
    double *js_mean, *cos;      /* (L·H, L·H) as read, or NULL */
} summary;

/* Collective: every rank reads its block of /stats from path (read-only) and the results are
 * merged on rank 0 (other ranks' summary holds only the shapes). 0, or -1 with err_set() and *s
 * empty (nothing to free). */
int summary_compute(summary *s, const char *path, int bins, int k, MPI_Comm comm);
/* What writing the summary cost: the copy of the run's file, and leftovers removed (afile.h). */
typedef struct {
    size_t bytes;           /* bytes copied */
    int kernel;             /* copy_file_range did the copy (else read/write) */
    double copy_s;          /* seconds the copy took */
    int removed;            /* temporaries of killed reduces removed */
} summary_write_info;

/* Rank 0: writes the /summary datasets into the run's file at path, never in place: into a copy
 * of it (afile.h: a temporary beside it, renamed over it once complete and fsynced). Of what is
 * under /summary, only the reducer's own datasets are replaced; the run's (head_similarity_*) stay.
 * 0; or -1 with err_set("PATH: <what>: <strerror>"), the temporary removed and path unchanged;
 * HDF5 prints nothing. */
int summary_write(const summary *s, const char *path, summary_write_info *info);

/* Rank 0: writes the summary into a new small file out instead (replaced atomically likewise),
 * the run's file untouched: /summary with the reducer's datasets; the run file's root attributes;
 * and external links to every other object of the run file (/stats, /samples, /attention, the
 * run's /summary/head_similarity_*), so that readers of out see what a reduced run file holds,
 * as long as the run file stays where it is (the link holds its name relative to out's directory
 * when they share it, else its absolute path; root attribute summary_of). Errors as above; out
 * must not be the run file. */
int summary_write_separate(const summary *s, const char *run, const char *out, summary_write_info *info);
void summary_free(summary *s);
#endif
