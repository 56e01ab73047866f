// rope.cu — rotary position embeddings in place, HF's rotate_half layout (backend.h rope): in each
// of the nh heads of HS columns of a row, the pair (i, i + HS/2) turns by θ = float(pos[t]·inv_freq[i]):
// (a, b) -> (a cos θ − b sin θ, b cos θ + a sin θ). Any RoPE scaling (linear, dynamic, llama3) is
// already in inv_freq (the model computes it, config.c). One thread per (row, i), looping over the
// heads (cos and sin once per pair index; consecutive threads take consecutive columns). θ is the
// float product as in torch and backend_cpu.c; cos and sin are evaluated in double and rounded to
// float as the CPU does, and the rotation is rounded in its order (__fmul_rn, no FMA contraction):
// the same floats as the CPU backend up to a rare last-ulp difference of cos/sin. bf16 rows
// (--precision bf16's q and k) are turned in float and rounded once.
#include "kernels.h"
#include "kernel_util.cuh"

template <typename T>
__global__ static void rope_kernel(T *x, int ld, const int32_t *pos, const float *inv_freq, int rows, int nh, int HS)
{
    const int half = HS / 2;
    const size_t n = (size_t)rows * half;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
        const int t = (int)(e / half), i = (int)(e % half);
        const float th = __fmul_rn((float)pos[t], inv_freq[i]);
        double sd, cd;
        sincos((double)th, &sd, &cd);
        const float c = (float)cd, s = (float)sd;
        T *row = x + (size_t)t * ld + i;
        for (int h = 0; h < nh; h++) {
            T *pa = row + (size_t)h * HS, *pb = pa + half;
            const float a = as_float(*pa), b = as_float(*pb);
            store_as(pa, __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s)));
            store_as(pb, __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s)));
        }
    }
}

extern "C" void cuda_rope(void *x, int bf16, int ld, const int32_t *pos, const float *inv_freq, int T, int nh, int HS)
{
    const size_t n = (size_t)T * (HS / 2);
    if (n == 0 || nh == 0) return;
    if (bf16) rope_kernel<<<kernel_blocks(n, 256), 256>>>((__nv_bfloat16 *)x, ld, pos, inv_freq, T, nh, HS);
    else rope_kernel<<<kernel_blocks(n, 256), 256>>>((float *)x, ld, pos, inv_freq, T, nh, HS);
    KERNEL_CHECK("rope_kernel");
}
