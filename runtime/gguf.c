/* GGUF v2/v3 reader and writer.
 *
 * The reader trusts nothing in the file: every count, length, shape and offset is checked
 * against the bytes that remain and for overflow before it is used or allocated for, so a
 * hostile file costs at most a few times its own size in memory and never crashes us.
 * Strings and scalar arrays are not copied: they point into the mapping. */
#include "gguf.h"
#include "lm_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader reads little-endian fields in place: little-endian hosts only"
#endif

#define LM__GGUF_MAGIC "GGUF"
/* Nested arrays are parsed (and freed) recursively: cap the depth a caller may ask for. */
#define LM__GGUF_DEPTH_CAP 64
/* Smallest encodings, used to bound counts by the bytes that remain. */
#define LM__MIN_KV_BYTES     (8 + 1 + 4 + 1) /* key len, 1-byte key, type, 1-byte value */
#define LM__MIN_TENSOR_BYTES (8 + 1 + 4 + 8 + 4 + 8)
#define LM__MIN_STR_BYTES    8
#define LM__MIN_ARR_BYTES    (4 + 8)

struct lm_gguf {
    const uint8_t *base;
    size_t size;
    void *map; /* non-NULL when we own an mmap of base */
    char *path;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;
    int64_t n_kv;
    int64_t n_tensors;
    lm_gguf_kv *kvs;
    lm_gguf_tensor *tensors;
    const lm_gguf_kv **kv_sorted;         /* by key: duplicate check and lookup */
    const lm_gguf_tensor **tensor_sorted; /* by name */
};

/* ---- small shared helpers -------------------------------------------------------------- */

static const char *const lm__type_names[LM_GGUF_TYPE_COUNT] = {
    "uint8", "int8",   "uint16", "int16",  "uint32", "int32",   "float32",
    "bool",  "string", "array",  "uint64", "int64",  "float64",
};

const char *lm_gguf_type_name(lm_gguf_type t) {
    return (unsigned)t < LM_GGUF_TYPE_COUNT ? lm__type_names[t] : "unknown";
}

