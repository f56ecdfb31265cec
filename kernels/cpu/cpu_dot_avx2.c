/* The AVX2 (+ F16C) kernels: the numbers of cpu_dot_scalar.c, bit for bit, faster.
 *
 * Quantized dot products take 8 weight rows and up to 128 activation columns per call (in
 * groups of 4) and keep one output per SIMD lane: for each block, every row's levels are
 * unpacked once and multiplied with every column (pmaddwd: 16-bit products summed in pairs
 * into 8 int32 lanes), a transposing add tree turns the 8 rows' lane vectors into one
 * vector of 8 exact block sums, and the block's float term (scalar formula, each operation rounded
 * on its own) is evaluated for the 8 rows at once and added to 8 running sums. So the float work is
 * vector work and nothing is summed horizontally per output, while each output still gets exactly
 * the scalar sequence of roundings.
 *
 * Integer ranges (|activation| <= 32767): a legacy lane holds 4 products of an int8 level,
 * < 2^24. A k-quant lane holds the products of (scale * level), which fits int16, with
 * activations: 32 per lane over a block, < 2^31 for every type but q6_K (|scale * level|
 * <= 4096), whose two half blocks are kept apart (16 products each, < 2^31). The block sum
 * (up to ~2^34) is added as 16-bit halves and converted through double, exactly, then
 * rounded once to float as C's (float)int64 does.
 *
 * The kernels for weights in the packed layout (LM_LAYOUT_CPU_P8) are in cpu_dot_packed.c,
 * included near the end of this file for both levels. */
#include "cpu_internal.h"

#include "../common/lm_quant_math.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(LM_NO_AVX2)
#include <immintrin.h>
#include <math.h>
#include <string.h>

/* cpu_dot_avx512.c compiles this file again with LM__VNNI: the same kernels with AVX-512 VL
 * (32 vector registers) and VNNI's vpdpwssd, which fuses each pmaddwd with its add */
#ifdef LM__VNNI
#define LM__AVX2   __attribute__((target("avx2,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define LM__KTABLE lm__cpu_kernels_avx512
#define LM__KLEVEL LM__CPU_AVX512
/* acc + a0 b0 + a1 b1 per int32 lane, wrapping: add(acc, madd(a, b)) exactly, as no lane's
 * pair is (-32768, -32768) twice (activations are within +-32767) */
#define LM__DPWSSD(acc, a, b) _mm256_dpwssd_epi32(acc, a, b)
#else
#define LM__AVX2              __attribute__((target("avx2,f16c")))
#define LM__KTABLE            lm__cpu_kernels_avx2
#define LM__KLEVEL            LM__CPU_AVX2
#define LM__DPWSSD(acc, a, b) _mm256_add_epi32(acc, _mm256_madd_epi16(a, b))
#endif
#define LM__INLINE static inline __attribute__((always_inline))

/* ---- helpers ---- */

/* Sums of 8 int32 lanes for 8 rows, in three steps so that few vectors stay live:
 * lm__hpair(p0, p1) = [p0 0+2, p1 0+2, p0 1+3, p1 1+3 | the same for lanes 4-7], then
 * lm__hquad(two pairs) = [p0, p1, p2, p3 sums of lanes 0-3 | of lanes 4-7], then
 * lm__hfin(two quads) = [the 8 sums]. Unpacks and adds: one micro-op each. */
LM__AVX2 LM__INLINE __m256i lm__hpair(__m256i p0, __m256i p1) {
    return _mm256_add_epi32(_mm256_unpacklo_epi32(p0, p1), _mm256_unpackhi_epi32(p0, p1));
}
LM__AVX2 LM__INLINE __m256i lm__hquad(__m256i t0, __m256i t1) {
    return _mm256_add_epi32(_mm256_unpacklo_epi64(t0, t1), _mm256_unpackhi_epi64(t0, t1));
}
LM__AVX2 LM__INLINE __m256i lm__hfin(__m256i u0, __m256i u1) {
    return _mm256_add_epi32(_mm256_permute2x128_si256(u0, u1, 0x20),
                            _mm256_permute2x128_si256(u0, u1, 0x31));
}
/* r[i] = sum of the 8 int32 lanes of p[i] */
LM__AVX2 LM__INLINE __m256i lm__hsum8x8(const __m256i *p) {
    return lm__hfin(lm__hquad(lm__hpair(p[0], p[1]), lm__hpair(p[2], p[3])),
                    lm__hquad(lm__hpair(p[4], p[5]), lm__hpair(p[6], p[7])));
}

/* The two f16 at byte offset off of 8 rows' blocks, as floats: the first half-word into
 * *lo, the second into *hi. Plain loads: a gather costs more on several CPUs. */
LM__AVX2 LM__INLINE void lm__f16pair8(const char *const *rows, size_t off, __m256 *lo, __m256 *hi) {
    int v[LM__MR];
    for (int r = 0; r < LM__MR; r++) memcpy(&v[r], rows[r] + off, 4);
    const __m256i g = _mm256_loadu_si256((const __m256i *)v);
    const __m256i sh = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15, 0, 1,
                                        4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
    /* qwords after the shuffle: lo 0-3, hi 0-3, lo 4-7, hi 4-7 */
    const __m256i t = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(g, sh), 0xd8);
    *lo = _mm256_cvtph_ps(_mm256_castsi256_si128(t));
    *hi = _mm256_cvtph_ps(_mm256_extracti128_si256(t, 1));
}

/* Row pointers for nr rows, the missing ones repeating the last. */
LM__INLINE void lm__rows8(const char *w, size_t ws, int nr, const char **rows) {
    for (int r = 0; r < LM__MR; r++) rows[r] = w + (size_t)(r < nr ? r : nr - 1) * ws;
}

LM__AVX2 LM__INLINE void lm__store8(float *out, __m256 v, int nr) {
    if (nr == LM__MR) {
        _mm256_storeu_ps(out, v);
        return;
    }
    float t[LM__MR];
    _mm256_storeu_ps(t, v);
    memcpy(out, t, (size_t)nr * sizeof(float));
}

/* Decode streams each weight byte once, from memory, in row groups of a few KB: too short
 * for the hardware prefetchers to ramp up on the group's 8 interleaved row streams. So while
 * a group is computed, the next group (contiguous, LM__MR * ws bytes on) is prefetched,
 * spread evenly over the block iterations. */
typedef struct {
    const char *next, *end; /* the next line to prefetch; the end of the prefetched bytes */
    size_t step;
} lm__pf;
LM__INLINE lm__pf lm__pf_init(const char *w, size_t ws, size_t wb, int64_t nb) {
    const size_t group = (size_t)(LM__MR - 1) * ws + (size_t)nb * wb; /* rows or interleaved */
    lm__pf pf = {w + group, w + group, (group + (size_t)nb - 1) / (size_t)nb};
    return pf;
}
/* one prefetch per new cache line: a redundant one still takes a miss buffer slot */
LM__AVX2 LM__INLINE void lm__pf_step(lm__pf *pf) {
    pf->end += pf->step;
    for (; pf->next < pf->end; pf->next += 64) _mm_prefetch(pf->next, _MM_HINT_T0);
}

/* Prefill: 32-bit lane p of x[s r] (r < 8) holds row r's levels 2p, 2p + 1 (int16 pairs);
 * out[p] gets them in lane r. Then a pmaddwd of out[p] with a column's broadcast pair adds
 * each row's two products to its own lane, and 8 + 8 of them leave the 8 rows' exact block
 * sums in the 8 lanes, with no horizontal adds per block. */
LM__AVX2 LM__INLINE void lm__tr8x8s(const __m256i *x, int s, __m256i *out) {
    __m256i t[8], q[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_epi32(x[s * 2 * i], x[s * (2 * i + 1)]);
        t[2 * i + 1] = _mm256_unpackhi_epi32(x[s * 2 * i], x[s * (2 * i + 1)]);
    }
    for (int h = 0; h < 2; h++) { /* rows 0-3, 4-7 */
        q[4 * h] = _mm256_unpacklo_epi64(t[4 * h], t[4 * h + 2]);
        q[4 * h + 1] = _mm256_unpackhi_epi64(t[4 * h], t[4 * h + 2]);
        q[4 * h + 2] = _mm256_unpacklo_epi64(t[4 * h + 1], t[4 * h + 3]);
        q[4 * h + 3] = _mm256_unpackhi_epi64(t[4 * h + 1], t[4 * h + 3]);
    }
    for (int p = 0; p < 4; p++) {
        _mm256_store_si256(out + p, _mm256_permute2x128_si256(q[p], q[4 + p], 0x20));
        _mm256_store_si256(out + 4 + p, _mm256_permute2x128_si256(q[p], q[4 + p], 0x31));
    }
}
/* rows 2 vectors apart (the legacy types' two halves per row) */
LM__AVX2 LM__INLINE void lm__tr8x8(const __m256i *x, __m256i *out) {
    lm__tr8x8s(x, 2, out);
}

/* an int16 pair as one int32, in all 8 lanes */
LM__AVX2 LM__INLINE __m256i lm__pair16(const int16_t *q) {
    int32_t v;
    memcpy(&v, q, 4);
    return _mm256_set1_epi32(v);
}

/* VNNI: pairs regrouped in place for 512-bit steps. V[2q], V[2q + 1] (pairs 2q, 2q + 1 of
 * the 8 rows, row r in lane r) become one zmm with row r's pair 2q in lane 2r and 2q + 1 in
 * lane 2r + 1, so a broadcast 64-bit activation quad meets both in one vpdpwssd. */
LM__AVX2 LM__INLINE void lm__zpairs(__m256i *V, int n) {
#ifndef LM__VNNI
    (void)V, (void)n; /* the AVX2 build keeps pairs in order */
#else
    for (int q = 0; q < n / 2; q++) {
        const __m256i lo = _mm256_unpacklo_epi32(V[2 * q], V[2 * q + 1]);
        const __m256i hi = _mm256_unpackhi_epi32(V[2 * q], V[2 * q + 1]);
        V[2 * q] = _mm256_permute2x128_si256(lo, hi, 0x20);
        V[2 * q + 1] = _mm256_permute2x128_si256(lo, hi, 0x31);
    }
#endif
}

