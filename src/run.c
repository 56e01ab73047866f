/* run.c — `attnscope run`: options (command line over an optional job file), the model, this
 * rank's shard of the dataset, the batched forward with the attention capture, and the HDF5
 * output. Everything a rank can reject is checked before the output file exists, and the ranks
 * agree on each step (par_agree) so that a bad input ends every rank cleanly with one message. */
#include "run_int.h"
#include "check.h"
#include "cli.h"
#include "cnn.h"
#include "collect.h"
#include "dataset.h"
#include "imgproc.h"
#include "h5out.h"
#ifdef ATTNSCOPE_CUDA
#include "kernels.h"
#endif
#include "model.h"
#include "par.h"
#include "probe.h"
#include "runctl.h"
#include "runloop.h"
#include "runstate.h"
#include "tokenizer.h"
#include "util.h"
#include <limits.h>
#include <omp.h>
#include <time.h>
#include <nettle/sha2.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

typedef struct {
    const char *model, *text, *input, *images, *out, *backend, *att_dtype, *precision, *gelu, *job, *probe, *rollout_fusion;
    const char *features_dtype;
    int save_features;
    int probe_len, probe_samples, probe_seed;
    int max_len, batch, max_tokens, save_attention, quiet;
    int window, topk, similarity, key_importance, no_key_importance, profile, timeline;
    double sink_eps, rollout_discard, high_norm_factor;
    int rollout_start;
    int overwrite, restart, force, allow_nonfinite;
    double progress_every, checkpoint_every;
} run_opts;


/* ---- options ------------------------------------------------------------------------------ */

/* The options of `attnscope run`, command line and job file alike (cli.h). Columns: name, kind,
 * field, placeholder, help, then .lo/.hi (ranges) and .def (default) where they apply. */
#define F(field) offsetof(run_opts, field)
static const cli_opt run_options[] = {
    CLI_OPT("job", CLI_JOB, F(job), "FILE", "read options from a job file (key = value lines; the command line wins)"),
    CLI_OPT("model", CLI_STR, F(model), "DIR", "Hugging Face checkpoint (config.json, *.safetensors, tokenizer.json|vocab.txt) or a GGUF file", .identity = 1),
    CLI_OPT("text", CLI_STR, F(text), "FILE", "UTF-8 corpus, one sample per line (blank lines skipped)", .identity = 1),
    CLI_OPT("input", CLI_STR, F(input), "FILE.h5", "pre-tokenized: /input_ids [N,L], optional /attention_mask, /token_type_ids;\n"
            "or for a vision model preprocessed /pixel_values [N,C,H,W]", .identity = 1),
    CLI_OPT("images", CLI_STR, F(images), "DIR|LIST", "vision models: the PNG/JPEG files of DIR (sorted by name) or of a list\n"
            "file, preprocessed as the model's preprocessor_config.json says (HF's slow processors)", .identity = 1),
    CLI_OPT("out", CLI_STR, F(out), "OUT.h5", "output file (built in OUT.h5.partial/, renamed when complete; run again to resume)"),
    CLI_OPT("probe", CLI_STR, F(probe), "KIND", "instead of --text/--input: induction, N sequences [BOS] + R + R of K random ids;\n"
            "writes /probe/{previous_token,duplicate_token,induction}_score [layers, heads]", .identity = 1),
    CLI_OPT("probe-len", CLI_INT, F(probe_len), "K", "the probe's repeat length (tokens of R)", .lo = 1, .hi = 1 << 19, .def = "50", .identity = 1),
    CLI_OPT("probe-samples", CLI_INT, F(probe_samples), "N", "the probe's number of sequences", .lo = 1, .hi = 1 << 24, .def = "10", .identity = 1),
    CLI_OPT("probe-seed", CLI_INT, F(probe_seed), "S", "the probe's random seed", .lo = 0, .hi = INT_MAX, .def = "0", .identity = 1),
    CLI_OPT("max-len", CLI_INT, F(max_len), "N", "truncate samples to N tokens (default: the model's max positions)", .lo = 2, .hi = 1 << 20, .identity = 1),
    CLI_OPT("batch", CLI_INT, F(batch), "N", "samples per forward batch (default: 32 on the CPU; on a GPU as many samples of\n"
            "the longest length as --max-tokens takes, at most 512 texts or 128 images)", .lo = 1, .hi = 1 << 20, .identity = 1),
    CLI_OPT("max-tokens", CLI_INT, F(max_tokens), "N", "cap on batch x padded length (default: 16384 on the CPU, 65536 on a GPU)",
            .lo = 2, .hi = 1 << 30, .identity = 1),
    CLI_OPT("save-attention", CLI_FLAG, F(save_attention), NULL, "also store /attention, every sample at its own length: [layers, heads, n, n]\nblocks from /attention_offset", .identity = 1),
    CLI_OPT("attention-dtype", CLI_STR, F(att_dtype), "T", "f32 or f16 for /attention", .def = "f32", .identity = 1),
    CLI_OPT("backend", CLI_STR, F(backend), "B", "cuda (default when built with CUDA and a GPU is visible) or cpu"),
    CLI_OPT("precision", CLI_STR, F(precision), "P",
            "fp32, fp32-sgemm, tf32 or bf16. fp32: within 1e-5 of HF (on a GPU the linear layers and\n"
            "QKᵀ run as 3xTF32 tensor-core GEMMs); fp32-sgemm: every GEMM a plain SGEMM; tf32: TF32\n"
            "GEMMs (~1e-3); bf16: bf16 linear layers. Softmax and statistics stay fp32/fp64", .def = "fp32", .identity = 1),
    CLI_OPT("gelu", CLI_STR, F(gelu), "G", "auto, exact or tanh. tanh (auto under bf16): a BERT's or ViT's erf GELU runs in\n"
            "its tanh form inside the GEMM (within 4.7e-4 of the erf GELU; 5% faster).\n"
            "fp32 and tf32 are always exact", .def = "auto", .identity = 1),
    CLI_OPT("window", CLI_INT, F(window), "W", "locality window in tokens", .lo = 0, .hi = 1 << 20, .def = "3", .identity = 1),
    CLI_OPT("topk", CLI_INT, F(topk), "K", "store each query's K most attended keys in /stats/topk_* (8·K bytes per token,\n"
            "layer and head; 0: not stored)", .lo = 0, .hi = 64, .def = "0", .identity = 1),
    CLI_OPT("key-importance", CLI_FLAG, F(key_importance), NULL, "store /stats/key_importance [N, layers, heads, Lmax] (4 bytes per\n"
            "token, layer and head)", .identity = 1),
    CLI_OPT("no-key-importance", CLI_FLAG, F(no_key_importance), NULL, "do not store /stats/key_importance (the default; overrides\n"
            "--key-importance, e.g. one from a job file)", .identity = 1),
    CLI_OPT("sink-eps", CLI_DOUBLE, F(sink_eps), "E", "sink threshold of /stats/sink_rate", .lo = 0, .hi = 1, .def = "0.3", .identity = 1),
    CLI_OPT("rollout-fusion", CLI_STR, F(rollout_fusion), "F", "vision models' attention rollout: heads fused by mean, max or min",
            .def = "mean", .identity = 1),
    CLI_OPT("rollout-discard", CLI_DOUBLE, F(rollout_discard), "R",
            "vision: the share of each fused map's smallest entries set to 0 before\nrollout (vit-explain's discard_ratio)",
            .lo = 0, .hi = 0.99, .def = "0", .identity = 1),
    CLI_OPT("rollout-start", CLI_INT, F(rollout_start), "L", "vision: the first layer of the rollout", .lo = 0, .hi = 1024,
            .def = "0", .identity = 1),
    CLI_OPT("high-norm-factor", CLI_DOUBLE, F(high_norm_factor), "X",
            "vision: a patch is high-norm when its last-layer norm exceeds X times\nthe image's median patch norm", .lo = 1, .hi = 1e6,
            .def = "2", .identity = 1),
    CLI_OPT("save-features", CLI_FLAG, F(save_features), NULL, "CNN (resnet) models: also store every stage's output /cnn/stage_S/features [N, C, H, W]",
            .identity = 1),
    CLI_OPT("features-dtype", CLI_STR, F(features_dtype), "T", "f32 or f16 for /cnn/stage_S/features", .def = "f32", .identity = 1),
    CLI_OPT("head-similarity", CLI_FLAG, F(similarity), NULL, "accumulate /summary/head_similarity_* (JS and cosine between all heads)", .identity = 1),
    CLI_OPT("overwrite", CLI_FLAG, F(overwrite), NULL, "replace an existing --out (kept until the new run completes)"),
    CLI_OPT("restart", CLI_FLAG, F(restart), NULL, "discard the partial results of an interrupted run of the same --out"),
    CLI_OPT("force", CLI_FLAG, F(force), NULL, "run even if the output will not fit in the free space"),
    CLI_OPT("allow-nonfinite", CLI_FLAG, F(allow_nonfinite), NULL, "load weights with NaN/Inf values (one warning per tensor)\n"
            "instead of refusing the model; their statistics come out NaN"),
    CLI_OPT("progress-every", CLI_DOUBLE, F(progress_every), "S", "seconds between progress lines when stdout is not a terminal",
            .lo = 0.1, .hi = 86400, .def = "10"),
    CLI_OPT("checkpoint-every", CLI_DOUBLE, F(checkpoint_every), "S", "seconds between durable checkpoints of each rank's progress",
            .lo = 0, .hi = 86400, .def = "30"),
    CLI_OPT("quiet", CLI_FLAG, F(quiet), NULL, "no progress lines"),
    CLI_OPT("profile", CLI_FLAG, F(profile), NULL, "time every backend op (slower) and print where rank 0's time went"),
    CLI_OPT("timeline", CLI_FLAG, F(timeline), NULL, "(CUDA) time every op on the device without synchronising, and print the idle gaps"),
    {0}};
