/* lumen perplexity on the default model against scripts/ref/ppl_ref.py (a float64 numpy
 * forward pass, Hugging Face tokenizer, same text, context and method), and its errors. */
#include "helpers/test_util.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void need_model(void) {
    if (access(lm_test_model_path(), R_OK) != 0)
        cr_skip_test("default model not found at %s (run scripts/setup.sh)", lm_test_model_path());
}

TestSuite(perplexity, .init = need_model, .timeout = 900);

typedef struct ppl_ref {
    char text[1024];
    char sha256[65];
    int ctx, chunks, tokens;
    double ppl, err;
} ppl_ref;

/* The fixture's record for a context size. */
static ppl_ref read_ref(int ctx) {
    FILE *f = fopen(lm_test_fixture("ppl_ref_smollm2.txt"), "r");
    cr_assert_not_null(f, "missing fixture (run scripts/ref/ppl_ref.py)");
    ppl_ref r = {.ctx = 0};
    char line[4096], text[256];
    bool found = false;
    while (fgets(line, sizeof line, f)) {
        ppl_ref x;
        if (sscanf(line, "text %255s", text) == 1)
            snprintf(r.text, sizeof r.text, "%s/%s", LM_SOURCE_DIR, text);
        else if (sscanf(line, "sha256 %64s", r.sha256) == 1)
            continue;
        else if (sscanf(line, "run ctx %d chunks %d ppl %lf stderr %lf tokens %d", &x.ctx,
                        &x.chunks, &x.ppl, &x.err, &x.tokens) == 5 &&
                 x.ctx == ctx) {
            r.ctx = x.ctx, r.chunks = x.chunks, r.ppl = x.ppl, r.err = x.err, r.tokens = x.tokens;
            found = true;
        }
    }
    fclose(f);
    cr_assert(found && r.text[0] && r.sha256[0], "no ctx %d record in the fixture", ctx);
    return r;
}

static char *run(int *rc, const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "LUMEN_MODEL='%s' %s perplexity %s", lm_test_model_path(),
             lm_test_cli(), args);
    char *out = NULL;
    *rc = lm_test_run(cmd, &out);
    return out;
}

/* Run on the fixture's text and compare: the PPL within 1 % (Lumen computes in f32, with
 * activations quantized for the integer dot products, from the same quantized weights as
 * the float64 reference: the difference is rounding, far below 1 %); the same number of
 * scored tokens and windows; the standard error within 5 % (it is a spread, not a mean,
 * and moves more with small NLL differences). */
static void check_against_reference(int ctx) {
    ppl_ref r = read_ref(ctx);
    /* the text is the one the reference scored */
    char cmd[1200], *out = NULL;
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", r.text);
    cr_assert_eq(lm_test_run(cmd, &out), 0, "%s", out);
    cr_assert(strncmp(out, r.sha256, 64) == 0, "%s changed since the fixture was made", r.text);
    free(out);
    char args[1200];
    int rc;
    snprintf(args, sizeof args, "-f '%s' --ctx %d --chunks %d -t 2", r.text, ctx, r.chunks);
    out = run(&rc, args);
    cr_assert_eq(rc, 0, "%s", out);
    const char *line = strstr(out, "PPL = ");
    cr_assert_not_null(line, "%s", out);
    double ppl, err;
    int tokens, chunks, c;
    cr_assert_eq(sscanf(line, "PPL = %lf +/- %lf (%d tokens, %d chunks of ctx %d)", &ppl, &err,
                        &tokens, &chunks, &c),
                 5, "%s", line);
    cr_log_info("ctx %d: lumen PPL %.4f +/- %.4f, reference %.4f +/- %.4f (%d tokens)", ctx, ppl,
                err, r.ppl, r.err, tokens);
    cr_assert_eq(tokens, r.tokens);
    cr_assert_eq(chunks, r.chunks);
    cr_assert_eq(c, ctx);
    cr_assert(fabs(ppl - r.ppl) <= 0.01 * r.ppl, "PPL %.4f vs reference %.4f", ppl, r.ppl);
    cr_assert(fabs(err - r.err) <= 0.05 * r.err, "stderr %.4f vs reference %.4f", err, r.err);
    /* the progress lines went to stderr with the running PPL */
    cr_assert(strstr(out, "window 1/") && strstr(out, "ETA"), "%s", out);
    free(out);
}

Test(perplexity, matches_the_reference_ctx128) {
    check_against_reference(128);
}

/* The whole text at ctx 512 takes minutes on the plain-C CPU backend: on request only. */
Test(perplexity, matches_the_reference_ctx512_whole_text) {
    if (!getenv("LUMEN_TEST_SLOW")) cr_skip_test("set LUMEN_TEST_SLOW=1 to run (minutes)");
    check_against_reference(512);
}

/* The PPL printed by a run that must succeed. */
static double run_ppl(const char *args) {
    int rc;
    char *out = run(&rc, args);
    cr_assert_eq(rc, 0, "%s", out);
    double ppl = 0;
    const char *line = strstr(out, "PPL = ");
    int got = line ? sscanf(line, "PPL = %lf", &ppl) : 0;
    cr_assert_eq(got, 1, "%s", out);
    free(out);
    return ppl;
}

/* A window split over several decode calls (--batch smaller than --ctx, not dividing it)
 * scores the same: each token's logits depend only on the tokens before it. The tolerance
 * allows the float sums to be grouped differently. */
Test(perplexity, batch_size_does_not_change_the_result) {
    ppl_ref r = read_ref(128);
    char args[1200];
    snprintf(args, sizeof args, "-f '%s' --ctx 128 --chunks 1 -b 128 -t 2", r.text);
    double whole = run_ppl(args);
    snprintf(args, sizeof args, "-f '%s' --ctx 128 --chunks 1 -b 40 -t 2", r.text);
    double split = run_ppl(args);
    cr_assert(fabs(whole - split) <= 1e-4 * whole, "batch 128: %.6f, batch 40: %.6f", whole, split);
}

Test(perplexity, errors) {
    int rc;
    char *out = run(&rc, "--ctx 128");
    cr_assert_eq(rc, 1);
    cr_assert(strstr(out, "no text file given (-f FILE)"), "%s", out);
    free(out);
    out = run(&rc, "-f /nonexistent/text.txt");
    cr_assert_eq(rc, 1);
    cr_assert(strstr(out, "cannot read /nonexistent/text.txt"), "%s", out);
    free(out);
    out = run(&rc, "-f /dev/null --ctx 4");
    cr_assert_eq(rc, 1);
    cr_assert(strstr(out, "too small"), "%s", out);
    free(out);
    /* too short for one window: says how many tokens it has and needs */
    char path[] = "/tmp/lm_ppl_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    const char *text = "It is a truth universally acknowledged.";
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char args[256];
    snprintf(args, sizeof args, "-f %s --ctx 64", path);
    out = run(&rc, args);
    unlink(path);
    cr_assert_eq(rc, 1);
    cr_assert(strstr(out, "tokens; one window of --ctx 64 needs at least 64"), "%s", out);
    free(out);
    out = run(&rc, "-f /dev/null --chunks 0");
    cr_assert_eq(rc, 1);
    free(out);
}

Test(perplexity, help) {
    int rc;
    char *out = run(&rc, "--help");
    cr_assert_eq(rc, 0);
    cr_assert(strstr(out, "-f, --file FILE") && strstr(out, "--ctx N") &&
                  strstr(out, "--batch N") && strstr(out, "--chunks N") &&
                  strstr(out, "(default 512)"),
              "%s", out);
    free(out);
}
