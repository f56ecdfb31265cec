/* GGUF v2/v3 reader (memory-mapped, validated) and writer. */
#ifndef LM_GGUF_H
#define LM_GGUF_H

#include "lumen.h"
#include "../kernels/common/lm_types.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum lm_gguf_type {
    LM_GGUF_UINT8 = 0,
    LM_GGUF_INT8 = 1,
    LM_GGUF_UINT16 = 2,
    LM_GGUF_INT16 = 3,
    LM_GGUF_UINT32 = 4,
    LM_GGUF_INT32 = 5,
    LM_GGUF_FLOAT32 = 6,
    LM_GGUF_BOOL = 7,
    LM_GGUF_STRING = 8,
    LM_GGUF_ARRAY = 9,
    LM_GGUF_UINT64 = 10,
    LM_GGUF_INT64 = 11,
    LM_GGUF_FLOAT64 = 12,
    LM_GGUF_TYPE_COUNT
} lm_gguf_type;

#define LM_GGUF_DEFAULT_ALIGNMENT 32
#define LM_GGUF_MAX_DIMS          4

/* A string inside the file: NOT NUL-terminated; data points into the mapping. */
typedef struct lm_gguf_str {
    uint64_t len;
    const char *data;
} lm_gguf_str;

typedef struct lm_gguf_value lm_gguf_value;
struct lm_gguf_value {
    lm_gguf_type type;
    union {
        uint64_t u64; /* UINT8..UINT64 */
        int64_t i64;  /* INT8..INT64 */
        double f64;   /* FLOAT32, FLOAT64 */
        bool b;       /* BOOL */
        lm_gguf_str str;
        struct {
            lm_gguf_type type; /* element type */
            uint64_t n;
            /* Scalar element arrays: raw little-endian elements in the mapping. */
            const void *raw;
            /* STRING or ARRAY elements: n parsed values (owned by the lm_gguf). */
            lm_gguf_value *items;
        } arr;
    } v;
};

typedef struct lm_gguf_kv {
    lm_gguf_str key;
    lm_gguf_value value;
} lm_gguf_kv;

typedef struct lm_gguf_tensor {
    lm_gguf_str name;
    uint32_t n_dims;
    int64_t ne[LM_GGUF_MAX_DIMS]; /* unused dims are 1 */
    lm_type type;
    uint64_t offset;  /* relative to the data section */
    uint64_t n_bytes; /* validated: fits inside the file */
    const void *data; /* points into the mapping */
} lm_gguf_tensor;

typedef struct lm_gguf lm_gguf;

/* Limits applied while parsing (hostile files). Zero fields take the defaults. */
typedef struct lm_gguf_limits {
    uint64_t max_kv;      /* default 1 << 20 */
    uint64_t max_tensors; /* default 1 << 20 */
    uint64_t max_string;  /* default 1 << 28 bytes */
    uint32_t max_depth;   /* levels of nested arrays, default 8, at most 64 */
} lm_gguf_limits;

/* Open and validate a file (mmap). Errors: LM_ERR_IO (cannot open/stat/map, not a regular
 * file), LM_ERR_FORMAT (any structural fault, an empty file and GGUF v1 included; the
 * message names the file, key or tensor, the field and its offset), LM_ERR_LIMIT (a count,
 * string length or nesting depth over lm_gguf_limits), LM_ERR_NOMEM. Error messages start
 * with the path ("<memory>" for lm_gguf_open_memory). */
lm_status lm_gguf_open(const char *path, lm_gguf **out);
/* Parse bytes already in memory (not copied: they must outlive the handle). */
lm_status lm_gguf_open_memory(const void *data, size_t size, const lm_gguf_limits *limits,
                              lm_gguf **out);
void lm_gguf_close(lm_gguf *g);

uint32_t lm_gguf_version(const lm_gguf *g);
uint32_t lm_gguf_alignment(const lm_gguf *g);
size_t lm_gguf_file_size(const lm_gguf *g);
const char *lm_gguf_path(const lm_gguf *g); /* "<memory>" for open_memory */
/* File offset of the data section (aligned; tensor offsets are relative to it). */
uint64_t lm_gguf_data_offset(const lm_gguf *g);

int64_t lm_gguf_n_kv(const lm_gguf *g);
const lm_gguf_kv *lm_gguf_kv_at(const lm_gguf *g, int64_t i);
/* Index of a key or -1. */
int64_t lm_gguf_find_key(const lm_gguf *g, const char *key);
const lm_gguf_value *lm_gguf_get(const lm_gguf *g, const char *key); /* NULL if absent */

/* Typed getters. LM_ERR_MODEL if absent (message names the key), LM_ERR_FORMAT if the
 * stored type does not convert (any integer type converts when the value fits). */
