/* figure_plots.c — the plot types beyond the single heatmap (see figure.h): scatter plots with
 * numeric axes (one dot per head: mean attention distance vs layer) and small multiples (a grid
 * of small heatmaps sharing one colour scale). Drawn with figure.c's raster, text, token axes,
 * colorbar and PNG writer (figure_int.h).
 * Invariants: as for the heatmap, every rectangle is decided by a layout function before drawing,
 * and the public *_layout_get() functions return exactly what the writers use; tick labels never
 * overlap (thinned by a regular step); every text box lies inside the image. */
#include "figure_int.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t GRID_GREY[3] = {225, 225, 225}, DOT_BLUE[3] = {31, 119, 180};   /* tab:blue */

enum {
    PLOT_W = 640, PLOT_H = 420,          /* scatter axes' inside */
    AXIS_PX = 13,                        /* numeric tick labels */
    GRID_W_BUDGET = 2800, GRID_H_BUDGET = 3000, GRID_CELL_MAX = 24,
    PANEL_PX = 12, GRID_TICK_PX = 10, GRID_LABEL_MAXW = 90, PANEL_VGAP = 6,
    CBAR_MAX_H = 700,
};

/* ---- scatter ------------------------------------------------------------------------------ */

static const fig_scatter no_scatter;

/* u_i in [0, 1): Knuth's multiplicative hash of i, so the jitter of a point never depends on the
 * others (the HTML index can recompute positions from the index). */
static float jitter_u(int i) { return (float)(((uint32_t)i * 2654435761u) >> 16 & 0xffff) / 65536.0f; }

/* Axis range [lo, hi] around the finite data range [a, b], and its tick step; fig_range_fix keeps
 * extreme data (1e38, denormals) drawable. An integer axis past +-1e6 (no layer index; a broken
 * file) is drawn as a continuous one, where a step of 1 would not advance a tick loop. */
static void axis_range(float a, float b, int integer, float jitter, float *lo, float *hi, double *step)
{
    if (integer && fabsf(a) < 1e6f && fabsf(b) < 1e6f) {
        *lo = floorf(a) - 0.5f - jitter / 2, *hi = ceilf(b) + 0.5f + jitter / 2;
        double s = fig_nice_step(*lo, *hi, 4);
        *step = s < 1 ? 1 : s == 2.5 ? 2 : round(s);
        return;
    }
    fig_range_fix(&a, &b);                         /* flat: widened */
    float pad = (b - a) * 0.05f;
    *lo = a - pad, *hi = b + pad;
    fig_range_fix(lo, hi);
    *step = fig_nice_step(*lo, *hi, 4);
}

static int nticks(double lo, double hi, double step)
{
    return (int)(floor(hi / step + 1e-9) - ceil(lo / step - 1e-9)) + 1;
}

static void axis_label(char *buf, size_t n, double v, double step, int integer)
{
    if (integer && fabs(v) < 1e6) snprintf(buf, n, "%ld", lround(v));
    else fig_fmt_value(buf, n, v, step);
}

