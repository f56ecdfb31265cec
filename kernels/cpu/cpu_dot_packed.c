/* The packed weight layout's kernels (LM_LAYOUT_CPU_P8, cpu_relayout.c): cpu_dot_avx2.c
 * includes this file (LM__PACKED_IN) for both x86 levels, after the helpers it uses; compiled
 * on its own it is empty. Every type with a packed form, on both x86 levels.
 *
 * A group block holds the 8 rows' f16 fields, then the rest of their blocks in 4-byte
 * pieces, piece c of row r at (8 c + r) * 4. 32 bytes of pieces widened to int16 are then
 * one "packed vector" (lm__pv): row r's 4 levels in 16-bit lanes 4r .. 4r + 3, i.e. two
 * level pairs of row r in 32-bit lanes 2r, 2r + 1. Multiplied with a broadcast quad of
 * activations, each 32-bit lane sums one pair of products of its row: no transposes, no
 * horizontal sums, no scale gathers. AVX-512: one zmm, vpdpwssd; AVX2: two ymm (rows 0-3,
 * 4-7), pmaddwd and an add. The kernels are written once over the lm__pv operations. */
#ifdef LM__PACKED_IN

#ifdef LM__VNNI
typedef __m512i lm__pv;
#define LM__PV_OP2(name, f)                                                                        \
    LM__AVX2 LM__INLINE lm__pv name(lm__pv a, lm__pv b) {                                          \
        return f(a, b);                                                                            \
    }
#define LM__PV_SHIFT(name, f)                                                                      \
    LM__AVX2 LM__INLINE lm__pv name(lm__pv a, int n) {                                             \
        return f(a, (unsigned)n);                                                                  \
    }
LM__AVX2 LM__INLINE lm__pv lm__pv_zero(void) {
    return _mm512_setzero_si512();
}
LM__AVX2 LM__INLINE lm__pv lm__pv_set16(short v) {
    return _mm512_set1_epi16(v);
}
LM__AVX2 LM__INLINE lm__pv lm__pv_set32(int v) {
    return _mm512_set1_epi32(v);
}
/* 16-bit lane 4r + t: 1 << t */
LM__AVX2 LM__INLINE lm__pv lm__pv_bits0(void) {
    return _mm512_set4_epi32(0x00080004, 0x00020001, 0x00080004, 0x00020001);
}
/* 32 bytes widened: unsigned, signed */
LM__AVX2 LM__INLINE lm__pv lm__pv_u8(const char *p) {
    return _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)p));
}
LM__AVX2 LM__INLINE lm__pv lm__pv_s8(const char *p) {
    return _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)p));
}
/* acc + the pair sums of z with the activation quad a[0..3] in every row */
LM__AVX2 LM__INLINE lm__pv lm__pv_dp(lm__pv acc, lm__pv z, const int16_t *a) {
    int64_t quad;
    memcpy(&quad, a, 8);
    return _mm512_dpwssd_epi32(acc, z, _mm512_set1_epi64(quad));
}
/* row r's int32 (lane r of s) in lanes 2r, 2r + 1 */
LM__AVX2 LM__INLINE lm__pv lm__pv_dup(__m256i s) {
    return _mm512_permutexvar_epi32(
        _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7),
        _mm512_castsi256_si512(s));
}
/* lanes 2r + 2r + 1 -> row r */
LM__AVX2 LM__INLINE __m256i lm__pv_fold(lm__pv t) {
    return lm__zfold(t);
}
/* 16-bit lanes 4r .. 4r + 3: row r's word `half` (0: low, 1: high) of the dwords at p */
LM__AVX2 LM__INLINE lm__pv lm__pv_rowword(const char *p, int half) {
    const __m512i idx = _mm512_set_epi16(14, 14, 14, 14, 12, 12, 12, 12, 10, 10, 10, 10, 8, 8, 8, 8,
                                         6, 6, 6, 6, 4, 4, 4, 4, 2, 2, 2, 2, 0, 0, 0, 0);
    return _mm512_permutexvar_epi16(_mm512_add_epi16(idx, _mm512_set1_epi16((short)half)),
                                    _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p)));
}
/* a q5 level: nib + 16 where w & bits is not 0, minus off (16: q5_0, 0: q5_1), in one
 * masked operation */
LM__AVX2 LM__INLINE lm__pv lm__pv_q5(lm__pv nib, lm__pv w, lm__pv bits, short off) {
    const __m512i k16 = _mm512_set1_epi16(16);
    return off ? _mm512_mask_sub_epi16(nib, _mm512_testn_epi16_mask(w, bits), nib, k16)
               : _mm512_mask_add_epi16(nib, _mm512_test_epi16_mask(w, bits), nib, k16);
}
/* z as the prefill kernels' pairs V[2q], V[2q + 1] (lm__zpairs' layout: z itself) */
LM__AVX2 LM__INLINE void lm__pv_pairs(lm__pv z, __m256i *V2) {
    _mm512_store_si512(V2, z);
}
LM__PV_OP2(lm__pv_and, _mm512_and_si512)
LM__PV_OP2(lm__pv_or, _mm512_or_si512)
LM__PV_OP2(lm__pv_sub16, _mm512_sub_epi16)
LM__PV_OP2(lm__pv_add32, _mm512_add_epi32)
LM__PV_OP2(lm__pv_mullo32, _mm512_mullo_epi32)
LM__PV_SHIFT(lm__pv_srli16, _mm512_srli_epi16)
LM__PV_SHIFT(lm__pv_slli16, _mm512_slli_epi16)
LM__PV_SHIFT(lm__pv_srai32, _mm512_srai_epi32)

#else /* AVX2: h[0] rows 0-3, h[1] rows 4-7 */

