/* tok_int.h — the inside of the tokenizer, shared by its stage files (not for other modules).
 *
 * The stages follow Hugging Face `tokenizers`, one concern per file:
 *   tokenizer.c     the encode pipeline (added tokens -> normalizer -> pre-tokenizer -> model ->
 *                   post-processor) and the public accessors, token surface forms and classes
 *   tok_vocab.c     the vocabulary hash table, scratch buffers, UTF-8 helpers
 *   tok_normalize.c normalizers: BertNormalizer, NFC/NFD/NFKC/NFKD, Lowercase, Prepend, Replace, Sequence
 *   tok_pretok.c    pre-tokenizers: BertPreTokenizer, ByteLevel, Split (PCRE2), Metaspace, Sequence
 *   tok_wordpiece.c model WordPiece
 *   tok_bpe.c       model BPE (merge ranks, byte_fallback, ignore_merges, word cache)
 *   tok_added.c     added tokens: ids, indexing, splitting them out of the text
 *   tok_post.c      post-processors: TemplateProcessing, BertProcessing, RobertaProcessing,
 *                   ByteLevel, Sequence
 *   tok_load.c      loading: tokenizer.json, vocab.txt, vocab.json + merges.txt
 *   tok_gguf.c      loading: the tokenizer.ggml.* metadata of a GGUF file
 * Invariants after loading: the model vocabulary holds ids 0..n_model-1, one token each; every
 * id the encoder can emit is < n_ids. Encoding reads the tokenizer only, except the BPE word
 * cache, which is guarded by its own mutex. */
#ifndef ATTNSCOPE_TOK_INT_H
#define ATTNSCOPE_TOK_INT_H
#include "tokenizer.h"
#include <json-c/json.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#define TOK_MAX_FILE   ((size_t)256 << 20) /* tokenizer.json / vocab / merges size limit */
#define TOK_MAX_AFFIX  8                   /* special ids before/after the sequence */
#define TOK_MAX_PREFIX 16                  /* bytes of the "##" continuing-subword prefix */
#define TOK_MAX_STAGES 8                   /* normalizers or pre-tokenizers in a Sequence */

enum { TOK_MODEL_WORDPIECE, TOK_MODEL_BPE };

typedef struct {
    char *content;      /* as in the file, owned */
    char *s;            /* what is matched: content, or its normalized form (owned) if normalized */
    int len;
    int32_t id;
    unsigned char normalized, lstrip, rstrip, single_word, special;
} added_token;

/* Normalizer steps (a Sequence is several). */
enum { NM_BERT, NM_NFC, NM_NFD, NM_NFKC, NM_NFKD, NM_LOWER, NM_PREPEND, NM_REPLACE, NM_STRIP };
typedef struct {
    int kind;
    char *a, *b;        /* Prepend: a = text; Replace: a = pattern string, b = content (owned) */
    pcre2_code *re;     /* Replace with a Regex pattern (owned; a unused then) */
    int alen, blen;
    int left, right;    /* Strip */
} tok_norm;

/* Pre-tokenizer steps. Split behaviours as HF's SplitDelimiterBehavior. */
enum { PT_BERT, PT_BYTELEVEL, PT_SPLIT, PT_METASPACE, PT_WHITESPACE_SPLIT };
enum { SB_REMOVED, SB_ISOLATED, SB_MERGED_PREV, SB_MERGED_NEXT, SB_CONTIGUOUS };
enum { PS_ALWAYS, PS_FIRST, PS_NEVER };
typedef struct {
    int kind;
    pcre2_code *re;     /* Split, ByteLevel use_regex (owned) */
    char *lit;          /* Split with a String pattern (owned), lit_len bytes */
    int lit_len;
    int behavior, invert;
    int add_prefix_space, use_regex;        /* ByteLevel */
    char rep[8];                            /* Metaspace replacement, UTF-8 */
    int rep_len, prepend, split;
} tok_pretok;

/* BPE: merges (a, b) -> (rank, new id) in an open-addressing table keyed by a << 32 | b. */
typedef struct { uint64_t key; int32_t rank, id; } bpe_merge;
typedef struct bpe_cache bpe_cache;

