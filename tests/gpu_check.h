/* gpu_check.h — what the CUDA-vs-CPU tests share (test_backend_gpu.c, test_attn_gpu.c): the two
 * backends, a seeded generator of random inputs, copies to and from the device, the normwise
 * comparison and the one-line report with its tolerance and reason, bf16 rounding. Header-only:
 * each test is one translation unit; include it only in a build with CUDA. */
#ifndef ATTNSCOPE_GPU_CHECK_H
#define ATTNSCOPE_GPU_CHECK_H
#include "backend.h"
#include "util.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

static int failures;
static backend *cpu, *gpu;
static backend *gpu_bf16 __attribute__((unused));   /* the bf16 backend, where a test has one */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static inline double rnd(void)                     /* uniform [0, 1), xorshift64* */
{
    rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
    return (double)((rng_state * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}
static inline float *rand_vec(size_t n, float lo, float hi)
{
    float *v = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) v[i] = (float)(lo + (hi - lo) * rnd());
    return v;
}

/* device copy of a host array, and host copy of a device array */
static inline void *to_dev(const void *h, size_t bytes)
{
    void *d = gpu->alloc(gpu, bytes);
    if (!d) { printf("FAIL: out of GPU memory (%zu bytes)\n", bytes); exit(1); }
    gpu->upload(gpu, d, h, bytes);
    return d;
}
static inline void *to_host(const void *d, size_t bytes)
{
    void *h = xmalloc(bytes ? bytes : 1);
    gpu->download(gpu, h, d, bytes);
    return h;
}

typedef struct { double abs, rel; } err;
static inline err compare(const float *got, const float *want, size_t n)
{
    double e = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= e)) e = d;                /* NaN counts as failure */
        if (fabs(want[i]) > m) m = fabs(want[i]);
    }
    return (err){e, e / (m > 0 ? m : 1)};
}
/* tol applies to e.rel when rel, else to e.abs */
static inline void report(const char *op, const char *what, err e, double tol, int rel, const char *why)
{
    int ok = (rel ? e.rel : e.abs) <= tol;
    printf("%s %-10s %-40s max abs %.3g, rel %.3g (tol %.0e %s: %s)\n", ok ? "ok  " : "FAIL", op, what, e.abs, e.rel,
           tol, rel ? "rel" : "abs", why);
    failures += !ok;
}

static inline float bf16_round(float x)            /* to the nearest bf16 (even on ties), as a float */
{
    uint32_t u;
    memcpy(&u, &x, 4);
    u = (u + 0x7FFFu + ((u >> 16) & 1)) & 0xFFFF0000u;
    memcpy(&x, &u, 4);
    return x;
}

/* bf16 bits (upper half of the float) of values already rounded to bf16, and back */
static inline uint16_t *to_bf16_bits(const float *x, size_t n)
{
    uint16_t *o = xmalloc(n * 2);
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        float r = bf16_round(x[i]);
        memcpy(&u, &r, 4);
        o[i] = (uint16_t)(u >> 16);
    }
    return o;
}
static inline float *from_bf16_bits(const uint16_t *h, size_t n)
{
    float *o = xmalloc(n * 4);
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)h[i] << 16;
        memcpy(&o[i], &u, 4);
    }
    return o;
}
#endif
