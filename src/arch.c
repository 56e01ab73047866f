/* arch.c — see arch.h. The family table. Names follow each family's transformers modeling file
 * (modeling_bert.py, modeling_gpt2.py, modeling_llama.py, modeling_qwen2.py, modeling_mistral.py,
 * modeling_vit.py, modeling_deit.py, modeling_clip.py);
 * the prefixes cover the base model saved alone ("") and inside a task model ("bert.",
 * "transformer.", "model."). */
#include "arch.h"
#include <stdio.h>
#include <string.h>

#define BERT_NAMES                                                                                                   \
    {[ROLE_TOK_EMB] = "embeddings.word_embeddings", [ROLE_POS_EMB] = "embeddings.position_embeddings",               \
     [ROLE_TYPE_EMB] = "embeddings.token_type_embeddings", [ROLE_EMB_NORM] = "embeddings.LayerNorm",                 \
     [ROLE_Q] = "encoder.layer.%d.attention.self.query", [ROLE_K] = "encoder.layer.%d.attention.self.key",            \
     [ROLE_V] = "encoder.layer.%d.attention.self.value", [ROLE_O] = "encoder.layer.%d.attention.output.dense",        \
     [ROLE_ATTN_NORM] = "encoder.layer.%d.attention.output.LayerNorm", [ROLE_UP] = "encoder.layer.%d.intermediate.dense", \
     [ROLE_DOWN] = "encoder.layer.%d.output.dense", [ROLE_MLP_NORM] = "encoder.layer.%d.output.LayerNorm"}
#define BERT_KEYS                                                                                                    \
    {[KEY_N_LAYER] = "num_hidden_layers", [KEY_N_HEAD] = "num_attention_heads", [KEY_D_MODEL] = "hidden_size",       \
     [KEY_D_FF] = "intermediate_size", [KEY_VOCAB] = "vocab_size", [KEY_MAX_POS] = "max_position_embeddings",        \
     [KEY_EPS] = "layer_norm_eps", [KEY_ACT] = "hidden_act", [KEY_TYPE_VOCAB] = "type_vocab_size"}
/* Llama and its descendants: the same module names and keys */
#define LLAMA_NAMES                                                                                                  \
    {[ROLE_TOK_EMB] = "embed_tokens", [ROLE_Q] = "layers.%d.self_attn.q_proj", [ROLE_K] = "layers.%d.self_attn.k_proj", \
     [ROLE_V] = "layers.%d.self_attn.v_proj", [ROLE_O] = "layers.%d.self_attn.o_proj",                              \
     [ROLE_ATTN_NORM] = "layers.%d.input_layernorm", [ROLE_GATE] = "layers.%d.mlp.gate_proj",                       \
     [ROLE_UP] = "layers.%d.mlp.up_proj", [ROLE_DOWN] = "layers.%d.mlp.down_proj",                                  \
     [ROLE_MLP_NORM] = "layers.%d.post_attention_layernorm", [ROLE_FINAL_NORM] = "norm"}
#define LLAMA_KEYS                                                                                                   \
    {[KEY_N_LAYER] = "num_hidden_layers", [KEY_N_HEAD] = "num_attention_heads", [KEY_N_KV_HEAD] = "num_key_value_heads", \
     [KEY_D_MODEL] = "hidden_size", [KEY_D_FF] = "intermediate_size", [KEY_VOCAB] = "vocab_size",                   \
     [KEY_MAX_POS] = "max_position_embeddings", [KEY_EPS] = "rms_norm_eps", [KEY_ACT] = "hidden_act",               \
     [KEY_HEAD_DIM] = "head_dim"}

/* llama.cpp's names for the same modules (gguf-py's constants.py TENSOR_NAMES / MODEL_TENSOR) */
#define LLAMA_GGUF_NAMES                                                                                             \
    {[ROLE_TOK_EMB] = "token_embd", [ROLE_Q] = "blk.%d.attn_q", [ROLE_K] = "blk.%d.attn_k", [ROLE_V] = "blk.%d.attn_v", \
     [ROLE_O] = "blk.%d.attn_output", [ROLE_ATTN_NORM] = "blk.%d.attn_norm", [ROLE_GATE] = "blk.%d.ffn_gate",         \
     [ROLE_UP] = "blk.%d.ffn_up", [ROLE_DOWN] = "blk.%d.ffn_down", [ROLE_MLP_NORM] = "blk.%d.ffn_norm",               \
     [ROLE_FINAL_NORM] = "output_norm"}

