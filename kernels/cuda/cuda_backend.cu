/* The CUDA backend: device selection, buffers from a small pool, one stream, the device
 * error flag, argument checks shared by the ops, and the lm_backend_ops table.
 *
 * Every op is enqueued on the backend's stream and returns at once; download() and sync()
 * wait. begin()..end() only marks a recorded step: inside it the ops do not read ids and
 * positions back to check them (the kernels skip bad ones and flag them, see
 * LM_CU_ERR_*), so a step never waits for the device until its sync(). All per-token
 * values are in device memory and the kernels' arguments depend only on shapes, so a step
 * could be captured as a CUDA graph and replayed (not done yet). */
#include "cuda_common.cuh"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef LM_CUDA_ARCHS
#define LM_CUDA_ARCHS "?"
#endif

/* ---- errors ---- */

extern "C" lm_status lm__cu_fail(cudaError_t e, const char *what) {
    const lm_status s = e == cudaErrorMemoryAllocation ? LM_ERR_NOMEM : LM_ERR_BACKEND;
    return lm__error(s, "cuda: %s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

extern "C" lm_status lm__cu_launched(const char *op) {
    const cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return LM_OK;
    return lm__cu_fail(e, op);
}

/* The calling thread's current device is per thread: make it ours. */
static lm_status lm__cu_use(const lm__cuda *c) {
    LM_CU_TRY(cudaSetDevice(c->device), "cudaSetDevice");
    return LM_OK;
}

/* ---- argument checks ---- */

extern "C" lm_status lm__cu_check(const char *op, const char *arg, const lm_tensor *t, int type) {
    if (!t) return lm__error(LM_ERR_INVALID_ARG, "%s: %s is NULL", op, arg);
    if (!t->buf) return lm__error(LM_ERR_INVALID_ARG, "%s: %s has no buffer", op, arg);
    const lm_type_traits tr = lm_type_get((uint32_t)t->type);
    if (!tr.name)
        return lm__error(LM_ERR_INVALID_ARG, "%s: %s has unknown type %d", op, arg, (int)t->type);
    if (type >= 0 && (int)t->type != type)
        return lm__error(LM_ERR_INVALID_ARG, "%s: %s has type %s, expected %s", op, arg, tr.name,
                         lm_type_get((uint32_t)type).name);
    for (int i = 0; i < 4; i++)
        if (t->ne[i] < 1)
            return lm__error(LM_ERR_INVALID_ARG, "%s: %s has ne[%d] = %lld (must be >= 1)", op, arg,
                             i, (long long)t->ne[i]);
    if (t->ne[0] % tr.blck != 0)
        return lm__error(LM_ERR_INVALID_ARG,
                         "%s: %s ne[0] = %lld is not a multiple of the %s block size %d", op, arg,
                         (long long)t->ne[0], tr.name, (int)tr.blck);
    if (t->nb[0] != (size_t)tr.size)
        return lm__error(LM_ERR_INVALID_ARG,
                         "%s: %s nb[0] = %zu, expected %d (rows must be contiguous)", op, arg,
                         t->nb[0], (int)tr.size);
    uint64_t end = lm_row_size(t->type, t->ne[0]), step;
    for (int i = 1; i < 4; i++) {
        if (!lm__mul_ok((uint64_t)(t->ne[i] - 1), t->nb[i], &step) || !lm__add_ok(end, step, &end))
            return lm__error(LM_ERR_INVALID_ARG, "%s: %s strides overflow", op, arg);
    }
    if (!lm__add_ok(end, t->offset, &end) || end > t->buf->size)
        return lm__error(LM_ERR_INVALID_ARG,
                         "%s: %s view (offset %zu, %llu bytes) exceeds its buffer (%zu bytes)", op,
                         arg, t->offset, (unsigned long long)(end - t->offset), t->buf->size);
    /* kernels read F32/I32 as 4-byte words and everything else from 2-byte halves */
    const size_t a = tr.size == 4 && tr.blck == 1 ? 4 : 2;
    if (t->offset % a || t->nb[1] % a || t->nb[2] % a || t->nb[3] % a)
        return lm__error(LM_ERR_UNSUPPORTED,
                         "%s: %s offset %zu / strides %zu,%zu,%zu are not multiples of %zu bytes "
                         "(needed by the CUDA backend)",
                         op, arg, t->offset, t->nb[1], t->nb[2], t->nb[3], a);
    if ((uint64_t)lm_tensor_nelements(t) > 0x7fffffffu)
        return lm__error(LM_ERR_UNSUPPORTED, "%s: %s has more than 2^31 elements", op, arg);
    return LM_OK;
}

extern "C" lm_status lm__cu_check_same_shape(const char *op, const char *an, const lm_tensor *a,
                                             const char *bn, const lm_tensor *b) {
    for (int i = 0; i < 4; i++)
        if (a->ne[i] != b->ne[i])
            return lm__error(LM_ERR_INVALID_ARG,
                             "%s: shape mismatch: %s [%lld,%lld,%lld,%lld] vs %s "
                             "[%lld,%lld,%lld,%lld]",
                             op, an, (long long)a->ne[0], (long long)a->ne[1], (long long)a->ne[2],
                             (long long)a->ne[3], bn, (long long)b->ne[0], (long long)b->ne[1],
                             (long long)b->ne[2], (long long)b->ne[3]);
    return LM_OK;
}

extern "C" lm_status lm__cu_read_i32(lm__cuda *c, const lm_tensor *t, int32_t *out, int64_t n) {
    LM_CU_TRY(cudaMemcpyAsync(out, lm__cu_data(t), (size_t)n * sizeof(int32_t),
                              cudaMemcpyDeviceToHost, c->stream),
              "reading ids back");
    LM_CU_TRY(cudaStreamSynchronize(c->stream), "reading ids back");
    return LM_OK;
}

/* ---- memory: cudaMalloc'd blocks, freed ones kept for reuse ---- */

static size_t lm__cu_round_up(size_t n) {
    return n == 0 ? LM_CU_ALIGN : (n + LM_CU_ALIGN - 1) & ~(size_t)(LM_CU_ALIGN - 1);
}

static void lm__cu_pool_release(lm__cuda *c) {
    for (int i = 0; i < c->n_pool; i++) cudaFree(c->pool[i].dev);
    c->n_pool = 0;
    c->pool_bytes = 0;
}

/* cap bytes of device memory: a pooled block of at most twice that, else cudaMalloc
 * (after emptying the pool if the device is full). */
static lm_status lm__cu_malloc(lm__cuda *c, size_t cap, char **out, const char *what) {
    int best = -1;
    for (int i = 0; i < c->n_pool; i++)
        if (c->pool[i].cap >= cap && c->pool[i].cap / 2 <= cap &&
            (best < 0 || c->pool[i].cap < c->pool[best].cap))
            best = i;
    if (best >= 0) {
        *out = c->pool[best].dev;
        c->pool_bytes -= c->pool[best].cap;
        c->pool[best] = c->pool[--c->n_pool];
        return LM_OK;
    }
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, cap);
    if (e == cudaErrorMemoryAllocation && c->n_pool) {
        cudaGetLastError();
        lm__cu_pool_release(c);
        e = cudaMalloc(&p, cap);
    }
    if (e != cudaSuccess) {
        cudaGetLastError(); /* not sticky: clear it */
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        return lm__error(e == cudaErrorMemoryAllocation ? LM_ERR_NOMEM : LM_ERR_BACKEND,
                         "cuda: cannot allocate %zu bytes for %s on %s (%.1f MiB free): %s", cap,
                         what, c->name, free_b / 1048576.0, cudaGetErrorString(e));
    }
    *out = (char *)p;
    return LM_OK;
}

static void lm__cu_mfree(lm__cuda *c, char *dev, size_t cap) {
    if (!dev) return;
    if (c->n_pool < LM_CU_POOL_MAX_ENTRIES && c->pool_bytes + cap <= LM_CU_POOL_MAX_BYTES) {
        c->pool[c->n_pool].dev = dev;
        c->pool[c->n_pool].cap = cap;
        c->n_pool++;
        c->pool_bytes += cap;
        return; /* later users are ordered after earlier ones on the one stream */
    }
    cudaFree(dev); /* waits for the device */
}

extern "C" lm_status lm__cu_arena_reserve(lm__cuda *c, lm__cu_arena *a, size_t n,
                                          const char *what) {
    if (n <= a->size) return LM_OK;
    const size_t cap = lm__cu_round_up(n + n / 4);
    char *p = NULL;
    LM_TRY(lm__cu_malloc(c, cap, &p, what));
    if (a->p) {
        /* kernels already enqueued may still read the old area */
        cudaError_t e = cudaStreamSynchronize(c->stream);
        if (e != cudaSuccess) {
            lm__cu_mfree(c, p, cap);
            return lm__cu_fail(e, what);
        }
        cudaFree(a->p);
    }
    a->p = p;
    a->size = cap;
    c->memo.valid = 0;
    return LM_OK;
}

/* ---- the lm_backend_ops functions ---- */

static void lm__cu_destroy(lm_backend *be) {
    lm__cuda *c = lm__cu_ctx(be);
    if (c->stream) {
        cudaSetDevice(c->device);
        cudaStreamSynchronize(c->stream);
        cudaFree(c->act.p);
        cudaFree(c->attn.p);
        lm__cu_pool_release(c);
        cudaFree(c->d_err);
        cudaFreeHost(c->h_err);
        cudaStreamDestroy(c->stream);
    }
    LM_FREE(c);
    LM_FREE(be);
}

static const char *lm__cu_device_name(lm_backend *be) {
    return lm__cu_ctx(be)->name;
}

static size_t lm__cu_device_memory(lm_backend *be) {
    lm__cuda *c = lm__cu_ctx(be);
    size_t free_b = 0, total_b = 0;
    if (lm__cu_use(c) != LM_OK || cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return free_b + c->pool_bytes;
}

static lm_status lm__cu_buffer_alloc(lm_backend *be, size_t size, lm_buffer **out) {
    if (!out) return lm__error(LM_ERR_INVALID_ARG, "cuda: buffer_alloc: out is NULL");
    *out = NULL;
    lm__cuda *c = lm__cu_ctx(be);
    if (size > SIZE_MAX - LM_CU_ALIGN)
        return lm__error(LM_ERR_NOMEM, "cuda: cannot allocate a buffer of %zu bytes", size);
    LM_TRY(lm__cu_use(c));
    lm_buffer *b = (lm_buffer *)LM_CALLOC(1, sizeof *b);
    if (!b) return lm__error(LM_ERR_NOMEM, "cuda: cannot allocate a buffer handle");
    b->size = size;
    b->cap = lm__cu_round_up(size);
    lm_status s = lm__cu_malloc(c, b->cap, &b->dev, "a buffer");
    if (s != LM_OK) {
        LM_FREE(b);
        return s;
    }
    *out = b;
    return LM_OK;
}

static void lm__cu_buffer_free(lm_backend *be, lm_buffer *buf) {
    if (!buf) return;
    lm__cuda *c = lm__cu_ctx(be);
    cudaSetDevice(c->device);
    c->memo.valid = 0; /* a later buffer may reuse the address */
    lm__cu_mfree(c, buf->dev, buf->cap);
    LM_FREE(buf);
}

static lm_status lm__cu_range(const char *what, const lm_buffer *buf, size_t offset, size_t n) {
    if (!buf) return lm__error(LM_ERR_INVALID_ARG, "cuda: %s: buffer is NULL", what);
    if (offset > buf->size || n > buf->size - offset)
        return lm__error(LM_ERR_INVALID_ARG,
                         "cuda: %s of %zu bytes at offset %zu exceeds the buffer (%zu bytes)", what,
                         n, offset, buf->size);
    return LM_OK;
}

/* Pageable host memory: the copy returns once the source has been consumed, and runs in
 * stream order after the ops enqueued before it. */
static lm_status lm__cu_upload(lm_backend *be, lm_buffer *buf, size_t offset, const void *src,
                               size_t n) {
    LM_TRY(lm__cu_range("upload", buf, offset, n));
    if (n && !src) return lm__error(LM_ERR_INVALID_ARG, "cuda: upload from NULL");
    lm__cuda *c = lm__cu_op(be); /* x may change: the memo is stale */
    if (!n) return LM_OK;
    LM_TRY(lm__cu_use(c));
    LM_CU_TRY(cudaMemcpyAsync(buf->dev + offset, src, n, cudaMemcpyHostToDevice, c->stream),
              "upload");
    return LM_OK;
}

static lm_status lm__cu_download(lm_backend *be, const lm_buffer *buf, size_t offset, void *dst,
                                 size_t n) {
    LM_TRY(lm__cu_range("download", buf, offset, n));
    if (n && !dst) return lm__error(LM_ERR_INVALID_ARG, "cuda: download to NULL");
    lm__cuda *c = lm__cu_ctx(be);
    if (!n) return LM_OK;
    LM_TRY(lm__cu_use(c));
    LM_CU_TRY(cudaMemcpyAsync(dst, buf->dev + offset, n, cudaMemcpyDeviceToHost, c->stream),
              "download");
    LM_CU_TRY(cudaStreamSynchronize(c->stream), "download (an earlier op may have failed)");
    return LM_OK;
}

static lm_status lm__cu_begin(lm_backend *be) {
    lm__cuda *c = lm__cu_ctx(be);
    c->recording = 1;
    return lm__cu_use(c);
}

static lm_status lm__cu_end(lm_backend *be) {
    lm__cu_ctx(be)->recording = 0;
    return LM_OK;
}

/* Wait for the device; report a kernel fault, or ids a recorded step skipped. */
static lm_status lm__cu_sync(lm_backend *be) {
    lm__cuda *c = lm__cu_ctx(be);
    LM_TRY(lm__cu_use(c));
    LM_CU_TRY(cudaMemcpyAsync(c->h_err, c->d_err, sizeof(int), cudaMemcpyDeviceToHost, c->stream),
              "sync");
    LM_CU_TRY(cudaStreamSynchronize(c->stream), "sync (a kernel failed)");
    const int bits = *c->h_err;
    if (!bits) return LM_OK;
    *c->h_err = 0;
    LM_CU_TRY(cudaMemsetAsync(c->d_err, 0, sizeof(int), c->stream), "sync");
    return lm__error(LM_ERR_INVALID_ARG,
                     "cuda: a recorded step met out-of-range values and skipped them:%s%s%s",
                     bits & LM_CU_ERR_GET_ROWS ? " get_rows ids" : "",
                     bits & LM_CU_ERR_KV_STORE ? " kv_store pos/seq" : "",
                     bits & LM_CU_ERR_ATTENTION ? " attention pos/seq" : "");
}

extern "C" void lm__cuda_set_test_knobs(lm_backend *be, int mm_path, int attn_split) {
    lm__cuda *c = lm__cu_ctx(be);
    c->force_mm = mm_path;
    c->force_split = attn_split;
}

static const lm_backend_ops lm__cu_ops = {
    LM_BACKEND_INTERFACE_VERSION,
    "cuda",
    lm__cu_destroy,
    lm__cu_device_name,
    lm__cu_device_memory,
    lm__cu_buffer_alloc,
    lm__cu_buffer_free,
    lm__cu_upload,
    lm__cu_download,
    NULL, /* buffer_wrap_host: weights are copied to the device */
    lm__cu_begin,
    lm__cu_end,
    lm__cu_sync,
    lm__cu_get_rows,
    lm__cu_rms_norm,
    lm__cu_mul_mat,
    lm__cu_rope,
    lm__cu_kv_store,
    lm__cu_attention,
    lm__cu_swiglu,
    lm__cu_geglu,
    lm__cu_add,
    lm__cu_mul,
    lm__cu_scale,
    lm__cu_argmax,
    lm__cu_copy,
    NULL, /* weights_relayout: the device kernels read rows */
    NULL, /* mul_mat_n */
    NULL, /* norm_mul_mat_n */
};

/* ---- device selection ---- */

__global__ void lm__cu_probe(int *flag) {
    if (threadIdx.x == 0) *flag = 0;
}

/* config->device when it is an index (an explicit choice wins over the environment), else
 * the index LUMEN_CUDA_DEVICE names, else device 0. */
static lm_status lm__cu_pick(const lm_backend_config *cfg, int n, int *out) {
    int dev = cfg ? cfg->device : -1;
    const char *env = getenv("LUMEN_CUDA_DEVICE");
    if (dev < -1)
        return lm__error(LM_ERR_INVALID_ARG, "cuda: device %d: expected an index or -1", dev);
    if (dev == -1 && env && *env) {
        char *end = NULL;
        const long v = strtol(env, &end, 10);
        if (*end || v < 0 || v > 1 << 20)
            return lm__error(LM_ERR_INVALID_ARG,
                             "cuda: LUMEN_CUDA_DEVICE = '%s' is not a device index", env);
        dev = (int)v;
    }
    if (dev == -1) dev = 0;
    if (dev >= n)
        return lm__error(LM_ERR_INVALID_ARG, "cuda: device %d does not exist (%d CUDA device%s)",
                         dev, n, n == 1 ? "" : "s");
    *out = dev;
    return LM_OK;
}

static lm_status lm__cu_open(lm__cuda *c, const lm_backend_config *cfg) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return lm__error(LM_ERR_BACKEND, "no CUDA device: %s (%s)", cudaGetErrorString(e),
                         cudaGetErrorName(e));
    }
    if (n == 0) return lm__error(LM_ERR_BACKEND, "no CUDA device: the driver lists none");
    LM_TRY(lm__cu_pick(cfg, n, &c->device));
    LM_TRY(lm__cu_use(c));
    cudaDeviceProp prop;
    LM_CU_TRY(cudaGetDeviceProperties(&prop, c->device), "cudaGetDeviceProperties");
    c->cc = prop.major * 10 + prop.minor;
    c->n_sm = prop.multiProcessorCount > 0 ? prop.multiProcessorCount : 1;
    c->total_mem = prop.totalGlobalMem;
    snprintf(c->name, sizeof c->name, "%s (sm_%d, %d SMs, %.1f GiB)", prop.name, c->cc, c->n_sm,
             prop.totalGlobalMem / 1073741824.0);
    if (c->cc < 75)
        return lm__error(LM_ERR_UNSUPPORTED,
                         "cuda: device %d, %s, is older than sm_75 (Turing), which the CUDA "
                         "kernels need",
                         c->device, c->name);
    LM_CU_TRY(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking), "cudaStreamCreate");
    LM_CU_TRY(cudaMalloc((void **)&c->d_err, sizeof(int)), "cudaMalloc (error flag)");
    LM_CU_TRY(cudaMallocHost((void **)&c->h_err, sizeof(int)), "cudaMallocHost (error flag)");
    *c->h_err = 0;
    lm__cu_probe<<<1, 32, 0, c->stream>>>(c->d_err);
    e = cudaGetLastError();
    if (e == cudaErrorNoKernelImageForDevice || e == cudaErrorInvalidDeviceFunction)
        return lm__error(LM_ERR_UNSUPPORTED,
                         "cuda: %s has no kernels in this build (LUMEN_CUDA_ARCHS = %s): rebuild "
                         "with -DLUMEN_CUDA_ARCHS=%d",
                         c->name, LM_CUDA_ARCHS, c->cc);
    if (e != cudaSuccess) return lm__cu_fail(e, "first kernel launch");
    LM_CU_TRY(cudaStreamSynchronize(c->stream), "first kernel");
    return LM_OK;
}

