/* gguf.c — see gguf.h.
 *
 * One file is read front to back through a buffered pread reader that knows the file size: every
 * read says what it reads, and one that would run past the end fails with "truncated" before
 * anything is allocated for it. Counts are checked against the bytes left (a key-value pair takes
 * at least 13 bytes, a tensor info 24, an array element its size, a string 8) and then allocated,
 * so no allocation exceeds a small multiple of the file size. This mirrors ggml's gguf.cpp
 * (gguf_init_from_file_impl). Deliberate differences: ggml requires the tensors to lie back to
 * back in file order, each padded to the alignment; we accept any aligned, non-overlapping layout
 * inside the file (what the format's spec says). Bools other than 0/1, keys or tensor names that
 * hold a NUL are refused here (C strings), ggml keeps them.
 *
 * Tensor data is not mapped: gguf_tensor_f32 preads it, so a file that shrinks after gguf_open
 * gives a "file shrank" error instead of a SIGBUS. Little-endian host assumed. */
#include "gguf.h"
#include "quant.h"
#include "util.h"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAX_STRING (1ull << 30)   /* ggml's GGUF_MAX_STRING_LENGTH */
#define GGUF_MAX_ARRAY  (1ull << 30)   /* ggml's GGUF_MAX_ARRAY_ELEMENTS */
#define MIN_KV_BYTES     13            /* key length 8 + type 4 + a 1-byte value */
#define MIN_TINFO_BYTES  24            /* name length 8 + n_dims 4 + type 4 + offset 8 */

static const char *vtype_names[GGUF_NTYPES] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array",
    "uint64", "int64", "float64",
};
static const unsigned char vtype_sizes[GGUF_NTYPES] = { 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8 };

const char *gguf_vtype_name(gguf_vtype t) { return (unsigned)t < GGUF_NTYPES ? vtype_names[t] : "?"; }

/* --- buffered reader over pread ----------------------------------------------------------- */

typedef struct {
    int fd;
    const char *path;
    uint64_t size, pos;          /* file size; offset of the next byte to read */
    uint64_t buf_off;            /* file offset of buf[0] */
    size_t buf_len;
    unsigned char buf[1 << 16];
} reader;

static uint64_t rd_left(const reader *r) { return r->size - r->pos; }

/* Reads n bytes at the current position. what names the field for the message. */
static int rd_bytes(reader *r, void *dst, uint64_t n, const char *what)
{
    if (n > rd_left(r))
        return err_set("%s: file is truncated: %s at offset %" PRIu64 " needs %" PRIu64 " bytes, %" PRIu64 " left",
                       r->path, what, r->pos, n, rd_left(r));
    unsigned char *d = dst;
    while (n > 0) {
        if (r->pos < r->buf_off || r->pos >= r->buf_off + r->buf_len) {
            ssize_t got = pread(r->fd, r->buf, sizeof r->buf, (off_t)r->pos);
            if (got <= 0)
                return err_set("%s: read error at offset %" PRIu64 ": %s", r->path, r->pos,
                               got < 0 ? strerror(errno) : "end of file (did the file shrink?)");
            r->buf_off = r->pos;
            r->buf_len = (size_t)got;
        }
        size_t at = (size_t)(r->pos - r->buf_off), k = r->buf_len - at;
        if (k > n) k = (size_t)n;
        memcpy(d, r->buf + at, k);
        d += k;
        n -= k;
        r->pos += k;
    }
    return 0;
}

static int rd_u32(reader *r, uint32_t *v, const char *what)
{
    unsigned char b[4];
    if (rd_bytes(r, b, 4, what) != 0) return -1;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 0;
}

static int rd_u64(reader *r, uint64_t *v, const char *what)
{
    unsigned char b[8];
    if (rd_bytes(r, b, 8, what) != 0) return -1;
    *v = 0;
    for (int i = 7; i >= 0; i--) *v = *v << 8 | b[i];
    return 0;
}

