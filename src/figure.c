/* figure.c — the figure module's shared machinery (raster, FreeType text, colorbar, token axes,
 * PNG output; declared in figure_int.h) and the heatmap (see figure.h). Scatter plots and small
 * multiples are in figure_plots.c, the HTML index in figure_html.c, colormap tables in
 * figure_cmap.c.
 *
 * Pipeline: layout() decides every rectangle (cells, colorbar, text boxes) from the data size and
 * the measured label widths; heatmap_draw() paints an RGB buffer (origin top-left) following that
 * layout; fig_png_save() encodes it with libpng in memory and replaces the file atomically (afile.h).
 * Text is rendered by FreeType into a one-line alpha mask whose box is 1.25 em high (1 em ascent,
 * 0.25 em descent), then blended upright or rotated 90° counter-clockwise.
 * Invariants: tick labels are thinned by a regular step so that their boxes never overlap; labels
 * longer than LABEL_MAXW are cut with an ellipsis; every text box lies inside the image. */
#include "figure_int.h"
#include "afile.h"
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <png.h>

enum {
    GRID_BUDGET = 1280,                  /* target side of the cell grid: 128 tokens -> 10 px */
    CELL_MAX = 48,
};
const uint8_t FIG_INK[3] = {25, 25, 25}, FIG_WHITE[3] = {255, 255, 255}, FIG_NAN_GREY[3] = {128, 128, 128};

/* ---- raster ------------------------------------------------------------------------------- */

void fig_img_fill(image *im, int x, int y, int w, int h, const uint8_t rgb[3])
{
    int x1 = x + w < im->w ? x + w : im->w, y1 = y + h < im->h ? y + h : im->h;
    for (int j = y < 0 ? 0 : y; j < y1; j++)
        for (int i = x < 0 ? 0 : x; i < x1; i++) memcpy(im->px + 3 * ((size_t)j * im->w + i), rgb, 3);
}

void fig_img_frame(image *im, fig_rect r, const uint8_t rgb[3])   /* 1 px outside r */
{
    fig_img_fill(im, r.x - 1, r.y - 1, r.w + 2, 1, rgb);
    fig_img_fill(im, r.x - 1, r.y + r.h, r.w + 2, 1, rgb);
    fig_img_fill(im, r.x - 1, r.y, 1, r.h, rgb);
    fig_img_fill(im, r.x + r.w, r.y, 1, r.h, rgb);
}

image fig_img_new(int w, int h)
{
    image im = {w, h, xmalloc((size_t)w * h * 3)};
    memset(im.px, 255, (size_t)w * h * 3);
    return im;
}

void fig_img_blend(image *im, int x, int y, const uint8_t rgb[3], int a)
{
    if (x < 0 || y < 0 || x >= im->w || y >= im->h || a <= 0) return;
    uint8_t *p = im->px + 3 * ((size_t)y * im->w + x);
    for (int k = 0; k < 3; k++) p[k] = (uint8_t)((p[k] * (255 - a) + rgb[k] * a + 127) / 255);
}

/* Coverage of each pixel from its centre's distance d to (cx, cy), with a 1 px linear ramp: the
 * ring where r - edge <= d < r, the fill inside; pixels wholly inside r - edge - 0.5 are exact. */
void fig_img_disc(image *im, float cx, float cy, float r, float edge, const uint8_t fill[3], const uint8_t ring[3])
{
    if (!(cx > -r - 2 && cx < im->w + r + 2 && cy > -r - 2 && cy < im->h + r + 2)) return;   /* off the image, NaN */
    for (int y = (int)floorf(cy - r - 1); y <= (int)ceilf(cy + r + 1); y++)
        for (int x = (int)floorf(cx - r - 1); x <= (int)ceilf(cx + r + 1); x++) {
            float d = hypotf(x + 0.5f - cx, y + 0.5f - cy);
            float out = fminf(fmaxf(r + 0.5f - d, 0), 1), in = fminf(fmaxf(r - edge + 0.5f - d, 0), 1);
            if (out > 0) fig_img_blend(im, x, y, ring, (int)lrintf(255 * out));
            if (in > 0) fig_img_blend(im, x, y, fill, (int)lrintf(255 * in));
        }
}

