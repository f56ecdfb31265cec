/* Causal GQA attention over the KV cache, flash style: per (token, head) one pass over the
 * cache positions with an online softmax (running max m, running sum l, running output
 * acc), so the score matrix is never materialised.
 * q F32 [head_dim, n_head, n_tok]; k_cache, v_cache [head_dim, n_kv_head, n_ctx, n_seq]
 * F16, F32 or Q8_0 (may be views: any nb[1..3]); pos, seq I32 [n_tok]; dst like q. A
 * cache row is converted to floats exactly (a Q8_0 value d * q, an f16 times an 8-bit
 * integer, fits a float), so the arithmetic is that of an F32 cache. Score:
 * s = scale * (q . k); with softcap c: s = c * tanh(s / c) (as ggml's flash attention). */
#include "cpu_internal.h"

#include "../../runtime/quant.h"

#include <math.h>

typedef struct {
    lm__cpu *c;
    const lm_tensor *q, *k, *v, *dst;
    const int32_t *pos, *seq;
    lm_attn_params p;
    int nh; /* heads per task: a divisor of the kv group size, <= LM__ATTN_NH */
    int tb; /* batch tokens per task, <= LM__ATTN_TB */
} lm__attn_job;

#define LM__ATTN_TB 8 /* tokens per block: 8 x 4 heads x 256 floats of output stay in L2 */
#define LM__ATTN_NH 8
#define LM__ATTN_PT 8 /* cache positions per tile: their K and V rows stay in L1 */

/* Cache row (kv head h, position p, sequence s) for the kernels: F32 and F16 rows in place
 * (the F16 kernels convert as they read), Q8_0 rows converted (exactly) into buf. */
static const void *lm__attn_row(const lm_tensor *cache, int64_t h, int64_t p, int64_t s,
                                float *buf) {
    const void *r = lm__cpu_row(cache, h, p, s);
    if (cache->type != LM_TYPE_Q8_0) return r;
    /* Q8_0, as lm_dequant_q8_0_block, inline so the compiler vectorises the 32 products */
    const lm_block_q8_0 *b = r;
    for (int64_t i = 0; i < cache->ne[0] / LM_QK8_0; i++) {
        const float d = lm_fp16_to_fp32(b[i].d);
        float *o = buf + i * LM_QK8_0;
        for (int k = 0; k < LM_QK8_0; k++) o[k] = (float)b[i].qs[k] * d;
    }
    return buf;
}

/* The cache rows of one position lie a head stride apart from the next position's, and
 * after a decode step streamed the weights they are no longer cached: fetch the next
 * tile's rows while this one is computed. */
static inline void lm__attn_prefetch(const lm_tensor *cache, int64_t h, int64_t p, int64_t s,
                                     size_t row_bytes) {
    const char *r = lm__cpu_row(cache, h, p, s);
    for (size_t o = 0; o < row_bytes; o += 64) __builtin_prefetch(r + o);
}

/* The running state of one (token, head): max m, sum l, output acc. */
typedef struct {
    float m, l;
    float *acc;
} lm__attn_state;

/* Cache positions [a, b] (k[i], v[i] the rows of position a + i) into the state of one
 * (token, head), in the order a token alone would do it, so neither blocking tokens nor
 * tiling positions changes a result. The scalar pass computes each score and the running
 * max and sum, and leaves per position the factor acc is rescaled by (1: none) and the
 * weight of its V row; attn_pv then applies them to acc in that order, in registers. */
static void lm__attn_steps(const lm__attn_job *j, const float *q, const void *const *k,
                           const void *const *v, int n, int64_t D, lm__attn_state *st) {
    const lm__cpu_kernels *kern = j->c->kern;
    /* F16 rows are read in place, the others are floats (F32, converted Q8_0); K and V
     * may differ */
    const bool f16 = j->k->type == LM_TYPE_F16, vf16 = j->v->type == LM_TYPE_F16;
    float c[LM__ATTN_PT], w[LM__ATTN_PT], dot[LM__ATTN_PT];
    /* lm__cpu_dot's order (the level's kernels; F16 and Q8_0 are converted exactly) */
    int i = 0;
    for (; i + 4 <= n; i += 4)
        if (f16)
            kern->fdot4_f16((const uint16_t *const *)(k + i), q, D, dot + i);
        else
            kern->fdot4((const float *const *)(k + i), q, D, dot + i);
    for (; i < n; i++) dot[i] = kern->fdot[f16 ? LM_TYPE_F16 : LM_TYPE_F32](k[i], q, D);
    for (i = 0; i < n; i++) {
        float s = dot[i] * j->p.scale;
        if (j->p.softcap > 0.0f) s = j->p.softcap * tanhf(s / j->p.softcap);
        c[i] = 1.0f;
        /* rescale what we have when the max grows; e^(s - m) <= 1 keeps exp in range */
        if (s > st->m) {
            c[i] = expf(st->m - s);
            st->l *= c[i];
            st->m = s;
        }
        w[i] = expf(s - st->m);
        st->l += w[i];
    }
    if (vf16)
        kern->attn_pv_f16(st->acc, (const uint16_t *const *)v, c, w, n, D);
    else
        kern->attn_pv(st->acc, (const float *const *)v, c, w, n, D);
}

