/* The Vulkan backend's simple ops: argument checks as the CPU oracle's (same messages),
 * then one dispatch each. Index values held by the device (ids, positions, sequences)
 * are checked on the host when an op runs outside begin..end, as the CPU does; inside a
 * recording the shaders skip out-of-range entries instead (the runtime checked them). */
#include "vk_internal.h"

#include "../../runtime/quant.h"

#include <math.h>
#include <string.h>

#define LM__F32 ((int)LM_TYPE_F32)
#define LM__I32 ((int)LM_TYPE_I32)

static lm_status lm__vk_bad(const char *op, const char *what, long long got, long long want) {
    return lm__error(LM_ERR_INVALID_ARG, "%s: %s = %lld, expected %lld", op, what, got, want);
}

static uint32_t lm__u32(int64_t x) {
    return (uint32_t)x;
}

/* byte stride / offset -> elements of `size` bytes */
static uint32_t lm__el(size_t bytes, size_t size) {
    return (uint32_t)(bytes / size);
}

static uint64_t lm__groups(int64_t items, int64_t per) {
    return (uint64_t)((items + per - 1) / per);
}

/* Host check of n int32 device values in [0, limit), outside a recording only. */
static lm_status lm__vk_check_index(lm__vk *v, const char *op, const char *name, const lm_tensor *t,
                                    int64_t n, int64_t limit, const char *what) {
    if (v->recording || n == 0) return LM_OK;
    int32_t stack[256], *vals = n <= 256 ? stack : LM_MALLOC((size_t)n * sizeof *vals);
    if (!vals) return lm__error(LM_ERR_NOMEM, "%s: cannot check %lld %s", op, (long long)n, name);
    lm_status s = lm__vk_read_i32(v, t, vals, n);
    for (int64_t i = 0; s == LM_OK && i < n; i++)
        if (vals[i] < 0 || vals[i] >= limit)
            s = lm__error(LM_ERR_INVALID_ARG, "%s: %s[%lld] = %d is outside [0, %s%lld)", op, name,
                          (long long)i, vals[i], what, (long long)limit);
    if (vals != stack) LM_FREE(vals);
    return s;
}

/* ---- get_rows ---- */

static const lm_vk_shader_id lm__vk_get_rows_shader[LM_TYPE_COUNT] = {
    [LM_TYPE_F32] = LM_VK_SHADER_get_rows_F32,   [LM_TYPE_F16] = LM_VK_SHADER_get_rows_F16,
    [LM_TYPE_BF16] = LM_VK_SHADER_get_rows_BF16, [LM_TYPE_Q4_0] = LM_VK_SHADER_get_rows_Q4_0,
    [LM_TYPE_Q4_1] = LM_VK_SHADER_get_rows_Q4_1, [LM_TYPE_Q5_0] = LM_VK_SHADER_get_rows_Q5_0,
    [LM_TYPE_Q5_1] = LM_VK_SHADER_get_rows_Q5_1, [LM_TYPE_Q8_0] = LM_VK_SHADER_get_rows_Q8_0,
    [LM_TYPE_Q2_K] = LM_VK_SHADER_get_rows_Q2_K, [LM_TYPE_Q3_K] = LM_VK_SHADER_get_rows_Q3_K,
    [LM_TYPE_Q4_K] = LM_VK_SHADER_get_rows_Q4_K, [LM_TYPE_Q5_K] = LM_VK_SHADER_get_rows_Q5_K,
    [LM_TYPE_Q6_K] = LM_VK_SHADER_get_rows_Q6_K,
};

/* The weight shaders of a type, or an error naming it (F32's shader id is 0, so the F32
 * row is told apart by the type itself). */
lm_status lm__vk_weight_shader(const lm_vk_shader_id *table, const char *op, const char *arg,
                               lm_type type, lm_vk_shader_id *out) {
    if ((unsigned)type < LM_TYPE_COUNT && (type == LM_TYPE_F32 || table[type] != 0)) {
        *out = table[type];
        return LM_OK;
    }
    const char *n = lm_type_get((uint32_t)type).name;
    return lm__error(LM_ERR_INVALID_ARG, "%s: %s type %s is not supported", op, arg, n ? n : "?");
}

