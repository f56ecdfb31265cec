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
 * depend on the other columns of the batch.
 *
 * Dispatch levels: every case runs under every level this CPU supports (scalar, AVX2, ...)
 * and must equal the scalar result bit for bit (integer sums are exact, the float terms
 * are evaluated in the same order). The kernels are also compared directly on raw random
 * blocks (every bit pattern of levels and scales, any row and column count of a call) and
 * on the blocks that push the integer lanes to their bounds. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "cpu/cpu_internal.h"
#include "helpers/test_util.h"
#include "quant.h"

static lm_backend *g_be[2];    /* 1 thread, 3 threads */
bool lm__huge_available(void); /* hugepages.c (internal) */

/* the levels this CPU and build run, scalar first */
static int levels(lm__cpu_level *out) {
    int n = 0;
    for (int l = 0; l < LM__CPU_LEVEL_COUNT; l++)
        if (lm__cpu_level_supported((lm__cpu_level)l)) out[n++] = (lm__cpu_level)l;
    return n;
}

static void set_level(lm__cpu_level l) {
    for (int b = 0; b < 2; b++)
        cr_assert_eq(lm__cpu_set_level(g_be[b], l), LM_OK, "%s", lm_last_error());
}

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

/* A weight of type t, [K, N], quantized from normal floats (sd 0.1) drawn from r */
static dt dt_weight(lm_backend *be, lm_test_rng *r, lm_type t, int64_t K, int64_t N) {
    const size_t rs = lm_row_size(t, K);
    float *wf = malloc(sizeof(float) * (size_t)(K * N));
    char *w = malloc(rs * (size_t)N);
    cr_assert(wf && w);
    lm_test_fill_normal(r, wf, (size_t)(K * N), 0.1f);
    for (int64_t n = 0; n < N; n++) lm_quantize_row(t, wf + n * K, w + (size_t)n * rs, K);
    dt d = dt_new(be, t, K, N, w);
    free(wf), free(w);
    return d;
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

    lm__cpu_level lv[LM__CPU_LEVEL_COUNT];
    const int nlv = levels(lv);
    float *out1 = NULL;
    for (int l = 0; l < nlv; l++) {
        set_level(lv[l]);
        const char *ln = lm__cpu_level_name(lv[l]);
        float *o1 = run_mul_mat(0, type, w, x, K, N, M), *o3 = run_mul_mat(1, type, w, x, K, N, M);
        cr_assert(memcmp(o1, o3, (size_t)(N * M) * sizeof(float)) == 0,
                  "%s %s K=%lld N=%lld M=%lld: 1 and 3 threads differ", ln, tn, (long long)K,
                  (long long)N, (long long)M);
        float *last = run_mul_mat(0, type, w, x + (M - 1) * K, K, N, 1); /* last column alone */
        cr_assert(memcmp(last, o1 + (M - 1) * N, (size_t)N * sizeof(float)) == 0,
                  "%s %s: a column's result depends on the batch", ln, tn);
        if (!out1)
            out1 = o1; /* scalar: checked against the references below */
        else {
            for (int64_t i = 0; i < N * M; i++)
                cr_assert(memcmp(&o1[i], &out1[i], sizeof(float)) == 0,
                          "%s %s K=%lld N=%lld M=%lld [%lld]: %.9g != scalar %.9g", ln, tn,
                          (long long)K, (long long)N, (long long)M, (long long)i, o1[i], out1[i]);
            free(o1);
        }
        free(o3), free(last);
    }
    set_level(lm__cpu_level_best());

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
    free(wf), free(x), free(w), free(wd), free(out1), free(xq), free(hs);
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

/* ---- the kernels of every level against the scalar ones, on raw blocks ---- */

/* byte offsets of a block's f16 scales (-1: none): kept finite so that results are numbers */
static void f16_fields(lm_type t, int *a, int *b) {
    *a = 0, *b = -1;
    switch (t) {
    case LM_TYPE_Q4_1:
    case LM_TYPE_Q5_1:
    case LM_TYPE_Q4_K:
    case LM_TYPE_Q5_K:
        *b = 2;
        break;
    case LM_TYPE_Q2_K:
        *a = 80, *b = 82;
        break;
    case LM_TYPE_Q3_K:
        *a = 108;
        break;
    case LM_TYPE_Q6_K:
        *a = 208;
        break;
    default:
        break;
    }
}

static void put_f16(uint8_t *p, float v) {
    const uint16_t h = lm_fp32_to_fp16(v);
    memcpy(p, &h, 2);
}

/* n blocks of random bytes (every level and scale pattern), finite scales */
static void random_blocks(lm_test_rng *r, lm_type t, uint8_t *w, int64_t n) {
    const size_t bs = lm_type_get(t).size;
    for (size_t i = 0; i < bs * (size_t)n; i++) w[i] = (uint8_t)lm_test_rng_u64(r);
    int fa, fb;
    f16_fields(t, &fa, &fb);
    for (int64_t b = 0; b < n; b++) {
        float v[2];
        lm_test_fill_normal(r, v, 2, 0.01f);
        put_f16(w + b * bs + fa, v[0]);
        if (fb >= 0) put_f16(w + b * bs + fb, v[1]);
    }
}

/* activations of column c: random, or (extreme) every value at +-32767 */
static void random_act(lm_test_rng *r, int act_blck, uint8_t *a, int64_t K, int extreme) {
    static float x[4096];
    lm_test_fill_normal(r, x, (size_t)K, 1.0f);
    if (extreme)
        for (int64_t k = 0; k < K; k++) x[k] = x[k] < 0 ? -1.0f : 1.0f;
    else if (lm_test_rng_u64(r) % 3 == 0)
        x[lm_test_rng_u64(r) % (uint64_t)K] = -300.0f; /* an outlier block */
    if (act_blck == LM_QK_K)
        lm__quantize_q16k(x, (lm__q16k *)a, K);
    else
        lm__quantize_q16a(x, (lm__q16a *)a, K);
}

static void compare_kernels(const lm__cpu_kernels *kl, const lm__cpu_kernels *ks, lm_type t,
                            const uint8_t *w, size_t ws, const uint8_t *act, size_t as, int64_t nb,
                            const char *what) {
    const char *tn = lm_type_get(t).name, *ln = lm__cpu_level_name(kl->level);
    static const int ncs[] = {1, 2, 3, 4, 5, 8, 9, 12, 16, 17, LM__NC - 1, LM__NC};
    /* the same rows in the interleaved layout: block b of row r at (b * LM__MR + r) * bs */
    const size_t bs = lm_type_get(t).size;
    static uint8_t wi[LM__MR * 2048 * 2];
    cr_assert(LM__MR * (size_t)nb * bs <= sizeof wi);
    for (int r = 0; r < LM__MR; r++)
        for (int64_t b = 0; b < nb; b++)
            memcpy(wi + ((size_t)b * LM__MR + (size_t)r) * bs, w + (size_t)r * ws + (size_t)b * bs,
                   bs);
    /* and packed (LM_LAYOUT_CPU_P8) where the level has kernels for it */
    static uint8_t wp[sizeof wi];
    for (int64_t b = 0; kl->qdot_p8[t] && b < nb; b++)
        lm__cpu_p8_pack(t, wi + (size_t)b * LM__MR * bs, wp + (size_t)b * LM__MR * bs);
    for (int nr = 1; nr <= LM__MR; nr++)
        for (size_t k = 0; k < sizeof ncs / sizeof ncs[0]; k++) {
            const int nc = ncs[k];
            float a[LM__NC][LM__MR], b[LM__NC][LM__MR];
            memset(a, 0xff, sizeof a), memset(b, 0xff, sizeof b);
            kl->qdot[t](w, ws, lm_type_get(t).size, nr, act, as, nc, nb, &a[0][0], LM__MR);
            ks->qdot[t](w, ws, lm_type_get(t).size, nr, act, as, nc, nb, &b[0][0], LM__MR);
            for (int c = 0; c < nc; c++)
                for (int rr = 0; rr < nr; rr++)
                    cr_assert(memcmp(&a[c][rr], &b[c][rr], sizeof(float)) == 0,
                              "%s %s (%s) nr=%d nc=%d row %d col %d: %.9g != scalar %.9g", ln, tn,
                              what, nr, nc, rr, c, a[c][rr], b[c][rr]);
            memset(a, 0xff, sizeof a);
            kl->qdot[t](wi, bs, LM__MR * bs, nr, act, as, nc, nb, &a[0][0], LM__MR);
            if (nc == 1) /* the scalar kernel reads the layout too */
                ks->qdot[t](wi, bs, LM__MR * bs, nr, act, as, nc, nb, &a[1][0], LM__MR);
            for (int rr = 0; nc == 1 && rr < nr; rr++)
                cr_assert(memcmp(&a[1][rr], &b[0][rr], sizeof(float)) == 0,
                          "scalar %s (interleaved) row %d", tn, rr);
            for (int c = 0; c < nc; c++)
                for (int rr = 0; rr < nr; rr++)
                    cr_assert(memcmp(&a[c][rr], &b[c][rr], sizeof(float)) == 0,
                              "%s %s (%s, interleaved) nr=%d nc=%d row %d col %d: %.9g != %.9g", ln,
                              tn, what, nr, nc, rr, c, a[c][rr], b[c][rr]);
            if (nr < LM__MR || !kl->qdot_p8[t]) continue; /* packed: full groups only */
            memset(a, 0xff, sizeof a);
            kl->qdot_p8[t](wp, bs, LM__MR * bs, nr, act, as, nc, nb, &a[0][0], LM__MR);
            for (int c = 0; c < nc; c++)
                for (int rr = 0; rr < nr; rr++)
                    cr_assert(memcmp(&a[c][rr], &b[c][rr], sizeof(float)) == 0,
                              "%s %s (%s, packed) nc=%d row %d col %d: %.9g != %.9g", ln, tn, what,
                              nc, rr, c, a[c][rr], b[c][rr]);
        }
}

static const lm_type QTYPES[] = {LM_TYPE_Q4_0, LM_TYPE_Q4_1, LM_TYPE_Q5_0, LM_TYPE_Q5_1,
                                 LM_TYPE_Q8_0, LM_TYPE_Q2_K, LM_TYPE_Q3_K, LM_TYPE_Q4_K,
                                 LM_TYPE_Q5_K, LM_TYPE_Q6_K};

/* Every quantized kernel of every level = the scalar one, for every rows x columns count of
 * a call, on random raw blocks and activations (some at +-32767). */
Test(matmul, every_level_equals_scalar) {
    lm_test_rng r = {lm_test_seed()};
    lm__cpu_level lv[LM__CPU_LEVEL_COUNT];
    const int nlv = levels(lv);
    const lm__cpu_kernels *ks = lm__cpu_kernels_get(LM__CPU_SCALAR);
    if (nlv == 1) cr_log_info("only the scalar level runs on this CPU");
    enum { K = 1024 };
    static uint8_t w[LM__MR * K * 2], act[LM__NC * K * 3];
    for (int l = 1; l < nlv; l++) {
        const lm__cpu_kernels *kl = lm__cpu_kernels_get(lv[l]);
        cr_assert_eq(kl->level, lv[l]);
        for (size_t t = 0; t < sizeof QTYPES / sizeof QTYPES[0]; t++) {
            const lm_type ty = QTYPES[t];
            const int blck = lm_type_get(ty).blck, ab = lm__act_blck(ty);
            const size_t as = lm__act_size(ty);
            for (int rep = 0; rep < 6; rep++) {
                const int64_t nb = 1 + (int64_t)(lm_test_rng_u64(&r) % (uint64_t)(K / blck));
                const size_t ws = lm_row_size(ty, nb * blck) + (rep % 2) * lm_type_get(ty).size;
                random_blocks(&r, ty, w, (int64_t)(ws / lm_type_get(ty).size) * LM__MR);
                for (int c = 0; c < LM__NC; c++)
                    random_act(&r, ab, act + (size_t)c * (size_t)(nb * blck / ab) * as, nb * blck,
                               rep == 5);
                compare_kernels(kl, ks, ty, w, ws, act, (size_t)(nb * blck / ab) * as, nb,
                                "random");
            }
        }
    }
}

/* The blocks that push the integer lanes to their bounds: q6_K scale -128 with levels -32,
 * q5_K scale 63 with levels 31, q4_K scale 63 with levels 15, q8_0 levels -128, against
 * activations all +-32767. */
Test(matmul, integer_bounds) {
    lm_test_rng r = {lm_test_seed()};
    lm__cpu_level lv[LM__CPU_LEVEL_COUNT];
    const int nlv = levels(lv);
    const lm__cpu_kernels *ks = lm__cpu_kernels_get(LM__CPU_SCALAR);
    enum { NB = 3 };
    static lm_block_q6_K w6[LM__MR * NB];
    static lm_block_q5_K w5[LM__MR * NB];
    static lm_block_q4_K w4[LM__MR * NB];
    static lm_block_q8_0 w8[LM__MR * NB * 8];
    static lm__q16k ak[LM__NC * NB];
    static lm__q16a aa[LM__NC * NB * 8];
    for (int i = 0; i < LM__MR * NB; i++) {
        memset(&w6[i], 0, sizeof w6[i]); /* ql = qh = 0: level -32 */
        memset(w6[i].scales, 0x80, sizeof w6[i].scales);
        put_f16((uint8_t *)&w6[i].d, 0.5f);
        memset(&w5[i], 0xff, sizeof w5[i]); /* levels 31, 6-bit scales and mins 63 */
        put_f16((uint8_t *)&w5[i].d, 0.25f), put_f16((uint8_t *)&w5[i].dmin, 0.125f);
        memset(&w4[i], 0xff, sizeof w4[i]); /* levels 15, 6-bit scales and mins 63 */
        put_f16((uint8_t *)&w4[i].d, 0.25f), put_f16((uint8_t *)&w4[i].dmin, 0.125f);
    }
    for (int i = 0; i < LM__MR * NB * 8; i++) {
        memset(w8[i].qs, 0x80, sizeof w8[i].qs);
        put_f16((uint8_t *)&w8[i].d, 1.0f);
    }
    for (int c = 0; c < LM__NC; c++) {
        static float x[NB * LM_QK_K];
        for (int k = 0; k < NB * LM_QK_K; k++) x[k] = c % 2 ? 1.0f : -1.0f; /* +-32767 */
        if (c == 3) x[5] = 0.5f; /* one smaller element: the scale stays, others +-32767 */
        lm__quantize_q16k(x, ak + c * NB, NB * LM_QK_K);
        lm__quantize_q16a(x, aa + c * NB * 8, NB * LM_QK_K);
    }
    /* the exact value of the q6_K case: 256 products of 4096 * 32767 per block */
    float o[LM__NC][LM__MR];
    ks->qdot[LM_TYPE_Q6_K](w6, sizeof w6[0] * NB, sizeof w6[0], 1, ak, sizeof ak[0] * NB, 1, NB,
                           &o[0][0], LM__MR);
    const double blk = 256.0 * 4096 * 32767 * (1.0 / 32767) * 0.5; /* (-128)(-32)(-32767) */
    cr_assert(fabs(o[0][0] + NB * blk) <= 1e-6 * NB * blk, "q6_K bound: %.9g, expected %.9g",
              o[0][0], -NB * blk);
    for (int l = 1; l < nlv; l++) {
        const lm__cpu_kernels *kl = lm__cpu_kernels_get(lv[l]);
        compare_kernels(kl, ks, LM_TYPE_Q6_K, (const uint8_t *)w6, sizeof w6[0] * NB,
                        (const uint8_t *)ak, sizeof ak[0] * NB, NB, "bounds");
        compare_kernels(kl, ks, LM_TYPE_Q5_K, (const uint8_t *)w5, sizeof w5[0] * NB,
                        (const uint8_t *)ak, sizeof ak[0] * NB, NB, "bounds");
        compare_kernels(kl, ks, LM_TYPE_Q4_K, (const uint8_t *)w4, sizeof w4[0] * NB,
                        (const uint8_t *)ak, sizeof ak[0] * NB, NB, "bounds");
        compare_kernels(kl, ks, LM_TYPE_Q8_0, (const uint8_t *)w8, sizeof w8[0] * NB * 8,
                        (const uint8_t *)aa, sizeof aa[0] * NB * 8, NB * 8, "bounds");
    }
    (void)r;
}

/* Float dot products and the f16 conversion of every level = the scalar ones, any length. */
Test(matmul, float_kernels_every_level) {
    lm_test_rng r = {lm_test_seed()};
    lm__cpu_level lv[LM__CPU_LEVEL_COUNT];
    const int nlv = levels(lv);
    const lm__cpu_kernels *ks = lm__cpu_kernels_get(LM__CPU_SCALAR);
    enum { N = 613 };
    static float w[N], x[N], fa[N], fb[N];
    static uint16_t h[N];
    for (int l = 1; l < nlv; l++) {
        const lm__cpu_kernels *kl = lm__cpu_kernels_get(lv[l]);
        for (int rep = 0; rep < 20; rep++) {
            /* head sizes (whole 16-lane rounds) and any length */
            const int n = rep == 0 ? 64 : rep == 1 ? 256 : 1 + (int)(lm_test_rng_u64(&r) % N);
            lm_test_fill_normal(&r, w, N, 1.0f), lm_test_fill_normal(&r, x, N, 1.0f);
            const lm_type ft[] = {LM_TYPE_F32, LM_TYPE_F16, LM_TYPE_BF16};
            for (int t = 0; t < 3; t++) {
                const void *wp = w;
                if (ft[t] != LM_TYPE_F32) {
                    lm_quantize_row(ft[t], w, h, n);
                    wp = h;
                }
                const float a = kl->fdot[ft[t]](wp, x, n), b = ks->fdot[ft[t]](wp, x, n);
                cr_assert(memcmp(&a, &b, sizeof a) == 0, "%s %s n=%d: %.9g != scalar %.9g",
                          lm__cpu_level_name(lv[l]), lm_type_get(ft[t]).name, n, a, b);
            }
            for (int i = 0; i < n; i++) h[i] = (uint16_t)lm_test_rng_u64(&r); /* any half */
            kl->f16_to_f32(h, fa, n), ks->f16_to_f32(h, fb, n);
            for (int i = 0; i < n; i++)
                cr_assert(memcmp(&fa[i], &fb[i], 4) == 0 || (fa[i] != fa[i] && fb[i] != fb[i]),
                          "f16 %04x: %g != %g", h[i], fa[i], fb[i]);
            /* float -> half: any float bits (NaNs, infinities, subnormals, overflow), and
             * values near half's rounding ties and its subnormal and overflow edges */
            uint32_t ub[N];
            for (int i = 0; i < n; i++) {
                ub[i] = (uint32_t)lm_test_rng_u64(&r);
                if (i % 3 == 1) /* exponents 103..142: half's subnormals to past its max */
                    ub[i] = (ub[i] & 0x80001fffu) | ((uint32_t)(103 + (ub[i] >> 13) % 40) << 23);
                else if (i % 7 == 3) /* a NaN with payload, either sign */
                    ub[i] |= 0x7f800001u;
                memcpy(&fa[i], &ub[i], 4);
            }
            uint16_t ha[N], hb[N];
            kl->f32_to_f16(fa, ha, n), ks->f32_to_f16(fa, hb, n);
            for (int i = 0; i < n; i++)
                cr_assert_eq(ha[i], hb[i], "%s f32 %08x -> %04x, scalar %04x",
                             lm__cpu_level_name(lv[l]), ub[i], ha[i], hb[i]);
        }
    }
}

/* Attention's kernels at every level, length and head count, bit for bit: attn_qk = a
 * fdot[F32] per (head, row); attn_pv (the P.V steps with the outputs in registers) = per
 * head and element, a += w v row after row (this file has no contraction). Their F16 forms
 * on f16 rows = the float forms on the same rows converted. */
Test(matmul, attention_kernels_every_level) {
    lm_test_rng r = {lm_test_seed()};
    lm__cpu_level lv[LM__CPU_LEVEL_COUNT];
    const int nlv = levels(lv);
    enum { N = 300, S = 16, NH = 8, SS = 17 };
    static float v[S][N], q[NH][N], a0[NH][N], ref[NH][N], out[NH][N];
    static uint16_t h[S][N];
    for (int rep = 0; rep < 40; rep++) {
        const int64_t n = rep == 0 ? 64 : rep == 1 ? 256 : 1 + (int64_t)(lm_test_rng_u64(&r) % N);
        /* the first two: 16 rows (AVX-512 scores 8 rows at a time), 3 and 8 heads */
        const int steps = rep < 2 ? 16 : 1 + (int)(lm_test_rng_u64(&r) % S);
        const int nh = rep == 0 ? 3 : rep == 1 ? 8 : 1 + (int)(lm_test_rng_u64(&r) % NH);
        const float *vp[S], *qp[NH];
        float *op[NH];
        const uint16_t *hp[S];
        float w[NH * SS], s[NH * SS], s0[NH * SS];
        for (int j = 0; j < S; j++) {
            lm_test_fill_normal(&r, v[j], N, 1.0f), vp[j] = v[j], hp[j] = h[j];
            for (int i = 0; i < N; i++) /* rows that f16 holds exactly */
                h[j][i] = lm_fp32_to_fp16(v[j][i]), v[j][i] = lm_fp16_to_fp32(h[j][i]);
        }
        for (int k = 0; k < NH; k++) {
            lm_test_fill_normal(&r, q[k], N, 1.0f), lm_test_fill_normal(&r, a0[k], N, 1.0f);
            qp[k] = q[k], op[k] = out[k];
        }
        lm_test_fill_normal(&r, w, NH * SS, 1.0f);
        const lm__cpu_kernels *ks = lm__cpu_kernels_get(LM__CPU_SCALAR);
        for (int k = 0; k < nh; k++) {
            for (int j = 0; j < steps; j++) s0[k * SS + j] = ks->fdot[LM_TYPE_F32](vp[j], q[k], n);
            for (int64_t i = 0; i < n; i++) {
                ref[k][i] = a0[k][i];
                for (int j = 0; j < steps; j++) ref[k][i] += w[k * SS + j] * v[j][i];
            }
        }
        for (int l = 0; l < nlv; l++) {
            const lm__cpu_kernels *kl = lm__cpu_kernels_get(lv[l]);
            const char *name = lm__cpu_level_name(lv[l]);
            for (int f16 = 0; f16 < 2; f16++) {
                memset(s, 0, sizeof s);
                if (f16)
                    kl->attn_qk_f16(hp, steps, qp, nh, n, s, SS);
                else
                    kl->attn_qk(vp, steps, qp, nh, n, s, SS);
                for (int k = 0; k < nh; k++)
                    for (int j = 0; j < steps; j++)
                        cr_assert(memcmp(&s[k * SS + j], &s0[k * SS + j], 4) == 0,
                                  "%s attn_qk%s n=%lld heads=%d head %d row %d: %.9g != %.9g", name,
                                  f16 ? "_f16" : "", (long long)n, nh, k, j, s[k * SS + j],
                                  s0[k * SS + j]);
                memcpy(out, a0, sizeof a0);
                if (f16)
                    kl->attn_pv_f16(op, hp, steps, w, SS, nh, n);
                else
                    kl->attn_pv(op, vp, steps, w, SS, nh, n);
                for (int k = 0; k < nh; k++)
                    cr_assert(memcmp(out[k], ref[k], (size_t)n * sizeof(float)) == 0,
                              "%s attn_pv%s n=%lld steps=%d heads=%d: head %d differs", name,
                              f16 ? "_f16" : "", (long long)n, steps, nh, k);
                for (int k = nh; k < NH; k++) /* heads past nh untouched */
                    cr_assert(memcmp(out[k], a0[k], sizeof a0[k]) == 0, "%s attn_pv head %d", name,
                              k);
            }
        }
    }
}

/* bits equal, or both NaN (which NaN an add passes on is the CPU's choice) */
static bool same_float(float a, float b) {
    return memcmp(&a, &b, sizeof a) == 0 || (a != a && b != b);
}

/* Attention's online-softmax step at every level = the scalar one, bit for bit: partial tiles
 * (unset slots hold NaN garbage that must be ignored), fresh and running states, a max that
 * grows or not, scores down in exp's underflow, -inf and NaN scores, scales of either sign,
 * any head size for the rescaled outputs. */
Test(matmul, attention_softmax_every_level) {
    lm_test_rng r = {lm_test_seed()};
    lm__cpu_level lv[LM__CPU_LEVEL_COUNT];
    const int nlv = levels(lv);
    enum { PT = LM__ATTN_PT, NH = 24, D = 300 };
    static float s0[NH * PT], s[NH * PT], w[NH * PT], acc0[NH][D], acc[NH][D];
    const lm__cpu_kernels *ks = lm__cpu_kernels_get(LM__CPU_SCALAR);
    for (int rep = 0; rep < 200; rep++) {
        const int nh = 1 + (int)(lm_test_rng_u64(&r) % NH);
        const int o = rep % 3 ? 0 : (int)(lm_test_rng_u64(&r) % PT);
        const int n = rep % 3 ? PT - (int)(lm_test_rng_u64(&r) % 2)
                              : 1 + (int)(lm_test_rng_u64(&r) % (uint64_t)(PT - o));
        const int64_t d = 1 + (int64_t)(lm_test_rng_u64(&r) % D);
        const float scale = rep % 7 == 3   ? -0.3f
                            : rep % 5 == 1 ? 1.0f
                                           : 0.05f + lm_test_rng_uniform(&r);
        lm__attn_state st0[NH], st[NH];
        for (int h = 0; h < nh; h++) {
            for (int i = 0; i < PT; i++) {
                const float u = lm_test_rng_uniform(&r);
                s0[h * PT + i] = i < o || i >= o + n ? NAN /* unset */
                                 : u < 0.02f         ? -INFINITY
                                 : u < 0.03f         ? NAN
                                 : u < 0.1f          ? -200.0f * lm_test_rng_uniform(&r)
                                                     : 8.0f * lm_test_rng_normal(&r);
            }
            const bool fresh = lm_test_rng_u64(&r) % 3 == 0;
            st0[h] =
                (lm__attn_state){fresh ? -INFINITY : 8.0f * lm_test_rng_normal(&r),
                                 fresh ? 0.0f : 1.0f + 10.0f * lm_test_rng_uniform(&r), acc0[h]};
            if (fresh)
                memset(acc0[h], 0, sizeof acc0[h]);
            else
                lm_test_fill_normal(&r, acc0[h], D, 1.0f);
        }
        lm__attn_state ref_st[NH];
        static float ref_acc[NH][D], ref_w[NH * PT];
        memcpy(s, s0, sizeof s), memcpy(ref_acc, acc0, sizeof acc0),
            memcpy(ref_st, st0, sizeof st0);
        for (int h = 0; h < nh; h++) ref_st[h].acc = ref_acc[h];
        ks->attn_soft(ref_st, s, ref_w, nh, o, n, scale, d);
        /* the oracle itself, where no score is NaN: the new max, e^(s - m) within 1.7 units of
         * the last place of a float (3e-7 relative), 0 outside the slots */
        for (int h = 0; h < nh; h++) {
            float mx = st0[h].m;
            bool nan = false;
            for (int i = o; i < o + n; i++) {
                const float x = s0[h * PT + i] * scale;
                nan |= x != x;
                mx = x > mx ? x : mx;
            }
            if (nan || isinf(mx)) continue; /* +inf: a -inf score times a negative scale */
            cr_assert(memcmp(&mx, &ref_st[h].m, 4) == 0, "rep %d pair %d: m %.9g, expected %.9g",
                      rep, h, ref_st[h].m, mx);
            for (int i = 0; i < PT; i++) {
                const double e =
                    i < o || i >= o + n ? 0.0 : exp((double)(s0[h * PT + i] * scale - mx));
                cr_assert(fabs(ref_w[h * PT + i] - e) <= 3e-7 * e + 1e-37,
                          "rep %d slot %d: %.9g vs %.9g", rep, i, ref_w[h * PT + i], e);
            }
        }
        for (int l = 1; l < nlv; l++) {
            const char *name = lm__cpu_level_name(lv[l]);
            cr_assert(lm__cpu_kernels_get(lv[l])->attn_soft != ks->attn_soft,
                      "%s runs the scalar attn_soft", name);
            memcpy(s, s0, sizeof s), memcpy(acc, acc0, sizeof acc0), memcpy(st, st0, sizeof st0);
            memset(w, 0, sizeof w);
            for (int h = 0; h < nh; h++) st[h].acc = acc[h];
            lm__cpu_kernels_get(lv[l])->attn_soft(st, s, w, nh, o, n, scale, d);
            for (int h = 0; h < nh; h++) {
                cr_assert(same_float(st[h].m, ref_st[h].m) && same_float(st[h].l, ref_st[h].l),
                          "%s rep %d pair %d: m %.9g l %.9g, scalar m %.9g l %.9g", name, rep, h,
                          st[h].m, st[h].l, ref_st[h].m, ref_st[h].l);
                for (int i = 0; i < PT; i++)
                    cr_assert(same_float(w[h * PT + i], ref_w[h * PT + i]),
                              "%s rep %d pair %d slot %d (o %d n %d): w %.9g != %.9g", name, rep, h,
                              i, o, n, w[h * PT + i], ref_w[h * PT + i]);
                for (int64_t i = 0; i < d; i++)
                    cr_assert(same_float(acc[h][i], ref_acc[h][i]), "%s rep %d pair %d acc[%lld]",
                              name, rep, h, (long long)i);
            }
        }
    }
}

/* Activation quantization of every level = the scalar one, byte for byte: normal values,
 * outliers, exact halves (amax 32767: d = 1, so x = k + 0.5 is a tie), zeros, +-inf, NaN. */
Test(matmul, quantize_every_level) {
    lm_test_rng r = {lm_test_seed()};
    lm__cpu_level lv[LM__CPU_LEVEL_COUNT];
    const int nlv = levels(lv);
    const lm__cpu_kernels *ks = lm__cpu_kernels_get(LM__CPU_SCALAR);
    enum { K = 6 * 256 };
    static float x[K];
    static lm__q16a a1[K / 32], a2[K / 32];
    static lm__q16k k1[K / 256], k2[K / 256];
    for (int l = 1; l < nlv; l++) {
        const lm__cpu_kernels *kl = lm__cpu_kernels_get(lv[l]);
        for (int rep = 0; rep < 20; rep++) {
            lm_test_fill_normal(&r, x, K, rep % 2 ? 1.0f : 1e-3f);
            for (int i = 0; i < K; i += 1 + (int)(lm_test_rng_u64(&r) % 300)) x[i] *= 50;
            for (int i = 256; i < 512; i++) /* a block of ties */
                x[i] = i == 256 ? 32767.0f
                                : (float)((int)(lm_test_rng_u64(&r) % 60000) - 30000) + 0.5f;
            memset(x + 512, 0, 256 * sizeof(float)); /* zeros */
            if (rep % 4 == 1) x[800] = INFINITY, x[801] = -INFINITY;
            if (rep % 4 == 2) x[1100] = NAN;
            memset(a1, 0, sizeof a1), memset(a2, 0, sizeof a2);
            memset(k1, 0, sizeof k1), memset(k2, 0, sizeof k2);
            kl->quantize_q16a(x, a1, K), ks->quantize_q16a(x, a2, K);
            kl->quantize_q16k(x, k1, K), ks->quantize_q16k(x, k2, K);
            for (int b = 0; b < K / 32; b++)
                cr_assert(memcmp(&a1[b], &a2[b], sizeof a1[b]) == 0, "%s q16a block %d differs",
                          lm__cpu_level_name(lv[l]), b);
            for (int b = 0; b < K / 256; b++)
                cr_assert(memcmp(&k1[b], &k2[b], sizeof k1[b]) == 0, "%s q16k block %d differs",
                          lm__cpu_level_name(lv[l]), b);
        }
    }
}

/* ---- levels: forcing, names, errors ---- */

Test(matmul, level_in_device_name_and_forcing) {
    lm__cpu_level lv[LM__CPU_LEVEL_COUNT];
    const int nlv = levels(lv);
    cr_assert(nlv >= 1 && lv[0] == LM__CPU_SCALAR, "scalar always runs");
    const char *best = lm__cpu_level_name(lm__cpu_level_best());
    cr_assert(strstr(g_be[0]->ops->device_name(g_be[0]), best), "device name '%s' lacks '%s'",
              g_be[0]->ops->device_name(g_be[0]), best);
    for (int l = 0; l < nlv; l++) {
        set_level(lv[l]);
        cr_assert_eq(lm__cpu_get_level(g_be[0]), lv[l]);
        cr_assert(strstr(g_be[0]->ops->device_name(g_be[0]), lm__cpu_level_name(lv[l])));
    }
    for (int l = 0; l < LM__CPU_LEVEL_COUNT; l++) {
        if (lm__cpu_level_supported((lm__cpu_level)l)) continue;
        set_level(LM__CPU_SCALAR);
        cr_assert_eq(lm__cpu_set_level(g_be[0], (lm__cpu_level)l), LM_ERR_UNSUPPORTED);
        cr_assert(strstr(lm_last_error(), lm__cpu_level_name((lm__cpu_level)l)) &&
                      strstr(lm_last_error(), "available: scalar"),
                  "message: %s", lm_last_error());
        cr_assert_eq(lm__cpu_get_level(g_be[0]), LM__CPU_SCALAR, "the level is kept");
    }
    lm__cpu_level out;
    cr_assert_eq(lm__cpu_level_parse("sse9", &out), LM_ERR_INVALID_ARG);
    cr_assert(strstr(lm_last_error(), "sse9"));
}

/* LUMEN_CPU_LEVEL at backend creation: a known level is used (and named), an unknown or
 * unsupported one is a clear error, not a silent fallback. */
Test(matmul, level_from_environment) {
    lm_backend_config cfg = {1, 0};
    lm_backend *be = NULL;
    setenv("LUMEN_CPU_LEVEL", "scalar", 1);
    cr_assert_eq(lm_backend_create("cpu", &cfg, &be), LM_OK, "%s", lm_last_error());
    cr_assert_eq(lm__cpu_get_level(be), LM__CPU_SCALAR);
    cr_assert(strstr(be->ops->device_name(be), "scalar"), "%s", be->ops->device_name(be));
    lm_backend_destroy(be);
    setenv("LUMEN_CPU_LEVEL", "fast", 1);
    cr_assert_eq(lm_backend_create("cpu", &cfg, &be), LM_ERR_INVALID_ARG);
    cr_assert(strstr(lm_last_error(), "LUMEN_CPU_LEVEL=fast"), "%s", lm_last_error());
    for (int l = 0; l < LM__CPU_LEVEL_COUNT; l++) {
        if (lm__cpu_level_supported((lm__cpu_level)l)) continue;
        setenv("LUMEN_CPU_LEVEL", lm__cpu_level_name((lm__cpu_level)l), 1);
        cr_assert_eq(lm_backend_create("cpu", &cfg, &be), LM_ERR_UNSUPPORTED);
        cr_assert(strstr(lm_last_error(), "not available"), "%s", lm_last_error());
    }
    unsetenv("LUMEN_CPU_LEVEL");
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

/* The packed group block (LM_LAYOUT_CPU_P8, backend.h), which the VNNI kernels read: the
 * 8 rows' f16 fields first (field h of row r at (8 h + r) * 2, from the block's byte hoff +
 * 2 h), then byte l of the rest of row r (from byte loff + l) at 16 nh + (8 (l / 4) + r) * 4
 * + l % 4; unpacking gives the blocks back; other types have no packed form. */
Test(matmul, packed_group_block_layout) {
    lm_test_rng r = {lm_test_seed()};
    static const struct {
        lm_type t;
        size_t nh, hoff, loff;
    } g[] = {{LM_TYPE_Q4_0, 1, 0, 2},  {LM_TYPE_Q4_1, 2, 0, 4},   {LM_TYPE_Q5_0, 1, 0, 2},
             {LM_TYPE_Q5_1, 2, 0, 4},  {LM_TYPE_Q8_0, 1, 0, 2},   {LM_TYPE_Q4_K, 2, 0, 4},
             {LM_TYPE_Q5_K, 2, 0, 4},  {LM_TYPE_Q6_K, 1, 208, 0}, {LM_TYPE_Q2_K, 2, 80, 0},
             {LM_TYPE_Q3_K, 1, 108, 0}};
    for (size_t t = 0; t < sizeof g / sizeof g[0]; t++) {
        const size_t bs = lm_type_get(g[t].t).size, nh = g[t].nh;
        uint8_t blocks[LM__MR * 256], p[LM__MR * 256], back[LM__MR * 256];
        for (size_t i = 0; i < LM__MR * bs; i++) blocks[i] = (uint8_t)lm_test_rng_u64(&r);
        cr_assert(lm__cpu_p8_type(g[t].t));
        lm__cpu_p8_pack(g[t].t, blocks, p);
        for (size_t row = 0; row < LM__MR; row++)
            for (size_t k = 0; k < bs; k++) {
                const bool half = k >= g[t].hoff && k < g[t].hoff + 2 * nh;
                const size_t f = k - g[t].hoff, l = k - g[t].loff,
                             at = half ? (f / 2 * LM__MR + row) * 2 + f % 2
                                       : 16 * nh + (l / 4 * LM__MR + row) * 4 + l % 4;
                cr_assert_eq(p[at], blocks[row * bs + k], "%s row %zu byte %zu",
                             lm_type_get(g[t].t).name, row, k);
            }
        lm__cpu_p8_unpack(g[t].t, p, back);
        cr_assert(memcmp(back, blocks, LM__MR * bs) == 0);
    }
    cr_assert(!lm__cpu_p8_type(LM_TYPE_F32) && !lm__cpu_p8_type(LM_TYPE_F16) &&
              !lm__cpu_p8_type(LM_TYPE_BF16));
}

/* w's first 16 rows (whole 8-row groups, a view with ne[1] = 16, as lm_bench_decode_roof
 * times a large head) give the first 16 outputs of the whole w, for one column */
static void check_row_view(lm_backend *be, const lm_tensor *w, const lm_tensor *x,
                           const float *full, const char *what) {
    lm_tensor v = *w, x1 = *x;
    v.ne[1] = 16;
    x1.ne[1] = 1;
    dt d = dt_new(be, LM_TYPE_F32, 16, 1, NULL);
    cr_assert_eq(be->ops->mul_mat(be, &v, &x1, &d.t), LM_OK, "%s", lm_last_error());
    cr_assert(memcmp(lm_cpu_buffer_ptr(d.buf), full, 16 * sizeof(float)) == 0,
              "%s %s: a 16-row view differs from the whole weight's first rows",
              lm_type_get(w->type).name, what);
    dt_free(&d);
}

/* w in rows, wi its interleaved bytes: packed, mul_mat and get_rows give the rows' bits
 * where the backend's level has packed kernels, and mul_mat refuses them (naming the level)
 * where it has none, the scalar level's case. */
static void check_packed(lm_backend *be, const lm_tensor *w, const char *wi, const lm_tensor *x,
                         const lm_tensor *ids, const lm_tensor *want_rows) {
    const lm_type ty = w->type;
    const size_t bs = lm_type_get(ty).size, rs = w->nb[1];
    const int64_t nb = w->ne[0] / lm_type_get(ty).blck, N = w->ne[1], M = x->ne[1];
    char *wp = malloc(rs * (size_t)N);
    memcpy(wp, wi, rs * (size_t)N);
    for (int64_t g = 0; g < N / LM__MR; g++)
        for (int64_t b = 0; b < nb; b++) {
            const size_t at = (size_t)g * LM__MR * rs + (size_t)b * LM__MR * bs;
            lm__cpu_p8_pack(ty, wi + at, wp + at);
        }
    dt tp = dt_new(be, ty, w->ne[0], N, wp);
    tp.t.layout = LM_LAYOUT_CPU_P8;
    dt da = dt_new(be, LM_TYPE_F32, N, M, NULL), db = dt_new(be, LM_TYPE_F32, N, M, NULL),
       gb = dt_new(be, LM_TYPE_F32, w->ne[0], N, NULL);
    const lm__cpu_level lv = lm__cpu_get_level(be);
    if (lm__cpu_kernels_get(lv)->qdot_p8[ty]) {
        for (int64_t m = 1; m <= M; m += M - 1) {
            lm_tensor xm = *x, dam = da.t, dbm = db.t;
            xm.ne[1] = dam.ne[1] = dbm.ne[1] = m;
            cr_assert_eq(be->ops->mul_mat(be, w, &xm, &dam), LM_OK, "%s", lm_last_error());
            cr_assert_eq(be->ops->mul_mat(be, &tp.t, &xm, &dbm), LM_OK, "%s", lm_last_error());
            cr_assert(memcmp(lm_cpu_buffer_ptr(da.buf), lm_cpu_buffer_ptr(db.buf),
                             sizeof(float) * (size_t)(N * m)) == 0,
                      "%s packed mul_mat differs, M=%lld", lm_type_get(ty).name, (long long)m);
            if (m == 1) check_row_view(be, &tp.t, x, lm_cpu_buffer_ptr(db.buf), "packed");
        }
    } else {
        cr_log_info("the %s level has no packed %s kernel", lm__cpu_level_name(lv),
                    lm_type_get(ty).name);
    }
    cr_assert_eq(be->ops->get_rows(be, &tp.t, ids, &gb.t), LM_OK, "%s", lm_last_error());
    cr_assert(memcmp(lm_cpu_buffer_ptr(want_rows->buf), lm_cpu_buffer_ptr(gb.buf),
                     sizeof(float) * (size_t)(w->ne[0] * N)) == 0,
              "%s packed get_rows differs", lm_type_get(ty).name);
    cr_assert_eq(lm__cpu_set_level(be, LM__CPU_SCALAR), LM_OK, "%s", lm_last_error());
    cr_assert_eq(be->ops->mul_mat(be, &tp.t, x, &db.t), LM_ERR_INVALID_ARG);
    cr_assert(strstr(lm_last_error(), "packed for kernels the scalar level does not have") != NULL,
              "%s", lm_last_error());
    cr_assert_eq(lm__cpu_set_level(be, lv), LM_OK, "%s", lm_last_error());
    cr_assert_eq(be->ops->copy(be, &tp.t, &tp.t), LM_ERR_INVALID_ARG);
    cr_assert(strstr(lm_last_error(), "interleaved layout (packed)") != NULL, "%s",
              lm_last_error());
    dt_free(&tp), dt_free(&da), dt_free(&db), dt_free(&gb);
    free(wp);
}

/* The interleaved weight layout (LM_LAYOUT_CPU_R8, cpu_relayout.c) at the op level: the
 * same bytes permuted by 8-row group give mul_mat (decode and prefill shapes) and get_rows
 * the same bits as rows, a last group of fewer rows included, and a view of its first groups
 * their rows' outputs; every other op refuses it.
 * The packed layout of the types that have one likewise (check_packed). */
Test(matmul, interleaved_layout_ops) {
    lm_test_rng r = {lm_test_seed()};
    const lm_type types[] = {LM_TYPE_Q8_0, LM_TYPE_Q4_0, LM_TYPE_Q4_1, LM_TYPE_Q5_0, LM_TYPE_Q5_1,
                             LM_TYPE_Q2_K, LM_TYPE_Q3_K, LM_TYPE_Q4_K, LM_TYPE_Q5_K, LM_TYPE_Q6_K};
    enum { K = 512, N = 21, M = 20 }; /* M > 16: the packed k-quants' prefill path too */
    static float wf[K * N], x[K * M];
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        const lm_type ty = types[t];
        const lm_type_traits tr = lm_type_get(ty);
        const size_t rs = lm_row_size(ty, K), bs = tr.size;
        const int64_t nb = K / tr.blck;
        char *w = malloc(rs * N), *wi = malloc(rs * N);
        lm_test_fill_normal(&r, wf, K * N, 0.1f);
        lm_test_fill_normal(&r, x, K * M, 1.0f);
        for (int n = 0; n < N; n++) lm_quantize_row(ty, wf + n * K, w + (size_t)n * rs, K);
        memcpy(wi, w, rs * N); /* the last N % 8 rows stay in rows */
        for (int g = 0; g < N / LM__MR; g++)
            for (int rr = 0; rr < LM__MR; rr++)
                for (int64_t b = 0; b < nb; b++)
                    memcpy(wi + (size_t)g * LM__MR * rs + ((size_t)b * LM__MR + rr) * bs,
                           w + ((size_t)g * LM__MR + rr) * rs + (size_t)b * bs, bs);
        lm_backend *be = g_be[1];
        dt tw = dt_new(be, ty, K, N, w), ti = dt_new(be, ty, K, N, wi);
        ti.t.layout = LM_LAYOUT_CPU_R8;
        dt tx = dt_new(be, LM_TYPE_F32, K, M, x);
        dt da = dt_new(be, LM_TYPE_F32, N, M, NULL), db = dt_new(be, LM_TYPE_F32, N, M, NULL);
        int32_t ids[N];
        for (int i = 0; i < N; i++) ids[i] = (i * 7) % N;
        dt tid = dt_new(be, LM_TYPE_I32, N, 1, ids);
        dt ga = dt_new(be, LM_TYPE_F32, K, N, NULL), gb = dt_new(be, LM_TYPE_F32, K, N, NULL);
        for (int m = 1; m <= M; m += M - 1) { /* one column (decode), then M */
            lm_tensor xm = tx.t, dam = da.t, dbm = db.t;
            xm.ne[1] = dam.ne[1] = dbm.ne[1] = m;
            cr_assert_eq(be->ops->mul_mat(be, &tw.t, &xm, &dam), LM_OK, "%s", lm_last_error());
            cr_assert_eq(be->ops->mul_mat(be, &ti.t, &xm, &dbm), LM_OK, "%s", lm_last_error());
            cr_assert(memcmp(lm_cpu_buffer_ptr(da.buf), lm_cpu_buffer_ptr(db.buf),
                             sizeof(float) * N * m) == 0,
                      "%s interleaved mul_mat differs, M=%d", tr.name, m);
            if (m == 1) check_row_view(be, &ti.t, &tx.t, lm_cpu_buffer_ptr(db.buf), "interleaved");
        }
        cr_assert_eq(be->ops->get_rows(be, &tw.t, &tid.t, &ga.t), LM_OK, "%s", lm_last_error());
        cr_assert_eq(be->ops->get_rows(be, &ti.t, &tid.t, &gb.t), LM_OK, "%s", lm_last_error());
        cr_assert(memcmp(lm_cpu_buffer_ptr(ga.buf), lm_cpu_buffer_ptr(gb.buf),
                         sizeof(float) * K * N) == 0,
                  "%s interleaved get_rows differs", tr.name);
        /* any other op: an error naming the layout, not a wrong answer */
        cr_assert_eq(be->ops->copy(be, &ti.t, &ti.t), LM_ERR_INVALID_ARG);
        cr_assert(strstr(lm_last_error(), "interleaved layout") != NULL, "%s", lm_last_error());
        if (lm__cpu_p8_type(ty)) check_packed(be, &tw.t, wi, &tx.t, &tid.t, &ga.t);
        lm_tensor fp = tx.t; /* a packed mark on a type without a packed form */
        fp.layout = LM_LAYOUT_CPU_P8;
        cr_assert_eq(be->ops->mul_mat(be, &fp, &tx.t, &da.t), LM_ERR_INVALID_ARG);
        cr_assert(strstr(lm_last_error(), "has no packed form") != NULL, "%s", lm_last_error());
        lm_tensor bad = tw.t;
        bad.layout = 7;
        cr_assert_eq(be->ops->mul_mat(be, &bad, &tx.t, &da.t), LM_ERR_INVALID_ARG);
        cr_assert(strstr(lm_last_error(), "unknown layout 7") != NULL, "%s", lm_last_error());
        dt *all[] = {&tw, &ti, &tx, &da, &db, &tid, &ga, &gb};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) dt_free(all[i]);
        free(w), free(wi);
    }
}

