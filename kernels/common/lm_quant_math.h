/* Per-block dequantization math shared by the CPU backend and CUDA kernels. Each function
 * turns one block into its 32 floats exactly as ggml's reference dequantizers do, so the
 * numbers the CPU tests check are the numbers the GPU computes. */
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

/* q8_0: x = q * d */
LM_HD void lm_dequant_q8_0_block(const lm_block_q8_0 *LM_RESTRICT b, float *LM_RESTRICT out) {
    const float d = lm_fp16_to_fp32(b->d);
    for (int j = 0; j < LM_QK8_0; j++) out[j] = (float)b->qs[j] * d;
}

#endif
