/* probe.h — the repeated-random-token probe of `attnscope run --probe induction` and its per-head
 * scores (Olsson et al. 2022, "In-context Learning and Induction Heads"; the scores as in
 * TransformerLens's induction-head demo and head_detector.py). README "Statistics" gives each
 * formula.
 *
 * A probe sample is [BOS] + R + R: b = 1 leading BOS token (b = 0 when the model has none), then
 * K token ids R drawn uniformly from the vocabulary without its special ids, then R again, so
 * T = b + 2K and the second repeat is the query rows S = {b+K, .., b+2K−1}. Every rank draws the
 * same ids for a sample whatever the number of ranks (one random stream per sample). */
#ifndef ATTNSCOPE_PROBE_H
#define ATTNSCOPE_PROBE_H
#include "config.h"
#include "dataset.h"
#include "tokenizer.h"
#include <stdint.h>

/* The per-head scores of one probe sample, in the order of probe_names[]. */
enum {
    PROBE_PREV,   /* mean over i = 1..T−1 of p_{i,i−1} */
    PROBE_DUP,    /* mean over i ∈ S of p_{i,i−K}: the earlier copy of the same token */
    PROBE_IND,    /* mean over i ∈ S of p_{i,i−K+1}: the token after the earlier copy */
    PROBE_N
};
extern const char *const probe_names[PROBE_N];   /* dataset names under /probe */
extern const char *const probe_defs[PROBE_N];    /* the definition attribute of each */

typedef struct {
    int K;             /* repeat length (--probe-len) */
    int64_t N;         /* samples (--probe-samples) */
    uint64_t seed;     /* --probe-seed */
    int bos;           /* BOS id, or -1: none (b = 0) */
    int32_t *allowed;  /* [n_allowed] the ids R is drawn from, ascending (owned; probe_free) */
    int n_allowed;
} probe_params;

/* The BOS id (config.json bos_token_id, else the tokenizer's first special token, else none)
 * and the ids R may use: 0..vocab−1 without bos/eos/pad/sep of config.json and the tokenizer's
 * specials. tok may be NULL. Returns 0, or -1 with err_set (config.json unreadable, no id left). */
int probe_init(probe_params *pp, int K, int64_t N, uint64_t seed, const model_config *c, const tokenizer *tok);
void probe_free(probe_params *pp);

/* This rank's shard of the N probe samples (dataset.h's rule), each b + 2K tokens, no types,
 * source_row = the sample's index. Returns 0. */
int probe_dataset(dataset *d, const probe_params *pp, int rank, int nranks);

/* The scores of one head of one probe sample: P (T, T) row-major with T = b + 2K. Sums in
 * double, rounded once. */
void probe_head(const float *P, int K, int b, float out[PROBE_N]);
#endif
