/* lumen quantize: convert a GGUF model's weights to a smaller type (llama.cpp's recipes). */
#include "cli.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

void cmd_quantize_help(void) {
    int32_t n;
    const lm_quantize_type *t = lm_quantize_types(&n);
    printf("\ntypes (any case; bits per weight of the main type, mixes keep some tensors at "
           "more):\n");
    for (int32_t i = 0; i < n; i++)
        printf("  %-7s %6.2f  %s\n", t[i].name, (double)t[i].bpw, t[i].desc);
    printf("\n\"output\" is output.weight, or token_embd.weight when the model ties them.\n"
           "Q2_K gives attn_v Q4_K when a KV head serves 4 or more query heads. 1-D tensors\n"
           "(norms, biases) keep their type. Rows that are not a whole number of 256-blocks\n"
           "fall back to a 32-block type (Q2_K/Q3_K -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1,\n"
           "Q6_K -> Q8_0), else F16. OUT is written as OUT.tmp, then renamed.\n");
}

/* Output types seen, with their counts, for the summary. */
typedef struct qtally {
    const char *type[16];
    int count[16];
    int n;
    double t0;
} qtally;

static void tally_add(qtally *t, const char *type) {
    for (int i = 0; i < t->n; i++) {
        if (!strcmp(t->type[i], type)) {
            t->count[i]++;
            return;
        }
    }
    if (t->n < 16) {
        t->type[t->n] = type;
        t->count[t->n++] = 1;
    }
}

static bool on_progress(const lm_quantize_progress *p, void *user) {
    qtally *t = user;
    char a[32], b[32];
    if (!p->name) { /* before the first tensor */
        cli_progress(0, false, "tensor 0/%d", p->n_tensors);
        return !cli_interrupted();
    }
    tally_add(t, p->type_out);
    double frac = p->total_in ? (double)p->bytes_in / (double)p->total_in : 1.0;
    cli_progress(frac, false, "tensor %d/%d  %s -> %s  %-28.28s %s -> %s", p->i_tensor,
                 p->n_tensors, cli_bytes(p->bytes_in, a, sizeof a),
                 cli_bytes(p->bytes_out, b, sizeof b), p->name, p->type_in, p->type_out);
    return !cli_interrupted();
}

/* Warnings (fallbacks, re-quantization) above the progress bar. */
static void on_log(lm_log_level level, const char *msg, void *user) {
    (void)user;
    static const char *names[] = {"debug", "info", "warning", "error"};
    cli_progress_clear();
    fprintf(stderr, "lumen: %s: %s\n", names[level], msg);
}

static void print_summary(const char *out, const lm_quantize_stats *st, const qtally *t) {
    char a[32], b[32];
    fprintf(stderr, "lumen: wrote %s: %d tensors (%d converted", out, st->n_tensors,
            st->n_quantized);
    if (st->n_requantized) fprintf(stderr, ", %d re-quantized", st->n_requantized);
    if (st->n_fallback) fprintf(stderr, ", %d fell back to a 32-block type", st->n_fallback);
    fprintf(stderr, ")\nlumen: %s -> %s (%.2f -> %.2f bits per weight) in %.1f s\nlumen: types:",
            cli_bytes(st->bytes_in, a, sizeof a), cli_bytes(st->bytes_out, b, sizeof b),
            st->n_elements ? 8.0 * (double)st->bytes_in / (double)st->n_elements : 0.0,
            st->n_elements ? 8.0 * (double)st->bytes_out / (double)st->n_elements : 0.0,
            st->t_ms / 1e3);
    for (int i = 0; i < t->n; i++) fprintf(stderr, " %s %d", t->type[i], t->count[i]);
    fputc('\n', stderr);
}

int cmd_quantize(const cli_opts *o) {
    if (o->n_pos != 3) {
        fprintf(stderr, "lumen quantize: error: expected IN.gguf OUT.gguf TYPE (see lumen quantize "
                        "--help)\n");
        return 1;
    }
    const char *in = o->pos[0], *out = o->pos[1], *type = o->pos[2];
    lm_quantize_params p = lm_quantize_default_params();
    qtally tally = {.n = 0};
    p.type = type;
    p.n_threads = o->threads;
    p.allow_requantize = o->allow_requantize;
    p.progress = on_progress;
    p.progress_user = &tally;
    cli_install_sigint();
    lm_log_set(on_log, NULL, LM_LOG_WARN);
    lm_quantize_stats st;
    lm_status s = lm_quantize_file(in, out, &p, &st);
    cli_progress_end();
    lm_log_set(NULL, NULL, LM_LOG_WARN);
    if (s == LM_ERR_INTERRUPTED) {
        fprintf(stderr, "lumen: interrupted; %s not written\n", out);
        return 130;
    }
    if (s != LM_OK) {
        cli_error(s);
        return 1;
    }
    print_summary(out, &st, &tally);
    return 0;
}