/* A GGUF string (uint64 length, bytes) as a NUL-terminated copy; its length is checked against
 * the bytes left before the allocation. */
static int rd_str(reader *r, char **out, uint64_t *len, const char *what)
{
    uint64_t n;
    *out = NULL;
    if (rd_u64(r, &n, what) != 0) return -1;
    if (n > GGUF_MAX_STRING)
        return err_set("%s: %s: string length %" PRIu64 " exceeds the 2^30-byte limit", r->path, what, n);
    if (n > rd_left(r))
        return err_set("%s: file is truncated: %s: string length %" PRIu64 " at offset %" PRIu64 " runs past the end (%" PRIu64 " bytes left)",
                       r->path, what, n, r->pos - 8, rd_left(r));
    char *s = xmalloc((size_t)n + 1);
    if (rd_bytes(r, s, n, what) != 0) { free(s); return -1; }
    s[n] = 0;
    *out = s;
    if (len) *len = n;
    return 0;
}

/* --- metadata ------------------------------------------------------------------------------ */

static void kv_free(gguf_kv *kv)
{
    free(kv->key);
    free(kv->data);
    if (kv->strs)
        for (uint64_t i = 0; i < kv->n; i++) free(kv->strs[i]);
    free(kv->strs);
    free(kv->str_lens);
}

/* Reads the value of kv->key (its type word onwards) into kv. */
static int read_value(reader *r, gguf_kv *kv)
{
    const char *path = r->path, *key = kv->key;
    uint32_t t;
    char what[160];
    snprintf(what, sizeof what, "value type of key \"%.100s\"", key);
    if (rd_u32(r, &t, what) != 0) return -1;
    kv->n = 1;
    if (t == GGUF_ARRAY) {
        kv->is_array = 1;
        snprintf(what, sizeof what, "array header of key \"%.100s\"", key);
        if (rd_u32(r, &t, what) != 0 || rd_u64(r, &kv->n, what) != 0) return -1;
        if (t == GGUF_ARRAY) return err_set("%s: key \"%s\": arrays of arrays are not supported", path, key);
    }
    if (t >= GGUF_NTYPES) return err_set("%s: key \"%s\": unknown value type %" PRIu32, path, key, t);
    kv->type = (gguf_vtype)t;
    uint64_t esize = kv->type == GGUF_STRING ? 8 : vtype_sizes[t];  /* a string takes ≥ 8 bytes */
    if (kv->n > GGUF_MAX_ARRAY)
        return err_set("%s: key \"%s\": array of %" PRIu64 " elements exceeds the 2^30 limit", path, key, kv->n);
    if (kv->n > rd_left(r) / esize)
        return err_set("%s: file is truncated: key \"%s\": %" PRIu64 " %s elements need at least %" PRIu64 " bytes, %" PRIu64 " left",
                       path, key, kv->n, vtype_names[t], kv->n * esize, rd_left(r));
    snprintf(what, sizeof what, "value of key \"%.100s\"", key);
    if (kv->type == GGUF_STRING) {
        kv->strs = xcalloc((size_t)kv->n, sizeof *kv->strs);
        kv->str_lens = xcalloc((size_t)kv->n, sizeof *kv->str_lens);
        for (uint64_t i = 0; i < kv->n; i++)
            if (rd_str(r, &kv->strs[i], &kv->str_lens[i], what) != 0) return -1;
        return 0;
    }
    kv->data = xmalloc((size_t)(kv->n * esize) + 1);
    if (rd_bytes(r, kv->data, kv->n * esize, what) != 0) return -1;
    if (kv->type == GGUF_BOOL)
        for (uint64_t i = 0; i < kv->n; i++) {
            unsigned char b = ((unsigned char *)kv->data)[i];
            if (b > 1) return err_set("%s: key \"%s\": bool value %u is not 0 or 1", path, key, b);
        }
    return 0;
}

