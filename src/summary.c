/* summary.c — see summary.h. */
#include "summary.h"
#include "check.h"
#include "h5out.h"
#include "util.h"
#include <hdf5.h>
#include <math.h>

typedef struct { float v; int64_t i; } cand;      /* an exemplar candidate */

/* better: larger value, then lower sample index */
static int cand_better(cand a, cand b) { return a.v > b.v || (a.v == b.v && a.i < b.i); }

static void cand_insert(cand *top, int k, cand c)
{
    if (!(c.v == c.v)) return;  /* NaN never an exemplar */
    int r = k;
    while (r > 0 && (top[r - 1].i < 0 || cand_better(c, top[r - 1]))) r--;
    if (r >= k) return;
    for (int m = k - 1; m > r; m--) top[m] = top[m - 1];
    top[r] = c;
}

/* reads rows [first, first+n) of a numeric dataset (checked by open_checked) as float; 0 or -1
 * with err_set naming the file and the dataset */
static int read_rows_f32(hid_t ds, const char *path, const char *name, int nd, hsize_t first, hsize_t n, float *out)
{
    hid_t sp = H5Dget_space(ds);
    hsize_t dims[8], start[8] = {0};
    H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    start[0] = first;
    dims[0] = n;
    return !h5_read_block(ds, H5T_NATIVE_FLOAT, nd, start, dims, out) ? 0 : err_set("%s: cannot read rows %llu to %llu of %s", path, (unsigned long long)first, (unsigned long long)(first + n), name);
}

/* Opens dataset name of f when it is there and checks it before anything is read: its type is
 * one HDF5 converts to numbers (integer or floating point; else strings, compounds... are
 * refused), it has nd dimensions, equal to want[i] where want is given (want[i] 0: any), and the
 * file stores what it declares. Returns the dataset (its dims in got, when given); -1 when it is
 * absent (*bad 0) or refused (*bad -1, err_set naming the file and the dataset). */
static hid_t open_checked(hid_t f, const char *path, const char *name, int nd, const hsize_t *want, hsize_t *got, int *bad)
{
    *bad = 0;
    hid_t ds = -1;
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0) return -1;
    if ((ds = H5Dopen2(f, name, H5P_DEFAULT)) < 0) { *bad = err_set("%s: %s is not a dataset", path, name); return -1; }
    hid_t ty = H5Dget_type(ds), sp = H5Dget_space(ds);
    const H5T_class_t cls = ty >= 0 ? H5Tget_class(ty) : H5T_NO_CLASS;
    const int n = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    hsize_t d[8] = {0};
    if (n == nd && nd > 0) H5Sget_simple_extent_dims(sp, d, NULL);
    if (ty >= 0) H5Tclose(ty);
    if (sp >= 0) H5Sclose(sp);
    if (cls != H5T_INTEGER && cls != H5T_FLOAT) *bad = err_set("%s: %s is not numeric (integer or floating point)", path, name);
    else if (n != nd) *bad = err_set("%s: %s has %d dimensions, expected %d", path, name, n, nd);
    for (int i = 0; !*bad && want && i < nd; i++)
        if (want[i] && d[i] != want[i]) {
            char shape[200] = "", exp[200] = "";
            for (int j = 0, o = 0, e = 0; j < nd; j++) {
                o += snprintf(shape + o, sizeof shape - o, "%s%llu", j ? ", " : "", (unsigned long long)d[j]);
                e += want[j] ? snprintf(exp + e, sizeof exp - e, "%s%llu", j ? ", " : "", (unsigned long long)want[j])
                             : snprintf(exp + e, sizeof exp - e, "%s*", j ? ", " : "");
            }
            *bad = err_set("%s: %s has shape [%s], expected [%s] (as /stats/entropy)", path, name, shape, exp);
        }
    if (!*bad) *bad = h5_check_stored(f, ds, path, name);
    if (*bad) { H5Dclose(ds); return -1; }
    if (got) memcpy(got, d, nd * sizeof *d);
    return ds;
}

