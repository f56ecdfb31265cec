/* A small persistent thread pool: threads are created once; each lm__pool_run wakes them
 * with one condvar broadcast, they take chunks of [0, n_tasks) from an atomic counter,
 * and the calling thread works too. No thread is created per op. */
#ifndef LM_THREADPOOL_H
#define LM_THREADPOOL_H

#include <stdint.h>

typedef struct lm__pool lm__pool;

/* Work on tasks [begin, end); ith in [0, n_threads) names the thread (for scratch). */
typedef void (*lm__pool_fn)(void *ctx, int64_t begin, int64_t end, int ith);

/* n_threads counts the caller: 1 means no worker threads. NULL on failure. */
lm__pool *lm__pool_create(int n_threads);
void lm__pool_destroy(lm__pool *pool);
int lm__pool_threads(const lm__pool *pool);
/* Run fn over [0, n_tasks) and return when all of it is done. Not reentrant: one caller
 * at a time (a backend is used from one thread). */
void lm__pool_run(lm__pool *pool, lm__pool_fn fn, void *ctx, int64_t n_tasks);
/* The same in about `per_thread` chunks per thread (lm__pool_run: 4). Finer balances better;
 * coarser keeps a thread's tasks contiguous (decode prefetches the next rows it will read). */
void lm__pool_run_chunks(lm__pool *pool, lm__pool_fn fn, void *ctx, int64_t n_tasks,
                         int per_thread);

#endif
