/* Reader for tests/fixtures/ref_logits_smollm2.txt: reference first-step logits written
 * by scripts/ref/ref_logits.py (an independent float64 numpy forward pass). The format
 * is described in that script's docstring. */
#ifndef LM_REF_LOGITS_H
#define LM_REF_LOGITS_H

#include <stddef.h>
#include <stdint.h>

#define LM_REF_TOP    20 /* highest logits recorded per prompt */
#define LM_REF_PROBES 64 /* fixed token ids whose logits are recorded */

typedef struct lm_ref_prompt {
    char *text; /* prompt bytes, NUL-terminated (text_len excludes the NUL) */
    size_t text_len;
    int32_t *ids; /* the prompt's token ids (no BOS for SmolLM2) */
    int32_t n_ids;
    int32_t top_id[LM_REF_TOP]; /* best first */
    float top_logit[LM_REF_TOP];
    float probe[LM_REF_PROBES]; /* logits at lm_ref_logits.probe_ids */
    double mean, std;           /* over all n_vocab logits (population std) */
} lm_ref_prompt;

typedef struct lm_ref_logits {
    int32_t n_vocab;
    int32_t probe_ids[LM_REF_PROBES];
    lm_ref_prompt *prompts;
    int32_t n_prompts;
} lm_ref_logits;

/* Parse a fixture file. Returns 0, or -1 with a message (naming the line) in err. On
 * failure *out is left empty; lm_ref_logits_free is safe either way. */
int lm_ref_logits_load(const char *path, lm_ref_logits *out, char *err, size_t err_size);
void lm_ref_logits_free(lm_ref_logits *r);
/* The record whose prompt equals text, or NULL. */
const lm_ref_prompt *lm_ref_logits_find(const lm_ref_logits *r, const char *text);

#endif
