/* GGUF writer -> reader round trips with random contents (seed printed), getters and their
 * conversions, text rendering, writer argument checks, and the real default model. */
#include "gguf.h"
#include "helpers/test_util.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- random values --------------------------------------------------------------------- */

static uint64_t rnd(lm_test_rng *r, uint64_t n) {
    return n ? lm_test_rng_u64(r) % n : 0;
}

/* Random bytes of every value, control characters and NULs included. */
static char *rnd_bytes(lm_test_rng *r, uint64_t n) {
    char *s = malloc(n + 1);
    for (uint64_t i = 0; i < n; i++) s[i] = (char)rnd(r, 256);
    return s;
}

static void gen_value(lm_test_rng *r, lm_gguf_type t, int depth, lm_gguf_value *v);

static void gen_array(lm_test_rng *r, lm_gguf_type et, int depth, lm_gguf_value *v) {
    uint64_t n = rnd(r, 12);
    v->v.arr.type = et;
    v->v.arr.n = n;
    size_t es = lm_gguf_type_size(et);
    if (es) {
        uint8_t *raw = malloc(n * es + 1);
        for (uint64_t i = 0; i < n * es; i++) raw[i] = (uint8_t)rnd(r, 256);
        if (et == LM_GGUF_BOOL)
            for (uint64_t i = 0; i < n; i++) raw[i] &= 1;
        v->v.arr.raw = raw;
        return;
    }
    v->v.arr.items = calloc(n + 1, sizeof(lm_gguf_value));
    for (uint64_t i = 0; i < n; i++) gen_value(r, et, depth + 1, &v->v.arr.items[i]);
}

static void gen_value(lm_test_rng *r, lm_gguf_type t, int depth, lm_gguf_value *v) {
    memset(v, 0, sizeof *v);
    v->type = t;
    uint64_t x = lm_test_rng_u64(r);
    switch (t) {
    case LM_GGUF_UINT8:
        v->v.u64 = (uint8_t)x;
        break;
    case LM_GGUF_UINT16:
        v->v.u64 = (uint16_t)x;
        break;
    case LM_GGUF_UINT32:
        v->v.u64 = (uint32_t)x;
        break;
    case LM_GGUF_UINT64:
        v->v.u64 = x;
        break;
    case LM_GGUF_INT8:
        v->v.i64 = (int8_t)x;
        break;
    case LM_GGUF_INT16:
        v->v.i64 = (int16_t)x;
        break;
    case LM_GGUF_INT32:
        v->v.i64 = (int32_t)x;
        break;
    case LM_GGUF_INT64:
        v->v.i64 = (int64_t)x;
        break;
    case LM_GGUF_FLOAT32:
        v->v.f64 = (double)(lm_test_rng_normal(r) * 1e3f);
        break;
    case LM_GGUF_FLOAT64:
        v->v.f64 = lm_test_rng_normal(r) * 1e-7;
        break;
    case LM_GGUF_BOOL:
        v->v.b = x & 1;
        break;
    case LM_GGUF_STRING:
        v->v.str.len = rnd(r, 40);
        v->v.str.data = rnd_bytes(r, v->v.str.len);
        break;
    case LM_GGUF_ARRAY: {
        /* below depth 4 any element type; deeper, scalars and strings only */
        lm_gguf_type et = (lm_gguf_type)rnd(r, LM_GGUF_TYPE_COUNT);
        if (et == LM_GGUF_ARRAY && depth >= 4) et = LM_GGUF_STRING;
        gen_array(r, et, depth, v);
        break;
    }
    default:
        break;
    }
}

static void free_value(lm_gguf_value *v) {
    if (v->type == LM_GGUF_STRING) free((void *)v->v.str.data);
    if (v->type != LM_GGUF_ARRAY) return;
    free((void *)v->v.arr.raw);
    for (uint64_t i = 0; v->v.arr.items && i < v->v.arr.n; i++) free_value(&v->v.arr.items[i]);
    free(v->v.arr.items);
}

/* Equal as written: float32 compared after the writer's cast, floats bitwise. */
static bool value_eq(const lm_gguf_value *a, const lm_gguf_value *b) {
    if (a->type != b->type) return false;
    switch (a->type) {
    case LM_GGUF_FLOAT32: {
        float x = (float)a->v.f64, y = (float)b->v.f64;
        return memcmp(&x, &y, 4) == 0;
    }
    case LM_GGUF_FLOAT64:
        return memcmp(&a->v.f64, &b->v.f64, 8) == 0;
    case LM_GGUF_BOOL:
        return a->v.b == b->v.b;
    case LM_GGUF_STRING:
        return a->v.str.len == b->v.str.len &&
               (a->v.str.len == 0 || memcmp(a->v.str.data, b->v.str.data, a->v.str.len) == 0);
    case LM_GGUF_ARRAY: {
        if (a->v.arr.type != b->v.arr.type || a->v.arr.n != b->v.arr.n) return false;
        size_t es = lm_gguf_type_size(a->v.arr.type);
        if (es) return a->v.arr.n == 0 || memcmp(a->v.arr.raw, b->v.arr.raw, a->v.arr.n * es) == 0;
        for (uint64_t i = 0; i < a->v.arr.n; i++)
            if (!value_eq(&a->v.arr.items[i], &b->v.arr.items[i])) return false;
        return true;
    }
    default:
        if (a->type == LM_GGUF_UINT8 || a->type == LM_GGUF_UINT16 || a->type == LM_GGUF_UINT32 ||
            a->type == LM_GGUF_UINT64)
            return a->v.u64 == b->v.u64;
        return a->v.i64 == b->v.i64;
    }
}

