#version 450
// Quantize activations x [K, M] to 8 bits per block, exactly as the CPU backend does
// before its integer dot products (kernels/cpu/cpu_vec_dot.c): one invocation per block.
//   ACT_Q8A (32-element weight types): d = amax / 127, q = round half away (x / d),
//            s = d * sum(q)                      -> qs bytes, d[], s[]
//   ACT_Q8K (k-quants, lm_block_q8_K): d = 1 / (-127 / signed max), q = nearest (ties to
//            even) of x * (-127 / max), capped at 127, 16-element sums -> qs, d[], bsums[]
// Block cb = m * nb + b (column m, block b). The scales are float quotients: equal to the
// CPU's where the device divides as IEEE does (lavapipe, most GPUs); Vulkan allows 2.5 ulp,
// which would move results by ~1e-7 relative. (Correcting the quotient needs an exact
// remainder, and fma is not fused on every device: llvmpipe splits it.)
#extension GL_GOOGLE_include_directive : require
#include "lm_common.glsl"

layout(local_size_x = 64) in;

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) writeonly buffer A8 { uint8_t a8[]; };
layout(binding = 1) writeonly buffer AF { float af[]; };
layout(binding = 1) writeonly buffer AI { int ai[]; };

layout(push_constant) uniform PC {
    uint K, M, nb;
    uint x_off, x_nb1; // elements
    uint act_qs;       // byte offset of the quants in the binding
    uint act_d, act_s; // word offsets of d[] and s[] (Q8K: bsums[16 per block])
} pc;

void main() {
    const uint n = pc.M * pc.nb, stride = LM_N_WG * 64u;
    for (uint cb = LM_WG_ID * 64u + gl_LocalInvocationID.x; cb < n; cb += stride) {
        const uint m = cb / pc.nb, b = cb - m * pc.nb;
#ifdef ACT_Q8A
        const uint xb = pc.x_off + m * pc.x_nb1 + b * 32u, qb = pc.act_qs + cb * 32u;
        float amax = 0.0;
        for (uint j = 0u; j < 32u; j++) amax = max(amax, abs(x[xb + j]));
        precise float d = amax / 127.0;
        const float id = d != 0.0 ? 1.0 / d : 0.0;
        int sum = 0;
        for (uint j = 0u; j < 32u; j++) {
            precise float v = x[xb + j] * id;
            precise float r = v + (v >= 0.0 ? 0.5 : -0.5);
            const int q = clamp(int(r), -127, 127); // int() truncates, as C's cast
            a8[qb + j] = uint8_t(uint(q) & 0xffu);
            sum += q;
        }
        af[pc.act_d + cb] = d;
        precise float s = d * float(sum);
        af[pc.act_s + cb] = s;
#else
        const uint xb = pc.x_off + m * pc.x_nb1 + b * 256u, qb = pc.act_qs + cb * 256u;
        float amax = 0.0, mx = 0.0;
        for (uint j = 0u; j < 256u; j++) {
            const float ax = abs(x[xb + j]);
            if (ax > amax) {
                amax = ax;
                mx = x[xb + j];
            }
        }
        if (amax == 0.0) {
            for (uint j = 0u; j < 256u; j++) a8[qb + j] = uint8_t(0);
            for (uint j = 0u; j < 16u; j++) ai[pc.act_s + cb * 16u + j] = 0;
            af[pc.act_d + cb] = 0.0;
            continue;
        }
        const float iscale = -127.0 / mx;
        int bsum = 0;
        for (uint j = 0u; j < 256u; j++) {
            precise float p = iscale * x[xb + j];
            precise float v = p + 12582912.0; // 1.5 * 2^23: the integer lands in the mantissa
            const int q = min(int(floatBitsToUint(v) & 0x007fffffu) - 0x00400000, 127);
            a8[qb + j] = uint8_t(uint(q) & 0xffu);
            bsum += q;
            if ((j & 15u) == 15u) {
                ai[pc.act_s + cb * 16u + (j >> 4)] = bsum;
                bsum = 0;
            }
        }
        af[pc.act_d + cb] = 1.0 / iscale;
#endif
    }
}
