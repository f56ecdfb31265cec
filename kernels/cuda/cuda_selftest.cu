/* Host-side checks of the CUDA kernels' arithmetic, which run without a device (the
 * build machines and CI have none): the integer mul_mat paths are replayed on the host
 * with the very functions the kernels call (cuda_common.cuh: block unpacking, dp4a sums,
 * scale combination, block terms, tensor-core folds, activation quantisation) in the
 * kernels' order, and the staging and attention-split geometry is checked for every
 * alignment and size. tests/test_cuda_ops.c compares the replay with the CPU backend.
 * What only a GPU can check: indexing by threads, shared-memory staging, shuffles, WMMA
 * fragment layouts, launch shapes. */
#include "cuda_common.cuh"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Activations as cuda_quant.cu lays them out and computes them, on the host. */
static lm_status lm__st_quantize(const float *x, int64_t K, int64_t M, int blk, lm__cu_act *a) {
    const size_t n = (size_t)(K * M);
    a->hi = (int8_t *)aligned_alloc(64, n + 64);
    a->lo = (uint8_t *)aligned_alloc(64, n + 64);
    a->sum16 = (int32_t *)malloc(n / 16 * 4 + 4);
    a->d = (float *)malloc(n / (size_t)blk * 4 + 4);
    a->s = (float *)malloc(n / 32 * 4 + 4);
    a->K = K, a->M = M, a->blk = blk;
    if (!a->hi || !a->lo || !a->sum16 || !a->d || !a->s)
        return lm__error(LM_ERR_NOMEM, "cuda self-test: activations");
    for (int64_t m = 0; m < M; m++)
        for (int64_t b = 0; b < K / blk; b++) {
            const float *xb = x + m * K + b * blk;
            float amax = 0.0f, d, id;
            for (int i = 0; i < blk; i++) amax = fmaxf(amax, fabsf(xb[i]));
            lm__cu_q16_scale(amax, d, id);
            a->d[m * (K / blk) + b] = d;
            for (int g = 0; g < blk / 16; g++) {
                int s = 0;
                for (int i = 16 * g; i < 16 * g + 16; i++) {
                    const int r = lm__cu_q16(xb[i], id);
                    const int64_t e = m * K + b * blk + i;
                    a->hi[e] = (int8_t)(r >> 8);
                    a->lo[e] = (uint8_t)(r & 255);
                    s += r;
                }
                a->sum16[m * (K / 16) + b * (blk / 16) + g] = s;
            }
            if (blk == 32) {
                const int32_t *s16 = a->sum16 + m * (K / 16) + 2 * b;
                a->s[m * (K / 32) + b] = LM_CU_FMUL(d, LM_CU_I2F(s16[0] + s16[1]));
            }
        }
    return LM_OK;
}

static void lm__st_free(lm__cu_act *a) {
    free(a->hi), free(a->lo), free(a->sum16), free(a->d), free(a->s);
}

/* cuda_matvec.cu's result for (row n, column m): block terms added in block order. */
template <typename Q> static float lm__st_matvec(const char *row, const lm__cu_act &a, int64_t m) {
    const int64_t K = a.K, nblk = K / Q::QK;
    float acc = 0.0f;
    for (int64_t blk = 0; blk < nblk; blk++) {
        const uint8_t *bp = (const uint8_t *)row + blk * Q::SIZE;
        long long isum = 0, msum = 0;
        float term = 0.0f;
        for (int it = 0; it < Q::ITEMS; it++) { /* the lanes of a block */
            int v[8], s0, s1;
            for (int w = 0; w < 8; w++) v[w] = Q::word(bp, it, w);
            const int64_t e = m * K + (blk * Q::ITEMS + it) * 32;
            lm__cu_item_isums(v, a.hi + e, a.lo + e, s0, s1);
            if constexpr (Q::KQ) {
                const int32_t *b16 = a.sum16 + m * (K / 16) + blk * 16 + 2 * it;
                Q::combine(bp, it, s0, s1, b16[0], b16[1], isum, msum);
            } else {
                const int32_t *b16 = a.sum16 + m * (K / 16) + 2 * blk;
                float dw, mw;
                Q::scales(bp, dw, mw);
                term =
                    lm__cu_term_legacy<Q>(dw, mw, a.d[m * (K / 32) + blk], a.s[m * (K / 32) + blk],
                                          s0 + s1 - Q::OFF * (b16[0] + b16[1]));
            }
        }
        if constexpr (Q::KQ) term = lm__cu_term_k<Q>(bp, isum, msum, a.d[m * (K / 256) + blk]);
        acc = LM_CU_FADD(acc, term);
    }
    return acc;
}

