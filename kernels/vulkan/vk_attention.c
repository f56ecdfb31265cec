/* Attention over the KV cache. Two kernels:
 *  - attn_exact.comp (devices with shaderFloat64, the default): the CPU oracle's
 *    computation step for step (scores in its summation order, its chunks of 256 and
 *    tiles of 16 positions, its float exp), so results are bit-equal to it; one workgroup
 *    per (token, head).
 *  - attention.comp (flash: tiles of 64 positions with an online softmax; devices without
 *    doubles, or LUMEN_VULKAN_ATTENTION=flash): for few tokens over a long cache (decode)
 *    the positions are split into chunks whose partial results attn_combine.comp merges,
 *    so the device has enough workgroups. Within float rounding of the oracle.
 * Caches are F16, F32 or Q8_0 (shaders/lm_kv.glsl reads each value exactly as the CPU
 * converts it, so a Q8_0 cache keeps the exact kernel bit-equal). */
#include "vk_internal.h"

#define LM_VK_ATTN_MAX_D 256 /* head_dim the shader's shared q and 4 dims per lane hold */

typedef struct {
    uint32_t D, H, Hk, T;
    uint32_t q_off, q_nb1, q_nb2;
    uint32_t k_off, k_nb1, k_nb2, k_nb3;
    uint32_t v_off, v_nb1, v_nb2, v_nb3;
    uint32_t pos_off, seq_off;
    uint32_t o_off, o_nb1, o_nb2;
    int32_t n_ctx, n_seq, window;
    float scale, softcap;
    uint32_t n_split, chunk;
    int32_t only_seq; /* >= 0: one sequence's slice of a cache larger than a binding */
} lm__vk_attn_pc;

typedef struct {
    uint32_t D, H, T, n_split, o_off, o_nb1, o_nb2;
} lm__vk_combine_pc;

static lm_status lm__vk_attn_check_cache(const char *name, const lm_tensor *q, const lm_tensor *c) {
    LM_TRY(lm__vk_check("attention", name, c, -1));
    if (c->type != LM_TYPE_F16 && c->type != LM_TYPE_F32 && c->type != LM_TYPE_Q8_0)
        return lm__error(LM_ERR_INVALID_ARG, "attention: %s type %s, expected F16, F32 or Q8_0",
                         name, lm_type_get((uint32_t)c->type).name);
    return lm_op_check_attn_cache(name, q, c);
}

/* Outside a recording, check positions and sequences on the host (as the CPU does). */
static lm_status lm__vk_attn_check_ids(lm__vk *v, const lm_tensor *q, const lm_tensor *k,
                                       const lm_tensor *pos, const lm_tensor *seq) {
    if (v->recording) return LM_OK;
    const int64_t T = q->ne[2];
    int32_t *buf = LM_MALLOC(2 * (size_t)T * sizeof *buf);
    if (!buf)
        return lm__error(LM_ERR_NOMEM, "attention: cannot check %lld positions", (long long)T);
    lm_status s = lm__vk_read_i32(v, pos, buf, T);
    if (s == LM_OK) s = lm__vk_read_i32(v, seq, buf + T, T);
    for (int64_t t = 0; s == LM_OK && t < T; t++) {
        if (buf[t] < 0 || buf[t] >= k->ne[2])
            s = lm__error(LM_ERR_INVALID_ARG,
                          "attention: pos[%lld] = %d is outside [0, n_ctx = %lld)", (long long)t,
                          buf[t], (long long)k->ne[2]);
        else if (buf[T + t] < 0 || buf[T + t] >= k->ne[3])
            s = lm__error(LM_ERR_INVALID_ARG,
                          "attention: seq[%lld] = %d is outside [0, n_seq = %lld)", (long long)t,
                          buf[T + t], (long long)k->ne[3]);
    }
    LM_FREE(buf);
    return s;
}

/* Chunks of positions per (token, head): enough workgroups for a GPU when few tokens
 * read a long cache; 1 (no combine pass) otherwise. */
static uint32_t lm__vk_attn_splits(const lm__vk *v, int64_t items, int64_t n_ctx, uint32_t *chunk) {
    uint32_t n = 1;
    if (v->force_split > 0)
        n = (uint32_t)v->force_split;
    else if (v->force_split == 0 && items < 256 && n_ctx > 512)
        n = (uint32_t)((256 + items - 1) / items);
    const int64_t max_n = (n_ctx + 63) / 64; /* chunks of at least one tile */
    if ((int64_t)n > max_n) n = (uint32_t)max_n;
    if (n > 64) n = 64;
    if (n < 1) n = 1;
    *chunk = (uint32_t)(((n_ctx + n - 1) / n + 63) / 64 * 64);
    return n;
}

