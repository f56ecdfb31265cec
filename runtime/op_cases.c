/* The op-case tables: see op_cases.h for what each field means per op. */
#include "op_cases.h"

#include "backend.h"

#include <stdio.h>

/* Reasons, shared by the rows they apply to. */
#define WHY_EXACT     "same floats moved or converted exactly: must be bit-equal"
#define WHY_ONE_ROUND "one float rounding of the exact result: half an ulp, 2^-24 relative"
#define WHY_DOT                                                                                    \
    "float accumulation of K products in 16 lanes: ~sqrt(K) eps |w||x|; reference "                \
    "dequantizes with lm_dequantize_row (bit-exact per test_quant), so quant error is not in it"
#define WHY_QDOT                                                                                   \
    "x quantized to 16-bit integers per block (32; 256 for k-quants): each x moves by up to "      \
    "amax_blk/65534 (rms ~2e-5 for N(0,1)), times |w| ~0.4 over K terms: ~1e-5 sqrt(K) rms, "      \
    "plus float rounding; atol = 1e-4 sqrt(K) is ~9 sigma. test_matmul checks the exact bound"
#define WHY_NORM "float products after a double mean: a few ulps"
#define WHY_ROPE "angles in double, cos/sin rounded to float, two float products: ~1e-7 |x|"
#define WHY_F16  "f16 storage rounds to nearest: half an f16 ulp, 2^-11 relative (+ subnormals)"
#define WHY_BF16 "bf16 storage rounds to nearest: half a bf16 ulp, 2^-8 relative"
#define WHY_ATTN                                                                                   \
    "float dot, expf and running sums over <= 300 positions: ~1e-6; the reference reads the "      \
    "same stored cache values, so f16 cache rounding (~1e-3) is not part of the error"
#define WHY_ATTN_LONG                                                                              \
    "as above over up to 4096 positions: the output is a convex mix of |v| ~ 1 values, float "     \
    "sums of L terms err by ~sqrt(L) eps ~ 4e-6 at 4096; measured worst 3e-7 (tolerance 70x)"
#define WHY_ATTN_Q8                                                                                \
    "as the F16 rows: the reference reads the same stored q8_0 values (dequantization is exact), " \
    "so the cache's rounding (up to amax_blk/254, ~1e-2) is not part of the error"
#define WHY_Q8_KV                                                                                  \
    "q8_0 rounds each value to a multiple of d = amax_blk/127 (d stored as f16): error <= "        \
    "d/2 + 127 d 2^-11 = 0.0044 amax_blk; atol 0.03 holds for amax_blk <= 6.7 (N(0,1): "           \
    "p ~ 1e-11 per value)"
#define WHY_ACT "expf / tanhf in float: a few ulps of each factor"

#define F32  LM_TYPE_F32
#define F16  LM_TYPE_F16
#define BF16 LM_TYPE_BF16
#define Q4_0 LM_TYPE_Q4_0
#define Q4_1 LM_TYPE_Q4_1
#define Q8_0 LM_TYPE_Q8_0
#define Q5_0 LM_TYPE_Q5_0
#define Q5_1 LM_TYPE_Q5_1
#define Q2_K LM_TYPE_Q2_K
#define Q3_K LM_TYPE_Q3_K
#define Q4_K LM_TYPE_Q4_K
#define Q5_K LM_TYPE_Q5_K
#define Q6_K LM_TYPE_Q6_K

