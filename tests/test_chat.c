/* Chat templates: exact renderings (the expected texts are what the models' own Jinja
 * templates give, rendered with jinja2, minus the leading BOS), buffer contracts,
 * unknown names, and detection from real template sources. */
#include "helpers/test_util.h"
#include "chat.h"
#include "gguf.h"
#include "tokenizer.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const lm_chat_message conv_sys[] = {
    {"system", "You are terse."},
    {"user", "Hi"},
    {"assistant", " Hello! "},
    {"user", "Bye\n"},
};

typedef struct chat_case {
    const char *name;
    bool with_system, add_assistant;
    const char *want;
} chat_case;

#define SMOL_SYS                                                                                   \
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "         \
    "Face<|im_end|>\n"
#define CHATML_SYS "<|im_start|>system\nYou are terse.<|im_end|>\n"
#define CHATML_CONV                                                                                \
    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n Hello! <|im_end|>\n"                  \
    "<|im_start|>user\nBye\n<|im_end|>\n"
#define LLAMA3_SYS "<|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
#define LLAMA3_CONV                                                                                \
    "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant"         \
    "<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nBye"         \
    "<|eot_id|>"
#define LLAMA3_ASS "<|start_header_id|>assistant<|end_header_id|>\n\n"
#define PHI3_CONV  "<|user|>\nHi<|end|>\n<|assistant|>\n Hello! <|end|>\n<|user|>\nBye\n<|end|>\n"

static const chat_case cases[] = {
    {"smollm2", false, false, SMOL_SYS CHATML_CONV},
    {"smollm2", false, true, SMOL_SYS CHATML_CONV "<|im_start|>assistant\n"},
    {"smollm2", true, false, CHATML_SYS CHATML_CONV},
    {"smollm2", true, true, CHATML_SYS CHATML_CONV "<|im_start|>assistant\n"},
    {"chatml", false, false, CHATML_CONV},
    {"chatml", false, true, CHATML_CONV "<|im_start|>assistant\n"},
    {"chatml", true, true, CHATML_SYS CHATML_CONV "<|im_start|>assistant\n"},
    {"llama3", false, false, LLAMA3_CONV},
    {"llama3", false, true, LLAMA3_CONV LLAMA3_ASS},
    {"llama3", true, false, LLAMA3_SYS LLAMA3_CONV},
    {"llama3", true, true, LLAMA3_SYS LLAMA3_CONV LLAMA3_ASS},
    {"gemma", false, false,
     "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
     "<start_of_turn>user\nBye<end_of_turn>\n"},
    {"gemma", false, true,
     "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
     "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"},
    /* Gemma has no system role: its text leads the first user turn (as Gemma 3 does) */
    {"gemma", true, true,
     "<start_of_turn>user\nYou are terse.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
     "Hello!<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"},
    {"phi3", false, false, PHI3_CONV},
    {"phi3", false, true, PHI3_CONV "<|assistant|>\n"},
    {"phi3", true, true, "<|system|>\nYou are terse.<|end|>\n" PHI3_CONV "<|assistant|>\n"},
    {"mistral", false, false, "[INST] Hi [/INST] Hello! </s>[INST] Bye\n [/INST]"},
    {"mistral", false, true, "[INST] Hi [/INST] Hello! </s>[INST] Bye\n [/INST]"},
    {"mistral", true, true, "[INST] You are terse.\n\nHi [/INST] Hello! </s>[INST] Bye\n [/INST]"},
    {"llama2", false, false, "[INST] Hi [/INST] Hello! </s><s>[INST] Bye [/INST]"},
    {"llama2", true, true,
     "[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Bye [/INST]"},
};

static void check_case(const chat_case *c) {
    const lm_chat_message *m = c->with_system ? conv_sys : conv_sys + 1;
    size_t n = c->with_system ? 4 : 3;
    char buf[2048];
    int32_t len = lm_chat_render(c->name, m, n, c->add_assistant, buf, sizeof buf);
    cr_assert_geq(len, 0, "%s: %d %s", c->name, len, lm_last_error());
    cr_assert_str_eq(buf, c->want, "%s (system %d, add_assistant %d)", c->name, c->with_system,
                     c->add_assistant);
    cr_assert_eq((size_t)len, strlen(c->want));
}

Test(chat, exact_renderings) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_case(&cases[i]);
}

/* Every known name has at least one exact case above. */
Test(chat, every_template_is_covered) {
    const char *const *names = lm_chat_templates();
    int count = 0;
    for (; *names; names++, count++) {
        bool found = false;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            found |= strcmp(cases[i].name, *names) == 0;
        cr_assert(found, "template %s has no expected rendering", *names);
    }
    cr_assert_eq(count, 7);
}

