/* test_figure.c — heatmap PNGs read back with libpng and checked pixel by pixel.
 *
 * References: the viridis colours come from matplotlib's _viridis_data (written out below, not
 * taken from figure.c); positions come from fig_heatmap_layout(). Checks: image size, cell
 * colours, NaN grey, ink in the title/label boxes, colorbar ends, failure leaves no file.
 * Also the newer plot types: magma and block separators on a heatmap, a scatter plot (a dot's
 * centre pixel has its colour), small multiples (a known panel's known cell), and the HTML index
 * (PNG names present, data escaped for HTML and JS, one balanced <script>). magma references are
 * matplotlib's _magma_data rows 0, 128, 255, written out below.
 * The PNGs stay in a temp dir (printed) so a person can look at them. Exits 1 on any failure. */
#include "figure.h"
#include "util.h"
#include <float.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>

static int fails = 0;
#define EXPECT(cond, ...) do { if (!(cond)) { fails++; printf("FAIL %s:%d: ", __FILE__, __LINE__); \
    printf(__VA_ARGS__); printf("\n"); } } while (0)

/* matplotlib: viridis(0.0), (0.25), (0.5), (0.75), (1.0) = _viridis_data[0, 64, 128, 192, 255] */
static const float REF[5][3] = {
    {0.267004f, 0.004874f, 0.329415f}, {0.229739f, 0.322361f, 0.545706f},
    {0.127568f, 0.566949f, 0.550556f}, {0.369214f, 0.788888f, 0.382914f},
    {0.993248f, 0.906157f, 0.143936f},
};

typedef struct { int w, h; uint8_t *px; } rgb_image;

static int png_read(const char *path, rgb_image *im)
{
    png_image p;
    memset(&p, 0, sizeof p);
    p.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&p, path)) return -1;
    p.format = PNG_FORMAT_RGB;
    im->w = p.width, im->h = p.height;
    im->px = xmalloc(PNG_IMAGE_SIZE(p));
    if (!png_image_finish_read(&p, NULL, im->px, 0, NULL)) { free(im->px); return -1; }
    return 0;
}

static const uint8_t *pix(const rgb_image *im, int x, int y) { return im->px + 3 * ((size_t)y * im->w + x); }

/* Pixel (x, y) against a reference colour in [0,1]: at most 1 step off per channel. */
static void expect_rgb(const rgb_image *im, int x, int y, const float ref[3], const char *what)
{
    const uint8_t *p = pix(im, x, y);
    int d = 0;
    for (int k = 0; k < 3; k++) d = fmax(d, abs(p[k] - (int)lrintf(ref[k] * 255)));
    printf("  %-28s (%4d,%4d) = %3d %3d %3d  ref %3ld %3ld %3ld  max diff %d\n", what, x, y, p[0], p[1], p[2],
           lrintf(ref[0] * 255), lrintf(ref[1] * 255), lrintf(ref[2] * 255), d);
    EXPECT(d <= 1, "%s: colour differs by %d", what, d);
}

static void expect_cell(const rgb_image *im, const fig_layout *L, int r, int c, int inset, const float ref[3],
                        const char *what)
{
    int x = L->grid.x + c * L->cell + (inset < 0 ? L->cell / 2 : inset);
    int y = L->grid.y + r * L->cell + (inset < 0 ? L->cell / 2 : inset);
    expect_rgb(im, x, y, ref, what);
}

/* Count of dark pixels (luminance < 100) in r: text was drawn there. */
static int dark_in(const rgb_image *im, fig_rect r)
{
    int n = 0;
    for (int y = r.y; y < r.y + r.h && y < im->h; y++)
        for (int x = r.x; x < r.x + r.w && x < im->w; x++) {
            const uint8_t *p = pix(im, x, y);
            n += 0.2126 * p[0] + 0.7152 * p[1] + 0.0722 * p[2] < 100;
        }
    return n;
}

static void expect_ink(const rgb_image *im, fig_rect r, const char *what)
{
    int n = dark_in(im, r);
    printf("  %-28s box (%d,%d %dx%d): %d dark pixels\n", what, r.x, r.y, r.w, r.h, n);
    EXPECT(r.w > 0 && r.h > 0 && n >= 10, "%s: box empty or blank", what);
}

static void expect_size(const rgb_image *im, const fig_layout *L, const char *name)
{
    printf("  %-28s %d x %d, layout %d x %d, cell %d px, row/col label step %d/%d%s\n", name, im->w, im->h,
           L->width, L->height, L->cell, L->row_step, L->col_step, L->col_rotated ? ", col labels rotated" : "");
    EXPECT(im->w == L->width && im->h == L->height, "%s: size differs from layout", name);
    EXPECT(L->width <= 2400 && L->height <= 2400, "%s: image larger than 2400 px", name);
}

static void expect_cbar_ends(const rgb_image *im, const fig_layout *L)
{
    expect_rgb(im, L->cbar.x + L->cbar.w / 2, L->cbar.y, REF[4], "colorbar top = viridis(1)");
    expect_rgb(im, L->cbar.x + L->cbar.w / 2, L->cbar.y + L->cbar.h - 1, REF[0], "colorbar bottom = viridis(0)");
}

