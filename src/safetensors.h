/* safetensors.h — reader for Hugging Face safetensors checkpoints (single file, or sharded with
 * model.safetensors.index.json), validated the way the reference Rust implementation validates
 * before anything is allocated from the file; tensor data stays mmap'ed.
 *
 * Checks (each failure: err_set("<file>: <problem>"), return -1): file ≥ 8 bytes; header length
 * N ≤ 100,000,000 and 8+N ≤ file size; header is UTF-8 JSON object (leading/trailing whitespace
 * accepted); no duplicate names; "__metadata__" optional, a map of strings; every entry has dtype
 * (known name), shape (non-negative integers), data_offsets [begin, end] with begin ≤ end;
 * shape product × dtype size in bits computed with overflow checks is a whole number of bytes
 * and equals end − begin; sorted by offset,
 * the ranges are contiguous from 0 with no gap or overlap, and the last ends exactly at the end
 * of the file. */
#ifndef ATTNSCOPE_SAFETENSORS_H
#define ATTNSCOPE_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>

/* every Dtype of the reference (tensor.rs); only F32, F16 and BF16 are read as weights */
typedef enum {
    ST_BOOL, ST_U8, ST_I8, ST_F8_E5M2, ST_F8_E4M3, ST_I16, ST_U16, ST_F16, ST_BF16,
    ST_I32, ST_U32, ST_F32, ST_F64, ST_I64, ST_U64,
    ST_F8_E8M0, ST_F8_E4M3FNUZ, ST_F8_E5M2FNUZ, ST_C64, ST_F4, ST_F6_E2M3, ST_F6_E3M2, ST_NDTYPES
} st_dtype;

#define ST_MAX_DIMS 8

typedef struct {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    const void *data;     /* into the file's mapping */
    uint64_t nbytes;
    int file;             /* index into st_model.paths */
    const char *path;     /* st_model.paths[file], for messages (owned by the st_model) */
} st_tensor;

typedef struct {
    int nfiles;
    char **paths;         /* [nfiles] */
    void **maps;          /* [nfiles] mmap'ed whole files */
    size_t *map_len;      /* [nfiles] */
    int ntensors;
    st_tensor *tensors;   /* [ntensors], sorted by name */
} st_model;

/* Name of a dtype as written in the header ("F32", "BF16", ...), and its size in bytes (0 for the
 * sub-byte F4 and F6_* types: 4 and 6 bits; a tensor of them holds a whole number of bytes). */
const char *st_dtype_name(st_dtype d);
size_t st_dtype_size(st_dtype d);

/* Opens one .safetensors file. Returns 0, or -1 with err_set(); on failure m is left empty. */
int st_open_file(st_model *m, const char *path);
/* Opens a model directory: model.safetensors, else model.safetensors.index.json and its shards
 * (every shard named by weight_map must exist and hold the tensors the index assigns to it;
 * a name in two shards is an error). Returns 0, or -1 with err_set(). */
int st_open_dir(st_model *m, const char *dir);
/* The tensor of that exact name, or NULL. */
const st_tensor *st_find(const st_model *m, const char *name);
/* Converts a F32/F16/BF16 tensor to float32 into out[numel] (F16 exact incl. subnormals, inf, nan
 * payloads; BF16 by shift; little-endian host assumed). -1 with err_set(), naming the file and
 * the tensor, for other dtypes (I64, F64, ...). */
int st_to_f32(const st_tensor *t, float *out);
/* Unmaps and frees everything; m may be empty. */
void st_close(st_model *m);
#endif
