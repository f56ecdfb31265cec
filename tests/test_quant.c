/* Block formats and conversions: fp16/bf16 exhaustively, quantize->dequantize error
 * bounds per type, byte layout, and bit-exact agreement with fixtures made by gguf-py
 * (scripts/ref/make_quant_fixtures.py -> tests/fixtures/quant_ref.txt): every block type
 * dequantizes bit-identically; every type gguf-py can quantize quantizes byte-identically. */
#include <criterion/criterion.h>

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/lm_quant_math.h"
#include "helpers/test_util.h"
#include "quant.h"

static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- fp16 ---- */

/* Independent decode: (-1)^s 2^(e-15) (1 + m/1024), subnormals 2^-14 m/1024. */
static double half_value(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

Test(quant, fp16_all_inputs_decode_and_round_trip) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = lm_fp16_to_fp32((uint16_t)h);
        double want = half_value((uint16_t)h);
        if (isnan(want)) {
            cr_assert(isnan(f), "h=%04x: expected NaN", h);
            uint16_t back = lm_fp32_to_fp16(f);
            cr_assert((back & 0x7c00) == 0x7c00 && (back & 0x3ff), "h=%04x: NaN not kept", h);
            continue;
        }
        cr_assert_eq((double)f, want, "h=%04x: %a != %a", h, f, want);
        cr_assert((signbit(f) != 0) == ((h >> 15) != 0), "h=%04x: sign", h);
        cr_assert_eq(lm_fp32_to_fp16(f), h, "h=%04x: round trip gave %04x", h, lm_fp32_to_fp16(f));
    }
}

/* Rounding to nearest, ties to even, at every pair of neighbouring halves: the midpoint
 * (exact in float) goes to the even one, one float ulp either side to the nearer. */
Test(quant, fp16_rounding_at_every_midpoint) {
    for (uint32_t h = 0; h < 0x7c00; h++) {
        double lo = half_value((uint16_t)h);
        double hi = h + 1 == 0x7c00 ? 65536.0 : half_value((uint16_t)(h + 1)); /* 65536: inf */
        float mid = (float)((lo + hi) / 2);
        cr_assert_eq((double)mid, (lo + hi) / 2, "midpoint not exact at %04x", h);
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        for (int s = 0; s < 2; s++) {
            uint16_t sign = s ? 0x8000 : 0;
            float m = s ? -mid : mid;
            cr_assert_eq(lm_fp32_to_fp16(m), even | sign, "tie above %04x", h);
            cr_assert_eq(lm_fp32_to_fp16(nextafterf(m, 0)), h | sign, "below mid %04x", h);
            cr_assert_eq(lm_fp32_to_fp16(nextafterf(m, s ? -INFINITY : INFINITY)), (h + 1) | sign,
                         "above mid %04x", h);
        }
    }
    /* known values */
    cr_expect_eq(lm_fp32_to_fp16(1.0f), 0x3c00);
    cr_expect_eq(lm_fp32_to_fp16(-2.0f), 0xc000);
    cr_expect_eq(lm_fp32_to_fp16(65504.0f), 0x7bff);
    cr_expect_eq(lm_fp32_to_fp16(65520.0f), 0x7c00); /* tie with 65536 rounds to inf */
    cr_expect_eq(lm_fp32_to_fp16(1e10f), 0x7c00);
    cr_expect_eq(lm_fp32_to_fp16(-INFINITY), 0xfc00);
    cr_expect_eq(lm_fp32_to_fp16(0x1p-24f), 0x0001);
    cr_expect_eq(lm_fp32_to_fp16(0x1p-25f), 0x0000); /* tie with 0 rounds to even */
    cr_expect_eq(lm_fp32_to_fp16(0x1.8p-25f), 0x0001);
    cr_expect_eq(lm_fp32_to_fp16(0x1p-14f), 0x0400);
    cr_expect_eq(lm_fp32_to_fp16(-0.0f), 0x8000);
    cr_expect_eq(lm_fp16_to_fp32(0x3555), 0x1.554p-2f);
}

/* ---- bf16 ---- */

