/* imgproc.c — see imgproc.h. Two halves: Pillow's resampling of 8-bit images (from the facts of
 * Pillow's src/libImaging/Resample.c and Geometry.c: the filters, precompute_coeffs' window and
 * normalisation, 22-bit fixed-point coefficients rounded half away from zero, a 0.5 rounding term
 * and a clip per pass, the order of the two passes as Pillow 13 chooses it), and transformers' processor steps (from
 * image_processing_backends.PilBackend and image_transforms: resize sizes, center_crop, rescale,
 * normalize), each written to reproduce the peer's arithmetic, down to the float/double widths. */
#include "imgproc.h"
#include "jsonutil.h"
#include "util.h"
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* ---- Pillow's resampling ----------------------------------------------------------------------- */

typedef struct {
    double (*fn)(double);
    double support;
} rfilter;

static double f_box(double x) { return x > -0.5 && x <= 0.5 ? 1.0 : 0.0; }
static double f_bilinear(double x) { x = fabs(x); return x < 1.0 ? 1.0 - x : 0.0; }
static double f_hamming(double x)
{
    x = fabs(x);
    if (x == 0.0) return 1.0;
    if (x >= 1.0) return 0.0;
    x *= M_PI;
    return sin(x) / x * (0.54f + 0.46f * cos(x));   /* Pillow's float constants, kept */
}
static double f_bicubic(double x)   /* Keys' cubic with a = -0.5 */
{
    const double a = -0.5;
    x = fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}
static double sinc(double x) { if (x == 0.0) return 1.0; x *= M_PI; return sin(x) / x; }
static double f_lanczos(double x) { return -3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3) : 0.0; }

static const rfilter FILTERS[] = {
    [RESAMPLE_BOX] = {f_box, 0.5}, [RESAMPLE_BILINEAR] = {f_bilinear, 1.0}, [RESAMPLE_HAMMING] = {f_hamming, 1.0},
    [RESAMPLE_BICUBIC] = {f_bicubic, 2.0}, [RESAMPLE_LANCZOS] = {f_lanczos, 3.0},
};

#define PRECISION_BITS 22   /* 32 - 8 - 2: room for the filters' negative lobes and overshoot */

/* The taps of each output position along one axis of in_size -> out_size: bounds[2*o] is the
 * first input index, bounds[2*o+1] the count, k[o*ksize ..] the fixed-point weights. Pillow takes
 * the box edges as float (0.f, (float)in_size), so a side above 2^24 rounds as it does there. */
static int coeffs(int in_size, int out_size, const rfilter *f, int **bounds_out, int32_t **k_out)
{
    const float in0 = 0.f, in1 = (float)in_size;
    const double scale = (double)(in1 - in0) / out_size;
    const double filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = f->support * filterscale;
    const int ksize = (int)ceil(support) * 2 + 1;
    double *w = xmalloc((size_t)ksize * sizeof *w);
    int *bounds = xmalloc((size_t)out_size * 2 * sizeof *bounds);
    int32_t *k = xcalloc((size_t)out_size * ksize, sizeof *k);
    const double inv = 1.0 / filterscale;
    for (int o = 0; o < out_size; o++) {
        const double center = in0 + (o + 0.5) * scale;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double ww = 0.0;
        for (int x = 0; x < xmax; x++) {
            w[x] = f->fn((x + xmin - center + 0.5) * inv);
            ww += w[x];
        }
        for (int x = 0; x < xmax; x++) {
            const double v = ww != 0.0 ? w[x] / ww : w[x];
            k[(size_t)o * ksize + x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS)) : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        bounds[2 * o] = xmin;
        bounds[2 * o + 1] = xmax;
    }
    free(w);
    *bounds_out = bounds;
    *k_out = k;
    return ksize;
}

static inline uint8_t clip8(int32_t ss)
{
    const int32_t v = ss >> PRECISION_BITS;   /* arithmetic shift, as Pillow's table index */
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

/* along x: rows [0, h) of src (stride sw pixels) -> dst (ow pixels a row) */
static void pass_h(const uint8_t *src, int sw, int h, uint8_t *dst, int ow, int ksize, const int *b, const int32_t *k)
{
    for (int y = 0; y < h; y++) {
        const uint8_t *in = src + (size_t)y * sw * 3;
        uint8_t *out = dst + (size_t)y * ow * 3;
        for (int o = 0; o < ow; o++) {
            const int32_t *kk = k + (size_t)o * ksize;
            const uint8_t *p = in + (size_t)b[2 * o] * 3;
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < b[2 * o + 1]; x++, p += 3) {
                s0 += p[0] * kk[x];
                s1 += p[1] * kk[x];
                s2 += p[2] * kk[x];
            }
            out[3 * o] = clip8(s0);
            out[3 * o + 1] = clip8(s1);
            out[3 * o + 2] = clip8(s2);
        }
    }
}

