// Weight element access for every weight type, mirroring kernels/common/lm_quant_blocks.h
// (layouts) and lm_quant_math.h (the math, product by product, so results are bit-equal
// to the CPU's lm_dequantize_row: `precise` forbids fusing q * d + m into an FMA).
//
// The including shader declares three views of the weight binding: w8 (uint8_t[]),
// w16 (uint16_t[]) and wf (float[]), and defines one WTYPE_<type>. Rows are addressed by
// their byte offset in the binding (even for block types, 4-aligned for F32).
//   LM_BLCK          elements per block
//   float lm_w(row, i)   element i of the row starting at byte `row`

uint lm_u8(uint b) {
    return uint(w8[b]);
}
int lm_i8(uint b) {
    return bitfieldExtract(int(uint(w8[b])), 0, 8); // sign-extend without Int8 arithmetic
}
float lm_f16at(uint b) { // f16 field at an even byte offset
    return lm_h2f(uint(w16[b >> 1]));
}
// 2-bit field of element e of a q2_K / q3_K qs array at byte q
uint lm_bits2(uint q, uint e) {
    return (lm_u8(q + (e >> 7) * 32u + (e & 31u)) >> (2u * ((e >> 5) & 3u))) & 3u;
}
// 6-bit scale and min of sub-block j of q4_K / q5_K scales at byte s
void lm_k4_scale_min(uint s, uint j, out uint sc, out uint m) {
    if (j < 4u) {
        sc = lm_u8(s + j) & 63u;
        m = lm_u8(s + j + 4u) & 63u;
    } else {
        sc = (lm_u8(s + j + 4u) & 15u) | ((lm_u8(s + j - 4u) >> 6) << 4);
        m = (lm_u8(s + j + 4u) >> 4) | ((lm_u8(s + j) >> 6) << 4);
    }
}