typedef struct {
    __m256i h[2];
} lm__pv;
#define LM__PV_OP2(name, f)                                                                        \
    LM__AVX2 LM__INLINE lm__pv name(lm__pv a, lm__pv b) {                                          \
        return (lm__pv){{f(a.h[0], b.h[0]), f(a.h[1], b.h[1])}};                                   \
    }
#define LM__PV_SHIFT(name, f)                                                                      \
    LM__AVX2 LM__INLINE lm__pv name(lm__pv a, int n) {                                             \
        return (lm__pv){{f(a.h[0], n), f(a.h[1], n)}};                                             \
    }
LM__AVX2 LM__INLINE lm__pv lm__pv_zero(void) {
    return (lm__pv){{_mm256_setzero_si256(), _mm256_setzero_si256()}};
}
LM__AVX2 LM__INLINE lm__pv lm__pv_set16(short v) {
    return (lm__pv){{_mm256_set1_epi16(v), _mm256_set1_epi16(v)}};
}
LM__AVX2 LM__INLINE lm__pv lm__pv_set32(int v) {
    return (lm__pv){{_mm256_set1_epi32(v), _mm256_set1_epi32(v)}};
}
LM__AVX2 LM__INLINE lm__pv lm__pv_bits0(void) {
    const __m256i b = _mm256_setr_epi16(1, 2, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8);
    return (lm__pv){{b, b}};
}
LM__AVX2 LM__INLINE lm__pv lm__pv_u8(const char *p) {
    return (lm__pv){{_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)p)),
                     _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(p + 16)))}};
}
LM__AVX2 LM__INLINE lm__pv lm__pv_s8(const char *p) {
    return (lm__pv){{_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)p)),
                     _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(p + 16)))}};
}
LM__AVX2 LM__INLINE lm__pv lm__pv_dp(lm__pv acc, lm__pv z, const int16_t *a) {
    int64_t quad;
    memcpy(&quad, a, 8);
    const __m256i x = _mm256_set1_epi64x(quad);
    return (lm__pv){{_mm256_add_epi32(acc.h[0], _mm256_madd_epi16(z.h[0], x)),
                     _mm256_add_epi32(acc.h[1], _mm256_madd_epi16(z.h[1], x))}};
}
LM__AVX2 LM__INLINE lm__pv lm__pv_dup(__m256i s) {
    return (lm__pv){{_mm256_permutevar8x32_epi32(s, _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3)),
                     _mm256_permutevar8x32_epi32(s, _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7))}};
}
/* [rows 0, 1, 4, 5 | 2, 3, 6, 7] after the pairwise adds -> rows in order */
LM__AVX2 LM__INLINE __m256i lm__pv_fold(lm__pv t) {
    return _mm256_permute4x64_epi64(_mm256_hadd_epi32(t.h[0], t.h[1]), 0xd8);
}
LM__AVX2 LM__INLINE lm__pv lm__pv_rowword(const char *p, int half) {
    const __m256i x = _mm256_loadu_si256((const __m256i *)p);
    const char b = (char)(2 * half);
    /* in each 128-bit lane: lanes 0-3 the lane's first row's word, 4-7 its second's */
    const __m256i ctl =
        _mm256_setr_epi8(b, b + 1, b, b + 1, b, b + 1, b, b + 1, b + 4, b + 5, b + 4, b + 5, b + 4,
                         b + 5, b + 4, b + 5, b + 8, b + 9, b + 8, b + 9, b + 8, b + 9, b + 8,
                         b + 9, b + 12, b + 13, b + 12, b + 13, b + 12, b + 13, b + 12, b + 13);
    return (lm__pv){
        {_mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm256_castsi256_si128(x)), ctl),
         _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm256_extracti128_si256(x, 1)), ctl)}};
}
LM__AVX2 LM__INLINE lm__pv lm__pv_q5(lm__pv nib, lm__pv w, lm__pv bits, short off) {
    lm__pv r;
    for (int i = 0; i < 2; i++) {
        const __m256i b = _mm256_cmpeq_epi16(_mm256_and_si256(w.h[i], bits.h[i]), bits.h[i]);
        r.h[i] =
            _mm256_sub_epi16(_mm256_or_si256(nib.h[i], _mm256_and_si256(b, _mm256_set1_epi16(16))),
                             _mm256_set1_epi16(off));
    }
    return r;
}
/* the prefill kernels' pairs in order: V[2q] = pair 2q of the 8 rows (even 32-bit lanes of
 * both halves), V[2q + 1] the odd ones */
LM__AVX2 LM__INLINE void lm__pv_pairs(lm__pv z, __m256i *V2) {
    const __m256 a = _mm256_castsi256_ps(z.h[0]), b = _mm256_castsi256_ps(z.h[1]);
    V2[0] = _mm256_permute4x64_epi64(
        _mm256_castps_si256(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))), 0xd8);
    V2[1] = _mm256_permute4x64_epi64(
        _mm256_castps_si256(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))), 0xd8);
}
LM__PV_OP2(lm__pv_and, _mm256_and_si256)
LM__PV_OP2(lm__pv_or, _mm256_or_si256)
LM__PV_OP2(lm__pv_sub16, _mm256_sub_epi16)
LM__PV_OP2(lm__pv_add32, _mm256_add_epi32)
LM__PV_OP2(lm__pv_mullo32, _mm256_mullo_epi32)
LM__PV_SHIFT(lm__pv_srli16, _mm256_srli_epi16)
LM__PV_SHIFT(lm__pv_slli16, _mm256_slli_epi16)
LM__PV_SHIFT(lm__pv_srai32, _mm256_srai_epi32)
#endif

