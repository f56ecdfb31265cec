/* Shared by the CUDA backend's files (host side): buffers, the backend state, error
 * conversion, argument checks, and the op entry points the table in cuda_backend.cu
 * points at. Each op family is one .cu with three layers: __global__ kernels, a launcher
 * that picks the grid and template instance, and the entry point (checks, then launch).
 *   cuda_backend.cu    device selection, memory pool, stream, error flag, the ops table
 *   cuda_quant.cu      activations -> 16-bit integer blocks (the matmuls' input)
 *   cuda_matvec.cu     decode: mul_mat for M <= 8 columns, every weight type
 *   cuda_matmul.cu     prefill: int8 tensor cores (WMMA) for the quantized types
 *   cuda_attention.cu  flash-style attention with split-K for decode
 *   cuda_ops.cu        get_rows, rms_norm, rope, kv_store, element-wise, argmax, copy
 *   cuda_selftest.cu   host replays of the kernels' arithmetic (tests, no device needed) */
#ifndef LM_CUDA_INTERNAL_H
#define LM_CUDA_INTERNAL_H

#ifdef __cplusplus
/* lm_quant_blocks.h is C11; nvcc compiles C++, whose spelling is static_assert */
#define _Static_assert static_assert
extern "C" {
#endif
#include "../../runtime/backend.h"
#include "../../runtime/lm_internal.h"
#include "../../runtime/quant.h"
#ifdef __cplusplus
}
#endif

#include <cuda_runtime.h>

#include <stddef.h>
#include <stdint.h>

/* Allocations are rounded up to this, so the 16-byte loads that stage a tensor's first
 * and last bytes never leave the allocation (cudaMalloc returns 256-byte aligned bases). */
#define LM_CU_ALIGN 256
/* Freed buffers up to this size are kept for reuse (cudaMalloc/cudaFree synchronise). */
#define LM_CU_POOL_MAX_BYTES   ((size_t)1 << 30)
#define LM_CU_POOL_MAX_ENTRIES 64

/* Bits of the device error flag: kernels that meet an out-of-range id or position inside
 * a recorded step (where the host does not read them) skip it and set a bit; sync()
 * reports it. */
#define LM_CU_ERR_GET_ROWS  1
#define LM_CU_ERR_KV_STORE  2
#define LM_CU_ERR_ATTENTION 4

struct lm_buffer {
    char *dev;   /* device memory, LM_CU_ALIGN aligned */
    size_t size; /* bytes the caller asked for */
    size_t cap;  /* bytes allocated (>= size, multiple of LM_CU_ALIGN) */
};

/* A grow-only device scratch area owned by the backend. */
typedef struct lm__cu_arena {
    char *p;
    size_t size;
} lm__cu_arena;

/* Activations of a quantized mul_mat, as the CPU's lm__q16a / lm__q16k blocks but split
 * into planes for dp4a and the int8 tensor cores: element q (int16, |q| <= 32767) is
 * hi * 256 + lo with hi = q >> 8 (int8) and lo = q & 255 (uint8). All [M][...] rows. */
typedef struct lm__cu_act {
    int8_t *hi;     /* [M][K] */
    uint8_t *lo;    /* [M][K] */
    int32_t *sum16; /* [M][K/16] sums of q over 16 elements (k-quant bsums) */
    float *d;       /* [M][K/blk] scale: amax / 32767 */
    float *s;       /* [M][K/32] d * sum(q) of the 32-block (blk = 32 only) */
    int64_t K, M;
    int blk; /* 32 or 256 */
} lm__cu_act;

typedef struct lm__cu_pooled {
    char *dev;
    size_t cap;
} lm__cu_pooled;

