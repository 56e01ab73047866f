/* model.h — a transformer loaded from a Hugging Face checkpoint directory, and its forward pass,
 * written once against the backend interface (backend.h). The post-softmax attention
 * probabilities of every layer reach the caller through one capture callback, in the backend's
 * memory, so that the statistics and the writer share one path; when only the per-head scalars
 * are wanted, a fused kernel computes them inside the same forward instead (attn_request).
 *
 * Families: the rows of arch.c — BERT-family encoders (BERT, MiniLM, RoBERTa/XLM-R positions),
 * GPT-2, Llama, Qwen2, Mistral. What differs is data (the family's row and config.json); the
 * forward follows it and an absent weight switches its step off.
 *
 * The block, pre- or post-norm alike, is a chain of residual steps add_norm(x, xn, res, norm):
 * the stream x gets the sub-block's output and xn the next sub-block's input. Post-norm (BERT)
 * has xn == x; pre-norm keeps x and normalises into xn with the next norm in the chain (the MLP's,
 * the next layer's attention norm, or the final norm after the last layer).
 *
 * GQA: the NKV key/value heads are kept as they are (q | k | v rows of A + 2·NKV·HS); the attention
 * ops take NKV and query head h reads kv head h / (NH / NKV), as HF's repeat_kv, without copies.
 * Sliding windows (Mistral, Qwen2): each layer's window (config_window) goes to the attention ops
 * and, through attn_stats' stats_params, to the statistics, which count only the visible keys. */
#ifndef ATTNSCOPE_MODEL_H
#define ATTNSCOPE_MODEL_H
#include "backend.h"
#include "config.h"
#include <stdint.h>

typedef struct { const float *w, *b; } norm_weights;   /* (C), (C) or NULL (RMSNorm; none: w NULL) */

/* A = NH·HS the attention width, KV = NKV·HS the key/value width, F the MLP's width (Fg = 2F
 * gated: gate | up, else F) */
typedef struct {
    float *wqkv, *bqkv;                  /* (A + 2KV, C), (A + 2KV) or NULL: q | k | v stacked */
    float *wo, *bo;                      /* (C, A), (C) or NULL */
    float *wup, *bup;                    /* (Fg, C), (Fg) or NULL */
    float *wdown, *bdown;                /* (C, F), (C) or NULL */
    norm_weights attn_norm, mlp_norm;    /* the sub-blocks' norms (arch.h ROLE_ATTN_NORM, ROLE_MLP_NORM) */
    norm_weights after_attn, after_mlp;  /* the norms of the residual steps after attention and MLP */
} layer_weights;

typedef struct {
    model_config cfg;
    backend *be;
    int gguf;                            /* 1: loaded from a GGUF file (the row's gguf_names), 0: a directory */
    char weight_prefix[16];              /* one of the row's prefixes ("", "bert.", "model.", ...) as found */
    char **weight_files;                 /* [n_weight_files] paths of the safetensors files read */
    int n_weight_files;
    float *wte, *wpe, *wtt;              /* (V, C), (P, C) or NULL, (TT, C) or NULL */
    norm_weights emb_norm, final_norm;   /* BERT's embedding LayerNorm; the pre-norm families' last norm */
    norm_weights first;                  /* the first residual step's norm: emb_norm, or layer 0's attn_norm */
    float *inv_freq;                     /* (HS/2) rotary inverse frequencies, or NULL */
    /* STEM_PATCHES: the patch convolution as (C, channels·P·P) and its bias or NULL; the prefix
     * tokens' embeddings (C) ([CLS]; DeiT's distillation token or NULL); wpe is the position
     * table of the config's grid (n_prefix + g0², C) */
    float *wpatch, *bpatch, *wcls, *wdist;
    int rope_T;                          /* the T that inv_freq was made for (dynamic scaling depends on it) */
    double wait_s;                       /* seconds the forwards waited for the backend at their ends */
    layer_weights *layers;               /* [n_layer] */
    void **owned; int n_owned;           /* every backend buffer of the weights */
    /* activations for up to cap_BT tokens, cap_BTT attention entries and cap_B sequences; q k v
     * and the attention output in elements of cap_qes bytes (2: bf16, for the fused path only) */
    int64_t cap_BT, cap_BTT, cap_B;
    int cap_qes;
    float *x, *tmp;                      /* (B, T, C): the residual stream, a sub-block's output */
    float *xn;                           /* (B, T, C) the next sub-block's input: == x for post-norm */
    float *ctx;                          /* (B, T, A) */
    void *xb;                            /* (B, T, C) bf16 copy of x (backends with bf16_acts) */
    void *xs;                            /* (B, T, C) a pre-norm model's bf16 stream (model_bf16_stream) */
    float *qkv;                          /* (B, T, A + 2KV): q | k | v */
    float *ff;                           /* (B, T, Fg) */
    float *ffa;                          /* (B, T, F) the activation's output: == ff unless gated */
    float *probs;                        /* (B, NH, T, T) */
    float *keymask;                      /* (B, T) */
    /* the batch's inputs, one block in backend memory (uploaded at once from the host block stage):
     * ids, pos, types (B, T); keymask above; lens (B) valid tokens and tokcls (B, T) token
     * flags for the fused attention */
    void *inputs, *stage; size_t inputs_bytes;
    int inputs_fenced;                   /* the last forward's uploads are marked by MODEL_FENCE_INPUTS */
    int32_t *ids, *pos, *types;
    int32_t *lens;
    uint8_t *tokcls;
    float *fstats;                       /* (L, B, NH, STAT_N) fused per-head scalars */
    void *ftok; size_t cap_ftok;         /* the fused per-token outputs of every layer (attn_request) */
    /* the patch stem's buffers: the batch's pixels (cap_px floats), patch rows (cap_patches, channels·P·P), the token table
     * (n_prefix + cap_patches, C), the position table resampled for a pos_gh x pos_gw grid
     * (wpe_grid, or NULL), and the one this batch uses (pos_grid: wpe or wpe_grid) */
    float *px, *prow, *ptab, *wpe_grid;
    const float *pos_grid;
    size_t cap_px, cap_patches;
    int pos_gh, pos_gw;
    /* 8-bit pixels' table (channels·256 floats, backend memory) and the host copy it was made from */
    float *plut, plut_host[3 * 256];
} model;

