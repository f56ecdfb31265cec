/* The CUDA backend's ops against the CPU backend (the oracle), on the same random inputs:
 * every row of the shared op-case table (runtime/op_cases.c), mul_mat and get_rows of
 * every row for every weight type whose block fits the row's K, plus shapes the table
 * lacks (k-quant blocks, batches that take the tensor-core kernels with ragged tiles,
 * weight views at a row offset, long decode contexts that split attention), the device
 * error flag of recorded steps, and buffers.
 *
 * Tolerances, GPU vs CPU (not vs exact math), per op:
 *  - bit-equal: get_rows, kv_store, add, mul, scale, copy, argmax (one IEEE rounding per
 *    operation, no FMA, the CPU's conversions); mul_mat on the matrix-vector kernels for
 *    every type and on the tensor-core kernels for the 32-element types: the same 16-bit
 *    activations, exact integer block sums, the CPU's float expression per block and
 *    block order (see kernels/cpu/cpu_dot_scalar.c).
 *  - mul_mat, k-quants on tensor cores: each 16/32-element sub-block is folded into float
 *    on its own (the CPU sums a super-block's sub-blocks as integers first), so the terms
 *    round differently: ~1 ulp of a sub-block term (|term| <~ 10) per fold, a random walk
 *    over K/16 folds. atol = 1e-5 sqrt(K) (a tenth of the table's activation-quantisation
 *    bound; a wrong scale or level would be off by O(1)).
 *  - rms_norm: the double sum of squares in another order can round the float scale 1 ulp
 *    apart, then two products: 2 ulps (2.5e-7 relative).
 *  - rope: angles in double as the CPU, CUDA's cos/sin (1 ulp in double) rounded to float:
 *    the table's tolerance.
 *  - attention, swiglu, geglu: CUDA's expf/tanhf (<= 2 ulp) and another summation order:
 *    twice the table's tolerance (both results lie within it of the exact value).
 * Without a CUDA device (or without the backend compiled in) every test that needs one
 * skips, saying why. LUMEN_TEST_VERBOSE=1 prints each case's largest differences. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "helpers/op_util.h"
#include "helpers/test_util.h"
#include "op_cases.h"
#include "quant.h"

#ifdef LM_HAVE_CUDA
/* internals of kernels/cuda (cuda_backend.cu, cuda_selftest.cu) */
void lm__cuda_set_test_knobs(lm_backend *be, int mm_path, int attn_split);
lm_status lm__cuda_emulate_mul_mat(lm_type t, const void *w, int64_t K, int64_t N, const float *x,
                                   int64_t M, float *out_mv, float *out_mm);
int lm__cuda_selftest_geometry(char *msg, size_t size);
#endif

static lm_backend *g_cpu, *g_cu;
static char g_why[512];

static void setup(void) {
    lm_backend_config cfg = {2, 0};
    cr_assert_eq(lm_backend_create("cpu", &cfg, &g_cpu), LM_OK, "%s", lm_last_error());
#ifdef LM_HAVE_CUDA
    if (lm_backend_create("cuda", NULL, &g_cu) != LM_OK) {
        const char *e = lm_last_error();
        snprintf(g_why, sizeof g_why, "%s%s",
                 strncmp(e, "no CUDA device", 14) ? "no CUDA device: " : "", e);
        g_cu = NULL;
    }
#else
    snprintf(g_why, sizeof g_why, "no CUDA device: the CUDA backend is not compiled in");
#endif
}

static void teardown(void) {
    lm_backend_destroy(g_cu);
    lm_backend_destroy(g_cpu);
    g_cu = g_cpu = NULL;
}

TestSuite(cuda_ops, .init = setup, .fini = teardown, .timeout = 600);

#define NEED_CUDA()                                                                                \
    do {                                                                                           \
        if (!g_cu) cr_skip_test("%s", g_why);                                                      \
    } while (0)

static void knobs(int mm, int split) {
#ifdef LM_HAVE_CUDA
    lm__cuda_set_test_knobs(g_cu, mm, split);
#else
    (void)mm, (void)split;
#endif
}

static int is_kquant(lm_type t) {
    return lm_type_get((uint32_t)t).blck == 256;
}

/* ---- backend creation and buffers (these run without a device too) ---- */

Test(cuda_ops, creation_fails_cleanly_or_names_the_device) {
#ifdef LM_HAVE_CUDA
    int listed = 0;
    for (const char *const *n = lm_backend_names(); *n; n++) listed |= strcmp(*n, "cuda") == 0;
    cr_expect(listed, "\"cuda\" is compiled in but not in lm_backend_names()");
    lm_backend *be = (lm_backend *)1;
    lm_status s = lm_backend_create("cuda", NULL, &be);
    if (s != LM_OK) {
        cr_expect(s == LM_ERR_BACKEND || s == LM_ERR_UNSUPPORTED, "status %s", lm_status_str(s));
        cr_expect_null(be, "out must be NULL after a failure");
        cr_expect_gt(strlen(lm_last_error()), 10, "the failure needs a message");
        fprintf(stderr, "[cuda_ops] no device here: %s\n", lm_last_error());
        return;
    }
    cr_expect_gt(strlen(be->ops->device_name(be)), 0);
    cr_expect_gt(be->ops->device_memory(be), 0);
    lm_backend_destroy(be);
#else
    cr_skip_test("%s", g_why);
#endif
}