static int32_t lm__attn_lo(const lm__attn_job *j, int32_t pos) {
    return j->p.window > 0 && pos - j->p.window + 1 > 0 ? pos - j->p.window + 1 : 0;
}

/* Tokens [t0, t0 + nt) x heads [h0, h0 + nh), all of one sequence at consecutive
 * positions (nt = 1 otherwise) and all reading kv head kvh: the K and V rows of a tile of
 * LM__ATTN_PT positions are read (Q8_0: converted) once for the whole block and stay in L1 while
 * every (token, head) of the block runs its online softmax over the tile's positions it sees. */
static void lm__attn_block(const lm__attn_job *j, int64_t t0, int nt, int64_t h0, int nh,
                           float *scr) {
    const int64_t D = j->q->ne[0];
    const int64_t kvh = h0 / (j->q->ne[1] / j->k->ne[1]);
    const int32_t seq = j->seq[t0], first = lm__attn_lo(j, j->pos[t0]);
    const int32_t last = j->pos[t0 + nt - 1];
    lm__attn_state st[LM__ATTN_TB * LM__ATTN_NH];
    float *kb = scr, *vb = kb + LM__ATTN_PT * D, *acc = vb + LM__ATTN_PT * D; /* nt x nh x D */
    const size_t rbk = lm_row_size(j->k->type, D),
                 rbv = lm_row_size(j->v->type, D); /* a row's bytes */
    for (int i = 0; i < nt * nh; i++) st[i] = (lm__attn_state){-INFINITY, 0.0f, acc + i * D};
    for (int64_t d = 0; d < nt * nh * D; d++) acc[d] = 0.0f;
    for (int32_t p0 = first; p0 <= last; p0 += LM__ATTN_PT) {
        const int np = last - p0 + 1 < LM__ATTN_PT ? last - p0 + 1 : LM__ATTN_PT;
        const void *k[LM__ATTN_PT], *v[LM__ATTN_PT];
        for (int i = 0; i < np; i++) {
            if (p0 + i + LM__ATTN_PT <= last) {
                lm__attn_prefetch(j->k, kvh, p0 + i + LM__ATTN_PT, seq, rbk);
                lm__attn_prefetch(j->v, kvh, p0 + i + LM__ATTN_PT, seq, rbv);
            }
            k[i] = lm__attn_row(j->k, kvh, p0 + i, seq, kb + i * D);
            v[i] = lm__attn_row(j->v, kvh, p0 + i, seq, vb + i * D);
        }
        for (int ti = 0; ti < nt; ti++) {
            const int32_t pos = j->pos[t0 + ti], lo = lm__attn_lo(j, pos);
            const int32_t a = lo > p0 ? lo : p0, b = pos < p0 + np - 1 ? pos : p0 + np - 1;
            if (a > b) continue;
            for (int i = 0; i < nh; i++) {
                const float *q = (const float *)lm__cpu_row(j->q, h0 + i, t0 + ti, 0);
                lm__attn_steps(j, q, k + (a - p0), v + (a - p0), b - a + 1, D, &st[ti * nh + i]);
            }
        }
    }
    for (int ti = 0; ti < nt; ti++)
        for (int i = 0; i < nh; i++) {
            const lm__attn_state *x = &st[ti * nh + i];
            float *out = (float *)lm__cpu_row(j->dst, h0 + i, t0 + ti, 0);
            const float inv = 1.0f / x->l; /* l >= 1: the max term contributes e^0 */
            for (int64_t d = 0; d < D; d++) out[d] = x->acc[d] * inv;
        }
}

/* Tokens of [t0, t0 + n) from t0 on that share t0's sequence at consecutive positions. */
static int lm__attn_run(const lm__attn_job *j, int64_t t0, int64_t n) {
    int nt = 1;
    while (nt < n && j->seq[t0 + nt] == j->seq[t0] && j->pos[t0 + nt] == j->pos[t0] + nt) nt++;
    return nt;
}

/* Tasks are (block of LM__ATTN_TB batch tokens, run of nh heads of one kv group); a block
 * is split where the sequence or the position run changes. */
