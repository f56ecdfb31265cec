// One block's term of a quantized dot product, mirroring kernels/cpu/cpu_vec_dot.c: the
// integer sum of weight levels times 8-bit activations (exact in any order), then the
// block's float expression in the CPU's order with no fused operations. A row's result is
// the float sum of its blocks' terms in block order (the callers keep that order).
//
// Needs: the weight views w8/w16 (lm_quant.glsl's helpers), the activation views a8
// (uint8_t[]), af (float[]), ai (int[]) and push constants act_qs (byte offset of the
// 8-bit values), act_d and act_s (word offsets of d[] and of s[] or the Q8_K bsums).
//   LM_QBLCK                      elements per weight block (= activation block)
//   LM_QBYTES                     bytes per weight block
//   float lm_qterm(uint wb, uint cb)   wb: byte offset of the weight block, cb: act block

int lm_a8(uint i) {
    return bitfieldExtract(int(uint(a8[i])), 0, 8);
}

#if defined(WTYPE_Q4_0) || defined(WTYPE_Q4_1) || defined(WTYPE_Q5_0) ||                     \
    defined(WTYPE_Q5_1) || defined(WTYPE_Q8_0)
#define LM_QBLCK 32u
#if defined(WTYPE_Q4_0)
#define LM_QBYTES 18u
#elif defined(WTYPE_Q4_1)
#define LM_QBYTES 20u
#elif defined(WTYPE_Q5_0)
#define LM_QBYTES 22u
#elif defined(WTYPE_Q5_1)
#define LM_QBYTES 24u
#else
#define LM_QBYTES 34u
#endif

float lm_qterm(uint wb, uint cb) {
    const uint qa = pc.act_qs + cb * 32u;
    int sum = 0;
#if defined(WTYPE_Q8_0)
    for (uint j = 0u; j < 32u; j++) sum += lm_i8(wb + 2u + j) * lm_a8(qa + j);
#else
#if defined(WTYPE_Q5_0) || defined(WTYPE_Q5_1)
#if defined(WTYPE_Q5_0)
    const uint hb = wb + 2u; // qh, then qs at hb + 4
#else
    const uint hb = wb + 4u;
#endif
#endif
    for (uint j = 0u; j < 16u; j++) {
#if defined(WTYPE_Q4_0)
        const uint q = lm_u8(wb + 2u + j);
        sum += (int(q & 15u) - 8) * lm_a8(qa + j) + (int(q >> 4) - 8) * lm_a8(qa + j + 16u);
#elif defined(WTYPE_Q4_1)
        const uint q = lm_u8(wb + 4u + j);
        sum += int(q & 15u) * lm_a8(qa + j) + int(q >> 4) * lm_a8(qa + j + 16u);
#else
        const uint q = lm_u8(hb + 4u + j);
        const uint lo = (q & 15u) | (((lm_u8(hb + (j >> 3)) >> (j & 7u)) & 1u) << 4);
        const uint hi = (q >> 4) | (((lm_u8(hb + 2u + (j >> 3)) >> (j & 7u)) & 1u) << 4);
#if defined(WTYPE_Q5_0)
        sum += (int(lo) - 16) * lm_a8(qa + j) + (int(hi) - 16) * lm_a8(qa + j + 16u);
#else
        sum += int(lo) * lm_a8(qa + j) + int(hi) * lm_a8(qa + j + 16u);
#endif
#endif
    }
#endif
#if defined(WTYPE_Q4_1) || defined(WTYPE_Q5_1)
    precise float t = lm_f16at(wb) * af[pc.act_d + cb] * float(sum) +
                      lm_f16at(wb + 2u) * af[pc.act_s + cb];
#else
    precise float t = lm_f16at(wb) * af[pc.act_d + cb] * float(sum);
#endif
    return t;
}

#else // k-quants against lm_block_q8_K activations
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

int lm_kdot16(uint wb, uint qa, uint s) { // sum of 16 products of sub-block s
    int r = 0;
    for (uint l = 0u; l < 16u; l++) r += lm_kq(wb, 16u * s + l) * lm_a8(qa + 16u * s + l);
    return r;
}

float lm_qterm(uint wb, uint cb) {
    const uint qa = pc.act_qs + cb * 256u, bs = pc.act_s + cb * 16u;
    const float ad = af[pc.act_d + cb];
    int isum = 0;
#if defined(WTYPE_Q2_K)
    int msum = 0;
    for (uint s = 0u; s < 16u; s++) {
        const uint sc = lm_u8(wb + s);
        isum += int(sc & 15u) * lm_kdot16(wb, qa, s);
        msum += int(sc >> 4) * ai[bs + s];
    }
    precise float t = ad * (lm_f16at(wb + 80u) * float(isum) - lm_f16at(wb + 82u) * float(msum));
#elif defined(WTYPE_Q3_K)
    for (uint s = 0u; s < 16u; s++) {
        const uint lo = s < 8u ? (lm_u8(wb + 96u + s) & 15u) : (lm_u8(wb + 88u + s) >> 4);
        const uint hi = (lm_u8(wb + 104u + (s & 3u)) >> (2u * (s >> 2))) & 3u;
        isum += (int(lo | (hi << 4)) - 32) * lm_kdot16(wb, qa, s);
    }
    precise float t = ad * (lm_f16at(wb + 108u) * float(isum));
#elif defined(WTYPE_Q4_K) || defined(WTYPE_Q5_K)
    int msum = 0;
    for (uint s = 0u; s < 8u; s++) {
        uint sc, m;
        lm_k4_scale_min(wb + 4u, s, sc, m);
        isum += int(sc) * (lm_kdot16(wb, qa, 2u * s) + lm_kdot16(wb, qa, 2u * s + 1u));
        msum += int(m) * (ai[bs + 2u * s] + ai[bs + 2u * s + 1u]);
    }
    precise float t = ad * (lm_f16at(wb) * float(isum) - lm_f16at(wb + 2u) * float(msum));
#else
    for (uint s = 0u; s < 16u; s++) isum += lm_i8(wb + 192u + s) * lm_kdot16(wb, qa, s);
    precise float t = ad * (lm_f16at(wb + 208u) * float(isum));
#endif
    return t;
}
#endif
