/* Contexts: KV cache slots, scratch, batch validation and lm_decode. */
#include "context.h"

#include "lm_internal.h"
#include "quant.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LM_ALIGN 256
/* Device bytes for logits rows: a 262k-token vocabulary (Gemma 3) needs 1 MiB per row, so
 * the output head runs in chunks of rows instead of sizing logits for n_batch rows. */
#define LM_LOGITS_SCRATCH (64u << 20)

lm_context_params lm_context_default_params(void) {
    lm_context_params p = {
        .n_ctx = 0, .n_batch = 512, .n_seq_max = 1, .n_threads = 0, .kv_type = LM_KV_DEFAULT};
    return p;
}

static bool lm__ieq(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return false;
    return *a == *b;
}

lm_status lm_kv_type_from_name(const char *name, lm_kv_type *out) {
    if (!out) return lm__error(LM_ERR_INVALID_ARG, "lm_kv_type_from_name: NULL out");
    if (name && lm__ieq(name, "f16")) return *out = LM_KV_F16, LM_OK;
    if (name && lm__ieq(name, "q8_0")) return *out = LM_KV_Q8_0, LM_OK;
    return lm__error(LM_ERR_INVALID_ARG, "KV cache type '%s' is not one of: f16, q8_0",
                     name ? name : "(null)");
}

const char *lm_kv_type_name(lm_kv_type t) {
    return t == LM_KV_F16 ? "f16" : t == LM_KV_Q8_0 ? "q8_0" : NULL;
}

/* The cache's element type: the parameter, else LUMEN_KV_TYPE (until every tool has a
 * --kv-type flag), else F16. */
static lm_status lm__kv_type(const lm_context *c, const lm_context_params *p, lm_type *out) {
    lm_kv_type t = p->kv_type;
    if (t == LM_KV_DEFAULT) {
        const char *env = getenv("LUMEN_KV_TYPE");
        t = LM_KV_F16;
        if (env && *env && lm_kv_type_from_name(env, &t) != LM_OK)
            return lm__error(LM_ERR_INVALID_ARG, "LUMEN_KV_TYPE=%s: expected f16 or q8_0", env);
    }
    if (t != LM_KV_F16 && t != LM_KV_Q8_0)
        return lm__error(LM_ERR_INVALID_ARG, "kv_type %d: expected LM_KV_F16 or LM_KV_Q8_0",
                         (int)t);
    const int32_t hd = c->model->hp.head_dim;
    if (t == LM_KV_Q8_0 && hd % 32 != 0)
        return lm__error(LM_ERR_UNSUPPORTED,
                         "a q8_0 KV cache needs head_dim %% 32 == 0 (this model: %d); use f16", hd);
    /* the CUDA kernels read F16/F32 caches only: refuse here, not at the first decode */
    if (t == LM_KV_Q8_0 && strcmp(c->be->ops->name, "cuda") == 0)
        return lm__error(LM_ERR_UNSUPPORTED,
                         "the CUDA backend has no q8_0 KV cache yet; use --kv-type f16");
    *out = (lm_type)t; /* lm_kv_type is numbered as GGUF types */
    return LM_OK;
}

static size_t lm__align(size_t n) {
    return (n + LM_ALIGN - 1) / LM_ALIGN * LM_ALIGN;
}

