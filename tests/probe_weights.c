/* probe_weights.c — opens one weight file the way the loaders do, for
 * tests/test_malformed_weights.py (the corpus of tests/fixtures/malformed/).
 *
 *   probe_weights FILE.safetensors   st_open_file, then st_to_f32 of every F32/F16/BF16 tensor
 *   probe_weights FILE.gguf          gguf_open, then gguf_tensor_f32 of every tensor of a type
 *                                    quant.c dequantizes
 *
 * Success: one line "ok: N tensors (M read as float32)" on stdout, exit 0. Failure: the reader's
 * message (err_get) as one line on stderr, exit 1. */
#include "gguf.h"
#include "quant.h"
#include "safetensors.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int probe_safetensors(const char *path)
{
    st_model m;
    if (st_open_file(&m, path) != 0) return -1;
    int read = 0, rc = 0;
    for (int i = 0; i < m.ntensors && rc == 0; i++) {
        const st_tensor *t = &m.tensors[i];
        if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16) continue;
        float *out = xmalloc((size_t)t->numel * sizeof *out + 1);
        rc = st_to_f32(t, out);
        free(out);
        read++;
    }
    if (rc == 0) printf("ok: %d tensors (%d read as float32)\n", m.ntensors, read);
    st_close(&m);
    return rc;
}

static int probe_gguf(const char *path)
{
    gguf_file g;
    if (gguf_open(&g, path) != 0) return -1;
    int read = 0, rc = 0;
    for (int64_t i = 0; i < g.ntensors && rc == 0; i++) {
        const gguf_tensor *t = &g.tensors[i];
        if (!quant_type(t->type)->to_f32) continue;
        float *out = xmalloc((size_t)t->numel * sizeof *out + 1);
        rc = gguf_tensor_f32(&g, t->name, out, (size_t)t->numel);
        free(out);
        read++;
    }
    if (rc == 0) printf("ok: %lld tensors (%d read as float32)\n", (long long)g.ntensors, read);
    gguf_close(&g);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: probe_weights FILE.safetensors|FILE.gguf\n");
        return 2;
    }
    int rc = ends_with(argv[1], ".gguf") ? probe_gguf(argv[1]) : probe_safetensors(argv[1]);
    if (rc != 0) fprintf(stderr, "%s\n", err_get());
    return rc ? 1 : 0;
}
