#version 450
// mul_mat for small batches with float W (WTYPE_F32, F16, BF16): dst[n, m] =
// sum_k W[k, n] x[k, m], up to 8 columns of x per pass, so each weight is read once per
// 8 columns.
// Every output is summed exactly as the CPU oracle's lm__cpu_dot: 16 lanes, lane j adding
// the products of elements k = j (mod 16) in increasing k, then a pairwise tree
// (8, 4, 2, 1); `precise` keeps the products and sums unfused. So the result is bit-equal
// to the CPU's, whatever the device. A workgroup is 4 rows x 16 lanes.
#extension GL_GOOGLE_include_directive : require
#include "lm_common.glsl"

layout(local_size_x = 64) in;

layout(binding = 0) readonly buffer W8 { uint8_t w8[]; };
layout(binding = 0) readonly buffer W16 { uint16_t w16[]; };
layout(binding = 0) readonly buffer WF { float wf[]; };
layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 2) writeonly buffer D { float d[]; };

layout(push_constant) uniform PC {
    uint K, N, M;
    uint w_off, w_nb1; // bytes
    uint x_off, x_nb1; // elements
    uint d_off, d_nb1;
} pc;

#include "lm_quant.glsl"

#define NR 4u
#define MAXC 8u
shared float red[64 * MAXC];

void main() {
    const uint tid = gl_LocalInvocationID.x, lane = tid & 15u, rr = tid >> 4;
    const uint n_rg = (pc.N + NR - 1u) / NR, n_cg = (pc.M + MAXC - 1u) / MAXC;
    for (uint g = LM_WG_ID; g < n_rg * n_cg; g += LM_N_WG) {
        const uint row = (g % n_rg) * NR + rr, c0 = (g / n_rg) * MAXC;
        const uint mc = min(MAXC, pc.M - c0);
        precise float acc[MAXC];
        for (uint c = 0u; c < MAXC; c++) acc[c] = 0.0;
        if (row < pc.N) {
            const uint rowb = pc.w_off + row * pc.w_nb1;
            const uint xb = pc.x_off + c0 * pc.x_nb1;
#if LM_BLCK == 1
            for (uint i = lane; i < pc.K; i += 16u) {
                const float w = lm_w(rowb, i);
                for (uint c = 0u; c < MAXC; c++)
                    if (c < mc) acc[c] += w * x[xb + c * pc.x_nb1 + i];
            }
#else
            for (uint i = lane; i < pc.K; i += 32u) { // elements i and i + 16 of a 32-unit
                const float w0 = lm_w(rowb, i), w1 = lm_w(rowb, i + 16u);
                for (uint c = 0u; c < MAXC; c++)
                    if (c < mc) {
                        acc[c] += w0 * x[xb + c * pc.x_nb1 + i];
                        acc[c] += w1 * x[xb + c * pc.x_nb1 + i + 16u];
                    }
            }
#endif
        }
        for (uint c = 0u; c < MAXC; c++) red[tid * MAXC + c] = acc[c];
        barrier();
        for (uint w = 8u; w > 0u; w >>= 1) {
            if (lane < w)
                for (uint c = 0u; c < MAXC; c++) red[tid * MAXC + c] += red[(tid + w) * MAXC + c];
            barrier();
        }
        if (lane == 0u && row < pc.N)
            for (uint c = 0u; c < mc; c++) d[pc.d_off + (c0 + c) * pc.d_nb1 + row] = red[tid * MAXC + c];
        barrier();
    }
}
