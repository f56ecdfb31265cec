/* Decode's compute roof for `lumen bench` (lm_bench_decode_roof): how fast the model's backend
 * runs a decode step's matrix ops (as the forward pass groups them: q, k, v as one mul_mat_n,
 * wo, gate and up as one, down, the head; without the RMS norm the forward pass fuses into the
 * first and third) while their weights sit in cache. With the bandwidth
 * probe it gives decode's roofline: the probe bounds a step that waits on memory, this bounds
 * one that waits on its matrix calls, and decode is bandwidth-bound only where the probe is
 * the lower of the two (a few cores against a wide memory system are not). */
#include "backend.h"
#include "bench.h"
#include "model.h"
#include "quant.h"

#include "lm_internal.h"

#include <string.h>

enum { LM__ROOF_BATCH = 8, LM__ROOF_PARTS = 3 };

/* One distinct matrix op of a decode step: its weights (q, k, v; gate, up; or one), by type
 * and shape, and the bytes of every op like it in the step. */
typedef struct {
    const lm_tensor *w[LM__ROOF_PARTS];
    int n;
    uint64_t step_bytes;
} lm__roof_op;

static bool lm__roof_same(const lm__roof_op *a, const lm_tensor *const *w, int n) {
    if (a->n != n) return false;
    for (int i = 0; i < n; i++)
        if (a->w[i]->type != w[i]->type || a->w[i]->ne[0] != w[i]->ne[0] ||
            a->w[i]->ne[1] != w[i]->ne[1])
            return false;
    return true;
}

static void lm__roof_add(lm__roof_op *ops, int *n_ops, const lm_tensor *const *w, int n) {
    uint64_t bytes = 0;
    for (int i = 0; i < n; i++) bytes += lm_tensor_nbytes(w[i]);
    for (int i = 0; i < *n_ops; i++)
        if (lm__roof_same(&ops[i], w, n)) {
            ops[i].step_bytes += bytes;
            return;
        }
    lm__roof_op *o = &ops[(*n_ops)++];
    memset(o, 0, sizeof *o);
    for (int i = 0; i < n; i++) o->w[i] = w[i];
    o->n = n;
    o->step_bytes = bytes;
}

/* The step's matrix ops as lm_forward calls them (ops holds 4 n_layer + 1). */
static int lm__roof_ops(const lm_model *m, lm__roof_op *ops) {
    int n = 0;
    for (int32_t l = 0; l < m->hp.n_layer; l++) {
        const lm_layer *L = &m->layers[l];
        const lm_tensor *qkv[3] = {&L->wq, &L->wk, &L->wv}, *gu[2] = {&L->w_gate, &L->w_up};
        const lm_tensor *wo = &L->wo, *down = &L->w_down;
        lm__roof_add(ops, &n, qkv, 3);
        lm__roof_add(ops, &n, &wo, 1);
        lm__roof_add(ops, &n, gu, 2);
        lm__roof_add(ops, &n, &down, 1);
    }
    const lm_tensor *head = &m->output;
    lm__roof_add(ops, &n, &head, 1);
    return n;
}

/* Rows of w to time: all, or its first row groups when they would pass `budget` bytes (a row
 * group costs the same whatever N is; the multiples of 64 keep every 8-row group whole). */
static int64_t lm__roof_rows(const lm_tensor *w, size_t budget) {
    const size_t row = lm_row_size(w->type, w->ne[0]); /* every layout holds a row's bytes */
    const int64_t fit = (int64_t)(budget / row) & ~(int64_t)63;
    return w->ne[1] <= fit || fit < 64 ? w->ne[1] : fit;
}

/* The cache bytes one timed op may fill: a quarter of the LLC, for x, dst and the rest */
static size_t lm__roof_budget(void) {
    return lm__bench_llc_bytes() / 4;
}

typedef struct {
    lm_backend *be;
    lm_buffer *xb, *db;
    size_t x_step; /* two copies of x, alternated, so that no call reuses a quantized x */
    int64_t nmax;  /* dst floats per part */
    size_t budget; /* bytes of weights an op may keep in cache */
} lm__roof_env;

/* Seconds per call of op o on its weights' first rows (timed bytes in *bytes): the best batch
 * of LM__ROOF_BATCH calls (one submission on a GPU) after a warm-up batch that brings the
 * weights into cache. */
