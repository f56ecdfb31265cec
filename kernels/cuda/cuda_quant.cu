/* Activations for the integer mul_mat kernels: x F32 [K, M] -> 16-bit integer blocks, the
 * CPU's lm__quantize_q16a / lm__quantize_q16k (kernels/cpu/cpu_vec_dot.c) to the bit:
 * d = amax / 32767, q = round half away from zero (x / d) via x * (1 / d), every float
 * operation one IEEE rounding (the _rn intrinsics: nvcc would otherwise fuse and
 * reassociate nothing here, but -use_fast_math must not change it either). So the integer
 * block sums of a GPU mul_mat are those of the CPU. Stored as planes (lm__cu_act). */
#include "cuda_common.cuh"

/* One warp covers 256 elements of one column: 8 per lane, groups of BLK / 8 lanes per
 * block. K is a multiple of 32, so a lane's 8 elements are all inside K or all outside. */
template <int BLK>
__global__ void __launch_bounds__(256)
    lm__cu_quantize_kernel(const char *x, int64_t x_nb1, int64_t K, int64_t m0, lm__cu_act a) {
    const int lane = threadIdx.x & 31;
    const int64_t warp = (int64_t)blockIdx.x * 8 + (threadIdx.x >> 5);
    const int64_t m = m0 + blockIdx.y;
    const int64_t e0 = warp * 256 + lane * 8;
    const bool on = e0 < K;
    const float *xc = (const float *)(x + m * x_nb1);
    float v[8], amax = 0.0f;
    for (int i = 0; i < 8; i++) {
        v[i] = on ? xc[e0 + i] : 0.0f;
        amax = fmaxf(amax, fabsf(v[i]));
    }
    for (int o = 1; o < BLK / 8; o <<= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    float d, id;
    lm__cu_q16_scale(amax, d, id);
    uint32_t hi[2] = {0, 0}, lo[2] = {0, 0};
    int sum = 0;
    for (int i = 0; i < 8; i++) {
        const int r = lm__cu_q16(v[i], id);
        sum += r;
        hi[i >> 2] |= (uint32_t)((r >> 8) & 0xff) << (8 * (i & 3));
        lo[i >> 2] |= (uint32_t)(r & 0xff) << (8 * (i & 3));
    }
    const int s16 = sum + __shfl_xor_sync(0xffffffffu, sum, 1);
    const int s32 = s16 + __shfl_xor_sync(0xffffffffu, s16, 2);
    if (!on) return;
    *(uint2 *)(a.hi + m * K + e0) = make_uint2(hi[0], hi[1]);
    *(uint2 *)(a.lo + m * K + e0) = make_uint2(lo[0], lo[1]);
    if ((lane & 1) == 0) a.sum16[m * (K / 16) + e0 / 16] = s16;
    if (e0 % BLK == 0) a.d[m * (K / BLK) + e0 / BLK] = d;
    if (BLK == 32 && (lane & 3) == 0) a.s[m * (K / 32) + e0 / 32] = LM_CU_FMUL(d, LM_CU_I2F(s32));
}

static size_t lm__cu_round(size_t n) {
    return (n + LM_CU_ALIGN - 1) & ~(size_t)(LM_CU_ALIGN - 1);
}

/* The planes of an [M][K] activation set laid out from base (NULL: just the size). */
static size_t lm__cu_act_layout(char *base, int64_t K, int64_t M, int blk, lm__cu_act *a) {
    const size_t n = (size_t)K * (size_t)M;
    size_t off = 0;
    a->hi = (int8_t *)(base + off), off += lm__cu_round(n);
    a->lo = (uint8_t *)(base + off), off += lm__cu_round(n);
    a->sum16 = (int32_t *)(base + off), off += lm__cu_round(n / 16 * 4);
    a->d = (float *)(base + off), off += lm__cu_round(n / (size_t)blk * 4);
    a->s = (float *)(base + off), off += lm__cu_round(n / 32 * 4);
    a->K = K;
    a->M = M;
    a->blk = blk;
    return off;
}

extern "C" lm_status lm__cu_quantize_act(lm__cuda *c, const lm_tensor *x, int blk,
                                         lm__cu_act *out) {
    const int64_t K = x->ne[0], M = x->ne[1];
    if (K % blk != 0)
        return lm__error(LM_ERR_INVALID_ARG, "mul_mat: K = %lld is not a multiple of %d",
                         (long long)K, blk);
    const char *xp = lm__cu_data(x);
    if (c->memo.valid && c->memo.x == xp && c->memo.x_nb1 == x->nb[1] && c->memo.K == K &&
        c->memo.M == M && c->memo.blk == blk) {
        lm__cu_act_layout(c->act.p, K, M, blk, out);
        return LM_OK;
    }
    c->memo.valid = 0;
    const size_t need = lm__cu_act_layout(NULL, K, M, blk, out);
    LM_TRY(lm__cu_arena_reserve(c, &c->act, need, "quantized activations"));
    lm__cu_act_layout(c->act.p, K, M, blk, out);
    const int64_t warps = (K + 255) / 256;
    const unsigned gx = (unsigned)((warps + 7) / 8);
    for (int64_t m0 = 0; m0 < M; m0 += 65535) {
        const unsigned gy = (unsigned)(M - m0 < 65535 ? M - m0 : 65535);
        if (blk == 32)
            lm__cu_quantize_kernel<32>
                <<<dim3(gx, gy), 256, 0, c->stream>>>(xp, (int64_t)x->nb[1], K, m0, *out);
        else
            lm__cu_quantize_kernel<256>
                <<<dim3(gx, gy), 256, 0, c->stream>>>(xp, (int64_t)x->nb[1], K, m0, *out);
        LM_TRY(lm__cu_launched("mul_mat: quantize activations"));
    }
    c->memo.valid = 1;
    c->memo.x = xp;
    c->memo.x_nb1 = x->nb[1];
    c->memo.K = K;
    c->memo.M = M;
    c->memo.blk = blk;
    return LM_OK;
}
