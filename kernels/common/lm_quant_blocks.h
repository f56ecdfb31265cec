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

#define LM_QK4_0        32
#define LM_QK4_1        32
#define LM_QK5_0        32
#define LM_QK5_1        32
#define LM_QK8_0        32
#define LM_QK_K         256 /* elements of a K-quant super-block */
#define LM_K_SCALE_SIZE 12  /* bytes of packed 6-bit scales + mins (q4_K, q5_K) */

/* ---- 32-element blocks. A 4-bit byte qs[j] holds element j (low nibble) and element
 * j + 16 (high nibble); 5-bit types keep bit 4 of element j in bit j of qh. ---- */

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
    uint16_t d;    /* f16 scale; x = (q - 16) * d */
    uint8_t qh[4]; /* bit 4 of each element, a little-endian uint32 */
    uint8_t qs[LM_QK5_0 / 2];
} lm_block_q5_0;

typedef struct {
    uint16_t d; /* f16 scale; x = q * d + m */
    uint16_t m; /* f16 minimum */
    uint8_t qh[4];
    uint8_t qs[LM_QK5_1 / 2];
} lm_block_q5_1;

typedef struct {
    uint16_t d; /* f16 scale */
    int8_t qs[LM_QK8_0];
} lm_block_q8_0;

/* ---- 256-element super-blocks (k-quants): 16 or 8 sub-blocks, each with its own
 * quantized scale (and min), the scales themselves scaled by f16 d (and dmin). ---- */

/* x = d * (sc & 15) * q - dmin * (sc >> 4), 16 sub-blocks of 16, q 2 bits. Byte l of
 * qs[32 * h ..] holds elements 128 h + l + 32 k in bits 2k..2k+1. */
typedef struct {
    uint8_t scales[LM_QK_K / 16]; /* low nibble scale, high nibble min */
    uint8_t qs[LM_QK_K / 4];
    uint16_t d;    /* f16 super-scale of the scales */
    uint16_t dmin; /* f16 super-scale of the mins */
} lm_block_q2_K;

/* x = d * (s - 32) * (q - 4), 16 sub-blocks of 16, s 6 bits, q = 2 bits of qs (as q2_K)
 * + bit 2 from hmask (bit k of hmask[l] is element 32 k + l). */
typedef struct {
    uint8_t hmask[LM_QK_K / 8];
    uint8_t qs[LM_QK_K / 4];
    uint8_t scales[12]; /* 16 x 6 bits: low nibbles in [0, 8), high 2 bits in [8, 12) */
    uint16_t d;
} lm_block_q3_K;

/* x = d * sc * q - dmin * m, 8 sub-blocks of 32, sc and m 6 bits. Byte l of qs[32 * p ..]
 * holds element 64 p + l (low nibble) and 64 p + 32 + l (high nibble). */
typedef struct {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[LM_K_SCALE_SIZE];
    uint8_t qs[LM_QK_K / 2];
} lm_block_q4_K;

/* as q4_K with a fifth bit: bit 2p of qh[l] for element 64 p + l, 2p+1 for 64 p + 32 + l */
typedef struct {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[LM_K_SCALE_SIZE];
    uint8_t qh[LM_QK_K / 8];
    uint8_t qs[LM_QK_K / 2];
} lm_block_q5_K;

/* x = d * sc * (q - 32), 16 sub-blocks of 16, sc int8, q 6 bits: 4 from ql, 2 from qh. */
typedef struct {
    uint8_t ql[LM_QK_K / 2];
    uint8_t qh[LM_QK_K / 4];
    int8_t scales[LM_QK_K / 16];
    uint16_t d;
} lm_block_q6_K;

/* ggml's activation format for k-quant dot products (Lumen's CPU backend uses 16-bit
 * activations instead, kernels/cpu/cpu_dot_scalar.c): x = d * q with a float d, bsums[i] =
 * sum of qs[16 i .. 16 i + 16). Quantizable and dequantizable, not computable as a weight. */
typedef struct {
    float d;
    int8_t qs[LM_QK_K];
    int16_t bsums[LM_QK_K / 16];
} lm_block_q8_K;

_Static_assert(sizeof(lm_block_q4_0) == 18, "q4_0 block size");
_Static_assert(sizeof(lm_block_q4_1) == 20, "q4_1 block size");
_Static_assert(sizeof(lm_block_q5_0) == 22, "q5_0 block size");
_Static_assert(sizeof(lm_block_q5_1) == 24, "q5_1 block size");
_Static_assert(sizeof(lm_block_q8_0) == 34, "q8_0 block size");
_Static_assert(sizeof(lm_block_q2_K) == 84, "q2_K block size");
_Static_assert(sizeof(lm_block_q3_K) == 110, "q3_K block size");
_Static_assert(sizeof(lm_block_q4_K) == 144, "q4_K block size");
_Static_assert(sizeof(lm_block_q5_K) == 176, "q5_K block size");
_Static_assert(sizeof(lm_block_q6_K) == 210, "q6_K block size");
_Static_assert(sizeof(lm_block_q8_K) == 292, "q8_K block size");

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
