/* The CPU backend's mul_mat for every weight type against dequantize-then-matmul in double,
 * on fresh random data (seed printed; LUMEN_TEST_SEED replays it).
 *
 * Quantized weights are multiplied with 16-bit integer activations (cpu_matmul.c): x is
 * quantized per block of 32 (256 for the k-quants) with d = amax / 32767 (float), and the
 * products are integer sums per block. So two references:
 *  - exact: the same sum with x replaced by its 16-bit quantization (computed here
 *    independently). Only float rounding separates them: a few block scalings and a sum of
 *    K / 32 terms, < 1e-6 S with S = sum |w_k| |xq_k| (the min terms of the types with a
 *    min are bounded by a few S too); the tolerance is 1e-4 S, far below any layout or
 *    indexing mistake (which moves the result by O(S / sqrt(K))).
 *  - float: x itself. Each x_k moves by at most half its block's step, amax_blk / 65534,
 *    so |got - ref| <= sum over blocks of (amax_blk / 65534) sum_{k in blk} |w_k|,
 *    (1 + 1e-5) for the float rounding of x / d, + the 1e-4 S above.
 * Float weights (F32, F16, BF16) keep a float dot: 1e-5 relative to sum |w x|.
 * Every case runs with 1 and 3 threads (bit-identical), and a column's result must not
 * depend on the other columns of the batch. The AVX2 dot products must equal the plain C
 * ones bit for bit (integer sums are exact; the float part is shared code). */
#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cpu/cpu_internal.h"
#include "helpers/test_util.h"
#include "quant.h"

static lm_backend *g_be[2]; /* 1 thread, 3 threads */

static void setup(void) {
    const int threads[2] = {1, 3};
    for (int b = 0; b < 2; b++) {
        lm_backend_config cfg = {threads[b], 0};
        cr_assert_eq(lm_backend_create("cpu", &cfg, &g_be[b]), LM_OK, "%s", lm_last_error());
    }
}

static void teardown(void) {
    for (int b = 0; b < 2; b++) lm_backend_destroy(g_be[b]);
}

TestSuite(matmul, .init = setup, .fini = teardown);

/* ---- a tensor in its own backend buffer ---- */

typedef struct {
    lm_backend *be;
    lm_buffer *buf;
    lm_tensor t;
} dt;

static dt dt_new(lm_backend *be, lm_type type, int64_t ne0, int64_t ne1, const void *data) {
    dt d = {be, NULL, {0}};
    lm_tensor_init(&d.t, NULL, 0, type, ne0, ne1, 1, 1);
    size_t size = lm_tensor_nbytes(&d.t);
    cr_assert_eq(be->ops->buffer_alloc(be, size, &d.buf), LM_OK, "%s", lm_last_error());
    if (data) cr_assert_eq(be->ops->upload(be, d.buf, 0, data, size), LM_OK);
    d.t.buf = d.buf;
    return d;
}

static void dt_free(dt *d) {
    d->be->ops->buffer_free(d->be, d->buf);
}

/* mul_mat on backend b: W [K, N] (bytes of `type`), x [K, M] -> out [N, M] (malloc'd) */
static float *run_mul_mat(int b, lm_type type, const void *w, const float *x, int64_t K, int64_t N,
                          int64_t M) {
    dt tw = dt_new(g_be[b], type, K, N, w), tx = dt_new(g_be[b], LM_TYPE_F32, K, M, x);
    dt td = dt_new(g_be[b], LM_TYPE_F32, N, M, NULL);
    cr_assert_eq(g_be[b]->ops->mul_mat(g_be[b], &tw.t, &tx.t, &td.t), LM_OK,
                 "%s %lldx%lldx%lld: %s", lm_type_get(type).name, (long long)K, (long long)N,
                 (long long)M, lm_last_error());
    float *out = malloc((size_t)(N * M) * sizeof *out);
    cr_assert_eq(g_be[b]->ops->download(g_be[b], td.buf, 0, out, (size_t)(N * M) * sizeof *out),
                 LM_OK);
    dt_free(&tw), dt_free(&tx), dt_free(&td);
    return out;
}

