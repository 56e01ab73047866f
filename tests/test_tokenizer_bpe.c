/* test_tokenizer_bpe.c — the BPE tokenizers (src/tok_bpe.c and the byte-level, Split, Metaspace,
 * Prepend/Replace, NFC stages) against Hugging Face `tokenizers`.
 *
 * tests/fixtures/make_bpe_fixtures.py trained one tokenizer per style with HF tokenizers 0.23.3
 * on a small multilingual corpus (GPT-2 byte-level; Llama-3 Split regex + ByteLevel +
 * ignore_merges + BOS template; Qwen2 NFC + Split regex + ByteLevel; Llama-2 Prepend/Replace +
 * byte_fallback + fuse_unk; the same model behind Metaspace prepend_scheme first / always+split;
 * GPT-2's model behind a backtracking Split regex) and stored HF's ids for a held-out corpus
 * (tests/fixtures/bpe/heldout.txt: English, CJK, accents, emoji, URLs, numbers, code, runs of
 * spaces and tabs, control characters; then tests/fixtures/tokenizer_corpus.txt). Compared, and
 * required identical: every line, full and truncated to 8; an FNV-1a hash of the ids of
 * "a" + c + "b" for every code point c, per block of 4096; count and hash of the ids of long
 * texts (50000 spaces, a 30000-letter word, 300 KB that outgrows PCRE2's default JIT stack...);
 * the GPT-2 style again from vocab.json + merges.txt and with merges as "a b" strings. Also
 * checked: 4 threads encoding at once, the special ids, token surfaces and classes, and bad files (unknown merge tokens,
 * dropout, a regex that does not compile, unknown behaviours and schemes, a broken merges.txt)
 * rejected with a message naming the file. Printed, not asserted: MB/s of tok_encode on one core
 * next to HF's single-threaded MB/s (encode_batch_fast, RAYON_NUM_THREADS=1: ids only, as ours)
 * measured on the same text when the fixtures were made (make_bpe_fixtures.py --no-train
 * measures it again).
 *
 *   build/tests/test_tokenizer_bpe        (FIXTURES defaults to tests/fixtures)
 * Exits non-zero on any failure. */
#include "tokenizer.h"
#include "tok_check.h"
#include "jsonutil.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

static int failures;
#define EXPECT(cond, ...) do { if (!(cond)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); \
    printf(__VA_ARGS__); printf("\n"); } } while (0)



static int same_ids(json_object *want, const int32_t *ids, int n)
{
    if ((int)json_object_array_length(want) != n) return 0;
    for (int k = 0; k < n; k++) if (ids[k] != json_object_get_int(json_object_array_get_idx(want, k))) return 0;
    return 1;
}

static void compare_lines(const tokenizer *t, json_object *lines, const char *style, const char *label)
{
    int n_lines = (int)json_object_array_length(lines), ok = 0, trunc_ok = 0, shown = 0;
    long n_ids = 0;
    for (int i = 0; i < n_lines; i++) {
        json_object *rec = json_object_array_get_idx(lines, i), *jt = member(rec, "text");
        json_object *want = member(member(rec, "ids"), style), *want8 = member(member(rec, "ids_trunc"), style);
        const char *text = json_object_get_string(jt);
        size_t len = (size_t)json_object_get_string_len(jt);
        int cap = (int)(4 * len + 16), nw = (int)json_object_array_length(want);
        int32_t *ids = xmalloc((size_t)cap * sizeof *ids);
        int full = -1, n = tok_encode(t, text, len, cap, ids, &full);
        int same = full == nw && same_ids(want, ids, n);
        ok += same;
        n_ids += nw;
        if (!same && shown++ < 3) {
            printf("FAIL [%s] line %d %s: %d ids, expected %d\n", label, i + 1, json_object_to_json_string(jt), n, nw);
            print_ids("got     ", ids, n);
            int32_t *e = xmalloc((size_t)(nw + 1) * sizeof *e);
            for (int k = 0; k < nw; k++) e[k] = (int32_t)json_object_get_int(json_object_array_get_idx(want, k));
            print_ids("expected", e, nw);
            free(e);
        }
        n = tok_encode(t, text, len, 8, ids, &full);
        int same8 = full == nw && same_ids(want8, ids, n);
        trunc_ok += same8;
        if (!same8 && shown++ < 3) printf("FAIL [%s] line %d truncated to 8\n", label, i + 1);
        free(ids);
    }
    printf("[%s] held-out lines: %d/%d identical (%ld ids), %d/%d truncated to 8 identical\n", label, ok, n_lines, n_ids,
           trunc_ok, n_lines);
    if (ok != n_lines || trunc_ok != n_lines) failures++;
}

