// add_norm.cu — the pre-norm residual step (backend.h add_norm): x += res (one float add, as
// torch's), then xn = norm(x)·w (+ b) with norm LayerNorm ((x − mean)/sqrt(var + eps)) or RMSNorm
// (x/sqrt(mean(x²) + eps)); w NULL: xn = x. One warp per row, 8 rows per block, as layernorm.cu:
// statistics in double (LayerNorm: one reduction of two sums, warp_mean_var, for rows of 128·V;
// two passes otherwise), the final scale/shift in the CPU backend's order (__fmul_rn/__fadd_rn,
// no FMA contraction), so results match backend_cpu.c to about one float ulp. xn may equal x
// (post-norm): each lane writes only the elements it read, x first. Rows of 128·V floats stay in
// registers (float4 loads). res may be bfloat16 and a bf16 copy of xn
// may be written (the next GEMM's input under --precision bf16); with it, xn may be NULL (only the
// copy is wanted: a pre-norm model's float32 xn is then never read). norms, when not NULL, gets each
// row's L2 norm after the add, Σ x² in double (the residual stream's norms without reading x again).
#include "kernels.h"
#include "kernel_util.cuh"

// any C: lanes take elements lane, lane + 32, ...; the sum is written to x and read back
template <typename TR>
__global__ static void add_norm_kernel(float *x, float *xn, __nv_bfloat16 *xnb, const TR *res, const float *w,
                                       const float *b, int M, int C, float eps, int rms, float *norms)
{
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= M) return;
    float *r = x + (size_t)row * C, *y = xn ? xn + (size_t)row * C : NULL;
    __nv_bfloat16 *yb = xnb ? xnb + (size_t)row * C : NULL;
    if (res) {
        const TR *a = res + (size_t)row * C;
        for (int i = lane; i < C; i += 32) r[i] = __fadd_rn(r[i], as_float(a[i]));
    }
    if (norms) {
        double s = 0;
        for (int i = lane; i < C; i += 32) s += (double)r[i] * r[i];
        s = warp_sum(s);
        if (lane == 0) norms[row] = (float)sqrt(s);
    }
    if (!w) {
        for (int i = lane; i < C; i += 32) {
            const float v = r[i];
            if (y) y[i] = v;
            if (yb) yb[i] = __float2bfloat16_rn(v);
        }
        return;
    }
    double mean = 0, var = 0;
    if (!rms) {
        for (int i = lane; i < C; i += 32) mean += r[i];
        mean = warp_sum(mean) / C;
    }
    for (int i = lane; i < C; i += 32) var += (r[i] - mean) * (r[i] - mean);
    var = warp_sum(var) / C;
    const double rstd = 1.0 / sqrt(var + eps);
    for (int i = lane; i < C; i += 32) {
        const float v = __fadd_rn(__fmul_rn((float)((r[i] - mean) * rstd), w[i]), b ? b[i] : 0.0f);
        if (y) y[i] = v;
        if (yb) yb[i] = __float2bfloat16_rn(v);
    }
}

// C = 128·V: the row in registers (V float4 per lane), read once and written once
template <int V, typename TR>
__global__ static void add_norm_vec_kernel(float *x, float *xn, __nv_bfloat16 *xnb, const TR *res, const float *w,
                                           const float *b, int M, float eps, int rms, float *norms)
{
    const int C = 128 * V, row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= M) return;
    float *r = x + (size_t)row * C, *y = xn ? xn + (size_t)row * C : NULL;
    const TR *a = res ? res + (size_t)row * C : NULL;
    float v[4 * V];
#pragma unroll
    for (int k = 0; k < V; k++) {
        const int c = 4 * (lane + 32 * k);
        float4 s = load4(r + c);
        if (a) {
            const float4 d = load4(a + c);
            s = make_float4(__fadd_rn(s.x, d.x), __fadd_rn(s.y, d.y), __fadd_rn(s.z, d.z), __fadd_rn(s.w, d.w));
            if (w) store4(r + c, s);             // the stream keeps the sum (xn == x: overwritten below)
        }
        v[4 * k] = s.x; v[4 * k + 1] = s.y; v[4 * k + 2] = s.z; v[4 * k + 3] = s.w;
    }
    if (norms) {
        double s = 0;
#pragma unroll
        for (int e = 0; e < 4 * V; e++) s += (double)v[e] * v[e];
        s = warp_sum(s);
        if (lane == 0) norms[row] = (float)sqrt(s);
    }
    double mean = 0, rstd = 1;
    if (w) {
        double var = 0;
        if (!rms) {
            warp_mean_var(v, C, mean, var);               // (one reduction: kernel_util.cuh)
        } else {
#pragma unroll
            for (int e = 0; e < 4 * V; e++) var += (double)v[e] * v[e];
            var = warp_sum(var) / C;
        }
        rstd = 1.0 / sqrt(var + eps);
    }
