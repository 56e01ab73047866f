/* dataset.c — see dataset.h. */
#include "dataset.h"
#include "h5out.h"
#include "util.h"
#include <unistd.h>
#include <hdf5.h>
#include <string.h>

/* The most samples a --input file may declare: a rank's count is an int. */
#define DATASET_MAX_SAMPLES INT32_MAX

void dataset_shard(int64_t N, int rank, int nranks, int64_t *first, int *n)
{
    int64_t a = N * rank / nranks, b = N * (rank + 1) / nranks;
    *first = a;
    *n = (int)(b - a);
}

static int is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\f' && s[i] != '\v') return 0;
    return 1;
}

int dataset_from_text(dataset *d, const char *path, const tokenizer *tok, int max_len, int rank, int nranks)
{
    memset(d, 0, sizeof *d);
    d->max_len = max_len;
    size_t size;
    char *text = util_read_file(path, (size_t)1 << 36, &size);
    if (!text) return -1;
    /* pass 1: validate every line, collect the non-blank ones */
    int64_t cap = 1024, N = 0, lineno = 0;
    size_t *start = xmalloc(cap * sizeof(size_t)), *llen = xmalloc(cap * sizeof(size_t));
    int64_t *row = xmalloc(cap * sizeof(int64_t));
    for (size_t p = 0; p < size;) {
        const char *nl = memchr(text + p, '\n', size - p);
        size_t e = nl ? (size_t)(nl - text) : size, n = e - p;
        lineno++;
        size_t ok = util_utf8_valid_prefix(text + p, n);
        if (ok != n) {
            free(text); free(start); free(llen); free(row);
            return err_set("%s:%lld: invalid UTF-8 at byte %zu of the line", path, (long long)lineno, ok + 1);
        }
        if (memchr(text + p, 0, n)) {
            free(text); free(start); free(llen); free(row);
            return err_set("%s:%lld: NUL byte in the line (not a text file?)", path, (long long)lineno);
        }
        if (n && text[p + n - 1] == '\r') n--;
        if (!is_blank(text + p, n)) {
            if (N == cap) {
                cap *= 2;
                start = xrealloc(start, cap * sizeof(size_t));
                llen = xrealloc(llen, cap * sizeof(size_t));
                row = xrealloc(row, cap * sizeof(int64_t));
            }
            start[N] = p; llen[N] = n; row[N] = lineno; N++;
        }
        p = e + 1;
    }
    if (N == 0) {
        free(text); free(start); free(llen); free(row);
        return err_set("%s: no non-blank line: the corpus is empty", path);
    }
    d->n_total = N;
    dataset_shard(N, rank, nranks, &d->first, &d->n);
    d->off = xmalloc((d->n + 1) * sizeof(int64_t));
    d->len = xmalloc((d->n ? d->n : 1) * sizeof(int));
    d->len_full = xmalloc((d->n ? d->n : 1) * sizeof(int));
    d->source_row = xmalloc((d->n ? d->n : 1) * sizeof(int64_t));
    int64_t idcap = (int64_t)d->n * 32 + max_len;
    d->ids = xmalloc(idcap * sizeof(int32_t));
    d->off[0] = 0;
    for (int i = 0; i < d->n; i++) {
        int64_t g = d->first + i;
        if (d->off[i] + max_len > idcap) {
            idcap = 2 * idcap + max_len;
            d->ids = xrealloc(d->ids, idcap * sizeof(int32_t));
        }
        int full = 0;
        int k = tok_encode(tok, text + start[g], llen[g], max_len, d->ids + d->off[i], &full);
        d->len[i] = k;
        d->len_full[i] = full;
        d->source_row[i] = row[g];
        d->off[i + 1] = d->off[i] + k;
    }
    free(text); free(start); free(llen); free(row);
    return 0;
}

/* Reads rows [first, first+n) of a 2-D integer dataset as int32 (HDF5 converts; values out of
 * int32 range are caught by the callers' range checks since they saturate). */
