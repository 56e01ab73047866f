/* probe_stats.c — runs the C statistics (src/stats.c, the code `attnscope run` uses) on attention
 * tensors given in an HDF5 file, so that tests/test_stats.py can compare them with the NumPy
 * reference written from the papers' definitions (tests/stats_ref.py).
 *
 *   probe_stats IN.h5 OUT.h5
 * IN:  /attention [N, L, H, T, T] float32, /length [N] int32, optional /is_sep and /is_punct
 *      [N, T] uint8; root attributes causal, window, topk and sliding_window (int64; absent: 0, none).
 * OUT: /stats/<name> [N, L, H] float32 for every name of stats_names, /stats/key_importance
 *      [N, L, H, T], /stats/topk_index [N, L, H, T, k] int32, /stats/topk_weight float32,
 *      /summary/head_similarity_js_sum and /summary/head_similarity_gram [L·H, L·H] float64,
 *      attribute n_rows on /summary.
 * With a root attribute probe_len K (and probe_bos b, 0 or 1; T must be b + 2K): also
 * /probe/<name> [N, L, H] float32 for every name of probe_names (src/probe.c's probe_head).
 *
 *   probe_stats --exact-heads
 * builds by hand an exact previous-token, duplicate-token and induction head on the probe's
 * layout (each row's mass on its one target key; rows without a target on key 0) for several
 * K and b, and checks that each scores exactly 1 on its own score; exits 1 otherwise.
 *
 *   probe_stats --nonfinite
 * checks that a head whose rows hold one NaN (or Inf) probability gets NaN for every statistic
 * (before issue 14 `p > 0` skipped the NaN and the entropy read as a finite number), and that the
 * same head without it stays finite; exits 1 otherwise. */
#include "probe.h"
#include "stats.h"
#include "util.h"
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static void *read_all(hid_t f, const char *name, hid_t memtype, size_t elsize, hsize_t *dims, int *nd, int required)
{
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0) {
        if (required) { fprintf(stderr, "probe_stats: no %s\n", name); exit(2); }
        return NULL;
    }
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT), sp = H5Dget_space(ds);
    *nd = H5Sget_simple_extent_ndims(sp);
    H5Sget_simple_extent_dims(sp, dims, NULL);
    void *buf = xmalloc(H5Sget_simple_extent_npoints(sp) * elsize);
    if (H5Dread(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) exit(2);
    H5Sclose(sp); H5Dclose(ds);
    return buf;
}

static int64_t attr_int(hid_t f, const char *name, int64_t dflt)
{
    if (H5Aexists(f, name) <= 0) return dflt;
    int64_t v;
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    H5Aread(a, H5T_NATIVE_INT64, &v);
    H5Aclose(a);
    return v;
}

static void write_ds(hid_t f, const char *name, hid_t type, int nd, const hsize_t *dims, const void *buf)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t sp = H5Screate_simple(nd, dims, NULL);
    hid_t ds = H5Dcreate2(f, name, type == H5T_NATIVE_FLOAT ? H5T_IEEE_F32LE : type == H5T_NATIVE_INT32 ? H5T_STD_I32LE : H5T_IEEE_F64LE,
                          sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Dclose(ds); H5Sclose(sp); H5Pclose(lcpl);
}

/* target key of row i for head kind s on the probe layout, or -1 (the row has none) */
static int target(int s, int i, int K, int b)
{
    if (s == PROBE_PREV) return i >= 1 ? i - 1 : -1;
    if (i < b + K) return -1;
    return s == PROBE_DUP ? i - K : i - K + 1;
}