static void lm__attn_task(void *ctx, int64_t b, int64_t e, int ith) {
    const lm__attn_job *j = ctx;
    const int64_t runs = j->q->ne[1] / j->nh, T = j->q->ne[2];
    float *scr = lm__cpu_scratch(j->c, ith);
    for (int64_t i = b; i < e; i++) {
        const int64_t tb = (i / runs) * j->tb, te = tb + j->tb < T ? tb + j->tb : T;
        for (int64_t t = tb; t < te;) {
            const int nt = lm__attn_run(j, t, te - t);
            lm__attn_block(j, t, nt, (i % runs) * j->nh, j->nh, scr);
            t += nt;
        }
    }
}

static lm_status lm__attn_check_cache(const char *name, const lm_tensor *q, const lm_tensor *c) {
    LM_TRY(lm__cpu_check("attention", name, c, -1));
    if (c->type != LM_TYPE_F16 && c->type != LM_TYPE_F32 && c->type != LM_TYPE_Q8_0)
        return lm__error(LM_ERR_INVALID_ARG, "attention: %s type %s, expected F16, F32 or Q8_0",
                         name, lm_type_get((uint32_t)c->type).name);
    return lm_op_check_attn_cache(name, q, c);
}

static lm_status lm__attn_check_ids(const lm_tensor *q, const lm_tensor *k, const int32_t *pos,
                                    const int32_t *seq) {
    for (int64_t t = 0; t < q->ne[2]; t++) {
        if (pos[t] < 0 || pos[t] >= k->ne[2])
            return lm__error(LM_ERR_INVALID_ARG,
                             "attention: pos[%lld] = %d is outside [0, n_ctx = %lld)", (long long)t,
                             pos[t], (long long)k->ne[2]);
        if (seq[t] < 0 || seq[t] >= k->ne[3])
            return lm__error(LM_ERR_INVALID_ARG,
                             "attention: seq[%lld] = %d is outside [0, n_seq = %lld)", (long long)t,
                             seq[t], (long long)k->ne[3]);
    }
    return LM_OK;
}

lm_status lm__cpu_attention(lm_backend *be, const lm_tensor *q, const lm_tensor *k_cache,
                            const lm_tensor *v_cache, const lm_tensor *pos, const lm_tensor *seq,
                            const lm_attn_params *p, lm_tensor *dst) {
    const char *op = "attention";
    LM_TRY(lm__cpu_check(op, "q", q, LM_TYPE_F32));
    LM_TRY(lm__cpu_check(op, "dst", dst, LM_TYPE_F32));
    LM_TRY(lm__cpu_check_same_shape(op, "q", q, "dst", dst));
    if (q->ne[3] != 1)
        return lm__error(LM_ERR_INVALID_ARG, "attention: q ne[3] = %lld, expected 1",
                         (long long)q->ne[3]);
    LM_TRY(lm__attn_check_cache("k_cache", q, k_cache));
    LM_TRY(lm__attn_check_cache("v_cache", q, v_cache));
    LM_TRY(lm__cpu_check_same_shape(op, "k_cache", k_cache, "v_cache", v_cache));
    LM_TRY(lm__cpu_check(op, "pos", pos, LM_TYPE_I32));
    LM_TRY(lm__cpu_check(op, "seq", seq, LM_TYPE_I32));
    LM_TRY(lm_op_check_attn_args(q, pos, seq, p));
    const int32_t *ps = (const int32_t *)lm__cpu_data(pos);
    const int32_t *sq = (const int32_t *)lm__cpu_data(seq);
    LM_TRY(lm__attn_check_ids(q, k_cache, ps, sq));
    lm__cpu *c = lm__cpu_ctx(be);
    /* as many heads of a group per task, and tokens per block, as still leave ~4 tasks per
     * thread; one for a single token, whose cost is reading the cache rows from memory, so
     * that a group's heads share each row's read rather than balance the threads */
    const int64_t H = q->ne[1], T = q->ne[2], group = H / k_cache->ne[1];
    const int64_t want = (T == 1 ? 1 : 4) * (int64_t)c->n_threads;
    int64_t nh = group < LM__ATTN_NH ? group : LM__ATTN_NH;
    while (nh > 1 && (group % nh != 0 || T * (H / nh) < want)) nh--;
    int64_t tb = LM__ATTN_TB;
    while (tb > 1 && ((T + tb - 1) / tb) * (H / nh) < want) tb /= 2;
    LM_TRY(lm__cpu_reserve(c, (size_t)(tb * nh + 2 * LM__ATTN_PT) * (size_t)q->ne[0]));
    lm__attn_job j = {c, q, k_cache, v_cache, dst, ps, sq, *p, (int)nh, (int)tb};
    lm__pool_run(c->pool, lm__attn_task, &j, ((T + tb - 1) / tb) * (H / nh));
    return LM_OK;
}