/* Loads config.json and the safetensors weights of dir onto backend be, checking every tensor's
 * presence, dtype (F32/F16/BF16) and shape against the config; or, when dir is a file, a GGUF
 * model: the config from its metadata (config_load_gguf), the weights by llama.cpp's names (the
 * row's gguf_names), dequantized to float32 (gguf_tensor_f32), Q/K unpermuted where the row says
 * the converter permuted them, shapes checked against the metadata; weight_files = {dir}; no
 * output/lm_head is read (attention needs none, so tied or not is moot). Returns 0, or -1 with err_set()
 * naming the file and tensor, or the family and the op when backend be lacks an op the family
 * needs ("the cuda backend does not run llama yet ...; use --backend cpu"). model_load_tower: of a
 * checkpoint with two towers (CLIPModel), the one tower asks for (arch.h; model_load: TOWER_ANY). */
int model_load(model *m, const char *dir, backend *be);
int model_load_tower(model *m, const char *dir, backend *be, int tower);
void model_free(model *m);

/* Non-finite weights (NaN/Inf). Every tensor that model_load and cnn_load read is checked in host
 * memory before its upload: NONFINITE_REFUSE (the default) fails the load with err_set() naming
 * the file, the tensor and the count; NONFINITE_WARN loads it and prints one warning line per
 * tensor on stderr; NONFINITE_SILENT loads it without a word (the ranks other than 0 under
 * --allow-nonfinite, so that the warning is printed once). Process-wide: set before loading. */
enum { NONFINITE_REFUSE, NONFINITE_WARN, NONFINITE_SILENT };
void model_set_nonfinite(int policy);
/* Process-wide: fn (NULL: none) is called by model_load with the weight files (weight_files) as
 * soon as it knows them, before it reads them (run_wsha.c hashes them meanwhile). */
void model_set_files_hook(void (*fn)(char *const *files, int n));
/* Checks x[0..n) of tensor name read from file under the policy above. Returns 0, or -1 with
 * err_set() when the tensor has non-finite values and the policy refuses them. */
int model_check_finite(const char *file, const char *name, const float *x, size_t n);

/* Called once per layer with that layer's probabilities (B, NH, T, T) in backend memory. */
typedef void (*attn_capture_fn)(void *user, int layer, const float *probs, int B, int T);

/* What the caller wants of each layer's attention: the probabilities through capture, or — when
 * no_probs and the backend has a fused kernel for this head size (fused_ok) — the per-head scalars
 * and the per-token top-k and key importance, computed without storing the probabilities: then
 * capture is not called, stats, topk_idx/topk_w and key_imp receive them and the forward sets
 * fused = 1. */
