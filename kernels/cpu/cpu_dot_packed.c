/* The packed weight layout's kernels (LM_LAYOUT_CPU_P8, cpu_relayout.c), AVX-512 VNNI only:
 * cpu_dot_avx512.c includes this file after cpu_dot_avx2.c, whose helpers it uses; compiled
 * on its own it is empty. */
#if defined(LM__VNNI) && defined(__x86_64__) && defined(__GNUC__) && !defined(LM_NO_AVX2)

/* A group block holds the 8 rows' f16 d (and m) contiguous, then their levels in 4-byte
 * pieces, piece c of row r at (8 c + r) * 4. 32 bytes widened to int16 are then one zmm in
 * lm__zpairs' layout (row r's levels 4q .. 4q + 3 in lanes 2r, 2r + 1): no transposes, no
 * horizontal sums, no scale gathers. Z[q] below holds levels 4q .. 4q + 3 of every row. */
LM__AVX2 LM__INLINE void lm__p8_nib(const uint8_t *p, __m512i *Z, short off) {
    const __m512i m4 = _mm512_set1_epi16(0x0f), o = _mm512_set1_epi16(off);
    for (int c = 0; c < 4; c++) { /* a byte holds level j (low nibble) and j + 16 */
        const __m512i v = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(p + 32 * c)));
        Z[c] = _mm512_sub_epi16(_mm512_and_si512(v, m4), o);
        Z[c + 4] = _mm512_sub_epi16(_mm512_srli_epi16(v, 4), o);
    }
}
LM__AVX2 LM__INLINE void lm__p8_q4_0(const uint8_t *p, __m512i *Z) {
    lm__p8_nib(p, Z, 8);
}
LM__AVX2 LM__INLINE void lm__p8_q4_1(const uint8_t *p, __m512i *Z) {
    lm__p8_nib(p, Z, 0);
}
/* q5: piece 0 is qh (row r's 32 high bits in dword r), then the nibbles as q4's. Level
 * 4c + t of row r (lane 4r + t of Z[c]) takes bit 4c + t of qh's low half, Z[c + 4] bit
 * 4c + t of its high half: words spread by vpermw, bits picked by vptestmw. */
