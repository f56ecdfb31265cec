/* lumen serve: the OpenAI-compatible HTTP server (options and startup; see serve_*.c). */
#include "cli.h"
#include "serve_engine.h"
#include "serve_http.h"
#include "serve_json_schema.h"
#include "serve_metrics.h"
#include "serve_request.h"
#include "serve_sha256.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SRV_DEFAULT_PORT     8080
#define SRV_DEFAULT_PARALLEL 8
#define SRV_DEFAULT_QUEUE    64
#define SRV_DEFAULT_CTX      2048       /* per sequence */
#define SRV_MAX_BODY         (4u << 20) /* a request body; larger ones get 413 */
#define SRV_DRAIN_SECONDS    30.0       /* SIGTERM: how long running requests may finish */

#define SRV_PARSE_MAX_BODY (16u << 20)

/* --parse-request: the server's request checks on a body from stdin, with no model. Prints
 * the request as parsed (exit 0) or the error body the server would send (exit 1). */
static int parse_request_mode(const char *which) {
    srv_endpoint ep;
    if (!strcmp(which, "chat"))
        ep = SRV_CHAT;
    else if (!strcmp(which, "completions"))
        ep = SRV_COMPLETION;
    else {
        fprintf(stderr, "lumen serve: error: --parse-request expects 'chat' or 'completions'\n");
        return 1;
    }
    char *body = malloc(SRV_PARSE_MAX_BODY);
    if (!body) return 1;
    size_t n = fread(body, 1, SRV_PARSE_MAX_BODY, stdin);
    srv_request r;
    srv_error e;
    int rc = srv_request_parse(ep, body, n, &r, &e);
    free(body);
    if (!rc && r.format != SRV_FMT_TEXT) {
        srv_schema *s = srv_schema_compile(r.schema, &e);
        rc = s ? 0 : e.status;
        srv_schema_free(s);
    }
    char *out = rc ? srv_error_json(&e) : srv_request_to_json(&r);
    srv_request_free(&r);
    if (out) puts(out);
    fflush(stdout); /* the body first, then the status line */
    free(out);
    if (rc) fprintf(stderr, "lumen serve: HTTP %d\n", rc);
    return rc ? 1 : 0;
}

/* "fp_" + 12 hex digits of SHA-256(model file's SHA-256 : engine version): changes when
 * the model file or the engine does. */
static int fingerprint(const char *path, char out[32]) {
    uint8_t h[32];
    if (srv_sha256_file(path, h)) return -1;
    char text[96];
    for (int i = 0; i < 32; i++) sprintf(text + 2 * i, "%02x", h[i]);
    snprintf(text + 64, sizeof text - 64, ":%s", LM_VERSION_STRING);
    srv_sha256 c;
    srv_sha256_init(&c);
    srv_sha256_update(&c, text, strlen(text));
    srv_sha256_final(&c, h);
    strcpy(out, "fp_");
    for (int i = 0; i < 6; i++) sprintf(out + 3 + 2 * i, "%02x", h[i]);
    return 0;
}

/* The model id clients name: --alias, else the file name without .gguf. */
static char *model_id(const char *alias, const char *path) {
    if (alias) return strdup(alias);
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    char *id = strdup(b);
    size_t n = id ? strlen(id) : 0;
    if (n > 5 && !strcmp(id + n - 5, ".gguf")) id[n - 5] = '\0';
    return id;
}

static const char *model_path(const cli_opts *o) {
    if (o->model) return o->model;
    const char *env = getenv("LUMEN_MODEL");
    if (env && *env) return env;
    if (access("models/" LM_DEFAULT_MODEL_FILE, R_OK) == 0) return "models/" LM_DEFAULT_MODEL_FILE;
    return LM_SOURCE_DIR "/models/" LM_DEFAULT_MODEL_FILE;
}

/* SIGTERM/SIGINT: stop accepting, let running requests finish (a second signal, or the
 * drain time running out, cancels them), then close everything and exit 0. */
static void shut_down(srv_server *S, srv_engine *E, const sigset_t *set, bool quiet) {
    srv_server_quiesce(S);
    srv_engine_drain(E);
    if (!quiet) fprintf(stderr, "lumen serve: shutting down; finishing running requests\n");
    double deadline = srv_now() + SRV_DRAIN_SECONDS;
    struct timespec slice = {0, 50 * 1000000L};
    bool cancelled = false;
    while (!srv_engine_idle(E)) {
        if (!cancelled && (sigtimedwait(set, NULL, &slice) > 0 || srv_now() > deadline)) {
            if (!quiet) fprintf(stderr, "lumen serve: cancelling running requests\n");
            srv_engine_cancel_all(E);
            cancelled = true;
        } else if (cancelled)
            nanosleep(&slice, NULL);
    }
    /* let the last answers reach their clients before the connections close */
    for (double until = srv_now() + 2; srv_server_connections(S) > 0 && srv_now() < until;)
        nanosleep(&slice, NULL);
}

