/* `lumen devices`, --backend/--device, `lumen verify` and the API under them
 * (lm_devices, lm_model_params.device, lm_context_set_layer_fn). verify runs on tiny models
 * with fresh random weights (the CPU's SIMD level against its plain-C oracle; Vulkan when
 * built) and on the default model on Vulkan (lavapipe here: bit-equal, a few seconds). */
#include "helpers/test_util.h"
#include "helpers/tiny_model.h"
#include "lumen.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_dir[64], g_tiny[128];
static lm_tiny_spec g_spec;

/* A tiny llama with 4 layers and fresh random weights in a temporary directory. */
static void setup(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/lm_verify_XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
    snprintf(g_tiny, sizeof g_tiny, "%s/tiny.gguf", g_dir);
    g_spec = lm_tiny_default_spec();
    g_spec.n_layer = 4;
    g_spec.seed = lm_test_seed();
    cr_assert(lm_tiny_write(&g_spec, g_tiny));
}

static void teardown(void) {
    unlink(g_tiny);
    rmdir(g_dir);
}

TestSuite(verify, .init = setup, .fini = teardown, .timeout = 300);

static char *cli(int *rc, const char *fmt, const char *arg) {
    char inner[2048], cmd[4096];
    snprintf(inner, sizeof inner, fmt, arg ? arg : "");
    snprintf(cmd, sizeof cmd, "%s %s", lm_test_cli(), inner);
    char *out = NULL;
    *rc = lm_test_run(cmd, &out);
    cr_assert_not_null(out);
    return out;
}

static bool compiled_in(const char *backend) {
    for (const char *const *b = lm_backends(); *b; b++)
        if (!strcmp(*b, backend)) return true;
    return false;
}

static bool vulkan_usable(void) {
    if (!compiled_in("vulkan")) return false;
    lm_device_info d[8];
    int32_t n = 0;
    if (lm_devices("vulkan", d, 8, &n) != LM_OK) return false;
    for (int32_t i = 0; i < n && i < 8; i++)
        if (d[i].usable) return true;
    return false;
}

/* The row of layer l ("3   0.000e+00 ...  ok") in verify's table, or NULL. */
static const char *row(const char *out, const char *name) {
    char key[32];
    snprintf(key, sizeof key, "\n%-8s ", name);
    const char *p = strstr(out, key);
    return p ? p + 1 : NULL;
}

static bool row_says(const char *out, const char *name, const char *verdict) {
    const char *r = row(out, name);
    if (!r) return false;
    const char *eol = strchr(r, '\n');
    const char *v = strstr(r, verdict);
    return v && (!eol || v < eol);
}

/* ---- lumen devices ---- */

Test(verify, devices_lists_what_the_api_lists) {
    int rc;
    char *out = cli(&rc, "devices%s", NULL);
    cr_assert_eq(rc, 0, "%s", out);
    for (const char *const *b = lm_backends(); *b; b++) {
        char head[32];
        snprintf(head, sizeof head, "%s:\n", *b);
        cr_assert(strstr(out, head), "no section for %s:\n%s", *b, out);
        lm_device_info d[8];
        int32_t n = 0;
        if (lm_devices(*b, d, 8, &n) != LM_OK) {
            /* the reason the backend cannot run is what the listing says */
            cr_assert(strstr(out, lm_last_error()), "%s: '%s' missing:\n%s", *b, lm_last_error(),
                      out);
            continue;
        }
        for (int32_t i = 0; i < n && i < 8; i++) {
            char line[300];
            snprintf(line, sizeof line, "  %d  %s\n", d[i].index, d[i].name);
            cr_assert(strstr(out, line), "%s device %d (%s) not listed:\n%s", *b, i, d[i].name,
                      out);
        }
    }
    cr_assert(strstr(out, "SIMD level"), "%s", out);
    /* lavapipe, the Mesa CPU driver, is installed wherever the Vulkan suites run */
    if (compiled_in("vulkan") && access("/usr/share/vulkan/icd.d/lvp_icd.x86_64.json", R_OK) == 0)
        cr_assert(strstr(out, "llvmpipe"), "lavapipe not listed:\n%s", out);
    if (!compiled_in("cuda")) cr_assert(strstr(out, "cuda:\n  not compiled in"), "%s", out);
    free(out);
}

