/* runstate.c — see runstate.h. */
#include "runstate.h"
#include "util.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

uint64_t runstate_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static uint64_t hash_bytes(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static int write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* fsync of a directory, so that a rename inside it is durable */
static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* dir/name written as name.new (ours: the directory is locked), fsync'ed, renamed over name */
static int write_atomic(const char *dir, const char *name, const void *buf, size_t n)
{
    char tmp[4300], fin[4300];
    snprintf(tmp, sizeof tmp, "%s/%s.new", dir, name);
    snprintf(fin, sizeof fin, "%s/%s", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) return err_set("%s: cannot create: %s", tmp, strerror(errno));
    if (write_all(fd, buf, n) || fsync(fd)) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return err_set("%s: cannot write: %s", tmp, strerror(e));
    }
    close(fd);
    if (rename(tmp, fin)) { int e = errno; unlink(tmp); return err_set("%s: cannot rename to %s: %s", tmp, name, strerror(e)); }
    if (fsync_dir(dir)) return err_set("%s: cannot fsync the directory: %s", dir, strerror(errno));
    return 0;
}

static int is_ours(const char *name)
{
    static const char *const fixed[] = {"data.h5", "data.h5.new", "manifest", "manifest.new"};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        if (!strcmp(name, fixed[i])) return 1;
    int r, n = 0;
    if (sscanf(name, "rank-%d.progress%n", &r, &n) == 1 && (name[n] == 0 || !strcmp(name + n, ".new"))) return 1;
    return 0;
}

/* removes every file of ours from the partial directory (not the lock) */
static int empty_dir(runstate *s)
{
    DIR *d = opendir(s->dir);
    if (!d) return err_set("%s: cannot read: %s", s->dir, strerror(errno));
    int rc = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (is_ours(e->d_name) && unlinkat(dirfd(d), e->d_name, 0) && errno != ENOENT)
            rc = err_set("%s/%s: cannot remove: %s", s->dir, e->d_name, strerror(errno));
    closedir(d);
    return rc;
}

