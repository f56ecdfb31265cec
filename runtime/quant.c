/* Reference (plain C) quantize / dequantize of the GGUF block formats. The 32-element
 * quantizers follow ggml's *_ref functions step for step so the bytes match (the k-quant
 * ones are in quant_k.c); the per-block dequant math lives in
 * kernels/common/lm_quant_math.h, shared with the GPU backends. */
#include "quant.h"

#include "../kernels/common/lm_quant_math.h"

#include <float.h>
#include <math.h>
#include <string.h>

bool lm_type_computable(lm_type type) {
    lm_type_traits t = lm_type_get((uint32_t)type);
    return t.name != NULL && t.computable;
}

/* 0 for unknown types, negative n, or n not a multiple of the block size. */
size_t lm_row_size(lm_type type, int64_t n) {
    lm_type_traits t = lm_type_get((uint32_t)type);
    if (t.name == NULL || n < 0 || n % t.blck != 0) return 0;
    return (size_t)(n / t.blck) * (size_t)t.size;
}

void lm_dequantize_row(lm_type type, const void *src, float *dst, int64_t n) {
    switch (type) {
    case LM_TYPE_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    case LM_TYPE_F16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) dst[i] = lm_fp16_to_fp32(s[i]);
        return;
    }
    case LM_TYPE_BF16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) dst[i] = lm_bf16_to_fp32(s[i]);
        return;
    }
#define LM__DEQ_CASE(T, blk, qk, fn)                                                               \
    case T: {                                                                                      \
        const blk *b = src;                                                                        \
        for (int64_t i = 0; i < n / (qk); i++) fn(&b[i], dst + i * (qk));                          \
        return;                                                                                    \
    }
        LM__DEQ_CASE(LM_TYPE_Q4_0, lm_block_q4_0, LM_QK4_0, lm_dequant_q4_0_block)
        LM__DEQ_CASE(LM_TYPE_Q4_1, lm_block_q4_1, LM_QK4_1, lm_dequant_q4_1_block)
        LM__DEQ_CASE(LM_TYPE_Q5_0, lm_block_q5_0, LM_QK5_0, lm_dequant_q5_0_block)
        LM__DEQ_CASE(LM_TYPE_Q5_1, lm_block_q5_1, LM_QK5_1, lm_dequant_q5_1_block)
        LM__DEQ_CASE(LM_TYPE_Q8_0, lm_block_q8_0, LM_QK8_0, lm_dequant_q8_0_block)
        LM__DEQ_CASE(LM_TYPE_Q2_K, lm_block_q2_K, LM_QK_K, lm_dequant_q2_K_block)
        LM__DEQ_CASE(LM_TYPE_Q3_K, lm_block_q3_K, LM_QK_K, lm_dequant_q3_K_block)
        LM__DEQ_CASE(LM_TYPE_Q4_K, lm_block_q4_K, LM_QK_K, lm_dequant_q4_K_block)
        LM__DEQ_CASE(LM_TYPE_Q5_K, lm_block_q5_K, LM_QK_K, lm_dequant_q5_K_block)
        LM__DEQ_CASE(LM_TYPE_Q6_K, lm_block_q6_K, LM_QK_K, lm_dequant_q6_K_block)
        LM__DEQ_CASE(LM_TYPE_Q8_K, lm_block_q8_K, LM_QK_K, lm_dequant_q8_K_block)
#undef LM__DEQ_CASE
    default:
        /* Callers check lm_type_computable first; NaN makes a missed check visible. */
        for (int64_t i = 0; i < n; i++) dst[i] = NAN;
        return;
    }
}

/* ggml quantize_row_q4_0_ref: d = (signed value of largest magnitude) / -8. */
static void lm__quantize_q4_0_block(const float *x, lm_block_q4_0 *y) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < LM_QK4_0; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    const float d = max / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y->d = lm_fp32_to_fp16(d);
    for (int j = 0; j < LM_QK4_0 / 2; j++) {
        const float x0 = x[j] * id;
        const float x1 = x[j + LM_QK4_0 / 2] * id;
        int xi0 = (int8_t)(x0 + 8.5f);
        int xi1 = (int8_t)(x1 + 8.5f);
        if (xi0 > 15) xi0 = 15;
        if (xi1 > 15) xi1 = 15;
        y->qs[j] = (uint8_t)(xi0 | (xi1 << 4));
    }
}

/* ggml quantize_row_q4_1_ref: d = (max - min) / 15, m = min. */
static void lm__quantize_q4_1_block(const float *x, lm_block_q4_1 *y) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < LM_QK4_1; j++) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / 15;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y->d = lm_fp32_to_fp16(d);
    y->m = lm_fp32_to_fp16(min);
    for (int j = 0; j < LM_QK4_1 / 2; j++) {
        const float x0 = (x[j] - min) * id;
        const float x1 = (x[j + LM_QK4_1 / 2] - min) * id;
        int xi0 = (int8_t)(x0 + 0.5f);
        int xi1 = (int8_t)(x1 + 0.5f);
        if (xi0 > 15) xi0 = 15;
        if (xi1 > 15) xi1 = 15;
        y->qs[j] = (uint8_t)(xi0 | (xi1 << 4));
    }
}

