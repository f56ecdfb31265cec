/* The Vulkan backend's ops against the CPU backend (the oracle: its plain-C level unless
 * LUMEN_CPU_LEVEL says otherwise), on the same random inputs:
 * every row of the shared op-case table (tests/helpers/op_cases.c), mul_mat and get_rows
 * of every row for every weight type whose block fits the row's K, plus the shapes the
 * table lacks (k-quant blocks, batches that take the tiled kernels, long decode contexts
 * that split attention, a weight matrix larger than one storage-buffer binding).
 *
 * Tolerances, GPU vs CPU (not vs exact math), per op:
 *  - bit-equal: get_rows, mul_mat (float W: the shaders sum in the CPU's 16-lane order;
 *    quantized W: same 16-bit activations, integer block sums, block terms added in
 *    order), kv_store, add, mul, scale, copy, argmax. Every product and sum is one IEEE
 *    rounding with no FMA (`precise`), so the results are the CPU's own.
 *  - on devices with shaderFloat64 (lavapipe), bit-equal too: rope (angles and sin/cos
 *    in double, rounded as the CPU's libm), swiglu (glibc's expf computed in double) and
 *    attention (the CPU's float exp, chunks and summation orders; the flash kernel and
 *    soft-capping's tanh aside:
 *    twice the table's tolerance); rms_norm to 1 ulp
 *    (2^-23 relative: its double sum of squares is added in another order, which can move
 *    the rounded float scale in rare cases).
 *  - the float variants (devices without doubles; forced here too): rope and rms_norm
 *    within the table's tolerance of the CPU; swiglu, geglu and the flash attention kernel
 *    (own exp/tanh of ~1-2 ulp, tiles of positions in another order) within twice the
 *    table's tolerance (both results lie within it of the exact value).
 * Without a Vulkan device (or without the backend compiled in) every test skips, saying
 * why. LUMEN_TEST_VERBOSE=1 prints each case's largest differences. */
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

#ifdef LM_HAVE_VULKAN
/* internal knobs of kernels/vulkan (vk_backend.c) */
void lm__vk_set_test_knobs(lm_backend *be, int mm_path, int f32_only, int attn_split);
int lm__vk_validation_errors(lm_backend *be);
int lm__vk_has_f64(lm_backend *be);
#endif

static lm_backend *g_cpu, *g_vk;
static char g_why[512];

static void setup(void) {
    /* the oracle: the CPU backend's plain-C level, which its SIMD levels equal bit for bit */
    setenv("LUMEN_CPU_LEVEL", "scalar", 0);
    lm_backend_config cfg = {2, 0};
    cr_assert_eq(lm_backend_create("cpu", &cfg, &g_cpu), LM_OK, "%s", lm_last_error());
#ifdef LM_HAVE_VULKAN
    if (lm_backend_create("vulkan", NULL, &g_vk) != LM_OK) {
        snprintf(g_why, sizeof g_why, "no usable Vulkan device: %s", lm_last_error());
        g_vk = NULL;
    }
#else
    snprintf(g_why, sizeof g_why, "the Vulkan backend is not compiled in");
#endif
}

static void teardown(void) {
#ifdef LM_HAVE_VULKAN
    if (g_vk)
        cr_expect_eq(lm__vk_validation_errors(g_vk), 0, "the validation layer reported errors");
#endif
    lm_backend_destroy(g_vk);
    lm_backend_destroy(g_cpu);
    g_vk = g_cpu = NULL;
}

TestSuite(vk_ops, .init = setup, .fini = teardown, .timeout = 600);

#define NEED_VK()                                                                                  \
    do {                                                                                           \
        if (!g_vk) cr_skip_test("%s", g_why);                                                      \
    } while (0)

/* the device runs the bit-equal double-precision variants */
static int exact(void) {
#ifdef LM_HAVE_VULKAN
    return lm__vk_has_f64(g_vk);
#else
    return 0;
#endif
}

static void knobs(int mm, int f32, int split) {
#ifdef LM_HAVE_VULKAN
    lm__vk_set_test_knobs(g_vk, mm, f32, split);
#else
    (void)mm, (void)f32, (void)split;
#endif
}

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
    lm_backend *bes[2] = {g_cpu, g_vk};
    for (int b = 0; b < 2; b++) {
        lm_test_dt src = lm_test_dt_buffer(bes[b], (size_t)N * stride, padded);
        lm_tensor_init(&src.t, src.buf, 0, type, K, N, 1, 1);
        src.t.nb[1] = stride;
        lm_test_dt id = lm_test_dt_new(bes[b], LM_TYPE_I32, M, 1, 1, 1, ids);
        lm_test_dt dst = lm_test_dt_new(bes[b], LM_TYPE_F32, K, M, 1, 1, NULL);
        lm_op_case cc = *c;
        cc.type = type;
        lm_test_expect_ok(bes[b]->ops->get_rows(bes[b], &src.t, &id.t, &dst.t),
                          lm_test_case_desc(&cc, "get_rows"));
        out[b] = lm_test_dt_read(&dst);
        lm_test_dt_free(&src), lm_test_dt_free(&id), lm_test_dt_free(&dst);
    }
    lm_op_case cc = *c;
    cc.type = type;
    lm_test_compare(lm_test_case_desc(&cc, "bit-equal"), out[0], out[1], (size_t)(K * M), 0, 0);
    free(tab), free(enc), free(padded), free(ids), free(out[0]), free(out[1]);
}

/* ---- mul_mat: every weight type; matrix-vector, tiled and automatic kernels ---- */

