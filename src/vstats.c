/* vstats.c — see vstats.h. Sums in double. */
#include "vstats.h"
#include "util.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

double vstats_distance_px(const float *P, const vgrid *g)
{
    const int np = g->gh * g->gw, T = g->n_prefix + np;
    if (np == 0) return 0.0;
    double total = 0.0;
    for (int qi = 0; qi < np; qi++) {
        const float *row = P + (size_t)(g->n_prefix + qi) * T + g->n_prefix;
        const int yi = qi / g->gw, xi = qi % g->gw;
        double s = 0.0;
        for (int qj = 0; qj < np; qj++) {
            const double dy = yi - qj / g->gw, dx = xi - qj % g->gw;
            s += row[qj] * sqrt(dx * dx + dy * dy);
        }
        total += s * g->patch;
    }
    return total / np;
}

double vstats_locality2d(const float *P, const vgrid *g, int r)
{
    const int np = g->gh * g->gw, T = g->n_prefix + np;
    if (np == 0) return 0.0;
    double total = 0.0;
    for (int qi = 0; qi < np; qi++) {
        const float *row = P + (size_t)(g->n_prefix + qi) * T + g->n_prefix;
        const int yi = qi / g->gw, xi = qi % g->gw;
        for (int y = yi - r; y <= yi + r; y++)
            for (int x = xi - r; x <= xi + r; x++)
                if (y >= 0 && y < g->gh && x >= 0 && x < g->gw) total += row[y * g->gw + x];
    }
    return total / np;
}

void vstats_cls(const float *P, const vgrid *g, float *cls)
{
    memcpy(cls, P + g->n_prefix, (size_t)g->gh * g->gw * sizeof(float));
}

void vstats_rollout_init(float *R, int T)
{
    memset(R, 0, (size_t)T * T * sizeof(float));
    for (int i = 0; i < T; i++) R[(size_t)i * T + i] = 1.0f;
}

/* ascending by value, then by index: the discarded entries are the first k */
typedef struct { float v; int i; } entry;
static int by_value(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    return x->v < y->v ? -1 : x->v > y->v ? 1 : x->i - y->i;
}

void vstats_fuse(float *A, const float *maps, int NH, int T, int fusion)
{
    const size_t TT = (size_t)T * T;
    for (size_t e = 0; e < TT; e++) {
        double acc = maps[e];
        for (int h = 1; h < NH; h++) {
            const double v = maps[(size_t)h * TT + e];
            acc = fusion == 0 ? acc + v : fusion == 1 ? fmax(acc, v) : fmin(acc, v);
        }
        A[e] = (float)(fusion == 0 ? acc / NH : acc);
    }
}

void vstats_rollout_step(float *R, const float *maps, int NH, int T, int fusion, double discard, float *work)
{
    const size_t TT = (size_t)T * T;
    float *A = work;
    vstats_fuse(A, maps, NH, T, fusion);
    const size_t k = (size_t)(discard * (double)TT);
    if (k > 0) {
        entry *es = xmalloc(TT * sizeof(entry));
        for (size_t e = 0; e < TT; e++) es[e] = (entry){A[e], (int)e};
        qsort(es, TT, sizeof(entry), by_value);
        for (size_t e = 0; e < k && e < TT; e++)
            if (es[e].i != 0) A[es[e].i] = 0.0f;       /* never the [CLS] row's own entry */
        free(es);
    }
    vstats_rollout_norm(A, T);
    vstats_rollout_product(R, A, T);
}

void vstats_rollout_norm(float *A, int T)
{
    for (int i = 0; i < T; i++) {
        float *a = A + (size_t)i * T;
        a[i] += 1.0f;
        double s = 0.0;
        for (int j = 0; j < T; j++) s += 0.5 * a[j];
        const double r = s > 0 ? 0.5 / s : 0.0;
        for (int j = 0; j < T; j++) a[j] = (float)(a[j] * r);
    }
}

/* R ← Â·R into a fresh buffer (every row of the product reads all of R), in double */
void vstats_rollout_product(float *R, const float *Ah, int T)
{
    double *row = xmalloc((size_t)T * sizeof(double));
    float *out = xmalloc((size_t)T * T * sizeof(float));
    for (int i = 0; i < T; i++) {
        for (int c = 0; c < T; c++) row[c] = 0.0;
        for (int j = 0; j < T; j++) {
            const double w = Ah[(size_t)i * T + j];
            if (w == 0.0) continue;
            const float *rj = R + (size_t)j * T;
            for (int c = 0; c < T; c++) row[c] += w * rj[c];
        }
        for (int c = 0; c < T; c++) out[(size_t)i * T + c] = (float)row[c];
    }
    memcpy(R, out, (size_t)T * T * sizeof(float));
    free(out);
    free(row);
}
