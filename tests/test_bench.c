/* lumen bench as scripts use it: the JSON and CSV records of a tiny generated model (every
 * field present with its type and unit, numbers positive and consistent with each other:
 * means of the samples, bandwidth = weight bytes per token x tokens/s, the weight bytes the
 * model's own tensor table gives), a reduced --ops run, and bad options. Speed itself is
 * never asserted (the machine is shared); only what the numbers must satisfy. */
#include "helpers/test_util.h"
#include "helpers/tiny_model.h"

#include "lumen.h"
#include "../runtime/bench.h" /* lm__roof_alias */
#include "../runtime/model.h" /* the layers it aliases */

#include <criterion/criterion.h>
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- a small JSON reader (the suite has no JSON library) ---- */

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jval {
    jtype t;
    double num;
    char *str;
    struct jval *items; /* array items / object values */
    char **keys;        /* object keys */
    int n;
} jval;

typedef struct {
    const char *p;
    int err;
} jparser;

static void jws(jparser *j) {
    while (isspace((unsigned char)*j->p)) j->p++;
}

static jval jparse(jparser *j);

static char *jstring(jparser *j) {
    if (*j->p != '"') {
        j->err = 1;
        return NULL;
    }
    j->p++;
    size_t cap = 64, n = 0;
    char *s = malloc(cap);
    while (*j->p && *j->p != '"') {
        char c = *j->p++;
        if (c == '\\') {
            c = *j->p++;
            if (c == 'u') { /* the writer escapes control characters only */
                c = (char)strtol((char[5]){j->p[0], j->p[1], j->p[2], j->p[3], 0}, NULL, 16);
                j->p += 4;
            } else if (c == 'n')
                c = '\n';
            else if (c == 't')
                c = '\t';
        }
        if (n + 2 > cap) s = realloc(s, cap *= 2);
        s[n++] = c;
    }
    if (*j->p != '"')
        j->err = 1;
    else
        j->p++;
    s[n] = '\0';
    return s;
}

static void jpush(jval *v, jval item, char *key) {
    v->items = realloc(v->items, (size_t)(v->n + 1) * sizeof *v->items);
    v->keys = realloc(v->keys, (size_t)(v->n + 1) * sizeof *v->keys);
    v->items[v->n] = item;
    v->keys[v->n++] = key;
}

static jval jparse(jparser *j) {
    jval v = {0};
    jws(j);
    char c = *j->p;
    if (c == '{' || c == '[') {
        v.t = c == '{' ? J_OBJ : J_ARR;
        j->p++;
        jws(j);
        if (*j->p == (c == '{' ? '}' : ']')) {
            j->p++;
            return v;
        }
        for (;;) {
            char *key = NULL;
            if (v.t == J_OBJ) {
                jws(j);
                key = jstring(j);
                jws(j);
                if (*j->p++ != ':') j->err = 1;
            }
            jpush(&v, jparse(j), key);
            jws(j);
            if (*j->p == ',') {
                j->p++;
                continue;
            }
            if (*j->p++ != (v.t == J_OBJ ? '}' : ']')) j->err = 1;
            break;
        }
    } else if (c == '"') {
        v.t = J_STR;
        v.str = jstring(j);
    } else if (!strncmp(j->p, "null", 4)) {
        v.t = J_NULL;
        j->p += 4;
    } else if (!strncmp(j->p, "true", 4) || !strncmp(j->p, "false", 5)) {
        v.t = J_BOOL;
        v.num = *j->p == 't';
        j->p += *j->p == 't' ? 4 : 5;
    } else {
        char *end;
        v.t = J_NUM;
        v.num = strtod(j->p, &end);
        if (end == j->p) j->err = 1;
        j->p = end;
    }
    return v;
}

static void jfree(jval *v) {
    for (int i = 0; i < v->n; i++) {
        jfree(&v->items[i]);
        free(v->keys[i]);
    }
    free(v->items), free(v->keys), free(v->str);
}

/* The whole text must be one JSON value. */
static jval jparse_all(const char *text) {
    jparser j = {text, 0};
    jval v = jparse(&j);
    jws(&j);
    cr_assert(!j.err && *j.p == '\0', "not valid JSON (at offset %ld): %s", (long)(j.p - text),
              text);
    return v;
}

static const jval *jget(const jval *obj, const char *key, jtype t) {
    for (int i = 0; i < obj->n; i++)
        if (!strcmp(obj->keys[i], key)) {
            cr_assert_eq(obj->items[i].t, t, "field '%s' has JSON type %d, expected %d", key,
                         (int)obj->items[i].t, (int)t);
            return &obj->items[i];
        }
    cr_assert_fail("field '%s' missing", key);
    return NULL;
}

static double jnum(const jval *o, const char *key) {
    return jget(o, key, J_NUM)->num;
}
static const char *jstr(const jval *o, const char *key) {
    return jget(o, key, J_STR)->str;
}

/* Well within the rounding of the printed numbers (%.10g) and of the sums. */
static void expect_near(double got, double want, const char *what) {
    cr_expect(fabs(got - want) <= 1e-7 * fabs(want) + 1e-9, "%s: %.9g vs %.9g", what, got, want);
}

/* ---- the tiny model and the command ---- */

static char g_model[64];
static char g_model_untied[64];

static void write_model(char *path, bool tied) {
    strcpy(path, "/tmp/lumen_bench_XXXXXX.gguf");
    int fd = mkstemps(path, 5);
    cr_assert(fd >= 0);
    close(fd);
    lm_tiny_spec spec = lm_tiny_default_spec();
    spec.tied = tied;
    cr_assert(lm_tiny_write(&spec, path), "cannot write %s", path);
}

static void setup(void) {
    write_model(g_model, true);
    write_model(g_model_untied, false);
}

static void teardown(void) {
    unlink(g_model);
    unlink(g_model_untied);
}

TestSuite(bench, .init = setup, .fini = teardown, .timeout = 300);

/* Run `lumen bench ARGS`; stdout only when quiet_stderr (stderr dropped). */
static char *bench(int *rc, bool stdout_only, const char *fmt, ...) {
    char args[2048], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    if (stdout_only)
        snprintf(cmd, sizeof cmd, "(%s bench %s 2>/dev/null)", lm_test_cli(), args);
    else
        snprintf(cmd, sizeof cmd, "%s bench %s", lm_test_cli(), args);
    char *out = NULL;
    *rc = lm_test_run(cmd, &out);
    return out;
}