/* ---- random files ---------------------------------------------------------------------- */

#define N_KV_PER_TYPE 4

typedef struct rt_tensor {
    char name[32];
    lm_type type;
    uint32_t n_dims;
    int64_t ne[4];
    uint8_t *data;
    uint64_t n_bytes;
} rt_tensor;

typedef struct rt_file {
    lm_gguf_value values[LM_GGUF_TYPE_COUNT * N_KV_PER_TYPE + 4];
    char keys[LM_GGUF_TYPE_COUNT * N_KV_PER_TYPE + 4][32];
    int n_kv;
    rt_tensor tensors[12];
    int n_tensors;
} rt_file;

static const lm_type rt_types[] = {LM_TYPE_F32,  LM_TYPE_F16,  LM_TYPE_BF16, LM_TYPE_Q4_0,
                                   LM_TYPE_Q4_1, LM_TYPE_Q8_0, LM_TYPE_Q4_K, LM_TYPE_Q6_K,
                                   LM_TYPE_I8,   LM_TYPE_I32,  LM_TYPE_F64,  LM_TYPE_MXFP4};

static void rt_generate(lm_test_rng *r, rt_file *f) {
    memset(f, 0, sizeof *f);
    for (int t = 0; t < LM_GGUF_TYPE_COUNT; t++) {
        for (int k = 0; k < N_KV_PER_TYPE; k++) {
            snprintf(f->keys[f->n_kv], sizeof f->keys[0], "t%d.%s.%d", t,
                     lm_gguf_type_name((lm_gguf_type)t), k);
            gen_value(r, (lm_gguf_type)t, 1, &f->values[f->n_kv++]);
        }
    }
    /* An array of arrays of strings, explicitly. */
    lm_gguf_value *v = &f->values[f->n_kv];
    snprintf(f->keys[f->n_kv++], sizeof f->keys[0], "nested.arr_arr_str");
    v->type = LM_GGUF_ARRAY;
    gen_array(r, LM_GGUF_ARRAY, 1, v);
    for (uint64_t i = 0; i < v->v.arr.n; i++) {
        free_value(&v->v.arr.items[i]);
        memset(&v->v.arr.items[i], 0, sizeof v->v.arr.items[i]);
        v->v.arr.items[i].type = LM_GGUF_ARRAY;
        gen_array(r, LM_GGUF_STRING, 2, &v->v.arr.items[i]);
    }
    f->n_tensors = (int)(sizeof rt_types / sizeof rt_types[0]);
    for (int i = 0; i < f->n_tensors; i++) {
        rt_tensor *t = &f->tensors[i];
        lm_type_traits tt = lm_type_get(rt_types[i]);
        snprintf(t->name, sizeof t->name, "blk.%d.%s.weight", i, tt.name);
        t->type = rt_types[i];
        t->n_dims = 1 + (uint32_t)rnd(r, 4);
        t->ne[0] = tt.blck * (int64_t)(1 + rnd(r, 3));
        for (uint32_t d = 1; d < 4; d++) t->ne[d] = d < t->n_dims ? 1 + (int64_t)rnd(r, 3) : 1;
        cr_assert(lm_gguf_tensor_nbytes(t->type, t->n_dims, t->ne, &t->n_bytes));
        t->data = (uint8_t *)rnd_bytes(r, t->n_bytes);
    }
}

static void rt_free(rt_file *f) {
    for (int i = 0; i < f->n_kv; i++) free_value(&f->values[i]);
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].data);
}

static lm_gguf_writer *rt_writer(const rt_file *f, uint32_t version, uint32_t alignment) {
    lm_gguf_writer *w = NULL;
    cr_assert_eq(lm_gguf_writer_create(version, &w), LM_OK);
    if (alignment) cr_assert_eq(lm_gguf_writer_set_alignment(w, alignment), LM_OK);
    for (int i = 0; i < f->n_kv; i++)
        cr_assert_eq(lm_gguf_writer_add_kv(w, f->keys[i], &f->values[i]), LM_OK, "%s: %s",
                     f->keys[i], lm_last_error());
    for (int i = 0; i < f->n_tensors; i++) {
        const rt_tensor *t = &f->tensors[i];
        cr_assert_eq(lm_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data),
                     LM_OK, "%s", lm_last_error());
    }
    return w;
}

