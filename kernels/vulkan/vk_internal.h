/* Shared by the Vulkan backend's files: device state, buffers, the dispatch recorder and
 * the op entry points. Each file holds one concern:
 *   vk_device.c   instance, validation layer, device listing and selection
 *   vk_memory.c   memory blocks and sub-allocation, buffers, staging, host arena
 *   vk_pipeline.c shader modules and compute pipelines from the embedded SPIR-V
 *   vk_command.c  command buffer per begin..end, barriers, descriptor sets, dispatch
 *   vk_backend.c  the lm_backend_ops table, tensor checks
 *   vk_ops.c, vk_matmul.c, vk_attention.c   the ops */
#ifndef LM_VK_INTERNAL_H
#define LM_VK_INTERNAL_H

#include "../../runtime/backend.h"
#include "../../runtime/lm_internal.h"
#include "lm_vk_spirv.h"

#include <vulkan/vulkan.h>

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define LM_VK_MAX_BINDINGS  8
#define LM_VK_MAX_PC_WORDS  32    /* 128 bytes: the push-constant size every device has */
#define LM_VK_MAX_GROUPS    65535 /* per dispatch dimension; shaders use grid-stride loops */
#define LM_VK_MAX_HAZARDS   64    /* ranges tracked between barriers */
#define LM_VK_BLOCK_SIZE    ((VkDeviceSize)64 << 20)
#define LM_VK_STAGING_SIZE  ((VkDeviceSize)16 << 20)
#define LM_VK_ARENA_SIZE    ((VkDeviceSize)1 << 20)
#define LM_VK_SETS_PER_POOL 512
#define LM_VK_MAX_QUERIES   4096 /* timestamps per command buffer when profiling */

typedef struct lm__vk_block lm__vk_block;

/* A buffer: its own VkBuffer bound to a range of a (shared) memory block. */
struct lm_buffer {
    VkBuffer buf;
    lm__vk_block *block;
    VkDeviceSize mem_off, mem_size; /* range of the block's memory */
    size_t size;                    /* bytes the caller asked for */
    char *mapped;                   /* host pointer when the memory is host-visible */
};

typedef struct lm__vk_range {
    VkDeviceSize off, size;
} lm__vk_range;

/* A VkDeviceMemory allocation that buffers are carved from (first fit, coalescing). */
struct lm__vk_block {
    VkDeviceMemory mem;
    VkDeviceSize size;
    uint32_t type; /* memory type index */
    char *mapped;  /* whole block mapped when host-visible */
    lm__vk_range *free;
    int n_free, cap_free, n_live;
    lm__vk_block *next;
};

/* A descriptor window onto a tensor: bind [off, off + range) of buf; the tensor starts
 * `base` bytes into the window. */
typedef struct lm__vk_view {
    lm_buffer *buf;
    VkDeviceSize off, range;
    uint32_t base;
} lm__vk_view;

/* One dispatch: a pipeline, its bindings (bit i of `written` set if the shader writes
 * binding i), push constants and the workgroup grid (x * y <= 65535^2). */
typedef struct lm__vk_cmd {
    lm_vk_shader_id shader;
    int n_bind;
    lm__vk_view bind[LM_VK_MAX_BINDINGS];
    uint32_t written;
    uint32_t pc[LM_VK_MAX_PC_WORDS];
    uint32_t pc_words;
    uint64_t n_groups; /* split into x, y by the recorder */
} lm__vk_cmd;

typedef struct lm__vk_hazard {
    VkBuffer buf;
    VkDeviceSize lo, hi;
} lm__vk_hazard;

/* A recorded begin..end segment kept for replay (vk_command.c): its dispatches, the
 * command buffer recorded from them and the descriptor sets it binds (own pool). */
#define LM_VK_REPLAY_SLOTS 4
typedef struct lm__vk_segment {
    VkCommandBuffer cb;
    VkDescriptorPool pool;
    lm__vk_cmd *cmds;
    int n, cap;
    uint64_t gen;  /* buffer generation it was recorded at */
    uint64_t used; /* tick of its last submission (least recently used is replaced) */
} lm__vk_segment;