/* 6 layers x 12 heads: gradient, exact quarter values in known cells, one NaN. */
static void test_layer_head(const char *dir, int annotate, char *out, size_t n)
{
    float d[6 * 12];
    for (int i = 0; i < 6 * 12; i++) d[i] = (float)i / 71.0f;
    d[0] = 0.0f, d[1 * 12 + 3] = 0.5f, d[4 * 12 + 7] = 0.25f, d[3 * 12 + 10] = 0.75f, d[5 * 12 + 11] = 1.0f;
    d[2 * 12 + 5] = NAN;
    d[5 * 12 + 10] = 7.0f;                                      /* above vmax: clamped to the top */
    fig_heatmap opt = {.title = "Attention entropy per head (nats)", .xlabel = "head", .ylabel = "layer",
                       .cbar_label = "mean entropy", .vmin = 0, .vmax = 1, .annotate = annotate};
    snprintf(out, n, "%s/layer_head%s.png", dir, annotate ? "_annotated" : "");
    printf("%s\n", out);
    fig_layout L;
    int rc = fig_heatmap_png(out, d, 6, 12, &opt);
    EXPECT(rc == 0, "fig_heatmap_png: %s", err_get());
    EXPECT(fig_heatmap_layout(&L, d, 6, 12, &opt) == 0, "layout: %s", err_get());
    rgb_image im;
    if (rc || png_read(out, &im)) { fails++; printf("FAIL cannot read %s back\n", out); return; }
    expect_size(&im, &L, "size");
    EXPECT(!annotate || L.annot_px > 0, "annotations requested on 48 px cells but not drawn");
    int inset = annotate ? 3 : -1;                             /* annotated: sample beside the text */
    expect_cell(&im, &L, 0, 0, inset, REF[0], "cell (0,0)  = 0.00");
    expect_cell(&im, &L, 4, 7, inset, REF[1], "cell (4,7)  = 0.25");
    expect_cell(&im, &L, 1, 3, inset, REF[2], "cell (1,3)  = 0.50");
    expect_cell(&im, &L, 3, 10, inset, REF[3], "cell (3,10) = 0.75");
    expect_cell(&im, &L, 5, 11, inset, REF[4], "cell (5,11) = 1.00");
    expect_cell(&im, &L, 5, 10, inset, REF[4], "cell (5,10) = 7 (clamped)");
    const uint8_t *g = pix(&im, L.grid.x + 5 * L.cell + L.cell / 2, L.grid.y + 2 * L.cell + L.cell / 2);
    printf("  %-28s = %d %d %d\n", "NaN cell (2,5) centre", g[0], g[1], g[2]);
    EXPECT(g[0] == g[1] && g[1] == g[2] && g[0] > 60 && g[0] < 200, "NaN cell not grey");
    if (annotate) {                              /* cell (0,0) is dark: white text; (5,11) bright: dark */
        fig_rect c0 = {L.grid.x, L.grid.y, L.cell, L.cell}, c1 = {L.grid.x + 11 * L.cell, L.grid.y + 5 * L.cell, L.cell, L.cell};
        int white = 0;
        for (int y = c0.y; y < c0.y + c0.h; y++)
            for (int x = c0.x; x < c0.x + c0.w; x++) white += pix(&im, x, y)[1] > 200;
        printf("  annotation: %d white pixels in dark cell (0,0), %d dark pixels in bright cell (5,11)\n",
               white, dark_in(&im, c1));
        EXPECT(white >= 10 && dark_in(&im, c1) >= 10, "annotation text colour not chosen by luminance");
    }
    expect_ink(&im, L.title, "title");
    expect_ink(&im, L.xlabel, "xlabel");
    expect_ink(&im, L.ylabel, "ylabel");
    expect_ink(&im, L.cbar_label, "colorbar label");
    expect_cbar_ends(&im, &L);
    free(im.px);
}

