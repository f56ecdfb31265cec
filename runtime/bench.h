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

#endif
