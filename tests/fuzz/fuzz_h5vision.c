/* fuzz_h5vision.c — `attnscope reduce --figures` of a vision run (report_write, then report_vision
 * and report_input_image), structure-aware. Bytes 2 .. 2 + byte 1 go to h5build (h5build.h):
 * /stats/entropy, /stats/sink_rate, /samples/length, /summary. The rest go to this file's builder,
 * which knows the shapes a real run writes (collect_vision.c: N, L, H of /stats/entropy, the grid
 * and prefix of the /vision attributes) so that most inputs get past the shape checks:
 *   /vision (a group, or a dataset, or absent) with grid_h, grid_w, n_prefix, image_height,
 *     image_width, patch_size: valid, absent, off by one, 0, -1, huge, a double or a string;
 *   /vision/{distance_px, cls_attention, rollout, token_norm}: absent, a group, or a dataset of a
 *     fuzzed type (float16/32/64, big-endian, integers, a string), its valid shape or one with dims
 *     off by one, 0 or up to 2^40 (declared, never stored), contiguous / chunked / deflated,
 *     written (values in [0, 1], or NaN, ±inf, ±FLT_MAX, denormals) or not;
 *   root attribute model_dir: a fixture image processor (vit_32: 32 x 32, the valid image size;
 *     deit: another size), a missing directory, a fixed string or an integer;
 *   /images/path: per sample a fixture image (copied into fuzz_dir(), or relative to the checkout:
 *     run from its root), a missing file, a text file, a directory, ""; fixed or variable-length
 *     strings, numbers, another length.
 * Then summary_compute on MPI_COMM_SELF and report_write with the figures; byte 0: the number of
 * figure images (0-3) and k. FUZZ_VERBOSE=1 says what was refused, which vision PNGs exist and
 * whether sample 0's picture was found. */
#include "fuzz_common.h"
#include "h5build.h"
#include "report.h"
#include "report_int.h"
#include "summary.h"
#include "util.h"
#include <float.h>
#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Open MPI's own allocations (some still held at exit) are not ours (as fuzz_h5reduce.c) */
__attribute__((weak)) void __lsan_disable(void);
__attribute__((weak)) void __lsan_enable(void);
const char *__lsan_default_options(void) { return "leak_check_at_exit=0"; }
const char *__lsan_default_suppressions(void)
{
    return "leak:libmpi\nleak:libopen-pal\nleak:libopen-rte\nleak:mca_\nleak:libhwloc\nleak:libpmix\nleak:libevent\n";
}

typedef struct { const uint8_t *p; size_t n; } bytes;
static unsigned take(bytes *b) { if (!b->n) return 0; b->n--; return *b->p++; }

static char img_path[3][300];   /* fixture images copied into the scratch directory, a text file */

static void copy_fixture(const char *rel, char *out, size_t cap, const char *name)
{
    FILE *f = fopen(fuzz_root(rel), "rb");
    uint8_t buf[1 << 16];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    snprintf(out, cap, "%s", fuzz_file(name, buf, n));
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    copy_fixture("tests/fixtures/images/png/rgb8_37x23.png", img_path[0], sizeof img_path[0], "img0.png");
    copy_fixture("tests/fixtures/images/png/grey8_23x17.png", img_path[1], sizeof img_path[1], "img1.png");
    snprintf(img_path[2], sizeof img_path[2], "%s", fuzz_file("notes.png", (const uint8_t *)"not an image\n", 13));
    if (__lsan_disable) __lsan_disable();     /* what MPI_Init allocates for good is not a leak */
    MPI_Init(NULL, NULL);
    if (__lsan_enable) __lsan_enable();
    return 0;
}

/* an int64 attribute, or the value the bytes put in its place (absent, off by one, huge, a double, a string) */
static void vision_attr(hid_t g, const char *name, int64_t valid, bytes *b)
{
    static const int64_t odd[8] = {0, -1, 1, 2, 65537, (int64_t)1 << 31, (int64_t)1 << 40, INT64_MIN};
    const unsigned m = take(b) % 8;
    if (m == 4) return;
    hid_t sp = H5Screate(H5S_SCALAR), ty = m == 5 ? H5Tcopy(H5T_NATIVE_DOUBLE) : m == 7 ? H5Tcopy(H5T_C_S1) : H5Tcopy(H5T_NATIVE_INT64);
    if (m == 7) H5Tset_size(ty, 4);
    const int64_t v = m == 6 ? odd[take(b) % 8] + (take(b) & 1 ? valid : 0) : valid;
    const double d = valid + 0.5;
    hid_t a = H5Acreate2(g, name, ty, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) { H5Awrite(a, ty, m == 5 ? (const void *)&d : m == 7 ? (const void *)"12x" : (const void *)&v); H5Aclose(a); }
    H5Tclose(ty); H5Sclose(sp);
}

