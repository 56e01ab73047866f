/* main.c — the attnscope binary: MPI up, one subcommand, MPI down. */
#include "run.h"
#include "check.h"
#include "par.h"
#include "util.h"
#include <hdf5.h>

static const char *usage =
    "attnscope " ATTNSCOPE_VERSION " — what every attention head of a transformer does, over a dataset\n"
    "usage: attnscope run    --model DIR (--text FILE | --input FILE.h5) --out OUT.h5 [options]\n"
    "       attnscope reduce OUT.h5 [--figures DIR] [--sample I --layer L --head H]\n"
    "       attnscope version\n"
    "run with mpirun/srun for several ranks; 'attnscope run --help' lists the options\n";



int main(int argc, char **argv)
{
    /* SERIALIZED: the writer thread (writer.h) does MPI-IO while the main thread computes */
    int provided = MPI_THREAD_SINGLE;
    CHECK_MPI(MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided));
    mpi_thread_level = provided;
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
    int rc = 2;
    const char *cmd = argc > 1 ? argv[1] : "";
    if (!strcmp(cmd, "run") && !(argc > 2 && !strcmp(argv[2], "--help"))) rc = run_main(argc - 1, argv + 1);
    else if (!strcmp(cmd, "reduce")) rc = reduce_main(argc - 1, argv + 1);
    else if (!strcmp(cmd, "version")) {
        if (rank == 0) printf("attnscope %s (commit %s)\n", ATTNSCOPE_VERSION, ATTNSCOPE_GIT_COMMIT);
        rc = 0;
    } else if (!strcmp(cmd, "run")) {
        if (rank == 0) fputs(run_usage_text(), stdout);
        rc = 0;
    } else if (rank == 0) fputs(usage, stderr);
    MPI_Finalize();
    return rc;
}
