/* fuzz_gguf.c — one GGUF file as the model loader reads it: gguf_open (header, metadata, tensor
 * infos), every typed getter on every key, config_load_gguf (llama.cpp's hyper-parameter keys),
 * the GGUF tokenizer (tok_load of tokenizer.ggml.*), and gguf_tensor_f32 of the small tensors
 * (dequantization of every ggml type). */
#include "fuzz_common.h"
#include "config.h"
#include "gguf.h"
#include "tokenizer.h"
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("model.gguf", data, size);
    FUZZ_GUARD();
    gguf_file g;
    if (gguf_open(&g, path)) return 0;
    for (int64_t i = 0; i < g.nkv; i++) {
        const gguf_kv *kv = &g.kv[i];
        uint32_t u; int32_t s; float f; int b; const char *str; uint64_t n;
        char *const *strs; const uint64_t *lens;
        gguf_get_u32(&g, kv->key, &u); gguf_get_i32(&g, kv->key, &s); gguf_get_f32(&g, kv->key, &f);
        gguf_get_bool(&g, kv->key, &b); gguf_get_str(&g, kv->key, &str, &n);
        gguf_get_str_array(&g, kv->key, &strs, &lens, &n);
        if (kv->is_array && kv->n <= 4096) {
            int32_t *a = malloc((kv->n ? kv->n : 1) * sizeof *a);
            gguf_get_u32_array(&g, kv->key, (uint32_t *)a, kv->n);
            gguf_get_i32_array(&g, kv->key, a, kv->n);
            free(a);
        }
    }
    model_config c;
    if (!config_load_gguf(&c, &g)) config_free(&c);
    for (int64_t i = 0; i < g.ntensors; i++) {
        const gguf_tensor *t = &g.tensors[i];
        if (gguf_find_tensor(&g, t->name) != t || t->numel > (1 << 16)) continue;
        float *out = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *out);
        gguf_tensor_f32(&g, t->name, out, (size_t)t->numel);
        free(out);
    }
    gguf_close(&g);
    tokenizer *tok = tok_load(path);
    if (tok) {
        int32_t ids[64]; int n_full;
        tok_encode(tok, "Hello, world! 123 \xc3\xa9t\xc3\xa9", 19, 64, ids, &n_full);
        tok_free(tok);
    }
    return 0;
}