Test(cuda_ops, bad_device_index_is_refused) {
#ifdef LM_HAVE_CUDA
    lm_backend_config cfg = {0, 99};
    lm_backend *be = NULL;
    lm_status s = lm_backend_create("cuda", &cfg, &be);
    cr_expect_neq(s, LM_OK, "device 99 should not exist");
    cr_expect_null(be);
    if (g_cu) cr_expect(strstr(lm_last_error(), "device 99") != NULL, "%s", lm_last_error());
#else
    cr_skip_test("%s", g_why);
#endif
}

Test(cuda_ops, buffers_round_trip_and_refuse_bad_ranges) {
    NEED_CUDA();
    lm_test_rng r = {lm_test_seed()};
    const size_t n = 1000003; /* odd: exercises the rounded-up allocation */
    unsigned char *src = malloc(n), *back = malloc(n);
    for (size_t i = 0; i < n; i++) src[i] = (unsigned char)lm_test_rng_u64(&r);
    lm_buffer *b = NULL;
    lm_test_expect_ok(g_cu->ops->buffer_alloc(g_cu, n, &b), "alloc");
    lm_test_expect_ok(g_cu->ops->upload(g_cu, b, 0, src, n), "upload");
    lm_test_expect_ok(g_cu->ops->download(g_cu, b, 0, back, n), "download");
    cr_expect(memcmp(src, back, n) == 0, "bytes differ after a round trip");
    lm_test_expect_ok(g_cu->ops->upload(g_cu, b, 17, src, 100), "upload at an offset");
    lm_test_expect_ok(g_cu->ops->download(g_cu, b, 17, back, 100), "download at an offset");
    cr_expect(memcmp(src, back, 100) == 0);
    cr_expect_eq(g_cu->ops->upload(g_cu, b, n - 10, src, 11), LM_ERR_INVALID_ARG);
    cr_expect_eq(g_cu->ops->download(g_cu, b, n + 1, back, 0), LM_ERR_INVALID_ARG);
    g_cu->ops->buffer_free(g_cu, b);
    /* freed memory is reused by the pool: a new buffer of the same size works the same */
    lm_test_expect_ok(g_cu->ops->buffer_alloc(g_cu, n, &b), "alloc again");
    lm_test_expect_ok(g_cu->ops->upload(g_cu, b, 0, src, n), "upload");
    lm_test_expect_ok(g_cu->ops->download(g_cu, b, 0, back, n), "download");
    cr_expect(memcmp(src, back, n) == 0);
    g_cu->ops->buffer_free(g_cu, b);
    cr_expect_gt(g_cu->ops->device_memory(g_cu), 0);
    free(src), free(back);
}

static const lm_type g_wtypes[] = {LM_TYPE_F32,  LM_TYPE_F16,  LM_TYPE_BF16, LM_TYPE_Q4_0,
                                   LM_TYPE_Q4_1, LM_TYPE_Q5_0, LM_TYPE_Q5_1, LM_TYPE_Q8_0,
                                   LM_TYPE_Q2_K, LM_TYPE_Q3_K, LM_TYPE_Q4_K, LM_TYPE_Q5_K,
                                   LM_TYPE_Q6_K};
#define N_WTYPES ((int)(sizeof g_wtypes / sizeof g_wtypes[0]))

/* ---- the kernels' arithmetic replayed on the host (runs without a device) ---- */

/* The integer mul_mat kernels' arithmetic (cuda_common.cuh: unpacking, dp4a sums, scale
 * combination, block terms and folds, activation quantisation), replayed on the host in
 * the kernels' order, against the CPU backend: bit-equal for the matrix-vector order and
 * the tensor-core order of the 32-element types; the tensor cores' per-sub-block folds of
 * the k-quants within 1e-5 sqrt(K) (see the header comment). */
Test(cuda_ops, host_replay_of_the_integer_kernels_equals_the_cpu) {
#ifdef LM_HAVE_CUDA
    lm_test_rng r = {lm_test_seed()};
    static const int64_t shapes[][3] = {{96, 5, 1}, {608, 7, 3}, {512, 9, 2}, {4096, 3, 2}};
    int runs = 0;
    for (int t = 3; t < N_WTYPES; t++) { /* the quantized types */
        const lm_type type = g_wtypes[t];
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            const int64_t K = shapes[s][0], N = shapes[s][1], M = shapes[s][2];
            if (K % lm_type_get((uint32_t)type).blck) continue;
            float *wf = lm_test_randn(&r, (size_t)(K * N), 0.5f),
                  *x = lm_test_randn(&r, (size_t)(K * M), 1.0f);
            void *w = lm_test_encode(type, wf, K, N);
            cr_assert_not_null(w);
            lm_test_dt tw = lm_test_dt_new(g_cpu, type, K, N, 1, 1, w),
                       tx = lm_test_dt_new(g_cpu, LM_TYPE_F32, K, M, 1, 1, x);
            lm_test_dt td = lm_test_dt_new(g_cpu, LM_TYPE_F32, N, M, 1, 1, NULL);
            lm_test_expect_ok(g_cpu->ops->mul_mat(g_cpu, &tw.t, &tx.t, &td.t), "cpu mul_mat");
            float *ref = lm_test_dt_read(&td), *mv = malloc((size_t)(N * M) * 4),
                  *mm = malloc((size_t)(N * M) * 4);
            lm_test_expect_ok(lm__cuda_emulate_mul_mat(type, w, K, N, x, M, mv, mm), "host replay");
            lm_op_case c = {.op = LM_OP_MUL_MAT, .type = type, .k = K, .n = N, .m = M};
            lm_test_compare(lm_test_case_desc(&c, "replay: matrix-vector, bit-equal"), ref, mv,
                            (size_t)(N * M), 0, 0);
            const double atol = is_kquant(type) ? 1e-5 * sqrt((double)K) : 0;
            lm_test_compare(lm_test_case_desc(&c, is_kquant(type)
                                                      ? "replay: tensor cores, 1e-5 sqrt(K)"
                                                      : "replay: tensor cores, bit-equal"),
                            ref, mm, (size_t)(N * M), atol, atol ? 1e-5 : 0);
            lm_test_dt_free(&tw), lm_test_dt_free(&tx), lm_test_dt_free(&td);
            free(wf), free(x), free(w), free(ref), free(mv), free(mm);
            runs++;
        }
    }
    cr_expect_geq(runs, 20);