Test(verify, devices_json) {
    int rc;
    char *out = cli(&rc, "devices -o json%s", NULL);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_eq(out[0], '[', "%s", out);
    cr_assert(strstr(out, "\"backend\":\t\"cpu\"") && strstr(out, "\"compiled_in\":\ttrue"), "%s",
              out);
    free(out);
    out = cli(&rc, "devices -o xml%s", NULL);
    cr_assert_neq(rc, 0);
    cr_assert(strstr(out, "text or json"), "%s", out);
    free(out);
}

/* The value after "key":<tab> in cJSON's printout, searching from `from`; NULL if absent. */
static const char *json_val(const char *from, const char *key) {
    char k[64];
    snprintf(k, sizeof k, "\"%s\":\t", key);
    const char *p = strstr(from, k);
    return p ? p + strlen(k) : NULL;
}

static bool json_bool(const char *from, const char *key) {
    const char *v = json_val(from, key);
    cr_assert_not_null(v, "no \"%s\" in:\n%s", key, from);
    return !strncmp(v, "true", 4);
}

/* Issue 7: each Vulkan device's driver, subgroup size and shader features, the same in
 * `devices -o json` as in lm_devices; on lavapipe the values its driver is known to report. */
Test(verify, devices_json_vulkan_facts) {
    lm_device_info d[8];
    int32_t n = 0;
    if (!compiled_in("vulkan") || lm_devices("vulkan", d, 8, &n) != LM_OK || n == 0)
        cr_skip_test("no Vulkan device");
    int rc;
    char *out = cli(&rc, "devices -o json%s", NULL);
    cr_assert_eq(rc, 0, "%s", out);
    const char *vk = strstr(out, "\"backend\":\t\"vulkan\"");
    cr_assert_not_null(vk, "%s", out);
    const char *dev = vk;
    for (int32_t i = 0; i < n && i < 8; i++) {
        char idx[32];
        snprintf(idx, sizeof idx, "\"index\":\t%d", d[i].index);
        dev = strstr(dev, idx);
        cr_assert_not_null(dev, "vulkan device %d missing:\n%s", i, out);
        const char *sg = json_val(dev, "subgroup_size");
        cr_assert_not_null(sg, "%s", out);
        long sub = strtol(sg, NULL, 10);
        cr_expect_eq(sub, d[i].subgroup_size, "json %ld, lm_devices %d", sub, d[i].subgroup_size);
        /* every Vulkan 1.1 device has a power-of-two subgroup; 128 is the widest known */
        cr_expect(sub >= 1 && sub <= 128 && (sub & (sub - 1)) == 0, "subgroup %ld", sub);
        cr_expect_eq(json_bool(dev, "fp16"), d[i].fp16);
        cr_expect_eq(json_bool(dev, "int8"), d[i].int8);
        cr_expect_eq(json_bool(dev, "fp64"), d[i].fp64);
        cr_expect_eq(json_bool(dev, "cooperative_matrix"), d[i].cooperative_matrix);
        const char *range = json_val(dev, "max_buffer_range");
        cr_assert_not_null(range);
        cr_expect_eq(strtoull(range, NULL, 10), d[i].max_buffer_range);
        cr_expect_geq(d[i].max_buffer_range, 1u << 27, "the spec's minimum is 128 MiB");
        if (d[i].usable) { /* Lumen needs 1.2 (driver properties) and 8/16-bit storage */
            cr_expect(d[i].driver[0] && d[i].storage16 && d[i].storage8, "%s", d[i].detail);
            const char *drv = json_val(dev, "driver");
            cr_assert_not_null(drv);
            cr_expect(!strncmp(drv + 1, d[i].driver, strlen(d[i].driver)), "%s", out);
        }
        char sg_text[32];
        snprintf(sg_text, sizeof sg_text, "subgroup %d", d[i].subgroup_size);
        cr_expect(strstr(d[i].detail, sg_text), "%s", d[i].detail);
        if (strstr(d[i].name, "llvmpipe")) { /* lavapipe: 8 lanes, halves and bytes */
            cr_expect_eq(sub, 8);
            cr_expect(d[i].fp16 && d[i].int8, "%s", d[i].detail);
            cr_expect(strstr(d[i].driver, "llvmpipe") || strstr(d[i].driver, "Mesa"), "%s",
                      d[i].driver);
        }
        dev++;
    }
    free(out);
}

