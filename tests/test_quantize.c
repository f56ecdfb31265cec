/* lumen quantize: a generated F32 model quantized to every type through the public API
 * (and the CLI): keys kept, tensor types by the recipe, dequantized weights within each
 * type's error bound, the quantized model decodes with logits close to the F32 model's;
 * and the failures: bad type, missing input, unwritable output, interrupted, re-quantize,
 * non-finite weights. LUMEN_KEEP_QUANT_DIR=DIR keeps the files of the every-type test
 * there for scripts/check_quantized.py (an independent check with the gguf package). */
#include "helpers/test_util.h"
#include "helpers/tiny_model.h"
#include "lumen.h"

#include "gguf.h"
#include "quant.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- temp files ----------------------------------------------------------------------- */

static char tmpdir[256];
static bool keep_files;

static void tmp_setup(void) {
    const char *keep = getenv("LUMEN_KEEP_QUANT_DIR");
    keep_files = keep && *keep;
    if (keep_files) {
        snprintf(tmpdir, sizeof tmpdir, "%s", keep);
        mkdir(tmpdir, 0755);
        return;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lm_quant_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void tmp_teardown(void) {
    if (!keep_files && tmpdir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        cr_assert_eq(system(cmd), 0);
    }
    tmpdir[0] = '\0';
}

static char *tmp_path(const char *name) {
    char *p = malloc(strlen(tmpdir) + strlen(name) + 2);
    cr_assert_not_null(p);
    sprintf(p, "%s/%s", tmpdir, name);
    return p;
}

static bool exists(const char *path) {
    return access(path, F_OK) == 0;
}

TestSuite(quantize, .init = tmp_setup, .fini = tmp_teardown, .timeout = 600);

/* ---- the source models ---------------------------------------------------------------- */

/* 256 wide (every row fits the 256-element k-quant blocks), 8 layers so the "more bits"
 * layers (0, 3, 6, 7 of 8) differ from the rest, one KV head for 4 query heads (GQA 4),
 * a separate output matrix. */
static lm_tiny_spec wide_spec(void) {
    lm_tiny_spec s = lm_tiny_default_spec();
    s.wtype = LM_TYPE_F32;
    s.n_embd = 256;
    s.n_ff = 512;
    s.n_layer = 8;
    s.n_head = 4;
    s.n_head_kv = 1;
    s.tied = false;
    s.seed = lm_test_seed();
    return s;
}

/* The default tiny shape (64 wide, ff 96, tied): no row fits a 256-element block. */
static lm_tiny_spec narrow_spec(void) {
    lm_tiny_spec s = lm_tiny_default_spec();
    s.wtype = LM_TYPE_F32;
    s.seed = lm_test_seed();
    return s;
}

/* ---- the expected recipe, written out as tables for the two shapes -------------------- */

typedef struct qcase {
    const char *name;          /* TYPE argument */
    int ftype;                 /* general.file_type (llama.cpp's LLAMA_FTYPE) */
    const char *main;          /* type of the plain 2-D weights */
    const char *out;           /* output.weight (or a tied token_embd) */
    const char *o;             /* attn_output.weight (NULL: main) */
    const char *v[8];          /* attn_v.weight per layer of the 8-layer model (NULL: main) */
    const char *d[8];          /* ffn_down.weight per layer of the 8-layer model (NULL: main) */
    const char *v2[2], *d2[2]; /* the same for the 2-layer model, before the fallback */
    double w_err;              /* bound on the relative RMS error of a tensor in the main type */
    double logit_err;          /* bound on RMS(logits - F32 logits) / std(F32 logits) */
} qcase;

#define Q2 "Q2_K"
#define Q3 "Q3_K"
#define Q4 "Q4_K"
#define Q5 "Q5_K"
#define Q6 "Q6_K"
#define ALL8(t)                                                                                    \
    { t, t, t, t, t, t, t, t }
/* Layers 0, 3, 6, 7 of 8 get more bits in the _M mixes (llama.cpp's use_more_bits); of 2
 * layers, layer 1. */
#define MORE8(hi, lo)                                                                              \
    { hi, lo, lo, hi, lo, lo, hi, hi }

/* Weight error bounds: rounding to a grid of step s gives an RMS error of s/sqrt(12); for
 * N(0,1) weights in blocks of 32 (max |x| about 2.1) Q8_0 has s = 2.1/127 (0.5 %), Q5_0
 * 2.1/16 (3.8 %), Q4_0 2.1/8 (7.6 %), Q4_1 4.2/15 (8 %); the k-quants fit scales per 16 or
 * 32 elements and search them, so they land at or below their legacy siblings; Q3_K and
 * Q2_K have 8 and 4 levels (measured about 15 % and 30 %). Each bound is the largest error
 * measured over several seeds with about 1.5x margin. Logit bounds: on these random-weight
 * models the weight error reaches the logits at about 3x (it adds up over 8 layers and the
 * output matrix); bounds are the measured maxima with about 1.5x margin. */
/* one row per type, kept as a table */
/* clang-format off */
static const qcase cases[] = {
    {"F32",    0,  "F32",  "F32",  NULL, {0}, {0}, {0}, {0}, 0, 1e-6},
    {"F16",    1,  "F16",  "F16",  NULL, {0}, {0}, {0}, {0}, 5e-4, 2e-3},
    {"BF16",   32, "BF16", "BF16", NULL, {0}, {0}, {0}, {0}, 4e-3, 1.5e-2},
    {"Q4_0",   2,  "Q4_0", Q6,     NULL, {0}, {0}, {0}, {0}, 0.13, 0.35},
    {"Q4_1",   3,  "Q4_1", Q6,     NULL, {0}, {0}, {0}, {0}, 0.12, 0.35},
    {"Q5_0",   8,  "Q5_0", Q6,     NULL, {0}, {0}, {0}, {0}, 0.065, 0.17},
    {"Q5_1",   9,  "Q5_1", Q6,     NULL, {0}, {0}, {0}, {0}, 0.058, 0.17},
    {"Q8_0",   7,  "Q8_0", "Q8_0", NULL, {0}, {0}, {0}, {0}, 0.008, 0.03},
    /* attn_v is Q4_K with 4 query heads per KV head (the 8-layer model), else Q3_K */
    {"Q2_K",   10, Q2, Q6, Q3,   ALL8(Q4), ALL8(Q3), {Q3, Q3}, {Q3, Q3}, 0.45, 0.95},
    {"Q3_K_S", 11, Q3, Q6, NULL, {0}, {0}, {0}, {0}, 0.23, 0.55},
    {"Q3_K_M", 12, Q3, Q6, Q4,   {Q5, Q5, Q4, Q4, Q4, Q4, Q4, Q4}, ALL8(Q4),
                                 {Q5, Q5}, {Q4, Q4}, 0.23, 0.50},
    {"Q3_K_L", 13, Q3, Q6, Q5,   ALL8(Q5), ALL8(Q5), {Q5, Q5}, {Q5, Q5}, 0.23, 0.50},
    {"Q4_K_S", 14, Q4, Q6, NULL, {Q5, Q5, Q5, Q5, Q4, Q4, Q4, Q4},
                                 {Q5, Q4, Q4, Q4, Q4, Q4, Q4, Q4}, {Q5, Q5}, {Q4, Q4}, 0.10, 0.28},
    {"Q4_K_M", 15, Q4, Q6, NULL, MORE8(Q6, Q4), MORE8(Q6, Q4), {Q4, Q6}, {Q4, Q6}, 0.10, 0.28},
    {"Q5_K_S", 16, Q5, Q6, NULL, {0}, {0}, {0}, {0}, 0.055, 0.16},
    {"q5_k_m", 17, Q5, Q6, NULL, MORE8(Q6, Q5), MORE8(Q6, Q5), {Q5, Q6}, {Q5, Q6}, 0.055, 0.16},
    {"Q6_K",   18, Q6, Q6, NULL, {0}, {0}, {0}, {0}, 0.027, 0.08},
};
/* clang-format on */
#define N_CASES (sizeof cases / sizeof cases[0])

/* Error bound of a tensor stored in type t (the mixes put some tensors in other types). */
static double type_err(const char *t) {
    for (size_t i = 0; i < N_CASES; i++)
        if (!strcmp(cases[i].main, t)) return cases[i].w_err;
    cr_assert_fail("no error bound for %s", t);
    return 0;
}

static int layer_of(const char *name) {
    int il = -1;
    return sscanf(name, "blk.%d.", &il) == 1 ? il : -1;
}

/* The type the wide (8-layer, untied, GQA 4) model's tensor must have. */
static const char *expect_wide(const qcase *c, const char *name, int n_dims) {
    if (n_dims == 1) return "F32";
    if (!strcmp(name, "output.weight")) return c->out;
    int il = layer_of(name);
    if (strstr(name, "attn_v.weight") && c->v[il]) return c->v[il];
    if (strstr(name, "ffn_down.weight") && c->d[il]) return c->d[il];
    if (strstr(name, "attn_output.weight") && c->o) return c->o;
    return c->main;
}

/* The narrow model (64-wide rows, ff 96, 2 layers, tied): every k-quant falls back to its
 * 32-block neighbour; the tied embedding is the output matrix. */
static const char *fallback(const char *t) {
    static const char *const map[][2] = {
        {"Q2_K", "Q4_0"}, {"Q3_K", "Q4_0"}, {"Q4_K", "Q5_0"}, {"Q5_K", "Q5_1"}, {"Q6_K", "Q8_0"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(map[i][0], t)) return map[i][1];
    return t;
}

static const char *expect_narrow(const qcase *c, const char *name, int n_dims) {
    if (n_dims == 1) return "F32";
    if (!strcmp(name, "token_embd.weight")) return fallback(c->out);
    int il = layer_of(name);
    if (strstr(name, "attn_v.weight") && c->v2[il]) return fallback(c->v2[il]);
    if (strstr(name, "ffn_down.weight") && c->d2[il]) return fallback(c->d2[il]);
    if (strstr(name, "attn_output.weight") && c->o) return fallback(c->o);
    return fallback(c->main);
}

/* ---- checks --------------------------------------------------------------------------- */

static char *tname(const lm_gguf_tensor *t) {
    static char buf[128];
    snprintf(buf, sizeof buf, "%.*s", (int)t->name.len, t->name.data);
    return buf;
}

/* Every key of src is in dst with the same value, except those quantize sets. */
static void check_keys(const lm_gguf *src, const lm_gguf *dst, int ftype) {
    char a[512], b[512], key[256];
    for (int64_t i = 0; i < lm_gguf_n_kv(src); i++) {
        const lm_gguf_kv *kv = lm_gguf_kv_at(src, i);
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.data);
        if (!strcmp(key, "general.file_type")) continue;
        const lm_gguf_value *v = lm_gguf_get(dst, key);
        cr_assert_not_null(v, "key %s lost", key);
        lm_gguf_value_to_text(&kv->value, 1u << 30, a, sizeof a);
        lm_gguf_value_to_text(v, 1u << 30, b, sizeof b);
        cr_assert_str_eq(a, b, "key %s changed", key);
    }
    uint32_t ft = 0, qv = 0;
    lm_gguf_str by;
    cr_assert_eq(lm_gguf_get_u32(dst, "general.file_type", &ft), LM_OK);
    cr_assert_eq(ft, (uint32_t)ftype);
    cr_assert_eq(lm_gguf_get_u32(dst, "general.quantization_version", &qv), LM_OK);
    cr_assert_eq(qv, 2);
    cr_assert_eq(lm_gguf_get_str(dst, "general.quantized_by", &by), LM_OK);
    cr_assert(by.len >= 5 && !memcmp(by.data, "lumen", 5));
}

/* Relative RMS error of the dequantized tensor against the F32 original. */
static double tensor_err(const lm_gguf_tensor *src, const lm_gguf_tensor *dst) {
    int64_t ne0 = src->ne[0], rows = src->ne[1] * src->ne[2] * src->ne[3];
    float *row = malloc((size_t)ne0 * sizeof *row);
    cr_assert_not_null(row);
    size_t rb = lm_row_size(dst->type, ne0);
    double se = 0, ss = 0;
    for (int64_t r = 0; r < rows; r++) {
        lm_dequantize_row(dst->type, (const char *)dst->data + (size_t)r * rb, row, ne0);
        const float *x = (const float *)src->data + r * ne0;
        for (int64_t i = 0; i < ne0; i++) {
            se += ((double)row[i] - x[i]) * ((double)row[i] - x[i]);
            ss += (double)x[i] * x[i];
        }
    }
    free(row);
    return sqrt(se / (ss > 0 ? ss : 1));
}

typedef const char *(*expect_fn)(const qcase *c, const char *name, int n_dims);

/* Returns the largest relative RMS error of a tensor in the case's main type. */
static double check_tensors(const char *src_path, const char *dst_path, const qcase *c,
                            expect_fn expect) {
    double worst = 0;
    lm_gguf *src = NULL, *dst = NULL;
    cr_assert_eq(lm_gguf_open(src_path, &src), LM_OK, "%s", lm_last_error());
    cr_assert_eq(lm_gguf_open(dst_path, &dst), LM_OK, "%s", lm_last_error());
    check_keys(src, dst, c->ftype);
    cr_assert_eq(lm_gguf_n_tensors(dst), lm_gguf_n_tensors(src));
    for (int64_t i = 0; i < lm_gguf_n_tensors(src); i++) {
        const lm_gguf_tensor *s = lm_gguf_tensor_at(src, i);
        const lm_gguf_tensor *d = lm_gguf_tensor_at(dst, i);
        char name[128];
        snprintf(name, sizeof name, "%s", tname(s));
        cr_assert_str_eq(tname(d), name, "tensor order changed");
        cr_assert_eq(d->n_dims, s->n_dims);
        for (int k = 0; k < 4; k++) cr_assert_eq(d->ne[k], s->ne[k]);
        const char *want = expect(c, name, (int)s->n_dims);
        const char *got = lm_type_get((uint32_t)d->type).name;
        cr_assert_str_eq(got, want, "%s: %s is %s, expected %s", c->name, name, got, want);
        double err = tensor_err(s, d), bound = type_err(got);
        cr_assert(err <= bound, "%s: %s (%s) relative RMS error %.4g > %.4g", c->name, name, got,
                  err, bound);
        /* the quantized types do lose something: the comparison is not vacuous */
        if (bound > 1e-3) cr_assert(err > bound / 50, "%s: %s error %.3g", c->name, name, err);
        if (!strcmp(got, c->main) && err > worst) worst = err;
    }
    lm_gguf_close(src);
    lm_gguf_close(dst);
    return worst;
}

/* Logits of the last of a few tokens. */
static float *model_logits(const char *path, int32_t *n_vocab) {
    lm_model *m = NULL;
    lm_context *ctx = NULL;
    lm_model_params mp = lm_model_default_params();
    mp.n_threads = 2;
    cr_assert_eq(lm_model_load(path, &mp, &m), LM_OK, "%s: %s", path, lm_last_error());
    lm_context_params cp = lm_context_default_params();
    cp.n_ctx = 64;
    cr_assert_eq(lm_context_create(m, &cp, &ctx), LM_OK, "%s", lm_last_error());
    const lm_token toks[] = {LM_TINY_TOK_G_THE, 1 + 'c', 1 + 'a', 1 + 't', LM_TINY_TOK_HE,
                             LM_TINY_TOK_G_T,   1 + 's', 1 + 'a', 1 + 't'};
    lm_batch b = lm_batch_simple(toks, (int32_t)(sizeof toks / sizeof toks[0]));
    cr_assert_eq(lm_decode(ctx, &b), LM_OK, "%s", lm_last_error());
    *n_vocab = lm_model_n_vocab(m);
    float *out = malloc((size_t)*n_vocab * sizeof *out);
    cr_assert_not_null(out);
    memcpy(out, lm_get_logits(ctx, -1), (size_t)*n_vocab * sizeof *out);
    lm_context_free(ctx);
    lm_model_free(m);
    return out;
}

static double logit_err(const float *q, const float *f, int32_t n) {
    double mean = 0, var = 0, se = 0;
    for (int32_t i = 0; i < n; i++) mean += f[i] / n;
    for (int32_t i = 0; i < n; i++) {
        var += (f[i] - mean) * (f[i] - mean) / n;
        se += ((double)q[i] - f[i]) * ((double)q[i] - f[i]) / n;
    }
    return sqrt(se / var);
}

static lm_status quantize(const char *in, const char *out, const char *type, bool requant,
                          lm_quantize_stats *st) {
    lm_quantize_params p = lm_quantize_default_params();
    p.type = type;
    p.n_threads = 2;
    p.allow_requantize = requant;
    return lm_quantize_file(in, out, &p, st);
}

/* Quantize a model to every type, check the file and its logits. */
static void every_type(lm_tiny_spec spec, const char *tag, expect_fn expect) {
    char name[64];
    snprintf(name, sizeof name, "tiny-%s-source.gguf", tag);
    char *src = tmp_path(name);
    cr_assert(lm_tiny_write(&spec, src));
    int32_t nv = 0, nv2 = 0;
    float *ref = model_logits(src, &nv);
    for (size_t i = 0; i < N_CASES; i++) {
        const qcase *c = &cases[i];
        snprintf(name, sizeof name, "tiny-%s-%s.gguf", tag, c->name);
        char *dst = tmp_path(name);
        lm_quantize_stats st;
        cr_assert_eq(quantize(src, dst, c->name, false, &st), LM_OK, "%s: %s", c->name,
                     lm_last_error());
        double werr = check_tensors(src, dst, c, expect);
        float *lg = model_logits(dst, &nv2);
        cr_assert_eq(nv2, nv);
        double e = logit_err(lg, ref, nv);
        cr_log_info("%s %-6s: %d tensors converted, %d fell back, weights rel. RMS error "
                    "<= %.4g, logits %.4g",
                    tag, c->name, st.n_quantized, st.n_fallback, werr, e);
        cr_assert(e <= c->logit_err, "%s %s: logits error %.4g > %.4g", tag, c->name, e,
                  c->logit_err);
        cr_assert_eq(st.n_requantized, 0);
        free(lg);
        free(dst);
    }
    free(ref);
    free(src);
}

Test(quantize, every_type_wide_model) {
    every_type(wide_spec(), "wide", expect_wide);
}

Test(quantize, every_type_narrow_model_falls_back) {
    every_type(narrow_spec(), "narrow", expect_narrow);
}

/* ---- properties and failures ---------------------------------------------------------- */

static char *write_narrow(const char *name) {
    lm_tiny_spec spec = narrow_spec();
    char *p = tmp_path(name);
    cr_assert(lm_tiny_write(&spec, p));
    return p;
}

static char *tmp_suffix(const char *path, const char *suffix) {
    char *p = malloc(strlen(path) + strlen(suffix) + 1);
    cr_assert_not_null(p);
    sprintf(p, "%s%s", path, suffix);
    return p;
}

/* Nothing at out, and no temporary left beside it. */
static void assert_nothing_left(const char *out) {
    char *tmp = tmp_suffix(out, ".tmp");
    cr_assert(!exists(out), "%s exists", out);
    cr_assert(!exists(tmp), "%s left behind", tmp);
    free(tmp);
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    buf[len] = '\0';
    *n = (size_t)len;
    return buf;
}

Test(quantize, threads_do_not_change_the_bytes) {
    lm_tiny_spec spec = wide_spec();
    spec.n_layer = 2;
    char *src = tmp_path("src.gguf"), *a = tmp_path("t1.gguf"), *b = tmp_path("t2.gguf");
    cr_assert(lm_tiny_write(&spec, src));
    lm_quantize_params p = lm_quantize_default_params();
    p.type = "Q4_K_M";
    p.n_threads = 1;
    cr_assert_eq(lm_quantize_file(src, a, &p, NULL), LM_OK, "%s", lm_last_error());
    p.n_threads = 3;
    cr_assert_eq(lm_quantize_file(src, b, &p, NULL), LM_OK, "%s", lm_last_error());
    size_t na, nb;
    char *da = slurp(a, &na), *db = slurp(b, &nb);
    cr_assert_eq(na, nb);
    cr_assert(memcmp(da, db, na) == 0);
    free(da), free(db), free(src), free(a), free(b);
}

Test(quantize, bad_type_lists_the_valid_ones) {
    char *src = write_narrow("src.gguf"), *dst = tmp_path("out.gguf");
    cr_assert_eq(quantize(src, dst, "Q9_9", false, NULL), LM_ERR_INVALID_ARG);
    const char *e = lm_last_error();
    cr_assert(strstr(e, "Q9_9") && strstr(e, "valid types") && strstr(e, "Q4_K_M") &&
                  strstr(e, "BF16"),
              "%s", e);
    cr_assert_eq(quantize(src, dst, "", false, NULL), LM_ERR_INVALID_ARG);
    cr_assert_eq(quantize(src, dst, "Q4_K_X", false, NULL), LM_ERR_INVALID_ARG);
    assert_nothing_left(dst);
    free(src), free(dst);
}

Test(quantize, missing_input) {
    char *dst = tmp_path("out.gguf");
    cr_assert_eq(quantize("/nonexistent/model.gguf", dst, "Q8_0", false, NULL), LM_ERR_IO);
    cr_assert(strstr(lm_last_error(), "/nonexistent/model.gguf"), "%s", lm_last_error());
    assert_nothing_left(dst);
    cr_assert_eq(lm_quantize_file(NULL, dst, NULL, NULL), LM_ERR_INVALID_ARG);
    free(dst);
}

Test(quantize, unwritable_output_leaves_nothing) {
    char *src = write_narrow("src.gguf");
    /* a folder that does not exist: the temporary cannot be created */
    char *dst = tmp_path("no-such-folder/out.gguf");
    cr_assert_eq(quantize(src, dst, "Q8_0", false, NULL), LM_ERR_IO);
    cr_assert(strstr(lm_last_error(), "no-such-folder"), "%s", lm_last_error());
    assert_nothing_left(dst);
    /* a folder in the way: the temporary is written, the rename fails, it is removed */
    char *dir = tmp_path("a-folder");
    cr_assert_eq(mkdir(dir, 0755), 0);
    cr_assert_eq(quantize(src, dir, "Q8_0", false, NULL), LM_ERR_IO);
    struct stat sb;
    cr_assert(stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode));
    char *tmp = tmp_suffix(dir, ".tmp");
    cr_assert(!exists(tmp), "%s left behind", tmp);
    cr_assert_eq(rmdir(dir), 0);
    free(src), free(dst), free(dir), free(tmp);
}

static bool stop_after_3(const lm_quantize_progress *p, void *user) {
    (*(int *)user)++;
    return p->i_tensor < 3;
}

Test(quantize, interrupted_leaves_the_old_file) {
    char *src = write_narrow("src.gguf"), *dst = tmp_path("out.gguf");
    FILE *f = fopen(dst, "w");
    cr_assert_not_null(f);
    fputs("an older file", f);
    fclose(f);
    int calls = 0;
    lm_quantize_params p = lm_quantize_default_params();
    p.type = "Q4_0";
    p.progress = stop_after_3;
    p.progress_user = &calls;
    cr_assert_eq(lm_quantize_file(src, dst, &p, NULL), LM_ERR_INTERRUPTED);
    cr_assert_eq(calls, 4); /* the call before the first tensor, then three */
    size_t n;
    char *txt = slurp(dst, &n);
    cr_assert_str_eq(txt, "an older file");
    char *tmp = tmp_suffix(dst, ".tmp");
    cr_assert(!exists(tmp));
    /* a failed quantize (bad type) leaves it too */
    cr_assert_eq(quantize(src, dst, "nope", false, NULL), LM_ERR_INVALID_ARG);
    free(txt);
    txt = slurp(dst, &n);
    cr_assert_str_eq(txt, "an older file");
    free(txt), free(tmp), free(src), free(dst);
}

static char warn_buf[4096];
static void capture_log(lm_log_level level, const char *msg, void *user) {
    (void)user;
    if (level >= LM_LOG_WARN)
        strncat(warn_buf, msg, sizeof warn_buf - strlen(warn_buf) - 2), strcat(warn_buf, "\n");
}

Test(quantize, requantize_needs_consent_and_warns) {
    char *src = write_narrow("src.gguf"), *q8 = tmp_path("q8.gguf");
    char *q4 = tmp_path("q4.gguf"), *same = tmp_path("same.gguf");
    cr_assert_eq(quantize(src, q8, "Q8_0", false, NULL), LM_OK, "%s", lm_last_error());
    cr_assert_eq(quantize(q8, q4, "Q4_0", false, NULL), LM_ERR_UNSUPPORTED);
    cr_assert(strstr(lm_last_error(), "already quantized") &&
                  strstr(lm_last_error(), "--allow-requantize"),
              "%s", lm_last_error());
    assert_nothing_left(q4);
    /* to the type it already has: a copy, no consent needed */
    lm_quantize_stats st;
    cr_assert_eq(quantize(q8, same, "Q8_0", false, &st), LM_OK, "%s", lm_last_error());
    cr_assert_eq(st.n_quantized, 0);
    warn_buf[0] = '\0';
    lm_log_set(capture_log, NULL, LM_LOG_WARN);
    lm_status s = quantize(q8, q4, "Q4_0", true, &st);
    lm_log_set(NULL, NULL, LM_LOG_WARN);
    cr_assert_eq(s, LM_OK, "%s", lm_last_error());
    cr_assert(strstr(warn_buf, "re-quantizing"), "%s", warn_buf);
    cr_assert_gt(st.n_requantized, 0);
    /* the result against the F32 original: Q8_0 then Q4_0 is still within Q4_0's bound */
    check_tensors(src, q4, &cases[3], expect_narrow);
    free(src), free(q8), free(q4), free(same);
}

/* A file of one weight matrix (and a norm) made with the GGUF writer. */
static char *write_matrix(const char *name, int64_t ne0, int64_t ne1, float bad) {
    lm_gguf_writer *w = NULL;
    cr_assert_eq(lm_gguf_writer_create(3, &w), LM_OK);
    cr_assert_eq(lm_gguf_writer_add_str(w, "general.architecture", "llama"), LM_OK);
    float *x = malloc((size_t)(ne0 * ne1) * sizeof *x);
    cr_assert_not_null(x);
    lm_test_rng rng = {lm_test_seed()};
    lm_test_fill_normal(&rng, x, (size_t)(ne0 * ne1), 1.0f);
    x[2 * ne0 + 1] = bad; /* row 2 */
    int64_t ne[2] = {ne0, ne1}, ne_norm[1] = {ne0};
    cr_assert_eq(lm_gguf_writer_add_tensor(w, "blk.0.ffn_up.weight", LM_TYPE_F32, 2, ne, x), LM_OK);
    cr_assert_eq(lm_gguf_writer_add_tensor(w, "blk.0.ffn_norm.weight", LM_TYPE_F32, 1, ne_norm, x),
                 LM_OK);
    char *p = tmp_path(name);
    cr_assert_eq(lm_gguf_writer_write_file(w, p), LM_OK);
    lm_gguf_writer_free(w);
    free(x);
    return p;
}

Test(quantize, non_finite_weights_are_refused) {
    char *src = write_matrix("nan.gguf", 64, 4, NAN), *dst = tmp_path("out.gguf");
    cr_assert_eq(quantize(src, dst, "Q8_0", false, NULL), LM_ERR_MODEL);
    cr_assert(strstr(lm_last_error(), "blk.0.ffn_up.weight") && strstr(lm_last_error(), "row 2"),
              "%s", lm_last_error());
    assert_nothing_left(dst);
    free(src);
    src = write_matrix("inf.gguf", 64, 4, INFINITY);
    cr_assert_eq(quantize(src, dst, "Q4_0", false, NULL), LM_ERR_MODEL);
    assert_nothing_left(dst);
    free(src), free(dst);
}

static const char *type_of(const char *path, const char *tensor) {
    lm_gguf *g = NULL;
    cr_assert_eq(lm_gguf_open(path, &g), LM_OK, "%s", lm_last_error());
    const lm_gguf_tensor *t = lm_gguf_find_tensor(g, tensor);
    cr_assert_not_null(t);
    const char *n = lm_type_get((uint32_t)t->type).name;
    lm_gguf_close(g);
    return n;
}

Test(quantize, odd_rows_fall_back) {
    char *dst = tmp_path("out.gguf");
    lm_quantize_stats st;
    /* 96 columns: not a 256-block, a whole number of 32-blocks: Q4_K -> Q5_0 */
    char *src = write_matrix("w96.gguf", 96, 8, 0.5f);
    cr_assert_eq(quantize(src, dst, "Q4_K_S", false, &st), LM_OK, "%s", lm_last_error());
    cr_assert_str_eq(type_of(dst, "blk.0.ffn_up.weight"), "Q5_0");
    cr_assert_str_eq(type_of(dst, "blk.0.ffn_norm.weight"), "F32");
    cr_assert_eq(st.n_fallback, 1);
    free(src);
    /* 48 columns: no 32-block fits either: F16 */
    src = write_matrix("w48.gguf", 48, 8, 0.5f);
    cr_assert_eq(quantize(src, dst, "Q4_0", false, &st), LM_OK, "%s", lm_last_error());
    cr_assert_str_eq(type_of(dst, "blk.0.ffn_up.weight"), "F16");
    cr_assert_eq(st.n_fallback, 1);
    free(src), free(dst);
}

/* ---- the CLI -------------------------------------------------------------------------- */

static char *cli(int *rc, const char *args) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s quantize %s", lm_test_cli(), args);
    char *out = NULL;
    *rc = lm_test_run(cmd, &out);
    return out;
}

