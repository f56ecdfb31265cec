/* GGUF writer: builds a file in memory or on disk, the same layout ggml writes.
 * Values are deep-copied when added, so callers may free theirs at once. */
#include "gguf.h"
#include "lm_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* The writer's input is the program's own data, but it is still bounded: values are copied
 * and written recursively. */
#define LM__WRITER_DEPTH_CAP 64

typedef struct lm__wkv {
    lm_gguf_str key;     /* owned copy */
    lm_gguf_value value; /* owned deep copy */
} lm__wkv;

typedef struct lm__wtensor {
    lm_gguf_str name;
    lm_type type;
    uint32_t n_dims;
    int64_t ne[LM_GGUF_MAX_DIMS];
    uint64_t n_bytes;
    void *data;
} lm__wtensor;

struct lm_gguf_writer {
    uint32_t version;
    uint32_t alignment;
    lm__wkv *kvs;
    size_t n_kv, cap_kv;
    lm__wtensor *tensors;
    size_t n_tensors, cap_tensors;
};

/* Free a deep copy made by lm__value_copy (strings and raw arrays are owned there). */
static void lm__wvalue_free(lm_gguf_value *v) {
    if (v->type == LM_GGUF_STRING) {
        LM_FREE((void *)v->v.str.data);
    } else if (v->type == LM_GGUF_ARRAY) {
        LM_FREE((void *)v->v.arr.raw);
        for (uint64_t i = 0; v->v.arr.items && i < v->v.arr.n; i++)
            lm__wvalue_free(&v->v.arr.items[i]);
        LM_FREE(v->v.arr.items);
    }
    memset(v, 0, sizeof *v);
}

static lm_status lm__bytes_copy(const void *src, uint64_t n, const void **dst) {
    *dst = NULL;
    if (n == 0) return LM_OK;
    if (!src)
        return lm__error(LM_ERR_INVALID_ARG, "gguf writer: NULL data for %" PRIu64 " bytes", n);
    if (n > SIZE_MAX) return lm__error(LM_ERR_NOMEM, "gguf writer: %" PRIu64 " bytes", n);
    void *p = LM_MALLOC((size_t)n);
    if (!p) return lm__error(LM_ERR_NOMEM, "gguf writer: out of memory for %" PRIu64 " bytes", n);
    memcpy(p, src, (size_t)n);
    *dst = p;
    return LM_OK;
}

static lm_status lm__value_copy(lm_gguf_value *dst, const lm_gguf_value *src, uint32_t depth);

static lm_status lm__array_copy(lm_gguf_value *dst, const lm_gguf_value *src, uint32_t depth) {
    lm_gguf_type et = src->v.arr.type;
    uint64_t n = src->v.arr.n;
    dst->v.arr.type = et;
    if ((unsigned)et >= LM_GGUF_TYPE_COUNT)
        return lm__error(LM_ERR_INVALID_ARG, "gguf writer: unknown array element type %d", et);
    size_t es = lm_gguf_type_size(et);
    if (es) {
        uint64_t nb;
        if (!lm__mul_ok(n, es, &nb))
            return lm__error(LM_ERR_INVALID_ARG, "gguf writer: array of %" PRIu64 " too big", n);
        dst->v.arr.n = n;
        return lm__bytes_copy(src->v.arr.raw, nb, &dst->v.arr.raw);
    }
    if (depth + 1 >= LM__WRITER_DEPTH_CAP)
        return lm__error(LM_ERR_INVALID_ARG, "gguf writer: arrays nested too deep");
    if (n == 0) return LM_OK;
    if (!src->v.arr.items || n > SIZE_MAX / sizeof(lm_gguf_value))
        return lm__error(LM_ERR_INVALID_ARG, "gguf writer: array of %" PRIu64 " without items", n);
    dst->v.arr.items = LM_CALLOC((size_t)n, sizeof(lm_gguf_value));
    if (!dst->v.arr.items) return lm__error(LM_ERR_NOMEM, "gguf writer: out of memory");
    dst->v.arr.n = n;
    for (uint64_t i = 0; i < n; i++) {
        if (src->v.arr.items[i].type != et) {
            return lm__error(LM_ERR_INVALID_ARG,
                             "gguf writer: array element %" PRIu64 " has type %s, expected %s", i,
                             lm_gguf_type_name(src->v.arr.items[i].type), lm_gguf_type_name(et));
        }
        LM_TRY(lm__value_copy(&dst->v.arr.items[i], &src->v.arr.items[i], depth + 1));
    }
    return LM_OK;
}

