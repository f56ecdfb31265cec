/* Model loading: architecture table, hyper-parameters, tensor checks, weights onto a
 * backend. Every check happens before the backend sees a byte. */
#include "model.h"

#include "inspect.h"
#include "lm_internal.h"
#include "quant.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* One row per family; every difference is a field the forward pass branches on. Facts
 * from llama.cpp (llama-model.cpp, llama-arch.cpp) and the Hugging Face configs. */
static const lm_arch lm__archs[] = {
    {.name = "llama", .rope_mode = LM_ROPE_NORMAL},
    {.name = "mistral", .rope_mode = LM_ROPE_NORMAL},
    {.name = "qwen2", .rope_mode = LM_ROPE_NEOX, .qkv_bias = true},
    {.name = "qwen3", .rope_mode = LM_ROPE_NEOX, .qk_norm = true},
    {.name = "gemma", .rope_mode = LM_ROPE_NEOX, .act = LM_ACT_GELU, .embd_scale = true},
    /* Gemma 2: every other layer slides (window 4096 unless given); tanh soft-capping of
     * scores (50) and logits (30) unless the file says otherwise. */
    {.name = "gemma2",
     .rope_mode = LM_ROPE_NEOX,
     .act = LM_ACT_GELU,
     .post_norms = true,
     .embd_scale = true,
     .swa_pattern = 2,
     .swa_default = 4096,
     .big_n_layer = 46,
     .attn_softcap = 50.0f,
     .final_softcap = 30.0f},
    /* Gemma 3: 5 of every 6 layers slide, with their own RoPE base 10000 and no scaling. */
    {.name = "gemma3",
     .rope_mode = LM_ROPE_NEOX,
     .act = LM_ACT_GELU,
     .qk_norm = true,
     .post_norms = true,
     .embd_scale = true,
     .swa_pattern = 6,
     .rope_base_swa = 10000.0f,
     .big_n_layer = 62},
    /* Phi-3: fused attn_qkv and [gate; up]; its sliding_window key is ignored as llama.cpp
     * does (the window is not used by the released models' attention masks there). */
    {.name = "phi3", .rope_mode = LM_ROPE_NEOX, .fused_gate_up = true, .ignore_swa = true},
};

const lm_arch *lm_arch_find(const char *name) {
    for (size_t i = 0; i < sizeof lm__archs / sizeof lm__archs[0]; i++)
        if (strcmp(lm__archs[i].name, name) == 0) return &lm__archs[i];
    return NULL;
}

/* ---- hyper-parameters ----------------------------------------------------------------- */

static bool lm__has(const lm_gguf *g, const char *arch, const char *suffix) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return lm_gguf_find_key(g, key) >= 0;
}

static lm_status lm__hp_u32(const lm_gguf *g, const char *arch, const char *suffix, bool required,
                            uint32_t dflt, uint32_t lo, uint32_t hi, int32_t *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    uint32_t v = dflt;
    if (lm_gguf_find_key(g, key) >= 0 || required) LM_TRY(lm_gguf_get_u32(g, key, &v));
    if (v < lo || v > hi)
        return lm__error(LM_ERR_MODEL, "hyper-parameter %s = %u is out of range [%u, %u]", key, v,
                         lo, hi);
    *out = (int32_t)v;
    return LM_OK;
}

static lm_status lm__hp_f32(const lm_gguf *g, const char *arch, const char *suffix, float dflt,
                            float lo, float hi, float *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    float v = dflt;
    if (lm_gguf_find_key(g, key) >= 0) LM_TRY(lm_gguf_get_f32(g, key, &v));
    if (!(v >= lo && v <= hi))
        return lm__error(LM_ERR_MODEL, "hyper-parameter %s = %g is out of range [%g, %g]", key,
                         (double)v, (double)lo, (double)hi);
    *out = v;
    return LM_OK;
}