typedef struct {
    uint32_t src_off, src_nb1, K, M, ids_off, dst_off, dst_nb1;
    int32_t r0, r1, n_rows;
} lm__vk_get_rows_pc;

lm_status lm__vk_get_rows(lm_backend *be, const lm_tensor *src, const lm_tensor *ids,
                          lm_tensor *dst) {
    const char *op = "get_rows";
    lm__vk *v = lm__vk_ctx(be);
    LM_TRY(lm__vk_check(op, "src", src, -1));
    lm_vk_shader_id sh;
    LM_TRY(lm__vk_weight_shader(lm__vk_get_rows_shader, op, "src", src->type, &sh));
    LM_TRY(lm__vk_check(op, "ids", ids, LM__I32));
    LM_TRY(lm__vk_check(op, "dst", dst, LM__F32));
    LM_TRY(lm_op_check_get_rows(src, ids, dst));
    LM_TRY(lm__vk_check_index(v, op, "ids", ids, ids->ne[0], src->ne[1], ""));

    const int64_t N = src->ne[1];
    const size_t rs = lm_row_size(src->type, src->ne[0]), nb1 = src->nb[1];
    /* rows per window: the whole table when it fits, else as many as one binding holds */
    int64_t per = N;
    if ((N - 1) * nb1 + rs + v->bind_align > v->max_range)
        per = nb1 ? (int64_t)((v->max_range - v->bind_align - rs) / nb1) + 1 : N;
    lm__vk_view vi, vd;
    LM_TRY(lm__vk_view_of(v, ids, op, "ids", &vi));
    LM_TRY(lm__vk_view_of(v, dst, op, "dst", &vd));
    for (int64_t r0 = 0; r0 < N; r0 += per) {
        const int64_t r1 = r0 + per < N ? r0 + per : N;
        lm__vk_cmd c = {.shader = sh};
        lm__vk_view vs;
        LM_TRY(lm__vk_view_range(v, src, (size_t)r0 * nb1, (size_t)(r1 - 1) * nb1 + rs, op, "src",
                                 &vs));
        lm__vk_bind(&c, &vs, 0);
        lm__vk_bind(&c, &vi, 0);
        lm__vk_bind(&c, &vd, 1);
        lm__vk_get_rows_pc pc = {
            vs.base,     (uint32_t)nb1, lm__u32(src->ne[0]),   lm__u32(ids->ne[0]),
            vi.base / 4, vd.base / 4,   lm__el(dst->nb[1], 4), (int32_t)r0,
            (int32_t)r1, (int32_t)N};
        LM_VK_PC(&c, pc);
        c.n_groups = lm__groups(src->ne[0] * ids->ne[0], 256);
        LM_TRY(lm__vk_run(v, &c));
    }
    return LM_OK;
}

/* ---- rms_norm ---- */

typedef struct {
    uint32_t K, ne1, ne2, n_rows;
    uint32_t x_off, x_nb1, x_nb2, x_nb3, d_off, d_nb1, d_nb2, d_nb3, w_off, has_w;
    float eps;
} lm__vk_rms_pc;