typedef struct lm__cuda {
    int device;
    cudaStream_t stream;
    int cc;           /* compute capability, major * 10 + minor */
    int n_sm;         /* multiprocessors */
    size_t total_mem; /* bytes */
    char name[320];

    lm__cu_pooled pool[LM_CU_POOL_MAX_ENTRIES]; /* freed allocations kept for reuse */
    int n_pool;
    size_t pool_bytes;

    lm__cu_arena act;  /* quantized activations */
    lm__cu_arena attn; /* split attention partials */
    int *d_err;        /* device error flag (LM_CU_ERR_*) */
    int *h_err;        /* pinned host copy read at sync */

    int recording; /* between begin() and end(): ids are not read back to be checked */

    /* the activations last quantized: reused by the next mul_mat on the same x (q, k, v
     * and gate, up share theirs) as long as no other op ran in between */
    struct {
        int valid;
        const char *x;
        size_t x_nb1;
        int64_t K, M;
        int blk;
    } memo;

    int force_mm;    /* tests: 0 auto, 1 matrix-vector kernels, 2 tiled (tensor cores) */
    int force_split; /* tests: attention splits: 0 auto, -1 never, n > 0 exactly n */
} lm__cuda;

#ifdef __cplusplus
extern "C" {
#endif

static inline lm__cuda *lm__cu_ctx(lm_backend *be) {
    return (lm__cuda *)be->ctx;
}

/* The context for an op, with its device current on the calling thread (the current
 * device is per host thread). */
static inline lm__cuda *lm__cu_ctx_op(lm_backend *be) {
    lm__cuda *c = (lm__cuda *)be->ctx;
    cudaSetDevice(c->device); /* cannot fail for a device that was opened */
    return c;
}
/* ... for an op that is not a mul_mat: it may write what the memo quantized. */
static inline lm__cuda *lm__cu_op(lm_backend *be) {
    lm__cuda *c = lm__cu_ctx_op(be);
    c->memo.valid = 0;
    return c;
}

/* A CUDA error as lm_status: LM_ERR_NOMEM for allocation failures, else LM_ERR_BACKEND,
 * with "cuda: <what>: <cudaGetErrorString> (<name>)". */
lm_status lm__cu_fail(cudaError_t e, const char *what);
#define LM_CU_TRY(call, what)                                                                      \
    do {                                                                                           \
        cudaError_t lm__e = (call);                                                                \
        if (lm__e != cudaSuccess) return lm__cu_fail(lm__e, (what));                               \
    } while (0)
/* After a kernel launch: the launch error, if any, naming the op. */
lm_status lm__cu_launched(const char *op);

/* Device address of a tensor's first byte. */
static inline char *lm__cu_data(const lm_tensor *t) {
    return t->buf->dev + t->offset;
}
static inline int64_t lm__cu_nrows(const lm_tensor *t) {
    return t->ne[1] * t->ne[2] * t->ne[3];
}

/* As the CPU's lm__cpu_check: non-NULL with a buffer, a known type (type < 0: any), ne
 * >= 1, contiguous rows, the view inside its buffer; plus the alignment the kernels read
 * at (4 bytes for F32/I32, 2 for the rest) and fewer than 2^31 elements. */
lm_status lm__cu_check(const char *op, const char *arg, const lm_tensor *t, int type);
lm_status lm__cu_check_same_shape(const char *op, const char *an, const lm_tensor *a,
                                  const char *bn, const lm_tensor *b);
/* n int32 of an I32 tensor to the host (synchronises): used outside begin..end to check
 * ids and positions as the CPU does. */
lm_status lm__cu_read_i32(lm__cuda *c, const lm_tensor *t, int32_t *out, int64_t n);
/* A backend scratch area of at least n bytes (grows, never shrinks; waits for the device
 * before freeing the old one). */
lm_status lm__cu_arena_reserve(lm__cuda *c, lm__cu_arena *a, size_t n, const char *what);

/* ---- cuda_quant.cu ---- */
/* The activations x F32 [K, M] (columns nb1 bytes apart) as blocks of blk (32 or 256) in
 * c->act, or the memo's when x is what the previous mul_mat quantized. */
lm_status lm__cu_quantize_act(lm__cuda *c, const lm_tensor *x, int blk, lm__cu_act *out);

/* ---- cuda_matvec.cu / cuda_matmul.cu ---- */
/* dst[:, m] = W x[:, m] with the matrix-vector kernels (any M; columns in groups of 8). */
lm_status lm__cu_matvec(lm__cuda *c, const lm_tensor *w, const lm_tensor *x, lm_tensor *dst);
/* Quantized W on int8 tensor cores (WMMA, sm_72+); LM_ERR_UNSUPPORTED for float W. */
lm_status lm__cu_matmul_mma(lm__cuda *c, const lm_tensor *w, const lm_tensor *x, lm_tensor *dst);
/* True for the weight types the integer kernels take (the quantized computable types). */
int lm__cu_is_quant(lm_type t);

/* ---- ops ---- */
lm_status lm__cu_get_rows(lm_backend *be, const lm_tensor *src, const lm_tensor *ids,
                          lm_tensor *dst);
lm_status lm__cu_rms_norm(lm_backend *be, const lm_tensor *x, const lm_tensor *w, float eps,
                          lm_tensor *dst);
lm_status lm__cu_mul_mat(lm_backend *be, const lm_tensor *w, const lm_tensor *x, lm_tensor *dst);
lm_status lm__cu_rope(lm_backend *be, lm_tensor *x, const lm_tensor *pos, const lm_rope_params *p);
lm_status lm__cu_kv_store(lm_backend *be, const lm_tensor *k, const lm_tensor *v,
                          lm_tensor *k_cache, lm_tensor *v_cache, const lm_tensor *pos,
                          const lm_tensor *seq);
lm_status lm__cu_attention(lm_backend *be, const lm_tensor *q, const lm_tensor *k_cache,
                           const lm_tensor *v_cache, const lm_tensor *pos, const lm_tensor *seq,
                           const lm_attn_params *p, lm_tensor *dst);
lm_status lm__cu_swiglu(lm_backend *be, const lm_tensor *gate, const lm_tensor *up, lm_tensor *dst);
lm_status lm__cu_geglu(lm_backend *be, const lm_tensor *gate, const lm_tensor *up, lm_tensor *dst);
lm_status lm__cu_add(lm_backend *be, const lm_tensor *a, const lm_tensor *b, lm_tensor *dst);
lm_status lm__cu_mul(lm_backend *be, const lm_tensor *a, const lm_tensor *b, lm_tensor *dst);
lm_status lm__cu_scale(lm_backend *be, const lm_tensor *x, float s, lm_tensor *dst);
lm_status lm__cu_argmax(lm_backend *be, const lm_tensor *x, lm_tensor *dst);
lm_status lm__cu_copy(lm_backend *be, const lm_tensor *src, lm_tensor *dst);

/* Host replays of the integer mul_mat kernels' arithmetic (cuda_selftest.cu; no device
 * needed): out_mv and out_mm [N, M] as the matrix-vector and tensor-core kernels compute
 * them for W of type t (N contiguous rows of K) and x F32 [K, M] contiguous. */
lm_status lm__cuda_emulate_mul_mat(lm_type t, const void *w, int64_t K, int64_t N, const float *x,
                                   int64_t M, float *out_mv, float *out_mm);
/* The staging and attention-split geometry for every type, alignment and size: the number
 * of failures (0), the first described in msg. */
int lm__cuda_selftest_geometry(char *msg, size_t size);

/* Internal test knobs (tests/test_cuda_ops.c): mul_mat path 0 auto, 1 matrix-vector, 2
 * tiled; attention splits 0 auto, -1 never, n > 0 exactly n. */
void lm__cuda_set_test_knobs(lm_backend *be, int mm_path, int attn_split);

#ifdef __cplusplus
}
#endif

#endif
