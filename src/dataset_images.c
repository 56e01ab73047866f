/* dataset_images.c — see dataset.h: images as samples, from preprocessed pixel values in HDF5. */
#include "dataset.h"
#include "image.h"
#include "imgproc.h"
#include "util.h"
#include <hdf5.h>
#include <math.h>
#include <string.h>

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
    imgproc p;
    if (imgproc_load(&p, model_dir)) return -1;
    if (channels != 3) return err_set("%s: the model takes %d channels; images are RGB (3)", model_dir, channels);
    char **paths;
    int N;
    if (image_list(src, &paths, &N)) return -1;
    d->image_paths = paths;
    d->n_total = N;
    dataset_shard(N, rank, nranks, &d->first, &d->n);
    d->channels = 3;
    d->image_size = xmalloc((d->n ? (size_t)d->n : 1) * 2 * sizeof(int32_t));
    size_t per = 0;
    for (int i = 0; i < d->n; i++) {
        const char *path = paths[d->first + i];
        image_rgb im;
        if (image_read(path, 0, &im)) goto fail;
        int oh, ow;
        imgproc_output_size(&p, im.height, im.width, &oh, &ow);
        if (i == 0) {
            if (oh < patch || ow < patch) {
                err_set("%s: preprocessed to %d x %d pixels, smaller than one patch of %d", path, oh, ow, patch);
                image_free(&im);
                goto fail;
            }
            d->height = oh;
            d->width = ow;
            per = (size_t)3 * oh * ow;
            d->pixels = xmalloc((size_t)d->n * per * sizeof(float));
        } else if (oh != d->height || ow != d->width) {
            err_set("%s: preprocessed to %d x %d pixels, %s to %d x %d: the images of one run must come out at one size "
                    "(a processor with a centre crop, or images of one aspect ratio)", path, oh, ow, paths[d->first],
                    d->height, d->width);
            image_free(&im);
            goto fail;
        }
        d->image_size[2 * i] = im.height;
        d->image_size[2 * i + 1] = im.width;
        imgproc_run(&p, &im, d->pixels + (size_t)i * per);
        image_free(&im);
    }
    image_samples(d, n_prefix + (d->n ? (d->height / patch) * (d->width / patch) : 0));
    return 0;
fail:
    dataset_free(d);
    return -1;
}

int dataset_from_pixels_h5(dataset *d, const char *path, int channels, int patch, int n_prefix, int rank, int nranks)
{
    memset(d, 0, sizeof *d);
    hid_t f;
    H5E_BEGIN_TRY { f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); } H5E_END_TRY;
    if (f < 0) return err_set("%s: cannot open as HDF5", path);
    int rc = -1;
    hid_t ds, sp = -1, ty = -1;
    H5E_BEGIN_TRY { ds = H5Dopen2(f, "/pixel_values", H5P_DEFAULT); } H5E_END_TRY;
    if (ds < 0) { err_set("%s: no dataset /pixel_values (a vision model takes images)", path); goto done; }
    sp = H5Dget_space(ds);
    ty = H5Dget_type(ds);
    hsize_t dims[4] = {0, 0, 0, 0};
    const int nd = H5Sget_simple_extent_ndims(sp);
    if (nd == 4) H5Sget_simple_extent_dims(sp, dims, NULL);
    if (H5Tget_class(ty) != H5T_FLOAT) { err_set("%s: /pixel_values is not floating point", path); goto done; }
    if (nd != 4) { err_set("%s: /pixel_values must be 4-D [images, channels, height, width]", path); goto done; }
    if (dims[0] == 0 || dims[0] > ((hsize_t)1 << 40)) { err_set("%s: /pixel_values has %llu images", path, (unsigned long long)dims[0]); goto done; }
    if ((int64_t)dims[1] != channels) {
        err_set("%s: /pixel_values has %llu channels, the model takes %d", path, (unsigned long long)dims[1], channels);
        goto done;
    }
    if (dims[2] < (hsize_t)patch || dims[3] < (hsize_t)patch || dims[2] > 8192 || dims[3] > 8192) {
        err_set("%s: /pixel_values images of %llu x %llu pixels: each side must be in [%d, 8192] (one patch at least)", path,
                (unsigned long long)dims[2], (unsigned long long)dims[3], patch);
        goto done;
    }
    const int64_t N = (int64_t)dims[0];
    const int H = (int)dims[2], W = (int)dims[3], T = n_prefix + (H / patch) * (W / patch);
    const size_t per = (size_t)channels * H * W;
    d->n_total = N;
    dataset_shard(N, rank, nranks, &d->first, &d->n);
    d->channels = channels;
    d->height = H;
    d->width = W;
    d->pixels = xmalloc((d->n ? (size_t)d->n : 1) * per * sizeof(float));
    if (d->n > 0) {
        hsize_t start[4] = {(hsize_t)d->first, 0, 0, 0}, count[4] = {(hsize_t)d->n, dims[1], dims[2], dims[3]};
        H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, count, NULL);
        hid_t ms = H5Screate_simple(4, count, NULL);
        herr_t r;
        H5E_BEGIN_TRY { r = H5Dread(ds, H5T_NATIVE_FLOAT, ms, sp, H5P_DEFAULT, d->pixels); } H5E_END_TRY;
        H5Sclose(ms);
        if (r < 0) { err_set("%s: cannot read /pixel_values", path); goto done; }
    }
    for (size_t i = 0; i < (size_t)d->n * per; i++)
        if (!isfinite(d->pixels[i])) {
            err_set("%s: /pixel_values[%lld] holds a non-finite value", path, (long long)(d->first + (int64_t)(i / per)));
            goto done;
        }
    image_samples(d, T);
    rc = 0;
done:
    if (ty >= 0) H5Tclose(ty);
    if (sp >= 0) H5Sclose(sp);
    if (ds >= 0) H5Dclose(ds);
    H5Fclose(f);
    if (rc) dataset_free(d);
    return rc;
}
