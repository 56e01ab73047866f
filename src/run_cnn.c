/* run_cnn.c — `attnscope run` for a CNN (model_type "resnet", cnn.h): the images of this rank's
 * shard through the ResNet forward, and per image, stage and channel the feature-map statistics
 * (always) and the stage outputs (--save-features), written under /cnn. No attention, no /stats.
 *
 * Output and interruptions as the transformer path's (h5out.h, runstate.h, runctl.h): rank 0
 * creates OUT.h5.partial/data.h5 complete with the run's manifest (format cnn-2: the identity
 * options, ranks, backend, the weights' and the preprocessed pixels' SHA-256); every rank pwrites
 * its rows at their offsets, in batches of consecutive images, and after a batch (at most every
 * --checkpoint-every seconds, always on a stop and at the end of its shard) fdatasyncs them and
 * writes its progress record: "the first `wstart` images of the shard are done" (wn = q = 0, no
 * windows: the images are not reordered). A signal stops every rank at its next batch boundary
 * (runctl) with its record written, exit 75; the same command resumes each rank from its record
 * with the same batches, so the file equals an uninterrupted run's bit for bit. Rank 0 renames
 * the file to OUT.h5 when every rank is done.
 *
 * Statistics of one channel's map x over its h·w positions (definitions stored as attributes):
 *   mean            Σ x / (h·w)
 *   active_fraction #{x > 0} / (h·w)
 *   entropy         −Σ p ln p over the positions (nats), p = x⁺ / Σ x⁺ (x⁺ = max(x, 0); the stage
 *                   outputs are ReLU outputs, so x⁺ = x); at most ln(h·w). An all-zero map has
 *                   no spatial distribution: NaN (np.nanmean skips it). */
#include "run_int.h"
#include "check.h"
#include "cnn.h"
#include "h5out.h"
#include "par.h"
#include "prefetch.h"
#include "runctl.h"
#include "util.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { CS_MEAN, CS_ACTIVE, CS_ENTROPY, CS_FEATURES, CS_N };
static const char *const cs_names[CS_N] = {"mean", "active_fraction", "entropy", "features"};
static const char *const cs_units[CS_N] = {"activation", "fraction of positions", "nats", "activation"};
static const char *const cs_defs[CS_N] = {
    "mean of the channel's feature map over its h x w positions",
    "fraction of the channel's h x w positions with an activation > 0 (ReLU active)",
    "spatial entropy -sum p ln p of the channel's map normalised to sum 1 (p = max(x, 0) / sum max(x, 0)) over its "
    "h x w positions, in nats, at most ln(h w) (attribute max_entropy); NaN for an all-zero map (no distribution)",
    "the stage's output [N, C, H, W] as HF's hidden_states[stage] (NCHW)"};

