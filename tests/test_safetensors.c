/* test_safetensors.c — the safetensors reader against files written by the peer (Python
 * safetensors, tests/fixtures/make_safetensors_fixtures.py) and against corrupted files made here
 * in a temp dir (as ggml's gguf tests do).
 *
 * Valid files: every tensor's dtype, shape and numel must match expected.txt, and st_to_f32 must
 * reproduce numpy's (F16) / ml_dtypes' (BF16) float32 conversion bit for bit, NaN payloads
 * included. Corrupted files: st_open_* must return -1, leave the model empty and give a message
 * that names the file and contains a recognisable phrase. Run from the repo root. Exit 1 on any
 * failure. */
#include "safetensors.h"
#include "util.h"
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIX "tests/fixtures/safetensors"

#include "unit_check.h"



static void write_text(const char *path, const char *text) { write_bytes(path, text, strlen(text)); }

/* A safetensors file: 8-byte little-endian length, header, then data_len bytes (value i & 0xff). */
static void write_st(const char *path, const char *header, size_t data_len)
{
    size_t hn = strlen(header);
    unsigned char *buf = xmalloc(8 + hn + data_len);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hn >> (8 * i));
    memcpy(buf + 8, header, hn);
    for (size_t i = 0; i < data_len; i++) buf[8 + hn + i] = (unsigned char)i;
    write_bytes(path, buf, 8 + hn + data_len);
    free(buf);
}

static void set_len(unsigned char *buf, uint64_t n)
{
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(n >> (8 * i));
}

/* --- expected.txt -------------------------------------------------------------------------- */

typedef struct {
    char dir[16], name[64], dtype[8];
    int ndim;
    int64_t shape[ST_MAX_DIMS], numel;
    uint32_t *bits;  /* [numel] or NULL for non-float dtypes */
} expect_row;

static int read_expected(expect_row **rows_out)
{
    size_t n;
    char *text = util_read_file(FIX "/expected.txt", 1 << 20, &n);
    if (!text) { fail("%s", err_get()); return 0; }
    expect_row *rows = NULL;
    int nrows = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        rows = xrealloc(rows, (size_t)(nrows + 1) * sizeof *rows);
        expect_row *r = &rows[nrows++];
        memset(r, 0, sizeof *r);
        int used = 0;
        char *p = line;
        if (sscanf(p, "%15s %63s %7s %d%n", r->dir, r->name, r->dtype, &r->ndim, &used) != 4 || r->ndim > ST_MAX_DIMS) {
            fprintf(stderr, "bad line in expected.txt: %s\n", line);
            exit(1);
        }
        p += used;
        for (int d = 0; d < r->ndim; d++) { r->shape[d] = strtoll(p, &p, 10); }
        r->numel = strtoll(p, &p, 10);
        if (strcmp(r->dtype, "F32") == 0 || strcmp(r->dtype, "F16") == 0 || strcmp(r->dtype, "BF16") == 0) {
            r->bits = xcalloc((size_t)r->numel, sizeof *r->bits);
            for (int64_t i = 0; i < r->numel; i++) r->bits[i] = (uint32_t)strtoul(p, &p, 16);
        }
    }
    free(text);
    *rows_out = rows;
    return nrows;
}

/* Compares every tensor of m with the rows of that dir; every row must be found and no tensor
 * may be left over. */