/* Blends rgb through m at (x, y); rot: the mask turned 90° counter-clockwise (m.h wide, m.w high). */
static void img_blit(image *im, const mask *m, int x, int y, const uint8_t rgb[3], int rot)
{
    int W = rot ? m->h : m->w, H = rot ? m->w : m->h;
    for (int j = 0; j < H; j++) {
        if (y + j < 0 || y + j >= im->h) continue;
        for (int i = 0; i < W; i++) {
            if (x + i < 0 || x + i >= im->w) continue;
            int a = rot ? m->a[(size_t)i * m->w + (m->w - 1 - j)] : m->a[(size_t)j * m->w + i];
            fig_img_blend(im, x + i, y + j, rgb, a);
        }
    }
}

/* ---- text --------------------------------------------------------------------------------- */

/* face[0]: the font of fig_font_path(); face[1] (if present): DejaVu Sans for the glyphs face[0]
 * lacks, e.g. the 'Ġ' of GPT-2 byte-level BPE tokens, absent from Noto Sans CJK. */
static const char DEJAVU[] = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

const char *fig_font_path(void)
{
    static const char *known[] = {
        "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",   /* fonts-noto-cjk */
        "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",           /* fonts-wqy-microhei */
        DEJAVU,                                                     /* fonts-dejavu-core: no CJK */
    };
    const char *env = getenv("ATTNSCOPE_FONT");
    if (env && *env) {
        if (access(env, R_OK) == 0) return env;
        err_set("$ATTNSCOPE_FONT=%s: cannot read the font file (%s)", env, strerror(errno));
        return NULL;
    }
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (access(known[i], R_OK) == 0) return known[i];
    err_set("no font for figure text: install the Debian package fonts-noto-cjk "
            "(or set ATTNSCOPE_FONT to a .ttf/.otf/.ttc file)");
    return NULL;
}

int fig_font_open(font *f)
{
    const char *path = fig_font_path();
    if (!path) return -1;
    if (FT_Init_FreeType(&f->lib)) return err_set("figure: cannot initialise FreeType");
    if (FT_New_Face(f->lib, path, 0, &f->face[0])) {
        FT_Done_FreeType(f->lib);
        return err_set("figure: %s: FreeType cannot open this font (face 0)", path);
    }
    f->nface = 1 + (strcmp(path, DEJAVU) != 0 && FT_New_Face(f->lib, DEJAVU, 0, &f->face[1]) == 0);
    f->px = 0;
    return 0;
}

void fig_font_close(font *f)
{
    for (int i = 0; i < f->nface; i++) FT_Done_Face(f->face[i]);
    FT_Done_FreeType(f->lib);
}

static void font_size(font *f, int px)
{
    if (f->px != px)
        for (int i = 0; i < f->nface; i++) FT_Set_Pixel_Sizes(f->face[i], 0, px);
    f->px = px;
}

/* Loads c's glyph (from the fallback face if the main one lacks it); NULL if none loads. */
static FT_GlyphSlot glyph_load(font *f, uint32_t c, FT_Int32 flags)
{
    FT_Face face = f->face[0];
    if (f->nface > 1 && !FT_Get_Char_Index(face, c) && FT_Get_Char_Index(f->face[1], c)) face = f->face[1];
    return FT_Load_Char(face, c, flags) ? NULL : face->glyph;
}

static int advance(font *f, uint32_t c)
{
    FT_GlyphSlot g = glyph_load(f, c, FT_LOAD_DEFAULT);
    return g ? (int)(g->advance.x >> 6) : 0;
}

/* s (UTF-8, may be NULL) as code points, cut with '…' to fit maxw px (0: no limit) at size px.
 * Invalid UTF-8 ends the text; control characters show as '?'. Returns the count; *w the width. */
static int text_shape(font *f, int px, const char *s, int maxw, uint32_t cp[TEXT_MAX], int *w)
{
    int n = 0, adv[TEXT_MAX];
    *w = 0;
    font_size(f, px);
    size_t len = s ? strlen(s) : 0, ok = util_utf8_valid_prefix(s ? s : "", len);
    for (size_t i = 0; i < ok && n < TEXT_MAX - 1; ) {
        int k;
        uint32_t c = util_utf8_decode(s + i, &k);
        i += k;
        cp[n] = c < 0x20 || c == 0x7f ? '?' : c;
        *w += adv[n] = advance(f, cp[n]);
        n++;
    }
    if (maxw > 0 && *w > maxw) {
        int ell = advance(f, 0x2026);
        while (n > 0 && *w + ell > maxw) *w -= adv[--n];
        cp[n++] = 0x2026;
        *w += ell;
    }
    return n;
}