static void run_mul_mat(const lm_op_case *c, lm_type type, lm_test_rng *r) {
    const int64_t K = c->k, N = c->n, M = c->m;
    float *wf = lm_test_randn(r, (size_t)(K * N), 0.5f),
          *x = lm_test_randn(r, (size_t)(K * M), 1.0f);
    void *w = lm_test_encode(type, wf, K, N);
    if (!w) {
        free(wf), free(x);
        return;
    }
    lm_op_case cc = *c;
    cc.type = type;
    static const char *paths[3] = {"auto", "matrix-vector", "tiled"};
    float *ref = NULL;
    for (int run = -1; run < 3; run++) { /* -1: the CPU reference, then the three paths */
        lm_backend *be = run < 0 ? g_cpu : g_vk;
        if (run >= 0) knobs(run, 0, 0);
        lm_test_dt tw = lm_test_dt_new(be, type, K, N, 1, 1, w);
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
        char what[400];
        snprintf(what, sizeof what, "%s bit-equal", lm_test_case_desc(&cc, paths[run]));
        lm_test_compare(what, ref, out, (size_t)(N * M), 0, 0);
        free(out);
    }
    knobs(0, 0, 0);
    free(wf), free(x), free(w), free(ref);
}

static const lm_type g_wtypes[] = {LM_TYPE_F32,  LM_TYPE_F16,  LM_TYPE_BF16, LM_TYPE_Q4_0,
                                   LM_TYPE_Q4_1, LM_TYPE_Q5_0, LM_TYPE_Q5_1, LM_TYPE_Q8_0,
                                   LM_TYPE_Q2_K, LM_TYPE_Q3_K, LM_TYPE_Q4_K, LM_TYPE_Q5_K,
                                   LM_TYPE_Q6_K};
#define N_WTYPES ((int)(sizeof g_wtypes / sizeof g_wtypes[0]))

/* Shapes the table lacks: k-quant blocks (K a multiple of 256), batches over 8 (tiled
 * kernels) with ragged tiles, a wide batch. */
