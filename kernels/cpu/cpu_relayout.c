/* The CPU's interleaved weight layout (LM_LAYOUT_CPU_R8, backend.h). The matmul kernels
 * take 8 rows at a time; in rows, decode then reads 8 streams a row apart, each a few
 * hundred bytes long per group, which the hardware prefetchers follow poorly. Interleaved,
 * a group is one sequential stream: a Q8_0 [640 x 131072] decode on one Zen 4 core went
 * from 22-24 to 30-32 GB/s, the read probe's rate. The kernels take the block stride as
 * a parameter (w_block), so both layouts give the same bits.
 *
 * The packed layout (LM_LAYOUT_CPU_P8) goes one step further where the level has kernels for
 * it (every quantized type on the x86 levels): within a group block the 8 rows' f16 scales
 * come first and the rest of their blocks follows in 4-byte pieces, row-interleaved, so that
 * one widening load gives a vpdpwssd (pmaddwd) operand with rows 0-7 in its lanes and one
 * load gives a scale (or a k-quant's packed scale word) of all 8 rows. Decode then needs no
 * horizontal sums and no gathers: 1.2-3x less work per weight byte.
 *
 * Only weights in the backend's own copy (huge pages, cpu_backend.c) are re-laid: the
 * file mapping is read-only and shared. LUMEN_WEIGHT_LAYOUT=rows keeps rows, =interleaved
 * stops at LM_LAYOUT_CPU_R8. */
#include "cpu_internal.h"

#include "../../runtime/quant.h"

#include <stdlib.h>
#include <string.h>

/* the view's bytes: [offset, offset + ne[1] rows) of a 2-D tensor */
static size_t lm__r8_end(const lm_tensor *t) {
    return t->offset + (size_t)t->ne[1] * t->nb[1];
}

static bool lm__r8_same(const lm_tensor *a, const lm_tensor *b) {
    return a->buf == b->buf && a->offset == b->offset && a->type == b->type &&
           a->ne[0] == b->ne[0] && a->ne[1] == b->ne[1];
}

static bool lm__r8_overlap(const lm_tensor *a, const lm_tensor *b) {
    return a->buf == b->buf && a->offset < lm__r8_end(b) && b->offset < lm__r8_end(a);
}

/* A 2-D quantized weight with an integer kernel, in our own copy, at least one group */
static bool lm__r8_eligible(const lm__cpu *c, const lm_tensor *t) {
    const lm__cpu_kernels *scalar = lm__cpu_kernels_get(LM__CPU_SCALAR);
    /* wrapped (read-only) weights in our huge-page copy, never a writable buffer: the
     * relayout seals what it wrote */
    if (!t->buf || !t->buf->readonly || !t->buf->huge_len || t->layout != LM_LAYOUT_ROWS)
        return false;
    if ((unsigned)t->type >= LM_TYPE_COUNT || !scalar->qdot[t->type] || !c->kern->qdot[t->type])
        return false;
    if (t->ne[0] < 1 || t->ne[1] < LM__MR || t->ne[2] != 1 || t->ne[3] != 1) return false;
    if (lm__cpu_check_w("relayout", "weight", t, -1) != LM_OK) return false;
    return t->nb[1] == lm_row_size(t->type, t->ne[0]);
}

/* ---- the packed group block ---- */

/* A packable type's block: nh f16 fields at byte hoff, nl bytes (a multiple of 4) of levels
 * and level scales at loff. Packed: the f16 fields of the 8 rows first, then the pieces. */
typedef struct {
    int nh, nl, hoff, loff;
} lm__p8_geom_t;

