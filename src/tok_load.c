/* tok_load.c — building a tokenizer from what a model directory holds: tokenizer.json (any
 * combination of the stages the other tok_*.c files implement), vocab.txt (+
 * tokenizer_config.json: BERT's WordPiece as transformers' BertTokenizerFast converts it), or
 * vocab.json + merges.txt (+ tokenizer_config.json: GPT-2's byte-level BPE as transformers'
 * GPT2TokenizerFast converts it). tok_finish() then indexes and checks what they share. */
#include "tok_int.h"
#include "jsonutil.h"
#include "util.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

tokenizer *tok_new(void)
{
    tokenizer *t = xcalloc(1, sizeof *t);
    memcpy(t->prefix, "##", 2);
    t->prefix_len = 2;
    t->max_chars = 100;
    t->unk_id = t->cls_id = t->sep_id = t->pad_id = -1;
    return t;
}

void tok_free(tokenizer *t)
{
    if (!t) return;
    for (int i = 0; i < t->n_added; i++) {
        if (t->added[i].s != t->added[i].content) free(t->added[i].s);
        free(t->added[i].content);
    }
    /* every slot, not only the n_ counted: a step rejected half-way may hold its regex */
    for (int i = 0; i < TOK_MAX_STAGES; i++) { free(t->norm[i].a); free(t->norm[i].b); if (t->norm[i].re) pcre2_code_free(t->norm[i].re); }
    for (int i = 0; i < TOK_MAX_STAGES; i++) { if (t->pre_tok[i].re) pcre2_code_free(t->pre_tok[i].re); free(t->pre_tok[i].lit); }
    bpe_free(t);
    free(t->added_ht); free(t->added_lens[0]); free(t->added_lens[1]); free(t->added_of_id);
    free(t->added); free(t->vocab); free(t->vocab_len); free(t->ht); free(t->id_str); free(t->pool);
    free(t);
}

int tok_get_object(json_object *o, const char *key, json_object **out, const char *path)
{
    *out = NULL;
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !v) return 0;
    if (!json_object_is_type(v, json_type_object))
        return err_set("%s: \"%s\" should be an object, found %s", path, key, json_type_to_name(json_object_get_type(v)));
    *out = v;
    return 1;
}

/* A JSON vocabulary {token: id}: ids must be exactly 0..n-1, each once. Builds the index. */
static int vocab_from_json(tokenizer *t, json_object *vocab, const char *path)
{
    int n = json_object_object_length(vocab);
    if (n <= 0 || n > (1 << 26)) return err_set("%s: model vocab has %d entries", path, n);
    t->n_model = n;
    t->vocab = xcalloc((size_t)n, sizeof *t->vocab);
    t->vocab_len = xcalloc((size_t)n, sizeof *t->vocab_len);
    size_t bytes = 0;
    json_object_object_foreach(vocab, k0, v0) { (void)v0; bytes += strlen(k0) + 1; }
    t->pool = xmalloc(bytes);
    char *p = t->pool;
    json_object_object_foreach(vocab, key, val) {
        if (!json_object_is_type(val, json_type_int))
            return err_set("%s: vocab entry \"%s\" should be an integer id", path, key);
        int64_t id = json_object_get_int64(val);
        if (id < 0 || id >= n) return err_set("%s: vocab entry \"%s\" has id %lld, outside 0..%d", path, key, (long long)id, n - 1);
        if (t->vocab[id]) return err_set("%s: vocab id %lld is given to both \"%s\" and \"%s\"", path, (long long)id, t->vocab[id], key);
        size_t len = strlen(key);
        memcpy(p, key, len + 1);
        t->vocab[id] = p;
        t->vocab_len[id] = (int32_t)len;
        p += len + 1;
    }
    vocab_build(t);
    return 0;
}

/* an optional string member of at most TOK_MAX_PREFIX-1 bytes into dst */
static int get_affix(json_object *o, const char *key, char *dst, int *len, const char *path)
{
    const char *s = NULL;
    int rc = json_get_string(o, key, &s, path);
    if (rc < 0) return -1;
    if (rc == 1) {
        size_t n = strlen(s);
        if (n >= TOK_MAX_PREFIX) return err_set("%s: %s is longer than %d bytes", path, key, TOK_MAX_PREFIX - 1);
        memcpy(dst, s, n);
        *len = (int)n;
    }
    return 0;
}