size_t lm_gguf_type_size(lm_gguf_type t) {
    switch (t) {
    case LM_GGUF_UINT8:
    case LM_GGUF_INT8:
    case LM_GGUF_BOOL:
        return 1;
    case LM_GGUF_UINT16:
    case LM_GGUF_INT16:
        return 2;
    case LM_GGUF_UINT32:
    case LM_GGUF_INT32:
    case LM_GGUF_FLOAT32:
        return 4;
    case LM_GGUF_UINT64:
    case LM_GGUF_INT64:
    case LM_GGUF_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

static bool lm__is_uint(lm_gguf_type t) {
    return t == LM_GGUF_UINT8 || t == LM_GGUF_UINT16 || t == LM_GGUF_UINT32 || t == LM_GGUF_UINT64;
}
static bool lm__is_sint(lm_gguf_type t) {
    return t == LM_GGUF_INT8 || t == LM_GGUF_INT16 || t == LM_GGUF_INT32 || t == LM_GGUF_INT64;
}
static bool lm__is_int(lm_gguf_type t) {
    return lm__is_uint(t) || lm__is_sint(t);
}
static bool lm__is_float(lm_gguf_type t) {
    return t == LM_GGUF_FLOAT32 || t == LM_GGUF_FLOAT64;
}

/* Decode one little-endian scalar element (host is little-endian, see the #error above). */
static void lm__decode_scalar(lm_gguf_type t, const uint8_t *p, lm_gguf_value *v) {
    v->type = t;
    switch (t) {
    case LM_GGUF_UINT8:
        v->v.u64 = p[0];
        break;
    case LM_GGUF_INT8:
        v->v.i64 = (int8_t)p[0];
        break;
    case LM_GGUF_BOOL:
        v->v.b = p[0] != 0;
        break;
    case LM_GGUF_UINT16: {
        uint16_t x;
        memcpy(&x, p, 2);
        v->v.u64 = x;
        break;
    }
    case LM_GGUF_INT16: {
        int16_t x;
        memcpy(&x, p, 2);
        v->v.i64 = x;
        break;
    }
    case LM_GGUF_UINT32: {
        uint32_t x;
        memcpy(&x, p, 4);
        v->v.u64 = x;
        break;
    }
    case LM_GGUF_INT32: {
        int32_t x;
        memcpy(&x, p, 4);
        v->v.i64 = x;
        break;
    }
    case LM_GGUF_FLOAT32: {
        float x;
        memcpy(&x, p, 4);
        v->v.f64 = x;
        break;
    }
    case LM_GGUF_UINT64:
        memcpy(&v->v.u64, p, 8);
        break;
    case LM_GGUF_INT64:
        memcpy(&v->v.i64, p, 8);
        break;
    case LM_GGUF_FLOAT64:
        memcpy(&v->v.f64, p, 8);
        break;
    default:
        break;
    }
}

/* Printable, bounded rendering of a file string for error messages (names may be hostile). */
static const char *lm__show(lm_gguf_str s, char *buf, size_t size) {
    size_t o = 0, i = 0;
    for (; i < s.len && o + 8 < size && i < 64; i++) {
        unsigned char c = (unsigned char)s.data[i];
        if (c >= 0x20 && c < 0x7f && c != '\'')
            buf[o++] = (char)c;
        else
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
    }
    if (i < s.len && o + 4 < size) o += (size_t)snprintf(buf + o, size - o, "...");
    buf[o] = '\0';
    return buf;
}

static void lm__value_free(lm_gguf_value *v) {
    if (v->type != LM_GGUF_ARRAY || !v->v.arr.items) return;
    for (uint64_t i = 0; i < v->v.arr.n; i++) lm__value_free(&v->v.arr.items[i]);
    LM_FREE(v->v.arr.items);
    v->v.arr.items = NULL;
}

bool lm_gguf_str_eq(lm_gguf_str s, const char *c) {
    size_t n = strlen(c);
    return s.len == n && (n == 0 || memcmp(s.data, c, n) == 0);
}

static int lm__str_cmp(lm_gguf_str a, lm_gguf_str b) {
    uint64_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.data, b.data, (size_t)n) : 0;
    if (c) return c;
    return a.len < b.len ? -1 : a.len > b.len;
}

bool lm_gguf_tensor_nbytes(lm_type type, uint32_t n_dims, const int64_t *ne, uint64_t *out) {
    lm_type_traits tt = lm_type_get((uint32_t)type);
    if (!tt.name || n_dims < 1 || n_dims > LM_GGUF_MAX_DIMS) return false;
    if (ne[0] <= 0 || ne[0] % tt.blck != 0) return false;
    uint64_t n = (uint64_t)(ne[0] / tt.blck);
    if (!lm__mul_ok(n, (uint64_t)tt.size, &n)) return false;
    for (uint32_t d = 1; d < n_dims; d++) {
        if (ne[d] <= 0 || !lm__mul_ok(n, (uint64_t)ne[d], &n)) return false;
    }
    *out = n;
    return true;
}

/* ---- the parser ------------------------------------------------------------------------ */

#define LM__IDX_SHOWN 8 /* array indices named in messages; deeper ones print as [...] */

typedef struct lm__gp {
    const uint8_t *p;
    size_t size;
    size_t pos;
    const char *path;
    lm_gguf_limits lim;
    char ctx[160];  /* what is being parsed: "header", "key #3 'general.name'", ... */
    uint32_t depth; /* array nesting while parsing a value */
    uint64_t idx[LM__IDX_SHOWN];
} lm__gp;

/* Fail with "<path>: <ctx>[i][j]: <detail> at offset 0x..". */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static lm_status
lm__fail(lm__gp *g, lm_status s, size_t at, const char *fmt, ...) {
    char detail[512], where[128] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    size_t o = 0;
    for (uint32_t d = 0; d < g->depth && o + 24 < sizeof where; d++) {
        if (d < LM__IDX_SHOWN)
            o += (size_t)snprintf(where + o, sizeof where - o, "[%" PRIu64 "]", g->idx[d]);
        else
            o += (size_t)snprintf(where + o, sizeof where - o, "[...]");
    }
    return lm__error(s, "%s: %s%s%s: %s at offset 0x%zx", g->path, g->ctx, o ? " element " : "",
                     where, detail, at);
}

static size_t lm__left(const lm__gp *g) {
    return g->size - g->pos;
}

static lm_status lm__rd(lm__gp *g, size_t n, const char *what, const uint8_t **out) {
    if (n > lm__left(g)) {
        return lm__fail(g, LM_ERR_FORMAT, g->pos,
                        "unexpected end of file reading %s (need %zu bytes, %zu remaining)", what,
                        n, lm__left(g));
    }
    *out = g->p + g->pos;
    g->pos += n;
    return LM_OK;
}

static lm_status lm__rd_u32(lm__gp *g, const char *what, uint32_t *out) {
    const uint8_t *b = NULL;
    LM_TRY(lm__rd(g, 4, what, &b));
    memcpy(out, b, 4);
    return LM_OK;
}

static lm_status lm__rd_u64(lm__gp *g, const char *what, uint64_t *out) {
    const uint8_t *b = NULL;
    LM_TRY(lm__rd(g, 8, what, &b));
    memcpy(out, b, 8);
    return LM_OK;
}

static lm_status lm__rd_str(lm__gp *g, const char *what, lm_gguf_str *out) {
    size_t at = g->pos;
    uint64_t len = 0;
    LM_TRY(lm__rd_u64(g, what, &len));
    if (len > lm__left(g)) {
        return lm__fail(g, LM_ERR_FORMAT, at, "%s length %" PRIu64 " exceeds remaining %zu bytes",
                        what, len, lm__left(g));
    }
    if (len > g->lim.max_string) {
        return lm__fail(g, LM_ERR_LIMIT, at, "%s length %" PRIu64 " exceeds the limit %" PRIu64,
                        what, len, g->lim.max_string);
    }
    out->len = len;
    out->data = (const char *)(g->p + g->pos);
    g->pos += (size_t)len;
    return LM_OK;
}

static lm_status lm__rd_type(lm__gp *g, const char *what, lm_gguf_type *out) {
    size_t at = g->pos;
    uint32_t t = 0;
    LM_TRY(lm__rd_u32(g, what, &t));
    if (t >= LM_GGUF_TYPE_COUNT)
        return lm__fail(g, LM_ERR_FORMAT, at, "unknown %s %" PRIu32, what, t);
    *out = (lm_gguf_type)t;
    return LM_OK;
}

static lm_status lm__parse_array(lm__gp *g, lm_gguf_value *v);

/* A value whose type was already read and validated. */
static lm_status lm__parse_value(lm__gp *g, lm_gguf_type type, lm_gguf_value *v) {
    v->type = type;
    if (type == LM_GGUF_STRING) return lm__rd_str(g, "string", &v->v.str);
    if (type == LM_GGUF_ARRAY) return lm__parse_array(g, v);
    size_t at = g->pos;
    const uint8_t *b = NULL;
    LM_TRY(lm__rd(g, lm_gguf_type_size(type), lm__type_names[type], &b));
    if (type == LM_GGUF_BOOL && b[0] > 1)
        return lm__fail(g, LM_ERR_FORMAT, at, "bool value %u is not 0 or 1", b[0]);
    lm__decode_scalar(type, b, v);
    return LM_OK;
}

static lm_status lm__parse_scalar_array(lm__gp *g, lm_gguf_value *v, size_t at) {
    lm_gguf_type et = v->v.arr.type;
    size_t es = lm_gguf_type_size(et);
    if (v->v.arr.n > lm__left(g) / es) {
        return lm__fail(g, LM_ERR_FORMAT, at,
                        "array of %" PRIu64 " %s (%zu bytes each) exceeds remaining %zu bytes",
                        v->v.arr.n, lm__type_names[et], es, lm__left(g));
    }
    const uint8_t *raw = g->p + g->pos;
    size_t nb = (size_t)v->v.arr.n * es;
    if (et == LM_GGUF_BOOL) {
        for (size_t i = 0; i < nb; i++) {
            if (raw[i] > 1) {
                return lm__fail(g, LM_ERR_FORMAT, g->pos + i,
                                "bool array element %zu has value %u, not 0 or 1", i, raw[i]);
            }
        }
    }
    v->v.arr.raw = raw;
    g->pos += nb;
    return LM_OK;
}

/* Array header (element type, count) and elements; g->depth is this array's nesting. */
static lm_status lm__parse_array(lm__gp *g, lm_gguf_value *v) {
    size_t at = g->pos;
    lm_gguf_type et = LM_GGUF_UINT8;
    LM_TRY(lm__rd_type(g, "array element type", &et));
    uint64_t n = 0;
    LM_TRY(lm__rd_u64(g, "array count", &n));
    v->v.arr.type = et;
    v->v.arr.n = 0;
    v->v.arr.raw = NULL;
    v->v.arr.items = NULL;
    if (et != LM_GGUF_STRING && et != LM_GGUF_ARRAY) {
        v->v.arr.n = n;
        return lm__parse_scalar_array(g, v, at);
    }
    if (et == LM_GGUF_ARRAY && g->depth + 1 >= g->lim.max_depth) {
        return lm__fail(g, LM_ERR_LIMIT, at, "arrays nested deeper than the limit %" PRIu32,
                        g->lim.max_depth);
    }
    size_t min = et == LM_GGUF_STRING ? LM__MIN_STR_BYTES : LM__MIN_ARR_BYTES;
    if (n > lm__left(g) / min) {
        return lm__fail(g, LM_ERR_FORMAT, at,
                        "array of %" PRIu64 " %s needs at least %zu bytes each, exceeds remaining "
                        "%zu bytes",
                        n, lm__type_names[et], min, lm__left(g));
    }
    if (n == 0) return LM_OK;
    /* Zeroed items are UINT8 values, so a partly parsed array frees cleanly. */
    v->v.arr.items = LM_CALLOC((size_t)n, sizeof *v->v.arr.items);
    if (!v->v.arr.items) {
        return lm__fail(g, LM_ERR_NOMEM, at, "out of memory for %" PRIu64 " array elements", n);
    }
    v->v.arr.n = n;
    g->depth++;
    lm_status s = LM_OK;
    for (uint64_t i = 0; i < n && s == LM_OK; i++) {
        if (g->depth - 1 < LM__IDX_SHOWN) g->idx[g->depth - 1] = i;
        s = lm__parse_value(g, et, &v->v.arr.items[i]);
    }
    g->depth--;
    return s;
}

static lm_status lm__parse_header(lm__gp *g, lm_gguf *f, uint64_t *n_tensors, uint64_t *n_kv) {
    snprintf(g->ctx, sizeof g->ctx, "header");
    if (g->size == 0)
        return lm__error(LM_ERR_FORMAT, "%s: empty file (0 bytes), not a GGUF file", g->path);
    if (g->size < 4) {
        return lm__error(LM_ERR_FORMAT, "%s: file too small (%zu bytes) to be a GGUF file", g->path,
                         g->size);
    }
    if (memcmp(g->p, LM__GGUF_MAGIC, 4) != 0) {
        char m[40];
        lm_gguf_str s = {4, (const char *)g->p};
        return lm__error(LM_ERR_FORMAT, "%s: bad magic '%s' (expected 'GGUF'): not a GGUF file",
                         g->path, lm__show(s, m, sizeof m));
    }
    g->pos = 4;
    LM_TRY(lm__rd_u32(g, "version", &f->version));
    if (f->version == 1) {
        return lm__fail(g, LM_ERR_FORMAT, 4,
                        "GGUF v1 is not supported (only v2 and v3); re-convert the model");
    }
    if (f->version == 0x02000000u || f->version == 0x03000000u) {
        return lm__fail(g, LM_ERR_FORMAT, 4,
                        "big-endian GGUF (version bytes 0x%08" PRIx32 ") is not supported",
                        f->version);
    }
    if (f->version != 2 && f->version != 3) {
        return lm__fail(g, LM_ERR_FORMAT, 4,
                        "unsupported GGUF version %" PRIu32 " (only v2 and v3)", f->version);
    }
    LM_TRY(lm__rd_u64(g, "tensor count", n_tensors));
    LM_TRY(lm__rd_u64(g, "key-value count", n_kv));
    /* Structure first (the file cannot hold that many), then the caller's limits. */
    if (*n_kv > lm__left(g) / LM__MIN_KV_BYTES) {
        return lm__fail(g, LM_ERR_FORMAT, 16,
                        "key-value count %" PRIu64 " cannot fit in the remaining %zu bytes", *n_kv,
                        lm__left(g));
    }
    if (*n_tensors > lm__left(g) / LM__MIN_TENSOR_BYTES) {
        return lm__fail(g, LM_ERR_FORMAT, 8,
                        "tensor count %" PRIu64 " cannot fit in the remaining %zu bytes",
                        *n_tensors, lm__left(g));
    }
    if (*n_kv > g->lim.max_kv) {
        return lm__fail(g, LM_ERR_LIMIT, 16,
                        "key-value count %" PRIu64 " exceeds the limit %" PRIu64, *n_kv,
                        g->lim.max_kv);
    }
    if (*n_tensors > g->lim.max_tensors) {
        return lm__fail(g, LM_ERR_LIMIT, 8, "tensor count %" PRIu64 " exceeds the limit %" PRIu64,
                        *n_tensors, g->lim.max_tensors);
    }
    return LM_OK;
}

static lm_status lm__parse_kv(lm__gp *g, int64_t i, lm_gguf_kv *kv) {
    char name[300];
    snprintf(g->ctx, sizeof g->ctx, "key #%" PRId64, i);
    size_t at = g->pos;
    LM_TRY(lm__rd_str(g, "key", &kv->key));
    if (kv->key.len == 0) return lm__fail(g, LM_ERR_FORMAT, at, "empty key");
    snprintf(g->ctx, sizeof g->ctx, "key #%" PRId64 " '%s'", i,
             lm__show(kv->key, name, sizeof name));
    lm_gguf_type t = LM_GGUF_UINT8;
    LM_TRY(lm__rd_type(g, "value type", &t));
    g->depth = 0;
    return lm__parse_value(g, t, &kv->value);
}

static int lm__kv_cmp(const void *a, const void *b) {
    const lm_gguf_kv *x = *(const lm_gguf_kv *const *)a, *y = *(const lm_gguf_kv *const *)b;
    int c = lm__str_cmp(x->key, y->key);
    return c ? c : (x > y) - (x < y); /* equal keys: file order, so dups name the first */
}

static int lm__tensor_name_cmp(const void *a, const void *b) {
    const lm_gguf_tensor *x = *(const lm_gguf_tensor *const *)a;
    const lm_gguf_tensor *y = *(const lm_gguf_tensor *const *)b;
    int c = lm__str_cmp(x->name, y->name);
    return c ? c : (x > y) - (x < y);
}

static int lm__tensor_off_cmp(const void *a, const void *b) {
    const lm_gguf_tensor *x = *(const lm_gguf_tensor *const *)a;
    const lm_gguf_tensor *y = *(const lm_gguf_tensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return (x > y) - (x < y);
}

static lm_status lm__parse_kvs(lm__gp *g, lm_gguf *f) {
    for (int64_t i = 0; i < f->n_kv; i++) LM_TRY(lm__parse_kv(g, i, &f->kvs[i]));
    for (int64_t i = 0; i < f->n_kv; i++) f->kv_sorted[i] = &f->kvs[i];
    if (f->n_kv > 1) qsort(f->kv_sorted, (size_t)f->n_kv, sizeof *f->kv_sorted, lm__kv_cmp);
    for (int64_t i = 1; i < f->n_kv; i++) {
        const lm_gguf_kv *a = f->kv_sorted[i - 1], *b = f->kv_sorted[i];
        if (lm__str_cmp(a->key, b->key) == 0) {
            char name[300];
            return lm__error(LM_ERR_FORMAT, "%s: key #%td '%s': duplicate key (first at key #%td)",
                             g->path, b - f->kvs, lm__show(b->key, name, sizeof name), a - f->kvs);
        }
    }
    return LM_OK;
}

static lm_status lm__read_alignment(lm__gp *g, lm_gguf *f) {
    f->alignment = LM_GGUF_DEFAULT_ALIGNMENT;
    const lm_gguf_value *v = lm_gguf_get(f, "general.alignment");
    if (!v) return LM_OK;
    if (v->type != LM_GGUF_UINT32) {
        return lm__error(LM_ERR_FORMAT, "%s: key 'general.alignment' has type %s, expected uint32",
                         g->path, lm_gguf_type_name(v->type));
    }
    uint64_t a = v->v.u64;
    if (a == 0 || (a & (a - 1)) != 0) {
        return lm__error(LM_ERR_FORMAT,
                         "%s: key 'general.alignment' = %" PRIu64 " must be a nonzero power of two",
                         g->path, a);
    }
    f->alignment = (uint32_t)a;
    return LM_OK;
}

/* ne[] and type of one tensor info: shape sane, type known, byte size representable. */
static lm_status lm__parse_shape(lm__gp *g, lm_gguf_tensor *t) {
    size_t at = g->pos;
    LM_TRY(lm__rd_u32(g, "n_dims", &t->n_dims));
    if (t->n_dims < 1 || t->n_dims > LM_GGUF_MAX_DIMS) {
        return lm__fail(g, LM_ERR_FORMAT, at, "n_dims %" PRIu32 " is not in 1..%d", t->n_dims,
                        LM_GGUF_MAX_DIMS);
    }
    int64_t n_el = 1;
    for (uint32_t d = 0; d < LM_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        at = g->pos;
        uint64_t u = 0;
        LM_TRY(lm__rd_u64(g, "ne", &u));
        t->ne[d] = (int64_t)u;
        /* ggml allows ne == 0, but an empty tensor has no data for anyone to use and would
         * need special cases downstream (first/last byte, zero-size views): reject it. */
        if (t->ne[d] <= 0) {
            return lm__fail(g, LM_ERR_FORMAT, at, "ne[%" PRIu32 "] = %" PRId64 " is not positive",
                            d, t->ne[d]);
        }
        if (__builtin_mul_overflow(n_el, t->ne[d], &n_el)) {
            return lm__fail(g, LM_ERR_FORMAT, at,
                            "element count overflows int64 at ne[%" PRIu32 "] = %" PRId64, d,
                            t->ne[d]);
        }
    }
    at = g->pos;
    uint32_t type = 0;
    LM_TRY(lm__rd_u32(g, "tensor type", &type));
    lm_type_traits tt = lm_type_get(type);
    if (!tt.name) return lm__fail(g, LM_ERR_FORMAT, at, "unknown tensor type %" PRIu32, type);
    t->type = (lm_type)type;
    if (t->ne[0] % tt.blck != 0) {
        return lm__fail(g, LM_ERR_FORMAT, at,
                        "ne[0] = %" PRId64 " is not a multiple of the block size %" PRId32
                        " of type %s",
                        t->ne[0], tt.blck, tt.name);
    }
    if (!lm_gguf_tensor_nbytes(t->type, t->n_dims, t->ne, &t->n_bytes)) {
        return lm__fail(g, LM_ERR_FORMAT, at, "size in bytes of type %s overflows", tt.name);
    }
    return LM_OK;
}

static lm_status lm__parse_tensor(lm__gp *g, const lm_gguf *f, int64_t i, lm_gguf_tensor *t) {
    char name[300];
    snprintf(g->ctx, sizeof g->ctx, "tensor #%" PRId64, i);
    g->depth = 0;
    size_t at = g->pos;
    LM_TRY(lm__rd_str(g, "tensor name", &t->name));
    if (t->name.len == 0) return lm__fail(g, LM_ERR_FORMAT, at, "empty tensor name");
    snprintf(g->ctx, sizeof g->ctx, "tensor #%" PRId64 " '%s'", i,
             lm__show(t->name, name, sizeof name));
    LM_TRY(lm__parse_shape(g, t));
    at = g->pos;
    LM_TRY(lm__rd_u64(g, "data offset", &t->offset));
    if (t->offset % f->alignment != 0) {
        return lm__fail(g, LM_ERR_FORMAT, at,
                        "data offset %" PRIu64 " is not a multiple of the alignment %" PRIu32,
                        t->offset, f->alignment);
    }
    return LM_OK;
}

/* Every tensor's bytes inside the file, and no two tensors sharing bytes. */
static lm_status lm__check_data(lm__gp *g, lm_gguf *f) {
    uint64_t avail = f->size - f->data_offset;
    char name[300], other[300];
    for (int64_t i = 0; i < f->n_tensors; i++) {
        lm_gguf_tensor *t = &f->tensors[i];
        if (t->offset > avail || t->n_bytes > avail - t->offset) {
            return lm__error(LM_ERR_FORMAT,
                             "%s: tensor '%s': data [offset %" PRIu64 ", %" PRIu64
                             " bytes) extends past end of file (%zu bytes, data section at "
                             "%" PRIu64 ")",
                             g->path, lm__show(t->name, name, sizeof name), t->offset, t->n_bytes,
                             f->size, f->data_offset);
        }
        t->data = f->base + f->data_offset + t->offset;
    }
    if (f->n_tensors < 2) return LM_OK;
    const lm_gguf_tensor **by_off = LM_MALLOC((size_t)f->n_tensors * sizeof *by_off);
    if (!by_off) return lm__error(LM_ERR_NOMEM, "%s: out of memory checking tensors", g->path);
    for (int64_t i = 0; i < f->n_tensors; i++) by_off[i] = &f->tensors[i];
    qsort(by_off, (size_t)f->n_tensors, sizeof *by_off, lm__tensor_off_cmp);
    lm_status s = LM_OK;
    for (int64_t i = 1; i < f->n_tensors && s == LM_OK; i++) {
        const lm_gguf_tensor *a = by_off[i - 1], *b = by_off[i];
        if (a->offset + a->n_bytes > b->offset) {
            s = lm__error(LM_ERR_FORMAT,
                          "%s: tensor '%s': data [offset %" PRIu64 ", %" PRIu64
                          " bytes) overlaps tensor '%s' [offset %" PRIu64 ", %" PRIu64 " bytes)",
                          g->path, lm__show(b->name, name, sizeof name), b->offset, b->n_bytes,
                          lm__show(a->name, other, sizeof other), a->offset, a->n_bytes);
        }
    }
    LM_FREE(by_off);
    return s;
}

static lm_status lm__parse_tensors(lm__gp *g, lm_gguf *f) {
    for (int64_t i = 0; i < f->n_tensors; i++) LM_TRY(lm__parse_tensor(g, f, i, &f->tensors[i]));
    for (int64_t i = 0; i < f->n_tensors; i++) f->tensor_sorted[i] = &f->tensors[i];
    if (f->n_tensors > 1) {
        qsort(f->tensor_sorted, (size_t)f->n_tensors, sizeof *f->tensor_sorted,
              lm__tensor_name_cmp);
    }
    for (int64_t i = 1; i < f->n_tensors; i++) {
        const lm_gguf_tensor *a = f->tensor_sorted[i - 1], *b = f->tensor_sorted[i];
        if (lm__str_cmp(a->name, b->name) == 0) {
            char name[300];
            return lm__error(
                LM_ERR_FORMAT, "%s: tensor #%td '%s': duplicate tensor name (first at tensor #%td)",
                g->path, b - f->tensors, lm__show(b->name, name, sizeof name), a - f->tensors);
        }
    }
    /* The data section starts at the next multiple of the alignment. */
    uint64_t start = ((uint64_t)g->pos + f->alignment - 1) / f->alignment * f->alignment;
    if (start > f->size) {
        if (f->n_tensors > 0) {
            return lm__error(LM_ERR_FORMAT,
                             "%s: data section starts at offset %" PRIu64
                             " (tensor infos end at %zu, alignment %" PRIu32
                             "), past end of file (%zu bytes)",
                             g->path, start, g->pos, f->alignment, f->size);
        }
        start = f->size; /* no tensors: trailing padding is optional */
    }
    f->data_offset = start;
    return lm__check_data(g, f);
}

static lm_status lm__alloc_tables(lm_gguf *f, uint64_t n_tensors, uint64_t n_kv) {
    f->n_kv = (int64_t)n_kv;
    f->n_tensors = (int64_t)n_tensors;
    /* Counts are already bounded by the file size, so these products cannot overflow. */
    if (n_kv) {
        f->kvs = LM_CALLOC((size_t)n_kv, sizeof *f->kvs);
        f->kv_sorted = LM_CALLOC((size_t)n_kv, sizeof *f->kv_sorted);
        if (!f->kvs || !f->kv_sorted) goto nomem;
    }
    if (n_tensors) {
        f->tensors = LM_CALLOC((size_t)n_tensors, sizeof *f->tensors);
        f->tensor_sorted = LM_CALLOC((size_t)n_tensors, sizeof *f->tensor_sorted);
        if (!f->tensors || !f->tensor_sorted) goto nomem;
    }
    return LM_OK;
nomem:
    return lm__error(LM_ERR_NOMEM, "%s: out of memory for %" PRIu64 " keys and %" PRIu64 " tensors",
                     f->path, n_kv, n_tensors);
}

static lm_status lm__parse(lm_gguf *f, const lm_gguf_limits *limits) {
    lm__gp g;
    memset(&g, 0, sizeof g);
    g.p = f->base;
    g.size = f->size;
    g.path = f->path;
    if (limits) g.lim = *limits;
    if (!g.lim.max_kv) g.lim.max_kv = 1u << 20;
    if (!g.lim.max_tensors) g.lim.max_tensors = 1u << 20;
    if (!g.lim.max_string) g.lim.max_string = 1u << 28;
    if (!g.lim.max_depth) g.lim.max_depth = 8;
    if (g.lim.max_depth > LM__GGUF_DEPTH_CAP) g.lim.max_depth = LM__GGUF_DEPTH_CAP;
    uint64_t n_tensors = 0, n_kv = 0;
    LM_TRY(lm__parse_header(&g, f, &n_tensors, &n_kv));
    LM_TRY(lm__alloc_tables(f, n_tensors, n_kv));
    LM_TRY(lm__parse_kvs(&g, f));
    LM_TRY(lm__read_alignment(&g, f));
    return lm__parse_tensors(&g, f);
}

static lm_status lm__open_common(const void *data, size_t size, void *map, const char *path,
                                 const lm_gguf_limits *limits, lm_gguf **out) {
    lm_gguf *f = LM_CALLOC(1, sizeof *f);
    char *p = LM_MALLOC(strlen(path) + 1);
    if (!f || !p) {
        LM_FREE(f);
        LM_FREE(p);
        if (map) munmap(map, size);
        return lm__error(LM_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(p, path, strlen(path) + 1);
    f->path = p;
    f->base = data;
    f->size = size;
    f->map = map;
    lm_status s = lm__parse(f, limits);
    if (s != LM_OK) {
        lm_gguf_close(f);
        return s;
    }
    *out = f;
    return LM_OK;
}

lm_status lm_gguf_open_memory(const void *data, size_t size, const lm_gguf_limits *limits,
                              lm_gguf **out) {
    if (!out || (!data && size))
        return lm__error(LM_ERR_INVALID_ARG, "lm_gguf_open_memory: NULL argument");
    *out = NULL;
    return lm__open_common(data ? data : "", size, NULL, "<memory>", limits, out);
}

lm_status lm_gguf_open(const char *path, lm_gguf **out) {
    if (!path || !out) return lm__error(LM_ERR_INVALID_ARG, "lm_gguf_open: NULL argument");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lm__error(LM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return lm__error(LM_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return lm__error(LM_ERR_IO, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if (size == 0) {
        /* mmap of 0 bytes fails with EINVAL: say what is actually wrong. */
        close(fd);
        return lm__error(LM_ERR_FORMAT, "%s: empty file (0 bytes), not a GGUF file", path);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return lm__error(LM_ERR_IO, "%s: cannot mmap: %s", path, strerror(e));
    return lm__open_common(map, size, map, path, NULL, out);
}

void lm_gguf_close(lm_gguf *g) {
    if (!g) return;
    for (int64_t i = 0; g->kvs && i < g->n_kv; i++) lm__value_free(&g->kvs[i].value);
    LM_FREE(g->kvs);
    LM_FREE(g->kv_sorted);
    LM_FREE(g->tensors);
    LM_FREE(g->tensor_sorted);
    if (g->map) munmap(g->map, g->size);
    LM_FREE(g->path);
    LM_FREE(g);
}

/* ---- accessors ------------------------------------------------------------------------- */

uint32_t lm_gguf_version(const lm_gguf *g) {
    return g->version;
}
uint32_t lm_gguf_alignment(const lm_gguf *g) {
    return g->alignment;
}
size_t lm_gguf_file_size(const lm_gguf *g) {
    return g->size;
}
uint64_t lm_gguf_data_offset(const lm_gguf *g) {
    return g->data_offset;
}
const char *lm_gguf_path(const lm_gguf *g) {
    return g->path;
}
int64_t lm_gguf_n_kv(const lm_gguf *g) {
    return g->n_kv;
}
int64_t lm_gguf_n_tensors(const lm_gguf *g) {
    return g->n_tensors;
}

const lm_gguf_kv *lm_gguf_kv_at(const lm_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? &g->kvs[i] : NULL;
}

const lm_gguf_tensor *lm_gguf_tensor_at(const lm_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

/* Binary search of a table sorted by the lm_gguf_str at field offset `off`. */
static int64_t lm__bsearch(const void *const *sorted, int64_t n, size_t off, const char *key) {
    lm_gguf_str k = {strlen(key), key};
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        lm_gguf_str s;
        memcpy(&s, (const char *)sorted[mid] + off, sizeof s);
        int c = lm__str_cmp(s, k);
        if (c == 0) return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

int64_t lm_gguf_find_key(const lm_gguf *g, const char *key) {
    int64_t j =
        lm__bsearch((const void *const *)g->kv_sorted, g->n_kv, offsetof(lm_gguf_kv, key), key);
    return j < 0 ? -1 : g->kv_sorted[j] - g->kvs;
}

const lm_gguf_value *lm_gguf_get(const lm_gguf *g, const char *key) {
    int64_t i = lm_gguf_find_key(g, key);
    return i < 0 ? NULL : &g->kvs[i].value;
}

const lm_gguf_tensor *lm_gguf_find_tensor(const lm_gguf *g, const char *name) {
    int64_t j = lm__bsearch((const void *const *)g->tensor_sorted, g->n_tensors,
                            offsetof(lm_gguf_tensor, name), name);
    return j < 0 ? NULL : g->tensor_sorted[j];
}

/* ---- typed getters --------------------------------------------------------------------- */

static lm_status lm__get(const lm_gguf *g, const char *key, const lm_gguf_value **v) {
    *v = lm_gguf_get(g, key);
    if (!*v) return lm__error(LM_ERR_MODEL, "%s: key '%s' not found", g->path, key);
    return LM_OK;
}

static lm_status lm__wrong_type(const lm_gguf *g, const char *key, const lm_gguf_value *v,
                                const char *want) {
    return lm__error(LM_ERR_FORMAT, "%s: key '%s' has type %s, expected %s", g->path, key,
                     lm_gguf_type_name(v->type), want);
}

/* An integer value as a signed 128-bit-free pair: fits checks without overflow. */
static bool lm__int_in(const lm_gguf_value *v, int64_t lo, uint64_t hi) {
    if (lm__is_uint(v->type)) return v->v.u64 <= hi;
    return v->v.i64 >= lo && (v->v.i64 < 0 || (uint64_t)v->v.i64 <= hi);
}

static lm_status lm__out_of_range(const lm_gguf *g, const char *key, const lm_gguf_value *v,
                                  const char *want) {
    char txt[64];
    lm_gguf_value_to_text(v, 0, txt, sizeof txt);
    return lm__error(LM_ERR_FORMAT, "%s: key '%s' value %s does not fit %s", g->path, key, txt,
                     want);
}

lm_status lm_gguf_get_u32(const lm_gguf *g, const char *key, uint32_t *out) {
    const lm_gguf_value *v;
    LM_TRY(lm__get(g, key, &v));
    if (!lm__is_int(v->type)) return lm__wrong_type(g, key, v, "an integer (uint32)");
    if (!lm__int_in(v, 0, UINT32_MAX)) return lm__out_of_range(g, key, v, "uint32");
    *out = lm__is_uint(v->type) ? (uint32_t)v->v.u64 : (uint32_t)v->v.i64;
    return LM_OK;
}

lm_status lm_gguf_get_i64(const lm_gguf *g, const char *key, int64_t *out) {
    const lm_gguf_value *v;
    LM_TRY(lm__get(g, key, &v));
    if (!lm__is_int(v->type)) return lm__wrong_type(g, key, v, "an integer (int64)");
    if (!lm__int_in(v, INT64_MIN, INT64_MAX)) return lm__out_of_range(g, key, v, "int64");
    *out = lm__is_uint(v->type) ? (int64_t)v->v.u64 : v->v.i64;
    return LM_OK;
}

lm_status lm_gguf_get_f32(const lm_gguf *g, const char *key, float *out) {
    const lm_gguf_value *v;
    LM_TRY(lm__get(g, key, &v));
    if (lm__is_float(v->type))
        *out = (float)v->v.f64;
    else if (lm__is_uint(v->type))
        *out = (float)v->v.u64;
    else if (lm__is_sint(v->type))
        *out = (float)v->v.i64;
    else
        return lm__wrong_type(g, key, v, "a number (float32)");
    return LM_OK;
}

lm_status lm_gguf_get_bool(const lm_gguf *g, const char *key, bool *out) {
    const lm_gguf_value *v;
    LM_TRY(lm__get(g, key, &v));
    if (v->type != LM_GGUF_BOOL) return lm__wrong_type(g, key, v, "bool");
    *out = v->v.b;
    return LM_OK;
}

lm_status lm_gguf_get_str(const lm_gguf *g, const char *key, lm_gguf_str *out) {
    const lm_gguf_value *v;
    LM_TRY(lm__get(g, key, &v));
    if (v->type != LM_GGUF_STRING) return lm__wrong_type(g, key, v, "string");
    *out = v->v.str;
    return LM_OK;
}

double lm_gguf_arr_f64(const lm_gguf_value *arr, uint64_t i) {
    lm_gguf_value e;
    if (arr->type != LM_GGUF_ARRAY || i >= arr->v.arr.n || !lm_gguf_type_size(arr->v.arr.type))
        return 0;
    size_t es = lm_gguf_type_size(arr->v.arr.type);
    lm__decode_scalar(arr->v.arr.type, (const uint8_t *)arr->v.arr.raw + i * es, &e);
    if (lm__is_float(e.type)) return e.v.f64;
    if (lm__is_uint(e.type)) return (double)e.v.u64;
    if (lm__is_sint(e.type)) return (double)e.v.i64;
    return e.v.b;
}

int64_t lm_gguf_arr_i64(const lm_gguf_value *arr, uint64_t i) {
    lm_gguf_value e;
    if (arr->type != LM_GGUF_ARRAY || i >= arr->v.arr.n || !lm_gguf_type_size(arr->v.arr.type))
        return 0;
    size_t es = lm_gguf_type_size(arr->v.arr.type);
    lm__decode_scalar(arr->v.arr.type, (const uint8_t *)arr->v.arr.raw + i * es, &e);
    if (lm__is_float(e.type)) {
        /* out-of-range float -> int is undefined: saturate, NaN reads 0 */
        if (e.v.f64 != e.v.f64) return 0;
        if (e.v.f64 >= 9223372036854775807.0) return INT64_MAX;
        if (e.v.f64 <= -9223372036854775808.0) return INT64_MIN;
        return (int64_t)e.v.f64;
    }
    if (lm__is_uint(e.type)) return (int64_t)e.v.u64;
    if (lm__is_sint(e.type)) return e.v.i64;
    return e.v.b;
}

/* Range of an integer element type, for checking an array read as that type. */
static void lm__int_range(lm_gguf_type t, int64_t *lo, uint64_t *hi) {
    static const int64_t los[] = {0, INT8_MIN, 0, INT16_MIN, 0, INT32_MIN};
    static const uint64_t his[] = {UINT8_MAX, INT8_MAX,   UINT16_MAX,
                                   INT16_MAX, UINT32_MAX, INT32_MAX};
    if (t <= LM_GGUF_INT32) {
        *lo = los[t];
        *hi = his[t];
    } else {
        *lo = t == LM_GGUF_INT64 ? INT64_MIN : 0;
        *hi = t == LM_GGUF_INT64 ? INT64_MAX : UINT64_MAX;
    }
}

static lm_status lm__check_int_elems(const lm_gguf *g, const char *key, const lm_gguf_value *v,
                                     lm_gguf_type want) {
    int64_t lo;
    uint64_t hi;
    lm__int_range(want, &lo, &hi);
    size_t es = lm_gguf_type_size(v->v.arr.type);
    for (uint64_t i = 0; i < v->v.arr.n; i++) {
        lm_gguf_value e;
        lm__decode_scalar(v->v.arr.type, (const uint8_t *)v->v.arr.raw + i * es, &e);
        if (!lm__int_in(&e, lo, hi)) {
            char txt[64];
            lm_gguf_value_to_text(&e, 0, txt, sizeof txt);
            return lm__error(LM_ERR_FORMAT,
                             "%s: key '%s' element %" PRIu64 " value %s does not fit %s", g->path,
                             key, i, txt, lm__type_names[want]);
        }
    }
    return LM_OK;
}

lm_status lm_gguf_get_arr(const lm_gguf *g, const char *key, lm_gguf_type elem_type, uint64_t *n,
                          const lm_gguf_value **arr) {
    const lm_gguf_value *v;
    LM_TRY(lm__get(g, key, &v));
    char want[32];
    snprintf(want, sizeof want, "array of %s",
             elem_type == LM_GGUF_TYPE_COUNT ? "any" : lm_gguf_type_name(elem_type));
    if (v->type != LM_GGUF_ARRAY) return lm__wrong_type(g, key, v, want);
    lm_gguf_type have = v->v.arr.type;
    bool ok = elem_type == LM_GGUF_TYPE_COUNT || have == elem_type;
    if (!ok && lm__is_int(elem_type) && lm__is_int(have)) {
        LM_TRY(lm__check_int_elems(g, key, v, elem_type));
        ok = true;
    }
    if (!ok && lm__is_float(elem_type) && (lm__is_int(have) || lm__is_float(have))) ok = true;
    if (!ok) {
        return lm__error(LM_ERR_FORMAT, "%s: key '%s' is an array of %s, expected %s", g->path, key,
                         lm_gguf_type_name(have), want);
    }
    *n = v->v.arr.n;
    *arr = v;
    return LM_OK;
}

/* ---- text rendering -------------------------------------------------------------------- */

typedef struct lm__tb {
    char *buf;
    size_t size;
    size_t len; /* would-be length, may exceed size */
} lm__tb;

static void lm__tb_put(lm__tb *t, const char *s, size_t n) {
    if (t->len < t->size) {
        size_t room = t->size - 1 - t->len;
        memcpy(t->buf + t->len, s, n < room ? n : room);
    }
    t->len += n;
}

static void lm__tb_puts(lm__tb *t, const char *s) {
    lm__tb_put(t, s, strlen(s));
}

static void lm__tb_str(lm__tb *t, lm_gguf_str s) {
    lm__tb_put(t, "\"", 1);
    for (uint64_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.data[i];
        char esc[8];
        if (c == '"' || c == '\\')
            snprintf(esc, sizeof esc, "\\%c", c);
        else if (c == '\n')
            snprintf(esc, sizeof esc, "\\n");
        else if (c == '\t')
            snprintf(esc, sizeof esc, "\\t");
        else if (c == '\r')
            snprintf(esc, sizeof esc, "\\r");
        else if (c < 0x20 || c == 0x7f)
            snprintf(esc, sizeof esc, "\\x%02x", c);
        else {
            esc[0] = (char)c;
            esc[1] = '\0';
        }
        lm__tb_puts(t, esc);
    }
    lm__tb_put(t, "\"", 1);
}

/* Shortest %g rendering that reads back as the same value. */
static void lm__tb_float(lm__tb *t, double x, bool single) {
    char s[40];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(s, sizeof s, "%.*g", prec, x);
        double back = strtod(s, NULL);
        if (single ? (float)back == (float)x : back == x) break;
    }
    lm__tb_puts(t, s);
}

static void lm__tb_value(lm__tb *t, const lm_gguf_value *v, size_t max_items) {
    char s[40];
    if (lm__is_uint(v->type)) {
        snprintf(s, sizeof s, "%" PRIu64, v->v.u64);
        lm__tb_puts(t, s);
    } else if (lm__is_sint(v->type)) {
        snprintf(s, sizeof s, "%" PRId64, v->v.i64);
        lm__tb_puts(t, s);
    } else if (lm__is_float(v->type)) {
        lm__tb_float(t, v->v.f64, v->type == LM_GGUF_FLOAT32);
    } else if (v->type == LM_GGUF_BOOL) {
        lm__tb_puts(t, v->v.b ? "true" : "false");
    } else if (v->type == LM_GGUF_STRING) {
        lm__tb_str(t, v->v.str);
    } else if (v->type == LM_GGUF_ARRAY) {
        uint64_t n = v->v.arr.n, shown = n < max_items ? n : max_items;
        size_t es = lm_gguf_type_size(v->v.arr.type);
        lm__tb_put(t, "[", 1);
        for (uint64_t i = 0; i < shown; i++) {
            if (i) lm__tb_put(t, ", ", 2);
            lm_gguf_value e;
            if (es) lm__decode_scalar(v->v.arr.type, (const uint8_t *)v->v.arr.raw + i * es, &e);
            lm__tb_value(t, es ? &e : &v->v.arr.items[i], max_items);
        }
        if (shown < n) {
            snprintf(s, sizeof s, "%s... (%" PRIu64 " items)", shown ? ", " : "", n);
            lm__tb_puts(t, s);
        }
        lm__tb_put(t, "]", 1);
    } else {
        lm__tb_puts(t, "<?>");
    }
}

int32_t lm_gguf_value_to_text(const lm_gguf_value *v, size_t max_items, char *buf, size_t size) {
    lm__tb t = {buf, size, 0};
    lm__tb_value(&t, v, max_items);
    if (size) buf[t.len < size ? t.len : size - 1] = '\0';
    size_t need = t.len + 1;
    if (need > INT32_MAX) need = INT32_MAX;
    return t.len < size ? (int32_t)t.len : -(int32_t)need;
}