/* cuda_matmul.cu's result for (row n, column m): per item the two 16-element halves as
 * the WMMA tiles hold them (levels x hi and levels x (lo - 128) as int8), the lo
 * correction 128 * sum(levels), then the fold per sub-block. */
template <typename Q> static float lm__st_matmul(const char *row, const lm__cu_act &a, int64_t m) {
    const int64_t K = a.K;
    float acc = 0.0f;
    for (int64_t item = 0; item < K / 32; item++) {
        const int64_t blk = item / Q::ITEMS;
        const int it = (int)(item % Q::ITEMS);
        const uint8_t *bp = (const uint8_t *)row + blk * Q::SIZE;
        int S[2], wsum[2], bsum[2];
        float A[2] = {0, 0}, B[2] = {0, 0};
        for (int h = 0; h < 2; h++) {
            int ch = 0, cl = 0, ws = 0;
            for (int w = 4 * h; w < 4 * h + 4; w++) {
                const int v = Q::word(bp, it, w);
                ws = lm__cu_dp4a_ss(v, 0x01010101, ws);
                for (int e = 0; e < 4; e++) {
                    const int64_t idx = m * K + item * 32 + 4 * w + e;
                    const int lv = (int8_t)(v >> (8 * e));
                    ch += lv * a.hi[idx];
                    cl += lv * (int8_t)(a.lo[idx] ^ 0x80);
                }
            }
            S[h] = ch * 256 + cl;
            wsum[h] = ws;
            bsum[h] = a.sum16[m * (K / 16) + item * 2 + h];
            if constexpr (Q::KQ)
                lm__cu_kab<Q>::ab(bp, it, h, A[h], B[h]);
            else
                Q::scales(bp, A[h], B[h]);
        }
        const float cd = a.d[m * (K / a.blk) + item * 32 / a.blk];
        const float cs = Q::KQ ? 0.0f : a.s[m * (K / 32) + item];
        if (Q::SUB == 32) {
            const int Sx = S[0] + S[1] + 128 * (wsum[0] + wsum[1]);
            acc = LM_CU_FADD(acc, lm__cu_fold<Q>(Sx, bsum[0] + bsum[1], A[0], B[0], cd, cs));
        } else {
            for (int h = 0; h < 2; h++)
                acc = LM_CU_FADD(acc,
                                 lm__cu_fold<Q>(S[h] + 128 * wsum[h], bsum[h], A[h], B[h], cd, cs));
        }
    }
    return acc;
}

struct lm__st_run {
    const char *w;
    size_t rs;
    int64_t N, M;
    const lm__cu_act *a;
    float *mv, *mm;
    template <typename Q> void operator()() const {
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                mv[m * N + n] = lm__st_matvec<Q>(w + n * rs, *a, m);
                mm[m * N + n] = lm__st_matmul<Q>(w + n * rs, *a, m);
            }
    }
};

extern "C" lm_status lm__cuda_emulate_mul_mat(lm_type t, const void *w, int64_t K, int64_t N,
                                              const float *x, int64_t M, float *out_mv,
                                              float *out_mm) {
    if (!lm__cu_is_quant(t))
        return lm__error(LM_ERR_UNSUPPORTED, "cuda self-test: %s is not an integer-kernel type",
                         lm_type_get((uint32_t)t).name);
    const int blk = lm_type_get((uint32_t)t).blck == LM_QK_K ? LM_QK_K : 32;
    if (K % blk) return lm__error(LM_ERR_INVALID_ARG, "cuda self-test: K = %lld", (long long)K);
    lm__cu_act a;
    memset(&a, 0, sizeof a);
    lm_status s = lm__st_quantize(x, K, M, blk, &a);
    if (s == LM_OK) {
        lm__st_run f = {(const char *)w, lm_row_size(t, K), N, M, &a, out_mv, out_mm};
        lm__cu_dispatch_quant(t, f);
    }
    lm__st_free(&a);
    return s;
}

