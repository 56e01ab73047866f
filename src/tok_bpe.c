/* tok_bpe.c — the BPE model of HF `tokenizers` (models/bpe), merge for merge.
 *
 * A pre-token becomes one symbol per character (continuing_subword_prefix on all but the first,
 * end_of_word_suffix on the last); a character missing from the vocabulary becomes its
 * "<0xXX>" byte tokens under byte_fallback, else the unknown token (consecutive ones fused under
 * fuse_unk). The symbols form a linked list; every adjacent pair with a merge goes into a
 * min-heap by (rank, position); the top is merged unless it went stale (its symbol removed, or
 * its pair no longer the one queued), and the new pairs with both neighbours are queued: HF's
 * Word::merge_all, so O(n log n) per word instead of rescanning all pairs after each merge.
 * ignore_merges: a pre-token found whole in the vocabulary is that token. dropout is refused.
 *
 * Word cache: pre-tokens up to BPE_CACHE_WORD bytes and their ids are kept, up to
 * BPE_CACHE_MAX words (then no more are added, as HF's cache). It is the one mutable part of a
 * loaded tokenizer, so it has a mutex; a thread that finds it locked computes the word instead
 * of waiting. */
#include "tok_int.h"
#include "jsonutil.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BPE_CACHE_WORD 64
#define BPE_CACHE_MAX  (1 << 16)

struct bpe_cache {
    pthread_mutex_t mu;
    uint32_t mask;
    int n;
    struct cache_entry { uint64_t h; char *word; int len, n_ids; int32_t *ids; } *slot;
};

static uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1; }
static uint32_t key_slot(uint64_t k, uint32_t mask) { return (uint32_t)((k * 0x9E3779B97F4A7C15ull) >> 32) & mask; }

