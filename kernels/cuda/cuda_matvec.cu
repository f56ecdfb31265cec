/* mul_mat for few columns (decode): dst[n, m] = sum_k W[k, n] x[k, m], one warp per
 * weight row, up to 8 columns per pass over the row.
 *
 * Quantized W: each warp streams its row in chunks of 32 items (32 blocks of 32, or 4
 * super-blocks of 256) with aligned 16-byte loads into shared memory, the next chunk
 * prefetched into registers while the current one is unpacked. A lane takes one item: its
 * levels as packed bytes, dp4a against the 16-bit activations (hi and lo byte planes), the
 * integer block sums of the CPU's vec_dot exactly. The block terms are then added in block
 * order by one lane per column, with the CPU's float expressions and no fused multiply-add:
 * the result is the CPU's, bit for bit.
 *
 * Float W (F32, F16, BF16): half a warp per row, lane j summing elements j, j + 16, ... as
 * the CPU's 16 partial sums do, then the same pairwise tree: again the CPU's bits. */
#include "cuda_common.cuh"

#define LM_MV_WARPS 4
#define LM_MV_COLS  8

typedef struct lm__mv_args {
    const char *w;
    int64_t w_nb1, N, K;
    const char *x; /* float path */
    int64_t x_nb1;
    lm__cu_act a; /* quantized path */
    int64_t M;
    char *dst;
    int64_t d_nb1;
} lm__mv_args;

/* ---- quantized W ---- */

template <typename Q> struct lm__mv_geom {
    enum {
        BPC = 32 / Q::ITEMS,          /* blocks per chunk */
        CHUNK = BPC * Q::SIZE,        /* bytes of a full chunk */
        N16 = LM_CU_STAGE_N16(CHUNK), /* 16-byte loads covering it at any offset */
        PF = (N16 + 31) / 32          /* per lane */
    };
};

/* Block term of a 32-element type for column m: dw da isum (+ mw sa), as the CPU. */
template <typename Q>
__device__ __forceinline__ float lm__mv_term_legacy(const uint8_t *bp, const int v[8],
                                                    const lm__cu_act &a, int64_t m, int64_t blk) {
    int s0, s1;
    lm__cu_item_isums(v, a.hi + m * a.K + blk * 32, a.lo + m * a.K + blk * 32, s0, s1);
    const int32_t *b16 = a.sum16 + m * (a.K / 16) + 2 * blk;
    float dw, mw;
    Q::scales(bp, dw, mw);
    return lm__cu_term_legacy<Q>(dw, mw, a.d[m * (a.K / 32) + blk], a.s[m * (a.K / 32) + blk],
                                 s0 + s1 - Q::OFF * (b16[0] + b16[1]));
}