#else
    cr_skip_test("%s", g_why);
#endif
}

Test(cuda_ops, staging_and_split_geometry) {
#ifdef LM_HAVE_CUDA
    char msg[256];
    cr_expect_eq(lm__cuda_selftest_geometry(msg, sizeof msg), 0, "%s", msg);
#else
    cr_skip_test("%s", g_why);
#endif
}

/* ---- get_rows: table rows padded by 64 bytes (a strided view), every weight type ---- */

static void run_get_rows(const lm_op_case *c, lm_type type, lm_test_rng *r) {
    const int64_t K = c->k, N = c->n, M = c->m;
    float *tab = lm_test_randn(r, (size_t)(K * N), 1.0f);
    void *enc = lm_test_encode(type, tab, K, N);
    if (!enc) {
        free(tab);
        return;
    }
    const size_t rs = lm_row_size(type, K), stride = rs + 64;
    char *padded = calloc((size_t)N, stride);
    for (int64_t i = 0; i < N; i++) memcpy(padded + i * stride, (char *)enc + i * rs, rs);
    int32_t *ids = malloc((size_t)M * sizeof *ids);
    for (int64_t i = 0; i < M; i++) ids[i] = (int32_t)(lm_test_rng_u64(r) % (uint64_t)N);
    float *out[2];
    lm_backend *bes[2] = {g_cpu, g_cu};
    lm_op_case cc = *c;
    cc.type = type;
    for (int b = 0; b < 2; b++) {
        lm_test_dt src = lm_test_dt_buffer(bes[b], (size_t)N * stride, padded);
        lm_tensor_init(&src.t, src.buf, 0, type, K, N, 1, 1);
        src.t.nb[1] = stride;
        lm_test_dt id = lm_test_dt_new(bes[b], LM_TYPE_I32, M, 1, 1, 1, ids);
        lm_test_dt dst = lm_test_dt_new(bes[b], LM_TYPE_F32, K, M, 1, 1, NULL);
        lm_test_expect_ok(bes[b]->ops->get_rows(bes[b], &src.t, &id.t, &dst.t),
                          lm_test_case_desc(&cc, "get_rows"));
        out[b] = lm_test_dt_read(&dst);
        lm_test_dt_free(&src), lm_test_dt_free(&id), lm_test_dt_free(&dst);
    }
    lm_test_compare(lm_test_case_desc(&cc, "bit-equal"), out[0], out[1], (size_t)(K * M), 0, 0);
    free(tab), free(enc), free(padded), free(ids), free(out[0]), free(out[1]);
}

/* ---- mul_mat: every weight type on each path; W a view at a row offset ---- */

static void run_mul_mat(const lm_op_case *c, lm_type type, lm_test_rng *r) {
    const int64_t K = c->k, N = c->n, M = c->m, off_rows = 3;
    float *wf = lm_test_randn(r, (size_t)(K * (N + off_rows)), 0.5f),
          *x = lm_test_randn(r, (size_t)(K * M), 1.0f);
    void *w = lm_test_encode(type, wf, K, N + off_rows);
    if (!w) {
        free(wf), free(x);
        return;
    }
    const size_t rs = lm_row_size(type, K);
    lm_op_case cc = *c;
    cc.type = type;
    static const char *paths[3] = {"auto", "matrix-vector", "tensor cores"};
    float *ref = NULL;
    for (int run = -1; run < 3; run++) { /* -1: the CPU reference, then the three paths */
        lm_backend *be = run < 0 ? g_cpu : g_cu;
        if (run >= 0) knobs(run, 0);
        /* W: rows off_rows.. of a bigger matrix, as the fused QKV views of the runtime */
        lm_test_dt tw = lm_test_dt_buffer(be, rs * (size_t)(N + off_rows), w);
        lm_tensor_init(&tw.t, tw.buf, rs * (size_t)off_rows, type, K, N, 1, 1);
        lm_test_dt tx = lm_test_dt_new(be, LM_TYPE_F32, K, M, 1, 1, x);
        lm_test_dt td = lm_test_dt_new(be, LM_TYPE_F32, N, M, 1, 1, NULL);
        lm_test_expect_ok(be->ops->mul_mat(be, &tw.t, &tx.t, &td.t),
                          lm_test_case_desc(&cc, run < 0 ? "cpu" : paths[run]));
        float *out = lm_test_dt_read(&td);
        lm_test_dt_free(&tw), lm_test_dt_free(&tx), lm_test_dt_free(&td);
        if (run < 0) {
            ref = out;
            continue;
        }
        /* the tensor-core path runs only for quantized W; it folds k-quants per sub-block */
        const int tc = lm_type_get((uint32_t)type).blck > 1 && (run == 2 || (run == 0 && M > 8));
        const double atol = tc && is_kquant(type) ? 1e-5 * sqrt((double)K) : 0;
        char what[400];
        snprintf(what, sizeof what, "%s %s", lm_test_case_desc(&cc, paths[run]),
                 atol ? "1e-5 sqrt(K)" : "bit-equal");
        lm_test_compare(what, ref, out, (size_t)(N * M), atol, atol ? 1e-5 : 0);
        free(out);
    }
    knobs(0, 0);
    free(wf), free(x), free(w), free(ref);
}