/* along y: src (rows of w pixels) -> dst (oh rows); b's first rows are relative to src's row 0 */
static void pass_v(const uint8_t *src, int w, uint8_t *dst, int oh, int ksize, const int *b, const int32_t *k)
{
    const size_t stride = (size_t)w * 3;
    for (int o = 0; o < oh; o++) {
        const int32_t *kk = k + (size_t)o * ksize;
        uint8_t *out = dst + (size_t)o * stride;
        for (size_t i = 0; i < stride; i++) {
            const uint8_t *p = src + (size_t)b[2 * o] * stride + i;
            int32_t s = 1 << (PRECISION_BITS - 1);
            for (int y = 0; y < b[2 * o + 1]; y++, p += stride) s += *p * kk[y];
            out[i] = clip8(s);
        }
    }
}

/* Pillow's ImagingResampleInner on the whole image. Pillow 13 runs the vertical pass first when
 * the height loses more than twice as many pixels as the width (2 (w - ow) < h - oh; found by
 * experiment against Pillow 13.0.0 on 900 random sizes and every filter, ties horizontal first);
 * Pillow 12 and older always went horizontal first (but for images over 100 times taller than
 * wide), so their results differ by 1 in some pixels of such resizes. Horizontal first, the
 * vertical taps say which source rows the horizontal pass needs. */
static void resample(const uint8_t *src, int h, int w, uint8_t *dst, int oh, int ow, const rfilter *f)
{
    int *bv, *bh;
    int32_t *kv, *kh;
    const int kvs = coeffs(h, oh, f, &bv, &kv);
    const int khs = coeffs(w, ow, f, &bh, &kh);
    if (ow != w && oh < h && 2 * ((int64_t)w - ow) < (int64_t)h - oh) {
        uint8_t *tmp = xmalloc((size_t)oh * w * 3);
        pass_v(src, w, tmp, oh, kvs, bv, kv);
        pass_h(tmp, w, oh, dst, ow, khs, bh, kh);
        free(tmp);
    } else if (ow != w && oh != h) {
        const int first = bv[0], last = bv[2 * (oh - 1)] + bv[2 * (oh - 1) + 1];
        uint8_t *tmp = xmalloc((size_t)(last - first) * ow * 3);
        pass_h(src + (size_t)first * w * 3, w, last - first, tmp, ow, khs, bh, kh);
        for (int o = 0; o < oh; o++) bv[2 * o] -= first;
        pass_v(tmp, ow, dst, oh, kvs, bv, kv);
        free(tmp);
    } else if (ow != w) {
        pass_h(src, w, h, dst, ow, khs, bh, kh);
    } else if (oh != h) {
        pass_v(src, w, dst, oh, kvs, bv, kv);
    } else {
        memcpy(dst, src, (size_t)h * w * 3);
    }
    free(bv); free(kv); free(bh); free(kh);
}

/* Pillow's NEAREST: ImagingScaleAffine, source positions accumulated in double from the centre
 * of the first output pixel */
static void nearest(const uint8_t *src, int h, int w, uint8_t *dst, int oh, int ow)
{
    const double ax = (double)((float)w - 0.f) / ow, ay = (double)((float)h - 0.f) / oh;
    int *xin = xmalloc((size_t)ow * sizeof *xin);
    double xo = ax * 0.5, yo = ay * 0.5;
    for (int x = 0; x < ow; x++, xo += ax) xin[x] = xo < 0.0 ? -1 : (int)xo;
    for (int y = 0; y < oh; y++, yo += ay) {
        const int yi = yo < 0.0 ? -1 : (int)yo;
        uint8_t *out = dst + (size_t)y * ow * 3;
        for (int x = 0; x < ow; x++) {
            if (yi >= 0 && yi < h && xin[x] >= 0 && xin[x] < w) memcpy(out + 3 * x, src + ((size_t)yi * w + xin[x]) * 3, 3);
            else memset(out + 3 * x, 0, 3);
        }
    }
    free(xin);
}

