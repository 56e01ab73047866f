/* tokenize.c — `attnscope tokenize --tokenizer PATH [--text FILE] [--tokens]`: one line of
 * space-separated ids (or token strings) per input line, with the special tokens of the
 * post-processor and no truncation, as HF's Tokenizer.encode(line) gives them; for diffing
 * against Hugging Face. PATH is a tokenizer.json or a model directory (tok_load). Rank 0 does
 * the work; the other ranks only agree on the options. */
#include "run.h"
#include "cli.h"
#include "par.h"
#include "tokenizer.h"
#include "util.h"
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *tokenizer, *text;
    int tokens;
} tokenize_opts;

#define F(field) offsetof(tokenize_opts, field)
static const cli_opt tokenize_options[] = {
    CLI_OPT("tokenizer", CLI_STR, F(tokenizer), "PATH", "a tokenizer.json, a GGUF file (its tokenizer.ggml.* metadata), or a\n"
            "model directory (tokenizer.json, vocab.txt or vocab.json + merges.txt)"),
    CLI_OPT("text", CLI_STR, F(text), "FILE", "UTF-8 text, one input a line (default: standard input)"),
    CLI_OPT("tokens", CLI_FLAG, F(tokens), NULL, "print the token strings (\"Ġthe\", \"##ing\") instead of the ids"),
    {0}};
#undef F

static const cli_spec tokenize_cli = {
    .cmd = "tokenize",
    .synopsis = "usage: attnscope tokenize --tokenizer PATH [--text FILE] [--tokens]\n",
    .about = "  writes one line per input line: its ids (or tokens) separated by spaces, with the special tokens\n"
             "  of the post-processor and no truncation, as Hugging Face's Tokenizer.encode(line) gives them;\n"
             "  a line ends at \\n, which is not part of it\n",
    .opts = tokenize_options};

/* all of f, NUL-terminated; NULL with err_set() */
static char *read_all(FILE *f, const char *name, size_t *n)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (len + 1 == cap) buf = xrealloc(buf, cap *= 2);
        size_t k = fread(buf + len, 1, cap - 1 - len, f);
        len += k;
        if (k == 0) break;
    }
    if (ferror(f)) { free(buf); err_set("%s: read error", name); return NULL; }
    buf[len] = 0;
    *n = len;
    return buf;
}

int tokenize_main(int argc, char **argv)
{
    MPI_Comm comm = MPI_COMM_WORLD;
    int rank;
    MPI_Comm_rank(comm, &rank);
    tokenize_opts o;
    memset(&o, 0, sizeof o);
    int rc = cli_parse(&tokenize_cli, &o, argc, argv, NULL);
    if (rc == CLI_OK && !o.tokenizer) rc = err_set("--tokenizer PATH is required");
    int st = cli_agree(&tokenize_cli, rc, comm);
    if (st >= 0) return st;
    if (rank != 0) return par_agree(0, comm) ? 1 : 0;

    tokenizer *t = tok_load(o.tokenizer);
    char *text = NULL;
    size_t n = 0;
    rc = t ? 0 : -1;
    if (!rc) {
        FILE *f = o.text ? util_fopen_regular(o.text, NULL) : stdin;   /* (err_set: a FIFO is refused) */
        if (!f) rc = -1;
        else {
            if (!(text = read_all(f, o.text ? o.text : "standard input", &n))) rc = -1;
            if (o.text) fclose(f);
        }
    }
    int32_t *ids = NULL;
    int cap = 0;
    for (size_t s = 0; !rc && s < n;) {
        const char *nl = memchr(text + s, '\n', n - s);
        size_t e = nl ? (size_t)(nl - text) : n;
        int full = 0;
        for (;;) {
            int k = tok_encode(t, text + s, e - s, cap, ids, &full);
            if (k < 0) { rc = -1; break; }
            if (full <= cap) {
                for (int i = 0; i < k; i++) {
                    if (i) putchar(' ');
                    if (o.tokens) fputs(tok_id_to_token(t, ids[i]) ? tok_id_to_token(t, ids[i]) : "?", stdout);
                    else printf("%d", ids[i]);
                }
                putchar('\n');
                break;
            }
            ids = xrealloc(ids, (size_t)full * sizeof *ids);
            cap = full;
        }
        s = e + 1;
    }
    if (!rc && (fflush(stdout) != 0 || ferror(stdout))) rc = err_set("standard output: write error");
    free(ids);
    free(text);
    tok_free(t);
    return par_agree(rc, comm) ? 1 : 0;
}