#undef F

static const cli_spec run_cli = {
    .cmd = "run",
    .synopsis = "usage: attnscope run --model DIR|FILE.gguf (--text FILE | --input FILE.h5 | --probe induction) --out OUT.h5\n"
                "                     [options]\n",
    .opts = run_options};

/* a required option absent: say where it was looked for */
static int missing(const char *what, const char *job)
{
    return job ? err_set("%s is required (neither on the command line nor in %s)", what, job) : err_set("%s is required", what);
}

/* Collective. Fills *o from the job file and the command line (*job_store: the job file's text,
 * which o's strings may point into; the caller frees it). Returns -1 when run should go on, else
 * the exit status: 0 after --help/--version, 2 after a usage error (reported once, cli_agree). */
static int parse_opts(run_opts *o, int argc, char **argv, char **job_store, MPI_Comm comm)
{
    memset(o, 0, sizeof *o);
    int rc = cli_parse(&run_cli, o, argc, argv, job_store);
    if (rc != CLI_OK) return cli_agree(&run_cli, rc, comm);
    if (!o->model) rc = missing("--model DIR", o->job);
    else if (!o->out) rc = missing("--out OUT.h5", o->job);
    else if (!!o->text + !!o->input + !!o->probe + !!o->images != 1)
        rc = err_set("give exactly one of --text FILE, --input FILE.h5, --images DIR|LIST and --probe induction%s%s%s",
                     o->job ? " (the command line and " : "", o->job ? o->job : "", o->job ? " together)" : "");
    else if (o->probe && strcmp(o->probe, "induction")) rc = err_set("--probe must be induction, not '%s'", o->probe);
    else if (strcmp(o->att_dtype, "f32") && strcmp(o->att_dtype, "f16"))
        rc = err_set("--attention-dtype must be f32 or f16, not '%s'", o->att_dtype);
    else if (strcmp(o->features_dtype, "f32") && strcmp(o->features_dtype, "f16"))
        rc = err_set("--features-dtype must be f32 or f16, not '%s'", o->features_dtype);
    else if (strcmp(o->rollout_fusion, "mean") && strcmp(o->rollout_fusion, "max") && strcmp(o->rollout_fusion, "min"))
        rc = err_set("--rollout-fusion must be mean, max or min, not '%s'", o->rollout_fusion);
    else if (o->backend && strcmp(o->backend, "cpu") && strcmp(o->backend, "cuda"))
        rc = err_set("--backend must be cpu or cuda, not '%s'", o->backend);
    else if (strcmp(o->precision, "fp32") && strcmp(o->precision, "fp32-sgemm") && strcmp(o->precision, "tf32") &&
             strcmp(o->precision, "bf16"))
        rc = err_set("--precision must be fp32, fp32-sgemm, tf32 or bf16, not '%s'", o->precision);
    else if (strcmp(o->gelu, "auto") && strcmp(o->gelu, "exact") && strcmp(o->gelu, "tanh"))
        rc = err_set("--gelu must be auto, exact or tanh, not '%s'", o->gelu);
    return cli_agree(&run_cli, rc, comm);
}