Test(quant, bf16_all_inputs) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = lm_bf16_to_fp32((uint16_t)h);
        cr_assert_eq(f2u(f), h << 16, "bf16 %04x decodes to the top half of a float", h);
        if (isnan(f)) {
            cr_assert_eq(lm_fp32_to_bf16(f), h | 64, "NaN %04x is quieted", h);
            continue;
        }
        cr_assert_eq(lm_fp32_to_bf16(f), h, "bf16 %04x round trip", h);
        if ((h & 0x7f80) == 0x7f80) continue; /* inf: no neighbour above */
        /* the midpoint with the next value up: ties to even; one ulp off: the nearer */
        uint32_t mid = (h << 16) | 0x8000;
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        cr_assert_eq(lm_fp32_to_bf16(u2f(mid)), even, "tie above %04x", h);
        cr_assert_eq(lm_fp32_to_bf16(u2f(mid - 1)), h, "below mid %04x", h);
        cr_assert_eq(lm_fp32_to_bf16(u2f(mid + 1)), (uint16_t)(h + 1), "above mid %04x", h);
    }
    cr_expect_eq(lm_fp32_to_bf16(1.0f), 0x3f80);
    cr_expect_eq(lm_fp32_to_bf16(-2.5f), 0xc020);
}

/* ---- layout ---- */

Test(quant, block_layout_and_row_sizes) {
    cr_expect_eq(sizeof(lm_block_q4_0), 18);
    cr_expect_eq(sizeof(lm_block_q4_1), 20);
    cr_expect_eq(sizeof(lm_block_q5_0), 22);
    cr_expect_eq(sizeof(lm_block_q5_1), 24);
    cr_expect_eq(sizeof(lm_block_q8_0), 34);
    cr_expect_eq(sizeof(lm_block_q2_K), 84);
    cr_expect_eq(sizeof(lm_block_q3_K), 110);
    cr_expect_eq(sizeof(lm_block_q4_K), 144);
    cr_expect_eq(sizeof(lm_block_q5_K), 176);
    cr_expect_eq(sizeof(lm_block_q6_K), 210);
    cr_expect_eq(sizeof(lm_block_q8_K), 292);
    cr_expect_eq(offsetof(lm_block_q4_0, qs), 2);
    cr_expect_eq(offsetof(lm_block_q4_1, m), 2);
    cr_expect_eq(offsetof(lm_block_q4_1, qs), 4);
    cr_expect_eq(offsetof(lm_block_q5_0, qh), 2);
    cr_expect_eq(offsetof(lm_block_q5_0, qs), 6);
    cr_expect_eq(offsetof(lm_block_q5_1, qh), 4);
    cr_expect_eq(offsetof(lm_block_q5_1, qs), 8);
    cr_expect_eq(offsetof(lm_block_q8_0, qs), 2);
    cr_expect_eq(offsetof(lm_block_q2_K, qs), 16);
    cr_expect_eq(offsetof(lm_block_q2_K, d), 80);
    cr_expect_eq(offsetof(lm_block_q3_K, qs), 32);
    cr_expect_eq(offsetof(lm_block_q3_K, scales), 96);
    cr_expect_eq(offsetof(lm_block_q3_K, d), 108);
    cr_expect_eq(offsetof(lm_block_q4_K, scales), 4);
    cr_expect_eq(offsetof(lm_block_q4_K, qs), 16);
    cr_expect_eq(offsetof(lm_block_q5_K, qh), 16);
    cr_expect_eq(offsetof(lm_block_q5_K, qs), 48);
    cr_expect_eq(offsetof(lm_block_q6_K, qh), 128);
    cr_expect_eq(offsetof(lm_block_q6_K, scales), 192);
    cr_expect_eq(offsetof(lm_block_q6_K, d), 208);
    cr_expect_eq(offsetof(lm_block_q8_K, qs), 4);
    cr_expect_eq(offsetof(lm_block_q8_K, bsums), 260);
    cr_expect_eq(lm_row_size(LM_TYPE_F32, 7), 28);
    cr_expect_eq(lm_row_size(LM_TYPE_F16, 7), 14);
    cr_expect_eq(lm_row_size(LM_TYPE_BF16, 3), 6);
    cr_expect_eq(lm_row_size(LM_TYPE_Q4_0, 64), 36);
    cr_expect_eq(lm_row_size(LM_TYPE_Q4_1, 576), 18 * 20);
    cr_expect_eq(lm_row_size(LM_TYPE_Q8_0, 96), 3 * 34);
    cr_expect_eq(lm_row_size(LM_TYPE_Q4_K, 768), 3 * 144);
    cr_expect_eq(lm_row_size(LM_TYPE_Q8_0, 40), 0, "not a multiple of the block: 0");
    cr_expect_eq(lm_row_size(LM_TYPE_Q6_K, 288), 0, "not a multiple of the block: 0");
    cr_expect_eq(lm_row_size((lm_type)99, 32), 0, "unknown type: 0");
    const lm_type yes[] = {LM_TYPE_F32,  LM_TYPE_F16,  LM_TYPE_BF16, LM_TYPE_Q4_0, LM_TYPE_Q4_1,
                           LM_TYPE_Q5_0, LM_TYPE_Q5_1, LM_TYPE_Q8_0, LM_TYPE_Q2_K, LM_TYPE_Q3_K,
                           LM_TYPE_Q4_K, LM_TYPE_Q5_K, LM_TYPE_Q6_K};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        cr_expect(lm_type_computable(yes[i]), "%s", lm_type_get(yes[i]).name);
    cr_expect(!lm_type_computable(LM_TYPE_Q8_K), "Q8_K is an activation format");
    cr_expect(!lm_type_computable(LM_TYPE_IQ4_NL));
    cr_expect(!lm_type_computable(LM_TYPE_I32));
    cr_expect(!lm_type_computable((lm_type)99));
    float x[32] = {1};
    uint8_t q[64];
    cr_expect_eq(lm_quantize_row(LM_TYPE_IQ4_NL, x, q, 32), 0, "no quantizer: 0 bytes");
    cr_expect_eq(lm_quantize_row(LM_TYPE_Q5_0, x, q, 31), 0, "partial block: 0 bytes");
}