void imgproc_resize(const uint8_t *src, int h, int w, uint8_t *dst, int oh, int ow, int filter)
{
    if (oh == h && ow == w) { memcpy(dst, src, (size_t)h * w * 3); return; }
    if (filter == RESAMPLE_NEAREST) { nearest(src, h, w, dst, oh, ow); return; }
    const rfilter *f = &FILTERS[filter];
    resample(src, h, w, dst, oh, ow, f);
}

/* ---- transformers' processor steps --------------------------------------------------------- */

/* get_resize_output_image_size(default_to_square=False): the short side to s, the long side
 * int(s * long / short) */
static void shortest_edge_size(int h, int w, int s, int *oh, int *ow)
{
    const int shrt = w <= h ? w : h, lng = w <= h ? h : w;
    const double l = (double)((int64_t)s * lng) / shrt;
    const int nl = l < INT_MAX ? (int)l : INT_MAX;   /* an extreme aspect ratio: imgproc_check_size refuses it */
    if (w <= h) { *oh = nl; *ow = s; }
    else { *oh = s; *ow = nl; }
}

/* the size resize gives (rh, rw) and the crop after it (ch, cw; 0 when none) */
static void plan(const imgproc *p, int h, int w, int *rh, int *rw, int *ch, int *cw)
{
    *rh = h; *rw = w; *ch = *cw = 0;
    if (p->do_resize) {
        if (p->kind == IMGPROC_CONVNEXT) {
            if (p->shortest_edge < 384) {
                shortest_edge_size(h, w, (int)(p->shortest_edge / p->crop_pct), rh, rw);
                *ch = *cw = p->shortest_edge;
            } else {
                *rh = *rw = p->shortest_edge;
            }
        } else if (p->shortest_edge) {
            shortest_edge_size(h, w, p->shortest_edge, rh, rw);
        } else {
            *rh = p->size_h; *rw = p->size_w;
        }
    }
}

int imgproc_check_size(const imgproc *p, int h, int w, int64_t max_pixels, const char *file)
{
    int rh, rw, ch, cw;
    plan(p, h, w, &rh, &rw, &ch, &cw);
    if (max_pixels <= 0) max_pixels = IMAGE_MAX_PIXELS_DEFAULT;
    if ((int64_t)rh * rw > max_pixels)
        return err_set("%s: %d x %d pixels would be resized to %d x %d, more than %lld pixels (a size or shortest_edge too "
                       "large for this image's aspect ratio)", file, h, w, rh, rw, (long long)max_pixels);
    return 0;
}

void imgproc_output_size(const imgproc *p, int h, int w, int *oh, int *ow)
{
    int rh, rw, ch, cw;
    plan(p, h, w, &rh, &rw, &ch, &cw);
    if (ch) { rh = ch; rw = cw; }
    if (p->do_center_crop) { rh = p->crop_h; rw = p->crop_w; }
    *oh = rh; *ow = rw;
}

static int floordiv2(int a) { return a >= 0 ? a / 2 : -((-a + 1) / 2); }

/* image_transforms.center_crop: rows from floor((H - ch) / 2) on; outside the image (a crop
 * larger than it) zeros, which is where HF's padded copy puts the image */
static uint8_t *center_crop(const uint8_t *src, int h, int w, int ch, int cw)
{
    uint8_t *dst = xcalloc((size_t)ch * cw * 3, 1);
    const int top = floordiv2(h - ch), left = floordiv2(w - cw);
    for (int y = 0; y < ch; y++) {
        const int sy = y + top;
        if (sy < 0 || sy >= h) continue;
        for (int x = 0; x < cw; x++) {
            const int sx = x + left;
            if (sx >= 0 && sx < w) memcpy(dst + ((size_t)y * cw + x) * 3, src + ((size_t)sy * w + sx) * 3, 3);
        }
    }
    return dst;
}

void imgproc_lut(const imgproc *p, float lut[3 * 256])
{
    for (int c = 0; c < 3; c++) {
        const float mean = (float)p->mean[c], std = (float)p->std[c];
        for (int u = 0; u < 256; u++) {
            /* rescale: float64 multiply, then float32; normalize: float32 subtract and divide */
            float x = p->do_rescale ? (float)((double)u * p->rescale_factor) : (float)u;
            if (p->do_normalize) x = (x - mean) / std;
            lut[c * 256 + u] = x;
        }
    }
}