static const lm_op_case g_extra_mm[] = {
    {.op = LM_OP_MUL_MAT, .k = 256, .n = 33, .m = 1},
    {.op = LM_OP_MUL_MAT, .k = 512, .n = 17, .m = 9},
    {.op = LM_OP_MUL_MAT, .k = 768, .n = 41, .m = 19},
    {.op = LM_OP_MUL_MAT, .k = 96, .n = 37, .m = 33},
    {.op = LM_OP_MUL_MAT, .k = 1536, .n = 7, .m = 8},
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

Test(vk_ops, get_rows_every_type) {
    NEED_VK();
    sweep_types(LM_OP_GET_ROWS, g_extra_rows, (int)(sizeof g_extra_rows / sizeof g_extra_rows[0]));
}

Test(vk_ops, mul_mat_every_type) {
    NEED_VK();
    sweep_types(LM_OP_MUL_MAT, g_extra_mm, (int)(sizeof g_extra_mm / sizeof g_extra_mm[0]));
}

/* Every weight type is reachable: a table row or an extra shape fits each block size. */
Test(vk_ops, every_weight_type_has_a_shape) {
    for (int t = 0; t < N_WTYPES; t++) {
        int blck = lm_type_get((uint32_t)g_wtypes[t]).blck, fits = 0;
        for (size_t i = 0; i < sizeof g_extra_mm / sizeof g_extra_mm[0]; i++)
            fits |= g_extra_mm[i].k % blck == 0;
        cr_expect(fits, "no mul_mat shape for %s", lm_type_get((uint32_t)g_wtypes[t]).name);
    }
}

/* ---- rms_norm (double and float sums) ---- */

static void run_rms_norm(const lm_op_case *c, lm_test_rng *r) {
    const int64_t K = c->k, R = c->n * c->m;
    float *x = lm_test_randn(r, (size_t)(K * R), 2.0f), *w = lm_test_randn(r, (size_t)K, 1.0f);
    float *out[3];
    lm_backend *bes[3] = {g_cpu, g_vk, g_vk};
    for (int b = 0; b < 3; b++) {
        if (b) knobs(0, b == 2, 0);
        lm_test_dt tx = lm_test_dt_new(bes[b], LM_TYPE_F32, K, c->n, c->m, 1, x);
        lm_test_dt tw = lm_test_dt_new(bes[b], LM_TYPE_F32, K, 1, 1, 1, w);
        lm_test_dt td = lm_test_dt_new(bes[b], LM_TYPE_F32, K, c->n, c->m, 1, NULL);
        lm_test_expect_ok(
            bes[b]->ops->rms_norm(bes[b], &tx.t, c->mode ? &tw.t : NULL, 1e-5f, &td.t),
            lm_test_case_desc(c, "rms_norm"));
        out[b] = lm_test_dt_read(&td);
        lm_test_dt_free(&tx), lm_test_dt_free(&tw), lm_test_dt_free(&td);
    }
    lm_test_compare(lm_test_case_desc(c, "double sum: 1 ulp"), out[0], out[1], (size_t)(K * R), 0,
                    1.2e-7);
    lm_test_compare(lm_test_case_desc(c, "float sum: table"), out[0], out[2], (size_t)(K * R),
                    2 * c->atol, 2 * c->rtol);
    knobs(0, 0, 0);
    free(x), free(w), free(out[0]), free(out[1]), free(out[2]);
}

/* ---- rope (double and float angles) ---- */

static void run_rope(const lm_op_case *c, lm_test_rng *r) {
    const int64_t D = c->k, H = c->n, T = c->m;
    float *x = lm_test_randn(r, (size_t)(D * H * T), 1.0f), ff[256];
    int32_t *pos = malloc((size_t)T * sizeof *pos);
    for (int64_t t = 0; t < T; t++) pos[t] = (int32_t)(lm_test_rng_u64(r) % (uint64_t)c->n_ctx);
    pos[0] = c->n_ctx - 1; /* the largest angle of the case */
    for (int i = 0; i < c->n_rot / 2; i++) ff[i] = 1.0f + 7.0f * lm_test_rng_uniform(r);
    lm_rope_params p = {(lm_rope_mode)c->mode, c->n_rot, c->freq_factors ? 500000.0f : 10000.0f,
                        c->freq_scale > 0 ? c->freq_scale : 1.0f, c->freq_factors ? ff : NULL};
    float *out[3];
    lm_backend *bes[3] = {g_cpu, g_vk, g_vk};
    for (int b = 0; b < 3; b++) {
        if (b) knobs(0, b == 2, 0);
        lm_test_dt tx = lm_test_dt_new(bes[b], LM_TYPE_F32, D, H, T, 1, x);
        lm_test_dt tp = lm_test_dt_new(bes[b], LM_TYPE_I32, T, 1, 1, 1, pos);
        lm_test_expect_ok(bes[b]->ops->rope(bes[b], &tx.t, &tp.t, &p),
                          lm_test_case_desc(c, "rope"));
        out[b] = lm_test_dt_read(&tx);
        lm_test_dt_free(&tx), lm_test_dt_free(&tp);
    }
    lm_test_compare(lm_test_case_desc(c, "double sin/cos: table"), out[0], out[1],
                    (size_t)(D * H * T), c->atol, c->rtol);
    lm_test_compare(lm_test_case_desc(c, "float sin/cos: table"), out[0], out[2],
                    (size_t)(D * H * T), c->atol, c->rtol);
    knobs(0, 0, 0);
    free(x), free(pos), free(out[0]), free(out[1]), free(out[2]);
}

/* ---- attention: q a view into a fused QKV activation, caches a view of layer 1 of two,
 * positions past each sequence's context hold NaN (never read); as test_ops.c ---- */

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
        cache[kv] = lm_test_encode(c->type, f, D, 2 * rows);
        /* 0xff bytes: NaN in every cache type (F32, F16, a Q8_0 block's scale) */
        const size_t rs = lm_row_size(c->type, D);
        for (int64_t s = 0; s < S; s++) {
            int64_t L = c->n_ctx - 7 * s > 1 ? c->n_ctx - 7 * s : 1;
            for (int64_t p = L; p < C; p++)
                memset((char *)cache[kv] + layer + (size_t)((s * C + p) * Hk) * rs, 0xff,
                       (size_t)Hk * rs);
        }
        free(f);
    }
    lm_attn_params p = {1.0f / sqrtf((float)D), c->window, c->softcap};
    float *out[2];
    lm_backend *bes[2] = {g_cpu, g_vk};
    knobs(0, 0, split);
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
    knobs(0, 0, 0);
    char what[400];
    /* the bit-equal kernel (soft-capping aside: its tanh is not glibc's) */
    const int eq = split == 0 && exact() && c->softcap == 0;
    snprintf(what, sizeof what, "%s split %d", lm_test_case_desc(c, eq ? "bit-equal" : "2x table"),
             split);
    lm_test_compare(what, out[0], out[1], (size_t)(D * H * T), eq ? 0 : 2 * c->atol,
                    eq ? 0 : 2 * c->rtol);
    free(pos), free(seq), free(qkv), free(cache[0]), free(cache[1]), free(out[0]), free(out[1]);
}

/* long decode contexts (split over chunks), a big head, a window over a long context */
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
};

/* ---- element-wise ---- */