/* Shapes the table lacks: k-quant blocks (K a multiple of 256), batches over 8 (tensor
 * cores) with ragged 64 x 64 tiles, several chunks of 32 blocks per row (matrix-vector). */
static const lm_op_case g_extra_mm[] = {
    {.op = LM_OP_MUL_MAT, .k = 256, .n = 33, .m = 1},
    {.op = LM_OP_MUL_MAT, .k = 512, .n = 17, .m = 9},
    {.op = LM_OP_MUL_MAT, .k = 768, .n = 41, .m = 19},
    {.op = LM_OP_MUL_MAT, .k = 96, .n = 37, .m = 33},
    {.op = LM_OP_MUL_MAT, .k = 1536, .n = 7, .m = 8},
    {.op = LM_OP_MUL_MAT, .k = 2304, .n = 130, .m = 70},
    {.op = LM_OP_MUL_MAT, .k = 4096, .n = 65, .m = 3},
};
static const lm_op_case g_extra_rows[] = {
    {.op = LM_OP_GET_ROWS, .k = 512, .n = 9, .m = 5},
    {.op = LM_OP_GET_ROWS, .k = 256, .n = 3, .m = 2},
};

static void sweep_types(lm_op_kind op, const lm_op_case *extra, int n_extra) {
    lm_test_rng r = {lm_test_seed()};
    int runs = 0;
    for (int pass = 0; pass < 2; pass++) {
        const int n = pass ? n_extra : lm_op_n_cases;
        for (int i = 0; i < n; i++) {
            const lm_op_case *c = pass ? &extra[i] : &lm_op_cases[i];
            if (c->op != op) continue;
            for (int t = 0; t < N_WTYPES; t++) {
                if (c->k % lm_type_get((uint32_t)g_wtypes[t]).blck) continue;
                if (!lm_type_computable(g_wtypes[t])) continue;
                if (op == LM_OP_GET_ROWS)
                    run_get_rows(c, g_wtypes[t], &r);
                else
                    run_mul_mat(c, g_wtypes[t], &r);
                runs++;
            }
        }
    }
    cr_expect_gt(runs, 0, "no %s cases ran", lm_op_name(op));
}

Test(cuda_ops, get_rows_every_type) {
    NEED_CUDA();
    sweep_types(LM_OP_GET_ROWS, g_extra_rows, (int)(sizeof g_extra_rows / sizeof g_extra_rows[0]));
}

Test(cuda_ops, mul_mat_every_type) {
    NEED_CUDA();
    sweep_types(LM_OP_MUL_MAT, g_extra_mm, (int)(sizeof g_extra_mm / sizeof g_extra_mm[0]));
}

/* Every weight type is reachable: an extra shape fits each block size. */
Test(cuda_ops, every_weight_type_has_a_shape) {
    for (int t = 0; t < N_WTYPES; t++) {
        int blck = lm_type_get((uint32_t)g_wtypes[t]).blck, fits = 0;
        for (size_t i = 0; i < sizeof g_extra_mm / sizeof g_extra_mm[0]; i++)
            fits |= g_extra_mm[i].k % blck == 0 && g_extra_mm[i].m > 8;
        cr_expect(fits, "no tensor-core mul_mat shape for %s",
                  lm_type_get((uint32_t)g_wtypes[t]).name);
    }
}

/* The activations quantized for one mul_mat are reused by the next on the same x only
 * while nothing else ran: an op or an upload in between must make them stale. */
