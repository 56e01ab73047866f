/* cli.c — see cli.h. Two walks over argv with getopt_long: the first only looks for -h/--help,
 * --version and the job file (so that help works whatever else is wrong, and the job file is
 * read before the command line that overrides it); the second applies the options in order.
 * getopt_long runs in RETURN_IN_ORDER mode ("-" optstring): positionals come back as they stand
 * and argv is never permuted (run.c records the command line as given). */
#include "cli.h"
#include "check.h"
#include "par.h"
#include "run.h"
#include "util.h"
#include <getopt.h>
#include <limits.h>

/* getopt_long's val for table row i; -h and --help share 'h' */
#define VAL_ROW0 256
#define VAL_VERSION 255

static void *field(void *opts, const cli_opt *o) { return (char *)opts + o->off; }

static const char *bool_words[][2] = {{"true", "false"}, {"1", "0"}, {"yes", "no"}};

/* Stores value v (NULL: a flag given on the command line) into o's field. Returns 0, or -1 with
 * err_set() naming the option. */
static int set_value(void *opts, const cli_opt *o, const char *v)
{
    void *dst = field(opts, o);
    char *end;
    switch (o->kind) {
    case CLI_STR:
    case CLI_JOB:
    case CLI_POS:
        *(const char **)dst = v;
        return 0;
    case CLI_INT: {
        errno = 0;
        long x = strtol(v, &end, 10);
        if (!errno && end != v && !*end && x >= o->lo && x <= o->hi) {
            *(int *)dst = (int)x;
            return 0;
        }
        if (o->hi >= INT_MAX) return err_set("--%s: '%s' is not an integer >= %.0f", o->name, v, o->lo);
        return err_set("--%s: '%s' is not an integer in [%.0f, %.0f]", o->name, v, o->lo, o->hi);
    }
    case CLI_DOUBLE: {
        double x = strtod(v, &end);
        if (end == v || *end || !(x >= o->lo && x <= o->hi))   /* !(...) also refuses NaN */
            return err_set("--%s: '%s' is not a number in [%g, %g]", o->name, v, o->lo, o->hi);
        *(double *)dst = x;
        return 0;
    }
    case CLI_FLAG:
        if (!v) { *(int *)dst = 1; return 0; }
        for (size_t i = 0; i < sizeof bool_words / sizeof *bool_words; i++)
            for (int b = 0; b < 2; b++)
                if (!strcmp(v, bool_words[i][b])) { *(int *)dst = !b; return 0; }
        return err_set("--%s: expected true or false (or 1/0, yes/no), got '%s'", o->name, v);
    }
    return err_set("--%s: unknown option kind %d", o->name, (int)o->kind);
}

/* ---- did you mean ------------------------------------------------------------------------- */

/* Optimal string alignment distance: Levenshtein plus adjacent transpositions ("atnetion"). */
static int edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > 64 || m > 64) return INT_MAX;
    int d[65][65];
    for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int c = a[i - 1] != b[j - 1];
            int v = d[i - 1][j - 1] + c;
            if (d[i - 1][j] + 1 < v) v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v) v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[n][m];
}

const char *cli_suggest(const char *word, const char *const *candidates)
{
    int len = (int)strlen(word), limit = len / 3 < 1 ? 1 : len / 3 > 3 ? 3 : len / 3;
    const char *best = NULL, *prefix_of = NULL;
    int best_d = limit + 1, nprefix = 0;
    for (const char *const *c = candidates; *c; c++) {
        int d = edit_distance(word, *c);
        if (d < best_d) { best_d = d; best = *c; }
        if (len >= 2 && !strncmp(*c, word, (size_t)len)) { prefix_of = *c; nprefix++; }
    }
    return best ? best : nprefix == 1 ? prefix_of : NULL;
}

/* The table's option names (and help, version) as a NULL-ended list the caller frees. */
static const char **option_names(const cli_spec *s)
{
    int n = 0;
    while (s->opts[n].name) n++;
    const char **names = xmalloc((size_t)(n + 3) * sizeof *names);
    int k = 0;
    for (int i = 0; i < n; i++)
        if (s->opts[i].kind != CLI_POS) names[k++] = s->opts[i].name;
    names[k++] = "help";
    names[k++] = "version";
    names[k] = NULL;
    return names;
}

/* err_set("unknown option ARG[; did you mean --NAME?]") for the argument arg (up to any '='),
 * prefixed by where ("FILE:LINE: " or ""). */
static int unknown_option(const cli_spec *s, const char *where, const char *arg)
{
    int dashes = arg[0] == '-' ? (arg[1] == '-' ? 2 : 1) : 0;
    char word[128];
    snprintf(word, sizeof word, "%s", arg + dashes);
    word[strcspn(word, "=")] = 0;
    const char **names = option_names(s);
    const char *near = cli_suggest(word, names);
    free(names);
    int shown = (int)(strcspn(arg, "=") < 120 ? strcspn(arg, "=") : 120);
    if (near) return err_set("%sunknown option %.*s; did you mean --%s?", where, shown, arg, near);
    return err_set("%sunknown option %.*s", where, shown, arg);
}

