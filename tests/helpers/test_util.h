/* Shared test helpers: paths, seeded random inputs, comparisons. */
#ifndef LM_TEST_UTIL_H
#define LM_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Path of the default model (LUMEN_MODEL env or <source>/models/...). */
const char *lm_test_model_path(void);
/* <source>/tests/fixtures/<name> into a static buffer. */
const char *lm_test_fixture(const char *name);
/* Path of the built lumen CLI. */
const char *lm_test_cli(void);

/* A fresh seed per run (time + pid), printed so a failure can be replayed;
 * LUMEN_TEST_SEED fixes it. */
uint64_t lm_test_seed(void);
/* xorshift-style generator. */
typedef struct lm_test_rng {
    uint64_t s;
} lm_test_rng;
uint64_t lm_test_rng_u64(lm_test_rng *r);
float lm_test_rng_uniform(lm_test_rng *r); /* [0, 1) */
float lm_test_rng_normal(lm_test_rng *r);
void lm_test_fill_normal(lm_test_rng *r, float *x, size_t n, float scale);

/* Max |a-b| and max relative (|a-b| / max(|b|, floor)). */
double lm_test_max_abs_diff(const float *a, const float *b, size_t n);

/* Run a shell command, capture stdout+stderr (malloc'd, NUL-terminated); returns exit code. */
int lm_test_run(const char *cmd, char **output);

#endif
