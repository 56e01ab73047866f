/* summary.c — see summary.h. */
#include "summary.h"
#include "check.h"
#include "h5out.h"
#include "afile.h"
#include "util.h"
#include <hdf5.h>
#include <math.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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
    hid_t sp = H5Dget_space(ds), ms = -1;
    hsize_t dims[8], start[8] = {0};
    H5Sget_simple_extent_dims(sp, dims, NULL);
    start[0] = first;
    dims[0] = n;
    const int ok = H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, dims, NULL) >= 0 && (ms = H5Screate_simple(nd, dims, NULL)) >= 0
                   && H5Dread(ds, H5T_NATIVE_FLOAT, ms, sp, H5P_DEFAULT, out) >= 0;
    if (ms >= 0) H5Sclose(ms);
    H5Sclose(sp);
    return ok ? 0 : err_set("%s: cannot read rows %llu to %llu of %s", path, (unsigned long long)first, (unsigned long long)(first + n), name);
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

/* ---- writing -------------------------------------------------------------------------------------
 * Our own output: every HDF5 call is checked with HDF5's automatic stack printing off, and the first
 * failure becomes one line "FILE: <what>: <strerror>", the errno read from the error stack (the sec2
 * driver records "errno = N" of the failed system call there). After it nothing more is written
 * (w->rc sticks); the caller closes the file and removes the temporary. */

typedef struct {
    hid_t f;                /* the file being written, -1 when closed */
    hid_t str_t;            /* variable-length UTF-8 string type */
    const char *shown;      /* the file named in messages */
    int rc;                 /* 0, or -1 once something failed (err_set done) */
    char **written;         /* names under /summary that put() wrote */
    int n_written;
    H5E_auto2_t saved_func; /* the caller's automatic error printing, restored by h5w_end */
    void *saved_data;
} h5w;

typedef struct { int err; char desc[256]; } h5_cause;

static herr_t cause_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    h5_cause *c = data;
    const char *p = e->desc ? strstr(e->desc, "errno = ") : NULL;
    if (p && !c->err) c->err = atoi(p + 8);
    if (n == 0 && e->desc) snprintf(c->desc, sizeof c->desc, "%s", e->desc);
    return 0;
}

/* Records the failure of the HDF5 call just made (before any other HDF5 call clears the stack). */
static void h5w_fail(h5w *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void h5w_fail(h5w *w, const char *fmt, ...)
{
    if (w->rc) return;
    h5_cause c = {0, ""};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, cause_cb, &c);   /* innermost first */
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (c.err > 0) err_set("%s: %s: %s", w->shown, what, strerror(c.err));
    else err_set("%s: %s: HDF5: %s", w->shown, what, c.desc[0] ? c.desc : "failed");
    w->rc = -1;
}

