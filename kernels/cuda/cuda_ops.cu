/* The CUDA backend's small ops: get_rows, rms_norm, rope, kv_store, swiglu, geglu, add,
 * mul, scale, argmax, copy. Each entry point checks its arguments as the CPU backend does
 * (same conditions, LM_ERR_INVALID_ARG naming op and argument), then launches. Ids and
 * positions live in device memory: outside begin..end they are read back and checked as
 * the CPU checks them; inside, a kernel that meets a bad one skips it and sets a bit of
 * the device error flag, which sync() reports.
 *
 * Numerics follow the CPU's expressions with one IEEE rounding per operation (the _rn
 * intrinsics keep nvcc from fusing multiply-adds): dequantisation, add, mul, scale, copy
 * and kv_store give the CPU's bits; rms_norm sums squares in double as the CPU (in another
 * order); rope computes angles in double as the CPU; expf/tanhf are CUDA's (<= 2 ulp). */
#include "cuda_common.cuh"

#include <math.h>

#define LM__F32 ((int)LM_TYPE_F32)
#define LM__I32 ((int)LM_TYPE_I32)

static lm_status lm__cu_bad(const char *op, const char *what, long long got, long long want) {
    return lm__error(LM_ERR_INVALID_ARG, "%s: %s = %lld, expected %lld", op, what, got, want);
}

static lm_status lm__cu_computable(const char *op, const char *arg, const lm_tensor *t) {
    if (!lm_type_computable(t->type))
        return lm__error(LM_ERR_INVALID_ARG, "%s: %s type %s is not supported", op, arg,
                         lm_type_get((uint32_t)t->type).name);
    return LM_OK;
}

/* Grid rows: y is limited to 65535, so kernels loop over rows with gridDim.y strides. */
static unsigned lm__cu_gy(int64_t rows) {
    return (unsigned)(rows < 65535 ? rows : 65535);
}

/* Outside a recording: the n ids of t must lie in [0, limit) (the CPU's check). */
static lm_status lm__cu_check_ids(lm__cuda *c, const char *op, const char *what, const lm_tensor *t,
                                  int64_t n, int64_t limit) {
    if (c->recording || n == 0) return LM_OK;
    int32_t stack[256], *v = n <= 256 ? stack : (int32_t *)LM_MALLOC((size_t)n * sizeof *v);
    if (!v) return lm__error(LM_ERR_NOMEM, "%s: %lld %s", op, (long long)n, what);
    lm_status s = lm__cu_read_i32(c, t, v, n);
    for (int64_t i = 0; s == LM_OK && i < n; i++)
        if (v[i] < 0 || v[i] >= limit)
            s = lm__error(LM_ERR_INVALID_ARG, "%s: %s[%lld] = %d is outside [0, %lld)", op, what,
                          (long long)i, v[i], (long long)limit);
    if (v != stack) LM_FREE(v);
    return s;
}

/* ---- dequantisation of one block (the kernels/common functions the CPU uses) ---- */

/* Elements per block of a computable type, for the kernels' block loops. */
static int lm__cu_blck(lm_type t) {
    return lm_type_get((uint32_t)t).blck;
}

