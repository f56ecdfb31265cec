/* Reference quantizers of the k-quant formats (256-element super-blocks): Q2_K, Q3_K,
 * Q4_K, Q5_K, Q6_K and the Q8_K activation format. They follow ggml's reference
 * algorithms (the *_ref quantizers, without an importance matrix) with the same float
 * operations in the same order, so a row quantizes as llama.cpp's tools would quantize it.
 *
 * Each format stores, per sub-block, a small integer scale (and min) that is itself
 * scaled by an f16 super-scale. Quantizing is two passes: fit a float scale (and min) per
 * sub-block, quantize those to 4/6/8 bits against the largest one, then quantize the
 * values again with the scales as they will be decoded, so rounding of the scales does
 * not bias the values. */
#include "quant.h"

#include "../kernels/common/lm_quant_math.h"

#include <math.h>
#include <string.h>

/* Round to nearest, ties to even, for |f| < 2^22 (larger values are not reached: every
 * caller's argument is a ratio bounded by the grid size). Adding 1.5 * 2^23 puts the
 * integer in the low mantissa bits; defined for any input, NaN included. */
static int lm__nearest_int(float f) {
    float v = f + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

static int lm__clampi(int v, int lo, int hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

/* Error of one element under scale and min: squared or absolute. */
static float lm__err(float scale, int l, float min, float x, int use_mad) {
    float diff = scale * (float)l + min - x;
    return use_mad ? fabsf(diff) : diff * diff;
}

/* Fit x[i] ~ scale * L[i] + min with L in [0, nmax] and min <= 0, minimising the
 * weighted error: start from the min/max grid, then try nstep + 1 slightly different
 * grids (nmax + rmin + rdelta * k steps over the range), each followed by a weighted
 * least-squares fit of scale and min to its levels; keep the best. Returns scale; *neg_min
 * receives -min (>= 0). (ggml make_qkx2_quants) */
static float lm__fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
                               float *neg_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                               int use_mad) {
    float min = x[0], max = x[0];
    float sum_w = w[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *neg_min = -min;
        return 0.0f;
    }
    float iscale = (float)nmax / (max - min);
    float scale = 1 / iscale;
    float best = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)lm__clampi(lm__nearest_int(iscale * (x[i] - min)), 0, nmax);
        best += w[i] * lm__err(scale, L[i], min, x[i], use_mad);
    }
    for (int k = 0; k <= nstep; k++) {
        iscale = (rmin + rdelta * (float)k + (float)nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = lm__clampi(lm__nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * (float)l;
            sum_l2 += w[i] * (float)l * (float)l;
            sum_xl += w[i] * (float)l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (!(D > 0)) continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        if (this_min > 0) { /* a positive min is not representable: fit the scale alone */
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        float err = 0;
        for (int i = 0; i < n; i++)
            err += w[i] * lm__err(this_scale, Laux[i], this_min, x[i], use_mad);
        if (err < best) {
            memcpy(L, Laux, (size_t)n);
            best = err;
            scale = this_scale;
            min = this_min;
        }
    }
    *neg_min = -min;
    return scale;
}

/* Signed value of largest magnitude (the first one on ties), 0 for an all-zero x. */
static float lm__signed_max(int n, const float *x, float *amax_out) {
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    *amax_out = amax;
    return max;
}

#define LM__GROUP_EPS 1e-15f /* below this a group counts as all zero */

/* Symmetric fit x[i] ~ scale * (L[i] - nmax), L in [0, 2 nmax), weights x^2: the grid of
 * the largest value and 18 neighbouring grids, each with its least-squares scale; keeps
 * the best. Returns scale. (ggml make_qx_quants, rmse_type 1, no importance weights) */
static float lm__fit_symmetric(int n, int nmax, const float *x, int8_t *L) {
    float amax, max = lm__signed_max(n, x, &amax);
    if (amax < LM__GROUP_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = (float)-nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = lm__clampi(lm__nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int k = -9; k <= 9; k++) {
        if (k == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)k) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = lm__clampi(lm__nearest_int(iscale * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + lm__clampi(lm__nearest_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Symmetric fit for q3_K: x[i] ~ scale * L[i], L in [-nmax, nmax), weights x^2, then up
 * to 5 rounds of moving single elements to the level that best improves the weighted fit.
 * L is returned offset by nmax. (ggml make_q3_quants with do_rmse) */
static float lm__fit_q3(int n, int nmax, const float *x, int8_t *L) {
    float amax, max = lm__signed_max(n, x, &amax);
    if (amax < LM__GROUP_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    const float iscale = (float)-nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = lm__clampi(lm__nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    for (int round = 0; round < 5; round++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            if (!(slx > 0)) continue;
            float sl2 = suml2 - w * (float)L[i] * (float)L[i];
            int nl = lm__clampi(lm__nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
            if (nl == L[i]) continue;
            slx += w * x[i] * (float)nl;
            sl2 += w * (float)nl * (float)nl;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (int8_t)nl;
                sumlx = slx;
                suml2 = sl2;
                changed++;
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0 ? sumlx / suml2 : 0.0f;
}

/* The 2-bit packing of q2_K and q3_K: qs[32 h + l] holds L[128 h + l + 32 k] at bits 2k. */
static void lm__pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *p = L + 128 * h + l;
            qs[32 * h + l] = (uint8_t)(p[0] | (p[32] << 2) | (p[64] << 4) | (p[96] << 6));
        }
}

/* ---- q2_K ---- */

static void lm__quantize_q2_K(const float *x, lm_block_q2_K *y) {
    uint8_t L[LM_QK_K], Laux[16];
    float w[16], mins[16], scales[16];
    float max_scale = 0, max_min = 0; /* both >= 0: the min is taken out */
    for (int j = 0; j < 16; j++) {
        for (int l = 0; l < 16; l++) w[l] = fabsf(x[16 * j + l]);
        scales[j] =
            lm__fit_scale_min(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, 1);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    memset(y->scales, 0, sizeof y->scales);
    y->d = lm_fp32_to_fp16(0.0f);
    y->dmin = lm_fp32_to_fp16(0.0f);
    if (max_scale > 0) {
        const float iscale = 15.0f / max_scale;
        for (int j = 0; j < 16; j++) y->scales[j] = (uint8_t)lm__nearest_int(iscale * scales[j]);
        y->d = lm_fp32_to_fp16(max_scale / 15.0f);
    }
    if (max_min > 0) {
        const float iscale = 15.0f / max_min;
        for (int j = 0; j < 16; j++)
            y->scales[j] |= (uint8_t)((unsigned)lm__nearest_int(iscale * mins[j]) << 4);
        y->dmin = lm_fp32_to_fp16(max_min / 15.0f);
    }
    const float d = lm_fp16_to_fp32(y->d), dmin = lm_fp16_to_fp32(y->dmin);
    for (int j = 0; j < 16; j++) { /* again, against the scales as decoded */
        const float dl = d * (float)(y->scales[j] & 0x0f);
        if (dl == 0) continue;
        const float ml = dmin * (float)(y->scales[j] >> 4);
        for (int l = 0; l < 16; l++)
            L[16 * j + l] = (uint8_t)lm__clampi(lm__nearest_int((x[16 * j + l] + ml) / dl), 0, 3);
    }
    lm__pack_2bit(L, y->qs);
}

/* ---- q3_K ---- */

static void lm__quantize_q3_K(const float *x, lm_block_q3_K *y) {
    int8_t L[LM_QK_K];
    float scales[16];
    float amax = 0, max_scale = 0;
    for (int j = 0; j < 16; j++) {
        scales[j] = lm__fit_q3(16, 4, x + 16 * j, L + 16 * j);
        if (fabsf(scales[j]) > amax) {
            amax = fabsf(scales[j]);
            max_scale = scales[j];
        }
    }
    memset(y->scales, 0, sizeof y->scales);
    y->d = lm_fp32_to_fp16(0.0f);
    if (max_scale != 0) {
        const float iscale = -32.0f / max_scale;
        for (int j = 0; j < 16; j++) {
            int l = lm__clampi((int8_t)lm__nearest_int(iscale * scales[j]), -32, 31) + 32;
            if (j < 8)
                y->scales[j] = (uint8_t)(l & 0x0f);
            else
                y->scales[j - 8] |= (uint8_t)((l & 0x0f) << 4);
            y->scales[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
        }
        y->d = lm_fp32_to_fp16(1 / iscale);
    }
    const float d = lm_fp16_to_fp32(y->d);
    for (int j = 0; j < 16; j++) {
        const float dl = d * (float)(lm_q3_K_scale(y->scales, j) - 32);
        if (dl == 0) continue;
        for (int l = 0; l < 16; l++)
            L[16 * j + l] = (int8_t)(lm__clampi(lm__nearest_int(x[16 * j + l] / dl), -4, 3) + 4);
    }
    /* bit 2 of element e goes to hmask[e % 32] bit e / 32; the low 2 bits to qs */
    uint8_t low[LM_QK_K];
    memset(y->hmask, 0, sizeof y->hmask);
    for (int e = 0; e < LM_QK_K; e++) {
        int l = L[e];
        if (l > 3) {
            y->hmask[e % 32] |= (uint8_t)(1u << (e / 32));
            l -= 4;
        }
        low[e] = (uint8_t)l;
    }
    lm__pack_2bit(low, y->qs);
}

/* ---- q4_K, q5_K: 8 sub-blocks of 32 with 6-bit scales and mins ---- */

/* The inverse of lm_k4_scale_min: sub-blocks 0..3 in the low 6 bits of bytes 0..3 (scale)
 * and 4..7 (min); 4..7 split into nibbles in bytes 8..11 and 2-bit tops on bytes 0..7. */
static void lm__pack_k4_scales(const uint8_t *ls, const uint8_t *lm, uint8_t *s) {
    memset(s, 0, LM_K_SCALE_SIZE);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            s[j] = ls[j];
            s[j + 4] = lm[j];
        } else {
            s[j + 4] = (uint8_t)((ls[j] & 0x0f) | ((lm[j] & 0x0f) << 4));
            s[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            s[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

/* Shared by q4_K (nmax 15) and q5_K (nmax 31): levels into L, scales/mins into scales,
 * d and dmin into the f16 fields. */
static void lm__quantize_k4(const float *x, int nmax, float rmin, int nstep, uint16_t *d16,
                            uint16_t *dmin16, uint8_t *packed, uint8_t *L) {
    uint8_t Laux[32], ls[8], lm[8];
    float w[32], mins[8], scales[8];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        const float *xb = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += xb[l] * xb[l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(xb[l]);
        scales[j] =
            lm__fit_scale_min(32, nmax, xb, w, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, 0);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    for (int j = 0; j < 8; j++) {
        uint8_t a = (uint8_t)lm__nearest_int(inv_scale * scales[j]);
        uint8_t b = (uint8_t)lm__nearest_int(inv_min * mins[j]);
        ls[j] = a < 63 ? a : 63;
        lm[j] = b < 63 ? b : 63;
    }
    lm__pack_k4_scales(ls, lm, packed);
    *d16 = lm_fp32_to_fp16(max_scale / 63.0f);
    *dmin16 = lm_fp32_to_fp16(max_min / 63.0f);
    const float d = lm_fp16_to_fp32(*d16), dmin = lm_fp16_to_fp32(*dmin16);
    for (int j = 0; j < 8; j++) {
        int sc, m;
        lm_k4_scale_min(packed, j, &sc, &m);
        const float dl = d * (float)sc;
        if (dl == 0) continue;
        const float ml = dmin * (float)m;
        for (int l = 0; l < 32; l++)
            L[32 * j + l] =
                (uint8_t)lm__clampi(lm__nearest_int((x[32 * j + l] + ml) / dl), 0, nmax);
    }
}

static void lm__quantize_q4_K(const float *x, lm_block_q4_K *y) {
    uint8_t L[LM_QK_K];
    lm__quantize_k4(x, 15, -1.0f, 20, &y->d, &y->dmin, y->scales, L);
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < 32; l++)
            y->qs[32 * p + l] = (uint8_t)(L[64 * p + l] | (L[64 * p + 32 + l] << 4));
}

static void lm__quantize_q5_K(const float *x, lm_block_q5_K *y) {
    uint8_t L[LM_QK_K];
    lm__quantize_k4(x, 31, -0.5f, 15, &y->d, &y->dmin, y->scales, L);
    memset(y->qh, 0, sizeof y->qh);
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < 32; l++) {
            const int a = L[64 * p + l], b = L[64 * p + 32 + l];
            y->qs[32 * p + l] = (uint8_t)((a & 0x0f) | ((b & 0x0f) << 4));
            y->qh[l] |= (uint8_t)(((a >> 4) << (2 * p)) | ((b >> 4) << (2 * p + 1)));
        }
}

/* ---- q6_K ---- */

static void lm__quantize_q6_K(const float *x, lm_block_q6_K *y) {
    int8_t L[LM_QK_K];
    float scales[16];
    float amax = 0, max_scale = 0;
    for (int j = 0; j < 16; j++) {
        scales[j] = lm__fit_symmetric(16, 32, x + 16 * j, L + 16 * j);
        if (fabsf(scales[j]) > amax) {
            amax = fabsf(scales[j]);
            max_scale = scales[j];
        }
    }
    if (amax < LM__GROUP_EPS) { /* all (near) zero: an all-zero block decodes to 0 */
        memset(y, 0, sizeof *y);
        return;
    }
    const float iscale = -128.0f / max_scale;
    y->d = lm_fp32_to_fp16(1 / iscale);
    for (int j = 0; j < 16; j++) {
        int s = lm__nearest_int(iscale * scales[j]);
        y->scales[j] = (int8_t)(s < 127 ? s : 127);
    }
    const float d = lm_fp16_to_fp32(y->d);
    for (int j = 0; j < 16; j++) {
        const float dl = d * (float)y->scales[j];
        if (dl == 0) continue;
        for (int l = 0; l < 16; l++)
            L[16 * j + l] = (int8_t)(lm__clampi(lm__nearest_int(x[16 * j + l] / dl), -32, 31) + 32);
    }
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const int8_t *p = L + 128 * h + l;
            y->ql[64 * h + l] = (uint8_t)((p[0] & 0x0f) | ((p[64] & 0x0f) << 4));
            y->ql[64 * h + 32 + l] = (uint8_t)((p[32] & 0x0f) | ((p[96] & 0x0f) << 4));
            y->qh[32 * h + l] = (uint8_t)((p[0] >> 4) | ((p[32] >> 4) << 2) | ((p[64] >> 4) << 4) |
                                          ((p[96] >> 4) << 6));
        }
}

/* ---- q8_K: d = max / -127 for the signed max, q = round(x / d) ---- */

static void lm__quantize_q8_K(const float *x, lm_block_q8_K *y) {
    float amax, max = lm__signed_max(LM_QK_K, x, &amax);
    memset(y, 0, sizeof *y);
    if (amax == 0) return;
    const float iscale = -127.0f / max;
    for (int j = 0; j < LM_QK_K; j++) {
        int v = lm__nearest_int(iscale * x[j]);
        y->qs[j] = (int8_t)(v < 127 ? v : 127);
    }
    for (int j = 0; j < LM_QK_K / 16; j++) {
        int sum = 0;
        for (int l = 0; l < 16; l++) sum += y->qs[16 * j + l];
        y->bsums[j] = (int16_t)sum;
    }
    y->d = 1 / iscale;
}

void lm__quantize_k_block(lm_type type, const float *x, void *dst) {
    switch (type) {
    case LM_TYPE_Q2_K:
        lm__quantize_q2_K(x, dst);
        break;
    case LM_TYPE_Q3_K:
        lm__quantize_q3_K(x, dst);
        break;
    case LM_TYPE_Q4_K:
        lm__quantize_q4_K(x, dst);
        break;
    case LM_TYPE_Q5_K:
        lm__quantize_q5_K(x, dst);
        break;
    case LM_TYPE_Q6_K:
        lm__quantize_q6_K(x, dst);
        break;
    case LM_TYPE_Q8_K:
        lm__quantize_q8_K(x, dst);
        break;
    default:
        break;
    }
}
