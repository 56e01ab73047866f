/* reduce_cnn.c — `attnscope reduce` of a CNN run (a file with /cnn, run_cnn.c): per stage and
 * channel the dataset mean of the per-image mean activation and the k images that activate the
 * channel most, written as /summary/cnn/stage_S_{mean, top_images} into a copy of the file that is
 * renamed over it (afile.h, as summary_write); and with --figures the feature-map figures:
 *   cnn_mean_by_stage.png     every channel's dataset-mean activation against its stage
 *   cnn_stage_S_mean.png      per stage, the mean activation of each channel (columns) in each of
 *                             the first images (rows)
 *   cnn_features_I_sS.png     (--save-features runs) for the first images, the 8 most active
 *                             channels of the last stage and of stage 1, each map over the picture
 * Rank 0 only; the top images are reduced from /cnn/stage_S/mean, read in blocks of 4,096 images
 * (ResNet-50: 15.6 kB an image over its five stages): the memory does not grow with the run; the
 * figures keep the first images' rows. */
#include "report.h"
#include "report_int.h"
#include "afile.h"
#include "h5out.h"
#include <math.h>
#include <stdio.h>
#include <sys/stat.h>

/* a stage's shape, and the per-image means [nhead, C] of its first nhead images (the figures') */
typedef struct { int C, h, w; int64_t N, nhead; float *mean; } cnn_stage_data;

static int64_t g_attr(hid_t obj, const char *name)
{
    int64_t v = -1;
    hid_t a;
    H5E_BEGIN_TRY { a = H5Aopen(obj, name, H5P_DEFAULT); } H5E_END_TRY;
    if (a < 0) return -1;
    if (H5Aread(a, H5T_NATIVE_INT64, &v) < 0) v = -1;
    H5Aclose(a);
    return v;
}

/* /cnn/stage_s's shape attributes, checked; its per-image means [N, C] read in blocks: the first
 * `head` images' rows kept (sd->mean), and per channel the k images of largest mean, largest first
 * (ties: lower index; -1 when fewer images) into top (C, k) and the dataset mean of the per-image
 * means into cmean (C) */
static int stage_read(hid_t f, const char *file, int s, int64_t head, int k, cnn_stage_data *sd, int64_t **top, float **cmean)
{
    char name[64];
    snprintf(name, sizeof name, "/cnn/stage_%d", s);
    memset(sd, 0, sizeof *sd);
    hid_t g;
    H5E_BEGIN_TRY { g = H5Gopen2(f, name, H5P_DEFAULT); } H5E_END_TRY;
    if (g < 0) return err_set("%s: no %s", file, name);
    sd->C = (int)g_attr(g, "channels"), sd->h = (int)g_attr(g, "height"), sd->w = (int)g_attr(g, "width");
    hid_t ds;
    H5E_BEGIN_TRY { ds = H5Dopen2(g, "mean", H5P_DEFAULT); } H5E_END_TRY;
    H5Gclose(g);
    if (ds < 0) return err_set("%s: no %s/mean", file, name);
    hid_t sp = H5Dget_space(ds);
    hsize_t d[2] = {0, 0};
    const int nd = H5Sget_simple_extent_ndims(sp);
    if (nd == 2) H5Sget_simple_extent_dims(sp, d, NULL);
    if (nd != 2 || sd->C < 1 || d[1] != (hsize_t)sd->C || sd->h < 1 || sd->w < 1 || d[0] > ((hsize_t)1 << 40) / d[1]) {
        H5Sclose(sp);
        H5Dclose(ds);
        return err_set("%s: %s/mean is not [N, channels] or its group lacks channels/height/width", file, name);
    }
    char mname[80];
    snprintf(mname, sizeof mname, "%s/mean", name);
    int bad;
    H5E_BEGIN_TRY { bad = h5_check_stored(f, ds, file, mname); } H5E_END_TRY;
    if (bad) { H5Sclose(sp); H5Dclose(ds); return -1; }
    const int64_t N = (int64_t)d[0], C = sd->C, BLK = 4096;
    sd->N = N;
    sd->nhead = N < head ? N : head;
    sd->mean = xmalloc((size_t)(sd->nhead * C + 1) * sizeof(float));
    int64_t *t = *top = xmalloc((size_t)C * k * sizeof(int64_t));
    float *tv = xmalloc((size_t)C * k * sizeof(float)), *buf = xmalloc((size_t)((N < BLK ? N : BLK) * C + 1) * sizeof(float));
    double *acc = xcalloc(C, sizeof(double));
    for (int64_t e = 0; e < C * k; e++) t[e] = -1;
    int rc = 0;
    for (int64_t i0 = 0; i0 < N && !rc; i0 += BLK) {
        const int64_t n = N - i0 < BLK ? N - i0 : BLK;
        const hsize_t st[2] = {(hsize_t)i0, 0}, ct[2] = {(hsize_t)n, (hsize_t)C};
        if (h5_read_block(ds, H5T_NATIVE_FLOAT, 2, st, ct, buf)) { rc = err_set("%s: cannot read %s/mean[%lld:%lld]", file, name, (long long)i0, (long long)(i0 + n)); break; }
        for (int64_t i = i0; i < i0 + n && i < sd->nhead; i++) memcpy(sd->mean + i * C, buf + (i - i0) * C, (size_t)C * sizeof(float));
        for (int64_t c = 0; c < C; c++) {      /* per channel, the images in order, as one pass */
            int64_t *tc = t + c * k;
            float *vc = tv + c * k;
            for (int64_t i = i0; i < i0 + n; i++) {
                const float v = buf[(i - i0) * C + c];
                acc[c] += v;
                int j = k;
                while (j > 0 && (tc[j - 1] < 0 || v > vc[j - 1])) j--;
                if (j == k) continue;
                memmove(tc + j + 1, tc + j, (size_t)(k - j - 1) * sizeof(int64_t));
                memmove(vc + j + 1, vc + j, (size_t)(k - j - 1) * sizeof(float));
                tc[j] = i;
                vc[j] = v;
            }
        }
    }
    H5Sclose(sp);
    H5Dclose(ds);
    float *cm = *cmean = xmalloc((size_t)C * sizeof(float));
    for (int64_t c = 0; c < C; c++) cm[c] = N ? (float)(acc[c] / N) : NAN;
    free(tv); free(buf); free(acc);
    return rc;
}