/* clang-format off */
const lm_op_case lm_op_cases[] = {
    /* get_rows: table [k, n] -> m rows */
    {.op = LM_OP_GET_ROWS, .type = F32,  .k = 96,  .n = 17, .m = 5, .why = WHY_EXACT},
    {.op = LM_OP_GET_ROWS, .type = F16,  .k = 160, .n = 9,  .m = 7, .why = WHY_EXACT},
    {.op = LM_OP_GET_ROWS, .type = BF16, .k = 33,  .n = 4,  .m = 3, .why = WHY_EXACT},
    {.op = LM_OP_GET_ROWS, .type = Q4_0, .k = 96,  .n = 17, .m = 1, .why = WHY_EXACT},
    {.op = LM_OP_GET_ROWS, .type = Q4_1, .k = 576, .n = 30, .m = 7, .why = WHY_EXACT},
    {.op = LM_OP_GET_ROWS, .type = Q8_0, .k = 608, .n = 3,  .m = 4, .why = WHY_EXACT},

    /* rms_norm: x [k, n, m] */
    {.op = LM_OP_RMS_NORM, .k = 576, .n = 1, .m = 7, .mode = 1, .atol = 1e-6, .rtol = 2e-6, .why = WHY_NORM},
    {.op = LM_OP_RMS_NORM, .k = 33,  .n = 3, .m = 2, .mode = 0, .atol = 1e-6, .rtol = 2e-6, .why = WHY_NORM},
    {.op = LM_OP_RMS_NORM, .k = 1,   .n = 5, .m = 1, .mode = 1, .atol = 1e-6, .rtol = 2e-6, .why = WHY_NORM},

    /* mul_mat: W [k, n] x x [k, m]; K not a multiple of 16 lanes, odd N, M = 1 and > 1;
     * quantized W: 16-bit integer activations, so the tolerance is that of x's quantization */
    {.op = LM_OP_MUL_MAT, .type = F32,  .k = 96,  .n = 17, .m = 1, .atol = 1e-4, .rtol = 1e-5, .why = WHY_DOT},
    {.op = LM_OP_MUL_MAT, .type = F32,  .k = 37,  .n = 3,  .m = 7, .atol = 1e-4, .rtol = 1e-5, .why = WHY_DOT},
    {.op = LM_OP_MUL_MAT, .type = F16,  .k = 160, .n = 17, .m = 7, .atol = 1e-4, .rtol = 1e-5, .why = WHY_DOT},
    {.op = LM_OP_MUL_MAT, .type = BF16, .k = 96,  .n = 5,  .m = 2, .atol = 1e-4, .rtol = 1e-5, .why = WHY_DOT},
    {.op = LM_OP_MUL_MAT, .type = Q4_0, .k = 96,   .n = 17,  .m = 1, .atol = 9.8e-04, .rtol = 1e-5, .why = WHY_QDOT},
    {.op = LM_OP_MUL_MAT, .type = Q4_0, .k = 608,  .n = 3,   .m = 7, .atol = 2.5e-03, .rtol = 1e-5, .why = WHY_QDOT},
    {.op = LM_OP_MUL_MAT, .type = Q4_1, .k = 160,  .n = 1,   .m = 1, .atol = 1.3e-03, .rtol = 1e-5, .why = WHY_QDOT},
    {.op = LM_OP_MUL_MAT, .type = Q4_1, .k = 576,  .n = 67,  .m = 7, .atol = 2.4e-03, .rtol = 1e-5, .why = WHY_QDOT},
    {.op = LM_OP_MUL_MAT, .type = Q4_1, .k = 1536, .n = 33,  .m = 1, .atol = 3.9e-03, .rtol = 1e-5, .why = WHY_QDOT},
    {.op = LM_OP_MUL_MAT, .type = Q8_0, .k = 96,   .n = 17,  .m = 7, .atol = 9.8e-04, .rtol = 1e-5, .why = WHY_QDOT},
    {.op = LM_OP_MUL_MAT, .type = Q8_0, .k = 608,  .n = 129, .m = 1, .atol = 2.5e-03, .rtol = 1e-5, .why = WHY_QDOT},
    {.op = LM_OP_MUL_MAT, .type = Q5_0, .k = 160,  .n = 9,   .m = 3, .atol = 1.3e-03, .rtol = 1e-5, .why = WHY_QDOT},
    {.op = LM_OP_MUL_MAT, .type = Q5_1, .k = 576,  .n = 17,  .m = 2, .atol = 2.4e-03, .rtol = 1e-5, .why = WHY_QDOT},
    {.op = LM_OP_MUL_MAT, .type = Q2_K, .k = 512,  .n = 9,   .m = 3, .atol = 2.3e-03, .rtol = 1e-5, .why = WHY_QDOT},
    {.op = LM_OP_MUL_MAT, .type = Q3_K, .k = 768,  .n = 5,   .m = 1, .atol = 2.8e-03, .rtol = 1e-5, .why = WHY_QDOT},
    {.op = LM_OP_MUL_MAT, .type = Q4_K, .k = 1536, .n = 17,  .m = 4, .atol = 3.9e-03, .rtol = 1e-5, .why = WHY_QDOT},
    {.op = LM_OP_MUL_MAT, .type = Q5_K, .k = 256,  .n = 33,  .m = 1, .atol = 1.6e-03, .rtol = 1e-5, .why = WHY_QDOT},
    {.op = LM_OP_MUL_MAT, .type = Q6_K, .k = 768,  .n = 7,   .m = 5, .atol = 2.8e-03, .rtol = 1e-5, .why = WHY_QDOT},

    /* rope: [head_dim, n_head, n_tok]; partial rotation; freq scaling and factors */
    {.op = LM_OP_ROPE, .k = 64, .n = 3, .m = 7, .mode = LM_ROPE_NORMAL, .n_rot = 64, .n_ctx = 4096, .atol = 1e-5, .rtol = 1e-5, .why = WHY_ROPE},
    {.op = LM_OP_ROPE, .k = 64, .n = 2, .m = 5, .mode = LM_ROPE_NEOX,   .n_rot = 64, .n_ctx = 300,  .atol = 1e-5, .rtol = 1e-5, .why = WHY_ROPE},
    {.op = LM_OP_ROPE, .k = 96, .n = 2, .m = 3, .mode = LM_ROPE_NEOX,   .n_rot = 32, .n_ctx = 100,  .atol = 1e-5, .rtol = 1e-5, .why = WHY_ROPE},
    {.op = LM_OP_ROPE, .k = 80, .n = 1, .m = 4, .mode = LM_ROPE_NORMAL, .n_rot = 40, .n_ctx = 2000, .freq_scale = 0.25f, .freq_factors = 1, .atol = 1e-5, .rtol = 1e-5, .why = WHY_ROPE},

    /* kv_store: [head_dim, n_kv_head, n_tok] into [.., n_ctx, n_seq] */
    {.op = LM_OP_KV_STORE, .type = F32, .k = 64, .n_kv_head = 3, .m = 5, .n_ctx = 40, .n_seq = 2, .why = WHY_EXACT},
    {.op = LM_OP_KV_STORE, .type = F16, .k = 64, .n_kv_head = 1, .m = 7, .n_ctx = 16, .n_seq = 3, .atol = 3e-8, .rtol = 4.9e-4, .why = WHY_F16},
    {.op = LM_OP_KV_STORE, .type = Q8_0, .k = 64, .n_kv_head = 3, .m = 5, .n_ctx = 40, .n_seq = 2, .atol = 0.03, .why = WHY_Q8_KV},
    {.op = LM_OP_KV_STORE, .type = Q8_0, .k = 96, .n_kv_head = 1, .m = 7, .n_ctx = 16, .n_seq = 3, .atol = 0.03, .why = WHY_Q8_KV},

    /* attention: contexts 1, 33, 300; GQA 1 and 3; window; softcap; 2 sequences */
    {.op = LM_OP_ATTENTION, .type = F32, .k = 64, .n = 3, .n_kv_head = 3, .m = 2, .n_ctx = 1,   .n_seq = 2, .atol = 2e-5, .rtol = 1e-4, .why = WHY_ATTN},
    {.op = LM_OP_ATTENTION, .type = F16, .k = 64, .n = 3, .n_kv_head = 1, .m = 1, .n_ctx = 1,   .n_seq = 1, .atol = 2e-5, .rtol = 1e-4, .why = WHY_ATTN},
    {.op = LM_OP_ATTENTION, .type = F16, .k = 64, .n = 9, .n_kv_head = 3, .m = 7, .n_ctx = 33,  .n_seq = 2, .atol = 2e-5, .rtol = 1e-4, .why = WHY_ATTN},
    {.op = LM_OP_ATTENTION, .type = F32, .k = 32, .n = 4, .n_kv_head = 4, .m = 1, .n_ctx = 33,  .n_seq = 1, .atol = 2e-5, .rtol = 1e-4, .why = WHY_ATTN},
    {.op = LM_OP_ATTENTION, .type = F16, .k = 64, .n = 6, .n_kv_head = 2, .m = 4, .n_ctx = 300, .n_seq = 2, .atol = 2e-5, .rtol = 1e-4, .why = WHY_ATTN},
    {.op = LM_OP_ATTENTION, .type = F32, .k = 64, .n = 3, .n_kv_head = 3, .m = 6, .n_ctx = 300, .n_seq = 2, .atol = 2e-5, .rtol = 1e-4, .why = WHY_ATTN},
    {.op = LM_OP_ATTENTION, .type = F16, .k = 64, .n = 6, .n_kv_head = 2, .m = 5, .n_ctx = 300, .n_seq = 2, .window = 64, .atol = 2e-5, .rtol = 1e-4, .why = WHY_ATTN},
    {.op = LM_OP_ATTENTION, .type = F32, .k = 48, .n = 3, .n_kv_head = 1, .m = 4, .n_ctx = 33,  .n_seq = 2, .softcap = 2.0f, .atol = 2e-5, .rtol = 1e-4, .why = WHY_ATTN},
    {.op = LM_OP_ATTENTION, .type = F16, .k = 64, .n = 6, .n_kv_head = 2, .m = 3, .n_ctx = 300, .n_seq = 2, .window = 17, .softcap = 50.0f, .atol = 2e-5, .rtol = 1e-4, .why = WHY_ATTN},
    /* q8_0 caches: contexts 1, 33, 300; GQA 3; a window; a soft-cap; head_dim 32 and 96 */
    {.op = LM_OP_ATTENTION, .type = Q8_0, .k = 64, .n = 3, .n_kv_head = 1, .m = 1, .n_ctx = 1,   .n_seq = 1, .atol = 2e-5, .rtol = 1e-4, .why = WHY_ATTN_Q8},
    {.op = LM_OP_ATTENTION, .type = Q8_0, .k = 64, .n = 9, .n_kv_head = 3, .m = 7, .n_ctx = 33,  .n_seq = 2, .atol = 2e-5, .rtol = 1e-4, .why = WHY_ATTN_Q8},
    {.op = LM_OP_ATTENTION, .type = Q8_0, .k = 96, .n = 6, .n_kv_head = 2, .m = 5, .n_ctx = 300, .n_seq = 2, .window = 64, .atol = 2e-5, .rtol = 1e-4, .why = WHY_ATTN_Q8},
    {.op = LM_OP_ATTENTION, .type = Q8_0, .k = 32, .n = 4, .n_kv_head = 2, .m = 4, .n_ctx = 33,  .n_seq = 2, .softcap = 2.0f, .atol = 2e-5, .rtol = 1e-4, .why = WHY_ATTN_Q8},
    {.op = LM_OP_ATTENTION, .type = Q8_0, .k = 256, .n = 4, .n_kv_head = 1, .m = 3, .n_ctx = 90, .n_seq = 1, .window = 40, .atol = 2e-5, .rtol = 1e-4, .why = WHY_ATTN_Q8},

    /* activations and element-wise */
    {.op = LM_OP_SWIGLU, .k = 1536, .n = 1, .m = 7, .atol = 1e-6, .rtol = 1e-6, .why = WHY_ACT},
    {.op = LM_OP_SWIGLU, .k = 33,   .n = 1, .m = 1, .atol = 1e-6, .rtol = 1e-6, .why = WHY_ACT},
    {.op = LM_OP_GEGLU,  .k = 1152, .n = 1, .m = 3, .atol = 1e-6, .rtol = 1e-6, .why = WHY_ACT},
    {.op = LM_OP_GEGLU,  .k = 17,   .n = 2, .m = 1, .atol = 1e-6, .rtol = 1e-6, .why = WHY_ACT},
    {.op = LM_OP_ADD, .k = 576, .n = 1, .m = 7, .mode = 0, .rtol = 6e-8, .why = WHY_ONE_ROUND},
    {.op = LM_OP_ADD, .k = 96,  .n = 3, .m = 7, .mode = 6, .rtol = 6e-8, .why = WHY_ONE_ROUND},
    {.op = LM_OP_ADD, .k = 33,  .n = 4, .m = 2, .mode = 1, .rtol = 6e-8, .why = WHY_ONE_ROUND},
    {.op = LM_OP_MUL, .k = 576, .n = 1, .m = 7, .mode = 2, .rtol = 6e-8, .why = WHY_ONE_ROUND},
    {.op = LM_OP_MUL, .k = 64,  .n = 3, .m = 5, .mode = 4, .rtol = 6e-8, .why = WHY_ONE_ROUND},
    {.op = LM_OP_MUL, .k = 17,  .n = 2, .m = 3, .mode = 0, .rtol = 6e-8, .why = WHY_ONE_ROUND},
    {.op = LM_OP_SCALE, .k = 100, .n = 3, .m = 2, .rtol = 6e-8, .why = WHY_ONE_ROUND},
    {.op = LM_OP_ARGMAX, .k = 49152, .m = 1, .why = WHY_EXACT},
    {.op = LM_OP_ARGMAX, .k = 37,    .m = 9, .why = WHY_EXACT},

    /* copy */
    {.op = LM_OP_COPY, .src_type = F32, .type = F16, .k = 96, .n = 3, .m = 2, .atol = 3e-8, .rtol = 4.9e-4, .why = WHY_F16},
    {.op = LM_OP_COPY, .src_type = F16, .type = F32, .k = 33, .n = 5, .m = 1, .why = WHY_EXACT},
    {.op = LM_OP_COPY, .src_type = F32, .type = F32, .k = 7,  .n = 1, .m = 3, .why = WHY_EXACT},
    {.op = LM_OP_COPY, .src_type = F32, .type = BF16, .k = 64, .n = 2, .m = 2, .rtol = 3.9e-3, .why = WHY_BF16},
};
/* clang-format on */

