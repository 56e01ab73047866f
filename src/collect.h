/* collect.h — what `attnscope run` keeps of each forward: the attention capture callback, the
 * per-sample statistics of every layer and head (stats.c) gathered in a window of consecutive
 * samples, the optional /attention tensors, the head-similarity accumulators, and the HDF5
 * datasets they go to. One rank's samples are processed window by window (consecutive samples,
 * sorted by length inside the window for batching) so that every output is written as one
 * contiguous block per window and memory stays bounded whatever N is.
 *
 * Output (collect_out.c): the datasets are created once, complete, when a run starts fresh
 * (collect_create); every start then finds their file offsets (collect_attach) and the writer
 * thread puts the bytes there with pwrite, followed, for each window or checkpoint, by fdatasync
 * and this rank's progress record (runstate.h): what the record says is done is on disk. */
#ifndef ATTNSCOPE_COLLECT_H
#define ATTNSCOPE_COLLECT_H
#include "dataset.h"
#include "h5out.h"
#include "model.h"
#include "probe.h"
#include "runstate.h"
#include "stats.h"
#include "tokenizer.h"
#include "writer.h"
#include <pthread.h>

typedef struct {
    int window, topk, key_importance, similarity, save_attention, att_f16;
    int rollout_fusion;        /* vision: rollout's head fusion, 0 mean, 1 max, 2 min */
    double rollout_discard;    /* vision: the share of each fused map's smallest entries set to 0 */
    int rollout_start;         /* vision: the first layer of the rollout */
    double high_norm_factor;   /* vision: a patch is high-norm above this many times the image's median */
    int batch;                 /* the most samples in one batch (sizes the attention buffers) */
    int window_multiple;       /* > 1: a window holds a multiple of this many samples when it can
                                  (images: the batch, so that no window ends in a small batch) */
    float sink_eps;
    const probe_params *probe; /* --probe induction: the probe's scores too (NULL: off) */
} collect_opts;

/* the vision outputs: mean distance in pixels and 2-D locality [N, L, NH], the [CLS] row over the
 * patches [N, L, NH, patches], attention rollout [N, T, T], every token's norm after every layer
 * [N, L, T] and the count of high-norm patches [N] */
enum { VIS_DIST, VIS_LOC, VIS_CLS, VIS_ROLL, VIS_NORM, VIS_HIGH, VIS_N };

/* the datasets collect writes, in the order of collect_out.c's table */
enum { CO_LEN, CO_FULL, CO_ROW, CO_IDS, CO_TOK, CO_KI, CO_TI, CO_TW, CO_SINK,
       CO_ATT,                             /* every sample's [L, NH, n, n] block, packed: 1-D */
       CO_ATT_OFF,                         /* [N] int64 element offset of each sample's block */
       CO_SIM_JS_SUM, CO_SIM_JS_MEAN, CO_SIM_COS, CO_SIM_GRAM,
       CO_PROBE,                           /* PROBE_N per-sample scores [N, L, NH] */
       CO_PROBE_MEAN = CO_PROBE + PROBE_N, /* PROBE_N means over the samples [L, NH] */
       CO_STAT = CO_PROBE_MEAN + PROBE_N,
       CO_VIS = CO_STAT + STAT_N,          /* VIS_N vision outputs (collect_vision.c), patch-stem models */
       CO_N = CO_VIS + VIS_N };


/* one window's per-token output buffers: ki (wcap, L, NH, Lmax), ti and tw (wcap, L, NH, Lmax, k),
 * and a vision run's outputs (wcap, vis_row[v]) */
typedef struct { float *ki; int32_t *ti; float *tw; float *vis[VIS_N]; } collect_tokbuf;
#define COLLECT_TOK_SETS 3
/* the helper thread's job: batch (idx[B] local samples, padded to T) of set `set` into the window
 * starting at w0: the fused path's per-token outputs (tok) into the window buffers ki, ti, tw, and
 * the vision outputs the batch left in the set (vis: collect_vision_scatter) */
typedef struct { int B, T, set, w0, tok, vis; const int *idx; float *ki; int32_t *ti; float *tw; } collect_scatter_job;

