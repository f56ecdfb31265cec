#version 450
// mul_mat for prefill with float W: a 16 x 16 tile of dst per workgroup, W and x staged
// through shared memory 32 elements of k at a time. Summation as in mul_mat_vec.comp, so
// bit-equal to the CPU oracle: each output has 16 lane sums (lane j: k = j mod 16,
// increasing k), here held by 16 invocations that each own a 4 x 4 block of outputs,
// combined at the end by the same pairwise tree.
#extension GL_GOOGLE_include_directive : require
#include "lm_common.glsl"

layout(local_size_x = 256) in;

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

shared float ws[16 * 33];
shared float xs[16 * 33];
shared float red[16 * 16 * 17]; // [cell][output][lane], lanes padded

void main() {
    const uint tid = gl_LocalInvocationID.x, lane = tid & 15u, cell = tid >> 4;
    const uint cn = (cell & 3u) * 4u, cm = (cell >> 2) * 4u; // this cell's rows and columns
    const uint n_tn = (pc.N + 15u) / 16u, n_tm = (pc.M + 15u) / 16u;
    for (uint g = LM_WG_ID; g < n_tn * n_tm; g += LM_N_WG) {
        const uint n0 = (g % n_tn) * 16u, m0 = (g / n_tn) * 16u;
        // loaders: W row (and x column) `cell` of the tile, elements lane and lane + 16
        const uint lrow = n0 + cell, lcol = m0 + cell;
        const uint rowb = pc.w_off + min(lrow, pc.N - 1u) * pc.w_nb1;
        const uint colb = pc.x_off + min(lcol, pc.M - 1u) * pc.x_nb1;
        precise float acc[16];
        for (uint o = 0u; o < 16u; o++) acc[o] = 0.0;
        for (uint k0 = 0u; k0 < pc.K; k0 += 32u) {
            const uint i0 = k0 + lane, i1 = i0 + 16u;
            ws[cell * 33u + lane] = lrow < pc.N && i0 < pc.K ? lm_w(rowb, i0) : 0.0;
            ws[cell * 33u + lane + 16u] = lrow < pc.N && i1 < pc.K ? lm_w(rowb, i1) : 0.0;
            xs[cell * 33u + lane] = lcol < pc.M && i0 < pc.K ? x[colb + i0] : 0.0;
            xs[cell * 33u + lane + 16u] = lcol < pc.M && i1 < pc.K ? x[colb + i1] : 0.0;
            barrier();
            for (uint h = 0u; h < 32u; h += 16u) // element lane, then lane + 16
                for (uint r = 0u; r < 4u; r++) {
                    const float w = ws[(cn + r) * 33u + lane + h];
                    for (uint c = 0u; c < 4u; c++)
                        acc[r * 4u + c] += w * xs[(cm + c) * 33u + lane + h];
                }
            barrier();
        }
        for (uint o = 0u; o < 16u; o++) red[(cell * 16u + o) * 17u + lane] = acc[o];
        barrier();
        for (uint w = 8u; w > 0u; w >>= 1) {
            if (lane < w)
                for (uint o = 0u; o < 16u; o++)
                    red[(cell * 16u + o) * 17u + lane] += red[(cell * 16u + o) * 17u + lane + w];
            barrier();
        }
        // 256 outputs, one per invocation: cell c2, output o2
        const uint c2 = tid >> 4, o2 = tid & 15u;
        const uint row = n0 + (c2 & 3u) * 4u + (o2 >> 2), col = m0 + (c2 >> 2) * 4u + (o2 & 3u);
        if (row < pc.N && col < pc.M) d[pc.d_off + col * pc.d_nb1 + row] = red[(c2 * 16u + o2) * 17u];
        barrier();
    }
}
