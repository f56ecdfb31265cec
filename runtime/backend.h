/* The device-abstraction layer: a backend is a table of function pointers plus its state.
 * The runtime never sees CUDA or Vulkan types. The CPU backend's plain C ops are the
 * oracle every other backend is tested against. */
#ifndef LM_BACKEND_H
#define LM_BACKEND_H

#include "lumen.h"
#include "../kernels/common/lm_types.h"

#include <stddef.h>
#include <stdint.h>

#define LM_BACKEND_INTERFACE_VERSION 1

typedef struct lm_backend lm_backend;
typedef struct lm_buffer lm_buffer; /* opaque, owned by a backend */

/* A view into a buffer, as in GGUF: ne[0] is the innermost (contiguous) dimension; nb[i]
 * is the byte stride of dimension i. For block types nb[0] is the block size and rows
 * (dimension 1) are contiguous runs of ne[0]/blck blocks. */
typedef struct lm_tensor {
    lm_buffer *buf;
    size_t offset; /* bytes from the buffer's start */
    lm_type type;
    int64_t ne[4];
    size_t nb[4];
    /* LM_LAYOUT_ROWS (0): rows as above. Else a backend's own layout of a weight, set by
     * its weights_relayout; only the ops that read weights (mul_mat's W, get_rows' src)
     * accept it. */
    int layout;
} lm_tensor;

#define LM_LAYOUT_ROWS 0
/* CPU: rows in groups of 8 whose blocks are interleaved, block b of the group's row r at
 * (8 b + r) x the block size from the group's start (the bytes a group held in rows), so
 * that decode reads one stream; a last group of fewer rows stays in rows. */
#define LM_LAYOUT_CPU_R8 1
/* CPU: like LM_LAYOUT_CPU_R8, but each group block (the 8 rows' block b) is repacked for the
 * SIMD kernels: the 8 rows' f16 fields first, then the rest in 4-byte pieces, piece c of row r
 * at (8 c + r) x 4 (cpu_relayout.c), on the levels with kernels for it (x86). */
#define LM_LAYOUT_CPU_P8 2

/* Fill nb[] for a contiguous tensor of the given type and shape. */
void lm_tensor_init(lm_tensor *t, lm_buffer *buf, size_t offset, lm_type type, int64_t ne0,
                    int64_t ne1, int64_t ne2, int64_t ne3);
/* Total bytes of a contiguous tensor. */
size_t lm_tensor_nbytes(const lm_tensor *t);
int64_t lm_tensor_nelements(const lm_tensor *t);

typedef enum lm_rope_mode {
    LM_ROPE_NORMAL = 0, /* rotate pairs (2i, 2i+1): GGUF llama layout */
    LM_ROPE_NEOX = 2,   /* rotate pairs (i, i + n_rot/2) */
} lm_rope_mode;

typedef struct lm_rope_params {
    lm_rope_mode mode;
    int32_t n_rot;             /* dimensions rotated (<= head size); the rest pass through */
    float freq_base;           /* theta */
    float freq_scale;          /* linear position scaling (1 = none) */
    const float *freq_factors; /* host pointer, n_rot/2 divisors (Llama-3 scaling) or NULL */
} lm_rope_params;

typedef struct lm_attn_params {
    float scale;    /* usually 1/sqrt(head_dim) */
    int32_t window; /* sliding window (0 = full causal) */
    float softcap;  /* 0 = none; else softcap * tanh(s / softcap) on scores */
} lm_attn_params;

