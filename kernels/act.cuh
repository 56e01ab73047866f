// act.cuh — the element-wise activations in float (config.h act_kind), shared by activation.cu and
// gated_act.cu: exact erf GELU, tanh GELU (gelu_new / gelu_pytorch_tanh), ReLU, SiLU, quick GELU (CLIP). As PyTorch
// evaluates them in fp32 (erff, tanhf, expf within 2 ulp): within 1e-6 relative of the CPU
// backend's double evaluation.
#ifndef ATTNSCOPE_ACT_CUH
#define ATTNSCOPE_ACT_CUH
extern "C" {
#include "config.h"    /* act_kind */
}

__device__ static inline float act_f(float v, int act)
{
    switch (act) {
    case ACT_GELU: return 0.5f * v * (1.0f + erff(v * 0.70710678118654752440f));
    case ACT_GELU_TANH: return 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    case ACT_RELU: return v > 0.0f ? v : 0.0f;
    case ACT_SILU: return v / (1.0f + expf(-v));     // torch's silu: x / (1 + exp(-x)); -inf -> -0, +inf -> inf
    case ACT_QUICK_GELU: return v / (1.0f + expf(-1.702f * v));   // CLIP's x·sigmoid(1.702 x)
    }
    return v;
}
#endif
