/* rollout_gemm_bench.c — the attention rollout's product R <- Â·R in isolation: B strided-batched
 * T x T float GEMMs (cublasGemmStridedBatchedEx, as backend_cuda.c's rollout step), in fp32
 * (pedantic) and on TF32 tensor cores, with the rows' leading dimension T itself and T rounded up
 * to 4, 8 and 32 floats (16-byte and wider alignment of every row). ViT-B/16 at 224: T = 197.
 * Built here, run on the GPU host:
 *   nvcc -O2 -x cu tests/bench/rollout_gemm_bench.c -lcublas -o rollout_gemm_bench && ./rollout_gemm_bench [B T] */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

#define CK(x) do { int e_ = (int)(x); if (e_) { fprintf(stderr, "%s:%d: %s failed (%d)\n", __FILE__, __LINE__, #x, e_); exit(1); } } while (0)

int main(int argc, char **argv)
{
    const int B = argc > 2 ? atoi(argv[1]) : 128, T = argc > 2 ? atoi(argv[2]) : 197;
    const int lds[] = {T, (T + 3) / 4 * 4, (T + 7) / 8 * 8, (T + 31) / 32 * 32};
    const size_t cap = (size_t)B * lds[3] * lds[3];
    float *a, *r, *o;
    CK(cudaMalloc((void **)&a, cap * 4));
    CK(cudaMalloc((void **)&r, cap * 4));
    CK(cudaMalloc((void **)&o, cap * 4));
    float *h = (float *)malloc(cap * 4);
    for (size_t i = 0; i < cap; i++) h[i] = (float)rand() / RAND_MAX / T;
    CK(cudaMemcpy(a, h, cap * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(r, h, cap * 4, cudaMemcpyHostToDevice));
    cublasHandle_t hd;
    CK(cublasCreate(&hd));
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    const float one = 1.0f, zero = 0.0f;
    const double flop = 2.0 * B * (double)T * T * T;
    for (int m = 0; m < 2; m++) {
        const cublasComputeType_t ct = m ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F_PEDANTIC;
        for (int li = 0; li < 4; li++) {
            const int ld = lds[li];
            const long long st = (long long)ld * ld;
            for (int rep = 0; rep < 2; rep++) {      /* the first round warms up */
                CK(cudaEventRecord(e0));
                for (int it = 0; it < 50; it++)
                    CK(cublasGemmStridedBatchedEx(hd, CUBLAS_OP_N, CUBLAS_OP_N, T, T, T, &one, r, CUDA_R_32F, ld, st, a,
                                                  CUDA_R_32F, ld, st, &zero, o, CUDA_R_32F, ld, st, B, ct, CUBLAS_GEMM_DEFAULT));
                CK(cudaEventRecord(e1));
                CK(cudaEventSynchronize(e1));
                float ms = 0;
                cudaEventElapsedTime(&ms, e0, e1);
                if (rep) printf("%-5s B=%d T=%d ld=%3d: %7.1f us a product, %6.1f TFLOP/s\n", m ? "tf32" : "fp32", B, T, ld,
                                ms * 1e3 / 50, flop / (ms * 1e-3 / 50) / 1e12);
            }
        }
    }
    return 0;
}