/* index sorting for duplicate detection and lookup (glibc's qsort_r: no shared state) */
static int cmp_kv(const void *a, const void *b, void *ctx)
{
    const gguf_file *g = ctx;
    return strcmp(g->kv[*(const int64_t *)a].key, g->kv[*(const int64_t *)b].key);
}
static int cmp_tensor(const void *a, const void *b, void *ctx)
{
    const gguf_file *g = ctx;
    return strcmp(g->tensors[*(const int64_t *)a].name, g->tensors[*(const int64_t *)b].name);
}
static int cmp_offset(const void *a, const void *b, void *ctx)
{
    const gguf_file *g = ctx;
    const gguf_tensor *x = &g->tensors[*(const int64_t *)a], *y = &g->tensors[*(const int64_t *)b];
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return 0;
}
static int64_t *sorted_index(gguf_file *g, int64_t n, int (*cmp)(const void *, const void *, void *))
{
    int64_t *ix = xmalloc((size_t)(n ? n : 1) * sizeof *ix);
    for (int64_t i = 0; i < n; i++) ix[i] = i;
    if (n > 1) qsort_r(ix, (size_t)n, sizeof *ix, cmp, g);
    return ix;
}

static int read_kvs(reader *r, gguf_file *g, uint64_t n_kv)
{
    g->kv = xcalloc((size_t)(n_kv ? n_kv : 1), sizeof *g->kv);
    for (uint64_t i = 0; i < n_kv; i++) {
        gguf_kv *kv = &g->kv[i];
        g->nkv = (int64_t)i + 1;
        char what[64];
        uint64_t len;
        snprintf(what, sizeof what, "key %" PRIu64, i);
        if (rd_str(r, &kv->key, &len, what) != 0) return -1;
        if (len == 0) return err_set("%s: key %" PRIu64 " is empty", r->path, i);
        if (strlen(kv->key) != len) return err_set("%s: key %" PRIu64 " holds a NUL byte", r->path, i);
        if (read_value(r, kv) != 0) return -1;
    }
    g->kv_sorted = sorted_index(g, g->nkv, cmp_kv);
    for (int64_t i = 1; i < g->nkv; i++)
        if (strcmp(g->kv[g->kv_sorted[i - 1]].key, g->kv[g->kv_sorted[i]].key) == 0)
            return err_set("%s: duplicate key \"%s\"", r->path, g->kv[g->kv_sorted[i]].key);
    const gguf_kv *al = gguf_find_kv(g, "general.alignment");
    g->alignment = 32;
    if (al) {
        if (al->is_array || al->type != GGUF_UINT32)
            return err_set("%s: key \"general.alignment\" must be a uint32, is %s%s", r->path,
                           al->is_array ? "an array of " : "", vtype_names[al->type]);
        memcpy(&g->alignment, al->data, 4);
        if (g->alignment == 0 || (g->alignment & (g->alignment - 1)))
            return err_set("%s: general.alignment %" PRIu32 " is not a power of 2", r->path, g->alignment);
    }
    return 0;
}

/* --- tensor infos -------------------------------------------------------------------------- */

