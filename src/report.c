/* report.c — see report.h. */
#include "report.h"
#include "report_int.h"
#include "check.h"
#include "figure.h"
#include "h5out.h"
#include "util.h"
#include <hdf5.h>
#include <math.h>
#include <sys/stat.h>

/* Opens dataset name, checks its rank and returns its dims; -1 with err_set if absent/wrong. */
static hid_t open_ds(hid_t f, const char *file, const char *name, int ndim, hsize_t *dims)
{
    hid_t ds = -1;
    H5E_BEGIN_TRY { if (H5Lexists(f, name, H5P_DEFAULT) > 0) ds = H5Dopen2(f, name, H5P_DEFAULT); } H5E_END_TRY;
    if (ds < 0) { err_set("%s: no dataset %s (not an attnscope file, or written without the option that makes it)", file, name); return -1; }
    hid_t sp = H5Dget_space(ds);
    int nd = H5Sget_simple_extent_ndims(sp);
    if (nd == ndim) H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    if (nd != ndim) { H5Dclose(ds); err_set("%s: %s has %d dimensions, expected %d", file, name, nd, ndim); return -1; }
    return ds;
}

/* Reads the token strings of sample i (len of them) into labels[len] (caller frees each). */
static int read_tokens(hid_t f, const char *file, hsize_t i, int len, char **labels)
{
    hsize_t dims[2];
    hid_t ds;
    H5E_BEGIN_TRY { ds = open_ds(f, file, "/samples/tokens", 2, dims); } H5E_END_TRY;
    if (ds < 0) {
        for (int t = 0; t < len; t++) { labels[t] = xmalloc(16); snprintf(labels[t], 16, "%d", t); }
        return 0;
    }
    hid_t ft = H5Dget_type(ds);
    size_t S = H5Tget_size(ft);
    int rc = 0;
    if (H5Tget_class(ft) != H5T_STRING || H5Tis_variable_str(ft) || S > 4096 || (hsize_t)len > dims[1] || i >= dims[0]) {
        rc = err_set("%s: /samples/tokens is not a fixed-length string dataset of the expected shape", file);
    } else {
        char *buf = xcalloc((size_t)len, S);
        hid_t sp = H5Dget_space(ds);
        hsize_t start[2] = {i, 0}, count[2] = {1, (hsize_t)len};
        H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, count, NULL);
        hid_t ms = H5Screate_simple(2, count, NULL);
        if (H5Dread(ds, ft, ms, sp, H5P_DEFAULT, buf) < 0) rc = err_set("%s: cannot read row %llu of /samples/tokens", file, (unsigned long long)i);
        for (int t = 0; t < len; t++) {
            labels[t] = xcalloc(S + 1, 1);
            memcpy(labels[t], buf + (size_t)t * S, S);
            size_t ok = util_utf8_valid_prefix(labels[t], strlen(labels[t]));
            labels[t][ok] = 0;
        }
        H5Sclose(ms); H5Sclose(sp); free(buf);
    }
    H5Tclose(ft); H5Dclose(ds);
    return rc;
}

static int read_attr_str(hid_t f, const char *name, char *out, size_t cap)
{
    out[0] = 0;
    if (H5Aexists(f, name) <= 0) return -1;
    hid_t a = H5Aopen(f, name, H5P_DEFAULT), t = H5Aget_type(a);
    int rc = -1;
    if (H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t)) {
        char *s = NULL;
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5T_CSET_UTF8);
        if (H5Aread(a, mt, &s) >= 0 && s) { snprintf(out, cap, "%s", s); H5free_memory(s); rc = 0; }
        H5Tclose(mt);
    }
    H5Tclose(t); H5Aclose(a);
    return rc;
}

/* A short model name for titles: the model directory's last two path components. */
static void short_model_name(hid_t f, char *out, size_t cap)
{
    char model[512];
    read_attr_str(f, "model_dir", model, sizeof model);
    const char *p = model;
    for (int seen = 0, i = (int)strlen(model) - 1; i > 0; i--)
        if (model[i] == '/' && model[i + 1] && ++seen == 2) { p = model + i + 1; break; }
    snprintf(out, cap, "%s", p);
}

