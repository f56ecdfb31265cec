#version 450
// Causal GQA attention computed exactly as the CPU oracle (kernels/cpu/cpu_attention.c and
// its softmax step, lm__attn_soft in cpu_dot_scalar.c),
// so results are bit-equal to it. Per (token, head), the positions it sees in chunks of
// 256 from multiples of 256, each from a fresh online-softmax state (max m, sum l, output
// acc) merged in order into the total; in a chunk, tiles of 16 from multiples of 16: the
// tile's scores (the 16-lane dot of lm__cpu_dot times scale), their max, one rescale when
// it grows, then the positions' weights (lm_exp_neg), their sum in a fixed tree added to l,
// and each times its V row added in order to acc. One workgroup per (token, head): the scores of 64 positions in parallel
// (one per invocation), then every invocation runs the recurrence over them in order, each
// updating its own dimensions of acc (and its own copy of m and l). Positions outside
// [max(0, pos - window + 1), pos] are never read. (Soft-capping uses the shaders' tanh,
// which is not glibc's: close, not bit-equal.)
#extension GL_GOOGLE_include_directive : require
#include "lm_common.glsl"

layout(local_size_x = 64) in;

layout(binding = 0) readonly buffer Q { float q[]; };
#include "lm_kv.glsl"
layout(binding = 3) readonly buffer P { int pos[]; };
layout(binding = 4) readonly buffer S { int seq[]; };
layout(binding = 5) writeonly buffer O { float o[]; };

layout(push_constant) uniform PC {
    uint D, H, Hk, T;
    uint q_off, q_nb1, q_nb2;        // elements
    uint k_off, k_nb1, k_nb2, k_nb3; // cache elements (Q8_0: bytes)
    uint v_off, v_nb1, v_nb2, v_nb3;
    uint pos_off, seq_off;
    uint o_off, o_nb1, o_nb2;
    int n_ctx, n_seq, window;
    float scale, softcap;
    uint n_split_unused, chunk_unused; // the flash kernel's (same push-constant block)
    int only_seq; // >= 0: only that sequence's slice is bound; other tokens are skipped
} pc;

shared float qs[256];
shared float sc[64]; // the scores of four tiles

