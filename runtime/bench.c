/* Machine probes for `lumen bench`: main-memory read bandwidth (STREAM-like) and peak
 * FMA throughput, the two ceilings of the roofline every figure is compared with; and the
 * model's backend and device names. */
#include "bench.h"
#include "model.h"

#include "lm_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LM__X86 1
#endif

const char *lm_model_backend_name(const lm_model *m) {
    return m && m->be ? m->be->ops->name : "none";
}

const char *lm_model_device_name(const lm_model *m) {
    if (!m || !m->be || !m->be->ops->device_name) return "unknown";
    const char *s = m->be->ops->device_name(m->be);
    return s ? s : "unknown";
}

/* ---- cache size ---- */

/* Largest cache level's size in bytes, from sysfs; sysconf only when sysfs has nothing
 * (inside VMs it may report the host's total L3). */
size_t lm__bench_llc_bytes(void) {
    size_t best = 0;
    for (int i = 0; i < 8; i++) {
        char path[96], buf[32];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fgets(buf, sizeof buf, f)) {
            char *end;
            unsigned long long v = strtoull(buf, &end, 10);
            if (*end == 'K') v <<= 10;
            if (*end == 'M') v <<= 20;
            if (v > best) best = (size_t)v;
        }
        fclose(f);
    }
#ifdef _SC_LEVEL3_CACHE_SIZE
    long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (best == 0 && l3 > 0) best = (size_t)l3;
#endif
    return best ? best : (size_t)32 << 20;
}

int32_t lm__bench_threads(int32_t n) {
    if (n > 0) return n;
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    return c > 0 ? (int32_t)c : 1;
}

/* ---- a team of threads that run one function per pass between two barriers ---- */

typedef struct lm__team lm__team;
typedef void (*lm__team_fn)(lm__team *tm, int ith, int pass);

struct lm__team {
    pthread_barrier_t bar;
    int n, passes;
    lm__team_fn fn;
    void *ctx;
    double *t0, *t1; /* per thread: the start and end of its share of the current pass */
};

typedef struct {
    lm__team *tm;
    int ith;
} lm__team_arg;

static void *lm__team_main(void *p) {
    lm__team_arg *a = p;
    for (int i = 0; i < a->tm->passes; i++) {
        pthread_barrier_wait(&a->tm->bar);
        a->tm->t0[a->ith] = lm__time_ms();
        a->tm->fn(a->tm, a->ith, i);
        a->tm->t1[a->ith] = lm__time_ms();
        pthread_barrier_wait(&a->tm->bar);
    }
    return NULL;
}

/* Run fn on n threads for `passes` passes; times[i] gets the wall time of pass i, from the
 * first thread's start to the last one's end, as the threads saw them (the calling thread
 * may be descheduled meanwhile: with more threads than cores its own clock once reported
 * a pass done in no time). */
static lm_status lm__team_run(int n, int passes, lm__team_fn fn, void *ctx, double *times) {
    lm__team tm = {.n = n, .passes = passes, .fn = fn, .ctx = ctx};
    pthread_t *th = LM_CALLOC((size_t)n, sizeof *th);
    lm__team_arg *args = LM_CALLOC((size_t)n, sizeof *args);
    tm.t0 = LM_CALLOC((size_t)n, sizeof *tm.t0);
    tm.t1 = LM_CALLOC((size_t)n, sizeof *tm.t1);
    if (!th || !args || !tm.t0 || !tm.t1 ||
        pthread_barrier_init(&tm.bar, NULL, (unsigned)n + 1) != 0) {
        LM_FREE(th), LM_FREE(args), LM_FREE(tm.t0), LM_FREE(tm.t1);
        return lm__error(LM_ERR_NOMEM, "bench: cannot set up %d probe threads", n);
    }
    int started = 0;
    for (; started < n; started++) {
        args[started] = (lm__team_arg){&tm, started};
        if (pthread_create(&th[started], NULL, lm__team_main, &args[started]) != 0) break;
    }
    if (started < n) { /* run the passes with the threads we have, then report the failure */
        tm.n = started;
        pthread_barrier_destroy(&tm.bar);
        pthread_barrier_init(&tm.bar, NULL, (unsigned)started + 1);
    }
    for (int i = 0; i < passes; i++) {
        pthread_barrier_wait(&tm.bar);
        pthread_barrier_wait(&tm.bar);
        double first = tm.t0[0], last = tm.t1[0];
        for (int k = 1; k < tm.n; k++) {
            first = tm.t0[k] < first ? tm.t0[k] : first;
            last = tm.t1[k] > last ? tm.t1[k] : last;
        }
        times[i] = (last - first) * 1e-3;
    }
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&tm.bar);
    LM_FREE(th), LM_FREE(args), LM_FREE(tm.t0), LM_FREE(tm.t1);
    if (started < n) return lm__error(LM_ERR_NOMEM, "bench: cannot start probe thread %d", started);
    return LM_OK;
}

