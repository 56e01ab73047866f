/* tokenizer.h — Hugging Face-compatible text tokenization, from a model directory's
 * tokenizer.json (preferred), vocab.txt (+ tokenizer_config.json: BERT) or vocab.json +
 * merges.txt (+ tokenizer_config.json: GPT-2), from a tokenizer.json path, or from a GGUF file's
 * tokenizer.ggml.* metadata (byte-level "gpt2" and SentencePiece "llama" vocabularies, built as
 * transformers builds them from the file; src/tok_gguf.c says how, and which tokenizer.ggml.pre
 * names are known).
 *
 * Supported (the stages are in tok_*.c, listed in tok_int.h):
 *   models          WordPiece; BPE (merge ranks, continuing_subword_prefix, end_of_word_suffix,
 *                   byte_fallback "<0xXX>", fuse_unk, ignore_merges, unk_token or none)
 *   normalizers     BertNormalizer, NFC, NFD, NFKC, NFKD, Lowercase, Strip, Prepend, Replace
 *                   (a String or Regex pattern: CLIP's \s+ -> " "), Sequence
 *   pre-tokenizers  BertPreTokenizer, ByteLevel (add_prefix_space, use_regex), Split (Regex via
 *                   PCRE2, or String; every behavior; invert), Metaspace (prepend_scheme, split),
 *                   WhitespaceSplit, Sequence
 *   post-processors TemplateProcessing (single), BertProcessing, RobertaProcessing, ByteLevel,
 *                   Sequence, null
 *   added tokens    normalized or not, single_word, lstrip, rstrip
 * Anything else (Unigram, WordLevel, Precompiled, Digits, Punctuation, BPE dropout...) is
 * rejected with a message naming the file and the component.
 *
 * Fidelity: ids equal those of HF `tokenizers` 0.23.3 (Rust) for every corpus line and every
 * single code point tested by tests/test_tokenizer.c (WordPiece, the all-MiniLM-L6-v2 files) and
 * tests/test_tokenizer_bpe.c (BPE trained in the styles of GPT-2, Llama-3, Qwen2, Llama-2,
 * Metaspace and CLIP files). utf8proc's simple lowercase differs from Rust's full char::to_lowercase only
 * for U+0130 (İ -> "i" + U+0307), handled here; where HF's Rust crates carry older or newer
 * Unicode tables than utf8proc 2.8, tokunicode.c follows HF.
 *
 * tokenizer.json details: its "truncation" and "padding" sections are ignored (attnscope has its
 * own --max-len); padding.pad_id only picks tok_pad_id. Added tokens are split out as HF does:
 * those with normalized=false (the specials: "[MASK]" or "<|endoftext|>" typed in a sentence) in
 * the raw text before normalization, the others in the normalized text, leftmost-longest; like
 * HF, the ids written in added_tokens are not trusted: each token gets its vocabulary id, else the
 * next free id. vocab.txt: id = line number; tokenizer_config.json gives do_lower_case (default
 * true), strip_accents, tokenize_chinese_chars and the unk/cls/sep/pad/mask token names (strings
 * or {"content": ...}); [UNK], [CLS] and [SEP] must be in the vocabulary. vocab.json +
 * merges.txt: ByteLevel BPE as transformers' GPT2TokenizerFast (add_prefix_space and
 * add_bos_token from tokenizer_config.json, its unk/bos/eos/pad tokens as special added tokens,
 * default "<|endoftext|>"). special_tokens_map.json and added_tokens.json are not read.
 *
 * A loaded tokenizer may be shared by threads calling tok_encode at once: the only state that
 * encoding changes, BPE's word cache, has its own mutex. */
#ifndef ATTNSCOPE_TOKENIZER_H
#define ATTNSCOPE_TOKENIZER_H
#include <stddef.h>
#include <stdint.h>

typedef struct tokenizer tokenizer;

/* Loads the tokenizer of a model directory, or of a tokenizer.json or GGUF file (told apart by
 * the "GGUF" magic) given by its path. NULL with
 * err_set() naming the file on failure (missing directory or files, invalid JSON, wrong types,
 * unsupported components, vocabulary ids repeated or out of range, merges of unknown tokens, a
 * regex that does not compile, no [UNK]/[CLS]/[SEP] for vocab.txt; for a GGUF: a missing or
 * mistyped tokenizer.ggml.* key, an unknown tokenizer.ggml.model or .pre, named). Free with
 * tok_free(). */
tokenizer *tok_load(const char *model_dir);
void tok_free(tokenizer *t);

/* Encodes text[0..len) (valid UTF-8; the caller validates) as the post-processor's template
 * ([CLS] tokens [SEP], <|begin_of_text|> tokens, or tokens alone), truncating the
 * content so that at most max_len ids are written to ids[max_len] (as HF truncation=True, with
 * the special tokens kept). *n_full receives the length before truncation. Returns the number of
 * ids written. If max_len is smaller than the number of special tokens, only the first max_len
 * of [CLS] … [SEP] are written (HF refuses such a length). Invalid UTF-8 bytes read as U+FFFD.
 * Returns -1 with err_set() only for a text over 1 GiB. */
int tok_encode(const tokenizer *t, const char *text, size_t len, int max_len, int32_t *ids, int *n_full);

/* The token string of an id ("[CLS]", "##ing", "Ġthe", "▁the", "<0x0A>"...), or NULL if out of
 * range. Owned by t. */
const char *tok_id_to_token(const tokenizer *t, int32_t id);
/* Number of ids: the model vocabulary plus added tokens past it. */
int32_t tok_vocab_size(const tokenizer *t);
/* Ids of the special tokens; -1 when the vocabulary has none. cls/sep: the first and last
 * special token of the post-processor (so a "<|begin_of_text|> $A" template gives cls = BOS and
 * sep = -1; a byte-level GPT-2 without one gives -1 and -1); pad: padding.pad_id, else "[PAD]"
 * (WordPiece) or "<pad>" (BPE). */
int32_t tok_cls_id(const tokenizer *t);
int32_t tok_sep_id(const tokenizer *t);
int32_t tok_pad_id(const tokenizer *t);
/* The first special token before the sequence (BOS, [CLS]) and the last after it (EOS,
 * [SEP]); -1 when the post-processor adds none. */
int32_t tok_bos_id(const tokenizer *t);
int32_t tok_eos_id(const tokenizer *t);

/* The text a token stands for, NUL-terminated into buf[cap] (cut to cap-1 bytes; cap 0 writes
 * nothing): byte-level tokens decoded to their bytes ("Ġ," -> " ,"; may be part of a UTF-8
 * character), "▁" of Metaspace/Replace as a space, "<0xXX>" byte-fallback tokens as that byte,
 * WordPiece continuations without "##", added tokens as written. Returns its full length in
 * bytes, or (size_t)-1 for an id out of range. */
size_t tok_id_surface(const tokenizer *t, int32_t id, char *buf, size_t cap);
/* What a token is, from its surface form: TOK_SPECIAL (a special added token or one the
 * post-processor inserts; no other bit then), TOK_WORD_START (it begins a word: a leading space
 * in its surface for BPE, no "##" for WordPiece), TOK_PUNCT (after leading spaces, one or more
 * characters all of Unicode category P*). 0 for an id out of range. */
enum { TOK_SPECIAL = 1, TOK_WORD_START = 2, TOK_PUNCT = 4 };
unsigned tok_id_class(const tokenizer *t, int32_t id);
/* A short description for the HDF5 attributes, e.g. "WordPiece (tokenizer.json), lowercase". */
const char *tok_describe(const tokenizer *t);
#endif
