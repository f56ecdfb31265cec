/* Malformed GGUF files, one structural fault each (see gguf_faults.h). Most start from the
 * writer's valid base file and patch one field found by searching for its key or tensor
 * name, so a change to the base file's layout cannot silently move a patch. */
#include "gguf_faults.h"

#include "gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the base file --------------------------------------------------------------------- */

/* Tensor names share one length so one can be renamed into another in place. */
#define T_F32 "t.f32"
#define T_Q8  "t.q80"
#define T_F16 "t.f16"

static bool add_base_kvs(lm_gguf_writer *w) {
    static const int32_t i32s[3] = {1, 2, 3};
    static const char *const strs[2] = {"a", "bc"};
    static const uint8_t bools[2] = {1, 0};
    lm_gguf_value u8a = {.type = LM_GGUF_UINT8, .v.u64 = 1};
    lm_gguf_value u8b = {.type = LM_GGUF_UINT8, .v.u64 = 2};
    lm_gguf_value barr = {.type = LM_GGUF_ARRAY};
    barr.v.arr.type = LM_GGUF_BOOL;
    barr.v.arr.n = 2;
    barr.v.arr.raw = bools;
    /* [["x"], ["y", "z"]] */
    lm_gguf_value s[3] = {{.type = LM_GGUF_STRING, .v.str = {1, "x"}},
                          {.type = LM_GGUF_STRING, .v.str = {1, "y"}},
                          {.type = LM_GGUF_STRING, .v.str = {1, "z"}}};
    lm_gguf_value inner[2] = {{.type = LM_GGUF_ARRAY}, {.type = LM_GGUF_ARRAY}};
    inner[0].v.arr.type = inner[1].v.arr.type = LM_GGUF_STRING;
    inner[0].v.arr.n = 1;
    inner[0].v.arr.items = &s[0];
    inner[1].v.arr.n = 2;
    inner[1].v.arr.items = &s[1];
    lm_gguf_value nested = {.type = LM_GGUF_ARRAY};
    nested.v.arr.type = LM_GGUF_ARRAY;
    nested.v.arr.n = 2;
    nested.v.arr.items = inner;
    return lm_gguf_writer_add_str(w, "general.architecture", "llama") == LM_OK &&
           lm_gguf_writer_set_alignment(w, 32) == LM_OK &&
           lm_gguf_writer_add_u32(w, "test.u32", 7) == LM_OK &&
           lm_gguf_writer_add_bool(w, "test.flag", true) == LM_OK &&
           lm_gguf_writer_add_kv(w, "test.aaa", &u8a) == LM_OK &&
           lm_gguf_writer_add_kv(w, "test.aab", &u8b) == LM_OK &&
           lm_gguf_writer_add_str(w, "test.name", "hello") == LM_OK &&
           lm_gguf_writer_add_i32_arr(w, "test.i32s", i32s, 3) == LM_OK &&
           lm_gguf_writer_add_str_arr(w, "test.strs", strs, 2) == LM_OK &&
           lm_gguf_writer_add_kv(w, "test.bools", &barr) == LM_OK &&
           lm_gguf_writer_add_kv(w, "test.nested", &nested) == LM_OK &&
           lm_gguf_writer_add_f32(w, "test.f32", 0.5f) == LM_OK;
}

static bool add_base_tensors(lm_gguf_writer *w) {
    uint8_t data[128];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 7 + 1);
    const int64_t ne_f32[2] = {8, 2}, ne_q8[2] = {64, 1}, ne_f16[1] = {8};
    /* 64, 68 and 16 bytes: offsets 0, 64, 160; the file ends with 16 bytes of padding */
    return lm_gguf_writer_add_tensor(w, T_F32, LM_TYPE_F32, 2, ne_f32, data) == LM_OK &&
           lm_gguf_writer_add_tensor(w, T_Q8, LM_TYPE_Q8_0, 2, ne_q8, data) == LM_OK &&
           lm_gguf_writer_add_tensor(w, T_F16, LM_TYPE_F16, 1, ne_f16, data) == LM_OK;
}