static int scatter_layout(font *f, fig_scatter_layout *L, const float *x, const float *y, const float *color,
                          int n, const fig_scatter *o)
{
    memset(L, 0, sizeof *L);
    if (n < 1 || !x || !y) return err_set("figure: scatter of %d points: need at least 1 and x, y", n);
    if (!fig_cmap_get(o->cmap)) return -1;
    if (!(o->jitter >= 0 && o->jitter <= 1e6)) return err_set("figure: scatter jitter %g: need >= 0", o->jitter);
    float xa = INFINITY, xb = -INFINITY, ya = INFINITY, yb = -INFINITY;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i]) && isfinite(y[i])) {
            xa = fminf(xa, x[i]), xb = fmaxf(xb, x[i]), ya = fminf(ya, y[i]), yb = fmaxf(yb, y[i]);
        }
    if (xa > xb) return err_set("figure: scatter of %d points: none has a finite x and y", n);
    L->jitter = o->jitter;
    axis_range(xa, xb, o->x_integer, o->jitter, &L->xmin, &L->xmax, &L->xstep);
    axis_range(ya, yb, 0, 0, &L->ymin, &L->ymax, &L->ystep);
    L->nxticks = nticks(L->xmin, L->xmax, L->xstep), L->nyticks = nticks(L->ymin, L->ymax, L->ystep);
    if (color) {
        L->cmin = o->cmin, L->cmax = o->cmax;
        if (!(L->cmin < L->cmax)) fig_data_range(color, n, &L->cmin, &L->cmax);
        fig_range_fix(&L->cmin, &L->cmax);
    }
    L->radius = 4.5f;

    char buf[32];
    int yw = 0, xw = 0, lb = box_h(LABEL_PX), tb = box_h(AXIS_PX);
    for (double v = ceil(L->ymin / L->ystep - 1e-9) * L->ystep; v <= L->ymax + 1e-9 * L->ystep; v += L->ystep) {
        axis_label(buf, sizeof buf, v, L->ystep, 0);
        yw = imax(yw, fig_text_width(f, AXIS_PX, buf, 0));
    }
    for (double v = ceil(L->xmin / L->xstep - 1e-9) * L->xstep; v <= L->xmax + 1e-9 * L->xstep; v += L->xstep) {
        axis_label(buf, sizeof buf, v, L->xstep, o->x_integer);
        xw = imax(xw, fig_text_width(f, AXIS_PX, buf, 0));
    }
    int x0 = MARGIN + (o->ylabel && *o->ylabel ? lb + GAP : 0) + yw + TICK + 3;
    L->plot = (fig_rect){imax(x0, MARGIN + xw / 2 + 1), 0, PLOT_W, PLOT_H};
    int right = L->plot.x + PLOT_W + imax(xw / 2 + 1, 0);
    if (color) {
        L->cbar = (fig_rect){L->plot.x + PLOT_W + 2 * GAP, 0, CBAR_W, PLOT_H};
        right = L->cbar.x + CBAR_W + fig_cbar_extent(f, L->cmin, L->cmax, o->cbar_label);
    }
    L->width = right + MARGIN;
    int top = MARGIN, tt = box_h(TITLE_PX);
    if (o->title && *o->title) {
        int w = fig_text_width(f, TITLE_PX, o->title, L->width - 2 * MARGIN);
        L->title = (fig_rect){iclamp(L->plot.x + (PLOT_W - w) / 2, MARGIN, L->width - MARGIN - w), top, w, tt};
        top += tt + GAP + 2;
    }
    L->plot.y = L->cbar.y = top;
    if (o->ylabel && *o->ylabel) {
        int h = fig_text_width(f, LABEL_PX, o->ylabel, PLOT_H);
        L->ylabel = (fig_rect){MARGIN, top + (PLOT_H - h) / 2, lb, h};
    }
    int bottom = top + PLOT_H + 1 + TICK + 3 + tb;
    if (o->xlabel && *o->xlabel) {
        int w = fig_text_width(f, LABEL_PX, o->xlabel, L->width - 2 * MARGIN);
        L->xlabel = (fig_rect){iclamp(L->plot.x + (PLOT_W - w) / 2, MARGIN, L->width - MARGIN - w), bottom + GAP, w, lb};
        bottom += GAP + lb;
    }
    L->height = imax(bottom, top + PLOT_H + CBAR_PX) + MARGIN;
    return 0;
}

int fig_scatter_layout_get(fig_scatter_layout *out, const float *x, const float *y, const float *color,
                           int n, const fig_scatter *opt)
{
    font f;
    if (fig_font_open(&f)) return -1;
    int rc = scatter_layout(&f, out, x, y, color, n, opt ? opt : &no_scatter);
    fig_font_close(&f);
    return rc;
}

