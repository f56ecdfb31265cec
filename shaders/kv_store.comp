#version 450
// kv_store: k, v F32 [D, Hk, T] -> caches [D, Hk, n_ctx, n_seq] at (pos[t], seq[t]), one
// invocation per element. DST_F16 rounds as lm_fp32_to_fp16 (byte-identical to the CPU).
// DST_Q8_0: one invocation per 32-element block, quantized as ggml's quantize_row_q8_0_ref
// (runtime/quant.c): d = amax / 127, q = roundf(x * (1 / d)); cache offsets and strides in
// bytes. Byte-identical to the CPU where the device divides as IEEE does (lavapipe, most
// GPUs; Vulkan allows 2.5 ulp). Out-of-range positions or sequences are skipped (the host
// checks them when it can).
#extension GL_GOOGLE_include_directive : require
#include "lm_common.glsl"

layout(local_size_x = 256) in;

layout(binding = 0) readonly buffer K { float k[]; };
layout(binding = 1) readonly buffer V { float v[]; };
#if defined(DST_Q8_0)
layout(binding = 2) writeonly buffer KC { uint8_t kc[]; };
layout(binding = 3) writeonly buffer VC { uint8_t vc[]; };
#elif defined(DST_F16)
layout(binding = 2) writeonly buffer KC { uint16_t kc[]; };
layout(binding = 3) writeonly buffer VC { uint16_t vc[]; };
#define STORE(x) uint16_t(lm_f2h(x))
#else
layout(binding = 2) writeonly buffer KC { float kc[]; };
layout(binding = 3) writeonly buffer VC { float vc[]; };
#define STORE(x) (x)
#endif
layout(binding = 4) readonly buffer P { int pos[]; };
layout(binding = 5) readonly buffer S { int seq[]; };

layout(push_constant) uniform PC {
    uint D, Hk, T;
    uint k_off, k_nb1, k_nb2; // elements
    uint v_off, v_nb1, v_nb2;
    uint kc_off, kc_nb1, kc_nb2, kc_nb3; // cache elements
    uint vc_off, vc_nb1, vc_nb2, vc_nb3;
    uint pos_off, seq_off;
    int n_ctx, n_seq;
    int only_seq; // >= 0: only that sequence's slice is bound; other tokens are skipped
} pc;

#ifdef DST_Q8_0
// C's roundf: half away from zero (GLSL's round() may pick either way at .5)
float lm_roundf(float v) {
    const float t = trunc(v);
    precise float f = abs(v - t); // exact: v and t share their leading bits
    return f >= 0.5 ? t + sign(v) : t;
}

// One q8_0 block: 32 floats from src[xb] to 34 bytes at dst[ob] (K when is_k, else V).
void lm_put_q8(bool is_k, uint xb, uint ob) {
    float amax = 0.0;
    for (uint j = 0u; j < 32u; j++) amax = max(amax, abs(is_k ? k[xb + j] : v[xb + j]));
    precise float d = amax / 127.0;
    precise float id = d != 0.0 ? 1.0 / d : 0.0;
    const uint dh = lm_f2h(d);
    if (is_k) {
        kc[ob] = uint8_t(dh & 0xffu), kc[ob + 1u] = uint8_t(dh >> 8);
    } else {
        vc[ob] = uint8_t(dh & 0xffu), vc[ob + 1u] = uint8_t(dh >> 8);
    }
    for (uint j = 0u; j < 32u; j++) {
        precise float x = (is_k ? k[xb + j] : v[xb + j]) * id;
        const uint q = uint(int(lm_roundf(x))) & 0xffu;
        if (is_k)
            kc[ob + 2u + j] = uint8_t(q);
        else
            vc[ob + 2u + j] = uint8_t(q);
    }
}

void main() {
    const uint nb = pc.D / 32u, n = nb * pc.Hk * pc.T, stride = LM_N_WG * 256u;
    for (uint idx = LM_WG_ID * 256u + gl_LocalInvocationID.x; idx < n; idx += stride) {
        uint b = idx % nb, h = (idx / nb) % pc.Hk, t = idx / (nb * pc.Hk);
        int p = pos[pc.pos_off + t], s = seq[pc.seq_off + t];
        if (p < 0 || p >= pc.n_ctx || s < 0 || s >= pc.n_seq) continue;
        if (pc.only_seq >= 0 && s != pc.only_seq) continue;
        lm_put_q8(true, pc.k_off + h * pc.k_nb1 + t * pc.k_nb2 + 32u * b,
                  pc.kc_off + h * pc.kc_nb1 + uint(p) * pc.kc_nb2 + uint(s) * pc.kc_nb3 + 34u * b);
        lm_put_q8(false, pc.v_off + h * pc.v_nb1 + t * pc.v_nb2 + 32u * b,
                  pc.vc_off + h * pc.vc_nb1 + uint(p) * pc.vc_nb2 + uint(s) * pc.vc_nb3 + 34u * b);
    }
}
#else
void main() {
    const uint n = pc.D * pc.Hk * pc.T, stride = LM_N_WG * 256u;
    for (uint idx = LM_WG_ID * 256u + gl_LocalInvocationID.x; idx < n; idx += stride) {
        uint e = idx % pc.D, h = (idx / pc.D) % pc.Hk, t = idx / (pc.D * pc.Hk);
        int p = pos[pc.pos_off + t], s = seq[pc.seq_off + t];
        if (p < 0 || p >= pc.n_ctx || s < 0 || s >= pc.n_seq) continue;
        if (pc.only_seq >= 0 && s != pc.only_seq) continue;
        kc[pc.kc_off + h * pc.kc_nb1 + uint(p) * pc.kc_nb2 + uint(s) * pc.kc_nb3 + e] =
            STORE(k[pc.k_off + h * pc.k_nb1 + t * pc.k_nb2 + e]);
        vc[pc.vc_off + h * pc.vc_nb1 + uint(p) * pc.vc_nb2 + uint(s) * pc.vc_nb3 + e] =
            STORE(v[pc.v_off + h * pc.v_nb1 + t * pc.v_nb2 + e]);
    }
}
#endif
