/* dataset_images.c — see dataset.h: images as samples, from image files (--images) or from
 * preprocessed pixel values in HDF5 (--input). At load: the count, each file's size from its
 * header, the common output size, and a streamed SHA-256 of the shard's data; the pixels of a
 * batch are produced when it is computed (dataset_pixels), so a run's memory is bounded by its
 * batch and not by its shard. */
#include "dataset.h"
#include "image.h"
#include "imgproc.h"
#include "h5out.h"
#include "util.h"
#include <hdf5.h>
#include <math.h>
#include <nettle/sha2.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* Where a shard's pixels come from: image files (paths in dataset.image_paths) through the
 * processor, or the rows of an open /pixel_values. */
struct dataset_px {
    int from_h5;
    imgproc proc;           /* files: the model's processor */
    char *path;             /* h5: the file (messages) */
    hid_t file, ds;         /* h5: open until dataset_px_free */
    int raw_fd;             /* h5 with /pixel_values contiguous little-endian float32 or uint8: the file
                               for pread (thread-safe, no HDF5 call), its data at raw_off; else -1 */
    int64_t raw_off;
    int u8;                 /* 8-bit pixels (image files; a uint8 /pixel_values) mapped through lut */
    float lut[3 * 256];     /* imgproc_lut of the model's processor */
};

void dataset_px_free(struct dataset_px *px)
{
    if (!px) return;
    if (px->from_h5) {
        if (px->ds >= 0) H5Dclose(px->ds);
        if (px->file >= 0) H5Fclose(px->file);
        if (px->raw_fd >= 0) close(px->raw_fd);
    }
    free(px->path);
    free(px);
}

/* The per-sample arrays of images of T tokens each (ids all 0: see dataset.h). */
static void image_samples(dataset *d, int T)
{
    d->max_len = T;
    d->off = xmalloc((d->n + 1) * sizeof(int64_t));
    d->len = xmalloc((d->n ? d->n : 1) * sizeof(int));
    d->len_full = xmalloc((d->n ? d->n : 1) * sizeof(int));
    d->source_row = xmalloc((d->n ? d->n : 1) * sizeof(int64_t));
    d->ids = xcalloc((d->n ? (size_t)d->n : 1) * T, sizeof(int32_t));
    for (int i = 0; i < d->n; i++) {
        d->off[i] = (int64_t)i * T;
        d->len[i] = d->len_full[i] = T;
        d->source_row[i] = d->first + i;
    }
    d->off[d->n] = (int64_t)d->n * T;
}

int dataset_from_images(dataset *d, const char *src, const char *model_dir, int channels, int patch, int n_prefix,
                        int rank, int nranks)
{
    memset(d, 0, sizeof *d);
    struct dataset_px *px = xcalloc(1, sizeof *px);
    d->px = px;
    if (imgproc_load(&px->proc, model_dir)) goto fail;
    if (channels != 3) { err_set("%s: the model takes %d channels; images are RGB (3)", model_dir, channels); goto fail; }
    px->u8 = 1;
    imgproc_lut(&px->proc, px->lut);
    char **paths;
    int N;
    if (image_list(src, &paths, &N)) goto fail;
    d->image_paths = paths;
    d->n_total = N;
    dataset_shard(N, rank, nranks, &d->first, &d->n);
    d->channels = 3;
    d->image_size = xmalloc((d->n ? (size_t)d->n : 1) * 2 * sizeof(int32_t));
    /* per image, in parallel: its size from the header, the SHA-256 of its bytes; the messages of
     * the first bad image (in list order) win, as a serial loop would report */
    uint8_t (*fsha)[SHA256_DIGEST_SIZE] = xmalloc((d->n ? (size_t)d->n : 1) * sizeof *fsha);
    int bad = d->n;
    char msg[1024] = "";
#pragma omp parallel for schedule(dynamic)
    for (int i = 0; i < d->n; i++) {
        const char *path = paths[d->first + i];
        int h = 0, w = 0, rc = image_read_size(path, 0, &h, &w);
        char hex[65];
        if (!rc) rc = util_sha256_file(path, hex);
        if (rc) {
#pragma omp critical(dataset_images_err)
            if (i < bad) { bad = i; snprintf(msg, sizeof msg, "%s", err_get()); }
            continue;
        }
        d->image_size[2 * i] = h;
        d->image_size[2 * i + 1] = w;
        for (int k = 0; k < SHA256_DIGEST_SIZE; k++) sscanf(hex + 2 * k, "%2hhx", &fsha[i][k]);
    }
    if (bad < d->n) { free(fsha); err_set("%s", msg); goto fail; }
    /* the output size follows from the original size and the processor alone (imgproc.h) */
    for (int i = 0; i < d->n; i++) {
        const char *path = paths[d->first + i];
        int oh, ow;
        if (imgproc_check_size(&px->proc, d->image_size[2 * i], d->image_size[2 * i + 1], 0, path)) { free(fsha); goto fail; }
        imgproc_output_size(&px->proc, d->image_size[2 * i], d->image_size[2 * i + 1], &oh, &ow);
        if (i == 0) {
            if (oh < patch || ow < patch) {
                err_set("%s: preprocessed to %d x %d pixels, smaller than one patch of %d", path, oh, ow, patch);
                free(fsha);
                goto fail;
            }
            d->height = oh;
            d->width = ow;
        } else if (oh != d->height || ow != d->width) {
            err_set("%s: preprocessed to %d x %d pixels, %s to %d x %d: the images of one run must come out at one size "
                    "(a processor with a centre crop, or images of one aspect ratio)", path, oh, ow, paths[d->first],
                    d->height, d->width);
            free(fsha);
            goto fail;
        }
    }
    /* the shard's identity: each image's path and the hash of its bytes, in order (a changed,
     * renamed or reordered file changes it; the pixels follow from the bytes and the processor) */
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    for (int i = 0; i < d->n; i++) {
        const char *path = paths[d->first + i];
        sha256_update(&ctx, strlen(path) + 1, (const uint8_t *)path);
        sha256_update(&ctx, SHA256_DIGEST_SIZE, fsha[i]);
    }
    sha256_digest(&ctx, SHA256_DIGEST_SIZE, d->pixels_sha);
    free(fsha);
    image_samples(d, n_prefix + (d->n ? (d->height / patch) * (d->width / patch) : 0));
    return 0;
fail:
    dataset_free(d);
    return -1;
}

