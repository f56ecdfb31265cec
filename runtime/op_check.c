/* Argument checks every backend's ops share (after each backend's own checks of tensor
 * types and buffers), so that the same bad input gets the same message on every backend. */
#include "backend.h"
#include "lm_internal.h"

static int64_t lm__rows(const lm_tensor *t) {
    return t->ne[1] * t->ne[2] * t->ne[3];
}

/* "op: what = got, expected want" */
static lm_status lm__bad(const char *op, const char *what, long long got, long long want) {
    return lm__error(LM_ERR_INVALID_ARG, "%s: %s = %lld, expected %lld", op, what, got, want);
}

lm_status lm_op_check_rope(const lm_tensor *x, const lm_tensor *pos, const lm_rope_params *p) {
    if (!p) return lm__error(LM_ERR_INVALID_ARG, "rope: params are NULL");
    if (x->ne[3] != 1) return lm__bad("rope", "x ne[3]", x->ne[3], 1);
    if (pos->ne[0] != x->ne[2] || lm__rows(pos) != 1)
        return lm__bad("rope", "pos count", pos->ne[0] * lm__rows(pos), x->ne[2]);
    if (p->mode != LM_ROPE_NORMAL && p->mode != LM_ROPE_NEOX)
        return lm__error(LM_ERR_INVALID_ARG, "rope: mode %d is not NORMAL (0) or NEOX (2)",
                         (int)p->mode);
    if (p->n_rot <= 0 || p->n_rot % 2 || p->n_rot > x->ne[0])
        return lm__error(LM_ERR_INVALID_ARG,
                         "rope: n_rot = %d must be even and in (0, head_dim = %lld]", p->n_rot,
                         (long long)x->ne[0]);
    if (!(p->freq_base > 0) || !(p->freq_scale > 0))
        return lm__error(LM_ERR_INVALID_ARG, "rope: freq_base = %g and freq_scale = %g must be > 0",
                         p->freq_base, p->freq_scale);
    return LM_OK;
}

lm_status lm_op_check_attn_cache(const char *name, const lm_tensor *q, const lm_tensor *c) {
    if (c->ne[0] != q->ne[0])
        return lm__error(LM_ERR_INVALID_ARG, "attention: %s head_dim %lld != q head_dim %lld", name,
                         (long long)c->ne[0], (long long)q->ne[0]);
    if (q->ne[1] % c->ne[1] != 0)
        return lm__error(LM_ERR_INVALID_ARG,
                         "attention: n_head %lld is not a multiple of %s n_kv_head %lld",
                         (long long)q->ne[1], name, (long long)c->ne[1]);
    return LM_OK;
}

lm_status lm_op_check_attn_args(const lm_tensor *q, const lm_tensor *pos, const lm_tensor *seq,
                                const lm_attn_params *p) {
    if (pos->ne[0] != q->ne[2] || seq->ne[0] != q->ne[2])
        return lm__error(LM_ERR_INVALID_ARG,
                         "attention: pos has %lld and seq %lld entries, expected n_tok = %lld",
                         (long long)pos->ne[0], (long long)seq->ne[0], (long long)q->ne[2]);
    if (!p) return lm__error(LM_ERR_INVALID_ARG, "attention: params are NULL");
    if (p->window < 0 || !(p->softcap >= 0.0f))
        return lm__error(LM_ERR_INVALID_ARG, "attention: window = %d, softcap = %g (must be >= 0)",
                         p->window, p->softcap);
    return LM_OK;
}

lm_status lm_op_check_kv_cache(const char *name, const lm_tensor *src, const lm_tensor *cache) {
    if (cache->ne[0] != src->ne[0] || cache->ne[1] != src->ne[1])
        return lm__error(LM_ERR_INVALID_ARG,
                         "kv_store: %s is [%lld, %lld, ...], source is [%lld, %lld, ...]", name,
                         (long long)cache->ne[0], (long long)cache->ne[1], (long long)src->ne[0],
                         (long long)src->ne[1]);
    return LM_OK;
}

lm_status lm_op_check_kv_args(const lm_tensor *k, const lm_tensor *k_cache,
                              const lm_tensor *v_cache, const lm_tensor *pos,
                              const lm_tensor *seq) {
    if (k->ne[3] != 1) return lm__bad("kv_store", "k ne[3]", k->ne[3], 1);
    if (k_cache->ne[2] != v_cache->ne[2] || k_cache->ne[3] != v_cache->ne[3])
        return lm__error(LM_ERR_INVALID_ARG, "kv_store: k_cache and v_cache differ in n_ctx/n_seq");
    const int64_t T = k->ne[2];
    if (pos->ne[0] != T || lm__rows(pos) != 1)
        return lm__bad("kv_store", "pos count", pos->ne[0], T);
    if (seq->ne[0] != T || lm__rows(seq) != 1)
        return lm__bad("kv_store", "seq count", seq->ne[0], T);
    return LM_OK;
}

lm_status lm_op_check_get_rows(const lm_tensor *src, const lm_tensor *ids, const lm_tensor *dst) {
    const char *op = "get_rows";
    if (src->ne[2] * src->ne[3] != 1)
        return lm__bad(op, "src ne[2]*ne[3]", src->ne[2] * src->ne[3], 1);
    if (lm__rows(ids) != 1) return lm__bad(op, "ids ne[1]*ne[2]*ne[3]", lm__rows(ids), 1);
    if (dst->ne[0] != src->ne[0]) return lm__bad(op, "dst ne[0]", dst->ne[0], src->ne[0]);
    if (dst->ne[1] != ids->ne[0])
        return lm__bad(op, "dst ne[1] (ids count)", dst->ne[1], ids->ne[0]);
    if (dst->ne[2] * dst->ne[3] != 1)
        return lm__bad(op, "dst ne[2]*ne[3]", dst->ne[2] * dst->ne[3], 1);
    return LM_OK;
}
