/* collect.h — what `attnscope run` keeps of each forward: the attention capture callback, the
 * per-sample statistics of every layer and head (stats.c) gathered in a window of consecutive
 * samples, the optional /attention tensors, the head-similarity accumulators, and the HDF5
 * datasets they go to. One rank's samples are processed window by window (consecutive samples,
 * sorted by length inside the window for batching) so that every output is written as one
 * contiguous block per window and memory stays bounded whatever N is. */
#ifndef ATTNSCOPE_COLLECT_H
#define ATTNSCOPE_COLLECT_H
#include "dataset.h"
#include "h5out.h"
#include "model.h"
#include "stats.h"
#include "tokenizer.h"
#include "writer.h"
#include <pthread.h>

typedef struct {
    int window, topk, key_importance, similarity, save_attention, att_f16;
    int batch;                 /* the most samples in one batch (sizes the attention buffers) */
    int threaded_writes;       /* 1: HDF5 writes on the writer thread (MPI_THREAD_SERIALIZED) */
    float sink_eps;
} collect_opts;

typedef struct {
    /* fixed for the run */
    const model *m;
    const dataset *d;
    const tokenizer *tok;
    collect_opts o;
    stats_params sp;
    int L, NH, Lmax, tokmax;
    uint8_t *sep_of_id, *punct_of_id;  /* [vocab] token-class flags */
    /* datasets */
    hid_t ds_len, ds_full, ds_row, ds_ids, ds_tok, ds_stat[STAT_N], ds_ki, ds_ti, ds_tw, ds_sink, ds_att;
    hid_t str_t, f16_t;
    /* the current window [w0, w0 + wn) of local samples */
    int w0, wn, wcap;
    float *stat;                       /* [STAT_N][wcap, L, NH] */
    float *ki;                         /* (wcap, L, NH, Lmax) */
    int32_t *ti; float *tw;            /* (wcap, L, NH, Lmax, k) */
    /* the current batch */
    const int *batch_idx;              /* [B] local sample indices */
    uint8_t *bsep, *bpunct;            /* (B, T) flags of the batch's tokens */
    float *bstat, *bki; int32_t *bti; float *btw;   /* one layer's statistics of the batch */
    uint8_t *btokcls;                  /* (B, T) the same flags for the fused path: bit 0 sep, bit 1 punct */
    int scalars_only;                  /* no output needs the probabilities: the forward may fuse */
    attn_request req;                  /* the batch's request to model_forward */
    float *fstat; size_t fstat_cap;    /* (L, B, NH, STAT_N) the fused path's scalars */
    size_t bstat_cap;                  /* B·NH·T they have room for */
    float *sim_maps; size_t sim_cap;   /* (B, L·NH, T, T) when similarity is on */
    /* output on the writer thread; /attention layers through a pool of host (pinned) buffers of
     * (batch, NH, Lmax, Lmax) each, handed back by the writer after their write */
    writer *wr;
    void **pool; int pool_n, pool_free, pool_cap;
    size_t pool_bytes;
    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cv;
    double pool_wait_s;                /* time the main thread waited for a free buffer */
    stats_sim sim;
} collect;

/* Creates every output dataset (collective) and the window buffers; wcap from a memory budget. */
void collect_init(collect *c, h5out *out, const model *m, const dataset *d, const tokenizer *tok,
                  const collect_opts *o, int64_t N, int Lmax, int tokmax);
/* The model's capture callback (user = collect*). */
void collect_capture(void *user, int layer, const float *probs, int B, int T);
/* Before a batch of B samples (local indices idx[B]) padded to T: token flags, buffers, and the
 * request for model_forward (c->req). */
void collect_batch_begin(collect *c, const int *idx, int B, int T);
/* After the batch's forward: the fused path's scalars into the window, head similarity. */
void collect_batch_end(collect *c, int B, int T);
/* Starts window [w0, w0+wn) (wn ≤ wcap) / hands its results to the writer (independent I/O). */
void collect_window_begin(collect *c, int w0, int wn);
void collect_window_write(collect *c);
/* Waits for the writer; reduces the head similarity over ranks and writes
 * /summary/head_similarity_* (collective); closes the datasets and frees everything. Returns the
 * seconds the compute waited for the disk. */
double collect_finish(collect *c, h5out *out, MPI_Comm comm);
#endif
