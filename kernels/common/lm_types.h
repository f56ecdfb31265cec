/* Tensor element types, numbered as in GGUF/ggml, with their block geometry.
 * Usable from C and CUDA. A type's row of ne0 elements takes ne0/blck * size bytes. */
#ifndef LM_TYPES_H
#define LM_TYPES_H

#include <stdint.h>

/* X(name, id, block elements, block bytes, computable: 1 if Lumen can dequantize it) */
#define LM_TYPE_TABLE(X)                                                                           \
    X(F32, 0, 1, 4, 1)                                                                             \
    X(F16, 1, 1, 2, 1)                                                                             \
    X(Q4_0, 2, 32, 18, 1)                                                                          \
    X(Q4_1, 3, 32, 20, 1)                                                                          \
    X(Q5_0, 6, 32, 22, 1)                                                                          \
    X(Q5_1, 7, 32, 24, 1)                                                                          \
    X(Q8_0, 8, 32, 34, 1)                                                                          \
    X(Q8_1, 9, 32, 36, 0)                                                                          \
    X(Q2_K, 10, 256, 84, 1)                                                                        \
    X(Q3_K, 11, 256, 110, 1)                                                                       \
    X(Q4_K, 12, 256, 144, 1)                                                                       \
    X(Q5_K, 13, 256, 176, 1)                                                                       \
    X(Q6_K, 14, 256, 210, 1)                                                                       \
    X(Q8_K, 15, 256, 292, 0)                                                                       \
    X(IQ2_XXS, 16, 256, 66, 0)                                                                     \
    X(IQ2_XS, 17, 256, 74, 0)                                                                      \
    X(IQ3_XXS, 18, 256, 98, 0)                                                                     \
    X(IQ1_S, 19, 256, 50, 0)                                                                       \
    X(IQ4_NL, 20, 32, 18, 0)                                                                       \
    X(IQ3_S, 21, 256, 110, 0)                                                                      \
    X(IQ2_S, 22, 256, 82, 0)                                                                       \
    X(IQ4_XS, 23, 256, 136, 0)                                                                     \
    X(I8, 24, 1, 1, 0)                                                                             \
    X(I16, 25, 1, 2, 0)                                                                            \
    X(I32, 26, 1, 4, 0)                                                                            \
    X(I64, 27, 1, 8, 0)                                                                            \
    X(F64, 28, 1, 8, 0)                                                                            \
    X(IQ1_M, 29, 256, 56, 0)                                                                       \
    X(BF16, 30, 1, 2, 1)                                                                           \
    X(TQ1_0, 34, 256, 54, 0)                                                                       \
    X(TQ2_0, 35, 256, 66, 0)                                                                       \
    X(MXFP4, 39, 32, 17, 0)

typedef enum lm_type {
#define LM_X_TYPE_ENUM(name, id, blck, size, ok) LM_TYPE_##name = id,
    LM_TYPE_TABLE(LM_X_TYPE_ENUM)
#undef LM_X_TYPE_ENUM
        LM_TYPE_COUNT = 40
} lm_type;

typedef struct lm_type_traits {
    const char *name; /* NULL for ids that are not types */
    int32_t blck;     /* elements per block */
    int32_t size;     /* bytes per block */
    int32_t computable;
} lm_type_traits;

/* Traits of a type id; name is NULL for unknown ids (never index out of range). */
static inline lm_type_traits lm_type_get(uint32_t id) {
    lm_type_traits t = {0, 0, 0, 0};
    switch (id) {
#define LM_X_TYPE_CASE(nm, id_, blck_, size_, ok_)                                                 \
    case id_:                                                                                      \
        t.name = #nm;                                                                              \
        t.blck = blck_;                                                                            \
        t.size = size_;                                                                            \
        t.computable = ok_;                                                                        \
        break;
        LM_TYPE_TABLE(LM_X_TYPE_CASE)
#undef LM_X_TYPE_CASE
    default:
        break;
    }
    return t;
}

#endif
