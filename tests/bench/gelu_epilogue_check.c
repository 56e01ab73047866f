/* gelu_epilogue_check.c — which GELU cuBLASLt's CUBLASLT_EPILOGUE_GELU_BIAS computes: out (M, N) =
 * GELU(in (M, K) · W (N, K)ᵀ + b) in fp32 (pedantic compute), against the same GEMM with the bias
 * epilogue alone followed on the host by the erf GELU (BERT's, ViT's: "gelu") and by the tanh
 * approximation ("gelu_new", GPT-2's), in double. The closer one is the epilogue's (BENCHMARKS.md
 * run 30: the tanh approximation). Built here, run on the GPU host:
 *   nvcc -O2 -x cu tests/bench/gelu_epilogue_check.c -lcublasLt -lcublas -o gelu_epilogue_check && ./gelu_epilogue_check */
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define CK(x) do { int e_ = (int)(x); if (e_) { fprintf(stderr, "%s:%d: %s failed (%d)\n", __FILE__, __LINE__, #x, e_); exit(1); } } while (0)

/* out = epilogue(in · Wᵀ + b), row-major (M, N), as backend_cuda_linear.c lays it out for cuBLASLt */
static void matmul(cublasLtHandle_t lt, cublasLtEpilogue_t ep, cudaDataType_t dt, cublasComputeType_t ct, const void *W,
                   const void *in, const void *b, void *out, int M, int K, int N, void *ws, size_t wsb)
{
    cublasLtMatmulDesc_t op;
    CK(cublasLtMatmulDescCreate(&op, ct, CUDA_R_32F));
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    CK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    CK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep));
    CK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &b, sizeof b));
    cudaDataType_t bdt = CUDA_R_32F;
    CK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bdt, sizeof bdt));
    cublasLtMatrixLayout_t la, lb, lc;
    CK(cublasLtMatrixLayoutCreate(&la, dt, K, N, K));
    CK(cublasLtMatrixLayoutCreate(&lb, dt, K, M, K));
    CK(cublasLtMatrixLayoutCreate(&lc, dt, N, M, N));
    cublasLtMatmulPreference_t pref;
    CK(cublasLtMatmulPreferenceCreate(&pref));
    CK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof wsb));
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    CK(cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, 1, &res, &found));
    if (!found) { fprintf(stderr, "no cuBLASLt algorithm for epilogue %d\n", (int)ep); exit(1); }
    const float one = 1, zero = 0;
    CK(cublasLtMatmul(lt, op, &one, W, la, in, lb, &zero, out, lc, out, lc, &res.algo, ws, wsb, 0));
    CK(cudaDeviceSynchronize());
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(la); cublasLtMatrixLayoutDestroy(lb); cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatmulDescDestroy(op);
}

int main(void)
{
    cublasLtHandle_t lt;
    CK(cublasLtCreate(&lt));
    const size_t wsb = (size_t)64 << 20;
    void *ws;
    CK(cudaMalloc(&ws, wsb));
    /* fp32, inputs spread so that x covers about [-7, 8] */
    const int M = 256, K = 768, N = 3072;
    float *hi = (float *)malloc((size_t)M * K * 4), *hw = (float *)malloc((size_t)N * K * 4), *hb = (float *)malloc(N * 4);
    srand(7);
    for (size_t i = 0; i < (size_t)M * K; i++) hi[i] = ((float)rand() / RAND_MAX - 0.5f) * 2.0f;
    for (size_t i = 0; i < (size_t)N * K; i++) hw[i] = ((float)rand() / RAND_MAX - 0.5f) * 0.35f;
    for (int i = 0; i < N; i++) hb[i] = ((float)rand() / RAND_MAX - 0.5f) * 2.0f;
    float *in, *W, *b, *o1, *o2;
    CK(cudaMalloc((void **)&in, (size_t)M * K * 4));
    CK(cudaMalloc((void **)&W, (size_t)N * K * 4));
    CK(cudaMalloc((void **)&b, N * 4));
    CK(cudaMalloc((void **)&o1, (size_t)M * N * 4));
    CK(cudaMalloc((void **)&o2, (size_t)M * N * 4));
    CK(cudaMemcpy(in, hi, (size_t)M * K * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(W, hw, (size_t)N * K * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(b, hb, N * 4, cudaMemcpyHostToDevice));
    matmul(lt, CUBLASLT_EPILOGUE_BIAS, CUDA_R_32F, CUBLAS_COMPUTE_32F_PEDANTIC, W, in, b, o1, M, K, N, ws, wsb);
    matmul(lt, CUBLASLT_EPILOGUE_GELU_BIAS, CUDA_R_32F, CUBLAS_COMPUTE_32F_PEDANTIC, W, in, b, o2, M, K, N, ws, wsb);
    float *x = (float *)malloc((size_t)M * N * 4), *g = (float *)malloc((size_t)M * N * 4);
    CK(cudaMemcpy(x, o1, (size_t)M * N * 4, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(g, o2, (size_t)M * N * 4, cudaMemcpyDeviceToHost));
    double derf = 0, dtanh = 0, lo = 1e30, hi_ = -1e30;
    for (size_t i = 0; i < (size_t)M * N; i++) {
        const double v = x[i];
        const double ge = 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
        const double gt = 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
        if (fabs(g[i] - ge) > derf) derf = fabs(g[i] - ge);
        if (fabs(g[i] - gt) > dtanh) dtanh = fabs(g[i] - gt);
        if (v < lo) lo = v;
        if (v > hi_) hi_ = v;
    }
    printf("GELU_BIAS epilogue (fp32), x in [%.2f, %.2f]: max abs from the erf GELU %.3g, from the tanh approximation %.3g\n",
           lo, hi_, derf, dtanh);
    return 0;
}