static int read_rows(hid_t f, const char *name, const char *path, int64_t N, int64_t L, int64_t first, int n,
                     int32_t *out, int required)
{
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0) {
        if (required) return err_set("%s: no dataset %s", path, name);
        return 1;
    }
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0) return err_set("%s: cannot open %s", path, name);
    hid_t sp = H5Dget_space(ds), ty = H5Dget_type(ds);
    int rc = 0;
    hsize_t dims[2] = {0, 0};
    if (H5Tget_class(ty) != H5T_INTEGER) rc = err_set("%s: %s is not an integer dataset", path, name);
    else if (H5Sget_simple_extent_ndims(sp) != 2) rc = err_set("%s: %s must be 2-D [samples, tokens]", path, name);
    else {
        H5Sget_simple_extent_dims(sp, dims, NULL);
        if (N >= 0 && ((int64_t)dims[0] != N || (int64_t)dims[1] != L))
            rc = err_set("%s: %s has shape [%llu, %llu], /input_ids has [%lld, %lld]", path, name,
                         (unsigned long long)dims[0], (unsigned long long)dims[1], (long long)N, (long long)L);
    }
    if (!rc && n > 0) {
        const hsize_t start[2] = {(hsize_t)first, 0}, count[2] = {(hsize_t)n, dims[1]};
        if (h5_read_block(ds, H5T_NATIVE_INT32, 2, start, count, out)) rc = err_set("%s: cannot read %s", path, name);
    }
    H5Tclose(ty); H5Sclose(sp); H5Dclose(ds);
    return rc;
}