/* ---- the index: every figure with its numbers ---------------------------------------------- */

char *report_base_name(const char *path) { const char *b = strrchr(path, '/'); return (char *)(b ? b + 1 : path); }

/* Draws a heatmap and adds it to the index with its numbers. */
static int heatmap_entry(html_list *h, const char *path, const float *data, int rows, int cols, const fig_heatmap *opt,
                         const char *caption, const char *note)
{
    fig_layout lay;
    if (fig_heatmap_layout(&lay, data, rows, cols, opt) || fig_heatmap_png(path, data, rows, cols, opt)) return -1;
    printf("attnscope reduce: wrote %s\n", path);
    if (h->n < MAX_ENTRIES)
        h->e[h->n++] = (fig_html_entry){.kind = FIG_HTML_HEATMAP, .png = keep_str(h, report_base_name(path)), .caption = keep_str(h, caption),
                                        .note = note ? keep_str(h, note) : NULL, .data = data, .rows = rows, .cols = cols,
                                        .row_labels = opt->row_labels, .col_labels = opt->col_labels,
                                        .grid_x = lay.grid.x, .grid_y = lay.grid.y, .cell = lay.cell};
    return 0;
}

void report_image_entry(html_list *h, const char *path, const char *caption)
{
    printf("attnscope reduce: wrote %s\n", path);
    if (h->n < MAX_ENTRIES) h->e[h->n++] = (fig_html_entry){.kind = FIG_HTML_IMAGE, .png = keep_str(h, report_base_name(path)), .caption = keep_str(h, caption)};
}

/* ---- reading one sample ----------------------------------------------------------------------- */

typedef struct { int len; char **tokens; float *att; /* (L, H, len, len) or NULL */ } sample_data;

/* Sample i's [L, H, len, len] block of /attention into sd->att. The packed layout (1-D, block at
 * /attention_offset[i]) is what runs write; the padded [N, L, H, Lmax, Lmax] one of files written
 * before it is read too, so that old runs still draw. */
static int attention_read(hid_t f, const char *file, const summary *s, int64_t i, sample_data *sd)
{
    hid_t dat = -1;
    H5E_BEGIN_TRY { if (H5Lexists(f, "/attention", H5P_DEFAULT) > 0) dat = H5Dopen2(f, "/attention", H5P_DEFAULT); } H5E_END_TRY;
    if (dat < 0) return err_set("%s: no /attention dataset: run attnscope run with --save-attention to draw attention maps", file);
    const hsize_t n = (hsize_t)sd->len, block = (hsize_t)s->L * s->H * n * n;
    hid_t asp = H5Dget_space(dat);
    hsize_t da[5] = {0};
    const int nd = H5Sget_simple_extent_ndims(asp);
    if (nd >= 1 && nd <= 5) H5Sget_simple_extent_dims(asp, da, NULL);
    hid_t ams = -1;
    int rc = 0;
    if (nd == 1) {
        hsize_t dof[1];
        int64_t off = -1;
        hid_t dofs = open_ds(f, file, "/attention_offset", 1, dof);
        if (dofs < 0) rc = -1;
        else if ((hsize_t)i >= dof[0] || dof[0] != (hsize_t)s->N) rc = err_set("%s: /attention_offset has %llu rows, /stats %lld samples", file, (unsigned long long)dof[0], (long long)s->N);
        else {
            hid_t osp = H5Dget_space(dofs);
            hsize_t os = (hsize_t)i, oc = 1;
            H5Sselect_hyperslab(osp, H5S_SELECT_SET, &os, NULL, &oc, NULL);
            hid_t oms = H5Screate_simple(1, &oc, NULL);
            if (H5Dread(dofs, H5T_NATIVE_INT64, oms, osp, H5P_DEFAULT, &off) < 0)
                rc = err_set("%s: cannot read /attention_offset[%lld]", file, (long long)i);
            H5Sclose(oms); H5Sclose(osp);
        }
        if (dofs >= 0) H5Dclose(dofs);
        if (!rc && (off < 0 || (hsize_t)off > da[0] || da[0] - (hsize_t)off < block))
            rc = err_set("%s: /attention_offset[%lld] = %lld: sample %lld's block of %llu values lies outside /attention (%llu values)",
                         file, (long long)i, (long long)off, (long long)i, (unsigned long long)block, (unsigned long long)da[0]);
        if (!rc) {
            hsize_t start = (hsize_t)off;
            H5Sselect_hyperslab(asp, H5S_SELECT_SET, &start, NULL, &block, NULL);
            ams = H5Screate_simple(1, &block, NULL);
        }
    } else if (nd == 5) {
        if (da[0] != (hsize_t)s->N || da[1] != (hsize_t)s->L || da[2] != (hsize_t)s->H || da[3] < n || da[3] != da[4])
            rc = err_set("%s: /attention shape does not match /stats and /samples/length", file);
        else {
            hsize_t start[5] = {(hsize_t)i, 0, 0, 0, 0}, count[5] = {1, (hsize_t)s->L, (hsize_t)s->H, n, n};
            H5Sselect_hyperslab(asp, H5S_SELECT_SET, start, NULL, count, NULL);
            ams = H5Screate_simple(5, count, NULL);
        }
    } else rc = err_set("%s: /attention has %d dimensions, expected 1 (packed, with /attention_offset) or 5 (padded)", file, nd);
    if (!rc) rc = h5_check_stored(f, dat, file, "/attention");   /* bounds the block allocated below */
    if (!rc) {
        sd->att = xmalloc(block * sizeof(float));
        if (H5Dread(dat, H5T_NATIVE_FLOAT, ams, asp, H5P_DEFAULT, sd->att) < 0)
            rc = err_set("%s: cannot read sample %lld's block of /attention as numbers", file, (long long)i);
    }
    if (ams >= 0) H5Sclose(ams);
    H5Sclose(asp); H5Dclose(dat);
    return rc;
}