/* What one batch leaves for the host, page-locked on a GPU: the fused path's scalars (L, B, NH,
 * STAT_N), top-k (L, B, NH, T, k) and key importance (L, B, NH, T); a vision run's dist | loc | cls
 * (L, B·NH·(2 + np)) (fused path), token norms (L, B, T) and rollout (B, T, T); and the batch it
 * holds (idx[B] local samples padded to T, of the window starting at w0). Batches take the
 * COLLECT_SETS sets in turn: batch i's forward downloads into set i mod 3 while batch i-1's
 * results are still arriving (set i-1) and the helper thread scatters batch i-2's (set i-2). */
#define COLLECT_SETS 3
#define COLLECT_FENCE0 1           /* backend fence slots COLLECT_FENCE0 + set (model.h uses 0) */
typedef struct {
    float *stat; int32_t *ti; float *tw, *ki; float *vis, *norm, *roll;
    size_t stat_cap, tok_cap, vis_cap, norm_cap, roll_cap;
    int *idx; int idx_cap, B, T, w0, fused;
} collect_bset;

typedef struct {
    /* fixed for the run */
    const model *m;
    const dataset *d;
    const tokenizer *tok;
    collect_opts o;
    stats_params sp;
    int L, NH, Lmax, tokmax, sep_id;
    uint8_t *sep_of_id, *punct_of_id;  /* [vocab] token-class flags */
    int64_t N;
    /* the output file: datasets as raw byte ranges, the descriptor the writer writes through */
    const char *names[CO_N];           /* NULL: not in this run's output */
    char stat_names[STAT_N][64], probe_names[2 * PROBE_N][80];
    h5raw raw[CO_N];
    int fd;
    const char *data_path, *state_dir;
    int rank, nranks;
    uint64_t run_id;
    int werr, werr_errno;              /* set once by the writer thread on a failed write */
    int werr_input;                    /* the failure was an input that could not be read (an image) */
    int64_t saved_samples, saved_tokens;   /* what this rank's last durable record says is done */
    int64_t n_nonfinite;               /* per-head scalars written NaN/Inf by this rank in this run */
    char werr_msg[1024];
    /* the current window [w0, w0 + wn) of local samples */
    int w0, wn, wcap;
    float *stat;                       /* [STAT_N][wcap, L, NH] */
    float *probe;                      /* [PROBE_N][wcap, L, NH] the probe's scores, or NULL */
    float *bprobe; size_t bprobe_cap;  /* (B, NH, T, T) host copy of a layer's probabilities for them */
    float *ki;                         /* (wcap, L, NH, Lmax) */
    int32_t *ti; float *tw;            /* (wcap, L, NH, Lmax, k) */
    /* ki, ti, tw and vis come from a pool of COLLECT_TOK_SETS sets, allocated once and reused (a
     * fresh buffer of up to 256 MiB costs its page faults every window): the writer hands a complete
     * window's set back after its write (collect_tok_release); tok_cur: the set of the current
     * window, -1 between windows or when no per-token output is wanted */
    collect_tokbuf tok_set[COLLECT_TOK_SETS];
    int tok_busy[COLLECT_TOK_SETS], tok_n, tok_cap, tok_cur;
    pthread_cond_t tok_cv;             /* (with pool_mu) a set was handed back */
    float *vis[VIS_N];                 /* vision: [wcap][vis_row[v]] per output (the window's set), or NULL (text) */
    size_t vis_row[VIS_N];             /* floats per sample of each vision output */
    int vis_gh, vis_gw;                /* the patch grid of the images */
    float *bvis; size_t bvis_cap;      /* the explicit path: one layer's dist, loc (B, NH), cls (B, NH, np) */
    float *roll[2]; size_t roll_cap;   /* (B, T, T) the batch's rollout in backend memory, ping-pong */
    int roll_cur;                      /* roll[roll_cur] holds the product so far */
    float *dnorm; size_t dnorm_cap;    /* (L, B, T) the batch's token norms in backend memory */
    vgrid vgrid;                       /* the images' patch grid (the fused path's request) */
    /* the current batch */
    const int *batch_idx;              /* [B] local sample indices */
    uint8_t *bsep, *bpunct;            /* (B, T) flags of the batch's tokens */
    float *bstat, *bki; int32_t *bti; float *btw;   /* one layer's statistics of the batch */
    uint8_t *btokcls;                  /* (B, T) the same flags for the fused path: bit 0 sep, bit 1 punct */
    int no_probs;                      /* no output needs the probabilities: the forward may fuse */
    attn_request req;                  /* the batch's request to model_forward */
    collect_bset bset[COLLECT_SETS];   /* the batches' results (above); fcur: the next batch's set */
    int fcur;
    double gpu_wait_s;                 /* seconds collect_batch_end waited for a batch's results */
    size_t bstat_cap;                  /* B·NH·T they have room for */
    pthread_t sc_thread;               /* the helper; sc_on = 0: not started, scatter inline */
    int sc_on, sc_busy, sc_stop;       /* (sc_mu) a job waits or runs; the thread should exit */
    pthread_mutex_t sc_mu;
    pthread_cond_t sc_cv;
    collect_scatter_job sc_job;
    double sc_wait_s;                  /* seconds the main thread waited for the helper */
    float *sim_maps; size_t sim_cap;   /* (B, L·NH, T, T) when similarity is on */
    /* output on the writer thread; /attention layers through a pool of host (pinned) buffers of
     * batch·NH·Lmax² elements each (room for any batch's Σ_b NH·n_b²), handed back by the writer
     * after their write */
    writer *wr;
    int64_t *att_off;                  /* [d->n] element offset in /attention of each local sample's
                                          block [L, NH, n, n] (global: known at init, so a block's
                                          place in the file is fixed and a resume rewrites it there) */
    int64_t att_total;                 /* elements of /attention, Σ over all samples of L·NH·n² */
    void **pool; int pool_n, pool_free, pool_cap;
    size_t pool_bytes;
    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cv;
    double pool_wait_s;                /* time the main thread waited for a free buffer */
    stats_sim sim;
} collect;

