/* Device-side helpers shared by the CUDA kernels: tensor views, warp reductions, dp4a,
 * loads from 2-byte aligned block data, and per weight type the unpacking of a block into
 * packed int8 levels for the integer dot products. Block layouts and scale decoding come
 * from kernels/common (lm_quant_blocks.h, lm_quant_math.h): the same definitions the CPU
 * tests check. */
#ifndef LM_CUDA_COMMON_CUH
#define LM_CUDA_COMMON_CUH

#include "cuda_internal.h"

#include "../common/lm_quant_math.h"

#include <cuda_fp16.h>

/* ---- tensor views as kernel arguments ---- */

typedef struct lm__cu_view {
    char *p;
    int64_t ne[4];
    int64_t nb[4]; /* bytes */
} lm__cu_view;

static inline lm__cu_view lm__cu_view_of(const lm_tensor *t) {
    lm__cu_view v;
    v.p = lm__cu_data(t);
    for (int i = 0; i < 4; i++) {
        v.ne[i] = t->ne[i];
        v.nb[i] = (int64_t)t->nb[i];
    }
    return v;
}

/* Row (i1, i2, i3) and row r of the flattened ne1 * ne2 * ne3 rows. */
__device__ __forceinline__ char *lm__cu_row(const lm__cu_view &v, int64_t i1, int64_t i2,
                                            int64_t i3) {
    return v.p + i1 * v.nb[1] + i2 * v.nb[2] + i3 * v.nb[3];
}
__device__ __forceinline__ char *lm__cu_row_flat(const lm__cu_view &v, int64_t r) {
    const int64_t i1 = r % v.ne[1], i2 = (r / v.ne[1]) % v.ne[2], i3 = r / (v.ne[1] * v.ne[2]);
    return lm__cu_row(v, i1, i2, i3);
}

/* ---- reductions ---- */

