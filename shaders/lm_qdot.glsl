// One block's term of a quantized dot product, mirroring kernels/cpu/cpu_dot_scalar.c: the
// integer sum of weight levels times 16-bit activations (exact in any order; the k-quants'
// scaled sums in 64 bits), then the block's float expression in the CPU's order with no
// fused operations. A row's result is the float sum of its blocks' terms in block order
// (the callers keep that order).
//
// Needs: the weight views w8/w16 (lm_quant.glsl's helpers) and the activations of block
// cb through macros: LM_ACT4(cb, i) the i-th uvec4 of its 16-bit values (8 per uvec4),
// LM_ACT_D(cb) its scale, LM_ACT_S(cb) its scaled sum (32-element blocks), LM_ACT_I(cb, i)
// the sum of its values 16 i .. 16 i + 15 (256-element blocks).
//   LM_QBLCK                      elements per weight block (= activation block)
//   LM_QBYTES                     bytes per weight block
//   float lm_qterm(uint wb, uint cb)   wb: byte offset of the weight block, cb: act block
//
// Activations are read 16 bytes at a time and weights 2 bytes at a time: on CPU
// implementations (lavapipe) every load is a gather per lane, so fewer, wider loads are
// what makes these kernels fast.

// signed byte k (0..3) and signed half k (0..1) of a word
int lm_sb(uint w, uint k) {
    return bitfieldExtract(int(w), int(8u * k), 8);
}
int lm_sh(uint w, uint k) {
    return bitfieldExtract(int(w), int(16u * k), 16);
}


#if defined(WTYPE_Q4_0) || defined(WTYPE_Q4_1) || defined(WTYPE_Q5_0) ||                     \
    defined(WTYPE_Q5_1) || defined(WTYPE_Q8_0)
#define LM_QBLCK 32u
#if defined(WTYPE_Q4_0)
#define LM_QBYTES 18u
#define LM_QS 2u // byte offset of the quants in a block
#elif defined(WTYPE_Q4_1)
#define LM_QBYTES 20u
#define LM_QS 4u
#elif defined(WTYPE_Q5_0)
#define LM_QBYTES 22u
#define LM_QS 6u
#define LM_QH 2u
#elif defined(WTYPE_Q5_1)
#define LM_QBYTES 24u
#define LM_QS 8u
#define LM_QH 4u
#else
#define LM_QBYTES 34u
#define LM_QS 2u
#endif

// 4 weight bytes as a word (2-aligned: two 16-bit loads)
uint lm_w32(uint byte) {
    return uint(w16[byte >> 1]) | (uint(w16[(byte >> 1) + 1u]) << 16);
}

// 4-bit weights: byte j of word w holds element 4g + j (low nibble) and 16 + 4g + j (high);
// l0, l1 the activation words of elements 4g .. 4g + 3, h0, h1 those of 16 + 4g ..; hb the
// four fifth bits of the low elements (bits 0..3) and of the high ones (bits 16..19).
int lm_q4_group(uint w, uint l0, uint l1, uint h0, uint h1, uint hb, int off) {
    const uvec4 lo = (uvec4(w, w >> 8, w >> 16, w >> 24) & 15u) | (uvec4(hb, hb >> 1, hb >> 2, hb >> 3) & 1u) << 4;
    const uvec4 hi = (uvec4(w >> 4, w >> 12, w >> 20, w >> 28) & 15u) |
                     (uvec4(hb >> 16, hb >> 17, hb >> 18, hb >> 19) & 1u) << 4;
    const ivec4 al = ivec4(lm_sh(l0, 0u), lm_sh(l0, 1u), lm_sh(l1, 0u), lm_sh(l1, 1u));
    const ivec4 ah = ivec4(lm_sh(h0, 0u), lm_sh(h0, 1u), lm_sh(h1, 0u), lm_sh(h1, 1u));
    const ivec4 p = (ivec4(lo) - off) * al + (ivec4(hi) - off) * ah;
    return (p.x + p.y) + (p.z + p.w);
}

// 8-bit weights: the 4 signed bytes of w against activation words l0, l1
int lm_q8_group(uint w, uint l0, uint l1) {
    const ivec4 q = ivec4(lm_sb(w, 0u), lm_sb(w, 1u), lm_sb(w, 2u), lm_sb(w, 3u));
    const ivec4 a = ivec4(lm_sh(l0, 0u), lm_sh(l0, 1u), lm_sh(l1, 0u), lm_sh(l1, 1u));
    const ivec4 p = q * a;
    return (p.x + p.y) + (p.z + p.w);
}

// an activation block: its 32 values (8 per uvec4), scale and scaled sum
struct lm_act {
    uvec4 v0, v1, v2, v3;
    float d, s;
};

