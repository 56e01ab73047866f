/* figure.h — PNG figures without Python: heatmaps with a title, axis labels, tick labels
 * (token strings, Chinese included) and a colorbar with values; scatter plots with numeric axes;
 * small multiples of heatmaps sharing one colour scale; maps blended over the image they describe
 * (figure_overlay.c); and a static HTML index of the PNGs with
 * hover tooltips. Drawn into an RGB buffer, text by FreeType from a Debian font with CJK glyphs
 * (fonts-noto-cjk), written by libpng (or stdio for HTML) to a temporary name and renamed.
 * Every writer returns 0, or -1 with err_set() naming the path and leaves nothing at the path nor
 * a temporary beside it. Colormaps: "viridis" (default, NULL) and "magma" (for divergences). */
#ifndef ATTNSCOPE_FIGURE_H
#define ATTNSCOPE_FIGURE_H
#include <stdint.h>

typedef struct {
    const char *title;
    const char *xlabel, *ylabel;
    const char *cbar_label;
    const char *const *row_labels;   /* [rows] or NULL: rows numbered from 0 */
    const char *const *col_labels;   /* [cols] or NULL: cols numbered from 0 */
    float vmin, vmax;                /* colour range; vmin >= vmax: from the finite data */
    int annotate;                    /* 1: print each value in its cell when cells are big enough */
    int block_rows, block_cols;      /* >0: a white line between every block_rows rows / block_cols
                                        cols (e.g. heads per layer); 0: none */
    const char *cmap;                /* "viridis" (NULL) or "magma" */
} fig_heatmap;

/* A pixel rectangle: columns x .. x+w-1, rows y .. y+h-1 (origin top-left). */
typedef struct { int x, y, w, h; } fig_rect;

/* Where fig_heatmap_png() puts things, so callers and tests can locate cells and texts. */
typedef struct {
    int width, height;        /* image size in pixels (at most ~2400 each) */
    int cell;                 /* side of one square cell in pixels: 48 for small grids, 1..48 */
    fig_rect grid;            /* cell (r, c) covers x = grid.x + c*cell, y = grid.y + r*cell, cell×cell */
    fig_rect cbar;            /* colour gradient: top row is vmax's colour, bottom row vmin's */
    fig_rect title, xlabel, ylabel, cbar_label;   /* text boxes; all zero when the text is absent */
    float vmin, vmax;         /* colour range used: opt's, or the finite data's (widened if flat) */
    int row_step, col_step;   /* tick labels drawn for rows/cols 0, step, 2*step, ... (no overlap) */
    int col_rotated;          /* 1: column labels rotated 90°, reading upwards */
    int tick_px, annot_px;    /* font sizes in pixels; annot_px == 0: no values printed in cells */
} fig_layout;

#define FIG_MAX_DIM 2000      /* largest rows or cols a heatmap accepts (cells shrink to 1 px) */

/* Font file used for all text: $ATTNSCOPE_FONT if set, else the first of the known Debian
 * paths that exists. Returns NULL with err_set() naming the package to install. */
const char *fig_font_path(void);

/* Computes the layout fig_heatmap_png() uses for the same arguments (opt may be NULL: no texts,
 * numbered ticks, auto range). Returns 0, or -1 with err_set() (bad sizes, no usable font). */
int fig_heatmap_layout(fig_layout *out, const float *data, int rows, int cols, const fig_heatmap *opt);

/* Draws data[rows][cols] (row-major; NaN cells drawn grey) as a heatmap PNG at path.
 * opt may be NULL. Colours: viridis over [vmin, vmax], values outside clamped to its ends.
 * Returns 0, or -1 with err_set() naming path (no file left at path, nor a temporary beside it). */
int fig_heatmap_png(const char *path, const float *data, int rows, int cols, const fig_heatmap *opt);

/* ---- scatter plots ---------------------------------------------------------------------------- */