/* rows [r0, r0 + n) of /pixel_values into out as stored (float32, or uint8 with px->u8), checked
 * finite; message names the file */
static int h5_rows(const dataset *d, int64_t r0, int n, void *out)
{
    const struct dataset_px *px = d->px;
    const size_t per = (size_t)d->channels * d->height * d->width, es = px->u8 ? 1 : sizeof(float);
    if (px->raw_fd >= 0) {                   /* contiguous: the bytes as they are in the file */
        const size_t bytes = (size_t)n * per * es;
        size_t got = 0;
        while (got < bytes) {
            const ssize_t r = pread(px->raw_fd, (char *)out + got, bytes - got, px->raw_off + (int64_t)(r0 * per * es) + (int64_t)got);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0)
                return err_set("%s: cannot read /pixel_values[%lld:%lld]: %s", px->path, (long long)r0, (long long)(r0 + n),
                               r < 0 ? strerror(errno) : "end of file (the file shrank after it was opened)");
            got += (size_t)r;
        }
        for (size_t i = 0; !px->u8 && i < (size_t)n * per; i++)
            if (!isfinite(((const float *)out)[i]))
                return err_set("%s: /pixel_values[%lld] holds a non-finite value", px->path, (long long)(r0 + (int64_t)(i / per)));
        return 0;
    }
    const hsize_t start[4] = {(hsize_t)r0, 0, 0, 0}, count[4] = {(hsize_t)n, (hsize_t)d->channels, (hsize_t)d->height, (hsize_t)d->width};
    if (h5_read_block(px->ds, px->u8 ? H5T_NATIVE_UCHAR : H5T_NATIVE_FLOAT, 4, start, count, out)) return err_set("%s: cannot read /pixel_values[%lld:%lld]", px->path, (long long)r0, (long long)(r0 + n));
    for (size_t i = 0; !px->u8 && i < (size_t)n * per; i++)
        if (!isfinite(((const float *)out)[i]))
            return err_set("%s: /pixel_values[%lld] holds a non-finite value", px->path, (long long)(r0 + (int64_t)(i / per)));
    return 0;
}

