/* The AArch64 NEON kernels: the numbers of cpu_dot_scalar.c, bit for bit.
 *
 * No ARM machine runs the test suite, so scripts/check_neon.sh cross-compiles this file
 * with the scalar oracle and runs tests/neon/neon_check.c under qemu-aarch64: every output
 * of this table is compared with the scalar table's, bit for bit, and the objects are
 * checked for fused multiply-adds.
 *
 * How each kernel keeps the oracle's numbers:
 *  - quantized dots: a block's integer dot product is exact in any order (16-bit
 *    products widened into int32 lanes with vmull/vmlal, or into int64 for the k-quants),
 *    and the block's float term is evaluated with the scalar formula, each operation
 *    rounded on its own, for 4 rows per vector (legacy types) or per output (k-quants,
 *    whose (float)int64 conversion has no vector form that rounds once);
 *  - float dots: lm__cpu_dot's 16 partial sums are four vectors, then the same tree;
 *  - half -> float is exact (vcvt), with NaNs rebuilt by bits as lm_fp16_to_fp32 does
 *    (fcvtl would set the quiet bit of a signalling NaN);
 *  - no fused multiply-add anywhere: GCC's vmulq_f32/vaddq_f32 are plain C operators that
 *    -ffp-contract=fast would fuse, so contraction is switched off for this file. */
/* before any include: cpu_internal.h's inline lm__exp_neg is compiled here too */
#if defined(__aarch64__) && defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__aarch64__) && defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "cpu_internal.h"

#if defined(__aarch64__) && defined(__ARM_NEON)

#include "../common/lm_quant_math.h"

#include <arm_neon.h>
#include <math.h>
#include <string.h>

#define LM__INLINE static inline __attribute__((always_inline))

/* ---- half precision ---- */

/* 4 halves to floats, exactly as lm_fp16_to_fp32 (NaN payloads and signalling bits kept) */
LM__INLINE float32x4_t lm__n_f16x4(uint16x4_t h) {
    const uint32x4_t cvt = vreinterpretq_u32_f32(vcvt_f32_f16(vreinterpret_f16_u16(h)));
    /* NaN: exponent all ones and a nonzero mantissa -> sign | 0x7f800000 | man << 13 */
    const uint16x4_t nan = vand_u16(vceq_u16(vand_u16(h, vdup_n_u16(0x7c00)), vdup_n_u16(0x7c00)),
                                    vtst_u16(h, vdup_n_u16(0x03ff)));
    const uint32x4_t w = vmovl_u16(h);
    const uint32x4_t bits = vorrq_u32(
        vorrq_u32(vshlq_n_u32(vandq_u32(w, vdupq_n_u32(0x8000)), 16), vdupq_n_u32(0x7f800000)),
        vshlq_n_u32(vandq_u32(w, vdupq_n_u32(0x03ff)), 13));
    return vreinterpretq_f32_u32(
        vbslq_u32(vreinterpretq_u32_s32(vmovl_s16(vreinterpret_s16_u16(nan))), bits, cvt));
}

LM__INLINE float32x4_t lm__n_bf16x4(uint16x4_t h) {
    return vreinterpretq_f32_u32(vshll_n_u16(h, 16));
}

static void lm__n_f16_to_f32(const uint16_t *src, float *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, lm__n_f16x4(vld1_u16(src + i)));
    for (; i < n; i++) dst[i] = lm_fp16_to_fp32(src[i]);
}

/* ---- float dot products: lm__cpu_dot's 16 partial sums as 4 vectors, then its tree ---- */

/* acc[j] += acc[j + w] for w = 8, 4, 2, 1: the same pairs, added in lanes */
LM__INLINE float lm__n_tree16(const float32x4_t *a) {
    const float32x4_t t0 = vaddq_f32(a[0], a[2]), t1 = vaddq_f32(a[1], a[3]); /* w = 8 */
    const float32x4_t t4 = vaddq_f32(t0, t1);                                 /* w = 4 */
    const float32x2_t t2 = vadd_f32(vget_low_f32(t4), vget_high_f32(t4));     /* w = 2 */
    return vget_lane_f32(t2, 0) + vget_lane_f32(t2, 1);                       /* w = 1 */
}