struct tokenizer {
    int model;
    int32_t n_model;          /* model vocabulary: ids 0..n_model-1 */
    const char **vocab;       /* [n_model] token text (in pool) */
    int32_t *vocab_len;       /* [n_model] bytes */
    int32_t *ht;              /* [ht_mask+1] open addressing, model ids, -1 = empty */
    uint32_t ht_mask;
    int32_t n_ids;            /* every id: model vocabulary plus added tokens */
    const char **id_str;      /* [n_ids] what tok_id_to_token returns; NULL for a hole */
    char *pool;               /* the vocabulary's strings */
    int max_tok_len;
    int32_t unk_id, cls_id, sep_id, pad_id;
    /* WordPiece */
    char prefix[TOK_MAX_PREFIX];
    int prefix_len, max_chars;
    /* BPE */
    bpe_merge *merges;        /* [merge_mask+1] open addressing, key (a << 32 | b) + 1, 0 = empty */
    uint32_t merge_mask;
    int32_t n_merges;
    char suffix[TOK_MAX_PREFIX];
    int suffix_len;
    int fuse_unk, byte_fallback, ignore_merges;
    int32_t byte_id[256];     /* "<0xXX>" ids for byte_fallback, -1 if absent */
    bpe_cache *cache;
    /* normalizer: the BertNormalizer switches, then the steps in order */
    int clean_text, chinese, strip_accents, lowercase;
    tok_norm norm[TOK_MAX_STAGES];
    int n_norm;
    /* pre-tokenizer steps in order */
    tok_pretok pre_tok[TOK_MAX_STAGES];
    int n_pre_tok;
    int byte_level;           /* tokens are byte-level (ByteLevel pre-tokenizer): surface = bytes */
    char meta[8];             /* Metaspace / Replace "▁" marker of a word start, or "" */
    int meta_len;
    /* added tokens */
    added_token *added;       /* [n_added] sorted by length, longest first */
    int n_added, any_raw, any_norm;
    unsigned char first[2][256]; /* [normalized][byte]: some added token of that set starts so */
    /* the added tokens' index (added_index): a hash table of (set, matched string) -> the first
     * added token in sorted order, each set's distinct lengths (longest first), and each id's
     * added token (−1: none) — matching and the id queries take no pass over all of them */
    int *added_ht; size_t added_ht_mask;
    int *added_lens[2], n_added_lens[2];
    int *added_of_id;
    /* post-processor */
    int32_t pre[TOK_MAX_AFFIX], post[TOK_MAX_AFFIX];
    int n_pre, n_post;
    char desc[256];
};

/* ---- scratch, one set per tok_encode call (tok_vocab.c) ---- */
typedef struct { uint32_t *v; size_t n, cap; } cp_buf;
typedef struct { char *v; size_t n, cap; } byte_buf;
typedef struct { int32_t *v; size_t n, cap; } id_buf;
/* a pre-token: bytes [off, off+len) of a byte_buf; first: it starts the original text */
typedef struct { size_t off, len; int first; } tok_span;
typedef struct { tok_span *v; size_t n, cap; } span_buf;
typedef struct {
    cp_buf a, b;
    byte_buf norm, nt[2], key, pt[2];   /* nt: between normalizer steps */
    span_buf sp[2];
    id_buf ids;
    void *bpe;                /* tok_bpe.c's work arrays */
    pcre2_match_data *md;     /* regex matching: made on first use */
    pcre2_match_context *mctx;
    pcre2_jit_stack *jstack;
} scratch;

void cp_reserve(cp_buf *b, size_t extra);
void byte_reserve(byte_buf *b, size_t extra);
void byte_append(byte_buf *b, const char *s, size_t n);
void id_push(id_buf *b, int32_t id);
void span_push(span_buf *b, size_t off, size_t len, int first);
void scratch_free(scratch *s);

/* Decodes one code point of s[0..n) (n > 0); invalid bytes read as U+FFFD, one byte each. */
uint32_t tok_next_cp(const char *s, size_t n, int *len);
/* The code point that ends at s[at) (at > 0). */
uint32_t tok_cp_before(const char *s, size_t at, int *len);
/* Appends c as UTF-8. */
void tok_put_cp(byte_buf *b, uint32_t c);

