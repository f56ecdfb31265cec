/* mul_mat on the CPU: dst[n, m] = sum_k W[k, n] x[k, m], W [K, N] of any computable type,
 * x F32 [K, M], dst F32 [N, M], all 2-D.
 *
 * Quantized W: x is quantized once per call to 16-bit integers per block (lm__q16a blocks
 * of 32 for the 32-element types, lm__q16k blocks of 256 for the k-quants) and each output
 * is an integer dot product per block, scaled (cpu_vec_dot.c). This is ggml's scheme with
 * 16-bit instead of 8-bit activations: no per-row dequantization, integer arithmetic, and
 * an x quantization error (amax / 65534 per element) far below the weights' own, so the
 * results stay those of a float matmul within rounding. F32/F16/BF16 W keep a float dot.
 *
 * Threads split the N weight rows; each output is computed by one thread with a fixed
 * order, so results do not depend on the thread count. A weight row is read once per call
 * and dotted with all M columns while it is in cache. */
#include "cpu_internal.h"

#include "../../runtime/quant.h"

#include <string.h>

typedef struct {
    lm__cpu *c;
    const lm_tensor *w, *x, *dst;
    lm__vec_dot vd;
    size_t act_row; /* bytes of one quantized x column */
} lm__mm_job;

/* Quantize x columns [b, e) into c->act. */
static void lm__mm_quantize_task(void *ctx, int64_t b, int64_t e, int ith) {
    const lm__mm_job *j = ctx;
    const int64_t K = j->x->ne[0];
    for (int64_t m = b; m < e; m++) {
        const float *xc = (const float *)lm__cpu_row(j->x, m, 0, 0);
        void *out = (char *)j->c->act + (size_t)m * j->act_row;
        if (j->vd.act_blck == LM_QK_K)
            lm__quantize_q16k(xc, out, K);
        else
            lm__quantize_q16a(xc, out, K);
    }
}

static void lm__mm_quant_task(void *ctx, int64_t b, int64_t e, int ith) {
    const lm__mm_job *j = ctx;
    const int64_t M = j->x->ne[1];
    const int64_t nblocks = j->w->ne[0] / lm_type_get((uint32_t)j->w->type).blck;
    float out[LM__DOT_COLS];
    for (int64_t n = b; n < e; n++) {
        const void *wr = lm__cpu_row(j->w, n, 0, 0);
        for (int64_t m0 = 0; m0 < M; m0 += LM__DOT_COLS) { /* each weight block unpacked once */
            const int nc = (int)(M - m0 < LM__DOT_COLS ? M - m0 : LM__DOT_COLS);
            j->vd.fn(wr, (const char *)j->c->act + (size_t)m0 * j->act_row, j->act_row, nc, nblocks,
                     out);
            for (int c = 0; c < nc; c++) ((float *)lm__cpu_row(j->dst, m0 + c, 0, 0))[n] = out[c];
        }
    }
}

/* Float weights: F32 in place, F16/BF16 converted row by row into the thread's scratch. */
static void lm__mm_float_task(void *ctx, int64_t b, int64_t e, int ith) {
    const lm__mm_job *j = ctx;
    const int64_t K = j->w->ne[0], M = j->x->ne[1];
    float *row = lm__cpu_scratch(j->c, ith);
    for (int64_t n = b; n < e; n++) {
        const void *wr = lm__cpu_row(j->w, n, 0, 0);
        const float *wf = wr;
        if (j->w->type != LM_TYPE_F32) {
            lm_dequantize_row(j->w->type, wr, row, K);
            wf = row;
        }
        for (int64_t m = 0; m < M; m++) {
            const float *xc = (const float *)lm__cpu_row(j->x, m, 0, 0);
            ((float *)lm__cpu_row(j->dst, m, 0, 0))[n] = lm__cpu_dot(wf, xc, K);
        }
    }
}

static lm_status lm__mm_reserve_act(lm__cpu *c, size_t bytes) {
    if (bytes <= c->act_size) return LM_OK;
    void *p = LM_MALLOC(bytes);
    if (!p) return lm__error(LM_ERR_NOMEM, "mul_mat: %zu bytes of quantized activations", bytes);
    LM_FREE(c->act);
    c->act = p;
    c->act_size = bytes;
    return LM_OK;
}

static lm_status lm__mm_check(const lm_tensor *w, const lm_tensor *x, const lm_tensor *dst) {
    const char *op = "mul_mat";
    LM_TRY(lm__cpu_check(op, "W", w, -1)); /* also: K a multiple of W's block size */
    if (!lm_type_computable(w->type))
        return lm__error(LM_ERR_INVALID_ARG, "mul_mat: W type %s is not supported",
                         lm_type_get((uint32_t)w->type).name);
    LM_TRY(lm__cpu_check(op, "x", x, (int)LM_TYPE_F32));
    LM_TRY(lm__cpu_check(op, "dst", dst, (int)LM_TYPE_F32));
    if (lm__cpu_nrows(w) != w->ne[1] || lm__cpu_nrows(x) != x->ne[1] ||
        lm__cpu_nrows(dst) != dst->ne[1])
        return lm__error(LM_ERR_INVALID_ARG,
                         "mul_mat: W, x and dst must be 2-D (ne[2] = ne[3] = 1)");
    if (x->ne[0] != w->ne[0])
        return lm__error(LM_ERR_INVALID_ARG, "mul_mat: x ne[0] = %lld != W ne[0] (K) = %lld",
                         (long long)x->ne[0], (long long)w->ne[0]);
    if (dst->ne[0] != w->ne[1] || dst->ne[1] != x->ne[1])
        return lm__error(
            LM_ERR_INVALID_ARG, "mul_mat: dst is [%lld, %lld], expected [N=%lld, M=%lld]",
            (long long)dst->ne[0], (long long)dst->ne[1], (long long)w->ne[1], (long long)x->ne[1]);
    return LM_OK;
}

lm_status lm__cpu_mul_mat(lm_backend *be, const lm_tensor *w, const lm_tensor *x, lm_tensor *dst) {
    LM_TRY(lm__mm_check(w, x, dst));
    lm__cpu *c = lm__cpu_ctx(be);
    lm__mm_job j = {c, w, x, dst, {0}, 0};
    if (!lm__cpu_vec_dot_get(w->type, &j.vd)) {
        LM_TRY(lm__cpu_reserve(c, (size_t)w->ne[0]));
        lm__pool_run(c->pool, lm__mm_float_task, &j, w->ne[1]);
        return LM_OK;
    }
    const int64_t K = w->ne[0], M = x->ne[1];
    if (K % j.vd.act_blck != 0) /* W's block is the activation block: checked, but be sure */
        return lm__error(LM_ERR_INVALID_ARG, "mul_mat: K = %lld is not a multiple of %d",
                         (long long)K, j.vd.act_blck);
    j.act_row = (size_t)(K / j.vd.act_blck) * j.vd.act_size;
    uint64_t bytes;
    if (!lm__mul_ok(j.act_row, (uint64_t)M, &bytes) || bytes > SIZE_MAX)
        return lm__error(LM_ERR_INVALID_ARG, "mul_mat: activations of %lld x %lld overflow",
                         (long long)K, (long long)M);
    LM_TRY(lm__mm_reserve_act(c, (size_t)bytes));
    lm__pool_run(c->pool, lm__mm_quantize_task, &j, M);
    lm__pool_run(c->pool, lm__mm_quant_task, &j, w->ne[1]);
    return LM_OK;
}