lm_status lm__vk_rms_norm(lm_backend *be, const lm_tensor *x, const lm_tensor *w, float eps,
                          lm_tensor *dst) {
    const char *op = "rms_norm";
    lm__vk *v = lm__vk_ctx(be);
    LM_TRY(lm__vk_check(op, "x", x, LM__F32));
    LM_TRY(lm__vk_check(op, "dst", dst, LM__F32));
    LM_TRY(lm__vk_check_same_shape(op, "x", x, "dst", dst));
    if (w) {
        LM_TRY(lm__vk_check(op, "w", w, LM__F32));
        if (w->ne[0] != x->ne[0] || lm__vk_nrows(w) != 1)
            return lm__error(LM_ERR_INVALID_ARG,
                             "rms_norm: w has %lld x %lld elements, expected [%lld]",
                             (long long)w->ne[0], (long long)lm__vk_nrows(w), (long long)x->ne[0]);
    }
    if (!(eps >= 0)) return lm__error(LM_ERR_INVALID_ARG, "rms_norm: eps = %g (must be >= 0)", eps);
    lm__vk_view vx, vw, vd;
    LM_TRY(lm__vk_view_of(v, x, op, "x", &vx));
    LM_TRY(lm__vk_view_of(v, w ? w : x, op, "w", &vw));
    LM_TRY(lm__vk_view_of(v, dst, op, "dst", &vd));
    lm__vk_cmd c = {.shader = v->has_f64 && !v->force_f32 ? LM_VK_SHADER_rms_norm_f64
                                                          : LM_VK_SHADER_rms_norm};
    lm__vk_bind(&c, &vx, 0);
    lm__vk_bind(&c, &vw, 0);
    lm__vk_bind(&c, &vd, 1);
    lm__vk_rms_pc pc = {lm__u32(x->ne[0]),
                        lm__u32(x->ne[1]),
                        lm__u32(x->ne[2]),
                        lm__u32(lm__vk_nrows(x)),
                        vx.base / 4,
                        lm__el(x->nb[1], 4),
                        lm__el(x->nb[2], 4),
                        lm__el(x->nb[3], 4),
                        vd.base / 4,
                        lm__el(dst->nb[1], 4),
                        lm__el(dst->nb[2], 4),
                        lm__el(dst->nb[3], 4),
                        vw.base / 4,
                        w != NULL,
                        eps};
    LM_VK_PC(&c, pc);
    c.n_groups = (uint64_t)lm__vk_nrows(x);
    return lm__vk_run(v, &c);
}

/* ---- rope ---- */

typedef struct {
    uint32_t D, H, T, half, neox, x_off, x_nb1, x_nb2, pos_off;
    float freq_scale;
} lm__vk_rope_pc;

lm_status lm__vk_rope(lm_backend *be, lm_tensor *x, const lm_tensor *pos, const lm_rope_params *p) {
    const char *op = "rope";
    lm__vk *v = lm__vk_ctx(be);
    LM_TRY(lm__vk_check(op, "x", x, LM__F32));
    LM_TRY(lm__vk_check(op, "pos", pos, LM__I32));
    LM_TRY(lm_op_check_rope(x, pos, p));
    const int half = p->n_rot / 2, f64 = v->has_f64 && !v->force_f32;
    /* per-pair factors, computed as the CPU oracle computes them (double pow) */
    void *host;
    lm__vk_view vt;
    LM_TRY(lm__vk_arena(v, (size_t)half * 2 * (f64 ? sizeof(double) : sizeof(float)), &host, &vt));
    for (int i = 0; i < half; i++) {
        const double inv = pow(p->freq_base, -2.0 * i / p->n_rot);
        const double ff = p->freq_factors ? (double)p->freq_factors[i] : 1.0;
        if (f64) {
            ((double *)host)[2 * i] = inv;
            ((double *)host)[2 * i + 1] = ff;
        } else {
            const double c = (double)p->freq_scale * inv / ff;
            const float hi = (float)c;
            ((float *)host)[2 * i] = hi;
            ((float *)host)[2 * i + 1] = (float)(c - hi);
        }
    }
    lm__vk_view vx, vp;
    LM_TRY(lm__vk_view_of(v, x, op, "x", &vx));
    LM_TRY(lm__vk_view_of(v, pos, op, "pos", &vp));
    lm__vk_cmd c = {.shader = f64 ? LM_VK_SHADER_rope_f64 : LM_VK_SHADER_rope};
    lm__vk_bind(&c, &vx, 1);
    lm__vk_bind(&c, &vp, 0);
    lm__vk_bind(&c, &vt, 0);
    lm__vk_rope_pc pc = {lm__u32(x->ne[0]),   lm__u32(x->ne[1]),       lm__u32(x->ne[2]),
                         (uint32_t)half,      p->mode == LM_ROPE_NEOX, vx.base / 4,
                         lm__el(x->nb[1], 4), lm__el(x->nb[2], 4),     vp.base / 4,
                         p->freq_scale};
    LM_VK_PC(&c, pc);
    c.n_groups = lm__groups(x->ne[1] * x->ne[2] * half, 256);
    return lm__vk_run(v, &c);
}

