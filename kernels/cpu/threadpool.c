/* Persistent pthread pool; see threadpool.h. */
#include "threadpool.h"

#include "../../runtime/lm_internal.h"

#include <pthread.h>
#include <stdatomic.h>

struct lm__pool {
    int n_threads; /* including the caller */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* workers wait here for a new generation */
    pthread_cond_t done; /* the caller waits here for pending == 0 */
    uint64_t generation; /* bumped per job; guarded by mu */
    int pending;         /* workers still on the current job; guarded by mu */
    int quit;

    /* the current job: written before the broadcast, read-only during it */
    lm__pool_fn fn;
    void *ctx;
    int64_t n_tasks;
    int64_t chunk;
    atomic_int_fast64_t next; /* first task not yet handed out */
};

typedef struct {
    lm__pool *pool;
    int ith;
} lm__worker_arg;

/* Take chunks until the job is exhausted. */
static void lm__pool_work(lm__pool *p, int ith) {
    for (;;) {
        int64_t b = atomic_fetch_add(&p->next, p->chunk);
        if (b >= p->n_tasks) return;
        int64_t e = b + p->chunk < p->n_tasks ? b + p->chunk : p->n_tasks;
        p->fn(p->ctx, b, e, ith);
    }
}

static void *lm__pool_main(void *arg) {
    lm__worker_arg a = *(lm__worker_arg *)arg;
    LM_FREE(arg);
    lm__pool *p = a.pool;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->generation == seen) pthread_cond_wait(&p->wake, &p->mu);
        if (p->quit) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        lm__pool_work(p, a.ith);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

lm__pool *lm__pool_create(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    lm__pool *p = LM_CALLOC(1, sizeof *p);
    if (!p) return NULL;
    p->n_threads = 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
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
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    LM_FREE(p->threads);
    LM_FREE(p);
}

int lm__pool_threads(const lm__pool *p) {
    return p ? p->n_threads : 1;
}

void lm__pool_run(lm__pool *p, lm__pool_fn fn, void *ctx, int64_t n_tasks) {
    if (n_tasks <= 0) return;
    if (!p || p->n_threads == 1 || n_tasks == 1) {
        fn(ctx, 0, n_tasks, 0);
        return;
    }
    /* ~4 chunks per thread: balances uneven rows without much counter traffic */
    int64_t chunk = n_tasks / (4 * (int64_t)p->n_threads);
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    p->chunk = chunk > 0 ? chunk : 1;
    atomic_store(&p->next, 0);
    pthread_mutex_lock(&p->mu);
    p->pending = p->n_threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);

    lm__pool_work(p, 0);

    pthread_mutex_lock(&p->mu);
    while (p->pending > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
