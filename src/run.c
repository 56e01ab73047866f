/* run.c — `attnscope run`: options (command line over an optional job file), the model, this
 * rank's shard of the dataset, the batched forward with the attention capture, and the HDF5
 * output. Everything a rank can reject is checked before the output file exists, and the ranks
 * agree on each step (par_agree) so that a bad input ends every rank cleanly with one message. */
#include "run.h"
#include "check.h"
#include "collect.h"
#include "dataset.h"
#include "h5out.h"
#ifdef ATTNSCOPE_CUDA
#include "kernels.h"
#endif
#include "model.h"
#include "par.h"
#include "tokenizer.h"
#include "util.h"
#include <limits.h>
#include <omp.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const char *model, *text, *input, *out, *backend, *att_dtype, *precision;
    int max_len, batch, max_tokens, save_attention, quiet;
    int window, topk, similarity, no_key_importance, profile;
    double sink_eps;
} run_opts;

static const char *run_usage =
    "usage: attnscope run --model DIR (--text FILE | --input FILE.h5) --out OUT.h5 [options]\n"
    "  --job FILE             read options from a job file (key = value lines; the command line wins)\n"
    "  --model DIR            Hugging Face checkpoint: config.json, *.safetensors, tokenizer.json|vocab.txt\n"
    "  --text FILE            UTF-8 corpus, one sample per line (blank lines skipped)\n"
    "  --input FILE.h5        pre-tokenized: /input_ids [N,L], optional /attention_mask, /token_type_ids\n"
    "  --out OUT.h5           output file (written to a temporary name, renamed on success)\n"
    "  --max-len N            truncate samples to N tokens (default: the model's max positions)\n"
    "  --batch N              samples per forward batch (default 32)\n"
    "  --max-tokens N         cap on batch x padded length (default 16384)\n"
    "  --save-attention       also store /attention [N, layers, heads, Lmax, Lmax]\n"
    "  --attention-dtype T    f32 (default) or f16 for /attention\n"
    "  --backend B            cuda (default when built with CUDA and a GPU is visible) or cpu\n"
    "  --precision P          fp32 (default), fp32-sgemm, tf32 or bf16. fp32: within 1e-5 of HF (on a GPU the\n"
    "                         linear layers and QKᵀ run as 3xTF32 tensor-core GEMMs); fp32-sgemm: every GEMM a\n"
    "                         plain SGEMM; tf32: TF32 GEMMs (~1e-3); bf16: bf16 linear layers. Softmax and\n"
    "                         statistics stay fp32/fp64\n"
    "  --window W             locality window in tokens (default 3)\n"
    "  --topk K               keys kept per query in /stats/topk_* (default 3; 0: not stored)\n"
    "  --no-key-importance    do not store /stats/key_importance [N, layers, heads, Lmax]\n"
    "  --sink-eps E           sink threshold of /stats/sink_rate (default 0.3)\n"
    "  --head-similarity      accumulate /summary/head_similarity_* (JS and cosine between all heads)\n"
    "  --quiet                no progress lines\n"
    "  --profile              time every backend op (slower) and print where rank 0's time went\n";

int mpi_thread_level = MPI_THREAD_SINGLE;
const char *run_usage_text(void) { return run_usage; }

/* ---- options ------------------------------------------------------------------------------ */

static int set_int(int *dst, const char *key, const char *v, int lo, int hi)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi) return err_set("--%s: '%s' is not an integer in [%d, %d]", key, v, lo, hi);
    *dst = (int)x;
    return 0;
}