/* writes (or replaces) a dataset of the open file */
static int put(hid_t f, const char *name, hid_t ftype, hid_t mtype, int nd, const hsize_t *dims, const void *buf, const char *def)
{
    if (H5Lexists(f, name, H5P_DEFAULT) > 0 && H5Ldelete(f, name, H5P_DEFAULT) < 0) return -1;
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t sp = H5Screate_simple(nd, dims, NULL);
    hid_t ds = H5Dcreate2(f, name, ftype, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Sclose(sp);
    H5Pclose(lcpl);
    if (ds < 0) return -1;
    int rc = H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0 ? -1 : 0;
    if (!rc) h5_attr_str(ds, "definition", def);
    H5Dclose(ds);
    return rc;
}

/* the summary into a copy of file renamed over it */
static int write_summary(const char *file, int S, const cnn_stage_data *sd, int64_t *const *top, float *const *cmean, int k)
{
    afile a;
    size_t bytes;
    int kernel;
    if (afile_create(&a, file, "reduce") || afile_copy_from(&a, file, &bytes, &kernel)) return -1;
    afile_unlock(&a);
    hid_t f;
    H5E_BEGIN_TRY { f = H5Fopen(a.tmp, H5F_ACC_RDWR, H5P_DEFAULT); } H5E_END_TRY;
    int rc = f < 0 ? err_set("%s: cannot open its copy %s with HDF5", file, a.tmp) : 0;
    for (int s = 0; s < S && !rc; s++) {
        char n1[80], n2[80];
        snprintf(n1, sizeof n1, "/summary/cnn/stage_%d_top_images", s);
        snprintf(n2, sizeof n2, "/summary/cnn/stage_%d_mean", s);
        const hsize_t dt[2] = {(hsize_t)sd[s].C, (hsize_t)k}, dm[1] = {(hsize_t)sd[s].C};
        H5E_BEGIN_TRY {
            rc = put(f, n1, H5T_STD_I64LE, H5T_NATIVE_INT64, 2, dt, top[s],
                     "per channel the k images (sample indices) with the largest /cnn/stage_S/mean, largest first; -1 when "
                     "there are fewer images") ||
                 put(f, n2, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, dm, cmean[s],
                     "per channel the mean over the images of /cnn/stage_S/mean (the dataset-mean activation)");
        } H5E_END_TRY;
        if (rc) err_set("%s: cannot write %s into its copy", file, n1);
    }
    if (f >= 0 && H5Fclose(f) < 0 && !rc) rc = err_set("%s: cannot close its copy", file);
    if (!rc && afile_lock(&a)) rc = -1;
    if (rc) { afile_abort(&a); return -1; }
    return afile_commit(&a);
}

/* one feature map (h, w) of channel c of image i of /cnn/stage_s/features, as float */
static float *read_maps(hid_t f, int s, int64_t i, int C, int h, int w)
{
    char name[64];
    snprintf(name, sizeof name, "/cnn/stage_%d/features", s);
    hid_t ds;
    H5E_BEGIN_TRY { ds = H5Dopen2(f, name, H5P_DEFAULT); } H5E_END_TRY;
    if (ds < 0) return NULL;
    hid_t sp = H5Dget_space(ds);
    hsize_t start[4] = {(hsize_t)i, 0, 0, 0}, cnt[4] = {1, (hsize_t)C, (hsize_t)h, (hsize_t)w}, d[4] = {0};
    /* the maps must be there at the size the group's attributes say before they are allocated */
    int fits = H5Sget_simple_extent_ndims(sp) == 4 && H5Sget_simple_extent_dims(sp, d, NULL) == 4 && d[0] > (hsize_t)i
               && d[1] == cnt[1] && d[2] == cnt[2] && d[3] == cnt[3];
    if (fits) { H5E_BEGIN_TRY { fits = !h5_check_stored(f, ds, name, name); } H5E_END_TRY; }
    if (!fits) { H5Sclose(sp); H5Dclose(ds); return NULL; }
    float *v = xmalloc((size_t)C * h * w * sizeof(float));
    const int r = h5_read_block(ds, H5T_NATIVE_FLOAT, 4, start, cnt, v);
    H5Sclose(sp); H5Dclose(ds);
    if (r) { free(v); return NULL; }
    return v;
}

/* the 8 most active channels of stage s in image i over its picture (or as a grid without one) */
static int feature_figure(hid_t f, const char *dir, int s, const cnn_stage_data *sd, int64_t i, int ih, int iw, html_list *h)
{
    float *maps = read_maps(f, s, i, sd->C, sd->h, sd->w);
    if (!maps) return 0;   /* the run did not --save-features */
    enum { KMAX = 8 };
    int idx[KMAX], k = sd->C < KMAX ? sd->C : KMAX;
    const float *m = sd->mean + i * sd->C;
    for (int j = 0; j < k; j++) {   /* selection of the k largest means */
        int best = -1;
        for (int c = 0; c < sd->C; c++) {
            int used = 0;
            for (int q = 0; q < j; q++) used |= idx[q] == c;
            if (!used && (best < 0 || m[c] > m[best])) best = c;
        }
        idx[j] = best;
    }
    const float *panels[KMAX];
    char titles[KMAX][48];
    const char *tp[KMAX];
    for (int j = 0; j < k; j++) {
        panels[j] = maps + (size_t)idx[j] * sd->h * sd->w;
        snprintf(titles[j], sizeof titles[j], "ch %d (mean %.3g)", idx[j], m[idx[j]]);
        tp[j] = titles[j];
    }
    char path[4200], title[256];
    snprintf(path, sizeof path, "%s/cnn_features_%lld_s%d.png", dir, (long long)i, s);
    snprintf(title, sizeof title, "image %lld: the %d most active channels of stage %d (%d x %d maps)", (long long)i, k, s, sd->h, sd->w);
    uint8_t *rgb = report_input_image(f, i, ih, iw);
    int rc;
    if (rgb) {
        fig_overlay fo = {.title = title, .panel_titles = tp, .cbar_label = "activation (scaled per panel)", .per_panel = 1};
        rc = fig_overlay_png(path, rgb, iw, ih, panels, k, sd->h, sd->w, 4, &fo);
    } else {
        fig_grid fg = {.title = title, .panel_titles = tp, .cbar_label = "activation"};
        rc = fig_grid_png(path, panels, k, sd->h, sd->w, 4, &fg);
    }
    if (!rc) report_image_entry(h, path, title);
    free(rgb);
    free(maps);
    return rc;
}

static int figures(const char *file, const char *dir, int S, const cnn_stage_data *sd, float *const *cmean, int n_images,
                   html_list *h)
{
    mkdir(dir, 0777);
    hid_t f;
    H5E_BEGIN_TRY { f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT); } H5E_END_TRY;
    if (f < 0) return err_set("%s: cannot open with HDF5", file);
    hid_t g = H5Gopen2(f, "/cnn", H5P_DEFAULT);
    const int ih = (int)g_attr(g, "image_height"), iw = (int)g_attr(g, "image_width");
    H5Gclose(g);
    char path[4200], title[256];
    int rc = 0, total = 0;
    for (int s = 0; s < S; s++) total += sd[s].C;
    float *x = xmalloc(total * sizeof(float)), *y = xmalloc(total * sizeof(float));
    for (int s = 0, at = 0; s < S; s++)
        for (int c = 0; c < sd[s].C; c++, at++) { x[at] = (float)s; y[at] = cmean[s][c]; }
    snprintf(path, sizeof path, "%s/cnn_mean_by_stage.png", dir);
    fig_scatter fs = {.title = "mean activation of every channel over the dataset, by stage (0: embedder)", .xlabel = "stage",
                      .ylabel = "mean activation", .x_integer = 1, .jitter = 0.5f};
    rc = fig_scatter_png(path, x, y, NULL, total, &fs);
    if (!rc) report_image_entry(h, path, "cnn_mean_by_stage: each channel's dataset-mean activation against its stage");
    free(x);
    free(y);
    for (int s = 0; s < S && !rc; s++) {
        const int rows = sd[s].nhead < 48 ? (int)sd[s].nhead : 48;
        if (rows < 1) break;
        snprintf(path, sizeof path, "%s/cnn_stage_%d_mean.png", dir, s);
        snprintf(title, sizeof title, "stage %d: mean activation per channel (%d x %d maps), first %d images", s, sd[s].h, sd[s].w, rows);
        fig_heatmap fh = {.title = title, .xlabel = "channel", .ylabel = "image", .cbar_label = "mean activation"};
        rc = fig_heatmap_png(path, sd[s].mean, rows, sd[s].C, &fh);
        if (!rc) report_image_entry(h, path, title);
    }
    const int n_img = sd[0].nhead < n_images ? (int)sd[0].nhead : n_images;
    for (int64_t i = 0; i < n_img && !rc; i++) {
        rc = feature_figure(f, dir, S - 1, &sd[S - 1], i, ih, iw, h);
        if (!rc && S > 2) rc = feature_figure(f, dir, 1, &sd[1], i, ih, iw, h);
    }
    H5Fclose(f);
    if (!rc) {
        snprintf(path, sizeof path, "%s/index.html", dir);
        snprintf(title, sizeof title, "attnscope: %s, %lld images, ResNet feature maps", report_base_name(file), (long long)sd[0].N);
        rc = fig_html_index(path, h->e, h->n, title);
        if (!rc) printf("attnscope reduce: wrote %s (%d figures)\n", path, h->n);
    }
    return rc;
}

