#version 450
// argmax over ne0 of each column, one workgroup per column: the first index of the largest
// value; NaN never wins; a column with nothing above -inf gives 0 (as the CPU oracle).
#extension GL_GOOGLE_include_directive : require
#include "lm_common.glsl"

layout(local_size_x = 256) in;

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) writeonly buffer D { int d[]; };

layout(push_constant) uniform PC {
    uint K, ne1, ne2, n_cols;
    uint x_off, x_nb1, x_nb2, x_nb3;
    uint d_off;
} pc;

shared float sv[256];
shared uint si[256];

void main() {
    const uint tid = gl_LocalInvocationID.x, NONE = 0xffffffffu;
    for (uint c = LM_WG_ID; c < pc.n_cols; c += LM_N_WG) {
        uint i1 = c % pc.ne1, i2 = (c / pc.ne1) % pc.ne2, i3 = c / (pc.ne1 * pc.ne2);
        uint xo = pc.x_off + i1 * pc.x_nb1 + i2 * pc.x_nb2 + i3 * pc.x_nb3;
        float bv = uintBitsToFloat(0xff800000u); // -inf
        uint bi = NONE;
        for (uint i = tid; i < pc.K; i += 256u) { // increasing i: strict > keeps the first
            float v = x[xo + i];
            if (v > bv) {
                bv = v;
                bi = i;
            }
        }
        sv[tid] = bv;
        si[tid] = bi;
        barrier();
        for (uint s = 128u; s > 0u; s >>= 1) {
            if (tid < s) {
                float ov = sv[tid + s];
                uint oi = si[tid + s];
                if (oi != NONE && (si[tid] == NONE || ov > sv[tid] || (ov == sv[tid] && oi < si[tid]))) {
                    sv[tid] = ov;
                    si[tid] = oi;
                }
            }
            barrier();
        }
        if (tid == 0u) d[pc.d_off + c] = si[0] == NONE ? 0 : int(si[0]);
        barrier();
    }
}