static lm_status lm__value_copy(lm_gguf_value *dst, const lm_gguf_value *src, uint32_t depth) {
    memset(dst, 0, sizeof *dst);
    if ((unsigned)src->type >= LM_GGUF_TYPE_COUNT)
        return lm__error(LM_ERR_INVALID_ARG, "gguf writer: unknown value type %d", src->type);
    dst->type = src->type;
    if (src->type == LM_GGUF_STRING) {
        dst->v.str.len = src->v.str.len;
        return lm__bytes_copy(src->v.str.data, src->v.str.len, (const void **)&dst->v.str.data);
    }
    if (src->type == LM_GGUF_ARRAY) return lm__array_copy(dst, src, depth);
    dst->v = src->v;
    return LM_OK;
}

lm_status lm_gguf_writer_create(uint32_t version, lm_gguf_writer **out) {
    if (!out) return lm__error(LM_ERR_INVALID_ARG, "gguf writer: NULL out");
    *out = NULL;
    if (version != 2 && version != 3) {
        return lm__error(LM_ERR_INVALID_ARG, "gguf writer: version %" PRIu32 " (only 2 and 3)",
                         version);
    }
    lm_gguf_writer *w = LM_CALLOC(1, sizeof *w);
    if (!w) return lm__error(LM_ERR_NOMEM, "gguf writer: out of memory");
    w->version = version;
    w->alignment = LM_GGUF_DEFAULT_ALIGNMENT;
    *out = w;
    return LM_OK;
}

void lm_gguf_writer_free(lm_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        LM_FREE((void *)w->kvs[i].key.data);
        lm__wvalue_free(&w->kvs[i].value);
    }
    for (size_t i = 0; i < w->n_tensors; i++) {
        LM_FREE((void *)w->tensors[i].name.data);
        LM_FREE(w->tensors[i].data);
    }
    LM_FREE(w->kvs);
    LM_FREE(w->tensors);
    LM_FREE(w);
}

static lm__wkv *lm__writer_find(const lm_gguf_writer *w, const char *key) {
    for (size_t i = 0; i < w->n_kv; i++)
        if (lm_gguf_str_eq(w->kvs[i].key, key)) return &w->kvs[i];
    return NULL;
}

/* Grow a table by one slot. */
static lm_status lm__grow(void **p, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) return LM_OK;
    size_t c = *cap ? *cap * 2 : 16;
    void *q = LM_REALLOC(*p, c * elem);
    if (!q) return lm__error(LM_ERR_NOMEM, "gguf writer: out of memory");
    *p = q;
    *cap = c;
    return LM_OK;
}

static bool lm__pow2(uint64_t a) {
    return a && (a & (a - 1)) == 0;
}

lm_status lm_gguf_writer_set_alignment(lm_gguf_writer *w, uint32_t alignment) {
    if (!lm__pow2(alignment)) {
        return lm__error(LM_ERR_INVALID_ARG,
                         "gguf writer: alignment %" PRIu32 " is not a nonzero power of two",
                         alignment);
    }
    lm__wkv *kv = lm__writer_find(w, "general.alignment");
    if (kv) {
        kv->value.v.u64 = alignment;
        w->alignment = alignment;
        return LM_OK;
    }
    return lm_gguf_writer_add_u32(w, "general.alignment", alignment);
}

lm_status lm_gguf_writer_add_kv(lm_gguf_writer *w, const char *key, const lm_gguf_value *v) {
    if (!w || !key || !v) return lm__error(LM_ERR_INVALID_ARG, "gguf writer: NULL argument");
    if (!*key) return lm__error(LM_ERR_INVALID_ARG, "gguf writer: empty key");
    if (lm__writer_find(w, key))
        return lm__error(LM_ERR_INVALID_ARG, "gguf writer: duplicate key '%s'", key);
    bool is_align = strcmp(key, "general.alignment") == 0;
    if (is_align && (v->type != LM_GGUF_UINT32 || v->v.u64 > UINT32_MAX || !lm__pow2(v->v.u64))) {
        return lm__error(LM_ERR_INVALID_ARG,
                         "gguf writer: 'general.alignment' must be a uint32 power of two");
    }
    LM_TRY(lm__grow((void **)&w->kvs, &w->cap_kv, w->n_kv, sizeof *w->kvs));
    lm__wkv *kv = &w->kvs[w->n_kv];
    memset(kv, 0, sizeof *kv);
    lm_status s = lm__bytes_copy(key, strlen(key), (const void **)&kv->key.data);
    kv->key.len = strlen(key);
    if (s == LM_OK) s = lm__value_copy(&kv->value, v, 0);
    if (s != LM_OK) {
        LM_FREE((void *)kv->key.data);
        lm__wvalue_free(&kv->value);
        return s;
    }
    w->n_kv++;
    if (is_align) w->alignment = (uint32_t)v->v.u64;
    return LM_OK;
}

