/* tok_gguf.c — the tokenizer a GGUF file describes in its metadata (tokenizer.ggml.*), built as
 * transformers builds it (integrations/gguf/gguf_tokenizer_mapping.py, transformers 5.24), which
 * is the reference the tests compare with:
 *   tokenizer.ggml.model "gpt2": byte-level BPE as GPT2Tokenizer (no unknown token, no prefix
 *     space); a token outside GPT-2's byte alphabet is respelled as the byte-level form of its
 *     UTF-8 (HF does so; later ids win on a repeated spelling, as HF's dict);
 *   tokenizer.ggml.merges: "a b" strings, rank = position;
 *   tokenizer.ggml.pre: the split regex of HF's GGUF_PRE_TOKENIZER_SPLITS for that name
 *     (Split(regex, isolated) + ByteLevel(use_regex=false)), or GPT-2's ByteLevel regex for the
 *     names llama.cpp itself splits with GPT-2's regex ("default", "gpt-2", "smollm": llama.cpp
 *     splits digits one by one first for smollm, which SmolLM2's merges never join, and HF's GGUF
 *     path does not); any other name is refused, naming it;
 *   tokenizer.ggml.token_type: CONTROL (3) tokens spelled in the byte alphabet become special
 *     added tokens, USER_DEFINED (4) ones in the vocabulary plain added tokens (both matched whole
 *     in the raw text); the bos/eos/unknown/padding ids' tokens are special added tokens too;
 *   tokenizer.ggml.add_bos_token / add_eos_token: "BOS $A EOS" as the file says (default none).
 *   tokenizer.ggml.model "llama": SentencePiece-style BPE as LlamaTokenizer (Metaspace "▁" on the
 *     first word, split false; byte_fallback "<0xXX>", fuse_unk; no unknown token in the model;
 *     the vocabulary as spelled), its merges from the file or, as llama.cpp writes none, derived
 *     from tokenizer.ggml.scores as transformers' generate_merges does; every CONTROL token
 *     special; BOS added unless add_bos_token says false; pre must be "default"; gemma* and
 *     phi3 files (transformers rebuilds those its own way) are refused.
 * Other models ("t5", "bert", ...) are refused by name. Every value read is checked
 * (types, ids in range, merges of known tokens); a failure names the file and the key. */
#include "tok_int.h"
#include "gguf.h"
#include "jsonutil.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tok_byte_of_cp(uint32_t c); /* tok_pretok.c */