LM__AVX2 LM__INLINE void lm__p8_q5(const uint8_t *p, __m512i *Z, bool off) {
    const __m512i qh = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p));
    const __m512i idx = _mm512_set_epi16(14, 14, 14, 14, 12, 12, 12, 12, 10, 10, 10, 10, 8, 8, 8, 8,
                                         6, 6, 6, 6, 4, 4, 4, 4, 2, 2, 2, 2, 0, 0, 0, 0);
    const __m512i wl = _mm512_permutexvar_epi16(idx, qh); /* word 4r + t: qh_r & 0xffff */
    const __m512i wh = _mm512_permutexvar_epi16(_mm512_add_epi16(idx, _mm512_set1_epi16(1)), qh);
    const __m512i b0 = _mm512_set4_epi32(0x00080004, 0x00020001, 0x00080004, 0x00020001);
    const __m512i m4 = _mm512_set1_epi16(0x0f), k16 = _mm512_set1_epi16(16);
    for (int c = 0; c < 4; c++) {
        const __m512i v =
            _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(p + 32 + 32 * c)));
        const __m512i bits = _mm512_slli_epi16(b0, 4 * c); /* lane 4r + t: 1 << (4c + t) */
        const __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_srli_epi16(v, 4);
        /* q5_0: level - 16 where the bit is clear; q5_1: level + 16 where it is set */
        Z[c] = off ? _mm512_mask_sub_epi16(lo, _mm512_testn_epi16_mask(wl, bits), lo, k16)
                   : _mm512_mask_add_epi16(lo, _mm512_test_epi16_mask(wl, bits), lo, k16);
        Z[c + 4] = off ? _mm512_mask_sub_epi16(hi, _mm512_testn_epi16_mask(wh, bits), hi, k16)
                       : _mm512_mask_add_epi16(hi, _mm512_test_epi16_mask(wh, bits), hi, k16);
    }
}
LM__AVX2 LM__INLINE void lm__p8_q5_0(const uint8_t *p, __m512i *Z) {
    lm__p8_q5(p, Z, true);
}
LM__AVX2 LM__INLINE void lm__p8_q5_1(const uint8_t *p, __m512i *Z) {
    lm__p8_q5(p, Z, false);
}
LM__AVX2 LM__INLINE void lm__p8_q8_0(const uint8_t *p, __m512i *Z) {
    for (int c = 0; c < 8; c++)
        Z[c] = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(p + 32 * c)));
}
LM__AVX2 LM__INLINE __m256 lm__p8_f16(const char *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

/* NH: f16 fields per block (d, m), so the levels start at 16 NH bytes */
#define LM__QDOT_P8_X(name, LEVELS, NH, HAS_MIN)                                                   \
    LM__AVX2 LM__INLINE void name##_p8n(const char *w, size_t wb, const char *va, size_t as,       \
                                        int64_t nb, float *out, size_t os, const int NC) {         \
        __m256 acc[4];                                                                             \
        for (int c = 0; c < NC; c++) acc[c] = _mm256_setzero_ps();                                 \
        lm__pf pf = lm__pf_init(w, wb / LM__MR, wb, nb);                                           \
        for (int64_t b = 0; b < nb; b++) {                                                         \
            lm__pf_step(&pf);                                                                      \
            const char *g = w + (size_t)b * wb;                                                    \
            __m512i Z[8];                                                                          \
            LEVELS((const uint8_t *)g + 16 * (NH), Z);                                             \
            const lm__q16a *A[4];                                                                  \
            __m512i S[2][4];                                                                       \
            for (int c = 0; c < NC; c++) {                                                         \
                A[c] = (const lm__q16a *)(va + (size_t)c * as) + b;                                \
                S[0][c] = S[1][c] = _mm512_setzero_si512();                                        \
            }                                                                                      \
            for (int q = 0; q < 8; q++)                                                            \
                for (int c = 0; c < NC; c++) {                                                     \
                    int64_t quad;                                                                  \
                    memcpy(&quad, A[c]->qs + 4 * q, 8);                                            \
                    S[q & 1][c] = _mm512_dpwssd_epi32(S[q & 1][c], Z[q], _mm512_set1_epi64(quad)); \
                }                                                                                  \
            const __m256 dw = lm__p8_f16(g), m = (NH) > 1 ? lm__p8_f16(g + 16) : dw;               \
            for (int c = 0; c < NC; c++) {                                                         \
                const __m256i isum = lm__zfold(_mm512_add_epi32(S[0][c], S[1][c]));                \
                __m256 t = _mm256_mul_ps(_mm256_mul_ps(dw, _mm256_set1_ps(A[c]->d)),               \
                                         _mm256_cvtepi32_ps(isum));                                \
                if (HAS_MIN) t = _mm256_add_ps(t, _mm256_mul_ps(m, _mm256_set1_ps(A[c]->s)));      \
                acc[c] = _mm256_add_ps(acc[c], t);                                                 \
            }                                                                                      \
        }                                                                                          \
        for (int c = 0; c < NC; c++) _mm256_storeu_ps(out + (size_t)c * os, acc[c]);               \
    }                                                                                              \
    LM__AVX2 static void name##_p8wide(const char *w, size_t wb, const char *va, size_t as,        \
                                       int nc, int64_t nb, float *out, size_t os) {                \
        __m256 acc[LM__NC];                                                                        \
        for (int c = 0; c < nc; c++) acc[c] = _mm256_setzero_ps();                                 \
        lm__pf pf = lm__pf_init(w, wb / LM__MR, wb, nb);                                           \
        for (int64_t b = 0; b < nb; b++) {                                                         \
            lm__pf_step(&pf);                                                                      \
            const char *g = w + (size_t)b * wb;                                                    \
            __m512i Z[8];                                                                          \
            LEVELS((const uint8_t *)g + 16 * (NH), Z);                                             \
            __m256i V[16] __attribute__((aligned(64)));                                            \
            for (int q = 0; q < 8; q++) _mm512_store_si512(V + 2 * q, Z[q]);                       \
            const __m256 dw = lm__p8_f16(g), m = (NH) > 1 ? lm__p8_f16(g + 16) : dw;               \
            name##_cols(V, va, as, nc, b, dw, m, acc);                                             \
        }                                                                                          \
        for (int c = 0; c < nc; c++) _mm256_storeu_ps(out + (size_t)c * os, acc[c]);               \
    }                                                                                              \
    LM__AVX2 static void name##_p8(const void *w, size_t ws, size_t wb, int nr, const void *va,    \
                                   size_t as, int nc, int64_t nb, float *out, size_t os) {         \
        (void)ws, (void)nr; /* a full group, always */                                             \
        switch (nc) {                                                                              \
        case 1:                                                                                    \
            name##_p8n(w, wb, va, as, nb, out, os, 1);                                             \
            break;                                                                                 \
        case 2:                                                                                    \
            name##_p8n(w, wb, va, as, nb, out, os, 2);                                             \
            break;                                                                                 \
        case 3:                                                                                    \
            name##_p8n(w, wb, va, as, nb, out, os, 3);                                             \
            break;                                                                                 \
        case 4:                                                                                    \
            name##_p8n(w, wb, va, as, nb, out, os, 4);                                             \
            break;                                                                                 \
        default:                                                                                   \
            name##_p8wide(w, wb, va, as, nc, nb, out, os);                                         \
            break;                                                                                 \
        }                                                                                          \
    }

LM__QDOT_P8_X(lm__qdot_q4_0_x, lm__p8_q4_0, 1, 0)
LM__QDOT_P8_X(lm__qdot_q4_1_x, lm__p8_q4_1, 2, 1)
LM__QDOT_P8_X(lm__qdot_q5_0_x, lm__p8_q5_0, 1, 0)
LM__QDOT_P8_X(lm__qdot_q5_1_x, lm__p8_q5_1, 2, 1)
LM__QDOT_P8_X(lm__qdot_q8_0_x, lm__p8_q8_0, 1, 0)

static void lm__p8_kernels(lm__cpu_kernels *k) {
    k->qdot_p8[LM_TYPE_Q4_0] = lm__qdot_q4_0_x_p8;
    k->qdot_p8[LM_TYPE_Q4_1] = lm__qdot_q4_1_x_p8;
    k->qdot_p8[LM_TYPE_Q5_0] = lm__qdot_q5_0_x_p8;
    k->qdot_p8[LM_TYPE_Q5_1] = lm__qdot_q5_1_x_p8;
    k->qdot_p8[LM_TYPE_Q8_0] = lm__qdot_q8_0_x_p8;
}

#else
typedef int lm__cpu_dot_packed_unused; /* not the x86 VNNI build: nothing here */
#endif