/* ---- kv_store ---- */

/* Bytes per unit of a cache binding's offsets and strides (Q8_0: bytes). */
size_t lm__vk_kv_unit(lm_type t) {
    return t == LM_TYPE_F16 ? 2 : t == LM_TYPE_Q8_0 ? 1 : 4;
}

typedef struct {
    uint32_t D, Hk, T;
    uint32_t k_off, k_nb1, k_nb2, v_off, v_nb1, v_nb2;
    uint32_t kc_off, kc_nb1, kc_nb2, kc_nb3, vc_off, vc_nb1, vc_nb2, vc_nb3;
    uint32_t pos_off, seq_off;
    int32_t n_ctx, n_seq;
    int32_t only_seq; /* >= 0: one sequence's slice of caches larger than a binding */
} lm__vk_kv_pc;

static lm_status lm__vk_kv_check_cache(const char *name, const lm_tensor *src,
                                       const lm_tensor *cache) {
    LM_TRY(lm__vk_check("kv_store", name, cache, -1));
    if (cache->type != LM_TYPE_F16 && cache->type != LM_TYPE_F32 && cache->type != LM_TYPE_Q8_0)
        return lm__error(LM_ERR_INVALID_ARG, "kv_store: %s type %s, expected F16, F32 or Q8_0",
                         name, lm_type_get((uint32_t)cache->type).name);
    return lm_op_check_kv_cache(name, src, cache);
}

lm_status lm__vk_kv_cache(lm__vk *v, const char *op, const lm_tensor *c, const char *arg,
                          int32_t only_seq, lm__vk_view *view, uint32_t *off) {
    const size_t es = lm__vk_kv_unit(c->type);
    lm_tensor t = *c;
    if (only_seq >= 0) {
        t.offset += (size_t)only_seq * c->nb[3];
        t.ne[3] = 1;
    }
    LM_TRY(lm__vk_view_of(v, &t, op, arg, view));
    *off = lm__el(view->base, es) - (only_seq >= 0 ? lm__el((size_t)only_seq * c->nb[3], es) : 0u);
    return LM_OK;
}

