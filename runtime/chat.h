/* Chat templates of the common model families, rendered in C (no Jinja engine). */
#ifndef LM_CHAT_H
#define LM_CHAT_H

#include "lumen.h"
#include "tokenizer.h"

/* Known template name for a model's tokenizer.chat_template (NULL if not recognised). */
const char *lm_chat_detect(const char *model_template);
/* For a model without tokenizer.chat_template (e.g. Gemma 3 270M, a base model): the first
 * template whose markers are all control tokens of the vocab, or NULL. */
const char *lm_chat_detect_vocab(const lm_vocab *v);
/* Render with template `name`; contract as lm_chat_apply. */
int32_t lm_chat_render(const char *name, const lm_chat_message *msgs, size_t n_msgs,
                       bool add_assistant, char *buf, int32_t size);

#endif
