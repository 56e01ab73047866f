/* test_gguf.c — the GGUF reader against files written by the peer (gguf-py, llama.cpp's Python
 * package: tests/fixtures/make_gguf_fixtures.py) and against corrupted files made here in a temp
 * dir (as ggml's tests/test-gguf.cpp does).
 *
 * Peer files: every metadata value of meta.gguf read back through the typed getters and the raw
 * entries (values in META_* below are the ones the script wrote); every tensor of quant.gguf
 * dequantized by gguf_tensor_f32 compared bit for bit with "<name>.ref", the float32 that
 * gguf.quants.dequantize gives for the same bytes (tolerance 0: our code does ggml's float
 * operations in ggml's order, and so does gguf-py's numpy, so any difference is a bug; the max abs
 * difference is printed anyway); gguf_unpermute_qk undoes the converter's permutation exactly
 * (a copy of floats, tolerance 0). Corrupted files: gguf_open must return -1, leave g empty and
 * give one message that names the file and contains a recognisable phrase; the count cases
 * (2^63 keys, tensors, array elements, string bytes) would abort in xmalloc if anything were
 * allocated from them first. The peer's quant.gguf is also cut at every byte of its header (all
 * refused) and copied 3000 times with random bit flips in the header (each refused naming the file,
 * or opened with every tensor readable; make sanitize runs this under ASan/UBSan). Run from the repo
 * root. Exit 1 on any failure. */
#include "gguf.h"
#include "quant.h"
#include "util.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIX "tests/fixtures/gguf"

#include "unit_check.h"



/* --- the peer's files ----------------------------------------------------------------------- */

static void check_u32(const gguf_file *g, const char *key, uint32_t want)
{
    uint32_t v = 0;
    if (gguf_get_u32(g, key, &v) != 0) fail("gguf_get_u32(%s): %s", key, err_get());
    else if (v != want) fail("gguf_get_u32(%s) = %u, want %u", key, v, want);
}
static void check_i32(const gguf_file *g, const char *key, int32_t want)
{
    int32_t v = 0;
    if (gguf_get_i32(g, key, &v) != 0) fail("gguf_get_i32(%s): %s", key, err_get());
    else if (v != want) fail("gguf_get_i32(%s) = %d, want %d", key, v, want);
}
static void check_refused(int rc, const char *what, const char *phrase)
{
    if (rc == 0) fail("%s accepted", what);
    else if (!strstr(err_get(), phrase) || !strstr(err_get(), FIX "/meta.gguf"))
        fail("%s: message lacks \"%s\" or the file: %s", what, phrase, err_get());
    else printf("ok   getter refuses %-34s %s\n", what, err_get());
}

/* raw bytes of a scalar or array entry of the given type and length */
static void check_raw(const gguf_file *g, const char *key, gguf_vtype t, int is_array, uint64_t n,
                      const void *want, size_t want_bytes)
{
    const gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv) { fail("key %s missing", key); return; }
    if (kv->type != t || kv->is_array != is_array || kv->n != n)
        fail("key %s: type %s array %d n %llu, want %s %d %llu", key, gguf_vtype_name(kv->type), kv->is_array,
             (unsigned long long)kv->n, gguf_vtype_name(t), is_array, (unsigned long long)n);
    else if (memcmp(kv->data, want, want_bytes) != 0) fail("key %s: values differ from what gguf-py wrote", key);
}