/* The fifth bits of 32 5-bit values, element j in bit j (little-endian uint32). */
static void lm__pack_q5(const uint8_t *q, uint8_t *qs, uint8_t *qh) {
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0x0f) | ((q[j + 16] & 0x0f) << 4));
        h |= (uint32_t)(q[j] >> 4) << j;
        h |= (uint32_t)(q[j + 16] >> 4) << (j + 16);
    }
    for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(h >> (8 * k));
}

/* ggml quantize_row_q5_0_ref: as q4_0 with d = max / -16 and q in [0, 31]. */
static void lm__quantize_q5_0_block(const float *x, lm_block_q5_0 *y) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < LM_QK5_0; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    const float d = max / -16;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y->d = lm_fp32_to_fp16(d);
    uint8_t q[LM_QK5_0];
    for (int j = 0; j < LM_QK5_0; j++) {
        const float v = x[j] * id; /* own statement: never fused with the add */
        int xi = (int8_t)(v + 16.5f);
        q[j] = (uint8_t)(xi > 31 ? 31 : xi);
    }
    lm__pack_q5(q, y->qs, y->qh);
}

/* ggml quantize_row_q5_1_ref: as q4_1 with d = (max - min) / 31. */
static void lm__quantize_q5_1_block(const float *x, lm_block_q5_1 *y) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < LM_QK5_1; j++) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / 31;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y->d = lm_fp32_to_fp16(d);
    y->m = lm_fp32_to_fp16(min);
    uint8_t q[LM_QK5_1];
    for (int j = 0; j < LM_QK5_1; j++) {
        const float v = (x[j] - min) * id;
        int xi = (int8_t)(v + 0.5f);
        q[j] = (uint8_t)(xi > 31 ? 31 : xi);
    }
    lm__pack_q5(q, y->qs, y->qh);
}

/* ggml quantize_row_q8_0_ref: d = amax / 127, q = roundf(x / d). */
static void lm__quantize_q8_0_block(const float *x, lm_block_q8_0 *y) {
    float amax = 0.0f;
    for (int j = 0; j < LM_QK8_0; j++) {
        if (amax < fabsf(x[j])) amax = fabsf(x[j]);
    }
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y->d = lm_fp32_to_fp16(d);
    for (int j = 0; j < LM_QK8_0; j++) y->qs[j] = (int8_t)roundf(x[j] * id);
}

size_t lm_quantize_row(lm_type type, const float *src, void *dst, int64_t n) {
    const size_t bytes = lm_row_size(type, n);
    if (bytes == 0 && n != 0) return 0;
    switch (type) {
    case LM_TYPE_F32:
        memcpy(dst, src, bytes);
        break;
    case LM_TYPE_F16: {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = lm_fp32_to_fp16(src[i]);
        break;
    }
    case LM_TYPE_BF16: {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = lm_fp32_to_bf16(src[i]);
        break;
    }
    case LM_TYPE_Q4_0:
        for (int64_t i = 0; i < n / LM_QK4_0; i++)
            lm__quantize_q4_0_block(src + i * LM_QK4_0, (lm_block_q4_0 *)dst + i);
        break;
    case LM_TYPE_Q4_1:
        for (int64_t i = 0; i < n / LM_QK4_1; i++)
            lm__quantize_q4_1_block(src + i * LM_QK4_1, (lm_block_q4_1 *)dst + i);
        break;
    case LM_TYPE_Q5_0:
        for (int64_t i = 0; i < n / LM_QK5_0; i++)
            lm__quantize_q5_0_block(src + i * LM_QK5_0, (lm_block_q5_0 *)dst + i);
        break;
    case LM_TYPE_Q5_1:
        for (int64_t i = 0; i < n / LM_QK5_1; i++)
            lm__quantize_q5_1_block(src + i * LM_QK5_1, (lm_block_q5_1 *)dst + i);
        break;
    case LM_TYPE_Q8_0:
        for (int64_t i = 0; i < n / LM_QK8_0; i++)
            lm__quantize_q8_0_block(src + i * LM_QK8_0, (lm_block_q8_0 *)dst + i);
        break;
    case LM_TYPE_Q2_K:
    case LM_TYPE_Q3_K:
    case LM_TYPE_Q4_K:
    case LM_TYPE_Q5_K:
    case LM_TYPE_Q6_K:
    case LM_TYPE_Q8_K: {
        const size_t bsize = (size_t)lm_type_get((uint32_t)type).size;
        for (int64_t i = 0; i < n / LM_QK_K; i++)
            lm__quantize_k_block(type, src + i * LM_QK_K, (char *)dst + (size_t)i * bsize);
        break;
    }
    default:
        return 0; /* no quantizer for this type */
    }
    return bytes;
}
