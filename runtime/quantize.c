/* lm_quantize_file: convert a GGUF model's weights to another type with llama.cpp's mixed
 * recipes (which tensors keep more bits), streaming the output tensor by tensor. */
#include "gguf.h"
#include "lm_internal.h"
#include "quant.h"

#include "../kernels/cpu/threadpool.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define LM__QUANT_VERSION 2 /* general.quantization_version: ggml's block layouts since 2023 */

/* X(name, llama.cpp ftype, main block type, bits per weight of that type, recipe) */
#define LM__QTYPE_TABLE(X)                                                                         \
    X(F32, 0, F32, 32.0f, "32-bit float, no quantization")                                         \
    X(F16, 1, F16, 16.0f, "16-bit float")                                                          \
    X(BF16, 32, BF16, 16.0f, "bfloat16")                                                           \
    X(Q4_0, 2, Q4_0, 4.5f, "4-bit, blocks of 32; output Q6_K")                                     \
    X(Q4_1, 3, Q4_1, 5.0f, "4-bit with a minimum, blocks of 32; output Q6_K")                      \
    X(Q5_0, 8, Q5_0, 5.5f, "5-bit, blocks of 32; output Q6_K")                                     \
    X(Q5_1, 9, Q5_1, 6.0f, "5-bit with a minimum, blocks of 32; output Q6_K")                      \
    X(Q8_0, 7, Q8_0, 8.5f, "8-bit, blocks of 32")                                                  \
    X(Q2_K, 10, Q2_K, 2.625f, "Q2_K; attn_v, attn_output, ffn_down Q3_K; output Q6_K")             \
    X(Q3_K_S, 11, Q3_K, 3.4375f, "Q3_K; output Q6_K")                                              \
    X(Q3_K_M, 12, Q3_K, 3.4375f, "Q3_K; attn_v, attn_output, ffn_down Q4_K/Q5_K; output Q6_K")     \
    X(Q3_K_L, 13, Q3_K, 3.4375f, "Q3_K; attn_v, attn_output, ffn_down Q5_K; output Q6_K")          \
    X(Q4_K_S, 14, Q4_K, 4.5f, "Q4_K; attn_v, ffn_down Q5_K in the first layers; output Q6_K")      \
    X(Q4_K_M, 15, Q4_K, 4.5f, "Q4_K; attn_v, ffn_down Q6_K in half the layers; output Q6_K")       \
    X(Q5_K_S, 16, Q5_K, 5.5f, "Q5_K; output Q6_K")                                                 \
    X(Q5_K_M, 17, Q5_K, 5.5f, "Q5_K; attn_v, ffn_down Q6_K in half the layers; output Q6_K")       \
    X(Q6_K, 18, Q6_K, 6.5625f, "6-bit k-quant")

enum {
#define LM__X_FT(nm, ft, base, bpw, desc) LM__FT_##nm = ft,
    LM__QTYPE_TABLE(LM__X_FT)
#undef LM__X_FT
};

static const lm_quantize_type lm__qtypes[] = {
#define LM__X_PUB(nm, ft, base, bpw, desc) {#nm, ft, bpw, desc},
    LM__QTYPE_TABLE(LM__X_PUB)
#undef LM__X_PUB
};
static const lm_type lm__qbase[] = {
#define LM__X_BASE(nm, ft, base, bpw, desc) LM_TYPE_##base,
    LM__QTYPE_TABLE(LM__X_BASE)
#undef LM__X_BASE
};
#define LM__N_QTYPES ((int32_t)(sizeof lm__qtypes / sizeof lm__qtypes[0]))

const lm_quantize_type *lm_quantize_types(int32_t *n) {
    if (n) *n = LM__N_QTYPES;
    return lm__qtypes;
}

lm_quantize_params lm_quantize_default_params(void) {
    lm_quantize_params p = {.type = "Q4_K_M", .n_threads = 0, .allow_requantize = false};
    return p;
}

static const char *lm__tname(lm_type t) {
    const char *n = lm_type_get((uint32_t)t).name;
    return n ? n : "?";
}

static bool lm__is_quantized(lm_type t) {
    return lm_type_get((uint32_t)t).blck > 1;
}