/* n x n token attention with Chinese and English labels (causal, rows sum to 1). */
static void test_tokens(const char *dir, int n, char *out, size_t outn)
{
    static const char *words[] = {"The", "cat", "sat", "on", "the", "mat", ",", "它", "很", "开心", "。",
        "Attention", "is", "all", "you", "need", "这是", "一个", "很长很长很长很长的中文标签用于测试截断",
        "supercalifragilisticexpialidocious", "▁token", "Ġhello", "[CLS]", "[SEP]", "北京", "is", "big",
        "\n", "日本語", "über", "naïve", "3.14"};
    const char **lab = xmalloc(sizeof *lab * n);
    float *d = xmalloc(sizeof *d * n * n);
    for (int i = 0; i < n; i++) {
        lab[i] = words[i % (sizeof words / sizeof *words)];
        for (int j = 0; j < n; j++) d[i * n + j] = j <= i ? 1.0f / (i + 1) : 0.0f;
    }
    d[n - 1] = 0.5f;                                          /* row 0, last col */
    fig_heatmap opt = {.title = "第 3 层 第 5 头 · layer 3 head 5 attention", .xlabel = "key token",
                       .ylabel = "query token", .cbar_label = "attention probability",
                       .row_labels = lab, .col_labels = lab, .vmin = 0, .vmax = 1, .annotate = 1};
    snprintf(out, outn, "%s/tokens_%d.png", dir, n);
    printf("%s\n", out);
    fig_layout L;
    int rc = fig_heatmap_png(out, d, n, n, &opt);
    EXPECT(rc == 0, "fig_heatmap_png: %s", err_get());
    EXPECT(fig_heatmap_layout(&L, d, n, n, &opt) == 0, "layout: %s", err_get());
    rgb_image im;
    if (rc || png_read(out, &im)) { fails++; printf("FAIL cannot read %s back\n", out); free(lab); free(d); return; }
    expect_size(&im, &L, "size");
    EXPECT(L.cell >= 6, "cells of %d px are too small to read", L.cell);
    int in = L.annot_px ? 2 : -1;                             /* annotated: sample beside the text */
    expect_cell(&im, &L, 0, 0, in, REF[4], "cell (0,0) = 1.0");
    expect_cell(&im, &L, 1, 0, in, REF[2], "cell (1,0) = 0.5");
    expect_cell(&im, &L, 3, 2, in, REF[1], "cell (3,2) = 0.25");
    expect_cell(&im, &L, 0, n - 1, in, REF[2], "cell (0,n-1) = 0.5");
    expect_cell(&im, &L, n - 2, n - 1, in, REF[0], "cell (n-2,n-1) = 0");
    expect_ink(&im, L.title, "title");
    expect_ink(&im, L.xlabel, "xlabel");
    expect_ink(&im, L.ylabel, "ylabel");
    expect_ink(&im, L.cbar_label, "colorbar label");
    fig_rect yt = {0, L.grid.y, L.grid.x - 5, L.cell}, xt = {L.grid.x, L.grid.y + L.grid.h + 5, L.cell, 20};
    expect_ink(&im, yt, "row 0 tick label");
    expect_ink(&im, xt, "col 0 tick label");
    expect_cbar_ends(&im, &L);
    free(im.px);
    free(lab);
    free(d);
}

static int temps_left(const char *dir, const char *prefix)
{
    DIR *dp = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (dp && (e = readdir(dp))) n += strstr(e->d_name, prefix) && strstr(e->d_name, ".tmp.");   /* ".NAME.tmp.XXXXXX" */
    if (dp) closedir(dp);
    return n;
}

static void test_failures(const char *dir)
{
    float d[4] = {0, 1, 2, NAN};
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/no_such_dir/fig.png", dir);
    int rc = fig_heatmap_png(path, d, 2, 2, NULL);
    printf("missing directory: rc %d, \"%s\"\n", rc, err_get());
    EXPECT(rc == -1 && strstr(err_get(), path), "missing dir: want -1 and a message naming the path");
    EXPECT(stat(path, &st) != 0, "missing dir: a file exists at %s", path);

    snprintf(path, sizeof path, "%s/a_directory", dir);     /* rename onto a directory fails */
    mkdir(path, 0755);
    rc = fig_heatmap_png(path, d, 2, 2, NULL);
    printf("target is a directory: rc %d, \"%s\"\n", rc, err_get());
    EXPECT(rc == -1 && strstr(err_get(), path), "directory target: want -1 and a message naming the path");
    EXPECT(temps_left(dir, "a_directory") == 0, "a temporary file was left beside %s", path);

    setenv("ATTNSCOPE_FONT", "/no/such/font.ttf", 1);     /* an explicit font that is missing */
    snprintf(path, sizeof path, "%s/nofont.png", dir);
    const char *fp = fig_font_path();
    printf("missing $ATTNSCOPE_FONT: %s, \"%s\"\n", fp ? fp : "NULL", err_get());
    EXPECT(!fp && strstr(err_get(), "/no/such/font.ttf"), "missing font: want NULL and a message naming it");
    rc = fig_heatmap_png(path, d, 2, 2, NULL);
    EXPECT(rc == -1 && stat(path, &st) != 0 && strstr(err_get(), path), "missing font: want -1, no file");
    unsetenv("ATTNSCOPE_FONT");

    snprintf(path, sizeof path, "%s/bad.png", dir);
    rc = fig_heatmap_png(path, d, 0, 2, NULL);
    printf("0 rows: rc %d, \"%s\"\n", rc, err_get());
    EXPECT(rc == -1 && stat(path, &st) != 0, "0 rows: want -1 and no file");
}

/* matplotlib: magma(0.0), (0.5), (1.0) = _magma_data[0, 128, 255] */
static const float MAGMA[3][3] = {
    {0.001462f, 0.000466f, 0.013866f}, {0.716387f, 0.214982f, 0.475290f}, {0.987053f, 0.991438f, 0.749504f},
};
static const float WHITE_F[3] = {1, 1, 1}, BLUE_F[3] = {31 / 255.0f, 119 / 255.0f, 180 / 255.0f};