/* ---- job file ------------------------------------------------------------------------------- */

/* "key = value" lines, '#' comments; the text is kept in *store for the string values. */
static int read_job(const cli_spec *s, void *opts, const char *path, char **store)
{
    size_t n;
    char *text = util_read_file(path, 1 << 20, &n);
    if (!text) return -1;
    *store = text;
    /* the lines are C strings: a NUL would end the file early, silently dropping what follows */
    const char *nul = memchr(text, 0, n);
    if (nul) {
        int at = 1;
        for (const char *c = text; c < nul; c++) at += *c == '\n';
        return err_set("%s:%d: NUL byte", path, at);
    }
    int lineno = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        lineno++;
        char *h = strchr(line, '#');
        if (h) *h = 0;
        char *k = line;
        while (*k == ' ' || *k == '\t') k++;
        if (!*k || *k == '\r') continue;
        char *eq = strchr(k, '=');
        if (!eq) return err_set("%s:%d: expected 'key = value'", path, lineno);
        char *ke = eq;
        while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t')) ke--;
        *ke = 0;
        char *v = eq + 1;
        while (*v == ' ' || *v == '\t') v++;
        char *ve = v + strlen(v);
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t' || ve[-1] == '\r')) ve--;
        *ve = 0;
        char where[1100];
        snprintf(where, sizeof where, "%s:%d: ", path, lineno);
        const cli_opt *o = s->opts;
        while (o->name && (o->kind == CLI_POS || strcmp(o->name, k))) o++;
        if (!o->name) {
            char dashed[128];
            snprintf(dashed, sizeof dashed, "--%s", k);
            return unknown_option(s, where, dashed);
        }
        if (o->kind == CLI_JOB) return err_set("%sa job file cannot name another job file", where);
        if (!*v) return err_set("%s--%s needs a value", where, k);
        if (set_value(opts, o, v)) {
            char m[1024];
            snprintf(m, sizeof m, "%s", err_get());
            return err_set("%s%s", where, m);
        }
    }
    return 0;
}

/* ---- command line --------------------------------------------------------------------------- */

/* Whether argument arg spells the long option name in full ("--name" or "--name=..."). */
static int spelled_out(const char *arg, const char *name)
{
    size_t n = strlen(name);
    return !strncmp(arg, "--", 2) && !strncmp(arg + 2, name, n) && (arg[2 + n] == 0 || arg[2 + n] == '=');
}

/* The long name behind getopt's code (its return value, or optopt after '?' or ':') when the
 * element arg is a long option getopt recognised, possibly by a prefix; else NULL. */
static const char *long_name(const cli_spec *s, int code, const char *arg)
{
    if (strncmp(arg, "--", 2)) return NULL;
    if (code >= VAL_ROW0) return s->opts[code - VAL_ROW0].name;
    return code == 'h' ? "help" : code == VAL_VERSION ? "version" : NULL;
}

/* Stores value into the next CLI_POS row. Returns 0, or -1 (err_set) when there is none left. */
static int set_positional(const cli_spec *s, void *opts, int *npos, const char *value)
{
    int k = 0;
    for (const cli_opt *o = s->opts; o->name; o++)
        if (o->kind == CLI_POS && k++ == *npos) {
            (*npos)++;
            return set_value(opts, o, value);
        }
    return err_set("unexpected argument '%s'", value);
}

/* One getopt_long walk. scan: only note help, version and the job file's path, ignoring
 * errors; otherwise apply every option and positional in order, stopping at the first error. */
static int walk(const cli_spec *s, const struct option *lopts, void *opts, int argc, char **argv, int scan,
                const char **job, int *njob)
{
    int help = 0, version = 0, npos = 0;
    optind = 0;   /* re-initialise getopt (the optstring's "-" mode is parsed again) */
    opterr = 0;
    for (;;) {
        int at = optind ? optind : 1;   /* the element getopt is about to read (argv is not permuted) */
        int c = getopt_long(argc, argv, "-:h", lopts, NULL);
        if (c == -1) break;
        const char *arg = argv[at];
        const char *name = long_name(s, c == '?' || c == ':' ? optopt : c, arg);
        int abbreviated = name && !spelled_out(arg, name);
        if (scan) {
            if (abbreviated) continue;
            if (c == 'h') help = 1;
            else if (c == VAL_VERSION) version = 1;
            else if (c >= VAL_ROW0 && s->opts[c - VAL_ROW0].kind == CLI_JOB) { *job = optarg; (*njob)++; }
            continue;
        }
        if (abbreviated || (c == '?' && !name)) return unknown_option(s, "", arg);
        if (c == '?') return err_set("--%s takes no value", name);
        if (c == ':') return err_set("--%s needs a value", name);
        if (c == 1 && set_positional(s, opts, &npos, optarg)) return -1;
        if (c >= VAL_ROW0) {
            const cli_opt *o = &s->opts[c - VAL_ROW0];
            if (set_value(opts, o, o->kind == CLI_FLAG ? NULL : optarg)) return -1;
        }
    }
    if (scan) return help ? CLI_HELP : version ? CLI_VERSION : CLI_OK;
    for (int i = optind; i < argc; i++)   /* after "--" */
        if (set_positional(s, opts, &npos, argv[i])) return -1;
    return CLI_OK;
}

