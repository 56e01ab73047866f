/* config.h — the model hyper-parameters read from a Hugging Face config.json, in one struct that
 * every model family fills; the family's row (arch.h) says which keys hold them and which steps
 * the forward pass takes. The forward (model.c) reads the row and these fields only. */
#ifndef ATTNSCOPE_CONFIG_H
#define ATTNSCOPE_CONFIG_H
#include "arch.h"
#include "gguf.h"

/* quick_gelu (CLIP): x·sigmoid(1.702·x) */
typedef enum { ACT_GELU, ACT_GELU_TANH, ACT_RELU, ACT_SILU, ACT_QUICK_GELU } act_kind;
/* rope_scaling / rope_parameters "rope_type" (transformers' modeling_rope_utils.py) */
typedef enum { ROPE_DEFAULT, ROPE_LINEAR, ROPE_DYNAMIC, ROPE_LLAMA3 } rope_kind;

typedef struct {
    const arch_row *arch;  /* the family (arch.c), never NULL after config_load */
    char model_type[32];   /* as in config.json: "bert", "roberta", "gpt2", "llama", ... */
    int n_layer;           /* L  */
    int n_head;            /* NH */
    int n_kv_head;         /* key/value heads (== NH without GQA; NH a multiple of it) */
    int d_model;           /* C  */
    int head_dim;          /* HS (C / NH unless config.json says head_dim) */
    int d_ff;              /* intermediate size */
    int vocab;
    int max_pos;           /* max_position_embeddings */
    int type_vocab;        /* token types (0: none) */
    int pad_token_id;
    int sep_token_id;      /* [SEP]/EOS id from config.json (sep_token_id, else eos_token_id), -1 if none */
    int pos_offset;        /* POS_LEARNED_OFFSET: positions start at pad_token_id + 1 */
    float ln_eps;          /* LayerNorm or RMSNorm epsilon */
    act_kind act;
    int causal;            /* 1: decoder (causal mask) */
    /* POS_ROPE: theta and scaling from rope_theta / rope_scaling, or the newer rope_parameters */
    double rope_theta;
    rope_kind rope_type;
    double rope_factor, rope_low_freq, rope_high_freq;   /* linear/dynamic/llama3 factors */
    int rope_orig_max_pos;                               /* llama3/dynamic: original_max_position_embeddings */
    float *rope_freq_div;  /* (head_dim/2) or NULL: GGUF's rope_freqs.weight, each inv_freq divided by it (owned) */
    int *sliding_window;   /* [n_layer] each layer's sliding window sw (row i sees keys i - sw + 1 .. i),
                              0: full attention; NULL: no layer has one (owned; config_window reads it) */
    /* STEM_PATCHES: images of image_size² pixels of n_channels cut into patches of patch_size²;
     * max_pos = n_prefix + (image_size / patch_size)² the position table's rows; vocab 0 */
    int image_size, patch_size, n_channels;
    int n_prefix;          /* tokens before the patches: [CLS] (1), + DeiT's distillation token (2) */
    char *json_text;       /* config.json as read, for the HDF5 attributes (owned) */
} model_config;

/* Reads <dir>/config.json; of a checkpoint with two towers (CLIPModel) the one tower asks for
 * (arch.h; TOWER_ANY: the vision tower). Returns 0, or -1 with err_set() naming the file and the
 * field (unsupported model_type, missing or inconsistent sizes, unknown hidden_act, ...). */
int config_load(model_config *c, const char *dir, int tower);
/* The same fields from a GGUF file's metadata (llama.cpp's keys): general.architecture picks the
 * row (arch_find_gguf), then <arch>.block_count, .embedding_length, .feed_forward_length,
 * .attention.head_count, .attention.head_count_kv (default head_count), .attention.key_length
 * (default embedding_length / head_count; value_length must agree), .context_length,
 * .attention.layer_norm_rms_epsilon (RMSNorm rows; .attention.layer_norm_epsilon for LayerNorm
 * rows), the activation the row's default_act (GGUF has no key for it), .rope.freq_base (default 10000),
 * .rope.dimension_count (must be head_dim: no partial rotary), .rope.scaling.type none|linear
 * (.rope.scaling.factor), the tensor rope_freqs.weight if present (llama3 scaling as the converter
 * writes it: per-frequency divisors of inv_freq, as llama.cpp applies them), .vocab_size (default token_embd's rows); tokenizer.ggml.padding_token_id
 * and eos_token_id. json_text receives these values as a JSON object (the run's config_json).
 * Returns 0, or -1 with err_set() naming the file and the key. */
int config_load_gguf(model_config *c, const gguf_file *g);
void config_free(model_config *c);
/* Layer l's sliding window (0: none). */
static inline int config_window(const model_config *c, int l) { return c->sliding_window ? c->sliding_window[l] : 0; }
/* The rotary inverse frequencies inv_freq[HS/2] for sequences of up to T positions, as
 * transformers' rope init functions compute them (dynamic scaling depends on T). */
void config_rope_inv_freq(const model_config *c, int T, float *inv_freq);
#endif