lm_act lm_act_load(uint cb) {
    lm_act a;
    a.v0 = LM_ACT4(cb, 0u);
    a.v1 = LM_ACT4(cb, 1u);
    a.v2 = LM_ACT4(cb, 2u);
    a.v3 = LM_ACT4(cb, 3u);
    a.d = LM_ACT_D(cb);
#if defined(WTYPE_Q4_1) || defined(WTYPE_Q5_1)
    a.s = LM_ACT_S(cb);
#else
    a.s = 0.0;
#endif
    return a;
}

// the term of weight block wb against an activation block already loaded (a caller can
// use one for several weight rows)
float lm_qterm_a(uint wb, lm_act a) {
    const uvec4 A0 = a.v0, A1 = a.v1, A2 = a.v2, A3 = a.v3;
    const uint q = wb + LM_QS;
#if defined(WTYPE_Q8_0)
    const uvec4 B0 = uvec4(lm_w32(q), lm_w32(q + 4u), lm_w32(q + 8u), lm_w32(q + 12u));
    const uvec4 B1 = uvec4(lm_w32(q + 16u), lm_w32(q + 20u), lm_w32(q + 24u), lm_w32(q + 28u));
    const int sum = lm_q8_group(B0.x, A0.x, A0.y) + lm_q8_group(B0.y, A0.z, A0.w) +
                    lm_q8_group(B0.z, A1.x, A1.y) + lm_q8_group(B0.w, A1.z, A1.w) +
                    lm_q8_group(B1.x, A2.x, A2.y) + lm_q8_group(B1.y, A2.z, A2.w) +
                    lm_q8_group(B1.z, A3.x, A3.y) + lm_q8_group(B1.w, A3.z, A3.w);
#else
#if defined(LM_QH)
    const uint qh = lm_w32(wb + LM_QH);
#else
    const uint qh = 0u;
#endif
#if defined(WTYPE_Q4_0)
    const int off = 8;
#elif defined(WTYPE_Q5_0)
    const int off = 16;
#else
    const int off = 0;
#endif
    // group g: weight bytes 4g .. 4g + 3, fifth bits 4g .. (low) and 16 + 4g .. (high)
    const int sum = lm_q4_group(lm_w32(q), A0.x, A0.y, A2.x, A2.y, qh, off) +
                    lm_q4_group(lm_w32(q + 4u), A0.z, A0.w, A2.z, A2.w, qh >> 4, off) +
                    lm_q4_group(lm_w32(q + 8u), A1.x, A1.y, A3.x, A3.y, qh >> 8, off) +
                    lm_q4_group(lm_w32(q + 12u), A1.z, A1.w, A3.z, A3.w, qh >> 12, off);
#endif
#if defined(WTYPE_Q4_1) || defined(WTYPE_Q5_1)
    precise float t = lm_f16at(wb) * a.d * float(sum) + lm_f16at(wb + 2u) * a.s;
#else
    precise float t = lm_f16at(wb) * a.d * float(sum);
#endif
    return t;
}

float lm_qterm(uint wb, uint cb) {
    return lm_qterm_a(wb, lm_act_load(cb));
}

#else // k-quants against 256-element activation blocks
#define LM_QBLCK 256u

// the signed level of element e of the weight super-block at wb
#if defined(WTYPE_Q2_K)
#define LM_QBYTES 84u
int lm_kq(uint wb, uint e) {
    return int(lm_bits2(wb + 16u, e));
}
#elif defined(WTYPE_Q3_K)
#define LM_QBYTES 110u
int lm_kq(uint wb, uint e) { // 2 bits + the hmask bit (set for q >= 0), in -4..3
    const uint h = e >> 7, k = (e >> 5) & 3u, l = e & 31u;
    const int hi = int((lm_u8(wb + l) >> (4u * h + k)) & 1u);
    return int(lm_bits2(wb + 32u, e)) - 4 + 4 * hi;
}
#elif defined(WTYPE_Q4_K)
#define LM_QBYTES 144u
int lm_kq(uint wb, uint e) {
    const uint v = lm_u8(wb + 16u + (e >> 6) * 32u + (e & 31u));
    return int((e & 32u) != 0u ? (v >> 4) : (v & 15u));
}
#elif defined(WTYPE_Q5_K)
#define LM_QBYTES 176u
int lm_kq(uint wb, uint e) {
    const uint p = e >> 6, v = lm_u8(wb + 48u + p * 32u + (e & 31u));
    const uint hb = (lm_u8(wb + 16u + (e & 31u)) >> (2u * p + ((e >> 5) & 1u))) & 1u;
    return int(((e & 32u) != 0u ? (v >> 4) : (v & 15u)) | (hb << 4));
}
#else
#define LM_QBYTES 210u
int lm_kq(uint wb, uint e) {
    const uint h = e >> 7, k = (e >> 5) & 3u, l = e & 31u;
    const uint lo = lm_u8(wb + 64u * h + l + 32u * (k & 1u));
    const uint q = ((k >> 1) != 0u ? (lo >> 4) : (lo & 15u)) |
                   (((lm_u8(wb + 128u + 32u * h + l) >> (2u * k)) & 3u) << 4);
    return int(q) - 32;
}
#endif