/* Applies one option; value NULL for flags. Returns 0, 1 if it consumed a value, -1 (err_set). */
static int apply_opt(run_opts *o, const char *key, const char *val, int from_job)
{
    struct { const char *name; const char **dst; } strs[] = {
        {"model", &o->model}, {"text", &o->text}, {"input", &o->input}, {"out", &o->out},
        {"backend", &o->backend}, {"attention-dtype", &o->att_dtype}, {"precision", &o->precision}};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
        if (!strcmp(key, strs[i].name)) {
            if (!val) return err_set("--%s needs a value", key);
            *strs[i].dst = val;
            return 1;
        }
    struct { const char *name; int *dst; int lo, hi; } ints[] = {
        {"max-len", &o->max_len, 2, 1 << 20}, {"batch", &o->batch, 1, 1 << 20}, {"max-tokens", &o->max_tokens, 2, 1 << 30},
        {"window", &o->window, 0, 1 << 20}, {"topk", &o->topk, 0, 64}};
    if (!strcmp(key, "sink-eps")) {
        char *end;
        if (!val) return err_set("--sink-eps needs a value");
        o->sink_eps = strtod(val, &end);
        if (*end || end == val || !(o->sink_eps >= 0 && o->sink_eps <= 1)) return err_set("--sink-eps: '%s' is not a number in [0, 1]", val);
        return 1;
    }
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
        if (!strcmp(key, ints[i].name)) {
            if (!val) return err_set("--%s needs a value", key);
            return set_int(ints[i].dst, key, val, ints[i].lo, ints[i].hi) ? -1 : 1;
        }
    struct { const char *name; int *dst; } flags[] = {
        {"save-attention", &o->save_attention}, {"quiet", &o->quiet}, {"head-similarity", &o->similarity},
        {"no-key-importance", &o->no_key_importance}, {"profile", &o->profile}};
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++)
        if (!strcmp(key, flags[i].name)) {
            if (from_job && val) {
                if (!strcmp(val, "true") || !strcmp(val, "1") || !strcmp(val, "yes")) *flags[i].dst = 1;
                else if (!strcmp(val, "false") || !strcmp(val, "0") || !strcmp(val, "no")) *flags[i].dst = 0;
                else return err_set("%s: expected true or false, got '%s'", key, val);
                return 1;
            }
            *flags[i].dst = 1;
            return 0;
        }
    return err_set("unknown option --%s", key);
}

/* Job file: "key = value" lines, '#' comments, keys as the long options. Values are kept in
 * *store (freed by the caller). */
static int read_job(run_opts *o, const char *path, char **store)
{
    size_t n;
    char *text = util_read_file(path, 1 << 20, &n);
    if (!text) return -1;
    *store = text;
    int lineno = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        lineno++;
        char *h = strchr(line, '#');
        if (h) *h = 0;
        char *k = line;
        while (*k == ' ' || *k == '\t') k++;
        if (!*k || *k == '\r') continue;
        char *eq = strchr(k, '=');
        if (!eq) return err_set("%s:%d: expected 'key = value'", path, lineno);
        char *ke = eq;
        while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t')) ke--;
        *ke = 0;
        char *v = eq + 1;
        while (*v == ' ' || *v == '\t') v++;
        char *ve = v + strlen(v);
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t' || ve[-1] == '\r')) ve--;
        *ve = 0;
        if (!strcmp(k, "job")) return err_set("%s:%d: a job file cannot name another job file", path, lineno);
        if (apply_opt(o, k, v, 1) < 0) {
            char m[1024];
            snprintf(m, sizeof m, "%s", err_get());
            return err_set("%s:%d: %s", path, lineno, m);
        }
    }
    return 0;
}

static int parse_opts(run_opts *o, int argc, char **argv, char **job_store)
{
    memset(o, 0, sizeof *o);
    o->batch = 32;
    o->max_tokens = 16384;
    o->backend = NULL;
    o->precision = "fp32";
    o->att_dtype = "f32";
    o->window = 3;
    o->topk = 3;
    o->sink_eps = 0.3;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--job") && read_job(o, argv[i + 1], job_store)) return -1;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--", 2)) return err_set("unexpected argument '%s'", argv[i]);
        const char *key = argv[i] + 2;
        if (!strcmp(key, "job")) { i++; continue; }
        int r = apply_opt(o, key, i + 1 < argc ? argv[i + 1] : NULL, 0);
        if (r < 0) return -1;
        i += r;
    }
    if (!o->model) return err_set("--model DIR is required");
    if (!o->out) return err_set("--out OUT.h5 is required");
    if (!!o->text == !!o->input) return err_set("give exactly one of --text FILE and --input FILE.h5");
    if (strcmp(o->att_dtype, "f32") && strcmp(o->att_dtype, "f16")) return err_set("--attention-dtype must be f32 or f16, not '%s'", o->att_dtype);
    if (o->backend && strcmp(o->backend, "cpu") && strcmp(o->backend, "cuda"))
        return err_set("--backend must be cpu or cuda, not '%s'", o->backend);
    if (strcmp(o->precision, "fp32") && strcmp(o->precision, "fp32-sgemm") && strcmp(o->precision, "tf32") &&
        strcmp(o->precision, "bf16"))
        return err_set("--precision must be fp32, fp32-sgemm, tf32 or bf16, not '%s'", o->precision);
    return 0;
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

