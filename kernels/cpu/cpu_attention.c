/* Causal GQA attention over the KV cache, flash style: per (token, head) one pass over the
 * cache positions, tile by tile, with an online softmax (running max m, running sum l,
 * running output acc), so the score matrix is never materialised.
 * q F32 [head_dim, n_head, n_tok]; k_cache, v_cache [head_dim, n_kv_head, n_ctx, n_seq]
 * F16, F32 or Q8_0 (may be views: any nb[1..3]); pos, seq I32 [n_tok]; dst like q. A
 * cache row is converted to floats exactly (a Q8_0 value d * q, an f16 times an 8-bit
 * integer, fits a float), so the arithmetic is that of an F32 cache. Score:
 * s = scale * (q . k); with softcap c: s = c * tanh(s / c) (as ggml's flash attention). */
#include "cpu_internal.h"

#include "../../runtime/quant.h"

#include <math.h>
#include <string.h>

typedef struct {
    lm__cpu *c;
    const lm_tensor *q, *k, *v, *dst;
    const int32_t *pos, *seq;
    lm_attn_params p;
    int nh; /* heads per task: a divisor of the kv group size, <= LM__ATTN_NH */
    int tb; /* batch tokens per task, <= LM__ATTN_TB */
    /* one decode token split by chunks: its first chunk, and the chunks' states, D + 2
     * floats each (m, l, acc), [chunk][head] */
    int32_t c0;
    float *part;
} lm__attn_job;

#define LM__ATTN_TB 8 /* tokens per block: 2 states x 8 x 4 heads x 256 floats stay in L2 */
#define LM__ATTN_NH 8
/* A token's positions are taken in chunks of this many, from multiples of it, each from a
 * fresh softmax state, and the chunks' states merged in order: a decode token's chunks
 * can then run on different threads and give the same numbers as a batch token's. */
#define LM__ATTN_CH 256

/* A Q8_0 cache row converted (exactly) into buf for the kernels, as lm_dequant_q8_0_block,
 * inline so the compiler vectorises the 32 products; F32 and F16 rows are read in place
 * (the F16 kernels convert as they read) */
static const float *lm__attn_q8_row(const void *r, int64_t D, float *buf) {
    const lm_block_q8_0 *b = r;
    for (int64_t i = 0; i < D / LM_QK8_0; i++) {
        const float d = lm_fp16_to_fp32(b[i].d);
        float *o = buf + i * LM_QK8_0;
        for (int k = 0; k < LM_QK8_0; k++) o[k] = (float)b[i].qs[k] * d;
    }
    return buf;
}

/* The cache rows of one position lie a head stride apart from the next position's, and
 * after a decode step streamed the weights they are no longer cached: fetch the next
 * tile's rows while this one is computed, into L2 (prefetches into L1 fill its few miss
 * buffers and stall: ctx 4096 decode, one thread, 632 -> 492 us). */
static inline void lm__attn_prefetch(const char *r, size_t row_bytes) {
    for (size_t o = 0; o < row_bytes; o += 64) __builtin_prefetch(r + o, 0, 2);
}

/* The positions a token sees in one tile, slots [o, o + n) of it (rows k[i], v[i] of slot
 * o + i), into the states of the nh (token, head) pairs whose query rows are q[h]. A token's tiles
 * are the cache's runs of LM__ATTN_PT positions from multiples of it, so neither blocking tokens
 * nor the threads change a result. Per head: the scores, their max; when it grows, what the
 * state holds is rescaled once (e^(s - m) <= 1 keeps exp in range); then the weights, their
 * sum added to l, and the weighted V rows added in order by attn_pv, each row read once for
 * all heads. */
