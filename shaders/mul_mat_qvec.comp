#version 450
// mul_mat for small batches with quantized W (WTYPE_Q*), x already quantized to 8 bits
// by quantize_act.comp: dst[n, m] = sum over blocks b, in order, of lm_qterm(W[n] block
// b, x[m] block b) -- the CPU backend's computation, so results are bit-equal to it.
// A workgroup is 4 rows x 16 lanes: lanes compute the terms of 16 consecutive blocks
// (the integer work, reading each weight block once per 8 columns), then lane 0 of the
// row adds them in block order.
#extension GL_GOOGLE_include_directive : require
#include "lm_common.glsl"

layout(local_size_x = 64) in;

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

#define NR 4u
#define MAXC 8u
shared float terms[NR][MAXC][16];

void main() {
    const uint tid = gl_LocalInvocationID.x, lane = tid & 15u, rr = tid >> 4;
    const uint n_rg = (pc.N + NR - 1u) / NR, n_cg = (pc.M + MAXC - 1u) / MAXC;
    for (uint g = LM_WG_ID; g < n_rg * n_cg; g += LM_N_WG) {
        const uint row = (g % n_rg) * NR + rr, c0 = (g / n_rg) * MAXC;
        const uint mc = min(MAXC, pc.M - c0);
        const uint rowb = pc.w_off + min(row, pc.N - 1u) * pc.w_nb1;
        precise float acc[MAXC];
        for (uint c = 0u; c < MAXC; c++) acc[c] = 0.0;
        for (uint b0 = 0u; b0 < pc.nb; b0 += 16u) {
            const uint b = b0 + lane;
            for (uint c = 0u; c < MAXC; c++)
                terms[rr][c][lane] = c < mc && b < pc.nb && row < pc.N
                                         ? lm_qterm(rowb + b * LM_QBYTES, (c0 + c) * pc.nb + b)
                                         : 0.0;
            barrier();
            if (lane == 0u) {
                const uint nt = min(16u, pc.nb - b0);
                for (uint c = 0u; c < MAXC; c++)
                    for (uint i = 0u; i < nt; i++) acc[c] += terms[rr][c][i];
            }
            barrier();
        }
        if (lane == 0u && row < pc.N)
            for (uint c = 0u; c < mc; c++) d[pc.d_off + (c0 + c) * pc.d_nb1 + row] = acc[c];
    }
}