int dataset_from_pixels_h5(dataset *d, const char *path, const char *model_dir, int channels, int patch, int n_prefix,
                           int rank, int nranks)
{
    memset(d, 0, sizeof *d);
    struct dataset_px *px = xcalloc(1, sizeof *px);
    px->from_h5 = 1;
    px->file = px->ds = px->raw_fd = -1;
    px->path = xstrdup(path);
    d->px = px;
    hid_t f;
    /* HDF5's open(2) of a named pipe would wait for a writer: refuse anything but a file first */
    int probe = util_open_regular(path, NULL);
    if (probe < 0) goto fail;
    close(probe);
    H5E_BEGIN_TRY { f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); } H5E_END_TRY;
    if (f < 0) { err_set("%s: cannot open as HDF5", path); goto fail; }
    px->file = f;
    hid_t ds, sp = -1, ty = -1;
    H5E_BEGIN_TRY { ds = H5Dopen2(f, "/pixel_values", H5P_DEFAULT); } H5E_END_TRY;
    if (ds < 0) { err_set("%s: no dataset /pixel_values (a vision model takes images)", path); goto fail; }
    px->ds = ds;
    sp = H5Dget_space(ds);
    ty = H5Dget_type(ds);
    hsize_t dims[4] = {0, 0, 0, 0};
    const int nd = H5Sget_simple_extent_ndims(sp);
    if (nd == 4) H5Sget_simple_extent_dims(sp, dims, NULL);
    const H5T_class_t cls = H5Tget_class(ty);
    px->u8 = cls == H5T_INTEGER && H5Tget_size(ty) == 1 && H5Tget_sign(ty) == H5T_SGN_NONE;
    /* contiguous little-endian float32 (h5py's default layout for a float32 array) or uint8: read
     * by pread, which the run's prefetch thread may call; chunked or compressed data go through
     * HDF5 */
    haddr_t off = HADDR_UNDEF;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (H5Tequal(ty, H5T_IEEE_F32LE) > 0 || px->u8) {
        hid_t dcpl = H5Dget_create_plist(ds);
        if (H5Pget_layout(dcpl) == H5D_CONTIGUOUS && H5Pget_nfilters(dcpl) == 0) off = H5Dget_offset(ds);
        H5Pclose(dcpl);
    }
#endif
    if (off != HADDR_UNDEF && (px->raw_fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) px->raw_off = (int64_t)off;
    H5Tclose(ty);
    H5Sclose(sp);
    if (cls != H5T_FLOAT && !px->u8) {
        err_set("%s: /pixel_values is neither floating point (normalised pixel values) nor uint8 (pixels before the "
                "processor's rescale and normalize)", path);
        goto fail;
    }
    if (px->u8) {   /* the processor's rescale and normalize: the model's preprocessor_config.json */
        if (channels != 3) { err_set("%s: /pixel_values is uint8 (RGB pixels) but the model takes %d channels", path, channels); goto fail; }
        if (imgproc_load(&px->proc, model_dir)) {
            char why[1024];
            snprintf(why, sizeof why, "%s", err_get());
            err_set("%s: /pixel_values is uint8 (pixels before the processor's rescale and normalize), which need the "
                    "model's preprocessor_config.json: %s", path, why);
            goto fail;
        }
        imgproc_lut(&px->proc, px->lut);
    }
    if (nd != 4) { err_set("%s: /pixel_values must be 4-D [images, channels, height, width]", path); goto fail; }
    if (dims[0] == 0 || dims[0] > INT32_MAX) {
        err_set("%s: /pixel_values declares %llu images; from 1 to %d (2^31 - 1) are supported", path, (unsigned long long)dims[0], INT32_MAX);
        goto fail;
    }
    if ((int64_t)dims[1] != channels) {
        err_set("%s: /pixel_values has %llu channels, the model takes %d", path, (unsigned long long)dims[1], channels);
        goto fail;
    }
    if (dims[2] < (hsize_t)patch || dims[3] < (hsize_t)patch || dims[2] > 8192 || dims[3] > 8192) {
        err_set("%s: /pixel_values images of %llu x %llu pixels: each side must be in [%d, 8192] (one patch at least)", path,
                (unsigned long long)dims[2], (unsigned long long)dims[3], patch);
        goto fail;
    }
    int bad;
    H5E_BEGIN_TRY { bad = h5_check_stored(f, ds, path, "/pixel_values"); } H5E_END_TRY;
    if (bad) goto fail;
    const int64_t N = (int64_t)dims[0];
    const int H = (int)dims[2], W = (int)dims[3], T = n_prefix + (H / patch) * (W / patch);
    const size_t per = (size_t)channels * H * W;
    d->n_total = N;
    dataset_shard(N, rank, nranks, &d->first, &d->n);
    d->channels = channels;
    d->height = H;
    d->width = W;
    /* the shard's rows streamed once at load, 64 MiB at a time: every value checked finite (a bad
     * file is refused before the run starts) and each image's rows hashed as stored, the images in
     * parallel (one SHA-256 stream runs at ~1.6 GB/s: 6 s for ViT-B's 16,384 images); the identity
     * a resume checks is the SHA-256 of those digests in order, as --images' over its files' */
    const size_t row_bytes = per * (px->u8 ? 1 : sizeof(float));
    int chunk = (int)(((size_t)64 << 20) / row_bytes);
    if (chunk < 1) chunk = 1;
    if (chunk > d->n) chunk = d->n ? d->n : 1;
    uint8_t *buf = xmalloc((size_t)chunk * row_bytes);
    uint8_t (*dig)[SHA256_DIGEST_SIZE] = xmalloc((size_t)(d->n ? d->n : 1) * SHA256_DIGEST_SIZE);
    for (int i = 0; i < d->n; i += chunk) {
        const int k = d->n - i < chunk ? d->n - i : chunk;
        if (h5_rows(d, d->first + i, k, buf)) { free(buf); free(dig); goto fail; }
#pragma omp parallel for schedule(static)
        for (int b = 0; b < k; b++) {
            struct sha256_ctx ic;
            sha256_init(&ic);
            sha256_update(&ic, row_bytes, buf + (size_t)b * row_bytes);
            sha256_digest(&ic, SHA256_DIGEST_SIZE, dig[i + b]);
        }
    }
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, (size_t)d->n * SHA256_DIGEST_SIZE, (const uint8_t *)dig);
    sha256_digest(&ctx, SHA256_DIGEST_SIZE, d->pixels_sha);
    free(buf);
    free(dig);
    image_samples(d, T);
    return 0;