LM__AVX2 LM__INLINE __m256 lm__p8_f16(const char *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

/* ---- legacy types: Z[q] = levels 4q .. 4q + 3 of every row ---- */

LM__AVX2 LM__INLINE void lm__p8_nib(const char *p, lm__pv *Z, short off) {
    const lm__pv m4 = lm__pv_set16(0x0f), o = lm__pv_set16(off);
    for (int c = 0; c < 4; c++) { /* a byte holds level j (low nibble) and j + 16 */
        const lm__pv v = lm__pv_u8(p + 32 * c);
        Z[c] = lm__pv_sub16(lm__pv_and(v, m4), o);
        Z[c + 4] = lm__pv_sub16(lm__pv_srli16(v, 4), o);
    }
}
LM__AVX2 LM__INLINE void lm__p8_q4_0(const char *p, lm__pv *Z) {
    lm__p8_nib(p, Z, 8);
}
LM__AVX2 LM__INLINE void lm__p8_q4_1(const char *p, lm__pv *Z) {
    lm__p8_nib(p, Z, 0);
}
/* q5: piece 0 is qh (row r's 32 high bits in dword r), then the nibbles as q4's. Level
 * 4c + t of row r (lane 4r + t of Z[c]) takes bit 4c + t of qh's low word, Z[c + 4] bit
 * 4c + t of its high word; q5_0 then takes 16 off */
LM__AVX2 LM__INLINE void lm__p8_q5(const char *p, lm__pv *Z, short off) {
    const lm__pv wl = lm__pv_rowword(p, 0), wh = lm__pv_rowword(p, 1), b0 = lm__pv_bits0();
    const lm__pv m4 = lm__pv_set16(0x0f);
    for (int c = 0; c < 4; c++) {
        const lm__pv v = lm__pv_u8(p + 32 + 32 * c), bits = lm__pv_slli16(b0, 4 * c);
        Z[c] = lm__pv_q5(lm__pv_and(v, m4), wl, bits, off);
        Z[c + 4] = lm__pv_q5(lm__pv_srli16(v, 4), wh, bits, off);
    }
}
LM__AVX2 LM__INLINE void lm__p8_q5_0(const char *p, lm__pv *Z) {
    lm__p8_q5(p, Z, 16);
}
LM__AVX2 LM__INLINE void lm__p8_q5_1(const char *p, lm__pv *Z) {
    lm__p8_q5(p, Z, 0);
}
LM__AVX2 LM__INLINE void lm__p8_q8_0(const char *p, lm__pv *Z) {
    for (int c = 0; c < 8; c++) Z[c] = lm__pv_s8(p + 32 * c);
}

/* a full group (nr = 8) of the legacy types: up to LM__P8L_DIRECT columns LM__P8L_STEP at a
 * time from registers, more through the prefill kernels' pairs (AVX2's 16 registers hold the
 * accumulators of fewer columns) */
#ifndef LM__P8L_STEP
#ifdef LM__VNNI
#define LM__P8L_STEP   4
#define LM__P8L_DIRECT 4
#else /* AVX2 on Zen 4, columns 3 / 4 / 8 against interleaved: about equal / equal-7 % / -15 % */
#define LM__P8L_STEP   3
#define LM__P8L_DIRECT 3
#endif
#endif
#define LM__P8_DISPATCH(name)                                                                      \
    LM__AVX2 static void name##_p8(const void *w, size_t ws, size_t wb, int nr, const void *va,    \
                                   size_t as, int nc, int64_t nb, float *out, size_t os) {         \
        (void)ws, (void)nr; /* a full group, always */                                             \
        if (nc > LM__P8L_DIRECT) {                                                                 \
            name##_p8wide(w, wb, va, as, nc, nb, out, os);                                         \
            return;                                                                                \
        }                                                                                          \
        for (int c0 = 0; c0 < nc; c0 += LM__P8L_STEP) {                                            \
            const char *vc = (const char *)va + (size_t)c0 * as;                                   \
            float *oc = out + (size_t)c0 * os;                                                     \
            switch (nc - c0 < LM__P8L_STEP ? nc - c0 : LM__P8L_STEP) {                             \
            case 1:                                                                                \
                name##_p8n(w, wb, vc, as, nb, oc, os, 1);                                          \
                break;                                                                             \
            case 2:                                                                                \
                name##_p8n(w, wb, vc, as, nb, oc, os, 2);                                          \
                break;                                                                             \
            case 3:                                                                                \
                name##_p8n(w, wb, vc, as, nb, oc, os, 3);                                          \
                break;                                                                             \
            default:                                                                               \
                name##_p8n(w, wb, vc, as, nb, oc, os, 4);                                          \
                break;                                                                             \
            }                                                                                      \
        }                                                                                          \
    }

/* NH: f16 fields per block (d, m), so the levels start at 16 NH bytes. The float terms are
 * the row kernels' (LM__LEG_TERMS), in the same order. */