/* rank 0, a fresh file: the /cnn datasets with their attributes */
static void create_datasets(h5out *out, const cnn_model *m, const run_cnn_opts *o, int64_t N, const int *C, const int *h,
                            const int *w, char (*names)[CS_N][64])
{
    const cnn_config *c = &m->cfg;
    for (int s = 0; s <= c->n_stages; s++) {
        for (int k = 0; k < CS_N; k++) {
            if (k == CS_FEATURES && !o->save_features) continue;
            const hsize_t d2[2] = {(hsize_t)N, (hsize_t)C[s]}, d4[4] = {(hsize_t)N, (hsize_t)C[s], (hsize_t)h[s], (hsize_t)w[s]};
            hid_t f16 = h5_type_f16();
            hid_t type = k == CS_FEATURES && o->features_f16 ? f16 : H5T_IEEE_F32LE;
            hid_t ds = h5out_dataset(out, names[s][k], type, k == CS_FEATURES ? 4 : 2, k == CS_FEATURES ? d4 : d2, NULL);
            H5Tclose(f16);
            h5_attr_str(ds, "units", cs_units[k]);
            h5_attr_str(ds, "definition", cs_defs[k]);
            if (k == CS_ENTROPY) h5_attr_f64(ds, "max_entropy", log((double)h[s] * w[s]));
            H5Dclose(ds);
        }
        char g[64];
        snprintf(g, sizeof g, "/cnn/stage_%d", s);
        hid_t gid = H5Gopen2(out->file, g, H5P_DEFAULT);
        h5_attr_str(gid, "module", s == 0 ? "embedder (conv 7x7/2 + batch norm + ReLU + max pool 3x3/2)" : "encoder stage");
        h5_attr_i64(gid, "hf_hidden_state", s);
        h5_attr_i64(gid, "channels", C[s]);
        h5_attr_i64(gid, "height", h[s]);
        h5_attr_i64(gid, "width", w[s]);
        if (s) h5_attr_i64(gid, "depth", c->depths[s - 1]);
        H5Gclose(gid);
    }
    hid_t gid = H5Gopen2(out->file, "/cnn", H5P_DEFAULT);
    h5_attr_i64(gid, "n_stages", c->n_stages + 1);
    h5_attr_str(gid, "layer_type", c->bottleneck ? "bottleneck" : "basic");
    h5_attr_i64(gid, "image_height", o->height);
    h5_attr_i64(gid, "image_width", o->width);
    h5_attr_str(gid, "stages", "stage_0 is the embedder's output, stage_S (S >= 1) the encoder's stage S: HF's "
                               "hidden_states[S] of ResNetModel(output_hidden_states=True)");
    h5_attr_str(gid, "batch_norm", "eval mode (running statistics), folded into the preceding convolution");
    H5Gclose(gid);
}

