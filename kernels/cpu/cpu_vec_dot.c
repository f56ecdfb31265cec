/* Dot products of one quantized weight row with one quantized activation row, as ggml's
 * vec_dot_*_q8_*: within a block the products are integers (exact), then scaled by the
 * block's float scales and added to a float sum in block order.
 *
 * Activations are quantized to 16 bits (ggml uses 8): per block of 32 (lm__q16a, with the
 * block's sum for the types with a min) or of 256 for the k-quants (lm__q16k, with
 * 16-element sums that apply the mins once per sub-block). 16 bits cost the same integer
 * instructions as 8 here (pmaddwd), and keep the error of x's quantization (amax / 65534
 * per element) far below the weights' own: results stay within float rounding of a float
 * matmul, where 8 bits moved SmolLM2's logits by up to 0.7.
 *
 * Each type has a scalar version and, on x86-64 CPUs with AVX2 (checked at run time), an
 * AVX2 one. Only the integer sums differ in how they are computed, and integers are
 * exact; the float part is the same code in both (one macro), never contracted into FMAs
 * (ISO C mode). So a result depends only on the row's data: not on the thread count, not
 * on the CPU. */
#include "cpu_internal.h"

#include "../common/lm_quant_math.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(LM_NO_AVX2)
#define LM__X86 1
#include <cpuid.h>
#include <immintrin.h>
#define LM__AVX2 __attribute__((target("avx2,f16c")))
#endif

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

/* ---- integer sums of one block, scalar ---- */

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
static void lm__unpack_q2_K(const lm_block_q2_K *w, int8_t *q) {
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++)
                q[128 * h + 32 * k + l] = (int8_t)((w->qs[32 * h + l] >> (2 * k)) & 3);
}

static void lm__unpack_q3_K(const lm_block_q3_K *w, int8_t *q) {
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                const int lo = (w->qs[32 * h + l] >> (2 * k)) & 3;
                const int hi = (w->hmask[l] >> (4 * h + k)) & 1;
                q[128 * h + 32 * k + l] = (int8_t)(lo - 4 + 4 * hi);
            }
}

static void lm__unpack_q4_K(const lm_block_q4_K *w, int8_t *q) {
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < 32; l++) {
            q[64 * p + l] = (int8_t)(w->qs[32 * p + l] & 0x0f);
            q[64 * p + 32 + l] = (int8_t)(w->qs[32 * p + l] >> 4);
        }
}

static void lm__unpack_q5_K(const lm_block_q5_K *w, int8_t *q) {
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < 32; l++) {
            const int h = w->qh[l] >> (2 * p);
            q[64 * p + l] = (int8_t)((w->qs[32 * p + l] & 0x0f) | ((h & 1) << 4));
            q[64 * p + 32 + l] = (int8_t)((w->qs[32 * p + l] >> 4) | ((h & 2) << 3));
        }
}

static void lm__unpack_q6_K(const lm_block_q6_K *w, int8_t *q) {
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

/* s[i] = sum of q[l] a[l] over elements [16 i, 16 i + 16) of a super-block */
static void lm__sums16(const int8_t *restrict q, const int16_t *restrict a, int32_t *s) {
    for (int i = 0; i < 16; i++) s[i] = lm__dot_i8(q + 16 * i, a + 16 * i, 16);
}

/* ---- integer sums, AVX2 ---- */

#ifdef LM__X86
/* sum of the 8 int32 lanes */
LM__AVX2 static inline int lm__hsum8(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* 8 int32 lanes of q * a over 16 elements: q int8 widened, a int16 (exact: pair sums are
 * at most 2 * 128 * 32767 < 2^31) */
LM__AVX2 static inline __m256i lm__madd16(__m128i q8, const int16_t *a) {
    return _mm256_madd_epi16(_mm256_cvtepi8_epi16(q8), _mm256_loadu_si256((const __m256i *)a));
}

/* 32 nibbles of a legacy block: low nibbles are elements 0..15, high 16..31 */
LM__AVX2 static inline __m256i lm__nibbles32(const uint8_t *qs) {
    const __m128i v = _mm_loadu_si128((const __m128i *)qs);
    const __m128i m = _mm_set1_epi8(0x0f);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));
}

