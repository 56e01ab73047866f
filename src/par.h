/* par.h — what the ranks do together: checking that the launcher made one MPI job of them,
 * agreeing on success, the one-line-per-rank banner, and (with CUDA) binding each rank to a GPU
 * by its node-local rank. */
#ifndef ATTNSCOPE_PAR_H
#define ATTNSCOPE_PAR_H
#include <mpi.h>

/* Collective. rc is this rank's status (0 ok, else failed with err_get() set). Returns 0 when
 * every rank succeeded; otherwise the lowest failing rank prints "attnscope: <message>" once
 * to stderr and every rank returns -1. */
int par_agree(int rc, MPI_Comm comm);

/* Checks that MPI formed the job the launcher started. The launcher's size is the first of
 * OMPI_COMM_WORLD_SIZE (mpirun), MV2_COMM_WORLD_SIZE, PMI_SIZE (Hydra, srun --mpi=pmi2) and
 * SLURM_STEP_NUM_TASKS (any srun) that is set; SLURM_NTASKS alone is not used, since in a batch
 * script it counts the allocation, and `mpirun -n 2` in a 4-task allocation is fine. Returns 0
 * when there is no launcher size or MPI_Comm_size(comm) is at least that size; a larger world can
 * only come from an MPI launcher inside a step (mpirun in an `srun --pty` shell). A smaller one is
 * the mark of srun without PMI support for this MPI: each task became its own 1-rank job, and all
 * of them would process the whole input. Then returns -1 on every task, and sets err_get() only
 * on the launcher's rank 0 (the task of the size variable's rank partner: SLURM_PROCID, ...) so
 * that the independent jobs print the message once between them. No communication. */
int par_check_launch(MPI_Comm comm);

/* Node-local rank and size (MPI_Comm_split_type SHARED). */
void par_local_rank(MPI_Comm comm, int *local_rank, int *local_size);

/* Prints "[rank r/K] host=... pid=... <what>" from every rank, in rank order. Collective. */
void par_banner(MPI_Comm comm, const char *what);
#endif
