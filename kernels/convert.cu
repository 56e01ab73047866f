// convert.cu — float32 → bfloat16 (round to nearest even), for the bf16 GEMMs of
// `--precision bf16`: activations before each linear layer, weights once when first used; and a
// byte-for-byte comparison of two device buffers (the GEMM algorithm choice: backend_cuda_linear.c).
#include "kernels.h"
#include "kernel_util.cuh"
#include <cuda_bf16.h>

__global__ static void f32_to_bf16_kernel(__nv_bfloat16 *out, const float *in, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = __float2bfloat16_rn(in[i]);
}

extern "C" void cuda_f32_to_bf16(void *out, const float *in, size_t n)
{
    f32_to_bf16_kernel<<<kernel_blocks(n, 256), 256>>>((__nv_bfloat16 *)out, in, n);
    KERNEL_CHECK("f32_to_bf16_kernel");
}

// *diff += the 4-byte words in which a and b differ (n4 words; *diff zeroed by the caller)
__global__ static void words_differ_kernel(const unsigned *a, const unsigned *b, size_t n4, unsigned long long *diff)
{
    unsigned long long d = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n4; i += (size_t)gridDim.x * blockDim.x)
        d += a[i] != b[i];
    for (int o = 16; o; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
    if (threadIdx.x % 32 == 0 && d) atomicAdd(diff, d);
}

extern "C" unsigned long long cuda_bytes_differ(const void *a, const void *b, size_t bytes, unsigned long long *dscratch)
{
    unsigned long long diff = 0;
    if (cudaMemsetAsync(dscratch, 0, sizeof diff, 0) != cudaSuccess) return ~0ull;
    const size_t n4 = bytes / 4;
    if (n4) words_differ_kernel<<<kernel_blocks(n4, 256), 256>>>((const unsigned *)a, (const unsigned *)b, n4, dscratch);
    KERNEL_CHECK("words_differ_kernel");
    if (cudaMemcpy(&diff, dscratch, sizeof diff, cudaMemcpyDeviceToHost) != cudaSuccess) return ~0ull;
    if (bytes % 4) {                                 // (a tail of 1-3 bytes: compared on the host)
        unsigned char ta[4], tb[4];
        if (cudaMemcpy(ta, (const char *)a + 4 * n4, bytes % 4, cudaMemcpyDeviceToHost) != cudaSuccess ||
            cudaMemcpy(tb, (const char *)b + 4 * n4, bytes % 4, cudaMemcpyDeviceToHost) != cudaSuccess)
            return ~0ull;
        for (size_t i = 0; i < bytes % 4; i++) diff += ta[i] != tb[i];
    }
    return diff;
}
