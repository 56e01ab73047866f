/* cnn_load.c — see cnn.h: ResNetConfig from config.json, validated key by key, and the weights by
 * Hugging Face's module names with every batch norm folded into the convolution before it. */
#include "cnn.h"
#include "jsonutil.h"
#include "model.h"
#include "safetensors.h"
#include "util.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

int cnn_is_cnn(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_object *o = json_parse_file(path, 1 << 24);
    const char *mt = NULL;
    const int yes = o && json_object_is_type(o, json_type_object) && json_get_string(o, "model_type", &mt, path) == 1 &&
                    !strcmp(mt, "resnet");
    if (o) json_object_put(o);
    return yes;
}

/* an integer list under key of 1..CNN_MAX_STAGES entries, each in [lo, hi] */
static int int_list(json_object *o, const char *key, int lo, int hi, int *out, int *n, const char *path)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !v) return err_set("%s: missing \"%s\"", path, key);
    if (!json_object_is_type(v, json_type_array)) return err_set("%s: \"%s\" is not a list", path, key);
    const size_t k = json_object_array_length(v);
    if (k < 1 || k > CNN_MAX_STAGES) return err_set("%s: \"%s\" has %zu entries, attnscope takes 1 to %d", path, key, k, CNN_MAX_STAGES);
    for (size_t i = 0; i < k; i++) {
        json_object *e = json_object_array_get_idx(v, i);
        if (!json_object_is_type(e, json_type_int)) return err_set("%s: \"%s\"[%zu] is not an integer", path, key, i);
        const int64_t x = json_object_get_int64(e);
        if (x < lo || x > hi) return err_set("%s: \"%s\"[%zu] = %lld is out of range [%d, %d]", path, key, i, (long long)x, lo, hi);
        out[i] = (int)x;
    }
    *n = (int)k;
    return 0;
}

static int int_key(json_object *o, const char *key, int lo, int hi, int def, int *out, const char *path)
{
    int64_t v;
    const int r = json_get_int(o, key, &v, path);
    if (r < 0) return -1;
    if (r == 0) { *out = def; return 0; }
    if (v < lo || v > hi) return err_set("%s: \"%s\" = %lld is out of range [%d, %d]", path, key, (long long)v, lo, hi);
    *out = (int)v;
    return 0;
}

static int bool_key(json_object *o, const char *key, int *out, const char *path)
{
    *out = 0;
    return json_get_bool(o, key, out, path) < 0 ? -1 : 0;
}

int cnn_config_load(cnn_config *c, const char *dir)
{
    memset(c, 0, sizeof *c);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text;
    json_object *o = json_load_object(path, 1 << 24, &text);
    if (!o) return -1;
    int rc = -1, nd = 0;
    const char *mt = NULL, *lt = "bottleneck", *act = "relu";
    if (json_get_string(o, "model_type", &mt, path) != 1 || strcmp(mt, "resnet")) {
        err_set("%s: \"model_type\" is not \"resnet\"", path);
        goto done;
    }
    /* ResNetConfig's defaults where a key is absent */
    if (int_key(o, "num_channels", 1, 64, 3, &c->num_channels, path) ||
        int_key(o, "embedding_size", 1, 1 << 16, 64, &c->embedding_size, path) ||
        int_list(o, "hidden_sizes", 1, 1 << 16, c->hidden_sizes, &c->n_stages, path) ||
        int_list(o, "depths", 1, 1024, c->depths, &nd, path) ||
        json_get_string(o, "layer_type", &lt, path) < 0 || json_get_string(o, "hidden_act", &act, path) < 0 ||
        bool_key(o, "downsample_in_first_stage", &c->downsample_in_first_stage, path) ||
        bool_key(o, "downsample_in_bottleneck", &c->downsample_in_bottleneck, path))
        goto done;
    if (nd != c->n_stages) { err_set("%s: \"depths\" has %d entries, \"hidden_sizes\" %d: one per stage", path, nd, c->n_stages); goto done; }
    if (!strcmp(lt, "basic")) c->bottleneck = 0;
    else if (!strcmp(lt, "bottleneck")) c->bottleneck = 1;
    else { err_set("%s: \"layer_type\" = \"%s\": attnscope takes basic or bottleneck", path, lt); goto done; }
    if (strcmp(act, "relu")) { err_set("%s: \"hidden_act\" = \"%s\": attnscope's ResNet takes relu only", path, act); goto done; }
    for (int s = 0; c->bottleneck && s < c->n_stages; s++)
        if (c->hidden_sizes[s] < 4) {   /* the bottleneck reduces to hidden_size / 4 channels */
            err_set("%s: \"hidden_sizes\"[%d] = %d: a bottleneck stage needs at least 4 channels", path, s, c->hidden_sizes[s]);
            goto done;
        }
    c->json_text = text;
    text = NULL;
    rc = 0;
done:
    json_object_put(o);
    free(text);
    return rc;
}