bool lm_gguf_fault_base(uint8_t **data, size_t *size) {
    lm_gguf_writer *w = NULL;
    bool ok = lm_gguf_writer_create(3, &w) == LM_OK && add_base_kvs(w) && add_base_tensors(w) &&
              lm_gguf_writer_write_memory(w, (void **)data, size) == LM_OK;
    lm_gguf_writer_free(w);
    return ok;
}

/* ---- patching helpers ------------------------------------------------------------------ */

static void put_u32(uint8_t *d, size_t at, uint32_t v) {
    memcpy(d + at, &v, 4);
}
static void put_u64(uint8_t *d, size_t at, uint64_t v) {
    memcpy(d + at, &v, 8);
}
static uint64_t get_u64(const uint8_t *d, size_t at) {
    uint64_t v;
    memcpy(&v, d + at, 8);
    return v;
}

/* Offset of the length field of the file string s (u64 length + bytes); aborts the test
 * program if absent, since that means the base file changed under the catalogue. */
static size_t find_str(const uint8_t *d, size_t n, const char *s) {
    size_t len = strlen(s);
    for (size_t i = 0; i + 8 + len <= n; i++) {
        if (get_u64(d, i) == len && memcmp(d + i + 8, s, len) == 0) return i;
    }
    fprintf(stderr, "gguf_faults: '%s' not found in the base file\n", s);
    abort();
}

/* Where the pieces of key `key` are. */
static size_t key_type_at(const uint8_t *d, size_t n, const char *key) {
    return find_str(d, n, key) + 8 + strlen(key);
}
static size_t key_value_at(const uint8_t *d, size_t n, const char *key) {
    return key_type_at(d, n, key) + 4;
}

/* Where the pieces of tensor info `name` are (tensor names are 5 bytes). */
static size_t t_ndims_at(const uint8_t *d, size_t n, const char *name) {
    return find_str(d, n, name) + 8 + strlen(name);
}
static size_t t_ne_at(const uint8_t *d, size_t n, const char *name, uint32_t dim) {
    return t_ndims_at(d, n, name) + 4 + 8 * dim;
}
static size_t t_type_at(const uint8_t *d, size_t n, const char *name) {
    uint32_t nd;
    memcpy(&nd, d + t_ndims_at(d, n, name), 4);
    return t_ne_at(d, n, name, nd);
}
static size_t t_offset_at(const uint8_t *d, size_t n, const char *name) {
    return t_type_at(d, n, name) + 4;
}
/* The data section: the last tensor info (t.f16) ends it, padded to 32. */
static size_t data_start(const uint8_t *d, size_t n) {
    return (t_offset_at(d, n, T_F16) + 8 + 31) / 32 * 32;
}

/* Wraps a patch as a build function: base file, then the statement with d, n in scope. */
#define FAULT(fn, ...)                                                                             \
    static bool fn(uint8_t **out, size_t *out_n) {                                                 \
        if (!lm_gguf_fault_base(out, out_n)) return false;                                         \
        uint8_t *d = *out;                                                                         \
        size_t n = *out_n;                                                                         \
        (void)d;                                                                                   \
        (void)n;                                                                                   \
        __VA_ARGS__;                                                                               \
        return true;                                                                               \
    }

/* Remaining bytes after the field at `at` of width w. */
#define LEFT_AFTER(at, w) ((uint64_t)(n - (at) - (w)))

/* ---- header ---------------------------------------------------------------------------- */

