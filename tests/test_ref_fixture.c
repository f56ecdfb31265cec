/* The reference-logits fixture (scripts/ref/ref_logits.py) parses and is well-formed, so
 * the end-to-end logits test can rely on it. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "helpers/ref_logits.h"
#include "helpers/test_util.h"

#define FIXTURE "ref_logits_smollm2.txt"
#define PARIS   7042 /* "ĠParis" in SmolLM2's vocabulary; the script checks it decodes so */

static lm_ref_logits load(void) {
    lm_ref_logits r;
    char err[512];
    int rc = lm_ref_logits_load(lm_test_fixture(FIXTURE), &r, err, sizeof err);
    cr_assert_eq(rc, 0, "%s: %s", FIXTURE, err);
    return r;
}

Test(ref_fixture, parses_with_expected_counts) {
    lm_ref_logits r = load();
    cr_assert_eq(r.n_vocab, 49152);
    cr_assert_geq(r.n_prompts, 10);
    for (int i = 1; i < LM_REF_PROBES; i++)
        cr_assert_lt(r.probe_ids[i - 1], r.probe_ids[i], "probe ids sorted and distinct");
    lm_ref_logits_free(&r);
    lm_ref_logits_free(&r); /* idempotent */
}

Test(ref_fixture, records_are_consistent) {
    lm_ref_logits r = load();
    for (int32_t i = 0; i < r.n_prompts; i++) {
        const lm_ref_prompt *p = &r.prompts[i];
        cr_assert_gt(p->text_len, 0);
        cr_assert_gt(p->n_ids, 0);
        cr_assert(isfinite(p->mean) && p->std > 0, "prompt %d stats", i);
        for (int k = 1; k < LM_REF_TOP; k++) {
            cr_assert_geq(p->top_logit[k - 1], p->top_logit[k], "prompt %d top not sorted", i);
            cr_assert_gt(p->top_logit[k], p->mean, "prompt %d: a top logit below the mean", i);
        }
        /* a probe id that is also in the top list carries the same logit */
        for (int j = 0; j < LM_REF_PROBES; j++) {
            cr_assert(isfinite(p->probe[j]));
            cr_assert_leq(p->probe[j], p->top_logit[0], "prompt %d probe %d above top-1", i, j);
            for (int k = 0; k < LM_REF_TOP; k++)
                if (p->top_id[k] == r.probe_ids[j])
                    cr_assert_float_eq(p->probe[j], p->top_logit[k], 1e-4);
        }
    }
    lm_ref_logits_free(&r);
}

Test(ref_fixture, known_prompts) {
    lm_ref_logits r = load();
    const lm_ref_prompt *fr = lm_ref_logits_find(&r, "The capital of France is");
    cr_assert_not_null(fr);
    cr_assert_eq(fr->top_id[0], PARIS);
    const lm_ref_prompt *hello = lm_ref_logits_find(&r, "Hello");
    cr_assert_not_null(hello);
    cr_assert_eq(hello->n_ids, 1);
    const lm_ref_prompt *chat =
        lm_ref_logits_find(&r, "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");
    cr_assert_not_null(chat);
    cr_assert_eq(chat->ids[0], 1, "<|im_start|> is one special token (id 1)");
    cr_assert_not_null(lm_ref_logits_find(&r, "I love \xf0\x9f\x8d\x95 and \xf0\x9f\x9a\x80!"));
    lm_ref_logits_free(&r);
}

Test(ref_fixture, malformed_input_is_reported) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/lm_ref_fixture_bad_%d.txt", (int)getpid());
    const char *bad[] = {
        "n_vocab 10\nprompt 4142\nids 1 3\nend\n",         /* missing lines */
        "n_vocab 10\nprompt 414\n",                        /* odd hex */
        "n_vocab 10\nprompt 4142\nids 2 3 99\n",           /* id out of range */
        "n_vocab 10\nbogus 1\n",                           /* unknown key */
        "n_vocab 10\nprompt 4142\nids 1 3\nids 1 3\nend\n" /* repeated line */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *f = fopen(path, "w");
        cr_assert_not_null(f);
        fputs(bad[i], f);
        fclose(f);
        lm_ref_logits r;
        char err[256] = "";
        cr_assert_eq(lm_ref_logits_load(path, &r, err, sizeof err), -1, "case %zu accepted", i);
        cr_assert(strstr(err, "line "), "case %zu: message '%s' names no line", i, err);
        cr_assert_eq(r.n_prompts, 0);
    }
    remove(path);
    lm_ref_logits r;
    char err[256];
    cr_assert_eq(lm_ref_logits_load("/nonexistent/x.txt", &r, err, sizeof err), -1);
}