Test(cuda_ops, mul_mat_reuses_activations_only_while_x_is_unchanged) {
    NEED_CUDA();
    lm_test_rng r = {lm_test_seed()};
    const int64_t K = 576, N = 40, M = 3;
    float *wf = lm_test_randn(&r, (size_t)(K * N), 0.5f),
          *x = lm_test_randn(&r, (size_t)(K * M), 1.0f);
    float *x2 = lm_test_randn(&r, (size_t)(K * M), 1.0f);
    void *w = lm_test_encode(LM_TYPE_Q4_1, wf, K, N);
    float *out[2][3];
    lm_backend *bes[2] = {g_cpu, g_cu};
    for (int b = 0; b < 2; b++) {
        lm_backend *be = bes[b];
        lm_test_dt tw = lm_test_dt_new(be, LM_TYPE_Q4_1, K, N, 1, 1, w);
        lm_test_dt tx = lm_test_dt_new(be, LM_TYPE_F32, K, M, 1, 1, x);
        lm_test_dt td = lm_test_dt_new(be, LM_TYPE_F32, N, M, 1, 1, NULL);
        lm_test_expect_ok(be->ops->mul_mat(be, &tw.t, &tx.t, &td.t), "mul_mat 1");
        out[b][0] = lm_test_dt_read(&td);
        lm_test_expect_ok(be->ops->scale(be, &tx.t, -2.0f, &tx.t), "scale x in place");
        lm_test_expect_ok(be->ops->mul_mat(be, &tw.t, &tx.t, &td.t), "mul_mat after scale");
        out[b][1] = lm_test_dt_read(&td);
        lm_test_expect_ok(be->ops->upload(be, tx.buf, 0, x2, (size_t)(K * M) * 4), "upload new x");
        lm_test_expect_ok(be->ops->mul_mat(be, &tw.t, &tx.t, &td.t), "mul_mat after upload");
        out[b][2] = lm_test_dt_read(&td);
        lm_test_dt_free(&tw), lm_test_dt_free(&tx), lm_test_dt_free(&td);
    }
    for (int i = 0; i < 3; i++) {
        char what[64];
        snprintf(what, sizeof what, "memo step %d bit-equal", i);
        lm_test_compare(what, out[0][i], out[1][i], (size_t)(N * M), 0, 0);
        free(out[0][i]), free(out[1][i]);
    }
    free(wf), free(x), free(x2), free(w);
}

/* ---- rms_norm ---- */

static void run_rms_norm(const lm_op_case *c, lm_test_rng *r) {
    const int64_t K = c->k, R = c->n * c->m;
    float *x = lm_test_randn(r, (size_t)(K * R), 2.0f), *w = lm_test_randn(r, (size_t)K, 1.0f);
    float *out[2];
    lm_backend *bes[2] = {g_cpu, g_cu};
    for (int b = 0; b < 2; b++) {
        lm_test_dt tx = lm_test_dt_new(bes[b], LM_TYPE_F32, K, c->n, c->m, 1, x);
        lm_test_dt tw = lm_test_dt_new(bes[b], LM_TYPE_F32, K, 1, 1, 1, w);
        lm_test_dt td = lm_test_dt_new(bes[b], LM_TYPE_F32, K, c->n, c->m, 1, NULL);
        lm_test_expect_ok(
            bes[b]->ops->rms_norm(bes[b], &tx.t, c->mode ? &tw.t : NULL, 1e-5f, &td.t),
            lm_test_case_desc(c, "rms_norm"));
        out[b] = lm_test_dt_read(&td);
        lm_test_dt_free(&tx), lm_test_dt_free(&tw), lm_test_dt_free(&td);
    }
    lm_test_compare(lm_test_case_desc(c, "2 ulps"), out[0], out[1], (size_t)(K * R), 0, 2.5e-7);
    free(x), free(w), free(out[0]), free(out[1]);
}

/* ---- rope ---- */

static void run_rope(const lm_op_case *c, lm_test_rng *r) {
    const int64_t D = c->k, H = c->n, T = c->m;
    float *x = lm_test_randn(r, (size_t)(D * H * T), 1.0f), ff[256];
    int32_t *pos = malloc((size_t)T * sizeof *pos);
    for (int64_t t = 0; t < T; t++) pos[t] = (int32_t)(lm_test_rng_u64(r) % (uint64_t)c->n_ctx);
    pos[0] = c->n_ctx - 1; /* the largest angle of the case */
    for (int i = 0; i < c->n_rot / 2; i++) ff[i] = 1.0f + 7.0f * lm_test_rng_uniform(r);
    lm_rope_params p = {(lm_rope_mode)c->mode, c->n_rot, c->freq_factors ? 500000.0f : 10000.0f,
                        c->freq_scale > 0 ? c->freq_scale : 1.0f, c->freq_factors ? ff : NULL};
    float *out[2];
    lm_backend *bes[2] = {g_cpu, g_cu};
    for (int b = 0; b < 2; b++) {
        lm_test_dt tx = lm_test_dt_new(bes[b], LM_TYPE_F32, D, H, T, 1, x);
        lm_test_dt tp = lm_test_dt_new(bes[b], LM_TYPE_I32, T, 1, 1, 1, pos);
        lm_test_expect_ok(bes[b]->ops->rope(bes[b], &tx.t, &tp.t, &p),
                          lm_test_case_desc(c, "rope"));
        out[b] = lm_test_dt_read(&tx);
        lm_test_dt_free(&tx), lm_test_dt_free(&tp);
    }
    lm_test_compare(lm_test_case_desc(c, "table"), out[0], out[1], (size_t)(D * H * T), c->atol,
                    c->rtol);
    free(x), free(pos), free(out[0]), free(out[1]);
}

/* ---- attention: q a view into a fused QKV activation, caches a view of layer 1 of two,
 * positions past each sequence's context hold NaN (never read) ---- */

