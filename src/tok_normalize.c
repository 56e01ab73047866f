/* tok_normalize.c — the normalizers of HF `tokenizers`: BertNormalizer (clean text, CJK spacing,
 * strip accents, lowercase, in HF's order), the Unicode forms NFC/NFD/NFKC/NFKD (utf8proc),
 * Lowercase, Strip, Prepend and Replace (a String or Regex pattern), and Sequence of them.
 *
 * Unicode: utf8proc 2.8 (Unicode 15); HF's unicode-normalization-alignments crate carries older
 * tables, which lack the decompositions of 135 characters of Unicode 13-15 (tokunicode.c lists
 * them; found by comparing every code point): those are left whole, as HF does. A composition
 * across one of them is not undone (HF's tables would not compose a pair new in 13-15 either,
 * but we do not enumerate those). Lowercase is per character as HF's
 * NormalizedString::lowercase (no final-sigma rule), with Rust's tables (tku_lower). */
#include "tok_int.h"
#include "jsonutil.h"
#include "tokunicode.h"
#include "util.h"
#include <utf8proc.h>
#include <stdlib.h>
#include <string.h>

/* Unicode canonical ordering of v[0..n): each run of non-starters (combining class > 0) is
 * sorted by class, stably. A counting sort over the 255 classes, so that a line of a million
 * alternating marks takes linear time (utf8proc's and a plain insertion sort are quadratic in the
 * length of a run). tmp is scratch, resized as needed. */
static void canonical_order(cp_buf *b, cp_buf *tmp)
{
    uint32_t *v = b->v;
    for (size_t i = 0; i < b->n;) {
        if (!utf8proc_get_property((utf8proc_int32_t)v[i])->combining_class) { i++; continue; }
        size_t j = i, sorted = 1;
        int prev = 0;
        while (j < b->n) {
            int cc = utf8proc_get_property((utf8proc_int32_t)v[j])->combining_class;
            if (!cc) break;
            if (cc < prev) sorted = 0;
            prev = cc;
            j++;
        }
        if (!sorted) {
            size_t count[257] = {0};
            tmp->n = 0;
            cp_reserve(tmp, j - i);
            for (size_t k = i; k < j; k++) count[utf8proc_get_property((utf8proc_int32_t)v[k])->combining_class + 1]++;
            for (int c = 1; c < 257; c++) count[c] += count[c - 1];
            for (size_t k = i; k < j; k++) tmp->v[count[utf8proc_get_property((utf8proc_int32_t)v[k])->combining_class]++] = v[k];
            memcpy(v + i, tmp->v, (j - i) * sizeof *v);
        }
        i = j;
    }
}

/* BertNormalizer of s[0..n), appended to out as UTF-8. */
static void bert_normalize(const tokenizer *t, const char *s, size_t n, scratch *w, byte_buf *out)
{
    cp_buf *a = &w->a, *b = &w->b;
    a->n = 0;
    for (size_t i = 0; i < n;) {
        int k;
        uint32_t c = tok_next_cp(s + i, n - i, &k);
        i += (size_t)k;
        if (t->clean_text) {
            if (c == 0 || c == 0xFFFD || tku_is_control(c)) continue;
            if (tku_is_ws(c)) c = ' ';
        }
        cp_reserve(a, 3);
        if (t->chinese && tku_is_chinese(c)) {
            a->v[a->n++] = ' '; a->v[a->n++] = c; a->v[a->n++] = ' ';
        } else {
            a->v[a->n++] = c;
        }
    }
    if (t->strip_accents) {
        b->n = 0;
        for (size_t i = 0; i < a->n; i++) {
            uint32_t c = a->v[i];
            if (c < 0xC0 || tku_no_nfd(c)) { cp_reserve(b, 1); b->v[b->n++] = c; continue; }
            for (;;) {
                cp_reserve(b, 8);
                int bound = 0;
                utf8proc_ssize_t k = utf8proc_decompose_char((utf8proc_int32_t)c, (utf8proc_int32_t *)b->v + b->n,
                                                             (utf8proc_ssize_t)(b->cap - b->n), UTF8PROC_DECOMPOSE, &bound);
                if (k < 0) { b->v[b->n] = c; k = 1; }
                if ((size_t)k <= b->cap - b->n) { b->n += (size_t)k; break; }
                cp_reserve(b, (size_t)k);
            }
        }
        canonical_order(b, &w->a);
        a->n = 0;
        cp_reserve(a, b->n);
        for (size_t i = 0; i < b->n; i++)
            if (b->v[i] < 0x300 || !tku_is_mn(b->v[i])) a->v[a->n++] = b->v[i];
    }
    byte_reserve(out, a->n * 4 * 2);
    for (size_t i = 0; i < a->n; i++) {
        uint32_t c[2] = {a->v[i], 0};
        int m = t->lowercase ? tku_lower(a->v[i], c) : 1;
        for (int j = 0; j < m; j++) {
            if (c[j] < 0x80) out->v[out->n++] = (char)c[j];
            else out->n += (size_t)utf8proc_encode_char((utf8proc_int32_t)c[j], (utf8proc_uint8_t *)out->v + out->n);
        }
    }
}

