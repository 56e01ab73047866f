// patch.cu — the vision stem's im2col on the device: B images (B, ch, H, W) cut into the patch
// convolution's rows (B·gh·gw, ch·P·P), as patch.c's patch_rows (the CPU backend's op and the
// reference), so that the pixels cross the bus once as they are: float32, or 8-bit values that
// the processor's table (rescale and normalize per channel value) makes floats here.
#include "kernels.h"
#include "kernel_util.cuh"

// a pixel (or a run of four) as a float: float32 as it is, a byte through its channel's table t
__device__ static inline float px1(const float *s, const float *) { return *s; }
__device__ static inline float px1(const unsigned char *s, const float *t) { return t[*s]; }
__device__ static inline float4 px4(const float *s, const float *) { return *reinterpret_cast<const float4 *>(s); }
__device__ static inline float4 px4(const unsigned char *s, const float *t)
{
    const uchar4 u = *reinterpret_cast<const uchar4 *>(s);
    return make_float4(t[u.x], t[u.y], t[u.z], t[u.w]);
}

// one thread per run of V row elements (V = 4 when P and W are multiples of 4: a float4 or uchar4
// in, a float4 out); 8-bit pixels: the table in shared memory
template <class Px, int V>
__global__ static void patch_rows_kernel(float *rows, const Px *px, const float *lut, int ch, int H, int W, int P, int gh,
                                         int gw, size_t n)
{
    extern __shared__ float tab[];
    if (sizeof(Px) == 1) {
        for (int i = threadIdx.x; i < ch * 256; i += blockDim.x) tab[i] = lut[i];
        __syncthreads();
    }
    const int K = ch * P * P;
    for (size_t e = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) * V; e < n; e += (size_t)gridDim.x * blockDim.x * V) {
        const size_t r = e / K;
        const int k = (int)(e % K), c = k / (P * P), ky = (k / P) % P, kx = k % P;
        const int gx = (int)(r % gw), gy = (int)((r / gw) % gh);
        const size_t b = r / ((size_t)gw * gh);
        const Px *src = px + ((b * ch + c) * H + (size_t)gy * P + ky) * W + (size_t)gx * P + kx;
        const float *t = tab + c * 256;
        if (V == 4) *reinterpret_cast<float4 *>(rows + e) = px4(src, t);
        else rows[e] = px1(src, t);
    }
}

template <class Px>
static void patch_rows_launch(float *rows, const Px *px, const float *lut, int B, int ch, int H, int W, int P)
{
    const int gh = H / P, gw = W / P;
    const size_t n = (size_t)B * gh * gw * ch * P * P, smem = sizeof(Px) == 1 ? (size_t)ch * 256 * sizeof(float) : 0;
    if (P % 4 == 0 && W % 4 == 0) {
        patch_rows_kernel<Px, 4><<<kernel_blocks(n / 4, 256), 256, smem>>>(rows, px, lut, ch, H, W, P, gh, gw, n);
    } else {
        patch_rows_kernel<Px, 1><<<kernel_blocks(n, 256), 256, smem>>>(rows, px, lut, ch, H, W, P, gh, gw, n);
    }
    KERNEL_CHECK("patch_rows_kernel");
}

extern "C" void cuda_patch_rows(float *rows, const void *px, const float *lut, int B, int ch, int H, int W, int P)
{
    if (lut) patch_rows_launch(rows, (const unsigned char *)px, lut, B, ch, H, W, P);
    else patch_rows_launch(rows, (const float *)px, lut, B, ch, H, W, P);
}