/* <arch>.rope.scaling.type: none and linear change the positions; LongRoPE's factors are
 * tensors (checked at binding); YaRN and anything else is refused by name. */
static lm_status lm__hp_rope_scaling(const lm_gguf *g, const char *a, lm_hparams *hp) {
    char key[128];
    hp->rope_scale = 1.0f;
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    lm_gguf_str type = {0, NULL};
    if (lm_gguf_find_key(g, key) >= 0) {
        LM_TRY(lm_gguf_get_str(g, key, &type));
        if (lm_gguf_str_eq(type, "none") || lm_gguf_str_eq(type, "longrope")) return LM_OK;
        if (!lm_gguf_str_eq(type, "linear"))
            return lm__error(LM_ERR_UNSUPPORTED, "%s = '%.*s' is not supported yet", key,
                             (int)(type.len > 32 ? 32 : type.len), type.data);
    }
    /* linear, named or not: the factor (or its older key rope.scale_linear) divides the
     * positions */
    float factor = 1.0f;
    LM_TRY(lm__hp_f32(g, a, "rope.scale_linear", 1.0f, 1e-3f, 1e3f, &factor));
    LM_TRY(lm__hp_f32(g, a, "rope.scaling.factor", factor, 1e-3f, 1e3f, &factor));
    hp->rope_scale = 1.0f / factor;
    return LM_OK;
}

/* Head sizes: key_length (default n_embd / n_head) must equal value_length. */
static lm_status lm__hp_heads(const lm_gguf *g, const char *a, lm_hparams *hp) {
    LM_TRY(lm__hp_u32(g, a, "attention.head_count", true, 0, 1, 1024, &hp->n_head));
    LM_TRY(lm__hp_u32(g, a, "attention.head_count_kv", false, (uint32_t)hp->n_head, 1,
                      (uint32_t)hp->n_head, &hp->n_head_kv));
    if (hp->n_head % hp->n_head_kv != 0)
        return lm__error(LM_ERR_MODEL,
                         "%s.attention.head_count (%d) is not a multiple of head_count_kv (%d)", a,
                         hp->n_head, hp->n_head_kv);
    if (!lm__has(g, a, "attention.key_length") && hp->n_embd % hp->n_head != 0)
        return lm__error(LM_ERR_MODEL,
                         "%s.embedding_length (%d) is not a multiple of head_count (%d)", a,
                         hp->n_embd, hp->n_head);
    LM_TRY(lm__hp_u32(g, a, "attention.key_length", false, (uint32_t)(hp->n_embd / hp->n_head), 2,
                      4096, &hp->head_dim));
    if (hp->head_dim % 2) return lm__error(LM_ERR_MODEL, "%s head size %d is odd", a, hp->head_dim);
    int32_t v_dim = 0;
    LM_TRY(
        lm__hp_u32(g, a, "attention.value_length", false, (uint32_t)hp->head_dim, 1, 4096, &v_dim));
    if (v_dim != hp->head_dim)
        return lm__error(LM_ERR_UNSUPPORTED,
                         "%s.attention.value_length (%d) differs from key_length (%d); Lumen "
                         "needs them equal",
                         a, v_dim, hp->head_dim);
    LM_TRY(lm__hp_u32(g, a, "rope.dimension_count", false, (uint32_t)hp->head_dim, 2,
                      (uint32_t)hp->head_dim, &hp->n_rot));
    if (hp->n_rot % 2)
        return lm__error(LM_ERR_MODEL, "%s.rope.dimension_count (%d) is odd", a, hp->n_rot);
    return LM_OK;
}

