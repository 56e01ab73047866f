/* main.c — the attnscope binary: MPI up, one subcommand, MPI down. */
#include "run.h"
#include "check.h"
#include "cli.h"
#include "par.h"
#include "runctl.h"
#include "util.h"
#include <hdf5.h>

static const char *usage =
    "attnscope " ATTNSCOPE_VERSION " — what every attention head of a transformer does, over a dataset\n"
    "usage: attnscope run    --model DIR (--text FILE | --input FILE.h5) --out OUT.h5 [options]\n"
    "       attnscope reduce OUT.h5 [--figures DIR] [--sample I --layer L --head H]\n"
    "       attnscope tokenize --tokenizer PATH [--text FILE] [--tokens]\n"
    "       attnscope preprocess --images DIR|LISTFILE --preprocessor DIR [--out FILE.h5]\n"
    "       attnscope version | --version\n"
    "       attnscope help | -h | --help\n"
    "run with mpirun/srun for several ranks; 'attnscope run --help' and 'attnscope reduce --help'\n"
    "list the options (--opt value or --opt=value)\n";

int main(int argc, char **argv)
{
    /* a signal during start-up already gets one line (from rank 0, as the launcher numbers it) */
    const char *r0 = getenv("OMPI_COMM_WORLD_RANK") ? getenv("OMPI_COMM_WORLD_RANK") : getenv("PMIX_RANK") ? getenv("PMIX_RANK") : getenv("SLURM_PROCID");
    runctl_signals_install(r0 ? atoi(r0) : 0);
    /* FUNNELED: the writer thread (writer.h) only writes files; MPI is the main thread's */
    int provided = MPI_THREAD_SINGLE;
    CHECK_MPI(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided));
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    /* srun without PMI support makes N 1-rank jobs that would each write the whole output */
    if (par_check_launch(MPI_COMM_WORLD)) {
        if (err_get()[0]) fprintf(stderr, "attnscope: %s\n", err_get());
        MPI_Finalize();
        return 2;
    }
    /* HDF5 prints its error stacks for our own files only through CHECK_H5; input files are
     * probed with H5E_BEGIN_TRY and reported in one line */
    int rc = 0;
    const char *cmd = argc > 1 ? argv[1] : NULL;
    if (!cmd) {
        if (rank == 0) fputs(usage, stderr);
        rc = 2;
    } else if (!strcmp(cmd, "run")) rc = run_main(argc - 1, argv + 1);
    else if (!strcmp(cmd, "reduce")) rc = reduce_main(argc - 1, argv + 1);
    else if (!strcmp(cmd, "tokenize")) rc = tokenize_main(argc - 1, argv + 1);
    else if (!strcmp(cmd, "preprocess")) rc = preprocess_main(argc - 1, argv + 1);
    else if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        if (rank == 0) cli_version(stdout);
    } else if (!strcmp(cmd, "help") || !strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        if (rank == 0) fputs(usage, stdout);
    } else {
        /* argv is the same on every rank: each takes this branch, rank 0 says why */
        static const char *const commands[] = {"run", "reduce", "tokenize", "preprocess", "version", "help", NULL};
        static const char *const options[] = {"--help", "--version", NULL};
        const char *near = cli_suggest(cmd, cmd[0] == '-' ? options : commands);
        if (rank == 0) {
            if (cmd[0] == '-') fprintf(stderr, "attnscope: unknown option %s", cmd);
            else fprintf(stderr, "attnscope: unknown command '%s'", cmd);
            if (near) fprintf(stderr, cmd[0] == '-' ? "; did you mean %s?" : "; did you mean '%s'?", near);
            else if (cmd[0] == '-') fputs(" (options follow the command: attnscope run|reduce [options])", stderr);
            fputs("\ntry 'attnscope --help'\n", stderr);
        }
        rc = 2;
    }
    MPI_Finalize();
    /* every rank has said what it had to say: mpirun ending the others once one has exited
     * non-zero must not add an "interrupted" line to the command's own. (Set after MPI_Finalize:
     * set before it, LeakSanitizer's exit check crashed reading Open MPI's dynamic TLS in every
     * process of `make sanitize`, GCC 12 / glibc 2.36.) */
    runctl_set_silent();
    return rc;
}