#define LM__FDOT_N(name, T, LOAD4, conv)                                                           \
    static float name(const void *vw, const float *x, int64_t n) {                                 \
        const T *w = vw;                                                                           \
        float32x4_t a[4];                                                                          \
        for (int k = 0; k < 4; k++) a[k] = vdupq_n_f32(0);                                         \
        int64_t i = 0;                                                                             \
        for (; i + 16 <= n; i += 16)                                                               \
            for (int k = 0; k < 4; k++)                                                            \
                a[k] = vaddq_f32(a[k], vmulq_f32(LOAD4(w + i + 4 * k), vld1q_f32(x + i + 4 * k))); \
        if (i < n) { /* the tail into partial sums 0.., as lm__cpu_dot */                          \
            float acc[16];                                                                         \
            for (int k = 0; k < 4; k++) vst1q_f32(acc + 4 * k, a[k]);                              \
            for (int j = 0; i < n; i++, j++) acc[j] += conv(w[i]) * x[i];                          \
            for (int k = 0; k < 4; k++) a[k] = vld1q_f32(acc + 4 * k);                             \
        }                                                                                          \
        return lm__n_tree16(a);                                                                    \
    }
#define LM__LD_F32(p)  vld1q_f32(p)
#define LM__LD_F16(p)  lm__n_f16x4(vld1_u16(p))
#define LM__LD_BF16(p) lm__n_bf16x4(vld1_u16(p))
#define LM__ID(v)      (v)
LM__FDOT_N(lm__n_fdot_f32, float, LM__LD_F32, LM__ID)
LM__FDOT_N(lm__n_fdot_f16, uint16_t, LM__LD_F16, lm_fp16_to_fp32)
LM__FDOT_N(lm__n_fdot_bf16, uint16_t, LM__LD_BF16, lm_bf16_to_fp32)

/* attention's scores: this level's float dots (the add chains of one already fill the
 * pipes) */
static void lm__n_attn_qk(const float *const *k, int n, const float *const *q, int nh, int64_t d,
                          float *s, int ss) {
    for (int h = 0; h < nh; h++)
        for (int j = 0; j < n; j++) s[h * ss + j] = lm__n_fdot_f32(k[j], q[h], d);
}
static void lm__n_attn_qk_f16(const uint16_t *const *k, int n, const float *const *q, int nh,
                              int64_t d, float *s, int ss) {
    for (int h = 0; h < nh; h++)
        for (int j = 0; j < n; j++) s[h * ss + j] = lm__n_fdot_f16(k[j], q[h], d);
}

/* lm__attn_pv's steps, head by head, 4 x 4 lanes at a time (vmulq + vaddq, never fmla) */
#define LM__ATTN_PV_N(name, T, LOAD4, conv)                                                        \
    static void name(float *const *a, const T *const *v, int n, const float *w, int ws, int nh,    \
                     int64_t d) {                                                                  \
        for (int h = 0; h < nh; h++) {                                                             \
            float *ah = a[h];                                                                      \
            const float *wh = w + h * ws;                                                          \
            int64_t i = 0;                                                                         \
            for (; i + 16 <= d; i += 16) {                                                         \
                float32x4_t x[4];                                                                  \
                for (int u = 0; u < 4; u++) x[u] = vld1q_f32(ah + i + 4 * u);                      \
                for (int j = 0; j < n; j++)                                                        \
                    for (int u = 0; u < 4; u++)                                                    \
                        x[u] = vaddq_f32(x[u], vmulq_n_f32(LOAD4(v[j] + i + 4 * u), wh[j]));       \
                for (int u = 0; u < 4; u++) vst1q_f32(ah + i + 4 * u, x[u]);                       \
            }                                                                                      \
            for (; i < d; i++)                                                                     \
                for (int j = 0; j < n; j++) ah[i] += wh[j] * conv(v[j][i]);                        \
        }                                                                                          \
    }
LM__ATTN_PV_N(lm__n_attn_pv, float, LM__LD_F32, LM__ID)
LM__ATTN_PV_N(lm__n_attn_pv_f16, uint16_t, LM__LD_F16, lm_fp16_to_fp32)

/* ---- attention's online softmax: lm__attn_soft's operations, 4 slots a vector ---- */

/* lm__exp_neg on 4 lanes, operation for operation */
LM__INLINE float32x4_t lm__n_exp_neg4(float32x4_t x) {
    static const float poly[8] = LM__EXP_POLY;
    const float32x4_t lo = vdupq_n_f32(LM__EXP_MIN), big = vdupq_n_f32(LM__EXP_BIG);
    const uint32x4_t under = vcltq_f32(x, lo); /* false for a NaN, which is kept */
    const float32x4_t xc = vbslq_f32(under, lo, x);
    const float32x4_t t = vaddq_f32(vmulq_f32(xc, vdupq_n_f32(LM__EXP_L2E)), big);
    const float32x4_t n = vsubq_f32(t, big);
    const float32x4_t r = vsubq_f32(vsubq_f32(xc, vmulq_f32(n, vdupq_n_f32(LM__EXP_LNHI))),
                                    vmulq_f32(n, vdupq_n_f32(LM__EXP_LNLO)));
    float32x4_t p = vdupq_n_f32(poly[0]);
    for (int i = 1; i < 8; i++) p = vaddq_f32(vmulq_f32(p, r), vdupq_n_f32(poly[i]));
    const uint32x4_t eb = vshlq_n_u32(
        vaddq_u32(vsubq_u32(vreinterpretq_u32_f32(t), vdupq_n_u32(0x4b400000u)), vdupq_n_u32(127u)),
        23);
    return vbslq_f32(under, vdupq_n_f32(0.0f), vmulq_f32(p, vreinterpretq_f32_u32(eb)));
}