/* Low nibble of qs[j] is element j, high nibble element j + 16. */
Test(quant, nibble_order) {
    lm_block_q4_0 b0 = {0x3c00, {0}};         /* d = 1 */
    lm_block_q4_1 b1 = {0x3c00, 0xbc00, {0}}; /* d = 1, m = -1 */
    for (int j = 0; j < 16; j++) b0.qs[j] = b1.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    float o0[32], o1[32];
    lm_dequantize_row(LM_TYPE_Q4_0, &b0, o0, 32);
    lm_dequantize_row(LM_TYPE_Q4_1, &b1, o1, 32);
    for (int j = 0; j < 16; j++) {
        cr_expect_eq(o0[j], (float)(j - 8));
        cr_expect_eq(o0[j + 16], (float)(7 - j));
        cr_expect_eq(o1[j], (float)(j - 1));
        cr_expect_eq(o1[j + 16], (float)(14 - j));
        cr_expect_eq(lm_q4_nibble(b0.qs, j), j);
        cr_expect_eq(lm_q4_nibble(b0.qs, j + 16), 15 - j);
    }
    lm_block_q8_0 b8 = {0x4000, {0}}; /* d = 2 */
    for (int j = 0; j < 32; j++) b8.qs[j] = (int8_t)(j * 8 - 128);
    float o8[32];
    lm_dequantize_row(LM_TYPE_Q8_0, &b8, o8, 32);
    for (int j = 0; j < 32; j++) cr_expect_eq(o8[j], 2.0f * (float)(j * 8 - 128));
}

