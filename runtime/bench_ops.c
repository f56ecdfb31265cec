/* `lumen bench --ops`: time each row of the bench op table (op_cases.c, the same rows
 * test_ops checks against its references) on a backend, with random inputs. Large
 * read-only operands (weights, embedding tables, KV caches) are cycled over enough copies
 * to overflow the last-level cache, so each call reads them from memory as a decode step
 * does; activations stay hot, as they are between the ops of a real step. */
#include "backend.h"
#include "bench.h"
#include "op_cases.h"
#include "quant.h"

#include "lm_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { LM__BOP_MAX_BUFS = 8, LM__BOP_MAX_COPIES = 4096 };

/* One case ready to run: its tensors on the backend and the host-side parameters. */
typedef struct {
    const lm_op_case *c;
    lm_backend *be;
    lm_buffer *bufs[LM__BOP_MAX_BUFS];
    int n_bufs;
    lm_tensor t[6];   /* operands in the order the op takes them; t[0] may be cycled */
    size_t cold_step; /* byte distance between copies of the cycled operands */
    int n_copies;     /* copies of t[0] (and t[1] for attention) */
    float ff[256];
    lm_rope_params rope;
    lm_attn_params attn;
    void *host; /* the host bytes of wrapped weights (lm__bop_weights) */
} lm__bop;

static lm_status lm__bop_buf(lm__bop *b, size_t size, lm_buffer **out) {
    if (b->n_bufs == LM__BOP_MAX_BUFS)
        return lm__error(LM_ERR_INVALID_ARG, "bench: too many buffers");
    LM_TRY(b->be->ops->buffer_alloc(b->be, size ? size : 1, out));
    b->bufs[b->n_bufs++] = *out;
    return LM_OK;
}

/* rows x n random values encoded as `type` into enc (rows x its row size) */
static lm_status lm__bop_encode(lm_type type, int64_t n, int64_t rows, char *enc, lm__brng *r) {
    const size_t rs = lm_row_size(type, n);
    float *x = LM_MALLOC((size_t)n * sizeof *x);
    if (!x) return lm__error(LM_ERR_NOMEM, "bench: cannot allocate %lld floats", (long long)n);
    for (int64_t i = 0; i < rows; i++) {
        for (int64_t j = 0; j < n; j++) x[j] = lm__brng_f(r);
        lm_quantize_row(type, x, enc + (size_t)i * rs, n);
    }
    LM_FREE(x);
    return LM_OK;
}

/* rows x n random values encoded as `type`, uploaded `copies` times `step` bytes apart. */
static lm_status lm__bop_fill(lm__bop *b, lm_buffer *buf, lm_type type, int64_t n, int64_t rows,
                              int copies, size_t step, lm__brng *r) {
    const size_t bytes = lm_row_size(type, n) * (size_t)rows;
    char *enc = LM_MALLOC(bytes ? bytes : 1);
    if (!enc) return lm__error(LM_ERR_NOMEM, "bench: cannot allocate %zu bytes of inputs", bytes);
    lm_status s = lm__bop_encode(type, n, rows, enc, r);
    for (int i = 0; s == LM_OK && i < copies; i++)
        s = b->be->ops->upload(b->be, buf, (size_t)i * step, enc, bytes);
    LM_FREE(enc);
    return s;
}

/* A contiguous random tensor [ne0, ne1, ne2, ne3] of `type` in its own buffer. */
static lm_status lm__bop_rand(lm__bop *b, lm_tensor *t, lm_type type, int64_t ne0, int64_t ne1,
                              int64_t ne2, int64_t ne3, lm__brng *r) {
    lm_buffer *buf;
    lm_tensor_init(t, NULL, 0, type, ne0, ne1, ne2, ne3);
    LM_TRY(lm__bop_buf(b, lm_tensor_nbytes(t), &buf));
    t->buf = buf;
    return lm__bop_fill(b, buf, type, ne0, ne1 * ne2 * ne3, 1, 0, r);
}