#define LM__QDOT_P8_X(name, LEVELS, NH, HAS_MIN)                                                   \
    LM__AVX2 LM__INLINE void name##_p8n(const char *w, size_t wb, const char *va, size_t as,       \
                                        int64_t nb, float *out, size_t os, const int NC) {         \
        __m256 acc[4];                                                                             \
        for (int c = 0; c < NC; c++) acc[c] = _mm256_setzero_ps();                                 \
        lm__pf pf = lm__pf_init(w, wb / LM__MR, wb, nb);                                           \
        for (int64_t b = 0; b < nb; b++) {                                                         \
            lm__pf_step(&pf);                                                                      \
            const char *g = w + (size_t)b * wb;                                                    \
            lm__pv Z[8];                                                                           \
            LEVELS(g + 16 * (NH), Z);                                                              \
            const lm__q16a *A[4];                                                                  \
            lm__pv S[2][4]; /* two chains hide the dot's latency */                                \
            for (int c = 0; c < NC; c++) {                                                         \
                A[c] = (const lm__q16a *)(va + (size_t)c * as) + b;                                \
                S[0][c] = S[1][c] = lm__pv_zero();                                                 \
            }                                                                                      \
            for (int q = 0; q < 8; q++)                                                            \
                for (int c = 0; c < NC; c++)                                                       \
                    S[q & 1][c] = lm__pv_dp(S[q & 1][c], Z[q], A[c]->qs + 4 * q);                  \
            const __m256 dw = lm__p8_f16(g), m = (NH) > 1 ? lm__p8_f16(g + 16) : dw;               \
            for (int c = 0; c < NC; c++) {                                                         \
                const __m256i isum = lm__pv_fold(lm__pv_add32(S[0][c], S[1][c]));                  \
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
            lm__pv Z[8];                                                                           \
            LEVELS(g + 16 * (NH), Z);                                                              \
            __m256i V[16] __attribute__((aligned(64)));                                            \
            for (int q = 0; q < 8; q++) lm__pv_pairs(Z[q], V + 2 * q);                             \
            const __m256 dw = lm__p8_f16(g), m = (NH) > 1 ? lm__p8_f16(g + 16) : dw;               \
            name##_cols(V, va, as, nc, b, dw, m, acc);                                             \
        }                                                                                          \
        for (int c = 0; c < nc; c++) _mm256_storeu_ps(out + (size_t)c * os, acc[c]);               \
    }                                                                                              \
    LM__P8_DISPATCH(name)

LM__QDOT_P8_X(lm__qdot_q4_0_x, lm__p8_q4_0, 1, 0)
LM__QDOT_P8_X(lm__qdot_q4_1_x, lm__p8_q4_1, 2, 1)
LM__QDOT_P8_X(lm__qdot_q5_0_x, lm__p8_q5_0, 1, 0)
LM__QDOT_P8_X(lm__qdot_q5_1_x, lm__p8_q5_1, 2, 1)
LM__QDOT_P8_X(lm__qdot_q8_0_x, lm__p8_q8_0, 1, 0)

/* ---- k-quants. A sub-block's (or chunk's) pair sums are scaled per row (lanes 2r, 2r + 1:
 * lm__pv_dup) and, at each type's flush bound, split into 16-bit HI/LO halves, as the row
 * layout's kernels do, so isum, msum and the terms are the same numbers. ---- */

/* HI/LO += P's halves */
LM__AVX2 LM__INLINE void lm__p8k_flush(lm__pv P, lm__pv *H, lm__pv *L) {
    *H = lm__pv_add32(*H, lm__pv_srai32(P, 16));
    *L = lm__pv_add32(*L, lm__pv_and(P, lm__pv_set32(0xffff)));
}

/* q4_K/q5_K: sc[h], mn[h]: byte j of lane r = row r's scale (min) of sub-block 4h + j, from
 * the scales' three words (u0, u1, u2 of the 8 rows, at 32) as lm__k4_scales8 */
LM__AVX2 LM__INLINE void lm__p8k4_scales(const char *g, __m256i *sc, __m256i *mn) {
    const __m256i u0 = _mm256_loadu_si256((const __m256i *)(g + 32)),
                  u1 = _mm256_loadu_si256((const __m256i *)(g + 64)),
                  u2 = _mm256_loadu_si256((const __m256i *)(g + 96));
    const __m256i k63 = _mm256_set1_epi32(0x3f3f3f3f), k15 = _mm256_set1_epi32(0x0f0f0f0f),
                  k3 = _mm256_set1_epi32(0x03030303);
    sc[0] = _mm256_and_si256(u0, k63);
    sc[1] = _mm256_or_si256(_mm256_and_si256(u2, k15),
                            _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(u0, 6), k3), 4));
    mn[0] = _mm256_and_si256(u1, k63);
    mn[1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(u2, 4), k15),
                            _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(u1, 6), k3), 4));
}
/* byte j of each lane of s as an int32 */
LM__AVX2 LM__INLINE __m256i lm__p8k4_byte(__m256i s, int j) {
    return _mm256_and_si256(_mm256_srli_epi32(s, 8 * j), _mm256_set1_epi32(0xff));
}

/* q4_K (QH 0) and q5_K (QH: the byte offset of its qh pieces, whose piece q holds the fifth
 * bits of qs piece 8p + q: bit 2p for the low nibbles, 2p + 1 for the high). Qs piece c (at
 * QS) holds elements 64p + 4q .. + 3 in its low nibbles (sub-block 2p) and 64p + 32 + 4q ..
 * in its high (2p + 1), p = c / 8, q = c % 8. The lanes flush every FLUSH_P pairs of
 * sub-blocks: 2 for q4_K (32 pairs a lane), 1 for q5_K (16). */
