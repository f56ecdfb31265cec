/* The NEON kernel table against the scalar oracle, bit for bit, on AArch64 (run under
 * qemu-aarch64 by scripts/check_neon.sh; no Criterion there). Every kernel gets fresh
 * random inputs (the seed is printed; LUMEN_TEST_SEED=<seed> or argv[1] replays it):
 * activation quantization, half -> float on all 65536 halves, the float dots, attn_qk,
 * attn_pv (and their F16 forms), attention's softmax step, and the quantized dots of all ten weight
 * types on odd shapes (nr 1..8, nc 1, 3, 17, 64, several blocks), with quantized and with raw
 * random weight bytes. Outputs are compared as bits, including what lies between the rows a call
 * may write (sentinels), and the first mismatch is printed. Exit 0 only when all agree. */
#include "../../kernels/cpu/cpu_internal.h"
#include "../../runtime/quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t g_rng;
static long g_checked, g_nan_pairs; /* values compared; NaN pairs whose payloads were not */

static uint64_t rnd(void) { /* xorshift64* */
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 0x2545f4914f6cdd1dull;
}
static float uni(void) { /* [0, 1) */
    return (float)(rnd() >> 40) / (float)(1 << 24);
}
static float normal(void) {
    const float u = uni() + 1e-7f, v = uni();
    return sqrtf(-2 * logf(u)) * cosf(6.2831853f * v);
}
static void fill_normal(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * normal();
}
static void fill_bytes(void *p, size_t n) {
    for (size_t i = 0; i < n; i++) ((uint8_t *)p)[i] = (uint8_t)rnd();
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "neon_check: out of memory\n");
        exit(2);
    }
    return p;
}

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* n floats must match as bits; what names the case. With nan_any, two NaNs match whatever
 * their payloads: when both operands of an add or multiply are NaNs, which payload comes
 * out depends on the operand order the compiler picked for the commutative operation, and
 * C promises nothing there (raw random weight bytes give NaN scales). */
static void same_floats_nan(const float *neon, const float *ref, size_t n, const char *what,
                            int nan_any) {
    for (size_t i = 0; i < n; i++)
        if (bits(neon[i]) != bits(ref[i]) && nan_any && isnan(neon[i]) && isnan(ref[i])) {
            g_nan_pairs++;
        } else if (bits(neon[i]) != bits(ref[i])) {
            printf("MISMATCH %s: element %zu: neon %a (0x%08x), scalar %a (0x%08x)\n", what, i,
                   (double)neon[i], bits(neon[i]), (double)ref[i], bits(ref[i]));
            exit(1);
        }
    g_checked += (long)n;
}

static void same_floats(const float *neon, const float *ref, size_t n, const char *what) {
    same_floats_nan(neon, ref, n, what, 0);
}

static void same_bytes(const void *neon, const void *ref, size_t n, const char *what) {
    const uint8_t *a = neon, *b = ref;
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) {
            printf("MISMATCH %s: byte %zu: neon 0x%02x, scalar 0x%02x\n", what, i, a[i], b[i]);
            exit(1);
        }
    g_checked += (long)n;
}

static lm__cpu_kernels g_ref, g_neon;

/* ---- activation quantization ---- */

/* A few blocks of special values: zeros, ties at +-0.5 steps, inf, NaN, tiny, huge */
static void special_block(float *x, int n, int kind) {
    for (int j = 0; j < n; j++) x[j] = normal();
    switch (kind) {
    case 0:
        memset(x, 0, (size_t)n * sizeof *x);
        break;
    case 1: /* amax 32767: every value x.5 is a tie, away from zero */
        for (int j = 0; j < n; j++) x[j] = (float)((int)(rnd() % 65535) - 32767) + 0.5f;
        x[0] = 32767;
        break;
    case 2:
        x[n / 2] = INFINITY;
        break;
    case 3:
        x[1] = NAN, x[n - 1] = -NAN;
        break;
    case 4:
        for (int j = 0; j < n; j++) x[j] *= 1e-41f; /* subnormals */
        break;
    case 5:
        for (int j = 0; j < n; j++) x[j] *= 1e37f;
        break;
    default:
        x[n - 2] = -0.0f, x[0] = -x[0];
        break;
    }
}

