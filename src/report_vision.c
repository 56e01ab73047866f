/* report_vision.c — the reducer's vision figures (report_int.h): the ViT paper's Fig. 11 (mean
 * attention distance in pixels against depth, one dot per head), and for the first images the
 * [CLS] attention of every layer, of every head of the last layer, and the attention rollout,
 * each blended over the picture the model saw (the image file through the same processor, its
 * normalisation undone). */
#include "report_int.h"
#include "h5out.h"
#include "image.h"
#include "imgproc.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

/* the block of dataset name (rank nd <= 4) that starts at index start along the first dimension
 * and holds count[d] values along dimension d from 0 (a count of 0: the whole extent; past the
 * extent: clamped), as floats, where the file stores its values (h5_check_stored); the dataset's
 * whole extent in dims. NULL when it is missing, of another rank or unreadable. The figures read
 * the first images' rows only and the distances in blocks: a run's /vision grows with its images
 * (ViT-B/16: 270 kB an image) and the reducer's memory must not. */
static float *read_block(hid_t f, const char *file, const char *name, int nd, hsize_t *dims, hsize_t start,
                         const hsize_t *count)
{
    hid_t ds;
    H5E_BEGIN_TRY { ds = H5Dopen2(f, name, H5P_DEFAULT); } H5E_END_TRY;
    if (ds < 0) return NULL;
    hid_t sp = H5Dget_space(ds);
    float *v = NULL;
    if (nd <= 4 && H5Sget_simple_extent_ndims(sp) == nd && !h5_check_stored(f, ds, file, name)) {
        H5Sget_simple_extent_dims(sp, dims, NULL);
        hsize_t st[4] = {start < dims[0] ? start : dims[0], 0, 0, 0}, ct[4];
        size_t n = 1;
        for (int d = 0; d < nd; d++) {
            const hsize_t left = dims[d] - st[d];
            ct[d] = count[d] && count[d] < left ? count[d] : left;
            n *= ct[d];
        }
        v = xmalloc((n ? n : 1) * sizeof(float));
        if (h5_read_block(ds, H5T_NATIVE_FLOAT, nd, st, ct, v)) { free(v); v = NULL; }
    }
    H5Sclose(sp);
    H5Dclose(ds);
    return v;
}

static int64_t attr_int(hid_t obj, const char *name)
{
    int64_t v = -1;
    hid_t a;
    H5E_BEGIN_TRY { a = H5Aopen(obj, name, H5P_DEFAULT); } H5E_END_TRY;
    if (a < 0) return -1;
    H5Aread(a, H5T_NATIVE_INT64, &v);
    H5Aclose(a);
    return v;
}

/* the model's input image of sample i as RGB bytes (h, w): its file through the model's processor,
 * rescale and normalisation undone; NULL when the run has no image paths or the file is gone */
