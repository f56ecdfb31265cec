/* Reference ops of the CPU backend, plain C. Each op validates its arguments and returns
 * LM_ERR_INVALID_ARG with a message naming the op and the mismatch; none crashes on a
 * bad shape. All tensors must have contiguous rows (nb[0] = element/block size, checked
 * by lm__cpu_check); nb[1..3] may be any strides (views), unless an op says otherwise.
 * Work is split over rows by the thread pool, each row computed by one thread in a fixed
 * order, so results do not depend on the thread count. */
#include "cpu_internal.h"

#include "../../runtime/quant.h"

#include <math.h>
#include <string.h>

#define LM__F32 ((int)LM_TYPE_F32)
#define LM__I32 ((int)LM_TYPE_I32)

static lm_status lm__cpu_bad(const char *op, const char *what, long long got, long long want) {
    return lm__error(LM_ERR_INVALID_ARG, "%s: %s = %lld, expected %lld", op, what, got, want);
}

static lm_status lm__cpu_computable(const char *op, const char *arg, const lm_tensor *t) {
    if (!lm_type_computable(t->type))
        return lm__error(LM_ERR_INVALID_ARG, "%s: %s type %s is not supported", op, arg,
                         lm_type_get((uint32_t)t->type).name);
    return LM_OK;
}

/* ---- get_rows: src [ne0, rows] any computable type, ids I32 [n], dst F32 [ne0, n] ---- */

typedef struct {
    const lm_tensor *src, *dst;
    const int32_t *ids;
} lm__get_rows_job;

static void lm__get_rows_task(void *ctx, int64_t b, int64_t e, int ith) {
    const lm__get_rows_job *j = ctx;
    for (int64_t i = b; i < e; i++)
        lm__cpu_weight_row(j->src, j->ids[i], (float *)lm__cpu_row(j->dst, i, 0, 0));
}

lm_status lm__cpu_get_rows(lm_backend *be, const lm_tensor *src, const lm_tensor *ids,
                           lm_tensor *dst) {
    const char *op = "get_rows";
    LM_TRY(lm__cpu_check_w(op, "src", src, -1));
    LM_TRY(lm__cpu_computable(op, "src", src));
    LM_TRY(lm__cpu_check(op, "ids", ids, LM__I32));
    LM_TRY(lm__cpu_check(op, "dst", dst, LM__F32));
    LM_TRY(lm_op_check_get_rows(src, ids, dst));
    const int32_t *id = (const int32_t *)lm__cpu_data(ids);
    for (int64_t i = 0; i < ids->ne[0]; i++)
        if (id[i] < 0 || id[i] >= src->ne[1])
            return lm__error(LM_ERR_INVALID_ARG, "get_rows: ids[%lld] = %d is outside [0, %lld)",
                             (long long)i, id[i], (long long)src->ne[1]);
    lm__get_rows_job j = {src, dst, id};
    lm__pool_run(lm__cpu_ctx(be)->pool, lm__get_rows_task, &j, ids->ne[0]);
    return LM_OK;
}

/* ---- rms_norm: x F32 [ne0, ...], w F32 [ne0] or NULL, dst like x (may be x) ---- */

typedef struct {
    const lm_tensor *x, *dst;
    const float *w;
    float eps;
} lm__rms_job;

void lm__cpu_rms_row(const float *x, float *y, int64_t n, const float *w, float eps) {
    /* double, as ggml: the mean of squares of thousands of values; 8 partial sums in a
     * fixed order, so that the adds do not wait on each other */
    double acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += (double)x[i + k] * x[i + k];
    for (int k = 0; i < n; i++, k++) acc[k] += (double)x[i] * x[i];
    const double ss =
        ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
    const float s = (float)(1.0 / sqrt(ss / (double)n + eps));
    for (i = 0; i < n; i++) y[i] = x[i] * s * (w ? w[i] : 1.0f);
}

