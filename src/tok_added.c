/* tok_added.c — added tokens, as HF's AddedVocabulary: their ids, their index, and splitting
 * them out of a text. Those with normalized=false (the specials: "[MASK]" or "<|endoftext|>"
 * typed in a sentence) are found in the raw text before normalization, the others in the
 * normalized text; leftmost-longest, honouring single_word/lstrip/rstrip. */
#include "tok_int.h"
#include "tokunicode.h"
#include "util.h"
#include <stdlib.h>
#include <string.h>

void added_push(tokenizer *t, const char *content, int32_t id, int normalized, int lstrip, int rstrip, int single_word, int special)
{
    t->added = xrealloc(t->added, (size_t)(t->n_added + 1) * sizeof *t->added);
    added_token *a = &t->added[t->n_added++];
    a->content = a->s = xstrdup(content);
    a->len = (int)strlen(content);
    a->id = id;
    a->normalized = (unsigned char)normalized; a->lstrip = (unsigned char)lstrip;
    a->rstrip = (unsigned char)rstrip; a->single_word = (unsigned char)single_word;
    a->special = (unsigned char)special;
}

/* HF ignores the ids written in added_tokens (it only warns when they differ) and gives each
 * token, in file order, the id of an earlier added token with the same content, else its id in
 * the model vocabulary, else the next id past both (AddedVocabulary::add_tokens). We do the
 * same; a repeated content is dropped, as it can only ever match once. */
static uint64_t added_hash(int normalized, const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)normalized;   /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* a power-of-two table of at least 2n slots, all −1 */
static int *ht_new(size_t n, size_t *mask)
{
    size_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    int *ht = xmalloc(cap * sizeof *ht);
    for (size_t i = 0; i < cap; i++) ht[i] = -1;
    *mask = cap - 1;
    return ht;
}

void added_assign_ids(tokenizer *t)
{
    int32_t max_id = -1;
    int n = 0;
    size_t mask;
    int *seen = ht_new((size_t)t->n_added, &mask);       /* contents kept so far: a repeat is found in O(1) */
    for (int i = 0; i < t->n_added; i++) {
        added_token *a = &t->added[i];
        int dup = 0;
        size_t h = (size_t)added_hash(0, a->content, (size_t)a->len) & mask;
        for (; seen[h] >= 0 && !dup; h = (h + 1) & mask) dup = strcmp(t->added[seen[h]].content, a->content) == 0;
        if (dup) { free(a->content); continue; }
        seen[h] = n;
        a->id = vocab_find(t, a->content, (size_t)a->len);
        if (a->id < 0) a->id = max_id >= t->n_model ? max_id + 1 : t->n_model;
        if (a->id > max_id) max_id = a->id;
        t->added[n++] = *a;
    }
    t->n_added = n;
    free(seen);
}

