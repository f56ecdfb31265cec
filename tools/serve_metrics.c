/* lumen serve: metrics in the Prometheus text exposition format (version 0.0.4). */
#include "serve_metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int codes[SRV_N_CODES] = {200, 400, 401, 404, 405, 413, 500, 503, 204, 0};
static const char *const ep_names[SRV_EP_COUNT] = {
    "/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics", "other"};

static const double b_tokens[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
static const double b_step[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
static const double b_latency[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,  2.5,
                                   5,    10,    20,   30,  60,   120, 300};
static const double b_itl[] = {0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5};

#define N(a) (int)(sizeof a / sizeof a[0])

void srv_metrics_init(srv_metrics *m, int slots) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    m->slots = slots;
    m->batch_tokens = (srv_hist){.bounds = b_tokens, .n = N(b_tokens)};
    m->step_seconds = (srv_hist){.bounds = b_step, .n = N(b_step)};
    m->ttft = (srv_hist){.bounds = b_latency, .n = N(b_latency)};
    m->request_seconds = (srv_hist){.bounds = b_latency, .n = N(b_latency)};
    m->inter_token = (srv_hist){.bounds = b_itl, .n = N(b_itl)};
}

void srv_metrics_destroy(srv_metrics *m) {
    pthread_mutex_destroy(&m->mu);
}

void srv_metrics_http(srv_metrics *m, srv_ep ep, int status) {
    int k = SRV_N_CODES - 1; /* the last column counts any other status */
    for (int i = 0; i < SRV_N_CODES - 1; i++)
        if (codes[i] == status) k = i;
    pthread_mutex_lock(&m->mu);
    m->http[ep][k]++;
    pthread_mutex_unlock(&m->mu);
}

void srv_hist_add(srv_hist *h, double v) {
    int i = 0;
    while (i < h->n && v > h->bounds[i]) i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 8192;
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

static void head(sbuf *b, const char *name, const char *type, const char *help) {
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void hist(sbuf *b, const char *name, const char *help, const srv_hist *h) {
    head(b, name, "histogram", help);
    uint64_t cum = 0;
    for (int i = 0; i < h->n; i++) {
        cum += h->counts[i];
        put(b, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i], (unsigned long long)cum);
    }
    cum += h->counts[h->n];
    put(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
        (unsigned long long)cum, name, h->sum, name, (unsigned long long)h->count);
}

char *srv_metrics_render(srv_metrics *m) {
    sbuf b = {0};
    pthread_mutex_lock(&m->mu);
    head(&b, "lumen_http_requests_total", "counter", "HTTP requests answered, by path and status");
    for (int e = 0; e < SRV_EP_COUNT; e++)
        for (int k = 0; k < SRV_N_CODES; k++) {
            if (!m->http[e][k]) continue;
            char code[16];
            if (k == SRV_N_CODES - 1)
                snprintf(code, sizeof code, "other");
            else
                snprintf(code, sizeof code, "%d", codes[k]);
            put(&b, "lumen_http_requests_total{path=\"%s\",code=\"%s\"} %llu\n", ep_names[e], code,
                (unsigned long long)m->http[e][k]);
        }
    static const char *const reasons[5] = {"running", "stop", "length", "cancelled", "error"};
    head(&b, "lumen_requests_finished_total", "counter",
         "generation requests finished, by reason (cancelled: client gone or shutdown)");
    for (int r = 1; r < 5; r++)
        put(&b, "lumen_requests_finished_total{reason=\"%s\"} %llu\n", reasons[r],
            (unsigned long long)m->finished[r]);
    head(&b, "lumen_prompt_tokens_total", "counter", "prompt tokens of admitted requests");
    put(&b, "lumen_prompt_tokens_total %llu\n", (unsigned long long)m->prompt_tokens);
    head(&b, "lumen_prompt_tokens_cached_total", "counter",
         "prompt tokens whose KV entries were reused from a cached sequence");
    put(&b, "lumen_prompt_tokens_cached_total %llu\n", (unsigned long long)m->cached_tokens);
    head(&b, "lumen_generation_tokens_total", "counter", "tokens generated");
    put(&b, "lumen_generation_tokens_total %llu\n", (unsigned long long)m->gen_tokens);
    head(&b, "lumen_decode_steps_total", "counter", "engine steps (one lm_decode each)");
    put(&b, "lumen_decode_steps_total %llu\n", (unsigned long long)m->steps);
    head(&b, "lumen_queue_length", "gauge", "requests waiting for a sequence");
    put(&b, "lumen_queue_length %lld\n", (long long)m->queued);
    head(&b, "lumen_slots_active", "gauge", "sequences generating or prefilling");
    put(&b, "lumen_slots_active %lld\n", (long long)m->active);
    head(&b, "lumen_slots_total", "gauge", "sequences (--parallel)");
    put(&b, "lumen_slots_total %lld\n", (long long)m->slots);
    head(&b, "lumen_kv_cached_tokens", "gauge", "tokens held in the KV cache over all sequences");
    put(&b, "lumen_kv_cached_tokens %lld\n", (long long)m->kv_tokens);
    hist(&b, "lumen_batch_tokens", "tokens per decode step", &m->batch_tokens);
    hist(&b, "lumen_step_seconds", "duration of a decode step", &m->step_seconds);
    hist(&b, "lumen_time_to_first_token_seconds", "from submission to the first token", &m->ttft);
    hist(&b, "lumen_inter_token_seconds", "between two tokens of one sequence", &m->inter_token);
    hist(&b, "lumen_request_duration_seconds", "from submission to the end of generation",
         &m->request_seconds);
    pthread_mutex_unlock(&m->mu);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
