/* The Vulkan backend: the lm_backend_ops table, buffers as the runtime sees them, and the
 * argument checks and descriptor windows every op uses. */
#include "vk_internal.h"

#include "../../runtime/quant.h"

#include <string.h>

/* ---- argument checks (as kernels/cpu's, plus the alignment the shaders read at) ---- */

lm_status lm__vk_check(const char *op, const char *arg, const lm_tensor *t, int type) {
    if (!t) return lm__error(LM_ERR_INVALID_ARG, "%s: %s is NULL", op, arg);
    if (!t->buf) return lm__error(LM_ERR_INVALID_ARG, "%s: %s has no buffer", op, arg);
    lm_type_traits tr = lm_type_get((uint32_t)t->type);
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
    /* shaders index F32/I32 as 4-byte words and everything else from 2-byte halves */
    const size_t a = tr.size == 4 && tr.blck == 1 ? 4 : 2;
    if (t->offset % a || t->nb[1] % a || t->nb[2] % a || t->nb[3] % a)
        return lm__error(LM_ERR_UNSUPPORTED,
                         "%s: %s offset %zu / strides %zu,%zu,%zu are not multiples of %zu bytes "
                         "(needed by the Vulkan backend)",
                         op, arg, t->offset, t->nb[1], t->nb[2], t->nb[3], a);
    if ((uint64_t)lm_tensor_nelements(t) > 0x7fffffffu)
        return lm__error(LM_ERR_UNSUPPORTED, "%s: %s has more than 2^31 elements", op, arg);
    return LM_OK;
}