typedef struct lm_backend_ops {
    int version; /* LM_BACKEND_INTERFACE_VERSION */
    const char *name;

    void (*destroy)(lm_backend *be);
    /* Human-readable device name. */
    const char *(*device_name)(lm_backend *be);
    /* Bytes the device can hold (free memory); 0 = unknown. */
    size_t (*device_memory)(lm_backend *be);

    /* Buffers. alloc fails with LM_ERR_NOMEM and a message naming the size. */
    lm_status (*buffer_alloc)(lm_backend *be, size_t size, lm_buffer **out);
    void (*buffer_free)(lm_backend *be, lm_buffer *buf);
    lm_status (*upload)(lm_backend *be, lm_buffer *buf, size_t offset, const void *src, size_t n);
    lm_status (*download)(lm_backend *be, const lm_buffer *buf, size_t offset, void *dst, size_t n);
    /* Optional (may be NULL): wrap the model's read-only file mapping without a device
     * copy. The CPU backend may copy a large one into huge pages and then drop the
     * mapping's pages from memory (they fault back in from the file if read), so ptr
     * must be a file mapping when size >= 16 MiB, never anonymous memory. */
    lm_status (*buffer_wrap_host)(lm_backend *be, const void *ptr, size_t size, lm_buffer **out);

    /* Recording. CPU runs ops as they are called; GPUs record between begin and end and
     * submit at end; sync waits for completion. */
    lm_status (*begin)(lm_backend *be);
    lm_status (*end)(lm_backend *be);
    lm_status (*sync)(lm_backend *be);

    /* ---- ops: dst is preallocated, f32 unless stated ---- */

    /* dst[:, i] = dequant(src[:, ids[i]]); src [ne0, rows] any computable type, ids I32
     * [n], dst F32 [ne0, n]. */
    lm_status (*get_rows)(lm_backend *be, const lm_tensor *src, const lm_tensor *ids,
                          lm_tensor *dst);
    /* dst[:, j] = x[:, j] / sqrt(mean(x[:, j]^2) + eps) * w; w F32 [ne0] (NULL: no w). */
    lm_status (*rms_norm)(lm_backend *be, const lm_tensor *x, const lm_tensor *w, float eps,
                          lm_tensor *dst);
    /* dst[n, m] = sum_k W[k, n] * x[k, m]: W [K, N] any computable type, x F32 [K, M],
     * dst F32 [N, M]. */
    lm_status (*mul_mat)(lm_backend *be, const lm_tensor *w, const lm_tensor *x, lm_tensor *dst);
    /* In place on x F32 [head_dim, n_head, n_tok]; pos I32 [n_tok]. */
    lm_status (*rope)(lm_backend *be, lm_tensor *x, const lm_tensor *pos, const lm_rope_params *p);
    /* Store k, v F32 [head_dim, n_kv_head, n_tok] into caches [head_dim, n_kv_head, n_ctx,
     * n_seq] (F16 or F32) at (pos[i], seq[i]). */
    lm_status (*kv_store)(lm_backend *be, const lm_tensor *k, const lm_tensor *v,
                          lm_tensor *k_cache, lm_tensor *v_cache, const lm_tensor *pos,
                          const lm_tensor *seq);
    /* Causal GQA attention: q F32 [head_dim, n_head, n_tok]; token i of sequence seq[i]
     * attends to cache positions max(0, pos[i]-window+1) .. pos[i] of that sequence.
     * dst F32 [head_dim, n_head, n_tok]. Must not materialise the full score matrix. */
    lm_status (*attention)(lm_backend *be, const lm_tensor *q, const lm_tensor *k_cache,
                           const lm_tensor *v_cache, const lm_tensor *pos, const lm_tensor *seq,
                           const lm_attn_params *p, lm_tensor *dst);
    /* dst = silu(gate) * up */
    lm_status (*swiglu)(lm_backend *be, const lm_tensor *gate, const lm_tensor *up, lm_tensor *dst);
    /* dst = gelu_tanh(gate) * up */
    lm_status (*geglu)(lm_backend *be, const lm_tensor *gate, const lm_tensor *up, lm_tensor *dst);
    /* dst = a + b; b may broadcast along dims where b->ne[i] == 1. */
    lm_status (*add)(lm_backend *be, const lm_tensor *a, const lm_tensor *b, lm_tensor *dst);
    /* dst = a * b elementwise, with the same broadcast rule. */
    lm_status (*mul)(lm_backend *be, const lm_tensor *a, const lm_tensor *b, lm_tensor *dst);
    /* dst = x * s */
    lm_status (*scale)(lm_backend *be, const lm_tensor *x, float s, lm_tensor *dst);
    /* dst I32 [n_cols] = argmax over ne0 of each column of x F32 [ne0, n_cols]. */
    lm_status (*argmax)(lm_backend *be, const lm_tensor *x, lm_tensor *dst);
    /* dst = contiguous copy of src (same shape; F32 <-> F16 conversion allowed). */
    lm_status (*copy)(lm_backend *be, const lm_tensor *src, lm_tensor *dst);

    /* Optional (may be NULL; last, so that positional initializers may omit it): the model's 2-D
     * weights, once they are in their buffer and before any op; the backend may re-lay some out in
     * place for its kernels and set their layout. Entries may alias the same bytes (tied
     * embeddings): each is re-laid once and every alias is marked. */
    lm_status (*weights_relayout)(lm_backend *be, lm_tensor *const *w, int n);
    /* Optional (may be NULL): n (1 to 3) mul_mats sharing x (q, k, v; gate, up) as one op,
     * with exactly the results of n mul_mat calls (the CPU quantizes x once and runs one
     * parallel region). */
    lm_status (*mul_mat_n)(lm_backend *be, int n, const lm_tensor *const *w, const lm_tensor *x,
                           lm_tensor *const *dst);
    /* Optional (may be NULL): rms_norm(x, norm, eps) and then mul_mat_n of its result, with
     * exactly the results of the two; xn (x's shape) is scratch the backend may write or not.
     * The CPU normalizes each column straight into the matmul's quantized activations. */
    lm_status (*norm_mul_mat_n)(lm_backend *be, const lm_tensor *x, const lm_tensor *norm,
                                float eps, lm_tensor *xn, int n, const lm_tensor *const *w,
                                lm_tensor *const *dst);
} lm_backend_ops;