static void lm__rms_task(void *ctx, int64_t b, int64_t e, int ith) {
    const lm__rms_job *j = ctx;
    for (int64_t r = b; r < e; r++)
        lm__cpu_rms_row((const float *)lm__cpu_row_flat(j->x, r),
                        (float *)lm__cpu_row_flat(j->dst, r), j->x->ne[0], j->w, j->eps);
}

lm_status lm__cpu_rms_check(const char *op, const char *wname, const lm_tensor *x,
                            const lm_tensor *w, float eps) {
    LM_TRY(lm__cpu_check(op, "x", x, LM__F32));
    if (w) {
        LM_TRY(lm__cpu_check(op, wname, w, LM__F32));
        if (w->ne[0] != x->ne[0] || lm__cpu_nrows(w) != 1)
            return lm__error(LM_ERR_INVALID_ARG, "%s: %s has %lld x %lld elements, expected [%lld]",
                             op, wname, (long long)w->ne[0], (long long)lm__cpu_nrows(w),
                             (long long)x->ne[0]);
    }
    if (!(eps >= 0)) return lm__error(LM_ERR_INVALID_ARG, "%s: eps = %g (must be >= 0)", op, eps);
    return LM_OK;
}

lm_status lm__cpu_rms_norm(lm_backend *be, const lm_tensor *x, const lm_tensor *w, float eps,
                           lm_tensor *dst) {
    const char *op = "rms_norm";
    LM_TRY(lm__cpu_rms_check(op, "w", x, w, eps));
    LM_TRY(lm__cpu_check(op, "dst", dst, LM__F32));
    LM_TRY(lm__cpu_check_same_shape(op, "x", x, "dst", dst));
    lm__rms_job j = {x, dst, w ? (const float *)lm__cpu_data(w) : NULL, eps};
    lm__pool_run(lm__cpu_ctx(be)->pool, lm__rms_task, &j, lm__cpu_nrows(x));
    return LM_OK;
}

/* ---- rope: in place on x F32 [head_dim, n_head, n_tok], pos I32 [n_tok] ---- */

typedef struct {
    lm__cpu *c;
    const lm_tensor *x;
    const int32_t *pos;
    const lm_rope_params *p;
} lm__rope_job;

/* cos and sin of token t's angles into the table; angles in double: the oracle should not
 * carry powf's error at large positions */
static void lm__rope_table_task(void *ctx, int64_t b, int64_t e, int ith) {
    (void)ith;
    const lm__rope_job *j = ctx;
    const lm_rope_params *p = j->p;
    const int half = p->n_rot / 2;
    for (int64_t t = b; t < e; t++) {
        float *cs = j->c->rope_cs + (size_t)t * (size_t)half * 2;
        for (int i = 0; i < half; i++) {
            double th = (double)j->pos[t] * p->freq_scale * pow(p->freq_base, -2.0 * i / p->n_rot);
            if (p->freq_factors) th /= p->freq_factors[i];
            cs[2 * i] = (float)cos(th);
            cs[2 * i + 1] = (float)sin(th);
        }
    }
}

static void lm__rope_task(void *ctx, int64_t b, int64_t e, int ith) {
    (void)ith;
    const lm__rope_job *j = ctx;
    const int half = j->p->n_rot / 2;
    const int64_t rot_stride = j->p->mode == LM_ROPE_NEOX ? 1 : 2; /* between pairs */
    const int64_t mate = j->p->mode == LM_ROPE_NEOX ? half : 1;    /* pair partner */
    for (int64_t t = b; t < e; t++) {
        const float *cs = j->c->rope_cs + (size_t)t * (size_t)half * 2;
        for (int64_t h = 0; h < j->x->ne[1]; h++) {
            float *v = (float *)lm__cpu_row(j->x, h, t, 0);
            for (int i = 0; i < half; i++) {
                float *a = v + i * rot_stride, *bb = a + mate;
                const float x0 = *a, x1 = *bb;
                *a = x0 * cs[2 * i] - x1 * cs[2 * i + 1];
                *bb = x0 * cs[2 * i + 1] + x1 * cs[2 * i];
            }
        }
    }
}