static void rt_check(const rt_file *f, const lm_gguf *g, uint32_t version, uint32_t alignment) {
    cr_expect_eq(lm_gguf_version(g), version);
    cr_expect_eq(lm_gguf_alignment(g), alignment ? alignment : 32);
    cr_assert_eq(lm_gguf_n_kv(g), f->n_kv + (alignment ? 1 : 0));
    for (int i = 0; i < f->n_kv; i++) {
        const lm_gguf_value *v = lm_gguf_get(g, f->keys[i]);
        cr_assert_not_null(v, "key %s missing", f->keys[i]);
        char a[200], b[200];
        lm_gguf_value_to_text(&f->values[i], 5, a, sizeof a);
        lm_gguf_value_to_text(v, 5, b, sizeof b);
        cr_expect(value_eq(&f->values[i], v), "%s: wrote %s, read %s", f->keys[i], a, b);
    }
    cr_assert_eq(lm_gguf_n_tensors(g), f->n_tensors);
    const uint8_t *base =
        lm_gguf_tensor_at(g, 0)->data - lm_gguf_tensor_at(g, 0)->offset - lm_gguf_data_offset(g);
    for (int i = 0; i < f->n_tensors; i++) {
        const rt_tensor *t = &f->tensors[i];
        const lm_gguf_tensor *gt = lm_gguf_find_tensor(g, t->name);
        cr_assert_not_null(gt, "%s", t->name);
        cr_expect_eq(gt, lm_gguf_tensor_at(g, i));
        cr_expect(lm_gguf_str_eq(gt->name, t->name));
        cr_expect_eq(gt->type, t->type, "%s", t->name);
        cr_expect_eq(gt->n_dims, t->n_dims, "%s", t->name);
        for (int d = 0; d < 4; d++) cr_expect_eq(gt->ne[d], t->ne[d], "%s ne[%d]", t->name, d);
        cr_expect_eq(gt->n_bytes, t->n_bytes, "%s", t->name);
        size_t at = (size_t)((const uint8_t *)gt->data - base);
        cr_expect_eq(at % lm_gguf_alignment(g), 0, "%s at %zu", t->name, at);
        cr_expect_eq(at, lm_gguf_data_offset(g) + gt->offset);
        cr_expect_leq(at + gt->n_bytes, lm_gguf_file_size(g));
        cr_expect(memcmp(gt->data, t->data, t->n_bytes) == 0, "%s: data differs", t->name);
    }
    cr_expect_null(lm_gguf_find_tensor(g, "no.such.tensor"));
    cr_expect_null(lm_gguf_get(g, "no.such.key"));
}

static void round_trip(uint32_t version, uint32_t alignment) {
    lm_test_rng r = {lm_test_seed()};
    static rt_file f;
    rt_generate(&r, &f);
    lm_gguf_writer *w = rt_writer(&f, version, alignment);
    void *mem;
    size_t n;
    cr_assert_eq(lm_gguf_writer_write_memory(w, &mem, &n), LM_OK);
    lm_gguf *g = NULL;
    cr_assert_eq(lm_gguf_open_memory(mem, n, NULL, &g), LM_OK, "%s", lm_last_error());
    cr_expect_str_eq(lm_gguf_path(g), "<memory>");
    cr_expect_eq(lm_gguf_file_size(g), n);
    rt_check(&f, g, version, alignment);
    lm_gguf_close(g);

    /* The same through a file, byte-identical to the memory image. */
    char path[64];
    snprintf(path, sizeof path, "/tmp/lm_gguf_rt_%d.gguf", (int)getpid());
    cr_assert_eq(lm_gguf_writer_write_file(w, path), LM_OK, "%s", lm_last_error());
    cr_assert_eq(lm_gguf_open(path, &g), LM_OK, "%s", lm_last_error());
    cr_expect_str_eq(lm_gguf_path(g), path);
    cr_assert_eq(lm_gguf_file_size(g), n);
    const lm_gguf_tensor *t0 = lm_gguf_tensor_at(g, 0);
    cr_expect(memcmp((const uint8_t *)t0->data - t0->offset - lm_gguf_data_offset(g), mem, n) == 0);
    rt_check(&f, g, version, alignment);
    lm_gguf_close(g);
    unlink(path);
    free(mem);
    lm_gguf_writer_free(w);
    rt_free(&f);
}

Test(gguf, round_trip_v3_default_alignment) {
    round_trip(3, 0);
}
Test(gguf, round_trip_v2_default_alignment) {
    round_trip(2, 0);
}
Test(gguf, round_trip_alignments) {
    static const uint32_t al[] = {1, 2, 8, 32, 64, 256, 4096};
    for (size_t i = 0; i < sizeof al / sizeof al[0]; i++) round_trip(i % 2 ? 2 : 3, al[i]);
}

/* ---- deep nesting and fixed shapes ----------------------------------------------------- */

