// permute.cu — head-major layout for the batched attention GEMMs (as llm.c's permute_kernel):
// q, k, v (B, T, NH·HS) → (B, NH, T, HS), and the way back for the attention output. One thread
// per element; pure copies (exact).
#include "kernels.h"
#include "kernel_util.cuh"

// e indexes the head-major (B, NH, T, HS) tensor; returns the matching (B, T, ·) offset, rows of ld
__device__ static inline size_t bthd_offset(size_t e, int T, int NH, int HS, int ld)
{
    const int d = (int)(e % HS);
    const int t = (int)(e / HS % T);
    const int h = (int)(e / ((size_t)HS * T) % NH);
    const size_t b = e / ((size_t)HS * T * NH);
    return (b * T + t) * (size_t)ld + (size_t)h * HS + d;
}

__global__ static void permute_kernel(float *q, float *k, float *v, const float *in_q, const float *in_k,
                                      const float *in_v, int ld, int B, int T, int NH, int HS)
{
    const size_t n = (size_t)B * T * NH * HS;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
        const size_t src = bthd_offset(e, T, NH, HS, ld);
        q[e] = in_q[src];
        k[e] = in_k[src];
        v[e] = in_v[src];
    }
}

__global__ static void unpermute_kernel(float *out, const float *in, int B, int T, int NH, int HS)
{
    const size_t n = (size_t)B * T * NH * HS;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x)
        out[bthd_offset(e, T, NH, HS, NH * HS)] = in[e];
}

extern "C" void cuda_permute_qkv(float *q, float *k, float *v, const float *in_q, const float *in_k, const float *in_v,
                                 int ld, int B, int T, int NH, int HS)
{
    permute_kernel<<<kernel_blocks((size_t)B * T * NH * HS, 256), 256>>>(q, k, v, in_q, in_k, in_v, ld, B, T, NH, HS);
    KERNEL_CHECK("permute_kernel");
}

extern "C" void cuda_unpermute(float *out, const float *in, int B, int T, int NH, int HS)
{
    unpermute_kernel<<<kernel_blocks((size_t)B * T * NH * HS, 256), 256>>>(out, in, B, T, NH, HS);
    KERNEL_CHECK("unpermute_kernel");
}
