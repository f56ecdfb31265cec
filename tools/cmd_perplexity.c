/* lumen perplexity: how well the model predicts a text, by llama.cpp's method. The text is
 * cut into non-overlapping windows of n_ctx tokens (BOS first when the model adds one);
 * each window is evaluated from an empty cache and only its second half is scored, so
 * every scored token sees at least n_ctx/2 tokens of context. PPL = exp(mean NLL). */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct ppl_acc {
    double sum, sum2; /* of the per-token negative log-likelihoods */
    int64_t n;
} ppl_acc;

/* -log softmax(logits)[target], in double. */
static double token_nll(const float *logits, int32_t n_vocab, lm_token target) {
    float max = logits[0];
    for (int32_t i = 1; i < n_vocab; i++)
        if (logits[i] > max) max = logits[i];
    double sum = 0;
    for (int32_t i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - max);
    return log(sum) + max - logits[target];
}

static double acc_ppl(const ppl_acc *a) {
    return a->n ? exp(a->sum / (double)a->n) : 0.0;
}

/* Standard error of the PPL from the spread of the NLLs (delta method, as llama.cpp). */
static double acc_ppl_err(const ppl_acc *a) {
    if (a->n < 2) return 0.0;
    double mean = a->sum / (double)a->n;
    double var = a->sum2 / (double)a->n - mean * mean;
    return var > 0 ? acc_ppl(a) * sqrt(var / (double)(a->n - 1)) : 0.0;
}

typedef struct ppl_run {
    lm_model *m;
    lm_context *ctx;
    const lm_token *toks;
    int32_t n_ctx, n_batch, n_vocab;
    lm_token bos; /* LM_TOKEN_NULL when the model adds none */
    lm_token *buf;
    int8_t *want;
} ppl_run;

/* Evaluate window c and add its second half's NLLs to acc. */
static lm_status score_window(ppl_run *r, int32_t c, ppl_acc *acc) {
    const int32_t start = c * r->n_ctx, first = r->n_ctx / 2;
    lm_status s = lm_kv_seq_trim(r->ctx, 0, 0);
    for (int32_t j = 0; s == LM_OK && j < r->n_ctx; j += r->n_batch) {
        int32_t nb = r->n_ctx - j < r->n_batch ? r->n_ctx - j : r->n_batch;
        memcpy(r->buf, r->toks + start + j, (size_t)nb * sizeof *r->buf);
        if (j == 0 && r->bos != LM_TOKEN_NULL) r->buf[0] = r->bos;
        /* logits at positions first .. n_ctx-2 predict tokens first+1 .. n_ctx-1 */
        for (int32_t i = 0; i < nb; i++) r->want[i] = j + i >= first && j + i < r->n_ctx - 1;
        lm_batch b = {.n_tokens = nb, .token = r->buf, .logits = r->want};
        s = lm_decode(r->ctx, &b);
        int32_t row = 0;
        for (int32_t i = 0; s == LM_OK && i < nb; i++) {
            if (!r->want[i]) continue;
            const float *lg = lm_get_logits(r->ctx, row++);
            if (!lg) return LM_ERR_INVALID_ARG;
            double nll = token_nll(lg, r->n_vocab, r->toks[start + j + i + 1]);
            acc->sum += nll;
            acc->sum2 += nll * nll;
            acc->n++;
        }
    }
    return s;
}

