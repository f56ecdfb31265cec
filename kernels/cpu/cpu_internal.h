/* Shared by the CPU backend's files: the buffer and context structs, tensor access and
 * validation helpers, and the op entry points the vtable in cpu_backend.c points at. */
#ifndef LM_CPU_INTERNAL_H
#define LM_CPU_INTERNAL_H

#include "../../runtime/backend.h"
#include "../../runtime/lm_internal.h"
#include "threadpool.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A CPU buffer: aligned host memory we own, or host memory we wrap (mmapped weights). */
struct lm_buffer {
    void *data; /* LM__CPU_ALIGN-aligned when owned */
    void *raw;  /* what LM_MALLOC returned; NULL when wrapped */
    size_t size;
    int readonly; /* wrapped memory: never written by upload */
};

#define LM__CPU_ALIGN 64

typedef struct lm__cpu {
    lm__pool *pool;
    int n_threads;
    float *scratch;        /* n_threads slices of scratch_stride floats */
    size_t scratch_stride; /* floats per thread, a multiple of 16 (one cache line) */
    void *act;             /* mul_mat's quantized activations (grows, never shrinks) */
    size_t act_size;
    char name[160];
} lm__cpu;

static inline lm__cpu *lm__cpu_ctx(lm_backend *be) {
    return (lm__cpu *)be->ctx;
}

/* Make every thread's scratch slice at least n floats (grows, never shrinks, so the
 * steady state allocates nothing). */
lm_status lm__cpu_reserve(lm__cpu *c, size_t n);
static inline float *lm__cpu_scratch(lm__cpu *c, int ith) {
    return c->scratch + (size_t)ith * c->scratch_stride;
}

/* Dot product in float with 16 independent partial sums: the fixed order makes results
 * identical for any thread count, and lets the compiler vectorise without -ffast-math. */
static inline float lm__cpu_dot(const float *restrict a, const float *restrict b, int64_t n) {
    float acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += a[i + j] * b[i + j];
    for (int j = 0; i < n; i++, j++) acc[j] += a[i] * b[i];
    for (int w = 8; w >= 1; w /= 2)
        for (int j = 0; j < w; j++) acc[j] += acc[j + w];
    return acc[0];
}

/* ---- tensor access ---- */

static inline char *lm__cpu_data(const lm_tensor *t) {
    return (char *)t->buf->data + t->offset;
}
/* Start of row (i1, i2, i3): rows are contiguous runs of ne[0] elements. */
static inline char *lm__cpu_row(const lm_tensor *t, int64_t i1, int64_t i2, int64_t i3) {
    return lm__cpu_data(t) + (size_t)i1 * t->nb[1] + (size_t)i2 * t->nb[2] + (size_t)i3 * t->nb[3];
}
static inline int64_t lm__cpu_nrows(const lm_tensor *t) {
    return t->ne[1] * t->ne[2] * t->ne[3];
}
/* Row r of the flattened [ne1 * ne2 * ne3] rows. */
static inline char *lm__cpu_row_flat(const lm_tensor *t, int64_t r) {
    int64_t i1 = r % t->ne[1], i2 = (r / t->ne[1]) % t->ne[2], i3 = r / (t->ne[1] * t->ne[2]);
    return lm__cpu_row(t, i1, i2, i3);
}

/* Validate a tensor argument of op: non-NULL with a buffer, a known type (type < 0: any;
 * else exactly that type), ne >= 1, rows contiguous (nb[0] = element/block size), and
 * the view inside its buffer. On failure: LM_ERR_INVALID_ARG naming op and arg. */
lm_status lm__cpu_check(const char *op, const char *arg, const lm_tensor *t, int type);
/* a and b have the same ne[0..3], else LM_ERR_INVALID_ARG. */
lm_status lm__cpu_check_same_shape(const char *op, const char *an, const lm_tensor *a,
                                   const char *bn, const lm_tensor *b);