/* ---- memory bandwidth ---- */

typedef struct {
    uint64_t *buf;
    size_t n_words;
    uint64_t sink[64];
} lm__bw;

/* Four independent sums so the loads are the limit, not the adds. */
#define LM__SUM_BODY                                                                               \
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                                       \
    size_t i = 0;                                                                                  \
    for (; i + 4 <= n; i += 4) s0 += p[i], s1 += p[i + 1], s2 += p[i + 2], s3 += p[i + 3];         \
    for (; i < n; i++) s0 += p[i];                                                                 \
    return s0 + s1 + s2 + s3;

static uint64_t lm__sum_words(const uint64_t *p, size_t n) {
    LM__SUM_BODY
}
#ifdef LM__X86
__attribute__((target("avx2"))) static uint64_t lm__sum_words_avx2(const uint64_t *p, size_t n) {
    LM__SUM_BODY
}
#endif

static void lm__bw_pass(lm__team *tm, int ith, int pass) {
    lm__bw *b = tm->ctx;
    size_t per = (b->n_words / (size_t)tm->n + 7) & ~(size_t)7;
    size_t i0 = per * (size_t)ith, i1 = i0 + per > b->n_words ? b->n_words : i0 + per;
    if (i0 >= i1) return;
    if (pass == 0) { /* first touch by the reader (pages land near it) */
        for (size_t i = i0; i < i1; i++) b->buf[i] = i;
        return;
    }
    uint64_t s;
#ifdef LM__X86
    if (__builtin_cpu_supports("avx2"))
        s = lm__sum_words_avx2(b->buf + i0, i1 - i0);
    else
#endif
        s = lm__sum_words(b->buf + i0, i1 - i0);
    b->sink[ith % 64] += s;
}

lm_status lm_bench_mem_bandwidth(int32_t n_threads, size_t *bytes_io, double *bytes_per_s) {
    if (!bytes_per_s || !bytes_io)
        return lm__error(LM_ERR_INVALID_ARG, "lm_bench_mem_bandwidth: NULL argument");
    size_t bytes = *bytes_io;
    *bytes_per_s = 0;
    if (n_threads < 0 || n_threads > 4096)
        return lm__error(LM_ERR_INVALID_ARG, "lm_bench_mem_bandwidth: n_threads = %d", n_threads);
    n_threads = lm__bench_threads(n_threads);
    if (bytes == 0) {
        bytes = lm__bench_llc_bytes() * 8;
        if (bytes < (size_t)256 << 20) bytes = (size_t)256 << 20;
    }
    if (bytes < 4096 * (size_t)n_threads)
        return lm__error(LM_ERR_INVALID_ARG, "lm_bench_mem_bandwidth: %zu bytes is too small",
                         bytes);
    *bytes_io = bytes;
    lm__bw b = {.n_words = bytes / 8};
    /* in huge pages where the CPU backend keeps its weights in them: the same page regime */
    size_t huge_len = 0;
    b.buf = lm__huge_available() ? lm__huge_alloc(b.n_words * 8, &huge_len) : NULL;
    if (!b.buf) b.buf = LM_MALLOC(b.n_words * 8);
    if (!b.buf)
        return lm__error(LM_ERR_NOMEM, "bench: cannot allocate the %zu-byte probe buffer", bytes);
    enum { PASSES = 1 + 6 };
    double t[PASSES];
    lm_status s = lm__team_run(n_threads, PASSES, lm__bw_pass, &b, t);
    if (huge_len)
        lm__huge_free(b.buf, huge_len);
    else
        LM_FREE(b.buf);
    LM_TRY(s);
    double best = t[1];
    for (int i = 2; i < PASSES; i++) best = t[i] < best ? t[i] : best;
    *bytes_per_s = best > 0 ? (double)(b.n_words * 8) / best : 0;
    return LM_OK;
}

/* ---- peak FMA rate ---- */

enum { LM__CHAINS = 12 }; /* > latency x ports (4 x 2) independent accumulators */

typedef struct {
    int64_t iters;
    int isa; /* 3 avx512f, 2 avx2+fma, 1 sse2, 0 scalar */
    float sink[64];
} lm__fma;