/* out[0 .. blck) = block i of a row of type t. */
__device__ __forceinline__ void lm__cu_dequant(int t, const char *row, int64_t i, float *out) {
    switch (t) {
    case LM_TYPE_F32:
        out[0] = ((const float *)row)[i];
        return;
    case LM_TYPE_F16:
        out[0] = lm__cu_h2f(((const uint16_t *)row)[i]);
        return;
    case LM_TYPE_BF16:
        out[0] = lm_bf16_to_fp32(((const uint16_t *)row)[i]);
        return;
#define LM__DQ(T, BLK, FN)                                                                         \
    case T:                                                                                        \
        FN((const BLK *)row + i, out);                                                             \
        return;
        LM__DQ(LM_TYPE_Q4_0, lm_block_q4_0, lm_dequant_q4_0_block)
        LM__DQ(LM_TYPE_Q4_1, lm_block_q4_1, lm_dequant_q4_1_block)
        LM__DQ(LM_TYPE_Q5_0, lm_block_q5_0, lm_dequant_q5_0_block)
        LM__DQ(LM_TYPE_Q5_1, lm_block_q5_1, lm_dequant_q5_1_block)
        LM__DQ(LM_TYPE_Q8_0, lm_block_q8_0, lm_dequant_q8_0_block)
        LM__DQ(LM_TYPE_Q2_K, lm_block_q2_K, lm_dequant_q2_K_block)
        LM__DQ(LM_TYPE_Q3_K, lm_block_q3_K, lm_dequant_q3_K_block)
        LM__DQ(LM_TYPE_Q4_K, lm_block_q4_K, lm_dequant_q4_K_block)
        LM__DQ(LM_TYPE_Q5_K, lm_block_q5_K, lm_dequant_q5_K_block)
        LM__DQ(LM_TYPE_Q6_K, lm_block_q6_K, lm_dequant_q6_K_block)
#undef LM__DQ
    default:
        out[0] = __int_as_float(0x7fc00000);
        return; /* NaN: a missed check shows */
    }
}

/* ---- get_rows: src [ne0, rows] any computable type, ids I32 [n], dst F32 [ne0, n] ---- */

__global__ void lm__cu_get_rows_kernel(int type, lm__cu_view src, const int32_t *ids,
                                       lm__cu_view dst, int blck, int *err) {
    const int64_t i = blockIdx.x, b = (int64_t)blockIdx.y * blockDim.x + threadIdx.x;
    const int64_t nblk = src.ne[0] / blck;
    if (b >= nblk) return;
    const int32_t id = ids[i];
    if (id < 0 || id >= src.ne[1]) {
        if (b == 0) atomicOr(err, LM_CU_ERR_GET_ROWS);
        return;
    }
    lm__cu_dequant(type, lm__cu_row(src, id, 0, 0), b,
                   (float *)lm__cu_row(dst, i, 0, 0) + b * blck);
}

extern "C" lm_status lm__cu_get_rows(lm_backend *be, const lm_tensor *src, const lm_tensor *ids,
                                     lm_tensor *dst) {
    const char *op = "get_rows";
    lm__cuda *c = lm__cu_op(be);
    LM_TRY(lm__cu_check(op, "src", src, -1));
    LM_TRY(lm__cu_computable(op, "src", src));
    LM_TRY(lm__cu_check(op, "ids", ids, LM__I32));
    LM_TRY(lm__cu_check(op, "dst", dst, LM__F32));
    LM_TRY(lm_op_check_get_rows(src, ids, dst));
    LM_TRY(lm__cu_check_ids(c, op, "ids", ids, ids->ne[0], src->ne[1]));
    const int blck = lm__cu_blck(src->type);
    const int64_t nblk = src->ne[0] / blck;
    const int th = nblk < 128 ? 32 : 128;
    const int64_t gy = (nblk + th - 1) / th;
    if (gy > 65535 || ids->ne[0] > 0x7fffffff)
        return lm__error(LM_ERR_UNSUPPORTED, "get_rows: rows of %lld blocks", (long long)nblk);
    lm__cu_get_rows_kernel<<<dim3((unsigned)ids->ne[0], (unsigned)gy), th, 0, c->stream>>>(
        (int)src->type, lm__cu_view_of(src), (const int32_t *)lm__cu_data(ids), lm__cu_view_of(dst),
        blck, c->d_err);
    return lm__cu_launched(op);
}

/* ---- rms_norm: x F32 [ne0, ...], w F32 [ne0] or NULL, dst like x (may be x) ---- */

