#include "tiny_model.h"

#include "../../runtime/gguf.h"
#include "../../runtime/quant.h"
#include "../../runtime/unicode.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lm_tiny_spec lm_tiny_default_spec(void) {
    lm_tiny_spec s = {.arch = "llama",
                      .n_embd = 64,
                      .n_layer = 2,
                      .n_head = 4,
                      .n_head_kv = 2,
                      .n_ff = 96,
                      .n_ctx = 128,
                      .wtype = LM_TYPE_Q8_0,
                      .tied = true,
                      .seed = 1,
                      .rms_eps = 1e-5f,
                      .rope_base = 10000.0f};
    return s;
}

static bool tiny_eq(const char *a, const char *b) {
    return a && b && strcmp(a, b) == 0;
}

/* ---- weights -------------------------------------------------------------------------- */

/* What the arch adds to the llama tensors (the runtime's table has the same facts; this is
 * the generator's own copy so a wrong row there shows up as a load failure here). */
typedef struct tiny_family {
    bool bias, qk_norm, post_norms, fused;
} tiny_family;

static tiny_family tiny_family_of(const char *arch) {
    tiny_family f = {false, false, false, false};
    f.bias = tiny_eq(arch, "qwen2");
    f.qk_norm = tiny_eq(arch, "qwen3") || tiny_eq(arch, "gemma3");
    f.post_norms = tiny_eq(arch, "gemma2") || tiny_eq(arch, "gemma3");
    f.fused = tiny_eq(arch, "phi3");
    return f;
}

/* One generated tensor: floats and their quantized rows. */
typedef struct tiny_buf {
    float *f;
    void *q;
    lm_type type;
    int64_t ne0, rows;
    size_t row_bytes;
    bool is2d;
} tiny_buf;

static void tiny_buf_free(tiny_buf *b) {
    free(b->f);
    free(b->q);
    memset(b, 0, sizeof *b);
}

/* Random values round-tripped through the weight type (1-D tensors stay F32), so the float
 * copy is exactly what Lumen dequantizes. */
static bool tiny_make(const lm_tiny_spec *s, lm_test_rng *rng, int64_t ne0, int64_t ne1,
                      float scale, float bias, tiny_buf *b) {
    memset(b, 0, sizeof *b);
    b->is2d = ne1 > 0;
    b->rows = b->is2d ? ne1 : 1;
    b->ne0 = ne0;
    b->type = b->is2d ? s->wtype : LM_TYPE_F32;
    size_t n = (size_t)(ne0 * b->rows);
    b->f = malloc(n * sizeof *b->f);
    b->row_bytes = lm_row_size(b->type, ne0);
    b->q = malloc(b->row_bytes * (size_t)b->rows);
    bool ok = b->f && b->q;
    if (ok) {
        lm_test_fill_normal(rng, b->f, n, scale);
        for (size_t i = 0; i < n; i++) b->f[i] += bias;
        for (int64_t r = 0; r < b->rows && ok; r++) {
            char *qr = (char *)b->q + (size_t)r * b->row_bytes;
            ok = lm_quantize_row(b->type, b->f + r * ne0, qr, ne0) == b->row_bytes;
            if (ok) lm_dequantize_row(b->type, qr, b->f + r * ne0, ne0);
        }
    }
    if (!ok) tiny_buf_free(b);
    return ok;
}

/* Write parts stacked along ne1 (or along ne0 for 1-D parts) as one tensor, with the
 * spec's faults applied to that name. */
static bool tiny_emit(const lm_tiny_spec *s, lm_gguf_writer *w, const char *name,
                      const tiny_buf *parts, int n_parts) {
    if (!w || tiny_eq(s->omit, name)) return true;
    const tiny_buf *p0 = &parts[0];
    size_t bytes = 0;
    int64_t total = 0;
    for (int i = 0; i < n_parts; i++) {
        bytes += parts[i].row_bytes * (size_t)parts[i].rows;
        total += p0->is2d ? parts[i].rows : parts[i].ne0;
    }
    char *data = malloc(bytes);
    if (!data) return false;
    for (size_t i = 0, off = 0; i < (size_t)n_parts; i++) {
        size_t nb = parts[i].row_bytes * (size_t)parts[i].rows;
        memcpy(data + off, parts[i].q, nb);
        off += nb;
    }
    int64_t ne[2] = {p0->is2d ? p0->ne0 : total, p0->is2d ? total : 1};
    lm_type type = p0->type;
    const void *src = data;
    if (tiny_eq(s->reshape, name)) {
        ne[p0->is2d ? 1 : 0]++; /* a wrong shape; zeros are fine, it never gets computed */
        src = NULL;
    }
    if (tiny_eq(s->retype, name)) {
        type = LM_TYPE_IQ4_NL;
        src = NULL;
    }
    bool ok = lm_gguf_writer_add_tensor(w, name, type, p0->is2d ? 2 : 1, ne, src) == LM_OK;
    free(data);
    return ok;
}