/* Lay out scratch tensors back to back; returns total bytes (buf may be NULL to size). */
static size_t lm__scratch_layout(lm_context *c, lm_buffer *buf) {
    const lm_hparams *hp = &c->model->hp;
    int64_t B = c->n_batch, hd = hp->head_dim;
    int64_t R = c->n_out_max;
    struct {
        lm_tensor *t;
        lm_type type;
        int64_t ne0, ne1;
    } items[] = {
        {&c->s.x, LM_TYPE_F32, hp->n_embd, B},
        {&c->s.xn, LM_TYPE_F32, hp->n_embd, B},
        {&c->s.q, LM_TYPE_F32, hd * hp->n_head, B},
        {&c->s.k, LM_TYPE_F32, hd * hp->n_head_kv, B},
        {&c->s.v, LM_TYPE_F32, hd * hp->n_head_kv, B},
        {&c->s.att, LM_TYPE_F32, hd * hp->n_head, B},
        {&c->s.o, LM_TYPE_F32, hp->n_embd, B},
        {&c->s.g, LM_TYPE_F32, hp->n_ff, B},
        {&c->s.u, LM_TYPE_F32, hp->n_ff, B},
        {&c->s.xs, LM_TYPE_F32, hp->n_embd, R},
        {&c->s.logits, LM_TYPE_F32, hp->n_vocab, R},
        {&c->s.ids, LM_TYPE_I32, B, 1}, /* index vectors [B] */
        {&c->s.pos, LM_TYPE_I32, B, 1},
        {&c->s.seq, LM_TYPE_I32, B, 1},
        {&c->s.out_idx, LM_TYPE_I32, B, 1},
    };
    size_t off = 0;
    for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
        lm_tensor_init(items[i].t, buf, off, items[i].type, items[i].ne0, items[i].ne1, 1, 1);
        off += lm__align(lm_tensor_nbytes(items[i].t));
    }
    return off;
}

static lm_status lm__alloc_kv(lm_context *c, lm_type type) {
    const lm_hparams *hp = &c->model->hp;
    int L = hp->n_layer;
    c->k_cache = LM_CALLOC((size_t)L, sizeof *c->k_cache);
    c->v_cache = LM_CALLOC((size_t)L, sizeof *c->v_cache);
    if (!c->k_cache || !c->v_cache) return lm__error(LM_ERR_NOMEM, "cannot allocate KV views");
    uint64_t per = 0, total = 0;
    const uint64_t row = lm_row_size(type, hp->head_dim); /* one head at one position */
    if (!lm__mul_ok(row * (uint64_t)hp->n_head_kv, (uint64_t)c->n_ctx, &per) ||
        !lm__mul_ok(per, (uint64_t)c->n_seq, &per) ||
        !lm__mul_ok(lm__align(per), 2u * (uint64_t)L, &total) || total > SIZE_MAX / 2)
        return lm__error(LM_ERR_LIMIT, "KV cache for n_ctx=%d x %d sequences overflows", c->n_ctx,
                         c->n_seq);
    size_t avail = c->be->ops->device_memory ? c->be->ops->device_memory(c->be) : 0;
    if (avail && total > avail)
        return lm__error(LM_ERR_NOMEM,
                         "the KV cache needs %.1f MiB (n_ctx=%d, %d sequences) but the device "
                         "has %.1f MiB available; lower --ctx",
                         total / 1048576.0, c->n_ctx, c->n_seq, avail / 1048576.0);
    LM_TRY(c->be->ops->buffer_alloc(c->be, (size_t)total, &c->kv_buf));
    size_t off = 0;
    for (int il = 0; il < L; il++) {
        lm_tensor_init(&c->k_cache[il], c->kv_buf, off, type, hp->head_dim, hp->n_head_kv, c->n_ctx,
                       c->n_seq);
        off += lm__align(per);
        lm_tensor_init(&c->v_cache[il], c->kv_buf, off, type, hp->head_dim, hp->n_head_kv, c->n_ctx,
                       c->n_seq);
        off += lm__align(per);
    }
    return LM_OK;
}