/* Sum over the block (blockDim.x a multiple of 32, at most 1024), returned to all. */
__device__ double lm__cu_block_sum(double v) {
    __shared__ double part[32];
    for (int o = 16; o > 0; o >>= 1) v = __dadd_rn(v, __shfl_xor_sync(0xffffffffu, v, o));
    const int warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads(); /* part[] may still be read by a previous call */
    if ((threadIdx.x & 31) == 0) part[warp] = v;
    __syncthreads();
    double s = 0;
    for (int i = 0; i < nw; i++) s = __dadd_rn(s, part[i]);
    return s;
}

__global__ void lm__cu_rms_kernel(lm__cu_view x, lm__cu_view y, const float *w, float eps) {
    const int64_t n = x.ne[0];
    const int64_t rows = x.ne[1] * x.ne[2] * x.ne[3];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = (const float *)lm__cu_row_flat(x, r);
        float *yr = (float *)lm__cu_row_flat(y, r);
        double ss = 0; /* double, as the CPU: the mean of squares of thousands of values */
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
            ss = __dadd_rn(ss, __dmul_rn((double)xr[i], (double)xr[i]));
        ss = lm__cu_block_sum(ss);
        const float s = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
            yr[i] = __fmul_rn(__fmul_rn(xr[i], s), w ? w[i] : 1.0f);
    }
}

extern "C" lm_status lm__cu_rms_norm(lm_backend *be, const lm_tensor *x, const lm_tensor *w,
                                     float eps, lm_tensor *dst) {
    const char *op = "rms_norm";
    lm__cuda *c = lm__cu_op(be);
    LM_TRY(lm__cu_check(op, "x", x, LM__F32));
    LM_TRY(lm__cu_check(op, "dst", dst, LM__F32));
    LM_TRY(lm__cu_check_same_shape(op, "x", x, "dst", dst));
    if (w) {
        LM_TRY(lm__cu_check(op, "w", w, LM__F32));
        if (w->ne[0] != x->ne[0] || lm__cu_nrows(w) != 1)
            return lm__error(LM_ERR_INVALID_ARG,
                             "rms_norm: w has %lld x %lld elements, expected [%lld]",
                             (long long)w->ne[0], (long long)lm__cu_nrows(w), (long long)x->ne[0]);
    }
    if (!(eps >= 0)) return lm__error(LM_ERR_INVALID_ARG, "rms_norm: eps = %g (must be >= 0)", eps);
    const int64_t rows = lm__cu_nrows(x);
    const int th = x->ne[0] >= 1024 ? 256 : x->ne[0] > 64 ? 64 : 32;
    const unsigned grid = (unsigned)(rows < (1 << 20) ? rows : (1 << 20));
    lm__cu_rms_kernel<<<grid, th, 0, c->stream>>>(lm__cu_view_of(x), lm__cu_view_of(dst),
                                                  w ? (const float *)lm__cu_data(w) : NULL, eps);
    return lm__cu_launched(op);
}

/* ---- rope: in place on x F32 [head_dim, n_head, n_tok], pos I32 [n_tok] ---- */

#define LM_CU_ROPE_PAIRS 256 /* n_rot / 2 at most: the tables travel as kernel arguments */

typedef struct lm__cu_rope_args {
    lm__cu_view x;
    const int32_t *pos;
    int half, neox, has_ff;
    float freq_scale;
    double pw[LM_CU_ROPE_PAIRS]; /* freq_base^(-2i / n_rot), from the host's pow as the CPU */
    float ff[LM_CU_ROPE_PAIRS];  /* freq_factors */
} lm__cu_rope_args;

