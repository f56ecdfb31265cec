/* Backend ops of the CPU backend (the oracle) against direct formulas written here in
 * double precision, over every row of the op-case tables (runtime/op_cases.c: edge cases and bench
 * shapes) on random inputs from a fresh seed (replay with LUMEN_TEST_SEED). Each case runs with 1
 * and 3 threads and the two results must be bit-identical. Tolerances are per row of the
 * table, each with its reason. Mul_mat's reference dequantizes with lm_dequantize_row,
 * which test_quant checks bit-exact against gguf-py fixtures. */
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

static lm_backend *g_be[2]; /* 1 thread, 3 threads */
static const int g_threads[2] = {1, 3};

static void setup(void) {
    for (int b = 0; b < 2; b++) {
        lm_backend_config cfg = {g_threads[b], 0};
        cr_assert_eq(lm_backend_create("cpu", &cfg, &g_be[b]), LM_OK, "%s", lm_last_error());
    }
}

static void teardown(void) {
    for (int b = 0; b < 2; b++) lm_backend_destroy(g_be[b]);
}

TestSuite(ops, .init = setup, .fini = teardown);

/* ---- device tensors and inputs: the device-op suites' harness (helpers/op_util) ---- */

static double *decode_d(lm_type type, const void *src, int64_t n, int64_t rows) {
    size_t rs = lm_row_size(type, n);
    float *f = malloc((size_t)(n * rows) * sizeof *f);
    double *d = malloc((size_t)(n * rows) * sizeof *d);
    for (int64_t i = 0; i < rows; i++)
        lm_dequantize_row(type, (const char *)src + i * rs, f + i * n, n);
    for (int64_t i = 0; i < n * rows; i++) d[i] = f[i];
    free(f);
    return d;
}

static const char *desc(const lm_op_case *c) {
    static char buf[256];
    return lm_op_case_str(c, buf, sizeof buf);
}

/* Every element within atol + rtol |ref| (NaN never is). */
static void expect_close(const lm_op_case *c, const float *got, const double *ref, size_t n) {
    size_t bad = 0, worst = 0;
    double worst_excess = -1;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - ref[i]);
        double excess = err - (c->atol + c->rtol * fabs(ref[i]));
        if (isnan(err)) excess = INFINITY;
        if (excess > 0) bad++;
        if (excess > worst_excess) worst_excess = excess, worst = i;
    }
    cr_expect_eq(bad, 0,
                 "%s: %zu of %zu elements out of tolerance; worst [%zu] got %.9g ref %.9g "
                 "(atol %g rtol %g: %s)",
                 desc(c), bad, n, worst, got[worst], ref[worst], c->atol, c->rtol, c->why);
}

static void expect_same_threads(const lm_op_case *c, const void *a, const void *b, size_t n) {
    cr_expect(memcmp(a, b, n) == 0, "%s: results differ between 1 and 3 threads", desc(c));
}

static void expect_ok(lm_status s, const lm_op_case *c) {
    cr_assert_eq(s, LM_OK, "%s: %s", desc(c), lm_last_error());
}

/* ---- get_rows: table rows padded by 64 bytes (a strided view) ---- */

static void check_get_rows(const lm_op_case *c, lm_test_rng *r) {
    const int64_t K = c->k, N = c->n, M = c->m;
    float *tab = lm_test_randn(r, (size_t)(K * N), 1.0f);
    void *enc = lm_test_encode(c->type, tab, K, N);
    const size_t rs = lm_row_size(c->type, K), stride = rs + 64;
    char *padded = calloc((size_t)N, stride);
    for (int64_t i = 0; i < N; i++) memcpy(padded + i * stride, (char *)enc + i * rs, rs);
    int32_t *ids = malloc((size_t)M * sizeof *ids);
    for (int64_t i = 0; i < M; i++) ids[i] = (int32_t)(lm_test_rng_u64(r) % (uint64_t)N);
    double *all = decode_d(c->type, enc, K, N), *ref = malloc((size_t)(K * M) * sizeof *ref);
    for (int64_t i = 0; i < M; i++) memcpy(ref + i * K, all + ids[i] * K, (size_t)K * sizeof *ref);

    float *out[2];
    for (int b = 0; b < 2; b++) {
        lm_test_dt src = lm_test_dt_buffer(g_be[b], (size_t)N * stride, padded);
        lm_tensor_init(&src.t, src.buf, 0, c->type, K, N, 1, 1);
        src.t.nb[1] = stride;
        lm_test_dt id = lm_test_dt_new(g_be[b], LM_TYPE_I32, M, 1, 1, 1, ids);
        lm_test_dt dst = lm_test_dt_new(g_be[b], LM_TYPE_F32, K, M, 1, 1, NULL);
        expect_ok(g_be[b]->ops->get_rows(g_be[b], &src.t, &id.t, &dst.t), c);
        out[b] = lm_test_dt_read(&dst);
        lm_test_dt_free(&src), lm_test_dt_free(&id), lm_test_dt_free(&dst);
    }
    expect_same_threads(c, out[0], out[1], (size_t)(K * M) * sizeof(float));
    expect_close(c, out[0], ref, (size_t)(K * M));
    free(tab), free(enc), free(padded), free(ids), free(all), free(ref), free(out[0]), free(out[1]);
}

/* ---- rms_norm ---- */

static void check_rms_norm(const lm_op_case *c, lm_test_rng *r) {
    const int64_t K = c->k, R = c->n * c->m;
    const float eps = 1e-5f;
    float *x = lm_test_randn(r, (size_t)(K * R), 2.0f), *w = lm_test_randn(r, (size_t)K, 1.0f);
    double *ref = malloc((size_t)(K * R) * sizeof *ref);
    for (int64_t j = 0; j < R; j++) {
        double ss = 0;
        for (int64_t i = 0; i < K; i++) ss += (double)x[j * K + i] * x[j * K + i];
        double s = 1.0 / sqrt(ss / K + eps);
        for (int64_t i = 0; i < K; i++) ref[j * K + i] = x[j * K + i] * s * (c->mode ? w[i] : 1.0);
    }
    float *out[2];
    for (int b = 0; b < 2; b++) {
        lm_test_dt tx = lm_test_dt_new(g_be[b], LM_TYPE_F32, K, c->n, c->m, 1, x);
        lm_test_dt tw = lm_test_dt_new(g_be[b], LM_TYPE_F32, K, 1, 1, 1, w);
        lm_test_dt td = lm_test_dt_new(g_be[b], LM_TYPE_F32, K, c->n, c->m, 1, NULL);
        expect_ok(g_be[b]->ops->rms_norm(g_be[b], &tx.t, c->mode ? &tw.t : NULL, eps, &td.t), c);
        out[b] = lm_test_dt_read(&td);
        lm_test_dt_free(&tx), lm_test_dt_free(&tw), lm_test_dt_free(&td);
    }
    expect_same_threads(c, out[0], out[1], (size_t)(K * R) * sizeof(float));
    expect_close(c, out[0], ref, (size_t)(K * R));
    free(x), free(w), free(ref), free(out[0]), free(out[1]);
}