static void check_quantize(void) {
    char what[96];
    for (int t = 0; t < 40; t++) {
        const int64_t nblk = 1 + (int64_t)(rnd() % 9);
        /* q16a */
        {
            const int64_t n = 32 * nblk;
            float *x = xmalloc((size_t)n * sizeof *x);
            fill_normal(x, (size_t)n, t < 20 ? 1.0f : 1e-3f + 100 * uni());
            if (t >= 30) special_block(x + 32 * (rnd() % (uint64_t)nblk), 32, t - 30);
            lm__q16a *a = xmalloc((size_t)nblk * sizeof *a), *b = xmalloc((size_t)nblk * sizeof *b);
            memset(a, 0x5a, (size_t)nblk * sizeof *a);
            memset(b, 0x5a, (size_t)nblk * sizeof *b);
            g_neon.quantize_q16a(x, a, n);
            g_ref.quantize_q16a(x, b, n);
            snprintf(what, sizeof what, "quantize_q16a (n %lld, case %d)", (long long)n, t);
            same_bytes(a, b, (size_t)nblk * sizeof *a, what);
            free(x), free(a), free(b);
        }
        /* q16k */
        {
            const int64_t nk = 1 + nblk % 3, n = LM_QK_K * nk;
            float *x = xmalloc((size_t)n * sizeof *x);
            fill_normal(x, (size_t)n, t < 20 ? 1.0f : 1e-3f + 100 * uni());
            if (t >= 30) special_block(x + LM_QK_K * (rnd() % (uint64_t)nk), LM_QK_K, t - 30);
            lm__q16k *a = xmalloc((size_t)nk * sizeof *a), *b = xmalloc((size_t)nk * sizeof *b);
            memset(a, 0x5a, (size_t)nk * sizeof *a);
            memset(b, 0x5a, (size_t)nk * sizeof *b);
            g_neon.quantize_q16k(x, a, n);
            g_ref.quantize_q16k(x, b, n);
            snprintf(what, sizeof what, "quantize_q16k (n %lld, case %d)", (long long)n, t);
            same_bytes(a, b, (size_t)nk * sizeof *a, what);
            free(x), free(a), free(b);
        }
    }
}

/* ---- half -> float, float dots, axpy, scale ---- */

static void check_f16(void) {
    static uint16_t h[65536 + 1];
    static float a[65536 + 1], b[65536 + 1];
    for (uint32_t i = 0; i < 65536; i++) h[i + 1] = (uint16_t)i;
    h[0] = (uint16_t)rnd();
    /* every half once; then a misaligned odd length for the tail */
    g_neon.f16_to_f32(h + 1, a, 65536);
    g_ref.f16_to_f32(h + 1, b, 65536);
    same_floats(a, b, 65536, "f16_to_f32 (all 65536 halves)");
    const int64_t n = 1 + (int64_t)(rnd() % 4099);
    g_neon.f16_to_f32(h, a, n);
    g_ref.f16_to_f32(h, b, n);
    same_floats(a, b, (size_t)n, "f16_to_f32 (odd length)");
}

static uint16_t to_half(float f, int bf) {
    return bf ? lm_fp32_to_bf16(f) : lm_fp32_to_fp16(f);
}