int fig_text_width(font *f, int px, const char *s, int maxw)
{
    uint32_t cp[TEXT_MAX];
    int w;
    text_shape(f, px, s, maxw, cp, &w);
    return w;
}

/* One line of text as a coverage mask of (width, box_h(px)); the caller frees m.a. */
static mask text_render(font *f, int px, const char *s, int maxw)
{
    uint32_t cp[TEXT_MAX];
    mask m;
    int n = text_shape(f, px, s, maxw, cp, &m.w), pen = 0;
    m.h = box_h(px);
    m.a = xcalloc((size_t)(m.w > 0 ? m.w : 1) * m.h, 1);
    for (int i = 0; i < n; i++) {
        FT_GlyphSlot g = glyph_load(f, cp[i], FT_LOAD_RENDER);
        if (!g) continue;
        const FT_Bitmap *b = &g->bitmap;
        if (b->pixel_mode == FT_PIXEL_MODE_GRAY)
            for (int y = 0; y < (int)b->rows; y++) {
                int Y = px - g->bitmap_top + y;                      /* baseline at 1 em */
                for (int x = 0; x < (int)b->width; x++) {
                    int X = pen + g->bitmap_left + x, a = b->buffer[y * b->pitch + x];
                    if (X >= 0 && X < m.w && Y >= 0 && Y < m.h && a > m.a[Y * m.w + X]) m.a[Y * m.w + X] = a;
                }
            }
        pen += (int)(g->advance.x >> 6);
    }
    return m;
}

/* Draws s with its box anchored at (x, y): ax, ay = 0 left/top, 1 centre, 2 right/bottom of the
 * drawn box (rotated boxes are box_h wide). Returns the box. */
fig_rect fig_text_draw(image *im, font *f, int px, const char *s, int maxw, int x, int y,
                          int ax, int ay, int rot, const uint8_t rgb[3])
{
    mask m = text_render(f, px, s, maxw);
    fig_rect r = {0, 0, rot ? m.h : m.w, rot ? m.w : m.h};
    r.x = x - ax * r.w / 2;
    r.y = y - ay * r.h / 2;
    img_blit(im, &m, r.x, r.y, rgb, rot);
    free(m.a);
    return r;
}

/* ---- axes --------------------------------------------------------------------------------- */

const char *fig_tick_label(const char *const *labels, int i, char buf[16])
{
    if (labels && labels[i]) return labels[i];
    snprintf(buf, 16, "%d", i);
    return buf;
}

/* Ticks at multiples of step in [lo, hi]: the largest 1-2-2.5-5 step giving >= min_ticks ticks
 * (then at most about 2*min_ticks, since consecutive candidates differ by at most 2x). */
double fig_nice_step(double lo, double hi, int min_ticks)
{
    static const double m[] = {10, 5, 2.5, 2, 1};
    double mag = pow(10, floor(log10((hi - lo) / min_ticks)));
    for (int k = 0; k < 5; k++) {
        double s = m[k] * mag;
        if (floor(hi / s + 1e-9) - ceil(lo / s - 1e-9) + 1 >= min_ticks) return s;
    }
    return mag;
}

void fig_fmt_value(char *buf, size_t n, double v, double step)
{
    if (fabs(v) < step * 1e-6) v = 0;                    /* no "-0.00" */
    int d = 0;
    while (d < 6 && fabs(step * pow(10, d) - round(step * pow(10, d))) > 1e-6 * step * pow(10, d)) d++;
    if (fabs(v) >= 1e6 || step < 1e-5) snprintf(buf, n, "%.3g", v);
    else snprintf(buf, n, "%.*f", d, v);
}

int fig_cbar_extent(font *f, double lo, double hi, const char *label)
{
    char buf[32];
    double step = fig_nice_step(lo, hi, 5);
    int tw = 0;
    for (double v = ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) {
        fig_fmt_value(buf, sizeof buf, v, step);
        tw = imax(tw, fig_text_width(f, CBAR_PX, buf, 0));
    }
    return TICK + 3 + tw + (label && *label ? GAP + box_h(LABEL_PX) : 0);
}