static void meta_file(void)
{
    gguf_file g;
    const char *path = FIX "/meta.gguf";
    if (gguf_open(&g, path) != 0) { fail("%s", err_get()); return; }
    printf("== %s: version %u, %lld keys, %lld tensors, alignment %u, data at %llu\n", path, g.version,
           (long long)g.nkv, (long long)g.ntensors, g.alignment, (unsigned long long)g.data_offset);
    if (g.version != 3 || g.nkv != 26 || g.ntensors != 3 || g.alignment != 64 || g.data_offset % 64)
        fail("meta.gguf: header differs from what gguf-py wrote");
    /* scalars, through the getters */
    const char *s;
    uint64_t len;
    float f;
    int b;
    check_u32(&g, "t.u8", 200);
    check_i32(&g, "t.i8", -100);
    check_u32(&g, "t.u16", 60000);
    check_i32(&g, "t.i16", -30000);
    check_u32(&g, "t.u32", 4000000000u);
    check_i32(&g, "t.i32", -2000000000);
    check_u32(&g, "general.alignment", 64);
    if (gguf_get_f32(&g, "t.f32", &f) != 0 || f != 3.25f) fail("gguf_get_f32(t.f32)");
    if (gguf_get_f32(&g, "t.f64", &f) != 0 || f != (float)(1.0 / 3)) fail("gguf_get_f32(t.f64)");
    if (gguf_get_bool(&g, "t.bool", &b) != 0 || b != 1) fail("gguf_get_bool(t.bool)");
    if (gguf_get_str(&g, "t.str", &s, &len) != 0 || strcmp(s, "h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c") || len != 13)
        fail("gguf_get_str(t.str)");
    if (gguf_get_str(&g, "general.architecture", &s, NULL) != 0 || strcmp(s, "testarch")) fail("general.architecture");
    uint64_t u64 = (1ull << 63) + 5;
    int64_t i64 = -(1ll << 62) - 3;
    double f64 = 1.0 / 3;
    check_raw(&g, "t.u64", GGUF_UINT64, 0, 1, &u64, 8);
    check_raw(&g, "t.i64", GGUF_INT64, 0, 1, &i64, 8);
    check_raw(&g, "t.f64", GGUF_FLOAT64, 0, 1, &f64, 8);
    /* arrays */
    static const uint8_t au8[] = { 0, 1, 255 };
    static const int8_t ai8[] = { -128, 0, 127 };
    static const uint16_t au16[] = { 0, 65535 };
    static const int16_t ai16[] = { -32768, 32767 };
    static const uint32_t au32[] = { 1, 2, 4294967295u };
    static const int32_t ai32[] = { -1, 0, 1, 2147483647 };
    static const float af32[] = { 0.5f, -1.25f, 1e-3f };
    static const uint8_t abool[] = { 1, 0, 1 };
    static const uint64_t au64[] = { UINT64_MAX, 0 };
    static const int64_t ai64[] = { INT64_MIN, INT64_MAX };
    static const double af64[] = { 1e300, -2.5 };
    check_raw(&g, "t.a.u8", GGUF_UINT8, 1, 3, au8, sizeof au8);
    check_raw(&g, "t.a.i8", GGUF_INT8, 1, 3, ai8, sizeof ai8);
    check_raw(&g, "t.a.u16", GGUF_UINT16, 1, 2, au16, sizeof au16);
    check_raw(&g, "t.a.i16", GGUF_INT16, 1, 2, ai16, sizeof ai16);
    check_raw(&g, "t.a.u32", GGUF_UINT32, 1, 3, au32, sizeof au32);
    check_raw(&g, "t.a.i32", GGUF_INT32, 1, 4, ai32, sizeof ai32);
    check_raw(&g, "t.a.f32", GGUF_FLOAT32, 1, 3, af32, sizeof af32);
    check_raw(&g, "t.a.bool", GGUF_BOOL, 1, 3, abool, sizeof abool);
    check_raw(&g, "t.a.u64", GGUF_UINT64, 1, 2, au64, sizeof au64);
    check_raw(&g, "t.a.i64", GGUF_INT64, 1, 2, ai64, sizeof ai64);
    check_raw(&g, "t.a.f64", GGUF_FLOAT64, 1, 2, af64, sizeof af64);
    uint32_t u32s[3];
    int32_t i32s[4];
    if (gguf_get_u32_array(&g, "t.a.u32", u32s, 3) != 0 || memcmp(u32s, au32, sizeof au32)) fail("u32 array");
    if (gguf_get_u32_array(&g, "t.a.u8", u32s, 3) != 0 || u32s[2] != 255) fail("u32 array of uint8");
    if (gguf_get_i32_array(&g, "t.a.i32", i32s, 4) != 0 || memcmp(i32s, ai32, sizeof ai32)) fail("i32 array");
    char *const *strs;
    const uint64_t *lens;
    uint64_t n;
    if (gguf_get_str_array(&g, "t.a.str", &strs, &lens, &n) != 0 || n != 4 || strcmp(strs[0], "a") || strcmp(strs[1], "")
        || strcmp(strs[2], "\xc3\xbc\xc3\xb1\xc3\xad") || lens[3] != 3 || memcmp(strs[3], "x\0y", 4))
        fail("string array t.a.str");
    else printf("ok   %d scalar and %d array values of every type read back as gguf-py wrote them\n", 14, 12);
    /* getters refuse what does not fit */
    check_refused(gguf_get_u32(&g, "t.i8", (uint32_t *)&b), "u32 of int8 -100", "out of range");
    check_refused(gguf_get_i32(&g, "t.u32", (int32_t *)&b), "i32 of uint32 4e9", "out of range");
    check_refused(gguf_get_u32(&g, "t.u64", (uint32_t *)&b), "u32 of uint64 2^63+5", "out of range");
    check_refused(gguf_get_u32(&g, "t.str", (uint32_t *)&b), "u32 of a string", "expected an integer");
    check_refused(gguf_get_u32(&g, "no.such.key", (uint32_t *)&b), "a missing key", "not found");
    check_refused(gguf_get_str(&g, "t.a.str", &s, NULL), "string of an array", "expected a single value");
    check_refused(gguf_get_f32(&g, "t.u8", &f), "f32 of uint8", "expected float32");
    check_refused(gguf_get_bool(&g, "t.u8", &b), "bool of uint8", "expected bool");
    check_refused(gguf_get_u32_array(&g, "t.a.i32", u32s, 4), "u32 array holding -1", "out of range");
    check_refused(gguf_get_u32_array(&g, "t.a.u32", u32s, 2), "array of the wrong length", "has 3 elements");
    /* tensors: ggml's dims order */
    static const struct { const char *name; int nd; int64_t ne[4]; float scale, shift; } ts[] = {
        { "v1", 1, { 7, 1, 1, 1 }, 1, 0 }, { "v3", 3, { 4, 3, 2, 1 }, 1, -5 }, { "v4", 4, { 2, 3, 2, 1 }, 0.5f, 0 } };
    for (int i = 0; i < 3; i++) {
        const gguf_tensor *t = gguf_find_tensor(&g, ts[i].name);
        if (!t || t->n_dims != ts[i].nd || memcmp(t->ne, ts[i].ne, sizeof t->ne) || t->type != QT_F32
            || (t->offset - g.data_offset) % 64) {
            fail("tensor %s: dims/type/offset differ", ts[i].name);
            continue;
        }
        float out[32];
        if (gguf_tensor_f32(&g, ts[i].name, out, (size_t)t->numel) != 0) { fail("%s", err_get()); continue; }
        for (int64_t j = 0; j < t->numel; j++)
            if (out[j] != (float)j * ts[i].scale + ts[i].shift) { fail("tensor %s[%lld]", ts[i].name, (long long)j); break; }
    }
    float out[8];
    check_refused(gguf_tensor_f32(&g, "v1", out, 6), "tensor with the wrong n", "buffer holds 6");
    check_refused(gguf_tensor_f32(&g, "nope", out, 6), "a missing tensor", "no tensor \"nope\"");
    gguf_close(&g);
    gguf_close(&g); /* closing an empty one is allowed */
}

