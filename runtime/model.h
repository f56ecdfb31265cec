/* Model: hyper-parameters per architecture family, and the weights on a backend. */
#ifndef LM_MODEL_H
#define LM_MODEL_H

#include "backend.h"
#include "gguf.h"
#include "tokenizer.h"

#include <stdbool.h>

#define LM_MAX_LAYERS 512

typedef enum lm_ffn_act {
    LM_ACT_SILU, /* SwiGLU: silu(gate) * up */
    LM_ACT_GELU, /* GeGLU: gelu_tanh(gate) * up */
} lm_ffn_act;

/* How an architecture family differs: fields, not copies of the forward loop. */
typedef struct lm_arch {
    const char *name;       /* general.architecture */
    lm_rope_mode rope_mode; /* pairing of rotated dimensions */
    lm_ffn_act act;         /* activation of the gated FFN */
    bool qkv_bias;          /* attn_q/k/v have .bias tensors (qwen2) */
    bool qk_norm;           /* per-head RMS norm of q and k before RoPE (qwen3, gemma3) */
    bool post_norms;        /* norms on the attention and FFN outputs (gemma2/3) */
    bool embd_scale;        /* embeddings multiplied by sqrt(n_embd) (gemma) */
    bool fused_gate_up;     /* ffn_up holds [gate; up], 2 * n_ff rows (phi3) */
    bool ignore_swa;        /* a sliding_window key is not used (phi3, as llama.cpp) */
    int32_t swa_pattern;    /* layer il slides iff il % pattern < pattern - 1; 0: none */
    int32_t swa_default;    /* window when the file has none; 0: the key is required */
    float rope_base_swa;    /* sliding layers' own RoPE base, unscaled; 0: as global */
    int32_t big_n_layer;    /* layer count of the variant scaling q by 1/sqrt(n_embd/n_head) */
    float attn_softcap;     /* defaults when the file has no softcapping keys */
    float final_softcap;
} lm_arch;

typedef struct lm_hparams {
    const lm_arch *arch;
    int32_t n_vocab;
    int32_t n_ctx_train;
    int32_t n_embd;
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t head_dim; /* per head, for Q, K and V (key_length == value_length) */
    int32_t n_ff;
    int32_t n_rot;
    float rms_eps;
    float rope_base;
    float rope_scale;       /* linear: positions multiplied by this (1 = none) */
    float rope_base_swa;    /* sliding layers */
    float rope_scale_swa;   /* sliding layers */
    float rope_attn_factor; /* LongRoPE: rotated q, k dimensions scaled by this (1 = none) */
    int32_t n_ctx_orig;     /* context of the short LongRoPE factors */
    int32_t n_swa;          /* sliding window of the sliding layers; 0 = none */
    float attn_scale;       /* on q . k, before the softcap */
    float attn_softcap;     /* 0 = none */
    float final_softcap;    /* on the logits; 0 = none */
} lm_hparams;

/* Layer il uses the sliding window (and the sliding RoPE base). */
static inline bool lm_hparams_swa(const lm_hparams *hp, int il) {
    int p = hp->arch->swa_pattern;
    return hp->n_swa > 0 && p > 0 && il % p < p - 1;
}

/* Tensors only (lm__model_load walks it as an array). Fused files (attn_qkv, phi3's
 * ffn_up) are bound as row views of the one tensor, so every field is a plain matrix. */
typedef struct lm_layer {
    lm_tensor attn_norm;
    lm_tensor wq, wk, wv, wo;
    lm_tensor bq, bk, bv;     /* present when arch->qkv_bias */
    lm_tensor q_norm, k_norm; /* [head_dim], when arch->qk_norm */
    lm_tensor attn_post_norm; /* when arch->post_norms */
    lm_tensor ffn_norm;
    lm_tensor w_gate, w_up, w_down;
    lm_tensor ffn_post_norm; /* when arch->post_norms */
} lm_layer;
_Static_assert(sizeof(lm_layer) % sizeof(lm_tensor) == 0, "lm_layer holds lm_tensors only");

struct lm_model {
    char *path;
    lm_gguf *gguf;
    lm_vocab *vocab;
    lm_backend *be;
    lm_buffer *weights; /* the whole tensor data section on the backend */
    lm_hparams hp;
    lm_tensor tok_embd, out_norm, output; /* output aliases tok_embd when tied */
    lm_layer *layers;
    /* RoPE frequency divisors [n_rot/2] on the host (the rope op takes a host pointer):
     * Llama-3 scaling (rope_freqs) or Phi-3 LongRoPE (short within n_ctx_orig, else long). */
    float *rope_freqs, *rope_short, *rope_long;
    uint64_t n_weight_bytes;
    int32_t n_threads;
    double t_load_ms;
    char ftype_name[16];
};

/* Read and check hyper-parameters (exposed for tests). Message names the key at fault. */
lm_status lm_hparams_load(const lm_gguf *g, lm_hparams *hp);
const lm_arch *lm_arch_find(const char *name);
/* Check and bind every tensor of m->gguf against m->hp as views of a NULL buffer (the
 * load step before any weight reaches the backend; exposed for tests and tools). */
lm_status lm_model_bind(lm_model *m);

#endif