static int added_cmp(const void *x, const void *y)
{
    const added_token *a = x, *b = y;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

/* Normalized added tokens are matched after normalization, so their normalized form is what is
 * matched; then longest first, and the first-byte tables. Needs the normalizer loaded. */
void added_index(tokenizer *t)
{
    scratch w = {0};
    for (int i = 0; i < t->n_added; i++) {
        added_token *a = &t->added[i];
        if (!a->normalized) continue;
        w.norm.n = 0;
        tok_normalize(t, a->s, (size_t)a->len, &w, &w.norm);
        char *s = xmalloc(w.norm.n + 1);
        if (w.norm.n) memcpy(s, w.norm.v, w.norm.n);
        s[w.norm.n] = 0;
        a->s = s;
        a->len = (int)w.norm.n;
    }
    scratch_free(&w);
    if (t->n_added) qsort(t->added, (size_t)t->n_added, sizeof *t->added, added_cmp);
    t->added_ht = ht_new((size_t)t->n_added, &t->added_ht_mask);
    t->added_of_id = xmalloc((size_t)(t->n_ids > 0 ? t->n_ids : 1) * sizeof *t->added_of_id);
    for (int32_t id = 0; id < t->n_ids; id++) t->added_of_id[id] = -1;
    for (int set = 0; set < 2; set++) {
        t->added_lens[set] = xmalloc((size_t)(t->n_added > 0 ? t->n_added : 1) * sizeof(int));
        t->n_added_lens[set] = 0;
    }
    for (int i = 0; i < t->n_added; i++) {
        added_token *a = &t->added[i];
        if (a->id >= 0 && a->id < t->n_ids && t->added_of_id[a->id] < 0) t->added_of_id[a->id] = i;
        if (a->len == 0) continue; /* normalized to nothing: never matches */
        t->first[a->normalized][(unsigned char)a->s[0]] = 1;
        if (a->normalized) t->any_norm = 1; else t->any_raw = 1;
        /* the first in sorted order wins a repeated (set, string): as the scan in sorted order did */
        size_t h = (size_t)added_hash(a->normalized, a->s, (size_t)a->len) & t->added_ht_mask;
        int dup = 0;
        for (; t->added_ht[h] >= 0 && !dup; h = (h + 1) & t->added_ht_mask) {
            const added_token *b = &t->added[t->added_ht[h]];
            dup = b->normalized == a->normalized && b->len == a->len && !memcmp(b->s, a->s, (size_t)a->len);
        }
        if (!dup) t->added_ht[h] = i;
        /* sorted longest first: a new length is the shortest so far */
        int *nl = &t->n_added_lens[a->normalized];
        if (!*nl || t->added_lens[a->normalized][*nl - 1] != a->len) t->added_lens[a->normalized][(*nl)++] = a->len;
    }
}

/* the added token of the set whose matched string is s[0..n), or −1 */
static int added_lookup(const tokenizer *t, int normalized, const char *s, size_t n)
{
    for (size_t h = (size_t)added_hash(normalized, s, n) & t->added_ht_mask; t->added_ht[h] >= 0;
         h = (h + 1) & t->added_ht_mask) {
        const added_token *b = &t->added[t->added_ht[h]];
        if (b->normalized == normalized && (size_t)b->len == n && !memcmp(b->s, s, n)) return t->added_ht[h];
    }
    return -1;
}

int added_of_id(const tokenizer *t, int32_t id)
{
    return t->added_of_id && id >= 0 && id < t->n_ids ? t->added_of_id[id] : -1;
}

int32_t added_find(const tokenizer *t, const char *s)
{
    for (int i = 0; i < t->n_added; i++)
        if (strcmp(t->added[i].content, s) == 0) return t->added[i].id;
    return vocab_find(t, s, strlen(s));
}

/* The leftmost-longest added token (of the raw or the normalized set) in s[from..n). */
static int find_added(const tokenizer *t, int normalized, const char *s, size_t n, size_t from,
                      size_t *start, size_t *end, int *which)
{
    /* per position, one hash lookup per distinct length, longest first: linear in the text, not
     * text × added tokens (150,000 added tokens used to take a minute) */
    const unsigned char *first = t->first[normalized];
    const int *lens = t->added_lens[normalized], nl = t->n_added_lens[normalized];
    for (size_t p = from; p < n; p++) {
        if (!first[(unsigned char)s[p]]) continue;
        for (int li = 0; li < nl; li++) {
            if ((size_t)lens[li] > n - p) continue;
            const int k = added_lookup(t, normalized, s + p, (size_t)lens[li]);
            if (k < 0) continue;
            *start = p; *end = p + (size_t)lens[li]; *which = k;
            return 1;
        }
    }
    return 0;
}

void added_split(const tokenizer *t, int normalized, const char *s, size_t n, int first, scratch *w, piece_fn fn)
{
    size_t pos = 0, from = 0, ms, me;
    int k;
    while (find_added(t, normalized, s, n, from, &ms, &me, &k)) {
        const added_token *a = &t->added[k];
        from = me;
        int l;
        if (a->single_word && ((ms > 0 && tku_is_word_char(tok_cp_before(s, ms, &l))) ||
                               (me < n && tku_is_word_char(tok_next_cp(s + me, n - me, &l)))))
            continue;
        if (a->lstrip) while (ms > pos && tku_is_ws(tok_cp_before(s, ms, &l))) ms -= (size_t)l;
        if (a->rstrip) while (me < n && tku_is_ws(tok_next_cp(s + me, n - me, &l))) me += (size_t)l;
        if (ms > pos) fn(t, s + pos, ms - pos, first && pos == 0, w);
        id_push(&w->ids, a->id);
        pos = me;
        if (from < me) from = me;
    }
    if (n > pos) fn(t, s + pos, n - pos, first && pos == 0, w);
}