struct lm_backend {
    const lm_backend_ops *ops;
    void *ctx; /* backend state */
};

/* n mul_mats sharing x (q, k, v; gate, up): the backend's mul_mat_n where it has one, else
 * n mul_mat calls */
lm_status lm_backend_mul_mat_n(lm_backend *be, int n, const lm_tensor *const *w, const lm_tensor *x,
                               lm_tensor *const *dst);
/* rms_norm of x (into xn) and mul_mat_n of it: the backend's norm_mul_mat_n where it has one */
lm_status lm_backend_norm_mul_mat_n(lm_backend *be, const lm_tensor *x, const lm_tensor *norm,
                                    float eps, lm_tensor *xn, int n, const lm_tensor *const *w,
                                    lm_tensor *const *dst);

typedef struct lm_backend_config {
    int32_t n_threads; /* CPU: 0 = cores */
    int32_t device;    /* GPU index; -1 = the backend's default (its environment variable,
                          else the first usable device). An index >= 0 wins over the variable. */
} lm_backend_config;

/* Registry: create a backend by name ("cpu", later "cuda", "vulkan"). */
lm_status lm_backend_create(const char *name, const lm_backend_config *cfg, lm_backend **out);
void lm_backend_destroy(lm_backend *be);
/* Names of the backends compiled in, NULL-terminated. */
const char *const *lm_backend_names(void);

/* GPU backends, declared when compiled in (kernels/cuda, kernels/vulkan). */
#ifdef LM_HAVE_CUDA
lm_status lm_cuda_backend_create(const lm_backend_config *cfg, lm_backend **out);
#endif
#ifdef LM_HAVE_VULKAN
/* The device is config->device (an index into lm_vulkan_list_devices); with -1 (or no
 * config) the environment variable LUMEN_VULKAN_DEVICE names one by index or by a
 * case-insensitive part of its name, else the first usable device is taken.
 * LUMEN_VULKAN_VALIDATE=1 enables the Khronos validation layer when it is installed. */