static void sample_free(sample_data *sd)
{
    if (sd->tokens) for (int t = 0; t < sd->len; t++) free(sd->tokens[t]);
    free(sd->tokens); free(sd->att);
    memset(sd, 0, sizeof *sd);
}

static int sample_read(hid_t f, const char *file, const summary *s, int64_t i, int with_attention, sample_data *sd)
{
    memset(sd, 0, sizeof *sd);
    hsize_t dl[1];
    hid_t dlen = open_ds(f, file, "/samples/length", 1, dl);
    if (dlen < 0) return -1;
    if ((hsize_t)i >= dl[0]) {
        H5Dclose(dlen);
        return err_set("%s: /samples/length has %llu rows, sample %lld asked for", file, (unsigned long long)dl[0], (long long)i);
    }
    hid_t lsp = H5Dget_space(dlen);
    hsize_t ls = (hsize_t)i, lc = 1;
    H5Sselect_hyperslab(lsp, H5S_SELECT_SET, &ls, NULL, &lc, NULL);
    hid_t lms = H5Screate_simple(1, &lc, NULL);
    const herr_t r = H5Dread(dlen, H5T_NATIVE_INT, lms, lsp, H5P_DEFAULT, &sd->len);
    H5Sclose(lms); H5Sclose(lsp); H5Dclose(dlen);
    if (r < 0) return err_set("%s: cannot read /samples/length[%lld] as an integer", file, (long long)i);
    if (sd->len < 1 || sd->len > s->Lmax) return err_set("%s: /samples/length[%lld] = %d is out of range", file, (long long)i, sd->len);
    sd->tokens = xcalloc(sd->len, sizeof(char *));
    int rc = read_tokens(f, file, (hsize_t)i, sd->len, sd->tokens);
    if (!rc && with_attention) rc = attention_read(f, file, s, i, sd);
    if (rc) sample_free(sd);   /* a refused sample leaves nothing for the caller to free */
    return rc;
}

