/* figure_overlay.c — maps over the image they describe (figure.h fig_overlay_png): attention of
 * [CLS] or rollout on a patch grid, blended over the input picture, one panel per layer or head. */
#include "figure_int.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const fig_overlay no_overlay;

int fig_overlay_layout_get(fig_overlay_layout *L, const float *const *maps, int n_maps, int map_rows, int map_cols,
                           int img_w, int img_h, int grid_cols, const fig_overlay *opt)
{
    if (!opt) opt = &no_overlay;
    memset(L, 0, sizeof *L);
    if (n_maps < 1 || map_rows < 1 || map_cols < 1 || img_w < 1 || img_h < 1 || grid_cols < 1)
        return err_set("overlay: empty maps or image");
    const int side = opt->panel_px > 0 ? opt->panel_px : 192;
    L->panel_w = img_w >= img_h ? side : imax(1, (int)lround((double)side * img_w / img_h));
    L->panel_h = img_h >= img_w ? side : imax(1, (int)lround((double)side * img_h / img_w));
    L->grid_cols = imin(grid_cols, n_maps);
    const int rows = ceil_div(n_maps, L->grid_cols);
    L->title_px = 14;
    L->pitch_x = L->panel_w + GAP;
    L->pitch_y = L->panel_h + box_h(L->title_px) + GAP;
    const int top = opt->title ? MARGIN + box_h(TITLE_PX) + GAP : MARGIN;
    L->x0 = MARGIN;
    L->y0 = top + box_h(L->title_px);
    if (opt->per_panel) {
        L->vmin = 0.0f;
        L->vmax = 1.0f;
    } else if (opt->vmin < opt->vmax) {
        L->vmin = opt->vmin;
        L->vmax = opt->vmax;
    } else {
        float lo = INFINITY, hi = -INFINITY;
        for (int k = 0; k < n_maps; k++) {
            float a, b;
            fig_data_range(maps[k], (int64_t)map_rows * map_cols, &a, &b);
            lo = fminf(lo, a);
            hi = fmaxf(hi, b);
        }
        L->vmin = lo;
        L->vmax = hi;
    }
    fig_range_fix(&L->vmin, &L->vmax);
    const int grid_w = L->grid_cols * L->pitch_x - GAP, grid_h = rows * L->pitch_y - GAP - box_h(L->title_px);
    L->cbar = (fig_rect){L->x0 + grid_w + 2 * GAP, L->y0, CBAR_W, imax(grid_h, 120)};
    font f;
    if (fig_font_open(&f)) return -1;
    const char *lab = opt->cbar_label ? opt->cbar_label : opt->per_panel ? "scaled per panel" : NULL;
    L->width = L->cbar.x + CBAR_W + fig_cbar_extent(&f, L->vmin, L->vmax, lab) + MARGIN;
    if (opt->title) {
        const int tw = fig_text_width(&f, TITLE_PX, opt->title, 0);
        L->title = (fig_rect){MARGIN, MARGIN, tw, box_h(TITLE_PX)};
        L->width = imax(L->width, tw + 2 * MARGIN);
    }
    fig_font_close(&f);
    L->height = L->y0 + imax(grid_h, L->cbar.h) + MARGIN;
    if (L->width > 4000 || L->height > 4000) return err_set("overlay: %d x %d px is too large", L->width, L->height);
    return 0;
}

fig_rect fig_overlay_panel(const fig_overlay_layout *L, int k)
{
    return (fig_rect){L->x0 + (k % L->grid_cols) * L->pitch_x, L->y0 + (k / L->grid_cols) * L->pitch_y, L->panel_w,
                      L->panel_h};
}

/* bilinear sample of a (h, w) grid at continuous cell coordinates (y, x), centres at .5 */
static float sample(const float *m, int h, int w, float y, float x)
{
    y -= 0.5f;
    x -= 0.5f;
    const int y0 = (int)floorf(y), x0 = (int)floorf(x);
    const float ty = y - y0, tx = x - x0;
    const int ya = iclamp(y0, 0, h - 1), yb = iclamp(y0 + 1, 0, h - 1);
    const int xa = iclamp(x0, 0, w - 1), xb = iclamp(x0 + 1, 0, w - 1);
    const float top = m[ya * w + xa] * (1 - tx) + m[ya * w + xb] * tx;
    const float bot = m[yb * w + xa] * (1 - tx) + m[yb * w + xb] * tx;
    return top * (1 - ty) + bot * ty;
}