/* average-linkage agglomerative clustering of a distance matrix; leaf order of the dendrogram */
static void cluster_order(const double *D, int n, int32_t *order)
{
    double *d = xmalloc((size_t)n * n * sizeof(double));
    memcpy(d, D, (size_t)n * n * sizeof(double));
    for (int a = 0; a < n; a++)
        for (int b = 0; b < a; b++) d[(size_t)a * n + b] = d[(size_t)b * n + a] = 0.5 * (D[(size_t)a * n + b] + D[(size_t)b * n + a]);
    int *size = xmalloc(n * sizeof(int)), *alive = xmalloc(n * sizeof(int));
    int32_t **members = xmalloc(n * sizeof(int32_t *));
    for (int a = 0; a < n; a++) { size[a] = 1; alive[a] = 1; members[a] = xmalloc(sizeof(int32_t)); members[a][0] = a; }
    for (int step = 0; step < n - 1; step++) {
        int ba = -1, bb = -1;
        double best = INFINITY;
        for (int a = 0; a < n; a++) {
            if (!alive[a]) continue;
            for (int b = a + 1; b < n; b++)
                if (alive[b] && d[(size_t)a * n + b] < best) { best = d[(size_t)a * n + b]; ba = a; bb = b; }
        }
        if (ba < 0) break;
        for (int c = 0; c < n; c++) {          /* average linkage: size-weighted mean distance */
            if (!alive[c] || c == ba || c == bb) continue;
            double v = (size[ba] * d[(size_t)ba * n + c] + size[bb] * d[(size_t)bb * n + c]) / (size[ba] + size[bb]);
            d[(size_t)ba * n + c] = d[(size_t)c * n + ba] = v;
        }
        members[ba] = xrealloc(members[ba], (size[ba] + size[bb]) * sizeof(int32_t));
        memcpy(members[ba] + size[ba], members[bb], size[bb] * sizeof(int32_t));
        size[ba] += size[bb];
        alive[bb] = 0;
    }
    int o = 0;
    for (int a = 0; a < n; a++)
        if (alive[a]) { memcpy(order + o, members[a], size[a] * sizeof(int32_t)); o += size[a]; }
    for (int a = 0; a < n; a++) free(members[a]);
    free(members); free(size); free(alive); free(d);
}

/* An [nh, nh] matrix, or NULL when absent or of another shape (the run did not write it for these
 * heads); *bad set when it is there but cannot be used. */
static double *read_matrix(hid_t f, const char *path, const char *name, int nh, int *bad)
{
    hsize_t d[2];
    hid_t ds = open_checked(f, path, name, 2, NULL, d, bad);
    if (ds < 0) return NULL;
    double *m = NULL;
    if (d[0] == (hsize_t)nh && d[1] == (hsize_t)nh) {
        m = xmalloc((size_t)nh * nh * sizeof(double));
        if (H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, m) < 0) {
            *bad = err_set("%s: cannot read %s", path, name);
            free(m);
            m = NULL;
        }
    }
    H5Dclose(ds);
    return m;
}

/* The largest L·H reduce accepts (the accumulators hold STAT_N·L·H·bins counts). */
#define SUMMARY_MAX_HEADS (1 << 16)

/* Checks everything summary_compute and the report read before anything is read or allocated by
 * the file's shapes: the same on every rank (the same file's metadata), so that all return
 * before the collectives or none. The datasets of the statistics are left open in ds[], the sink
 * rate's in *sink (-1 when absent). 0, or -1 with err_set. */