/* ---- mul_mat: ref[n, m] = sum_k dequant(W)[k, n] x[k, m] in double ---- */

static void check_mul_mat(const lm_op_case *c, lm_test_rng *r) {
    const int64_t K = c->k, N = c->n, M = c->m;
    float *wf = lm_test_randn(r, (size_t)(K * N), 0.5f),
          *x = lm_test_randn(r, (size_t)(K * M), 1.0f);
    void *w = lm_test_encode(c->type, wf, K, N);
    double *wd = decode_d(c->type, w, K, N), *ref = malloc((size_t)(N * M) * sizeof *ref);
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) s += wd[n * K + k] * x[m * K + k];
            ref[m * N + n] = s;
        }
    float *out[2];
    for (int b = 0; b < 2; b++) {
        lm_test_dt tw = lm_test_dt_new(g_be[b], c->type, K, N, 1, 1, w);
        lm_test_dt tx = lm_test_dt_new(g_be[b], LM_TYPE_F32, K, M, 1, 1, x);
        lm_test_dt td = lm_test_dt_new(g_be[b], LM_TYPE_F32, N, M, 1, 1, NULL);
        expect_ok(g_be[b]->ops->mul_mat(g_be[b], &tw.t, &tx.t, &td.t), c);
        out[b] = lm_test_dt_read(&td);
        lm_test_dt_free(&tw), lm_test_dt_free(&tx), lm_test_dt_free(&td);
    }
    expect_same_threads(c, out[0], out[1], (size_t)(N * M) * sizeof(float));
    expect_close(c, out[0], ref, (size_t)(N * M));
    free(wf), free(x), free(w), free(wd), free(ref), free(out[0]), free(out[1]);
}

/* ---- rope ---- */

static void check_rope(const lm_op_case *c, lm_test_rng *r) {
    const int64_t D = c->k, H = c->n, T = c->m;
    const int half = c->n_rot / 2;
    float *x = lm_test_randn(r, (size_t)(D * H * T), 1.0f), ff[256];
    int32_t *pos = malloc((size_t)T * sizeof *pos);
    for (int64_t t = 0; t < T; t++) pos[t] = (int32_t)(lm_test_rng_u64(r) % (uint64_t)c->n_ctx);
    for (int i = 0; i < half; i++) ff[i] = 1.0f + 7.0f * lm_test_rng_uniform(r);
    lm_rope_params p = {(lm_rope_mode)c->mode, c->n_rot, c->freq_factors ? 500000.0f : 10000.0f,
                        c->freq_scale > 0 ? c->freq_scale : 1.0f, c->freq_factors ? ff : NULL};
    double *ref = malloc((size_t)(D * H * T) * sizeof *ref);
    for (int64_t i = 0; i < D * H * T; i++) ref[i] = x[i];
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++)
            for (int i = 0; i < half; i++) {
                double th = pos[t] * (double)p.freq_scale * pow(p.freq_base, -2.0 * i / c->n_rot);
                if (p.freq_factors) th /= ff[i];
                int64_t a = c->mode == LM_ROPE_NEOX ? i : 2 * i;
                int64_t bb = c->mode == LM_ROPE_NEOX ? i + half : 2 * i + 1;
                double *v = ref + (t * H + h) * D;
                double x0 = v[a], x1 = v[bb];
                v[a] = x0 * cos(th) - x1 * sin(th);
                v[bb] = x0 * sin(th) + x1 * cos(th);
            }
    float *out[2];
    for (int b = 0; b < 2; b++) {
        lm_test_dt tx = lm_test_dt_new(g_be[b], LM_TYPE_F32, D, H, T, 1, x);
        lm_test_dt tp = lm_test_dt_new(g_be[b], LM_TYPE_I32, T, 1, 1, 1, pos);
        expect_ok(g_be[b]->ops->rope(g_be[b], &tx.t, &tp.t, &p), c);
        out[b] = lm_test_dt_read(&tx);
        lm_test_dt_free(&tx), lm_test_dt_free(&tp);
    }
    expect_same_threads(c, out[0], out[1], (size_t)(D * H * T) * sizeof(float));
    expect_close(c, out[0], ref, (size_t)(D * H * T));
    free(x), free(pos), free(ref), free(out[0]), free(out[1]);
}

/* ---- kv_store: distinct random slots; every other cache element keeps its sentinel ---- */