static lm_status lm__context_init(lm_context *c, const lm_context_params *p) {
    const lm_hparams *hp = &c->model->hp;
    c->n_ctx = p->n_ctx > 0 ? p->n_ctx : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
    c->n_batch = p->n_batch > 0 ? p->n_batch : 512;
    c->n_seq = p->n_seq_max > 0 ? p->n_seq_max : 1;
    if (c->n_ctx > (1 << 24) || c->n_batch > (1 << 16) || c->n_seq > 4096)
        return lm__error(LM_ERR_LIMIT,
                         "context parameters too large (n_ctx=%d, n_batch=%d, "
                         "n_seq_max=%d)",
                         c->n_ctx, c->n_batch, c->n_seq);
    if (c->n_ctx > hp->n_ctx_train)
        lm__log(LM_LOG_WARN, "n_ctx %d exceeds the model's training context %d", c->n_ctx,
                hp->n_ctx_train);
    /* LongRoPE: the short factors cover the original context, the long ones beyond it */
    const lm_model *m = c->model;
    c->rope_factors = m->rope_freqs;
    if (m->rope_short) c->rope_factors = c->n_ctx > hp->n_ctx_orig ? m->rope_long : m->rope_short;
    /* rows of logits the device computes at once (the output head runs in chunks) */
    size_t row_bytes = (size_t)hp->n_vocab * sizeof(float);
    size_t rows = LM_LOGITS_SCRATCH / row_bytes;
    c->n_out_max = rows < 1 ? 1 : rows > (size_t)c->n_batch ? c->n_batch : (int32_t)rows;
    lm_type kv_type = LM_TYPE_F16;
    LM_TRY(lm__kv_type(c, p, &kv_type));
    LM_TRY(lm__alloc_kv(c, kv_type));
    size_t scratch = lm__scratch_layout(c, NULL);
    LM_TRY(c->be->ops->buffer_alloc(c->be, scratch, &c->scratch_buf));
    lm__scratch_layout(c, c->scratch_buf);
    c->seq_len = LM_CALLOC((size_t)c->n_seq, sizeof *c->seq_len);
    c->seq_saved = LM_CALLOC((size_t)c->n_seq, sizeof *c->seq_saved);
    c->logits = LM_MALLOC(row_bytes); /* one row; grows to the most rows a batch asks for */
    c->logits_cap = 1;
    c->host_i32 = LM_MALLOC(4 * (size_t)c->n_batch * sizeof(int32_t));
    if (!c->seq_len || !c->seq_saved || !c->logits || !c->host_i32)
        return lm__error(LM_ERR_NOMEM, "cannot allocate context host buffers");
    return LM_OK;
}

lm_status lm_context_create(lm_model *model, const lm_context_params *params, lm_context **out) {
    if (!model || !out) return lm__error(LM_ERR_INVALID_ARG, "lm_context_create: NULL argument");
    *out = NULL;
    if (!model->be)
        return lm__error(LM_ERR_INVALID_ARG, "model was loaded with vocab_only: no weights");
    lm_context_params p = params ? *params : lm_context_default_params();
    lm_context *c = LM_CALLOC(1, sizeof *c);
    if (!c) return lm__error(LM_ERR_NOMEM, "cannot allocate a context");
    c->model = model;
    c->be = model->be;
    lm_status s = lm__context_init(c, &p);
    if (s != LM_OK) {
        lm_context_free(c);
        return s;
    }
    c->perf.t_load_ms = model->t_load_ms;
    *out = c;
    return LM_OK;
}

void lm_context_free(lm_context *c) {
    if (!c) return;
    if (c->kv_buf) c->be->ops->buffer_free(c->be, c->kv_buf);
    if (c->scratch_buf) c->be->ops->buffer_free(c->be, c->scratch_buf);
    LM_FREE(c->k_cache);
    LM_FREE(c->v_cache);
    LM_FREE(c->seq_len);
    LM_FREE(c->seq_saved);
    LM_FREE(c->batch_pos);
    LM_FREE(c->logits);
    LM_FREE(c->host_i32);
    LM_FREE(c);
}

int32_t lm_context_n_ctx(const lm_context *c) {
    return c ? c->n_ctx : 0;
}

void lm_context_set_abort(lm_context *c, lm_abort_fn fn, void *user) {
    if (!c) return;
    c->abort_fn = fn;
    c->abort_user = user;
}

lm_perf lm_context_perf(const lm_context *c) {
    lm_perf z = {0};
    return c ? c->perf : z;
}

void lm_context_perf_reset(lm_context *c) {
    if (!c) return;
    double t = c->perf.t_load_ms;
    memset(&c->perf, 0, sizeof c->perf);
    c->perf.t_load_ms = t;
}

