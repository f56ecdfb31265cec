/* lumen verify: run the same tokens through the CPU oracle and another backend and compare
 * the hidden state after every layer, then the logits: a user's check of a new GPU or
 * driver, and ours when a backend goes wrong (the first layer beyond tolerance says where).
 *
 * The difference of a layer is rel = max|a - b| / max|a| over every token of every step
 * (a: the oracle, b: the backend), so one number reads the same for any model's scale.
 * Default tolerance 1e-3: the GPU backends repeat the oracle's arithmetic, so on lavapipe
 * (doubles available) they are bit-equal (rel 0); without doubles some ops run in float and
 * the states differ by ~2e-5 relative, the logits by ~0.01 of a ~25 range (measured in
 * test_vulkan_e2e). Real GPUs may also reduce in another order. 1e-3 leaves 50x margin over
 * that while a wrong op or block (rel > 1e-2 at once) still fails. */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VERIFY_TOL_DEFAULT 1e-3
#define VERIFY_MAX_PROMPT  512
#define VERIFY_PROMPT      "The quick brown fox jumps over the lazy dog. It was a sunny day"

void cmd_verify_help(void) {
    printf("\nThe oracle is the CPU backend at its plain-C level (LUMEN_CPU_LEVEL=scalar), so\n"
           "--backend cpu checks this CPU's SIMD kernels. The prompt is prefilled in one batch,\n"
           "then N tokens are decoded one at a time, each the oracle's greedy choice, on both.\n"
           "Per layer: rel = max|a-b| / max|a| over all tokens and steps (a: oracle); the\n"
           "logits likewise. Exit status 0 when every row is within --tol, else 1.\n");
}

/* One backend's run: every layer's states of the current step, and its logits. */
typedef struct {
    lm_model *m;
    lm_context *ctx;
    int32_t n_layer, n_embd, n_vocab;
    size_t cap;     /* floats per layer: n_embd x the largest batch */
    float *states;  /* [n_layer][cap] */
    int32_t *n_tok; /* tokens of each layer's last state (0: none seen) */
    int perturb;    /* LUMEN_VERIFY_PERTURB: this layer's copy is changed (-1: none) */
} vrun;

/* Per-row maxima over all steps. */
typedef struct {
    double diff, ref;
    bool missing;
} vstat;

static void on_layer(int32_t layer, const float *x, int32_t n_embd, int32_t n_tokens, void *user) {
    vrun *r = user;
    if (layer < 0 || layer >= r->n_layer || n_embd != r->n_embd) return;
    size_t n = (size_t)n_embd * (size_t)n_tokens;
    if (n > r->cap) return;
    float *dst = r->states + (size_t)layer * r->cap;
    memcpy(dst, x, n * sizeof *dst);
    r->n_tok[layer] = n_tokens;
    /* fault injection for the tests: only this tool's copy changes, never the engine's */
    if (layer == r->perturb) {
        double mx = 0;
        for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(dst[i]));
        dst[n / 2] += (float)(0.01 * (mx > 0 ? mx : 1));
    }
}

static void compare(const float *a, const float *b, size_t n, vstat *st) {
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (isnan(d)) d = INFINITY;
        if (d > st->diff) st->diff = d;
        if (fabs(a[i]) > st->ref) st->ref = fabs(a[i]);
    }
}

static double rel(const vstat *st) {
    if (st->missing) return INFINITY;
    return st->diff == 0 ? 0 : st->ref > 0 ? st->diff / st->ref : INFINITY;
}

static int vrun_init(vrun *r, lm_model *m, int32_t n_ctx, int32_t n_batch, const cli_opts *o) {
    memset(r, 0, sizeof *r);
    r->m = m;
    r->n_layer = lm_model_n_layer(m);
    r->n_embd = lm_model_n_embd(m);
    r->n_vocab = lm_model_n_vocab(m);
    r->perturb = -1;
    r->cap = (size_t)r->n_embd * (size_t)n_batch;
    r->states = calloc((size_t)r->n_layer * r->cap, sizeof *r->states);
    r->n_tok = calloc((size_t)r->n_layer, sizeof *r->n_tok);
    if (!r->states || !r->n_tok) {
        fprintf(stderr, "lumen verify: error: out of memory for the layer states\n");
        return 1;
    }
    lm_context_params cp = lm_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_batch;
    cp.n_seq_max = 1;
    cp.n_threads = o->threads;
    cp.kv_type = o->kv_type;
    lm_status s = lm_context_create(m, &cp, &r->ctx);
    if (s != LM_OK) {
        cli_error(s);
        return 1;
    }
    lm_context_set_layer_fn(r->ctx, on_layer, r);
    return 0;
}

static void vrun_free(vrun *r) {
    lm_context_free(r->ctx);
    lm_model_free(r->m);
    free(r->states);
    free(r->n_tok);
}

/* Decode the same tokens on both and fold the differences into st[0 .. n_layer] (the last
 * row: logits). */