/* Weight bytes a decode step reads, from the model's own tensor table. */
static double weight_bytes(const char *path, double *size) {
    lm_model_params mp = lm_model_default_params();
    mp.n_threads = 1;
    lm_model *m = NULL;
    cr_assert_eq(lm_model_load(path, &mp, &m), LM_OK, "%s", lm_last_error());
    double all = 0, embd = 0, embd_row = 0;
    bool tied = true;
    for (int32_t i = 0; i < lm_model_tensor_count(m); i++) {
        lm_tensor_desc d;
        cr_assert_eq(lm_model_tensor_info(m, i, &d), LM_OK);
        all += (double)d.n_bytes;
        if (!strcmp(d.name, "output.weight")) tied = false;
        if (!strcmp(d.name, "token_embd.weight"))
            embd = (double)d.n_bytes, embd_row = (double)d.n_bytes / (double)d.ne[1];
    }
    *size = (double)lm_model_size(m);
    lm_model_free(m);
    return tied ? all : all - embd + embd_row;
}

/* KV-cache bytes of one cached position over all layers: F16 K and V rows of every kv head */
static double kv_bytes_per_position(void) {
    const lm_tiny_spec sp = lm_tiny_default_spec();
    const int hd = sp.head_dim ? sp.head_dim : sp.n_embd / sp.n_head;
    return (double)sp.n_layer * sp.n_head_kv * 2.0 * hd * 2.0;
}

static void check_model_record(const jval *r, const char *model, int pp, int tg, int depth) {
    cr_assert_eq(r->t, J_OBJ);
    cr_expect_str_eq(jstr(r, "lumen_version"), LM_VERSION_STRING);
    cr_expect_str_eq(jstr(r, "model_file"), model);
    cr_expect(strstr(jstr(r, "model_desc"), "llama") != NULL);
    cr_expect_str_eq(jstr(r, "backend"), "cpu");
    cr_expect_gt(strlen(jstr(r, "device")), 0);
    cr_expect_eq(jnum(r, "n_threads"), 2);
    cr_expect_eq(jnum(r, "peak_bandwidth_threads"), 2, "the probe runs with the run's threads");
    cr_expect_eq(jnum(r, "peak_bandwidth_buffer_bytes"), 64 << 20);
    cr_expect_gt(jnum(r, "peak_bandwidth_gb_per_s"), 0);
    cr_expect_gt(jnum(r, "peak_bandwidth_min_gb_per_s"), 0);
    cr_expect_leq(jnum(r, "peak_bandwidth_min_gb_per_s"), jnum(r, "peak_bandwidth_gb_per_s"));
    cr_expect_geq(jnum(r, "peak_bandwidth_probes"), 2, "before the tests and after each");
    /* the compute roof runs with each probe when the run decodes */
    cr_expect_eq(jnum(r, "decode_roof_runs"), jnum(r, "peak_bandwidth_probes"));
    cr_expect_gt(jnum(r, "decode_roof_gb_per_s"), 0);
    cr_expect_gt(jnum(r, "decode_roof_min_gb_per_s"), 0);
    cr_expect_leq(jnum(r, "decode_roof_min_gb_per_s"), jnum(r, "decode_roof_gb_per_s"));
    cr_expect_gt(jnum(r, "model_n_params"), 0);
    char test[48];
    int k = snprintf(test, sizeof test, pp ? "pp%d" : "tg%d", pp ? pp : tg);
    if (depth) snprintf(test + k, sizeof test - (size_t)k, " @ d%d", depth);
    cr_expect_str_eq(jstr(r, "test"), test);
    cr_expect_eq(jnum(r, "n_prompt"), pp);
    cr_expect_eq(jnum(r, "n_gen"), tg);
    cr_expect_eq(jnum(r, "n_depth"), depth);
    cr_expect_eq(jnum(r, "n_reps"), 2);

    /* the mean and deviation are those of the samples; ms and tok/s describe the same reps */
    const jval *s = jget(r, "samples_tok_per_s", J_ARR);
    cr_assert_eq(s->n, 2);
    double sum = 0, ms = 0;
    for (int i = 0; i < s->n; i++) {
        cr_assert_eq(s->items[i].t, J_NUM);
        cr_expect_gt(s->items[i].num, 0);
        sum += s->items[i].num;
        ms += (pp ? pp : tg) * 1e3 / s->items[i].num;
    }
    const double avg = jnum(r, "avg_tok_per_s");
    expect_near(avg, sum / 2, "avg_tok_per_s = mean of the samples");
    /* the deviation of two close samples is their small difference: bound by the samples'
     * own rounding (10 digits), not relative to the deviation */
    const double sd = jnum(r, "sd_tok_per_s"),
                 sd_want = fabs(s->items[0].num - s->items[1].num) / sqrt(2.0);
    cr_expect(fabs(sd - sd_want) <= 2e-9 * fmax(s->items[0].num, s->items[1].num) + 1e-7 * sd_want,
              "sd_tok_per_s = sample standard deviation: %.9g vs %.9g", sd, sd_want);
    expect_near(jnum(r, "avg_ms"), ms / 2, "avg_ms = mean time of the repetitions");
    cr_expect_geq(jnum(r, "sd_ms"), 0);

    double size;
    const double wb = weight_bytes(model, &size);
    cr_expect_eq(jnum(r, "model_size_bytes"), size);
    cr_expect_eq(jnum(r, "weight_bytes_per_token"), wb);
    if (pp) { /* bandwidth is a decode figure */
        jget(r, "decode_step_roof_gb_per_s", J_NULL);
        jget(r, "decode_step_roof_min_gb_per_s", J_NULL);
        cr_expect_eq(jnum(r, "decode_step_roof_runs"), 0);
        cr_expect_eq(jnum(r, "decode_step_roof_layer_kinds"), 0);
        jget(r, "bandwidth_gb_per_s", J_NULL);
        jget(r, "bandwidth_pct_of_peak", J_NULL);
        jget(r, "kv_bytes_per_token", J_NULL);
        jget(r, "bandwidth_kv_gb_per_s", J_NULL);
        jget(r, "bandwidth_kv_pct_of_peak", J_NULL);
        jget(r, "bandwidth_pct_of_roofline", J_NULL);
        cr_expect_str_eq(jstr(r, "decode_bound"), "");
        return;
    }
    const double bw = jnum(r, "bandwidth_gb_per_s");
    expect_near(bw, wb * avg / 1e9, "bandwidth = weight bytes per token x tok/s");
    expect_near(jnum(r, "bandwidth_pct_of_peak"), 100 * bw / jnum(r, "peak_bandwidth_gb_per_s"),
                "% of peak = bandwidth / probe");
    /* the timed steps attend over depth + the 4-token prompt + i positions, and their own */
    double kv = 0;
    for (int i = 0; i < tg; i++) kv += (depth + 4 + i + 1) * kv_bytes_per_position();
    expect_near(jnum(r, "kv_bytes_per_token"), kv / tg, "KV bytes = mean positions x row bytes");
    const double bwkv = jnum(r, "bandwidth_kv_gb_per_s");
    expect_near(bwkv, (wb + kv / tg) * avg / 1e9, "bandwidth +KV = (weights + KV) x tok/s");
    expect_near(jnum(r, "bandwidth_kv_pct_of_peak"),
                100 * bwkv / jnum(r, "peak_bandwidth_gb_per_s"), "% +KV = bandwidth +KV / probe");
    /* the roofline is the lower of the probe and the step roof (the whole step in cache; the
     * tiny model's layers are all alike), and names it */
    const double peak = jnum(r, "peak_bandwidth_gb_per_s"),
                 roof = jnum(r, "decode_step_roof_gb_per_s");
    cr_expect_gt(roof, 0);
    cr_expect_eq(jnum(r, "decode_step_roof_runs"), 2, "before the repetitions and after them");
    cr_expect_gt(jnum(r, "decode_step_roof_min_gb_per_s"), 0);
    cr_expect_leq(jnum(r, "decode_step_roof_min_gb_per_s"), roof);
    cr_expect_eq(jnum(r, "decode_step_roof_layer_kinds"), 1);
    cr_expect_str_eq(jstr(r, "decode_bound"), peak <= roof ? "memory" : "compute");
    expect_near(jnum(r, "bandwidth_pct_of_roofline"), 100 * bw / fmin(peak, roof),
                "% of roofline = bandwidth / min(probe, step roof)");
}

