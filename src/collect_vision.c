/* collect_vision.c — the vision outputs of collect.h for a patch-stem model (ViT, DeiT, CLIP's
 * vision tower): per sample and per layer and head the mean attention distance in pixels and the
 * 2-D locality, the [CLS] row over the patches, and per sample the attention rollout over all
 * layers (vstats.c defines each). Where the backend can (model_fuses_vision), they come from the
 * fused path, the probabilities never stored per head: the forward leaves every layer's
 * distance, locality and [CLS] rows for the batch's end and hands over each layer's fused map for
 * the rollout (collect_vision_request, _map, _batch_sent). Else from the probabilities of the
 * explicit path (capture): the backend computes them where the probabilities are (backend.h
 * vision_stats, rollout_step). Every token's norm after each layer comes from the residual step
 * that ends the layer (attn_request norms: add_norm makes them as it adds, kept in backend memory
 * until the batch ends). Only the small results reach the host, the rollout once per batch. */
#include "collect.h"
#include "check.h"
#include "util.h"
#include "vstats.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const vis_names[VIS_N] = {"/vision/distance_px", "/vision/locality2d", "/vision/cls_attention",
                                             "/vision/rollout", "/vision/token_norm", "/vision/high_norm_patches"};

static vgrid grid_of(const collect *c)
{
    const model_config *mc = &c->m->cfg;
    return (vgrid){mc->n_prefix, c->vis_gh, c->vis_gw, mc->patch_size};
}

void collect_vision_init(collect *c)
{
    const model_config *mc = &c->m->cfg;
    if (mc->arch->stem != STEM_PATCHES || !c->d->px) return;
    c->vis_gh = c->d->height / mc->patch_size;
    c->vis_gw = c->d->width / mc->patch_size;
    c->vgrid = grid_of(c);
    const size_t LH = (size_t)c->L * c->NH, np = (size_t)c->vis_gh * c->vis_gw, T = mc->n_prefix + np;
    c->vis_row[VIS_DIST] = c->vis_row[VIS_LOC] = LH;
    c->vis_row[VIS_CLS] = LH * np;
    c->vis_row[VIS_ROLL] = T * T;
    c->vis_row[VIS_NORM] = (size_t)c->L * T;
    c->vis_row[VIS_HIGH] = 1;
    for (int v = 0; v < VIS_N; v++) c->names[CO_VIS + v] = vis_names[v];
}

/* (the window's buffers are its pool set's: every batch writes its samples' rows whole, and a
 * checkpoint in the middle of the window writes the done samples' rows only) */
void collect_vision_window(collect *c, int resume, int64_t g0)
{
    for (int v = 0; v < VIS_N && resume; v++)
        if (c->vis[v] && h5raw_read_rows(c->fd, &c->raw[CO_VIS + v], g0, c->wn, c->vis[v]))
            collect_fail(c, "cannot read back the interrupted window's vision rows");
}

/* the explicit path's results of one layer in c->bvis, grown as needed */
static float *batch_buf(collect *c, size_t n)
{
    if (n > c->bvis_cap) { free(c->bvis); c->bvis = xmalloc(n * sizeof(float)); c->bvis_cap = n; }
    return c->bvis;
}

/* sample b's rows of one layer's dist, loc (B, NH) and cls (B, NH, np) of the batch (local samples
 * idx[B], window starting at w0) into the window */
static void scatter_layer_one(collect *c, const int *idx, int w0, int layer, int b, const float *dist, const float *loc,
                              const float *cls)
{
    const int NH = c->NH, L = c->L, np = c->vis_gh * c->vis_gw;
    const size_t o = (size_t)(idx[b] - w0) * L * NH + (size_t)layer * NH;
    memcpy(c->vis[VIS_DIST] + o, dist + (size_t)b * NH, NH * sizeof(float));
    memcpy(c->vis[VIS_LOC] + o, loc + (size_t)b * NH, NH * sizeof(float));
    memcpy(c->vis[VIS_CLS] + o * np, cls + (size_t)b * NH * np, (size_t)NH * np * sizeof(float));
}
static void scatter_layer(collect *c, const int *idx, int w0, int layer, int B, const float *dist, const float *loc,
                          const float *cls)
{
    for (int b = 0; b < B; b++) scatter_layer_one(c, idx, w0, layer, b, dist, loc, cls);
}