void fig_cbar_draw(image *im, font *f, fig_rect b, double lo, double hi, fig_cmap cm, const char *label)
{
    for (int j = 0; j < b.h; j++) {                  /* top row: entry 255, bottom row: entry 0 */
        uint8_t rgb[3];
        fig_cmap_rgb(cm, b.h > 1 ? (float)(b.h - 1 - j) / (b.h - 1) : 1.0f, rgb);
        fig_img_fill(im, b.x, b.y + j, b.w, 1, rgb);
    }
    fig_img_frame(im, b, FIG_INK);
    double step = fig_nice_step(lo, hi, 5);
    for (double v = ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) {
        char buf[32];
        int y = b.y + (int)lrint((b.h - 1) * (hi - v) / (hi - lo));
        fig_fmt_value(buf, sizeof buf, v, step);
        fig_img_fill(im, b.x + b.w + 1, y, TICK, 1, FIG_INK);
        fig_text_draw(im, f, CBAR_PX, buf, 0, b.x + b.w + TICK + 3, y, 0, 1, 0, FIG_INK);
    }
    if (label && *label) {
        int x = b.x + b.w + fig_cbar_extent(f, lo, hi, label) - box_h(LABEL_PX);
        int h = fig_text_width(f, LABEL_PX, label, b.h);
        fig_text_draw(im, f, LABEL_PX, label, h, x, b.y + (b.h - h) / 2, 0, 0, 1, FIG_INK);
    }
}

void fig_ticks_measure(fig_ticks *t, font *f, int px, int cell, const char *const *row_labels, int rows,
                       const char *const *col_labels, int cols, int maxw)
{
    char buf[16];
    int tb = box_h(px), cw = 0;
    t->row_step = ceil_div(tb + 2, cell);
    t->row_w = 0;
    for (int i = 0; i < rows; i += t->row_step)
        t->row_w = imax(t->row_w, fig_text_width(f, px, fig_tick_label(row_labels, i, buf), maxw));
    for (int i = 0; i < cols; i++)
        cw = imax(cw, fig_text_width(f, px, fig_tick_label(col_labels, i, buf), maxw));
    int step_h = ceil_div(cw + 6, cell), step_v = ceil_div(tb + 2, cell);
    t->col_rotated = step_h > step_v;
    t->col_step = t->col_rotated ? step_v : step_h;
    t->col_h = t->col_rotated ? cw : tb;
    t->over = t->col_rotated ? 0 : imax(0, (cw - cell) / 2 + 1);
}

void fig_row_ticks_draw(image *im, font *f, int px, const char *const *labels, int rows, int step,
                        int gx, int gy, int cell, int maxw)
{
    char buf[16];
    for (int i = 0; i < rows; i += step) {
        int yc = gy + i * cell + cell / 2;
        fig_img_fill(im, gx - TICK - 1, yc, TICK, 1, FIG_INK);
        fig_text_draw(im, f, px, fig_tick_label(labels, i, buf), maxw, gx - TICK - 3, yc, 2, 1, 0, FIG_INK);
    }
}

void fig_col_ticks_draw(image *im, font *f, int px, const char *const *labels, int cols, int step,
                        int gx, int gb, int cell, int maxw, int rotated)
{
    char buf[16];
    for (int i = 0; i < cols; i += step) {
        int xc = gx + i * cell + cell / 2;
        fig_img_fill(im, xc, gb + 1, 1, TICK, FIG_INK);
        fig_text_draw(im, f, px, fig_tick_label(labels, i, buf), maxw, xc, gb + TICK + 3, 1, 0, rotated, FIG_INK);
    }
}

static void fmt_cell(char *buf, size_t n, float v, float absmax)
{
    if (absmax > 0 && absmax < 0.01f) snprintf(buf, n, v == 0 ? "0" : "%.0e", v);
    else if (absmax < 100) snprintf(buf, n, "%.2f", v);
    else if (absmax < 1e5) snprintf(buf, n, "%.0f", v);
    else snprintf(buf, n, "%.1e", v);
}

void fig_data_range(const float *data, int64_t n, float *lo_out, float *hi_out)
{
    float lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(data[i])) { lo = fminf(lo, data[i]); hi = fmaxf(hi, data[i]); }
    if (lo > hi) lo = 0, hi = 1;                           /* nothing finite */
    *lo_out = lo, *hi_out = hi;
    fig_range_fix(lo_out, hi_out);                         /* flat: widened */
}

