/* run_cnn.c — `attnscope run` for a CNN (model_type "resnet", cnn.h): the images of this rank's
 * shard through the ResNet forward, and per image, stage and channel the feature-map statistics
 * (always) and the stage outputs (--save-features), written under /cnn. No attention, no /stats.
 *
 * Output as the transformer path's (h5out.h): rank 0 creates OUT.h5.partial/data.h5 complete,
 * every rank pwrites its rows at their offsets, rank 0 renames the file to OUT.h5 when every rank
 * is done. Not resumable yet: an interrupted CNN run is computed again from the start.
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
#include "util.h"
#include <fcntl.h>
#include <math.h>
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
                   : dataset_from_pixels_h5(&d, o->input, c->num_channels, 4, 0, rank, nranks);
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
    /* no resume: a matching partial run is created again (runstate_match empties a stale one) */
    char manifest[8192];
    snprintf(manifest, sizeof manifest, "format=cnn-1\nranks=%d\nmodel=%s\ninput=%s\nsave_features=%d\nfeatures_dtype=%s\nsamples=%lld\n",
             nranks, o->model, o->images ? o->images : o->input, o->save_features, o->features_f16 ? "f16" : "f32", (long long)N);
    rc = 0;
    if (rank == 0) {
        rc = runstate_match(st, manifest) < 0 ? -1 : 0;
        h5out out;
        if (!rc) { unlink(st->data_new); rc = h5out_create(&out, st->data_new); }
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
    free(size_all);
    if (par_agree(rc, comm)) goto fail;
    h5raw raw[(CNN_MAX_STAGES + 1) * CS_N];
    int fd = -1;
    rc = h5out_locate(st->data, flat, S * CS_N, raw, comm);
    if (!rc && (fd = open(st->data, O_RDWR | O_CLOEXEC)) < 0) rc = err_set("%s: cannot open for writing: %s", st->data, strerror(errno));
    if (par_agree(rc, comm)) goto fail;

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
    float *px = xmalloc((size_t)B * per_image * sizeof(float));   /* the batch's pixels (dataset_pixels) */
    const double t_loop = util_now();
    for (int i = 0; i < d.n && !rc;) {
        int nb = d.n - i < B ? d.n - i : B;
        if ((rc = dataset_pixels_range(&d, i, nb, px))) break;
        while (cnn_forward(&m, px, nb, H, W, stat, o->save_features ? outs : NULL)) {
            if (nb == 1) check_fail(__FILE__, __LINE__, "cnn_forward", err_get());
            fprintf(stderr, "[rank %d] %s: retrying with %d images per batch\n", rank, err_get(), nb / 2);
            nb /= 2;
            B = nb;                   /* the error is not sticky; later batches start no larger */
        }
        const int64_t g = d.first + i;
        for (int s = 0; s < S && !rc; s++) {
            for (int k = 0; k <= CS_ENTROPY && !rc; k++)   /* (nb, C) of each: mean, active, entropy */
                if (h5raw_write_rows(fd, &raw[s * CS_N + k], g, nb, stat[s] + (size_t)k * nb * C[s]))
                    rc = err_set("%s: cannot write %s: %s", st->data, names[s][k], strerror(errno));
            if (rc || !o->save_features) continue;
            const void *buf = outs[s];
            if (half) {
                const size_t n = (size_t)nb * out_n[s];
                if (n > half_cap) { half = xrealloc(half, n * sizeof(uint16_t)); half_cap = n; }
                for (size_t e = 0; e < n; e++) half[e] = util_f32_to_f16(outs[s][e]);
                buf = half;
            }
            if (h5raw_write_rows(fd, &raw[s * CS_N + CS_FEATURES], g, nb, buf))
                rc = err_set("%s: cannot write %s: %s", st->data, names[s][CS_FEATURES], strerror(errno));
        }
        i += nb;
    }
    if (!rc && fdatasync(fd)) rc = err_set("%s: cannot flush to disk (fdatasync): %s", st->data, strerror(errno));
    double loop_max = util_now() - t_loop;     /* the slowest rank's forward, statistics and writes */
    CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &loop_max, 1, MPI_DOUBLE, MPI_MAX, comm));
    close(fd);
    for (int s = 0; s < S; s++) { free(outs[s]); free(stat[s]); }
    free(half);
    free(px);
    if (par_agree(rc, comm)) goto fail;
    rc = par_agree(rank == 0 ? runstate_finish(st) : 0, comm);
    if (!rc && rank == 0) {
        const double el = util_now() - t0;
        printf("attnscope: wrote %s: %lld images in %.1f s (%.1f images/s on %d rank(s), model load included; forward, "
               "statistics and writes %.2f s: %.1f images/s)\n", o->out, (long long)N, el, N / el, nranks, loop_max,
               loop_max > 0 ? N / loop_max : 0.0);
    }
    if (rank == 0) runstate_close(st);
    CHECK_MPI(MPI_Barrier(comm));
    dataset_free(&d);
    cnn_free(&m);
    return rc ? 1 : 0;
fail:
    run_abandon(st, comm);
    dataset_free(&d);
    cnn_free(&m);
    return 1;
}