void fig_scatter_pos(const fig_scatter_layout *L, int i, float x, float y, float *px, float *py)
{
    x = fmaxf(L->xmin, fminf(L->xmax, x)), y = fmaxf(L->ymin, fminf(L->ymax, y));   /* past +-FLT_MAX/4: at the edge */
    float xj = x + (L->jitter > 0 ? L->jitter * (jitter_u(i) - 0.5f) : 0);
    *px = L->plot.x + 0.5f + (xj - L->xmin) / (L->xmax - L->xmin) * (L->plot.w - 1);
    *py = L->plot.y + 0.5f + (L->ymax - y) / (L->ymax - L->ymin) * (L->plot.h - 1);
}

static void scatter_axes(image *im, font *f, const fig_scatter_layout *L, const fig_scatter *o)
{
    char buf[32];
    fig_rect p = L->plot;
    for (double v = ceil(L->xmin / L->xstep - 1e-9) * L->xstep; v <= L->xmax + 1e-9 * L->xstep; v += L->xstep) {
        int x = p.x + (int)lrint((v - L->xmin) / (L->xmax - L->xmin) * (p.w - 1));
        fig_img_fill(im, x, p.y, 1, p.h, GRID_GREY);
        fig_img_fill(im, x, p.y + p.h + 1, 1, TICK, FIG_INK);
        axis_label(buf, sizeof buf, v, L->xstep, o->x_integer);
        fig_text_draw(im, f, AXIS_PX, buf, 0, x, p.y + p.h + 1 + TICK + 3, 1, 0, 0, FIG_INK);
    }
    for (double v = ceil(L->ymin / L->ystep - 1e-9) * L->ystep; v <= L->ymax + 1e-9 * L->ystep; v += L->ystep) {
        int y = p.y + (int)lrint((L->ymax - v) / (L->ymax - L->ymin) * (p.h - 1));
        fig_img_fill(im, p.x, y, p.w, 1, GRID_GREY);
        fig_img_fill(im, p.x - 1 - TICK, y, TICK, 1, FIG_INK);
        axis_label(buf, sizeof buf, v, L->ystep, 0);
        fig_text_draw(im, f, AXIS_PX, buf, 0, p.x - 1 - TICK - 3, y, 2, 1, 0, FIG_INK);
    }
    fig_img_frame(im, p, FIG_INK);
    if (L->title.w) fig_text_draw(im, f, TITLE_PX, o->title, L->title.w, L->title.x, L->title.y, 0, 0, 0, FIG_INK);
    if (L->xlabel.w) fig_text_draw(im, f, LABEL_PX, o->xlabel, L->xlabel.w, L->xlabel.x, L->xlabel.y, 0, 0, 0, FIG_INK);
    if (L->ylabel.w) fig_text_draw(im, f, LABEL_PX, o->ylabel, L->ylabel.h, L->ylabel.x, L->ylabel.y, 0, 0, 1, FIG_INK);
}

int fig_scatter_png(const char *path, const float *x, const float *y, const float *color, int n,
                    const fig_scatter *opt)
{
    font f;
    fig_scatter_layout L;
    if (!opt) opt = &no_scatter;
    fig_cmap cm = fig_cmap_get(opt->cmap);
    if (!cm || fig_font_open(&f)) return fig_err_prefix(path);
    if (scatter_layout(&f, &L, x, y, color, n, opt)) {
        fig_font_close(&f);
        return fig_err_prefix(path);
    }
    image im = fig_img_new(L.width, L.height);
    scatter_axes(&im, &f, &L, opt);
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) continue;
        uint8_t rgb[3];
        memcpy(rgb, DOT_BLUE, 3);
        if (color && isnan(color[i])) memcpy(rgb, FIG_NAN_GREY, 3);
        else if (color) fig_cmap_rgb(cm, (color[i] - L.cmin) / (L.cmax - L.cmin), rgb);
        float px, py;
        fig_scatter_pos(&L, i, x[i], y[i], &px, &py);
        fig_img_disc(&im, px, py, L.radius, 1.0f, rgb, FIG_WHITE);
    }
    if (color) fig_cbar_draw(&im, &f, L.cbar, L.cmin, L.cmax, cm, opt->cbar_label);
    fig_font_close(&f);
    int rc = fig_png_save(path, &im);
    free(im.px);
    return rc;
}