/* ---- the recipe ----------------------------------------------------------------------- */

typedef enum {
    LM__CAT_OTHER,
    LM__CAT_TOKEN_EMBD,
    LM__CAT_OUTPUT,
    LM__CAT_ATTN_V, /* attn_v, and fused attn_qkv / attn_kv_b as llama.cpp treats them */
    LM__CAT_ATTN_OUTPUT,
    LM__CAT_FFN_DOWN,
} lm__cat;

typedef struct lm__recipe {
    int32_t ftype;
    lm_type base;
    int n_layer;
    int gqa;     /* n_head / n_head_kv */
    bool tied;   /* no output.weight: token_embd is also the output matrix */
    bool is_70b; /* llama.cpp bumps attn_v of 80-layer GQA Llamas */
} lm__recipe;

static bool lm__ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static lm__cat lm__category(const char *name) {
    if (!strcmp(name, "output.weight")) return LM__CAT_OUTPUT;
    if (!strcmp(name, "token_embd.weight")) return LM__CAT_TOKEN_EMBD;
    if (strstr(name, "attn_v.weight") || strstr(name, "attn_qkv.weight") ||
        strstr(name, "attn_kv_b.weight"))
        return LM__CAT_ATTN_V;
    if (strstr(name, "attn_output.weight")) return LM__CAT_ATTN_OUTPUT;
    if (strstr(name, "ffn_down")) return LM__CAT_FFN_DOWN;
    return LM__CAT_OTHER;
}

/* Weights that are quantized at all: matrices named *weight, not norms, routers or
 * position tables (llama.cpp's list, less the architectures Lumen does not run). */
static bool lm__quantizable(const char *name, const lm_gguf_tensor *t) {
    if (t->n_dims < 2 || !lm__ends_with(name, "weight")) return false;
    static const char *const keep[] = {
        "_norm.weight",        "ffn_gate_inp.weight", "position_embd", "token_types",
        "ssm_conv1d",          "attn_rel_b",          "altup",         "laurel",
        "per_layer_model_proj"};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        if (strstr(name, keep[i])) return false;
    lm_type tt = t->type;
    return tt == LM_TYPE_F32 || tt == LM_TYPE_F16 || tt == LM_TYPE_BF16 || lm__is_quantized(tt);
}

/* Layers near the ends and every third in between get more bits (about half of them). */
static bool lm__more_bits(int il, int n) {
    return il < n / 8 || il >= 7 * n / 8 || (il - n / 8) % 3 == 2;
}

static int lm__layer_of(const char *name) {
    int il = 0;
    return sscanf(name, "blk.%d.", &il) == 1 && il >= 0 ? il : 0;
}

/* The type a quantizable tensor gets before the block-size check. */
static lm_type lm__recipe_type(const lm__recipe *r, const char *name) {
    lm_type t = r->base;
    if (!lm__is_quantized(t)) return t; /* F32 / F16 / BF16: every weight */
    const int32_t ft = r->ftype;
    const int il = lm__layer_of(name), n = r->n_layer;
    switch (lm__category(name)) {
    case LM__CAT_TOKEN_EMBD: /* a tied embedding is the output matrix too */
        if (!r->tied) return t;
        return t == LM_TYPE_Q8_0 ? t : LM_TYPE_Q6_K;
    case LM__CAT_OUTPUT:
        return t == LM_TYPE_Q8_0 ? t : LM_TYPE_Q6_K;
    case LM__CAT_ATTN_V:
        if (ft == LM__FT_Q2_K)
            t = r->gqa >= 4 ? LM_TYPE_Q4_K : LM_TYPE_Q3_K;
        else if (ft == LM__FT_Q3_K_M)
            t = il < 2 ? LM_TYPE_Q5_K : LM_TYPE_Q4_K;
        else if (ft == LM__FT_Q3_K_L)
            t = LM_TYPE_Q5_K;
        else if ((ft == LM__FT_Q4_K_M || ft == LM__FT_Q5_K_M) && lm__more_bits(il, n))
            t = LM_TYPE_Q6_K;
        else if (ft == LM__FT_Q4_K_S && il < 4)
            t = LM_TYPE_Q5_K;
        if (r->is_70b && (t == LM_TYPE_Q3_K || t == LM_TYPE_Q4_K)) t = LM_TYPE_Q5_K;
        return t;
    case LM__CAT_FFN_DOWN:
        if (ft == LM__FT_Q2_K) return LM_TYPE_Q3_K;
        if (ft == LM__FT_Q3_K_M) return il < n / 16 ? LM_TYPE_Q5_K : LM_TYPE_Q4_K;
        if (ft == LM__FT_Q3_K_L) return LM_TYPE_Q5_K;
        if ((ft == LM__FT_Q4_K_M || ft == LM__FT_Q5_K_M) && lm__more_bits(il, n))
            return LM_TYPE_Q6_K;
        if (ft == LM__FT_Q4_K_S && il < n / 8) return LM_TYPE_Q5_K;
        return t;
    case LM__CAT_ATTN_OUTPUT:
        if (ft == LM__FT_Q2_K) return LM_TYPE_Q3_K;
        if (ft == LM__FT_Q3_K_M) return LM_TYPE_Q4_K;
        if (ft == LM__FT_Q3_K_L) return LM_TYPE_Q5_K;
        return t;
    default:
        return t;
    }
}

