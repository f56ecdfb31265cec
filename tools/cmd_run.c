/* lumen run: prompt -> completion, streamed to stdout. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tokenize text into a malloc'd array (the size is asked for first). */
static lm_token *tokenize_alloc(const lm_model *m, const char *text, bool add_special, int32_t *n) {
    int32_t len = (int32_t)strlen(text);
    int32_t need = lm_tokenize(m, text, len, NULL, 0, add_special, true);
    if (need == INT32_MIN) return NULL;
    if (need < 0) need = -need;
    lm_token *toks = malloc(((size_t)need + 1) * sizeof *toks);
    if (!toks) return NULL;
    *n = lm_tokenize(m, text, len, toks, need + 1, add_special, true);
    if (*n < 0) {
        free(toks);
        return NULL;
    }
    return toks;
}

/* The prompt as a user turn (after an optional system message) in the chat template. */
static char *chat_wrap(const lm_model *m, const cli_opts *o) {
    lm_chat_message msgs[2];
    size_t n = 0;
    if (o->system) msgs[n++] = (lm_chat_message){"system", o->system};
    msgs[n++] = (lm_chat_message){"user", o->prompt};
    int32_t need = lm_chat_apply(m, o->chat_template, msgs, n, true, NULL, 0);
    if (need == INT32_MIN) return NULL;
    if (need < 0) need = -need;
    char *text = malloc((size_t)need + 1);
    if (text && lm_chat_apply(m, o->chat_template, msgs, n, true, text, need + 1) < 0) {
        free(text);
        text = NULL;
    }
    return text;
}

int cmd_run(const cli_opts *o) {
    if (!o->prompt) {
        fprintf(stderr, "lumen run: error: no prompt given (-p TEXT)\n");
        return 1;
    }
    lm_model *m = cli_load_model(o, false);
    if (!m) return 1;
    int rc = 1;
    lm_context *ctx = NULL;
    lm_sampler *smp = NULL;
    int32_t n_tok = 0;
    char *wrapped = o->as_chat ? chat_wrap(m, o) : NULL;
    if (o->as_chat && !wrapped) {
        cli_error(LM_ERR_UNSUPPORTED);
        lm_model_free(m);
        return 1;
    }
    lm_token *toks = tokenize_alloc(m, wrapped ? wrapped : o->prompt, true, &n_tok);
    lm_context_params cp = lm_context_default_params();
    cp.n_ctx = o->ctx;
    cp.n_threads = o->threads;
    cp.kv_type = o->kv_type;
    lm_status s;
    if (!toks) {
        cli_error(LM_ERR_TOKENIZER);
        goto done;
    }
    if (n_tok == 0) {
        fprintf(stderr, "lumen run: error: the prompt is empty\n");
        goto done;
    }
    if ((s = lm_context_create(m, &cp, &ctx)) != LM_OK ||
        (s = lm_sampler_create(&o->sp, lm_model_n_vocab(m), &smp)) != LM_OK) {
        cli_error(s);
        goto done;
    }
    if (n_tok > lm_context_n_ctx(ctx)) {
        fprintf(stderr,
                "lumen run: error: the prompt is %d tokens but the context holds %d "
                "(--ctx)\n",
                n_tok, lm_context_n_ctx(ctx));
        goto done;
    }
    cli_install_sigint();
    lm_context_set_abort(ctx, cli_abort_cb, NULL);
    for (int32_t i = 0; i < n_tok; i++) lm_sampler_accept(smp, toks[i]);
    if (!o->as_chat) {
        fputs(o->prompt, stdout);
        fflush(stdout);
    }
    lm_batch b = lm_batch_simple(toks, n_tok);
    s = lm_decode(ctx, &b);
    if (s == LM_OK) s = cli_generate(ctx, m, smp, o->n_predict, NULL, NULL, true, o->ignore_eos);
    fputc('\n', stdout);
    if (s != LM_OK && s != LM_ERR_INTERRUPTED) {
        cli_error(s);
        goto done;
    }
    if (cli_interrupted()) fprintf(stderr, "lumen: interrupted\n");
    if (!o->quiet) cli_print_perf(ctx);
    rc = 0;
done:
    free(wrapped);
    free(toks);
    lm_sampler_free(smp);
    lm_context_free(ctx);
    lm_model_free(m);
    return rc;
}
