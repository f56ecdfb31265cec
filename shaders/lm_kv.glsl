// KV cache element access for the attention shaders: KV(b, r, d) is element d of the
// cache row that starts at r. One of KV_F16, KV_F32 (r in elements) or KV_Q8_0 (r in
// bytes: 32-element blocks of an f16 scale and 32 int8, as kernels/common's
// lm_block_q8_0). A Q8_0 value is q * d as lm_dequant_q8_0_block computes it: an f16
// times an 8-bit integer, exact in float, so every variant reads exactly what the CPU
// oracle converts. The including shader declares bindings 1 (kc) and 2 (vc).
// KV_SCALE(b, r, d) is the scale of element d's block and KV_SCALED(b, r, d, sc) the
// element given it, so loops over a block read its scale once (1.0 / KV for F16, F32).
#ifdef KV_F16
layout(binding = 1) readonly buffer KC { uint16_t kc[]; };
layout(binding = 2) readonly buffer VC { uint16_t vc[]; };
#define KV(b, r, d) lm_h2f(uint(b[(r) + (d)]))
#elif defined(KV_Q8_0)
layout(binding = 1) readonly buffer KC { uint8_t kc[]; };
layout(binding = 2) readonly buffer VC { uint8_t vc[]; };
#define KV_SCALE(b, r, d)                                                                  \
    lm_h2f(uint(b[(r) + ((d) >> 5) * 34u]) | (uint(b[(r) + ((d) >> 5) * 34u + 1u]) << 8))
// q sign-extended from 8 bits, times the scale: exact in float
#define KV_SCALED(b, r, d, sc)                                                             \
    (float(bitfieldExtract(int(uint(b[(r) + ((d) >> 5) * 34u + 2u + ((d) & 31u)])), 0, 8)) * (sc))
#define KV(b, r, d) KV_SCALED(b, r, d, KV_SCALE(b, r, d))
#else
layout(binding = 1) readonly buffer KC { float kc[]; };
layout(binding = 2) readonly buffer VC { float vc[]; };
#define KV(b, r, d) b[(r) + (d)]
#endif
#ifndef KV_SCALE
#define KV_SCALE(b, r, d) 1.0
#define KV_SCALED(b, r, d, sc) KV(b, r, d)
#endif