/* Rows that are not a whole number of blocks: the nearest 32-element type, else F16. */
static lm_type lm__fallback(lm_type t, int64_t ne0) {
    if (ne0 % lm_type_get((uint32_t)t).blck == 0) return t;
    lm_type f = LM_TYPE_F16;
    switch (t) {
    case LM_TYPE_Q2_K:
    case LM_TYPE_Q3_K:
        f = LM_TYPE_Q4_0;
        break;
    case LM_TYPE_Q4_K:
        f = LM_TYPE_Q5_0;
        break;
    case LM_TYPE_Q5_K:
        f = LM_TYPE_Q5_1;
        break;
    case LM_TYPE_Q6_K:
        f = LM_TYPE_Q8_0;
        break;
    default:
        break;
    }
    if (ne0 % lm_type_get((uint32_t)f).blck != 0) f = LM_TYPE_F16;
    return f;
}

/* ---- planning ------------------------------------------------------------------------- */

typedef struct lm__qplan {
    char *name;
    const lm_gguf_tensor *t;
    lm_type out;
    uint64_t out_bytes;
} lm__qplan;

typedef struct lm__qstate {
    const lm_quantize_params *p;
    int32_t ftype;
    lm_gguf *in;
    int64_t n;
    lm__qplan *plan;
    lm_gguf_writer *w;
    lm__pool *pool;
    FILE *fp;
    char *tmp;
    uint8_t *dst;
    size_t dst_cap;
    float *scratch; /* one row per thread */
    int64_t scratch_ne0;
    lm_quantize_stats st;
} lm__qstate;

static char *lm__strndup(const char *s, size_t n) {
    char *c = LM_MALLOC(n + 1);
    if (c) {
        memcpy(c, s, n);
        c[n] = '\0';
    }
    return c;
}

static int64_t lm__meta_int(const lm_gguf *g, const char *arch, const char *suffix, int64_t dflt) {
    char key[256];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t v;
    if (!lm_gguf_get(g, key) || lm_gguf_get_i64(g, key, &v) != LM_OK) return dflt;
    return v;
}

static void lm__recipe_init(lm__qstate *q, int32_t k, lm__recipe *r) {
    r->ftype = q->ftype;
    r->base = lm__qbase[k];
    char arch[64] = "llama";
    lm_gguf_str s;
    if (lm_gguf_get(q->in, "general.architecture") &&
        lm_gguf_get_str(q->in, "general.architecture", &s) == LM_OK && s.len < sizeof arch) {
        memcpy(arch, s.data, s.len);
        arch[s.len] = '\0';
    }
    int max_layer = -1;
    r->tied = true;
    for (int64_t i = 0; i < q->n; i++) {
        const char *name = q->plan[i].name;
        if (!strcmp(name, "output.weight")) r->tied = false;
        if (!strncmp(name, "blk.", 4) && lm__layer_of(name) > max_layer)
            max_layer = lm__layer_of(name);
    }
    int64_t n_layer = lm__meta_int(q->in, arch, "block_count", max_layer + 1);
    int64_t n_head = lm__meta_int(q->in, arch, "attention.head_count", 1);
    int64_t n_head_kv = lm__meta_int(q->in, arch, "attention.head_count_kv", n_head);
    r->n_layer = n_layer > 0 && n_layer < (1 << 20) ? (int)n_layer : max_layer + 1;
    r->gqa = n_head_kv > 0 && n_head > 0 ? (int)(n_head / n_head_kv) : 1;
    r->is_70b = !strcmp(arch, "llama") && r->n_layer == 80 && n_head != n_head_kv;
}