static void quant_file(void)
{
    gguf_file g;
    const char *path = FIX "/quant.gguf";
    if (gguf_open(&g, path) != 0) { fail("%s", err_get()); return; }
    printf("== %s: dequantized vs gguf.quants.dequantize (\"<type>.ref\"), tolerance 0\n", path);
    static const char *names[] = { "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1",
                                   "q2_K", "q3_K", "q4_K", "q5_K", "q6_K" };
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        char ref[32];
        snprintf(ref, sizeof ref, "%s.ref", names[k]);
        const gguf_tensor *t = gguf_find_tensor(&g, names[k]), *r = gguf_find_tensor(&g, ref);
        if (!t || !r || t->numel != r->numel || strcmp(quant_type(t->type)->name, names[k]) != 0) {
            fail("%s: tensor or its reference missing, or of another type", names[k]);
            continue;
        }
        float *a = xmalloc((size_t)t->numel * sizeof *a), *e = xmalloc((size_t)t->numel * sizeof *e);
        if (gguf_tensor_f32(&g, names[k], a, (size_t)t->numel) != 0 || gguf_tensor_f32(&g, ref, e, (size_t)r->numel) != 0)
            fail("%s", err_get());
        else {
            int64_t diff = 0;
            double maxabs = 0;
            for (int64_t i = 0; i < t->numel; i++) {
                if (memcmp(&a[i], &e[i], 4) != 0) diff++;
                double d = fabs((double)a[i] - (double)e[i]);
                if (d > maxabs || d != d) maxabs = d;
            }
            if (diff) fail("%-5s %lld of %lld values differ from gguf-py, max abs diff %g", names[k], (long long)diff,
                           (long long)t->numel, maxabs);
            else printf("ok   %-5s [%lld x %lld] %lld values bit-identical to gguf-py (max abs diff %g)\n", names[k],
                        (long long)t->ne[1], (long long)t->ne[0], (long long)t->numel, maxabs);
        }
        free(a);
        free(e);
    }
    /* unpermute: the converter's permutation undone, n_head for Q and n_head_kv for K */
    uint32_t nh = 0, nkv = 0;
    if (gguf_get_u32(&g, "test.n_head", &nh) != 0 || gguf_get_u32(&g, "test.n_head_kv", &nkv) != 0) fail("%s", err_get());
    static const char *pn[2][2] = { { "perm.q", "perm.q.gguf" }, { "perm.k", "perm.k.gguf" } };
    for (int k = 0; k < 2; k++) {
        const gguf_tensor *t = gguf_find_tensor(&g, pn[k][0]);
        if (!t) { fail("%s missing", pn[k][0]); continue; }
        size_t n = (size_t)t->numel;
        float *hf = xmalloc(n * sizeof *hf), *w = xmalloc(n * sizeof *w);
        int heads = k == 0 ? (int)nh : (int)nkv;
        if (gguf_tensor_f32(&g, pn[k][0], hf, n) != 0 || gguf_tensor_f32(&g, pn[k][1], w, n) != 0) fail("%s", err_get());
        else if (memcmp(hf, w, n * sizeof *w) == 0) fail("%s: permuted copy equals the original", pn[k][0]);
        else if (gguf_unpermute_qk(w, heads, (int)t->ne[1], (int)t->ne[0]) != 0) fail("%s", err_get());
        else if (memcmp(hf, w, n * sizeof *w) != 0) fail("%s: unpermuted weights differ from Hugging Face's", pn[k][0]);
        else printf("ok   gguf_unpermute_qk(%s, %d heads, %lld x %lld) equals the HF layout exactly\n", pn[k][1], heads,
                    (long long)t->ne[1], (long long)t->ne[0]);
        free(hf);
        free(w);
    }
    float w[8];
    if (gguf_unpermute_qk(w, 3, 8, 1) == 0) fail("gguf_unpermute_qk accepted 8 rows for 3 heads");
    gguf_close(&g);
}