/* ViT and DeiT (modeling_vit.py, modeling_deit.py: the names as the hub's checkpoints store them) */
#define VIT_NAMES(DIST)                                                                                              \
    {[ROLE_PATCH] = "embeddings.patch_embeddings.projection", [ROLE_CLS] = "embeddings.cls_token",                   \
     [ROLE_DIST] = DIST, [ROLE_POS_EMB] = "embeddings.position_embeddings",                                        \
     [ROLE_Q] = "encoder.layer.%d.attention.attention.query", [ROLE_K] = "encoder.layer.%d.attention.attention.key",  \
     [ROLE_V] = "encoder.layer.%d.attention.attention.value", [ROLE_O] = "encoder.layer.%d.attention.output.dense",  \
     [ROLE_ATTN_NORM] = "encoder.layer.%d.layernorm_before", [ROLE_UP] = "encoder.layer.%d.intermediate.dense",       \
     [ROLE_DOWN] = "encoder.layer.%d.output.dense", [ROLE_MLP_NORM] = "encoder.layer.%d.layernorm_after",             \
     [ROLE_FINAL_NORM] = "layernorm"}
#define VISION_KEYS                                                                                                  \
    {[KEY_N_LAYER] = "num_hidden_layers", [KEY_N_HEAD] = "num_attention_heads", [KEY_D_MODEL] = "hidden_size",       \
     [KEY_D_FF] = "intermediate_size", [KEY_EPS] = "layer_norm_eps", [KEY_ACT] = "hidden_act",                      \
     [KEY_IMAGE_SIZE] = "image_size", [KEY_PATCH_SIZE] = "patch_size", [KEY_CHANNELS] = "num_channels"}
#define BIT(r) (1u << (r))

