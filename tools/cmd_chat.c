/* lumen chat: interactive multi-turn chat with the model's template. Reads one user turn
 * per line from stdin (a terminal or a pipe); /exit or end of input quits. The KV cache
 * keeps the conversation: each turn decodes only what is new. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct chat_state {
    lm_chat_message *msgs;
    size_t n_msgs, cap_msgs;
    lm_token *cached; /* tokens in sequence 0 of the KV cache */
    int32_t n_cached;
    lm_token *buf; /* scratch of n_ctx tokens */
    int32_t n_ctx;
} chat_state;

static int chat_push(chat_state *st, const char *role, const char *content) {
    if (st->n_msgs == st->cap_msgs) {
        size_t cap = st->cap_msgs ? 2 * st->cap_msgs : 8;
        lm_chat_message *p = realloc(st->msgs, cap * sizeof *p);
        if (!p) return 1;
        st->msgs = p;
        st->cap_msgs = cap;
    }
    char *c = strdup(content);
    if (!c) return 1;
    st->msgs[st->n_msgs].role = role;
    st->msgs[st->n_msgs].content = c;
    st->n_msgs++;
    return 0;
}

static void chat_pop(chat_state *st) {
    if (st->n_msgs) free((char *)st->msgs[--st->n_msgs].content);
}

/* Render the conversation and tokenize it into st->buf; returns the count or -1. */
static int32_t chat_render(chat_state *st, const lm_model *m, const char *tmpl) {
    int32_t need = lm_chat_apply(m, tmpl, st->msgs, st->n_msgs, true, NULL, 0);
    if (need == INT32_MIN) return -1;
    if (need < 0) need = -need;
    char *text = malloc((size_t)need + 1);
    if (!text) return -1;
    int32_t len = lm_chat_apply(m, tmpl, st->msgs, st->n_msgs, true, text, need + 1);
    int32_t n = len >= 0 ? lm_tokenize(m, text, len, st->buf, st->n_ctx, true, true) : -1;
    free(text);
    if (n < 0) {
        fprintf(stderr,
                "lumen chat: error: the conversation no longer fits the context (%d "
                "tokens); use --ctx or /clear\n",
                st->n_ctx);
        return -1;
    }
    return n;
}

/* Decode what is new since the cached prefix; leaves logits for the last token. */
static lm_status chat_feed(chat_state *st, lm_context *ctx, int32_t n) {
    int32_t keep = 0;
    while (keep < st->n_cached && keep < n && st->cached[keep] == st->buf[keep]) keep++;
    if (keep == n) keep = n - 1; /* at least one token to get fresh logits */
    /* an interrupted decode leaves the cache shorter than what was generated */
    if (keep > lm_kv_seq_len(ctx, 0)) keep = lm_kv_seq_len(ctx, 0);
    lm_status s = lm_kv_seq_trim(ctx, 0, keep);
    if (s != LM_OK) return s;
    lm_batch b = lm_batch_simple(st->buf + keep, n - keep);
    s = lm_decode(ctx, &b);
    if (s != LM_OK) return s;
    memcpy(st->cached, st->buf, (size_t)n * sizeof *st->buf);
    st->n_cached = n;
    return LM_OK;
}

static int chat_turn(chat_state *st, lm_context *ctx, const lm_model *m, lm_sampler *smp,
                     const cli_opts *o) {
    int32_t n = chat_render(st, m, o->chat_template);
    if (n < 0) return 1;
    lm_status s = chat_feed(st, ctx, n);
    if (s != LM_OK) {
        cli_error(s);
        return 1;
    }
    int32_t room = st->n_ctx - st->n_cached, made = 0;
    int32_t limit = o->n_predict < 0 || o->n_predict > room ? room : o->n_predict;
    s = cli_generate(ctx, m, smp, limit, st->cached + st->n_cached, &made, true, o->ignore_eos);
    fputc('\n', stdout);
    fflush(stdout);
    st->n_cached += made;
    if (s != LM_OK) {
        cli_error(s);
        return 1;
    }
    int32_t need = lm_detokenize(m, st->cached + st->n_cached - made, made, NULL, 0, false);
    size_t cap = (size_t)(need < 0 ? -need : need) + 1;
    char *reply = malloc(cap);
    if (!reply) return 1;
    int32_t len =
        lm_detokenize(m, st->cached + st->n_cached - made, made, reply, (int32_t)cap, false);
    reply[len > 0 ? len : 0] = '\0';
    int rc = chat_push(st, "assistant", reply);
    free(reply);
    return rc;
}

static char *read_line(FILE *in) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, in);
    if (n < 0) {
        free(line);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
    return line;
}

/* Returns the number of turns that failed. */
static int chat_loop(chat_state *st, lm_context *ctx, const lm_model *m, lm_sampler *smp,
                     const cli_opts *o) {
    int failed = 0;
    bool tty = isatty(STDIN_FILENO);
    if (tty) fprintf(stderr, "lumen chat: type a message; /exit quits, /clear forgets.\n");
    for (;;) {
        if (tty) {
            fputs("> ", stdout);
            fflush(stdout);
        }
        cli_clear_interrupt();
        char *line = read_line(stdin);
        if (!line || !strcmp(line, "/exit")) {
            free(line);
            break;
        }
        if (!strcmp(line, "/clear")) {
            while (st->n_msgs > (o->system ? 1u : 0u)) chat_pop(st);
        } else if (*line) {
            if (chat_push(st, "user", line) == 0 && chat_turn(st, ctx, m, smp, o) != 0) {
                chat_pop(st); /* the turn failed: forget the message */
                failed++;
            }
        }
        free(line);
    }
    return failed;
}

int cmd_chat(const cli_opts *o) {
    lm_model *m = cli_load_model(o, false);
    if (!m) return 1;
    lm_context *ctx = NULL;
    lm_sampler *smp = NULL;
    chat_state st = {0};
    int rc = 1;
    lm_context_params cp = lm_context_default_params();
    cp.n_ctx = o->ctx;
    cp.n_threads = o->threads;
    cp.kv_type = o->kv_type;
    lm_status s;
    if ((s = lm_context_create(m, &cp, &ctx)) != LM_OK ||
        (s = lm_sampler_create(&o->sp, lm_model_n_vocab(m), &smp)) != LM_OK) {
        cli_error(s);
        goto done;
    }
    /* check the template before the first turn, so a bad name fails at once */
    lm_chat_message probe = {"user", "hi"};
    if (lm_chat_apply(m, o->chat_template, &probe, 1, true, NULL, 0) == INT32_MIN) {
        cli_error(LM_ERR_UNSUPPORTED);
        goto done;
    }
    st.n_ctx = lm_context_n_ctx(ctx);
    st.cached = malloc((size_t)st.n_ctx * sizeof *st.cached);
    st.buf = malloc((size_t)st.n_ctx * sizeof *st.buf);
    if (!st.cached || !st.buf || (o->system && chat_push(&st, "system", o->system))) goto done;
    cli_install_sigint();
    lm_context_set_abort(ctx, cli_abort_cb, NULL);
    int failed = chat_loop(&st, ctx, m, smp, o);
    if (!o->quiet) cli_print_perf(ctx);
    rc = failed ? 1 : 0;
done:
    while (st.n_msgs) chat_pop(&st);
    free(st.msgs);
    free(st.cached);
    free(st.buf);
    lm_sampler_free(smp);
    lm_context_free(ctx);
    lm_model_free(m);
    return rc;
}