static void compare_sweep(const tokenizer *t, json_object *hashes, int block, const char *label)
{
    int n_blocks = (int)json_object_array_length(hashes), ok = 0, shown = 0;
    long n_enc = 0;
    for (int b = 0; b < n_blocks; b++) {
        uint64_t h = IDS_HASH_INIT;
        for (int32_t c = b * block; c < (b + 1) * block && c < 0x110000; c++) {
            if (c >= 0xD800 && c <= 0xDFFF) continue;
            int32_t ids[128]; /* NFKC makes up to 18 characters of one (U+FDFA) */
            int full, n = encode_codepoint(t, c, ids, 128, &full);
            if (full > 128) { printf("FAIL [%s] U+%04X: %d ids\n", label, c, full); failures++; }
            n_enc++;
            h = ids_hash(h, ids, n);
        }
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
        if (!strcmp(hex, json_object_get_string(json_object_array_get_idx(hashes, b)))) ok++;
        else if (shown++ < 5) printf("FAIL [%s] code points U+%04X..U+%04X: ids differ from HF\n", label, b * block, (b + 1) * block - 1);
    }
    printf("[%s] every code point: %d/%d blocks of %d identical (%ld texts)\n", label, ok, n_blocks, block, n_enc);
    if (ok != n_blocks) failures++;
}

/* Several threads encoding at once (the word cache is shared, under its mutex): every line 20
 * times over 4 threads must still give HF's ids. */
static void compare_threads(const tokenizer *t, json_object *lines, const char *style, const char *label)
{
    int n_lines = (int)json_object_array_length(lines), bad = 0, total = 20 * n_lines;
#pragma omp parallel for num_threads(4) reduction(+ : bad) schedule(dynamic, 7)
    for (int j = 0; j < total; j++) {
        json_object *rec = json_object_array_get_idx(lines, j % n_lines), *jt = member(rec, "text");
        size_t len = (size_t)json_object_get_string_len(jt);
        int cap = (int)(4 * len + 16), full;
        int32_t *ids = xmalloc((size_t)cap * sizeof *ids);
        int n = tok_encode(t, json_object_get_string(jt), len, cap, ids, &full);
        bad += !same_ids(member(member(rec, "ids"), style), ids, n);
        free(ids);
    }
    printf("[%s] 4 threads at once: %d/%d encodings identical\n", label, total - bad, total);
    if (bad) failures++;
}

/* The long texts (runs of spaces and tabs, one long word, repeated words): count and hash. */
static void compare_long(const tokenizer *t, json_object *longs, const char *style, const char *label)
{
    int n_cases = (int)json_object_array_length(longs), ok = 0;
    for (int c = 0; c < n_cases; c++) {
        json_object *rec = json_object_array_get_idx(longs, c), *parts = member(rec, "parts");
        char *text = NULL;
        size_t len = 0;
        for (size_t i = 0; i < json_object_array_length(parts); i++) {
            json_object *p = json_object_array_get_idx(parts, i);
            const char *piece = json_object_get_string(json_object_array_get_idx(p, 0));
            size_t pl = strlen(piece);
            int k = json_object_get_int(json_object_array_get_idx(p, 1));
            text = xrealloc(text, len + pl * (size_t)k + 1);
            for (int j = 0; j < k; j++, len += pl) memcpy(text + len, piece, pl);
        }
        int cap = (int)len + 16, full;
        int32_t *ids = xmalloc((size_t)cap * sizeof *ids);
        int n = tok_encode(t, text, len, cap, ids, &full);
        uint64_t h = IDS_HASH_INIT;
        h = ids_hash(h, ids, n);
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
        int want_n = json_object_get_int(member(member(rec, "n"), style));
        if (n == want_n && full == n && !strcmp(hex, json_object_get_string(member(member(rec, "hash"), style)))) ok++;
        else printf("FAIL [%s] long text %d (%zu bytes): %d ids, HF %d, or different ids\n", label, c + 1, len, n, want_n);
        free(ids);
        free(text);
    }
    printf("[%s] long texts: %d/%d identical\n", label, ok, n_cases);
    if (ok != n_cases) failures++;
}