static bool lm__rope_same(const lm__cpu *c, const lm_rope_params *p, const int32_t *pos,
                          int64_t n) {
    const lm_rope_params *k = &c->rope_key;
    return c->rope_valid && c->rope_ntok == n && k->n_rot == p->n_rot &&
           k->freq_base == p->freq_base && k->freq_scale == p->freq_scale &&
           !k->freq_factors == !p->freq_factors &&
           (!p->freq_factors ||
            !memcmp(c->rope_ff, p->freq_factors, (size_t)(p->n_rot / 2) * sizeof(float))) &&
           !memcmp(c->rope_pos, pos, (size_t)n * sizeof(int32_t));
}

/* The cos/sin table for these positions and parameters: reused from the last call when
 * they match (q and k of every layer), else computed; a failed allocation leaves it
 * invalid. */
static lm_status lm__rope_table(lm__rope_job *j, int64_t n) {
    lm__cpu *c = j->c;
    if (lm__rope_same(c, j->p, j->pos, n)) return LM_OK;
    c->rope_valid = false;
    const size_t need = (size_t)n * (size_t)(j->p->n_rot / 2);
    if (need > c->rope_cap) {
        float *cs = LM_MALLOC(need * 2 * sizeof(float));
        /* n <= need and n_rot / 2 <= need: half >= 1, n >= 1 */
        int32_t *ps = LM_MALLOC(need * sizeof(int32_t));
        float *ff = LM_MALLOC(need * sizeof(float));
        if (!cs || !ps || !ff) {
            LM_FREE(cs), LM_FREE(ps), LM_FREE(ff);
            return lm__error(LM_ERR_NOMEM, "rope: %zu bytes for the angle table", need * 8);
        }
        LM_FREE(c->rope_cs), LM_FREE(c->rope_pos), LM_FREE(c->rope_ff);
        c->rope_cs = cs, c->rope_pos = ps, c->rope_ff = ff, c->rope_cap = need;
    }
    lm__pool_run(c->pool, lm__rope_table_task, j, n);
    memcpy(c->rope_pos, j->pos, (size_t)n * sizeof(int32_t));
    if (j->p->freq_factors)
        memcpy(c->rope_ff, j->p->freq_factors, (size_t)(j->p->n_rot / 2) * sizeof(float));
    c->rope_key = *j->p;
    c->rope_ntok = n;
    c->rope_valid = true;
    return LM_OK;
}

lm_status lm__cpu_rope(lm_backend *be, lm_tensor *x, const lm_tensor *pos,
                       const lm_rope_params *p) {
    const char *op = "rope";
    LM_TRY(lm__cpu_check(op, "x", x, LM__F32));
    LM_TRY(lm__cpu_check(op, "pos", pos, LM__I32));
    LM_TRY(lm_op_check_rope(x, pos, p));
    lm__rope_job j = {lm__cpu_ctx(be), x, (const int32_t *)lm__cpu_data(pos), p};
    LM_TRY(lm__rope_table(&j, x->ne[2]));
    lm__pool_run(j.c->pool, lm__rope_task, &j, x->ne[2]);
    return LM_OK;
}

/* ---- kv_store: k, v F32 [head_dim, n_kv_head, n_tok] -> caches [head_dim, n_kv_head,
 * n_ctx, n_seq] (F16, F32 or Q8_0: ggml's reference quantizer, 32 values per block) at
 * (pos[i], seq[i]). Serial: it moves a few KB per token. */

static lm_status lm__kv_check_cache(const char *name, const lm_tensor *src,
                                    const lm_tensor *cache) {
    LM_TRY(lm__cpu_check("kv_store", name, cache, -1));
    if (cache->type != LM_TYPE_F16 && cache->type != LM_TYPE_F32 && cache->type != LM_TYPE_Q8_0)
        return lm__error(LM_ERR_INVALID_ARG, "kv_store: %s type %s, expected F16, F32 or Q8_0",
                         name, lm_type_get((uint32_t)cache->type).name);
    return lm_op_check_kv_cache(name, src, cache);
}

