/* util.h — error reporting for untrusted input, checked allocation, whole-file reads, SHA-256,
 * UTF-8 validation and a monotonic clock.
 *
 * Error convention: a function that rejects input calls err_set() with a one-line message that
 * names the file and the problem, and returns -1 (or NULL). The caller passes it up; main() makes
 * the ranks agree (MPI_Allreduce MIN) and prints the message once. */
#ifndef ATTNSCOPE_UTIL_H
#define ATTNSCOPE_UTIL_H
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/stat.h>

/* Records the message (printf format) as this thread's last error. Returns -1. */
int err_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The last message recorded by err_set(), or "" if none. */
const char *err_get(void);

/* malloc/calloc/realloc that abort the job on exhaustion (sizes from trusted arithmetic only). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* Opens path read-only for a reader of untrusted input, refusing anything but a regular file
 * ("PATH: not a regular file") before it could block: a named pipe, a device or a socket is
 * opened O_NONBLOCK and checked by fstat, so a FIFO with no writer never hangs the job. The fd
 * returned is blocking again, close-on-exec; *st (if not NULL) gets its fstat. Returns the fd,
 * or -1 with err_set(). */
int util_open_regular(const char *path, struct stat *st);

/* util_open_regular() as a stdio stream ("rb"). Returns NULL with err_set(). */
FILE *util_fopen_regular(const char *path, struct stat *st);

/* Reads a whole regular file of at most max_bytes into a NUL-terminated buffer the caller frees.
 * Returns NULL with err_set() on a missing/unreadable/too large file. */
char *util_read_file(const char *path, size_t max_bytes, size_t *len);

/* SHA-256 of a file as 64 lowercase hex digits into hex[65]. Returns 0, or -1 with err_set(). */
int util_sha256_file(const char *path, char hex[65]);

/* Length in bytes of the valid UTF-8 prefix of s[0..n); equals n when all of it is valid
 * (no overlongs, no surrogates, nothing above U+10FFFF). */
size_t util_utf8_valid_prefix(const char *s, size_t n);

/* Decodes one code point of valid UTF-8 at s; stores its length in *len. */
uint32_t util_utf8_decode(const char *s, int *len);

/* float32 -> IEEE half bits, round to nearest even (overflow to inf, NaN kept). */
uint16_t util_f32_to_f16(float f);

/* Seconds on a monotonic clock. */
double util_now(void);
/* an environment switch: on when set to anything but "" or "0" */
int util_env_on(const char *name);

/* Overflow-checked a*b into *out; returns 0, or -1 on overflow. */
int util_mul_overflow(uint64_t a, uint64_t b, uint64_t *out);
#endif
