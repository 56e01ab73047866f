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
void added_assign_ids(tokenizer *t)
{
    int32_t max_id = -1;
    int n = 0;
    for (int i = 0; i < t->n_added; i++) {
        added_token *a = &t->added[i];
        int dup = 0;
        for (int j = 0; j < n && !dup; j++) dup = strcmp(t->added[j].content, a->content) == 0;
        if (dup) { free(a->content); continue; }
        a->id = vocab_find(t, a->content, (size_t)a->len);
        if (a->id < 0) a->id = max_id >= t->n_model ? max_id + 1 : t->n_model;
        if (a->id > max_id) max_id = a->id;
        t->added[n++] = *a;
    }
    t->n_added = n;
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
    for (int i = 0; i < t->n_added; i++) {
        added_token *a = &t->added[i];
        if (a->len == 0) continue; /* normalized to nothing: never matches */
        t->first[a->normalized][(unsigned char)a->s[0]] = 1;
        if (a->normalized) t->any_norm = 1; else t->any_raw = 1;
    }
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
    const unsigned char *first = t->first[normalized];
    for (size_t p = from; p < n; p++) {
        if (!first[(unsigned char)s[p]]) continue;
        for (int k = 0; k < t->n_added; k++) {
            const added_token *a = &t->added[k];
            if (a->normalized != normalized || (size_t)a->len > n - p || memcmp(s + p, a->s, (size_t)a->len)) continue;
            *start = p; *end = p + (size_t)a->len; *which = k;
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