uint8_t *report_input_image(hid_t f, int64_t i, int h, int w)
{
    char model[4096] = "", path[4096] = "";
    hid_t a, t;
    H5E_BEGIN_TRY { a = H5Aopen(f, "model_dir", H5P_DEFAULT); } H5E_END_TRY;
    if (a < 0) return NULL;
    t = H5Aget_type(a);
    char *s = NULL;
    if (H5Tis_variable_str(t) > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5T_CSET_UTF8);   /* h5_attr_str writes UTF-8: an ASCII memory type has no conversion */
        if (H5Aread(a, mt, &s) >= 0 && s) { snprintf(model, sizeof model, "%s", s); H5free_memory(s); }
        H5Tclose(mt);
    } else {
        size_t n = H5Tget_size(t);
        char *buf = xcalloc(n + 1, 1);
        if (H5Aread(a, t, buf) >= 0) snprintf(model, sizeof model, "%s", buf);
        free(buf);
    }
    H5Tclose(t);
    H5Aclose(a);
    hid_t ds;
    H5E_BEGIN_TRY { ds = H5Dopen2(f, "/images/path", H5P_DEFAULT); } H5E_END_TRY;
    if (ds < 0) return NULL;
    hid_t ft = H5Dget_type(ds), sp = H5Dget_space(ds);
    const size_t n = H5Tget_size(ft);
    hsize_t start = (hsize_t)i, one = 1, np = 0;
    /* one string of a 1-D string dataset: fixed-length as runs write it, or variable-length (h5py's
     * default), read into memory HDF5 allocates and freed here */
    if (H5Tget_class(ft) == H5T_STRING && H5Sget_simple_extent_ndims(sp) == 1 && H5Sget_simple_extent_dims(sp, &np, NULL) == 1 &&
        start < np && n <= sizeof path) {
        H5Sselect_hyperslab(sp, H5S_SELECT_SET, &start, NULL, &one, NULL);
        hid_t ms = H5Screate_simple(1, &one, NULL);
        if (H5Tis_variable_str(ft) > 0) {
            char *s = NULL;
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
            H5Tset_cset(mt, H5Tget_cset(ft));   /* no conversion between ASCII and UTF-8 */
            if (H5Dread(ds, mt, ms, sp, H5P_DEFAULT, &s) >= 0 && s) { snprintf(path, sizeof path, "%s", s); H5free_memory(s); }
            H5Tclose(mt);
        } else {
            char *buf = xcalloc(n + 1, 1);
            if (H5Dread(ds, ft, ms, sp, H5P_DEFAULT, buf) >= 0) snprintf(path, sizeof path, "%s", buf);
            free(buf);
        }
        H5Sclose(ms);
    }
    H5Sclose(sp); H5Tclose(ft); H5Dclose(ds);
    imgproc p;
    image_rgb im;
    if (!path[0] || imgproc_load(&p, model) || image_read(path, 0, &im)) return NULL;
    int oh, ow;
    imgproc_output_size(&p, im.height, im.width, &oh, &ow);
    if (oh != h || ow != w) { image_free(&im); return NULL; }
    float *px = xmalloc((size_t)3 * h * w * sizeof(float));
    imgproc_run(&p, &im, px);
    image_free(&im);
    uint8_t *rgb = xmalloc((size_t)3 * h * w);
    for (int c = 0; c < 3; c++)
        for (size_t k = 0; k < (size_t)h * w; k++) {
            double v = px[(size_t)c * h * w + k];
            if (p.do_normalize) v = v * p.std[c] + p.mean[c];
            if (p.do_rescale && p.rescale_factor > 0) v /= p.rescale_factor;
            rgb[k * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lround(v));
        }
    free(px);
    return rgb;
}