/* RoPE, sliding window, attention scale and soft-capping: the per-family attention. */
static lm_status lm__hp_attention(const lm_gguf *g, const char *a, lm_hparams *hp) {
    const lm_arch *A = hp->arch;
    LM_TRY(lm__hp_f32(g, a, "rope.freq_base", 10000.0f, 1.0f, 1e12f, &hp->rope_base));
    LM_TRY(lm__hp_rope_scaling(g, a, hp));
    LM_TRY(lm__hp_f32(g, a, "rope.scaling.attn_factor", 1.0f, 1e-3f, 1e3f, &hp->rope_attn_factor));
    LM_TRY(lm__hp_u32(g, a, "rope.scaling.original_context_length", false,
                      (uint32_t)hp->n_ctx_train, 1, 1u << 24, &hp->n_ctx_orig));
    hp->rope_base_swa = hp->rope_base;
    hp->rope_scale_swa = hp->rope_scale;
    if (A->rope_base_swa > 0) {
        LM_TRY(lm__hp_f32(g, a, "rope.freq_base_swa", A->rope_base_swa, 1.0f, 1e12f,
                          &hp->rope_base_swa));
        hp->rope_scale_swa = 1.0f;
    }
    hp->n_swa = 0;
    if (A->swa_pattern > 0 && !A->ignore_swa)
        LM_TRY(lm__hp_u32(g, a, "attention.sliding_window", A->swa_default == 0,
                          (uint32_t)A->swa_default, 1, 1u << 24, &hp->n_swa));
    /* Gemma's largest variants scale q by 1/sqrt(n_embd/n_head) (query_pre_attn_scalar in
     * gemma_pytorch's config); llama.cpp recognises them by layer count, and so do we. */
    float dflt = 1.0f / sqrtf((float)hp->head_dim);
    if (A->big_n_layer > 0 && hp->n_layer == A->big_n_layer)
        dflt = 1.0f / sqrtf((float)(hp->n_embd / hp->n_head));
    LM_TRY(lm__hp_f32(g, a, "attention.scale", dflt, 1e-6f, 1e3f, &hp->attn_scale));
    LM_TRY(
        lm__hp_f32(g, a, "attn_logit_softcapping", A->attn_softcap, 0.0f, 1e6f, &hp->attn_softcap));
    LM_TRY(lm__hp_f32(g, a, "final_logit_softcapping", A->final_softcap, 0.0f, 1e6f,
                      &hp->final_softcap));
    return LM_OK;
}

lm_status lm_hparams_load(const lm_gguf *g, lm_hparams *hp) {
    memset(hp, 0, sizeof *hp);
    lm_gguf_str arch_s;
    LM_TRY(lm_gguf_get_str(g, "general.architecture", &arch_s));
    char a[64];
    if (arch_s.len == 0 || arch_s.len >= sizeof a)
        return lm__error(LM_ERR_MODEL, "general.architecture has a bad length (%llu)",
                         (unsigned long long)arch_s.len);
    memcpy(a, arch_s.data, arch_s.len);
    a[arch_s.len] = '\0';
    hp->arch = lm_arch_find(a);
    if (!hp->arch) return lm__error(LM_ERR_UNSUPPORTED, "architecture '%s' is not supported", a);

    LM_TRY(lm__hp_u32(g, a, "context_length", true, 0, 1, 1u << 24, &hp->n_ctx_train));
    LM_TRY(lm__hp_u32(g, a, "embedding_length", true, 0, 1, 1u << 16, &hp->n_embd));
    LM_TRY(lm__hp_u32(g, a, "block_count", true, 0, 1, LM_MAX_LAYERS, &hp->n_layer));
    LM_TRY(lm__hp_u32(g, a, "feed_forward_length", true, 0, 1, 1u << 20, &hp->n_ff));
    LM_TRY(lm__hp_heads(g, a, hp));
    LM_TRY(lm__hp_f32(g, a, "attention.layer_norm_rms_epsilon", 1e-5f, 1e-12f, 1.0f, &hp->rms_eps));
    LM_TRY(lm__hp_attention(g, a, hp));
    uint32_t nv = 0;
    char key[128];
    snprintf(key, sizeof key, "%s.vocab_size", a);
    if (lm_gguf_find_key(g, key) >= 0) {
        LM_TRY(lm_gguf_get_u32(g, key, &nv));
        if (nv == 0 || nv > (1u << 24))
            return lm__error(LM_ERR_MODEL, "%s = %u is out of range", key, nv);
    }
    hp->n_vocab = (int32_t)nv; /* 0: taken from token_embd.weight */
    return LM_OK;
}

