/* h5build.c — see h5build.h. */
#include "h5build.h"
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

typedef struct { const uint8_t *p; size_t n; } bytes;
static unsigned take(bytes *b) { if (!b->n) return 0; b->n--; return *b->p++; }

static hid_t file_type(unsigned k)
{
    static const hid_t *const t[] = {&H5T_NATIVE_UINT8_g, &H5T_NATIVE_INT8_g, &H5T_NATIVE_INT16_g, &H5T_NATIVE_UINT16_g,
                                     &H5T_NATIVE_INT32_g, &H5T_NATIVE_UINT32_g, &H5T_NATIVE_INT64_g, &H5T_NATIVE_UINT64_g,
                                     &H5T_NATIVE_FLOAT_g, &H5T_NATIVE_DOUBLE_g};
    if (k < 10) return H5Tcopy(*t[k]);
    hid_t ty = H5Tcopy(k == 10 ? H5T_C_S1 : H5T_IEEE_F32LE);
    if (k == 10) H5Tset_size(ty, 8);
    else { H5Tset_fields(ty, 15, 10, 5, 0, 10); H5Tset_size(ty, 2); H5Tset_ebias(ty, 15); }   /* float16 */
    return ty;
}

/* the attributes of attrs[] the next byte selects, on object obj */
static void add_attrs(hid_t obj, const char *const *attrs, int nattr, bytes *b)
{
    const unsigned mask = take(b);
    for (int j = 0; j < nattr && j < 8; j++) {
        if (!(mask >> j & 1)) continue;
        const unsigned kind = take(b) % 4;
        const int64_t small = (int8_t)take(b), v = kind == 1 ? small * ((int64_t)1 << 33) : small;
        const double d = small / 4.0;
        hid_t ty = kind == 2 ? H5Tcopy(H5T_NATIVE_DOUBLE) : kind == 3 ? H5Tcopy(H5T_C_S1) : H5Tcopy(H5T_NATIVE_INT64);
        if (kind == 3) H5Tset_size(ty, 4);
        hid_t sp = H5Screate(H5S_SCALAR), a = H5Acreate2(obj, attrs[j], ty, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) { H5Awrite(a, ty, kind == 2 ? (const void *)&d : kind == 3 ? (const void *)"12x" : (const void *)&v); H5Aclose(a); }
        H5Sclose(sp); H5Tclose(ty);
    }
}

int h5build(const char *path, const char *const *names, int n, const char *const *attrs, int nattr, const uint8_t *data,
            size_t size)
{
    static const hsize_t dim_of[16] = {1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2, 16, 33, 255, 1u << 20, 1ull << 40};
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    bytes b = {data, size};
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return -1;
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hsize_t first[4] = {1, 1, 1, 1};
    int first_rank = -1;
    for (int i = 0; i < n; i++) {
        const unsigned kind = take(&b) % 4;
        if (kind == 0) continue;
        if (kind == 1) {
            hid_t g = H5Gcreate2(f, names[i], lcpl, H5P_DEFAULT, H5P_DEFAULT);
            if (g >= 0 && nattr) add_attrs(g, attrs, nattr, &b);
            if (g >= 0) H5Gclose(g);
            continue;
        }
        const unsigned tk = take(&b) % 12, shape = take(&b), layout = take(&b) % 3;
        const int rank = (int)((shape & 7) % 5);
        hsize_t dims[4], maxd[4], chunk[4], cells = 1;
        for (int d = 0; d < rank; d++) {
            dims[d] = (shape & 0x80) && rank == first_rank ? first[d] : dim_of[take(&b) % 16];
            maxd[d] = H5S_UNLIMITED;
            chunk[d] = dims[d] < 4 ? (dims[d] ? dims[d] : 1) : 4;
            cells = dims[d] && cells > (1ull << 40) / dims[d] ? (1ull << 40) : cells * dims[d];
        }
        if (first_rank < 0) { first_rank = rank; memcpy(first, dims, sizeof dims); }
        hid_t ty = file_type(tk), sp = rank ? H5Screate_simple(rank, dims, layout ? maxd : NULL) : H5Screate(H5S_SCALAR);
        hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
        if (layout && rank) H5Pset_chunk(pl, rank, chunk);
        if (layout == 2 && rank) H5Pset_deflate(pl, 1);
        hid_t ds = H5Dcreate2(f, names[i], ty, sp, lcpl, pl, H5P_DEFAULT);
        const size_t es = H5Tget_size(ty);
        if (ds >= 0 && (shape & 0x40) && cells <= 4096) {      /* written: the bytes, repeated */
            uint8_t *buf = malloc(cells * es + 1);
            for (size_t k = 0; k < cells * es; k++) buf[k] = b.n ? b.p[k % b.n] : 0;
            H5Dwrite(ds, ty, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
            free(buf);
        }
        if (ds >= 0 && nattr) add_attrs(ds, attrs, nattr, &b);
        if (ds >= 0) H5Dclose(ds);
        H5Pclose(pl); H5Sclose(sp); H5Tclose(ty);
    }
    H5Pclose(lcpl);
    return H5Fclose(f) < 0 ? -1 : 0;
}