typedef struct lm__vk {
    VkInstance inst;
    VkDebugUtilsMessengerEXT messenger;
    VkPhysicalDevice pdev;
    VkDevice dev;
    VkQueue queue;
    uint32_t qfam;
    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceMemoryProperties mem_props;
    int has_f64, has_budget, uma;
    VkDeviceSize max_range;  /* maxStorageBufferRange, rounded down to the alignment */
    VkDeviceSize bind_align; /* max(minStorageBufferOffsetAlignment, 4) */
    uint32_t type_dev;       /* memory type of buffers */
    uint32_t type_host;      /* host-visible coherent type (staging, arena) */
    int dev_mapped;          /* type_dev is host-visible: upload/download by memcpy */
    uint32_t max_groups;     /* workgroups per dispatch on CPU devices (0: no cap) */
    lm__vk_block *blocks;

    VkDescriptorSetLayout dsl;
    VkPipelineLayout layout;
    VkShaderModule modules[LM_VK_SHADER_COUNT];
    VkPipeline pipes[LM_VK_SHADER_COUNT];

    /* recording: one command buffer, submitted at end() or when the host must see or
     * change memory (upload, download, sync) */
    VkCommandPool cmd_pool;
    VkCommandBuffer cb, xfer_cb;
    VkFence fence;
    VkDescriptorPool *dpools;
    int n_dpools, cur_dpool;
    int cb_open;    /* cb is recording */
    int n_recorded; /* dispatches in the open cb */
    int in_flight;  /* cb submitted, fence not waited */
    int recording;  /* between begin() and end() */
    lm__vk_hazard reads[LM_VK_MAX_HAZARDS], writes[LM_VK_MAX_HAZARDS];
    int n_reads, n_writes;

    /* step replay: between begin and end dispatches are collected in `pending` and
     * recorded at end(); a segment equal to one recorded before (a decode step's body or
     * output head) re-submits that command buffer. LUMEN_VULKAN_REPLAY=0 turns it off. */
    int replay;
    lm__vk_cmd *pending;
    int n_pending, cap_pending;
    int seg_broken;   /* a flush inside the open segment submitted part of it */
    uint64_t buf_gen; /* bumped whenever a buffer is created or destroyed */
    uint64_t tick, n_replayed, n_segments;
    lm__vk_segment seg[LM_VK_REPLAY_SLOTS];

    lm_buffer *staging; /* host-visible, for devices whose memory the host cannot map */
    lm_buffer *arena;   /* host-visible small tables (RoPE factors) for the open cb */
    size_t arena_used;
    lm_buffer *scratch; /* device: split attention partials */
    lm_buffer *act;     /* device arena: 16-bit activations of the open command buffer */
    size_t act_used;
    struct { /* the activations last quantized, reused while x is unchanged */
        int valid, kind;
        VkBuffer buf;
        VkDeviceSize lo, hi; /* x's bytes */
        size_t x_off, x_nb1;
        int64_t K, M;
        VkDeviceSize at; /* region in the act arena */
    } memo;

    /* LUMEN_VULKAN_PROFILE=1: GPU time per shader from timestamps, logged at destroy */
    VkQueryPool queries;
    uint32_t n_queries;
    lm_vk_shader_id query_shader[LM_VK_MAX_QUERIES];
    double prof_ms[LM_VK_SHADER_COUNT];
    uint64_t prof_n[LM_VK_SHADER_COUNT];

    int force_mm;        /* tests: 0 auto, 1 matrix-vector, 2 tiled */
    int force_f32;       /* tests: ignore shaderFloat64 */
    int force_split;     /* tests: flash attention chunks, 0 auto (exact kernel when it can),
                            -1 flash without chunks, n > 0 flash with exactly n */
    int flash_attention; /* LUMEN_VULKAN_ATTENTION=flash: the faster kernel, not bit-equal */
    int n_validation_errors;
    char name[300];
} lm__vk;

static inline lm__vk *lm__vk_ctx(lm_backend *be) {
    return (lm__vk *)be->ctx;
}

/* Internal test knobs (tests/test_vulkan_ops.c): matmul path 0 auto, 1 vector, 2 tiled;
 * f32_only != 0 uses the float variants even on devices with shaderFloat64; attention 0
 * auto, -1 the flash kernel without chunks, n > 0 the flash kernel with exactly n. */
