#version 450
// mul_mat for prefill with quantized W: a 16 x 16 tile of dst per workgroup, one
// invocation per output adding its blocks' terms (lm_qdot.glsl) in block order, as the
// CPU backend does, so results are bit-equal to it. The 16 invocations sharing a weight
// row (or an activation column) read the same blocks, which the caches serve.
#extension GL_GOOGLE_include_directive : require
#include "lm_common.glsl"

layout(local_size_x = 256) in;

layout(binding = 0) readonly buffer W8 { uint8_t w8[]; };
layout(binding = 0) readonly buffer W16 { uint16_t w16[]; };
layout(binding = 0) readonly buffer WF { float wf[]; };
layout(binding = 1) readonly buffer A8 { uint8_t a8[]; };
layout(binding = 1) readonly buffer AF { float af[]; };
layout(binding = 1) readonly buffer AI { int ai[]; };
layout(binding = 2) writeonly buffer D { float d[]; };

layout(push_constant) uniform PC {
    uint K, N, M, nb;
    uint w_off, w_nb1; // bytes
    uint act_qs, act_d, act_s;
    uint d_off, d_nb1; // elements
} pc;

#include "lm_quant.glsl"
#include "lm_qdot.glsl"

void main() {
    const uint tid = gl_LocalInvocationID.x;
    const uint n_tn = (pc.N + 15u) / 16u, n_tm = (pc.M + 15u) / 16u;
    for (uint g = LM_WG_ID; g < n_tn * n_tm; g += LM_N_WG) {
        const uint row = (g % n_tn) * 16u + (tid & 15u), col = (g / n_tn) * 16u + (tid >> 4);
        if (row >= pc.N || col >= pc.M) continue;
        const uint rowb = pc.w_off + row * pc.w_nb1;
        precise float acc = 0.0;
        for (uint b = 0u; b < pc.nb; b++) acc += lm_qterm(rowb + b * LM_QBYTES, col * pc.nb + b);
        d[pc.d_off + col * pc.d_nb1 + row] = acc;
    }
}