static void check_kv_store(const lm_op_case *c, lm_test_rng *r) {
    const int64_t D = c->k, Hk = c->n_kv_head, T = c->m, C = c->n_ctx, S = c->n_seq;
    const int64_t per_slot = D * Hk, total = per_slot * C * S;
    float *k = lm_test_randn(r, (size_t)(per_slot * T), 1.0f),
          *v = lm_test_randn(r, (size_t)(per_slot * T), 1.0f);
    int64_t *slots = malloc((size_t)(C * S) * sizeof *slots);
    for (int64_t i = 0; i < C * S; i++) slots[i] = i;
    for (int64_t i = 0; i < T; i++) { /* partial Fisher-Yates: T distinct slots */
        int64_t j = i + (int64_t)(lm_test_rng_u64(r) % (uint64_t)(C * S - i)), tmp = slots[i];
        slots[i] = slots[j], slots[j] = tmp;
    }
    int32_t *pos = malloc((size_t)T * 4), *seq = malloc((size_t)T * 4);
    float *init = malloc((size_t)total * sizeof *init);
    double *rk = malloc((size_t)total * sizeof *rk), *rv = malloc((size_t)total * sizeof *rv);
    for (int64_t i = 0; i < total; i++) init[i] = 7.0f, rk[i] = rv[i] = 7.0;
    for (int64_t t = 0; t < T; t++) {
        pos[t] = (int32_t)(slots[t] % C), seq[t] = (int32_t)(slots[t] / C);
        for (int64_t e = 0; e < per_slot; e++) {
            rk[slots[t] * per_slot + e] = k[t * per_slot + e];
            rv[slots[t] * per_slot + e] = v[t * per_slot + e];
        }
    }
    void *cache0 = lm_test_encode(c->type, init, D, Hk * C * S);
    void *outk[2], *outv[2];
    for (int b = 0; b < 2; b++) {
        lm_test_dt tk = lm_test_dt_new(g_be[b], LM_TYPE_F32, D, Hk, T, 1, k);
        lm_test_dt tv = lm_test_dt_new(g_be[b], LM_TYPE_F32, D, Hk, T, 1, v);
        lm_test_dt ck = lm_test_dt_new(g_be[b], c->type, D, Hk, C, S, cache0);
        lm_test_dt cv = lm_test_dt_new(g_be[b], c->type, D, Hk, C, S, cache0);
        lm_test_dt tp = lm_test_dt_new(g_be[b], LM_TYPE_I32, T, 1, 1, 1, pos);
        lm_test_dt ts = lm_test_dt_new(g_be[b], LM_TYPE_I32, T, 1, 1, 1, seq);
        expect_ok(g_be[b]->ops->kv_store(g_be[b], &tk.t, &tv.t, &ck.t, &cv.t, &tp.t, &ts.t), c);
        outk[b] = lm_test_dt_read(&ck), outv[b] = lm_test_dt_read(&cv);
        lm_test_dt_free(&tk), lm_test_dt_free(&tv), lm_test_dt_free(&ck), lm_test_dt_free(&cv),
            lm_test_dt_free(&tp), lm_test_dt_free(&ts);
    }
    const size_t bytes = lm_row_size(c->type, D) * (size_t)(Hk * C * S);
    expect_same_threads(c, outk[0], outk[1], bytes);
    float *gk = malloc((size_t)total * sizeof *gk), *gv = malloc((size_t)total * sizeof *gv);
    for (int64_t i = 0; i < Hk * C * S; i++) {
        lm_dequantize_row(c->type, (char *)outk[0] + i * lm_row_size(c->type, D), gk + i * D, D);
        lm_dequantize_row(c->type, (char *)outv[0] + i * lm_row_size(c->type, D), gv + i * D, D);
    }
    expect_close(c, gk, rk, (size_t)total);
    expect_close(c, gv, rv, (size_t)total);
    free(k), free(v), free(slots), free(pos), free(seq), free(init), free(rk), free(rv);
    free(cache0), free(gk), free(gv);
    for (int b = 0; b < 2; b++) free(outk[b]), free(outv[b]);
}

/* ---- attention ----
 * Layout as the runtime will use it: q is a view into a fused QKV activation (token
 * stride (n_head + 2 n_kv_head) head_dim), the caches are views of layer 1 of a two-layer
 * buffer, and cache positions past each sequence's context hold NaN (never read). */

typedef struct {
    int64_t D, H, Hk, T, S, C; /* C: cache positions (n_ctx + 3) */
    int32_t *pos, *seq;
    float *qkv;      /* [D, H + 2 Hk, T] */
    void *cache[2];  /* k, v: two layers each, layer 1 is ours */
    double *kd, *vd; /* decoded layer-1 caches [D, Hk, C, S] */
    size_t layer_bytes;
} attn_in;

/* Positions past each sequence's context, in layer 1 at byte `layer`: all bytes 0xff,
 * which is NaN in every cache type (an F32/F16 NaN; a Q8_0 block with a NaN scale). */
static void nan_unused_rows(const lm_op_case *c, void *cache, size_t layer, int64_t D, int64_t Hk,
                            int64_t C, int64_t S) {
    const size_t rs = lm_row_size(c->type, D);
    for (int64_t s = 0; s < S; s++) {
        int64_t L = c->n_ctx - 7 * s > 1 ? c->n_ctx - 7 * s : 1;
        for (int64_t p = L; p < C; p++)
            memset((char *)cache + layer + (size_t)((s * C + p) * Hk) * rs, 0xff, (size_t)Hk * rs);
    }
}

static void attn_make(const lm_op_case *c, lm_test_rng *r, attn_in *a) {
    a->D = c->k, a->H = c->n, a->Hk = c->n_kv_head, a->T = c->m, a->S = c->n_seq;
    a->C = c->n_ctx + 3;
    a->pos = malloc((size_t)a->T * 4), a->seq = malloc((size_t)a->T * 4);
    for (int64_t s = 0; s < a->S; s++) { /* token i is in sequence i % S, the last of its L_s */
        int64_t L = c->n_ctx - 7 * s > 1 ? c->n_ctx - 7 * s : 1, cnt = 0;
        for (int64_t i = s; i < a->T; i += a->S) cnt++;
        cr_assert(cnt <= L, "%s: more tokens than context", desc(c));
        for (int64_t i = s, j = 0; i < a->T; i += a->S, j++) {
            a->seq[i] = (int32_t)s;
            a->pos[i] = (int32_t)(L - cnt + j);
        }
    }
    a->qkv = lm_test_randn(r, (size_t)(a->D * (a->H + 2 * a->Hk) * a->T), 1.0f);
    const int64_t rows = a->Hk * a->C * a->S, n = a->D * rows;
    a->layer_bytes = lm_row_size(c->type, a->D) * (size_t)rows;
    for (int kv = 0; kv < 2; kv++) {
        float *f = lm_test_randn(r, (size_t)(2 * n), 1.0f); /* layer 0 then layer 1 */
        a->cache[kv] = lm_test_encode(c->type, f, a->D, 2 * rows);
        nan_unused_rows(c, a->cache[kv], a->layer_bytes, a->D, a->Hk, a->C, a->S);
        double *d = decode_d(c->type, (char *)a->cache[kv] + a->layer_bytes, a->D, rows);
        if (kv == 0)
            a->kd = d;
        else
            a->vd = d;
        free(f);
    }
}

static void attn_free(attn_in *a) {
    free(a->pos), free(a->seq), free(a->qkv), free(a->cache[0]), free(a->cache[1]);
    free(a->kd), free(a->vd);
}