static int serve(const cli_opts *o) {
    srv_config cfg = {0};
    cfg.host = o->host ? o->host : "127.0.0.1";
    cfg.port = o->port == 0 ? SRV_DEFAULT_PORT : o->port < 0 ? 0 : o->port;
    cfg.api_key = o->api_key;
    const char *env_key = getenv("LUMEN_API_KEY");
    if (!cfg.api_key && env_key && *env_key) cfg.api_key = env_key;
    if (cfg.api_key && !*cfg.api_key) cfg.api_key = NULL;
    cfg.insecure_no_auth = o->insecure_no_auth;
    if (!srv_host_is_loopback(cfg.host) && !cfg.api_key && !cfg.insecure_no_auth) {
        fprintf(stderr,
                "lumen serve: error: refusing to listen on '%s' without an API key: anyone who "
                "can reach it could use the model. Set --api-key KEY (or LUMEN_API_KEY), or "
                "pass --insecure-no-auth if that is what you want.\n",
                cfg.host);
        return 1;
    }
    cfg.parallel = o->parallel ? o->parallel : SRV_DEFAULT_PARALLEL;
    cfg.queue = o->queue ? o->queue : SRV_DEFAULT_QUEUE;
    cfg.n_ctx = o->ctx ? o->ctx : SRV_DEFAULT_CTX;
    cfg.n_threads = o->threads;
    cfg.kv_type = o->kv_type;
    cfg.model_path = model_path(o);
    cfg.chat_template = o->chat_template;
    cfg.system = o->system;
    cfg.quiet = o->quiet;
    cfg.max_body = SRV_MAX_BODY;
    char fp[32];
    if (fingerprint(cfg.model_path, fp)) {
        fprintf(stderr, "lumen serve: error: cannot read %s: %s\n", cfg.model_path,
                strerror(errno));
        return 1;
    }
    lm_chat_message probe = {"user", "hi"};
    lm_model *m = cli_load_model(o, false);
    if (!m) return 1;
    if (lm_chat_apply(m, cfg.chat_template, &probe, 1, true, NULL, 0) == INT32_MIN) {
        cli_error(LM_ERR_UNSUPPORTED);
        lm_model_free(m);
        return 1;
    }
    char *id = model_id(o->alias, cfg.model_path);
    cfg.model_id = id;
    /* signals are taken by sigwait here; every thread made below inherits the mask */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    sigdelset(&set, SIGPIPE);
    srv_metrics metrics;
    srv_metrics_init(&metrics, cfg.parallel);
    srv_engine *E = NULL;
    srv_server *S = NULL;
    int rc = 1;
    lm_status st = srv_engine_create(m, &cfg, &metrics, &E);
    if (st != LM_OK) {
        cli_error(st);
        goto done;
    }
    if (!(S = srv_server_start(m, E, &metrics, &cfg, fp))) goto done;
    char desc[256];
    lm_model_desc(m, desc, sizeof desc);
    fprintf(stderr,
            "lumen serve: %s as '%s' (%s), %d sequences x %d tokens\n"
            "lumen serve: listening on http://%s:%d%s\n",
            cfg.model_path, id, desc, cfg.parallel, srv_engine_n_ctx(E), cfg.host,
            srv_server_port(S), cfg.api_key ? " (API key required)" : "");
    int sig = 0;
    while (sigwait(&set, &sig) != 0) {
    }
    shut_down(S, E, &set, cfg.quiet);
    rc = 0;
done:
    srv_server_stop(S);
    srv_engine_free(E);
    srv_metrics_destroy(&metrics);
    lm_model_free(m);
    free(id);
    if (rc == 0 && !cfg.quiet) fprintf(stderr, "lumen serve: stopped\n");
    return rc;
}

void cmd_serve_help(void) {
    printf("\nFor serve, --ctx is per sequence (default %d), --system is the system message of "
           "chat\nrequests that have none, and -q silences the start and stop lines. Endpoints: "
           "POST\n/v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health, GET "
           "/metrics.\nSIGTERM or Ctrl-C: stop accepting, finish running requests (a second "
           "signal cancels\nthem), exit 0. See docs/server.md.\n",
           SRV_DEFAULT_CTX);
}

int cmd_serve(const cli_opts *o) {
    if (o->parse_request) return parse_request_mode(o->parse_request);
    return serve(o);
}
