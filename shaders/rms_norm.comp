#version 450
// rms_norm: dst[:, r] = x[:, r] / sqrt(mean(x[:, r]^2) + eps) * w, one workgroup per row.
// USE_F64: the sum of squares in double as the CPU oracle does, so the float scale is the
// oracle's (a different summation order changes the double only in its last bits).
#extension GL_GOOGLE_include_directive : require
#include "lm_common.glsl"

layout(local_size_x = 128) in;

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) readonly buffer W { float w[]; };
layout(binding = 2) writeonly buffer D { float d[]; };

layout(push_constant) uniform PC {
    uint K, ne1, ne2, n_rows;
    uint x_off, x_nb1, x_nb2, x_nb3; // elements
    uint d_off, d_nb1, d_nb2, d_nb3;
    uint w_off, has_w;
    float eps;
} pc;

#ifdef USE_F64
#define ACC double
#else
#define ACC float
#endif
shared ACC red[128];

void main() {
    const uint tid = gl_LocalInvocationID.x;
    for (uint r = LM_WG_ID; r < pc.n_rows; r += LM_N_WG) {
        uint i1 = r % pc.ne1, i2 = (r / pc.ne1) % pc.ne2, i3 = r / (pc.ne1 * pc.ne2);
        uint xo = pc.x_off + i1 * pc.x_nb1 + i2 * pc.x_nb2 + i3 * pc.x_nb3;
        uint dof = pc.d_off + i1 * pc.d_nb1 + i2 * pc.d_nb2 + i3 * pc.d_nb3;
        ACC ss = ACC(0);
        for (uint i = tid; i < pc.K; i += 128u) {
            ACC v = ACC(x[xo + i]);
            ss += v * v;
        }
        red[tid] = ss;
        barrier();
        for (uint s = 64u; s > 0u; s >>= 1) {
            if (tid < s) red[tid] += red[tid + s];
            barrier();
        }
#ifdef USE_F64
        const float sc = float(1.0LF / sqrt(red[0] / double(pc.K) + double(pc.eps)));
#else
        const float sc = 1.0 / sqrt(red[0] / float(pc.K) + pc.eps);
#endif
        barrier(); // red[0] is read by all before the next row overwrites it
        for (uint i = tid; i < pc.K; i += 128u) {
            precise float y = x[xo + i] * sc;
            if (pc.has_w != 0u) y = y * w[pc.w_off + i];
            d[dof + i] = y;
        }
    }
}
