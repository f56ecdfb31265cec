/* mul_mat on the CPU: dst[n, m] = sum_k W[k, n] x[k, m], W [K, N] of any computable type,
 * x F32 [K, M], dst F32 [N, M], all 2-D.
 *
 * Quantized W: x is quantized once per call to 16-bit integers per block (lm__q16a blocks
 * of 32 for the 32-element types, lm__q16k blocks of 256 for the k-quants) and each output
 * is a float sum of per-block terms from exact integer block dot products (cpu_dot_*.c).
 * This is ggml's scheme with 16-bit instead of 8-bit activations: no per-row
 * dequantization, integer arithmetic, and an x quantization error (amax / 65534 per
 * element) far below the weights' own, so the results stay those of a float matmul within
 * rounding. F32/F16/BF16 W keep a float dot.
 *
 * Tiling: threads take groups of LM__MR (8) weight rows; a kernel call multiplies a group
 * with a tile of up to LM__NC (128) activation columns, unpacking each weight block once for
 * the whole tile. A tile's quantized activations fit in L2 and stay there across the row
 * groups; a row group's weights (a few KB) are read once per tile. Each output is computed by one
 * kernel call with a fixed order, so results depend neither on the thread count nor on the batch.
 */
#include "cpu_internal.h"

#include "../../runtime/quant.h"

#include <string.h>

#define LM__MM_TILE_BYTES   (384 * 1024) /* quantized activations per column tile (L2) */
#define LM__MM_QUANT_INLINE 16384        /* x elements quantized on the calling thread */

#define LM__MM_PARTS 3 /* weights sharing x in one op: q, k, v */

/* One weight of a job: its row groups are the job's groups [g0, next part's g0) */
typedef struct {
    const lm_tensor *w, *dst;
    lm__qdot_fn qdot, qdot_p8; /* rows and interleaved; packed */
    int64_t g0;
} lm__mm_part;

typedef struct {
    lm__cpu *c;
    const lm_tensor *w, *x, *dst; /* the first part's W and dst */
    lm__fdot_fn fdot;
    int act_blck;
    size_t act_row; /* bytes of one quantized x column */
    int64_t nb;     /* blocks per weight row */
    int64_t tile;   /* columns per tile, <= LM__NC */
    int n_parts;
    lm__mm_part part[LM__MM_PARTS];
    const float *norm; /* norm_mul_mat_n: x's columns are RMS-normed (times norm: NULL = 1) */
    float eps;
    bool normed;
} lm__mm_job;

static lm__mm_part lm__mm_part_of(const lm__cpu *c, const lm_tensor *w, const lm_tensor *dst) {
    return (lm__mm_part){w, dst, c->kern->qdot[w->type], c->kern->qdot_p8[w->type], 0};
}

/* Quantize x columns [b, e) into c->act. */
static void lm__mm_quantize_task(void *ctx, int64_t b, int64_t e, int ith) {
    const lm__mm_job *j = ctx;
    const int64_t K = j->x->ne[0];
    for (int64_t m = b; m < e; m++) {
        const float *xc = (const float *)lm__cpu_row(j->x, m, 0, 0);
        if (j->normed) { /* the normed column in this thread's scratch (K floats, reserved) */
            float *t = lm__cpu_scratch(j->c, ith);
            lm__cpu_rms_row(xc, t, K, j->norm, j->eps);
            xc = t;
        }
        void *out = (char *)j->c->act + (size_t)m * j->act_row;
        if (j->act_blck == LM_QK_K)
            j->c->kern->quantize_q16k(xc, out, K);
        else
            j->c->kern->quantize_q16a(xc, out, K);
    }
}

/* Row groups [g0, g1) of the job's parts against every column, tile by tile. */
static void lm__mm_quant_task(void *ctx, int64_t g0, int64_t g1, int ith) {
    const lm__mm_job *j = ctx;
    const int64_t M = j->x->ne[1];
    const char *act = j->c->act;
    for (int64_t t0 = 0; t0 < M; t0 += j->tile) {
        const int64_t t1 = M - t0 < j->tile ? M : t0 + j->tile;
        int p = 0;
        for (int64_t g = g0; g < g1; g++) {
            while (p + 1 < j->n_parts && g >= j->part[p + 1].g0) p++;
            const lm__mm_part *pt = &j->part[p];
            const int64_t N = pt->w->ne[1], n0 = (g - pt->g0) * LM__MR;
            const int nr = (int)(N - n0 < LM__MR ? N - n0 : LM__MR);
            /* an interleaved or packed group: rows a block apart, a row's blocks a group's
             * block apart; a last group of fewer rows stays in rows */
            const int lay = nr == LM__MR ? pt->w->layout : LM_LAYOUT_ROWS;
            const size_t bs = pt->w->nb[0], ws = lay != LM_LAYOUT_ROWS ? bs : pt->w->nb[1];
            const lm__qdot_fn qdot = lay == LM_LAYOUT_CPU_P8 ? pt->qdot_p8 : pt->qdot;
            qdot(lm__cpu_row(pt->w, n0, 0, 0), ws, lay != LM_LAYOUT_ROWS ? LM__MR * bs : bs, nr,
                 act + (size_t)t0 * j->act_row, j->act_row, (int)(t1 - t0), j->nb,
                 (float *)lm__cpu_row(pt->dst, t0, 0, 0) + n0, pt->dst->nb[1] / sizeof(float));
        }
    }
}