static const arch_row rows[] = {
    {.family = "bert", .model_types = "bert", .norm = NORM_LAYER, .pos = POS_LEARNED, .mlp = MLP_PLAIN,
     .default_act = "gelu", .prefixes = "|bert.|roberta.|model.", .names = BERT_NAMES, .keys = BERT_KEYS},
    {.family = "roberta", .model_types = "roberta|xlm-roberta", .norm = NORM_LAYER, .pos = POS_LEARNED_OFFSET,
     .mlp = MLP_PLAIN, .default_act = "gelu", .prefixes = "|roberta.|bert.|model.", .names = BERT_NAMES, .keys = BERT_KEYS},
    {.family = "gpt2", .model_types = "gpt2", .norm = NORM_LAYER, .pos = POS_LEARNED, .mlp = MLP_PLAIN, .pre_norm = 1,
     .causal = 1, .transposed = 1, .default_act = "gelu_new", .d_ff_mult = 4, .prefixes = "|transformer.",
     .names = {[ROLE_TOK_EMB] = "wte", [ROLE_POS_EMB] = "wpe", [ROLE_QKV] = "h.%d.attn.c_attn",
               [ROLE_O] = "h.%d.attn.c_proj", [ROLE_ATTN_NORM] = "h.%d.ln_1", [ROLE_UP] = "h.%d.mlp.c_fc",
               [ROLE_DOWN] = "h.%d.mlp.c_proj", [ROLE_MLP_NORM] = "h.%d.ln_2", [ROLE_FINAL_NORM] = "ln_f"},
     .keys = {[KEY_N_LAYER] = "n_layer|num_hidden_layers", [KEY_N_HEAD] = "n_head|num_attention_heads",
              [KEY_D_MODEL] = "n_embd|hidden_size", [KEY_D_FF] = "n_inner", [KEY_VOCAB] = "vocab_size",
              [KEY_MAX_POS] = "n_positions|max_position_embeddings", [KEY_EPS] = "layer_norm_epsilon",
              [KEY_ACT] = "activation_function"},
     /* the converter (GPT2Model) writes the Conv1D weights transposed to (out, in), like nn.Linear */
     .gguf_archs = "gpt2",
     .gguf_names = {[ROLE_TOK_EMB] = "token_embd", [ROLE_POS_EMB] = "position_embd", [ROLE_QKV] = "blk.%d.attn_qkv",
                    [ROLE_O] = "blk.%d.attn_output", [ROLE_ATTN_NORM] = "blk.%d.attn_norm", [ROLE_UP] = "blk.%d.ffn_up",
                    [ROLE_DOWN] = "blk.%d.ffn_down", [ROLE_MLP_NORM] = "blk.%d.ffn_norm", [ROLE_FINAL_NORM] = "output_norm"}},
    {.family = "llama", .model_types = "llama", .norm = NORM_RMS, .pos = POS_ROPE, .mlp = MLP_GATED, .pre_norm = 1,
     .causal = 1, .default_act = "silu", .prefixes = "|model.", .names = LLAMA_NAMES, .keys = LLAMA_KEYS,
     .gguf_archs = "llama", .gguf_names = LLAMA_GGUF_NAMES, .gguf_permute_qk = 1},
    {.family = "qwen2", .model_types = "qwen2", .norm = NORM_RMS, .pos = POS_ROPE, .mlp = MLP_GATED, .pre_norm = 1,
     .causal = 1, .sliding = SW_LAYER_TYPES, .default_act = "silu", .prefixes = "|model.", .names = LLAMA_NAMES, .keys = LLAMA_KEYS,
     .gguf_archs = "qwen2", .gguf_names = LLAMA_GGUF_NAMES},
    {.family = "mistral", .model_types = "mistral", .norm = NORM_RMS, .pos = POS_ROPE, .mlp = MLP_GATED, .pre_norm = 1,
     .causal = 1, .sliding = SW_EVERY, .default_act = "silu", .prefixes = "|model.", .names = LLAMA_NAMES, .keys = LLAMA_KEYS},
    {.family = "vit", .model_types = "vit", .norm = NORM_LAYER, .pos = POS_LEARNED, .mlp = MLP_PLAIN, .pre_norm = 1,
     .default_act = "gelu", .prefixes = "|vit.", .stem = STEM_PATCHES, .names = VIT_NAMES(NULL),
     .bare = BIT(ROLE_CLS) | BIT(ROLE_POS_EMB), .keys = VISION_KEYS},
    {.family = "deit", .model_types = "deit", .norm = NORM_LAYER, .pos = POS_LEARNED, .mlp = MLP_PLAIN, .pre_norm = 1,
     .default_act = "gelu", .prefixes = "|deit.", .stem = STEM_PATCHES, .names = VIT_NAMES("embeddings.distillation_token"),
     .bare = BIT(ROLE_CLS) | BIT(ROLE_DIST) | BIT(ROLE_POS_EMB), .keys = VISION_KEYS},
    /* CLIP's vision tower (modeling_clip.py CLIPVisionTransformer): pre_layrnorm after the
     * embeddings, quick_gelu; post_layernorm is applied to the pooled [CLS] only, not to the hidden
     * states, so the row names no final norm. CLIPModel checkpoints keep it under "vision_model."
     * with its config in "vision_config". */
    {.family = "clip_vision", .model_types = "clip_vision_model|clip", .norm = NORM_LAYER, .pos = POS_LEARNED,
     .mlp = MLP_PLAIN, .pre_norm = 1, .default_act = "quick_gelu", .prefixes = "|vision_model.", .stem = STEM_PATCHES,
     .sub_config = "vision_config",
     .names = {[ROLE_PATCH] = "embeddings.patch_embedding", [ROLE_CLS] = "embeddings.class_embedding",
               [ROLE_POS_EMB] = "embeddings.position_embedding", [ROLE_EMB_NORM] = "pre_layrnorm",
               [ROLE_Q] = "encoder.layers.%d.self_attn.q_proj", [ROLE_K] = "encoder.layers.%d.self_attn.k_proj",
               [ROLE_V] = "encoder.layers.%d.self_attn.v_proj", [ROLE_O] = "encoder.layers.%d.self_attn.out_proj",
               [ROLE_ATTN_NORM] = "encoder.layers.%d.layer_norm1", [ROLE_UP] = "encoder.layers.%d.mlp.fc1",
               [ROLE_DOWN] = "encoder.layers.%d.mlp.fc2", [ROLE_MLP_NORM] = "encoder.layers.%d.layer_norm2"},
     .bare = BIT(ROLE_CLS), .keys = VISION_KEYS},
    /* CLIP's text tower (CLIPTextTransformer): causal, learned positions, quick_gelu, final_layer_norm
     * on the hidden states; a CLIPTextModel checkpoint (model_type clip_text_model), or a CLIPModel's
     * under "text_model." with its config in "text_config" (TOWER_TEXT: a run on text) */
    {.family = "clip_text", .model_types = "clip_text_model|clip", .norm = NORM_LAYER, .pos = POS_LEARNED, .mlp = MLP_PLAIN,
     .pre_norm = 1, .causal = 1, .default_act = "quick_gelu", .prefixes = "|text_model.", .sub_config = "text_config",
     .names = {[ROLE_TOK_EMB] = "embeddings.token_embedding", [ROLE_POS_EMB] = "embeddings.position_embedding",
               [ROLE_Q] = "encoder.layers.%d.self_attn.q_proj", [ROLE_K] = "encoder.layers.%d.self_attn.k_proj",
               [ROLE_V] = "encoder.layers.%d.self_attn.v_proj", [ROLE_O] = "encoder.layers.%d.self_attn.out_proj",
               [ROLE_ATTN_NORM] = "encoder.layers.%d.layer_norm1", [ROLE_UP] = "encoder.layers.%d.mlp.fc1",
               [ROLE_DOWN] = "encoder.layers.%d.mlp.fc2", [ROLE_MLP_NORM] = "encoder.layers.%d.layer_norm2",
               [ROLE_FINAL_NORM] = "final_layer_norm"},
     .keys = {[KEY_N_LAYER] = "num_hidden_layers", [KEY_N_HEAD] = "num_attention_heads", [KEY_D_MODEL] = "hidden_size",
              [KEY_D_FF] = "intermediate_size", [KEY_VOCAB] = "vocab_size", [KEY_MAX_POS] = "max_position_embeddings",
              [KEY_EPS] = "layer_norm_eps", [KEY_ACT] = "hidden_act"}},
};

