/* reduce.c — `attnscope reduce OUT.h5`: the dataset-level summaries (summary.c, every rank reading
 * its block of samples) written under /summary by rank 0 into a copy of OUT.h5 that replaces it
 * atomically (never in place: a failed or killed reduce leaves OUT.h5 as it was), and the figures
 * drawn from them. Every rank returns the same code. Everything read from the file is checked
 * (shapes, ranges) since a user may hand us any file. */
#include "run.h"
#include "check.h"
#include "report.h"
#include "h5out.h"
#include "par.h"
#include "summary.h"
#include "util.h"
#include <hdf5.h>
#include <math.h>
#include <sys/stat.h>

static const char *reduce_usage =
    "usage: attnscope reduce OUT.h5 [--figures DIR] [--sample I] [--layer L --head H] [--bins B] [--exemplars K]\n"
    "                        [--exemplar-stat S]\n"
    "  writes /summary (mean, std, histogram, group mean and exemplars of every statistic, clustered\n"
    "  head order) into OUT.h5; with --figures, the figures and an index.html into DIR; with\n"
    "  --sample I every head of sample I (and --layer/--head that head large); the exemplar samples of\n"
    "  --exemplar-stat S (default attn_prev) for --layer/--head or the head scoring highest on S\n"
    "  (sample maps need a file written with --save-attention)\n";

typedef struct {
    const char *file, *figures;
    long sample, layer, head, bins, exemplars;
    const char *exemplar_stat;
} reduce_opts;

static int parse(reduce_opts *o, int argc, char **argv)
{
    o->file = o->figures = NULL;
    o->sample = o->layer = o->head = -1;
    o->bins = 32;
    o->exemplars = 3;
    o->exemplar_stat = "attn_prev";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2)) {
            if (o->file) return err_set("unexpected argument '%s'", a);
            o->file = a;
            continue;
        }
        if (i + 1 >= argc) return err_set("%s needs a value", a);
        const char *v = argv[++i];
        long *dst = !strcmp(a, "--sample") ? &o->sample : !strcmp(a, "--layer") ? &o->layer : !strcmp(a, "--head") ? &o->head
                  : !strcmp(a, "--bins") ? &o->bins : !strcmp(a, "--exemplars") ? &o->exemplars : NULL;
        if (!strcmp(a, "--figures")) o->figures = v;
        else if (!strcmp(a, "--exemplar-stat")) o->exemplar_stat = v;
        else if (dst) {
            char *end;
            *dst = strtol(v, &end, 10);
            if (*end || end == v || *dst < 0) return err_set("%s: '%s' is not a non-negative integer", a, v);
        } else return err_set("unknown option %s", a);
    }
    if (!o->file) return err_set("no input file given");
    if (o->bins < 1 || o->bins > 4096) return err_set("--bins must be in [1, 4096]");
    if (o->exemplars < 1 || o->exemplars > 64) return err_set("--exemplars must be in [1, 64]");
    if ((o->layer >= 0) != (o->head >= 0)) return err_set("--layer and --head go together");
    if ((o->sample >= 0 || o->layer >= 0) && !o->figures) return err_set("--sample/--layer/--head choose figures: give --figures DIR");
    int known = 0;
    for (int st = 0; st < STAT_N; st++) known |= !strcmp(stats_names[st], o->exemplar_stat);
    if (!known) return err_set("--exemplar-stat: '%s' is not a statistic (entropy, distance, attn_prev, ...)", o->exemplar_stat);
    return 0;
}

int reduce_main(int argc, char **argv)
{
    MPI_Comm comm = MPI_COMM_WORLD;
    int rank;
    MPI_Comm_rank(comm, &rank);
    reduce_opts o;
    if (par_agree(parse(&o, argc, argv), comm)) {
        if (rank == 0) fputs(reduce_usage, stderr);
        return 2;
    }
    summary s;
    if (par_agree(summary_compute(&s, o.file, o.bins, o.exemplars, comm), comm)) return 1;
    int rc = 0;
    if (rank == 0) {
        summary_write_info wi;
        rc = summary_write(&s, o.file, &wi);
        if (wi.removed) printf("attnscope reduce: removed %d leftover temporary file(s) of killed reduces beside %s\n", wi.removed, o.file);
        if (!rc)
            printf("attnscope reduce: /summary of %lld samples x %d layers x %d heads written to %s (a copy of %.1f MB by %s in %.2f s, renamed over it)\n",
                   (long long)s.N, s.L, s.H, o.file, wi.bytes / 1e6, wi.kernel ? "copy_file_range" : "read/write", wi.copy_s);
        if (!rc && o.figures) {
            report_opts ro = {.dir = o.figures, .sample = o.sample, .layer = o.layer, .head = o.head, .exemplar_stat = o.exemplar_stat};
            rc = report_write(o.file, &s, &ro);
        }
    }
    summary_free(&s);
    return par_agree(rc, comm) ? 1 : 0;
}
