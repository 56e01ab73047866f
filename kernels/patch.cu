// patch.cu — the vision stem's im2col on the device: B images (B, ch, H, W) cut into the patch
// convolution's rows (B·gh·gw, ch·P·P), as patch.c's patch_rows (the CPU backend's op and the
// reference), so that the pixels cross the bus once as they are.
#include "kernels.h"
#include "kernel_util.cuh"

// one thread per run of four row elements (P a multiple of 4: a float4 on both sides), else per element
template <int V>
__global__ static void patch_rows_kernel(float *rows, const float *px, int ch, int H, int W, int P, int gh, int gw,
                                         size_t n)
{
    const int K = ch * P * P;
    for (size_t e = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) * V; e < n; e += (size_t)gridDim.x * blockDim.x * V) {
        const size_t r = e / K;
        const int k = (int)(e % K), c = k / (P * P), ky = (k / P) % P, kx = k % P;
        const int gx = (int)(r % gw), gy = (int)((r / gw) % gh);
        const size_t b = r / ((size_t)gw * gh);
        const float *src = px + ((b * ch + c) * H + (size_t)gy * P + ky) * W + (size_t)gx * P + kx;
        if (V == 4) *reinterpret_cast<float4 *>(rows + e) = *reinterpret_cast<const float4 *>(src);
        else rows[e] = *src;
    }
}

extern "C" void cuda_patch_rows(float *rows, const float *px, int B, int ch, int H, int W, int P)
{
    const int gh = H / P, gw = W / P;
    const size_t n = (size_t)B * gh * gw * ch * P * P;
    if (P % 4 == 0 && W % 4 == 0) {
        patch_rows_kernel<4><<<kernel_blocks(n / 4, 256), 256>>>(rows, px, ch, H, W, P, gh, gw, n);
    } else {
        patch_rows_kernel<1><<<kernel_blocks(n, 256), 256>>>(rows, px, ch, H, W, P, gh, gw, n);
    }
    KERNEL_CHECK("patch_rows_kernel");
}

// 8-bit pixels through the processor's table (rescale and normalize per channel value), the table
// in shared memory; one thread per run of four row elements (a uchar4 in, a float4 out) when P and
// W are multiples of 4
template <int V>
__global__ static void patch_rows_u8_kernel(float *rows, const unsigned char *px, const float *lut, int ch, int H, int W,
                                            int P, int gh, int gw, size_t n)
{
    extern __shared__ float tab[];
    for (int i = threadIdx.x; i < ch * 256; i += blockDim.x) tab[i] = lut[i];
    __syncthreads();
    const int K = ch * P * P;
    for (size_t e = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) * V; e < n; e += (size_t)gridDim.x * blockDim.x * V) {
        const size_t r = e / K;
        const int k = (int)(e % K), c = k / (P * P), ky = (k / P) % P, kx = k % P;
        const int gx = (int)(r % gw), gy = (int)((r / gw) % gh);
        const size_t b = r / ((size_t)gw * gh);
        const unsigned char *src = px + ((b * ch + c) * H + (size_t)gy * P + ky) * W + (size_t)gx * P + kx;
        const float *t = tab + c * 256;
        if (V == 4) {
            const uchar4 u = *reinterpret_cast<const uchar4 *>(src);
            *reinterpret_cast<float4 *>(rows + e) = make_float4(t[u.x], t[u.y], t[u.z], t[u.w]);
        } else {
            rows[e] = t[*src];
        }
    }
}

extern "C" void cuda_patch_rows_u8(float *rows, const unsigned char *px, const float *lut, int B, int ch, int H, int W,
                                   int P)
{
    const int gh = H / P, gw = W / P;
    const size_t n = (size_t)B * gh * gw * ch * P * P, smem = (size_t)ch * 256 * sizeof(float);
    if (P % 4 == 0 && W % 4 == 0) {
        patch_rows_u8_kernel<4><<<kernel_blocks(n / 4, 256), 256, smem>>>(rows, px, lut, ch, H, W, P, gh, gw, n);
    } else {
        patch_rows_u8_kernel<1><<<kernel_blocks(n, 256), 256, smem>>>(rows, px, lut, ch, H, W, P, gh, gw, n);
    }
    KERNEL_CHECK("patch_rows_u8_kernel");
}