static void lm__attn_tile(const lm__attn_job *j, const float *const *q, const void *const *k,
                          const void *const *v, int o, int n, int64_t D, lm__attn_state *st,
                          int nh) {
    const lm__cpu_kernels *kern = j->c->kern;
    enum { PT = LM__ATTN_PT };
    float s[LM__ATTN_TB * LM__ATTN_NH * PT], w[LM__ATTN_TB * LM__ATTN_NH * PT];
    float *acc[LM__ATTN_TB * LM__ATTN_NH];
    /* F16 rows are read in place, the others are floats (F32, converted Q8_0); K and V
     * may differ */
    if (j->k->type == LM_TYPE_F16)
        kern->attn_qk_f16((const uint16_t *const *)k, n, q, nh, D, s + o, PT);
    else
        kern->attn_qk((const float *const *)k, n, q, nh, D, s + o, PT);
    if (j->p.softcap > 0.0f) { /* capped here; the kernel then takes the slots as they are */
        const float cap = j->p.softcap;
        for (int h = 0; h < nh; h++) {
            float *sh = s + h * PT;
            for (int i = 0; i < PT; i++)
                sh[i] = i < o || i >= o + n ? -INFINITY : cap * tanhf(sh[i] * j->p.scale / cap);
        }
        kern->attn_soft(st, s, w, nh, 0, PT, 1.0f, D);
    } else {
        kern->attn_soft(st, s, w, nh, o, n, j->p.scale, D);
    }
    for (int h = 0; h < nh; h++) acc[h] = st[h].acc;
    if (j->v->type == LM_TYPE_F16)
        kern->attn_pv_f16(acc, (const uint16_t *const *)v, n, w + o, PT, nh, D);
    else
        kern->attn_pv(acc, (const float *const *)v, n, w + o, PT, nh, D);
}

static int32_t lm__attn_lo(const lm__attn_job *j, int32_t pos) {
    return j->p.window > 0 && pos - j->p.window + 1 > 0 ? pos - j->p.window + 1 : 0;
}

/* tot <- the softmax state of tot's positions and then part's (flash decoding's merge) */
static void lm__attn_merge(lm__attn_state *tot, const lm__attn_state *part, int64_t D) {
    if (part->m == -INFINITY) return; /* saw nothing */
    if (tot->m == -INFINITY) {        /* the merge with an empty state, exactly */
        tot->m = part->m, tot->l = part->l;
        memcpy(tot->acc, part->acc, (size_t)D * sizeof(float));
        return;
    }
    const float m = part->m > tot->m ? part->m : tot->m;
    const float ca = lm__exp_neg(tot->m - m), cb = lm__exp_neg(part->m - m);
    tot->l = tot->l * ca + part->l * cb;
    for (int64_t d = 0; d < D; d++) tot->acc[d] = tot->acc[d] * ca + part->acc[d] * cb;
    tot->m = m;
}

static void lm__attn_fresh(lm__attn_state *st, int n, float *acc, int64_t D) {
    for (int i = 0; i < n; i++) st[i] = (lm__attn_state){-INFINITY, 0.0f, acc + i * D};
    memset(acc, 0, (size_t)n * (size_t)D * sizeof(float));
}

/* Positions [p_lo, p_hi] of one chunk (rows up to pf_hi prefetched) for tokens [t0, t0 + nt) x
 * heads [h0, h0 + nh), all of one sequence at consecutive positions (nt = 1 otherwise) and all
 * reading kv head kvh, into the states st: the K and V rows of a tile of LM__ATTN_PT positions are
 * read (Q8_0: converted into kb, vb) once for the whole block and stay in L1 while every (token,
 * head) of the block takes in the tile's positions it sees. */