/* Makes [lo, hi] a range the drawing arithmetic can take, whatever a file held: finite, within
 * +-FLT_MAX/4 (so hi - lo and a 5% pad stay finite floats), a flat one widened by 10% of its value
 * (0.5 at 0), and at least 1e-5 of its magnitude (and 1e-30) wide, so that tick steps are non-zero
 * and a tick loop advances. NaN gives [0, 1]. */
void fig_range_fix(float *lo, float *hi)
{
    const double lim = FLT_MAX / 4;
    double a = *lo, b = *hi;
    if (isnan(a) || isnan(b)) a = 0, b = 1;
    if (a > b) { double t = a; a = b; b = t; }
    a = fmax(-lim, fmin(lim, a)), b = fmax(-lim, fmin(lim, b));
    if (a == b) {
        const double d = a != 0 ? fabs(a) * 0.1 : 0.5;
        a -= d, b += d;
    }
    double w = fmax(fmax(fabs(a), fabs(b)) * 1e-5, 1e-30);
    if (b - a < w) {
        double c = a / 2 + b / 2;
        a = c - w / 2, b = c + w / 2;
    }
    *lo = (float)a, *hi = (float)b;
    if (!(*lo < *hi)) *hi = nextafterf(*lo, INFINITY);
}

static int layout(font *f, fig_layout *L, const float *data, int rows, int cols, const fig_heatmap *o)
{
    char buf[32];
    memset(L, 0, sizeof *L);
    if (rows < 1 || cols < 1 || rows > FIG_MAX_DIM || cols > FIG_MAX_DIM || !data)
        return err_set("figure: heatmap of %d x %d cells: need 1..%d rows and cols and data",
                       rows, cols, FIG_MAX_DIM);
    /* colour range */
    if (o->block_rows < 0 || o->block_cols < 0)
        return err_set("figure: block separators every %d rows / %d cols: need >= 0", o->block_rows, o->block_cols);
    if (!fig_cmap_get(o->cmap)) return -1;
    float lo = o->vmin, hi = o->vmax, absmax = 0;
    if (!(lo < hi)) fig_data_range(data, (int64_t)rows * cols, &lo, &hi);
    fig_range_fix(&lo, &hi);
    L->vmin = lo, L->vmax = hi;
    for (int64_t i = 0; i < (int64_t)rows * cols; i++)
        if (isfinite(data[i])) absmax = fmaxf(absmax, fabsf(data[i]));

    /* cells and tick label thinning */
    int c = L->cell = iclamp(GRID_BUDGET / imax(rows, cols), 1, CELL_MAX);
    fig_ticks tk;
    fig_ticks_measure(&tk, f, L->tick_px = iclamp(c - 2, 10, 13), c, o->row_labels, rows, o->col_labels,
                      cols, LABEL_MAXW);
    L->row_step = tk.row_step, L->col_step = tk.col_step, L->col_rotated = tk.col_rotated;
    int rw = tk.row_w, xext = tk.col_h, over = tk.over;

    /* values in cells: only if the widest fits */
    if (o->annotate && c >= 36) {                              /* smaller: a wall of digits */
        int apx = iclamp(c / 3 + 1, 9, 14), aw = 0;
        fmt_cell(buf, sizeof buf, -absmax, absmax);
        aw = fig_text_width(f, apx, buf, 0);
        if (aw <= c - 4 && box_h(apx) <= c - 2) L->annot_px = apx;
    }

    /* horizontal: margin | ylabel | row labels | grid | colorbar | its ticks | its label | margin */
    int lb = box_h(LABEL_PX), x = MARGIN;
    if (o->ylabel && *o->ylabel) x += lb + GAP;
    L->grid = (fig_rect){imax(x + rw + TICK + 3, MARGIN + over), 0, cols * c, rows * c};
    L->cbar.x = L->grid.x + L->grid.w + imax(2 * GAP, over + GAP);
    L->cbar.w = CBAR_W;
    int right = L->cbar.x + CBAR_W + fig_cbar_extent(f, lo, hi, o->cbar_label);
    if (o->cbar_label && *o->cbar_label) L->cbar_label = (fig_rect){right - lb, 0, lb, 0};
    L->width = right + MARGIN;

    /* vertical: margin | title | grid (colorbar beside) | column labels | xlabel | margin */
    int y = MARGIN, tt = box_h(TITLE_PX);
    if (o->title && *o->title) {
        int w = fig_text_width(f, TITLE_PX, o->title, L->width - 2 * MARGIN);
        L->title = (fig_rect){iclamp(L->grid.x + (L->grid.w - w) / 2, MARGIN, L->width - MARGIN - w), y, w, tt};
        y += tt + GAP + 2;
    }
    L->grid.y = L->cbar.y = y;
    L->cbar.h = imax(L->grid.h, CBAR_MIN_H);
    if (L->cbar_label.w) {
        L->cbar_label.h = fig_text_width(f, LABEL_PX, o->cbar_label, L->cbar.h);
        L->cbar_label.y = L->cbar.y + (L->cbar.h - L->cbar_label.h) / 2;
    }
    if (o->ylabel && *o->ylabel) {
        int h = fig_text_width(f, LABEL_PX, o->ylabel, imax(L->grid.h, 4 * lb));
        L->ylabel = (fig_rect){MARGIN, L->grid.y + (L->grid.h - h) / 2, lb, h};
    }
    y = L->grid.y + L->grid.h + TICK + 3 + xext;
    if (o->xlabel && *o->xlabel) {
        int w = fig_text_width(f, LABEL_PX, o->xlabel, L->width - 2 * MARGIN);
        L->xlabel = (fig_rect){iclamp(L->grid.x + (L->grid.w - w) / 2, MARGIN, L->width - MARGIN - w), y + GAP, w, lb};
        y += GAP + lb;
    }
    L->height = imax(y, L->cbar.y + L->cbar.h + CBAR_PX) + MARGIN;
    return 0;
}