/* --- files made here ---------------------------------------------------------------------------- */

typedef struct { unsigned char *p; size_t n, cap; } buf;

static void put(buf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void put_u32(buf *b, uint32_t v) { unsigned char x[4]; for (int i = 0; i < 4; i++) x[i] = (unsigned char)(v >> 8 * i); put(b, x, 4); }
static void put_u64(buf *b, uint64_t v) { unsigned char x[8]; for (int i = 0; i < 8; i++) x[i] = (unsigned char)(v >> 8 * i); put(b, x, 8); }
static void put_str(buf *b, const char *s) { put_u64(b, strlen(s)); put(b, s, strlen(s)); }
static void put_hdr(buf *b, uint32_t version, uint64_t nt, uint64_t nkv) { put(b, "GGUF", 4); put_u32(b, version); put_u64(b, nt); put_u64(b, nkv); }
static void put_kv_u32(buf *b, const char *k, uint32_t v) { put_str(b, k); put_u32(b, GGUF_UINT32); put_u32(b, v); }
/* a tensor info with up to 4 dims */
static void put_tinfo(buf *b, const char *name, uint32_t nd, const uint64_t *ne, uint32_t type, uint64_t off)
{
    put_str(b, name);
    put_u32(b, nd);
    for (uint32_t i = 0; i < nd; i++) put_u64(b, ne[i]);
    put_u32(b, type);
    put_u64(b, off);
}
/* pads to the alignment, then data_len bytes of data */
static void put_data(buf *b, size_t align, size_t data_len)
{
    static const unsigned char z[256];
    while (b->n % align) put(b, z, 1);
    for (size_t i = 0; i < data_len; i += 256) put(b, z, data_len - i < 256 ? data_len - i : 256);
}

static void expect_reject(const char *label, const char *path, const char *phrase)
{
    gguf_file g;
    memset(&g, 0xAB, sizeof g); /* gguf_open must not read what was there */
    int rc = gguf_open(&g, path);
    const char *msg = err_get();
    if (rc != -1) {
        fail("%-34s accepted (%lld tensors)", label, (long long)g.ntensors);
        gguf_close(&g);
        return;
    }
    if (g.nkv || g.ntensors || g.kv || g.tensors || g.path || g.fd != -1) fail("%-34s g not left empty", label);
    if (!strstr(msg, path)) fail("%-34s message does not name %s: %s", label, path, msg);
    else if (!strstr(msg, phrase)) fail("%-34s message lacks \"%s\": %s", label, phrase, msg);
    else if (strchr(msg, '\n')) fail("%-34s message is more than one line: %s", label, msg);
    else printf("ok   reject %-34s %s\n", label, msg);
}

static void write_buf(const char *path, buf *b) { write_bytes(path, b->p, b->n); b->n = 0; }

/* Files built field by field: each starts from a valid one-tensor file and breaks one thing. */
static void built_cases(void)
{
    buf b = { 0 };
    const char *p = tmp_path("c.gguf");
    const uint64_t ne8[] = { 8 }, big[] = { 1ull << 32, 1ull << 32, 1ull << 32 }, ne61[] = { 1ull << 62, 1 },
                   neg[] = { 1ull << 63 }, ne5[] = { 1, 1, 1, 1, 1 }, ne33[] = { 33 }, ne0[] = { 0, 4 };

    /* accepted: the minimal file, no tensors, no keys; a zero-sized tensor; a gap between tensors */
    put_hdr(&b, 3, 0, 0);
    write_buf(p, &b);
    gguf_file g;
    if (gguf_open(&g, p) != 0) fail("empty GGUF rejected: %s", err_get());
    else { printf("ok   accept header only (0 tensors, 0 keys)\n"); gguf_close(&g); }
    put_hdr(&b, 3, 3, 0);
    put_tinfo(&b, "zero", 2, ne0, QT_F32, 0);
    put_tinfo(&b, "a", 1, ne8, QT_F32, 0);
    put_tinfo(&b, "b", 1, ne8, QT_F32, 64);
    put_data(&b, 32, 96);
    write_buf(p, &b);
    if (gguf_open(&g, p) != 0) fail("zero-sized tensor / gap rejected: %s", err_get());
    else { printf("ok   accept a [0 x 4] tensor and a gap between tensors\n"); gguf_close(&g); }

#define CASE(label, phrase, ...) do { __VA_ARGS__; write_buf(p, &b); expect_reject(label, p, phrase); } while (0)
    CASE("bad magic", "not a GGUF file", put(&b, "GGML", 4); put_u32(&b, 3); put_u64(&b, 0); put_u64(&b, 0));
    CASE("big-endian file", "big-endian", put(&b, "GGUF", 4); put(&b, "\0\0\0\3", 4); put_u64(&b, 0); put_u64(&b, 0));
    CASE("version 1", "version 1 is not supported", put_hdr(&b, 1, 0, 0));
    CASE("version 4", "unknown GGUF version 4", put_hdr(&b, 4, 0, 0));
    CASE("2^63 tensors", "tensor count 9223372036854775808", put_hdr(&b, 3, 1ull << 63, 0));
    CASE("2^63 keys", "key-value count 9223372036854775808", put_hdr(&b, 3, 0, 1ull << 63));
    CASE("2 keys, 1 present", "truncated", put_hdr(&b, 3, 0, 2); put_kv_u32(&b, "k", 1));
    CASE("key length 2^63", "exceeds the 2^30-byte limit", put_hdr(&b, 3, 0, 1); put_u64(&b, 1ull << 63); put(&b, "kkkkkkkkkkkkk", 13));
    CASE("key length past the end", "runs past the end", put_hdr(&b, 3, 0, 1); put_u64(&b, 100); put(&b, "kkkkkkkkkkkkk", 13));
    CASE("string value past the end", "runs past the end",
         put_hdr(&b, 3, 0, 1); put_str(&b, "k"); put_u32(&b, GGUF_STRING); put_u64(&b, 1000); put(&b, "abc", 3));
    CASE("array count 2^63", "exceeds the 2^30 limit",
         put_hdr(&b, 3, 0, 1); put_str(&b, "k"); put_u32(&b, GGUF_ARRAY); put_u32(&b, GGUF_UINT32); put_u64(&b, 1ull << 63));
    CASE("string array count past the end", "truncated",
         put_hdr(&b, 3, 0, 1); put_str(&b, "k"); put_u32(&b, GGUF_ARRAY); put_u32(&b, GGUF_STRING); put_u64(&b, 1u << 20); put_str(&b, "a"));
    CASE("array of arrays", "arrays of arrays",
         put_hdr(&b, 3, 0, 1); put_str(&b, "k"); put_u32(&b, GGUF_ARRAY); put_u32(&b, GGUF_ARRAY); put_u64(&b, 1); put_u64(&b, 0));
    CASE("unknown value type", "unknown value type 13", put_hdr(&b, 3, 0, 1); put_str(&b, "k"); put_u32(&b, 13); put_u64(&b, 0));
    CASE("bool value 2", "bool value 2", put_hdr(&b, 3, 0, 1); put_str(&b, "k"); put_u32(&b, GGUF_BOOL); put(&b, "\2", 1));
    CASE("empty key", "key 0 is empty", put_hdr(&b, 3, 0, 1); put_str(&b, ""); put_u32(&b, GGUF_UINT32); put_u32(&b, 0));
    CASE("key with a NUL", "holds a NUL", put_hdr(&b, 3, 0, 1); put_u64(&b, 3); put(&b, "a\0b", 3); put_u32(&b, GGUF_UINT8); put(&b, "\1", 1));
    CASE("duplicate key", "duplicate key \"k\"", put_hdr(&b, 3, 0, 3); put_kv_u32(&b, "k", 1); put_kv_u32(&b, "j", 1); put_kv_u32(&b, "k", 2));
    CASE("alignment 48", "not a power of 2", put_hdr(&b, 3, 0, 1); put_kv_u32(&b, "general.alignment", 48));
    CASE("alignment 0", "not a power of 2", put_hdr(&b, 3, 0, 1); put_kv_u32(&b, "general.alignment", 0));
    CASE("alignment a string", "must be a uint32",
         put_hdr(&b, 3, 0, 1); put_str(&b, "general.alignment"); put_u32(&b, GGUF_STRING); put_str(&b, "32"));
    CASE("duplicate tensor name", "duplicate tensor name \"a\"",
         put_hdr(&b, 3, 2, 0); put_tinfo(&b, "a", 1, ne8, QT_F32, 0); put_tinfo(&b, "a", 1, ne8, QT_F32, 32); put_data(&b, 32, 64));
    CASE("empty tensor name", "empty name", put_hdr(&b, 3, 1, 0); put_tinfo(&b, "", 1, ne8, QT_F32, 0); put_data(&b, 32, 32));
    CASE("tensor name of 64 bytes", "longer than ggml's 63",
         put_hdr(&b, 3, 1, 0); put_tinfo(&b, "0123456789012345678901234567890123456789012345678901234567890123", 1, ne8, QT_F32, 0);
         put_data(&b, 32, 32));
    CASE("5 dimensions", "5 dimensions, more than 4", put_hdr(&b, 3, 1, 0); put_tinfo(&b, "a", 5, ne5, QT_F32, 0); put_data(&b, 32, 32));
    CASE("dimension 2^63", "above INT64_MAX", put_hdr(&b, 3, 1, 0); put_tinfo(&b, "a", 1, neg, QT_F32, 0); put_data(&b, 32, 32));
    CASE("dims product overflows", "product of the dimensions overflows",
         put_hdr(&b, 3, 1, 0); put_tinfo(&b, "a", 3, big, QT_F32, 0); put_data(&b, 32, 32));
    CASE("byte size overflows", "size in bytes overflows", put_hdr(&b, 3, 1, 0); put_tinfo(&b, "a", 2, ne61, QT_F32, 0); put_data(&b, 32, 32));
    CASE("unknown tensor type", "unknown ggml type 99", put_hdr(&b, 3, 1, 0); put_tinfo(&b, "a", 1, ne8, 99, 0); put_data(&b, 32, 32));
    CASE("removed type 4 (q4_2)", "unknown ggml type 4", put_hdr(&b, 3, 1, 0); put_tinfo(&b, "a", 1, ne8, 4, 0); put_data(&b, 32, 32));
    CASE("row not whole blocks", "not a multiple of the block size 32",
         put_hdr(&b, 3, 1, 0); put_tinfo(&b, "a", 1, ne33, QT_Q4_0, 0); put_data(&b, 32, 64));
    CASE("misaligned offset", "offset 4 is not a multiple of the alignment 32",
         put_hdr(&b, 3, 1, 0); put_tinfo(&b, "a", 1, ne8, QT_F32, 4); put_data(&b, 32, 64));
    CASE("offset past the end", "runs past the end of the file",
         put_hdr(&b, 3, 1, 0); put_tinfo(&b, "a", 1, ne8, QT_F32, 1u << 20); put_data(&b, 32, 32));
    CASE("offset 2^64-32", "runs past the end of the file",
         put_hdr(&b, 3, 1, 0); put_tinfo(&b, "a", 1, ne8, QT_F32, UINT64_MAX - 31); put_data(&b, 32, 32));
    CASE("data cut short", "runs past the end of the file", put_hdr(&b, 3, 1, 0); put_tinfo(&b, "a", 1, ne8, QT_F32, 0); put_data(&b, 32, 31));
    CASE("overlapping tensors", "overlap",
         put_hdr(&b, 3, 2, 0); put_tinfo(&b, "a", 1, ne33, QT_F32, 0); put_tinfo(&b, "b", 1, ne8, QT_F32, 128); put_data(&b, 32, 192));
#undef CASE
    /* a type the file may hold but we cannot dequantize: opens, then refused by name */
    const uint64_t ne32[] = { 32 };
    put_hdr(&b, 3, 1, 0);
    put_tinfo(&b, "w.iq4", 1, ne32, 20, 0);
    put_data(&b, 32, 18);
    write_buf(p, &b);
    float out[32];
    if (gguf_open(&g, p) != 0) fail("iq4_nl file rejected: %s", err_get());
    else {
        if (gguf_tensor_f32(&g, "w.iq4", out, 32) == 0) fail("iq4_nl dequantized");
        else if (!strstr(err_get(), "\"w.iq4\"") || !strstr(err_get(), "iq4_nl")) fail("iq4_nl message: %s", err_get());
        else printf("ok   refuse dequantizing %s\n", err_get());
        gguf_close(&g);
    }
    free(b.p);
}

/* Corruptions of the peer's quant.gguf: cut at many points, version patched, shrunk while open. */
static void file_cases(void)
{
    size_t L;
    unsigned char *v = (unsigned char *)util_read_file(FIX "/quant.gguf", 1 << 20, &L);
    if (!v) { fail("%s", err_get()); return; }
    const char *p = tmp_path("cut.gguf");
    /* the end of the tensor infos: from a good open */
    gguf_file g;
    uint64_t data_at = 0;
    if (gguf_open(&g, FIX "/quant.gguf") == 0) { data_at = g.data_offset; gguf_close(&g); }
    size_t cuts[] = { 0, 3, 7, 15, 23, 30, 100, 500, (size_t)data_at / 2, (size_t)data_at - 40, (size_t)data_at - 1,
                      (size_t)data_at + 10, L / 2, L - 1 };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char label[64];
        snprintf(label, sizeof label, "cut at %zu of %zu bytes", cuts[i], L);
        write_bytes(p, v, cuts[i]);
        gguf_file h;
        int rc = gguf_open(&h, p);
        const char *m = err_get();
        if (rc == 0) { fail("%s accepted", label); gguf_close(&h); }
        else if (!strstr(m, p) || (!strstr(m, "truncated") && !strstr(m, "past the end"))) fail("%s: %s", label, m);
        else printf("ok   reject %-34s %s\n", label, m);
    }
    /* every cut inside the header, quietly: each must be refused with the file named */
    int bad = 0;
    for (size_t cut = 0; cut < (size_t)data_at; cut++) {
        write_bytes(p, v, cut);
        gguf_file h;
        if (gguf_open(&h, p) == 0) { gguf_close(&h); bad++; }
        else if (!strstr(err_get(), p)) bad++;
    }
    if (bad) fail("%d of the %llu header cuts accepted or unnamed", bad, (unsigned long long)data_at);
    else printf("ok   reject every one of the %llu cuts inside the header and tensor infos\n", (unsigned long long)data_at);
    unsigned char *w = xmalloc(L);
    /* random byte flips in the header: refused with the file named, or opened and fully readable
     * (run under ASan by make sanitize: no out-of-bounds access either way) */
    uint64_t seed = 12345;
    int opened = 0, refused = 0;
    float *all = xmalloc(L * sizeof *all);
    p = tmp_path("flip.gguf");
    for (int it = 0; it < 3000; it++) {
        memcpy(w, v, L);
        int nflip = 1 + it % 4;
        for (int k = 0; k < nflip; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            w[(seed >> 33) % data_at] ^= (unsigned char)(1u << ((seed >> 20) & 7));
        }
        write_bytes(p, w, L);
        gguf_file h;
        if (gguf_open(&h, p) != 0) {
            if (!strstr(err_get(), p)) { fail("flip %d: message does not name the file: %s", it, err_get()); break; }
            refused++;
            continue;
        }
        opened++;
        for (int64_t t = 0; t < h.ntensors; t++)
            if (h.tensors[t].numel <= (int64_t)L && quant_type(h.tensors[t].type)->to_f32)
                if (gguf_tensor_f32(&h, h.tensors[t].name, all, (size_t)h.tensors[t].numel) != 0)
                    fail("flip %d: opened but tensor %s unreadable: %s", it, h.tensors[t].name, err_get());
        gguf_close(&h);
    }
    free(all);
    printf("ok   3000 copies with 1-4 random bit flips in the header: %d refused with the file named, %d opened and read\n",
           refused, opened);
    memcpy(w, v, L);
    w[4] = 2;                       /* v2 has the same layout as v3 for little-endian files */
    p = tmp_path("v2.gguf");
    write_bytes(p, w, L);
    if (gguf_open(&g, p) != 0) fail("version 2 copy rejected: %s", err_get());
    else {
        float a[4 * 96], e[4 * 96];
        if (g.version != 2 || gguf_tensor_f32(&g, "q4_0", a, 4 * 96) || gguf_tensor_f32(&g, "q4_0.ref", e, 4 * 96)
            || memcmp(a, e, sizeof a))
            fail("version 2 copy reads differently");
        else printf("ok   accept the same file as GGUF version 2, same values\n");
        gguf_close(&g);
    }
    /* the file shrinks after gguf_open: pread comes up short, an error and no SIGBUS */
    p = tmp_path("shrink.gguf");
    write_bytes(p, v, L);
    if (gguf_open(&g, p) != 0) fail("%s", err_get());
    else {
        if (truncate(p, (off_t)(g.data_offset + 100)) != 0) fail("truncate");
        float a[16 * 5];
        if (gguf_tensor_f32(&g, "perm.k.gguf", a, 16 * 5) == 0) fail("read of a shrunk file succeeded");
        else if (!strstr(err_get(), "shrank") || !strstr(err_get(), p)) fail("shrunk file: %s", err_get());
        else printf("ok   refuse reading after the file shrank: %s\n", err_get());
        gguf_close(&g);
    }
    p = tmp_path("missing.gguf");
    expect_reject("path does not exist", p, "cannot open");
    expect_reject("path is a directory", tmpdir, "not a regular file");
    free(w);
    free(v);
}

int main(void)
{
    meta_file();
    quant_file();
    strcpy(tmpdir, "/tmp/test_gguf_XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    printf("== corrupted files (temp dir %s)\n", tmpdir);
    built_cases();
    file_cases();
    const char *names[] = { "c.gguf", "cut.gguf", "v2.gguf", "shrink.gguf", "flip.gguf" };
    for (int i = 0; i < 5; i++) unlink(tmp_path(names[i]));
    rmdir(tmpdir);
    if (failures) { printf("test_gguf: %d FAILED\n", failures); return 1; }
    printf("test_gguf: all passed\n");
    return 0;
}