Test(gguf, nesting_up_to_the_limit) {
    static const char *const strs[2] = {"p", "q"};
    lm_gguf_value lv[8];
    memset(lv, 0, sizeof lv);
    lm_gguf_value leaf[2] = {{.type = LM_GGUF_STRING, .v.str = {1, strs[0]}},
                             {.type = LM_GGUF_STRING, .v.str = {1, strs[1]}}};
    for (int i = 0; i < 8; i++) {
        lv[i].type = LM_GGUF_ARRAY;
        lv[i].v.arr.type = i ? LM_GGUF_ARRAY : LM_GGUF_STRING;
        lv[i].v.arr.n = i ? 1 : 2;
        lv[i].v.arr.items = i ? &lv[i - 1] : leaf;
    }
    lm_gguf_writer *w;
    cr_assert_eq(lm_gguf_writer_create(3, &w), LM_OK);
    cr_assert_eq(lm_gguf_writer_add_kv(w, "deep8", &lv[7]), LM_OK);
    void *mem;
    size_t n;
    cr_assert_eq(lm_gguf_writer_write_memory(w, &mem, &n), LM_OK);
    lm_gguf *g = NULL;
    cr_assert_eq(lm_gguf_open_memory(mem, n, NULL, &g), LM_OK, "%s", lm_last_error());
    cr_expect(value_eq(lm_gguf_get(g, "deep8"), &lv[7]));
    char buf[128];
    cr_expect_gt(lm_gguf_value_to_text(lm_gguf_get(g, "deep8"), 4, buf, sizeof buf), 0);
    cr_expect_str_eq(buf, "[[[[[[[[\"p\", \"q\"]]]]]]]]");
    lm_gguf_close(g);
    /* a caller's stricter limit */
    lm_gguf_limits lim = {.max_depth = 7};
    cr_expect_eq(lm_gguf_open_memory(mem, n, &lim, &g), LM_ERR_LIMIT);
    free(mem);
    lm_gguf_writer_free(w);
}

Test(gguf, no_tensors_and_no_padding) {
    lm_gguf_writer *w;
    cr_assert_eq(lm_gguf_writer_create(3, &w), LM_OK);
    cr_assert_eq(lm_gguf_writer_add_str(w, "general.architecture", "llama"), LM_OK);
    void *mem;
    size_t n;
    cr_assert_eq(lm_gguf_writer_write_memory(w, &mem, &n), LM_OK);
    cr_expect_eq(n % 32, 0);
    lm_gguf *g = NULL;
    /* trailing padding is optional when there is no tensor data */
    size_t end = 24 + 8 + 20 + 4 + 8 + 5;
    for (size_t cut = end; cut <= n; cut++) {
        cr_expect_eq(lm_gguf_open_memory(mem, cut, NULL, &g), LM_OK, "cut %zu", cut);
        cr_expect_eq(lm_gguf_n_tensors(g), 0);
        lm_gguf_close(g);
        g = NULL;
    }
    cr_expect_eq(lm_gguf_open_memory(mem, end - 1, NULL, &g), LM_ERR_FORMAT);
    free(mem);
    lm_gguf_writer_free(w);
}

Test(gguf, many_keys_lookup) {
    lm_gguf_writer *w;
    cr_assert_eq(lm_gguf_writer_create(3, &w), LM_OK);
    char key[32];
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof key, "k.%d", (i * 7919) % 500);
        cr_assert_eq(lm_gguf_writer_add_u32(w, key, (uint32_t)i), LM_OK);
    }
    void *mem;
    size_t n;
    cr_assert_eq(lm_gguf_writer_write_memory(w, &mem, &n), LM_OK);
    lm_gguf *g = NULL;
    cr_assert_eq(lm_gguf_open_memory(mem, n, NULL, &g), LM_OK);
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof key, "k.%d", (i * 7919) % 500);
        cr_expect_eq(lm_gguf_find_key(g, key), i);
        uint32_t v;
        cr_expect_eq(lm_gguf_get_u32(g, key, &v), LM_OK);
        cr_expect_eq(v, (uint32_t)i);
    }
    cr_expect_eq(lm_gguf_find_key(g, "k."), -1);
    cr_expect_eq(lm_gguf_find_key(g, "k.5000"), -1);
    cr_expect_eq(lm_gguf_find_key(g, ""), -1);
    cr_expect_null(lm_gguf_kv_at(g, 500));
    cr_expect_null(lm_gguf_kv_at(g, -1));
    cr_expect_null(lm_gguf_tensor_at(g, 0));
    lm_gguf_close(g);
    free(mem);
    lm_gguf_writer_free(w);
}

/* ---- getters --------------------------------------------------------------------------- */

static lm_gguf *getter_file(void **mem) {
    static const int32_t i32s[4] = {1, -2, 3, 40000};
    static const int32_t pos[3] = {0, 255, 7};
    static const float f32s[2] = {0.5f, -1.25f};
    static const char *const strs[2] = {"<s>", "</s>"};
    lm_gguf_writer *w;
    cr_assert_eq(lm_gguf_writer_create(3, &w), LM_OK);
    lm_gguf_value v;
#define ADD(k, t, field, x)                                                                        \
    do {                                                                                           \
        memset(&v, 0, sizeof v);                                                                   \
        v.type = t;                                                                                \
        v.v.field = x;                                                                             \
        cr_assert_eq(lm_gguf_writer_add_kv(w, k, &v), LM_OK);                                      \
    } while (0)
    ADD("u8", LM_GGUF_UINT8, u64, 200);
    ADD("i8", LM_GGUF_INT8, i64, -5);
    ADD("i8pos", LM_GGUF_INT8, i64, 100);
    ADD("u16", LM_GGUF_UINT16, u64, 65535);
    ADD("i32", LM_GGUF_INT32, i64, -1);
    ADD("u64big", LM_GGUF_UINT64, u64, UINT64_MAX);
    ADD("u64small", LM_GGUF_UINT64, u64, 4096);
    ADD("i64", LM_GGUF_INT64, i64, INT64_MIN);
    ADD("f64", LM_GGUF_FLOAT64, f64, 1e-5);
#undef ADD
    cr_assert_eq(lm_gguf_writer_add_u32(w, "u32", 4000000000u), LM_OK);
    cr_assert_eq(lm_gguf_writer_add_f32(w, "f32", 10000.0f), LM_OK);
    cr_assert_eq(lm_gguf_writer_add_bool(w, "flag", true), LM_OK);
    cr_assert_eq(lm_gguf_writer_add_str(w, "name", "SmolLM2"), LM_OK);
    cr_assert_eq(lm_gguf_writer_add_i32_arr(w, "i32s", i32s, 4), LM_OK);
    cr_assert_eq(lm_gguf_writer_add_i32_arr(w, "pos", pos, 3), LM_OK);
    cr_assert_eq(lm_gguf_writer_add_f32_arr(w, "f32s", f32s, 2), LM_OK);
    cr_assert_eq(lm_gguf_writer_add_str_arr(w, "strs", strs, 2), LM_OK);
    size_t n;
    cr_assert_eq(lm_gguf_writer_write_memory(w, mem, &n), LM_OK);
    lm_gguf_writer_free(w);
    lm_gguf *g = NULL;
    cr_assert_eq(lm_gguf_open_memory(*mem, n, NULL, &g), LM_OK, "%s", lm_last_error());
    return g;
}

