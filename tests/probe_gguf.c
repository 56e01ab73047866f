/* probe_gguf.c — exposes the GGUF reader to tests/test_gguf_smollm2.py, which compares it with
 * gguf-py (the peer) on a real checkpoint. Exit 1 with the reader's message on any error.
 *
 *   probe_gguf FILE kv          every key: "key<TAB>type<TAB>is_array<TAB>n<TAB>value" where value is
 *                               a scalar in decimal (floats %.9g / %.17g, bool 0/1, strings in hex)
 *                               and, for arrays, the FNV-1a 64 hash of the elements' bytes (strings:
 *                               each as its uint64 length then its bytes)
 *   probe_gguf FILE summary     what a llama loader reads, through the typed getters
 *   probe_gguf FILE list        every tensor: "name<TAB>type<TAB>ne0 ne1 ne2 ne3<TAB>offset<TAB>nbytes"
 *   probe_gguf FILE f32 NAME... the tensors dequantized, float32 concatenated on stdout
 *   probe_gguf FILE unpermute HEADS NAME   one [rows, cols] tensor, dequantized then gguf_unpermute_qk */
#include "gguf.h"
#include "quant.h"
#include "util.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static void print_kv(const gguf_kv *kv)
{
    printf("%s\t%s\t%d\t%" PRIu64 "\t", kv->key, gguf_vtype_name(kv->type), kv->is_array, kv->n);
    if (kv->is_array) {
        uint64_t h = 0xcbf29ce484222325ull;
        static const int size[] = { 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8 };
        if (kv->type == GGUF_STRING)
            for (uint64_t i = 0; i < kv->n; i++) {
                unsigned char len[8];
                for (int k = 0; k < 8; k++) len[k] = (unsigned char)(kv->str_lens[i] >> 8 * k);
                h = fnv(fnv(h, len, 8), kv->strs[i], (size_t)kv->str_lens[i]);
            }
        else h = fnv(h, kv->data, (size_t)(kv->n * (uint64_t)size[kv->type]));
        printf("%016" PRIx64 "\n", h);
        return;
    }
    const void *d = kv->data;
    uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32; uint64_t u64; int64_t i64;
    float f; double df;
    switch (kv->type) {
    case GGUF_UINT8: memcpy(&u8, d, 1); printf("%u\n", u8); break;
    case GGUF_INT8: memcpy(&i8, d, 1); printf("%d\n", i8); break;
    case GGUF_UINT16: memcpy(&u16, d, 2); printf("%u\n", u16); break;
    case GGUF_INT16: memcpy(&i16, d, 2); printf("%d\n", i16); break;
    case GGUF_UINT32: memcpy(&u32, d, 4); printf("%" PRIu32 "\n", u32); break;
    case GGUF_INT32: memcpy(&i32, d, 4); printf("%" PRId32 "\n", i32); break;
    case GGUF_UINT64: memcpy(&u64, d, 8); printf("%" PRIu64 "\n", u64); break;
    case GGUF_INT64: memcpy(&i64, d, 8); printf("%" PRId64 "\n", i64); break;
    case GGUF_FLOAT32: memcpy(&f, d, 4); printf("%.9g\n", f); break;
    case GGUF_FLOAT64: memcpy(&df, d, 8); printf("%.17g\n", df); break;
    case GGUF_BOOL: printf("%d\n", *(const unsigned char *)d); break;
    case GGUF_STRING:
        for (uint64_t i = 0; i < kv->str_lens[0]; i++) printf("%02x", (unsigned char)kv->strs[0][i]);
        printf("\n");
        break;
    default: printf("?\n");
    }
}

