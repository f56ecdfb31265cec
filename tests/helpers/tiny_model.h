/* A tiny model generated in memory or on disk: a GPT-2 byte-level vocabulary, random
 * weights of a chosen type, and fault controls that break one key or tensor. The spec's arch
 * picks the family's tensors and keys (llama, mistral, qwen2, qwen3, gemma, gemma2, gemma3,
 * phi3). The dequantized float weights are exposed so a test can run its own reference
 * forward pass (tests/helpers/ref_forward.h). */
#ifndef LM_TINY_MODEL_H
#define LM_TINY_MODEL_H

#include "../../kernels/common/lm_types.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lm_tiny_spec {
    const char *arch; /* general.architecture and the hyper-parameter key prefix */
    int32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
    lm_type wtype; /* type of the 2-D weights: F32, F16, Q8_0, Q4_0 or Q4_1 (norms stay F32) */
    bool tied;     /* no output.weight: the output reuses token_embd.weight */
    uint64_t seed;
    float rms_eps, rope_base;
    /* Faults (NULL: none). Names are full key names ("llama.block_count") or tensor names
     * ("blk.0.attn_q.weight"). */
    const char *omit;        /* leave this key or tensor out */
    const char *reshape;     /* write this tensor with ne1 + 1 (ne0 + 1 when 1-D), zero data */
    const char *retype;      /* write this tensor as IQ4_NL (not computable), zero data */
    const char *set_u32_key; /* override (or add) this u32 key with set_u32_val */
    uint32_t set_u32_val;
    const char *set_str_key; /* override (or add) this string key with set_str_val */
    const char *set_str_val;
    /* Family options (zero: off, the llama defaults). What the arch adds by itself: qwen2
     * Q/K/V biases; qwen3 and gemma3 per-head Q/K norms; gemma2/gemma3 post-norms; phi3 a
     * fused attn_qkv and a fused [gate; up] ffn_up. */
    int32_t head_dim;    /* 0: n_embd / n_head; else written as key_length and value_length */
    int32_t n_rot;       /* 0: head_dim; else rope.dimension_count (partial rotation) */
    int32_t n_swa;       /* attention.sliding_window (gemma3 needs it) */
    bool rope_freqs;     /* Llama-3 scaling: rope_freqs.weight by the Llama-3 formula */
    bool longrope;       /* Phi-3 LongRoPE: short/long factors, attn_factor, n_ctx_orig */
    int32_t n_ctx_orig;  /* rope.scaling.original_context_length with longrope */
    float rope_scale;    /* > 0: rope.scaling.type linear with this factor */
    float attn_softcap;  /* > 0: attn_logit_softcapping */
    float final_softcap; /* > 0: final_logit_softcapping */
} lm_tiny_spec;

/* llama, n_embd 64, 2 layers, 4 heads, 2 KV heads, ff 96, ctx 128, Q8_0, tied, seed 1. */
lm_tiny_spec lm_tiny_default_spec(void);

/* Token ids of the vocabulary. */
enum {
    LM_TINY_TOK_EOT = 0,     /* <|endoftext|> (BOS and EOS) */
    LM_TINY_TOK_BYTE0 = 1,   /* byte b is token 1 + b */
    LM_TINY_TOK_G_T = 257,   /* "Ġt" */
    LM_TINY_TOK_HE = 258,    /* "he" */
    LM_TINY_TOK_G_THE = 259, /* "Ġthe" */
    LM_TINY_TOK_IM_START = 260,
    LM_TINY_TOK_IM_END = 261,
    LM_TINY_N_VOCAB = 262
};

typedef struct lm_tiny_layer {
    /* Row-major [rows][cols] with cols = GGUF ne0: wq [n_head*hd][n_embd], wk/wv
     * [n_head_kv*hd][n_embd], wo [n_embd][n_head*hd], w_gate/w_up [n_ff][n_embd],
     * w_down [n_embd][n_ff]; norms [n_embd]. Fused files (phi3) are split here. */
    float *attn_norm, *wq, *wk, *wv, *wo, *ffn_norm, *w_gate, *w_up, *w_down;
    float *bq, *bk, *bv;                   /* [n_head*hd], [n_head_kv*hd] or NULL */
    float *q_norm, *k_norm;                /* [hd] or NULL */
    float *attn_post_norm, *ffn_post_norm; /* [n_embd] or NULL */
} lm_tiny_layer;

/* The weights exactly as Lumen sees them (quantized then dequantized). */
typedef struct lm_tiny_model {
    lm_tiny_spec spec;
    int32_t n_vocab, head_dim, n_rot;
    float *tok_embd; /* [n_vocab][n_embd] */
    float *out_norm; /* [n_embd] */
    float *output;   /* [n_vocab][n_embd]; == tok_embd when tied (not owned twice) */
    lm_tiny_layer *layers;
    float *rope_freqs;             /* [n_rot/2] RoPE divisors (spec.rope_freqs) or NULL */
    float *rope_short, *rope_long; /* [n_rot/2] LongRoPE divisors or NULL */
    float rope_attn_factor;        /* LongRoPE's scale of cos and sin (1: none) */
} lm_tiny_model;

/* Generate the weights of a spec (deterministic in spec->seed); false on allocation failure
 * or a spec the generator cannot make (bad type, dims not multiples of the block size). */
bool lm_tiny_build(const lm_tiny_spec *spec, lm_tiny_model *out);
void lm_tiny_free(lm_tiny_model *m);

/* Serialise the spec's model (with its faults) to a file / a malloc'd buffer (free()). */
bool lm_tiny_write(const lm_tiny_spec *spec, const char *path);
bool lm_tiny_write_memory(const lm_tiny_spec *spec, void **data, size_t *size);

#endif
