#version 450
// Causal GQA attention over the KV cache (KV_F16, KV_F32 or KV_Q8_0: lm_kv.glsl), flash
// style: one workgroup per (token, head, split), positions in tiles of 64 with an online softmax (running max
// m, sum l, output acc), so no score matrix is stored. With n_split > 1 (decode over long
// contexts) each workgroup covers one chunk of positions and writes (acc, m, l) for
// attn_combine.comp. Positions outside [max(0, pos - window + 1), pos] are never read.
#extension GL_GOOGLE_include_directive : require
#include "lm_common.glsl"

layout(local_size_x = 64) in;

layout(binding = 0) readonly buffer Q { float q[]; };
#include "lm_kv.glsl"
layout(binding = 3) readonly buffer P { int pos[]; };
layout(binding = 4) readonly buffer S { int seq[]; };
layout(binding = 5) writeonly buffer O { float o[]; };
layout(binding = 6) writeonly buffer PART { float part[]; }; // [D + 2] per workgroup item

layout(push_constant) uniform PC {
    uint D, H, Hk, T;
    uint q_off, q_nb1, q_nb2;        // elements
    uint k_off, k_nb1, k_nb2, k_nb3; // cache elements (Q8_0: bytes)
    uint v_off, v_nb1, v_nb2, v_nb3;
    uint pos_off, seq_off;
    uint o_off, o_nb1, o_nb2;
    int n_ctx, n_seq, window;
    float scale, softcap;
    uint n_split, chunk;
    int only_seq; // >= 0: only that sequence's slice is bound (n_split 1); others skipped
} pc;

shared float qs[256];
shared float ps[64];
shared float red[64];

float lm_wg_max(uint tid, float v) {
    red[tid] = v;
    barrier();
    for (uint s = 32u; s > 0u; s >>= 1) {
        if (tid < s) red[tid] = max(red[tid], red[tid + s]);
        barrier();
    }
    float r = red[0];
    barrier();
    return r;
}

float lm_wg_sum(uint tid, float v) {
    red[tid] = v;
    barrier();
    for (uint s = 32u; s > 0u; s >>= 1) {
        if (tid < s) red[tid] += red[tid + s];
        barrier();
    }
    float r = red[0];
    barrier();
    return r;
}

void main() {
    const uint tid = gl_LocalInvocationID.x;
    const float NEG_INF = uintBitsToFloat(0xff800000u);
    for (uint g = LM_WG_ID; g < pc.T * pc.H * pc.n_split; g += LM_N_WG) {
        const uint sp = g % pc.n_split, h = (g / pc.n_split) % pc.H, t = g / (pc.n_split * pc.H);
        const uint kvh = h / (pc.H / pc.Hk);
        const int p = pos[pc.pos_off + t], s = seq[pc.seq_off + t];
        if (pc.only_seq >= 0 && s != pc.only_seq) continue; // uniform: one item per group
        const bool ok = p >= 0 && p < pc.n_ctx && s >= 0 && s < pc.n_seq;
        int lo = pc.window > 0 ? max(0, p - pc.window + 1) : 0, hi = p;
        lo = max(lo, int(sp * pc.chunk));
        hi = min(hi, int((sp + 1u) * pc.chunk) - 1);
        if (!ok) hi = lo - 1;
        for (uint d = tid; d < pc.D; d += 64u) qs[d] = q[pc.q_off + h * pc.q_nb1 + t * pc.q_nb2 + d];
        barrier();
        const uint kb = pc.k_off + kvh * pc.k_nb1 + uint(max(s, 0)) * pc.k_nb3;
        const uint vb = pc.v_off + kvh * pc.v_nb1 + uint(max(s, 0)) * pc.v_nb3;
        float m = NEG_INF, l = 0.0;
        float acc[4] = float[4](0.0, 0.0, 0.0, 0.0);
        for (int p0 = lo; p0 <= hi; p0 += 64) {
            const int pp = p0 + int(tid);
            float sc = NEG_INF;
            if (pp <= hi) {
                const uint kr = kb + uint(pp) * pc.k_nb2;
                float dot = 0.0;
                for (uint d0 = 0u; d0 < pc.D; d0 += 32u) { // a q8_0 block's scale once
                    const float sk = KV_SCALE(kc, kr, d0);
                    for (uint d = d0; d < min(d0 + 32u, pc.D); d++)
                        dot += qs[d] * KV_SCALED(kc, kr, d, sk);
                }
                sc = dot * pc.scale;
                if (pc.softcap > 0.0) sc = pc.softcap * lm_tanh(sc / pc.softcap);
            }
            const float mn = max(m, lm_wg_max(tid, sc)); // finite: the tile has a position
            const float corr = lm_exp(m - mn);           // 0 on the first tile
            const float w = pp <= hi ? lm_exp(sc - mn) : 0.0;
            ps[tid] = w;
            l = l * corr + lm_wg_sum(tid, w); // the sum's barriers also publish ps
            const int n = min(64, hi - p0 + 1);
            for (uint j = 0u; j < 4u; j++) {
                const uint d = tid + 64u * j;
                if (d >= pc.D) break;
                float a = acc[j] * corr;
                for (int i = 0; i < n; i++) a += ps[i] * KV(vc, vb + uint(p0 + i) * pc.v_nb2, d);
                acc[j] = a;
            }
            m = mn;
            barrier(); // ps is rewritten by the next tile
        }
        if (pc.n_split == 1u) {
            const float inv = l > 0.0 ? 1.0 / l : 0.0;
            for (uint j = 0u; j < 4u; j++) {
                const uint d = tid + 64u * j;
                if (d < pc.D) o[pc.o_off + h * pc.o_nb1 + t * pc.o_nb2 + d] = acc[j] * inv;
            }
        } else {
            const uint pb = g * (pc.D + 2u);
            for (uint j = 0u; j < 4u; j++) {
                const uint d = tid + 64u * j;
                if (d < pc.D) part[pb + d] = acc[j];
            }
            if (tid == 0u) {
                part[pb + pc.D] = m;
                part[pb + pc.D + 1u] = l;
            }
        }
        barrier(); // qs is rewritten by the next item
    }
}