/* byte j = 0x10 where bit j of the 32-bit qh is set */
LM__AVX2 static inline __m256i lm__bits32(const uint8_t *qhb) {
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                           0x0101010101010101, 0x0000000000000000);
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)lm_load_u32le(qhb)), shuf);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit),
                            _mm256_set1_epi8(0x10));
}

LM__AVX2 static inline int lm__dot32_avx2(__m256i q, const int16_t *a) {
    return lm__hsum8(_mm256_add_epi32(lm__madd16(_mm256_castsi256_si128(q), a),
                                      lm__madd16(_mm256_extracti128_si256(q, 1), a + 16)));
}

/* the 4 sums of 16 products for elements [64 g, 64 g + 64): lane i of each madd16 vector
 * summed in an hadd tree */
LM__AVX2 static inline __m128i lm__sums4_avx2(const int8_t *q, const int16_t *a) {
    __m256i p[4];
    for (int i = 0; i < 4; i++)
        p[i] = lm__madd16(_mm_loadu_si128((const __m128i *)(q + 16 * i)), a + 16 * i);
    const __m256i h =
        _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

LM__AVX2 static void lm__sums16_avx2(const int8_t *q, const int16_t *a, int32_t *s) {
    for (int g = 0; g < 4; g++)
        _mm_storeu_si128((__m128i *)(s + 4 * g), lm__sums4_avx2(q + 64 * g, a + 64 * g));
}
#endif

/* ---- the dot products: one body per type, instantiated scalar and AVX2 ----
 * Each call takes nc <= LM__DOT_COLS activation columns (stride bytes apart) and unpacks
 * each weight block once for all of them; a column's float sum runs in block order
 * whatever nc is, so its result does not depend on the batch. UNPACK(w) gives a block's
 * levels (QT), ISUM(q, a) their integer dot with a column, F16(h) converts a half. */

#define LM__F16_C(h) lm_fp16_to_fp32(h)
#ifdef LM__X86
#define LM__F16_X(h) _cvtsh_ss(h)
#endif

#define LM__COL(T, va, stride, c) ((const T *)((const char *)(va) + (size_t)(c) * (stride)))

/* no min: x = d q;  with a min: x = d q + m, sum x a = d da sum(q qa) + m (da sum qa) */
#define LM__DOT_LEGACY(ATTR, name, blk_t, QT, UNPACK, ISUM, F16, MIN_TERM)                         \
    ATTR static void name(const void *vw, const void *va, size_t stride, int nc, int64_t nb,       \
                          float *out) {                                                            \
        const blk_t *w = vw;                                                                       \
        float acc[LM__DOT_COLS] = {0};                                                             \
        for (int64_t b = 0; b < nb; b++) {                                                         \
            const QT q = UNPACK(&w[b]);                                                            \
            const float dw = F16(w[b].d);                                                          \
            for (int c = 0; c < nc; c++) {                                                         \
                const lm__q16a *a = LM__COL(lm__q16a, va, stride, c) + b;                          \
                const int s = ISUM(q, a->qs);                                                      \
                acc[c] += dw * a->d * (float)s MIN_TERM(F16);                                      \
            }                                                                                      \
        }                                                                                          \
        for (int c = 0; c < nc; c++) out[c] = acc[c];                                              \
    }
#define LM__NO_MIN(F16)
#define LM__MIN(F16) +F16(w[b].m) * a->s

typedef struct {
    int8_t v[32];
} lm__lv32;

static inline lm__lv32 lm__lv_q4_0(const lm_block_q4_0 *w) {
    lm__lv32 q;
    lm__unpack_q4(w->qs, 8, q.v);
    return q;
}
static inline lm__lv32 lm__lv_q4_1(const lm_block_q4_1 *w) {
    lm__lv32 q;
    lm__unpack_q4(w->qs, 0, q.v);
    return q;
}
static inline lm__lv32 lm__lv_q5_0(const lm_block_q5_0 *w) {
    lm__lv32 q;
    lm__unpack_q5(w->qs, w->qh, 16, q.v);
    return q;
}
static inline lm__lv32 lm__lv_q5_1(const lm_block_q5_1 *w) {
    lm__lv32 q;
    lm__unpack_q5(w->qs, w->qh, 0, q.v);
    return q;
}
static inline lm__lv32 lm__lv_q8_0(const lm_block_q8_0 *w) {
    lm__lv32 q;
    memcpy(q.v, w->qs, 32);
    return q;
}
#define LM__ISUM_C(q, a) lm__dot_i8((q).v, (a), 32)

LM__DOT_LEGACY(, lm__dot_q4_0, lm_block_q4_0, lm__lv32, lm__lv_q4_0, LM__ISUM_C, LM__F16_C,
               LM__NO_MIN)
LM__DOT_LEGACY(, lm__dot_q4_1, lm_block_q4_1, lm__lv32, lm__lv_q4_1, LM__ISUM_C, LM__F16_C, LM__MIN)
LM__DOT_LEGACY(, lm__dot_q5_0, lm_block_q5_0, lm__lv32, lm__lv_q5_0, LM__ISUM_C, LM__F16_C,
               LM__NO_MIN)
LM__DOT_LEGACY(, lm__dot_q5_1, lm_block_q5_1, lm__lv32, lm__lv_q5_1, LM__ISUM_C, LM__F16_C, LM__MIN)
LM__DOT_LEGACY(, lm__dot_q8_0, lm_block_q8_0, lm__lv32, lm__lv_q8_0, LM__ISUM_C, LM__F16_C,
               LM__NO_MIN)

#ifdef LM__X86
LM__AVX2 static inline __m256i lm__lvx_q4_0(const lm_block_q4_0 *w) {
    return _mm256_sub_epi8(lm__nibbles32(w->qs), _mm256_set1_epi8(8));
}
LM__AVX2 static inline __m256i lm__lvx_q4_1(const lm_block_q4_1 *w) {
    return lm__nibbles32(w->qs);
}
LM__AVX2 static inline __m256i lm__lvx_q5_0(const lm_block_q5_0 *w) {
    const __m256i q = _mm256_or_si256(lm__nibbles32(w->qs), lm__bits32(w->qh));
    return _mm256_sub_epi8(q, _mm256_set1_epi8(16));
}
LM__AVX2 static inline __m256i lm__lvx_q5_1(const lm_block_q5_1 *w) {
    return _mm256_or_si256(lm__nibbles32(w->qs), lm__bits32(w->qh));
}
LM__AVX2 static inline __m256i lm__lvx_q8_0(const lm_block_q8_0 *w) {
    return _mm256_loadu_si256((const __m256i *)w->qs);
}
#define LM__ISUM_X(q, a) lm__dot32_avx2((q), (a))

LM__DOT_LEGACY(LM__AVX2, lm__dot_q4_0_x, lm_block_q4_0, __m256i, lm__lvx_q4_0, LM__ISUM_X,
               LM__F16_X, LM__NO_MIN)
LM__DOT_LEGACY(LM__AVX2, lm__dot_q4_1_x, lm_block_q4_1, __m256i, lm__lvx_q4_1, LM__ISUM_X,
               LM__F16_X, LM__MIN)
LM__DOT_LEGACY(LM__AVX2, lm__dot_q5_0_x, lm_block_q5_0, __m256i, lm__lvx_q5_0, LM__ISUM_X,
               LM__F16_X, LM__NO_MIN)
LM__DOT_LEGACY(LM__AVX2, lm__dot_q5_1_x, lm_block_q5_1, __m256i, lm__lvx_q5_1, LM__ISUM_X,
               LM__F16_X, LM__MIN)
LM__DOT_LEGACY(LM__AVX2, lm__dot_q8_0_x, lm_block_q8_0, __m256i, lm__lvx_q8_0, LM__ISUM_X,
               LM__F16_X, LM__NO_MIN)
#endif

/* k-quants: unpack the block's levels once, then per column 16 sums of 16 products, the
 * scales (in 64-bit: a scaled sum can pass 2^31) and one float combination per block:
 * a.d (d isum - dmin msum) */
#define LM__DOT_K(ATTR, name, blk_t, UNPACK, SUMS16, F16, COMBINE)                                 \
    ATTR static void name(const void *vw, const void *va, size_t stride, int nc, int64_t nb,       \
                          float *out) {                                                            \
        const blk_t *w = vw;                                                                       \
        float acc[LM__DOT_COLS] = {0};                                                             \
        for (int64_t b = 0; b < nb; b++) {                                                         \
            int8_t q[LM_QK_K];                                                                     \
            UNPACK(&w[b], q);                                                                      \
            for (int c = 0; c < nc; c++) {                                                         \
                const lm__q16k *a = LM__COL(lm__q16k, va, stride, c) + b;                          \
                int32_t s16[16];                                                                   \
                int64_t isum = 0, msum = 0;                                                        \
                SUMS16(q, a->qs, s16);                                                             \
                COMBINE(&w[b], a, s16, &isum, &msum);                                              \
                acc[c] += a->d * (F16(w[b].d) * (float)isum LM__K_MIN_##COMBINE(F16));             \
            }                                                                                      \
        }                                                                                          \
        for (int c = 0; c < nc; c++) out[c] = acc[c];                                              \
    }
#define LM__K_MIN_lm__comb_q2_K(F16) -F16(w[b].dmin) * (float)msum
#define LM__K_MIN_lm__comb_k4(F16)   -F16(w[b].dmin) * (float)msum
#define LM__K_MIN_lm__comb_q3_K(F16)
#define LM__K_MIN_lm__comb_q6_K(F16)

static inline void lm__comb_q2_K(const lm_block_q2_K *w, const lm__q16k *a, const int32_t *s,
                                 int64_t *isum, int64_t *msum) {
    for (int i = 0; i < 16; i++) {
        *isum += (int64_t)(w->scales[i] & 0x0f) * s[i];
        *msum += (int64_t)(w->scales[i] >> 4) * a->bsums[i];
    }
}
static inline void lm__comb_q3_K(const lm_block_q3_K *w, const lm__q16k *a, const int32_t *s,
                                 int64_t *isum, int64_t *msum) {
    for (int i = 0; i < 16; i++) *isum += (int64_t)(lm_q3_K_scale(w->scales, i) - 32) * s[i];
}
/* q4_K and q5_K share the scales layout (d, dmin, scales[12] at the same offsets) */
static inline void lm__comb_k4(const void *vw, const lm__q16k *a, const int32_t *s, int64_t *isum,
                               int64_t *msum) {
    const uint8_t *scales = ((const lm_block_q4_K *)vw)->scales;
    for (int i = 0; i < 8; i++) {
        int sc, m;
        lm_k4_scale_min(scales, i, &sc, &m);
        *isum += (int64_t)sc * ((int64_t)s[2 * i] + s[2 * i + 1]);
        *msum += (int64_t)m * ((int64_t)a->bsums[2 * i] + a->bsums[2 * i + 1]);
    }
}
static inline void lm__comb_q6_K(const lm_block_q6_K *w, const lm__q16k *a, const int32_t *s,
                                 int64_t *isum, int64_t *msum) {
    for (int i = 0; i < 16; i++) *isum += (int64_t)w->scales[i] * s[i];
}

LM__DOT_K(, lm__dot_q2_K, lm_block_q2_K, lm__unpack_q2_K, lm__sums16, LM__F16_C, lm__comb_q2_K)
LM__DOT_K(, lm__dot_q3_K, lm_block_q3_K, lm__unpack_q3_K, lm__sums16, LM__F16_C, lm__comb_q3_K)
LM__DOT_K(, lm__dot_q4_K, lm_block_q4_K, lm__unpack_q4_K, lm__sums16, LM__F16_C, lm__comb_k4)
LM__DOT_K(, lm__dot_q5_K, lm_block_q5_K, lm__unpack_q5_K, lm__sums16, LM__F16_C, lm__comb_k4)
LM__DOT_K(, lm__dot_q6_K, lm_block_q6_K, lm__unpack_q6_K, lm__sums16, LM__F16_C, lm__comb_q6_K)

#ifdef LM__X86
/* the same unpack loops, compiled for AVX2 so they vectorise with it */
LM__AVX2 static void lm__unpack_q2_K_x(const lm_block_q2_K *w, int8_t *q) {
    lm__unpack_q2_K(w, q);
}
LM__AVX2 static void lm__unpack_q3_K_x(const lm_block_q3_K *w, int8_t *q) {
    lm__unpack_q3_K(w, q);
}
LM__AVX2 static void lm__unpack_q4_K_x(const lm_block_q4_K *w, int8_t *q) {
    lm__unpack_q4_K(w, q);
}
LM__AVX2 static void lm__unpack_q5_K_x(const lm_block_q5_K *w, int8_t *q) {
    lm__unpack_q5_K(w, q);
}
LM__AVX2 static void lm__unpack_q6_K_x(const lm_block_q6_K *w, int8_t *q) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
    const __m256i off = _mm256_set1_epi8(32);
    for (int h = 0; h < 2; h++) {
        const __m256i l0 = _mm256_loadu_si256((const __m256i *)(w->ql + 64 * h));
        const __m256i l1 = _mm256_loadu_si256((const __m256i *)(w->ql + 64 * h + 32));
        const __m256i hb = _mm256_loadu_si256((const __m256i *)(w->qh + 32 * h));
        /* quarter k: low nibble source l0/l1/l0 >> 4/l1 >> 4, high bits qh >> 2k */
        const __m256i lo[4] = {_mm256_and_si256(l0, m4), _mm256_and_si256(l1, m4),
                               _mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                               _mm256_and_si256(_mm256_srli_epi16(l1, 4), m4)};
        for (int k = 0; k < 4; k++) {
            const __m256i hi = _mm256_and_si256(_mm256_srl_epi16(hb, _mm_cvtsi32_si128(2 * k)), m2);
            const __m256i v = _mm256_or_si256(lo[k], _mm256_slli_epi16(hi, 4));
            _mm256_storeu_si256((__m256i *)(q + 128 * h + 32 * k), _mm256_sub_epi8(v, off));
        }
    }
}

LM__DOT_K(LM__AVX2, lm__dot_q2_K_x, lm_block_q2_K, lm__unpack_q2_K_x, lm__sums16_avx2, LM__F16_X,
          lm__comb_q2_K)
LM__DOT_K(LM__AVX2, lm__dot_q3_K_x, lm_block_q3_K, lm__unpack_q3_K_x, lm__sums16_avx2, LM__F16_X,
          lm__comb_q3_K)
LM__DOT_K(LM__AVX2, lm__dot_q4_K_x, lm_block_q4_K, lm__unpack_q4_K_x, lm__sums16_avx2, LM__F16_X,
          lm__comb_k4)
LM__DOT_K(LM__AVX2, lm__dot_q5_K_x, lm_block_q5_K, lm__unpack_q5_K_x, lm__sums16_avx2, LM__F16_X,
          lm__comb_k4)
LM__DOT_K(LM__AVX2, lm__dot_q6_K_x, lm_block_q6_K, lm__unpack_q6_K_x, lm__sums16_avx2, LM__F16_X,
          lm__comb_q6_K)
#endif

/* ---- the table ---- */

static const struct {
    lm_type type;
    lm__vec_dot_fn scalar, avx2;
} lm__dots[] = {
#ifdef LM__X86
#define LM__X(T, f)                                                                                \
    { LM_TYPE_##T, f, f##_x }
#else
#define LM__X(T, f)                                                                                \
    { LM_TYPE_##T, f, NULL }
#endif
    LM__X(Q4_0, lm__dot_q4_0), LM__X(Q4_1, lm__dot_q4_1), LM__X(Q5_0, lm__dot_q5_0),
    LM__X(Q5_1, lm__dot_q5_1), LM__X(Q8_0, lm__dot_q8_0), LM__X(Q2_K, lm__dot_q2_K),
    LM__X(Q3_K, lm__dot_q3_K), LM__X(Q4_K, lm__dot_q4_K), LM__X(Q5_K, lm__dot_q5_K),
    LM__X(Q6_K, lm__dot_q6_K),
#undef LM__X
};

static int lm__use_avx2(void) {
#ifdef LM__X86
    static int cached = -1; /* benign race: every thread computes the same value */
    if (cached < 0) {
        __builtin_cpu_init();
        unsigned a, b, c, d; /* F16C: CPUID.1:ECX bit 29 (clang's builtin does not know it) */
        const int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
        cached = __builtin_cpu_supports("avx2") && f16c;
    }
    return cached;
#else
    return 0;
#endif
}

bool lm__cpu_vec_dot_get(lm_type type, lm__vec_dot *out) {
    for (size_t i = 0; i < sizeof lm__dots / sizeof lm__dots[0]; i++) {
        if (lm__dots[i].type != type) continue;
        const int k = lm_type_get((uint32_t)type).blck == LM_QK_K;
        out->fn = lm__use_avx2() && lm__dots[i].avx2 ? lm__dots[i].avx2 : lm__dots[i].scalar;
        out->scalar = lm__dots[i].scalar;
        out->act_blck = k ? LM_QK_K : LM_QK8_0;
        out->act_size = k ? sizeof(lm__q16k) : sizeof(lm__q16a);
        return true;
    }
    return false;
}
