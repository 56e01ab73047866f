/* tok_check.h — helpers the tokenizer tests share (test_tokenizer.c, test_tokenizer_bpe.c,
 * test_tokenizer_gguf.c): a JSON member lookup, printing ids, the FNV-1a hash of id sequences that
 * the fixture scripts write for HF's ids, and the "a" + c + "b" encoding of one code point that the
 * code-point sweeps hash. Header-only: each test is one translation unit. */
#ifndef ATTNSCOPE_TOK_CHECK_H
#define ATTNSCOPE_TOK_CHECK_H
#include "tokenizer.h"
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <utf8proc.h>

static inline json_object *member(json_object *o, const char *key)
{
    json_object *v = NULL;
    json_object_object_get_ex(o, key, &v);
    return v;
}

static inline void print_ids(const char *label, const int32_t *ids, int n)
{
    printf("    %s (%d):", label, n);
    for (int i = 0; i < n && i < 60; i++) printf(" %d", ids[i]);
    printf("%s\n", n > 60 ? " ..." : "");
}

/* FNV-1a over the ids' little-endian bytes, continuing from h (start with IDS_HASH_INIT), as
 * the fixture scripts hash HF's ids */
#define IDS_HASH_INIT 0xCBF29CE484222325ull
static inline uint64_t ids_hash(uint64_t h, const int32_t *ids, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < 4; j++) h = (h ^ (((uint32_t)ids[i] >> (8 * j)) & 0xFF)) * 0x100000001B3ull;
    return h;
}

/* tok_encode of "a" + the code point c + "b" into ids[cap]; *full as tok_encode */
static inline int encode_codepoint(const tokenizer *t, int32_t c, int32_t *ids, int cap, int *full)
{
    char text[8] = "a";
    int k = (int)utf8proc_encode_char(c, (utf8proc_uint8_t *)text + 1);
    text[1 + k] = 'b';
    return tok_encode(t, text, (size_t)k + 2, cap, ids, full);
}
#endif
