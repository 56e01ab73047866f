/* fuzz_h5input.c — run's --input files, structure-aware (h5build.h): /input_ids,
 * /attention_mask, /token_type_ids and /pixel_values of fuzzed types, shapes, layouts and values
 * through dataset_from_h5 (vocabulary 40, 2 token types, max_len and rank of 2 from the first
 * byte) and dataset_from_pixels_h5 (3 channels, patch 2, one prefix token; a uint8 /pixel_values
 * with the vit_32 fixture processor) with dataset_pixels_range and dataset_pixels_raw of its first
 * images. */
#include "fuzz_common.h"
#include "h5build.h"
#include "dataset.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"/input_ids", "/attention_mask", "/token_type_ids", "/pixel_values"};
    if (size < 1) return 0;
    char path[256];
    snprintf(path, sizeof path, "%s/input.h5", fuzz_dir());
    if (h5build(path, names, 4, NULL, 0, data + 1, size - 1)) return 0;
    FUZZ_GUARD();
    dataset d;
    const int ids = dataset_from_h5(&d, path, 1 + data[0] % 16, 40, 2, data[0] >> 7, 2);
    if (ids && getenv("FUZZ_VERBOSE")) fprintf(stderr, "ids refused: %s\n", err_get());
    if (!ids) {
        for (int i = 0; i < d.n; i++) if (d.len[i] > d.max_len || d.ids[d.off[i]] >= 40) abort();
        dataset_free(&d);
    }
    const int px = dataset_from_pixels_h5(&d, path, fuzz_root("tests/fixtures/images/pp/vit_32"), 3, 2, 1, 0, 1);
    if (px && getenv("FUZZ_VERBOSE")) fprintf(stderr, "pixels refused: %s\n", err_get());
    if (!px) {
        const int n = d.n < 2 ? d.n : 2;
        if ((int64_t)d.height * d.width <= 4096 && n > 0) {
            float *out = malloc((size_t)n * 3 * d.height * d.width * sizeof *out);
            dataset_pixels_range(&d, 0, n, out);
            const int idx[2] = {0, n - 1};
            void *raw = malloc((size_t)n * dataset_pixel_bytes(&d));
            dataset_pixels_raw(&d, idx, n, raw);
            free(raw);
            free(out);
        }
        dataset_free(&d);
    }
    return 0;
}
