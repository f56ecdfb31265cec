/* Sampler: greedy, reproducibility, distributions (chi-square), truncation, penalties,
 * invalid parameters and non-finite logits.
 *
 * Statistical tests use a FIXED sampler seed and fixed logits, so they are deterministic;
 * their bound is the chi-square quantile at p = 0.001 for the degrees of freedom (k - 1
 * for k possible tokens): 7 dof -> 24.32, 2 dof -> 13.82. Tests over random logits take
 * a fresh seed from lm_test_seed() (replay with LUMEN_TEST_SEED). */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "helpers/test_util.h"
#include "lumen.h"

#define N_DRAWS   200000
#define STAT_SEED 20240607u

/* chi-square quantiles at p = 0.001 indexed by degrees of freedom */
static const double chi2_999[] = {0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12};

static lm_sampler_params no_truncation(float temperature) {
    lm_sampler_params p = lm_sampler_default_params();
    p.temperature = temperature;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = STAT_SEED;
    return p;
}

static lm_sampler *make(const lm_sampler_params *p, int32_t n_vocab) {
    lm_sampler *s = NULL;
    lm_status st = lm_sampler_create(p, n_vocab, &s);
    cr_assert_eq(st, LM_OK, "create: %s", lm_last_error());
    cr_assert_not_null(s);
    return s;
}

/* softmax(l / t) in double; entries with keep[i] == 0 get probability 0 */
static void softmax_ref(const double *l, const int *keep, int n, double t, double *out) {
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < n; i++)
        if (!keep || keep[i]) mx = fmax(mx, l[i]);
    for (int i = 0; i < n; i++) {
        out[i] = (!keep || keep[i]) ? exp((l[i] - mx) / t) : 0.0;
        sum += out[i];
    }
    for (int i = 0; i < n; i++) out[i] /= sum;
}

/* Draw N_DRAWS tokens from s over n logits; check against probabilities p: tokens with
 * p == 0 never appear and the chi-square statistic is below the p = 0.001 bound. */
static void check_distribution(lm_sampler *s, const float *logits, const double *p, int n) {
    long counts[16] = {0};
    cr_assert(n <= 16);
    for (int d = 0; d < N_DRAWS; d++) {
        lm_token t = lm_sampler_sample(s, logits);
        cr_assert(t >= 0 && t < n, "token %d out of range", t);
        counts[t]++;
    }
    double chi2 = 0;
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] == 0) {
            cr_assert_eq(counts[i], 0, "token %d has p = 0 but was drawn %ld times", i, counts[i]);
            continue;
        }
        double e = p[i] * N_DRAWS;
        chi2 += (counts[i] - e) * (counts[i] - e) / e;
        k++;
    }
    cr_assert(k >= 2 && k - 1 < (int)(sizeof chi2_999 / sizeof chi2_999[0]));
    cr_assert_lt(chi2, chi2_999[k - 1], "chi2 %.2f >= %.2f (%d dof)", chi2, chi2_999[k - 1], k - 1);
}

static const float fixed8[8] = {1.0f, 2.5f, -0.5f, 0.3f, 2.0f, -1.2f, 1.7f, 0.0f};

static void fixed8_double(double *l) {
    for (int i = 0; i < 8; i++) l[i] = fixed8[i];
}

/* ---- greedy and reproducibility --------------------------------------------------------- */

Test(sampler, greedy_picks_argmax_on_random_logits) {
    lm_test_rng r = {lm_test_seed()};
    const int n = 49152;
    float *x = malloc(n * sizeof *x);
    lm_sampler_params p = lm_sampler_default_params();
    p.temperature = 0.0f;
    lm_sampler *s = make(&p, n);
    for (int trial = 0; trial < 20; trial++) {
        lm_test_fill_normal(&r, x, n, 3.0f);
        int best = 0;
        for (int i = 1; i < n; i++)
            if (x[i] > x[best]) best = i;
        cr_assert_eq(lm_sampler_sample(s, x), best);
    }
    /* ties: the first maximum */
    for (int i = 0; i < n; i++) x[i] = 0.0f;
    x[7] = x[9] = 5.0f;
    cr_assert_eq(lm_sampler_sample(s, x), 7);
    lm_sampler_free(s);
    free(x);
}

