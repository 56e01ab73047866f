/* fuzz_imagelist.c — the --images source through image_list (src/preprocess.c) and, when byte 0
 * asks, on into dataset_from_images (src/dataset_images.c) with the ViT processor of
 * tests/fixtures/images/pp/vit_32: each listed file's size from its header, its SHA-256, the
 * common output size, the shard of rank R of N.
 *
 * Byte 0: bit 0 clear, the rest is a LISTFILE (one path per line; blank lines, CRLF, NULs, long
 * lines, invalid UTF-8); set, the lines name the files of a directory (each a link to one of the
 * images, a name cut at '/'), which is listed instead. Bit 1: go on into dataset_from_images;
 * bits 2-3: nranks - 1, bits 4-5: the rank. A listed line starting with '@' names a file in the
 * scratch directory (its path depends on the PID, so seeds cannot spell it): the target writes
 * the directory there. LLVMFuzzerInitialize fills it with a few fixtures and hostile entries:
 * a directory and a FIFO named like images, a text file and an empty file named .png. Relative
 * paths are resolved against the working directory, as in a run (make fuzz: the repository). */
#include "fuzz_common.h"
#include "dataset.h"
#include "image.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

static char img_dir[128];
static const char *const fixtures[] = {"png/rgb8_37x23.png", "png/pal8_33x21.png", "png/grey16_19x13.png",
                                       "jpeg/rgb_45x33.jpg", "jpeg/grey_21x20.jpg", "png/rgb8_1x1.png"};
#define NFIX (int)(sizeof fixtures / sizeof *fixtures)

static void copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    if (!a || !b) { perror(a ? to : from); abort(); }
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof buf, a));)
        if (fwrite(buf, 1, n, b) != n) { perror(to); abort(); }
    fclose(a);
    if (fclose(b)) { perror(to); abort(); }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    snprintf(img_dir, sizeof img_dir, "%s/img", fuzz_dir());
    char p[512], f[512];
    if (mkdir(img_dir, 0700)) { perror(img_dir); abort(); }
    for (int i = 0; i < NFIX; i++) {
        snprintf(f, sizeof f, "tests/fixtures/images/%s", fixtures[i]);
        snprintf(p, sizeof p, "%s/%s", img_dir, strrchr(fixtures[i], '/') + 1);
        copy_file(fuzz_root(f), p);
    }
    snprintf(p, sizeof p, "%s/dir.png", img_dir);
    if (mkdir(p, 0700)) { perror(p); abort(); }
    snprintf(p, sizeof p, "%s/fifo.jpg", img_dir);
    if (mkfifo(p, 0600)) { perror(p); abort(); }
    fuzz_file("img/text.png", (const uint8_t *)"not an image\n", 13);
    fuzz_file("img/empty.png", (const uint8_t *)"", 0);
    return 0;
}

/* '@' at a line's start becomes IMG_DIR/ */
static char *expand(const uint8_t *s, size_t n, size_t *out_n)
{
    const size_t k = strlen(img_dir) + 1;
    char *o = malloc(n * (k + 1) + 1), *q = o;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '@' && (i == 0 || s[i - 1] == '\n')) { memcpy(q, img_dir, k - 1); q[k - 1] = '/'; q += k; }
        else *q++ = (char)s[i];
    }
    *out_n = (size_t)(q - o);
    return o;
}

/* a fresh directory whose entries are the lines' names, each a hard link to one fixture */
static const char *make_dir(const char *text, size_t n)
{
    static char d[160];
    snprintf(d, sizeof d, "%s/list.d", fuzz_dir());
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    if (system(cmd) || mkdir(d, 0700)) { perror(d); abort(); }
    int made = 0;
    for (const char *l = text, *e; l < text + n && made < 64; l = e + 1) {
        e = memchr(l, '\n', (size_t)(text + n - l));
        if (!e) e = text + n;
        char name[256], from[512], to[512];
        size_t k = 0;
        for (const char *c = l; c < e && k < 200 && *c; c++) name[k++] = *c == '/' ? '_' : *c;
        name[k] = 0;
        if (!k || !strcmp(name, ".") || !strcmp(name, "..")) continue;
        snprintf(from, sizeof from, "%s/%s", img_dir, strrchr(fixtures[made % NFIX], '/') + 1);
        snprintf(to, sizeof to, "%s/%s", d, name);
        if (!link(from, to)) made++;
    }
    return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const uint8_t flags = data[0];
    size_t n;
    char *text = expand(data + 1, size - 1, &n);
    const char *src = flags & 1 ? make_dir(text, n) : fuzz_file("list.txt", (const uint8_t *)text, n);
    free(text);
    FUZZ_GUARD();
    char **paths;
    int np;
    if (!image_list(src, &paths, &np)) {
        for (int i = 0; i < np; i++) free(paths[i]);
        free(paths);
    }
    if (flags & 2) {
        const int nranks = 1 + (flags >> 2 & 3), rank = (flags >> 4 & 3) % nranks;
        dataset d;
        if (!dataset_from_images(&d, src, fuzz_root("tests/fixtures/images/pp/vit_32"), 3, 16, 1, rank, nranks)) dataset_free(&d);
    }
    return 0;
}