/* without a discard the fused path's map is the rollout's Â already (attn_request vis_roll), one
 * pass over it less; a discard ranks the fused map's raw values, so it takes them */
static int roll_ready(const collect *c) { return c->o.rollout_discard <= 0; }

/* the rollout's step of one layer from its maps (B, nh, T, T) in backend memory (the probabilities,
 * nh = NH, or the fused path's fused map, nh = 1), from --rollout-start; the product reaches the
 * host at the batch's end */
static void rollout_layer(collect *c, int layer, const float *maps, int nh, int B, int T, int ready)
{
    if (layer < c->o.rollout_start) return;
    backend *be = c->m->be;
    const size_t TT = (size_t)T * T;
    if ((size_t)B * TT > c->roll_cap) {
        be->sync(be);                                  /* (an earlier batch's download may read them) */
        for (int i = 0; i < 2; i++) {
            if (c->roll[i]) be->free(be, c->roll[i]);
            c->roll[i] = be->alloc(be, (size_t)B * TT * sizeof(float));
            if (!c->roll[i]) collect_fail(c, "out of backend memory for the batch's attention rollout");
        }
        c->roll_cap = (size_t)B * TT;
    }
    const int first = layer == c->o.rollout_start, next = first ? 0 : !c->roll_cur;
    be->rollout_step(be, c->roll[next], first ? NULL : c->roll[c->roll_cur], maps, B, nh, T, c->o.rollout_fusion,
                     c->o.rollout_discard, ready);
    c->roll_cur = next;
}

void collect_vision_capture(collect *c, int layer, const float *probs, int B, int T)
{
    if (!c->vis[VIS_DIST]) return;
    const vgrid g = grid_of(c);
    const size_t heads = (size_t)B * c->NH;
    float *dist = batch_buf(c, heads * (2 + (size_t)g.gh * g.gw)), *loc = dist + heads, *cls = loc + heads;
    c->m->be->vision_stats(c->m->be, probs, B, c->NH, T, &g, dist, loc, cls);
    scatter_layer(c, c->batch_idx, c->w0, layer, B, dist, loc, cls);
    rollout_layer(c, layer, probs, c->NH, B, T, 0);
}

int collect_vision_fuses(collect *c)
{
    return c->names[CO_VIS] && model_fuses_vision(c->m, c->m->cfg.n_prefix + c->vis_gh * c->vis_gw);
}

void collect_vision_request(collect *c, attn_request *req, int B, int T)
{
    if (!c->vis[VIS_DIST]) return;
    backend *be = c->m->be;
    const size_t n = (size_t)c->L * B * T;
    if (n > c->dnorm_cap) {
        be->sync(be);                                  /* (an earlier batch's download may read it) */
        if (c->dnorm) be->free(be, c->dnorm);
        if (!(c->dnorm = be->alloc(be, n * sizeof(float))))
            check_fail(__FILE__, __LINE__, "collect", "out of backend memory for the token norms of a batch");
        c->dnorm_cap = n;
    }
    collect_bset *st = &c->bset[c->fcur];              /* (collect_batch_begin made it ready) */
    st->norm = collect_grow_host(c, st->norm, &st->norm_cap, n, sizeof(float), "out of host memory for the token norms of a batch");
    req->norms = c->vis[VIS_NORM] ? c->dnorm : NULL;   /* (the layers' residual steps make them) */
    st->roll = collect_grow_host(c, st->roll, &st->roll_cap, (size_t)B * T * T, sizeof(float),
                                 "out of host memory for the rollout of a batch");
    if (!c->no_probs) return;
    st->vis = collect_grow_host(c, st->vis, &st->vis_cap, (size_t)c->L * B * c->NH * (2 + (size_t)c->vis_gh * c->vis_gw),
                                sizeof(float), "out of host memory for the vision outputs of a batch");
    req->vis_grid = &c->vgrid;
    req->vis_fusion = c->o.rollout_fusion;
    req->vis_roll = c->vis[VIS_ROLL] && roll_ready(c);
    req->vis_out = st->vis;
    req->vis_map = collect_vision_map;
}

