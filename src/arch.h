/* arch.h — the model families as data: one row per family says which steps the one forward pass
 * (model.c) takes and where each weight and hyper-parameter lives in a Hugging Face checkpoint.
 * What differs between BERT, RoBERTa, GPT-2, Llama, Qwen2 and Mistral is in these rows, never in
 * a family test inside the forward: the forward reads the row's fields, and a weight the row does
 * not name (or an optional bias the checkpoint lacks) switches its step off.
 *
 * Invariants: every row names a token embedding (STEM_TOKENS) or a patch convolution and [CLS]
 * (STEM_PATCHES) and a position table, q/k/v (separate or fused), the attention output,
 * the MLP's up and down projections and the two per-layer norms; a gated MLP names gate too; a
 * pre-norm row names a final norm. */
#ifndef ATTNSCOPE_ARCH_H
#define ATTNSCOPE_ARCH_H

typedef enum { NORM_LAYER, NORM_RMS } norm_kind;          /* LayerNorm (mean, var, w, b) / RMSNorm (w only) */
typedef enum {
    POS_LEARNED,         /* a learned table indexed by t */
    POS_LEARNED_OFFSET,  /* RoBERTa: real tokens at pad_token_id + 1 + t, padding at pad_token_id */
    POS_ROPE,            /* rotary embeddings on q and k (HF's rotate_half layout) */
} pos_kind;
typedef enum { MLP_PLAIN, MLP_GATED } mlp_kind;           /* down(act(up x)) / down(act(gate x) · up x) */
/* What turns the input into the first hidden states: token ids through an embedding table, or an
 * image's patches through the patch convolution (as a linear map of each flattened patch) after
 * the prefix tokens ([CLS], DeiT's distillation token) */
typedef enum { STEM_TOKENS, STEM_PATCHES } stem_kind;
/* Where the family's HF code applies config.json's sliding_window (masking_utils' sliding-window
 * causal mask); a family without one ignores the key, as its modeling file does. */
typedef enum {
    SW_NONE,
    SW_EVERY,            /* Mistral: every layer (sliding_window null: none) */
    SW_LAYER_TYPES,      /* Qwen2: only with use_sliding_window, on the layers whose layer_types entry is
                            "sliding_attention" (absent: the layers >= max_window_layers) */
} sw_kind;

/* Weight roles. Each is an HF module name (printf pattern with %d = layer) without the
 * ".weight"/".bias" suffix; weights are required, biases optional (absent: no bias). */
typedef enum {
    ROLE_TOK_EMB, ROLE_POS_EMB, ROLE_TYPE_EMB, ROLE_EMB_NORM,
    ROLE_Q, ROLE_K, ROLE_V, ROLE_QKV,    /* separate q, k, v, or one fused (GPT-2's c_attn) */
    ROLE_O,
    ROLE_ATTN_NORM,                      /* the attention sub-block's norm: after it (post-norm), before it (pre-norm) */
    ROLE_GATE, ROLE_UP, ROLE_DOWN,
    ROLE_MLP_NORM,                       /* the MLP sub-block's norm, likewise */
    ROLE_FINAL_NORM,                     /* after the last layer (pre-norm families) */
    ROLE_PATCH,                          /* the patch convolution (C, channels, P, P), bias optional */
    ROLE_CLS, ROLE_DIST,                 /* the prefix tokens' embeddings ([CLS], DeiT's distillation token) */
    ROLE_N
} weight_role;

/* config.json fields; each row names the keys ("a|b": the first present wins). */
typedef enum {
    KEY_N_LAYER, KEY_N_HEAD, KEY_N_KV_HEAD, KEY_D_MODEL, KEY_D_FF, KEY_VOCAB, KEY_MAX_POS, KEY_EPS, KEY_ACT,
    KEY_HEAD_DIM, KEY_TYPE_VOCAB, KEY_IMAGE_SIZE, KEY_PATCH_SIZE, KEY_CHANNELS, KEY_N
} config_key;

typedef struct {
    const char *family;                 /* "bert", "gpt2", ... (messages) */
    const char *model_types;            /* config.json model_type values, '|'-separated */
    norm_kind norm;
    pos_kind pos;
    mlp_kind mlp;
    int pre_norm;                       /* 1: x + f(norm(x)); 0: norm(x + f(x)) (BERT) */
    int causal;                         /* 1: decoder (causal mask) */
    int transposed;                     /* 1: linear weights stored (in, out) (GPT-2's Conv1D) */
    sw_kind sliding;                    /* which layers take config.json's sliding_window */
    const char *default_act;            /* when config.json has no KEY_ACT ("gelu", "silu", ...) */
    int d_ff_mult;                      /* when config.json has no KEY_D_FF (GPT-2 n_inner null): d_ff = mult·C */
    const char *prefixes;               /* weight-name prefixes tried in order, '|'-separated ("" first) */
    stem_kind stem;
    const char *sub_config;             /* the config.json object holding the keys when present
                                           (CLIPModel's "vision_config"), or NULL: the top level */
    const char *names[ROLE_N];          /* NULL: the family has no such weight */
    unsigned bare;                      /* bit r: role r is a bare parameter (no ".weight"; leading
                                           dims of 1 allowed: ViT's [1, 1, C] cls_token) */
    const char *keys[KEY_N];            /* NULL: the family has no such key (a default applies) */
    /* GGUF files (llama.cpp's convert_hf_to_gguf.py): the general.architecture values this row
     * runs ('|'-separated; NULL: none — llama.cpp writes Mistral as "llama"), llama.cpp's tensor
     * names per role (as names; linear weights always (out, in): ggml stores no Conv1D layout),
     * and whether the converter permuted the Q and K rows (LlamaModel.permute; Qwen2 does not).
     * The metadata keys are "<arch>.block_count" etc. for every architecture (config.c). */
    const char *gguf_archs;
    const char *gguf_names[ROLE_N];
    int gguf_permute_qk;
} arch_row;

/* Which tower of a checkpoint that holds two (CLIPModel: text and vision): TOWER_ANY takes the
 * first row that lists the model_type; the others the row of that kind (patch stem or not), or
 * the first row when none is of that kind. */
enum { TOWER_ANY, TOWER_TEXT, TOWER_VISION };
/* The row whose model_types lists model_type (of the kind tower asks for), or NULL. */
const arch_row *arch_find(const char *model_type, int tower);
/* Every supported model_type, ", "-separated, for messages (static storage). */
const char *arch_supported(void);
/* The row whose gguf_archs lists a GGUF general.architecture value, or NULL. */
const arch_row *arch_find_gguf(const char *architecture);
/* Every supported general.architecture, ", "-separated (static storage). */
const char *arch_supported_gguf(void);
#endif
