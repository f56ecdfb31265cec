/* mul_mat: dst [N, M] = W [K, N]^T x [K, M], computed as the CPU backend computes it, so
 * results are bit-equal to it:
 *  - float W (F32, F16, BF16): float products summed in 16 lanes (lm__cpu_dot's order),
 *    one invocation per output: 64 rows of a column per workgroup for M <= 8, else
 *    16 x 16 tiles.
 *  - quantized W: x is first quantized to 16 bits per block (quantize_act.comp, as
 *    kernels/cpu/cpu_dot_scalar.c), then each output is the in-order float sum of per-block
 *    integer dot products (M <= 8: one invocation per row and all columns, reading each
 *    weight block once; else 16 x 16 tiles, one invocation per output). The quantized x
 *    is reused by the next mul_mat of the same x (q/k/v, gate/up) until x is written.
 * A weight matrix larger than one storage-buffer binding is split into row ranges, each
 * bound as its own window (likewise columns of x and dst). */
#include "vk_internal.h"

#include "../../runtime/quant.h"

#define LM_VK_MM_VEC_MAX 8 /* widest batch of the matrix-vector kernels */

#define LM_X_FTYPE(X) X(F32) X(F16) X(BF16)
#define LM_X_QTYPE(X)                                                                              \
    X(Q4_0) X(Q4_1) X(Q5_0) X(Q5_1) X(Q8_0) X(Q2_K) X(Q3_K) X(Q4_K) X(Q5_K) X(Q6_K)

static const lm_vk_shader_id lm__vk_mm_vec[LM_TYPE_COUNT] = {
#define LM_X_VEC(t) [LM_TYPE_##t] = LM_VK_SHADER_mul_mat_vec_##t,
    LM_X_FTYPE(LM_X_VEC)
#undef LM_X_VEC
#define LM_X_QVEC(t) [LM_TYPE_##t] = LM_VK_SHADER_mul_mat_qvec_##t,
        LM_X_QTYPE(LM_X_QVEC)
#undef LM_X_QVEC
};
static const lm_vk_shader_id lm__vk_mm_tile[LM_TYPE_COUNT] = {
#define LM_X_TILE(t) [LM_TYPE_##t] = LM_VK_SHADER_mul_mat_tile_##t,
    LM_X_FTYPE(LM_X_TILE)
#undef LM_X_TILE
#define LM_X_QTILE(t) [LM_TYPE_##t] = LM_VK_SHADER_mul_mat_qtile_##t,
        LM_X_QTYPE(LM_X_QTILE)
#undef LM_X_QTILE
};

typedef struct {
    uint32_t K, N, M, w_off, w_nb1, x_off, x_nb1, d_off, d_nb1;
} lm__vk_mm_pc;

typedef struct {
    uint32_t K, N, M, nb, w_off, w_nb1, act_qs, act_d, act_s, d_off, d_nb1;
} lm__vk_mmq_pc;

typedef struct {
    uint32_t K, M, nb, x_off, x_nb1, act_qs, act_d, act_s;
} lm__vk_quant_pc;

/* Layout of M columns of 16-bit activations in the act arena (bytes from `at`). */
typedef struct {
    int kind; /* 0: 32-element blocks (d, s), 1: 256-element blocks (d, 16 sums) */
    int64_t nb, blck;
    size_t qs, d, s, size; /* offsets and total bytes */
} lm__vk_act_layout;

static lm__vk_act_layout lm__vk_act_layout_of(lm_type wt, int64_t K, int64_t M) {
    lm__vk_act_layout l;
    l.kind = lm_type_get((uint32_t)wt).blck == 256;
    l.blck = l.kind ? 256 : 32;
    l.nb = K / l.blck;
    const size_t nblk = (size_t)(l.nb * M);
    l.qs = 0;
    l.d = ((size_t)(K * M) * 2 + 15) & ~(size_t)15;
    l.s = l.d + ((nblk * 4 + 15) & ~(size_t)15);
    l.size = l.s + ((nblk * 4 * (l.kind ? 16 : 1) + 15) & ~(size_t)15);
    return l;
}