/* whether s is one of the '|'-separated items of list */
static int in_list(const char *list, const char *s)
{
    const size_t n = strlen(s);
    for (const char *p = list;; p++) {
        const char *e = strchr(p, '|');
        const size_t k = e ? (size_t)(e - p) : strlen(p);
        if (k == n && !strncmp(p, s, n)) return 1;
        if (!e) return 0;
        p = e;
    }
}

const arch_row *arch_find(const char *model_type, int tower)
{
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
        if (in_list(rows[i].model_types, model_type) &&
            (tower == TOWER_ANY || (tower == TOWER_VISION) == (rows[i].stem == STEM_PATCHES)))
            return &rows[i];
    /* no row of that kind (a ViT given text): the model's own row, so that the run says what it takes */
    if (tower != TOWER_ANY) return arch_find(model_type, TOWER_ANY);
    return NULL;
}

const arch_row *arch_find_gguf(const char *architecture)
{
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
        if (rows[i].gguf_archs && in_list(rows[i].gguf_archs, architecture)) return &rows[i];
    return NULL;
}

/* the lists of every row ('|'-separated, gguf: gguf_archs else model_types) joined by ", " */
static void join_lists(char *buf, size_t cap, int gguf)
{
    char *b = buf;
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
        for (const char *p = gguf ? rows[i].gguf_archs : rows[i].model_types; p && *p;) {
            const char *e = strchr(p, '|');
            const int k = e ? (int)(e - p) : (int)strlen(p);
            char item[64];
            snprintf(item, sizeof item, "%.*s", k, p);
            int seen = 0;                                  /* a type two rows list (CLIPModel) once */
            for (size_t j = 0; j < i && !seen; j++) {
                const char *list = gguf ? rows[j].gguf_archs : rows[j].model_types;
                seen = list && in_list(list, item);
            }
            if (!seen) b += snprintf(b, buf + cap - b, "%s%s", b == buf ? "" : ", ", item);
            p += k + (e != NULL);
        }
}

const char *arch_supported_gguf(void)
{
    static char buf[256];
    if (!buf[0]) join_lists(buf, sizeof buf, 1);
    return buf;
}

const char *arch_supported(void)
{
    static char buf[256];
    if (!buf[0]) join_lists(buf, sizeof buf, 0);
    return buf;
}
