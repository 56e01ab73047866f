/* safetensors.c — see safetensors.h.
 *
 * One file is read in this order, mirroring huggingface/safetensors (tensor.rs: read_metadata,
 * Metadata::validate): size ≥ 8; header length N ≤ 100,000,000; 8+N ≤ size; only then the N
 * header bytes are read (pread, not the mapping) and checked (UTF-8, JSON object, no duplicate
 * names, entry types); the entries are sorted by data_offsets and must tile [0, size-8-N) exactly.
 * Only a file that passed every check is mmap'ed. Deliberate differences from the reference:
 * duplicate names are rejected (serde keeps the last silently), more than ST_MAX_DIMS dims and
 * dimensions above INT64_MAX are rejected (our shape is int64_t[ST_MAX_DIMS]), and a
 * \u0000 escape anywhere in the header is rejected (json-c keys are C strings: it would cut a name).
 * The header's JSON is checked against RFC 8259 before json-c parses it (json_check_rfc8259), so
 * that what json-c alone would take (comments, trailing commas, NaN, ...) is rejected as serde_json
 * rejects it.
 * An unpaired surrogate escape (\ud800 alone) is rejected as serde_json rejects it; json-c alone
 * would take it as U+FFFD.
 *
 * Invariant of st_model: tensors[] sorted by name (strcmp), names unique, every data pointer
 * inside maps[file]. Little-endian host assumed, as the format is: tensor bytes are used as is. */
#include "safetensors.h"
#include "jsonutil.h"
#include "util.h"
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER 100000000ull
#define ST_MAX_INDEX  100000000u

static const char *dtype_names[ST_NDTYPES] = {
    "BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16",
    "I32", "U32", "F32", "F64", "I64", "U64",
    "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "C64", "F4", "F6_E2M3", "F6_E3M2",
};
/* bits per element, as tensor.rs's Dtype::bitsize */
static const unsigned char dtype_bits[ST_NDTYPES] = {
    8, 8, 8, 8, 8, 16, 16, 16, 16, 32, 32, 32, 64, 64, 64,
    8, 8, 8, 64, 4, 6, 6,
};

const char *st_dtype_name(st_dtype d) { return (unsigned)d < ST_NDTYPES ? dtype_names[d] : "?"; }
size_t st_dtype_size(st_dtype d) { return (unsigned)d < ST_NDTYPES && dtype_bits[d] % 8 == 0 ? dtype_bits[d] / 8 : 0; }

/* one header entry while the file is being validated */
typedef struct {
    const char *name;     /* borrowed from the json-c tree */
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t begin, end;
} st_entry;

/* A JSON non-negative integer as uint64. json-c keeps integers above INT64_MAX as uint64 and
 * saturates beyond UINT64_MAX; both then fail the size checks later. -1: not an integer or
 * negative (the caller words the message). */
static int json_u64(json_object *v, uint64_t *out)
{
    if (!v || !json_object_is_type(v, json_type_int)) return -1;
    if (json_object_get_int64(v) < 0) return -1;
    *out = json_object_get_uint64(v);
    return 0;
}

static int parse_entry(st_entry *e, const char *path, const char *name, json_object *o)
{
    if (!json_object_is_type(o, json_type_object))
        return err_set("%s: tensor \"%s\": entry is a JSON %s, not an object", path, name,
                       json_type_to_name(json_object_get_type(o)));
    e->name = name;
    json_object *v;
    char what[512];
    snprintf(what, sizeof what, "%s: tensor \"%.200s\"", path, name);

    const char *dt = NULL;
    int r = json_get_string(o, "dtype", &dt, what);
    if (r < 0) return -1;
    if (r == 0) return err_set("%s: tensor \"%s\": missing \"dtype\"", path, name);
    e->dtype = ST_NDTYPES;
    for (int i = 0; i < ST_NDTYPES; i++)
        if (strcmp(dt, dtype_names[i]) == 0) e->dtype = (st_dtype)i;
    if (e->dtype == ST_NDTYPES)
        return err_set("%s: tensor \"%s\": unknown dtype \"%.32s\"", path, name, dt);

    if (!json_object_object_get_ex(o, "shape", &v) || !json_object_is_type(v, json_type_array))
        return err_set("%s: tensor \"%s\": \"shape\" missing or not an array", path, name);
    size_t nd = json_object_array_length(v);
    if (nd > ST_MAX_DIMS)
        return err_set("%s: tensor \"%s\": shape has %zu dims, more than the %d supported", path, name, nd, ST_MAX_DIMS);
    e->ndim = (int)nd;
    for (size_t i = 0; i < nd; i++) {
        uint64_t d;
        if (json_u64(json_object_array_get_idx(v, i), &d) != 0)
            return err_set("%s: tensor \"%s\": shape[%zu] is not a non-negative integer", path, name, i);
        if (d > (uint64_t)INT64_MAX)
            return err_set("%s: tensor \"%s\": shape[%zu] is too large", path, name, i);
        e->shape[i] = (int64_t)d;
    }

    if (!json_object_object_get_ex(o, "data_offsets", &v) || !json_object_is_type(v, json_type_array)
        || json_object_array_length(v) != 2)
        return err_set("%s: tensor \"%s\": \"data_offsets\" missing or not [begin, end]", path, name);
    if (json_u64(json_object_array_get_idx(v, 0), &e->begin) != 0
        || json_u64(json_object_array_get_idx(v, 1), &e->end) != 0)
        return err_set("%s: tensor \"%s\": data_offsets are not non-negative integers", path, name);
    if (e->begin > e->end)
        return err_set("%s: tensor \"%s\": data_offsets begin %llu > end %llu", path, name,
                       (unsigned long long)e->begin, (unsigned long long)e->end);
    return 0;
}