int reduce_cnn(const char *file, const char *dir, int k, int n_images)
{
    hid_t f;
    H5E_BEGIN_TRY { f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT); } H5E_END_TRY;
    if (f < 0) return err_set("%s: cannot open with HDF5", file);
    hid_t g = H5Gopen2(f, "/cnn", H5P_DEFAULT);
    const int S = (int)g_attr(g, "n_stages");
    H5Gclose(g);
    if (S < 1 || S > 64) { H5Fclose(f); return err_set("%s: /cnn has no valid n_stages attribute", file); }
    cnn_stage_data *sd = xcalloc(S, sizeof *sd);
    int64_t **top = xcalloc(S, sizeof *top);
    float **cmean = xcalloc(S, sizeof *cmean);
    int rc = 0;
    /* the figures' rows: a heat map of the first 48 images, the feature maps of the first n_images */
    const int64_t head = n_images > 48 ? n_images : 48;
    for (int s = 0; s < S && !rc; s++) {
        rc = stage_read(f, file, s, head, k, &sd[s], &top[s], &cmean[s]);
        if (!rc && sd[s].N != sd[0].N) rc = err_set("%s: /cnn/stage_%d/mean has %lld images, stage_0 %lld", file, s, (long long)sd[s].N, (long long)sd[0].N);
    }
    H5Fclose(f);
    if (!rc) rc = write_summary(file, S, sd, top, cmean, k);
    if (!rc) printf("attnscope reduce: /summary/cnn of %lld images x %d stages written to %s\n", (long long)sd[0].N, S, file);
    if (!rc && dir) {
        html_list *h = xcalloc(1, sizeof *h);
        rc = figures(file, dir, S, sd, cmean, n_images, h);
        html_list_free(h);
    }
    for (int s = 0; s < S; s++) { free(sd[s].mean); free(top[s]); free(cmean[s]); }
    free(sd); free(top); free(cmean);
    return rc;
}