static lm_status lm__bop_i32(lm__bop *b, lm_tensor *t, const int32_t *v, int64_t n) {
    lm_buffer *buf;
    lm_tensor_init(t, NULL, 0, LM_TYPE_I32, n, 1, 1, 1);
    LM_TRY(lm__bop_buf(b, (size_t)n * 4, &buf));
    t->buf = buf;
    return b->be->ops->upload(b->be, buf, 0, v, (size_t)n * 4);
}

/* Copies of a read-only operand of `bytes` that together fill cold_bytes. */
static void lm__bop_copies(lm__bop *b, size_t bytes, size_t cold_bytes) {
    b->cold_step = (bytes + 255) & ~(size_t)255;
    size_t n = cold_bytes / (b->cold_step ? b->cold_step : 1) + 1;
    b->n_copies = n > LM__BOP_MAX_COPIES ? LM__BOP_MAX_COPIES : (int)n;
}

/* A random cycled operand: n_copies copies of [ne0 .. ne3] of `type`, t views copy 0. */
static lm_status lm__bop_cold(lm__bop *b, lm_tensor *t, lm_type type, int64_t ne0, int64_t ne1,
                              int64_t ne2, int64_t ne3, lm__brng *r) {
    lm_buffer *buf;
    lm_tensor_init(t, NULL, 0, type, ne0, ne1, ne2, ne3);
    LM_TRY(lm__bop_buf(b, b->cold_step * (size_t)b->n_copies, &buf));
    t->buf = buf;
    return lm__bop_fill(b, buf, type, ne0, ne1 * ne2 * ne3, b->n_copies, b->cold_step, r);
}

/* A cycled weight [K, N] as a model's: wrapped host bytes (the CPU backend's huge-page copy),
 * each copy re-laid where the backend re-lays a model's weights, so that mul_mat and get_rows
 * time the layout decode reads. Backends without weights_relayout: lm__bop_cold. */
static lm_status lm__bop_weights(lm__bop *b, lm_tensor *t, lm_type type, int64_t K, int64_t N,
                                 lm__brng *r) {
    const lm_backend_ops *o = b->be->ops;
    if (!o->weights_relayout || !o->buffer_wrap_host || b->n_bufs == LM__BOP_MAX_BUFS)
        return lm__bop_cold(b, t, type, K, N, 1, 1, r);
    const size_t bytes = lm_row_size(type, K) * (size_t)N,
                 size = b->cold_step * (size_t)b->n_copies;
    char *host = LM_MALLOC(size ? size : 1);
    if (!host) return lm__error(LM_ERR_NOMEM, "bench: cannot allocate %zu bytes of weights", size);
    lm_status s = lm__bop_encode(type, K, N, host, r);
    for (int i = 1; s == LM_OK && i < b->n_copies; i++)
        memcpy(host + (size_t)i * b->cold_step, host, bytes);
    lm_buffer *buf = NULL;
    if (s == LM_OK) s = o->buffer_wrap_host(b->be, host, size, &buf);
    if (s != LM_OK) {
        LM_FREE(host);
        return s;
    }
    b->bufs[b->n_bufs++] = buf;
    b->host = host; /* freed after the buffer */
    lm_tensor_init(t, buf, 0, type, K, N, 1, 1);
    lm_tensor *views = LM_MALLOC((size_t)b->n_copies * sizeof *views);
    lm_tensor **pv = LM_MALLOC((size_t)b->n_copies * sizeof *pv);
    s = views && pv ? LM_OK : lm__error(LM_ERR_NOMEM, "bench: out of memory");
    for (int i = 0; s == LM_OK && i < b->n_copies; i++) {
        views[i] = *t, views[i].offset = (size_t)i * b->cold_step;
        pv[i] = &views[i];
    }
    if (s == LM_OK) s = o->weights_relayout(b->be, pv, b->n_copies);
    if (s == LM_OK) t->layout = views[0].layout; /* every copy alike */
    LM_FREE(views), LM_FREE(pv);
    return s;
}

/* Token i of the batch: sequence i % S, the last tokens of a context of max(1, n_ctx - 7s)
 * positions (as op_cases.h defines it). */
