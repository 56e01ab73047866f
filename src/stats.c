/* stats.c — see stats.h. Accumulation in double throughout; the float outputs are rounded once. */
#include "stats.h"
#include "util.h"
#include <math.h>

const char *const stats_names[STAT_N] = {
    "entropy", "entropy_norm", "distance", "locality", "attn_cls", "attn_sep", "attn_punct",
    "attn_self", "attn_prev", "attn_next", "sink_importance"};
const char *const stats_titles[STAT_N] = {
    "Attention entropy", "Normalised entropy", "Mean attention distance", "Local attention mass",
    "Attention to [CLS]/BOS", "Attention to [SEP]/EOS", "Attention to punctuation",
    "Attention to itself", "Attention to the previous token", "Attention to the next token",
    "Sink importance of token 0"};
const char *const stats_units[STAT_N] = {
    "nats", "fraction of ln(keys)", "tokens", "probability mass", "probability mass",
    "probability mass", "probability mass", "probability mass", "probability mass", "probability mass",
    "mean probability"};

void stats_head(const float *P, int T, int n, const stats_params *sp, const uint8_t *sep, const uint8_t *punct,
                float out[STAT_N], float *key_importance, int32_t *topk_idx, float *topk_w)
{
    double acc[STAT_N] = {0};
    int norm_rows = 0, nonfinite = 0;
    const int causal = sp->causal, w = sp->window, k = sp->topk, sw = sp->sliding_window;
    for (int i = 0; i < n; i++) {
        const float *row = P + (size_t)i * T;
        int lo;
        const int hi = stats_visible(i, n, causal, sw, &lo), nk = hi - lo;   /* visible keys lo..hi-1 */
        double h = 0, dist = 0, loc = 0, ssep = 0, spunct = 0;
        for (int j = lo; j < hi; j++) {
            const double p = row[j];
            nonfinite |= !isfinite(p);
            if (p > 0) h -= p * log(p);
            const int d = i > j ? i - j : j - i;
            dist += p * d;
            if (d <= w) loc += p;
            if (sep && sep[j]) ssep += p;
            if (punct && punct[j]) spunct += p;
        }
        acc[STAT_ENTROPY] += h;
        if (nk > 1) { acc[STAT_ENTROPY_NORM] += h / log((double)nk); norm_rows++; }
        acc[STAT_DISTANCE] += dist;
        acc[STAT_LOCALITY] += loc;
        if (lo == 0) acc[STAT_ATTN_CLS] += row[0];      /* only visible keys count (a window may hide key 0) */
        acc[STAT_ATTN_SEP] += ssep;
        acc[STAT_ATTN_PUNCT] += spunct;
        acc[STAT_ATTN_SELF] += row[i];
        if (i > 0 && i - 1 >= lo) acc[STAT_ATTN_PREV] += row[i - 1];
        if (i + 1 < hi) acc[STAT_ATTN_NEXT] += row[i + 1];
    }
    for (int s = 0; s < STAT_N; s++) out[s] = n > 0 ? (float)(acc[s] / n) : 0.0f;
    out[STAT_ENTROPY_NORM] = norm_rows ? (float)(acc[STAT_ENTROPY_NORM] / norm_rows) : 0.0f;
    /* a NaN/Inf probability (non-finite weights run with --allow-nonfinite) makes every scalar of
     * the head NaN: `p > 0` above would skip a NaN and give a finite entropy */
    if (nonfinite)
        for (int s = 0; s < STAT_N; s++) out[s] = NAN;

    /* key importance α_k: the rows that see k are i < n, i >= k when causal, i < k + sw with a
     * sliding window (the others hold exact zeros at k: summing all would give the same sum) */
    double alpha0 = 0;
    for (int j = 0; j < n; j++) {
        double a = 0;
        const int seen = stats_seen_by(j, n, causal, sw), i0 = causal ? j : 0;
        for (int i = i0; i < i0 + seen; i++) a += P[(size_t)i * T + j];
        a /= seen;
        if (j == 0) alpha0 = a;
        if (key_importance) key_importance[j] = (float)a;
    }
    out[STAT_SINK] = nonfinite ? NAN : n > 0 ? (float)alpha0 : 0.0f;

    if (!topk_idx) return;
    for (int i = 0; i < T; i++) {
        int32_t *ti = topk_idx + (size_t)i * k;
        float *tw = topk_w + (size_t)i * k;
        for (int r = 0; r < k; r++) { ti[r] = -1; tw[r] = 0.0f; }
        if (i >= n) continue;
        const float *row = P + (size_t)i * T;
        int lo;
        const int hi = stats_visible(i, n, causal, sw, &lo);
        for (int j = lo; j < hi; j++) {                  /* insertion into the k best, stable */
            float p = row[j];
            int r = k;
            while (r > 0 && (ti[r - 1] < 0 || p > tw[r - 1])) r--;
            if (r >= k) continue;
            for (int m = k - 1; m > r; m--) { ti[m] = ti[m - 1]; tw[m] = tw[m - 1]; }
            ti[r] = j;
            tw[r] = p;
        }
    }
}