/* the oracle's max (x > y ? x : y, not fmax) and sum, on 4 and 2 lanes */
LM__INLINE float32x4_t lm__n_max4(float32x4_t a, float32x4_t b) {
    return vbslq_f32(vcgtq_f32(a, b), a, b);
}
LM__INLINE float32x2_t lm__n_max2(float32x2_t a, float32x2_t b) {
    return vbsl_f32(vcgt_f32(a, b), a, b);
}
LM__INLINE float lm__n_max1(float a, float b) {
    return a > b ? a : b;
}
LM__INLINE float lm__n_add1(float a, float b) {
    return a + b;
}
/* lm__tile_max / lm__tile_sum's tree on the slots 0-3, 4-7, 8-11, 12-15 in x[0..3] */
#define LM__TREE16_N(name, OP4, OP2, OP1)                                                          \
    LM__INLINE float name(const float32x4_t *x) {                                                  \
        const float32x4_t b = OP4(OP4(x[0], x[2]), OP4(x[1], x[3]));                               \
        const float32x2_t c = OP2(vget_low_f32(b), vget_high_f32(b));                              \
        return OP1(vget_lane_f32(c, 0), vget_lane_f32(c, 1));                                      \
    }
LM__TREE16_N(lm__n_tile_max, lm__n_max4, lm__n_max2, lm__n_max1)
LM__TREE16_N(lm__n_tile_sum, vaddq_f32, vadd_f32, lm__n_add1)

static void lm__n_attn_soft(lm__attn_state *st, float *s, float *w, int nh, int o, int n,
                            float scale, int64_t d) {
    enum { PT = LM__ATTN_PT };
    static const int32_t first[4] = {0, 1, 2, 3};
    uint32x4_t in[4];
    for (int u = 0; u < 4; u++) {
        const int32x4_t idx = vaddq_s32(vld1q_s32(first), vdupq_n_s32(4 * u));
        in[u] = vandq_u32(vcgeq_s32(idx, vdupq_n_s32(o)), vcltq_s32(idx, vdupq_n_s32(o + n)));
    }
    for (int h = 0; h < nh; h++) {
        lm__attn_state *x = &st[h];
        float *sh = s + h * PT, *wh = w + h * PT;
        for (int i = 0; i < o; i++) sh[i] = -INFINITY; /* never read unset slots */
        for (int i = o + n; i < PT; i++) sh[i] = -INFINITY;
        float32x4_t v[4], e[4];
        for (int u = 0; u < 4; u++)
            v[u] =
                vbslq_f32(in[u], vmulq_n_f32(vld1q_f32(sh + 4 * u), scale), vdupq_n_f32(-INFINITY));
        lm__attn_rescale(x, lm__n_tile_max(v), d);
        for (int u = 0; u < 4; u++) {
            e[u] = lm__n_exp_neg4(vsubq_f32(v[u], vdupq_n_f32(x->m)));
            vst1q_f32(wh + 4 * u, e[u]);
        }
        x->l += lm__n_tile_sum(e);
    }
}

/* ---- activation quantization: lm__quantize_16's operations, 4 lanes at a time ---- */

/* q[j] = round half away from zero (x[j] / d), d = amax / 32767; n a multiple of 8.
 * fcvtzs truncates and saturates as the scalar (int) conversion does on AArch64. */
