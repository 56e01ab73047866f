/* fuzz_config.c — a model directory's config.json through config_load (model_type to the family
 * row, every size and its consistency checks, activations, rotary scaling, sliding windows, the
 * text and vision towers of a CLIP checkpoint); the last byte picks the tower asked for. */
#include "fuzz_common.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_file("config.json", data, size);
    FUZZ_GUARD();
    model_config c;
    if (config_load(&c, fuzz_dir(), size ? data[size - 1] % 3 : TOWER_ANY)) return 0;
    float inv[4096];
    if (c.head_dim > 0 && c.head_dim <= 8192 && c.arch) config_rope_inv_freq(&c, 4096, inv);
    config_free(&c);
    return 0;
}