static void lm__bop_positions(const lm_op_case *c, int32_t *pos, int32_t *seq) {
    const int64_t S = c->n_seq > 0 ? c->n_seq : 1;
    for (int64_t s = 0; s < S; s++) {
        int64_t L = c->n_ctx - 7 * s > 1 ? c->n_ctx - 7 * s : 1, cnt = 0;
        for (int64_t i = s; i < c->m; i += S) cnt++;
        for (int64_t i = s, j = 0; i < c->m; i += S, j++) {
            seq[i] = (int32_t)s;
            pos[i] = (int32_t)(L - cnt + j > 0 ? L - cnt + j : 0);
        }
    }
}

static lm_status lm__bop_setup(lm__bop *b, size_t cold_bytes, lm__brng *r) {
    const lm_op_case *c = b->c;
    const int64_t K = c->k, N = c->n, M = c->m;
    int32_t *iv = LM_CALLOC((size_t)(M > 0 ? M : 1) * 2, sizeof *iv);
    if (!iv) return lm__error(LM_ERR_NOMEM, "bench: out of memory");
    lm_status s = LM_OK;
    b->n_copies = 1;
#define T(expr)                                                                                    \
    if (s == LM_OK) s = (expr)
    switch (c->op) {
    case LM_OP_MUL_MAT:
        lm__bop_copies(b, lm_row_size(c->type, K) * (size_t)N, cold_bytes);
        T(lm__bop_weights(b, &b->t[0], c->type, K, N, r));
        T(lm__bop_rand(b, &b->t[1], LM_TYPE_F32, K, M, 1, 1, r));
        T(lm__bop_rand(b, &b->t[2], LM_TYPE_F32, N, M, 1, 1, r));
        break;
    case LM_OP_GET_ROWS:
        lm__bop_copies(b, lm_row_size(c->type, K) * (size_t)N, cold_bytes);
        for (int64_t i = 0; i < M; i++) iv[i] = (int32_t)(lm__brng_u64(r) % (uint64_t)N);
        T(lm__bop_weights(b, &b->t[0], c->type, K, N, r));
        T(lm__bop_i32(b, &b->t[1], iv, M));
        T(lm__bop_rand(b, &b->t[2], LM_TYPE_F32, K, M, 1, 1, r));
        break;
    case LM_OP_RMS_NORM:
        T(lm__bop_rand(b, &b->t[0], LM_TYPE_F32, K, N, M, 1, r));
        T(lm__bop_rand(b, &b->t[1], LM_TYPE_F32, K, 1, 1, 1, r));
        T(lm__bop_rand(b, &b->t[2], LM_TYPE_F32, K, N, M, 1, r));
        break;
    case LM_OP_ROPE:
        for (int64_t i = 0; i < M; i++) iv[i] = (int32_t)(i * 7919 % (c->n_ctx > 0 ? c->n_ctx : 1));
        for (int i = 0; i < 256; i++) b->ff[i] = 1.0f + (float)(i % 7);
        b->rope = (lm_rope_params){(lm_rope_mode)c->mode, c->n_rot, 10000.0f,
                                   c->freq_scale > 0 ? c->freq_scale : 1.0f,
                                   c->freq_factors ? b->ff : NULL};
        T(lm__bop_rand(b, &b->t[0], LM_TYPE_F32, K, N, M, 1, r));
        T(lm__bop_i32(b, &b->t[1], iv, M));
        break;
    case LM_OP_KV_STORE: /* distinct slots: token i at position i % n_ctx */
        for (int64_t i = 0; i < M; i++) {
            iv[i] = (int32_t)(i % c->n_ctx);
            iv[M + i] = (int32_t)(i / c->n_ctx % (c->n_seq > 0 ? c->n_seq : 1));
        }
        T(lm__bop_rand(b, &b->t[0], LM_TYPE_F32, K, c->n_kv_head, M, 1, r));
        T(lm__bop_rand(b, &b->t[1], LM_TYPE_F32, K, c->n_kv_head, M, 1, r));
        T(lm__bop_rand(b, &b->t[2], c->type, K, c->n_kv_head, c->n_ctx, c->n_seq, r));
        T(lm__bop_rand(b, &b->t[3], c->type, K, c->n_kv_head, c->n_ctx, c->n_seq, r));
        T(lm__bop_i32(b, &b->t[4], iv, M));
        T(lm__bop_i32(b, &b->t[5], iv + M, M));
        break;
    case LM_OP_ATTENTION:
        lm__bop_positions(c, iv, iv + M);
        lm__bop_copies(b, lm_row_size(c->type, K) * (size_t)(c->n_kv_head * c->n_ctx * c->n_seq),
                       cold_bytes / 2);
        b->attn = (lm_attn_params){1.0f / sqrtf((float)K), c->window, c->softcap};
        T(lm__bop_cold(b, &b->t[0], c->type, K, c->n_kv_head, c->n_ctx, c->n_seq, r));
        T(lm__bop_cold(b, &b->t[1], c->type, K, c->n_kv_head, c->n_ctx, c->n_seq, r));
        T(lm__bop_rand(b, &b->t[2], LM_TYPE_F32, K, N, M, 1, r));
        T(lm__bop_i32(b, &b->t[3], iv, M));
        T(lm__bop_i32(b, &b->t[4], iv + M, M));
        T(lm__bop_rand(b, &b->t[5], LM_TYPE_F32, K, N, M, 1, r));
        break;
    case LM_OP_ARGMAX:
        T(lm__bop_rand(b, &b->t[0], LM_TYPE_F32, K, M, 1, 1, r));
        T(lm__bop_i32(b, &b->t[1], iv, M));
        break;
    case LM_OP_COPY:
        T(lm__bop_rand(b, &b->t[0], c->src_type, K, N, M, 1, r));
        T(lm__bop_rand(b, &b->t[1], c->type, K, N, M, 1, r));
        break;
    default: { /* element-wise: b broadcasts along the dims set in mode (add, mul) */
        int64_t bn[3] = {K, N, M};
        for (int i = 0; i < 3; i++)
            if (c->op != LM_OP_SWIGLU && c->op != LM_OP_GEGLU && (c->mode >> i) & 1) bn[i] = 1;
        T(lm__bop_rand(b, &b->t[0], LM_TYPE_F32, K, N, M, 1, r));
        T(lm__bop_rand(b, &b->t[1], LM_TYPE_F32, bn[0], bn[1], bn[2], 1, r));
        T(lm__bop_rand(b, &b->t[2], LM_TYPE_F32, K, N, M, 1, r));
        break;
    }
    }
#undef T
    LM_FREE(iv);
    return s;
}

