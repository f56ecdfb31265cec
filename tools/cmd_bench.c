/* lumen bench: prefill (pp) and decode (tg) speed of a model, llama-bench style, with the
 * memory bandwidth decode achieves against the machine's measured peak; --ops times the
 * backend ops over the op-case table the op tests use. Options are its own (lists like
 * llama-bench's -p 128,512), so it parses them here. */
#include "bench_report.h"
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BENCH_MAX_LIST 16
#define TRY(expr)                                                                                  \
    do {                                                                                           \
        lm_status s_ = (expr);                                                                     \
        if (s_ != LM_OK) return s_;                                                                \
    } while (0)
#define BENCH_TG_PROMPT 4 /* tg: untimed prompt tokens before the timed single-token steps */

typedef struct {
    int32_t v[BENCH_MAX_LIST];
    int n;
} int_list;

typedef struct {
    const char *model, *backend, *ops_filter, *device;
    int32_t device_index; /* --device resolved; -1: the backend's default */
    int_list pp, tg, depth, threads;
    int32_t reps;
    bench_format fmt;
    bool ops, quiet, ops_warm;
    double ops_time;
    int32_t probe_mib;
} bench_opts;

static void bench_help(void) {
    printf("usage: lumen bench [-m FILE] [options]\n"
           "       lumen bench --ops [options]\n\n"
           "Measure prefill (pp) and decode (tg) tokens/s as llama-bench does: mean ± standard\n"
           "deviation over repetitions after a warm-up. Decode's memory bandwidth (weight bytes\n"
           "read per token x tokens/s) is compared with a read-bandwidth probe of this machine,\n"
           "run before the tests and after each: the highest it measured is the peak. With each\n"
           "probe, decode's compute roof is measured too: how fast the step's matrix ops run\n"
           "with the weights in cache; around each decode test, its step roof: the whole step\n"
           "with the weights in cache. Decode is bandwidth-bound where the probe is at or below\n"
           "the step roof.\n"
           "--ops times each backend op over the op-case table the op tests check.\n\n"
           "options:\n");
    static const char *rows[][2] = {
        {"-m, --model FILE",
         "GGUF model (default: $LUMEN_MODEL, then models/" LM_DEFAULT_MODEL_FILE ")"},
        {"-p, --n-prompt N[,N..]", "prefill N tokens in one batch; 0 = skip (default 512)"},
        {"-n, --n-gen N[,N..]", "decode N tokens one at a time; 0 = skip (default 128)"},
        {"-d, --n-depth N[,N..]",
         "run each test after N tokens already in the KV cache (untimed prefill; default 0)"},
        {"-r, --repetitions N", "timed repetitions of each test (default 5)"},
        {"-t, --threads N[,N..]", "CPU threads (default: all cores)"},
        {"    --backend NAME", "compute backend (default cpu); compiled in: "},
        {"    --device N|NAME", "the backend's device by index or name ('lumen devices')"},
        {"-o, --output FMT", "md (a table), json or csv (default md)"},
        {"    --ops", "per-op microbenchmarks with their roofline instead of a model"},
        {"    --ops-filter TEXT", "only op cases whose description contains TEXT (implies --ops)"},
        {"    --ops-time S", "seconds to time each op case (default 0.25)"},
        {"    --ops-warm",
         "as --ops with one copy of each operand, which stays in cache: the kernels' compute rate"},
        {"    --probe-mib N", "bandwidth probe buffer in MiB (default max(256, 8 x LLC))"},
        {"-q, --quiet", "no progress on stderr"},
        {"-h, --help", "show this help"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        printf("  %-28s %s%s\n", rows[i][0], rows[i][1],
               strstr(rows[i][0], "--backend") ? cli_backend_list() : "");
    printf("\npp: the KV cache is cleared (then filled to the depth) before each repetition. tg:\n"
           "a %d-token prompt, then N timed steps of one token. Tokens are random ids, as in\n"
           "llama-bench; so are the depths' (-d 4096: pp512 @ d4096, tg128 @ d4096).\n",
           BENCH_TG_PROMPT);
}

static int bench_err(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "lumen bench: error: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, " (see lumen bench --help)\n");
    return 1;
}

/* "128" or "128,512": integers in [lo, hi]. */
static int parse_list(const char *opt, const char *s, int32_t lo, int32_t hi, int_list *out) {
    out->n = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < lo || v > hi || (*end && *end != ',')) {
            char range[64];
            snprintf(range, sizeof range, "integers in [%d, %d]", lo, hi);
            fprintf(stderr,
                    "lumen bench: error: %s expects %s, comma-separated, got '%s' (see lumen "
                    "bench --help)\n",
                    opt, range, s);
            return 1;
        }
        if (out->n == BENCH_MAX_LIST) return bench_err("%s: at most 16 values%s", opt, "");
        out->v[out->n++] = (int32_t)v;
        if (!*end) return 0;
        p = end + 1;
    }
}

