/* The parts of lumen.h that are thin layers over the modules: model info, tokens, chat. */
#include "chat.h"
#include "model.h"

#include "lm_internal.h"
#include "quant.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

int32_t lm_model_n_vocab(const lm_model *m) {
    return m ? m->hp.n_vocab : 0;
}
int32_t lm_model_n_ctx_train(const lm_model *m) {
    return m ? m->hp.n_ctx_train : 0;
}
int32_t lm_model_n_embd(const lm_model *m) {
    return m ? m->hp.n_embd : 0;
}
int32_t lm_model_n_layer(const lm_model *m) {
    return m ? m->hp.n_layer : 0;
}
uint64_t lm_model_size(const lm_model *m) {
    return m ? m->n_weight_bytes : 0;
}
const char *lm_model_arch(const lm_model *m) {
    return m && m->hp.arch ? m->hp.arch->name : "";
}

/* snprintf's result as our contract: length written, or -needed when it did not fit. */
static int32_t lm__fit(int n, size_t size) {
    if (n < 0) return INT32_MIN;
    return (size_t)n < size ? n : -(n + 1);
}

static int32_t lm__copy_str(lm_gguf_str s, char *buf, size_t size) {
    if (s.len >= INT32_MAX) return INT32_MIN;
    if (s.len + 1 > size) return -(int32_t)(s.len + 1);
    memcpy(buf, s.data, s.len);
    buf[s.len] = '\0';
    return (int32_t)s.len;
}

int32_t lm_model_desc(const lm_model *m, char *buf, size_t size) {
    if (!m) return INT32_MIN;
    double params = 0;
    for (int64_t i = 0; i < lm_gguf_n_tensors(m->gguf); i++) {
        const lm_gguf_tensor *t = lm_gguf_tensor_at(m->gguf, i);
        params += (double)t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    }
    const char *unit = params >= 1e9 ? "B" : "M";
    double scaled = params >= 1e9 ? params / 1e9 : params / 1e6;
    return lm__fit(snprintf(buf, size, "%s %.*f%s %s", lm_model_arch(m), scaled < 10 ? 1 : 0,
                            scaled, unit, m->ftype_name),
                   size);
}

int32_t lm_model_meta_count(const lm_model *m) {
    return m ? (int32_t)lm_gguf_n_kv(m->gguf) : 0;
}

int32_t lm_model_meta_key(const lm_model *m, int32_t i, char *buf, size_t size) {
    if (!m || i < 0 || i >= lm_gguf_n_kv(m->gguf)) return -1;
    return lm__copy_str(lm_gguf_kv_at(m->gguf, i)->key, buf, size);
}

int32_t lm_model_meta_value(const lm_model *m, int32_t i, char *buf, size_t size) {
    if (!m || i < 0 || i >= lm_gguf_n_kv(m->gguf)) return -1;
    return lm_gguf_value_to_text(&lm_gguf_kv_at(m->gguf, i)->value, 8, buf, size);
}

int32_t lm_model_tensor_count(const lm_model *m) {
    return m ? (int32_t)lm_gguf_n_tensors(m->gguf) : 0;
}

lm_status lm_model_tensor_info(const lm_model *m, int32_t i, lm_tensor_desc *out) {
    if (!m || !out || i < 0 || i >= lm_gguf_n_tensors(m->gguf))
        return lm__error(LM_ERR_INVALID_ARG, "lm_model_tensor_info: bad index %d", i);
    const lm_gguf_tensor *t = lm_gguf_tensor_at(m->gguf, i);
    /* names in the file are not NUL-terminated: GGUF strings carry a length */
    static _Thread_local char name[256];
    size_t n = t->name.len < sizeof name - 1 ? t->name.len : sizeof name - 1;
    memcpy(name, t->name.data, n);
    name[n] = '\0';
    out->name = name;
    out->type = lm_type_get(t->type).name;
    out->n_dims = (int32_t)t->n_dims;
    for (int k = 0; k < 4; k++) out->ne[k] = t->ne[k];
    out->n_bytes = t->n_bytes;
    return LM_OK;
}

/* ---- tokens --------------------------------------------------------------------------- */

lm_token lm_token_bos(const lm_model *m) {
    return m ? lm_vocab_bos(m->vocab) : LM_TOKEN_NULL;
}
lm_token lm_token_eos(const lm_model *m) {
    return m ? lm_vocab_eos(m->vocab) : LM_TOKEN_NULL;
}
bool lm_token_is_eog(const lm_model *m, lm_token t) {
    return m && lm_vocab_is_eog(m->vocab, t);
}
bool lm_model_add_bos(const lm_model *m) {
    return m && lm_vocab_add_bos(m->vocab);
}

int32_t lm_tokenize(const lm_model *m, const char *text, int32_t len, lm_token *tokens,
                    int32_t n_max, bool add_special, bool parse_special) {
    if (!m) return INT32_MIN;
    return lm_vocab_tokenize(m->vocab, text, len, tokens, n_max, add_special, parse_special);
}

int32_t lm_token_to_piece(const lm_model *m, lm_token t, char *buf, int32_t size, bool special) {
    if (!m) return INT32_MIN;
    return lm_vocab_token_to_piece(m->vocab, t, buf, size, special);
}

int32_t lm_detokenize(const lm_model *m, const lm_token *tokens, int32_t n, char *buf, int32_t size,
                      bool special) {
    if (!m) return INT32_MIN;
    return lm_vocab_detokenize(m->vocab, tokens, n, buf, size, special);
}

/* ---- chat ----------------------------------------------------------------------------- */

int32_t lm_chat_apply(const lm_model *m, const char *tmpl, const lm_chat_message *msgs,
                      size_t n_msgs, bool add_assistant, char *buf, int32_t size) {
    const char *name = tmpl;
    if (!name) {
        const char *src = m ? lm_vocab_chat_template(m->vocab) : NULL;
        name = src ? lm_chat_detect(src) : m ? lm_chat_detect_vocab(m->vocab) : NULL;
        if (!name) {
            lm__error(LM_ERR_UNSUPPORTED,
                      "the model's chat template is %s; pass a known "
                      "template name (e.g. chatml)",
                      src ? "not recognised" : "missing");
            return INT32_MIN;
        }
    }
    return lm_chat_render(name, msgs, n_msgs, add_assistant, buf, size);
}