static int read_tensor_info(reader *r, gguf_file *g, uint64_t i)
{
    const char *path = r->path;
    gguf_tensor *t = &g->tensors[i];
    char what[128];
    uint64_t len;
    snprintf(what, sizeof what, "name of tensor %" PRIu64, i);
    if (rd_str(r, &t->name, &len, what) != 0) return -1;
    if (len == 0) return err_set("%s: tensor %" PRIu64 " has an empty name", path, i);
    if (strlen(t->name) != len) return err_set("%s: name of tensor %" PRIu64 " holds a NUL byte", path, i);
    if (len >= GGUF_MAX_NAME)
        return err_set("%s: name of tensor %" PRIu64 " is %" PRIu64 " bytes, longer than ggml's %d", path, i, len,
                       GGUF_MAX_NAME - 1);
    snprintf(what, sizeof what, "info of tensor \"%s\"", t->name);
    uint32_t nd;
    if (rd_u32(r, &nd, what) != 0) return -1;
    if (nd > GGUF_MAX_DIMS)
        return err_set("%s: tensor \"%s\" has %" PRIu32 " dimensions, more than %d", path, t->name, nd, GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    int empty = 0;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        uint64_t ne = 1;
        if (d < t->n_dims && rd_u64(r, &ne, what) != 0) return -1;
        if (ne > (uint64_t)INT64_MAX)
            return err_set("%s: tensor \"%s\": dimension %d is %" PRIu64 ", above INT64_MAX", path, t->name, d, ne);
        t->ne[d] = (int64_t)ne;
        empty |= ne == 0;
    }
    /* as ggml: a tensor without elements is valid whatever its other dimensions; otherwise the
     * element count must stay below INT64_MAX */
    uint64_t numel = empty ? 0 : 1;
    for (int d = 0; d < GGUF_MAX_DIMS && !empty; d++)
        if (util_mul_overflow(numel, (uint64_t)t->ne[d], &numel) != 0 || numel >= (uint64_t)INT64_MAX)
            return err_set("%s: tensor \"%s\": the product of the dimensions overflows (reaches INT64_MAX)", path, t->name);
    t->numel = (int64_t)numel;
    if (rd_u32(r, &t->type, what) != 0 || rd_u64(r, &t->offset, what) != 0) return -1;
    const quant_type_info *qt = quant_type(t->type);
    if (!qt) return err_set("%s: tensor \"%s\" has unknown ggml type %" PRIu32, path, t->name, t->type);
    if (t->ne[0] % qt->blck != 0)
        return err_set("%s: tensor \"%s\" of type %s has %" PRId64 " elements per row, not a multiple of the block size %d",
                       path, t->name, qt->name, t->ne[0], qt->blck);
    /* bytes = ne0/blck · tsize · ne1 · ne2 · ne3, every step checked */
    uint64_t nbytes = 0;
    int over = !empty && util_mul_overflow((uint64_t)(t->ne[0] / qt->blck), (uint64_t)qt->tsize, &nbytes);
    for (int d = 1; d < GGUF_MAX_DIMS && !empty; d++)
        if (over || util_mul_overflow(nbytes, (uint64_t)t->ne[d], &nbytes) != 0)
            return err_set("%s: tensor \"%s\": its size in bytes overflows", path, t->name);
    t->nbytes = nbytes;
    if (t->offset % g->alignment != 0)
        return err_set("%s: tensor \"%s\": offset %" PRIu64 " is not a multiple of the alignment %" PRIu32, path,
                       t->name, t->offset, g->alignment);
    return 0;
}

/* Places the data section and checks every tensor's range against it and the others. */
static int check_layout(reader *r, gguf_file *g)
{
    const char *path = r->path;
    uint64_t a = g->alignment, start = (r->pos + a - 1) / a * a;
    g->data_offset = start;
    /* ggml seeks there when the file has tensors, and fails past the end even for empty ones */
    if (g->ntensors > 0 && start > r->size)
        return err_set("%s: data section starts at offset %" PRIu64 ", past the end of the file (%" PRIu64 " bytes)",
                       path, start, r->size);
    uint64_t data_len = start <= r->size ? r->size - start : 0;
    for (int64_t i = 0; i < g->ntensors; i++) {
        gguf_tensor *t = &g->tensors[i];
        if (t->offset > data_len || t->nbytes > data_len - t->offset)
            return err_set("%s: tensor \"%s\": data [%" PRIu64 ", +%" PRIu64 ") runs past the end of the file "
                           "(data section %" PRIu64 " bytes from offset %" PRIu64 ")",
                           path, t->name, t->offset, t->nbytes, data_len, start);
    }
    int64_t *ix = sorted_index(g, g->ntensors, cmp_offset);
    int rc = 0;
    for (int64_t i = 1; i < g->ntensors && rc == 0; i++) {
        const gguf_tensor *p = &g->tensors[ix[i - 1]], *t = &g->tensors[ix[i]];
        if (p->offset + p->nbytes > t->offset)
            rc = err_set("%s: tensors \"%s\" [%" PRIu64 ", +%" PRIu64 ") and \"%s\" [%" PRIu64 ", +%" PRIu64 ") overlap",
                         path, p->name, p->offset, p->nbytes, t->name, t->offset, t->nbytes);
    }
    free(ix);
    if (rc) return rc;
    for (int64_t i = 0; i < g->ntensors; i++) g->tensors[i].offset += start;
    return 0;
}

