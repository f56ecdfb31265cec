#version 450
// copy between the storage formats F32, F16 and BF16 (SRC_*, DST_*), any strides, one
// invocation per element; conversions round as the CPU's (byte-identical results). RAW16
// moves 16-bit words untouched (rows of a block type such as a Q8_0 KV cache, whose bytes
// may look like signalling NaNs to a float path).
#extension GL_GOOGLE_include_directive : require
#include "lm_common.glsl"

layout(local_size_x = 256) in;

#ifdef RAW16
layout(binding = 0) readonly buffer S { uint16_t s[]; };
layout(binding = 1) writeonly buffer D { uint16_t d[]; };
#define VAL uint
#define LOAD(i) uint(s[i])
#define STORE(i, x) d[i] = uint16_t(x)
#else
#define VAL float
#ifdef SRC_F32
layout(binding = 0) readonly buffer S { float s[]; };
#define LOAD(i) s[i]
#elif defined(SRC_F16)
layout(binding = 0) readonly buffer S { uint16_t s[]; };
#define LOAD(i) lm_h2f(uint(s[i]))
#else
layout(binding = 0) readonly buffer S { uint16_t s[]; };
#define LOAD(i) lm_bf2f(uint(s[i]))
#endif
#ifdef DST_F32
layout(binding = 1) writeonly buffer D { float d[]; };
#define STORE(i, x) d[i] = (x)
#elif defined(DST_F16)
layout(binding = 1) writeonly buffer D { uint16_t d[]; };
#define STORE(i, x) d[i] = uint16_t(lm_f2h(x))
#else
layout(binding = 1) writeonly buffer D { uint16_t d[]; };
#define STORE(i, x) d[i] = uint16_t(lm_f2bf(x))
#endif
#endif

layout(push_constant) uniform PC {
    uint ne0, ne1, ne2, ne3;
    uint s_off, s_nb1, s_nb2, s_nb3; // source elements
    uint d_off, d_nb1, d_nb2, d_nb3; // destination elements
} pc;

void main() {
    const uint n = pc.ne0 * pc.ne1 * pc.ne2 * pc.ne3, stride = LM_N_WG * 256u;
    for (uint idx = LM_WG_ID * 256u + gl_LocalInvocationID.x; idx < n; idx += stride) {
        uint i0 = idx % pc.ne0, r = idx / pc.ne0;
        uint i1 = r % pc.ne1, i2 = (r / pc.ne1) % pc.ne2, i3 = r / (pc.ne1 * pc.ne2);
        VAL x = LOAD(pc.s_off + i0 + i1 * pc.s_nb1 + i2 * pc.s_nb2 + i3 * pc.s_nb3);
        STORE(pc.d_off + i0 + i1 * pc.d_nb1 + i2 * pc.d_nb2 + i3 * pc.d_nb3, x);
    }
}