static lm_status lm__vk_scratch(lm__vk *v, size_t bytes) {
    if (v->scratch && v->scratch->size >= bytes) return LM_OK;
    if (v->scratch) { /* recorded work may still read the old one */
        LM_TRY(lm__vk_flush(v));
        lm__vk_buffer_del(v, v->scratch);
        v->scratch = NULL;
    }
    return lm__vk_buffer_new(v, bytes < ((size_t)1 << 20) ? (size_t)1 << 20 : bytes, 0,
                             &v->scratch);
}

/* One dispatch of an attention kernel: the exact one (part NULL) or the flash one with
 * n_split chunks of `chunk` positions writing partials to *part. */
static lm_status lm__vk_attn_run(lm__vk *v, lm_vk_shader_id shader, const lm_tensor *q,
                                 const lm_tensor *k_cache, const lm_tensor *v_cache,
                                 const lm_tensor *pos, const lm_tensor *seq,
                                 const lm_attn_params *p, lm_tensor *dst, const lm__vk_view *part,
                                 uint32_t n_split, uint32_t chunk, int32_t only_seq) {
    const char *op = "attention";
    const size_t es = lm__vk_kv_unit(k_cache->type);
    lm__vk_view vq, vk, vv, vp, vs, vo;
    uint32_t k_off, v_off;
    LM_TRY(lm__vk_view_of(v, q, op, "q", &vq));
    LM_TRY(lm__vk_kv_cache(v, "attention", k_cache, "k_cache", only_seq, &vk, &k_off));
    LM_TRY(lm__vk_kv_cache(v, "attention", v_cache, "v_cache", only_seq, &vv, &v_off));
    LM_TRY(lm__vk_view_of(v, pos, op, "pos", &vp));
    LM_TRY(lm__vk_view_of(v, seq, op, "seq", &vs));
    LM_TRY(lm__vk_view_of(v, dst, op, "dst", &vo));
    lm__vk_cmd c = {.shader = shader};
    lm__vk_bind(&c, &vq, 0);
    lm__vk_bind(&c, &vk, 0);
    lm__vk_bind(&c, &vv, 0);
    lm__vk_bind(&c, &vp, 0);
    lm__vk_bind(&c, &vs, 0);
    lm__vk_bind(&c, &vo, !part || n_split == 1);
    if (part) lm__vk_bind(&c, part, n_split > 1);
    lm__vk_attn_pc pc = {(uint32_t)q->ne[0],
                         (uint32_t)q->ne[1],
                         (uint32_t)k_cache->ne[1],
                         (uint32_t)q->ne[2],
                         vq.base / 4,
                         (uint32_t)(q->nb[1] / 4),
                         (uint32_t)(q->nb[2] / 4),
                         k_off,
                         (uint32_t)(k_cache->nb[1] / es),
                         (uint32_t)(k_cache->nb[2] / es),
                         (uint32_t)(k_cache->nb[3] / es),
                         v_off,
                         (uint32_t)(v_cache->nb[1] / es),
                         (uint32_t)(v_cache->nb[2] / es),
                         (uint32_t)(v_cache->nb[3] / es),
                         vp.base / 4,
                         vs.base / 4,
                         vo.base / 4,
                         (uint32_t)(dst->nb[1] / 4),
                         (uint32_t)(dst->nb[2] / 4),
                         (int32_t)k_cache->ne[2],
                         (int32_t)k_cache->ne[3],
                         p->window,
                         p->scale,
                         p->softcap,
                         n_split,
                         chunk,
                         only_seq};
    LM_VK_PC(&c, pc);
    c.n_groups = (uint64_t)(q->ne[1] * q->ne[2]) * n_split;
    return lm__vk_run(v, &c);
}

/* A cache larger than one storage-buffer binding is bound one sequence's slice at a time:
 * one dispatch per sequence, each skipping the other sequences' tokens. */
static int lm__vk_attn_per_seq(const lm__vk *v, const lm_tensor *c) {
    return lm_tensor_nbytes(c) + v->bind_align > v->max_range && c->ne[3] > 1;
}

