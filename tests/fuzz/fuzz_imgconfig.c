/* fuzz_imgconfig.c — preprocessor_config.json through imgproc_load (processor class, size and
 * crop_size forms, resample, rescale, mean/std, ConvNeXt's crop_pct), then imgproc_check_size (resized
 * size at most 2^18 pixels), imgproc_output_size and imgproc_run on a fixed 13 x 29 keyed image. */
#include "fuzz_common.h"
#include "imgproc.h"
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("preprocessor_config.json", data, size);
    FUZZ_GUARD();
    imgproc p;
    if (imgproc_load(&p, path)) return 0;
    static uint8_t px[13 * 29 * 3];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(i * 37);
    image_rgb im = {.height = 13, .width = 29, .rgb = px, .has_key = 1, .key = {px[0], px[1], px[2]}};
    int oh, ow;
    if (imgproc_check_size(&p, im.height, im.width, 1 << 18, path)) return 0;
    imgproc_output_size(&p, im.height, im.width, &oh, &ow);
    if (oh < 1 || ow < 1) abort();                 /* a loaded processor always gives an image */
    if ((int64_t)oh * ow <= (1 << 18)) {
        float *out = malloc((size_t)3 * oh * ow * sizeof *out);
        imgproc_run(&p, &im, out);
        free(out);
    }
    return 0;
}