Test(bench, json_records_are_complete_and_consistent) {
    const char *models[2] = {g_model, g_model_untied};
    for (int k = 0; k < 2; k++) {
        int rc;
        char *out =
            bench(&rc, true, "-m %s -p 16 -n 8 -r 2 -t 2 -o json --probe-mib 64 -q", models[k]);
        cr_assert_eq(rc, 0, "%s", out);
        jval v = jparse_all(out);
        cr_assert_eq(v.t, J_ARR);
        cr_assert_eq(v.n, 2, "one record for pp16 and one for tg8: %s", out);
        check_model_record(&v.items[0], models[k], 16, 0, 0);
        check_model_record(&v.items[1], models[k], 0, 8, 0);
        jfree(&v);
        free(out);
    }
}

/* -d: each test again from a cache already holding that many positions, named as
 * llama-bench names them, with the KV reads its steps add. */
Test(bench, depth_runs_each_test_from_a_filled_cache) {
    int rc;
    char *out =
        bench(&rc, true, "-m %s -p 16 -n 8 -d 0,24 -r 2 -t 2 -o json --probe-mib 64 -q", g_model);
    cr_assert_eq(rc, 0, "%s", out);
    jval v = jparse_all(out);
    cr_assert_eq(v.n, 4, "pp16, tg8, pp16 @ d24, tg8 @ d24: %s", out);
    check_model_record(&v.items[0], g_model, 16, 0, 0);
    check_model_record(&v.items[1], g_model, 0, 8, 0);
    check_model_record(&v.items[2], g_model, 16, 0, 24);
    check_model_record(&v.items[3], g_model, 0, 8, 24);
    jfree(&v);
    free(out);
    /* the context holds the depth and the longest test: past the model's training length
     * bench refuses before it loads a cache */
    const int train = lm_tiny_default_spec().n_ctx;
    out = bench(&rc, false, "-m %s -p 0 -n 8 -d %d -r 1 -t 1 --probe-mib 64 -q", g_model, train);
    cr_expect_neq(rc, 0, "%s", out);
    char want[128];
    snprintf(want, sizeof want, "needs %d positions", train + 12);
    cr_expect(strstr(out, want) && strstr(out, "n_ctx_train"), "%s", out);
    free(out);
    out = bench(&rc, false, "-m %s -d x -q", g_model);
    cr_expect_neq(rc, 0, "%s", out);
    cr_expect(strstr(out, "-d"), "%s", out);
    free(out);
}

/* The KV bytes a decode step reads: every layer's K and V rows of the positions it attends
 * to, at most the window on a sliding layer (Gemma 3: layers 0-4 and 6 slide, 5 is global). */
Test(bench, kv_read_bytes_counts_windows) {
    char path[] = "/tmp/lumen_kvread_XXXXXX.gguf";
    int fd = mkstemps(path, 5);
    cr_assert(fd >= 0);
    close(fd);
    lm_tiny_spec spec = lm_tiny_default_spec();
    spec.arch = "gemma3", spec.n_layer = 7, spec.n_head_kv = 1, spec.head_dim = 32, spec.n_swa = 8;
    cr_assert(lm_tiny_write(&spec, path), "cannot write %s", path);
    lm_model_params mp = lm_model_default_params();
    mp.n_threads = 1;
    lm_model *m = NULL;
    cr_assert_eq(lm_model_load(path, &mp, &m), LM_OK, "%s", lm_last_error());
    lm_context_params cp = lm_context_default_params();
    cp.n_ctx = 64;
    lm_context *ctx = NULL;
    cr_assert_eq(lm_context_create(m, &cp, &ctx), LM_OK, "%s", lm_last_error());
    const uint64_t row = 1 * 2 * 32 * 2; /* a position of one layer: F16 K and V, 1 kv head */
    cr_expect_eq(lm_kv_read_bytes(ctx, 3), 7 * 4 * row, "4 positions on every layer");
    cr_expect_eq(lm_kv_read_bytes(ctx, 40), (6 * 8 + 41) * row, "the window on 6 layers");
    cr_expect_eq(lm_kv_read_bytes(ctx, -1), 0);
    cr_expect_eq(lm_kv_read_bytes(NULL, 3), 0);
    lm_context_free(ctx);
    lm_model_free(m);
    unlink(path);
}

/* A model of the tests' files, run on 2 threads (a tokenizer alone when vocab_only) */
static lm_model *load_2_threads(const char *path, bool vocab_only) {
    lm_model_params mp = lm_model_default_params();
    mp.n_threads = 2;
    mp.vocab_only = vocab_only;
    lm_model *m = NULL;
    cr_assert_eq(lm_model_load(path, &mp, &m), LM_OK, "%s: %s", path, lm_last_error());
    return m;
}

static bool tensor_named(const lm_model *m, const char *name, lm_tensor_desc *out) {
    for (int32_t i = 0; i < lm_model_tensor_count(m); i++)
        if (lm_model_tensor_info(m, i, out) == LM_OK && !strcmp(out->name, name)) return true;
    return false;
}