void stats_sim_init(stats_sim *s, int nh)
{
    s->nh = nh;
    s->js_sum = xcalloc((size_t)nh * nh, sizeof(double));
    s->gram = xcalloc((size_t)nh * nh, sizeof(double));
    s->n_rows = 0;
}

void stats_sim_free(stats_sim *s)
{
    free(s->js_sum);
    free(s->gram);
    s->js_sum = s->gram = NULL;
}

void stats_sim_add(stats_sim *s, const float *const *maps, int T, int n)
{
    const int nh = s->nh;
    const size_t nn = (size_t)n * n;
    /* smoothed maps and Σ p' ln p' per head, compacted to n × n */
    double *sm = xmalloc((size_t)nh * nn * sizeof(double)), *plogp = xcalloc(nh, sizeof(double));
    for (int a = 0; a < nh; a++) {
        double *d = sm + (size_t)a * nn, acc = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double p = 0.001 / n + 0.999 * maps[a][(size_t)i * T + j];
                d[(size_t)i * n + j] = p;
                acc += p * log(p);
            }
        plogp[a] = acc;
    }
    /* JS(a,b) summed over rows = ½(Σ a ln a + Σ b ln b) − Σ m ln m */
#pragma omp parallel for schedule(dynamic)
    for (int a = 0; a < nh; a++) {
        const double *pa = sm + (size_t)a * nn;
        for (int b = a + 1; b < nh; b++) {
            const double *pb = sm + (size_t)b * nn;
            double mm = 0;
            for (size_t e = 0; e < nn; e++) {
                double m = 0.5 * (pa[e] + pb[e]);
                mm += m * log(m);
            }
            double js = 0.5 * (plogp[a] + plogp[b]) - mm;
            s->js_sum[(size_t)a * nh + b] += js;
            s->js_sum[(size_t)b * nh + a] += js;
        }
        /* Gram row a: raw (unsmoothed) maps */
        for (int b = 0; b < nh; b++) {
            double g = 0;
            for (int i = 0; i < n; i++) {
                const float *ra = maps[a] + (size_t)i * T, *rb = maps[b] + (size_t)i * T;
                for (int j = 0; j < n; j++) g += (double)ra[j] * rb[j];
            }
            s->gram[(size_t)a * nh + b] += g;
        }
    }
    s->n_rows += n;
    free(sm);
    free(plogp);
}

void welford_add(welford *w, double x)
{
    w->n += 1;
    double d = x - w->mean;
    w->mean += d / w->n;
    w->m2 += d * (x - w->mean);
}

void welford_merge(welford *into, const welford *o)
{
    if (o->n == 0) return;
    if (into->n == 0) { *into = *o; return; }
    double n = into->n + o->n, d = o->mean - into->mean;
    into->mean += d * o->n / n;
    into->m2 += o->m2 + d * d * into->n * o->n / n;
    into->n = n;
}
