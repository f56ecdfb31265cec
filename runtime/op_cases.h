/* One table of backend op cases (op, type, shape, tolerance), used by tests/test_ops.c,
 * `lumen bench --ops` (runtime/bench_ops.c) and every GPU backend's op tests. Adding a case
 * is one row in runtime/op_cases.c. Two arrays:
 *   lm_op_cases        small, odd shapes that probe edge cases (every backend's op tests)
 *   lm_op_bench_cases  the shapes of real models (SmolLM2-135M, Gemma 3 270M) at decode and
 *                      prefill sizes: what `lumen bench --ops` times; test_ops checks every
 *                      one of them against its reference too, so each timed case is tested
 *
 * Shapes per op (k, n, m as below; unused fields are 0):
 *   get_rows   table [k, n] of `type`, m ids -> [k, m] F32
 *   rms_norm   x [k, n, m]; mode 1 = with weight w [k]
 *   mul_mat    W [k, n] of `type` x x [k, m] -> [n, m]
 *   rope       x [k = head_dim, n = n_head, m = n_tok], mode LM_ROPE_*, n_rot, freq_scale,
 *              freq_factors; positions up to n_ctx
 *   kv_store   k, v [k, n_kv_head, m] -> caches [k, n_kv_head, n_ctx, n_seq] of `type`
 *   attention  q [k = head_dim, n = n_head, m = n_tok], caches of `type` with n_kv_head
 *              heads; n_seq sequences in the batch (token i in sequence i % n_seq), sequence
 *              s holding a context of n_ctx - 7 s positions (at least 1) whose last tokens
 *              are the batch; window, softcap as lm_attn_params
 *   swiglu, geglu, scale   [k, n, m]
 *   add, mul   a [k, n, m]; b broadcasts along dim i where bit i of mode is set
 *   argmax     x [k, m] (some columns with a tie for the max)
 *   copy       [k, n, m] from src_type to type
 * Tolerance: an element passes when |got - ref| <= atol + rtol * |ref|, ref computed in
 * double by a direct formula in the test. `why` says where the error comes from. */
#ifndef LM_OP_CASES_H
#define LM_OP_CASES_H

#include "common/lm_types.h"

#include <stddef.h>
#include <stdint.h>

#define LM_OP_TABLE(X)                                                                             \
    X(GET_ROWS, "get_rows")                                                                        \
    X(RMS_NORM, "rms_norm")                                                                        \
    X(MUL_MAT, "mul_mat")                                                                          \
    X(ROPE, "rope")                                                                                \
    X(KV_STORE, "kv_store")                                                                        \
    X(ATTENTION, "attention")                                                                      \
    X(SWIGLU, "swiglu")                                                                            \
    X(GEGLU, "geglu")                                                                              \
    X(ADD, "add")                                                                                  \
    X(MUL, "mul")                                                                                  \
    X(SCALE, "scale")                                                                              \
    X(ARGMAX, "argmax")                                                                            \
    X(COPY, "copy")

typedef enum lm_op_kind {
#define LM_X_OP_ENUM(name, str) LM_OP_##name,
    LM_OP_TABLE(LM_X_OP_ENUM)
#undef LM_X_OP_ENUM
        LM_OP_COUNT
} lm_op_kind;

typedef struct lm_op_case {
    lm_op_kind op;
    lm_type type;     /* weights, table, KV cache or copy destination; 0 (F32) otherwise */
    lm_type src_type; /* copy: the source type */
    int64_t k, n, m;  /* see the per-op shapes above */
    int32_t n_kv_head;
    int32_t n_ctx;
    int32_t n_seq;
    int32_t mode;  /* rope: LM_ROPE_*; add/mul: broadcast bits; rms_norm: 1 = weight */
    int32_t n_rot; /* rope */
    int32_t window;
    float softcap;
    float freq_scale;     /* rope; 0 means 1 */
    int32_t freq_factors; /* rope: 1 = pass per-pair divisors */
    double atol, rtol;
    const char *why;
} lm_op_case;

extern const lm_op_case lm_op_cases[];
extern const int lm_op_n_cases;
extern const lm_op_case lm_op_bench_cases[];
extern const int lm_op_n_bench_cases;

const char *lm_op_name(lm_op_kind op);
/* "mul_mat Q4_1 k=96 n=17 m=7 ..." into buf; returns buf. */
const char *lm_op_case_str(const lm_op_case *c, char *buf, size_t size);

#endif