static int step(vrun *a, vrun *b, const lm_token *toks, int32_t n, vstat *st) {
    vrun *both[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        memset(both[k]->n_tok, 0, (size_t)both[k]->n_layer * sizeof *both[k]->n_tok);
        lm_batch batch = lm_batch_simple(toks, n);
        lm_status s = lm_decode(both[k]->ctx, &batch);
        if (s != LM_OK) {
            fprintf(stderr, "lumen verify: error: %s decode: %s\n", k ? "backend" : "oracle",
                    lm_last_error());
            return 1;
        }
    }
    for (int32_t l = 0; l < a->n_layer; l++) {
        if (a->n_tok[l] != n || b->n_tok[l] != n) {
            st[l].missing = true; /* a backend that skipped the callback is a failure */
            continue;
        }
        compare(a->states + (size_t)l * a->cap, b->states + (size_t)l * b->cap,
                (size_t)n * (size_t)a->n_embd, &st[l]);
    }
    const float *la = lm_get_logits(a->ctx, -1), *lb = lm_get_logits(b->ctx, -1);
    if (!la || !lb) {
        st[a->n_layer].missing = true;
        return 0;
    }
    compare(la, lb, (size_t)a->n_vocab, &st[a->n_layer]);
    return 0;
}

static lm_token argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* The oracle: the CPU backend's plain-C level, whatever LUMEN_CPU_LEVEL says elsewhere. */
static lm_model *load_oracle(const cli_opts *o) {
    const char *old = getenv("LUMEN_CPU_LEVEL");
    char *saved = old ? strdup(old) : NULL;
    setenv("LUMEN_CPU_LEVEL", "scalar", 1);
    lm_model *m = cli_load_model_on(o, "cpu", "0");
    if (saved)
        setenv("LUMEN_CPU_LEVEL", saved, 1);
    else
        unsetenv("LUMEN_CPU_LEVEL");
    free(saved);
    return m;
}

static int print_table(const vstat *st, int32_t n_layer, double tol) {
    printf("%-8s %12s %12s %12s  %s\n", "layer", "max|a-b|", "max|a|", "rel", "");
    int first_bad = -2; /* -2: none; n_layer: the logits */
    for (int32_t l = 0; l <= n_layer; l++) {
        double r = rel(&st[l]);
        bool ok = r <= tol;
        if (!ok && first_bad == -2) first_bad = l;
        char name[16];
        if (l < n_layer)
            snprintf(name, sizeof name, "%d", l);
        else
            snprintf(name, sizeof name, "logits");
        if (st[l].missing)
            printf("%-8s %12s %12s %12s  FAIL (no state)\n", name, "-", "-", "-");
        else
            printf("%-8s %12.3e %12.3e %12.3e  %s%s\n", name, st[l].diff, st[l].ref, r,
                   ok ? "ok" : "FAIL", !ok && first_bad == l ? "  <- first beyond tolerance" : "");
    }
    if (first_bad == -2) {
        printf("all %d layers and the logits within tolerance %g\n", n_layer, tol);
        return 0;
    }
    if (first_bad < n_layer)
        printf("FAIL: first beyond tolerance %g: layer %d\n", tol, first_bad);
    else
        printf("FAIL: every layer within tolerance %g, the logits are not\n", tol);
    return 1;
}

static int verify(const cli_opts *o, vrun *a, vrun *b) {
    const char *backend = o->backend ? o->backend : "cpu";
    const char *prompt = o->prompt ? o->prompt : VERIFY_PROMPT;
    lm_token toks[VERIFY_MAX_PROMPT];
    int32_t n =
        lm_tokenize(a->m, prompt, (int32_t)strlen(prompt), toks, VERIFY_MAX_PROMPT, true, true);
    if (n <= 0) {
        fprintf(stderr, "lumen verify: error: the prompt gives %s tokens (at most %d)\n",
                n == 0 ? "no" : "too many", VERIFY_MAX_PROMPT);
        return 1;
    }
    int32_t n_gen = o->n_predict < 0 ? 4 : o->n_predict;
    if (vrun_init(a, a->m, n + n_gen + 1, n, o) || vrun_init(b, b->m, n + n_gen + 1, n, o))
        return 1;
    const char *pert = getenv("LUMEN_VERIFY_PERTURB");
    if (pert && *pert) b->perturb = atoi(pert);
    double tol = o->tol > 0 ? o->tol : VERIFY_TOL_DEFAULT;
    printf("oracle:  cpu, %s (plain C)\nbackend: %s, %s\n", lm_model_device_name(a->m), backend,
           lm_model_device_name(b->m));
    printf("tokens:  %d prompt (one batch) + %d decode steps; rel = max|a-b| / max|a| over "
           "them all (a: oracle)\n\n",
           n, n_gen);
    vstat *st = calloc((size_t)a->n_layer + 1, sizeof *st);
    if (!st) return 1;
    int rc = step(a, b, toks, n, st);
    int32_t agree = 0, steps = 0;
    for (int32_t i = 0; !rc && i <= n_gen; i++) {
        const float *la = lm_get_logits(a->ctx, -1), *lb = lm_get_logits(b->ctx, -1);
        lm_token t = argmax(la, a->n_vocab);
        agree += lb && argmax(lb, b->n_vocab) == t;
        steps++;
        if (i < n_gen) rc = step(a, b, &t, 1, st);
    }
    if (!rc) {
        rc = print_table(st, a->n_layer, tol);
        printf("greedy next token: the backend agrees with the oracle at %d of %d steps\n", agree,
               steps);
    }
    free(st);
    return rc;
}

int cmd_verify(const cli_opts *o) {
    int32_t dev;
    if (cli_resolve_device("verify", o->backend, o->device, &dev)) return 1;
    vrun a = {0}, b = {0};
    a.m = load_oracle(o);
    if (!a.m) return 1;
    b.m = cli_load_model(o, false);
    if (!b.m) {
        lm_model_free(a.m);
        return 1;
    }
    cli_install_sigint();
    int rc = verify(o, &a, &b);
    vrun_free(&a);
    vrun_free(&b);
    return rc;
}