lm_status lm_vulkan_backend_create(const lm_backend_config *cfg, lm_backend **out);

/* One Vulkan device as `lumen devices` shows it. */
typedef struct lm_vulkan_device_info {
    int32_t index;    /* what config->device / LUMEN_VULKAN_DEVICE select */
    char name[256];   /* VkPhysicalDeviceProperties::deviceName */
    const char *type; /* "discrete", "integrated", "virtual", "cpu" or "other" */
    uint32_t vendor_id, device_id;
    uint32_t api_version; /* VK_MAKE_API_VERSION encoding */
    uint64_t memory;      /* bytes of device-local heap */
    int32_t usable;       /* 1 if it has what Lumen needs */
    char why_not[160];    /* when not usable: what is missing */
    /* appended fields: zero / empty where the device does not report them */
    char driver_name[256];       /* VkPhysicalDeviceDriverProperties: "llvmpipe" */
    char driver_info[256];       /* "Mesa 22.3.6 (LLVM 15.0.6)" */
    uint32_t driver_version;     /* vendor-specific encoding */
    uint32_t subgroup_size;      /* VkPhysicalDeviceSubgroupProperties::subgroupSize */
    int32_t fp16, int8, fp64;    /* shaderFloat16, shaderInt8, shaderFloat64 */
    int32_t storage16, storage8; /* storageBuffer16BitAccess, storageBuffer8BitAccess */
    uint64_t max_storage_range;  /* limits.maxStorageBufferRange: bytes one binding sees */
    int32_t cooperative_matrix;  /* VK_KHR_cooperative_matrix offered */
} lm_vulkan_device_info;

/* Fill out[0 .. min(cap, n)) with the devices, best first (discrete, integrated, virtual,
 * CPU); *n_devices = how many there are. out may be NULL with cap 0 to count. Fails with
 * LM_ERR_BACKEND when no Vulkan loader or driver can be initialised. */
lm_status lm_vulkan_list_devices(lm_vulkan_device_info *out, int32_t cap, int32_t *n_devices);
#endif

/* Checks shared by every backend's ops (runtime/op_check.c), made after the backend's
 * own checks of tensor types and buffers, so a bad input gets the same message on each:
 * rope's x / pos shapes and parameters; an attention cache's head_dim and GQA grouping
 * against q; attention's pos / seq counts and parameters. LM_ERR_INVALID_ARG naming the
 * fault. */
lm_status lm_op_check_rope(const lm_tensor *x, const lm_tensor *pos, const lm_rope_params *p);
lm_status lm_op_check_attn_cache(const char *name, const lm_tensor *q, const lm_tensor *c);
lm_status lm_op_check_attn_args(const lm_tensor *q, const lm_tensor *pos, const lm_tensor *seq,
                                const lm_attn_params *p);
/* kv_store: a cache's head_dim and n_kv_head against its source; k's shape, the caches'
 * n_ctx / n_seq and the pos / seq counts (after the backend checked their types). */
/* get_rows: src one 2-D table, ids one row, dst [src ne0, ids count]. */
lm_status lm_op_check_get_rows(const lm_tensor *src, const lm_tensor *ids, const lm_tensor *dst);
lm_status lm_op_check_kv_cache(const char *name, const lm_tensor *src, const lm_tensor *cache);
lm_status lm_op_check_kv_args(const lm_tensor *k, const lm_tensor *k_cache,
                              const lm_tensor *v_cache, const lm_tensor *pos, const lm_tensor *seq);

/* The CPU backend (kernels/cpu). */
lm_status lm_cpu_backend_create(const lm_backend_config *cfg, lm_backend **out);
/* Host pointer of a CPU buffer (CPU backend only; for tests and the runtime). */
void *lm_cpu_buffer_ptr(lm_buffer *buf);

#endif