/* Fallbacks are reported once per (wanted type, type used, row length), with a count. */
#define LM__MAX_NOTES 16
typedef struct lm__fallback_note {
    lm_type want, got;
    int64_t ne0;
    int count;
    const char *example;
} lm__fallback_note;

static void lm__note_fallback(lm__fallback_note *fb, int *n, lm_type want, lm_type got, int64_t ne0,
                              const char *name) {
    for (int i = 0; i < *n; i++) {
        if (fb[i].want == want && fb[i].got == got && fb[i].ne0 == ne0) {
            fb[i].count++;
            return;
        }
    }
    if (*n < LM__MAX_NOTES) fb[(*n)++] = (lm__fallback_note){want, got, ne0, 1, name};
}

/* Can Lumen write this type (is there a quantizer)? */
static bool lm__can_write(lm_type t) {
    static const float zeros[256];
    uint8_t buf[512];
    int32_t blck = lm_type_get((uint32_t)t).blck;
    return blck > 0 && blck <= 256 && lm_quantize_row(t, zeros, buf, blck) > 0;
}

static lm_status lm__plan(lm__qstate *q, int32_t k) {
    q->n = lm_gguf_n_tensors(q->in);
    q->plan = LM_CALLOC(q->n ? (size_t)q->n : 1, sizeof *q->plan);
    if (!q->plan) return lm__error(LM_ERR_NOMEM, "quantize: out of memory");
    for (int64_t i = 0; i < q->n; i++) {
        const lm_gguf_tensor *t = lm_gguf_tensor_at(q->in, i);
        q->plan[i].t = t;
        q->plan[i].name = lm__strndup(t->name.data, (size_t)t->name.len);
        if (!q->plan[i].name) return lm__error(LM_ERR_NOMEM, "quantize: out of memory");
    }
    lm__recipe r;
    lm__recipe_init(q, k, &r);
    const char *first_requant = NULL;
    lm__fallback_note fb[LM__MAX_NOTES];
    int n_fb = 0;
    for (int64_t i = 0; i < q->n; i++) {
        lm__qplan *pl = &q->plan[i];
        const lm_gguf_tensor *t = pl->t;
        pl->out = t->type;
        if (lm__quantizable(pl->name, t)) {
            lm_type want = lm__recipe_type(&r, pl->name);
            pl->out = lm__fallback(want, t->ne[0]);
            if (pl->out != want) {
                q->st.n_fallback++;
                lm__note_fallback(fb, &n_fb, want, pl->out, t->ne[0], pl->name);
            }
        }
        if (!lm_gguf_tensor_nbytes(pl->out, t->n_dims, t->ne, &pl->out_bytes))
            return lm__error(LM_ERR_FORMAT, "%s: tensor %s has a bad shape", lm_gguf_path(q->in),
                             pl->name);
        q->st.n_elements += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
        q->st.bytes_in += t->n_bytes;
        q->st.bytes_out += pl->out_bytes;
        if (pl->out == t->type) continue;
        q->st.n_quantized++;
        if (lm__is_quantized(t->type)) {
            q->st.n_requantized++;
            if (!first_requant) first_requant = pl->name;
        }
        if (!lm_type_computable(t->type))
            return lm__error(LM_ERR_UNSUPPORTED,
                             "%s: tensor %s is %s, which Lumen cannot dequantize to convert it",
                             lm_gguf_path(q->in), pl->name, lm__tname(t->type));
        if (!lm__can_write(pl->out))
            return lm__error(LM_ERR_UNSUPPORTED,
                             "quantize: Lumen has no %s quantizer yet (needed for tensor %s)",
                             lm__tname(pl->out), pl->name);
    }
    for (int i = 0; i < n_fb; i++)
        lm__log(LM_LOG_WARN,
                "%d tensor%s with rows of %" PRId64 " (not a multiple of %d) use%s %s instead of "
                "%s, e.g. %s",
                fb[i].count, fb[i].count > 1 ? "s" : "", fb[i].ne0,
                lm_type_get((uint32_t)fb[i].want).blck, fb[i].count > 1 ? "" : "s",
                lm__tname(fb[i].got), lm__tname(fb[i].want), fb[i].example);
    if (first_requant && !q->p->allow_requantize) {
        const lm_gguf_tensor *t = lm_gguf_find_tensor(q->in, first_requant);
        return lm__error(LM_ERR_UNSUPPORTED,
                         "%s is already quantized (%s is %s): re-quantizing loses quality; "
                         "allow it explicitly (lumen quantize --allow-requantize), or start "
                         "from an F32/F16/BF16 file",
                         lm_gguf_path(q->in), first_requant, lm__tname(t->type));
    }
    if (first_requant)
        lm__log(LM_LOG_WARN,
                "%s: re-quantizing %d tensors that are already quantized: they are "
                "dequantized first, so the result is worse than quantizing the original "
                "F32/F16/BF16 weights",
                lm_gguf_path(q->in), q->st.n_requantized);
    return LM_OK;
}

