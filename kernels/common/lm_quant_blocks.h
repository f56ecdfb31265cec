/* Block layouts byte-compatible with GGUF, and the scalar half/bfloat conversions.
 * One definition for C (CPU) and CUDA, so the dequant math the CPU tests check is the
 * math the GPU runs. */
#ifndef LM_QUANT_BLOCKS_H
#define LM_QUANT_BLOCKS_H

#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define LM_HD __host__ __device__ static inline
#else
#define LM_HD static inline
#endif

#define LM_QK4_0 32
#define LM_QK4_1 32
#define LM_QK8_0 32

typedef struct {
    uint16_t d;               /* f16 scale */
    uint8_t qs[LM_QK4_0 / 2]; /* nibbles: low = element j, high = element j + 16 */
} lm_block_q4_0;

typedef struct {
    uint16_t d; /* f16 scale */
    uint16_t m; /* f16 minimum */
    uint8_t qs[LM_QK4_1 / 2];
} lm_block_q4_1;

typedef struct {
    uint16_t d; /* f16 scale */
    int8_t qs[LM_QK8_0];
} lm_block_q8_0;

_Static_assert(sizeof(lm_block_q4_0) == 18, "q4_0 block size");
_Static_assert(sizeof(lm_block_q4_1) == 20, "q4_1 block size");
_Static_assert(sizeof(lm_block_q8_0) == 34, "q8_0 block size");

/* IEEE half -> float, exact for all inputs including subnormals, inf and NaN. */
LM_HD float lm_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while ((man & 0x400u) == 0);
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* float -> IEEE half, round to nearest even, overflow to inf, NaN kept quiet. */
LM_HD uint16_t lm_fp32_to_fp16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) /* inf or NaN */
        return (uint16_t)(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0));
    if (absx >= 0x477ff000u) /* rounds to >= 65536 */
        return (uint16_t)(sign | 0x7c00u);
    if (absx < 0x38800000u) { /* result is subnormal or zero */
        if (absx < 0x33000000u) return (uint16_t)sign;
        uint32_t e = absx >> 23;
        uint32_t m = (absx & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = absx - 0x38000000u; /* rebias exponent 127 -> 15 */
    uint32_t out = r >> 13;
    uint32_t rem = r & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (out & 1))) out++;
    return (uint16_t)(sign | out);
}

LM_HD float lm_bf16_to_fp32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* float -> bfloat16, round to nearest even, NaN kept quiet (as ggml does). */
LM_HD uint16_t lm_fp32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 64);
    return (uint16_t)((x + (0x7fffu + ((x >> 16) & 1))) >> 16);
}

#endif