static int parse_opts(int argc, char **argv, bench_opts *o, bool *done) {
    memset(o, 0, sizeof *o);
    o->pp = (int_list){{512}, 1};
    o->tg = (int_list){{128}, 1};
    o->depth = (int_list){{0}, 1};
    o->reps = 5;
    o->ops_time = 0.25;
    *done = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            bench_help();
            *done = true;
            return 0;
        }
        if (!strcmp(a, "--ops")) {
            o->ops = true;
            continue;
        }
        if (!strcmp(a, "--ops-warm")) {
            o->ops = o->ops_warm = true;
            continue;
        }
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o->quiet = true;
            continue;
        }
        static const char *with_value[] = {
            "-m",       "--model",      "-p",         "--n-prompt", "-n",
            "--n-gen",  "-d",           "--n-depth",  "-r",         "--repetitions",
            "-t",       "--threads",    "--backend",  "--device",   "-o",
            "--output", "--ops-filter", "--ops-time", "--probe-mib"};
        bool known = false;
        for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++)
            known |= !strcmp(a, with_value[k]);
        if (!known) return bench_err("unknown option '%s'%s", a, "");
        if (i + 1 >= argc) return bench_err("option '%s' needs a value%s", a, "");
        const char *v = argv[++i];
        int_list l;
        if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            o->model = v;
        else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) {
            if (parse_list(a, v, 0, 1 << 16, &o->pp)) return 1;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) {
            if (parse_list(a, v, 0, 1 << 20, &o->tg)) return 1;
        } else if (!strcmp(a, "-d") || !strcmp(a, "--n-depth")) {
            if (parse_list(a, v, 0, 1 << 20, &o->depth)) return 1;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (parse_list(a, v, 1, 1024, &o->threads)) return 1;
        } else if (!strcmp(a, "-r") || !strcmp(a, "--repetitions")) {
            if (parse_list(a, v, 1, 100000, &l)) return 1;
            if (l.n != 1) return bench_err("%s takes one value, got '%s'", a, v);
            o->reps = l.v[0];
        } else if (!strcmp(a, "--probe-mib")) {
            if (parse_list(a, v, 1, 1 << 20, &l)) return 1;
            if (l.n != 1) return bench_err("%s takes one value, got '%s'", a, v);
            o->probe_mib = l.v[0];
        } else if (!strcmp(a, "--backend"))
            o->backend = v;
        else if (!strcmp(a, "--device"))
            o->device = v;
        else if (!strcmp(a, "--ops-filter")) {
            o->ops_filter = v;
            o->ops = true;
        } else if (!strcmp(a, "--ops-time")) {
            char *end;
            errno = 0;
            o->ops_time = strtod(v, &end);
            if (errno || end == v || *end || !(o->ops_time > 0 && o->ops_time <= 3600))
                return bench_err("%s expects seconds in (0, 3600], got '%s'", a, v);
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!strcmp(v, "md"))
                o->fmt = BENCH_MD;
            else if (!strcmp(v, "json"))
                o->fmt = BENCH_JSON;
            else if (!strcmp(v, "csv"))
                o->fmt = BENCH_CSV;
            else
                return bench_err("%s expects md, json or csv, got '%s'", a, v);
        }
    }
    if (o->threads.n == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        o->threads = (int_list){{c > 0 ? (int32_t)c : 1}, 1};
    }
    if (o->ops && o->threads.n > 1)
        return bench_err("--ops takes one thread count (-t N)%s%s", "", "");
    return cli_resolve_device("bench", o->backend, o->device, &o->device_index);
}

