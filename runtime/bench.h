/* Internal helpers shared by the bench probes (bench.c) and op timing (bench_ops.c). */
#ifndef LM_BENCH_H
#define LM_BENCH_H

#include "lumen.h"

#include <stddef.h>
#include <stdint.h>

/* Size of the largest CPU cache in bytes (32 MiB when unknown). */
size_t lm__bench_llc_bytes(void);
/* n, or the number of online cores when n <= 0. */
int32_t lm__bench_threads(int32_t n);

/* The benches' random inputs: xorshift64, and floats uniform in [-1, 1) from it */
typedef struct {
    uint64_t s;
} lm__brng;
static inline uint64_t lm__brng_u64(lm__brng *r) {
    r->s ^= r->s << 13, r->s ^= r->s >> 7, r->s ^= r->s << 17;
    return r->s;
}
static inline float lm__brng_f(lm__brng *r) {
    return (float)((lm__brng_u64(r) >> 40) * (2.0 / 16777216.0) - 1.0);
}

/* The decode step roof's copy of m (bench_roof.c; exposed for tests): every layer reads the
 * tensors of the first layer with the same types, shapes and layouts, the head its first
 * head_rows rows. *kinds distinct layers, *layer_bytes their tensors' bytes; a->layers is
 * the caller's to free. */
struct lm_model;
lm_status lm__roof_alias(const struct lm_model *m, int64_t head_rows, struct lm_model *a,
                         int32_t *kinds, uint64_t *layer_bytes);

#endif
