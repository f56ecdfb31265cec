/* The plain-C kernels: activation quantization, the quantized dot products (the oracle
 * every SIMD level must equal bit for bit) and the float dot products.
 *
 * Quantized dot products work as ggml's vec_dot_*_q8_*, with 16-bit activations instead
 * of 8 (lm__q16a per 32 elements, lm__q16k per 256 with 16-element sums): 16 bits cost the
 * same integer instructions (pmaddwd) and keep x's quantization error (amax / 65534 per
 * element) far below the weights' own, where 8 bits moved SmolLM2's logits by up to 0.7.
 *
 * The numbers, which the SIMD kernels and the GPU backends reproduce exactly:
 *  - within a block the products are summed as integers (exact, so any order): isum; the
 *    k-quants also weight each sub-block by its integer scale, in 64 bits (a scaled sum
 *    can pass 2^31), and their mins give msum = sum m_i * bsums_i;
 *  - the block's term, in float with each operation rounded on its own (no FMA: ISO C
 *    mode does not contract), in this order:
 *      q4_0 q5_0 q8_0:  (dw * da) * (float)isum
 *      q4_1 q5_1:       (dw * da) * (float)isum + m * sa
 *      q2_K q4_K q5_K:  da * (dw * (float)isum - dmin * (float)msum)
 *      q3_K q6_K:       da * (dw * (float)isum)
 *  - the result is the float sum of the terms in block order, from 0.
 * So a result depends only on its row and column: not on the batch, the thread count or
 * the CPU. */
#include "cpu_internal.h"

#include "../common/lm_quant_math.h"

#include <math.h>
#include <string.h>

/* ---- activation quantization ---- */

/* q = round half away from zero (x / d), d = amax / 32767; returns sum of q */
static int lm__quantize_16(const float *restrict x, int16_t *restrict q, int n, float *d_out) {
    float amax = 0;
    for (int j = 0; j < n; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 32767;
    const float id = d != 0 ? 1 / d : 0;
    int sum = 0;
    for (int j = 0; j < n; j++) {
        const float v = x[j] * id; /* |v| <= 32767 (+ rounding): never overflows */
        const int r = (int)(v + (v >= 0 ? 0.5f : -0.5f));
        q[j] = (int16_t)(r > 32767 ? 32767 : r < -32767 ? -32767 : r);
        sum += q[j];
    }
    *d_out = d;
    return sum;
}

void lm__quantize_q16a(const float *restrict x, lm__q16a *restrict y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++) {
        const int sum = lm__quantize_16(x + 32 * b, y[b].qs, 32, &y[b].d);
        y[b].s = y[b].d * (float)sum;
    }
}

void lm__quantize_q16k(const float *restrict x, lm__q16k *restrict y, int64_t n) {
    for (int64_t b = 0; b < n / LM_QK_K; b++) {
        lm__quantize_16(x + LM_QK_K * b, y[b].qs, LM_QK_K, &y[b].d);
        for (int i = 0; i < 16; i++) {
            int32_t s = 0;
            for (int l = 0; l < 16; l++) s += y[b].qs[16 * i + l];
            y[b].bsums[i] = s;
        }
    }
}

/* ---- block levels ---- */

/* The 32 levels of a legacy block as int8, in element order. */
static void lm__unpack_q4(const uint8_t *qs, int off, int8_t *q) {
    for (int j = 0; j < 16; j++) {
        q[j] = (int8_t)((qs[j] & 0x0f) - off);
        q[j + 16] = (int8_t)((qs[j] >> 4) - off);
    }
}

static void lm__unpack_q5(const uint8_t *qs, const uint8_t *qhb, int off, int8_t *q) {
    const uint32_t qh = lm_load_u32le(qhb);
    for (int j = 0; j < 16; j++) {
        q[j] = (int8_t)(((qs[j] & 0x0f) | (((qh >> j) & 1u) << 4)) - off);
        q[j + 16] = (int8_t)(((qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4)) - off);
    }
}

static int lm__dot_i8(const int8_t *restrict q, const int16_t *restrict a, int n) {
    int s = 0;
    for (int l = 0; l < n; l++) s += q[l] * a[l];
    return s;
}

/* The 256 levels of a k-quant block as int8, in element order (layouts: lm_quant_blocks.h) */
void lm__unpack_q2_K(const lm_block_q2_K *w, int8_t *q) {
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++)
                q[128 * h + 32 * k + l] = (int8_t)((w->qs[32 * h + l] >> (2 * k)) & 3);
}