/* SHA-256 of every weight file as a JSON object {"name": "hex"}; computed on rank 0, broadcast. */
static char *weights_sha_json(const model *m, MPI_Comm comm, int rank)
{
    int len = 0;
    char *s = NULL;
    if (rank == 0) {
        size_t cap = 64 + (size_t)m->n_weight_files * 4200;
        s = xmalloc(cap);
        char *p = s;
        p += sprintf(p, "{");
        for (int i = 0; i < m->n_weight_files; i++) {
            char hex[65] = "unreadable";
            if (util_sha256_file(m->weight_files[i], hex)) snprintf(hex, sizeof hex, "unreadable");
            const char *base = strrchr(m->weight_files[i], '/');
            p += sprintf(p, "%s\"%s\": \"%s\"", i ? ", " : "", base ? base + 1 : m->weight_files[i], hex);
        }
        sprintf(p, "}");
        len = (int)strlen(s) + 1;
    }
    CHECK_MPI(MPI_Bcast(&len, 1, MPI_INT, 0, comm));
    if (rank) s = xmalloc(len);
    CHECK_MPI(MPI_Bcast(s, len, MPI_CHAR, 0, comm));
    return s;
}

static int cmp_len_desc(const void *a, const void *b, void *ctx)
{
    const int *len = ctx;
    int x = *(const int *)a, y = *(const int *)b;
    if (len[x] != len[y]) return len[y] - len[x];
    return x - y;
}

/* ---- run ------------------------------------------------------------------------------------ */

