/* config.c — see config.h. The family's row (arch.c) names the keys; every size is range-checked
 * here so that later arithmetic on it (weights, buffers) cannot overflow. */
#include "config.h"
#include "jsonutil.h"
#include "util.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

/* The first of the '|'-separated keys present in o (non-null), or NULL; keys NULL: none. */
static const char *find_key(json_object *o, const char *keys, char *buf, size_t cap)
{
    for (const char *p = keys; p && *p;) {
        const char *e = strchr(p, '|');
        const int k = e ? (int)(e - p) : (int)strlen(p);
        snprintf(buf, cap, "%.*s", k, p);
        json_object *v;
        if (json_object_object_get_ex(o, buf, &v) && v) return buf;
        p += k + (e != NULL);
    }
    return NULL;
}

/* integer in [lo, max] under the row's key k: absent -> *out = def, or an error when def < lo */
static int get_int_key(json_object *o, const model_config *c, config_key k, int *out, int64_t lo, int64_t max, int def,
                       const char *path)
{
    char key[64];
    const char *name = find_key(o, c->arch->keys[k], key, sizeof key);
    if (!name) {
        if (def < lo) return err_set("%s: missing \"%s\"", path, c->arch->keys[k] ? c->arch->keys[k] : "?");
        *out = def;
        return 0;
    }
    int64_t v;
    if (json_get_int(o, name, &v, path) < 0) return -1;
    if (v < lo || v > max) return err_set("%s: \"%s\" = %lld is out of range [%lld, %lld]", path, name, (long long)v, (long long)lo, (long long)max);
    *out = (int)v;
    return 0;
}

/* An id key (pad/sep/eos): an integer, or a list whose first element is taken (Llama 3's
 * eos_token_id lists); absent or null: -1. */
static int get_id(json_object *o, const char *key, int vocab, int *out, const char *path)
{
    json_object *v;
    *out = -1;
    if (!json_object_object_get_ex(o, key, &v) || !v) return 0;
    if (json_object_is_type(v, json_type_array)) {
        if (json_object_array_length(v) == 0) return 0;
        v = json_object_array_get_idx(v, 0);
    }
    if (!json_object_is_type(v, json_type_int)) return err_set("%s: \"%s\" is not an integer", path, key);
    int64_t x = json_object_get_int64(v);
    if (x < 0 || x >= vocab) return err_set("%s: \"%s\" = %lld is outside the vocabulary", path, key, (long long)x);
    *out = (int)x;
    return 0;
}

/* rope_theta and the scaling, from the top level (rope_theta, rope_scaling) or from
 * rope_parameters (transformers >= 5) */
static int read_rope(json_object *o, model_config *c, const char *path)
{
    c->rope_theta = 10000.0;
    c->rope_type = ROPE_DEFAULT;
    json_object *rp = NULL;
    if (json_get_double(o, "rope_theta", &c->rope_theta, path) < 0) return -1;
    const char *where = "rope_parameters";
    if (!json_object_object_get_ex(o, where, &rp) || !rp) { where = "rope_scaling"; json_object_object_get_ex(o, where, &rp); }
    if (rp && !json_object_is_type(rp, json_type_object)) return err_set("%s: \"%s\" is not an object", path, where);
    if (rp) {
        const char *type = "default";
        if (json_get_double(rp, "rope_theta", &c->rope_theta, path) < 0) return -1;
        if (json_get_string(rp, "rope_type", &type, path) < 0 || json_get_string(rp, "type", &type, path) < 0) return -1;
        if (!strcmp(type, "default")) c->rope_type = ROPE_DEFAULT;
        else if (!strcmp(type, "linear")) c->rope_type = ROPE_LINEAR;
        else if (!strcmp(type, "dynamic")) c->rope_type = ROPE_DYNAMIC;
        else if (!strcmp(type, "llama3")) c->rope_type = ROPE_LLAMA3;
        else return err_set("%s: %s type \"%s\" is not supported (default, linear, dynamic, llama3)", path, where, type);
        double prf = 1.0;
        if (json_get_double(rp, "partial_rotary_factor", &prf, path) < 0) return -1;
        if (prf != 1.0) return err_set("%s: %s partial_rotary_factor %g is not supported (1)", path, where, prf);
        c->rope_factor = 1.0;
        c->rope_low_freq = 1.0;
        c->rope_high_freq = 4.0;
        int64_t om = c->max_pos;
        if (json_get_double(rp, "factor", &c->rope_factor, path) < 0 ||
            json_get_double(rp, "low_freq_factor", &c->rope_low_freq, path) < 0 ||
            json_get_double(rp, "high_freq_factor", &c->rope_high_freq, path) < 0 ||
            json_get_int(rp, "original_max_position_embeddings", &om, path) < 0)
            return -1;
        if (c->rope_type != ROPE_DEFAULT && !(c->rope_factor >= 1.0 && c->rope_factor < 1e6))
            return err_set("%s: %s factor %g is not in [1, 1e6)", path, where, c->rope_factor);
        if (c->rope_type == ROPE_LLAMA3 && !(c->rope_high_freq > c->rope_low_freq && c->rope_low_freq > 0))
            return err_set("%s: %s needs 0 < low_freq_factor < high_freq_factor", path, where);
        if (om < 1 || om > (1 << 24)) return err_set("%s: %s original_max_position_embeddings = %lld is out of range", path, where, (long long)om);
        c->rope_orig_max_pos = (int)om;
    }
    if (!(c->rope_theta > 1 && c->rope_theta < 1e12)) return err_set("%s: rope_theta = %g is not in (1, 1e12)", path, c->rope_theta);
    return 0;
}