static int read_tensors(reader *r, gguf_file *g, uint64_t n)
{
    g->tensors = xcalloc((size_t)(n ? n : 1), sizeof *g->tensors);
    for (uint64_t i = 0; i < n; i++) {
        g->ntensors = (int64_t)i + 1;
        if (read_tensor_info(r, g, i) != 0) return -1;
    }
    g->t_sorted = sorted_index(g, g->ntensors, cmp_tensor);
    for (int64_t i = 1; i < g->ntensors; i++)
        if (strcmp(g->tensors[g->t_sorted[i - 1]].name, g->tensors[g->t_sorted[i]].name) == 0)
            return err_set("%s: duplicate tensor name \"%s\"", r->path, g->tensors[g->t_sorted[i]].name);
    return check_layout(r, g);
}

/* --- open / close --------------------------------------------------------------------------- */

static int read_header(reader *r, gguf_file *g)
{
    const char *path = r->path;
    unsigned char magic[4];
    if (rd_bytes(r, magic, 4, "magic") != 0) return -1;
    if (memcmp(magic, "GGUF", 4) != 0)
        return err_set("%s: not a GGUF file (magic bytes %02x %02x %02x %02x, expected \"GGUF\")", path, magic[0],
                       magic[1], magic[2], magic[3]);
    if (rd_u32(r, &g->version, "version") != 0) return -1;
    if (g->version != 0 && (g->version & 0xFFFF) == 0)
        return err_set("%s: version field reads %" PRIu32 ": a big-endian GGUF file, not supported (little-endian only)",
                       path, g->version);
    if (g->version == 1) return err_set("%s: GGUF version 1 is not supported (versions 2 and 3 are)", path);
    if (g->version != 2 && g->version != 3)
        return err_set("%s: unknown GGUF version %" PRIu32 " (versions 2 and 3 are supported)", path, g->version);
    uint64_t n_tensors, n_kv;
    if (rd_u64(r, &n_tensors, "tensor count") != 0 || rd_u64(r, &n_kv, "key-value count") != 0) return -1;
    /* each count bounded by the bytes left before anything is allocated for it */
    if (n_kv > rd_left(r) / MIN_KV_BYTES)
        return err_set("%s: file is truncated or corrupt: key-value count %" PRIu64 " cannot fit in the %" PRIu64
                       " bytes left", path, n_kv, rd_left(r));
    if (n_tensors > rd_left(r) / MIN_TINFO_BYTES)
        return err_set("%s: file is truncated or corrupt: tensor count %" PRIu64 " cannot fit in the %" PRIu64
                       " bytes left", path, n_tensors, rd_left(r));
    if (read_kvs(r, g, n_kv) != 0) return -1;
    if (n_tensors > rd_left(r) / MIN_TINFO_BYTES)
        return err_set("%s: file is truncated or corrupt: tensor count %" PRIu64 " cannot fit in the %" PRIu64
                       " bytes left after the metadata", path, n_tensors, rd_left(r));
    return read_tensors(r, g, n_tensors);
}

int gguf_open(gguf_file *g, const char *path)
{
    memset(g, 0, sizeof *g);
    g->fd = -1;
    struct stat sb;
    int fd = util_open_regular(path, &sb);
    if (fd < 0) return -1;
    reader *r = xcalloc(1, sizeof *r);
    r->fd = fd;
    r->path = path;
    r->size = (uint64_t)sb.st_size;
    g->fd = fd;
    g->file_size = r->size;
    int rc = read_header(r, g);
    free(r);
    if (rc != 0) {
        gguf_close(g);
        return -1;
    }
    g->path = xstrdup(path);
    return 0;
}

