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

// e^x for x <= 0 as the CPU's attention computes it (lm__exp_neg, kernels/cpu/
// cpu_internal.h), bit for bit: the same float operations, one rounding each (precise),
// constants by their bits. Below -87.33 0; a NaN stays NaN.
float lm_exp_neg(float x) {
    const float lo = uintBitsToFloat(0xc2aea8f6u); // -87.33
    const float magic = uintBitsToFloat(0x4b400000u); // 1.5 x 2^23
    precise float xc = x < lo ? lo : x;
    precise float t = xc * uintBitsToFloat(0x3fb8aa3bu) + magic; // log2 e
    precise float n = t - magic;
    precise float r = (xc - n * uintBitsToFloat(0x3f318000u)) - n * uintBitsToFloat(0xb95e8083u);
    precise float p = uintBitsToFloat(0x39500d01u);     // 1 / 5040
    p = p * r + uintBitsToFloat(0x3ab60b61u);           // 1 / 720
    p = p * r + uintBitsToFloat(0x3c088889u);           // 1 / 120
    p = p * r + uintBitsToFloat(0x3d2aaaabu);           // 1 / 24
    p = p * r + uintBitsToFloat(0x3e2aaaabu);           // 1 / 6
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    precise float y = p * uintBitsToFloat((floatBitsToUint(t) - 0x4b400000u + 127u) << 23);
    return x < lo ? 0.0 : y;
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


#ifdef USE_F64
// expf as glibc computes it (sysdeps/ieee754/flt-32/e_expf.c, which the CPU backend calls):
// x * 32 / ln 2 = k + r, 2^(k/32) from a table (bits of 2^(i/32) less i << 47) scaled by
// 2^(k/32 rounded down), times a cubic in r, all in double, rounded once to float. Equal
// to glibc's float except when its double and this one straddle a rounding midpoint
// (odds ~1e-9: glibc may fuse multiply-adds). Needs shaderFloat64.
const uvec2 LM_EXP2F_TAB[32] = uvec2[32](
    uvec2(0x00000000u, 0x3ff00000u), uvec2(0xd3158574u, 0x3fefd9b0u), uvec2(0x6cf9890fu, 0x3fefb558u),
    uvec2(0xd0125b51u, 0x3fef9301u), uvec2(0x3c7d517bu, 0x3fef72b8u), uvec2(0x3168b9aau, 0x3fef5487u),
    uvec2(0x6e756238u, 0x3fef387au), uvec2(0xf51fdee1u, 0x3fef1e9du), uvec2(0x0a31b715u, 0x3fef06feu),
    uvec2(0x373aa9cbu, 0x3feef1a7u), uvec2(0x4c123422u, 0x3feedea6u), uvec2(0x6061892du, 0x3feece08u),
    uvec2(0xd5362a27u, 0x3feebfdau), uvec2(0x569d4f82u, 0x3feeb42bu), uvec2(0xdd485429u, 0x3feeab07u),
    uvec2(0xb03a5585u, 0x3feea47eu), uvec2(0x667f3bcdu, 0x3feea09eu), uvec2(0xe8ec5f74u, 0x3fee9f75u),
    uvec2(0x73eb0187u, 0x3feea114u), uvec2(0x994cce13u, 0x3feea589u), uvec2(0x422aa0dbu, 0x3feeace5u),
    uvec2(0xb0cdc5e5u, 0x3feeb737u), uvec2(0x82a3f090u, 0x3feec491u), uvec2(0xb23e255du, 0x3feed503u),
    uvec2(0x995ad3adu, 0x3feee89fu), uvec2(0xf2fb5e47u, 0x3feeff76u), uvec2(0xdd85529cu, 0x3fef199bu),
    uvec2(0xdcef9069u, 0x3fef3720u), uvec2(0xdcfba487u, 0x3fef5818u), uvec2(0x337b9b5fu, 0x3fef7c97u),
    uvec2(0xa2a490dau, 0x3fefa4afu), uvec2(0x5b6e4540u, 0x3fefd076u));

float lm_expf(float x) {
    if (isnan(x)) return x;
    if (x > 88.72283172607421875) return uintBitsToFloat(0x7f800000u); // overflow
    if (x < -103.97207641601562) return 0.0;                        // underflow
    precise double z = 46.16624130844683LF * double(x);
    precise double kd = z + 6755399441055744.0LF; // 1.5 * 2^52: round z to an integer
    const uint ki = unpackDouble2x32(kd).x;
    kd = kd - 6755399441055744.0LF;
    precise double r = z - kd;
    uvec2 t = LM_EXP2F_TAB[ki & 31u];
    t.y += ki << 15; // + (k << 47): the integer part of k / 32 into the exponent
    const double s = packDouble2x32(t);
    precise double zz = 1.6938359250920212e-06LF * r + 0.00023459809789509004LF;
    precise double r2 = r * r;
    precise double y = 0.021660849396613134LF * r + 1.0LF;
    y = zz * r2 + y;
    y = y * s;
    return float(y);
}
#endif