/* ---- the references ---- */

/* x quantized as the activations are, then dequantized: blocks of act_blck with
 * d = amax / 32767 and q = round-half-away(x * (1 / d)); also half the step of each
 * element's block (the largest error x can get). */
static void quantize_x(int act_blck, const float *x, int64_t K, float *xq, double *half_step) {
    for (int64_t b = 0; b < K / act_blck; b++) {
        const float *xb = x + b * act_blck;
        float amax = 0;
        for (int j = 0; j < act_blck; j++) amax = fmaxf(amax, fabsf(xb[j]));
        const float d = amax / 32767, id = d != 0 ? 1 / d : 0;
        for (int j = 0; j < act_blck; j++) {
            const float v = xb[j] * id; /* then round half away from zero */
            xq[b * act_blck + j] = (float)(int)(v + (v >= 0 ? 0.5f : -0.5f)) * d;
            half_step[b * act_blck + j] = d / 2.0;
        }
    }
}

typedef struct {
    lm_type type;
    int64_t K, N, M;
} mm_case;

static void check_case(lm_test_rng *r, const mm_case *c) {
    const lm_type type = c->type;
    const int64_t K = c->K, N = c->N, M = c->M;
    const int quant = lm_type_get(type).blck > 1;
    const int act_blck = lm_type_get(type).blck == LM_QK_K ? LM_QK_K : 32;
    const char *tn = lm_type_get(type).name;

    /* weights: normal, scaled per row so rows differ in magnitude, a few outliers */
    float *wf = malloc((size_t)(K * N) * sizeof *wf), *x = malloc((size_t)(K * M) * sizeof *x);
    for (int64_t n = 0; n < N; n++)
        lm_test_fill_normal(r, wf + n * K, (size_t)K, 0.05f * (1 + (float)(n % 5)));
    lm_test_fill_normal(r, x, (size_t)(K * M), 1.0f);
    for (int64_t i = 0; i < K * M; i += 97) x[i] *= 8; /* activation outliers */
    const size_t rs = lm_row_size(type, K);
    char *w = malloc(rs * (size_t)N);
    for (int64_t n = 0; n < N; n++) lm_quantize_row(type, wf + n * K, w + (size_t)n * rs, K);
    float *wd = malloc((size_t)(K * N) * sizeof *wd);
    for (int64_t n = 0; n < N; n++) lm_dequantize_row(type, w + (size_t)n * rs, wd + n * K, K);

    float *out1 = run_mul_mat(0, type, w, x, K, N, M), *out3 = run_mul_mat(1, type, w, x, K, N, M);
    cr_assert(memcmp(out1, out3, (size_t)(N * M) * sizeof(float)) == 0,
              "%s K=%lld N=%lld M=%lld: 1 and 3 threads differ", tn, (long long)K, (long long)N,
              (long long)M);
    float *last = run_mul_mat(0, type, w, x + (M - 1) * K, K, N, 1); /* last column alone */
    cr_assert(memcmp(last, out1 + (M - 1) * N, (size_t)N * sizeof(float)) == 0,
              "%s: a column's result depends on the batch", tn);

    float *xq = malloc((size_t)K * sizeof *xq);
    double *hs = malloc((size_t)K * sizeof *hs), worst = 0;
    for (int64_t m = 0; m < M; m++) {
        const float *xm = x + m * K;
        if (quant) quantize_x(act_blck, xm, K, xq, hs);
        for (int64_t n = 0; n < N; n++) {
            const float *wr = wd + n * K;
            double ref = 0, refq = 0, S = 0, qbound = 0;
            for (int64_t k = 0; k < K; k++) {
                ref += (double)wr[k] * xm[k];
                S += fabs((double)wr[k] * xm[k]);
                if (!quant) continue;
                refq += (double)wr[k] * xq[k];
                qbound += fabs((double)wr[k]) * hs[k] * (1 + 1e-5);
            }
            const double got = out1[m * N + n];
            if (!quant) {
                cr_assert(fabs(got - ref) <= 1e-5 * S + 1e-30,
                          "%s K=%lld [%lld,%lld]: got %.9g ref %.9g (tolerance 1e-5 sum|wx| = %g)",
                          tn, (long long)K, (long long)n, (long long)m, got, ref, 1e-5 * S);
                continue;
            }
            const double ftol = 1e-4 * S + 1e-30;
            cr_assert(fabs(got - refq) <= ftol,
                      "%s K=%lld [%lld,%lld]: got %.9g, exact on quantized x %.9g (tol %g)", tn,
                      (long long)K, (long long)n, (long long)m, got, refq, ftol);
            cr_assert(fabs(got - ref) <= qbound + ftol,
                      "%s K=%lld [%lld,%lld]: got %.9g ref %.9g: err %g > 8-bit x bound %g", tn,
                      (long long)K, (long long)n, (long long)m, got, ref, fabs(got - ref),
                      qbound + ftol);
            if (S > 0) worst = fmax(worst, fabs(got - ref) / S);
        }
    }
    if (quant) cr_log_info("%s K=%lld: max |err| / sum|wx| = %.2e", tn, (long long)K, worst);
    free(wf), free(x), free(w), free(wd), free(out1), free(out3), free(last), free(xq), free(hs);
}

