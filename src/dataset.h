/* dataset.h — the samples of one rank: its contiguous shard [first, first+n) of the global
 * sample order, tokenized (text) or read (pre-tokenized HDF5), truncated to max_len.
 *
 * Sharding: rank r of K holds samples [N·r/K, N·(r+1)/K), so sample order in the output equals
 * input order whatever K is. Every rank validates the whole text file (cheap) so that a bad line
 * is reported identically; an HDF5 input is validated by each rank on its own rows. */
#ifndef ATTNSCOPE_DATASET_H
#define ATTNSCOPE_DATASET_H
#include "tokenizer.h"
#include <stdint.h>

typedef struct {
    int64_t n_total;       /* N over all ranks */
    int64_t first;         /* global index of this rank's first sample */
    int n;                 /* samples on this rank */
    int64_t *off;          /* [n+1] offsets into ids/types */
    int32_t *ids;          /* [off[n]] token ids, sample i at ids[off[i] .. off[i+1]) */
    int32_t *types;        /* [off[n]] token type ids, or NULL (all 0) */
    int *len;              /* [n] valid tokens (after truncation) */
    int *len_full;         /* [n] tokens before truncation */
    int64_t *source_row;   /* [n] text: 1-based line number; HDF5: row index */
    int max_len;
    /* images (a patch-stem model): every image preprocessed comes out at channels x height x
     * width; each sample's ids are n_prefix + patches zeros (the token count its image becomes),
     * so that lengths, batching and the writer treat images like samples of tokens. The pixels
     * are not held: dataset_pixels produces a batch's when it is computed (memory bounded by the
     * batch, not the shard). px is the source (dataset_images.c), NULL for text. */
    struct dataset_px *px;
    int channels, height, width;
    uint8_t pixels_sha[32];  /* images: SHA-256 of the shard's image data, computed at load by
                              * streaming (the identity a resume checks): --images, over each
                              * file's path and the SHA-256 of its bytes; --input, over the
                              * SHA-256 of each of the shard's /pixel_values rows as stored
                              * (float32, or uint8) */
    char **image_paths;    /* --images: every image's path [n_total] (all ranks), else NULL */
    int32_t *image_size;   /* --images: [n][2] this shard's images' height and width before preprocessing */
} dataset;

/* UTF-8 text, one sample per line; blank lines are skipped (their line numbers are kept in
 * source_row). Errors (err_set, -1): unreadable file, invalid UTF-8 (names line and byte), no
 * non-blank line. */
int dataset_from_text(dataset *d, const char *path, const tokenizer *tok, int max_len, int rank, int nranks);

/* Pre-tokenized HDF5: /input_ids [N, L] integers, optional /attention_mask [N, L] (1 = real
 * token, right padding), optional /token_type_ids [N, L]. Ids must be < vocab, types < n_types
 * (n_types 0: /token_type_ids must be absent or all 0). Errors: err_set, -1. */
int dataset_from_h5(dataset *d, const char *path, int max_len, int vocab, int n_types, int rank, int nranks);

/* Preprocessed images in HDF5 (dataset_images.c): /pixel_values [N, channels, H, W] float, as an
 * image processor's output (normalised), or uint8: the processor's image after its resize and
 * crop, before rescale and normalize, which model_dir's preprocessor_config.json then says (3
 * channels; a quarter of the bytes to read and move). Every image becomes n_prefix +
 * (H/patch)·(W/patch) tokens. Checked: 4-D, floating point or uint8, channels as the model's, H
 * and W in [patch, 8192], every value finite (checked at load while the shard's rows are hashed,
 * a chunk at a time). The file stays open until dataset_free. Errors: err_set, -1. */
int dataset_from_pixels_h5(dataset *d, const char *path, const char *model_dir, int channels, int patch, int n_prefix,
                           int rank, int nranks);

/* PNG or JPEG images (image.h) of a directory or list file, preprocessed as model_dir's
 * preprocessor_config.json says (imgproc.h: HF's slow image processors); every image of this
 * shard must come out at the same size (a processor without a crop keeps aspect ratios: then the
 * images must share theirs). At load only the files' headers are decoded (sizes) and their bytes
 * hashed (pixels_sha); the pixels come from dataset_pixels. Errors: err_set, -1. */
int dataset_from_images(dataset *d, const char *src, const char *model_dir, int channels, int patch, int n_prefix,
                        int rank, int nranks);

/* The preprocessed pixels of the images idx[0..n) (indices into this shard) into out
 * [n][channels·height·width] float32: --images decodes and preprocesses the files (in parallel
 * over the n images), --input reads the rows from the file the dataset keeps open. Checked as at
 * load: a file that no longer decodes, or decodes at another size, a non-finite value. Callable
 * from another thread than the run's (one caller at a time) when dataset_pixels_threadsafe says
 * so: image files, or a contiguous float32 /pixel_values read by pread; other HDF5 layouts go
 * through HDF5, which is not thread-safe. Returns 0, or -1 with err_set("FILE: <problem>") naming
 * the first bad image of the batch. */
int dataset_pixels(const dataset *d, const int *idx, int n, float *out);
/* The same, raw: images with 8-bit pixels (--images, and a uint8 /pixel_values) come as they are
 * before rescale and normalize, [n][channels·height·width] bytes, which dataset_pixel_lut maps
 * (value u of channel c to lut[c·256 + u], bit for bit dataset_pixels' float); others as
 * dataset_pixels. dataset_pixel_bytes: the bytes of one image of it. */
int dataset_pixels_raw(const dataset *d, const int *idx, int n, void *out);
const float *dataset_pixel_lut(const dataset *d);       /* [channels·256], or NULL: float pixels */
size_t dataset_pixel_bytes(const dataset *d);
int dataset_pixels_threadsafe(const dataset *d);
/* The same for the n consecutive images from first (a CNN's batch). */
int dataset_pixels_range(const dataset *d, int first, int n, float *out);

void dataset_free(dataset *d);
/* dataset_images.c: releases an image source (closes its file); NULL is fine. */
void dataset_px_free(struct dataset_px *px);
/* The shard [first, first + n) of N samples that rank r of K holds (dataset.c). */
void dataset_shard(int64_t N, int rank, int nranks, int64_t *first, int *n);
#endif
