/* fuzz_text.c — a --text corpus through dataset_from_text: line splitting, CRLF, blank lines,
 * UTF-8 validation, NUL bytes, tokenization of each line (the cut-down WordPiece tokenizer of
 * tests/fuzz/data/wordpiece) and truncation, as rank (first byte % 3) of 3 ranks with a max_len
 * from the second byte. */
#include "fuzz_common.h"
#include "dataset.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>

static tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (!(tok = tok_load(fuzz_root("tests/fuzz/data/wordpiece")))) {
        fprintf(stderr, "fuzz_text: %s (set ATTNSCOPE_ROOT to the repository)\n", err_get());
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    const char *path = fuzz_file("corpus.txt", data + 2, size - 2);
    FUZZ_GUARD();
    dataset d;
    if (dataset_from_text(&d, path, tok, 2 + data[1] % 64, data[0] % 3, 3)) return 0;
    for (int i = 0; i < d.n; i++)
        if (d.len[i] > d.max_len || d.len[i] > d.len_full[i] || d.off[i + 1] - d.off[i] != d.len[i]) abort();
    dataset_free(&d);
    return 0;
}
