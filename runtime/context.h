/* A context: KV cache slots per sequence, scratch tensors, and the logits of the last
 * batch. Everything is allocated at creation; nothing per token. */
#ifndef LM_CONTEXT_H
#define LM_CONTEXT_H

#include "model.h"

/* Called after each layer with the hidden state x [n_embd, n_tok] (for `lumen verify`). */
typedef void (*lm_layer_hook)(int layer, const lm_tensor *x, void *user);

typedef struct lm_scratch {
    lm_tensor x, xn, q, k, v, att, o, g, u; /* F32, ne[1] = n_batch */
    lm_tensor xs, logits;                   /* F32, ne[1] = n_out_max */
    lm_tensor ids, pos, seq, out_idx;       /* I32 [n_batch] */
} lm_scratch;

struct lm_context {
    lm_model *model;
    lm_backend *be;
    int32_t n_ctx, n_batch, n_seq;
    lm_buffer *kv_buf, *scratch_buf;
    lm_tensor *k_cache, *v_cache; /* per layer: F16 or Q8_0 [head_dim, n_head_kv, n_ctx, n_seq] */
    lm_scratch s;
    const float *rope_factors; /* RoPE divisors for this n_ctx (model-owned) or NULL */
    int32_t *seq_len;          /* host: cached positions per sequence */
    int32_t *seq_saved;        /* seq_len before the running decode, restored if it fails */
    int32_t *batch_pos;        /* [2 * batch_cap]: positions then sequence ids of a batch */
    int32_t batch_cap;
    int32_t n_out_max;  /* logits rows computed on the device at once */
    float *logits;      /* host: [n_out][n_vocab] of the last batch */
    int32_t n_logits;   /* rows of logits valid */
    int32_t logits_cap; /* rows allocated */
    int32_t *host_i32;  /* staging for ids/pos/seq/out_idx: 4 * n_batch */
    lm_abort_fn abort_fn;
    void *abort_user;
    lm_layer_hook hook;
    void *hook_user;
    lm_layer_fn layer_fn; /* lm_context_set_layer_fn: host copies through hook (inspect.c) */
    void *layer_user;
    lm_perf perf;
};

/* Run the layers over n_tok tokens whose ids/pos/seq are in the scratch; with want_out, also
 * the final norm that the output head reads. */
lm_status lm_forward(lm_context *c, int32_t n_tok, bool want_out);
/* Logits [n_vocab, n] into s.logits for the rows out_idx[r0 .. r0 + n), n <= n_out_max. */
lm_status lm_forward_logits(lm_context *c, int32_t r0, int32_t n);

#endif