void lm__vk_set_test_knobs(lm_backend *be, int mm_path, int f32_only, int attn_split);
/* 1 if the bit-equal rms_norm, rope, swiglu and attention run: the device has
 * shaderFloat64 and neither LUMEN_VULKAN_F32 nor the f32 knob turned them off. */
int lm__vk_has_f64(lm_backend *be);
/* Validation-layer errors reported so far (0 when the layer is off). */
int lm__vk_validation_errors(lm_backend *be);

/* ---- vk_device.c ---- */
lm_status lm__vk_device_open(lm__vk *v, const lm_backend_config *cfg);
void lm__vk_device_close(lm__vk *v);
const char *lm__vk_result_str(VkResult r);
lm_status lm__vk_fail(VkResult r, const char *what);

/* ---- vk_memory.c ---- */
lm_status lm__vk_memory_init(lm__vk *v);
void lm__vk_memory_close(lm__vk *v);
lm_status lm__vk_buffer_new(lm__vk *v, size_t size, int host, lm_buffer **out);
void lm__vk_buffer_del(lm__vk *v, lm_buffer *b);
size_t lm__vk_free_memory(lm__vk *v);
lm_status lm__vk_write(lm__vk *v, lm_buffer *buf, size_t off, const void *src, size_t n);
lm_status lm__vk_read(lm__vk *v, const lm_buffer *buf, size_t off, void *dst, size_t n);
/* n bytes of the host arena for the open command buffer: *host to fill, *view to bind. */
lm_status lm__vk_arena(lm__vk *v, size_t n, void **host, lm__vk_view *view);

/* ---- vk_pipeline.c ---- */
lm_status lm__vk_pipelines_init(lm__vk *v);
void lm__vk_pipelines_close(lm__vk *v);
lm_status lm__vk_pipeline(lm__vk *v, lm_vk_shader_id id, VkPipeline *out);

/* ---- vk_command.c ---- */
lm_status lm__vk_commands_init(lm__vk *v);
void lm__vk_commands_close(lm__vk *v);
/* Record one dispatch (outside begin..end: run it now and wait). */
lm_status lm__vk_run(lm__vk *v, const lm__vk_cmd *c);
/* Submit what is recorded and wait for the device: the host may then touch memory. */
lm_status lm__vk_flush(lm__vk *v);
/* begin(): ops are collected until end(). */
lm_status lm__vk_begin(lm__vk *v);
/* end(): submit what is recorded without waiting (re-submitting a recorded segment when
 * this one equals it); later ops run at once again. */
lm_status lm__vk_end(lm__vk *v);
/* Tests: segments ended so far and how many of them were replays. */
void lm__vk_replay_stats(lm_backend *be, uint64_t *segments, uint64_t *replayed);
/* Copy n bytes between buffers on the device and wait (staging). */
lm_status lm__vk_copy_now(lm__vk *v, VkBuffer src, VkDeviceSize so, VkBuffer dst, VkDeviceSize dof,
                          VkDeviceSize n);

/* Profiling (vk_command.c): set up when LUMEN_VULKAN_PROFILE is set; the summary goes to
 * the log. */
lm_status lm__vk_profile_init(lm__vk *v);
void lm__vk_profile_report(lm__vk *v);

/* ---- vk_backend.c: argument checks shared by the ops ---- */
/* As the CPU's lm__cpu_check: non-NULL, known type (type < 0: any), ne >= 1, contiguous
 * rows, view inside its buffer; plus offsets and strides aligned to the element the
 * shaders read (4 bytes for F32/I32, 2 for the rest). */
lm_status lm__vk_check(const char *op, const char *arg, const lm_tensor *t, int type);
lm_status lm__vk_check_same_shape(const char *op, const char *an, const lm_tensor *a,
                                  const char *bn, const lm_tensor *b);
/* The descriptor window of tensor t covering [t->offset + lo, t->offset + hi) bytes;
 * LM_ERR_UNSUPPORTED when that exceeds maxStorageBufferRange. */
lm_status lm__vk_view_range(lm__vk *v, const lm_tensor *t, size_t lo, size_t hi, const char *op,
                            const char *arg, lm__vk_view *out);