static hid_t value_type(unsigned k)
{
    switch (k % 12) {
    case 6: return H5Tcopy(H5T_IEEE_F32BE);
    case 7: return H5Tcopy(H5T_NATIVE_DOUBLE);
    case 8: { hid_t t = H5Tcopy(H5T_IEEE_F32LE);    /* float16, as h5_type_f16 */
              H5Tset_fields(t, 15, 10, 5, 0, 10); H5Tset_size(t, 2); H5Tset_ebias(t, 15); return t; }
    case 9: return H5Tcopy(H5T_NATIVE_INT32);
    case 10: return H5Tcopy(H5T_NATIVE_UINT8);
    case 11: { hid_t t = H5Tcopy(H5T_C_S1); H5Tset_size(t, 8); return t; }
    default: return H5Tcopy(H5T_IEEE_F32LE);        /* what runs write, most often */
    }
}

/* one /vision dataset: absent, a group, or a dataset whose shape is valid[0..rank) or the bytes' variation */
static void vision_dataset(hid_t f, const char *name, int rank, const hsize_t *valid, bytes *b)
{
    static const hsize_t big[8] = {1, 2, 3, 16, 255, 1u << 20, 1ull << 32, 1ull << 40};
    static const double special[16] = {0, 1, 0.5, 1e-3, -1, 2, 1e6, NAN, INFINITY, -INFINITY, FLT_MAX, -FLT_MAX,
                                       FLT_TRUE_MIN, 1e-42, -0.0, 3.5e38};
    const unsigned kind = take(b) % 8;
    if (kind == 0) return;
    if (kind == 1) { hid_t g = H5Gcreate2(f, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT); if (g >= 0) H5Gclose(g); return; }
    const unsigned tk = take(b), shape = take(b), layout = take(b);
    hsize_t dims[4], maxd[4] = {H5S_UNLIMITED, H5S_UNLIMITED, H5S_UNLIMITED, H5S_UNLIMITED}, chunk[4], cells = 1;
    const int vrank = rank;
    if (shape & 0x40) rank = (int)((shape >> 3) % 5);
    for (int d = 0; d < rank; d++) {
        const hsize_t v = d < vrank ? valid[d] : 1;
        const unsigned m = shape & 0x80 ? take(b) % 8 : 0;
        dims[d] = m < 4 ? v : m == 4 ? v + 1 : m == 5 ? (v ? v - 1 : 0) : m == 6 ? 0 : big[take(b) % 8];
        chunk[d] = dims[d] < 4 ? (dims[d] ? dims[d] : 1) : 4;
        cells = dims[d] && cells > (1ull << 40) / dims[d] ? (1ull << 40) : cells * dims[d];
    }
    hid_t ty = value_type(tk), sp = rank ? H5Screate_simple(rank, dims, layout % 3 ? maxd : NULL) : H5Screate(H5S_SCALAR);
    hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
    if (layout % 3 && rank) H5Pset_chunk(pl, rank, chunk);
    if (layout % 3 == 2 && rank) H5Pset_deflate(pl, 1);
    hid_t ds = H5Dcreate2(f, name, ty, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
    if (ds >= 0 && !(layout & 0x10) && cells <= (1u << 16)) {    /* written; else sparse (never stored) */
        const int specials = layout & 0x20;   /* else attention-like values in [0, 1] */
        if (H5Tget_class(ty) == H5T_STRING) {
            char *s = calloc(cells, 8);
            for (size_t k = 0; k < cells * 8; k++) s[k] = (char)(b->n ? b->p[k % b->n] : 'x');
            H5Dwrite(ds, ty, H5S_ALL, H5S_ALL, H5P_DEFAULT, s);
            free(s);
        } else {
            double *v = malloc(cells * sizeof(double));
            for (size_t k = 0; k < cells; k++) {
                const unsigned x = b->n ? b->p[k % b->n] : 0;
                v[k] = specials ? special[x % 16] : x / 255.0;
            }
            H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);   /* converted: clamped into integers */
            free(v);
        }
    }
    if (ds >= 0) H5Dclose(ds);
    H5Pclose(pl); H5Sclose(sp); H5Tclose(ty);
}