static lm_status lm__vk_kv_run(lm__vk *v, const lm_tensor *k, const lm_tensor *val,
                               const lm_tensor *k_cache, const lm_tensor *v_cache,
                               const lm_tensor *pos, const lm_tensor *seq, int32_t only_seq) {
    const char *op = "kv_store";
    /* cache offsets in elements of the binding: halves, floats, or bytes for Q8_0 */
    const size_t es = lm__vk_kv_unit(k_cache->type);
    lm__vk_view vk, vv, vkc, vvc, vp, vs;
    uint32_t kc_off, vc_off;
    LM_TRY(lm__vk_view_of(v, k, op, "k", &vk));
    LM_TRY(lm__vk_view_of(v, val, op, "v", &vv));
    LM_TRY(lm__vk_kv_cache(v, "kv_store", k_cache, "k_cache", only_seq, &vkc, &kc_off));
    LM_TRY(lm__vk_kv_cache(v, "kv_store", v_cache, "v_cache", only_seq, &vvc, &vc_off));
    LM_TRY(lm__vk_view_of(v, pos, op, "pos", &vp));
    LM_TRY(lm__vk_view_of(v, seq, op, "seq", &vs));
    const bool q8 = k_cache->type == LM_TYPE_Q8_0;
    lm__vk_cmd c = {.shader = q8        ? LM_VK_SHADER_kv_store_q8_0
                              : es == 2 ? LM_VK_SHADER_kv_store_f16
                                        : LM_VK_SHADER_kv_store_f32};
    lm__vk_bind(&c, &vk, 0);
    lm__vk_bind(&c, &vv, 0);
    lm__vk_bind(&c, &vkc, 1);
    lm__vk_bind(&c, &vvc, 1);
    lm__vk_bind(&c, &vp, 0);
    lm__vk_bind(&c, &vs, 0);
    const int64_t T = k->ne[2];
    lm__vk_kv_pc pc = {lm__u32(k->ne[0]),
                       lm__u32(k->ne[1]),
                       lm__u32(T),
                       vk.base / 4,
                       lm__el(k->nb[1], 4),
                       lm__el(k->nb[2], 4),
                       vv.base / 4,
                       lm__el(val->nb[1], 4),
                       lm__el(val->nb[2], 4),
                       kc_off,
                       lm__el(k_cache->nb[1], es),
                       lm__el(k_cache->nb[2], es),
                       lm__el(k_cache->nb[3], es),
                       vc_off,
                       lm__el(v_cache->nb[1], es),
                       lm__el(v_cache->nb[2], es),
                       lm__el(v_cache->nb[3], es),
                       vp.base / 4,
                       vs.base / 4,
                       (int32_t)k_cache->ne[2],
                       (int32_t)k_cache->ne[3],
                       only_seq};
    LM_VK_PC(&c, pc);
    /* one invocation per element, or per 32-element block for Q8_0 */
    c.n_groups = lm__groups(k->ne[0] / (q8 ? 32 : 1) * k->ne[1] * T, 256);
    return lm__vk_run(v, &c);
}

lm_status lm__vk_kv_store(lm_backend *be, const lm_tensor *k, const lm_tensor *val,
                          lm_tensor *k_cache, lm_tensor *v_cache, const lm_tensor *pos,
                          const lm_tensor *seq) {
    const char *op = "kv_store";
    lm__vk *v = lm__vk_ctx(be);
    LM_TRY(lm__vk_check(op, "k", k, LM__F32));
    LM_TRY(lm__vk_check(op, "v", val, LM__F32));
    LM_TRY(lm__vk_check_same_shape(op, "k", k, "v", val));
    LM_TRY(lm__vk_kv_check_cache("k_cache", k, k_cache));
    LM_TRY(lm__vk_kv_check_cache("v_cache", val, v_cache));
    if (k_cache->type != v_cache->type)
        return lm__error(LM_ERR_UNSUPPORTED, "kv_store: k_cache and v_cache types differ");
    LM_TRY(lm__vk_check(op, "pos", pos, LM__I32));
    LM_TRY(lm__vk_check(op, "seq", seq, LM__I32));
    const int64_t T = k->ne[2], n_ctx = k_cache->ne[2], n_seq = k_cache->ne[3];
    LM_TRY(lm_op_check_kv_args(k, k_cache, v_cache, pos, seq));
    LM_TRY(lm__vk_check_index(v, op, "pos", pos, T, n_ctx, "n_ctx = "));
    LM_TRY(lm__vk_check_index(v, op, "seq", seq, T, n_seq, "n_seq = "));
    /* caches larger than one binding: one dispatch per sequence's slice */
    const int per_seq = lm_tensor_nbytes(k_cache) + v->bind_align > v->max_range && n_seq > 1;
    for (int32_t s = per_seq ? 0 : -1; s < (per_seq ? (int32_t)n_seq : 0); s++)
        LM_TRY(lm__vk_kv_run(v, k, val, k_cache, v_cache, pos, seq, s));
    return LM_OK;
}

/* ---- element-wise ---- */