int dataset_from_h5(dataset *d, const char *path, int max_len, int vocab, int n_types, int rank, int nranks)
{
    memset(d, 0, sizeof *d);
    d->max_len = max_len;
    hid_t f;
    const int fd = util_open_regular(path, NULL);      /* (a named pipe would block H5Fopen forever) */
    if (fd < 0) return -1;
    close(fd);
    H5E_BEGIN_TRY { f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); } H5E_END_TRY;
    if (f < 0) return err_set("%s: cannot open as HDF5", path);
    int rc = -1;
    int32_t *ids = NULL, *mask = NULL, *types = NULL;
    hid_t ds;
    H5E_BEGIN_TRY { ds = H5Dopen2(f, "/input_ids", H5P_DEFAULT); } H5E_END_TRY;
    if (ds < 0) { err_set("%s: no dataset /input_ids", path); goto done; }
    hid_t sp = H5Dget_space(ds);
    hsize_t dims[2] = {0, 0};
    int nd = H5Sget_simple_extent_ndims(sp);
    if (nd == 2) H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp); H5Dclose(ds);
    if (nd != 2) { err_set("%s: /input_ids must be 2-D [samples, tokens]", path); goto done; }
    if (dims[0] == 0 || dims[1] == 0) { err_set("%s: /input_ids is empty", path); goto done; }
    if (dims[0] > DATASET_MAX_SAMPLES) {
        err_set("%s: /input_ids declares %llu samples; at most %d (2^31 - 1) are supported", path, (unsigned long long)dims[0],
                DATASET_MAX_SAMPLES);
        goto done;
    }
    if (dims[1] > (1u << 20)) { err_set("%s: /input_ids has %llu tokens per row", path, (unsigned long long)dims[1]); goto done; }
    /* every dataset read must store what it declares before buffers of its shard's size are made */
    static const char *const names[] = {"/input_ids", "/attention_mask", "/token_type_ids"};
    for (int k = 0; k < 3; k++) {
        int bad = 0;
        H5E_BEGIN_TRY {
            if (H5Lexists(f, names[k], H5P_DEFAULT) > 0 && (ds = H5Dopen2(f, names[k], H5P_DEFAULT)) >= 0) {
                bad = h5_check_stored(f, ds, path, names[k]);
                H5Dclose(ds);
            }
        } H5E_END_TRY;
        if (bad) goto done;
    }
    const int64_t N = dims[0], L = dims[1];
    d->n_total = N;
    dataset_shard(N, rank, nranks, &d->first, &d->n);
    size_t cells = (size_t)d->n * L;
    ids = xmalloc((cells ? cells : 1) * sizeof(int32_t));
    mask = xmalloc((cells ? cells : 1) * sizeof(int32_t));
    types = xmalloc((cells ? cells : 1) * sizeof(int32_t));
    int r;
    H5E_BEGIN_TRY {
        r = read_rows(f, "/input_ids", path, -1, L, d->first, d->n, ids, 1);
    } H5E_END_TRY;
    if (r) goto done;
    int have_mask, have_types;
    H5E_BEGIN_TRY { have_mask = read_rows(f, "/attention_mask", path, N, L, d->first, d->n, mask, 0); } H5E_END_TRY;
    if (have_mask < 0) goto done;
    H5E_BEGIN_TRY { have_types = read_rows(f, "/token_type_ids", path, N, L, d->first, d->n, types, 0); } H5E_END_TRY;
    if (have_types < 0) goto done;
    have_mask = !have_mask; have_types = !have_types;

    d->off = xmalloc((d->n + 1) * sizeof(int64_t));
    d->len = xmalloc((d->n ? d->n : 1) * sizeof(int));
    d->len_full = xmalloc((d->n ? d->n : 1) * sizeof(int));
    d->source_row = xmalloc((d->n ? d->n : 1) * sizeof(int64_t));
    d->ids = xmalloc((cells ? cells : 1) * sizeof(int32_t));
    if (have_types) d->types = xmalloc((cells ? cells : 1) * sizeof(int32_t));
    d->off[0] = 0;
    for (int i = 0; i < d->n; i++) {
        const int64_t g = d->first + i;
        const int32_t *ri = ids + (size_t)i * L, *rm = mask + (size_t)i * L, *rt = types + (size_t)i * L;
        int n = (int)L;
        if (have_mask) {
            n = 0;
            while (n < L && rm[n] == 1) n++;
            for (int64_t t = n; t < L; t++) {
                if (rm[t] != 0 && rm[t] != 1) { err_set("%s: /attention_mask[%lld, %lld] = %d, expected 0 or 1", path, (long long)g, (long long)t, rm[t]); goto done; }
                if (rm[t] == 1) { err_set("%s: /attention_mask row %lld is not right-padded (1 after 0 at token %lld); left padding is not supported", path, (long long)g, (long long)t); goto done; }
            }
            if (n == 0) { err_set("%s: /attention_mask row %lld has no real token", path, (long long)g); goto done; }
        }
        for (int t = 0; t < n; t++) {
            if (ri[t] < 0 || ri[t] >= vocab) { err_set("%s: /input_ids[%lld, %d] = %d is outside the vocabulary [0, %d)", path, (long long)g, t, ri[t], vocab); goto done; }
            if (have_types && (rt[t] < 0 || rt[t] >= (n_types ? n_types : 1))) { err_set("%s: /token_type_ids[%lld, %d] = %d is outside [0, %d)", path, (long long)g, t, rt[t], n_types ? n_types : 1); goto done; }
        }
        int k = n < max_len ? n : max_len;
        memcpy(d->ids + d->off[i], ri, k * sizeof(int32_t));
        if (have_types) memcpy(d->types + d->off[i], rt, k * sizeof(int32_t));
        d->len[i] = k;
        d->len_full[i] = n;
        d->source_row[i] = g;
        d->off[i + 1] = d->off[i] + k;
    }
    rc = 0;
done:
    free(ids); free(mask); free(types);
    H5Fclose(f);
    if (rc) dataset_free(d);
    return rc;
}

void dataset_free(dataset *d)
{
    free(d->off); free(d->ids); free(d->types); free(d->len); free(d->len_full); free(d->source_row);
    dataset_px_free(d->px);
    for (int64_t i = 0; d->image_paths && i < d->n_total; i++) free(d->image_paths[i]);
    free(d->image_paths); free(d->image_size);
    memset(d, 0, sizeof *d);
}