/* The layers' sliding windows (arch.h sw_kind), as the family's HF config and modeling files
 * decide them: Mistral's sliding_window on every layer; Qwen2's only with use_sliding_window and
 * on the "sliding_attention" entries of layer_types (transformers 5; absent: the layers from
 * max_window_layers on, as Qwen2Config builds it). */
static int read_sliding_window(json_object *o, model_config *c, const char *path)
{
    const sw_kind kind = c->arch->sliding;
    if (kind == SW_NONE) return 0;
    /* both configs default sliding_window to 4096 when the key is absent; null means none */
    int64_t sw = 4096;
    int use = kind == SW_EVERY;             /* Qwen2Config's use_sliding_window defaults to false */
    json_object *v = NULL;
    if (kind == SW_LAYER_TYPES && json_get_bool(o, "use_sliding_window", &use, path) < 0) return -1;
    const int present = json_object_object_get_ex(o, "sliding_window", &v);
    if (present && json_get_int(o, "sliding_window", &sw, path) < 0) return -1;
    if (!use || (present && !v)) sw = 0;
    else if (sw < 1 || sw > (1 << 24)) return err_set("%s: \"sliding_window\" = %lld is out of range [1, %d]", path, (long long)sw, 1 << 24);
    json_object *types = NULL;
    if (kind == SW_LAYER_TYPES && json_object_object_get_ex(o, "layer_types", &types) && types) {
        if (!json_object_is_type(types, json_type_array) || (int)json_object_array_length(types) != c->n_layer)
            return err_set("%s: \"layer_types\" is not a list of %d layer types", path, c->n_layer);
    } else {
        types = NULL;
    }
    int64_t mwl = 28;                       /* Qwen2Config's default max_window_layers */
    if (kind == SW_LAYER_TYPES && !types && json_get_int(o, "max_window_layers", &mwl, path) < 0) return -1;
    int *w = xcalloc(c->n_layer, sizeof(int)), any = 0;
    for (int l = 0; l < c->n_layer; l++) {
        int sliding = kind == SW_EVERY || (!types && l >= mwl);
        if (types) {
            json_object *t = json_object_array_get_idx(types, l);
            const char *s = t && json_object_is_type(t, json_type_string) ? json_object_get_string(t) : "";
            if (strcmp(s, "full_attention") && strcmp(s, "sliding_attention")) {
                free(w);
                return err_set("%s: layer_types[%d] is not \"full_attention\" or \"sliding_attention\"", path, l);
            }
            sliding = !strcmp(s, "sliding_attention");
            /* transformers cannot build the sliding mask without a window: neither do we */
            if (sliding && !sw) {
                free(w);
                return err_set("%s: layer_types[%d] is \"sliding_attention\" but there is no sliding window "
                               "(use_sliding_window false or sliding_window null)", path, l);
            }
        }
        w[l] = sliding ? (int)sw : 0;
        any |= w[l] != 0;
    }
    if (any) c->sliding_window = w;
    else free(w);
    return 0;
}

