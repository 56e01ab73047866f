/* figure_html.c — a static index.html for a directory of figure PNGs (see figure.h): a heading,
 * one <figure> per entry, and one inline script that shows a tooltip when the mouse is over a
 * heatmap cell or a scatter dot. No server, no external JS or CSS.
 * Invariants: every string from the caller is written through html_text() (element text and
 * attribute values) or js_string() (inside the script), both of which turn invalid UTF-8 into
 * U+FFFD; js_string() never writes '<', '>' or '&', so no data can close the <script> element.
 * The page is built in memory and replaces the file atomically (afile.h); on any failure the old
 * file stays and no temporary is left. */
#include "figure_int.h"
#include "afile.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Calls emit(out, code point) for each code point of s (NULL: none), U+FFFD for invalid bytes. */
static void each_cp(FILE *out, const char *s, void (*emit)(FILE *, uint32_t))
{
    size_t len = s ? strlen(s) : 0;
    for (size_t i = 0; i < len; ) {
        size_t ok = util_utf8_valid_prefix(s + i, len - i);
        for (size_t j = i; j < i + ok; ) {
            int k;
            uint32_t c = util_utf8_decode(s + j, &k);
            emit(out, c);
            j += k;
        }
        i += ok;
        if (i < len) emit(out, 0xfffd), i++;              /* one replacement per bad byte */
    }
}

static void put_utf8(FILE *out, uint32_t c)
{
    char b[4];
    int n = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    if (n == 1) b[0] = (char)c;
    else {
        for (int i = n - 1; i > 0; i--, c >>= 6) b[i] = (char)(0x80 | (c & 0x3f));
        b[0] = (char)((n == 2 ? 0xc0 : n == 3 ? 0xe0 : 0xf0) | c);
    }
    fwrite(b, 1, n, out);
}

static void html_cp(FILE *out, uint32_t c)
{
    switch (c) {
    case '&': fputs("&amp;", out); break;
    case '<': fputs("&lt;", out); break;
    case '>': fputs("&gt;", out); break;
    case '"': fputs("&quot;", out); break;
    case '\'': fputs("&#39;", out); break;
    default:
        if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) fputs("&#xfffd;", out);
        else put_utf8(out, c);
    }
}

static void js_cp(FILE *out, uint32_t c)
{
    if (c == '"' || c == '\\') fprintf(out, "\\%c", (char)c);
    else if (c < 0x20 || c == 0x7f || c == '<' || c == '>' || c == '&' || c == 0x2028 || c == 0x2029)
        fprintf(out, "\\u%04x", (unsigned)c);
    else put_utf8(out, c);
}

static void html_text(FILE *out, const char *s) { each_cp(out, s, html_cp); }

static void js_string(FILE *out, const char *s)
{
    fputc('"', out);
    each_cp(out, s, js_cp);
    fputc('"', out);
}

static void js_floats(FILE *out, const float *v, int64_t n)
{
    fputc('[', out);
    for (int64_t i = 0; i < n; i++) {
        if (i) fputc(',', out);
        if (isfinite(v[i])) fprintf(out, "%.6g", v[i]);
        else fputs("null", out);
        if (i % 32 == 31) fputc('\n', out);
    }
    fputc(']', out);
}

static void js_labels(FILE *out, const char *const *lab, int n)
{
    if (!lab) { fputs("null", out); return; }
    fputc('[', out);
    for (int i = 0; i < n; i++) {
        if (i) fputc(',', out);
        if (lab[i]) js_string(out, lab[i]);
        else fprintf(out, "\"%d\"", i);
    }
    fputc(']', out);
}

static int entry_check(const fig_html_entry *e, int i)
{
    if (!e->png || !*e->png) return err_set("figure: html entry %d: no PNG name", i);
    if (e->kind == FIG_HTML_HEATMAP && (!e->data || e->rows < 1 || e->cols < 1 || e->cell < 1))
        return err_set("figure: html entry %d (%s): heatmap needs data, rows, cols >= 1 and cell >= 1", i, e->png);
    if (e->kind == FIG_HTML_SCATTER && (e->n < 1 || !e->x || !e->y || !e->px || !e->py))
        return err_set("figure: html entry %d (%s): scatter needs n >= 1 and x, y, px, py", i, e->png);
    if (e->kind != FIG_HTML_IMAGE && e->kind != FIG_HTML_HEATMAP && e->kind != FIG_HTML_SCATTER)
        return err_set("figure: html entry %d (%s): unknown kind %d", i, e->png, (int)e->kind);
    return 0;
}

static const char STYLE[] =
    "body{font-family:'Noto Sans CJK SC','Noto Sans',sans-serif;margin:1.5em;color:#222}\n"
    "figure{margin:2em 0}\n"
    "img{max-width:100%;height:auto;border:1px solid #ddd}\n"
    "figcaption{font-weight:bold;margin:.4em 0}\n"
    ".note{white-space:pre-wrap;font-size:90%;background:#f6f6f6;padding:.5em;max-width:70em}\n"
    "#tip{position:fixed;display:none;pointer-events:none;background:rgba(20,20,20,.9);color:#fff;"
    "padding:3px 6px;border-radius:3px;font-size:13px;white-space:pre}\n";