/* Full softmax in double over the positions the token may see. */
static double *attn_ref(const lm_op_case *c, const attn_in *a, float scale) {
    double *ref = malloc((size_t)(a->D * a->H * a->T) * sizeof *ref);
    double *sc = malloc((size_t)a->C * sizeof *sc);
    const int64_t qstride = a->D * (a->H + 2 * a->Hk);
    for (int64_t t = 0; t < a->T; t++)
        for (int64_t h = 0; h < a->H; h++) {
            const int64_t kvh = h / (a->H / a->Hk), p1 = a->pos[t];
            const int64_t p0 = c->window > 0 && p1 - c->window + 1 > 0 ? p1 - c->window + 1 : 0;
            const float *q = a->qkv + t * qstride + h * a->D;
            double mx = -INFINITY, sum = 0;
            for (int64_t p = p0; p <= p1; p++) {
                const double *k = a->kd + ((a->seq[t] * a->C + p) * a->Hk + kvh) * a->D;
                double s = 0;
                for (int64_t d = 0; d < a->D; d++) s += q[d] * k[d];
                s *= scale;
                if (c->softcap > 0) s = c->softcap * tanh(s / c->softcap);
                sc[p] = s;
                mx = s > mx ? s : mx;
            }
            for (int64_t p = p0; p <= p1; p++) sum += (sc[p] = exp(sc[p] - mx));
            double *o = ref + (t * a->H + h) * a->D;
            for (int64_t d = 0; d < a->D; d++) o[d] = 0;
            for (int64_t p = p0; p <= p1; p++) {
                const double *v = a->vd + ((a->seq[t] * a->C + p) * a->Hk + kvh) * a->D;
                for (int64_t d = 0; d < a->D; d++) o[d] += sc[p] / sum * v[d];
            }
        }
    free(sc);
    return ref;
}

static void check_attention(const lm_op_case *c, lm_test_rng *r) {
    attn_in a = {0};
    attn_make(c, r, &a);
    const float scale = 1.0f / sqrtf((float)a.D);
    lm_attn_params p = {scale, c->window, c->softcap};
    double *ref = attn_ref(c, &a, scale);
    const size_t n_out = (size_t)(a.D * a.H * a.T);
    float *out[2];
    for (int b = 0; b < 2; b++) {
        lm_backend *be = g_be[b];
        lm_test_dt q = lm_test_dt_buffer(be, (size_t)(a.D * (a.H + 2 * a.Hk) * a.T) * 4, a.qkv);
        lm_tensor_init(&q.t, q.buf, 0, LM_TYPE_F32, a.D, a.H, a.T, 1);
        q.t.nb[2] = (size_t)(a.D * (a.H + 2 * a.Hk)) * 4;
        lm_test_dt kc = lm_test_dt_buffer(be, 2 * a.layer_bytes, a.cache[0]);
        lm_test_dt vc = lm_test_dt_buffer(be, 2 * a.layer_bytes, a.cache[1]);
        lm_tensor_init(&kc.t, kc.buf, a.layer_bytes, c->type, a.D, a.Hk, a.C, a.S);
        lm_tensor_init(&vc.t, vc.buf, a.layer_bytes, c->type, a.D, a.Hk, a.C, a.S);
        lm_test_dt tp = lm_test_dt_new(be, LM_TYPE_I32, a.T, 1, 1, 1, a.pos);
        lm_test_dt ts = lm_test_dt_new(be, LM_TYPE_I32, a.T, 1, 1, 1, a.seq);
        lm_test_dt td = lm_test_dt_new(be, LM_TYPE_F32, a.D, a.H, a.T, 1, NULL);
        expect_ok(be->ops->attention(be, &q.t, &kc.t, &vc.t, &tp.t, &ts.t, &p, &td.t), c);
        out[b] = lm_test_dt_read(&td);
        lm_test_dt_free(&q), lm_test_dt_free(&kc), lm_test_dt_free(&vc), lm_test_dt_free(&tp),
            lm_test_dt_free(&ts), lm_test_dt_free(&td);
    }
    expect_same_threads(c, out[0], out[1], n_out * sizeof(float));
    expect_close(c, out[0], ref, n_out);
    attn_free(&a);
    free(ref), free(out[0]), free(out[1]);
}

/* ---- element-wise: swiglu, geglu, add, mul, scale ---- */

static double ref_silu(double g) {
    return g / (1.0 + exp(-g));
}
static double ref_gelu(double g) {
    return 0.5 * g * (1.0 + tanh(sqrt(2.0 / M_PI) * (g + 0.044715 * g * g * g)));
}

static void check_elementwise(const lm_op_case *c, lm_test_rng *r) {
    const int64_t ne[3] = {c->k, c->n, c->m}, n = c->k * c->n * c->m;
    int64_t bne[3];
    for (int i = 0; i < 3; i++) bne[i] = (c->mode >> i) & 1 ? 1 : ne[i];
    const int64_t nb = bne[0] * bne[1] * bne[2];
    const float s = 0.37f;
    float *a = lm_test_randn(r, (size_t)n, 3.0f), *bb = lm_test_randn(r, (size_t)nb, 1.0f);
    double *ref = malloc((size_t)n * sizeof *ref);
    for (int64_t i2 = 0; i2 < ne[2]; i2++)
        for (int64_t i1 = 0; i1 < ne[1]; i1++)
            for (int64_t i0 = 0; i0 < ne[0]; i0++) {
                const int64_t i = (i2 * ne[1] + i1) * ne[0] + i0;
                const int64_t j =
                    ((bne[2] == 1 ? 0 : i2) * bne[1] + (bne[1] == 1 ? 0 : i1)) * bne[0] +
                    (bne[0] == 1 ? 0 : i0);
                const double x = a[i], y = bb[j];
                switch (c->op) {
                case LM_OP_SWIGLU:
                    ref[i] = ref_silu(x) * y;
                    break;
                case LM_OP_GEGLU:
                    ref[i] = ref_gelu(x) * y;
                    break;
                case LM_OP_ADD:
                    ref[i] = x + y;
                    break;
                case LM_OP_MUL:
                    ref[i] = x * y;
                    break;
                default:
                    ref[i] = x * s;
                    break;
                }
            }
    float *out[2];
    for (int b = 0; b < 2; b++) {
        lm_backend *be = g_be[b];
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
            st = be->ops->scale(be, &ta.t, s, &td.t);
            break;
        }
        expect_ok(st, c);
        out[b] = lm_test_dt_read(&td);
        lm_test_dt_free(&ta), lm_test_dt_free(&tb), lm_test_dt_free(&td);
    }
    expect_same_threads(c, out[0], out[1], (size_t)n * sizeof(float));
    expect_close(c, out[0], ref, (size_t)n);
    free(a), free(bb), free(ref), free(out[0]), free(out[1]);
}

