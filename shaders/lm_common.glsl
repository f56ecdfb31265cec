// Shared by every Lumen compute shader: storage extensions and exact number formats.
// The conversions mirror kernels/common/lm_quant_blocks.h bit for bit, so what the GPU
// stores (f16 KV cache, copies) is byte-identical to what the CPU backend stores.
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_8bit_storage : require

// Grid-stride loops: hosts cap each dispatch dimension at 65535 workgroups, shaders loop.
#define LM_WG_ID (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x)
#define LM_N_WG (gl_NumWorkGroups.x * gl_NumWorkGroups.y)

// IEEE half -> float, exact for all inputs (subnormals, inf, NaN): lm_fp16_to_fp32.
// Branch-free (selects): SIMD implementations run both sides of a divergent branch.
float lm_h2f(uint h) {
    const uint s = (h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    const float sub = uintBitsToFloat(floatBitsToUint(float(m) * 5.9604644775390625e-8) | s);
    const uint bits = e == 31u ? (s | 0x7f800000u | (m << 13)) : (s | ((e + 112u) << 23) | (m << 13));
    return e == 0u ? sub : uintBitsToFloat(bits);
}

// float -> IEEE half, round to nearest even, overflow to inf, NaN quiet: lm_fp32_to_fp16.
uint lm_f2h(float f) {
    uint x = floatBitsToUint(f);
    uint sign = (x >> 16) & 0x8000u;
    uint absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) return sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0u);
    if (absx >= 0x477ff000u) return sign | 0x7c00u;
    if (absx < 0x38800000u) {
        if (absx < 0x33000000u) return sign;
        uint e = absx >> 23;
        uint m = (absx & 0x7fffffu) | 0x800000u;
        uint shift = 126u - e;
        uint r = m >> shift;
        uint rem = m & ((1u << shift) - 1u);
        uint half_ = 1u << (shift - 1u);
        if (rem > half_ || (rem == half_ && (r & 1u) != 0u)) r++;
        return sign | r;
    }
    uint r = absx - 0x38000000u;
    uint o = r >> 13;
    uint rem = r & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (o & 1u) != 0u)) o++;
    return sign | o;
}

float lm_bf2f(uint h) {
    return uintBitsToFloat(h << 16);
}

// float -> bfloat16, round to nearest even, NaN quiet: lm_fp32_to_bf16.
uint lm_f2bf(float f) {
    uint x = floatBitsToUint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return ((x >> 16) | 64u) & 0xffffu;
    return ((x + (0x7fffu + ((x >> 16) & 1u))) >> 16) & 0xffffu;
}

// e^x in float, ~1 ulp on every device (GLSL's exp may be 3 + 2|x| ulp): Cody-Waite
// reduction by ln 2 and a degree-6 polynomial (cephes expf).
float lm_exp(float x) {
    if (isnan(x)) return x;
    if (x > 88.72283935546875) return uintBitsToFloat(0x7f800000u);
    if (x < -103.972084045410) return 0.0;
    float k = floor(x * 1.44269504088896341 + 0.5);
    float r = x - k * 0.693359375;
    r = r - k * -2.12194440e-4;
    float z = r * r;
    float p = 1.9875691500e-4;
    p = p * r + 1.3981999507e-3;
    p = p * r + 8.3334519073e-3;
    p = p * r + 4.1665795894e-2;
    p = p * r + 1.6666665459e-1;
    p = p * r + 5.0000001201e-1;
    float y = p * z + r + 1.0;
    int ki = int(k);
    // two steps so 2^k never overflows before the product underflows or not
    return ldexp(ldexp(y, ki / 2), ki - ki / 2);
}

// tanh in float, ~2 ulp: odd polynomial near 0 (cephes tanhf), else 1 - 2 / (e^2x + 1).
float lm_tanh(float x) {
    float a = abs(x);
    if (a < 0.625) {
        float z = x * x;
        float p = -5.70498872745e-3;
        p = p * z + 2.06390887954e-2;
        p = p * z - 5.37397155531e-2;
        p = p * z + 1.33314422036e-1;
        p = p * z - 3.33332819422e-1;
        return x + x * z * p;
    }
    if (a > 9.01) return sign(x);
    float t = 1.0 - 2.0 / (lm_exp(2.0 * a) + 1.0);
    return x < 0.0 ? -t : t;
}

