/* afile.c — see afile.h. */
#include "afile.h"
#include "util.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define SUFFIX_LEN 6
static const char suffix_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/* dir and base of p (dir "." without a slash) */
static void split_path(const char *p, char *dir, size_t dcap, const char **base)
{
    const char *s = strrchr(p, '/');
    if (!s) { snprintf(dir, dcap, "."); *base = p; return; }
    snprintf(dir, dcap, "%.*s", s == p ? 1 : (int)(s - p), p);
    *base = s + 1;
}

/* name is ".BASE.TAG." followed by SUFFIX_LEN suffix characters */
static int is_leftover(const char *name, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n) || strlen(name) != n + SUFFIX_LEN) return 0;
    for (size_t i = n; name[i]; i++)
        if (!strchr(suffix_chars, name[i])) return 0;
    return 1;
}

/* Removes the temporaries in dir named prefix+suffix that are ours (same user), regular files,
 * and not locked by anyone: their writer died. Returns how many. */
static int remove_leftovers(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    char p[8192];
    while ((e = readdir(d))) {
        if (!is_leftover(e->d_name, prefix)) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        int fd = open(p, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) continue;
        struct stat a, b;
        if (fstat(fd, &a) == 0 && S_ISREG(a.st_mode) && a.st_uid == geteuid() && flock(fd, LOCK_EX | LOCK_NB) == 0
            && lstat(p, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino && unlink(p) == 0)
            n++;
        close(fd);
    }
    closedir(d);
    return n;
}

int afile_create(afile *a, const char *path, const char *tag)
{
    memset(a, 0, sizeof *a);
    a->fd = -1;
    if (strlen(path) + strlen(tag) + SUFFIX_LEN + 8 >= sizeof a->tmp) return err_set("%s: path too long", path);
    snprintf(a->shown, sizeof a->shown, "%s", path);
    snprintf(a->path, sizeof a->path, "%s", path);
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {   /* replace the link's target, keep the link */
        char *real = realpath(path, NULL);
        if (!real) return err_set("%s: cannot resolve the symbolic link: %s", path, strerror(errno));
        int ok = strlen(real) + strlen(tag) + SUFFIX_LEN + 8 < sizeof a->tmp;
        if (ok) snprintf(a->path, sizeof a->path, "%s", real);
        free(real);
        if (!ok) return err_set("%s: path too long", path);
    }
    char dir[4096], prefix[4200];
    const char *base;
    split_path(a->path, dir, sizeof dir, &base);
    if (!*base) return err_set("%s: not a file name", path);
    snprintf(prefix, sizeof prefix, ".%s.%s.", base, tag);
    a->removed = remove_leftovers(dir, prefix);
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned char r[SUFFIX_LEN];
        if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
            for (int i = 0; i < SUFFIX_LEN; i++) r[i] = (unsigned char)(rand() ^ getpid() ^ attempt);
        char sfx[SUFFIX_LEN + 1];
        for (int i = 0; i < SUFFIX_LEN; i++) sfx[i] = suffix_chars[r[i] % (sizeof suffix_chars - 1)];
        sfx[SUFFIX_LEN] = 0;
        if (snprintf(a->tmp, sizeof a->tmp, "%s/%s%s", dir, prefix, sfx) >= (int)sizeof a->tmp) {
            a->tmp[0] = 0;
            return err_set("%s: path too long", path);
        }
        int fd = open(a->tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno == EEXIST) continue;
        if (fd < 0) return err_set("%s: cannot create a temporary in %s: %s", path, dir, strerror(errno));
        /* lock it; a leftover-remover of another process may have opened it between our open and
         * our lock and removed it: then the name is not ours any more, take another */
        int lk = flock(fd, LOCK_EX | LOCK_NB);
        struct stat f, l;
        if (lk != 0 && errno == EWOULDBLOCK) { close(fd); continue; }
        if (fstat(fd, &f) != 0 || lstat(a->tmp, &l) != 0 || f.st_dev != l.st_dev || f.st_ino != l.st_ino) { close(fd); continue; }
        a->fd = fd;
        a->locked = lk == 0;    /* flock unsupported here (ENOLCK, EOPNOTSUPP): nobody can remove it either */
        return 0;
    }
    a->tmp[0] = 0;
    return err_set("%s: cannot create a temporary in %s: 100 names taken", path, dir);
}

void afile_unlock(afile *a)
{
    if (a->fd >= 0 && a->locked) flock(a->fd, LOCK_UN);
    a->locked = 0;
}

int afile_lock(afile *a)
{
    struct stat f, l;
    if (a->fd < 0) return err_set("%s: the temporary %s is closed", a->shown, a->tmp);
    int lk = flock(a->fd, LOCK_EX | LOCK_NB);
    if (lk != 0 && errno == EWOULDBLOCK) return err_set("%s: the temporary %s is held by another process", a->shown, a->tmp);
    if (fstat(a->fd, &f) != 0 || lstat(a->tmp, &l) != 0 || f.st_dev != l.st_dev || f.st_ino != l.st_ino)
        return err_set("%s: the temporary %s was removed by another process", a->shown, a->tmp);
    a->locked = lk == 0;
    return 0;
}