typedef struct {
    uint32_t ne[4];
    uint32_t a_off, a_nb1, a_nb2, a_nb3;
    uint32_t b_off, b_nb1, b_nb2, b_nb3;
    uint32_t bne[4];
    uint32_t d_off, d_nb1, d_nb2, d_nb3;
    float s;
} lm__vk_ew_pc;

static lm_status lm__vk_ew(lm__vk *v, const char *op, lm_vk_shader_id sh, const lm_tensor *a,
                           const lm_tensor *b, lm_tensor *dst, float s) {
    lm__vk_view va, vb, vd;
    LM_TRY(lm__vk_view_of(v, a, op, "a", &va));
    LM_TRY(lm__vk_view_of(v, b ? b : a, op, "b", &vb));
    LM_TRY(lm__vk_view_of(v, dst, op, "dst", &vd));
    const lm_tensor *B = b ? b : a;
    lm__vk_cmd c = {.shader = sh};
    lm__vk_bind(&c, &va, 0);
    lm__vk_bind(&c, &vb, 0);
    lm__vk_bind(&c, &vd, 1);
    lm__vk_ew_pc pc = {{lm__u32(a->ne[0]), lm__u32(a->ne[1]), lm__u32(a->ne[2]), lm__u32(a->ne[3])},
                       va.base / 4,
                       lm__el(a->nb[1], 4),
                       lm__el(a->nb[2], 4),
                       lm__el(a->nb[3], 4),
                       vb.base / 4,
                       lm__el(B->nb[1], 4),
                       lm__el(B->nb[2], 4),
                       lm__el(B->nb[3], 4),
                       {lm__u32(B->ne[0]), lm__u32(B->ne[1]), lm__u32(B->ne[2]), lm__u32(B->ne[3])},
                       vd.base / 4,
                       lm__el(dst->nb[1], 4),
                       lm__el(dst->nb[2], 4),
                       lm__el(dst->nb[3], 4),
                       s};
    LM_VK_PC(&c, pc);
    c.n_groups = lm__groups(lm_tensor_nelements(a), 256);
    return lm__vk_run(v, &c);
}

static lm_status lm__vk_glu(lm_backend *be, const char *op, lm_vk_shader_id sh,
                            const lm_tensor *gate, const lm_tensor *up, lm_tensor *dst) {
    LM_TRY(lm__vk_check(op, "gate", gate, LM__F32));
    LM_TRY(lm__vk_check(op, "up", up, LM__F32));
    LM_TRY(lm__vk_check(op, "dst", dst, LM__F32));
    LM_TRY(lm__vk_check_same_shape(op, "gate", gate, "up", up));
    LM_TRY(lm__vk_check_same_shape(op, "gate", gate, "dst", dst));
    return lm__vk_ew(lm__vk_ctx(be), op, sh, gate, up, dst, 0.0f);
}

lm_status lm__vk_swiglu(lm_backend *be, const lm_tensor *gate, const lm_tensor *up,
                        lm_tensor *dst) {
    const lm__vk *v = lm__vk_ctx(be); /* with doubles: glibc's expf, bit-equal to the CPU */
    return lm__vk_glu(be, "swiglu",
                      v->has_f64 && !v->force_f32 ? LM_VK_SHADER_swiglu_f64 : LM_VK_SHADER_swiglu,
                      gate, up, dst);
}

lm_status lm__vk_geglu(lm_backend *be, const lm_tensor *gate, const lm_tensor *up, lm_tensor *dst) {
    return lm__vk_glu(be, "geglu", LM_VK_SHADER_geglu, gate, up, dst);
}