static int cmp_offsets(const void *a, const void *b)
{
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int parse_metadata(const char *path, json_object *o)
{
    if (json_object_is_type(o, json_type_null)) return 0;
    if (!json_object_is_type(o, json_type_object))
        return err_set("%s: \"__metadata__\" is a JSON %s, not an object of strings", path,
                       json_type_to_name(json_object_get_type(o)));
    json_object_object_foreach(o, k, v)
        if (!json_object_is_type(v, json_type_string))
            return err_set("%s: \"__metadata__\" value of \"%s\" is not a string", path, k);
    return 0;
}

/* The code unit of a "\\uXXXX" escape at s (n bytes left), or -1 when s does not start with one. */
static int hex4_escape(const char *s, size_t n)
{
    if (n < 6 || s[0] != '\\' || s[1] != 'u') return -1;
    int v = 0;
    for (int k = 2; k < 6; k++) {
        const char c = s[k];
        const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Validates the header text against a data section of data_len bytes. On success *out holds
 * ntensors entries sorted by offset (names borrowed from root). */
static int validate_header(const char *path, const char *hdr, size_t n, uint64_t data_len,
                           json_object **root_out, st_entry **out, int *nout)
{
    *root_out = NULL; *out = NULL; *nout = 0;
    /* a raw NUL is never valid JSON; json_parse_text would stop at it and accept the rest */
    const char *z = memchr(hdr, 0, n);
    if (z) return err_set("%s: header has a NUL byte at byte %zu (not JSON)", path, (size_t)(z - hdr));
    size_t ok = util_utf8_valid_prefix(hdr, n);
    if (ok != n) return err_set("%s: header is not valid UTF-8 (at byte %zu)", path, ok);
    /* json-c keys are C strings: an escaped NUL would silently cut a name short; json-c also takes
     * an unpaired surrogate escape (it writes U+FFFD), which the reference (serde_json) rejects */
    for (size_t i = 0; i + 6 <= n; i++)
        if (hdr[i] == '\\') {
            if (strncasecmp(hdr + i + 1, "u0000", 5) == 0)
                return err_set("%s: header has an escaped NUL (\\u0000) at byte %zu, not supported", path, i);
            const int u = hex4_escape(hdr + i, n - i);
            if (u >= 0xDC00 && u <= 0xDFFF)
                return err_set("%s: header has an unpaired low surrogate escape (\\u%04X) at byte %zu (not valid JSON text)", path, u, i);
            if (u >= 0xD800 && u <= 0xDBFF) {
                const int lo = hex4_escape(hdr + i + 6, n - i - 6);
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return err_set("%s: header has an unpaired high surrogate escape (\\u%04X) at byte %zu (not valid JSON text)", path, u, i);
                i += 6; /* the low half, checked */
            }
            i++; /* skip the escaped character */
        }
    /* json-c takes comments, trailing commas, single quotes, NaN and raw control characters,
     * which the reference (serde_json) rejects: the grammar is checked first */
    size_t bad;
    const char *why = json_check_rfc8259(hdr, n, &bad);
    if (why) return err_set("%s: header: invalid JSON at byte %zu: %s", path, bad, why);
    char what[512];
    snprintf(what, sizeof what, "%.480s: header", path);
    json_object *root = json_parse_text(hdr, n, what);
    if (!root) return -1;
    if (!json_object_is_type(root, json_type_object)) {
        err_set("%s: header is a JSON %s, not an object", path, json_type_to_name(json_object_get_type(root)));
        json_object_put(root);
        return -1;
    }
    int distinct = json_object_object_length(root);
    int64_t written = json_count_members(hdr, n);
    if (written != distinct) {
        err_set("%s: header has a duplicate name (%lld members written, %d distinct)", path, (long long)written, distinct);
        json_object_put(root);
        return -1;
    }
    st_entry *es = xcalloc((size_t)distinct, sizeof *es);
    int ne = 0;
    json_object_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (parse_metadata(path, val) != 0) goto fail;
            continue;
        }
        if (parse_entry(&es[ne], path, key, val) != 0) goto fail;
        ne++;
    }
    qsort(es, (size_t)ne, sizeof *es, cmp_offsets);
    uint64_t at = 0;
    for (int i = 0; i < ne; i++) {
        const st_entry *e = &es[i];
        if (e->begin != at) {
            err_set("%s: tensor \"%s\": data_offsets [%llu, %llu] %s (expected begin %llu)", path, e->name,
                    (unsigned long long)e->begin, (unsigned long long)e->end,
                    e->begin > at ? "leave a gap after the previous tensor" : "overlap the previous tensor",
                    (unsigned long long)at);
            goto fail;
        }
        at = e->end;
        uint64_t numel = 1, nbytes;
        for (int d = 0; d < e->ndim; d++)
            if (util_mul_overflow(numel, (uint64_t)e->shape[d], &numel) != 0 || numel > (uint64_t)INT64_MAX) {
                err_set("%s: tensor \"%s\": shape product overflows", path, e->name);
                goto fail;
            }
        /* in bits, as the reference: F4 and F6 tensors must fill whole bytes (its MisalignedSlice) */
        uint64_t nbits;
        if (util_mul_overflow(numel, dtype_bits[e->dtype], &nbits) != 0) {
            err_set("%s: tensor \"%s\": shape product times dtype size overflows", path, e->name);
            goto fail;
        }
        if (nbits % 8 != 0) {
            err_set("%s: tensor \"%s\": %llu elements of %s are %llu bits, not a whole number of bytes", path, e->name,
                    (unsigned long long)numel, dtype_names[e->dtype], (unsigned long long)nbits);
            goto fail;
        }
        nbytes = nbits / 8;
        if (nbytes != e->end - e->begin) {
            err_set("%s: tensor \"%s\": %llu elements of %s need %llu bytes but data_offsets span %llu", path,
                    e->name, (unsigned long long)numel, dtype_names[e->dtype], (unsigned long long)nbytes,
                    (unsigned long long)(e->end - e->begin));
            goto fail;
        }
    }
    if (at != data_len) {
        if (at < data_len)
            err_set("%s: %llu trailing bytes after the last tensor (data section %llu bytes, tensors end at %llu)",
                    path, (unsigned long long)(data_len - at), (unsigned long long)data_len, (unsigned long long)at);
        else
            err_set("%s: file is truncated: tensors end at %llu but the data section has %llu bytes",
                    path, (unsigned long long)at, (unsigned long long)data_len);
        goto fail;
    }
    *root_out = root; *out = es; *nout = ne;
    return 0;
fail:
    free(es);
    json_object_put(root);
    return -1;
}

/* Validates one file and appends it and its tensors to m (names not yet sorted or merged). */
static int add_file(st_model *m, const char *path)
{
    struct stat sb;
    int fd = util_open_regular(path, &sb);
    if (fd < 0) return -1;
    uint64_t size = (uint64_t)sb.st_size;
    unsigned char lenb[8];
    if (size < 8) {
        close(fd);
        return err_set("%s: file is %llu bytes, too short for the 8-byte header length", path, (unsigned long long)size);
    }
    if (pread(fd, lenb, 8, 0) != 8) {
        close(fd);
        return err_set("%s: read error", path);
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | lenb[i];
    if (n > ST_MAX_HEADER) {
        close(fd);
        return err_set("%s: header length %llu is larger than the 100,000,000-byte limit", path, (unsigned long long)n);
    }
    if (8 + n > size) {
        close(fd);
        return err_set("%s: header length %llu runs past the end of the file (%llu bytes)", path,
                       (unsigned long long)n, (unsigned long long)size);
    }
    char *hdr = xmalloc((size_t)n);
    if (n && pread(fd, hdr, (size_t)n, 8) != (ssize_t)n) {
        free(hdr);
        close(fd);
        return err_set("%s: read error in the header", path);
    }
    json_object *root;
    st_entry *es;
    int ne;
    int rc = validate_header(path, hdr, (size_t)n, size - 8 - n, &root, &es, &ne);
    free(hdr);
    if (rc != 0) { close(fd); return -1; }

    void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        free(es);
        json_object_put(root);
        return err_set("%s: mmap failed: %s", path, strerror(errno));
    }
    int f = m->nfiles++;
    m->paths = xrealloc(m->paths, m->nfiles * sizeof *m->paths);
    m->maps = xrealloc(m->maps, m->nfiles * sizeof *m->maps);
    m->map_len = xrealloc(m->map_len, m->nfiles * sizeof *m->map_len);
    m->paths[f] = xstrdup(path);
    m->maps[f] = map;
    m->map_len[f] = (size_t)size;
    m->tensors = xrealloc(m->tensors, (size_t)(m->ntensors + ne) * sizeof *m->tensors);
    const unsigned char *data = (const unsigned char *)map + 8 + n;
    for (int i = 0; i < ne; i++) {
        st_tensor *t = &m->tensors[m->ntensors++];
        memset(t, 0, sizeof *t);
        t->name = xstrdup(es[i].name);
        t->dtype = es[i].dtype;
        t->ndim = es[i].ndim;
        t->numel = 1;
        for (int d = 0; d < t->ndim; d++) { t->shape[d] = es[i].shape[d]; t->numel *= t->shape[d]; }
        t->data = data + es[i].begin;
        t->nbytes = es[i].end - es[i].begin;
        t->file = f;
        t->path = m->paths[f];
    }
    free(es);
    json_object_put(root);
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

/* Sorts by name; a name held twice (only possible across shards) is an error. */
static int sort_names(st_model *m, const char *what)
{
    if (m->ntensors > 1) qsort(m->tensors, (size_t)m->ntensors, sizeof *m->tensors, cmp_names);
    for (int i = 1; i < m->ntensors; i++)
        if (strcmp(m->tensors[i - 1].name, m->tensors[i].name) == 0)
            return err_set("%s: tensor \"%s\" is in two shards: %s and %s", what, m->tensors[i].name,
                           m->paths[m->tensors[i - 1].file], m->paths[m->tensors[i].file]);
    return 0;
}

int st_open_file(st_model *m, const char *path)
{
    memset(m, 0, sizeof *m);
    if (add_file(m, path) != 0 || sort_names(m, path) != 0) { st_close(m); return -1; }
    return 0;
}

static char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = xmalloc(a + b + 2);
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static int open_index(st_model *m, const char *dir, const char *index)
{
    json_object *root = json_parse_file(index, ST_MAX_INDEX);
    if (!root) return -1;
    json_object *wm = NULL;
    const char **shards = NULL;
    int nshards = 0, rc = -1;
    if (!json_object_is_type(root, json_type_object) || !json_object_object_get_ex(root, "weight_map", &wm)
        || !json_object_is_type(wm, json_type_object)) {
        err_set("%s: no \"weight_map\" object", index);
        goto done;
    }
    /* every shard name checked once, then each distinct shard opened once */
    shards = xcalloc((size_t)json_object_object_length(wm), sizeof *shards);
    json_object_object_foreach(wm, name, v) {
        if (!json_object_is_type(v, json_type_string)) {
            err_set("%s: weight_map entry \"%s\" is not a string", index, name);
            goto done;
        }
        const char *s = json_object_get_string(v);
        if ((size_t)json_object_get_string_len(v) != strlen(s) || !*s || strchr(s, '/') || strcmp(s, ".") == 0
            || strcmp(s, "..") == 0) {
            err_set("%s: weight_map entry \"%s\": shard \"%s\" is not a plain file name in the directory", index, name, s);
            goto done;
        }
        shards[nshards++] = s;
    }
    qsort(shards, (size_t)nshards, sizeof *shards, cmp_str);
    for (int i = 0; i < nshards; i++) {
        if (i > 0 && strcmp(shards[i], shards[i - 1]) == 0) continue;
        char *p = path_join(dir, shards[i]);
        int r = add_file(m, p);
        free(p);
        if (r != 0) goto done;
    }
    if (sort_names(m, index) != 0) goto done;
    json_object_object_foreach(wm, name2, v2) {
        const st_tensor *t = st_find(m, name2);
        const char *want = json_object_get_string(v2);
        if (!t) {
            err_set("%s: tensor \"%s\" is not in its shard %s", index, name2, want);
            goto done;
        }
        const char *have = strrchr(m->paths[t->file], '/') + 1;
        if (strcmp(have, want) != 0) {
            err_set("%s: tensor \"%s\" is in shard %s, the index says %s", index, name2, have, want);
            goto done;
        }
    }
    /* a tensor in a shard but not in weight_map is accepted, as transformers does */
    rc = 0;
done:
    free(shards);
    json_object_put(root);
    return rc;
}

int st_open_dir(st_model *m, const char *dir)
{
    memset(m, 0, sizeof *m);
    char *single = path_join(dir, "model.safetensors");
    char *index = path_join(dir, "model.safetensors.index.json");
    int rc;
    if (access(single, F_OK) == 0) rc = st_open_file(m, single);
    else if (access(index, F_OK) == 0) rc = open_index(m, dir, index);
    else rc = err_set("%s: neither model.safetensors nor model.safetensors.index.json found", dir);
    if (rc != 0) st_close(m);
    free(single);
    free(index);
    return rc;
}

const st_tensor *st_find(const st_model *m, const char *name)
{
    int lo = 0, hi = m->ntensors;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(m->tensors[mid].name, name);
        if (c == 0) return &m->tensors[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* IEEE half → float, exact for every input: subnormals renormalised, inf/nan payload kept. */
static uint32_t f16_to_f32_bits(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (e == 0x1f) return sign | 0x7f800000u | (mant << 13);
    if (e == 0) {
        if (mant == 0) return sign;
        int ex = -14;                         /* value = mant/1024 · 2^-14 */
        while (!(mant & 0x400)) { mant <<= 1; ex--; }
        return sign | ((uint32_t)(ex + 127) << 23) | ((mant & 0x3ff) << 13);
    }
    return sign | ((e + 112) << 23) | (mant << 13);
}

/* A file that shrinks while it is mapped (truncated, replaced in place on a network file system)
 * turns the copy's loads beyond its new end into SIGBUS: caught here, while a tensor is copied, and
 * made an error naming the file and tensor instead of a silent death. The jump buffer is the
 * copying thread's own; a SIGBUS anywhere else keeps its default action. */
static __thread sigjmp_buf *bus_jump;
static void on_sigbus(int sig)
{
    if (bus_jump) siglongjmp(*bus_jump, 1);
    signal(sig, SIG_DFL);
    raise(sig);
}

int st_to_f32(const st_tensor *t, float *out)
{
    /* data may be unaligned (it follows a header of any length): loads go through memcpy */
    const unsigned char *p = t->data;
    int64_t n = t->numel;
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
        return err_set("%s: tensor \"%s\" has dtype %s; weights are read as float32 from F32, F16 or BF16 only",
                       t->path ? t->path : "safetensors", t->name, st_dtype_name(t->dtype));
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigbus;
    sigemptyset(&sa.sa_mask);
    sigjmp_buf jump;
    if (sigsetjmp(jump, 1)) {
        bus_jump = NULL;
        sigaction(SIGBUS, &old, NULL);
        return err_set("%s: tensor \"%s\": its data could not be read (SIGBUS: the file shrank or its storage failed "
                       "after it was opened)", t->path ? t->path : "safetensors", t->name);
    }
    sigaction(SIGBUS, &sa, &old);
    bus_jump = &jump;
    if (t->dtype == ST_F32) {
        if (n) memcpy(out, p, (size_t)n * 4);
    } else {
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            uint32_t b = t->dtype == ST_F16 ? f16_to_f32_bits(h) : (uint32_t)h << 16;
            memcpy(&out[i], &b, 4);
        }
    }
    bus_jump = NULL;
    sigaction(SIGBUS, &old, NULL);
    return 0;
}

void st_close(st_model *m)
{
    for (int i = 0; i < m->nfiles; i++) {
        if (m->maps && m->maps[i]) munmap(m->maps[i], m->map_len[i]);
        free(m->paths[i]);
    }
    for (int i = 0; i < m->ntensors; i++) free(m->tensors[i].name);
    free(m->paths);
    free(m->maps);
    free(m->map_len);
    free(m->tensors);
    memset(m, 0, sizeof *m);
}
