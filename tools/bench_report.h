/* lumen bench: the records it measures and their Markdown / JSON / CSV renderings. */
#ifndef LM_BENCH_REPORT_H
#define LM_BENCH_REPORT_H

#include "lumen.h"

#include <stdint.h>
#include <stdio.h>

typedef enum { BENCH_MD, BENCH_JSON, BENCH_CSV } bench_format;

/* The machine's ceilings per thread count. The bandwidth probe runs before the model tests and
 * again after each one, and the peak is the highest it measured: a machine whose bandwidth
 * drifts (shared hosts) is then judged against what it reached during the run, never against
 * a low moment that a test may have missed. */
typedef struct bench_peak {
    int32_t n_threads;
    double bw_bytes_s;     /* lm_bench_mem_bandwidth, the highest of n_probes */
    double bw_min_bytes_s; /* the lowest of them */
    int32_t n_probes;
    uint64_t bw_buffer; /* bytes the probe read per pass */
    double flops;       /* lm_bench_flops_peak (0: not measured) */
    const char *isa;
    /* decode's compute roof (lm_bench_decode_roof), measured with each probe when the run
     * has decode tests: the highest and lowest, n_roofs times (0: not measured) */
    double roof_bytes_s, roof_min_bytes_s;
    int32_t n_roofs, roof_ops;
} bench_peak;

/* One model test: pp<N> (prefill N tokens in one batch) or tg<N> (N single-token steps),
 * " @ d<D>" when it starts from D tokens already in the KV cache. */
typedef struct bench_record {
    const char *model_file;
    char model_desc[128];
    uint64_t model_size, n_params;
    const char *backend;
    char device[256];
    int32_t n_threads;
    char test[48];
    int32_t n_prompt, n_gen, n_depth, n_reps;
    double *samples; /* tokens/s of each repetition (n_reps) */
    double avg_ts, sd_ts, avg_ms, sd_ms;
    uint64_t weight_bytes_per_token;
    double bw_bytes_s;    /* tg: weight_bytes_per_token x avg_ts; pp: < 0 (not defined) */
    double kv_bytes;      /* tg: KV-cache bytes a timed step reads, their mean; pp: < 0 */
    double bw_kv_bytes_s; /* tg: (weight_bytes_per_token + kv_bytes) x avg_ts; pp: < 0 */
    /* tg: weight_bytes_per_token over the step's time with its weights in cache
     * (lm_bench_decode_step_roof), what bounds decode where memory does not, measured before
     * the repetitions and after them: the highest and the lowest (< 0: not measured) */
    double step_roof_bytes_s, step_roof_min_bytes_s;
    int32_t step_roof_runs;        /* 0: none (pp; or it could not be measured) */
    int32_t step_roof_layer_kinds; /* layers of distinct types and shapes it read */
    bench_peak peak;
} bench_record;

/* One op case of --ops with its roofline. */
typedef struct bench_op_record {
    lm_bench_op_result r;
    int32_t n_threads;
    const char *backend;
    double gb_s, gflop_s, intensity, roofline_pct;
    const char *bound; /* "memory" or "compute" */
    bench_peak peak;
} bench_op_record;

void bench_print_model(FILE *f, bench_format fmt, const bench_record *r, int n);
void bench_print_ops(FILE *f, bench_format fmt, const bench_op_record *r, int n);
/* Fill the roofline fields of an op record from r->r and r->peak. */
void bench_op_roofline(bench_op_record *r);

#endif