LM__INLINE void lm__n_quantize_16(const float *x, int16_t *q, int n, float *d_out) {
    float32x4_t mx = vdupq_n_f32(0);
    /* maxnm skips NaNs as fmaxf does; the max of numbers is the same in any order */
    for (int j = 0; j < n; j += 4) mx = vmaxnmq_f32(mx, vabsq_f32(vld1q_f32(x + j)));
    const float amax = vmaxnmvq_f32(mx);
    const float d = amax / 32767;
    const float id = d != 0 ? 1 / d : 0;
    const float32x4_t half = vdupq_n_f32(0.5f), mhalf = vdupq_n_f32(-0.5f);
    const int32x4_t hi = vdupq_n_s32(32767), lo = vdupq_n_s32(-32767);
    for (int j = 0; j < n; j += 8) {
        int32x4_t r[2];
        for (int h = 0; h < 2; h++) {
            const float32x4_t v = vmulq_n_f32(vld1q_f32(x + j + 4 * h), id);
            const float32x4_t off = vbslq_f32(vcgezq_f32(v), half, mhalf);
            r[h] = vmaxq_s32(vminq_s32(vcvtq_s32_f32(vaddq_f32(v, off)), hi), lo);
        }
        vst1q_s16(q + j, vcombine_s16(vmovn_s32(r[0]), vmovn_s32(r[1])));
    }
    *d_out = d;
}

/* the sum of 16 int16, exact */
LM__INLINE int32_t lm__n_sum16(const int16_t *q) {
    return vaddvq_s32(vaddq_s32(vpaddlq_s16(vld1q_s16(q)), vpaddlq_s16(vld1q_s16(q + 8))));
}

static void lm__n_quantize_q16a(const float *restrict x, lm__q16a *restrict y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++) {
        lm__n_quantize_16(x + 32 * b, y[b].qs, 32, &y[b].d);
        const int32_t sum = lm__n_sum16(y[b].qs) + lm__n_sum16(y[b].qs + 16);
        y[b].s = y[b].d * (float)sum;
    }
}

static void lm__n_quantize_q16k(const float *restrict x, lm__q16k *restrict y, int64_t n) {
    for (int64_t b = 0; b < n / LM_QK_K; b++) {
        lm__n_quantize_16(x + LM_QK_K * b, y[b].qs, LM_QK_K, &y[b].d);
        for (int i = 0; i < 16; i++) y[b].bsums[i] = lm__n_sum16(y[b].qs + 16 * i);
    }
}

/* ---- shared by the quantized dots ---- */

/* Row pointers for nr rows, the missing ones repeating the last (computed, never stored) */
LM__INLINE void lm__n_rows(const char *w, size_t ws, int nr, const char **rows) {
    for (int r = 0; r < LM__MR; r++) rows[r] = w + (size_t)(r < nr ? r : nr - 1) * ws;
}

/* acc[c][r] -> out[c * os + r] for r < nr, c < nc */
LM__INLINE void lm__n_store(float (*acc)[LM__MR], int nr, int nc, float *out, size_t os) {
    for (int c = 0; c < nc; c++) memcpy(out + (size_t)c * os, acc[c], (size_t)nr * sizeof(float));
}

/* ---- legacy types: a block's 32 levels as int16, then 4 rows' block sums per vector ---- */

/* levels lo = qs & 15 (elements 0-15), hi = qs >> 4 (16-31), | hb, minus off, as int16 */
LM__INLINE void lm__n_lv16(uint8x16_t lo, uint8x16_t hi, int off, int16_t *q) {
    const int8x16_t l = vsubq_s8(vreinterpretq_s8_u8(lo), vdupq_n_s8((int8_t)off));
    const int8x16_t h = vsubq_s8(vreinterpretq_s8_u8(hi), vdupq_n_s8((int8_t)off));
    vst1q_s16(q, vmovl_s8(vget_low_s8(l)));
    vst1q_s16(q + 8, vmovl_high_s8(l));
    vst1q_s16(q + 16, vmovl_s8(vget_low_s8(h)));
    vst1q_s16(q + 24, vmovl_high_s8(h));
}

