/* End to end on the Vulkan backend (lavapipe in CI): the default model loaded with
 * backend "vulkan" must produce the CPU backend's greedy tokens, 32 per prompt, and the
 * hidden state after every layer (the per-layer hook `lumen verify` uses) must match the
 * CPU's. On devices with shaderFloat64 (lavapipe) every op the model uses is bit-equal to
 * the CPU's, so logits and states must be identical; without doubles (rope, rms_norm,
 * swiglu and attention in float) they differ in the last bits, which the 16-bit
 * quantization of activations can amplify to ~1e-5 of a state's scale (measured 1.7e-5)
 * and ~0.01 on the logits (measured 0.012): tolerances 1e-4 relative and 0.05. On a
 * divergence the test reports the step, both tokens and the CPU's logit margin there.
 * Skips without the model or a Vulkan device. */
#include "context.h"
#include "helpers/model_util.h"
#include "helpers/test_util.h"
#include "lumen.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_GEN 32

#ifdef LM_HAVE_VULKAN
int lm__vk_has_f64(lm_backend *be); /* kernels/vulkan: the bit-equal variants run */
/* kernels/vulkan: begin..end segments ended, and how many re-submitted a recorded one */
void lm__vk_replay_stats(lm_backend *be, uint64_t *segments, uint64_t *replayed);
int lm__vk_validation_errors(lm_backend *be); /* with LUMEN_VULKAN_VALIDATE=1 */
#endif

static lm_model *g_cpu, *g_vk;
static int g_exact;
static lm_kv_type g_kv = LM_KV_F16; /* the contexts' cache type (each test is a process) */

static void setup(void) {
    lm_test_load_cpu_and_vulkan(lm_test_model_path(), "default model", &g_cpu, &g_vk);
#ifdef LM_HAVE_VULKAN
    g_exact = lm__vk_has_f64(g_vk->be);
#endif
}

static void teardown(void) {
    lm_model_free(g_vk);
    lm_model_free(g_cpu);
    g_vk = g_cpu = NULL;
}

TestSuite(vk_e2e, .init = setup, .fini = teardown, .timeout = 800);

static lm_context *new_ctx(lm_model *m) {
    lm_context_params cp = lm_context_default_params();
    cp.n_ctx = 128;
    cp.kv_type = g_kv;
    lm_context *c = NULL;
    cr_assert_eq(lm_context_create(m, &cp, &c), LM_OK, "%s", lm_last_error());
    return c;
}

/* Greedy continuation of prompt; keeps a copy of every step's logits. */
static void greedy(lm_model *m, const char *prompt, lm_token *out, float *logits) {
    lm_context *c = new_ctx(m);
    lm_token toks[64];
    int32_t n = lm_tokenize(m, prompt, (int32_t)strlen(prompt), toks, 64, true, true);
    cr_assert_gt(n, 0);
    lm_batch b = lm_batch_simple(toks, n);
    cr_assert_eq(lm_decode(c, &b), LM_OK, "%s", lm_last_error());
    const int32_t nv = lm_model_n_vocab(m);
    for (int i = 0; i < N_GEN; i++) {
        const float *lg = lm_get_logits(c, -1);
        memcpy(logits + (size_t)i * nv, lg, (size_t)nv * sizeof(float));
        out[i] = lm_test_argmax(lg, nv);
        lm_batch one = lm_batch_simple(&out[i], 1);
        cr_assert_eq(lm_decode(c, &one), LM_OK, "%s", lm_last_error());
    }
    lm_context_free(c);
}

static void check_prompt(const char *prompt) {
    const int32_t nv = lm_model_n_vocab(g_cpu);
    lm_token a[N_GEN], b[N_GEN];
    float *la = malloc((size_t)N_GEN * nv * sizeof(float));
    float *lb = malloc((size_t)N_GEN * nv * sizeof(float));
    greedy(g_cpu, prompt, a, la);
    greedy(g_vk, prompt, b, lb);
    int first = -1;
    for (int i = 0; i < N_GEN && first < 0; i++)
        if (a[i] != b[i]) first = i;
    /* logits of the steps both ran on the same tokens: up to and including the first
     * divergence */
    const int same = first < 0 ? N_GEN : first + 1;
    double max_abs = lm_test_max_abs_diff(la, lb, (size_t)same * nv);
    fprintf(stderr, "  %-32s %d/%d tokens identical, max |logit diff| %.3g over %d steps\n", prompt,
            first < 0 ? N_GEN : first, N_GEN, max_abs, same);
    if (first >= 0)
        cr_expect(0,
                  "'%s': first divergence at step %d: cpu %d vulkan %d; cpu margin top1-top2 "
                  "%.4g, vulkan logits of the two %.6g / %.6g (cpu %.6g / %.6g)",
                  prompt, first, a[first], b[first],
                  lm_test_margin(la + (size_t)first * nv, nv, a[first]),
                  lb[(size_t)first * nv + a[first]], lb[(size_t)first * nv + b[first]],
                  la[(size_t)first * nv + a[first]], la[(size_t)first * nv + b[first]]);
    cr_expect_leq(max_abs, g_exact ? 0.0 : 0.05, "'%s': logits differ by %g (%s)", prompt, max_abs,
                  g_exact ? "bit-equal expected" : "float variants");
    free(la), free(lb);
}