void imgproc_run(const imgproc *p, const image_rgb *im, float *out)
{
    int oh, ow;
    imgproc_output_size(p, im->height, im->width, &oh, &ow);
    const size_t plane = (size_t)oh * ow;
    uint8_t *u = xmalloc(3 * plane);
    float lut[3 * 256];
    imgproc_run_u8(p, im, u);
    imgproc_lut(p, lut);
    imgproc_map(lut, u, plane, out);
    free(u);
}

void imgproc_map(const float lut[3 * 256], const uint8_t *u, size_t plane, float *out)
{
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < plane; i++) out[c * plane + i] = lut[c * 256 + u[c * plane + i]];
}

void imgproc_run_u8(const imgproc *p, const image_rgb *im, uint8_t *out)
{
    int h = im->height, w = im->width, rh, rw, ch, cw;
    plan(p, h, w, &rh, &rw, &ch, &cw);
    uint8_t *cur = xmalloc((size_t)rh * rw * 3), *keyed = NULL;
    const uint8_t *src = im->rgb;
    if (p->do_convert_rgb && im->has_key) {
        keyed = xmalloc((size_t)h * w * 3);
        memcpy(keyed, im->rgb, (size_t)h * w * 3);
        for (size_t i = 0; i < (size_t)h * w; i++)
            if (keyed[3 * i] == im->key[0] && keyed[3 * i + 1] == im->key[1] && keyed[3 * i + 2] == im->key[2]) memset(keyed + 3 * i, 255, 3);
        src = keyed;
    }
    imgproc_resize(src, h, w, cur, rh, rw, p->resample);
    free(keyed);
    h = rh; w = rw;
    for (int step = 0; step < 2; step++) {   /* ConvNeXt's crop inside resize, then do_center_crop */
        const int th = step ? p->crop_h : ch, tw = step ? p->crop_w : cw;
        if (!(step ? p->do_center_crop : ch > 0)) continue;
        uint8_t *c = center_crop(cur, h, w, th, tw);
        free(cur);
        cur = c; h = th; w = tw;
    }
    const size_t plane = (size_t)h * w;
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < plane; i++) out[c * plane + i] = cur[i * 3 + c];
    free(cur);
}

/* ---- preprocessor_config.json ---------------------------------------------------------------- */

static int get_flag(json_object *o, const char *key, int *v, const char *path)
{
    return json_get_bool(o, key, v, path) < 0 ? -1 : 0;
}

static int get_dim(json_object *o, const char *key, int *v, const char *path)
{
    int64_t x;
    int r = json_get_int(o, key, &x, path);
    if (r < 0) return -1;
    if (r == 0) return err_set("%s: the size needs \"%s\"", path, key);
    if (x < 1 || x > 65536) return err_set("%s: \"%s\" = %lld is out of range [1, 65536]", path, key, (long long)x);
    *v = (int)x;
    return 0;
}

/* a size object: {height, width}, or {shortest_edge} where allow_shortest */
static int size_object(json_object *s, int allow_shortest, int *h, int *w, int *se, const char *what)
{
    int has_hw = 0, has_se = 0;
    json_object_object_foreach(s, k, val) {
        (void)val;
        if (!strcmp(k, "height") || !strcmp(k, "width")) has_hw++;
        else if (!strcmp(k, "shortest_edge")) has_se = 1;
        else return err_set("%s: \"%s\" is not supported (height and width%s)", what, k, allow_shortest ? ", or shortest_edge" : "");
    }
    if (has_se && (!allow_shortest || has_hw)) return err_set("%s: shortest_edge %s", what, has_hw ? "with height/width is ambiguous" : "is not supported here");
    if (has_se) { *h = *w = 0; return get_dim(s, "shortest_edge", se, what); }
    *se = 0;
    return get_dim(s, "height", h, what) || get_dim(s, "width", w, what) ? -1 : 0;
}

/* size / crop_size: an object (size_object), an int or [h, w]. An int is get_size_dict's: a
 * square when square_int, else {shortest_edge}. Absent or null: the class's default stays. */
