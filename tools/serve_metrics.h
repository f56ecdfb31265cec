/* lumen serve: counters, gauges and histograms for GET /metrics (Prometheus text format). */
#ifndef LM_SERVE_METRICS_H
#define LM_SERVE_METRICS_H

#include <pthread.h>
#include <stdint.h>

typedef enum srv_ep {
    SRV_EP_CHAT,
    SRV_EP_COMPLETIONS,
    SRV_EP_MODELS,
    SRV_EP_HEALTH,
    SRV_EP_METRICS,
    SRV_EP_OTHER,
    SRV_EP_COUNT
} srv_ep;

#define SRV_HIST_MAX 24

typedef struct srv_hist {
    const double *bounds; /* upper bounds, ascending; +Inf is implied */
    int n;
    uint64_t counts[SRV_HIST_MAX + 1];
    double sum;
    uint64_t count;
} srv_hist;

#define SRV_N_CODES 10

typedef struct srv_metrics {
    pthread_mutex_t mu;
    uint64_t http[SRV_EP_COUNT][SRV_N_CODES]; /* by endpoint and status (srv_metrics.c) */
    uint64_t prompt_tokens, cached_tokens, gen_tokens;
    uint64_t finished[5]; /* by srv_finish: running (unused), stop, length, cancelled, error */
    uint64_t steps;
    int64_t queued, active, slots, kv_tokens;
    srv_hist batch_tokens, step_seconds, ttft, request_seconds, inter_token;
} srv_metrics;

void srv_metrics_init(srv_metrics *m, int slots);
void srv_metrics_destroy(srv_metrics *m);
/* Count one HTTP answer. */
void srv_metrics_http(srv_metrics *m, srv_ep ep, int status);
/* Add an observation; the caller holds m->mu. */
void srv_hist_add(srv_hist *h, double v);
/* The whole exposition as malloc'd text. */
char *srv_metrics_render(srv_metrics *m);

#endif