/* The window buffers (wcap from a memory budget) and the list of output datasets. With
 * save_attention it is collective over MPI_COMM_WORLD (run.c's communicator): every rank's
 * /attention offsets follow from the lengths of the ranks before it. */
void collect_init(collect *c, const model *m, const dataset *d, const tokenizer *tok,
                  const collect_opts *o, int64_t N, int Lmax, int tokmax);
/* Rank 0, a fresh start only: creates every output dataset in out with its units and
 * definition (n_tokens: the head similarity's number of rows). */
void collect_create(collect *c, h5out *out, int64_t n_tokens);
/* Collective, every start: finds the datasets in the (closed) file data_path and opens it for
 * the raw writes; progress records go to state_dir. 0, or -1 with err_set. */
int collect_attach(collect *c, const char *data_path, const char *state_dir, uint64_t run_id, MPI_Comm comm);
/* Restores the head-similarity sums of a progress record. */
void collect_restore_similarity(collect *c, const progress_rec *p);
/* The model's capture callback (user = collect*). */
void collect_capture(void *user, int layer, const float *probs, int B, int T);
/* Before a batch of B samples (local indices idx[B]) padded to T: token flags, its set's buffers,
 * and the request for model_forward (c->req, deferred: the forward only enqueues its work). */
void collect_batch_begin(collect *c, const int *idx, int B, int T);
/* Once the batch's forward has returned: the copies of the rest of its results into its set
 * enqueued, then its fence. w0: the window the batch's samples belong to (the current one, or the
 * next, whose collect_window_begin waits until the current window's last batch has ended: the
 * run loop sends a window's first batch before that). Returns the set, for collect_batch_end. At
 * most two batches may be sent and not ended (the run loop keeps one). */
int collect_batch_sent(collect *c, int B, int T, int w0);
/* Waits for the results of the batch in set s, then: the fused path's scalars into the window,
 * head similarity; its per-token outputs and the vision outputs go into the window on the helper
 * thread while the next batches run (after the previous batch's are done; collect_tok_sync waits
 * for them). The window must still be the batch's. */
