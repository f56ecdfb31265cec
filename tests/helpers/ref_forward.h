/* An independent float64 reference forward pass for the tiny models of every family
 * (tiny_model.h): naive loops, the full causal attention matrix, its own RMS norm, RoPE
 * (normal and NEOX pairing, linear scaling, frequency divisors, LongRoPE's scale), GELU and
 * SiLU, sliding windows and soft-capping. It shares NO code with runtime/ or kernels/: it
 * reads only the float weights of an lm_tiny_model, and what each family does is written
 * out again here from the public model descriptions (Hugging Face modeling code, llama.cpp),
 * so a wrong row in the runtime's architecture table shows up as a mismatch. */
#ifndef LM_REF_FORWARD_H
#define LM_REF_FORWARD_H

#include "tiny_model.h"

#include <stdbool.h>
#include <stdint.h>

/* Logits of every position of toks[0..n) (positions 0..n-1, one sequence) into
 * out[n * n_vocab]. n_ctx is the context size the model runs with (LongRoPE picks its
 * factors by it). False on allocation failure or an architecture it does not know. */
bool lm_ref_forward(const lm_tiny_model *m, int32_t n_ctx, const int32_t *toks, int n, double *out);

#endif