void lm__unpack_q3_K(const lm_block_q3_K *w, int8_t *q) {
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                const int lo = (w->qs[32 * h + l] >> (2 * k)) & 3;
                const int hi = (w->hmask[l] >> (4 * h + k)) & 1;
                q[128 * h + 32 * k + l] = (int8_t)(lo - 4 + 4 * hi);
            }
}

void lm__unpack_q4_K(const lm_block_q4_K *w, int8_t *q) {
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < 32; l++) {
            q[64 * p + l] = (int8_t)(w->qs[32 * p + l] & 0x0f);
            q[64 * p + 32 + l] = (int8_t)(w->qs[32 * p + l] >> 4);
        }
}

void lm__unpack_q5_K(const lm_block_q5_K *w, int8_t *q) {
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < 32; l++) {
            const int h = w->qh[l] >> (2 * p);
            q[64 * p + l] = (int8_t)((w->qs[32 * p + l] & 0x0f) | ((h & 1) << 4));
            q[64 * p + 32 + l] = (int8_t)((w->qs[32 * p + l] >> 4) | ((h & 2) << 3));
        }
}

void lm__unpack_q6_K(const lm_block_q6_K *w, int8_t *q) {
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = w->ql + 64 * h, *qh = w->qh + 32 * h;
        int8_t *o = q + 128 * h;
        for (int l = 0; l < 32; l++) {
            o[l] = (int8_t)(((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) - 32);
            o[l + 32] = (int8_t)(((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32);
            o[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            o[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
    }
}

/* Integer scale and min of each 16-element chunk (see cpu_internal.h) */
void lm__scales_q2_K(const void *vw, int16_t *sc, int16_t *mn) {
    const lm_block_q2_K *w = vw;
    for (int t = 0; t < 16; t++) sc[t] = (int16_t)(w->scales[t] & 0x0f), mn[t] = w->scales[t] >> 4;
}
void lm__scales_q3_K(const void *vw, int16_t *sc, int16_t *mn) {
    const lm_block_q3_K *w = vw;
    for (int t = 0; t < 16; t++) sc[t] = (int16_t)(lm_q3_K_scale(w->scales, t) - 32), mn[t] = 0;
}
/* q4_K, q5_K: chunks 2i, 2i+1 share sub-block i's scale and min; in integers
 * m_i (bsums[2i] + bsums[2i+1]) = m_i bsums[2i] + m_i bsums[2i+1] exactly */
void lm__scales_k4(const void *vw, int16_t *sc, int16_t *mn) {
    const uint8_t *scales = ((const lm_block_q4_K *)vw)->scales;
    for (int i = 0; i < 8; i++) {
        int s, m;
        lm_k4_scale_min(scales, i, &s, &m);
        sc[2 * i] = sc[2 * i + 1] = (int16_t)s;
        mn[2 * i] = mn[2 * i + 1] = (int16_t)m;
    }
}
void lm__scales_q6_K(const void *vw, int16_t *sc, int16_t *mn) {
    const lm_block_q6_K *w = vw;
    for (int t = 0; t < 16; t++) sc[t] = w->scales[t], mn[t] = 0;
}

/* ---- the dot products, one output at a time ---- */

#define LM__F16(h) lm_fp16_to_fp32(h)

typedef void (*lm__unpack32_fn)(const void *blk, int8_t *q);
static void lm__lv_q4_0(const void *b, int8_t *q) {
    lm__unpack_q4(((const lm_block_q4_0 *)b)->qs, 8, q);
}
static void lm__lv_q4_1(const void *b, int8_t *q) {
    lm__unpack_q4(((const lm_block_q4_1 *)b)->qs, 0, q);
}
static void lm__lv_q5_0(const void *b, int8_t *q) {
    lm__unpack_q5(((const lm_block_q5_0 *)b)->qs, ((const lm_block_q5_0 *)b)->qh, 16, q);
}
static void lm__lv_q5_1(const void *b, int8_t *q) {
    lm__unpack_q5(((const lm_block_q5_1 *)b)->qs, ((const lm_block_q5_1 *)b)->qh, 0, q);
}
static void lm__lv_q8_0(const void *b, int8_t *q) {
    memcpy(q, ((const lm_block_q8_0 *)b)->qs, 32);
}

/* Legacy types: d is the block's first half; with a min, m is the second. */
static float lm__row_legacy(const char *w, size_t bsize, lm__unpack32_fn unpack, int has_min,
                            const lm__q16a *a, int64_t nb) {
    float acc = 0;
    for (int64_t b = 0; b < nb; b++) {
        const char *blk = w + (size_t)b * bsize;
        uint16_t h[2];
        memcpy(h, blk, sizeof h);
        int8_t q[32];
        unpack(blk, q);
        const int s = lm__dot_i8(q, a[b].qs, 32);
        float t = LM__F16(h[0]) * a[b].d * (float)s;
        if (has_min) t += LM__F16(h[1]) * a[b].s;
        acc += t;
    }
    return acc;
}

typedef struct {
    void (*unpack)(const void *blk, int8_t *q);
    void (*scales)(const void *blk, int16_t *sc, int16_t *mn);
    int d_off, dmin_off; /* byte offsets of the f16 d and dmin; dmin_off < 0: no mins */
} lm__ktype;

static float lm__row_k(const char *w, size_t wb, const lm__ktype *kt, const lm__q16k *a,
                       int64_t nb) {
    float acc = 0;
    for (int64_t b = 0; b < nb; b++) {
        const char *blk = w + (size_t)b * wb;
        int8_t q[LM_QK_K];
        int16_t sc[16], mn[16];
        kt->unpack(blk, q);
        kt->scales(blk, sc, mn);
        int64_t isum = 0, msum = 0;
        for (int t = 0; t < 16; t++) {
            isum += (int64_t)sc[t] * lm__dot_i8(q + 16 * t, a[b].qs + 16 * t, 16);
            msum += (int64_t)mn[t] * a[b].bsums[t];
        }
        uint16_t d, dmin = 0;
        memcpy(&d, blk + kt->d_off, 2);
        if (kt->dmin_off >= 0) memcpy(&dmin, blk + kt->dmin_off, 2);
        const float dw = LM__F16(d);
        if (kt->dmin_off >= 0)
            acc += a[b].d * (dw * (float)isum - LM__F16(dmin) * (float)msum);
        else
            acc += a[b].d * (dw * (float)isum);
    }
    return acc;
}

static void lm__unpack_q2_K_v(const void *b, int8_t *q) {
    lm__unpack_q2_K(b, q);
}
static void lm__unpack_q3_K_v(const void *b, int8_t *q) {
    lm__unpack_q3_K(b, q);
}
static void lm__unpack_q4_K_v(const void *b, int8_t *q) {
    lm__unpack_q4_K(b, q);
}
static void lm__unpack_q5_K_v(const void *b, int8_t *q) {
    lm__unpack_q5_K(b, q);
}
static void lm__unpack_q6_K_v(const void *b, int8_t *q) {
    lm__unpack_q6_K(b, q);
}

#define LM__OFF(T, f) (int)offsetof(T, f)
static const lm__ktype lm__kt_q2_K = {lm__unpack_q2_K_v, lm__scales_q2_K, LM__OFF(lm_block_q2_K, d),
                                      LM__OFF(lm_block_q2_K, dmin)};
static const lm__ktype lm__kt_q3_K = {lm__unpack_q3_K_v, lm__scales_q3_K, LM__OFF(lm_block_q3_K, d),
                                      -1};
static const lm__ktype lm__kt_q4_K = {lm__unpack_q4_K_v, lm__scales_k4, LM__OFF(lm_block_q4_K, d),
                                      LM__OFF(lm_block_q4_K, dmin)};
static const lm__ktype lm__kt_q5_K = {lm__unpack_q5_K_v, lm__scales_k4, LM__OFF(lm_block_q5_K, d),
                                      LM__OFF(lm_block_q5_K, dmin)};
static const lm__ktype lm__kt_q6_K = {lm__unpack_q6_K_v, lm__scales_q6_K, LM__OFF(lm_block_q6_K, d),
                                      -1};

#define LM__COLA(T, va, stride, c) ((const T *)((const char *)(va) + (size_t)(c) * (stride)))

#define LM__QDOT_LEGACY(name, blk_t, unpack, has_min)                                              \
    static void name(const void *w, size_t ws, size_t wb, int nr, const void *va, size_t as,       \
                     int nc, int64_t nb, float *out, size_t os) {                                  \
        for (int c = 0; c < nc; c++)                                                               \
            for (int r = 0; r < nr; r++)                                                           \
                out[(size_t)c * os + r] =                                                          \
                    lm__row_legacy((const char *)w + (size_t)r * ws, wb, unpack, has_min,          \
                                   LM__COLA(lm__q16a, va, as, c), nb);                             \
    }
LM__QDOT_LEGACY(lm__qdot_q4_0, lm_block_q4_0, lm__lv_q4_0, 0)
LM__QDOT_LEGACY(lm__qdot_q4_1, lm_block_q4_1, lm__lv_q4_1, 1)
LM__QDOT_LEGACY(lm__qdot_q5_0, lm_block_q5_0, lm__lv_q5_0, 0)
LM__QDOT_LEGACY(lm__qdot_q5_1, lm_block_q5_1, lm__lv_q5_1, 1)
LM__QDOT_LEGACY(lm__qdot_q8_0, lm_block_q8_0, lm__lv_q8_0, 0)

#define LM__QDOT_K(name, kt)                                                                       \
    static void name(const void *w, size_t ws, size_t wb, int nr, const void *va, size_t as,       \
                     int nc, int64_t nb, float *out, size_t os) {                                  \
        for (int c = 0; c < nc; c++)                                                               \
            for (int r = 0; r < nr; r++)                                                           \
                out[(size_t)c * os + r] = lm__row_k((const char *)w + (size_t)r * ws, wb, &kt,     \
                                                    LM__COLA(lm__q16k, va, as, c), nb);            \
    }
LM__QDOT_K(lm__qdot_q2_K, lm__kt_q2_K)
LM__QDOT_K(lm__qdot_q3_K, lm__kt_q3_K)
LM__QDOT_K(lm__qdot_q4_K, lm__kt_q4_K)
LM__QDOT_K(lm__qdot_q5_K, lm__kt_q5_K)
LM__QDOT_K(lm__qdot_q6_K, lm__kt_q6_K)

/* ---- float dot products: lm__cpu_dot's order on converted elements ---- */

static float lm__fdot_f32(const void *w, const float *x, int64_t n) {
    return lm__cpu_dot(w, x, n);
}

/* 16 partial sums, then the tree: as lm__cpu_dot, the weight converted element-wise */
#define LM__FDOT_HALF(name, conv)                                                                  \
    static float name(const void *vw, const float *x, int64_t n) {                                 \
        const uint16_t *w = vw;                                                                    \
        float acc[16] = {0};                                                                       \
        int64_t i = 0;                                                                             \
        for (; i + 16 <= n; i += 16)                                                               \
            for (int j = 0; j < 16; j++) acc[j] += conv(w[i + j]) * x[i + j];                      \
        for (int j = 0; i < n; i++, j++) acc[j] += conv(w[i]) * x[i];                              \
        for (int s = 8; s >= 1; s /= 2)                                                            \
            for (int j = 0; j < s; j++) acc[j] += acc[j + s];                                      \
        return acc[0];                                                                             \
    }
LM__FDOT_HALF(lm__fdot_f16, lm_fp16_to_fp32)
LM__FDOT_HALF(lm__fdot_bf16, lm_bf16_to_fp32)

static void lm__f16_to_f32(const uint16_t *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = lm_fp16_to_fp32(src[i]);
}
static void lm__f32_to_f16(const float *src, uint16_t *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = lm_fp32_to_fp16(src[i]);
}

static float lm__silu(float g) {
    return g / (1.0f + expf(-g));
}

/* gelu, tanh approximation (as ggml and Gemma use) */
static float lm__gelu_tanh(float g) {
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    return 0.5f * g * (1.0f + tanhf(k * (g + 0.044715f * g * g * g)));
}

static void lm__glu(int gelu, const float *x, const float *u, float *y, int64_t n) {
    if (gelu)
        for (int64_t i = 0; i < n; i++) y[i] = lm__gelu_tanh(x[i]) * u[i];
    else
        for (int64_t i = 0; i < n; i++) y[i] = lm__silu(x[i]) * u[i];
}

static void lm__attn_qk(const float *const *k, int n, const float *const *q, int nh, int64_t d,
                        float *s, int ss) {
    for (int h = 0; h < nh; h++)
        for (int j = 0; j < n; j++) s[h * ss + j] = lm__cpu_dot(k[j], q[h], d);
}
static void lm__attn_qk_f16(const uint16_t *const *k, int n, const float *const *q, int nh,
                            int64_t d, float *s, int ss) {
    for (int h = 0; h < nh; h++)
        for (int j = 0; j < n; j++) s[h * ss + j] = lm__fdot_f16(k[j], q[h], d);
}

#define LM__ATTN_PV(name, T, conv)                                                                 \
    static void name(float *const *a, const T *const *v, int n, const float *w, int ws, int nh,    \
                     int64_t d) {                                                                  \
        for (int h = 0; h < nh; h++)                                                               \
            for (int64_t i = 0; i < d; i++) {                                                      \
                float x = a[h][i];                                                                 \
                for (int j = 0; j < n; j++) x += w[h * ws + j] * conv(v[j][i]);                    \
                a[h][i] = x;                                                                       \
            }                                                                                      \
    }
#define LM__SAME(v) (v)
LM__ATTN_PV(lm__attn_pv, float, LM__SAME)
LM__ATTN_PV(lm__attn_pv_f16, uint16_t, lm_fp16_to_fp32)

/* A tile's 16 slots: the max and the sum as fixed trees, x[k] with x[k + 8], then + 4, + 2,
 * + 1 (short dependency chains; the SIMD levels and the Vulkan kernel combine the same pairs) */
#define LM__MAX(a, b) ((a) > (b) ? (a) : (b))
#define LM__ADD(a, b) ((a) + (b))
/* in scalars, not an array: the compiler's partial vector loads of one made the stores
 * feeding them stall */
#define LM__TREE16(OP, x)                                                                          \
    const float a0 = OP(x[0], x[8]), a1 = OP(x[1], x[9]), a2 = OP(x[2], x[10]),                    \
                a3 = OP(x[3], x[11]), a4 = OP(x[4], x[12]), a5 = OP(x[5], x[13]),                  \
                a6 = OP(x[6], x[14]), a7 = OP(x[7], x[15]);                                        \
    const float b0 = OP(a0, a4), b1 = OP(a1, a5), b2 = OP(a2, a6), b3 = OP(a3, a7);                \
    const float c0 = OP(b0, b2), c1 = OP(b1, b3);                                                  \
    return OP(c0, c1);
static inline float lm__tile_max(const float *x) {
    LM__TREE16(LM__MAX, x)
}
static inline float lm__tile_sum(const float *x) {
    LM__TREE16(LM__ADD, x)
}

static void lm__attn_soft(lm__attn_state *st, float *s, float *w, int nh, int o, int n, float scale,
                          int64_t d) {
    enum { PT = LM__ATTN_PT };
    for (int h = 0; h < nh; h++) {
        lm__attn_state *x = &st[h];
        float *sh = s + h * PT, *wh = w + h * PT;
        for (int i = 0; i < PT; i++)
            if (i < o || i >= o + n) sh[i] = -INFINITY;
        for (int i = o; i < o + n; i++) sh[i] *= scale;
        lm__attn_rescale(x, lm__tile_max(sh), d);
        for (int i = 0; i < PT; i++) wh[i] = lm__exp_neg(sh[i] - x->m); /* -inf: 0 */
        x->l += lm__tile_sum(wh);
    }
}

void lm__cpu_kernels_scalar(lm__cpu_kernels *k) {
    memset(k, 0, sizeof *k);
    k->level = LM__CPU_SCALAR;
    k->qdot[LM_TYPE_Q4_0] = lm__qdot_q4_0;
    k->qdot[LM_TYPE_Q4_1] = lm__qdot_q4_1;
    k->qdot[LM_TYPE_Q5_0] = lm__qdot_q5_0;
    k->qdot[LM_TYPE_Q5_1] = lm__qdot_q5_1;
    k->qdot[LM_TYPE_Q8_0] = lm__qdot_q8_0;
    k->qdot[LM_TYPE_Q2_K] = lm__qdot_q2_K;
    k->qdot[LM_TYPE_Q3_K] = lm__qdot_q3_K;
    k->qdot[LM_TYPE_Q4_K] = lm__qdot_q4_K;
    k->qdot[LM_TYPE_Q5_K] = lm__qdot_q5_K;
    k->qdot[LM_TYPE_Q6_K] = lm__qdot_q6_K;
    k->fdot[LM_TYPE_F32] = lm__fdot_f32;
    k->fdot[LM_TYPE_F16] = lm__fdot_f16;
    k->fdot[LM_TYPE_BF16] = lm__fdot_bf16;
    k->f16_to_f32 = lm__f16_to_f32;
    k->f32_to_f16 = lm__f32_to_f16;
    k->attn_pv = lm__attn_pv;
    k->attn_qk = lm__attn_qk;
    k->attn_pv_f16 = lm__attn_pv_f16;
    k->attn_qk_f16 = lm__attn_qk_f16;
    k->attn_soft = lm__attn_soft;
    k->glu = lm__glu;
    k->quantize_q16a = lm__quantize_q16a;
    k->quantize_q16k = lm__quantize_q16k;
}
