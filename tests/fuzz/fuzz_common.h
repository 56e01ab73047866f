/* fuzz_common.h — what the libFuzzer targets of tests/fuzz share.
 *
 * The parsers take paths, so a target writes its input to a file of its own process under
 * /dev/shm (fuzz_file) and calls the path API. The repository's fixtures (fixed tokenizers, image
 * processors) are found under fuzz_root(): $ATTNSCOPE_ROOT, else the checkout the target was built
 * from. In a fuzz build check_fail() calls fuzz_on_fail (util.c's hook): a failed allocation
 * returns to the FUZZ_GUARD of LLVMFuzzerTestOneInput (one rejected input); any other CHECK_*
 * reached from untrusted input is a finding and aborts with its message. */
#ifndef ATTNSCOPE_FUZZ_COMMON_H
#define ATTNSCOPE_FUZZ_COMMON_H
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

extern jmp_buf fuzz_jmp;
extern int fuzz_armed;
/* In LLVMFuzzerTestOneInput, before the first call into attnscope: return 0 when an allocation
 * inside it failed (check_fail's out-of-memory path longjmps back here). */
#define FUZZ_GUARD() do { fuzz_armed = 1; if (setjmp(fuzz_jmp)) { fuzz_armed = 0; return 0; } } while (0)

/* Writes data[0..size) to NAME in this process's scratch directory; returns the file's path in a
 * static buffer that the next call overwrites. Aborts on I/O errors. */
const char *fuzz_file(const char *name, const uint8_t *data, size_t size);
/* The scratch directory itself (/dev/shm/attnscope-fuzz-PID, removed at exit). */
const char *fuzz_dir(void);
/* ROOT/rel of the repository, into a static buffer. */
const char *fuzz_root(const char *rel);
#endif
