#include "model_util.h"

#include "test_util.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

const char *lm_test_gemma3_path(void) {
    static char path[1024];
    const char *env = getenv("LUMEN_GEMMA3_MODEL");
    if (env && *env) return env;
    snprintf(path, sizeof path, "%s/models/gemma-3-270m-q4_k_m.gguf", LM_SOURCE_DIR);
    return path;
}

void lm_test_load_cpu_and_vulkan(const char *path, const char *what, lm_model **cpu,
                                 lm_model **vk) {
    setenv("LUMEN_CPU_LEVEL", "scalar", 0);
    if (access(path, R_OK) != 0)
        cr_skip_test("%s not found at %s (run scripts/setup.sh)", what, path);
    lm_model_params mp = lm_model_default_params();
    mp.n_threads = 2;
    cr_assert_eq(lm_model_load(path, &mp, cpu), LM_OK, "%s", lm_last_error());
    mp.backend = "vulkan";
    lm_status s = lm_model_load(path, &mp, vk);
    if (s == LM_ERR_UNSUPPORTED || s == LM_ERR_BACKEND)
        cr_skip_test("no Vulkan backend or device: %s", lm_last_error());
    cr_assert_eq(s, LM_OK, "%s", lm_last_error());
}

int32_t lm_test_argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

float lm_test_margin(const float *x, int32_t n, int32_t top) {
    float second = -INFINITY;
    for (int32_t i = 0; i < n; i++)
        if (i != top && x[i] > second) second = x[i];
    return x[top] - second;
}

lm_test_forced lm_test_teacher_forced(lm_context *ref, lm_context *other, int32_t n_vocab,
                                      const lm_token *toks, int32_t n, int n_gen, double tol,
                                      const char *what) {
    lm_test_forced r = {0, 0, 0};
    lm_batch b = lm_batch_simple(toks, n);
    cr_assert_eq(lm_decode(ref, &b), LM_OK, "%s", lm_last_error());
    cr_assert_eq(lm_decode(other, &b), LM_OK, "%s", lm_last_error());
    for (int i = 0; i < n_gen; i++) {
        const float *a = lm_get_logits(ref, -1), *o = lm_get_logits(other, -1);
        lm_token t = lm_test_argmax(a, n_vocab);
        float lead = lm_test_margin(a, n_vocab, t);
        double d = lm_test_max_abs_diff(o, a, (size_t)n_vocab); /* INFINITY for a NaN */
        r.max_diff = d > r.max_diff ? d : r.max_diff;
        int32_t pick = lm_test_argmax(o, n_vocab);
        r.same += pick == t;
        if (lead > 2 * tol) {
            r.decided++;
            cr_expect_eq(pick, t, "%s, step %d: top-1 %d, the reference's %d (margin %g)", what, i,
                         pick, t, lead);
        }
        lm_batch one = lm_batch_simple(&t, 1);
        cr_assert_eq(lm_decode(ref, &one), LM_OK, "%s", lm_last_error());
        cr_assert_eq(lm_decode(other, &one), LM_OK, "%s", lm_last_error());
    }
    return r;
}