static void run_attention(const lm_op_case *c, lm_test_rng *r, int split) {
    const int64_t D = c->k, H = c->n, Hk = c->n_kv_head, T = c->m, S = c->n_seq, C = c->n_ctx + 3;
    int32_t *pos = malloc((size_t)T * 4), *seq = malloc((size_t)T * 4);
    for (int64_t s = 0; s < S; s++) {
        int64_t L = c->n_ctx - 7 * s > 1 ? c->n_ctx - 7 * s : 1, cnt = 0;
        for (int64_t i = s; i < T; i += S) cnt++;
        for (int64_t i = s, j = 0; i < T; i += S, j++) {
            seq[i] = (int32_t)s;
            pos[i] = (int32_t)(L - cnt + j);
        }
    }
    float *qkv = lm_test_randn(r, (size_t)(D * (H + 2 * Hk) * T), 1.0f);
    const int64_t rows = Hk * C * S, n = D * rows;
    const size_t layer = lm_row_size(c->type, D) * (size_t)rows;
    void *cache[2];
    for (int kv = 0; kv < 2; kv++) {
        float *f = lm_test_randn(r, (size_t)(2 * n), 1.0f);
        for (int64_t s = 0; s < S; s++) {
            int64_t L = c->n_ctx - 7 * s > 1 ? c->n_ctx - 7 * s : 1;
            for (int64_t p = L; p < C; p++)
                for (int64_t e = 0; e < D * Hk; e++) f[n + ((s * C + p) * Hk) * D + e] = NAN;
        }
        cache[kv] = lm_test_encode(c->type, f, D, 2 * rows);
        free(f);
    }
    lm_attn_params p = {1.0f / sqrtf((float)D), c->window, c->softcap};
    float *out[2];
    lm_backend *bes[2] = {g_cpu, g_cu};
    knobs(0, split);
    for (int b = 0; b < 2; b++) {
        lm_backend *be = bes[b];
        lm_test_dt q = lm_test_dt_buffer(be, (size_t)(D * (H + 2 * Hk) * T) * 4, qkv);
        lm_tensor_init(&q.t, q.buf, 0, LM_TYPE_F32, D, H, T, 1);
        q.t.nb[2] = (size_t)(D * (H + 2 * Hk)) * 4;
        lm_test_dt kc = lm_test_dt_buffer(be, 2 * layer, cache[0]),
                   vc = lm_test_dt_buffer(be, 2 * layer, cache[1]);
        lm_tensor_init(&kc.t, kc.buf, layer, c->type, D, Hk, C, S);
        lm_tensor_init(&vc.t, vc.buf, layer, c->type, D, Hk, C, S);
        lm_test_dt tp = lm_test_dt_new(be, LM_TYPE_I32, T, 1, 1, 1, pos);
        lm_test_dt ts = lm_test_dt_new(be, LM_TYPE_I32, T, 1, 1, 1, seq);
        lm_test_dt td = lm_test_dt_new(be, LM_TYPE_F32, D, H, T, 1, NULL);
        lm_test_expect_ok(be->ops->attention(be, &q.t, &kc.t, &vc.t, &tp.t, &ts.t, &p, &td.t),
                          lm_test_case_desc(c, "attention"));
        out[b] = lm_test_dt_read(&td);
        lm_test_dt_free(&q), lm_test_dt_free(&kc), lm_test_dt_free(&vc), lm_test_dt_free(&tp),
            lm_test_dt_free(&ts), lm_test_dt_free(&td);
    }
    knobs(0, 0);
    char what[400];
    snprintf(what, sizeof what, "%s split %d", lm_test_case_desc(c, "2x table"), split);
    lm_test_compare(what, out[0], out[1], (size_t)(D * H * T), 2 * c->atol, 2 * c->rtol);
    free(pos), free(seq), free(qkv), free(cache[0]), free(cache[1]), free(out[0]), free(out[1]);
}

/* long decode contexts (split over ranges), a big head, a window over a long context */
static const lm_op_case g_extra_attn[] = {
    {.op = LM_OP_ATTENTION,
     .type = LM_TYPE_F16,
     .k = 64,
     .n = 9,
     .n_kv_head = 3,
     .m = 1,
     .n_ctx = 1000,
     .n_seq = 1,
     .atol = 2e-5,
     .rtol = 1e-4},
    {.op = LM_OP_ATTENTION,
     .type = LM_TYPE_F16,
     .k = 128,
     .n = 4,
     .n_kv_head = 1,
     .m = 3,
     .n_ctx = 700,
     .n_seq = 2,
     .window = 100,
     .atol = 2e-5,
     .rtol = 1e-4},
    {.op = LM_OP_ATTENTION,
     .type = LM_TYPE_F32,
     .k = 256,
     .n = 2,
     .n_kv_head = 2,
     .m = 2,
     .n_ctx = 90,
     .n_seq = 1,
     .softcap = 30.0f,
     .atol = 2e-5,
     .rtol = 1e-4},
    {.op = LM_OP_ATTENTION,
     .type = LM_TYPE_F16,
     .k = 80,
     .n = 4,
     .n_kv_head = 2,
     .m = 1,
     .n_ctx = 2500,
     .n_seq = 1,
     .atol = 2e-5,
     .rtol = 1e-4},
};

/* ---- element-wise ---- */

