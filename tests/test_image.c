/* test_image.c — image.c and imgproc.c against Pillow and Hugging Face transformers
 * (tests/fixtures/images/expected.h5, made by make_image_fixtures.py), and against malformed files
 * made here in a temp dir.
 *
 *   decode        every fixture PNG/JPEG: our RGB bytes must equal numpy.asarray(Image.open(p)
 *                 .convert("RGB")) exactly (the same integer arithmetic; no tolerance)
 *   resize        imgproc_resize must equal Image.resize for every PIL filter, exactly
 *   pixel_values  every fixture preprocessor_config.json: our float32 against HF's slow (PIL)
 *                 processor; tolerance 1e-6 abs, though the arithmetic is the peer's and 0 is
 *                 expected (the tolerance only forgives a libm that rounds sin/cos differently in
 *                 the Hamming/Lanczos weights, which none of the processors here use)
 *   malformed     truncated, bad CRC, 100000 x 100000, empty, a directory, text named .png, a
 *                 truncated JPEG, a limit below the image; bad preprocessor configs: each must
 *                 fail with one line naming the file.
 * Run from the repo root. Exit 1 on any failure. */
#include "image.h"
#include "imgproc.h"
#include "util.h"
#include <hdf5.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIX "tests/fixtures/images"

#include "unit_check.h"

static const char *fixture_path(const char *file)
{
    static char buf[512];
    const char *ext = strrchr(file, '.');
    snprintf(buf, sizeof buf, FIX "/%s/%s", ext && !strcmp(ext, ".png") ? "png" : "jpeg", file);
    return buf;
}

/* a whole dataset as raw bytes of memtype; dims into d (ndim returned); caller frees */
static void *read_ds(hid_t f, const char *name, hid_t memtype, hsize_t *d, int *ndim)
{
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0) return NULL;
    hid_t sp = H5Dget_space(ds);
    *ndim = H5Sget_simple_extent_ndims(sp);
    H5Sget_simple_extent_dims(sp, d, NULL);
    size_t n = H5Tget_size(memtype);
    for (int i = 0; i < *ndim; i++) n *= d[i];
    void *buf = xmalloc(n ? n : 1);
    if (H5Dread(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) { free(buf); buf = NULL; }
    H5Sclose(sp);
    H5Dclose(ds);
    return buf;
}

typedef struct { hid_t f; int n; } walk;

static herr_t each_decode(hid_t g, const char *name, const H5L_info_t *info, void *op)
{
    walk *w = op;
    char ds[512];
    snprintf(ds, sizeof ds, "/decode/%s", name);
    hsize_t d[4];
    int nd;
    uint8_t *want = read_ds(w->f, ds, H5T_NATIVE_UINT8, d, &nd);
    image_rgb im;
    if (image_read(fixture_path(name), 0, &im)) { fail("decode %s: %s", name, err_get()); free(want); return 0; }
    if (!want || nd != 3 || d[0] != (hsize_t)im.height || d[1] != (hsize_t)im.width || d[2] != 3) {
        fail("decode %s: size %dx%d, Pillow's %llux%llu", name, im.height, im.width, (unsigned long long)d[0], (unsigned long long)d[1]);
    } else {
        size_t diff = 0, n = (size_t)im.height * im.width * 3;
        int maxd = 0;
        for (size_t i = 0; i < n; i++)
            if (im.rgb[i] != want[i]) { diff++; if (abs(im.rgb[i] - want[i]) > maxd) maxd = abs(im.rgb[i] - want[i]); }
        if (diff) fail("decode %s: %zu of %zu bytes differ from Pillow's (max %d)", name, diff, n, maxd);
        else printf("ok   decode %-24s %4d x %-4d identical to Pillow's convert(\"RGB\")\n", name, im.height, im.width);
    }
    w->n++;
    free(want);
    image_free(&im);
    return 0;
}

