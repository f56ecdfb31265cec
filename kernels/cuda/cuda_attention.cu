/* Causal GQA attention over the KV cache, flash style: one CTA per (token, head, split),
 * its 4 warps taking 32 cache positions at a time with an online softmax (running max m,
 * sum l, output acc), so the score matrix is never materialised.
 *
 * In a warp, lane j scores position base + j (q from shared memory against the lane's K
 * row), the warp takes the max and the sum of the 32 weights with shuffles, then every
 * lane adds the 32 weighted V rows for its dimensions (d = lane + 32 i: coalesced rows).
 * The warps' (m, l, acc) are merged in shared memory at the end.
 *
 * Split-K for decode: with few (token, head) pairs the positions of each token are cut
 * into S ranges (multiples of 32) handled by separate CTAs, whose partial (m, l, acc) a
 * second kernel merges. S depends only on the shapes (the cache size, not the positions,
 * which live on the device), so a step can be recorded once and replayed.
 *
 * q F32 [head_dim, n_head, n_tok] (any strides); caches [head_dim, n_kv_head, n_ctx,
 * n_seq] F16 or F32; score s = scale * (q . k), with softcap c: c * tanh(s / c). */
#include "cuda_common.cuh"

#define LM_AT_WARPS    4
#define LM_AT_MAXD     256
#define LM_AT_MAXSPLIT 32

typedef struct lm__at_args {
    lm__cu_view q, k, v, dst;
    const int32_t *pos, *seq;
    float scale, softcap;
    int window, n_split;
    float *part; /* [n_tok][n_head][n_split][head_dim + 2] when n_split > 1 */
    int *err;
} lm__at_args;

/* Element d of cache row r as float. */
template <bool F16> __device__ __forceinline__ float lm__at_ld(const char *r, int d) {
    if (F16) return lm__cu_h2f(((const uint16_t *)r)[d]);
    return ((const float *)r)[d];
}

/* q . k over D dimensions (q in shared memory; vec: 16-byte loads of the row). */
template <bool F16>
__device__ __forceinline__ float lm__at_dot(const float *q, const char *kr, int D, bool vec) {
    float s = 0.0f;
    if (F16 && vec) {
        for (int d = 0; d < D; d += 8) {
            const int4 u = *(const int4 *)(kr + 2 * d);
            const uint32_t w[4] = {(uint32_t)u.x, (uint32_t)u.y, (uint32_t)u.z, (uint32_t)u.w};
#pragma unroll
            for (int e = 0; e < 4; e++) {
                s += q[d + 2 * e] * lm__cu_h2f((uint16_t)(w[e] & 0xffffu));
                s += q[d + 2 * e + 1] * lm__cu_h2f((uint16_t)(w[e] >> 16));
            }
        }
    } else if (!F16 && vec) {
        for (int d = 0; d < D; d += 4) {
            const float4 u = *(const float4 *)(kr + 4 * d);
            s += q[d] * u.x + q[d + 1] * u.y + q[d + 2] * u.z + q[d + 3] * u.w;
        }
    } else {
        for (int d = 0; d < D; d++) s += q[d] * lm__at_ld<F16>(kr, d);
    }
    return s;
}