/* One tensor: generated, written (when w is given), its floats handed to *out. */
static bool tiny_tensor(const lm_tiny_spec *s, lm_test_rng *rng, lm_gguf_writer *w,
                        const char *name, int64_t ne0, int64_t ne1, float scale, float bias,
                        float **out) {
    tiny_buf b;
    if (!tiny_make(s, rng, ne0, ne1, scale, bias, &b)) return false;
    bool ok = tiny_emit(s, w, name, &b, 1);
    *out = b.f;
    b.f = NULL;
    tiny_buf_free(&b);
    return ok;
}

/* Several tensors generated in order and written as one fused tensor (phi3). */
static bool tiny_fused(const lm_tiny_spec *s, lm_test_rng *rng, lm_gguf_writer *w, const char *name,
                       int64_t ne0, int n, const int64_t *rows, const float *scales, float **outs) {
    tiny_buf parts[3];
    bool ok = true;
    int made = 0;
    for (; ok && made < n; made++)
        ok = tiny_make(s, rng, ne0, rows[made], scales[made], 0, &parts[made]);
    if (!ok) made--;
    ok = ok && tiny_emit(s, w, name, parts, n);
    for (int i = 0; i < made; i++) {
        outs[i] = ok ? parts[i].f : NULL;
        if (ok) parts[i].f = NULL;
        tiny_buf_free(&parts[i]);
    }
    return ok;
}

/* A [n] F32 vector of known values, written as-is (RoPE factors). */
static bool tiny_vector(const lm_tiny_spec *s, lm_gguf_writer *w, const char *name, float *v,
                        int64_t n) {
    tiny_buf b = {.f = NULL,
                  .q = v,
                  .type = LM_TYPE_F32,
                  .ne0 = n,
                  .rows = 1,
                  .row_bytes = (size_t)n * sizeof(float),
                  .is2d = false};
    return tiny_emit(s, w, name, &b, 1);
}

/* Llama-3 frequency divisors (Meta's apply_scaling: factor 8, low/high frequency factors
 * 1 and 4) with an original context of 16 instead of 8192, so that the dimensions that
 * turn fast enough to matter over a few positions are scaled too. */
static void tiny_llama3_factors(float base, int hd, float *out) {
    const double factor = 8, lo = 1, hi = 4, old_ctx = 16, pi = 3.14159265358979323846;
    for (int i = 0; i < hd / 2; i++) {
        double freq = pow(base, -2.0 * i / hd), wavelen = 2 * pi / freq;
        if (wavelen < old_ctx / hi) {
            out[i] = 1.0f;
        } else if (wavelen > old_ctx / lo) {
            out[i] = (float)factor;
        } else {
            double smooth = (old_ctx / wavelen - lo) / (hi - lo);
            out[i] = (float)(1.0 / ((1 - smooth) / factor + smooth));
        }
    }
}

/* RoPE factor vectors of the spec (none for plain specs: no random numbers are drawn). */
static bool tiny_rope_tensors(const lm_tiny_spec *s, lm_test_rng *rng, lm_tiny_model *m,
                              lm_gguf_writer *w) {
    int64_t half = m->n_rot / 2;
    m->rope_attn_factor = 1.0f;
    if (s->rope_freqs) {
        m->rope_freqs = malloc((size_t)half * sizeof(float));
        if (!m->rope_freqs) return false;
        tiny_llama3_factors(s->rope_base, m->n_rot, m->rope_freqs);
        if (!tiny_vector(s, w, "rope_freqs.weight", m->rope_freqs, half)) return false;
    }
    if (s->longrope) {
        m->rope_short = malloc((size_t)half * sizeof(float));
        m->rope_long = malloc((size_t)half * sizeof(float));
        if (!m->rope_short || !m->rope_long) return false;
        /* Phi-3's short factors stay near 1, the long ones grow to tens */
        for (int64_t i = 0; i < half; i++) m->rope_short[i] = 1.0f + lm_test_rng_uniform(rng);
        for (int64_t i = 0; i < half; i++)
            m->rope_long[i] = 1.0f + 20.0f * lm_test_rng_uniform(rng);
        double scale = (double)s->n_ctx / s->n_ctx_orig; /* Phi-3's converter's formula */
        m->rope_attn_factor =
            scale > 1 ? (float)sqrt(1 + log(scale) / log((double)s->n_ctx_orig)) : 1.0f;
        if (!tiny_vector(s, w, "rope_factors_long.weight", m->rope_long, half) ||
            !tiny_vector(s, w, "rope_factors_short.weight", m->rope_short, half))
            return false;
    }
    return true;
}

