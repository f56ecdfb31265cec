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

/* One tensor: random values, round-tripped through the weight type so the float copy is
 * exactly what Lumen dequantizes; added to the writer (when given) with the spec's faults. */
static bool tiny_tensor(const lm_tiny_spec *s, lm_test_rng *rng, lm_gguf_writer *w,
                        const char *name, int64_t ne0, int64_t ne1, float scale, float bias,
                        float **out) {
    bool is2d = ne1 > 0;
    int64_t rows = is2d ? ne1 : 1;
    size_t n = (size_t)(ne0 * rows);
    lm_type type = is2d ? s->wtype : LM_TYPE_F32; /* 1-D tensors must be F32 */
    float *f = malloc(n * sizeof *f);
    size_t row_bytes = lm_row_size(type, ne0);
    void *q = malloc(row_bytes * (size_t)rows);
    bool ok = f && q;
    if (ok) {
        lm_test_fill_normal(rng, f, n, scale);
        for (size_t i = 0; i < n; i++) f[i] += bias;
        for (int64_t r = 0; r < rows && ok; r++) {
            char *qr = (char *)q + (size_t)r * row_bytes;
            ok = lm_quantize_row(type, f + r * ne0, qr, ne0) == row_bytes;
            if (ok) lm_dequantize_row(type, qr, f + r * ne0, ne0);
        }
    }
    if (ok && w && !tiny_eq(s->omit, name)) {
        int64_t ne[2] = {ne0, is2d ? ne1 : 1};
        const void *data = q;
        if (tiny_eq(s->reshape, name)) {
            ne[is2d ? 1 : 0]++; /* a wrong shape; zeros are fine, it never gets computed */
            data = NULL;
        }
        if (tiny_eq(s->retype, name)) {
            type = LM_TYPE_IQ4_NL;
            data = NULL;
        }
        ok = lm_gguf_writer_add_tensor(w, name, type, is2d ? 2 : 1, ne, data) == LM_OK;
    }
    free(q);
    if (!ok || !out) {
        free(f);
        f = NULL;
    }
    if (out) *out = f;
    return ok;
}

/* Generates every tensor in file order; with w, also writes them. */
static bool tiny_gen(const lm_tiny_spec *s, lm_tiny_model *m, lm_gguf_writer *w) {
    memset(m, 0, sizeof *m);
    m->spec = *s;
    m->n_vocab = LM_TINY_N_VOCAB;
    if (s->n_embd <= 0 || s->n_head <= 0 || s->n_head_kv <= 0 || s->n_layer <= 0 || s->n_ff <= 0 ||
        s->n_embd % s->n_head)
        return false;
    int32_t blck = lm_type_get(s->wtype).blck;
    if (blck <= 0 || s->n_embd % blck || s->n_ff % blck || !lm_type_computable(s->wtype))
        return false;
    m->head_dim = s->n_embd / s->n_head;
    int64_t e = s->n_embd, nq = (int64_t)s->n_head * m->head_dim;
    int64_t nkv = (int64_t)s->n_head_kv * m->head_dim, ff = s->n_ff;
    lm_test_rng rng = {s->seed};
    /* Weights ~0.3/sqrt(fan_in) keep activations O(1) through the residual stream; Q and K
     * are larger so attention is far from uniform and position/RoPE errors show. */
    float ws = 0.3f / sqrtf((float)e), qk = 1.5f / sqrtf((float)e);
    m->layers = calloc((size_t)s->n_layer, sizeof *m->layers);
    if (!m->layers) return false;
    bool ok = tiny_tensor(s, &rng, w, "token_embd.weight", e, m->n_vocab, 1.0f, 0, &m->tok_embd);
    ok = ok && tiny_tensor(s, &rng, w, "output_norm.weight", e, 0, 0.1f, 1.0f, &m->out_norm);
    if (ok && !s->tied)
        ok = tiny_tensor(s, &rng, w, "output.weight", e, m->n_vocab, ws, 0, &m->output);
    if (s->tied) m->output = m->tok_embd;
    char n[96];
    for (int il = 0; ok && il < s->n_layer; il++) {
        lm_tiny_layer *L = &m->layers[il];
#define TINY_T(field, suffix, ne0, ne1, scale, bias)                                               \
    snprintf(n, sizeof n, "blk.%d.%s", il, suffix);                                                \
    ok = ok && tiny_tensor(s, &rng, w, n, ne0, ne1, scale, bias, &L->field)
        TINY_T(attn_norm, "attn_norm.weight", e, 0, 0.1f, 1.0f);
        TINY_T(wq, "attn_q.weight", e, nq, qk, 0);
        TINY_T(wk, "attn_k.weight", e, nkv, qk, 0);
        TINY_T(wv, "attn_v.weight", e, nkv, 1.0f / sqrtf((float)e), 0);
        TINY_T(wo, "attn_output.weight", nq, e, ws, 0);
        TINY_T(ffn_norm, "ffn_norm.weight", e, 0, 0.1f, 1.0f);
        TINY_T(w_gate, "ffn_gate.weight", e, ff, 1.0f / sqrtf((float)e), 0);
        TINY_T(w_up, "ffn_up.weight", e, ff, 1.0f / sqrtf((float)e), 0);
        TINY_T(w_down, "ffn_down.weight", ff, e, ws, 0);
#undef TINY_T
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