const int lm_op_n_cases = (int)(sizeof lm_op_cases / sizeof lm_op_cases[0]);

/* Bench shapes: SmolLM2-135M (n_embd 576, n_ff 1536, 9 heads of 64, 3 KV heads) and Gemma 3
 * 270M (n_embd 640, n_ff 2048, 4 heads of 256, 1 KV head). Decode is batch 1; prefill 128
 * and 512. K per weight type as the models use it (k-quants need K % 256 == 0). The
 * tolerances follow the same reasons as the rows above. */
/* clang-format off */
const lm_op_case lm_op_bench_cases[] = {
    /* decode: matrix-vector, every weight type, N = 1536 rows */
    {.op = LM_OP_MUL_MAT, .type = F32,  .k = 576,  .n = 1536, .m = 1, .atol = 1e-4,   .rtol = 1e-5, .why = WHY_DOT},
    {.op = LM_OP_MUL_MAT, .type = F16,  .k = 576,  .n = 1536, .m = 1, .atol = 1e-4,   .rtol = 1e-5, .why = WHY_DOT},
    {.op = LM_OP_MUL_MAT, .type = BF16, .k = 576,  .n = 1536, .m = 1, .atol = 1e-4,   .rtol = 1e-5, .why = WHY_DOT},
    {.op = LM_OP_MUL_MAT, .type = Q4_0, .k = 576,  .n = 1536, .m = 1, .atol = 2.4e-3, .rtol = 1e-5, .why = WHY_QDOT},
    {.op = LM_OP_MUL_MAT, .type = Q4_1, .k = 576,  .n = 1536, .m = 1, .atol = 2.4e-3, .rtol = 1e-5, .why = WHY_QDOT},
    {.op = LM_OP_MUL_MAT, .type = Q4_1, .k = 1536, .n = 576,  .m = 1, .atol = 3.9e-3, .rtol = 1e-5, .why = WHY_QDOT},
    {.op = LM_OP_MUL_MAT, .type = Q5_0, .k = 640,  .n = 1536, .m = 1, .atol = 2.6e-3, .rtol = 1e-5, .why = WHY_QDOT},
    {.op = LM_OP_MUL_MAT, .type = Q5_1, .k = 576,  .n = 1536, .m = 1, .atol = 2.4e-3, .rtol = 1e-5, .why = WHY_QDOT},
    {.op = LM_OP_MUL_MAT, .type = Q8_0, .k = 640,  .n = 1536, .m = 1, .atol = 2.6e-3, .rtol = 1e-5, .why = WHY_QDOT},
    {.op = LM_OP_MUL_MAT, .type = Q2_K, .k = 1024, .n = 1536, .m = 1, .atol = 3.2e-3, .rtol = 1e-5, .why = WHY_QDOT},
    {.op = LM_OP_MUL_MAT, .type = Q3_K, .k = 1024, .n = 1536, .m = 1, .atol = 3.2e-3, .rtol = 1e-5, .why = WHY_QDOT},
    {.op = LM_OP_MUL_MAT, .type = Q4_K, .k = 1024, .n = 1536, .m = 1, .atol = 3.2e-3, .rtol = 1e-5, .why = WHY_QDOT},
    {.op = LM_OP_MUL_MAT, .type = Q5_K, .k = 1024, .n = 1536, .m = 1, .atol = 3.2e-3, .rtol = 1e-5, .why = WHY_QDOT},
    {.op = LM_OP_MUL_MAT, .type = Q6_K, .k = 2048, .n = 1536, .m = 1, .atol = 4.5e-3, .rtol = 1e-5, .why = WHY_QDOT},

    /* prefill: batches of 128 and 512 */
    {.op = LM_OP_MUL_MAT, .type = Q4_1, .k = 576,  .n = 1536, .m = 128, .atol = 2.4e-3, .rtol = 1e-5, .why = WHY_QDOT},
    {.op = LM_OP_MUL_MAT, .type = Q4_1, .k = 576,  .n = 1536, .m = 512, .atol = 2.4e-3, .rtol = 1e-5, .why = WHY_QDOT},
    {.op = LM_OP_MUL_MAT, .type = Q5_0, .k = 640,  .n = 1536, .m = 128, .atol = 2.6e-3, .rtol = 1e-5, .why = WHY_QDOT},
    {.op = LM_OP_MUL_MAT, .type = Q8_0, .k = 640,  .n = 1536, .m = 128, .atol = 2.6e-3, .rtol = 1e-5, .why = WHY_QDOT},
    {.op = LM_OP_MUL_MAT, .type = Q4_K, .k = 1024, .n = 1536, .m = 128, .atol = 3.2e-3, .rtol = 1e-5, .why = WHY_QDOT},
    {.op = LM_OP_MUL_MAT, .type = Q6_K, .k = 2048, .n = 1536, .m = 128, .atol = 4.5e-3, .rtol = 1e-5, .why = WHY_QDOT},

    /* attention over an F16 cache: decode at contexts 128, 1024, 4096; a 128-token prefill */
    {.op = LM_OP_ATTENTION, .type = F16, .k = 64,  .n = 9, .n_kv_head = 3, .m = 1,   .n_ctx = 128,  .n_seq = 1, .atol = 2e-5, .rtol = 1e-4, .why = WHY_ATTN},
    {.op = LM_OP_ATTENTION, .type = F16, .k = 64,  .n = 9, .n_kv_head = 3, .m = 1,   .n_ctx = 1024, .n_seq = 1, .atol = 2e-5, .rtol = 1e-4, .why = WHY_ATTN_LONG},
    {.op = LM_OP_ATTENTION, .type = F16, .k = 64,  .n = 9, .n_kv_head = 3, .m = 1,   .n_ctx = 4096, .n_seq = 1, .atol = 2e-5, .rtol = 1e-4, .why = WHY_ATTN_LONG},
    {.op = LM_OP_ATTENTION, .type = F16, .k = 64,  .n = 9, .n_kv_head = 3, .m = 128, .n_ctx = 128,  .n_seq = 1, .atol = 2e-5, .rtol = 1e-4, .why = WHY_ATTN},
    {.op = LM_OP_ATTENTION, .type = F16, .k = 256, .n = 4, .n_kv_head = 1, .m = 1,   .n_ctx = 1024, .n_seq = 1, .atol = 2e-5, .rtol = 1e-4, .why = WHY_ATTN_LONG},
    {.op = LM_OP_KV_STORE, .type = F16, .k = 64, .n_kv_head = 3, .m = 1,   .n_ctx = 4096, .n_seq = 1, .atol = 3e-8, .rtol = 4.9e-4, .why = WHY_F16},
    {.op = LM_OP_KV_STORE, .type = F16, .k = 64, .n_kv_head = 3, .m = 512, .n_ctx = 4096, .n_seq = 1, .atol = 3e-8, .rtol = 4.9e-4, .why = WHY_F16},
    /* the same over a q8_0 cache */
    {.op = LM_OP_ATTENTION, .type = Q8_0, .k = 64, .n = 9, .n_kv_head = 3, .m = 1,   .n_ctx = 1024, .n_seq = 1, .atol = 2e-5, .rtol = 1e-4, .why = WHY_ATTN_Q8},
    {.op = LM_OP_ATTENTION, .type = Q8_0, .k = 64, .n = 9, .n_kv_head = 3, .m = 128, .n_ctx = 128,  .n_seq = 1, .atol = 2e-5, .rtol = 1e-4, .why = WHY_ATTN_Q8},
    {.op = LM_OP_KV_STORE, .type = Q8_0, .k = 64, .n_kv_head = 3, .m = 1,   .n_ctx = 4096, .n_seq = 1, .atol = 0.03, .why = WHY_Q8_KV},

    /* norms, RoPE, activations, residual adds, embeddings, greedy pick */
    {.op = LM_OP_RMS_NORM, .k = 576, .n = 1, .m = 1,   .mode = 1, .atol = 1e-6, .rtol = 2e-6, .why = WHY_NORM},
    {.op = LM_OP_RMS_NORM, .k = 576, .n = 1, .m = 512, .mode = 1, .atol = 1e-6, .rtol = 2e-6, .why = WHY_NORM},
    {.op = LM_OP_ROPE, .k = 64,  .n = 9, .m = 1,   .mode = LM_ROPE_NORMAL, .n_rot = 64,  .n_ctx = 4096, .atol = 1e-5, .rtol = 1e-5, .why = WHY_ROPE},
    {.op = LM_OP_ROPE, .k = 64,  .n = 9, .m = 512, .mode = LM_ROPE_NORMAL, .n_rot = 64,  .n_ctx = 4096, .atol = 1e-5, .rtol = 1e-5, .why = WHY_ROPE},
    {.op = LM_OP_ROPE, .k = 256, .n = 4, .m = 1,   .mode = LM_ROPE_NEOX,   .n_rot = 256, .n_ctx = 4096, .atol = 1e-5, .rtol = 1e-5, .why = WHY_ROPE},
    {.op = LM_OP_SWIGLU, .k = 1536, .n = 1, .m = 1,   .atol = 1e-6, .rtol = 1e-6, .why = WHY_ACT},
    {.op = LM_OP_SWIGLU, .k = 1536, .n = 1, .m = 512, .atol = 1e-6, .rtol = 1e-6, .why = WHY_ACT},
    {.op = LM_OP_GEGLU,  .k = 2048, .n = 1, .m = 1,   .atol = 1e-6, .rtol = 1e-6, .why = WHY_ACT},
    {.op = LM_OP_ADD, .k = 576, .n = 1, .m = 512, .mode = 0, .rtol = 6e-8, .why = WHY_ONE_ROUND},
    {.op = LM_OP_GET_ROWS, .type = Q8_0, .k = 576, .n = 4096, .m = 512, .why = WHY_EXACT},
    {.op = LM_OP_ARGMAX, .k = 49152, .m = 1, .why = WHY_EXACT},
};
/* clang-format on */