static void lm__bop_free(lm__bop *b) {
    for (int i = 0; i < b->n_bufs; i++) b->be->ops->buffer_free(b->be, b->bufs[i]);
    b->n_bufs = 0;
    LM_FREE(b->host);
    b->host = NULL;
}

/* One call of the case's op on copy `copy` of its cycled operands. */
static lm_status lm__bop_call(lm__bop *b, int copy) {
    lm_backend *be = b->be;
    const lm_backend_ops *o = be->ops;
    lm_tensor *t = b->t, c0 = t[0], c1 = t[1];
    c0.offset = (size_t)copy * b->cold_step;
    c1.offset = (size_t)copy * b->cold_step;
    switch (b->c->op) {
    case LM_OP_MUL_MAT:
        return o->mul_mat(be, &c0, &t[1], &t[2]);
    case LM_OP_GET_ROWS:
        return o->get_rows(be, &c0, &t[1], &t[2]);
    case LM_OP_RMS_NORM:
        return o->rms_norm(be, &t[0], b->c->mode ? &t[1] : NULL, 1e-5f, &t[2]);
    case LM_OP_ROPE:
        return o->rope(be, &t[0], &t[1], &b->rope);
    case LM_OP_KV_STORE:
        return o->kv_store(be, &t[0], &t[1], &t[2], &t[3], &t[4], &t[5]);
    case LM_OP_ATTENTION:
        return o->attention(be, &t[2], &c0, &c1, &t[3], &t[4], &b->attn, &t[5]);
    case LM_OP_SWIGLU:
        return o->swiglu(be, &t[0], &t[1], &t[2]);
    case LM_OP_GEGLU:
        return o->geglu(be, &t[0], &t[1], &t[2]);
    case LM_OP_ADD:
        return o->add(be, &t[0], &t[1], &t[2]);
    case LM_OP_MUL:
        return o->mul(be, &t[0], &t[1], &t[2]);
    case LM_OP_SCALE:
        return o->scale(be, &t[0], 0.37f, &t[2]);
    case LM_OP_ARGMAX:
        return o->argmax(be, &t[0], &t[1]);
    case LM_OP_COPY:
        return o->copy(be, &t[0], &t[1]);
    default:
        return lm__error(LM_ERR_INVALID_ARG, "bench: unknown op %d", (int)b->c->op);
    }
}

