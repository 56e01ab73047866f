/* h5out.c — see h5out.h. */
#include "h5out.h"
#include "check.h"
#include "util.h"
#include <libgen.h>
#include <unistd.h>

/* the raw writes put memory's bytes into little-endian file types */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "h5raw writes assume a little-endian host");

/* the system error behind a failed HDF5 write (the sec2 driver records "errno = N, error message
 * = '...'" in its stack entry), for check_fail's one line */
static herr_t find_syserr(unsigned n, const H5E_error2_t *e, void *buf)
{
    const char *m = e->desc ? strstr(e->desc, "error message = '") : NULL;
    if (m) {
        m += strlen("error message = '");
        size_t k = strcspn(m, "'");
        snprintf(buf, 256, "%.*s", (int)k, m);
    }
    return 0;
}

static const char *h5_syserr(void)
{
    static char buf[256];
    buf[0] = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, find_syserr, buf);
    return buf[0] ? buf : NULL;
}

/* the file at path created with flags; messages and check_set_writing name `shown` */
static int create(h5out *o, const char *path, const char *shown, unsigned flags)
{
    memset(o, 0, sizeof *o);
    o->file = -1;
    if (strlen(shown) >= sizeof o->path) return err_set("%s: output path too long", shown);
    snprintf(o->path, sizeof o->path, "%s", shown);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    CHECK_H5(H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST));
    errno = 0;
    H5E_BEGIN_TRY { o->file = H5Fcreate(path, flags, H5P_DEFAULT, fapl); } H5E_END_TRY;
    const int err = errno;
    const char *why = o->file < 0 ? h5_syserr() : NULL;   /* before the next call clears the stack */
    if (o->file < 0) err_set("%s: cannot create the output file: %s", shown, why ? why : err ? strerror(err) : "it exists, or the directory is not writable");
    H5Pclose(fapl);
    if (o->file < 0) return -1;
    /* until h5out_close, a failed HDF5 call is a failed write of this file: one line, no stack */
    H5Eget_auto2(H5E_DEFAULT, &o->efunc, &o->edata);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    check_set_writing(o->path, h5_syserr);
    return 0;
}

int h5out_create(h5out *o, const char *path)
{
    /* EXCL: O_CREAT|O_EXCL, so neither an existing file nor a planted link is opened */
    return create(o, path, path, H5F_ACC_EXCL);
}

int h5out_create_tmp(h5out *o, const char *tmp, const char *shown)
{
    return create(o, tmp, shown, H5F_ACC_TRUNC);
}

hid_t h5out_dataset(h5out *o, const char *name, hid_t type, int ndim, const hsize_t *dims, const hsize_t *chunk)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    CHECK_H5(H5Pset_create_intermediate_group(lcpl, 1));
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunk) CHECK_H5(H5Pset_chunk(dcpl, ndim, chunk));
    else CHECK_H5(H5Pset_layout(dcpl, H5D_CONTIGUOUS));
    CHECK_H5(H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY));
    /* every element is written by us: skip the fill pass (parallel HDF5 allocates early) */
    CHECK_H5(H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER));
    hid_t sp = H5Screate_simple(ndim, dims, NULL);
    hid_t ds = H5Dcreate2(o->file, name, type, sp, lcpl, dcpl, H5P_DEFAULT);
    CHECK_H5(ds);
    H5Sclose(sp); H5Pclose(dcpl); H5Pclose(lcpl);
    return ds;
}

void h5out_write_rows(hid_t ds, hid_t memtype, int64_t first, int64_t n, const void *buf)
{
    if (ds < 0 || n == 0) return;
    hid_t fs = H5Dget_space(ds);
    int nd = H5Sget_simple_extent_ndims(fs);
    hsize_t dims[8], start[8] = {0};
    H5Sget_simple_extent_dims(fs, dims, NULL);
    start[0] = (hsize_t)first;
    dims[0] = (hsize_t)n;
    CHECK_H5(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, dims, NULL));
    hid_t ms = H5Screate_simple(nd, dims, NULL);
    CHECK_H5(H5Dwrite(ds, memtype, ms, fs, H5P_DEFAULT, buf));
    H5Sclose(ms);
    H5Sclose(fs);
}

int h5_read_block(hid_t ds, hid_t memtype, int nd, const hsize_t *start, const hsize_t *count, void *out)
{
    for (int d = 0; d < nd; d++)
        if (count[d] == 0) return 0;
    hid_t sp = H5Dget_space(ds), ms = -1;
    herr_t r = sp < 0 ? -1 : 0;
    H5E_BEGIN_TRY {
        if (r >= 0) r = H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, count, NULL);
        if (r >= 0) r = (ms = H5Screate_simple(nd, count, NULL)) < 0 ? -1 : 0;
        if (r >= 0) r = H5Dread(ds, memtype, ms, sp, H5P_DEFAULT, out);
    } H5E_END_TRY;
    if (ms >= 0) H5Sclose(ms);
    if (sp >= 0) H5Sclose(sp);
    return r < 0 ? -1 : 0;
}