/* ---- statistics and probes ---- */

static int max_of(const int_list *l) {
    int32_t mx = 0;
    for (int i = 0; i < l->n; i++) mx = l->v[i] > mx ? l->v[i] : mx;
    return mx;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void mean_sd(const double *x, int n, double *mean, double *sd) {
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = n ? s / n : 0;
    for (int i = 0; i < n; i++) s2 += (x[i] - *mean) * (x[i] - *mean);
    *sd = n > 1 ? sqrt(s2 / (n - 1)) : 0;
}

static int probe(const bench_opts *o, int32_t threads, bool flops, bench_peak *p) {
    memset(p, 0, sizeof *p);
    p->n_threads = threads;
    size_t bytes = (size_t)o->probe_mib << 20;
    if (!o->quiet)
        fprintf(stderr, "lumen bench: %s probe, %d threads\n",
                flops ? "memory bandwidth and FMA" : "memory bandwidth", threads);
    lm_status s = lm_bench_mem_bandwidth(threads, &bytes, &p->bw_bytes_s);
    if (s == LM_OK && flops) s = lm_bench_flops_peak(threads, &p->flops, &p->isa);
    if (s != LM_OK) {
        cli_error(s);
        return 1;
    }
    p->bw_min_bytes_s = p->bw_bytes_s;
    p->n_probes = 1;
    p->bw_buffer = bytes;
    return 0;
}

/* Decode's compute roof of m (with each probe when the run decodes): p keeps the highest and
 * the lowest, as it does the probe's */
static int roof(const bench_opts *o, const lm_model *m, bench_peak *p) {
    if (max_of(&o->tg) == 0) return 0;
    if (!o->quiet && p->n_roofs == 0)
        fprintf(stderr, "lumen bench: decode compute roof, %d threads\n", p->n_threads);
    lm_bench_roof r;
    lm_status s = lm_bench_decode_roof(m, 0.05, &r);
    if (s != LM_OK) {
        cli_progress_end();
        cli_error(s);
        return 1;
    }
    p->roof_min_bytes_s =
        p->n_roofs && p->roof_min_bytes_s < r.bytes_per_s ? p->roof_min_bytes_s : r.bytes_per_s;
    p->roof_bytes_s = r.bytes_per_s > p->roof_bytes_s ? r.bytes_per_s : p->roof_bytes_s;
    p->roof_ops = r.n_ops;
    p->n_roofs++;
    return 0;
}

/* The bandwidth probe once more (after a test): p keeps the highest and the lowest */
static int reprobe(bench_peak *p) {
    size_t bytes = p->bw_buffer;
    double bw = 0;
    lm_status s = lm_bench_mem_bandwidth(p->n_threads, &bytes, &bw);
    if (s != LM_OK) {
        cli_progress_end();
        cli_error(s);
        return 1;
    }
    p->bw_bytes_s = bw > p->bw_bytes_s ? bw : p->bw_bytes_s;
    p->bw_min_bytes_s = bw < p->bw_min_bytes_s ? bw : p->bw_min_bytes_s;
    p->n_probes++;
    return 0;
}

/* ---- model tests ---- */

/* Weight bytes one decode step reads: every tensor once; token_embd only as the output
 * head when it is tied (no output.weight), else a single row. */
static void model_weights(const lm_model *m, uint64_t *per_token, uint64_t *n_params) {
    int32_t n = lm_model_tensor_count(m);
    bool tied = true;
    lm_tensor_desc d;
    for (int32_t i = 0; i < n; i++)
        if (lm_model_tensor_info(m, i, &d) == LM_OK && !strcmp(d.name, "output.weight"))
            tied = false;
    *per_token = *n_params = 0;
    for (int32_t i = 0; i < n; i++) {
        if (lm_model_tensor_info(m, i, &d) != LM_OK) continue;
        int64_t elems = 1;
        for (int k = 0; k < d.n_dims; k++) elems *= d.ne[k];
        *n_params += (uint64_t)elems;
        if (!strcmp(d.name, "token_embd.weight") && !tied && d.n_dims >= 2 && d.ne[1] > 0)
            *per_token += d.n_bytes / (uint64_t)d.ne[1];
        else
            *per_token += d.n_bytes;
    }
}

static void random_tokens(lm_token *t, int32_t n, int32_t n_vocab, uint64_t *state) {
    for (int32_t i = 0; i < n; i++) {
        *state = *state * 6364136223846793005ull + 1442695040888963407ull;
        t[i] = (lm_token)((*state >> 33) % (uint64_t)n_vocab);
    }
}

/* One repetition: tokens/s of a pp (n_prompt > 0) or tg test. */
static lm_status run_rep(lm_context *ctx, const lm_model *m, int32_t depth, int32_t pp, int32_t tg,
                         lm_token *buf, uint64_t *rng, double *tok_s, double *ms) {
    const int32_t nv = lm_model_n_vocab(m);
    TRY(lm_kv_seq_trim(ctx, 0, 0));
    if (depth > 0) { /* the cache the test starts from: filled, not timed */
        random_tokens(buf, depth, nv, rng);
        lm_batch b = lm_batch_simple(buf, depth);
        TRY(lm_decode(ctx, &b));
    }
    double t0, t1;
    if (pp > 0) {
        random_tokens(buf, pp, nv, rng);
        lm_batch b = lm_batch_simple(buf, pp);
        t0 = now_s();
        TRY(lm_decode(ctx, &b));
        t1 = now_s();
        *tok_s = pp / (t1 - t0);
    } else {
        random_tokens(buf, BENCH_TG_PROMPT + tg, nv, rng);
        lm_batch b = lm_batch_simple(buf, BENCH_TG_PROMPT);
        TRY(lm_decode(ctx, &b));
        t0 = now_s();
        for (int32_t i = 0; i < tg; i++) {
            b = lm_batch_simple(buf + BENCH_TG_PROMPT + i, 1);
            TRY(lm_decode(ctx, &b));
        }
        t1 = now_s();
        *tok_s = tg / (t1 - t0);
    }
    *ms = (t1 - t0) * 1e3;
    return LM_OK;
}

typedef struct {
    const bench_opts *o;
    bench_record *recs;
    int n_recs, cap;
    int step, n_steps;    /* progress over all repetitions */
    lm_context_params cp; /* the tests' context, which the step roof copies */
} bench_run;

/* tg: decode's step roof at the test's positions (the weights in cache) as weight bytes/s,
 * into r's highest and lowest. Where it cannot be measured (an error, a model whose distinct
 * layers do not fit the cache) the test still counts: a warning, and no step roof. */
static void step_roof(const bench_run *br, const lm_model *m, bench_record *r) {
    if (r->step_roof_runs < 0) return; /* given up on for this test */
    if (!br->o->quiet)
        cli_progress((double)br->step / br->n_steps, false, "%s, %d threads: step roof", r->test,
                     r->n_threads);
    lm_bench_step_roof sr;
    lm_status s =
        lm_bench_decode_step_roof(m, &br->cp, r->n_depth + BENCH_TG_PROMPT, r->n_gen, 0.2, &sr);
    if (s != LM_OK || !sr.fits || sr.step_s <= 0) {
        cli_progress_end();
        if (s != LM_OK)
            fprintf(stderr, "lumen bench: warning: %s: no step roof: %s\n", r->test,
                    lm_last_error());
        else if (sr.fits)
            fprintf(stderr, "lumen bench: warning: %s: no step roof: a step of %g s\n", r->test,
                    sr.step_s);
        else
            fprintf(stderr,
                    "lumen bench: warning: %s: no step roof: the model's %d distinct layers and "
                    "the head's first rows (%.1f MiB) do not fit the last-level cache\n",
                    r->test, sr.layer_kinds, (double)sr.cached_bytes / 1048576.0);
        r->step_roof_bytes_s = r->step_roof_min_bytes_s = -1;
        r->step_roof_runs = -1;
        return;
    }
    const double bs = (double)r->weight_bytes_per_token / sr.step_s;
    r->step_roof_min_bytes_s =
        r->step_roof_runs && r->step_roof_min_bytes_s < bs ? r->step_roof_min_bytes_s : bs;
    r->step_roof_bytes_s = bs > r->step_roof_bytes_s ? bs : r->step_roof_bytes_s;
    r->step_roof_layer_kinds = sr.layer_kinds;
    r->step_roof_runs++;
}

/* Warm-up, then o->reps timed repetitions of one test into a new record. */
static int run_test(bench_run *br, lm_context *ctx, const lm_model *m, const bench_record *proto,
                    int32_t depth, int32_t pp, int32_t tg) {
    const bench_opts *o = br->o;
    bench_record *r = &br->recs[br->n_recs];
    *r = *proto;
    r->n_prompt = pp, r->n_gen = tg, r->n_depth = depth, r->n_reps = o->reps;
    int k = snprintf(r->test, sizeof r->test, pp > 0 ? "pp%d" : "tg%d", pp > 0 ? pp : tg);
    if (depth > 0) snprintf(r->test + k, sizeof r->test - (size_t)k, " @ d%d", depth);
    r->samples = calloc((size_t)o->reps, sizeof *r->samples);
    double *ms = calloc((size_t)o->reps, sizeof *ms);
    lm_token *buf = malloc((size_t)(depth + pp + tg + BENCH_TG_PROMPT) * sizeof *buf);
    if (!r->samples || !ms || !buf) {
        free(r->samples), free(ms), free(buf);
        fprintf(stderr, "lumen bench: error: out of memory\n");
        return 1;
    }
    uint64_t rng = 0x853c49e6748fea9bull ^ (uint64_t)(pp * 31 + tg) ^ ((uint64_t)depth << 32);
    double ts, t;
    /* warm-up: page in the weights, wake the threads (tg: a shorter run) */
    lm_status s = run_rep(ctx, m, depth, pp, pp > 0 ? 0 : (tg < 16 ? tg : 16), buf, &rng, &ts, &t);
    /* tg: the step roof before the repetitions and after them, as the probe is taken around
     * each test: the highest is the roof */
    r->step_roof_bytes_s = r->step_roof_min_bytes_s = -1;
    r->step_roof_runs = 0, r->step_roof_layer_kinds = 0;
    if (s == LM_OK && tg > 0) step_roof(br, m, r);
    for (int i = 0; s == LM_OK && i < o->reps; i++) {
        if (!o->quiet)
            cli_progress((double)br->step / br->n_steps, false, "%s, %d threads: rep %d of %d",
                         r->test, r->n_threads, i + 1, o->reps);
        s = run_rep(ctx, m, depth, pp, tg, buf, &rng, &r->samples[i], &ms[i]);
        br->step++;
    }
    free(buf);
    if (s == LM_OK && tg > 0) step_roof(br, m, r);
    if (r->step_roof_runs < 0) r->step_roof_runs = 0;
    if (s != LM_OK) {
        free(r->samples), free(ms);
        cli_progress_end();
        cli_error(s);
        return 1;
    }
    mean_sd(r->samples, o->reps, &r->avg_ts, &r->sd_ts);
    mean_sd(ms, o->reps, &r->avg_ms, &r->sd_ms);
    free(ms);
    r->bw_bytes_s = tg > 0 ? (double)r->weight_bytes_per_token * r->avg_ts : -1;
    r->kv_bytes = -1, r->bw_kv_bytes_s = -1;
    if (tg > 0) { /* step i attends over depth + the prompt + i cached positions */
        double kv = 0;
        for (int32_t i = 0; i < tg; i++)
            kv += (double)lm_kv_read_bytes(ctx, depth + BENCH_TG_PROMPT + i);
        r->kv_bytes = kv / tg;
        r->bw_kv_bytes_s = ((double)r->weight_bytes_per_token + r->kv_bytes) * r->avg_ts;
    }
    br->n_recs++;
    return 0;
}

/* Load the model with `threads`, then every pp and tg test. */
static int bench_threads(bench_run *br, int32_t threads, const char *path) {
    const bench_opts *o = br->o;
    bench_record proto;
    memset(&proto, 0, sizeof proto);
    lm_model_params mp = lm_model_default_params();
    mp.n_threads = threads;
    mp.backend = o->backend;
    mp.device = o->device_index;
    lm_model *m = NULL;
    lm_status s = lm_model_load(path, &mp, &m);
    if (s != LM_OK) {
        cli_error(s);
        return 1;
    }
    const int32_t max_pp = max_of(&o->pp), max_tg = max_of(&o->tg), max_d = max_of(&o->depth);
    lm_context_params cp = lm_context_default_params();
    cp.n_ctx = max_d + (max_pp > BENCH_TG_PROMPT + max_tg ? max_pp : BENCH_TG_PROMPT + max_tg);
    const int32_t n_train = lm_model_n_ctx_train(m);
    /* a depth past the training length measures a model running badly (without -d the
     * context's own warning stays the only word) */
    if (max_d > 0 && n_train > 0 && cp.n_ctx > n_train) {
        lm_model_free(m);
        fprintf(stderr,
                "lumen bench: error: the longest test needs %d positions (depth, prompt and "
                "generated tokens); the model was trained for %d (n_ctx_train)\n",
                cp.n_ctx, n_train);
        return 1;
    }
    /* the depth is filled in batches of up to 512, as llama_compare.py fills llama.cpp's */
    const int32_t fill = max_d < 512 ? max_d : 512;
    cp.n_batch = max_pp > BENCH_TG_PROMPT ? max_pp : BENCH_TG_PROMPT;
    if (fill > cp.n_batch) cp.n_batch = fill;
    br->cp = cp;
    lm_context *ctx = NULL;
    s = lm_context_create(m, &cp, &ctx);
    if (s != LM_OK) {
        cli_error(s);
        lm_model_free(m);
        return 1;
    }
    if (probe(o, threads, false, &proto.peak) || roof(o, m, &proto.peak)) {
        lm_context_free(ctx);
        lm_model_free(m);
        return 1;
    }
    proto.model_file = path;
    lm_model_desc(m, proto.model_desc, sizeof proto.model_desc);
    proto.model_size = lm_model_size(m);
    proto.backend = lm_model_backend_name(m);
    snprintf(proto.device, sizeof proto.device, "%s", lm_model_device_name(m));
    proto.n_threads = threads;
    model_weights(m, &proto.weight_bytes_per_token, &proto.n_params);
    int rc = 0;
    const int first = br->n_recs;
    for (int d = 0; !rc && d < o->depth.n; d++) {
        for (int i = 0; !rc && i < o->pp.n; i++)
            if (o->pp.v[i] > 0)
                rc = run_test(br, ctx, m, &proto, o->depth.v[d], o->pp.v[i], 0) ||
                     reprobe(&proto.peak) || roof(o, m, &proto.peak);
        for (int i = 0; !rc && i < o->tg.n; i++)
            if (o->tg.v[i] > 0)
                rc = run_test(br, ctx, m, &proto, o->depth.v[d], 0, o->tg.v[i]) ||
                     reprobe(&proto.peak) || roof(o, m, &proto.peak);
    }
    for (int i = first; i < br->n_recs; i++) br->recs[i].peak = proto.peak; /* all probes' */
    lm_context_free(ctx);
    lm_model_free(m);
    return rc;
}

static int bench_model(const bench_opts *o) {
    const char *path = o->model;
    if (!path) {
        path = getenv("LUMEN_MODEL");
        if (!path || !*path) path = "models/" LM_DEFAULT_MODEL_FILE;
        if (access(path, R_OK) != 0) path = LM_SOURCE_DIR "/models/" LM_DEFAULT_MODEL_FILE;
    }
    int n_tests = 0;
    for (int i = 0; i < o->pp.n; i++) n_tests += o->pp.v[i] > 0;
    for (int i = 0; i < o->tg.n; i++) n_tests += o->tg.v[i] > 0;
    if (n_tests == 0) return bench_err("nothing to run: every -p and -n value is 0%s%s", "", "");
    bench_run br = {.o = o, .cap = n_tests * o->depth.n * o->threads.n};
    br.n_steps = br.cap * o->reps;
    br.recs = calloc((size_t)br.cap, sizeof *br.recs);
    if (!br.recs) return bench_err("out of memory%s%s", "", "");
    int rc = 0;
    for (int i = 0; !rc && i < o->threads.n; i++) rc = bench_threads(&br, o->threads.v[i], path);
    if (!o->quiet) cli_progress_end();
    if (!rc) bench_print_model(stdout, o->fmt, br.recs, br.n_recs);
    for (int i = 0; i < br.n_recs; i++) free(br.recs[i].samples);
    free(br.recs);
    return rc;
}

/* ---- --ops ---- */

typedef struct {
    const bench_opts *o;
    bench_op_record *recs;
    int n;
    bench_peak peak;
} ops_run;

static bool on_op(const lm_bench_op_result *r, int32_t i, int32_t n, void *user) {
    ops_run *run = user;
    bench_op_record *rec = &run->recs[run->n++];
    memset(rec, 0, sizeof *rec);
    rec->r = *r;
    rec->n_threads = run->peak.n_threads;
    rec->backend = run->o->backend ? run->o->backend : "cpu";
    rec->peak = run->peak;
    bench_op_roofline(rec);
    if (!run->o->quiet)
        cli_progress((double)(i + 1) / n, false, "%s: %.1f us", r->desc, r->t_mean_us);
    return !cli_interrupted();
}

static int bench_ops(const bench_opts *o) {
    int32_t n = lm_bench_ops_count(o->ops_filter);
    ops_run run = {.o = o};
    if (n == 0) {
        lm_bench_ops_params p = lm_bench_ops_default_params();
        p.filter = o->ops_filter;
        cli_error(lm_bench_ops(&p, NULL, NULL)); /* the library's message */
        return 1;
    }
    if (probe(o, o->threads.v[0], true, &run.peak)) return 1;
    run.recs = calloc((size_t)n, sizeof *run.recs);
    if (!run.recs) return bench_err("out of memory%s%s", "", "");
    lm_bench_ops_params p = lm_bench_ops_default_params();
    p.backend = o->backend;
    p.n_threads = o->threads.v[0];
    p.device = o->device_index;
    p.filter = o->ops_filter;
    p.min_time_s = o->ops_time;
    if (o->ops_warm) p.cold_bytes = 1; /* one copy */
    cli_install_sigint();
    lm_status s = lm_bench_ops(&p, on_op, &run);
    if (!o->quiet) cli_progress_end();
    if (s != LM_OK && s != LM_ERR_INTERRUPTED) {
        cli_error(s);
        free(run.recs);
        return 1;
    }
    bench_print_ops(stdout, o->fmt, run.recs, run.n);
    free(run.recs);
    return s == LM_OK ? 0 : 130;
}

int cmd_bench(int argc, char **argv) {
    bench_opts o;
    bool done;
    if (parse_opts(argc, argv, &o, &done)) return 1;
    if (done) return 0;
    return o.ops ? bench_ops(&o) : bench_model(&o);
}