/* (3 layers x 4 heads)^2 similarity, magma, separators every 4 rows/cols. */
static void test_blocks_magma(const char *dir, char *out, size_t n, fig_layout *L, float *d)
{
    for (int i = 0; i < 144; i++) d[i] = (float)(i % 7) / 6.0f * 0.9f + 0.05f;
    d[0] = 0.0f, d[1 * 12 + 1] = 0.5f, d[143] = 1.0f;
    const char *lab[12] = {"L0 H0", "L0 H1", "L0 H2", "L0 H3", "L1 H0", "L1 H1", "L1 H2", "L1 H3",
                           "L2 H0", "L2 H1", "L2 H2", "L2 H3"};
    fig_heatmap opt = {.title = "Head similarity (Jensen-Shannon divergence)", .cbar_label = "JS divergence",
                       .row_labels = lab, .col_labels = lab, .vmin = 0, .vmax = 1, .block_rows = 4,
                       .block_cols = 4, .cmap = "magma"};
    snprintf(out, n, "%s/blocks_magma.png", dir);
    printf("%s\n", out);
    int rc = fig_heatmap_png(out, d, 12, 12, &opt);
    EXPECT(rc == 0, "fig_heatmap_png: %s", err_get());
    EXPECT(fig_heatmap_layout(L, d, 12, 12, &opt) == 0, "layout: %s", err_get());
    rgb_image im;
    if (rc || png_read(out, &im)) { fails++; printf("FAIL cannot read %s back\n", out); return; }
    expect_size(&im, L, "size");
    expect_cell(&im, L, 0, 0, -1, MAGMA[0], "cell (0,0) = magma(0)");
    expect_cell(&im, L, 1, 1, -1, MAGMA[1], "cell (1,1) = magma(0.5)");
    expect_cell(&im, L, 11, 11, -1, MAGMA[2], "cell (11,11) = magma(1)");
    int yb = L->grid.y + 4 * L->cell, xb = L->grid.x + 8 * L->cell, mid = L->cell / 2;
    expect_rgb(&im, L->grid.x + 2 * L->cell + mid, yb, WHITE_F, "row separator after row 3");
    expect_rgb(&im, L->grid.x + 2 * L->cell + mid, yb - 1, WHITE_F, "row separator (2nd px)");
    expect_rgb(&im, xb, L->grid.y + 5 * L->cell + mid, WHITE_F, "col separator before col 8");
    const uint8_t *p = pix(&im, L->grid.x + 2 * L->cell, L->grid.y + mid);   /* inside block: no line */
    printf("  %-28s = %d %d %d\n", "col 1|2 boundary (no line)", p[0], p[1], p[2]);
    EXPECT(!(p[0] == 255 && p[1] == 255 && p[2] == 255), "a separator inside a block");
    expect_rgb(&im, L->cbar.x + L->cbar.w / 2, L->cbar.y, MAGMA[2], "colorbar top = magma(1)");
    expect_rgb(&im, L->cbar.x + L->cbar.w / 2, L->cbar.y + L->cbar.h - 1, MAGMA[0], "colorbar bottom = magma(0)");
    free(im.px);
}

/* Mean attention distance vs layer, one dot per head (6 layers x 12 heads), coloured by head. */
static void test_scatter(const char *dir, char *out, size_t n, fig_scatter_layout *L, float *x, float *y,
                         float *col, float *px, float *py)
{
    for (int i = 0; i < 72; i++) {
        x[i] = (float)(i / 12), col[i] = (float)(i % 12);
        y[i] = 20.0f + 4.0f * (i / 12) + 1.5f * (float)((i * 7) % 12);
    }
    y[0] = 120.0f, y[71] = 2.0f;                  /* isolated dots: head 0 at the top, head 11 low */
    fig_scatter opt = {.title = "Mean attention distance by layer", .xlabel = "layer",
                       .ylabel = "mean attention distance (tokens)", .cbar_label = "head", .x_integer = 1,
                       .jitter = 0.3f};
    snprintf(out, n, "%s/scatter.png", dir);
    printf("%s\n", out);
    int rc = fig_scatter_png(out, x, y, col, 72, &opt);
    EXPECT(rc == 0, "fig_scatter_png: %s", err_get());
    EXPECT(fig_scatter_layout_get(L, x, y, col, 72, &opt) == 0, "scatter layout: %s", err_get());
    rgb_image im;
    if (rc || png_read(out, &im)) { fails++; printf("FAIL cannot read %s back\n", out); return; }
    printf("  size %d x %d, layout %d x %d, x ticks %d (step %g), y ticks %d (step %g)\n", im.w, im.h, L->width,
           L->height, L->nxticks, L->xstep, L->nyticks, L->ystep);
    EXPECT(im.w == L->width && im.h == L->height, "scatter: size differs from layout");
    EXPECT(L->nxticks >= 4 && L->nyticks >= 4, "scatter: fewer than 4 ticks on an axis");
    for (int i = 0; i < 72; i++) fig_scatter_pos(L, i, x[i], y[i], &px[i], &py[i]);
    expect_rgb(&im, (int)px[0], (int)py[0], REF[0], "dot 0 (head 0) = viridis(0)");
    expect_rgb(&im, (int)px[71], (int)py[71], REF[4], "dot 71 (head 11) = viridis(1)");
    float dx = px[0] - (L->plot.x + 0.5f + (0 - L->xmin) / (L->xmax - L->xmin) * (L->plot.w - 1));
    printf("  jitter of dot 0: %.2f px (limit %.2f)\n", dx, 0.15f * (L->plot.w - 1) / (L->xmax - L->xmin));
    EXPECT(fabsf(dx) <= 0.15f * (L->plot.w - 1) / (L->xmax - L->xmin) + 0.01f, "jitter beyond jitter/2");
    expect_ink(&im, L->title, "scatter title");
    expect_ink(&im, L->xlabel, "scatter xlabel");
    expect_ink(&im, L->ylabel, "scatter ylabel");
    expect_rgb(&im, L->cbar.x + L->cbar.w / 2, L->cbar.y, REF[4], "scatter colorbar top");
    free(im.px);

    char mono[600];                                 /* one colour, no colorbar */
    snprintf(mono, sizeof mono, "%s/scatter_mono.png", dir);
    fig_scatter o2 = {.title = "one colour", .xlabel = "x", .ylabel = "y"};
    fig_scatter_layout L2;
    rc = fig_scatter_png(mono, y, x, NULL, 72, &o2);
    EXPECT(rc == 0 && fig_scatter_layout_get(&L2, y, x, NULL, 72, &o2) == 0, "mono scatter: %s", err_get());
    if (rc || png_read(mono, &im)) { fails++; return; }
    float qx, qy;
    fig_scatter_pos(&L2, 0, y[0], x[0], &qx, &qy);
    expect_rgb(&im, (int)qx, (int)qy, BLUE_F, "mono dot 0 = tab:blue");
    EXPECT(L2.cbar.w == 0 && im.w == L2.width, "mono scatter: a colorbar or wrong size");
    free(im.px);
}

