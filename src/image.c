/* image.c — see image.h. One decoder per format; both fill an image_rgb row by row through the
 * conversion that Pillow's convert("RGB") makes for the file's mode. Library errors reach us
 * through an error callback that longjmps back to the decoder; everything allocated after the
 * setjmp hangs off a heap context (never a local changed after setjmp), so the error path frees it. */
#include "image.h"
#include "util.h"
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>   /* before jpeglib.h, which uses FILE */
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>
#include <string.h>
#include <sys/stat.h>

void image_free(image_rgb *im)
{
    free(im->rgb);
    memset(im, 0, sizeof *im);
}

static int check_size(const char *path, uint64_t w, uint64_t h, int64_t max_pixels)
{
    if (w == 0 || h == 0) return err_set("%s: the image is empty (%llu x %llu)", path, (unsigned long long)w, (unsigned long long)h);
    if (w * h > (uint64_t)max_pixels)
        return err_set("%s: %llu x %llu = %llu pixels is above the limit of %lld (a decompression bomb? Pillow refuses it too)",
                       path, (unsigned long long)w, (unsigned long long)h, (unsigned long long)(w * h), (long long)max_pixels);
    return 0;
}

/* ---- PNG ------------------------------------------------------------------------------------ */

typedef struct {
    jmp_buf jb;
    char msg[256];
    uint8_t *rows;      /* the decoded rows: one, or all of them for an interlaced file */
    uint8_t **rowp;
    uint8_t *rgb;
    int has_key;
    uint16_t key[3];
} png_job;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_job *j = png_get_error_ptr(png);
    snprintf(j->msg, sizeof j->msg, "%s", msg);
    longjmp(j->jb, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

/* one decoded row (after libpng's packing/expansion to >= 8 bits a sample) to RGB */
static void png_row_to_rgb(const uint8_t *in, uint8_t *out, int w, int ctype, int depth, const png_color *plte, int nplte)
{
    const int bps = depth == 16 ? 2 : 1;   /* bytes a sample; 16-bit samples are big-endian */
    switch (ctype) {
    case PNG_COLOR_TYPE_GRAY:
    case PNG_COLOR_TYPE_GRAY_ALPHA: {
        const int step = (ctype == PNG_COLOR_TYPE_GRAY ? 1 : 2) * bps;
        for (int x = 0; x < w; x++, in += step) {
            /* 16-bit grey is Pillow's "I;16", whose RGB is min(v, 255); 16-bit grey+alpha is
             * unpacked as "LA;16B", which keeps the high byte */
            uint8_t v = depth != 16 ? in[0] : ctype == PNG_COLOR_TYPE_GRAY ? (in[0] ? 255 : in[1]) : in[0];
            out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = v;
        }
        break;
    }
    case PNG_COLOR_TYPE_RGB:
    case PNG_COLOR_TYPE_RGB_ALPHA: {
        const int step = (ctype == PNG_COLOR_TYPE_RGB ? 3 : 4) * bps;
        for (int x = 0; x < w; x++, in += step)
            for (int c = 0; c < 3; c++) out[3 * x + c] = in[c * bps];   /* the high byte at 16 bits */
        break;
    }
    case PNG_COLOR_TYPE_PALETTE:
        for (int x = 0; x < w; x++) {
            const int i = in[x];
            out[3 * x] = i < nplte ? plte[i].red : 0;
            out[3 * x + 1] = i < nplte ? plte[i].green : 0;
            out[3 * x + 2] = i < nplte ? plte[i].blue : 0;
        }
        break;
    }
}

/* the colour key Pillow keeps through convert("RGB") (image.h: has_key); PngImagePlugin's tRNS
 * rules: grey at 1 bit is mode "1" and 16 bits "I;16", whose integer key does not carry over */
static void png_key(png_job *j, int ctype, int depth, png_bytep talpha, int ntrans, png_color_16p tc, const png_color *plte, int nplte)
{
    if (ctype == PNG_COLOR_TYPE_GRAY && depth >= 2 && depth <= 8) {
        j->has_key = 1;
        j->key[0] = j->key[1] = j->key[2] = tc->gray;
    } else if (ctype == PNG_COLOR_TYPE_RGB) {
        j->has_key = 1;
        j->key[0] = tc->red; j->key[1] = tc->green; j->key[2] = tc->blue;
    } else if (ctype == PNG_COLOR_TYPE_PALETTE) {
        int zero = -1;   /* Pillow's ^\xff*\x00\xff*$: one 0 among 255s */
        for (int i = 0; i < ntrans; i++) {
            if (talpha[i] == 0 && zero < 0) zero = i;
            else if (talpha[i] != 255) return;
        }
        if (zero < 0) return;
        j->has_key = 1;
        j->key[0] = zero < nplte ? plte[zero].red : 0;
        j->key[1] = zero < nplte ? plte[zero].green : 0;
        j->key[2] = zero < nplte ? plte[zero].blue : 0;
    }
}

static int read_png(FILE *f, const char *path, int64_t max_pixels, int header_only, image_rgb *im)
{
    png_job *j = xcalloc(1, sizeof *j);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, j, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        free(j);
        return err_set("%s: libpng could not start (out of memory)", path);
    }
    int rc = -1;
    if (setjmp(j->jb)) {
        /* a libpng error: truncated file, CRC error, bad zlib stream, bad header */
        const int eof = !strcmp(j->msg, "Read Error") && feof(f);
        err_set("%s: not a valid PNG file: %s", path, eof ? "the file ends early (truncated)" : j->msg);
        goto done;
    }
    png_init_io(png, f);
    png_set_sig_bytes(png, 8);
    /* our own pixel limit replaces libpng's 1,000,000 per side (Pillow has no limit per side) */
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
    png_read_info(png, info);
    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    if (check_size(path, w, h, max_pixels)) goto done;
    if (header_only) {
        im->width = (int)w;
        im->height = (int)h;
        rc = 0;
        goto done;
    }
    png_colorp plte = NULL;
    int nplte = 0;
    if (ctype == PNG_COLOR_TYPE_PALETTE && !png_get_PLTE(png, info, &plte, &nplte)) {
        err_set("%s: not a valid PNG file: a palette image without a PLTE chunk", path);
        goto done;
    }
    png_bytep talpha;
    int ntrans;
    png_color_16p tcolor;
    if (png_get_tRNS(png, info, &talpha, &ntrans, &tcolor)) png_key(j, ctype, depth, talpha, ntrans, tcolor, plte, nplte);
    if (depth < 8) {
        if (ctype == PNG_COLOR_TYPE_GRAY) png_set_expand_gray_1_2_4_to_8(png);   /* scaled, as Pillow's L;2, L;4 and "1" */
        else png_set_packing(png);                                               /* palette indices, one a byte */
    }
    const int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    const size_t rowbytes = png_get_rowbytes(png, info);
    const size_t nrows = passes > 1 ? h : 1;
    uint64_t total;
    if (util_mul_overflow(rowbytes, nrows, &total) || total > ((uint64_t)1 << 40)) {
        err_set("%s: a row of %zu bytes is too large", path, rowbytes);
        goto done;
    }
    j->rows = xmalloc(total);
    j->rowp = xmalloc(nrows * sizeof *j->rowp);
    for (size_t y = 0; y < nrows; y++) j->rowp[y] = j->rows + y * rowbytes;
    j->rgb = xmalloc((size_t)w * h * 3);
    if (passes > 1) {
        png_read_image(png, j->rowp);
        for (png_uint_32 y = 0; y < h; y++) png_row_to_rgb(j->rowp[y], j->rgb + (size_t)y * w * 3, (int)w, ctype, depth, plte, nplte);
    } else {
        for (png_uint_32 y = 0; y < h; y++) {
            png_read_row(png, j->rowp[0], NULL);
            png_row_to_rgb(j->rowp[0], j->rgb + (size_t)y * w * 3, (int)w, ctype, depth, plte, nplte);
        }
    }
    im->width = (int)w;
    im->height = (int)h;
    im->rgb = j->rgb;
    im->has_key = j->has_key;
    memcpy(im->key, j->key, sizeof im->key);
    j->rgb = NULL;
    rc = 0;
done:
    png_destroy_read_struct(&png, &info, NULL);
    free(j->rows);
    free(j->rowp);
    free(j->rgb);
    free(j);
    return rc;
}

