// split.cu — fp32 operands as sums of two TF32 numbers, for the "3xTF32" GEMMs of
// `--precision fp32` (as CUTLASS's OpMultiplyAddFastF32): x = hi + lo with hi = tf32(x) and
// lo = tf32(x − hi), so a·b ≈ a_hi·b_hi + a_hi·b_lo + a_lo·b_hi with only the lo·lo term
// (~2⁻²² relative) dropped. Laid out along K so that one TF32 GEMM with K' = 3K sums the three
// products: activations as [hi | lo | hi], weights as [lo | hi | hi] — the two small cross terms
// first, while the accumulator is still small: the tensor cores' fp32 accumulation truncates
// (measured: 3x the error of SGEMM with the big term first), so the big products come last.
// Both halves are rounded here (cvt.rna): the tensor cores receive exact TF32 values.
#include "kernels.h"
#include "kernel_util.cuh"
#include <stdint.h>

// out (M, 3K): row m = [hi | lo | hi] of in[m] (activations) or [lo | hi | hi] (weights)
__global__ static void split_kernel(float *out, const float *in, int M, int K, int weight)
{
    const size_t n = (size_t)M * K;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
        const size_t m = e / K, k = e % K;
        const float x = in[e];
#if __CUDA_ARCH__ >= 800
        const float hi = tf32_rna(x), lo = tf32_rna(x - hi);
#else
        const float hi = x, lo = 0.0f;   // never launched below sm_80 (backend_cuda.c checks)
#endif
        float *row = out + m * 3 * (size_t)K;
        row[k] = weight ? lo : hi;
        row[K + k] = weight ? hi : lo;
        row[2 * (size_t)K + k] = hi;
    }
}

extern "C" void cuda_split_tf32(float *out, const float *in, int M, int K, int weight)
{
    split_kernel<<<kernel_blocks((size_t)M * K, 256), 256>>>(out, in, M, K, weight);
    KERNEL_CHECK("split_kernel");
}
