/* Helpers for the suites that run real models: the Gemma 3 path, a CPU/Vulkan pair of
 * one model, greedy picks and a teacher-forced comparison of two contexts. They assert
 * and skip through Criterion, so only the test executables link them (not the fuzzers). */
#ifndef LM_MODEL_UTIL_H
#define LM_MODEL_UTIL_H

#include "lumen.h"

#include <stdint.h>

/* Gemma 3 270M Q4_K_M: LUMEN_GEMMA3_MODEL or <source>/models/gemma-3-270m-q4_k_m.gguf. */
const char *lm_test_gemma3_path(void);

/* Loads path (2 threads) on the CPU backend, at its plain-C level unless LUMEN_CPU_LEVEL
 * is set (the oracle: its SIMD levels equal it bit for bit), and on the Vulkan backend.
 * Skips the test when the file (called `what` in the message) or a Vulkan device is
 * missing. */
void lm_test_load_cpu_and_vulkan(const char *path, const char *what, lm_model **cpu, lm_model **vk);

/* Index of the largest element (the first of equals). */
int32_t lm_test_argmax(const float *x, int32_t n);
/* x[top] minus the largest other element: how far the greedy pick leads. */
float lm_test_margin(const float *x, int32_t n, int32_t top);

typedef struct lm_test_forced {
    double max_diff; /* max |logit difference| over the steps (INFINITY for a NaN) */
    int same;        /* steps where the other context's top-1 is the reference's */
    int decided;     /* steps where the reference's top-1 leads by more than 2 tol */
} lm_test_forced;

/* Teacher-forced comparison: decodes toks[0..n) in ref and other, then n_gen steps that
 * feed ref's greedy token to both, so every step compares the same history. Where ref's
 * top-1 leads by more than 2 tol, other's top-1 is expected (cr_expect) to be the same;
 * `what` names the pair in that message. */
lm_test_forced lm_test_teacher_forced(lm_context *ref, lm_context *other, int32_t n_vocab,
                                      const lm_token *toks, int32_t n, int n_gen, double tol,
                                      const char *what);

#endif
