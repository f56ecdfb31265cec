/* Generated tiny models: Lumen's logits against an independent float64 llama forward pass
 * over the same dequantized weights, and model-level faults (a missing key or tensor, a
 * wrong shape or type) through the C API and the CLI, with the GGUF structural faults too. */
#include "helpers/gguf_faults.h"
#include "helpers/test_util.h"
#include "helpers/tiny_model.h"
#include "lumen.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- independent reference forward pass (float64) ------------------------------------- */

/* y[r] = sum_c W[r][c] x[c] for a row-major [rows][cols] W. */
static void ref_matvec(const float *W, const double *x, int rows, int cols, double *y) {
    for (int r = 0; r < rows; r++) {
        double s = 0;
        for (int c = 0; c < cols; c++) s += (double)W[(size_t)r * cols + c] * x[c];
        y[r] = s;
    }
}

static void ref_rmsnorm(const double *x, const float *w, int n, double eps, double *y) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double inv = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++) y[i] = x[i] * inv * (double)w[i];
}

/* Normal (GPT-J style) pairing: (x[2i], x[2i+1]) rotated by pos * base^(-2i/hd). */
static void ref_rope(double *x, int hd, int pos, double base) {
    for (int i = 0; i < hd / 2; i++) {
        double th = pos * pow(base, -2.0 * i / hd), c = cos(th), s = sin(th);
        double a = x[2 * i], b = x[2 * i + 1];
        x[2 * i] = a * c - b * s;
        x[2 * i + 1] = a * s + b * c;
    }
}

/* Logits of the last of n tokens (positions 0..n-1) into out[n_vocab]. */
static void ref_forward(const lm_tiny_model *m, const lm_token *toks, int n, double *out) {
    const lm_tiny_spec *s = &m->spec;
    int E = s->n_embd, hd = m->head_dim, nh = s->n_head, nkv = s->n_head_kv, F = s->n_ff;
    int group = nh / nkv;
    double *K = calloc((size_t)s->n_layer * n * nkv * hd, sizeof *K);
    double *V = calloc((size_t)s->n_layer * n * nkv * hd, sizeof *V);
    double *x = calloc((size_t)E, sizeof *x), *h = calloc((size_t)E, sizeof *h);
    double *q = calloc((size_t)nh * hd, sizeof *q), *att = calloc((size_t)nh * hd, sizeof *att);
    double *g = calloc((size_t)F, sizeof *g), *u = calloc((size_t)F, sizeof *u);
    double *sc = calloc((size_t)n, sizeof *sc), *tmp = calloc((size_t)E, sizeof *tmp);
    cr_assert(K && V && x && h && q && att && g && u && sc && tmp);
    for (int p = 0; p < n; p++) {
        for (int i = 0; i < E; i++) x[i] = m->tok_embd[(size_t)toks[p] * E + i];
        for (int il = 0; il < s->n_layer; il++) {
            const lm_tiny_layer *L = &m->layers[il];
            double *Kp = K + ((size_t)il * n + p) * nkv * hd,
                   *Vp = V + ((size_t)il * n + p) * nkv * hd;
            ref_rmsnorm(x, L->attn_norm, E, s->rms_eps, h);
            ref_matvec(L->wq, h, nh * hd, E, q);
            ref_matvec(L->wk, h, nkv * hd, E, Kp);
            ref_matvec(L->wv, h, nkv * hd, E, Vp);
            for (int hh = 0; hh < nh; hh++) ref_rope(q + hh * hd, hd, p, s->rope_base);
            for (int hh = 0; hh < nkv; hh++) ref_rope(Kp + hh * hd, hd, p, s->rope_base);
            for (int hh = 0; hh < nh; hh++) {
                int kh = hh / group; /* GQA: consecutive query heads share a KV head */
                double mx = -INFINITY, sum = 0;
                for (int t = 0; t <= p; t++) {
                    const double *kt = K + ((size_t)il * n + t) * nkv * hd + kh * hd;
                    double d = 0;
                    for (int i = 0; i < hd; i++) d += q[hh * hd + i] * kt[i];
                    sc[t] = d / sqrt((double)hd);
                    if (sc[t] > mx) mx = sc[t];
                }
                for (int t = 0; t <= p; t++) sum += (sc[t] = exp(sc[t] - mx));
                for (int i = 0; i < hd; i++) att[hh * hd + i] = 0;
                for (int t = 0; t <= p; t++) {
                    const double *vt = V + ((size_t)il * n + t) * nkv * hd + kh * hd;
                    for (int i = 0; i < hd; i++) att[hh * hd + i] += sc[t] / sum * vt[i];
                }
            }
            ref_matvec(L->wo, att, E, nh * hd, tmp);
            for (int i = 0; i < E; i++) x[i] += tmp[i];
            ref_rmsnorm(x, L->ffn_norm, E, s->rms_eps, h);
            ref_matvec(L->w_gate, h, F, E, g);
            ref_matvec(L->w_up, h, F, E, u);
            for (int i = 0; i < F; i++) g[i] = g[i] / (1.0 + exp(-g[i])) * u[i]; /* SwiGLU */
            ref_matvec(L->w_down, g, E, F, tmp);
            for (int i = 0; i < E; i++) x[i] += tmp[i];
        }
    }
    ref_rmsnorm(x, m->out_norm, E, s->rms_eps, h);
    for (int v = 0; v < m->n_vocab; v++) {
        double d = 0;
        for (int i = 0; i < E; i++) d += (double)m->output[(size_t)v * E + i] * h[i];
        out[v] = d;
    }
    free(K), free(V), free(x), free(h), free(q), free(att), free(g), free(u), free(sc), free(tmp);
}