typedef struct {
    const char *title;
    const char *xlabel, *ylabel;
    const char *cbar_label;          /* label of the colorbar (only drawn when color != NULL) */
    const char *cmap;                /* "viridis" (NULL) or "magma", for color[] */
    float cmin, cmax;                /* colour range; cmin >= cmax: from the finite colours */
    int x_integer;                   /* 1: x is a category (layer): a tick at every integer, thinned */
    float jitter;                    /* x offset of point i is jitter * (u_i - 0.5) in data units,
                                        u_i in [0, 1) a fixed hash of i (0: none) */
} fig_scatter;

/* Where fig_scatter_png() puts things. Point (x, y) of index i has its centre at
 * fig_scatter_pos(); data x maps linearly [xmin, xmax] -> [plot.x, plot.x + plot.w - 1], data y
 * [ymin, ymax] -> [plot.y + plot.h - 1, plot.y] (up is larger). */
typedef struct {
    int width, height;
    fig_rect plot;                   /* the axes' inside (frame drawn 1 px outside) */
    fig_rect cbar;                   /* w == 0 when there is no colorbar (color == NULL) */
    fig_rect title, xlabel, ylabel;  /* zero when absent */
    float xmin, xmax, ymin, ymax;    /* data range of the axes (padded beyond the data) */
    double xstep, ystep;             /* tick spacing (ticks at its multiples inside the range) */
    int nxticks, nyticks;
    float cmin, cmax;                /* colour range used */
    float radius;                    /* point radius in px */
    float jitter;
} fig_scatter_layout;

/* Layout of fig_scatter_png() for the same arguments (color may be NULL, opt may be NULL).
 * Returns 0, or -1 with err_set() (n < 1, no finite point, unknown cmap, no font). */
int fig_scatter_layout_get(fig_scatter_layout *out, const float *x, const float *y, const float *color,
                           int n, const fig_scatter *opt);
/* Pixel centre (sub-pixel) of point i at data (x, y), jitter included. */
void fig_scatter_pos(const fig_scatter_layout *L, int i, float x, float y, float *px, float *py);
/* Draws n points (x[i], y[i]) as filled circles, coloured by color[i] through the colormap with a
 * colorbar, or all in one blue when color is NULL; points with a non-finite x or y are skipped.
 * Returns 0, or -1 with err_set() naming path (nothing left at path). */
int fig_scatter_png(const char *path, const float *x, const float *y, const float *color, int n,
                    const fig_scatter *opt);

/* ---- small multiples -------------------------------------------------------------------------- */

typedef struct {
    const char *title;
    const char *const *panel_titles; /* [n_maps] or NULL: panels numbered */
    const char *const *row_labels;   /* [map_rows] or NULL: numbered; on the left column only */
    const char *const *col_labels;   /* [map_cols] or NULL: numbered; under the bottom panels only */
    const char *cbar_label;
    const char *cmap;                /* "viridis" (NULL) or "magma" */
    float vmin, vmax;                /* shared colour range; vmin >= vmax: from all finite data */
} fig_grid;

/* Where fig_grid_png() puts things. Panel k sits in grid row k / grid_cols, column k % grid_cols;
 * its cell (r, c) covers x = fig_grid_panel(L, k).x + c*cell, y = ... .y + r*cell, cell × cell. */
typedef struct {
    int width, height;               /* width at most ~3000 px */
    int cell;                        /* side of a cell in px (1..24) */
    int x0, y0;                      /* top-left of panel 0's cells */
    int pitch_x, pitch_y;            /* distance between neighbouring panels' origins */
    int grid_cols, grid_rows;
    int panel_w, panel_h;            /* map_cols*cell, map_rows*cell */
    fig_rect cbar, title;
    float vmin, vmax;
    int tick_px, title_px;           /* tick label / panel title font sizes */
    int row_step, col_step, col_rotated;
} fig_grid_layout;

/* Layout of fig_grid_png() for the same arguments. Returns 0, or -1 with err_set(). */
int fig_grid_layout_get(fig_grid_layout *out, const float *const *maps, int n_maps, int map_rows,
                        int map_cols, int grid_cols, const fig_grid *opt);
/* The cells' rectangle of panel k. */
fig_rect fig_grid_panel(const fig_grid_layout *L, int k);
/* Draws n_maps maps[k][map_rows][map_cols] (row-major) as small heatmaps, grid_cols per row, with
 * one colour scale and colorbar. opt may be NULL. Returns 0, or -1 with err_set() naming path. */