static lm_status lm__roof_time(const lm__roof_env *e, const lm__roof_op *o, double min_time_s,
                               double *t_call, double *bytes) {
    const lm_backend_ops *ops = e->be->ops;
    lm_tensor v[LM__ROOF_PARTS], d[LM__ROOF_PARTS], x[2];
    const lm_tensor *vp[LM__ROOF_PARTS];
    lm_tensor *dp[LM__ROOF_PARTS];
    *bytes = 0;
    for (int i = 0; i < o->n; i++) {
        v[i] = *o->w[i];
        v[i].ne[1] = lm__roof_rows(o->w[i], e->budget / (size_t)o->n);
        *bytes += (double)lm_row_size(v[i].type, v[i].ne[0]) * (double)v[i].ne[1];
        lm_tensor_init(&d[i], e->db, (size_t)i * (size_t)e->nmax * sizeof(float), LM_TYPE_F32,
                       v[i].ne[1], 1, 1, 1);
        vp[i] = &v[i], dp[i] = &d[i];
    }
    for (int k = 0; k < 2; k++)
        lm_tensor_init(&x[k], e->xb, (size_t)k * e->x_step, LM_TYPE_F32, v[0].ne[0], 1, 1, 1);
    double best = 1e30, t_start = lm__time_ms();
    for (int b = 0; b < 3 || (b < 100000 && lm__time_ms() - t_start < min_time_s * 1e3); b++) {
        const double t0 = lm__time_ms();
        lm_status s = ops->begin ? ops->begin(e->be) : LM_OK;
        for (int i = 0; s == LM_OK && i < LM__ROOF_BATCH; i++)
            s = lm_backend_mul_mat_n(e->be, o->n, vp, &x[i & 1], dp);
        if (s == LM_OK && ops->end) s = ops->end(e->be);
        if (s == LM_OK && ops->sync) s = ops->sync(e->be);
        if (s != LM_OK) { /* finish what was submitted before the buffers go */
            if (ops->end) (void)ops->end(e->be);
            if (ops->sync) (void)ops->sync(e->be);
            return s;
        }
        const double dt = (lm__time_ms() - t0) * 1e-3 / LM__ROOF_BATCH;
        if (b > 0 && dt < best) best = dt;
    }
    *t_call = best;
    return LM_OK;
}

/* x's two copies: activation-like values, every quantization level in use */
static lm_status lm__roof_x(const lm__roof_env *e, int64_t k) {
    float *x = LM_MALLOC((size_t)k * sizeof *x);
    if (!x) return lm__error(LM_ERR_NOMEM, "bench: decode roof: out of memory");
    lm__brng r = {0x9e3779b97f4a7c15ull};
    for (int64_t i = 0; i < k; i++) x[i] = lm__brng_f(&r);
    lm_status s = e->be->ops->upload(e->be, e->xb, 0, x, (size_t)k * sizeof *x);
    if (s == LM_OK) s = e->be->ops->upload(e->be, e->xb, e->x_step, x, (size_t)k * sizeof *x);
    LM_FREE(x);
    return s;
}

/* The buffers for timing ops[0 .. n): x's two copies, dst for the largest row cut. */
static lm_status lm__roof_env_open(const lm_model *m, const lm__roof_op *ops, int n,
                                   lm__roof_env *e) {
    *e = (lm__roof_env){m->be, NULL, NULL, 0, 1, lm__roof_budget()};
    int64_t kmax = 1;
    for (int i = 0; i < n; i++)
        for (int p = 0; p < ops[i].n; p++) {
            const int64_t r = lm__roof_rows(ops[i].w[p], e->budget / (size_t)ops[i].n);
            kmax = ops[i].w[p]->ne[0] > kmax ? ops[i].w[p]->ne[0] : kmax;
            e->nmax = r > e->nmax ? r : e->nmax;
        }
    e->x_step = ((size_t)kmax * sizeof(float) + 255) & ~(size_t)255;
    const lm_backend_ops *bo = e->be->ops;
    lm_status st = bo->buffer_alloc(e->be, 2 * e->x_step, &e->xb);
    if (st == LM_OK)
        st = bo->buffer_alloc(e->be, (size_t)LM__ROOF_PARTS * (size_t)e->nmax * sizeof(float),
                              &e->db);
    if (st == LM_OK) st = lm__roof_x(e, kmax);
    return st;
}

static void lm__roof_env_close(lm__roof_env *e) {
    if (e->db) e->be->ops->buffer_free(e->be, e->db);
    if (e->xb) e->be->ops->buffer_free(e->be, e->xb);
    e->db = e->xb = NULL;
}

static lm_status lm__roof_check(const char *what, const lm_model *m, const void *out) {
    if (!m || !out) return lm__error(LM_ERR_INVALID_ARG, "bench: %s: model or out is NULL", what);
    if (!m->be || !m->layers || m->hp.n_layer < 1)
        return lm__error(LM_ERR_INVALID_ARG,
                         "bench: %s: the model was loaded with vocab_only: no weights", what);
    return LM_OK;
}

