/* Anonymous memory in transparent huge pages. A matvec streams its weights once per token:
 * with 4 KiB pages every 4 KiB costs a TLB miss and stops the hardware prefetchers, and
 * on the project's machine 2 MiB pages raised decode's read rate by a quarter (see
 * docs/benchmarks.md). The kernel gives huge pages to an aligned anonymous mapping when
 * THP is "always" or, after madvise(MADV_HUGEPAGE), "madvise". LUMEN_HUGEPAGES=0 turns
 * their use off (the CPU backend's weights then stay in the file mapping). */
#include "lm_internal.h"

#include <stdio.h>
#include <string.h>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#define LM__HUGE_LINUX 1
#endif

#define LM__HUGE_PAGE ((size_t)2 << 20)

bool lm__huge_available(void) {
#ifdef LM__HUGE_LINUX
    const char *env = getenv("LUMEN_HUGEPAGES");
    if (env && strcmp(env, "0") == 0) return false;
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f) return false;
    char buf[128] = {0};
    const bool ok = fgets(buf, sizeof buf, f) && !strstr(buf, "[never]");
    fclose(f);
    return ok;
#else
    return false;
#endif
}

void *lm__huge_alloc(size_t size, size_t *mapped) {
    *mapped = 0;
#ifdef LM__HUGE_LINUX
    if (size == 0 || size > SIZE_MAX - 2 * LM__HUGE_PAGE) return NULL;
    const size_t len = (size + LM__HUGE_PAGE - 1) & ~(LM__HUGE_PAGE - 1);
    /* over-map by one huge page, then trim both ends to a 2 MiB-aligned range */
    char *raw =
        mmap(NULL, len + LM__HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return NULL;
    const uintptr_t a = ((uintptr_t)raw + LM__HUGE_PAGE - 1) & ~(uintptr_t)(LM__HUGE_PAGE - 1);
    char *p = (char *)a;
    if (p > raw) munmap(raw, (size_t)(p - raw));
    const size_t tail = (size_t)(raw + len + LM__HUGE_PAGE - (p + len));
    if (tail) munmap(p + len, tail);
    (void)madvise(p, len, MADV_HUGEPAGE); /* best effort: "always" needs no advice */
    *mapped = len;
    return p;
#else
    (void)size;
    return NULL;
#endif
}

void lm__huge_seal(void *p, size_t mapped) {
#ifdef LM__HUGE_LINUX
    if (p && mapped) (void)mprotect(p, mapped, PROT_READ);
#else
    (void)p, (void)mapped;
#endif
}

bool lm__huge_unseal(void *p, size_t mapped) {
#ifdef LM__HUGE_LINUX
    return p && mapped && mprotect(p, mapped, PROT_READ | PROT_WRITE) == 0;
#else
    (void)p, (void)mapped;
    return false;
#endif
}

void lm__huge_free(void *p, size_t mapped) {
#ifdef LM__HUGE_LINUX
    if (p && mapped) munmap(p, mapped);
#else
    (void)p, (void)mapped;
#endif
}

void lm__pages_drop(const void *p, size_t n) {
#ifdef LM__HUGE_LINUX
    const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t a = ((uintptr_t)p + pg - 1) & ~(pg - 1), b = ((uintptr_t)p + n) & ~(pg - 1);
    if (pg && b > a) (void)madvise((void *)a, (size_t)(b - a), MADV_DONTNEED);
#else
    (void)p, (void)n;
#endif
}