int fig_grid_png(const char *path, const float *const *maps, int n_maps, int map_rows, int map_cols,
                 int grid_cols, const fig_grid *opt);

/* ---- maps over an image ----------------------------------------------------------------------- */

typedef struct {
    const char *title;
    const char *const *panel_titles; /* [n_maps] or NULL: panels numbered */
    const char *cbar_label;
    const char *cmap;                /* "viridis" (NULL) or "magma" */
    float vmin, vmax;                /* shared colour range; vmin >= vmax: from all finite data */
    int per_panel;                   /* 1: each map scaled to its own [min, max] (the colorbar reads
                                        0..1 "scaled per panel"); 0: one shared range */
    float alpha;                     /* weight of the map's colour over the image (0: 0.55) */
    int panel_px;                    /* the longer side of each panel in px (0: 192) */
} fig_overlay;

/* Where fig_overlay_png() puts things: panel k's image occupies fig_overlay_panel(L, k). */
typedef struct {
    int width, height;
    int panel_w, panel_h;            /* the image scaled to panel_px on its longer side */
    int x0, y0, pitch_x, pitch_y, grid_cols;
    fig_rect cbar, title;
    float vmin, vmax;                /* the colour range (0, 1 with per_panel) */
    int title_px;
} fig_overlay_layout;

int fig_overlay_layout_get(fig_overlay_layout *out, const float *const *maps, int n_maps, int map_rows, int map_cols,
                           int img_w, int img_h, int grid_cols, const fig_overlay *opt);
fig_rect fig_overlay_panel(const fig_overlay_layout *L, int k);
/* Draws n_maps maps[k][map_rows][map_cols] (e.g. [CLS] attention or rollout over a patch grid)
 * blended over the RGB image rgb (img_h, img_w, 3) that they describe: the image scaled to the
 * panel with bilinear filtering, each map stretched over the whole image (bilinear between patch
 * centres), colour = (1 − α)·image + α·cmap(value); one panel per map, grid_cols per row, panel
 * titles, a title and a colorbar. NaN map cells leave the image uncoloured. Returns 0, or -1
 * with err_set() naming path (nothing left at path). */
int fig_overlay_png(const char *path, const uint8_t *rgb, int img_w, int img_h, const float *const *maps, int n_maps,
                    int map_rows, int map_cols, int grid_cols, const fig_overlay *opt);

/* ---- HTML index ------------------------------------------------------------------------------- */

typedef enum { FIG_HTML_IMAGE = 0, FIG_HTML_HEATMAP, FIG_HTML_SCATTER } fig_html_kind;

/* One figure of the index. Strings are UTF-8 (invalid bytes shown as U+FFFD) and escaped when
 * written; nothing is kept after fig_html_index() returns. */
typedef struct {
    fig_html_kind kind;
    const char *png;                 /* file name relative to the index, e.g. "entropy.png" */
    const char *caption;             /* or NULL */
    const char *note;                /* free text shown under the caption (newlines kept), or NULL */
    /* FIG_HTML_HEATMAP: data[rows][cols], labels (NULL: numbered), and where the cells are in the
     * PNG (fig_layout's grid.x, grid.y and cell) */
    const float *data;
    int rows, cols;
    const char *const *row_labels, *const *col_labels;
    int grid_x, grid_y, cell;
    /* FIG_HTML_SCATTER: n points, data (x, y), labels (NULL: index), pixel centres (from
     * fig_scatter_pos) */
    int n;
    const float *x, *y, *px, *py;
    const char *const *labels;
} fig_html_entry;

/* Writes a self-contained index.html at path (no external files besides the PNGs it names): a
 * heading title, then each entry as <figure> with <img>, caption and note; heatmap and scatter
 * entries get a tooltip on hover (row label · col label: value; point label: x, y).
 * Returns 0, or -1 with err_set() naming path (bad entry, cannot write; nothing left at path). */
int fig_html_index(const char *path, const fig_html_entry *entries, int n, const char *title);
#endif