/* The attention tensors of one layer (Q, K, V, output, and the family's extras). */
static bool tiny_attn(const lm_tiny_spec *s, lm_test_rng *rng, lm_gguf_writer *w, int il,
                      lm_tiny_model *m, tiny_family fam) {
    lm_tiny_layer *L = &m->layers[il];
    int64_t e = s->n_embd, hd = m->head_dim, nq = s->n_head * hd, nkv = s->n_head_kv * hd;
    /* Weights ~0.3/sqrt(fan_in) keep activations O(1) through the residual stream; Q and K
     * are larger so attention is far from uniform and position/RoPE errors show. */
    float qk = 1.5f / sqrtf((float)e), vs = 1.0f / sqrtf((float)e), ws = 0.3f / sqrtf((float)nq);
    char n[96];
    bool ok = true;
#define TINY_T(field, suffix, ne0, ne1, scale, bias)                                               \
    snprintf(n, sizeof n, "blk.%d.%s", il, suffix);                                                \
    ok = ok && tiny_tensor(s, rng, w, n, ne0, ne1, scale, bias, &L->field)
    if (fam.fused) {
        snprintf(n, sizeof n, "blk.%d.attn_qkv.weight", il);
        const int64_t rows[3] = {nq, nkv, nkv};
        const float scales[3] = {qk, qk, vs};
        float *outs[3] = {NULL, NULL, NULL};
        ok = tiny_fused(s, rng, w, n, e, 3, rows, scales, outs);
        L->wq = outs[0], L->wk = outs[1], L->wv = outs[2];
    } else {
        TINY_T(wq, "attn_q.weight", e, nq, qk, 0);
        TINY_T(wk, "attn_k.weight", e, nkv, qk, 0);
        TINY_T(wv, "attn_v.weight", e, nkv, vs, 0);
    }
    TINY_T(wo, "attn_output.weight", nq, e, ws, 0);
    if (fam.bias) {
        TINY_T(bq, "attn_q.bias", nq, 0, 0.5f, 0);
        TINY_T(bk, "attn_k.bias", nkv, 0, 0.5f, 0);
        TINY_T(bv, "attn_v.bias", nkv, 0, 0.5f, 0);
    }
    if (fam.qk_norm) {
        TINY_T(q_norm, "attn_q_norm.weight", hd, 0, 0.3f, 2.0f);
        TINY_T(k_norm, "attn_k_norm.weight", hd, 0, 0.3f, 2.0f);
    }
    if (fam.post_norms) {
        TINY_T(attn_post_norm, "post_attention_norm.weight", e, 0, 0.1f, 1.0f);
    }
#undef TINY_T
    return ok;
}

