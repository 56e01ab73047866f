/* unit_check.h — what the C unit tests of the file readers share (test_safetensors.c,
 * test_gguf.c, test_image.c): the failure count, a FAIL line, and a temporary directory. */
#ifndef ATTNSCOPE_UNIT_CHECK_H
#define ATTNSCOPE_UNIT_CHECK_H
#include <stdarg.h>
#include <stdio.h>

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
#endif
