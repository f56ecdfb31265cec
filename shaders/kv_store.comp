#version 450
// kv_store: k, v F32 [D, Hk, T] -> caches [D, Hk, n_ctx, n_seq] at (pos[t], seq[t]), one
// invocation per element. DST_F16 rounds as lm_fp32_to_fp16 (byte-identical to the CPU).
// Out-of-range positions or sequences are skipped (the host checks them when it can).
#extension GL_GOOGLE_include_directive : require
#include "lm_common.glsl"

layout(local_size_x = 256) in;

layout(binding = 0) readonly buffer K { float k[]; };
layout(binding = 1) readonly buffer V { float v[]; };
#ifdef DST_F16
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
} pc;

void main() {
    const uint n = pc.D * pc.Hk * pc.T, stride = LM_N_WG * 256u;
    for (uint idx = LM_WG_ID * 256u + gl_LocalInvocationID.x; idx < n; idx += stride) {
        uint e = idx % pc.D, h = (idx / pc.D) % pc.Hk, t = idx / (pc.D * pc.Hk);
        int p = pos[pc.pos_off + t], s = seq[pc.seq_off + t];
        if (p < 0 || p >= pc.n_ctx || s < 0 || s >= pc.n_seq) continue;
        kc[pc.kc_off + h * pc.kc_nb1 + uint(p) * pc.kc_nb2 + uint(s) * pc.kc_nb3 + e] =
            STORE(k[pc.k_off + h * pc.k_nb1 + t * pc.k_nb2 + e]);
        vc[pc.vc_off + h * pc.vc_nb1 + uint(p) * pc.vc_nb2 + uint(s) * pc.vc_nb3 + e] =
            STORE(v[pc.v_off + h * pc.v_nb1 + t * pc.v_nb2 + e]);
    }
}