/* ---- the output header ---------------------------------------------------------------- */

static lm_status lm__copy_kvs(lm__qstate *q) {
    bool have_ft = false, have_qv = false, have_by = false;
    const char *by = "lumen " LM_VERSION_STRING;
    for (int64_t i = 0; i < lm_gguf_n_kv(q->in); i++) {
        const lm_gguf_kv *kv = lm_gguf_kv_at(q->in, i);
        char *key = lm__strndup(kv->key.data, (size_t)kv->key.len);
        if (!key) return lm__error(LM_ERR_NOMEM, "quantize: out of memory");
        lm_status s = LM_OK;
        if (!strcmp(key, "general.file_type")) {
            s = lm_gguf_writer_add_u32(q->w, key, (uint32_t)q->ftype);
            have_ft = true;
        } else if (!strcmp(key, "general.quantization_version")) {
            s = lm_gguf_writer_add_u32(q->w, key, LM__QUANT_VERSION);
            have_qv = true;
        } else if (!strcmp(key, "general.quantized_by")) {
            s = lm_gguf_writer_add_str(q->w, key, by);
            have_by = true;
        } else if (strncmp(key, "split.", 6) != 0) { /* one output file: no split keys */
            s = lm_gguf_writer_add_kv(q->w, key, &kv->value);
        }
        LM_FREE(key);
        LM_TRY(s);
    }
    if (!have_qv) LM_TRY(lm_gguf_writer_add_u32(q->w, "general.quantization_version", 2));
    if (!have_ft) LM_TRY(lm_gguf_writer_add_u32(q->w, "general.file_type", (uint32_t)q->ftype));
    if (!have_by) LM_TRY(lm_gguf_writer_add_str(q->w, "general.quantized_by", by));
    for (int64_t i = 0; i < q->n; i++) {
        const lm__qplan *pl = &q->plan[i];
        LM_TRY(lm_gguf_writer_add_tensor_info(q->w, pl->name, pl->out, pl->t->n_dims, pl->t->ne));
    }
    return LM_OK;
}

/* ---- converting one tensor ------------------------------------------------------------ */

typedef struct lm__qjob {
    const uint8_t *src;
    size_t src_row, dst_row;
    lm_type src_type, dst_type;
    uint8_t *dst;
    int64_t ne0;
    float *scratch;
    atomic_int_fast64_t bad_row; /* first row seen with a NaN/Inf, or -1 */
} lm__qjob;