/* s[0..n) decomposed by utf8proc character by character, put in canonical order (linear, see
 * canonical_order), composed if opt says so, appended to out: what utf8proc_map does, without
 * its quadratic sort */
static void utf8proc_form(const char *s, size_t n, int opt, scratch *w, byte_buf *out)
{
    cp_buf *b = &w->b;
    b->n = 0;
    for (size_t i = 0; i < n;) {
        int k;
        uint32_t c = tok_next_cp(s + i, n - i, &k);
        i += (size_t)k;
        for (;;) {
            cp_reserve(b, 8);
            int bound = 0;
            utf8proc_ssize_t m = utf8proc_decompose_char((utf8proc_int32_t)c, (utf8proc_int32_t *)b->v + b->n,
                                                         (utf8proc_ssize_t)(b->cap - b->n), (utf8proc_option_t)opt, &bound);
            if (m < 0) { b->v[b->n] = c; m = 1; }
            if ((size_t)m <= b->cap - b->n) { b->n += (size_t)m; break; }
            cp_reserve(b, (size_t)m);
        }
    }
    canonical_order(b, &w->a);
    /* normalize_utf32 composes (if asked) and re-encodes as UTF-8 in place: 4 bytes per code point suffice */
    utf8proc_ssize_t m = utf8proc_reencode((utf8proc_int32_t *)b->v, (utf8proc_ssize_t)b->n, (utf8proc_option_t)opt);
    if (m < 0) byte_append(out, s, n); /* the text is valid UTF-8 (tok_encode): not reached */
    else byte_append(out, (const char *)b->v, (size_t)m);
}

/* one Unicode form of s[0..n) by utf8proc, leaving whole the characters whose decomposition
 * HF's older tables lack (tku_no_nfd / tku_no_nfkd): the text is cut around them */
static void unicode_form(int kind, const char *s, size_t n, scratch *w, byte_buf *out)
{
    int compat = kind == NM_NFKC || kind == NM_NFKD;
    int opt = UTF8PROC_STABLE | (kind == NM_NFC || kind == NM_NFKC ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE) |
              (compat ? UTF8PROC_COMPAT : 0);
    size_t seg = 0;
    for (size_t i = 0; i <= n;) {
        int k = 1;
        uint32_t c = i < n ? tok_next_cp(s + i, n - i, &k) : 0;
        int keep = i < n && c >= 0x32FF && (compat ? tku_no_nfkd(c) : tku_no_nfd(c));
        if (i == n || keep) {
            if (i > seg) utf8proc_form(s + seg, i - seg, opt, w, out);
            if (keep) byte_append(out, s + i, (size_t)k);
            seg = i + (size_t)k;
        }
        i += (size_t)k;
    }
}

