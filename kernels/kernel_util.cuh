// kernel_util.cuh — what every kernels/*.cu shares: the launch check (the message names the file,
// line and kernel, then the job ends through check_fail of util.c, as CHECK_* of check.h do),
// grid sizing and double-precision warp sums. Not part of the C interface (that is kernels.h).
#ifndef ATTNSCOPE_KERNEL_UTIL_CUH
#define ATTNSCOPE_KERNEL_UTIL_CUH
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <stddef.h>

extern "C" [[noreturn]] void check_fail(const char *file, int line, const char *call, const char *msg);

// After every launch: a bad configuration (or an earlier sticky fault) ends the job here.
#define KERNEL_CHECK(kernel_name) do { cudaError_t e_ = cudaGetLastError(); \
    if (e_ != cudaSuccess) check_fail(__FILE__, __LINE__, kernel_name, cudaGetErrorString(e_)); } while (0)

static inline unsigned kernel_blocks(size_t work, int per_block)
{
    size_t n = (work + per_block - 1) / per_block;
    const size_t cap = 65535u * 8u;   // grid-stride loops cover the rest
    return (unsigned)(n == 0 ? 1 : n < cap ? n : cap);
}

__device__ inline double warp_sum(double v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
// a row's mean and variance (over C elements) from the lane's N values, in double and in one warp
// reduction of two sums, Σ(v − s) and Σ(v − s)², about s = lane 0's first value: the two
// reductions of the two-pass form (mean, then Σ(v − mean)²) run one after the other, these two at
// once. (s is a value of the row: the variance's cancellation is at most (mean − s)²/var in double,
// no float bit.)
template <int N> __device__ inline void warp_mean_var(const float (&v)[N], int C, double &mean, double &var)
{
    const double s = __shfl_sync(0xffffffffu, (double)v[0], 0);
    double s1 = 0, s2 = 0;
#pragma unroll
    for (int e = 0; e < N; e++) {
        const double d = v[e] - s;
        s1 += d;
        s2 += d * d;
    }
    for (int o = 16; o > 0; o >>= 1) {
        s1 += __shfl_xor_sync(0xffffffffu, s1, o);
        s2 += __shfl_xor_sync(0xffffffffu, s2, o);
    }
    const double m1 = s1 / C;
    mean = s + m1;
    var = fmax(s2 / C - m1 * m1, 0.0);
}
// x rounded to TF32 (10-bit mantissa, nearest, ties away; sm_80+): the low 13 bits are zero, so
// the tensor cores see exactly this value (split.cu, permute.cu: the 3xTF32 operands)
__device__ inline float tf32_rna(float x)
{
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return __uint_as_float(r);
}
__device__ inline float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// float32 or bfloat16 activations, read and written as float (bf16: rounded to nearest even)
__device__ inline float as_float(float x) { return x; }
__device__ inline float as_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ inline void store_as(float *p, float v) { *p = v; }
__device__ inline void store_as(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }
// four consecutive elements at p (16-byte aligned for float, 8-byte for bf16)
__device__ inline float4 load4(const float *p) { return *reinterpret_cast<const float4 *>(p); }
__device__ inline float4 load4(const __nv_bfloat16 *p)
{
    const uint2 u = *reinterpret_cast<const uint2 *>(p);
    const float2 lo = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&u.x));
    const float2 hi = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&u.y));
    return make_float4(lo.x, lo.y, hi.x, hi.y);
}
__device__ inline void store4(float *p, float4 v) { *reinterpret_cast<float4 *>(p) = v; }
__device__ inline void store4(__nv_bfloat16 *p, float4 v)
{
    __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
    *reinterpret_cast<uint2 *>(p) = make_uint2(*reinterpret_cast<uint32_t *>(&lo), *reinterpret_cast<uint32_t *>(&hi));
}
#endif
