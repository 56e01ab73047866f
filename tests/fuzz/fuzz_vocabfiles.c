/* fuzz_vocabfiles.c — the tokenizer files of checkpoints without a tokenizer.json: vocab.txt
 * (BERT's WordPiece) or vocab.json + merges.txt (GPT-2's byte-level BPE), each with an optional
 * tokenizer_config.json, through tok_load of their directory, then tok_encode of a fixed text.
 * Byte 0 picks the kind (even: vocab.txt); the rest is cut at NUL bytes into the files in that
 * order (vocab.txt may hold no NUL: the loader refuses it anyway). */
#include "fuzz_common.h"
#include "tokenizer.h"
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[2][3] = {{"vocab.txt", "tokenizer_config.json", NULL},
                                           {"vocab.json", "merges.txt", "tokenizer_config.json"}};
    static const char *const all[] = {"vocab.txt", "vocab.json", "merges.txt", "tokenizer_config.json"};
    if (size < 1) return 0;
    char path[256];
    for (int i = 0; i < 4; i++) { snprintf(path, sizeof path, "%s/%s", fuzz_dir(), all[i]); unlink(path); }
    const char *const *want = names[data[0] & 1];
    const uint8_t *p = data + 1, *end = data + size;
    for (int i = 0; i < 3 && want[i] && p <= end; i++) {
        const uint8_t *z = memchr(p, 0, (size_t)(end - p));
        const uint8_t *e = z ? z : end;
        fuzz_file(want[i], p, (size_t)(e - p));
        p = e + 1;
    }
    FUZZ_GUARD();
    tokenizer *t = tok_load(fuzz_dir());
    if (!t) return 0;
    static const char text[] = "Hello, World! [MASK] <|endoftext|> na\xc3\xafve \xe4\xb8\xad\xe6\x96\x87 12345";
    int32_t ids[128]; int n_full;
    tok_encode(t, text, sizeof text - 1, 128, ids, &n_full);
    tok_free(t);
    return 0;
}
