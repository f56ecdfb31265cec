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

#endif