#ifdef LM__VNNI
/* s[c] lane 2r + j: row r's sum over the pairs p = j (mod 2) of n (a multiple of 4) pairs of
 * V, in lm__zpairs' layout, with column c's activations a[c] */
LM__AVX2 LM__INLINE void lm__zdot(const __m256i *V, int n, const int16_t *const *a, __m512i *s,
                                  const int NC) {
    /* two chains per column hide vpdpwssd's latency */
    __m512i S[2][4];
    for (int c = 0; c < NC; c++) S[0][c] = S[1][c] = _mm512_setzero_si512();
    _Pragma("GCC unroll 4") for (int q = 0; q < n / 2; q += 2) {
        for (int h = 0; h < 2; h++) {
            const __m512i z = _mm512_load_si512(V + 2 * (q + h));
            for (int c = 0; c < NC; c++) {
                int64_t quad;
                memcpy(&quad, a[c] + 4 * (q + h), 8);
                S[h][c] = _mm512_dpwssd_epi32(S[h][c], z, _mm512_set1_epi64(quad));
            }
        }
    }
    for (int c = 0; c < NC; c++) s[c] = _mm512_add_epi32(S[0][c], S[1][c]);
}
/* lanes 2r + 2r + 1 -> lane r */
LM__AVX2 LM__INLINE __m256i lm__zfold(__m512i t) {
    return _mm512_cvtepi64_epi32(_mm512_add_epi32(t, _mm512_srli_epi64(t, 32)));
}
#endif

/* s[c] = the 8 rows' exact sums over n pairs (n a multiple of 4) of V (lm__zpairs' layout
 * under VNNI) with column c's activations a[c] (int32 lanes wrap; callers keep the sums
 * within int32) */
LM__AVX2 LM__INLINE void lm__pairs_dot(const __m256i *V, int n, const int16_t *const *a, __m256i *s,
                                       const int NC) {
#ifdef LM__VNNI
    __m512i t[4];
    lm__zdot(V, n, a, t, NC);
    for (int c = 0; c < NC; c++) s[c] = lm__zfold(t[c]);
#else
    for (int c = 0; c < NC; c++) s[c] = _mm256_setzero_si256();
    _Pragma("GCC unroll 4") for (int p = 0; p < n; p++) {
        const __m256i v = _mm256_load_si256(V + p);
        for (int c = 0; c < NC; c++)
            s[c] = _mm256_add_epi32(s[c], _mm256_madd_epi16(v, lm__pair16(a[c] + 2 * p)));
    }
#endif
}

/* A k-quant block of 128 pairs: HI[c] * 65536 + LO[c] = the 8 rows' exact sums, a lane
 * summing `flush` pairs (the type's int32 bound) before its 16-bit halves go to HI/LO. In
 * lm__zpairs' layout a lane holds every other pair, so a segment is 2 flush pairs. */
LM__AVX2 LM__INLINE void lm__kq_sums(const __m256i *V, int flush, const int16_t *const *a,
                                     __m256i *HI, __m256i *LO, const int NC) {
    const int16_t *as[4];
#ifdef LM__VNNI
    const __m512i m16 = _mm512_set1_epi32(0xffff);
    const int seg = 2 * flush < LM_QK_K / 2 ? 2 * flush : LM_QK_K / 2;
    __m512i H[4], L[4], P[4];
    for (int c = 0; c < NC; c++) H[c] = L[c] = _mm512_setzero_si512();
    for (int s = 0; s < LM_QK_K / 2; s += seg) {
        for (int c = 0; c < NC; c++) as[c] = a[c] + 2 * s;
        lm__zdot(V + s, seg, as, P, NC);
        for (int c = 0; c < NC; c++) {
            H[c] = _mm512_add_epi32(H[c], _mm512_srai_epi32(P[c], 16));
            L[c] = _mm512_add_epi32(L[c], _mm512_and_si512(P[c], m16));
        }
    }
    for (int c = 0; c < NC; c++) HI[c] = lm__zfold(H[c]), LO[c] = lm__zfold(L[c]);
#else
    const __m256i m16 = _mm256_set1_epi32(0xffff);
    __m256i P[4];
    for (int c = 0; c < NC; c++) HI[c] = LO[c] = _mm256_setzero_si256();
    for (int s = 0; s < LM_QK_K / 2; s += flush) {
        for (int c = 0; c < NC; c++) as[c] = a[c] + 2 * s;
        lm__pairs_dot(V + s, flush, as, P, NC);
        for (int c = 0; c < NC; c++) {
            HI[c] = _mm256_add_epi32(HI[c], _mm256_srai_epi32(P[c], 16));
            LO[c] = _mm256_add_epi32(LO[c], _mm256_and_si256(P[c], m16));
        }
    }
#endif
}

/* The 8 rows' msum: sum over chunks t of MN[t] (chunk t's mins, lm__zpairs' layout under
 * VNNI) times the column's chunk sum bsums[t] (exact: |msum| < 2^30) */
LM__AVX2 LM__INLINE __m256i lm__kq_mins(const __m256i *MN, const int32_t *bsums) {
#ifdef LM__VNNI
    __m512i s = _mm512_setzero_si512();
    for (int k = 0; k < 8; k++) {
        int64_t pair;
        memcpy(&pair, bsums + 2 * k, 8);
        s = _mm512_add_epi32(
            s, _mm512_mullo_epi32(_mm512_load_si512(MN + 2 * k), _mm512_set1_epi64(pair)));
    }
    return lm__zfold(s);
#else
    __m256i s = _mm256_setzero_si256();
    for (int k = 0; k < 16; k++)
        s = _mm256_add_epi32(s, _mm256_mullo_epi32(MN[k], _mm256_set1_epi32(bsums[k])));
    return s;
#endif
}

/* ---- legacy types: a block's 32 levels as two int16 vectors (elements 0-15, 16-31) ---- */

LM__AVX2 LM__INLINE void lm__u16_nib(const uint8_t *qs, __m256i *lo, __m256i *hi) {
    const __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)qs));
    *lo = _mm256_and_si256(v, _mm256_set1_epi16(0x0f));
    *hi = _mm256_srli_epi16(v, 4);
}

/* 0x10 in lane j where bit j of the 16 bits is set */
LM__AVX2 LM__INLINE __m256i lm__bit4x16(uint32_t bits) {
    const __m256i m = _mm256_setr_epi16(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096,
                                        8192, 16384, -32768);
    const __m256i v = _mm256_and_si256(_mm256_set1_epi16((short)(bits & 0xffff)), m);
    return _mm256_and_si256(_mm256_cmpeq_epi16(v, m), _mm256_set1_epi16(0x10));
}

LM__AVX2 LM__INLINE void lm__lv_q4_0(const void *vb, __m256i *lo, __m256i *hi) {
    const lm_block_q4_0 *b = vb;
    const __m256i off = _mm256_set1_epi16(8);
    lm__u16_nib(b->qs, lo, hi);
    *lo = _mm256_sub_epi16(*lo, off);
    *hi = _mm256_sub_epi16(*hi, off);
}
LM__AVX2 LM__INLINE void lm__lv_q4_1(const void *vb, __m256i *lo, __m256i *hi) {
    lm__u16_nib(((const lm_block_q4_1 *)vb)->qs, lo, hi);
}
LM__AVX2 LM__INLINE void lm__lv_q5(const uint8_t *qs, const uint8_t *qhb, __m256i *lo,
                                   __m256i *hi) {
    const uint32_t qh = lm_load_u32le(qhb);
    lm__u16_nib(qs, lo, hi);
    *lo = _mm256_or_si256(*lo, lm__bit4x16(qh));
    *hi = _mm256_or_si256(*hi, lm__bit4x16(qh >> 16));
}
LM__AVX2 LM__INLINE void lm__lv_q5_0(const void *vb, __m256i *lo, __m256i *hi) {
    const lm_block_q5_0 *b = vb;
    const __m256i off = _mm256_set1_epi16(16);
    lm__lv_q5(b->qs, b->qh, lo, hi);
    *lo = _mm256_sub_epi16(*lo, off);
    *hi = _mm256_sub_epi16(*hi, off);
}
LM__AVX2 LM__INLINE void lm__lv_q5_1(const void *vb, __m256i *lo, __m256i *hi) {
    const lm_block_q5_1 *b = vb;
    lm__lv_q5(b->qs, b->qh, lo, hi);
}
LM__AVX2 LM__INLINE void lm__lv_q8_0(const void *vb, __m256i *lo, __m256i *hi) {
    const lm_block_q8_0 *b = vb;
    *lo = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->qs));
    *hi = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b->qs + 16)));
}

/* one row's 8 lanes of block products with column c */
#define LM__LEG_LANES(lo, hi, a)                                                                   \
    _mm256_add_epi32(_mm256_madd_epi16(lo, _mm256_loadu_si256((const __m256i *)(a)->qs)),          \
                     _mm256_madd_epi16(hi, _mm256_loadu_si256((const __m256i *)((a)->qs + 16))))
#define LM__LEG_PAIR(r0, T, blk_t, UNPACK)                                                         \
    {                                                                                              \
        __m256i lo0, hi0, lo1, hi1;                                                                \
        UNPACK((const blk_t *)(rows[r0] + (size_t)b * wb), &lo0, &hi0);                            \
        UNPACK((const blk_t *)(rows[r0 + 1] + (size_t)b * wb), &lo1, &hi1);                        \
        for (int c = 0; c < NC; c++)                                                               \
            T[c] = lm__hpair(LM__LEG_LANES(lo0, hi0, A[c]), LM__LEG_LANES(lo1, hi1, A[c]));        \
    }

/* the float terms of block b for NC columns: term = (dw * da) * (float)isum [+ m * sa];
 * acc += term (cpu_dot_scalar.c's order); isum of column c: lm__hfin(U[c], hquad(T0, T1)) */
#define LM__LEG_TERMS(HAS_MIN, acc)                                                                \
    for (int c = 0; c < NC; c++) {                                                                 \
        const __m256i isum = lm__hfin(U[c], lm__hquad(T0[c], T1[c]));                              \
        __m256 t =                                                                                 \
            _mm256_mul_ps(_mm256_mul_ps(dw, _mm256_set1_ps(A[c]->d)), _mm256_cvtepi32_ps(isum));   \
        if (HAS_MIN) t = _mm256_add_ps(t, _mm256_mul_ps(m, _mm256_set1_ps(A[c]->s)));              \
        acc[c] = _mm256_add_ps(acc[c], t);                                                         \
    }