static int same_file(const char *a, const char *b)
{
    struct stat x, y;
    return !stat(a, &x) && !stat(b, &y) && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

int runstate_open(runstate *s, const char *out, int overwrite, int restart, const char *const *inputs, int n_inputs)
{
    memset(s, 0, sizeof *s);
    s->lock_fd = -1;
    if (strlen(out) + 32 >= sizeof s->out) return err_set("%s: output path too long", out);
    snprintf(s->out, sizeof s->out, "%s", out);
    snprintf(s->dir, sizeof s->dir, "%s.partial", out);
    snprintf(s->data, sizeof s->data, "%s/data.h5", s->dir);
    snprintf(s->data_new, sizeof s->data_new, "%s/data.h5.new", s->dir);
    for (int i = 0; i < n_inputs; i++)
        if (inputs[i] && (same_file(out, inputs[i]) || same_file(s->data, inputs[i])))
            return err_set("%s: --out is the input file %s; refusing to overwrite an input", out, inputs[i]);
    struct stat st;
    char od[4096];
    snprintf(od, sizeof od, "%s", out);
    const char *odir = dirname(od);
    if (stat(odir, &st) || !S_ISDIR(st.st_mode)) return err_set("%s: output directory %s does not exist", out, odir);
    if (access(odir, W_OK)) return err_set("%s: output directory %s is not writable", out, odir);
    if (!lstat(out, &st)) {
        if (S_ISDIR(st.st_mode)) return err_set("%s: --out is a directory", out);
        if (!overwrite) return err_set("%s exists: add --overwrite to replace it (it is kept until the new run completes)", out);
        s->out_exists = 1;
    }
    if (mkdir(s->dir, 0777) && errno != EEXIST) return err_set("%s: cannot create the partial-run directory: %s", s->dir, strerror(errno));
    if (lstat(s->dir, &st) || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
        return err_set("%s exists and is not a partial-run directory of yours (a file or a link?); move it away", s->dir);
    char lock[4300];
    snprintf(lock, sizeof lock, "%s/lock", s->dir);
    s->lock_fd = open(lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (s->lock_fd < 0) return err_set("%s: cannot open: %s", lock, strerror(errno));
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(s->lock_fd, F_SETLK, &fl)) {
        if (errno == EACCES || errno == EAGAIN) {
            char who[512] = "";
            ssize_t n = pread(s->lock_fd, who, sizeof who - 1, 0);
            who[n > 0 ? n : 0] = 0;
            who[strcspn(who, "\n")] = 0;
            close(s->lock_fd);
            s->lock_fd = -1;
            return err_set("%s: another attnscope run is writing it (%s); wait for it or stop it first", out, who[0] ? who : "holder unknown");
        }
        fprintf(stderr, "attnscope: warning: %s: file locks are not supported here (%s); make sure no other run writes %s\n",
                lock, strerror(errno), out);
    }
    char who[512], host[256] = "?";
    gethostname(host, sizeof host - 1);
    const char *job = getenv("SLURM_JOB_ID");
    int n = snprintf(who, sizeof who, "host %s, pid %ld%s%s\n", host, (long)getpid(), job ? ", Slurm job " : "", job ? job : "");
    if (ftruncate(s->lock_fd, 0) == 0 && pwrite(s->lock_fd, who, (size_t)n, 0) < 0) { /* informative only */ }
    if (restart) return empty_dir(s);
    return 0;
}

/* the value of key in "key=value" lines, into v (cut at cap) */
static int manifest_get(const char *text, const char *key, char *v, size_t cap)
{
    size_t k = strlen(key);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (!strncmp(l, key, k) && l[k] == '=') {
            const char *e = strchr(l + k + 1, '\n');
            size_t n = e ? (size_t)(e - l - k - 1) : strlen(l + k + 1);
            if (n >= cap) n = cap - 1;
            memcpy(v, l + k + 1, n);
            v[n] = 0;
            return 1;
        }
    return 0;
}

int runstate_match(runstate *s, const char *manifest)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/manifest", s->dir);
    struct stat st;
    if (lstat(path, &st) || lstat(s->data, &st)) return empty_dir(s) ? -1 : 0;   /* nothing complete to resume */
    size_t n;
    char *old = util_read_file(path, 64 << 20, &n);
    if (!old) return -1;
    int rc = 1;
    /* every key of this run's manifest, in its order: the first that differs is named */
    for (const char *l = manifest; *l && rc == 1;) {
        const char *eq = strchr(l, '='), *e = strchr(l, '\n');
        if (!eq || !e) break;
        char key[256], was[4096], now[4096];
        size_t kn = (size_t)(eq - l) < sizeof key - 1 ? (size_t)(eq - l) : sizeof key - 1;
        memcpy(key, l, kn);
        key[kn] = 0;
        if (!manifest_get(manifest, key, now, sizeof now)) now[0] = 0;   /* a key cut at 255 bytes */
        if (!manifest_get(old, key, was, sizeof was)) snprintf(was, sizeof was, "(not recorded)");
        if (strcmp(was, now)) {
            if (strlen(was) > 60 || strlen(now) > 60)
                rc = err_set("%s: the interrupted run in %s differs in %s; run the same command to resume it, or add --restart to discard it",
                             s->out, s->dir, key);
            else
                rc = err_set("%s: the interrupted run in %s differs in %s (was %s, now %s); run the same command to resume it, "
                             "or add --restart to discard it", s->out, s->dir, key, was, now);
        }
        l = e + 1;
    }
    free(old);
    return rc;
}

int runstate_commit_creation(runstate *s, const char *manifest)
{
    if (fsync_path(s->data_new)) return err_set("%s: cannot fsync: %s", s->data_new, strerror(errno));
    if (rename(s->data_new, s->data)) return err_set("%s: cannot rename to data.h5: %s", s->data_new, strerror(errno));
    return write_atomic(s->dir, "manifest", manifest, strlen(manifest));
}

int runstate_finish(runstate *s)
{
    if (fsync_path(s->data)) return err_set("%s: cannot fsync: %s", s->data, strerror(errno));
    if (rename(s->data, s->out)) return err_set("%s: cannot rename %s to it: %s", s->out, s->data, strerror(errno));
    char d[4096];
    snprintf(d, sizeof d, "%s", s->out);
    if (fsync_dir(dirname(d))) return err_set("%s: cannot fsync its directory: %s", s->out, strerror(errno));
    /* the result is in place; what remains of the partial run goes */
    int rc = empty_dir(s);
    char lock[4300];
    snprintf(lock, sizeof lock, "%s/lock", s->dir);
    unlink(lock);
    runstate_close(s);
    if (!rc && rmdir(s->dir)) fprintf(stderr, "attnscope: warning: %s: cannot remove: %s\n", s->dir, strerror(errno));
    return rc;
}

void runstate_close(runstate *s)
{
    if (s->lock_fd >= 0) close(s->lock_fd);
    s->lock_fd = -1;
}

void runstate_abandon(runstate *s)
{
    if (s->lock_fd < 0) return;
    char path[4300];
    snprintf(path, sizeof path, "%s/manifest", s->dir);
    struct stat st;
    if (lstat(path, &st) && !empty_dir(s)) {
        snprintf(path, sizeof path, "%s/lock", s->dir);
        unlink(path);
        rmdir(s->dir);
    }
    runstate_close(s);
}

/* ---- progress records --------------------------------------------------------------------- */

#define PROGRESS_MAGIC "ATTNPRG1"
enum { P_RANK, P_NRANKS, P_RUNID, P_FIRST, P_N, P_WSTART, P_WN, P_Q, P_SDONE, P_TDONE, P_NSIM, P_NFIELDS };

static size_t progress_bytes(int64_t nsim) { return 8 + P_NFIELDS * 8 + 8 + (size_t)nsim * 16 + 8; }

int progress_write(const char *dir, int rank, int nranks, uint64_t run_id, const progress_rec *p)
{
    const size_t n = progress_bytes(p->nsim);
    char *buf = xmalloc(n), *q = buf;
    memcpy(q, PROGRESS_MAGIC, 8); q += 8;
    int64_t f[P_NFIELDS] = {rank, nranks, (int64_t)run_id, p->first, p->n, p->wstart, p->wn, p->q, p->samples_done, p->tokens_done, p->nsim};
    memcpy(q, f, sizeof f); q += sizeof f;
    memcpy(q, &p->n_rows, 8); q += 8;
    if (p->nsim) {
        memcpy(q, p->js, (size_t)p->nsim * 8); q += p->nsim * 8;
        memcpy(q, p->gram, (size_t)p->nsim * 8); q += p->nsim * 8;
    }
    uint64_t h = hash_bytes(buf, (size_t)(q - buf));
    memcpy(q, &h, 8);
    char name[64];
    snprintf(name, sizeof name, "rank-%05d.progress", rank);
    int rc = write_atomic(dir, name, buf, n);
    free(buf);
    return rc;
}

int progress_read(const char *dir, int rank, int nranks, uint64_t run_id, int64_t first, int64_t n, int64_t nsim, progress_rec *p)
{
    memset(p, 0, sizeof *p);
    char path[4300];
    snprintf(path, sizeof path, "%s/rank-%05d.progress", dir, rank);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? 0 : err_set("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    const size_t want = progress_bytes(nsim);
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (size_t)st.st_size != want) {
        close(fd);
        return err_set("%s: not a progress record of this run (size)", path);
    }
    char *buf = xmalloc(want);
    ssize_t got = pread(fd, buf, want, 0);
    close(fd);
    int64_t f[P_NFIELDS];
    uint64_t h;
    memcpy(f, buf + 8, sizeof f);
    memcpy(&h, buf + want - 8, 8);
    /* a forged record may hold any int64: the window is checked without overflowing wstart + wn */
    int ok = got == (ssize_t)want && !memcmp(buf, PROGRESS_MAGIC, 8) && h == hash_bytes(buf, want - 8) && f[P_RANK] == rank &&
             f[P_NRANKS] == nranks && (uint64_t)f[P_RUNID] == run_id && f[P_FIRST] == first && f[P_N] == n && f[P_NSIM] == nsim &&
             f[P_WSTART] >= 0 && f[P_WN] >= 0 && f[P_WSTART] <= n && f[P_WN] <= n - f[P_WSTART] && f[P_Q] >= 0 && f[P_Q] <= f[P_WN] &&
             f[P_SDONE] == f[P_WSTART] + f[P_Q] && f[P_TDONE] >= 0 &&
             (f[P_Q] == 0 || f[P_WN] > 0);
    if (!ok) { free(buf); return err_set("%s: not a valid progress record of this run", path); }
    p->first = first; p->n = n; p->wstart = f[P_WSTART]; p->wn = f[P_WN]; p->q = f[P_Q];
    p->samples_done = f[P_SDONE]; p->tokens_done = f[P_TDONE]; p->nsim = nsim;
    memcpy(&p->n_rows, buf + 8 + sizeof f, 8);
    if (nsim) {
        p->js = xmalloc((size_t)nsim * 8);
        p->gram = xmalloc((size_t)nsim * 8);
        memcpy(p->js, buf + 8 + sizeof f + 8, (size_t)nsim * 8);
        memcpy(p->gram, buf + 8 + sizeof f + 8 + nsim * 8, (size_t)nsim * 8);
    }
    free(buf);
    return 1;
}
