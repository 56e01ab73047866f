/* vstats.h — the vision statistics of one layer's attention, on the host (the reference a GPU kernel
 * is checked against): distances in pixels between patch centres, 2-D locality, [CLS] attention
 * over the patches, and attention rollout. Tokens: n_prefix prefix tokens ([CLS], DeiT's
 * distillation token) then the gh × gw patches in row-major order; patch q's centre is at pixel
 * (P·(q mod gw) + P/2, P·(q div gw) + P/2) of the (resized) input image.
 *
 * P is one head's (T, T) probabilities, T = n_prefix + gh·gw, row i = query, column j = key. */
#ifndef ATTNSCOPE_VSTATS_H
#define ATTNSCOPE_VSTATS_H

typedef struct { int n_prefix, gh, gw, patch; } vgrid;

/* Mean attention distance in pixels (Dosovitskiy et al. 2021, Fig. 11, as probing-vits computes
 * it): over the patch rows i, Σ_{j patch} p_ij · ‖c_i − c_j‖ with c the patch centres, averaged
 * over the patch rows; the prefix tokens are left out as queries and as keys (their mass is not
 * renormalised away: a head that looks at [CLS] has a short mean distance). */
double vstats_distance_px(const float *P, const vgrid *g);

/* 2-D locality: over the patch rows, the mass on patch keys within a Chebyshev radius of r
 * patches (r = 1: the 3 × 3 neighbourhood, itself included), averaged over the patch rows. */
double vstats_locality2d(const float *P, const vgrid *g, int r);

/* The [CLS] row's attention over the patches: cls[q] = P[0, n_prefix + q], q < gh·gw. */
void vstats_cls(const float *P, const vgrid *g, float *cls);

/* Attention rollout (Abnar & Zuidema 2020), one layer at a time from the first: the heads of the
 * layer (NH maps (T, T), head-major) fused by fusion (0 mean, 1 max, 2 min); with discard > 0 the
 * smallest ⌊discard·T²⌋ entries of the fused map set to 0 except those of the [CLS] row's first
 * entry (as jacobgil/vit-explain); then Â = (A + I)/2 with rows renormalised to sum 1, and
 * R ← Â·R. R (T, T) starts as the identity (vstats_rollout_init); work: T² floats of scratch. */
void vstats_rollout_init(float *R, int T);
/* A (T, T) = the NH maps (head-major) fused elementwise by fusion (0 mean, 1 max, 2 min), in
 * double in head order: the first step of vstats_rollout_step, whose step with NH = 1 on A is the
 * step with NH on maps. */
void vstats_fuse(float *A, const float *maps, int NH, int T, int fusion);
void vstats_rollout_step(float *R, const float *maps, int NH, int T, int fusion, double discard, float *work);
/* The step's two halves: A (T, T) in place to Â = (A + I)/2 with rows renormalised (the diagonal's
 * A + 1 rounded to float, the row sums s in double, each value times 0.5/s in double then rounded
 * to float: the CUDA kernels' arithmetic; a row summing to 0 stays 0),
 * then R ← Â·R in double. */
void vstats_rollout_norm(float *A, int T);
void vstats_rollout_product(float *R, const float *Ah, int T);
#endif