void gguf_close(gguf_file *g)
{
    if (g->fd >= 0) close(g->fd);
    for (int64_t i = 0; i < g->nkv; i++) kv_free(&g->kv[i]);
    for (int64_t i = 0; i < g->ntensors; i++) free(g->tensors[i].name);
    free(g->kv);
    free(g->tensors);
    free(g->kv_sorted);
    free(g->t_sorted);
    free(g->path);
    memset(g, 0, sizeof *g);
    g->fd = -1;
}

/* --- lookup and getters ------------------------------------------------------------------- */

/* binary search of the sorted index; -1 when absent */
static int64_t find_sorted(const int64_t *ix, int64_t n, const char *(*name_of)(const gguf_file *, int64_t),
                           const gguf_file *g, const char *name)
{
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name_of(g, ix[mid]), name);
        if (c == 0) return ix[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}
static const char *kv_name(const gguf_file *g, int64_t i) { return g->kv[i].key; }
static const char *tensor_name(const gguf_file *g, int64_t i) { return g->tensors[i].name; }

const gguf_kv *gguf_find_kv(const gguf_file *g, const char *key)
{
    if (!g->kv_sorted) return NULL;
    int64_t i = find_sorted(g->kv_sorted, g->nkv, kv_name, g, key);
    return i < 0 ? NULL : &g->kv[i];
}

const gguf_tensor *gguf_find_tensor(const gguf_file *g, const char *name)
{
    if (!g->t_sorted) return NULL;
    int64_t i = find_sorted(g->t_sorted, g->ntensors, tensor_name, g, name);
    return i < 0 ? NULL : &g->tensors[i];
}

/* The entry of key if it exists with the wanted shape (scalar or array), else -1 with a message. */
static const gguf_kv *want_kv(const gguf_file *g, const char *key, int is_array)
{
    const gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv) { err_set("%s: key \"%s\" not found", g->path, key); return NULL; }
    if (kv->is_array != is_array) {
        err_set("%s: key \"%s\" is %s%s, expected %s", g->path, key, kv->is_array ? "an array of " : "a ",
                vtype_names[kv->type], is_array ? "an array" : "a single value");
        return NULL;
    }
    return kv;
}

/* element i of an integer kv as int64/uint64; -1 when the type is not an integer type */
static int int_at(const gguf_kv *kv, uint64_t i, int64_t *s, uint64_t *u, int *is_signed)
{
    if (!kv->data) return -1;   /* a string: no numbers (and no pointer arithmetic on NULL) */
    const unsigned char *p = (const unsigned char *)kv->data + i * vtype_sizes[kv->type];
    uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32; uint64_t u64; int64_t i64;
    *is_signed = 0;
    switch (kv->type) {
    case GGUF_UINT8: memcpy(&u8, p, 1); *u = u8; return 0;
    case GGUF_UINT16: memcpy(&u16, p, 2); *u = u16; return 0;
    case GGUF_UINT32: memcpy(&u32, p, 4); *u = u32; return 0;
    case GGUF_UINT64: memcpy(&u64, p, 8); *u = u64; return 0;
    case GGUF_INT8: memcpy(&i8, p, 1); *s = i8; break;
    case GGUF_INT16: memcpy(&i16, p, 2); *s = i16; break;
    case GGUF_INT32: memcpy(&i32, p, 4); *s = i32; break;
    case GGUF_INT64: memcpy(&i64, p, 8); *s = i64; break;
    default: return -1;
    }
    *is_signed = 1;
    return 0;
}

/* element i of an integer kv converted to [lo, hi]; -1 with a message when it is not an integer
 * type or out of range */
