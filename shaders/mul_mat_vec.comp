#version 450
// mul_mat with float W (WTYPE_F32, F16, BF16): dst[n, m] = sum_k W[k, n] x[k, m].
// One invocation per output, summing exactly as the CPU oracle's lm__cpu_dot: 16 lane
// sums (lane j adds the products of k = j mod 16 in increasing k), then the pairwise tree
// 8, 4, 2, 1; `precise` keeps every product and sum unfused, so the result is bit-equal to
// the CPU's. No shared memory or barriers (costly on CPU implementations such as
// lavapipe). TILED: a workgroup covers 16 rows x 16 columns (prefill); else 64 rows of
// one column (decode), neighbouring invocations reading neighbouring rows.
#extension GL_GOOGLE_include_directive : require
#include "lm_common.glsl"

#ifdef TILED
layout(local_size_x = 256) in;
#define TR 16u
#define TC 16u
#else
layout(local_size_x = 64) in;
#define TR 64u
#define TC 1u
#endif

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

void main() {
    const uint tid = gl_LocalInvocationID.x;
    const uint n_tn = (pc.N + TR - 1u) / TR, n_tm = (pc.M + TC - 1u) / TC;
    for (uint g = LM_WG_ID; g < n_tn * n_tm; g += LM_N_WG) {
        const uint row = (g % n_tn) * TR + tid % TR, col = (g / n_tn) * TC + tid / TR;
        if (row >= pc.N || col >= pc.M) continue;
        const uint rowb = pc.w_off + row * pc.w_nb1, xb = pc.x_off + col * pc.x_nb1;
        precise float acc[16];
        for (uint j = 0u; j < 16u; j++) acc[j] = 0.0;
        uint k = 0u;
        for (; k + 16u <= pc.K; k += 16u)
            for (uint j = 0u; j < 16u; j++) acc[j] += lm_w(rowb, k + j) * x[xb + k + j];
        for (uint j = 0u; k + j < pc.K; j++) acc[j] += lm_w(rowb, k + j) * x[xb + k + j];
        for (uint w = 8u; w > 0u; w >>= 1)
            for (uint j = 0u; j < w; j++) acc[j] += acc[j + w];
        d[pc.d_off + col * pc.d_nb1 + row] = acc[0];
    }
}
