/* fuzz_h5reduce.c — the reducer's reading of an attnscope output, structure-aware (h5build.h):
 * /stats/<every statistic>, /stats/sink_rate, /samples/input_ids, /samples/length,
 * /attention_offset, /attention, /samples/tokens, /model/kv_group, /summary and its head-similarity matrices
 * of fuzzed types, shapes (often those of /stats/entropy), layouts and values, through
 * summary_compute on MPI_COMM_SELF (bins and k from the first byte), then, when the last byte is
 * odd, report_write's figures of sample 0 (its /samples/tokens and /attention block). */
#include "fuzz_common.h"
#include "h5build.h"
#include "report.h"
#include "summary.h"
#include "util.h"
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

enum { NEXTRA = 10 };
static const char *names[STAT_N + NEXTRA];

/* Open MPI's own allocations (some still held at exit, by components it has unloaded) are not ours */
__attribute__((weak)) void __lsan_disable(void);   /* absent from the coverage build */
__attribute__((weak)) void __lsan_enable(void);
const char *__lsan_default_options(void) { return "leak_check_at_exit=0"; }
const char *__lsan_default_suppressions(void)
{
    return "leak:libmpi\nleak:libopen-pal\nleak:libopen-rte\nleak:mca_\nleak:libhwloc\nleak:libpmix\nleak:libevent\n";
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static char stat[STAT_N][64];
    static const char *const extra[NEXTRA] = {"/stats/sink_rate", "/samples/input_ids", "/samples/length", "/attention_offset",
                                              "/samples/tokens", "/model/kv_group", "/summary/head_similarity_js_mean",
                                              "/summary/head_similarity_cos", "/summary", "/attention"};
    for (int i = 0; i < STAT_N; i++) {
        snprintf(stat[i], sizeof stat[i], "/stats/%s", stats_names[i]);
        names[i] = stat[i];
    }
    for (int i = 0; i < NEXTRA; i++) names[STAT_N + i] = extra[i];
    if (__lsan_disable) __lsan_disable();     /* what MPI_Init allocates for good is not a leak */
    MPI_Init(NULL, NULL);
    if (__lsan_enable) __lsan_enable();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    char path[256];
    snprintf(path, sizeof path, "%s/run.h5", fuzz_dir());
    if (h5build(path, names, STAT_N + NEXTRA, NULL, 0, data + 1, size - 1)) return 0;
    FUZZ_GUARD();
    summary s = {0};
    if (summary_compute(&s, path, 1 + data[0] % 32, 1 + (data[0] >> 5), MPI_COMM_SELF)) {
        if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "refused: %s\n", err_get());
        return 0;
    }
    if (data[size - 1] & 1) {     /* the figures: sample 0's tokens and /attention, every statistic's grid */
        char dir[300];
        snprintf(dir, sizeof dir, "%s/figures", fuzz_dir());
        const report_opts o = {.dir = dir, .sample = 0, .layer = -1, .head = -1, .exemplar_stat = stats_names[0]};
        if (report_write(path, &s, &o) && getenv("FUZZ_VERBOSE")) fprintf(stderr, "report refused: %s\n", err_get());
    }
    summary_free(&s);
    return 0;
}