/* HF's split regexes by tokenizer.ggml.pre name (transformers' GGUF_PRE_TOKENIZER_SPLITS). */
static const char re_llama3[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char re_qwen2[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char re_qwen35[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}"
    "| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char re_tekken[] = "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"
    "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char re_gpt4o[] = "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static const struct { const char *name, *re; } pre_names[] = {
    {"default", NULL}, {"gpt-2", NULL}, {"gpt2", NULL}, {"smollm", NULL}, /* NULL: GPT-2's ByteLevel regex */
    {"llama3", re_llama3}, {"llama-v3", re_llama3}, {"llama-bpe", re_llama3}, {"falcon3", re_llama3},
    {"falcon-h1", re_llama3}, {"pixtral", re_llama3}, {"midm-2.0", re_llama3}, {"lfm2", re_llama3},
    {"jina-v5-nano", re_llama3}, {"dbrx", re_llama3}, {"smaug-bpe", re_llama3},
    {"tekken", re_tekken},
    {"qwen2", re_qwen2}, {"deepseek-r1-qwen", re_qwen2}, {"kormo", re_qwen2}, {"f2llmv2", re_qwen2}, {"megrez", re_qwen2},
    {"qwen35", re_qwen35},
    {"gpt-4o", re_gpt4o}, {"llama4", re_gpt4o}, {"kanana2", re_gpt4o}, {"talkie", re_gpt4o}, {"minimax-m2", re_gpt4o},
};

/* The pre-tokenizer for that name, through the tokenizer.json parser (its checks included). */
static int gguf_pretok(tokenizer *t, const char *pre, const char *path)
{
    int found = -1;
    for (size_t i = 0; i < sizeof pre_names / sizeof *pre_names && found < 0; i++)
        if (!strcmp(pre, pre_names[i].name)) found = (int)i;
    if (found < 0) {
        char known[1024] = "";
        for (size_t i = 0; i < sizeof pre_names / sizeof *pre_names; i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "", pre_names[i].name);
        return err_set("%s: tokenizer.ggml.pre \"%s\" is not supported (its split regex is unknown here; known: %s)",
                       path, pre, known);
    }
    json_object *bl = json_object_new_object();
    json_object_object_add(bl, "type", json_object_new_string("ByteLevel"));
    json_object_object_add(bl, "add_prefix_space", json_object_new_boolean(0));
    json_object_object_add(bl, "use_regex", json_object_new_boolean(pre_names[found].re == NULL));
    json_object *root = bl;
    if (pre_names[found].re) {
        json_object *split = json_object_new_object(), *pat = json_object_new_object(), *arr = json_object_new_array();
        json_object_object_add(pat, "Regex", json_object_new_string(pre_names[found].re));
        json_object_object_add(split, "type", json_object_new_string("Split"));
        json_object_object_add(split, "pattern", pat);
        json_object_object_add(split, "behavior", json_object_new_string("Isolated"));
        json_object_object_add(split, "invert", json_object_new_boolean(0));
        json_object_array_add(arr, split);
        json_object_array_add(arr, bl);
        root = json_object_new_object();
        json_object_object_add(root, "type", json_object_new_string("Sequence"));
        json_object_object_add(root, "pretokenizers", arr);
    }
    int rc = tok_parse_pretokenizer(t, root, path);
    json_object_put(root);
    return rc;
}

/* 1 if every code point of s[0..n) is one of GPT-2's byte characters */
static int in_byte_alphabet(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        int k;
        if (tok_byte_of_cp(tok_next_cp(s + i, n - i, &k)) < 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

/* The vocabulary from tokenizer.ggml.tokens, respelled into the byte alphabet where needed. */
static int gguf_vocab(tokenizer *t, char *const *tok, const uint64_t *len, uint64_t n, int respell, const char *path)
{
    if (n == 0 || n > (1u << 26)) return err_set("%s: tokenizer.ggml.tokens has %llu entries", path, (unsigned long long)n);
    char spell[256][3];
    int spell_len[256] = {0};
    for (uint32_t c = 0; c < 0x200; c++) {
        int b = tok_byte_of_cp(c);
        if (b < 0) continue;
        byte_buf e = {0};
        tok_put_cp(&e, c);
        memcpy(spell[b], e.v, e.n);
        spell_len[b] = (int)e.n;
        free(e.v);
    }
    byte_buf pool = {0};
    size_t *off = xmalloc(n * sizeof *off);
    for (uint64_t i = 0; i < n; i++) {
        if (len[i] == 0 || memchr(tok[i], 0, len[i])) {
            free(off); free(pool.v);
            return err_set("%s: tokenizer.ggml.tokens[%llu] is empty or holds a NUL byte", path, (unsigned long long)i);
        }
        off[i] = pool.n;
        if (!respell || in_byte_alphabet(tok[i], len[i])) byte_append(&pool, tok[i], len[i]);
        else for (uint64_t j = 0; j < len[i]; j++) byte_append(&pool, spell[(unsigned char)tok[i][j]], (size_t)spell_len[(unsigned char)tok[i][j]]);
        byte_append(&pool, "", 1);
    }
    t->n_model = (int32_t)n;
    t->pool = pool.v;
    t->vocab = xcalloc(n, sizeof *t->vocab);
    t->vocab_len = xcalloc(n, sizeof *t->vocab_len);
    for (uint64_t i = 0; i < n; i++) {
        t->vocab[i] = t->pool + off[i];
        t->vocab_len[i] = (int32_t)strlen(t->vocab[i]);
    }
    free(off);
    vocab_build(t);
    return 0;
}

static int gguf_merges_from_scores(tokenizer *t, const gguf_file *g, const char *path);

/* tokenizer.ggml.merges as merges.txt text ("a b" lines) for bpe_merges_from_text */
static int gguf_merges(tokenizer *t, const gguf_file *g, const char *path)
{
    char *const *m;
    const uint64_t *len;
    uint64_t n;
    if (!gguf_find_kv(g, "tokenizer.ggml.merges"))  /* "gpt2" without merges: one byte a token */
        return t->byte_fallback ? gguf_merges_from_scores(t, g, path) : 0;
    if (gguf_get_str_array(g, "tokenizer.ggml.merges", &m, &len, &n)) return -1;
    byte_buf text = {0};
    for (uint64_t i = 0; i < n; i++) {
        if (memchr(m[i], '\n', len[i]) || memchr(m[i], 0, len[i]) || !strncmp(m[i], "#version", 8)) {
            free(text.v);
            return err_set("%s: tokenizer.ggml.merges[%llu] is not a merge \"a b\"", path, (unsigned long long)i);
        }
        byte_append(&text, m[i], len[i]);
        byte_append(&text, "\n", 1);
    }
    char where[1100];
    snprintf(where, sizeof where, "%s: tokenizer.ggml.merges", path);
    int rc = bpe_merges_from_text(t, text.v ? text.v : "", text.n, where);
    free(text.v);
    return rc;
}

/* SentencePiece files carry scores, not merges: transformers' generate_merges(vocab, scores) makes
 * them: every split of every token into two vocabulary tokens (in token order; within a token by
 * the ids of the left then right part), stably sorted by the token's score, then the left part's
 * length, then the right part's (code points), all descending. */
typedef struct { int32_t l, r, llen, rlen; float score; int64_t order; } gen_merge;
static int gen_cmp(const void *pa, const void *pb)
{
    const gen_merge *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    if (a->llen != b->llen) return a->llen > b->llen ? -1 : 1;
    if (a->rlen != b->rlen) return a->rlen > b->rlen ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}
static int local_cmp(const void *pa, const void *pb)
{
    const gen_merge *a = pa, *b = pb;
    if (a->l != b->l) return a->l < b->l ? -1 : 1;
    return a->r < b->r ? -1 : a->r > b->r;
}

static int gguf_merges_from_scores(tokenizer *t, const gguf_file *g, const char *path)
{
    const gguf_kv *kv = gguf_find_kv(g, "tokenizer.ggml.scores");
    if (!kv || !kv->is_array || kv->type != GGUF_FLOAT32 || kv->n != (uint64_t)t->n_model)
        return err_set("%s: no tokenizer.ggml.merges, and no float32 tokenizer.ggml.scores of %d entries to derive them from",
                       path, t->n_model);
    gen_merge *m = NULL;
    size_t n = 0, cap = 0;
    for (int32_t i = 0; i < t->n_model; i++) {
        if (vocab_find(t, t->vocab[i], (size_t)t->vocab_len[i]) != i) continue; /* a repeated token: its last id */
        float score;
        memcpy(&score, (const char *)kv->data + 4 * (size_t)i, 4);
        const char *s = t->vocab[i];
        size_t len = (size_t)t->vocab_len[i], start = n;
        int32_t ncp = 0, k;
        for (size_t j = 0; j < len; j += (size_t)k) { tok_next_cp(s + j, len - j, &k); ncp++; }
        int32_t lcp = 0;
        for (size_t j = 0; j < len;) {
            tok_next_cp(s + j, len - j, &k);
            j += (size_t)k;
            lcp++;
            if (j >= len) break;
            int32_t l = vocab_find(t, s, j), r = vocab_find(t, s + j, len - j);
            if (l < 0 || r < 0) continue;
            if (n == cap) m = xrealloc(m, (cap = cap ? 2 * cap : 4096) * sizeof *m);
            m[n++] = (gen_merge){l, r, lcp, ncp - lcp, score, 0};
        }
        if (n > start) qsort(m + start, n - start, sizeof *m, local_cmp); /* m is NULL until the first merge */
    }
    for (size_t i = 0; i < n; i++) m[i].order = (int64_t)i;
    if (n) qsort(m, n, sizeof *m, gen_cmp);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        rc = bpe_merge_add(t, t->vocab[m[i].l], (size_t)t->vocab_len[m[i].l], t->vocab[m[i].r], (size_t)t->vocab_len[m[i].r],
                           (int32_t)i, path);
    free(m);
    return rc;
}

/* An optional token id key: *id = -1 when absent; -1 with err_set() when out of range. */
static int gguf_token_id(const gguf_file *g, const char *key, int32_t n, int32_t *id, const char *path)
{
    *id = -1;
    if (!gguf_find_kv(g, key)) return 0;
    uint32_t v;
    if (gguf_get_u32(g, key, &v)) return -1;
    if (v >= (uint32_t)n) return err_set("%s: %s %u is outside the vocabulary (0..%d)", path, key, v, n - 1);
    *id = (int32_t)v;
    return 0;
}

static int gguf_flag(const gguf_file *g, const char *key, int *out)
{
    *out = 0;
    return gguf_find_kv(g, key) ? gguf_get_bool(g, key, out) : 0;
}

static int gguf_build(tokenizer *t, const gguf_file *g, const char *path)
{
    const char *model = NULL, *pre = "default";
    char *const *tok;
    const uint64_t *len;
    uint64_t n;
    if (gguf_get_str(g, "tokenizer.ggml.model", &model, NULL)) return -1;
    int spm = !strcmp(model, "llama");
    if (strcmp(model, "gpt2") && !spm)
        return err_set("%s: tokenizer.ggml.model \"%s\" is not supported (gpt2: byte-level BPE; llama: SentencePiece BPE)", path, model);
    if (spm) {
        const char *arch = "";
        if (gguf_find_kv(g, "general.architecture") && gguf_get_str(g, "general.architecture", &arch, NULL)) return -1;
        if (!strncmp(arch, "gemma", 5) || !strcmp(arch, "phi3"))
            return err_set("%s: the SentencePiece vocabulary of a %s GGUF is not supported (transformers rebuilds it its own way)", path, arch);
    }
    if (gguf_find_kv(g, "tokenizer.ggml.pre") && gguf_get_str(g, "tokenizer.ggml.pre", &pre, NULL)) return -1;
    if (gguf_get_str_array(g, "tokenizer.ggml.tokens", &tok, &len, &n)) return -1;
    t->model = TOK_MODEL_BPE;
    t->prefix_len = 0;
    t->byte_fallback = t->fuse_unk = spm;
    if (gguf_vocab(t, tok, len, n, !spm, path) || gguf_merges(t, g, path)) return -1;
    if (spm) {
        if (strcmp(pre, "default"))
            return err_set("%s: tokenizer.ggml.pre \"%s\" with a SentencePiece vocabulary is not supported (only \"default\")", path, pre);
        json_object *ms = json_object_new_object(); /* LlamaTokenizer's: prefix space on the first word only */
        json_object_object_add(ms, "type", json_object_new_string("Metaspace"));
        json_object_object_add(ms, "replacement", json_object_new_string("\xe2\x96\x81"));
        json_object_object_add(ms, "prepend_scheme", json_object_new_string("first"));
        json_object_object_add(ms, "split", json_object_new_boolean(0));
        int rc = tok_parse_pretokenizer(t, ms, path);
        json_object_put(ms);
        if (rc) return -1;
    } else if (gguf_pretok(t, pre, path)) {
        return -1;
    }

    int32_t special[4]; /* bos eos unknown padding, as transformers adds them first */
    static const char *keys[4] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                  "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"};
    for (int i = 0; i < 4; i++)
        if (gguf_token_id(g, keys[i], t->n_model, &special[i], path)) return -1;
    for (int i = 0; i < 4; i++)
        if (special[i] >= 0) added_push(t, tok[special[i]], -1, 0, 0, 0, 0, 1);
    const gguf_kv *tt = gguf_find_kv(g, "tokenizer.ggml.token_type");
    if (tt) {
        if (tt->n != n) return err_set("%s: tokenizer.ggml.token_type has %llu entries for %llu tokens", path,
                                       (unsigned long long)tt->n, (unsigned long long)n);
        int32_t *type = xmalloc(n * sizeof *type);
        if (gguf_get_i32_array(g, "tokenizer.ggml.token_type", type, n)) { free(type); return -1; }
        for (uint64_t i = 0; i < n; i++) /* 3 CONTROL; a mislabelled one outside the alphabet is skipped, as HF */
            if (type[i] == 3 && (spm || in_byte_alphabet(tok[i], len[i]))) added_push(t, tok[i], -1, 0, 0, 0, 0, 1);
        for (uint64_t i = 0; i < n; i++) /* 4 USER_DEFINED, when its spelling is in the vocabulary */
            if (type[i] == 4 && vocab_find(t, tok[i], len[i]) >= 0) added_push(t, tok[i], -1, 0, 0, 0, 0, 0);
        free(type);
    }
    added_assign_ids(t);
    int bos, eos;
    if (gguf_flag(g, "tokenizer.ggml.add_bos_token", &bos) || gguf_flag(g, "tokenizer.ggml.add_eos_token", &eos)) return -1;
    if (spm && !gguf_find_kv(g, "tokenizer.ggml.add_bos_token")) bos = 1; /* llama.cpp's and HF's default for these */
    if (bos && special[0] >= 0) t->pre[t->n_pre++] = added_find(t, tok[special[0]]);
    if (eos && special[1] >= 0) t->post[t->n_post++] = added_find(t, tok[special[1]]);
    if (special[3] >= 0) t->pad_id = added_find(t, tok[special[3]]);
    return 0;
}

tokenizer *tok_load_gguf(const char *path)
{
    gguf_file g;
    if (gguf_open(&g, path)) return NULL;
    tokenizer *t = tok_new();
    int rc = gguf_build(t, &g, path);
    if (!rc) rc = tok_finish(t, path, NULL, "GGUF");
    gguf_close(&g);
    if (rc) { tok_free(t); return NULL; }
    return t;
}
