/* The AVX-512 level: cpu_dot_avx2.c's kernels compiled again for AVX-512 VL + VNNI, so that
 * they get 32 vector registers and vpdpwssd (pmaddwd and its add in one instruction). The
 * results are those of the AVX2 and scalar kernels, bit for bit. */
#define LM__VNNI 1
#include "cpu_dot_avx2.c"

#if !(defined(__x86_64__) && defined(__GNUC__) && !defined(LM_NO_AVX2))
bool lm__cpu_kernels_avx512(lm__cpu_kernels *k) {
    (void)k;
    return false;
}
#endif
