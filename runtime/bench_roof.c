/* Decode's compute roof for `lumen bench` (lm_bench_decode_roof): how fast the model's backend
 * multiplies one column by the model's own decode weights while they sit in cache. With the
 * bandwidth probe it gives decode's roofline: the probe bounds a step that waits on memory,
 * this bounds one that waits on the kernels, and decode is bandwidth-bound only where the
 * probe is the lower of the two (a few cores against a wide memory system are not). */
#include "backend.h"
#include "bench.h"
#include "model.h"
#include "quant.h"

#include "lm_internal.h"

#include <string.h>

enum { LM__ROOF_MAX = 64, LM__ROOF_BATCH = 8 };

/* One distinct (type, K, N) decode weight: a tensor of it and the bytes of all of them. */
typedef struct {
    const lm_tensor *w;
    uint64_t step_bytes;
} lm__roof_shape;

static void lm__roof_add(lm__roof_shape *s, int *n, const lm_tensor *w) {
    for (int i = 0; i < *n; i++)
        if (s[i].w->type == w->type && s[i].w->ne[0] == w->ne[0] && s[i].w->ne[1] == w->ne[1]) {
            s[i].step_bytes += lm_tensor_nbytes(w);
            return;
        }
    if (*n < LM__ROOF_MAX) s[(*n)++] = (lm__roof_shape){w, lm_tensor_nbytes(w)};
}

/* The decode step's matrix weights: every layer's projections, then the output head. */
static int lm__roof_shapes(const lm_model *m, lm__roof_shape *s) {
    int n = 0;
    for (int32_t l = 0; l < m->hp.n_layer; l++) {
        const lm_layer *L = &m->layers[l];
        const lm_tensor *w[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int i = 0; i < 7; i++) lm__roof_add(s, &n, w[i]);
    }
    lm__roof_add(s, &n, &m->output);
    return n;
}

/* Rows of w to time: all of it, or its first row groups when it would not fit in a quarter
 * of the last-level cache (a row group costs the same whatever N is). */
static int64_t lm__roof_rows(const lm_tensor *w) {
    const size_t row = lm_row_size(w->type, w->ne[0]); /* every layout holds a row's bytes */
    const int64_t fit = (int64_t)(lm__bench_llc_bytes() / 4 / row) & ~(int64_t)63;
    return w->ne[1] <= fit || fit < 64 ? w->ne[1] : fit;
}

/* Seconds per call of x through w's first `rows` rows: the best batch of LM__ROOF_BATCH calls
 * (one submission on a GPU) after a warm-up batch that brings the weights into cache. */
static lm_status lm__roof_time(lm_backend *be, const lm_tensor *w, int64_t rows, lm_buffer *xb,
                               lm_buffer *db, double min_time_s, double *t_call) {
    const lm_backend_ops *o = be->ops;
    lm_tensor v = *w, x, d;
    v.ne[1] = rows;
    lm_tensor_init(&x, xb, 0, LM_TYPE_F32, w->ne[0], 1, 1, 1);
    lm_tensor_init(&d, db, 0, LM_TYPE_F32, rows, 1, 1, 1);
    double best = 1e30, t_start = lm__time_ms();
    for (int b = 0; b < 3 || (b < 100000 && lm__time_ms() - t_start < min_time_s * 1e3); b++) {
        const double t0 = lm__time_ms();
        if (o->begin) LM_TRY(o->begin(be));
        for (int i = 0; i < LM__ROOF_BATCH; i++) LM_TRY(o->mul_mat(be, &v, &x, &d));
        if (o->end) LM_TRY(o->end(be));
        if (o->sync) LM_TRY(o->sync(be));
        const double dt = (lm__time_ms() - t0) * 1e-3 / LM__ROOF_BATCH;
        if (b > 0 && dt < best) best = dt;
    }
    *t_call = best;
    return LM_OK;
}

lm_status lm_bench_decode_roof(lm_model *m, double min_time_s, lm_bench_roof *out) {
    if (!m || !out)
        return lm__error(LM_ERR_INVALID_ARG, "bench: decode roof: model or out is NULL");
    memset(out, 0, sizeof *out);
    if (min_time_s <= 0) min_time_s = 0.05;
    lm__roof_shape s[LM__ROOF_MAX];
    const int n = lm__roof_shapes(m, s);
    int64_t kmax = 1, nmax = 1;
    for (int i = 0; i < n; i++) {
        kmax = s[i].w->ne[0] > kmax ? s[i].w->ne[0] : kmax;
        const int64_t r = lm__roof_rows(s[i].w);
        nmax = r > nmax ? r : nmax;
    }
    lm_backend *be = m->be;
    lm_buffer *xb = NULL, *db = NULL;
    lm_status st = be->ops->buffer_alloc(be, (size_t)kmax * sizeof(float), &xb);
    if (st == LM_OK) st = be->ops->buffer_alloc(be, (size_t)nmax * sizeof(float), &db);
    float *x = st == LM_OK ? LM_MALLOC((size_t)kmax * sizeof *x) : NULL;
    if (st == LM_OK && !x) st = lm__error(LM_ERR_NOMEM, "bench: decode roof: out of memory");
    if (st == LM_OK) { /* activation-like values: every quantization level in use */
        uint64_t r = 0x9e3779b97f4a7c15ull;
        for (int64_t i = 0; i < kmax; i++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            x[i] = (float)((double)(r >> 40) / 8388608.0 - 1.0);
        }
        st = be->ops->upload(be, xb, 0, x, (size_t)kmax * sizeof *x);
    }
    double bytes = 0, secs = 0;
    for (int i = 0; st == LM_OK && i < n; i++) {
        const int64_t rows = lm__roof_rows(s[i].w);
        double t = 0;
        st = lm__roof_time(be, s[i].w, rows, xb, db, min_time_s, &t);
        const double timed = (double)lm_row_size(s[i].w->type, s[i].w->ne[0]) * (double)rows;
        bytes += (double)s[i].step_bytes;
        secs += t * (double)s[i].step_bytes / timed;
    }
    LM_FREE(x);
    if (db) be->ops->buffer_free(be, db);
    if (xb) be->ops->buffer_free(be, xb);
    if (st != LM_OK) return st;
    out->bytes_per_s = secs > 0 ? bytes / secs : 0;
    out->step_bytes = (uint64_t)bytes;
    out->n_shapes = n;
    return LM_OK;
}