static void sample_seq(lm_sampler *s, const float *x, lm_token *out, int n) {
    for (int i = 0; i < n; i++) {
        out[i] = lm_sampler_sample(s, x);
        lm_sampler_accept(s, out[i]);
    }
}

Test(sampler, same_seed_same_sequence_different_seed_differs) {
    lm_test_rng r = {lm_test_seed()};
    const int n = 4096, len = 1000;
    float *x = malloc(n * sizeof *x);
    lm_test_fill_normal(&r, x, n, 2.0f);
    lm_sampler_params p = lm_sampler_default_params();
    p.temperature = 1.5f; /* flat enough that sequences vary */
    p.repeat_penalty = 1.1f;
    p.seed = lm_test_rng_u64(&r);
    lm_token a[1000], b[1000], c[1000];
    lm_sampler *s1 = make(&p, n), *s2 = make(&p, n);
    sample_seq(s1, x, a, len);
    sample_seq(s2, x, b, len);
    cr_assert(memcmp(a, b, sizeof a) == 0, "same seed gave different sequences");
    p.seed ^= 1;
    lm_sampler *s3 = make(&p, n);
    sample_seq(s3, x, c, len);
    cr_assert(memcmp(a, c, sizeof a) != 0, "different seeds gave the same sequence");
    /* reset reseeds and forgets accepted tokens: s1 now replays a */
    lm_sampler_reset(s1, p.seed);
    sample_seq(s1, x, b, len);
    cr_assert(memcmp(b, c, sizeof b) == 0, "reset(seed) does not replay a fresh sampler");
    lm_sampler_free(s1);
    lm_sampler_free(s2);
    lm_sampler_free(s3);
    free(x);
}

/* Pins the RNG stream: identical on every platform (integer xoshiro256**, no libm).
 * The expected ids were checked against an independent Python xoshiro256** seeded by
 * splitmix64: floor(u * 1000) with u = (next >> 11) * 2^-53. */
Test(sampler, rng_stream_is_pinned) {
    enum { n = 1000 };
    static float flat[n]; /* equal logits: token = floor(u * n) */
    lm_sampler_params p = no_truncation(1.0f);
    p.seed = 42;
    lm_sampler *s = make(&p, n);
    lm_token got[8];
    for (int i = 0; i < 8; i++) got[i] = lm_sampler_sample(s, flat);
    const lm_token want[8] = {83, 378, 680, 924, 991, 769, 719, 850};
    for (int i = 0; i < 8; i++)
        cr_expect_eq(got[i], want[i], "draw %d: %d != %d", i, got[i], want[i]);
    lm_sampler_free(s);
}

/* ---- distributions ------------------------------------------------------------------------ */

Test(sampler, temperature_1_matches_softmax) {
    lm_sampler_params p = no_truncation(1.0f);
    lm_sampler *s = make(&p, 8);
    double l[8], want[8];
    fixed8_double(l);
    softmax_ref(l, NULL, 8, 1.0, want);
    check_distribution(s, fixed8, want, 8);
    lm_sampler_free(s);
}

Test(sampler, temperature_half_matches_sharpened_softmax) {
    lm_sampler_params p = no_truncation(0.5f);
    lm_sampler *s = make(&p, 8);
    double l[8], want[8];
    fixed8_double(l);
    softmax_ref(l, NULL, 8, 0.5, want);
    check_distribution(s, fixed8, want, 8);
    lm_sampler_free(s);
}

