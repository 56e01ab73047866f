/* backend_cuda_int.h — what the CUDA backend's files share (backend_cuda.c: the ops and the
 * context; backend_cuda_linear.c: the linear layers through cuBLASLt). Private to them. */
#ifndef ATTNSCOPE_BACKEND_CUDA_INT_H
#define ATTNSCOPE_BACKEND_CUDA_INT_H
#include <cuda_runtime_api.h>
#include <cublas_v2.h>
#include <cublasLt.h>
#include "backend.h"
#include "check.h"

enum { SCR_Q, SCR_K, SCR_V, SCR_Y, SCR_LEN, SCR_SEP, SCR_PUNCT, SCR_OUT, SCR_KIMP, SCR_TKI, SCR_TKW, SCR_PACK, SCR_BF16, SCR_MM,
       SCR_GRAM, SCR_SPLIT, SCR_STATS, SCR_FUSED, SCR_VIS, SCR_ROLL, SCR_N };

/* cuBLASLt plans of the linear layers, one per shape: layouts, the epilogue and the algorithm
 * its heuristic picked — the path PyTorch's nn.Linear takes (gemm + bias in one kernel) */
typedef struct {
    int M, K, N, ld;                 /* ld: of both inputs (K, or 3K' for a chunk of a split GEMM) */
    cublasLtEpilogue_t epi;          /* DEFAULT, BIAS, or an activation (+ BIAS): linear_act */
    cudaDataType_t ab, d;            /* element types of the inputs, of the output (and bias) */
    cublasComputeType_t compute;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
    int tuned;                       /* the algorithm was chosen by time (or that was not possible) */
    int acc;                         /* beta = 1: the output is added to (linear_add; never timed) */
} lt_plan;
#define LT_PLANS 64

/* Derived copies of the weights, made when a weight first meets a GEMM (weights never change):
 * bf16 for `--precision bf16`, the [hi | lo | hi] TF32 split (N, 3K) for fp32 on tensor cores */
typedef struct { const float *w; void *bf; } bf16_weight;

typedef struct {
    cublasHandle_t blas;
    int precision;                    /* 0 fp32, 1 tf32, 2 bf16 linear layers, 3 fp32 through SGEMM */
    int split;                        /* linear layers as 3xTF32 GEMMs (fp32 on a GPU with TF32) */
    int chunks;                       /* pieces of the hi·hi part of a split GEMM; 0: by K (cuda_linear) */
    int sm;                           /* compute capability, 10 major + minor */
    bf16_weight *wcache; int n_wcache;
    void **tables; int n_tables;      /* bf16 token tables (token_table): embed reads them as bf16 */
    cublasLtHandle_t lt; int use_lt;
    int tune;                         /* choose among cuBLASLt's algorithms by time (bf16 GEMMs) */
    int vis_exact;                    /* bf16 vision outputs by the second pass, not kept probabilities */
    lt_plan plans[LT_PLANS]; int n_plans;
    void *scr[SCR_N];                 /* scratch buffers, see the enum */
    size_t scr_bytes[SCR_N];
    int fused_bh;                     /* the last fused launch's B·NH: its finish counters are zero */
    void *workspace;                  /* cuBLAS workspace: room for its faster (split-K) kernels */
    cudaEvent_t fence[BACKEND_FENCES];
    cudaStream_t side; cudaEvent_t side_done;   /* upload_side's stream, and its last copy's end */
    /* download_async's stream (NULL: ATTNSCOPE_NO_SIDE_COPY), the op stream's point before a copy
     * and the last crossing's end; its staging arena, bytes used since the last fence, whether a
     * download awaits a fence and whether the arena's next use waits for dl_done */
    cudaStream_t dside; cudaEvent_t dl_mark, dl_done;
    void *dl_arena; size_t dl_cap, dl_off;
    int dl_pending, dl_reuse;
    int roll_tf32;                    /* the rollout's products on TF32 tensor cores (bf16 runs) */
    /* --timeline's marks (backend_cuda_marks.c): events (mk_made created, room for mk_cap), the
     * tag of each recorded since the last read (mk_n), and how many were dropped past the cap */
    cudaEvent_t *mk_ev; int *mk_tag; int mk_n, mk_made, mk_cap; long mk_lost;
} cuda_ctx;

/* a cuBLASLt call: its status, and a launch that failed without changing it (cudaGetLastError,
 * which does not synchronise) — a GEMM that did not run must not pass as a result */
#define CHECK_LT(call) do { cublasStatus_t s_ = (call); \
    if (s_ != CUBLAS_STATUS_SUCCESS) check_fail(__FILE__, __LINE__, #call, cublasGetStatusString(s_)); \
    CHECK_CUDA(cudaGetLastError()); } while (0)
#define LT_WORKSPACE ((size_t)64 << 20)   /* cuBLASLt's workspace bytes (shared with cuBLAS) */


/* scratch slot s with at least bytes (contents not kept when it grows); the device copy of weight
 * W (N, K) that the GEMMs take (bf16, or the 3xTF32 split), made on first use */
void *cuda_scratch(cuda_ctx *c, int s, size_t bytes);
const void *cuda_derived_of(cuda_ctx *c, const float *W, int N, int K);
/* backend.h linear (backend_cuda_linear.c) */
void cuda_linear(backend *be, void *out, int odt, const void *in, int idt, const float *W, const float *b, int M, int K, int N);
int cuda_linear_add(backend *be, void *s, const void *in, int idt, const float *W, const float *b, int M, int K, int N);
int cuda_linear_act(backend *be, void *out, int odt, const void *in, int idt, const float *W, const float *b, int M, int K,
                    int N, int act);
/* backend.h mark and marks_read; the events' release (backend_cuda_marks.c) */
void cuda_mark(backend *be, int tag);
int cuda_marks_read(backend *be, int **tags, double **ms, long *lost);
void cuda_marks_free(cuda_ctx *c);
#endif