/* ---- argmax: odd columns get a tie for the max; the first index must win ---- */

static void check_argmax(const lm_op_case *c, lm_test_rng *r) {
    const int64_t K = c->k, M = c->m;
    float *x = lm_test_randn(r, (size_t)(K * M), 1.0f);
    int32_t *ref = malloc((size_t)M * 4);
    for (int64_t m = 0; m < M; m++) {
        float *col = x + m * K;
        if (m % 2 && K >= 2) {
            int64_t i = (int64_t)(lm_test_rng_u64(r) % (uint64_t)(K - 1));
            int64_t j = i + 1 + (int64_t)(lm_test_rng_u64(r) % (uint64_t)(K - 1 - i));
            col[i] = col[j] = 10.0f;
        }
        ref[m] = 0;
        for (int64_t i = 1; i < K; i++)
            if (col[i] > col[ref[m]]) ref[m] = (int32_t)i;
    }
    int32_t *out[2];
    for (int b = 0; b < 2; b++) {
        lm_test_dt tx = lm_test_dt_new(g_be[b], LM_TYPE_F32, K, M, 1, 1, x);
        lm_test_dt td = lm_test_dt_new(g_be[b], LM_TYPE_I32, M, 1, 1, 1, NULL);
        expect_ok(g_be[b]->ops->argmax(g_be[b], &tx.t, &td.t), c);
        out[b] = lm_test_dt_read(&td);
        lm_test_dt_free(&tx), lm_test_dt_free(&td);
    }
    expect_same_threads(c, out[0], out[1], (size_t)M * 4);
    for (int64_t m = 0; m < M; m++)
        cr_expect_eq(out[0][m], ref[m], "%s: column %lld: got %d, expected %d", desc(c),
                     (long long)m, out[0][m], ref[m]);
    free(x), free(ref), free(out[0]), free(out[1]);
}

/* ---- copy: ref is the decoded source; dst decoded and compared ---- */

static void check_copy(const lm_op_case *c, lm_test_rng *r) {
    const int64_t K = c->k, R = c->n * c->m;
    float *x = lm_test_randn(r, (size_t)(K * R), 1.0f);
    void *src = lm_test_encode(c->src_type, x, K, R);
    double *ref = decode_d(c->src_type, src, K, R);
    void *out[2];
    for (int b = 0; b < 2; b++) {
        lm_test_dt ts = lm_test_dt_new(g_be[b], c->src_type, K, c->n, c->m, 1, src);
        lm_test_dt td = lm_test_dt_new(g_be[b], c->type, K, c->n, c->m, 1, NULL);
        expect_ok(g_be[b]->ops->copy(g_be[b], &ts.t, &td.t), c);
        out[b] = lm_test_dt_read(&td);
        lm_test_dt_free(&ts), lm_test_dt_free(&td);
    }
    expect_same_threads(c, out[0], out[1], lm_row_size(c->type, K) * (size_t)R);
    double *gd = decode_d(c->type, out[0], K, R);
    float *got = malloc((size_t)(K * R) * sizeof *got);
    for (int64_t i = 0; i < K * R; i++) got[i] = (float)gd[i];
    expect_close(c, got, ref, (size_t)(K * R));
    free(x), free(src), free(ref), free(gd), free(got), free(out[0]), free(out[1]);
}

/* ---- the table ---- */

/* Both tables: the edge-case shapes and the bench shapes `lumen bench --ops` times. */
static void run_cases(lm_op_kind op) {
    lm_test_rng r = {lm_test_seed()};
    int n = 0;
    for (int i = 0; i < lm_op_n_cases + lm_op_n_bench_cases; i++) {
        const lm_op_case *c =
            i < lm_op_n_cases ? &lm_op_cases[i] : &lm_op_bench_cases[i - lm_op_n_cases];
        if (c->op != op) continue;
        n++;
        switch (op) {
        case LM_OP_GET_ROWS:
            check_get_rows(c, &r);
            break;
        case LM_OP_RMS_NORM:
            check_rms_norm(c, &r);
            break;
        case LM_OP_MUL_MAT:
            check_mul_mat(c, &r);
            break;
        case LM_OP_ROPE:
            check_rope(c, &r);
            break;
        case LM_OP_KV_STORE:
            check_kv_store(c, &r);
            break;
        case LM_OP_ATTENTION:
            check_attention(c, &r);
            break;
        case LM_OP_ARGMAX:
            check_argmax(c, &r);
            break;
        case LM_OP_COPY:
            check_copy(c, &r);
            break;
        default:
            check_elementwise(c, &r);
            break;
        }
    }
    cr_expect_gt(n, 0, "no cases for %s in the op table", lm_op_name(op));
}

Test(ops, get_rows) {
    run_cases(LM_OP_GET_ROWS);
}
Test(ops, rms_norm) {
    run_cases(LM_OP_RMS_NORM);
}
Test(ops, mul_mat) {
    run_cases(LM_OP_MUL_MAT);
}
Test(ops, rope) {
    run_cases(LM_OP_ROPE);
}
Test(ops, kv_store) {
    run_cases(LM_OP_KV_STORE);
}
Test(ops, attention) {
    run_cases(LM_OP_ATTENTION);
}
/* K and V caches of different types (F16, F32, Q8_0 in any pair) give the bits of two F32
 * caches holding the same values: each row is read or converted exactly by its own type. */