/* The FFN tensors of one layer: gate, up (fused [gate; up] for phi3), down. */
static bool tiny_ffn(const lm_tiny_spec *s, lm_test_rng *rng, lm_gguf_writer *w, int il,
                     lm_tiny_model *m, tiny_family fam) {
    lm_tiny_layer *L = &m->layers[il];
    int64_t e = s->n_embd, ff = s->n_ff;
    float gs = 1.0f / sqrtf((float)e), ws = 0.3f / sqrtf((float)e);
    char n[96];
    bool ok = true;
    if (fam.fused) {
        snprintf(n, sizeof n, "blk.%d.ffn_up.weight", il);
        const int64_t rows[2] = {ff, ff};
        const float scales[2] = {gs, gs};
        float *outs[2] = {NULL, NULL};
        ok = tiny_fused(s, rng, w, n, e, 2, rows, scales, outs);
        L->w_gate = outs[0], L->w_up = outs[1];
    } else {
        snprintf(n, sizeof n, "blk.%d.ffn_gate.weight", il);
        ok = tiny_tensor(s, rng, w, n, e, ff, gs, 0, &L->w_gate);
        snprintf(n, sizeof n, "blk.%d.ffn_up.weight", il);
        ok = ok && tiny_tensor(s, rng, w, n, e, ff, gs, 0, &L->w_up);
    }
    snprintf(n, sizeof n, "blk.%d.ffn_down.weight", il);
    ok = ok && tiny_tensor(s, rng, w, n, ff, e, ws, 0, &L->w_down);
    if (fam.post_norms) {
        snprintf(n, sizeof n, "blk.%d.post_ffw_norm.weight", il);
        ok = ok && tiny_tensor(s, rng, w, n, e, 0, 0.1f, 1.0f, &L->ffn_post_norm);
    }
    return ok;
}

static bool tiny_spec_ok(const lm_tiny_spec *s, int32_t head_dim) {
    if (s->n_embd <= 0 || s->n_head <= 0 || s->n_head_kv <= 0 || s->n_layer <= 0 || s->n_ff <= 0 ||
        head_dim <= 0 || head_dim % 2 || (s->head_dim == 0 && s->n_embd % s->n_head))
        return false;
    if (s->longrope && (s->n_ctx_orig <= 0 || s->n_ctx <= 0)) return false;
    int32_t blck = lm_type_get(s->wtype).blck;
    return blck > 0 && s->n_embd % blck == 0 && s->n_ff % blck == 0 &&
           (s->n_head * head_dim) % blck == 0 && lm_type_computable(s->wtype);
}

/* Generates every tensor in file order; with w, also writes them. */
static bool tiny_gen(const lm_tiny_spec *s, lm_tiny_model *m, lm_gguf_writer *w) {
    memset(m, 0, sizeof *m);
    m->spec = *s;
    m->n_vocab = LM_TINY_N_VOCAB;
    m->head_dim = s->head_dim ? s->head_dim : (s->n_head > 0 ? s->n_embd / s->n_head : 0);
    m->n_rot = s->n_rot ? s->n_rot : m->head_dim;
    if (!tiny_spec_ok(s, m->head_dim) || m->n_rot % 2 || m->n_rot > m->head_dim) return false;
    int64_t e = s->n_embd;
    tiny_family fam = tiny_family_of(s->arch);
    lm_test_rng rng = {s->seed};
    m->layers = calloc((size_t)s->n_layer, sizeof *m->layers);
    if (!m->layers) return false;
    float ws = 0.3f / sqrtf((float)e);
    bool ok = tiny_tensor(s, &rng, w, "token_embd.weight", e, m->n_vocab, 1.0f, 0, &m->tok_embd);
    ok = ok && tiny_tensor(s, &rng, w, "output_norm.weight", e, 0, 0.1f, 1.0f, &m->out_norm);
    if (ok && !s->tied)
        ok = tiny_tensor(s, &rng, w, "output.weight", e, m->n_vocab, ws, 0, &m->output);
    if (s->tied) m->output = m->tok_embd;
    ok = ok && tiny_rope_tensors(s, &rng, m, w);
    char n[96];
    for (int il = 0; ok && il < s->n_layer; il++) {
        lm_tiny_layer *L = &m->layers[il];
        snprintf(n, sizeof n, "blk.%d.attn_norm.weight", il);
        ok = tiny_tensor(s, &rng, w, n, e, 0, 0.1f, 1.0f, &L->attn_norm);
        ok = ok && tiny_attn(s, &rng, w, il, m, fam);
        snprintf(n, sizeof n, "blk.%d.ffn_norm.weight", il);
        ok = ok && tiny_tensor(s, &rng, w, n, e, 0, 0.1f, 1.0f, &L->ffn_norm);
        ok = ok && tiny_ffn(s, &rng, w, il, m, fam);
    }
    return ok;
}

bool lm_tiny_build(const lm_tiny_spec *spec, lm_tiny_model *out) {
    bool ok = tiny_gen(spec, out, NULL);
    if (!ok) lm_tiny_free(out);
    return ok;
}