static lm_status lm__vk_binary(lm_backend *be, const char *op, lm_vk_shader_id sh,
                               const lm_tensor *a, const lm_tensor *b, lm_tensor *dst) {
    LM_TRY(lm__vk_check(op, "a", a, LM__F32));
    LM_TRY(lm__vk_check(op, "b", b, LM__F32));
    LM_TRY(lm__vk_check(op, "dst", dst, LM__F32));
    LM_TRY(lm__vk_check_same_shape(op, "a", a, "dst", dst));
    for (int i = 0; i < 4; i++)
        if (b->ne[i] != 1 && b->ne[i] != a->ne[i])
            return lm__error(LM_ERR_INVALID_ARG,
                             "%s: b ne[%d] = %lld cannot broadcast to a ne[%d] = %lld", op, i,
                             (long long)b->ne[i], i, (long long)a->ne[i]);
    return lm__vk_ew(lm__vk_ctx(be), op, sh, a, b, dst, 0.0f);
}

lm_status lm__vk_add(lm_backend *be, const lm_tensor *a, const lm_tensor *b, lm_tensor *dst) {
    return lm__vk_binary(be, "add", LM_VK_SHADER_add, a, b, dst);
}

lm_status lm__vk_mul(lm_backend *be, const lm_tensor *a, const lm_tensor *b, lm_tensor *dst) {
    return lm__vk_binary(be, "mul", LM_VK_SHADER_mul, a, b, dst);
}

lm_status lm__vk_scale(lm_backend *be, const lm_tensor *x, float s, lm_tensor *dst) {
    LM_TRY(lm__vk_check("scale", "x", x, LM__F32));
    LM_TRY(lm__vk_check("scale", "dst", dst, LM__F32));
    LM_TRY(lm__vk_check_same_shape("scale", "x", x, "dst", dst));
    return lm__vk_ew(lm__vk_ctx(be), "scale", LM_VK_SHADER_scale, x, NULL, dst, s);
}

/* ---- argmax ---- */

typedef struct {
    uint32_t K, ne1, ne2, n_cols, x_off, x_nb1, x_nb2, x_nb3, d_off;
} lm__vk_argmax_pc;

lm_status lm__vk_argmax(lm_backend *be, const lm_tensor *x, lm_tensor *dst) {
    lm__vk *v = lm__vk_ctx(be);
    LM_TRY(lm__vk_check("argmax", "x", x, LM__F32));
    LM_TRY(lm__vk_check("argmax", "dst", dst, LM__I32));
    const int64_t cols = lm__vk_nrows(x);
    if (dst->ne[0] != cols || lm__vk_nrows(dst) != 1)
        return lm__vk_bad("argmax", "dst elements", dst->ne[0] * lm__vk_nrows(dst), cols);
    lm__vk_view vx, vd;
    LM_TRY(lm__vk_view_of(v, x, "argmax", "x", &vx));
    LM_TRY(lm__vk_view_of(v, dst, "argmax", "dst", &vd));
    lm__vk_cmd c = {.shader = LM_VK_SHADER_argmax};
    lm__vk_bind(&c, &vx, 0);
    lm__vk_bind(&c, &vd, 1);
    lm__vk_argmax_pc pc = {lm__u32(x->ne[0]),   lm__u32(x->ne[1]),   lm__u32(x->ne[2]),
                           lm__u32(cols),       vx.base / 4,         lm__el(x->nb[1], 4),
                           lm__el(x->nb[2], 4), lm__el(x->nb[3], 4), vd.base / 4};
    LM_VK_PC(&c, pc);
    c.n_groups = (uint64_t)cols;
    return lm__vk_run(v, &c);
}

/* ---- copy between F32, F16 and BF16; same-type block rows moved raw ---- */

typedef struct {
    uint32_t ne[4];
    uint32_t s_off, s_nb1, s_nb2, s_nb3, d_off, d_nb1, d_nb2, d_nb3;
} lm__vk_copy_pc;

static int lm__vk_copy_index(lm_type t) {
    return t == LM_TYPE_F32 ? 0 : t == LM_TYPE_F16 ? 1 : t == LM_TYPE_BF16 ? 2 : -1;
}

static lm_status lm__vk_copy_shader(lm__vk *v, const lm_tensor *src, const lm_tensor *dst,
                                    lm_vk_shader_id shader, size_t ss, size_t ds);