lm_status lm__vk_attention(lm_backend *be, const lm_tensor *q, const lm_tensor *k_cache,
                           const lm_tensor *v_cache, const lm_tensor *pos, const lm_tensor *seq,
                           const lm_attn_params *p, lm_tensor *dst) {
    const char *op = "attention";
    lm__vk *v = lm__vk_ctx(be);
    LM_TRY(lm__vk_check(op, "q", q, LM_TYPE_F32));
    LM_TRY(lm__vk_check(op, "dst", dst, LM_TYPE_F32));
    LM_TRY(lm__vk_check_same_shape(op, "q", q, "dst", dst));
    if (q->ne[3] != 1)
        return lm__error(LM_ERR_INVALID_ARG, "attention: q ne[3] = %lld, expected 1",
                         (long long)q->ne[3]);
    LM_TRY(lm__vk_attn_check_cache("k_cache", q, k_cache));
    LM_TRY(lm__vk_attn_check_cache("v_cache", q, v_cache));
    LM_TRY(lm__vk_check_same_shape(op, "k_cache", k_cache, "v_cache", v_cache));
    if (k_cache->type != v_cache->type)
        return lm__error(LM_ERR_UNSUPPORTED, "attention: k_cache and v_cache types differ");
    LM_TRY(lm__vk_check(op, "pos", pos, LM_TYPE_I32));
    LM_TRY(lm__vk_check(op, "seq", seq, LM_TYPE_I32));
    LM_TRY(lm_op_check_attn_args(q, pos, seq, p));
    if (q->ne[0] > LM_VK_ATTN_MAX_D)
        return lm__error(LM_ERR_UNSUPPORTED, "attention: head_dim %lld > %d is not supported",
                         (long long)q->ne[0], LM_VK_ATTN_MAX_D);
    LM_TRY(lm__vk_attn_check_ids(v, q, k_cache, pos, seq));
    const size_t es = lm__vk_kv_unit(k_cache->type);
    const int per_seq = lm__vk_attn_per_seq(v, k_cache);
    const int32_t n_seq = (int32_t)k_cache->ne[3];
    if (v->has_f64 && !v->force_f32 && v->force_split == 0 && !v->flash_attention) {
        const lm_vk_shader_id sh = es == 1   ? LM_VK_SHADER_attn_exact_q8_0
                                   : es == 2 ? LM_VK_SHADER_attn_exact_f16
                                             : LM_VK_SHADER_attn_exact_f32;
        if (!per_seq)
            return lm__vk_attn_run(v, sh, q, k_cache, v_cache, pos, seq, p, dst, NULL, 1, 0, -1);
        for (int32_t s = 0; s < n_seq; s++)
            LM_TRY(lm__vk_attn_run(v, sh, q, k_cache, v_cache, pos, seq, p, dst, NULL, 1, 0, s));
        return LM_OK;
    }

    const int64_t D = q->ne[0], H = q->ne[1], T = q->ne[2];
    uint32_t chunk;
    uint32_t n_split = lm__vk_attn_splits(v, H * T, k_cache->ne[2], &chunk);
    if (per_seq) { /* the combine pass would rewrite other sequences' outputs */
        n_split = 1;
        chunk = (uint32_t)((k_cache->ne[2] + 63) / 64 * 64);
    }
    const size_t part_bytes = (size_t)(H * T) * n_split * (size_t)(D + 2) * 4;
    LM_TRY(lm__vk_scratch(v, part_bytes));
    lm_tensor pt;
    lm__vk_view vpart, vo;
    lm_tensor_init(&pt, v->scratch, 0, LM_TYPE_F32, (int64_t)(part_bytes / 4), 1, 1, 1);
    LM_TRY(lm__vk_view_of(v, &pt, op, "partials", &vpart));
    const lm_vk_shader_id sh = es == 1   ? LM_VK_SHADER_attn_q8_0
                               : es == 2 ? LM_VK_SHADER_attn_f16
                                         : LM_VK_SHADER_attn_f32;
    for (int32_t s = per_seq ? 0 : -1; s < (per_seq ? n_seq : 0); s++)
        LM_TRY(lm__vk_attn_run(v, sh, q, k_cache, v_cache, pos, seq, p, dst, &vpart, n_split, chunk,
                               s));
    if (n_split == 1) return LM_OK;

    LM_TRY(lm__vk_view_of(v, dst, op, "dst", &vo));
    lm__vk_cmd m = {.shader = LM_VK_SHADER_attn_combine};
    lm__vk_bind(&m, &vpart, 0);
    lm__vk_bind(&m, &vo, 1);
    lm__vk_combine_pc mp = {(uint32_t)D,
                            (uint32_t)H,
                            (uint32_t)T,
                            n_split,
                            vo.base / 4,
                            (uint32_t)(dst->nb[1] / 4),
                            (uint32_t)(dst->nb[2] / 4)};
    LM_VK_PC(&m, mp);
    m.n_groups = (uint64_t)(H * T);
    return lm__vk_run(v, &m);
}