static void lm__qjob_rows(void *ctx, int64_t begin, int64_t end, int ith) {
    lm__qjob *j = ctx;
    float *f = j->scratch + (size_t)ith * (size_t)j->ne0;
    for (int64_t r = begin; r < end; r++) {
        /* dequantize (or copy: F32 data need not be 4-byte aligned in a GGUF) */
        lm_dequantize_row(j->src_type, j->src + (size_t)r * j->src_row, f, j->ne0);
        for (int64_t i = 0; i < j->ne0; i++) {
            if (!isfinite(f[i])) {
                int_fast64_t none = -1;
                atomic_compare_exchange_strong(&j->bad_row, &none, r);
                return;
            }
        }
        lm_quantize_row(j->dst_type, f, j->dst + (size_t)r * j->dst_row, j->ne0);
    }
}

static lm_status lm__convert(lm__qstate *q, const lm__qplan *pl, const void **out) {
    const lm_gguf_tensor *t = pl->t;
    if (pl->out_bytes > q->dst_cap) {
        LM_FREE(q->dst);
        q->dst = LM_MALLOC((size_t)pl->out_bytes);
        q->dst_cap = q->dst ? (size_t)pl->out_bytes : 0;
        if (!q->dst) return lm__error(LM_ERR_NOMEM, "quantize: out of memory for %s", pl->name);
    }
    int nth = lm__pool_threads(q->pool);
    if (t->ne[0] > q->scratch_ne0) {
        LM_FREE(q->scratch);
        q->scratch = LM_MALLOC((size_t)t->ne[0] * (size_t)nth * sizeof(float));
        q->scratch_ne0 = q->scratch ? t->ne[0] : 0;
        if (!q->scratch) return lm__error(LM_ERR_NOMEM, "quantize: out of memory");
    }
    lm__qjob j = {.src = t->data,
                  .src_row = lm_row_size(t->type, t->ne[0]),
                  .dst_row = lm_row_size(pl->out, t->ne[0]),
                  .src_type = t->type,
                  .dst_type = pl->out,
                  .dst = q->dst,
                  .ne0 = t->ne[0],
                  .scratch = q->scratch};
    atomic_init(&j.bad_row, -1);
    int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
    lm__pool_run(q->pool, lm__qjob_rows, &j, rows);
    int64_t bad = atomic_load(&j.bad_row);
    if (bad >= 0)
        return lm__error(LM_ERR_MODEL, "%s: tensor %s has a NaN or infinite value in row %" PRId64,
                         lm_gguf_path(q->in), pl->name, (int64_t)bad);
    *out = q->dst;
    return LM_OK;
}

/* ---- writing -------------------------------------------------------------------------- */

static lm_status lm__write(lm__qstate *q, const void *p, size_t n) {
    if (n && fwrite(p, 1, n, q->fp) != n)
        return lm__error(LM_ERR_IO, "%s: write failed: %s", q->tmp, strerror(errno));
    return LM_OK;
}

static lm_status lm__write_tensors(lm__qstate *q) {
    static const uint8_t zeros[256];
    /* the writer took general.alignment from the input's keys, or has the same default */
    const uint32_t align = lm_gguf_alignment(q->in);
    lm_quantize_progress pr = {.n_tensors = (int32_t)q->n, .total_in = q->st.bytes_in};
    if (q->p->progress && !q->p->progress(&pr, q->p->progress_user))
        return lm__error(LM_ERR_INTERRUPTED, "quantize: interrupted");
    for (int64_t i = 0; i < q->n; i++) {
        const lm__qplan *pl = &q->plan[i];
        const void *data = pl->t->data;
        if (pl->out != pl->t->type) LM_TRY(lm__convert(q, pl, &data));
        LM_TRY(lm__write(q, data, (size_t)pl->out_bytes));
        LM_TRY(lm__write(q, zeros, (size_t)((align - pl->out_bytes % align) % align)));
        pr.i_tensor = (int32_t)(i + 1);
        pr.name = pl->name;
        pr.type_in = lm__tname(pl->t->type);
        pr.type_out = lm__tname(pl->out);
        pr.bytes_in += pl->t->n_bytes;
        pr.bytes_out += pl->out_bytes;
        if (q->p->progress && !q->p->progress(&pr, q->p->progress_user))
            return lm__error(LM_ERR_INTERRUPTED, "quantize: interrupted");
    }
    return LM_OK;
}