/* transformers' activation names (ACT2FN keys) -> act_kind; -1 when unknown */
static int act_from_name(const char *act, act_kind *out)
{
    if (!strcmp(act, "gelu")) *out = ACT_GELU;
    else if (!strcmp(act, "gelu_new") || !strcmp(act, "gelu_pytorch_tanh")) *out = ACT_GELU_TANH;
    else if (!strcmp(act, "relu")) *out = ACT_RELU;
    else if (!strcmp(act, "silu") || !strcmp(act, "swish")) *out = ACT_SILU;
    else if (!strcmp(act, "quick_gelu")) *out = ACT_QUICK_GELU;
    else return -1;
    return 0;
}

int config_load(model_config *c, const char *dir, int tower)
{
    memset(c, 0, sizeof *c);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text;
    json_object *o = json_load_object(path, 1 << 24, &text), *top = o;   /* o: where the row's keys are */
    if (!o) return -1;
    int rc = -1;
    const char *mt = NULL, *act;
    int r = json_get_string(o, "model_type", &mt, path);
    if (r <= 0) {
        if (r == 0) err_set("%s: missing \"model_type\"", path);
        goto done;
    }
    snprintf(c->model_type, sizeof c->model_type, "%s", mt);
    if (!(c->arch = arch_find(mt, tower))) {
        err_set("%s: model_type \"%s\" is not supported yet (supported: %s)", path, mt, arch_supported());
        goto done;
    }
    const arch_row *a = c->arch;
    json_object *sub;
    /* CLIPModel: the tower's keys in a sub-object; ids and the like stay at the top level */
    if (a->sub_config && json_object_object_get_ex(top, a->sub_config, &sub) && sub) {
        if (!json_object_is_type(sub, json_type_object)) { err_set("%s: \"%s\" is not an object", path, a->sub_config); goto done; }
        o = sub;
    }
    if (get_int_key(o, c, KEY_N_LAYER, &c->n_layer, 1, 1024, 0, path) ||
        get_int_key(o, c, KEY_N_HEAD, &c->n_head, 1, 1024, 0, path) ||
        get_int_key(o, c, KEY_D_MODEL, &c->d_model, 1, 1 << 16, 0, path))
        goto done;
    if (a->stem == STEM_PATCHES) {
        if (get_int_key(o, c, KEY_IMAGE_SIZE, &c->image_size, 1, 1 << 15, 224, path) ||
            get_int_key(o, c, KEY_PATCH_SIZE, &c->patch_size, 1, 1 << 10, 16, path) ||
            get_int_key(o, c, KEY_CHANNELS, &c->n_channels, 1, 64, 3, path))
            goto done;
        if (c->image_size % c->patch_size) {
            err_set("%s: image_size %d is not a multiple of patch_size %d", path, c->image_size, c->patch_size);
            goto done;
        }
        const int g = c->image_size / c->patch_size;
        c->n_prefix = 1 + (a->names[ROLE_DIST] != NULL);
        c->max_pos = c->n_prefix + g * g;
        if (c->max_pos > (1 << 24)) { err_set("%s: %d patches are too many", path, g * g); goto done; }
    } else if (get_int_key(o, c, KEY_VOCAB, &c->vocab, 1, 1 << 24, 0, path) ||
               get_int_key(o, c, KEY_MAX_POS, &c->max_pos, 1, 1 << 24, 0, path)) {
        goto done;
    }
    if (get_int_key(o, c, KEY_D_FF, &c->d_ff, 1, 1 << 18, a->d_ff_mult ? a->d_ff_mult * c->d_model : 0, path) ||
        get_int_key(o, c, KEY_N_KV_HEAD, &c->n_kv_head, 1, c->n_head, c->n_head, path) ||
        get_int_key(o, c, KEY_HEAD_DIM, &c->head_dim, 1, 1024, c->d_model / c->n_head > 0 ? c->d_model / c->n_head : 1, path) ||
        /* a model with token-type embeddings has at least one type (HF adds row 0 to every token);
         * absent, HF's BertConfig/RobertaConfig default of 2 */
        get_int_key(o, c, KEY_TYPE_VOCAB, &c->type_vocab, a->names[ROLE_TYPE_EMB] ? 1 : 0, 1024, a->names[ROLE_TYPE_EMB] ? 2 : 0, path))
        goto done;
    char key[64];
    if (!find_key(o, a->keys[KEY_HEAD_DIM], key, sizeof key) && c->d_model % c->n_head) {
        err_set("%s: hidden size %d is not a multiple of the %d attention heads", path, c->d_model, c->n_head);
        goto done;
    }
    if (c->n_head % c->n_kv_head) {
        err_set("%s: %d attention heads are not a multiple of the %d key/value heads", path, c->n_head, c->n_kv_head);
        goto done;
    }
    int id = -1;
    c->sep_token_id = -1;
    if (a->stem == STEM_TOKENS) {      /* (images have no token ids) */
        if (get_id(o, "pad_token_id", c->vocab, &id, path)) goto done;
        if (get_id(o, "sep_token_id", c->vocab, &c->sep_token_id, path)) goto done;
        if (c->sep_token_id < 0 && get_id(o, "eos_token_id", c->vocab, &c->sep_token_id, path)) goto done;
    }
    c->pad_token_id = id < 0 ? 0 : id;
    double eps = a->norm == NORM_RMS ? 1e-6 : a->pre_norm ? 1e-5 : 1e-12;
    const char *eps_key = find_key(o, a->keys[KEY_EPS], key, sizeof key);
    if (eps_key && json_get_double(o, eps_key, &eps, path) < 0) goto done;
    if (!(eps > 0 && eps < 1)) { err_set("%s: \"%s\" = %g is not in (0, 1)", path, eps_key ? eps_key : "eps", eps); goto done; }
    c->ln_eps = (float)eps;
    act = a->default_act;
    const char *act_key = find_key(o, a->keys[KEY_ACT], key, sizeof key);
    if (act_key && json_get_string(o, act_key, &act, path) < 0) goto done;
    if (act_from_name(act, &c->act)) { err_set("%s: activation \"%s\" is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu, silu, quick_gelu)", path, act); goto done; }
    const char *pet = "absolute";
    if (json_get_string(o, "position_embedding_type", &pet, path) < 0) goto done;
    if (strcmp(pet, "absolute")) { err_set("%s: position_embedding_type \"%s\" is not supported (absolute)", path, pet); goto done; }
    int flag = 0;
    if (json_get_bool(o, "is_decoder", &flag, path) < 0) goto done;
    if (flag && !a->causal) { err_set("%s: is_decoder=true %s models are not supported", path, a->family); goto done; }
    /* GPT-2's attention options that change the numbers */
    flag = 1;
    if (json_get_bool(o, "scale_attn_weights", &flag, path) < 0) goto done;
    if (!flag) { err_set("%s: scale_attn_weights=false is not supported", path); goto done; }
    flag = 0;
    if (json_get_bool(o, "scale_attn_by_inverse_layer_idx", &flag, path) < 0) goto done;
    if (flag) { err_set("%s: scale_attn_by_inverse_layer_idx=true is not supported", path); goto done; }
    c->causal = a->causal;
    if (a->pos == POS_LEARNED_OFFSET) {
        c->pos_offset = c->pad_token_id + 1;
        if (c->max_pos <= c->pos_offset) { err_set("%s: max_position_embeddings too small for RoBERTa positions", path); goto done; }
    }
    if (a->pos == POS_ROPE) {
        if (c->head_dim % 2) { err_set("%s: head_dim %d is odd: rotary embeddings need pairs", path, c->head_dim); goto done; }
        if (read_rope(o, c, path)) goto done;
    }
    if (read_sliding_window(o, c, path)) goto done;
    c->json_text = text;
    text = NULL;
    rc = 0;
done:
    json_object_put(top);
    free(text);
    return rc;
}