const int lm_op_n_bench_cases = (int)(sizeof lm_op_bench_cases / sizeof lm_op_bench_cases[0]);

const char *lm_op_name(lm_op_kind op) {
    switch (op) {
#define LM_X_OP_NAME(name, str)                                                                    \
    case LM_OP_##name:                                                                             \
        return str;
        LM_OP_TABLE(LM_X_OP_NAME)
#undef LM_X_OP_NAME
    default:
        return "?";
    }
}

const char *lm_op_case_str(const lm_op_case *c, char *buf, size_t size) {
    const char *tn = lm_type_get((uint32_t)c->type).name;
    int w = snprintf(buf, size, "%s %s k=%lld n=%lld m=%lld", lm_op_name(c->op), tn ? tn : "?",
                     (long long)c->k, (long long)c->n, (long long)c->m);
    if (w < 0 || (size_t)w >= size) return buf;
    if (c->op == LM_OP_COPY)
        snprintf(buf + w, size - (size_t)w, " from %s", lm_type_get((uint32_t)c->src_type).name);
    else if (c->op == LM_OP_ATTENTION || c->op == LM_OP_KV_STORE)
        snprintf(buf + w, size - (size_t)w, " kv_heads=%d ctx=%d seqs=%d window=%d softcap=%g",
                 c->n_kv_head, c->n_ctx, c->n_seq, c->window, c->softcap);
    else if (c->op == LM_OP_ROPE)
        snprintf(buf + w, size - (size_t)w, " mode=%d n_rot=%d", c->mode, c->n_rot);
    else if (c->mode)
        snprintf(buf + w, size - (size_t)w, " mode=%d", c->mode);
    return buf;
}
