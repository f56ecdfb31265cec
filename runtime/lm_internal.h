/* Private helpers shared by the runtime: errors, allocation, overflow checks. */
#ifndef LM_INTERNAL_H
#define LM_INTERNAL_H

#include "lumen.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* All allocation goes through these so a user build can swap the allocator. */
#ifndef LM_MALLOC
#define LM_MALLOC(n)     malloc(n)
#define LM_CALLOC(n, s)  calloc((n), (s))
#define LM_REALLOC(p, n) realloc((p), (n))
#define LM_FREE(p)       free(p)
#endif

/* Record a failure: sets the thread's lm_last_error() text and returns s. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
lm_status
lm__error(lm_status s, const char *fmt, ...);
lm_status lm__verror(lm_status s, const char *fmt, va_list ap);
/* Prefix the current error message with context ("loading x.gguf: ..."). */
void lm__error_prefix(const char *prefix);
void lm__clear_error(void);

void lm__log(lm_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#define LM_TRY(expr)                                                                               \
    do {                                                                                           \
        lm_status lm__s = (expr);                                                                  \
        if (lm__s != LM_OK) return lm__s;                                                          \
    } while (0)

/* Overflow-checked size arithmetic: return false on overflow. */
static inline int lm__mul_ok(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline int lm__add_ok(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

/* Monotonic clock in milliseconds. */
double lm__time_ms(void);

/* hugepages.c: whether the kernel offers transparent huge pages (and LUMEN_HUGEPAGES is
 * not 0); an anonymous, 2 MiB-
 * aligned read-write mapping of at least size bytes advised to use them (NULL on failure,
 * *mapped = the length to give lm__huge_free). */
bool lm__huge_available(void);
void *lm__huge_alloc(size_t size, size_t *mapped);
void lm__huge_free(void *p, size_t mapped);
/* Make a filled mapping read-only, as the file mapping it replaces was: a stray write
 * faults instead of corrupting weights. */
void lm__huge_seal(void *p, size_t mapped);
/* Writable again, to re-lay the weights out in place (false: it stays read-only). */
bool lm__huge_unseal(void *p, size_t mapped);
/* Drop the whole pages of [p, p + n) of a clean file mapping from this process (they
 * stay in the page cache and fault back in if read): after the weights were copied. */
void lm__pages_drop(const void *p, size_t n);

#endif