static void lm__kv_put(const lm__cpu_kernels *kern, const lm_tensor *src, const lm_tensor *cache,
                       int64_t t, int32_t pos, int32_t seq) {
    for (int64_t h = 0; h < src->ne[1]; h++) {
        const float *x = (const float *)lm__cpu_row(src, h, t, 0);
        void *y = lm__cpu_row(cache, h, pos, seq);
        if (cache->type == LM_TYPE_F16) /* the level's conversion: lm_quantize_row's bits */
            kern->f32_to_f16(x, y, src->ne[0]);
        else
            lm_quantize_row(cache->type, x, y, src->ne[0]);
    }
}

lm_status lm__cpu_kv_store(lm_backend *be, const lm_tensor *k, const lm_tensor *v,
                           lm_tensor *k_cache, lm_tensor *v_cache, const lm_tensor *pos,
                           const lm_tensor *seq) {
    const char *op = "kv_store";
    LM_TRY(lm__cpu_check(op, "k", k, LM__F32));
    LM_TRY(lm__cpu_check(op, "v", v, LM__F32));
    LM_TRY(lm__cpu_check_same_shape(op, "k", k, "v", v));
    LM_TRY(lm__kv_check_cache("k_cache", k, k_cache));
    LM_TRY(lm__kv_check_cache("v_cache", v, v_cache));
    LM_TRY(lm__cpu_check(op, "pos", pos, LM__I32));
    LM_TRY(lm__cpu_check(op, "seq", seq, LM__I32));
    LM_TRY(lm_op_check_kv_args(k, k_cache, v_cache, pos, seq));
    const int64_t T = k->ne[2], n_ctx = k_cache->ne[2], n_seq = k_cache->ne[3];
    const int32_t *ps = (const int32_t *)lm__cpu_data(pos),
                  *sq = (const int32_t *)lm__cpu_data(seq);
    for (int64_t t = 0; t < T; t++) { /* all checked before anything is written */
        if (ps[t] < 0 || ps[t] >= n_ctx)
            return lm__error(LM_ERR_INVALID_ARG,
                             "kv_store: pos[%lld] = %d is outside [0, n_ctx = %lld)", (long long)t,
                             ps[t], (long long)n_ctx);
        if (sq[t] < 0 || sq[t] >= n_seq)
            return lm__error(LM_ERR_INVALID_ARG,
                             "kv_store: seq[%lld] = %d is outside [0, n_seq = %lld)", (long long)t,
                             sq[t], (long long)n_seq);
    }
    const lm__cpu_kernels *kern = lm__cpu_ctx(be)->kern;
    for (int64_t t = 0; t < T; t++) {
        lm__kv_put(kern, k, k_cache, t, ps[t], sq[t]);
        lm__kv_put(kern, v, v_cache, t, ps[t], sq[t]);
    }
    return LM_OK;
}

/* ---- element-wise: swiglu, geglu, add, mul, scale (all F32; dst may alias an input) ---- */

typedef enum { LM__EW_SWIGLU, LM__EW_GEGLU, LM__EW_ADD, LM__EW_MUL, LM__EW_SCALE } lm__ew_kind;

typedef struct {
    lm__ew_kind kind;
    const lm__cpu_kernels *kern;
    const lm_tensor *a, *b, *dst; /* b: up for the GLUs, the broadcast operand for add/mul */
    float s;
} lm__ew_job;