lm_status lm_gguf_writer_add_u32(lm_gguf_writer *w, const char *key, uint32_t x) {
    lm_gguf_value v = {.type = LM_GGUF_UINT32, .v.u64 = x};
    return lm_gguf_writer_add_kv(w, key, &v);
}

lm_status lm_gguf_writer_add_f32(lm_gguf_writer *w, const char *key, float x) {
    lm_gguf_value v = {.type = LM_GGUF_FLOAT32, .v.f64 = x};
    return lm_gguf_writer_add_kv(w, key, &v);
}

lm_status lm_gguf_writer_add_bool(lm_gguf_writer *w, const char *key, bool x) {
    lm_gguf_value v = {.type = LM_GGUF_BOOL, .v.b = x};
    return lm_gguf_writer_add_kv(w, key, &v);
}

lm_status lm_gguf_writer_add_str(lm_gguf_writer *w, const char *key, const char *x) {
    if (!x) return lm__error(LM_ERR_INVALID_ARG, "gguf writer: NULL string for '%s'", key);
    lm_gguf_value v = {.type = LM_GGUF_STRING, .v.str = {strlen(x), x}};
    return lm_gguf_writer_add_kv(w, key, &v);
}

lm_status lm_gguf_writer_add_str_arr(lm_gguf_writer *w, const char *key, const char *const *x,
                                     uint64_t n) {
    if (n > SIZE_MAX / sizeof(lm_gguf_value))
        return lm__error(LM_ERR_INVALID_ARG, "gguf writer: array too big");
    lm_gguf_value *items = n ? LM_CALLOC((size_t)n, sizeof *items) : NULL;
    if (n && !items) return lm__error(LM_ERR_NOMEM, "gguf writer: out of memory");
    for (uint64_t i = 0; i < n; i++) {
        items[i].type = LM_GGUF_STRING;
        items[i].v.str.len = x[i] ? strlen(x[i]) : 0;
        items[i].v.str.data = x[i];
    }
    lm_gguf_value v = {.type = LM_GGUF_ARRAY};
    v.v.arr.type = LM_GGUF_STRING;
    v.v.arr.n = n;
    v.v.arr.items = items;
    lm_status s = lm_gguf_writer_add_kv(w, key, &v);
    LM_FREE(items);
    return s;
}

static lm_status lm__add_raw_arr(lm_gguf_writer *w, const char *key, lm_gguf_type t, const void *x,
                                 uint64_t n) {
    lm_gguf_value v = {.type = LM_GGUF_ARRAY};
    v.v.arr.type = t;
    v.v.arr.n = n;
    v.v.arr.raw = x;
    return lm_gguf_writer_add_kv(w, key, &v);
}

lm_status lm_gguf_writer_add_i32_arr(lm_gguf_writer *w, const char *key, const int32_t *x,
                                     uint64_t n) {
    return lm__add_raw_arr(w, key, LM_GGUF_INT32, x, n);
}

lm_status lm_gguf_writer_add_f32_arr(lm_gguf_writer *w, const char *key, const float *x,
                                     uint64_t n) {
    return lm__add_raw_arr(w, key, LM_GGUF_FLOAT32, x, n);
}