/* An explicit --device wins over LUMEN_VULKAN_DEVICE (as flags do over the environment);
 * the variable alone still selects, by index or by part of the name. */
Test(verify, device_flag_wins_over_vulkan_env) {
    if (!vulkan_usable()) cr_skip_test("no usable Vulkan device");
    lm_device_info d[8];
    int32_t n = 0, use = -1;
    cr_assert_eq(lm_devices("vulkan", d, 8, &n), LM_OK, "%s", lm_last_error());
    for (int32_t i = 0; i < n && i < 8 && use < 0; i++)
        if (d[i].usable) use = i;
    cr_assert_geq(use, 0);
    char args[1024], *out = NULL;
    snprintf(args, sizeof args,
             "LUMEN_VULKAN_DEVICE=nonexistent %s run -m %s --backend vulkan --device %d -p hi "
             "-n 2",
             lm_test_cli(), g_tiny, use);
    int rc = lm_test_run(args, &out);
    cr_expect_eq(rc, 0, "the flag should win:\n%s", out);
    cr_expect(!strstr(out, "overrides"), "%s", out);
    free(out);
    /* without the flag the variable decides: a name no device has is refused */
    snprintf(args, sizeof args,
             "LUMEN_VULKAN_DEVICE=nonexistent %s run -m %s --backend vulkan -p hi -n 2",
             lm_test_cli(), g_tiny);
    rc = lm_test_run(args, &out);
    cr_expect(rc != 0 && rc < 128, "exit %d:\n%s", rc, out);
    cr_expect(strstr(out, "LUMEN_VULKAN_DEVICE=nonexistent"), "%s", out);
    free(out);
    /* and a real one (its index; then a lower-case part of its name) is taken */
    char name_part[16] = "";
    for (size_t k = 0; k < 8 && d[use].name[k] && d[use].name[k] != ' '; k++)
        name_part[k] =
            (char)((d[use].name[k] >= 'A' && d[use].name[k] <= 'Z') ? d[use].name[k] - 'A' + 'a'
                                                                    : d[use].name[k]);
    char idx[16];
    snprintf(idx, sizeof idx, "%d", use);
    const char *vals[] = {idx, name_part};
    for (int v = 0; v < 2; v++) {
        cr_assert_eq(setenv("LUMEN_VULKAN_DEVICE", vals[v], 1), 0);
        lm_model_params mp = lm_model_default_params();
        mp.backend = "vulkan";
        lm_model *m = NULL;
        cr_expect_eq(lm_model_load(g_tiny, &mp, &m), LM_OK, "LUMEN_VULKAN_DEVICE=%s: %s", vals[v],
                     lm_last_error());
        char want[32];
        snprintf(want, sizeof want, "device %d)", use);
        if (m)
            cr_expect(strstr(lm_model_device_name(m), want), "LUMEN_VULKAN_DEVICE=%s gave %s",
                      vals[v], lm_model_device_name(m));
        lm_model_free(m);
    }
    /* an index out of range in the variable: refused, naming it */
    cr_assert_eq(setenv("LUMEN_VULKAN_DEVICE", "99", 1), 0);
    lm_model_params mp = lm_model_default_params();
    mp.backend = "vulkan";
    lm_model *m = NULL;
    cr_expect_neq(lm_model_load(g_tiny, &mp, &m), LM_OK);
    cr_expect(strstr(lm_last_error(), "LUMEN_VULKAN_DEVICE=99"), "%s", lm_last_error());
    cr_expect_null(m);
    /* ... but an explicit index still wins */
    mp.device = use;
    cr_expect_eq(lm_model_load(g_tiny, &mp, &m), LM_OK, "%s", lm_last_error());
    lm_model_free(m);
    unsetenv("LUMEN_VULKAN_DEVICE");
}

