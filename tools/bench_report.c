/* lumen bench output: a Markdown table like llama-bench's, JSON (an array of flat records,
 * the same keys for every backend) and CSV (one header line, the same keys). */
#include "bench_report.h"

#include <math.h>
#include <string.h>

/* ---- JSON helpers ---- */

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

/* A finite number, or null (JSON has no NaN). */
static void json_num(FILE *f, double v) {
    if (isfinite(v))
        fprintf(f, "%.10g", v);
    else
        fputs("null", f);
}

static void csv_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void csv_num(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.10g", v);
}

/* One key/value field, rendered for JSON (with its key) or CSV (value only). */
typedef struct {
    FILE *f;
    bench_format fmt;
    int n; /* fields written in this record */
} rec;

static void rec_sep(rec *w, const char *key) {
    if (w->n++) fputc(',', w->f);
    if (w->fmt == BENCH_JSON) fprintf(w->f, "\"%s\":", key);
}
static void rec_s(rec *w, const char *key, const char *v) {
    rec_sep(w, key);
    if (w->fmt == BENCH_JSON)
        json_str(w->f, v);
    else
        csv_str(w->f, v);
}
static void rec_d(rec *w, const char *key, double v) {
    rec_sep(w, key);
    if (w->fmt == BENCH_JSON)
        json_num(w->f, v);
    else
        csv_num(w->f, v);
}
static void rec_i(rec *w, const char *key, long long v) {
    rec_sep(w, key);
    fprintf(w->f, "%lld", v);
}

static void peak_fields(rec *w, const bench_peak *p, bool flops) {
    rec_d(w, "peak_bandwidth_gb_per_s", p->bw_bytes_s / 1e9);
    rec_d(w, "peak_bandwidth_min_gb_per_s", p->bw_min_bytes_s / 1e9);
    rec_i(w, "peak_bandwidth_probes", p->n_probes);
    rec_i(w, "peak_bandwidth_threads", p->n_threads);
    rec_i(w, "peak_bandwidth_buffer_bytes", (long long)p->bw_buffer);
    if (flops) {
        rec_d(w, "peak_gflop_per_s", p->flops / 1e9);
        rec_s(w, "peak_flops_isa", p->isa ? p->isa : "");
    }
}

/* ---- model records ---- */

/* The record's step roof was measured (tg, and it could be) */
static bool has_step_roof(const bench_record *r) {
    return r->step_roof_runs > 0 && r->step_roof_bytes_s > 0;
}

/* A decode record's roofline is defined: its step roof was measured, and the probe reads the
 * memory the weights are in (the host's: the CPU backend; a GPU's weights are in device
 * memory, which the host probe does not measure) */
static bool has_roofline(const bench_record *r) {
    return r->bw_bytes_s >= 0 && has_step_roof(r) && r->peak.bw_bytes_s > 0 && r->backend &&
           !strcmp(r->backend, "cpu");
}
/* Decode's roofline: the lower of the bandwidth probe and the step roof, and which it is */
static double roofline(const bench_record *r) {
    return r->peak.bw_bytes_s <= r->step_roof_bytes_s ? r->peak.bw_bytes_s : r->step_roof_bytes_s;
}
static const char *decode_bound(const bench_record *r) {
    return r->peak.bw_bytes_s <= r->step_roof_bytes_s ? "memory" : "compute";
}