Test(ops, attention_mixed_cache_types) {
    lm_test_rng r = {lm_test_seed()};
    enum { D = 64, HK = 2, H = 4, C = 9 };
    const size_t n = (size_t)D * HK * C;
    static float kf[D * HK * C], vf[D * HK * C], q[D * H];
    static uint16_t kh[D * HK * C], vh[D * HK * C];
    static lm_block_q8_0 k8[D * HK * C / 32], v8[D * HK * C / 32];
    lm_test_fill_normal(&r, q, D * H, 1.0f);
    /* values every type holds exactly: Q8_0 blocks with d = 1/64, so q / 64 (7 bits) */
    for (size_t b = 0; b < n / 32; b++) {
        k8[b].d = v8[b].d = lm_fp32_to_fp16(1.0f / 64);
        for (int i = 0; i < 32; i++) {
            k8[b].qs[i] = (int8_t)(lm_test_rng_u64(&r) % 255 - 127);
            v8[b].qs[i] = (int8_t)(lm_test_rng_u64(&r) % 255 - 127);
        }
    }
    lm_dequantize_row(LM_TYPE_Q8_0, k8, kf, (int64_t)n);
    lm_dequantize_row(LM_TYPE_Q8_0, v8, vf, (int64_t)n);
    for (size_t i = 0; i < n; i++) {
        kh[i] = lm_fp32_to_fp16(kf[i]), vh[i] = lm_fp32_to_fp16(vf[i]);
        cr_assert(lm_fp16_to_fp32(kh[i]) == kf[i] && lm_fp16_to_fp32(vh[i]) == vf[i]);
    }
    const lm_type ty[3] = {LM_TYPE_F32, LM_TYPE_F16, LM_TYPE_Q8_0};
    const void *kd[3] = {kf, kh, k8}, *vd[3] = {vf, vh, v8};
    lm_backend *be = g_be[1];
    int32_t pos = C - 1, seq = 0;
    lm_attn_params p = {0.125f, 0, 0};
    lm_test_dt tq = lm_test_dt_new(be, LM_TYPE_F32, D, H, 1, 1, q);
    lm_test_dt tp = lm_test_dt_new(be, LM_TYPE_I32, 1, 1, 1, 1, &pos);
    lm_test_dt ts = lm_test_dt_new(be, LM_TYPE_I32, 1, 1, 1, 1, &seq);
    float *ref = NULL;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            lm_test_dt kc = lm_test_dt_new(be, ty[a], D, HK, C, 1, kd[a]);
            lm_test_dt vc = lm_test_dt_new(be, ty[b], D, HK, C, 1, vd[b]);
            lm_test_dt td = lm_test_dt_new(be, LM_TYPE_F32, D, H, 1, 1, NULL);
            cr_assert_eq(be->ops->attention(be, &tq.t, &kc.t, &vc.t, &tp.t, &ts.t, &p, &td.t),
                         LM_OK, "%s", lm_last_error());
            float *out = lm_test_dt_read(&td);
            if (!ref)
                ref = out; /* F32 and F32 */
            else {
                cr_assert(memcmp(out, ref, sizeof(float) * D * H) == 0,
                          "K %s, V %s differ from two F32 caches", lm_type_get(ty[a]).name,
                          lm_type_get(ty[b]).name);
                free(out);
            }
            lm_test_dt_free(&kc), lm_test_dt_free(&vc), lm_test_dt_free(&td);
        }
    free(ref);
    lm_test_dt_free(&tq), lm_test_dt_free(&tp), lm_test_dt_free(&ts);
}

/* A token's attention is the same bits whether it runs alone (decode: its position
 * chunks on the threads, then merged) or in a batch of tokens (each token's chunks in
 * order), on 1 and 3 threads: F16, F32 and Q8_0 caches (head sizes 64, 40, 96), contexts
 * across several chunks, with and without a window that starts inside one, in caches whose
 * rows past the context, and below the window, are NaN (never read). */
static void *attn_cache_rows(lm_type t, const float *f, int64_t D, int64_t rows, int64_t nan_lo,
                             int64_t nan_hi, int64_t per_pos) {
    void *c = lm_test_encode(t, f, D, rows);
    const size_t rs = lm_row_size(t, D);
    if (nan_hi > nan_lo)
        memset((char *)c + (size_t)(nan_lo * per_pos) * rs, 0xff,
               (size_t)((nan_hi - nan_lo) * per_pos) * rs);
    return c;
}