/* Hover: pixel in the image = offset * naturalWidth / clientWidth (the image may be scaled). */
static const char SCRIPT[] =
    "(function () {\n"
    "  var tip = document.getElementById('tip');\n"
    "  function lab(a, i) { return a ? a[i] : String(i); }\n"
    "  function fmt(v) {\n"
    "    if (v === null) return 'NaN';\n"
    "    var a = Math.abs(v);\n"
    "    return a !== 0 && (a >= 1e5 || a < 1e-3) ? v.toExponential(3) : String(+v.toPrecision(4));\n"
    "  }\n"
    "  function text(F, ix, iy, s) {\n"
    "    if (F.kind === 'heatmap') {\n"
    "      var c = Math.floor((ix - F.gx) / F.cell), r = Math.floor((iy - F.gy) / F.cell);\n"
    "      if (c < 0 || c >= F.cols || r < 0 || r >= F.rows) return null;\n"
    "      return lab(F.rl, r) + ' \\u00b7 ' + lab(F.cl, c) + ': ' + fmt(F.v[r * F.cols + c]);\n"
    "    }\n"
    "    var best = -1, bd = Math.pow(Math.max(7, 6 * s), 2);\n"
    "    for (var i = 0; i < F.px.length; i++) {\n"
    "      var d = Math.pow(F.px[i] - ix, 2) + Math.pow(F.py[i] - iy, 2);\n"
    "      if (d < bd) { bd = d; best = i; }\n"
    "    }\n"
    "    return best < 0 ? null : lab(F.lab, best) + ': ' + fmt(F.x[best]) + ', ' + fmt(F.y[best]);\n"
    "  }\n"
    "  document.querySelectorAll('img[data-fig]').forEach(function (img) {\n"
    "    var F = FIGS[+img.getAttribute('data-fig')];\n"
    "    if (!F) return;\n"
    "    img.addEventListener('mousemove', function (e) {\n"
    "      var s = img.naturalWidth / img.clientWidth, t = text(F, e.offsetX * s, e.offsetY * s, s);\n"
    "      if (t === null) { tip.style.display = 'none'; return; }\n"
    "      tip.textContent = t;\n"
    "      tip.style.left = (e.clientX + 14) + 'px';\n"
    "      tip.style.top = (e.clientY + 14) + 'px';\n"
    "      tip.style.display = 'block';\n"
    "    });\n"
    "    img.addEventListener('mouseleave', function () { tip.style.display = 'none'; });\n"
    "  });\n"
    "})();\n";

static void emit(FILE *out, const fig_html_entry *en, int n, const char *title)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>", out);
    html_text(out, title ? title : "attnscope figures");
    fprintf(out, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>", STYLE);
    html_text(out, title ? title : "attnscope figures");
    fputs("</h1>\n", out);
    for (int i = 0; i < n; i++) {
        const fig_html_entry *e = &en[i];
        fprintf(out, "<figure id=\"fig%d\">\n<img src=\"", i);
        html_text(out, e->png);
        fputs("\" alt=\"", out);
        html_text(out, e->caption ? e->caption : e->png);
        if (e->kind != FIG_HTML_IMAGE) fprintf(out, "\" data-fig=\"%d", i);
        fputs("\">\n<figcaption>", out);
        html_text(out, e->caption ? e->caption : e->png);
        fputs("</figcaption>\n", out);
        if (e->note && *e->note) {
            fputs("<div class=\"note\">", out);
            html_text(out, e->note);
            fputs("</div>\n", out);
        }
        fputs("</figure>\n", out);
    }
    fputs("<div id=\"tip\"></div>\n<script>\n\"use strict\";\nvar FIGS = [\n", out);
    for (int i = 0; i < n; i++) {
        const fig_html_entry *e = &en[i];
        if (e->kind == FIG_HTML_HEATMAP) {
            fprintf(out, "{kind:\"heatmap\",rows:%d,cols:%d,gx:%d,gy:%d,cell:%d,\nrl:", e->rows, e->cols,
                    e->grid_x, e->grid_y, e->cell);
            js_labels(out, e->row_labels, e->rows);
            fputs(",\ncl:", out);
            js_labels(out, e->col_labels, e->cols);
            fputs(",\nv:", out);
            js_floats(out, e->data, (int64_t)e->rows * e->cols);
            fputs("}", out);
        } else if (e->kind == FIG_HTML_SCATTER) {
            fputs("{kind:\"scatter\",\nlab:", out);
            js_labels(out, e->labels, e->n);
            const char *key[4] = {"x", "y", "px", "py"};
            const float *arr[4] = {e->x, e->y, e->px, e->py};
            for (int k = 0; k < 4; k++) {
                fprintf(out, ",\n%s:", key[k]);
                js_floats(out, arr[k], e->n);
            }
            fputs("}", out);
        } else fputs("null", out);
        fputs(i + 1 < n ? ",\n" : "\n", out);
    }
    fprintf(out, "];\n%s</script>\n</body>\n</html>\n", SCRIPT);
}

int fig_html_index(const char *path, const fig_html_entry *entries, int n, const char *title)
{
    if (n < 0 || (n > 0 && !entries)) return err_set("%s: figure: html index of %d entries", path, n);
    for (int i = 0; i < n; i++)
        if (entry_check(&entries[i], i)) return fig_err_prefix(path);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);     /* written in one checked piece by afile */
    if (!out) return err_set("%s: figure: %s", path, strerror(errno));
    emit(out, entries, n, title);
    int rc = ferror(out) | fclose(out) ? err_set("%s: figure: building the page: %s", path, strerror(errno)) : 0;
    if (!rc) rc = afile_write_file(path, buf, len);
    free(buf);
    return rc;
}
