/* Reference (plain C) dequantize and quantize of the block formats in kernels/common. */
#ifndef LM_QUANT_H
#define LM_QUANT_H

#include "../kernels/common/lm_types.h"
#include "../kernels/common/lm_quant_blocks.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True if Lumen can dequantize (and so compute with) this type. */
bool lm_type_computable(lm_type type);
/* Bytes of a row of n elements (n a multiple of the block size). */
size_t lm_row_size(lm_type type, int64_t n);
/* dst[0..n) = dequantized src row; n a multiple of the block size. */
void lm_dequantize_row(lm_type type, const void *src, float *dst, int64_t n);
/* Quantize n floats into dst (lm_row_size(type, n) bytes); byte-identical to ggml's
 * reference quantizers for the legacy types and Q8_0. Returns bytes written. */
size_t lm_quantize_row(lm_type type, const float *src, void *dst, int64_t n);

#endif