static const lm_type TYPES[] = {LM_TYPE_F32,  LM_TYPE_F16,  LM_TYPE_BF16, LM_TYPE_Q4_0,
                                LM_TYPE_Q4_1, LM_TYPE_Q5_0, LM_TYPE_Q5_1, LM_TYPE_Q8_0,
                                LM_TYPE_Q2_K, LM_TYPE_Q3_K, LM_TYPE_Q4_K, LM_TYPE_Q5_K,
                                LM_TYPE_Q6_K};

/* K: one block, several, not a power of two; N odd; M = 1, 3, 17. */
Test(matmul, every_type_against_dequantized_double) {
    lm_test_rng r = {lm_test_seed()};
    const int64_t Ns[] = {1, 7, 33}, Ms[] = {1, 3, 17};
    for (size_t t = 0; t < sizeof TYPES / sizeof TYPES[0]; t++) {
        const int blck = lm_type_get(TYPES[t]).blck;
        const int64_t Ks[3] = {blck == 1 ? 37 : blck, blck == 1 ? 96 : 3 * blck,
                               blck == 1 ? 608 : (blck == 32 ? 19 : 5) * blck};
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) {
                mm_case c = {TYPES[t], Ks[i], Ns[(i + j) % 3], Ms[j]};
                check_case(&r, &c);
            }
    }
}

/* A model-sized case: K = 1536 (SmolLM2's ffn), N = 64, a prefill-like batch. */
Test(matmul, model_sized) {
    lm_test_rng r = {lm_test_seed()};
    const lm_type types[] = {LM_TYPE_Q4_1, LM_TYPE_Q8_0, LM_TYPE_Q4_K, LM_TYPE_Q6_K};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        mm_case c = {types[t], 1536, 64, 9};
        check_case(&r, &c);
    }
}

/* The dot product this CPU uses (AVX2 where available) against the plain C one, over 3
 * columns at once and one alone. */
