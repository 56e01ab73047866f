/* imgproc.h — Hugging Face's slow (PIL-based) image processors, from a model directory's
 * preprocessor_config.json: ViTImageProcessor, DeiTImageProcessor, CLIPImageProcessor and
 * ConvNextImageProcessor (the one ResNet checkpoints name). Given the RGB image of image.h they
 * give the pixel_values of `processor(images=Image.open(path).convert("RGB"))` with
 * backend="pil" (transformers 5; use_fast=False before it), bit for bit:
 *
 *   convert_rgb  with do_convert_rgb, a colour-keyed PNG's key pixels become white (image.h)
 *   resize       Pillow's Image.resize on the uint8 image (imgproc_resize: its fixed-point
 *                separable filters, antialiased when shrinking, the two passes in Pillow 13's
 *                order: vertical first when the height loses more than twice the pixels the
 *                width does, else horizontal first);
 *                the target size as transformers computes it (size {height, width}; shortest_edge
 *                with int() truncation of the long side; ConvNeXt's shortest_edge / crop_pct then
 *                a centre crop below 384, a square warp from 384 on)
 *   centre crop  top = (H - crop_h) // 2 (floor, so odd margins put the extra row at the bottom);
 *                a crop larger than the image pads with zeros (before rescaling, as HF does)
 *   rescale      float32(float64(u8) * rescale_factor)            (not fused with normalize)
 *   normalize    (x - float32(mean)) / float32(std) in float32
 *
 * The fast (torchvision) processors that transformers 5's AutoImageProcessor picks by default
 * differ from these by up to ~0.018 on the fixtures (their resize is torch's antialiased float
 * interpolation, then rounded): README says more. Keys of the config that these processors do not
 * use are ignored; a key they use is checked for type and range, and a setting we do not
 * implement (padding, longest_edge, an unknown processor) is an error rather than a silent
 * difference. */
#ifndef ATTNSCOPE_IMGPROC_H
#define ATTNSCOPE_IMGPROC_H
#include "image.h"
#include <stddef.h>
#include <stdint.h>

/* PIL's resampling filters, numbered as PIL.Image.Resampling (the "resample" key) */
enum { RESAMPLE_NEAREST = 0, RESAMPLE_LANCZOS = 1, RESAMPLE_BILINEAR = 2, RESAMPLE_BICUBIC = 3,
       RESAMPLE_BOX = 4, RESAMPLE_HAMMING = 5 };

typedef enum { IMGPROC_VIT, IMGPROC_DEIT, IMGPROC_CLIP, IMGPROC_CONVNEXT } imgproc_kind;

typedef struct {
    imgproc_kind kind;
    char type[64];          /* the class as the file names it ("ViTImageProcessor") */
    int do_resize, do_center_crop, do_rescale, do_normalize;
    int do_convert_rgb;     /* paints a PNG's colour-key pixels white (image_rgb.has_key), as HF's
                             * convert_to_rgb composites the transparent pixels onto white */
    int size_h, size_w;     /* size {height, width}; both 0 when size is {shortest_edge} */
    int shortest_edge;      /* size {shortest_edge}; 0 when size is {height, width} */
    int resample;           /* RESAMPLE_* */
    int crop_h, crop_w;
    double crop_pct;        /* ConvNeXt only */
    double rescale_factor;
    double mean[3], std[3];
} imgproc;

/* Reads DIR/preprocessor_config.json (or the file itself when path names a file): the class's
 * defaults, then the file's keys. Returns 0, or -1 with err_set("PATH: <key>: <problem>"). */
int imgproc_load(imgproc *p, const char *path);

/* 0 when an image of h x w can be processed; -1 with err_set("FILE: <problem>") when the resize
 * would make more than max_pixels pixels (<= 0: IMAGE_MAX_PIXELS_DEFAULT, image_read's limit): a
 * large size or shortest_edge and an extreme aspect ratio (a 300 x 4 image with shortest_edge
 * 65536 would take a terabyte). Call it before imgproc_output_size and imgproc_run on an untrusted
 * image or processor. */
int imgproc_check_size(const imgproc *p, int h, int w, int64_t max_pixels, const char *file);

/* The (height, width) of the pixel_values of an image of h x w. */
void imgproc_output_size(const imgproc *p, int h, int w, int *oh, int *ow);

/* pixel_values (3, oh, ow) float32 of one image (oh, ow from imgproc_output_size) into out. */
void imgproc_run(const imgproc *p, const image_rgb *im, float *out);
/* The same in two steps: the image resized and cropped, (3, oh, ow) 8-bit (channel planes), then
 * value u of channel c rescaled and normalized as lut[c·256 + u]: imgproc_run's out[c][i] is
 * lut[c·256 + u8[c][i]] bit for bit (a device maps the 8-bit planes, a quarter of the bytes). */
void imgproc_run_u8(const imgproc *p, const image_rgb *im, uint8_t *out);
void imgproc_lut(const imgproc *p, float lut[3 * 256]);
/* out[c][i] = lut[c·256 + u[c][i]] for the 3 planes of plane values each of one image */
void imgproc_map(const float lut[3 * 256], const uint8_t *u, size_t plane, float *out);

/* Pillow's Image.resize((ow, oh), resample) of an 8-bit RGB image: src (h, w, 3) to dst
 * (oh, ow, 3), both sizes >= 1, filter a RESAMPLE_* value. */
void imgproc_resize(const uint8_t *src, int h, int w, uint8_t *dst, int oh, int ow, int filter);
#endif