static lm_status lm__bop_timed(lm__bop *b, int copy) {
    const lm_backend_ops *o = b->be->ops;
    if (o->begin) LM_TRY(o->begin(b->be));
    LM_TRY(lm__bop_call(b, copy));
    if (o->end) LM_TRY(o->end(b->be));
    if (o->sync) LM_TRY(o->sync(b->be));
    return LM_OK;
}

/* The least traffic and arithmetic a call needs (see lm_bench_op_result). */
static void lm__bop_cost(const lm_op_case *c, double *bytes, double *flops) {
    const double K = (double)c->k, N = (double)c->n, M = (double)c->m, n = K * N * M;
    const double rs = (double)lm_row_size(c->type, c->k);
    *flops = 0;
    switch (c->op) {
    case LM_OP_MUL_MAT:
        *bytes = rs * N + 4 * K * M + 4 * N * M;
        *flops = 2 * K * N * M;
        break;
    case LM_OP_GET_ROWS:
        *bytes = rs * M + 4 * K * M + 4 * M;
        break;
    case LM_OP_RMS_NORM:
        *bytes = 8 * n + (c->mode ? 4 * K : 0);
        *flops = 3 * n;
        break;
    case LM_OP_ROPE:
        *bytes = 8 * n + 4 * M;
        *flops = 3 * (double)c->n_rot * N * M; /* 4 mul + 2 add per rotated pair */
        break;
    case LM_OP_KV_STORE:
        *bytes = 2 * (4 * K * c->n_kv_head * M + rs * c->n_kv_head * M) + 8 * M;
        break;
    case LM_OP_ATTENTION: {
        /* each sequence's cache is read once over the span its tokens attend to; every
         * (token, head) does q.k and p*v over its positions: 4 D flops per position */
        const int64_t S = c->n_seq > 0 ? c->n_seq : 1;
        double kv = 0, work = 0;
        for (int64_t s = 0; s < S; s++) {
            int64_t L = c->n_ctx - 7 * s > 1 ? c->n_ctx - 7 * s : 1, cnt = 0, lo = L;
            for (int64_t i = s; i < c->m; i += S) cnt++;
            for (int64_t j = 0; j < cnt; j++) {
                int64_t p = L - cnt + j,
                        p0 = c->window > 0 && p - c->window + 1 > 0 ? p - c->window + 1 : 0;
                lo = p0 < lo ? p0 : lo;
                work += (double)(p - p0 + 1);
            }
            if (cnt) kv += (double)(L - lo) * 2 * rs * c->n_kv_head;
        }
        *bytes = kv + 8 * K * N * M + 8 * M;
        *flops = 4 * K * N * work;
        break;
    }
    case LM_OP_ARGMAX:
        *bytes = 4 * K * M + 4 * M;
        break;
    case LM_OP_COPY:
        *bytes = ((double)lm_row_size(c->src_type, c->k) + rs) * N * M;
        break;
    case LM_OP_SWIGLU:
    case LM_OP_GEGLU:
        *bytes = 12 * n;
        *flops = 4 * n; /* the activation's exp/tanh counted as a few operations */
        break;
    case LM_OP_SCALE:
        *bytes = 8 * n;
        *flops = n;
        break;
    default: { /* add, mul: b is as large as its broadcast shape */
        double nb = 1;
        const double ne[3] = {K, N, M};
        for (int i = 0; i < 3; i++) nb *= (c->mode >> i) & 1 ? 1 : ne[i];
        *bytes = 8 * n + 4 * nb;
        *flops = n;
        break;
    }
    }
}

lm_bench_ops_params lm_bench_ops_default_params(void) {
    lm_bench_ops_params p = {NULL, 0, NULL, 0.25, 0, -1};
    return p;
}

