#version 450
// rope in place on x [D, H, T], one invocation per (token, head, pair i < n_rot / 2).
// The angle pos * freq_scale * base^(-2i/n_rot) / ff[i] must be accurate at positions in
// the thousands (GLSL sin/cos may be off by 2^-11), so:
//   USE_F64: as the CPU oracle, the angle in double and sin/cos in double (fdlibm's
//            reduction by pi/2 and kernels), rounded to float: the oracle's values.
//   else:    the angle as a float pair (hi + lo, exact products by Dekker's method),
//            reduced by a three-part pi/2, then float sin/cos polynomials (cephes).
#extension GL_GOOGLE_include_directive : require
#include "lm_common.glsl"

layout(local_size_x = 256) in;

layout(binding = 0) buffer X { float x[]; };
layout(binding = 1) readonly buffer P { int pos[]; };
#ifdef USE_F64
// per pair: base^(-2i/n_rot) then ff[i] (1 when there are none), both double
layout(binding = 2) readonly buffer T { double tab[]; };
#else
// per pair: freq_scale * base^(-2i/n_rot) / ff[i] as a float pair (hi, lo)
layout(binding = 2) readonly buffer T { float tab[]; };
#endif

layout(push_constant) uniform PC {
    uint D, H, T, half_;
    uint neox;
    uint x_off, x_nb1, x_nb2; // elements
    uint pos_off;
    float freq_scale;
} pc;

#ifdef USE_F64
void lm_sincos(int p, uint i, out float s, out float c) {
    double th = double(p) * double(pc.freq_scale) * tab[2u * i];
    th = th / tab[2u * i + 1u];
    // n = nearest multiple of pi/2; pio2_1 has 33 bits so n * pio2_1 is exact for n < 2^20
    double n = floor(th * 6.36619772367581382433e-01LF + 0.5LF);
    double y = (th - n * 1.57079632673412561417e+00LF) - n * 6.07710050650619224932e-11LF;
    double z = y * y;
    double sr = 8.33333333332248946124e-03LF +
                z * (-1.98412698298579493134e-04LF +
                     z * (2.75573137070700676789e-06LF +
                          z * (-2.50507602534068634195e-08LF + z * 1.58969099521155010221e-10LF)));
    double sn = y + z * y * (-1.66666666666666324348e-01LF + z * sr);
    double cr = z * (4.16666666666666019037e-02LF +
                     z * (-1.38888888888741095749e-03LF +
                          z * (2.48015872894767294178e-05LF +
                               z * (-2.75573143513906633035e-07LF +
                                    z * (2.08757232129817482790e-09LF +
                                         z * -1.13596475577881948265e-11LF)))));
    double cs = 1.0LF - (0.5LF * z - z * cr);
    int q = int(n - 4.0LF * floor(n * 0.25LF)); // n mod 4, also for negative n
    double so = q == 0 ? sn : q == 1 ? cs : q == 2 ? -sn : -cs;
    double co = q == 0 ? cs : q == 1 ? -sn : q == 2 ? -cs : sn;
    s = float(so);
    c = float(co);
}
#else
// p + e = a * b exactly (Dekker: Veltkamp splits, no fma: not every device fuses it)
void lm_two_prod(float a, float b, out float p, out float e) {
    precise float pp = a * b;
    precise float ca = 4097.0 * a;
    precise float ah = ca - (ca - a);
    precise float al = a - ah;
    precise float cb = 4097.0 * b;
    precise float bh = cb - (cb - b);
    precise float bl = b - bh;
    precise float ee = ((ah * bh - pp) + ah * bl + al * bh) + al * bl;
    p = pp;
    e = ee;
}

void lm_sincos(int p, uint i, out float s, out float c) {
    const float fp = float(p); // exact below 2^24
    float ph, pe, p1, e1, p2, e2;
    lm_two_prod(fp, tab[2u * i], ph, pe); // the angle is ph + tl
    precise float tl = pe + fp * tab[2u * i + 1u];
    const float n = floor((ph + tl) * 0.636619772367581 + 0.5);
    // minus n pi/2, pi/2 in three floats, the first two products exact
    lm_two_prod(n, 1.57079637050628662109375, p1, e1);
    lm_two_prod(n, -4.371138828673793e-8, p2, e2);
    precise float r = (ph - p1) - e1;
    r = (r - p2) - e2;
    r = r - n * -1.7151245100058819e-15;
    r = r + tl;
    precise float z = r * r;
    precise float sn = ((-1.9515295891e-4 * z + 8.3321608736e-3) * z - 1.6666654611e-1) * z * r + r;
    precise float cs = ((2.443315711809948e-5 * z - 1.388731625493765e-3) * z +
                        4.166664568298827e-2) * z * z - 0.5 * z + 1.0;
    int q = int(n - 4.0 * floor(n * 0.25));
    s = q == 0 ? sn : q == 1 ? cs : q == 2 ? -sn : -cs;
    c = q == 0 ? cs : q == 1 ? -sn : q == 2 ? -cs : sn;
}
#endif

void main() {
    const uint n = pc.T * pc.H * pc.half_, stride = LM_N_WG * 256u;
    for (uint idx = LM_WG_ID * 256u + gl_LocalInvocationID.x; idx < n; idx += stride) {
        uint i = idx % pc.half_, h = (idx / pc.half_) % pc.H, t = idx / (pc.half_ * pc.H);
        float s, c;
        lm_sincos(pos[pc.pos_off + t], i, s, c);
        uint base = pc.x_off + h * pc.x_nb1 + t * pc.x_nb2;
        uint ia = base + (pc.neox != 0u ? i : 2u * i);
        uint ib = ia + (pc.neox != 0u ? pc.half_ : 1u);
        float x0 = x[ia], x1 = x[ib];
        precise float y0 = x0 * c - x1 * s;
        precise float y1 = x0 * s + x1 * c;
        x[ia] = y0;
        x[ib] = y1;
    }
}