/* MB/s of tok_encode over the speed text: the held-out lines and the training lines, 8 times */
static void speed(const tokenizer *t, json_object *lines, const char *train, size_t train_len, int repeat, double hf, const char *label)
{
    size_t bytes = 0;
    int32_t ids[1 << 14];
    double t0 = util_now();
    for (int r = 0; r < repeat; r++) {
        for (size_t i = 0; i < json_object_array_length(lines); i++) {
            json_object *jt = member(json_object_array_get_idx(lines, i), "text");
            size_t len = (size_t)json_object_get_string_len(jt);
            int full;
            tok_encode(t, json_object_get_string(jt), len, 1 << 14, ids, &full);
            bytes += len;
        }
        for (const char *s = train; s < train + train_len;) {
            const char *nl = memchr(s, '\n', (size_t)(train + train_len - s)), *e = nl ? nl : train + train_len;
            int full;
            tok_encode(t, s, (size_t)(e - s), 1 << 14, ids, &full);
            bytes += (size_t)(e - s);
            s = nl ? nl + 1 : e;
        }
    }
    double dt = util_now() - t0;
    printf("[%s] speed, one core: %.2f MB/s (%.1f MB); HF tokenizers single-threaded on the same text: %.2f MB/s\n", label,
           bytes / dt / 1e6, bytes / 1e6, hf);
}

static void check_api(const tokenizer *t, const char *style)
{
    if (!strcmp(style, "gpt2")) {
        EXPECT(tok_cls_id(t) == -1 && tok_sep_id(t) == -1 && tok_bos_id(t) == -1, "gpt2: cls %d sep %d", tok_cls_id(t), tok_sep_id(t));
        /* a byte-level "Ġ" + punctuation token ("Ġ(", "Ġ\"", ...), a bare "," and <|endoftext|> */
        int32_t sp_punct = -1, comma = -1, eot = -1;
        for (int32_t id = 0; id < tok_vocab_size(t); id++) {
            const char *s = tok_id_to_token(t, id);
            if (s && sp_punct < 0 && !strncmp(s, "\xc4\xa0", 2) && s[2] && strchr("(\"'-#[{*", s[2]) && !s[3]) sp_punct = id;
            if (s && !strcmp(s, ",")) comma = id;
            if (s && !strcmp(s, "<|endoftext|>")) eot = id;
        }
        char buf[64];
        EXPECT(sp_punct >= 0 && tok_id_class(t, sp_punct) == (TOK_PUNCT | TOK_WORD_START) && tok_id_surface(t, sp_punct, buf, sizeof buf) == 2 &&
               buf[0] == ' ', "gpt2: \"%s\" (id %d) should be a word-initial punctuation with a leading space",
               sp_punct >= 0 ? tok_id_to_token(t, sp_punct) : "?", sp_punct);
        EXPECT(comma >= 0 && tok_id_class(t, comma) == TOK_PUNCT, "gpt2: \",\" should be punctuation, not word-initial");
        EXPECT(eot >= 0 && tok_id_class(t, eot) == TOK_SPECIAL, "gpt2: <|endoftext|> should be special");
        int32_t ids[8];
        int full, n = tok_encode(t, "the", 3, 8, ids, &full);
        EXPECT(n >= 1 && !(tok_id_class(t, ids[0]) & TOK_WORD_START), "gpt2: \"the\" at the start has no leading space");
        n = tok_encode(t, " the", 4, 8, ids, &full);
        EXPECT(n >= 1 && (tok_id_class(t, ids[0]) & TOK_WORD_START), "gpt2: \" the\" is word-initial");
    } else if (!strcmp(style, "llama3")) {
        EXPECT(tok_cls_id(t) >= 0 && !strcmp(tok_id_to_token(t, tok_cls_id(t)), "<|begin_of_text|>") && tok_sep_id(t) == -1,
               "llama3: cls should be <|begin_of_text|>, sep -1 (got %d, %d)", tok_cls_id(t), tok_sep_id(t));
        EXPECT(tok_id_class(t, tok_cls_id(t)) == TOK_SPECIAL, "llama3: BOS should be special");
    } else if (!strcmp(style, "llama2")) {
        EXPECT(tok_bos_id(t) >= 0 && !strcmp(tok_id_to_token(t, tok_bos_id(t)), "<s>") && tok_eos_id(t) == -1, "llama2: bos <s>");
        char buf[16];
        int32_t ids[64];
        int full, n = tok_encode(t, "\xea\x99\xae", 3, 64, ids, &full); /* U+A66E, not in the training text */
        size_t k = n == 5 ? tok_id_surface(t, ids[3], buf, sizeof buf) : 0; /* <s> ▁ <0xEA> <0x99> <0xAE> */
        EXPECT(n == 5 && k == 1 && (unsigned char)buf[0] == 0x99, "llama2: byte fallback surface of U+A66E's 2nd byte (%d ids: %s %s %s)",
               n, n > 1 ? tok_id_to_token(t, ids[1]) : "", n > 2 ? tok_id_to_token(t, ids[2]) : "", n > 3 ? tok_id_to_token(t, ids[3]) : "");
    }
}