void afile_abort(afile *a)
{
    if (a->fd >= 0) close(a->fd);           /* unlocks */
    a->fd = -1;
    a->locked = 0;
    if (a->tmp[0]) unlink(a->tmp);
    a->tmp[0] = 0;
}

static int fail_abort(afile *a, const char *what, int e)
{
    err_set("%s: %s: %s", a->shown, what, strerror(e));
    afile_abort(a);
    return -1;
}

int afile_copy_from(afile *a, const char *src, size_t *bytes, int *kernel)
{
    *bytes = 0;
    *kernel = 0;
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return fail_abort(a, "cannot open it to copy", errno);
    struct stat st;
    int e = fstat(in, &st) != 0 ? errno : !S_ISREG(st.st_mode) ? EINVAL : 0;
    if (e) {
        close(in);
        return fail_abort(a, "cannot copy it (not a regular file?)", e);
    }
    const off_t size = st.st_size;
    off_t done = 0;
    int use_kernel = 1;
    char *buf = NULL;
    const size_t bufsz = 1 << 20;
    while (done < size) {
        ssize_t n = -1;
        if (use_kernel) {
            loff_t off_in = done, off_out = done;
            size_t want = size - done > (off_t)1 << 30 ? (size_t)1 << 30 : (size_t)(size - done);
            n = copy_file_range(in, &off_in, a->fd, &off_out, want, 0);
            if (n > 0) { *kernel = 1; done += n; continue; }
            /* the kernel or file system does not do it (or stopped early): copy by hand from here */
            if (n == 0 || errno == ENOSYS || errno == EXDEV || errno == EOPNOTSUPP || errno == EINVAL || errno == EPERM) {
                use_kernel = 0;
                continue;
            }
        } else {
            if (!buf) buf = xmalloc(bufsz);
            size_t want = size - done > (off_t)bufsz ? bufsz : (size_t)(size - done);
            n = pread(in, buf, want, done);
            if (n == 0) { errno = ENODATA; n = -1; }   /* src shrank under us */
            for (ssize_t w = 0, m; n > 0 && w < n; w += m)
                if ((m = pwrite(a->fd, buf + w, n - w, done + w)) <= 0) { n = -1; if (m == 0) errno = EIO; }
            if (n > 0) { done += n; continue; }
        }
        if (errno == EINTR) continue;
        e = errno;
        free(buf);
        close(in);
        return fail_abort(a, "copying it into a temporary", e);
    }
    free(buf);
    close(in);
    if (fchmod(a->fd, st.st_mode & 07777) != 0) return fail_abort(a, "giving the copy its permissions", errno);
    a->mode_set = 1;
    if (fchown(a->fd, st.st_uid, st.st_gid) != 0 && fchown(a->fd, (uid_t)-1, st.st_gid) != 0) { /* not ours to give: keep ours */ }
    *bytes = (size_t)size;
    return 0;
}

int afile_write(afile *a, const void *buf, size_t n, size_t off)
{
    for (size_t w = 0; w < n; ) {
        ssize_t m = pwrite(a->fd, (const char *)buf + w, n - w, (off_t)(off + w));
        if (m < 0 && errno == EINTR) continue;
        if (m <= 0) return fail_abort(a, "writing a temporary", m < 0 ? errno : EIO);
        w += (size_t)m;
    }
    return 0;
}

int afile_write_file(const char *path, const void *buf, size_t n)
{
    afile a;
    if (afile_create(&a, path, "tmp") || afile_write(&a, buf, n, 0) || afile_commit(&a)) return -1;
    return 0;
}

int afile_commit(afile *a)
{
    if (a->fd < 0) return err_set("%s: the temporary %s is closed", a->shown, a->tmp);
    if (!a->mode_set) {           /* the mode of the file it replaces, else what open(2) would give */
        struct stat st;
        mode_t u = umask(0);
        umask(u);
        if (fchmod(a->fd, stat(a->path, &st) == 0 ? st.st_mode & 07777 : 0666 & ~u) != 0)
            return fail_abort(a, "giving the new file its permissions", errno);
    }
    if (fsync(a->fd) != 0) return fail_abort(a, "fsync of the new file", errno);
    if (rename(a->tmp, a->path) != 0) return fail_abort(a, "cannot rename the new file over it", errno);
    a->tmp[0] = 0;
    int fd = a->fd;
    a->fd = -1;
    a->locked = 0;
    char dir[4096];
    const char *base;
    split_path(a->path, dir, sizeof dir, &base);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;
    /* EINVAL: this file system cannot fsync a directory; the rename is as durable as it gets */
    if (dfd < 0 || (fsync(dfd) != 0 && errno != EINVAL))
        rc = err_set("%s: replaced, but fsync of its directory failed: %s", a->shown, strerror(errno));
    if (dfd >= 0) close(dfd);
    if (close(fd) != 0 && rc == 0) rc = err_set("%s: replaced, but closing the new file failed: %s", a->shown, strerror(errno));
    return rc;
}