int fig_overlay_png(const char *path, const uint8_t *rgb, int img_w, int img_h, const float *const *maps, int n_maps,
                    int map_rows, int map_cols, int grid_cols, const fig_overlay *opt)
{
    if (!opt) opt = &no_overlay;
    fig_overlay_layout L;
    fig_cmap cm = fig_cmap_get(opt->cmap);
    if (!cm || fig_overlay_layout_get(&L, maps, n_maps, map_rows, map_cols, img_w, img_h, grid_cols, opt))
        return fig_err_prefix(path);
    font f;
    if (fig_font_open(&f)) return fig_err_prefix(path);
    const float alpha = opt->alpha > 0 ? opt->alpha : 0.55f;
    image im = fig_img_new(L.width, L.height);
    for (int k = 0; k < n_maps; k++) {
        const fig_rect p = fig_overlay_panel(&L, k);
        float lo = L.vmin, hi = L.vmax;
        if (opt->per_panel) fig_data_range(maps[k], (int64_t)map_rows * map_cols, &lo, &hi);
        const float span = hi > lo ? hi - lo : 1.0f;
        for (int y = 0; y < p.h; y++)
            for (int x = 0; x < p.w; x++) {
                /* the image, bilinear, per channel */
                const float iy = (y + 0.5f) * img_h / p.h, ix = (x + 0.5f) * img_w / p.w;
                uint8_t px[3];
                for (int c = 0; c < 3; c++) {
                    float ch[4];
                    const int y0 = iclamp((int)floorf(iy - 0.5f), 0, img_h - 1), y1 = iclamp(y0 + 1, 0, img_h - 1);
                    const int x0 = iclamp((int)floorf(ix - 0.5f), 0, img_w - 1), x1 = iclamp(x0 + 1, 0, img_w - 1);
                    const float ty = fminf(fmaxf(iy - 0.5f - y0, 0.0f), 1.0f), tx = fminf(fmaxf(ix - 0.5f - x0, 0.0f), 1.0f);
                    ch[0] = rgb[((size_t)y0 * img_w + x0) * 3 + c];
                    ch[1] = rgb[((size_t)y0 * img_w + x1) * 3 + c];
                    ch[2] = rgb[((size_t)y1 * img_w + x0) * 3 + c];
                    ch[3] = rgb[((size_t)y1 * img_w + x1) * 3 + c];
                    const float v = (ch[0] * (1 - tx) + ch[1] * tx) * (1 - ty) + (ch[2] * (1 - tx) + ch[3] * tx) * ty;
                    px[c] = (uint8_t)iclamp((int)lroundf(v), 0, 255);
                }
                const float v = sample(maps[k], map_rows, map_cols, (y + 0.5f) * map_rows / p.h, (x + 0.5f) * map_cols / p.w);
                uint8_t col[3];
                if (isfinite(v)) {
                    fig_cmap_rgb(cm, (v - lo) / span, col);
                    for (int c = 0; c < 3; c++) px[c] = (uint8_t)lroundf((1 - alpha) * px[c] + alpha * col[c]);
                }
                memcpy(im.px + ((size_t)(p.y + y) * im.w + p.x + x) * 3, px, 3);
            }
        fig_img_frame(&im, p, FIG_INK);
        char num[24];
        snprintf(num, sizeof num, "%d", k);
        const char *t = opt->panel_titles && opt->panel_titles[k] ? opt->panel_titles[k] : num;
        fig_text_draw(&im, &f, L.title_px, t, L.pitch_x - 4, p.x + p.w / 2, p.y - 2, 1, 2, 0, FIG_INK);
    }
    if (L.title.w) fig_text_draw(&im, &f, TITLE_PX, opt->title, L.title.w, L.title.x, L.title.y, 0, 0, 0, FIG_INK);
    const char *lab = opt->cbar_label ? opt->cbar_label : opt->per_panel ? "scaled per panel" : NULL;
    fig_cbar_draw(&im, &f, L.cbar, L.vmin, L.vmax, cm, lab);
    fig_font_close(&f);
    const int rc = fig_png_save(path, &im);
    free(im.px);
    return rc;
}