/* ---- JPEG ----------------------------------------------------------------------------------- */

typedef struct {
    struct jpeg_error_mgr mgr;   /* first: libjpeg hands us this pointer */
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    struct jpeg_decompress_struct d;   /* here, not a local: libjpeg changes it after the setjmp */
    uint8_t *rgb, *row;
} jpeg_job;

static void jpeg_on_error(j_common_ptr c)
{
    jpeg_job *j = (jpeg_job *)c->err;
    c->err->format_message(c, j->msg);
    longjmp(j->jb, 1);
}

/* warnings: the end of the file before the end of the image is an error (Pillow: "image file is
 * truncated"); libjpeg's other warnings (corrupt data it skips) are not, as in Pillow */
static void jpeg_on_message(j_common_ptr c, int level)
{
    if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) jpeg_on_error(c);
}

static int read_jpeg(FILE *f, const char *path, int64_t max_pixels, int header_only, image_rgb *im)
{
    jpeg_job *j = xcalloc(1, sizeof *j);
    j_decompress_ptr d = &j->d;
    d->err = jpeg_std_error(&j->mgr);
    j->mgr.error_exit = jpeg_on_error;
    j->mgr.emit_message = jpeg_on_message;
    int rc = -1;
    if (setjmp(j->jb)) {
        err_set("%s: not a valid JPEG file: %s", path, j->msg);
        goto done;
    }
    jpeg_create_decompress(d);
    jpeg_stdio_src(d, f);
    jpeg_read_header(d, TRUE);
    if (check_size(path, d->image_width, d->image_height, max_pixels)) goto done;
    if (d->jpeg_color_space == JCS_CMYK || d->jpeg_color_space == JCS_YCCK) {
        err_set("%s: CMYK JPEG files are not supported (convert it to RGB first)", path);
        goto done;
    }
    if (header_only) {   /* no scaling is asked for: the output size is the header's */
        im->width = (int)d->image_width;
        im->height = (int)d->image_height;
        rc = 0;
        goto done;
    }
    d->out_color_space = d->jpeg_color_space == JCS_GRAYSCALE ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(d);
    const int w = (int)d->output_width, h = (int)d->output_height, nc = d->output_components;
    j->rgb = xmalloc((size_t)w * h * 3);
    j->row = xmalloc((size_t)w * nc);
    while (d->output_scanline < d->output_height) {
        const int y = (int)d->output_scanline;
        JSAMPROW r = j->row;
        jpeg_read_scanlines(d, &r, 1);
        uint8_t *out = j->rgb + (size_t)y * w * 3;
        if (nc == 3) memcpy(out, j->row, (size_t)w * 3);
        else for (int x = 0; x < w; x++) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = j->row[x];
    }
    im->width = w;
    im->height = h;
    im->rgb = j->rgb;
    j->rgb = NULL;
    rc = 0;
done:
    jpeg_destroy_decompress(d);
    free(j->rgb);
    free(j->row);
    free(j);
    return rc;
}