Test(sampler, top_k_3_keeps_top_three_renormalised) {
    lm_sampler_params p = no_truncation(1.0f);
    p.top_k = 3;
    lm_sampler *s = make(&p, 8);
    double l[8], want[8];
    int keep[8] = {0, 1, 0, 0, 1, 0, 1, 0}; /* 2.5, 2.0, 1.7 */
    fixed8_double(l);
    softmax_ref(l, keep, 8, 1.0, want);
    check_distribution(s, fixed8, want, 8);
    lm_sampler_free(s);
}

/* probabilities 0.05 0.4 0.02 0.2 0.03 0.3 (unsorted on purpose) */
static void peaked6(float *x, double *l) {
    const double pr[6] = {0.05, 0.4, 0.02, 0.2, 0.03, 0.3};
    for (int i = 0; i < 6; i++) {
        l[i] = log(pr[i]);
        x[i] = (float)l[i];
    }
}

/* top_p 0.85: cumulative 0.4, 0.7, 0.9 -> {1, 5, 3}; both code paths (with/without top-k) */
Test(sampler, top_p_keeps_smallest_nucleus) {
    float x[6];
    double l[6], want[6];
    int keep[6] = {0, 1, 0, 1, 0, 1};
    peaked6(x, l);
    softmax_ref(l, keep, 6, 1.0, want);
    for (int with_k = 0; with_k < 2; with_k++) {
        lm_sampler_params p = no_truncation(1.0f);
        p.top_p = 0.85f;
        p.top_k = with_k ? 5 : 0;
        lm_sampler *s = make(&p, 6);
        check_distribution(s, x, want, 6);
        lm_sampler_free(s);
    }
    /* top_p 0 keeps just the best */
    lm_sampler_params p = no_truncation(1.0f);
    p.top_p = 0.0f;
    lm_sampler *s = make(&p, 6);
    for (int i = 0; i < 100; i++) cr_assert_eq(lm_sampler_sample(s, x), 1);
    lm_sampler_free(s);
}

/* min_p 0.2: cut at 0.2 * 0.4 = 0.08 -> {1, 3, 5} */
Test(sampler, min_p_drops_below_fraction_of_max) {
    float x[6];
    double l[6], want[6];
    int keep[6] = {0, 1, 0, 1, 0, 1};
    peaked6(x, l);
    softmax_ref(l, keep, 6, 1.0, want);
    lm_sampler_params p = no_truncation(1.0f);
    p.min_p = 0.2f;
    lm_sampler *s = make(&p, 6);
    check_distribution(s, x, want, 6);
    lm_sampler_free(s);
}

static const double *g_pr; /* for by_prob_desc */
static int by_prob_desc(const void *a, const void *b) {
    double pa = g_pr[*(const int *)a], pb = g_pr[*(const int *)b];
    return pa < pb ? 1 : pa > pb ? -1 : 0;
}

/* Random logits over n tokens, top_p with no top-k: draws stay in the nucleus computed
 * directly (sorted in double); with check_all, every nucleus token expected >= 30 times
 * in the draws is seen, so the kept set is exactly the nucleus. */
static void check_nucleus(int n, float scale, float top_p, int draws, bool check_all) {
    lm_test_rng r = {lm_test_seed()};
    float *x = malloc(n * sizeof *x);
    double *pr = malloc(n * sizeof *pr), *l = malloc(n * sizeof *l);
    int *order = malloc(n * sizeof *order), *in = calloc(n, sizeof *in),
        *seen = calloc(n, sizeof *seen);
    lm_test_fill_normal(&r, x, n, scale);
    for (int i = 0; i < n; i++) l[i] = x[i], order[i] = i;
    softmax_ref(l, NULL, n, 1.0, pr);
    g_pr = pr;
    qsort(order, n, sizeof *order, by_prob_desc);
    double cum = 0, mass = 0;
    for (int i = 0; i < n && cum < top_p; i++) cum += pr[order[i]], in[order[i]] = 1;
    mass = cum;
    lm_sampler_params p = no_truncation(1.0f);
    p.top_p = top_p;
    p.seed = lm_test_rng_u64(&r);
    lm_sampler *s = make(&p, n);
    for (int d = 0; d < draws; d++) {
        lm_token t = lm_sampler_sample(s, x);
        cr_assert(t >= 0 && t < n && in[t], "token %d (p %.3g) outside the nucleus", t, pr[t]);
        seen[t] = 1;
    }
    for (int i = 0; check_all && i < n; i++)
        if (in[i] && pr[i] / mass * draws >= 30)
            cr_assert(seen[i], "nucleus token %d (p %.3g) never drawn", i, pr[i]);
    lm_sampler_free(s);
    free(x), free(pr), free(l), free(order), free(in), free(seen);
}

