/* par.c — see par.h. */
#include "par.h"
#include "check.h"
#include "util.h"
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

int par_agree(int rc, MPI_Comm comm)
{
    int rank, first_bad;
    MPI_Comm_rank(comm, &rank);
    int me = rc ? rank : INT_MAX;
    CHECK_MPI(MPI_Allreduce(&me, &first_bad, 1, MPI_INT, MPI_MIN, comm));
    if (first_bad == INT_MAX) return 0;
    if (rank == first_bad) {
        fprintf(stderr, "attnscope: %s\n", err_get()[0] ? err_get() : "failed");
        fflush(stderr);
    }
    return -1;
}

/* Parses a launcher's count: a positive decimal integer, else 0. */
static long launch_count(const char *s)
{
    if (!s || !*s) return 0;
    char *end;
    long v = strtol(s, &end, 10);
    return *end == '\0' && v > 0 ? v : 0;
}

int par_check_launch(MPI_Comm comm)
{
    /* each launcher's size variable with the rank variable it sets beside it, nearest first:
     * an mpirun inside an srun step sees both its own and the step's */
    static const char *vars[][2] = {
        {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"},
        {"MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK"},
        {"PMI_SIZE", "PMI_RANK"},
        {"SLURM_STEP_NUM_TASKS", "SLURM_PROCID"},
    };
    const char *size_var = NULL, *rank_var = NULL;
    long want = 0;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0] && !want; i++)
        if ((want = launch_count(getenv(vars[i][0])))) size_var = vars[i][0], rank_var = vars[i][1];
    int size;
    MPI_Comm_size(comm, &size);
    if (!want || size >= want) return 0;
    const char *task = getenv(rank_var), *ntasks = getenv("SLURM_NTASKS");
    if (task && strcmp(task, "0")) return -1;   /* one message for the N jobs: task 0's */
    err_set("started as one of %ld tasks (%s=%ld%s%s), but MPI sees %d rank%s: the launcher gave "
            "MPI no way to connect the tasks (srun without PMI support), so each would be its own "
            "%d-rank job over the whole input. Under Slurm start it with `srun --mpi=pmix` (as "
            "slurm/attnscope.sbatch does; `srun --mpi=list` shows the site's plugins), or with mpirun",
            want, size_var, want, ntasks ? ", SLURM_NTASKS=" : "", ntasks ? ntasks : "", size,
            size == 1 ? "" : "s", size);
    return -1;
}

void par_local_rank(MPI_Comm comm, int *local_rank, int *local_size)
{
    MPI_Comm local;
    CHECK_MPI(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local));
    MPI_Comm_rank(local, local_rank);
    MPI_Comm_size(local, local_size);
    MPI_Comm_free(&local);
}

void par_banner(MPI_Comm comm, const char *what)
{
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    char host[256] = "?", line[1024];
    gethostname(host, sizeof host - 1);
    snprintf(line, sizeof line, "[rank %d/%d] host=%s pid=%ld %s", rank, size, host, (long)getpid(), what);
    char *all = rank == 0 ? xmalloc((size_t)size * sizeof line) : NULL;
    CHECK_MPI(MPI_Gather(line, sizeof line, MPI_CHAR, all, sizeof line, MPI_CHAR, 0, comm));
    if (rank == 0) {
        for (int r = 0; r < size; r++) printf("%s\n", all + (size_t)r * sizeof line);
        fflush(stdout);
        free(all);
    }
}