/* ---- bad --backend / --device: a clear error naming the choices, no crash ---- */

Test(verify, bad_backend_or_device_names_the_choices) {
    static const struct {
        const char *args, *want;
    } cases[] = {
        {"run -m %s --backend nosuch -p hi -n 1", "unknown backend 'nosuch' (compiled in: "},
        {"chat -m %s --backend nosuch < /dev/null", "unknown backend 'nosuch'"},
        {"perplexity -m %s --backend nosuch -f /dev/null", "unknown backend 'nosuch'"},
        {"serve -m %s --backend nosuch --port 0", "unknown backend 'nosuch'"},
        {"run -m %s --device 7 -p hi -n 1", "no such cpu device; devices: 0 ("},
        {"run -m %s --device 'no such name' -p hi -n 1", "no such cpu device"},
        {"run -m %s --device -2 -p hi -n 1", "no such cpu device"},
        {"verify -m %s --backend cpu --device 3", "no such cpu device"},
        {"verify -m %s --backend nosuch", "unknown backend 'nosuch'"},
        {"bench -m %s --backend cpu --device 9 -p 1 -n 0", "no such cpu device"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc;
        char *out = cli(&rc, cases[i].args, g_tiny);
        cr_expect(rc != 0 && rc < 128, "'%s': exit %d (crash?)\n%s", cases[i].args, rc, out);
        cr_expect(strstr(out, cases[i].want), "'%s': expected '%s' in:\n%s", cases[i].args,
                  cases[i].want, out);
        if (strstr(cases[i].want, "compiled in"))
            cr_expect(strstr(out, "cpu"), "the choices are named:\n%s", out);
        free(out);
    }
    if (compiled_in("vulkan")) {
        int rc;
        char *out = cli(&rc, "run -m %s --backend vulkan --device 99 -p hi -n 1", g_tiny);
        cr_expect(rc != 0 && rc < 128);
        /* either no such device (listed with the valid ones) or no driver at all */
        cr_expect(strstr(out, "no such vulkan device") || strstr(out, "vulkan"), "%s", out);
        free(out);
    }
}

Test(verify, help_names_the_backends_compiled_in) {
    static const char *cmds[] = {"run", "chat", "serve", "perplexity", "verify", "bench"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        int rc;
        char *out = cli(&rc, "%s --help", cmds[i]);
        cr_assert_eq(rc, 0, "%s", out);
        cr_expect(strstr(out, "--backend NAME") && strstr(out, "--device N|NAME"), "%s:\n%s",
                  cmds[i], out);
        for (const char *const *b = lm_backends(); *b; b++)
            cr_expect(strstr(out, *b), "%s --help does not name %s", cmds[i], *b);
        if (!compiled_in("cuda"))
            cr_expect(!strstr(out, "compiled in: cuda"), "%s --help claims cuda", cmds[i]);
        free(out);
    }
}

/* ---- the API: lm_model_params.device, lm_context_set_layer_fn ---- */

Test(verify, model_params_device_is_checked) {
    lm_model_params mp = lm_model_default_params();
    cr_assert_eq(mp.device, -1);
    lm_model *m = NULL;
    mp.device = 1;
    cr_assert_eq(lm_model_load(g_tiny, &mp, &m), LM_ERR_INVALID_ARG);
    cr_assert_null(m);
    cr_assert(strstr(lm_last_error(), "device 1 does not exist; devices: 0 ("), "%s",
              lm_last_error());
    mp.device = 0;
    cr_assert_eq(lm_model_load(g_tiny, &mp, &m), LM_OK, "%s", lm_last_error());
    lm_model_free(m);
    int32_t n = -1;
    cr_assert_eq(lm_devices("nosuch", NULL, 0, &n), LM_ERR_UNSUPPORTED);
    cr_assert(strstr(lm_last_error(), "available: "), "%s", lm_last_error());
    cr_assert_eq(lm_devices("cpu", NULL, -1, &n), LM_ERR_INVALID_ARG);
}

typedef struct {
    int32_t calls, next_layer, n_embd, n_tokens;
    float *last; /* the last layer's state */
} layer_log;

static void on_layer(int32_t layer, const float *x, int32_t n_embd, int32_t n_tokens, void *u) {
    layer_log *g = u;
    cr_assert_eq(layer, g->next_layer, "layers out of order");
    g->next_layer = layer + 1 == g_spec.n_layer ? 0 : layer + 1;
    g->calls++;
    g->n_embd = n_embd;
    g->n_tokens = n_tokens;
    free(g->last);
    g->last = malloc((size_t)n_embd * (size_t)n_tokens * sizeof(float));
    memcpy(g->last, x, (size_t)n_embd * (size_t)n_tokens * sizeof(float));
}

/* The state handed out after the last layer is the real residual stream: the final norm
 * and output head applied to it on the host give the logits lm_decode returned. */
Test(verify, layer_fn_gives_the_residual_stream) {
    lm_model *m = NULL;
    lm_model_params mp = lm_model_default_params();
    mp.n_threads = 2;
    cr_assert_eq(lm_model_load(g_tiny, &mp, &m), LM_OK, "%s", lm_last_error());
    lm_context *c = NULL;
    lm_context_params cp = lm_context_default_params();
    cp.n_ctx = 64;
    cr_assert_eq(lm_context_create(m, &cp, &c), LM_OK, "%s", lm_last_error());
    layer_log g = {0};
    lm_context_set_layer_fn(c, on_layer, &g);
    lm_test_rng rng = {lm_test_seed()};
    lm_token toks[7];
    for (int i = 0; i < 7; i++) toks[i] = (lm_token)(lm_test_rng_u64(&rng) % LM_TINY_N_VOCAB);
    lm_batch b = lm_batch_simple(toks, 7);
    cr_assert_eq(lm_decode(c, &b), LM_OK, "%s", lm_last_error());
    cr_assert_eq(g.calls, g_spec.n_layer);
    cr_assert_eq(g.n_embd, g_spec.n_embd);
    cr_assert_eq(g.n_tokens, 7);

    lm_tiny_model tm;
    cr_assert(lm_tiny_build(&g_spec, &tm));
    const int32_t E = g_spec.n_embd;
    const float *x = g.last + 6 * (size_t)E, *logits = lm_get_logits(c, -1);
    double ss = 0, max_ref = 0, max_diff = 0;
    for (int32_t i = 0; i < E; i++) ss += (double)x[i] * x[i];
    double inv = 1.0 / sqrt(ss / E + g_spec.rms_eps);
    for (int32_t v = 0; v < tm.n_vocab; v++) {
        double dot = 0;
        for (int32_t i = 0; i < E; i++)
            dot += (double)tm.output[(size_t)v * E + i] * (x[i] * inv * tm.out_norm[i]);
        max_ref = fmax(max_ref, fabs(dot));
        max_diff = fmax(max_diff, fabs(dot - logits[v]));
    }
    /* the engine quantizes the head's input to 16-bit blocks (relative error ~3e-5 per
     * element) and sums in float: 1e-3 of the logits' range covers it; a wrong state (another
     * layer's, another token's) is off by far more */
    cr_assert_leq(max_diff, 1e-3 * max_ref + 1e-5, "logits from the last state differ by %g of %g",
                  max_diff, max_ref);

    /* cleared: no more calls */
    lm_context_set_layer_fn(c, NULL, NULL);
    lm_token t = toks[0];
    b = lm_batch_simple(&t, 1);
    cr_assert_eq(lm_decode(c, &b), LM_OK, "%s", lm_last_error());
    cr_assert_eq(g.calls, g_spec.n_layer);
    free(g.last);
    lm_tiny_free(&tm);
    lm_context_free(c);
    lm_model_free(m);
}

/* ---- lumen verify ---- */

static void check_all_ok(const char *out, int n_layer) {
    for (int l = 0; l < n_layer; l++) {
        char name[16];
        snprintf(name, sizeof name, "%d", l);
        cr_expect(row_says(out, name, "ok"), "layer %d not listed as ok:\n%s", l, out);
    }
    cr_expect(row_says(out, "logits", "ok"), "%s", out);
    cr_expect(strstr(out, "within tolerance"), "%s", out);
}

Test(verify, tiny_cpu_simd_within_tolerance) {
    int rc;
    char *out = cli(&rc, "verify -m %s --backend cpu -t 2 -n 3", g_tiny);
    cr_assert_eq(rc, 0, "%s", out);
    check_all_ok(out, g_spec.n_layer);
    cr_expect(strstr(out, "3 decode steps"), "%s", out);
    free(out);
}

/* LUMEN_VERIFY_PERTURB=L changes the tool's copy of layer L's backend state by 1 % of its
 * largest value: that layer, and only it, must fail and be named first. */
Test(verify, flags_the_first_layer_beyond_tolerance) {
    lm_test_rng rng = {lm_test_seed()};
    int bad = (int)(lm_test_rng_u64(&rng) % (uint64_t)g_spec.n_layer);
    char args[512];
    snprintf(args, sizeof args, "LUMEN_VERIFY_PERTURB=%d %s verify -m %s --backend cpu -t 2 -n 2",
             bad, lm_test_cli(), g_tiny);
    char *out = NULL;
    int rc = lm_test_run(args, &out);
    cr_assert_eq(rc, 1, "%s", out);
    char name[16], want[64];
    snprintf(name, sizeof name, "%d", bad);
    cr_expect(row_says(out, name, "FAIL  <- first beyond tolerance"), "layer %d:\n%s", bad, out);
    snprintf(want, sizeof want, "first beyond tolerance 0.001: layer %d\n", bad);
    cr_expect(strstr(out, want), "%s", out);
    for (int l = 0; l < g_spec.n_layer; l++) {
        if (l == bad) continue;
        snprintf(name, sizeof name, "%d", l);
        cr_expect(row_says(out, name, "ok"), "layer %d should pass:\n%s", l, out);
    }
    free(out);
    /* a looser tolerance accepts the same perturbation */
    snprintf(args, sizeof args,
             "LUMEN_VERIFY_PERTURB=%d %s verify -m %s --backend cpu -t 2 -n 1 --tol 0.05", bad,
             lm_test_cli(), g_tiny);
    rc = lm_test_run(args, &out);
    cr_expect_eq(rc, 0, "%s", out);
    free(out);
}

Test(verify, tiny_vulkan_within_tolerance_and_perturbed) {
    if (!vulkan_usable()) cr_skip_test("no usable Vulkan device");
    int rc;
    char *out = cli(&rc, "verify -m %s --backend vulkan -t 2 -n 2", g_tiny);
    cr_assert_eq(rc, 0, "%s", out);
    check_all_ok(out, g_spec.n_layer);
    free(out);
    char args[512];
    snprintf(args, sizeof args, "LUMEN_VERIFY_PERTURB=0 %s verify -m %s --backend vulkan -n 1",
             lm_test_cli(), g_tiny);
    rc = lm_test_run(args, &out);
    cr_assert_eq(rc, 1, "%s", out);
    cr_expect(strstr(out, "first beyond tolerance 0.001: layer 0\n"), "%s", out);
    free(out);
}

/* Issue 7's end-to-end check: the default model on Vulkan, every layer within tolerance
 * (on lavapipe bit-equal). Two decode steps keep it to a few seconds. */
Test(verify, default_model_vulkan_every_layer) {
    if (access(lm_test_model_path(), R_OK) != 0)
        cr_skip_test("default model not found at %s", lm_test_model_path());
    if (!vulkan_usable()) cr_skip_test("no usable Vulkan device");
    int rc;
    char *out = cli(&rc, "verify -m %s --backend vulkan -t 2 -n 2", lm_test_model_path());
    cr_assert_eq(rc, 0, "%s", out);
    check_all_ok(out, 30); /* SmolLM2-135M: 30 layers */
    cr_expect(strstr(out, "all 30 layers and the logits within tolerance"), "%s", out);
    free(out);
}