static char tmp[256];

static const char *write_variant(const char *name, json_object *root)
{
    static char dir[512];
    char path[600];
    snprintf(dir, sizeof dir, "%s/%s", tmp, name);
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (json_object_to_file_ext(path, root, JSON_C_TO_STRING_PLAIN) != 0) { printf("FAIL: cannot write %s\n", path); exit(1); }
    return dir;
}

static void expect_fail(const char *dir, const char *what, const char *word)
{
    tokenizer *t = tok_load(dir);
    const char *msg = err_get();
    int good = !t && strstr(msg, word);
    printf("[bad input] %-40s %s: %s\n", what, good ? "rejected" : "NOT REJECTED AS EXPECTED", t ? "(loaded)" : msg);
    if (!good) failures++;
    tok_free(t);
}

/* A copy of a style's tokenizer.json with one member changed by fn. */
static const char *variant(const char *fx, const char *style, const char *name, void (*fn)(json_object *root))
{
    char path[1100];
    snprintf(path, sizeof path, "%s/bpe/%s/tokenizer.json", fx, style);
    json_object *root = json_parse_file(path, 1u << 26);
    if (!root) { printf("FAIL: %s\n", err_get()); exit(1); }
    fn(root);
    const char *dir = write_variant(name, root);
    json_object_put(root);
    return dir;
}

static json_object *model_of(json_object *root) { return member(root, "model"); }
/* merges as "a b" strings, the format of files before tokenizers 0.20 */
static void legacy_merges(json_object *root)
{
    json_object *m = member(model_of(root), "merges"), *out = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(m); i++) {
        json_object *p = json_object_array_get_idx(m, i);
        char buf[512];
        snprintf(buf, sizeof buf, "%s %s", json_object_get_string(json_object_array_get_idx(p, 0)),
                 json_object_get_string(json_object_array_get_idx(p, 1)));
        json_object_array_add(out, json_object_new_string(buf));
    }
    json_object_object_add(model_of(root), "merges", out);
}
static void merge_unknown(json_object *root)
{
    json_object *p = json_object_array_get_idx(member(model_of(root), "merges"), 3);
    json_object_array_put_idx(p, 1, json_object_new_string("NOT-A-TOKEN"));
}
static void merge_three(json_object *root)
{
    json_object_array_put_idx(member(model_of(root), "merges"), 0, json_object_new_string("a b c"));
}
static void dropout(json_object *root) { json_object_object_add(model_of(root), "dropout", json_object_new_double(0.1)); }
static void unk_missing(json_object *root) { json_object_object_add(model_of(root), "unk_token", json_object_new_string("<nope>")); }
static void bad_regex(json_object *root)
{
    json_object *split = json_object_array_get_idx(member(member(root, "pre_tokenizer"), "pretokenizers"), 0);
    json_object_object_add(member(split, "pattern"), "Regex", json_object_new_string("(?<!unclosed"));
}
static void bad_behavior(json_object *root)
{
    json_object *split = json_object_array_get_idx(member(member(root, "pre_tokenizer"), "pretokenizers"), 0);
    json_object_object_add(split, "behavior", json_object_new_string("Sideways"));
}
static void bad_scheme(json_object *root) { json_object_object_add(member(root, "pre_tokenizer"), "prepend_scheme", json_object_new_string("sometimes")); }
static void bad_pretok(json_object *root)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string("Digits"));
    json_object_object_add(root, "pre_tokenizer", o);
}