static int check_file(hid_t f, const char *path, summary *s, hid_t *ds, hid_t *sink)
{
    int bad = 0;
    hsize_t d[3] = {0, 0, 0};
    hid_t e;
    /* /summary, written into by reduce, must be a group */
    if (H5Lexists(f, "/summary", H5P_DEFAULT) > 0) {
        hid_t g = H5Gopen2(f, "/summary", H5P_DEFAULT);
        if (g < 0) return err_set("%s: /summary is not a group (reduce writes its datasets under it)", path);
        H5Gclose(g);
    }
    if (H5Lexists(f, "/stats", H5P_DEFAULT) <= 0 || H5Lexists(f, "/stats/entropy", H5P_DEFAULT) <= 0)
        return err_set("%s: no /stats/entropy: not an attnscope output file", path);
    if ((e = open_checked(f, path, "/stats/entropy", 3, NULL, d, &bad)) < 0) return -1;
    H5Dclose(e);
    if (d[0] == 0 || d[1] == 0 || d[2] == 0 || d[1] > 4096 || d[2] > 4096 || d[1] * d[2] > SUMMARY_MAX_HEADS || d[0] > INT64_MAX)
        return err_set("%s: /stats/entropy has shape [%llu, %llu, %llu]: expected samples, layers (at most 4096), heads "
                       "(at most 4096), at most %d layers x heads, none 0", path, (unsigned long long)d[0], (unsigned long long)d[1],
                       (unsigned long long)d[2], SUMMARY_MAX_HEADS);
    s->N = (int64_t)d[0]; s->L = (int)d[1]; s->H = (int)d[2];
    if ((int64_t)STAT_N * s->L * s->H * s->bins > (1 << 28))
        return err_set("%s: %d layers x %d heads x %d bins are too many histogram counts (at most 2^28 over the %d statistics): "
                       "give fewer --bins", path, s->L, s->H, s->bins, STAT_N);
    /* the longest sample: the width of /samples/input_ids */
    hsize_t dl[2] = {0, 1};
    if ((e = open_checked(f, path, "/samples/input_ids", 2, NULL, dl, &bad)) >= 0) H5Dclose(e);
    if (bad) return -1;
    if (dl[1] > (1u << 24)) return err_set("%s: /samples/input_ids has %llu tokens per row", path, (unsigned long long)dl[1]);
    s->Lmax = dl[1] > 1 ? (int)dl[1] : 2;
    /* what the report reads per sample: one row per sample */
    const hsize_t wantN[2] = {d[0], 0};
    static const char *const per_sample[] = {"/samples/length", "/attention_offset"};
    for (int i = 0; i < 2; i++) {
        if ((e = open_checked(f, path, per_sample[i], 1, wantN, NULL, &bad)) >= 0) H5Dclose(e);
        if (bad) return -1;
    }
    if (H5Lexists(f, "/samples", H5P_DEFAULT) > 0 && H5Lexists(f, "/samples/tokens", H5P_DEFAULT) > 0) {
        hid_t t = H5Dopen2(f, "/samples/tokens", H5P_DEFAULT), sp = t >= 0 ? H5Dget_space(t) : -1;
        hsize_t dt[2] = {0, 0};
        const int ok = sp >= 0 && H5Sget_simple_extent_ndims(sp) == 2 && H5Sget_simple_extent_dims(sp, dt, NULL) == 2 && dt[0] == d[0];
        if (sp >= 0) H5Sclose(sp);
        if (ok) bad = h5_check_stored(f, t, path, "/samples/tokens");
        if (t >= 0) H5Dclose(t);
        if (!ok) return err_set("%s: /samples/tokens is not a [%llu, tokens] dataset (one row per sample)", path, (unsigned long long)d[0]);
        if (bad) return -1;
    }
    /* key/value groups: [H] integers in [0, H) (another length: the run did not write them for these heads) */
    s->kv_group = xmalloc(s->H * sizeof(int32_t));
    for (int h = 0; h < s->H; h++) s->kv_group[h] = h;
    if ((e = open_checked(f, path, "/model/kv_group", 1, NULL, dl, &bad)) >= 0) {
        if (dl[0] == (hsize_t)s->H && H5Dread(e, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->kv_group) < 0)
            bad = err_set("%s: cannot read /model/kv_group", path);
        H5Dclose(e);
    }
    if (bad) return -1;
    s->KV = 0;
    for (int h = 0; h < s->H; h++) {
        if (s->kv_group[h] < 0 || s->kv_group[h] >= s->H) return err_set("%s: /model/kv_group has a value outside [0, %d)", path, s->H);
        if (s->kv_group[h] + 1 > s->KV) s->KV = s->kv_group[h] + 1;
    }
    /* the statistics: numeric, the shape of /stats/entropy, stored */
    for (int st = 0; st < STAT_N; st++) {
        char name[96];
        snprintf(name, sizeof name, "/stats/%s", stats_names[st]);
        ds[st] = open_checked(f, path, name, 3, d, NULL, &bad);
        if (bad) return -1;
    }
    *sink = open_checked(f, path, "/stats/sink_rate", 1, wantN, NULL, &bad);
    return bad;
}