static int exact_heads(void)
{
    int fails = 0;
    for (int b = 0; b <= 1; b++)
        for (int K = 1; K <= 9; K += 4) {
            const int T = b + 2 * K;
            float *P = xcalloc((size_t)T * T, sizeof(float));
            for (int s = 0; s < PROBE_N; s++) {
                memset(P, 0, (size_t)T * T * sizeof(float));
                for (int i = 0; i < T; i++) {
                    int j = target(s, i, K, b);
                    P[(size_t)i * T + (j >= 0 ? j : 0)] = 1.0f;
                }
                float sc[PROBE_N];
                probe_head(P, K, b, sc);
                int ok = sc[s] == 1.0f;
                fails += !ok;
                printf("%s exact %s head, K=%d b=%d: %s = %.9g (want 1); others %.6g %.6g\n", ok ? "ok  " : "FAIL",
                       probe_names[s], K, b, probe_names[s], sc[s], sc[(s + 1) % PROBE_N], sc[(s + 2) % PROBE_N]);
            }
            free(P);
        }
    printf("%d failed\n", fails);
    return fails != 0;
}

static int nonfinite_heads(void)
{
    enum { T = 5 };
    const float bad[] = {NAN, INFINITY};
    const char *const bad_name[] = {"NaN", "Inf"};
    int fails = 0;
    for (int causal = 0; causal <= 1; causal++)
        for (int v = 0; v < 3; v++) {               /* v = 2: no bad value (the control) */
            float P[T * T], out[STAT_N];
            for (int i = 0; i < T; i++) {            /* uniform over each row's visible keys */
                const int nk = causal ? i + 1 : T;
                for (int j = 0; j < T; j++) P[i * T + j] = j < nk ? 1.0f / nk : 0.0f;
            }
            if (v < 2) P[3 * T + 1] = bad[v];        /* one value in row 3, key 1 (visible either way) */
            stats_params sp = {.causal = causal, .window = 1, .topk = 0};
            stats_head(P, T, T, &sp, NULL, NULL, out, NULL, NULL, NULL);
            int n_nan = 0, n_finite = 0;
            for (int s = 0; s < STAT_N; s++) { n_nan += isnan(out[s]) != 0; n_finite += isfinite(out[s]) != 0; }
            const int ok = v < 2 ? n_nan == STAT_N : n_finite == STAT_N;
            fails += !ok;
            printf("%s causal=%d, row 3 with %s: %d of %d statistics NaN, %d finite (want %s); entropy %g\n", ok ? "ok  " : "FAIL",
                   causal, v < 2 ? bad_name[v] : "no bad value", n_nan, STAT_N, n_finite, v < 2 ? "all NaN" : "all finite",
                   out[STAT_ENTROPY]);
        }
    printf("%d failed\n", fails);
    return fails != 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--exact-heads")) return exact_heads();
    if (argc == 2 && !strcmp(argv[1], "--nonfinite")) return nonfinite_heads();
    if (argc != 3) { fprintf(stderr, "usage: probe_stats IN.h5 OUT.h5\n"); return 2; }
    hid_t f = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return 2;
    hsize_t da[5], dl[1], ds_[2];
    int nd;
    float *att = read_all(f, "/attention", H5T_NATIVE_FLOAT, 4, da, &nd, 1);
    int32_t *len = read_all(f, "/length", H5T_NATIVE_INT32, 4, dl, &nd, 1);
    uint8_t *sep = read_all(f, "/is_sep", H5T_NATIVE_UINT8, 1, ds_, &nd, 0);
    uint8_t *punct = read_all(f, "/is_punct", H5T_NATIVE_UINT8, 1, ds_, &nd, 0);
    stats_params sp = {.causal = (int)attr_int(f, "causal", 0), .window = (int)attr_int(f, "window", 3),
                       .topk = (int)attr_int(f, "topk", 3), .sliding_window = (int)attr_int(f, "sliding_window", 0)};
    const int pK = (int)attr_int(f, "probe_len", 0), pb = (int)attr_int(f, "probe_bos", 0);
    H5Fclose(f);
    const int N = (int)da[0], L = (int)da[1], H = (int)da[2], T = (int)da[3], k = sp.topk, nh = L * H;
    float *out = xmalloc((size_t)STAT_N * N * L * H * sizeof(float));
    float *ki = xcalloc((size_t)N * nh * T, sizeof(float));
    int32_t *ti = xmalloc((size_t)N * nh * T * k * sizeof(int32_t));
    float *tw = xmalloc((size_t)N * nh * T * k * sizeof(float));
    stats_sim sim;
    stats_sim_init(&sim, nh);
    const float **maps = xmalloc(nh * sizeof(float *));
    for (int s = 0; s < N; s++) {
        for (int a = 0; a < nh; a++) {
            const float *P = att + ((size_t)s * nh + a) * T * T;
            float st[STAT_N];
            size_t o = (size_t)s * nh + a;
            stats_head(P, T, len[s], &sp, sep ? sep + (size_t)s * T : NULL, punct ? punct + (size_t)s * T : NULL, st,
                       ki + o * T, ti + o * T * k, tw + o * T * k);
            for (int m = 0; m < STAT_N; m++) out[(size_t)m * N * nh + o] = st[m];
            maps[a] = P;
        }
        stats_sim_add(&sim, maps, T, len[s]);
    }
    hid_t g = H5Fcreate(argv[2], H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t d3[3] = {(hsize_t)N, (hsize_t)L, (hsize_t)H}, d4[4] = {(hsize_t)N, (hsize_t)L, (hsize_t)H, (hsize_t)T};
    hsize_t d5[5] = {(hsize_t)N, (hsize_t)L, (hsize_t)H, (hsize_t)T, (hsize_t)k}, d2[2] = {(hsize_t)nh, (hsize_t)nh};
    char name[128];
    for (int m = 0; m < STAT_N; m++) {
        snprintf(name, sizeof name, "/stats/%s", stats_names[m]);
        write_ds(g, name, H5T_NATIVE_FLOAT, 3, d3, out + (size_t)m * N * nh);
    }
    write_ds(g, "/stats/key_importance", H5T_NATIVE_FLOAT, 4, d4, ki);
    write_ds(g, "/stats/topk_index", H5T_NATIVE_INT32, 5, d5, ti);
    write_ds(g, "/stats/topk_weight", H5T_NATIVE_FLOAT, 5, d5, tw);
    write_ds(g, "/summary/head_similarity_js_sum", H5T_NATIVE_DOUBLE, 2, d2, sim.js_sum);
    write_ds(g, "/summary/head_similarity_gram", H5T_NATIVE_DOUBLE, 2, d2, sim.gram);
    hid_t grp = H5Gopen2(g, "/summary", H5P_DEFAULT), asp = H5Screate(H5S_SCALAR);
    hid_t at = H5Acreate2(grp, "n_rows", H5T_IEEE_F64LE, asp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(at, H5T_NATIVE_DOUBLE, &sim.n_rows);
    H5Aclose(at); H5Sclose(asp); H5Gclose(grp);
    if (pK > 0) {
        if (T != pb + 2 * pK) { fprintf(stderr, "probe_stats: T %d != probe_bos + 2 probe_len\n", T); return 2; }
        float *ps = xmalloc((size_t)PROBE_N * N * nh * sizeof(float));
        for (size_t o = 0; o < (size_t)N * nh; o++) {
            float sc[PROBE_N];
            probe_head(att + o * T * T, pK, pb, sc);
            for (int m = 0; m < PROBE_N; m++) ps[(size_t)m * N * nh + o] = sc[m];
        }
        for (int m = 0; m < PROBE_N; m++) {
            snprintf(name, sizeof name, "/probe/%s", probe_names[m]);
            write_ds(g, name, H5T_NATIVE_FLOAT, 3, d3, ps + (size_t)m * N * nh);
        }
        free(ps);
    }
    H5Fclose(g);
    printf("probe_stats: %d samples x %d layers x %d heads, T=%d, causal=%d, window=%d, topk=%d, sliding_window=%d -> %s\n",
           N, L, H, T, sp.causal, sp.window, k, sp.sliding_window, argv[2]);
    stats_sim_free(&sim);
    free(att); free(len); free(sep); free(punct); free(out); free(ki); free(ti); free(tw); free(maps);
    return 0;
}
