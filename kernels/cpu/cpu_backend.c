/* The CPU backend: host buffers, a persistent thread pool, and the plain-C reference ops
 * (cpu_ops.c, cpu_attention.c). Every other backend is tested against it. */
#include "cpu_internal.h"

#include "../../runtime/quant.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* ---- validation helpers shared by the op files ---- */

lm_status lm__cpu_check(const char *op, const char *arg, const lm_tensor *t, int type) {
    LM_TRY(lm__cpu_check_w(op, arg, t, type));
    if (t->layout != LM_LAYOUT_ROWS)
        return lm__error(LM_ERR_INVALID_ARG,
                         "%s: %s is a weight in the CPU's interleaved layout%s, which only "
                         "mul_mat and get_rows read",
                         op, arg, t->layout == LM_LAYOUT_CPU_P8 ? " (packed)" : "");
    return LM_OK;
}

lm_status lm__cpu_check_w(const char *op, const char *arg, const lm_tensor *t, int type) {
    if (!t) return lm__error(LM_ERR_INVALID_ARG, "%s: %s is NULL", op, arg);
    if (t->layout != LM_LAYOUT_ROWS && t->layout != LM_LAYOUT_CPU_R8 &&
        t->layout != LM_LAYOUT_CPU_P8)
        return lm__error(LM_ERR_INVALID_ARG, "%s: %s has an unknown layout %d", op, arg, t->layout);
    if (t->layout == LM_LAYOUT_CPU_P8 && !lm__cpu_p8_type(t->type))
        return lm__error(LM_ERR_INVALID_ARG, "%s: %s is packed but its type has no packed form", op,
                         arg);
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
    return LM_OK;
}

lm_status lm__cpu_check_same_shape(const char *op, const char *an, const lm_tensor *a,
                                   const char *bn, const lm_tensor *b) {
    for (int i = 0; i < 4; i++) {
        if (a->ne[i] != b->ne[i])
            return lm__error(LM_ERR_INVALID_ARG,
                             "%s: shape mismatch: %s [%lld,%lld,%lld,%lld] vs %s "
                             "[%lld,%lld,%lld,%lld]",
                             op, an, (long long)a->ne[0], (long long)a->ne[1], (long long)a->ne[2],
                             (long long)a->ne[3], bn, (long long)b->ne[0], (long long)b->ne[1],
                             (long long)b->ne[2], (long long)b->ne[3]);
    }
    return LM_OK;
}

lm_status lm__cpu_reserve(lm__cpu *c, size_t n) {
    if (n <= c->scratch_stride) return LM_OK;
    size_t stride = (n + 15) & ~(size_t)15;
    float *s = LM_MALLOC(stride * sizeof(float) * (size_t)c->n_threads);
    if (!s)
        return lm__error(LM_ERR_NOMEM, "cpu: scratch of %zu floats x %d threads", stride,
                         c->n_threads);
    LM_FREE(c->scratch);
    c->scratch = s;
    c->scratch_stride = stride;
    return LM_OK;
}

/* ---- device ---- */

static void lm__cpu_destroy(lm_backend *be) {
    lm__cpu *c = lm__cpu_ctx(be);
    lm__pool_destroy(c->pool);
    LM_FREE(c->scratch);
    LM_FREE(c->act);
    LM_FREE(c->attn_part);
    LM_FREE(c->rope_cs);
    LM_FREE(c->rope_pos);
    LM_FREE(c->rope_ff);
    LM_FREE(c);
    LM_FREE(be);
}

static const char *lm__cpu_device_name(lm_backend *be) {
    return lm__cpu_ctx(be)->name;
}

/* Available physical memory (what the OS could give us now). */
static size_t lm__cpu_device_memory(lm_backend *be) {
    long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (size_t)pages * (size_t)page : 0;
}

/* The model name from /proc/cpuinfo, or "CPU"; the level and threads are added by
 * lm__cpu_set_level: "<model> (N threads, avx2)". */
static void lm__cpu_fill_model(lm__cpu *c) {
    snprintf(c->model, sizeof c->model, "CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) != 0 || !colon) continue;
        colon += 1 + (colon[1] == ' ');
        colon[strcspn(colon, "\n")] = '\0';
        snprintf(c->model, sizeof c->model, "%s", colon);
        break;
    }
    fclose(f);
}

/* ---- buffers ---- */

/* Buffers and weights below this stay in ordinary pages: huge pages would not pay (the
 * tests' models) */