static int get_size(json_object *o, const char *key, int square_int, int allow_shortest, int *h, int *w, int *se, const char *path)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !v) return 0;
    char what[4200];
    snprintf(what, sizeof what, "%s: \"%s\"", path, key);
    if (json_object_is_type(v, json_type_object)) return size_object(v, allow_shortest, h, w, se, what);
    if (!json_object_is_type(v, json_type_int) && !(json_object_is_type(v, json_type_array) && json_object_array_length(v) == 2))
        return err_set("%s should be an object {\"height\", \"width\"}, an integer or [height, width]", what);
    /* normalised to an object, so that one set of checks applies */
    json_object *t = json_object_new_object();
    if (json_object_is_type(v, json_type_int)) {
        json_object_object_add(t, square_int ? "height" : "shortest_edge", json_object_get(v));
        if (square_int) json_object_object_add(t, "width", json_object_get(v));
    } else {
        json_object_object_add(t, "height", json_object_get(json_object_array_get_idx(v, 0)));
        json_object_object_add(t, "width", json_object_get(json_object_array_get_idx(v, 1)));
    }
    const int rc = size_object(t, allow_shortest, h, w, se, what);
    json_object_put(t);
    return rc;
}

static int get_triple(json_object *o, const char *key, double v[3], int nonzero, const char *path)
{
    json_object *a;
    if (!json_object_object_get_ex(o, key, &a) || !a) return 0;
    if (json_object_is_type(a, json_type_int) || json_object_is_type(a, json_type_double)) {
        v[0] = v[1] = v[2] = json_object_get_double(a);
    } else if (json_object_is_type(a, json_type_array) && json_object_array_length(a) == 3) {
        for (int c = 0; c < 3; c++) {
            json_object *e = json_object_array_get_idx(a, c);
            if (!json_object_is_type(e, json_type_int) && !json_object_is_type(e, json_type_double))
                return err_set("%s: \"%s\"[%d] should be a number", path, key, c);
            v[c] = json_object_get_double(e);
        }
    } else {
        return err_set("%s: \"%s\" should be a number or a list of 3 (one per channel)", path, key);
    }
    for (int c = 0; c < 3; c++)
        if (!isfinite(v[c]) || (nonzero && v[c] == 0.0)) return err_set("%s: \"%s\"[%d] = %g is not %s", path, key, c, v[c], nonzero ? "finite and non-zero" : "finite");
    return 0;
}

/* the class, from image_processor_type (its Fast/Pil variants too) or feature_extractor_type */
static int find_kind(json_object *o, imgproc *p, const char *path)
{
    static const struct { const char *prefix; imgproc_kind kind; } classes[] = {
        {"ViT", IMGPROC_VIT}, {"DeiT", IMGPROC_DEIT}, {"CLIP", IMGPROC_CLIP}, {"ConvNext", IMGPROC_CONVNEXT}};
    const char *t = NULL;
    if (json_get_string(o, "image_processor_type", &t, path) < 0) return -1;
    if (!t && json_get_string(o, "feature_extractor_type", &t, path) < 0) return -1;
    if (!t) return err_set("%s: no \"image_processor_type\" (nor \"feature_extractor_type\")", path);
    snprintf(p->type, sizeof p->type, "%s", t);
    for (size_t i = 0; i < sizeof classes / sizeof *classes; i++) {
        const size_t n = strlen(classes[i].prefix);
        const char *rest = t + n;
        if (strncmp(t, classes[i].prefix, n)) continue;
        if (!strcmp(rest, "ImageProcessor") || !strcmp(rest, "ImageProcessorFast") || !strcmp(rest, "ImageProcessorPil") ||
            !strcmp(rest, "FeatureExtractor")) {
            p->kind = classes[i].kind;
            return 0;
        }
    }
    return err_set("%s: image processor \"%s\" is not supported (ViT, DeiT, CLIP and ConvNext image processors; ResNet's is ConvNext's)", path, t);
}

