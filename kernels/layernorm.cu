// layernorm.cu — LayerNorm of (in + res) over rows of C, one warp per row (8 rows per block): the
// residual add fused in (one float add, written to out's row first, so that the reductions read
// it back from L1/L2 instead of two inputs). Two passes with double accumulation (mean, then
// Σ(x−mean)²) and the final scale/shift rounded in the CPU backend's order (__fmul_rn/__fadd_rn:
// no FMA contraction), so results match backend_cpu.c to about one float ulp. out may equal in:
// each lane rewrites only the elements it read.
#include "kernels.h"
#include "kernel_util.cuh"

__global__ static void layernorm_kernel(float *out, const float *in, const float *res, const float *w, const float *b,
                                        int M, int C, float eps)
{
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= M) return;
    const float *x = in + (size_t)row * C;
    float *y = out + (size_t)row * C;
    if (res) {
        const float *r = res + (size_t)row * C;
        for (int i = lane; i < C; i += 32) y[i] = __fadd_rn(x[i], r[i]);
        x = y;
    }
    double mean = 0, var = 0;
    for (int i = lane; i < C; i += 32) mean += x[i];
    mean = warp_sum(mean) / C;
    for (int i = lane; i < C; i += 32) var += (x[i] - mean) * (x[i] - mean);
    var = warp_sum(var) / C;
    const double rstd = 1.0 / sqrt(var + eps);
    for (int i = lane; i < C; i += 32) y[i] = __fadd_rn(__fmul_rn((float)((x[i] - mean) * rstd), w[i]), b[i]);
}

extern "C" void cuda_layernorm(float *out, const float *in, const float *res, const float *w, const float *b, int M, int C,
                               float eps)
{
    const int rows_per_block = 8;
    layernorm_kernel<<<(M + rows_per_block - 1) / rows_per_block, 32 * rows_per_block>>>(out, in, res, w, b, M, C, eps);
    KERNEL_CHECK("layernorm_kernel");
}