template <int DPL, bool F16>
__global__ void __launch_bounds__(32 * LM_AT_WARPS) lm__at_kernel(const lm__at_args a) {
    __shared__ float qs[LM_AT_MAXD];
    __shared__ float wm[LM_AT_WARPS], wl[LM_AT_WARPS];
    __shared__ float wacc[LM_AT_WARPS][32 * DPL];
    const int64_t t = blockIdx.x;
    const int h = blockIdx.y, sp = blockIdx.z;
    const int D = (int)a.q.ne[0], H = (int)a.q.ne[1];
    const int kvh = h / (H / (int)a.k.ne[1]);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int32_t pos = a.pos[t], sq = a.seq[t];
    const bool bad = pos < 0 || pos >= a.k.ne[2] || sq < 0 || sq >= a.k.ne[3];
    if (bad && threadIdx.x == 0) atomicOr(a.err, LM_CU_ERR_ATTENTION);

    /* this split's positions [start, end] */
    int32_t start, end;
    lm__cu_attn_range(pos, a.window, a.n_split, sp, &start, &end);
    if (bad) end = start - 1;

    const float *qr = (const float *)lm__cu_row(a.q, h, t, 0);
    for (int d = threadIdx.x; d < D; d += blockDim.x) qs[d] = qr[d];
    __syncthreads();
    const char *k0 = lm__cu_row(a.k, kvh, 0, bad ? 0 : sq),
               *v0 = lm__cu_row(a.v, kvh, 0, bad ? 0 : sq);
    const bool vec = D % 8 == 0 && ((uintptr_t)k0 & 15) == 0 && a.k.nb[2] % 16 == 0;

    float m = -INFINITY, l = 0.0f, acc[DPL];
#pragma unroll
    for (int i = 0; i < DPL; i++) acc[i] = 0.0f;
    for (int32_t base = start + 32 * warp; base <= end; base += 32 * LM_AT_WARPS) {
        const int32_t p = base + lane;
        const bool on = p <= end;
        float s = -INFINITY;
        if (on) {
            s = lm__at_dot<F16>(qs, k0 + (int64_t)p * a.k.nb[2], D, vec) * a.scale;
            if (a.softcap > 0.0f) s = a.softcap * tanhf(s / a.softcap);
        }
        const float mn = fmaxf(m, lm__cu_warp_max(s)); /* finite: lane 0 is on */
        const float corr = expf(m - mn);               /* 0 while m = -inf */
        const float w = on ? expf(s - mn) : 0.0f;
        l = l * corr + lm__cu_warp_sum(w);
#pragma unroll
        for (int i = 0; i < DPL; i++) acc[i] *= corr;
        const int nv = end - base + 1 < 32 ? end - base + 1 : 32;
        for (int j = 0; j < nv; j++) {
            const float wj = __shfl_sync(0xffffffffu, w, j);
            const char *vr = v0 + (int64_t)(base + j) * a.v.nb[2];
#pragma unroll
            for (int i = 0; i < DPL; i++) {
                const int d = lane + 32 * i;
                if (d < D) acc[i] += wj * lm__at_ld<F16>(vr, d);
            }
        }
        m = mn;
    }

    /* merge the warps */
    if (lane == 0) wm[warp] = m, wl[warp] = l;
#pragma unroll
    for (int i = 0; i < DPL; i++) wacc[warp][lane + 32 * i] = acc[i];
    __syncthreads();
    float M = -INFINITY;
    for (int w = 0; w < LM_AT_WARPS; w++) M = fmaxf(M, wm[w]);
    float f[LM_AT_WARPS], Lsum = 0.0f;
    for (int w = 0; w < LM_AT_WARPS; w++) {
        f[w] = wl[w] > 0.0f ? expf(wm[w] - M) : 0.0f;
        Lsum += wl[w] * f[w];
    }
    if (a.n_split == 1) {
        float *out = (float *)lm__cu_row(a.dst, h, t, 0);
        const float inv = Lsum > 0.0f ? 1.0f / Lsum : 0.0f;
        for (int d = threadIdx.x; d < D; d += blockDim.x) {
            float o = 0.0f;
            for (int w = 0; w < LM_AT_WARPS; w++) o += wacc[w][d] * f[w];
            out[d] = o * inv;
        }
        return;
    }
    float *pp = a.part + ((t * H + h) * a.n_split + sp) * (int64_t)(D + 2);
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float o = 0.0f;
        for (int w = 0; w < LM_AT_WARPS; w++) o += wacc[w][d] * f[w];
        pp[2 + d] = o;
    }
    if (threadIdx.x == 0) pp[0] = M, pp[1] = Lsum;
}

/* Merge the n_split partials of (token, head). */
__global__ void lm__at_merge(const lm__at_args a) {
    const int64_t t = blockIdx.x;
    const int h = blockIdx.y, S = a.n_split;
    const int D = (int)a.q.ne[0], H = (int)a.q.ne[1];
    const float *pp = a.part + (t * H + h) * S * (int64_t)(D + 2);
    float M = -INFINITY, L = 0.0f;
    for (int s = 0; s < S; s++)
        if (pp[s * (D + 2) + 1] > 0.0f) M = fmaxf(M, pp[s * (D + 2)]);
    float f[LM_AT_MAXSPLIT];
    for (int s = 0; s < S; s++) {
        const float ls = pp[s * (D + 2) + 1];
        f[s] = ls > 0.0f ? expf(pp[s * (D + 2)] - M) : 0.0f;
        L += ls * f[s];
    }
    const float inv = L > 0.0f ? 1.0f / L : 0.0f;
    float *out = (float *)lm__cu_row(a.dst, h, t, 0);
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float o = 0.0f;
        for (int s = 0; s < S; s++) o += pp[s * (D + 2) + 2 + d] * f[s];
        out[d] = o * inv;
    }
}