static int parse_model(tokenizer *t, json_object *model, const char *path, const char **unk)
{
    json_object *vocab, *merges = NULL;
    const char *type = NULL;
    if (json_get_string(model, "type", &type, path) != 1) return err_set("%s: model has no \"type\"", path);
    if (strcmp(type, "WordPiece") && strcmp(type, "BPE"))
        return err_set("%s: model type \"%s\" is not supported (WordPiece, BPE)", path, type);
    if (tok_get_object(model, "vocab", &vocab, path) != 1) return err_set("%s: model has no \"vocab\" object", path);
    int rc = json_get_string(model, "unk_token", unk, path);
    if (!strcmp(type, "WordPiece")) {
        t->model = TOK_MODEL_WORDPIECE;
        if (rc != 1) return rc < 0 ? -1 : err_set("%s: model has no \"unk_token\"", path);
        if (get_affix(model, "continuing_subword_prefix", t->prefix, &t->prefix_len, path)) return -1;
        int64_t mc;
        if ((rc = json_get_int(model, "max_input_chars_per_word", &mc, path)) < 0) return -1;
        if (rc == 1) {
            if (mc < 0 || mc > INT32_MAX) return err_set("%s: max_input_chars_per_word %lld is out of range", path, (long long)mc);
            t->max_chars = (int)mc;
        }
        return vocab_from_json(t, vocab, path);
    }
    t->model = TOK_MODEL_BPE;
    if (rc < 0) return -1;
    t->prefix_len = 0;
    double dropout = 0;
    if (json_get_double(model, "dropout", &dropout, path) < 0) return -1;
    if (dropout > 0) return err_set("%s: BPE dropout %g is not supported (it makes the tokenization random)", path, dropout);
    if (get_affix(model, "continuing_subword_prefix", t->prefix, &t->prefix_len, path) ||
        get_affix(model, "end_of_word_suffix", t->suffix, &t->suffix_len, path) ||
        json_get_bool(model, "fuse_unk", &t->fuse_unk, path) < 0 || json_get_bool(model, "byte_fallback", &t->byte_fallback, path) < 0 ||
        json_get_bool(model, "ignore_merges", &t->ignore_merges, path) < 0)
        return -1;
    if (vocab_from_json(t, vocab, path)) return -1;
    json_object_object_get_ex(model, "merges", &merges);
    return bpe_merges_from_json(t, merges, path);
}

static int parse_added(tokenizer *t, json_object *added, const char *path)
{
    if (!added) return 0;
    if (!json_object_is_type(added, json_type_array)) return err_set("%s: \"added_tokens\" should be an array", path);
    for (size_t i = 0; i < json_object_array_length(added); i++) {
        json_object *a = json_object_array_get_idx(added, i);
        const char *content = NULL;
        int64_t id;
        int special = 0, normalized = -1, lstrip = 0, rstrip = 0, single = 0;
        if (!json_object_is_type(a, json_type_object)) return err_set("%s: added_tokens[%zu] should be an object", path, i);
        if (json_get_int(a, "id", &id, path) != 1 || json_get_string(a, "content", &content, path) != 1)
            return err_set("%s: added_tokens[%zu] needs an integer \"id\" and a string \"content\"", path, i);
        if (id < 0 || id >= INT32_MAX) return err_set("%s: added_tokens[%zu] has id %lld, out of range", path, i, (long long)id);
        if (i >= (1u << 20)) return err_set("%s: more than %d added_tokens", path, 1 << 20);
        if (!*content) return err_set("%s: added_tokens[%zu] has an empty content", path, i);
        if (json_get_bool(a, "special", &special, path) < 0 || json_get_bool(a, "normalized", &normalized, path) < 0 ||
            json_get_bool(a, "lstrip", &lstrip, path) < 0 || json_get_bool(a, "rstrip", &rstrip, path) < 0 ||
            json_get_bool(a, "single_word", &single, path) < 0)
            return -1;
        added_push(t, content, (int32_t)id, normalized < 0 ? !special : normalized, lstrip, rstrip, single, special);
    }
    return 0;
}