static int read_image(const char *path, int64_t max_pixels, int header_only, image_rgb *im)
{
    memset(im, 0, sizeof *im);
    if (max_pixels <= 0) max_pixels = IMAGE_MAX_PIXELS_DEFAULT;
    struct stat st;
    if (stat(path, &st) != 0) return err_set("%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return err_set("%s: not a regular file%s", path, S_ISDIR(st.st_mode) ? " (a directory)" : "");
    /* the file opened is the file checked (no swap between the stat and the open) */
    FILE *f = util_fopen_regular(path, &st);
    if (!f) return -1;
    uint8_t sig[8];
    const size_t n = fread(sig, 1, sizeof sig, f);
    int rc;
    if (n == 8 && !png_sig_cmp(sig, 0, 8)) rc = read_png(f, path, max_pixels, header_only, im);
    else if (n >= 3 && sig[0] == 0xff && sig[1] == 0xd8 && sig[2] == 0xff) {
        rewind(f);
        rc = read_jpeg(f, path, max_pixels, header_only, im);
    } else if (ferror(f)) rc = err_set("%s: read error: %s", path, strerror(errno));
    else if (n == 0) rc = err_set("%s: the file is empty", path);
    else rc = err_set("%s: neither a PNG nor a JPEG file (its first bytes are not their signatures)", path);
    fclose(f);
    return rc;
}

int image_read(const char *path, int64_t max_pixels, image_rgb *im) { return read_image(path, max_pixels, 0, im); }

int image_read_size(const char *path, int64_t max_pixels, int *height, int *width)
{
    image_rgb im;
    if (read_image(path, max_pixels, 1, &im)) return -1;
    *height = im.height;
    *width = im.width;
    return 0;
}