/* ---- tensors -------------------------------------------------------------------------- */

static void lm__shape_str(const int64_t *ne, int n, char *buf, size_t size) {
    size_t off = 0;
    off += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < n && off < size; i++)
        off += (size_t)snprintf(buf + off, size - off, "%s%lld", i ? ", " : "", (long long)ne[i]);
    if (off < size) snprintf(buf + off, size - off, "]");
}

/* Find a tensor, check its shape (ne1 = 0: 1-D) and type, and make a view of it. */
static lm_status lm__bind(lm_model *m, const char *name, int64_t ne0, int64_t ne1, bool optional,
                          lm_tensor *out) {
    const lm_gguf_tensor *t = lm_gguf_find_tensor(m->gguf, name);
    memset(out, 0, sizeof *out);
    if (!t) {
        if (optional) return LM_OK;
        return lm__error(LM_ERR_MODEL, "tensor '%s' is missing", name);
    }
    int64_t want[2] = {ne0, ne1 ? ne1 : 1};
    bool ok = t->ne[0] == want[0] && t->ne[1] == want[1] && t->ne[2] == 1 && t->ne[3] == 1;
    if (!ok) {
        char hs[96], ws[64];
        lm__shape_str(t->ne, (int)t->n_dims, hs, sizeof hs);
        lm__shape_str(want, ne1 ? 2 : 1, ws, sizeof ws);
        return lm__error(LM_ERR_MODEL, "tensor '%s' has shape %s, but the hyper-parameters need %s",
                         name, hs, ws);
    }
    if (!lm_type_computable(t->type))
        return lm__error(LM_ERR_UNSUPPORTED,
                         "tensor '%s' has type %s, which Lumen cannot "
                         "compute yet",
                         name, lm_type_get(t->type).name);
    if (ne1 == 0 && t->type != LM_TYPE_F32)
        return lm__error(LM_ERR_MODEL, "tensor '%s' has type %s, expected F32", name,
                         lm_type_get(t->type).name);
    lm_tensor_init(out, m->weights, (size_t)t->offset, t->type, want[0], want[1], 1, 1);
    return LM_OK;
}

/* Rows [r0, r0 + n) of a bound matrix / elements of a bound vector: how a fused tensor
 * becomes its parts with no change to the ops. */
static lm_tensor lm__rows(const lm_tensor *t, int64_t r0, int64_t n) {
    lm_tensor v;
    lm_tensor_init(&v, t->buf, t->offset + (size_t)r0 * t->nb[1], t->type, t->ne[0], n, 1, 1);
    return v;
}

static lm_tensor lm__elems(const lm_tensor *t, int64_t i0, int64_t n) {
    lm_tensor v;
    lm_tensor_init(&v, t->buf, t->offset + (size_t)i0 * t->nb[0], t->type, n, 1, 1, 1);
    return v;
}

#define LM_NAME(buf, il, suffix) snprintf(buf, sizeof buf, "blk.%d.%s", il, suffix)