static void lm__ew_task(void *ctx, int64_t b, int64_t e, int ith) {
    const lm__ew_job *j = ctx;
    const lm_tensor *A = j->a, *B = j->b;
    const int64_t n = A->ne[0];
    for (int64_t r = b; r < e; r++) {
        const int64_t i1 = r % A->ne[1], i2 = (r / A->ne[1]) % A->ne[2],
                      i3 = r / (A->ne[1] * A->ne[2]);
        const float *x = (const float *)lm__cpu_row(A, i1, i2, i3);
        float *y = (float *)lm__cpu_row(j->dst, i1, i2, i3);
        const float *u = NULL;
        int64_t ustep = 1; /* 0: b broadcasts along ne[0] */
        if (B) {
            u = (const float *)lm__cpu_row(B, B->ne[1] == 1 ? 0 : i1, B->ne[2] == 1 ? 0 : i2,
                                           B->ne[3] == 1 ? 0 : i3);
            ustep = B->ne[0] == 1 && n != 1 ? 0 : 1;
        }
        switch (j->kind) {
        case LM__EW_SWIGLU:
        case LM__EW_GEGLU:
            j->kern->glu(j->kind == LM__EW_GEGLU, x, u, y, n);
            break;
        case LM__EW_ADD:
            for (int64_t i = 0; i < n; i++) y[i] = x[i] + u[i * ustep];
            break;
        case LM__EW_MUL:
            for (int64_t i = 0; i < n; i++) y[i] = x[i] * u[i * ustep];
            break;
        case LM__EW_SCALE:
            for (int64_t i = 0; i < n; i++) y[i] = x[i] * j->s;
            break;
        }
    }
}

static lm_status lm__ew_run(lm_backend *be, lm__ew_job *j) {
    lm__pool_run(lm__cpu_ctx(be)->pool, lm__ew_task, j, lm__cpu_nrows(j->a));
    return LM_OK;
}

static lm_status lm__glu(lm_backend *be, const char *op, lm__ew_kind kind, const lm_tensor *gate,
                         const lm_tensor *up, lm_tensor *dst) {
    LM_TRY(lm__cpu_check(op, "gate", gate, LM__F32));
    LM_TRY(lm__cpu_check(op, "up", up, LM__F32));
    LM_TRY(lm__cpu_check(op, "dst", dst, LM__F32));
    LM_TRY(lm__cpu_check_same_shape(op, "gate", gate, "up", up));
    LM_TRY(lm__cpu_check_same_shape(op, "gate", gate, "dst", dst));
    lm__ew_job j = {kind, lm__cpu_ctx(be)->kern, gate, up, dst, 0};
    return lm__ew_run(be, &j);
}

lm_status lm__cpu_swiglu(lm_backend *be, const lm_tensor *gate, const lm_tensor *up,
                         lm_tensor *dst) {
    return lm__glu(be, "swiglu", LM__EW_SWIGLU, gate, up, dst);
}

lm_status lm__cpu_geglu(lm_backend *be, const lm_tensor *gate, const lm_tensor *up,
                        lm_tensor *dst) {
    return lm__glu(be, "geglu", LM__EW_GEGLU, gate, up, dst);
}

/* b broadcasts along each dim where b->ne[i] == 1; otherwise it must equal a->ne[i]. */
static lm_status lm__binary(lm_backend *be, const char *op, lm__ew_kind kind, const lm_tensor *a,
                            const lm_tensor *b, lm_tensor *dst) {
    LM_TRY(lm__cpu_check(op, "a", a, LM__F32));
    LM_TRY(lm__cpu_check(op, "b", b, LM__F32));
    LM_TRY(lm__cpu_check(op, "dst", dst, LM__F32));
    LM_TRY(lm__cpu_check_same_shape(op, "a", a, "dst", dst));
    for (int i = 0; i < 4; i++)
        if (b->ne[i] != 1 && b->ne[i] != a->ne[i])
            return lm__error(LM_ERR_INVALID_ARG,
                             "%s: b ne[%d] = %lld cannot broadcast to a ne[%d] = %lld", op, i,
                             (long long)b->ne[i], i, (long long)a->ne[i]);
    lm__ew_job j = {kind, NULL, a, b, dst, 0};
    return lm__ew_run(be, &j);
}