static void model_fields(rec *w, const bench_record *r) {
    rec_s(w, "lumen_version", LM_VERSION_STRING);
    rec_s(w, "model_file", r->model_file);
    rec_s(w, "model_desc", r->model_desc);
    rec_i(w, "model_size_bytes", (long long)r->model_size);
    rec_i(w, "model_n_params", (long long)r->n_params);
    rec_s(w, "backend", r->backend);
    rec_s(w, "device", r->device);
    rec_i(w, "n_threads", r->n_threads);
    rec_s(w, "test", r->test);
    rec_i(w, "n_prompt", r->n_prompt);
    rec_i(w, "n_gen", r->n_gen);
    rec_i(w, "n_depth", r->n_depth);
    rec_i(w, "n_reps", r->n_reps);
    rec_d(w, "avg_tok_per_s", r->avg_ts);
    rec_d(w, "sd_tok_per_s", r->sd_ts);
    rec_d(w, "avg_ms", r->avg_ms);
    rec_d(w, "sd_ms", r->sd_ms);
    rec_sep(w, "samples_tok_per_s");
    if (w->fmt == BENCH_JSON) fputc('[', w->f);
    if (w->fmt == BENCH_CSV) fputc('"', w->f);
    for (int i = 0; i < r->n_reps; i++) {
        if (i) fputc(w->fmt == BENCH_JSON ? ',' : ';', w->f);
        fprintf(w->f, "%.10g", r->samples[i]);
    }
    fputc(w->fmt == BENCH_JSON ? ']' : '"', w->f);
    rec_i(w, "weight_bytes_per_token", (long long)r->weight_bytes_per_token);
    const bool bw = r->bw_bytes_s >= 0;
    rec_d(w, "bandwidth_gb_per_s", bw ? r->bw_bytes_s / 1e9 : NAN);
    rec_d(w, "bandwidth_pct_of_peak",
          bw && r->peak.bw_bytes_s > 0 ? 100 * r->bw_bytes_s / r->peak.bw_bytes_s : NAN);
    rec_d(w, "kv_bytes_per_token", bw ? r->kv_bytes : NAN);
    rec_d(w, "bandwidth_kv_gb_per_s", bw ? r->bw_kv_bytes_s / 1e9 : NAN);
    rec_d(w, "bandwidth_kv_pct_of_peak",
          bw && r->peak.bw_bytes_s > 0 ? 100 * r->bw_kv_bytes_s / r->peak.bw_bytes_s : NAN);
    peak_fields(w, &r->peak, false);
    const bench_peak *p = &r->peak;
    const bool roofed = p->n_roofs > 0 && p->roof_bytes_s > 0;
    rec_d(w, "decode_roof_gb_per_s", roofed ? p->roof_bytes_s / 1e9 : NAN);
    rec_d(w, "decode_roof_min_gb_per_s", roofed ? p->roof_min_bytes_s / 1e9 : NAN);
    rec_i(w, "decode_roof_runs", p->n_roofs);
    const bool step = has_step_roof(r);
    rec_d(w, "decode_step_roof_gb_per_s", step ? r->step_roof_bytes_s / 1e9 : NAN);
    rec_d(w, "decode_step_roof_min_gb_per_s", step ? r->step_roof_min_bytes_s / 1e9 : NAN);
    rec_i(w, "decode_step_roof_runs", step ? r->step_roof_runs : 0);
    rec_i(w, "decode_step_roof_layer_kinds", step ? r->step_roof_layer_kinds : 0);
    rec_s(w, "decode_bound", has_roofline(r) ? decode_bound(r) : "");
    rec_d(w, "bandwidth_pct_of_roofline",
          has_roofline(r) ? 100 * r->bw_bytes_s / roofline(r) : NAN);
}

static const char *const model_keys =
    "lumen_version,model_file,model_desc,model_size_bytes,model_n_params,backend,device,"
    "n_threads,test,n_prompt,n_gen,n_depth,n_reps,avg_tok_per_s,sd_tok_per_s,avg_ms,sd_ms,"
    "samples_tok_per_s,weight_bytes_per_token,bandwidth_gb_per_s,bandwidth_pct_of_peak,"
    "kv_bytes_per_token,bandwidth_kv_gb_per_s,bandwidth_kv_pct_of_peak,"
    "peak_bandwidth_gb_per_s,peak_bandwidth_min_gb_per_s,peak_bandwidth_probes,"
    "peak_bandwidth_threads,peak_bandwidth_buffer_bytes,decode_roof_gb_per_s,"
    "decode_roof_min_gb_per_s,decode_roof_runs,decode_step_roof_gb_per_s,"
    "decode_step_roof_min_gb_per_s,decode_step_roof_runs,decode_step_roof_layer_kinds,"
    "decode_bound,bandwidth_pct_of_roofline";

static void print_records(FILE *f, bench_format fmt, const void *recs, size_t size, int n,
                          const char *keys, void (*fields)(rec *, const void *)) {
    if (fmt == BENCH_CSV) fprintf(f, "%s\n", keys);
    if (fmt == BENCH_JSON) fputs("[\n", f);
    for (int i = 0; i < n; i++) {
        rec w = {f, fmt, 0};
        if (fmt == BENCH_JSON) fputs("  {", f);
        fields(&w, (const char *)recs + (size_t)i * size);
        if (fmt == BENCH_JSON) fputs(i + 1 < n ? "},\n" : "}\n", f);
        if (fmt == BENCH_CSV) fputc('\n', f);
    }
    if (fmt == BENCH_JSON) fputs("]\n", f);
}

static void model_fields_v(rec *w, const void *r) {
    model_fields(w, r);
}

static const char *human_bytes(double n, char *buf, size_t size) {
    const char *u[] = {"B", "KiB", "MiB", "GiB"};
    int i = 0;
    while (n >= 1024 && i < 3) n /= 1024, i++;
    snprintf(buf, size, "%.2f %s", n, u[i]);
    return buf;
}

