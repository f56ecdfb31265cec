/* The gated activations (SwiGLU, GeGLU) 8 lanes at a time, with a vector exp.
 *
 * libm's expf and tanhf cost ~15 ns an element: on Gemma 3's prefill the GeGLU alone took
 * 12 % of the time. Both gates are written through one exp:
 *   silu(x) = x / (1 + e^-x),   gelu_tanh(x) = x / (1 + e^(-2 u)), u = k (x + c x^3),
 * since 0.5 (1 + tanh(u)) = 1 / (1 + e^(-2u)). The exp is Cephes' expf (Cody-Waite range
 * reduction, degree-6 polynomial, 2^n by exponent arithmetic), within 2 ulp of the true
 * value over its range; arguments are clamped to [-87.3, 88.7] so 2^n stays a normal
 * float, which only matters where the gate is already 0 or x to float precision. So these
 * are not bit-equal to the scalar level's libm calls, but each stays within a few ulp of
 * the exact activation (test_ops: atol = rtol = 1e-6 against double). No FMA: the AVX2
 * level promises only AVX2 + F16C. */
#include "cpu_internal.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(LM_NO_AVX2)
#include <immintrin.h>
#include <math.h>

#define LM__AVX2 __attribute__((target("avx2,f16c")))

LM__AVX2 static inline __m256 lm__exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.7f));
    /* n = round(x / ln 2); r = x - n ln 2 in two steps (0.693359375 has few bits: n * it
     * is exact) */
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(0.693359375f)));
    r = _mm256_sub_ps(r, _mm256_mul_ps(n, _mm256_set1_ps(-2.12194440e-4f)));
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(p, r), r), _mm256_add_ps(r, _mm256_set1_ps(1)));
    const __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* the argument whose exp is the gate's denominator term: -x (silu) or -2u (gelu) */
LM__AVX2 static inline __m256 lm__gate_arg8(__m256 x, int gelu) {
    if (!gelu) return _mm256_sub_ps(_mm256_setzero_ps(), x);
    const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
    const __m256 u = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f),
                                   _mm256_add_ps(x, _mm256_mul_ps(_mm256_set1_ps(0.044715f), x3)));
    return _mm256_mul_ps(u, _mm256_set1_ps(-2.0f));
}

LM__AVX2 static inline __m256 lm__glu8(__m256 x, __m256 u, int gelu) {
    const __m256 den = _mm256_add_ps(_mm256_set1_ps(1.0f), lm__exp8(lm__gate_arg8(x, gelu)));
    return _mm256_mul_ps(_mm256_div_ps(x, den), u);
}

LM__AVX2 static void lm__glu_x(int gelu, const float *x, const float *u, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, lm__glu8(_mm256_loadu_ps(x + i), _mm256_loadu_ps(u + i), gelu));
    if (i < n) { /* the tail through the same lanes, so every element gets the same formula */
        float tx[8] = {0}, tu[8] = {0}, ty[8];
        for (int64_t j = i; j < n; j++) tx[j - i] = x[j], tu[j - i] = u[j];
        _mm256_storeu_ps(ty, lm__glu8(_mm256_loadu_ps(tx), _mm256_loadu_ps(tu), gelu));
        for (int64_t j = i; j < n; j++) y[j] = ty[j - i];
    }
}

void lm__cpu_act_avx2(lm__cpu_kernels *k) {
    k->glu = lm__glu_x;
}

#else
void lm__cpu_act_avx2(lm__cpu_kernels *k) {
    (void)k;
}
#endif