Test(chat, needed_size_contract) {
    const char *const *names = lm_chat_templates();
    for (; *names; names++) {
        char buf[1024];
        int32_t len = lm_chat_render(*names, conv_sys, 4, true, buf, sizeof buf);
        cr_assert_gt(len, 0);
        cr_assert_eq(lm_chat_render(*names, conv_sys, 4, true, NULL, 0), -(len + 1));
        cr_assert_eq(lm_chat_render(*names, conv_sys, 4, true, buf, len), -(len + 1));
        char *exact = malloc((size_t)len + 1);
        memset(exact, 'x', (size_t)len + 1);
        cr_assert_eq(lm_chat_render(*names, conv_sys, 4, true, exact, len + 1), len);
        cr_assert_eq(exact[len], '\0');
        cr_assert_str_eq(exact, buf);
        free(exact);
    }
}

Test(chat, unknown_template_name) {
    char buf[64];
    cr_assert_eq(lm_chat_render("no-such-template", conv_sys, 4, true, buf, sizeof buf), INT32_MIN);
    cr_assert(strstr(lm_last_error(), "no-such-template"), "%s", lm_last_error());
    cr_assert(strstr(lm_last_error(), "chatml"), "%s", lm_last_error());
    cr_assert_eq(lm_chat_render(NULL, conv_sys, 4, true, buf, sizeof buf), INT32_MIN);
}