lm_status lm_gguf_get_u32(const lm_gguf *g, const char *key, uint32_t *out);
lm_status lm_gguf_get_i64(const lm_gguf *g, const char *key, int64_t *out);
lm_status lm_gguf_get_f32(const lm_gguf *g, const char *key, float *out); /* ints too */
lm_status lm_gguf_get_bool(const lm_gguf *g, const char *key, bool *out);
lm_status lm_gguf_get_str(const lm_gguf *g, const char *key, lm_gguf_str *out);
/* Array access: *arr is the array value itself (items[] for STRING/ARRAY elements, or
 * lm_gguf_arr_f64/_i64 for scalars). elem_type must match the stored element type, except
 * that any integer element type is accepted for an integer elem_type when every element fits
 * it, and integers and floats are accepted for FLOAT32/FLOAT64. LM_GGUF_TYPE_COUNT accepts
 * any element type. */
lm_status lm_gguf_get_arr(const lm_gguf *g, const char *key, lm_gguf_type elem_type, uint64_t *n,
                          const lm_gguf_value **arr);
/* Read element i of a scalar array as double / int64 (caller checked the type). */
double lm_gguf_arr_f64(const lm_gguf_value *arr, uint64_t i);
int64_t lm_gguf_arr_i64(const lm_gguf_value *arr, uint64_t i);

int64_t lm_gguf_n_tensors(const lm_gguf *g);
const lm_gguf_tensor *lm_gguf_tensor_at(const lm_gguf *g, int64_t i);
const lm_gguf_tensor *lm_gguf_find_tensor(const lm_gguf *g, const char *name);

/* Compare a file string with a C string. */
bool lm_gguf_str_eq(lm_gguf_str s, const char *c);
/* Render a value as text into buf (arrays abbreviated after max_items: "[1, 2, ... (n
 * items)]", strings quoted with control characters escaped). Returns the length written, or
 * when it does not fit, -(length + 1) (the bytes needed, NUL included); buf then holds a
 * truncated, NUL-terminated prefix (buf may be NULL when size is 0). */
int32_t lm_gguf_value_to_text(const lm_gguf_value *v, size_t max_items, char *buf, size_t size);
const char *lm_gguf_type_name(lm_gguf_type t);
/* Bytes of one scalar value of type t; 0 for STRING, ARRAY and unknown types. */
size_t lm_gguf_type_size(lm_gguf_type t);

/* ---- writer --------------------------------------------------------------------------- */

typedef struct lm_gguf_writer lm_gguf_writer;

lm_status lm_gguf_writer_create(uint32_t version, lm_gguf_writer **out);
void lm_gguf_writer_free(lm_gguf_writer *w);
/* Sets (or updates) the general.alignment key; a nonzero power of two. */
lm_status lm_gguf_writer_set_alignment(lm_gguf_writer *w, uint32_t alignment);
/* Add a key with a value; the value (strings, arrays, nested items) is deep-copied. */
lm_status lm_gguf_writer_add_kv(lm_gguf_writer *w, const char *key, const lm_gguf_value *v);
/* Convenience adders. */
lm_status lm_gguf_writer_add_u32(lm_gguf_writer *w, const char *key, uint32_t v);
lm_status lm_gguf_writer_add_f32(lm_gguf_writer *w, const char *key, float v);
lm_status lm_gguf_writer_add_bool(lm_gguf_writer *w, const char *key, bool v);
lm_status lm_gguf_writer_add_str(lm_gguf_writer *w, const char *key, const char *v);
lm_status lm_gguf_writer_add_str_arr(lm_gguf_writer *w, const char *key, const char *const *v,
                                     uint64_t n);
lm_status lm_gguf_writer_add_i32_arr(lm_gguf_writer *w, const char *key, const int32_t *v,
                                     uint64_t n);
lm_status lm_gguf_writer_add_f32_arr(lm_gguf_writer *w, const char *key, const float *v,
                                     uint64_t n);
/* Add a tensor; data (n_bytes derived from type and ne) is copied; NULL data gives zeros.
 * ne[i] for i >= n_dims ignored. Tensors are laid out in the order added, each at a multiple
 * of the alignment, zero-padded (the last one too, as ggml does). */
lm_status lm_gguf_writer_add_tensor(lm_gguf_writer *w, const char *name, lm_type type,
                                    uint32_t n_dims, const int64_t *ne, const void *data);
/* A header entry only, for writers that stream tensor data themselves: write the bytes of
 * lm_gguf_writer_write_meta, then each tensor's bytes in the order added, each zero-padded to
 * the alignment. write_file / write_memory write zeros for such a tensor. */
lm_status lm_gguf_writer_add_tensor_info(lm_gguf_writer *w, const char *name, lm_type type,
                                         uint32_t n_dims, const int64_t *ne);
/* The bytes before the data section (header, keys, tensor entries, padding to the alignment)
 * in a malloc'd buffer the caller frees with free(). */
lm_status lm_gguf_writer_write_meta(const lm_gguf_writer *w, void **data, size_t *size);
/* Serialise to a file, or to a malloc'd buffer the caller frees with free(). */
lm_status lm_gguf_writer_write_file(const lm_gguf_writer *w, const char *path);
lm_status lm_gguf_writer_write_memory(const lm_gguf_writer *w, void **data, size_t *size);

/* Bytes of a tensor of this type and shape; false on overflow / unknown type / ne[0] not a
 * multiple of the block size. */
bool lm_gguf_tensor_nbytes(lm_type type, uint32_t n_dims, const int64_t *ne, uint64_t *out);

#endif