int report_vision(hid_t f, const char *file, const char *dir, int L, int H, int n_images, html_list *h)
{
    if (H5Lexists(f, "/vision", H5P_DEFAULT) <= 0) return 0;
    hid_t g = H5Gopen2(f, "/vision", H5P_DEFAULT);
    const int64_t gh64 = attr_int(g, "grid_h"), gw64 = attr_int(g, "grid_w"), npre64 = attr_int(g, "n_prefix");
    const int64_t ih64 = attr_int(g, "image_height"), iw64 = attr_int(g, "image_width");
    H5Gclose(g);
    if (gh64 < 1 || gw64 < 1 || npre64 < 0 || ih64 < 1 || iw64 < 1) return err_set("%s: /vision lacks its grid attributes", file);
    /* a patch is at least a pixel; the canvas (3 bytes a pixel) at most 2^26 pixels: the products below fit an int */
    if (ih64 > 65536 || iw64 > 65536 || ih64 * iw64 > (1 << 26) || gh64 > ih64 || gw64 > iw64 || npre64 > 1024)
        return err_set("%s: /vision's grid %lld x %lld with %lld prefix tokens on a %lld x %lld image is out of range (at most "
                       "2^26 pixels and 65536 a side, a patch at least one pixel, at most 1024 prefix tokens)", file, (long long)gh64,
                       (long long)gw64, (long long)npre64, (long long)ih64, (long long)iw64);
    const int gh = (int)gh64, gw = (int)gw64, npre = (int)npre64, ih = (int)ih64, iw = (int)iw64;
    const int LH = L * H, np = gh * gw, T = npre + np;
    hsize_t dd[3], dc[4], dr[3], dn[3];
    const hsize_t one[4] = {1, 0, 0, 0};
    float *dist = read_block(f, file, "/vision/distance_px", 3, dd, 0, one), *cls = NULL, *norm = NULL, *roll = NULL;
    const int64_t N = dist ? (int64_t)dd[0] : 0;
    const int shown = (int)(N < n_images ? N : n_images);
    /* the first images' rows: [CLS] attention [shown, L, H, patches], token norms [shown, L, T],
     * the rollout's [CLS] row [shown, 1, T] */
    const hsize_t first[4] = {(hsize_t)(shown > 0 ? shown : 1), 0, 0, 0}, first_row0[3] = {first[0], 1, 0};
    if (dist) {
        cls = read_block(f, file, "/vision/cls_attention", 4, dc, 0, first);
        norm = read_block(f, file, "/vision/token_norm", 3, dn, 0, first);     /* optional (older files) */
        roll = read_block(f, file, "/vision/rollout", 3, dr, 0, first_row0);
    }
    if (norm && (dn[0] != dd[0] || dn[1] != (hsize_t)L || dn[2] != (hsize_t)T)) { free(norm); norm = NULL; }
    int rc = 0;
    char path[4200], title[512], cap[1024];
    /* every image's rows: [N, L, H], [N, L, H, patches], [N, T, T] */
    if (!dist || !cls || !roll || dd[0] < 1 || dd[1] != (hsize_t)L || dd[2] != (hsize_t)H || dc[0] != dd[0] || dc[1] != (hsize_t)L ||
        dc[2] != (hsize_t)H || dc[3] != (hsize_t)np || dr[0] != dd[0] || dr[1] != (hsize_t)T || dr[2] != (hsize_t)T) {
        rc = err_set("%s: /vision datasets missing, not stored or of unexpected shapes (distance_px [N, %d, %d], cls_attention "
                     "[N, %d, %d, %d], rollout [N, %d, %d])", file, L, H, L, H, np, T, T);
        goto done;
    }
    /* 1. Fig. 11: per head the mean over images of its mean distance, against layer (the images
     * in blocks of 4,096, in order) */
    float *x = (float *)keep(h, xmalloc(LH * sizeof(float))), *y = (float *)keep(h, xcalloc(LH, sizeof(float)));
    float *col = xmalloc(LH * sizeof(float));
    for (int a = 0; a < LH; a++) { x[a] = (float)(a / H); col[a] = (float)(a % H); }
    const hsize_t blk[3] = {4096, 0, 0};
    for (int64_t i0 = 0; i0 < N && !rc; i0 += 4096) {
        hsize_t db[3];
        float *d = read_block(f, file, "/vision/distance_px", 3, db, (hsize_t)i0, blk);
        if (!d) { rc = err_set("%s: cannot read /vision/distance_px[%lld:]", file, (long long)i0); break; }
        for (int64_t i = i0; i < N && i < i0 + 4096; i++)
            for (int a = 0; a < LH; a++) y[a] += d[(i - i0) * LH + a] / (float)N;
        free(d);
    }
    snprintf(path, sizeof path, "%s/vision_distance_by_layer.png", dir);
    fig_scatter fs = {.title = "Mean attention distance per head against depth (pixels)", .xlabel = "network depth (layer)",
                      .ylabel = "mean attention distance (pixels)", .cbar_label = "head", .x_integer = 1, .jitter = 0.3f};
    if (!rc) rc = fig_scatter_png(path, x, y, col, LH, &fs);
    free(col);
    if (rc) goto done;
    snprintf(cap, sizeof cap, "Mean attention distance in pixels between patch centres, per head, mean over %lld images "
                              "(Dosovitskiy et al. 2021, Fig. 11; /vision/distance_px)", (long long)N);
    report_image_entry(h, path, cap);
    /* 2. the first images: [CLS] attention per layer (mean over heads) and the rollout; the last
     * layer's heads */
    float *maps = xmalloc((size_t)(L + H + 1) * np * sizeof(float));
    const float **mp = xmalloc((size_t)(L + H + 1) * sizeof(float *));
    char **titles = xmalloc((size_t)(L + H + 1) * sizeof(char *));
    for (int k = 0; k < L + H + 1; k++) titles[k] = xmalloc(32);
    for (int i = 0; i < shown && !rc; i++) {
        uint8_t *rgb = report_input_image(f, i, ih, iw);
        if (!rgb) {   /* --input pixel_values: no picture; a neutral grey canvas */
            rgb = xmalloc((size_t)3 * ih * iw);
            memset(rgb, 160, (size_t)3 * ih * iw);
        }
        for (int l = 0; l < L; l++) {
            float *m = maps + (size_t)l * np;
            for (int q = 0; q < np; q++) {
                double s = 0;
                for (int hd = 0; hd < H; hd++) s += cls[(((size_t)i * L + l) * H + hd) * np + q];
                m[q] = (float)(s / H);
            }
            snprintf(titles[l], 32, "layer %d", l);
            mp[l] = m;
        }
        float *rm = maps + (size_t)L * np;          /* rollout: [CLS]'s row over the patches */
        memcpy(rm, roll + (size_t)i * T + npre, (size_t)np * sizeof(float));
        snprintf(titles[L], 32, "rollout");
        mp[L] = rm;
        snprintf(path, sizeof path, "%s/vision_cls_layers_%d.png", dir, i);
        snprintf(title, sizeof title, "Image %d: [CLS] attention per layer (mean of the heads) and rollout", i);
        fig_overlay fo = {.title = title, .panel_titles = (const char *const *)titles, .per_panel = 1};
        rc = fig_overlay_png(path, rgb, iw, ih, mp, L + 1, gh, gw, L + 1 > 7 ? 7 : L + 1, &fo);
        if (!rc) {
            snprintf(cap, sizeof cap, "Image %d: [CLS] attention over the patches in every layer (mean of the %d heads; "
                                      "/vision/cls_attention) and the attention rollout's [CLS] row (/vision/rollout), each "
                                      "scaled to its own range", i, H);
            report_image_entry(h, path, cap);
        }
        for (int hd = 0; hd < H && !rc; hd++) {
            memcpy(maps + (size_t)(L + 1 + hd) * np, cls + (((size_t)i * L + (L - 1)) * H + hd) * np, (size_t)np * sizeof(float));
            snprintf(titles[L + 1 + hd], 32, "L%d H%d", L - 1, hd);
            mp[L + 1 + hd] = maps + (size_t)(L + 1 + hd) * np;
        }
        if (!rc) {
            snprintf(path, sizeof path, "%s/vision_cls_heads_%d.png", dir, i);
            snprintf(title, sizeof title, "Image %d: [CLS] attention of every head of the last layer", i);
            fig_overlay fo = {.title = title, .panel_titles = (const char *const *)(titles + L + 1), .per_panel = 1};
            rc = fig_overlay_png(path, rgb, iw, ih, mp + L + 1, H, gh, gw, H > 8 ? 8 : H, &fo);
            if (!rc) {
                snprintf(cap, sizeof cap, "Image %d: [CLS] attention over the patches, each head of layer %d (scaled per panel)", i, L - 1);
                report_image_entry(h, path, cap);
            }
        }
        /* the patches' hidden-state norms per layer: high-norm patches (Darcet et al. 2024) stand out */
        for (int l = 0; l < L && norm && !rc; l++) {
            memcpy(maps + (size_t)l * np, norm + ((size_t)i * L + l) * T + npre, (size_t)np * sizeof(float));
            snprintf(titles[l], 32, "layer %d", l);
            mp[l] = maps + (size_t)l * np;
        }
        if (norm && !rc) {
            snprintf(path, sizeof path, "%s/vision_norms_%d.png", dir, i);
            snprintf(title, sizeof title, "Image %d: the patches' hidden-state norm after each layer", i);
            fig_overlay fo = {.title = title, .panel_titles = (const char *const *)titles, .per_panel = 1, .cmap = "magma"};
            rc = fig_overlay_png(path, rgb, iw, ih, mp, L, gh, gw, L > 7 ? 7 : L, &fo);
            if (!rc) {
                snprintf(cap, sizeof cap, "Image %d: each patch's hidden-state L2 norm after every layer (/vision/token_norm, "
                                          "scaled per panel); high-norm patches (Darcet et al. 2024) stand out", i);
                report_image_entry(h, path, cap);
            }
        }
        free(rgb);
    }
    for (int k = 0; k < L + H + 1; k++) free(titles[k]);
    free(titles); free(mp); free(maps);
done:
    free(dist); free(cls); free(roll); free(norm);
    return rc;
}