__global__ void lm__cu_rope_kernel(const lm__cu_rope_args a) {
    const int64_t t = blockIdx.x;
    const int i = blockIdx.y * blockDim.x + threadIdx.x;
    if (i >= a.half) return;
    /* angles in double, as the CPU: float would lose digits at large positions */
    double th = (double)a.pos[t] * (double)a.freq_scale * a.pw[i];
    if (a.has_ff) th /= (double)a.ff[i];
    const float cs = (float)cos(th), sn = (float)sin(th);
    const int64_t at = a.neox ? i : 2 * i, mate = a.neox ? a.half : 1;
    for (int64_t h = 0; h < a.x.ne[1]; h++) {
        float *v = (float *)lm__cu_row(a.x, h, t, 0);
        const float x0 = v[at], x1 = v[at + mate];
        v[at] = __fsub_rn(__fmul_rn(x0, cs), __fmul_rn(x1, sn));
        v[at + mate] = __fadd_rn(__fmul_rn(x0, sn), __fmul_rn(x1, cs));
    }
}

extern "C" lm_status lm__cu_rope(lm_backend *be, lm_tensor *x, const lm_tensor *pos,
                                 const lm_rope_params *p) {
    const char *op = "rope";
    lm__cuda *c = lm__cu_op(be);
    LM_TRY(lm__cu_check(op, "x", x, LM__F32));
    LM_TRY(lm__cu_check(op, "pos", pos, LM__I32));
    LM_TRY(lm_op_check_rope(x, pos, p));
    if (p->n_rot / 2 > LM_CU_ROPE_PAIRS)
        return lm__error(LM_ERR_UNSUPPORTED, "rope: n_rot = %d (the CUDA backend takes <= %d)",
                         p->n_rot, 2 * LM_CU_ROPE_PAIRS);
    if (x->ne[2] > 0x7fffffff) return lm__error(LM_ERR_UNSUPPORTED, "rope: too many tokens");
    lm__cu_rope_args a;
    memset(&a, 0, sizeof a);
    a.x = lm__cu_view_of(x);
    a.pos = (const int32_t *)lm__cu_data(pos);
    a.half = p->n_rot / 2;
    a.neox = p->mode == LM_ROPE_NEOX;
    a.has_ff = p->freq_factors != NULL;
    a.freq_scale = p->freq_scale;
    for (int i = 0; i < a.half; i++) {
        a.pw[i] = pow(p->freq_base, -2.0 * i / p->n_rot);
        if (a.has_ff) a.ff[i] = p->freq_factors[i];
    }
    const int th = a.half < 64 ? 32 : 64;
    lm__cu_rope_kernel<<<dim3((unsigned)x->ne[2], (unsigned)((a.half + th - 1) / th)), th, 0,
                         c->stream>>>(a);
    return lm__cu_launched(op);
}

/* ---- kv_store: k, v F32 [head_dim, n_kv_head, n_tok] -> caches [head_dim, n_kv_head,
 * n_ctx, n_seq] (F16 or F32) at (pos[i], seq[i]) ---- */

__global__ void lm__cu_kv_kernel(lm__cu_view k, lm__cu_view v, lm__cu_view kc, lm__cu_view vc,
                                 int f16, const int32_t *pos, const int32_t *seq, int *err) {
    const int64_t t = blockIdx.x, h = blockIdx.y;
    const int32_t p = pos[t], s = seq[t];
    if (p < 0 || p >= kc.ne[2] || s < 0 || s >= kc.ne[3]) {
        if (threadIdx.x == 0) atomicOr(err, LM_CU_ERR_KV_STORE);
        return;
    }
    const float *ks = (const float *)lm__cu_row(k, h, t, 0),
                *vs = (const float *)lm__cu_row(v, h, t, 0);
    char *kd = lm__cu_row(kc, h, p, s), *vd = lm__cu_row(vc, h, p, s);
    for (int64_t d = threadIdx.x; d < k.ne[0]; d += blockDim.x) {
        if (f16) {
            ((uint16_t *)kd)[d] = lm_fp32_to_fp16(ks[d]);
            ((uint16_t *)vd)[d] = lm_fp32_to_fp16(vs[d]);
        } else {
            ((float *)kd)[d] = ks[d];
            ((float *)vd)[d] = vs[d];
        }
    }
}

