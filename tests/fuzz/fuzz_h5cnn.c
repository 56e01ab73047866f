/* fuzz_h5cnn.c — `attnscope reduce` of a CNN run, structure-aware (h5build.h): /cnn and its
 * stage groups with fuzzed attributes (n_stages, channels, height, width, image_height,
 * image_width), /cnn/stage_S/mean and /features of fuzzed types, shapes, layouts and values,
 * through reduce_cnn (the top images and means written into a copy renamed over the file; the
 * figures too when the first byte is odd), k and the number of figure images from the first byte. */
#include "fuzz_common.h"
#include "h5build.h"
#include "report.h"
#include "util.h"
#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"/cnn", "/cnn/stage_0", "/cnn/stage_0/mean", "/cnn/stage_0/features",
                                        "/cnn/stage_1", "/cnn/stage_1/mean", "/cnn/stage_1/features", "/images/pixels"};
    static const char *const attrs[] = {"n_stages", "channels", "height", "width", "image_height", "image_width"};
    if (size < 1) return 0;
    char path[256], dir[256];
    snprintf(path, sizeof path, "%s/cnn.h5", fuzz_dir());
    snprintf(dir, sizeof dir, "%s/figures", fuzz_dir());
    if (h5build(path, names, 8, attrs, 6, data + 1, size - 1)) return 0;
    FUZZ_GUARD();
    if (reduce_cnn(path, data[0] & 1 ? dir : NULL, 1 + (data[0] >> 1) % 8, (data[0] >> 4) % 4) && getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "refused: %s\n", err_get());
    return 0;
}