FAULT(f_empty, *out_n = 0)
FAULT(f_three_bytes, *out_n = 3)
FAULT(f_magic_only, *out_n = 4)
FAULT(f_bad_magic, memcpy(d, "GGML", 4))
FAULT(f_magic_lowercase, memcpy(d, "gguf", 4))
FAULT(f_cut_in_version, *out_n = 6)
FAULT(f_version_0, put_u32(d, 4, 0))
FAULT(f_version_1, put_u32(d, 4, 1))
FAULT(f_version_99, put_u32(d, 4, 99))
FAULT(f_version_big_endian, put_u32(d, 4, 0x03000000u))
FAULT(f_cut_in_counts, *out_n = 12)
FAULT(f_n_kv_huge, put_u64(d, 16, 1ull << 40))
FAULT(f_n_kv_max, put_u64(d, 16, UINT64_MAX))
FAULT(f_n_tensors_huge, put_u64(d, 8, 1ull << 40))
FAULT(f_n_tensors_max, put_u64(d, 8, UINT64_MAX))

/* ---- keys and values ------------------------------------------------------------------- */

FAULT(f_key_len_past_end, size_t at = find_str(d, n, "general.architecture");
      put_u64(d, at, LEFT_AFTER(at, 8) + 1))
FAULT(f_key_len_huge, put_u64(d, find_str(d, n, "general.architecture"), UINT64_MAX))
FAULT(f_key_len_high_bit, put_u64(d, find_str(d, n, "test.u32"), 1ull << 63))
FAULT(f_key_empty, put_u64(d, find_str(d, n, "test.u32"), 0))
/* Cuts inside the key-value section: fewer keys and no tensors, so the header's count
 * bound still passes and the cut itself is what the reader meets. */
FAULT(f_key_cut, put_u64(d, 8, 0); put_u64(d, 16, 4); *out_n = find_str(d, n, "test.flag") + 8 + 4)
FAULT(f_key_duplicate, d[find_str(d, n, "test.aab") + 8 + 7] = 'a')
FAULT(f_value_type_13, put_u32(d, key_type_at(d, n, "test.u32"), 13))
FAULT(f_value_type_huge, put_u32(d, key_type_at(d, n, "test.u32"), UINT32_MAX))
FAULT(f_value_cut, put_u64(d, 8, 0); put_u64(d, 16, 3); *out_n = key_value_at(d, n, "test.u32") + 2)
FAULT(f_bool_2, d[key_value_at(d, n, "test.flag")] = 2)
FAULT(f_bool_255, d[key_value_at(d, n, "test.flag")] = 255)
FAULT(f_string_len_past_end, size_t at = key_value_at(d, n, "test.name");
      put_u64(d, at, LEFT_AFTER(at, 8) + 1))
FAULT(f_string_len_huge, put_u64(d, key_value_at(d, n, "test.name"), UINT64_MAX))
FAULT(f_array_count_past_end, put_u64(d, key_value_at(d, n, "test.i32s") + 4, 1u << 20))
FAULT(f_array_count_mul_overflow, put_u64(d, key_value_at(d, n, "test.i32s") + 4, (1ull << 62) + 1))
FAULT(f_array_count_max, put_u64(d, key_value_at(d, n, "test.i32s") + 4, UINT64_MAX))
FAULT(f_array_bool_count_past_end, size_t at = key_value_at(d, n, "test.bools") + 4;
      put_u64(d, at, LEFT_AFTER(at, 8) + 1))
FAULT(f_array_elem_type_13, put_u32(d, key_value_at(d, n, "test.i32s"), 13))
FAULT(f_array_elem_type_huge, put_u32(d, key_value_at(d, n, "test.i32s"), 0x80000000u))
FAULT(f_array_bool_elem_2, d[key_value_at(d, n, "test.bools") + 12 + 1] = 2)
FAULT(f_string_array_count_huge, put_u64(d, key_value_at(d, n, "test.strs") + 4, 1ull << 60))
/* test.strs = ["a", "bc"]: element 1's length field follows element 0 (8 + 1 bytes) */
FAULT(f_string_array_elem_len_huge,
      put_u64(d, key_value_at(d, n, "test.strs") + 12 + 9, UINT64_MAX))
FAULT(f_nested_count_huge, put_u64(d, key_value_at(d, n, "test.nested") + 4, 1ull << 60))
/* test.nested = [["x"], ["y", "z"]]: inner array 0 header right after the outer one */
FAULT(f_nested_inner_type_99, put_u32(d, key_value_at(d, n, "test.nested") + 12, 99))
FAULT(f_nested_inner_count_huge,
      put_u64(d, key_value_at(d, n, "test.nested") + 12 + 4, UINT64_MAX / 2))