/* 0x10 in byte j where bit j of the 16 bits is set */
LM__INLINE uint8x16_t lm__n_bit4x16(uint32_t bits) {
    static const uint8_t m[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t b = vcombine_u8(vdup_n_u8((uint8_t)bits), vdup_n_u8((uint8_t)(bits >> 8)));
    return vandq_u8(vtstq_u8(b, vld1q_u8(m)), vdupq_n_u8(0x10));
}

LM__INLINE void lm__n_lv_q4(const uint8_t *qs, int off, int16_t *q) {
    const uint8x16_t v = vld1q_u8(qs);
    lm__n_lv16(vandq_u8(v, vdupq_n_u8(0x0f)), vshrq_n_u8(v, 4), off, q);
}

LM__INLINE void lm__n_lv_q5(const uint8_t *qs, const uint8_t *qhb, int off, int16_t *q) {
    const uint32_t qh = lm_load_u32le(qhb);
    const uint8x16_t v = vld1q_u8(qs);
    lm__n_lv16(vorrq_u8(vandq_u8(v, vdupq_n_u8(0x0f)), lm__n_bit4x16(qh)),
               vorrq_u8(vshrq_n_u8(v, 4), lm__n_bit4x16(qh >> 16)), off, q);
}

LM__INLINE void lm__n_lv_q4_0(const void *b, int16_t *q) {
    lm__n_lv_q4(((const lm_block_q4_0 *)b)->qs, 8, q);
}
LM__INLINE void lm__n_lv_q4_1(const void *b, int16_t *q) {
    lm__n_lv_q4(((const lm_block_q4_1 *)b)->qs, 0, q);
}
LM__INLINE void lm__n_lv_q5_0(const void *b, int16_t *q) {
    lm__n_lv_q5(((const lm_block_q5_0 *)b)->qs, ((const lm_block_q5_0 *)b)->qh, 16, q);
}
LM__INLINE void lm__n_lv_q5_1(const void *b, int16_t *q) {
    lm__n_lv_q5(((const lm_block_q5_1 *)b)->qs, ((const lm_block_q5_1 *)b)->qh, 0, q);
}
LM__INLINE void lm__n_lv_q8_0(const void *b, int16_t *q) {
    const int8x16_t v0 = vld1q_s8(((const lm_block_q8_0 *)b)->qs);
    const int8x16_t v1 = vld1q_s8(((const lm_block_q8_0 *)b)->qs + 16);
    vst1q_s16(q, vmovl_s8(vget_low_s8(v0)));
    vst1q_s16(q + 8, vmovl_high_s8(v0));
    vst1q_s16(q + 16, vmovl_s8(vget_low_s8(v1)));
    vst1q_s16(q + 24, vmovl_high_s8(v1));
}

/* One row's block products with a column in 4 int32 lanes: 8 products of an int8 level
 * and an int16 activation per lane, < 2^26. */
LM__INLINE int32x4_t lm__n_dot32(const int16_t *q, const int16x8_t *a) {
    int32x4_t s = vdupq_n_s32(0);
    for (int k = 0; k < 4; k++) {
        const int16x8_t w = vld1q_s16(q + 8 * k);
        s = vmlal_s16(s, vget_low_s16(w), vget_low_s16(a[k]));
        s = vmlal_high_s16(s, w, a[k]);
    }
    return s;
}

/* the lane sums of 4 rows' vectors: [sum p0, sum p1, sum p2, sum p3] */
LM__INLINE int32x4_t lm__n_hsum4(int32x4_t p0, int32x4_t p1, int32x4_t p2, int32x4_t p3) {
    return vpaddq_s32(vpaddq_s32(p0, p1), vpaddq_s32(p2, p3));
}

typedef void (*lm__n_unpack32_fn)(const void *blk, int16_t *q);

/* Per block: the 8 rows' levels are unpacked once for all columns, then each column's
 * term, (dw * da) * (float)isum [+ m * sa], is evaluated for 4 rows per vector and added
 * to the running sums in block order (cpu_dot_scalar.c's lm__row_legacy). d is the
 * block's first half, m (with a min) the second. */
LM__INLINE void lm__n_qdot_legacy(const char *w, size_t ws, int nr, const char *va, size_t as,
                                  int nc, int64_t nb, float *out, size_t os, size_t bsize,
                                  lm__n_unpack32_fn unpack, int has_min) {
    float acc[LM__NC][LM__MR];
    memset(acc, 0, (size_t)nc * sizeof acc[0]);
    const char *rows[LM__MR];
    lm__n_rows(w, ws, nr, rows);
    const int ng = nr > 4 ? 2 : 1; /* groups of 4 rows */
    for (int64_t b = 0; b < nb; b++) {
        int16_t lv[LM__MR][32];
        uint16_t dh[LM__MR], mh[LM__MR];
        for (int r = 0; r < 4 * ng; r++) {
            const char *blk = rows[r] + (size_t)b * bsize;
            unpack(blk, lv[r]);
            memcpy(&dh[r], blk, 2);
            memcpy(&mh[r], blk + 2, 2);
        }
        float32x4_t dw[2], m[2];
        for (int g = 0; g < ng; g++) {
            dw[g] = lm__n_f16x4(vld1_u16(dh + 4 * g));
            m[g] = lm__n_f16x4(vld1_u16(mh + 4 * g));
        }
        for (int c = 0; c < nc; c++) {
            const lm__q16a *a = (const lm__q16a *)(va + (size_t)c * as) + b;
            int16x8_t av[4];
            for (int k = 0; k < 4; k++) av[k] = vld1q_s16(a->qs + 8 * k);
            for (int g = 0; g < ng; g++) {
                int16_t(*q)[32] = lv + 4 * g;
                const int32x4_t isum = lm__n_hsum4(lm__n_dot32(q[0], av), lm__n_dot32(q[1], av),
                                                   lm__n_dot32(q[2], av), lm__n_dot32(q[3], av));
                float32x4_t t = vmulq_f32(vmulq_n_f32(dw[g], a->d), vcvtq_f32_s32(isum));
                if (has_min) t = vaddq_f32(t, vmulq_n_f32(m[g], a->s));
                vst1q_f32(acc[c] + 4 * g, vaddq_f32(vld1q_f32(acc[c] + 4 * g), t));
            }
        }
    }
    lm__n_store(acc, nr, nc, out, os);
}

#define LM__QDOT_LEGACY_N(name, blk_t, unpack, has_min)                                            \
    static void name(const void *w, size_t ws, size_t wb, int nr, const void *va, size_t as,       \
                     int nc, int64_t nb, float *out, size_t os) {                                  \
        lm__n_qdot_legacy(w, ws, nr, va, as, nc, nb, out, os, wb, unpack, has_min);                \
    }
LM__QDOT_LEGACY_N(lm__n_qdot_q4_0, lm_block_q4_0, lm__n_lv_q4_0, 0)
LM__QDOT_LEGACY_N(lm__n_qdot_q4_1, lm_block_q4_1, lm__n_lv_q4_1, 1)
LM__QDOT_LEGACY_N(lm__n_qdot_q5_0, lm_block_q5_0, lm__n_lv_q5_0, 0)
LM__QDOT_LEGACY_N(lm__n_qdot_q5_1, lm_block_q5_1, lm__n_lv_q5_1, 1)
LM__QDOT_LEGACY_N(lm__n_qdot_q8_0, lm_block_q8_0, lm__n_lv_q8_0, 0)

/* ---- k-quants: scale * level as int16 per row, the block sum in int64 ---- */

/* A block's 256 (scale * level) products as int16 (|scale * level| <= 4096) and its 16
 * chunk mins, from the shared unpackers: the integers of lm__row_k, regrouped exactly. */
typedef void (*lm__n_kprep_fn)(const void *blk, int16_t *w16, int16_t *mn);

LM__INLINE void lm__n_kscale(const int8_t *q, const int16_t *sc, int16_t *w16) {
    for (int t = 0; t < 16; t++) {
        const int8x16_t v = vld1q_s8(q + 16 * t);
        vst1q_s16(w16 + 16 * t, vmulq_n_s16(vmovl_s8(vget_low_s8(v)), sc[t]));
        vst1q_s16(w16 + 16 * t + 8, vmulq_n_s16(vmovl_high_s8(v), sc[t]));
    }
}

#define LM__KPREP_N(name, blk_t, unpack, scales)                                                   \
    LM__INLINE void name(const void *blk, int16_t *w16, int16_t *mn) {                             \
        int8_t q[LM_QK_K];                                                                         \
        int16_t sc[16];                                                                            \
        unpack((const blk_t *)blk, q);                                                             \
        scales(blk, sc, mn);                                                                       \
        lm__n_kscale(q, sc, w16);                                                                  \
    }
LM__KPREP_N(lm__n_kprep_q2_K, lm_block_q2_K, lm__unpack_q2_K, lm__scales_q2_K)
LM__KPREP_N(lm__n_kprep_q3_K, lm_block_q3_K, lm__unpack_q3_K, lm__scales_q3_K)
LM__KPREP_N(lm__n_kprep_q5_K, lm_block_q5_K, lm__unpack_q5_K, lm__scales_k4)

/* q4_K in NEON: nibble pairs of 32 bytes, sub-block i's scale on both its chunks */
LM__INLINE void lm__n_kprep_q4_K(const void *blk, int16_t *w16, int16_t *mn) {
    const lm_block_q4_K *w = blk;
    int16_t sc[16];
    lm__scales_k4(blk, sc, mn);
    for (int p = 0; p < 4; p++)
        for (int h = 0; h < 2; h++) { /* bytes 32 p + 16 h .. + 16 */
            const uint8x16_t v = vld1q_u8(w->qs + 32 * p + 16 * h);
            const int8x16_t lo = vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0f)));
            const int8x16_t hi = vreinterpretq_s8_u8(vshrq_n_u8(v, 4));
            int16_t *o = w16 + 64 * p + 16 * h; /* low nibbles: elements 64 p + l */
            const int16_t sl = sc[4 * p + h], sh = sc[4 * p + 2 + h];
            vst1q_s16(o, vmulq_n_s16(vmovl_s8(vget_low_s8(lo)), sl));
            vst1q_s16(o + 8, vmulq_n_s16(vmovl_high_s8(lo), sl));
            vst1q_s16(o + 32, vmulq_n_s16(vmovl_s8(vget_low_s8(hi)), sh));
            vst1q_s16(o + 40, vmulq_n_s16(vmovl_high_s8(hi), sh));
        }
}

