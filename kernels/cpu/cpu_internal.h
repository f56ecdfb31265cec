/* Shared by the CPU backend's files: the buffer and context structs, tensor access and
 * validation helpers, and the op entry points the vtable in cpu_backend.c points at. */
#ifndef LM_CPU_INTERNAL_H
#define LM_CPU_INTERNAL_H

#include "../../runtime/backend.h"
#include "../../runtime/lm_internal.h"
#include "threadpool.h"
#include "../common/lm_quant_blocks.h"

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A CPU buffer: aligned host memory we own, host memory we wrap (mmapped weights), or
 * wrapped memory copied into huge pages (weights, see cpu_backend.c). */
struct lm_buffer {
    void *data; /* LM__CPU_ALIGN-aligned when owned */
    void *raw;  /* what LM_MALLOC returned; NULL when wrapped */
    size_t size;
    int readonly;    /* wrapped memory: never written by upload */
    size_t huge_len; /* data is an lm__huge_alloc mapping of this length; 0 otherwise */
};

#define LM__CPU_ALIGN 64

typedef struct lm__cpu {
    lm__pool *pool;
    int n_threads;
    float *scratch;        /* n_threads slices of scratch_stride floats */
    size_t scratch_stride; /* floats per thread, a multiple of 16 (one cache line) */
    void *act;             /* mul_mat's quantized activations (grows, never shrinks) */
    size_t act_size;
    float *attn_part; /* decode attention's per-chunk states (grows, never shrinks) */
    size_t attn_part_size;
    /* rope's cos/sin table of the last call: [n_tok][n_rot / 2] pairs, valid for rope_key
     * and these positions (every layer of a forward pass rotates the same positions) */
    float *rope_cs;
    int32_t *rope_pos;
    float *rope_ff;  /* a copy of the key's freq_factors (their memory may be reused) */
    size_t rope_cap; /* tokens x pairs the table holds */
    int64_t rope_ntok;
    lm_rope_params rope_key;
    bool rope_valid;
    const struct lm__cpu_kernels_s *kern; /* the level's kernels */
    char model[128];                      /* CPU model name */
    char name[192];                       /* model, threads, level */
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
/* The same, but t may be in the interleaved weight layout (mul_mat's W, get_rows' src). */
lm_status lm__cpu_check_w(const char *op, const char *arg, const lm_tensor *t, int type);
/* a and b have the same ne[0..3], else LM_ERR_INVALID_ARG. */
lm_status lm__cpu_check_same_shape(const char *op, const char *an, const lm_tensor *a,
                                   const char *bn, const lm_tensor *b);

/* ---- kernels: plain C (cpu_dot_scalar.c, the oracle) and SIMD (cpu_dot_avx2.c), chosen
 * per backend by dispatch level (cpu_dispatch.c) ---- */

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

/* Instruction-set levels, lowest first. A backend uses one (the best this CPU and build
 * support, or the one LUMEN_CPU_LEVEL / lm__cpu_set_level asks for). */
typedef enum {
    LM__CPU_SCALAR, /* plain C: always there, the oracle */
    LM__CPU_AVX2,   /* x86-64 AVX2 + F16C */
    LM__CPU_AVX512, /* x86-64 AVX-512 F/BW/VL + VNNI: the AVX2 kernels with vpdpwssd */
    LM__CPU_NEON,   /* AArch64 Advanced SIMD (always there on AArch64); never on x86 */
    LM__CPU_LEVEL_COUNT
} lm__cpu_level;

/* Quantized weight rows against quantized activation columns, several of each per call so
 * that a weight block is unpacked once for all columns and the float work runs with one
 * output per SIMD lane: out[c * out_stride + r] = dot(row r, column c) for r < nr <=
 * LM__MR rows (w_stride bytes apart, a row's blocks w_block bytes apart: the type's block
 * size in rows, LM__MR times it in the interleaved layout) and c < nc <= LM__NC columns
 * (act_stride bytes apart), nb blocks each. Every result is the float sum, in block order, of one
 * term per block computed from the block's exact integer dot product (see cpu_dot_scalar.c): it
 * depends only on its row and column, never on nr, nc, the thread count or the level. */
#define LM__MR 8
#define LM__NC 128
typedef void (*lm__qdot_fn)(const void *w, size_t w_stride, size_t w_block, int nr, const void *act,
                            size_t act_stride, int nc, int64_t nb, float *out, size_t out_stride);

/* Float dot products in lm__cpu_dot's order (16 partial sums, then a fixed tree); the
 * half-precision inputs are converted exactly, so they equal lm__cpu_dot on floats. */
typedef float (*lm__fdot_fn)(const void *w, const float *x, int64_t n);

/* ---- attention's online softmax, shared by cpu_attention.c and the kernels ---- */

#define LM__ATTN_PT 16 /* cache positions per tile, from multiples of 16: K and V rows in L1 */

/* The running state of one (token, head): max m, sum l, output acc. */
typedef struct {
    float m, l;
    float *acc;
} lm__attn_state;

/* e^x's constants: the clamp (under it the result is 0, below FLT_MIN), the reduction by
 * ln 2 = hi + lo, the degree-7 Taylor coefficients from x^7 / 7! down; every level uses
 * these, operation for operation, and so does the Vulkan kernel (lm_common.glsl) */
#define LM__EXP_MIN  (-87.33f)
#define LM__EXP_L2E  1.44269504088896341f
#define LM__EXP_BIG  12582912.0f /* 1.5 x 2^23 */
#define LM__EXP_LNHI 0.693359375f
#define LM__EXP_LNLO (-2.12194440e-4f)
#define LM__EXP_POLY                                                                               \
    { 1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f }

/* e^x for x <= 0, within 2 units of its last place (1.7 at worst, all floats): Cody-Waite
 * reduction by ln 2, a degree-7 Taylor polynomial on |r| <= ln2 / 2, 2^n by the exponent
 * bits; below LM__EXP_MIN 0, a NaN stays NaN (through p). Branch-free float operations, so a
 * vector form of the same operations gives the same bits lane by lane. */
static inline float lm__exp_neg(float x) {
    static const float poly[8] = LM__EXP_POLY;
    const float xc = x < LM__EXP_MIN ? LM__EXP_MIN : x;
    /* t's low mantissa bits hold n = round(xc / ln 2) (LM__EXP_BIG fixes the exponent) */
    const float t = xc * LM__EXP_L2E + LM__EXP_BIG;
    const float n = t - LM__EXP_BIG;
    const float r = (xc - n * LM__EXP_LNHI) - n * LM__EXP_LNLO;
    float p = poly[0];
    for (int i = 1; i < 8; i++) p = p * r + poly[i];
    uint32_t tb, eb;
    memcpy(&tb, &t, 4);
    eb = (tb - 0x4b400000u + 127u) << 23; /* 2^n; a NaN x gives a NaN p */
    float e;
    memcpy(&e, &eb, 4);
    const float y = p * e;
    return x < LM__EXP_MIN ? 0.0f : y;
}

/* A state's step once its tile's max mt is known: when mt is larger, l and acc (d floats)
 * times e^(m - mt) (unless m is -inf: l and acc are still 0), and m = mt. Every level's
 * attn_soft calls this one (element-wise products: any vector form has the same bits). */
static inline void lm__attn_rescale(lm__attn_state *x, float mt, int64_t d) {
    if (!(mt > x->m)) return;
    if (x->m != -INFINITY) {
        const float c = lm__exp_neg(x->m - mt);
        x->l *= c;
        for (int64_t i = 0; i < d; i++) x->acc[i] *= c;
    }
    x->m = mt;
}

typedef struct lm__cpu_kernels_s {
    lm__cpu_level level;
    lm__qdot_fn qdot[LM_TYPE_COUNT]; /* NULL: no integer dot for that type */
    /* the same on full groups (nr = LM__MR) in LM_LAYOUT_CPU_P8 (w_stride: the type's block
     * size, w_block: LM__MR times it); NULL: the level has none, weights stay interleaved */
    lm__qdot_fn qdot_p8[LM_TYPE_COUNT];
    lm__fdot_fn fdot[LM_TYPE_COUNT];                                /* F32, F16, BF16 */
    void (*f16_to_f32)(const uint16_t *src, float *dst, int64_t n); /* exact */
    /* lm_fp32_to_fp16 bit for bit (round to nearest even; a NaN becomes sign | 0x7e00) */
    void (*f32_to_f16)(const float *src, uint16_t *dst, int64_t n);
    /* attention's scores: s[h * ss + j] = fdot[F32](k[j], q[h], d) for h < nh, j < n, bit
     * for bit, each K row read once for the nh query rows (a kv group's heads, of one or more
     * tokens) */
    void (*attn_qk)(const float *const *k, int n, const float *const *q, int nh, int64_t d,
                    float *s, int ss);
    /* attention's P.V steps: for h < nh, i < d, then j < n in order,
     * a[h][i] += w[h * ws + j] * v[j][i], each product and sum rounded on its own */
    void (*attn_pv)(float *const *a, const float *const *v, int n, const float *w, int ws, int nh,
                    int64_t d);
    /* the same two on F16 rows, converted exactly as they are read (attention's F16 cache):
     * the results of attn_qk and attn_pv on the converted rows, bit for bit */
    void (*attn_qk_f16)(const uint16_t *const *k, int n, const float *const *q, int nh, int64_t d,
                        float *s, int ss);
    void (*attn_pv_f16)(float *const *a, const uint16_t *const *v, int n, const float *w, int ws,
                        int nh, int64_t d);
    /* one tile's online-softmax step for nh (token, head) pairs: pair h's LM__ATTN_PT scores
     * s[h * LM__ATTN_PT + i], slots i outside [o, o + n) taken as -inf and the others times
     * scale; their max m_t (the tree x[k] with x[k + 8], then + 4, + 2, + 1); when m_t > m,
     * l and acc (d floats) times e^(m - m_t) unless m is -inf, and m = m_t; then the weights
     * w[h * LM__ATTN_PT + i] = e^(s_i - m) (0 outside, m finite), their sum (the same tree) added
     * to l. s is scratch (it may be changed) */
    void (*attn_soft)(lm__attn_state *st, float *s, float *w, int nh, int o, int n, float scale,
                      int64_t d);
    /* lm__quantize_q16a / q16k, bit for bit */
    void (*quantize_q16a)(const float *restrict x, lm__q16a *restrict y, int64_t n);
    void (*quantize_q16k)(const float *restrict x, lm__q16k *restrict y, int64_t n);
    /* y[i] = act(x[i]) * u[i], act = gelu_tanh when gelu, else silu */
    void (*glu)(int gelu, const float *x, const float *u, float *y, int64_t n);
} lm__cpu_kernels;

const char *lm__cpu_level_name(lm__cpu_level level);
/* The best level this CPU runs and this build has kernels for. */
lm__cpu_level lm__cpu_level_best(void);
/* Whether this CPU and build can run level (its kernels exist and the CPU has the ISA). */
bool lm__cpu_level_supported(lm__cpu_level level);
/* "scalar", "avx2", "avx512", "neon" -> level; LM_ERR_INVALID_ARG naming the known ones. */
lm_status lm__cpu_level_parse(const char *s, lm__cpu_level *out);
/* The kernel table of a supported level (the scalar table for any other). */
const lm__cpu_kernels *lm__cpu_kernels_get(lm__cpu_level level);
/* Per-level tables (cpu_dot_scalar.c, cpu_dot_avx2.c, cpu_dot_avx512.c, cpu_dot_neon.c). */
void lm__cpu_kernels_scalar(lm__cpu_kernels *k);
bool lm__cpu_kernels_avx2(lm__cpu_kernels *k);   /* false when not compiled in */
bool lm__cpu_kernels_avx512(lm__cpu_kernels *k); /* cpu_dot_avx512.c; the same */
void lm__cpu_act_avx2(lm__cpu_kernels *k);       /* cpu_act_avx2.c: the GLUs */
bool lm__cpu_kernels_neon(lm__cpu_kernels *k);   /* cpu_dot_neon.c; false when not compiled in */

/* Shared by the scalar and SIMD files (cpu_dot_scalar.c): a k-quant block's 256 levels as
 * int8 in element order, and the integer scale and min of each 16-element chunk t (a
 * q4_K/q5_K sub-block's twice; min 0 for types without), so that a block's isum =
 * sum_t sc[t] * (chunk t's sum of products) and msum = sum_t mn[t] * bsums[t]. */
void lm__unpack_q2_K(const lm_block_q2_K *w, int8_t *q);
void lm__unpack_q3_K(const lm_block_q3_K *w, int8_t *q);
void lm__unpack_q4_K(const lm_block_q4_K *w, int8_t *q);
void lm__unpack_q5_K(const lm_block_q5_K *w, int8_t *q);
void lm__unpack_q6_K(const lm_block_q6_K *w, int8_t *q);
void lm__scales_q2_K(const void *w, int16_t *sc, int16_t *mn);
void lm__scales_q3_K(const void *w, int16_t *sc, int16_t *mn);
void lm__scales_k4(const void *w, int16_t *sc, int16_t *mn);
void lm__scales_q6_K(const void *w, int16_t *sc, int16_t *mn);

/* Activation block of a quantized weight type: 32 (lm__q16a) or 256 (lm__q16k) elements */
static inline int lm__act_blck(lm_type t) {
    return lm_type_get((uint32_t)t).blck == LM_QK_K ? LM_QK_K : 32;
}
static inline size_t lm__act_size(lm_type t) {
    return lm__act_blck(t) == LM_QK_K ? sizeof(lm__q16k) : sizeof(lm__q16a);
}

/* Use level on this backend from now on (tests; LUMEN_CPU_LEVEL does it at creation).
 * LM_ERR_UNSUPPORTED naming the levels this CPU runs when it cannot run that one; the
 * backend then keeps its level. */
lm_status lm__cpu_set_level(lm_backend *be, lm__cpu_level level);
lm__cpu_level lm__cpu_get_level(lm_backend *be);
/* LUMEN_CPU_LEVEL's level, or the best when it is unset or empty. */
lm_status lm__cpu_level_from_env(lm__cpu_level *out);

/* ---- ops (cpu_ops.c, cpu_matmul.c, cpu_attention.c) ---- */

lm_status lm__cpu_get_rows(lm_backend *be, const lm_tensor *src, const lm_tensor *ids,
                           lm_tensor *dst);
/* One row of rms_norm (also the fused norm_mul_mat_n's); the checks of its arguments */
void lm__cpu_rms_row(const float *x, float *y, int64_t n, const float *w, float eps);
lm_status lm__cpu_rms_check(const char *op, const char *wname, const lm_tensor *x,
                            const lm_tensor *w, float eps);
lm_status lm__cpu_rms_norm(lm_backend *be, const lm_tensor *x, const lm_tensor *w, float eps,
                           lm_tensor *dst);
lm_status lm__cpu_mul_mat(lm_backend *be, const lm_tensor *w, const lm_tensor *x, lm_tensor *dst);
lm_status lm__cpu_norm_mul_mat_n(lm_backend *be, const lm_tensor *x, const lm_tensor *norm,
                                 float eps, lm_tensor *xn, int n, const lm_tensor *const *w,
                                 lm_tensor *const *dst);
lm_status lm__cpu_mul_mat_n(lm_backend *be, int n, const lm_tensor *const *w, const lm_tensor *x,
                            lm_tensor *const *dst);
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

/* ---- the interleaved weight layout (cpu_relayout.c) ---- */

lm_status lm__cpu_weights_relayout(lm_backend *be, lm_tensor *const *w, int n);
/* Whether type t has a packed form (LM_LAYOUT_CPU_P8) */
bool lm__cpu_p8_type(lm_type t);
/* A group block: the 8 rows' block b, one after the other as in LM_LAYOUT_CPU_R8, into its
 * packed form, and back (same size; nothing done for a type without a packed form) */
void lm__cpu_p8_pack(lm_type t, const void *blocks, void *out);
void lm__cpu_p8_unpack(lm_type t, const void *packed, void *blocks);
/* Row i of src (rows, interleaved or packed) dequantized into dst[ne[0]] */
void lm__cpu_weight_row(const lm_tensor *src, int64_t i, float *dst);

#endif
