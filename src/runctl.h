/* runctl.h — the run's control across ranks while they compute: signals turned into a stop that
 * every rank makes at its next batch boundary, and the progress of the whole job on rank 0.
 *
 * Signals: SIGTERM, SIGINT and SIGUSR1 (Slurm's time limit and preemption send SIGTERM, its
 * --signal option USR1, Ctrl-C SIGINT) set a flag while the ranks compute (graceful phase); a
 * second one, or one outside the graceful phase (start-up, where nothing is computed yet), exits
 * at once with status 75. Either way nothing finished is lost: runstate.h keeps only durable work.
 *
 * Messages (point to point, never a collective, so ranks with different numbers of batches never
 * wait for each other): each rank sends its progress to rank 0 about twice a second; a rank that
 * stops tells rank 0, which tells every rank still computing to stop; at the end every rank sends
 * its final state and rank 0 answers with the verdict. The main thread is the only one that calls
 * MPI (the writer thread only writes files). */
#ifndef ATTNSCOPE_RUNCTL_H
#define ATTNSCOPE_RUNCTL_H
#include <mpi.h>
#include <stdint.h>

enum { RUNCTL_RUNNING, RUNCTL_DONE, RUNCTL_STOPPED, RUNCTL_FAILED };
#define RUNCTL_EXIT_STOPPED 75   /* EX_TEMPFAIL: stopped with progress saved; run again to resume */

/* Installs the handlers (once, on every rank; rank 0 is the one that prints). */
void runctl_signals_install(int rank);
/* graceful = 1 while the ranks compute (a signal asks for a stop), 0 elsewhere (exit at once). */
void runctl_set_graceful(int graceful);
/* The signal received in the graceful phase, or 0; its name ("SIGTERM"). */
int runctl_signal(void);
/* Once every rank has said what it had to say: a signal (mpirun ending the ranks after one
 * exited non-zero) exits without a word. */
void runctl_set_silent(void);
const char *runctl_signal_name(int sig);

typedef struct {
    MPI_Comm comm;
    int rank, nranks;
    int64_t total_samples, total_tokens, base_samples, base_tokens;  /* job-wide; base: done before this start */
    double t0, every, last_print, last_send;
    int64_t last_tokens;         /* rank 0: the job's tokens (samples when it counts none) in the last line printed */
    int mode;                    /* 0 off, 1 one updating line (terminal), 2 a line every `every` s (log) */
    int color;
    int stop;                    /* this rank must stop */
    /* rank 0: what each rank last reported */
    int64_t *r_samples, *r_tokens;
    int *r_state, *ctl_sent;
    /* other ranks */
    int64_t sbuf[3];
    MPI_Request sreq, ctl_req;
    int ctl_val, ctl_done;
} runctl;

/* Collective. my_samples/my_tokens: what this rank has done already (restored from its record).
 * quiet: no progress lines; every: seconds between lines when stdout is not a terminal.
 * total_tokens < 0: a run that counts no tokens (a CNN's images): the lines give samples only. */
void runctl_init(runctl *c, MPI_Comm comm, int64_t total_samples, int64_t total_tokens, int64_t my_samples,
                 int64_t my_tokens, int quiet, double every);
/* At a batch boundary, with this rank's cumulative counts. Returns 1 when this rank must stop
 * (a signal here, or a stop from rank 0). Never blocks. */
int runctl_poll(runctl *c, int64_t my_samples, int64_t my_tokens);
/* Called by every rank once its loop ended, with its final state. Rank 0 waits for every rank
 * (printing progress, passing on a stop), then all learn the verdict: RUNCTL_DONE when every rank
 * completed, RUNCTL_FAILED when one failed, else RUNCTL_STOPPED. */
int runctl_finish(runctl *c, int state, int64_t my_samples, int64_t my_tokens);
#endif
