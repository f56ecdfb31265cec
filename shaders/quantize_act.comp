#version 450
// Quantize activations x [K, M] to 16-bit integers per block, exactly as the CPU backend
// does before its integer dot products (kernels/cpu/cpu_dot_scalar.c, lm__quantize_16): per
// block of ACT_BLK elements (32 for the 32-element weight types, 256 for the k-quants)
// d = amax / 32767, q = round half away from zero (x * (1 / d)) within +-32767; then
// s = d * sum(q) (32) or the sums of each 16 q (256). One invocation per block; block
// cb = m * nb + b (column m, block b) at qs + 2 * ACT_BLK * cb bytes.
// The scales are float quotients: equal to the CPU's where the device divides as IEEE
// does (lavapipe, most GPUs); Vulkan allows 2.5 ulp, which would move results by ~1e-7.
#extension GL_GOOGLE_include_directive : require
#include "lm_common.glsl"

layout(local_size_x = 64) in;

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) writeonly buffer A16 { uint16_t a16[]; };
layout(binding = 1) writeonly buffer AF { float af[]; };
layout(binding = 1) writeonly buffer AI { int ai[]; };

layout(push_constant) uniform PC {
    uint K, M, nb;
    uint x_off, x_nb1; // elements
    uint act_qs;       // byte offset of the quants in the binding
    uint act_d, act_s; // word offsets of d[] and of s[] (ACT_BLK 256: 16 sums per block)
} pc;

const uint BLK = uint(ACT_BLK);

void main() {
    const uint n = pc.M * pc.nb, stride = LM_N_WG * 64u;
    for (uint cb = LM_WG_ID * 64u + gl_LocalInvocationID.x; cb < n; cb += stride) {
        const uint m = cb / pc.nb, b = cb - m * pc.nb;
        const uint xb = pc.x_off + m * pc.x_nb1 + b * BLK, qb = (pc.act_qs >> 1) + cb * BLK;
        float amax = 0.0;
        for (uint j = 0u; j < BLK; j++) amax = max(amax, abs(x[xb + j]));
        precise float d = amax / 32767.0;
        precise float id = d != 0.0 ? 1.0 / d : 0.0;
        int sum = 0;
        for (uint j = 0u; j < BLK; j++) {
            precise float v = x[xb + j] * id;
            precise float r = v + (v >= 0.0 ? 0.5 : -0.5);
            const int q = clamp(int(r), -32767, 32767); // int() truncates, as C's cast
            a16[qb + j] = uint16_t(uint(q) & 0xffffu);
            sum += q;
#if ACT_BLK == 256
            if ((j & 15u) == 15u) {
                ai[pc.act_s + cb * 16u + (j >> 4)] = sum;
                sum = 0;
            }
#endif
        }
        af[pc.act_d + cb] = d;
#if ACT_BLK == 32
        precise float s = d * float(sum);
        af[pc.act_s + cb] = s;
#endif
    }
}