#define LM__P8K45_N(name, QS, QH, FLUSH_P)                                                         \
    LM__AVX2 LM__INLINE void name(const char *w, size_t wb, const char *va, size_t as, int64_t nb, \
                                  float *out, size_t os, const int NC) {                           \
        const lm__pv m4 = lm__pv_set16(0x0f), m10 = lm__pv_set16(0x10);                            \
        __m256 acc[4];                                                                             \
        for (int c = 0; c < NC; c++) acc[c] = _mm256_setzero_ps();                                 \
        lm__pf pf = lm__pf_init(w, wb / LM__MR, wb, nb);                                           \
        for (int64_t b = 0; b < nb; b++) {                                                         \
            lm__pf_step(&pf);                                                                      \
            const char *g = w + (size_t)b * wb;                                                    \
            const lm__q16k *A[4];                                                                  \
            lm__pv H[4], L[4], P[4];                                                               \
            for (int c = 0; c < NC; c++) {                                                         \
                A[c] = (const lm__q16k *)(va + (size_t)c * as) + b;                                \
                H[c] = L[c] = P[c] = lm__pv_zero();                                                \
            }                                                                                      \
            __m256i sc[2], mn[2];                                                                  \
            lm__p8k4_scales(g, sc, mn);                                                            \
            for (int p = 0; p < 4; p++) { /* sub-blocks 2p (low nibbles), 2p + 1 (high) */         \
                lm__pv S[2][4];                                                                    \
                for (int c = 0; c < NC; c++) S[0][c] = S[1][c] = lm__pv_zero();                    \
                for (int q = 0; q < 8; q++) {                                                      \
                    const lm__pv v = lm__pv_u8(g + (QS) + 32 * (8 * p + q));                       \
                    lm__pv lo = lm__pv_and(v, m4), hi = lm__pv_srli16(v, 4);                       \
                    if (QH) { /* bits 2p and 2p + 1 to bit 4 */                                    \
                        const lm__pv qv = lm__pv_u8(g + (QH) + 32 * q);                            \
                        const lm__pv bl = p < 3 ? lm__pv_slli16(qv, 4 - 2 * p)                     \
                                                : lm__pv_srli16(qv, 2),                            \
                                     bh = p < 2 ? lm__pv_slli16(qv, 3 - 2 * p)                     \
                                                : lm__pv_srli16(qv, 2 * p - 3);                    \
                        lo = lm__pv_or(lo, lm__pv_and(bl, m10));                                   \
                        hi = lm__pv_or(hi, lm__pv_and(bh, m10));                                   \
                    }                                                                              \
                    for (int c = 0; c < NC; c++) {                                                 \
                        S[0][c] = lm__pv_dp(S[0][c], lo, A[c]->qs + 64 * p + 4 * q);               \
                        S[1][c] = lm__pv_dp(S[1][c], hi, A[c]->qs + 64 * p + 32 + 4 * q);          \
                    }                                                                              \
                }                                                                                  \
                /* sub-blocks 2p, 2p + 1: bytes 2p % 4, 2p % 4 + 1 of sc[p / 2] */                 \
                const lm__pv s0 = lm__pv_dup(lm__p8k4_byte(sc[p / 2], 2 * p % 4)),                 \
                             s1 = lm__pv_dup(lm__p8k4_byte(sc[p / 2], 2 * p % 4 + 1));             \
                for (int c = 0; c < NC; c++)                                                       \
                    P[c] = lm__pv_add32(P[c], lm__pv_add32(lm__pv_mullo32(S[0][c], s0),            \
                                                           lm__pv_mullo32(S[1][c], s1)));          \
                if ((p + 1) % (FLUSH_P) != 0) continue;                                            \
                for (int c = 0; c < NC; c++) {                                                     \
                    lm__p8k_flush(P[c], &H[c], &L[c]);                                             \
                    P[c] = lm__pv_zero();                                                          \
                }                                                                                  \
            }                                                                                      \
            const __m256 dw = lm__p8_f16(g), dmin = lm__p8_f16(g + 16);                            \
            for (int c = 0; c < NC; c++) {                                                         \
                /* msum: sub-block j's min times the column's sum over it (exact, < 2^30) */       \
                __m256i ms = _mm256_setzero_si256();                                               \
                for (int j = 0; j < 8; j++)                                                        \
                    ms = _mm256_add_epi32(                                                         \
                        ms, _mm256_mullo_epi32(                                                    \
                                lm__p8k4_byte(mn[j / 4], j % 4),                                   \
                                _mm256_set1_epi32(A[c]->bsums[2 * j] + A[c]->bsums[2 * j + 1])));  \
                __m256 t =                                                                         \
                    _mm256_mul_ps(dw, lm__i64x8_to_f32(lm__pv_fold(H[c]), lm__pv_fold(L[c])));     \
                t = _mm256_sub_ps(t, _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(ms)));                 \
                acc[c] = _mm256_add_ps(acc[c], _mm256_mul_ps(_mm256_set1_ps(A[c]->d), t));         \
            }                                                                                      \
        }                                                                                          \
        for (int c = 0; c < NC; c++) _mm256_storeu_ps(out + (size_t)c * os, acc[c]);               \
    }
LM__P8K45_N(lm__p8k4_n, 128, 0, 2)
LM__P8K45_N(lm__p8k5_n, 384, 128, 1)

/* ---- q2_K and q3_K. q2_K: d, dmin (8 rows each), then the pieces: scales (4: byte t = chunk
 * t's scale in its low nibble, min in its high) and qs (16). q3_K: d, then hmask (8), qs (16)
 * and its 12 scale bytes (3). Qs piece c (h = c / 8, l = 4 (c % 8)) holds in bits 2k the
 * elements 128h + 32k + l .. + 3 (16-chunk 8h + 2k + l / 16); q3_K's third bit of them is bit
 * 4h + k of hmask piece c % 8, its level that minus 4, its scales 6-bit minus 32. The sums
 * stay inside int32 (|isum| <= 2^30), so the lanes need no flush. ---- */

/* q3_K's scale of chunk t (lm_q3_K_scale - 32) for the 8 rows: p[j] = scale bytes 4j .. */
LM__AVX2 LM__INLINE __m256i lm__p8k3_scale(const __m256i *p, int t) {
    const __m256i lo = _mm256_and_si256(_mm256_srli_epi32(p[t % 8 / 4], 8 * (t % 4) + 4 * (t / 8)),
                                        _mm256_set1_epi32(0x0f));
    const __m256i hi =
        _mm256_and_si256(_mm256_srli_epi32(p[2], 8 * (t & 3) + 2 * (t >> 2)), _mm256_set1_epi32(3));
    return _mm256_sub_epi32(_mm256_or_si256(lo, _mm256_slli_epi32(hi, 4)), _mm256_set1_epi32(32));
}

