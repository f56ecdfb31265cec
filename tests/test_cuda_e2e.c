/* The default model on the CUDA backend against the CPU backend, through the C API: the
 * same greedy continuation (32 tokens) of several prompts, prompt logits close to the
 * CPU's, and several sequences in one batch. Skips without a CUDA device or model.
 *
 * Why identical tokens can be asked for: the CUDA mul_mat kernels reproduce the CPU's
 * bits (same 16-bit activations, integer block sums, float terms in block order) for the
 * default model's Q4_1/Q8_0 weights; only rms_norm's double sum order, attention's
 * exp/summation order and the activations' expf differ, by ulps. The logit tolerance
 * (1e-3 absolute on logits up to ~35) leaves room for those ulps to grow over 30 layers. */
#include "helpers/test_util.h"
#include "lumen.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static lm_model *g_models[2]; /* cpu, cuda */
static char g_why[512];

static void setup(void) {
    if (access(lm_test_model_path(), R_OK) != 0) {
        snprintf(g_why, sizeof g_why, "default model not found at %s (run scripts/setup.sh)",
                 lm_test_model_path());
        return;
    }
    lm_model_params mp = lm_model_default_params();
    mp.n_threads = 2;
    mp.backend = "cuda";
    if (lm_model_load(lm_test_model_path(), &mp, &g_models[1]) != LM_OK) {
        const char *e = lm_last_error();
        snprintf(g_why, sizeof g_why, "%s%s",
                 strstr(e, "no CUDA device") || strstr(e, "not compiled in") ? ""
                                                                             : "no CUDA device: ",
                 e);
        g_models[1] = NULL;
        return;
    }
    mp.backend = "cpu";
    cr_assert_eq(lm_model_load(lm_test_model_path(), &mp, &g_models[0]), LM_OK, "%s",
                 lm_last_error());
}

static void teardown(void) {
    lm_model_free(g_models[0]);
    lm_model_free(g_models[1]);
    g_models[0] = g_models[1] = NULL;
}

TestSuite(cuda_e2e, .init = setup, .fini = teardown, .timeout = 600);

#define NEED_MODELS()                                                                              \
    do {                                                                                           \
        if (!g_models[1]) cr_skip_test("%s", g_why);                                               \
    } while (0)

static lm_context *new_ctx(lm_model *m, int32_t n_ctx, int32_t n_seq) {
    lm_context_params cp = lm_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_seq_max = n_seq;
    lm_context *ctx = NULL;
    cr_assert_eq(lm_context_create(m, &cp, &ctx), LM_OK, "%s", lm_last_error());
    return ctx;
}

static int32_t argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

#define N_GEN 32

/* Prompt, then N_GEN greedy tokens one at a time; logits: the prompt's last position. */
static void greedy(lm_model *m, const char *prompt, lm_token *out, float *logits) {
    lm_context *ctx = new_ctx(m, 256, 1);
    lm_token toks[256];
    const int32_t n = lm_tokenize(m, prompt, (int32_t)strlen(prompt), toks, 256, true, true);
    cr_assert_gt(n, 0);
    lm_batch b = lm_batch_simple(toks, n);
    cr_assert_eq(lm_decode(ctx, &b), LM_OK, "%s", lm_last_error());
    const int32_t nv = lm_model_n_vocab(m);
    memcpy(logits, lm_get_logits(ctx, -1), (size_t)nv * sizeof(float));
    for (int32_t i = 0; i < N_GEN; i++) {
        out[i] = argmax(lm_get_logits(ctx, -1), nv);
        int32_t p = n + i, seq = 0;
        lm_batch one = {.n_tokens = 1, .token = &out[i], .pos = &p, .seq_id = &seq};
        cr_assert_eq(lm_decode(ctx, &one), LM_OK, "%s", lm_last_error());
    }
    lm_context_free(ctx);
}