__device__ __forceinline__ float lm__cu_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float lm__cu_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* ---- loads, conversions and arithmetic, also on the host (cuda_selftest.cu checks the
 * integer kernels' arithmetic there, without a device) ---- */

#define LM_CU_HD __host__ __device__ __forceinline__

/* One IEEE rounding per operation: nvcc fuses a * b + c into an FMA unless told not to; on
 * the host (x86-64 without -mfma) there is no fused instruction to contract into. */
#ifdef __CUDA_ARCH__
#define LM_CU_FMUL(a, b) __fmul_rn((a), (b))
#define LM_CU_FADD(a, b) __fadd_rn((a), (b))
#define LM_CU_FSUB(a, b) __fsub_rn((a), (b))
#define LM_CU_FDIV(a, b) __fdiv_rn((a), (b))
#define LM_CU_F2I_RZ(f)  __float2int_rz(f)
#define LM_CU_I2F(i)     __int2float_rn(i)
#define LM_CU_LL2F(i)    __ll2float_rn(i)
#else
#define LM_CU_FMUL(a, b) ((a) * (b))
#define LM_CU_FADD(a, b) ((a) + (b))
#define LM_CU_FSUB(a, b) ((a) - (b))
#define LM_CU_FDIV(a, b) ((a) / (b))
#define LM_CU_F2I_RZ(f)  ((int)(f))
#define LM_CU_I2F(i)     ((float)(i))
#define LM_CU_LL2F(i)    ((float)(i))
#endif

/* 4 bytes at a 2-byte aligned address as a little-endian uint32 */
LM_CU_HD uint32_t lm__cu_ld32(const uint8_t *p) {
    const uint16_t *h = (const uint16_t *)p;
    return (uint32_t)h[0] | ((uint32_t)h[1] << 16);
}
/* IEEE half -> float (exact, as lm_fp16_to_fp32, in one instruction) */
LM_CU_HD float lm__cu_h2f(uint16_t h) {
#ifdef __CUDA_ARCH__
    return __half2float(__ushort_as_half(h));
#else
    return lm_fp16_to_fp32(h);
#endif
}

/* sum of 4 products of signed bytes a with signed (ss) or unsigned (su) bytes b, plus c */
LM_CU_HD int lm__cu_dp4a_ss(int a, int b, int c) {
#ifdef __CUDA_ARCH__
    return __dp4a(a, b, c);
#else
    for (int i = 0; i < 4; i++) c += (int8_t)(a >> (8 * i)) * (int8_t)(b >> (8 * i));
    return c;
#endif
}
LM_CU_HD int lm__cu_dp4a_su(int a, unsigned b, int c) {
#ifdef __CUDA_ARCH__
    int d;
    asm("dp4a.s32.u32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
#else
    for (int i = 0; i < 4; i++) c += (int8_t)(a >> (8 * i)) * (int)((b >> (8 * i)) & 255u);
    return c;
#endif
}

/* Byte i of the 4-bit value h moved to bit 4 of byte i (the fifth bit of q5 levels). */
LM_CU_HD int lm__cu_bit4(uint32_t h) {
    return (int)(((h & 1u) << 4) | ((h & 2u) << 11) | ((h & 4u) << 18) | ((h & 8u) << 25));
}

/* ---- weight types for the integer kernels ----
 * A block of QK elements is ITEMS items of 32 elements (1 for the 32-element types, 8 for
 * the k-quants). word(b, it, w) gives the levels of elements 4w .. 4w + 3 of item it as 4
 * bytes, element order, each in [0, 127] (signed int8 for Q8_0): the integer part of
 * x = d * (level - OFF) [+ m] (32-element types) or of the k-quant formulas. Activations
 * (lm__cu_act) give per 16 elements the sum of q (sum16), so an offset is subtracted
 * once per 16 elements: sum (level - off) q = sum level q - off sum16. */

#define LM_CU_LEGACY(NAME, BLK, OFF_, MIN_)                                                        \
    struct NAME {                                                                                  \
        typedef BLK blk;                                                                           \
        enum { QK = 32, SIZE = sizeof(BLK), ITEMS = 1, OFF = OFF_, MIN = MIN_, KQ = 0, SUB = 32 }; \
        LM_CU_HD static int word(const uint8_t *p, int it, int w);                                 \
        LM_CU_HD static void scales(const uint8_t *p, float &d, float &m) {                        \
            const BLK *b = (const BLK *)p;                                                         \
            d = lm__cu_h2f(b->d);                                                                  \
            m = lm__cu_min(b);                                                                     \
        }                                                                                          \
    };

template <typename B> LM_CU_HD float lm__cu_min_of(const B *b) {
    return lm__cu_h2f(b->m);
}
LM_CU_HD float lm__cu_min(const lm_block_q4_0 *) {
    return 0.0f;
}
LM_CU_HD float lm__cu_min(const lm_block_q5_0 *) {
    return 0.0f;
}
LM_CU_HD float lm__cu_min(const lm_block_q8_0 *) {
    return 0.0f;
}
LM_CU_HD float lm__cu_min(const lm_block_q4_1 *b) {
    return lm__cu_min_of(b);
}
LM_CU_HD float lm__cu_min(const lm_block_q5_1 *b) {
    return lm__cu_min_of(b);
}

LM_CU_LEGACY(lm__cu_q4_0, lm_block_q4_0, 8, 0)
LM_CU_LEGACY(lm__cu_q4_1, lm_block_q4_1, 0, 1)
LM_CU_LEGACY(lm__cu_q5_0, lm_block_q5_0, 16, 0)
LM_CU_LEGACY(lm__cu_q5_1, lm_block_q5_1, 0, 1)
LM_CU_LEGACY(lm__cu_q8_0, lm_block_q8_0, 0, 0)

/* 4-bit: byte j holds element j (low nibble) and j + 16 (high) */
template <typename B> LM_CU_HD uint32_t lm__cu_nib(const B *b, int w) {
    const uint32_t q = lm__cu_ld32(b->qs + 4 * (w & 3));
    return (w < 4 ? q : q >> 4) & 0x0f0f0f0fu;
}
/* 5-bit: bit 4 of element e is bit e of qh */
template <typename B> LM_CU_HD uint32_t lm__cu_q5(const B *b, int w) {
    return lm__cu_nib(b, w) | (uint32_t)lm__cu_bit4((lm__cu_ld32(b->qh) >> (4 * w)) & 15u);
}

LM_CU_HD int lm__cu_q4_0::word(const uint8_t *p, int, int w) {
    return (int)lm__cu_nib((const lm_block_q4_0 *)p, w);
}
LM_CU_HD int lm__cu_q4_1::word(const uint8_t *p, int, int w) {
    return (int)lm__cu_nib((const lm_block_q4_1 *)p, w);
}
LM_CU_HD int lm__cu_q5_0::word(const uint8_t *p, int, int w) {
    return (int)lm__cu_q5((const lm_block_q5_0 *)p, w);
}
LM_CU_HD int lm__cu_q5_1::word(const uint8_t *p, int, int w) {
    return (int)lm__cu_q5((const lm_block_q5_1 *)p, w);
}
LM_CU_HD int lm__cu_q8_0::word(const uint8_t *p, int, int w) {
    return (int)lm__cu_ld32((const uint8_t *)((const lm_block_q8_0 *)p)->qs + 4 * w);
}

/* k-quants: item it is elements [32 it, 32 it + 32) of the super-block. combine() turns
 * the item's two integer sums over 16 elements (s0: words 0..3, s1: words 4..7) and the
 * activation sums b0, b1 of the same elements into the item's share of the block's
 * integer sums isum (times d) and msum (times dmin), exactly as the CPU's vec_dot. */
struct lm__cu_q2_K {
    typedef lm_block_q2_K blk;
    enum { QK = 256, SIZE = sizeof(blk), ITEMS = 8, KQ = 1, DMIN = 1, SUB = 16 };
    LM_CU_HD static int word(const uint8_t *p, int it, int w) {
        const blk *b = (const blk *)p;
        return (int)((lm__cu_ld32(b->qs + 32 * (it >> 2) + 4 * w) >> (2 * (it & 3))) & 0x03030303u);
    }
    LM_CU_HD static void combine(const uint8_t *p, int it, int s0, int s1, int b0, int b1,
                                 long long &isum, long long &msum) {
        const blk *b = (const blk *)p;
        const int c0 = b->scales[2 * it], c1 = b->scales[2 * it + 1];
        isum += (long long)(c0 & 15) * s0 + (long long)(c1 & 15) * s1;
        msum += (long long)(c0 >> 4) * b0 + (long long)(c1 >> 4) * b1;
    }
};

struct lm__cu_q3_K {
    typedef lm_block_q3_K blk;
    enum { QK = 256, SIZE = sizeof(blk), ITEMS = 8, KQ = 1, DMIN = 0, SUB = 16 };
    /* level = 2 low bits + 4 * hmask bit, in [0, 7]; the format's value is level - 4 */
    LM_CU_HD static int word(const uint8_t *p, int it, int w) {
        const blk *b = (const blk *)p;
        const uint32_t lo =
            (lm__cu_ld32(b->qs + 32 * (it >> 2) + 4 * w) >> (2 * (it & 3))) & 0x03030303u;
        const uint32_t hi = (lm__cu_ld32(b->hmask + 4 * w) >> it) & 0x01010101u;
        return (int)(lo | (hi << 2));
    }
    LM_CU_HD static void combine(const uint8_t *p, int it, int s0, int s1, int b0, int b1,
                                 long long &isum, long long &) {
        const blk *b = (const blk *)p;
        isum += (long long)(lm_q3_K_scale(b->scales, 2 * it) - 32) * (s0 - 4 * b0) +
                (long long)(lm_q3_K_scale(b->scales, 2 * it + 1) - 32) * (s1 - 4 * b1);
    }
};

/* q4_K and q5_K: one 6-bit scale and min per item (sub-block of 32) */
struct lm__cu_q4_K {
    typedef lm_block_q4_K blk;
    enum { QK = 256, SIZE = sizeof(blk), ITEMS = 8, KQ = 1, DMIN = 1, SUB = 32 };
    LM_CU_HD static int word(const uint8_t *p, int it, int w) {
        const blk *b = (const blk *)p;
        return (int)((lm__cu_ld32(b->qs + 32 * (it >> 1) + 4 * w) >> (4 * (it & 1))) & 0x0f0f0f0fu);
    }
    LM_CU_HD static void combine(const uint8_t *p, int it, int s0, int s1, int b0, int b1,
                                 long long &isum, long long &msum) {
        int sc, m;
        lm_k4_scale_min(((const blk *)p)->scales, it, &sc, &m);
        isum += (long long)sc * ((long long)s0 + s1);
        msum += (long long)m * ((long long)b0 + b1);
    }
};

struct lm__cu_q5_K {
    typedef lm_block_q5_K blk;
    enum { QK = 256, SIZE = sizeof(blk), ITEMS = 8, KQ = 1, DMIN = 1, SUB = 32 };
    LM_CU_HD static int word(const uint8_t *p, int it, int w) {
        const blk *b = (const blk *)p;
        const uint32_t lo =
            (lm__cu_ld32(b->qs + 32 * (it >> 1) + 4 * w) >> (4 * (it & 1))) & 0x0f0f0f0fu;
        const uint32_t hi = (lm__cu_ld32(b->qh + 4 * w) >> it) & 0x01010101u;
        return (int)(lo | (hi << 4));
    }
    LM_CU_HD static void combine(const uint8_t *p, int it, int s0, int s1, int b0, int b1,
                                 long long &isum, long long &msum) {
        int sc, m;
        lm_k4_scale_min(((const blk *)p)->scales, it, &sc, &m);
        isum += (long long)sc * ((long long)s0 + s1);
        msum += (long long)m * ((long long)b0 + b1);
    }
};

struct lm__cu_q6_K {
    typedef lm_block_q6_K blk;
    enum { QK = 256, SIZE = sizeof(blk), ITEMS = 8, KQ = 1, DMIN = 0, SUB = 16 };
    /* level = 6 bits in [0, 63]; the format's value is level - 32 */
    LM_CU_HD static int word(const uint8_t *p, int it, int w) {
        const blk *b = (const blk *)p;
        const int h = it >> 2, k = it & 3;
        const uint32_t lo =
            (lm__cu_ld32(b->ql + 64 * h + 32 * (k & 1) + 4 * w) >> (4 * (k >> 1))) & 0x0f0f0f0fu;
        const uint32_t hi = (lm__cu_ld32(b->qh + 32 * h + 4 * w) >> (2 * k)) & 0x03030303u;
        return (int)(lo | (hi << 4));
    }
    LM_CU_HD static void combine(const uint8_t *p, int it, int s0, int s1, int b0, int b1,
                                 long long &isum, long long &) {
        const blk *b = (const blk *)p;
        isum += (long long)b->scales[2 * it] * (s0 - 32 * b0) +
                (long long)b->scales[2 * it + 1] * (s1 - 32 * b1);
    }
};

/* The k-quants' float super-scales */
template <typename Q> LM_CU_HD float lm__cu_kd(const uint8_t *p) {
    return lm__cu_h2f(((const typename Q::blk *)p)->d);
}
template <typename Q> LM_CU_HD float lm__cu_kdmin(const uint8_t *p) {
    return lm__cu_h2f(((const lm_block_q4_K *)p)->dmin); /* unused unless Q::DMIN */
}
template <> LM_CU_HD float lm__cu_kdmin<lm__cu_q2_K>(const uint8_t *p) {
    return lm__cu_h2f(((const lm_block_q2_K *)p)->dmin);
}
template <> LM_CU_HD float lm__cu_kdmin<lm__cu_q5_K>(const uint8_t *p) {
    return lm__cu_h2f(((const lm_block_q5_K *)p)->dmin);
}

/* ---- the arithmetic of the integer kernels, shared by cuda_matvec.cu, cuda_matmul.cu and
 * the host self-test ---- */

/* Activation quantisation, the CPU's lm__quantize_16: d = amax / 32767, id = 1 / d (0 for
 * an all-zero block), q = round half away from zero (x * id) clamped to +-32767. */
LM_CU_HD void lm__cu_q16_scale(float amax, float &d, float &id) {
    d = LM_CU_FDIV(amax, 32767.0f);
    id = d != 0.0f ? LM_CU_FDIV(1.0f, d) : 0.0f;
}
LM_CU_HD int lm__cu_q16(float x, float id) {
    const float t = LM_CU_FMUL(x, id);
    const int r = LM_CU_F2I_RZ(LM_CU_FADD(t, t >= 0.0f ? 0.5f : -0.5f));
    return r > 32767 ? 32767 : r < -32767 ? -32767 : r;
}

/* Integer sums of an item's levels v against 32 activations (hi, lo: the item's bytes,
 * 16-byte aligned): s0 over elements 0..15, s1 over 16..31, each hi * 256 + lo. */
LM_CU_HD void lm__cu_item_isums(const int v[8], const int8_t *hi, const uint8_t *lo, int &s0,
                                int &s1) {
    const int4 h0 = ((const int4 *)hi)[0], h1 = ((const int4 *)hi)[1];
    const int4 l0 = ((const int4 *)lo)[0], l1 = ((const int4 *)lo)[1];
    const int h[8] = {h0.x, h0.y, h0.z, h0.w, h1.x, h1.y, h1.z, h1.w};
    const int l[8] = {l0.x, l0.y, l0.z, l0.w, l1.x, l1.y, l1.z, l1.w};
    int sh0 = 0, sh1 = 0, sl0 = 0, sl1 = 0;
    for (int w = 0; w < 4; w++) {
        sh0 = lm__cu_dp4a_ss(v[w], h[w], sh0);
        sl0 = lm__cu_dp4a_su(v[w], (unsigned)l[w], sl0);
        sh1 = lm__cu_dp4a_ss(v[w + 4], h[w + 4], sh1);
        sl1 = lm__cu_dp4a_su(v[w + 4], (unsigned)l[w + 4], sl1);
    }
    s0 = sh0 * 256 + sl0;
    s1 = sh1 * 256 + sl1;
}

/* A 32-element block's term, the CPU's (dw * da) * (float)isum [+ mw * sa]; isum already
 * has the offset removed. */
template <typename Q>
LM_CU_HD float lm__cu_term_legacy(float dw, float mw, float da, float sa, int isum) {
    float t = LM_CU_FMUL(LM_CU_FMUL(dw, da), LM_CU_I2F(isum));
    if (Q::MIN) t = LM_CU_FADD(t, LM_CU_FMUL(mw, sa));
    return t;
}

/* A k-quant super-block's term from its integer sums: da * (d * isum [- dmin * msum]). */
template <typename Q>
LM_CU_HD float lm__cu_term_k(const uint8_t *bp, long long isum, long long msum, float da) {
    float t = LM_CU_FMUL(lm__cu_kd<Q>(bp), LM_CU_LL2F(isum));
    if (Q::DMIN) t = LM_CU_FSUB(t, LM_CU_FMUL(lm__cu_kdmin<Q>(bp), LM_CU_LL2F(msum)));
    return LM_CU_FMUL(da, t);
}

/* k-quants on the tensor cores fold each sub-block on its own: the float scale A (of the
 * levels, less KOFF per unit of activation sum) and min B (of the activation sum) of half
 * h (0, 1) of item it. */
template <typename Q> struct lm__cu_kab;
template <> struct lm__cu_kab<lm__cu_q2_K> {
    enum { KOFF = 0 };
    LM_CU_HD static void ab(const uint8_t *p, int it, int h, float &A, float &B) {
        const lm_block_q2_K *b = (const lm_block_q2_K *)p;
        const int c = b->scales[2 * it + h];
        A = LM_CU_FMUL(lm__cu_h2f(b->d), (float)(c & 15));
        B = LM_CU_FMUL(lm__cu_h2f(b->dmin), (float)(c >> 4));
    }
};
template <> struct lm__cu_kab<lm__cu_q3_K> {
    enum { KOFF = 4 };
    LM_CU_HD static void ab(const uint8_t *p, int it, int h, float &A, float &B) {
        const lm_block_q3_K *b = (const lm_block_q3_K *)p;
        A = LM_CU_FMUL(lm__cu_h2f(b->d), (float)(lm_q3_K_scale(b->scales, 2 * it + h) - 32));
        B = 0.0f;
    }
};
template <typename BLK> LM_CU_HD void lm__cu_k4_ab(const uint8_t *p, int it, float &A, float &B) {
    const BLK *b = (const BLK *)p;
    int sc, m;
    lm_k4_scale_min(b->scales, it, &sc, &m);
    A = LM_CU_FMUL(lm__cu_h2f(b->d), (float)sc);
    B = LM_CU_FMUL(lm__cu_h2f(b->dmin), (float)m);
}
template <> struct lm__cu_kab<lm__cu_q4_K> {
    enum { KOFF = 0 };
    LM_CU_HD static void ab(const uint8_t *p, int it, int, float &A, float &B) {
        lm__cu_k4_ab<lm_block_q4_K>(p, it, A, B);
    }
};
template <> struct lm__cu_kab<lm__cu_q5_K> {
    enum { KOFF = 0 };
    LM_CU_HD static void ab(const uint8_t *p, int it, int, float &A, float &B) {
        lm__cu_k4_ab<lm_block_q5_K>(p, it, A, B);
    }
};
template <> struct lm__cu_kab<lm__cu_q6_K> {
    enum { KOFF = 32 };
    LM_CU_HD static void ab(const uint8_t *p, int it, int h, float &A, float &B) {
        const lm_block_q6_K *b = (const lm_block_q6_K *)p;
        A = LM_CU_FMUL(lm__cu_h2f(b->d), (float)b->scales[2 * it + h]);
        B = 0.0f;
    }
};
/* the 32-element types use their block scales instead */
template <> struct lm__cu_kab<lm__cu_q4_0> {
    enum { KOFF = 0 };
    LM_CU_HD static void ab(const uint8_t *, int, int, float &, float &) {}
};
template <> struct lm__cu_kab<lm__cu_q4_1> : lm__cu_kab<lm__cu_q4_0> {};
template <> struct lm__cu_kab<lm__cu_q5_0> : lm__cu_kab<lm__cu_q4_0> {};
template <> struct lm__cu_kab<lm__cu_q5_1> : lm__cu_kab<lm__cu_q4_0> {};
template <> struct lm__cu_kab<lm__cu_q8_0> : lm__cu_kab<lm__cu_q4_0> {};

/* One (row, column) term of the tensor-core fold. S: the integer sum of levels x q over
 * the sub-block (16 or 32 elements); bsum: the sum of q over it; A, B: the row's scale
 * and min (dw, mw for the 32-element types; lm__cu_kab for the k-quants); cd: the
 * column's d; cs: its d * sum(q) (32-element types). */
template <typename Q>
LM_CU_HD float lm__cu_fold(int S, int bsum, float A, float B, float cd, float cs) {
    if constexpr (Q::KQ) {
        float t = LM_CU_FMUL(A, LM_CU_I2F(S - lm__cu_kab<Q>::KOFF * bsum));
        if (Q::DMIN) t = LM_CU_FSUB(t, LM_CU_FMUL(B, LM_CU_I2F(bsum)));
        return LM_CU_FMUL(cd, t);
    } else {
        return lm__cu_term_legacy<Q>(A, B, cd, cs, S - Q::OFF * bsum);
    }
}

/* ---- geometry, also checked on the host ---- */

/* The matrix-vector kernels stage nb blocks of SIZE bytes starting at address gs (even)
 * with 16-byte loads from a0 = gs rounded down: n16 loads, the blocks at off = gs - a0. */
LM_CU_HD void lm__cu_stage_span(uintptr_t gs, int64_t nb, int size, uintptr_t &a0, int64_t &off,
                                int &n16) {
    a0 = gs & ~(uintptr_t)15;
    off = (int64_t)(gs - a0);
    n16 = (int)((((gs + (uintptr_t)(nb * size) + 15) & ~(uintptr_t)15) - a0) / 16);
}
/* 16-byte loads that cover a chunk of `bytes` at any even address */
#define LM_CU_STAGE_N16(bytes) (((bytes) + 29) / 16 + 1)

/* Attention: the positions [*start, *end] of split sp of n_split for a token at pos with
 * window (0 = none): the range [lo, pos] cut into pieces of a multiple of 32 positions;
 * empty (end < start) for splits past the end. */
LM_CU_HD void lm__cu_attn_range(int32_t pos, int32_t window, int n_split, int sp, int32_t *start,
                                int32_t *end) {
    const int32_t lo = window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
    const int32_t L = pos - lo + 1;
    const int32_t chunk = ((L + n_split - 1) / n_split + 31) & ~31;
    *start = lo + sp * chunk;
    *end = pos < *start + chunk - 1 ? pos : *start + chunk - 1;
}

/* Call F.template operator()<Q>() for the type t of the integer kernels; false if t is
 * not one of them. */
template <typename F> static inline bool lm__cu_dispatch_quant(lm_type t, F &&f) {
    switch (t) {
    case LM_TYPE_Q4_0:
        f.template operator()<lm__cu_q4_0>();
        return true;
    case LM_TYPE_Q4_1:
        f.template operator()<lm__cu_q4_1>();
        return true;
    case LM_TYPE_Q5_0:
        f.template operator()<lm__cu_q5_0>();
        return true;
    case LM_TYPE_Q5_1:
        f.template operator()<lm__cu_q5_1>();
        return true;
    case LM_TYPE_Q8_0:
        f.template operator()<lm__cu_q8_0>();
        return true;
    case LM_TYPE_Q2_K:
        f.template operator()<lm__cu_q2_K>();
        return true;
    case LM_TYPE_Q3_K:
        f.template operator()<lm__cu_q3_K>();
        return true;
    case LM_TYPE_Q4_K:
        f.template operator()<lm__cu_q4_K>();
        return true;
    case LM_TYPE_Q5_K:
        f.template operator()<lm__cu_q5_K>();
        return true;
    case LM_TYPE_Q6_K:
        f.template operator()<lm__cu_q6_K>();
        return true;
    default:
        return false;
    }
}

#endif