/* Up to LM__NC columns. Few (decode): each row's block is unpacked into registers and used
 * at once. Many (prefill): the 8 rows' blocks are unpacked once into u, then every group
 * of 4 columns reads them, so the unpacking is shared by the whole column tile. */
#define LM__QDOT_LEGACY_X(name, blk_t, UNPACK, HAS_MIN)                                            \
    LM__AVX2 LM__INLINE void name##_n(const char *w, size_t ws, size_t wb, int nr, const char *va, \
                                      size_t as, int64_t nb, float *out, size_t os,                \
                                      const int NC) {                                              \
        const char *rows[LM__MR];                                                                  \
        lm__rows8(w, ws, nr, rows);                                                                \
        __m256 acc[4];                                                                             \
        for (int c = 0; c < NC; c++) acc[c] = _mm256_setzero_ps();                                 \
        lm__pf pf = lm__pf_init(w, ws, wb, nb);                                                    \
        for (int64_t b = 0; b < nb; b++) {                                                         \
            lm__pf_step(&pf);                                                                      \
            const lm__q16a *A[4];                                                                  \
            for (int c = 0; c < NC; c++) A[c] = (const lm__q16a *)(va + (size_t)c * as) + b;       \
            __m256i T0[4], T1[4], U[4];                                                            \
            LM__LEG_PAIR(0, T0, blk_t, UNPACK)                                                     \
            LM__LEG_PAIR(2, T1, blk_t, UNPACK)                                                     \
            for (int c = 0; c < NC; c++) U[c] = lm__hquad(T0[c], T1[c]);                           \
            LM__LEG_PAIR(4, T0, blk_t, UNPACK)                                                     \
            LM__LEG_PAIR(6, T1, blk_t, UNPACK)                                                     \
            __m256 dw, m;                                                                          \
            lm__f16pair8(rows, (size_t)b *wb, &dw, &m);                                            \
            LM__LEG_TERMS(HAS_MIN, acc)                                                            \
        }                                                                                          \
        for (int c = 0; c < NC; c++) lm__store8(out + (size_t)c * os, acc[c], nr);                 \
    }                                                                                              \
    LM__AVX2 LM__INLINE void name##_g(const __m256i *V, const char *va, size_t as, int64_t b,      \
                                      __m256 dw, __m256 m, __m256 *acc, const int NC) {            \
        const lm__q16a *A[4];                                                                      \
        for (int c = 0; c < NC; c++) A[c] = (const lm__q16a *)(va + (size_t)c * as) + b;           \
        __m256i S[4];                                                                              \
        const int16_t *a[4];                                                                       \
        for (int c = 0; c < NC; c++) a[c] = A[c]->qs;                                              \
        lm__pairs_dot(V, 16, a, S, NC);                                                            \
        for (int c = 0; c < NC; c++) {                                                             \
            __m256 t = _mm256_mul_ps(_mm256_mul_ps(dw, _mm256_set1_ps(A[c]->d)),                   \
                                     _mm256_cvtepi32_ps(S[c]));                                    \
            if (HAS_MIN) t = _mm256_add_ps(t, _mm256_mul_ps(m, _mm256_set1_ps(A[c]->s)));          \
            acc[c] = _mm256_add_ps(acc[c], t);                                                     \
        }                                                                                          \
    }                                                                                              \
    /* block b of the 8 rows (V, dw, m) with all nc columns, 4 at a time */                        \
    LM__AVX2 LM__INLINE void name##_cols(const __m256i *V, const char *va, size_t as, int nc,      \
                                         int64_t b, __m256 dw, __m256 m, __m256 *acc) {            \
        for (int c0 = 0; c0 < nc; c0 += 4) {                                                       \
            const char *vc = va + (size_t)c0 * as;                                                 \
            switch (nc - c0 < 4 ? nc - c0 : 4) {                                                   \
            case 1:                                                                                \
                name##_g(V, vc, as, b, dw, m, acc + c0, 1);                                        \
                break;                                                                             \
            case 2:                                                                                \
                name##_g(V, vc, as, b, dw, m, acc + c0, 2);                                        \
                break;                                                                             \
            case 3:                                                                                \
                name##_g(V, vc, as, b, dw, m, acc + c0, 3);                                        \
                break;                                                                             \
            default:                                                                               \
                name##_g(V, vc, as, b, dw, m, acc + c0, 4);                                        \
                break;                                                                             \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    LM__AVX2 static void name##_wide(const char *w, size_t ws, size_t wb, int nr, const char *va,  \
                                     size_t as, int nc, int64_t nb, float *out, size_t os) {       \
        const char *rows[LM__MR];                                                                  \
        lm__rows8(w, ws, nr, rows);                                                                \
        __m256 acc[LM__NC];                                                                        \
        for (int c = 0; c < nc; c++) acc[c] = _mm256_setzero_ps();                                 \
        lm__pf pf = lm__pf_init((const char *)(w), ws, wb, nb);                                    \
        for (int64_t b = 0; b < nb; b++) {                                                         \
            lm__pf_step(&pf);                                                                      \
            __m256i u[2 * LM__MR];                                                                 \
            for (int r = 0; r < LM__MR; r++)                                                       \
                UNPACK((const blk_t *)(rows[r] + (size_t)b * wb), &u[2 * r], &u[2 * r + 1]);       \
            __m256i V[16] __attribute__((aligned(64)));                                            \
            lm__tr8x8(u, V);                                                                       \
            lm__tr8x8(u + 1, V + 8);                                                               \
            lm__zpairs(V, 16);                                                                     \
            __m256 dw, m;                                                                          \
            lm__f16pair8(rows, (size_t)b *wb, &dw, &m);                                            \
            name##_cols(V, va, as, nc, b, dw, m, acc);                                             \
        }                                                                                          \
        for (int c = 0; c < nc; c++) lm__store8(out + (size_t)c * os, acc[c], nr);                 \
    }                                                                                              \
    LM__AVX2 static void name(const void *w, size_t ws, size_t wb, int nr, const void *va,         \
                              size_t as, int nc, int64_t nb, float *out, size_t os) {              \
        switch (nc) {                                                                              \
        case 1:                                                                                    \
            name##_n(w, ws, wb, nr, va, as, nb, out, os, 1);                                       \
            break;                                                                                 \
        case 2:                                                                                    \
            name##_n(w, ws, wb, nr, va, as, nb, out, os, 2);                                       \
            break;                                                                                 \
        case 3:                                                                                    \
            name##_n(w, ws, wb, nr, va, as, nb, out, os, 3);                                       \
            break;                                                                                 \
        case 4:                                                                                    \
            name##_n(w, ws, wb, nr, va, as, nb, out, os, 4);                                       \
            break;                                                                                 \
        default:                                                                                   \
            name##_wide(w, ws, wb, nr, va, as, nc, nb, out, os);                                   \
            break;                                                                                 \
        }                                                                                          \
    }

LM__QDOT_LEGACY_X(lm__qdot_q4_0_x, lm_block_q4_0, lm__lv_q4_0, 0)
LM__QDOT_LEGACY_X(lm__qdot_q4_1_x, lm_block_q4_1, lm__lv_q4_1, 1)
LM__QDOT_LEGACY_X(lm__qdot_q5_0_x, lm_block_q5_0, lm__lv_q5_0, 0)
LM__QDOT_LEGACY_X(lm__qdot_q5_1_x, lm_block_q5_1, lm__lv_q5_1, 1)
LM__QDOT_LEGACY_X(lm__qdot_q8_0_x, lm_block_q8_0, lm__lv_q8_0, 0)

/* ---- k-quants ---- */

/* w16[16 t + l] = sc[t] * q[16 t + l] (fits int16 for every type) */
LM__AVX2 LM__INLINE void lm__k_scale(const int8_t *q, const int16_t *sc, int16_t *w16) {
    for (int t = 0; t < 16; t++) {
        const __m256i v = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(q + 16 * t)));
        _mm256_storeu_si256((__m256i *)(w16 + 16 * t),
                            _mm256_mullo_epi16(v, _mm256_set1_epi16(sc[t])));
    }
}

/* q4_K straight to scaled int16: byte l of qs[32 p ..] holds elements 64 p + l (low
 * nibble) and 64 p + 32 + l (high), i.e. chunks 4p, 4p+1 (low) and 4p+2, 4p+3 (high) */
LM__AVX2 LM__INLINE void lm__k_prep_q4_K(const void *vb, int16_t *w16, int16_t *mn) {
    const lm_block_q4_K *b = vb;
    int16_t sc[16];
    lm__scales_k4(vb, sc, mn);
    for (int p = 0; p < 4; p++)
        for (int h = 0; h < 2; h++) {
            const __m256i v =
                _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(b->qs + 32 * p + 16 * h)));
            const int tl = 4 * p + h, th = 4 * p + 2 + h;
            _mm256_storeu_si256((__m256i *)(w16 + 16 * tl),
                                _mm256_mullo_epi16(_mm256_and_si256(v, _mm256_set1_epi16(0x0f)),
                                                   _mm256_set1_epi16(sc[tl])));
            _mm256_storeu_si256(
                (__m256i *)(w16 + 16 * th),
                _mm256_mullo_epi16(_mm256_srli_epi16(v, 4), _mm256_set1_epi16(sc[th])));
        }
}

/* q6_K half h's levels (int8, offset taken off): v[k] holds elements 128 h + 32 k .. + 31 */
LM__AVX2 LM__INLINE void lm__q6_K_half(const lm_block_q6_K *w, int h, __m256i *v) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
    const __m256i off = _mm256_set1_epi8(32);
    const __m256i l0 = _mm256_loadu_si256((const __m256i *)(w->ql + 64 * h));
    const __m256i l1 = _mm256_loadu_si256((const __m256i *)(w->ql + 64 * h + 32));
    const __m256i hb = _mm256_loadu_si256((const __m256i *)(w->qh + 32 * h));
    /* quarter k: low nibble source l0/l1/l0 >> 4/l1 >> 4, high bits qh >> 2k */
    const __m256i lo[4] = {_mm256_and_si256(l0, m4), _mm256_and_si256(l1, m4),
                           _mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                           _mm256_and_si256(_mm256_srli_epi16(l1, 4), m4)};
    for (int k = 0; k < 4; k++) {
        const __m256i hi = _mm256_and_si256(_mm256_srl_epi16(hb, _mm_cvtsi32_si128(2 * k)), m2);
        v[k] = _mm256_sub_epi8(_mm256_or_si256(lo[k], _mm256_slli_epi16(hi, 4)), off);
    }
}