/* ---- quantize -> dequantize error bounds ----
 * 32-element types, per element, from the block's own numbers (d, min as ggml computes
 * them in float; d16, m16 as stored in f16), with 1e-5 relative slack for the float
 * rounding of x / d:
 *   q8_0  d = amax/127:      |err| <= d/2 + 127 |d - d16|
 *   q4_0  d = max/-8:        |err| <= |d|/2 + 8 |d - d16|; |d| + 8 |d - d16| for the
 *                            element(s) at -max (q = 16 is clamped to 15)
 *   q5_0  d = max/-16:       as q4_0 with 16 for 8 (q = 32 clamped to 31)
 *   q4_1  d = (max-min)/15:  |err| <= d/2 + 15 |d - d16| + |min - m16|
 *   q5_1  d = (max-min)/31:  |err| <= d/2 + 31 |d - d16| + |min - m16|
 *   f16 |err| <= 2^-11 |x| + 2^-25 (subnormal spacing / 2); bf16 |err| <= 2^-8 |x|
 * k-quants fit their scales by search, so no closed form per element; the bounds are per
 * 256-element block, relative to the block's largest |x| (amax), and per row as relative
 * RMS error sqrt(sum err^2 / sum x^2) on N(0, s^2) data. Measured worst over 80 rows of
 * 16384 (normal, outliers, shifted positive, uniform; scales 1e-3..1e3), bound in ():
 *          max |err| / amax       relative RMS (normal rows)
 *   q2_K   0.410 (0.50)           0.302 (0.34)
 *   q3_K   0.270 (0.33)           0.153 (0.175)
 *   q4_K   0.116 (0.15)           0.072 (0.085)
 *   q5_K   0.083 (0.11)           0.037 (0.045)
 *   q6_K   0.067 (0.09)           0.021 (0.026)
 *   q8_K   1/254 = d/2 + float rounding (0.004) 0.0071 (0.0085)
 * plus, for values so small that the f16 super-scales d/dmin are subnormal (spacing
 * 2^-24), their rounding times the largest sub-scale and level: 2^-25 * f16_terms with
 * f16_terms = 15*3 + 15 (q2_K), 32*4 (q3_K), 63*15 + 63 (q4_K), 63*31 + 63 (q5_K),
 * 128*32 (q6_K), 0 (q8_K: float d).
 * Legacy types are checked for relative RMS too (measured / bound): q4_0 0.087 / 0.10,
 * q4_1 0.079 / 0.092, q5_0 0.044 / 0.052, q5_1 0.038 / 0.046, q8_0 0.0054 / 0.0065. */

typedef struct {
    lm_type type;
    double max_rel; /* k-quants: max |err| / block amax */
    double rms_rel; /* relative RMS error on normal rows */
    int f16_terms;  /* k-quants: see above */
} quant_bound;

static const quant_bound BOUNDS[] = {
    {LM_TYPE_Q8_0, 0, 0.0065, 0},
    {LM_TYPE_Q4_0, 0, 0.10, 0},
    {LM_TYPE_Q4_1, 0, 0.092, 0},
    {LM_TYPE_Q5_0, 0, 0.052, 0},
    {LM_TYPE_Q5_1, 0, 0.046, 0},
    {LM_TYPE_F16, 0, 0, 0},
    {LM_TYPE_BF16, 0, 0, 0},
    {LM_TYPE_Q2_K, 0.50, 0.34, 15 * 3 + 15},
    {LM_TYPE_Q3_K, 0.33, 0.175, 32 * 4},
    {LM_TYPE_Q4_K, 0.15, 0.085, 63 * 15 + 63},
    {LM_TYPE_Q5_K, 0.11, 0.045, 63 * 31 + 63},
    {LM_TYPE_Q6_K, 0.09, 0.026, 128 * 32},
    {LM_TYPE_Q8_K, 0.004, 0.0085, 0},
};

static double elem_bound(lm_type type, const float *blk, int j) {
    if (type == LM_TYPE_F16) return 0x1p-11 * fabsf(blk[j]) + 0x1p-25;
    if (type == LM_TYPE_BF16) return 0x1p-8 * fabsf(blk[j]);
    float amax = 0, max = 0, mn = blk[0], mx = blk[0];
    for (int i = 0; i < 32; i++) {
        if (fabsf(blk[i]) > amax) amax = fabsf(blk[i]), max = blk[i];
        mn = blk[i] < mn ? blk[i] : mn;
        mx = blk[i] > mx ? blk[i] : mx;
    }
    const double m16err = fabs(mn - lm_fp16_to_fp32(lm_fp32_to_fp16(mn)));
    const int half = type == LM_TYPE_Q4_0 ? 8 : 16; /* q4_0 / q5_0: levels below zero */
    const int top = type == LM_TYPE_Q4_1 ? 15 : 31; /* q4_1 / q5_1: highest level */
    double d, d16, b;
    switch (type) {
    case LM_TYPE_Q8_0:
        d = amax / 127.0f, d16 = lm_fp16_to_fp32(lm_fp32_to_fp16((float)d));
        b = d / 2 + 127 * fabs(d - d16);
        break;
    case LM_TYPE_Q4_0:
    case LM_TYPE_Q5_0:
        d = max / (float)-half, d16 = lm_fp16_to_fp32(lm_fp32_to_fp16((float)d));
        b = (d != 0 && blk[j] / d + half > 2 * half - 0.5 ? fabs(d) : fabs(d) / 2) +
            half * fabs(d - d16);
        break;
    case LM_TYPE_Q4_1:
    case LM_TYPE_Q5_1:
        d = (mx - mn) / (float)top, d16 = lm_fp16_to_fp32(lm_fp32_to_fp16((float)d));
        b = d / 2 + top * fabs(d - d16) + m16err;
        break;
    default:
        return 0;
    }
    return b * (1 + 1e-5) + 1e-30;
}