/* ---- small multiples ---------------------------------------------------------------------- */

static const fig_grid no_grid;

static int grid_layout(font *f, fig_grid_layout *L, const float *const *maps, int n_maps, int mr, int mc,
                       int gc, const fig_grid *o)
{
    memset(L, 0, sizeof *L);
    if (n_maps < 1 || mr < 1 || mc < 1 || mr > FIG_MAX_DIM || mc > FIG_MAX_DIM || gc < 1 || !maps)
        return err_set("figure: grid of %d maps of %d x %d, %d per row: need >= 1 of each, maps, "
                       "and sides <= %d", n_maps, mr, mc, gc, FIG_MAX_DIM);
    for (int k = 0; k < n_maps; k++)
        if (!maps[k]) return err_set("figure: grid: map %d is NULL", k);
    if (!fig_cmap_get(o->cmap)) return -1;
    if (gc > n_maps) gc = n_maps;
    L->grid_cols = gc, L->grid_rows = ceil_div(n_maps, gc);
    L->vmin = o->vmin, L->vmax = o->vmax;
    if (!(L->vmin < L->vmax)) {                    /* shared range over every map */
        float lo = INFINITY, hi = -INFINITY;
        for (int k = 0; k < n_maps; k++) {
            float a, b;
            fig_data_range(maps[k], (int64_t)mr * mc, &a, &b);
            int any = 0;
            for (int64_t i = 0; i < (int64_t)mr * mc && !any; i++) any = isfinite(maps[k][i]);
            if (any) lo = fminf(lo, a), hi = fmaxf(hi, b);
        }
        if (lo > hi) lo = 0, hi = 1;
        L->vmin = lo, L->vmax = hi;
    }
    fig_range_fix(&L->vmin, &L->vmax);

    /* cell side from the width and height budgets; labels measured at their widest (before
     * thinning) so the budget does not depend on the cell */
    char buf[16];
    L->tick_px = GRID_TICK_PX, L->title_px = PANEL_PX;
    int rw = 0, cw = 0, tb = box_h(GRID_TICK_PX), pt = box_h(PANEL_PX) + PANEL_VGAP / 2;
    for (int i = 0; i < mr; i++) rw = imax(rw, fig_text_width(f, GRID_TICK_PX, fig_tick_label(o->row_labels, i, buf), GRID_LABEL_MAXW));
    for (int i = 0; i < mc; i++) cw = imax(cw, fig_text_width(f, GRID_TICK_PX, fig_tick_label(o->col_labels, i, buf), GRID_LABEL_MAXW));
    int cbar_w = 2 * GAP + CBAR_W + fig_cbar_extent(f, L->vmin, L->vmax, o->cbar_label), hgap = 12;
    int tt = o->title && *o->title ? box_h(TITLE_PX) + GAP + 2 : 0;
    int wc = (GRID_W_BUDGET - 2 * MARGIN - rw - TICK - 3 - cbar_w - (gc - 1) * hgap) / (gc * mc);
    int hc = (GRID_H_BUDGET - 2 * MARGIN - tt - L->grid_rows * (pt + PANEL_VGAP) - imax(cw, tb) - TICK - 3)
             / (L->grid_rows * mr);
    int c = L->cell = iclamp(imin(wc, hc), 1, GRID_CELL_MAX);

    fig_ticks tk;
    fig_ticks_measure(&tk, f, GRID_TICK_PX, c, o->row_labels, mr, o->col_labels, mc, GRID_LABEL_MAXW);
    L->row_step = tk.row_step, L->col_step = tk.col_step, L->col_rotated = tk.col_rotated;
    hgap = imax(hgap, 2 * tk.over + 4);
    L->panel_w = mc * c, L->panel_h = mr * c;
    L->pitch_x = L->panel_w + hgap, L->pitch_y = L->panel_h + pt + PANEL_VGAP;
    L->x0 = imax(MARGIN + tk.row_w + TICK + 3, MARGIN + tk.over);
    L->y0 = MARGIN + tt + pt;
    int right = L->x0 + (gc - 1) * L->pitch_x + L->panel_w;
    int area_h = (L->grid_rows - 1) * L->pitch_y + L->panel_h;
    int ch = imax(imin(area_h, CBAR_MAX_H), CBAR_MIN_H);
    L->cbar = (fig_rect){right + 2 * GAP, L->y0 + imax(0, (area_h - ch) / 2), CBAR_W, ch};
    L->width = right + cbar_w + MARGIN;
    if (tt) {
        int w = fig_text_width(f, TITLE_PX, o->title, L->width - 2 * MARGIN);
        L->title = (fig_rect){iclamp(L->x0 + (right - L->x0 - w) / 2, MARGIN, L->width - MARGIN - w), MARGIN, w,
                              box_h(TITLE_PX)};
    }
    L->height = imax(L->y0 + area_h + 1 + TICK + 3 + tk.col_h, L->cbar.y + ch + CBAR_PX) + MARGIN;
    return 0;
}