/* Seconds of the fastest of 12 single-token decode steps (after a 4-token prompt) */
static double best_step_s(lm_model *m) {
    lm_context *ctx = NULL;
    lm_context_params cp = lm_context_default_params();
    cp.n_ctx = 64;
    cr_assert_eq(lm_context_create(m, &cp, &ctx), LM_OK, "%s", lm_last_error());
    lm_token t[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    lm_batch b = lm_batch_simple(t, 4);
    cr_assert_eq(lm_decode(ctx, &b), LM_OK, "%s", lm_last_error());
    double best = 1e30;
    for (int i = 4; i < 16; i++) {
        struct timespec t0, t1;
        b = lm_batch_simple(t + i, 1);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        cr_assert_eq(lm_decode(ctx, &b), LM_OK, "%s", lm_last_error());
        clock_gettime(CLOCK_MONOTONIC, &t1);
        best = fmin(best, (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9);
    }
    lm_context_free(ctx);
    return best;
}

/* The compute roof runs a decode step's matrix ops as the forward pass calls them: the bytes
 * it counts are the projections of every layer and the head (token_embd when tied), from the
 * model's own table, and it times one of each distinct op (q, k, v together; wo; gate and up
 * together; down; the head), ops alike in their weights' types and shapes timed once. Those ops
 * alone, in cache, cannot take longer than whole decode steps of the same (cache-sized) model: the
 * roof is at least the step's matrix bytes over its fastest step (half of it: the machine is
 * shared). */
Test(bench, decode_roof_counts_the_step_matrices) {
    static const char *ops[4][3] = {
        {"attn_q", "attn_k", "attn_v"}, {"attn_output"}, {"ffn_gate", "ffn_up"}, {"ffn_down"}};
    const char *models[2] = {g_model, g_model_untied};
    for (int k = 0; k < 2; k++) {
        lm_model *m = load_2_threads(models[k], false);
        lm_tensor_desc d;
        const bool tied = !tensor_named(m, "output.weight", &d);
        cr_assert_eq(tied, k == 0, "the first model ties its head");
        cr_assert(tensor_named(m, tied ? "token_embd.weight" : "output.weight", &d));
        double want = (double)d.n_bytes; /* the head */
        char seen[64][160];
        int n_seen = 0;
        for (int l = 0; l < lm_tiny_default_spec().n_layer; l++)
            for (int o = 0; o < 4; o++) {
                char sig[160] = "";
                for (int p = 0; p < 3 && ops[o][p]; p++) {
                    char name[64];
                    snprintf(name, sizeof name, "blk.%d.%s.weight", l, ops[o][p]);
                    cr_assert(tensor_named(m, name, &d), "%s", name);
                    want += (double)d.n_bytes;
                    const size_t at = strlen(sig);
                    snprintf(sig + at, sizeof sig - at, "%s %lld %lld;", d.type, (long long)d.ne[0],
                             (long long)d.ne[1]);
                }
                bool dup = false;
                for (int j = 0; j < n_seen; j++) dup |= !strcmp(seen[j], sig);
                if (!dup) snprintf(seen[n_seen++], sizeof seen[0], "%s", sig);
            }
        lm_bench_roof r;
        cr_assert_eq(lm_bench_decode_roof(m, 0.01, &r), LM_OK, "%s", lm_last_error());
        cr_expect_eq((double)r.step_bytes, want, "%s: %llu bytes, expected %.0f", models[k],
                     (unsigned long long)r.step_bytes, want);
        cr_expect_eq(r.n_ops, n_seen + 1, "distinct ops: %d, expected %d and the head", r.n_ops,
                     n_seen);
        const double floor = 0.5 * want / best_step_s(m);
        cr_expect(isfinite(r.bytes_per_s) && r.bytes_per_s >= floor,
                  "roof %.3g B/s below the step's matrix bytes over its fastest step, %.3g",
                  r.bytes_per_s, floor / 0.5);
        lm_model_free(m);
    }
    lm_bench_roof r;
    cr_expect_eq(lm_bench_decode_roof(NULL, 0.01, &r), LM_ERR_INVALID_ARG);
    cr_expect(strstr(lm_last_error(), "NULL") != NULL, "%s", lm_last_error());
    /* a tokenizer-only model has no weights to time: an error, not a crash */
    lm_model_params mp = lm_model_default_params();
    mp.vocab_only = true;
    lm_model *m = NULL;
    cr_assert_eq(lm_model_load(g_model, &mp, &m), LM_OK, "%s", lm_last_error());
    cr_expect_eq(lm_bench_decode_roof(m, 0.01, &r), LM_ERR_INVALID_ARG);
    cr_expect(strstr(lm_last_error(), "vocab_only") != NULL, "%s", lm_last_error());
    lm_model_free(m);
}

/* Distinct layers of m by the types and shapes of their tensors, from the tensor table */
static int layer_kinds(const lm_model *m, int n_layer) {
    char sig[64][512];
    int kinds = 0;
    for (int l = 0; l < n_layer && l < 64; l++) {
        char pre[32], *o = sig[kinds];
        size_t at = 0;
        snprintf(pre, sizeof pre, "blk.%d.", l);
        o[0] = '\0';
        lm_tensor_desc d;
        for (int32_t i = 0; i < lm_model_tensor_count(m); i++)
            if (lm_model_tensor_info(m, i, &d) == LM_OK && !strncmp(d.name, pre, strlen(pre)))
                at += (size_t)snprintf(o + at, sizeof sig[0] - at, "%s %s %lld %lld;",
                                       d.name + strlen(pre), d.type, (long long)d.ne[0],
                                       (long long)d.ne[1]);
        bool seen = false;
        for (int j = 0; j < kinds; j++) seen |= !strcmp(sig[j], o);
        kinds += !seen;
    }
    return kinds;
}

/* The step roof runs the model's whole decode step with its weights in cache. A tiny model is
 * in cache anyway and its head fits the budget whole, so the step it times is the real step's
 * work: its mean step lies near the fastest real step (within [0.3, 5] x: a mean is not a
 * minimum; an accounting error of 10 x leaves it). The tests share two cores, so a pair of
 * timings that another test's burst skewed is taken again, up to three times. Which weights
 * each layer reads is checked exactly below. */
Test(bench, decode_step_roof_runs_the_whole_step) {
    const char *models[2] = {g_model, g_model_untied};
    for (int k = 0; k < 2; k++) {
        lm_model *m = load_2_threads(models[k], false);
        lm_bench_step_roof r;
        double roof[3] = {0}, best[3] = {0};
        bool near = false;
        int tries = 0;
        for (; tries < 3 && !near; tries++) {
            cr_assert_eq(lm_bench_decode_step_roof(m, NULL, 4, 12, 0.05, &r), LM_OK, "%s",
                         lm_last_error());
            roof[tries] = r.step_s, best[tries] = fmin(best_step_s(m), best_step_s(m));
            near = r.step_s >= 0.3 * best[tries] && r.step_s <= 5 * best[tries];
        }
        cr_expect_eq(r.layer_kinds, 1, "the tiny model's layers are alike");
        cr_expect_eq(r.head_rows, LM_TINY_N_VOCAB, "a head that fits is timed whole");
        cr_expect(near,
                  "%s: step roof against the fastest real step, %d tries: %.3g / %.3g, %.3g / "
                  "%.3g, %.3g / %.3g s",
                  models[k], tries, roof[0], best[0], roof[1], best[1], roof[2], best[2]);
        lm_model_free(m);
    }
}

/* Layers that differ (Q4_K_M gives attn_v and ffn_down more bits in some) are each run on
 * their own weights: the kinds the roof counts are those of the tensor table. Bad arguments
 * are errors that say what is wrong. */
Test(bench, decode_step_roof_keeps_each_kind_of_layer) {
    char f32[64] = "/tmp/lumen_steproof_XXXXXX.gguf", q[64] = "/tmp/lumen_steproof_XXXXXX.gguf";
    int fd = mkstemps(f32, 5), fq = mkstemps(q, 5);
    cr_assert(fd >= 0 && fq >= 0);
    close(fd), close(fq);
    lm_tiny_spec spec = lm_tiny_default_spec();
    spec.n_embd = 256, spec.n_ff = 512, spec.n_layer = 4, spec.n_head = 4, spec.n_head_kv = 2;
    spec.wtype = LM_TYPE_F32;
    cr_assert(lm_tiny_write(&spec, f32));
    lm_quantize_params qp = lm_quantize_default_params();
    qp.type = "Q4_K_M";
    cr_assert_eq(lm_quantize_file(f32, q, &qp, NULL), LM_OK, "%s", lm_last_error());
    lm_model *m = load_2_threads(q, false);
    const int want = layer_kinds(m, spec.n_layer);
    cr_assert_gt(want, 1, "Q4_K_M mixes the layers' types");
    lm_bench_step_roof r;
    cr_assert_eq(lm_bench_decode_step_roof(m, NULL, 0, 4, 0.01, &r), LM_OK, "%s", lm_last_error());
    cr_expect_eq(r.layer_kinds, want, "%d kinds, the table has %d", r.layer_kinds, want);
    cr_expect(isfinite(r.step_s) && r.step_s > 0);
    cr_expect(r.fits, "a tiny model's layers fit the cache (%llu bytes)",
              (unsigned long long)r.cached_bytes);

    /* the copy: layer l reads the weights of the first layer with its types and shapes, the
     * head its first rows, the vocabulary as many ids; the bytes are the kinds' tensors' */
    lm_model a;
    int32_t kinds = 0;
    uint64_t bytes = 0, want_bytes = 0;
    cr_assert_eq(lm__roof_alias(m, 64, &a, &kinds, &bytes), LM_OK, "%s", lm_last_error());
    cr_expect_eq(kinds, want);
    for (int l = 0; l < spec.n_layer; l++) {
        int first = 0;
        while (m->layers[first].wv.type != m->layers[l].wv.type || /* Q4_K_M's differences */
               m->layers[first].w_down.type != m->layers[l].w_down.type)
            first++;
        cr_expect_eq(a.layers[l].wv.offset, m->layers[first].wv.offset, "layer %d reads %d's", l,
                     first);
        cr_expect_eq(a.layers[l].w_down.offset, m->layers[first].w_down.offset);
        cr_expect_eq(a.layers[l].wq.offset, m->layers[first].wq.offset);
        if (first == l) {
            const lm_tensor *t = (const lm_tensor *)&m->layers[l];
            for (size_t i = 0; i < sizeof(lm_layer) / sizeof(lm_tensor); i++)
                if (t[i].buf) want_bytes += lm_tensor_nbytes(&t[i]);
        }
    }
    cr_expect_eq(bytes, want_bytes);
    cr_expect_eq(a.output.ne[1], 64);
    cr_expect_eq(a.hp.n_vocab, 64);
    cr_expect_eq(a.output.offset, m->output.offset, "the head's first rows");
    free(a.layers);

    cr_expect_eq(lm_bench_decode_step_roof(m, NULL, 4, 0, 0.01, &r), LM_ERR_INVALID_ARG);
    cr_expect(strstr(lm_last_error(), "decode step roof: n_past = 4, n_gen = 0") != NULL, "%s",
              lm_last_error());
    cr_expect_eq(lm_bench_decode_step_roof(m, NULL, -1, 4, 0.01, &r), LM_ERR_INVALID_ARG);
    cr_expect(strstr(lm_last_error(), "n_past = -1") != NULL, "%s", lm_last_error());
    cr_expect_eq(lm_bench_decode_step_roof(m, NULL, 4, 4, 0.01, NULL), LM_ERR_INVALID_ARG);
    cr_expect(strstr(lm_last_error(), "NULL") != NULL, "%s", lm_last_error());
    cr_expect_eq(lm_bench_decode_step_roof(NULL, NULL, 4, 4, 0.01, &r), LM_ERR_INVALID_ARG);
    lm_model_free(m);
    m = load_2_threads(q, true);
    cr_expect_eq(lm_bench_decode_step_roof(m, NULL, 4, 4, 0.01, &r), LM_ERR_INVALID_ARG);
    cr_expect(strstr(lm_last_error(), "vocab_only") != NULL, "%s", lm_last_error());
    lm_model_free(m);
    unlink(f32);
    unlink(q);
}

/* A model whose one layer passes the last-level cache has no step roof: fits is false, the
 * bytes say why, and nothing is timed (step_s stays 0), so the bench spends no seconds on a
 * roof it would discard. */
Test(bench, decode_step_roof_times_nothing_past_the_cache) {
    const size_t llc = lm__bench_llc_bytes();
    int32_t n = 256; /* F32 layer, n_ff = 4 n, as many kv heads as heads: 64 n^2 bytes */
    while ((size_t)64 * (size_t)n * (size_t)n <= llc + llc / 4) n += 256;
    if (n > 4096) cr_skip_test("a last-level cache of %zu bytes: the model would be too big", llc);
    char path[64] = "/tmp/lumen_steproof_XXXXXX.gguf";
    int fd = mkstemps(path, 5);
    cr_assert(fd >= 0);
    close(fd);
    lm_tiny_spec spec = lm_tiny_default_spec();
    spec.n_embd = n, spec.n_ff = 4 * n, spec.n_layer = 2, spec.n_head = n / 64;
    spec.n_head_kv = spec.n_head, spec.wtype = LM_TYPE_F32;
    cr_assert(lm_tiny_write(&spec, path));
    lm_model *m = load_2_threads(path, false);
    unlink(path); /* loaded: the file is not needed, and a failed assertion leaves none */
    lm_bench_step_roof r;
    cr_assert_eq(lm_bench_decode_step_roof(m, NULL, 0, 4, 0.01, &r), LM_OK, "%s", lm_last_error());
    cr_expect(!r.fits, "%llu cached bytes against a %zu-byte cache",
              (unsigned long long)r.cached_bytes, llc);
    cr_expect_gt(r.cached_bytes, llc);
    cr_expect_eq(r.layer_kinds, 1, "both layers are of one kind");
    cr_expect_eq(r.step_s, 0.0, "not timed: %g s", r.step_s);
    lm_model_free(m);
}

/* On a GPU backend the weights are in device memory, which the host's probe does not read:
 * the compute roof is reported, the bound and % of roofline are not (lavapipe in CI). */
Test(bench, no_roofline_where_the_probe_misses_the_weights) {
#ifdef LM_HAVE_VULKAN
    int rc;
    char *out = bench(
        &rc, true, "-m %s -p 0 -n 2 -r 1 -t 1 --backend vulkan -o json --probe-mib 64 -q", g_model);
    if (rc != 0) {
        free(out);
        cr_skip_test("no usable Vulkan device");
    }
    jval v = jparse_all(out);
    cr_assert_eq(v.n, 1, "%s", out);
    cr_expect_str_eq(jstr(&v.items[0], "backend"), "vulkan");
    cr_expect_gt(jnum(&v.items[0], "decode_roof_gb_per_s"), 0);
    cr_expect_gt(jnum(&v.items[0], "decode_step_roof_gb_per_s"), 0);
    cr_expect_str_eq(jstr(&v.items[0], "decode_bound"), "");
    jget(&v.items[0], "bandwidth_pct_of_roofline", J_NULL);
    jfree(&v);
    free(out);
#else
    cr_skip_test("built without Vulkan");
#endif
}

/* Prefill alone: no decode, so no compute roof (its fields null, none measured). */
Test(bench, prefill_only_measures_no_roof) {
    int rc;
    char *out = bench(&rc, true, "-m %s -p 16 -n 0 -r 1 -t 2 -o json --probe-mib 64 -q", g_model);
    cr_assert_eq(rc, 0, "%s", out);
    jval v = jparse_all(out);
    cr_assert_eq(v.n, 1, "%s", out);
    cr_expect_eq(jnum(&v.items[0], "decode_roof_runs"), 0);
    jget(&v.items[0], "decode_roof_gb_per_s", J_NULL);
    jget(&v.items[0], "decode_step_roof_gb_per_s", J_NULL);
    jget(&v.items[0], "bandwidth_pct_of_roofline", J_NULL);
    cr_expect_str_eq(jstr(&v.items[0], "decode_bound"), "");
    jfree(&v);
    free(out);
}

/* Lists of values give one record per (threads, test), threads outermost. */
Test(bench, lists_give_one_record_each) {
    int rc;
    char *out =
        bench(&rc, true, "-m %s -p 8,16 -n 4 -r 1 -t 1,2 -o json --probe-mib 64 -q", g_model);
    cr_assert_eq(rc, 0, "%s", out);
    jval v = jparse_all(out);
    cr_assert_eq(v.n, 6, "%s", out);
    const char *tests[3] = {"pp8", "pp16", "tg4"};
    for (int i = 0; i < 6; i++) {
        cr_expect_str_eq(jstr(&v.items[i], "test"), tests[i % 3]);
        cr_expect_eq(jnum(&v.items[i], "n_threads"), i < 3 ? 1 : 2);
        cr_expect_eq(jnum(&v.items[i], "peak_bandwidth_threads"), i < 3 ? 1 : 2);
        /* one probe before a thread count's tests and one after each; its records share
         * the highest and the lowest */
        cr_expect_eq(jnum(&v.items[i], "peak_bandwidth_probes"), 4);
        const jval *f = &v.items[i < 3 ? 0 : 3];
        cr_expect_eq(jnum(&v.items[i], "peak_bandwidth_gb_per_s"),
                     jnum(f, "peak_bandwidth_gb_per_s"));
        cr_expect_eq(jnum(&v.items[i], "peak_bandwidth_min_gb_per_s"),
                     jnum(f, "peak_bandwidth_min_gb_per_s"));
    }
    jfree(&v);
    free(out);
}

static int csv_fields(const char *line, size_t len) {
    int n = 1;
    bool quoted = false;
    for (size_t i = 0; i < len; i++) {
        if (line[i] == '"') quoted = !quoted;
        if (line[i] == ',' && !quoted) n++;
    }
    return n;
}

/* Lines of a CSV output, each asserted to have the header's number of fields */
static int csv_lines(const char *out) {
    const char *nl0 = strchr(out, '\n');
    cr_assert(nl0, "no header: %s", out);
    int lines = 0, want = csv_fields(out, (size_t)(nl0 - out));
    for (const char *p = out; *p;) {
        const char *nl = strchr(p, '\n');
        cr_assert(nl, "unterminated line: %s", p);
        cr_expect_eq(csv_fields(p, (size_t)(nl - p)), want, "line %d: %.*s", lines, (int)(nl - p),
                     p);
        lines++;
        p = nl + 1;
    }
    return lines;
}

Test(bench, csv_has_the_json_keys_as_header) {
    int rc;
    char *out = bench(&rc, true, "-m %s -p 16 -n 8 -r 2 -t 2 -o csv --probe-mib 64 -q", g_model);
    cr_assert_eq(rc, 0, "%s", out);
    const char *header =
        "lumen_version,model_file,model_desc,model_size_bytes,model_n_params,backend,device,"
        "n_threads,test,n_prompt,n_gen,n_depth,n_reps,avg_tok_per_s,sd_tok_per_s,avg_ms,sd_ms,"
        "samples_tok_per_s,weight_bytes_per_token,bandwidth_gb_per_s,bandwidth_pct_of_peak,"
        "kv_bytes_per_token,bandwidth_kv_gb_per_s,bandwidth_kv_pct_of_peak,"
        "peak_bandwidth_gb_per_s,peak_bandwidth_min_gb_per_s,peak_bandwidth_probes,"
        "peak_bandwidth_threads,peak_bandwidth_buffer_bytes,decode_roof_gb_per_s,"
        "decode_roof_min_gb_per_s,decode_roof_runs,decode_step_roof_gb_per_s,"
        "decode_step_roof_min_gb_per_s,decode_step_roof_runs,decode_step_roof_layer_kinds,"
        "decode_bound,bandwidth_pct_of_roofline\n";
    cr_assert(!strncmp(out, header, strlen(header)), "%s", out);
    cr_expect_eq(csv_lines(out), 3, "header + pp16 + tg8: %s", out);
    cr_expect(strstr(out, ",\"pp16\",") && strstr(out, ",\"tg8\","), "%s", out);
    free(out);
    /* --ops: its own keys, as many fields on every line as in the header */
    out = bench(&rc, true, "--ops-filter rms_norm --ops-time 0.02 -t 2 -o csv --probe-mib 64 -q");
    cr_assert_eq(rc, 0, "%s", out);
    cr_expect(!strncmp(out, "lumen_version,backend,device,n_threads,case,", 44), "%s", out);
    cr_expect_gt(csv_lines(out), 1, "%s", out);
    free(out);
}

/* A CSV header is its JSON records' keys, in their order (both from one table per kind) */
static void expect_csv_header_is_json_keys(const char *args) {
    int rc;
    char *csv = bench(&rc, true, "%s -o csv", args), *json = bench(&rc, true, "%s -o json", args);
    jval v = jparse_all(json);
    cr_assert(v.t == J_ARR && v.n > 0 && v.items[0].t == J_OBJ, "%s", json);
    size_t at = 0;
    for (int i = 0; i < v.items[0].n; i++) {
        const char *k = v.items[0].keys[i];
        cr_assert(!strncmp(csv + at, k, strlen(k)) &&
                      csv[at + strlen(k)] == (i + 1 < v.items[0].n ? ',' : '\n'),
                  "key %d '%s' at CSV header offset %zu: %s", i, k, at, csv);
        at += strlen(k) + 1;
    }
    jfree(&v);
    free(csv), free(json);
}

Test(bench, csv_header_follows_json_key_order) {
    char args[512];
    snprintf(args, sizeof args, "-m %s -p 8 -n 4 -r 1 -t 2 --probe-mib 64 -q", g_model);
    expect_csv_header_is_json_keys(args);
    expect_csv_header_is_json_keys("--ops-filter rms_norm --ops-time 0.02 -t 2 --probe-mib 64 -q");
}

Test(bench, markdown_table_and_progress) {
    int rc;
    char *out = bench(&rc, false, "-m %s -p 16 -n 8 -d 0,8 -r 2 -t 2 --probe-mib 64", g_model);
    cr_assert_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "| model | size | params | backend | threads | test | t/s |"), "%s", out);
    cr_expect(strstr(out, "| pp16 |") && strstr(out, "| tg8 |"), "%s", out);
    /* with a depth: its tests, and the KV reads in two more columns */
    cr_expect(strstr(out, "| pp16 @ d8 |") && strstr(out, "| tg8 @ d8 |"), "%s", out);
    cr_expect(strstr(out, "| GB/s +KV | % +KV |"), "%s", out);
    cr_expect(strstr(out, "+KV adds the KV-cache rows"), "%s", out);
    cr_expect(strstr(out, "memory bandwidth probe:"), "%s", out);
    cr_expect(strstr(out, "the highest of 5 probes, before the tests and after each"), "%s", out);
    cr_expect(strstr(out, "decode compute roof:") && strstr(out, "the highest of 5 runs"), "%s",
              out);
    cr_expect(strstr(out, "| % of peak | step roof | bound | % of roofline |"), "%s", out);
    cr_expect(strstr(out, "Step roof: the weight bytes over a decode step's time"), "%s", out);
    /* a tg row fills its step roof, bound and % cells: "| <GB/s> | memory|compute | <%> |" */
    const char *tg = strstr(out, "| tg8 |");
    cr_assert(tg, "%s", out);
    const char *eol = strchr(tg, '\n'), *bound = strstr(tg, "| memory | ");
    if (!bound || bound > eol) bound = strstr(tg, "| compute | ");
    cr_expect(bound && bound < eol && isdigit((unsigned char)bound[-2]) &&
                  isdigit((unsigned char)strchr(bound + 2, '|')[2]),
              "tg8 row: %.*s", (int)(eol - tg), tg);
    cr_expect(strstr(out, "rep 2 of 2"), "progress on stderr: %s", out);
    free(out);
}