/* Q3: q3_K (hmask pieces at 16); QS, SC: byte offsets of the qs and scale pieces */
#define LM__P8K23_N(name, Q3, QS, SC)                                                              \
    LM__AVX2 LM__INLINE void name(const char *w, size_t wb, const char *va, size_t as, int64_t nb, \
                                  float *out, size_t os, const int NC) {                           \
        const lm__pv m3 = lm__pv_set16(3), m4 = lm__pv_set16(4);                                   \
        const __m256i m15 = _mm256_set1_epi32(0x0f);                                               \
        __m256 acc[4];                                                                             \
        for (int c = 0; c < NC; c++) acc[c] = _mm256_setzero_ps();                                 \
        lm__pf pf = lm__pf_init(w, wb / LM__MR, wb, nb);                                           \
        for (int64_t b = 0; b < nb; b++) {                                                         \
            lm__pf_step(&pf);                                                                      \
            const char *g = w + (size_t)b * wb;                                                    \
            const lm__q16k *A[4];                                                                  \
            lm__pv P[4];                                                                           \
            for (int c = 0; c < NC; c++) {                                                         \
                A[c] = (const lm__q16k *)(va + (size_t)c * as) + b;                                \
                P[c] = lm__pv_zero();                                                              \
            }                                                                                      \
            __m256i sw[4]; /* the scale pieces: byte u of lane r = row r's byte 4j + u */          \
            for (int j = 0; j < (Q3 ? 3 : 4); j++)                                                 \
                sw[j] = _mm256_loadu_si256((const __m256i *)(g + (SC) + 32 * j));                  \
            for (int h = 0; h < 2; h++)                                                            \
                for (int m = 0; m < 2; m++) { /* chunks 8h + 2k + m, k = 0..3 */                   \
                    lm__pv S[4][4];                                                                \
                    for (int k = 0; k < 4; k++)                                                    \
                        for (int c = 0; c < NC; c++) S[k][c] = lm__pv_zero();                      \
                    for (int i = 0; i < 4; i++) {                                                  \
                        const lm__pv v = lm__pv_u8(g + (QS) + 32 * (8 * h + 4 * m + i));           \
                        const lm__pv hv = Q3 ? lm__pv_u8(g + 16 + 32 * (4 * m + i)) : v;           \
                        for (int k = 0; k < 4; k++) {                                              \
                            lm__pv z = lm__pv_and(lm__pv_srli16(v, 2 * k), m3);                    \
                            if (Q3) { /* bit 4h + k of hmask to bit 2, minus 4 */                  \
                                const int sh = 4 * h + k;                                          \
                                const lm__pv hb = sh <= 2 ? lm__pv_slli16(hv, 2 - sh)              \
                                                          : lm__pv_srli16(hv, sh - 2);             \
                                z = lm__pv_sub16(lm__pv_or(z, lm__pv_and(hb, m4)), m4);            \
                            }                                                                      \
                            for (int c = 0; c < NC; c++)                                           \
                                S[k][c] = lm__pv_dp(S[k][c], z,                                    \
                                                    A[c]->qs + 128 * h + 32 * k + 16 * m + 4 * i); \
                        }                                                                          \
                    }                                                                              \
                    for (int k = 0; k < 4; k++) {                                                  \
                        const int t = 8 * h + 2 * k + m;                                           \
                        const lm__pv sd =                                                          \
                            lm__pv_dup(Q3 ? lm__p8k3_scale(sw, t)                                  \
                                          : _mm256_and_si256(                                      \
                                                _mm256_srli_epi32(sw[t / 4], 8 * (t % 4)), m15));  \
                        for (int c = 0; c < NC; c++)                                               \
                            P[c] = lm__pv_add32(P[c], lm__pv_mullo32(S[k][c], sd));                \
                    }                                                                              \
                }                                                                                  \
            const __m256 dw = lm__p8_f16(g), dmin = Q3 ? dw : lm__p8_f16(g + 16);                  \
            for (int c = 0; c < NC; c++) {                                                         \
                const __m256i isum = lm__pv_fold(P[c]);                                            \
                __m256 x = _mm256_mul_ps(                                                          \
                    dw, lm__i64x8_to_f32(_mm256_srai_epi32(isum, 16),                              \
                                         _mm256_and_si256(isum, _mm256_set1_epi32(0xffff))));      \
                if (!Q3) { /* chunk t's min times its activation sum */                            \
                    __m256i ms = _mm256_setzero_si256();                                           \
                    for (int t = 0; t < 16; t++)                                                   \
                        ms = _mm256_add_epi32(                                                     \
                            ms, _mm256_mullo_epi32(                                                \
                                    _mm256_and_si256(                                              \
                                        _mm256_srli_epi32(sw[t / 4], 8 * (t % 4) + 4), m15),       \
                                    _mm256_set1_epi32(A[c]->bsums[t])));                           \
                    x = _mm256_sub_ps(x, _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(ms)));             \
                }                                                                                  \
                acc[c] = _mm256_add_ps(acc[c], _mm256_mul_ps(_mm256_set1_ps(A[c]->d), x));         \
            }                                                                                      \
        }                                                                                          \
        for (int c = 0; c < NC; c++) _mm256_storeu_ps(out + (size_t)c * os, acc[c]);               \
    }
