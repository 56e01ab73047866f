/* fuzz_runstate.c — what a resumed run reads from OUT.partial/ (src/runstate.c), in the order
 * run.c reads it: runstate_open, runstate_match of the on-disk manifest against this run's,
 * progress_read of a rank's record, runstate_close.
 *
 * Byte 0 chooses the file. Bit 0 set: the manifest ("key=value" lines); the rest of the input is
 * the manifest on disk, compared with a fixed one shaped like run_manifest's (bit 1: the other way
 * round, the input is this run's manifest and the fixed one is on disk); bit 2: no data.h5, bit 3:
 * no manifest (nothing to resume: the directory is emptied).
 * Bit 0 clear: a progress record. A random file almost never passes the size and hash checks, so
 * the target writes a valid record with progress_write and XORs the input into it: zeros keep it
 * valid, other bytes change fields. Bytes 1-3: rank, nranks, nsim, the shard (first, n), all small;
 * byte 0 bit 1: recompute the trailing FNV-1a hash after the XOR (reaches the field checks), bit 2:
 * the file is exactly as long as the XOR bytes (short or long records), bit 3: no record. */
#include "fuzz_common.h"
#include "runstate.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* a manifest as run_manifest writes it, with cli_identity's options */
static const char fixed[] =
    "format=1\nranks=2\n--model=tests/fixtures/hf/bert_tiny\n--text=corpus.txt\n--max-len=128\n--topk=5\n"
    "--save-attention=0\n--sink-eps=0.001\n--attention-dtype=f16\n--backend=cpu\n"
    "weights_sha256=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\nsamples=100\n"
    "samples_sha256=60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752\n";

static uint64_t fnv(const uint8_t *b, size_t n)   /* runstate.c's hash_bytes */
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static const char *in_dir(const runstate *s, const char *name)
{
    static char p[4400];
    snprintf(p, sizeof p, "%s/%s", s->dir, name);
    return p;
}

static void put(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(b, 1, n, f) != n) || fclose(f)) { perror(path); abort(); }
}

static void manifest_case(runstate *s, uint8_t flags, const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);   /* the run's manifest is a C string: cut at the first NUL */
    memcpy(text, data, size);
    text[size] = 0;
    const int swap = flags & 2;
    const char *disk = swap ? fixed : text, *now = swap ? text : fixed;
    if (flags & 4) unlink(s->data); else put(s->data, "", 0);   /* runstate_match only lstats it */
    if (flags & 8) unlink(in_dir(s, "manifest")); else put(in_dir(s, "manifest"), disk, swap ? strlen(disk) : size);
    runstate_match(s, now);
    free(text);
}

static void progress_case(runstate *s, uint8_t flags, const uint8_t *data, size_t size)
{
    static const int64_t nsims[] = {0, 1, 4, 9, 16};
    const int rank = data[1] & 3, nranks = rank + 1 + (data[1] >> 2 & 3);
    const int64_t nsim = nsims[data[2] % 5], first = data[3] & 15, n = data[3] >> 4;
    const uint64_t run_id = runstate_hash(fixed);
    double js[16], gram[16];
    for (int i = 0; i < 16; i++) js[i] = gram[i] = 0.25 * i;
    progress_rec w = {.first = first, .n = n, .wstart = n / 2, .wn = n - n / 2, .q = (n - n / 2) / 2,
                      .samples_done = n / 2, .tokens_done = 7 * n, .nsim = nsim, .n_rows = 3, .js = js, .gram = gram};
    char name[32];
    snprintf(name, sizeof name, "rank-%05d.progress", rank);
    const char *path = in_dir(s, name);
    if (flags & 8) {
        unlink(path);
    } else {
        if (progress_write(s->dir, rank, nranks, run_id, &w)) { fprintf(stderr, "fuzz_runstate: %s\n", path); abort(); }
        size_t rn;
        uint8_t *rec = (uint8_t *)util_read_file(path, 1 << 20, &rn);
        const uint8_t *x = data + 4;
        const size_t xn = size - 4, len = flags & 4 ? xn : rn;
        rec = realloc(rec, len > rn ? len : rn);
        if (len > rn) memset(rec + rn, 0, len - rn);
        for (size_t i = 0; i < xn && i < len; i++) rec[i] ^= x[i];
        if ((flags & 2) && len >= 16) {
            uint64_t h = fnv(rec, len - 8);
            memcpy(rec + len - 8, &h, 8);
        }
        put(path, rec, len);
        free(rec);
    }
    progress_rec r;
    if (progress_read(s->dir, rank, nranks, run_id, first, n, nsim, &r) == 1) {
        /* what run_loop relies on: a window inside the shard, q of its samples done */
        if (r.wstart < 0 || r.wn < 0 || r.wstart > n || r.wn > n - r.wstart || r.q < 0 || r.q > r.wn || r.nsim != nsim ||
            (nsim && (!r.js || !r.gram))) {
            fprintf(stderr, "fuzz_runstate: progress_read accepted an inconsistent record\n");
            abort();
        }
        free(r.js);
        free(r.gram);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4) return 0;
    char out[128];
    snprintf(out, sizeof out, "%s/out.h5", fuzz_dir());
    FUZZ_GUARD();
    runstate s;
    if (runstate_open(&s, out, 0, 0, NULL, 0)) { fprintf(stderr, "fuzz_runstate: %s\n", err_get()); abort(); }
    if (data[0] & 1) manifest_case(&s, data[0], data + 1, size - 1);
    else progress_case(&s, data[0], data, size);
    runstate_close(&s);
    return 0;
}