#define LM__CPU_HUGE_MIN ((size_t)16 << 20)

static lm_status lm__cpu_buffer_alloc(lm_backend *be, size_t size, lm_buffer **out) {
    *out = NULL;
    lm_buffer *b = LM_CALLOC(1, sizeof *b);
    if (!b || size > SIZE_MAX - LM__CPU_ALIGN) {
        LM_FREE(b);
        return lm__error(LM_ERR_NOMEM, "cpu: cannot allocate a buffer of %zu bytes", size);
    }
    /* large buffers (a KV cache) in huge pages too: decode's attention reads them */
    void *huge = size >= LM__CPU_HUGE_MIN && lm__huge_available()
                     ? lm__huge_alloc(size, &b->huge_len)
                     : NULL;
    b->raw = huge ? NULL : LM_MALLOC(size + LM__CPU_ALIGN);
    if (!huge && !b->raw) {
        LM_FREE(b);
        return lm__error(LM_ERR_NOMEM, "cpu: cannot allocate a buffer of %zu bytes", size);
    }
    uintptr_t p = ((uintptr_t)b->raw + LM__CPU_ALIGN - 1) & ~(uintptr_t)(LM__CPU_ALIGN - 1);
    b->data = huge ? huge : (void *)p;
    b->size = size;
    /* commit the pages now (as ggml clears its buffers): a KV cache the machine cannot
     * hold fails here, at start, not by an OOM kill mid-generation, and RSS under load
     * shows growth only if something leaks */
    memset(b->data, 0, size);
    *out = b;
    return LM_OK;
}

static void lm__cpu_buffer_free(lm_backend *be, lm_buffer *buf) {
    if (!buf) return;
    LM_FREE(buf->raw);
    lm__huge_free(buf->huge_len ? buf->data : NULL, buf->huge_len);
    LM_FREE(buf);
}

#define LM__CPU_COPY_CHUNK ((size_t)2 << 20)

typedef struct {
    char *dst;
    const char *src;
    size_t size;
} lm__cpu_wcopy;

static void lm__cpu_copy_task(void *ctx, int64_t b, int64_t e, int ith) {
    const lm__cpu_wcopy *c = ctx;
    const size_t o0 = (size_t)b * LM__CPU_COPY_CHUNK, o1 = (size_t)e * LM__CPU_COPY_CHUNK;
    memcpy(c->dst + o0, c->src + o0, (o1 < c->size ? o1 : c->size) - o0);
}

/* The weights in huge pages, copied from the file mapping by the pool (NULL: keep the
 * mapping: THP off, LUMEN_HUGEPAGES=0, a small model, or no memory for the copy). */
static void *lm__cpu_huge_weights(lm_backend *be, const void *ptr, size_t size, size_t *len) {
    *len = 0;
    if (size < LM__CPU_HUGE_MIN || !lm__huge_available()) return NULL;
    char *p = lm__huge_alloc(size, len);
    if (!p) return NULL;
    lm__cpu_wcopy c = {p, ptr, size};
    lm__pool_run(lm__cpu_ctx(be)->pool, lm__cpu_copy_task, &c,
                 (int64_t)((size + LM__CPU_COPY_CHUNK - 1) / LM__CPU_COPY_CHUNK));
    lm__huge_seal(p, *len);
    lm__pages_drop(ptr, size); /* one resident copy, not two */
    return p;
}

static lm_status lm__cpu_buffer_wrap_host(lm_backend *be, const void *ptr, size_t size,
                                          lm_buffer **out) {
    *out = NULL;
    if (!ptr && size)
        return lm__error(LM_ERR_INVALID_ARG, "cpu: buffer_wrap_host of a NULL pointer");
    lm_buffer *b = LM_CALLOC(1, sizeof *b);
    if (!b) return lm__error(LM_ERR_NOMEM, "cpu: cannot allocate a buffer handle");
    void *huge = lm__cpu_huge_weights(be, ptr, size, &b->huge_len);
    b->data = huge ? huge : (void *)(uintptr_t)ptr; /* read-only by contract: upload refuses it */
    b->size = size;
    b->readonly = 1;
    *out = b;
    return LM_OK;
}