/* --ops on a filtered set: records of the shared op table with their roofline. */
Test(bench, ops_json_reduced_set) {
    int rc;
    char *out = bench(&rc, true,
                      "--ops-filter rms_norm --ops-time 0.02 -t 2 -o json --probe-mib 64", g_model);
    cr_assert_eq(rc, 0, "%s", out);
    jval v = jparse_all(out);
    cr_assert_eq(v.t, J_ARR);
    cr_assert_eq(v.n, lm_bench_ops_count("rms_norm"), "%s", out);
    cr_assert_gt(v.n, 0);
    for (int i = 0; i < v.n; i++) {
        const jval *r = &v.items[i];
        cr_expect_str_eq(jstr(r, "op"), "rms_norm");
        cr_expect(strstr(jstr(r, "case"), "rms_norm F32 k=") != NULL);
        cr_expect_str_eq(jstr(r, "backend"), "cpu");
        cr_expect_eq(jnum(r, "n_threads"), 2);
        cr_expect_geq(jnum(r, "n_calls"), 5);
        const double us = jnum(r, "avg_us"), bytes = jnum(r, "bytes"), flops = jnum(r, "flops");
        cr_expect_gt(us, 0);
        cr_expect_geq(jnum(r, "sd_us"), 0);
        /* rms_norm reads x and w and writes y: 8 bytes per element + 4 per weight */
        cr_expect_eq(bytes, 8.0 * jnum(r, "k") * jnum(r, "n") * jnum(r, "m") + 4 * jnum(r, "k"));
        expect_near(jnum(r, "gb_per_s"), bytes / us / 1e3, "GB/s = bytes / time");
        expect_near(jnum(r, "gflop_per_s"), flops / us / 1e3, "GFLOP/s = flops / time");
        expect_near(jnum(r, "flops_per_byte"), flops / bytes, "intensity");
        const char *bound = jstr(r, "bound");
        cr_expect(!strcmp(bound, "memory") || !strcmp(bound, "compute"), "%s", bound);
        const double peak = !strcmp(bound, "memory") ? jnum(r, "peak_bandwidth_gb_per_s")
                                                     : jnum(r, "peak_gflop_per_s");
        const double got = !strcmp(bound, "memory") ? jnum(r, "gb_per_s") : jnum(r, "gflop_per_s");
        expect_near(jnum(r, "roofline_pct"), 100 * got / peak, "% of roofline");
        cr_expect_gt(jnum(r, "peak_gflop_per_s"), 0);
        cr_expect_gt(strlen(jstr(r, "peak_flops_isa")), 0);
        cr_expect_geq(jnum(r, "n_copies"), 1);
    }
    jfree(&v);
    free(out);
}