/* Q, K, V: separate tensors, or rows of a fused attn_qkv (phi3); biases likewise. */
static lm_status lm__bind_qkv(lm_model *m, int il, lm_layer *L) {
    const lm_hparams *hp = &m->hp;
    int64_t nq = (int64_t)hp->n_head * hp->head_dim, nkv = (int64_t)hp->n_head_kv * hp->head_dim;
    char n[96];
    LM_NAME(n, il, "attn_qkv.weight");
    if (lm_gguf_find_tensor(m->gguf, n)) {
        lm_tensor all;
        LM_TRY(lm__bind(m, n, hp->n_embd, nq + 2 * nkv, false, &all));
        L->wq = lm__rows(&all, 0, nq);
        L->wk = lm__rows(&all, nq, nkv);
        L->wv = lm__rows(&all, nq + nkv, nkv);
    } else {
        LM_NAME(n, il, "attn_q.weight");
        if (!lm_gguf_find_tensor(m->gguf, n))
            return lm__error(
                LM_ERR_MODEL,
                "tensor '%s' is missing (nor is there a fused 'blk.%d.attn_qkv.weight')", n, il);
        LM_TRY(lm__bind(m, n, hp->n_embd, nq, false, &L->wq));
        LM_NAME(n, il, "attn_k.weight");
        LM_TRY(lm__bind(m, n, hp->n_embd, nkv, false, &L->wk));
        LM_NAME(n, il, "attn_v.weight");
        LM_TRY(lm__bind(m, n, hp->n_embd, nkv, false, &L->wv));
    }
    if (!hp->arch->qkv_bias) return LM_OK;
    LM_NAME(n, il, "attn_qkv.bias");
    if (lm_gguf_find_tensor(m->gguf, n)) {
        lm_tensor all;
        LM_TRY(lm__bind(m, n, nq + 2 * nkv, 0, false, &all));
        L->bq = lm__elems(&all, 0, nq);
        L->bk = lm__elems(&all, nq, nkv);
        L->bv = lm__elems(&all, nq + nkv, nkv);
        return LM_OK;
    }
    LM_NAME(n, il, "attn_q.bias");
    LM_TRY(lm__bind(m, n, nq, 0, false, &L->bq));
    LM_NAME(n, il, "attn_k.bias");
    LM_TRY(lm__bind(m, n, nkv, 0, false, &L->bk));
    LM_NAME(n, il, "attn_v.bias");
    return lm__bind(m, n, nkv, 0, false, &L->bv);
}

/* gate, up: separate, or ffn_up = [gate; up] with 2 * n_ff rows (phi3); then down. */
static lm_status lm__bind_ffn(lm_model *m, int il, lm_layer *L) {
    const lm_hparams *hp = &m->hp;
    char n[96];
    if (hp->arch->fused_gate_up) {
        lm_tensor all;
        LM_NAME(n, il, "ffn_up.weight");
        LM_TRY(lm__bind(m, n, hp->n_embd, 2 * (int64_t)hp->n_ff, false, &all));
        L->w_gate = lm__rows(&all, 0, hp->n_ff);
        L->w_up = lm__rows(&all, hp->n_ff, hp->n_ff);
    } else {
        LM_NAME(n, il, "ffn_gate.weight");
        LM_TRY(lm__bind(m, n, hp->n_embd, hp->n_ff, false, &L->w_gate));
        LM_NAME(n, il, "ffn_up.weight");
        LM_TRY(lm__bind(m, n, hp->n_embd, hp->n_ff, false, &L->w_up));
    }
    LM_NAME(n, il, "ffn_down.weight");
    return lm__bind(m, n, hp->n_ff, hp->n_embd, false, &L->w_down);
}

static lm_status lm__bind_layer(lm_model *m, int il) {
    const lm_hparams *hp = &m->hp;
    const lm_arch *A = hp->arch;
    lm_layer *L = &m->layers[il];
    int64_t nq = (int64_t)hp->n_head * hp->head_dim;
    char n[96];
#define LM_BIND(field, suffix, ne0, ne1)                                                           \
    LM_NAME(n, il, suffix);                                                                        \
    LM_TRY(lm__bind(m, n, ne0, ne1, false, &L->field))
    LM_BIND(attn_norm, "attn_norm.weight", hp->n_embd, 0);
    LM_TRY(lm__bind_qkv(m, il, L));
    LM_BIND(wo, "attn_output.weight", nq, hp->n_embd);
    if (A->qk_norm) {
        LM_BIND(q_norm, "attn_q_norm.weight", hp->head_dim, 0);
        LM_BIND(k_norm, "attn_k_norm.weight", hp->head_dim, 0);
    }
    if (A->post_norms) {
        LM_BIND(attn_post_norm, "post_attention_norm.weight", hp->n_embd, 0);
        LM_BIND(ffn_post_norm, "post_ffw_norm.weight", hp->n_embd, 0);
    }
    LM_BIND(ffn_norm, "ffn_norm.weight", hp->n_embd, 0);
#undef LM_BIND
    return lm__bind_ffn(m, il, L);
}

