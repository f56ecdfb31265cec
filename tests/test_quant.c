/* Block formats and conversions: fp16/bf16 exhaustively, quantize->dequantize error
 * bounds per type, byte layout, and bit-exact agreement with fixtures made by gguf-py
 * (scripts/ref/make_quant_fixtures.py -> tests/fixtures/quant_ref.txt). */
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
    cr_expect_eq(sizeof(lm_block_q8_0), 34);
    cr_expect_eq(offsetof(lm_block_q4_0, qs), 2);
    cr_expect_eq(offsetof(lm_block_q4_1, m), 2);
    cr_expect_eq(offsetof(lm_block_q4_1, qs), 4);
    cr_expect_eq(offsetof(lm_block_q8_0, qs), 2);
    cr_expect_eq(lm_row_size(LM_TYPE_F32, 7), 28);
    cr_expect_eq(lm_row_size(LM_TYPE_F16, 7), 14);
    cr_expect_eq(lm_row_size(LM_TYPE_BF16, 3), 6);
    cr_expect_eq(lm_row_size(LM_TYPE_Q4_0, 64), 36);
    cr_expect_eq(lm_row_size(LM_TYPE_Q4_1, 576), 18 * 20);
    cr_expect_eq(lm_row_size(LM_TYPE_Q8_0, 96), 3 * 34);
    cr_expect_eq(lm_row_size(LM_TYPE_Q8_0, 40), 0, "not a multiple of the block: 0");
    cr_expect_eq(lm_row_size((lm_type)99, 32), 0, "unknown type: 0");
    const lm_type yes[] = {LM_TYPE_F32,  LM_TYPE_F16,  LM_TYPE_BF16,
                           LM_TYPE_Q4_0, LM_TYPE_Q4_1, LM_TYPE_Q8_0};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) cr_expect(lm_type_computable(yes[i]));
    cr_expect(!lm_type_computable(LM_TYPE_Q4_K));
    cr_expect(!lm_type_computable(LM_TYPE_I32));
    cr_expect(!lm_type_computable((lm_type)99));
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
 * Per element, from the block's own numbers (d, min as ggml computes them in float; d16,
 * m16 as stored in f16), with 1e-5 relative slack for the float rounding of x / d:
 *   q8_0  d = amax/127:      |err| <= d/2 + 127 |d - d16|
 *   q4_0  d = max/-8:        |err| <= |d|/2 + 8 |d - d16|; |d| + 8 |d - d16| for the
 *                            element(s) at -max (q = 16 is clamped to 15)
 *   q4_1  d = (max-min)/15:  |err| <= d/2 + 15 |d - d16| + |min - m16|
 *   f16 |err| <= 2^-11 |x| + 2^-25 (subnormal spacing / 2); bf16 |err| <= 2^-8 |x| */

static double elem_bound(lm_type type, const float *blk, int j) {
    if (type == LM_TYPE_F16) return 0x1p-11 * fabsf(blk[j]) + 0x1p-25;
    if (type == LM_TYPE_BF16) return 0x1p-8 * fabsf(blk[j]);
    float amax = 0, max = 0, mn = blk[0], mx = blk[0];
    for (int i = 0; i < 32; i++) {
        if (fabsf(blk[i]) > amax) amax = fabsf(blk[i]), max = blk[i];
        mn = blk[i] < mn ? blk[i] : mn;
        mx = blk[i] > mx ? blk[i] : mx;
    }
    double d, d16, b;
    switch (type) {
    case LM_TYPE_Q8_0:
        d = amax / 127.0f, d16 = lm_fp16_to_fp32(lm_fp32_to_fp16((float)d));
        b = d / 2 + 127 * fabs(d - d16);
        break;
    case LM_TYPE_Q4_0:
        d = max / -8.0f, d16 = lm_fp16_to_fp32(lm_fp32_to_fp16((float)d));
        b = (d != 0 && blk[j] / d + 8 > 15.5 ? fabs(d) : fabs(d) / 2) + 8 * fabs(d - d16);
        break;
    case LM_TYPE_Q4_1:
        d = (mx - mn) / 15.0f, d16 = lm_fp16_to_fp32(lm_fp32_to_fp16((float)d));
        b = d / 2 + 15 * fabs(d - d16) + fabs(mn - lm_fp16_to_fp32(lm_fp32_to_fp16(mn)));
        break;
    default:
        return 0;
    }
    return b * (1 + 1e-5) + 1e-30;
}

static void check_bounds(lm_type type, const float *x, int64_t n, const char *what) {
    void *q = malloc(lm_row_size(type, n));
    float *y = malloc((size_t)n * sizeof *y);
    cr_assert_eq(lm_quantize_row(type, x, q, n), lm_row_size(type, n));
    lm_dequantize_row(type, q, y, n);
    for (int64_t i = 0; i < n; i++) {
        const float *blk = x + (type == LM_TYPE_F16 || type == LM_TYPE_BF16 ? i : i / 32 * 32);
        int j = type == LM_TYPE_F16 || type == LM_TYPE_BF16 ? 0 : (int)(i % 32);
        double err = fabs((double)y[i] - x[i]), bound = elem_bound(type, blk, j);
        cr_assert(err <= bound, "%s %s [%lld]: x %.9g got %.9g err %.3g > bound %.3g",
                  lm_type_get(type).name, what, (long long)i, x[i], y[i], err, bound);
    }
    free(q), free(y);
}

Test(quant, error_bounds) {
    const lm_type types[] = {LM_TYPE_Q8_0, LM_TYPE_Q4_0, LM_TYPE_Q4_1, LM_TYPE_F16, LM_TYPE_BF16};
    lm_test_rng r = {lm_test_seed()};
    enum { N = 4096 };
    static float x[N];
    const float scales[] = {1e-3f, 1.0f, 1e3f};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        for (size_t s = 0; s < 3; s++) {
            lm_test_fill_normal(&r, x, N, scales[s]);
            check_bounds(types[t], x, N, "normal");
            for (int i = 0; i < 20; i++) /* outliers: one block value 50 sigma out */
                x[lm_test_rng_u64(&r) % N] = (i % 2 ? 50.0f : -50.0f) * scales[s];
            check_bounds(types[t], x, N, "outliers");
            for (int b = 0; b < N / 32; b++) { /* every block constant */
                float v = scales[s] * lm_test_rng_normal(&r);
                for (int i = 0; i < 32; i++) x[b * 32 + i] = b % 7 ? v : 0.0f;
            }
            check_bounds(types[t], x, N, "all-equal");
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
    cr_expect_gt(n_quant, 50, "quantization cases read");
    cr_expect_gt(n_dequant, 8, "dequantization cases read");
}
