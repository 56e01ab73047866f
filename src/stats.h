/* stats.h — per-head statistics of attention probability matrices, and the dataset-level head
 * similarity accumulators. Computed on the host from the captured probabilities (a GPU kernel
 * will compute the same quantities on chip; these functions are the reference it is checked
 * against). Definitions follow the cited papers; README "Statistics" gives each formula.
 *
 * One head of one sample: P is (T, T) row-major (row i = query, column j = key), n ≤ T valid
 * tokens. Visible keys of row i: K_i = {j < n : j ≤ i when causal, j > i − sw with a sliding
 * window sw > 0} (HF's sliding_window_overlay: the sw most recent keys, i itself included); the
 * probabilities of the other keys are exactly 0. Rows i < n are the valid query rows; "mean over
 * rows" is (1/n) Σ_{i<n}. */
#ifndef ATTNSCOPE_STATS_H
#define ATTNSCOPE_STATS_H
#include <stdint.h>

/* The per-head scalars, in the order of stats_names[]. */
enum {
    STAT_ENTROPY,      /* Clark et al. 2019: mean over rows of −Σ_j p_ij ln p_ij (nats) */
    STAT_ENTROPY_NORM, /* mean over rows with |K_i| > 1 of H_i / ln|K_i| (0 if no such row) */
    STAT_DISTANCE,     /* mean over rows of Σ_j p_ij |i − j| (tokens) */
    STAT_LOCALITY,     /* mean over rows of Σ_{|i−j| ≤ w} p_ij */
    STAT_ATTN_CLS,     /* mean over rows of p_i0: the first token ([CLS] / BOS) */
    STAT_ATTN_SEP,     /* mean over rows of Σ_{j: sep[j]} p_ij ([SEP] / EOS tokens) */
    STAT_ATTN_PUNCT,   /* mean over rows of Σ_{j: punct[j]} p_ij (punctuation tokens) */
    STAT_ATTN_SELF,    /* mean over rows of p_ii */
    STAT_ATTN_PREV,    /* mean over rows of p_{i,i−1} (row 0 contributes 0) */
    STAT_ATTN_NEXT,    /* mean over rows of p_{i,i+1} (row n−1 contributes 0) */
    STAT_SINK,         /* Gu et al. 2025: α_0, importance of the first key (see key_importance) */
    STAT_N
};
extern const char *const stats_names[STAT_N];    /* dataset names under /stats */
extern const char *const stats_titles[STAT_N];   /* human titles for figures */
extern const char *const stats_units[STAT_N];

typedef struct {
    int causal;                /* decoder: row i sees keys 0..i */
    int window;                /* locality window w (tokens) of STAT_LOCALITY */
    int topk;                  /* k of topk_index/topk_weight */
    int sliding_window;        /* the attention's sliding window sw (keys visible behind a query, itself
                                  included); 0: none. Not the locality window. */
} stats_params;

/* The per-token outputs of stats_head that a fused attention (backend attention_stats) gives
 * besides the scalars, in backend memory (a NULL pointer: not wanted): each query row's topk most
 * attended keys, topk_idx/topk_w (B, NH, T, topk), 1 <= topk <= ATTN_FUSED_TOPK_MAX, and the key
 * importance key_imp (B, NH, T), 0 beyond the length. Rows beyond the length get −1 and 0. */
/* For a patch model's layer (images: no padding, not causal, no window), also vis (NULL: none):
 * vstats.h's outputs, as vstats.c defines them, in backend memory — per head the mean distance in
 * pixels dist and the 2-D locality (radius 1) loc (B, NH), the [CLS] row over the patches cls
 * (B, NH, gh·gw), and the heads' fused map (B, T, T) (fusion 0 mean, 1 max, 2 min: the rollout's
 * input, whose rollout_step with one head is the rollout of the layer). kept (a backend's choice,
 * 0 from the model): the fused kernel keeps every head's probabilities in fp16 and the vision
 * outputs come from them (2^-11 relative), not from a second pass over the scores. roll: the map
 * is the rollout's Â of the fused map (vstats_rollout_norm: (A + I)/2 with rows renormalised), to
 * be given to rollout_step with ready, not the fused map itself (fusion first). */
