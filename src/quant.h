/* quant.h — the ggml tensor types stored in GGUF files: their ids, block sizes and bytes per block,
 * and dequantization of whole blocks to float32, written after ggml's dequantize_row_* (ggml-quants.c)
 * with the same operations in the same order, so that the results are the same floats.
 *
 * Invariant: a type that quant_type() knows has blck ≥ 1 and tsize ≥ 1; a tensor of that type
 * stores ne[0]/blck blocks per row (ne[0] a multiple of blck) of tsize bytes each, rows contiguous.
 * Little-endian host assumed, as the format is. */
#ifndef ATTNSCOPE_QUANT_H
#define ATTNSCOPE_QUANT_H
#include <stddef.h>
#include <stdint.h>

/* ggml_type ids (ggml.h); ids 4, 5 and 31-33, 36-38 were removed from ggml and are unknown here */
enum {
    QT_F32 = 0, QT_F16 = 1, QT_Q4_0 = 2, QT_Q4_1 = 3, QT_Q5_0 = 6, QT_Q5_1 = 7, QT_Q8_0 = 8,
    QT_Q8_1 = 9, QT_Q2_K = 10, QT_Q3_K = 11, QT_Q4_K = 12, QT_Q5_K = 13, QT_Q6_K = 14, QT_Q8_K = 15,
    QT_BF16 = 30,
};

typedef struct {
    const char *name;   /* ggml's name: "f32", "q4_K", ... */
    int blck;           /* elements per block */
    int tsize;          /* bytes per block */
    int to_f32;         /* 1 if quant_to_f32 handles it */
} quant_type_info;

/* The type of that id, or NULL when ggml has no such type (or this table does not know it). */
const quant_type_info *quant_type(uint32_t type);

/* Dequantizes nblocks whole blocks of src (type `type`, tsize bytes each, any alignment) into
 * dst[nblocks*blck]. Returns 0, or -1 (no message: the caller names the tensor) when the type is
 * unknown or quant_type(type)->to_f32 is 0. */
int quant_to_f32(uint32_t type, const void *src, float *dst, int64_t nblocks);

/* IEEE half bits -> float, exact for every input (subnormals, inf, NaN payloads), as ggml's
 * GGML_FP16_TO_FP32. */
float quant_f16_to_f32(uint16_t h);
#endif