/* ---- helpers -------------------------------------------------------------------------------- */

static char *join_argv(int argc, char **argv)
{
    size_t n = 1;
    for (int i = 0; i < argc; i++) n += strlen(argv[i]) * 2 + 3;
    char *s = xmalloc(n), *p = s;
    for (int i = 0; i < argc; i++) {
        int quote = strpbrk(argv[i], " \t'\"") != NULL;
        p += sprintf(p, i ? (quote ? " '%s'" : " %s") : "%s", argv[i]);
    }
    return s;
}

/* --images: every rank's images must come out of the processor at one size (batching and the
 * patch grid need it); rank 0 gathers every image's original size for /images/orig_size. */
int run_images_agree(const dataset *d, MPI_Comm comm, int rank, int nranks, int32_t **all)
{
    int hw[2] = {d->n ? d->height : 0, d->n ? d->width : 0}, lo[2], hi[2];
    int mine[2] = {d->n ? hw[0] : INT_MAX, d->n ? hw[1] : INT_MAX};
    CHECK_MPI(MPI_Allreduce(mine, lo, 2, MPI_INT, MPI_MIN, comm));
    CHECK_MPI(MPI_Allreduce(hw, hi, 2, MPI_INT, MPI_MAX, comm));
    int *counts = rank == 0 ? xmalloc(nranks * sizeof(int)) : NULL, *displs = rank == 0 ? xmalloc(nranks * sizeof(int)) : NULL;
    const int n2 = 2 * d->n;
    CHECK_MPI(MPI_Gather(&n2, 1, MPI_INT, counts, 1, MPI_INT, 0, comm));
    if (rank == 0) {
        *all = xmalloc((size_t)(2 * d->n_total + 1) * sizeof(int32_t));
        for (int r = 0, at = 0; r < nranks; r++) { displs[r] = at; at += counts[r]; }
    }
    CHECK_MPI(MPI_Gatherv(d->image_size, n2, MPI_INT32_T, rank == 0 ? *all : NULL, counts, displs, MPI_INT32_T, 0, comm));
    free(counts); free(displs);
    if (lo[0] != hi[0] || lo[1] != hi[1])
        return err_set("--images: the ranks' images come out of the processor at %d x %d and %d x %d pixels: a run needs "
                       "one size (a processor with a centre crop, or images of one aspect ratio)", lo[0], lo[1], hi[0], hi[1]);
    return 0;
}

/* rank 0, a fresh start: /images/path and /images/orig_size, and what the processor was */
void run_images_write(h5out *out, const dataset *d, const int32_t *size_all, const char *model_dir)
{
    size_t w = 1;
    for (int64_t i = 0; i < d->n_total; i++) { size_t k = strlen(d->image_paths[i]); if (k > w) w = k; }
    char *buf = xcalloc((size_t)d->n_total, w);
    for (int64_t i = 0; i < d->n_total; i++) memcpy(buf + i * w, d->image_paths[i], strlen(d->image_paths[i]));
    hid_t str_t = h5_type_str(w);
    const hsize_t dN[1] = {(hsize_t)d->n_total}, dN2[2] = {(hsize_t)d->n_total, 2};
    hid_t ds = h5out_dataset(out, "/images/path", str_t, 1, dN, NULL);
    h5out_write_rows(ds, str_t, 0, d->n_total, buf);
    h5_attr_str(ds, "definition", "each sample's image file, as listed (sample i is /images/path[i])");
    H5Dclose(ds);
    H5Tclose(str_t);
    ds = h5out_dataset(out, "/images/orig_size", H5T_STD_I32LE, 2, dN2, NULL);
    h5out_write_rows(ds, H5T_NATIVE_INT32, 0, d->n_total, size_all);
    h5_attr_str(ds, "definition", "height and width in pixels of each image file before preprocessing");
    H5Dclose(ds);
    imgproc p;
    hid_t g = H5Gopen2(out->file, "/images", H5P_DEFAULT);
    if (!imgproc_load(&p, model_dir)) h5_attr_str(g, "processor", p.type);
    h5_attr_str(g, "preprocessing", "as transformers' slow (PIL) image processor from the model's preprocessor_config.json "
                                    "(resize, centre crop, rescale, normalise); /vision gives the model's input size");
    H5Gclose(g);
    free(buf);
}

/* SHA-256 of the samples (lengths, rows, ids, types, pixels) of every rank's shard, combined on
 * rank 0 in rank order: the identity of the data a resumed run must find again. Hex on rank 0. */
