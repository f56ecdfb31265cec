/* End to end on the second real model, Gemma 3 270M Q4_K_M (base model; set-up fetches it):
 * greedy answers to short factual prompts, through the C API and the CLI. Its logits are
 * checked against a numpy reference in test_families; its token ids in test_tokenizer. */
#include "helpers/model_util.h"
#include "helpers/test_util.h"
#include "lumen.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static lm_model *model;

static void setup(void) {
    /* The set-up script fetches this model; without it the suite cannot say anything. */
    cr_assert_eq(access(lm_test_gemma3_path(), R_OK), 0,
                 "Gemma 3 model not found at %s (run scripts/setup.sh)", lm_test_gemma3_path());
    lm_model_params mp = lm_model_default_params();
    mp.n_threads = 2;
    cr_assert_eq(lm_model_load(lm_test_gemma3_path(), &mp, &model), LM_OK, "%s", lm_last_error());
}

static void teardown(void) {
    lm_model_free(model);
    model = NULL;
}

TestSuite(gemma3, .init = setup, .fini = teardown, .timeout = 600);

/* Greedy continuation (BOS added, as the model's add_bos_token says), stopping at EOS. */
static void continue_greedy(const char *prompt, int32_t n_gen, char *text, size_t size) {
    lm_context_params cp = lm_context_default_params();
    cp.n_ctx = 128;
    lm_context *ctx = NULL;
    cr_assert_eq(lm_context_create(model, &cp, &ctx), LM_OK, "%s", lm_last_error());
    lm_token toks[128];
    int32_t n = lm_tokenize(model, prompt, (int32_t)strlen(prompt), toks, 96, true, false);
    cr_assert_gt(n, 1, "%s", lm_last_error());
    cr_assert_eq(toks[0], 2, "Gemma prompts start with <bos> (id 2), got %d", toks[0]);
    int32_t pos[128], seq[128] = {0};
    for (int32_t i = 0; i < n; i++) pos[i] = i;
    lm_batch b = {.n_tokens = n, .token = toks, .pos = pos, .seq_id = seq, .logits = NULL};
    cr_assert_eq(lm_decode(ctx, &b), LM_OK, "%s", lm_last_error());
    lm_token out[32];
    int32_t n_out = 0;
    for (; n_out < n_gen; n_out++) {
        out[n_out] = lm_test_argmax(lm_get_logits(ctx, -1), lm_model_n_vocab(model));
        if (lm_token_is_eog(model, out[n_out])) break;
        int32_t p = n + n_out, s = 0;
        lm_batch one = {.n_tokens = 1, .token = &out[n_out], .pos = &p, .seq_id = &s};
        cr_assert_eq(lm_decode(ctx, &one), LM_OK, "%s", lm_last_error());
    }
    int32_t len = lm_detokenize(model, out, n_out, text, (int32_t)size - 1, false);
    cr_assert_geq(len, 0);
    text[len] = '\0';
    lm_context_free(ctx);
}

/* A 270M base model completes a pattern rather than answering a bare question: the
 * prompts give it the pattern, the answer must be the fact. */
static const struct {
    const char *prompt, *answer;
} facts[] = {
    {"The capital of Germany is Berlin. The capital of Italy is Rome. The capital of France is",
     " Paris"},
    {"Paris is the capital of", " France"},
};

Test(gemma3, answers_factual_prompts) {
    for (size_t i = 0; i < sizeof facts / sizeof facts[0]; i++) {
        char text[512];
        continue_greedy(facts[i].prompt, 6, text, sizeof text);
        fprintf(stderr, "[gemma3] %s ->%s\n", facts[i].prompt, text);
        cr_expect(strncmp(text, facts[i].answer, strlen(facts[i].answer)) == 0,
                  "'%s' continued with '%s', expected '%s'", facts[i].prompt, text,
                  facts[i].answer);
    }
}

Test(gemma3, cli_run_answers) {
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s run -m '%s' -t 2 -n 4 --temp 0 -p '%s' 2>/dev/null",
             lm_test_cli(), lm_test_gemma3_path(), facts[0].prompt);
    int rc = lm_test_run(cmd, &out);
    cr_assert_eq(rc, 0, "lumen run failed: %s", out);
    cr_expect(strstr(out, "France is Paris") != NULL, "output: %s", out);
    free(out);
}

Test(gemma3, model_info) {
    cr_expect_eq(lm_model_n_vocab(model), 262144);
    cr_expect_str_eq(lm_model_arch(model), "gemma3");
    cr_expect_eq(lm_model_n_layer(model), 18);
    cr_expect_eq(lm_model_n_embd(model), 640);
}
