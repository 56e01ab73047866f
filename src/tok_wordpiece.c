/* tok_wordpiece.c — the WordPiece model of HF `tokenizers`: greedy longest match first, the
 * continuing_subword_prefix ("##") on every piece but the first, the unknown token for a word
 * over max_input_chars_per_word code points or with a part that matches nothing. */
#include "tok_int.h"
#include <string.h>

void wordpiece_encode(const tokenizer *t, const char *w, size_t n, scratch *s)
{
    int ncp = 0; /* the text is valid UTF-8 (tok_encode) */
    for (size_t i = 0; i < n; i++) ncp += (w[i] & 0xC0) != 0x80;
    if (ncp > t->max_chars) { id_push(&s->ids, t->unk_id); return; }
    size_t plen = (size_t)t->prefix_len, mark = s->ids.n;
    byte_buf *key = &s->key; /* key->v[plen + i] == w[i]; the prefix is written just before start */
    key->n = 0;
    byte_reserve(key, plen + n);
    memcpy(key->v + plen, w, n);
    for (size_t start = 0; start < n;) {
        const char *base = start ? key->v + start : key->v + plen;
        size_t extra = start ? plen : 0, end = n;
        if (start) memcpy(key->v + start, t->prefix, plen);
        if (end - start + extra > (size_t)t->max_tok_len) { /* longer than any entry: cannot match */
            end = start + (size_t)t->max_tok_len - extra;
            while (end > start && (w[end] & 0xC0) == 0x80) end--;
        }
        int32_t id = -1;
        while (end > start) {
            if ((id = vocab_find(t, base, end - start + extra)) >= 0) break;
            do end--; while (end > start && (w[end] & 0xC0) == 0x80);
        }
        if (id < 0) { s->ids.n = mark; id_push(&s->ids, t->unk_id); return; }
        id_push(&s->ids, id);
        start = end;
    }
}
