/* fuzz_encode.c — tok_encode of fuzzed text (any bytes: invalid UTF-8 reads as U+FFFD) with fixed
 * tokenizers: WordPiece (all-MiniLM-L6-v2's, cut down: tests/fuzz/data/wordpiece), byte-level BPE
 * (GPT-2, Llama-3 and Qwen2 styles), Metaspace BPE with byte fallback (Llama-2), CLIP's, and the
 * SentencePiece vocabulary of a GGUF file. The first byte picks the tokenizer and max_len. */
#include "fuzz_common.h"
#include "tokenizer.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>

static const char *const paths[] = {
    "tests/fuzz/data/wordpiece", "tests/fixtures/bpe/gpt2", "tests/fixtures/bpe/llama3", "tests/fixtures/bpe/qwen2",
    "tests/fixtures/bpe/llama2", "tests/fixtures/bpe/clip", "tests/fixtures/bpe/norm_mix", "tests/fixtures/gguf_tok/tiny_spm.gguf",
};
enum { NTOK = sizeof paths / sizeof *paths };
static tokenizer *toks[NTOK];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    for (int i = 0; i < NTOK; i++)
        if (!(toks[i] = tok_load(fuzz_root(paths[i])))) {
            fprintf(stderr, "fuzz_encode: %s (set ATTNSCOPE_ROOT to the repository)\n", err_get());
            abort();
        }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    FUZZ_GUARD();
    const tokenizer *t = toks[data[0] % NTOK];
    const int max_len = data[0] & 0x80 ? 4 : 512;
    int32_t *ids = malloc(512 * sizeof *ids);
    int n_full;
    const int n = tok_encode(t, (const char *)data + 1, size - 1, max_len, ids, &n_full);
    char buf[32];
    for (int i = 0; i < n; i++)
        if (tok_id_surface(t, ids[i], buf, sizeof buf) == (size_t)-1) abort();   /* ids are in range */
    free(ids);
    return 0;
}