/* inner array 1 starts after inner 0 (12 + 8 + 1); its element 0 after its header */
FAULT(f_nested_inner_string_len_huge,
      put_u64(d, key_value_at(d, n, "test.nested") + 12 + 21 + 12, 1ull << 40))

/* ---- alignment ------------------------------------------------------------------------- */

FAULT(f_alignment_0, put_u32(d, key_value_at(d, n, "general.alignment"), 0))
FAULT(f_alignment_3, put_u32(d, key_value_at(d, n, "general.alignment"), 3))
FAULT(f_alignment_2pow31_misfit, put_u32(d, key_value_at(d, n, "general.alignment"), 0x80000000u))
/* int32 and float32 are 4 bytes like uint32: only the type changes */
FAULT(f_alignment_int32, put_u32(d, key_type_at(d, n, "general.alignment"), LM_GGUF_INT32))
FAULT(f_alignment_float32, put_u32(d, key_type_at(d, n, "general.alignment"), LM_GGUF_FLOAT32))

/* ---- tensor infos ---------------------------------------------------------------------- */

FAULT(f_tensor_name_len_past_end, size_t at = find_str(d, n, T_F32);
      put_u64(d, at, LEFT_AFTER(at, 8) + 1))
FAULT(f_tensor_name_len_huge, put_u64(d, find_str(d, n, T_Q8), UINT64_MAX))
FAULT(f_tensor_name_empty, put_u64(d, find_str(d, n, T_F16), 0))
FAULT(f_tensor_duplicate_name, memcpy(d + find_str(d, n, T_Q8) + 8, T_F16, 5))
FAULT(f_tensor_n_dims_0, put_u32(d, t_ndims_at(d, n, T_F32), 0))
FAULT(f_tensor_n_dims_5, put_u32(d, t_ndims_at(d, n, T_F32), 5))
FAULT(f_tensor_n_dims_huge, put_u32(d, t_ndims_at(d, n, T_Q8), UINT32_MAX))
FAULT(f_tensor_ne_zero, put_u64(d, t_ne_at(d, n, T_F32, 1), 0))
FAULT(f_tensor_ne_negative, put_u64(d, t_ne_at(d, n, T_F32, 0), UINT64_MAX))
FAULT(f_tensor_ne_int64_min, put_u64(d, t_ne_at(d, n, T_F32, 1), 1ull << 63))
FAULT(f_tensor_ne_product_overflow, put_u64(d, t_ne_at(d, n, T_F32, 0), 1ull << 32);
      put_u64(d, t_ne_at(d, n, T_F32, 1), 1ull << 32))
/* 2^62 elements fit int64, but 2^64 bytes of F32 do not fit uint64 */
FAULT(f_tensor_nbytes_overflow, put_u64(d, t_ne_at(d, n, T_F32, 0), 1ull << 61);
      put_u64(d, t_ne_at(d, n, T_F32, 1), 2))
FAULT(f_tensor_ne0_not_block_multiple, put_u64(d, t_ne_at(d, n, T_Q8, 0), 33))
FAULT(f_tensor_type_4, put_u32(d, t_type_at(d, n, T_Q8), 4))
FAULT(f_tensor_type_99, put_u32(d, t_type_at(d, n, T_Q8), 99))
FAULT(f_tensor_type_40, put_u32(d, t_type_at(d, n, T_F16), 40))
FAULT(f_tensor_type_huge, put_u32(d, t_type_at(d, n, T_F16), UINT32_MAX))
FAULT(f_tensor_info_cut, *out_n = t_ndims_at(d, n, T_Q8) + 2)
FAULT(f_tensor_offset_misaligned, put_u64(d, t_offset_at(d, n, T_Q8), 65))
FAULT(f_tensor_offset_past_end, put_u64(d, t_offset_at(d, n, T_F16), 1ull << 40))
FAULT(f_tensor_offset_overflow, put_u64(d, t_offset_at(d, n, T_F16), UINT64_MAX & ~31ull))
FAULT(f_tensor_data_cut, *out_n = data_start(d, n) + 160 + 15)
FAULT(f_tensor_overlap_same, put_u64(d, t_offset_at(d, n, T_F16), 64))
FAULT(f_tensor_overlap_partial, put_u64(d, t_offset_at(d, n, T_Q8), 32))
FAULT(f_data_section_cut, *out_n = t_offset_at(d, n, T_F16) + 8)

