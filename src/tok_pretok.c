/* tok_pretok.c — the pre-tokenizers of HF `tokenizers`: BertPreTokenizer, ByteLevel
 * (add_prefix_space, use_regex with GPT-2's pattern, bytes mapped to GPT-2's printable
 * characters), Split (a Regex or String pattern, every SplitDelimiterBehavior, invert),
 * Metaspace (replacement, prepend_scheme, split), WhitespaceSplit, and Sequence of them.
 *
 * A piece of text goes through the steps as a list of spans over a byte buffer; a step that only
 * cuts keeps the buffer, one that rewrites (ByteLevel, Metaspace) writes the other one. Empty
 * pieces are dropped, as PreTokenizedString::split does. Each final piece goes to the model.
 *
 * Regular expressions: HF compiles the pattern with Oniguruma; we use PCRE2 (Debian's
 * libpcre2-dev) in UTF + UCP mode: a well-kept Debian package, a JIT, and full Unicode
 * properties (\p{L}, \p{N}, (?i:...), lookahead), i.e. every construct of GPT-2's, Llama-3's and
 * Qwen2's patterns, with the same leftmost backtracking semantics. One difference is undone
 * when compiling: Oniguruma's \s is exactly Unicode White_Space, and its \p{L} and \p{N} know
 * Unicode 16; \s, \S, \p{L} and \p{N} are rewritten to match it (tok_regex_compile). */
#include "tok_int.h"
#include "jsonutil.h"
#include "tokunicode.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GPT-2's pattern, as HF's ByteLevel use_regex */
static const char gpt2_pattern[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ---------------------------------------------------------------------------------------------
 * Cutting: a list of (start, end, is_match) over one span, then a behaviour. */

typedef struct { size_t s, e; int match; } cut;
typedef struct { cut *v; size_t n, cap; } cut_buf;

static void cut_push(cut_buf *c, size_t s, size_t e, int match)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->v = xrealloc(c->v, c->cap * sizeof *c->v);
    }
    c->v[c->n++] = (cut){s, e, match};
}

/* Appends the pieces of span sp to out as behaviour b folds them (HF's
 * NormalizedString::split), dropping empty ones; tmp is work space. */
static void apply_behavior(const cut_buf *c, int b, int invert, const tok_span *sp, span_buf *out, cut_buf *tmp)
{
    tmp->n = 0;
    int prev = 0;
    if (b == SB_MERGED_NEXT) { /* folded from the end: a match joins the piece after it */
        for (size_t k = c->n; k-- > 0;) {
            int m = c->v[k].match ^ invert;
            if (m && !prev && tmp->n) tmp->v[tmp->n - 1].s = c->v[k].s;
            else cut_push(tmp, c->v[k].s, c->v[k].e, 0);
            prev = m;
        }
        for (size_t i = 0, j = tmp->n - (tmp->n > 0); i < j; i++, j--) { cut x = tmp->v[i]; tmp->v[i] = tmp->v[j]; tmp->v[j] = x; }
    } else {
        for (size_t k = 0; k < c->n; k++) {
            int m = c->v[k].match ^ invert;
            int join = b == SB_MERGED_PREV ? m && !prev : b == SB_CONTIGUOUS ? m == prev : 0;
            if (b == SB_REMOVED && m) { prev = m; continue; }
            if (join && tmp->n) tmp->v[tmp->n - 1].e = c->v[k].e;
            else cut_push(tmp, c->v[k].s, c->v[k].e, 0);
            prev = m;
        }
    }
    for (size_t k = 0; k < tmp->n; k++)
        if (tmp->v[k].e > tmp->v[k].s)
            span_push(out, sp->off + tmp->v[k].s, tmp->v[k].e - tmp->v[k].s, sp->first && tmp->v[k].s == 0);
}

