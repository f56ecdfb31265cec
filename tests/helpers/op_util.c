#include "op_util.h"

#include "quant.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lm_test_dt lm_test_dt_buffer(lm_backend *be, size_t size, const void *data) {
    lm_test_dt d = {be, NULL, size, {0}};
    cr_assert_eq(be->ops->buffer_alloc(be, size, &d.buf), LM_OK, "%s", lm_last_error());
    void *z = NULL;
    if (!data) data = z = calloc(1, size ? size : 1);
    cr_assert_eq(be->ops->upload(be, d.buf, 0, data, size), LM_OK, "%s", lm_last_error());
    free(z);
    return d;
}

lm_test_dt lm_test_dt_new(lm_backend *be, lm_type type, int64_t ne0, int64_t ne1, int64_t ne2,
                          int64_t ne3, const void *data) {
    lm_tensor t;
    lm_tensor_init(&t, NULL, 0, type, ne0, ne1, ne2, ne3);
    lm_test_dt d = lm_test_dt_buffer(be, lm_tensor_nbytes(&t), data);
    d.t = t;
    d.t.buf = d.buf;
    return d;
}

void *lm_test_dt_read(const lm_test_dt *d) {
    void *out = malloc(d->size ? d->size : 1);
    cr_assert_eq(d->be->ops->download(d->be, d->buf, 0, out, d->size), LM_OK, "%s",
                 lm_last_error());
    return out;
}

void lm_test_dt_free(lm_test_dt *d) {
    d->be->ops->buffer_free(d->be, d->buf);
}

float *lm_test_randn(lm_test_rng *r, size_t n, float scale) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    lm_test_fill_normal(r, x, n, scale);
    return x;
}

void *lm_test_encode(lm_type type, const float *x, int64_t n, int64_t rows) {
    size_t rs = lm_row_size(type, n);
    char *out = malloc(rs * (size_t)rows + 1);
    for (int64_t i = 0; i < rows; i++)
        if (lm_quantize_row(type, x + i * n, out + i * rs, n) != rs) {
            free(out);
            return NULL;
        }
    return out;
}

const char *lm_test_case_desc(const lm_op_case *c, const char *variant) {
    static char desc[320];
    char b[256];
    snprintf(desc, sizeof desc, "%s [%s]", lm_op_case_str(c, b, sizeof b), variant);
    return desc;
}

void lm_test_compare(const char *what, const float *cpu, const float *gpu, size_t n, double atol,
                     double rtol) {
    size_t bad = 0, worst = 0;
    double max_abs = 0, max_rel = 0, worst_excess = -1;
    for (size_t i = 0; i < n; i++) {
        if (isnan(cpu[i]) && isnan(gpu[i])) continue;
        double err = fabs((double)gpu[i] - (double)cpu[i]);
        if (isnan(err)) err = INFINITY;
        double excess = err - (atol + rtol * fabs((double)cpu[i]));
        if (excess > 0) bad++;
        if (excess > worst_excess) worst_excess = excess, worst = i;
        if (err > max_abs) max_abs = err;
        if (cpu[i] != 0 && err / fabs((double)cpu[i]) > max_rel) max_rel = err / fabs(cpu[i]);
    }
    if (getenv("LUMEN_TEST_VERBOSE"))
        fprintf(stderr, "  %-70s max |diff| %.3g, max rel %.3g (atol %g rtol %g)\n", what, max_abs,
                max_rel, atol, rtol);
    cr_expect_eq(bad, 0,
                 "%s: %zu of %zu elements differ from the CPU beyond atol %g rtol %g; worst [%zu] "
                 "gpu %.9g cpu %.9g",
                 what, bad, n, atol, rtol, worst, gpu[worst], cpu[worst]);
}

void lm_test_expect_ok(lm_status s, const char *what) {
    cr_assert_eq(s, LM_OK, "%s: %s", what, lm_last_error());
}