void cnn_config_free(cnn_config *c)
{
    free(c->json_text);
    memset(c, 0, sizeof *c);
}

/* A tensor of exactly the given shape (nd dims) as float32 into host, checked for non-finite values
 * (model_check_finite). 0, or -1 with err_set(). */
static int read_exact(const st_model *st, const char *name, int nd, const int64_t *shape, float *host, const char *dir)
{
    const st_tensor *t = st_find(st, name);
    if (!t) return err_set("%s: missing tensor \"%s\"", dir, name);
    int ok = t->ndim == nd;
    for (int i = 0; ok && i < nd; i++) ok = t->shape[i] == shape[i];
    if (!ok) {
        char got[160] = "", want[160] = "";
        for (int i = 0, k = 0; i < t->ndim && i < 8; i++) k += snprintf(got + k, sizeof got - k, i ? ", %lld" : "%lld", (long long)t->shape[i]);
        for (int i = 0, k = 0; i < nd; i++) k += snprintf(want + k, sizeof want - k, i ? ", %lld" : "%lld", (long long)shape[i]);
        return err_set("%s: tensor \"%s\" has shape [%s], config.json implies [%s]", st->paths[t->file], name, got, want);
    }
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)shape[i];
    return st_to_f32(t, host) || model_check_finite(st->paths[t->file], name, host, n) ? -1 : 0;
}

static float *upload_owned(cnn_model *m, const float *host, size_t n, const char *dir, const char *name)
{
    float *dev = m->be->alloc(m->be, n * sizeof(float));
    if (!dev) { err_set("%s: out of %s memory loading \"%s\"", dir, m->be->name, name); return NULL; }
    m->be->upload(m->be, dev, host, n * sizeof(float));
    m->owned = xrealloc(m->owned, (m->n_owned + 1) * sizeof(void *));
    m->owned[m->n_owned++] = dev;
    return dev;
}

/* The conv module at base ("<prefix>...convolution.weight" and ".normalization.*") with its batch
 * norm folded in (cnn.h). 0, or -1 with err_set(). */
static int load_conv(cnn_model *m, const st_model *st, const char *dir, const char *base, const char *conv, const char *norm,
                     int cin, int cout, int k, int stride, cnn_conv *cv)
{
    *cv = (cnn_conv){.cin = cin, .cout = cout, .k = k, .stride = stride, .pad = k / 2};
    const size_t K = (size_t)cin * k * k;
    float *w = xmalloc((size_t)cout * K * sizeof(float)), *v[4];
    for (int i = 0; i < 4; i++) v[i] = xmalloc((size_t)cout * sizeof(float));
    static const char *const bn[4] = {"weight", "bias", "running_mean", "running_var"};
    char name[320];
    int rc = 0;
    const int64_t wshape[4] = {cout, cin, k, k}, cshape[1] = {cout};
    snprintf(name, sizeof name, "%s%s%s.weight", m->weight_prefix, base, conv);
    rc = read_exact(st, name, 4, wshape, w, dir);
    for (int i = 0; i < 4 && !rc; i++) {
        snprintf(name, sizeof name, "%s%s%s.%s", m->weight_prefix, base, norm, bn[i]);
        rc = read_exact(st, name, 1, cshape, v[i], dir);
    }
    for (int o = 0; o < cout && !rc; o++)
        if (!(v[3][o] >= 0) || !isfinite(v[3][o]))
            rc = err_set("%s: \"%s%s%s.running_var\"[%d] = %g: a variance must be finite and >= 0", dir, m->weight_prefix, base, norm, o,
                         v[3][o]);
    if (!rc) {
        /* fold: w' = w·γ/√(var + ε), b' = β − mean·γ/√(var + ε), ε = 1e-5 (BatchNorm2d's default) */
        for (int o = 0; o < cout; o++) {
            const double s = (double)v[0][o] / sqrt((double)v[3][o] + 1e-5);
            for (size_t j = 0; j < K; j++) w[o * K + j] = (float)(w[o * K + j] * s);
            v[1][o] = (float)(v[1][o] - v[2][o] * s);
        }
        snprintf(name, sizeof name, "%s%s%s", m->weight_prefix, base, conv);
        if (!(cv->w = upload_owned(m, w, (size_t)cout * K, dir, name)) || !(cv->b = upload_owned(m, v[1], cout, dir, name))) rc = -1;
    }
    free(w);
    for (int i = 0; i < 4; i++) free(v[i]);
    return rc;
}

