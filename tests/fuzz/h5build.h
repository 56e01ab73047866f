/* h5build.h — the structure-aware half of the HDF5 fuzz targets. The HDF5 library is not ours
 * (and not instrumented; it has known crashes on malformed files), so instead of fuzzing the file
 * format these targets let the fuzz bytes choose a well-formed file's contents, then fuzz OUR
 * readers' checks (h5_check_stored, shapes, types, value ranges) on it. */
#ifndef ATTNSCOPE_H5BUILD_H
#define ATTNSCOPE_H5BUILD_H
#include <stddef.h>
#include <stdint.h>

/* Creates the HDF5 file at path (replacing it). For each of names[0..n), in order, the bytes
 * choose: absent, a group, or a dataset with its type (integers of 1 to 8 bytes, float16/32/64,
 * a fixed string), rank 0 to 4, dims (small ones, 0, or up to 2^40: declared but never stored)
 * or those of names[0], contiguous / chunked / chunked+deflate, written from the bytes or left
 * unwritten (a sparse dataset). When nattr > 0 (at most 8), one more byte per group or dataset
 * says which of attrs[0..nattr) it gets, each an int64 (a small or a large value), a double or a
 * string as the next bytes say. Bytes past the end read as 0. Returns 0, or -1 when HDF5 could
 * not create the file (the input is then skipped). */
int h5build(const char *path, const char *const *names, int n, const char *const *attrs, int nattr, const uint8_t *data,
            size_t size);
#endif
