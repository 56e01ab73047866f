/* tokenizer.c — see tokenizer.h. The encode pipeline of HF `tokenizers` for one sequence:
 * added tokens split out of the raw text, the normalizer on what lies between, the normalized
 * added tokens, the pre-tokenizer and the model on each pre-token, then the post-processor's
 * special tokens around the (truncated) ids. The stages are in tok_*.c (tok_int.h lists them);
 * this file also answers what a token is: its surface text and class. */
#include "tok_int.h"
#include "tokunicode.h"
#include "util.h"
#include <utf8proc.h>
#include <stdlib.h>
#include <string.h>

static void piece_normalized(const tokenizer *t, const char *s, size_t n, int first, scratch *w)
{
    tok_pretokenize(t, s, n, first, w);
}

static void piece_raw(const tokenizer *t, const char *s, size_t n, int first, scratch *w)
{
    w->norm.n = 0;
    tok_normalize(t, s, n, w, &w->norm);
    if (t->any_norm) added_split(t, 1, w->norm.v, w->norm.n, first, w, piece_normalized);
    else tok_pretokenize(t, w->norm.v, w->norm.n, first, w);
}

int tok_encode(const tokenizer *t, const char *text, size_t len, int max_len, int32_t *ids, int *n_full)
{
    if (len > ((size_t)1 << 30)) {
        if (n_full) *n_full = 0;
        return err_set("tokenizer: a text of %zu bytes is longer than the limit of 1 GiB", len);
    }
    scratch w = {0};
    /* HF sees Python str, always valid; invalid bytes become U+FFFD here, one each, so that every
     * stage (PCRE2 in particular) gets valid UTF-8 */
    char *clean = NULL;
    if (util_utf8_valid_prefix(text, len) != len) {
        byte_buf b = {0};
        for (size_t i = 0; i < len;) {
            int k;
            uint32_t c = tok_next_cp(text + i, len - i, &k);
            tok_put_cp(&b, c);
            i += (size_t)k;
        }
        text = clean = b.v;
        len = b.n;
    }
    if (t->any_raw) added_split(t, 0, text, len, 1, &w, piece_raw);
    else piece_raw(t, text, len, 1, &w);
    free(clean);
    int n_c = (int)w.ids.n;
    if (n_full) *n_full = t->n_pre + n_c + t->n_post;
    if (max_len < 0) max_len = 0;
    int keep = max_len - t->n_pre - t->n_post;
    if (keep > n_c) keep = n_c;
    if (keep < 0) keep = 0;
    int n = 0;
    for (int i = 0; i < t->n_pre && n < max_len; i++) ids[n++] = t->pre[i];
    if (keep) memcpy(ids + n, w.ids.v, (size_t)keep * sizeof *ids);
    n += keep;
    for (int i = 0; i < t->n_post && n < max_len; i++) ids[n++] = t->post[i];
    scratch_free(&w);
    return n;
}

const char *tok_id_to_token(const tokenizer *t, int32_t id) { return id >= 0 && id < t->n_ids ? t->id_str[id] : NULL; }
int32_t tok_vocab_size(const tokenizer *t) { return t->n_ids; }
int32_t tok_cls_id(const tokenizer *t) { return t->cls_id; }
int32_t tok_sep_id(const tokenizer *t) { return t->sep_id; }
int32_t tok_pad_id(const tokenizer *t) { return t->pad_id; }
const char *tok_describe(const tokenizer *t) { return t->desc; }
int32_t tok_bos_id(const tokenizer *t) { return t->n_pre ? t->pre[0] : -1; }
int32_t tok_eos_id(const tokenizer *t) { return t->n_post ? t->post[t->n_post - 1] : -1; }

/* ---------------------------------------------------------------------------------------------
 * What a token is */

static int is_special(const tokenizer *t, int32_t id)
{
    for (int i = 0; i < t->n_pre; i++) if (t->pre[i] == id) return 1;
    for (int i = 0; i < t->n_post; i++) if (t->post[i] == id) return 1;
    const int a = added_of_id(t, id);
    return a >= 0 ? t->added[a].special : 0;
}

int tok_byte_of_cp(uint32_t c); /* tok_pretok.c */

size_t tok_id_surface(const tokenizer *t, int32_t id, char *buf, size_t cap)
{
    const char *s = tok_id_to_token(t, id);
    if (!s) return (size_t)-1;
    byte_buf out = {0};
    size_t n = strlen(s);
    const int added = added_of_id(t, id) >= 0;
    if (added || id >= t->n_model) {
        byte_append(&out, s, n);
    } else if (t->model == TOK_MODEL_WORDPIECE) {
        size_t p = (size_t)t->prefix_len;
        if (n > p && !memcmp(s, t->prefix, p)) byte_append(&out, s + p, n - p);
        else byte_append(&out, s, n);
    } else if (t->byte_fallback && n == 6 && t->byte_id[0] >= 0 && !strncmp(s, "<0x", 3) && s[5] == '>' &&
               t->byte_id[(unsigned char)strtol(s + 3, NULL, 16)] == id) {
        char b = (char)strtol(s + 3, NULL, 16);
        byte_append(&out, &b, 1);
    } else if (t->byte_level) {
        for (size_t i = 0; i < n;) {
            int k, b = tok_byte_of_cp(tok_next_cp(s + i, n - i, &k));
            if (b < 0) { byte_append(&out, s + i, (size_t)k); }
            else { char c = (char)b; byte_append(&out, &c, 1); }
            i += (size_t)k;
        }
    } else {
        for (size_t i = 0; i < n;) {
            if (t->meta_len && i + (size_t)t->meta_len <= n && !memcmp(s + i, t->meta, (size_t)t->meta_len)) {
                byte_append(&out, " ", 1);
                i += (size_t)t->meta_len;
            } else {
                byte_append(&out, s + i, 1);
                i++;
            }
        }
    }
    if (cap) {
        size_t m = out.n < cap - 1 ? out.n : cap - 1;
        if (m) memcpy(buf, out.v, m);
        buf[m] = 0;
    }
    n = out.n;
    free(out.v);
    return n;
}

unsigned tok_id_class(const tokenizer *t, int32_t id)
{
    const char *s = tok_id_to_token(t, id);
    if (!s) return 0;
    if (is_special(t, id)) return TOK_SPECIAL;
    char buf[256];
    size_t n = tok_id_surface(t, id, buf, sizeof buf);
    if (n >= sizeof buf) return 0;
    unsigned cls = 0;
    if (t->model == TOK_MODEL_WORDPIECE) {
        size_t p = (size_t)t->prefix_len;
        if (!(strlen(s) > p && !memcmp(s, t->prefix, p))) cls |= TOK_WORD_START;
    } else if (n && buf[0] == ' ') {
        cls |= TOK_WORD_START;
    }
    size_t i = 0;
    while (i < n && buf[i] == ' ') i++;
    if (i == n) return cls;
    for (; i < n;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)buf + i, (utf8proc_ssize_t)(n - i), &c);
        if (k <= 0) return cls; /* part of a character */
        utf8proc_category_t cat = utf8proc_category(c);
        if (cat < UTF8PROC_CATEGORY_PC || cat > UTF8PROC_CATEGORY_PO) return cls;
        i += (size_t)k;
    }
    return cls | TOK_PUNCT;
}