void run_samples_sha(const dataset *d, MPI_Comm comm, int rank, int nranks, char hex[65])
{
    struct sha256_ctx ctx;
    uint8_t mine[SHA256_DIGEST_SIZE];
    sha256_init(&ctx);
    sha256_update(&ctx, sizeof d->first, (const uint8_t *)&d->first);
    sha256_update(&ctx, (size_t)d->n * sizeof(int), (const uint8_t *)d->len);
    sha256_update(&ctx, (size_t)d->n * sizeof(int), (const uint8_t *)d->len_full);
    sha256_update(&ctx, (size_t)d->n * sizeof(int64_t), (const uint8_t *)d->source_row);
    sha256_update(&ctx, (size_t)d->off[d->n] * sizeof(int32_t), (const uint8_t *)d->ids);
    if (d->types) sha256_update(&ctx, (size_t)d->off[d->n] * sizeof(int32_t), (const uint8_t *)d->types);
    /* images: their digest streamed at load (dataset.h pixels_sha: the files' bytes for --images,
     * the /pixel_values rows for --input), not the pixels, which are never all in memory */
    if (d->px) sha256_update(&ctx, sizeof d->pixels_sha, d->pixels_sha);
    sha256_digest(&ctx, sizeof mine, mine);
    uint8_t *all = rank == 0 ? xmalloc((size_t)nranks * sizeof mine) : NULL;
    CHECK_MPI(MPI_Gather(mine, sizeof mine, MPI_BYTE, all, sizeof mine, MPI_BYTE, 0, comm));
    hex[0] = 0;
    if (rank) return;
    sha256_init(&ctx);
    sha256_update(&ctx, (size_t)nranks * sizeof mine, all);
    sha256_digest(&ctx, sizeof mine, mine);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) sprintf(hex + 2 * i, "%02x", mine[i]);
    free(all);
}

char *run_manifest(const char *format, const char *identity, const char *backend_name, int nranks, const char *weights,
                   const char *samples, int64_t N)
{
    size_t cap = strlen(format) + strlen(weights) + strlen(identity) + 1024;
    char *m = xmalloc(cap);
    snprintf(m, cap, "format=%s\nranks=%d\n%s--backend=%s\nweights_sha256=%s\nsamples=%lld\nsamples_sha256=%s\n", format, nranks,
             identity, backend_name, weights, (long long)N, samples);
    return m;
}

/* The run's identity for a resume: every option that changes the output (the table's identity
 * column, named as on the command line), the backend in use, the ranks, the weights, the samples. */
static char *make_manifest(const run_opts *o, const char *backend_name, int nranks, const char *weights, const char *samples, int64_t N)
{
    char *opts = cli_identity(&run_cli, o);
    char *m = run_manifest("1", opts, backend_name, nranks, weights, samples, N);
    free(opts);
    return m;
}

static void fmt_bytes(char *b, size_t n, double v)
{
    if (v >= 1e12) snprintf(b, n, "%.2f TB", v / 1e12);
    else if (v >= 1e9) snprintf(b, n, "%.2f GB", v / 1e9);
    else if (v >= 1e6) snprintf(b, n, "%.1f MB", v / 1e6);
    else snprintf(b, n, "%.0f kB", v / 1e3);
}

/* Rank 0: prints the output's size per dataset and the free space where it goes; refuses (unless
 * force) a run whose remaining writes do not fit. */
static int check_space(const collect *col, const runstate *st, int resume, int force)
{
    int64_t total = 0, big[CO_N];
    int idx[CO_N], n = 0;
    for (int i = 0; i < CO_N; i++) {
        big[i] = col->names[i] ? collect_dataset_bytes(col, i) : 0;
        total += big[i];
        if (big[i]) idx[n++] = i;
    }
    for (int a = 1; a < n; a++)   /* largest first */
        for (int b = a; b > 0 && big[idx[b]] > big[idx[b - 1]]; b--) { int t = idx[b]; idx[b] = idx[b - 1]; idx[b - 1] = t; }
    char line[2048], v[32];
    fmt_bytes(v, sizeof v, (double)total);
    int k = snprintf(line, sizeof line, "attnscope: output %s:", v);
    for (int a = 0; a < n && a < 4; a++) {
        fmt_bytes(v, sizeof v, (double)big[idx[a]]);
        k += snprintf(line + k, sizeof line - k, "%s %s %s", a ? "," : "", col->names[idx[a]], v);
    }
    if (n > 4) k += snprintf(line + k, sizeof line - k, ", %d more", n - 4);
    return run_check_space(line, total, st, resume, force);
}

const char *run_failure_advice(int err, int input)
{
    if (input)
        return "run the same command again to resume once the file reads; a replaced or removed image changes the "
               "image set, and then the run must start again (--restart)";
    return err == ENOSPC || err == EDQUOT ? "make room and run the same command again to resume"
                                          : "fix the cause and run the same command again to resume";
}

int run_check_space(const char *line, int64_t total, const runstate *st, int resume, int force)
{
    /* what is still to be written: a resumed file already holds its finished part */
    struct stat sb;
    int64_t held = resume && !stat(st->data, &sb) ? (int64_t)sb.st_blocks * 512 : 0, need = total > held ? total - held : 0;
    struct statvfs fs;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", st->dir);
    if (statvfs(dir, &fs)) { printf("%s\n", line); return 0; }
    const int64_t avail = (int64_t)fs.f_bavail * (int64_t)fs.f_frsize;
    char fv[32], nv[32];
    fmt_bytes(fv, sizeof fv, (double)avail);
    fmt_bytes(nv, sizeof nv, (double)need);
    printf("%s; %s%s to write, %s free there\n", line, nv, resume ? " still" : "", fv);
    fflush(stdout);
    if (need > avail && !force)
        return err_set("%s: the output needs %s more and only %s is free on that file system; free space, write elsewhere, or add --force",
                       st->out, nv, fv);
    return 0;
}

/* A run that failed before saving anything leaves nothing beside --out (rank 0 removes the
 * partial directory unless it holds an earlier run's work); the barrier keeps mpirun from
 * killing rank 0 while it does, when another rank exits first. */