static void check_float_ops(void) {
    static const int64_t ns[] = {1, 2, 3, 7, 15, 16, 17, 31, 32, 33, 64, 100, 257, 1000, 4097};
    char what[96];
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        const int64_t n = ns[k];
        float *w = xmalloc((size_t)n * 4), *x = xmalloc((size_t)n * 4),
              *a = xmalloc((size_t)n * 12), *b = xmalloc((size_t)n * 12);
        uint16_t *h = xmalloc((size_t)n * 2);
        fill_normal(w, (size_t)n, 1);
        fill_normal(x, (size_t)n, 1 + 10 * uni());
        float r0 = g_neon.fdot[LM_TYPE_F32](w, x, n), r1 = g_ref.fdot[LM_TYPE_F32](w, x, n);
        snprintf(what, sizeof what, "fdot f32 (n %lld)", (long long)n);
        same_floats(&r0, &r1, 1, what);
        for (int bf = 0; bf < 2; bf++) {
            for (int64_t i = 0; i < n; i++) h[i] = to_half(w[i], bf);
            const lm_type t = bf ? LM_TYPE_BF16 : LM_TYPE_F16;
            r0 = g_neon.fdot[t](h, x, n), r1 = g_ref.fdot[t](h, x, n);
            snprintf(what, sizeof what, "fdot %s (n %lld)", bf ? "bf16" : "f16", (long long)n);
            same_floats(&r0, &r1, 1, what);
        }
        memcpy(a, w, (size_t)n * 4), memcpy(b, w, (size_t)n * 4);
        /* attention's scores and P.V steps, 3 heads: x's rotations as K / V rows, a and b
         * (w's copies) and x as the outputs; then the F16 forms on f16 rows (h: w as
         * halves) */
        const float *v[5] = {x, w, x, w, x}, *qs[3] = {w, x, w};
        float ws[3 * 5], s4[3 * 5], s1[3 * 5];
        for (int j = 0; j < 15; j++) ws[j] = uni();
        g_neon.attn_qk(v, 5, qs, 3, n, s4, 5);
        g_ref.attn_qk(v, 5, qs, 3, n, s1, 5);
        snprintf(what, sizeof what, "attn_qk (n %lld)", (long long)n);
        same_floats(s4, s1, 15, what);
        float *ca[3] = {a, a + n, a + 2 * n}, *cb[3] = {b, b + n, b + 2 * n};
        for (int hd = 0; hd < 3; hd++)
            memcpy(ca[hd], hd == 1 ? x : w, (size_t)n * 4),
                memcpy(cb[hd], hd == 1 ? x : w, (size_t)n * 4);
        g_neon.attn_pv(ca, v, 5, ws, 5, 3, n);
        g_ref.attn_pv(cb, v, 5, ws, 5, 3, n);
        snprintf(what, sizeof what, "attn_pv (n %lld)", (long long)n);
        same_floats(a, b, (size_t)(3 * n), what);
        const uint16_t *hv[5] = {h, h, h, h, h};
        for (int64_t i = 0; i < n; i++) h[i] = to_half(w[i], 0);
        g_neon.attn_qk_f16(hv, 5, qs, 3, n, s4, 5);
        g_ref.attn_qk_f16(hv, 5, qs, 3, n, s1, 5);
        snprintf(what, sizeof what, "attn_qk_f16 (n %lld)", (long long)n);
        same_floats(s4, s1, 15, what);
        for (int hd = 0; hd < 3; hd++)
            memcpy(ca[hd], w, (size_t)n * 4), memcpy(cb[hd], w, (size_t)n * 4);
        g_neon.attn_pv_f16(ca, hv, 5, ws, 5, 3, n);
        g_ref.attn_pv_f16(cb, hv, 5, ws, 5, 3, n);
        snprintf(what, sizeof what, "attn_pv_f16 (n %lld)", (long long)n);
        same_floats(a, b, (size_t)(3 * n), what);
        if (g_neon.attn_qk == g_ref.attn_qk || g_neon.attn_pv == g_ref.attn_pv ||
            g_neon.attn_pv_f16 == g_ref.attn_pv_f16 || g_neon.attn_qk_f16 == g_ref.attn_qk_f16) {
            printf("MISMATCH: the NEON table holds a scalar attention kernel\n");
            exit(1);
        }
        free(w), free(x), free(a), free(b), free(h);
    }
}

/* attention's online-softmax step: partial tiles with NaN in the unset slots, fresh and
 * running states, -inf, NaN and far-negative scores, either sign of scale, odd head sizes */