/* ---- launcher ---- */

template <bool F16>
static void lm__at_launch(int dpl, dim3 grid, cudaStream_t s, const lm__at_args &a) {
    const int th = 32 * LM_AT_WARPS;
    switch (dpl) {
    case 1:
        lm__at_kernel<1, F16><<<grid, th, 0, s>>>(a);
        break;
    case 2:
        lm__at_kernel<2, F16><<<grid, th, 0, s>>>(a);
        break;
    case 3:
        lm__at_kernel<3, F16><<<grid, th, 0, s>>>(a);
        break;
    case 4:
        lm__at_kernel<4, F16><<<grid, th, 0, s>>>(a);
        break;
    case 5:
        lm__at_kernel<5, F16><<<grid, th, 0, s>>>(a);
        break;
    case 6:
        lm__at_kernel<6, F16><<<grid, th, 0, s>>>(a);
        break;
    case 7:
        lm__at_kernel<7, F16><<<grid, th, 0, s>>>(a);
        break;
    default:
        lm__at_kernel<8, F16><<<grid, th, 0, s>>>(a);
        break;
    }
}

/* Splits per token: enough CTAs for the device when there are few (token, head) pairs,
 * none when there are many, at most one per 256 cache positions. */
static int lm__at_splits(const lm__cuda *c, int64_t pairs, int64_t n_ctx) {
    if (c->force_split < 0) return 1;
    if (c->force_split > 0)
        return c->force_split < LM_AT_MAXSPLIT ? c->force_split : LM_AT_MAXSPLIT;
    if (pairs >= 2 * (int64_t)c->n_sm) return 1;
    int64_t s = (2 * (int64_t)c->n_sm + pairs - 1) / pairs;
    const int64_t by_ctx = (n_ctx + 255) / 256;
    if (s > by_ctx) s = by_ctx;
    if (s > LM_AT_MAXSPLIT) s = LM_AT_MAXSPLIT;
    return s < 1 ? 1 : (int)s;
}

/* ---- the entry point: the CPU's checks ---- */

static lm_status lm__at_check_cache(const char *name, const lm_tensor *q, const lm_tensor *c) {
    LM_TRY(lm__cu_check("attention", name, c, -1));
    if (c->type == LM_TYPE_Q8_0) /* the CPU and Vulkan backends have it; not written yet */
        return lm__error(LM_ERR_UNSUPPORTED,
                         "attention: the CUDA backend has no Q8_0 KV cache yet");
    if (c->type != LM_TYPE_F16 && c->type != LM_TYPE_F32)
        return lm__error(LM_ERR_INVALID_ARG, "attention: %s type %s, expected F16 or F32", name,
                         lm_type_get((uint32_t)c->type).name);
    return lm_op_check_attn_cache(name, q, c);
}

static lm_status lm__at_check_ids(lm__cuda *c, const lm_tensor *q, const lm_tensor *k,
                                  const lm_tensor *pos, const lm_tensor *seq) {
    if (c->recording) return LM_OK;
    const int64_t T = q->ne[2];
    int32_t *v = (int32_t *)LM_MALLOC((size_t)T * 2 * sizeof *v);
    if (!v) return lm__error(LM_ERR_NOMEM, "attention: %lld positions", (long long)T);
    lm_status s = lm__cu_read_i32(c, pos, v, T);
    if (s == LM_OK) s = lm__cu_read_i32(c, seq, v + T, T);
    for (int64_t t = 0; s == LM_OK && t < T; t++) {
        if (v[t] < 0 || v[t] >= k->ne[2])
            s = lm__error(LM_ERR_INVALID_ARG,
                          "attention: pos[%lld] = %d is outside [0, n_ctx = %lld)", (long long)t,
                          v[t], (long long)k->ne[2]);
        else if (v[T + t] < 0 || v[T + t] >= k->ne[3])
            s = lm__error(LM_ERR_INVALID_ARG,
                          "attention: seq[%lld] = %d is outside [0, n_seq = %lld)", (long long)t,
                          v[T + t], (long long)k->ne[3]);
    }
    LM_FREE(v);
    return s;
}