typedef struct { int n_prefix, gh, gw, patch, fusion; float *dist, *loc, *cls, *map; int kept, roll; } attn_vis;
typedef struct { int topk; int32_t *topk_idx; float *topk_w; float *key_imp; const attn_vis *vis; } attn_tokens;
#define ATTN_FUSED_TOPK_MAX 8

#ifdef __CUDACC__
#define STATS_HD __host__ __device__
#else
#define STATS_HD
#endif
/* K_i of row i < n as the range [*lo, return value) (empty when n = 0): shared by the CPU
 * reference and the kernels, so that every statistic counts the same keys. */
static inline STATS_HD int stats_visible(int i, int n, int causal, int sw, int *lo)
{
    *lo = sw > 0 && i - sw + 1 > 0 ? i - sw + 1 : 0;
    const int hi = causal && i + 1 < n ? i + 1 : n;
    return hi > *lo ? hi : *lo;
}
/* The rows i < n with |K_i| > 1 (entropy_norm's rows): all but row 0 (causal) or all (not), and
 * under a window of 1 none (causal) or all but the last (not) */
static inline STATS_HD int stats_norm_rows(int n, int causal, int sw)
{
    if (n < 2) return 0;
    if (sw != 1) return causal ? n - 1 : n;
    return causal ? 0 : n - 1;
}
/* |Q_j|: the number of rows i < n whose K_i holds key j < n (key importance's denominator) */
static inline STATS_HD int stats_seen_by(int j, int n, int causal, int sw)
{
    const int hi = sw > 0 && j + sw < n ? j + sw : n;
    return hi - (causal ? j : 0);
}

/* All statistics of one head. sep/punct: [n] flags per key token (may be NULL: masses 0).
 * out[STAT_N] receives the scalars; key_importance[n] (may be NULL) receives
 * α_k = (1/|Q_k|) Σ_{i ∈ Q_k} p_ik with Q_k the rows i < n that see k (Gu et al. 2025);
 * topk_idx/topk_w [T][k] (may be NULL) receive each valid row's k most attended keys, largest
 * first, ties to the lower index; rows ≥ n and missing entries get −1 and 0. Sums in double. */
void stats_head(const float *P, int T, int n, const stats_params *sp, const uint8_t *sep, const uint8_t *punct,
                float out[STAT_N], float *key_importance, int32_t *topk_idx, float *topk_w);

/* Head similarity over a dataset, accumulated sample by sample, merged across ranks by sums.
 * nh = layers × heads (head index l·H + h). */
typedef struct {
    int nh;
    double *js_sum;            /* (nh, nh): Σ over samples and query rows of JS(row_a, row_b) */
    double *gram;              /* (nh, nh): Σ over samples of <A_a, A_b> (maps flattened) */
    double n_rows;             /* Σ over samples of n */
} stats_sim;

void stats_sim_init(stats_sim *s, int nh);
void stats_sim_free(stats_sim *s);
/* Adds one sample: maps[a] (T, T) for a < nh (layer-major), n valid tokens. Jensen–Shannon per
 * query row with Clark et al.'s smoothing (head_distances.py): p' = 0.001/n + 0.999 p over the
 * n × n block, JS = ½ Σ_j [p'_a ln(p'_a/m) + p'_b ln(p'_b/m)], m = (p'_a + p'_b)/2, in nats. */
void stats_sim_add(stats_sim *s, const float *const *maps, int T, int n);

/* Welford accumulator of one value per (layer, head), mergeable across ranks (Chan et al.). */
typedef struct { double n, mean, m2; } welford;
void welford_add(welford *w, double x);
void welford_merge(welford *into, const welford *other);
#endif