Test(matmul, simd_equals_scalar) {
    lm_test_rng r = {lm_test_seed()};
    enum { K = 2048, C = 3 };
    static float w[K], x[K];
    static uint8_t wq[K * 2], xq[C][K * 3];
    for (size_t t = 0; t < sizeof TYPES / sizeof TYPES[0]; t++) {
        lm__vec_dot vd;
        if (!lm__cpu_vec_dot_get(TYPES[t], &vd)) continue; /* float types */
        const char *tn = lm_type_get(TYPES[t]).name;
        if (vd.fn == vd.scalar) cr_log_info("%s: no SIMD version on this CPU", tn);
        for (int rep = 0; rep < 10; rep++) {
            lm_test_fill_normal(&r, w, K, rep % 2 ? 1.0f : 1e-3f);
            lm_quantize_row(TYPES[t], w, wq, K);
            for (int c = 0; c < C; c++) {
                lm_test_fill_normal(&r, x, K, 1.0f);
                if (rep % 5 == 0) x[lm_test_rng_u64(&r) % K] = -300.0f; /* an outlier block */
                if (vd.act_blck == LM_QK_K)
                    lm__quantize_q16k(x, (lm__q16k *)xq[c], K);
                else
                    lm__quantize_q16a(x, (lm__q16a *)xq[c], K);
            }
            const int64_t nb = K / lm_type_get(TYPES[t]).blck;
            float a[C], b[C], one;
            vd.fn(wq, xq, sizeof xq[0], C, nb, a);
            vd.scalar(wq, xq, sizeof xq[0], C, nb, b);
            vd.fn(wq, xq[C - 1], 0, 1, nb, &one);
            cr_assert(memcmp(a, b, sizeof a) == 0,
                      "%s: SIMD %.9g %.9g %.9g != scalar %.9g %.9g %.9g", tn, a[0], a[1], a[2],
                      b[0], b[1], b[2]);
            cr_assert(memcmp(&one, &a[C - 1], sizeof one) == 0, "%s: a column alone differs", tn);
        }
    }
}

/* ---- errors ---- */

static void expect_invalid(lm_status s, const char *needle) {
    cr_expect_eq(s, LM_ERR_INVALID_ARG, "status %d", (int)s);
    cr_expect(strstr(lm_last_error(), needle) != NULL, "message '%s' lacks '%s'", lm_last_error(),
              needle);
}

Test(matmul, bad_shapes_and_types) {
    lm_backend *be = g_be[1];
    static uint8_t wbytes[4096];
    static float xs[1024];
    /* K = 48 is not a multiple of Q4_1's 32, K = 288 not of Q4_K's 256 */
    dt w48 = dt_new(be, LM_TYPE_F32, 48, 2, NULL), x48 = dt_new(be, LM_TYPE_F32, 48, 1, xs);
    dt d2 = dt_new(be, LM_TYPE_F32, 2, 1, NULL);
    lm_tensor wq = w48.t;
    wq.type = LM_TYPE_Q4_1, wq.nb[0] = 20;
    expect_invalid(be->ops->mul_mat(be, &wq, &x48.t, &d2.t), "block size");
    dt wk = dt_new(be, LM_TYPE_F32, 288, 1, NULL), xk = dt_new(be, LM_TYPE_F32, 288, 1, xs);
    lm_tensor wk4 = wk.t;
    wk4.type = LM_TYPE_Q4_K, wk4.nb[0] = 144;
    expect_invalid(be->ops->mul_mat(be, &wk4, &xk.t, &d2.t), "block size");
    /* not computable as a weight: IQ4_NL, and Q8_K (an activation format) */
    dt w256 = dt_new(be, LM_TYPE_Q8_K, 256, 2, wbytes), x256 = dt_new(be, LM_TYPE_F32, 256, 1, xs);
    expect_invalid(be->ops->mul_mat(be, &w256.t, &x256.t, &d2.t), "not supported");
    dt wnl = dt_new(be, LM_TYPE_IQ4_NL, 256, 2, wbytes);
    expect_invalid(be->ops->mul_mat(be, &wnl.t, &x256.t, &d2.t), "not supported");
    /* x must be F32 with W's K */
    dt w4 = dt_new(be, LM_TYPE_Q4_K, 256, 2, NULL), xh = dt_new(be, LM_TYPE_F16, 256, 1, NULL);
    expect_invalid(be->ops->mul_mat(be, &w4.t, &xh.t, &d2.t), "type");
    expect_invalid(be->ops->mul_mat(be, &w4.t, &x48.t, &d2.t), "K");
    dt d3 = dt_new(be, LM_TYPE_F32, 3, 1, NULL);
    expect_invalid(be->ops->mul_mat(be, &w4.t, &x256.t, &d3.t), "dst");
    dt *all[] = {&w48, &x48, &d2, &wk, &xk, &w256, &x256, &wnl, &w4, &xh, &d3};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) dt_free(all[i]);
}