extern "C" lm_status lm__cu_attention(lm_backend *be, const lm_tensor *q, const lm_tensor *k_cache,
                                      const lm_tensor *v_cache, const lm_tensor *pos,
                                      const lm_tensor *seq, const lm_attn_params *p,
                                      lm_tensor *dst) {
    const char *op = "attention";
    lm__cuda *c = lm__cu_op(be);
    LM_TRY(lm__cu_check(op, "q", q, LM_TYPE_F32));
    LM_TRY(lm__cu_check(op, "dst", dst, LM_TYPE_F32));
    LM_TRY(lm__cu_check_same_shape(op, "q", q, "dst", dst));
    if (q->ne[3] != 1)
        return lm__error(LM_ERR_INVALID_ARG, "attention: q ne[3] = %lld, expected 1",
                         (long long)q->ne[3]);
    LM_TRY(lm__at_check_cache("k_cache", q, k_cache));
    LM_TRY(lm__at_check_cache("v_cache", q, v_cache));
    LM_TRY(lm__cu_check_same_shape(op, "k_cache", k_cache, "v_cache", v_cache));
    if (k_cache->type != v_cache->type)
        return lm__error(LM_ERR_UNSUPPORTED, "attention: k_cache and v_cache types differ");
    LM_TRY(lm__cu_check(op, "pos", pos, LM_TYPE_I32));
    LM_TRY(lm__cu_check(op, "seq", seq, LM_TYPE_I32));
    LM_TRY(lm_op_check_attn_args(q, pos, seq, p));
    if (q->ne[0] > LM_AT_MAXD)
        return lm__error(LM_ERR_UNSUPPORTED,
                         "attention: head_dim %lld (the CUDA backend takes <= %d)",
                         (long long)q->ne[0], LM_AT_MAXD);
    if (q->ne[1] > 65535 || q->ne[2] > 0x7fffffff || k_cache->ne[2] > 0x7fffffff)
        return lm__error(LM_ERR_UNSUPPORTED, "attention: %lld heads x %lld tokens",
                         (long long)q->ne[1], (long long)q->ne[2]);
    LM_TRY(lm__at_check_ids(c, q, k_cache, pos, seq));

    lm__at_args a;
    memset(&a, 0, sizeof a);
    a.q = lm__cu_view_of(q);
    a.k = lm__cu_view_of(k_cache);
    a.v = lm__cu_view_of(v_cache);
    a.dst = lm__cu_view_of(dst);
    a.pos = (const int32_t *)lm__cu_data(pos);
    a.seq = (const int32_t *)lm__cu_data(seq);
    a.scale = p->scale;
    a.softcap = p->softcap;
    a.window = p->window;
    a.err = c->d_err;
    const int64_t T = q->ne[2], H = q->ne[1], D = q->ne[0];
    a.n_split = lm__at_splits(c, T * H, k_cache->ne[2]);
    if (a.n_split > 1) {
        const size_t bytes = (size_t)(T * H * a.n_split) * (size_t)(D + 2) * sizeof(float);
        LM_TRY(lm__cu_arena_reserve(c, &c->attn, bytes, "attention partials"));
        a.part = (float *)c->attn.p;
    }
    const int dpl = (int)((D + 31) / 32);
    const dim3 grid((unsigned)T, (unsigned)H, (unsigned)a.n_split);
    if (k_cache->type == LM_TYPE_F16)
        lm__at_launch<true>(dpl, grid, c->stream, a);
    else
        lm__at_launch<false>(dpl, grid, c->stream, a);
    LM_TRY(lm__cu_launched(op));
    if (a.n_split > 1) {
        lm__at_merge<<<dim3((unsigned)T, (unsigned)H), D <= 64 ? 64 : 128, 0, c->stream>>>(a);
        LM_TRY(lm__cu_launched("attention (merge)"));
    }
    return LM_OK;
}