lm_status lm_bench_decode_roof(const lm_model *m, double min_time_s, lm_bench_roof *out) {
    LM_TRY(lm__roof_check("decode roof", m, out));
    memset(out, 0, sizeof *out);
    if (min_time_s <= 0) min_time_s = 0.05;
    lm__roof_op *ops = LM_MALLOC(((size_t)m->hp.n_layer * 4 + 1) * sizeof *ops);
    if (!ops) return lm__error(LM_ERR_NOMEM, "bench: decode roof: out of memory");
    const int n = lm__roof_ops(m, ops);
    lm__roof_env e;
    lm_status st = lm__roof_env_open(m, ops, n, &e);
    double bytes = 0, secs = 0;
    for (int i = 0; st == LM_OK && i < n; i++) {
        double t = 0, timed = 0;
        st = lm__roof_time(&e, &ops[i], min_time_s, &t, &timed);
        bytes += (double)ops[i].step_bytes;
        secs += t * (double)ops[i].step_bytes / timed;
    }
    lm__roof_env_close(&e);
    LM_FREE(ops);
    if (st != LM_OK) return st;
    out->bytes_per_s = secs > 0 ? bytes / secs : 0;
    out->step_bytes = (uint64_t)bytes;
    out->n_ops = n;
    return LM_OK;
}

/* ---- the whole step ---------------------------------------------------------------- */

/* Same types, shapes and layouts in every tensor: a layer like this one costs what it does */
static bool lm__roof_layer_like(const lm_layer *a, const lm_layer *b) {
    const lm_tensor *x = (const lm_tensor *)a, *y = (const lm_tensor *)b;
    for (size_t i = 0; i < sizeof(lm_layer) / sizeof(lm_tensor); i++)
        if (x[i].type != y[i].type || x[i].layout != y[i].layout ||
            memcmp(x[i].ne, y[i].ne, sizeof x[i].ne) != 0)
            return false;
    return true;
}

/* m with its weights in cache: every layer reads the tensors of the first layer like it, and
 * the head is its first head_rows rows (the vocabulary those ids). Layers index their own
 * cache and window still, so a step does the real step's work on a few layers' weights. */
lm_status lm__roof_alias(const lm_model *m, int64_t head_rows, lm_model *a, int32_t *kinds,
                         uint64_t *layer_bytes) {
    *a = *m;
    a->layers = LM_MALLOC((size_t)m->hp.n_layer * sizeof *a->layers);
    if (!a->layers) return lm__error(LM_ERR_NOMEM, "bench: decode step roof: out of memory");
    *kinds = 0, *layer_bytes = 0;
    for (int32_t l = 0; l < m->hp.n_layer; l++) {
        int32_t j = 0;
        while (!lm__roof_layer_like(&m->layers[j], &m->layers[l])) j++; /* stops at l */
        a->layers[l] = m->layers[j];
        if (j < l) continue;
        const lm_tensor *t = (const lm_tensor *)&m->layers[l];
        for (size_t i = 0; i < sizeof(lm_layer) / sizeof(lm_tensor); i++)
            if (t[i].buf) *layer_bytes += lm_tensor_nbytes(&t[i]);
        ++*kinds;
    }
    a->output.ne[1] = head_rows;
    a->hp.n_vocab = (int32_t)head_rows;
    return LM_OK;
}

/* Fill n_past positions of c, n_batch at a time. */
static lm_status lm__roof_fill(lm_context *c, int32_t n_past, int32_t n_batch, lm_token *tok) {
    for (int32_t p = 0; p < n_past; p += n_batch) {
        lm_batch b = lm_batch_simple(tok + p, n_past - p < n_batch ? n_past - p : n_batch);
        LM_TRY(lm_decode(c, &b));
    }
    return LM_OK;
}

/* Best mean seconds a step of n_gen single-token steps from n_past cached positions, after a
 * warm-up run that brings the weights into cache. */
static lm_status lm__roof_steps(lm_context *c, int32_t n_past, int32_t n_gen, double min_time_s,
                                const lm_token *tok, double *step_s) {
    double best = 1e30;
    const double t_start = lm__time_ms();
    for (int r = 0; r < 3 || (r < 1000 && lm__time_ms() - t_start < min_time_s * 1e3); r++) {
        LM_TRY(lm_kv_seq_trim(c, 0, n_past));
        const double t0 = lm__time_ms();
        for (int32_t i = 0; i < n_gen; i++) {
            lm_batch b = lm_batch_simple(tok + n_past + i, 1);
            LM_TRY(lm_decode(c, &b));
        }
        const double dt = (lm__time_ms() - t0) * 1e-3 / n_gen;
        if (r > 0 && dt < best) best = dt;
    }
    *step_s = best;
    return LM_OK;
}

