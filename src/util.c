/* util.c — see util.h. */
#include "util.h"
#include "check.h"
#include <stdarg.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <nettle/sha2.h>

static _Thread_local char err_msg[1024];

int err_set(const char *fmt, ...)
{
    /* a message longer than the buffer (a path of thousands of characters, say) keeps its start
     * and its end, where the reason is */
    static _Thread_local char full[16384];
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(full, sizeof full, fmt, ap) < 0) full[0] = 0;
    va_end(ap);
    size_t len = strlen(full);
    if (len < sizeof err_msg) {
        memcpy(err_msg, full, len + 1);
    } else {
        const size_t keep = (sizeof err_msg - 8) / 2;
        memcpy(err_msg, full, keep);
        memcpy(err_msg + keep, " ... ", 5);
        memcpy(err_msg + keep + 5, full + len - keep, keep + 1);
    }
    return -1;
}

const char *err_get(void) { return err_msg; }

#ifdef ATTNSCOPE_FUZZ
/* fuzz builds only (tests/fuzz): the harness's hook, which returns to it (longjmp) instead of the
 * process ending, so that a failed allocation is one rejected input and not a libFuzzer crash */
void (*check_fuzz_hook)(const char *call, const char *msg);
#endif

static const char *g_writing;            /* the file being created, for check_fail's message */
static const char *(*g_why)(void);       /* its last system error, if known */

void check_set_writing(const char *path, const char *(*why)(void)) { g_writing = path; g_why = why; }

_Noreturn void check_fail(const char *file, int line, const char *call, const char *msg)
{
    const int err = errno;
#ifdef ATTNSCOPE_FUZZ
    if (check_fuzz_hook) check_fuzz_hook(call, msg);
#endif
    int up = 0, fin = 0, rank = 0;
    MPI_Initialized(&up);
    MPI_Finalized(&fin);
    if (up && !fin) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    const char *why = g_writing && g_why ? g_why() : NULL;
    if (g_writing) /* a failed write of our own file (a full disk, say): the file and the reason */
        fprintf(stderr, "attnscope: %s: cannot write: %s (rank %d, %s:%d)\n", g_writing, why ? why : err ? strerror(err) : msg, rank,
                file, line);
    else
        fprintf(stderr, "[rank %d] %s:%d: %s: %s\n", rank, file, line, call, msg);
    fflush(stderr);
    if (up && !fin) MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) check_fail(__FILE__, __LINE__, "malloc", "out of host memory");
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) check_fail(__FILE__, __LINE__, "calloc", "out of host memory");
    return p;
}

void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) check_fail(__FILE__, __LINE__, "realloc", "out of host memory");
    return p;
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

int util_open_regular(const char *path, struct stat *st)
{
    struct stat sb;
    if (!st) st = &sb;
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return err_set("%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, st) != 0) {
        const int e = errno;
        close(fd);
        return err_set("%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        return err_set("%s: not a regular file%s", path, S_ISDIR(st->st_mode) ? " (a directory)" : "");
    }
    const int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        const int e = errno;
        close(fd);
        return err_set("%s: cannot open: %s", path, strerror(e));
    }
    return fd;
}

FILE *util_fopen_regular(const char *path, struct stat *st)
{
    int fd = util_open_regular(path, st);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        const int e = errno;
        close(fd);
        err_set("%s: cannot open: %s", path, strerror(e));
    }
    return f;
}

char *util_read_file(const char *path, size_t max_bytes, size_t *len)
{
    struct stat st;
    FILE *f = util_fopen_regular(path, &st);
    if (!f) return NULL;
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(f);
        err_set("%s: file is %lld bytes, more than the limit of %zu", path, (long long)st.st_size, max_bytes);
        return NULL;
    }
    size_t n = (size_t)st.st_size;
    char *buf = xmalloc(n + 1);
    if (n && fread(buf, 1, n, f) != n) {
        fclose(f);
        free(buf);
        err_set("%s: read error", path);
        return NULL;
    }
    fclose(f);
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

int util_sha256_file(const char *path, char hex[65])
{
    FILE *f = util_fopen_regular(path, NULL);
    if (!f) return -1;
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    static _Thread_local unsigned char buf[1 << 20];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) sha256_update(&ctx, n, buf);
    int bad = ferror(f);
    fclose(f);
    if (bad) return err_set("%s: read error", path);
    uint8_t d[SHA256_DIGEST_SIZE];
    sha256_digest(&ctx, sizeof d, d);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) sprintf(hex + 2 * i, "%02x", d[i]);
    return 0;
}

size_t util_utf8_valid_prefix(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        uint32_t cp, min;
        if (c < 0x80) { i++; continue; }
        else if ((c & 0xE0) == 0xC0) { k = 1; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { k = 2; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { k = 3; cp = c & 0x07; min = 0x10000; }
        else return i;
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += k + 1;
    }
    return n;
}

uint32_t util_utf8_decode(const char *str, int *len)
{
    const unsigned char *s = (const unsigned char *)str;
    unsigned c = s[0];
    if (c < 0x80) { *len = 1; return c; }
    if ((c & 0xE0) == 0xC0) { *len = 2; return ((c & 0x1F) << 6) | (s[1] & 0x3F); }
    if ((c & 0xF0) == 0xE0) { *len = 3; return ((c & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F); }
    *len = 4;
    return ((c & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
}

int util_env_on(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0");
}

double util_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int util_mul_overflow(uint64_t a, uint64_t b, uint64_t *out)
{
    return __builtin_mul_overflow(a, b, out) ? -1 : 0;
}

uint16_t util_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, e = (x >> 23) & 0xFF, m = x & 0x7FFFFF;
    if (e == 0xFF) return (uint16_t)(sign | 0x7C00 | (m ? 0x200 : 0));
    int32_t he = (int32_t)e - 127 + 15;
    if (he >= 0x1F) return (uint16_t)(sign | 0x7C00);
    if (he <= 0) {
        if (he < -10) return (uint16_t)sign;
        m |= 0x800000;                         /* subnormal half: shift with rounding */
        int shift = 14 - he;
        uint32_t hm = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (hm & 1))) hm++;
        return (uint16_t)(sign | hm);
    }
    uint32_t hm = m >> 13, rem = m & 0x1FFF;
    uint32_t h = sign | ((uint32_t)he << 10) | hm;
    if (rem > 0x1000 || (rem == 0x1000 && (hm & 1))) h++;  /* carries into the exponent correctly */
    return (uint16_t)h;
}