/* q6_K in NEON: 4 bits of ql, 2 of qh, minus 32 (lm__unpack_q6_K's layout) */
LM__INLINE void lm__n_kprep_q6_K(const void *blk, int16_t *w16, int16_t *mn) {
    const lm_block_q6_K *w = blk;
    const uint8x16_t m4 = vdupq_n_u8(0x0f), m2 = vdupq_n_u8(3);
    const int8x16_t off = vdupq_n_s8(32);
    memset(mn, 0, 16 * sizeof *mn);
    for (int h = 0; h < 2; h++)
        for (int s = 0; s < 2; s++) { /* l = 16 s .. 16 s + 16 */
            const uint8_t *ql = w->ql + 64 * h + 16 * s, *qh = w->qh + 32 * h + 16 * s;
            const uint8x16_t l0 = vld1q_u8(ql), l1 = vld1q_u8(ql + 32), vh = vld1q_u8(qh);
            uint8x16_t u[4];
            u[0] = vorrq_u8(vandq_u8(l0, m4), vshlq_n_u8(vandq_u8(vh, m2), 4));
            u[1] = vorrq_u8(vandq_u8(l1, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(vh, 2), m2), 4));
            u[2] = vorrq_u8(vshrq_n_u8(l0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(vh, 4), m2), 4));
            u[3] = vorrq_u8(vshrq_n_u8(l1, 4), vshlq_n_u8(vshrq_n_u8(vh, 6), 4));
            for (int k = 0; k < 4; k++) { /* elements 128 h + 32 k + 16 s: chunk 8 h + 2 k + s */
                const int t = 8 * h + 2 * k + s;
                const int16_t sc = w->scales[t];
                const int8x16_t v = vsubq_s8(vreinterpretq_s8_u8(u[k]), off);
                vst1q_s16(w16 + 16 * t, vmulq_n_s16(vmovl_s8(vget_low_s8(v)), sc));
                vst1q_s16(w16 + 16 * t + 8, vmulq_n_s16(vmovl_high_s8(v), sc));
            }
        }
}