lm_batch lm_batch_simple(const lm_token *tokens, int32_t n) {
    lm_batch b = {.n_tokens = n, .token = tokens, .pos = NULL, .seq_id = NULL, .logits = NULL};
    return b;
}

/* ---- decode --------------------------------------------------------------------------- */

/* Check every token, sequence and position before anything runs; fill pos/seq arrays. */
static lm_status lm__check_batch(lm_context *c, const lm_batch *b, int32_t *pos, int32_t *seq,
                                 int32_t *n_out) {
    int32_t nv = c->model->hp.n_vocab;
    if (b->n_tokens <= 0 || !b->token)
        return lm__error(LM_ERR_INVALID_ARG, "lm_decode: empty batch");
    int32_t outs = 0;
    for (int32_t i = 0; i < b->n_tokens; i++) {
        int32_t t = b->token[i], sq = b->seq_id ? b->seq_id[i] : 0;
        if (t < 0 || t >= nv)
            return lm__error(LM_ERR_INVALID_ARG,
                             "lm_decode: token %d at index %d is outside "
                             "the vocabulary (%d tokens)",
                             t, i, nv);
        if (sq < 0 || sq >= c->n_seq)
            return lm__error(LM_ERR_INVALID_ARG,
                             "lm_decode: sequence id %d at index %d is "
                             "outside [0, %d) (n_seq_max)",
                             sq, i, c->n_seq);
        seq[i] = sq;
        bool want = b->logits ? b->logits[i] != 0 : i == b->n_tokens - 1;
        outs += want;
    }
    /* positions: each sequence continues from its cached length, contiguously; seq_saved
     * serves as the running counter (lm_decode refills it after this check) */
    memcpy(c->seq_saved, c->seq_len, (size_t)c->n_seq * sizeof(int32_t));
    for (int32_t i = 0; i < b->n_tokens; i++) {
        int32_t expect = c->seq_saved[seq[i]]++; /* next position of this sequence */
        int32_t p = b->pos ? b->pos[i] : expect;
        if (p != expect)
            return lm__error(LM_ERR_INVALID_ARG,
                             "lm_decode: token %d of sequence %d has "
                             "position %d, expected %d",
                             i, seq[i], p, expect);
        if (p >= c->n_ctx)
            return lm__error(LM_ERR_CONTEXT_FULL,
                             "sequence %d needs position %d but the "
                             "context holds %d positions (n_ctx)",
                             seq[i], p, c->n_ctx);
        pos[i] = p;
    }
    if (outs > c->n_batch)
        return lm__error(LM_ERR_LIMIT,
                         "lm_decode: %d tokens ask for logits; at most %d "
                         "(n_batch)",
                         outs, c->n_batch);
    *n_out = outs;
    return LM_OK;
}

/* Gemma 2's final soft-cap, cap * tanh(logit / cap), on the downloaded rows: monotonic, so
 * a device-side argmax of the uncapped logits still agrees. */
static void lm__softcap_logits(float *lg, size_t n, float cap) {
    for (size_t i = 0; i < n; i++) lg[i] = cap * tanhf(lg[i] / cap);
}

/* The logits of the chunk's n_out rows, n_out_max at a time, appended at host row *row. */
static lm_status lm__chunk_logits(lm_context *c, int32_t n_out, int32_t *row) {
    size_t nv = (size_t)c->model->hp.n_vocab;
    float cap = c->model->hp.final_softcap;
    for (int32_t r0 = 0; r0 < n_out; r0 += c->n_out_max) {
        int32_t n = n_out - r0 < c->n_out_max ? n_out - r0 : c->n_out_max;
        LM_TRY(lm_forward_logits(c, r0, n));
        float *dst = c->logits + (size_t)(*row + r0) * nv;
        LM_TRY(c->be->ops->download(c->be, c->scratch_buf, c->s.logits.offset, dst,
                                    (size_t)n * nv * sizeof(float)));
        if (cap > 0.0f) lm__softcap_logits(dst, (size_t)n * nv, cap);
    }
    *row += n_out;
    return LM_OK;
}

