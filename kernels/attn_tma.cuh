// attn_tma.cuh — private to attn_fused.cu: Hopper's tensor memory accelerator (TMA) for the key
// and value tiles of the bf16 kernel with heads of 64. One thread starts two copies a key tile
// (a 64-key × 64-dim box of k and of v, 8 KiB each) that complete on a shared-memory mbarrier;
// the 128 threads' own 16-byte copies and their address arithmetic (~35 instructions a thread a
// tile) go away. The boxes land in shared memory in the 128-byte swizzle (CU_TENSOR_MAP_SWIZZLE_128B:
// the 16-byte chunk c of row r at chunk c ^ (r % 8) of the row's 128 bytes), which keeps the
// ldmatrix reads of scores_sw / pv_sw free of bank conflicts without padding (TMA writes a
// dense box).
// The tensor maps are 3-D (columns, T, B) views of the q | k | v rows: rows past a sample's T are
// the box's out-of-bounds rows, filled with zeros, as the threads' copies zero-fill them.
#ifndef ATTNSCOPE_ATTN_TMA_CUH
#define ATTNSCOPE_ATTN_TMA_CUH
#include <cuda.h>            // CUtensorMap (the type only: the encoder comes through the runtime)
#include <cudaTypedefs.h>    // PFN_cuTensorMapEncodeTiled_v12000
#include <stdint.h>
#include "attn_fused_ops.cuh"   // smem_u32

// the kernel's parameter (__grid_constant__: the maps stay in parameter space, as TMA wants)
struct af_maps {
    CUtensorMap k, v;
};

__device__ static inline void mbar_init(uint64_t *bar, unsigned count)
{
#if __CUDA_ARCH__ >= 900
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(count) : "memory");
#endif
}
// the barriers' initialisation visible to the async proxy (the TMA unit) before the first copy
__device__ static inline void mbar_init_fence()
{
#if __CUDA_ARCH__ >= 900
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}
// the issuing thread's arrival, announcing the bytes the phase's copies will bring
__device__ static inline void mbar_expect_tx(uint64_t *bar, unsigned bytes)
{
#if __CUDA_ARCH__ >= 900
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(bytes) : "memory");
#endif
}
// until the phase of the given parity has completed (its bytes have landed)
__device__ static inline void mbar_wait(uint64_t *bar, unsigned parity)
{
#if __CUDA_ARCH__ >= 900
    asm volatile("{\n"
                 ".reg .pred done;\n"
                 "AF_WAIT:\n"
                 "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
                 "@!done bra AF_WAIT;\n"
                 "}\n" ::"r"(smem_u32(bar)),
                 "r"(parity)
                 : "memory");
#endif
}
// the box at (c0, c1, c2) of map into dst (1024-byte aligned for the swizzle), completing on bar
__device__ static inline void tma_load_3d(void *dst, const CUtensorMap *map, uint64_t *bar, int c0, int c1, int c2)
{
#if __CUDA_ARCH__ >= 900
    asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5}], [%2];\n"
                 ::"r"(smem_u32(dst)), "l"(map), "r"(smem_u32(bar)), "r"(c0), "r"(c1), "r"(c2)
                 : "memory");
#endif
}

// the tensor map of a bf16 (B, T, ·) operand: dim 0 the cols columns from p (row stride ld
// elements), dim 1 T, dim 2 B; box HS columns × rows keys. 0 when the driver cannot make it.
static inline int af_encode_map(CUtensorMap *map, const void *p, int cols, int ld, int T, int B, int HS, int rows)
{
    static PFN_cuTensorMapEncodeTiled_v12000 encode;
    static int tried;
    if (!tried) {
        tried = 1;
        cudaDriverEntryPointQueryResult q;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", (void **)&encode, 12000, cudaEnableDefault, &q) !=
                cudaSuccess ||
            q != cudaDriverEntryPointSuccess)
            encode = NULL;
    }
    if (!encode) return 0;
    const cuuint64_t dim[3] = {(cuuint64_t)cols, (cuuint64_t)T, (cuuint64_t)B};
    const cuuint64_t stride[2] = {(cuuint64_t)ld * 2, (cuuint64_t)ld * 2 * (cuuint64_t)T};   // bytes, dims 1 and 2
    const cuuint32_t box[3] = {(cuuint32_t)HS, (cuuint32_t)rows, 1}, estride[3] = {1, 1, 1};
    return encode(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, (void *)p, dim, stride, box, estride,
                  CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
                  CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}
#endif