/* n_rows x 12 panels of t x t tokens; panel k cell (r, c) = ((k + r + c) % 5) / 5, and a marked
 * cell (3, 7) = 0.75 in panel 29 ("L2 H5"). */
static void test_grid(const char *dir, int prow, int t, char *out, size_t n)
{
    int nm = prow * 12;
    float **maps = xmalloc(sizeof *maps * nm);
    char (*titles)[32] = xmalloc(32 * (size_t)nm);
    const char **tp = xmalloc(sizeof *tp * nm), **lab = xmalloc(sizeof *lab * t);
    static const char *w[] = {"[CLS]", "the", "猫", "sat", "on", "a", "mat", "。", "supercalifragilistic", "[SEP]"};
    for (int i = 0; i < t; i++) lab[i] = w[i % 10];
    for (int k = 0; k < nm; k++) {
        maps[k] = xmalloc(sizeof **maps * t * t);
        for (int i = 0; i < t * t; i++) maps[k][i] = (float)((k + i / t + i % t) % 5) / 5.0f;
        snprintf(titles[k], 32, "L%d H%d", k / 12, k % 12);
        tp[k] = titles[k];
    }
    maps[29][3 * t + 7] = 0.75f;
    maps[nm - 1][t * t - 1] = 1.0f;
    fig_grid opt = {.title = "Attention maps, every head", .panel_titles = tp, .row_labels = lab,
                    .col_labels = lab, .cbar_label = "attention probability", .vmin = 0, .vmax = 1};
    snprintf(out, n, "%s/grid_%dx12_%d.png", dir, prow, t);
    printf("%s\n", out);
    fig_grid_layout L;
    int rc = fig_grid_png(out, (const float *const *)maps, nm, t, t, 12, &opt);
    EXPECT(rc == 0, "fig_grid_png: %s", err_get());
    EXPECT(fig_grid_layout_get(&L, (const float *const *)maps, nm, t, t, 12, &opt) == 0, "grid layout: %s", err_get());
    rgb_image im;
    if (rc == 0 && png_read(out, &im) == 0) {
        printf("  size %d x %d, layout %d x %d, cell %d px, panel %d x %d, label steps %d/%d\n", im.w, im.h,
               L.width, L.height, L.cell, L.panel_w, L.panel_h, L.row_step, L.col_step);
        EXPECT(im.w == L.width && im.h == L.height, "grid: size differs from layout");
        EXPECT(L.width <= 3000 && L.height <= 3100, "grid: larger than ~3000 px");
        EXPECT(L.cell >= 2, "grid: cells of %d px", L.cell);
        fig_rect p = fig_grid_panel(&L, 29);
        expect_rgb(&im, p.x + 7 * L.cell + L.cell / 2, p.y + 3 * L.cell + L.cell / 2, REF[3], "panel 29 cell (3,7) = 0.75");
        p = fig_grid_panel(&L, nm - 1);
        expect_rgb(&im, p.x + (t - 1) * L.cell + L.cell / 2, p.y + (t - 1) * L.cell + L.cell / 2, REF[4],
                   "last panel cell (t-1,t-1) = 1");
        p = fig_grid_panel(&L, 13);                 /* (13 + 0 + 0) % 5 = 3 -> 0.6 */
        const uint8_t *a = pix(&im, p.x, p.y), *b = pix(&im, p.x + L.cell / 2, p.y + L.cell / 2);
        printf("  panel 13 cell (0,0) corner vs centre: %d %d %d / %d %d %d\n", a[0], a[1], a[2], b[0], b[1], b[2]);
        EXPECT(!memcmp(a, b, 3), "panel 13: cell not uniform");
        fig_rect pt = {p.x, p.y - 18, p.w, 16};
        expect_ink(&im, pt, "panel 13 title");
        fig_rect rl = {0, fig_grid_panel(&L, 12).y, fig_grid_panel(&L, 12).x - 5, L.panel_h};
        expect_ink(&im, rl, "row labels left of panel 12");
        expect_ink(&im, L.title, "grid title");
        free(im.px);
    } else { fails++; printf("FAIL cannot read %s back\n", out); }
    for (int k = 0; k < nm; k++) free(maps[k]);
    free(maps), free(titles), free(tp), free(lab);
}