/* Run tokens [i0, i0+T) of the batch; logits rows appended at *row. */
static lm_status lm__decode_chunk(lm_context *c, const lm_batch *b, const int32_t *pos,
                                  const int32_t *seq, int32_t i0, int32_t T, int32_t *row) {
    const lm_backend_ops *op = c->be->ops;
    int32_t *ids = c->host_i32, *p = ids + c->n_batch, *sq = p + c->n_batch, *oi = sq + c->n_batch;
    int32_t n_out = 0;
    for (int32_t i = 0; i < T; i++) {
        ids[i] = b->token[i0 + i];
        p[i] = pos[i0 + i];
        sq[i] = seq[i0 + i];
        bool want = b->logits ? b->logits[i0 + i] != 0 : i0 + i == b->n_tokens - 1;
        if (want) oi[n_out++] = i;
    }
    size_t n4 = (size_t)T * sizeof(int32_t);
    LM_TRY(op->upload(c->be, c->scratch_buf, c->s.ids.offset, ids, n4));
    LM_TRY(op->upload(c->be, c->scratch_buf, c->s.pos.offset, p, n4));
    LM_TRY(op->upload(c->be, c->scratch_buf, c->s.seq.offset, sq, n4));
    if (n_out)
        LM_TRY(op->upload(c->be, c->scratch_buf, c->s.out_idx.offset, oi,
                          (size_t)n_out * sizeof(int32_t)));
    LM_TRY(lm_forward(c, T, n_out > 0));
    LM_TRY(lm__chunk_logits(c, n_out, row));
    /* the chunk's tokens are now cached */
    for (int32_t i = 0; i < T; i++)
        if (pos[i0 + i] + 1 > c->seq_len[seq[i0 + i]]) c->seq_len[seq[i0 + i]] = pos[i0 + i] + 1;
    return LM_OK;
}

/* Host logits grow to the most rows a batch has asked for, then stay. */
static lm_status lm__reserve_logits(lm_context *c, int32_t rows) {
    if (rows <= c->logits_cap) return LM_OK;
    size_t nv = (size_t)c->model->hp.n_vocab;
    float *p = LM_REALLOC(c->logits, (size_t)rows * nv * sizeof(float));
    if (!p)
        return lm__error(LM_ERR_NOMEM, "lm_decode: cannot allocate logits for %d rows (%.1f MiB)",
                         rows, (double)rows * nv * sizeof(float) / 1048576.0);
    c->logits = p;
    c->logits_cap = rows;
    return LM_OK;
}

/* Per-batch position/sequence arrays grow to the largest batch seen, then stay. */
static lm_status lm__reserve_batch(lm_context *c, int32_t n) {
    if (n <= c->batch_cap) return LM_OK;
    int32_t *p = LM_REALLOC(c->batch_pos, 2 * (size_t)n * sizeof(int32_t));
    if (!p) return lm__error(LM_ERR_NOMEM, "lm_decode: cannot allocate %d positions", n);
    c->batch_pos = p;
    c->batch_cap = n;
    return LM_OK;
}