Test(ops, attention_decode_equals_batch) {
    lm_test_rng r = {lm_test_seed()};
    enum { HK = 2, H = 6, C = 1100, T = 37 };
    const lm_type types[3] = {LM_TYPE_F16, LM_TYPE_F32, LM_TYPE_Q8_0};
    const int64_t dims[3] = {64, 40, 96};
    const int32_t p_last = C - 60, windows[2] = {0, 300};
    int32_t pos[T], seq[T] = {0};
    for (int t = 0; t < T; t++) pos[t] = p_last - T + 1 + t;
    for (int ty = 0; ty < 3; ty++) {
        const int64_t D = dims[ty];
        const size_t n = (size_t)D * HK * C;
        float *kf = lm_test_randn(&r, n, 1.0f), *vf = lm_test_randn(&r, n, 1.0f);
        float *q = lm_test_randn(&r, (size_t)D * H * T, 1.0f);
        for (int wi = 0; wi < 2; wi++) {
            /* NaN: past the context, and below the first token's window */
            const int64_t below = windows[wi] ? pos[0] - windows[wi] + 1 : 0;
            void *kc0 = attn_cache_rows(types[ty], kf, D, HK * C, p_last + 1, C, HK);
            void *vc0 = attn_cache_rows(types[ty], vf, D, HK * C, p_last + 1, C, HK);
            const size_t rs = lm_row_size(types[ty], D);
            memset(kc0, 0xff, (size_t)(below * HK) * rs),
                memset(vc0, 0xff, (size_t)(below * HK) * rs);
            lm_attn_params p = {0.125f, windows[wi], 0};
            float *batch = NULL;
            for (int b = 0; b < 2; b++) {
                lm_backend *be = g_be[b];
                lm_test_dt kc = lm_test_dt_new(be, types[ty], D, HK, C, 1, kc0);
                lm_test_dt vc = lm_test_dt_new(be, types[ty], D, HK, C, 1, vc0);
                lm_test_dt tq = lm_test_dt_new(be, LM_TYPE_F32, D, H, T, 1, q);
                lm_test_dt tp = lm_test_dt_new(be, LM_TYPE_I32, T, 1, 1, 1, pos);
                lm_test_dt ts = lm_test_dt_new(be, LM_TYPE_I32, T, 1, 1, 1, seq);
                lm_test_dt td = lm_test_dt_new(be, LM_TYPE_F32, D, H, T, 1, NULL);
                cr_assert_eq(be->ops->attention(be, &tq.t, &kc.t, &vc.t, &tp.t, &ts.t, &p, &td.t),
                             LM_OK, "%s", lm_last_error());
                float *all = lm_test_dt_read(&td);
                for (size_t i = 0; i < (size_t)D * H * T; i++)
                    cr_assert(isfinite(all[i]), "%s, window %d: a NaN row was read",
                              lm_type_get(types[ty]).name, windows[wi]);
                if (!batch)
                    batch = all;
                else {
                    cr_assert(memcmp(all, batch, sizeof(float) * (size_t)(D * H * T)) == 0,
                              "%s, window %d: the batch differs on 1 and 3 threads",
                              lm_type_get(types[ty]).name, windows[wi]);
                    free(all);
                }
                for (int t = 0; t < T; t += 6) { /* tokens alone */
                    lm_test_dt q1 = lm_test_dt_new(be, LM_TYPE_F32, D, H, 1, 1,
                                                   q + (size_t)t * (size_t)(D * H));
                    lm_test_dt p1 = lm_test_dt_new(be, LM_TYPE_I32, 1, 1, 1, 1, &pos[t]);
                    lm_test_dt s1 = lm_test_dt_new(be, LM_TYPE_I32, 1, 1, 1, 1, &seq[t]);
                    lm_test_dt o1 = lm_test_dt_new(be, LM_TYPE_F32, D, H, 1, 1, NULL);
                    cr_assert_eq(
                        be->ops->attention(be, &q1.t, &kc.t, &vc.t, &p1.t, &s1.t, &p, &o1.t), LM_OK,
                        "%s", lm_last_error());
                    float *one = lm_test_dt_read(&o1);
                    cr_assert(memcmp(one, batch + (size_t)t * (size_t)(D * H),
                                     sizeof(float) * (size_t)(D * H)) == 0,
                              "%s, window %d, %d threads: token %d (position %d) alone differs "
                              "from the batch",
                              lm_type_get(types[ty]).name, windows[wi], b ? 3 : 1, t, pos[t]);
                    free(one);
                    lm_test_dt_free(&q1), lm_test_dt_free(&p1), lm_test_dt_free(&s1),
                        lm_test_dt_free(&o1);
                }
                lm_test_dt_free(&kc), lm_test_dt_free(&vc), lm_test_dt_free(&tq),
                    lm_test_dt_free(&tp), lm_test_dt_free(&ts), lm_test_dt_free(&td);
            }
            free(batch), free(kc0), free(vc0);
        }
        free(kf), free(vf), free(q);
    }
}

Test(ops, swiglu) {
    run_cases(LM_OP_SWIGLU);
}
Test(ops, geglu) {
    run_cases(LM_OP_GEGLU);
}
Test(ops, add) {
    run_cases(LM_OP_ADD);
}
Test(ops, mul) {
    run_cases(LM_OP_MUL);
}
Test(ops, scale) {
    run_cases(LM_OP_SCALE);
}
Test(ops, argmax) {
    run_cases(LM_OP_ARGMAX);
}
Test(ops, copy) {
    run_cases(LM_OP_COPY);
}

/* ---- errors: wrong shapes and values give LM_ERR_INVALID_ARG and a message that names
 * the op and the fault; nothing crashes ---- */

static void expect_err(lm_status s, const char *want1, const char *want2) {
    cr_expect_eq(s, LM_ERR_INVALID_ARG, "expected LM_ERR_INVALID_ARG, got %d (%s)", (int)s,
                 lm_last_error());
    cr_expect(strstr(lm_last_error(), want1) != NULL, "message '%s' lacks '%s'", lm_last_error(),
              want1);
    if (want2)
        cr_expect(strstr(lm_last_error(), want2) != NULL, "message '%s' lacks '%s'",
                  lm_last_error(), want2);
}