/* ---- GGUF metadata --------------------------------------------------------------------------- */

/* <arch>.<key> as an integer in [lo, hi]: absent -> def (an error when def < lo). Appends
 * "key": value to the JSON text at *js. */
static int gguf_int(const gguf_file *g, const char *arch, const char *key, int64_t lo, int64_t hi, int def, int *out,
                    char **js, const char *js_end)
{
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    uint32_t v = 0;
    if (!gguf_find_kv(g, full)) {
        if (def < lo) return err_set("%s: missing GGUF key \"%s\"", g->path, full);
        *out = def;
        return 0;
    }
    if (gguf_get_u32(g, full, &v)) return -1;
    if (v < lo || v > hi) return err_set("%s: \"%s\" = %u is out of range [%lld, %lld]", g->path, full, v, (long long)lo, (long long)hi);
    *out = (int)v;
    *js += snprintf(*js, js_end - *js, ", \"%s\": %d", full, *out);
    return 0;
}

/* <arch>.<key> as a float: absent -> def; appended to the JSON text like gguf_int */
static int gguf_float(const gguf_file *g, const char *arch, const char *key, double def, double *out, char **js,
                      const char *js_end)
{
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    *out = def;
    if (!gguf_find_kv(g, full)) return 0;
    float f;
    if (gguf_get_f32(g, full, &f)) return -1;
    *out = f;
    *js += snprintf(*js, js_end - *js, ", \"%s\": %.9g", full, f);
    return 0;
}