static lm_status lm__cu_kv_check_cache(const char *name, const lm_tensor *src,
                                       const lm_tensor *cache) {
    LM_TRY(lm__cu_check("kv_store", name, cache, -1));
    if (cache->type == LM_TYPE_Q8_0) /* the CPU and Vulkan backends have it; not written yet */
        return lm__error(LM_ERR_UNSUPPORTED, "kv_store: the CUDA backend has no Q8_0 KV cache yet");
    if (cache->type != LM_TYPE_F16 && cache->type != LM_TYPE_F32)
        return lm__error(LM_ERR_INVALID_ARG, "kv_store: %s type %s, expected F16 or F32", name,
                         lm_type_get((uint32_t)cache->type).name);
    return lm_op_check_kv_cache(name, src, cache);
}

extern "C" lm_status lm__cu_kv_store(lm_backend *be, const lm_tensor *k, const lm_tensor *v,
                                     lm_tensor *k_cache, lm_tensor *v_cache, const lm_tensor *pos,
                                     const lm_tensor *seq) {
    const char *op = "kv_store";
    lm__cuda *c = lm__cu_op(be);
    LM_TRY(lm__cu_check(op, "k", k, LM__F32));
    LM_TRY(lm__cu_check(op, "v", v, LM__F32));
    LM_TRY(lm__cu_check_same_shape(op, "k", k, "v", v));
    LM_TRY(lm__cu_kv_check_cache("k_cache", k, k_cache));
    LM_TRY(lm__cu_kv_check_cache("v_cache", v, v_cache));
    if (k_cache->type != v_cache->type)
        return lm__error(LM_ERR_UNSUPPORTED, "kv_store: k_cache and v_cache types differ");
    LM_TRY(lm__cu_check(op, "pos", pos, LM__I32));
    LM_TRY(lm__cu_check(op, "seq", seq, LM__I32));
    const int64_t T = k->ne[2];
    LM_TRY(lm_op_check_kv_args(k, k_cache, v_cache, pos, seq));
    LM_TRY(lm__cu_check_ids(c, op, "pos", pos, T, k_cache->ne[2]));
    LM_TRY(lm__cu_check_ids(c, op, "seq", seq, T, k_cache->ne[3]));
    if (T > 0x7fffffff || k->ne[1] > 65535)
        return lm__error(LM_ERR_UNSUPPORTED, "kv_store: %lld tokens x %lld heads", (long long)T,
                         (long long)k->ne[1]);
    const int th = k->ne[0] <= 64 ? 64 : 128;
    lm__cu_kv_kernel<<<dim3((unsigned)T, (unsigned)k->ne[1]), th, 0, c->stream>>>(
        lm__cu_view_of(k), lm__cu_view_of(v), lm__cu_view_of(k_cache), lm__cu_view_of(v_cache),
        k_cache->type == LM_TYPE_F16, (const int32_t *)lm__cu_data(pos),
        (const int32_t *)lm__cu_data(seq), c->d_err);
    return lm__cu_launched(op);
}

/* ---- element-wise: swiglu, geglu, add, mul, scale (F32; dst may alias an input) ---- */

enum { LM__EW_SWIGLU, LM__EW_GEGLU, LM__EW_ADD, LM__EW_MUL, LM__EW_SCALE };

