/* run.h — the subcommands: `attnscope run` (the MPI job: model forward over a sharded dataset,
 * statistics, parallel HDF5 output) and `attnscope reduce` (dataset summaries and figures). */
#ifndef ATTNSCOPE_RUN_H
#define ATTNSCOPE_RUN_H
#define ATTNSCOPE_VERSION "0.1.0"
#ifndef ATTNSCOPE_GIT_COMMIT
#define ATTNSCOPE_GIT_COMMIT "unknown"
#endif

/* Each returns the process exit status (0 ok, 1 failure reported, 2 usage). Collective. */
int run_main(int argc, char **argv);
int reduce_main(int argc, char **argv);
/* `attnscope tokenize` (tokenize.c): ids of each input line, for diffing against HF. */
int tokenize_main(int argc, char **argv);
/* `attnscope preprocess` (preprocess.c): pixel_values of images, for diffing against HF. */
int preprocess_main(int argc, char **argv);
#endif