/* vocab.json + merges.txt + tokenizer_config.json {add_prefix_space, add_bos_token}: HF's
 * roberta style (ByteLevel add_prefix_space, <|endoftext|> $A <|endoftext|>) without its last id */
static void gpt2_config(const char *fx, json_object *lines)
{
    char dir[600], from[1100], path[700];
    snprintf(dir, sizeof dir, "%s/gpt2_config", tmp);
    mkdir(dir, 0700);
    for (int k = 0; k < 2; k++) {
        static const char *names[2] = {"vocab.json", "merges.txt"};
        size_t n;
        snprintf(from, sizeof from, "%s/bpe/gpt2_files/%s", fx, names[k]);
        char *data = util_read_file(from, 1u << 26, &n);
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        FILE *f = data ? fopen(path, "wb") : NULL;
        if (!f || fwrite(data, 1, n, f) != n || fclose(f)) { printf("FAIL: copy %s\n", from); exit(1); }
        free(data);
    }
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f || fputs("{\"add_prefix_space\": true, \"add_bos_token\": true, \"bos_token\": {\"content\": \"<|endoftext|>\"}}", f) < 0 || fclose(f)) {
        printf("FAIL: write %s\n", path);
        exit(1);
    }
    tokenizer *t = tok_load(dir);
    if (!t) { printf("FAIL [gpt2_config]: %s\n", err_get()); failures++; return; }
    int n_lines = (int)json_object_array_length(lines), ok = 0;
    for (int i = 0; i < n_lines; i++) {
        json_object *rec = json_object_array_get_idx(lines, i), *jt = member(rec, "text"), *want = member(member(rec, "ids"), "roberta");
        size_t len = (size_t)json_object_get_string_len(jt);
        int cap = (int)(4 * len + 16), full, nw = (int)json_object_array_length(want) - 1;
        int32_t *ids = xmalloc((size_t)cap * sizeof *ids);
        int n = tok_encode(t, json_object_get_string(jt), len, cap, ids, &full), same = n == nw;
        for (int k = 0; same && k < n; k++) same = ids[k] == json_object_get_int(json_object_array_get_idx(want, k));
        ok += same;
        free(ids);
    }
    printf("[gpt2_config] %s: %d/%d lines identical to HF's roberta style less its final id\n", tok_describe(t), ok, n_lines);
    if (ok != n_lines) failures++;
    tok_free(t);
}