static void lm__attn_span(const lm__attn_job *j, int64_t t0, int nt, int64_t h0, int nh,
                          int32_t p_lo, int32_t p_hi, int32_t pf_hi, lm__attn_state *st, float *kb,
                          float *vb) {
    const int64_t D = j->q->ne[0];
    const int64_t kvh = h0 / (j->q->ne[1] / j->k->ne[1]);
    const int32_t seq = j->seq[t0];
    const size_t rbk = lm_row_size(j->k->type, D),
                 rbv = lm_row_size(j->v->type, D); /* a row's bytes */
    /* position p's rows: a position stride apart from position 0's */
    const char *k0 = lm__cpu_row(j->k, kvh, 0, seq), *v0 = lm__cpu_row(j->v, kvh, 0, seq);
    const size_t ks = j->k->nb[2], vs = j->v->nb[2];
    const bool kq = j->k->type == LM_TYPE_Q8_0, vq = j->v->type == LM_TYPE_Q8_0;
    for (int32_t p0 = p_lo - p_lo % LM__ATTN_PT; p0 <= p_hi; p0 += LM__ATTN_PT) {
        const int np = p_hi - p0 + 1 < LM__ATTN_PT ? p_hi - p0 + 1 : LM__ATTN_PT;
        const int i0 = p0 < p_lo ? p_lo - p0 : 0;
        const void *k[LM__ATTN_PT], *v[LM__ATTN_PT];
        for (int i = i0; i < np; i++) {
            const size_t p = (size_t)(p0 + i);
            if (p0 + i + LM__ATTN_PT <= pf_hi) { /* into the next chunk too */
                lm__attn_prefetch(k0 + (p + LM__ATTN_PT) * ks, rbk);
                lm__attn_prefetch(v0 + (p + LM__ATTN_PT) * vs, rbv);
            }
            k[i] = kq ? (const void *)lm__attn_q8_row(k0 + p * ks, D, kb + i * D)
                      : (const void *)(k0 + p * ks);
            v[i] = vq ? (const void *)lm__attn_q8_row(v0 + p * vs, D, vb + i * D)
                      : (const void *)(v0 + p * vs);
        }
        const float *q[LM__ATTN_TB * LM__ATTN_NH];
        /* every token sees all of it (not a diagonal or window edge): one call for all
         * (token, head) pairs, so each row is read once for the block */
        if (lm__attn_lo(j, j->pos[t0 + nt - 1]) <= p0 + i0 && j->pos[t0] >= p0 + np - 1) {
            for (int ti = 0; ti < nt; ti++)
                for (int i = 0; i < nh; i++)
                    q[ti * nh + i] = (const float *)lm__cpu_row(j->q, h0 + i, t0 + ti, 0);
            lm__attn_tile(j, q, k + i0, v + i0, i0, np - i0, D, st, nt * nh);
            continue;
        }
        for (int ti = 0; ti < nt; ti++) {
            const int32_t pos = j->pos[t0 + ti], lo = lm__attn_lo(j, pos);
            const int32_t a = lo > p0 + i0 ? lo : p0 + i0,
                          b = pos < p0 + np - 1 ? pos : p0 + np - 1;
            if (a > b) continue;
            for (int i = 0; i < nh; i++)
                q[i] = (const float *)lm__cpu_row(j->q, h0 + i, t0 + ti, 0);
            lm__attn_tile(j, q, k + (a - p0), v + (a - p0), a - p0, b - a + 1, D, &st[ti * nh], nh);
        }
    }
}

/* The tokens' outputs acc / l (l >= 1: the max term contributes e^0) */
static void lm__attn_out(const lm__attn_job *j, int64_t t, int64_t h, const lm__attn_state *x) {
    const int64_t D = j->q->ne[0];
    float *out = (float *)lm__cpu_row(j->dst, h, t, 0);
    const float inv = 1.0f / x->l;
    for (int64_t d = 0; d < D; d++) out[d] = x->acc[d] * inv;
}

/* Chunk c's positions within [first, last] */
static void lm__attn_chunk(int32_t c, int32_t first, int32_t last, int32_t *lo, int32_t *hi) {
    *lo = c * LM__ATTN_CH > first ? c * LM__ATTN_CH : first;
    *hi = c * LM__ATTN_CH + LM__ATTN_CH - 1 < last ? c * LM__ATTN_CH + LM__ATTN_CH - 1 : last;
}

/* A block of tokens and heads (as lm__attn_span's) over all their positions, chunk by
 * chunk. scr: two tiles of rows, then the running and the chunk states' outputs. */
