/* patch.c — see patch.h. */
#include "patch.h"
#include <math.h>
#include <string.h>

void patch_rows(const void *px, const float *lut, int B, int ch, int H, int W, int P, float *rows)
{
    const int gh = H / P, gw = W / P, K = ch * P * P;
    for (int b = 0; b < B; b++)
        for (int gy = 0; gy < gh; gy++)
            for (int gx = 0; gx < gw; gx++) {
                float *r = rows + ((size_t)(b * gh + gy) * gw + gx) * K;
                for (int c = 0; c < ch; c++)
                    for (int ky = 0; ky < P; ky++) {
                        const size_t at = (((size_t)b * ch + c) * H + gy * P + ky) * W + gx * P;
                        float *o = r + (c * P + ky) * P;
                        if (!lut) {
                            memcpy(o, (const float *)px + at, (size_t)P * sizeof(float));
                        } else {
                            const unsigned char *u = (const unsigned char *)px + at;
                            for (int kx = 0; kx < P; kx++) o[kx] = lut[c * 256 + u[kx]];
                        }
                    }
            }
}

/* torch's cubic convolution weights for the four taps at offsets −1..2 of fraction t (A = −0.75) */
static void cubic_weights(float t, float w[4])
{
    const float A = -0.75f;
    const float x1 = t + 1.0f, x2 = 1.0f - t, x3 = 2.0f - t;
    w[0] = ((A * x1 - 5.0f * A) * x1 + 8.0f * A) * x1 - 4.0f * A;
    w[1] = ((A + 2.0f) * t - (A + 3.0f)) * t * t + 1.0f;
    w[2] = ((A + 2.0f) * x2 - (A + 3.0f)) * x2 * x2 + 1.0f;
    w[3] = ((A * x3 - 5.0f * A) * x3 + 8.0f * A) * x3 - 4.0f * A;
}

/* source index and fraction of output position d of n_out from n_in (align_corners=False) */
static void source(int d, int n_in, int n_out, int *i0, float *t)
{
    const float scale = (float)n_in / (float)n_out;
    const float x = scale * ((float)d + 0.5f) - 0.5f;
    const float f = floorf(x);
    *i0 = (int)f;
    *t = x - f;
}

static int clampi(int v, int n) { return v < 0 ? 0 : v >= n ? n - 1 : v; }

void patch_pos_interpolate(const float *table, int n_prefix, int g0, int C, int gh, int gw, float *out)
{
    memcpy(out, table, (size_t)n_prefix * C * sizeof(float));
    const float *grid = table + (size_t)n_prefix * C;
    float *dst = out + (size_t)n_prefix * C;
    if (gh == g0 && gw == g0) {
        memcpy(dst, grid, (size_t)g0 * g0 * C * sizeof(float));
        return;
    }
    for (int oy = 0; oy < gh; oy++) {
        int y0;
        float ty, wy[4];
        source(oy, g0, gh, &y0, &ty);
        cubic_weights(ty, wy);
        for (int ox = 0; ox < gw; ox++) {
            int x0;
            float tx, wx[4];
            source(ox, g0, gw, &x0, &tx);
            cubic_weights(tx, wx);
            float *o = dst + ((size_t)oy * gw + ox) * C;
            for (int c = 0; c < C; c++) {
                float acc = 0.0f;
                for (int k = 0; k < 4; k++) {          /* along x in each of the four rows, then along y */
                    const float *row = grid + (size_t)clampi(y0 - 1 + k, g0) * g0 * C;
                    float r = 0.0f;
                    for (int j = 0; j < 4; j++) r += wx[j] * row[(size_t)clampi(x0 - 1 + j, g0) * C + c];
                    acc += wy[k] * r;
                }
                o[c] = acc;
            }
        }
    }
}
