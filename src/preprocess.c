/* preprocess.c — `attnscope preprocess --images DIR|LISTFILE --preprocessor DIR [--out FILE.h5]`:
 * the pixel_values a model directory's image processor gives each image (image.h, imgproc.h), so
 * that users can diff them against Hugging Face's before a run. Writes, atomically (afile.h):
 *   /pixel_values       float32 [N, 3, H, W]; with --uint8 the 8-bit image after the resize and crop,
 *                       before rescale and normalize (a quarter of the bytes; `attnscope run --input`
 *                       applies the model's rescale and normalize to it)
 *   /images/path        UTF-8 strings [N], as listed
 *   /images/orig_size   int64 [N, 2]: each file's (height, width)
 * Without --out, one line per image: path, original size, pixel_values size, min, max and mean.
 * Rank 0 does the work; the other ranks only agree on the options and the result. */
#include "run.h"
#include "afile.h"
#include "cli.h"
#include "h5out.h"
#include "image.h"
#include "imgproc.h"
#include "par.h"
#include "util.h"
#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

typedef struct {
    const char *images, *preprocessor, *out;
    int max_pixels, u8;
} preprocess_opts;

#define F(field) offsetof(preprocess_opts, field)
static const cli_opt preprocess_options[] = {
    CLI_OPT("images", CLI_STR, F(images), "DIR|LIST", "a directory (its *.png, *.jpg, *.jpeg files, sorted by name), or a\n"
            "text file of image paths, one a line (relative to the working directory)"),
    CLI_OPT("preprocessor", CLI_STR, F(preprocessor), "DIR", "a model directory with preprocessor_config.json (or that file)"),
    CLI_OPT("out", CLI_STR, F(out), "FILE.h5", "write /pixel_values [N, 3, H, W], /images/path, /images/orig_size\n"
            "(default: one line of statistics per image on standard output)"),
    CLI_OPT("uint8", CLI_FLAG, F(u8), NULL, "with --out: /pixel_values as uint8, the image resized and cropped but\n"
            "not rescaled or normalized (a quarter of the bytes; run --input applies the\n"
            "model's preprocessor_config.json)"),
    CLI_OPT("max-pixels", CLI_INT, F(max_pixels), "N", "refuse an image of more pixels (Pillow's decompression-bomb limit)",
            .lo = 1, .hi = 2147483647, .def = "178956970"),
    {0}};
#undef F

static const cli_spec preprocess_cli = {
    .cmd = "preprocess",
    .synopsis = "usage: attnscope preprocess --images DIR|LISTFILE --preprocessor DIR [--out FILE.h5]\n",
    .about = "  the pixel_values of each PNG or JPEG image as Hugging Face's slow (PIL) image processor gives\n"
             "  them for Image.open(path).convert(\"RGB\") (ViT, DeiT, CLIP, ConvNext/ResNet processors)\n",
    .opts = preprocess_options};

typedef struct { char **v; int n, cap; } path_list;

static void list_add(path_list *l, char *p)
{
    if (l->n == l->cap) l->v = xrealloc(l->v, (size_t)(l->cap = l->cap ? 2 * l->cap : 64) * sizeof *l->v);
    l->v[l->n++] = p;
}