void lm_tiny_free(lm_tiny_model *m) {
    if (!m) return;
    if (m->output != m->tok_embd) free(m->output);
    free(m->tok_embd);
    free(m->out_norm);
    free(m->rope_freqs);
    free(m->rope_short);
    free(m->rope_long);
    for (int il = 0; m->layers && il < m->spec.n_layer; il++) {
        float **f = (float **)&m->layers[il];
        for (size_t k = 0; k < sizeof(lm_tiny_layer) / sizeof(float *); k++) free(f[k]);
    }
    free(m->layers);
    memset(m, 0, sizeof *m);
}

/* ---- keys ----------------------------------------------------------------------------- */

typedef struct tiny_kw {
    const lm_tiny_spec *s;
    lm_gguf_writer *w;
    bool ok, u32_done, str_done;
} tiny_kw;

static void kw_u32(tiny_kw *k, const char *key, uint32_t v) {
    if (tiny_eq(k->s->set_u32_key, key)) v = k->s->set_u32_val, k->u32_done = true;
    if (k->ok && !tiny_eq(k->s->omit, key)) k->ok = lm_gguf_writer_add_u32(k->w, key, v) == LM_OK;
}

static void kw_f32(tiny_kw *k, const char *key, float v) {
    if (k->ok && !tiny_eq(k->s->omit, key)) k->ok = lm_gguf_writer_add_f32(k->w, key, v) == LM_OK;
}

static void kw_str(tiny_kw *k, const char *key, const char *v) {
    if (tiny_eq(k->s->set_str_key, key)) v = k->s->set_str_val, k->str_done = true;
    if (k->ok && !tiny_eq(k->s->omit, key)) k->ok = lm_gguf_writer_add_str(k->w, key, v) == LM_OK;
}

/* "<arch>.<suffix>" */
static const char *kw_arch(const tiny_kw *k, const char *suffix) {
    static _Thread_local char buf[160];
    snprintf(buf, sizeof buf, "%s.%s", k->s->arch, suffix);
    return buf;
}

/* The spec's family options as keys. */
static void tiny_family_keys(tiny_kw *k) {
    const lm_tiny_spec *s = k->s;
    if (s->head_dim) {
        kw_u32(k, kw_arch(k, "attention.key_length"), (uint32_t)s->head_dim);
        kw_u32(k, kw_arch(k, "attention.value_length"), (uint32_t)s->head_dim);
    }
    if (s->n_rot) kw_u32(k, kw_arch(k, "rope.dimension_count"), (uint32_t)s->n_rot);
    if (s->n_swa) kw_u32(k, kw_arch(k, "attention.sliding_window"), (uint32_t)s->n_swa);
    if (s->rope_scale > 0) {
        kw_str(k, kw_arch(k, "rope.scaling.type"), "linear");
        kw_f32(k, kw_arch(k, "rope.scaling.factor"), s->rope_scale);
    }
    if (s->longrope && s->n_ctx_orig > 0) {
        double scale = (double)s->n_ctx / s->n_ctx_orig;
        float af = scale > 1 ? (float)sqrt(1 + log(scale) / log((double)s->n_ctx_orig)) : 1.0f;
        kw_f32(k, kw_arch(k, "rope.scaling.attn_factor"), af);
        kw_u32(k, kw_arch(k, "rope.scaling.original_context_length"), (uint32_t)s->n_ctx_orig);
    }
    if (s->attn_softcap > 0) kw_f32(k, kw_arch(k, "attn_logit_softcapping"), s->attn_softcap);
    if (s->final_softcap > 0) kw_f32(k, kw_arch(k, "final_logit_softcapping"), s->final_softcap);
}