/* Room for n bytes in the act arena (flushing or growing it as needed); *at its offset. */
static lm_status lm__vk_act_alloc(lm__vk *v, size_t n, VkDeviceSize *at) {
    n = (n + v->bind_align - 1) & ~(size_t)(v->bind_align - 1);
    if (!v->act || v->act->size < n) {
        size_t cap = v->act ? v->act->size * 2 : (size_t)4 << 20;
        if (cap < n) cap = n;
        if (v->act) {
            LM_TRY(lm__vk_flush(v));
            lm__vk_buffer_del(v, v->act);
            v->act = NULL;
        }
        LM_TRY(lm__vk_buffer_new(v, cap, 0, &v->act));
    }
    if (v->act_used + n > v->act->size) LM_TRY(lm__vk_flush(v)); /* resets act_used */
    *at = v->act_used;
    v->act_used += n;
    return LM_OK;
}

static lm_status lm__vk_act_view(lm__vk *v, VkDeviceSize at, size_t size, lm__vk_view *out) {
    lm_tensor t;
    lm_tensor_init(&t, v->act, at, LM_TYPE_I8, (int64_t)size, 1, 1, 1);
    return lm__vk_view_of(v, &t, "mul_mat", "activations", out);
}

/* Quantize x into the act arena unless the last quantization of this same x is valid. */
static lm_status lm__vk_quantize_x(lm__vk *v, const lm_tensor *x, const lm__vk_act_layout *l,
                                   VkDeviceSize *at) {
    const size_t span = lm_tensor_nbytes(x);
    if (v->memo.valid && v->memo.kind == l->kind && v->memo.buf == x->buf->buf &&
        v->memo.x_off == x->offset && v->memo.x_nb1 == x->nb[1] && v->memo.K == x->ne[0] &&
        v->memo.M == x->ne[1]) {
        *at = v->memo.at;
        return LM_OK;
    }
    LM_TRY(lm__vk_act_alloc(v, l->size, at));
    lm__vk_view vx, va;
    LM_TRY(lm__vk_view_of(v, x, "mul_mat", "x", &vx));
    LM_TRY(lm__vk_act_view(v, *at, l->size, &va));
    lm__vk_cmd c = {.shader =
                        l->kind ? LM_VK_SHADER_quantize_act_256 : LM_VK_SHADER_quantize_act_32};
    lm__vk_bind(&c, &vx, 0);
    lm__vk_bind(&c, &va, 1);
    lm__vk_quant_pc pc = {(uint32_t)x->ne[0],
                          (uint32_t)x->ne[1],
                          (uint32_t)l->nb,
                          vx.base / 4,
                          (uint32_t)(x->nb[1] / 4),
                          va.base + (uint32_t)l->qs,
                          (va.base + (uint32_t)l->d) / 4,
                          (va.base + (uint32_t)l->s) / 4};
    LM_VK_PC(&c, pc);
    c.n_groups = (uint64_t)((l->nb * x->ne[1] + 63) / 64);
    LM_TRY(lm__vk_run(v, &c));
    v->memo.valid = 1;
    v->memo.kind = l->kind;
    v->memo.buf = x->buf->buf;
    v->memo.lo = x->offset;
    v->memo.hi = x->offset + span;
    v->memo.x_off = x->offset;
    v->memo.x_nb1 = x->nb[1];
    v->memo.K = x->ne[0];
    v->memo.M = x->ne[1];
    v->memo.at = *at;
    return LM_OK;
}

/* W rows [n0, n1) and dst columns [m0, m1) as windows. */
static lm_status lm__vk_mm_views(lm__vk *v, const lm_tensor *w, const lm_tensor *dst, int64_t n0,
                                 int64_t n1, int64_t m0, int64_t m1, lm__vk_view *vw,
                                 lm__vk_view *vd) {
    const size_t rs = lm_row_size(w->type, w->ne[0]);
    LM_TRY(lm__vk_view_range(v, w, (size_t)n0 * w->nb[1], (size_t)(n1 - 1) * w->nb[1] + rs,
                             "mul_mat", "W", vw));
    return lm__vk_view_range(v, dst, (size_t)m0 * dst->nb[1] + (size_t)n0 * 4,
                             (size_t)(m1 - 1) * dst->nb[1] + (size_t)n1 * 4, "mul_mat", "dst", vd);
}

