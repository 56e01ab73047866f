/* writer.h — output on a thread of its own, so that the next batch computes while the previous
 * results go to disk. A job is a function with its context (it does its writes — raw pwrites
 * into the output file, never HDF5 or MPI calls — and frees what it owns); jobs run in
 * submission order, so a job that records progress runs after every write submitted before it.
 *
 * Memory is bounded: writer_submit blocks while more than max_bytes of submitted jobs wait. */
#ifndef ATTNSCOPE_WRITER_H
#define ATTNSCOPE_WRITER_H
#include <stddef.h>

typedef struct writer writer;
typedef void (*writer_fn)(void *ctx);

/* threaded = 0: every job runs at once inside writer_submit (no overlap; for debugging). */
writer *writer_start(size_t max_bytes, int threaded);
/* Queues fn(ctx), which holds about bytes of memory until it has run. */
void writer_submit(writer *w, writer_fn fn, void *ctx, size_t bytes);
/* Waits for every job, stops the thread, frees w. Returns the seconds the main thread spent
 * blocked in writer_submit (back-pressure: the disk was the bottleneck). */
double writer_finish(writer *w);
#endif
