/* backend_cuda_marks.c — the CUDA backend's marks for `run --timeline` (backend.h mark,
 * marks_read): timing events recorded in the op stream, read back after a sync as milliseconds
 * since the first. Events are created in chunks as marks arrive and kept for the next read. */
#ifdef ATTNSCOPE_CUDA
#include "backend_cuda_int.h"
#include "util.h"

#define MARK_CHUNK 4096
#define MARK_MAX (1 << 21)          /* past this, marks are dropped (marks_read says how many) */

void cuda_mark(backend *be, int tag)
{
    cuda_ctx *c = be->ctx;
    if (c->mk_n == MARK_MAX) { c->mk_lost++; return; }
    if (c->mk_n == c->mk_made) {
        if (c->mk_made == c->mk_cap) {
            c->mk_cap = c->mk_cap ? 2 * c->mk_cap : MARK_CHUNK;
            c->mk_ev = xrealloc(c->mk_ev, (size_t)c->mk_cap * sizeof *c->mk_ev);
            c->mk_tag = xrealloc(c->mk_tag, (size_t)c->mk_cap * sizeof *c->mk_tag);
        }
        const int to = c->mk_made + MARK_CHUNK < c->mk_cap ? c->mk_made + MARK_CHUNK : c->mk_cap;
        for (; c->mk_made < to; c->mk_made++) CHECK_CUDA(cudaEventCreate(&c->mk_ev[c->mk_made]));
    }
    c->mk_tag[c->mk_n] = tag;
    CHECK_CUDA(cudaEventRecord(c->mk_ev[c->mk_n++], 0));
}

int cuda_marks_read(backend *be, int **tags, double **ms, long *lost)
{
    cuda_ctx *c = be->ctx;
    const int n = c->mk_n;
    *tags = xmalloc((n ? n : 1) * sizeof **tags);
    *ms = xmalloc((n ? n : 1) * sizeof **ms);
    *lost = c->mk_lost;
    if (n) CHECK_CUDA(cudaEventSynchronize(c->mk_ev[n - 1]));
    for (int i = 0; i < n; i++) {
        float t = 0;
        if (i) CHECK_CUDA(cudaEventElapsedTime(&t, c->mk_ev[0], c->mk_ev[i]));
        (*tags)[i] = c->mk_tag[i];
        (*ms)[i] = t;
    }
    c->mk_n = 0;
    c->mk_lost = 0;
    return n;
}

void cuda_marks_free(cuda_ctx *c)
{
    for (int i = 0; i < c->mk_made; i++) CHECK_CUDA(cudaEventDestroy(c->mk_ev[i]));
    free(c->mk_ev);
    free(c->mk_tag);
}
#endif