/* ---- temp files ----------------------------------------------------------------------- */

static char tmpdir[64];

static void tmp_setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lm_tiny_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void tmp_teardown(void) {
    if (tmpdir[0]) rmdir(tmpdir); /* every test removes its own files */
    tmpdir[0] = '\0';
}

static const char *tmp_path(const char *name) {
    static char buf[160];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

TestSuite(tiny, .init = tmp_setup, .fini = tmp_teardown, .timeout = 120);

/* ---- (a) logits against the reference ------------------------------------------------- */

/* Lumen keeps K and V in f16 (relative rounding up to 4.9e-4 per element) and accumulates in
 * f32; the dequantized weights are shared with the reference, so weight quantization is not
 * part of the error. The error scales with the logits (tied models here reach |logit| ~60,
 * untied ~1), so the bound is relative to the largest |logit| of the step. Measured over 10
 * random seeds x 8 specs x 4 steps: at most 1.8e-4 (typically 5e-5 tied, 1.3e-4 untied). We
 * allow 8e-4 (~4x). A wrong RoPE pairing in the reference gives 0.08-0.24, a 100x margin. */
#define REF_RTOL 8e-4

static double check_spec(const lm_tiny_spec *spec, const char *label) {
    lm_tiny_model tm;
    cr_assert(lm_tiny_build(spec, &tm), "%s: build", label);
    const char *path = tmp_path("model.gguf");
    cr_assert(lm_tiny_write(spec, path), "%s: write", label);
    lm_model_params mp = lm_model_default_params();
    mp.n_threads = 2;
    lm_model *model = NULL;
    cr_assert_eq(lm_model_load(path, &mp, &model), LM_OK, "%s: %s", label, lm_last_error());
    cr_assert_eq(lm_model_n_vocab(model), LM_TINY_N_VOCAB);
    lm_context_params cp = lm_context_default_params();
    cp.n_ctx = 32;
    lm_context *ctx = NULL;
    cr_assert_eq(lm_context_create(model, &cp, &ctx), LM_OK, "%s", lm_last_error());

    /* "hi the" tokenized by Lumen's BPE (exercises the merges), then single-token steps. */
    lm_token toks[16];
    int32_t n = lm_tokenize(model, "hi the the", 10, toks, 16, false, false);
    cr_assert_eq(n, 4, "%s: %d tokens", label, n); /* h i Ġthe Ġthe */
    const lm_token more[] = {LM_TINY_TOK_IM_START, 'x' + LM_TINY_TOK_BYTE0, LM_TINY_TOK_HE};
    double ref[LM_TINY_N_VOCAB], worst = 0;
    int32_t done = 0;
    for (int step = 0; step < 4; step++) {
        int32_t k = step == 0 ? n : 1;
        if (step > 0) toks[n + step - 1] = more[step - 1];
        lm_batch b = lm_batch_simple(toks + done, k);
        cr_assert_eq(lm_decode(ctx, &b), LM_OK, "%s: %s", label, lm_last_error());
        done += k;
        const float *lg = lm_get_logits(ctx, -1);
        cr_assert_not_null(lg);
        ref_forward(&tm, toks, done, ref);
        double d = 0, mag = 0;
        for (int v = 0; v < LM_TINY_N_VOCAB; v++) {
            double e = fabs((double)lg[v] - ref[v]);
            if (!(e <= d)) d = e; /* NaN sticks */
            if (fabs(ref[v]) > mag) mag = fabs(ref[v]);
        }
        cr_expect(d <= REF_RTOL * mag,
                  "%s step %d (%d tokens): max |lumen - ref| = %.3g > "
                  "%.3g x max |logit| %.3g",
                  label, step, done, d, REF_RTOL, mag);
        cr_expect(mag > 0.5, "%s: logits too flat (%.3g) to test anything", label, mag);
        if (!(d / mag <= worst)) worst = d / mag;
    }
    fprintf(stderr, "[tiny] %-24s max |diff| / max |logit| = %.3g\n", label, worst);
    lm_context_free(ctx);
    lm_model_free(model);
    unlink(path);
    lm_tiny_free(&tm);
    return worst;
}

Test(tiny, logits_match_reference) {
    uint64_t seed = lm_test_seed();
    struct {
        const char *label;
        lm_type type;
        bool tied;
        int32_t n_head_kv;
    } rows[] = {
        {"F32 tied gqa", LM_TYPE_F32, true, 2},      {"Q8_0 tied gqa", LM_TYPE_Q8_0, true, 2},
        {"Q4_1 tied gqa", LM_TYPE_Q4_1, true, 2},    {"F32 untied mha", LM_TYPE_F32, false, 4},
        {"Q8_0 untied gqa", LM_TYPE_Q8_0, false, 2}, {"Q4_1 untied mha", LM_TYPE_Q4_1, false, 4},
        {"F16 tied mqa", LM_TYPE_F16, true, 1},      {"Q4_0 untied gqa", LM_TYPE_Q4_0, false, 2},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        lm_tiny_spec s = lm_tiny_default_spec();
        s.wtype = rows[i].type;
        s.tied = rows[i].tied;
        s.n_head_kv = rows[i].n_head_kv;
        s.seed = seed + i;
        check_spec(&s, rows[i].label);
    }
}

/* The generator is deterministic and the in-memory and file forms are the same bytes. */
Test(tiny, write_memory_matches_file) {
    lm_tiny_spec s = lm_tiny_default_spec();
    void *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    cr_assert(lm_tiny_write_memory(&s, &a, &na));
    cr_assert(lm_tiny_write_memory(&s, &b, &nb));
    cr_assert(na == nb && memcmp(a, b, na) == 0);
    const char *path = tmp_path("m.gguf");
    cr_assert(lm_tiny_write(&s, path));
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    char *c = malloc(na + 1);
    size_t nc = fread(c, 1, na + 1, f);
    fclose(f);
    unlink(path);
    cr_expect(nc == na && memcmp(a, c, na) == 0);
    free(a), free(b), free(c);
}

/* ---- (b) model-level faults through the C API ----------------------------------------- */

typedef struct tiny_fault {
    const char *name;
    const char *omit, *reshape, *retype;
    const char *u32_key;
    uint32_t u32_val;
    const char *str_key, *str_val;
    bool untied;
    lm_status status;
    const char *message;
} tiny_fault;

static const tiny_fault faults[] = {
    {"no context_length", .omit = "llama.context_length", .status = LM_ERR_MODEL,
     .message = "key 'llama.context_length' not found"},
    {"no embedding_length", .omit = "llama.embedding_length", .status = LM_ERR_MODEL,
     .message = "key 'llama.embedding_length' not found"},
    {"no block_count", .omit = "llama.block_count", .status = LM_ERR_MODEL,
     .message = "key 'llama.block_count' not found"},
    {"no feed_forward_length", .omit = "llama.feed_forward_length", .status = LM_ERR_MODEL,
     .message = "key 'llama.feed_forward_length' not found"},
    {"no head_count", .omit = "llama.attention.head_count", .status = LM_ERR_MODEL,
     .message = "key 'llama.attention.head_count' not found"},
    {"head_count % head_count_kv", .u32_key = "llama.attention.head_count", .u32_val = 5,
     .status = LM_ERR_MODEL,
     .message = "llama.attention.head_count (5) is not a multiple of head_count_kv (2)"},
    {"embedding_length % head_count", .u32_key = "llama.attention.head_count", .u32_val = 6,
     .status = LM_ERR_MODEL,
     .message = "llama.embedding_length (64) is not a multiple of head_count (6)"},
    {"head_count_kv > head_count", .u32_key = "llama.attention.head_count_kv", .u32_val = 8,
     .status = LM_ERR_MODEL,
     .message = "hyper-parameter llama.attention.head_count_kv = 8 is out of range [1, 4]"},
    {"context_length 0", .u32_key = "llama.context_length", .u32_val = 0, .status = LM_ERR_MODEL,
     .message = "hyper-parameter llama.context_length = 0 is out of range"},
    {"block_count too big", .u32_key = "llama.block_count", .u32_val = 100000,
     .status = LM_ERR_MODEL, .message = "llama.block_count = 100000 is out of range [1, 512]"},
    {"odd head size", .u32_key = "llama.attention.key_length", .u32_val = 15,
     .status = LM_ERR_MODEL, .message = "llama head size 15 is odd"},
    {"no token_embd", .omit = "token_embd.weight", .status = LM_ERR_MODEL,
     .message = "tensor 'token_embd.weight' is missing"},
    {"no output_norm", .omit = "output_norm.weight", .status = LM_ERR_MODEL,
     .message = "tensor 'output_norm.weight' is missing"},
    {"no attn_q", .omit = "blk.0.attn_q.weight", .status = LM_ERR_MODEL,
     .message = "tensor 'blk.0.attn_q.weight' is missing"},
    {"no ffn_down", .omit = "blk.1.ffn_down.weight", .status = LM_ERR_MODEL,
     .message = "tensor 'blk.1.ffn_down.weight' is missing"},
    {"no attn_norm", .omit = "blk.1.attn_norm.weight", .status = LM_ERR_MODEL,
     .message = "tensor 'blk.1.attn_norm.weight' is missing"},
    {"attn_q shape", .reshape = "blk.0.attn_q.weight", .status = LM_ERR_MODEL,
     .message = "tensor 'blk.0.attn_q.weight' has shape [64, 65], but the hyper-parameters "
                "need [64, 64]"},
    {"ffn_gate shape", .reshape = "blk.1.ffn_gate.weight", .status = LM_ERR_MODEL,
     .message = "tensor 'blk.1.ffn_gate.weight' has shape [64, 97], but the hyper-parameters "
                "need [64, 96]"},
    {"output_norm shape", .reshape = "output_norm.weight", .status = LM_ERR_MODEL,
     .message = "tensor 'output_norm.weight' has shape [65], but the hyper-parameters need [64]"},
    {"output shape", .reshape = "output.weight", .untied = true, .status = LM_ERR_MODEL,
     .message = "tensor 'output.weight' has shape [64, 263], but the hyper-parameters need "
                "[64, 262]"},
    {"token_embd rows", .reshape = "token_embd.weight", .status = LM_ERR_MODEL,
     .message = "tensor 'token_embd.weight' has 263 rows, but the vocabulary has 262 tokens"},
    {"IQ4_NL ffn_up", .retype = "blk.0.ffn_up.weight", .status = LM_ERR_UNSUPPORTED,
     .message = "tensor 'blk.0.ffn_up.weight' has type IQ4_NL, which Lumen cannot compute yet"},
    {"IQ4_NL attn_v", .retype = "blk.1.attn_v.weight", .status = LM_ERR_UNSUPPORTED,
     .message = "tensor 'blk.1.attn_v.weight' has type IQ4_NL"},
    {"unknown architecture", .str_key = "general.architecture", .str_val = "mamba9",
     .status = LM_ERR_UNSUPPORTED, .message = "architecture 'mamba9' is not supported"},
    {"no architecture", .omit = "general.architecture", .status = LM_ERR_MODEL,
     .message = "key 'general.architecture' not found"},
    {"no tokens", .omit = "tokenizer.ggml.tokens", .status = LM_ERR_MODEL,
     .message = "tokenizer: missing key 'tokenizer.ggml.tokens'"},
    {"vocab_size != tokens", .u32_key = "llama.vocab_size", .u32_val = 300,
     .status = LM_ERR_TOKENIZER,
     .message = "'llama.vocab_size' = 300 but tokenizer.ggml.tokens has 262"},
    {"no tokenizer model", .omit = "tokenizer.ggml.model", .status = LM_ERR_MODEL,
     .message = "key 'tokenizer.ggml.model' not found"},
    {"unknown tokenizer model", .str_key = "tokenizer.ggml.model", .str_val = "bert9",
     .status = LM_ERR_TOKENIZER, .message = "tokenizer.ggml.model 'bert9' is not supported"},
};
#define N_FAULTS (sizeof faults / sizeof faults[0])

static lm_tiny_spec fault_spec(const tiny_fault *f) {
    lm_tiny_spec s = lm_tiny_default_spec();
    s.omit = f->omit;
    s.reshape = f->reshape;
    s.retype = f->retype;
    s.set_u32_key = f->u32_key;
    s.set_u32_val = f->u32_val;
    s.set_str_key = f->str_key;
    s.set_str_val = f->str_val;
    if (f->untied) s.tied = false;
    return s;
}

/* The unbroken spec loads: every fault below is the fault itself. */
Test(tiny, default_spec_loads) {
    lm_tiny_spec s = lm_tiny_default_spec();
    const char *path = tmp_path("ok.gguf");
    cr_assert(lm_tiny_write(&s, path));
    lm_model *m = NULL;
    cr_expect_eq(lm_model_load(path, NULL, &m), LM_OK, "%s", lm_last_error());
    cr_expect_str_eq(lm_model_arch(m), "llama");
    cr_expect_eq(lm_model_n_layer(m), 2);
    lm_model_free(m);
    char cmd[512], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s info -m %s", lm_test_cli(), path);
    cr_expect_eq(lm_test_run(cmd, &out), 0, "%s", out);
    free(out);
    unlink(path);
}

Test(tiny, model_faults_c_api) {
    cr_assert_geq(N_FAULTS, 15);
    const char *path = tmp_path("fault.gguf");
    for (size_t i = 0; i < N_FAULTS; i++) {
        const tiny_fault *f = &faults[i];
        lm_tiny_spec s = fault_spec(f);
        cr_assert(lm_tiny_write(&s, path), "%s: write", f->name);
        lm_model *m = (lm_model *)(uintptr_t)1; /* must come back NULL */
        lm_status st = lm_model_load(path, NULL, &m);
        cr_expect_eq(st, f->status, "%s: status %s, want %s (%s)", f->name, lm_status_str(st),
                     lm_status_str(f->status), lm_last_error());
        cr_expect_null(m, "%s: *out not NULL", f->name);
        cr_expect(strstr(lm_last_error(), f->message) != NULL, "%s: '%s' lacks '%s'", f->name,
                  lm_last_error(), f->message);
        if (st == LM_OK) lm_model_free(m);
        unlink(path);
    }
}

/* ---- (c) the same faults through the CLI ---------------------------------------------- */

/* Runs `lumen <cmd> -m path <extra>`; expects exit 1 and msg on stderr. */
static void expect_cli_fails(const char *name, const char *sub, const char *path, const char *msg) {
    char cmd[1024], *err = NULL;
    const char *extra = strcmp(sub, "run") == 0 ? "-p hi -n 1" : "";
    /* Inside the group stderr goes to lm_test_run's pipe and stdout nowhere, so msg must
     * be on stderr. */
    snprintf(cmd, sizeof cmd, "{ %s %s -m '%s' %s 2>&1 >/dev/null; }", lm_test_cli(), sub, path,
             extra);
    int rc = lm_test_run(cmd, &err);
    cr_expect_eq(rc, 1, "%s: `lumen %s` exited %d: %s", name, sub, rc, err);
    cr_expect(err && strstr(err, msg), "%s: `lumen %s` stderr lacks '%s': %s", name, sub, msg, err);
    free(err);
}

Test(tiny, model_faults_cli) {
    const char *path = tmp_path("fault.gguf");
    for (size_t i = 0; i < N_FAULTS; i++) {
        lm_tiny_spec s = fault_spec(&faults[i]);
        cr_assert(lm_tiny_write(&s, path), "%s: write", faults[i].name);
        expect_cli_fails(faults[i].name, "info", path, faults[i].message);
        expect_cli_fails(faults[i].name, "run", path, faults[i].message);
        unlink(path);
    }
}

Test(tiny, gguf_faults_cli) {
    const char *path = tmp_path("gguf_fault.gguf");
    cr_assert_gt(lm_gguf_n_faults, 0);
    for (size_t i = 0; i < lm_gguf_n_faults; i++) {
        cr_assert(lm_gguf_fault_write(i, path), "%s: write", lm_gguf_faults[i].name);
        expect_cli_fails(lm_gguf_faults[i].name, "info", path, lm_gguf_faults[i].message);
        expect_cli_fails(lm_gguf_faults[i].name, "run", path, lm_gguf_faults[i].message);
        unlink(path);
    }
}
