/* run_int.h — private to `attnscope run` (run.c) and its CNN path (run_cnn.c): the CNN run's
 * options, and the helpers both paths share. */
#ifndef ATTNSCOPE_RUN_INT_H
#define ATTNSCOPE_RUN_INT_H
#include "backend.h"
#include "dataset.h"
#include "h5out.h"
#include "run.h"
#include "runstate.h"
#include <mpi.h>

/* What run.c hands run_cnn: the options that apply to a CNN (the rest are refused before). */
typedef struct {
    const char *model, *input, *images, *text, *probe, *out;
    const char *cmdline;       /* the command line as given (root attribute) */
    const char *identity;      /* cli_identity: every option that changes the output (the manifest) */
    int batch, save_features, features_f16, quiet, force;
    double checkpoint_every;   /* seconds between durable progress records (0: after every batch) */
    double progress_every;     /* seconds between progress lines when stdout is not a terminal */
    int height, width;         /* set by run_cnn: the images' size */
} run_cnn_opts;

/* Collective: the run of a CNN model directory (run_cnn.c) on backend be, with rank 0 holding
 * the partial directory st (runstate_open done). Returns the exit status (0, 1 with the message
 * printed once). */
int run_cnn(const run_cnn_opts *o, backend *be, runstate *st, MPI_Comm comm);
/* Collective, --images: every rank's images must come out of the processor at one size; rank 0
 * gets every image's original size in *all (n_total x 2, caller frees). 0, or -1 with err_set. */
int run_images_agree(const dataset *d, MPI_Comm comm, int rank, int nranks, int32_t **all);
/* Rank 0, a fresh file: /images/path, /images/orig_size and the processor's name. */
void run_images_write(h5out *out, const dataset *d, const int32_t *size_all, const char *model_dir);
/* Collective: the SHA-256 of every weight file as a JSON object {"name": "hex"} (rank 0 reads
 * them, every rank gets the text; caller frees). run_weights_sha_start (before model_load) lets
 * rank 0 begin on a thread as soon as the load knows the files (run_wsha.c); run_weights_sha
 * then takes that thread's result when it hashed these files. */
void run_weights_sha_start(int rank);
char *run_weights_sha(char *const *files, int n_files, MPI_Comm comm, int rank);
/* Collective: the SHA-256 of every rank's samples (lengths, rows, ids, types and the preprocessed
 * pixels), combined in rank order; hex on rank 0 ("" elsewhere). */
void run_samples_sha(const dataset *d, MPI_Comm comm, int rank, int nranks, char hex[65]);
/* The manifest of a run (runstate.h): "key=value" lines of the format, the ranks, the identity
 * options, the backend, the weights' and the samples' SHA-256 and the number of samples. Caller
 * frees. */
char *run_manifest(const char *format, const char *identity, const char *backend_name, int nranks, const char *weights,
                   const char *samples, int64_t N);
/* Collective: a run that failed before saving anything leaves nothing beside --out. */
void run_abandon(runstate *st, MPI_Comm comm);
/* Rank 0: prints line (what the output holds) with the bytes still to write and the free space
 * of the output's file system, and refuses (unless force) a run whose remaining total bytes do
 * not fit: 0, or -1 with err_set() giving the numbers. */
int run_check_space(const char *line, int64_t total, const runstate *st, int resume, int force);
/* The end of a failed run's line: what to do (err: the failed write's errno; input: an input, an
 * image, could not be read) and that the same command resumes. */
const char *run_failure_advice(int err, int input);
#endif