#define EXPECT_ERR(call, st, sub)                                                                  \
    do {                                                                                           \
        cr_expect_eq((call), st, "%s", #call);                                                     \
        cr_expect(strstr(lm_last_error(), sub) != NULL, "%s: '%s' lacks '%s'", #call,              \
                  lm_last_error(), sub);                                                           \
    } while (0)

Test(gguf, integer_getters) {
    void *mem;
    lm_gguf *g = getter_file(&mem);
    uint32_t u;
    int64_t i;
    cr_expect_eq(lm_gguf_get_u32(g, "u8", &u), LM_OK);
    cr_expect_eq(u, 200);
    cr_expect_eq(lm_gguf_get_u32(g, "u16", &u), LM_OK);
    cr_expect_eq(u, 65535);
    cr_expect_eq(lm_gguf_get_u32(g, "i8pos", &u), LM_OK);
    cr_expect_eq(u, 100);
    cr_expect_eq(lm_gguf_get_u32(g, "u32", &u), LM_OK);
    cr_expect_eq(u, 4000000000u);
    cr_expect_eq(lm_gguf_get_u32(g, "u64small", &u), LM_OK);
    cr_expect_eq(u, 4096);
    EXPECT_ERR(lm_gguf_get_u32(g, "i8", &u), LM_ERR_FORMAT,
               "key 'i8' value -5 does not fit uint32");
    EXPECT_ERR(lm_gguf_get_u32(g, "i32", &u), LM_ERR_FORMAT, "value -1 does not fit uint32");
    EXPECT_ERR(lm_gguf_get_u32(g, "u64big", &u), LM_ERR_FORMAT,
               "value 18446744073709551615 does not fit uint32");
    EXPECT_ERR(lm_gguf_get_u32(g, "f32", &u), LM_ERR_FORMAT, "key 'f32' has type float32");
    EXPECT_ERR(lm_gguf_get_u32(g, "name", &u), LM_ERR_FORMAT, "key 'name' has type string");
    EXPECT_ERR(lm_gguf_get_u32(g, "llama.block_count", &u), LM_ERR_MODEL,
               "key 'llama.block_count' not found");
    cr_expect_eq(lm_gguf_get_i64(g, "i64", &i), LM_OK);
    cr_expect_eq(i, INT64_MIN);
    cr_expect_eq(lm_gguf_get_i64(g, "i8", &i), LM_OK);
    cr_expect_eq(i, -5);
    cr_expect_eq(lm_gguf_get_i64(g, "u32", &i), LM_OK);
    cr_expect_eq(i, 4000000000);
    EXPECT_ERR(lm_gguf_get_i64(g, "u64big", &i), LM_ERR_FORMAT, "does not fit int64");
    EXPECT_ERR(lm_gguf_get_i64(g, "flag", &i), LM_ERR_FORMAT, "has type bool");
    EXPECT_ERR(lm_gguf_get_i64(g, "missing", &i), LM_ERR_MODEL, "'missing' not found");
    lm_gguf_close(g);
    free(mem);
}

Test(gguf, other_getters) {
    void *mem;
    lm_gguf *g = getter_file(&mem);
    float f;
    bool b;
    lm_gguf_str s;
    cr_expect_eq(lm_gguf_get_f32(g, "f32", &f), LM_OK);
    cr_expect_eq(f, 10000.0f);
    cr_expect_eq(lm_gguf_get_f32(g, "f64", &f), LM_OK);
    cr_expect_eq(f, 1e-5f);
    cr_expect_eq(lm_gguf_get_f32(g, "i8", &f), LM_OK);
    cr_expect_eq(f, -5.0f);
    cr_expect_eq(lm_gguf_get_f32(g, "u32", &f), LM_OK);
    cr_expect_eq(f, 4e9f);
    EXPECT_ERR(lm_gguf_get_f32(g, "name", &f), LM_ERR_FORMAT, "has type string");
    EXPECT_ERR(lm_gguf_get_f32(g, "nope", &f), LM_ERR_MODEL, "key 'nope' not found");
    cr_expect_eq(lm_gguf_get_bool(g, "flag", &b), LM_OK);
    cr_expect(b);
    EXPECT_ERR(lm_gguf_get_bool(g, "u8", &b), LM_ERR_FORMAT,
               "key 'u8' has type uint8, expected bool");
    cr_expect_eq(lm_gguf_get_str(g, "name", &s), LM_OK);
    cr_expect(lm_gguf_str_eq(s, "SmolLM2"));
    cr_expect_not(lm_gguf_str_eq(s, "SmolLM"));
    EXPECT_ERR(lm_gguf_get_str(g, "strs", &s), LM_ERR_FORMAT, "has type array, expected string");
    EXPECT_ERR(lm_gguf_get_bool(g, "absent.bool", &b), LM_ERR_MODEL, "absent.bool");
    cr_expect_str_eq(lm_gguf_type_name(LM_GGUF_FLOAT64), "float64");
    cr_expect_str_eq(lm_gguf_type_name((lm_gguf_type)99), "unknown");
    lm_gguf_close(g);
    free(mem);
}

Test(gguf, array_getter) {
    void *mem;
    lm_gguf *g = getter_file(&mem);
    uint64_t n;
    const lm_gguf_value *a;
    cr_expect_eq(lm_gguf_get_arr(g, "i32s", LM_GGUF_INT32, &n, &a), LM_OK);
    cr_expect_eq(n, 4);
    cr_expect_eq(lm_gguf_arr_i64(a, 1), -2);
    cr_expect_eq(lm_gguf_arr_f64(a, 3), 40000.0);
    cr_expect_eq(lm_gguf_arr_i64(a, 4), 0, "out of range index reads 0");
    cr_expect_eq(lm_gguf_get_arr(g, "i32s", LM_GGUF_INT64, &n, &a), LM_OK);
    cr_expect_eq(lm_gguf_get_arr(g, "i32s", LM_GGUF_FLOAT32, &n, &a), LM_OK);
    cr_expect_eq(lm_gguf_get_arr(g, "pos", LM_GGUF_UINT8, &n, &a), LM_OK);
    cr_expect_eq(lm_gguf_get_arr(g, "pos", LM_GGUF_UINT32, &n, &a), LM_OK);
    EXPECT_ERR(lm_gguf_get_arr(g, "i32s", LM_GGUF_UINT32, &n, &a), LM_ERR_FORMAT,
               "key 'i32s' element 1 value -2 does not fit uint32");
    EXPECT_ERR(lm_gguf_get_arr(g, "i32s", LM_GGUF_INT16, &n, &a), LM_ERR_FORMAT,
               "element 3 value 40000 does not fit int16");
    cr_expect_eq(lm_gguf_get_arr(g, "f32s", LM_GGUF_FLOAT64, &n, &a), LM_OK);
    cr_expect_eq(lm_gguf_arr_f64(a, 1), -1.25);
    EXPECT_ERR(lm_gguf_get_arr(g, "f32s", LM_GGUF_INT32, &n, &a), LM_ERR_FORMAT,
               "key 'f32s' is an array of float32, expected array of int32");
    cr_expect_eq(lm_gguf_get_arr(g, "strs", LM_GGUF_STRING, &n, &a), LM_OK);
    cr_expect_eq(n, 2);
    cr_expect(lm_gguf_str_eq(a->v.arr.items[1].v.str, "</s>"));
    EXPECT_ERR(lm_gguf_get_arr(g, "strs", LM_GGUF_INT32, &n, &a), LM_ERR_FORMAT,
               "is an array of string, expected array of int32");
    cr_expect_eq(lm_gguf_get_arr(g, "strs", LM_GGUF_TYPE_COUNT, &n, &a), LM_OK);
    EXPECT_ERR(lm_gguf_get_arr(g, "name", LM_GGUF_STRING, &n, &a), LM_ERR_FORMAT,
               "key 'name' has type string, expected array of string");
    EXPECT_ERR(lm_gguf_get_arr(g, "tokenizer.ggml.tokens", LM_GGUF_STRING, &n, &a), LM_ERR_MODEL,
               "key 'tokenizer.ggml.tokens' not found");
    lm_gguf_close(g);
    free(mem);
}

/* Reading float elements as integers saturates instead of invoking undefined behaviour. */
Test(gguf, arr_i64_saturates) {
    const float x[4] = {NAN, 1e30f, -1e30f, -7.9f};
    lm_gguf_value v = {.type = LM_GGUF_ARRAY};
    v.v.arr.type = LM_GGUF_FLOAT32;
    v.v.arr.n = 4;
    v.v.arr.raw = x;
    cr_expect_eq(lm_gguf_arr_i64(&v, 0), 0);
    cr_expect_eq(lm_gguf_arr_i64(&v, 1), INT64_MAX);
    cr_expect_eq(lm_gguf_arr_i64(&v, 2), INT64_MIN);
    cr_expect_eq(lm_gguf_arr_i64(&v, 3), -7);
    cr_expect(isnan(lm_gguf_arr_f64(&v, 0)));
}

/* ---- text ------------------------------------------------------------------------------ */

Test(gguf, value_to_text) {
    char buf[256];
    lm_gguf_value v = {.type = LM_GGUF_STRING, .v.str = {9, "a\"b\n\x01\\c\td"}};
    cr_expect_eq(lm_gguf_value_to_text(&v, 3, buf, sizeof buf), 18);
    cr_expect_str_eq(buf, "\"a\\\"b\\n\\x01\\\\c\\td\"");
    v = (lm_gguf_value){.type = LM_GGUF_FLOAT32, .v.f64 = (double)0.1f};
    lm_gguf_value_to_text(&v, 3, buf, sizeof buf);
    cr_expect_str_eq(buf, "0.1");
    v = (lm_gguf_value){.type = LM_GGUF_FLOAT64, .v.f64 = 1e-5};
    lm_gguf_value_to_text(&v, 3, buf, sizeof buf);
    cr_expect_str_eq(buf, "1e-05");
    v = (lm_gguf_value){.type = LM_GGUF_INT64, .v.i64 = -42};
    lm_gguf_value_to_text(&v, 3, buf, sizeof buf);
    cr_expect_str_eq(buf, "-42");
    v = (lm_gguf_value){.type = LM_GGUF_BOOL, .v.b = false};
    lm_gguf_value_to_text(&v, 3, buf, sizeof buf);
    cr_expect_str_eq(buf, "false");

    static int32_t big[49152];
    for (int i = 0; i < 49152; i++) big[i] = i + 1;
    v = (lm_gguf_value){.type = LM_GGUF_ARRAY};
    v.v.arr.type = LM_GGUF_INT32;
    v.v.arr.n = 49152;
    v.v.arr.raw = big;
    cr_expect_gt(lm_gguf_value_to_text(&v, 3, buf, sizeof buf), 0);
    cr_expect_str_eq(buf, "[1, 2, 3, ... (49152 items)]");
    lm_gguf_value_to_text(&v, 0, buf, sizeof buf);
    cr_expect_str_eq(buf, "[... (49152 items)]");
    v.v.arr.n = 3;
    lm_gguf_value_to_text(&v, 3, buf, sizeof buf);
    cr_expect_str_eq(buf, "[1, 2, 3]");
    v.v.arr.n = 0;
    lm_gguf_value_to_text(&v, 3, buf, sizeof buf);
    cr_expect_str_eq(buf, "[]");

    /* too small: -(length + 1), and a truncated NUL-terminated prefix */
    v.v.arr.n = 49152;
    char small[8];
    cr_expect_eq(lm_gguf_value_to_text(&v, 3, small, sizeof small), -29);
    cr_expect_str_eq(small, "[1, 2, ");
    cr_expect_eq(lm_gguf_value_to_text(&v, 3, NULL, 0), -29);
}

/* ---- writer argument checks ------------------------------------------------------------ */

Test(gguf, writer_rejects_bad_input) {
    lm_gguf_writer *w = NULL;
    cr_expect_eq(lm_gguf_writer_create(1, &w), LM_ERR_INVALID_ARG);
    cr_expect_null(w);
    cr_expect_eq(lm_gguf_writer_create(4, &w), LM_ERR_INVALID_ARG);
    cr_assert_eq(lm_gguf_writer_create(2, &w), LM_OK);
    cr_expect_eq(lm_gguf_writer_set_alignment(w, 0), LM_ERR_INVALID_ARG);
    cr_expect_eq(lm_gguf_writer_set_alignment(w, 48), LM_ERR_INVALID_ARG);
    cr_expect_eq(lm_gguf_writer_set_alignment(w, 64), LM_OK);
    cr_expect_eq(lm_gguf_writer_set_alignment(w, 16), LM_OK, "updating is allowed");
    cr_expect_eq(lm_gguf_writer_add_u32(w, "general.alignment", 8), LM_ERR_INVALID_ARG);
    cr_expect_eq(lm_gguf_writer_add_u32(w, "", 1), LM_ERR_INVALID_ARG);
    cr_expect_eq(lm_gguf_writer_add_u32(w, "a", 1), LM_OK);
    EXPECT_ERR(lm_gguf_writer_add_u32(w, "a", 2), LM_ERR_INVALID_ARG, "duplicate key 'a'");
    lm_gguf_value bad = {.type = (lm_gguf_type)13};
    cr_expect_eq(lm_gguf_writer_add_kv(w, "b", &bad), LM_ERR_INVALID_ARG);
    lm_gguf_value item = {.type = LM_GGUF_UINT8};
    lm_gguf_value mixed = {.type = LM_GGUF_ARRAY};
    mixed.v.arr.type = LM_GGUF_STRING;
    mixed.v.arr.n = 1;
    mixed.v.arr.items = &item;
    EXPECT_ERR(lm_gguf_writer_add_kv(w, "c", &mixed), LM_ERR_INVALID_ARG,
               "element 0 has type uint8, expected string");
    const int64_t ne[2] = {33, 2}, ok_ne[2] = {32, 2}, neg[2] = {-1, 2};
    cr_expect_eq(lm_gguf_writer_add_tensor(w, "t", LM_TYPE_Q8_0, 2, ne, NULL), LM_ERR_INVALID_ARG);
    cr_expect_eq(lm_gguf_writer_add_tensor(w, "t", LM_TYPE_F32, 2, neg, NULL), LM_ERR_INVALID_ARG);
    cr_expect_eq(lm_gguf_writer_add_tensor(w, "t", LM_TYPE_F32, 0, ok_ne, NULL),
                 LM_ERR_INVALID_ARG);
    cr_expect_eq(lm_gguf_writer_add_tensor(w, "t", (lm_type)4, 2, ok_ne, NULL), LM_ERR_INVALID_ARG);
    cr_expect_eq(lm_gguf_writer_add_tensor(w, "", LM_TYPE_F32, 2, ok_ne, NULL), LM_ERR_INVALID_ARG);
    cr_expect_eq(lm_gguf_writer_add_tensor(w, "t", LM_TYPE_Q8_0, 2, ok_ne, NULL), LM_OK);
    EXPECT_ERR(lm_gguf_writer_add_tensor(w, "t", LM_TYPE_F32, 2, ok_ne, NULL), LM_ERR_INVALID_ARG,
               "duplicate tensor 't'");
    EXPECT_ERR(lm_gguf_writer_write_file(w, "/nonexistent/dir/x.gguf"), LM_ERR_IO,
               "/nonexistent/dir/x.gguf: cannot create");
    /* the file it did write: v2, alignment 16, one zero tensor */
    void *mem;
    size_t n;
    cr_assert_eq(lm_gguf_writer_write_memory(w, &mem, &n), LM_OK);
    lm_gguf *g = NULL;
    cr_assert_eq(lm_gguf_open_memory(mem, n, NULL, &g), LM_OK, "%s", lm_last_error());
    cr_expect_eq(lm_gguf_version(g), 2);
    cr_expect_eq(lm_gguf_alignment(g), 16);
    const lm_gguf_tensor *t = lm_gguf_find_tensor(g, "t");
    cr_assert_not_null(t);
    cr_expect_eq(t->n_bytes, 2 * 34 * 1);
    for (uint64_t i = 0; i < t->n_bytes; i++) cr_assert_eq(((const uint8_t *)t->data)[i], 0);
    lm_gguf_close(g);
    free(mem);
    lm_gguf_writer_free(w);
    lm_gguf_writer_free(NULL);
    lm_gguf_close(NULL);
}

Test(gguf, tensor_nbytes) {
    uint64_t nb;
    const int64_t ne[4] = {256, 3, 2, 1};
    cr_expect(lm_gguf_tensor_nbytes(LM_TYPE_Q4_K, 4, ne, &nb));
    cr_expect_eq(nb, 144 * 6);
    cr_expect(lm_gguf_tensor_nbytes(LM_TYPE_F16, 1, ne, &nb));
    cr_expect_eq(nb, 512);
    const int64_t huge[2] = {INT64_MAX - 1, INT64_MAX - 1};
    cr_expect_not(lm_gguf_tensor_nbytes(LM_TYPE_I8, 2, huge, &nb));
    cr_expect_not(lm_gguf_tensor_nbytes((lm_type)5, 1, ne, &nb));
    cr_expect_not(lm_gguf_tensor_nbytes(LM_TYPE_F32, 5, ne, &nb));
}

/* ---- the real model -------------------------------------------------------------------- */

Test(gguf, default_model) {
    const char *path = lm_test_model_path();
    if (access(path, R_OK) != 0) cr_skip_test("default model not found at %s", path);
    lm_gguf *g = NULL;
    cr_assert_eq(lm_gguf_open(path, &g), LM_OK, "%s", lm_last_error());
    cr_expect_eq(lm_gguf_n_tensors(g), 272);
    cr_expect_eq(lm_gguf_n_kv(g), 33);
    lm_gguf_str arch;
    cr_assert_eq(lm_gguf_get_str(g, "general.architecture", &arch), LM_OK);
    cr_expect(lm_gguf_str_eq(arch, "llama"));
    const lm_gguf_tensor *t = lm_gguf_find_tensor(g, "token_embd.weight");
    cr_assert_not_null(t);
    cr_expect_eq(t->type, LM_TYPE_Q8_0);
    cr_expect_eq(t->n_dims, 2);
    cr_expect_eq(t->ne[0], 576);
    cr_expect_eq(t->ne[1], 49152);
    cr_expect_eq(t->n_bytes, 576 / 32 * 34 * 49152ull);
    uint64_t n;
    const lm_gguf_value *tokens;
    cr_assert_eq(lm_gguf_get_arr(g, "tokenizer.ggml.tokens", LM_GGUF_STRING, &n, &tokens), LM_OK);
    cr_expect_eq(n, 49152);
    char buf[512];
    for (int64_t i = 0; i < lm_gguf_n_kv(g); i++)
        cr_expect_neq(lm_gguf_value_to_text(&lm_gguf_kv_at(g, i)->value, 4, buf, sizeof buf), 0);
    uint32_t blocks;
    cr_expect_eq(lm_gguf_get_u32(g, "llama.block_count", &blocks), LM_OK);
    cr_expect_eq(blocks, 30);
    lm_gguf_close(g);
}