static bool lm__bop_match(const lm_op_case *c, const char *filter) {
    char d[192];
    return !filter || !*filter || strstr(lm_op_case_str(c, d, sizeof d), filter) != NULL;
}

int32_t lm_bench_ops_count(const char *filter) {
    int32_t n = 0;
    for (int i = 0; i < lm_op_n_bench_cases; i++) n += lm__bop_match(&lm_op_bench_cases[i], filter);
    return n;
}

/* Time one case: two warm-up calls (the uploads already touched every copy), then calls
 * until min_time has passed (at least 5). */
static lm_status lm__bop_run(lm__bop *b, double min_time_s, lm_bench_op_result *out) {
    for (int i = 0; i < 2; i++) LM_TRY(lm__bop_timed(b, i % b->n_copies));
    double sum = 0, sum2 = 0, t_start = lm__time_ms();
    int64_t n = 0;
    while (n < 5 || (lm__time_ms() - t_start < min_time_s * 1e3 && n < 10000000)) {
        double t0 = lm__time_ms();
        LM_TRY(lm__bop_timed(b, (int)(n % b->n_copies)));
        double dt = (lm__time_ms() - t0) * 1e3;
        sum += dt, sum2 += dt * dt, n++;
    }
    out->n_calls = (int32_t)n;
    out->t_mean_us = sum / (double)n;
    double var = (sum2 - sum * sum / (double)n) / (double)(n > 1 ? n - 1 : 1);
    out->t_sd_us = var > 0 ? sqrt(var) : 0;
    return LM_OK;
}

lm_status lm_bench_ops(const lm_bench_ops_params *params, lm_bench_op_fn fn, void *user) {
    lm_bench_ops_params p = params ? *params : lm_bench_ops_default_params();
    const int32_t n_cases = lm_bench_ops_count(p.filter);
    if (n_cases == 0)
        return lm__error(LM_ERR_INVALID_ARG,
                         "bench: no op case matches '%s' (cases read like 'mul_mat Q4_1 k=576 "
                         "n=1536 m=1'; lumen bench --ops -o csv lists them all)",
                         p.filter ? p.filter : "");
    if (p.min_time_s <= 0) p.min_time_s = 0.25;
    if (p.cold_bytes == 0) {
        p.cold_bytes = lm__bench_llc_bytes() * 4;
        if (p.cold_bytes < (size_t)128 << 20) p.cold_bytes = (size_t)128 << 20;
    }
    lm_backend_config cfg = {p.n_threads, p.device < 0 ? -1 : p.device};
    lm_backend *be = NULL;
    LM_TRY(lm_backend_create(p.backend ? p.backend : "cpu", &cfg, &be));
    lm__brng rng = {0x9e3779b97f4a7c15ull};
    lm_status s = LM_OK;
    int32_t done = 0;
    for (int i = 0; s == LM_OK && i < lm_op_n_bench_cases; i++) {
        const lm_op_case *c = &lm_op_bench_cases[i];
        if (!lm__bop_match(c, p.filter)) continue;
        lm__bop b = {.c = c, .be = be};
        lm_bench_op_result r;
        memset(&r, 0, sizeof r);
        lm_op_case_str(c, r.desc, sizeof r.desc);
        r.op = lm_op_name(c->op);
        r.type = lm_type_get((uint32_t)c->type).name;
        r.k = c->k, r.n = c->n, r.m = c->m;
        snprintf(r.device, sizeof r.device, "%s",
                 be->ops->device_name ? be->ops->device_name(be) : "unknown");
        s = lm__bop_setup(&b, p.cold_bytes, &rng);
        if (s == LM_OK) s = lm__bop_run(&b, p.min_time_s, &r);
        if (s != LM_OK) {
            char prefix[240];
            snprintf(prefix, sizeof prefix, "bench %s: ", r.desc);
            lm__error_prefix(prefix);
        }
        r.n_copies = b.n_copies;
        lm__bop_cost(c, &r.bytes, &r.flops);
        lm__bop_free(&b);
        if (s == LM_OK && fn && !fn(&r, done, n_cases, user))
            s = lm__error(LM_ERR_INTERRUPTED, "bench: stopped after %d of %d op cases", done + 1,
                          n_cases);
        done++;
    }
    lm_backend_destroy(be);
    return s;
}