template <int KIND>
__global__ void lm__cu_ew_kernel(lm__cu_view a, lm__cu_view b, lm__cu_view d, float s) {
    const int64_t n = a.ne[0], rows = a.ne[1] * a.ne[2] * a.ne[3];
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        const int64_t i1 = r % a.ne[1], i2 = (r / a.ne[1]) % a.ne[2], i3 = r / (a.ne[1] * a.ne[2]);
        const float x = ((const float *)lm__cu_row(a, i1, i2, i3))[i];
        float *y = (float *)lm__cu_row(d, i1, i2, i3);
        if (KIND == LM__EW_SCALE) {
            y[i] = __fmul_rn(x, s);
            continue;
        }
        if (KIND == LM__EW_SWIGLU || KIND == LM__EW_GEGLU) {
            const float u = ((const float *)lm__cu_row(b, i1, i2, i3))[i];
            float g;
            if (KIND == LM__EW_SWIGLU) {
                g = __fdiv_rn(x, __fadd_rn(1.0f, expf(-x)));
            } else { /* gelu, tanh approximation, as the CPU */
                const float k = 0.7978845608028654f;
                const float x3 = __fmul_rn(__fmul_rn(__fmul_rn(0.044715f, x), x), x);
                const float th = tanhf(__fmul_rn(k, __fadd_rn(x, x3)));
                g = __fmul_rn(__fmul_rn(0.5f, x), __fadd_rn(1.0f, th));
            }
            y[i] = __fmul_rn(g, u);
            continue;
        }
        /* b broadcasts along each dim where b.ne[i] == 1 */
        const float *u = (const float *)lm__cu_row(b, b.ne[1] == 1 ? 0 : i1, b.ne[2] == 1 ? 0 : i2,
                                                   b.ne[3] == 1 ? 0 : i3);
        const float ub = u[b.ne[0] == 1 && n != 1 ? 0 : i];
        y[i] = KIND == LM__EW_ADD ? __fadd_rn(x, ub) : __fmul_rn(x, ub);
    }
}

static lm_status lm__cu_ew_run(lm__cuda *c, const char *op, int kind, const lm_tensor *a,
                               const lm_tensor *b, lm_tensor *dst, float s) {
    const int64_t n = a->ne[0], rows = lm__cu_nrows(a);
    const int th = n <= 32 ? 32 : n <= 64 ? 64 : n <= 128 ? 128 : 256;
    const dim3 grid((unsigned)((n + th - 1) / th), lm__cu_gy(rows));
    const lm__cu_view va = lm__cu_view_of(a), vb = b ? lm__cu_view_of(b) : va,
                      vd = lm__cu_view_of(dst);
    switch (kind) {
    case LM__EW_SWIGLU:
        lm__cu_ew_kernel<LM__EW_SWIGLU><<<grid, th, 0, c->stream>>>(va, vb, vd, s);
        break;
    case LM__EW_GEGLU:
        lm__cu_ew_kernel<LM__EW_GEGLU><<<grid, th, 0, c->stream>>>(va, vb, vd, s);
        break;
    case LM__EW_ADD:
        lm__cu_ew_kernel<LM__EW_ADD><<<grid, th, 0, c->stream>>>(va, vb, vd, s);
        break;
    case LM__EW_MUL:
        lm__cu_ew_kernel<LM__EW_MUL><<<grid, th, 0, c->stream>>>(va, vb, vd, s);
        break;
    default:
        lm__cu_ew_kernel<LM__EW_SCALE><<<grid, th, 0, c->stream>>>(va, vb, vd, s);
        break;
    }
    return lm__cu_launched(op);
}

static lm_status lm__cu_glu(lm_backend *be, const char *op, int kind, const lm_tensor *gate,
                            const lm_tensor *up, lm_tensor *dst) {
    lm__cuda *c = lm__cu_op(be);
    LM_TRY(lm__cu_check(op, "gate", gate, LM__F32));
    LM_TRY(lm__cu_check(op, "up", up, LM__F32));
    LM_TRY(lm__cu_check(op, "dst", dst, LM__F32));
    LM_TRY(lm__cu_check_same_shape(op, "gate", gate, "up", up));
    LM_TRY(lm__cu_check_same_shape(op, "gate", gate, "dst", dst));
    return lm__cu_ew_run(c, op, kind, gate, up, dst, 0.0f);
}

extern "C" lm_status lm__cu_swiglu(lm_backend *be, const lm_tensor *gate, const lm_tensor *up,
                                   lm_tensor *dst) {
    return lm__cu_glu(be, "swiglu", LM__EW_SWIGLU, gate, up, dst);
}