#if defined(WTYPE_F32)
#define LM_BLCK 1
float lm_w(uint row, uint i) {
    return wf[(row >> 2) + i];
}
#elif defined(WTYPE_F16)
#define LM_BLCK 1
float lm_w(uint row, uint i) {
    return lm_h2f(uint(w16[(row >> 1) + i]));
}
#elif defined(WTYPE_BF16)
#define LM_BLCK 1
float lm_w(uint row, uint i) {
    return lm_bf2f(uint(w16[(row >> 1) + i]));
}
#elif defined(WTYPE_Q4_0)
#define LM_BLCK 32
float lm_w(uint row, uint i) { // x = (q - 8) * d
    uint b = row + (i >> 5) * 18u, j = i & 31u;
    uint q = lm_u8(b + 2u + (j & 15u));
    q = j < 16u ? (q & 15u) : (q >> 4);
    precise float x = float(int(q) - 8) * lm_f16at(b);
    return x;
}
#elif defined(WTYPE_Q4_1)
#define LM_BLCK 32
float lm_w(uint row, uint i) { // x = q * d + m
    uint b = row + (i >> 5) * 20u, j = i & 31u;
    uint q = lm_u8(b + 4u + (j & 15u));
    q = j < 16u ? (q & 15u) : (q >> 4);
    precise float p = float(q) * lm_f16at(b);
    precise float x = p + lm_f16at(b + 2u);
    return x;
}
#elif defined(WTYPE_Q5_0)
#define LM_BLCK 32
float lm_w(uint row, uint i) { // x = (q - 16) * d, bit 4 of element j is bit j of qh
    uint b = row + (i >> 5) * 22u, j = i & 31u;
    uint q = lm_u8(b + 6u + (j & 15u));
    q = j < 16u ? (q & 15u) : (q >> 4);
    q |= ((lm_u8(b + 2u + (j >> 3)) >> (j & 7u)) & 1u) << 4;
    precise float x = float(int(q) - 16) * lm_f16at(b);
    return x;
}
#elif defined(WTYPE_Q5_1)
#define LM_BLCK 32
float lm_w(uint row, uint i) { // x = q * d + m
    uint b = row + (i >> 5) * 24u, j = i & 31u;
    uint q = lm_u8(b + 8u + (j & 15u));
    q = j < 16u ? (q & 15u) : (q >> 4);
    q |= ((lm_u8(b + 4u + (j >> 3)) >> (j & 7u)) & 1u) << 4;
    precise float p = float(q) * lm_f16at(b);
    precise float x = p + lm_f16at(b + 2u);
    return x;
}
#elif defined(WTYPE_Q8_0)
#define LM_BLCK 32
float lm_w(uint row, uint i) { // x = q * d
    uint b = row + (i >> 5) * 34u;
    precise float x = float(lm_i8(b + 2u + (i & 31u))) * lm_f16at(b);
    return x;
}
#elif defined(WTYPE_Q2_K)
#define LM_BLCK 256
float lm_w(uint row, uint i) { // x = d * (sc & 15) * q - dmin * (sc >> 4)
    uint b = row + (i >> 8) * 84u, e = i & 255u;
    uint sc = lm_u8(b + (e >> 4));
    precise float dl = lm_f16at(b + 80u) * float(sc & 15u);
    precise float ml = lm_f16at(b + 82u) * float(sc >> 4);
    precise float p = dl * float(lm_bits2(b + 16u, e));
    precise float x = p - ml;
    return x;
}
#elif defined(WTYPE_Q3_K)
#define LM_BLCK 256
float lm_w(uint row, uint i) { // x = d * (s - 32) * (q - (hbit ? 0 : 4))
    uint b = row + (i >> 8) * 110u, e = i & 255u, s = e >> 4;
    uint lo = s < 8u ? (lm_u8(b + 96u + s) & 15u) : (lm_u8(b + 96u + s - 8u) >> 4);
    uint hi = (lm_u8(b + 104u + (s & 3u)) >> (2u * (s >> 2))) & 3u;
    precise float dl = lm_f16at(b + 108u) * float(int(lo | (hi << 4)) - 32);
    uint h = (lm_u8(b + (e & 31u)) >> (e >> 5)) & 1u;
    precise float x = dl * float(int(lm_bits2(b + 32u, e)) - (h != 0u ? 0 : 4));
    return x;
}
#elif defined(WTYPE_Q4_K)
#define LM_BLCK 256
float lm_w(uint row, uint i) { // x = d * sc * q - dmin * m per sub-block of 32
    uint b = row + (i >> 8) * 144u, e = i & 255u, sc, m;
    lm_k4_scale_min(b + 4u, e >> 5, sc, m);
    uint v = lm_u8(b + 16u + (e >> 6) * 32u + (e & 31u));
    uint q = (e & 32u) != 0u ? (v >> 4) : (v & 15u);
    precise float dl = lm_f16at(b) * float(sc);
    precise float ml = lm_f16at(b + 2u) * float(m);
    precise float p = dl * float(q);
    precise float x = p - ml;
    return x;
}
#elif defined(WTYPE_Q5_K)
#define LM_BLCK 256
float lm_w(uint row, uint i) { // as q4_K with bit s of qh[l] as bit 4
    uint b = row + (i >> 8) * 176u, e = i & 255u, s = e >> 5, sc, m;
    lm_k4_scale_min(b + 4u, s, sc, m);
    uint v = lm_u8(b + 48u + (e >> 6) * 32u + (e & 31u));
    uint q = (e & 32u) != 0u ? (v >> 4) : (v & 15u);
    q |= ((lm_u8(b + 16u + (e & 31u)) >> s) & 1u) << 4;
    precise float dl = lm_f16at(b) * float(sc);
    precise float ml = lm_f16at(b + 2u) * float(m);
    precise float p = dl * float(q);
    precise float x = p - ml;
    return x;
}
#elif defined(WTYPE_Q6_K)
#define LM_BLCK 256
float lm_w(uint row, uint i) { // x = d * sc * (q - 32) per sub-block of 16
    uint b = row + (i >> 8) * 210u, e = i & 255u;
    uint h = e >> 7, k = (e >> 5) & 3u, l = e & 31u;
    uint lo = lm_u8(b + 64u * h + l + 32u * (k & 1u));
    uint q = ((k >> 1) != 0u ? (lo >> 4) : (lo & 15u)) |
             (((lm_u8(b + 128u + 32u * h + l) >> (2u * k)) & 3u) << 4);
    precise float dl = lm_f16at(b + 208u) * float(lm_i8(b + 192u + (e >> 4)));
    precise float x = dl * float(int(q) - 32);
    return x;
}
#else
#error "define one WTYPE_<type>"
#endif