/* mul_mat_n: weights sharing x in one op give exactly the separate mul_mats' results, for
 * weights of one activation format (one quantization of x), of mixed formats (the op falls
 * back to separate calls) and in decode and prefill shapes; a bad count is refused. */
Test(matmul, shared_x_mul_mat_n) {
    lm_test_rng r = {lm_test_seed()};
    enum { K = 512, M = 11 };
    static const lm_type sets[][3] = {{LM_TYPE_Q4_1, LM_TYPE_Q8_0, LM_TYPE_Q5_0},
                                      {LM_TYPE_Q4_K, LM_TYPE_Q6_K, LM_TYPE_Q4_K},
                                      {LM_TYPE_Q4_K, LM_TYPE_Q8_0, LM_TYPE_F16}};
    static const int64_t Ns[3] = {40, 13, 21};
    static float x[K * M];
    lm_backend *be = g_be[1];
    for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++) {
        dt tw[3], da[3], db[3];
        lm_test_fill_normal(&r, x, K * M, 1.0f);
        dt tx = dt_new(be, LM_TYPE_F32, K, M, x);
        for (int i = 0; i < 3; i++) {
            tw[i] = dt_weight(be, &r, sets[s][i], K, Ns[i]);
            da[i] = dt_new(be, LM_TYPE_F32, Ns[i], M, NULL);
            db[i] = dt_new(be, LM_TYPE_F32, Ns[i], M, NULL);
        }
        for (int m = 1; m <= M; m += M - 1) {
            const lm_tensor *w[3];
            lm_tensor xa = tx.t, a[3], b[3], *pa[3];
            xa.ne[1] = m;
            for (int i = 0; i < 3; i++) {
                w[i] = &tw[i].t, a[i] = da[i].t, b[i] = db[i].t, pa[i] = &a[i];
                a[i].ne[1] = b[i].ne[1] = m;
                cr_assert_eq(be->ops->mul_mat(be, w[i], &xa, &b[i]), LM_OK, "%s", lm_last_error());
            }
            cr_assert_eq(be->ops->mul_mat_n(be, 3, w, &xa, pa), LM_OK, "%s", lm_last_error());
            for (int i = 0; i < 3; i++)
                cr_assert(memcmp(lm_cpu_buffer_ptr(da[i].buf), lm_cpu_buffer_ptr(db[i].buf),
                                 sizeof(float) * (size_t)(Ns[i] * m)) == 0,
                          "set %zu weight %d (%s) M=%d differs from its own mul_mat", s, i,
                          lm_type_get(sets[s][i]).name, m);
        }
        const lm_tensor *w1[1] = {&tw[0].t};
        lm_tensor *d1[1] = {&da[0].t};
        cr_assert_eq(be->ops->mul_mat_n(be, 4, w1, &tx.t, d1), LM_ERR_INVALID_ARG);
        cr_assert(strstr(lm_last_error(), "mul_mat_n: 4 weights") != NULL, "%s", lm_last_error());
        lm_tensor wrong = da[0].t; /* dst of the wrong shape: mul_mat's own message */
        wrong.ne[0] = 3;
        lm_tensor *dw[1] = {&wrong};
        cr_assert_eq(be->ops->mul_mat_n(be, 1, w1, &tx.t, dw), LM_ERR_INVALID_ARG);
        dt_free(&tx);
        for (int i = 0; i < 3; i++) dt_free(&tw[i]), dt_free(&da[i]), dt_free(&db[i]);
    }
}