static bool lm__p8_geom(lm_type t, lm__p8_geom_t *g) {
    switch (t) {
    case LM_TYPE_Q4_0:
        *g = (lm__p8_geom_t){1, 16, 0, 2};
        return true;
    case LM_TYPE_Q4_1:
        *g = (lm__p8_geom_t){2, 16, 0, 4};
        return true;
    case LM_TYPE_Q5_0: /* qh (4 bytes), then qs: piece 0 is qh */
        *g = (lm__p8_geom_t){1, 20, 0, 2};
        return true;
    case LM_TYPE_Q5_1:
        *g = (lm__p8_geom_t){2, 20, 0, 4};
        return true;
    case LM_TYPE_Q8_0:
        *g = (lm__p8_geom_t){1, 32, 0, 2};
        return true;
    case LM_TYPE_Q2_K: /* scales (4 pieces), qs (16); d, dmin last in the block */
        *g = (lm__p8_geom_t){2, 80, 80, 0};
        return true;
    case LM_TYPE_Q3_K: /* hmask (8 pieces), qs (16), scales (3); d last in the block */
        *g = (lm__p8_geom_t){1, 108, 108, 0};
        return true;
    case LM_TYPE_Q4_K: /* d, dmin; then scales (3 pieces) and qs (32) */
        *g = (lm__p8_geom_t){2, 140, 0, 4};
        return true;
    case LM_TYPE_Q5_K: /* d, dmin; then scales (3 pieces), qh (8), qs (32) */
        *g = (lm__p8_geom_t){2, 172, 0, 4};
        return true;
    case LM_TYPE_Q6_K: /* ql (32 pieces), qh (16), scales (4); d last in the block */
        *g = (lm__p8_geom_t){1, 208, 208, 0};
        return true;
    default:
        return false;
    }
}

bool lm__cpu_p8_type(lm_type t) {
    lm__p8_geom_t g;
    return lm__p8_geom(t, &g);
}

/* Between the group block in rows (block r at r * bs) and packed, field by field */
static void lm__p8_move(lm_type t, const char *src, char *dst, bool pack) {
    lm__p8_geom_t g;
    if (!lm__p8_geom(t, &g)) return;
    const size_t bs = 2 * (size_t)g.nh + (size_t)g.nl;
    for (size_t r = 0; r < LM__MR; r++) {
        for (size_t h = 0; h < (size_t)g.nh; h++) {
            const size_t rows = r * bs + (size_t)g.hoff + 2 * h, packed = (h * LM__MR + r) * 2;
            memcpy(dst + (pack ? packed : rows), src + (pack ? rows : packed), 2);
        }
        for (size_t c = 0; c < (size_t)g.nl / 4; c++) {
            const size_t rows = r * bs + (size_t)g.loff + 4 * c,
                         packed = 2 * (size_t)g.nh * LM__MR + (c * LM__MR + r) * 4;
            memcpy(dst + (pack ? packed : rows), src + (pack ? rows : packed), 4);
        }
    }
}

void lm__cpu_p8_pack(lm_type t, const void *blocks, void *out) {
    lm__p8_move(t, blocks, out, true);
}

void lm__cpu_p8_unpack(lm_type t, const void *packed, void *blocks) {
    lm__p8_move(t, packed, blocks, false);
}

/* ---- re-laying a tensor ---- */

typedef struct {
    lm__cpu *c;
    char *base;
    size_t rs, bs; /* bytes per row, per block */
    int64_t nb;    /* blocks per row */
    lm_type type;
    bool packed;
} lm__r8_job;

/* Groups [g0, g1): each through the thread's scratch, back into the same bytes */
static void lm__r8_task(void *ctx, int64_t g0, int64_t g1, int ith) {
    const lm__r8_job *j = ctx;
    char *tmp = (char *)lm__cpu_scratch(j->c, ith);
    char blocks[LM__MR * 256]; /* a packable group block in rows */
    for (int64_t g = g0; g < g1; g++) {
        char *grp = j->base + (size_t)g * LM__MR * j->rs;
        memcpy(tmp, grp, LM__MR * j->rs);
        for (int64_t b = 0; b < j->nb; b++) {
            char *dst = grp + (size_t)b * LM__MR * j->bs, *gb = j->packed ? blocks : dst;
            for (int r = 0; r < LM__MR; r++)
                memcpy(gb + (size_t)r * j->bs, tmp + (size_t)r * j->rs + (size_t)b * j->bs, j->bs);
            if (j->packed) lm__cpu_p8_pack(j->type, blocks, dst);
        }
    }
}