/* maps over an image: a grey image with a black square in its top-left quarter, a 3 x 4 map of 1 in
 * its top two rows and 0 in the bottom one; near the top edge (where the bilinear map is exactly
 * 1) a pixel is (1 − α)·image + α·viridis(1), near the bottom (exactly 0) (1 − α)·image +
 * α·viridis(0); the black square stays darker than the grey beside it under the same map value */
static void test_overlay(const char *dir, char *out, size_t n)
{
    const int W = 80, H = 60;
    uint8_t *rgb = xmalloc((size_t)W * H * 3);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) memset(rgb + ((size_t)y * W + x) * 3, x < W / 2 && y < H / 2 ? 0 : 200, 3);
    float m0[12] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0}, m1[12] = {0};
    m1[0] = 1.0f;
    const float *maps[2] = {m0, m1};
    const char *titles[2] = {"L0 H0", "rollout"};
    fig_overlay opt = {.title = "[CLS] attention over the image", .panel_titles = titles, .cbar_label = "attention",
                       .vmin = 0, .vmax = 1, .alpha = 0.5f};
    snprintf(out, n, "%s/overlay.png", dir);
    printf("%s\n", out);
    fig_overlay_layout L;
    int rc = fig_overlay_png(out, rgb, W, H, maps, 2, 3, 4, 2, &opt);
    EXPECT(rc == 0, "fig_overlay_png: %s", err_get());
    EXPECT(fig_overlay_layout_get(&L, maps, 2, 3, 4, W, H, 2, &opt) == 0, "overlay layout: %s", err_get());
    rgb_image im;
    if (rc == 0 && png_read(out, &im) == 0) {
        EXPECT(im.w == L.width && im.h == L.height, "overlay: size differs from layout");
        EXPECT(L.panel_w == 192 && L.panel_h == 144, "overlay: panel %d x %d, expected 192 x 144 (4:3)", L.panel_w, L.panel_h);
        const fig_rect p = fig_overlay_panel(&L, 0);
        float hi[3], lo[3];
        for (int k = 0; k < 3; k++) {
            hi[k] = 0.5f * 200 / 255.0f + 0.5f * REF[4][k];
            lo[k] = 0.5f * 200 / 255.0f + 0.5f * REF[0][k];
        }
        expect_rgb(&im, p.x + 3 * p.w / 4, p.y + 2, hi, "overlay: top edge (map 1)");
        expect_rgb(&im, p.x + 3 * p.w / 4, p.y + p.h - 2, lo, "overlay: bottom edge (map 0)");
        const uint8_t *dark = pix(&im, p.x + p.w / 8, p.y + 2), *light = pix(&im, p.x + 7 * p.w / 8, p.y + 2);
        EXPECT(dark[1] + 40 < light[1], "overlay: the image's black square does not show through (%d vs %d)", dark[1], light[1]);
        expect_ink(&im, L.title, "overlay title");
        free(im.px);
    } else { fails++; printf("FAIL cannot read %s back\n", out); }
    free(rgb);
}

/* Values a damaged or hostile run file can hold: +-FLT_MAX, denormals, equal values, infinities
 * and NaN, as data and as the colour range. Every plot type must draw them (a PNG of the layout's
 * size), not loop, crash or overflow an int (found by fuzzing reduce: a scatter axis from
 * -FLT_MAX to FLT_MAX gave a NaN tick count; `make sanitize` runs this test under UBSan). */