void collect_vision_map(void *user, int layer, const float *map, int B, int T)
{
    collect *c = user;
    if (c->vis[VIS_ROLL]) rollout_layer(c, layer, map, 1, B, T, roll_ready(c));
}

void collect_vision_batch_sent(collect *c, int B, int T)
{
    if (!c->vis[VIS_DIST]) return;
    backend *be = c->m->be;
    const collect_bset *st = &c->bset[c->fcur];
    /* in stream order, before the next batch's forward writes the device buffers again */
    backend_download_async(be, st->norm, c->dnorm, (size_t)c->L * B * T * sizeof(float));
    backend_download_async(be, st->roll, c->roll[c->roll_cur], (size_t)B * T * T * sizeof(float));
}

static int by_float(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

void collect_vision_scatter(collect *c, const collect_scatter_job *j)
{
    const int B = j->B, T = j->T, L = c->L, npre = c->m->cfg.n_prefix, np = T - npre;
    const size_t TT = (size_t)T * T, heads = (size_t)B * c->NH, per = heads * (2 + (size_t)np);
    const float *vis = j->vis == 2 ? c->bset[j->set].vis : NULL;   /* the fused path's per-layer outputs */
    const float *norms = c->bset[j->set].norm, *R = c->bset[j->set].roll;
    /* image by image on the helper's threads (a ViT-B/16 batch of 128 is ~36 MB of rows; one
     * thread's copies took about as long as the GPU's batch); on the CPU backend the forward's
     * threads have the cores */
    const int par = strcmp(c->m->be->name, "cpu") != 0;
    (void)par;                                         /* (without OpenMP) */
#pragma omp parallel for schedule(static) if (par)
    for (int b = 0; b < B; b++) {
        for (int l = 0; vis && l < L; l++) {
            const float *v = vis + l * per;
            scatter_layer_one(c, j->idx, j->w0, l, b, v, v + heads, v + 2 * heads);
        }
        const size_t w = (size_t)(j->idx[b] - j->w0);
        memcpy(c->vis[VIS_ROLL] + w * TT, R + (size_t)b * TT, TT * sizeof(float));
        float *rows = c->vis[VIS_NORM] + w * c->vis_row[VIS_NORM];
        for (int l = 0; l < L; l++) memcpy(rows + (size_t)l * T, norms + ((size_t)l * B + b) * T, (size_t)T * sizeof(float));
        if (np <= 0) continue;
        /* the last layer's high-norm patches (Darcet et al. 2024): norms far above the image's median */
        const float *last = rows + (size_t)(L - 1) * T + npre;
        float *pn = xmalloc((size_t)np * sizeof(float));
        memcpy(pn, last, (size_t)np * sizeof(float));
        qsort(pn, (size_t)np, sizeof(float), by_float);
        const double med = np % 2 ? pn[np / 2] : 0.5 * ((double)pn[np / 2 - 1] + pn[np / 2]);
        free(pn);
        int cnt = 0;
        for (int q = 0; q < np; q++) cnt += last[q] > c->o.high_norm_factor * med;
        c->vis[VIS_HIGH][w] = (float)cnt;
    }
}

void collect_vision_free(collect *c)
{
    free(c->bvis);
    backend *be = c->m->be;
    for (int i = 0; i < 2; i++)
        if (c->roll[i]) be->free(be, c->roll[i]);
    if (c->dnorm) be->free(be, c->dnorm);
}

void collect_vision_create(collect *c, h5out *out)
{
    if (!c->names[CO_VIS]) return;
    const model_config *mc = &c->m->cfg;
    const hsize_t N = (hsize_t)c->N, L = (hsize_t)c->L, NH = (hsize_t)c->NH, np = (hsize_t)c->vis_gh * c->vis_gw;
    const hsize_t T = (hsize_t)mc->n_prefix + np;
    const hsize_t dNLH[3] = {N, L, NH}, dC[4] = {N, L, NH, np}, dR[3] = {N, T, T}, dNLT[3] = {N, L, T}, dN[1] = {N};
    static const char *const units[VIS_N] = {"pixels", "probability mass", "probability", "relevance (rows sum to 1)",
                                             "L2 norm", "patches"};
    static const char *const defs[VIS_N] = {
        "mean over the patch query rows of sum over patch keys of p_ij times the distance in pixels between the two "
        "patches' centres (Dosovitskiy et al. 2021, Fig. 11, as probing-vits computes it): prefix tokens ([CLS], "
        "distillation) are left out as queries and keys, their mass not renormalised away",
        "mean over the patch query rows of the mass on patch keys within one patch in each direction (the 3 x 3 "
        "neighbourhood, itself included)",
        "the [CLS] query row over the patch keys, patches row by row (grid_h x grid_w)",
        "attention rollout (Abnar & Zuidema 2020): per layer from the first, the heads fused (attribute fusion), the "
        "smallest discard_ratio of the fused map set to 0 except the [CLS] row's own entry, A' = (A + I)/2 with rows "
        "renormalised, R = A'_L ... A'_1 from layer rollout_start; row 0 is [CLS]'s relevance of every token",
        "the L2 norm of every token's hidden state after each layer (the residual stream, before any final norm: "
        "HF's hidden_states[layer + 1])",
        "the patches whose last-layer norm exceeds high_norm_factor times the image's median patch norm: the "
        "high-norm tokens of Darcet et al. 2024 (Vision Transformers Need Registers), which carry global information "
        "and draw attention as sinks"};
    const hsize_t *dims[VIS_N] = {dNLH, dNLH, dC, dR, dNLT, dN};
    const int nd[VIS_N] = {3, 3, 4, 3, 3, 1};
    for (int v = 0; v < VIS_N; v++) {
        hid_t ds = h5out_dataset(out, c->names[CO_VIS + v], H5T_IEEE_F32LE, nd[v], dims[v], NULL);
        h5_attr_str(ds, "units", units[v]);
        h5_attr_str(ds, "definition", defs[v]);
        if (v == VIS_ROLL) {
            h5_attr_str(ds, "fusion", c->o.rollout_fusion == 0 ? "mean" : c->o.rollout_fusion == 1 ? "max" : "min");
            h5_attr_f64(ds, "discard_ratio", c->o.rollout_discard);
            h5_attr_i64(ds, "rollout_start", c->o.rollout_start);
        }
        if (v == VIS_HIGH) h5_attr_f64(ds, "high_norm_factor", c->o.high_norm_factor);
        H5Dclose(ds);
    }
    hid_t g = H5Gopen2(out->file, "/vision", H5P_DEFAULT);
    h5_attr_i64(g, "patch_size", mc->patch_size);
    h5_attr_i64(g, "grid_h", c->vis_gh);
    h5_attr_i64(g, "grid_w", c->vis_gw);
    h5_attr_i64(g, "n_prefix", mc->n_prefix);
    h5_attr_i64(g, "image_height", c->d->height);
    h5_attr_i64(g, "image_width", c->d->width);
    h5_attr_str(g, "tokens", "prefix tokens ([CLS], then DeiT's distillation token), then the patches row by row; "
                             "patch q's centre is at pixel (patch_size (q mod grid_w) + patch_size/2, "
                             "patch_size (q div grid_w) + patch_size/2) of the model's input image");
    H5Gclose(g);
}
