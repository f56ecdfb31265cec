/* mul_mat for many columns (prefill) on int8 tensor cores, and the mul_mat entry point.
 *
 * A CTA computes a 64 x 64 tile of dst (64 weight rows x 64 columns of x), 4 warps of
 * 32 x 32, stepping K by one item (32 elements). Per step the weight item is unpacked to
 * int8 levels in shared memory (dequantised to integers: the scales stay outside), the
 * activations' hi and lo byte planes are staged beside it, and WMMA m16n16k16 (s8 x s8 ->
 * s32) gives the integer sums for both planes. WMMA wants both operands signed, so lo
 * (0..255) is staged as lo - 128 and 128 * sum(levels) is added back. After each
 * sub-block (32 elements; 16 for q2_K, q3_K, q6_K) the integer sums go through shared
 * memory to the lanes, which own one row each and fold them into float accumulators with
 * the scales.
 *
 * The 32-element types fold once per block with the CPU's expression in block order, so
 * their results are the CPU's bit for bit. The k-quants fold per sub-block (the CPU sums
 * a super-block's sub-blocks as integers first): float rounding differs, within the op
 * table's tolerance. */
#include "cuda_common.cuh"

#include <mma.h>

#define LM_MM_BN 64 /* weight rows per CTA */
#define LM_MM_BM 64 /* columns per CTA */
#define LM_MM_CLD                                                                                  \
    36 /* ints between columns of a warp's 32 x 32 result (32 + 4: no bank                         \
          conflicts when lanes read a column) */

typedef struct lm__mm_args {
    const char *w;
    int64_t w_nb1, N, K;
    lm__cu_act a;
    int64_t M;
    char *dst;
    int64_t d_nb1;
} lm__mm_args;

/* Shared memory of a CTA. Int8 tiles are [half][row][16 bytes]: element k of a row is in
 * half k / 16, so each 16 x 16 WMMA operand is 256 contiguous, 32-byte aligned bytes. */
typedef struct lm__mm_smem {
    int8_t A[2][LM_MM_BN][16];              /* weight levels */
    int8_t Bh[2][LM_MM_BM][16];             /* activation hi bytes */
    int8_t Bl[2][LM_MM_BM][16];             /* activation lo bytes - 128 */
    int C[4][32 * LM_MM_CLD];               /* per warp: integer sums, column-major */
    float ra[LM_MM_BN][2], rb[LM_MM_BN][2]; /* per row and half: scale, min */
    int wsum[LM_MM_BN][2];                  /* per row and half: sum of the levels */
    float cd[LM_MM_BM], cs[LM_MM_BM];       /* per column: d, and d * sum (32-blocks) */
    int cb[LM_MM_BM][2];                    /* per column and half: sum of q */
} lm__mm_smem;