#pragma unroll
    for (int k = 0; k < V; k++) {
        const int c = 4 * (lane + 32 * k);
        float o[4];
        if (w) {
            const float4 w4 = load4(w + c), b4 = b ? load4(b + c) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            const float wv[4] = {w4.x, w4.y, w4.z, w4.w}, bv[4] = {b4.x, b4.y, b4.z, b4.w};
#pragma unroll
            for (int e = 0; e < 4; e++) o[e] = __fadd_rn(__fmul_rn((float)((v[4 * k + e] - mean) * rstd), wv[e]), bv[e]);
        } else {
#pragma unroll
            for (int e = 0; e < 4; e++) o[e] = v[4 * k + e];
            if (a && y != r) store4(r + c, make_float4(o[0], o[1], o[2], o[3]));
        }
        if (y) store4(y + c, make_float4(o[0], o[1], o[2], o[3]));
        if (xnb) store4(xnb + (size_t)row * C + c, make_float4(o[0], o[1], o[2], o[3]));
    }
}

template <typename TR>
static void launch(float *x, float *xn, __nv_bfloat16 *xnb, const TR *res, const float *w, const float *b, int M, int C,
                   float eps, int rms, float *norms)
{
    const int rows_per_block = 8, blocks = (M + rows_per_block - 1) / rows_per_block;
    if (M <= 0) return;
    const bool aligned = (size_t)x % 16 == 0 && (size_t)xn % 16 == 0 && (size_t)res % 16 == 0 && (size_t)w % 16 == 0 &&
                         (size_t)b % 16 == 0 && (size_t)xnb % 8 == 0;
    switch (aligned && C % 128 == 0 ? C / 128 : 0) {
#define AN_VEC(V) case V: add_norm_vec_kernel<V><<<blocks, 32 * rows_per_block>>>(x, xn, xnb, res, w, b, M, eps, rms, norms); break;
    AN_VEC(1) AN_VEC(2) AN_VEC(3) AN_VEC(4) AN_VEC(5) AN_VEC(6) AN_VEC(7) AN_VEC(8)
#undef AN_VEC
    default: add_norm_kernel<<<blocks, 32 * rows_per_block>>>(x, xn, xnb, res, w, b, M, C, eps, rms, norms);
    }
    KERNEL_CHECK("add_norm_kernel");
}

extern "C" void cuda_add_norm(float *x, float *xn, void *xn_bf16, const void *res, int res_bf16, const float *w,
                              const float *b, int M, int C, float eps, int rms, float *norms)
{
    __nv_bfloat16 *xnb = (__nv_bfloat16 *)xn_bf16;
    if (res_bf16) launch(x, xn, xnb, (const __nv_bfloat16 *)res, w, b, M, C, eps, rms, norms);
    else launch(x, xn, xnb, (const float *)res, w, b, M, C, eps, rms, norms);
}

// ---------------------------------------------------------------------------------------------
// The bf16 residual stream of a pre-norm model under --precision bf16 (backend.h add_norm_stream):
// s = bf16(x0) at the stream's start (x0 the float32 embeddings), else s = bf16(s + res), one float
// add of the two bf16 values rounded once to nearest even (torch's bf16 add); then the norm, its
// copies and the row norms as add_norm, from the rounded values (what torch's norm of a bf16
// tensor reads). 8 bytes an element (read s, res; write s, the bf16 copy) against the float32
// stream's 12.

// the value s holds after the rounding
__device__ inline float bf16_round(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

// any C: the stream first (each lane its elements lane, lane + 32, ...), then read back
template <typename TI>
__global__ static void add_norm_stream_kernel(__nv_bfloat16 *s, const TI *xin, const __nv_bfloat16 *res, float *xn,
                                              __nv_bfloat16 *xnb, const float *w, const float *b, int M, int C,
                                              float eps, int rms, float *norms)
{
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= M) return;
    const size_t o = (size_t)row * C;
    __nv_bfloat16 *r = s + o;
    if (res || (const void *)xin != (const void *)s)   // (nothing to add: the stream as it is)
        for (int i = lane; i < C; i += 32) {
            float v = as_float(xin[o + i]);
            if (res) v = __fadd_rn(v, as_float(res[o + i]));
            r[i] = __float2bfloat16_rn(v);
        }
    if (norms) {
        double q = 0;
        for (int i = lane; i < C; i += 32) q += (double)as_float(r[i]) * as_float(r[i]);
        q = warp_sum(q);
        if (lane == 0) norms[row] = (float)sqrt(q);
    }
    double mean = 0, var = 0, rstd = 1;
    if (w) {
        if (!rms) {
            for (int i = lane; i < C; i += 32) mean += as_float(r[i]);
            mean = warp_sum(mean) / C;
        }
        for (int i = lane; i < C; i += 32) var += (as_float(r[i]) - mean) * (as_float(r[i]) - mean);
        var = warp_sum(var) / C;
        rstd = 1.0 / sqrt(var + eps);
    }
    for (int i = lane; i < C; i += 32) {
        const float x = as_float(r[i]);
        const float v = w ? __fadd_rn(__fmul_rn((float)((x - mean) * rstd), w[i]), b ? b[i] : 0.0f) : x;
        if (xn) xn[o + i] = v;
        if (xnb) xnb[o + i] = __float2bfloat16_rn(v);
    }
}