int cli_parse(const cli_spec *s, void *opts, int argc, char **argv, char **job_text)
{
    if (job_text) *job_text = NULL;
    int n = 0;
    while (s->opts[n].name) n++;
    for (int i = 0; i < n; i++)
        if (s->opts[i].def && set_value(opts, &s->opts[i], s->opts[i].def))
            check_fail(__FILE__, __LINE__, "cli_parse: the table's default", err_get());
    struct option *lopts = xcalloc((size_t)n + 3, sizeof *lopts);
    int k = 0;
    for (int i = 0; i < n; i++)
        if (s->opts[i].kind != CLI_POS)
            lopts[k++] = (struct option){s->opts[i].name, s->opts[i].kind == CLI_FLAG ? no_argument : required_argument, NULL, VAL_ROW0 + i};
    lopts[k++] = (struct option){"help", no_argument, NULL, 'h'};
    lopts[k++] = (struct option){"version", no_argument, NULL, VAL_VERSION};
    const char *job = NULL;
    int njob = 0;
    int rc = walk(s, lopts, opts, argc, argv, 1, &job, &njob);
    if (rc == CLI_OK && njob > 1) rc = err_set("--job: give one job file, not %d", njob);
    if (rc == CLI_OK && job) {
        if (!job_text) check_fail(__FILE__, __LINE__, "cli_parse", "a table with a job file needs job_text");
        rc = read_job(s, opts, job, job_text);
    }
    if (rc == CLI_OK) rc = walk(s, lopts, opts, argc, argv, 0, NULL, NULL);
    free(lopts);
    return rc;
}

/* ---- usage and the end of parsing ------------------------------------------------------------ */

static void print_row(FILE *f, const char *left, const char *help, const char *def)
{
    const int col = 25;   /* where the help text starts: two spaces, the option, padding */
    int w = fprintf(f, "  %s", left);
    if (w >= col) { fputc('\n', f); w = 0; }
    fprintf(f, "%*s", col - w, "");
    for (const char *p = help; *p; p++) {
        fputc(*p, f);
        if (*p == '\n') fprintf(f, "%*s", col, "");
    }
    if (def) fprintf(f, " [default: %s]", def);
    fputc('\n', f);
}

char *cli_identity(const cli_spec *s, const void *opts)
{
    size_t cap = 256, n = 0;
    char *out = xmalloc(cap);
    out[0] = 0;
    for (const cli_opt *o = s->opts; o->name; o++) {
        if (!o->identity) continue;
        const void *p = (const char *)opts + o->off;
        char num[64];
        const char *v = num;
        if (o->kind == CLI_INT || o->kind == CLI_FLAG) snprintf(num, sizeof num, "%d", *(const int *)p);
        else if (o->kind == CLI_DOUBLE) snprintf(num, sizeof num, "%.17g", *(const double *)p);
        else v = *(const char *const *)p ? *(const char *const *)p : "";
        const size_t need = strlen(o->name) + strlen(v) + 5;
        if (n + need > cap) { cap = 2 * (n + need); out = xrealloc(out, cap); }
        n += (size_t)sprintf(out + n, "--%s=%s\n", o->name, v);
    }
    return out;
}

void cli_usage(const cli_spec *s, FILE *f)
{
    fputs(s->synopsis, f);
    if (s->about) fputs(s->about, f);
    char left[128];
    for (const cli_opt *o = s->opts; o->name; o++) {
        if (o->kind == CLI_POS) continue;
        snprintf(left, sizeof left, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        print_row(f, left, o->help ? o->help : "", o->kind == CLI_FLAG ? NULL : o->def);
    }
    print_row(f, "-h, --help", "print this help and exit", NULL);
    print_row(f, "--version", "print the version and exit", NULL);
}

void cli_version(FILE *f) { fprintf(f, "attnscope %s (commit %s)\n", ATTNSCOPE_VERSION, ATTNSCOPE_GIT_COMMIT); }

int cli_agree(const cli_spec *s, int rc, MPI_Comm comm)
{
    int rank, asked;
    MPI_Comm_rank(comm, &rank);
    /* help and version come from argv alone, so every rank has them; agree anyway so that no rank
     * can take a collective path (par_agree) the others skip */
    int mine = rc > 0 ? rc : 0;
    CHECK_MPI(MPI_Allreduce(&mine, &asked, 1, MPI_INT, MPI_MAX, comm));
    if (asked > 0) {
        if (rank == 0) {
            if (asked == CLI_HELP) cli_usage(s, stdout);
            else cli_version(stdout);
            fflush(stdout);
        }
        return 0;
    }
    if (!par_agree(rc, comm)) return -1;
    if (rank == 0) {
        fprintf(stderr, "try 'attnscope %s --help'\n", s->cmd);
        fflush(stderr);
    }
    return 2;
}
