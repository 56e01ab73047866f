/* tok_vocab.c — what every tokenizer stage shares: growable scratch buffers (one set per
 * tok_encode call: a few mallocs per line, none per character), UTF-8 helpers, and the
 * vocabulary hash table.
 *
 * The table is open addressing with linear probing over ids, keyed by (bytes, length) so that
 * WordPiece and BPE can look up substrings in place. hsearch_r would need a NUL-terminated copy
 * of every candidate substring and a fixed-size, glibc-only table; this is 30 lines. */
#include "tok_int.h"
#include "util.h"
#include <utf8proc.h>
#include <stdlib.h>
#include <string.h>

void cp_reserve(cp_buf *b, size_t extra)
{
    if (b->n + extra <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra) cap *= 2;
    b->v = xrealloc(b->v, cap * sizeof *b->v);
    b->cap = cap;
}

void byte_reserve(byte_buf *b, size_t extra)
{
    if (b->n + extra <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra) cap *= 2;
    b->v = xrealloc(b->v, cap);
    b->cap = cap;
}

void byte_append(byte_buf *b, const char *s, size_t n)
{
    byte_reserve(b, n);
    if (n) memcpy(b->v + b->n, s, n);
    b->n += n;
}

void id_push(id_buf *b, int32_t id)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        b->v = xrealloc(b->v, b->cap * sizeof *b->v);
    }
    b->v[b->n++] = id;
}

void span_push(span_buf *b, size_t off, size_t len, int first)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        b->v = xrealloc(b->v, b->cap * sizeof *b->v);
    }
    b->v[b->n++] = (tok_span){off, len, first};
}

void scratch_free(scratch *s)
{
    free(s->a.v); free(s->b.v); free(s->norm.v); free(s->nt[0].v); free(s->nt[1].v); free(s->key.v); free(s->ids.v);
    free(s->pt[0].v); free(s->pt[1].v); free(s->sp[0].v); free(s->sp[1].v);
    bpe_scratch_free(s->bpe);
    if (s->md) pcre2_match_data_free(s->md);
    if (s->mctx) pcre2_match_context_free(s->mctx);
    if (s->jstack) pcre2_jit_stack_free(s->jstack);
}

uint32_t tok_next_cp(const char *s, size_t n, int *len)
{
    unsigned char b = (unsigned char)s[0];
    if (b < 0x80) { *len = 1; return b; }
    utf8proc_int32_t c;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &c);
    if (k <= 0) { *len = 1; return 0xFFFD; }
    *len = (int)k;
    return (uint32_t)c;
}

uint32_t tok_cp_before(const char *s, size_t at, int *len)
{
    size_t i = at;
    do i--; while (i > 0 && (s[i] & 0xC0) == 0x80);
    return tok_next_cp(s + i, at - i, len);
}

void tok_put_cp(byte_buf *b, uint32_t c)
{
    byte_reserve(b, 4);
    if (c < 0x80) b->v[b->n++] = (char)c;
    else b->n += (size_t)utf8proc_encode_char((utf8proc_int32_t)c, (utf8proc_uint8_t *)b->v + b->n);
}

uint64_t tok_hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

int32_t vocab_find(const tokenizer *t, const char *s, size_t n)
{
    for (uint32_t h = (uint32_t)tok_hash_bytes(s, n) & t->ht_mask;; h = (h + 1) & t->ht_mask) {
        int32_t id = t->ht[h];
        if (id < 0) return -1;
        if ((size_t)t->vocab_len[id] == n && memcmp(t->vocab[id], s, n) == 0) return id;
    }
}

void vocab_build(tokenizer *t)
{
    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)t->n_model) cap *= 2;
    t->ht = xmalloc(cap * sizeof *t->ht);
    memset(t->ht, 0xff, cap * sizeof *t->ht);
    t->ht_mask = cap - 1;
    t->max_tok_len = 1;
    for (int32_t id = 0; id < t->n_model; id++) {
        uint32_t h = (uint32_t)tok_hash_bytes(t->vocab[id], (size_t)t->vocab_len[id]) & t->ht_mask;
        while (t->ht[h] >= 0 && !(t->vocab_len[t->ht[h]] == t->vocab_len[id] &&
                                  memcmp(t->vocab[t->ht[h]], t->vocab[id], (size_t)t->vocab_len[id]) == 0))
            h = (h + 1) & t->ht_mask;
        t->ht[h] = id;
        if (t->vocab_len[id] > t->max_tok_len) t->max_tok_len = t->vocab_len[id];
    }
}