/* Stage item `item` of the weight rows and columns of the tile. */
template <typename Q>
__device__ __forceinline__ void lm__mm_stage(const lm__mm_args &g, lm__mm_smem &s, int64_t n0,
                                             int64_t m0, int64_t item) {
    const int t = threadIdx.x, r = t >> 1, h = t & 1;
    const int64_t blk = item / Q::ITEMS;
    const int it = (int)(item % Q::ITEMS);
    /* weights: 64 rows, two threads per row, 16 levels each */
    const int64_t n = n0 + r;
    int v[4] = {0, 0, 0, 0};
    float A = 0.0f, B = 0.0f;
    if (n < g.N) {
        const uint8_t *bp = (const uint8_t *)(g.w + n * g.w_nb1 + blk * Q::SIZE);
#pragma unroll
        for (int w = 0; w < 4; w++) v[w] = Q::word(bp, it, 4 * h + w);
        if constexpr (Q::KQ) {
            lm__cu_kab<Q>::ab(bp, it, h, A, B);
        } else {
            Q::scales(bp, A, B);
        }
    }
    *(int4 *)s.A[h][r] = make_int4(v[0], v[1], v[2], v[3]);
    int ws = 0;
#pragma unroll
    for (int w = 0; w < 4; w++) ws = lm__cu_dp4a_ss(v[w], 0x01010101, ws);
    s.wsum[r][h] = ws;
    s.ra[r][h] = A;
    s.rb[r][h] = B;
    /* activations: 64 columns, two threads per column, 16 bytes of each plane */
    const int64_t m = m0 + r;
    int4 hv = make_int4(0, 0, 0, 0), lv = make_int4(0, 0, 0, 0);
    int cb = 0;
    float cd = 0.0f, cs = 0.0f;
    if (m < g.M) {
        const int64_t e = m * g.K + item * 32 + 16 * h;
        hv = *(const int4 *)(g.a.hi + e);
        lv = *(const int4 *)(g.a.lo + e);
        const uint32_t f = 0x80808080u; /* lo - 128 as int8: flip the top bit */
        lv = make_int4((int)((uint32_t)lv.x ^ f), (int)((uint32_t)lv.y ^ f),
                       (int)((uint32_t)lv.z ^ f), (int)((uint32_t)lv.w ^ f));
        cb = g.a.sum16[m * (g.K / 16) + item * 2 + h];
        cd = g.a.d[m * (g.K / g.a.blk) + item * 32 / g.a.blk];
        if (!Q::KQ) cs = g.a.s[m * (g.K / 32) + item];
    }
    *(int4 *)s.Bh[h][r] = hv;
    *(int4 *)s.Bl[h][r] = lv;
    s.cb[r][h] = cb;
    if (h == 0) {
        s.cd[r] = cd;
        s.cs[r] = cs;
    }
}

/* Fold the warp's integer sums (in s.C[warp], half h or both halves when h < 0) into acc:
 * lane = row of the warp's 32, acc[j] = column j. */
template <typename Q>
__device__ __forceinline__ void lm__mm_fold(const lm__mm_smem &s, int warp, int wn, int wm, int h,
                                            float acc[32]) {
    const int lane = threadIdx.x & 31, r = wn * 32 + lane;
    const int *C = s.C[warp];
    const int hh = h < 0 ? 0 : h;
    const int wsum = h < 0 ? s.wsum[r][0] + s.wsum[r][1] : s.wsum[r][h];
    const float A = s.ra[r][hh], B = s.rb[r][hh];
#pragma unroll
    for (int j = 0; j < 32; j++) {
        const int col = wm * 32 + j;
        const int S = C[j * LM_MM_CLD + lane] + 128 * wsum;
        const int bsum = h < 0 ? s.cb[col][0] + s.cb[col][1] : s.cb[col][h];
        const float t = lm__cu_fold<Q>(S, bsum, A, B, s.cd[col], s.cs[col]);
        acc[j] = __fadd_rn(acc[j], t);
    }
}

template <typename Q> __global__ void __launch_bounds__(128) lm__mm_wmma(lm__mm_args g) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 720
    using namespace nvcuda;
    __shared__ __align__(32) lm__mm_smem s;
    const int warp = threadIdx.x >> 5, wn = warp >> 1, wm = warp & 1;
    const int64_t n0 = (int64_t)blockIdx.x * LM_MM_BN, m0 = (int64_t)blockIdx.y * LM_MM_BM;
    typedef wmma::fragment<wmma::accumulator, 16, 16, 16, int> acc_t;
    wmma::fragment<wmma::matrix_a, 16, 16, 16, signed char, wmma::row_major> fa[2];
    wmma::fragment<wmma::matrix_b, 16, 16, 16, signed char, wmma::col_major> fh[2], fl[2];
    acc_t ch[2][2], cl[2][2];
    float acc[32];
