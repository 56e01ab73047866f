/* cnn.c — see cnn.h: the ResNet forward. Activations live on the host in NHWC (B, H, W, C), so
 * that a convolution is one GEMM whose output rows are the output pixels; each convolution
 * crosses the bus twice (im2col rows up, its output down): a correctness-first layout whose cost
 * is k² times the input per 3x3 conv. */
#include "cnn.h"
#include "config.h"
#include "util.h"
#include <float.h>
#include <string.h>

static int conv_out(int n, int k, int stride, int pad) { return (n + 2 * pad - k) / stride + 1; }

/* the embedder's spatial size after its conv 7x7/2 and max pool 3x3/2 */
static void stem_size(int H, int W, int *h, int *w)
{
    *h = conv_out(conv_out(H, 7, 2, 3), 3, 2, 1);
    *w = conv_out(conv_out(W, 7, 2, 3), 3, 2, 1);
}

int cnn_output_shape(const cnn_model *m, int H, int W, int s, int *C, int *h, int *w)
{
    const cnn_config *c = &m->cfg;
    if (s < 0 || s > c->n_stages) return err_set("cnn_output_shape: no output %d (0..%d)", s, c->n_stages);
    if (H < 4 || W < 4) return err_set("images of %d x %d pixels are too small for a ResNet (at least 4 x 4)", H, W);
    stem_size(H, W, h, w);
    *C = c->embedding_size;
    for (int i = 0; i < s; i++) {
        /* a stage's spatial size is set by its first layer's stride (every conv pads k/2) */
        const int stride = i == 0 && !c->downsample_in_first_stage ? 1 : 2;
        *h = conv_out(*h, 1, stride, 0);
        *w = conv_out(*w, 1, stride, 0);
        *C = c->hidden_sizes[i];
    }
    if (*h < 1 || *w < 1) return err_set("images of %d x %d pixels are too small for this ResNet's %d stages", H, W, c->n_stages);
    return 0;
}

/* rows (B·OH·OW, cin·k·k) of the NHWC input x (B, H, W, cin), in (ci, ky, kx) order as the
 * flattened torch weight; outside the image: 0 (the convolution's zero padding) */
static void im2col(const float *x, int B, int H, int W, const cnn_conv *cv, int OH, int OW, float *rows)
{
    const int k = cv->k, cin = cv->cin, K = cin * k * k;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                float *r = rows + (((size_t)b * OH + oy) * OW + ox) * K;
                for (int ky = 0; ky < k; ky++) {
                    const int iy = oy * cv->stride - cv->pad + ky;
                    for (int kx = 0; kx < k; kx++) {
                        const int ix = ox * cv->stride - cv->pad + kx;
                        const int in = iy >= 0 && iy < H && ix >= 0 && ix < W;
                        const float *p = in ? x + (((size_t)b * H + iy) * W + ix) * cin : NULL;
                        for (int ci = 0; ci < cin; ci++) r[(ci * k + ky) * k + kx] = in ? p[ci] : 0.0f;
                    }
                }
            }
}

/* backend scratch of at least the given floats; 0, or -1 with err_set() */
static int ensure_scratch(cnn_model *m, size_t col, size_t out)
{
    backend *be = m->be;
    if (col > m->cap_col) {
        if (m->dcol) be->free(be, m->dcol);
        m->dcol = be->alloc(be, col * sizeof(float));
        m->cap_col = m->dcol ? col : 0;
    }
    if (out > m->cap_out) {
        if (m->dout) be->free(be, m->dout);
        m->dout = be->alloc(be, out * sizeof(float));
        m->cap_out = m->dout ? out : 0;
    }
    if (!m->dcol || !m->dout) return err_set("out of %s memory for a convolution's %zu x 4 bytes of rows", be->name, col);
    return 0;
}

/* y (B, OH, OW, cout) = conv(x) with the folded bias, then ReLU when relu. OH, OW out. */
static int conv_run(cnn_model *m, const cnn_conv *cv, const float *x, int B, int H, int W, int relu, float **y, int *OH, int *OW)
{
    backend *be = m->be;
    *OH = conv_out(H, cv->k, cv->stride, cv->pad);
    *OW = conv_out(W, cv->k, cv->stride, cv->pad);
    const size_t M = (size_t)B * *OH * *OW, K = (size_t)cv->cin * cv->k * cv->k;
    if (ensure_scratch(m, M * K, M * cv->cout)) return -1;
    float *rows = xmalloc(M * K * sizeof(float));
    im2col(x, B, H, W, cv, *OH, *OW, rows);
    be->upload(be, m->dcol, rows, M * K * sizeof(float));
    free(rows);
    be->linear(be, m->dout, DT_F32, m->dcol, DT_F32, cv->w, cv->b, (int)M, (int)K, cv->cout);
    if (relu) be->activation(be, m->dout, DT_F32, M * cv->cout, ACT_RELU);
    *y = xmalloc(M * cv->cout * sizeof(float));
    be->download(be, *y, m->dout, M * cv->cout * sizeof(float));
    return 0;
}