Test(chat, edge_messages) {
    char buf[512];
    /* no messages: SmolLM2's template inserts its system prompt only for a first message */
    cr_assert_eq(lm_chat_render("smollm2", NULL, 0, false, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "");
    cr_assert_eq(lm_chat_render("smollm2", NULL, 0, true, buf, sizeof buf), 22);
    cr_assert_str_eq(buf, "<|im_start|>assistant\n");
    lm_chat_message nulls[] = {{NULL, NULL}, {"tool", "x"}};
    cr_assert_geq(lm_chat_render("chatml", nulls, 2, false, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "<|im_start|>\n<|im_end|>\n<|im_start|>tool\nx<|im_end|>\n");
    const char *const *names = lm_chat_templates();
    for (; *names; names++)
        cr_assert_geq(lm_chat_render(*names, nulls, 2, true, buf, sizeof buf), 0, "%s", *names);
}

/* ---- detection from (excerpts of) real templates -------------------------------------- */

static const char *const smollm2_src =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|im_start|>assistant\n' }}{% endif %}";
/* Qwen2.5-Instruct (excerpt) */
static const char *const qwen_src =
    "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + "
    "messages[0]['content'] + '<|im_end|>\\n' }}{%- else %}{{- '<|im_start|>system\\nYou are "
    "Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}";
/* Llama 3 Instruct */
static const char *const llama3_src =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | "
    "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}";
/* Gemma 3 (excerpt) */
static const char *const gemma_src =
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}{%- set first_user_prefix = "
    "messages[0]['content'] + '\n\n' -%}{{ '<start_of_turn>' + role + '\n' + (first_user_prefix "
    "if loop.first else \"\") }}{{ '<end_of_turn>\n' }}";
/* Phi-3 mini */
static const char *const phi3_src =
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + "
    "message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + "
    "message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}";
/* Llama 2 chat (excerpt) */
static const char *const llama2_src =
    "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + "
    "system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% endif %}{% if "
    "message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}";
/* Mistral 7B Instruct v0.2 (excerpt) */
static const char *const mistral_src =
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] "
    "' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ "
    "message['content'] + eos_token}}{% endif %}{% endfor %}";

Test(chat, detect_real_templates) {
    cr_assert_str_eq(lm_chat_detect(smollm2_src), "smollm2");
    cr_assert_str_eq(lm_chat_detect(qwen_src), "chatml");
    cr_assert_str_eq(lm_chat_detect(llama3_src), "llama3");
    cr_assert_str_eq(lm_chat_detect(gemma_src), "gemma");
    cr_assert_str_eq(lm_chat_detect(phi3_src), "phi3");
    cr_assert_str_eq(lm_chat_detect(llama2_src), "llama2");
    cr_assert_str_eq(lm_chat_detect(mistral_src), "mistral");
    cr_assert_null(lm_chat_detect("{{ messages | tojson }}"));
    cr_assert_null(lm_chat_detect(""));
    cr_assert_null(lm_chat_detect(NULL));
}

Test(chat, detect_model_template) {
    lm_gguf *g = NULL;
    cr_assert_eq(lm_gguf_open(lm_test_model_path(), &g), LM_OK, "%s", lm_last_error());
    lm_vocab *v = NULL;
    cr_assert_eq(lm_vocab_load(g, &v), LM_OK, "%s", lm_last_error());
    lm_gguf_close(g);
    const char *src = lm_vocab_chat_template(v);
    cr_assert_not_null(src);
    cr_assert_str_eq(src, smollm2_src);
    cr_assert_str_eq(lm_chat_detect(src), "smollm2");
    /* the rendered prompt tokenizes with the ChatML specials as single tokens */
    char buf[512];
    lm_chat_message m = {"user", "Hi"};
    int32_t len = lm_chat_render("smollm2", &m, 1, true, buf, sizeof buf);
    lm_token t[128];
    int32_t n = lm_vocab_tokenize(v, buf, len, t, 128, true, true);
    cr_assert_gt(n, 0);
    cr_assert_eq(t[0], 1);       /* <|im_start|> */
    cr_assert_eq(t[n - 1], 198); /* "\n" after "assistant" */
    lm_vocab_free(v);
}

/* Gemma 3's Jinja puts the system text as it is (not trimmed) + "\n\n" before the first
 * turn's trimmed content (expected text rendered with jinja2 from Gemma 3's template). */
Test(chat, gemma_system_untrimmed) {
    const lm_chat_message m[] = {{"system", "  Be brief.\n"},
                                 {"user", " Hi "},
                                 {"assistant", " Hello! "},
                                 {"user", "Bye\n"}};
    char buf[512];
    cr_assert_geq(lm_chat_render("gemma", m, 4, true, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "<start_of_turn>user\n  Be brief.\n\n\nHi<end_of_turn>\n"
                          "<start_of_turn>model\nHello!<end_of_turn>\n"
                          "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n");
}

static const char *gemma_path(void) {
    const char *env = getenv("LUMEN_GEMMA_MODEL");
    return env && *env ? env : LM_SOURCE_DIR "/models/gemma-3-270m-q4_k_m.gguf";
}

/* Gemma 3 270M's GGUF (a base model) has no tokenizer.chat_template: the template comes from
 * its control tokens, and the rendered prompt tokenizes with them as single tokens. */
Test(chat, detect_gemma3_from_vocab) {
    if (access(gemma_path(), R_OK) != 0)
        cr_assert_fail("model not found at %s (run scripts/setup.sh)", gemma_path());
    lm_model_params p = lm_model_default_params();
    p.vocab_only = true;
    lm_model *model = NULL;
    cr_assert_eq(lm_model_load(gemma_path(), &p, &model), LM_OK, "%s", lm_last_error());
    lm_chat_message m = {"user", "What is the capital of France?"};
    char buf[256];
    int32_t len = lm_chat_apply(model, NULL, &m, 1, true, buf, sizeof buf);
    cr_assert_gt(len, 0, "%s", lm_last_error());
    cr_assert_str_eq(buf, "<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n"
                          "<start_of_turn>model\n");
    lm_token t[64];
    int32_t n = lm_tokenize(model, buf, len, t, 64, true, true);
    cr_assert_gt(n, 6);
    cr_assert_eq(t[0], 2);   /* <bos> */
    cr_assert_eq(t[1], 105); /* <start_of_turn> */
    cr_assert_eq(t[n - 3], 105);
    cr_assert_eq(t[n - 1], 107); /* "\n", a user-defined token */
    lm_model_free(model);

    lm_gguf *g = NULL;
    cr_assert_eq(lm_gguf_open(gemma_path(), &g), LM_OK, "%s", lm_last_error());
    lm_vocab *v = NULL;
    cr_assert_eq(lm_vocab_load(g, &v), LM_OK, "%s", lm_last_error());
    lm_gguf_close(g);
    cr_assert_null(lm_vocab_chat_template(v));
    cr_assert_str_eq(lm_chat_detect_vocab(v), "gemma");
    lm_vocab_free(v);
}

/* The vocab guess takes the first table row whose markers are all control tokens. */
Test(chat, detect_from_vocab_smollm2) {
    lm_gguf *g = NULL;
    cr_assert_eq(lm_gguf_open(lm_test_model_path(), &g), LM_OK, "%s", lm_last_error());
    lm_vocab *v = NULL;
    cr_assert_eq(lm_vocab_load(g, &v), LM_OK, "%s", lm_last_error());
    lm_gguf_close(g);
    cr_assert_str_eq(lm_chat_detect_vocab(v), "chatml"); /* "named SmolLM" is no token */
    cr_assert_null(lm_chat_detect_vocab(NULL));
    lm_vocab_free(v);
}