void lm_test_check_kv_store(lm_backend *cpu, lm_backend *dev, const lm_op_case *c, lm_test_rng *r) {
    const int64_t D = c->k, Hk = c->n_kv_head, T = c->m, C = c->n_ctx, S = c->n_seq;
    const int64_t per_slot = D * Hk, total = per_slot * C * S;
    float *k = lm_test_randn(r, (size_t)(per_slot * T), 1.0f),
          *v = lm_test_randn(r, (size_t)(per_slot * T), 1.0f);
    int64_t *slots = malloc((size_t)(C * S) * sizeof *slots);
    for (int64_t i = 0; i < C * S; i++) slots[i] = i;
    for (int64_t i = 0; i < T; i++) {
        int64_t j = i + (int64_t)(lm_test_rng_u64(r) % (uint64_t)(C * S - i)), tmp = slots[i];
        slots[i] = slots[j], slots[j] = tmp;
    }
    int32_t *pos = malloc((size_t)T * 4), *seq = malloc((size_t)T * 4);
    for (int64_t t = 0; t < T; t++)
        pos[t] = (int32_t)(slots[t] % C), seq[t] = (int32_t)(slots[t] / C);
    float *init = malloc((size_t)total * sizeof *init);
    for (int64_t i = 0; i < total; i++) init[i] = 7.0f;
    void *cache0 = lm_test_encode(c->type, init, D, Hk * C * S);
    const size_t bytes = lm_row_size(c->type, D) * (size_t)(Hk * C * S);
    void *outk[2], *outv[2];
    lm_backend *bes[2] = {cpu, dev};
    for (int b = 0; b < 2; b++) {
        lm_test_dt tk = lm_test_dt_new(bes[b], LM_TYPE_F32, D, Hk, T, 1, k);
        lm_test_dt tv = lm_test_dt_new(bes[b], LM_TYPE_F32, D, Hk, T, 1, v);
        lm_test_dt ck = lm_test_dt_new(bes[b], c->type, D, Hk, C, S, cache0);
        lm_test_dt cv = lm_test_dt_new(bes[b], c->type, D, Hk, C, S, cache0);
        lm_test_dt tp = lm_test_dt_new(bes[b], LM_TYPE_I32, T, 1, 1, 1, pos);
        lm_test_dt ts = lm_test_dt_new(bes[b], LM_TYPE_I32, T, 1, 1, 1, seq);
        lm_test_expect_ok(bes[b]->ops->kv_store(bes[b], &tk.t, &tv.t, &ck.t, &cv.t, &tp.t, &ts.t),
                          lm_test_case_desc(c, "kv_store"));
        outk[b] = lm_test_dt_read(&ck), outv[b] = lm_test_dt_read(&cv);
        lm_test_dt_free(&tk), lm_test_dt_free(&tv), lm_test_dt_free(&ck), lm_test_dt_free(&cv),
            lm_test_dt_free(&tp), lm_test_dt_free(&ts);
    }
    cr_expect(memcmp(outk[0], outk[1], bytes) == 0, "%s: K cache bytes differ from the CPU's",
              lm_test_case_desc(c, "byte-equal"));
    cr_expect(memcmp(outv[0], outv[1], bytes) == 0, "%s: V cache bytes differ from the CPU's",
              lm_test_case_desc(c, "byte-equal"));
    free(k), free(v), free(slots), free(pos), free(seq), free(init), free(cache0);
    for (int b = 0; b < 2; b++) free(outk[b]), free(outv[b]);
}

void lm_test_check_copy(lm_backend *cpu, lm_backend *dev, const lm_op_case *c, lm_test_rng *r) {
    const int64_t K = c->k, R = c->n * c->m;
    float *x = lm_test_randn(r, (size_t)(K * R), 1.0f);
    void *src = lm_test_encode(c->src_type, x, K, R);
    void *out[2];
    lm_backend *bes[2] = {cpu, dev};
    for (int b = 0; b < 2; b++) {
        lm_test_dt ts = lm_test_dt_new(bes[b], c->src_type, K, c->n, c->m, 1, src);
        lm_test_dt td = lm_test_dt_new(bes[b], c->type, K, c->n, c->m, 1, NULL);
        lm_test_expect_ok(bes[b]->ops->copy(bes[b], &ts.t, &td.t), lm_test_case_desc(c, "copy"));
        out[b] = lm_test_dt_read(&td);
        lm_test_dt_free(&ts), lm_test_dt_free(&td);
    }
    cr_expect(memcmp(out[0], out[1], lm_row_size(c->type, K) * (size_t)R) == 0,
              "%s: bytes differ from the CPU's", lm_test_case_desc(c, "byte-equal"));
    free(x), free(src), free(out[0]), free(out[1]);
}