static bool tiny_vocab(tiny_kw *k) {
    enum { N = LM_TINY_N_VOCAB };
    char texts[N][16];
    const char *tok[N];
    int32_t type[N];
    for (int i = 0; i < N; i++) tok[i] = texts[i], type[i] = 1;
    snprintf(texts[LM_TINY_TOK_EOT], 16, "<|endoftext|>");
    for (int b = 0; b < 256; b++) {
        int l = lm_utf8_encode(lm_byte_to_unicode((uint8_t)b), texts[LM_TINY_TOK_BYTE0 + b]);
        texts[LM_TINY_TOK_BYTE0 + b][l] = '\0';
    }
    snprintf(texts[LM_TINY_TOK_G_T], 16, "\xc4\xa0t"); /* "Ġt" */
    snprintf(texts[LM_TINY_TOK_HE], 16, "he");
    snprintf(texts[LM_TINY_TOK_G_THE], 16, "\xc4\xa0the");
    snprintf(texts[LM_TINY_TOK_IM_START], 16, "<|im_start|>");
    snprintf(texts[LM_TINY_TOK_IM_END], 16, "<|im_end|>");
    type[LM_TINY_TOK_EOT] = type[LM_TINY_TOK_IM_START] = type[LM_TINY_TOK_IM_END] = 3;
    static const char *const merges[] = {"\xc4\xa0 t", "h e", "\xc4\xa0t he"};
    kw_str(k, "tokenizer.ggml.model", "gpt2");
    kw_str(k, "tokenizer.ggml.pre", "gpt-2");
    if (k->ok && !tiny_eq(k->s->omit, "tokenizer.ggml.tokens"))
        k->ok = lm_gguf_writer_add_str_arr(k->w, "tokenizer.ggml.tokens", tok, N) == LM_OK;
    if (k->ok && !tiny_eq(k->s->omit, "tokenizer.ggml.token_type"))
        k->ok = lm_gguf_writer_add_i32_arr(k->w, "tokenizer.ggml.token_type", type, N) == LM_OK;
    if (k->ok && !tiny_eq(k->s->omit, "tokenizer.ggml.merges"))
        k->ok = lm_gguf_writer_add_str_arr(k->w, "tokenizer.ggml.merges", merges, 3) == LM_OK;
    kw_u32(k, "tokenizer.ggml.bos_token_id", LM_TINY_TOK_EOT);
    kw_u32(k, "tokenizer.ggml.eos_token_id", LM_TINY_TOK_EOT);
    return k->ok;
}

static lm_gguf_writer *tiny_writer(const lm_tiny_spec *s) {
    lm_gguf_writer *w = NULL;
    if (lm_gguf_writer_create(3, &w) != LM_OK) return NULL;
    tiny_kw k = {.s = s, .w = w, .ok = true};
    kw_str(&k, "general.architecture", s->arch);
    kw_str(&k, "general.name", "tiny");
    kw_u32(&k, kw_arch(&k, "context_length"), (uint32_t)s->n_ctx);
    kw_u32(&k, kw_arch(&k, "embedding_length"), (uint32_t)s->n_embd);
    kw_u32(&k, kw_arch(&k, "block_count"), (uint32_t)s->n_layer);
    kw_u32(&k, kw_arch(&k, "feed_forward_length"), (uint32_t)s->n_ff);
    kw_u32(&k, kw_arch(&k, "attention.head_count"), (uint32_t)s->n_head);
    kw_u32(&k, kw_arch(&k, "attention.head_count_kv"), (uint32_t)s->n_head_kv);
    kw_f32(&k, kw_arch(&k, "attention.layer_norm_rms_epsilon"), s->rms_eps);
    kw_f32(&k, kw_arch(&k, "rope.freq_base"), s->rope_base);
    tiny_family_keys(&k);
    tiny_vocab(&k);
    /* Overrides of keys the model does not normally carry (e.g. <arch>.vocab_size). */
    if (k.ok && s->set_u32_key && !k.u32_done)
        k.ok = lm_gguf_writer_add_u32(w, s->set_u32_key, s->set_u32_val) == LM_OK;
    if (k.ok && s->set_str_key && !k.str_done)
        k.ok = lm_gguf_writer_add_str(w, s->set_str_key, s->set_str_val) == LM_OK;
    lm_tiny_model m;
    memset(&m, 0, sizeof m);
    if (k.ok) k.ok = tiny_gen(s, &m, w);
    lm_tiny_free(&m);
    if (!k.ok) {
        lm_gguf_writer_free(w);
        return NULL;
    }
    return w;
}

bool lm_tiny_write(const lm_tiny_spec *spec, const char *path) {
    lm_gguf_writer *w = tiny_writer(spec);
    bool ok = w && lm_gguf_writer_write_file(w, path) == LM_OK;
    lm_gguf_writer_free(w);
    return ok;
}

bool lm_tiny_write_memory(const lm_tiny_spec *spec, void **data, size_t *size) {
    lm_gguf_writer *w = tiny_writer(spec);
    bool ok = w && lm_gguf_writer_write_memory(w, data, size) == LM_OK;
    lm_gguf_writer_free(w);
    return ok;
}