/* isum = sum of w16 * a over the block, exact: per 16-element chunk 4 int32 lanes of 4
 * products (< 2^29), widened pairwise into int64 */
LM__INLINE int64_t lm__n_kdot(const int16_t *w16, const int16_t *qa) {
    int64x2_t acc = vdupq_n_s64(0);
    for (int t = 0; t < 16; t++) {
        const int16x8_t w0 = vld1q_s16(w16 + 16 * t), w1 = vld1q_s16(w16 + 16 * t + 8);
        const int16x8_t a0 = vld1q_s16(qa + 16 * t), a1 = vld1q_s16(qa + 16 * t + 8);
        int32x4_t s = vmull_s16(vget_low_s16(w0), vget_low_s16(a0));
        s = vmlal_high_s16(s, w0, a0);
        s = vmlal_s16(s, vget_low_s16(w1), vget_low_s16(a1));
        s = vmlal_high_s16(s, w1, a1);
        acc = vpadalq_s32(acc, s);
    }
    return vaddvq_s64(acc);
}

/* msum = sum mn[t] * bsums[t], exact in int64 */
LM__INLINE int64_t lm__n_kmin(const int16_t *mn, const int32_t *bsums) {
    int64x2_t acc = vdupq_n_s64(0);
    for (int t = 0; t < 16; t += 4) {
        const int32x4_t m = vmovl_s16(vld1_s16(mn + t)), s = vld1q_s32(bsums + t);
        acc = vmlal_s32(acc, vget_low_s32(m), vget_low_s32(s));
        acc = vmlal_high_s32(acc, m, s);
    }
    return vaddvq_s64(acc);
}

/* Per block: the rows are prepared once for all columns; each output's term is
 * cpu_dot_scalar.c's lm__row_k expression on the same integers and halves. */