static void test_resize(hid_t f)
{
    /* /resize/<file>/f<F>_<H>x<W> */
    static const char *files[] = {"rgb8_37x23.png", "rgb8_big_160x120.png", "rgb8_tall_2x300.png"};
    int checked = 0;
    for (size_t fi = 0; fi < sizeof files / sizeof *files; fi++) {
        image_rgb im;
        if (image_read(fixture_path(files[fi]), 0, &im)) { fail("resize %s: %s", files[fi], err_get()); continue; }
        char gname[256];
        snprintf(gname, sizeof gname, "/resize/%s", files[fi]);
        hid_t g = H5Gopen2(f, gname, H5P_DEFAULT);
        H5G_info_t gi;
        if (g < 0 || H5Gget_info(g, &gi) < 0) { fail("resize: %s missing from expected.h5", gname); image_free(&im); continue; }
        for (hsize_t i = 0; i < gi.nlinks; i++) {
            char link[128], ds[512];
            H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, link, sizeof link, H5P_DEFAULT);
            int flt, oh, ow;
            if (sscanf(link, "f%d_%dx%d", &flt, &oh, &ow) != 3) continue;
            snprintf(ds, sizeof ds, "%s/%s", gname, link);
            hsize_t d[4];
            int nd;
            uint8_t *want = read_ds(f, ds, H5T_NATIVE_UINT8, d, &nd);
            uint8_t *got = xmalloc((size_t)oh * ow * 3);
            imgproc_resize(im.rgb, im.height, im.width, got, oh, ow, flt);
            size_t diff = 0;
            for (size_t k = 0; want && k < (size_t)oh * ow * 3; k++) diff += got[k] != want[k];
            if (!want || diff) fail("resize %s %dx%d -> %dx%d filter %d: %zu bytes differ from Image.resize", files[fi], im.height, im.width, oh, ow, flt, diff);
            checked++;
            free(want);
            free(got);
        }
        H5Gclose(g);
        image_free(&im);
    }
    printf("%s resize: %d Image.resize results (6 filters: down, up, one side, mixed, very tall) compared byte for byte\n",
           checked >= 60 ? "ok  " : "FAIL", checked);
    if (checked < 60) failures++;
}

static void test_processors(hid_t f)
{
    hid_t g = H5Gopen2(f, "/pp", H5P_DEFAULT);
    H5G_info_t gi;
    if (g < 0 || H5Gget_info(g, &gi) < 0) { fail("/pp missing from expected.h5"); return; }
    for (hsize_t i = 0; i < gi.nlinks; i++) {
        char name[128], ds[256], dir[256];
        H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT);
        snprintf(dir, sizeof dir, FIX "/pp/%s", name);
        imgproc p;
        if (imgproc_load(&p, dir)) { fail("pp %s: %s", name, err_get()); continue; }
        hsize_t d[4], df[2];
        int nd, ndf;
        snprintf(ds, sizeof ds, "/pp/%s/pixel_values", name);
        float *want = read_ds(f, ds, H5T_NATIVE_FLOAT, d, &nd);
        snprintf(ds, sizeof ds, "/pp/%s/files", name);
        hid_t fds = H5Dopen2(f, ds, H5P_DEFAULT);
        hid_t ft = H5Dget_type(fds);
        const size_t flen = H5Tget_size(ft);
        char *files = read_ds(f, ds, ft, df, &ndf);
        H5Tclose(ft);
        H5Dclose(fds);
        if (!want || !files || nd != 4 || df[0] != d[0]) { fail("pp %s: expected.h5 unreadable", name); free(want); free(files); continue; }
        double maxerr = 0;
        int n = 0;
        const size_t per = (size_t)d[1] * d[2] * d[3];
        float *out = xmalloc(per * sizeof *out);
        for (hsize_t k = 0; k < d[0]; k++) {
            char file[256];
            snprintf(file, sizeof file, "%.*s", (int)flen, files + k * flen);
            image_rgb im;
            if (image_read(fixture_path(file), 0, &im)) { fail("pp %s: %s", name, err_get()); continue; }
            int oh, ow;
            imgproc_output_size(&p, im.height, im.width, &oh, &ow);
            if (oh != (int)d[2] || ow != (int)d[3]) {
                fail("pp %s %s: output %dx%d, HF's %llux%llu", name, file, oh, ow, (unsigned long long)d[2], (unsigned long long)d[3]);
            } else {
                imgproc_run(&p, &im, out);
                double e = 0;
                for (size_t j = 0; j < per; j++) e = fmax(e, fabs((double)out[j] - want[k * per + j]));
                if (e > 1e-6) fail("pp %s %s: max abs error %.3g > 1e-6", name, file, e);
                maxerr = fmax(maxerr, e);
                n++;
            }
            image_free(&im);
        }
        printf("%s pixel_values %-9s (%s) %d images %llux%llu: max abs error vs HF slow processor %.3g (tolerance 1e-6)\n",
               maxerr <= 1e-6 && n == (int)d[0] ? "ok  " : "FAIL", name, p.type, n, (unsigned long long)d[2], (unsigned long long)d[3], maxerr);
        free(out);
        free(want);
        free(files);
    }
    H5Gclose(g);
}