/* ---- hand-built files ------------------------------------------------------------------ */

/* Nine levels of arrays, one more than the default depth limit. */
static bool f_depth_9(uint8_t **out, size_t *out_n) {
    static const uint8_t one = 1;
    lm_gguf_value lv[9];
    memset(lv, 0, sizeof lv);
    for (int i = 0; i < 9; i++) {
        lv[i].type = LM_GGUF_ARRAY;
        lv[i].v.arr.n = 1;
        if (i == 0) {
            lv[i].v.arr.type = LM_GGUF_UINT8;
            lv[i].v.arr.raw = &one;
        } else {
            lv[i].v.arr.type = LM_GGUF_ARRAY;
            lv[i].v.arr.items = &lv[i - 1];
        }
    }
    lm_gguf_writer *w = NULL;
    bool ok = lm_gguf_writer_create(3, &w) == LM_OK &&
              lm_gguf_writer_add_kv(w, "test.deep", &lv[8]) == LM_OK &&
              lm_gguf_writer_write_memory(w, (void **)out, out_n) == LM_OK;
    lm_gguf_writer_free(w);
    return ok;
}

/* 100000 nested array headers: a parser without a depth limit would overflow its stack. */
static bool f_depth_bomb(uint8_t **out, size_t *out_n) {
    const size_t levels = 100000;
    size_t n = 24 + 8 + 4 + 4 + levels * 12 + 12;
    uint8_t *d = calloc(1, n);
    if (!d) return false;
    memcpy(d, "GGUF", 4);
    put_u32(d, 4, 3);
    put_u64(d, 8, 0);
    put_u64(d, 16, 1);
    put_u64(d, 24, 4);
    memcpy(d + 32, "bomb", 4);
    put_u32(d, 36, LM_GGUF_ARRAY);
    size_t at = 40;
    for (size_t i = 0; i < levels; i++, at += 12) {
        put_u32(d, at, LM_GGUF_ARRAY);
        put_u64(d, at + 4, 1);
    }
    put_u32(d, at, LM_GGUF_UINT8); /* innermost: empty uint8 array */
    put_u64(d, at + 4, 0);
    *out = d;
    *out_n = n;
    return true;
}

/* ---- the table ------------------------------------------------------------------------- */

#define F LM_ERR_FORMAT
#define L LM_ERR_LIMIT

