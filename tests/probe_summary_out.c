/* probe_summary_out.c — drives summary_write_separate(), the writing side of a summary kept in its
 * own file (for runs whose /attention is too large to copy), for tests/test_faults_reduce.py until
 * `attnscope reduce` has an option for it:
 *     probe_summary_out RUN.h5 OUT.h5    the summary of RUN.h5 (32 bins, 3 exemplars) into OUT.h5
 * Exits 0, or 1 after one "attnscope: <message>" line, as attnscope reduce does. */
#include "par.h"
#include "summary.h"
#include "util.h"
#include <stdio.h>

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, rc = 2;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (argc == 3) {
        summary s;
        summary_write_info wi = {0};
        rc = par_agree(summary_compute(&s, argv[1], 32, 3, MPI_COMM_WORLD), MPI_COMM_WORLD)
             || par_agree(rank == 0 ? summary_write_separate(&s, argv[1], argv[2], &wi) : 0, MPI_COMM_WORLD);
        if (!rc && rank == 0) printf("probe_summary_out: wrote %s (the summary of %s)\n", argv[2], argv[1]);
        summary_free(&s);
    } else if (rank == 0) fprintf(stderr, "usage: probe_summary_out RUN.h5 OUT.h5\n");
    MPI_Finalize();
    return rc;
}