/* the class attributes of transformers' *ImageProcessorPil */
static void class_defaults(imgproc *p)
{
    static const double STANDARD[3] = {0.5, 0.5, 0.5};
    static const double CLIP_MEAN[3] = {0.48145466, 0.4578275, 0.40821073}, CLIP_STD[3] = {0.26862954, 0.26130258, 0.27577711};
    p->do_resize = p->do_rescale = p->do_normalize = 1;
    p->rescale_factor = 1.0 / 255;
    p->crop_pct = 224.0 / 256;
    memcpy(p->mean, STANDARD, sizeof STANDARD);
    memcpy(p->std, STANDARD, sizeof STANDARD);
    switch (p->kind) {
    case IMGPROC_VIT: p->size_h = p->size_w = 224; p->resample = RESAMPLE_BILINEAR; break;
    case IMGPROC_DEIT: p->size_h = p->size_w = 256; p->crop_h = p->crop_w = 224; p->do_center_crop = 1; p->resample = RESAMPLE_BICUBIC; break;
    case IMGPROC_CLIP:
        p->shortest_edge = 224; p->crop_h = p->crop_w = 224; p->do_center_crop = 1; p->resample = RESAMPLE_BICUBIC;
        p->do_convert_rgb = 1;
        memcpy(p->mean, CLIP_MEAN, sizeof CLIP_MEAN);
        memcpy(p->std, CLIP_STD, sizeof CLIP_STD);
        break;
    case IMGPROC_CONVNEXT: p->shortest_edge = 384; p->resample = RESAMPLE_BICUBIC; break;
    }
}

int imgproc_load(imgproc *p, const char *path)
{
    memset(p, 0, sizeof *p);
    char file[4096];
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) snprintf(file, sizeof file, "%s/preprocessor_config.json", path);
    else snprintf(file, sizeof file, "%s", path);
    json_object *o = json_parse_file(file, 1 << 20);
    if (!o) return -1;
    int rc = -1;
    if (!json_object_is_type(o, json_type_object)) { err_set("%s: not a JSON object", file); goto done; }
    if (find_kind(o, p, file)) goto done;
    class_defaults(p);
    /* ViT and DeiT read an integer size as a square, CLIP and ConvNeXt as the shortest edge */
    const int square_int = p->kind == IMGPROC_VIT || p->kind == IMGPROC_DEIT;
    int64_t resample = p->resample;
    int cropped = p->do_center_crop, dummy;
    if (get_flag(o, "do_resize", &p->do_resize, file) || get_flag(o, "do_center_crop", &cropped, file) ||
        get_flag(o, "do_rescale", &p->do_rescale, file) || get_flag(o, "do_normalize", &p->do_normalize, file) ||
        get_flag(o, "do_convert_rgb", &p->do_convert_rgb, file) ||
        get_size(o, "size", square_int, 1, &p->size_h, &p->size_w, &p->shortest_edge, file) ||
        get_size(o, "crop_size", 1, 0, &p->crop_h, &p->crop_w, &dummy, file) ||
        json_get_int(o, "resample", &resample, file) < 0 || json_get_double(o, "rescale_factor", &p->rescale_factor, file) < 0 ||
        json_get_double(o, "crop_pct", &p->crop_pct, file) < 0 ||
        get_triple(o, "image_mean", p->mean, 0, file) || get_triple(o, "image_std", p->std, 1, file))
        goto done;
    p->do_center_crop = cropped;
    if (resample < 0 || resample > 5) { err_set("%s: \"resample\" = %lld is not a PIL filter (0 to 5)", file, (long long)resample); goto done; }
    p->resample = (int)resample;
    if (!(isfinite(p->rescale_factor) && p->rescale_factor > 0)) { err_set("%s: \"rescale_factor\" = %g should be a positive number", file, p->rescale_factor); goto done; }
    if (p->kind == IMGPROC_CONVNEXT) {
        if (!p->shortest_edge) { err_set("%s: ConvNext's \"size\" needs \"shortest_edge\"", file); goto done; }
        if (!(p->crop_pct > 0 && p->crop_pct <= 1)) { err_set("%s: \"crop_pct\" = %g is not in (0, 1]", file, p->crop_pct); goto done; }
        if (p->shortest_edge < 384 && p->shortest_edge / p->crop_pct > 65536) { err_set("%s: shortest_edge / crop_pct is too large", file); goto done; }
    }
    if (p->do_center_crop && !p->crop_h) { err_set("%s: do_center_crop without \"crop_size\"", file); goto done; }
    int pad = 0;
    if (get_flag(o, "do_pad", &pad, file)) goto done;
    if (pad) { err_set("%s: \"do_pad\": true is not supported", file); goto done; }
    rc = 0;
done:
    json_object_put(o);
    return rc;
}