static void attr_write(hid_t obj, const char *name, hid_t type, const void *buf)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
    CHECK_H5(a);
    CHECK_H5(H5Awrite(a, type, buf));
    H5Aclose(a); H5Sclose(sp);
}

void h5_attr_str(hid_t obj, const char *name, const char *value)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    attr_write(obj, name, t, &value);
    H5Tclose(t);
}

void h5_attr_i64(hid_t obj, const char *name, int64_t value) { attr_write(obj, name, H5T_NATIVE_INT64, &value); }
void h5_attr_f64(hid_t obj, const char *name, double value) { attr_write(obj, name, H5T_NATIVE_DOUBLE, &value); }

hid_t h5_type_f16(void)
{
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    CHECK_H5(H5Tset_fields(t, 15, 10, 5, 0, 10));
    CHECK_H5(H5Tset_size(t, 2));
    CHECK_H5(H5Tset_ebias(t, 15));
    return t;
}

hid_t h5_type_str(size_t size)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    CHECK_H5(H5Tset_size(t, size));
    CHECK_H5(H5Tset_strpad(t, H5T_STR_NULLPAD));
    CHECK_H5(H5Tset_cset(t, H5T_CSET_UTF8));
    return t;
}

void h5out_close(h5out *o)
{
    if (o->file >= 0) CHECK_H5(H5Fclose(o->file));
    o->file = -1;
    check_set_writing(NULL, NULL);
    H5Eset_auto2(H5E_DEFAULT, o->efunc, o->edata);
}

int h5out_locate(const char *path, const char *const *names, int n, h5raw *raw, MPI_Comm comm)
{
    int rank, rc = 0;
    MPI_Comm_rank(comm, &rank);
    if (rank == 0) {
        hid_t f;
        H5E_BEGIN_TRY { f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); } H5E_END_TRY;
        if (f < 0) rc = err_set("%s: cannot open as HDF5", path);
        for (int i = 0; i < n && !rc; i++) {
            raw[i] = (h5raw){-1, 0, 0};
            if (!names[i]) continue;
            hid_t ds = -1;
            H5E_BEGIN_TRY { if (H5Lexists(f, names[i], H5P_DEFAULT) > 0) ds = H5Dopen2(f, names[i], H5P_DEFAULT); } H5E_END_TRY;
            if (ds < 0) { rc = err_set("%s: no dataset %s", path, names[i]); break; }
            hid_t sp = H5Dget_space(ds), ty = H5Dget_type(ds), pl = H5Dget_create_plist(ds);
            hsize_t dims[8] = {0};
            int nd = H5Sget_simple_extent_ndims(sp);
            haddr_t off = H5Dget_offset(ds);
            if (nd >= 1 && nd <= 8 && H5Pget_layout(pl) == H5D_CONTIGUOUS && off != HADDR_UNDEF) {
                H5Sget_simple_extent_dims(sp, dims, NULL);
                size_t row = H5Tget_size(ty);
                for (int k = 1; k < nd; k++) row *= dims[k];
                raw[i] = (h5raw){(int64_t)off, (int64_t)dims[0], row};
            } else rc = err_set("%s: %s is not a contiguous, allocated dataset", path, names[i]);
            H5Pclose(pl); H5Tclose(ty); H5Sclose(sp); H5Dclose(ds);
        }
        if (f >= 0) H5Fclose(f);
    }
    CHECK_MPI(MPI_Bcast(&rc, 1, MPI_INT, 0, comm));
    if (rc) return rank ? err_set("%s: rank 0 could not locate the datasets", path) : -1;
    CHECK_MPI(MPI_Bcast(raw, (int)(n * sizeof *raw), MPI_BYTE, 0, comm));
    return 0;
}

static int in_range(const h5raw *ds, int64_t at, size_t nbytes)
{
    if (ds->off < 0 || at < 0 || (uint64_t)at + nbytes > (uint64_t)ds->rows * ds->row_bytes) { errno = EINVAL; return 0; }
    return 1;
}

int h5raw_write(int fd, const h5raw *ds, int64_t at, size_t nbytes, const void *buf)
{
    if (!in_range(ds, at, nbytes)) return -1;
    const char *p = buf;
    off_t o = (off_t)(ds->off + at);
    while (nbytes) {
        ssize_t w = pwrite(fd, p, nbytes, o);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        if (w == 0) { errno = EIO; return -1; }
        p += w; o += w; nbytes -= (size_t)w;
    }
    return 0;
}