static int int_in(const gguf_file *g, const gguf_kv *kv, uint64_t i, int64_t lo, int64_t hi, int64_t *out)
{
    int64_t s = 0;
    uint64_t u = 0;
    int sg;
    if (int_at(kv, i, &s, &u, &sg) != 0)
        return err_set("%s: key \"%s\" holds %s, expected an integer", g->path, kv->key, vtype_names[kv->type]);
    if (sg ? (s < lo || s > hi) : u > (uint64_t)hi) {
        char v[32];
        if (sg) snprintf(v, sizeof v, "%" PRId64, s);
        else snprintf(v, sizeof v, "%" PRIu64, u);
        return err_set("%s: key \"%s\"%s value %s is out of range [%" PRId64 ", %" PRId64 "]", g->path, kv->key,
                       kv->is_array ? " element" : "", v, lo, hi);
    }
    *out = sg ? s : (int64_t)u;
    return 0;
}

int gguf_get_u32(const gguf_file *g, const char *key, uint32_t *out)
{
    const gguf_kv *kv = want_kv(g, key, 0);
    int64_t v;
    if (!kv || int_in(g, kv, 0, 0, UINT32_MAX, &v) != 0) return -1;
    *out = (uint32_t)v;
    return 0;
}

int gguf_get_i32(const gguf_file *g, const char *key, int32_t *out)
{
    const gguf_kv *kv = want_kv(g, key, 0);
    int64_t v;
    if (!kv || int_in(g, kv, 0, INT32_MIN, INT32_MAX, &v) != 0) return -1;
    *out = (int32_t)v;
    return 0;
}

int gguf_get_f32(const gguf_file *g, const char *key, float *out)
{
    const gguf_kv *kv = want_kv(g, key, 0);
    if (!kv) return -1;
    if (kv->type == GGUF_FLOAT32) memcpy(out, kv->data, 4);
    else if (kv->type == GGUF_FLOAT64) {
        double d;
        memcpy(&d, kv->data, 8);
        *out = (float)d;
    } else return err_set("%s: key \"%s\" holds %s, expected float32", g->path, key, vtype_names[kv->type]);
    return 0;
}

int gguf_get_bool(const gguf_file *g, const char *key, int *out)
{
    const gguf_kv *kv = want_kv(g, key, 0);
    if (!kv) return -1;
    if (kv->type != GGUF_BOOL) return err_set("%s: key \"%s\" holds %s, expected bool", g->path, key, vtype_names[kv->type]);
    *out = *(const unsigned char *)kv->data;
    return 0;
}

int gguf_get_str(const gguf_file *g, const char *key, const char **out, uint64_t *len)
{
    const gguf_kv *kv = want_kv(g, key, 0);
    if (!kv) return -1;
    if (kv->type != GGUF_STRING)
        return err_set("%s: key \"%s\" holds %s, expected a string", g->path, key, vtype_names[kv->type]);
    *out = kv->strs[0];
    if (len) *len = kv->str_lens[0];
    return 0;
}

int gguf_get_str_array(const gguf_file *g, const char *key, char *const **out, const uint64_t **lens, uint64_t *n)
{
    const gguf_kv *kv = want_kv(g, key, 1);
    if (!kv) return -1;
    if (kv->type != GGUF_STRING)
        return err_set("%s: key \"%s\" is an array of %s, expected strings", g->path, key, vtype_names[kv->type]);
    *out = kv->strs;
    if (lens) *lens = kv->str_lens;
    *n = kv->n;
    return 0;
}

static int int_array(const gguf_file *g, const char *key, int64_t lo, int64_t hi, void *out, int is_u32, uint64_t n)
{
    const gguf_kv *kv = want_kv(g, key, 1);
    if (!kv) return -1;
    if (kv->n != n)
        return err_set("%s: key \"%s\" has %" PRIu64 " elements, the caller expected %" PRIu64, g->path, key, kv->n, n);
    for (uint64_t i = 0; i < n; i++) {
        int64_t v;
        if (int_in(g, kv, i, lo, hi, &v) != 0) return -1;
        if (is_u32) ((uint32_t *)out)[i] = (uint32_t)v;
        else ((int32_t *)out)[i] = (int32_t)v;
    }
    return 0;
}

