/* fuzz_image.c — PNG and JPEG bytes: image_read_size and image_read (libpng / libjpeg through our
 * error handling, colour types, bit depths, palettes, colour keys) with a max_pixels limit of 2^18,
 * then HF's preprocessing of a decoded image (imgproc_run of a CLIP or ViT processor: convert_rgb,
 * Pillow's resize, crop, rescale, normalize), which the last byte of the file chooses. */
#include "fuzz_common.h"
#include "image.h"
#include "imgproc.h"
#include <stdio.h>
#include <stdlib.h>

static imgproc pp[2];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (imgproc_load(&pp[0], fuzz_root("tests/fixtures/images/pp/clip")) ||
        imgproc_load(&pp[1], fuzz_root("tests/fixtures/images/pp/vit_32"))) {
        fprintf(stderr, "fuzz_image: %s (set ATTNSCOPE_ROOT to the repository)\n", fuzz_root(""));
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("image", data, size);
    FUZZ_GUARD();
    int h, w;
    image_rgb im;
    image_read_size(path, 1 << 18, &h, &w);
    if (image_read(path, 1 << 18, &im)) return 0;
    const imgproc *p = &pp[(size ? data[size - 1] : 0) & 1];
    int oh, ow;
    if (!imgproc_check_size(p, im.height, im.width, 1 << 18, path)) {
        imgproc_output_size(p, im.height, im.width, &oh, &ow);
        float *out = malloc((size_t)3 * oh * ow * sizeof *out);
        imgproc_run(p, &im, out);
        free(out);
    }
    image_free(&im);
    return 0;
}