static void list_free(path_list *l)
{
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int image_name(const char *name)
{
    const char *e = strrchr(name, '.');
    return e && (!strcasecmp(e, ".png") || !strcasecmp(e, ".jpg") || !strcasecmp(e, ".jpeg"));
}

/* the images of a directory (sorted by name, as Python's sorted()) or of a list file */
static int list_images(const char *src, path_list *l)
{
    memset(l, 0, sizeof *l);
    struct stat st;
    if (stat(src, &st) != 0) return err_set("%s: cannot open: %s", src, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(src);
        if (!d) return err_set("%s: cannot open the directory: %s", src, strerror(errno));
        path_list names = {0};
        for (struct dirent *e; (e = readdir(d));)
            if (image_name(e->d_name)) list_add(&names, xstrdup(e->d_name));
        closedir(d);
        if (names.n) qsort(names.v, (size_t)names.n, sizeof *names.v, by_name);   /* no images: names.v is NULL */
        for (int i = 0; i < names.n; i++) {
            const size_t n = strlen(src) + strlen(names.v[i]) + 2;
            char *p = xmalloc(n);
            snprintf(p, n, "%s/%s", src, names.v[i]);
            list_add(l, p);
        }
        list_free(&names);
        if (!l->n) return err_set("%s: no *.png, *.jpg or *.jpeg file in this directory", src);
        return 0;
    }
    size_t n;
    char *text = util_read_file(src, (size_t)1 << 28, &n);
    if (!text) return -1;
    if (util_utf8_valid_prefix(text, n) != n) { free(text); return err_set("%s: the list of images is not valid UTF-8", src); }
    for (char *line = text, *next; line < text + n; line = next) {
        char *nl = memchr(line, '\n', (size_t)(text + n - line));
        next = nl ? nl + 1 : text + n;
        size_t k = (size_t)(next - line) - (nl != NULL);
        if (k && line[k - 1] == '\r') k--;
        if (!k) continue;
        char *p = xmalloc(k + 1);
        memcpy(p, line, k);
        p[k] = 0;
        list_add(l, p);
    }
    free(text);
    if (!l->n) return err_set("%s: the list of images is empty", src);
    return 0;
}

int image_list(const char *src, char ***paths, int *n)
{
    path_list l;
    if (list_images(src, &l)) { list_free(&l); return -1; }
    *paths = l.v;
    *n = l.n;
    return 0;
}

/* one image's pixel_values into a fresh buffer (caller frees; u8: the 8-bit planes before rescale
 * and normalize), its sizes into orig and *oh, *ow */
static void *process(const imgproc *p, const char *path, int64_t max_pixels, int64_t orig[2], int *oh, int *ow, int u8)
{
    image_rgb im;
    if (image_read(path, max_pixels, &im)) return NULL;
    orig[0] = im.height;
    orig[1] = im.width;
    if (imgproc_check_size(p, im.height, im.width, max_pixels, path)) { image_free(&im); return NULL; }
    imgproc_output_size(p, im.height, im.width, oh, ow);
    void *pv = xmalloc((size_t)3 * *oh * *ow * (u8 ? 1 : sizeof(float)));
    if (u8) imgproc_run_u8(p, &im, pv);
    else imgproc_run(p, &im, pv);
    image_free(&im);
    return pv;
}

static int print_all(const imgproc *p, const path_list *l, int64_t max_pixels)
{
    for (int i = 0; i < l->n; i++) {
        int64_t orig[2];
        int oh, ow;
        float *pv = process(p, l->v[i], max_pixels, orig, &oh, &ow, 0);
        if (!pv) return -1;
        const size_t n = (size_t)3 * oh * ow;
        double lo = FLT_MAX, hi = -FLT_MAX, sum = 0;
        for (size_t k = 0; k < n; k++) {
            lo = pv[k] < lo ? pv[k] : lo;
            hi = pv[k] > hi ? pv[k] : hi;
            sum += pv[k];
        }
        printf("%s\t%lldx%lld\t3x%dx%d\tmin %.6g max %.6g mean %.6g\n", l->v[i], (long long)orig[0], (long long)orig[1], oh, ow, lo, hi, sum / n);
        free(pv);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) return err_set("standard output: write error");
    return 0;
}

static int write_all(const imgproc *p, const path_list *l, int64_t max_pixels, const char *preprocessor, const char *out,
                     int u8)
{
    int64_t orig[2];
    int oh, ow;
    void *pv = process(p, l->v[0], max_pixels, orig, &oh, &ow, u8);   /* its size sizes the file */
    if (!pv) return -1;
    afile a;
    if (afile_create(&a, out, "preprocess")) { free(pv); return -1; }
    afile_unlock(&a);   /* HDF5 locks the file itself while it has it open */
    h5out o;
    if (h5out_create_tmp(&o, a.tmp, out)) { afile_abort(&a); free(pv); return -1; }
    size_t plen = 1;
    for (int i = 0; i < l->n; i++) plen = strlen(l->v[i]) + 1 > plen ? strlen(l->v[i]) + 1 : plen;
    const hsize_t dpv[4] = {(hsize_t)l->n, 3, (hsize_t)oh, (hsize_t)ow}, dsz[2] = {(hsize_t)l->n, 2}, dpath[1] = {(hsize_t)l->n};
    hid_t str_t = h5_type_str(plen);
    hid_t ds_pv = h5out_dataset(&o, "/pixel_values", u8 ? H5T_STD_U8LE : H5T_IEEE_F32LE, 4, dpv, NULL);
    hid_t ds_path = h5out_dataset(&o, "/images/path", str_t, 1, dpath, NULL);
    hid_t ds_size = h5out_dataset(&o, "/images/orig_size", H5T_STD_I64LE, 2, dsz, NULL);
    h5_attr_str(ds_pv, "preprocessor", preprocessor);
    h5_attr_str(ds_pv, "image_processor_type", p->type);
    h5_attr_str(ds_pv, "reference", "transformers' slow (PIL backend) image processor on Image.open(path).convert(\"RGB\")");
    h5_attr_str(ds_size, "columns", "height, width");
    if (u8) h5_attr_str(ds_pv, "values", "uint8 RGB after the processor's resize and crop, before its rescale and normalize");
    char *name = xcalloc(plen, 1);
    int rc = 0;
    for (int i = 0; i < l->n && !rc; i++) {
        int h = oh, w = ow;
        if (i > 0 && !(pv = process(p, l->v[i], max_pixels, orig, &h, &w, u8))) { rc = -1; break; }
        if (h != oh || w != ow) {
            rc = err_set("%s: its pixel_values are 3x%dx%d, those of %s 3x%dx%d: this processor gives no fixed size "
                         "(no centre crop), so the images cannot share one tensor", l->v[i], h, w, l->v[0], oh, ow);
        } else {
            memset(name, 0, plen);
            memcpy(name, l->v[i], strlen(l->v[i]));
            h5out_write_rows(ds_pv, u8 ? H5T_NATIVE_UCHAR : H5T_NATIVE_FLOAT, i, 1, pv);
            h5out_write_rows(ds_path, str_t, i, 1, name);
            h5out_write_rows(ds_size, H5T_NATIVE_INT64, i, 1, orig);
        }
        free(pv);
        pv = NULL;
    }
    free(name);
    H5Dclose(ds_pv); H5Dclose(ds_path); H5Dclose(ds_size); H5Tclose(str_t);
    h5out_close(&o);
    if (rc || afile_lock(&a) || afile_commit(&a)) {
        afile_abort(&a);
        return -1;
    }
    return 0;
}

int preprocess_main(int argc, char **argv)
{
    MPI_Comm comm = MPI_COMM_WORLD;
    int rank;
    MPI_Comm_rank(comm, &rank);
    preprocess_opts o;
    memset(&o, 0, sizeof o);
    int rc = cli_parse(&preprocess_cli, &o, argc, argv, NULL);
    if (rc == CLI_OK && !o.images) rc = err_set("--images DIR|LISTFILE is required");
    if (rc == CLI_OK && !o.preprocessor) rc = err_set("--preprocessor DIR is required");
    int st = cli_agree(&preprocess_cli, rc, comm);
    if (st >= 0) return st;
    if (rank != 0) return par_agree(0, comm) ? 1 : 0;

    imgproc p;
    path_list l = {0};
    rc = imgproc_load(&p, o.preprocessor);
    if (!rc) rc = list_images(o.images, &l);
    if (!rc && o.u8 && !o.out) rc = err_set("--uint8 is an option of --out FILE.h5");
    if (!rc) rc = o.out ? write_all(&p, &l, o.max_pixels, o.preprocessor, o.out, o.u8) : print_all(&p, &l, o.max_pixels);
    if (!rc && o.out) fprintf(stderr, "attnscope: wrote %s: pixel_values of %d images\n", o.out, l.n);
    list_free(&l);
    return par_agree(rc, comm) ? 1 : 0;
}
