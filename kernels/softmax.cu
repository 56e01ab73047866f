// softmax.cu — masked softmax in place over the rows of att (B, NH, T, T), one warp per row.
// HF semantics as backend_cpu.c: a masked score (key padding, j > i when causal, j <= i − sw
// under a sliding window sw > 0) becomes
// −FLT_MAX, whose exp is exactly 0 — unless the whole row is masked, where every score equals the
// max and the row comes out uniform (1/T). exp in float (expf, not __expf), Σ in double,
// row ·= (float)(1/Σ): the same operations as the CPU, so the backends agree to an ulp on equal
// scores.
#include "kernels.h"
#include "kernel_util.cuh"
#include <float.h>

__global__ static void softmax_kernel(float *att, const float *keymask, int B, int NH, int T, int causal, int sw)
{
    const size_t rows = (size_t)B * NH * T;
    const size_t r = blockIdx.x * (size_t)(blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (r >= rows) return;
    const int i = (int)(r % T);
    const float *mask = keymask + r / ((size_t)NH * T) * T;
    float *row = att + r * T;
    float mx = -FLT_MAX;
    for (int j = lane; j < T; j += 32) {
        if (mask[j] == 0.0f || (causal && j > i) || (sw > 0 && j <= i - sw)) row[j] = -FLT_MAX;
        mx = fmaxf(mx, row[j]);
    }
    mx = warp_max(mx);
    double sum = 0;
    for (int j = lane; j < T; j += 32) {
        const float e = row[j] == -FLT_MAX && mx != -FLT_MAX ? 0.0f : expf(row[j] - mx);
        row[j] = e;
        sum += e;
    }
    const float inv = (float)(1.0 / warp_sum(sum));
    for (int j = lane; j < T; j += 32) row[j] *= inv;
}

extern "C" void cuda_softmax(float *att, const float *keymask, int B, int NH, int T, int causal, int sw)
{
    const int rows_per_block = 8;
    const size_t rows = (size_t)B * NH * T;
    softmax_kernel<<<(unsigned)((rows + rows_per_block - 1) / rows_per_block), 32 * rows_per_block>>>(att, keymask, B, NH,
                                                                                                       T, causal, sw);
    KERNEL_CHECK("softmax_kernel");
}
