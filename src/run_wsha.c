/* run_wsha.c — the weights' SHA-256 of a run's identity (run_int.h): on rank 0, on a thread that
 * starts as soon as model_load knows the weight files, so that hashing them (0.3 s for bert-base,
 * seconds for a billion parameters) overlaps the load instead of following it. */
#include "run_int.h"
#include "check.h"
#include "model.h"
#include "util.h"
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static struct {
    pthread_t th;
    int started;
    char **files; int n;       /* the thread's own copy of the names */
    char *json;                /* its result */
} job;

/* {"name": "hex", ...} of files[0..n) ("unreadable" for a file that cannot be read) */
static char *sha_json(char *const *files, int n)
{
    char *s = xmalloc(64 + (size_t)n * 4200), *p = s;
    p += sprintf(p, "{");
    for (int i = 0; i < n; i++) {
        char hex[65] = "unreadable";
        if (util_sha256_file(files[i], hex)) snprintf(hex, sizeof hex, "unreadable");
        const char *base = strrchr(files[i], '/');
        p += sprintf(p, "%s\"%s\": \"%s\"", i ? ", " : "", base ? base + 1 : files[i], hex);
    }
    sprintf(p, "}");
    return s;
}

static void *job_main(void *arg)
{
    (void)arg;
    job.json = sha_json(job.files, job.n);
    return NULL;
}

static void files_known(char *const *files, int n)
{
    if (job.started) return;
    job.files = xcalloc(n ? (size_t)n : 1, sizeof(char *));
    for (int i = 0; i < n; i++) job.files[i] = xstrdup(files[i]);
    job.n = n;
    job.started = pthread_create(&job.th, NULL, job_main, NULL) == 0;
    if (!job.started) {                  /* no thread: hashed where it is needed */
        for (int i = 0; i < n; i++) free(job.files[i]);
        free(job.files);
    }
}

void run_weights_sha_start(int rank)
{
    if (rank == 0) model_set_files_hook(files_known);
}

/* the thread's result when it hashed exactly files[0..n), else NULL (and the thread's result freed) */
static char *joined(char *const *files, int n)
{
    if (!job.started) return NULL;
    pthread_join(job.th, NULL);
    job.started = 0;
    int same = job.n == n;
    for (int i = 0; i < n && same; i++) same = !strcmp(job.files[i], files[i]);
    for (int i = 0; i < job.n; i++) free(job.files[i]);
    free(job.files);
    char *s = job.json;
    job.json = NULL;
    if (!same) { free(s); s = NULL; }
    return s;
}

char *run_weights_sha(char *const *files, int n_files, MPI_Comm comm, int rank)
{
    int len = 0;
    char *s = NULL;
    if (rank == 0) {
        model_set_files_hook(NULL);
        if (!(s = joined(files, n_files))) s = sha_json(files, n_files);
        len = (int)strlen(s) + 1;
    }
    CHECK_MPI(MPI_Bcast(&len, 1, MPI_INT, 0, comm));
    if (rank) s = xmalloc(len);
    CHECK_MPI(MPI_Bcast(s, len, MPI_CHAR, 0, comm));
    return s;
}