static void compare_model(const st_model *m, const char *dir, const expect_row *rows, int nrows)
{
    int nexp = 0;
    for (int i = 1; i < m->ntensors; i++)
        if (strcmp(m->tensors[i - 1].name, m->tensors[i].name) >= 0)
            fail("%s: tensors not sorted by name at %d", dir, i);
    for (int r = 0; r < nrows; r++) {
        const expect_row *e = &rows[r];
        if (strcmp(e->dir, dir) != 0) continue;
        nexp++;
        const st_tensor *t = st_find(m, e->name);
        if (!t) { fail("%s: st_find(\"%s\") returned NULL", dir, e->name); continue; }
        int same = strcmp(st_dtype_name(t->dtype), e->dtype) == 0 && t->ndim == e->ndim && t->numel == e->numel
                   && t->nbytes == (uint64_t)e->numel * st_dtype_size(t->dtype);
        for (int d = 0; same && d < e->ndim; d++) same = t->shape[d] == e->shape[d];
        if (!same) { fail("%s %s: dtype/shape/numel/nbytes differ from expected.txt", dir, e->name); continue; }
        char shape[96] = "[";
        for (int d = 0; d < t->ndim; d++)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%lld", d ? "," : "", (long long)t->shape[d]);
        strcat(shape, "]");
        float *out = xcalloc((size_t)t->numel + 1, sizeof *out);
        int rc = st_to_f32(t, out);
        if (!e->bits) {
            if (rc == 0) fail("%s %s: st_to_f32 accepted dtype %s", dir, e->name, e->dtype);
            else printf("ok   %-8s %-14s %-4s %-7s st_to_f32 refused: %s\n", dir, e->name, e->dtype, shape, err_get());
        } else if (rc != 0) {
            fail("%s %s: st_to_f32: %s", dir, e->name, err_get());
        } else {
            int64_t bad = 0;
            for (int64_t i = 0; i < t->numel; i++) {
                uint32_t b;
                memcpy(&b, &out[i], 4);
                if (b != e->bits[i]) {
                    if (!bad) fail("%s %s [%lld]: got bits %08x, numpy says %08x", dir, e->name, (long long)i, b, e->bits[i]);
                    bad++;
                }
            }
            if (!bad)
                printf("ok   %-8s %-14s %-4s %-7s %lld values bit-identical to numpy's float32\n", dir, e->name,
                       e->dtype, shape, (long long)t->numel);
        }
        free(out);
    }
    if (nexp != m->ntensors) fail("%s: %d tensors loaded, expected.txt has %d", dir, m->ntensors, nexp);
    if (st_find(m, "no.such.tensor") || st_find(m, "") ) fail("%s: st_find found a missing name", dir);
}

/* --- rejection cases --------------------------------------------------------------------- */

/* path: what to open (a file, or a dir when is_dir); must fail with a message holding `names`
 * (the file it blames) and `phrase`. */
static void expect_reject(const char *label, const char *path, int is_dir, const char *names, const char *phrase)
{
    st_model m;
    memset(&m, 0xAB, sizeof m); /* st_open_* must not read what was there */
    int rc = is_dir ? st_open_dir(&m, path) : st_open_file(&m, path);
    const char *msg = err_get();
    if (rc != -1) {
        fail("%-28s accepted (%d tensors)", label, m.ntensors);
        st_close(&m);
        return;
    }
    if (m.nfiles || m.ntensors || m.paths || m.maps || m.tensors) fail("%-28s model not left empty", label);
    if (!strstr(msg, names)) fail("%-28s message does not name %s: %s", label, names, msg);
    else if (!strstr(msg, phrase)) fail("%-28s message lacks \"%s\": %s", label, phrase, msg);
    else printf("ok   reject %-28s %s\n", label, msg);
}

static void expect_accept(const char *label, const char *path, int ntensors)
{
    st_model m;
    if (st_open_file(&m, path) != 0) { fail("%-28s rejected: %s", label, err_get()); return; }
    if (m.ntensors != ntensors) fail("%-28s %d tensors, expected %d", label, m.ntensors, ntensors);
    else printf("ok   accept %-28s %d tensors\n", label, m.ntensors);
    st_close(&m);
}

/* one tensor "a": E1 is the member, T1 the whole header */
#define E1(dt, shape, b, e) "\"a\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"
#define T1(dt, shape, b, e) "{" E1(dt, shape, b, e) "}"