LM__P8K23_N(lm__p8k2_n, 0, 32 + 32 * 4, 32)
LM__P8K23_N(lm__p8k3_n, 1, 16 + 32 * 8, 16 + 32 * 24)

/* ---- q6_K: d (8 rows), then the pieces: ql (32), qh (16), scales (4). Ql piece c of half
 * h = c / 16 holds, for cc = c % 16, elements 128h + 4cc .. + 3 in its low nibbles (16-chunk
 * 8h + cc / 4) and 128h + 64 + 4cc .. in its high (8h + 4 + cc / 4); their two high bits are
 * in qh piece 8h + cc % 8 at bit 2 (cc / 8) and 4 + 2 (cc / 8). The lanes flush every 2
 * chunks (8 pairs a lane: the q6_K bound). ---- */

#define LM__P8K6_QL 16 /* byte offsets in a group block */
#define LM__P8K6_QH (16 + 32 * 32)
#define LM__P8K6_SC (16 + 32 * 48)

/* row r's int8 scale of chunk t, in lanes 2r and 2r + 1 */
LM__AVX2 LM__INLINE lm__pv lm__p8k6_scale(const char *g, int t) {
    const __m256i x = _mm256_loadu_si256((const __m256i *)(g + LM__P8K6_SC + 32 * (t / 4)));
    return lm__pv_dup(_mm256_srai_epi32(_mm256_slli_epi32(x, 24 - 8 * (t % 4)), 24));
}

LM__AVX2 LM__INLINE void lm__p8k6_n(const char *w, size_t wb, const char *va, size_t as, int64_t nb,
                                    float *out, size_t os, const int NC) {
    const lm__pv m4 = lm__pv_set16(0x0f), m30 = lm__pv_set16(0x30), k32 = lm__pv_set16(32);
    __m256 acc[4];
    for (int c = 0; c < NC; c++) acc[c] = _mm256_setzero_ps();
    lm__pf pf = lm__pf_init(w, wb / LM__MR, wb, nb);
    for (int64_t b = 0; b < nb; b++) {
        lm__pf_step(&pf);
        const char *g = w + (size_t)b * wb;
        const lm__q16k *A[4];
        lm__pv H[4], L[4];
        for (int c = 0; c < NC; c++) {
            A[c] = (const lm__q16k *)(va + (size_t)c * as) + b;
            H[c] = L[c] = lm__pv_zero();
        }
        for (int h = 0; h < 2; h++)
            for (int m = 0; m < 4; m++) { /* chunks 8h + m (low nibbles), 8h + 4 + m (high) */
                lm__pv S[2][4];
                for (int c = 0; c < NC; c++) S[0][c] = S[1][c] = lm__pv_zero();
                for (int cc = 4 * m; cc < 4 * m + 4; cc++) {
                    const lm__pv v = lm__pv_u8(g + LM__P8K6_QL + 32 * (16 * h + cc)),
                                 qv = lm__pv_u8(g + LM__P8K6_QH + 32 * (8 * h + cc % 8));
                    /* the two high bits at bit 4: from bit 0 or 2 (low), 4 or 6 (high) */
                    const lm__pv bl = lm__pv_and(
                                     cc < 8 ? lm__pv_slli16(qv, 4) : lm__pv_slli16(qv, 2), m30),
                                 bh = lm__pv_and(cc < 8 ? qv : lm__pv_srli16(qv, 2), m30);
                    const lm__pv lo = lm__pv_sub16(lm__pv_or(lm__pv_and(v, m4), bl), k32),
                                 hi = lm__pv_sub16(lm__pv_or(lm__pv_srli16(v, 4), bh), k32);
                    for (int c = 0; c < NC; c++) {
                        S[0][c] = lm__pv_dp(S[0][c], lo, A[c]->qs + 128 * h + 4 * cc);
                        S[1][c] = lm__pv_dp(S[1][c], hi, A[c]->qs + 128 * h + 64 + 4 * cc);
                    }
                }
                const lm__pv s0 = lm__p8k6_scale(g, 8 * h + m),
                             s1 = lm__p8k6_scale(g, 8 * h + 4 + m);
                for (int c = 0; c < NC; c++)
                    lm__p8k_flush(
                        lm__pv_add32(lm__pv_mullo32(S[0][c], s0), lm__pv_mullo32(S[1][c], s1)),
                        &H[c], &L[c]);
            }
        const __m256 dw = lm__p8_f16(g);
        for (int c = 0; c < NC; c++) {
            const __m256 t =
                _mm256_mul_ps(dw, lm__i64x8_to_f32(lm__pv_fold(H[c]), lm__pv_fold(L[c])));
            acc[c] = _mm256_add_ps(acc[c], _mm256_mul_ps(_mm256_set1_ps(A[c]->d), t));
        }
    }
    for (int c = 0; c < NC; c++) _mm256_storeu_ps(out + (size_t)c * os, acc[c]);
}

/* A k-quant group block back into 8 blocks of bs bytes (the prefill kernels): the nh f16
 * fields to byte hoff of each block, the np pieces to loff, 8 at a time by 8x8 transposes */
LM__AVX2 LM__INLINE void lm__p8_unpack_x(const char *g, char *blk, size_t bs, int nh, size_t hoff,
                                         size_t loff, int np) {
    for (int r = 0; r < LM__MR; r++)
        for (int h = 0; h < nh; h++) memcpy(blk + r * bs + hoff + 2 * h, g + (8 * h + r) * 2, 2);
    const char *pc = g + 16 * nh;
    int c0 = 0;
    for (; c0 + 8 <= np; c0 += 8) {
        __m256i X[8], T[8] __attribute__((aligned(32)));
        for (int i = 0; i < 8; i++)
            X[i] = _mm256_loadu_si256((const __m256i *)(pc + 32 * (c0 + i)));
        lm__tr8x8s(X, 1, T); /* T[r]: row r's pieces c0 .. c0 + 7 */
        for (int r = 0; r < LM__MR; r++)
            _mm256_storeu_si256((__m256i *)(blk + r * bs + loff + 4 * c0), T[r]);
    }
    for (; c0 < np; c0++)
        for (int r = 0; r < LM__MR; r++)
            memcpy(blk + r * bs + loff + 4 * c0, pc + 32 * c0 + 4 * r, 4);
}