static lm_status lm__write_file(lm__qstate *q, const char *out) {
    void *meta = NULL;
    size_t meta_size = 0;
    LM_TRY(lm_gguf_writer_write_meta(q->w, &meta, &meta_size));
    q->fp = fopen(q->tmp, "wb");
    if (!q->fp) {
        free(meta);
        return lm__error(LM_ERR_IO, "%s: cannot create: %s", q->tmp, strerror(errno));
    }
    lm_status s = lm__write(q, meta, meta_size);
    free(meta);
    if (s == LM_OK) s = lm__write_tensors(q);
    if (s == LM_OK && (fflush(q->fp) != 0 || fsync(fileno(q->fp)) != 0))
        s = lm__error(LM_ERR_IO, "%s: write failed: %s", q->tmp, strerror(errno));
    if (fclose(q->fp) != 0 && s == LM_OK)
        s = lm__error(LM_ERR_IO, "%s: write failed: %s", q->tmp, strerror(errno));
    q->fp = NULL;
    if (s == LM_OK && rename(q->tmp, out) != 0)
        s = lm__error(LM_ERR_IO, "%s: cannot rename to %s: %s", q->tmp, out, strerror(errno));
    if (s != LM_OK) remove(q->tmp);
    return s;
}

/* ---- entry point ---------------------------------------------------------------------- */

static lm_status lm__find_qtype(const char *name, int32_t *k) {
    for (int32_t i = 0; name && i < LM__N_QTYPES; i++) {
        if (!strcasecmp(name, lm__qtypes[i].name)) {
            *k = i;
            return LM_OK;
        }
    }
    char list[512] = "";
    for (int32_t i = 0; i < LM__N_QTYPES; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, lm__qtypes[i].name, sizeof list - strlen(list) - 1);
    }
    return lm__error(LM_ERR_INVALID_ARG, "unknown quantization type '%s'; valid types: %s",
                     name ? name : "(null)", list);
}

static void lm__qstate_free(lm__qstate *q) {
    for (int64_t i = 0; q->plan && i < q->n; i++) LM_FREE(q->plan[i].name);
    LM_FREE(q->plan);
    lm_gguf_writer_free(q->w);
    lm__pool_destroy(q->pool);
    lm_gguf_close(q->in);
    LM_FREE(q->tmp);
    LM_FREE(q->dst);
    LM_FREE(q->scratch);
}

static lm_status lm__quantize(lm__qstate *q, const char *in, const char *out) {
    int32_t k = 0;
    LM_TRY(lm__find_qtype(q->p->type, &k));
    q->ftype = lm__qtypes[k].ftype;
    int32_t nth = q->p->n_threads;
    if (nth < 0 || nth > 1024)
        return lm__error(LM_ERR_INVALID_ARG, "quantize: n_threads = %d (expected 0..1024)", nth);
    if (nth == 0) nth = (int32_t)sysconf(_SC_NPROCESSORS_ONLN);
    LM_TRY(lm_gguf_open(in, &q->in));
    LM_TRY(lm__plan(q, k));
    LM_TRY(lm_gguf_writer_create(3, &q->w));
    LM_TRY(lm__copy_kvs(q));
    q->pool = lm__pool_create(nth > 0 ? nth : 1);
    size_t n = strlen(out) + 5;
    q->tmp = LM_MALLOC(n);
    if (!q->pool || !q->tmp) return lm__error(LM_ERR_NOMEM, "quantize: out of memory");
    snprintf(q->tmp, n, "%s.tmp", out);
    return lm__write_file(q, out);
}

lm_status lm_quantize_file(const char *in, const char *out, const lm_quantize_params *params,
                           lm_quantize_stats *stats) {
    if (!in || !out || !params)
        return lm__error(LM_ERR_INVALID_ARG, "lm_quantize_file: NULL argument");
    double t0 = lm__time_ms();
    lm__qstate q = {.p = params};
    lm_status s = lm__quantize(&q, in, out);
    q.st.n_tensors = (int32_t)q.n;
    q.st.t_ms = lm__time_ms() - t0;
    if (stats) *stats = q.st;
    lm__qstate_free(&q);
    return s;
}