/* norm_mul_mat_n: the RMS norm fused into the matmul's quantization gives exactly rms_norm
 * then mul_mat_n, with norm weights and without, for one activation format and for mixed
 * ones (the two ops then), in decode and prefill shapes (41 columns: more elements than the
 * calling thread quantizes alone, so each thread norms into its own scratch), on 1 and 3
 * threads; so does the generic fallback of a backend without the op; it leaves the scratch
 * alone where it fuses; bad arguments are refused with its name. */
Test(matmul, norm_fused_into_mul_mat_n) {
    lm_test_rng r = {lm_test_seed()};
    enum { K = 512, M = 41, N0 = 40, N1 = 24 };
    static const lm_type sets[][2] = {
        {LM_TYPE_Q4_1, LM_TYPE_Q8_0}, {LM_TYPE_Q4_K, LM_TYPE_Q6_K}, {LM_TYPE_Q4_K, LM_TYPE_F16}};
    static const int64_t Ns[2] = {N0, N1};
    static float x[K * M], g[K], sentinel[K * M];
    for (int b = 0; b < 2; b++) {
        lm_backend *be = g_be[b];
        for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++) {
            dt tw[2], da[2], db[2];
            lm_test_fill_normal(&r, x, K * M, 1.0f);
            for (int i = 0; i < K; i++) g[i] = 1.0f + 0.5f * lm_test_rng_normal(&r);
            for (int i = 0; i < K * M; i++) sentinel[i] = 12345.0f;
            dt tx = dt_new(be, LM_TYPE_F32, K, M, x), tg = dt_new(be, LM_TYPE_F32, K, 1, g);
            dt txn = dt_new(be, LM_TYPE_F32, K, M, NULL),
               tsc = dt_new(be, LM_TYPE_F32, K, M, sentinel);
            for (int i = 0; i < 2; i++) {
                tw[i] = dt_weight(be, &r, sets[s][i], K, Ns[i]);
                da[i] = dt_new(be, LM_TYPE_F32, Ns[i], M, NULL);
                db[i] = dt_new(be, LM_TYPE_F32, Ns[i], M, NULL);
            }
            const bool fuses = s < 2; /* the third set has a float weight */
            for (int m = 1; m <= M; m += M - 1)
                for (int with_g = 0; with_g < 2; with_g++) {
                    const lm_tensor *w[2] = {&tw[0].t, &tw[1].t}, *nw = with_g ? &tg.t : NULL;
                    lm_tensor xa = tx.t, xn = txn.t, sc = tsc.t, a[2], bb[2], *pa[2], *pb[2];
                    xa.ne[1] = xn.ne[1] = sc.ne[1] = m;
                    for (int i = 0; i < 2; i++) {
                        a[i] = da[i].t, bb[i] = db[i].t, pa[i] = &a[i], pb[i] = &bb[i];
                        a[i].ne[1] = bb[i].ne[1] = m;
                    }
                    cr_assert_eq(be->ops->rms_norm(be, &xa, nw, 1e-5f, &xn), LM_OK, "%s",
                                 lm_last_error());
                    cr_assert_eq(be->ops->mul_mat_n(be, 2, w, &xn, pb), LM_OK, "%s",
                                 lm_last_error());
                    /* the generic fallback first (it writes the scratch), then the op */
                    lm_backend_ops plain = *be->ops;
                    const lm_backend_ops *own = be->ops;
                    plain.norm_mul_mat_n = NULL;
                    be->ops = &plain;
                    lm_status fs = lm_backend_norm_mul_mat_n(be, &xa, nw, 1e-5f, &xn, 2, w, pa);
                    be->ops = own;
                    cr_assert_eq(fs, LM_OK, "%s", lm_last_error());
                    for (int i = 0; i < 2; i++)
                        cr_assert(memcmp(lm_cpu_buffer_ptr(da[i].buf), lm_cpu_buffer_ptr(db[i].buf),
                                         sizeof(float) * (size_t)(Ns[i] * m)) == 0,
                                  "the generic fallback differs (set %zu weight %d)", s, i);
                    cr_assert_eq(be->ops->norm_mul_mat_n(be, &xa, nw, 1e-5f, &sc, 2, w, pa), LM_OK,
                                 "%s", lm_last_error());
                    for (int i = 0; i < 2; i++)
                        cr_assert(memcmp(lm_cpu_buffer_ptr(da[i].buf), lm_cpu_buffer_ptr(db[i].buf),
                                         sizeof(float) * (size_t)(Ns[i] * m)) == 0,
                                  "%d threads, set %zu weight %d (%s) M=%d norm %d differs from "
                                  "rms_norm then mul_mat_n",
                                  b ? 3 : 1, s, i, lm_type_get(sets[s][i]).name, m, with_g);
                    const float *scp = lm_cpu_buffer_ptr(tsc.buf),
                                *xnp = lm_cpu_buffer_ptr(txn.buf);
                    cr_assert_eq(scp[0], fuses ? 12345.0f : xnp[0], "set %zu: the scratch %s", s,
                                 fuses ? "untouched" : "normed");
                }
            lm_tensor *d1[1] = {&da[0].t};
            const lm_tensor *w1[1] = {&tw[0].t};
            cr_assert_eq(be->ops->norm_mul_mat_n(be, &tx.t, &tg.t, -1.0f, &tsc.t, 1, w1, d1),
                         LM_ERR_INVALID_ARG);
            cr_assert(strstr(lm_last_error(), "norm_mul_mat_n: eps = -1") != NULL, "%s",
                      lm_last_error());
            lm_tensor short_g = tg.t;
            short_g.ne[0] = K / 2;
            cr_assert_eq(be->ops->norm_mul_mat_n(be, &tx.t, &short_g, 1e-5f, &tsc.t, 1, w1, d1),
                         LM_ERR_INVALID_ARG);
            cr_assert(strstr(lm_last_error(), "norm_mul_mat_n: norm has 256 x 1 elements") != NULL,
                      "%s", lm_last_error());
            lm_tensor small_xn = tsc.t; /* the scratch is checked even where it fuses */
            small_xn.ne[1] = 1;
            cr_assert_eq(be->ops->norm_mul_mat_n(be, &tx.t, &tg.t, 1e-5f, &small_xn, 1, w1, d1),
                         LM_ERR_INVALID_ARG);
            cr_assert(strstr(lm_last_error(), "norm_mul_mat_n") != NULL &&
                          strstr(lm_last_error(), "xn") != NULL,
                      "%s", lm_last_error());
            cr_assert_eq(be->ops->norm_mul_mat_n(be, &tx.t, &tg.t, 1e-5f, &tsc.t, 4, w1, d1),
                         LM_ERR_INVALID_ARG);
            cr_assert(strstr(lm_last_error(), "norm_mul_mat_n: 4 weights") != NULL, "%s",
                      lm_last_error());
            dt *all[] = {&tx, &tg, &txn, &tsc};
            for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) dt_free(all[i]);
            for (int i = 0; i < 2; i++) dt_free(&tw[i]), dt_free(&da[i]), dt_free(&db[i]);
        }
    }
}

