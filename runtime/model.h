/* Model: hyper-parameters per architecture family, and the weights on a backend. */
#ifndef LM_MODEL_H
#define LM_MODEL_H

#include "backend.h"
#include "gguf.h"
#include "tokenizer.h"

#include <stdbool.h>

#define LM_MAX_LAYERS 512

/* How an architecture family differs: fields, not copies of the forward loop. */
typedef struct lm_arch {
    const char *name;       /* general.architecture */
    lm_rope_mode rope_mode; /* pairing of rotated dimensions */
    bool qkv_bias;          /* attn_q/k/v have .bias tensors */
} lm_arch;

typedef struct lm_hparams {
    const lm_arch *arch;
    int32_t n_vocab;
    int32_t n_ctx_train;
    int32_t n_embd;
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t head_dim; /* per head, for Q, K and V */
    int32_t n_ff;
    int32_t n_rot;
    float rms_eps;
    float rope_base;
    float rope_scale; /* linear: positions multiplied by this (1 = none) */
} lm_hparams;

typedef struct lm_layer {
    lm_tensor attn_norm;
    lm_tensor wq, wk, wv, wo;
    lm_tensor bq, bk, bv; /* present when arch->qkv_bias */
    lm_tensor ffn_norm;
    lm_tensor w_gate, w_up, w_down;
} lm_layer;

struct lm_model {
    char *path;
    lm_gguf *gguf;
    lm_vocab *vocab;
    lm_backend *be;
    lm_buffer *weights; /* the whole tensor data section on the backend */
    lm_hparams hp;
    lm_tensor tok_embd, out_norm, output; /* output aliases tok_embd when tied */
    lm_layer *layers;
    uint64_t n_weight_bytes;
    int32_t n_threads;
    double t_load_ms;
    char ftype_name[16];
};

/* Read and check hyper-parameters (exposed for tests). Message names the key at fault. */
lm_status lm_hparams_load(const lm_gguf *g, lm_hparams *hp);
const lm_arch *lm_arch_find(const char *name);

#endif
