/* figure_int.h — private to the figure module (figure.c, figure_cmap.c, figure_plots.c,
 * figure_html.c): the RGB raster, FreeType text, colormaps, shared axes pieces and the PNG writer
 * that every plot type draws with. Not part of the public API; see figure.h for that.
 * Conventions: images are (h, w, 3) RGB with origin top-left; every text box is box_h(px) high
 * (1 em ascent, 0.25 em descent); drawing outside the image is clipped, never an error. */
#ifndef ATTNSCOPE_FIGURE_INT_H
#define ATTNSCOPE_FIGURE_INT_H
#include "figure.h"
#include "util.h"
#include <stdint.h>
#include <stdio.h>
#include <ft2build.h>
#include FT_FREETYPE_H

enum {
    MARGIN = 12, GAP = 8, TICK = 4,      /* outer margin, gap between blocks, tick mark length */
    CBAR_W = 20, CBAR_MIN_H = 200,
    TITLE_PX = 20, LABEL_PX = 16, CBAR_PX = 13,
    LABEL_MAXW = 150,                    /* tick labels wider than this get an ellipsis */
    TEXT_MAX = 256,                      /* code points kept per label */
};
extern const uint8_t FIG_INK[3], FIG_WHITE[3], FIG_NAN_GREY[3];

static inline int imax(int a, int b) { return a > b ? a : b; }
static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int iclamp(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }
static inline int ceil_div(int a, int b) { return (a + b - 1) / b; }
static inline int box_h(int px) { return (5 * px + 3) / 4; }

/* ---- colormaps (figure_cmap.c) ---- */
typedef const float (*fig_cmap)[3];             /* 256 entries of r, g, b in [0, 1] */
/* name NULL/"" /"viridis" or "magma"; NULL with err_set() for another name. */
fig_cmap fig_cmap_get(const char *name);
/* Colour of t in [0, 1] (clamped) as matplotlib picks it. */
void fig_cmap_rgb(fig_cmap cm, float t, uint8_t rgb[3]);

/* ---- raster ---- */
typedef struct { int w, h; uint8_t *px; } image;     /* px: (h, w, 3) RGB */
typedef struct { int w, h; uint8_t *a; } mask;       /* a: (h, w) coverage 0..255 */
/* A white w x h image; the caller frees im.px. */
image fig_img_new(int w, int h);
void fig_img_fill(image *im, int x, int y, int w, int h, const uint8_t rgb[3]);
void fig_img_frame(image *im, fig_rect r, const uint8_t rgb[3]);   /* 1 px outside r */
/* Blends rgb at coverage a (0..255) into pixel (x, y), if inside. */
void fig_img_blend(image *im, int x, int y, const uint8_t rgb[3], int a);
/* A filled anti-aliased disc of radius r centred at (cx, cy) with an edge ring of width edge. */
void fig_img_disc(image *im, float cx, float cy, float r, float edge, const uint8_t fill[3],
                  const uint8_t ring[3]);

/* ---- text ---- */
typedef struct { FT_Library lib; FT_Face face[2]; int nface, px; } font;
/* Opens fig_font_path() (+ DejaVu fallback). Returns 0, or -1 with err_set(). */
int fig_font_open(font *f);
void fig_font_close(font *f);
/* Width in px of s at size px, cut with '…' to maxw (0: no limit). */
int fig_text_width(font *f, int px, const char *s, int maxw);
/* Draws s with its box anchored at (x, y): ax, ay = 0 left/top, 1 centre, 2 right/bottom of the
 * drawn box (rotated boxes are box_h wide; rot: 90° counter-clockwise). Returns the box. */
fig_rect fig_text_draw(image *im, font *f, int px, const char *s, int maxw, int x, int y,
                       int ax, int ay, int rot, const uint8_t rgb[3]);

/* ---- axes ---- */
/* labels[i], or i printed into buf when labels (or labels[i]) is NULL. */
const char *fig_tick_label(const char *const *labels, int i, char buf[16]);
/* The largest 1-2-2.5-5 x 10^k step giving >= min_ticks multiples in [lo, hi]. */
double fig_nice_step(double lo, double hi, int min_ticks);
/* v printed with as many decimals as step needs. */
void fig_fmt_value(char *buf, size_t n, double v, double step);
/* Width of the colorbar beside its bar: ticks, their values, and the rotated label if any. */
int fig_cbar_extent(font *f, double lo, double hi, const char *label);
/* Gradient in bar (top: hi's colour), frame, value ticks, and label rotated to its right,
 * centred on the bar. */
void fig_cbar_draw(image *im, font *f, fig_rect bar, double lo, double hi, fig_cmap cm, const char *label);

/* Token-axis tick labels of a cell grid: drawn every step so that boxes never overlap; column
 * labels turn 90° when that allows a smaller step. */
typedef struct {
    int row_step, col_step, col_rotated;
    int row_w;        /* widest drawn row label (px) */
    int col_h;        /* height of the column label band below the grid (px, without TICK + 3) */
    int over;         /* upright column labels: overhang beyond the grid's sides (px) */
} fig_ticks;
void fig_ticks_measure(fig_ticks *t, font *f, int px, int cell, const char *const *row_labels, int rows,
                       const char *const *col_labels, int cols, int maxw);
/* Row labels right-aligned left of the grid at (gx, gy); column labels below the grid bottom gb. */
void fig_row_ticks_draw(image *im, font *f, int px, const char *const *labels, int rows, int step,
                        int gx, int gy, int cell, int maxw);
void fig_col_ticks_draw(image *im, font *f, int px, const char *const *labels, int cols, int step,
                        int gx, int gb, int cell, int maxw, int rotated);
/* data[rows][cols] as cell x cell squares from (x0, y0) through cm over [vmin, vmax]; NaN grey. */
void fig_cells_draw(image *im, int x0, int y0, int cell, const float *data, int rows, int cols,
                    float vmin, float vmax, fig_cmap cm);
/* Range of the finite values of data[n] into lo, hi (widened if flat, [0, 1] if none). */
void fig_data_range(const float *data, int64_t n, float *lo, float *hi);
void fig_range_fix(float *lo, float *hi);

/* ---- output ---- */
/* Writes im to path via "path.tmp.<pid>" and rename. Returns 0, or -1 with err_set() (no file). */
int fig_png_save(const char *path, const image *im);
/* Prefixes the current error message with path. Returns -1. */
int fig_err_prefix(const char *path);
#endif
