// activation.cu — element-wise activation in place (config.h act_kind): exact erf GELU, tanh GELU
// (gelu_new / gelu_pytorch_tanh), ReLU, SiLU (act.cuh). In float, as PyTorch evaluates them in fp32 (erff and
// tanhf are within 2 ulp): within 1e-6 relative of the CPU backend's double evaluation, and a
// fifth of the double version's time (it was 4% of a bert-base forward, measured with ncu). On
// bf16 (--precision bf16) the erf GELU is gelu_bf16_f below: relative error < 4e-6 before the bf16
// rounding, also in the negative tail.
#include "kernels.h"
#include "kernel_util.cuh"
#include <cuda_bf16.h>
#include "act.cuh"

// GELU for bf16 results: x·Φ(x) with Φ from erfc by Numerical Recipes' erfcc (Chebyshev fit,
// relative error < 1.2e-7 for every z ≥ 0; Press et al., 2nd ed., §6.2), one reciprocal and one
// exp2, no branch: relative error ≤ 4e-6 with the approximate MUFU ops (the exp2 argument reaches
// −130), far below the bf16 rounding that follows (2^-8), also in the far negative tail where
// 1 + erf cancels. erff (33 instructions per element, measured by ncu) made the bf16 kernel
// instruction-bound at twice its memory time.
__device__ static inline float gelu_bf16_f(float v)
{
    const float z = fabsf(v) * 0.70710678118654752440f;
    float t;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(t) : "f"(fmaf(0.5f, z, 1.0f)));
    float r = fmaf(t, 0.17087277f, -0.82215223f);
    r = fmaf(t, r, 1.48851587f);
    r = fmaf(t, r, -1.13520398f);
    r = fmaf(t, r, 0.27886807f);
    r = fmaf(t, r, -0.18628806f);
    r = fmaf(t, r, 0.09678418f);
    r = fmaf(t, r, 0.37409196f);
    r = fmaf(t, r, 1.00002368f);
    r = fmaf(t, r, -1.26551223f);
    float e;                                        // exp(r − z²) = 2^((r − z²)·log2 e)
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(e) : "f"(fmaf(-z, z, r) * 1.4426950408889634f));
    const float half_erfc = 0.5f * t * e;           // Φ(−|v|)
    return v * (v < 0.0f ? half_erfc : 1.0f - half_erfc);
}

__global__ static void activation_kernel(float *x, size_t n, int act)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = act_f(x[i], act);
}
// bf16 (the MLP's hidden layer under --precision bf16): in float (GELU: gelu_bf16_f), rounded once; 16 per thread
// (16-byte accesses: 2.3x the pairs' bandwidth), the n % 8 tail one by one
// (ACT a template argument: with a run-time act the compiler evaluated erff beside gelu_bf16_f
// and selected, measured 26 instructions per element)
template <int ACT> __device__ static inline float act_bf16_f(float v)
{
    return ACT == ACT_GELU ? gelu_bf16_f(v) : act_f(v, ACT);
}
template <int ACT> __global__ static void activation_bf16_kernel(__nv_bfloat16 *x, size_t n)
{
    const size_t n8 = n / 8, stride = (size_t)gridDim.x * blockDim.x;
    uint4 *x8 = reinterpret_cast<uint4 *>(x);
    // two 16-byte loads in flight per thread before any math
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n8; i += 2 * stride) {
        const bool two = i + stride < n8;
        uint4 u[2] = {x8[i], two ? x8[i + stride] : make_uint4(0, 0, 0, 0)};
#pragma unroll
        for (int h = 0; h < 2; h++) {
            __nv_bfloat162 *p = reinterpret_cast<__nv_bfloat162 *>(&u[h]);
#pragma unroll
            for (int k = 0; k < 4; k++) {
                const float2 v = __bfloat1622float2(p[k]);
                p[k] = __floats2bfloat162_rn(act_bf16_f<ACT>(v.x), act_bf16_f<ACT>(v.y));
            }
        }
        x8[i] = u[0];
        if (two) x8[i + stride] = u[1];
    }
    for (size_t i = 8 * n8 + blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += stride)
        x[i] = __float2bfloat16_rn(act_bf16_f<ACT>(__bfloat162float(x[i])));
}

extern "C" void cuda_activation(float *x, size_t n, int act)
{
    activation_kernel<<<kernel_blocks(n, 256), 256>>>(x, n, act);
    KERNEL_CHECK("activation_kernel");
}
extern "C" void cuda_activation_bf16(void *x, size_t n, int act)
{
    if ((size_t)x % 16) check_fail(__FILE__, __LINE__, "cuda_activation_bf16", "x must be 16-byte aligned");
    const unsigned blocks = kernel_blocks(n / 16 + 1, 256);
    __nv_bfloat16 *xb = (__nv_bfloat16 *)x;
    switch (act) {
    case ACT_GELU: activation_bf16_kernel<ACT_GELU><<<blocks, 256>>>(xb, n); break;
    case ACT_GELU_TANH: activation_bf16_kernel<ACT_GELU_TANH><<<blocks, 256>>>(xb, n); break;
    case ACT_RELU: activation_bf16_kernel<ACT_RELU><<<blocks, 256>>>(xb, n); break;
    case ACT_SILU: activation_bf16_kernel<ACT_SILU><<<blocks, 256>>>(xb, n); break;
    case ACT_QUICK_GELU: activation_bf16_kernel<ACT_QUICK_GELU><<<blocks, 256>>>(xb, n); break;
    default: check_fail(__FILE__, __LINE__, "cuda_activation_bf16", "unknown activation");
    }
    KERNEL_CHECK("activation_bf16_kernel");
}