/* A decode mul_mat's weights are cycled over copies so that each call reads them from memory;
 * --ops-warm keeps one copy (in cache) */
Test(bench, ops_warm_keeps_one_copy) {
    for (int warm = 0; warm < 2; warm++) {
        int rc;
        char *out =
            bench(&rc, true,
                  "--ops-filter 'mul_mat Q4_1 k=576 n=1536 m=1' --ops-time 0.02 -t 2 -o json "
                  "--probe-mib 64 %s",
                  warm ? "--ops-warm" : "--ops");
        cr_assert_eq(rc, 0, "%s", out);
        jval v = jparse_all(out);
        cr_assert_geq(v.n, 1, "%s", out); /* m=1 and m=128 */
        for (int i = 0; i < v.n; i++)
            if (warm)
                cr_expect_eq(jnum(&v.items[i], "n_copies"), 1, "%s", out);
            else
                cr_expect_gt(jnum(&v.items[i], "n_copies"), 100, "weights from memory: %s", out);
        jfree(&v);
        free(out);
    }
}

/* Every bench op case is a row the op tests run: the filter selects from lm_op_bench_cases,
 * which test_ops iterates. Its count matches the library's. */
Test(bench, ops_count_and_library_errors) {
    cr_expect_gt(lm_bench_ops_count(NULL), 20);
    cr_expect_eq(lm_bench_ops_count("no such op"), 0);
    lm_bench_ops_params p = lm_bench_ops_default_params();
    p.filter = "no such op";
    cr_expect_eq(lm_bench_ops(&p, NULL, NULL), LM_ERR_INVALID_ARG);
    cr_expect(strstr(lm_last_error(), "no op case matches 'no such op'"), "%s", lm_last_error());
    p.filter = "argmax";
    p.backend = "nope";
    cr_expect_neq(lm_bench_ops(&p, NULL, NULL), LM_OK);
    cr_expect(strstr(lm_last_error(), "nope"), "%s", lm_last_error());
    size_t bytes = 1;
    double bw;
    cr_expect_eq(lm_bench_mem_bandwidth(1, &bytes, &bw), LM_ERR_INVALID_ARG);
    cr_expect_eq(lm_bench_mem_bandwidth(1, NULL, &bw), LM_ERR_INVALID_ARG);
    cr_expect_eq(lm_bench_flops_peak(-1, &bw, NULL), LM_ERR_INVALID_ARG);
}

