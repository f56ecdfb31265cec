#version 450
// Element-wise ops over a [ne0, ne1, ne2, ne3] view, one invocation per element:
// OP_SWIGLU silu(a) * b, OP_GEGLU gelu_tanh(a) * b, OP_ADD a + b, OP_MUL a * b (b broadcast
// along dims where its extent is 1), OP_SCALE a * s. dst may alias a or b: each element is
// read and written by the same invocation. USE_F64: swiglu with glibc's expf (bit-equal
// to the CPU backend).
#extension GL_GOOGLE_include_directive : require
#include "lm_common.glsl"

layout(local_size_x = 256) in;

layout(binding = 0) readonly buffer A { float a[]; };
layout(binding = 1) readonly buffer B { float b[]; };
layout(binding = 2) writeonly buffer D { float d[]; };

layout(push_constant) uniform PC {
    uint ne0, ne1, ne2, ne3;
    uint a_off, a_nb1, a_nb2, a_nb3; // elements
    uint b_off, b_nb1, b_nb2, b_nb3;
    uint bne0, bne1, bne2, bne3;
    uint d_off, d_nb1, d_nb2, d_nb3;
    float s;
} pc;

void main() {
    const uint n = pc.ne0 * pc.ne1 * pc.ne2 * pc.ne3, stride = LM_N_WG * 256u;
    for (uint idx = LM_WG_ID * 256u + gl_LocalInvocationID.x; idx < n; idx += stride) {
        uint i0 = idx % pc.ne0, r = idx / pc.ne0;
        uint i1 = r % pc.ne1, i2 = (r / pc.ne1) % pc.ne2, i3 = r / (pc.ne1 * pc.ne2);
        float x = a[pc.a_off + i0 + i1 * pc.a_nb1 + i2 * pc.a_nb2 + i3 * pc.a_nb3];
#ifndef OP_SCALE
        float y = b[pc.b_off + i0 % pc.bne0 + (i1 % pc.bne1) * pc.b_nb1 +
                    (i2 % pc.bne2) * pc.b_nb2 + (i3 % pc.bne3) * pc.b_nb3];
#endif
#if defined(OP_SWIGLU) && defined(USE_F64)
        precise float o = x / (1.0 + lm_expf(-x)) * y; // the CPU's expf: bit-equal
#elif defined(OP_SWIGLU)
        precise float o = x / (1.0 + lm_exp(-x)) * y;
#elif defined(OP_GEGLU)
        const float k = 0.7978845608028654; // sqrt(2/pi)
        precise float o = 0.5 * x * (1.0 + lm_tanh(k * (x + 0.044715 * x * x * x))) * y;
#elif defined(OP_ADD)
        precise float o = x + y;
#elif defined(OP_MUL)
        precise float o = x * y;
#elif defined(OP_SCALE)
        precise float o = x * pc.s;
#else
#error "define one OP_"
#endif
        d[pc.d_off + i0 + i1 * pc.d_nb1 + i2 * pc.d_nb2 + i3 * pc.d_nb3] = o;
    }
}