/* Same block type on both sides (a Q8_0 KV cache's lm_kv_seq_copy): the rows' bytes are
 * moved untouched as 16-bit words, so no shader per block type is needed. */
static lm_status lm__vk_copy_blocks(lm_backend *be, const lm_tensor *src, lm_tensor *dst) {
    const size_t rs = lm_row_size(src->type, src->ne[0]);
    if (rs % 2)
        return lm__error(LM_ERR_UNSUPPORTED, "copy: %s rows of %zu bytes (odd) on Vulkan",
                         lm_type_get((uint32_t)src->type).name, rs);
    lm_tensor s = *src, d = *dst;
    s.type = d.type = LM_TYPE_F16;
    s.ne[0] = d.ne[0] = (int64_t)(rs / 2);
    s.nb[0] = d.nb[0] = 2;
    return lm__vk_copy_shader(lm__vk_ctx(be), &s, &d, LM_VK_SHADER_copy_RAW16, 2, 2);
}

lm_status lm__vk_copy(lm_backend *be, const lm_tensor *src, lm_tensor *dst) {
    static const lm_vk_shader_id sh[3][3] = {
        {LM_VK_SHADER_copy_F32_F32, LM_VK_SHADER_copy_F32_F16, LM_VK_SHADER_copy_F32_BF16},
        {LM_VK_SHADER_copy_F16_F32, LM_VK_SHADER_copy_F16_F16, LM_VK_SHADER_copy_F16_BF16},
        {LM_VK_SHADER_copy_BF16_F32, LM_VK_SHADER_copy_BF16_F16, LM_VK_SHADER_copy_BF16_BF16},
    };
    lm__vk *v = lm__vk_ctx(be);
    LM_TRY(lm__vk_check("copy", "src", src, -1));
    LM_TRY(lm__vk_check("copy", "dst", dst, -1));
    LM_TRY(lm__vk_check_same_shape("copy", "src", src, "dst", dst));
    if (src->type == dst->type && lm_type_get((uint32_t)src->type).blck > 1)
        return lm__vk_copy_blocks(be, src, dst);
    const int si = lm__vk_copy_index(src->type), di = lm__vk_copy_index(dst->type);
    if (si < 0 || di < 0)
        return lm__error(LM_ERR_UNSUPPORTED,
                         "copy: %s -> %s is not supported by the Vulkan backend (F32, F16 and "
                         "BF16 only)",
                         lm_type_get((uint32_t)src->type).name,
                         lm_type_get((uint32_t)dst->type).name);
    return lm__vk_copy_shader(v, src, dst, sh[si][di], si ? 2 : 4, di ? 2 : 4);
}

/* The copy dispatch: ss, ds are the bytes of one source / destination element. */
static lm_status lm__vk_copy_shader(lm__vk *v, const lm_tensor *src, const lm_tensor *dst,
                                    lm_vk_shader_id shader, size_t ss, size_t ds) {
    lm__vk_view vs, vd;
    LM_TRY(lm__vk_view_of(v, src, "copy", "src", &vs));
    LM_TRY(lm__vk_view_of(v, dst, "copy", "dst", &vd));
    lm__vk_cmd c = {.shader = shader};
    lm__vk_bind(&c, &vs, 0);
    lm__vk_bind(&c, &vd, 1);
    lm__vk_copy_pc pc = {
        {lm__u32(src->ne[0]), lm__u32(src->ne[1]), lm__u32(src->ne[2]), lm__u32(src->ne[3])},
        lm__el(vs.base, ss),
        lm__el(src->nb[1], ss),
        lm__el(src->nb[2], ss),
        lm__el(src->nb[3], ss),
        lm__el(vd.base, ds),
        lm__el(dst->nb[1], ds),
        lm__el(dst->nb[2], ds),
        lm__el(dst->nb[3], ds)};
    LM_VK_PC(&c, pc);
    c.n_groups = lm__groups(lm_tensor_nelements(src), 256);
    return lm__vk_run(v, &c);
}