Test(sampler, top_p_large_vocab_stays_in_nucleus) {
    check_nucleus(49152, 4.0f, 0.9f, 2000, false);
}

Test(sampler, top_p_keeps_exactly_the_nucleus) {
    check_nucleus(300, 2.0f, 0.5f, 20000, true);
    check_nucleus(1000, 1.0f, 0.8f, 50000, true);
}

/* ---- penalties ---------------------------------------------------------------------------- */

Test(sampler, penalties_follow_the_formula) {
    lm_sampler_params p = no_truncation(1.0f);
    p.repeat_penalty = 1.3f;
    p.frequency_penalty = 0.2f;
    p.presence_penalty = 0.5f;
    p.penalty_last_n = 4;
    lm_sampler *s = make(&p, 8);
    /* accepted 6, 6, 1, 2, 2, 1: the window of 4 holds 1, 2, 2, 1 (both 6s evicted) */
    const lm_token acc[6] = {6, 6, 1, 2, 2, 1};
    for (int i = 0; i < 6; i++) lm_sampler_accept(s, acc[i]);
    double l[8], want[8];
    fixed8_double(l);
    int count[8] = {0};
    count[1] = 2;
    count[2] = 2;
    for (int i = 0; i < 8; i++) {
        if (!count[i]) continue;
        l[i] = l[i] > 0 ? l[i] / 1.3 : l[i] * 1.3;
        l[i] -= count[i] * 0.2 + 0.5;
    }
    softmax_ref(l, NULL, 8, 1.0, want);
    check_distribution(s, fixed8, want, 8);
    lm_sampler_free(s);
}

Test(sampler, penalty_changes_greedy_choice) {
    lm_sampler_params p = lm_sampler_default_params();
    p.temperature = 0.0f;
    p.repeat_penalty = 2.0f;
    lm_sampler *s = make(&p, 8);
    cr_assert_eq(lm_sampler_sample(s, fixed8), 1); /* 2.5 */
    lm_sampler_accept(s, 1);                       /* 2.5 / 2 = 1.25 < 2.0 */
    cr_assert_eq(lm_sampler_sample(s, fixed8), 4);
    lm_sampler_reset(s, 0); /* forgets the accepted token */
    cr_assert_eq(lm_sampler_sample(s, fixed8), 1);
    lm_sampler_free(s);
}

/* ---- errors and non-finite input ---------------------------------------------------------- */

static void expect_invalid(lm_sampler_params p, int32_t n_vocab, const char *name) {
    lm_sampler *s = (lm_sampler *)1;
    cr_assert_eq(lm_sampler_create(&p, n_vocab, &s), LM_ERR_INVALID_ARG, "%s accepted", name);
    cr_assert_null(s);
    cr_assert(strstr(lm_last_error(), name), "message '%s' does not name %s", lm_last_error(),
              name);
}