static const fig_heatmap no_opt;

int fig_heatmap_layout(fig_layout *out, const float *data, int rows, int cols, const fig_heatmap *opt)
{
    font f;
    if (fig_font_open(&f)) return -1;
    int rc = layout(&f, out, data, rows, cols, opt ? opt : &no_opt);
    fig_font_close(&f);
    return rc;
}

/* ---- drawing ------------------------------------------------------------------------------ */

void fig_cells_draw(image *im, int x0, int y0, int cell, const float *data, int rows, int cols,
                    float vmin, float vmax, fig_cmap cm)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            float v = data[(int64_t)r * cols + c];
            uint8_t rgb[3];
            if (isnan(v)) memcpy(rgb, FIG_NAN_GREY, 3);
            else fig_cmap_rgb(cm, (v - vmin) / (vmax - vmin), rgb);
            fig_img_fill(im, x0 + c * cell, y0 + r * cell, cell, cell, rgb);
        }
}

/* Lines of width 1 (cells < 8 px) or 2 px centred on every block boundary inside the grid. */
static void draw_separators(image *im, const fig_layout *L, int rows, int cols, int brow, int bcol)
{
    int lw = L->cell < 8 ? 1 : 2;
    for (int r = brow; brow > 0 && r < rows; r += brow)
        fig_img_fill(im, L->grid.x, L->grid.y + r * L->cell - lw / 2, L->grid.w, lw, FIG_WHITE);
    for (int c = bcol; bcol > 0 && c < cols; c += bcol)
        fig_img_fill(im, L->grid.x + c * L->cell - lw / 2, L->grid.y, lw, L->grid.h, FIG_WHITE);
}

static void draw_annotations(image *im, font *f, const fig_layout *L, const float *data, int rows, int cols)
{
    float absmax = 0;
    for (int64_t i = 0; i < (int64_t)rows * cols; i++)
        if (isfinite(data[i])) absmax = fmaxf(absmax, fabsf(data[i]));
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            float v = data[(int64_t)r * cols + c];
            int x = L->grid.x + c * L->cell, y = L->grid.y + r * L->cell;
            if (isnan(v)) continue;
            const uint8_t *rgb = im->px + 3 * ((size_t)y * im->w + x);
            char buf[32];
            fmt_cell(buf, sizeof buf, v, absmax);
            float lum = 0.2126f * rgb[0] + 0.7152f * rgb[1] + 0.0722f * rgb[2];
            fig_text_draw(im, f, L->annot_px, buf, 0, x + L->cell / 2, y + L->cell / 2, 1, 1, 0,
                      lum > 128 ? FIG_INK : FIG_WHITE);
        }
}