static void test_extremes(const char *dir)
{
    const float M = FLT_MAX, D = 1e-45f, I = INFINITY, N = NAN;
    static const float sets[][4] = {
        {-FLT_MAX, FLT_MAX, 0, 1}, {FLT_MAX, FLT_MAX, FLT_MAX, FLT_MAX}, {1e-45f, 1e-45f, 1e-45f, 1e-45f},
        {0, 0, 0, 0}, {-FLT_MAX, -FLT_MAX, -1e38f, NAN}, {NAN, FLT_MAX, -INFINITY, 3}, {1e30f, 1e30f, 1.0000001e30f, 1e30f},
        {3e37f, 3e37f + 1e31f, 3e37f, 3e37f},
    };
    const float ranges[][2] = {{0, 0}, {-I, I}, {-M, M}, {D, 2 * D}, {N, 1}, {-I, 0}};
    int drawn = 0, k = 0;
    char out[600];
    for (size_t si = 0; si < sizeof sets / sizeof *sets; si++)
        for (size_t ri = 0; ri < sizeof ranges / sizeof *ranges; ri++, k++) {
            const float *d = sets[si], lo = ranges[ri][0], hi = ranges[ri][1];
            rgb_image im;
            fig_heatmap ho = {.title = "extreme", .vmin = lo, .vmax = hi};
            fig_layout HL;
            snprintf(out, sizeof out, "%s/x_heat_%d.png", dir, k);
            int rc = fig_heatmap_png(out, d, 2, 2, &ho);
            EXPECT(rc == 0 && fig_heatmap_layout(&HL, d, 2, 2, &ho) == 0, "heatmap of set %zu range %zu: %s", si, ri, err_get());
            if (rc == 0 && png_read(out, &im) == 0) {
                EXPECT(im.w == HL.width && im.h == HL.height, "heatmap set %zu: size differs", si);
                drawn++, free(im.px);
            }
            for (int xi = 0; xi < 2; xi++) {
                const float x[4] = {d[0], d[1], xi ? 2 : d[2], d[3]};
                fig_scatter so = {.title = "extreme", .x_integer = xi, .cmin = lo, .cmax = hi, .jitter = xi ? 0.5f : 0};
                snprintf(out, sizeof out, "%s/x_scatter_%d_%d.png", dir, k, xi);
                rc = fig_scatter_png(out, x, d, d, 4, &so);
                fig_scatter_layout SL;
                int lrc = fig_scatter_layout_get(&SL, x, d, d, 4, &so);
                EXPECT(rc == lrc, "scatter set %zu: png %d, layout %d", si, rc, lrc);
                if (rc == 0 && png_read(out, &im) == 0) {
                    EXPECT(im.w == SL.width && im.h == SL.height, "scatter set %zu: size differs", si);
                    EXPECT(SL.nxticks >= 1 && SL.nxticks <= 50 && SL.nyticks >= 1 && SL.nyticks <= 50,
                           "scatter set %zu range %zu: %d x %d ticks", si, ri, SL.nxticks, SL.nyticks);
                    drawn++, free(im.px);
                }
            }
            const float *maps[2] = {d, sets[(si + 1) % (sizeof sets / sizeof *sets)]};
            fig_grid go = {.vmin = lo, .vmax = hi};
            snprintf(out, sizeof out, "%s/x_grid_%d.png", dir, k);
            rc = fig_grid_png(out, maps, 2, 2, 2, 2, &go);
            EXPECT(rc == 0, "grid set %zu range %zu: %s", si, ri, err_get());
            if (rc == 0 && png_read(out, &im) == 0) drawn++, free(im.px);
            uint8_t rgb[4 * 4 * 3] = {0};
            for (int pp = 0; pp < 2; pp++) {
                fig_overlay oo = {.vmin = lo, .vmax = hi, .per_panel = pp};
                snprintf(out, sizeof out, "%s/x_overlay_%d_%d.png", dir, k, pp);
                rc = fig_overlay_png(out, rgb, 4, 4, maps, 2, 2, 2, 2, &oo);
                EXPECT(rc == 0, "overlay set %zu range %zu: %s", si, ri, err_get());
                if (rc == 0 && png_read(out, &im) == 0) drawn++, free(im.px);
            }
        }
    printf("extreme values: %d PNGs drawn of %d data sets x %d colour ranges\n", drawn,
           (int)(sizeof sets / sizeof *sets), (int)(sizeof ranges / sizeof *ranges));
}

static int count(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)); p++) n++;
    return n;
}

static void test_html(const char *dir, const char *heat_png, const fig_layout *HL, const float *hd,
                      const fig_scatter_layout *SL, const float *x, const float *y, const float *px,
                      const float *py, char *out, size_t n)
{
    const char *lab[12] = {"a<b\"c", "L0 H1", "中文", "back\\slash", "</script>", "L1 H1", "L1 H2", "L1 H3",
                           "L2 H0", "L2 H1", "L2 H2", "L2 H3"};
    const char *plab[72];
    char pbuf[72][32];
    for (int i = 0; i < 72; i++) snprintf(pbuf[i], 32, "L%d H%d", i / 12, i % 12), plab[i] = pbuf[i];
    const char *base = strrchr(heat_png, '/') + 1;
    fig_html_entry e[3] = {
        {.kind = FIG_HTML_HEATMAP, .png = base, .caption = "Head similarity: a<b\"c & 中文", .data = hd,
         .rows = 12, .cols = 12, .row_labels = lab, .col_labels = lab, .grid_x = HL->grid.x,
         .grid_y = HL->grid.y, .cell = HL->cell},
        {.kind = FIG_HTML_SCATTER, .png = "scatter.png", .caption = "Mean attention distance", .n = 72, .x = x,
         .y = y, .px = px, .py = py, .labels = plab, .note = "exemplars:\n1. <b>bold</b> & \"quoted\"\n2. 北京"},
        {.kind = FIG_HTML_IMAGE, .png = "grid_6x12_20.png", .caption = "Every head"},
    };
    (void)SL;
    snprintf(out, n, "%s/index.html", dir);
    printf("%s\n", out);
    int rc = fig_html_index(out, e, 3, "attnscope — test figures");
    EXPECT(rc == 0, "fig_html_index: %s", err_get());
    size_t len;
    char *h = util_read_file(out, 1 << 24, &len);
    if (!h) { fails++; printf("FAIL cannot read %s\n", out); return; }
    static const char *want[] = {"src=\"blocks_magma.png\"", "src=\"scatter.png\"", "src=\"grid_6x12_20.png\"",
        "a&lt;b&quot;c &amp; 中文", "\"a\\u003cb\\\"c\"", "\"back\\\\slash\"", "\"\\u003c/script\\u003e\"",
        "&lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot;", "<figcaption>", "\"中文\"", "naturalWidth"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        int found = strstr(h, want[i]) != NULL;
        printf("  html contains %-50s %s\n", want[i], found ? "yes" : "NO");
        EXPECT(found, "index.html lacks %s", want[i]);
    }
    int so = count(h, "<script"), sc = count(h, "</script>"), raw = count(h, "a<b\"c");
    printf("  <script: %d, </script>: %d, raw a<b\"c: %d, <figure: %d\n", so, sc, raw, count(h, "<figure "));
    EXPECT(so == 1 && sc == 1 && raw == 0 && count(h, "<figure ") == 3, "index.html: scripts unbalanced or raw text");
    free(h);
}