/* Float weights: one dot per output, rows [b, e). */
static void lm__mm_float_task(void *ctx, int64_t b, int64_t e, int ith) {
    const lm__mm_job *j = ctx;
    const int64_t K = j->w->ne[0], M = j->x->ne[1];
    for (int64_t n = b; n < e; n++) {
        const void *wr = lm__cpu_row(j->w, n, 0, 0);
        for (int64_t m = 0; m < M; m++) {
            const float *xc = (const float *)lm__cpu_row(j->x, m, 0, 0);
            ((float *)lm__cpu_row(j->dst, m, 0, 0))[n] = j->fdot(wr, xc, K);
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

static lm_status lm__mm_check(const lm__cpu *c, const lm_tensor *w, const lm_tensor *x,
                              const lm_tensor *dst) {
    const char *op = "mul_mat";
    LM_TRY(lm__cpu_check_w(op, "W", w, -1)); /* also: K a multiple of W's block size */
    if (w->layout == LM_LAYOUT_CPU_P8 && !c->kern->qdot_p8[w->type])
        return lm__error(LM_ERR_INVALID_ARG,
                         "mul_mat: W (%s) is packed for kernels the %s level does not have",
                         lm_type_get((uint32_t)w->type).name, lm__cpu_level_name(c->kern->level));
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
    if (dst->nb[1] % sizeof(float) != 0)
        return lm__error(LM_ERR_INVALID_ARG, "mul_mat: dst nb[1] = %zu is not a multiple of 4",
                         dst->nb[1]);
    if (dst->ne[0] != w->ne[1] || dst->ne[1] != x->ne[1])
        return lm__error(
            LM_ERR_INVALID_ARG, "mul_mat: dst is [%lld, %lld], expected [N=%lld, M=%lld]",
            (long long)dst->ne[0], (long long)dst->ne[1], (long long)w->ne[1], (long long)x->ne[1]);
    return LM_OK;
}

/* Quantize x once into c->act, then run the parts' row groups in one parallel region. */
static lm_status lm__mm_quantized(lm__cpu *c, lm__mm_job *j) {
    const int64_t K = j->w->ne[0], M = j->x->ne[1];
    j->act_blck = lm__act_blck(j->w->type);
    if (K % j->act_blck != 0) /* W's block is the activation block: checked, but be sure */
        return lm__error(LM_ERR_INVALID_ARG, "mul_mat: K = %lld is not a multiple of %d",
                         (long long)K, j->act_blck);
    j->nb = K / j->act_blck;
    j->act_row = (size_t)j->nb * lm__act_size(j->w->type);
    uint64_t bytes;
    if (!lm__mul_ok(j->act_row, (uint64_t)M, &bytes) || bytes > SIZE_MAX)
        return lm__error(LM_ERR_INVALID_ARG, "mul_mat: activations of %lld x %lld overflow",
                         (long long)K, (long long)M);
    LM_TRY(lm__mm_reserve_act(c, (size_t)bytes));
    if (K * M <= LM__MM_QUANT_INLINE)
        lm__mm_quantize_task(j, 0, M, 0);
    else
        lm__pool_run(c->pool, lm__mm_quantize_task, j, M);
    j->tile = (int64_t)(LM__MM_TILE_BYTES / j->act_row);
    j->tile = j->tile < 4 ? 4 : j->tile > LM__NC ? LM__NC : j->tile;
    int64_t groups = 0;
    for (int p = 0; p < j->n_parts; p++) {
        j->part[p].g0 = groups;
        groups += (j->part[p].w->ne[1] + LM__MR - 1) / LM__MR;
    }
    /* prefill: fine chunks balance the threads (16 per thread against 4: Gemma 3 pp512 +6 %);
     * decode: one contiguous run per thread, which its prefetches run ahead in (4 per thread:
     * -7 % Gemma 3 decode, 16: -20 % SmolLM2) */
    const int per = j->x->ne[1] > 4 ? 16 : 1;
    lm__pool_run_chunks(c->pool, lm__mm_quant_task, j, groups, per);
    return LM_OK;
}

lm_status lm__cpu_mul_mat(lm_backend *be, const lm_tensor *w, const lm_tensor *x, lm_tensor *dst) {
    lm__cpu *c = lm__cpu_ctx(be);
    LM_TRY(lm__mm_check(c, w, x, dst));
    const lm__qdot_fn qdot = c->kern->qdot[w->type];
    lm__mm_job j = {
        .c = c, .w = w, .x = x, .dst = dst, .fdot = c->kern->fdot[w->type], .n_parts = 1};
    j.part[0] = lm__mm_part_of(c, w, dst);
    if (!qdot) {
        if (!j.fdot || w->layout != LM_LAYOUT_ROWS) /* the tables disagree: a bug, not input */
            return lm__error(LM_ERR_INVALID_ARG, "mul_mat: no kernel for W type %s",
                             lm_type_get((uint32_t)w->type).name);
        lm__pool_run(c->pool, lm__mm_float_task, &j, w->ne[1]);
        return LM_OK;
    }
    return lm__mm_quantized(c, &j);
}

/* Check mul_mat_n's (or norm_mul_mat_n's) weights; *shared: one quantized x serves all
 * (integer kernels, one activation format) */
static lm_status lm__mm_check_n(const lm__cpu *c, const char *op, int n, const lm_tensor *const *w,
                                const lm_tensor *x, lm_tensor *const *dst, bool *shared) {
    if (n < 1 || n > LM__MM_PARTS || !w || !dst)
        return lm__error(LM_ERR_INVALID_ARG, "%s: %d weights (1 to %d)", op, n, LM__MM_PARTS);
    *shared = true;
    for (int i = 0; i < n; i++) {
        LM_TRY(lm__mm_check(c, w[i], x, dst[i]));
        *shared &= c->kern->qdot[w[i]->type] != NULL &&
                   lm__act_blck(w[i]->type) == lm__act_blck(w[0]->type);
    }
    return LM_OK;
}

lm_status lm__cpu_mul_mat_n(lm_backend *be, int n, const lm_tensor *const *w, const lm_tensor *x,
                            lm_tensor *const *dst) {
    lm__cpu *c = lm__cpu_ctx(be);
    bool shared;
    LM_TRY(lm__mm_check_n(c, "mul_mat_n", n, w, x, dst, &shared));
    if (!shared || n == 1) {
        for (int i = 0; i < n; i++) LM_TRY(lm__cpu_mul_mat(be, w[i], x, dst[i]));
        return LM_OK;
    }
    lm__mm_job j = {.c = c, .w = w[0], .x = x, .dst = dst[0], .n_parts = n};
    for (int i = 0; i < n; i++) j.part[i] = lm__mm_part_of(c, w[i], dst[i]);
    return lm__mm_quantized(c, &j);
}

/* RMS norm and mul_mat_n in one: each column normed into the thread's scratch as rms_norm
 * does it, then quantized, so the results are those of the two ops and the normed x is never
 * written (decode: one op a norm less; prefill: no pass over xn). Float or mixed weights take
 * the two ops, through xn. */
lm_status lm__cpu_norm_mul_mat_n(lm_backend *be, const lm_tensor *x, const lm_tensor *norm,
                                 float eps, lm_tensor *xn, int n, const lm_tensor *const *w,
                                 lm_tensor *const *dst) {
    const char *op = "norm_mul_mat_n";
    lm__cpu *c = lm__cpu_ctx(be);
    bool shared;
    LM_TRY(lm__cpu_rms_check(op, "norm", x, norm, eps));
    LM_TRY(lm__cpu_check(op, "xn", xn, (int)LM_TYPE_F32)); /* the fallback's: checked always */
    LM_TRY(lm__cpu_check_same_shape(op, "x", x, "xn", xn));
    LM_TRY(lm__mm_check_n(c, op, n, w, x, dst, &shared));
    if (!shared) {
        LM_TRY(lm__cpu_rms_norm(be, x, norm, eps, xn));
        return lm__cpu_mul_mat_n(be, n, w, xn, dst);
    }
    LM_TRY(lm__cpu_reserve(c, (size_t)x->ne[0]));
    lm__mm_job j = {.c = c,
                    .w = w[0],
                    .x = x,
                    .dst = dst[0],
                    .n_parts = n,
                    .norm = norm ? (const float *)lm__cpu_data(norm) : NULL,
                    .eps = eps,
                    .normed = true};
    for (int i = 0; i < n; i++) j.part[i] = lm__mm_part_of(c, w[i], dst[i]);
    return lm__mm_quantized(c, &j);
}
