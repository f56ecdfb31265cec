#version 450
// Merge the n_split partial results (acc, m, l) of attention.comp for each (token, head):
// out = sum_i acc_i e^(m_i - M) / sum_i l_i e^(m_i - M), M the largest m_i of non-empty
// chunks. One workgroup per (token, head).
#extension GL_GOOGLE_include_directive : require
#include "lm_common.glsl"

layout(local_size_x = 64) in;

layout(binding = 0) readonly buffer PART { float part[]; };
layout(binding = 1) writeonly buffer O { float o[]; };

layout(push_constant) uniform PC {
    uint D, H, T, n_split;
    uint o_off, o_nb1, o_nb2;
} pc;

void main() {
    const uint tid = gl_LocalInvocationID.x;
    for (uint g = LM_WG_ID; g < pc.T * pc.H; g += LM_N_WG) {
        const uint h = g % pc.H, t = g / pc.H, base = g * pc.n_split * (pc.D + 2u);
        float M = uintBitsToFloat(0xff800000u);
        for (uint i = 0u; i < pc.n_split; i++) {
            const uint pb = base + i * (pc.D + 2u);
            if (part[pb + pc.D + 1u] > 0.0) M = max(M, part[pb + pc.D]);
        }
        float L = 0.0;
        for (uint i = 0u; i < pc.n_split; i++) {
            const uint pb = base + i * (pc.D + 2u);
            const float l = part[pb + pc.D + 1u];
            if (l > 0.0) L += l * lm_exp(part[pb + pc.D] - M);
        }
        const float inv = L > 0.0 ? 1.0 / L : 0.0;
        for (uint d = tid; d < pc.D; d += 64u) {
            float a = 0.0;
            for (uint i = 0u; i < pc.n_split; i++) {
                const uint pb = base + i * (pc.D + 2u);
                if (part[pb + pc.D + 1u] > 0.0) a += part[pb + d] * lm_exp(part[pb + pc.D] - M);
            }
            o[pc.o_off + h * pc.o_nb1 + t * pc.o_nb2 + d] = a * inv;
        }
    }
}