/* the sample's text: its tokens joined (wordpieces glued), without [CLS]/[SEP] */
static void sample_text(const sample_data *sd, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = 0;
    for (int t = 0; t < sd->len && o + 8 < cap; t++) {
        const char *tk = sd->tokens[t];
        if (!strcmp(tk, "[CLS]") || !strcmp(tk, "[SEP]")) continue;
        int glue = tk[0] == '#' && tk[1] == '#' && tk[2];
        o += snprintf(out + o, cap - o, "%s%s", o && !glue ? " " : "", glue ? tk + 2 : tk);
    }
}

static void one_map(html_list *h, const char *dir, const sample_data *sd, const summary *s, int64_t i, int l, int hd, const char *extra, int *rc)
{
    char path[4200], title[512];
    snprintf(path, sizeof path, "%s/attention_s%lld_l%d_h%d.png", dir, (long long)i, l, hd);
    snprintf(title, sizeof title, "Attention of sample %lld, layer %d, head %d%s", (long long)i, l, hd, extra ? extra : "");
    const size_t nn = (size_t)sd->len * sd->len;
    fig_heatmap fh = {.title = title, .xlabel = "key (attended token)", .ylabel = "query token", .cbar_label = "attention probability",
                      .row_labels = (const char *const *)sd->tokens, .col_labels = (const char *const *)sd->tokens,
                      .vmin = 0, .vmax = 1, .annotate = sd->len <= 16};
    float *copy = (float *)keep((html_list *)h, xmalloc(nn * sizeof(float)));
    memcpy(copy, sd->att + ((size_t)l * s->H + hd) * nn, nn * sizeof(float));
    /* labels must outlive the page: copy them */
    char **lab = (char **)keep(h, xmalloc(sd->len * sizeof(char *)));
    for (int t = 0; t < sd->len; t++) lab[t] = keep_str(h, sd->tokens[t]);
    fh.row_labels = fh.col_labels = (const char *const *)lab;
    if (!*rc) *rc = heatmap_entry(h, path, copy, sd->len, sd->len, &fh, title, NULL);
}

/* ---- the report ------------------------------------------------------------------------------- */