static lm_status lm__cpu_range(const char *what, const lm_buffer *buf, size_t offset, size_t n) {
    if (!buf) return lm__error(LM_ERR_INVALID_ARG, "cpu: %s: buffer is NULL", what);
    if (offset > buf->size || n > buf->size - offset)
        return lm__error(LM_ERR_INVALID_ARG,
                         "cpu: %s of %zu bytes at offset %zu exceeds the buffer (%zu bytes)", what,
                         n, offset, buf->size);
    return LM_OK;
}

static lm_status lm__cpu_upload(lm_backend *be, lm_buffer *buf, size_t offset, const void *src,
                                size_t n) {
    LM_TRY(lm__cpu_range("upload", buf, offset, n));
    if (buf->readonly)
        return lm__error(LM_ERR_INVALID_ARG, "cpu: upload into a wrapped (read-only) buffer");
    if (n) memcpy((char *)buf->data + offset, src, n);
    return LM_OK;
}

static lm_status lm__cpu_download(lm_backend *be, const lm_buffer *buf, size_t offset, void *dst,
                                  size_t n) {
    LM_TRY(lm__cpu_range("download", buf, offset, n));
    if (n) memcpy(dst, (const char *)buf->data + offset, n);
    return LM_OK;
}

void *lm_cpu_buffer_ptr(lm_buffer *buf) {
    return buf ? buf->data : NULL;
}

/* The CPU runs each op when it is called: nothing to record or wait for. */
static lm_status lm__cpu_nop(lm_backend *be) {
    return LM_OK;
}

static const lm_backend_ops lm__cpu_ops = {
    .version = LM_BACKEND_INTERFACE_VERSION,
    .name = "cpu",
    .destroy = lm__cpu_destroy,
    .device_name = lm__cpu_device_name,
    .device_memory = lm__cpu_device_memory,
    .buffer_alloc = lm__cpu_buffer_alloc,
    .buffer_free = lm__cpu_buffer_free,
    .upload = lm__cpu_upload,
    .download = lm__cpu_download,
    .buffer_wrap_host = lm__cpu_buffer_wrap_host,
    .weights_relayout = lm__cpu_weights_relayout,
    .mul_mat_n = lm__cpu_mul_mat_n,
    .norm_mul_mat_n = lm__cpu_norm_mul_mat_n,
    .begin = lm__cpu_nop,
    .end = lm__cpu_nop,
    .sync = lm__cpu_nop,
    .get_rows = lm__cpu_get_rows,
    .rms_norm = lm__cpu_rms_norm,
    .mul_mat = lm__cpu_mul_mat,
    .rope = lm__cpu_rope,
    .kv_store = lm__cpu_kv_store,
    .attention = lm__cpu_attention,
    .swiglu = lm__cpu_swiglu,
    .geglu = lm__cpu_geglu,
    .add = lm__cpu_add,
    .mul = lm__cpu_mul,
    .scale = lm__cpu_scale,
    .argmax = lm__cpu_argmax,
    .copy = lm__cpu_copy,
};

lm_status lm_cpu_backend_create(const lm_backend_config *cfg, lm_backend **out) {
    if (!out) return lm__error(LM_ERR_INVALID_ARG, "cpu: out is NULL");
    *out = NULL;
    int n = cfg ? cfg->n_threads : 0;
    if (n < 0 || n > 1024)
        return lm__error(LM_ERR_INVALID_ARG, "cpu: n_threads = %d (expected 0..1024)", n);
    if (n == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 0 ? (int)(cores < 1024 ? cores : 1024) : 1;
    }
    lm_backend *be = LM_CALLOC(1, sizeof *be);
    lm__cpu *c = LM_CALLOC(1, sizeof *c);
    if (!be || !c) {
        LM_FREE(be);
        LM_FREE(c);
        return lm__error(LM_ERR_NOMEM, "cpu: cannot allocate the backend");
    }
    c->pool = lm__pool_create(n);
    if (!c->pool) {
        LM_FREE(be);
        LM_FREE(c);
        return lm__error(LM_ERR_NOMEM, "cpu: cannot create a pool of %d threads", n);
    }
    c->n_threads = lm__pool_threads(c->pool); /* may be fewer if threads failed to start */
    lm__cpu_fill_model(c);
    be->ops = &lm__cpu_ops;
    be->ctx = c;
    lm__cpu_level level;
    lm_status st = lm__cpu_level_from_env(&level);
    if (st == LM_OK) st = lm__cpu_set_level(be, level);
    if (st != LM_OK) {
        lm__cpu_destroy(be);
        return st;
    }
    *out = be;
    return LM_OK;
}