LM__AVX2 static void lm__unpack_q6_K_x(const lm_block_q6_K *w, int8_t *q) {
    for (int h = 0; h < 2; h++) {
        __m256i v[4];
        lm__q6_K_half(w, h, v);
        for (int k = 0; k < 4; k++) _mm256_storeu_si256((__m256i *)(q + 128 * h + 32 * k), v[k]);
    }
}

/* the same loops as the scalar file's, compiled for AVX2 so they vectorise with it */
LM__AVX2 static void lm__unpack_q2_K_x(const lm_block_q2_K *w, int8_t *q) {
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++)
                q[128 * h + 32 * k + l] = (int8_t)((w->qs[32 * h + l] >> (2 * k)) & 3);
}
LM__AVX2 static void lm__unpack_q3_K_x(const lm_block_q3_K *w, int8_t *q) {
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                const int lo = (w->qs[32 * h + l] >> (2 * k)) & 3;
                const int hi = (w->hmask[l] >> (4 * h + k)) & 1;
                q[128 * h + 32 * k + l] = (int8_t)(lo - 4 + 4 * hi);
            }
}
LM__AVX2 static void lm__unpack_q5_K_x(const lm_block_q5_K *w, int8_t *q) {
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < 32; l++) {
            const int h = w->qh[l] >> (2 * p);
            q[64 * p + l] = (int8_t)((w->qs[32 * p + l] & 0x0f) | ((h & 1) << 4));
            q[64 * p + 32 + l] = (int8_t)((w->qs[32 * p + l] >> 4) | ((h & 2) << 3));
        }
}

#define LM__K_PREP_GENERIC(unpack, scales)                                                         \
    {                                                                                              \
        int8_t q_[LM_QK_K];                                                                        \
        int16_t sc_[16];                                                                           \
        unpack(vb, q_);                                                                            \
        scales(vb, sc_, mn);                                                                       \
        lm__k_scale(q_, sc_, w16);                                                                 \
    }
LM__AVX2 LM__INLINE void lm__k_prep_q2_K(const void *vb, int16_t *w16, int16_t *mn){
    LM__K_PREP_GENERIC(lm__unpack_q2_K_x, lm__scales_q2_K)} LM__AVX2 LM__INLINE
    void lm__k_prep_q3_K(const void *vb, int16_t *w16, int16_t *mn){
        LM__K_PREP_GENERIC(lm__unpack_q3_K_x, lm__scales_q3_K)} LM__AVX2 LM__INLINE
    void lm__k_prep_q5_K(const void *vb, int16_t *w16, int16_t *mn){
        LM__K_PREP_GENERIC(lm__unpack_q5_K_x, lm__scales_k4)} LM__AVX2 LM__INLINE
    void lm__k_prep_q6_K(const void *vb, int16_t *w16,
                         int16_t *mn){LM__K_PREP_GENERIC(lm__unpack_q6_K_x, lm__scales_q6_K)}

/* 8 exact int64 sums HI * 65536 + LO (|HI| < 2^21, 0 <= LO < 2^21) rounded once to float */
LM__AVX2 LM__INLINE __m256 lm__i64x8_to_f32(__m256i hi, __m256i lo) {
    const __m256d k = _mm256_set1_pd(65536.0);
    const __m256d a =
        _mm256_add_pd(_mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(hi)), k),
                      _mm256_cvtepi32_pd(_mm256_castsi256_si128(lo)));
    const __m256d b =
        _mm256_add_pd(_mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(hi, 1)), k),
                      _mm256_cvtepi32_pd(_mm256_extracti128_si256(lo, 1)));
    return _mm256_set_m128(_mm256_cvtpd_ps(b), _mm256_cvtpd_ps(a));
}

/* Decode (few columns): a row's block straight from its bytes, with no scaled-level
 * buffer in between. A chunk's products are summed before its scale multiplies them, which
 * leaves every int32 lane exactly as name##_row's: sc * (q a + q a) = sc q a + sc q a
 * modulo 2^32 (madd, add and mullo all wrap), and name##_row's lanes hold the true sums
 * (< 2^31), so HI/LO and the result are the same. */
#define LM__K_DIRECT_ACC(P, x, sc, NC)                                                             \
    for (int c = 0; c < NC; c++) P[c] = _mm256_add_epi32(P[c], _mm256_mullo_epi32(x[c], sc))
#define LM__K_SPLIT(P, P0, HI, LO, r, SPLIT, NC)                                                   \
    {                                                                                              \
        const __m256i m16 = _mm256_set1_epi32(0xffff);                                             \
        for (int c = 0; c < NC; c++) {                                                             \
            if (SPLIT) {                                                                           \
                HI[c][r] =                                                                         \
                    _mm256_add_epi32(_mm256_srai_epi32(P0[c], 16), _mm256_srai_epi32(P[c], 16));   \
                LO[c][r] =                                                                         \
                    _mm256_add_epi32(_mm256_and_si256(P0[c], m16), _mm256_and_si256(P[c], m16));   \
            } else {                                                                               \
                HI[c][r] = _mm256_srai_epi32(P[c], 16);                                            \
                LO[c][r] = _mm256_and_si256(P[c], m16);                                            \
            }                                                                                      \
        }                                                                                          \
    }

/* madd of chunk t's 16 levels (int16) with every column's chunk t */
#define LM__K_DIRECT_MADD(out, lv, t, A, NC)                                                       \
    for (int c = 0; c < NC; c++)                                                                   \
    out[c] = _mm256_madd_epi16(lv, _mm256_loadu_si256((const __m256i *)(A[c]->qs + 16 * (t))))
/* ... added to out */
#define LM__K_DIRECT_DP(out, lv, t, A, NC)                                                         \
    for (int c = 0; c < NC; c++)                                                                   \
    out[c] = LM__DPWSSD(out[c], lv, _mm256_loadu_si256((const __m256i *)(A[c]->qs + 16 * (t))))

/* row r's 16 chunk mins (int32 lanes: chunks 0-7 in mlo, 8-15 in mhi) times each column's
 * chunk sums, in lanes */
LM__AVX2 LM__INLINE void lm__k_mins(__m256i mlo, __m256i mhi, const lm__q16k *const *A, int r,
                                    __m256i (*MS)[LM__MR], const int NC) {
    for (int c = 0; c < NC; c++)
        MS[c][r] = _mm256_add_epi32(
            _mm256_mullo_epi32(mlo, _mm256_loadu_si256((const __m256i *)A[c]->bsums)),
            _mm256_mullo_epi32(mhi, _mm256_loadu_si256((const __m256i *)(A[c]->bsums + 8))));
}

/* q4_K's 8 six-bit scales and mins (lm_k4_scale_min) as int32 lanes, by 32-bit word masks */
LM__AVX2 LM__INLINE void lm__k4_scales8(const uint8_t *s, __m256i *sc, __m256i *mn) {
    uint32_t u0, u1, u2;
    memcpy(&u0, s, 4), memcpy(&u1, s + 4, 4), memcpy(&u2, s + 8, 4);
    const uint32_t k63 = 0x3f3f3f3f, k15 = 0x0f0f0f0f, k3 = 0x03030303;
    const uint64_t sc8 = (u0 & k63) | (uint64_t)((u2 & k15) | (((u0 >> 6) & k3) << 4)) << 32;
    const uint64_t mn8 = (u1 & k63) | (uint64_t)(((u2 >> 4) & k15) | (((u1 >> 6) & k3) << 4)) << 32;
    *sc = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)sc8));
    *mn = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)mn8));
}

LM__AVX2 LM__INLINE void lm__k_direct_q4_K(const void *vb, const lm__q16k *const *A, int r,
                                           __m256i (*HI)[LM__MR], __m256i (*LO)[LM__MR],
                                           __m256i (*MS)[LM__MR], const int NC) {
    const lm_block_q4_K *b = vb;
    __m256i sc, mn, P[4], P0[4], x0[4];
    lm__k4_scales8(b->scales, &sc, &mn);
    for (int c = 0; c < NC; c++) P[c] = _mm256_setzero_si256();
    for (int p = 0; p < 4; p++) {
        const __m256i v0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(b->qs + 32 * p)));
        const __m256i v1 =
            _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(b->qs + 32 * p + 16)));
        const __m256i m4 = _mm256_set1_epi16(0x0f);
        /* low nibbles: chunks 4p, 4p + 1 (sub-block 2p); high: 4p + 2, 4p + 3 (2p + 1) */
        LM__K_DIRECT_MADD(x0, _mm256_and_si256(v0, m4), 4 * p, A, NC);
        LM__K_DIRECT_DP(x0, _mm256_and_si256(v1, m4), 4 * p + 1, A, NC);
        LM__K_DIRECT_ACC(P, x0, _mm256_permutevar8x32_epi32(sc, _mm256_set1_epi32(2 * p)), NC);
        LM__K_DIRECT_MADD(x0, _mm256_srli_epi16(v0, 4), 4 * p + 2, A, NC);
        LM__K_DIRECT_DP(x0, _mm256_srli_epi16(v1, 4), 4 * p + 3, A, NC);
        LM__K_DIRECT_ACC(P, x0, _mm256_permutevar8x32_epi32(sc, _mm256_set1_epi32(2 * p + 1)), NC);
    }
    (void)P0;
    LM__K_SPLIT(P, P0, HI, LO, r, 0, NC)
    /* chunk t's min is sub-block t / 2's */
    lm__k_mins(_mm256_permutevar8x32_epi32(mn, _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3)),
               _mm256_permutevar8x32_epi32(mn, _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7)), A, r, MS,
               NC);
}