LM__INLINE void lm__n_qdot_k(const char *w, size_t ws, int nr, const char *va, size_t as, int nc,
                             int64_t nb, float *out, size_t os, size_t bsize, lm__n_kprep_fn prep,
                             int d_off, int dmin_off) {
    float acc[LM__NC][LM__MR];
    memset(acc, 0, (size_t)nc * sizeof acc[0]);
    for (int64_t b = 0; b < nb; b++) {
        int16_t w16[LM__MR][LM_QK_K], mn[LM__MR][16];
        float dw[LM__MR], dmin[LM__MR];
        for (int r = 0; r < nr; r++) {
            const char *blk = w + (size_t)r * ws + (size_t)b * bsize;
            uint16_t h;
            prep(blk, w16[r], mn[r]);
            memcpy(&h, blk + d_off, 2);
            dw[r] = lm_fp16_to_fp32(h);
            if (dmin_off >= 0) {
                memcpy(&h, blk + dmin_off, 2);
                dmin[r] = lm_fp16_to_fp32(h);
            }
        }
        for (int c = 0; c < nc; c++) {
            const lm__q16k *a = (const lm__q16k *)(va + (size_t)c * as) + b;
            for (int r = 0; r < nr; r++) {
                const int64_t isum = lm__n_kdot(w16[r], a->qs);
                if (dmin_off >= 0) {
                    const int64_t msum = lm__n_kmin(mn[r], a->bsums);
                    acc[c][r] += a->d * (dw[r] * (float)isum - dmin[r] * (float)msum);
                } else {
                    acc[c][r] += a->d * (dw[r] * (float)isum);
                }
            }
        }
    }
    lm__n_store(acc, nr, nc, out, os);
}

#define LM__OFF(T, f) (int)offsetof(T, f)
#define LM__QDOT_K_N(name, blk_t, prep, d_off, dmin_off)                                           \
    static void name(const void *w, size_t ws, size_t wb, int nr, const void *va, size_t as,       \
                     int nc, int64_t nb, float *out, size_t os) {                                  \
        lm__n_qdot_k(w, ws, nr, va, as, nc, nb, out, os, wb, prep, d_off, dmin_off);               \
    }
LM__QDOT_K_N(lm__n_qdot_q2_K, lm_block_q2_K, lm__n_kprep_q2_K, LM__OFF(lm_block_q2_K, d),
             LM__OFF(lm_block_q2_K, dmin))
LM__QDOT_K_N(lm__n_qdot_q3_K, lm_block_q3_K, lm__n_kprep_q3_K, LM__OFF(lm_block_q3_K, d), -1)
LM__QDOT_K_N(lm__n_qdot_q4_K, lm_block_q4_K, lm__n_kprep_q4_K, LM__OFF(lm_block_q4_K, d),
             LM__OFF(lm_block_q4_K, dmin))
LM__QDOT_K_N(lm__n_qdot_q5_K, lm_block_q5_K, lm__n_kprep_q5_K, LM__OFF(lm_block_q5_K, d),
             LM__OFF(lm_block_q5_K, dmin))
LM__QDOT_K_N(lm__n_qdot_q6_K, lm_block_q6_K, lm__n_kprep_q6_K, LM__OFF(lm_block_q6_K, d), -1)

bool lm__cpu_kernels_neon(lm__cpu_kernels *k) {
    lm__cpu_kernels_scalar(k); /* the GLUs stay scalar (libm), as the oracle */
    k->level = LM__CPU_NEON;
    k->qdot[LM_TYPE_Q4_0] = lm__n_qdot_q4_0;
    k->qdot[LM_TYPE_Q4_1] = lm__n_qdot_q4_1;
    k->qdot[LM_TYPE_Q5_0] = lm__n_qdot_q5_0;
    k->qdot[LM_TYPE_Q5_1] = lm__n_qdot_q5_1;
    k->qdot[LM_TYPE_Q8_0] = lm__n_qdot_q8_0;
    k->qdot[LM_TYPE_Q2_K] = lm__n_qdot_q2_K;
    k->qdot[LM_TYPE_Q3_K] = lm__n_qdot_q3_K;
    k->qdot[LM_TYPE_Q4_K] = lm__n_qdot_q4_K;
    k->qdot[LM_TYPE_Q5_K] = lm__n_qdot_q5_K;
    k->qdot[LM_TYPE_Q6_K] = lm__n_qdot_q6_K;
    k->fdot[LM_TYPE_F32] = lm__n_fdot_f32;
    k->fdot[LM_TYPE_F16] = lm__n_fdot_f16;
    k->fdot[LM_TYPE_BF16] = lm__n_fdot_bf16;
    k->f16_to_f32 = lm__n_f16_to_f32;
    k->attn_pv = lm__n_attn_pv;
    k->attn_qk = lm__n_attn_qk;
    k->attn_pv_f16 = lm__n_attn_pv_f16;
    k->attn_qk_f16 = lm__n_attn_qk_f16;
    k->attn_soft = lm__n_attn_soft;
    k->quantize_q16a = lm__n_quantize_q16a;
    k->quantize_q16k = lm__n_quantize_q16k;
    return true;
}

#else
bool lm__cpu_kernels_neon(lm__cpu_kernels *k) {
    (void)k;
    return false;
}
#endif