static void draw_axes(image *im, font *f, const fig_layout *L, int rows, int cols, const fig_heatmap *o)
{
    fig_row_ticks_draw(im, f, L->tick_px, o->row_labels, rows, L->row_step, L->grid.x, L->grid.y, L->cell, LABEL_MAXW);
    fig_col_ticks_draw(im, f, L->tick_px, o->col_labels, cols, L->col_step, L->grid.x, L->grid.y + L->grid.h,
                       L->cell, LABEL_MAXW, L->col_rotated);
    fig_img_frame(im, L->grid, FIG_INK);
    if (L->title.w) fig_text_draw(im, f, TITLE_PX, o->title, L->title.w, L->title.x, L->title.y, 0, 0, 0, FIG_INK);
    if (L->xlabel.w) fig_text_draw(im, f, LABEL_PX, o->xlabel, L->xlabel.w, L->xlabel.x, L->xlabel.y, 0, 0, 0, FIG_INK);
    if (L->ylabel.w) fig_text_draw(im, f, LABEL_PX, o->ylabel, L->ylabel.h, L->ylabel.x, L->ylabel.y, 0, 0, 1, FIG_INK);
}

/* ---- PNG output --------------------------------------------------------------------------- */

static void png_on_error(png_structp png, png_const_charp msg)
{
    snprintf((char *)png_get_error_ptr(png), 200, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

typedef struct { unsigned char *p; size_t n, cap; } membuf;

static void png_to_mem(png_structp png, png_bytep data, png_size_t len)
{
    membuf *m = png_get_io_ptr(png);
    if (m->n + len > m->cap) {
        m->cap = (m->n + len) * 2;
        m->p = xrealloc(m->p, m->cap);
    }
    memcpy(m->p + m->n, data, len);
    m->n += len;
}

static void png_flush_none(png_structp png) { (void)png; }

/* Encodes im into out (in memory: the file is written in one checked piece). Returns 0, or -1 with
 * libpng's message in msg[200]. */
static int png_emit(membuf *out, const image *im, char *msg)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, msg, png_on_error, png_on_warning);
    if (!png) return snprintf(msg, 200, "cannot create the libpng writer"), -1;
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return snprintf(msg, 200, "cannot create the libpng info"), -1;
    }
    if (setjmp(png_jmpbuf(png))) {                   /* png, info: not modified after setjmp */
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_set_write_fn(png, out, png_to_mem, png_flush_none);
    png_set_IHDR(png, info, im->w, im->h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < im->h; y++) png_write_row(png, im->px + (size_t)y * im->w * 3);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

/* Encodes im and replaces path with it atomically (afile.h: a temporary beside it, fsynced and
 * renamed; on failure path is untouched and the temporary removed). */
int fig_png_save(const char *path, const image *im)
{
    char msg[200] = "";
    membuf m = {NULL, 0, 0};
    int rc = png_emit(&m, im, msg);
    if (rc) err_set("%s: figure: libpng: %s", path, msg);
    else rc = afile_write_file(path, m.p, m.n);
    free(m.p);
    return rc;
}

int fig_err_prefix(const char *path)          /* err_get() is err_set()'s own buffer: copy */
{
    char prev[512];
    snprintf(prev, sizeof prev, "%s", err_get());
    return err_set("%s: %s", path, prev);
}

int fig_heatmap_png(const char *path, const float *data, int rows, int cols, const fig_heatmap *opt)
{
    font f;
    fig_layout L;
    if (!opt) opt = &no_opt;
    fig_cmap cm = fig_cmap_get(opt->cmap);
    if (!cm) return fig_err_prefix(path);
    if (fig_font_open(&f)) return fig_err_prefix(path);
    if (layout(&f, &L, data, rows, cols, opt)) {
        fig_font_close(&f);
        return fig_err_prefix(path);
    }
    image im = fig_img_new(L.width, L.height);
    fig_cells_draw(&im, L.grid.x, L.grid.y, L.cell, data, rows, cols, L.vmin, L.vmax, cm);
    if (L.annot_px) draw_annotations(&im, &f, &L, data, rows, cols);
    draw_separators(&im, &L, rows, cols, opt->block_rows, opt->block_cols);
    draw_axes(&im, &f, &L, rows, cols, opt);
    fig_cbar_draw(&im, &f, L.cbar, L.vmin, L.vmax, cm, opt->cbar_label);
    fig_font_close(&f);
    int rc = fig_png_save(path, &im);
    free(im.px);
    return rc;
}
