/* runctl.c — see runctl.h. */
#include "runctl.h"
#include "check.h"
#include "util.h"
#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

enum { TAG_STATUS = 7101, TAG_CTL, TAG_VERDICT };
enum { CTL_NONE, CTL_STOP };

static volatile sig_atomic_t g_signal, g_graceful, g_speaks;

static void on_signal(int sig)
{
    if (g_graceful && !g_signal) {
        g_signal = sig;
        return;
    }
    static const char msg[] = "attnscope: interrupted; finished work is kept, run the same command again to resume\n";
    if (g_speaks) {
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
    }
    _exit(RUNCTL_EXIT_STOPPED);
}

void runctl_signals_install(int rank)
{
    g_speaks = rank == 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

void runctl_set_graceful(int graceful) { g_graceful = graceful; }
void runctl_set_silent(void) { g_speaks = 0; g_graceful = 0; }
int runctl_signal(void) { return g_signal; }

const char *runctl_signal_name(int s) { return s == SIGTERM ? "SIGTERM" : s == SIGINT ? "SIGINT" : s == SIGUSR1 ? "SIGUSR1" : "a signal"; }

static void fmt_count(char *b, size_t n, double v)
{
    if (v >= 1e9) snprintf(b, n, "%.2fG", v / 1e9);
    else if (v >= 1e6) snprintf(b, n, "%.2fM", v / 1e6);
    else if (v >= 1e4) snprintf(b, n, "%.1fk", v / 1e3);
    else snprintf(b, n, "%.0f", v);
}

static void fmt_time(char *b, size_t n, double s)
{
    if (!(s >= 0) || s > 1e8) snprintf(b, n, "?");
    else if (s < 60) snprintf(b, n, "%.0f s", s);
    else if (s < 3600) snprintf(b, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(b, n, "%dh%02dm", (int)s / 3600, (int)s % 3600 / 60);
}

/* rank 0: the job-wide line; final = 1 ends an updating line */
static void print_progress(runctl *c, int final)
{
    const double now = util_now();
    if (!c->mode || (!final && now - c->last_print < (c->mode == 1 ? 0.5 : c->every))) return;
    int64_t s = 0, t = 0;
    for (int r = 0; r < c->nranks; r++) { s += c->r_samples[r]; t += c->r_tokens[r]; }
    /* the rate and the eta in tokens, or in samples for a run that counts none (a CNN's images) */
    const int by_samples = c->total_tokens < 0;
    const int64_t done = by_samples ? s : t, base = by_samples ? c->base_samples : c->base_tokens,
                  total = by_samples ? c->total_samples : c->total_tokens;
    if (final && c->mode == 2 && done == c->last_tokens && c->last_print > c->t0 - 1) return;   /* a log has this line already */
    c->last_print = now;
    c->last_tokens = done;
    const double el = now - c->t0, rate = el > 0 ? (done - base) / el : 0;
    char a[32], b[32], r[32], e[32], eta[32], toks[128] = "";
    fmt_count(a, sizeof a, (double)t);
    fmt_count(b, sizeof b, (double)c->total_tokens);
    fmt_count(r, sizeof r, rate);
    fmt_time(e, sizeof e, el);
    fmt_time(eta, sizeof eta, rate > 0 ? (total - done) / rate : -1);
    if (!by_samples) snprintf(toks, sizeof toks, ", %s/%s tokens", a, b);
    const char *on = c->color ? "\033[36m" : "", *off = c->color ? "\033[0m" : "";
    printf("%s%s[progress]%s %lld/%lld samples (%.1f%%)%s, %s %s/s, elapsed %s, eta %s%s",
           c->mode == 1 ? "\r\033[K" : "", on, off, (long long)s, (long long)c->total_samples,
           c->total_samples ? 100.0 * s / c->total_samples : 100.0, toks, r, by_samples ? "samples" : "tokens", e, eta,
           c->mode == 1 && !final ? "" : "\n");
    fflush(stdout);
}

/* Is the user's stdout a terminal? Under mpirun a rank's stdout is a pseudo-terminal of
 * mpirun's whatever mpirun writes to, so ask about mpirun's (the parent of the local ranks). */
static int on_terminal(void)
{
    if (!isatty(1)) return 0;
    if (!getenv("OMPI_COMM_WORLD_SIZE")) return !getenv("SLURM_PROCID");
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/fd/1", (long)getppid());
    int fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return 0;
    const int t = isatty(fd);
    close(fd);
    return t;
}

void runctl_init(runctl *c, MPI_Comm comm, int64_t total_samples, int64_t total_tokens, int64_t my_samples,
                 int64_t my_tokens, int quiet, double every)
{
    memset(c, 0, sizeof *c);
    c->comm = comm;
    MPI_Comm_rank(comm, &c->rank);
    MPI_Comm_size(comm, &c->nranks);
    c->total_samples = total_samples;
    c->total_tokens = total_tokens;
    int64_t mine[2] = {my_samples, my_tokens}, base[2];
    CHECK_MPI(MPI_Allreduce(mine, base, 2, MPI_INT64_T, MPI_SUM, comm));
    c->base_samples = base[0];
    c->base_tokens = base[1];
    c->every = every > 0 ? every : 10;
    c->t0 = c->last_send = util_now();
    c->last_print = c->t0 - 1e9;
    c->sreq = c->ctl_req = MPI_REQUEST_NULL;
    if (c->rank == 0) {
        c->mode = quiet ? 0 : on_terminal() ? 1 : 2;
        c->color = c->mode == 1 && !getenv("NO_COLOR");
        c->r_samples = xcalloc(c->nranks, sizeof(int64_t));
        c->r_tokens = xcalloc(c->nranks, sizeof(int64_t));
        c->r_state = xcalloc(c->nranks, sizeof(int));
        c->ctl_sent = xcalloc(c->nranks, sizeof(int));
        if (c->base_samples && c->mode) {
            if (total_tokens < 0)
                printf("attnscope: resuming: %lld of %lld samples were done by the interrupted run\n", (long long)base[0],
                       (long long)total_samples);
            else
                printf("attnscope: resuming: %lld of %lld samples (%lld of %lld tokens) were done by the interrupted run\n",
                       (long long)base[0], (long long)total_samples, (long long)base[1], (long long)total_tokens);
            fflush(stdout);
        }
    } else {
        CHECK_MPI(MPI_Irecv(&c->ctl_val, 1, MPI_INT, 0, TAG_CTL, comm, &c->ctl_req));
    }
    /* every rank's restored work is its progress until it reports */
    CHECK_MPI(MPI_Gather(&mine[0], 1, MPI_INT64_T, c->r_samples, 1, MPI_INT64_T, 0, comm));
    CHECK_MPI(MPI_Gather(&mine[1], 1, MPI_INT64_T, c->r_tokens, 1, MPI_INT64_T, 0, comm));
}

/* rank 0: takes in every status message waiting */
static void drain(runctl *c)
{
    for (;;) {
        int flag = 0;
        MPI_Status st;
        CHECK_MPI(MPI_Iprobe(MPI_ANY_SOURCE, TAG_STATUS, c->comm, &flag, &st));
        if (!flag) return;
        int64_t m[3];
        CHECK_MPI(MPI_Recv(m, 3, MPI_INT64_T, st.MPI_SOURCE, TAG_STATUS, c->comm, MPI_STATUS_IGNORE));
        c->r_samples[st.MPI_SOURCE] = m[0];
        c->r_tokens[st.MPI_SOURCE] = m[1];
        c->r_state[st.MPI_SOURCE] = (int)m[2];
    }
}

/* rank 0: tells every rank not yet told to stop */
static void send_stops(runctl *c)
{
    int v = CTL_STOP;
    for (int r = 1; r < c->nranks; r++)
        if (!c->ctl_sent[r]) {
            CHECK_MPI(MPI_Send(&v, 1, MPI_INT, r, TAG_CTL, c->comm));
            c->ctl_sent[r] = 1;
        }
}

int runctl_poll(runctl *c, int64_t my_samples, int64_t my_tokens)
{
    const int sig = runctl_signal();
    if (c->rank == 0) {
        c->r_samples[0] = my_samples;
        c->r_tokens[0] = my_tokens;
        drain(c);
        for (int r = 1; r < c->nranks && !c->stop; r++) c->stop = c->r_state[r] == RUNCTL_STOPPED || c->r_state[r] == RUNCTL_FAILED;
        if (sig) c->stop = 1;
        if (c->stop) send_stops(c);
        print_progress(c, 0);
        return c->stop;
    }
    if (!c->ctl_done) {
        int flag = 0;
        CHECK_MPI(MPI_Test(&c->ctl_req, &flag, MPI_STATUS_IGNORE));
        if (flag) { c->ctl_done = 1; if (c->ctl_val == CTL_STOP) c->stop = 1; }
    }
    if (sig) c->stop = 1;
    const double now = util_now();
    if (now - c->last_send >= 0.5) {
        int flag = 1;
        if (c->sreq != MPI_REQUEST_NULL) CHECK_MPI(MPI_Test(&c->sreq, &flag, MPI_STATUS_IGNORE));
        if (flag) {
            c->sbuf[0] = my_samples; c->sbuf[1] = my_tokens; c->sbuf[2] = RUNCTL_RUNNING;
            CHECK_MPI(MPI_Isend(c->sbuf, 3, MPI_INT64_T, 0, TAG_STATUS, c->comm, &c->sreq));
            c->last_send = now;
        }
    }
    return c->stop;
}

int runctl_finish(runctl *c, int state, int64_t my_samples, int64_t my_tokens)
{
    int verdict;
    if (c->rank != 0) {
        if (c->sreq != MPI_REQUEST_NULL) CHECK_MPI(MPI_Wait(&c->sreq, MPI_STATUS_IGNORE));
        int64_t m[3] = {my_samples, my_tokens, state};
        CHECK_MPI(MPI_Send(m, 3, MPI_INT64_T, 0, TAG_STATUS, c->comm));
        if (!c->ctl_done) CHECK_MPI(MPI_Wait(&c->ctl_req, MPI_STATUS_IGNORE));
        CHECK_MPI(MPI_Recv(&verdict, 1, MPI_INT, 0, TAG_VERDICT, c->comm, MPI_STATUS_IGNORE));
        return verdict;
    }
    c->r_samples[0] = my_samples;
    c->r_tokens[0] = my_tokens;
    c->r_state[0] = state;
    const struct timespec nap = {0, 20 * 1000 * 1000};
    for (;;) {
        drain(c);
        int pending = 0, bad = 0;
        for (int r = 0; r < c->nranks; r++) {
            pending += c->r_state[r] == RUNCTL_RUNNING;
            bad |= c->r_state[r] == RUNCTL_STOPPED || c->r_state[r] == RUNCTL_FAILED;
        }
        if ((bad || runctl_signal()) && !c->stop) { c->stop = 1; send_stops(c); }
        print_progress(c, 0);
        if (!pending) break;
        nanosleep(&nap, NULL);
    }
    int failed = 0, stopped = 0;
    for (int r = 0; r < c->nranks; r++) { failed |= c->r_state[r] == RUNCTL_FAILED; stopped |= c->r_state[r] == RUNCTL_STOPPED; }
    verdict = failed ? RUNCTL_FAILED : stopped ? RUNCTL_STOPPED : RUNCTL_DONE;
    int none = CTL_NONE;
    for (int r = 1; r < c->nranks; r++) {
        if (!c->ctl_sent[r]) CHECK_MPI(MPI_Send(&none, 1, MPI_INT, r, TAG_CTL, c->comm));
        CHECK_MPI(MPI_Send(&verdict, 1, MPI_INT, r, TAG_VERDICT, c->comm));
    }
    print_progress(c, 1);
    free(c->r_samples); free(c->r_tokens); free(c->r_state); free(c->ctl_sent);
    return verdict;
}