lm_status lm_decode(lm_context *c, const lm_batch *b) {
    if (!c || !b) return lm__error(LM_ERR_INVALID_ARG, "lm_decode: NULL argument");
    double t0 = lm__time_ms();
    LM_TRY(lm__reserve_batch(c, b->n_tokens > 0 ? b->n_tokens : 1));
    int32_t *pos = c->batch_pos, *seq = c->batch_pos + c->batch_cap;
    int32_t n_out = 0, row = 0;
    LM_TRY(lm__check_batch(c, b, pos, seq, &n_out));
    LM_TRY(lm__reserve_logits(c, n_out));
    memcpy(c->seq_saved, c->seq_len, (size_t)c->n_seq * sizeof(int32_t));
    c->n_logits = 0;
    lm_status s = LM_OK;
    for (int32_t i0 = 0; s == LM_OK && i0 < b->n_tokens; i0 += c->n_batch) {
        int32_t T = b->n_tokens - i0 < c->n_batch ? b->n_tokens - i0 : c->n_batch;
        s = lm__decode_chunk(c, b, pos, seq, i0, T, &row);
    }
    if (s != LM_OK) {
        /* a failed decode leaves the cache as it was: entries past seq_len are ignored */
        memcpy(c->seq_len, c->seq_saved, (size_t)c->n_seq * sizeof(int32_t));
        return s;
    }
    c->n_logits = row;
    double dt = lm__time_ms() - t0;
    if (b->n_tokens > 1 || pos[0] == 0) { /* prompt work, not one generated token */
        c->perf.t_prefill_ms += dt;
        c->perf.n_prefill += b->n_tokens;
    } else {
        c->perf.t_decode_ms += dt;
        c->perf.n_decode += 1;
    }
    return LM_OK;
}

const float *lm_get_logits(lm_context *c, int32_t i) {
    if (!c) return NULL;
    if (i < 0) i += c->n_logits;
    if (i < 0 || i >= c->n_logits) {
        lm__error(LM_ERR_INVALID_ARG,
                  "lm_get_logits: index %d outside the %d rows of the last "
                  "batch",
                  i, c->n_logits);
        return NULL;
    }
    return c->logits + (size_t)i * (size_t)c->model->hp.n_vocab;
}

uint64_t lm_kv_read_bytes(const lm_context *c, int32_t n_past) {
    if (!c || n_past < 0) return 0;
    const lm_hparams *hp = &c->model->hp;
    uint64_t bytes = 0;
    for (int il = 0; il < hp->n_layer; il++) {
        int64_t n = (int64_t)n_past + 1;
        if (lm_hparams_swa(hp, il) && n > hp->n_swa) n = hp->n_swa;
        const lm_tensor *k = &c->k_cache[il], *v = &c->v_cache[il];
        bytes += (uint64_t)n * (uint64_t)k->ne[1] *
                 (lm_row_size(k->type, k->ne[0]) + lm_row_size(v->type, v->ne[0]));
    }
    return bytes;
}

int32_t lm_kv_seq_len(const lm_context *c, int32_t seq) {
    if (!c || seq < 0 || seq >= c->n_seq) return -1;
    return c->seq_len[seq];
}

lm_status lm_kv_seq_trim(lm_context *c, int32_t seq, int32_t p0) {
    if (!c || seq < 0 || seq >= c->n_seq || p0 < 0)
        return lm__error(LM_ERR_INVALID_ARG, "lm_kv_seq_trim: bad sequence %d or position %d", seq,
                         p0);
    if (p0 < c->seq_len[seq]) c->seq_len[seq] = p0;
    return LM_OK;
}

lm_status lm_kv_seq_copy(lm_context *c, int32_t src, int32_t dst, int32_t n) {
    if (!c || src < 0 || src >= c->n_seq || dst < 0 || dst >= c->n_seq || n < 0 ||
        n > c->seq_len[src])
        return lm__error(LM_ERR_INVALID_ARG,
                         "lm_kv_seq_copy: bad sequences %d -> %d or length "
                         "%d",
                         src, dst, n);
    if (src == dst || n == 0) {
        if (src != dst) c->seq_len[dst] = 0;
        return LM_OK;
    }
    const lm_hparams *hp = &c->model->hp;
    for (int il = 0; il < hp->n_layer; il++) {
        lm_tensor *caches[2] = {&c->k_cache[il], &c->v_cache[il]};
        for (int k = 0; k < 2; k++) {
            lm_tensor a = *caches[k], b;
            a.ne[2] = n;
            a.ne[3] = 1;
            b = a;
            a.offset += (size_t)src * caches[k]->nb[3];
            b.offset += (size_t)dst * caches[k]->nb[3];
            LM_TRY(c->be->ops->copy(c->be, &a, &b));
        }
    }
    c->seq_len[dst] = n;
    return LM_OK;
}
