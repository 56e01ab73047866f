// layernorm.cu — LayerNorm of (in + res) over rows of C, one warp per row (8 rows per block): the
// residual add fused in (one float add). Double accumulation (rows of 128·V: warp_mean_var's one
// reduction of two sums; other rows two passes, mean, then Σ(x−mean)²) and the final scale/shift
// rounded in the CPU backend's order (__fmul_rn/__fadd_rn: no FMA contraction), so results match
// backend_cpu.c to about one float ulp. out may equal in:
// each lane rewrites only the elements it read. Rows of 128·V (bert-base, MiniLM, ...) stay in
// registers (16- or 8-byte loads); a bf16 copy of the output can be written on the way (the next
// GEMM's input under --precision bf16), or only that copy; the input may be bf16 (a post-norm
// model's stream under --precision bf16, model.c residual_step).
#include "kernels.h"
#include "kernel_util.cuh"
#include <cuda_bf16.h>

// any C: lanes take elements lane, lane + 32, ...; TI, TR: the input's and the residual's element
// types. Each pass recomputes in + res (cached reads) so that out may be NULL (the bf16 copy alone)
// or equal in: the last pass reads an element before the same lane writes it.
template <typename TI, typename TR>
__global__ static void layernorm_kernel(float *out, __nv_bfloat16 *outb, const TI *in, const TR *res, const float *w,
                                        const float *b, int M, int C, float eps)
{
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= M) return;
    const TI *x = in + (size_t)row * C;
    const TR *r = res ? res + (size_t)row * C : NULL;
    auto val = [&](int i) { return r ? __fadd_rn(as_float(x[i]), as_float(r[i])) : as_float(x[i]); };
    double mean = 0, var = 0;
    for (int i = lane; i < C; i += 32) mean += val(i);
    mean = warp_sum(mean) / C;
    for (int i = lane; i < C; i += 32) var += (val(i) - mean) * (val(i) - mean);
    var = warp_sum(var) / C;
    const double rstd = 1.0 / sqrt(var + eps);
    for (int i = lane; i < C; i += 32) {
        const float v = __fadd_rn(__fmul_rn((float)((val(i) - mean) * rstd), w[i]), b[i]);
        if (out) out[(size_t)row * C + i] = v;
        if (outb) outb[(size_t)row * C + i] = __float2bfloat16_rn(v);
    }
}

// C = 128·V: the row in registers (V groups of 4 per lane), read once and written once; the mean
// and variance in one reduction (warp_mean_var), the rest as layernorm_kernel
template <int V, typename TI, typename TR>
__global__ static void layernorm_vec_kernel(float *out, __nv_bfloat16 *outb, const TI *in, const TR *res,
                                            const float *w, const float *b, int M, float eps)
{
    const int C = 128 * V, row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= M) return;
    const TI *x = in + (size_t)row * C;
    const TR *r = res ? res + (size_t)row * C : NULL;
    float v[4 * V];
#pragma unroll
    for (int k = 0; k < V; k++) {
        float4 a = load4(x + 4 * (lane + 32 * k));
        if (r) {
            const float4 c = load4(r + 4 * (lane + 32 * k));
            a = make_float4(__fadd_rn(a.x, c.x), __fadd_rn(a.y, c.y), __fadd_rn(a.z, c.z), __fadd_rn(a.w, c.w));
        }
        v[4 * k] = a.x; v[4 * k + 1] = a.y; v[4 * k + 2] = a.z; v[4 * k + 3] = a.w;
    }
    double mean, var;
    warp_mean_var(v, C, mean, var);
    const double rstd = 1.0 / sqrt(var + eps);
#pragma unroll
    for (int k = 0; k < V; k++) {
        const int c = 4 * (lane + 32 * k);
        const float4 w4 = *reinterpret_cast<const float4 *>(w + c), b4 = *reinterpret_cast<const float4 *>(b + c);
        const float wv[4] = {w4.x, w4.y, w4.z, w4.w}, bv[4] = {b4.x, b4.y, b4.z, b4.w};
        float o[4];
#pragma unroll
        for (int e = 0; e < 4; e++) o[e] = __fadd_rn(__fmul_rn((float)((v[4 * k + e] - mean) * rstd), wv[e]), bv[e]);
        if (out) store4(out + (size_t)row * C + c, make_float4(o[0], o[1], o[2], o[3]));
        if (outb) store4(outb + (size_t)row * C + c, make_float4(o[0], o[1], o[2], o[3]));
    }
}

template <typename TI, typename TR>
static void launch(float *out, __nv_bfloat16 *ob, const TI *in, const TR *res, const float *w, const float *b, int M,
                   int C, float eps)
{
    const int rows_per_block = 8, blocks = (M + rows_per_block - 1) / rows_per_block;
    const bool aligned = (size_t)in % 16 == 0 && (size_t)out % 16 == 0 && (size_t)ob % 16 == 0 &&
                         (!res || (size_t)res % 16 == 0) && (size_t)w % 16 == 0 && (size_t)b % 16 == 0;
    switch (aligned && C % 128 == 0 ? C / 128 : 0) {
#define LN_VEC(V) case V: layernorm_vec_kernel<V><<<blocks, 32 * rows_per_block>>>(out, ob, in, res, w, b, M, eps); break;
    LN_VEC(1) LN_VEC(2) LN_VEC(3) LN_VEC(4) LN_VEC(5) LN_VEC(6) LN_VEC(7) LN_VEC(8)
#undef LN_VEC
    default: layernorm_kernel<<<blocks, 32 * rows_per_block>>>(out, ob, in, res, w, b, M, C, eps);
    }
    KERNEL_CHECK("layernorm_kernel");
}

template <typename TI>
static void launch_in(float *out, __nv_bfloat16 *ob, const TI *in, const void *res, int res_bf16, const float *w,
                      const float *b, int M, int C, float eps)
{
    if (res_bf16) launch(out, ob, in, (const __nv_bfloat16 *)res, w, b, M, C, eps);
    else launch(out, ob, in, (const float *)res, w, b, M, C, eps);
}

extern "C" void cuda_layernorm(float *out, void *out_bf16, const void *in, int in_bf16, const void *res, int res_bf16,
                               const float *w, const float *b, int M, int C, float eps)
{
    __nv_bfloat16 *ob = (__nv_bfloat16 *)out_bf16;
    if (!out && !ob) return;
    if (in_bf16) launch_in(out, ob, (const __nv_bfloat16 *)in, res, res_bf16, w, b, M, C, eps);
    else launch_in(out, ob, (const float *)in, res, res_bf16, w, b, M, C, eps);
}