int run_main(int argc, char **argv)
{
    MPI_Comm comm = MPI_COMM_WORLD;
    int rank, nranks;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &nranks);
    run_opts o;
    char *job_store = NULL;
    if (par_agree(parse_opts(&o, argc, argv, &job_store), comm)) {
        if (rank == 0) fputs(run_usage, stderr);
        free(job_store);
        return 2;
    }
    const double t0 = util_now();

    /* output directory first: fail before any expensive work */
    char outdir[4096];
    snprintf(outdir, sizeof outdir, "%s", o.out);
    char *slash = strrchr(outdir, '/');
    if (slash) *slash = 0; else snprintf(outdir, sizeof outdir, ".");
    int rc = access(outdir, W_OK) ? err_set("%s: output directory %s does not exist or is not writable", o.out, outdir) : 0;
    if (par_agree(rc, comm)) { free(job_store); return 1; }

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
    if (par_agree(be ? 0 : -1, comm)) { if (be) backend_free(be); free(job_store); return 1; }
    if (o.profile) be = backend_profiled(be);
    snprintf(what, sizeof what, "backend=%s precision=%s threads=%d %s", be->name, o.precision, omp_get_max_threads(), gpu);
    par_banner(comm, what);

    model m;
    if (par_agree(model_load(&m, o.model, be), comm)) { backend_free(be); free(job_store); return 1; }
    const model_config *c = &m.cfg;
    const int L = c->n_layer, NH = c->n_head;
    const int pos_limit = c->max_pos - c->pos_offset;
    if (!o.max_len) o.max_len = pos_limit;
    rc = o.max_len > pos_limit ? err_set("--max-len %d exceeds the model's %d positions (%s/config.json)", o.max_len, pos_limit, o.model) : 0;

    tokenizer *tok = NULL;
    if (!rc) {
        tok = tok_load(o.model);
        if (!tok && o.text) rc = -1;
        if (tok && tok_vocab_size(tok) > c->vocab)
            rc = err_set("%s: the tokenizer has %d tokens, the model's vocabulary %d", o.model, tok_vocab_size(tok), c->vocab);
    }
    dataset d;
    memset(&d, 0, sizeof d);
    if (!rc) rc = o.text ? dataset_from_text(&d, o.text, tok, o.max_len, rank, nranks)
                         : dataset_from_h5(&d, o.input, o.max_len, c->vocab, c->type_vocab, rank, nranks);
    if (par_agree(rc, comm)) goto fail_early;

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
    if (rank == 0) {
        printf("attnscope %s: %lld samples, %lld tokens, longest %d, model %s (%d layers x %d heads), %d rank(s)\n",
               ATTNSCOPE_VERSION, (long long)N, (long long)n_tokens, Lmax, o.model, L, NH, nranks);
        if (n_trunc) printf("attnscope: %lld of %lld samples truncated to --max-len %d tokens\n", (long long)n_trunc, (long long)N, o.max_len);
        fflush(stdout);
    }

    h5out out;
    if (par_agree(h5out_create(&out, o.out, comm), comm)) goto fail_early;

    /* root attributes: identical on every rank (collective metadata) */
    char *cmdline = join_argv(argc, argv);
    char *sha = weights_sha_json(&m, comm, rank);
    char created[64] = "";
    if (rank == 0) {
        time_t now = time(NULL);
        strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    }
    CHECK_MPI(MPI_Bcast(created, sizeof created, MPI_CHAR, 0, comm));
    h5_attr_str(out.file, "attnscope_version", ATTNSCOPE_VERSION);
    h5_attr_str(out.file, "git_commit", ATTNSCOPE_GIT_COMMIT);
    h5_attr_str(out.file, "command_line", cmdline);
    h5_attr_str(out.file, "model_dir", o.model);
    h5_attr_str(out.file, "model_type", c->model_type);
    h5_attr_str(out.file, "config_json", c->json_text);
    h5_attr_str(out.file, "weights_sha256", sha);
    h5_attr_str(out.file, "tokenizer", tok ? tok_describe(tok) : "none (pre-tokenized input)");
    h5_attr_str(out.file, "input", o.text ? o.text : o.input);
    h5_attr_str(out.file, "input_kind", o.text ? "text" : "hdf5");
    h5_attr_str(out.file, "dtype", "float32");
    h5_attr_str(out.file, "precision", o.precision);
    h5_attr_str(out.file, "backend", be->name);
    h5_attr_str(out.file, "created", created);
    h5_attr_i64(out.file, "n_ranks", nranks);
    h5_attr_i64(out.file, "n_samples", N);
    h5_attr_i64(out.file, "n_layers", L);
    h5_attr_i64(out.file, "n_heads", NH);
    h5_attr_i64(out.file, "max_len", o.max_len);
    h5_attr_i64(out.file, "n_truncated", n_trunc);
    free(cmdline);
    free(sha);

    h5_attr_f64(out.file, "sink_eps", o.sink_eps);
    h5_attr_i64(out.file, "window", o.window);
    h5_attr_i64(out.file, "topk", o.topk);

    /* the forward, window by window, batched by similar lengths inside a window */
    collect col;
    collect_opts co = {.window = o.window, .topk = o.topk, .key_importance = !o.no_key_importance, .similarity = o.similarity, .save_attention = o.save_attention,
                       .att_f16 = !strcmp(o.att_dtype, "f16"), .sink_eps = (float)o.sink_eps, .batch = o.batch,
                       .threaded_writes = mpi_thread_level >= MPI_THREAD_SERIALIZED};
    collect_init(&col, &out, &m, &d, tok, &co, N, Lmax, tokmax);
    int *order = xmalloc((d.n ? d.n : 1) * sizeof(int));
    int32_t *bids = xmalloc((size_t)o.batch * Lmax * sizeof(int32_t)), *btypes = xmalloc((size_t)o.batch * Lmax * sizeof(int32_t));
    int *blen = xmalloc(o.batch * sizeof(int));
    double last_print = util_now(), t_loop = util_now();
    int bcap = o.batch;
    int64_t done_tok = 0;
    for (int w0 = 0; w0 < d.n; w0 += col.wcap) {
        const int wn = d.n - w0 < col.wcap ? d.n - w0 : col.wcap;
        collect_window_begin(&col, w0, wn);
        for (int i = 0; i < wn; i++) order[i] = w0 + i;
        qsort_r(order, wn, sizeof(int), cmp_len_desc, d.len);
        for (int s = 0; s < wn;) {
            const int T = d.len[order[s]];
            int B = o.max_tokens / T;
            if (B > o.batch) B = o.batch;
            if (B > bcap) B = bcap;
            if (o.similarity) {           /* the batch keeps every layer's maps: cap at 1 GiB */
                int64_t per = (int64_t)L * NH * T * T * 4, cap = ((int64_t)1 << 30) / per;
                if (B > cap) B = (int)cap;
            }
            if (B < 1) B = 1;
            if (B > wn - s) B = wn - s;
            /* from free backend memory (GPU): what the batch needs beyond what is already held */
            size_t avail = be->mem_free(be);
            if (avail) {
                const int fused = col.scalars_only && model_fuses(&m);
                size_t held = model_batch_bytes(&m, (int)(m.cap_BT / T), T, fused);   /* activations already allocated */
                while (B > 1 && model_batch_bytes(&m, B, T, fused) > held + avail * 9 / 10) B /= 2;
            }
            for (;;) {
                for (int b = 0; b < B; b++) {
                    int i = order[s + b];
                    blen[b] = d.len[i];
                    for (int t = 0; t < T; t++) {
                        int real = t < d.len[i];
                        bids[b * T + t] = real ? d.ids[d.off[i] + t] : c->pad_token_id;
                        btypes[b * T + t] = real && d.types ? d.types[d.off[i] + t] : 0;
                    }
                }
                collect_batch_begin(&col, order + s, B, T);
                if (!model_forward(&m, bids, btypes, blen, B, T, &col.req, NULL)) break;
                if (B == 1) check_fail(__FILE__, __LINE__, "model_forward", err_get());   /* one sample does not fit */
                fprintf(stderr, "[rank %d] %s: retrying with %d samples per batch\n", rank, err_get(), B / 2);
                B /= 2;
                bcap = B;                 /* the error is not sticky; later batches start no larger */
            }
            collect_batch_end(&col, B, T);
            for (int b = 0; b < B; b++) done_tok += d.len[order[s + b]];
            s += B;
            double now = util_now();
            int done = w0 + s;
            if (rank == 0 && !o.quiet && (now - last_print > 2.0 || done == d.n)) {
                double el = now - t0;
                printf("[progress] rank 0: %d/%d samples (%.0f%%), %.0f tokens/s, elapsed %.1f s, eta %.0f s\n", done, d.n,
                       100.0 * done / d.n, done_tok / (now - t0), el, el * (d.n - done) / done);
                fflush(stdout);
                last_print = now;
            }
        }
        collect_window_write(&col);
    }
    be->sync(be);
    double loop_s = util_now() - t_loop, loop_max = 0;
    CHECK_MPI(MPI_Allreduce(&loop_s, &loop_max, 1, MPI_DOUBLE, MPI_MAX, comm));
    if (rank == 0 && o.profile) backend_profile_print(be, loop_s, stdout);
    double waited = collect_finish(&col, &out, comm), waited_max = 0;
    CHECK_MPI(MPI_Allreduce(&waited, &waited_max, 1, MPI_DOUBLE, MPI_MAX, comm));
    free(order); free(bids); free(btypes); free(blen);

    rc = h5out_close(&out, 1);
    if (rank == 0 && !rc) {
        double el = util_now() - t0;
        printf("attnscope: wrote %s: %lld samples, %lld tokens in %.1f s (%.0f tokens/s on %d rank(s); "
               "forward, statistics and writes %.2f s: %.0f tokens/s; waited %.2f s for the disk)\n", o.out,
               (long long)N, (long long)n_tokens, el, n_tokens / el, nranks, loop_max, n_tokens / loop_max, waited_max);
    }
    dataset_free(&d);
    tok_free(tok);
    model_free(&m);
    backend_free(be);
    free(job_store);
    return par_agree(rc, comm) ? 1 : 0;

fail_early:
    dataset_free(&d);
    if (tok) tok_free(tok);
    model_free(&m);
    backend_free(be);
    free(job_store);
    return 1;
}