/* with_data false: a header entry only; the caller streams the bytes (data stays NULL). */
static lm_status lm__add_tensor(lm_gguf_writer *w, const char *name, lm_type type, uint32_t n_dims,
                                const int64_t *ne, const void *data, bool with_data) {
    if (!w || !name || !ne) return lm__error(LM_ERR_INVALID_ARG, "gguf writer: NULL argument");
    if (!*name) return lm__error(LM_ERR_INVALID_ARG, "gguf writer: empty tensor name");
    for (size_t i = 0; i < w->n_tensors; i++) {
        if (lm_gguf_str_eq(w->tensors[i].name, name))
            return lm__error(LM_ERR_INVALID_ARG, "gguf writer: duplicate tensor '%s'", name);
    }
    lm__wtensor t = {.type = type, .n_dims = n_dims};
    if (!lm_gguf_tensor_nbytes(type, n_dims, ne, &t.n_bytes) || t.n_bytes > SIZE_MAX) {
        return lm__error(LM_ERR_INVALID_ARG,
                         "gguf writer: tensor '%s': bad type %d or shape for %" PRIu32 " dims",
                         name, (int)type, n_dims);
    }
    for (uint32_t d = 0; d < LM_GGUF_MAX_DIMS; d++) t.ne[d] = d < n_dims ? ne[d] : 1;
    LM_TRY(lm__grow((void **)&w->tensors, &w->cap_tensors, w->n_tensors, sizeof *w->tensors));
    t.name.len = strlen(name);
    lm_status s = lm__bytes_copy(name, t.name.len, (const void **)&t.name.data);
    /* NULL data means zeros (handy for shape-only test files). */
    t.data = with_data ? LM_CALLOC(1, (size_t)t.n_bytes) : NULL;
    if (s == LM_OK && with_data && !t.data)
        s = lm__error(LM_ERR_NOMEM, "gguf writer: out of memory");
    if (s != LM_OK) {
        LM_FREE((void *)t.name.data);
        LM_FREE(t.data);
        return s;
    }
    if (data && with_data) memcpy(t.data, data, (size_t)t.n_bytes);
    w->tensors[w->n_tensors++] = t;
    return LM_OK;
}

lm_status lm_gguf_writer_add_tensor(lm_gguf_writer *w, const char *name, lm_type type,
                                    uint32_t n_dims, const int64_t *ne, const void *data) {
    return lm__add_tensor(w, name, type, n_dims, ne, data, true);
}

lm_status lm_gguf_writer_add_tensor_info(lm_gguf_writer *w, const char *name, lm_type type,
                                         uint32_t n_dims, const int64_t *ne) {
    return lm__add_tensor(w, name, type, n_dims, ne, NULL, false);
}

/* Output sink: a buffer, a FILE, or neither (just counting bytes). */
typedef struct lm__wout {
    uint8_t *buf;
    FILE *fp;
    uint64_t pos;
    bool failed;
} lm__wout;

static void lm__w(lm__wout *o, const void *p, size_t n) {
    if (n == 0) return; /* empty strings and arrays may have NULL data */
    if (o->buf)
        memcpy(o->buf + o->pos, p, n);
    else if (o->fp && !o->failed && fwrite(p, 1, n, o->fp) != n)
        o->failed = true;
    o->pos += n;
}

static void lm__w_u32(lm__wout *o, uint32_t x) {
    lm__w(o, &x, 4);
}
static void lm__w_u64(lm__wout *o, uint64_t x) {
    lm__w(o, &x, 8);
}

static void lm__w_str(lm__wout *o, lm_gguf_str s) {
    lm__w_u64(o, s.len);
    lm__w(o, s.data, (size_t)s.len);
}

static void lm__w_zeros(lm__wout *o, uint64_t n) {
    static const uint8_t zeros[256];
    while (n) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        lm__w(o, zeros, k);
        n -= k;
    }
}

static void lm__w_pad(lm__wout *o, uint32_t alignment) {
    lm__w_zeros(o, (alignment - o->pos % alignment) % alignment);
}