/* Resolves the unknown token, lays out ids and the added tokens, checks the template. */
int tok_finish(tokenizer *t, const char *path, const char *unk, const char *source)
{
    if (unk && (t->unk_id = vocab_find(t, unk, strlen(unk))) < 0)
        return err_set("%s: the unknown token \"%s\" is not in the vocabulary", path, unk);
    if (t->model == TOK_MODEL_BPE && bpe_finish(t, path)) return -1;

    t->n_ids = t->n_model;
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id >= t->n_ids) t->n_ids = t->added[i].id + 1;
    t->id_str = xcalloc((size_t)t->n_ids, sizeof *t->id_str);
    for (int32_t id = 0; id < t->n_model; id++) t->id_str[id] = t->vocab[id];
    for (int i = 0; i < t->n_added; i++) t->id_str[t->added[i].id] = t->added[i].content; /* HF: added first */
    added_index(t);

    for (int i = 0; i < t->n_pre + t->n_post; i++) {
        int32_t id = i < t->n_pre ? t->pre[i] : t->post[i - t->n_pre];
        if (id < 0 || id >= t->n_ids)
            return err_set("%s: the post-processor's special token id %d is outside the vocabulary (0..%d)", path, id, t->n_ids - 1);
    }
    t->cls_id = t->n_pre ? t->pre[0] : -1;
    t->sep_id = t->n_post ? t->post[t->n_post - 1] : -1;
    if (t->pad_id < 0 || t->pad_id >= t->n_ids) t->pad_id = added_find(t, t->model == TOK_MODEL_BPE ? "<pad>" : "[PAD]");
    if (t->model == TOK_MODEL_WORDPIECE)
        snprintf(t->desc, sizeof t->desc, "WordPiece (%s), %s%s%s%s, %d ids", source,
                 t->lowercase ? "lowercase" : "cased", t->strip_accents ? ", strip accents" : "",
                 t->chinese ? ", CJK split" : "", t->clean_text ? "" : ", no text cleaning", t->n_ids);
    else
        snprintf(t->desc, sizeof t->desc, "BPE (%s), %s%s%s, %d merges, %d ids", source,
                 t->byte_level ? "byte-level" : t->meta_len ? "metaspace" : "plain", t->byte_fallback ? ", byte fallback" : "",
                 t->n_pre ? ", BOS" : "", (int)t->n_merges, t->n_ids);
    return 0;
}

static int parse_tokenizer_json(tokenizer *t, json_object *root, const char *path, const char **unk)
{
    json_object *model, *norm, *pre, *post, *added = NULL, *padding;
    if (!json_object_is_type(root, json_type_object)) return err_set("%s: should hold a JSON object", path);
    if (tok_get_object(root, "model", &model, path) != 1) return err_set("%s: no \"model\" object", path);
    if (parse_model(t, model, path, unk)) return -1;
    if (tok_get_object(root, "normalizer", &norm, path) < 0 || tok_parse_normalizer(t, norm, path)) return -1;
    if (tok_get_object(root, "pre_tokenizer", &pre, path) < 0 || tok_parse_pretokenizer(t, pre, path)) return -1;
    if (t->model == TOK_MODEL_WORDPIECE && (t->n_pre_tok != 1 || t->pre_tok[0].kind != PT_BERT))
        return err_set("%s: a WordPiece pre_tokenizer other than BertPreTokenizer is not supported", path);
    if (tok_get_object(root, "post_processor", &post, path) < 0 || tok_parse_post(t, post, path)) return -1;
    int64_t pad = -1;
    if (tok_get_object(root, "padding", &padding, path) == 1 && json_get_int(padding, "pad_id", &pad, path) == 1 && pad >= 0 && pad < INT32_MAX)
        t->pad_id = (int32_t)pad;
    json_object_object_get_ex(root, "added_tokens", &added);
    return parse_added(t, added, path);
}

static tokenizer *load_tokenizer_json(const char *path)
{
    json_object *root = json_parse_file(path, TOK_MAX_FILE);
    if (!root) return NULL;
    tokenizer *t = tok_new();
    const char *unk = NULL;
    int rc = parse_tokenizer_json(t, root, path, &unk);
    if (rc == 0) {
        added_assign_ids(t);
        rc = tok_finish(t, path, unk, "tokenizer.json");
    }
    json_object_put(root);
    if (rc) { tok_free(t); return NULL; }
    return t;
}

/* tokenizer_config.json token names are strings or {"content": ...} objects. */
static int config_token(json_object *cfg, const char *key, const char *dflt, const char **out, const char *path)
{
    json_object *v;
    *out = dflt;
    if (!cfg || !json_object_object_get_ex(cfg, key, &v) || !v) return 0;
    if (json_object_is_type(v, json_type_string)) { *out = json_object_get_string(v); return 0; }
    if (json_object_is_type(v, json_type_object) && json_get_string(v, "content", out, path) == 1) return 0;
    return err_set("%s: \"%s\" should be a string or an object with a string \"content\"", path, key);
}