lm_status lm__vk_check_same_shape(const char *op, const char *an, const lm_tensor *a,
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

lm_status lm__vk_view_range(lm__vk *v, const lm_tensor *t, size_t lo, size_t hi, const char *op,
                            const char *arg, lm__vk_view *out) {
    const VkDeviceSize start = t->offset + lo, end = t->offset + hi;
    const VkDeviceSize at = start & ~(v->bind_align - 1);
    const VkDeviceSize range = (end - at + 3) & ~(VkDeviceSize)3;
    if (range > v->max_range)
        return lm__error(LM_ERR_UNSUPPORTED,
                         "%s: %s spans %llu bytes, more than %s can bind at once "
                         "(maxStorageBufferRange %llu)",
                         op, arg, (unsigned long long)(end - start), v->props.deviceName,
                         (unsigned long long)v->props.limits.maxStorageBufferRange);
    out->buf = t->buf;
    out->off = at;
    out->range = range;
    out->base = (uint32_t)(start - at);
    return LM_OK;
}

lm_status lm__vk_view_of(lm__vk *v, const lm_tensor *t, const char *op, const char *arg,
                         lm__vk_view *out) {
    return lm__vk_view_range(v, t, 0, lm_tensor_nbytes(t), op, arg, out);
}

lm_status lm__vk_read_i32(lm__vk *v, const lm_tensor *t, int32_t *out, int64_t n) {
    LM_TRY(lm__vk_flush(v));
    return lm__vk_read(v, t->buf, t->offset, out, (size_t)n * sizeof(int32_t));
}

/* ---- the backend ---- */

static void lm__vk_destroy(lm_backend *be) {
    lm__vk *v = lm__vk_ctx(be);
    if (v->dev) {
        vkDeviceWaitIdle(v->dev);
        lm__vk_profile_report(v);
        lm__vk_commands_close(v);
        lm__vk_buffer_del(v, v->staging);
        lm__vk_buffer_del(v, v->arena);
        lm__vk_buffer_del(v, v->scratch);
        lm__vk_buffer_del(v, v->act);
        lm__vk_pipelines_close(v);
        lm__vk_memory_close(v);
    }
    lm__vk_device_close(v);
    LM_FREE(v);
    LM_FREE(be);
}

static const char *lm__vk_device_name(lm_backend *be) {
    return lm__vk_ctx(be)->name;
}

static size_t lm__vk_device_memory(lm_backend *be) {
    return lm__vk_free_memory(lm__vk_ctx(be));
}

static lm_status lm__vk_buffer_alloc(lm_backend *be, size_t size, lm_buffer **out) {
    if (!out) return lm__error(LM_ERR_INVALID_ARG, "vulkan: buffer_alloc: out is NULL");
    return lm__vk_buffer_new(lm__vk_ctx(be), size, 0, out);
}

static void lm__vk_buffer_free(lm_backend *be, lm_buffer *buf) {
    if (!buf) return;
    lm__vk *v = lm__vk_ctx(be);
    lm__vk_flush(v);                                /* recorded or running work may still use it */
    if (v->memo.buf == buf->buf) v->memo.valid = 0; /* a later buffer may reuse the handle */
    lm__vk_buffer_del(v, buf);
}

static lm_status lm__vk_range_ok(const char *what, const lm_buffer *buf, size_t offset, size_t n) {
    if (!buf) return lm__error(LM_ERR_INVALID_ARG, "vulkan: %s: buffer is NULL", what);
    if (offset > buf->size || n > buf->size - offset)
        return lm__error(LM_ERR_INVALID_ARG,
                         "vulkan: %s of %zu bytes at offset %zu exceeds the buffer (%zu bytes)",
                         what, n, offset, buf->size);
    if (n && !buf->block) return lm__error(LM_ERR_INVALID_ARG, "vulkan: %s: bad buffer", what);
    return LM_OK;
}

static lm_status lm__vk_upload(lm_backend *be, lm_buffer *buf, size_t offset, const void *src,
                               size_t n) {
    LM_TRY(lm__vk_range_ok("upload", buf, offset, n));
    if (n && !src) return lm__error(LM_ERR_INVALID_ARG, "vulkan: upload from NULL");
    lm__vk *v = lm__vk_ctx(be);
    LM_TRY(lm__vk_flush(v)); /* ops recorded before the upload see the old contents */
    if (v->memo.buf == buf->buf && offset < v->memo.hi && v->memo.lo < offset + n)
        v->memo.valid = 0; /* x changed: its quantized copy is stale */
    return lm__vk_write(v, buf, offset, src, n);
}

static lm_status lm__vk_download(lm_backend *be, const lm_buffer *buf, size_t offset, void *dst,
                                 size_t n) {
    LM_TRY(lm__vk_range_ok("download", buf, offset, n));
    if (n && !dst) return lm__error(LM_ERR_INVALID_ARG, "vulkan: download to NULL");
    lm__vk *v = lm__vk_ctx(be);
    LM_TRY(lm__vk_flush(v));
    return lm__vk_read(v, buf, offset, dst, n);
}

/* An interrupted forward pass (abort, error) never calls end(): what it recorded stays
 * queued and runs at the next flush, before anything the host could observe, so order is
 * kept and nothing is lost. */
static lm_status lm__vk_begin_op(lm_backend *be) {
    return lm__vk_begin(lm__vk_ctx(be));
}

static lm_status lm__vk_end_op(lm_backend *be) {
    return lm__vk_end(lm__vk_ctx(be));
}

static lm_status lm__vk_sync(lm_backend *be) {
    return lm__vk_flush(lm__vk_ctx(be));
}

void lm__vk_set_test_knobs(lm_backend *be, int mm_path, int f32_only, int attn_split) {
    lm__vk *v = lm__vk_ctx(be);
    v->force_mm = mm_path;
    v->force_f32 = f32_only;
    v->force_split = attn_split;
}

int lm__vk_has_f64(lm_backend *be) {
    return lm__vk_ctx(be)->has_f64 && !lm__vk_ctx(be)->force_f32;
}

int lm__vk_validation_errors(lm_backend *be) {
    return lm__vk_ctx(be)->n_validation_errors;
}

static const lm_backend_ops lm__vk_ops = {
    .version = LM_BACKEND_INTERFACE_VERSION,
    .name = "vulkan",
    .destroy = lm__vk_destroy,
    .device_name = lm__vk_device_name,
    .device_memory = lm__vk_device_memory,
    .buffer_alloc = lm__vk_buffer_alloc,
    .buffer_free = lm__vk_buffer_free,
    .upload = lm__vk_upload,
    .download = lm__vk_download,
    .buffer_wrap_host = NULL,
    .begin = lm__vk_begin_op,
    .end = lm__vk_end_op,
    .sync = lm__vk_sync,
    .get_rows = lm__vk_get_rows,
    .rms_norm = lm__vk_rms_norm,
    .mul_mat = lm__vk_mul_mat,
    .rope = lm__vk_rope,
    .kv_store = lm__vk_kv_store,
    .attention = lm__vk_attention,
    .swiglu = lm__vk_swiglu,
    .geglu = lm__vk_geglu,
    .add = lm__vk_add,
    .mul = lm__vk_mul,
    .scale = lm__vk_scale,
    .argmax = lm__vk_argmax,
    .copy = lm__vk_copy,
};

lm_status lm_vulkan_backend_create(const lm_backend_config *cfg, lm_backend **out) {
    if (!out) return lm__error(LM_ERR_INVALID_ARG, "vulkan: out is NULL");
    *out = NULL;
    lm_backend *be = LM_CALLOC(1, sizeof *be);
    lm__vk *v = LM_CALLOC(1, sizeof *v);
    if (!be || !v) {
        LM_FREE(be);
        LM_FREE(v);
        return lm__error(LM_ERR_NOMEM, "vulkan: cannot allocate the backend");
    }
    be->ops = &lm__vk_ops;
    be->ctx = v;
    lm_status s = lm__vk_device_open(v, cfg);
    if (s == LM_OK) s = lm__vk_memory_init(v);
    if (s == LM_OK) s = lm__vk_pipelines_init(v);
    if (s == LM_OK) s = lm__vk_commands_init(v);
    if (s == LM_OK) s = lm__vk_profile_init(v);
    if (s != LM_OK) {
        lm__vk_destroy(be);
        return s;
    }
    *out = be;
    return LM_OK;
}
