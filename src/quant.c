/* quant.c — see quant.h.
 *
 * Each dequantize_* below is ggml's dequantize_row_* (ggml-quants.c, ggml-org/ggml 2026-08) for
 * one block, with the same float operations in the same order (scale × integer, then − min or
 * + min), so the results are bit-identical to ggml's scalar path as long as the compiler does
 * not contract a*b-c into an FMA (the build's -std=c11 keeps -ffp-contract=off; x86-64 without
 * -march has no FMA anyway). Blocks are read byte-wise (memcpy for the f16 scales): a tensor's
 * data has no alignment guarantee beyond GGUF's own. */
#include "quant.h"
#include <string.h>

#define QK_K 256

/* ids and sizes from ggml's type_traits (ggml.c); to_f32 marks what this file dequantizes */
static const quant_type_info types[] = {
    [0] = { "f32", 1, 4, 1 },        [1] = { "f16", 1, 2, 1 },
    [2] = { "q4_0", 32, 18, 1 },     [3] = { "q4_1", 32, 20, 1 },
    [6] = { "q5_0", 32, 22, 1 },     [7] = { "q5_1", 32, 24, 1 },
    [8] = { "q8_0", 32, 34, 1 },     [9] = { "q8_1", 32, 36, 0 },
    [10] = { "q2_K", 256, 84, 1 },   [11] = { "q3_K", 256, 110, 1 },
    [12] = { "q4_K", 256, 144, 1 },  [13] = { "q5_K", 256, 176, 1 },
    [14] = { "q6_K", 256, 210, 1 },  [15] = { "q8_K", 256, 292, 0 },
    [16] = { "iq2_xxs", 256, 66, 0 }, [17] = { "iq2_xs", 256, 74, 0 },
    [18] = { "iq3_xxs", 256, 98, 0 }, [19] = { "iq1_s", 256, 50, 0 },
    [20] = { "iq4_nl", 32, 18, 0 },  [21] = { "iq3_s", 256, 110, 0 },
    [22] = { "iq2_s", 256, 82, 0 },  [23] = { "iq4_xs", 256, 136, 0 },
    [24] = { "i8", 1, 1, 0 },        [25] = { "i16", 1, 2, 0 },
    [26] = { "i32", 1, 4, 0 },       [27] = { "i64", 1, 8, 0 },
    [28] = { "f64", 1, 8, 0 },       [29] = { "iq1_m", 256, 56, 0 },
    [30] = { "bf16", 1, 2, 1 },
    [34] = { "tq1_0", 256, 54, 0 },  [35] = { "tq2_0", 256, 66, 0 },
    [39] = { "mxfp4", 32, 17, 0 },   [40] = { "nvfp4", 64, 36, 0 },
    [41] = { "q1_0", 128, 18, 0 },
};

const quant_type_info *quant_type(uint32_t type)
{
    if (type >= sizeof types / sizeof types[0] || !types[type].name) return NULL;
    return &types[type];
}

float quant_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, mant = h & 0x3ff, b;
    if (e == 0x1f) b = sign | 0x7f800000u | (mant << 13);
    else if (e == 0) {
        if (mant == 0) b = sign;
        else {
            int ex = -14;                     /* value = mant/1024 · 2^-14, renormalised */
            while (!(mant & 0x400)) { mant <<= 1; ex--; }
            b = sign | ((uint32_t)(ex + 127) << 23) | ((mant & 0x3ff) << 13);
        }
    } else b = sign | ((e + 112) << 23) | (mant << 13);
    float f;
    memcpy(&f, &b, 4);
    return f;
}

static float f16_at(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return quant_f16_to_f32(h);
}

/* block_q4_0: d f16, qs[16] */
static void dequantize_q4_0(const uint8_t *b, float *y)
{
    const float d = f16_at(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = ((qs[j] & 0x0F) - 8) * d;
        y[j + 16] = ((qs[j] >> 4) - 8) * d;
    }
}

/* block_q4_1: d f16, m f16, qs[16] */
static void dequantize_q4_1(const uint8_t *b, float *y)
{
    const float d = f16_at(b), m = f16_at(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        y[j] = (qs[j] & 0x0F) * d + m;
        y[j + 16] = (qs[j] >> 4) * d + m;
    }
}

/* block_q5_0: d f16, qh[4] (the 5th bits, little-endian uint32), qs[16]; block_q5_1 adds m */
static void dequantize_q5(const uint8_t *b, float *y, int has_min)
{
    const float d = f16_at(b), m = has_min ? f16_at(b + 2) : 0.0f;
    const uint8_t *p = b + (has_min ? 4 : 2);
    uint32_t qh = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    const uint8_t *qs = p + 4;
    for (int j = 0; j < 16; j++) {
        const uint8_t xh_0 = ((qh >> j) << 4) & 0x10;
        const uint8_t xh_1 = (qh >> (j + 12)) & 0x10;
        const int x0 = (qs[j] & 0x0F) | xh_0, x1 = (qs[j] >> 4) | xh_1;
        if (has_min) {
            y[j] = x0 * d + m;
            y[j + 16] = x1 * d + m;
        } else {
            y[j] = (x0 - 16) * d;
            y[j + 16] = (x1 - 16) * d;
        }
    }
}

/* block_q8_0: d f16, qs[32] int8 */
static void dequantize_q8_0(const uint8_t *b, float *y)
{
    const float d = f16_at(b);
    for (int j = 0; j < 32; j++) y[j] = (int8_t)b[2 + j] * d;
}