static void check_attn_soft(void) {
    enum { PT = LM__ATTN_PT, NH = 12, D = 77 };
    static float s0[NH * PT], sa[NH * PT], sb[NH * PT], wa[NH * PT], wb[NH * PT];
    static float acc0[NH][D], acca[NH][D], accb[NH][D];
    char what[96];
    for (int rep = 0; rep < 300; rep++) {
        const int nh = 1 + rep % NH, o = rep % 3 ? 0 : rep % PT,
                  n = rep % 3 ? PT : 1 + rep % (PT - o);
        const int64_t d = 1 + rep % D;
        const float scale = rep % 7 == 3 ? -0.3f : (float)(0.05 + uni());
        lm__attn_state a[NH], b[NH];
        for (int h = 0; h < nh; h++) {
            for (int i = 0; i < PT; i++) {
                const double u = uni();
                s0[h * PT + i] = i < o || i >= o + n ? NAN
                                 : u < 0.02          ? -INFINITY
                                 : u < 0.03          ? NAN
                                 : u < 0.1           ? (float)(-200 * uni())
                                                     : (float)(16 * (uni() - 0.5));
            }
            const int fresh = rep % 4 == h % 4;
            fill_normal(acc0[h], D, 1);
            if (fresh) memset(acc0[h], 0, sizeof acc0[h]);
            a[h] = (lm__attn_state){fresh ? -INFINITY : (float)(8 * (uni() - 0.5)),
                                    fresh ? 0.0f : (float)(1 + 10 * uni()), acca[h]};
            b[h] = a[h], b[h].acc = accb[h];
        }
        memcpy(sa, s0, sizeof s0), memcpy(sb, s0, sizeof s0);
        memcpy(acca, acc0, sizeof acc0), memcpy(accb, acc0, sizeof acc0);
        g_neon.attn_soft(a, sa, wa, nh, o, n, scale, d);
        g_ref.attn_soft(b, sb, wb, nh, o, n, scale, d);
        for (int h = 0; h < nh; h++) {
            const float ml[2] = {a[h].m, a[h].l}, rl[2] = {b[h].m, b[h].l};
            snprintf(what, sizeof what, "attn_soft m, l (rep %d, pair %d)", rep, h);
            same_floats_nan(ml, rl, 2, what, 1);
            snprintf(what, sizeof what, "attn_soft w (rep %d, pair %d)", rep, h);
            same_floats_nan(wa + h * PT, wb + h * PT, PT, what, 1);
            snprintf(what, sizeof what, "attn_soft acc (rep %d, pair %d)", rep, h);
            same_floats(acca[h], accb[h], (size_t)d, what);
        }
    }
    if (g_neon.attn_soft == g_ref.attn_soft) {
        printf("MISMATCH: the NEON table holds the scalar attn_soft\n");
        exit(1);
    }
}

/* ---- quantized dots ---- */

static const lm_type g_qtypes[] = {LM_TYPE_Q4_0, LM_TYPE_Q4_1, LM_TYPE_Q5_0, LM_TYPE_Q5_1,
                                   LM_TYPE_Q8_0, LM_TYPE_Q2_K, LM_TYPE_Q3_K, LM_TYPE_Q4_K,
                                   LM_TYPE_Q5_K, LM_TYPE_Q6_K};

#define SENTINEL 0x7fc0dead

/* rows: LM__MR weight rows, ws bytes apart, of nb blocks wb bytes apart; act: LM__NC
 * columns */
static void check_qdot_case(lm_type t, const char *w, size_t ws, size_t wb, const char *act,
                            size_t as, int64_t nb, int nr, int nc, int raw) {
    const size_t os = (size_t)nr + 3;
    const size_t n = (size_t)nc * os;
    float *a = xmalloc(n * 4), *b = xmalloc(n * 4);
    const uint32_t s = SENTINEL;
    for (size_t i = 0; i < n; i++) memcpy(&a[i], &s, 4), memcpy(&b[i], &s, 4);
    g_neon.qdot[t](w, ws, wb, nr, act, as, nc, nb, a, os);
    g_ref.qdot[t](w, ws, wb, nr, act, as, nc, nb, b, os);
    char what[160];
    snprintf(what, sizeof what, "qdot %s (%s weights%s, nb %lld, nr %d, nc %d; out[c * %zu + r])",
             lm_type_get((uint32_t)t).name, raw ? "raw random" : "quantized",
             wb == (size_t)lm_type_get(t).size ? "" : ", interleaved", (long long)nb, nr, nc, os);
    same_floats_nan(a, b, n, what, raw);
    free(a), free(b);
}