extern "C" lm_status lm__cu_geglu(lm_backend *be, const lm_tensor *gate, const lm_tensor *up,
                                  lm_tensor *dst) {
    return lm__cu_glu(be, "geglu", LM__EW_GEGLU, gate, up, dst);
}

static lm_status lm__cu_binary(lm_backend *be, const char *op, int kind, const lm_tensor *a,
                               const lm_tensor *b, lm_tensor *dst) {
    lm__cuda *c = lm__cu_op(be);
    LM_TRY(lm__cu_check(op, "a", a, LM__F32));
    LM_TRY(lm__cu_check(op, "b", b, LM__F32));
    LM_TRY(lm__cu_check(op, "dst", dst, LM__F32));
    LM_TRY(lm__cu_check_same_shape(op, "a", a, "dst", dst));
    for (int i = 0; i < 4; i++)
        if (b->ne[i] != 1 && b->ne[i] != a->ne[i])
            return lm__error(LM_ERR_INVALID_ARG,
                             "%s: b ne[%d] = %lld cannot broadcast to a ne[%d] = %lld", op, i,
                             (long long)b->ne[i], i, (long long)a->ne[i]);
    return lm__cu_ew_run(c, op, kind, a, b, dst, 0.0f);
}

extern "C" lm_status lm__cu_add(lm_backend *be, const lm_tensor *a, const lm_tensor *b,
                                lm_tensor *dst) {
    return lm__cu_binary(be, "add", LM__EW_ADD, a, b, dst);
}

extern "C" lm_status lm__cu_mul(lm_backend *be, const lm_tensor *a, const lm_tensor *b,
                                lm_tensor *dst) {
    return lm__cu_binary(be, "mul", LM__EW_MUL, a, b, dst);
}

extern "C" lm_status lm__cu_scale(lm_backend *be, const lm_tensor *x, float s, lm_tensor *dst) {
    lm__cuda *c = lm__cu_op(be);
    LM_TRY(lm__cu_check("scale", "x", x, LM__F32));
    LM_TRY(lm__cu_check("scale", "dst", dst, LM__F32));
    LM_TRY(lm__cu_check_same_shape("scale", "x", x, "dst", dst));
    return lm__cu_ew_run(c, "scale", LM__EW_SCALE, x, NULL, dst, s);
}

/* ---- argmax: x F32 [ne0, cols...] -> dst I32 [cols]; first max on ties, NaN skipped (an
 * all-NaN column gives 0), as the CPU ---- */

__global__ void lm__cu_argmax_kernel(lm__cu_view x, int32_t *out) {
    __shared__ float sv[256];
    __shared__ int64_t si[256];
    const int64_t r = blockIdx.x, n = x.ne[0], none = INT64_MAX;
    const float *v = (const float *)lm__cu_row_flat(x, r);
    float bv = -INFINITY;
    int64_t bi = none;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
        if (v[i] > bv) bv = v[i], bi = i;
    sv[threadIdx.x] = bv;
    si[threadIdx.x] = bi;
    __syncthreads();
    for (int o = blockDim.x / 2; o > 0; o >>= 1) {
        if (threadIdx.x < o) {
            const float ov = sv[threadIdx.x + o];
            const int64_t oi = si[threadIdx.x + o];
            if (ov > sv[threadIdx.x] || (ov == sv[threadIdx.x] && oi < si[threadIdx.x]))
                sv[threadIdx.x] = ov, si[threadIdx.x] = oi;
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) out[r] = si[0] == none ? 0 : (int32_t)si[0];
}

extern "C" lm_status lm__cu_argmax(lm_backend *be, const lm_tensor *x, lm_tensor *dst) {
    lm__cuda *c = lm__cu_op(be);
    LM_TRY(lm__cu_check("argmax", "x", x, LM__F32));
    LM_TRY(lm__cu_check("argmax", "dst", dst, LM__I32));
    const int64_t cols = lm__cu_nrows(x);
    if (dst->ne[0] != cols || lm__cu_nrows(dst) != 1)
        return lm__cu_bad("argmax", "dst elements", dst->ne[0] * lm__cu_nrows(dst), cols);
    if (cols > 0x7fffffff) return lm__error(LM_ERR_UNSUPPORTED, "argmax: too many columns");
    lm__cu_argmax_kernel<<<(unsigned)cols, 256, 0, c->stream>>>(lm__cu_view_of(x),
                                                                (int32_t *)lm__cu_data(dst));
    return lm__cu_launched("argmax");
}

/* ---- copy: same shape, any computable src -> F32, F16, BF16 or the same type ---- */

/* Same type: 2-byte units (every type's row size and the checked alignment are even). */
__global__ void lm__cu_copy_raw_kernel(lm__cu_view s, lm__cu_view d, int64_t units) {
    const int64_t rows = s.ne[1] * s.ne[2] * s.ne[3];
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= units) return;
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y)
        ((uint16_t *)lm__cu_row_flat(d, r))[i] = ((const uint16_t *)lm__cu_row_flat(s, r))[i];
}