/* "GB/s" and "% of peak" cells of a decode bandwidth (empty for prefill) */
static void bw_cells(const bench_record *r, double bytes_s, char *bw, char *pct, size_t size) {
    bw[0] = pct[0] = '\0';
    if (bytes_s < 0) return;
    snprintf(bw, size, "%.2f", bytes_s / 1e9);
    if (r->peak.bw_bytes_s > 0) snprintf(pct, size, "%.1f", 100 * bytes_s / r->peak.bw_bytes_s);
}

static void model_md(FILE *f, const bench_record *r, int n) {
    char b1[32], b2[32];
    int32_t last_threads = -1;
    bool depth = false; /* then the KV cache's reads get columns of their own */
    for (int i = 0; i < n; i++) {
        depth |= r[i].n_depth > 0;
        if (r[i].peak.n_threads == last_threads) continue;
        last_threads = r[i].peak.n_threads;
        fprintf(f,
                "memory bandwidth probe: %.2f GB/s (%d threads, best of 6 passes over %s; the "
                "highest of %d probes, before the tests and after each, the lowest %.2f GB/s)\n",
                r[i].peak.bw_bytes_s / 1e9, r[i].peak.n_threads,
                human_bytes((double)r[i].peak.bw_buffer, b1, sizeof b1), r[i].peak.n_probes,
                r[i].peak.bw_min_bytes_s / 1e9);
        if (r[i].peak.n_roofs > 0)
            fprintf(f,
                    "decode compute roof: %.2f GB/s (the model's %d distinct matrix ops run with "
                    "their weights in cache; the highest of %d runs, the lowest %.2f GB/s)\n",
                    r[i].peak.roof_bytes_s / 1e9, r[i].peak.roof_ops, r[i].peak.n_roofs,
                    r[i].peak.roof_min_bytes_s / 1e9);
        fprintf(f, "device: %s\n", r[i].device); /* its thread count is in the name */
    }
    if (n > 0) fputc('\n', f);
    fprintf(f,
            "| model | size | params | backend | threads | test | t/s | GB/s | %% of peak | step "
            "roof | bound | %% of roofline |%s\n",
            depth ? " GB/s +KV | % +KV |" : "");
    fprintf(
        f, "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |%s\n",
        depth ? " ---: | ---: |" : "");
    bool any_step = false;
    for (int i = 0; i < n; i++) {
        char bw[32], pct[32], kbw[32], kpct[32], rpct[32] = "", sroof[32] = "";
        bw_cells(&r[i], r[i].bw_bytes_s, bw, pct, sizeof bw);
        bw_cells(&r[i], r[i].bw_kv_bytes_s, kbw, kpct, sizeof kbw);
        const bool roofed = has_roofline(&r[i]);
        any_step |= has_step_roof(&r[i]);
        if (roofed) snprintf(rpct, sizeof rpct, "%.1f", 100 * r[i].bw_bytes_s / roofline(&r[i]));
        if (has_step_roof(&r[i]))
            snprintf(sroof, sizeof sroof, "%.2f", r[i].step_roof_bytes_s / 1e9);
        fprintf(f, "| %s | %s | %.2f M | %s | %d | %s | %.2f ± %.2f | %s | %s | %s | %s | %s |",
                r[i].model_desc, human_bytes((double)r[i].model_size, b1, sizeof b1),
                (double)r[i].n_params / 1e6, r[i].backend, r[i].n_threads, r[i].test, r[i].avg_ts,
                r[i].sd_ts, bw, pct, sroof, roofed ? decode_bound(&r[i]) : "", rpct);
        if (depth) fprintf(f, " %s | %s |", kbw, kpct);
        fputc('\n', f);
    }
    if (n > 0)
        fprintf(f,
                "\nGB/s (decode) = %s of weights read per token x tokens/s: every weight tensor "
                "once, the token embedding as the output head when it is tied (else one row); "
                "%s%s\n",
                human_bytes((double)r[0].weight_bytes_per_token, b2, sizeof b2),
                depth ? "+KV adds the KV-cache rows each step attends to."
                      : "KV-cache reads not counted.",
                any_step ? " Step roof: the weight bytes over a decode step's time with its "
                           "weights in cache (the whole step; the compute roof above is its "
                           "matrix ops alone). Bound: memory where the probe is at or below the "
                           "step roof, else compute; % of roofline is GB/s against the lower of "
                           "the two."
                         : "");
}