static void header_cases(void)
{
    /* each: label, header, data bytes, phrase */
    static const struct { const char *label, *header; size_t data; const char *phrase; } cs[] = {
        { "header not an object", "[1, 2]  ", 0, "not an object" },
        { "header a string", "\"abc\"", 0, "not an object" },
        { "header with NUL padding", T1("F32", "[1]", 0, 4) "\0\0", 4, "NUL byte" },
        { "header with \\u0000 name", "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "escaped NUL" },
        { "duplicate tensor name", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                                   "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "duplicate name" },
        { "unknown dtype", T1("F17", "[1]", 0, 4), 4, "unknown dtype \"F17\"" },
        { "lowercase dtype", T1("f32", "[1]", 0, 4), 4, "unknown dtype" },
        { "dtype not a string", "{\"a\":{\"dtype\":3,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "should be a string" },
        { "missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "missing \"dtype\"" },
        { "negative shape", T1("F32", "[-1]", 0, 4), 4, "not a non-negative integer" },
        { "non-integer shape", T1("F32", "[1.5]", 0, 4), 4, "not a non-negative integer" },
        { "string shape", T1("F32", "[\"1\"]", 0, 4), 4, "not a non-negative integer" },
        { "shape not an array", T1("F32", "4", 0, 4), 4, "\"shape\" missing or not an array" },
        { "9 dims", T1("F32", "[1,1,1,1,1,1,1,1,1]", 0, 4), 4, "more than the 8 supported" },
        { "shape x size != end-begin", T1("F32", "[2,2]", 0, 12), 12, "need 16 bytes but data_offsets span 12" },
        { "begin > end", T1("F32", "[1]", 8, 4), 8, "begin 8 > end 4" },
        { "negative offset", T1("F32", "[1]", -4, 0), 0, "data_offsets are not non-negative" },
        { "3 offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,4]}}", 4, "not [begin, end]" },
        { "overlapping offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                                 "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlap" },
        { "gap between tensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                                 "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, "gap" },
        { "first tensor not at 0", T1("F32", "[1]", 4, 8), 8, "gap" },
        { "shape product overflow", T1("F32", "[4611686018427387904,8]", 0, 16), 16, "overflows" },
        { "shape x size overflow", T1("F32", "[4611686018427387904,1]", 0, 16), 16, "overflows" },
        { "Rust overflow case 1", T1("I32", "[2,18446744073709551614]", 0, 16), 16, "too large" },
        { "Rust overflow case 2", T1("I32", "[2,9223372036854775807]", 0, 16), 16, "overflows" },
        { "Rust invalid info case", T1("I32", "[2,2]", 0, 4), 4, "need 16 bytes" },
        { "metadata value not string", "{\"__metadata__\":{\"k\":1}," E1("F32", "[1]", 0, 4) "}", 4, "not a string" },
        { "metadata not an object", "{\"__metadata__\":[\"k\"]," E1("F32", "[1]", 0, 4) "}", 4, "not an object of strings" },
        { "entry not an object", "{\"a\":[1,2]}", 0, "not an object" },
        { "data longer than tensors", T1("F32", "[1]", 0, 4), 5, "trailing bytes" },
        { "data shorter than tensors", T1("F32", "[2]", 0, 8), 6, "truncated" },
    };
    char name[32];
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        snprintf(name, sizeof name, "h%02zu.safetensors", i);
        const char *p = tmp_path(name);
        if (i == 2) {
            /* string literal with embedded NULs: write by hand (length includes the 2 NULs) */
            const char *h = cs[i].header;
            size_t hn = strlen(h) + 2;
            unsigned char buf[256] = {0};
            set_len(buf, hn);
            memcpy(buf + 8, h, strlen(h));
            write_bytes(p, buf, 8 + hn + cs[i].data);
            expect_reject(cs[i].label, p, 0, p, cs[i].phrase);
            continue;
        }
        write_st(p, cs[i].header, cs[i].data);
        expect_reject(cs[i].label, p, 0, p, cs[i].phrase);
    }
}

/* Corruptions of the peer's single/model.safetensors: cut, patched length, patched bytes. */
static void file_cases(void)
{
    size_t L;
    unsigned char *v = (unsigned char *)util_read_file(FIX "/single/model.safetensors", 1 << 20, &L);
    if (!v) { fail("%s", err_get()); return; }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | v[i];
    unsigned char *w = xmalloc(L + 16);
    const char *p;

    p = tmp_path("short.safetensors");
    write_bytes(p, v, 5);
    expect_reject("file shorter than 8 bytes", p, 0, p, "too short");
    p = tmp_path("empty.safetensors");
    write_bytes(p, v, 0);
    expect_reject("empty file", p, 0, p, "too short");

    memcpy(w, v, L);
    set_len(w, 100000001);
    p = tmp_path("huge_header.safetensors");
    write_bytes(p, w, L);
    expect_reject("header length > 100,000,000", p, 0, p, "100,000,000-byte limit");
    set_len(w, UINT64_MAX);
    write_bytes(p, w, L);
    expect_reject("header length 2^64-1", p, 0, p, "100,000,000-byte limit");

    set_len(w, L - 8 + 1);
    p = tmp_path("past_end.safetensors");
    write_bytes(p, w, L);
    expect_reject("header length beyond file end", p, 0, p, "past the end of the file");

    memcpy(w, v, L);
    w[8 + 2] = 0xFF;              /* inside the first name: {"<here> */
    p = tmp_path("utf8.safetensors");
    write_bytes(p, w, L);
    expect_reject("header invalid UTF-8", p, 0, p, "not valid UTF-8");
    memcpy(w, v, L);
    w[8 + 2] = 0xC0; w[8 + 3] = 0xAF; /* overlong '/' */
    write_bytes(p, w, L);
    expect_reject("header overlong UTF-8", p, 0, p, "not valid UTF-8");

    memcpy(w, v, L);
    for (size_t i = 8 + n; i-- > 8;)
        if (w[i] == '}') { w[i] = ' '; break; }
    p = tmp_path("notjson.safetensors");
    write_bytes(p, w, L);
    expect_reject("header not JSON (last } cut)", p, 0, p, "invalid JSON");

    memcpy(w, v, L);
    memcpy(w + L, "garbage", 7);
    p = tmp_path("trailing.safetensors");
    write_bytes(p, w, L + 7);
    expect_reject("trailing garbage", p, 0, p, "7 trailing bytes");

    p = tmp_path("truncated.safetensors");
    write_bytes(p, v, L - 3);
    expect_reject("truncated data", p, 0, p, "truncated");
    write_bytes(p, v, 8 + n);
    expect_reject("data cut entirely", p, 0, p, "truncated");

    p = tmp_path("is_a_dir.safetensors");
    expect_reject("path does not exist", p, 0, p, "cannot open");
    expect_reject("path is a directory", tmpdir, 0, tmpdir, "not a regular file");

    free(w);
    free(v);
}

static void copy_file(const char *from, const char *to)
{
    size_t n;
    char *b = util_read_file(from, 1 << 20, &n);
    if (!b) { fprintf(stderr, "%s\n", err_get()); exit(1); }
    write_bytes(to, b, n);
    free(b);
}

#define S1 "model-00001-of-00002.safetensors"
#define S2 "model-00002-of-00002.safetensors"

static void index_cases(void)
{
    char dir[128], idx[160];
    snprintf(dir, sizeof dir, "%s/shards", tmpdir);
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
    if (mkdir(dir, 0700) != 0) { fail("mkdir %s", dir); return; }
    expect_reject("dir with neither file", dir, 1, dir, "neither model.safetensors nor model.safetensors.index.json");

    copy_file(FIX "/sharded/" S1, tmp_path("shards/" S1));
    copy_file(FIX "/sharded/" S2, tmp_path("shards/" S2));
    copy_file(FIX "/sharded/" S1, tmp_path("shards/copy.safetensors"));
    static const struct { const char *label, *index, *names, *phrase; } cs[] = {
        { "index names a missing shard",
          "{\"weight_map\":{\"layer.0.b\":\"" S1 "\",\"layer.0.w\":\"" S1 "\",\"layer.1.w\":\"model-00003-of-00002.safetensors\"}}",
          "model-00003-of-00002.safetensors", "cannot open" },
        { "index with ../x shard", "{\"weight_map\":{\"layer.0.b\":\"../x\"}}", "model.safetensors.index.json", "\"../x\" is not a plain file name" },
        { "index with .. shard", "{\"weight_map\":{\"layer.0.b\":\"..\"}}", "model.safetensors.index.json", "not a plain file name" },
        { "index with absolute shard", "{\"weight_map\":{\"layer.0.b\":\"/etc/passwd\"}}", "model.safetensors.index.json", "not a plain file name" },
        { "index with empty shard name", "{\"weight_map\":{\"layer.0.b\":\"\"}}", "model.safetensors.index.json", "not a plain file name" },
        { "index shard not a string", "{\"weight_map\":{\"layer.0.b\":1}}", "model.safetensors.index.json", "not a string" },
        { "index without weight_map", "{\"metadata\":{}}", "model.safetensors.index.json", "no \"weight_map\"" },
        { "index not JSON", "{\"weight_map\":", "model.safetensors.index.json", "invalid JSON" },
        { "index: tensor in wrong shard",
          "{\"weight_map\":{\"layer.0.b\":\"" S2 "\",\"layer.0.w\":\"" S1 "\",\"layer.1.w\":\"" S2 "\"}}",
          "model.safetensors.index.json", "\"layer.0.b\" is in shard " S1 ", the index says " S2 },
        { "index: tensor missing",
          "{\"weight_map\":{\"ghost\":\"" S1 "\",\"layer.0.w\":\"" S1 "\"}}",
          "model.safetensors.index.json", "\"ghost\" is not in its shard" },
        { "name in two shards",
          "{\"weight_map\":{\"layer.0.b\":\"" S1 "\",\"layer.0.w\":\"copy.safetensors\"}}",
          "model.safetensors.index.json", "is in two shards" },
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        write_text(idx, cs[i].index);
        expect_reject(cs[i].label, dir, 1, cs[i].names, cs[i].phrase);
    }
    /* a corrupted shard is reported under the shard's name */
    write_text(idx, "{\"weight_map\":{\"layer.0.b\":\"" S1 "\",\"layer.1.w\":\"bad.safetensors\"}}");
    write_st(tmp_path("shards/bad.safetensors"), T1("F32", "[1]", 0, 4), 5);
    expect_reject("index with a corrupted shard", dir, 1, "bad.safetensors", "trailing bytes");

    /* model.safetensors wins over the index, even a broken one */
    copy_file(FIX "/single/model.safetensors", tmp_path("shards/model.safetensors"));
    st_model m;
    if (st_open_dir(&m, dir) != 0) fail("model.safetensors beside an index: %s", err_get());
    else {
        if (m.nfiles != 1 || !st_find(&m, "attn.f16")) fail("model.safetensors beside an index not preferred");
        else printf("ok   dir with model.safetensors and a broken index: model.safetensors opened\n");
        st_close(&m);
    }
}

static void accept_cases(void)
{
    write_st(tmp_path("ws.safetensors"), " \n\t\r{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} \r\n\t ", 8);
    expect_accept("whitespace around header", tmp_path("ws.safetensors"), 1);
    write_st(tmp_path("empty_obj.safetensors"), "{}      ", 0);
    expect_accept("{} and no data (Rust test_empty)", tmp_path("empty_obj.safetensors"), 0);
    write_st(tmp_path("meta_null.safetensors"), "{\"__metadata__\":null," E1("F32", "[1]", 0, 4) "}", 4);
    expect_accept("__metadata__ null", tmp_path("meta_null.safetensors"), 1);
    write_st(tmp_path("zero.safetensors"), "{\"z\":{\"dtype\":\"I32\",\"shape\":[2,0],\"data_offsets\":[0,0]},"
             "\"y\":{\"dtype\":\"I32\",\"shape\":[0],\"data_offsets\":[0,0]},"
             "\"x\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]}}", 3);
    expect_accept("zero-sized tensors at 0", tmp_path("zero.safetensors"), 3);
    write_st(tmp_path("extra.safetensors"), "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2],\"x\":[]}}", 2);
    expect_accept("unknown entry key ignored", tmp_path("extra.safetensors"), 1);
    /* unaligned data (odd header length) still converts */
    write_st(tmp_path("odd.safetensors"), "{\"a\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2);
    st_model m;
    if (st_open_file(&m, tmp_path("odd.safetensors")) == 0) {
        float f;
        /* data bytes are 00 01: half 0x0100 = 2^-16 (a subnormal) */
        if (st_to_f32(&m.tensors[0], &f) != 0 || f != 0x1p-16f) fail("unaligned F16: got %g", f);
        else printf("ok   accept %-28s %g == 2^-16\n", "unaligned F16 data", f);
        st_close(&m);
    } else fail("odd header: %s", err_get());
}

/* A file truncated after it was opened and mapped (issue 14): st_to_f32 of a tensor beyond the new
 * end gets SIGBUS, which must come back as an error naming the file and tensor, not kill the test;
 * a tensor still inside the file copies as before, and SIGBUS keeps the action it had before (the
 * default; AddressSanitizer's own handler under `make sanitize`). */
static void shrunk_while_mapped(void)
{
    char path[] = "/tmp/test_safetensors_shrink_XXXXXX";
    const int fd = mkstemp(path);
    /* two F32 tensors: "a" in the first page, "b" of 16 KiB after it (mostly beyond the 4 KiB left after the cut) */
    char hdr[256];
    const int nb = 4096;
    int hl = snprintf(hdr, sizeof hdr, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                                        "\"b\":{\"dtype\":\"F32\",\"shape\":[%d],\"data_offsets\":[16,%d]}}",
                      nb, 16 + 4 * nb);
    while (hl % 8) hdr[hl++] = ' ';
    const uint64_t n = (uint64_t)hl;
    const size_t total = 8 + n + 16 + 4 * (size_t)nb;
    unsigned char *buf = calloc(total, 1);
    memcpy(buf, &n, 8);
    memcpy(buf + 8, hdr, n);
    if (fd < 0 || write(fd, buf, total) != (ssize_t)total) { fail("shrink: cannot write %s", path); free(buf); return; }
    struct sigaction before, now;
    sigaction(SIGBUS, NULL, &before);
    st_model m;
    if (st_open_file(&m, path) != 0) { fail("shrink: %s", err_get()); close(fd); unlink(path); free(buf); return; }
    if (ftruncate(fd, 4096) != 0) fail("shrink: ftruncate: %s", strerror(errno));
    float a[4], *b = malloc(4 * (size_t)nb);
    const int ra = st_to_f32(st_find(&m, "a"), a), rb = st_to_f32(st_find(&m, "b"), b);
    const char *msg = rb ? err_get() : "";
    if (ra != 0) fail("shrink: tensor a (inside the file) refused: %s", err_get());
    else if (rb == 0) fail("shrink: tensor b beyond the truncated end was copied without an error");
    else if (!strstr(msg, path) || !strstr(msg, "\"b\"") || !strstr(msg, "SIGBUS"))
        fail("shrink: the message does not name the file, the tensor and SIGBUS: %s", msg);
    else printf("ok   shrink   a file truncated after it was mapped: tensor a copied, tensor b refused: %s\n", msg);
    sigaction(SIGBUS, NULL, &now);
    if (now.sa_handler != before.sa_handler) fail("shrink: SIGBUS's action was not restored");
    st_close(&m);
    close(fd);
    unlink(path);
    free(buf);
    free(b);
}

/* Every F16 bit pattern through st_to_f32, hashed like the fixture script hashes numpy's. */
static void f16_exhaustive(void)
{
    char *text = util_read_file(FIX "/f16_all_fnv1a64.txt", 100, NULL);
    if (!text) { fail("%s", err_get()); return; }
    uint64_t want = strtoull(text, NULL, 16), h = 0xCBF29CE484222325ull;
    free(text);
    uint16_t *in = xmalloc(65536 * sizeof *in);
    float *out = xmalloc(65536 * sizeof *out);
    for (int i = 0; i < 65536; i++) in[i] = (uint16_t)i;
    st_tensor t = { .name = "all_f16", .dtype = ST_F16, .ndim = 1, .shape = { 65536 }, .numel = 65536,
                    .data = in, .nbytes = 65536 * 2 };
    if (st_to_f32(&t, out) != 0) fail("all_f16: %s", err_get());
    const unsigned char *b = (const unsigned char *)out;
    for (size_t i = 0; i < 65536 * 4; i++) h = (h ^ b[i]) * 0x100000001B3ull;
    if (h != want) fail("all 65536 F16 values: FNV-1a %016llx, numpy's is %016llx", (unsigned long long)h,
                        (unsigned long long)want);
    else printf("ok   all 65536 F16 bit patterns: FNV-1a of float32 bits %016llx == numpy's\n", (unsigned long long)h);
    free(in);
    free(out);
}

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (e->d_type == DT_DIR) remove_tree(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

int main(void)
{
    expect_row *rows = NULL;
    int nrows = read_expected(&rows);
    st_model m;

    printf("== peer files (safetensors %s, expected bits from numpy / ml_dtypes)\n", FIX);
    if (st_open_dir(&m, FIX "/single") != 0) fail("%s", err_get());
    else {
        compare_model(&m, "single", rows, nrows);
        st_close(&m);
    }
    if (st_open_file(&m, FIX "/single/model.safetensors") != 0) fail("%s", err_get());
    else {
        if (m.nfiles != 1 || m.ntensors != 7) fail("st_open_file: %d files %d tensors", m.nfiles, m.ntensors);
        st_close(&m);
        st_close(&m); /* closing an empty model is allowed */
    }
    if (st_open_dir(&m, FIX "/sharded") != 0) fail("%s", err_get());
    else {
        if (m.nfiles != 2) fail("sharded: %d files opened, expected 2", m.nfiles);
        compare_model(&m, "sharded", rows, nrows);
        const st_tensor *t = st_find(&m, "layer.1.extra");
        if (!t || strstr(m.paths[t->file], S2) == NULL) fail("sharded: layer.1.extra not found in shard 2");
        st_close(&m);
    }
    f16_exhaustive();
    shrunk_while_mapped();
    for (int i = 0; i < nrows; i++) free(rows[i].bits);
    free(rows);

    strcpy(tmpdir, "/tmp/test_safetensors_XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    printf("== accepted edge cases (temp dir %s)\n", tmpdir);
    accept_cases();
    printf("== corrupted headers\n");
    header_cases();
    printf("== corrupted copies of the peer file\n");
    file_cases();
    printf("== sharded checkpoints\n");
    index_cases();
    remove_tree(tmpdir);

    if (failures) { printf("test_safetensors: %d FAILED\n", failures); return 1; }
    printf("test_safetensors: all passed\n");
    return 0;
}