/* ---- geometry ---- */

template <typename Q> static int lm__st_stage(char *msg, size_t size) {
    const int bpc = 32 / Q::ITEMS, chunk = bpc * Q::SIZE, n16max = LM_CU_STAGE_N16(chunk);
    if ((n16max + 31) / 32 * 32 < n16max) return snprintf(msg, size, "prefetch registers"), 1;
    for (uintptr_t gs = 4096; gs < 4096 + 16; gs += 2)
        for (int nb = 1; nb <= bpc; nb++) {
            uintptr_t a0;
            int64_t off;
            int n16;
            lm__cu_stage_span(gs, nb, Q::SIZE, a0, off, n16);
            const uintptr_t end = gs + (uintptr_t)(nb * Q::SIZE);
            if (a0 > gs || a0 % 16 || a0 + 16 * (uintptr_t)n16 < end || n16 > n16max ||
                (int64_t)gs - (int64_t)a0 != off || a0 + 16 * (uintptr_t)n16 >= end + 16) {
                snprintf(msg, size,
                         "staging of %d blocks of %d bytes at %% 16 = %d: %d loads (max %d)", nb,
                         (int)Q::SIZE, (int)(gs % 16), n16, n16max);
                return 1;
            }
            /* the last lane's unused block must still lie inside the staged words */
            if (off + (int64_t)bpc * Q::SIZE > 16 * (int64_t)n16max) {
                snprintf(msg, size, "stage too small for %d-byte blocks", (int)Q::SIZE);
                return 1;
            }
        }
    return 0;
}

struct lm__st_stage_all {
    char *msg;
    size_t size;
    int *bad;
    template <typename Q> void operator()() const { *bad += lm__st_stage<Q>(msg, size); }
};

static int lm__st_attn(char *msg, size_t size) {
    uint64_t r = 0x9e3779b97f4a7c15ull;
    for (int trial = 0; trial < 20000; trial++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        const int32_t pos = (int32_t)(r % 5000);
        const int32_t window = (int32_t)((r >> 20) % 3 == 0 ? 0 : (r >> 24) % 700);
        const int n_split = 1 + (int)((r >> 40) % 32);
        const int32_t lo = window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
        int32_t next = lo; /* the ranges must tile [lo, pos] in order */
        for (int sp = 0; sp < n_split; sp++) {
            int32_t st, en;
            lm__cu_attn_range(pos, window, n_split, sp, &st, &en);
            if (en < st) continue;
            if (st != next || (sp + 1 < n_split && en < pos && (en - st + 1) % 32)) {
                snprintf(msg, size, "attention split %d of %d for pos %d window %d: [%d, %d]", sp,
                         n_split, pos, window, st, en);
                return 1;
            }
            next = en + 1;
        }
        if (next != pos + 1) {
            snprintf(msg, size, "attention splits of pos %d window %d (x%d) end at %d", pos, window,
                     n_split, next - 1);
            return 1;
        }
    }
    return 0;
}

extern "C" int lm__cuda_selftest_geometry(char *msg, size_t size) {
    int bad = 0;
    msg[0] = '\0';
    const lm_type types[] = {LM_TYPE_Q4_0, LM_TYPE_Q4_1, LM_TYPE_Q5_0, LM_TYPE_Q5_1, LM_TYPE_Q8_0,
                             LM_TYPE_Q2_K, LM_TYPE_Q3_K, LM_TYPE_Q4_K, LM_TYPE_Q5_K, LM_TYPE_Q6_K};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        lm__st_stage_all f = {msg, size, &bad};
        lm__cu_dispatch_quant(types[i], f);
    }
    return bad + lm__st_attn(msg, size);
}