int tok_regex_next(const pcre2_code *re, const char *s, size_t n, size_t at, scratch *w, size_t *ms, size_t *me)
{
    if (!w->md && !(w->md = pcre2_match_data_create(1, NULL))) { fprintf(stderr, "attnscope: out of memory (PCRE2)\n"); abort(); }
    for (;;) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, at, PCRE2_NO_UTF_CHECK, w->md, w->mctx);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !w->jstack) {
            /* the JIT's default 32 KiB stack is enough but for long runs that backtrack (a
             * \s+(?!\S) over many spaces): then a larger one, made once per call */
            w->mctx = pcre2_match_context_create(NULL);
            w->jstack = pcre2_jit_stack_create(32 << 10, 64 << 20, NULL);
            if (!w->mctx || !w->jstack) { fprintf(stderr, "attnscope: out of memory (PCRE2 JIT stack)\n"); abort(); }
            pcre2_jit_stack_assign(w->mctx, NULL, w->jstack);
            continue;
        }
        if (rc < 0) return 0; /* no match (or another resource limit: the rest stays as it is) */
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(w->md);
        *ms = ov[0]; *me = ov[1];
        return 1;
    }
}

/* the regex matches of s[0..n) as cuts covering it (empty matches advance one code point) */
static void regex_cuts(const pcre2_code *re, const char *s, size_t n, scratch *w, cut_buf *c)
{
    c->n = 0;
    size_t prev = 0, at = 0, ms, me;
    while (at <= n && tok_regex_next(re, s, n, at, w, &ms, &me)) {
        if (ms > prev) cut_push(c, prev, ms, 0);
        cut_push(c, ms, me, 1);
        prev = me;
        if (me == ms) {   /* an empty match: step over one code point */
            if (me >= n) break;
            int k;
            tok_next_cp(s + me, n - me, &k);
            at = me + (size_t)k;
        } else {
            at = me;
        }
    }
    if (prev < n) cut_push(c, prev, n, 0);
}

static void literal_cuts(const char *lit, size_t ln, const char *s, size_t n, cut_buf *c)
{
    c->n = 0;
    size_t prev = 0;
    for (size_t i = 0; i + ln <= n;) {
        if (memcmp(s + i, lit, ln) == 0) {
            if (i > prev) cut_push(c, prev, i, 0);
            cut_push(c, i, i + ln, 1);
            i += ln;
            prev = i;
        } else {
            i++;
        }
    }
    if (prev < n) cut_push(c, prev, n, 0);
}

/* GPT-2's byte -> code point table: printable Latin-1 bytes stand for themselves, the others
 * (controls, space, soft hyphen...) for 256 + their rank */
static uint32_t byte_cp[256];
static char byte_utf8[256][3];
static unsigned char byte_utf8_len[256];
static pthread_once_t byte_once = PTHREAD_ONCE_INIT;
static void byte_table_init(void)
{
    uint32_t next = 256;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        byte_cp[b] = keep ? (uint32_t)b : next++;
        uint32_t c = byte_cp[b];
        if (c < 0x80) { byte_utf8[b][0] = (char)c; byte_utf8_len[b] = 1; }
        else { byte_utf8[b][0] = (char)(0xC0 | (c >> 6)); byte_utf8[b][1] = (char)(0x80 | (c & 0x3F)); byte_utf8_len[b] = 2; }
    }
}

/* the byte GPT-2's table maps to code point c, or -1 */
int tok_byte_of_cp(uint32_t c)
{
    pthread_once(&byte_once, byte_table_init);
    if (c >= 0x200) return -1;
    for (int b = 0; b < 256; b++) if (byte_cp[b] == c) return b;
    return -1;
}

/* ---------------------------------------------------------------------------------------------
 * The steps */

static void step_bert(const char *buf, const tok_span *sp, span_buf *out)
{
    const char *q = buf + sp->off;
    size_t m = sp->len, ws = 0;
    for (size_t i = 0; i < m;) {
        int k;
        uint32_t c = tok_next_cp(q + i, m - i, &k);
        int space = tku_is_ws(c);
        if (space || tku_is_punct(c)) {
            if (i > ws) span_push(out, sp->off + ws, i - ws, sp->first && ws == 0);
            if (!space) span_push(out, sp->off + i, (size_t)k, sp->first && i == 0);
            ws = i + (size_t)k;
        }
        i += (size_t)k;
    }
    if (m > ws) span_push(out, sp->off + ws, m - ws, sp->first && ws == 0);
}

