/* probe.c — see probe.h. The random ids come from splitmix64 (Steele et al. 2014), one stream per
 * sample seeded from (seed, sample index), drawn without modulo bias by rejection. */
#include "probe.h"
#include "jsonutil.h"
#include "util.h"
#include <string.h>

const char *const probe_names[PROBE_N] = {"previous_token_score", "duplicate_token_score", "induction_score"};
const char *const probe_defs[PROBE_N] = {
    "mean over query rows i = 1..T-1 of p_{i,i-1}: attention to the previous token (TransformerLens previous_token_head)",
    "mean over the second repeat's query rows i = b+K..b+2K-1 of p_{i,i-K}: attention to the earlier copy of the "
    "current token (TransformerLens duplicate_token_head)",
    "mean over the second repeat's query rows i = b+K..b+2K-1 of p_{i,i-K+1}: attention to the token after the earlier "
    "copy of the current token (Olsson et al. 2022; TransformerLens induction_head)"};

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [0, n) */
static uint64_t draw(uint64_t *s, uint64_t n)
{
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do r = splitmix64(s); while (r >= limit);
    return r % n;
}

static int config_id(json_object *o, const char *key, int vocab)
{
    json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || !v) return -1;
    if (json_object_is_type(v, json_type_array)) v = json_object_array_length(v) ? json_object_array_get_idx(v, 0) : NULL;
    if (!v || !json_object_is_type(v, json_type_int)) return -1;
    int64_t x = json_object_get_int64(v);
    return x >= 0 && x < vocab ? (int)x : -1;
}

int probe_init(probe_params *pp, int K, int64_t N, uint64_t seed, const model_config *c, const tokenizer *tok)
{
    memset(pp, 0, sizeof *pp);
    pp->K = K; pp->N = N; pp->seed = seed;
    const int vocab = c->vocab;
    json_object *o = c->json_text ? json_parse_text(c->json_text, strlen(c->json_text), "config.json") : NULL;
    int special[9] = {config_id(o, "bos_token_id", vocab), config_id(o, "eos_token_id", vocab), config_id(o, "pad_token_id", vocab),
                      c->sep_token_id, c->pad_token_id, tok ? tok_cls_id(tok) : -1, tok ? tok_sep_id(tok) : -1,
                      tok ? tok_pad_id(tok) : -1, -1};
    if (o) json_object_put(o);
    pp->bos = special[0] >= 0 ? special[0] : special[5];
    uint8_t *bad = xcalloc(vocab, 1);
    for (int i = 0; i < 9; i++)
        if (special[i] >= 0 && special[i] < vocab) bad[special[i]] = 1;
    pp->allowed = xmalloc(vocab * sizeof(int32_t));
    for (int id = 0; id < vocab; id++)
        if (!bad[id]) pp->allowed[pp->n_allowed++] = id;
    free(bad);
    if (pp->n_allowed < 1) { probe_free(pp); return err_set("the probe: every id of the vocabulary (%d) is a special token", vocab); }
    return 0;
}

void probe_free(probe_params *pp)
{
    free(pp->allowed);
    pp->allowed = NULL;
}

int probe_dataset(dataset *d, const probe_params *pp, int rank, int nranks)
{
    memset(d, 0, sizeof *d);
    const int b = pp->bos >= 0, K = pp->K, T = b + 2 * K;
    d->n_total = pp->N;
    d->first = pp->N * rank / nranks;
    d->n = (int)(pp->N * (rank + 1) / nranks - d->first);
    d->max_len = T;
    d->off = xmalloc((d->n + 1) * sizeof(int64_t));
    d->ids = xmalloc(((size_t)d->n * T + 1) * sizeof(int32_t));
    d->len = xmalloc((d->n + 1) * sizeof(int));
    d->len_full = xmalloc((d->n + 1) * sizeof(int));
    d->source_row = xmalloc((d->n + 1) * sizeof(int64_t));
    for (int i = 0; i < d->n; i++) {
        const int64_t g = d->first + i;
        uint64_t s = pp->seed ^ ((uint64_t)(g + 1) * 0xD1B54A32D192ED03ull);
        int32_t *x = d->ids + (size_t)i * T;
        if (b) x[0] = pp->bos;
        for (int t = 0; t < K; t++) x[b + t] = x[b + K + t] = pp->allowed[draw(&s, (uint64_t)pp->n_allowed)];
        d->off[i] = (int64_t)i * T;
        d->len[i] = d->len_full[i] = T;
        d->source_row[i] = g;
    }
    d->off[d->n] = (int64_t)d->n * T;
    return 0;
}

void probe_head(const float *P, int K, int b, float out[PROBE_N])
{
    const int T = b + 2 * K;
    double prev = 0, dup = 0, ind = 0;
    for (int i = 1; i < T; i++) prev += P[(size_t)i * T + i - 1];
    for (int i = b + K; i < T; i++) {
        dup += P[(size_t)i * T + i - K];
        ind += P[(size_t)i * T + i - K + 1];
    }
    out[PROBE_PREV] = T > 1 ? (float)(prev / (T - 1)) : 0.0f;
    out[PROBE_DUP] = K > 0 ? (float)(dup / K) : 0.0f;
    out[PROBE_IND] = K > 0 ? (float)(ind / K) : 0.0f;
}