/* HF's NormalizedString::replace with a Regex: every match (Oniguruma's find_iter, leftmost,
 * non-overlapping) becomes the content; an empty match inserts it and the search steps over one
 * code point. CLIP's Replace(\s+, " ") is the one in use. */
static void regex_replace(const tok_norm *m, const char *s, size_t n, scratch *w, byte_buf *out)
{
    size_t prev = 0, at = 0, ms, me;
    while (at <= n && tok_regex_next(m->re, s, n, at, w, &ms, &me)) {
        byte_append(out, s + prev, ms - prev);
        byte_append(out, m->b, (size_t)m->blen);
        prev = me;
        if (me == ms) {
            if (me >= n) break;
            int k;
            tok_next_cp(s + me, n - me, &k);
            byte_append(out, s + me, (size_t)k);
            prev = at = me + (size_t)k;
        } else {
            at = me;
        }
    }
    byte_append(out, s + prev, n - prev);
}

static void step(const tokenizer *t, const tok_norm *m, const char *s, size_t n, scratch *w, byte_buf *out)
{
    switch (m->kind) {
    case NM_BERT: bert_normalize(t, s, n, w, out); return;
    case NM_NFC: case NM_NFD: case NM_NFKC: case NM_NFKD: unicode_form(m->kind, s, n, w, out); return;
    case NM_LOWER:
        for (size_t i = 0; i < n;) {
            int k;
            uint32_t c[2], m2 = (uint32_t)tku_lower(tok_next_cp(s + i, n - i, &k), c);
            for (uint32_t j = 0; j < m2; j++) tok_put_cp(out, c[j]);
            i += (size_t)k;
        }
        return;
    case NM_STRIP: {
        size_t b = 0, e = n;
        int k;
        if (m->left) while (b < e && tku_is_ws(tok_next_cp(s + b, e - b, &k))) b += (size_t)k;
        if (m->right) while (e > b && tku_is_ws(tok_cp_before(s, e, &k))) e -= (size_t)k;
        byte_append(out, s + b, e - b);
        return;
    }
    case NM_PREPEND: /* HF: only a non-empty string gets the prefix */
        if (n) byte_append(out, m->a, (size_t)m->alen);
        byte_append(out, s, n);
        return;
    case NM_REPLACE:
        if (m->re) { regex_replace(m, s, n, w, out); return; }
        for (size_t i = 0; i < n;) {
            if (i + (size_t)m->alen <= n && memcmp(s + i, m->a, (size_t)m->alen) == 0) {
                byte_append(out, m->b, (size_t)m->blen);
                i += (size_t)m->alen;
            } else {
                byte_append(out, s + i, 1);
                i++;
            }
        }
        return;
    }
}

