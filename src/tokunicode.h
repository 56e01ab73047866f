/* tokunicode.h — the Unicode character classes of Hugging Face's BertNormalizer and
 * BertPreTokenizer, as tokenizers 0.23.3 computes them: utf8proc's tables corrected where the Rust
 * crates HF uses (unicode_categories, an older Unicode; Rust std's newer lowercase) disagree.
 * Checked for every code point by tests/test_tokenizer.c and tests/test_tokenizer_bpe.c. Used only
 * by the tokenizer (tok_*.c). */
#ifndef ATTNSCOPE_TOKUNICODE_H
#define ATTNSCOPE_TOKUNICODE_H
#include <stdint.h>

int tku_is_ws_slow(uint32_t c);
int tku_is_punct_slow(uint32_t c);
/* Rust char::is_whitespace (the White_Space property). */
static inline int tku_is_ws(uint32_t c)
{
    if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
    return tku_is_ws_slow(c);
}
/* BertPreTokenizer punctuation: ASCII punctuation or a P* category (HF's Unicode version). */
static inline int tku_is_punct(uint32_t c)
{
    if (c < 0x80) return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
    return tku_is_punct_slow(c);
}
/* BertNormalizer clean_text removes it: Cc, Cf, Co or Cs but not \t \n \r (Cn is kept). */
int tku_is_control(uint32_t c);
/* BertNormalizer's CJK ranges, as in HF's bert.rs. */
int tku_is_chinese(uint32_t c);
/* Mn: dropped after NFD by strip_accents. */
int tku_is_mn(uint32_t c);
/* HF's NFD leaves c whole (its tables predate c's decomposition). */
int tku_no_nfd(uint32_t c);
/* HF's NFKD/NFKC leave c whole (the same, for compatibility decompositions). */
int tku_no_nfkd(uint32_t c);
/* Rust char::to_lowercase into out[2]; returns how many code points (2 only for U+0130). */
int tku_lower(uint32_t c, uint32_t out[2]);
/* \w of the regex crate (for single_word added tokens). */
int tku_is_word_char(uint32_t c);
#endif
