/* Harness of the device-op suites (test_vulkan_ops, test_cuda_ops): tensors in a backend's
 * buffers, random and quantized inputs, and the elementwise comparison against the CPU
 * backend. Asserts through Criterion, so only the test executables link it. */
#ifndef LM_OP_UTIL_H
#define LM_OP_UTIL_H

#include "backend.h"
#include "helpers/test_util.h"
#include "op_cases.h"

#include <stddef.h>
#include <stdint.h>

/* A tensor in a buffer of its own on be. */
typedef struct lm_test_dt {
    lm_backend *be;
    lm_buffer *buf;
    size_t size;
    lm_tensor t;
} lm_test_dt;

/* A buffer of size bytes holding data (zeros when data is NULL). */
lm_test_dt lm_test_dt_buffer(lm_backend *be, size_t size, const void *data);
/* A contiguous tensor of type and shape filled from data (zeros when NULL). */
lm_test_dt lm_test_dt_new(lm_backend *be, lm_type type, int64_t ne0, int64_t ne1, int64_t ne2,
                          int64_t ne3, const void *data);
/* The whole buffer, downloaded into malloc'd memory. */
void *lm_test_dt_read(const lm_test_dt *d);
void lm_test_dt_free(lm_test_dt *d);

/* n normal floats times scale, malloc'd. */
float *lm_test_randn(lm_test_rng *r, size_t n, float scale);
/* rows x n floats -> rows of `type` (reference quantizer), malloc'd; NULL if it has none. */
void *lm_test_encode(lm_type type, const float *x, int64_t n, int64_t rows);
/* "<case> [variant]" in a static buffer (the next call overwrites it). */
const char *lm_test_case_desc(const lm_op_case *c, const char *variant);
/* Every element within atol + rtol |cpu| (NaN only against NaN); atol = rtol = 0 is
 * bit-equality up to the sign of zero. Expects (cr_expect) rather than asserts, so one
 * case's failure leaves the others running; LUMEN_TEST_VERBOSE=1 prints each comparison. */
void lm_test_compare(const char *what, const float *cpu, const float *gpu, size_t n, double atol,
                     double rtol);
/* Asserts s is LM_OK, naming what failed and the library's message. */
void lm_test_expect_ok(lm_status s, const char *what);

/* Both ops are byte-exact on every backend: a case run on cpu and on dev must give the
 * same bytes (kv_store: K and V caches after storing T random rows into shuffled slots of
 * a cache filled with 7.0; copy: dst of a random src). */
void lm_test_check_kv_store(lm_backend *cpu, lm_backend *dev, const lm_op_case *c, lm_test_rng *r);
void lm_test_check_copy(lm_backend *cpu, lm_backend *dev, const lm_op_case *c, lm_test_rng *r);

#endif