void tok_normalize(const tokenizer *t, const char *s, size_t n, scratch *w, byte_buf *out)
{
    if (t->n_norm == 0) { byte_append(out, s, n); return; }
    for (int i = 0; i < t->n_norm; i++) {
        byte_buf *dst = i == t->n_norm - 1 ? out : &w->nt[i & 1];
        if (dst != out) dst->n = 0;
        step(t, &t->norm[i], s, n, w, dst);
        s = dst->v; n = dst->n;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Loading: one normalizer object (a Sequence flattened into steps). */

static int parse_one(tokenizer *t, json_object *o, const char *path, int depth)
{
    const char *type = NULL;
    if (!json_object_is_type(o, json_type_object) || json_get_string(o, "type", &type, path) != 1)
        return err_set("%s: a normalizer should be an object with a \"type\"", path);
    if (!strcmp(type, "Sequence")) {
        json_object *arr;
        if (depth > 2 || !json_object_object_get_ex(o, "normalizers", &arr) || !json_object_is_type(arr, json_type_array))
            return err_set("%s: normalizer Sequence needs a \"normalizers\" array", path);
        for (size_t i = 0; i < json_object_array_length(arr); i++)
            if (parse_one(t, json_object_array_get_idx(arr, i), path, depth + 1)) return -1;
        return 0;
    }
    if (t->n_norm == TOK_MAX_STAGES) return err_set("%s: more than %d normalizers", path, TOK_MAX_STAGES);
    tok_norm *m = &t->norm[t->n_norm];
    memset(m, 0, sizeof *m);
    if (!strcmp(type, "BertNormalizer")) {
        int ct = 1, hc = 1, sa = -1, lc = 1;
        if (json_get_bool(o, "clean_text", &ct, path) < 0 || json_get_bool(o, "handle_chinese_chars", &hc, path) < 0 ||
            json_get_bool(o, "strip_accents", &sa, path) < 0 || json_get_bool(o, "lowercase", &lc, path) < 0)
            return -1;
        t->clean_text = ct; t->chinese = hc; t->lowercase = lc;
        t->strip_accents = sa < 0 ? lc : sa; /* null follows lowercase, as in HF */
        m->kind = NM_BERT;
    } else if (!strcmp(type, "NFC")) m->kind = NM_NFC;
    else if (!strcmp(type, "NFD")) m->kind = NM_NFD;
    else if (!strcmp(type, "NFKC")) m->kind = NM_NFKC;
    else if (!strcmp(type, "NFKD")) m->kind = NM_NFKD;
    else if (!strcmp(type, "Lowercase")) m->kind = NM_LOWER;
    else if (!strcmp(type, "Strip")) {
        m->kind = NM_STRIP;
        m->left = m->right = 1;
        if (json_get_bool(o, "strip_left", &m->left, path) < 0 || json_get_bool(o, "strip_right", &m->right, path) < 0) return -1;
    } else if (!strcmp(type, "Prepend")) {
        const char *p = NULL;
        if (json_get_string(o, "prepend", &p, path) != 1) return err_set("%s: normalizer Prepend needs a string \"prepend\"", path);
        m->kind = NM_PREPEND;
        m->a = xstrdup(p);
        m->alen = (int)strlen(p);
    } else if (!strcmp(type, "Replace")) {
        json_object *pat;
        const char *lit = NULL, *content = NULL;
        if (tok_get_object(o, "pattern", &pat, path) != 1 || json_get_string(o, "content", &content, path) != 1)
            return err_set("%s: normalizer Replace needs a \"pattern\" object and a string \"content\"", path);
        const char *rx = NULL;
        int has_lit = json_get_string(pat, "String", &lit, path), has_rx = json_get_string(pat, "Regex", &rx, path);
        if (has_lit < 0 || has_rx < 0) return -1;
        if (has_rx == 1 && has_lit != 1) {
            m->kind = NM_REPLACE;
            m->b = xstrdup(content); m->blen = (int)strlen(content);
            if (!(m->re = tok_regex_compile(rx, strlen(rx), path))) return -1;
            t->n_norm++;
            return 0;
        }
        if (has_lit != 1 || !*lit)
            return err_set("%s: normalizer Replace needs a non-empty {\"String\": ...} or a {\"Regex\": ...} pattern", path);
        m->kind = NM_REPLACE;
        m->a = xstrdup(lit); m->alen = (int)strlen(lit);
        m->b = xstrdup(content); m->blen = (int)strlen(content);
        /* Replace(" ", "▁") marks word starts as Metaspace does */
        if (!strcmp(lit, " ") && m->blen < (int)sizeof t->meta) { memcpy(t->meta, content, (size_t)m->blen); t->meta_len = m->blen; }
    } else {
        return err_set("%s: normalizer type \"%s\" is not supported (BertNormalizer, NFC, NFD, NFKC, NFKD, Lowercase, Strip, "
                       "Prepend, Replace, Sequence)", path, type);
    }
    t->n_norm++;
    return 0;
}

int tok_parse_normalizer(tokenizer *t, json_object *norm, const char *path)
{
    return norm ? parse_one(t, norm, path, 0) : 0;
}