/* q6_K: levels from lm__q6_K_half, kept in registers; scales per 16 */
LM__AVX2 LM__INLINE void lm__k_direct_q6_K(const void *vb, const lm__q16k *const *A, int r,
                                           __m256i (*HI)[LM__MR], __m256i (*LO)[LM__MR],
                                           __m256i (*MS)[LM__MR], const int NC) {
    const lm_block_q6_K *w = vb;
    __m256i P[4], P0[4], x[4];
    for (int h = 0; h < 2; h++) {
        /* scales of chunks 8h .. 8h + 7 as int32 lanes, each broadcast by a permute */
        const __m256i sc8 =
            _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(w->scales + 8 * h)));
        for (int c = 0; c < NC; c++) P[c] = _mm256_setzero_si256();
        __m256i lv[4];
        lm__q6_K_half(w, h, lv);
        for (int k = 0; k < 4; k++) {
            const __m256i v = lv[k];
            /* elements 128 h + 32 k ..: chunks t = 8 h + 2 k, 8 h + 2 k + 1 */
            const int t = 8 * h + 2 * k;
            LM__K_DIRECT_MADD(x, _mm256_cvtepi8_epi16(_mm256_castsi256_si128(v)), t, A, NC);
            LM__K_DIRECT_ACC(P, x, _mm256_permutevar8x32_epi32(sc8, _mm256_set1_epi32(2 * k)), NC);
            LM__K_DIRECT_MADD(x, _mm256_cvtepi8_epi16(_mm256_extracti128_si256(v, 1)), t + 1, A,
                              NC);
            LM__K_DIRECT_ACC(P, x, _mm256_permutevar8x32_epi32(sc8, _mm256_set1_epi32(2 * k + 1)),
                             NC);
        }
        if (h == 0)
            for (int c = 0; c < NC; c++) P0[c] = P[c];
    }
    (void)MS; /* no mins */
    LM__K_SPLIT(P, P0, HI, LO, r, 1, NC)
}

/* the types without a direct path (never called) */
LM__AVX2 LM__INLINE void lm__k_direct_none(const void *vb, const lm__q16k *const *A, int r,
                                           __m256i (*HI)[LM__MR], __m256i (*LO)[LM__MR],
                                           __m256i (*MS)[LM__MR], const int NC) {
    (void)vb, (void)MS, (void)A, (void)r, (void)HI, (void)LO, (void)NC;
}

/* PREP(block, w16, mn): scaled levels and chunk mins; GOFF: byte offset of a 4-byte
 * window holding d (and dmin), DHI: d is its second half-word; SPLIT: halves apart (q6_K).
 * Per block, the 8 rows are prepared once into w16/mn, then every group of 4 columns reads
 * them (so the preparation is shared by all the columns of a call).
 * term = da * (dw * (float)isum [- dmin * (float)msum]); acc += term */
#define LM__QDOT_K_X(name, blk_t, PREP, GOFF, DHI, HAS_MIN, SPLIT, DIRECT, FLUSH)                  \
    /* row r's chunk mins times the columns' chunk sums, in lanes */                               \
    LM__AVX2 LM__INLINE void name##_mins(const int16_t *mn, const lm__q16k *const *A, int r,       \
                                         __m256i(*MS)[LM__MR], const int NC) {                     \
        lm__k_mins(_mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)mn)),                    \
                   _mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)(mn + 8))), A, r, MS,    \
                   NC);                                                                            \
    }                                                                                              \
    /* row r's lanes with NC columns: HI/LO halves of the block sums, MS the mins */               \
    LM__AVX2 LM__INLINE void name##_row(                                                           \
        const int16_t *w16, const int16_t *mn, const lm__q16k *const *A, int r,                    \
        __m256i(*HI)[LM__MR], __m256i(*LO)[LM__MR], __m256i(*MS)[LM__MR], const int NC) {          \
        /* chunks outer, columns inner: a chunk of levels is loaded once for all */                \
        __m256i P[4], P0[4];                                                                       \
        for (int c = 0; c < NC; c++) P[c] = _mm256_setzero_si256();                                \
        _Pragma("GCC unroll 2") for (int t = 0; t < 16; t++) {                                     \
            if (SPLIT && t == 8)                                                                   \
                for (int c = 0; c < NC; c++) P0[c] = P[c], P[c] = _mm256_setzero_si256();          \
            const __m256i wt = _mm256_loadu_si256((const __m256i *)(w16 + 16 * t));                \
            for (int c = 0; c < NC; c++)                                                           \
                P[c] = LM__DPWSSD(P[c], wt,                                                        \
                                  _mm256_loadu_si256((const __m256i *)(A[c]->qs + 16 * t)));       \
        }                                                                                          \
        LM__K_SPLIT(P, P0, HI, LO, r, SPLIT, NC)                                                   \
        if (HAS_MIN) name##_mins(mn, A, r, MS, NC);                                                \
    }                                                                                              \
    /* the float terms of NC columns for the 8 rows: acc[c] += da * (dw isum - dmin msum) */       \
    LM__AVX2 LM__INLINE void name##_terms(const lm__q16k *const *A, __m256i(*HI)[LM__MR],          \
                                          __m256i(*LO)[LM__MR], __m256i(*MS)[LM__MR], __m256 dw,   \
                                          __m256 dmin, __m256 *acc, const int NC) {                \
        for (int c = 0; c < NC; c++) {                                                             \
            __m256 t =                                                                             \
                _mm256_mul_ps(dw, lm__i64x8_to_f32(lm__hsum8x8(HI[c]), lm__hsum8x8(LO[c])));       \
            if (HAS_MIN)                                                                           \
                t = _mm256_sub_ps(t, _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(lm__hsum8x8(MS[c])))); \
            acc[c] = _mm256_add_ps(acc[c], _mm256_mul_ps(_mm256_set1_ps(A[c]->d), t));             \
        }                                                                                          \
    }                                                                                              \
    /* NC columns: each row's block prepared and used at once (decode) ... */                      \
    LM__AVX2 LM__INLINE void name##_n(const char *const *rows, size_t wb, const char *va,          \
                                      size_t as, int64_t b, __m256 *acc, const int NC) {           \
        __m256i HI[4][LM__MR], LO[4][LM__MR], MS[4][LM__MR];                                       \
        const lm__q16k *A[4];                                                                      \
        for (int c = 0; c < NC; c++) A[c] = (const lm__q16k *)(va + (size_t)c * as) + b;           \
        for (int r = 0; r < LM__MR; r++) {                                                         \
            if (DIRECT != lm__k_direct_none) {                                                     \
                DIRECT((const blk_t *)(rows[r] + (size_t)b * wb), A, r, HI, LO, MS, NC);           \
                continue;                                                                          \
            }                                                                                      \
            int16_t w16[LM_QK_K], mn[16];                                                          \
            PREP((const blk_t *)(rows[r] + (size_t)b * wb), w16, mn);                              \
            name##_row(w16, mn, A, r, HI, LO, MS, NC);                                             \
        }                                                                                          \
        __m256 h0, h1;                                                                             \
        lm__f16pair8(rows, (size_t)b *wb + (GOFF), &h0, &h1);                                      \
        name##_terms(A, HI, LO, MS, DHI ? h1 : h0, h1, acc, NC);                                   \
    }                                                                                              \
    /* ... or up to 4 columns against the 8 rows' block transposed once for all (prefill):         \
     * V[p] = pair p of the rows' scaled levels, row r in lane r; MN[t] = chunk t's mins.          \
     * A lane sums FLUSH pairs (< 2^31 by the type's bound), then its 16-bit halves go to          \
     * HI/LO, so the block sum HI * 65536 + LO is exact and no lanes are summed across. */         \
    LM__AVX2 LM__INLINE void name##_t(const __m256i *V, const __m256i *MN, const char *va,         \
                                      size_t as, int64_t b, __m256 dw, __m256 dmin, __m256 *acc,   \
                                      const int NC) {                                              \
        const lm__q16k *A[4];                                                                      \
        for (int c = 0; c < NC; c++) A[c] = (const lm__q16k *)(va + (size_t)c * as) + b;           \
        __m256i HI[4], LO[4];                                                                      \
        const int16_t *a[4];                                                                       \
        for (int c = 0; c < NC; c++) a[c] = A[c]->qs;                                              \
        lm__kq_sums(V, (FLUSH), a, HI, LO, NC);                                                    \
        for (int c = 0; c < NC; c++) {                                                             \
            __m256 t = _mm256_mul_ps(dw, lm__i64x8_to_f32(HI[c], LO[c]));                          \
            if (HAS_MIN) {                                                                         \
                const __m256i ms = lm__kq_mins(MN, A[c]->bsums);                                   \
                t = _mm256_sub_ps(t, _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(ms)));                 \
            }                                                                                      \
            acc[c] = _mm256_add_ps(acc[c], _mm256_mul_ps(_mm256_set1_ps(A[c]->d), t));             \
        }                                                                                          \
    }                                                                                              \
    /* block b (at byte off of the 8 rows) with nc > 4 columns: prepared, transposed once */       \
    LM__AVX2 static void name##_wblock(const char *const *rows, size_t off, const char *va,        \
                                       size_t as, int64_t b, int nc, __m256 *acc) {                \
        int16_t w16[LM__MR][LM_QK_K] __attribute__((aligned(32))), mn[LM__MR][16];                 \
        for (int r = 0; r < LM__MR; r++) PREP((const blk_t *)(rows[r] + off), w16[r], mn[r]);      \
        __m256i V[LM_QK_K / 2] __attribute__((aligned(64))), MN[16] __attribute__((aligned(64)));  \
        for (int t = 0; t < 16; t++) lm__tr8x8s((const __m256i *)w16 + t, 16, V + 8 * t);          \
        lm__zpairs(V, LM_QK_K / 2);                                                                \
        if (HAS_MIN) {                                                                             \
            __m256i X[2 * LM__MR];                                                                 \
            for (int r = 0; r < LM__MR; r++) {                                                     \
                X[2 * r] = _mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)mn[r]));         \
                X[2 * r + 1] =                                                                     \
                    _mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)(mn[r] + 8)));          \
            }                                                                                      \
            lm__tr8x8s(X, 2, MN);                                                                  \
            lm__tr8x8s(X + 1, 2, MN + 8);                                                          \
            lm__zpairs(MN, 16);                                                                    \
        }                                                                                          \
        __m256 h0, h1;                                                                             \
        lm__f16pair8(rows, off + (GOFF), &h0, &h1);                                                \
        for (int c0 = 0; c0 < nc; c0 += 4) {                                                       \
            const char *vc = va + (size_t)c0 * as;                                                 \
            switch (nc - c0 < 4 ? nc - c0 : 4) {                                                   \
            case 1:                                                                                \
                name##_t(V, MN, vc, as, b, DHI ? h1 : h0, h1, acc + c0, 1);                        \
                break;                                                                             \
            case 2:                                                                                \
                name##_t(V, MN, vc, as, b, DHI ? h1 : h0, h1, acc + c0, 2);                        \
                break;                                                                             \
            case 3:                                                                                \
                name##_t(V, MN, vc, as, b, DHI ? h1 : h0, h1, acc + c0, 3);                        \
                break;                                                                             \
            default:                                                                               \
                name##_t(V, MN, vc, as, b, DHI ? h1 : h0, h1, acc + c0, 4);                        \
                break;                                                                             \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    LM__AVX2 static void name(const void *vw, size_t ws, size_t wb, int nr, const void *vva,       \
                              size_t as, int nc, int64_t nb, float *out, size_t os) {              \
        const char *rows[LM__MR], *va = vva;                                                       \
        lm__rows8(vw, ws, nr, rows);                                                               \
        __m256 acc[LM__NC];                                                                        \
        for (int c = 0; c < nc; c++) acc[c] = _mm256_setzero_ps();                                 \
        lm__pf pf = lm__pf_init((const char *)(vw), ws, wb, nb);                                   \
        for (int64_t b = 0; b < nb; b++) {                                                         \
            lm__pf_step(&pf);                                                                      \
            if (nc <= 4) {                                                                         \
                switch (nc) {                                                                      \
                case 1:                                                                            \
                    name##_n(rows, wb, va, as, b, acc, 1);                                         \
                    break;                                                                         \
                case 2:                                                                            \
                    name##_n(rows, wb, va, as, b, acc, 2);                                         \
                    break;                                                                         \
                case 3:                                                                            \
                    name##_n(rows, wb, va, as, b, acc, 3);                                         \
                    break;                                                                         \
                default:                                                                           \
                    name##_n(rows, wb, va, as, b, acc, 4);                                         \
                    break;                                                                         \
                }                                                                                  \
                continue;                                                                          \
            }                                                                                      \
            name##_wblock(rows, (size_t)b *wb, va, as, b, nc, acc);                                \
        }                                                                                          \
        for (int c = 0; c < nc; c++) lm__store8(out + (size_t)c * os, acc[c], nr);                 \
    }

/* d/dmin windows: q2_K d at 80 (dmin 82), q3_K d at 108 (window 106), q4_K/q5_K d at 0
 * (dmin 2), q6_K d at 208 (window 206): every window lies inside its block */
LM__QDOT_K_X(lm__qdot_q2_K_x, lm_block_q2_K, lm__k_prep_q2_K, 80, 0, 1, 0, lm__k_direct_none, 128)
LM__QDOT_K_X(lm__qdot_q3_K_x, lm_block_q3_K, lm__k_prep_q3_K, 106, 1, 0, 0, lm__k_direct_none, 128)
LM__QDOT_K_X(lm__qdot_q4_K_x, lm_block_q4_K, lm__k_prep_q4_K, 0, 0, 1, 0, lm__k_direct_q4_K, 32)
LM__QDOT_K_X(lm__qdot_q5_K_x, lm_block_q5_K, lm__k_prep_q5_K, 0, 0, 1, 0, lm__k_direct_none, 16)
LM__QDOT_K_X(lm__qdot_q6_K_x, lm_block_q6_K, lm__k_prep_q6_K, 206, 1, 0, 1, lm__k_direct_q6_K, 8)

_Static_assert(offsetof(lm_block_q2_K, d) == 80 && offsetof(lm_block_q2_K, dmin) == 82, "q2_K");
_Static_assert(offsetof(lm_block_q3_K, d) == 108, "q3_K");
_Static_assert(offsetof(lm_block_q4_K, dmin) == 2 && offsetof(lm_block_q5_K, dmin) == 2, "k4");
_Static_assert(offsetof(lm_block_q6_K, d) == 208, "q6_K");

/* ---- float dot products: 16 partial sums in two vectors, then the scalar tail/tree ---- */

/* lm__cpu_dot's tree over 16 partial sums a0 (0-7), a1 (8-15): acc[j] += acc[j + w] for
 * w = 8, 4, 2, 1, the same pairs added in vector lanes */
LM__AVX2 LM__INLINE float lm__tree16(__m256 a0, __m256 a1) {
    const __m256 t8 = _mm256_add_ps(a0, a1);
    const __m128 t4 = _mm_add_ps(_mm256_castps256_ps128(t8), _mm256_extractf128_ps(t8, 1));
    const __m128 t2 = _mm_add_ps(t4, _mm_movehl_ps(t4, t4));
    return _mm_cvtss_f32(_mm_add_ss(t2, _mm_movehdup_ps(t2)));
}

#define LM__FDOT_X(name, T, LOAD8, conv)                                                           \
    LM__AVX2 static float name(const void *vw, const float *x, int64_t n) {                        \
        const T *w = vw;                                                                           \
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();                                 \
        int64_t i = 0;                                                                             \
        for (; i + 16 <= n; i += 16) {                                                             \
            a0 = _mm256_add_ps(a0, _mm256_mul_ps(LOAD8(w + i), _mm256_loadu_ps(x + i)));           \
            a1 = _mm256_add_ps(a1, _mm256_mul_ps(LOAD8(w + i + 8), _mm256_loadu_ps(x + i + 8)));   \
        }                                                                                          \
        if (i == n) return lm__tree16(a0, a1);                                                     \
        float acc[16];                                                                             \
        _mm256_storeu_ps(acc, a0);                                                                 \
        _mm256_storeu_ps(acc + 8, a1);                                                             \
        for (int j = 0; i < n; i++, j++) acc[j] += conv(w[i]) * x[i];                              \
        return lm__tree16(_mm256_loadu_ps(acc), _mm256_loadu_ps(acc + 8));                         \
    }
#define LM__LD_F32(p) _mm256_loadu_ps(p)
#define LM__LD_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define LM__LD_BF16(p)                                                                             \
    _mm256_castsi256_ps(                                                                           \
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))), 16))
#define LM__ID(v) (v)
LM__FDOT_X(lm__fdot_f32_x, float, LM__LD_F32, LM__ID)
LM__FDOT_X(lm__fdot_f16_x, uint16_t, LM__LD_F16, lm_fp16_to_fp32)
LM__FDOT_X(lm__fdot_bf16_x, uint16_t, LM__LD_BF16, lm_bf16_to_fp32)