#pragma unroll
    for (int j = 0; j < 32; j++) acc[j] = 0.0f;
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++) {
            wmma::fill_fragment(ch[i][j], 0);
            wmma::fill_fragment(cl[i][j], 0);
        }
    const int64_t n_items = g.K / 32;
    for (int64_t item = 0; item < n_items; item++) {
        __syncthreads(); /* the previous item's tiles are consumed */
        lm__mm_stage<Q>(g, s, n0, m0, item);
        __syncthreads();
#pragma unroll
        for (int h = 0; h < 2; h++) {
#pragma unroll
            for (int i = 0; i < 2; i++)
                wmma::load_matrix_sync(fa[i], &s.A[h][wn * 32 + 16 * i][0], 16);
#pragma unroll
            for (int j = 0; j < 2; j++) {
                wmma::load_matrix_sync(fh[j], &s.Bh[h][wm * 32 + 16 * j][0], 16);
                wmma::load_matrix_sync(fl[j], &s.Bl[h][wm * 32 + 16 * j][0], 16);
            }
#pragma unroll
            for (int i = 0; i < 2; i++)
#pragma unroll
                for (int j = 0; j < 2; j++) {
                    wmma::mma_sync(ch[i][j], fa[i], fh[j], ch[i][j]);
                    wmma::mma_sync(cl[i][j], fa[i], fl[j], cl[i][j]);
                }
            if (Q::SUB == 32 && h == 0) continue; /* fold once per 32 elements */
                /* hi * 256 + lo per element (same fragment layout), to shared memory */
#pragma unroll
            for (int i = 0; i < 2; i++)
#pragma unroll
                for (int j = 0; j < 2; j++) {
                    acc_t t;
#pragma unroll
                    for (int e = 0; e < t.num_elements; e++)
                        t.x[e] = ch[i][j].x[e] * 256 + cl[i][j].x[e];
                    wmma::store_matrix_sync(&s.C[warp][(16 * j) * LM_MM_CLD + 16 * i], t, LM_MM_CLD,
                                            wmma::mem_col_major);
                    wmma::fill_fragment(ch[i][j], 0);
                    wmma::fill_fragment(cl[i][j], 0);
                }
            __syncwarp();
            lm__mm_fold<Q>(s, warp, wn, wm, Q::SUB == 32 ? -1 : h, acc);
            __syncwarp();
        }
    }
    const int64_t n = n0 + wn * 32 + (threadIdx.x & 31);
    if (n < g.N)
#pragma unroll
        for (int j = 0; j < 32; j++) {
            const int64_t m = m0 + wm * 32 + j;
            if (m < g.M) *(float *)(g.dst + m * g.d_nb1 + n * 4) = acc[j];
        }
#endif
}

struct lm__mm_launch {
    dim3 grid;
    cudaStream_t s;
    const lm__mm_args *g;
    template <typename Q> void operator()() const { lm__mm_wmma<Q><<<grid, 128, 0, s>>>(*g); }
};

extern "C" int lm__cu_is_quant(lm_type t) {
    switch (t) {
    case LM_TYPE_Q4_0:
    case LM_TYPE_Q4_1:
    case LM_TYPE_Q5_0:
    case LM_TYPE_Q5_1:
    case LM_TYPE_Q8_0:
    case LM_TYPE_Q2_K:
    case LM_TYPE_Q3_K:
    case LM_TYPE_Q4_K:
    case LM_TYPE_Q5_K:
    case LM_TYPE_Q6_K:
        return 1;
    default:
        return 0;
    }
}

