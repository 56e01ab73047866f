// kernel_util.cuh — what every kernels/*.cu shares: the launch check (the message names the file,
// line and kernel, then the job ends through check_fail of util.c, as CHECK_* of check.h do),
// grid sizing and double-precision warp sums. Not part of the C interface (that is kernels.h).
#ifndef ATTNSCOPE_KERNEL_UTIL_CUH
#define ATTNSCOPE_KERNEL_UTIL_CUH
#include <cuda_runtime.h>
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
#endif