Test(vk_e2e, greedy_matches_cpu_capital) {
    check_prompt("The capital of France is");
}

Test(vk_e2e, greedy_matches_cpu_story) {
    check_prompt("Once upon a time, in a small village,");
}

Test(vk_e2e, greedy_matches_cpu_code) {
    check_prompt("def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n");
}

/* a q8_0 KV cache: the Vulkan kv_store quantizes as the CPU's reference quantizer and the
 * attention kernels dequantize exactly, so it is bit-equal too */
Test(vk_e2e, greedy_matches_cpu_q8_0_kv_cache) {
    g_kv = LM_KV_Q8_0;
    check_prompt("Once upon a time, in a small village,");
}

/* Decode steps after the first re-submit the recorded command buffers of the step body
 * and the output head (kernels/vulkan/vk_command.c) instead of recording them again; the
 * greedy tests above check their results bit for bit. */
Test(vk_e2e, decode_steps_replay_recorded_commands) {
#ifdef LM_HAVE_VULKAN
    uint64_t seg0, rep0, seg1, rep1;
    lm__vk_replay_stats(g_vk->be, &seg0, &rep0);
    const int32_t nv = lm_model_n_vocab(g_vk);
    lm_token out[N_GEN];
    float *lg = malloc((size_t)N_GEN * nv * sizeof(float));
    greedy(g_vk, "The capital of France is", out, lg);
    lm__vk_replay_stats(g_vk->be, &seg1, &rep1);
    fprintf(stderr, "  %llu segments, %llu replayed\n", (unsigned long long)(seg1 - seg0),
            (unsigned long long)(rep1 - rep0));
    /* prefill (body + head), then N_GEN decode steps of two segments each: all but the
     * first decode step's replay */
    cr_expect_geq(rep1 - rep0, 2 * (N_GEN - 1), "%llu of %llu segments replayed",
                  (unsigned long long)(rep1 - rep0), (unsigned long long)(seg1 - seg0));
    cr_expect_eq(lm__vk_validation_errors(g_vk->be), 0, "validation errors (see the log)");
    free(lg);
#else
    cr_skip_test("built without Vulkan");
#endif
}

/* ---- per-layer hidden states through the context hook (what `lumen verify` prints) ---- */

typedef struct {
    lm_backend *be;
    int n_layer;
    size_t n;      /* floats per state */
    float *states; /* [n_layer][n] */
} hook_rec;

static void record(int layer, const lm_tensor *x, void *user) {
    hook_rec *r = user;
    if (layer < 0 || layer >= r->n_layer) return;
    size_t bytes = r->n * sizeof(float);
    cr_assert_eq(lm_tensor_nbytes(x), bytes);
    cr_assert_eq(
        r->be->ops->download(r->be, x->buf, x->offset, r->states + (size_t)layer * r->n, bytes),
        LM_OK, "%s", lm_last_error());
}

static void run_hooked(lm_model *m, const lm_token *toks, int32_t n, hook_rec *r) {
    lm_context *c = new_ctx(m);
    r->be = c->be;
    r->n_layer = m->hp.n_layer;
    r->n = (size_t)m->hp.n_embd * (size_t)n;
    r->states = calloc((size_t)r->n_layer * r->n, sizeof(float));
    c->hook = record;
    c->hook_user = r;
    lm_batch b = lm_batch_simple(toks, n);
    cr_assert_eq(lm_decode(c, &b), LM_OK, "%s", lm_last_error());
    lm_context_free(c);
}

Test(vk_e2e, layer_states_match_cpu) {
    const char *prompt = "The quick brown fox jumps over the lazy dog.";
    lm_token toks[64];
    int32_t n = lm_tokenize(g_cpu, prompt, (int32_t)strlen(prompt), toks, 64, true, true);
    cr_assert_gt(n, 1);
    hook_rec a = {0}, b = {0};
    run_hooked(g_cpu, toks, n, &a);
    run_hooked(g_vk, toks, n, &b);
    for (int l = 0; l < a.n_layer; l++) {
        const float *sa = a.states + l * a.n, *sb = b.states + l * a.n;
        double max_abs = lm_test_max_abs_diff(sa, sb, a.n), max_ref = 0;
        for (size_t i = 0; i < a.n; i++)
            if (fabs(sa[i]) > max_ref) max_ref = fabs(sa[i]);
        if (getenv("LUMEN_TEST_VERBOSE"))
            fprintf(stderr, "  layer %2d: max |diff| %.3g (max |x| %.3g)\n", l, max_abs, max_ref);
        cr_expect_leq(max_abs, g_exact ? 0.0 : 1e-4 * max_ref,
                      "layer %d: hidden state differs by %g (max |x| %g; %s)", l, max_abs, max_ref,
                      g_exact ? "bit-equal expected" : "float variants");
    }
    free(a.states), free(b.states);
}
