/* image.h — PNG and JPEG files decoded into 8-bit RGB exactly as Pillow's
 * `numpy.asarray(Image.open(path).convert("RGB"))` gives them: the reference of every image
 * model's input (Hugging Face's image processors get that array, or the PIL image).
 *
 * PNG (libpng), what Pillow 13 does for each colour type and bit depth:
 *   grey 1/2/4/8 bits   scaled to 8 bits (0x55 and 0x11 steps), replicated to R, G, B
 *   grey 16 bits        Pillow's mode "I;16": convert("RGB") CLIPS to 255, it does not scale
 *                       (value 300 -> 255, value 200 -> 200)
 *   grey+alpha, RGB, RGBA (8 or 16 bits)   alpha dropped; 16-bit samples keep their high byte
 *                       (Pillow unpacks "RGB;16B", "RGBA;16B", "LA;16B" that way: truncation)
 *   palette 1/2/4/8 bits   looked up in PLTE; an index past the end of PLTE gives black;
 *                       tRNS (alpha per entry or a colour key) does not change the pixels, as in
 *                       convert("RGB"); the colour key Pillow keeps is reported (has_key)
 *   no gamma, sBIT or colour-profile transform (Pillow applies none); interlaced files decode.
 * JPEG (libjpeg-turbo, the library Pillow's wheels bundle): greyscale (replicated), YCbCr and RGB
 * with libjpeg's defaults, the ones Pillow keeps (islow IDCT, fancy upsampling); CMYK/YCCK JPEGs
 * are refused. EXIF orientation is not applied (Image.open does not apply it either).
 *
 * Untrusted files: a file that is not a regular file is refused before it is read; the header's
 * width x height is checked against max_pixels before any pixel buffer is allocated (Pillow's
 * decompression-bomb rule: an error above 2 x Image.MAX_IMAGE_PIXELS = 178,956,970 pixels, the
 * default here); libpng's and libjpeg's errors become one line naming the file (never an abort).
 * Where this reader is stricter than Pillow, on purpose: a CRC error in any chunk is an error
 * (Pillow checks the CRC of the chunks before the image data and of none inside it; a damaged
 * IDAT is damaged data), and a JPEG that ends before its last scan is an error (Pillow says
 * "image file is truncated" too, unless LOAD_TRUNCATED_IMAGES is set). Chunks after the image
 * data are not read (Pillow ignores a damaged tail there as well). */
#ifndef ATTNSCOPE_IMAGE_H
#define ATTNSCOPE_IMAGE_H
#include <stdint.h>

/* 2 x PIL.Image.MAX_IMAGE_PIXELS (89,478,485): above this Pillow raises DecompressionBombError */
#define IMAGE_MAX_PIXELS_DEFAULT 178956970LL

typedef struct {
    int height, width;
    uint8_t *rgb;   /* (height, width, 3), row-major; owned, image_free releases it */
    /* A PNG colour key that survives convert("RGB") in Pillow's info["transparency"] as an RGB
     * triple: tRNS of an 8-bit (or 2/4-bit: the raw, unscaled value) grey image, of an RGB image
     * (the raw 16-bit values, compared with the 8-bit pixels), or of a palette whose tRNS makes
     * exactly one entry fully transparent and no other partly (that entry's colour). HF's
     * convert_to_rgb (do_convert_rgb, CLIP's default) paints the pixels of that colour white. */
    int has_key;
    uint16_t key[3];
} image_rgb;

/* Decodes the PNG or JPEG file at path (told apart by their signatures, not by the name) into
 * *im. max_pixels <= 0 means IMAGE_MAX_PIXELS_DEFAULT. Returns 0, or -1 with err_set("PATH:
 * <problem>") and *im empty. */
int image_read(const char *path, int64_t max_pixels, image_rgb *im);

/* The height and width of the PNG or JPEG file at path from its header alone (no pixel decoded:
 * what image_read would give, unless the data after the header is damaged), checked as image_read
 * checks them (regular file, signature, max_pixels, no CMYK JPEG). Returns 0, or -1 with
 * err_set("PATH: <problem>"). */
int image_read_size(const char *path, int64_t max_pixels, int *height, int *width);

/* Releases im->rgb and zeroes *im (an empty image is fine). */
void image_free(image_rgb *im);

/* The images of src (preprocess.c): a directory's *.png, *.jpg, *.jpeg files (any case) sorted by
 * name, or a list file's non-empty lines (paths as written). *paths (n strings, each and the
 * array freed by the caller). Returns 0, or -1 with err_set() (nothing to free). */
int image_list(const char *src, char ***paths, int *n);
#endif