static int write_report(const char *file, const summary *s, const report_opts *o)
{
    mkdir(o->dir, 0777);
    struct stat stt;
    if (stat(o->dir, &stt) || !S_ISDIR(stt.st_mode)) return err_set("%s: cannot create the figures directory", o->dir);
    hid_t f;
    H5E_BEGIN_TRY { f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT); } H5E_END_TRY;
    if (f < 0) return err_set("%s: cannot open as HDF5", file);
    const int L = s->L, H = s->H, LH = L * H;
    char model[512], path[4200], title[1024], cap[1024];
    short_model_name(f, model, sizeof model);
    html_list *h = xcalloc(1, sizeof *h);
    int rc = 0;

    /* labels */
    char **rl = (char **)keep(h, xmalloc(L * sizeof(char *))), **cl = (char **)keep(h, xmalloc(H * sizeof(char *)));
    char **hl = (char **)keep(h, xmalloc(LH * sizeof(char *)));
    for (int l = 0; l < L; l++) { rl[l] = keep(h, xmalloc(16)); snprintf(rl[l], 16, "%d", l); }
    for (int k = 0; k < H; k++) { cl[k] = keep(h, xmalloc(16)); snprintf(cl[k], 16, "%d", k); }
    for (int a = 0; a < LH; a++) { hl[a] = keep(h, xmalloc(24)); snprintf(hl[a], 24, "L%dH%d", a / H, a % H); }

    /* exemplar statistic and head */
    int ex = -1;
    for (int st = 0; st < STAT_N; st++) if (!strcmp(stats_names[st], o->exemplar_stat)) ex = st;
    if (ex < 0 || !s->mean[ex]) { ex = -1; printf("attnscope reduce: no /stats/%s: exemplars skipped\n", o->exemplar_stat); }

    /* 1. a layer x head grid per statistic; the exemplar statistic's note lists each head's samples */
    for (int st = 0; st < STAT_N && !rc; st++) {
        if (!s->mean[st]) continue;
        char cbar[128];
        snprintf(path, sizeof path, "%s/%s_mean.png", o->dir, stats_names[st]);
        snprintf(title, sizeof title, "%s, mean of %lld samples", stats_titles[st], (long long)s->N);
        snprintf(cbar, sizeof cbar, "%s (%s)", stats_names[st], stats_units[st]);
        fig_heatmap fh = {.title = title, .xlabel = "head", .ylabel = "layer", .cbar_label = cbar,
                          .row_labels = (const char *const *)rl, .col_labels = (const char *const *)cl, .annotate = 1};
        char *note = NULL;
        if (st == ex) {
            size_t ncap = (size_t)LH * s->k * 400 + 256, no = 0;
            note = xmalloc(ncap);
            no += snprintf(note, ncap, "Exemplars: for every head, the %d samples with the highest %s.\n", s->k, stats_names[st]);
            for (int a = 0; a < LH && no + 1024 < ncap; a++)
                for (int r = 0; r < s->k; r++) {
                    int64_t i = s->exemplars[st][(size_t)a * s->k + r];
                    if (i < 0) continue;
                    sample_data sd;
                    char text[320] = "";
                    if (!sample_read(f, file, s, i, 0, &sd)) sample_text(&sd, text, sizeof text);
                    sample_free(&sd);
                    no += snprintf(note + no, ncap - no, "L%dH%d #%d: sample %lld: %s\n", a / H, a % H, r + 1, (long long)i, text);
                }
        }
        snprintf(cap, sizeof cap, "%s (%s): mean over the samples of /stats/%s; hover for values", stats_titles[st], stats_units[st], stats_names[st]);
        rc = heatmap_entry(h, path, s->mean[st], L, H, &fh, cap, note);
        free(note);
    }

    /* 1b. the induction probe's per-head scores, when the run was a probe (run --probe) */
    static const char *const probe_names[] = {"previous_token_score", "duplicate_token_score", "induction_score"};
    static const char *const probe_titles[] = {"Previous-token score", "Duplicate-token score", "Induction score"};
    for (int pi = 0; pi < 3 && !rc; pi++) {
        char ds_name[64];
        hsize_t dims[2] = {0, 0};
        snprintf(ds_name, sizeof ds_name, "/probe/%s", probe_names[pi]);
        hid_t d = -1;
        H5E_BEGIN_TRY { if (H5Lexists(f, "/probe", H5P_DEFAULT) > 0) d = open_ds(f, file, ds_name, 2, dims); } H5E_END_TRY;
        if (d < 0) continue;   /* not a probe run */
        float *v = (float *)keep(h, xmalloc((size_t)LH * sizeof(float)));
        herr_t ok = dims[0] == (hsize_t)L && dims[1] == (hsize_t)H ? H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) : -1;
        H5Dclose(d);
        if (ok < 0) { rc = err_set("%s: %s is not a readable [%d, %d] float dataset", file, ds_name, L, H); break; }
        snprintf(path, sizeof path, "%s/probe_%s.png", o->dir, probe_names[pi]);
        snprintf(title, sizeof title, "%s per head (probe)", probe_titles[pi]);
        fig_heatmap fh = {.title = title, .xlabel = "head", .ylabel = "layer", .cbar_label = "probability mass",
                          .row_labels = (const char *const *)rl, .col_labels = (const char *const *)cl, .annotate = 1};
        snprintf(cap, sizeof cap, "%s: /probe/%s, mean over the probe's samples (README: Statistics); hover for values",
                 probe_titles[pi], probe_names[pi]);
        rc = heatmap_entry(h, path, v, L, H, &fh, cap, NULL);
    }

    /* 2. mean attention distance against layer, one dot per head (ViT paper, Fig. 11): in tokens,
     * or for images in pixels (report_vision.c) */
    const int vision = H5Lexists(f, "/vision", H5P_DEFAULT) > 0;
    if (!rc && vision) rc = report_vision(f, file, o->dir, L, H, o->figure_images, h);
    if (!rc && s->mean[STAT_DISTANCE] && !vision) {
        float *x = (float *)keep(h, xmalloc(LH * sizeof(float))), *col = xmalloc(LH * sizeof(float));
        float *px = (float *)keep(h, xmalloc(LH * sizeof(float))), *py = (float *)keep(h, xmalloc(LH * sizeof(float)));
        for (int a = 0; a < LH; a++) { x[a] = (float)(a / H); col[a] = (float)(a % H); }
        snprintf(path, sizeof path, "%s/distance_by_layer.png", o->dir);
        snprintf(title, sizeof title, "Mean attention distance per head against depth");
        fig_scatter fs = {.title = title, .xlabel = "layer", .ylabel = "mean attention distance (tokens)", .cbar_label = "head",
                          .x_integer = 1, .jitter = 0.3f};
        fig_scatter_layout lay;
        rc = fig_scatter_layout_get(&lay, x, s->mean[STAT_DISTANCE], col, LH, &fs) || fig_scatter_png(path, x, s->mean[STAT_DISTANCE], col, LH, &fs);
        if (!rc) {
            for (int a = 0; a < LH; a++) fig_scatter_pos(&lay, a, x[a], s->mean[STAT_DISTANCE][a], &px[a], &py[a]);
            printf("attnscope reduce: wrote %s\n", path);
            if (h->n < MAX_ENTRIES)
                h->e[h->n++] = (fig_html_entry){.kind = FIG_HTML_SCATTER, .png = keep_str(h, "distance_by_layer.png"),
                                                .caption = keep_str(h, "Mean attention distance against layer, one dot per head, coloured by head index"),
                                                .n = LH, .x = x, .y = s->mean[STAT_DISTANCE], .px = px, .py = py, .labels = (const char *const *)hl};
        }
        free(col);
    }

    /* 3. head similarity: natural order with layer separators, clustered order, cosine */
    if (!rc && s->js_mean) {
        float *js = (float *)keep(h, xmalloc((size_t)LH * LH * sizeof(float))), *jc = (float *)keep(h, xmalloc((size_t)LH * LH * sizeof(float)));
        float *cs = (float *)keep(h, xmalloc((size_t)LH * LH * sizeof(float)));
        char **ol = (char **)keep(h, xmalloc(LH * sizeof(char *)));
        for (size_t e = 0; e < (size_t)LH * LH; e++) { js[e] = (float)s->js_mean[e]; cs[e] = s->cos ? (float)s->cos[e] : NAN; }
        for (int a = 0; a < LH; a++) {
            ol[a] = hl[s->head_order[a]];
            for (int b = 0; b < LH; b++) jc[(size_t)a * LH + b] = js[(size_t)s->head_order[a] * LH + s->head_order[b]];
        }
        fig_heatmap fh = {.title = NULL, .xlabel = "head", .ylabel = "head", .cbar_label = "JS divergence per query row (nats)",
                          .row_labels = (const char *const *)hl, .col_labels = (const char *const *)hl, .block_rows = H, .block_cols = H, .cmap = "magma"};
        snprintf(title, sizeof title, "Head similarity: mean Jensen-Shannon divergence per query row");
        fh.title = title;
        snprintf(path, sizeof path, "%s/head_similarity_js.png", o->dir);
        rc = heatmap_entry(h, path, js, LH, LH, &fh, "Jensen-Shannon divergence between heads (Clark et al. 2019), lines between layers", NULL);
        if (!rc) {
            snprintf(title, sizeof title, "Head similarity (JS), heads in clustered order (average linkage)");
            fh.row_labels = fh.col_labels = (const char *const *)ol;
            fh.block_rows = fh.block_cols = 0;
            snprintf(path, sizeof path, "%s/head_similarity_js_clustered.png", o->dir);
            rc = heatmap_entry(h, path, jc, LH, LH, &fh, "The same divergences with heads in the order of an average-linkage clustering", NULL);
        }
        if (!rc && s->cos) {
            snprintf(title, sizeof title, "Head similarity: cosine of the attention maps");
            fig_heatmap fc = {.title = title, .xlabel = "head", .ylabel = "head", .cbar_label = "cosine similarity",
                              .row_labels = (const char *const *)hl, .col_labels = (const char *const *)hl, .block_rows = H, .block_cols = H,
                              .vmin = 0, .vmax = 1};
            snprintf(path, sizeof path, "%s/head_similarity_cos.png", o->dir);
            rc = heatmap_entry(h, path, cs, LH, LH, &fc, "Cosine similarity of the heads' attention maps over the dataset", NULL);
        }
    }

    /* 4. exemplars of the chosen head: its k top samples' maps (needs /attention) */
    int have_att = 0;
    H5E_BEGIN_TRY { have_att = H5Lexists(f, "/attention", H5P_DEFAULT) > 0; } H5E_END_TRY;
    if (!rc && ex >= 0 && have_att) {
        int a = 0;
        if (o->layer >= 0 && o->head >= 0 && o->layer < L && o->head < H) a = (int)(o->layer * H + o->head);
        else for (int b = 1; b < LH; b++) if (s->mean[ex][b] > s->mean[ex][a]) a = b;
        for (int r = 0; r < s->k && !rc; r++) {
            int64_t i = s->exemplars[ex][(size_t)a * s->k + r];
            if (i < 0) continue;
            sample_data sd;
            if ((rc = sample_read(f, file, s, i, 1, &sd))) break;
            char extra[128];
            snprintf(extra, sizeof extra, " (exemplar %d of %s)", r + 1, stats_names[ex]);
            one_map(h, o->dir, &sd, s, i, a / H, a % H, extra, &rc);
            sample_free(&sd);
        }
    }

    /* 5. one sample: every head as a thumbnail, and one head large */
    if (!rc && o->sample >= 0) {
        if (o->sample >= s->N) rc = err_set("%s: --sample %ld out of range (%lld samples)", file, o->sample, (long long)s->N);
        else if (o->layer >= L || o->head >= H) rc = err_set("%s: --layer %ld --head %ld out of range (%d layers, %d heads)", file, o->layer, o->head, L, H);
        sample_data sd;
        if (!rc && !(rc = sample_read(f, file, s, o->sample, 1, &sd))) {
            const size_t nn = (size_t)sd.len * sd.len;
            const float **maps = xmalloc(LH * sizeof(float *));
            for (int b = 0; b < LH; b++) maps[b] = sd.att + b * nn;
            char text[320];
            sample_text(&sd, text, sizeof text);
            snprintf(title, sizeof title, "Every head on sample %ld: %s", o->sample, text);
            fig_grid fg = {.title = title, .panel_titles = (const char *const *)hl, .row_labels = (const char *const *)sd.tokens,
                           .col_labels = (const char *const *)sd.tokens, .cbar_label = "attention probability", .vmin = 0, .vmax = 1};
            snprintf(path, sizeof path, "%s/sample_%ld_heads.png", o->dir, o->sample);
            rc = fig_grid_png(path, maps, LH, sd.len, sd.len, H, &fg);
            if (!rc) report_image_entry(h, path, title);
            free(maps);
            if (!rc && o->layer >= 0) one_map(h, o->dir, &sd, s, o->sample, (int)o->layer, (int)o->head, NULL, &rc);
            sample_free(&sd);
        }
    }

    if (!rc) {
        snprintf(path, sizeof path, "%s/index.html", o->dir);
        snprintf(title, sizeof title, "attnscope: %s, %lld samples, %d layers x %d heads", model, (long long)s->N, L, H);
        rc = fig_html_index(path, h->e, h->n, title);
        if (!rc) printf("attnscope reduce: wrote %s (%d figures)\n", path, h->n);
    }
    html_list_free(h);
    H5Fclose(f);
    return rc;
}

/* HDF5's own error stack is silenced while the report reads the file: every failure is reported
 * in one line by err_set, naming the file and the dataset. */
int report_write(const char *file, const summary *s, const report_opts *o)
{
    H5E_auto2_t func;
    void *data;
    H5Eget_auto2(H5E_DEFAULT, &func, &data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    const int rc = write_report(file, s, o);
    H5Eset_auto2(H5E_DEFAULT, func, data);
    return rc;
}
