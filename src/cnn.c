/* cnn.c — see cnn.h: the ResNet forward. Activations live in backend memory in NHWC (B, H, W, C),
 * so that a convolution is one GEMM whose output rows are the output pixels; the backend cuts the
 * rows (conv_rows), pools and adds; only the pixels go up and each stage's output comes down. */
#include "cnn.h"
#include "config.h"
#include "util.h"
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

/* activation slot i of at least n floats in backend memory (grown as needed; its contents are
 * not kept across a growth, so a slot grows only while it holds nothing live); NULL with err_set() */
static float *act(cnn_model *m, int i, size_t n)
{
    backend *be = m->be;
    if (n > m->cap_act[i]) {
        if (m->act[i]) be->free(be, m->act[i]);
        m->act[i] = be->alloc(be, n * sizeof(float));
        m->cap_act[i] = m->act[i] ? n : 0;
        if (!m->act[i]) err_set("out of %s memory for a convolution's output of %zu x 4 bytes", be->name, n);
    }
    return m->act[i];
}

/* y (B, OH, OW, cout) = conv(x) with the folded bias, then ReLU when relu; x (B, H, W, cin) and y
 * in backend memory (slot yi). A 1x1 convolution of stride 1 reads x as its rows; any other cuts
 * them first (conv_rows). OH, OW out. 0, or -1 with err_set(). */
static int conv_run(cnn_model *m, const cnn_conv *cv, const float *x, int B, int H, int W, int relu, int yi, int *OH, int *OW)
{
    backend *be = m->be;
    *OH = conv_out(H, cv->k, cv->stride, cv->pad);
    *OW = conv_out(W, cv->k, cv->stride, cv->pad);
    const size_t M = (size_t)B * *OH * *OW, K = (size_t)cv->cin * cv->k * cv->k;
    float *y = act(m, yi, M * cv->cout);
    if (!y) return -1;
    const float *rows = x;
    if (cv->k != 1 || cv->stride != 1 || cv->pad != 0) {
        if (M * K > m->cap_col) {
            if (m->dcol) be->free(be, m->dcol);
            m->dcol = be->alloc(be, M * K * sizeof(float));
            m->cap_col = m->dcol ? M * K : 0;
            if (!m->dcol) return err_set("out of %s memory for a convolution's %zu x 4 bytes of rows", be->name, M * K);
        }
        be->conv_rows(be, m->dcol, x, B, H, W, cv->cin, cv->k, cv->stride, cv->pad);
        rows = m->dcol;
    }
    be->linear(be, y, DT_F32, rows, DT_F32, cv->w, cv->b, (int)M, (int)K, cv->cout);
    if (relu) be->activation(be, y, DT_F32, M * cv->cout, ACT_RELU);
    return 0;
}

/* output s (B, h, w, C) NHWC in backend memory: its channel statistics into stats[s] (3, B, C) on
 * the host, and when features is not NULL the map itself, NCHW (B, C, h, w), into features[s] */
static void stage_out(cnn_model *m, const float *x, int B, int h, int w, int C, int s, float *const *stats,
                      float *const *features)
{
    const size_t bc = (size_t)B * C;
    m->be->channel_stats(m->be, x, B, h * w, C, stats[s], stats[s] + bc, stats[s] + 2 * bc);
    if (!features) return;
    float *out = features[s];
    const size_t n = (size_t)B * h * w * C;
    float *t = xmalloc(n * sizeof(float));
    m->be->download(m->be, t, x, n * sizeof(float));
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++)
        for (int p = 0; p < h * w; p++)
            for (int c = 0; c < C; c++) out[((size_t)b * C + c) * h * w + p] = t[((size_t)b * h * w + p) * C + c];
    free(t);
}

/* one residual layer on the input in slot *xi: ReLU(branch(x) + shortcut(x)) into another slot,
 * which becomes *xi. The four slots: x, two for the branch's convolutions, one for the shortcut. */
static int layer_run(cnn_model *m, const cnn_layer *ly, int *xi, int B, int *H, int *W)
{
    int f[3], n = 0;
    for (int i = 0; i < 4; i++)
        if (i != *xi) f[n++] = i;
    const float *x = m->act[*xi];
    int h = *H, w = *W, oh, ow, cur = -1;
    for (int i = 0; i < ly->n_conv; i++) {
        /* ReLU after every branch conv but the last: it comes after the residual add */
        const int yi = f[i % 2];
        if (conv_run(m, &ly->conv[i], i ? m->act[cur] : x, B, h, w, i < ly->n_conv - 1, yi, &oh, &ow)) return -1;
        cur = yi;
        h = oh;
        w = ow;
    }
    const float *res = x;
    if (ly->shortcut.w) {
        if (conv_run(m, &ly->shortcut, x, B, *H, *W, 0, f[2], &oh, &ow)) return -1;
        res = m->act[f[2]];
    }
    m->be->add_relu(m->be, m->act[cur], res, (size_t)B * h * w * ly->conv[ly->n_conv - 1].cout);
    *H = h;
    *W = w;
    *xi = cur;
    return 0;
}

int cnn_forward(cnn_model *m, const float *px, int B, int H, int W, float *const *stats, float *const *features)
{
    const cnn_config *c = &m->cfg;
    backend *be = m->be;
    const int Cin = c->num_channels;
    int C0, h0, w0;
    if (cnn_output_shape(m, H, W, c->n_stages, &C0, &h0, &w0)) return -1;
    /* NCHW pixels to NHWC, up into slot 0 */
    const size_t npx = (size_t)B * H * W * Cin;
    float *x = xmalloc(npx * sizeof(float));
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++)
        for (int ci = 0; ci < Cin; ci++)
            for (int p = 0; p < H * W; p++) x[((size_t)b * H * W + p) * Cin + ci] = px[((size_t)b * Cin + ci) * H * W + p];
    float *d = act(m, 0, npx);
    if (d) be->upload(be, d, x, npx * sizeof(float));
    free(x);
    int h, w, xi = 2;
    if (!d || conv_run(m, &m->stem, d, B, H, W, 1, 1, &h, &w)) return -1;
    /* the embedder's max pool, slot 1 into slot 2 */
    const int ph = conv_out(h, 3, 2, 1), pw = conv_out(w, 3, 2, 1);
    if (!act(m, 2, (size_t)B * ph * pw * c->embedding_size)) return -1;
    be->maxpool(be, m->act[2], m->act[1], B, h, w, c->embedding_size);
    h = ph;
    w = pw;
    stage_out(m, m->act[xi], B, h, w, c->embedding_size, 0, stats, features);
    for (int s = 0, at = 0; s < c->n_stages; s++) {
        for (int l = 0; l < c->depths[s]; l++, at++)
            if (layer_run(m, &m->layers[at], &xi, B, &h, &w)) return -1;
        stage_out(m, m->act[xi], B, h, w, c->hidden_sizes[s], s + 1, stats, features);
    }
    return 0;
}
