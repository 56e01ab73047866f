/* test_vstats.c — the vision statistics (src/vstats.c) against the published code that defines them
 * (tests/fixtures/vstats/make_vstats_fixtures.py: probing-vits' mean attention distance in pixels,
 * jacobgil/vit-explain's rollout with rows renormalised, numpy for the 2-D locality and [CLS] row),
 * on random attention maps of a ViT-like (1 prefix token, 4 × 4 patches of 16 px) and a DeiT-like
 * (2 prefix tokens, 3 × 3 patches of 8 px) layout. Prints every comparison; exits non-zero on any
 * failure. */
#include "vstats.h"
#include "util.h"
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static int failures;

static float *read_ds(hid_t g, const char *name, size_t *n)
{
    hid_t ds = H5Dopen2(g, name, H5P_DEFAULT);
    if (ds < 0) { printf("FAIL cannot open %s\n", name); exit(1); }
    hid_t sp = H5Dget_space(ds);
    *n = (size_t)H5Sget_simple_extent_npoints(sp);
    float *buf = xmalloc(*n * sizeof(float));
    H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Sclose(sp); H5Dclose(ds);
    return buf;
}

static int attr_int(hid_t g, const char *name)
{
    int v = 0;
    hid_t a = H5Aopen(g, name, H5P_DEFAULT);
    H5Aread(a, H5T_NATIVE_INT, &v);
    H5Aclose(a);
    return v;
}

static void report(const char *what, double err, double tol)
{
    const int ok = err <= tol;
    printf("%s %-44s max abs err %.3g (tol %g)\n", ok ? "ok  " : "FAIL", what, err, tol);
    failures += !ok;
}

static void check_layout(hid_t f, const char *name)
{
    hid_t g = H5Gopen2(f, name, H5P_DEFAULT);
    const vgrid vg = {attr_int(g, "n_prefix"), attr_int(g, "grid"), attr_int(g, "grid"), attr_int(g, "patch")};
    const int L = 3, H = 2, T = vg.n_prefix + vg.gh * vg.gw, np = vg.gh * vg.gw;
    size_t n;
    float *att = read_ds(g, "attentions", &n), *dist = read_ds(g, "distance_px", &n), *loc = read_ds(g, "locality2d_r1", &n);
    float *cls = read_ds(g, "cls", &n);
    double e_dist = 0, e_loc = 0, e_cls = 0;
    float *row = xmalloc(np * sizeof(float));
    for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++) {
            const float *P = att + ((size_t)l * H + h) * T * T;
            e_dist = fmax(e_dist, fabs(vstats_distance_px(P, &vg) - dist[l * H + h]));
            e_loc = fmax(e_loc, fabs(vstats_locality2d(P, &vg, 1) - loc[l * H + h]));
            vstats_cls(P, &vg, row);
            for (int q = 0; q < np; q++) e_cls = fmax(e_cls, fabs(row[q] - cls[((size_t)l * H + h) * np + q]));
        }
    char what[96];
    snprintf(what, sizeof what, "%s distance in pixels (probing-vits)", name);
    report(what, e_dist, 1e-4);                 /* pixels: tens; float maps, double sums */
    snprintf(what, sizeof what, "%s 2-D locality r = 1", name);
    report(what, e_loc, 1e-6);
    snprintf(what, sizeof what, "%s [CLS] row over the patches", name);
    report(what, e_cls, 0);
    static const char *const fusions[] = {"mean", "max", "min"};
    float *R = xmalloc((size_t)T * T * sizeof(float)), *work = xmalloc((size_t)T * T * sizeof(float));
    for (int fu = 0; fu < 3; fu++)
        for (int d = 0; d < 2; d++) {
            const double discard = d ? 0.3 : 0.0;
            char ds[64];
            snprintf(ds, sizeof ds, "rollout_%s_%s", fusions[fu], d ? "0.3" : "0.0");
            float *want = read_ds(g, ds, &n);
            vstats_rollout_init(R, T);
            for (int l = 0; l < L; l++) vstats_rollout_step(R, att + (size_t)l * H * T * T, H, T, fu, discard, work);
            double e = 0;
            for (size_t i = 0; i < (size_t)T * T; i++) e = fmax(e, fabs(R[i] - want[i]));
            snprintf(what, sizeof what, "%s rollout %s, discard %.1f (vit-explain)", name, fusions[fu], discard);
            report(what, e, 1e-6);
            free(want);
        }
    free(R); free(work); free(row); free(att); free(dist); free(loc); free(cls);
    H5Gclose(g);
}

int main(void)
{
    const char *path = "tests/fixtures/vstats/expected_vstats.h5";
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) { printf("FAIL cannot open %s\n", path); return 1; }
    check_layout(f, "vit");
    check_layout(f, "deit");
    H5Fclose(f);
    printf("test_vstats: %d failure(s)\n", failures);
    return failures ? 1 : 0;
}
