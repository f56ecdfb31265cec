// KV cache element access for the attention shaders: KV(b, r, d) is element d of the
// cache row that starts at r. One of KV_F16, KV_F32 (r in elements) or KV_Q8_0 (r in
// bytes: 32-element blocks of an f16 scale and 32 int8, as kernels/common's
// lm_block_q8_0). A Q8_0 value is q * d as lm_dequant_q8_0_block computes it: an f16
// times an 8-bit integer, exact in float, so every variant reads exactly what the CPU
// oracle converts. The including shader declares bindings 1 (kc) and 2 (vc).
#ifdef KV_F16
layout(binding = 1) readonly buffer KC { uint16_t kc[]; };
layout(binding = 2) readonly buffer VC { uint16_t vc[]; };
#define KV(b, r, d) lm_h2f(uint(b[(r) + (d)]))
#elif defined(KV_Q8_0)
layout(binding = 1) readonly buffer KC { uint8_t kc[]; };
layout(binding = 2) readonly buffer VC { uint8_t vc[]; };
#define KV(b, r, d)                                                                        \
    lm_kv_q8(uint(b[(r) + ((d) >> 5) * 34u]), uint(b[(r) + ((d) >> 5) * 34u + 1u]),         \
             uint(b[(r) + ((d) >> 5) * 34u + 2u + ((d) & 31u)]))
float lm_kv_q8(uint d0, uint d1, uint q) {
    const float d = lm_h2f(d0 | (d1 << 8));
    return float(bitfieldExtract(int(q), 0, 8)) * d; // q sign-extended from 8 bits
}
#else
layout(binding = 1) readonly buffer KC { float kc[]; };
layout(binding = 2) readonly buffer VC { float vc[]; };
#define KV(b, r, d) b[(r) + (d)]
#endif
