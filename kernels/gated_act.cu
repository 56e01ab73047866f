// gated_act.cu — the gated MLP's activation (backend.h gated_act): out (M, F) = act(in[:, :F]) ·
// in[:, F:], in (M, 2F) the gate | up projections side by side (SwiGLU: act = ACT_SILU). act(g) in
// float (act.cuh), rounded, then one float multiply (__fmul_rn): torch's order, as backend_cpu.c
// (whose act is in double, rounded to float: within 1e-6 relative). Elements one per thread in a
// grid-stride loop (F need not be a multiple of anything); float32 or bfloat16 on either side
// (--precision bf16: the MLP's hidden layer in bf16, rounded once).
#include "kernels.h"
#include "kernel_util.cuh"
#include "act.cuh"

template <int ACT, typename TI, typename TO>
__global__ static void gated_act_kernel(TO *out, const TI *in, int M, int F)
{
    const size_t n = (size_t)M * F;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
        const size_t m = e / F, i = e % F;
        const TI *g = in + m * 2 * F + i;
        store_as(out + e, __fmul_rn(act_f(as_float(*g), ACT), as_float(g[F])));
    }
}

template <typename TI, typename TO>
static void launch(TO *out, const TI *in, int M, int F, int act)
{
    const size_t n = (size_t)M * F;
    const unsigned blocks = kernel_blocks(n, 256);
    switch (act) {
    case ACT_GELU: gated_act_kernel<ACT_GELU><<<blocks, 256>>>(out, in, M, F); break;
    case ACT_GELU_TANH: gated_act_kernel<ACT_GELU_TANH><<<blocks, 256>>>(out, in, M, F); break;
    case ACT_RELU: gated_act_kernel<ACT_RELU><<<blocks, 256>>>(out, in, M, F); break;
    case ACT_SILU: gated_act_kernel<ACT_SILU><<<blocks, 256>>>(out, in, M, F); break;
    case ACT_QUICK_GELU: gated_act_kernel<ACT_QUICK_GELU><<<blocks, 256>>>(out, in, M, F); break;
    default: check_fail(__FILE__, __LINE__, "cuda_gated_act", "unknown activation");
    }
    KERNEL_CHECK("gated_act_kernel");
}

extern "C" void cuda_gated_act(void *out, int out_bf16, const void *in, int in_bf16, int M, int F, int act)
{
    if ((size_t)M * F == 0) return;
    typedef __nv_bfloat16 bf;
    if (in_bf16 && out_bf16) launch((bf *)out, (const bf *)in, M, F, act);
    else if (in_bf16) launch((float *)out, (const bf *)in, M, F, act);
    else if (out_bf16) launch((bf *)out, (const float *)in, M, F, act);
    else launch((float *)out, (const float *)in, M, F, act);
}
