/* lumen serve: the engine (one thread, one context, continuous batching) and the task a
 * request becomes. The HTTP side (serve_http.c) checks and tokenizes a request, submits a
 * task, then waits on it; the engine admits tasks between decode steps, decodes every
 * active sequence in one lm_decode per step and publishes text into the task. */
#ifndef LM_SERVE_ENGINE_H
#define LM_SERVE_ENGINE_H

#include "lumen.h"
#include "serve_json_schema.h"
#include "serve_request.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct srv_config {
    const char *host;
    int port;
    const char *api_key; /* NULL: no auth */
    bool insecure_no_auth;
    int parallel;  /* sequences (KV slots) */
    int queue;     /* waiting tasks before 503 */
    int n_ctx;     /* positions per sequence */
    int n_threads; /* 0: all cores */
    lm_kv_type kv_type;
    const char *model_path;
    const char *model_id;
    const char *chat_template; /* NULL: the model's */
    const char *system;        /* default system message, or NULL */
    bool quiet;
    size_t max_body; /* bytes of a request body before 413 */
} srv_config;

/* One generated token's log-probabilities (logprobs=true). */
typedef struct srv_logprob {
    lm_token token;
    float logprob;
    int32_t n_top;
    lm_token top[SRV_MAX_TOP_LOGPROBS];
    float top_lp[SRV_MAX_TOP_LOGPROBS];
} srv_logprob;

typedef enum srv_finish {
    SRV_RUNNING,
    SRV_FINISH_STOP,
    SRV_FINISH_LENGTH,
    SRV_FINISH_CANCELLED, /* client gone or shutdown */
    SRV_FINISH_ERROR,
} srv_finish;

typedef struct srv_task {
    /* set before submit, read-only afterwards */
    srv_request req;
    lm_token *prompt;
    int32_t n_prompt;
    int32_t max_gen;    /* tokens to generate at most */
    srv_schema *schema; /* constrained decoding, or NULL */
    uint64_t seed;
    double t_submit; /* seconds (monotonic) */

    /* shared with the engine, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    char *text; /* visible text published so far */
    size_t text_len, text_cap;
    srv_logprob *lps; /* one per published token when logprobs is on */
    int32_t n_lps, cap_lps;
    srv_finish finish;
    srv_error err;         /* when finish == SRV_FINISH_ERROR */
    int32_t n_cached;      /* prompt tokens whose KV was reused */
    int32_t n_gen;         /* completion tokens */
    bool admitted;         /* took a sequence */
    atomic_bool cancelled; /* the client went away: stop at once (read without mu) */
} srv_task;

srv_task *srv_task_new(void);
/* Drop one reference (the HTTP side's or the engine's); the last frees the task. */
void srv_task_release(srv_task *t);
/* Ask the engine to stop this task (client disconnected). */
void srv_task_cancel(srv_task *t);

typedef struct srv_engine srv_engine;
struct srv_metrics;

lm_status srv_engine_create(lm_model *m, const srv_config *cfg, struct srv_metrics *metrics,
                            srv_engine **out);
/* Hand a task to the engine (it takes a reference). Returns 0, or 503 when the queue is
 * full or the engine is shutting down (err filled). */
int srv_engine_submit(srv_engine *e, srv_task *t, srv_error *err);
/* Stop admitting; queued tasks fail with 503; active ones run to their end. */
void srv_engine_drain(srv_engine *e);
/* Cancel every active task now (second signal, or the drain timeout). */
void srv_engine_cancel_all(srv_engine *e);
/* True when nothing is queued or active. */
bool srv_engine_idle(srv_engine *e);
bool srv_engine_draining(srv_engine *e);
void srv_engine_free(srv_engine *e); /* joins the thread */
int32_t srv_engine_n_ctx(const srv_engine *e);

double srv_now(void);

#endif
