#version 450
// mul_mat with quantized W (WTYPE_Q*), x already quantized to 16 bits (quantize_act.comp):
// dst[n, m] = sum over blocks b, in order, of lm_qterm(W[n] block b, x[m] block b) -- the
// CPU backend's computation, so results are bit-equal to it. No shared memory or
// barriers (costly on CPU implementations such as lavapipe).
//   default: one invocation per weight row (4 rows for 32-element blocks) and up to 8
//            columns (decode); a workgroup is 32 invocations: small matrices still make
//            several workgroups for a CPU implementation's threads.
//   TILED:   prefill: 4 rows x 4 columns per invocation (32-element blocks: each block
//            loaded serves 4 outputs), one output per invocation for the k-quants.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "lm_common.glsl"

#if defined(WTYPE_Q2_K) || defined(WTYPE_Q3_K) || defined(WTYPE_Q4_K) || defined(WTYPE_Q5_K) ||   \
    defined(WTYPE_Q6_K)
#define LM_KQ
#endif

#if defined(TILED) && !defined(LM_KQ)
layout(local_size_x = 64) in; // 4 x 4 outputs per invocation, see below
#elif defined(TILED)
layout(local_size_x = 256) in;
#define TR 16u
#define TC 16u
#define MAXC 1u
#else
layout(local_size_x = 32) in;
#define TR 32u
#define TC 1u
#define MAXC 8u
#endif

layout(binding = 0) readonly buffer W8 { uint8_t w8[]; };
layout(binding = 0) readonly buffer W16 { uint16_t w16[]; };
layout(binding = 0) readonly buffer WF { float wf[]; };
layout(binding = 1) readonly buffer A4 { uvec4 a4[]; };
layout(binding = 1) readonly buffer AF { float af[]; };
layout(binding = 1) readonly buffer AI { int ai[]; };
layout(binding = 2) writeonly buffer D { float d[]; };

layout(push_constant) uniform PC {
    uint K, N, M, nb;
    uint w_off, w_nb1; // bytes
    uint act_qs, act_d, act_s;
    uint d_off, d_nb1; // elements
} pc;

#include "lm_quant.glsl"

#ifdef LM_KQ
#define A4 32u // uvec4 per activation block (256 x 16 bits)
#else
#define A4 4u
#endif

// the activations straight from the buffer: staging them in shared memory for the 64 rows
// of a workgroup made lavapipe slower (its shared and buffer loads cost the same per lane)
#define LM_ACT4(cb, i) a4[(pc.act_qs >> 4) + (cb) * A4 + (i)]
#define LM_ACT_D(cb) af[pc.act_d + (cb)]
#define LM_ACT_S(cb) af[pc.act_s + (cb)]
#define LM_ACT_I(cb, i) ai[pc.act_s + (cb) * 16u + (i)]

#include "lm_qdot.glsl"

#if !defined(TILED) && !defined(LM_KQ)
// decode, 32-element blocks: each invocation has 4 rows (32 apart), so an activation block
// is loaded once for 4 weight blocks (loads are what CPU implementations pay for)
#define LM_NR 4
#else
#define LM_NR 1
#endif
#define NR uint(LM_NR)

#if defined(TILED) && !defined(LM_KQ)
// prefill, 32-element blocks: each invocation computes 4 rows x 4 columns (rows 16 apart,
// columns adjacent), so one weight block serves 4 columns and one activation block 4 rows;
// a workgroup of 64 covers 64 rows x 16 columns
void main() {
    const uint tid = gl_LocalInvocationID.x;
    const uint n_tn = (pc.N + 63u) / 64u, n_tm = (pc.M + 15u) / 16u;
    for (uint g = LM_WG_ID; g < n_tn * n_tm; g += LM_N_WG) {
        const uint r0 = (g % n_tn) * 64u + (tid & 15u), c0 = (g / n_tn) * 16u + (tid >> 4) * 4u;
        if (c0 >= pc.M) continue;
        uint rb[4], cc[4];
        precise float acc[16];
        for (uint k = 0u; k < 4u; k++) {
            rb[k] = pc.w_off + min(r0 + 16u * k, pc.N - 1u) * pc.w_nb1;
            cc[k] = min(c0 + k, pc.M - 1u) * pc.nb;
        }
        for (uint i = 0u; i < 16u; i++) acc[i] = 0.0;
        for (uint b = 0u; b < pc.nb; b++) {
            const lm_act a0 = lm_act_load(cc[0] + b), a1 = lm_act_load(cc[1] + b),
                         a2 = lm_act_load(cc[2] + b), a3 = lm_act_load(cc[3] + b);
            for (uint k = 0u; k < 4u; k++) {
                const uint wb = rb[k] + b * LM_QBYTES;
                acc[4u * k] += lm_qterm_a(wb, a0);
                acc[4u * k + 1u] += lm_qterm_a(wb, a1);
                acc[4u * k + 2u] += lm_qterm_a(wb, a2);
                acc[4u * k + 3u] += lm_qterm_a(wb, a3);
            }
        }
        for (uint k = 0u; k < 4u; k++)
            for (uint l = 0u; l < 4u; l++)
                if (r0 + 16u * k < pc.N && c0 + l < pc.M)
                    d[pc.d_off + (c0 + l) * pc.d_nb1 + r0 + 16u * k] = acc[4u * k + l];
    }
}
#else
void main() {
    const uint tid = gl_LocalInvocationID.x;
    const uint rpg = TR * NR, cpg = TC * MAXC; // rows and columns per workgroup
    const uint n_tn = (pc.N + rpg - 1u) / rpg, n_tm = (pc.M + cpg - 1u) / cpg;
    for (uint g = LM_WG_ID; g < n_tn * n_tm; g += LM_N_WG) {
        // rows past N compute row N - 1 and do not store: in the decode kernel all
        // invocations then read the same activations at the same time
        const uint row = (g % n_tn) * rpg + tid % TR;
#ifdef TILED
        const uint c0 = (g / n_tn) * TC + tid / TR;
#else
        const uint c0 = (g / n_tn) * MAXC;
#endif
        // columns one after the other: the rows' blocks stay in cache for the next
        for (uint c = c0; c < min(c0 + MAXC, pc.M); c++) {
#if LM_NR == 1
            const uint rowb = pc.w_off + min(row, pc.N - 1u) * pc.w_nb1;
            precise float acc = 0.0;
            for (uint b = 0u; b < pc.nb; b++) acc += lm_qterm(rowb + b * LM_QBYTES, c * pc.nb + b);
            if (row < pc.N) d[pc.d_off + c * pc.d_nb1 + row] = acc;
#else
            uint rb[NR];
            precise float acc[NR];
            for (uint k = 0u; k < NR; k++) {
                rb[k] = pc.w_off + min(row + k * TR, pc.N - 1u) * pc.w_nb1;
                acc[k] = 0.0;
            }
            for (uint b = 0u; b < pc.nb; b++) {
                const lm_act a = lm_act_load(c * pc.nb + b);
                for (uint k = 0u; k < NR; k++) acc[k] += lm_qterm_a(rb[k] + b * LM_QBYTES, a);
            }
            for (uint k = 0u; k < NR; k++)
                if (row + k * TR < pc.N) d[pc.d_off + c * pc.d_nb1 + row + k * TR] = acc[k];
#endif
        }
    }
}
#endif