static void variants_and_bad_inputs(const char *fx, json_object *lines)
{
    snprintf(tmp, sizeof tmp, "/tmp/test_tokenizer_bpe.XXXXXX");
    if (!mkdtemp(tmp)) { printf("FAIL: mkdtemp\n"); exit(1); }
    tokenizer *t = tok_load(variant(fx, "gpt2", "legacy_merges", legacy_merges));
    if (!t) { printf("FAIL [gpt2 legacy merges]: %s\n", err_get()); failures++; }
    else { compare_lines(t, lines, "gpt2", "gpt2, merges as \"a b\" strings"); tok_free(t); }

    expect_fail(variant(fx, "gpt2", "merge_unknown", merge_unknown), "merge of a token not in the vocabulary", "NOT-A-TOKEN");
    expect_fail(variant(fx, "gpt2", "merge_three", merge_three), "merge \"a b c\"", "merges[0]");
    expect_fail(variant(fx, "gpt2", "dropout", dropout), "BPE dropout 0.1", "dropout");
    expect_fail(variant(fx, "llama2", "unk_missing", unk_missing), "unk_token not in the vocabulary", "<nope>");
    expect_fail(variant(fx, "llama3", "bad_regex", bad_regex), "Split regex that does not compile", "regex");
    expect_fail(variant(fx, "llama3", "bad_behavior", bad_behavior), "Split behavior \"Sideways\"", "Sideways");
    expect_fail(variant(fx, "metaspace_first", "bad_scheme", bad_scheme), "Metaspace prepend_scheme \"sometimes\"", "sometimes");
    expect_fail(variant(fx, "gpt2", "digits", bad_pretok), "pre_tokenizer Digits (unsupported)", "Digits");

    /* vocab.json + merges.txt with a broken merges line, and without merges.txt */
    char from[1100], dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/gpt2_bad_merges", tmp);
    mkdir(dir, 0700);
    for (int k = 0; k < 2; k++) {
        static const char *names[2] = {"vocab.json", "merges.txt"};
        size_t n;
        snprintf(from, sizeof from, "%s/bpe/gpt2_files/%s", fx, names[k]);
        char *data = util_read_file(from, 1u << 26, &n);
        if (!data) { printf("FAIL: %s\n", err_get()); exit(1); }
        if (k == 1) { char *nl = strchr(strchr(data, '\n') + 1, '\n'); if (nl) nl[-1] = ' ', nl[-2] = ' '; }
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(data, 1, n, f) != n || fclose(f)) { printf("FAIL: write %s\n", path); exit(1); }
        free(data);
    }
    expect_fail(dir, "merges.txt line with three parts", "merges.txt:2");
    gpt2_config(fx, lines);
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    remove(path);
    expect_fail(dir, "vocab.json without merges.txt", "merges.txt");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) printf("note: could not remove %s\n", tmp);
}

int main(void)
{
    const char *fx = getenv("FIXTURES");
    if (!fx || !*fx) fx = "tests/fixtures";
    char path[1100], dir[1024];
    snprintf(path, sizeof path, "%s/bpe/expected.json", fx);
    json_object *exp = json_parse_file(path, 1u << 26);
    if (!exp) { printf("FAIL: %s\n", err_get()); return 1; }
    snprintf(path, sizeof path, "%s/bpe/train.txt", fx);
    size_t train_len = 0;
    char *train = util_read_file(path, 1u << 26, &train_len);
    if (!train) { printf("FAIL: %s\n", err_get()); return 1; }
    printf("reference: HF tokenizers %s\n", json_object_get_string(member(exp, "tokenizers_version")));
    json_object *lines = member(exp, "lines");
    int block = json_object_get_int(member(exp, "sweep_block")), repeat = json_object_get_int(member(exp, "speed_repeat"));
    json_object_object_foreach(member(exp, "styles"), name, st) {
        snprintf(dir, sizeof dir, "%s/bpe/%s", fx, name);
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        char sha[65];
        if (util_sha256_file(path, sha) != 0 || strcmp(sha, json_object_get_string(member(st, "sha256")))) {
            printf("FAIL [%s]: %s is not the file the expected ids were made from\n", name, path);
            failures++;
            continue;
        }
        double t0 = util_now();
        tokenizer *t = tok_load(dir);
        if (!t) { printf("FAIL [%s]: %s\n", name, err_get()); failures++; continue; }
        printf("[%s] %s, loaded in %.3f s\n", name, tok_describe(t), util_now() - t0);
        compare_lines(t, lines, name, name);
        compare_sweep(t, member(st, "sweep"), block, name);
        compare_long(t, member(exp, "long"), name, name);
        compare_threads(t, lines, name, name);
        check_api(t, name);
        speed(t, lines, train, train_len, repeat, json_object_get_double(member(st, "hf_mb_per_s")), name);
        tok_free(t);
        if (!strcmp(name, "gpt2")) {
            snprintf(dir, sizeof dir, "%s/bpe/gpt2_files", fx);
            if (!(t = tok_load(dir))) { printf("FAIL [gpt2 vocab.json + merges.txt]: %s\n", err_get()); failures++; continue; }
            printf("[gpt2_files] %s\n", tok_describe(t));
            compare_lines(t, lines, name, "gpt2_files");
            compare_sweep(t, member(st, "sweep"), block, "gpt2_files");
            tok_free(t);
        }
    }
    variants_and_bad_inputs(fx, lines);
    free(train);
    json_object_put(exp);
    printf("%s: %d failure%s\n", failures ? "FAILED" : "OK", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