lm_status lm__cpu_add(lm_backend *be, const lm_tensor *a, const lm_tensor *b, lm_tensor *dst) {
    return lm__binary(be, "add", LM__EW_ADD, a, b, dst);
}

lm_status lm__cpu_mul(lm_backend *be, const lm_tensor *a, const lm_tensor *b, lm_tensor *dst) {
    return lm__binary(be, "mul", LM__EW_MUL, a, b, dst);
}

lm_status lm__cpu_scale(lm_backend *be, const lm_tensor *x, float s, lm_tensor *dst) {
    LM_TRY(lm__cpu_check("scale", "x", x, LM__F32));
    LM_TRY(lm__cpu_check("scale", "dst", dst, LM__F32));
    LM_TRY(lm__cpu_check_same_shape("scale", "x", x, "dst", dst));
    lm__ew_job j = {LM__EW_SCALE, NULL, x, NULL, dst, s};
    return lm__ew_run(be, &j);
}

/* ---- argmax: x F32 [ne0, cols...] -> dst I32 [cols]; first max on ties, NaN skipped
 * (an all-NaN column gives 0). ---- */

lm_status lm__cpu_argmax(lm_backend *be, const lm_tensor *x, lm_tensor *dst) {
    LM_TRY(lm__cpu_check("argmax", "x", x, LM__F32));
    LM_TRY(lm__cpu_check("argmax", "dst", dst, LM__I32));
    const int64_t cols = lm__cpu_nrows(x);
    if (dst->ne[0] != cols || lm__cpu_nrows(dst) != 1)
        return lm__cpu_bad("argmax", "dst elements", dst->ne[0] * lm__cpu_nrows(dst), cols);
    int32_t *out = (int32_t *)lm__cpu_data(dst);
    for (int64_t r = 0; r < cols; r++) {
        const float *v = (const float *)lm__cpu_row_flat(x, r);
        int64_t best = 0;
        float bv = -INFINITY;
        for (int64_t i = 0; i < x->ne[0]; i++)
            if (v[i] > bv) bv = v[i], best = i;
        out[r] = (int32_t)best;
    }
    return LM_OK;
}

/* ---- copy: same shape, any computable src -> any computable dst (F32 <-> F16 is the
 * use; through float, so a quantized dst is quantized with the reference quantizer) ---- */

typedef struct {
    lm__cpu *c;
    const lm_tensor *src, *dst;
} lm__copy_job;

static void lm__copy_task(void *ctx, int64_t b, int64_t e, int ith) {
    const lm__copy_job *j = ctx;
    const int64_t n = j->src->ne[0];
    float *tmp = lm__cpu_scratch(j->c, ith);
    for (int64_t r = b; r < e; r++) {
        const void *s = lm__cpu_row_flat(j->src, r);
        void *d = lm__cpu_row_flat(j->dst, r);
        if (j->src->type == j->dst->type) {
            memmove(d, s, lm_row_size(j->src->type, n));
        } else if (j->dst->type == LM_TYPE_F32) {
            lm_dequantize_row(j->src->type, s, d, n);
        } else {
            lm_dequantize_row(j->src->type, s, tmp, n);
            lm_quantize_row(j->dst->type, tmp, d, n);
        }
    }
}

lm_status lm__cpu_copy(lm_backend *be, const lm_tensor *src, lm_tensor *dst) {
    LM_TRY(lm__cpu_check("copy", "src", src, -1));
    LM_TRY(lm__cpu_check("copy", "dst", dst, -1));
    LM_TRY(lm__cpu_computable("copy", "src", src));
    LM_TRY(lm__cpu_computable("copy", "dst", dst));
    LM_TRY(lm__cpu_check_same_shape("copy", "src", src, "dst", dst));
    lm__cpu *c = lm__cpu_ctx(be);
    LM_TRY(lm__cpu_reserve(c, (size_t)src->ne[0]));
    lm__copy_job j = {c, src, dst};
    lm__pool_run(c->pool, lm__copy_task, &j, lm__cpu_nrows(src));
    return LM_OK;
}