void main() {
    const uint tid = gl_LocalInvocationID.x;
    const float NEG_INF = uintBitsToFloat(0xff800000u);
    for (uint g = LM_WG_ID; g < pc.T * pc.H; g += LM_N_WG) {
        const uint h = g % pc.H, t = g / pc.H, kvh = h / (pc.H / pc.Hk);
        const int p = pos[pc.pos_off + t], s = seq[pc.seq_off + t];
        if (pc.only_seq >= 0 && s != pc.only_seq) continue; // uniform: one item per group
        const bool ok = p >= 0 && p < pc.n_ctx && s >= 0 && s < pc.n_seq;
        const int lo = pc.window > 0 && p - pc.window + 1 > 0 ? p - pc.window + 1 : 0;
        const int hi = ok ? p : lo - 1;
        for (uint d = tid; d < pc.D; d += 64u) qs[d] = q[pc.q_off + h * pc.q_nb1 + t * pc.q_nb2 + d];
        barrier();
        const uint kb = pc.k_off + kvh * pc.k_nb1 + uint(max(s, 0)) * pc.k_nb3;
        const uint vb = pc.v_off + kvh * pc.v_nb1 + uint(max(s, 0)) * pc.v_nb3;
        float tm = NEG_INF;                                    // the merged total
        precise float tl = 0.0;                                // no fusing across statements
        precise float tacc[4] = float[4](0.0, 0.0, 0.0, 0.0); // dims tid + 64 j
        for (int c = lo / 256; c <= hi / 256; c++) {
            const int clo = max(lo, c * 256), chi = min(hi, c * 256 + 255);
            float m = NEG_INF;
            precise float l = 0.0;
            precise float acc[4] = float[4](0.0, 0.0, 0.0, 0.0);
            for (int g0 = clo - clo % 16; g0 <= chi; g0 += 64) { // four tiles
                const int pp = g0 + int(tid);
                if (pp >= clo && pp <= chi) { // the score of position pp: lm__cpu_dot(q, k) * scale
                    const uint kr = kb + uint(pp) * pc.k_nb2;
                    precise float a16[16];
                    for (uint j = 0u; j < 16u; j++) a16[j] = 0.0;
                    uint i = 0u;
                    for (; i + 16u <= pc.D; i += 16u) { // 16 elements lie in one q8_0 block
                        const float sk = KV_SCALE(kc, kr, i);
                        for (uint j = 0u; j < 16u; j++)
                            a16[j] += qs[i + j] * KV_SCALED(kc, kr, i + j, sk);
                    }
                    for (uint j = 0u; i + j < pc.D; j++) a16[j] += qs[i + j] * KV(kc, kr, i + j);
                    for (uint w = 8u; w > 0u; w >>= 1)
                        for (uint j = 0u; j < w; j++) a16[j] += a16[j + w];
                    precise float x = a16[0] * pc.scale;
                    if (pc.softcap > 0.0) x = pc.softcap * lm_tanh(x / pc.softcap);
                    sc[tid] = x;
                }
                barrier();
                for (int p0 = g0; p0 <= chi && p0 < g0 + 64; p0 += 16) { // tile by tile, as the CPU
                    const int a = max(clo, p0), b = min(chi, p0 + 15);
                    float mt = NEG_INF;
                    for (int i = a; i <= b; i++) mt = sc[i - g0] > mt ? sc[i - g0] : mt;
                    if (mt > m) {
                        if (m != NEG_INF) {
                            const float corr = lm_exp_neg(m - mt);
                            l = l * corr;
                            for (uint j = 0u; j < 4u; j++) acc[j] = acc[j] * corr;
                        }
                        m = mt;
                    }
                    // the 16 slots' weights (0 where unseen), summed in lm__tile_sum's tree
                    precise float ws[16], t8[8];
                    for (int k = 0; k < 16; k++)
                        ws[k] = p0 + k >= a && p0 + k <= b ? lm_exp_neg(sc[p0 + k - g0] - m) : 0.0;
                    for (int k = 0; k < 8; k++) t8[k] = ws[k] + ws[k + 8];
                    for (int w = 4; w >= 1; w /= 2)
                        for (int k = 0; k < w; k++) t8[k] = t8[k] + t8[k + w];
                    l = l + t8[0];
                    for (int i = a; i <= b; i++) {
                        const float w = ws[i - p0];
                        const uint vr = vb + uint(i) * pc.v_nb2;
                        for (uint j = 0u; j < 4u; j++) {
                            const uint d = tid + 64u * j;
                            if (d < pc.D) acc[j] += w * KV(vc, vr, d);
                        }
                    }
                }
                barrier(); // sc is rewritten by the next four tiles
            }
            // merge the chunk into the total (lm__attn_merge)
            if (m != NEG_INF) {
                if (tm == NEG_INF) {
                    tm = m, tl = l;
                    for (uint j = 0u; j < 4u; j++) tacc[j] = acc[j];
                } else {
                    const float mm = m > tm ? m : tm;
                    const float ca = lm_exp_neg(tm - mm), cb = lm_exp_neg(m - mm);
                    tl = tl * ca + l * cb;
                    for (uint j = 0u; j < 4u; j++) tacc[j] = tacc[j] * ca + acc[j] * cb;
                    tm = mm;
                }
            }
        }
        const float l = tl;
        precise float acc[4] = tacc;
        const float inv = l > 0.0 ? 1.0 / l : 0.0; // l >= 1 for a valid token
        for (uint j = 0u; j < 4u; j++) {
            const uint d = tid + 64u * j;
            precise float y = acc[j] * inv;
            if (d < pc.D) o[pc.o_off + h * pc.o_nb1 + t * pc.o_nb2 + d] = y;
        }
        barrier(); // qs is rewritten by the next item
    }
}