/* block_q2_K: scales[16] (4-bit scale | 4-bit min), qs[64], d f16, dmin f16 */
static void dequantize_q2_K(const uint8_t *b, float *y)
{
    const uint8_t *scales = b, *q = b + 16;
    const float d = f16_at(b + 80), min = f16_at(b + 82);
    int is = 0;
    for (int n = 0; n < QK_K; n += 128) {
        int shift = 0;
        for (int j = 0; j < 4; j++) {
            uint8_t sc = scales[is++];
            float dl = d * (sc & 0xF), ml = min * (sc >> 4);
            for (int l = 0; l < 16; l++) *y++ = dl * ((int8_t)((q[l] >> shift) & 3)) - ml;
            sc = scales[is++];
            dl = d * (sc & 0xF); ml = min * (sc >> 4);
            for (int l = 0; l < 16; l++) *y++ = dl * ((int8_t)((q[l + 16] >> shift) & 3)) - ml;
            shift += 2;
        }
        q += 32;
    }
}

/* block_q3_K: hmask[32], qs[64], scales[12] (16 6-bit scales), d f16 */
static void dequantize_q3_K(const uint8_t *b, float *y)
{
    const uint32_t kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
    const uint8_t *hm = b, *q = b + 32;
    const float d_all = f16_at(b + 108);
    uint32_t aux[4];
    memcpy(aux, b + 96, 12);
    uint32_t tmp = aux[2];
    aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
    aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
    aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
    aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
    int8_t scales[16];
    memcpy(scales, aux, 16);
    int is = 0;
    uint8_t m = 1;
    for (int n = 0; n < QK_K; n += 128) {
        int shift = 0;
        for (int j = 0; j < 4; j++) {
            float dl = d_all * (scales[is++] - 32);
            for (int l = 0; l < 16; l++) *y++ = dl * ((int8_t)((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
            dl = d_all * (scales[is++] - 32);
            for (int l = 0; l < 16; l++)
                *y++ = dl * ((int8_t)((q[l + 16] >> shift) & 3) - ((hm[l + 16] & m) ? 0 : 4));
            shift += 2;
            m <<= 1;
        }
        q += 32;
    }
}

/* the 6-bit scale and min of sub-block j of a q4_K/q5_K block (ggml's get_scale_min_k4) */
static void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m)
{
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* block_q4_K: d f16, dmin f16, scales[12], qs[128]; block_q5_K: the same with qh[32] before qs */
static void dequantize_q45_K(const uint8_t *b, float *y, int five)
{
    const float d = f16_at(b), min = f16_at(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *q = b + (five ? 48 : 16);
    uint8_t sc, m, u1 = 1, u2 = 2;
    int is = 0;
    for (int j = 0; j < QK_K; j += 64) {
        scale_min_k4(is + 0, scales, &sc, &m);
        const float d1 = d * sc, m1 = min * m;
        scale_min_k4(is + 1, scales, &sc, &m);
        const float d2 = d * sc, m2 = min * m;
        if (five) {
            for (int l = 0; l < 32; l++) *y++ = d1 * ((q[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * ((q[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            u1 <<= 2;
            u2 <<= 2;
        } else {
            for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (q[l] >> 4) - m2;
        }
        q += 32;
        is += 2;
    }
}

/* block_q6_K: ql[128], qh[64], scales[16] int8, d f16 */
static void dequantize_q6_K(const uint8_t *b, float *y)
{
    const float d = f16_at(b + 208);
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    for (int n = 0; n < QK_K; n += 128) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            const int8_t q1 = (int8_t)((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int8_t q2 = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int8_t q3 = (int8_t)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int8_t q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l + 0] = d * sc[is + 0] * q1;
            y[l + 32] = d * sc[is + 2] * q2;
            y[l + 64] = d * sc[is + 4] * q3;
            y[l + 96] = d * sc[is + 6] * q4;
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

int quant_to_f32(uint32_t type, const void *src, float *dst, int64_t nblocks)
{
    const quant_type_info *t = quant_type(type);
    if (!t || !t->to_f32) return -1;
    const uint8_t *b = src;
    if (type == QT_F32) {
        if (nblocks) memcpy(dst, src, (size_t)nblocks * 4);
        return 0;
    }
    for (int64_t i = 0; i < nblocks; i++, b += t->tsize, dst += t->blck) {
        switch (type) {
        case QT_F16: dst[0] = f16_at(b); break;
        case QT_BF16: {                       /* ggml's GGML_BF16_TO_FP32: the high half */
            uint32_t u = ((uint32_t)b[0] | (uint32_t)b[1] << 8) << 16;
            memcpy(dst, &u, 4);
            break;
        }
        case QT_Q4_0: dequantize_q4_0(b, dst); break;
        case QT_Q4_1: dequantize_q4_1(b, dst); break;
        case QT_Q5_0: dequantize_q5(b, dst, 0); break;
        case QT_Q5_1: dequantize_q5(b, dst, 1); break;
        case QT_Q8_0: dequantize_q8_0(b, dst); break;
        case QT_Q2_K: dequantize_q2_K(b, dst); break;
        case QT_Q3_K: dequantize_q3_K(b, dst); break;
        case QT_Q4_K: dequantize_q45_K(b, dst, 0); break;
        case QT_Q5_K: dequantize_q45_K(b, dst, 1); break;
        case QT_Q6_K: dequantize_q6_K(b, dst); break;
        default: return -1;
        }
    }
    return 0;
}
