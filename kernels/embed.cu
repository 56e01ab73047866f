// embed.cu — token + position (+ token type) embedding gather: out[t,:] = wte[ids[t]] (+ wpe[pos[t]])
// (+ wtt[types[t]]) (no position table: the rotary families), one thread per output element, summed in the CPU backend's order so the
// result is bit-identical to it. ids/pos/types are trusted (validated by the caller).
#include "kernels.h"
#include "kernel_util.cuh"

#include <cuda_bf16.h>

__device__ static inline float table_value(const float *w, size_t i) { return w[i]; }
__device__ static inline float table_value(const __nv_bfloat16 *w, size_t i) { return __bfloat162float(w[i]); }

// TT: the token table's element type (float, or bf16 for a bf16 table: cuda_embed_bf16)
template <typename TT>
__global__ static void embed_kernel(float *out, const int32_t *ids, const int32_t *pos, const int32_t *types,
                                    const TT *wte, const float *wpe, const float *wtt, int T, int C)
{
    const size_t n = (size_t)T * C;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
        const int t = (int)(e / C), i = (int)(e % C);
        float v = table_value(wte, (size_t)ids[t] * C + i) + (wpe ? wpe[(size_t)pos[t] * C + i] : 0.0f);
        out[e] = v + (wtt ? wtt[(size_t)types[t] * C + i] : 0.0f);
    }
}

extern "C" void cuda_embed(float *out, const int32_t *ids, const int32_t *pos, const int32_t *types,
                           const float *wte, const float *wpe, const float *wtt, int T, int C)
{
    embed_kernel<<<kernel_blocks((size_t)T * C, 256), 256>>>(out, ids, pos, types, wte, wpe, wtt, T, C);
    KERNEL_CHECK("embed_kernel");
}

extern "C" void cuda_embed_bf16(float *out, const int32_t *ids, const int32_t *pos, const int32_t *types,
                                const void *wte, const float *wpe, const float *wtt, int T, int C)
{
    embed_kernel<<<kernel_blocks((size_t)T * C, 256), 256>>>(out, ids, pos, types, (const __nv_bfloat16 *)wte, wpe,
                                                             wtt, T, C);
    KERNEL_CHECK("embed_kernel");
}