/* F(args..., n) with n in 1..4 a constant, so F's loops over n unroll */
#define LM__SWITCH4(n, F, ...)                                                                     \
    switch (n) {                                                                                   \
    case 1:                                                                                        \
        F(__VA_ARGS__, 1);                                                                         \
        break;                                                                                     \
    case 2:                                                                                        \
        F(__VA_ARGS__, 2);                                                                         \
        break;                                                                                     \
    case 3:                                                                                        \
        F(__VA_ARGS__, 3);                                                                         \
        break;                                                                                     \
    default:                                                                                       \
        F(__VA_ARGS__, 4);                                                                         \
        break;                                                                                     \
    }

/* Scores of one K row with HN (<= 4) query heads: its chunks converted once for all */
#define LM__ATTN_QK_ROW(T, LOAD8)                                                                  \
    LM__AVX2 LM__INLINE void lm__qk_row_##T(const T *k, const float *const *q, int64_t d,          \
                                            float *s, int ss, const int HN) {                      \
        __m256 a[4][2];                                                                            \
        for (int h = 0; h < HN; h++) a[h][0] = a[h][1] = _mm256_setzero_ps();                      \
        for (int64_t i = 0; i < d; i += 16) {                                                      \
            const __m256 k0 = LOAD8(k + i), k1 = LOAD8(k + i + 8);                                 \
            for (int h = 0; h < HN; h++) {                                                         \
                a[h][0] = _mm256_add_ps(a[h][0], _mm256_mul_ps(k0, _mm256_loadu_ps(q[h] + i)));    \
                a[h][1] =                                                                          \
                    _mm256_add_ps(a[h][1], _mm256_mul_ps(k1, _mm256_loadu_ps(q[h] + i + 8)));      \
            }                                                                                      \
        }                                                                                          \
        for (int h = 0; h < HN; h++) s[h * ss] = lm__tree16(a[h][0], a[h][1]);                     \
    }
#define LM__ATTN_QK_X(name, T, one)                                                                \
    LM__AVX2 static void name(const T *const *k, int n, const float *const *q, int nh, int64_t d,  \
                              float *s, int ss) {                                                  \
        if (d % 16) { /* the tails: one dot at a time */                                           \
            for (int h = 0; h < nh; h++)                                                           \
                for (int j = 0; j < n; j++) s[h * ss + j] = one(k[j], q[h], d);                    \
            return;                                                                                \
        }                                                                                          \
        int j0 = 0;                                                                                \
        {                                                                                          \
            int j = 0;                                                                             \
            LM__QK_ROWS8(T)                                                                        \
            j0 = j;                                                                                \
        }                                                                                          \
        for (int h0 = 0; h0 < nh; h0 += 4)                                                         \
            for (int j = j0; j < n; j++) {                                                         \
                float *o = s + h0 * ss + j;                                                        \
                LM__SWITCH4(nh - h0 < 4 ? nh - h0 : 4, lm__qk_row_##T, k[j], q + h0, d, o, ss)     \
            }                                                                                      \
    }
#ifdef LM__VNNI
/* the 16 partial sums in one zmm: the same lanes, half the steps */
#define LM__LD16_F32(p) _mm512_loadu_ps(p)
#define LM__LD16_F16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
LM__AVX2 LM__INLINE __m256 lm__zhi(__m512 a) {
    return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1));
}
#define LM__ATTN_QK_ROW16(T, LOAD16)                                                               \
    LM__AVX2 LM__INLINE void lm__qk_row_##T(const T *k, const float *const *q, int64_t d,          \
                                            float *s, int ss, const int HN) {                      \
        __m512 a[4];                                                                               \
        for (int h = 0; h < HN; h++) a[h] = _mm512_setzero_ps();                                   \
        for (int64_t i = 0; i < d; i += 16) {                                                      \
            const __m512 kk = LOAD16(k + i);                                                       \
            for (int h = 0; h < HN; h++)                                                           \
                a[h] = _mm512_add_ps(a[h], _mm512_mul_ps(kk, _mm512_loadu_ps(q[h] + i)));          \
        }                                                                                          \
        for (int h = 0; h < HN; h++)                                                               \
            s[h * ss] = lm__tree16(_mm512_castps512_ps256(a[h]), lm__zhi(a[h]));                   \
    }