/* ---- vocabulary (tok_vocab.c) ---- */
uint64_t tok_hash_bytes(const char *s, size_t n);
/* The model id of s[0..n), or -1. */
int32_t vocab_find(const tokenizer *t, const char *s, size_t n);
/* Indexes vocab[0..n_model); a repeated token: the later id wins. */
void vocab_build(tokenizer *t);

/* ---- stages ---- */
/* Appends the normalized UTF-8 of s[0..n) to out (tok_normalize.c). */
void tok_normalize(const tokenizer *t, const char *s, size_t n, scratch *w, byte_buf *out);
/* Pre-tokenizes s[0..n) and runs the model on each pre-token, ids into w->ids (tok_pretok.c);
 * first: s starts the original text. */
void tok_pretokenize(const tokenizer *t, const char *s, size_t n, int first, scratch *w);
/* The model on one pre-token w[0..n) (tok_wordpiece.c / tok_bpe.c). */
void wordpiece_encode(const tokenizer *t, const char *w, size_t n, scratch *s);
void bpe_encode(const tokenizer *t, const char *w, size_t n, scratch *s);
void bpe_scratch_free(void *p);
/* Splits text around added tokens, calls fn on what lies between (tok_added.c). */
typedef void (*piece_fn)(const tokenizer *t, const char *s, size_t n, int first, scratch *w);
void added_split(const tokenizer *t, int normalized, const char *s, size_t n, int first, scratch *w, piece_fn fn);
void added_push(tokenizer *t, const char *content, int32_t id, int normalized, int lstrip, int rstrip, int single_word, int special);
void added_assign_ids(tokenizer *t);
void added_index(tokenizer *t);
int32_t added_find(const tokenizer *t, const char *s);
int added_of_id(const tokenizer *t, int32_t id);   /* the index in added of id's added token, or −1 */

/* ---- loading helpers (tok_load.c, tok_post.c, tok_normalize.c, tok_pretok.c, tok_bpe.c) ---- */
int tok_get_object(json_object *o, const char *key, json_object **out, const char *path);
int tok_parse_normalizer(tokenizer *t, json_object *norm, const char *path);
int tok_parse_pretokenizer(tokenizer *t, json_object *pre, const char *path);
int tok_parse_post(tokenizer *t, json_object *post, const char *path);
/* Compiles a Split / ByteLevel / Replace regex (PCRE2, UTF + UCP, \s as Oniguruma's); NULL
 * with err_set() */
pcre2_code *tok_regex_compile(const char *pattern, size_t len, const char *path);
/* The first match of re in s[0..n) at or after byte at: 1 with [*ms, *me), 0 for none (or a
 * resource limit). Grows the JIT stack in w once when a match needs it (tok_pretok.c). */
int tok_regex_next(const pcre2_code *re, const char *s, size_t n, size_t at, scratch *w, size_t *ms, size_t *me);
/* BPE merges from a tokenizer.json array or from merges.txt lines; builds the table. */
int bpe_merges_from_json(tokenizer *t, json_object *merges, const char *path);
int bpe_merges_from_text(tokenizer *t, char *text, size_t n, const char *path);
/* One merge a + b of rank rank (both and their concatenation in the vocabulary, else err_set). */
int bpe_merge_add(tokenizer *t, const char *a, size_t la, const char *b, size_t lb, int32_t rank, const char *path);
int bpe_finish(tokenizer *t, const char *path);
void bpe_free(tokenizer *t);
void tok_stages_free(tokenizer *t);
/* A tokenizer with the defaults every loader starts from (tok_load.c). */
tokenizer *tok_new(void);
/* Resolves unk (a token name, or NULL), lays out the ids and added tokens, checks the
 * post-processor's ids, writes the description naming source; -1 with err_set() (tok_load.c). */
int tok_finish(tokenizer *t, const char *path, const char *unk, const char *source);
/* The tokenizer of a GGUF file's metadata, as transformers builds it (tok_gguf.c); NULL with
 * err_set() naming the file and the key. */
tokenizer *tok_load_gguf(const char *path);
#endif