extern "C" lm_status lm_cuda_backend_create(const lm_backend_config *cfg, lm_backend **out) {
    if (!out) return lm__error(LM_ERR_INVALID_ARG, "cuda: out is NULL");
    *out = NULL;
    lm_backend *be = (lm_backend *)LM_CALLOC(1, sizeof *be);
    lm__cuda *c = (lm__cuda *)LM_CALLOC(1, sizeof *c);
    if (!be || !c) {
        LM_FREE(be);
        LM_FREE(c);
        return lm__error(LM_ERR_NOMEM, "cuda: cannot allocate the backend");
    }
    be->ops = &lm__cu_ops;
    be->ctx = c;
    /* diagnosis on a GPU: LUMEN_CUDA_MATMUL=vec|tc forces a mul_mat path, LUMEN_CUDA_SPLITS
     * the attention splits (-1: none) */
    const char *mm = getenv("LUMEN_CUDA_MATMUL"), *sp = getenv("LUMEN_CUDA_SPLITS");
    c->force_mm = mm && !strcmp(mm, "vec") ? 1 : mm && !strcmp(mm, "tc") ? 2 : 0;
    c->force_split = sp ? atoi(sp) : 0;
    const lm_status s = lm__cu_open(c, cfg);
    if (s != LM_OK) {
        lm__cu_destroy(be); /* keeps the error text: it only frees */
        return s;
    }
    *out = be;
    return LM_OK;
}
