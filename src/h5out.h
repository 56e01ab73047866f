/* h5out.h — the output file. It is created complete by one rank (serial HDF5: a failed write
 * cannot leave other ranks waiting in a collective): every dataset contiguous and allocated at
 * creation, every attribute written, then closed. The run's data then go in as raw bytes at each
 * dataset's file offset (h5raw_*): HDF5's metadata is never written again, so a process killed in
 * the middle of a write leaves a file whose structure is intact (HDF5 itself has no crash
 * consistency). The file types are little-endian, as the hosts we run on: the bytes in memory
 * are the bytes in the file. */
#ifndef ATTNSCOPE_H5OUT_H
#define ATTNSCOPE_H5OUT_H
#include <hdf5.h>
#include <mpi.h>
#include <stdint.h>

typedef struct {
    hid_t file;
    char path[4096];
    H5E_auto2_t efunc;   /* HDF5's error printing, silenced while the file is created */
    void *edata;
} h5out;

/* Creates the file at path (one rank), exclusively: an existing file or link there is an error,
 * never truncated or followed. 0, or -1 with err_set. Until h5out_close, a failed HDF5 call ends
 * the job with one line naming the file and the system error (check_set_writing). */
int h5out_create(h5out *o, const char *path);

/* The same, for an afile temporary (afile.h) that we created and own: it is truncated, and
 * messages name `shown`, the file it will replace. */
int h5out_create_tmp(h5out *o, const char *tmp, const char *shown);

/* Creates dataset name (parent groups made as needed) of the given type and dims; chunk may be
 * NULL (contiguous, allocated now: h5out_locate finds it). Returns the dataset id; aborts on
 * HDF5 failure (our own file). */
hid_t h5out_dataset(h5out *o, const char *name, hid_t type, int ndim, const hsize_t *dims, const hsize_t *chunk);

/* Writes rows [first, first+n) (along dim 0) of a dataset of a file being created, from buf,
 * which holds n rows of the dataset's row shape in memtype (ds < 0 or n = 0: nothing). */
void h5out_write_rows(hid_t ds, hid_t memtype, int64_t first, int64_t n, const void *buf);

/* Attributes (variable-length UTF-8 strings, int64, double) on any object. */
void h5_attr_str(hid_t obj, const char *name, const char *value);
void h5_attr_i64(hid_t obj, const char *name, int64_t value);
void h5_attr_f64(hid_t obj, const char *name, double value);

/* A 2-byte IEEE half-precision file type (HDF5 1.10 has no predefined one); h5py reads it as
 * float16. Owned by the caller (H5Tclose). */
hid_t h5_type_f16(void);
/* A fixed-length UTF-8 string type of size bytes, NUL-padded. Caller closes. */
hid_t h5_type_str(size_t size);

/* Closes the file. */
void h5out_close(h5out *o);

/* A contiguous dataset as raw bytes: dim 0 has `rows` rows of row_bytes each from file offset
 * `off`; off < 0 for a dataset that is not there. */
typedef struct {
    int64_t off, rows;
    size_t row_bytes;
} h5raw;

/* Collective: rank 0 opens path read-only and finds every named dataset (NULL names are skipped:
 * raw[i].off = -1), checks that it is contiguous and allocated, and the result is broadcast.
 * 0, or -1 with err_set naming the file and the dataset. */
int h5out_locate(const char *path, const char *const *names, int n, h5raw *raw, MPI_Comm comm);

/* pwrite / pread of nbytes at byte `at` inside a raw dataset (at + nbytes within it; EINTR and
 * short transfers handled). 0, or -1 with errno set. */
int h5raw_write(int fd, const h5raw *ds, int64_t at, size_t nbytes, const void *buf);
int h5raw_read(int fd, const h5raw *ds, int64_t at, size_t nbytes, void *buf);
/* Rows [first, first + n) of a raw dataset. */
int h5raw_write_rows(int fd, const h5raw *ds, int64_t first, int64_t n, const void *buf);
int h5raw_read_rows(int fd, const h5raw *ds, int64_t first, int64_t n, void *buf);

/* Reads the block [start, start + count) of an nd-dimensional dataset (nd <= 8) into out (the block
 * contiguous, as memtype), HDF5's error stack silenced: 0, or -1 (the caller names the file). A
 * block with a 0 count reads nothing. The selection must lie inside the dataset (the caller checked
 * its shape). */
int h5_read_block(hid_t ds, hid_t memtype, int nd, const hsize_t *start, const hsize_t *count, void *out);

/* The number of values dataspace sp declares, in *n; -1 when it cannot be read or the product of
 * its dimensions passes 2^64 (HDF5's H5Sget_simple_extent_npoints wraps instead: [3, 2^40, 2^40]
 * has "0" points). Size nothing from a user's file by npoints. */
int h5_space_values(hid_t sp, unsigned long long *n);

/* Reading files a user hands us: 0 when dataset ds (name, of file f at path file) stores what its
 * shape declares — unfiltered data in full, filtered (compressed) data at most 1100 times its
 * stored bytes, never more bytes than the file holds — else -1 with err_set naming both. Call it
 * before allocating anything sized by a declared shape (h5out.c). */
int h5_check_stored(hid_t f, hid_t ds, const char *file, const char *name);
#endif