/* A [n_rot/2] F32 vector of RoPE frequency divisors, copied to the host (the rope op takes
 * a host pointer); each must be finite and positive since the angles are divided by it. */
static lm_status lm__load_factors(lm_model *m, const char *name, float **out) {
    lm_tensor t;
    LM_TRY(lm__bind(m, name, m->hp.n_rot / 2, 0, true, &t));
    if (t.ne[0] == 0) return LM_OK;
    const lm_gguf_tensor *gt = lm_gguf_find_tensor(m->gguf, name);
    size_t n = (size_t)(m->hp.n_rot / 2);
    *out = LM_MALLOC(n * sizeof(float));
    if (!*out) return lm__error(LM_ERR_NOMEM, "cannot allocate '%s'", name);
    memcpy(*out, gt->data, n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        if (!((*out)[i] > 0.0f && (*out)[i] < INFINITY))
            return lm__error(LM_ERR_MODEL, "tensor '%s'[%zu] = %g: RoPE factors must be > 0", name,
                             i, (double)(*out)[i]);
    return LM_OK;
}

static lm_status lm__bind_rope(lm_model *m) {
    LM_TRY(lm__load_factors(m, "rope_freqs.weight", &m->rope_freqs));
    LM_TRY(lm__load_factors(m, "rope_factors_short.weight", &m->rope_short));
    LM_TRY(lm__load_factors(m, "rope_factors_long.weight", &m->rope_long));
    if (!m->rope_short != !m->rope_long)
        return lm__error(LM_ERR_MODEL, "LongRoPE needs both rope_factors_short.weight and "
                                       "rope_factors_long.weight; the file has only one");
    if (m->rope_freqs && m->rope_short)
        return lm__error(LM_ERR_MODEL, "the file has both rope_freqs.weight and LongRoPE factors");
    return LM_OK;
}

lm_status lm_model_bind(lm_model *m) {
    lm_hparams *hp = &m->hp;
    const lm_gguf_tensor *te = lm_gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!te) return lm__error(LM_ERR_MODEL, "tensor 'token_embd.weight' is missing");
    if (hp->n_vocab == 0) hp->n_vocab = (int32_t)te->ne[1];
    if (te->ne[1] != hp->n_vocab || te->ne[1] > (1 << 24))
        return lm__error(LM_ERR_MODEL,
                         "tensor 'token_embd.weight' has %lld rows, but the "
                         "vocabulary has %d tokens",
                         (long long)te->ne[1], hp->n_vocab);
    LM_TRY(lm__bind(m, "token_embd.weight", hp->n_embd, hp->n_vocab, false, &m->tok_embd));
    LM_TRY(lm__bind(m, "output_norm.weight", hp->n_embd, 0, false, &m->out_norm));
    LM_TRY(lm__bind(m, "output.weight", hp->n_embd, hp->n_vocab, true, &m->output));
    if (m->output.ne[0] == 0) m->output = m->tok_embd; /* tied embeddings */
    LM_TRY(lm__bind_rope(m));
    m->layers = LM_CALLOC((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return lm__error(LM_ERR_NOMEM, "cannot allocate %d layers", hp->n_layer);
    for (int il = 0; il < hp->n_layer; il++) LM_TRY(lm__bind_layer(m, il));
    return LM_OK;
}

/* ---- weights onto the backend --------------------------------------------------------- */

/* The tensor data section: from the first tensor's data to the end of the file. */
static void lm__data_section(const lm_gguf *g, const char **base, size_t *size) {
    *base = NULL;
    *size = 0;
    int64_t n = lm_gguf_n_tensors(g);
    if (n == 0) return;
    const lm_gguf_tensor *t0 = lm_gguf_tensor_at(g, 0);
    const char *start = (const char *)t0->data - t0->offset;
    uint64_t end = 0;
    for (int64_t i = 0; i < n; i++) {
        const lm_gguf_tensor *t = lm_gguf_tensor_at(g, i);
        if (t->offset + t->n_bytes > end) end = t->offset + t->n_bytes;
    }
    *base = start;
    *size = (size_t)end;
}

static lm_status lm__load_weights(lm_model *m, size_t max_memory) {
    const char *base;
    size_t size;
    lm__data_section(m->gguf, &base, &size);
    m->n_weight_bytes = size;
    size_t avail = m->be->ops->device_memory ? m->be->ops->device_memory(m->be) : 0;
    if (max_memory && (avail == 0 || max_memory < avail)) avail = max_memory;
    if (avail && size > avail)
        return lm__error(LM_ERR_NOMEM,
                         "the model needs %.1f MiB of weights but the %s device has %.1f MiB "
                         "available",
                         size / 1048576.0, m->be->ops->name, avail / 1048576.0);
    if (size == 0) size = 1;
    if (m->be->ops->buffer_wrap_host)
        return m->be->ops->buffer_wrap_host(m->be, base, size, &m->weights);
    LM_TRY(m->be->ops->buffer_alloc(m->be, size, &m->weights));
    return m->be->ops->upload(m->be, m->weights, 0, base, size);
}

/* Hand the 2-D weights to a backend that re-lays them out for its kernels (tied
 * embeddings: tok_embd and output are two aliases of the same bytes). */
static lm_status lm__relayout_weights(lm_model *m) {
    if (!m->be->ops->weights_relayout) return LM_OK;
    enum { PER_LAYER = 7 };
    lm_tensor **w = LM_MALLOC(((size_t)m->hp.n_layer * PER_LAYER + 2) * sizeof *w);
    if (!w) return lm__error(LM_ERR_NOMEM, "cannot allocate the weight list");
    int n = 0;
    w[n++] = &m->tok_embd;
    w[n++] = &m->output;
    for (int il = 0; il < m->hp.n_layer; il++) {
        lm_layer *L = &m->layers[il];
        lm_tensor *t[PER_LAYER] = {&L->wq,     &L->wk,   &L->wv,    &L->wo,
                                   &L->w_gate, &L->w_up, &L->w_down};
        for (int k = 0; k < PER_LAYER; k++)
            if (t[k]->ne[0] > 0) w[n++] = t[k];
    }
    lm_status s = m->be->ops->weights_relayout(m->be, w, n);
    LM_FREE(w);
    return s;
}

static void lm__ftype_name(lm_model *m) {
    /* The file's own type (general.file_type: llama.cpp's, which lm_quantize_types names)
     * when it is one we know: a Q4_K_M file of a narrow model holds mostly Q5_0 tensors
     * (k-quant rows need multiples of 256); else the most common type of its 2-D tensors. */
    uint32_t ft;
    if (lm_gguf_get(m->gguf, "general.file_type") &&
        lm_gguf_get_u32(m->gguf, "general.file_type", &ft) == LM_OK) {
        int32_t n;
        const lm_quantize_type *q = lm_quantize_types(&n);
        for (int32_t i = 0; i < n; i++)
            if ((uint32_t)q[i].ftype == ft) {
                snprintf(m->ftype_name, sizeof m->ftype_name, "%s", q[i].name);
                return;
            }
    }
    int counts[LM_TYPE_COUNT] = {0};
    for (int64_t i = 0; i < lm_gguf_n_tensors(m->gguf); i++) {
        const lm_gguf_tensor *t = lm_gguf_tensor_at(m->gguf, i);
        if (t->n_dims >= 2 && (int)t->type < LM_TYPE_COUNT) counts[t->type]++;
    }
    int best = 0;
    for (int i = 1; i < LM_TYPE_COUNT; i++)
        if (counts[i] > counts[best]) best = i;
    const char *name = lm_type_get((uint32_t)best).name;
    snprintf(m->ftype_name, sizeof m->ftype_name, "%s", name ? name : "?");
}

lm_model_params lm_model_default_params(void) {
    lm_model_params p = {
        .backend = NULL, .device = -1, .n_threads = 0, .vocab_only = false, .max_memory = 0};
    return p;
}

static lm_status lm__model_load(lm_model *m, const char *path, const lm_model_params *p) {
    LM_TRY(lm_gguf_open(path, &m->gguf));
    lm_status hs = lm_hparams_load(m->gguf, &m->hp);
    /* a tokenizer-only load needs no supported architecture */
    if (hs != LM_OK && !(p->vocab_only && hs == LM_ERR_UNSUPPORTED)) return hs;
    LM_TRY(lm_vocab_load(m->gguf, &m->vocab));
    /* the tokenizer already checked <arch>.vocab_size against its token count */
    m->hp.n_vocab = lm_vocab_n_tokens(m->vocab);
    lm__ftype_name(m);
    if (p->vocab_only) return LM_OK;
    lm_backend_config cfg = {.n_threads = p->n_threads, .device = 0};
    LM_TRY(lm__device_config(p->backend, p->device, &cfg));
    LM_TRY(lm_backend_create(p->backend ? p->backend : "cpu", &cfg, &m->be));
    /* Shapes are checked against a NULL buffer first: nothing is loaded before all pass. */
    LM_TRY(lm_model_bind(m));
    LM_TRY(lm__load_weights(m, p->max_memory));
    lm_tensor *all[] = {&m->tok_embd, &m->out_norm, &m->output};
    for (size_t i = 0; i < 3; i++) all[i]->buf = m->weights;
    for (int il = 0; il < m->hp.n_layer; il++) {
        lm_tensor *t = (lm_tensor *)&m->layers[il];
        for (size_t k = 0; k < sizeof(lm_layer) / sizeof(lm_tensor); k++) t[k].buf = m->weights;
    }
    return lm__relayout_weights(m);
}

lm_status lm_model_load(const char *path, const lm_model_params *params, lm_model **out) {
    if (!path || !out) return lm__error(LM_ERR_INVALID_ARG, "lm_model_load: NULL argument");
    *out = NULL;
    lm_model_params p = params ? *params : lm_model_default_params();
    double t0 = lm__time_ms();
    lm_model *m = LM_CALLOC(1, sizeof *m);
    if (!m) return lm__error(LM_ERR_NOMEM, "cannot allocate the model");
    m->n_threads = p.n_threads;
    m->path = LM_MALLOC(strlen(path) + 1);
    if (m->path) strcpy(m->path, path);
    lm_status s =
        m->path ? lm__model_load(m, path, &p) : lm__error(LM_ERR_NOMEM, "cannot allocate the path");
    if (s != LM_OK) {
        if (strncmp(lm_last_error(), path, strlen(path)) != 0) lm__error_prefix(path);
        lm_model_free(m);
        return s;
    }
    m->t_load_ms = lm__time_ms() - t0;
    *out = m;
    return LM_OK;
}

void lm_model_free(lm_model *m) {
    if (!m) return;
    if (m->be) {
        if (m->weights) m->be->ops->buffer_free(m->be, m->weights);
        lm_backend_destroy(m->be);
    }
    LM_FREE(m->layers);
    LM_FREE(m->rope_freqs);
    LM_FREE(m->rope_short);
    LM_FREE(m->rope_long);
    lm_vocab_free(m->vocab);
    lm_gguf_close(m->gguf);
    LM_FREE(m->path);
    LM_FREE(m);
}