extern "C" lm_status lm__cu_matmul_mma(lm__cuda *c, const lm_tensor *w, const lm_tensor *x,
                                       lm_tensor *dst) {
    if (!lm__cu_is_quant(w->type))
        return lm__error(LM_ERR_UNSUPPORTED, "mul_mat: no tensor-core kernel for W type %s",
                         lm_type_get((uint32_t)w->type).name);
    if (c->cc < 72)
        return lm__error(LM_ERR_UNSUPPORTED, "mul_mat: int8 tensor cores need sm_72 or newer");
    lm__mm_args g;
    memset(&g, 0, sizeof g);
    g.w = lm__cu_data(w);
    g.w_nb1 = (int64_t)w->nb[1];
    g.N = w->ne[1];
    g.K = w->ne[0];
    g.M = x->ne[1];
    g.dst = lm__cu_data(dst);
    g.d_nb1 = (int64_t)dst->nb[1];
    const int blk = lm_type_get((uint32_t)w->type).blck == LM_QK_K ? LM_QK_K : 32;
    LM_TRY(lm__cu_quantize_act(c, x, blk, &g.a));
    const int64_t gy = (g.M + LM_MM_BM - 1) / LM_MM_BM;
    if (gy > 65535)
        return lm__error(LM_ERR_UNSUPPORTED, "mul_mat: %lld columns (at most %d)", (long long)g.M,
                         65535 * LM_MM_BM);
    lm__mm_launch f = {dim3((unsigned)((g.N + LM_MM_BN - 1) / LM_MM_BN), (unsigned)gy), c->stream,
                       &g};
    lm__cu_dispatch_quant(w->type, f);
    return lm__cu_launched("mul_mat (tensor cores)");
}

/* ---- the entry point ---- */

static lm_status lm__cu_mm_check(const lm_tensor *w, const lm_tensor *x, const lm_tensor *dst) {
    const char *op = "mul_mat";
    LM_TRY(lm__cu_check(op, "W", w, -1)); /* also: K a multiple of W's block size */
    if (!lm_type_computable(w->type))
        return lm__error(LM_ERR_INVALID_ARG, "mul_mat: W type %s is not supported",
                         lm_type_get((uint32_t)w->type).name);
    LM_TRY(lm__cu_check(op, "x", x, (int)LM_TYPE_F32));
    LM_TRY(lm__cu_check(op, "dst", dst, (int)LM_TYPE_F32));
    if (lm__cu_nrows(w) != w->ne[1] || lm__cu_nrows(x) != x->ne[1] ||
        lm__cu_nrows(dst) != dst->ne[1])
        return lm__error(LM_ERR_INVALID_ARG,
                         "mul_mat: W, x and dst must be 2-D (ne[2] = ne[3] = 1)");
    if (x->ne[0] != w->ne[0])
        return lm__error(LM_ERR_INVALID_ARG, "mul_mat: x ne[0] = %lld != W ne[0] (K) = %lld",
                         (long long)x->ne[0], (long long)w->ne[0]);
    if (dst->ne[0] != w->ne[1] || dst->ne[1] != x->ne[1])
        return lm__error(
            LM_ERR_INVALID_ARG, "mul_mat: dst is [%lld, %lld], expected [N=%lld, M=%lld]",
            (long long)dst->ne[0], (long long)dst->ne[1], (long long)w->ne[1], (long long)x->ne[1]);
    return LM_OK;
}

extern "C" lm_status lm__cu_mul_mat(lm_backend *be, const lm_tensor *w, const lm_tensor *x,
                                    lm_tensor *dst) {
    lm__cuda *c = lm__cu_ctx_op(be);
    LM_TRY(lm__cu_mm_check(w, x, dst));
    const int64_t M = x->ne[1];
    const int tiled = lm__cu_is_quant(w->type) && c->cc >= 72 &&
                      (c->force_mm == 2 || (c->force_mm == 0 && M > 8));
    lm_status st = tiled ? lm__cu_matmul_mma(c, w, x, dst) : lm__cu_matvec(c, w, x, dst);
    /* dst overwrote what the memo's activations came from: forget them */
    const char *d0 = lm__cu_data(dst), *d1 = d0 + lm_tensor_nbytes(dst);
    if (c->memo.valid && c->memo.x < d1 &&
        d0 < c->memo.x + (size_t)(c->memo.M - 1) * c->memo.x_nb1 + (size_t)c->memo.K * 4)
        c->memo.valid = 0;
    return st;
}