void run_abandon(runstate *st, MPI_Comm comm)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    if (rank == 0) runstate_abandon(st);
    CHECK_MPI(MPI_Barrier(comm));
    runctl_set_silent();
}

/* ---- run ------------------------------------------------------------------------------------ */

/* Of a checkpoint with two towers (CLIPModel): the text tower for text (--text, --probe, an --input
 * with /input_ids), the vision tower for images (--images, an --input with /pixel_values). An
 * input that cannot be read yet decides nothing: its own check reports it. */
static int input_tower(const run_opts *o)
{
    if (o->images) return TOWER_VISION;
    if (o->text || o->probe) return TOWER_TEXT;
    if (!o->input) return TOWER_ANY;
    int tower = TOWER_ANY;
    const int fd = util_open_regular(o->input, NULL);   /* not a regular file: the input's loader says so */
    if (fd < 0) return TOWER_ANY;
    close(fd);
    H5E_BEGIN_TRY {
        hid_t f = H5Fopen(o->input, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (f >= 0) {
            tower = H5Lexists(f, "pixel_values", H5P_DEFAULT) > 0 ? TOWER_VISION
                  : H5Lexists(f, "input_ids", H5P_DEFAULT) > 0   ? TOWER_TEXT
                                                                  : TOWER_ANY;
            H5Fclose(f);
        }
    } H5E_END_TRY;
    return tower;
}

int run_main(int argc, char **argv)
{
    MPI_Comm comm = MPI_COMM_WORLD;
    int rank, nranks;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &nranks);
    run_opts o;
    char *job_store = NULL;
    runctl_signals_install(rank);       /* outside the compute loop a signal ends the run at once */
    int parsed = parse_opts(&o, argc, argv, &job_store, comm);
    if (parsed >= 0) { free(job_store); return parsed; }
    const double t0 = util_now();
    model_set_nonfinite(!o.allow_nonfinite ? NONFINITE_REFUSE : rank == 0 ? NONFINITE_WARN : NONFINITE_SILENT);

    /* the output first: fail before any expensive work (an existing --out, --out an input, a
     * run already working on it); rank 0 holds the partial directory's lock from here on */
    runstate st;
    const char *inputs[3] = {o.text, o.input, o.images};
    int rc = rank == 0 ? runstate_open(&st, o.out, o.overwrite, o.restart, inputs, 3) : 0;
    if (par_agree(rc, comm)) { run_abandon(&st, comm); free(job_store); return 1; }
    if (rank) memset(&st, 0, sizeof st), st.lock_fd = -1;
    CHECK_MPI(MPI_Bcast(&st, sizeof st, MPI_BYTE, 0, comm));
    if (rank) st.lock_fd = -1;

    char what[512], gpu[256] = "gpu=none (built without CUDA)";
    int local_rank, local_size;
    par_local_rank(comm, &local_rank, &local_size);
    /* ranks sharing a node share its cores unless OMP_NUM_THREADS says otherwise */
    if (!getenv("OMP_NUM_THREADS")) {
        int per = omp_get_num_procs() / local_size;
        omp_set_num_threads(per > 0 ? per : 1);
    }
    int ngpu = 0;
#ifdef ATTNSCOPE_CUDA
    ngpu = cuda_bind_device(local_rank, gpu, sizeof gpu);
#endif
    const char *bname = o.backend ? o.backend : ngpu > 0 ? "cuda" : "cpu";
    const int prec = !strcmp(o.precision, "tf32") ? 1 : !strcmp(o.precision, "bf16") ? 2
                   : !strcmp(o.precision, "fp32-sgemm") ? 3 : 0;
    backend *be = strcmp(bname, "cpu") || !prec || prec == 3 ? backend_init(bname, prec)
                : (err_set("--precision %s needs the CUDA backend (the CPU backend is fp32)", o.precision), NULL);
    if (par_agree(be ? 0 : -1, comm)) { if (be) backend_free(be); run_abandon(&st, comm); free(job_store); return 1; }
    /* --gelu auto: the tanh form under bf16 (tests/bench/gelu_accuracy.sh: on all-MiniLM-L6-v2 it
     * moves bf16's statistics from fp32's by 0.012 nats and 0.086 tokens at most, against 0.010 and
     * 0.073 exact; transformers' own bf16 is 0.017 and 0.13 from its fp32) */
    be->gelu_tanh = prec == 2 && strcmp(o.gelu, "exact");
    if (o.timeline && !be->mark && rank == 0) fprintf(stderr, "attnscope: --timeline needs the CUDA backend: ops timed as --profile does\n");
    if (o.profile || o.timeline) be = backend_profiled(be, o.timeline);
    snprintf(what, sizeof what, "backend=%s precision=%s threads=%d %s", be->name, o.precision, omp_get_max_threads(), gpu);
    par_banner(comm, what);

    /* a CNN (ResNet) takes its own path: no attention, no /stats (run_cnn.c) */
    if (cnn_is_cnn(o.model)) {
        if (!o.batch) o.batch = 32;    /* (a CNN's default batch, on every backend) */
        char *cmdline = join_argv(argc, argv), *identity = cli_identity(&run_cli, &o);
        run_cnn_opts co = {.model = o.model, .input = o.input, .images = o.images, .text = o.text, .probe = o.probe, .out = o.out,
                           .cmdline = cmdline, .identity = identity, .batch = o.batch, .save_features = o.save_features,
                           .features_f16 = !strcmp(o.features_dtype, "f16"), .quiet = o.quiet, .force = o.force,
                           .checkpoint_every = o.checkpoint_every, .progress_every = o.progress_every};
        const int status = run_cnn(&co, be, &st, comm);
        free(cmdline);
        free(identity);
        runctl_set_silent();
        backend_free(be);
        free(job_store);
        return status;
    }
    rc = o.save_features ? err_set("--save-features: %s is not a CNN (resnet) model", o.model) : 0;
    if (par_agree(rc, comm)) { backend_free(be); run_abandon(&st, comm); free(job_store); return 1; }
    model m;
    run_weights_sha_start(rank);      /* (hashed on a thread of rank 0 while the load reads them) */
    if (par_agree(model_load_tower(&m, o.model, be, input_tower(&o)), comm)) { backend_free(be); run_abandon(&st, comm); free(job_store); return 1; }
    /* the weights' hash joined here, before the data set's own parallel reads and hashes (it ran
     * while the model loaded) */
    const double t_start = util_now();
    char *sha = run_weights_sha(m.weight_files, m.n_weight_files, comm, rank), shex[65];
    const double t_wsha = util_now();
    const model_config *c = &m.cfg;
    const int L = c->n_layer, NH = c->n_head;
    const int pos_limit = c->max_pos - c->pos_offset, images = c->arch->stem == STEM_PATCHES;
    if (!o.max_len) o.max_len = pos_limit;
    /* images: the token count follows from the image size (positions resampled to its grid) */
    rc = images && (o.text || o.probe) ? err_set("%s is a %s model: it takes images (--images DIR|LIST, or --input FILE.h5 with /pixel_values)", o.model, c->arch->family)
         : !images && o.images ? err_set("--images: %s is a %s model, which takes text", o.model, c->arch->family)
         : images && o.rollout_start >= L ? err_set("--rollout-start %d: the model has %d layers", o.rollout_start, L)
         : images ? 0
         : o.max_len > pos_limit ? err_set("--max-len %d exceeds the model's %d positions (%s%s)", o.max_len, pos_limit, o.model,
                                         m.gguf ? ": context_length" : "/config.json") : 0;

    tokenizer *tok = NULL;
    if (!rc) {
        tok = images ? NULL : tok_load(o.model);      /* images need none (a CLIPModel's tokenizer is its text tower's) */
        /* a GGUF model's tokenizer is in its metadata, which tok_load does not read (yet) */
        if (!tok && o.text)
            rc = m.gguf ? err_set("%s: --text needs a tokenizer and none is available for this GGUF model yet; "
                                  "give pre-tokenized ids with --input FILE.h5", o.model) : -1;
        if (tok && tok_vocab_size(tok) > c->vocab)
            rc = err_set("%s: the tokenizer has %d tokens, the model's vocabulary %d", o.model, tok_vocab_size(tok), c->vocab);
    }
    dataset d;
    memset(&d, 0, sizeof d);
    probe_params pp = {0};
    if (!rc && o.probe) {
        rc = probe_init(&pp, o.probe_len, o.probe_samples, (uint64_t)o.probe_seed, c, tok);
        const int T = (pp.bos >= 0) + 2 * o.probe_len;
        if (!rc && T > o.max_len)
            rc = err_set("--probe-len %d: the probe's %d tokens (%s2 x %d) exceed %s %d; use --probe-len %d or less", o.probe_len, T,
                         pp.bos >= 0 ? "BOS + " : "", o.probe_len, o.max_len < pos_limit ? "--max-len" : "the model's positions",
                         o.max_len, (o.max_len - (pp.bos >= 0)) / 2);
        if (!rc) rc = probe_dataset(&d, &pp, rank, nranks);
    } else if (!rc && images && o.images) {
        rc = dataset_from_images(&d, o.images, o.model, c->n_channels, c->patch_size, c->n_prefix, rank, nranks);
    } else if (!rc && images) {
        rc = dataset_from_pixels_h5(&d, o.input, o.model, c->n_channels, c->patch_size, c->n_prefix, rank, nranks);
    } else if (!rc) rc = o.text ? dataset_from_text(&d, o.text, tok, o.max_len, rank, nranks)
                         : dataset_from_h5(&d, o.input, o.max_len, c->vocab, c->type_vocab, rank, nranks);
    if (par_agree(rc, comm)) { free(sha); goto fail_early; }
    int32_t *image_size_all = NULL;     /* rank 0: every image's size before preprocessing */
    if (o.images) rc = run_images_agree(&d, comm, rank, nranks, &image_size_all);
    if (par_agree(rc, comm)) { free(image_size_all); free(sha); goto fail_early; }

    /* global shape facts */
    int lmax_local = 0, tokmax_local = 1;
    int64_t trunc_local = 0, ntok_local = 0;
    for (int i = 0; i < d.n; i++) {
        if (d.len[i] > lmax_local) lmax_local = d.len[i];
        trunc_local += d.len_full[i] > d.len[i];
        ntok_local += d.len[i];
        if (tok)
            for (int t = 0; t < d.len[i]; t++) {
                const char *s = tok_id_to_token(tok, d.ids[d.off[i] + t]);
                int n = s ? (int)strlen(s) : 0;
                if (n > tokmax_local) tokmax_local = n;
            }
    }
    int Lmax, tokmax;
    int64_t n_trunc, n_tokens;
    CHECK_MPI(MPI_Allreduce(&lmax_local, &Lmax, 1, MPI_INT, MPI_MAX, comm));
    CHECK_MPI(MPI_Allreduce(&tokmax_local, &tokmax, 1, MPI_INT, MPI_MAX, comm));
    CHECK_MPI(MPI_Allreduce(&trunc_local, &n_trunc, 1, MPI_INT64_T, MPI_SUM, comm));
    CHECK_MPI(MPI_Allreduce(&ntok_local, &n_tokens, 1, MPI_INT64_T, MPI_SUM, comm));
    const int64_t N = d.n_total;
    /* the batch where the command gave none: on a GPU 65,536 tokens, as many samples of the longest
     * length as that takes, at most 512 texts or 128 images — bert-base bf16 runs 1.23x faster at
     * L = 128 and 1.04x at L = 512 than with the CPU's 32 samples and 16,384 tokens; ViT-B/16 runs
     * 5-7% slower at 332 images a batch than at 128 (BENCHMARKS.md run 31) */
    const int on_gpu = strcmp(be->name, "cpu") != 0, most = d.px ? 128 : 512;
    if (!o.max_tokens) o.max_tokens = on_gpu ? 65536 : 16384;
    if (!o.batch) {
        const int fit = o.max_tokens / (Lmax > 0 ? Lmax : 1);
        o.batch = !on_gpu ? 32 : fit < 1 ? 1 : fit > most ? most : fit;
    }
    if (rank == 0) {
        printf("attnscope %s: %lld samples, %lld tokens, longest %d, model %s (%d layers x %d heads), %d rank(s)\n",
               ATTNSCOPE_VERSION, (long long)N, (long long)n_tokens, Lmax, o.model, L, NH, nranks);
        if (n_trunc) printf("attnscope: %lld of %lld samples truncated to --max-len %d tokens\n", (long long)n_trunc, (long long)N, o.max_len);
        fflush(stdout);
    }

    /* the run's identity: resume what an interrupted run of the same command left, or start */
    const double t_hash = util_now();
    run_samples_sha(&d, comm, rank, nranks, shex);
    const double t_ssha = util_now();
    char *manifest = make_manifest(&o, be->name, nranks, sha, shex, N);
    const uint64_t run_id = runstate_hash(manifest);
    int resume = rank == 0 ? runstate_match(&st, manifest) : 0;
    rc = resume < 0 ? -1 : 0;
    CHECK_MPI(MPI_Bcast(&resume, 1, MPI_INT, 0, comm));
    collect col;
    collect_opts co = {.window = o.window, .topk = o.topk, .key_importance = o.key_importance && !o.no_key_importance, .similarity = o.similarity, .save_attention = o.save_attention,
                       .att_f16 = !strcmp(o.att_dtype, "f16"), .sink_eps = (float)o.sink_eps, .batch = o.batch,
                       .window_multiple = d.px ? (o.max_tokens / Lmax < o.batch ? o.max_tokens / Lmax : o.batch) : 0,
                       .rollout_fusion = !strcmp(o.rollout_fusion, "mean") ? 0 : !strcmp(o.rollout_fusion, "max") ? 1 : 2,
                       .rollout_discard = o.rollout_discard, .rollout_start = o.rollout_start,
                       .high_norm_factor = o.high_norm_factor,
                       .probe = o.probe ? &pp : NULL};
    collect_init(&col, &m, &d, tok, &co, N, Lmax, tokmax);
    if (!rc && rank == 0) rc = check_space(&col, &st, resume == 1, o.force);
    if (par_agree(rc, comm)) { free(sha); free(manifest); collect_free(&col); goto fail_early; }

    if (resume != 1) {
        /* the file, complete with every dataset and attribute, before any data: created by rank 0
         * alone (serial HDF5: a failed write there cannot leave the other ranks waiting in a
         * collective) as data.h5.new, renamed to data.h5 with the manifest once whole and on disk */
        rc = 0;
        if (rank == 0) {
            h5out out;
            rc = h5out_create(&out, st.data_new);
            if (!rc) {
                char *cmdline = join_argv(argc, argv);
                char created[64] = "";
                time_t now = time(NULL);
                strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
                h5_attr_str(out.file, "attnscope_version", ATTNSCOPE_VERSION);
                h5_attr_str(out.file, "git_commit", ATTNSCOPE_GIT_COMMIT);
                h5_attr_str(out.file, "command_line", cmdline);
                h5_attr_str(out.file, "model_dir", o.model);
                h5_attr_str(out.file, "model_type", c->model_type);
                h5_attr_str(out.file, "config_json", c->json_text);
                h5_attr_str(out.file, "weights_sha256", sha);
                h5_attr_str(out.file, "tokenizer", tok ? tok_describe(tok) : "none (pre-tokenized input)");
                h5_attr_str(out.file, "input", o.text ? o.text : o.input ? o.input : o.images ? o.images : "--probe induction");
                h5_attr_str(out.file, "input_kind", o.text ? "text" : o.input ? "hdf5" : o.images ? "images" : "probe");
                h5_attr_str(out.file, "dtype", "float32");
                h5_attr_str(out.file, "precision", o.precision);
                h5_attr_str(out.file, "gelu", c->act == ACT_GELU && be->gelu_tanh ? "tanh (the erf GELU in its tanh form)" : "exact");
                h5_attr_str(out.file, "backend", be->name);
                h5_attr_str(out.file, "created", created);
                h5_attr_i64(out.file, "n_ranks", nranks);
                h5_attr_i64(out.file, "n_samples", N);
                h5_attr_i64(out.file, "n_layers", L);
                h5_attr_i64(out.file, "n_heads", NH);
                h5_attr_i64(out.file, "max_len", o.max_len);
                h5_attr_i64(out.file, "n_truncated", n_trunc);
                h5_attr_f64(out.file, "sink_eps", o.sink_eps);
                h5_attr_i64(out.file, "window", o.window);
                h5_attr_i64(out.file, "topk", o.topk);
                free(cmdline);
                collect_create(&col, &out, n_tokens);
                if (o.images) run_images_write(&out, &d, image_size_all, o.model);
                h5out_close(&out);
                rc = runstate_commit_creation(&st, manifest);
            }
        }
        if (par_agree(rc, comm)) { free(sha); free(manifest); collect_free(&col); goto fail_early; }
    }
    free(sha);
    free(manifest);
    if (par_agree(collect_attach(&col, st.data, st.dir, run_id, comm), comm)) { collect_free(&col); goto fail_early; }

    /* this rank's durable progress */
    progress_rec pr;
    const int64_t nsim = o.similarity ? (int64_t)L * NH * L * NH : 0;
    int have = resume == 1 ? progress_read(st.dir, rank, nranks, run_id, d.first, d.n, nsim, &pr) : 0;
    if (have < 0) {
        fprintf(stderr, "attnscope: warning: %s; rank %d starts its shard again\n", err_get(), rank);
        have = 0;
    }
    if (!have) memset(&pr, 0, sizeof pr);
    if (have) collect_restore_similarity(&col, &pr);
    col.saved_samples = pr.samples_done;
    col.saved_tokens = pr.tokens_done;

    run_loop_result res;
    run_loop_opts lo = {.batch = o.batch, .max_tokens = o.max_tokens, .similarity = o.similarity,
                        .checkpoint_every = o.checkpoint_every, .nsim = nsim};
    runctl ctl;
    runctl_init(&ctl, comm, N, n_tokens, pr.samples_done, pr.tokens_done, o.quiet, o.progress_every);
    backend_profile_begin(be);        /* (--timeline: the loop's own marks only) */
    const double t_loop = util_now();
    runctl_set_graceful(1);
    int state = run_loop(&res, &col, &m, &d, &ctl, &lo, have ? &pr : NULL);
    free(pr.js); free(pr.gram);
    be->sync(be);
    double loop_s = util_now() - t_loop, loop_max = 0;
    if (rank == 0 && (o.profile || o.timeline)) backend_profile_print(be, loop_s, stdout);
    const double t_end = util_now();
    double waited = collect_drain(&col);
    if (collect_write_failed(&col)) state = RUNCTL_FAILED;
    const double t_drain = util_now();
    const int verdict = runctl_finish(&ctl, state, res.samples_done, res.tokens_done);
    runctl_set_graceful(0);
    /* padding, and the non-finite statistics counted for the closing line */
    int64_t pad[3] = {res.tokens_computed, res.tokens_padded, col.n_nonfinite}, pad_all[3];
    double waited_max = 0;
    CHECK_MPI(MPI_Allreduce(&loop_s, &loop_max, 1, MPI_DOUBLE, MPI_MAX, comm));
    CHECK_MPI(MPI_Allreduce(&waited, &waited_max, 1, MPI_DOUBLE, MPI_MAX, comm));
    CHECK_MPI(MPI_Allreduce(pad, pad_all, 3, MPI_INT64_T, MPI_SUM, comm));
    rc = 0;
    if (verdict == RUNCTL_DONE) {
        rc = collect_write_similarity(&col, comm);
        if (!par_agree(rc, comm)) rc = collect_write_probe(&col, comm);
        collect_free(&col);
        if (!par_agree(rc, comm)) rc = par_agree(rank == 0 ? runstate_finish(&st) : 0, comm);
        else rc = -1;
        if (!rc && rank == 0) {
            double el = util_now() - t0;
            if (getenv("ATTNSCOPE_PHASES"))   /* (runloop.c: the loop's own phases) */
                fprintf(stderr, "[phases] from the start line: weights SHA-256 %.3f s, samples SHA-256 %.3f, file and state "
                                "%.3f, loop %.3f, the writer's drain %.3f, finishing %.3f\n", t_wsha - t_start, t_ssha - t_hash,
                        t_loop - t_ssha, t_end - t_loop, t_drain - t_end, util_now() - t_drain);
            char nonfin[64] = "";
            if (pad_all[2]) snprintf(nonfin, sizeof nonfin, "; %lld non-finite statistics (NaN/Inf)", (long long)pad_all[2]);
            printf("attnscope: wrote %s: %lld samples, %lld tokens in %.1f s (%.0f tokens/s on %d rank(s); "
                   "forward, statistics and writes %.2f s: %.0f tokens/s; padding %.1f%% of %lld tokens computed; waited %.2f s for the disk)%s\n",
                   o.out, (long long)N, (long long)n_tokens, el, n_tokens / el, nranks, loop_max,
                   pad_all[0] / loop_max, pad_all[0] + pad_all[1] ? 100.0 * pad_all[1] / (pad_all[0] + pad_all[1]) : 0.0,
                   (long long)(pad_all[0] + pad_all[1]), waited_max, nonfin);
        }
    } else {
        /* what the durable records say is done: a resume starts there */
        int64_t done[2] = {col.saved_samples, col.saved_tokens}, done_all[2];
        CHECK_MPI(MPI_Allreduce(done, done_all, 2, MPI_INT64_T, MPI_SUM, comm));
        char saved[5000];
        snprintf(saved, sizeof saved, "%lld of %lld samples (%lld of %lld tokens) are saved in %s",
                 (long long)done_all[0], (long long)N, (long long)done_all[1], (long long)n_tokens, st.dir);
        if (verdict == RUNCTL_FAILED) {   /* one line, from the lowest rank whose write failed */
            const int bad = collect_write_failed(&col);
            if (bad) err_set("%s; %s: %s", col.werr_msg, saved, run_failure_advice(col.werr_errno, col.werr_input));
            par_agree(bad ? -1 : 0, comm);
        } else if (rank == 0)
            fprintf(stderr, "attnscope: stopped%s%s: %s; run the same command again to resume\n", runctl_signal() ? " by " : "",
                    runctl_signal() ? runctl_signal_name(runctl_signal()) : "", saved);
        collect_free(&col);
    }
    if (rank == 0) runstate_close(&st);
    /* every rank's message is out before any rank exits non-zero (mpirun then kills the rest) */
    CHECK_MPI(MPI_Barrier(comm));
    runctl_set_silent();
    free(image_size_all);
    dataset_free(&d);
    probe_free(&pp);
    tok_free(tok);
    model_free(&m);
    backend_free(be);
    free(job_store);
    return verdict == RUNCTL_STOPPED ? RUNCTL_EXIT_STOPPED : verdict == RUNCTL_FAILED || rc ? 1 : 0;

fail_early:
    run_abandon(&st, comm);
    dataset_free(&d);
    probe_free(&pp);
    if (tok) tok_free(tok);
    model_free(&m);
    backend_free(be);
    free(job_store);
    return 1;
}