/* dir/tokenizer_config.json if present (*cfg NULL if not); -1 with err_set() if unreadable */
static int read_config(const char *dir, char *cpath, size_t cap, json_object **cfg)
{
    snprintf(cpath, cap, "%s/tokenizer_config.json", dir);
    *cfg = NULL;
    if (access(cpath, F_OK) != 0) return 0;
    if (!(*cfg = json_parse_file(cpath, 1u << 24))) return -1;
    if (!json_object_is_type(*cfg, json_type_object)) {
        json_object_put(*cfg);
        *cfg = NULL;
        return err_set("%s: should hold a JSON object", cpath);
    }
    return 0;
}

/* vocab.txt (one token a line, id = line number) + optional tokenizer_config.json, set up as
 * transformers' BertTokenizerFast would convert it: BertNormalizer(clean_text, CJK per
 * tokenize_chinese_chars, strip_accents, lowercase per do_lower_case), WordPiece "##"/100,
 * [CLS] $A [SEP], and the special tokens as added tokens. */
static tokenizer *load_vocab_txt(const char *dir, const char *path)
{
    char cpath[4096];
    json_object *cfg = NULL;
    if (read_config(dir, cpath, sizeof cpath, &cfg)) return NULL;
    tokenizer *t = tok_new();
    const char *names[5]; /* unk cls sep pad mask */
    static const char *keys[5] = {"unk_token", "cls_token", "sep_token", "pad_token", "mask_token"};
    static const char *dflt[5] = {"[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"};
    int lc = 1, cj = 1, sa = -1, rc = 0;
    for (int i = 0; i < 5 && !rc; i++) rc = config_token(cfg, keys[i], dflt[i], &names[i], cpath);
    if (!rc && (json_get_bool(cfg, "do_lower_case", &lc, cpath) < 0 || json_get_bool(cfg, "strip_accents", &sa, cpath) < 0 ||
                json_get_bool(cfg, "tokenize_chinese_chars", &cj, cpath) < 0))
        rc = -1;
    t->clean_text = 1; t->chinese = cj; t->lowercase = lc; t->strip_accents = sa < 0 ? lc : sa;
    t->norm[t->n_norm++].kind = NM_BERT;
    t->pre_tok[t->n_pre_tok++].kind = PT_BERT;

    size_t n = 0;
    if (!rc && !(t->pool = util_read_file(path, TOK_MAX_FILE, &n))) rc = -1;
    size_t bad = rc ? 0 : util_utf8_valid_prefix(t->pool, n);
    if (!rc && bad != n) rc = err_set("%s: not valid UTF-8 at byte %zu", path, bad);
    if (!rc && memchr(t->pool, 0, n)) rc = err_set("%s: contains a NUL byte", path);
    if (!rc) {
        size_t lines = 0;
        for (size_t i = 0; i < n; i++) lines += t->pool[i] == '\n';
        if (n && t->pool[n - 1] != '\n') lines++;
        if (lines == 0 || lines > (1u << 26)) rc = err_set("%s: %zu tokens", path, lines);
        else {
            t->n_model = (int32_t)lines;
            t->vocab = xcalloc(lines, sizeof *t->vocab);
            t->vocab_len = xcalloc(lines, sizeof *t->vocab_len);
            char *s = t->pool;
            for (size_t id = 0; id < lines; id++) {
                char *nl = memchr(s, '\n', (size_t)(t->pool + n - s)), *e;
                if (!nl) nl = t->pool + n; /* the pool has a NUL there */
                e = nl;
                if (e > s && e[-1] == '\r') e--;
                *e = 0;
                t->vocab[id] = s;
                t->vocab_len[id] = (int32_t)(e - s);
                s = nl + 1;
            }
        }
    }
    if (!rc) {
        vocab_build(t);
        for (int i = 0; i < 5 && !rc; i++) {
            int32_t id = vocab_find(t, names[i], strlen(names[i]));
            if (id < 0 && i < 3) rc = err_set("%s: the vocabulary has no %s \"%s\"", path, keys[i], names[i]);
            else if (id >= 0) added_push(t, names[i], id, 0, 0, 0, 0, 1);
            if (i == 1) t->pre[t->n_pre++] = id;
            if (i == 2) t->post[t->n_post++] = id;
            if (i == 3) t->pad_id = id;
        }
    }
    if (!rc) rc = tok_finish(t, path, names[0], "vocab.txt");
    if (cfg) json_object_put(cfg);
    if (rc) { tok_free(t); return NULL; }
    return t;
}

