// embed.cu — token + position (+ token type) embedding gather: out[t,:] = wte[ids[t]] (+ wpe[pos[t]])
// (+ wtt[types[t]]) (no position table: the rotary families), summed in the CPU backend's order so the
// result is bit-identical to it: a block per row, four elements a thread (16-byte loads) where C is
// a multiple of 4 and the tables are aligned, else one thread per element. ids/pos/types are
// trusted (validated by the caller).
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

// a block per row t (a grid stride over rows), 4 consecutive elements a thread: the same adds as
// embed_kernel's (a missing table adds 0.0f, as there)
template <typename TT>
__global__ static void embed_rows_kernel(float *out, const int32_t *ids, const int32_t *pos, const int32_t *types,
                                         const TT *wte, const float *wpe, const float *wtt, int T, int C)
{
    for (int t = blockIdx.x; t < T; t += gridDim.x) {
        const TT *a = wte + (size_t)ids[t] * C;
        const float *p = wpe ? wpe + (size_t)pos[t] * C : NULL, *y = wtt ? wtt + (size_t)types[t] * C : NULL;
        for (int i = 4 * threadIdx.x; i < C; i += 4 * blockDim.x) {
            const float4 v = load4(a + i), q = p ? load4(p + i) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            const float4 u = y ? load4(y + i) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            store4(out + (size_t)t * C + i, make_float4(__fadd_rn(__fadd_rn(v.x, q.x), u.x), __fadd_rn(__fadd_rn(v.y, q.y), u.y),
                                                        __fadd_rn(__fadd_rn(v.z, q.z), u.z), __fadd_rn(__fadd_rn(v.w, q.w), u.w)));
        }
    }
}

template <typename TT>
static void embed_launch(float *out, const int32_t *ids, const int32_t *pos, const int32_t *types, const TT *wte,
                         const float *wpe, const float *wtt, int T, int C)
{
    if (T <= 0 || C <= 0) return;
    const size_t ta = sizeof(TT) == 4 ? 16 : 8;   // (a row of bf16 by 8-byte loads)
    if (C % 4 == 0 && (size_t)out % 16 == 0 && (size_t)wte % ta == 0 && (size_t)wpe % 16 == 0 && (size_t)wtt % 16 == 0) {
        const int threads = C / 4 >= 256 ? 256 : (C / 4 + 31) / 32 * 32;
        embed_rows_kernel<<<T < 65535 * 16 ? T : 65535 * 16, threads>>>(out, ids, pos, types, wte, wpe, wtt, T, C);
    } else {
        embed_kernel<<<kernel_blocks((size_t)T * C, 256), 256>>>(out, ids, pos, types, wte, wpe, wtt, T, C);
    }
    KERNEL_CHECK("embed_kernel");
}

extern "C" void cuda_embed(float *out, const int32_t *ids, const int32_t *pos, const int32_t *types,
                           const float *wte, const float *wpe, const float *wtt, int T, int C)
{
    embed_launch(out, ids, pos, types, wte, wpe, wtt, T, C);
}

extern "C" void cuda_embed_bf16(float *out, const int32_t *ids, const int32_t *pos, const int32_t *types,
                                const void *wte, const float *wpe, const float *wtt, int T, int C)
{
    embed_launch(out, ids, pos, types, (const __nv_bfloat16 *)wte, wpe, wtt, T, C);
}