Test(ops, errors_bad_shapes) {
    lm_backend *be = g_be[1];
    const lm_backend_ops *o = be->ops;
    lm_test_dt w = lm_test_dt_new(be, LM_TYPE_Q8_0, 64, 8, 1, 1, NULL);
    lm_test_dt x = lm_test_dt_new(be, LM_TYPE_F32, 96, 2, 1, 1, NULL);
    lm_test_dt x64 = lm_test_dt_new(be, LM_TYPE_F32, 64, 2, 1, 1, NULL);
    lm_test_dt d = lm_test_dt_new(be, LM_TYPE_F32, 8, 2, 1, 1, NULL);
    lm_test_dt d3 = lm_test_dt_new(be, LM_TYPE_F32, 8, 3, 1, 1, NULL);
    lm_test_dt h16 = lm_test_dt_new(be, LM_TYPE_F16, 64, 2, 1, 1, NULL);
    expect_err(o->mul_mat(be, &w.t, &x.t, &d.t), "mul_mat", "K");
    expect_err(o->mul_mat(be, &w.t, &x64.t, &d3.t), "mul_mat", "dst");
    expect_err(o->mul_mat(be, &w.t, &h16.t, &d.t), "mul_mat", "type");
    expect_err(o->mul_mat(be, NULL, &x64.t, &d.t), "mul_mat", "NULL");
    lm_tensor big = w.t;
    big.ne[1] = 9; /* one row past the buffer */
    expect_err(o->mul_mat(be, &big, &x64.t, &d.t), "mul_mat", "exceeds");
    lm_tensor odd = w.t;
    odd.ne[0] = 48;
    expect_err(o->mul_mat(be, &odd, &x64.t, &d.t), "block size", NULL);

    int32_t bad_id = 8;
    lm_test_dt ids = lm_test_dt_new(be, LM_TYPE_I32, 1, 1, 1, 1, &bad_id);
    lm_test_dt row = lm_test_dt_new(be, LM_TYPE_F32, 64, 1, 1, 1, NULL);
    expect_err(o->get_rows(be, &w.t, &ids.t, &row.t), "get_rows", "ids[0] = 8");

    /* add: b [8, 3] cannot broadcast to a [8, 2] */
    expect_err(o->add(be, &d.t, &d3.t, &d.t), "add", "broadcast");
    expect_err(o->swiglu(be, &d.t, &d3.t, &d.t), "swiglu", "shape");
    expect_err(o->scale(be, &d.t, 2.0f, &d3.t), "scale", "shape");
    expect_err(o->argmax(be, &d.t, &d.t), "argmax", "type");
    expect_err(o->copy(be, &d.t, &d3.t), "copy", "shape");

    lm_test_dt xr =
        lm_test_dt_new(be, LM_TYPE_F32, 16, 2, 1, 1, NULL); /* [head_dim 16, 2 heads, 1 token] */
    int32_t p0 = 0;
    lm_test_dt pos = lm_test_dt_new(be, LM_TYPE_I32, 1, 1, 1, 1, &p0);
    xr.t.ne[1] = 2, xr.t.ne[2] = 1;
    lm_rope_params rp = {LM_ROPE_NORMAL, 15, 10000.0f, 1.0f, NULL};
    expect_err(o->rope(be, &xr.t, &pos.t, &rp), "rope", "n_rot");
    rp.n_rot = 32;
    expect_err(o->rope(be, &xr.t, &pos.t, &rp), "rope", "n_rot");

    lm_test_dt k = lm_test_dt_new(be, LM_TYPE_F32, 16, 2, 1, 1, NULL);
    lm_test_dt kc = lm_test_dt_new(be, LM_TYPE_F16, 16, 2, 4, 2, NULL);
    lm_test_dt vc = lm_test_dt_new(be, LM_TYPE_F16, 16, 2, 4, 2, NULL);
    int32_t p4 = 4, s2 = 2, s0 = 0;
    lm_test_dt pos4 = lm_test_dt_new(be, LM_TYPE_I32, 1, 1, 1, 1, &p4);
    lm_test_dt seq2 = lm_test_dt_new(be, LM_TYPE_I32, 1, 1, 1, 1, &s2);
    lm_test_dt seq0 = lm_test_dt_new(be, LM_TYPE_I32, 1, 1, 1, 1, &s0);
    k.t.ne[1] = 2, k.t.ne[2] = 1;
    expect_err(o->kv_store(be, &k.t, &k.t, &kc.t, &vc.t, &pos4.t, &seq0.t), "kv_store", "n_ctx");
    expect_err(o->kv_store(be, &k.t, &k.t, &kc.t, &vc.t, &pos.t, &seq2.t), "kv_store", "n_seq");

    lm_attn_params ap = {0.25f, 0, 0};
    lm_test_dt q3 =
        lm_test_dt_new(be, LM_TYPE_F32, 16, 3, 1, 1, NULL); /* 3 heads over 2 kv heads */
    lm_test_dt o3 = lm_test_dt_new(be, LM_TYPE_F32, 16, 3, 1, 1, NULL);
    expect_err(o->attention(be, &q3.t, &kc.t, &vc.t, &pos.t, &seq0.t, &ap, &o3.t), "attention",
               "n_kv_head");
    lm_test_dt q2 = lm_test_dt_new(be, LM_TYPE_F32, 16, 2, 1, 1, NULL);
    lm_test_dt o2 = lm_test_dt_new(be, LM_TYPE_F32, 16, 2, 1, 1, NULL);
    expect_err(o->attention(be, &q2.t, &kc.t, &vc.t, &pos4.t, &seq0.t, &ap, &o2.t), "attention",
               "pos[0] = 4");
    expect_err(o->attention(be, &q2.t, &kc.t, &vc.t, &pos.t, &seq2.t, &ap, &o2.t), "attention",
               "seq[0] = 2");
    cr_expect_eq(o->attention(be, &q2.t, &kc.t, &vc.t, &pos.t, &seq0.t, &ap, &o2.t), LM_OK, "%s",
                 lm_last_error());

    lm_test_dt *all[] = {&w, &x,  &x64, &d,    &d3,   &h16,  &ids, &row, &xr, &pos,
                         &k, &kc, &vc,  &pos4, &seq2, &seq0, &q3,  &o3,  &q2, &o2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) lm_test_dt_free(all[i]);
}

Test(ops, buffers_and_registry) {
    lm_backend *be = g_be[0];
    lm_buffer *buf;
    char data[16] = {0};
    cr_assert_eq(be->ops->buffer_alloc(be, 16, &buf), LM_OK);
    cr_expect_eq((uintptr_t)lm_cpu_buffer_ptr(buf) % 64, 0, "buffers are 64-byte aligned");
    expect_err(be->ops->upload(be, buf, 8, data, 9), "upload", "exceeds");
    expect_err(be->ops->download(be, buf, 17, data, 0), "download", "exceeds");
    be->ops->buffer_free(be, buf);
    lm_buffer *wrapped;
    cr_assert_eq(be->ops->buffer_wrap_host(be, data, sizeof data, &wrapped), LM_OK);
    cr_expect_eq(lm_cpu_buffer_ptr(wrapped), (void *)data);
    expect_err(be->ops->upload(be, wrapped, 0, data, 4), "read-only", NULL);
    be->ops->buffer_free(be, wrapped);
    cr_expect_gt(strlen(be->ops->device_name(be)), 0);
    cr_expect_gt(be->ops->device_memory(be), 0);

    const char *const *names = lm_backend_names();
    int has_cpu = 0;
    for (int i = 0; names[i]; i++) has_cpu |= strcmp(names[i], "cpu") == 0;
    cr_expect(has_cpu);
    lm_backend *none = (lm_backend *)1;
    cr_expect_eq(lm_backend_create("nope", NULL, &none), LM_ERR_UNSUPPORTED);
    cr_expect_null(none);
    cr_expect(strstr(lm_last_error(), "nope") && strstr(lm_last_error(), "cpu"), "%s",
              lm_last_error());
    lm_backend_destroy(NULL);
}

/* The pool survives many back-to-back jobs with tiny and uneven task counts. */
Test(ops, pool_many_small_jobs) {
    lm_backend *be = g_be[1];
    float v[5] = {1, 2, 3, 4, 5};
    lm_test_dt a = lm_test_dt_new(be, LM_TYPE_F32, 1, 5, 1, 1, v);
    for (int i = 0; i < 2000; i++) cr_assert_eq(be->ops->scale(be, &a.t, 1.0f, &a.t), LM_OK);
    float *out = lm_test_dt_read(&a);
    cr_expect(memcmp(out, v, sizeof v) == 0);
    free(out);
    lm_test_dt_free(&a);
}
