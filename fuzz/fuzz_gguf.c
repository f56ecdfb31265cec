/* libFuzzer target for the GGUF reader: parse, then touch everything a valid handle exposes
 * (every value rendered, every tensor's first and last data byte).
 *
 *   fuzz_gguf --make-seeds DIR   writes a seed corpus of small valid files (made with the
 *                                writer, so nothing binary lives in git) and exits. */
#include "gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile uint8_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Every getter on one key: conversions and their errors must be safe for any value. */
static void touch_getters(const lm_gguf *g, const char *key) {
    uint32_t u;
    int64_t i;
    float f;
    bool b;
    lm_gguf_str s;
    uint64_t n;
    const lm_gguf_value *arr;
    lm_gguf_get_u32(g, key, &u);
    lm_gguf_get_i64(g, key, &i);
    lm_gguf_get_f32(g, key, &f);
    lm_gguf_get_bool(g, key, &b);
    lm_gguf_get_str(g, key, &s);
    lm_gguf_get_arr(g, key, LM_GGUF_INT32, &n, &arr);
    if (lm_gguf_get_arr(g, key, LM_GGUF_TYPE_COUNT, &n, &arr) != LM_OK) return;
    for (uint64_t k = 0; k < n && k < 64; k++) {
        sink ^= (uint8_t)lm_gguf_arr_i64(arr, k);
        sink ^= (uint8_t)(lm_gguf_arr_f64(arr, k) != 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lm_gguf *g = NULL;
    /* Small limits keep one input's memory bounded; the checks are the same. */
    lm_gguf_limits lim = {.max_kv = 4096, .max_tensors = 4096, .max_string = 1 << 20};
    if (lm_gguf_open_memory(data, size, &lim, &g) != LM_OK) return 0;
    char buf[512];
    for (int64_t i = 0; i < lm_gguf_n_kv(g); i++) {
        const lm_gguf_kv *kv = lm_gguf_kv_at(g, i);
        lm_gguf_value_to_text(&kv->value, 8, buf, sizeof buf);
        /* lookups by name must find what iteration found */
        if (kv->key.len < sizeof buf && !memchr(kv->key.data, 0, kv->key.len)) {
            memcpy(buf, kv->key.data, kv->key.len);
            buf[kv->key.len] = '\0';
            if (lm_gguf_find_key(g, buf) != i) __builtin_trap();
            touch_getters(g, buf);
        }
    }
    for (int64_t i = 0; i < lm_gguf_n_tensors(g); i++) {
        const lm_gguf_tensor *t = lm_gguf_tensor_at(g, i);
        const uint8_t *p = t->data;
        if (t->n_bytes == 0 || p < data || p + t->n_bytes > data + size) __builtin_trap();
        sink ^= p[0];
        sink ^= p[t->n_bytes - 1];
    }
    lm_gguf_close(g);
    return 0;
}

/* ---- seed corpus ----------------------------------------------------------------------- */

static int write_seed(lm_gguf_writer *w, const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.gguf", dir, name);
    lm_status s = lm_gguf_writer_write_file(w, path);
    lm_gguf_writer_free(w);
    if (s != LM_OK) fprintf(stderr, "fuzz_gguf: %s\n", lm_last_error());
    return s == LM_OK ? 0 : 1;
}

static lm_gguf_writer *seed_kvs(uint32_t version) {
    static const int32_t i32s[4] = {1, -2, 3, 4};
    static const float f32s[2] = {0.5f, 1e-5f};
    static const char *const toks[3] = {"<s>", "</s>", "hello\n"};
    lm_gguf_writer *w = NULL;
    if (lm_gguf_writer_create(version, &w) != LM_OK) return NULL;
    lm_gguf_value items[2] = {{.type = LM_GGUF_STRING, .v.str = {1, "x"}},
                              {.type = LM_GGUF_STRING, .v.str = {2, "yz"}}};
    lm_gguf_value inner = {.type = LM_GGUF_ARRAY};
    inner.v.arr.type = LM_GGUF_STRING;
    inner.v.arr.n = 2;
    inner.v.arr.items = items;
    lm_gguf_value outer = {.type = LM_GGUF_ARRAY};
    outer.v.arr.type = LM_GGUF_ARRAY;
    outer.v.arr.n = 1;
    outer.v.arr.items = &inner;
    lm_gguf_value u64 = {.type = LM_GGUF_UINT64, .v.u64 = 1ull << 40};
    lm_gguf_value f64 = {.type = LM_GGUF_FLOAT64, .v.f64 = 0.25};
    lm_gguf_writer_add_str(w, "general.architecture", "llama");
    lm_gguf_writer_add_u32(w, "llama.block_count", 2);
    lm_gguf_writer_add_f32(w, "llama.rope.freq_base", 10000.0f);
    lm_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", true);
    lm_gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", toks, 3);
    lm_gguf_writer_add_i32_arr(w, "tokenizer.ggml.token_type", i32s, 4);
    lm_gguf_writer_add_f32_arr(w, "test.f32s", f32s, 2);
    lm_gguf_writer_add_kv(w, "test.nested", &outer);
    lm_gguf_writer_add_kv(w, "test.u64", &u64);
    lm_gguf_writer_add_kv(w, "test.f64", &f64);
    return w;
}

static void seed_tensors(lm_gguf_writer *w) {
    static uint8_t data[4096];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 13 + 5);
    const int64_t a[2] = {8, 2}, b[2] = {64, 2}, c[1] = {32}, d[3] = {256, 1, 2};
    lm_gguf_writer_add_tensor(w, "token_embd.weight", LM_TYPE_F32, 2, a, data);
    lm_gguf_writer_add_tensor(w, "blk.0.attn_q.weight", LM_TYPE_Q8_0, 2, b, data);
    lm_gguf_writer_add_tensor(w, "blk.0.attn_norm.weight", LM_TYPE_F16, 1, c, data);
    lm_gguf_writer_add_tensor(w, "blk.0.ffn_down.weight", LM_TYPE_Q4_K, 3, d, data);
}

static int make_seeds(const char *dir) {
    int bad = 0;
    lm_gguf_writer *w = seed_kvs(3);
    seed_tensors(w);
    bad += write_seed(w, dir, "v3_full");
    w = seed_kvs(2);
    seed_tensors(w);
    lm_gguf_writer_set_alignment(w, 64);
    bad += write_seed(w, dir, "v2_align64");
    w = seed_kvs(3);
    bad += write_seed(w, dir, "kv_only");
    lm_gguf_writer_create(3, &w);
    seed_tensors(w);
    lm_gguf_writer_set_alignment(w, 8);
    bad += write_seed(w, dir, "tensors_align8");
    lm_gguf_writer_create(3, &w);
    bad += write_seed(w, dir, "empty_v3");
    return bad;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    for (int i = 1; i + 1 < *argc; i++) {
        if (strcmp((*argv)[i], "--make-seeds") == 0) exit(make_seeds((*argv)[i + 1]) ? 1 : 0);
    }
    return 0;
}