static void run_elementwise(const lm_op_case *c, lm_test_rng *r) {
    const int64_t ne[3] = {c->k, c->n, c->m}, n = c->k * c->n * c->m;
    int64_t bne[3];
    for (int i = 0; i < 3; i++) bne[i] = (c->mode >> i) & 1 ? 1 : ne[i];
    float *a = lm_test_randn(r, (size_t)n, 3.0f),
          *bb = lm_test_randn(r, (size_t)(bne[0] * bne[1] * bne[2]), 1.0f);
    float *out[2];
    lm_backend *bes[2] = {g_cpu, g_cu};
    for (int b = 0; b < 2; b++) {
        lm_backend *be = bes[b];
        lm_test_dt ta = lm_test_dt_new(be, LM_TYPE_F32, ne[0], ne[1], ne[2], 1, a);
        lm_test_dt tb = lm_test_dt_new(be, LM_TYPE_F32, bne[0], bne[1], bne[2], 1, bb);
        lm_test_dt td = lm_test_dt_new(be, LM_TYPE_F32, ne[0], ne[1], ne[2], 1, NULL);
        lm_status st;
        switch (c->op) {
        case LM_OP_SWIGLU:
            st = be->ops->swiglu(be, &ta.t, &tb.t, &td.t);
            break;
        case LM_OP_GEGLU:
            st = be->ops->geglu(be, &ta.t, &tb.t, &td.t);
            break;
        case LM_OP_ADD:
            st = be->ops->add(be, &ta.t, &tb.t, &td.t);
            break;
        case LM_OP_MUL:
            st = be->ops->mul(be, &ta.t, &tb.t, &td.t);
            break;
        default:
            st = be->ops->scale(be, &ta.t, 0.37f, &td.t);
            break;
        }
        lm_test_expect_ok(st, lm_test_case_desc(c, "elementwise"));
        out[b] = lm_test_dt_read(&td);
        lm_test_dt_free(&ta), lm_test_dt_free(&tb), lm_test_dt_free(&td);
    }
    const int glu = c->op == LM_OP_SWIGLU || c->op == LM_OP_GEGLU;
    lm_test_compare(lm_test_case_desc(c, glu ? "2x table" : "bit-equal"), out[0], out[1], (size_t)n,
                    glu ? 2 * c->atol : 0, glu ? 2 * c->rtol : 0);
    free(a), free(bb), free(out[0]), free(out[1]);
}

/* scale on a strided view (the first n_rot dimensions of each head, as LongRoPE does) */
Test(cuda_ops, scale_of_a_strided_view) {
    NEED_CUDA();
    lm_test_rng r = {lm_test_seed()};
    const int64_t D = 96, H = 5, T = 3, n = D * H * T;
    float *x = lm_test_randn(&r, (size_t)n, 1.0f), *out[2];
    lm_backend *bes[2] = {g_cpu, g_cu};
    for (int b = 0; b < 2; b++) {
        lm_test_dt tx = lm_test_dt_new(bes[b], LM_TYPE_F32, D, H, T, 1, x);
        lm_tensor v = tx.t;
        v.ne[0] = 40;
        lm_test_expect_ok(bes[b]->ops->scale(bes[b], &v, 1.37f, &v), "scale view");
        out[b] = lm_test_dt_read(&tx);
        lm_test_dt_free(&tx);
    }
    lm_test_compare("scale of a strided view, bit-equal", out[0], out[1], (size_t)n, 0, 0);
    free(x), free(out[0]), free(out[1]);
}

/* ---- argmax: odd columns get a tie for the max; the first index must win ---- */

static void run_argmax(const lm_op_case *c, lm_test_rng *r) {
    const int64_t K = c->k, M = c->m;
    float *x = lm_test_randn(r, (size_t)(K * M), 1.0f);
    for (int64_t m = 1; m < M && K >= 2; m += 2) {
        int64_t i = (int64_t)(lm_test_rng_u64(r) % (uint64_t)(K - 1));
        int64_t j = i + 1 + (int64_t)(lm_test_rng_u64(r) % (uint64_t)(K - 1 - i));
        x[m * K + i] = x[m * K + j] = 10.0f;
    }
    if (M > 2) x[2 * K] = NAN; /* skipped, as the CPU skips it */
    int32_t *out[2];
    lm_backend *bes[2] = {g_cpu, g_cu};
    for (int b = 0; b < 2; b++) {
        lm_test_dt tx = lm_test_dt_new(bes[b], LM_TYPE_F32, K, M, 1, 1, x);
        lm_test_dt td = lm_test_dt_new(bes[b], LM_TYPE_I32, M, 1, 1, 1, NULL);
        lm_test_expect_ok(bes[b]->ops->argmax(bes[b], &tx.t, &td.t),
                          lm_test_case_desc(c, "argmax"));
        out[b] = lm_test_dt_read(&td);
        lm_test_dt_free(&tx), lm_test_dt_free(&td);
    }
    for (int64_t m = 0; m < M; m++)
        cr_expect_eq(out[1][m], out[0][m], "%s: column %lld: gpu %d, cpu %d",
                     lm_test_case_desc(c, "equal"), (long long)m, out[1][m], out[0][m]);
    free(x), free(out[0]), free(out[1]);
}

/* ---- copy (lm_test_check_copy: bytes equal to the CPU's) ---- */

