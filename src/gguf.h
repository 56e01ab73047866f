/* gguf.h — reader for GGUF files (llama.cpp / Ollama checkpoints, format versions 2 and 3,
 * little-endian), validated the way ggml's gguf.cpp validates, before anything is allocated from
 * a count in the file; tensors are read with pread and dequantized to float32 (quant.h).
 *
 * Checks at gguf_open (each failure: err_set("<file>: <problem>"), return -1): magic "GGUF";
 * version 2 or 3 (big-endian files, v1 and later versions refused by name); tensor and key counts,
 * string lengths and array counts each fit in the bytes left in the file (and strings/arrays ≤ 2^30
 * as ggml) before anything is allocated; keys non-empty, without NUL, unique; value types known,
 * no arrays of arrays, bools 0 or 1; general.alignment, if present, a uint32 power of two
 * (default 32); tensor names non-empty, < 64 bytes, without NUL, unique; n_dims ≤ 4; dims ≤ INT64_MAX
 * and, unless one is 0, an element count below INT64_MAX; type known to ggml; ne[0] a multiple of
 * the type's block size; byte size overflow-checked; offsets relative to the data section (which
 * starts at the end of the tensor infos rounded up to the alignment, inside the file when there
 * are tensors), multiples of the alignment, inside the file, and no two tensors overlap.
 *
 * Dimension order is ggml's: ne[0] is the fastest-varying (a weight [out, in] in PyTorch is
 * ne = {in, out}); gguf_tensor_f32 writes row-major floats, i.e. PyTorch's layout. */
#ifndef ATTNSCOPE_GGUF_H
#define ATTNSCOPE_GGUF_H
#include <stddef.h>
#include <stdint.h>

/* metadata value types, as numbered in the file */
typedef enum {
    GGUF_UINT8 = 0, GGUF_INT8 = 1, GGUF_UINT16 = 2, GGUF_INT16 = 3, GGUF_UINT32 = 4, GGUF_INT32 = 5,
    GGUF_FLOAT32 = 6, GGUF_BOOL = 7, GGUF_STRING = 8, GGUF_ARRAY = 9, GGUF_UINT64 = 10, GGUF_INT64 = 11,
    GGUF_FLOAT64 = 12, GGUF_NTYPES
} gguf_vtype;

#define GGUF_MAX_DIMS 4
#define GGUF_MAX_NAME 64          /* tensor names are shorter (ggml's GGML_MAX_NAME) */

typedef struct {
    char *key;
    gguf_vtype type;              /* element type: never GGUF_ARRAY */
    int is_array;
    uint64_t n;                   /* elements: 1 for a scalar */
    void *data;                   /* numeric/bool: n values as in the file (little-endian), else NULL */
    char **strs;                  /* string: n NUL-terminated copies, else NULL */
    uint64_t *str_lens;           /* their lengths in bytes (a value may itself hold a NUL) */
} gguf_kv;

typedef struct {
    char *name;
    uint32_t type;                /* ggml type id, quant.h */
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS];    /* ne[d] = 1 for d ≥ n_dims */
    int64_t numel;
    uint64_t offset;              /* absolute, in the file */
    uint64_t nbytes;
} gguf_tensor;

typedef struct {
    char *path;
    int fd;                       /* kept open: tensors are read with pread */
    uint64_t file_size;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;         /* absolute start of the data section */
    int64_t nkv;
    gguf_kv *kv;                  /* [nkv] in file order */
    int64_t ntensors;
    gguf_tensor *tensors;         /* [ntensors] in file order */
    int64_t *kv_sorted, *t_sorted; /* indices sorted by key / name, for lookup */
} gguf_file;

/* Name of a value type ("uint32", "string", ...). */
const char *gguf_vtype_name(gguf_vtype t);

/* Opens and validates path. Returns 0, or -1 with err_set(); on failure g is left empty
 * (fd -1, no allocations) and gguf_close(g) is allowed. */
int gguf_open(gguf_file *g, const char *path);
/* Closes the file and frees everything; g may be empty. */
void gguf_close(gguf_file *g);

/* The entry of that key, or NULL. */
const gguf_kv *gguf_find_kv(const gguf_file *g, const char *key);

/* Typed getters: 0 and *out set, or -1 with err_set("<file>: key \"k\" ...") when the key is
 * missing or its value does not fit. Integer getters accept any scalar integer type whose value
 * fits the result (llama.cpp's writers use uint32 for sizes, some others int32 or uint64);
 * gguf_get_f32 accepts float32 and float64 (converted); gguf_get_bool only bool. */
int gguf_get_u32(const gguf_file *g, const char *key, uint32_t *out);
int gguf_get_i32(const gguf_file *g, const char *key, int32_t *out);
int gguf_get_f32(const gguf_file *g, const char *key, float *out);
int gguf_get_bool(const gguf_file *g, const char *key, int *out);
/* A string value, borrowed from g (valid until gguf_close); *len may be NULL. */
int gguf_get_str(const gguf_file *g, const char *key, const char **out, uint64_t *len);
/* An array of strings: *out points to *n borrowed strings; lens (may be NULL) to their lengths. */
int gguf_get_str_array(const gguf_file *g, const char *key, char *const **out, const uint64_t **lens,
                       uint64_t *n);
/* An array of integers of any integer element type, converted into out[n] allocated by the caller
 * (n must equal the array's length, from gguf_find_kv(...)->n); -1 when a value does not fit. */
int gguf_get_u32_array(const gguf_file *g, const char *key, uint32_t *out, uint64_t n);
int gguf_get_i32_array(const gguf_file *g, const char *key, int32_t *out, uint64_t n);

/* The tensor of that exact name, or NULL. */
const gguf_tensor *gguf_find_tensor(const gguf_file *g, const char *name);
/* Reads and dequantizes the tensor into out[n]; n must equal its numel. Returns 0, or -1 with
 * err_set() naming the file and the tensor: no such tensor, wrong n, a type quant_to_f32 cannot
 * dequantize (named), or a short read (the file shrank after gguf_open). */
int gguf_tensor_f32(const gguf_file *g, const char *name, float *out, size_t n);

/* Undoes llama.cpp's convert_hf_to_gguf.py LlamaModel.permute on a row-major [rows, cols] Q or K
 * weight (or a [rows] bias with cols = 1) so that it matches Hugging Face's layout: within each of
 * the n_head heads (pass head_count_kv for K) of rows/n_head rows, GGUF row 2j+i holds HF row
 * i·(rows/n_head/2)+j. In place. Returns 0, or -1 with err_set() when rows is not a multiple of
 * 2·n_head. */
int gguf_unpermute_qk(float *w, int n_head, int rows, int cols);
#endif