void collect_batch_end(collect *c, int s);
/* Starts window [w0, w0+wn) (wn ≤ wcap). resume: its rows are read back from the file first (a
 * progress record says part of it is done). 0, or -1 with err_set on a failed read. */
int collect_window_begin(collect *c, int w0, int wn, int resume);
/* Hands the window's rows to the writer, then (rec != NULL) fdatasync and the progress record
 * rec. done == NULL: the window is complete (the writer takes its buffers). Else a checkpoint in
 * the middle of the window: the rows of samples done[0..q) only, which the writer reads in place
 * (they do not change again) while the window goes on filling its other rows. */
void collect_window_write(collect *c, const progress_rec *rec, const int *done, int q);
/* Writer thread: a complete window's per-token buffers (set tok_set[i]) may be reused. */
void collect_tok_release(collect *c, int i);
/* p (NULL, or *cap elements of es bytes from the backend's host_alloc) made room for n elements
 * (page-locked on a GPU; the contents are not kept); out of memory ends the job. */
void *collect_grow_host(collect *c, void *p, size_t *cap, size_t n, size_t es, const char *what);
/* Waits until the helper thread has scattered every batch into the window buffers. */
void collect_tok_sync(collect *c);
/* A write of the writer thread failed (message in c->werr_msg); later writes are skipped. */
int collect_write_failed(const collect *c);
/* Waits for every write, fdatasync. Returns the seconds the compute waited for the disk. */
double collect_drain(collect *c);
/* Collective, only when every rank completed: sums the head similarity over ranks; rank 0
 * writes /summary/head_similarity_* into the file. 0, or -1 with err_set. */
int collect_write_similarity(collect *c, MPI_Comm comm);
/* Collective, only when every rank completed: rank 0 reads every sample's probe scores back
 * from the file and writes their means /probe/<score> [L, NH]. 0 (nothing without a probe), or
 * -1 with err_set. */
int collect_write_probe(collect *c, MPI_Comm comm);
/* Closes the file descriptor and frees everything. */
void collect_free(collect *c);
/* Records a failure (the first one wins): a write of dataset co (-1: the fdatasync) with errno
 * err, or any message. Safe on the writer thread. */
void collect_write_error(collect *c, int co, int err);
void collect_fail(collect *c, const char *msg);
/* An input that cannot be read (an image): the failure is recorded once the windows handed to
 * the writer so far are written with their records, so that they stay done for a resume. */
void collect_fail_input(collect *c, const char *msg);
/* Bytes of dataset co in the file (0 when absent). */
int64_t collect_dataset_bytes(const collect *c, int co);

/* The vision outputs (collect_vision.c), for a patch-stem model only (else no-ops): names and
 * row sizes (init); the window buffers (alloc, zeroed unless resume reads them back); a layer's
 * statistics from its probabilities (B, NH, T, T) in backend memory, where the batch's rollout
 * stays until the last layer (capture); the datasets and the /vision attributes (create); the
 * buffers (free). */
void collect_vision_init(collect *c);
void collect_vision_window(collect *c, int resume, int64_t g0);
void collect_vision_capture(collect *c, int layer, const float *probs, int B, int T);
/* Whether the run's images take the fused path (model.h attn_request's vis_*: fuses). The batch's
 * buffers, and on the fused path its request (request: a no-op but for a vision run). The model's
 * vis_map callback (user = collect*): the layer's rollout step from the fused map. Once the forward
 * has run, the norms and the rollout into the batch's set (batch_sent), which scatter puts into the
 * window (the helper thread's job j; every output of a vision run but the explicit path's
 * per-layer ones, which capture puts there). */
int collect_vision_fuses(collect *c);
void collect_vision_request(collect *c, attn_request *req, int B, int T);
void collect_vision_map(void *user, int layer, const float *map, int B, int T);
void collect_vision_batch_sent(collect *c, int B, int T);
void collect_vision_scatter(collect *c, const collect_scatter_job *j);
void collect_vision_create(collect *c, h5out *out);
void collect_vision_free(collect *c);
#endif