LM__ATTN_QK_ROW16(float, LM__LD16_F32)
LM__ATTN_QK_ROW16(uint16_t, LM__LD16_F16)
/* 8 rows' 16 partial sums a[r] -> their dots into s[0..8): lm__tree16's pairs (lanes j and
 * j + 8, then + 4, + 2, + 1 of one row), added for all rows at once by shuffling two rows'
 * halves into one vector (short chains instead of 8 horizontal reductions) */
LM__AVX2 LM__INLINE void lm__tree16x8(const __m512 *a, float *s) {
    __m512 t8[4], t4[2];
    for (int r = 0; r < 4; r++) /* [row 2r | row 2r + 1], 8 lanes each */
        t8[r] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * r], a[2 * r + 1], 0x44),
                              _mm512_shuffle_f32x4(a[2 * r], a[2 * r + 1], 0xee));
    for (int r = 0; r < 2; r++) /* rows 4r .. 4r + 3, 4 lanes each */
        t4[r] = _mm512_add_ps(_mm512_shuffle_f32x4(t8[2 * r], t8[2 * r + 1], 0x88),
                              _mm512_shuffle_f32x4(t8[2 * r], t8[2 * r + 1], 0xdd));
    /* in 128-bit lane q: row q (from t4[0]) then row 4 + q (t4[1]), 2 lanes each */
    const __m512 t2 =
        _mm512_add_ps(_mm512_shuffle_ps(t4[0], t4[1], 0x44), _mm512_shuffle_ps(t4[0], t4[1], 0xee));
    const __m512 t1 =
        _mm512_add_ps(_mm512_shuffle_ps(t2, t2, 0x88), _mm512_shuffle_ps(t2, t2, 0xdd));
    const __m512 o = _mm512_permutexvar_ps(
        _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0), t1);
    _mm256_storeu_ps(s, _mm512_castps512_ps256(o));
}
/* 8 rows with HN (<= 3) heads, each K chunk converted once */
#define LM__ATTN_QK_ROWS8(T, LOAD16)                                                               \
    LM__AVX2 LM__INLINE void lm__qk_rows8_##T(const T *const *k, const float *const *q, int64_t d, \
                                              float *s, int ss, const int HN) {                    \
        __m512 a[3][8];                                                                            \
        for (int h = 0; h < HN; h++)                                                               \
            for (int r = 0; r < 8; r++) a[h][r] = _mm512_setzero_ps();                             \
        for (int64_t i = 0; i < d; i += 16) {                                                      \
            __m512 qv[3];                                                                          \
            for (int h = 0; h < HN; h++) qv[h] = _mm512_loadu_ps(q[h] + i);                        \
            for (int r = 0; r < 8; r++) {                                                          \
                const __m512 kk = LOAD16(k[r] + i);                                                \
                for (int h = 0; h < HN; h++)                                                       \
                    a[h][r] = _mm512_add_ps(a[h][r], _mm512_mul_ps(kk, qv[h]));                    \
            }                                                                                      \
        }                                                                                          \
        for (int h = 0; h < HN; h++) lm__tree16x8(a[h], s + h * ss);                               \
    }
LM__ATTN_QK_ROWS8(float, LM__LD16_F32)
LM__ATTN_QK_ROWS8(uint16_t, LM__LD16_F16)
#define LM__QK_ROWS8(T)                                                                            \
    for (; j + 8 <= n; j += 8)                                                                     \
        for (int h0 = 0; h0 < nh; h0 += 3) {                                                       \
            float *o = s + h0 * ss + j;                                                            \
            switch (nh - h0 < 3 ? nh - h0 : 3) {                                                   \
            case 1:                                                                                \
                lm__qk_rows8_##T(k + j, q + h0, d, o, ss, 1);                                      \
                break;                                                                             \
            case 2:                                                                                \
                lm__qk_rows8_##T(k + j, q + h0, d, o, ss, 2);                                      \
                break;                                                                             \
            default:                                                                               \
                lm__qk_rows8_##T(k + j, q + h0, d, o, ss, 3);                                      \
                break;                                                                             \
            }                                                                                      \
        }
#else
#define LM__QK_ROWS8(T)
LM__ATTN_QK_ROW(float, LM__LD_F32)
LM__ATTN_QK_ROW(uint16_t, LM__LD_F16)
#endif
LM__ATTN_QK_X(lm__attn_qk_x, float, lm__fdot_f32_x)
LM__ATTN_QK_X(lm__attn_qk_f16_x, uint16_t, lm__fdot_f16_x)

/* vcvtps2ph rounds to nearest even as lm_fp32_to_fp16; NaN lanes take its canonical
 * sign | 0x7e00 (the instruction keeps payload bits) */
LM__AVX2 static void lm__f32_to_f16_x(const float *src, uint16_t *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(src + i);
        const __m128i h = _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m256i nan32 = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
        const __m256i canon =
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(x), 16),
                                             _mm256_set1_epi32(0x8000)),
                            _mm256_set1_epi32(0x7e00));
        /* to 16-bit lanes in order: packs keeps the 0/-1 masks, packus the halves */
        const __m128i m =
            _mm_packs_epi32(_mm256_castsi256_si128(nan32), _mm256_extracti128_si256(nan32, 1));
        const __m128i c =
            _mm_packus_epi32(_mm256_castsi256_si128(canon), _mm256_extracti128_si256(canon, 1));
        _mm_storeu_si128((__m128i *)(dst + i), _mm_blendv_epi8(h, c, m));
    }
    for (; i < n; i++) dst[i] = lm_fp32_to_fp16(src[i]);
}

LM__AVX2 static void lm__f16_to_f32_x(const uint16_t *src, float *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, LM__LD_F16(src + i));
    for (; i < n; i++) dst[i] = lm_fp16_to_fp32(src[i]);
}

/* HN (<= 4) heads x U vectors of W lanes of their outputs per step, each V chunk converted
 * once for all heads: independent add chains hide the latency. One body for ymm and zmm. */
#define LM__PV_CHUNK_V(name, T, VT, W, UMAX, LOADV, LOADU, STOREU, SET1, ADD, MUL)                 \
    LM__AVX2 LM__INLINE void name(float *const *a, const T *const *v, int n, const float *w,       \
                                  int ws, int64_t i, const int HN, const int U) {                  \
        VT x[4][UMAX];                                                                             \
        for (int h = 0; h < HN; h++)                                                               \
            for (int u = 0; u < U; u++) x[h][u] = LOADU(a[h] + i + (W)*u);                         \
        for (int j = 0; j < n; j++) {                                                              \
            VT vv[UMAX];                                                                           \
            for (int u = 0; u < U; u++) vv[u] = LOADV(v[j] + i + (W)*u);                           \
            for (int h = 0; h < HN; h++) {                                                         \
                const VT ww = SET1(w[h * ws + j]);                                                 \
                for (int u = 0; u < U; u++) x[h][u] = ADD(x[h][u], MUL(ww, vv[u]));                \
            }                                                                                      \
        }                                                                                          \
        for (int h = 0; h < HN; h++)                                                               \
            for (int u = 0; u < U; u++) STOREU(a[h] + i + (W)*u, x[h][u]);                         \
    }
#define LM__PV_CHUNK8(T, LOAD8)                                                                    \
    LM__PV_CHUNK_V(lm__pv_chunk_##T, T, __m256, 8, 2, LOAD8, _mm256_loadu_ps, _mm256_storeu_ps,    \
                   _mm256_set1_ps, _mm256_add_ps, _mm256_mul_ps)
LM__PV_CHUNK8(float, LM__LD_F32)
LM__PV_CHUNK8(uint16_t, LM__LD_F16)
#ifdef LM__VNNI /* 64 lanes a step in zmm first */
#define LM__PV_CHUNK16(T, LOAD16)                                                                  \
    LM__PV_CHUNK_V(lm__pv_chunk16_##T, T, __m512, 16, 4, LOAD16, _mm512_loadu_ps,                  \
                   _mm512_storeu_ps, _mm512_set1_ps, _mm512_add_ps, _mm512_mul_ps)
LM__PV_CHUNK16(float, LM__LD16_F32)
LM__PV_CHUNK16(uint16_t, LM__LD16_F16)
#define LM__PV16(T)                                                                                \
    for (; i + 64 <= d; i += 64) lm__pv_chunk16_##T(a, v, n, w, ws, i, HN, 4);
#else
#define LM__PV16(T)
#endif
LM__INLINE float lm__pv_conv_float(float x) {
    return x;
}
LM__INLINE float lm__pv_conv_uint16_t(uint16_t x) {
    return lm_fp16_to_fp32(x);
}
#define LM__ATTN_PV_HEADS(T)                                                                       \
    LM__AVX2 LM__INLINE void lm__pv_heads_##T(float *const *a, const T *const *v, int n,           \
                                              const float *w, int ws, int64_t d, const int HN) {   \
        int64_t i = 0;                                                                             \
        LM__PV16(T)                                                                                \
        for (; i + 16 <= d; i += 16) lm__pv_chunk_##T(a, v, n, w, ws, i, HN, 2);                   \
        for (; i + 8 <= d; i += 8) lm__pv_chunk_##T(a, v, n, w, ws, i, HN, 1);                     \
        for (; i < d; i++)                                                                         \
            for (int h = 0; h < HN; h++)                                                           \
                for (int j = 0; j < n; j++) a[h][i] += w[h * ws + j] * lm__pv_conv_##T(v[j][i]);   \
    }