static int summary(const gguf_file *g)
{
    const char *arch;
    if (gguf_get_str(g, "general.architecture", &arch, NULL) != 0) return -1;
    printf("architecture\t%s\n", arch);
    static const char *u32keys[] = { "block_count", "context_length", "embedding_length", "feed_forward_length",
                                     "attention.head_count", "attention.head_count_kv", "rope.dimension_count",
                                     "vocab_size" };
    char key[128];
    for (size_t i = 0; i < sizeof u32keys / sizeof u32keys[0]; i++) {
        uint32_t v;
        snprintf(key, sizeof key, "%s.%s", arch, u32keys[i]);
        if (gguf_get_u32(g, key, &v) != 0) return -1;
        printf("%s\t%" PRIu32 "\n", key, v);
    }
    static const char *f32keys[] = { "rope.freq_base", "attention.layer_norm_rms_epsilon" };
    for (size_t i = 0; i < 2; i++) {
        float v;
        snprintf(key, sizeof key, "%s.%s", arch, f32keys[i]);
        if (gguf_get_f32(g, key, &v) != 0) return -1;
        printf("%s\t%.9g\n", key, v);
    }
    char *const *toks, *const *merges;
    uint64_t ntok, nmerge;
    const char *model;
    uint32_t bos, eos;
    int add_bos;
    if (gguf_get_str(g, "tokenizer.ggml.model", &model, NULL) != 0
        || gguf_get_str_array(g, "tokenizer.ggml.tokens", &toks, NULL, &ntok) != 0
        || gguf_get_str_array(g, "tokenizer.ggml.merges", &merges, NULL, &nmerge) != 0
        || gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &bos) != 0
        || gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &eos) != 0
        || gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos) != 0)
        return -1;
    const gguf_kv *tt = gguf_find_kv(g, "tokenizer.ggml.token_type");
    if (!tt) return err_set("%s: no tokenizer.ggml.token_type", g->path);
    int32_t *types = xmalloc((size_t)tt->n * sizeof *types + 1);
    int rc = gguf_get_i32_array(g, "tokenizer.ggml.token_type", types, tt->n);
    int64_t normal = 0;
    for (uint64_t i = 0; rc == 0 && i < tt->n; i++) normal += types[i] == 1;
    free(types);
    if (rc != 0) return -1;
    printf("tokenizer.ggml.model\t%s\ntokens\t%" PRIu64 "\nmerges\t%" PRIu64 "\ntoken_type\t%" PRIu64
           "\ntoken_type_normal\t%" PRId64 "\nbos\t%" PRIu32 " %s\neos\t%" PRIu32 " %s\nadd_bos\t%d\nmerge0\t%s\n",
           model, ntok, nmerge, tt->n, normal, bos, bos < ntok ? toks[bos] : "?", eos, eos < ntok ? toks[eos] : "?",
           add_bos, nmerge ? merges[0] : "");
    printf("tensors\t%" PRId64 "\nalignment\t%" PRIu32 "\nversion\t%" PRIu32 "\n", g->ntensors, g->alignment, g->version);
    return 0;
}

static int dump(const gguf_file *g, const char *name, int heads)
{
    const gguf_tensor *t = gguf_find_tensor(g, name);
    if (!t) return err_set("%s: no tensor \"%s\"", g->path, name);
    float *out = xmalloc((size_t)t->numel * sizeof *out + 1);
    int rc = gguf_tensor_f32(g, name, out, (size_t)t->numel);
    if (rc == 0 && heads > 0 && t->ne[0] > 0) rc = gguf_unpermute_qk(out, heads, (int)(t->numel / t->ne[0]), (int)t->ne[0]);
    if (rc == 0 && fwrite(out, sizeof *out, (size_t)t->numel, stdout) != (size_t)t->numel) rc = err_set("stdout: write error");
    free(out);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: probe_gguf FILE kv|summary|list|f32 NAME...|unpermute HEADS NAME\n");
        return 2;
    }
    gguf_file g;
    if (gguf_open(&g, argv[1]) != 0) { fprintf(stderr, "%s\n", err_get()); return 1; }
    int rc = 0;
    const char *mode = argv[2];
    if (strcmp(mode, "kv") == 0)
        for (int64_t i = 0; i < g.nkv; i++) print_kv(&g.kv[i]);
    else if (strcmp(mode, "summary") == 0) rc = summary(&g);
    else if (strcmp(mode, "list") == 0)
        for (int64_t i = 0; i < g.ntensors; i++) {
            const gguf_tensor *t = &g.tensors[i];
            printf("%s\t%s\t%" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 "\t%" PRIu64 "\t%" PRIu64 "\n", t->name,
                   quant_type(t->type)->name, t->ne[0], t->ne[1], t->ne[2], t->ne[3], t->offset, t->nbytes);
        }
    else if (strcmp(mode, "f32") == 0)
        for (int i = 3; i < argc && rc == 0; i++) rc = dump(&g, argv[i], 0);
    else if (strcmp(mode, "unpermute") == 0 && argc == 5) rc = dump(&g, argv[4], atoi(argv[3]));
    else rc = err_set("unknown mode %s", mode);
    if (rc != 0) fprintf(stderr, "%s\n", err_get());
    gguf_close(&g);
    return rc ? 1 : 0;
}