/* Quantize + dequantize x; check the bounds above; returns the relative RMS error. */
static double check_bounds(const quant_bound *qb, const float *x, int64_t n, const char *what) {
    const lm_type type = qb->type;
    const int blck = lm_type_get(type).blck;
    void *q = malloc(lm_row_size(type, n));
    float *y = malloc((size_t)n * sizeof *y);
    cr_assert_eq(lm_quantize_row(type, x, q, n), lm_row_size(type, n));
    lm_dequantize_row(type, q, y, n);
    double se = 0, sx = 0;
    for (int64_t b = 0; b < n / blck; b++) {
        const float *blk = x + b * blck;
        float amax = 0;
        for (int j = 0; j < blck; j++) amax = fmaxf(amax, fabsf(blk[j]));
        for (int j = 0; j < blck; j++) {
            const int64_t i = b * blck + j;
            const double err = fabs((double)y[i] - x[i]);
            const double bound =
                blck == 256 ? (qb->max_rel * amax + 0x1p-25 * qb->f16_terms) * (1 + 1e-5) + 1e-30
                : blck == 1 ? elem_bound(type, blk, 0)
                            : elem_bound(type, blk, j);
            cr_assert(err <= bound, "%s %s [%lld]: x %.9g got %.9g err %.3g > bound %.3g",
                      lm_type_get(type).name, what, (long long)i, x[i], y[i], err, bound);
            se += err * err, sx += (double)x[i] * x[i];
        }
    }
    free(q), free(y);
    return sx > 0 ? sqrt(se / sx) : 0;
}

Test(quant, error_bounds) {
    lm_test_rng r = {lm_test_seed()};
    enum { N = 4096 };
    static float x[N];
    const float scales[] = {1e-3f, 1.0f, 1e3f};
    for (size_t t = 0; t < sizeof BOUNDS / sizeof BOUNDS[0]; t++) {
        const quant_bound *qb = &BOUNDS[t];
        for (size_t s = 0; s < 3; s++) {
            lm_test_fill_normal(&r, x, N, scales[s]);
            double rms = check_bounds(qb, x, N, "normal");
            if (qb->rms_rel > 0)
                cr_assert(rms <= qb->rms_rel, "%s: relative RMS error %.4f > %.4f",
                          lm_type_get(qb->type).name, rms, qb->rms_rel);
            for (int i = 0; i < 20; i++) /* outliers: one block value 50 sigma out */
                x[lm_test_rng_u64(&r) % N] = (i % 2 ? 50.0f : -50.0f) * scales[s];
            check_bounds(qb, x, N, "outliers");
            for (int i = 0; i < N; i++) /* shifted: all positive, a min far from 0 */
                x[i] = fabsf(x[i]) + 3 * scales[s];
            check_bounds(qb, x, N, "positive");
            for (int b = 0; b < N / 32; b++) { /* every 32 constant, some 0 */
                float v = scales[s] * lm_test_rng_normal(&r);
                for (int i = 0; i < 32; i++) x[b * 32 + i] = b % 7 ? v : 0.0f;
            }
            check_bounds(qb, x, N, "all-equal");
        }
    }
}

