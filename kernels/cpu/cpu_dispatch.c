/* Instruction-set levels of the CPU backend: what this CPU supports (cpuid, with the OS's
 * consent to save the registers), what this build has kernels for, and the kernel table of
 * each. A backend takes the best level at creation unless LUMEN_CPU_LEVEL names one. */
#include "cpu_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#define LM__X86 1
#endif

static const char *const lm__level_names[LM__CPU_LEVEL_COUNT] = {"scalar", "avx2", "avx512",
                                                                 "neon"};

const char *lm__cpu_level_name(lm__cpu_level level) {
    return (unsigned)level < LM__CPU_LEVEL_COUNT ? lm__level_names[level] : "?";
}

/* ---- what the CPU has ---- */

#ifdef LM__X86
/* XCR0 bits the OS sets when it saves the registers: SSE|AVX (0x6), + opmask/ZMM (0xe0) */
static uint64_t lm__xgetbv0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

static bool lm__cpu_has(lm__cpu_level level) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    const bool osxsave = c & (1u << 27), avx = c & (1u << 28), f16c = c & (1u << 29);
    if (!osxsave || !avx || !f16c) return false;
    const uint64_t xcr0 = lm__xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return false;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    const bool avx2 = b & (1u << 5);
    if (level == LM__CPU_AVX2) return avx2;
    /* AVX-512 F (b16), BW (b30), VL (b31), VNNI (c11) and the opmask/ZMM state */
    const bool f = b & (1u << 16), bw = b & (1u << 30), vl = b & (1u << 31), vnni = c & (1u << 11);
    return avx2 && f && bw && vl && vnni && (xcr0 & 0xe6) == 0xe6;
}
#elif defined(__aarch64__)
/* Advanced SIMD is part of the AArch64 base architecture */
static bool lm__cpu_has(lm__cpu_level level) {
    return level == LM__CPU_NEON;
}
#else
static bool lm__cpu_has(lm__cpu_level level) {
    (void)level;
    return false;
}
#endif

/* ---- the tables, built once ---- */

static lm__cpu_kernels lm__tables[LM__CPU_LEVEL_COUNT];
static bool lm__built[LM__CPU_LEVEL_COUNT]; /* kernels compiled in and the CPU runs them */
static pthread_once_t lm__once = PTHREAD_ONCE_INIT;

static void lm__build_tables(void) {
    lm__cpu_kernels_scalar(&lm__tables[LM__CPU_SCALAR]);
    lm__built[LM__CPU_SCALAR] = true;
    lm__cpu_kernels k;
    if (lm__cpu_kernels_avx2(&k) && lm__cpu_has(LM__CPU_AVX2)) {
        lm__tables[LM__CPU_AVX2] = k;
        lm__built[LM__CPU_AVX2] = true;
    }
    if (lm__cpu_kernels_avx512(&k) && lm__cpu_has(LM__CPU_AVX512)) {
        lm__tables[LM__CPU_AVX512] = k;
        lm__built[LM__CPU_AVX512] = true;
    }
    if (lm__cpu_kernels_neon(&k) && lm__cpu_has(LM__CPU_NEON)) {
        lm__tables[LM__CPU_NEON] = k;
        lm__built[LM__CPU_NEON] = true;
    }
}

bool lm__cpu_level_supported(lm__cpu_level level) {
    pthread_once(&lm__once, lm__build_tables);
    return (unsigned)level < LM__CPU_LEVEL_COUNT && lm__built[level];
}

lm__cpu_level lm__cpu_level_best(void) {
    lm__cpu_level best = LM__CPU_SCALAR;
    for (int l = 0; l < LM__CPU_LEVEL_COUNT; l++)
        if (lm__cpu_level_supported((lm__cpu_level)l)) best = (lm__cpu_level)l;
    return best;
}

const lm__cpu_kernels *lm__cpu_kernels_get(lm__cpu_level level) {
    return lm__cpu_level_supported(level) ? &lm__tables[level] : &lm__tables[LM__CPU_SCALAR];
}

lm_status lm__cpu_level_parse(const char *s, lm__cpu_level *out) {
    for (int l = 0; l < LM__CPU_LEVEL_COUNT; l++)
        if (s && strcmp(s, lm__level_names[l]) == 0) {
            *out = (lm__cpu_level)l;
            return LM_OK;
        }
    return lm__error(
        LM_ERR_INVALID_ARG,
        "cpu: unknown instruction-set level '%s' (expected scalar, avx2, avx512 or neon)",
        s ? s : "(null)");
}

/* "scalar, avx2" */
static void lm__supported_list(char *buf, size_t n) {
    buf[0] = '\0';
    for (int l = 0; l < LM__CPU_LEVEL_COUNT; l++) {
        if (!lm__cpu_level_supported((lm__cpu_level)l)) continue;
        const size_t len = strlen(buf);
        snprintf(buf + len, n - len, "%s%s", len ? ", " : "", lm__level_names[l]);
    }
}

lm_status lm__cpu_set_level(lm_backend *be, lm__cpu_level level) {
    lm__cpu *c = lm__cpu_ctx(be);
    if (!lm__cpu_level_supported(level)) {
        char list[64];
        lm__supported_list(list, sizeof list);
        const bool cpu = (unsigned)level < LM__CPU_LEVEL_COUNT && lm__cpu_has(level);
        return lm__error(LM_ERR_UNSUPPORTED, "cpu: level %s is not available: %s (available: %s)",
                         lm__cpu_level_name(level),
                         cpu ? "this build has no kernels for it" : "this CPU lacks it", list);
    }
    c->kern = lm__cpu_kernels_get(level);
    snprintf(c->name, sizeof c->name, "%s (%d threads, %s)", c->model, c->n_threads,
             lm__cpu_level_name(level));
    return LM_OK;
}

lm__cpu_level lm__cpu_get_level(lm_backend *be) {
    return lm__cpu_ctx(be)->kern->level;
}

lm_status lm__cpu_level_from_env(lm__cpu_level *out) {
    const char *s = getenv("LUMEN_CPU_LEVEL");
    if (!s || !*s) {
        *out = lm__cpu_level_best();
        return LM_OK;
    }
    if (lm__cpu_level_parse(s, out) != LM_OK)
        return lm__error(
            LM_ERR_INVALID_ARG,
            "cpu: LUMEN_CPU_LEVEL=%s is not a level (expected scalar, avx2, avx512 or neon)", s);
    return LM_OK;
}