Test(sampler, invalid_params_are_rejected_by_name) {
    lm_sampler_params d = lm_sampler_default_params(), p;
    expect_invalid(d, 0, "n_vocab");
    expect_invalid(d, -5, "n_vocab");
    p = d, p.temperature = NAN, expect_invalid(p, 10, "temperature");
    p = d, p.temperature = INFINITY, expect_invalid(p, 10, "temperature");
    p = d, p.top_p = -0.1f, expect_invalid(p, 10, "top_p");
    p = d, p.top_p = NAN, expect_invalid(p, 10, "top_p");
    p = d, p.min_p = NAN, expect_invalid(p, 10, "min_p");
    p = d, p.repeat_penalty = 0.0f, expect_invalid(p, 10, "repeat_penalty");
    p = d, p.repeat_penalty = NAN, expect_invalid(p, 10, "repeat_penalty");
    p = d, p.penalty_last_n = -2, expect_invalid(p, 10, "penalty_last_n");
    p = d, p.frequency_penalty = INFINITY, expect_invalid(p, 10, "frequency_penalty");
    p = d, p.presence_penalty = NAN, expect_invalid(p, 10, "presence_penalty");
    cr_assert_eq(lm_sampler_create(&d, 10, NULL), LM_ERR_INVALID_ARG);
    lm_sampler_free(NULL);
}

Test(sampler, defaults) {
    lm_sampler_params p = lm_sampler_default_params();
    cr_assert_float_eq(p.temperature, 0.8f, 1e-6);
    cr_assert_eq(p.top_k, 40);
    cr_assert_float_eq(p.top_p, 0.95f, 1e-6);
    cr_assert_float_eq(p.min_p, 0.05f, 1e-6);
    cr_assert_float_eq(p.repeat_penalty, 1.0f, 1e-6);
    cr_assert_eq(p.penalty_last_n, 64);
}

Test(sampler, non_finite_logits_do_not_crash) {
    const int n = 64;
    float x[64];
    lm_sampler_params modes[3] = {lm_sampler_default_params(), no_truncation(1.0f),
                                  lm_sampler_default_params()};
    modes[2].temperature = 0.0f;
    modes[0].repeat_penalty = 1.2f;
    for (int m = 0; m < 3; m++) {
        lm_sampler *s = make(&modes[m], n);
        lm_sampler_accept(s, 5);
        for (int i = 0; i < n; i++) x[i] = NAN; /* all NaN: token 0 */
        cr_assert_eq(lm_sampler_sample(s, x), 0);
        for (int i = 0; i < n; i++) x[i] = -INFINITY;
        cr_assert_eq(lm_sampler_sample(s, x), 0);
        for (int i = 0; i < n; i++) x[i] = (i % 3 == 0) ? NAN : (float)i; /* NaN never drawn */
        for (int d = 0; d < 1000; d++) {
            lm_token t = lm_sampler_sample(s, x);
            cr_assert(t >= 0 && t < n && t % 3 != 0, "mode %d drew %d", m, t);
        }
        x[10] = INFINITY; /* +inf dominates */
        for (int d = 0; d < 100; d++) cr_assert_eq(lm_sampler_sample(s, x), 10);
        x[20] = INFINITY; /* two +inf: only those */
        for (int d = 0; d < 100; d++) {
            lm_token t = lm_sampler_sample(s, x);
            cr_assert(t == 10 || t == 20, "mode %d drew %d", m, t);
        }
        lm_sampler_free(s);
    }
    cr_assert_eq(lm_sampler_sample(NULL, x), LM_TOKEN_NULL);
}

/* Not a pass/fail benchmark: prints the cost of one default-parameter sample. */
Test(sampler, speed_default_params) {
    lm_test_rng r = {lm_test_seed()};
    const int n = 49152, iters = 300;
    float *x = malloc(n * sizeof *x);
    lm_test_fill_normal(&r, x, n, 3.0f);
    lm_sampler_params variants[2] = {lm_sampler_default_params(), lm_sampler_default_params()};
    variants[1].top_k = 0; /* top-p over the whole vocabulary */
    for (int v = 0; v < 2; v++) {
        lm_sampler *s = make(&variants[v], n);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int i = 0; i < iters; i++) lm_sampler_accept(s, lm_sampler_sample(s, x));
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double us = ((t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) / 1e3) / iters;
        fprintf(stderr, "[speed] n_vocab %d top_k %d: %.1f us/sample\n", n, variants[v].top_k, us);
        cr_assert_lt(us, 20000.0);
        lm_sampler_free(s);
    }
    free(x);
}