static int compute(summary *s, const char *path, int bins, int k, MPI_Comm comm)
{
    int rank, nranks;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &nranks);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return err_set("%s: cannot open as HDF5", path);
    hid_t ds[STAT_N], sink = -1;
    for (int st = 0; st < STAT_N; st++) ds[st] = -1;
    s->bins = bins; s->k = k;
    if (check_file(f, path, s, ds, &sink)) {
        for (int st = 0; st < STAT_N; st++) if (ds[st] >= 0) H5Dclose(ds[st]);
        if (sink >= 0) H5Dclose(sink);
        H5Fclose(f);
        return -1;
    }
    const int L = s->L, H = s->H, LH = L * H;

    /* this rank's block of samples, read `chunk` rows at a time (16 MiB); a read that fails
     * stops the reading but not the collectives below (the other ranks are in them) */
    int rc = 0;
    const int64_t first = s->N * rank / nranks, last = s->N * (rank + 1) / nranks;
    const hsize_t chunk = (hsize_t)((4u << 20) / LH > 0 ? (4u << 20) / LH : 1);
    float *buf = xmalloc(chunk * LH * sizeof(float));
    welford *acc = xcalloc((size_t)STAT_N * LH, sizeof(welford));
    cand *top = xmalloc((size_t)STAT_N * LH * k * sizeof(cand));
    for (size_t i = 0; i < (size_t)STAT_N * LH * k; i++) top[i] = (cand){0, -1};
    int64_t *hist = xcalloc((size_t)STAT_N * LH * bins, sizeof(int64_t));
    for (int st = 0; st < STAT_N; st++) {
        char name[96];
        snprintf(name, sizeof name, "/stats/%s", stats_names[st]);
        s->lo[st] = 0;
        s->hi[st] = st == STAT_ENTROPY ? log((double)s->Lmax) : st == STAT_DISTANCE ? s->Lmax - 1 : 1.0;
        if (ds[st] < 0) continue;
        s->have[st] = 1;
        const double lo = s->lo[st], w = (s->hi[st] - lo) / bins;
        for (int64_t r = first; r < last && !rc; r += chunk) {
            hsize_t n = (hsize_t)(last - r) < chunk ? (hsize_t)(last - r) : chunk;
            rc = read_rows_f32(ds[st], path, name, 3, (hsize_t)r, n, buf);
            for (hsize_t i = 0; i < n && !rc; i++)
                for (int a = 0; a < LH; a++) {
                    /* non-finite values (NaN, ±inf: a broken file) are left out of everything */
                    float v = buf[i * LH + a];
                    if (!isfinite(v)) continue;
                    size_t o = (size_t)st * LH + a;
                    welford_add(&acc[o], v);
                    const double x = w > 0 ? floor((v - lo) / w) : 0;
                    hist[o * bins + (x < 0 ? 0 : x >= bins ? bins - 1 : (int)x)]++;
                    cand_insert(top + o * k, k, (cand){v, r + (int64_t)i});
                }
        }
        H5Dclose(ds[st]);
    }
    welford sink_acc = {0};
    if (sink >= 0) {
        s->have_sink_rate = 1;
        for (int64_t r = first; r < last && !rc; r += chunk) {
            hsize_t n = (hsize_t)(last - r) < chunk ? (hsize_t)(last - r) : chunk;
            rc = read_rows_f32(sink, path, "/stats/sink_rate", 1, (hsize_t)r, n, buf);
            for (hsize_t i = 0; i < n && !rc; i++) if (isfinite(buf[i])) welford_add(&sink_acc, buf[i]);
        }
        H5Dclose(sink);
    }
    if (rank == 0 && !rc) {
        int bad = 0;
        s->js_mean = read_matrix(f, path, "/summary/head_similarity_js_mean", LH, &bad);
        if (!bad) s->cos = read_matrix(f, path, "/summary/head_similarity_cos", LH, &bad);
        rc = bad;
    }
    H5Fclose(f);
    free(buf);

    /* merge on rank 0: Welford (Chan, in rank order), histograms (sums), exemplars (top-k of all) */
    const int nw = STAT_N * LH;
    welford *all = rank == 0 ? xmalloc((size_t)nranks * (nw + 1) * sizeof(welford)) : NULL;
    welford *mine = xmalloc((size_t)(nw + 1) * sizeof(welford));
    memcpy(mine, acc, nw * sizeof(welford));
    mine[nw] = sink_acc;
    CHECK_MPI(MPI_Gather(mine, (nw + 1) * 3, MPI_DOUBLE, all, (nw + 1) * 3, MPI_DOUBLE, 0, comm));
    int64_t *hsum = rank == 0 ? xmalloc((size_t)STAT_N * LH * bins * sizeof(int64_t)) : NULL;
    CHECK_MPI(MPI_Reduce(hist, hsum, STAT_N * LH * bins, MPI_INT64_T, MPI_SUM, 0, comm));
    cand *tall = rank == 0 ? xmalloc((size_t)nranks * nw * k * sizeof(cand)) : NULL;
    MPI_Datatype ct;
    CHECK_MPI(MPI_Type_contiguous(sizeof(cand), MPI_BYTE, &ct));
    CHECK_MPI(MPI_Type_commit(&ct));
    CHECK_MPI(MPI_Gather(top, nw * k, ct, tall, nw * k, ct, 0, comm));
    MPI_Type_free(&ct);
    if (rank == 0) {
        welford *m = xcalloc(nw + 1, sizeof(welford));
        for (int r = 0; r < nranks; r++)
            for (int i = 0; i <= nw; i++) welford_merge(&m[i], &all[(size_t)r * (nw + 1) + i]);
        for (int st = 0; st < STAT_N; st++) {
            if (!s->have[st]) continue;
            s->mean[st] = xmalloc(LH * sizeof(float));
            s->std[st] = xmalloc(LH * sizeof(float));
            s->hist[st] = xmalloc((size_t)LH * bins * sizeof(int64_t));
            s->exemplars[st] = xmalloc((size_t)LH * k * sizeof(int64_t));
            s->group_mean[st] = xcalloc((size_t)L * s->KV, sizeof(float));
            for (int a = 0; a < LH; a++) {
                const welford *w = &m[st * LH + a];
                s->mean[st][a] = (float)w->mean;
                s->std[st][a] = (float)(w->n > 0 ? sqrt(w->m2 / w->n) : 0);
                cand best[64];
                for (int j = 0; j < k; j++) best[j] = (cand){0, -1};
                for (int r = 0; r < nranks; r++)
                    for (int j = 0; j < k; j++) {
                        cand c = tall[(((size_t)r * STAT_N + st) * LH + a) * k + j];
                        if (c.i >= 0) cand_insert(best, k, c);
                    }
                for (int j = 0; j < k; j++) s->exemplars[st][(size_t)a * k + j] = best[j].i;
            }
            memcpy(s->hist[st], hsum + (size_t)st * LH * bins, (size_t)LH * bins * sizeof(int64_t));
            for (int l = 0; l < L; l++) {
                int cnt[4096] = {0};
                for (int h = 0; h < H; h++) {
                    s->group_mean[st][l * s->KV + s->kv_group[h]] += s->mean[st][l * H + h];
                    cnt[s->kv_group[h]]++;
                }
                for (int g = 0; g < s->KV; g++) if (cnt[g]) s->group_mean[st][l * s->KV + g] /= cnt[g];
            }
        }
        s->sink_rate_mean = (float)m[nw].mean;
        if (s->js_mean) {
            s->head_order = xmalloc(LH * sizeof(int32_t));
            cluster_order(s->js_mean, LH, s->head_order);
        }
        free(m);
    }
    free(all); free(mine); free(hsum); free(tall); free(acc); free(top); free(hist);
    return rc;
}

/* HDF5's own error stack is silenced while the file is read: every failure is reported in one
 * line by err_set, naming the file and the dataset. */
int summary_compute(summary *s, const char *path, int bins, int k, MPI_Comm comm)
{
    memset(s, 0, sizeof *s);
    H5E_auto2_t func;
    void *data;
    H5Eget_auto2(H5E_DEFAULT, &func, &data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    const int rc = compute(s, path, bins, k, comm);
    H5Eset_auto2(H5E_DEFAULT, func, data);
    if (rc) summary_free(s);   /* a file refused after the checks allocated (kv_group) leaves nothing */
    return rc;
}

void summary_free(summary *s)
{
    for (int st = 0; st < STAT_N; st++) {
        free(s->mean[st]); free(s->std[st]); free(s->hist[st]); free(s->exemplars[st]); free(s->group_mean[st]);
    }
    free(s->kv_group); free(s->head_order); free(s->js_mean); free(s->cos);
    memset(s, 0, sizeof *s);
}
