// cnn.cu — the CNN ops of backend.h (ResNet, cnn.c) on NHWC activations: im2col rows for a
// convolution's GEMM, the embedder's 3 × 3 / 2 max pool, the residual add + ReLU. Each matches
// backend_cpu.c's op exactly (copies, comparisons and one float add); and the per-channel
// statistics of a stage's output, so that only they cross the bus.
#include "kernels.h"
#include "kernel_util.cuh"

static inline int conv_out(int n, int k, int stride, int pad) { return (n + 2 * pad - k) / stride + 1; }

// one thread per row element: row r = (b, oy, ox), column (ci, ky, kx); writes coalesced
__global__ static void conv_rows_kernel(float *rows, const float *x, int H, int W, int C, int k, int stride, int pad,
                                        int OH, int OW, size_t n)
{
    const int K = C * k * k;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
        const size_t r = e / K;
        const int col = (int)(e % K), ci = col / (k * k), ky = (col / k) % k, kx = col % k;
        const int ox = (int)(r % OW), oy = (int)((r / OW) % OH);
        const size_t b = r / ((size_t)OW * OH);
        const int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
        rows[e] = iy >= 0 && iy < H && ix >= 0 && ix < W ? x[((b * H + iy) * W + ix) * C + ci] : 0.0f;
    }
}

extern "C" void cuda_conv_rows(float *rows, const float *x, int B, int H, int W, int C, int k, int stride, int pad)
{
    const int OH = conv_out(H, k, stride, pad), OW = conv_out(W, k, stride, pad);
    const size_t n = (size_t)B * OH * OW * C * k * k;
    conv_rows_kernel<<<kernel_blocks(n, 256), 256>>>(rows, x, H, W, C, k, stride, pad, OH, OW, n);
    KERNEL_CHECK("conv_rows_kernel");
}

__global__ static void maxpool_kernel(float *y, const float *x, int H, int W, int C, int OH, int OW, size_t n)
{
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
        const int c = (int)(e % C);
        const size_t p = e / C;
        const int ox = (int)(p % OW), oy = (int)((p / OW) % OH);
        const size_t b = p / ((size_t)OW * OH);
        float m = -3.402823466e38f;                  // -FLT_MAX, as the CPU's
        for (int iy = 2 * oy - 1; iy <= 2 * oy + 1; iy++)
            for (int ix = 2 * ox - 1; ix <= 2 * ox + 1; ix++) {
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                const float v = x[((b * H + iy) * W + ix) * C + c];
                m = v > m ? v : m;
            }
        y[e] = m;
    }
}

extern "C" void cuda_maxpool(float *y, const float *x, int B, int H, int W, int C)
{
    const int OH = conv_out(H, 3, 2, 1), OW = conv_out(W, 3, 2, 1);
    const size_t n = (size_t)B * OH * OW * C;
    maxpool_kernel<<<kernel_blocks(n, 256), 256>>>(y, x, H, W, C, OH, OW, n);
    KERNEL_CHECK("maxpool_kernel");
}

__global__ static void add_relu_kernel(float *y, const float *a, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float v = y[i] + a[i];
        y[i] = v > 0.0f ? v : 0.0f;
    }
}

extern "C" void cuda_add_relu(float *y, const float *a, size_t n)
{
    add_relu_kernel<<<kernel_blocks(n, 256), 256>>>(y, a, n);
    KERNEL_CHECK("add_relu_kernel");
}

// one thread per (b, c): the positions of its channel, adjacent threads on adjacent channels (the
// reads coalesce); the entropy in one pass as ln(pos) − Σ x ln x / pos over the positive x (the
// CPU's two-pass −Σ p ln p; equal in exact arithmetic, ~1e-15 apart in double)
__global__ static void channel_stats_kernel(const float *x, int B, int hw, int C, float *mean, float *active, float *entropy)
{
    const size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (t >= (size_t)B * C) return;
    const int c = (int)(t % C);
    const size_t b = t / C;
    const float *v = x + b * hw * C + c;
    double sum = 0, pos = 0, xlx = 0;
    int n_act = 0;
    for (int i = 0; i < hw; i++) {
        const float e = v[(size_t)i * C];
        sum += e;
        if (e > 0) { pos += e; xlx += (double)e * log((double)e); n_act++; }
    }
    mean[t] = (float)(sum / hw);
    active[t] = (float)n_act / hw;
    entropy[t] = pos > 0 ? (float)(log(pos) - xlx / pos) : __int_as_float(0x7fc00000);   // NaN: no distribution
}

extern "C" void cuda_channel_stats(const float *x, int B, int hw, int C, float *mean, float *active, float *entropy)
{
    const size_t n = (size_t)B * C;
    channel_stats_kernel<<<(unsigned)((n + 127) / 128), 128>>>(x, B, hw, C, mean, active, entropy);
    KERNEL_CHECK("channel_stats_kernel");
}