static void step_ws_split(const char *buf, const tok_span *sp, span_buf *out)
{
    const char *q = buf + sp->off;
    size_t m = sp->len, ws = 0;
    for (size_t i = 0; i < m;) {
        int k;
        if (tku_is_ws(tok_next_cp(q + i, m - i, &k))) {
            if (i > ws) span_push(out, sp->off + ws, i - ws, sp->first && ws == 0);
            ws = i + (size_t)k;
        }
        i += (size_t)k;
    }
    if (m > ws) span_push(out, sp->off + ws, m - ws, sp->first && ws == 0);
}

void tok_pretokenize(const tokenizer *t, const char *s, size_t n, int first, scratch *w)
{
    /* the spans start over s itself; a rewriting step moves them into pt[0] or pt[1] */
    const char *buf = s ? s : "";   /* an empty normalized text may have no buffer at all */
    int cur = 0, wb = 0;
    w->sp[0].n = 0;
    span_push(&w->sp[0], 0, n, first);
    cut_buf cuts = {0}, folded = {0};
    for (int st = 0; st < t->n_pre_tok; st++) {
        const tok_pretok *p = &t->pre_tok[st];
        span_buf *in = &w->sp[cur], *out = &w->sp[cur ^ 1];
        out->n = 0;
        if (p->kind == PT_BERT) {
            for (size_t i = 0; i < in->n; i++) step_bert(buf, &in->v[i], out);
        } else if (p->kind == PT_WHITESPACE_SPLIT) {
            for (size_t i = 0; i < in->n; i++) step_ws_split(buf, &in->v[i], out);
        } else if (p->kind == PT_SPLIT) {
            for (size_t i = 0; i < in->n; i++) {
                const tok_span *sp = &in->v[i];
                if (p->re) regex_cuts(p->re, buf + sp->off, sp->len, w, &cuts);
                else literal_cuts(p->lit, (size_t)p->lit_len, buf + sp->off, sp->len, &cuts);
                apply_behavior(&cuts, p->behavior, p->invert, sp, out, &folded);
            }
        } else if (p->kind == PT_BYTELEVEL) {
            /* prefix space and regex cut over the old buffer, then the byte mapping into the new
             * one (the prefix space is written there first) */
            pthread_once(&byte_once, byte_table_init);
            byte_buf *nb = &w->pt[wb];
            nb->n = 0;
            for (size_t i = 0; i < in->n; i++) {
                const tok_span *sp = &in->v[i];
                const char *q = buf + sp->off;
                int pre = p->add_prefix_space && !(sp->len && q[0] == ' ');
                /* cuts over q with the prefix space virtually in front: cut the prefixed text */
                byte_buf *tmp = &w->key;
                tmp->n = 0;
                if (pre) byte_append(tmp, " ", 1);
                byte_append(tmp, q, sp->len);
                if (p->use_regex) regex_cuts(p->re, tmp->v, tmp->n, w, &cuts);
                else { cuts.n = 0; if (tmp->n) cut_push(&cuts, 0, tmp->n, 0); }
                for (size_t j = 0; j < cuts.n; j++) {
                    if (cuts.v[j].e == cuts.v[j].s) continue;
                    size_t o = nb->n;
                    byte_reserve(nb, 2 * (cuts.v[j].e - cuts.v[j].s));
                    for (size_t k = cuts.v[j].s; k < cuts.v[j].e; k++) {
                        unsigned char b = (unsigned char)tmp->v[k];
                        memcpy(nb->v + nb->n, byte_utf8[b], byte_utf8_len[b]);
                        nb->n += byte_utf8_len[b];
                    }
                    span_push(out, o, nb->n - o, sp->first && cuts.v[j].s == 0);
                }
            }
            buf = nb->v;
            wb ^= 1;
        } else if (p->kind == PT_METASPACE) {
            byte_buf *nb = &w->pt[wb];
            nb->n = 0;
            for (size_t i = 0; i < in->n; i++) {
                const tok_span *sp = &in->v[i];
                const char *q = buf + sp->off;
                size_t o = nb->n;
                for (size_t k = 0; k < sp->len; k++) {
                    if (q[k] == ' ') byte_append(nb, p->rep, (size_t)p->rep_len);
                    else byte_append(nb, q + k, 1);
                }
                size_t len = nb->n - o;
                int starts = len >= (size_t)p->rep_len && memcmp(nb->v + o, p->rep, (size_t)p->rep_len) == 0;
                if (!starts && (p->prepend == PS_ALWAYS || (p->prepend == PS_FIRST && sp->first))) {
                    byte_reserve(nb, (size_t)p->rep_len);
                    memmove(nb->v + o + p->rep_len, nb->v + o, len);
                    memcpy(nb->v + o, p->rep, (size_t)p->rep_len);
                    nb->n += (size_t)p->rep_len;
                    len += (size_t)p->rep_len;
                }
                tok_span ns = {o, len, sp->first};
                if (p->split) {
                    literal_cuts(p->rep, (size_t)p->rep_len, nb->v + o, len, &cuts);
                    apply_behavior(&cuts, SB_MERGED_NEXT, 0, &ns, out, &folded);
                } else if (len) {
                    span_push(out, o, len, sp->first);
                }
            }
            buf = nb->v;
            wb ^= 1;
        }
        cur ^= 1;
    }
    free(cuts.v);
    free(folded.v);
    const span_buf *fin = &w->sp[cur];
    for (size_t i = 0; i < fin->n; i++) {
        const tok_span *sp = &fin->v[i];
        if (!sp->len) continue;
        if (t->model == TOK_MODEL_BPE) bpe_encode(t, buf + sp->off, sp->len, w);
        else wordpiece_encode(t, buf + sp->off, sp->len, w);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Loading */

/* HF's Oniguruma and Debian 12's PCRE2 10.42 (Unicode 14) disagree on a few classes; found by
 * testing every code point against both (tokenizers 0.23.3): Oniguruma's \s is exactly Unicode
 * White_Space (with U+0085, without U+180E, which PCRE2 still counts), and its \p{L} and \p{N}
 * carry Unicode 16, so the letters and digits added since are listed here. A newer PCRE2 that
 * has them already matches the same. CLIP's "</w>" suffix shows every word boundary, so its
 * sweep over every code point is what caught these. */
#define HF_SPACE "\\t\\n\\x{b}\\f\\r\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"
#define HF_LETTER_NEW "\\x{1c89}-\\x{1c8a}\\x{a7cb}-\\x{a7cd}\\x{a7da}-\\x{a7dc}\\x{105c0}-\\x{105f3}\\x{10d4a}-\\x{10d65}" \
    "\\x{10d6f}-\\x{10d85}\\x{10ec2}-\\x{10ec4}\\x{1123f}-\\x{11240}\\x{11380}-\\x{11389}\\x{1138b}\\x{1138e}\\x{11390}-\\x{113b5}" \
    "\\x{113b7}\\x{113d1}\\x{113d3}\\x{11bc0}-\\x{11be0}\\x{11f02}\\x{11f04}-\\x{11f10}\\x{11f12}-\\x{11f33}\\x{1342f}" \
    "\\x{13441}-\\x{13446}\\x{13460}-\\x{143fa}\\x{16100}-\\x{1611d}\\x{16d40}-\\x{16d6c}\\x{18cff}\\x{1b132}\\x{1b155}" \
    "\\x{1df25}-\\x{1df2a}\\x{1e030}-\\x{1e06d}\\x{1e4d0}-\\x{1e4eb}\\x{1e5d0}-\\x{1e5ed}\\x{1e5f0}\\x{2b739}\\x{2ebf0}-\\x{2ee5d}" \
    "\\x{31350}-\\x{323af}"
#define HF_NUMBER_NEW "\\x{10d40}-\\x{10d49}\\x{116d0}-\\x{116e3}\\x{11bf0}-\\x{11bf9}\\x{11f50}-\\x{11f59}\\x{16130}-\\x{16139}" \
    "\\x{16d70}-\\x{16d79}\\x{1ccf0}-\\x{1ccf9}\\x{1d2c0}-\\x{1d2d3}\\x{1e4f0}-\\x{1e4f9}\\x{1e5f1}-\\x{1e5fa}"

/* appends a class body: bare inside a [...] of the pattern, else as a class of its own */
static void class_append(byte_buf *b, int in_class, int negate, const char *body)
{
    if (!in_class) byte_append(b, negate ? "[^" : "[", negate ? 2 : 1);
    byte_append(b, body, strlen(body));
    if (!in_class) byte_append(b, "]", 1);
}

/* \s, \S (outside a class), \p{L} and \p{N} rewritten as Oniguruma reads them (see above). */
pcre2_code *tok_regex_compile(const char *pat, size_t len, const char *path)
{
    byte_buf b = {0};
    int in_class = 0;
    for (size_t i = 0; i < len; i++) {
        char c = pat[i];
        if (c == '\\' && i + 1 < len) {
            char d = pat[i + 1];
            if (d == 's') class_append(&b, in_class, 0, HF_SPACE);
            else if (d == 'S' && !in_class) class_append(&b, 0, 1, HF_SPACE);
            else if (d == 'p' && i + 4 < len && pat[i + 2] == '{' && (pat[i + 3] == 'L' || pat[i + 3] == 'N') && pat[i + 4] == '}') {
                class_append(&b, in_class, 0, pat[i + 3] == 'L' ? "\\p{L}" HF_LETTER_NEW : "\\p{N}" HF_NUMBER_NEW);
                i += 3;
            } else byte_append(&b, pat + i, 2);
            i++;
            continue;
        }
        if (c == '[' && !in_class) { in_class = 1; byte_append(&b, pat + i, 1); if (i + 1 < len && pat[i + 1] == '^') { byte_append(&b, "^", 1); i++; } if (i + 1 < len && pat[i + 1] == ']') { byte_append(&b, "]", 1); i++; } continue; }
        if (c == ']' && in_class) in_class = 0;
        byte_append(&b, &c, 1);
    }
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)b.v, b.n, PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
    free(b.v);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        err_set("%s: regex %.*s: %s (near offset %zu)", path, (int)(len > 200 ? 200 : len), pat, (char *)msg, (size_t)off);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* without a JIT (some architectures) pcre2_match interprets */
    return re;
}

static int parse_one(tokenizer *t, json_object *o, const char *path, int depth)
{
    const char *type = NULL;
    if (!json_object_is_type(o, json_type_object) || json_get_string(o, "type", &type, path) != 1)
        return err_set("%s: a pre_tokenizer should be an object with a \"type\"", path);
    if (!strcmp(type, "Sequence")) {
        json_object *arr;
        if (depth > 2 || !json_object_object_get_ex(o, "pretokenizers", &arr) || !json_object_is_type(arr, json_type_array))
            return err_set("%s: pre_tokenizer Sequence needs a \"pretokenizers\" array", path);
        for (size_t i = 0; i < json_object_array_length(arr); i++)
            if (parse_one(t, json_object_array_get_idx(arr, i), path, depth + 1)) return -1;
        return 0;
    }
    if (t->n_pre_tok == TOK_MAX_STAGES) return err_set("%s: more than %d pre_tokenizers", path, TOK_MAX_STAGES);
    tok_pretok *p = &t->pre_tok[t->n_pre_tok];
    memset(p, 0, sizeof *p);
    if (!strcmp(type, "BertPreTokenizer")) p->kind = PT_BERT;
    else if (!strcmp(type, "WhitespaceSplit")) p->kind = PT_WHITESPACE_SPLIT;
    else if (!strcmp(type, "ByteLevel")) {
        p->kind = PT_BYTELEVEL;
        p->add_prefix_space = 1; p->use_regex = 1; /* HF's defaults */
        if (json_get_bool(o, "add_prefix_space", &p->add_prefix_space, path) < 0 || json_get_bool(o, "use_regex", &p->use_regex, path) < 0)
            return -1;
        if (p->use_regex && !(p->re = tok_regex_compile(gpt2_pattern, strlen(gpt2_pattern), path))) return -1;
        t->byte_level = 1;
    } else if (!strcmp(type, "Split")) {
        json_object *pat;
        const char *re = NULL, *lit = NULL, *beh = NULL;
        p->kind = PT_SPLIT;
        if (tok_get_object(o, "pattern", &pat, path) != 1) return err_set("%s: pre_tokenizer Split needs a \"pattern\" object", path);
        if (json_get_string(pat, "Regex", &re, path) < 0 || json_get_string(pat, "String", &lit, path) < 0) return -1;
        if (re) { if (!(p->re = tok_regex_compile(re, strlen(re), path))) return -1; }
        else if (lit && *lit) { p->lit = xstrdup(lit); p->lit_len = (int)strlen(lit); }
        else return err_set("%s: pre_tokenizer Split: the pattern should be {\"Regex\": ...} or a non-empty {\"String\": ...}", path);
        if (json_get_string(o, "behavior", &beh, path) != 1) return err_set("%s: pre_tokenizer Split needs a \"behavior\"", path);
        static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
        p->behavior = -1;
        for (int i = 0; i < 5; i++) if (!strcmp(beh, names[i])) p->behavior = i;
        if (p->behavior < 0) return err_set("%s: pre_tokenizer Split: unknown behavior \"%s\"", path, beh);
        if (json_get_bool(o, "invert", &p->invert, path) < 0) return -1;
    } else if (!strcmp(type, "Metaspace")) {
        const char *rep = "\xe2\x96\x81", *scheme = NULL;
        int aps = 1;
        p->kind = PT_METASPACE;
        p->split = 1;
        if (json_get_string(o, "replacement", &rep, path) < 0 || json_get_string(o, "prepend_scheme", &scheme, path) < 0 ||
            json_get_bool(o, "add_prefix_space", &aps, path) < 0 || json_get_bool(o, "split", &p->split, path) < 0)
            return -1;
        if (!*rep || strlen(rep) >= sizeof p->rep) return err_set("%s: pre_tokenizer Metaspace: bad replacement", path);
        p->rep_len = (int)strlen(rep);
        memcpy(p->rep, rep, (size_t)p->rep_len);
        if (!scheme) p->prepend = aps ? PS_ALWAYS : PS_NEVER; /* files before tokenizers 0.19 */
        else if (!strcmp(scheme, "always")) p->prepend = PS_ALWAYS;
        else if (!strcmp(scheme, "first")) p->prepend = PS_FIRST;
        else if (!strcmp(scheme, "never")) p->prepend = PS_NEVER;
        else return err_set("%s: pre_tokenizer Metaspace: unknown prepend_scheme \"%s\"", path, scheme);
        memcpy(t->meta, p->rep, (size_t)p->rep_len);
        t->meta_len = p->rep_len;
    } else {
        return err_set("%s: pre_tokenizer \"%s\" is not supported (BertPreTokenizer, ByteLevel, Split, Metaspace, "
                       "WhitespaceSplit, Sequence)", path, type);
    }
    t->n_pre_tok++;
    return 0;
}

int tok_parse_pretokenizer(tokenizer *t, json_object *pre, const char *path)
{
    return pre ? parse_one(t, pre, path, 0) : 0;
}
