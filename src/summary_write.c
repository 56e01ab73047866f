/* summary_write.c — see summary.h: /summary written into a run file (summary_write) or into a
 * file of its own that links the run (summary_write_separate), crash-safe through afile. */
#include "summary.h"
#include "check.h"
#include "h5out.h"
#include "afile.h"
#include "util.h"
#include <hdf5.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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
    unsigned long long np = 0;   /* at most one value a stored byte: a corrupt header's dataspace sizes nothing */
    int ok = (a = H5Aopen(loc, name, H5P_DEFAULT)) >= 0 && (ft = H5Aget_type(a)) >= 0
             && (mt = H5Tget_native_type(ft, H5T_DIR_DEFAULT)) >= 0 && (sp = H5Aget_space(a)) >= 0
             && !h5_space_values(sp, &np) && np <= H5Aget_storage_size(a) && (buf = xcalloc((size_t)np + 1, H5Tget_size(mt)))
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
