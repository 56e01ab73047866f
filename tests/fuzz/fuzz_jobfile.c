/* fuzz_jobfile.c — a --job file through cli_parse (src/cli.c): "key = value" lines, comments,
 * NUL bytes, unknown keys and their "did you mean" suggestion (cli_suggest), every value kind
 * (string, integer and double ranges, flags), against an option table shaped like run's, then
 * cli_identity of what was parsed. The command line names only the job file. */
#include "fuzz_common.h"
#include "cli.h"
#include <stddef.h>
#include <stdlib.h>

typedef struct {
    const char *job, *model, *text, *out, *dtype, *pos;
    int max_len, batch, topk, save, overwrite, quiet;
    double eps, every;
} opts;

static const cli_opt table[] = {
    CLI_OPT("job", CLI_JOB, offsetof(opts, job), "FILE", "job file"),
    CLI_OPT("model", CLI_STR, offsetof(opts, model), "DIR", "model", .identity = 1),
    CLI_OPT("text", CLI_STR, offsetof(opts, text), "FILE", "corpus", .identity = 1),
    CLI_OPT("out", CLI_STR, offsetof(opts, out), "FILE", "output"),
    CLI_OPT("attention-dtype", CLI_STR, offsetof(opts, dtype), "T", "dtype", .def = "float16", .identity = 1),
    CLI_OPT("max-len", CLI_INT, offsetof(opts, max_len), "N", "length", .lo = 2, .hi = 1 << 20, .def = "512", .identity = 1),
    CLI_OPT("batch", CLI_INT, offsetof(opts, batch), "N", "batch", .lo = 1, .hi = 4096, .def = "32"),
    CLI_OPT("topk", CLI_INT, offsetof(opts, topk), "K", "top k", .lo = 0, .hi = 64, .def = "5", .identity = 1),
    CLI_OPT("save-attention", CLI_FLAG, offsetof(opts, save), NULL, "keep maps", .identity = 1),
    CLI_OPT("overwrite", CLI_FLAG, offsetof(opts, overwrite), NULL, "replace"),
    CLI_OPT("quiet", CLI_FLAG, offsetof(opts, quiet), NULL, "quiet"),
    CLI_OPT("sink-eps", CLI_DOUBLE, offsetof(opts, eps), "X", "eps", .lo = 0, .hi = 1, .def = "1e-3", .identity = 1),
    CLI_OPT("progress-every", CLI_DOUBLE, offsetof(opts, every), "S", "seconds", .lo = 0, .hi = 1e9),
    CLI_OPT("OUT.h5", CLI_POS, offsetof(opts, pos), NULL, "positional"),
    {0},
};
static const cli_spec spec = {"run", "usage: attnscope run [OPTIONS]\n", NULL, table};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *path = (char *)fuzz_file("demo.job", data, size);
    FUZZ_GUARD();
    char *argv[] = {"run", "--job", path, NULL}, *text = NULL;
    opts o = {0};
    if (cli_parse(&spec, &o, 3, argv, &text) == CLI_OK) free(cli_identity(&spec, &o));
    free(text);
    return 0;
}