/* hugepages.c (internal): the CPU backend's weight copy and the read probe use it */
bool lm__huge_available(void);
void *lm__huge_alloc(size_t size, size_t *mapped);
void lm__huge_free(void *p, size_t mapped);

/* A huge-page mapping is 2 MiB-aligned, covers the request in whole 2 MiB pages and holds
 * what is written; LUMEN_HUGEPAGES=0 turns their use off, and the probe works either way. */
Test(bench, huge_pages_aligned_writable_and_switchable) {
    lm_test_rng r = {lm_test_seed()};
    const size_t mib2 = (size_t)2 << 20;
    const size_t size = 5 * mib2 + 1 + (size_t)(lm_test_rng_u64(&r) % 4096);
    size_t len = 0;
    uint64_t *p = lm__huge_alloc(size, &len);
    if (!p) cr_skip_test("no anonymous mapping of %zu bytes", size);
    cr_expect_eq((uintptr_t)p % mib2, 0, "mapping at %p", (void *)p);
    cr_expect(len >= size && len % mib2 == 0, "len %zu for %zu bytes", len, size);
    const size_t n = size / 8;
    const uint64_t seed = lm_test_rng_u64(&r);
    for (size_t i = 0; i < n; i++) p[i] = seed ^ (i * 0x9e3779b97f4a7c15ull);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += p[i] != (seed ^ (i * 0x9e3779b97f4a7c15ull));
    cr_expect_eq(bad, 0, "%zu words differ", bad);
    lm__huge_free(p, len);
    char *saved = getenv("LUMEN_HUGEPAGES") ? strdup(getenv("LUMEN_HUGEPAGES")) : NULL;
    setenv("LUMEN_HUGEPAGES", "0", 1);
    cr_expect(!lm__huge_available(), "LUMEN_HUGEPAGES=0 must turn huge pages off");
    size_t bytes = 8 << 20;
    double bw = 0;
    cr_expect_eq(lm_bench_mem_bandwidth(1, &bytes, &bw), LM_OK, "%s", lm_last_error());
    cr_expect_gt(bw, 1e8, "probe without huge pages: %g B/s", bw);
    if (saved)
        setenv("LUMEN_HUGEPAGES", saved, 1);
    else
        unsetenv("LUMEN_HUGEPAGES");
    free(saved);
    bw = 0;
    cr_expect_eq(lm_bench_mem_bandwidth(1, &bytes, &bw), LM_OK, "%s", lm_last_error());
    cr_expect_gt(bw, 1e8, "probe with huge pages (where offered): %g B/s", bw);
}