/* Converting: one thread per source block, through float. */
__global__ void lm__cu_copy_conv_kernel(int st, int dt, int blck, lm__cu_view s, lm__cu_view d) {
    const int64_t rows = s.ne[1] * s.ne[2] * s.ne[3], nblk = s.ne[0] / blck;
    const int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= nblk) return;
    float f[LM_QK_K];
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        char *dr = lm__cu_row_flat(d, r);
        if (dt == LM_TYPE_F32) {
            lm__cu_dequant(st, lm__cu_row_flat(s, r), b, (float *)dr + b * blck);
            continue;
        }
        lm__cu_dequant(st, lm__cu_row_flat(s, r), b, f);
        uint16_t *o = (uint16_t *)dr + b * blck;
        for (int j = 0; j < blck; j++)
            o[j] = dt == LM_TYPE_F16 ? lm_fp32_to_fp16(f[j]) : lm_fp32_to_bf16(f[j]);
    }
}

extern "C" lm_status lm__cu_copy(lm_backend *be, const lm_tensor *src, lm_tensor *dst) {
    lm__cuda *c = lm__cu_op(be);
    LM_TRY(lm__cu_check("copy", "src", src, -1));
    LM_TRY(lm__cu_check("copy", "dst", dst, -1));
    LM_TRY(lm__cu_computable("copy", "src", src));
    LM_TRY(lm__cu_computable("copy", "dst", dst));
    LM_TRY(lm__cu_check_same_shape("copy", "src", src, "dst", dst));
    const int64_t rows = lm__cu_nrows(src);
    if (src->type == dst->type) {
        const int64_t units = (int64_t)lm_row_size(src->type, src->ne[0]) / 2;
        const dim3 grid((unsigned)((units + 255) / 256), lm__cu_gy(rows));
        lm__cu_copy_raw_kernel<<<grid, 256, 0, c->stream>>>(lm__cu_view_of(src),
                                                            lm__cu_view_of(dst), units);
        return lm__cu_launched("copy");
    }
    if (dst->type != LM_TYPE_F32 && dst->type != LM_TYPE_F16 && dst->type != LM_TYPE_BF16)
        return lm__error(LM_ERR_UNSUPPORTED, "copy: to %s is not supported by the CUDA backend",
                         lm_type_get((uint32_t)dst->type).name);
    const int blck = lm__cu_blck(src->type);
    const int64_t nblk = src->ne[0] / blck;
    const int th = blck > 1 ? 32 : 256;
    const dim3 grid((unsigned)((nblk + th - 1) / th), lm__cu_gy(rows));
    lm__cu_copy_conv_kernel<<<grid, th, 0, c->stream>>>((int)src->type, (int)dst->type, blck,
                                                        lm__cu_view_of(src), lm__cu_view_of(dst));
    return lm__cu_launched("copy");
}
