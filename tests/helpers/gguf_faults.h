/* A catalogue of malformed GGUF files: each fault is a small valid file (made with the
 * writer) corrupted in one precise place, with the status and message the reader must give.
 * Used by test_gguf_malformed and by the CLI tests (`lumen info` on a bad file). */
#ifndef LM_GGUF_FAULTS_H
#define LM_GGUF_FAULTS_H

#include "lumen.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lm_gguf_fault {
    const char *name;
    /* Builds the faulty bytes into a malloc'd buffer (free() it); false if out of memory. */
    bool (*build)(uint8_t **data, size_t *size);
    lm_status status;    /* what lm_gguf_open / lm_gguf_open_memory must return */
    const char *message; /* a substring lm_last_error() must contain */
} lm_gguf_fault;

extern const lm_gguf_fault lm_gguf_faults[];
extern const size_t lm_gguf_n_faults;

/* The valid file every fault starts from: 3 tensors (F32, Q8_0, F16), a dozen keys of
 * several types, alignment 32. Every cut of it shorter than the end of the last tensor's
 * data is malformed; cuts inside the trailing padding are still valid. */
bool lm_gguf_fault_base(uint8_t **data, size_t *size);

/* Write fault i's bytes to path; false on a bad index, allocation or I/O failure. */
bool lm_gguf_fault_write(size_t i, const char *path);

/* Write raw bytes to a file; false on failure. */
bool lm_gguf_write_bytes(const char *path, const void *data, size_t size);

#endif