static const bpe_merge *merge_find(const tokenizer *t, int32_t a, int32_t b)
{
    uint64_t k = pair_key(a, b);
    for (uint32_t h = key_slot(k, t->merge_mask);; h = (h + 1) & t->merge_mask) {
        const bpe_merge *m = &t->merges[h];
        if (m->key == k) return m;
        if (!m->key) return NULL;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Encoding */

typedef struct { int32_t rank, pos, id; } heap_item;
typedef struct {
    int32_t *c, *len, *prev, *next;  /* [cap] the symbols: id, bytes, linked list (-1 ends) */
    heap_item *heap;                 /* [3 cap]: each merge pops one entry and pushes at most two */
    size_t cap;
} bpe_work;

void bpe_scratch_free(void *p)
{
    bpe_work *w = p;
    if (!w) return;
    free(w->c); free(w->len); free(w->prev); free(w->next); free(w->heap);
    free(w);
}

static int heap_less(const heap_item *a, const heap_item *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(heap_item *h, size_t *n, heap_item x)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&x, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static heap_item heap_pop(heap_item *h, size_t *n)
{
    heap_item top = h[0], x = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const heap_item *best = &x;
        if (l < *n && heap_less(&h[l], best)) { m = l; best = &h[l]; }
        if (r < *n && heap_less(&h[r], best)) { m = r; }
        if (m == i) break;
        h[i] = h[m];
        i = m;
    }
    if (*n) h[i] = x;
    return top;
}

static int cache_get(const tokenizer *t, const char *w, size_t n, uint64_t h, id_buf *ids)
{
    bpe_cache *c = t->cache;
    if (pthread_mutex_trylock(&c->mu)) return 0;
    int found = 0;
    for (uint32_t i = (uint32_t)h & c->mask;; i = (i + 1) & c->mask) {
        struct cache_entry *e = &c->slot[i];
        if (!e->word) break;
        if (e->h == h && (size_t)e->len == n && !memcmp(e->word, w, n)) {
            for (int k = 0; k < e->n_ids; k++) id_push(ids, e->ids[k]);
            found = 1;
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return found;
}

static void cache_put(const tokenizer *t, const char *w, size_t n, uint64_t h, const int32_t *ids, int n_ids)
{
    bpe_cache *c = t->cache;
    if (pthread_mutex_trylock(&c->mu)) return;
    if (c->n < BPE_CACHE_MAX) {
        uint32_t i = (uint32_t)h & c->mask;
        while (c->slot[i].word && !(c->slot[i].h == h && (size_t)c->slot[i].len == n && !memcmp(c->slot[i].word, w, n)))
            i = (i + 1) & c->mask;
        struct cache_entry *e = &c->slot[i];
        if (!e->word) {
            e->word = xmalloc(n);
            memcpy(e->word, w, n);
            e->ids = xmalloc((size_t)n_ids * sizeof *ids + 1);
            if (n_ids) memcpy(e->ids, ids, (size_t)n_ids * sizeof *ids);
            e->h = h; e->len = (int)n; e->n_ids = n_ids;
            c->n++;
        }
    }
    pthread_mutex_unlock(&c->mu);
}

static void add_symbol(bpe_work *w, size_t *n, int32_t id, int32_t len)
{
    if (*n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 64;
        w->c = xrealloc(w->c, w->cap * sizeof *w->c); w->len = xrealloc(w->len, w->cap * sizeof *w->len);
        w->prev = xrealloc(w->prev, w->cap * sizeof *w->prev); w->next = xrealloc(w->next, w->cap * sizeof *w->next);
        w->heap = xrealloc(w->heap, 3 * w->cap * sizeof *w->heap);
    }
    size_t i = (*n)++;
    w->c[i] = id; w->len[i] = len;
    w->prev[i] = (int32_t)i - 1; w->next[i] = -1;
    if (i) w->next[i - 1] = (int32_t)i;
}

void bpe_encode(const tokenizer *t, const char *word, size_t n, scratch *s)
{
    if (t->ignore_merges) {
        int32_t id = vocab_find(t, word, n);
        if (id >= 0) { id_push(&s->ids, id); return; }
    }
    uint64_t h = 0;
    if (n <= BPE_CACHE_WORD) {
        h = tok_hash_bytes(word, n);
        if (cache_get(t, word, n, h, &s->ids)) return;
    }
    if (!s->bpe) s->bpe = xcalloc(1, sizeof(bpe_work));
    bpe_work *w = s->bpe;
    size_t ns = 0;
    int32_t unk = -1, unk_len = 0;  /* a pending unknown token */
    byte_buf *key = &s->key;
    for (size_t i = 0; i < n;) {
        size_t k = 1;
        while (i + k < n && (word[i + k] & 0xC0) == 0x80) k++;
        const char *piece = word + i;
        size_t plen = k;
        int first = i == 0, last = i + k == n;
        if ((!first && t->prefix_len) || (last && t->suffix_len)) {
            key->n = 0;
            if (!first) byte_append(key, t->prefix, (size_t)t->prefix_len);
            byte_append(key, word + i, k);
            if (last) byte_append(key, t->suffix, (size_t)t->suffix_len);
            piece = key->v;
            plen = key->n;
        }
        int32_t id = vocab_find(t, piece, plen);
        if (id >= 0) {
            if (unk >= 0) { add_symbol(w, &ns, unk, unk_len); unk = -1; }
            add_symbol(w, &ns, id, (int32_t)k);
        } else {
            int all = t->byte_fallback;
            for (size_t j = 0; all && j < plen; j++) all = t->byte_id[(unsigned char)piece[j]] >= 0;
            if (all) {
                /* HF adds these before a pending unknown token: kept */
                for (size_t j = 0; j < plen; j++) add_symbol(w, &ns, t->byte_id[(unsigned char)piece[j]], 1);
            } else if (t->unk_id >= 0) {
                if (unk >= 0 && t->fuse_unk) unk_len += (int32_t)k;
                else {
                    if (unk >= 0) add_symbol(w, &ns, unk, unk_len);
                    unk = t->unk_id;
                    unk_len = (int32_t)k;
                }
            }
        }
        i += k;
    }
    if (unk >= 0) add_symbol(w, &ns, unk, unk_len);

    size_t nh = 0;
    for (size_t i = 0; i + 1 < ns; i++) {
        const bpe_merge *m = merge_find(t, w->c[i], w->c[i + 1]);
        if (m) heap_push(w->heap, &nh, (heap_item){m->rank, (int32_t)i, m->id});
    }
    while (nh) {
        heap_item top = heap_pop(w->heap, &nh);
        int32_t p = top.pos;
        if (w->len[p] == 0 || w->next[p] < 0) continue;
        int32_t r = w->next[p];
        const bpe_merge *m = merge_find(t, w->c[p], w->c[r]);
        if (!m || m->id != top.id) continue; /* stale */
        w->c[p] = top.id;
        w->len[p] += w->len[r];
        w->next[p] = w->next[r];
        w->len[r] = 0;
        if (w->next[r] >= 0) w->prev[w->next[r]] = p;
        if (w->prev[p] >= 0 && (m = merge_find(t, w->c[w->prev[p]], w->c[p])))
            heap_push(w->heap, &nh, (heap_item){m->rank, w->prev[p], m->id});
        if (w->next[p] >= 0 && (m = merge_find(t, w->c[p], w->c[w->next[p]])))
            heap_push(w->heap, &nh, (heap_item){m->rank, p, m->id});
    }
    size_t mark = s->ids.n;
    for (int32_t i = ns ? 0 : -1; i >= 0; i = w->next[i]) id_push(&s->ids, w->c[i]);
    /* an empty word may leave ids without a buffer: no pointer arithmetic on NULL */
    if (n <= BPE_CACHE_WORD) cache_put(t, word, n, h, s->ids.n > mark ? s->ids.v + mark : NULL, (int)(s->ids.n - mark));
}

/* ---------------------------------------------------------------------------------------------
 * Loading */

int bpe_merge_add(tokenizer *t, const char *a, size_t la, const char *b, size_t lb, int32_t rank, const char *path)
{
    int32_t ia = vocab_find(t, a, la), ib = vocab_find(t, b, lb);
    if (ia < 0 || ib < 0)
        return err_set("%s: merge %d (\"%.*s\" \"%.*s\"): \"%.*s\" is not in the vocabulary", path, rank + 1, (int)la, a, (int)lb, b,
                       ia < 0 ? (int)la : (int)lb, ia < 0 ? a : b);
    size_t skip = (size_t)t->prefix_len <= lb ? (size_t)t->prefix_len : lb;
    char buf[1024];
    if (la + lb - skip > sizeof buf) return err_set("%s: merge %d is longer than %zu bytes", path, rank + 1, sizeof buf);
    memcpy(buf, a, la);
    memcpy(buf + la, b + skip, lb - skip);
    int32_t id = vocab_find(t, buf, la + lb - skip);
    if (id < 0) return err_set("%s: merge %d: the merged token \"%.*s\" is not in the vocabulary", path, rank + 1, (int)(la + lb - skip), buf);
    if (!t->merges || (uint32_t)t->n_merges * 2 >= t->merge_mask) {
        uint32_t cap = t->merges ? 2 * (t->merge_mask + 1) : 1024;
        bpe_merge *old = t->merges;
        uint32_t old_cap = old ? t->merge_mask + 1 : 0;
        t->merges = xcalloc(cap, sizeof *t->merges);
        t->merge_mask = cap - 1;
        for (uint32_t i = 0; i < old_cap; i++) {
            if (!old[i].key) continue;
            uint32_t h = key_slot(old[i].key, t->merge_mask);
            while (t->merges[h].key) h = (h + 1) & t->merge_mask;
            t->merges[h] = old[i];
        }
        free(old);
    }
    uint64_t k = pair_key(ia, ib);
    uint32_t h = key_slot(k, t->merge_mask);
    while (t->merges[h].key && t->merges[h].key != k) h = (h + 1) & t->merge_mask;
    if (!t->merges[h].key) t->n_merges++;
    t->merges[h] = (bpe_merge){k, rank, id}; /* a repeated pair: the later rank wins, as HF's HashMap */
    return 0;
}

int bpe_merges_from_json(tokenizer *t, json_object *merges, const char *path)
{
    if (!merges || !json_object_is_type(merges, json_type_array)) return err_set("%s: model BPE has no \"merges\" array", path);
    size_t n = json_object_array_length(merges);
    if (n >= (1u << 26)) return err_set("%s: %zu merges", path, n);
    int32_t rank = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *m = json_object_array_get_idx(merges, i);
        if (json_object_is_type(m, json_type_string)) { /* "a b" (files before tokenizers 0.20) */
            const char *s = json_object_get_string(m);
            if (!strncmp(s, "#version", 8)) continue;
            const char *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' ')) return err_set("%s: merges[%zu] \"%s\" should be two tokens separated by one space", path, i, s);
            if (bpe_merge_add(t, s, (size_t)(sp - s), sp + 1, strlen(sp + 1), rank++, path)) return -1;
        } else if (json_object_is_type(m, json_type_array) && json_object_array_length(m) == 2 &&
                   json_object_is_type(json_object_array_get_idx(m, 0), json_type_string) &&
                   json_object_is_type(json_object_array_get_idx(m, 1), json_type_string)) {
            json_object *a = json_object_array_get_idx(m, 0), *b = json_object_array_get_idx(m, 1);
            if (bpe_merge_add(t, json_object_get_string(a), (size_t)json_object_get_string_len(a), json_object_get_string(b),
                          (size_t)json_object_get_string_len(b), rank++, path))
                return -1;
        } else {
            return err_set("%s: merges[%zu] should be \"a b\" or [\"a\", \"b\"]", path, i);
        }
    }
    return 0;
}

int bpe_merges_from_text(tokenizer *t, char *text, size_t n, const char *path)
{
    int32_t rank = 0;
    size_t line = 0;
    for (char *s = text; s < text + n;) {
        char *nl = memchr(s, '\n', (size_t)(text + n - s)), *e = nl ? nl : text + n;
        line++;
        if (e > s && e[-1] == '\r') e--;
        if (e > s && strncmp(s, "#version", 8)) {
            char *sp = memchr(s, ' ', (size_t)(e - s));
            if (!sp || memchr(sp + 1, ' ', (size_t)(e - sp - 1)))
                return err_set("%s:%zu: a merge should be two tokens separated by one space", path, line);
            if (bpe_merge_add(t, s, (size_t)(sp - s), sp + 1, (size_t)(e - sp - 1), rank++, path)) return -1;
        }
        s = nl ? nl + 1 : text + n;
    }
    return 0;
}

int bpe_finish(tokenizer *t, const char *path)
{
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_id[b] = vocab_find(t, name, 6);
    }
    if (!t->merges) { t->merges = xcalloc(16, sizeof *t->merges); t->merge_mask = 15; }
    t->cache = xcalloc(1, sizeof *t->cache);
    pthread_mutex_init(&t->cache->mu, NULL);
    t->cache->mask = 2 * BPE_CACHE_MAX - 1;
    t->cache->slot = xcalloc(2 * BPE_CACHE_MAX, sizeof *t->cache->slot);
    (void)path;
    return 0;
}

void bpe_free(tokenizer *t)
{
    free(t->merges);
    if (t->cache) {
        for (uint32_t i = 0; i <= t->cache->mask; i++) { free(t->cache->slot[i].word); free(t->cache->slot[i].ids); }
        free(t->cache->slot);
        pthread_mutex_destroy(&t->cache->mu);
        free(t->cache);
    }
}
