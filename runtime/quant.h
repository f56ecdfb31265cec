/* Reference (plain C) dequantize and quantize of the block formats in kernels/common. */
#ifndef LM_QUANT_H
#define LM_QUANT_H

#include "../kernels/common/lm_types.h"
#include "../kernels/common/lm_quant_blocks.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True if Lumen can dequantize (and so compute with) this type as a weight. */
bool lm_type_computable(lm_type type);
/* Bytes of a row of n elements (n a multiple of the block size). */
size_t lm_row_size(lm_type type, int64_t n);
/* dst[0..n) = dequantized src row; n a multiple of the block size. */
void lm_dequantize_row(lm_type type, const void *src, float *dst, int64_t n);
/* Quantize n floats into dst (lm_row_size(type, n) bytes). Q4_0, Q4_1, Q5_0, Q5_1, Q8_0:
 * byte-identical to ggml's reference quantizers; Q2_K..Q6_K and Q8_K: ggml's reference
 * algorithms (quant_k.c). Returns bytes written; 0 for a type without a quantizer or n
 * not a multiple of the block size. Q8_K (an activation format, not computable as a
 * weight) can be quantized and dequantized too. */
size_t lm_quantize_row(lm_type type, const float *src, void *dst, int64_t n);

/* internal (quant_k.c): one 256-element k-quant block of type Q2_K..Q6_K or Q8_K */
void lm__quantize_k_block(lm_type type, const float *x, void *dst);

#endif