static void check_qdot_type(lm_type t, int64_t nb, int raw) {
    const int blck = lm__act_blck(t);
    const int64_t k = nb * blck;
    const size_t rs = lm_row_size(t, k), ws = rs + 8 * (rnd() % 3); /* strides past the row too */
    char *w = xmalloc(ws * LM__MR);
    float *x = xmalloc((size_t)k * 4);
    for (int r = 0; r < LM__MR; r++) {
        if (raw) {
            fill_bytes(w + (size_t)r * ws, ws);
        } else {
            fill_normal(x, (size_t)k, 0.1f + uni());
            if (lm_quantize_row(t, x, w + (size_t)r * ws, k) != rs) {
                printf("neon_check: lm_quantize_row failed for %s\n",
                       lm_type_get((uint32_t)t).name);
                exit(2);
            }
        }
    }
    const size_t as = (size_t)nb * lm__act_size(t);
    char *act = xmalloc(as * LM__NC);
    for (int c = 0; c < LM__NC; c++) {
        fill_normal(x, (size_t)k, 0.01f + 10 * uni());
        if (blck == 32)
            g_ref.quantize_q16a(x, (lm__q16a *)(act + (size_t)c * as), k);
        else
            g_ref.quantize_q16k(x, (lm__q16k *)(act + (size_t)c * as), k);
    }
    /* the same rows in the interleaved 8-row layout: block b of row r at (8 b + r) x bs */
    const size_t bs = (size_t)lm_type_get(t).size;
    char *wi = xmalloc((size_t)LM__MR * (size_t)nb * bs);
    for (int r = 0; r < LM__MR; r++)
        for (int64_t b = 0; b < nb; b++)
            memcpy(wi + ((size_t)b * LM__MR + (size_t)r) * bs, w + (size_t)r * ws + (size_t)b * bs,
                   bs);
    static const int ncs[] = {1, 3, 17, 64};
    for (int nr = 1; nr <= LM__MR; nr++)
        for (size_t i = 0; i < sizeof ncs / sizeof ncs[0]; i++) {
            check_qdot_case(t, w, ws, bs, act, as, nb, nr, ncs[i], raw);
            check_qdot_case(t, wi, bs, LM__MR * bs, act, as, nb, nr, ncs[i], raw);
        }
    free(w), free(wi), free(x), free(act);
}

static void check_qdots(void) {
    for (size_t i = 0; i < sizeof g_qtypes / sizeof g_qtypes[0]; i++) {
        const lm_type t = g_qtypes[i];
        if (!g_ref.qdot[t] || !g_neon.qdot[t]) {
            printf("MISMATCH qdot %s: missing from a table\n", lm_type_get((uint32_t)t).name);
            exit(1);
        }
        const int legacy = lm__act_blck(t) == 32;
        for (int raw = 0; raw < 2; raw++) {
            const int64_t nb0 = legacy ? 1 + (int64_t)(rnd() % 3) : 1;
            check_qdot_type(t, nb0, raw);
            check_qdot_type(t, nb0 + (legacy ? 4 + (int64_t)(rnd() % 6) : 1 + (int64_t)(rnd() % 2)),
                            raw);
        }
    }
}

/* ---- dispatch: NEON is the best level on AArch64 and "neon" names it ---- */

static void check_dispatch(void) {
    lm__cpu_level l;
    if (lm__cpu_level_best() != LM__CPU_NEON || !lm__cpu_level_supported(LM__CPU_NEON) ||
        lm__cpu_level_parse("neon", &l) != LM_OK || l != LM__CPU_NEON ||
        lm__cpu_kernels_get(LM__CPU_NEON)->level != LM__CPU_NEON ||
        lm__cpu_level_supported(LM__CPU_AVX2)) {
        printf("MISMATCH dispatch: best level %s, neon %ssupported\n",
               lm__cpu_level_name(lm__cpu_level_best()),
               lm__cpu_level_supported(LM__CPU_NEON) ? "" : "not ");
        exit(1);
    }
}

int main(int argc, char **argv) {
    const char *env = getenv("LUMEN_TEST_SEED");
    uint64_t seed;
    if (argc > 1)
        seed = strtoull(argv[1], NULL, 10);
    else if (env && *env)
        seed = strtoull(env, NULL, 10);
    else
        seed = (uint64_t)time(NULL) * 1000003u ^ (uint64_t)getpid();
    printf("neon_check: seed %llu (replay: LUMEN_TEST_SEED=%llu scripts/check_neon.sh)\n",
           (unsigned long long)seed, (unsigned long long)seed);
    fflush(stdout);
    g_rng = seed ? seed : 1;
    lm__cpu_kernels_scalar(&g_ref);
    if (!lm__cpu_kernels_neon(&g_neon) || g_neon.level != LM__CPU_NEON) {
        printf("MISMATCH: the NEON table is not compiled in (no __ARM_NEON?)\n");
        return 1;
    }
    check_dispatch();
    check_quantize();
    check_f16();
    check_float_ops();
    check_attn_soft();
    check_qdots();
    printf("neon_check: OK, %ld values bit-identical to the scalar oracle (%ld more NaN on both "
           "sides with other payloads, from raw weight bytes and NaN scores)\n",
           g_checked - g_nan_pairs, g_nan_pairs);
    return 0;
}