void bench_print_model(FILE *f, bench_format fmt, const bench_record *r, int n) {
    if (fmt == BENCH_MD)
        model_md(f, r, n);
    else
        print_records(f, fmt, r, sizeof *r, n, model_keys, model_fields_v);
}

/* ---- op records ---- */

void bench_op_roofline(bench_op_record *o) {
    const lm_bench_op_result *r = &o->r;
    const double t = r->t_mean_us * 1e-6, bw = o->peak.bw_bytes_s, pf = o->peak.flops;
    o->gb_s = t > 0 ? r->bytes / t / 1e9 : 0;
    o->gflop_s = t > 0 ? r->flops / t / 1e9 : 0;
    o->intensity = r->bytes > 0 ? r->flops / r->bytes : 0;
    /* attainable = min(peak FLOP/s, intensity x bandwidth); ops without arithmetic are
     * measured against the bandwidth alone */
    const bool compute = r->flops > 0 && pf > 0 && o->intensity * bw > pf;
    o->bound = compute ? "compute" : "memory";
    if (compute)
        o->roofline_pct = 100 * o->gflop_s * 1e9 / pf;
    else
        o->roofline_pct = bw > 0 ? 100 * o->gb_s * 1e9 / bw : 0;
}

static void op_fields(rec *w, const void *p) {
    const bench_op_record *o = p;
    rec_s(w, "lumen_version", LM_VERSION_STRING);
    rec_s(w, "backend", o->backend);
    rec_s(w, "device", o->r.device);
    rec_i(w, "n_threads", o->n_threads);
    rec_s(w, "case", o->r.desc);
    rec_s(w, "op", o->r.op);
    rec_s(w, "type", o->r.type);
    rec_i(w, "k", o->r.k);
    rec_i(w, "n", o->r.n);
    rec_i(w, "m", o->r.m);
    rec_i(w, "n_calls", o->r.n_calls);
    rec_d(w, "avg_us", o->r.t_mean_us);
    rec_d(w, "sd_us", o->r.t_sd_us);
    rec_d(w, "bytes", o->r.bytes);
    rec_d(w, "flops", o->r.flops);
    rec_d(w, "gb_per_s", o->gb_s);
    rec_d(w, "gflop_per_s", o->gflop_s);
    rec_d(w, "flops_per_byte", o->intensity);
    rec_s(w, "bound", o->bound);
    rec_d(w, "roofline_pct", o->roofline_pct);
    rec_i(w, "n_copies", o->r.n_copies);
    peak_fields(w, &o->peak, true);
}

static const char *const op_keys =
    "lumen_version,backend,device,n_threads,case,op,type,k,n,m,n_calls,avg_us,sd_us,bytes,flops,"
    "gb_per_s,gflop_per_s,flops_per_byte,bound,roofline_pct,n_copies,peak_bandwidth_gb_per_s,"
    "peak_bandwidth_min_gb_per_s,peak_bandwidth_probes,"
    "peak_bandwidth_threads,peak_bandwidth_buffer_bytes,peak_gflop_per_s,peak_flops_isa";

void bench_print_ops(FILE *f, bench_format fmt, const bench_op_record *r, int n) {
    if (fmt != BENCH_MD) {
        print_records(f, fmt, r, sizeof *r, n, op_keys, op_fields);
        return;
    }
    if (n == 0) return;
    fprintf(f,
            "roofline: memory %.2f GB/s (read probe, %d threads), compute %.1f GFLOP/s (%s FMA "
            "probe, %d threads)\ndevice: %s\n\n",
            r[0].peak.bw_bytes_s / 1e9, r[0].peak.n_threads, r[0].peak.flops / 1e9,
            r[0].peak.isa ? r[0].peak.isa : "?", r[0].peak.n_threads, r[0].r.device);
    fprintf(f, "| op case | µs/call | GB/s | GFLOP/s | bound | %% of roofline | copies |\n");
    fprintf(f, "| --- | ---: | ---: | ---: | --- | ---: | ---: |\n");
    for (int i = 0; i < n; i++)
        fprintf(f, "| %s | %.2f ± %.2f | %.2f | %.2f | %s | %.1f | %d |\n", r[i].r.desc,
                r[i].r.t_mean_us, r[i].r.t_sd_us, r[i].gb_s, r[i].gflop_s, r[i].bound,
                r[i].roofline_pct, r[i].r.n_copies);
    fprintf(f, "\nbytes = operands read + results written once; copies > 1: weights/caches cycled "
               "over that many copies so they come from memory. Quantized mul_mat counts 2 "
               "operations per multiply-add against the FP32 FMA peak; > 100%% of the memory "
               "roofline means the operands were served from cache.\n");
}