/* a string attribute (variable-length UTF-8 as h5_attr_str writes, or fixed-length) */
static void attr_string(hid_t obj, const char *name, const char *s, int vlen)
{
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
    if (vlen) { H5Tset_size(t, H5T_VARIABLE); H5Tset_cset(t, H5T_CSET_UTF8); }
    else H5Tset_size(t, strlen(s) + 1);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) { H5Awrite(a, t, vlen ? (const void *)&s : (const void *)s); H5Aclose(a); }
    H5Sclose(sp); H5Tclose(t);
}

/* root attribute model_dir and /images/path [n] */
static void images(hid_t f, hsize_t n, bytes *b)
{
    const unsigned m = take(b) % 8;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", fuzz_root(m == 4 ? "tests/fixtures/images/pp/deit" : "tests/fixtures/images/pp/vit_32"));
    if (m == 5) snprintf(dir, sizeof dir, "%s/no_such_model", fuzz_dir());
    if (m && m != 6 && m != 7) attr_string(f, "model_dir", dir, m != 3);
    if (m == 6) { int64_t v = 7; hid_t sp = H5Screate(H5S_SCALAR), a = H5Acreate2(f, "model_dir", H5T_NATIVE_INT64, sp, H5P_DEFAULT, H5P_DEFAULT);
                  if (a >= 0) { H5Awrite(a, H5T_NATIVE_INT64, &v); H5Aclose(a); } H5Sclose(sp); }
    const unsigned p = take(b);
    if (p % 8 == 0) return;
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    if (p % 8 == 1) { hid_t g = H5Gcreate2(f, "/images/path", lcpl, H5P_DEFAULT, H5P_DEFAULT); if (g >= 0) H5Gclose(g); H5Pclose(lcpl); return; }
    if (p & 0x80) n = (p & 0x40) ? n + 1 : n ? n - 1 : 0;   /* another length than the samples' */
    if (n > 64) n = 64;
    const char *paths[64];
    char missing[300];
    snprintf(missing, sizeof missing, "%s/gone.png", fuzz_dir());
    size_t w = 1;
    for (hsize_t i = 0; i < n; i++) {
        const unsigned c = take(b) % 8;
        paths[i] = c < 2 ? img_path[c] : c == 2 ? "tests/fixtures/images/jpeg/rgb_45x33.jpg" : c == 3 ? img_path[0] : c == 4 ? missing
                 : c == 5 ? img_path[2] : c == 6 ? fuzz_dir() : "";
        if (strlen(paths[i]) > w) w = strlen(paths[i]);
    }
    const unsigned form = (p >> 3) % 8;   /* 0-4 fixed strings as runs write, 5 variable-length, 6 numbers, 7 rank 2 */
    hid_t t = H5Tcopy(form == 6 ? H5T_NATIVE_INT64 : H5T_C_S1);
    if (form == 5) H5Tset_size(t, H5T_VARIABLE);
    else if (form != 6) H5Tset_size(t, w);
    const hsize_t dims[2] = {n, 1};
    hid_t sp = H5Screate_simple(form == 7 ? 2 : 1, dims, NULL);
    hid_t ds = H5Dcreate2(f, "/images/path", t, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (ds >= 0 && n) {
        char *buf = calloc(n, form == 5 ? sizeof(char *) : form == 6 ? 8 : w);
        for (hsize_t i = 0; i < n; i++)
            if (form == 5) memcpy(buf + i * sizeof(char *), &paths[i], sizeof(char *));
            else if (form != 6) memcpy(buf + i * w, paths[i], strlen(paths[i]));
        H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        free(buf);
    }
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(sp); H5Tclose(t); H5Pclose(lcpl);
}

/* the vision part of the run file, its valid shapes from /stats/entropy [N, L, H]; -1 when HDF5 failed */
static int vision_build(const char *path, bytes *b)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) return -1;
    hsize_t nlh[3] = {1, 1, 1};
    hid_t e = -1;
    if (H5Lexists(f, "/stats", H5P_DEFAULT) > 0 && H5Lexists(f, "/stats/entropy", H5P_DEFAULT) > 0) e = H5Dopen2(f, "/stats/entropy", H5P_DEFAULT);
    if (e >= 0) {
        hid_t sp = H5Dget_space(e);
        if (H5Sget_simple_extent_ndims(sp) == 3) H5Sget_simple_extent_dims(sp, nlh, NULL);
        H5Sclose(sp); H5Dclose(e);
    }
    const unsigned g0 = take(b), gkind = take(b) % 16;
    const int64_t gh = 1 + g0 % 4, gw = 1 + (g0 >> 2) % 4, npre = (g0 >> 4) % 3, np = gh * gw, T = npre + np;
    if (gkind == 0) return H5Fclose(f) < 0 ? -1 : 0;          /* no /vision: a text run's report */
    if (gkind == 1) {                                           /* /vision a dataset */
        hid_t sp = H5Screate(H5S_SCALAR), ds = H5Dcreate2(f, "/vision", H5T_NATIVE_INT64, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (ds >= 0) H5Dclose(ds);
        H5Sclose(sp);
    } else {
        hid_t g = H5Gcreate2(f, "/vision", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        static const char *const an[6] = {"grid_h", "grid_w", "n_prefix", "image_height", "image_width", "patch_size"};
        const int64_t av[6] = {gh, gw, npre, 32, 32, 32 / gh};   /* the valid image size: vit_32's output */
        for (int i = 0; i < 6 && g >= 0; i++) vision_attr(g, an[i], av[i], b);
        if (g >= 0) H5Gclose(g);
    }
    const hsize_t N = nlh[0], L = nlh[1], H = nlh[2];
    const hsize_t d_dist[3] = {N, L, H}, d_cls[4] = {N, L, H, (hsize_t)np}, d_roll[3] = {N, (hsize_t)T, (hsize_t)T},
                  d_norm[3] = {N, L, (hsize_t)T};
    if (gkind != 1) {
        vision_dataset(f, "/vision/distance_px", 3, d_dist, b);
        vision_dataset(f, "/vision/cls_attention", 4, d_cls, b);
        vision_dataset(f, "/vision/rollout", 3, d_roll, b);
        vision_dataset(f, "/vision/token_norm", 3, d_norm, b);
    }
    images(f, N, b);
    return H5Fclose(f) < 0 ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"/stats/entropy", "/stats/sink_rate", "/samples/length", "/summary"};
    if (size < 2) return 0;
    char path[256], dir[256];
    snprintf(path, sizeof path, "%s/vision.h5", fuzz_dir());
    snprintf(dir, sizeof dir, "%s/figures", fuzz_dir());
    const size_t m = data[1] < size - 2 ? data[1] : size - 2;
    bytes b = {data + 2 + m, size - 2 - m};
    if (h5build(path, names, 4, NULL, 0, data + 2, m) || vision_build(path, &b)) return 0;
    const int verbose = getenv("FUZZ_VERBOSE") != NULL;
    static const char *const figs[] = {"vision_distance_by_layer.png", "vision_cls_layers_0.png", "vision_cls_heads_0.png",
                                       "vision_norms_0.png"};
    char png[512];
    for (int i = 0; i < 4 && verbose; i++) { snprintf(png, sizeof png, "%s/%s", dir, figs[i]); unlink(png); }
    FUZZ_GUARD();
    summary s = {0};
    if (summary_compute(&s, path, 8, 1 + (data[0] >> 2) % 4, MPI_COMM_SELF)) {
        if (verbose) fprintf(stderr, "refused: %s\n", err_get());
        return 0;
    }
    const report_opts o = {.dir = dir, .sample = -1, .layer = -1, .head = -1, .exemplar_stat = stats_names[0],
                           .figure_images = data[0] % 4};   /* each image costs ~0.1 s of drawing */
    if (report_write(path, &s, &o) && verbose) fprintf(stderr, "report refused: %s\n", err_get());
    summary_free(&s);
    for (int i = 0; i < 4 && verbose; i++) {
        snprintf(png, sizeof png, "%s/%s", dir, figs[i]);
        fprintf(stderr, "%s %s\n", figs[i], access(png, F_OK) ? "absent" : "drawn");
    }
    if (verbose) {   /* sample 0's picture at the valid size, or the grey canvas */
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        uint8_t *rgb = f >= 0 ? report_input_image(f, 0, 32, 32) : NULL;
        fprintf(stderr, "image 0: %s\n", rgb ? "the file's picture" : "none (grey canvas)");
        free(rgb);
        if (f >= 0) H5Fclose(f);
    }
    return 0;
}
