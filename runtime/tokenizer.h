/* Tokenizers: GPT-2 style byte-level BPE (tokenizer.ggml.model = gpt2, PCRE2 pre-tokenizer
 * chosen by tokenizer.ggml.pre) and SentencePiece style (= llama: scores, byte fallback,
 * "\u2581" for spaces). Loaded from GGUF metadata. */
#ifndef LM_TOKENIZER_H
#define LM_TOKENIZER_H

#include "gguf.h"
#include "lumen.h"

typedef struct lm_vocab lm_vocab;

/* Read tokenizer.ggml.* from g (everything it needs is copied: g may be closed after).
 * Errors name the missing or malformed key. */
lm_status lm_vocab_load(const lm_gguf *g, lm_vocab **out);
void lm_vocab_free(lm_vocab *v);

int32_t lm_vocab_n_tokens(const lm_vocab *v);
lm_token lm_vocab_bos(const lm_vocab *v);
lm_token lm_vocab_eos(const lm_vocab *v);
bool lm_vocab_add_bos(const lm_vocab *v);
bool lm_vocab_is_eog(const lm_vocab *v, lm_token t);
/* tokenizer.chat_template or NULL. */
const char *lm_vocab_chat_template(const lm_vocab *v);
/* Id of the token whose text is exactly text[0..len), LM_TOKEN_NULL if none. */
lm_token lm_vocab_find_token(const lm_vocab *v, const char *text, size_t len);
/* True for CONTROL tokens (rendered only when special text is asked for). */
bool lm_vocab_is_control(const lm_vocab *v, lm_token t);

/* Same contracts as lm_tokenize / lm_token_to_piece / lm_detokenize in lumen.h. */
int32_t lm_vocab_tokenize(const lm_vocab *v, const char *text, int32_t len, lm_token *out,
                          int32_t n_max, bool add_special, bool parse_special);
int32_t lm_vocab_token_to_piece(const lm_vocab *v, lm_token t, char *buf, int32_t size,
                                bool special);
int32_t lm_vocab_detokenize(const lm_vocab *v, const lm_token *tokens, int32_t n, char *buf,
                            int32_t size, bool special);

#endif
