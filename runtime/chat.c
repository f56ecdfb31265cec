/* Chat templates of the common model families, rendered in C (no Jinja engine).
 *
 * One row per template: its name, markers recognising it in a model's Jinja source, and
 * a render function. Adding a family is one render function and one row.
 *
 * Conventions shared by all templates:
 * - No BOS text is emitted: lm_tokenize(add_special=true) adds BOS when the model asks
 *   (as llama.cpp does), so a template's leading bos_token would double it.
 * - Output is NUL-terminated. The return value is the length without the NUL, or
 *   -(length + 1) when `size` cannot hold the text and its NUL (so a caller can allocate
 *   exactly -ret bytes and call again).
 * - A NULL role or content renders as "".
 * - A model without a template gets the one whose markers are its control tokens
 *   (lm_chat_detect_vocab): Gemma 3 270M's GGUF has none but has <start_of_turn>. */
#include "chat.h"
#include "lm_internal.h"

#include <stdio.h>
#include <string.h>

typedef struct lm__out {
    char *buf;
    size_t size, len; /* len counts every byte, also those that did not fit */
} lm__out;

static void lm__put_n(lm__out *o, const char *s, size_t n) {
    if (o->len < o->size && n) {
        size_t room = o->size - o->len;
        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

static void lm__put(lm__out *o, const char *s) {
    if (s) lm__put_n(o, s, strlen(s));
}

static const char *lm__str(const char *s) {
    return s ? s : "";
}

static bool lm__role_is(const lm_chat_message *m, const char *role) {
    return strcmp(lm__str(m->role), role) == 0;
}

static bool lm__is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Jinja's |trim / Python's strip() (lstrip, rstrip when asked). */
static void lm__put_trimmed(lm__out *o, const char *s, bool left, bool right) {
    s = lm__str(s);
    size_t n = strlen(s);
    while (left && n && lm__is_space(*s)) s++, n--;
    while (right && n && lm__is_space(s[n - 1])) n--;
    lm__put_n(o, s, n);
}

/* ---- templates ------------------------------------------------------------------------ */

#define LM__SMOLLM_SYSTEM "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

/* <|im_start|>role\ncontent<|im_end|>\n ... <|im_start|>assistant\n */
static void lm__render_chatml(lm__out *o, const lm_chat_message *m, size_t n, bool add_ass) {
    for (size_t i = 0; i < n; i++) {
        lm__put(o, "<|im_start|>");
        lm__put(o, lm__str(m[i].role));
        lm__put(o, "\n");
        lm__put(o, lm__str(m[i].content));
        lm__put(o, "<|im_end|>\n");
    }
    if (add_ass) lm__put(o, "<|im_start|>assistant\n");
}

/* SmolLM2's ChatML inserts its default system prompt when the first message is not a
 * system one (and only when there is a first message). */
static void lm__render_smollm2(lm__out *o, const lm_chat_message *m, size_t n, bool add_ass) {
    if (n > 0 && !lm__role_is(&m[0], "system"))
        lm__put(o, "<|im_start|>system\n" LM__SMOLLM_SYSTEM "<|im_end|>\n");
    lm__render_chatml(o, m, n, add_ass);
}

/* <|start_header_id|>role<|end_header_id|>\n\ncontent|trim<|eot_id|> */
static void lm__render_llama3(lm__out *o, const lm_chat_message *m, size_t n, bool add_ass) {
    for (size_t i = 0; i < n; i++) {
        lm__put(o, "<|start_header_id|>");
        lm__put(o, lm__str(m[i].role));
        lm__put(o, "<|end_header_id|>\n\n");
        lm__put_trimmed(o, m[i].content, true, true);
        lm__put(o, "<|eot_id|>");
    }
    if (add_ass) lm__put(o, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

/* Gemma 3: no system role; a system text (untrimmed) + "\n\n" leads the next turn's
 * (trimmed) content, and "assistant" is called "model". Gemma 3's Jinja takes only a
 * leading system message and raises on a system message elsewhere; here any system
 * message leads the next turn (Gemma 1/2 templates, which reject system, render so too
 * in llama.cpp). */
static void lm__render_gemma(lm__out *o, const lm_chat_message *m, size_t n, bool add_ass) {
    const char *system = NULL;
    for (size_t i = 0; i < n; i++) {
        if (lm__role_is(&m[i], "system")) {
            system = lm__str(m[i].content);
            continue;
        }
        bool model = lm__role_is(&m[i], "assistant");
        lm__put(o, "<start_of_turn>");
        lm__put(o, model ? "model" : lm__str(m[i].role));
        lm__put(o, "\n");
        if (system) {
            lm__put(o, system);
            lm__put(o, "\n\n");
            system = NULL;
        }
        lm__put_trimmed(o, m[i].content, true, true);
        lm__put(o, "<end_of_turn>\n");
    }
    if (add_ass) lm__put(o, "<start_of_turn>model\n");
}

/* Mistral Instruct v0.1/v0.2: [INST] user [/INST]assistant</s>[INST] ... A system text
 * (which those templates reject) is put before the next user text, as later Mistral
 * templates do. The open [/INST] already asks for the answer: add_assistant adds nothing. */
static void lm__render_mistral(lm__out *o, const lm_chat_message *m, size_t n, bool add_ass) {
    const char *system = NULL;
    for (size_t i = 0; i < n; i++) {
        if (lm__role_is(&m[i], "system")) {
            system = lm__str(m[i].content);
        } else if (lm__role_is(&m[i], "assistant")) {
            lm__put(o, lm__str(m[i].content));
            lm__put(o, "</s>");
        } else {
            lm__put(o, "[INST] ");
            if (system) lm__put(o, system), lm__put(o, "\n\n");
            system = NULL;
            lm__put(o, lm__str(m[i].content));
            lm__put(o, " [/INST]");
        }
    }
    (void)add_ass;
}

/* Llama 2 chat: [INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] assistant </s><s>[INST] ...
 * Contents are strip()ped as a whole, so with a system prefix only the user text's end is. */
static void lm__render_llama2(lm__out *o, const lm_chat_message *m, size_t n, bool add_ass) {
    const char *system = NULL;
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (lm__role_is(&m[i], "system")) {
            system = lm__str(m[i].content);
        } else if (lm__role_is(&m[i], "assistant")) {
            lm__put(o, " ");
            lm__put_trimmed(o, m[i].content, true, true);
            lm__put(o, " </s>");
        } else {
            lm__put(o, first ? "[INST] " : "<s>[INST] ");
            if (system) {
                lm__put(o, "<<SYS>>\n");
                lm__put(o, system);
                lm__put(o, "\n<</SYS>>\n\n");
            }
            lm__put_trimmed(o, m[i].content, !system, true);
            lm__put(o, " [/INST]");
            system = NULL;
            first = false;
        }
    }
    (void)add_ass;
}

/* <|role|>\ncontent<|end|>\n ... <|assistant|>\n */
static void lm__render_phi3(lm__out *o, const lm_chat_message *m, size_t n, bool add_ass) {
    for (size_t i = 0; i < n; i++) {
        lm__put(o, "<|");
        lm__put(o, lm__str(m[i].role));
        lm__put(o, "|>\n");
        lm__put(o, lm__str(m[i].content));
        lm__put(o, "<|end|>\n");
    }
    if (add_ass) lm__put(o, "<|assistant|>\n");
}

/* ---- the table ------------------------------------------------------------------------ */

typedef void (*lm__render_fn)(lm__out *o, const lm_chat_message *m, size_t n, bool add_ass);

typedef struct lm__chat_row {
    const char *name;
    const char *markers[3]; /* all must occur in the Jinja source; NULL-ended */
    lm__render_fn render;
} lm__chat_row;

/* X(name, markers, render). Detection tries rows in order: specific variants before
 * their general family. */
#define LM__CHAT_TABLE(X)                                                                          \
    X("smollm2", ({"<|im_start|>", "named SmolLM", NULL}), lm__render_smollm2)                     \
    X("chatml", ({"<|im_start|>", NULL}), lm__render_chatml)                                       \
    X("llama3", ({"<|start_header_id|>", "<|end_header_id|>", NULL}), lm__render_llama3)           \
    X("gemma", ({"<start_of_turn>", NULL}), lm__render_gemma)                                      \
    X("phi3", ({"<|user|>", "<|end|>", NULL}), lm__render_phi3)                                    \
    X("llama2", ({"[INST]", "<<SYS>>", NULL}), lm__render_llama2)                                  \
    X("mistral", ({"[INST]", NULL}), lm__render_mistral)

#define LM__UNPAREN(...)                 __VA_ARGS__
#define LM__CHAT_ROW(name, markers, fn)  {name, LM__UNPAREN markers, fn},
#define LM__CHAT_NAME(name, markers, fn) name,

static const lm__chat_row lm__chat_table[] = {LM__CHAT_TABLE(LM__CHAT_ROW)};
static const char *const lm__chat_names[] = {LM__CHAT_TABLE(LM__CHAT_NAME) NULL};

#define LM__N_CHAT (sizeof lm__chat_table / sizeof lm__chat_table[0])

const char *lm_chat_detect(const char *model_template) {
    if (!model_template) return NULL;
    for (size_t i = 0; i < LM__N_CHAT; i++) {
        const char *const *mk = lm__chat_table[i].markers;
        while (*mk && strstr(model_template, *mk)) mk++;
        if (!*mk) return lm__chat_table[i].name;
    }
    return NULL;
}

const char *lm_chat_detect_vocab(const lm_vocab *v) {
    if (!v) return NULL;
    for (size_t i = 0; i < LM__N_CHAT; i++) {
        const char *const *mk = lm__chat_table[i].markers;
        while (*mk && lm_vocab_is_control(v, lm_vocab_find_token(v, *mk, strlen(*mk)))) mk++;
        if (!*mk) return lm__chat_table[i].name;
    }
    return NULL;
}

const char *const *lm_chat_templates(void) {
    return lm__chat_names;
}

static lm_status lm__unknown_template(const char *name) {
    char known[256] = "";
    size_t k = 0;
    for (size_t i = 0; i < LM__N_CHAT && k < sizeof known; i++)
        k +=
            (size_t)snprintf(known + k, sizeof known - k, "%s%s", i ? ", " : "", lm__chat_names[i]);
    return lm__error(LM_ERR_INVALID_ARG, "unknown chat template '%s' (known: %s)",
                     name ? name : "(null)", known);
}

int32_t lm_chat_render(const char *name, const lm_chat_message *msgs, size_t n_msgs,
                       bool add_assistant, char *buf, int32_t size) {
    const lm__chat_row *row = NULL;
    for (size_t i = 0; name && i < LM__N_CHAT; i++)
        if (strcmp(lm__chat_table[i].name, name) == 0) row = &lm__chat_table[i];
    if (!row) {
        lm__unknown_template(name);
        return INT32_MIN;
    }
    if ((n_msgs && !msgs) || size < 0 || (size > 0 && !buf)) {
        lm__error(LM_ERR_INVALID_ARG, "lm_chat_render: bad arguments");
        return INT32_MIN;
    }
    lm__out o = {buf, (size_t)size, 0};
    row->render(&o, msgs, n_msgs, add_assistant);
    if (o.len >= (size_t)INT32_MAX) {
        lm__error(LM_ERR_LIMIT, "chat template output exceeds INT32_MAX bytes");
        return INT32_MIN;
    }
    if (o.len + 1 > (size_t)size) return -(int32_t)(o.len + 1);
    buf[o.len] = '\0';
    return (int32_t)o.len;
}
