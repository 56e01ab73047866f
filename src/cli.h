/* cli.h — the command line and job files of the subcommands, from one option table.
 *
 * A subcommand describes its options once, as rows of cli_opt (name, kind, where the value goes,
 * range, default, help); cli_parse() reads a job file and the command line against that table
 * and cli_usage() prints the option list from it. Adding an option is one row (and its field).
 *
 * Command line (getopt_long, arguments kept in their order, argv not permuted):
 *   --opt value and --opt=value; flags take no value; -h/--help anywhere wins over everything
 *   else (then --version); `--` ends the options. Long names must be spelled out in full:
 *   getopt_long's unique-prefix abbreviations are refused (a job file has no such rule, and an
 *   abbreviation that works today breaks when an option is added), and the error suggests the
 *   full name.
 * Job file (a row of kind CLI_JOB): "key = value" lines, '#' starts a comment, keys are the long
 *   names without "--", flags take true/false/1/0/yes/no. It is read before the command line, so
 *   the command line wins.
 * Errors are one line naming the option (and FILE:LINE for a job file), with "did you mean
 *   --NAME?" for an unknown name close to a known one. */
#ifndef ATTNSCOPE_CLI_H
#define ATTNSCOPE_CLI_H
#include <mpi.h>
#include <stddef.h>
#include <stdio.h>

typedef enum {
    CLI_STR,     /* const char *: points into argv or into the job file's text */
    CLI_INT,     /* int in [lo, hi] (decimal) */
    CLI_DOUBLE,  /* double in [lo, hi] */
    CLI_FLAG,    /* int set to 1 by --name; 1/0 from a job file */
    CLI_JOB,     /* const char *: a job file, read before the command line; command line only */
    CLI_POS,     /* const char *: the next positional argument (rows in order); not an option */
} cli_kind;

typedef struct {
    const char *name;   /* long name without "--" (also the job-file key); for CLI_POS the
                         * placeholder shown in messages ("OUT.h5"). NULL ends the table */
    cli_kind kind;
    size_t off;         /* offsetof the destination field in the caller's options struct */
    const char *arg;    /* the value's placeholder in the usage ("DIR", "N"); NULL for flags */
    const char *help;   /* the usage text; '\n' continues it on the next line, aligned */
    double lo, hi;      /* CLI_INT, CLI_DOUBLE: the accepted range, both ends included */
    const char *def;    /* default, parsed like a value before anything else is read and shown
                         * as "[default: DEF]"; NULL: cli_parse leaves the field as the caller set it */
    int identity;       /* 1: the value changes the output, so it is part of a run's identity
                         * (cli_identity; a resumed run must have the same) */
} cli_opt;

/* One row, every field designated (so that -Wextra is content with the optional ones):
 *   CLI_OPT("batch", CLI_INT, offsetof(run_opts, batch), "N", "samples per batch", .lo = 1, .hi = 4096, .def = "32") */
#define CLI_OPT(name_, kind_, off_, arg_, help_, ...) \
    {.name = (name_), .kind = (kind_), .off = (off_), .arg = (arg_), .help = (help_), __VA_ARGS__}

typedef struct {
    const char *cmd;       /* the subcommand, for "try 'attnscope CMD --help'" */
    const char *synopsis;  /* the usage's first line(s), from "usage: " on, ending in '\n' */
    const char *about;     /* text between the synopsis and the options, or NULL */
    const cli_opt *opts;   /* the table, ended by a row whose name is NULL */
} cli_spec;

enum { CLI_OK = 0, CLI_ERROR = -1, CLI_HELP = 1, CLI_VERSION = 2 };

/* Fills the struct at opts from the table's defaults, then the job file (if the command line
 * names one), then argv[1..argc) (argv[0] is the subcommand). Checks kinds and ranges only; what
 * depends on several options is the caller's to check. *job_text (may be NULL when the table has
 * no CLI_JOB row) receives the job file's text, which CLI_STR values from it point into: the
 * caller frees it after the last use of opts (NULL when no job file was read). Uses getopt_long's
 * globals (resets optind). Returns CLI_OK; CLI_HELP or CLI_VERSION when -h/--help or --version
 * was given (nothing else is read then); CLI_ERROR with err_set() (one line) otherwise. */
int cli_parse(const cli_spec *spec, void *opts, int argc, char **argv, char **job_text);

/* Collective; every rank passes its cli_parse() status (or CLI_ERROR, with err_set(), for the
 * caller's own checks). Returns -1 when the subcommand should go on; otherwise the exit status
 * after rank 0 printed what was asked: 0 for the usage (stdout) or the version, 2 for an error
 * (the lowest failing rank prints "attnscope: <message>", rank 0 then "try 'attnscope CMD --help'"). */
int cli_agree(const cli_spec *spec, int rc, MPI_Comm comm);

/* Writes the usage: synopsis, about, one line per option (continuations aligned), -h and
 * --version. */
void cli_usage(const cli_spec *spec, FILE *f);

/* Writes "attnscope VERSION (commit X)\n". */
void cli_version(FILE *f);

/* "--name=value\n" for every row marked identity, in table order, from the parsed struct at
 * opts (strings as given, "" when unset; flags 0/1; doubles to 17 digits). Caller frees. */
char *cli_identity(const cli_spec *spec, const void *opts);

/* The candidate closest to word by edit distance (a transposition counts as one edit; close:
 * at most max(1, min(3, len/3)) edits), else the one candidate word is a prefix of (2 or more
 * characters); NULL when there is none. candidates ends with NULL. */
const char *cli_suggest(const char *word, const char *const *candidates);
#endif