static lm_status lm__r8_apply(lm__cpu *c, lm_tensor *t, bool packed) {
    const lm_type_traits tr = lm_type_get((uint32_t)t->type);
    lm__r8_job j = {c,       lm__cpu_data(t), t->nb[1], (size_t)tr.size, t->ne[0] / tr.blck,
                    t->type, packed};
    LM_TRY(lm__cpu_reserve(c, (LM__MR * j.rs + sizeof(float) - 1) / sizeof(float)));
    lm__pool_run(c->pool, lm__r8_task, &j, t->ne[1] / LM__MR);
    t->layout = packed ? LM_LAYOUT_CPU_P8 : LM_LAYOUT_CPU_R8;
    return LM_OK;
}

lm_status lm__cpu_weights_relayout(lm_backend *be, lm_tensor *const *w, int n) {
    const char *env = getenv("LUMEN_WEIGHT_LAYOUT");
    if (env && *env && strcmp(env, "rows") != 0 && strcmp(env, "interleaved") != 0 &&
        strcmp(env, "packed") != 0)
        return lm__error(LM_ERR_INVALID_ARG,
                         "cpu: LUMEN_WEIGHT_LAYOUT=%s (expected rows, interleaved or packed)", env);
    if (env && strcmp(env, "rows") == 0) return LM_OK;
    const bool pack = !env || strcmp(env, "interleaved") != 0; /* where the level has kernels */
    lm__cpu *c = lm__cpu_ctx(be);
    lm_buffer *open = NULL; /* the buffer made writable */
    lm_status s = LM_OK;
    for (int i = 0; i < n && s == LM_OK; i++) {
        lm_tensor *t = w[i];
        if (!t || !lm__r8_eligible(c, t)) continue;
        /* an alias of one already done takes its mark; any other overlap keeps rows */
        int alias = LM_LAYOUT_ROWS;
        bool clash = false;
        for (int k = 0; k < n; k++) {
            if (k == i || !w[k]) continue;
            if (lm__r8_same(w[k], t))
                alias = w[k]->layout != LM_LAYOUT_ROWS ? w[k]->layout : alias;
            else
                clash |= lm__r8_overlap(w[k], t);
        }
        if (clash) continue;
        if (alias != LM_LAYOUT_ROWS) {
            t->layout = alias;
            continue;
        }
        if (open != t->buf) {
            if (open) lm__huge_seal(open->data, open->huge_len);
            open = lm__huge_unseal(t->buf->data, t->buf->huge_len) ? t->buf : NULL;
            if (!open) continue; /* cannot write it: rows it is */
        }
        s = lm__r8_apply(c, t, pack && c->kern->qdot_p8[t->type] != NULL);
    }
    if (open) lm__huge_seal(open->data, open->huge_len);
    return s;
}

/* Row i of src, which may be interleaved or packed, as floats */
void lm__cpu_weight_row(const lm_tensor *src, int64_t i, float *dst) {
    const lm_type_traits tr = lm_type_get((uint32_t)src->type);
    const int64_t g = i / LM__MR, r = i % LM__MR;
    if (src->layout == LM_LAYOUT_ROWS || (g + 1) * LM__MR > src->ne[1]) {
        lm_dequantize_row(src->type, lm__cpu_row(src, i, 0, 0), dst, src->ne[0]);
        return;
    }
    const char *grp = lm__cpu_row(src, g * LM__MR, 0, 0);
    char blocks[LM__MR * 256];
    for (int64_t b = 0; b < src->ne[0] / tr.blck; b++) {
        const char *gb = grp + (size_t)b * LM__MR * tr.size;
        if (src->layout == LM_LAYOUT_CPU_P8) lm__cpu_p8_unpack(src->type, gb, blocks), gb = blocks;
        lm_dequantize_row(src->type, gb + (size_t)r * tr.size, dst + b * tr.blck, tr.blck);
    }
}