int fig_grid_layout_get(fig_grid_layout *out, const float *const *maps, int n_maps, int map_rows,
                        int map_cols, int grid_cols, const fig_grid *opt)
{
    font f;
    if (fig_font_open(&f)) return -1;
    int rc = grid_layout(&f, out, maps, n_maps, map_rows, map_cols, grid_cols, opt ? opt : &no_grid);
    fig_font_close(&f);
    return rc;
}

fig_rect fig_grid_panel(const fig_grid_layout *L, int k)
{
    return (fig_rect){L->x0 + k % L->grid_cols * L->pitch_x, L->y0 + k / L->grid_cols * L->pitch_y,
                      L->panel_w, L->panel_h};
}

int fig_grid_png(const char *path, const float *const *maps, int n_maps, int map_rows, int map_cols,
                 int grid_cols, const fig_grid *opt)
{
    font f;
    fig_grid_layout L;
    if (!opt) opt = &no_grid;
    fig_cmap cm = fig_cmap_get(opt->cmap);
    if (!cm || fig_font_open(&f)) return fig_err_prefix(path);
    if (grid_layout(&f, &L, maps, n_maps, map_rows, map_cols, grid_cols, opt)) {
        fig_font_close(&f);
        return fig_err_prefix(path);
    }
    image im = fig_img_new(L.width, L.height);
    for (int k = 0; k < n_maps; k++) {
        fig_rect p = fig_grid_panel(&L, k);
        char num[24];
        snprintf(num, sizeof num, "%d", k);
        const char *t = opt->panel_titles && opt->panel_titles[k] ? opt->panel_titles[k] : num;
        fig_cells_draw(&im, p.x, p.y, L.cell, maps[k], map_rows, map_cols, L.vmin, L.vmax, cm);
        fig_img_frame(&im, p, FIG_INK);
        fig_text_draw(&im, &f, L.title_px, t, L.pitch_x - 4, p.x + p.w / 2, p.y - 2, 1, 2, 0, FIG_INK);
        if (k % L.grid_cols == 0)
            fig_row_ticks_draw(&im, &f, L.tick_px, opt->row_labels, map_rows, L.row_step, p.x, p.y, L.cell,
                               GRID_LABEL_MAXW);
        if (k + L.grid_cols >= n_maps)            /* the lowest panel of its column */
            fig_col_ticks_draw(&im, &f, L.tick_px, opt->col_labels, map_cols, L.col_step, p.x, p.y + p.h, L.cell,
                               GRID_LABEL_MAXW, L.col_rotated);
    }
    if (L.title.w) fig_text_draw(&im, &f, TITLE_PX, opt->title, L.title.w, L.title.x, L.title.y, 0, 0, 0, FIG_INK);
    fig_cbar_draw(&im, &f, L.cbar, L.vmin, L.vmax, cm, opt->cbar_label);
    fig_font_close(&f);
    int rc = fig_png_save(path, &im);
    free(im.px);
    return rc;
}