/* One residual layer of stage s (layer l inside it) from cin to cout channels with stride. */
static int load_layer(cnn_model *m, const st_model *st, const char *dir, int s, int l, int cin, int cout, int stride, cnn_layer *ly)
{
    const cnn_config *c = &m->cfg;
    char base[160];
    memset(ly, 0, sizeof *ly);
    if (cin != cout || stride != 1) {
        snprintf(base, sizeof base, "encoder.stages.%d.layers.%d.shortcut.", s, l);
        if (load_conv(m, st, dir, base, "convolution", "normalization", cin, cout, 1, stride, &ly->shortcut)) return -1;
    }
    /* branch convolutions: (cin, cout, k, stride) each */
    int spec[3][4], n;
    if (!c->bottleneck) {
        n = 2;
        memcpy(spec, (int[3][4]){{cin, cout, 3, stride}, {cout, cout, 3, 1}, {0}}, sizeof spec);
    } else {
        const int r = cout / 4, s0 = c->downsample_in_bottleneck ? stride : 1, s1 = c->downsample_in_bottleneck ? 1 : stride;
        n = 3;
        memcpy(spec, (int[3][4]){{cin, r, 1, s0}, {r, r, 3, s1}, {r, cout, 1, 1}}, sizeof spec);
    }
    ly->n_conv = n;
    for (int i = 0; i < n; i++) {
        snprintf(base, sizeof base, "encoder.stages.%d.layers.%d.layer.%d.", s, l, i);
        if (load_conv(m, st, dir, base, "convolution", "normalization", spec[i][0], spec[i][1], spec[i][2], spec[i][3], &ly->conv[i]))
            return -1;
    }
    return 0;
}

int cnn_load(cnn_model *m, const char *dir, backend *be)
{
    memset(m, 0, sizeof *m);
    m->be = be;
    if (cnn_config_load(&m->cfg, dir)) return -1;
    const cnn_config *c = &m->cfg;
    st_model st;
    memset(&st, 0, sizeof st);
    if (st_open_dir(&st, dir)) { cnn_config_free(&m->cfg); return -1; }
    m->n_weight_files = st.nfiles;
    m->weight_files = xcalloc(st.nfiles, sizeof(char *));
    for (int i = 0; i < st.nfiles; i++) m->weight_files[i] = xstrdup(st.paths[i]);
    static const char *const prefixes[] = {"", "resnet."};
    const char *first = "embedder.embedder.convolution.weight";
    int found = 0;
    for (int i = 0; i < 2 && !found; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s%s", prefixes[i], first);
        if (st_find(&st, name)) { snprintf(m->weight_prefix, sizeof m->weight_prefix, "%s", prefixes[i]); found = 1; }
    }
    if (!found) { err_set("%s: no tensor \"%s\" (nor \"resnet.%s\"): not a ResNet checkpoint", dir, first, first); goto fail; }
    if (load_conv(m, &st, dir, "embedder.embedder.", "convolution", "normalization", c->num_channels, c->embedding_size, 7, 2, &m->stem))
        goto fail;
    for (int s = 0; s < c->n_stages; s++) m->n_layers += c->depths[s];
    m->layers = xcalloc(m->n_layers, sizeof *m->layers);
    for (int s = 0, at = 0; s < c->n_stages; s++) {
        const int cin = s ? c->hidden_sizes[s - 1] : c->embedding_size, cout = c->hidden_sizes[s];
        const int stride = s == 0 && !c->downsample_in_first_stage ? 1 : 2;
        for (int l = 0; l < c->depths[s]; l++, at++)
            if (load_layer(m, &st, dir, s, l, l ? cout : cin, cout, l ? 1 : stride, &m->layers[at])) goto fail;
    }
    st_close(&st);
    return 0;
fail:
    st_close(&st);
    cnn_free(m);
    return -1;
}

void cnn_free(cnn_model *m)
{
    if (m->be) {
        for (int i = 0; i < m->n_owned; i++) m->be->free(m->be, m->owned[i]);
        if (m->dcol) m->be->free(m->be, m->dcol);
        for (int i = 0; i < 4; i++)
            if (m->act[i]) m->be->free(m->be, m->act[i]);
    }
    free(m->owned);
    free(m->layers);
    for (int i = 0; i < m->n_weight_files; i++) free(m->weight_files[i]);
    free(m->weight_files);
    cnn_config_free(&m->cfg);
    memset(m, 0, sizeof *m);
}