/* The k-quant dispatch: up to LM__P8K_DIRECT columns LM__P8K_STEP at a time from the packed
 * bytes (the group stays in L1 between them), more through the transposed kernels. AVX-512:
 * 16 columns 4 at a time are per column as fast as the transposed kernels; AVX2's 16
 * registers hold the accumulators of fewer columns. */
#ifndef LM__P8K_STEP
#ifdef LM__VNNI
#define LM__P8K_STEP   4
#define LM__P8K_DIRECT 16
#else /* beyond 4 columns the transposed kernels win on AVX2 (8 columns: 3-8 % on Zen 4) */
#define LM__P8K_STEP   2
#define LM__P8K_DIRECT 4
#endif
#endif
#define LM__P8K_X(name, N_FN, blk_t, NH, HOFF, LOFF, NP)                                           \
    LM__AVX2 static void name##_p8(const void *vw, size_t ws, size_t wb, int nr, const void *va,   \
                                   size_t as, int nc, int64_t nb, float *out, size_t os) {         \
        const char *w = vw;                                                                        \
        (void)ws, (void)nr; /* a full group, always */                                             \
        for (int c0 = 0; nc <= LM__P8K_DIRECT && c0 < nc; c0 += LM__P8K_STEP) {                    \
            const char *vc = (const char *)va + (size_t)c0 * as;                                   \
            float *oc = out + (size_t)c0 * os;                                                     \
            switch (nc - c0 < LM__P8K_STEP ? nc - c0 : LM__P8K_STEP) {                             \
            case 1:                                                                                \
                N_FN(w, wb, vc, as, nb, oc, os, 1);                                                \
                break;                                                                             \
            case 2:                                                                                \
                N_FN(w, wb, vc, as, nb, oc, os, 2);                                                \
                break;                                                                             \
            case 3:                                                                                \
                N_FN(w, wb, vc, as, nb, oc, os, 3);                                                \
                break;                                                                             \
            default:                                                                               \
                N_FN(w, wb, vc, as, nb, oc, os, 4);                                                \
                break;                                                                             \
            }                                                                                      \
        }                                                                                          \
        if (nc <= LM__P8K_DIRECT) return;                                                          \
        char blk[LM__MR * sizeof(blk_t)];                                                          \
        const char *rows[LM__MR];                                                                  \
        for (int r = 0; r < LM__MR; r++) rows[r] = blk + r * sizeof(blk_t);                        \
        __m256 acc[LM__NC];                                                                        \
        for (int c = 0; c < nc; c++) acc[c] = _mm256_setzero_ps();                                 \
        lm__pf pf = lm__pf_init(w, wb / LM__MR, wb, nb);                                           \
        for (int64_t b = 0; b < nb; b++) {                                                         \
            lm__pf_step(&pf);                                                                      \
            lm__p8_unpack_x(w + (size_t)b * wb, blk, sizeof(blk_t), NH, HOFF, LOFF, NP);           \
            name##_wblock(rows, 0, va, as, b, nc, acc);                                            \
        }                                                                                          \
        for (int c = 0; c < nc; c++) _mm256_storeu_ps(out + (size_t)c * os, acc[c]);               \
    }

LM__P8K_X(lm__qdot_q2_K_x, lm__p8k2_n, lm_block_q2_K, 2, 80, 0, 20)
LM__P8K_X(lm__qdot_q3_K_x, lm__p8k3_n, lm_block_q3_K, 1, 108, 0, 27)
LM__P8K_X(lm__qdot_q4_K_x, lm__p8k4_n, lm_block_q4_K, 2, 0, 4, 35)
LM__P8K_X(lm__qdot_q5_K_x, lm__p8k5_n, lm_block_q5_K, 2, 0, 4, 43)
LM__P8K_X(lm__qdot_q6_K_x, lm__p8k6_n, lm_block_q6_K, 1, 208, 0, 52)

static void lm__p8_kernels(lm__cpu_kernels *k) {
    k->qdot_p8[LM_TYPE_Q4_0] = lm__qdot_q4_0_x_p8;
    k->qdot_p8[LM_TYPE_Q4_1] = lm__qdot_q4_1_x_p8;
    k->qdot_p8[LM_TYPE_Q5_0] = lm__qdot_q5_0_x_p8;
    k->qdot_p8[LM_TYPE_Q5_1] = lm__qdot_q5_1_x_p8;
    k->qdot_p8[LM_TYPE_Q8_0] = lm__qdot_q8_0_x_p8;
    k->qdot_p8[LM_TYPE_Q2_K] = lm__qdot_q2_K_x_p8;
    k->qdot_p8[LM_TYPE_Q3_K] = lm__qdot_q3_K_x_p8;
    k->qdot_p8[LM_TYPE_Q4_K] = lm__qdot_q4_K_x_p8;
    k->qdot_p8[LM_TYPE_Q5_K] = lm__qdot_q5_K_x_p8;
    k->qdot_p8[LM_TYPE_Q6_K] = lm__qdot_q6_K_x_p8;
}

#else
typedef int lm__cpu_dot_packed_unused; /* compiled on its own: nothing here */
#endif