/* max pool 3x3 stride 2 pad 1 (padding never wins: -inf) of x (B, H, W, C) into a new (B, h, w, C) */
static float *maxpool(const float *x, int B, int H, int W, int C, int *h, int *w)
{
    *h = conv_out(H, 3, 2, 1);
    *w = conv_out(W, 3, 2, 1);
    float *y = xmalloc((size_t)B * *h * *w * C * sizeof(float));
    const int oh = *h, ow = *w;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                float *o = y + (((size_t)b * oh + oy) * ow + ox) * C;
                for (int c = 0; c < C; c++) o[c] = -FLT_MAX;
                for (int iy = 2 * oy - 1; iy <= 2 * oy + 1; iy++)
                    for (int ix = 2 * ox - 1; ix <= 2 * ox + 1; ix++) {
                        if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                        const float *p = x + (((size_t)b * H + iy) * W + ix) * C;
                        for (int c = 0; c < C; c++) o[c] = p[c] > o[c] ? p[c] : o[c];
                    }
            }
    return y;
}

/* NHWC (B, h, w, C) to NCHW (B, C, h, w) */
static void to_nchw(const float *x, int B, int h, int w, int C, float *out)
{
    for (int b = 0; b < B; b++)
        for (int p = 0; p < h * w; p++)
            for (int c = 0; c < C; c++) out[((size_t)b * C + c) * h * w + p] = x[((size_t)b * h * w + p) * C + c];
}

/* one residual layer: a new (B, OH, OW, cout) = ReLU(branch(x) + shortcut(x)); x is freed */
static int layer_run(cnn_model *m, const cnn_layer *ly, float *x, int B, int *H, int *W, float **y)
{
    float *cur = x, *next = NULL;
    int h = *H, w = *W, oh, ow;
    for (int i = 0; i < ly->n_conv; i++) {
        /* ReLU after every branch conv but the last: it comes after the residual add */
        if (conv_run(m, &ly->conv[i], cur, B, h, w, i < ly->n_conv - 1, &next, &oh, &ow)) {
            if (cur != x) free(cur);
            free(x);
            return -1;
        }
        if (cur != x) free(cur);
        cur = next;
        h = oh;
        w = ow;
    }
    float *res = x;
    if (ly->shortcut.w) {
        if (conv_run(m, &ly->shortcut, x, B, *H, *W, 0, &res, &oh, &ow)) { free(cur); free(x); return -1; }
        free(x);
    }
    const size_t n = (size_t)B * h * w * ly->conv[ly->n_conv - 1].cout;
    for (size_t i = 0; i < n; i++) {
        const float v = cur[i] + res[i];   /* one float add, as torch's in-place += */
        cur[i] = v > 0.0f ? v : 0.0f;
    }
    free(res);
    *H = h;
    *W = w;
    *y = cur;
    return 0;
}

int cnn_forward(cnn_model *m, const float *px, int B, int H, int W, float *const *out)
{
    const cnn_config *c = &m->cfg;
    const int Cin = c->num_channels;
    int C0, h0, w0;
    if (cnn_output_shape(m, H, W, c->n_stages, &C0, &h0, &w0)) return -1;
    /* NCHW pixels to NHWC */
    float *x = xmalloc((size_t)B * H * W * Cin * sizeof(float)), *y;
    for (int b = 0; b < B; b++)
        for (int ci = 0; ci < Cin; ci++)
            for (int p = 0; p < H * W; p++) x[((size_t)b * H * W + p) * Cin + ci] = px[((size_t)b * Cin + ci) * H * W + p];
    int h, w;
    const int rc = conv_run(m, &m->stem, x, B, H, W, 1, &y, &h, &w);
    free(x);
    if (rc) return -1;
    x = maxpool(y, B, h, w, c->embedding_size, &h, &w);
    free(y);
    to_nchw(x, B, h, w, c->embedding_size, out[0]);
    for (int s = 0, at = 0; s < c->n_stages; s++) {
        for (int l = 0; l < c->depths[s]; l++, at++)
            if (layer_run(m, &m->layers[at], x, B, &h, &w, &x)) return -1;
        to_nchw(x, B, h, w, c->hidden_sizes[s], out[s + 1]);
    }
    free(x);
    return 0;
}
