// bias.cu — bias add after a GEMM: out[m, :] += b (out (M, N) row-major). Exact: one float add
// (bf16 output: the sum in float, rounded once). Only where cuBLASLt's bias epilogue is missing.
#include "kernels.h"
#include "kernel_util.cuh"
#include <cuda_bf16.h>

__global__ static void bias_add_bf16_kernel(__nv_bfloat16 *out, const float *b, int M, int N)
{
    const size_t n = (size_t)M * N;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x)
        out[e] = __float2bfloat16_rn(__bfloat162float(out[e]) + b[e % N]);
}

extern "C" void cuda_bias_add_bf16(void *out, const float *b, int M, int N)
{
    bias_add_bf16_kernel<<<kernel_blocks((size_t)M * N, 256), 256>>>((__nv_bfloat16 *)out, b, M, N);
    KERNEL_CHECK("bias_add_bf16_kernel");
}

__global__ static void bias_add_kernel(float *out, const float *b, int M, int N)
{
    const size_t n = (size_t)M * N;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x)
        out[e] += b[e % N];
}

extern "C" void cuda_bias_add(float *out, const float *b, int M, int N)
{
    bias_add_kernel<<<kernel_blocks((size_t)M * N, 256), 256>>>(out, b, M, N);
    KERNEL_CHECK("bias_add_kernel");
}
