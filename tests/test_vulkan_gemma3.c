/* Gemma 3 270M Q4_K_M on the Vulkan backend against the CPU's: its tied Q8_0 embedding /
 * output head (262144 x 640, 178 MB) is larger than lavapipe's maxStorageBufferRange
 * (128 MiB), so get_rows and the output mul_mat bind it in row windows; head_dim 256 takes
 * the attention kernels' widest case; sliding-window layers, Q/K norms and GeGLU. Prompt
 * and 4 greedy steps, with an f16 and a q8_0 KV cache. On devices with shaderFloat64
 * (lavapipe) the ops Gemma uses are bit-equal to the CPU's except GeGLU's tanh (the
 * shaders' own, within 2 ulp of glibc's). Measured max logit differences (logits up to
 * ~30): 0.0071 with an f16 cache (the 16-bit activation quantization amplifies last-bit
 * differences), bound 0.02; 0.078 with a q8_0 cache, bound 0.2: quantization is
 * discontinuous, so a last-bit difference in a K/V value can flip its q8_0 rounding and
 * move it by a whole step, amax_blk/127 (f16's step is 2^-11 relative). (SmolLM2 uses no
 * GeGLU: its q8_0 run is bit-equal, test_vulkan_e2e.) Greedy tokens must agree where
 * the CPU's top two differ by more than twice the bound. Skips without the model or a
 * Vulkan device. */
#include "helpers/model_util.h"
#include "lumen.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define N_GEN 4

static lm_model *g_cpu, *g_vk;

static void setup(void) {
    lm_test_load_cpu_and_vulkan(lm_test_gemma3_path(), "Gemma 3 model", &g_cpu, &g_vk);
}

static void teardown(void) {
    lm_model_free(g_vk);
    lm_model_free(g_cpu);
    g_vk = g_cpu = NULL;
}

TestSuite(vk_gemma3, .init = setup, .fini = teardown, .timeout = 900);

/* Teacher-forced on the CPU's greedy tokens: every step compares the same history. */
static void check(lm_kv_type kv, double tol) {
    const char *prompt = "The capital of France is";
    lm_token toks[32];
    int32_t n = lm_tokenize(g_cpu, prompt, (int32_t)strlen(prompt), toks, 32, true, true);
    cr_assert_gt(n, 1);
    lm_context_params cp = lm_context_default_params();
    cp.n_ctx = 64;
    cp.kv_type = kv;
    lm_context *a = NULL, *b = NULL;
    cr_assert_eq(lm_context_create(g_cpu, &cp, &a), LM_OK, "%s", lm_last_error());
    cr_assert_eq(lm_context_create(g_vk, &cp, &b), LM_OK, "%s", lm_last_error());
    lm_test_forced r =
        lm_test_teacher_forced(a, b, lm_model_n_vocab(g_cpu), toks, n, N_GEN, tol, "vulkan vs cpu");
    fprintf(stderr, "[vk_gemma3] %s KV: max |logit diff| vulkan vs cpu %.3g over %d steps\n",
            kv == LM_KV_Q8_0 ? "q8_0" : "f16", r.max_diff, N_GEN);
    cr_expect_leq(r.max_diff, tol);
    lm_context_free(a);
    lm_context_free(b);
}

Test(vk_gemma3, f16_kv_matches_cpu) {
    check(LM_KV_F16, 0.02);
}

Test(vk_gemma3, q8_0_kv_matches_cpu) {
    check(LM_KV_Q8_0, 0.2);
}