// 64-bit integers as (lo, hi) words, two's complement: the CPU sums the k-quants' scaled
// sub-block sums in int64 (they pass 2^31) and converts with one rounding
uvec2 lm_i64_mul(int a, int b) {
    int hi, lo;
    imulExtended(a, b, hi, lo);
    return uvec2(uint(lo), uint(hi));
}
uvec2 lm_i64_add(uvec2 a, uvec2 b) {
    uint c;
    const uint lo = uaddCarry(a.x, b.x, c);
    return uvec2(lo, a.y + b.y + c);
}
// int64 -> float, round to nearest even (as C's conversion); |v| < 2^55
float lm_i64_f32(uvec2 v) {
    const bool neg = (v.y & 0x80000000u) != 0u;
    if (neg) {
        uint c;
        const uint lo = uaddCarry(~v.x, 1u, c);
        v = uvec2(lo, ~v.y + c);
    }
    float f;
    if (v.y == 0u && v.x < 0x01000000u) {
        f = float(v.x); // exact
    } else {
        const int p = v.y != 0u ? 32 + findMSB(v.y) : findMSB(v.x); // >= 24
        const int sh = p - 23;                                       // 1 .. 31
        uint m = (v.x >> sh) | (v.y << (32 - sh));                   // 24 bits
        const uint rem = v.x & ((1u << sh) - 1u), half_ = 1u << (sh - 1);
        if (rem > half_ || (rem == half_ && (m & 1u) != 0u)) m++;
        f = ldexp(float(m), sh); // m <= 2^24: exact
    }
    return neg ? -f : f;
}

int lm_kdot16(uint wb, uint cb, uint s) { // sum of the 16 products of sub-block s
    const uvec4 av[2] = uvec4[2](LM_ACT4(cb, 2u * s), LM_ACT4(cb, 2u * s + 1u));
    int r = 0;
    [[unroll]] for (uint l = 0u; l < 16u; l++)
        r += lm_kq(wb, 16u * s + l) * lm_sh(av[l >> 3][(l >> 1) & 3u], l & 1u);
    return r;
}

float lm_qterm(uint wb, uint cb) {
    const uint qa = cb;
    const float ad = LM_ACT_D(cb);
    uvec2 isum = uvec2(0u);
#if defined(WTYPE_Q2_K)
    uvec2 msum = uvec2(0u);
    for (uint s = 0u; s < 16u; s++) {
        const uint sc = lm_u8(wb + s);
        isum = lm_i64_add(isum, lm_i64_mul(int(sc & 15u), lm_kdot16(wb, qa, s)));
        msum = lm_i64_add(msum, lm_i64_mul(int(sc >> 4), LM_ACT_I(cb, s)));
    }
    precise float t = ad * (lm_f16at(wb + 80u) * lm_i64_f32(isum) -
                            lm_f16at(wb + 82u) * lm_i64_f32(msum));
#elif defined(WTYPE_Q3_K)
    for (uint s = 0u; s < 16u; s++) {
        const uint lo = s < 8u ? (lm_u8(wb + 96u + s) & 15u) : (lm_u8(wb + 88u + s) >> 4);
        const uint hi = (lm_u8(wb + 104u + (s & 3u)) >> (2u * (s >> 2))) & 3u;
        isum = lm_i64_add(isum, lm_i64_mul(int(lo | (hi << 4)) - 32, lm_kdot16(wb, qa, s)));
    }
    precise float t = ad * (lm_f16at(wb + 108u) * lm_i64_f32(isum));
#elif defined(WTYPE_Q4_K) || defined(WTYPE_Q5_K)
    uvec2 msum = uvec2(0u);
    for (uint s = 0u; s < 8u; s++) {
        uint sc, m;
        lm_k4_scale_min(wb + 4u, s, sc, m);
        const int p = lm_kdot16(wb, qa, 2u * s) + lm_kdot16(wb, qa, 2u * s + 1u); // < 2^26
        isum = lm_i64_add(isum, lm_i64_mul(int(sc), p));
        msum = lm_i64_add(msum, lm_i64_mul(int(m), LM_ACT_I(cb, 2u * s) + LM_ACT_I(cb, 2u * s + 1u)));
    }
    precise float t = ad * (lm_f16at(wb) * lm_i64_f32(isum) - lm_f16at(wb + 2u) * lm_i64_f32(msum));
#else
    for (uint s = 0u; s < 16u; s++)
        isum = lm_i64_add(isum, lm_i64_mul(lm_i8(wb + 192u + s), lm_kdot16(wb, qa, s)));
    precise float t = ad * (lm_f16at(wb + 208u) * lm_i64_f32(isum));
#endif
    return t;
}
#endif
