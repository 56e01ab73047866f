/* afile.h — a file replaced atomically. Its new contents go to a temporary created exclusively
 * (O_CREAT|O_EXCL|O_NOFOLLOW, a random name) in the target's own directory, so that rename(2)
 * is atomic; afile_commit fsyncs the temporary, renames it over the target and fsyncs the
 * directory. Readers of the target see the old complete file or the new complete file, never a
 * partial one, whatever happens to this process.
 *
 * Leftovers: a process killed before the rename leaves its temporary ".NAME.TAG.XXXXXX" beside
 * NAME (NAME itself untouched). The owner of a temporary holds flock(LOCK_EX) on it for its whole
 * life (HDF5 holds its own while it has the file open), so afile_create removes the temporaries of
 * NAME that nobody holds: those of dead processes. Where flock does not work, nothing is removed.
 *
 * Errors: every function returns 0, or -1 with err_set("NAME: <what>: <strerror>") and the
 * temporary removed (afile_commit, afile_copy_from) or left to afile_abort (the caller's). */
#ifndef ATTNSCOPE_AFILE_H
#define ATTNSCOPE_AFILE_H
#include <stddef.h>

typedef struct {
    int fd;                 /* the temporary, open read-write and locked; -1 once closed */
    int locked;             /* we hold flock(LOCK_EX) on fd */
    char shown[4096];       /* the target as the caller named it (messages) */
    char path[4096];        /* the target, a symbolic link resolved: the file that is replaced */
    char tmp[4096];         /* the temporary, in path's directory */
    int removed;            /* leftover temporaries of dead processes removed by afile_create */
    int mode_set;           /* permissions given (afile_copy_from); else afile_commit gives them */
} afile;

/* Creates the temporary ".BASE.TAG.XXXXXX" (mode 0600) beside path, where BASE is path's last
 * component after resolving a symbolic link at path (the link's target is what gets replaced).
 * Removes unlocked leftovers of the same pattern first. 0, or -1 with err_set (nothing created). */
int afile_create(afile *a, const char *path, const char *tag);

/* Fills the (empty) temporary with a copy of src: copy_file_range(2) (a reflink or a server-side
 * copy where the file system has one), read/write where the kernel refuses; then gives it src's
 * permission bits and, where allowed, owner. *bytes gets the size, *kernel whether
 * copy_file_range did it. 0, or -1 with err_set naming a.shown and the temporary removed. */
int afile_copy_from(afile *a, const char *src, size_t *bytes, int *kernel);

/* Writes buf[0, n) at offset off of the temporary. 0, or -1 with err_set and the temporary
 * removed. */
int afile_write(afile *a, const void *buf, size_t n, size_t off);

/* The whole of path replaced by buf[0, n): afile_create + afile_write + afile_commit. 0 or -1. */
int afile_write_file(const char *path, const void *buf, size_t n);

/* Releases / retakes our lock, for the time another opener (HDF5, which locks the file itself)
 * has the temporary open. afile_lock: 0, or -1 with err_set when the temporary is gone or held by
 * someone else (then abort). */
void afile_unlock(afile *a);
int afile_lock(afile *a);

/* Gives the temporary the permissions of the file it replaces (or 0666 less the umask) unless
 * afile_copy_from did; then fsync(temporary), rename over path, fsync(directory), close.
 * 0, or -1 with err_set: before the rename the temporary is removed and path is untouched; a
 * failure after it (the directory's fsync) leaves the new file in place, not known durable. */
int afile_commit(afile *a);

/* Closes and removes the temporary (no-op once committed or aborted). Keeps err_get(). */
void afile_abort(afile *a);
#endif
