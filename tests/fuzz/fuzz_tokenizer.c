/* fuzz_tokenizer.c — a model directory holding one tokenizer.json: tok_load (the JSON, the model,
 * normalizers, pre-tokenizers with their PCRE2 regexes, post-processor, added tokens), then an
 * encoding of a fixed sentence and the id accessors over the whole vocabulary's first ids. */
#include "fuzz_common.h"
#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_file("tokenizer.json", data, size);
    FUZZ_GUARD();
    tokenizer *t = tok_load(fuzz_dir());
    if (!t) return 0;
    static const char text[] = "Hello, World! [MASK] <|endoftext|> na\xc3\xafve caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87  12345 ok?";
    int32_t ids[256]; int n_full;
    tok_encode(t, text, sizeof text - 1, 256, ids, &n_full);
    tok_encode(t, text, sizeof text - 1, 3, ids, &n_full);
    char buf[64];
    for (int32_t id = 0; id < tok_vocab_size(t) && id < 512; id++) {
        tok_id_surface(t, id, buf, sizeof buf);
        tok_id_class(t, id);
    }
    tok_describe(t);
    tok_free(t);
    return 0;
}