/* Rows of one value (zero included) stay finite, zeros exactly 0, for every type. */
Test(quant, constant_and_zero_rows) {
    const float values[] = {0.0f, -0.0f, 1.0f, -3.25f, 1e-8f, 6e4f};
    enum { N = 512 };
    static float x[N], y[N];
    static uint8_t q[N * 4];
    for (size_t t = 0; t < sizeof BOUNDS / sizeof BOUNDS[0]; t++) {
        const lm_type type = BOUNDS[t].type;
        for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
            for (int i = 0; i < N; i++) x[i] = values[v];
            cr_assert_eq(lm_quantize_row(type, x, q, N), lm_row_size(type, N));
            lm_dequantize_row(type, q, y, N);
            for (int i = 0; i < N; i++) {
                cr_assert(isfinite(y[i]), "%s: row of %g gives %g at %d", lm_type_get(type).name,
                          values[v], y[i], i);
                if (values[v] == 0)
                    cr_assert_eq(y[i], 0.0f, "%s: zero row", lm_type_get(type).name);
            }
        }
    }
}

/* ---- gguf-py fixtures: bytes identical, dequantized floats bit-identical ---- */

static lm_type type_named(const char *s) {
    for (uint32_t id = 0; id < LM_TYPE_COUNT; id++) {
        lm_type_traits t = lm_type_get(id);
        if (t.name && strcmp(t.name, s) == 0) return (lm_type)id;
    }
    cr_assert_fail("unknown type %s in fixture", s);
    return LM_TYPE_F32;
}

/* Parse "<tag> <payload>" into out: hex words (floats) or hex bytes; returns count. */
static size_t parse_line(FILE *f, const char *tag, uint8_t *bytes, uint32_t *words) {
    static char line[1 << 16];
    cr_assert(fgets(line, sizeof line, f), "fixture truncated before '%s'", tag);
    size_t tl = strlen(tag);
    cr_assert(strncmp(line, tag, tl) == 0 && line[tl] == ' ', "expected '%s' line", tag);
    char *p = line + tl + 1;
    size_t n = 0;
    if (words) {
        char *end;
        for (unsigned long v = strtoul(p, &end, 16); end != p; v = strtoul(p, &end, 16))
            words[n++] = (uint32_t)v, p = end;
    } else {
        unsigned v;
        while (sscanf(p, "%2x", &v) == 1) bytes[n++] = (uint8_t)v, p += 2;
    }
    return n;
}

Test(quant, matches_gguf_py_fixtures) {
    FILE *f = fopen(lm_test_fixture("quant_ref.txt"), "r");
    cr_assert(f, "missing %s", lm_test_fixture("quant_ref.txt"));
    char line[256], kind[16], tname[16], label[64];
    long n;
    int n_quant = 0, n_dequant = 0;
    static uint32_t in[4096], deq[4096];
    static uint8_t qref[16384], qgot[16384];
    static float got[4096];
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        cr_assert_eq(sscanf(line, "%15s %15s %ld %63s", kind, tname, &n, label), 4, "bad: %s",
                     line);
        lm_type type = type_named(tname);
        const int quant = strcmp(kind, "quant") == 0;
        if (quant) cr_assert_eq(parse_line(f, "in", NULL, in), (size_t)n);
        size_t nb = parse_line(f, "q", qref, NULL);
        cr_assert_eq(nb, lm_row_size(type, n), "%s %s: %zu bytes", tname, label, nb);
        cr_assert_eq(parse_line(f, "deq", NULL, deq), (size_t)n);
        if (quant) {
            n_quant++;
            cr_assert_eq(lm_quantize_row(type, (const float *)in, qgot, n), nb);
            for (size_t i = 0; i < nb; i++)
                cr_expect_eq(qgot[i], qref[i], "%s %s: byte %zu is %02x, gguf-py %02x", tname,
                             label, i, qgot[i], qref[i]);
        } else {
            n_dequant++;
        }
        lm_dequantize_row(type, qref, got, n);
        for (long i = 0; i < n; i++)
            cr_expect_eq(f2u(got[i]), deq[i], "%s %s: element %ld is %08x, gguf-py %08x", tname,
                         label, i, f2u(got[i]), deq[i]);
    }
    fclose(f);
    cr_expect_gt(n_quant, 80, "quantization cases read");
    cr_expect_eq(n_dequant, 33, "dequantization cases read (3 per block type)");
}