int gguf_get_u32_array(const gguf_file *g, const char *key, uint32_t *out, uint64_t n)
{
    return int_array(g, key, 0, UINT32_MAX, out, 1, n);
}

int gguf_get_i32_array(const gguf_file *g, const char *key, int32_t *out, uint64_t n)
{
    return int_array(g, key, INT32_MIN, INT32_MAX, out, 0, n);
}

/* --- tensor data ------------------------------------------------------------------------------ */

int gguf_tensor_f32(const gguf_file *g, const char *name, float *out, size_t n)
{
    const gguf_tensor *t = gguf_find_tensor(g, name);
    if (!t) return err_set("%s: no tensor \"%s\"", g->path, name);
    if ((uint64_t)n != (uint64_t)t->numel)
        return err_set("%s: tensor \"%s\" has %" PRId64 " elements, the caller's buffer holds %zu", g->path, name,
                       t->numel, n);
    const quant_type_info *qt = quant_type(t->type);
    if (!qt->to_f32)
        return err_set("%s: tensor \"%s\" has type %s, which cannot be dequantized here (f32 f16 bf16 q4_0 q4_1 "
                       "q5_0 q5_1 q8_0 q2_K q3_K q4_K q5_K q6_K)", g->path, name, qt->name);
    /* read in chunks of whole blocks, at most ~1 MiB at a time */
    uint64_t nblocks = t->nbytes / (uint64_t)qt->tsize, per = ((uint64_t)1 << 20) / (uint64_t)qt->tsize;
    if (per == 0) per = 1;
    unsigned char *buf = xmalloc((size_t)((nblocks < per ? nblocks : per) * (uint64_t)qt->tsize) + 1);
    int rc = 0;
    for (uint64_t b = 0; b < nblocks && rc == 0;) {
        uint64_t k = nblocks - b < per ? nblocks - b : per, want = k * (uint64_t)qt->tsize,
                 at = t->offset + b * (uint64_t)qt->tsize, got = 0;
        while (got < want) {
            ssize_t r = pread(g->fd, buf + got, (size_t)(want - got), (off_t)(at + got));
            if (r <= 0) {
                rc = err_set("%s: tensor \"%s\": read of %" PRIu64 " bytes at offset %" PRIu64 " failed: %s", g->path,
                             name, want - got, at + got,
                             r < 0 ? strerror(errno) : "end of file (the file shrank after it was opened)");
                break;
            }
            got += (uint64_t)r;
        }
        if (rc == 0) quant_to_f32(t->type, buf, out + b * (uint64_t)qt->blck, (int64_t)k);
        b += k;
    }
    free(buf);
    return rc;
}

int gguf_unpermute_qk(float *w, int n_head, int rows, int cols)
{
    if (n_head <= 0 || rows <= 0 || cols <= 0 || rows % (2 * n_head) != 0)
        return err_set("gguf_unpermute_qk: %d rows are not a multiple of 2 x %d heads (cols %d)", rows, n_head, cols);
    int hd = rows / n_head, half = hd / 2;
    size_t row = (size_t)cols;
    float *tmp = xmalloc((size_t)hd * row * sizeof *tmp);
    for (int h = 0; h < n_head; h++) {
        float *head = w + (size_t)h * hd * row;
        /* the converter reshapes a head to [2, half] and swaps the axes: HF row i·half+j went to 2j+i */
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < half; j++)
                memcpy(tmp + ((size_t)i * half + j) * row, head + ((size_t)2 * j + i) * row, row * sizeof *tmp);
        memcpy(head, tmp, (size_t)hd * row * sizeof *tmp);
    }
    free(tmp);
    return 0;
}