typedef struct {
    attn_capture_fn capture; void *user; /* or NULL: nothing captured */
    /* backend memory (L, B, T), or NULL: the L2 norm of every token's hidden state after each layer
     * (the residual stream, the block's output before any final norm: HF's hidden_states[layer + 1]),
     * made by the residual step that ends the layer */
    float *norms;
    int no_probs;                        /* the caller needs no probabilities: scalars, top-k (topk <=
                                          * ATTN_FUSED_TOPK_MAX) and key importance at most */
    int window;                          /* locality window of the scalars */
    const uint8_t *tokcls;               /* (B, T) host token flags: bit 0 [SEP]/EOS, bit 1 punctuation */
    float *stats;                        /* host (L, B, NH, STAT_N): the scalars, when fused */
    /* host, when fused (NULL: not wanted): each row's topk most attended keys (L, B, NH, T, topk)
     * and the key importance (L, B, NH, T), as stats_head gives them */
    int topk; int32_t *topk_idx; float *topk_w; float *key_imp;
    /* a patch model's vision outputs from the fused path (vis_grid NULL: not wanted; a forward
     * whose backend cannot give them for this T — model_fuses_vision — takes the explicit path and
     * calls capture): vis_out, host (L, B·NH·(2 + gh·gw)), receives each layer's distance in
     * pixels (B, NH), 2-D locality (B, NH) and [CLS] row (B, NH, gh·gw) one after another, as
     * stats.h attn_vis; vis_map (NULL: not wanted) is called after each layer with the heads'
     * fused map (B, T, T) in backend memory (fusion vis_fusion), valid until the next layer; with
     * vis_roll the map is the rollout's Â of the fused map instead (stats.h attn_vis roll) */
    const vgrid *vis_grid; int vis_fusion, vis_roll; float *vis_out;
    void (*vis_map)(void *user, int layer, const float *map, int B, int T);
    int fused;                           /* out: 1 when the fused path ran */
    /* 1: the forward returns once its work is enqueued (a device backend), the fused path's
     * outputs above downloaded asynchronously: stats, topk_idx, topk_w, key_imp and vis_out must
     * then be host_alloc memory, valid after a backend fence recorded later has been waited for
     * (collect.c's batch sets). 0: they are valid when the forward returns. */
    int defer;
} attn_request;

/* Runs B sequences padded to T. ids, types (B, T) on the host (types may be NULL: all 0);
 * len[B] valid tokens per sequence (right padding); req: what to do with the attention (may be
 * NULL). If hidden is not NULL it receives the last
 * hidden state (B, T, C) on the host. ids/types must be in range (validated by the caller).
 * Returns 0, or -1 with err_set() when the activations of B x T do not fit in backend memory
 * (nothing ran; not sticky: the caller may retry with fewer sequences). */
int model_forward(model *m, const int32_t *ids, const int32_t *types, const int *len, int B, int T,
                  attn_request *req, float *hidden);
/* The same for a patch-stem model (ViT, DeiT, CLIP's vision tower): B images px (B, channels, H,
 * W) on the host, preprocessed (normalised) as the model's image processor does: float32 when lut
 * is NULL, else 8-bit values (the processor's image before rescale and normalize) mapped on the
 * backend through lut (3 channels x 256, imgproc_lut: the same floats bit for bit); each becomes
 * n_prefix + (H/P)·(W/P) tokens ([CLS], DeiT's distillation token, then the patches row by row),
 * all of length T = that count. An image size other than the config's resamples the position
 * table as transformers' interpolate_pos_encoding (bicubic). px in host_alloc memory crosses the
 * bus fastest (the upload does not wait for it). Returns 0, or -1 with err_set(). */
int model_forward_pixels(model *m, const void *px, const float *lut, int B, int H, int W, attn_request *req, float *hidden);
/* The fence slot of the last forward's input uploads (backend.h), and the wait for it: the pixels
 * a deferred model_forward_pixels read (px) may change only after model_inputs_wait. Every
 * forward waits for the previous one's uploads before it fills the staging block again. */
#define MODEL_FENCE_INPUTS 0
#define MODEL_FENCE_PX 4                 /* the last forward's pixels have been read on the device */
void model_inputs_wait(model *m);
/* Bytes of backend memory a batch of B x T needs beyond the weights (an estimate that includes
 * the backend's attention scratch), to size batches from free memory; fused: the forward will
 * take the fused path (no probabilities stored), with tok_bytes of per-token outputs per layer,
 * head and token (8 per top-k entry, 4 for the key importance). */
size_t model_batch_bytes(const model *m, int B, int T, int fused, int tok_bytes);
/* Whether a forward with a no_probs request takes the fused path on this model and backend. */
int model_fuses(const model *m);
/* Whether a patch model's forward of T tokens with vis_grid gives the vision outputs on the fused path. */
int model_fuses_vision(const model *m, int T);
#endif