// C = 128·V: the row in registers, read once and written once
template <int V, typename TI>
__global__ static void add_norm_stream_vec_kernel(__nv_bfloat16 *s, const TI *xin, const __nv_bfloat16 *res, float *xn,
                                                  __nv_bfloat16 *xnb, const float *w, const float *b, int M, float eps,
                                                  int rms, float *norms)
{
    const int C = 128 * V, row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= M) return;
    const size_t o = (size_t)row * C;
    float v[4 * V];
#pragma unroll
    for (int k = 0; k < V; k++) {
        const int c = 4 * (lane + 32 * k);
        float4 a = load4(xin + o + c);
        if (res) {
            const float4 d = load4(res + o + c);
            a = make_float4(__fadd_rn(a.x, d.x), __fadd_rn(a.y, d.y), __fadd_rn(a.z, d.z), __fadd_rn(a.w, d.w));
        }
        if (res || (const void *)xin != (const void *)s) store4(s + o + c, a);   // (else the stream as it is)
        v[4 * k] = bf16_round(a.x); v[4 * k + 1] = bf16_round(a.y); v[4 * k + 2] = bf16_round(a.z); v[4 * k + 3] = bf16_round(a.w);
    }
    if (norms) {
        double q = 0;
#pragma unroll
        for (int e = 0; e < 4 * V; e++) q += (double)v[e] * v[e];
        q = warp_sum(q);
        if (lane == 0) norms[row] = (float)sqrt(q);
    }
    double mean = 0, rstd = 1;
    if (w) {
        double var = 0;
        if (!rms) {
            warp_mean_var(v, C, mean, var);
        } else {
#pragma unroll
            for (int e = 0; e < 4 * V; e++) var += (double)v[e] * v[e];
            var = warp_sum(var) / C;
        }
        rstd = 1.0 / sqrt(var + eps);
    }
#pragma unroll
    for (int k = 0; k < V; k++) {
        const int c = 4 * (lane + 32 * k);
        float y[4];
        if (w) {
            const float4 w4 = load4(w + c), b4 = b ? load4(b + c) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            const float wv[4] = {w4.x, w4.y, w4.z, w4.w}, bv[4] = {b4.x, b4.y, b4.z, b4.w};
#pragma unroll
            for (int e = 0; e < 4; e++) y[e] = __fadd_rn(__fmul_rn((float)((v[4 * k + e] - mean) * rstd), wv[e]), bv[e]);
        } else {
#pragma unroll
            for (int e = 0; e < 4; e++) y[e] = v[4 * k + e];
        }
        if (xn) store4(xn + o + c, make_float4(y[0], y[1], y[2], y[3]));
        if (xnb) store4(xnb + o + c, make_float4(y[0], y[1], y[2], y[3]));
    }
}

template <typename TI>
static void launch_stream(__nv_bfloat16 *s, const TI *xin, const __nv_bfloat16 *res, float *xn, __nv_bfloat16 *xnb,
                          const float *w, const float *b, int M, int C, float eps, int rms, float *norms)
{
    const int rows_per_block = 8, blocks = (M + rows_per_block - 1) / rows_per_block;
    if (M <= 0) return;
    const bool aligned = (size_t)s % 8 == 0 && (size_t)xin % 16 == 0 && (size_t)res % 8 == 0 && (size_t)xn % 16 == 0 &&
                         (size_t)xnb % 8 == 0 && (size_t)w % 16 == 0 && (size_t)b % 16 == 0;
    const int V = aligned && C % 128 == 0 ? C / 128 : 0;
#define ANS_VEC(V) case V: add_norm_stream_vec_kernel<V><<<blocks, 32 * rows_per_block>>>(s, xin, res, xn, xnb, w, b, M, eps, rms, norms); break;
    switch (V) {
    ANS_VEC(1) ANS_VEC(2) ANS_VEC(3) ANS_VEC(4) ANS_VEC(5) ANS_VEC(6) ANS_VEC(7) ANS_VEC(8) ANS_VEC(16)
    default: add_norm_stream_kernel<<<blocks, 32 * rows_per_block>>>(s, xin, res, xn, xnb, w, b, M, C, eps, rms, norms);
    }
#undef ANS_VEC
    KERNEL_CHECK("add_norm_stream_kernel");
}

extern "C" void cuda_add_norm_stream(void *s, const float *x0, void *xn_bf16, float *xn, const void *res, const float *w,
                                     const float *b, int M, int C, float eps, int rms, float *norms)
{
    __nv_bfloat16 *sb = (__nv_bfloat16 *)s, *xnb = (__nv_bfloat16 *)xn_bf16;
    const __nv_bfloat16 *rb = (const __nv_bfloat16 *)res;
    if (x0) launch_stream(sb, x0, rb, xn, xnb, w, b, M, C, eps, rms, norms);
    else launch_stream(sb, (const __nv_bfloat16 *)sb, rb, xn, xnb, w, b, M, C, eps, rms, norms);
}