/* weights_relayout itself (cpu_relayout.c), on weights wrapped from a 16 MiB file mapping
 * (so copied into huge pages): a tensor with a last group of 5 rows and its alias (tied
 * embeddings) are re-laid once and both marked, two overlapping views keep rows, a float
 * matrix keeps rows; the results equal those of the same bytes in rows, and the copy is
 * read-only again afterwards. */
Test(matmul, weights_relayout_in_place) {
    if (!lm__huge_available())
        cr_skip_test("no transparent huge pages here (or LUMEN_HUGEPAGES=0): weights stay in "
                     "the file mapping, which is never re-laid");
    lm_test_rng r = {lm_test_seed()};
    enum { K = 512, N1 = 21, N3 = 16, M = 5 };
    const size_t size = (size_t)16 << 20, rs1 = lm_row_size(LM_TYPE_Q8_0, K),
                 rs3 = lm_row_size(LM_TYPE_Q4_K, K), off3 = 1 << 20, off5 = 2 << 20;
    char *img = calloc(1, size);
    static float wf[K * N1], x[K * M];
    lm_test_fill_normal(&r, wf, K * N1, 0.1f);
    for (int n = 0; n < N1; n++) lm_quantize_row(LM_TYPE_Q8_0, wf + n * K, img + n * rs1, K);
    for (int n = 0; n < N3; n++) lm_quantize_row(LM_TYPE_Q4_K, wf + n * K, img + off3 + n * rs3, K);
    memcpy(img + off5, wf, sizeof(float) * K * 8);
    char path[] = "/tmp/lumen_relayout_XXXXXX";
    const int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, img, size), (ssize_t)size);
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd), unlink(path);
    cr_assert(map != MAP_FAILED);
    lm_backend *be = g_be[1];
    lm_buffer *wbuf = NULL;
    cr_assert_eq(be->ops->buffer_wrap_host(be, map, size, &wbuf), LM_OK, "%s", lm_last_error());
    lm_tensor t1, t2, t3, t4, t5;
    lm_tensor_init(&t1, wbuf, 0, LM_TYPE_Q8_0, K, N1, 1, 1);
    t2 = t1; /* the alias */
    lm_tensor_init(&t3, wbuf, off3, LM_TYPE_Q4_K, K, N3, 1, 1);
    lm_tensor_init(&t4, wbuf, off3 + 8 * rs3, LM_TYPE_Q4_K, K, 8, 1, 1); /* inside t3 */
    lm_tensor_init(&t5, wbuf, off5, LM_TYPE_F32, K, 8, 1, 1);
    lm_tensor *all[] = {&t1, &t2, &t3, &t4, &t5};
    cr_assert_eq(be->ops->weights_relayout(be, all, 5), LM_OK, "%s", lm_last_error());
    /* packed where the level has kernels for it (AVX-512 VNNI), else interleaved */
    const int want = lm__cpu_kernels_get(lm__cpu_get_level(be))->qdot_p8[LM_TYPE_Q8_0]
                         ? LM_LAYOUT_CPU_P8
                         : LM_LAYOUT_CPU_R8;
    cr_assert_eq(t1.layout, want);
    cr_assert_eq(t2.layout, want, "the alias must take its twin's layout");
    cr_assert_eq(t3.layout, LM_LAYOUT_ROWS, "overlapping views must keep rows");
    cr_assert_eq(t4.layout, LM_LAYOUT_ROWS);
    cr_assert_eq(t5.layout, LM_LAYOUT_ROWS, "a float matrix has no interleaved kernels");
    cr_assert(memcmp(lm_cpu_buffer_ptr(wbuf), img, 8 * rs1) != 0, "t1's bytes did not move");
    cr_assert(memcmp((char *)lm_cpu_buffer_ptr(wbuf) + (N1 / 8) * 8 * rs1, img + (N1 / 8) * 8 * rs1,
                     (N1 % 8) * rs1) == 0,
              "the last group of 5 rows must stay in rows");
    /* the same bytes in rows, in an ordinary buffer */
    dt rows = dt_new(be, LM_TYPE_Q8_0, K, N1, img);
    lm_test_fill_normal(&r, x, K * M, 1.0f);
    dt tx = dt_new(be, LM_TYPE_F32, K, M, x), da = dt_new(be, LM_TYPE_F32, N1, M, NULL),
       db = dt_new(be, LM_TYPE_F32, N1, M, NULL);
    cr_assert_eq(be->ops->mul_mat(be, &rows.t, &tx.t, &da.t), LM_OK, "%s", lm_last_error());
    cr_assert_eq(be->ops->mul_mat(be, &t2, &tx.t, &db.t), LM_OK, "%s", lm_last_error());
    cr_assert(
        memcmp(lm_cpu_buffer_ptr(da.buf), lm_cpu_buffer_ptr(db.buf), sizeof(float) * N1 * M) == 0);
    int32_t ids[N1];
    for (int i = 0; i < N1; i++) ids[i] = N1 - 1 - i;
    dt tid = dt_new(be, LM_TYPE_I32, N1, 1, ids), ga = dt_new(be, LM_TYPE_F32, K, N1, NULL),
       gb = dt_new(be, LM_TYPE_F32, K, N1, NULL);
    cr_assert_eq(be->ops->get_rows(be, &rows.t, &tid.t, &ga.t), LM_OK, "%s", lm_last_error());
    cr_assert_eq(be->ops->get_rows(be, &t1, &tid.t, &gb.t), LM_OK, "%s", lm_last_error());
    cr_assert(
        memcmp(lm_cpu_buffer_ptr(ga.buf), lm_cpu_buffer_ptr(gb.buf), sizeof(float) * K * N1) == 0);
    /* sealed again: a stray write faults (in a child) instead of corrupting weights */
    const pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        *(volatile char *)lm_cpu_buffer_ptr(wbuf) = 1;
        _exit(0);
    }
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    /* SIGSEGV, or under AddressSanitizer its report and a failing exit */
    cr_assert(!(WIFEXITED(st) && WEXITSTATUS(st) == 0), "a write into the weights did not fault");
    dt *own[] = {&rows, &tx, &da, &db, &tid, &ga, &gb};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) dt_free(own[i]);
    be->ops->buffer_free(be, wbuf);
    munmap(map, size);
    free(img);
}

