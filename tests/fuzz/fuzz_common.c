/* fuzz_common.c — see fuzz_common.h. */
#include "fuzz_common.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

jmp_buf fuzz_jmp;
int fuzz_armed;
extern void (*check_fuzz_hook)(const char *call, const char *msg);   /* util.c, ATTNSCOPE_FUZZ */

static void fuzz_on_fail(const char *call, const char *msg)
{
    if (fuzz_armed && strstr(msg, "out of host memory")) longjmp(fuzz_jmp, 1);
    fprintf(stderr, "fuzz: check_fail(%s): %s: untrusted input reached a CHECK_* abort\n", call, msg);
    abort();
}

/* installed before main: every target, whether or not it writes a file */
__attribute__((constructor)) static void fuzz_install_hook(void) { check_fuzz_hook = fuzz_on_fail; }

static char g_dir[64];

static void fuzz_cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (g_dir[0] && system(cmd)) {}
}

const char *fuzz_dir(void)
{
    if (!g_dir[0]) {
        snprintf(g_dir, sizeof g_dir, "/dev/shm/attnscope-fuzz-%d", (int)getpid());
        if (mkdir(g_dir, 0700) && access(g_dir, W_OK)) { perror(g_dir); abort(); }
        atexit(fuzz_cleanup);
    }
    return g_dir;
}

const char *fuzz_file(const char *name, const uint8_t *data, size_t size)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f)) { perror(path); abort(); }
    return path;
}

const char *fuzz_root(const char *rel)
{
    static char path[4096];
    const char *root = getenv("ATTNSCOPE_ROOT");
    snprintf(path, sizeof path, "%s/%s", root && *root ? root : FUZZ_ROOT, rel);
    return path;
}