LM__ATTN_PV_HEADS(float)
LM__ATTN_PV_HEADS(uint16_t)
#define LM__ATTN_PV_X(name, T)                                                                     \
    LM__AVX2 static void name(float *const *a, const T *const *v, int n, const float *w, int ws,   \
                              int nh, int64_t d) {                                                 \
        for (int h0 = 0; h0 < nh; h0 += 4) {                                                       \
            const float *wh = w + h0 * ws;                                                         \
            LM__SWITCH4(nh - h0 < 4 ? nh - h0 : 4, lm__pv_heads_##T, a + h0, v, n, wh, ws, d)      \
        }                                                                                          \
    }
LM__ATTN_PV_X(lm__attn_pv_x, float)
LM__ATTN_PV_X(lm__attn_pv_f16_x, uint16_t)

/* ---- attention's online softmax: lm__attn_soft (cpu_dot_scalar.c), 8 slots a vector ---- */

/* lm__exp_neg on 8 lanes, operation for operation (max(lo, x) is x < lo ? lo : x, a NaN x
 * kept; the bits of t as the scalar form's integer) */
LM__AVX2 LM__INLINE __m256 lm__exp_neg8(__m256 x) {
    static const float poly[8] = LM__EXP_POLY;
    const __m256 lo = _mm256_set1_ps(LM__EXP_MIN), big = _mm256_set1_ps(LM__EXP_BIG);
    const __m256 xc = _mm256_max_ps(lo, x);
    const __m256 t = _mm256_add_ps(_mm256_mul_ps(xc, _mm256_set1_ps(LM__EXP_L2E)), big);
    const __m256 n = _mm256_sub_ps(t, big);
    const __m256 r =
        _mm256_sub_ps(_mm256_sub_ps(xc, _mm256_mul_ps(n, _mm256_set1_ps(LM__EXP_LNHI))),
                      _mm256_mul_ps(n, _mm256_set1_ps(LM__EXP_LNLO)));
    __m256 p = _mm256_set1_ps(poly[0]);
    for (int i = 1; i < 8; i++) p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(poly[i]));
    const __m256i eb = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_sub_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(0x4b400000)),
                         _mm256_set1_epi32(127)),
        23);
    const __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(eb));
    return _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
}

/* lm__tile_max / lm__tile_sum's tree on slots 0-7 (a) and 8-15 (b): the same pairs, max(x, y)
 * being x > y ? x : y */
#define LM__TREE16_X(name, OP8, OP4)                                                               \
    LM__AVX2 LM__INLINE float name(__m256 a, __m256 b) {                                           \
        const __m256 t = OP8(a, b);                                                                \
        const __m128 u = OP4(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));              \
        const __m128 v = OP4(u, _mm_movehl_ps(u, u));                                              \
        return _mm_cvtss_f32(OP4(v, _mm_shuffle_ps(v, v, 1)));                                     \
    }
LM__TREE16_X(lm__tile_max_x, _mm256_max_ps, _mm_max_ps)
LM__TREE16_X(lm__tile_sum_x, _mm256_add_ps, _mm_add_ps)

LM__AVX2 static void lm__attn_soft_x(lm__attn_state *st, float *s, float *w, int nh, int o, int n,
                                     float scale, int64_t d) {
    enum { PT = LM__ATTN_PT };
    const __m256i i0 = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                  i1 = _mm256_add_epi32(i0, _mm256_set1_epi32(8));
    const __m256i lo = _mm256_set1_epi32(o - 1), hi = _mm256_set1_epi32(o + n);
    const __m256 in0 = _mm256_castsi256_ps(
                     _mm256_and_si256(_mm256_cmpgt_epi32(i0, lo), _mm256_cmpgt_epi32(hi, i0))),
                 in1 = _mm256_castsi256_ps(
                     _mm256_and_si256(_mm256_cmpgt_epi32(i1, lo), _mm256_cmpgt_epi32(hi, i1)));
    const __m256 ninf = _mm256_set1_ps(-INFINITY), sc = _mm256_set1_ps(scale);
    for (int h = 0; h < nh; h++) {
        lm__attn_state *x = &st[h];
        float *sh = s + h * PT, *wh = w + h * PT;
        for (int i = 0; i < o; i++) sh[i] = -INFINITY; /* never read unset slots */
        for (int i = o + n; i < PT; i++) sh[i] = -INFINITY;
        const __m256 a = _mm256_blendv_ps(ninf, _mm256_mul_ps(_mm256_loadu_ps(sh), sc), in0),
                     b = _mm256_blendv_ps(ninf, _mm256_mul_ps(_mm256_loadu_ps(sh + 8), sc), in1);
        lm__attn_rescale(x, lm__tile_max_x(a, b), d);
        const __m256 m = _mm256_set1_ps(x->m);
        const __m256 e0 = lm__exp_neg8(_mm256_sub_ps(a, m)), e1 = lm__exp_neg8(_mm256_sub_ps(b, m));
        _mm256_storeu_ps(wh, e0), _mm256_storeu_ps(wh + 8, e1);
        x->l += lm__tile_sum_x(e0, e1);
    }
}

/* ---- activation quantization: lm__quantize_16's operations, 8 lanes at a time ---- */

/* q[j] = round half away from zero (x[j] / d), d = amax / 32767; n a multiple of 16 */
LM__AVX2 LM__INLINE void lm__quantize_16_x(const float *x, int16_t *q, int n, float *d_out) {
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 mx = _mm256_setzero_ps();
    /* max_ps returns its second operand when the first is NaN: NaNs are skipped, as fmaxf */
    for (int j = 0; j < n; j += 8)
        mx = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + j), absm), mx);
    float m8[8];
    _mm256_storeu_ps(m8, mx);
    float amax = 0; /* the max of numbers: any order gives the same */
    for (int i = 0; i < 8; i++) amax = m8[i] > amax ? m8[i] : amax;
    const float d = amax / 32767;
    const float id = d != 0 ? 1 / d : 0;
    const __m256 vid = _mm256_set1_ps(id), half = _mm256_set1_ps(0.5f),
                 mhalf = _mm256_set1_ps(-0.5f), zero = _mm256_setzero_ps();
    const __m256i hi = _mm256_set1_epi32(32767), lo = _mm256_set1_epi32(-32767);
    for (int j = 0; j < n; j += 16) {
        __m256i r[2];
        for (int h = 0; h < 2; h++) {
            const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + j + 8 * h), vid);
            const __m256 off = _mm256_blendv_ps(mhalf, half, _mm256_cmp_ps(v, zero, _CMP_GE_OQ));
            r[h] = _mm256_max_epi32(
                _mm256_min_epi32(_mm256_cvttps_epi32(_mm256_add_ps(v, off)), hi), lo);
        }
        _mm256_storeu_si256((__m256i *)(q + j),
                            _mm256_permute4x64_epi64(_mm256_packs_epi32(r[0], r[1]), 0xd8));
    }
    *d_out = d;
}

/* the sums of 8 chunks of 16 int16 (exact) */
LM__AVX2 LM__INLINE __m256i lm__sums16x8(const int16_t *q) {
    const __m256i one = _mm256_set1_epi16(1);
    __m256i p[8];
    for (int i = 0; i < 8; i++)
        p[i] = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(q + 16 * i)), one);
    return lm__hsum8x8(p);
}

LM__AVX2 static void lm__quantize_q16a_x(const float *restrict x, lm__q16a *restrict y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++) {
        lm__quantize_16_x(x + 32 * b, y[b].qs, 32, &y[b].d);
        const __m256i one = _mm256_set1_epi16(1);
        const __m256i s = _mm256_add_epi32(
            _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[b].qs), one),
            _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(y[b].qs + 16)), one));
        int32_t l[8], sum = 0;
        _mm256_storeu_si256((__m256i *)l, s);
        for (int i = 0; i < 8; i++) sum += l[i];
        y[b].s = y[b].d * (float)sum;
    }
}

LM__AVX2 static void lm__quantize_q16k_x(const float *restrict x, lm__q16k *restrict y, int64_t n) {
    for (int64_t b = 0; b < n / LM_QK_K; b++) {
        lm__quantize_16_x(x + LM_QK_K * b, y[b].qs, LM_QK_K, &y[b].d);
        _mm256_storeu_si256((__m256i *)y[b].bsums, lm__sums16x8(y[b].qs));
        _mm256_storeu_si256((__m256i *)(y[b].bsums + 8), lm__sums16x8(y[b].qs + 128));
    }
}

#define LM__PACKED_IN 1
#include "cpu_dot_packed.c"

bool LM__KTABLE(lm__cpu_kernels *k) {
    lm__cpu_kernels_scalar(k);
    k->attn_pv = lm__attn_pv_x;
    k->attn_qk = lm__attn_qk_x;
    k->attn_pv_f16 = lm__attn_pv_f16_x;
    k->attn_qk_f16 = lm__attn_qk_f16_x;
    k->attn_soft = lm__attn_soft_x;
    k->quantize_q16a = lm__quantize_q16a_x;
    k->quantize_q16k = lm__quantize_q16k_x;
    k->level = LM__KLEVEL;
    k->qdot[LM_TYPE_Q4_0] = lm__qdot_q4_0_x;
    k->qdot[LM_TYPE_Q4_1] = lm__qdot_q4_1_x;
    k->qdot[LM_TYPE_Q5_0] = lm__qdot_q5_0_x;
    k->qdot[LM_TYPE_Q5_1] = lm__qdot_q5_1_x;
    k->qdot[LM_TYPE_Q8_0] = lm__qdot_q8_0_x;
    k->qdot[LM_TYPE_Q2_K] = lm__qdot_q2_K_x;
    k->qdot[LM_TYPE_Q3_K] = lm__qdot_q3_K_x;
    k->qdot[LM_TYPE_Q4_K] = lm__qdot_q4_K_x;
    k->qdot[LM_TYPE_Q5_K] = lm__qdot_q5_K_x;
    k->qdot[LM_TYPE_Q6_K] = lm__qdot_q6_K_x;
    lm__p8_kernels(k);
    k->fdot[LM_TYPE_F32] = lm__fdot_f32_x;
    k->fdot[LM_TYPE_F16] = lm__fdot_f16_x;
    k->fdot[LM_TYPE_BF16] = lm__fdot_bf16_x;
    k->f16_to_f32 = lm__f16_to_f32_x;
    k->f32_to_f16 = lm__f32_to_f16_x;
    lm__cpu_act_avx2(k);
    return true;
}

#elif !defined(LM__VNNI)
bool lm__cpu_kernels_avx2(lm__cpu_kernels *k) {
    (void)k;
    return false;
}
#endif