static lm_token *tokenize_text(const lm_model *m, const char *text, size_t len, int32_t *n) {
    if (len > INT32_MAX) return NULL;
    int32_t need = lm_tokenize(m, text, (int32_t)len, NULL, 0, true, false);
    if (need == INT32_MIN) return NULL;
    if (need < 0) need = -need;
    lm_token *toks = malloc(((size_t)need + 1) * sizeof *toks);
    if (!toks) return NULL;
    *n = lm_tokenize(m, text, (int32_t)len, toks, need + 1, true, false);
    if (*n < 0) {
        free(toks);
        return NULL;
    }
    return toks;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int run_windows(ppl_run *r, int32_t n_chunks, const char *file) {
    ppl_acc acc = {0};
    const double t0 = now_s();
    int32_t done = 0;
    lm_status s = LM_OK;
    cli_install_sigint();
    lm_context_set_abort(r->ctx, cli_abort_cb, NULL);
    fprintf(stderr, "lumen: scoring %d windows of %d tokens (%d scored each) from %s\n", n_chunks,
            r->n_ctx, r->n_ctx - 1 - r->n_ctx / 2, file);
    cli_progress(0, true, "window 0/%d", n_chunks);
    for (int32_t c = 0; c < n_chunks && s == LM_OK; c++) {
        s = score_window(r, c, &acc);
        if (s != LM_OK) break;
        done++;
        double per = (now_s() - t0) / done;
        cli_progress((double)done / n_chunks, true,
                     "window %d/%d  PPL %.4f  %.1f s/window  ETA %.0f s", done, n_chunks,
                     acc_ppl(&acc), per, per * (n_chunks - done));
    }
    cli_progress_end();
    if (s != LM_OK && s != LM_ERR_INTERRUPTED) {
        cli_error(s);
        return 1;
    }
    if (done > 0)
        printf("PPL = %.4f +/- %.4f (%lld tokens, %d chunks of ctx %d)\n", acc_ppl(&acc),
               acc_ppl_err(&acc), (long long)acc.n, done, r->n_ctx);
    if (s == LM_ERR_INTERRUPTED) {
        fprintf(stderr, "lumen: interrupted after %d of %d windows\n", done, n_chunks);
        return 130;
    }
    return 0;
}

static int check_sizes(const cli_opts *o, int32_t *n_ctx, int32_t *n_batch) {
    *n_ctx = o->ctx ? o->ctx : 512;
    if (*n_ctx < 8) {
        fprintf(stderr, "lumen perplexity: error: --ctx %d is too small (at least 8)\n", *n_ctx);
        return 1;
    }
    *n_batch = o->batch ? o->batch : (*n_ctx < 512 ? *n_ctx : 512);
    if (*n_batch > *n_ctx) *n_batch = *n_ctx;
    return 0;
}

int cmd_perplexity(const cli_opts *o) {
    int32_t n_ctx, n_batch;
    if (!o->file) {
        fprintf(stderr, "lumen perplexity: error: no text file given (-f FILE)\n");
        return 1;
    }
    if (check_sizes(o, &n_ctx, &n_batch)) return 1;
    size_t len = 0;
    char *text = cli_read_file(o->file, &len);
    if (!text) {
        fprintf(stderr, "lumen perplexity: error: cannot read %s: %s\n", o->file, strerror(errno));
        return 1;
    }
    int rc = 1;
    int32_t n_tok = 0;
    lm_token *toks = NULL;
    ppl_run r = {.n_ctx = n_ctx, .n_batch = n_batch};
    if (!(r.m = cli_load_model(o, false))) goto done;
    if (!(toks = tokenize_text(r.m, text, len, &n_tok))) {
        cli_error(LM_ERR_TOKENIZER);
        goto done;
    }
    int32_t n_chunks = n_tok / n_ctx;
    if (o->chunks && o->chunks < n_chunks) n_chunks = o->chunks;
    if (n_chunks == 0) {
        fprintf(stderr,
                "lumen perplexity: error: %s is %d tokens; one window of --ctx %d needs at "
                "least %d (use a longer text or a smaller --ctx)\n",
                o->file, n_tok, n_ctx, n_ctx);
        goto done;
    }
    if (n_ctx > lm_model_n_ctx_train(r.m))
        fprintf(stderr, "lumen: warning: --ctx %d is beyond the model's training context %d\n",
                n_ctx, lm_model_n_ctx_train(r.m));
    lm_context_params cp = lm_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_batch;
    cp.n_threads = o->threads;
    cp.kv_type = o->kv_type;
    lm_status s = lm_context_create(r.m, &cp, &r.ctx);
    if (s != LM_OK) {
        cli_error(s);
        goto done;
    }
    r.toks = toks;
    r.n_vocab = lm_model_n_vocab(r.m);
    r.bos = lm_model_add_bos(r.m) ? lm_token_bos(r.m) : LM_TOKEN_NULL;
    r.buf = malloc((size_t)n_batch * sizeof *r.buf);
    r.want = malloc((size_t)n_batch);
    if (!r.buf || !r.want) {
        cli_error(LM_ERR_NOMEM);
        goto done;
    }
    rc = run_windows(&r, n_chunks, o->file);
done:
    free(r.buf);
    free(r.want);
    lm_context_free(r.ctx);
    lm_model_free(r.m);
    free(toks);
    free(text);
    return rc;
}