/* The window of the whole tensor. */
lm_status lm__vk_view_of(lm__vk *v, const lm_tensor *t, const char *op, const char *arg,
                         lm__vk_view *out);
/* Read n int32 of an I32 tensor to the host (flushes): used outside begin..end to
 * validate ids/positions as the CPU backend does. */
lm_status lm__vk_read_i32(lm__vk *v, const lm_tensor *t, int32_t *out, int64_t n);
static inline int64_t lm__vk_nrows(const lm_tensor *t) {
    return t->ne[1] * t->ne[2] * t->ne[3];
}
/* Append a binding to a dispatch (written: the shader writes it). */
static inline void lm__vk_bind(lm__vk_cmd *c, const lm__vk_view *vw, int written) {
    c->bind[c->n_bind] = *vw;
    if (written) c->written |= 1u << c->n_bind;
    c->n_bind++;
}
/* Copy a push-constant struct (4-byte fields) into the dispatch. */
#define LM_VK_PC(c, s)                                                                             \
    do {                                                                                           \
        _Static_assert(sizeof(s) <= 4 * LM_VK_MAX_PC_WORDS, "push constants too big");             \
        memcpy((c)->pc, &(s), sizeof(s));                                                          \
        (c)->pc_words = (uint32_t)(sizeof(s) / 4);                                                 \
    } while (0)

/* The shader of `type` in a per-type table (vk_ops.c), or LM_ERR_INVALID_ARG naming it. */
lm_status lm__vk_weight_shader(const lm_vk_shader_id *table, const char *op, const char *arg,
                               lm_type type, lm_vk_shader_id *out);

/* ---- ops ---- */
lm_status lm__vk_get_rows(lm_backend *be, const lm_tensor *src, const lm_tensor *ids,
                          lm_tensor *dst);
lm_status lm__vk_rms_norm(lm_backend *be, const lm_tensor *x, const lm_tensor *w, float eps,
                          lm_tensor *dst);
lm_status lm__vk_mul_mat(lm_backend *be, const lm_tensor *w, const lm_tensor *x, lm_tensor *dst);
lm_status lm__vk_rope(lm_backend *be, lm_tensor *x, const lm_tensor *pos, const lm_rope_params *p);
/* Bytes per unit of a KV cache binding's offsets and strides: 2 (F16), 4 (F32), 1 (Q8_0). */
size_t lm__vk_kv_unit(lm_type t);
/* A cache's binding for op (whole, or sequence only_seq's slice, for a cache larger than
 * one binding) and its origin in binding units: for a slice, its offset less only_seq *
 * nb[3], so the shaders' origin + s * nb3 lands on it for s == only_seq (uint arithmetic
 * wraps). */
lm_status lm__vk_kv_cache(lm__vk *v, const char *op, const lm_tensor *c, const char *arg,
                          int32_t only_seq, lm__vk_view *view, uint32_t *off);
lm_status lm__vk_kv_store(lm_backend *be, const lm_tensor *k, const lm_tensor *v,
                          lm_tensor *k_cache, lm_tensor *v_cache, const lm_tensor *pos,
                          const lm_tensor *seq);
lm_status lm__vk_attention(lm_backend *be, const lm_tensor *q, const lm_tensor *k_cache,
                           const lm_tensor *v_cache, const lm_tensor *pos, const lm_tensor *seq,
                           const lm_attn_params *p, lm_tensor *dst);
lm_status lm__vk_swiglu(lm_backend *be, const lm_tensor *gate, const lm_tensor *up, lm_tensor *dst);
lm_status lm__vk_geglu(lm_backend *be, const lm_tensor *gate, const lm_tensor *up, lm_tensor *dst);
lm_status lm__vk_add(lm_backend *be, const lm_tensor *a, const lm_tensor *b, lm_tensor *dst);
lm_status lm__vk_mul(lm_backend *be, const lm_tensor *a, const lm_tensor *b, lm_tensor *dst);
lm_status lm__vk_scale(lm_backend *be, const lm_tensor *x, float s, lm_tensor *dst);
lm_status lm__vk_argmax(lm_backend *be, const lm_tensor *x, lm_tensor *dst);
lm_status lm__vk_copy(lm_backend *be, const lm_tensor *src, lm_tensor *dst);

#endif