/* Workgroups of the kernels: tiled 16 x 16 outputs (64 x 16 for 32-element blocks);
 * vector 64 rows x 1 column (float), quantized 32 invocations x 8 columns, each
 * invocation 4 rows (32-element blocks) or 1 (k-quants). */
static uint64_t lm__vk_mm_groups(int tiled, lm_type wt, int64_t N, int64_t M) {
    const int blck = lm_type_get((uint32_t)wt).blck;
    if (tiled && blck == 32) /* 64 invocations of 4 x 4 outputs */
        return (uint64_t)((N + 63) / 64) * (uint64_t)((M + 15) / 16);
    if (tiled) return (uint64_t)((N + 15) / 16) * (uint64_t)((M + 15) / 16);
    if (blck == 1) return (uint64_t)((N + 63) / 64) * (uint64_t)M;
    const int64_t rows = blck == 32 ? 128 : 32;
    return (uint64_t)((N + rows - 1) / rows) * (uint64_t)((M + 7) / 8);
}

static lm_status lm__vk_mm_float(lm__vk *v, lm_vk_shader_id sh, int tiled, const lm_tensor *w,
                                 const lm_tensor *x, const lm_tensor *dst, int64_t n0, int64_t n1,
                                 int64_t m0, int64_t m1) {
    lm__vk_view vw, vx, vd;
    LM_TRY(lm__vk_mm_views(v, w, dst, n0, n1, m0, m1, &vw, &vd));
    LM_TRY(lm__vk_view_range(v, x, (size_t)m0 * x->nb[1],
                             (size_t)(m1 - 1) * x->nb[1] + (size_t)x->ne[0] * 4, "mul_mat", "x",
                             &vx));
    lm__vk_cmd c = {.shader = sh};
    lm__vk_bind(&c, &vw, 0);
    lm__vk_bind(&c, &vx, 0);
    lm__vk_bind(&c, &vd, 1);
    const int64_t N = n1 - n0, M = m1 - m0;
    lm__vk_mm_pc pc = {(uint32_t)w->ne[0],
                       (uint32_t)N,
                       (uint32_t)M,
                       vw.base,
                       (uint32_t)w->nb[1],
                       vx.base / 4,
                       (uint32_t)(x->nb[1] / 4),
                       vd.base / 4,
                       (uint32_t)(dst->nb[1] / 4)};
    LM_VK_PC(&c, pc);
    c.n_groups = lm__vk_mm_groups(tiled, w->type, N, M);
    return lm__vk_run(v, &c);
}

static lm_status lm__vk_mm_quant(lm__vk *v, lm_vk_shader_id sh, int tiled, const lm_tensor *w,
                                 const lm__vk_act_layout *l, VkDeviceSize at, const lm_tensor *dst,
                                 int64_t n0, int64_t n1, int64_t m0, int64_t m1) {
    lm__vk_view vw, va, vd;
    LM_TRY(lm__vk_mm_views(v, w, dst, n0, n1, m0, m1, &vw, &vd));
    LM_TRY(lm__vk_act_view(v, at, l->size, &va));
    lm__vk_cmd c = {.shader = sh};
    lm__vk_bind(&c, &vw, 0);
    lm__vk_bind(&c, &va, 0);
    lm__vk_bind(&c, &vd, 1);
    const int64_t N = n1 - n0, M = m1 - m0, nbm = l->nb * m0;
    lm__vk_mmq_pc pc = {(uint32_t)w->ne[0],
                        (uint32_t)N,
                        (uint32_t)M,
                        (uint32_t)l->nb,
                        vw.base,
                        (uint32_t)w->nb[1],
                        va.base + (uint32_t)(l->qs + (size_t)(nbm * l->blck) * 2),
                        (va.base + (uint32_t)l->d) / 4 + (uint32_t)nbm,
                        (va.base + (uint32_t)l->s) / 4 + (uint32_t)(nbm * (l->kind ? 16 : 1)),
                        vd.base / 4,
                        (uint32_t)(dst->nb[1] / 4)};
    LM_VK_PC(&c, pc);
    c.n_groups = lm__vk_mm_groups(tiled, w->type, N, M);
    return lm__vk_run(v, &c);
}