Test(quantize, cli_quantizes_and_summarises) {
    char *src = write_narrow("src.gguf"), *dst = tmp_path("out.gguf");
    char args[1024];
    int rc;
    snprintf(args, sizeof args, "'%s' '%s' q4_k_m -t 2", src, dst);
    char *out = cli(&rc, args);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "lumen: wrote") && strstr(out, "bits per weight") &&
                  strstr(out, "types:") && strstr(out, "fell back"),
              "%s", out);
    free(out);
    lm_model *m = NULL;
    cr_assert_eq(lm_model_load(dst, NULL, &m), LM_OK, "%s", lm_last_error());
    /* named by its file type, though most of its narrow tensors fell back to Q5_0 / Q8_0 */
    char desc[128];
    cr_assert_gt(lm_model_desc(m, desc, sizeof desc), 0);
    cr_assert(strstr(desc, " Q4_K_M") != NULL, "%s", desc);
    lm_model_free(m);
    /* wrong type, missing arguments, a quantized input without the flag */
    snprintf(args, sizeof args, "'%s' '%s.2' Q9_9", src, dst);
    out = cli(&rc, args);
    cr_assert_eq(rc, 1);
    cr_assert(strstr(out, "valid types") && strstr(out, "Q5_K_M"), "%s", out);
    free(out);
    snprintf(args, sizeof args, "'%s'", src);
    out = cli(&rc, args);
    cr_assert_eq(rc, 1);
    cr_assert(strstr(out, "IN.gguf OUT.gguf TYPE"), "%s", out);
    free(out);
    snprintf(args, sizeof args, "'%s' '%s.2' Q8_0", dst, dst);
    out = cli(&rc, args);
    cr_assert_eq(rc, 1);
    cr_assert(strstr(out, "--allow-requantize"), "%s", out);
    free(out);
    snprintf(args, sizeof args, "'%s' '%s.2' Q8_0 --allow-requantize", dst, dst);
    out = cli(&rc, args);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "warning") && strstr(out, "re-quantizing"), "%s", out);
    free(out);
    free(src), free(dst);
}

Test(quantize, cli_help_lists_every_type) {
    int rc;
    char *out = cli(&rc, "--help");
    cr_assert_eq(rc, 0);
    int32_t n;
    const lm_quantize_type *t = lm_quantize_types(&n);
    cr_assert_eq(n, 17);
    for (int32_t i = 0; i < n; i++) {
        char line[64];
        snprintf(line, sizeof line, "%-7s %6.2f", t[i].name, (double)t[i].bpw);
        cr_assert(strstr(out, line), "help lacks '%s':\n%s", line, out);
    }
    cr_assert(strstr(out, "--allow-requantize") && strstr(out, "--threads"), "%s", out);
    free(out);
}