static void expect_error(const char *args, const char *want) {
    int rc;
    char *out = bench(&rc, false, "%s", args);
    cr_expect_neq(rc, 0, "'%s' should fail: %s", args, out);
    cr_expect(strstr(out, want) != NULL, "'%s': message lacks '%s': %s", args, want, out);
    cr_expect(strstr(out, "| model |") == NULL, "'%s' printed a table: %s", args, out);
    free(out);
}

Test(bench, bad_options_give_clear_errors) {
    char a[512];
    expect_error("--bogus", "unknown option '--bogus'");
    expect_error("-p abc", "-p expects integers in [0, 65536]");
    expect_error("-p 16,-3", "-p expects integers");
    expect_error("-n 1.5", "-n expects integers");
    expect_error("-r 0", "-r expects integers in [1,");
    expect_error("-r 2,3", "-r takes one value");
    expect_error("-t 0", "-t expects integers in [1, 1024]");
    expect_error("-o xml", "-o expects md, json or csv, got 'xml'");
    expect_error("-p", "option '-p' needs a value");
    expect_error("--ops-time -1", "--ops-time expects seconds");
    expect_error("--ops -t 1,2", "--ops takes one thread count");
    expect_error("--ops-filter 'no such op' --probe-mib 64", "no op case matches 'no such op'");
    expect_error("-m /nonexistent/model.gguf -p 8 -n 0", "/nonexistent/model.gguf");
    snprintf(a, sizeof a, "-m %s -p 0 -n 0", g_model);
    expect_error(a, "nothing to run");
    snprintf(a, sizeof a, "-m %s -p 8 -n 0 --backend nope --probe-mib 64", g_model);
    expect_error(a, "nope");
}

Test(bench, listed_in_lumen_help) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s --help", lm_test_cli());
    char *out = NULL;
    cr_assert_eq(lm_test_run(cmd, &out), 0);
    cr_expect(strstr(out, "  bench ") != NULL, "%s", out);
    free(out);
    int rc;
    out = bench(&rc, false, "--help");
    cr_expect_eq(rc, 0);
    cr_expect(strstr(out, "--ops-filter") && strstr(out, "-o, --output FMT"), "%s", out);
    free(out);
}
