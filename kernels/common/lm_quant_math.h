/* Per-block dequantization math shared by the CPU backend and CUDA kernels. Each function
 * turns one block into its 32 (or 256, k-quants) floats exactly as ggml's reference
 * dequantizers do, so the numbers the CPU tests check are the numbers the GPU computes. */
#ifndef LM_QUANT_MATH_H
#define LM_QUANT_MATH_H

#include "lm_quant_blocks.h"

/* a * b rounded on its own, so q * d + m is not fused into an FMA (which would change the
 * last bit vs. ggml): nvcc fuses by default, so CUDA uses the _rn intrinsic; in C the
 * product is a separate statement (clang fuses only within one expression; GCC in ISO
 * C mode, as we build, does not fuse). */
#if defined(__CUDA_ARCH__)
#define LM_MUL_RN(a, b) __fmul_rn((a), (b))
#else
#define LM_MUL_RN(a, b) (a) * (b)
#endif

/* out never aliases the block: lets the compiler vectorise the 16-wide loops. */
#if defined(__CUDACC__)
#define LM_RESTRICT __restrict__
#else
#define LM_RESTRICT restrict
#endif

/* Element j of a 4-bit block: low nibble of qs[j] for j < 16, high nibble of qs[j-16]. */
LM_HD int lm_q4_nibble(const uint8_t *qs, int j) {
    return j < 16 ? (qs[j] & 0x0f) : (qs[j - 16] >> 4);
}