static void lm__w_value(lm__wout *o, const lm_gguf_value *v) {
    uint8_t b[8];
    switch (v->type) {
    case LM_GGUF_STRING:
        lm__w_str(o, v->v.str);
        return;
    case LM_GGUF_ARRAY: {
        lm__w_u32(o, v->v.arr.type);
        lm__w_u64(o, v->v.arr.n);
        size_t es = lm_gguf_type_size(v->v.arr.type);
        if (es) {
            lm__w(o, v->v.arr.raw, (size_t)(v->v.arr.n * es));
            return;
        }
        for (uint64_t i = 0; i < v->v.arr.n; i++) lm__w_value(o, &v->v.arr.items[i]);
        return;
    }
    case LM_GGUF_BOOL:
        b[0] = v->v.b ? 1 : 0;
        break;
    case LM_GGUF_FLOAT32: {
        float f = (float)v->v.f64;
        memcpy(b, &f, 4);
        break;
    }
    case LM_GGUF_FLOAT64:
        memcpy(b, &v->v.f64, 8);
        break;
    default:
        /* Integers: the low bytes of the 64-bit field are the little-endian encoding. */
        if (v->type == LM_GGUF_UINT8 || v->type == LM_GGUF_UINT16 || v->type == LM_GGUF_UINT32 ||
            v->type == LM_GGUF_UINT64)
            memcpy(b, &v->v.u64, 8);
        else
            memcpy(b, &v->v.i64, 8);
        break;
    }
    lm__w(o, b, lm_gguf_type_size(v->type));
}

static void lm__w_meta(const lm_gguf_writer *w, lm__wout *o) {
    lm__w(o, "GGUF", 4);
    lm__w_u32(o, w->version);
    lm__w_u64(o, w->n_tensors);
    lm__w_u64(o, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        lm__w_str(o, w->kvs[i].key);
        lm__w_u32(o, w->kvs[i].value.type);
        lm__w_value(o, &w->kvs[i].value);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const lm__wtensor *t = &w->tensors[i];
        lm__w_str(o, t->name);
        lm__w_u32(o, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) lm__w_u64(o, (uint64_t)t->ne[d]);
        lm__w_u32(o, t->type);
        lm__w_u64(o, off);
        off += (t->n_bytes + w->alignment - 1) / w->alignment * w->alignment;
    }
    /* Like ggml: the data section and every tensor (the last one too) are padded. */
    lm__w_pad(o, w->alignment);
}

static void lm__w_all(const lm_gguf_writer *w, lm__wout *o) {
    lm__w_meta(w, o);
    for (size_t i = 0; i < w->n_tensors; i++) {
        if (w->tensors[i].data)
            lm__w(o, w->tensors[i].data, (size_t)w->tensors[i].n_bytes);
        else /* a streamed tensor (add_tensor_info): zeros here */
            lm__w_zeros(o, w->tensors[i].n_bytes);
        lm__w_pad(o, w->alignment);
    }
}

lm_status lm_gguf_writer_write_memory(const lm_gguf_writer *w, void **data, size_t *size) {
    if (!w || !data || !size) return lm__error(LM_ERR_INVALID_ARG, "gguf writer: NULL argument");
    lm__wout count = {0};
    lm__w_all(w, &count);
    if (count.pos > SIZE_MAX) return lm__error(LM_ERR_NOMEM, "gguf writer: file too big");
    /* The contract is free() by the caller, so plain malloc, not LM_MALLOC. */
    lm__wout o = {.buf = malloc(count.pos ? (size_t)count.pos : 1)};
    if (!o.buf)
        return lm__error(LM_ERR_NOMEM, "gguf writer: out of memory for %" PRIu64 " bytes",
                         count.pos);
    lm__w_all(w, &o);
    *data = o.buf;
    *size = (size_t)o.pos;
    return LM_OK;
}

lm_status lm_gguf_writer_write_meta(const lm_gguf_writer *w, void **data, size_t *size) {
    if (!w || !data || !size) return lm__error(LM_ERR_INVALID_ARG, "gguf writer: NULL argument");
    lm__wout count = {0};
    lm__w_meta(w, &count);
    lm__wout o = {.buf = malloc((size_t)count.pos)};
    if (!o.buf) return lm__error(LM_ERR_NOMEM, "gguf writer: out of memory");
    lm__w_meta(w, &o);
    *data = o.buf;
    *size = (size_t)o.pos;
    return LM_OK;
}

lm_status lm_gguf_writer_write_file(const lm_gguf_writer *w, const char *path) {
    if (!w || !path) return lm__error(LM_ERR_INVALID_ARG, "gguf writer: NULL argument");
    FILE *fp = fopen(path, "wb");
    if (!fp) return lm__error(LM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    lm__wout o = {.fp = fp};
    lm__w_all(w, &o);
    int e = o.failed ? errno : 0;
    if (fclose(fp) != 0 && !o.failed) {
        o.failed = true;
        e = errno;
    }
    if (o.failed) {
        remove(path);
        return lm__error(LM_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return LM_OK;
}