Test(cuda_e2e, greedy_32_tokens_equal_the_cpu) {
    NEED_MODELS();
    static const char *prompts[] = {
        "The capital of France is",
        "Once upon a time, in a small village by the sea,",
        "def fibonacci(n):",
        "The three primary colors are",
        "<|im_start|>user\nWhat is 17 times 23?<|im_end|>\n<|im_start|>assistant\n",
    };
    const int32_t nv = lm_model_n_vocab(g_models[0]);
    float *lg[2] = {malloc((size_t)nv * 4), malloc((size_t)nv * 4)};
    double worst = 0;
    for (size_t p = 0; p < sizeof prompts / sizeof prompts[0]; p++) {
        lm_token out[2][N_GEN];
        for (int b = 0; b < 2; b++) greedy(g_models[b], prompts[p], out[b], lg[b]);
        double d = 0;
        for (int32_t i = 0; i < nv; i++) d = fmax(d, fabs((double)lg[0][i] - lg[1][i]));
        worst = fmax(worst, d);
        cr_expect_lt(d, 1e-3, "prompt %zu: prompt logits differ from the CPU's by %g", p, d);
        for (int i = 0; i < N_GEN; i++)
            cr_expect_eq(out[1][i], out[0][i], "prompt %zu, token %d: cuda %d, cpu %d", p, i,
                         out[1][i], out[0][i]);
    }
    fprintf(stderr, "[cuda_e2e] max |logit cuda - cpu| = %.3g over the prompts\n", worst);
    free(lg[0]), free(lg[1]);
}

/* Three sequences in one batch (prefill on the tensor-core path: > 8 tokens), then one
 * decode step for all three: every row equal to the CPU's within the tolerance. */
Test(cuda_e2e, batched_sequences_match_the_cpu) {
    NEED_MODELS();
    const char *texts[3] = {"Water boils at", "The largest planet in the solar system is",
                            "In 1969, the first person to walk on the Moon was"};
    const int32_t nv = lm_model_n_vocab(g_models[0]);
    float *rows[2];
    for (int b = 0; b < 2; b++) {
        lm_context *ctx = new_ctx(g_models[b], 128, 3);
        lm_token toks[192];
        int32_t pos[192], seq[192], len[3], n = 0;
        int8_t want[192];
        for (int s = 0; s < 3; s++) {
            len[s] = lm_tokenize(g_models[b], texts[s], (int32_t)strlen(texts[s]), toks + n, 64,
                                 true, true);
            cr_assert_gt(len[s], 0);
            for (int32_t i = 0; i < len[s]; i++)
                pos[n + i] = i, seq[n + i] = s, want[n + i] = i == len[s] - 1;
            n += len[s];
        }
        lm_batch batch = {.n_tokens = n, .token = toks, .pos = pos, .seq_id = seq, .logits = want};
        cr_assert_eq(lm_decode(ctx, &batch), LM_OK, "%s", lm_last_error());
        lm_token next[3];
        int32_t np[3], ns[3];
        for (int s = 0; s < 3; s++) {
            next[s] = argmax(lm_get_logits(ctx, s), nv);
            np[s] = len[s], ns[s] = s;
        }
        const int8_t all[3] = {1, 1, 1};
        lm_batch step = {.n_tokens = 3, .token = next, .pos = np, .seq_id = ns, .logits = all};
        cr_assert_eq(lm_decode(ctx, &step), LM_OK, "%s", lm_last_error());
        rows[b] = malloc((size_t)nv * 3 * sizeof(float));
        for (int s = 0; s < 3; s++)
            memcpy(rows[b] + (size_t)s * nv, lm_get_logits(ctx, s), (size_t)nv * sizeof(float));
        lm_context_free(ctx);
    }
    for (int s = 0; s < 3; s++) {
        double d = 0;
        for (int32_t i = 0; i < nv; i++)
            d = fmax(d, fabs((double)rows[0][(size_t)s * nv + i] - rows[1][(size_t)s * nv + i]));
        cr_expect_lt(d, 1e-3, "sequence %d: logits differ from the CPU's by %g", s, d);
        cr_expect_eq(argmax(rows[1] + (size_t)s * nv, nv), argmax(rows[0] + (size_t)s * nv, nv));
    }
    free(rows[0]), free(rows[1]);
}
