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

/* ---- loads and conversions ---- */

/* 4 bytes at a 2-byte aligned address as a little-endian uint32 */
__device__ __forceinline__ uint32_t lm__cu_ld32(const uint8_t *p) {
    const uint16_t *h = (const uint16_t *)p;
    return (uint32_t)h[0] | ((uint32_t)h[1] << 16);
}
/* IEEE half -> float (exact, as lm_fp16_to_fp32, in one instruction) */
__device__ __forceinline__ float lm__cu_h2f(uint16_t h) {
    return __half2float(__ushort_as_half(h));
}

/* sum of 4 products of signed bytes a with signed (ss) or unsigned (su) bytes b, plus c */
__device__ __forceinline__ int lm__cu_dp4a_ss(int a, int b, int c) {
    return __dp4a(a, b, c);
}
__device__ __forceinline__ int lm__cu_dp4a_su(int a, unsigned b, int c) {
    int d;
    asm("dp4a.s32.u32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
}

/* Byte i of the 4-bit value h moved to bit 4 of byte i (the fifth bit of q5 levels). */
__device__ __forceinline__ int lm__cu_bit4(uint32_t h) {
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
        __device__ static __forceinline__ int word(const uint8_t *p, int it, int w);               \
        __device__ static __forceinline__ void scales(const uint8_t *p, float &d, float &m) {      \
            const BLK *b = (const BLK *)p;                                                         \
            d = lm__cu_h2f(b->d);                                                                  \
            m = lm__cu_min(b);                                                                     \
        }                                                                                          \
    };

template <typename B> __device__ __forceinline__ float lm__cu_min_of(const B *b) {
    return lm__cu_h2f(b->m);
}
__device__ __forceinline__ float lm__cu_min(const lm_block_q4_0 *) {
    return 0.0f;
}
__device__ __forceinline__ float lm__cu_min(const lm_block_q5_0 *) {
    return 0.0f;
}
__device__ __forceinline__ float lm__cu_min(const lm_block_q8_0 *) {
    return 0.0f;
}
__device__ __forceinline__ float lm__cu_min(const lm_block_q4_1 *b) {
    return lm__cu_min_of(b);
}
__device__ __forceinline__ float lm__cu_min(const lm_block_q5_1 *b) {
    return lm__cu_min_of(b);
}

LM_CU_LEGACY(lm__cu_q4_0, lm_block_q4_0, 8, 0)
LM_CU_LEGACY(lm__cu_q4_1, lm_block_q4_1, 0, 1)
LM_CU_LEGACY(lm__cu_q5_0, lm_block_q5_0, 16, 0)
LM_CU_LEGACY(lm__cu_q5_1, lm_block_q5_1, 0, 1)
LM_CU_LEGACY(lm__cu_q8_0, lm_block_q8_0, 0, 0)

/* 4-bit: byte j holds element j (low nibble) and j + 16 (high) */
template <typename B> __device__ __forceinline__ uint32_t lm__cu_nib(const B *b, int w) {
    const uint32_t q = lm__cu_ld32(b->qs + 4 * (w & 3));
    return (w < 4 ? q : q >> 4) & 0x0f0f0f0fu;
}
/* 5-bit: bit 4 of element e is bit e of qh */
template <typename B> __device__ __forceinline__ uint32_t lm__cu_q5(const B *b, int w) {
    return lm__cu_nib(b, w) | (uint32_t)lm__cu_bit4((lm__cu_ld32(b->qh) >> (4 * w)) & 15u);
}

__device__ __forceinline__ int lm__cu_q4_0::word(const uint8_t *p, int, int w) {
    return (int)lm__cu_nib((const lm_block_q4_0 *)p, w);
}
__device__ __forceinline__ int lm__cu_q4_1::word(const uint8_t *p, int, int w) {
    return (int)lm__cu_nib((const lm_block_q4_1 *)p, w);
}
__device__ __forceinline__ int lm__cu_q5_0::word(const uint8_t *p, int, int w) {
    return (int)lm__cu_q5((const lm_block_q5_0 *)p, w);
}
__device__ __forceinline__ int lm__cu_q5_1::word(const uint8_t *p, int, int w) {
    return (int)lm__cu_q5((const lm_block_q5_1 *)p, w);
}
__device__ __forceinline__ int lm__cu_q8_0::word(const uint8_t *p, int, int w) {
    return (int)lm__cu_ld32((const uint8_t *)((const lm_block_q8_0 *)p)->qs + 4 * w);
}

/* k-quants: item it is elements [32 it, 32 it + 32) of the super-block. combine() turns
 * the item's two integer sums over 16 elements (s0: words 0..3, s1: words 4..7) and the
 * activation sums b0, b1 of the same elements into the item's share of the block's
 * integer sums isum (times d) and msum (times dmin), exactly as the CPU's vec_dot. */
struct lm__cu_q2_K {
    typedef lm_block_q2_K blk;
    enum { QK = 256, SIZE = sizeof(blk), ITEMS = 8, KQ = 1, DMIN = 1, SUB = 16 };
    __device__ static __forceinline__ int word(const uint8_t *p, int it, int w) {
        const blk *b = (const blk *)p;
        return (int)((lm__cu_ld32(b->qs + 32 * (it >> 2) + 4 * w) >> (2 * (it & 3))) & 0x03030303u);
    }
    __device__ static __forceinline__ void combine(const uint8_t *p, int it, int s0, int s1, int b0,
                                                   int b1, long long &isum, long long &msum) {
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
    __device__ static __forceinline__ int word(const uint8_t *p, int it, int w) {
        const blk *b = (const blk *)p;
        const uint32_t lo =
            (lm__cu_ld32(b->qs + 32 * (it >> 2) + 4 * w) >> (2 * (it & 3))) & 0x03030303u;
        const uint32_t hi = (lm__cu_ld32(b->hmask + 4 * w) >> it) & 0x01010101u;
        return (int)(lo | (hi << 2));
    }
    __device__ static __forceinline__ void combine(const uint8_t *p, int it, int s0, int s1, int b0,
                                                   int b1, long long &isum, long long &) {
        const blk *b = (const blk *)p;
        isum += (long long)(lm_q3_K_scale(b->scales, 2 * it) - 32) * (s0 - 4 * b0) +
                (long long)(lm_q3_K_scale(b->scales, 2 * it + 1) - 32) * (s1 - 4 * b1);
    }
};

/* q4_K and q5_K: one 6-bit scale and min per item (sub-block of 32) */
struct lm__cu_q4_K {
    typedef lm_block_q4_K blk;
    enum { QK = 256, SIZE = sizeof(blk), ITEMS = 8, KQ = 1, DMIN = 1, SUB = 32 };
    __device__ static __forceinline__ int word(const uint8_t *p, int it, int w) {
        const blk *b = (const blk *)p;
        return (int)((lm__cu_ld32(b->qs + 32 * (it >> 1) + 4 * w) >> (4 * (it & 1))) & 0x0f0f0f0fu);
    }
    __device__ static __forceinline__ void combine(const uint8_t *p, int it, int s0, int s1, int b0,
                                                   int b1, long long &isum, long long &msum) {
        int sc, m;
        lm_k4_scale_min(((const blk *)p)->scales, it, &sc, &m);
        isum += (long long)sc * ((long long)s0 + s1);
        msum += (long long)m * ((long long)b0 + b1);
    }
};

struct lm__cu_q5_K {
    typedef lm_block_q5_K blk;
    enum { QK = 256, SIZE = sizeof(blk), ITEMS = 8, KQ = 1, DMIN = 1, SUB = 32 };
    __device__ static __forceinline__ int word(const uint8_t *p, int it, int w) {
        const blk *b = (const blk *)p;
        const uint32_t lo =
            (lm__cu_ld32(b->qs + 32 * (it >> 1) + 4 * w) >> (4 * (it & 1))) & 0x0f0f0f0fu;
        const uint32_t hi = (lm__cu_ld32(b->qh + 4 * w) >> it) & 0x01010101u;
        return (int)(lo | (hi << 4));
    }
    __device__ static __forceinline__ void combine(const uint8_t *p, int it, int s0, int s1, int b0,
                                                   int b1, long long &isum, long long &msum) {
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
    __device__ static __forceinline__ int word(const uint8_t *p, int it, int w) {
        const blk *b = (const blk *)p;
        const int h = it >> 2, k = it & 3;
        const uint32_t lo =
            (lm__cu_ld32(b->ql + 64 * h + 32 * (k & 1) + 4 * w) >> (4 * (k >> 1))) & 0x0f0f0f0fu;
        const uint32_t hi = (lm__cu_ld32(b->qh + 32 * h + 4 * w) >> (2 * k)) & 0x03030303u;
        return (int)(lo | (hi << 4));
    }
    __device__ static __forceinline__ void combine(const uint8_t *p, int it, int s0, int s1, int b0,
                                                   int b1, long long &isum, long long &) {
        const blk *b = (const blk *)p;
        isum += (long long)b->scales[2 * it] * (s0 - 32 * b0) +
                (long long)b->scales[2 * it + 1] * (s1 - 32 * b1);
    }
};

/* The k-quants' float super-scales */
template <typename Q> __device__ __forceinline__ float lm__cu_kd(const uint8_t *p) {
    return lm__cu_h2f(((const typename Q::blk *)p)->d);
}
template <typename Q> __device__ __forceinline__ float lm__cu_kdmin(const uint8_t *p) {
    return lm__cu_h2f(((const lm_block_q4_K *)p)->dmin); /* unused unless Q::DMIN */
}
template <> __device__ __forceinline__ float lm__cu_kdmin<lm__cu_q2_K>(const uint8_t *p) {
    return lm__cu_h2f(((const lm_block_q2_K *)p)->dmin);
}
template <> __device__ __forceinline__ float lm__cu_kdmin<lm__cu_q5_K>(const uint8_t *p) {
    return lm__cu_h2f(((const lm_block_q5_K *)p)->dmin);
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