/* a token id key of tokenizer.ggml (absent: -1), in [0, vocab) */
static int gguf_id(const gguf_file *g, const char *key, int vocab, int *out)
{
    uint32_t v;
    *out = -1;
    if (!gguf_find_kv(g, key)) return 0;
    if (gguf_get_u32(g, key, &v)) return -1;
    if ((int64_t)v >= vocab) return err_set("%s: \"%s\" = %u is outside the vocabulary (%d)", g->path, key, v, vocab);
    *out = (int)v;
    return 0;
}

int config_load_gguf(model_config *c, const gguf_file *g)
{
    memset(c, 0, sizeof *c);
    const char *arch;
    if (gguf_get_str(g, "general.architecture", &arch, NULL)) return -1;
    if (!(c->arch = arch_find_gguf(arch)))
        return err_set("%s: general.architecture \"%s\" is not supported (GGUF architectures: %s)", g->path, arch,
                       arch_supported_gguf());
    const arch_row *a = c->arch;
    snprintf(c->model_type, sizeof c->model_type, "%s", arch);
    char *js = xmalloc(4096), *p = js, *end = js + 4096;
    p += snprintf(p, end - p, "{\"source\": \"gguf\", \"general.architecture\": \"%s\"", arch);
    if (gguf_int(g, arch, "block_count", 1, 1024, 0, &c->n_layer, &p, end) ||
        gguf_int(g, arch, "attention.head_count", 1, 1024, 0, &c->n_head, &p, end) ||
        gguf_int(g, arch, "embedding_length", 1, 1 << 16, 0, &c->d_model, &p, end) ||
        gguf_int(g, arch, "feed_forward_length", 1, 1 << 18, 0, &c->d_ff, &p, end) ||
        gguf_int(g, arch, "context_length", 1, 1 << 24, 0, &c->max_pos, &p, end) ||
        gguf_int(g, arch, "attention.head_count_kv", 1, c->n_head, c->n_head, &c->n_kv_head, &p, end))
        goto fail;
    const gguf_tensor *emb = gguf_find_tensor(g, "token_embd.weight");
    if (gguf_int(g, arch, "vocab_size", 1, 1 << 24, emb && emb->n_dims == 2 && emb->ne[1] <= (1 << 24) ? (int)emb->ne[1] : 0,
                 &c->vocab, &p, end))
        goto fail;
    int hd_def = c->d_model % c->n_head ? 0 : c->d_model / c->n_head, vl;
    if (gguf_int(g, arch, "attention.key_length", 1, 1024, hd_def, &c->head_dim, &p, end) ||
        gguf_int(g, arch, "attention.value_length", 1, 1024, c->head_dim, &vl, &p, end))
        goto fail;
    if (vl != c->head_dim) {
        err_set("%s: %s.attention.value_length %d differs from key_length %d: not supported", g->path, arch, vl, c->head_dim);
        goto fail;
    }
    if (c->n_head % c->n_kv_head) {
        err_set("%s: %d attention heads are not a multiple of the %d key/value heads", g->path, c->n_head, c->n_kv_head);
        goto fail;
    }
    double eps;
    if (gguf_float(g, arch, a->norm == NORM_RMS ? "attention.layer_norm_rms_epsilon" : "attention.layer_norm_epsilon",
                   a->norm == NORM_RMS ? 1e-6 : 1e-5, &eps, &p, end))
        goto fail;
    if (!(eps > 0 && eps < 1)) { err_set("%s: %s norm epsilon %g is not in (0, 1)", g->path, arch, eps); goto fail; }
    c->ln_eps = (float)eps;
    /* GGUF has no activation key: llama.cpp's graph for each architecture fixes it, as the row does */
    if (act_from_name(a->default_act, &c->act)) { err_set("%s: activation \"%s\" is not supported", g->path, a->default_act); goto fail; }
    c->causal = a->causal;
    if (a->pos == POS_ROPE) {
        int rd;
        if (gguf_float(g, arch, "rope.freq_base", 10000.0, &c->rope_theta, &p, end) ||
            gguf_int(g, arch, "rope.dimension_count", 1, 1024, c->head_dim, &rd, &p, end))
            goto fail;
        if (rd != c->head_dim || c->head_dim % 2) {
            err_set("%s: %s.rope.dimension_count %d with head_dim %d: partial rotary embeddings are not supported", g->path,
                    arch, rd, c->head_dim);
            goto fail;
        }
        if (!(c->rope_theta > 1 && c->rope_theta < 1e12)) { err_set("%s: %s.rope.freq_base %g is not in (1, 1e12)", g->path, arch, c->rope_theta); goto fail; }
        c->rope_type = ROPE_DEFAULT;
        c->rope_factor = 1.0;
        char key[128];
        snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
        const char *st = "none";
        if (gguf_find_kv(g, key) && gguf_get_str(g, key, &st, NULL)) goto fail;
        if (!strcmp(st, "linear")) {
            c->rope_type = ROPE_LINEAR;
            if (gguf_float(g, arch, "rope.scaling.factor", 1.0, &c->rope_factor, &p, end)) goto fail;
            if (!(c->rope_factor >= 1.0 && c->rope_factor < 1e6)) { err_set("%s: %s.rope.scaling.factor %g is not in [1, 1e6)", g->path, arch, c->rope_factor); goto fail; }
            p += snprintf(p, end - p, ", \"%s\": \"linear\"", key);
        } else if (strcmp(st, "none")) {
            err_set("%s: %s \"%s\" is not supported (none, linear)", g->path, key, st);
            goto fail;
        }
        /* llama3-style scaling: the converter writes per-frequency factors as a tensor instead */
        const gguf_tensor *rf = gguf_find_tensor(g, "rope_freqs.weight");
        if (rf) {
            const int half = c->head_dim / 2;
            if (rf->n_dims != 1 || rf->ne[0] != half) {
                err_set("%s: tensor \"rope_freqs.weight\" has %lld values, head_dim %d implies %d", g->path,
                        (long long)rf->numel, c->head_dim, half);
                goto fail;
            }
            c->rope_freq_div = xmalloc(half * sizeof(float));
            if (gguf_tensor_f32(g, "rope_freqs.weight", c->rope_freq_div, half)) goto fail;
            for (int i = 0; i < half; i++)
                if (!(c->rope_freq_div[i] >= 1e-6f && c->rope_freq_div[i] <= 1e6f)) {
                    err_set("%s: rope_freqs.weight[%d] = %g is not in [1e-6, 1e6]", g->path, i, c->rope_freq_div[i]);
                    goto fail;
                }
            p += snprintf(p, end - p, ", \"rope_freqs.weight\": \"%d factors\"", half);
        }
    }
    int id;
    if (gguf_id(g, "tokenizer.ggml.padding_token_id", c->vocab, &id)) goto fail;
    c->pad_token_id = id < 0 ? 0 : id;
    if (gguf_id(g, "tokenizer.ggml.eos_token_id", c->vocab, &c->sep_token_id)) goto fail;
    snprintf(p, end - p, "}");
    c->json_text = js;
    return 0;
fail:
    free(js);
    config_free(c);
    return -1;
}