/* ---- malformed input ------------------------------------------------------------------------- */



static char *slurp(const char *path, size_t *n)
{
    char *t = util_read_file(path, 1 << 24, n);
    if (!t) { fprintf(stderr, "%s\n", err_get()); exit(1); }
    return t;
}

/* image_read must fail with one line that names path and contains phrase */
static void expect_reject(const char *label, const char *path, int64_t max_pixels, const char *phrase)
{
    image_rgb im;
    int rc = image_read(path, max_pixels, &im);
    const char *m = err_get();
    if (rc != -1 || im.rgb) fail("%s: accepted", label);
    else if (!strstr(m, path) || strchr(m, '\n') || !strstr(m, phrase)) fail("%s: message \"%s\" lacks the path or \"%s\"", label, m, phrase);
    else printf("ok   %-22s rejected: %s\n", label, m);
}

/* PNG's CRC-32 (ISO 3309), bit by bit */
static uint32_t crc32_png(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xffffffffu;
}

static void put32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }

static void test_malformed(void)
{
    size_t n;
    char *png = slurp(FIX "/png/rgb8_37x23.png", &n);
    write_bytes(tmp_path("truncated.png"), png, n / 2);
    expect_reject("truncated PNG", tmp_path("truncated.png"), 0, "truncated");
    /* a CRC that does not match its chunk: IHDR's, then IDAT's (the chunk after IHDR; its CRC
     * follows its data). A changed byte inside IDAT's data would fail in zlib first. */
    png[29] ^= 0x01;
    write_bytes(tmp_path("badcrc_ihdr.png"), png, n);
    expect_reject("PNG, bad IHDR CRC", tmp_path("badcrc_ihdr.png"), 0, "CRC");
    png[29] ^= 0x01;
    const uint32_t idat_len = (uint32_t)png[33] << 24 | png[34] << 16 | png[35] << 8 | png[36];
    if (memcmp(png + 37, "IDAT", 4)) fail("rgb8_37x23.png: IDAT is not the second chunk");
    png[33 + 8 + idat_len] ^= 0x01;
    write_bytes(tmp_path("badcrc_idat.png"), png, n);
    expect_reject("PNG, bad IDAT CRC", tmp_path("badcrc_idat.png"), 0, "CRC");
    png[33 + 8 + idat_len] ^= 0x01;
    /* IHDR of 100000 x 100000 with a correct CRC, then the 37x23 file's IDAT: refused at the header */
    uint8_t *big = xmalloc(n);
    memcpy(big, png, n);
    put32(big + 16, 100000);
    put32(big + 20, 100000);
    put32(big + 29, crc32_png(big + 12, 17));
    write_bytes(tmp_path("huge.png"), big, n);
    expect_reject("100000 x 100000 PNG", tmp_path("huge.png"), 0, "above the limit");
    free(big);
    expect_reject("limit below the image", FIX "/png/rgb8_37x23.png", 37 * 23 - 1, "above the limit");
    write_bytes(tmp_path("empty.png"), "", 0);
    expect_reject("empty file", tmp_path("empty.png"), 0, "empty");
    expect_reject("a directory", tmpdir, 0, "not a regular file");
    write_bytes(tmp_path("text.png"), "hello, world\n", 13);
    expect_reject("text named .png", tmp_path("text.png"), 0, "neither a PNG nor a JPEG");
    expect_reject("missing file", tmp_path("missing.png"), 0, "cannot open");
    free(png);
    char *jpg = slurp(FIX "/jpeg/rgb_45x33.jpg", &n);
    write_bytes(tmp_path("truncated.jpg"), jpg, n * 2 / 3);
    expect_reject("truncated JPEG", tmp_path("truncated.jpg"), 0, "JPEG");
    free(jpg);
}