/* copy from every quantized type to F32 and F16 (the table copies float types) */
Test(cuda_ops, copy_from_every_type) {
    NEED_CUDA();
    lm_test_rng r = {lm_test_seed()};
    for (int t = 0; t < N_WTYPES; t++)
        for (int d = 0; d < 3; d++) {
            const lm_type dsts[3] = {LM_TYPE_F32, LM_TYPE_F16, LM_TYPE_BF16};
            lm_op_case c = {.op = LM_OP_COPY,
                            .src_type = g_wtypes[t],
                            .type = dsts[d],
                            .k = 512,
                            .n = 3,
                            .m = 2};
            lm_test_check_copy(g_cpu, g_cu, &c, &r);
        }
}

static void run_table(lm_op_kind op) {
    lm_test_rng r = {lm_test_seed()};
    int n = 0;
    for (int i = 0; i < lm_op_n_cases; i++) {
        const lm_op_case *c = &lm_op_cases[i];
        if (c->op != op) continue;
        /* the CUDA backend refuses Q8_0 KV caches (UNSUPPORTED) until it has kernels */
        if ((op == LM_OP_KV_STORE || op == LM_OP_ATTENTION) && c->type == LM_TYPE_Q8_0) continue;
        n++;
        switch (op) {
        case LM_OP_RMS_NORM:
            run_rms_norm(c, &r);
            break;
        case LM_OP_ROPE:
            run_rope(c, &r);
            break;
        case LM_OP_KV_STORE:
            lm_test_check_kv_store(g_cpu, g_cu, c, &r);
            break;
        case LM_OP_ATTENTION:
            run_attention(c, &r, 0);
            run_attention(c, &r, -1);
            run_attention(c, &r, 3);
            break;
        case LM_OP_ARGMAX:
            run_argmax(c, &r);
            break;
        case LM_OP_COPY:
            lm_test_check_copy(g_cpu, g_cu, c, &r);
            break;
        default:
            run_elementwise(c, &r);
            break;
        }
    }
    cr_expect_gt(n, 0, "no cases for %s in the op table", lm_op_name(op));
}

Test(cuda_ops, rms_norm) {
    NEED_CUDA();
    run_table(LM_OP_RMS_NORM);
}
Test(cuda_ops, rope) {
    NEED_CUDA();
    run_table(LM_OP_ROPE);
}
Test(cuda_ops, kv_store) {
    NEED_CUDA();
    run_table(LM_OP_KV_STORE);
}
Test(cuda_ops, attention) {
    NEED_CUDA();
    run_table(LM_OP_ATTENTION);
}
Test(cuda_ops, attention_long_contexts) {
    NEED_CUDA();
    lm_test_rng r = {lm_test_seed()};
    for (size_t i = 0; i < sizeof g_extra_attn / sizeof g_extra_attn[0]; i++) {
        run_attention(&g_extra_attn[i], &r, 0);
        run_attention(&g_extra_attn[i], &r, -1);
        run_attention(&g_extra_attn[i], &r, 7);
    }
}
Test(cuda_ops, swiglu) {
    NEED_CUDA();
    run_table(LM_OP_SWIGLU);
}
Test(cuda_ops, geglu) {
    NEED_CUDA();
    run_table(LM_OP_GEGLU);
}
Test(cuda_ops, add) {
    NEED_CUDA();
    run_table(LM_OP_ADD);
}
Test(cuda_ops, mul) {
    NEED_CUDA();
    run_table(LM_OP_MUL);
}
Test(cuda_ops, scale) {
    NEED_CUDA();
    run_table(LM_OP_SCALE);
}
Test(cuda_ops, argmax) {
    NEED_CUDA();
    run_table(LM_OP_ARGMAX);
}
Test(cuda_ops, copy) {
    NEED_CUDA();
    run_table(LM_OP_COPY);
}

/* ---- bad ids: refused at once outside a recording (as the CPU), flagged at sync inside ---- */

Test(cuda_ops, bad_ids_are_refused_or_reported_at_sync) {
    NEED_CUDA();
    const int64_t K = 64, N = 5;
    float *tab = calloc((size_t)(K * N), sizeof *tab);
    const int32_t ids[2] = {1, 7}; /* 7 >= N */
    lm_test_dt src = lm_test_dt_new(g_cu, LM_TYPE_F32, K, N, 1, 1, tab);
    lm_test_dt id = lm_test_dt_new(g_cu, LM_TYPE_I32, 2, 1, 1, 1, ids);
    lm_test_dt dst = lm_test_dt_new(g_cu, LM_TYPE_F32, K, 2, 1, 1, NULL);
    cr_expect_eq(g_cu->ops->get_rows(g_cu, &src.t, &id.t, &dst.t), LM_ERR_INVALID_ARG);
    cr_expect(strstr(lm_last_error(), "ids[1] = 7") != NULL, "%s", lm_last_error());
    lm_test_expect_ok(g_cu->ops->begin(g_cu), "begin");
    lm_test_expect_ok(g_cu->ops->get_rows(g_cu, &src.t, &id.t, &dst.t), "recorded get_rows");
    lm_test_expect_ok(g_cu->ops->end(g_cu), "end");
    cr_expect_eq(g_cu->ops->sync(g_cu), LM_ERR_INVALID_ARG, "sync must report the bad id");
    cr_expect(strstr(lm_last_error(), "get_rows") != NULL, "%s", lm_last_error());
    lm_test_expect_ok(g_cu->ops->sync(g_cu), "the flag is reset after it was reported");
    lm_test_dt_free(&src), lm_test_dt_free(&id), lm_test_dt_free(&dst);
    free(tab);
}