/* How many of n items of `stride` bytes (the last `tail` bytes long) one window holds. */
static int64_t lm__vk_fit(const lm__vk *v, int64_t n, size_t stride, size_t tail) {
    const VkDeviceSize room = v->max_range - v->bind_align - 4;
    if ((VkDeviceSize)(n - 1) * stride + tail <= room) return n;
    if (tail > room || stride == 0) return 1; /* a single one is too big: reported later */
    return (int64_t)((room - tail) / stride) + 1;
}

lm_status lm__vk_mul_mat(lm_backend *be, const lm_tensor *w, const lm_tensor *x, lm_tensor *dst) {
    const char *op = "mul_mat";
    lm__vk *v = lm__vk_ctx(be);
    LM_TRY(lm__vk_check(op, "W", w, -1));
    lm_vk_shader_id vec, tile;
    LM_TRY(lm__vk_weight_shader(lm__vk_mm_vec, op, "W", w->type, &vec));
    LM_TRY(lm__vk_weight_shader(lm__vk_mm_tile, op, "W", w->type, &tile));
    LM_TRY(lm__vk_check(op, "x", x, LM_TYPE_F32));
    LM_TRY(lm__vk_check(op, "dst", dst, LM_TYPE_F32));
    if (lm__vk_nrows(w) != w->ne[1] || lm__vk_nrows(x) != x->ne[1] ||
        lm__vk_nrows(dst) != dst->ne[1])
        return lm__error(LM_ERR_INVALID_ARG,
                         "mul_mat: W, x and dst must be 2-D (ne[2] = ne[3] = 1)");
    if (x->ne[0] != w->ne[0])
        return lm__error(LM_ERR_INVALID_ARG, "mul_mat: x ne[0] = %lld != W ne[0] (K) = %lld",
                         (long long)x->ne[0], (long long)w->ne[0]);
    if (dst->ne[0] != w->ne[1] || dst->ne[1] != x->ne[1])
        return lm__error(
            LM_ERR_INVALID_ARG, "mul_mat: dst is [%lld, %lld], expected [N=%lld, M=%lld]",
            (long long)dst->ne[0], (long long)dst->ne[1], (long long)w->ne[1], (long long)x->ne[1]);
    const int64_t N = w->ne[1], M = x->ne[1];
    const int tiled = v->force_mm == 2 || (v->force_mm == 0 && M > LM_VK_MM_VEC_MAX);
    const int quant = lm_type_get((uint32_t)w->type).blck > 1;
    lm__vk_act_layout l = {0};
    VkDeviceSize at = 0;
    if (quant) {
        l = lm__vk_act_layout_of(w->type, w->ne[0], M);
        LM_TRY(lm__vk_quantize_x(v, x, &l, &at));
    }
    /* windows: rows of W per part, columns of x/dst per part */
    const size_t rs = lm_row_size(w->type, w->ne[0]);
    const int64_t n_per = lm__vk_fit(v, N, w->nb[1], rs);
    const int64_t m_x = quant ? M : lm__vk_fit(v, M, x->nb[1], (size_t)x->ne[0] * 4);
    const int64_t m_d = lm__vk_fit(v, M, dst->nb[1], (size_t)n_per * 4);
    const int64_t m_per = m_x < m_d ? m_x : m_d;
    for (int64_t n0 = 0; n0 < N; n0 += n_per)
        for (int64_t m0 = 0; m0 < M; m0 += m_per) {
            const int64_t n1 = n0 + n_per < N ? n0 + n_per : N;
            const int64_t m1 = m0 + m_per < M ? m0 + m_per : M;
            if (quant)
                LM_TRY(
                    lm__vk_mm_quant(v, tiled ? tile : vec, tiled, w, &l, at, dst, n0, n1, m0, m1));
            else
                LM_TRY(lm__vk_mm_float(v, tiled ? tile : vec, tiled, w, x, dst, n0, n1, m0, m1));
        }
    return LM_OK;
}