/* vocab.json + merges.txt + optional tokenizer_config.json, set up as transformers'
 * GPT2TokenizerFast converts them: ByteLevel(add_prefix_space per the config, default false),
 * BPE without an unknown token, the config's unk/bos/eos/pad tokens (default "<|endoftext|>")
 * as special added tokens, and "bos $A" when add_bos_token is true. */
static tokenizer *load_vocab_json(const char *dir, const char *path)
{
    char cpath[4096], mpath[4096];
    json_object *cfg = NULL, *vocab = NULL;
    if (read_config(dir, cpath, sizeof cpath, &cfg)) return NULL;
    tokenizer *t = tok_new();
    t->model = TOK_MODEL_BPE;
    t->prefix_len = 0;
    static const char *keys[4] = {"unk_token", "bos_token", "eos_token", "pad_token"};
    const char *names[4];
    int aps = 0, bos = 0, rc = 0;
    for (int i = 0; i < 4 && !rc; i++) rc = config_token(cfg, keys[i], i < 3 ? "<|endoftext|>" : NULL, &names[i], cpath);
    if (!rc && (json_get_bool(cfg, "add_prefix_space", &aps, cpath) < 0 || json_get_bool(cfg, "add_bos_token", &bos, cpath) < 0)) rc = -1;
    if (!rc && !(vocab = json_parse_file(path, TOK_MAX_FILE))) rc = -1;
    if (!rc && !json_object_is_type(vocab, json_type_object)) rc = err_set("%s: should hold a JSON object", path);
    if (!rc) rc = vocab_from_json(t, vocab, path);
    snprintf(mpath, sizeof mpath, "%s/merges.txt", dir);
    size_t n = 0;
    char *text = NULL;
    if (!rc && !(text = util_read_file(mpath, TOK_MAX_FILE, &n))) rc = -1;
    if (!rc) rc = bpe_merges_from_text(t, text, n, mpath);
    free(text);
    if (!rc) {
        tok_pretok *p = &t->pre_tok[t->n_pre_tok++];
        p->kind = PT_BYTELEVEL;
        p->add_prefix_space = aps;
        p->use_regex = 1;
        static const char gpt2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
        if (!(p->re = tok_regex_compile(gpt2, strlen(gpt2), path))) rc = -1;
        t->byte_level = 1;
    }
    for (int i = 0; i < 4 && !rc; i++) {
        if (!names[i] || vocab_find(t, names[i], strlen(names[i])) < 0) continue;
        added_push(t, names[i], -1, 0, 0, 0, 0, 1);
    }
    if (!rc) {
        added_assign_ids(t);
        if (bos && names[1]) {
            int32_t id = added_find(t, names[1]);
            if (id < 0) rc = err_set("%s: add_bos_token, but bos_token \"%s\" is not in the vocabulary", cpath, names[1]);
            else t->pre[t->n_pre++] = id;
        }
        if (names[3]) t->pad_id = added_find(t, names[3]);
    }
    if (!rc) rc = tok_finish(t, path, NULL, "vocab.json + merges.txt");
    if (vocab) json_object_put(vocab);
    if (cfg) json_object_put(cfg);
    if (rc) { tok_free(t); return NULL; }
    return t;
}

tokenizer *tok_load(const char *dir)
{
    struct stat st;
    char path[4096];
    if (stat(dir, &st) != 0) { err_set("%s: cannot open the model directory: %s", dir, strerror(errno)); return NULL; }
    if (S_ISREG(st.st_mode)) {
        char magic[4] = {0};
        FILE *f = util_fopen_regular(dir, NULL);
        int gguf = f && fread(magic, 1, 4, f) == 4 && !memcmp(magic, "GGUF", 4);
        if (f) fclose(f);
        return gguf ? tok_load_gguf(dir) : load_tokenizer_json(dir);
    }
    if (!S_ISDIR(st.st_mode)) { err_set("%s: not a regular file or a directory", dir); return NULL; }
    if ((size_t)snprintf(path, sizeof path, "%s/tokenizer.json", dir) >= sizeof path) {
        err_set("%s: path too long", dir);
        return NULL;
    }
    if (access(path, F_OK) == 0) return load_tokenizer_json(path);
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    if (access(path, F_OK) == 0) return load_vocab_txt(dir, path);
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    if (access(path, F_OK) == 0) return load_vocab_json(dir, path);
    err_set("%s: no tokenizer.json, vocab.txt or vocab.json in the model directory", dir);
    return NULL;
}