/* 4 bytes as a little-endian uint32 (q5 high bits; blocks are not 4-byte aligned). */
LM_HD uint32_t lm_load_u32le(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* q4_0: x = (q - 8) * d */
LM_HD void lm_dequant_q4_0_block(const lm_block_q4_0 *LM_RESTRICT b, float *LM_RESTRICT out) {
    const float d = lm_fp16_to_fp32(b->d);
    for (int j = 0; j < LM_QK4_0 / 2; j++) {
        out[j] = (float)((b->qs[j] & 0x0f) - 8) * d;
        out[j + LM_QK4_0 / 2] = (float)((b->qs[j] >> 4) - 8) * d;
    }
}

/* q4_1: x = q * d + m */
LM_HD void lm_dequant_q4_1_block(const lm_block_q4_1 *LM_RESTRICT b, float *LM_RESTRICT out) {
    const float d = lm_fp16_to_fp32(b->d);
    const float m = lm_fp16_to_fp32(b->m);
    for (int j = 0; j < LM_QK4_1 / 2; j++) {
        const float lo = LM_MUL_RN((float)(b->qs[j] & 0x0f), d);
        const float hi = LM_MUL_RN((float)(b->qs[j] >> 4), d);
        out[j] = lo + m;
        out[j + LM_QK4_1 / 2] = hi + m;
    }
}

/* q5_0: x = (q - 16) * d, bit 4 of element j is bit j of qh */
LM_HD void lm_dequant_q5_0_block(const lm_block_q5_0 *LM_RESTRICT b, float *LM_RESTRICT out) {
    const float d = lm_fp16_to_fp32(b->d);
    const uint32_t qh = lm_load_u32le(b->qh);
    for (int j = 0; j < LM_QK5_0 / 2; j++) {
        const int lo = (b->qs[j] & 0x0f) | (int)(((qh >> j) & 1u) << 4);
        const int hi = (b->qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
        out[j] = (float)(lo - 16) * d;
        out[j + LM_QK5_0 / 2] = (float)(hi - 16) * d;
    }
}

/* q5_1: x = q * d + m */
LM_HD void lm_dequant_q5_1_block(const lm_block_q5_1 *LM_RESTRICT b, float *LM_RESTRICT out) {
    const float d = lm_fp16_to_fp32(b->d);
    const float m = lm_fp16_to_fp32(b->m);
    const uint32_t qh = lm_load_u32le(b->qh);
    for (int j = 0; j < LM_QK5_1 / 2; j++) {
        const int lo = (b->qs[j] & 0x0f) | (int)(((qh >> j) & 1u) << 4);
        const int hi = (b->qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
        const float plo = LM_MUL_RN((float)lo, d);
        const float phi = LM_MUL_RN((float)hi, d);
        out[j] = plo + m;
        out[j + LM_QK5_1 / 2] = phi + m;
    }
}

/* q8_0: x = q * d */
LM_HD void lm_dequant_q8_0_block(const lm_block_q8_0 *LM_RESTRICT b, float *LM_RESTRICT out) {
    const float d = lm_fp16_to_fp32(b->d);
    for (int j = 0; j < LM_QK8_0; j++) out[j] = (float)b->qs[j] * d;
}

/* ---- k-quants. Scale products are rounded as ggml rounds them: (d * sc) first, then
 * times q, then minus (dmin * m). ---- */

/* 2-bit field k (0..3) of the q2_K/q3_K byte array: element e of a super-block. */
LM_HD int lm_q2_K_bits(const uint8_t *qs, int e) {
    return (qs[(e >> 7) * 32 + (e & 31)] >> (2 * ((e >> 5) & 3))) & 3;
}

/* q3_K: 6-bit scale i (0..15), unsigned (the format subtracts 32). */
LM_HD int lm_q3_K_scale(const uint8_t *scales, int i) {
    const int lo = i < 8 ? (scales[i] & 0x0f) : (scales[i - 8] >> 4);
    const int hi = (scales[8 + (i & 3)] >> (2 * (i >> 2))) & 3;
    return lo | (hi << 4);
}

/* q4_K/q5_K: 6-bit scale and min of sub-block j (0..7). */
LM_HD void lm_k4_scale_min(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* q2_K: x = d * (sc & 15) * q - dmin * (sc >> 4) per sub-block of 16 */
LM_HD void lm_dequant_q2_K_block(const lm_block_q2_K *LM_RESTRICT b, float *LM_RESTRICT out) {
    const float d = lm_fp16_to_fp32(b->d);
    const float dmin = lm_fp16_to_fp32(b->dmin);
    for (int s = 0; s < LM_QK_K / 16; s++) {
        const float dl = LM_MUL_RN(d, (float)(b->scales[s] & 0x0f));
        const float ml = LM_MUL_RN(dmin, (float)(b->scales[s] >> 4));
        for (int l = 0; l < 16; l++) {
            const float p = LM_MUL_RN(dl, (float)lm_q2_K_bits(b->qs, 16 * s + l));
            out[16 * s + l] = p - ml;
        }
    }
}

/* q3_K: x = d * (s - 32) * (q - (hbit ? 0 : 4)) per sub-block of 16 */
LM_HD void lm_dequant_q3_K_block(const lm_block_q3_K *LM_RESTRICT b, float *LM_RESTRICT out) {
    const float d = lm_fp16_to_fp32(b->d);
    for (int s = 0; s < LM_QK_K / 16; s++) {
        const float dl = LM_MUL_RN(d, (float)(lm_q3_K_scale(b->scales, s) - 32));
        for (int l = 0; l < 16; l++) {
            const int e = 16 * s + l;
            const int h = (b->hmask[e & 31] >> (e >> 5)) & 1;
            out[e] = dl * (float)(lm_q2_K_bits(b->qs, e) - (h ? 0 : 4));
        }
    }
}

/* 4-bit field of element e of q4_K/q5_K: see lm_block_q4_K */
LM_HD int lm_q4_K_nibble(const uint8_t *qs, int e) {
    const uint8_t v = qs[(e >> 6) * 32 + (e & 31)];
    return (e & 32) ? (v >> 4) : (v & 0x0f);
}

/* q4_K: x = d * sc * q - dmin * m per sub-block of 32 */
LM_HD void lm_dequant_q4_K_block(const lm_block_q4_K *LM_RESTRICT b, float *LM_RESTRICT out) {
    const float d = lm_fp16_to_fp32(b->d);
    const float dmin = lm_fp16_to_fp32(b->dmin);
    for (int s = 0; s < LM_QK_K / 32; s++) {
        int sc, m;
        lm_k4_scale_min(b->scales, s, &sc, &m);
        const float dl = LM_MUL_RN(d, (float)sc);
        const float ml = LM_MUL_RN(dmin, (float)m);
        for (int l = 0; l < 32; l++) {
            const float p = LM_MUL_RN(dl, (float)lm_q4_K_nibble(b->qs, 32 * s + l));
            out[32 * s + l] = p - ml;
        }
    }
}

/* q5_K: as q4_K with q += 16 * (bit s of qh[l]) for element 32 s + l */
LM_HD void lm_dequant_q5_K_block(const lm_block_q5_K *LM_RESTRICT b, float *LM_RESTRICT out) {
    const float d = lm_fp16_to_fp32(b->d);
    const float dmin = lm_fp16_to_fp32(b->dmin);
    for (int s = 0; s < LM_QK_K / 32; s++) {
        int sc, m;
        lm_k4_scale_min(b->scales, s, &sc, &m);
        const float dl = LM_MUL_RN(d, (float)sc);
        const float ml = LM_MUL_RN(dmin, (float)m);
        for (int l = 0; l < 32; l++) {
            const int q = lm_q4_K_nibble(b->qs, 32 * s + l) | (((b->qh[l] >> s) & 1) << 4);
            const float p = LM_MUL_RN(dl, (float)q);
            out[32 * s + l] = p - ml;
        }
    }
}

/* q6_K: 6-bit q of element e. Within each half h (128 elements), quarter k = (e >> 5) & 3,
 * l = e & 31: low 4 bits from ql[64 h + l + 32 (k & 1)] (nibble k >> 1), high 2 bits from
 * qh[32 h + l] bits 2k..2k+1. */
LM_HD int lm_q6_K_q(const uint8_t *ql, const uint8_t *qh, int e) {
    const int h = e >> 7, k = (e >> 5) & 3, l = e & 31;
    const uint8_t lo = ql[64 * h + l + 32 * (k & 1)];
    const int low = (k >> 1) ? (lo >> 4) : (lo & 0x0f);
    return low | (((qh[32 * h + l] >> (2 * k)) & 3) << 4);
}

/* q6_K: x = d * sc * (q - 32) per sub-block of 16 */
LM_HD void lm_dequant_q6_K_block(const lm_block_q6_K *LM_RESTRICT b, float *LM_RESTRICT out) {
    const float d = lm_fp16_to_fp32(b->d);
    for (int s = 0; s < LM_QK_K / 16; s++) {
        const float dl = LM_MUL_RN(d, (float)b->scales[s]);
        for (int l = 0; l < 16; l++)
            out[16 * s + l] = dl * (float)(lm_q6_K_q(b->ql, b->qh, 16 * s + l) - 32);
    }
}

/* q8_K: x = q * d (d is a float) */
LM_HD void lm_dequant_q8_K_block(const lm_block_q8_K *LM_RESTRICT b, float *LM_RESTRICT out) {
    for (int j = 0; j < LM_QK_K; j++) out[j] = (float)b->qs[j] * b->d;
}

#endif