static void run_elementwise(const lm_op_case *c, lm_test_rng *r, int f32) {
    const int64_t ne[3] = {c->k, c->n, c->m}, n = c->k * c->n * c->m;
    int64_t bne[3];
    for (int i = 0; i < 3; i++) bne[i] = (c->mode >> i) & 1 ? 1 : ne[i];
    float *a = lm_test_randn(r, (size_t)n, 3.0f),
          *bb = lm_test_randn(r, (size_t)(bne[0] * bne[1] * bne[2]), 1.0f);
    float *out[2];
    lm_backend *bes[2] = {g_cpu, g_vk};
    knobs(0, f32, 0);
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
    knobs(0, 0, 0);
    /* geglu's tanh is the shaders' own; swiglu's exp is glibc's with doubles */
    const int loose = c->op == LM_OP_GEGLU || (c->op == LM_OP_SWIGLU && (f32 || !exact()));
    lm_test_compare(
        lm_test_case_desc(c, loose ? (f32 ? "float exp: 2x table" : "2x table") : "bit-equal"),
        out[0], out[1], (size_t)n, loose ? 2 * c->atol : 0, loose ? 2 * c->rtol : 0);
    free(a), free(bb), free(out[0]), free(out[1]);
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
    int32_t *out[2];
    lm_backend *bes[2] = {g_cpu, g_vk};
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

/* ---- the table (kv_store and copy: byte-equal checks in helpers/op_util.c) ---- */

static void run_table(lm_op_kind op) {
    lm_test_rng r = {lm_test_seed()};
    int n = 0;
    for (int i = 0; i < lm_op_n_cases; i++) {
        const lm_op_case *c = &lm_op_cases[i];
        if (c->op != op) continue;
        n++;
        switch (op) {
        case LM_OP_RMS_NORM:
            run_rms_norm(c, &r);
            break;
        case LM_OP_ROPE:
            run_rope(c, &r);
            break;
        case LM_OP_KV_STORE:
            lm_test_check_kv_store(g_cpu, g_vk, c, &r);
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
            lm_test_check_copy(g_cpu, g_vk, c, &r);
            break;
        case LM_OP_SWIGLU:
            run_elementwise(c, &r, 0);
            run_elementwise(c, &r, 1);
            break;
        default:
            run_elementwise(c, &r, 0);
            break;
        }
    }
    cr_expect_gt(n, 0, "no cases for %s in the op table", lm_op_name(op));
}

Test(vk_ops, rms_norm) {
    NEED_VK();
    run_table(LM_OP_RMS_NORM);
}
Test(vk_ops, rope) {
    NEED_VK();
    run_table(LM_OP_ROPE);
}
Test(vk_ops, kv_store) {
    NEED_VK();
    run_table(LM_OP_KV_STORE);
}
Test(vk_ops, attention) {
    NEED_VK();
    run_table(LM_OP_ATTENTION);
}
Test(vk_ops, attention_long_contexts) {
    NEED_VK();
    lm_test_rng r = {lm_test_seed()};
    for (size_t i = 0; i < sizeof g_extra_attn / sizeof g_extra_attn[0]; i++) {
        run_attention(&g_extra_attn[i], &r, 0);
        run_attention(&g_extra_attn[i], &r, -1);
    }
}
Test(vk_ops, swiglu) {
    NEED_VK();
    run_table(LM_OP_SWIGLU);
}
Test(vk_ops, geglu) {
    NEED_VK();
    run_table(LM_OP_GEGLU);
}
Test(vk_ops, add) {
    NEED_VK();
    run_table(LM_OP_ADD);
}
Test(vk_ops, mul) {
    NEED_VK();
    run_table(LM_OP_MUL);
}
Test(vk_ops, scale) {
    NEED_VK();
    run_table(LM_OP_SCALE);
}
Test(vk_ops, argmax) {
    NEED_VK();
    run_table(LM_OP_ARGMAX);
}
Test(vk_ops, copy) {
    NEED_VK();
    run_table(LM_OP_COPY);
}
/* a Q8_0 KV cache's lm_kv_seq_copy: block rows moved unchanged (not in the shared table:
 * the CUDA backend has no Q8_0 copy) */
Test(vk_ops, copy_q8_0_blocks) {
    NEED_VK();
    lm_test_rng r = {lm_test_seed()};
    const lm_op_case c = {.op = LM_OP_COPY,
                          .type = LM_TYPE_Q8_0,
                          .src_type = LM_TYPE_Q8_0,
                          .k = 96,
                          .n = 3,
                          .m = 5,
                          .why = "bytes moved: must be byte-equal"};
    lm_test_check_copy(g_cpu, g_vk, &c, &r);
}

/* ---- recording: ops between begin and end run in order; an upload in the middle sees
 * the work recorded before it; sync mid-recording lets the host read ---- */

static float *run_sequence(lm_backend *be, const float *a0, const float *a1, int64_t n) {
    lm_test_dt a = lm_test_dt_new(be, LM_TYPE_F32, n, 1, 1, 1, a0);
    lm_test_dt b = lm_test_dt_new(be, LM_TYPE_F32, n, 1, 1, 1, NULL);
    lm_test_dt c = lm_test_dt_new(be, LM_TYPE_F32, n, 1, 1, 1, NULL);
    lm_test_expect_ok(be->ops->begin(be), "begin");
    lm_test_expect_ok(be->ops->scale(be, &a.t, 2.0f, &b.t), "scale"); /* b = 2 a0 */
    lm_test_expect_ok(be->ops->add(be, &b.t, &a.t, &b.t), "add");     /* b = 3 a0 (reads b, a) */
    lm_test_expect_ok(be->ops->upload(be, a.buf, 0, a1, (size_t)n * 4), "upload"); /* a = a1 */
    lm_test_expect_ok(be->ops->mul(be, &a.t, &b.t, &c.t), "mul"); /* c = a1 * 3 a0 */
    lm_test_expect_ok(be->ops->sync(be), "sync");
    float *mid = lm_test_dt_read(&c);
    lm_test_expect_ok(be->ops->add(be, &c.t, &a.t, &c.t), "add"); /* c += a1 */
    lm_test_expect_ok(be->ops->end(be), "end");
    lm_test_expect_ok(be->ops->sync(be), "sync");
    float *out = lm_test_dt_read(&c);
    cr_expect(memcmp(mid, out, (size_t)n * 4) != 0, "the op after sync did not run");
    free(mid);
    lm_test_dt_free(&a), lm_test_dt_free(&b), lm_test_dt_free(&c);
    return out;
}

Test(vk_ops, recorded_sequence_in_order) {
    NEED_VK();
    lm_test_rng r = {lm_test_seed()};
    const int64_t n = 1000;
    float *a0 = lm_test_randn(&r, n, 1.0f), *a1 = lm_test_randn(&r, n, 1.0f);
    float *x = run_sequence(g_cpu, a0, a1, n), *y = run_sequence(g_vk, a0, a1, n);
    lm_test_compare("recorded sequence: bit-equal", x, y, (size_t)n, 0, 0);
    free(a0), free(a1), free(x), free(y);
}

/* ---- step replay: a begin..end segment equal to one recorded before re-submits its
 * command buffer (kernels/vulkan/vk_command.c); each step uploads new activations and a new
 * position, which the replayed commands must read: a quantized mul_mat (act arena), RoPE
 * with per-pair divisors (host arena table), kv_store into a q8_0 cache and attention, bit
 * for bit against the CPU at every step ---- */

#define REPLAY_STEPS 5

static void run_steps(lm_backend *be, const void *w, const float *xs, float *out, void *cache) {
    const int64_t K = 96, D = 64, H = 2, C = 8;
    lm_test_dt tw = lm_test_dt_new(be, LM_TYPE_Q8_0, K, D * H, 1, 1, w);
    lm_test_dt tx = lm_test_dt_new(be, LM_TYPE_F32, K, 1, 1, 1, NULL);
    lm_test_dt ty = lm_test_dt_new(be, LM_TYPE_F32, D, H, 1, 1, NULL);
    lm_test_dt to = lm_test_dt_new(be, LM_TYPE_F32, D, H, 1, 1, NULL);
    lm_test_dt tp = lm_test_dt_new(be, LM_TYPE_I32, 1, 1, 1, 1, NULL);
    lm_test_dt ts = lm_test_dt_new(be, LM_TYPE_I32, 1, 1, 1, 1, NULL);
    lm_test_dt kc = lm_test_dt_new(be, LM_TYPE_Q8_0, D, H, C, 1, NULL),
               vc = lm_test_dt_new(be, LM_TYPE_Q8_0, D, H, C, 1, NULL);
    lm_tensor y2 = ty.t; /* the mul_mat output [D * H, 1] */
    y2.ne[0] = D * H, y2.ne[1] = 1, y2.nb[2] = y2.nb[3] = y2.nb[1] = (size_t)(D * H) * 4;
    float ff[32];
    for (int i = 0; i < 32; i++) ff[i] = 1.0f + 0.25f * (float)(i % 5);
    lm_rope_params rp = {LM_ROPE_NEOX, 64, 10000.0f, 1.0f, ff};
    lm_attn_params ap = {0.125f, 0, 0.0f};
    for (int st = 0; st < REPLAY_STEPS; st++) {
        const int32_t pos = st, seq = 0;
        lm_test_expect_ok(be->ops->upload(be, tx.buf, 0, xs + st * K, (size_t)K * 4), "upload x");
        lm_test_expect_ok(be->ops->upload(be, tp.buf, 0, &pos, 4), "upload pos");
        lm_test_expect_ok(be->ops->upload(be, ts.buf, 0, &seq, 4), "upload seq");
        lm_test_expect_ok(be->ops->begin(be), "begin");
        lm_test_expect_ok(be->ops->mul_mat(be, &tw.t, &tx.t, &y2), "mul_mat");
        lm_test_expect_ok(be->ops->rope(be, &ty.t, &tp.t, &rp), "rope");
        lm_test_expect_ok(be->ops->kv_store(be, &ty.t, &ty.t, &kc.t, &vc.t, &tp.t, &ts.t),
                          "kv_store");
        lm_test_expect_ok(be->ops->attention(be, &ty.t, &kc.t, &vc.t, &tp.t, &ts.t, &ap, &to.t),
                          "attention");
        lm_test_expect_ok(be->ops->end(be), "end");
        lm_test_expect_ok(be->ops->sync(be), "sync");
        lm_test_expect_ok(be->ops->download(be, to.buf, 0, out + st * D * H, (size_t)(D * H) * 4),
                          "download");
    }
    lm_test_expect_ok(be->ops->download(be, kc.buf, 0, cache, lm_tensor_nbytes(&kc.t)), "download");
    lm_test_dt_free(&tw), lm_test_dt_free(&tx), lm_test_dt_free(&ty), lm_test_dt_free(&to),
        lm_test_dt_free(&tp), lm_test_dt_free(&ts);
    lm_test_dt_free(&kc), lm_test_dt_free(&vc);
}

void lm__vk_replay_stats(lm_backend *be, uint64_t *segments, uint64_t *replayed);

Test(vk_ops, replayed_steps_read_new_inputs) {
    NEED_VK();
    lm_test_rng r = {lm_test_seed()};
    const int64_t K = 96, D = 64, H = 2, C = 8;
    float *wf = lm_test_randn(&r, (size_t)(K * D * H), 0.3f),
          *xs = lm_test_randn(&r, (size_t)(K * REPLAY_STEPS), 1.0f);
    void *w = lm_test_encode(LM_TYPE_Q8_0, wf, K, D * H);
    const size_t n = (size_t)(D * H * REPLAY_STEPS),
                 cb = lm_row_size(LM_TYPE_Q8_0, D) * (size_t)(H * C);
    float *out[2] = {malloc(n * 4), malloc(n * 4)};
    void *cache[2] = {malloc(cb), malloc(cb)};
    uint64_t seg0, rep0, seg1, rep1;
    lm__vk_replay_stats(g_vk, &seg0, &rep0);
    run_steps(g_cpu, w, xs, out[0], cache[0]);
    run_steps(g_vk, w, xs, out[1], cache[1]);
    lm__vk_replay_stats(g_vk, &seg1, &rep1);
    lm_test_compare("replayed steps: bit-equal", out[0], out[1], n, 0, 0);
    cr_expect(memcmp(cache[0], cache[1], cb) == 0, "q8_0 cache bytes differ from the CPU's");
    cr_expect_eq(seg1 - seg0, REPLAY_STEPS, "segments ended");
    cr_expect_geq(rep1 - rep0, REPLAY_STEPS - 1, "%llu of %d steps replayed",
                  (unsigned long long)(rep1 - rep0), REPLAY_STEPS);
    free(wf), free(xs), free(w), free(out[0]), free(out[1]), free(cache[0]), free(cache[1]);
}

/* ---- a weight matrix larger than one storage-buffer binding (lavapipe: 128 MiB) is bound
 * in windows of rows: mul_mat and get_rows across the boundary ---- */

Test(vk_ops, weights_larger_than_a_binding) {
    NEED_VK();
    lm_test_rng r = {lm_test_seed()};
    const int64_t K = 2048, N = 16500, M = 2; /* 135 MB of F32 */
    float *w = lm_test_randn(&r, (size_t)(K * N), 0.5f),
          *x = lm_test_randn(&r, (size_t)(K * M), 1.0f);
    const int32_t ids[4] = {0, 16499, 8191, 16383};
    float *mm[2], *rows[2];
    lm_backend *bes[2] = {g_cpu, g_vk};
    for (int b = 0; b < 2; b++) {
        lm_test_dt tw = lm_test_dt_new(bes[b], LM_TYPE_F32, K, N, 1, 1, w);
        lm_test_dt tx = lm_test_dt_new(bes[b], LM_TYPE_F32, K, M, 1, 1, x);
        lm_test_dt td = lm_test_dt_new(bes[b], LM_TYPE_F32, N, M, 1, 1, NULL);
        lm_test_dt ti = lm_test_dt_new(bes[b], LM_TYPE_I32, 4, 1, 1, 1, ids);
        lm_test_dt tr = lm_test_dt_new(bes[b], LM_TYPE_F32, K, 4, 1, 1, NULL);
        lm_test_expect_ok(bes[b]->ops->mul_mat(bes[b], &tw.t, &tx.t, &td.t), "big mul_mat");
        lm_test_expect_ok(bes[b]->ops->get_rows(bes[b], &tw.t, &ti.t, &tr.t), "big get_rows");
        mm[b] = lm_test_dt_read(&td), rows[b] = lm_test_dt_read(&tr);
        lm_test_dt_free(&tw), lm_test_dt_free(&tx), lm_test_dt_free(&td), lm_test_dt_free(&ti),
            lm_test_dt_free(&tr);
    }
    lm_test_compare("mul_mat W of 135 MB: bit-equal", mm[0], mm[1], (size_t)(N * M), 0, 0);
    lm_test_compare("get_rows of 135 MB: bit-equal", rows[0], rows[1], (size_t)(K * 4), 0, 0);
    free(w), free(x), free(mm[0]), free(mm[1]), free(rows[0]), free(rows[1]);
}

/* ---- KV caches larger than one binding (lavapipe: 128 MiB; many sequences of a long
 * context) are bound one sequence's slice at a time: kv_store into four sequences spread
 * over the cache, then attention of those tokens, byte- and bit-equal to the CPU (the flash
 * kernel within twice the op table's attention tolerance) ---- */

static void run_big_cache(lm_type type, int64_t S, lm_test_rng *r) {
    const int64_t D = 64, Hk = 2, H = 4, C = 512, T = 4;
    const size_t rs = lm_row_size(type, D), slice = rs * (size_t)(Hk * C),
                 bytes = slice * (size_t)S;
    cr_assert_gt(bytes, (size_t)128 << 20, "the cache must exceed lavapipe's binding limit");
    const int32_t seq[4] = {0, 3, (int32_t)(S / 2), (int32_t)(S - 1)};
    const int32_t pos[4] = {0, 17, 300, (int32_t)(C - 1)};
    char *cache0 = calloc(1, bytes); /* used slices: random rows before each token */
    float *row = malloc((size_t)D * sizeof *row);
    for (int t = 0; t < T; t++)
        for (int64_t p = 0; p < pos[t]; p++)
            for (int64_t h = 0; h < Hk; h++) {
                lm_test_fill_normal(r, row, (size_t)D, 1.0f);
                lm_quantize_row(type, row,
                                cache0 + (size_t)seq[t] * slice + (size_t)(p * Hk + h) * rs, D);
            }
    float *kv = lm_test_randn(r, (size_t)(D * Hk * T), 1.0f),
          *q = lm_test_randn(r, (size_t)(D * H * T), 1.0f);
    lm_attn_params ap = {0.125f, 0, 0.0f};
    float *out[3];
    char *kout[2];
    lm_backend *bes[3] = {g_cpu, g_vk, g_vk};
    for (int b = 0; b < 3; b++) {
        lm_backend *be = bes[b];
        knobs(0, 0, b == 2 ? -1 : 0); /* the third run: the flash kernel */
        lm_test_dt tk = lm_test_dt_new(be, LM_TYPE_F32, D, Hk, T, 1, kv);
        lm_test_dt tq = lm_test_dt_new(be, LM_TYPE_F32, D, H, T, 1, q);
        lm_test_dt kc = lm_test_dt_new(be, type, D, Hk, C, S, cache0),
                   vc = lm_test_dt_new(be, type, D, Hk, C, S, cache0);
        lm_test_dt tp = lm_test_dt_new(be, LM_TYPE_I32, T, 1, 1, 1, pos),
                   ts = lm_test_dt_new(be, LM_TYPE_I32, T, 1, 1, 1, seq);
        lm_test_dt to = lm_test_dt_new(be, LM_TYPE_F32, D, H, T, 1, NULL);
        lm_test_expect_ok(be->ops->kv_store(be, &tk.t, &tk.t, &kc.t, &vc.t, &tp.t, &ts.t),
                          "big kv_store");
        lm_test_expect_ok(be->ops->attention(be, &tq.t, &kc.t, &vc.t, &tp.t, &ts.t, &ap, &to.t),
                          "big attention");
        out[b] = lm_test_dt_read(&to);
        if (b < 2) kout[b] = lm_test_dt_read(&kc);
        lm_test_dt_free(&tk), lm_test_dt_free(&tq), lm_test_dt_free(&kc), lm_test_dt_free(&vc),
            lm_test_dt_free(&tp), lm_test_dt_free(&ts);
        lm_test_dt_free(&to);
    }
    knobs(0, 0, 0);
    cr_expect(memcmp(kout[0], kout[1], bytes) == 0, "%s cache of %zu MB: bytes differ",
              lm_type_get((uint32_t)type).name, bytes >> 20);
    lm_test_compare(exact() ? "attention over a cache larger than a binding: bit-equal"
                            : "attention over a cache larger than a binding",
                    out[0], out[1], (size_t)(D * H * T), exact() ? 0 : 4e-5, exact() ? 0 : 2e-4);
    lm_test_compare("flash attention over a cache larger than a binding", out[0], out[2],
                    (size_t)(D * H * T), 4e-5, 2e-4);
    free(cache0), free(row), free(kv), free(q), free(kout[0]), free(kout[1]);
    for (int b = 0; b < 3; b++) free(out[b]);
}

Test(vk_ops, kv_caches_larger_than_a_binding) {
    NEED_VK();
    lm_test_rng r = {lm_test_seed()};
    run_big_cache(LM_TYPE_F16, 1100, &r);  /* 137.5 MiB */
    run_big_cache(LM_TYPE_Q8_0, 2000, &r); /* 132.8 MiB */
}

/* ---- errors: as the CPU's, LM_ERR_INVALID_ARG naming the op and the fault ---- */

static void expect_err(lm_status s, lm_status want, const char *want1, const char *want2) {
    cr_expect_eq(s, want, "expected status %d, got %d (%s)", (int)want, (int)s, lm_last_error());
    cr_expect(strstr(lm_last_error(), want1) != NULL, "message '%s' lacks '%s'", lm_last_error(),
              want1);
    if (want2)
        cr_expect(strstr(lm_last_error(), want2) != NULL, "message '%s' lacks '%s'",
                  lm_last_error(), want2);
}

Test(vk_ops, errors) {
    NEED_VK();
    lm_backend *be = g_vk;
    const lm_backend_ops *o = be->ops;
    const lm_status INV = LM_ERR_INVALID_ARG;
    lm_test_dt w = lm_test_dt_new(be, LM_TYPE_Q8_0, 64, 8, 1, 1, NULL);
    lm_test_dt x = lm_test_dt_new(be, LM_TYPE_F32, 96, 2, 1, 1, NULL);
    lm_test_dt x64 = lm_test_dt_new(be, LM_TYPE_F32, 64, 2, 1, 1, NULL);
    lm_test_dt d = lm_test_dt_new(be, LM_TYPE_F32, 8, 2, 1, 1, NULL);
    lm_test_dt d3 = lm_test_dt_new(be, LM_TYPE_F32, 8, 3, 1, 1, NULL);
    expect_err(o->mul_mat(be, &w.t, &x.t, &d.t), INV, "mul_mat", "K");
    expect_err(o->mul_mat(be, &w.t, &x64.t, &d3.t), INV, "mul_mat", "dst");
    expect_err(o->mul_mat(be, NULL, &x64.t, &d.t), INV, "mul_mat", "NULL");
    lm_tensor big = w.t;
    big.ne[1] = 9;
    expect_err(o->mul_mat(be, &big, &x64.t, &d.t), INV, "mul_mat", "exceeds");
    lm_tensor iq = w.t;
    iq.type = LM_TYPE_IQ4_NL;
    iq.nb[0] = 18;
    expect_err(o->mul_mat(be, &iq, &x64.t, &d.t), INV, "mul_mat", "IQ4_NL");

    int32_t bad_id = 8, p4 = 4, s2 = 2, s0 = 0, p0 = 0;
    lm_test_dt ids = lm_test_dt_new(be, LM_TYPE_I32, 1, 1, 1, 1, &bad_id);
    lm_test_dt row = lm_test_dt_new(be, LM_TYPE_F32, 64, 1, 1, 1, NULL);
    expect_err(o->get_rows(be, &w.t, &ids.t, &row.t), INV, "get_rows", "ids[0] = 8");
    expect_err(o->add(be, &d.t, &d3.t, &d.t), INV, "add", "broadcast");
    expect_err(o->argmax(be, &d.t, &d.t), INV, "argmax", "type");
    lm_test_dt q8 = lm_test_dt_new(be, LM_TYPE_Q8_0, 32, 1, 1, 1, NULL),
               f = lm_test_dt_new(be, LM_TYPE_F32, 32, 1, 1, 1, NULL);
    expect_err(o->copy(be, &f.t, &q8.t), LM_ERR_UNSUPPORTED, "copy", "Q8_0");

    lm_test_dt k = lm_test_dt_new(be, LM_TYPE_F32, 16, 2, 1, 1, NULL);
    lm_test_dt kc = lm_test_dt_new(be, LM_TYPE_F16, 16, 2, 4, 2, NULL),
               vc = lm_test_dt_new(be, LM_TYPE_F16, 16, 2, 4, 2, NULL);
    lm_test_dt pos = lm_test_dt_new(be, LM_TYPE_I32, 1, 1, 1, 1, &p0),
               pos4 = lm_test_dt_new(be, LM_TYPE_I32, 1, 1, 1, 1, &p4);
    lm_test_dt seq0 = lm_test_dt_new(be, LM_TYPE_I32, 1, 1, 1, 1, &s0),
               seq2 = lm_test_dt_new(be, LM_TYPE_I32, 1, 1, 1, 1, &s2);
    expect_err(o->kv_store(be, &k.t, &k.t, &kc.t, &vc.t, &pos4.t, &seq0.t), INV, "kv_store",
               "n_ctx");
    expect_err(o->kv_store(be, &k.t, &k.t, &kc.t, &vc.t, &pos.t, &seq2.t), INV, "kv_store",
               "n_seq");
    lm_attn_params ap = {0.25f, 0, 0};
    lm_test_dt q2 = lm_test_dt_new(be, LM_TYPE_F32, 16, 2, 1, 1, NULL),
               o2 = lm_test_dt_new(be, LM_TYPE_F32, 16, 2, 1, 1, NULL);
    expect_err(o->attention(be, &q2.t, &kc.t, &vc.t, &pos4.t, &seq0.t, &ap, &o2.t), INV,
               "attention", "pos[0] = 4");
    expect_err(o->attention(be, &q2.t, &kc.t, &vc.t, &pos.t, &seq2.t, &ap, &o2.t), INV, "attention",
               "seq[0] = 2");
    cr_expect_eq(o->attention(be, &q2.t, &kc.t, &vc.t, &pos.t, &seq0.t, &ap, &o2.t), LM_OK, "%s",
                 lm_last_error());

    char buf[16] = {0};
    expect_err(o->upload(be, d.buf, 60, buf, 9), INV, "upload", "exceeds");
    expect_err(o->download(be, d.buf, 65, buf, 0), INV, "download", "exceeds");
    lm_buffer *huge = NULL;
    expect_err(o->buffer_alloc(be, (size_t)1 << 42, &huge), LM_ERR_NOMEM, "vulkan",
               "4398046511104");
    cr_expect_null(huge);

    lm_test_dt *all[] = {&w, &x,  &x64, &d,   &d3,   &ids,  &row,  &q8, &f,
                         &k, &kc, &vc,  &pos, &pos4, &seq0, &seq2, &q2, &o2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) lm_test_dt_free(all[i]);
}

/* ---- devices: listing, choice by name and index, and a bad choice ---- */

Test(vk_ops, devices_listed_and_chosen) {
    NEED_VK();
#ifdef LM_HAVE_VULKAN
    int32_t n = 0;
    cr_assert_eq(lm_vulkan_list_devices(NULL, 0, &n), LM_OK, "%s", lm_last_error());
    cr_assert_gt(n, 0);
    lm_vulkan_device_info *info = calloc((size_t)n, sizeof *info);
    int32_t n2 = 0;
    cr_assert_eq(lm_vulkan_list_devices(info, n, &n2), LM_OK);
    cr_expect_eq(n2, n);
    int usable = -1;
    for (int32_t i = 0; i < n; i++) {
        cr_expect_eq(info[i].index, i);
        cr_expect_gt(strlen(info[i].name), 0);
        cr_expect(info[i].usable || info[i].why_not[0], "device %d: unusable without a reason", i);
        if (info[i].usable && usable < 0) usable = i;
    }
    cr_assert_geq(usable, 0, "no usable device listed, yet the backend started");
    /* by index and by part of its name */
    char idx[16];
    snprintf(idx, sizeof idx, "%d", usable);
    lm_backend *be = NULL;
    setenv("LUMEN_VULKAN_DEVICE", idx, 1);
    cr_expect_eq(lm_backend_create("vulkan", NULL, &be), LM_OK, "%s", lm_last_error());
    if (be) cr_expect(strstr(be->ops->device_name(be), info[usable].name) != NULL);
    lm_backend_destroy(be);
    char part[8] = {0};
    memcpy(part, info[usable].name, strlen(info[usable].name) < 5 ? strlen(info[usable].name) : 5);
    setenv("LUMEN_VULKAN_DEVICE", part, 1);
    be = NULL;
    cr_expect_eq(lm_backend_create("vulkan", NULL, &be), LM_OK, "%s", lm_last_error());
    lm_backend_destroy(be);
    setenv("LUMEN_VULKAN_DEVICE", "no-such-gpu", 1);
    be = (lm_backend *)1;
    expect_err(lm_backend_create("vulkan", NULL, &be), LM_ERR_INVALID_ARG, "LUMEN_VULKAN_DEVICE",
               "no-such-gpu");
    cr_expect_null(be);
    setenv("LUMEN_VULKAN_DEVICE", "99", 1);
    expect_err(lm_backend_create("vulkan", NULL, &be), LM_ERR_INVALID_ARG, "99", NULL);
    unsetenv("LUMEN_VULKAN_DEVICE");
    lm_backend_config cfg = {0, 99};
    expect_err(lm_backend_create("vulkan", &cfg, &be), LM_ERR_INVALID_ARG, "device 99", NULL);
    cr_expect_gt(strlen(g_vk->ops->device_name(g_vk)), 0);
    cr_expect_gt(g_vk->ops->device_memory(g_vk), 0);
    free(info);
#endif
}
