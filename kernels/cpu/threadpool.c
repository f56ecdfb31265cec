/* Persistent pthread pool; see threadpool.h. */
#include "threadpool.h"

#include "../../runtime/lm_internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>

/* One job: written by the caller before it publishes the job's generation. */
typedef struct {
    lm__pool_fn fn;
    void *ctx;
    int64_t n_tasks;
    int64_t chunk;
    atomic_int_fast64_t done; /* tasks finished */
} lm__pool_job;

struct lm__pool {
    int n_threads; /* including the caller */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* sleeping workers wait here for a new generation */
    atomic_int sleepers; /* changed under mu; read without it by the caller (see run) */
    int quit;            /* guarded by mu */
    uint32_t gen;        /* the caller's last generation */
    /* Jobs alternate between two slots. Work is claimed from `word` = generation << 32 |
     * next task with a compare-and-swap, so a claim succeeds only while its job is the
     * current one: a worker that wakes late finds another generation and claims nothing,
     * and nobody waits for idle workers, only for claimed work. Job g + 2 reuses g's slot
     * only after g + 1 is done, which is after every claim of g finished. */
    lm__pool_job job[2];
    _Alignas(64) atomic_uint_fast64_t word;
};

typedef struct {
    lm__pool *pool;
    int ith;
} lm__worker_arg;

/* Spin this many rounds before sleeping (workers) or yielding (the caller): ops of a
 * decode step follow each other within microseconds, a futex wake costs tens of them. */
#define LM__POOL_SPIN 4096

static inline void lm__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static inline uint32_t lm__word_gen(uint64_t w) {
    return (uint32_t)(w >> 32);
}

/* Claim and run chunks of generation g until it has none left. */
static void lm__pool_work(lm__pool *p, uint32_t g, int ith) {
    lm__pool_job *j = &p->job[g & 1];
    uint64_t w = atomic_load_explicit(&p->word, memory_order_acquire);
    for (;;) {
        if (lm__word_gen(w) != g) return;
        const int64_t b = (int64_t)(uint32_t)w, n = j->n_tasks;
        if (b >= n) return;
        const int64_t e = b + j->chunk < n ? b + j->chunk : n;
        if (!atomic_compare_exchange_weak_explicit(&p->word, &w, ((uint64_t)g << 32) | (uint64_t)e,
                                                   memory_order_acq_rel, memory_order_acquire))
            continue; /* w reloaded */
        j->fn(j->ctx, b, e, ith);
        atomic_fetch_add_explicit(&j->done, e - b, memory_order_release);
        w = atomic_load_explicit(&p->word, memory_order_acquire);
    }
}

/* Wait for a generation other than seen and return it; false when the pool quits. */
static bool lm__pool_wait(lm__pool *p, uint32_t seen, uint32_t *g) {
    for (int i = 0; i < LM__POOL_SPIN; i++) {
        *g = lm__word_gen(atomic_load_explicit(&p->word, memory_order_acquire));
        if (*g != seen) return true;
        lm__cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->sleepers, 1); /* before the check below: see lm__pool_run_chunks */
    while (!p->quit && (*g = lm__word_gen(atomic_load(&p->word))) == seen)
        pthread_cond_wait(&p->wake, &p->mu);
    atomic_fetch_sub(&p->sleepers, 1);
    const bool quit = p->quit;
    pthread_mutex_unlock(&p->mu);
    return !quit;
}

static void *lm__pool_main(void *arg) {
    lm__worker_arg a = *(lm__worker_arg *)arg;
    LM_FREE(arg);
    lm__pool *p = a.pool;
    uint32_t seen = 0, g;
    while (lm__pool_wait(p, seen, &g)) {
        lm__pool_work(p, g, a.ith);
        seen = g;
    }
    return NULL;
}

lm__pool *lm__pool_create(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    lm__pool *p = LM_CALLOC(1, sizeof *p);
    if (!p) return NULL;
    p->n_threads = 1;
    atomic_init(&p->word, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->job[0].done, 0);
    atomic_init(&p->job[1].done, 0);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->threads = LM_CALLOC((size_t)n_threads, sizeof *p->threads);
    if (!p->threads) {
        lm__pool_destroy(p);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        lm__worker_arg *a = LM_MALLOC(sizeof *a);
        if (!a) break;
        a->pool = p;
        a->ith = i;
        if (pthread_create(&p->threads[i], NULL, lm__pool_main, a) != 0) {
            LM_FREE(a);
            break; /* run with the threads we got */
        }
        p->n_threads = i + 1;
    }
    return p;
}

void lm__pool_destroy(lm__pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++) pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    LM_FREE(p->threads);
    LM_FREE(p);
}

int lm__pool_threads(const lm__pool *p) {
    return p ? p->n_threads : 1;
}

void lm__pool_run(lm__pool *p, lm__pool_fn fn, void *ctx, int64_t n_tasks) {
    lm__pool_run_chunks(p, fn, ctx, n_tasks, 4);
}

void lm__pool_run_chunks(lm__pool *p, lm__pool_fn fn, void *ctx, int64_t n_tasks, int per_thread) {
    if (n_tasks <= 0) return;
    if (!p || p->n_threads == 1 || n_tasks == 1 || n_tasks > INT32_MAX) {
        fn(ctx, 0, n_tasks, 0);
        return;
    }
    const uint32_t g = ++p->gen;
    lm__pool_job *j = &p->job[g & 1];
    const int64_t chunk = n_tasks / ((per_thread > 0 ? per_thread : 1) * (int64_t)p->n_threads);
    j->fn = fn;
    j->ctx = ctx;
    j->n_tasks = n_tasks;
    j->chunk = chunk > 0 ? chunk : 1;
    atomic_store_explicit(&j->done, 0, memory_order_relaxed);
    /* Workers past their spin sleep: wake them. Without the lock on every region (decode
     * runs ~150 a token): the store and a worker's count-then-check are sequentially
     * consistent, so either this load sees the worker counted (and the broadcast, under the
     * lock, finds it waiting or about to recheck) or the worker's check sees the new word. */
    atomic_store(&p->word, (uint64_t)g << 32);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }

    lm__pool_work(p, g, 0);

    /* chunks claimed by workers may still run; yield when one of them is not scheduled */
    for (int i = 0; atomic_load_explicit(&j->done, memory_order_acquire) < n_tasks; i++) {
        if (i < LM__POOL_SPIN)
            lm__cpu_relax();
        else
            sched_yield();
    }
}