/* The head in cache: the seconds of a call on its first rows (lm__roof_rows of the budget,
 * which lm__roof_time cuts to as well: `rows` must be that count), and the seconds the rest of its
 * rows add, from the slope between those rows and half of them, so that a call's fixed cost (the
 * threads' start, a launch) is not scaled with the rows (a plain ratio where the halves do not
 * differ). */
static lm_status lm__roof_head(const lm_model *m, double min_time_s, int64_t rows, double *t_rows,
                               double *t_rest) {
    lm__roof_op head = {{&m->output}, 1, lm_tensor_nbytes(&m->output)};
    lm__roof_env e;
    lm_status st = lm__roof_env_open(m, &head, 1, &e);
    double timed = 0, t_half = 0, timed_half = 0;
    if (st == LM_OK) st = lm__roof_time(&e, &head, min_time_s, t_rows, &timed);
    const bool cut = rows < m->output.ne[1];
    e.budget /= 2;
    if (st == LM_OK && cut && lm__roof_rows(&m->output, e.budget) < rows)
        st = lm__roof_time(&e, &head, min_time_s, &t_half, &timed_half);
    lm__roof_env_close(&e);
    if (st != LM_OK) return st;
    double slope = *t_rows / timed; /* seconds a byte */
    if (timed_half > 0 && *t_rows > t_half) slope = (*t_rows - t_half) / (timed - timed_half);
    *t_rest = cut ? slope * ((double)head.step_bytes - timed) : 0;
    return LM_OK;
}

lm_status lm_bench_decode_step_roof(const lm_model *m, const lm_context_params *cp, int32_t n_past,
                                    int32_t n_gen, double min_time_s, lm_bench_step_roof *out) {
    LM_TRY(lm__roof_check("decode step roof", m, out));
    memset(out, 0, sizeof *out);
    if (n_past < 0 || n_gen < 1 || n_past > (1 << 24) || n_gen > (1 << 24))
        return lm__error(LM_ERR_INVALID_ARG,
                         "bench: decode step roof: n_past = %d, n_gen = %d (need 0 <= n_past and "
                         "1 <= n_gen, each at most 2^24)",
                         n_past, n_gen);
    if (min_time_s <= 0) min_time_s = 0.2;
    const int64_t rows = lm__roof_rows(&m->output, lm__roof_budget());
    lm_model a;
    int32_t kinds = 0;
    uint64_t layer_bytes = 0;
    LM_TRY(lm__roof_alias(m, rows, &a, &kinds, &layer_bytes));
    const uint64_t cached =
        layer_bytes + (uint64_t)lm_row_size(m->output.type, m->output.ne[0]) * (uint64_t)rows;
    if (cached > lm__bench_llc_bytes()) { /* not a roof: nothing to time */
        LM_FREE(a.layers);
        *out = (lm_bench_step_roof){0, kinds, rows, cached, false};
        return LM_OK;
    }
    double t_rows = 0, t_rest = 0;
    lm_status st = lm__roof_head(m, 0.05, rows, &t_rows, &t_rest);
    lm_context_params p = cp ? *cp : lm_context_default_params();
    p.n_ctx = n_past + n_gen;
    p.n_seq_max = 1;
    if (p.n_batch < 1) p.n_batch = 512;
    lm_context *c = NULL;
    lm_token *tok = LM_MALLOC((size_t)(n_past + n_gen) * sizeof *tok);
    if (st == LM_OK)
        st = tok ? lm_context_create(&a, &p, &c)
                 : lm__error(LM_ERR_NOMEM, "bench: decode step roof: out of memory");
    lm__brng r = {0x2545f4914f6cdd1dull};
    for (int32_t i = 0; tok && i < n_past + n_gen; i++)
        tok[i] = (lm_token)(lm__brng_u64(&r) % (uint64_t)rows);
    double step = 0;
    if (st == LM_OK) st = lm__roof_fill(c, n_past, p.n_batch, tok);
    if (st == LM_OK) st = lm__roof_steps(c, n_past, n_gen, min_time_s, tok, &step);
    lm_context_free(c);
    LM_FREE(tok);
    LM_FREE(a.layers);
    if (st != LM_OK) return st;
    *out = (lm_bench_step_roof){step + t_rest, kinds, rows, cached, true};
    return LM_OK;
}