int h5raw_read(int fd, const h5raw *ds, int64_t at, size_t nbytes, void *buf)
{
    if (!in_range(ds, at, nbytes)) return -1;
    char *p = buf;
    off_t o = (off_t)(ds->off + at);
    while (nbytes) {
        ssize_t r = pread(fd, p, nbytes, o);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) { memset(p, 0, nbytes); return 0; }   /* a hole at the end of a sparse file */
        p += r; o += r; nbytes -= (size_t)r;
    }
    return 0;
}

int h5raw_write_rows(int fd, const h5raw *ds, int64_t first, int64_t n, const void *buf)
{
    if (ds->off < 0 || n == 0) return 0;
    return h5raw_write(fd, ds, first * (int64_t)ds->row_bytes, (size_t)n * ds->row_bytes, buf);
}

int h5raw_read_rows(int fd, const h5raw *ds, int64_t first, int64_t n, void *buf)
{
    if (ds->off < 0 || n == 0) return 0;
    return h5raw_read(fd, ds, first * (int64_t)ds->row_bytes, (size_t)n * ds->row_bytes, buf);
}

int h5_space_values(hid_t sp, unsigned long long *n)
{
    hsize_t dims[H5S_MAX_RANK];
    const int nd = H5Sget_simple_extent_ndims(sp);
    *n = 0;
    if (nd < 0 || H5Sget_simple_extent_dims(sp, dims, NULL) != nd) return -1;
    if (H5Sget_simple_extent_type(sp) == H5S_NULL) return 0;
    unsigned long long v = 1;
    int wraps = 0;
    for (int d = 0; d < nd; d++) wraps |= __builtin_mul_overflow(v, (unsigned long long)dims[d], &v);
    for (int d = 0; d < nd; d++)
        if (dims[d] == 0) return 0;   /* no values, however large the other dimensions */
    if (wraps) return -1;
    *n = v;
    return 0;
}

/* Reading files a user hands us (h5out.h). 0 when dataset ds (name, of file f at path file) stores
 * what its shape declares: unfiltered data in full (the chunks of a sparse chunked dataset that
 * were never written read as fill values, so a file of a few KB can declare terabytes), filtered
 * (compressed) data at most H5_MAX_RATIO times its stored bytes (deflate's limit is about
 * 1032:1), and never more bytes stored than the file holds. Else -1 with err_set naming both.
 * Call it before allocating anything sized by the declared shape. */
#define H5_MAX_RATIO 1100
int h5_check_stored(hid_t f, hid_t ds, const char *file, const char *name)
{
    hid_t sp = H5Dget_space(ds), ty = H5Dget_type(ds), pl = H5Dget_create_plist(ds);
    unsigned long long np = 0;
    const int wraps = sp >= 0 && h5_space_values(sp, &np);
    const size_t es = ty >= 0 ? H5Tget_size(ty) : 0;
    const int nf = pl >= 0 ? H5Pget_nfilters(pl) : -1;
    const hsize_t stored = H5Dget_storage_size(ds);
    hsize_t fsize = 0;
    const herr_t fr = H5Fget_filesize(f, &fsize);
    if (pl >= 0) H5Pclose(pl);
    if (ty >= 0) H5Tclose(ty);
    if (sp >= 0) H5Sclose(sp);
    unsigned long long declared;
    if (sp < 0 || es == 0 || nf < 0 || fr < 0) return err_set("%s: cannot read the shape and layout of %s", file, name);
    if (wraps || __builtin_mul_overflow(np, (unsigned long long)es, &declared))
        return err_set("%s: %s declares more than 2^64 bytes (its dimensions' product overflows)", file, name);
    if (stored > fsize)
        return err_set("%s: %s claims %llu stored bytes in a file of %llu bytes (a corrupt file?)", file, name,
                       (unsigned long long)stored, (unsigned long long)fsize);
    if (nf == 0 && stored < declared)
        return err_set("%s: %s declares %llu values (%.4g GB) but the file stores only %llu bytes of them: rows that were "
                       "never written (a sparse chunked dataset) are refused", file, name, np, declared / 1e9,
                       (unsigned long long)stored);
    if (nf > 0 && declared / H5_MAX_RATIO > stored)
        return err_set("%s: %s declares %llu values (%.4g GB) but the file stores only %llu compressed bytes of them (more "
                       "than %d:1): rows that were never written are refused", file, name, np, declared / 1e9,
                       (unsigned long long)stored, H5_MAX_RATIO);
    return 0;
}
