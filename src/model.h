/* model.h — a transformer loaded from a Hugging Face checkpoint directory, and its forward pass,
 * written once against the backend interface (backend.h). The post-softmax attention
 * probabilities of every layer reach the caller through one capture callback, in the backend's
 * memory, so that the statistics and the writer share one path; when only the per-head scalars
 * are wanted, a fused kernel computes them inside the same forward instead (attn_request).
 *
 * Families: BERT-family encoders (BERT, MiniLM, bert-base-chinese, RoBERTa/XLM-R positions).
 * Post-norm (BERT) only for now; pre-norm decoders and ViT will add a flag to config.h and a
 * branch here, not a second forward. */
#ifndef ATTNSCOPE_MODEL_H
#define ATTNSCOPE_MODEL_H
#include "backend.h"
#include "config.h"
#include <stdint.h>

typedef struct {
    float *wqkv, *bqkv;                  /* (3C, C), (3C): query, key, value stacked */
    float *wo, *bo;                      /* (C, C), (C) */
    float *ln1_w, *ln1_b;                /* (C): after attention (post-norm) */
    float *w1, *b1;                      /* (F, C), (F) */
    float *w2, *b2;                      /* (C, F), (C) */
    float *ln2_w, *ln2_b;                /* (C): after the MLP (post-norm) */
} layer_weights;

typedef struct {
    model_config cfg;
    backend *be;
    char weight_prefix[16];              /* "", "bert.", "roberta." as found in the checkpoint */
    char **weight_files;                 /* [n_weight_files] paths of the safetensors files read */
    int n_weight_files;
    float *wte, *wpe, *wtt;              /* (V, C), (P, C), (TT, C) or NULL */
    float *emb_ln_w, *emb_ln_b;          /* (C) */
    layer_weights *layers;               /* [n_layer] */
    void **owned; int n_owned;           /* every backend buffer of the weights */
    /* activations for up to cap_BT tokens, cap_BTT attention entries and cap_B sequences */
    int64_t cap_BT, cap_BTT, cap_B;
    float *x, *ctx, *tmp;                /* (B, T, C) */
    void *xb;                            /* (B, T, C) bf16 copy of x (backends with bf16_acts) */
    float *qkv;                          /* (B, T, 3C): q | k | v */
    float *ff;                           /* (B, T, F) */
    float *probs;                        /* (B, NH, T, T) */
    float *keymask;                      /* (B, T) */
    /* the batch's inputs, one block in backend memory (uploaded at once from the host block stage):
     * ids, pos, types (B, T); keymask above; lens (B) valid tokens and tokcls (B, T) token
     * flags for the fused attention */
    void *inputs, *stage; size_t inputs_bytes;
    int32_t *ids, *pos, *types;
    int32_t *lens;
    uint8_t *tokcls;
    float *fstats;                       /* (L, B, NH, STAT_N) fused per-head scalars */
} model;

/* Loads config.json and the safetensors weights of dir onto backend be, checking every tensor's
 * presence, dtype (F32/F16/BF16) and shape against the config. Returns 0, or -1 with err_set()
 * naming the file and tensor. */
int model_load(model *m, const char *dir, backend *be);
void model_free(model *m);

/* Called once per layer with that layer's probabilities (B, NH, T, T) in backend memory. */
typedef void (*attn_capture_fn)(void *user, int layer, const float *probs, int B, int T);

/* What the caller wants of each layer's attention: the probabilities through capture, or — when
 * scalars_only and the backend has a fused kernel for this head size (fused_ok) — only the
 * per-head scalars, computed without storing the probabilities: then capture is not called,
 * stats receives them and the forward sets fused = 1. */
typedef struct {
    attn_capture_fn capture; void *user; /* or NULL: nothing captured */
    int scalars_only;                    /* the caller needs no probabilities, only the scalars */
    int window;                          /* locality window of the scalars */
    const uint8_t *tokcls;               /* (B, T) host token flags: bit 0 [SEP]/EOS, bit 1 punctuation */
    float *stats;                        /* host (L, B, NH, STAT_N): the scalars, when fused */
    int fused;                           /* out: 1 when the fused path ran */
} attn_request;

/* Runs B sequences padded to T. ids, types (B, T) on the host (types may be NULL: all 0);
 * len[B] valid tokens per sequence (right padding); req: what to do with the attention (may be
 * NULL). If hidden is not NULL it receives the last
 * hidden state (B, T, C) on the host. ids/types must be in range (validated by the caller).
 * Returns 0, or -1 with err_set() when the activations of B x T do not fit in backend memory
 * (nothing ran; not sticky: the caller may retry with fewer sequences). */
int model_forward(model *m, const int32_t *ids, const int32_t *types, const int *len, int B, int T,
                  attn_request *req, float *hidden);
/* Bytes of backend memory a batch of B x T needs beyond the weights (an estimate that includes
 * the backend's attention scratch), to size batches from free memory; fused: the forward will
 * take the fused path (no probabilities stored). */
size_t model_batch_bytes(const model *m, int B, int T, int fused);
/* Whether a forward with a scalars_only request takes the fused path on this model and backend. */
int model_fuses(const model *m);
#endif
