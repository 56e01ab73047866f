// permute.cu — head-major layout for the batched attention GEMMs (as llm.c's permute_kernel):
// q (B, T, NH·HS) → (B, NH, T, HS) and k, v (B, T, NKV·HS) → (B, NKV, T, HS) (grouped-query
// attention keeps its NKV kv heads: the GEMMs read each one for its NH/NKV query heads), and the
// way back for the attention output. One thread per element; pure copies (exact).
#include "kernels.h"
#include "kernel_util.cuh"
#include <stdint.h>

// e indexes the head-major (B, NH, T, HS) tensor; returns the matching (B, T, ·) offset, rows of ld
__device__ static inline size_t bthd_offset(size_t e, int T, int NH, int HS, int ld)
{
    const int d = (int)(e % HS);
    const int t = (int)(e / HS % T);
    const int h = (int)(e / ((size_t)HS * T) % NH);
    const size_t b = e / ((size_t)HS * T * NH);
    return (b * T + t) * (size_t)ld + (size_t)h * HS + d;
}

// split: q and k rows of 3·HS as split.cu lays out a GEMM's operands (q as activations
// [hi | lo | hi], k as weights [lo | hi | hi]) for QKᵀ as one 3xTF32 GEMM; v stays fp32.
// e runs over q's (B, NH, T, HS); k and v have NKV heads, so only e < B·NKV·T·HS also copies
// their element e.
__global__ static void permute_kernel(float *q, float *k, float *v, const float *in_q, const float *in_k,
                                      const float *in_v, int ld, int B, int T, int NH, int NKV, int HS, int split)
{
    const size_t n = (size_t)B * T * NH * HS, nkv = (size_t)B * T * NKV * HS;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
        const size_t src = bthd_offset(e, T, NH, HS, ld), kv = e < nkv ? bthd_offset(e, T, NKV, HS, ld) : 0;
        if (e < nkv) v[e] = in_v[kv];
        if (!split) {
            q[e] = in_q[src];
            if (e < nkv) k[e] = in_k[kv];
            continue;
        }
#if __CUDA_ARCH__ >= 800
        const size_t r = e / HS * 3 * HS, d = e % HS;
        const float xq = in_q[src], qh = tf32_rna(xq), ql = tf32_rna(xq - qh);
        q[r + d] = qh; q[r + HS + d] = ql; q[r + 2 * HS + d] = qh;
        if (e < nkv) {
            const float xk = in_k[kv], kh = tf32_rna(xk), kl = tf32_rna(xk - kh);
            k[r + d] = kl; k[r + HS + d] = kh; k[r + 2 * HS + d] = kh;
        }
#endif
    }
}

__global__ static void unpermute_kernel(float *out, const float *in, int B, int T, int NH, int HS)
{
    const size_t n = (size_t)B * T * NH * HS;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x)
        out[bthd_offset(e, T, NH, HS, NH * HS)] = in[e];
}

extern "C" void cuda_permute_qkv(float *q, float *k, float *v, const float *in_q, const float *in_k, const float *in_v,
                                 int ld, int B, int T, int NH, int NKV, int HS, int split)
{
    permute_kernel<<<kernel_blocks((size_t)B * T * NH * HS, 256), 256>>>(q, k, v, in_q, in_k, in_v, ld, B, T, NH, NKV, HS,
                                                                         split);
    KERNEL_CHECK("permute_kernel");
}

extern "C" void cuda_unpermute(float *out, const float *in, int B, int T, int NH, int HS)
{
    unpermute_kernel<<<kernel_blocks((size_t)B * T * NH * HS, 256), 256>>>(out, in, B, T, NH, HS);
    KERNEL_CHECK("unpermute_kernel");
}
