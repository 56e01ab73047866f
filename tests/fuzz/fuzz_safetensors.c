/* fuzz_safetensors.c — one .safetensors file: st_open_file (header length, JSON header, dtypes,
 * shapes, offsets tiling the data), then st_find and st_to_f32 of every tensor as the model
 * loader converts them (F32/F16/BF16; the others must be refused with a message). */
#include "fuzz_common.h"
#include "safetensors.h"
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("model.safetensors", data, size);
    FUZZ_GUARD();
    st_model m;
    if (st_open_file(&m, path)) return 0;
    for (int i = 0; i < m.ntensors; i++) {
        const st_tensor *t = &m.tensors[i];
        if (st_find(&m, t->name) != t) abort();          /* names are unique and sorted */
        if (t->numel > (1 << 20)) continue;              /* nbytes was checked against the file */
        float *out = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *out);
        st_to_f32(t, out);
        free(out);
    }
    st_close(&m);
    return 0;
}
