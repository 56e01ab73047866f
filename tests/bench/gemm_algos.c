/* gemm_algos.c — what choosing among cuBLASLt's algorithms could give the linear layers of
 * bert-base and ViT-B/16 under --precision bf16: for each GEMM of a layer (as
 * backend_cuda_linear.c lays it out: out (M, N) = epilogue(in (M, K) · W (N, K)ᵀ + b), bf16 in, out
 * and bias, fp32 compute), the time of cuBLASLt's first heuristic (what attnscope and PyTorch run)
 * and of each further one it offers, with its split-K count (an algorithm that splits K sums in
 * another order: results may differ in the last bits) and whether its output equals the first's bit
 * for bit (random bf16 operands and bias). Built here, run on the GPU host:
 *   nvcc -O2 -x cu tests/bench/gemm_algos.c -lcublasLt -o gemm_algos && ./gemm_algos [M ...] */
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CK(x) do { int e_ = (int)(x); if (e_) { fprintf(stderr, "%s:%d: %s failed (%d)\n", __FILE__, __LINE__, #x, e_); exit(1); } } while (0)
#define NALGO 16
#define WS ((size_t)64 << 20)   /* backend_cuda_int.h LT_WORKSPACE */

static float time_algo(cublasLtHandle_t lt, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t la, cublasLtMatrixLayout_t lb,
                       cublasLtMatrixLayout_t lc, const cublasLtMatmulAlgo_t *algo, const void *W, const void *in, void *out,
                       void *ws)
{
    const float one = 1, zero = 0;
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    for (int i = 0; i < 3; i++) CK(cublasLtMatmul(lt, op, &one, W, la, in, lb, &zero, out, lc, out, lc, algo, ws, WS, 0));
    CK(cudaEventRecord(e0, 0));
    const int reps = 20;
    for (int i = 0; i < reps; i++) CK(cublasLtMatmul(lt, op, &one, W, la, in, lb, &zero, out, lc, out, lc, algo, ws, WS, 0));
    CK(cudaEventRecord(e1, 0));
    CK(cudaEventSynchronize(e1));
    float ms;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return ms / reps;
}

int main(int argc, char **argv)
{
    static const struct { const char *name; int K, N; cublasLtEpilogue_t ep; } g[] = {
        {"q|k|v", 768, 2304, CUBLASLT_EPILOGUE_BIAS}, {"attention out", 768, 768, CUBLASLT_EPILOGUE_BIAS},
        {"up + GELU", 768, 3072, CUBLASLT_EPILOGUE_GELU_BIAS}, {"down", 3072, 768, CUBLASLT_EPILOGUE_BIAS}};
    int Ms[8] = {65536, 25216}, nm = 2;
    if (argc > 1) { nm = 0; for (int i = 1; i < argc && nm < 8; i++) Ms[nm++] = atoi(argv[i]); }
    cublasLtHandle_t lt;
    CK(cublasLtCreate(&lt));
    void *ws;
    CK(cudaMalloc(&ws, WS));
    for (int mi = 0; mi < nm; mi++) {
        const int M = Ms[mi];
        double first_sum = 0, best_sum = 0, best_nosplit_sum = 0;
        for (size_t gi = 0; gi < sizeof g / sizeof *g; gi++) {
            const int K = g[gi].K, N = g[gi].N;
            void *W, *in, *out, *b;
            CK(cudaMalloc(&W, (size_t)N * K * 2));
            CK(cudaMalloc(&in, (size_t)M * K * 2));
            CK(cudaMalloc(&out, (size_t)M * N * 2));
            CK(cudaMalloc(&b, (size_t)N * 2));
            /* random operands in (−1, 1)/16 and bias in (−1, 1): bf16 bit patterns from a fixed LCG */
            {
                const size_t nmax = (size_t)M * K > (size_t)N * K ? (size_t)M * K : (size_t)N * K;
                unsigned short *h = (unsigned short *)malloc(nmax * 2);
                unsigned long long st = 12345 + gi;
                void *dst[3] = {W, in, b};
                const size_t cnt[3] = {(size_t)N * K, (size_t)M * K, (size_t)N};
                for (int d = 0; d < 3; d++) {
                    for (size_t i = 0; i < cnt[d]; i++) {
                        st = st * 6364136223846793005ULL + 1442695040888963407ULL;
                        const float f = ((float)(st >> 40) / (float)(1 << 24) * 2.0f - 1.0f) / (d == 2 ? 1.0f : 16.0f);
                        unsigned u;
                        memcpy(&u, &f, 4);
                        h[i] = (unsigned short)(u >> 16);
                    }
                    CK(cudaMemcpy(dst[d], h, cnt[d] * 2, cudaMemcpyHostToDevice));
                }
                free(h);
            }
            unsigned short *ref = (unsigned short *)malloc((size_t)M * N * 2), *got = (unsigned short *)malloc((size_t)M * N * 2);
            cublasLtMatmulDesc_t op;
            CK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
            cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
            CK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
            CK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
            CK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &g[gi].ep, sizeof g[gi].ep));
            CK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &b, sizeof b));
            cublasLtMatrixLayout_t la, lb, lc;
            CK(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, K, N, K));
            CK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, K, M, K));
            CK(cublasLtMatrixLayoutCreate(&lc, CUDA_R_16BF, N, M, N));
            cublasLtMatmulPreference_t pref;
            CK(cublasLtMatmulPreferenceCreate(&pref));
            size_t wsb = WS;
            CK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof wsb));
            cublasLtMatmulHeuristicResult_t res[NALGO];
            int found = 0;
            CK(cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, NALGO, res, &found));
            float t_first = 0, t_best = 1e30f, t_best_ns = 1e30f;
            int i_best = 0;
            for (int a = 0; a < found; a++) {
                int split = 1;
                size_t sz;
                cublasLtMatmulAlgoConfigGetAttribute(&res[a].algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &split, sizeof split, &sz);
                const float t = time_algo(lt, op, la, lb, lc, &res[a].algo, W, in, out, ws);
                const double tf = 2.0 * M * K * N / (t * 1e-3) / 1e12;
                CK(cudaMemcpy(a == 0 ? ref : got, out, (size_t)M * N * 2, cudaMemcpyDeviceToHost));
                size_t ndiff = 0;
                if (a > 0)
                    for (size_t i = 0; i < (size_t)M * N; i++) ndiff += ref[i] != got[i];
                printf("  M=%6d %-14s heuristic %2d: %7.3f ms  %5.0f TFLOP/s  split-K %d  %zu of %zu outputs differ from heuristic 0\n",
                       M, g[gi].name, a, t, tf, split, ndiff, (size_t)M * N);
                if (a == 0) t_first = t;
                if (t < t_best) { t_best = t; i_best = a; }
                if (split <= 1 && t < t_best_ns) t_best_ns = t;
            }
            printf("M=%6d %-14s first %.3f ms, best %.3f ms (heuristic %d, %.1f%% less), best without split-K %.3f ms\n", M,
                   g[gi].name, t_first, t_best, i_best, 100.0 * (1.0 - t_best / t_first), t_best_ns);
            first_sum += t_first;
            best_sum += t_best;
            best_nosplit_sum += t_best_ns;
            cublasLtMatmulPreferenceDestroy(pref);
            cublasLtMatrixLayoutDestroy(la); cublasLtMatrixLayoutDestroy(lb); cublasLtMatrixLayoutDestroy(lc);
            cublasLtMatmulDescDestroy(op);
            cudaFree(W); cudaFree(in); cudaFree(out); cudaFree(b);
            free(ref); free(got);
        }
        printf("M=%6d a layer's four GEMMs: first heuristics %.3f ms, best %.3f ms (%.1f%% less), best without split-K %.3f ms "
               "(%.1f%% less)\n", M, first_sum, best_sum, 100.0 * (1.0 - best_sum / first_sum), best_nosplit_sum,
               100.0 * (1.0 - best_nosplit_sum / first_sum));
    }
    return 0;
}