/* ---- quantized dot products (cpu_vec_dot.c) ---- */

/* Activations for the 32-element weight types: 16-bit with a float scale d = amax / 32767,
 * and s = d * sum(qs) for the types with a min (q4_1, q5_1). */
typedef struct {
    float d;
    float s;
    int16_t qs[32];
} lm__q16a;

/* Activations for the k-quants: 256 16-bit values, bsums[i] = sum of qs[16 i .. 16 i + 16) */
typedef struct {
    float d;
    int32_t bsums[16];
    int16_t qs[256];
} lm__q16k;

/* n (a multiple of 32, resp. 256) floats into n / 32 (n / 256) blocks. */
void lm__quantize_q16a(const float *restrict x, lm__q16a *restrict y, int64_t n);
void lm__quantize_q16k(const float *restrict x, lm__q16k *restrict y, int64_t n);

/* out[c] = dot(weight row of nblocks blocks, activation column c) for c < nc <=
 * LM__DOT_COLS, the columns stride bytes apart. A column's result does not depend on nc. */
#define LM__DOT_COLS 8
typedef void (*lm__vec_dot_fn)(const void *w, const void *act, size_t stride, int nc,
                               int64_t nblocks, float *out);

typedef struct {
    lm__vec_dot_fn fn;     /* the fastest this CPU runs (AVX2 where it has it) */
    lm__vec_dot_fn scalar; /* plain C: same results, bit for bit (tests compare) */
    int act_blck;          /* activation elements per block: 32 (lm__q16a) or 256 (lm__q16k) */
    size_t act_size;       /* bytes per activation block */
} lm__vec_dot;

/* The integer dot product for a quantized weight type; false for float types. */
bool lm__cpu_vec_dot_get(lm_type type, lm__vec_dot *out);

/* ---- ops (cpu_ops.c, cpu_matmul.c, cpu_attention.c) ---- */

lm_status lm__cpu_get_rows(lm_backend *be, const lm_tensor *src, const lm_tensor *ids,
                           lm_tensor *dst);
lm_status lm__cpu_rms_norm(lm_backend *be, const lm_tensor *x, const lm_tensor *w, float eps,
                           lm_tensor *dst);
lm_status lm__cpu_mul_mat(lm_backend *be, const lm_tensor *w, const lm_tensor *x, lm_tensor *dst);
lm_status lm__cpu_rope(lm_backend *be, lm_tensor *x, const lm_tensor *pos, const lm_rope_params *p);
lm_status lm__cpu_kv_store(lm_backend *be, const lm_tensor *k, const lm_tensor *v,
                           lm_tensor *k_cache, lm_tensor *v_cache, const lm_tensor *pos,
                           const lm_tensor *seq);
lm_status lm__cpu_attention(lm_backend *be, const lm_tensor *q, const lm_tensor *k_cache,
                            const lm_tensor *v_cache, const lm_tensor *pos, const lm_tensor *seq,
                            const lm_attn_params *p, lm_tensor *dst);
lm_status lm__cpu_swiglu(lm_backend *be, const lm_tensor *gate, const lm_tensor *up,
                         lm_tensor *dst);
lm_status lm__cpu_geglu(lm_backend *be, const lm_tensor *gate, const lm_tensor *up, lm_tensor *dst);
lm_status lm__cpu_add(lm_backend *be, const lm_tensor *a, const lm_tensor *b, lm_tensor *dst);
lm_status lm__cpu_mul(lm_backend *be, const lm_tensor *a, const lm_tensor *b, lm_tensor *dst);
lm_status lm__cpu_scale(lm_backend *be, const lm_tensor *x, float s, lm_tensor *dst);
lm_status lm__cpu_argmax(lm_backend *be, const lm_tensor *x, lm_tensor *dst);
lm_status lm__cpu_copy(lm_backend *be, const lm_tensor *src, lm_tensor *dst);

#endif