/* a preprocessor_config.json that must be refused with a message naming the file and containing phrase */
static void expect_bad_config(const char *label, const char *json, const char *phrase)
{
    const char *path = tmp_path("preprocessor_config.json");
    write_bytes(path, json, strlen(json));
    imgproc p;
    int rc = imgproc_load(&p, tmpdir);
    const char *m = err_get();
    if (rc != -1) fail("config %s: accepted", label);
    else if (!strstr(m, path) || !strstr(m, phrase)) fail("config %s: message \"%s\" lacks the path or \"%s\"", label, m, phrase);
    else printf("ok   config %-20s rejected: %s\n", label, m);
}

static void test_bad_configs(void)
{
    expect_bad_config("unknown processor", "{\"image_processor_type\": \"SiglipImageProcessor\"}", "not supported");
    expect_bad_config("no type", "{\"size\": 224}", "image_processor_type");
    expect_bad_config("resample 9", "{\"image_processor_type\": \"ViTImageProcessor\", \"resample\": 9}", "resample");
    expect_bad_config("size a string", "{\"image_processor_type\": \"ViTImageProcessor\", \"size\": \"224\"}", "size");
    expect_bad_config("size 0", "{\"image_processor_type\": \"ViTImageProcessor\", \"size\": {\"height\": 0, \"width\": 3}}", "height");
    expect_bad_config("longest_edge", "{\"image_processor_type\": \"CLIPImageProcessor\", \"size\": {\"shortest_edge\": 5, \"longest_edge\": 9}}", "longest_edge");
    expect_bad_config("std 0", "{\"image_processor_type\": \"ViTImageProcessor\", \"image_std\": [0.5, 0, 0.5]}", "image_std");
    expect_bad_config("mean of 2", "{\"image_processor_type\": \"ViTImageProcessor\", \"image_mean\": [0.5, 0.5]}", "image_mean");
    expect_bad_config("do_resize 1", "{\"image_processor_type\": \"ViTImageProcessor\", \"do_resize\": 1}", "do_resize");
    expect_bad_config("ConvNext h/w", "{\"image_processor_type\": \"ConvNextImageProcessor\", \"size\": {\"height\": 5, \"width\": 5}}", "shortest_edge");
    expect_bad_config("crop_pct 2", "{\"image_processor_type\": \"ConvNextImageProcessor\", \"crop_pct\": 2}", "crop_pct");
    expect_bad_config("do_pad", "{\"image_processor_type\": \"ViTImageProcessor\", \"do_pad\": true}", "do_pad");
    expect_bad_config("not JSON", "{\"image_processor_type\": ", "preprocessor_config.json");
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/attnscope-image-XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    hid_t f = H5Fopen(FIX "/expected.h5", H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) { printf("FAIL cannot open " FIX "/expected.h5\n"); return 1; }
    walk w = {f, 0};
    H5Literate_by_name(f, "/decode", H5_INDEX_NAME, H5_ITER_INC, NULL, each_decode, &w, H5P_DEFAULT);
    if (w.n < 20) fail("only %d decode fixtures", w.n);
    test_resize(f);
    test_processors(f);
    H5Fclose(f);
    test_malformed();
    test_bad_configs();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", tmpdir);
    printf("test_image: %s (%d failures)\n", failures ? "FAILED" : "all passed", failures);
    return failures ? 1 : 0;
}
