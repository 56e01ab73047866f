/* unit_check.h — what the C unit tests of the file readers share (test_safetensors.c,
 * test_gguf.c, test_image.c): the failure count, a FAIL line, a temporary directory and the files
 * written into it. */
#ifndef ATTNSCOPE_UNIT_CHECK_H
#define ATTNSCOPE_UNIT_CHECK_H
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int failures = 0;
static char tmpdir[64];   /* the test's mkdtemp directory */

/* prints "FAIL <message>" and counts it */
static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    failures++;
}

/* tmpdir/name in one of 8 rotating buffers */
static const char *tmp_path(const char *name)
{
    static char buf[8][256];
    static int k = 0;
    char *p = buf[k++ % 8];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    return p;
}

/* writes n bytes to path; a file the test cannot write ends it */
static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}
#endif