/* ---- the thread pool: after its workers went to sleep, a job still runs every task
 * exactly once and wakes them to share it ---- */

typedef struct {
    _Atomic int64_t done;
    _Atomic int by_worker;
} pool_probe;

static double pool_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void pool_probe_task(void *ctx, int64_t b, int64_t e, int ith) {
    pool_probe *p = ctx;
    for (int64_t i = b; i < e; i++) {
        const double t0 = pool_now();
        while (pool_now() - t0 < 100e-6) { /* ~0.1 ms of work per task */
        }
        atomic_fetch_add(&p->done, 1);
    }
    if (ith != 0) atomic_store(&p->by_worker, 1);
}

Test(matmul, pool_wakes_sleeping_workers) {
    lm__pool *pool = lm__pool_create(3);
    cr_assert(pool && lm__pool_threads(pool) == 3);
    int shared = 0;
    for (int round = 0; round < 5; round++) {
        usleep(30000); /* far past the workers' spin: they sleep on the condition variable */
        pool_probe p = {0, 0};
        lm__pool_run(pool, pool_probe_task, &p, 96);
        cr_assert_eq(atomic_load(&p.done), 96, "every task once");
        shared += atomic_load(&p.by_worker);
    }
    cr_expect_gt(shared, 0, "no worker woke to share a job in 5 tries");
    lm__pool_destroy(pool);
}