#ifdef LM__X86
__attribute__((target("avx512f"))) static float lm__fma_avx512(int64_t iters) {
    __m512 acc[LM__CHAINS];
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-6f);
    for (int c = 0; c < LM__CHAINS; c++) acc[c] = _mm512_set1_ps((float)c);
    for (int64_t i = 0; i < iters; i++)
        for (int c = 0; c < LM__CHAINS; c++) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
    __m512 s = acc[0];
    for (int c = 1; c < LM__CHAINS; c++) s = _mm512_add_ps(s, acc[c]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float lm__fma_avx2(int64_t iters) {
    __m256 acc[LM__CHAINS];
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-6f);
    for (int c = 0; c < LM__CHAINS; c++) acc[c] = _mm256_set1_ps((float)c);
    for (int64_t i = 0; i < iters; i++)
        for (int c = 0; c < LM__CHAINS; c++) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
    __m256 s = acc[0];
    for (int c = 1; c < LM__CHAINS; c++) s = _mm256_add_ps(s, acc[c]);
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[7];
}

static float lm__fma_sse2(int64_t iters) { /* multiply then add: 2 flops per lane */
    __m128 acc[LM__CHAINS];
    const __m128 a = _mm_set1_ps(0.999999f), b = _mm_set1_ps(1e-6f);
    for (int c = 0; c < LM__CHAINS; c++) acc[c] = _mm_set1_ps((float)c);
    for (int64_t i = 0; i < iters; i++)
        for (int c = 0; c < LM__CHAINS; c++) acc[c] = _mm_add_ps(_mm_mul_ps(acc[c], a), b);
    __m128 s = acc[0];
    for (int c = 1; c < LM__CHAINS; c++) s = _mm_add_ps(s, acc[c]);
    float out[4];
    _mm_storeu_ps(out, s);
    return out[0] + out[3];
}
#endif

static float lm__fma_scalar(int64_t iters) {
    float acc[LM__CHAINS];
    for (int c = 0; c < LM__CHAINS; c++) acc[c] = (float)c;
    for (int64_t i = 0; i < iters; i++)
        for (int c = 0; c < LM__CHAINS; c++) acc[c] = acc[c] * 0.999999f + 1e-6f;
    float s = 0;
    for (int c = 0; c < LM__CHAINS; c++) s += acc[c];
    return s;
}

static const int lm__isa_lanes[4] = {1, 4, 8, 16};
static const char *const lm__isa_names[4] = {"scalar", "sse2", "avx2+fma", "avx512f"};

static void lm__fma_pass(lm__team *tm, int ith, int pass) {
    (void)pass;
    lm__fma *f = tm->ctx;
    float r;
    switch (f->isa) {
#ifdef LM__X86
    case 3:
        r = lm__fma_avx512(f->iters);
        break;
    case 2:
        r = lm__fma_avx2(f->iters);
        break;
    case 1:
        r = lm__fma_sse2(f->iters);
        break;
#endif
    default:
        r = lm__fma_scalar(f->iters);
        break;
    }
    f->sink[ith % 64] += r;
}

lm_status lm_bench_flops_peak(int32_t n_threads, double *flops_per_s, const char **isa) {
    if (!flops_per_s) return lm__error(LM_ERR_INVALID_ARG, "lm_bench_flops_peak: out is NULL");
    *flops_per_s = 0;
    if (n_threads < 0 || n_threads > 4096)
        return lm__error(LM_ERR_INVALID_ARG, "lm_bench_flops_peak: n_threads = %d", n_threads);
    n_threads = lm__bench_threads(n_threads);
    lm__fma f = {.iters = 1 << 24, .isa = 0};
#ifdef LM__X86
    f.isa = 1;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) f.isa = 2;
    if (__builtin_cpu_supports("avx512f")) f.isa = 3;
#endif
    if (f.isa < 2) f.iters >>= 2; /* slower units: keep the probe short */
    enum { PASSES = 4 };
    double t[PASSES];
    LM_TRY(lm__team_run(n_threads, PASSES, lm__fma_pass, &f, t));
    double best = t[1]; /* pass 0 warms the clocks up */
    for (int i = 2; i < PASSES; i++) best = t[i] < best ? t[i] : best;
    double flops = 2.0 * LM__CHAINS * lm__isa_lanes[f.isa] * (double)f.iters * n_threads;
    *flops_per_s = best > 0 ? flops / best : 0;
    if (isa) *isa = lm__isa_names[f.isa];
    return LM_OK;
}