__device__ __forceinline__ long long lm__mv_sum8(long long v) {
    for (int o = 1; o < 8; o <<= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <typename Q, int NC>
__global__ void __launch_bounds__(32 * LM_MV_WARPS) lm__mv_quant(lm__mv_args g) {
    typedef lm__mv_geom<Q> G;
    __shared__ int4 stage[LM_MV_WARPS][G::N16];
    __shared__ float terms[LM_MV_WARPS][NC][G::BPC];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t n = (int64_t)blockIdx.x * LM_MV_WARPS + warp;
    if (n >= g.N) return; /* the whole warp: no block-wide barrier below */
    const int64_t m0 = (int64_t)blockIdx.y * LM_MV_COLS;
    const int ncols = (int)(g.M - m0 < NC ? g.M - m0 : NC);
    const char *row = g.w + n * g.w_nb1;
    const int64_t nblk = g.K / Q::QK;
    const int bi = lane / Q::ITEMS, it = lane % Q::ITEMS;

    /* chunk geometry: global start gs, aligned base a0, blocks nb, 16-byte loads n16 */
    int4 pf[G::PF];
#pragma unroll
    for (int i = 0; i < G::PF; i++) pf[i] = make_int4(0, 0, 0, 0);
    uintptr_t a0 = 0;
    int64_t off = 0, nb = 0;
    auto fetch = [&](int64_t b0) {
        nb = nblk - b0 < G::BPC ? nblk - b0 : G::BPC;
        int n16;
        lm__cu_stage_span((uintptr_t)(row + b0 * Q::SIZE), nb, Q::SIZE, a0, off, n16);
#pragma unroll
        for (int i = 0; i < G::PF; i++)
            if (lane + 32 * i < n16) pf[i] = ((const int4 *)a0)[lane + 32 * i];
    };

    float acc = 0.0f; /* lane c < ncols: column c */
    fetch(0);
    for (int64_t b0 = 0; b0 < nblk; b0 += G::BPC) {
#pragma unroll
        for (int i = 0; i < G::PF; i++)
            if (lane + 32 * i < G::N16) stage[warp][lane + 32 * i] = pf[i];
        __syncwarp();
        const int64_t cur_nb = nb, cur_off = off;
        if (b0 + G::BPC < nblk) fetch(b0 + G::BPC);

        const bool on = bi < cur_nb;
        const uint8_t *bp = (const uint8_t *)stage[warp] + cur_off + bi * Q::SIZE;
        int v[8];
#pragma unroll
        for (int w = 0; w < 8; w++) v[w] = on ? Q::word(bp, it, w) : 0;
        const int64_t blk = b0 + bi;
#pragma unroll
        for (int c = 0; c < NC; c++) {
            if (c >= ncols) break; /* uniform over the warp */
            const int64_t m = m0 + c;
            if constexpr (Q::KQ) {
                long long isum = 0, msum = 0;
                if (on) {
                    int s0, s1;
                    const int64_t e = m * g.K + (blk * 8 + it) * 32;
                    lm__cu_item_isums(v, g.a.hi + e, g.a.lo + e, s0, s1);
                    const int32_t *b16 = g.a.sum16 + m * (g.K / 16) + blk * 16 + 2 * it;
                    Q::combine(bp, it, s0, s1, b16[0], b16[1], isum, msum);
                }
                isum = lm__mv_sum8(isum);
                msum = lm__mv_sum8(msum);
                if (on && it == 0)
                    terms[warp][c][bi] =
                        lm__cu_term_k<Q>(bp, isum, msum, g.a.d[m * (g.K / 256) + blk]);
            } else {
                if (on) terms[warp][c][bi] = lm__mv_term_legacy<Q>(bp, v, g.a, m, blk);
            }
        }
        __syncwarp();
        if (lane < ncols)
            for (int j = 0; j < cur_nb; j++) acc = __fadd_rn(acc, terms[warp][lane][j]);
        __syncwarp(); /* stage and terms are rewritten next chunk */
    }
    if (lane < ncols) *(float *)(g.dst + (m0 + lane) * g.d_nb1 + n * 4) = acc;
}

/* ---- float W ---- */

template <int WT> __device__ __forceinline__ float lm__mv_wf(const char *row, int64_t i) {
    if (WT == LM_TYPE_F32) return ((const float *)row)[i];
    const uint16_t h = ((const uint16_t *)row)[i];
    if (WT == LM_TYPE_F16) return lm__cu_h2f(h);
    return __uint_as_float((uint32_t)h << 16); /* BF16 */
}

template <int WT, int NC>
__global__ void __launch_bounds__(32 * LM_MV_WARPS) lm__mv_float(lm__mv_args g) {
    const int lane = threadIdx.x & 15;
    const int64_t n = (int64_t)blockIdx.x * (2 * LM_MV_WARPS) + (threadIdx.x >> 4);
    const int64_t m0 = (int64_t)blockIdx.y * LM_MV_COLS;
    const int ncols = (int)(g.M - m0 < NC ? g.M - m0 : NC);
    const bool on = n < g.N; /* off half-warps still join the shuffles */
    const char *row = g.w + (on ? n : 0) * g.w_nb1;
    float acc[NC];
#pragma unroll
    for (int c = 0; c < NC; c++) acc[c] = 0.0f;
    if (on)
        for (int64_t i = lane; i < g.K; i += 16) {
            const float w = lm__mv_wf<WT>(row, i);
#pragma unroll
            for (int c = 0; c < NC; c++)
                if (c < ncols) {
                    const float xv = ((const float *)(g.x + (m0 + c) * g.x_nb1))[i];
                    acc[c] = __fadd_rn(acc[c], __fmul_rn(w, xv));
                }
        }
        /* acc[j] += acc[j + w] for w = 8, 4, 2, 1, as lm__cpu_dot */
#pragma unroll
    for (int c = 0; c < NC; c++)
        for (int o = 8; o >= 1; o >>= 1) {
            const float other = __shfl_down_sync(0xffffffffu, acc[c], o, 16);
            if (lane < o) acc[c] = __fadd_rn(acc[c], other);
        }
    if (on && lane == 0)
#pragma unroll
        for (int c = 0; c < NC; c++)
            if (c < ncols) *(float *)(g.dst + (m0 + c) * g.d_nb1 + n * 4) = acc[c];
}

/* ---- launchers ---- */

template <int NC> struct lm__mv_launch_quant {
    dim3 grid;
    cudaStream_t s;
    const lm__mv_args *g;
    template <typename Q> void operator()() const {
        lm__mv_quant<Q, NC><<<grid, 32 * LM_MV_WARPS, 0, s>>>(*g);
    }
};

template <int NC> static lm_status lm__mv_quant_nc(lm__cuda *c, lm_type t, const lm__mv_args *g) {
    const dim3 grid((unsigned)((g->N + LM_MV_WARPS - 1) / LM_MV_WARPS),
                    (unsigned)((g->M + LM_MV_COLS - 1) / LM_MV_COLS));
    lm__mv_launch_quant<NC> f = {grid, c->stream, g};
    if (!lm__cu_dispatch_quant(t, f))
        return lm__error(LM_ERR_INVALID_ARG, "mul_mat: W type %s is not supported",
                         lm_type_get((uint32_t)t).name);
    return lm__cu_launched("mul_mat (matrix-vector)");
}

template <int WT>
static void lm__mv_float_wt(lm__cuda *c, int nc, dim3 grid, const lm__mv_args *g) {
    const int th = 32 * LM_MV_WARPS;
    if (nc == 1)
        lm__mv_float<WT, 1><<<grid, th, 0, c->stream>>>(*g);
    else if (nc == 2)
        lm__mv_float<WT, 2><<<grid, th, 0, c->stream>>>(*g);
    else if (nc <= 4)
        lm__mv_float<WT, 4><<<grid, th, 0, c->stream>>>(*g);
    else
        lm__mv_float<WT, 8><<<grid, th, 0, c->stream>>>(*g);
}

/* Columns per pass: the smallest instance that holds min(M, 8) of them. */
static int lm__mv_nc(int64_t M) {
    return M <= 1 ? 1 : M <= 2 ? 2 : M <= 4 ? 4 : 8;
}

extern "C" lm_status lm__cu_matvec(lm__cuda *c, const lm_tensor *w, const lm_tensor *x,
                                   lm_tensor *dst) {
    lm__mv_args g;
    memset(&g, 0, sizeof g);
    g.w = lm__cu_data(w);
    g.w_nb1 = (int64_t)w->nb[1];
    g.N = w->ne[1];
    g.K = w->ne[0];
    g.x = lm__cu_data(x);
    g.x_nb1 = (int64_t)x->nb[1];
    g.M = x->ne[1];
    g.dst = lm__cu_data(dst);
    g.d_nb1 = (int64_t)dst->nb[1];
    const int nc = lm__mv_nc(g.M);
    const int64_t groups = (g.M + LM_MV_COLS - 1) / LM_MV_COLS;
    if (groups > 65535)
        return lm__error(LM_ERR_UNSUPPORTED, "mul_mat: %lld columns (at most %d)", (long long)g.M,
                         65535 * LM_MV_COLS);
    if (!lm__cu_is_quant(w->type)) {
        const dim3 grid((unsigned)((g.N + 2 * LM_MV_WARPS - 1) / (2 * LM_MV_WARPS)),
                        (unsigned)groups);
        if (w->type == LM_TYPE_F32)
            lm__mv_float_wt<LM_TYPE_F32>(c, nc, grid, &g);
        else if (w->type == LM_TYPE_F16)
            lm__mv_float_wt<LM_TYPE_F16>(c, nc, grid, &g);
        else if (w->type == LM_TYPE_BF16)
            lm__mv_float_wt<LM_TYPE_BF16>(c, nc, grid, &g);
        else
            return lm__error(LM_ERR_INVALID_ARG, "mul_mat: W type %s is not supported",
                             lm_type_get((uint32_t)w->type).name);
        return lm__cu_launched("mul_mat (matrix-vector, float)");
    }
    const int blk = lm_type_get((uint32_t)w->type).blck == LM_QK_K ? LM_QK_K : 32;
    LM_TRY(lm__cu_quantize_act(c, x, blk, &g.a));
    if (nc == 1) return lm__mv_quant_nc<1>(c, w->type, &g);
    if (nc == 2) return lm__mv_quant_nc<2>(c, w->type, &g);
    if (nc == 4) return lm__mv_quant_nc<4>(c, w->type, &g);
    return lm__mv_quant_nc<8>(c, w->type, &g);
}