static void h5w_begin(h5w *w, const char *shown)
{
    memset(w, 0, sizeof *w);
    w->f = w->str_t = -1;
    w->shown = shown;
    H5Eget_auto2(H5E_DEFAULT, &w->saved_func, &w->saved_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if ((w->str_t = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(w->str_t, H5T_VARIABLE) < 0 || H5Tset_cset(w->str_t, H5T_CSET_UTF8) < 0)
        h5w_fail(w, "making a string type");
}

/* HDF5 1.10 frees a file's state when H5Fclose fails but keeps its identifier, and crashes in
 * MPI_Finalize when it closes it again. So our H5Fclose must not fail on I/O: once the file is
 * flushed (checked), the close's own writes (the superblock, a truncate) go to an anonymous memory
 * file standing in for HDF5's descriptor (H5Fget_vfd_handle: the sec2 driver's fd), and we apply
 * them to the temporary ourselves with checked system calls. The stand-in holds a copy of the
 * file's first CLOSE_HEAD bytes (the superblock is at 0, after a user block if any) and is as
 * long as the file; a close that writes beyond CLOSE_HEAD is refused as not understood. After a
 * failure the same stand-in takes the close's writes and is dropped with the temporary. */
#define CLOSE_HEAD ((off_t)1 << 16)

/* Opens the file read-only and checks that /summary has n_samples = N: the file as it will be
 * renamed into place is complete and readable. 0 or -1 with err_set. */
static int h5w_verify(h5w *w, const char *path, int64_t N)
{
    int64_t n = -1;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), a = -1;
    if (f >= 0 && (a = H5Aopen_by_name(f, "/summary", "n_samples", H5P_DEFAULT, H5P_DEFAULT)) >= 0) H5Aread(a, H5T_NATIVE_INT64, &n);
    if (n != N) h5w_fail(w, "reading the new file back");
    if (a >= 0) H5Aclose(a);
    if (f >= 0) H5Fclose(f);
    return w->rc;
}

/* Points HDF5's descriptor of w->f at a new stand-in holding the first CLOSE_HEAD bytes of the
 * file (read through real_fd) and as long as it. Returns the stand-in's descriptor, or -1. */
static int standin_open(h5w *w, int real_fd, char *head)
{
    int *hfd = NULL, mem = memfd_create("attnscope-close", MFD_CLOEXEC);
    struct stat st;
    ssize_t n = -1;
    if (mem >= 0 && H5Fget_vfd_handle(w->f, H5P_DEFAULT, (void **)&hfd) >= 0 && hfd && fstat(real_fd, &st) == 0
        && (n = pread(real_fd, head, CLOSE_HEAD, 0)) >= 0 && pwrite(mem, head, n, 0) == n && ftruncate(mem, st.st_size) == 0
        && dup2(mem, *hfd) == *hfd)
        return mem;
    if (mem >= 0) close(mem);
    return -1;
}

/* Applies what the close wrote to the stand-in (its head and its length) to the file. 0 or -1. */
static int standin_apply(h5w *w, int mem, int real_fd, char *head)
{
    errno = 0;
    off_t size = lseek(mem, 0, SEEK_END), beyond = lseek(mem, CLOSE_HEAD, SEEK_DATA);
    if (beyond >= 0 && beyond < size)
        return err_set("%s: closing the new file: HDF5 wrote at offset %lld, beyond the superblock", w->shown, (long long)beyond);
    ssize_t m = size < CLOSE_HEAD ? size : CLOSE_HEAD;
    errno = 0;
    if (size < 0 || pread(mem, head, m, 0) != m || pwrite(real_fd, head, m, 0) != m || ftruncate(real_fd, size) != 0)
        return err_set("%s: closing the new file: %s", w->shown, strerror(errno ? errno : EIO));
    return 0;
}

/* Flushes and closes the file (checked: the flush is where most of the bytes are written), through
 * the stand-in; real_fd is our own descriptor of the same file, path its name: it is read back.
 * Restores HDF5's error printing. Returns w->rc. */
static int h5w_end(h5w *w, int real_fd, const char *path, int64_t N)
{
    if (w->f >= 0) {
        if (!w->rc && H5Fflush(w->f, H5F_SCOPE_LOCAL) < 0) h5w_fail(w, "writing the new file");
        char *head = xmalloc(CLOSE_HEAD);
        int mem = standin_open(w, real_fd, head);   /* without one (no memfd here), HDF5 writes the file itself */
        if (H5Fclose(w->f) < 0) h5w_fail(w, "closing the new file");
        w->f = -1;
        if (mem >= 0 && !w->rc) w->rc = standin_apply(w, mem, real_fd, head);
        if (mem >= 0) close(mem);
        free(head);
        if (!w->rc) h5w_verify(w, path, N);
    }
    if (w->str_t >= 0) H5Tclose(w->str_t);
    w->str_t = -1;
    for (int i = 0; i < w->n_written; i++) free(w->written[i]);
    free(w->written);
    w->written = NULL;
    w->n_written = 0;
    H5Eset_auto2(H5E_DEFAULT, w->saved_func, w->saved_data);
    return w->rc;
}

/* A scalar attribute name = *v of type on obj (objname for messages), replacing one of that name. */
static void attr_put(h5w *w, hid_t obj, const char *objname, const char *name, hid_t type, const void *v)
{
    if (w->rc) return;
    hid_t sp = -1, a = -1;
    htri_t there = H5Aexists(obj, name);
    int ok = there >= 0 && (!there || H5Adelete(obj, name) >= 0) && (sp = H5Screate(H5S_SCALAR)) >= 0
             && (a = H5Acreate2(obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0 && H5Awrite(a, type, v) >= 0;
    if (!ok) h5w_fail(w, "writing the attribute %s of %s", name, objname);
    if (a >= 0 && H5Aclose(a) < 0) h5w_fail(w, "writing the attribute %s of %s", name, objname);
    if (sp >= 0) H5Sclose(sp);
}

/* An existing dataset name of the same type and shape, opened for rewriting, or -1 when there is
 * none (or a different one: then it is deleted). */
static hid_t reuse(h5w *w, const char *name, hid_t ftype, int nd, const hsize_t *dims)
{
    htri_t g = H5Lexists(w->f, "/summary", H5P_DEFAULT), there = g > 0 ? H5Lexists(w->f, name, H5P_DEFAULT) : g;
    if (there < 0) h5w_fail(w, "looking for %s", name);
    if (there <= 0) return -1;
    hid_t ds = H5Dopen2(w->f, name, H5P_DEFAULT), t = -1, sp = -1;
    if (ds < 0) { h5w_fail(w, "opening the old %s", name); return -1; }
    hsize_t d[8];
    int same = (t = H5Dget_type(ds)) >= 0 && H5Tequal(t, ftype) > 0 && (sp = H5Dget_space(ds)) >= 0
               && H5Sget_simple_extent_ndims(sp) == nd && H5Sget_simple_extent_dims(sp, d, NULL) == nd;
    for (int i = 0; same && i < nd; i++) same = d[i] == dims[i];
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    if (same) return ds;
    H5Dclose(ds);
    if (H5Ldelete(w->f, name, H5P_DEFAULT) < 0) h5w_fail(w, "deleting the old %s", name);
    return -1;
}

/* Writes dataset name (an old one of the same type and shape is rewritten in place, so that
 * reducing again does not grow the file) and records its name in w->written. */
/* The string attribute name of obj equals value (rewriting it would leave its old global-heap
 * copy behind: the file would grow by every reduce). */
static int attr_same_str(h5w *w, hid_t obj, const char *name, const char *value)
{
    if (H5Aexists(obj, name) <= 0) return 0;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), t = a >= 0 ? H5Aget_type(a) : -1;
    char *v = NULL;
    int same = t >= 0 && H5Tis_variable_str(t) > 0 && H5Aread(a, w->str_t, &v) >= 0 && v && !strcmp(v, value);
    if (v) H5free_memory(v);
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return same;
}

static void put(h5w *w, const char *name, hid_t ftype, hid_t mtype, int nd, const hsize_t *dims, const void *buf, const char *def)
{
    if (w->rc) return;
    w->written = xrealloc(w->written, (w->n_written + 1) * sizeof(char *));
    w->written[w->n_written++] = xstrdup(strrchr(name, '/') + 1);
    hid_t lcpl = -1, sp = -1, ds = reuse(w, name, ftype, nd, dims);
    int ok = !w->rc && (ds >= 0 || ((lcpl = H5Pcreate(H5P_LINK_CREATE)) >= 0 && H5Pset_create_intermediate_group(lcpl, 1) >= 0
                                   && (sp = nd ? H5Screate_simple(nd, dims, NULL) : H5Screate(H5S_SCALAR)) >= 0
                                   && (ds = H5Dcreate2(w->f, name, ftype, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT)) >= 0))
             && H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0;
    if (!ok) h5w_fail(w, "writing %s", name);
    if (def && !w->rc && !attr_same_str(w, ds, "definition", def)) attr_put(w, ds, name, "definition", w->str_t, &def);
    if (ds >= 0 && H5Dclose(ds) < 0) h5w_fail(w, "writing %s", name);
    if (sp >= 0) H5Sclose(sp);
    if (lcpl >= 0) H5Pclose(lcpl);
}

/* The names under /summary that the reducer writes (the run's own, head_similarity_*, are not). */
static int summary_owned(const char *name)
{
    static const char *const suffix[] = {"_mean", "_std", "_hist", "_hist_edges", "_group_mean"};
    if (!strcmp(name, "sink_rate_mean") || !strcmp(name, "head_order_clustered")) return 1;
    for (int st = 0; st < STAT_N; st++) {
        size_t n = strlen(stats_names[st]);
        if (!strncmp(name, "exemplars_", 10) && !strcmp(name + 10, stats_names[st])) return 1;
        for (size_t k = 0; k < sizeof suffix / sizeof *suffix; k++)
            if (!strncmp(name, stats_names[st], n) && !strcmp(name + n, suffix[k])) return 1;
    }
    return 0;
}

typedef struct { char **v; int n; } name_list;

static herr_t list_cb(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    name_list *l = data;
    l->v = xrealloc(l->v, (l->n + 1) * sizeof(char *));
    l->v[l->n++] = xstrdup(name);
    return 0;
}

/* The link names in group path of file f (none when it does not exist); caller frees. */
static name_list list_links(h5w *w, hid_t f, const char *path)
{
    name_list l = {NULL, 0};
    htri_t there = path[1] ? H5Lexists(f, path, H5P_DEFAULT) : 1;
    hid_t g = -1;
    if (there < 0 || (there > 0 && ((g = H5Gopen2(f, path, H5P_DEFAULT)) < 0 || H5Literate(g, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, list_cb, &l) < 0)))
        h5w_fail(w, "listing %s", path);
    if (g >= 0) H5Gclose(g);
    return l;
}

static void names_free(name_list *l)
{
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
}

static void write_datasets(h5w *w, const summary *s)
{
    const int L = s->L, H = s->H, B = s->bins, k = s->k;
    hsize_t dLH[2] = {(hsize_t)L, (hsize_t)H}, dh[3] = {(hsize_t)L, (hsize_t)H, (hsize_t)B}, de[1] = {(hsize_t)B + 1};
    hsize_t dx[3] = {(hsize_t)L, (hsize_t)H, (hsize_t)k}, dg[2] = {(hsize_t)L, (hsize_t)s->KV};
    char name[128], def[256];
    for (int st = 0; st < STAT_N; st++) {
        if (!s->have[st]) continue;
        const char *n = stats_names[st];
        snprintf(name, sizeof name, "/summary/%s_mean", n);
        snprintf(def, sizeof def, "mean of /stats/%s over the samples", n);
        put(w, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dLH, s->mean[st], def);
        snprintf(name, sizeof name, "/summary/%s_std", n);
        snprintf(def, sizeof def, "population standard deviation of /stats/%s over the samples", n);
        put(w, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dLH, s->std[st], def);
        snprintf(name, sizeof name, "/summary/%s_hist", n);
        snprintf(def, sizeof def, "histogram of /stats/%s per layer and head; bins in %s_hist_edges, the last bin closed", n, n);
        put(w, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 3, dh, s->hist[st], def);
        double *edges = xmalloc((B + 1) * sizeof(double));
        for (int b = 0; b <= B; b++) edges[b] = s->lo[st] + (s->hi[st] - s->lo[st]) * b / B;
        snprintf(name, sizeof name, "/summary/%s_hist_edges", n);
        put(w, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, de, edges, NULL);
        free(edges);
        snprintf(name, sizeof name, "/summary/%s_group_mean", n);
        snprintf(def, sizeof def, "%s_mean averaged over the query heads of each key/value head (/model/kv_group)", n);
        put(w, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dg, s->group_mean[st], def);
        snprintf(name, sizeof name, "/summary/exemplars_%s", n);
        snprintf(def, sizeof def, "per layer and head, the samples with the highest /stats/%s, highest first (ties: lower index); -1 if fewer", n);
        put(w, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 3, dx, s->exemplars[st], def);
    }
    if (s->have_sink_rate)
        put(w, "/summary/sink_rate_mean", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 0, NULL, &s->sink_rate_mean, "mean of /stats/sink_rate over the samples");
    if (s->head_order) {
        hsize_t dn[1] = {(hsize_t)L * H};
        put(w, "/summary/head_order_clustered", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, dn, s->head_order,
            "heads (layer*heads + head) in the leaf order of an average-linkage clustering of head_similarity_js_mean");
    }
    if (w->rc) return;
    hid_t g = H5Gopen2(w->f, "/summary", H5P_DEFAULT);
    if (g < 0) h5w_fail(w, "opening /summary");
    int64_t n = s->N;
    attr_put(w, g, "/summary", "n_samples", H5T_NATIVE_INT64, &n);
    if (g >= 0) H5Gclose(g);
}

int summary_write(const summary *s, const char *path, summary_write_info *info)
{
    memset(info, 0, sizeof *info);
    afile a;
    if (afile_create(&a, path, "reduce")) return -1;
    info->removed = a.removed;
    double t0 = util_now();
    if (afile_copy_from(&a, a.path, &info->bytes, &info->kernel)) return -1;
    info->copy_s = util_now() - t0;
    afile_unlock(&a);                         /* HDF5 locks the file itself while it has it open */
    h5w w;
    h5w_begin(&w, path);
    if (!w.rc && (w.f = H5Fopen(a.tmp, H5F_ACC_RDWR, H5P_DEFAULT)) < 0) h5w_fail(&w, "opening its copy %s", a.tmp);
    write_datasets(&w, s);
    /* of the old reducer's datasets, remove those not written now; the run's (head similarity) stay */
    name_list old = w.rc ? (name_list){NULL, 0} : list_links(&w, w.f, "/summary");
    char name[300];
    for (int i = 0; i < old.n && !w.rc; i++) {
        int now = 0;
        for (int j = 0; j < w.n_written; j++) now |= !strcmp(w.written[j], old.v[i]);
        if (now || !summary_owned(old.v[i])) continue;
        snprintf(name, sizeof name, "/summary/%s", old.v[i]);
        if (H5Ldelete(w.f, name, H5P_DEFAULT) < 0) h5w_fail(&w, "deleting the old %s", name);
    }
    names_free(&old);
    if (h5w_end(&w, a.fd, a.tmp, s->N) || afile_lock(&a) || afile_commit(&a)) {
        afile_abort(&a);
        return -1;
    }
    return 0;
}

/* Copies the attributes of the run file's root group into w's root. */
static herr_t attr_copy_cb(hid_t loc, const char *name, const H5A_info_t *info, void *data)
{
    h5w *w = data;
    hid_t a = -1, ft = -1, mt = -1, sp = -1, b = -1, root = -1;
    void *buf = NULL;
    hssize_t np = 0;
    int ok = (a = H5Aopen(loc, name, H5P_DEFAULT)) >= 0 && (ft = H5Aget_type(a)) >= 0
             && (mt = H5Tget_native_type(ft, H5T_DIR_DEFAULT)) >= 0 && (sp = H5Aget_space(a)) >= 0
             && (np = H5Sget_simple_extent_npoints(sp)) >= 0 && (buf = xcalloc((size_t)np + 1, H5Tget_size(mt)))
             && H5Aread(a, mt, buf) >= 0;
    if (!ok) {
        h5w_fail(w, "reading the run file's attribute %s", name);
    } else {
        ok = (root = H5Gopen2(w->f, "/", H5P_DEFAULT)) >= 0 && (b = H5Acreate2(root, name, ft, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0
             && H5Awrite(b, mt, buf) >= 0;
        if (!ok) h5w_fail(w, "writing the attribute %s", name);
        if (b >= 0 && H5Aclose(b) < 0) h5w_fail(w, "writing the attribute %s", name);
        if (H5Tdetect_class(mt, H5T_VLEN) > 0 || H5Tis_variable_str(mt) > 0) H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, buf);
    }
    free(buf);
    if (root >= 0) H5Gclose(root);
    if (sp >= 0) H5Sclose(sp);
    if (mt >= 0) H5Tclose(mt);
    if (ft >= 0) H5Tclose(ft);
    if (a >= 0) H5Aclose(a);
    return w->rc ? -1 : 0;
}

/* The run file's path as the summary file should store it: relative to the summary file's
 * directory when they share it (HDF5 looks for an external link's file there), else absolute. */
static int link_target(const char *run, const afile *a, char *out, size_t cap)
{
    char *r = realpath(run, NULL), d[4096];
    if (!r) return err_set("%s: cannot resolve: %s", run, strerror(errno));
    snprintf(d, sizeof d, "%s", a->path);
    char *slash = strrchr(d, '/');
    if (slash) *slash = 0; else snprintf(d, sizeof d, ".");
    char *rd = realpath(slash == d ? "/" : d, NULL);
    const char *rs = strrchr(r, '/');
    int same = rd && (size_t)(rs - r) == strlen(rd) && !strncmp(r, rd, rs - r);
    snprintf(out, cap, "%s", same ? rs + 1 : r);
    free(r); free(rd);
    return 0;
}

int summary_write_separate(const summary *s, const char *run, const char *out, summary_write_info *info)
{
    memset(info, 0, sizeof *info);
    struct stat rs, os;
    if (stat(run, &rs) == 0 && stat(out, &os) == 0 && rs.st_dev == os.st_dev && rs.st_ino == os.st_ino)
        return err_set("%s: is the run file itself: the summary file needs another name", out);
    afile a;
    if (afile_create(&a, out, "reduce")) return -1;
    info->removed = a.removed;
    char target[4096];
    if (link_target(run, &a, target, sizeof target)) { afile_abort(&a); return -1; }
    afile_unlock(&a);
    h5w w;
    h5w_begin(&w, out);
    hid_t r = -1, rroot = -1, g = -1;
    if (!w.rc && (w.f = H5Fcreate(a.tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)) < 0) h5w_fail(&w, "creating %s", a.tmp);
    if (!w.rc && (r = H5Fopen(run, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0) h5w_fail(&w, "opening the run file %s", run);
    if (!w.rc && (g = H5Gcreate2(w.f, "/summary", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0) h5w_fail(&w, "creating /summary");
    if (g >= 0) H5Gclose(g);
    /* the run's objects (and its own /summary datasets) as external links: readers of this file
     * find /stats, /samples, /attention, ... where they are in the run's file */
    char name[300];
    name_list top = w.rc ? (name_list){NULL, 0} : list_links(&w, r, "/");
    for (int i = 0; i < top.n && !w.rc; i++) {
        if (!strcmp(top.v[i], "summary")) continue;
        snprintf(name, sizeof name, "/%s", top.v[i]);
        if (H5Lcreate_external(target, name, w.f, name, H5P_DEFAULT, H5P_DEFAULT) < 0) h5w_fail(&w, "linking %s to %s", name, target);
    }
    names_free(&top);
    name_list runs = w.rc ? (name_list){NULL, 0} : list_links(&w, r, "/summary");
    for (int i = 0; i < runs.n && !w.rc; i++) {
        if (summary_owned(runs.v[i])) continue;
        snprintf(name, sizeof name, "/summary/%s", runs.v[i]);
        if (H5Lcreate_external(target, name, w.f, name, H5P_DEFAULT, H5P_DEFAULT) < 0) h5w_fail(&w, "linking %s to %s", name, target);
    }
    names_free(&runs);
    if (!w.rc && ((rroot = H5Gopen2(r, "/", H5P_DEFAULT)) < 0 || H5Aiterate2(rroot, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, attr_copy_cb, &w) < 0))
        h5w_fail(&w, "copying the run file's attributes");
    if (rroot >= 0) H5Gclose(rroot);
    if (r >= 0) H5Fclose(r);
    if (!w.rc) {
        const char *t = target;
        hid_t root = H5Gopen2(w.f, "/", H5P_DEFAULT);
        if (root < 0) h5w_fail(&w, "opening /");
        attr_put(&w, root, "/", "summary_of", w.str_t, &t);
        if (root >= 0) H5Gclose(root);
    }
    write_datasets(&w, s);
    if (h5w_end(&w, a.fd, a.tmp, s->N) || afile_lock(&a) || afile_commit(&a)) {
        afile_abort(&a);
        return -1;
    }
    return 0;
}

void summary_free(summary *s)
{
    for (int st = 0; st < STAT_N; st++) {
        free(s->mean[st]); free(s->std[st]); free(s->hist[st]); free(s->exemplars[st]); free(s->group_mean[st]);
    }
    free(s->kv_group); free(s->head_order); free(s->js_mean); free(s->cos);
    memset(s, 0, sizeof *s);
}