const lm_gguf_fault lm_gguf_faults[] = {
    {"empty_file", f_empty, F, "empty file (0 bytes)"},
    {"three_bytes", f_three_bytes, F, "file too small (3 bytes)"},
    {"magic_only", f_magic_only, F, "unexpected end of file reading version"},
    {"bad_magic", f_bad_magic, F, "bad magic 'GGML'"},
    {"magic_lowercase", f_magic_lowercase, F, "bad magic 'gguf'"},
    {"cut_in_version", f_cut_in_version, F, "unexpected end of file reading version"},
    {"version_0", f_version_0, F, "unsupported GGUF version 0"},
    {"version_1", f_version_1, F, "GGUF v1 is not supported"},
    {"version_99", f_version_99, F, "unsupported GGUF version 99"},
    {"version_big_endian", f_version_big_endian, F, "big-endian GGUF"},
    {"cut_in_counts", f_cut_in_counts, F, "unexpected end of file reading tensor count"},
    {"n_kv_huge", f_n_kv_huge, F, "key-value count 1099511627776 cannot fit"},
    {"n_kv_max", f_n_kv_max, F, "key-value count 18446744073709551615 cannot fit"},
    {"n_tensors_huge", f_n_tensors_huge, F, "tensor count 1099511627776 cannot fit"},
    {"n_tensors_max", f_n_tensors_max, F, "tensor count 18446744073709551615 cannot fit"},
    {"key_len_past_end", f_key_len_past_end, F, "key #0: key length"},
    {"key_len_huge", f_key_len_huge, F, "key length 18446744073709551615 exceeds remaining"},
    {"key_len_high_bit", f_key_len_high_bit, F, "key length 9223372036854775808 exceeds"},
    {"key_empty", f_key_empty, F, "empty key"},
    {"key_cut", f_key_cut, F, "key length 9 exceeds remaining 4 bytes"},
    {"key_duplicate", f_key_duplicate, F, "'test.aaa': duplicate key (first at key #"},
    {"value_type_13", f_value_type_13, F, "'test.u32': unknown value type 13"},
    {"value_type_huge", f_value_type_huge, F, "unknown value type 4294967295"},
    {"value_cut", f_value_cut, F, "'test.u32': unexpected end of file reading uint32"},
    {"bool_2", f_bool_2, F, "'test.flag': bool value 2 is not 0 or 1"},
    {"bool_255", f_bool_255, F, "bool value 255 is not 0 or 1"},
    {"string_len_past_end", f_string_len_past_end, F, "'test.name': string length"},
    {"string_len_huge", f_string_len_huge, F, "string length 18446744073709551615 exceeds"},
    {"array_count_past_end", f_array_count_past_end, F, "array of 1048576 int32"},
    {"array_count_mul_overflow", f_array_count_mul_overflow, F,
     "array of 4611686018427387905 int32 (4 bytes each) exceeds remaining"},
    {"array_count_max", f_array_count_max, F, "array of 18446744073709551615 int32"},
    {"array_bool_count_past_end", f_array_bool_count_past_end, F, "bool (1 bytes each)"},
    {"array_elem_type_13", f_array_elem_type_13, F, "unknown array element type 13"},
    {"array_elem_type_huge", f_array_elem_type_huge, F, "unknown array element type 2147483648"},
    {"array_bool_elem_2", f_array_bool_elem_2, F, "bool array element 1 has value 2"},
    {"string_array_count_huge", f_string_array_count_huge, F,
     "array of 1152921504606846976 string needs at least 8 bytes each"},
    {"string_array_elem_len_huge", f_string_array_elem_len_huge, F,
     "'test.strs' element [1]: string length 18446744073709551615"},
    {"nested_count_huge", f_nested_count_huge, F,
     "array of 1152921504606846976 array needs at least 12 bytes each"},
    {"nested_inner_type_99", f_nested_inner_type_99, F,
     "'test.nested' element [0]: unknown array element type 99"},
    {"nested_inner_count_huge", f_nested_inner_count_huge, F,
     "'test.nested' element [0]: array of 9223372036854775807 string"},
    {"nested_inner_string_len_huge", f_nested_inner_string_len_huge, F,
     "'test.nested' element [1][0]: string length 1099511627776"},
    {"depth_9", f_depth_9, L, "arrays nested deeper than the limit 8"},
    {"depth_bomb", f_depth_bomb, L, "arrays nested deeper than the limit 8"},
    {"alignment_0", f_alignment_0, F, "'general.alignment' = 0 must be a nonzero power of two"},
    {"alignment_3", f_alignment_3, F, "'general.alignment' = 3 must be a nonzero power of two"},
    {"alignment_2pow31_misfit", f_alignment_2pow31_misfit, F,
     "data offset 64 is not a multiple of the alignment 2147483648"},
    {"alignment_int32", f_alignment_int32, F, "'general.alignment' has type int32"},
    {"alignment_float32", f_alignment_float32, F, "'general.alignment' has type float32"},
    {"tensor_name_len_past_end", f_tensor_name_len_past_end, F, "tensor #0: tensor name length"},
    {"tensor_name_len_huge", f_tensor_name_len_huge, F,
     "tensor #1: tensor name length 18446744073709551615 exceeds remaining"},
    {"tensor_name_empty", f_tensor_name_empty, F, "tensor #2: empty tensor name"},
    {"tensor_duplicate_name", f_tensor_duplicate_name, F,
     "'t.f16': duplicate tensor name (first at tensor #1)"},
    {"tensor_n_dims_0", f_tensor_n_dims_0, F, "'t.f32': n_dims 0 is not in 1..4"},
    {"tensor_n_dims_5", f_tensor_n_dims_5, F, "'t.f32': n_dims 5 is not in 1..4"},
    {"tensor_n_dims_huge", f_tensor_n_dims_huge, F, "n_dims 4294967295 is not in 1..4"},
    {"tensor_ne_zero", f_tensor_ne_zero, F, "'t.f32': ne[1] = 0 is not positive"},
    {"tensor_ne_negative", f_tensor_ne_negative, F, "'t.f32': ne[0] = -1 is not positive"},
    {"tensor_ne_int64_min", f_tensor_ne_int64_min, F, "ne[1] = -9223372036854775808"},
    {"tensor_ne_product_overflow", f_tensor_ne_product_overflow, F,
     "element count overflows int64 at ne[1]"},
    {"tensor_nbytes_overflow", f_tensor_nbytes_overflow, F, "size in bytes of type F32 overflows"},
    {"tensor_ne0_not_block_multiple", f_tensor_ne0_not_block_multiple, F,
     "ne[0] = 33 is not a multiple of the block size 32 of type Q8_0"},
    {"tensor_type_4", f_tensor_type_4, F, "'t.q80': unknown tensor type 4"},
    {"tensor_type_99", f_tensor_type_99, F, "unknown tensor type 99"},
    {"tensor_type_40", f_tensor_type_40, F, "'t.f16': unknown tensor type 40"},
    {"tensor_type_huge", f_tensor_type_huge, F, "unknown tensor type 4294967295"},
    {"tensor_info_cut", f_tensor_info_cut, F, "'t.q80': unexpected end of file reading n_dims"},
    {"tensor_offset_misaligned", f_tensor_offset_misaligned, F,
     "'t.q80': data offset 65 is not a multiple of the alignment 32"},
    {"tensor_offset_past_end", f_tensor_offset_past_end, F,
     "tensor 't.f16': data [offset 1099511627776, 16 bytes) extends past end of file"},
    {"tensor_offset_overflow", f_tensor_offset_overflow, F,
     "data [offset 18446744073709551584, 16 bytes) extends past end of file"},
    {"tensor_data_cut", f_tensor_data_cut, F,
     "tensor 't.f16': data [offset 160, 16 bytes) extends past end of file"},
    {"tensor_overlap_same", f_tensor_overlap_same, F,
     "tensor 't.f16': data [offset 64, 16 bytes) overlaps tensor 't.q80' [offset 64, 68 bytes)"},
    {"tensor_overlap_partial", f_tensor_overlap_partial, F,
     "tensor 't.q80': data [offset 32, 68 bytes) overlaps tensor 't.f32' [offset 0, 64 bytes)"},
    {"data_section_cut", f_data_section_cut, F, "data section starts at offset"},
};

const size_t lm_gguf_n_faults = sizeof lm_gguf_faults / sizeof lm_gguf_faults[0];

bool lm_gguf_write_bytes(const char *path, const void *data, size_t size) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return false;
    bool ok = size == 0 || fwrite(data, 1, size, fp) == size;
    return fclose(fp) == 0 && ok;
}

bool lm_gguf_fault_write(size_t i, const char *path) {
    uint8_t *d = NULL;
    size_t n = 0;
    if (i >= lm_gguf_n_faults || !lm_gguf_faults[i].build(&d, &n)) return false;
    bool ok = lm_gguf_write_bytes(path, d, n);
    free(d);
    return ok;
}