static void test_new_failures(const char *dir)
{
    float v[4] = {0, 1, 2, 3};
    const float *maps[1] = {v};
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/no_such_dir/s.png", dir);
    int rc = fig_scatter_png(path, v, v, v, 4, NULL);
    printf("scatter, missing directory: rc %d, \"%s\"\n", rc, err_get());
    EXPECT(rc == -1 && strstr(err_get(), path) && stat(path, &st) != 0, "scatter missing dir");
    snprintf(path, sizeof path, "%s/no_such_dir/g.png", dir);
    rc = fig_grid_png(path, maps, 1, 2, 2, 1, NULL);
    printf("grid, missing directory: rc %d, \"%s\"\n", rc, err_get());
    EXPECT(rc == -1 && strstr(err_get(), path) && stat(path, &st) != 0, "grid missing dir");
    snprintf(path, sizeof path, "%s/no_such_dir/index.html", dir);
    fig_html_entry e = {.png = "x.png"};
    rc = fig_html_index(path, &e, 1, "t");
    printf("html, missing directory: rc %d, \"%s\"\n", rc, err_get());
    EXPECT(rc == -1 && strstr(err_get(), path) && stat(path, &st) != 0, "html missing dir");
    snprintf(path, sizeof path, "%s/badcmap.png", dir);
    fig_heatmap h = {.cmap = "jet"};
    rc = fig_heatmap_png(path, v, 2, 2, &h);
    printf("unknown cmap: rc %d, \"%s\"\n", rc, err_get());
    EXPECT(rc == -1 && strstr(err_get(), "jet") && stat(path, &st) != 0, "unknown cmap");
    snprintf(path, sizeof path, "%s/badhtml.html", dir);
    fig_html_entry bad = {.kind = FIG_HTML_HEATMAP, .png = "x.png"};
    rc = fig_html_index(path, &bad, 1, "t");
    printf("heatmap entry without data: rc %d, \"%s\"\n", rc, err_get());
    EXPECT(rc == -1 && stat(path, &st) != 0, "html bad entry");
}

int main(void)
{
    const char *font = fig_font_path();
    printf("font: %s\n", font ? font : err_get());
    EXPECT(font != NULL, "no font");
    char dir[] = "/tmp/test_figure.XXXXXX", a[600], b[600], c[600], e[600];
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    test_layer_head(dir, 0, a, sizeof a);
    test_layer_head(dir, 1, b, sizeof b);
    test_tokens(dir, 40, c, sizeof c);
    test_tokens(dir, 128, e, sizeof e);
    test_failures(dir);
    char bm[600], sc[600], g1[600], g2[600], hx[600];
    fig_layout HL;
    fig_scatter_layout SL;
    float hd[144], x[72], y[72], col[72], px[72], py[72];
    test_blocks_magma(dir, bm, sizeof bm, &HL, hd);
    test_scatter(dir, sc, sizeof sc, &SL, x, y, col, px, py);
    test_grid(dir, 6, 20, g1, sizeof g1);
    test_grid(dir, 12, 64, g2, sizeof g2);
    char ov[600];
    test_overlay(dir, ov, sizeof ov);
    test_html(dir, bm, &HL, hd, &SL, x, y, px, py, hx, sizeof hx);
    test_new_failures(dir);
    test_extremes(dir);
    EXPECT(temps_left(dir, "") == 0, "temporary files left in %s", dir);
    printf("samples: %s %s %s %s\n", b, c, e, a);
    printf("samples (new): %s %s %s %s %s %s\n", bm, sc, g1, g2, hx, ov);
    printf("%s: %d failure(s)\n", fails ? "FAIL" : "OK", fails);
    return fails ? 1 : 0;
}