fail:
    dataset_free(d);
    return -1;
}

/* one image file through the processor's resize and crop into out (8-bit planes); the size must
 * still be the one found at load */
static int file_pixels(const dataset *d, int i, uint8_t *out)
{
    const char *path = d->image_paths[d->first + i];
    image_rgb im;
    if (image_read(path, 0, &im)) return -1;
    int oh, ow, rc = 0;
    imgproc_output_size(&d->px->proc, im.height, im.width, &oh, &ow);
    if (im.height != d->image_size[2 * i] || im.width != d->image_size[2 * i + 1] || oh != d->height || ow != d->width)
        rc = err_set("%s: the image is now %d x %d pixels, it was %d x %d when the run started (the file changed?)", path,
                     im.height, im.width, d->image_size[2 * i], d->image_size[2 * i + 1]);
    else imgproc_run_u8(&d->px->proc, &im, out);
    image_free(&im);
    return rc;
}

const float *dataset_pixel_lut(const dataset *d) { return d->px && d->px->u8 ? d->px->lut : NULL; }

size_t dataset_pixel_bytes(const dataset *d)
{
    return (size_t)d->channels * d->height * d->width * (d->px->u8 ? 1 : sizeof(float));
}

int dataset_pixels(const dataset *d, const int *idx, int n, float *out)
{
    if (!d->px->u8) return dataset_pixels_raw(d, idx, n, out);
    const size_t per = (size_t)d->channels * d->height * d->width, plane = (size_t)d->height * d->width;
    uint8_t *u = xmalloc(n ? (size_t)n * per : 1);
    const int rc = dataset_pixels_raw(d, idx, n, u);
    if (!rc) {
#pragma omp parallel for schedule(static)
        for (int b = 0; b < n; b++) imgproc_map(d->px->lut, u + (size_t)b * per, plane, out + (size_t)b * per);
    }
    free(u);
    return rc;
}

int dataset_pixels_raw(const dataset *d, const int *idx, int n, void *out)
{
    const size_t per = dataset_pixel_bytes(d);
    if (d->px->from_h5 && d->px->raw_fd < 0) {
        /* runs of consecutive rows, one hyperslab read each (a batch of images is one run; HDF5
         * itself is not thread-safe) */
        for (int b = 0; b < n;) {
            int k = 1;
            while (b + k < n && idx[b + k] == idx[b] + k) k++;
            if (h5_rows(d, d->first + idx[b], k, (char *)out + (size_t)b * per)) return -1;
            b += k;
        }
        return 0;
    }
    /* image files decoded, or /pixel_values rows by pread (thread-safe), in parallel over the batch
     * (a ViT-B batch of 128 is 77 MB of float32: one thread's pread and check of it took longer than
     * the GPU's forward) */
    const int raw = d->px->from_h5;
    int bad = n;
    char msg[1024] = "";
#pragma omp parallel for schedule(dynamic)
    for (int b = 0; b < n; b++) {
        char *o = (char *)out + (size_t)b * per;
        if (raw ? h5_rows(d, d->first + idx[b], 1, o) : file_pixels(d, idx[b], (uint8_t *)o)) {
#pragma omp critical(dataset_pixels_err)
            if (b < bad) { bad = b; snprintf(msg, sizeof msg, "%s", err_get()); }
        }
    }
    if (bad < n) return err_set("%s", msg);
    return 0;
}

int dataset_pixels_threadsafe(const dataset *d)
{
    return d->px && (!d->px->from_h5 || d->px->raw_fd >= 0);
}

int dataset_pixels_range(const dataset *d, int first, int n, float *out)
{
    int *idx = xmalloc((n ? (size_t)n : 1) * sizeof(int));
    for (int b = 0; b < n; b++) idx[b] = first + b;
    const int rc = dataset_pixels(d, idx, n, out);
    free(idx);
    return rc;
}