void config_rope_inv_freq(const model_config *c, int T, float *inv_freq)
{
    const int D = c->head_dim;
    double base = c->rope_theta;
    if (c->rope_type == ROPE_DYNAMIC && T > c->max_pos)
        base *= pow(c->rope_factor * T / c->max_pos - (c->rope_factor - 1), (double)D / (D - 2));
    for (int i = 0; i < D / 2; i++) {
        /* torch: 1 / base ** (arange(0, D, 2).float() / D), in float32 */
        float f = (float)(1.0 / pow(base, (double)(float)(2.0f * i / D)));
        if (c->rope_type == ROPE_LINEAR) f = (float)(f / c->rope_factor);
        if (c->rope_freq_div) f /= c->rope_freq_div[i];
        if (c->rope_type == ROPE_LLAMA3) {
            const double old = c->rope_orig_max_pos, lo = old / c->rope_low_freq, hi = old / c->rope_high_freq;
            const double wavelen = 2 * M_PI / f;
            if (wavelen > lo) f = (float)(f / c->rope_factor);
            else if (wavelen >= hi) {
                const double s = (old / wavelen - c->rope_low_freq) / (c->rope_high_freq - c->rope_low_freq);
                f = (float)((1 - s) * f / c->rope_factor + s * f);
            }
        }
        inv_freq[i] = f;
    }
}

void config_free(model_config *c)
{
    free(c->json_text);
    c->json_text = NULL;
    free(c->rope_freq_div);
    c->rope_freq_div = NULL;
    free(c->sliding_window);
    c->sliding_window = NULL;
}