static void lm__attn_block(const lm__attn_job *j, int64_t t0, int nt, int64_t h0, int nh,
                           float *scr) {
    const int64_t D = j->q->ne[0];
    const int32_t first = lm__attn_lo(j, j->pos[t0]), last = j->pos[t0 + nt - 1];
    lm__attn_state tot[LM__ATTN_TB * LM__ATTN_NH], st[LM__ATTN_TB * LM__ATTN_NH];
    float *kb = scr, *vb = kb + LM__ATTN_PT * D, *acc = vb + LM__ATTN_PT * D;
    lm__attn_fresh(tot, nt * nh, acc, D);
    for (int32_t c = first / LM__ATTN_CH; c <= last / LM__ATTN_CH; c++) {
        int32_t lo, hi;
        lm__attn_chunk(c, first, last, &lo, &hi);
        lm__attn_fresh(st, nt * nh, acc + nt * nh * D, D);
        lm__attn_span(j, t0, nt, h0, nh, lo, hi, last, st, kb, vb);
        for (int i = 0; i < nt * nh; i++) lm__attn_merge(&tot[i], &st[i], D);
    }
    for (int ti = 0; ti < nt; ti++)
        for (int i = 0; i < nh; i++) lm__attn_out(j, t0 + ti, h0 + i, &tot[ti * nh + i]);
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

/* One decode token, tasks (run of nh heads, chunk), a run's chunks in a row (the rows of the
 * next are prefetched): each chunk's states into j->part */
static void lm__attn_chunk_task(void *ctx, int64_t b, int64_t e, int ith) {
    const lm__attn_job *j = ctx;
    const int64_t D = j->q->ne[0], H = j->q->ne[1];
    const int32_t first = lm__attn_lo(j, j->pos[0]), last = j->pos[0];
    const int32_t chunks = last / LM__ATTN_CH - j->c0 + 1;
    float *kb = lm__cpu_scratch(j->c, ith), *vb = kb + LM__ATTN_PT * D;
    for (int64_t i = b; i < e; i++) {
        const int32_t c = j->c0 + (int32_t)(i % chunks), h0 = (int32_t)(i / chunks) * j->nh;
        int32_t lo, hi;
        lm__attn_chunk(c, first, last, &lo, &hi);
        float *slot = j->part + (size_t)((c - j->c0) * H + h0) * (size_t)(D + 2);
        lm__attn_state st[LM__ATTN_NH];
        for (int h = 0; h < j->nh; h++) {
            float *x = slot + (size_t)h * (size_t)(D + 2);
            st[h] = (lm__attn_state){-INFINITY, 0.0f, x + 2};
            memset(x + 2, 0, (size_t)D * sizeof(float));
        }
        lm__attn_span(j, 0, 1, h0, j->nh, lo, hi, last, st, kb, vb);
        for (int h = 0; h < j->nh; h++) {
            float *x = slot + (size_t)h * (size_t)(D + 2);
            x[0] = st[h].m, x[1] = st[h].l;
        }
    }
}

/* Merge a decode token's chunk states in chunk order into its outputs: heads [b, e) */
static void lm__attn_merge_task(void *ctx, int64_t b, int64_t e, int ith) {
    const lm__attn_job *j = ctx;
    const int64_t D = j->q->ne[0], H = j->q->ne[1];
    const int32_t n = j->pos[0] / LM__ATTN_CH - j->c0 + 1;
    float *acc = lm__cpu_scratch(j->c, ith);
    for (int64_t h = b; h < e; h++) {
        lm__attn_state tot;
        lm__attn_fresh(&tot, 1, acc, D);
        for (int32_t c = 0; c < n; c++) {
            float *x = j->part + (size_t)(c * H + h) * (size_t)(D + 2);
            const lm__attn_state part = {x[0], x[1], x + 2};
            lm__attn_merge(&tot, &part, D);
        }
        lm__attn_out(j, 0, h, &tot);
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
    const int64_t H = q->ne[1], T = q->ne[2], group = H / k_cache->ne[1], D = q->ne[0];
    lm__attn_job j = {c, q, k_cache, v_cache, dst, ps, sq, *p, 1, 1, 0, NULL};
    /* a decode token over more than one chunk: its chunks on the threads, then the merge */
    j.c0 = lm__attn_lo(&j, ps[0]) / LM__ATTN_CH;
    const int64_t chunks = T == 1 ? ps[0] / LM__ATTN_CH - j.c0 + 1 : 1;
    /* as many heads of a group per task, and tokens per block, as still leave ~4 tasks per
     * thread; for a single token one (its chunks count), whose cost is reading the cache
     * rows, so that a group's heads share each row's read rather than balance the threads */
    const int64_t want = (T == 1 ? 1 : 4) * (int64_t)c->n_threads;
    int64_t nh = group < LM__ATTN_NH ? group : LM__ATTN_NH;
    while (nh > 1 && (group % nh != 0 || chunks * T * (H / nh) < want)) nh--;
    int64_t tb = LM__ATTN_TB;
    while (tb > 1 && ((T + tb - 1) / tb) * (H / nh) < want) tb /= 2;
    j.nh = (int)nh, j.tb = (int)tb;
    LM_TRY(lm__cpu_reserve(c, (size_t)(2 * tb * nh + 2 * LM__ATTN_PT) * (size_t)D));
    if (chunks > 1) {
        const size_t need = (size_t)(chunks * H) * (size_t)(D + 2);
        if (need > c->attn_part_size) {
            float *np = LM_MALLOC(need * sizeof(float));
            if (!np) return lm__error(LM_ERR_NOMEM, "attention: %zu floats of chunk states", need);
            LM_FREE(c->attn_part);
            c->attn_part = np, c->attn_part_size = need;
        }
        j.part = c->attn_part;
        lm__pool_run(c->pool, lm__attn_chunk_task, &j, chunks * (H / nh));
        lm__attn_merge_task(&j, 0, H, 0); /* a few vectors a head: not worth a hand-off */
        return LM_OK;
    }
    lm__pool_run(c->pool, lm__attn_task, &j, ((T + tb - 1) / tb) * (H / nh));
    return LM_OK;
}
