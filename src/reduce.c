/* reduce.c — `attnscope reduce OUT.h5`: the dataset-level summaries (summary.c, every rank reading
 * its block of samples) written under /summary by rank 0 into a copy of OUT.h5 that replaces it
 * atomically (never in place: a failed or killed reduce leaves OUT.h5 as it was), and the figures
 * drawn from them. Every rank returns the same code. Everything read from the file is checked
 * (shapes, ranges) since a user may hand us any file. */
#include "run.h"
#include "check.h"
#include "cli.h"
#include "report.h"
#include "h5out.h"
#include "par.h"
#include "summary.h"
#include "util.h"
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    const char *file, *figures, *summary_out;
    int sample, layer, head, bins, exemplars, figure_images;
    const char *exemplar_stat;
} reduce_opts;

/* The options of `attnscope reduce` (cli.h). Columns: name, kind, field, placeholder, help, then
 * .lo/.hi (ranges) and .def (default) where they apply. */
#define F(field) offsetof(reduce_opts, field)
static const cli_opt reduce_options[] = {
    CLI_OPT("OUT.h5", CLI_POS, F(file), NULL, NULL),
    CLI_OPT("figures", CLI_STR, F(figures), "DIR", "draw the figures and an index.html into DIR"),
    CLI_OPT("sample", CLI_INT, F(sample), "I", "draw every head of sample I (needs /attention)", .lo = 0, .hi = INT_MAX),
    CLI_OPT("figure-images", CLI_INT, F(figure_images), "N", "vision and CNN runs: draw the maps of the first N images over them",
            .lo = 0, .hi = 100000, .def = "4"),
    CLI_OPT("layer", CLI_INT, F(layer), "L", "with --head H: the head whose exemplar samples are drawn (default: the head\n"
            "scoring highest on --exemplar-stat), and drawn large for --sample", .lo = 0, .hi = INT_MAX),
    CLI_OPT("head", CLI_INT, F(head), "H", "see --layer", .lo = 0, .hi = INT_MAX),
    CLI_OPT("bins", CLI_INT, F(bins), "B", "histogram bins of every statistic", .lo = 1, .hi = 4096, .def = "32"),
    CLI_OPT("exemplars", CLI_INT, F(exemplars), "K", "exemplar samples kept per head", .lo = 1, .hi = 64, .def = "3"),
    CLI_OPT("exemplar-stat", CLI_STR, F(exemplar_stat), "S", "the statistic whose exemplar samples are kept and drawn", .def = "attn_prev"),
    CLI_OPT("summary-out", CLI_STR, F(summary_out), "FILE", "write /summary into a new FILE that links to OUT.h5's data; OUT.h5 stays\n"
            "untouched (for runs whose /attention is too large to copy)"),
    {0}};
#undef F

static const cli_spec reduce_cli = {
    .cmd = "reduce",
    .synopsis = "usage: attnscope reduce OUT.h5 [--figures DIR] [--sample I] [--layer L --head H] [--bins B] [--exemplars K]\n"
                "                        [--exemplar-stat S] [--summary-out FILE]\n",
    .about = "  writes /summary (mean, std, histogram, group mean and exemplars of every statistic, clustered\n"
             "  head order) into a copy of OUT.h5 that is renamed over it (or into --summary-out FILE); with\n"
             "  --figures, the figures and an index.html into DIR (sample maps need --save-attention)\n",
    .opts = reduce_options};

/* Collective. Returns -1 when reduce should go on, else the exit status (cli_agree). */
static int parse(reduce_opts *o, int argc, char **argv, MPI_Comm comm)
{
    memset(o, 0, sizeof *o);
    o->sample = o->layer = o->head = -1;   /* not given */
    int rc = cli_parse(&reduce_cli, o, argc, argv, NULL);
    if (rc != CLI_OK) return cli_agree(&reduce_cli, rc, comm);
    const char *stats[STAT_N + 1] = {NULL};
    int known = 0;
    for (int st = 0; st < STAT_N; st++) {
        stats[st] = stats_names[st];
        known |= !strcmp(stats_names[st], o->exemplar_stat);
    }
    const char *near = known ? NULL : cli_suggest(o->exemplar_stat, stats);
    if (!o->file) rc = err_set("no input file given");
    else if ((o->layer >= 0) != (o->head >= 0)) rc = err_set("--layer and --head go together");
    else if ((o->sample >= 0 || o->layer >= 0) && !o->figures) rc = err_set("--sample/--layer/--head choose figures: give --figures DIR");
    else if (!known && near) rc = err_set("--exemplar-stat: '%s' is not a statistic; did you mean %s?", o->exemplar_stat, near);
    else if (!known) rc = err_set("--exemplar-stat: '%s' is not a statistic (entropy, distance, attn_prev, ...)", o->exemplar_stat);
    return cli_agree(&reduce_cli, rc, comm);
}

int reduce_main(int argc, char **argv)
{
    MPI_Comm comm = MPI_COMM_WORLD;
    int rank;
    MPI_Comm_rank(comm, &rank);
    reduce_opts o;
    int st = parse(&o, argc, argv, comm);
    if (st >= 0) return st;
    /* HDF5 would open a named pipe and wait on it forever: a regular file or one line saying why */
    int fd = util_open_regular(o.file, NULL);
    if (fd >= 0) close(fd);
    if (par_agree(fd < 0, comm)) return 1;
    /* a CNN run (run_cnn.c) has /cnn and no /stats: its own reduction, on rank 0 */
    int is_cnn = 0;
    if (rank == 0) {
        hid_t f;
        H5E_BEGIN_TRY { f = H5Fopen(o.file, H5F_ACC_RDONLY, H5P_DEFAULT); } H5E_END_TRY;
        if (f >= 0) { is_cnn = H5Lexists(f, "/cnn", H5P_DEFAULT) > 0; H5Fclose(f); }
    }
    CHECK_MPI(MPI_Bcast(&is_cnn, 1, MPI_INT, 0, comm));
    if (is_cnn) return par_agree(rank == 0 ? reduce_cnn(o.file, o.figures, o.exemplars, o.figure_images) : 0, comm) ? 1 : 0;
    summary s;
    if (par_agree(summary_compute(&s, o.file, o.bins, o.exemplars, comm), comm)) return 1;
    int rc = 0;
    if (rank == 0) {
        summary_write_info wi;
        rc = o.summary_out ? summary_write_separate(&s, o.file, o.summary_out, &wi) : summary_write(&s, o.file, &wi);
        if (wi.removed) printf("attnscope reduce: removed %d leftover temporary file(s) of killed reduces beside %s\n", wi.removed, o.file);
        if (!rc && o.summary_out)
            printf("attnscope reduce: /summary of %lld samples x %d layers x %d heads written to %s (linking to %s's data)\n",
                   (long long)s.N, s.L, s.H, o.summary_out, o.file);
        else if (!rc)
            printf("attnscope reduce: /summary of %lld samples x %d layers x %d heads written to %s (a copy of %.1f MB by %s in %.2f s, renamed over it)\n",
                   (long long)s.N, s.L, s.H, o.file, wi.bytes / 1e6, wi.kernel ? "copy_file_range" : "read/write", wi.copy_s);
        if (!rc && o.figures) {
            report_opts ro = {.dir = o.figures, .sample = o.sample, .layer = o.layer, .head = o.head, .exemplar_stat = o.exemplar_stat,
                              .figure_images = o.figure_images};
            rc = report_write(o.file, &s, &ro);
        }
    }
    summary_free(&s);
    return par_agree(rc, comm) ? 1 : 0;
}
