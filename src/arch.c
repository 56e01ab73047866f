/* arch.c — see arch.h. The family table. Names follow each family's transformers modeling file
 * (modeling_bert.py, modeling_gpt2.py, modeling_llama.py, modeling_qwen2.py, modeling_mistral.py);
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
static const arch_row rows[] = {
    {.family = "bert", .model_types = "bert", .norm = NORM_LAYER, .pos = POS_LEARNED, .mlp = MLP_PLAIN,
     .default_act = "gelu", .prefixes = "|bert.", .names = BERT_NAMES, .keys = BERT_KEYS},
    {.family = "roberta", .model_types = "roberta|xlm-roberta", .norm = NORM_LAYER, .pos = POS_LEARNED_OFFSET,
     .mlp = MLP_PLAIN, .default_act = "gelu", .prefixes = "|roberta.", .names = BERT_NAMES, .keys = BERT_KEYS},
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

const arch_row *arch_find(const char *model_type)
{
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
        if (in_list(rows[i].model_types, model_type)) return &rows[i];
    return NULL;
}

const char *arch_supported(void)
{
    static char buf[256];
    if (!buf[0]) {
        char *b = buf;
        for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
            for (const char *p = rows[i].model_types; *p;) {
                const char *e = strchr(p, '|');
                const int k = e ? (int)(e - p) : (int)strlen(p);
                b += snprintf(b, buf + sizeof buf - b, "%s%.*s", b == buf ? "" : ", ", k, p);
                p += k + (e != NULL);
            }
    }
    return buf;
}