int run_cnn(const run_cnn_opts *o, backend *be, runstate *st, MPI_Comm comm)
{
    int rank, nranks;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &nranks);
    const double t0 = util_now();
    cnn_model m;
    dataset d;
    memset(&d, 0, sizeof d);
    int rc = cnn_load(&m, o->model, be);
    if (par_agree(rc, comm)) { run_abandon(st, comm); return 1; }
    const cnn_config *c = &m.cfg;
    /* patch 4: the smallest image a ResNet takes; the dataset's token counts are not used */
    rc = o->text || o->probe ? err_set("%s is a resnet model: it takes images (--images DIR|LIST, or --input FILE.h5 with "
                                       "/pixel_values)", o->model)
       : o->images ? dataset_from_images(&d, o->images, o->model, c->num_channels, 4, 0, rank, nranks)
                   : dataset_from_pixels_h5(&d, o->input, o->model, c->num_channels, 4, 0, rank, nranks);
    if (par_agree(rc, comm)) goto fail;
    int32_t *size_all = NULL;
    rc = o->images ? run_images_agree(&d, comm, rank, nranks, &size_all) : 0;
    if (par_agree(rc, comm)) { free(size_all); goto fail; }
    int hw[2] = {d.n ? d.height : 0, d.n ? d.width : 0}, HW[2];
    CHECK_MPI(MPI_Allreduce(hw, HW, 2, MPI_INT, MPI_MAX, comm));
    const int S = c->n_stages + 1, H = HW[0], W = HW[1];
    int C[CNN_MAX_STAGES + 1], h[CNN_MAX_STAGES + 1], w[CNN_MAX_STAGES + 1];
    rc = 0;
    for (int s = 0; s < S && !rc; s++) rc = cnn_output_shape(&m, H, W, s, &C[s], &h[s], &w[s]);
    if (par_agree(rc, comm)) { free(size_all); goto fail; }
    const int64_t N = d.n_total;
    run_cnn_opts oo = *o;
    oo.height = H;
    oo.width = W;
    char names[CNN_MAX_STAGES + 1][CS_N][64];
    const char *flat[(CNN_MAX_STAGES + 1) * CS_N];
    for (int s = 0; s < S; s++)
        for (int k = 0; k < CS_N; k++) {
            snprintf(names[s][k], 64, "/cnn/stage_%d/%s", s, cs_names[k]);
            flat[s * CS_N + k] = k == CS_FEATURES && !o->save_features ? NULL : names[s][k];
        }
    if (rank == 0) {
        printf("attnscope %s: %lld images of %d x %d, resnet %s (%d stages), %d rank(s)\n", ATTNSCOPE_VERSION, (long long)N, H, W,
               c->bottleneck ? "bottleneck" : "basic", c->n_stages, nranks);
        fflush(stdout);
    }
    /* the run's identity: resume what an interrupted run of the same command left, or start */
    char *sha = run_weights_sha(m.weight_files, m.n_weight_files, comm, rank), shex[65];
    run_samples_sha(&d, comm, rank, nranks, shex);
    char *manifest = run_manifest("cnn-2", o->identity, be->name, nranks, sha, shex, N);
    const uint64_t run_id = runstate_hash(manifest);
    int resume = rank == 0 ? runstate_match(st, manifest) : 0;
    rc = resume < 0 ? -1 : 0;
    CHECK_MPI(MPI_Bcast(&resume, 1, MPI_INT, 0, comm));
    if (!rc && rank == 0) {   /* the output's size against the free space, before anything is written */
        int64_t total = 0, feat = 0;
        for (int s = 0; s < S; s++) {
            total += N * 3 * C[s] * 4;
            if (o->save_features) feat += N * (int64_t)C[s] * h[s] * w[s] * (o->features_f16 ? 2 : 4);
        }
        char line[256], v[2][32];
        snprintf(v[0], sizeof v[0], "%.1f MB", (total + feat) / 1e6);
        snprintf(v[1], sizeof v[1], "%.1f MB", feat / 1e6);
        snprintf(line, sizeof line, "attnscope: output %s: /cnn channel statistics %.1f MB%s%s", v[0], total / 1e6,
                 o->save_features ? ", features " : "", o->save_features ? v[1] : "");
        rc = run_check_space(line, total + feat, st, resume == 1, o->force);
    }
    if (!rc && rank == 0 && resume != 1) {
        /* the file, complete, before any data: data.h5.new, renamed to data.h5 with the manifest */
        h5out out;
        unlink(st->data_new);
        rc = h5out_create(&out, st->data_new);
        if (!rc) {
            char created[64] = "";
            time_t now = time(NULL);
            strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
            h5_attr_str(out.file, "attnscope_version", ATTNSCOPE_VERSION);
            h5_attr_str(out.file, "git_commit", ATTNSCOPE_GIT_COMMIT);
            h5_attr_str(out.file, "command_line", o->cmdline);
            h5_attr_str(out.file, "model_dir", o->model);
            h5_attr_str(out.file, "model_type", "resnet");
            h5_attr_str(out.file, "config_json", c->json_text);
            h5_attr_str(out.file, "weights_sha256", sha);
            h5_attr_str(out.file, "input", o->images ? o->images : o->input);
            h5_attr_str(out.file, "input_kind", o->images ? "images" : "hdf5");
            h5_attr_str(out.file, "dtype", "float32");
            h5_attr_str(out.file, "backend", be->name);
            h5_attr_str(out.file, "created", created);
            h5_attr_i64(out.file, "n_ranks", nranks);
            h5_attr_i64(out.file, "n_samples", N);
            create_datasets(&out, &m, &oo, N, C, h, w, names);
            if (o->images) run_images_write(&out, &d, size_all, o->model);
            h5out_close(&out);
            rc = runstate_commit_creation(st, manifest);
        }
    }
    free(sha);
    free(manifest);
    free(size_all);
    if (par_agree(rc, comm)) goto fail;
    h5raw raw[(CNN_MAX_STAGES + 1) * CS_N];
    int fd = -1;
    rc = h5out_locate(st->data, flat, S * CS_N, raw, comm);
    if (!rc && (fd = open(st->data, O_RDWR | O_CLOEXEC)) < 0) rc = err_set("%s: cannot open for writing: %s", st->data, strerror(errno));
    if (par_agree(rc, comm)) goto fail;

    /* this rank's durable progress: its first `start` images are done */
    progress_rec pr;
    int have = resume == 1 ? progress_read(st->dir, rank, nranks, run_id, d.first, d.n, 0, &pr) : 0;
    if (have < 0) {
        fprintf(stderr, "attnscope: warning: %s; rank %d starts its shard again\n", err_get(), rank);
        have = 0;
    }
    const int start = have ? (int)pr.wstart : 0;

    /* the shard in batches; a batch that does not fit is halved */
    const size_t per_image = (size_t)d.channels * H * W;
    int B = o->batch;
    /* per output: its channel statistics (3, B, C) from the backend, the maps only for --save-features */
    float *outs[CNN_MAX_STAGES + 1], *stat[CNN_MAX_STAGES + 1];
    size_t out_n[CNN_MAX_STAGES + 1];
    for (int s = 0; s < S; s++) {
        out_n[s] = (size_t)C[s] * h[s] * w[s];
        outs[s] = o->save_features ? xmalloc((size_t)B * out_n[s] * sizeof(float)) : NULL;
        stat[s] = xmalloc((size_t)3 * B * C[s] * sizeof(float));
    }
    uint16_t *half = o->features_f16 ? xmalloc((size_t)B * out_n[0] * sizeof(uint16_t) + 2) : NULL;
    size_t half_cap = o->features_f16 ? (size_t)B * out_n[0] : 0;
    void *px = be->host_alloc(be, (size_t)B * per_image * sizeof(float));   /* the batch's pixels (dataset_pixels) */
    if (!px) check_fail(__FILE__, __LINE__, "host_alloc", "out of host memory for a batch of images");
    int *bidx = xmalloc((size_t)2 * B * sizeof(int));                      /* this batch's images, then the next's */
    prefetch pf;
    prefetch_init(&pf, &d, be, B, 0);
    /* a stop (signal) at a batch boundary, agreed by every rank through runctl; a failed write
     * ends this rank's loop (state RUNCTL_FAILED, the message in werr) */
    runctl ctl;
    runctl_init(&ctl, comm, N, -1, start, 0, o->quiet, o->progress_every);
    int state = RUNCTL_RUNNING, werr_errno = 0, werr_input = 0, i = start, saved = start;
    char werr[5000] = "";
    double last_ckpt = util_now();
    const double t_loop = util_now();
    runctl_set_graceful(1);
    while (i < d.n && state == RUNCTL_RUNNING) {
        int nb = d.n - i < B ? d.n - i : B;
        const int n_next = d.n - i - nb < B ? d.n - i - nb : B;
        for (int b = 0; b < nb + n_next; b++) bidx[b] = i + b;
        if (prefetch_batch(&pf, &px, bidx, nb, bidx + nb, n_next)) {    /* an image that cannot be read: one line, as a failed write */
            werr_errno = EIO;
            werr_input = 1;
            snprintf(werr, sizeof werr, "%s", err_get());
            state = RUNCTL_FAILED;
            break;
        }
        while (cnn_forward(&m, px, nb, H, W, stat, o->save_features ? outs : NULL)) {
            if (nb == 1) check_fail(__FILE__, __LINE__, "cnn_forward", err_get());
            fprintf(stderr, "[rank %d] %s: retrying with %d images per batch\n", rank, err_get(), nb / 2);
            nb /= 2;
            B = nb;                   /* the error is not sticky; later batches start no larger */
        }
        const int64_t g = d.first + i;
        for (int s = 0; s < S && !werr_errno; s++) {
            for (int k = 0; k <= CS_ENTROPY && !werr_errno; k++)   /* (nb, C) of each: mean, active, entropy */
                if (h5raw_write_rows(fd, &raw[s * CS_N + k], g, nb, stat[s] + (size_t)k * nb * C[s])) {
                    werr_errno = errno ? errno : EIO;
                    snprintf(werr, sizeof werr, "%s: cannot write %s: %s", st->data, names[s][k], strerror(werr_errno));
                }
            if (werr_errno || !o->save_features) continue;
            const void *buf = outs[s];
            if (half) {
                const size_t n = (size_t)nb * out_n[s];
                if (n > half_cap) { half = xrealloc(half, n * sizeof(uint16_t)); half_cap = n; }
                for (size_t e = 0; e < n; e++) half[e] = util_f32_to_f16(outs[s][e]);
                buf = half;
            }
            if (h5raw_write_rows(fd, &raw[s * CS_N + CS_FEATURES], g, nb, buf)) {
                werr_errno = errno ? errno : EIO;
                snprintf(werr, sizeof werr, "%s: cannot write %s: %s", st->data, names[s][CS_FEATURES], strerror(werr_errno));
            }
        }
        if (werr_errno) { state = RUNCTL_FAILED; break; }
        i += nb;
        const int stop = runctl_poll(&ctl, i, 0);
        /* a record only after the rows it counts are on disk: fdatasync, then the record */
        const double now = util_now();
        if (i == d.n || stop || now - last_ckpt >= o->checkpoint_every) {
            const progress_rec r = {.first = d.first, .n = d.n, .wstart = i, .samples_done = i};
            if (fdatasync(fd)) {
                werr_errno = errno ? errno : EIO;
                snprintf(werr, sizeof werr, "%s: cannot flush to disk (fdatasync): %s", st->data, strerror(werr_errno));
            } else if (progress_write(st->dir, rank, nranks, run_id, &r)) {
                werr_errno = EIO;
                snprintf(werr, sizeof werr, "%s", err_get());
            }
            if (werr_errno) { state = RUNCTL_FAILED; break; }
            saved = i;
            last_ckpt = now;
        }
        if (stop) state = RUNCTL_STOPPED;
    }
    if (state == RUNCTL_RUNNING || (state == RUNCTL_STOPPED && i >= d.n)) state = RUNCTL_DONE;
    double loop_max = util_now() - t_loop;     /* the slowest rank's forward, statistics and writes */
    const int verdict = runctl_finish(&ctl, state, saved, 0);
    runctl_set_graceful(0);
    CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &loop_max, 1, MPI_DOUBLE, MPI_MAX, comm));
    close(fd);
    for (int s = 0; s < S; s++) { free(outs[s]); free(stat[s]); }
    free(half);
    prefetch_free(&pf);
    be->host_free(be, px);
    free(bidx);
    rc = 0;
    if (verdict == RUNCTL_DONE) {
        rc = par_agree(rank == 0 ? runstate_finish(st) : 0, comm);
        if (!rc && rank == 0) {
            const double el = util_now() - t0;
            const int64_t computed = N - ctl.base_samples;
            char now_txt[64] = "";
            if (computed < N) snprintf(now_txt, sizeof now_txt, " (%lld computed by this start)", (long long)computed);
            printf("attnscope: wrote %s: %lld images%s in %.1f s (%.1f images/s on %d rank(s), model load included; forward, "
                   "statistics and writes %.2f s: %.1f images/s)\n", o->out, (long long)N, now_txt, el, computed / el, nranks,
                   loop_max, loop_max > 0 ? computed / loop_max : 0.0);
        }
    } else {
        /* what the durable records say is done: a resume starts there */
        int64_t done = saved, done_all = 0;
        CHECK_MPI(MPI_Allreduce(&done, &done_all, 1, MPI_INT64_T, MPI_SUM, comm));
        char saved_txt[5000];
        snprintf(saved_txt, sizeof saved_txt, "%lld of %lld images are saved in %s", (long long)done_all, (long long)N, st->dir);
        if (verdict == RUNCTL_FAILED) {   /* one line, from the lowest rank whose write failed */
            if (werr_errno) err_set("%s; %s: %s", werr, saved_txt, run_failure_advice(werr_errno, werr_input));
            par_agree(werr_errno ? -1 : 0, comm);
        } else if (rank == 0)
            fprintf(stderr, "attnscope: stopped%s%s: %s; run the same command again to resume\n", runctl_signal() ? " by " : "",
                    runctl_signal() ? runctl_signal_name(runctl_signal()) : "", saved_txt);
    }
    if (rank == 0) runstate_close(st);
    /* every rank's message is out before any rank exits non-zero (mpirun then kills the rest) */
    CHECK_MPI(MPI_Barrier(comm));
    dataset_free(&d);
    cnn_free(&m);
    return verdict == RUNCTL_STOPPED ? RUNCTL_EXIT_STOPPED : verdict == RUNCTL_FAILED || rc ? 1 : 0;
fail:
    run_abandon(st, comm);
    dataset_free(&d);
    cnn_free(&m);
    return 1;
}
