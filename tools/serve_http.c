/* lumen serve: HTTP. libmicrohttpd runs one thread per connection, so a handler may block:
 * a non-streaming request waits for its task, a stream's reader waits for the next text.
 * Both poll the socket while they wait, so a client that goes away cancels its task within
 * a fraction of a second and frees its sequence. */
#include "serve_http.h"

#include "serve_json_schema.h"
#include "serve_request.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WAIT_SLICE_MS 100 /* how often a waiting handler checks its client */

struct srv_server {
    struct MHD_Daemon *d;
    lm_model *model;
    srv_engine *engine;
    srv_metrics *metrics;
    const srv_config *cfg;
    char fingerprint[32];
    int64_t model_created;
    int32_t n_ctx, n_vocab;
    int port;
    atomic_ullong next_id;
    atomic_bool quiesced;
    uint64_t id_salt;
};

typedef struct srv_conn {
    char *body;
    size_t len, cap;
    bool too_large;
    srv_ep ep;
} srv_conn;

/* ---- plain answers -------------------------------------------------------------------- */

static enum MHD_Result answer(srv_server *S, struct MHD_Connection *c, srv_ep ep, int status,
                              const char *type, char *body /* taken */) {
    if (!body) {
        status = 500;
        type = "application/json";
        body = strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
                      "\"param\":null,\"code\":null}}");
    }
    size_t n = body ? strlen(body) : 0;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(n, body ? body : (char *)"", MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == 401) MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (status == 405)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW,
                                ep == SRV_EP_CHAT || ep == SRV_EP_COMPLETIONS ? "POST" : "GET");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    srv_metrics_http(S->metrics, ep, status);
    return ret;
}

static enum MHD_Result answer_json(srv_server *S, struct MHD_Connection *c, srv_ep ep, int status,
                                   cJSON *j /* taken */) {
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    return answer(S, c, ep, status, "application/json", text);
}

static enum MHD_Result answer_error(srv_server *S, struct MHD_Connection *c, srv_ep ep,
                                    const srv_error *e) {
    return answer(S, c, ep, e->status, "application/json", srv_error_json(e));
}

static enum MHD_Result answer_errorf(srv_server *S, struct MHD_Connection *c, srv_ep ep, int status,
                                     const char *type, const char *code, const char *param,
                                     const char *msg) {
    srv_error e;
    srv_error_set(&e, status, type, code, param, "%s", msg);
    return answer_error(S, c, ep, &e);
}

/* ---- helpers -------------------------------------------------------------------------- */

/* The client closed its end (or the socket broke). */
static bool peer_gone(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return true;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return true;
    char b;
    ssize_t n = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static void timed_wait(srv_task *t) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += WAIT_SLICE_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&t->cv, &t->mu, &ts);
}

static bool auth_ok(srv_server *S, struct MHD_Connection *c, srv_error *e) {
    const char *key = S->cfg->api_key;
    if (!key) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7)) {
        srv_error_set(e, 401, "invalid_request_error", "invalid_api_key", NULL,
                      "You didn't provide an API key. You need to provide your API key in an "
                      "Authorization header using Bearer auth (i.e. Authorization: Bearer "
                      "YOUR_KEY).");
        return false;
    }
    const char *given = h + 7;
    size_t n = strlen(key), m = strlen(given);
    unsigned diff = (unsigned)(n ^ m);
    for (size_t i = 0; i < m; i++) diff |= (unsigned char)given[i] ^ (unsigned char)key[i % n];
    if (diff) {
        srv_error_set(e, 401, "invalid_request_error", "invalid_api_key", NULL,
                      "Incorrect API key provided.");
        return false;
    }
    return true;
}

static void make_id(srv_server *S, const char *prefix, char *out, size_t size) {
    unsigned long long n = atomic_fetch_add(&S->next_id, 1);
    uint64_t x = (n + 1) * 0x9e3779b97f4a7c15ull ^ S->id_salt;
    x ^= x >> 31;
    snprintf(out, size, "%s%016llx%08llx", prefix, (unsigned long long)x, n & 0xffffffffull);
}

static cJSON *model_json(srv_server *S) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", S->cfg->model_id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)S->model_created);
    cJSON_AddStringToObject(m, "owned_by", "lumen");
    return m;
}

/* Text as a JSON string value: invalid UTF-8 becomes U+FFFD. */
static cJSON *text_json(const char *s, size_t n) {
    char *c = srv_utf8_clean(s, n, NULL);
    cJSON *j = cJSON_CreateString(c ? c : "");
    free(c);
    return j;
}

/* ---- preparing a task ----------------------------------------------------------------- */

static lm_token *tokenize(const lm_model *m, const char *text, int32_t *n) {
    int32_t len = (int32_t)strlen(text);
    int32_t need = lm_tokenize(m, text, len, NULL, 0, true, true);
    if (need == INT32_MIN) return NULL;
    if (need < 0) need = -need;
    lm_token *t = malloc(((size_t)need + 1) * sizeof *t);
    if (!t) return NULL;
    *n = lm_tokenize(m, text, len, t, need + 1, true, true);
    if (*n < 0) {
        free(t);
        return NULL;
    }
    return t;
}

static char *render_chat(srv_server *S, const srv_request *r) {
    bool has_system = false;
    for (size_t i = 0; i < r->n_messages; i++) has_system |= !strcmp(r->messages[i].role, "system");
    size_t extra = S->cfg->system && !has_system;
    lm_chat_message *msgs = malloc((r->n_messages + extra) * sizeof *msgs);
    if (!msgs) return NULL;
    if (extra) msgs[0] = (lm_chat_message){"system", S->cfg->system};
    for (size_t i = 0; i < r->n_messages; i++)
        msgs[i + extra] = (lm_chat_message){r->messages[i].role, r->messages[i].content};
    const char *tmpl = S->cfg->chat_template;
    size_t n = r->n_messages + extra;
    int32_t need = lm_chat_apply(S->model, tmpl, msgs, n, true, NULL, 0);
    char *text = NULL;
    if (need != INT32_MIN) {
        need = need < 0 ? -need : need;
        text = malloc((size_t)need + 1);
        if (text && lm_chat_apply(S->model, tmpl, msgs, n, true, text, need + 1) < 0) {
            free(text);
            text = NULL;
        }
    }
    free(msgs);
    return text;
}

static int context_error(srv_server *S, srv_task *t, srv_error *err) {
    const srv_request *r = &t->req;
    const char *what = r->endpoint == SRV_CHAT ? "messages" : "prompt";
    if (t->n_prompt >= S->n_ctx)
        return srv_error_set(err, 400, "invalid_request_error", "context_length_exceeded", what,
                             "This model's maximum context length is %d tokens. However, your "
                             "%s resulted in %d tokens. Please reduce the length of the %s.",
                             S->n_ctx, what, t->n_prompt, what);
    if (r->max_tokens > 0 && t->n_prompt + r->max_tokens > S->n_ctx)
        return srv_error_set(err, 400, "invalid_request_error", "context_length_exceeded", what,
                             "This model's maximum context length is %d tokens. However, you "
                             "requested %d tokens (%d in the %s, %d in the completion). Please "
                             "reduce the length of the %s or completion.",
                             S->n_ctx, t->n_prompt + r->max_tokens, t->n_prompt, what,
                             r->max_tokens, what);
    return 0;
}

static uint64_t fresh_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    static atomic_ullong counter;
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                 (atomic_fetch_add(&counter, 1) * 0x9e3779b97f4a7c15ull);
    return x ^ (uint64_t)getpid() << 40;
}

/* Model name, schema, prompt tokens, limits: everything that can fail before the engine. */
static int prepare(srv_server *S, srv_task *t, srv_error *err) {
    srv_request *r = &t->req;
    if (r->model && strcmp(r->model, S->cfg->model_id))
        return srv_error_set(err, 404, "invalid_request_error", "model_not_found", "model",
                             "The model '%.200s' does not exist or you do not have access to it "
                             "(this server has '%s').",
                             r->model, S->cfg->model_id);
    for (int32_t i = 0; i < r->n_bias; i++)
        if (r->bias[i].token >= S->n_vocab)
            return srv_error_set(err, 400, "invalid_request_error", "invalid_value", "logit_bias",
                                 "Invalid 'logit_bias': token %d is outside the vocabulary (%d "
                                 "tokens).",
                                 r->bias[i].token, S->n_vocab);
    if (r->format != SRV_FMT_TEXT && !(t->schema = srv_schema_compile(r->schema, err)))
        return err->status;
    const char *what = r->endpoint == SRV_CHAT ? "messages" : "prompt";
    if (r->prompt_ids) {
        for (int32_t i = 0; i < r->n_prompt_ids; i++)
            if (r->prompt_ids[i] >= S->n_vocab)
                return srv_error_set(err, 400, "invalid_request_error", "invalid_value", "prompt",
                                     "Invalid 'prompt': token %d is outside the vocabulary (%d "
                                     "tokens).",
                                     r->prompt_ids[i], S->n_vocab);
        t->prompt = malloc((size_t)r->n_prompt_ids * sizeof *t->prompt);
        if (!t->prompt) return srv_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
        memcpy(t->prompt, r->prompt_ids, (size_t)r->n_prompt_ids * sizeof *t->prompt);
        t->n_prompt = r->n_prompt_ids;
    } else {
        char *text = r->endpoint == SRV_CHAT ? render_chat(S, r) : r->prompt;
        if (!text)
            return srv_error_set(err, 500, "server_error", NULL, NULL,
                                 "cannot apply the chat template: %s", lm_last_error());
        t->prompt = tokenize(S->model, text, &t->n_prompt);
        if (text != r->prompt) free(text);
        if (!t->prompt)
            return srv_error_set(err, 400, "invalid_request_error", "invalid_value", what,
                                 "cannot tokenize the %s: %s", what, lm_last_error());
    }
    if (t->n_prompt == 0)
        return srv_error_set(err, 400, "invalid_request_error", "invalid_value", what,
                             "The %s is empty.", what);
    if (context_error(S, t, err)) return err->status;
    /* the completions API's default is 16 tokens; chat runs to the end of the context */
    t->max_gen = r->max_tokens >= 0              ? r->max_tokens
                 : r->endpoint == SRV_COMPLETION ? 16
                                                 : S->n_ctx - t->n_prompt;
    t->seed = r->has_seed ? r->seed : fresh_seed();
    t->t_submit = srv_now();
    return 0;
}

/* ---- answer bodies -------------------------------------------------------------------- */

typedef struct out_ctx {
    char id[48];
    int64_t created;
    bool chat;
    char *echo;    /* completions with echo: the prompt text */
    size_t lp_off; /* completions: text offset of the next token */
} out_ctx;

static cJSON *base(srv_server *S, const out_ctx *o, const char *object) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", o->id);
    cJSON_AddStringToObject(j, "object", object);
    cJSON_AddNumberToObject(j, "created", (double)o->created);
    cJSON_AddStringToObject(j, "model", S->cfg->model_id);
    cJSON_AddStringToObject(j, "system_fingerprint", S->fingerprint);
    return j;
}

static cJSON *usage_json(const srv_task *t) {
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", t->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", t->n_gen);
    cJSON_AddNumberToObject(u, "total_tokens", t->n_prompt + t->n_gen);
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", t->n_cached);
    return u;
}

static const char *finish_name(srv_finish f) {
    return f == SRV_FINISH_LENGTH ? "length" : "stop";
}

static cJSON *token_json(srv_server *S, lm_token tok, float lp, bool bytes) {
    char piece[256];
    int32_t n = lm_token_to_piece(S->model, tok, piece, sizeof piece, false);
    if (n < 0) n = 0;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "token", text_json(piece, (size_t)n));
    cJSON_AddNumberToObject(j, "logprob", lp);
    if (bytes) {
        cJSON *b = cJSON_AddArrayToObject(j, "bytes");
        for (int32_t i = 0; i < n; i++)
            cJSON_AddItemToArray(b, cJSON_CreateNumber((unsigned char)piece[i]));
    }
    return j;
}

/* Chat: {"content": [{token, logprob, bytes, top_logprobs}], "refusal": null}. */
static cJSON *chat_logprobs(srv_server *S, const srv_logprob *lps, int32_t n) {
    cJSON *j = cJSON_CreateObject(), *content = cJSON_AddArrayToObject(j, "content");
    for (int32_t i = 0; i < n; i++) {
        cJSON *e = token_json(S, lps[i].token, lps[i].logprob, true);
        cJSON *top = cJSON_AddArrayToObject(e, "top_logprobs");
        for (int32_t k = 0; k < lps[i].n_top; k++)
            cJSON_AddItemToArray(top, token_json(S, lps[i].top[k], lps[i].top_lp[k], true));
        cJSON_AddItemToArray(content, e);
    }
    cJSON_AddNullToObject(j, "refusal");
    return j;
}

/* Completions: parallel arrays tokens, token_logprobs, top_logprobs, text_offset. */
static cJSON *completion_logprobs(srv_server *S, out_ctx *o, const srv_logprob *lps, int32_t n) {
    cJSON *j = cJSON_CreateObject();
    cJSON *toks = cJSON_AddArrayToObject(j, "tokens");
    cJSON *lp = cJSON_AddArrayToObject(j, "token_logprobs");
    cJSON *top = cJSON_AddArrayToObject(j, "top_logprobs");
    cJSON *off = cJSON_AddArrayToObject(j, "text_offset");
    char piece[256];
    for (int32_t i = 0; i < n; i++) {
        int32_t len = lm_token_to_piece(S->model, lps[i].token, piece, sizeof piece, false);
        if (len < 0) len = 0;
        cJSON_AddItemToArray(toks, text_json(piece, (size_t)len));
        cJSON_AddItemToArray(lp, cJSON_CreateNumber(lps[i].logprob));
        cJSON *alts = cJSON_CreateObject();
        for (int32_t k = 0; k < lps[i].n_top; k++) {
            int32_t l = lm_token_to_piece(S->model, lps[i].top[k], piece, sizeof piece, false);
            char *key = srv_utf8_clean(piece, l > 0 ? (size_t)l : 0, NULL);
            if (key && !cJSON_GetObjectItemCaseSensitive(alts, key))
                cJSON_AddNumberToObject(alts, key, lps[i].top_lp[k]);
            free(key);
        }
        cJSON_AddItemToArray(top, alts);
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)o->lp_off));
        o->lp_off += (size_t)len;
    }
    return j;
}

static cJSON *logprobs_json(srv_server *S, out_ctx *o, const srv_logprob *lps, int32_t n) {
    return o->chat ? chat_logprobs(S, lps, n) : completion_logprobs(S, o, lps, n);
}

/* The whole answer of a finished non-streaming task (t->mu held, task finished). */
static cJSON *final_json(srv_server *S, out_ctx *o, srv_task *t) {
    cJSON *j = base(S, o, o->chat ? "chat.completion" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(j, "choices"), *ch = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, ch);
    cJSON_AddNumberToObject(ch, "index", 0);
    size_t elen = o->echo ? strlen(o->echo) : 0;
    char *text = malloc(elen + t->text_len + 1);
    if (text) {
        if (elen) memcpy(text, o->echo, elen);
        if (t->text_len) memcpy(text + elen, t->text, t->text_len);
    }
    cJSON *content = text_json(text ? text : "", text ? elen + t->text_len : 0);
    free(text);
    if (o->chat) {
        cJSON *m = cJSON_AddObjectToObject(ch, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddItemToObject(m, "content", content);
        cJSON_AddNullToObject(m, "refusal");
    } else
        cJSON_AddItemToObject(ch, "text", content);
    o->lp_off = elen;
    if (t->req.logprobs)
        cJSON_AddItemToObject(ch, "logprobs", logprobs_json(S, o, t->lps, t->n_lps));
    else
        cJSON_AddNullToObject(ch, "logprobs");
    cJSON_AddStringToObject(ch, "finish_reason", finish_name(t->finish));
    cJSON_AddItemToObject(j, "usage", usage_json(t));
    return j;
}

static void out_init(srv_server *S, out_ctx *o, srv_task *t) {
    memset(o, 0, sizeof *o);
    o->chat = t->req.endpoint == SRV_CHAT;
    make_id(S, o->chat ? "chatcmpl-" : "cmpl-", o->id, sizeof o->id);
    o->created = (int64_t)time(NULL);
    if (!o->chat && t->req.echo) {
        if (t->req.prompt)
            o->echo = strdup(t->req.prompt);
        else {
            int32_t need = lm_detokenize(S->model, t->prompt, t->n_prompt, NULL, 0, false);
            size_t cap = (size_t)(need < 0 ? -need : need) + 1;
            o->echo = malloc(cap);
            int32_t n = o->echo ? lm_detokenize(S->model, t->prompt, t->n_prompt, o->echo,
                                                (int32_t)cap, false)
                                : -1;
            if (o->echo) o->echo[n > 0 ? n : 0] = '\0';
        }
    }
}

/* ---- non-streaming -------------------------------------------------------------------- */

static enum MHD_Result wait_and_answer(srv_server *S, struct MHD_Connection *c, srv_ep ep,
                                       srv_task *t) {
    pthread_mutex_lock(&t->mu);
    while (t->finish == SRV_RUNNING) {
        timed_wait(t);
        if (t->finish != SRV_RUNNING) break;
        pthread_mutex_unlock(&t->mu);
        bool gone = peer_gone(c);
        pthread_mutex_lock(&t->mu);
        if (gone) {
            pthread_mutex_unlock(&t->mu);
            srv_task_cancel(t);
            srv_task_release(t);
            return MHD_NO; /* close the connection */
        }
    }
    pthread_mutex_unlock(&t->mu);
    /* finished: the engine no longer touches the task */
    enum MHD_Result ret;
    if (t->finish == SRV_FINISH_ERROR)
        ret = answer_error(S, c, ep, &t->err);
    else if (t->finish == SRV_FINISH_CANCELLED)
        ret = answer_errorf(S, c, ep, 503, "server_error", "shutting_down", NULL,
                            "The request was cancelled: the server is shutting down.");
    else {
        out_ctx o;
        out_init(S, &o, t);
        ret = answer_json(S, c, ep, 200, final_json(S, &o, t));
        free(o.echo);
    }
    srv_task_release(t);
    return ret;
}

/* ---- streaming ------------------------------------------------------------------------ */

typedef struct srv_stream {
    srv_server *S;
    srv_task *t;
    struct MHD_Connection *c;
    out_ctx o;
    char *buf; /* formatted events not yet handed to MHD */
    size_t len, pos, cap;
    size_t text_sent;
    int32_t lps_sent;
    bool started, done;
} srv_stream;

static void emit(srv_stream *st, cJSON *j /* taken; NULL: [DONE] */) {
    char *text = j ? cJSON_PrintUnformatted(j) : strdup("[DONE]");
    cJSON_Delete(j);
    if (!text) return;
    size_t n = strlen(text) + 8;
    if (st->pos == st->len) st->pos = st->len = 0;
    if (st->len + n > st->cap) {
        size_t cap = st->cap ? st->cap : 4096;
        while (cap < st->len + n) cap *= 2;
        char *p = realloc(st->buf, cap);
        if (!p) {
            free(text);
            return;
        }
        st->buf = p;
        st->cap = cap;
    }
    st->len += (size_t)sprintf(st->buf + st->len, "data: %s\n\n", text);
    free(text);
}

/* One chunk with new text (and its logprobs) or the finish reason. */
static cJSON *chunk(srv_stream *st, const char *text, size_t n, bool role, const char *finish,
                    const srv_logprob *lps, int32_t n_lps) {
    srv_server *S = st->S;
    cJSON *j = base(S, &st->o, st->o.chat ? "chat.completion.chunk" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(j, "choices"), *ch = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, ch);
    cJSON_AddNumberToObject(ch, "index", 0);
    if (st->o.chat) {
        cJSON *d = cJSON_AddObjectToObject(ch, "delta");
        if (role) cJSON_AddStringToObject(d, "role", "assistant");
        if (text) cJSON_AddItemToObject(d, "content", text_json(text, n));
    } else
        cJSON_AddItemToObject(ch, "text", text_json(text ? text : "", text ? n : 0));
    if (n_lps > 0)
        cJSON_AddItemToObject(ch, "logprobs", logprobs_json(S, &st->o, lps, n_lps));
    else
        cJSON_AddNullToObject(ch, "logprobs");
    if (finish)
        cJSON_AddStringToObject(ch, "finish_reason", finish);
    else
        cJSON_AddNullToObject(ch, "finish_reason");
    if (st->t->req.include_usage) cJSON_AddNullToObject(j, "usage");
    return j;
}

/* Wait for news from the engine and format it; false if the client went away. */
static bool stream_fill(srv_stream *st) {
    srv_task *t = st->t;
    if (!st->started) {
        st->started = true;
        if (st->o.chat) {
            emit(st, chunk(st, "", 0, true, NULL, NULL, 0));
            return true;
        }
        if (st->o.echo) {
            emit(st, chunk(st, st->o.echo, strlen(st->o.echo), false, NULL, NULL, 0));
            st->o.lp_off = strlen(st->o.echo);
            return true;
        }
    }
    pthread_mutex_lock(&t->mu);
    while (t->text_len == st->text_sent && t->n_lps == st->lps_sent && t->finish == SRV_RUNNING) {
        timed_wait(t);
        pthread_mutex_unlock(&t->mu);
        bool gone = peer_gone(st->c);
        pthread_mutex_lock(&t->mu);
        if (gone) {
            pthread_mutex_unlock(&t->mu);
            return false;
        }
    }
    size_t n = t->text_len - st->text_sent;
    char *text = n ? malloc(n) : NULL;
    if (text) memcpy(text, t->text + st->text_sent, n);
    int32_t nl = t->n_lps - st->lps_sent;
    srv_logprob *lps = nl ? malloc((size_t)nl * sizeof *lps) : NULL;
    if (lps) memcpy(lps, t->lps + st->lps_sent, (size_t)nl * sizeof *lps);
    st->text_sent = t->text_len;
    st->lps_sent = t->n_lps;
    srv_finish fin = t->finish;
    pthread_mutex_unlock(&t->mu);
    if (n || nl) emit(st, chunk(st, text ? text : "", text ? n : 0, false, NULL, lps, nl));
    free(text);
    free(lps);
    if (fin == SRV_RUNNING) return true;
    if (fin == SRV_FINISH_ERROR || fin == SRV_FINISH_CANCELLED) {
        srv_error e = t->err;
        if (fin == SRV_FINISH_CANCELLED)
            srv_error_set(&e, 503, "server_error", "shutting_down", NULL,
                          "The request was cancelled: the server is shutting down.");
        cJSON *ej = NULL;
        char *s = srv_error_json(&e);
        if (s) ej = cJSON_Parse(s);
        free(s);
        if (ej) emit(st, ej);
    } else {
        emit(st, chunk(st, st->o.chat ? NULL : "", 0, false, finish_name(fin), NULL, 0));
        if (t->req.include_usage) {
            cJSON *u =
                base(st->S, &st->o, st->o.chat ? "chat.completion.chunk" : "text_completion");
            cJSON_AddArrayToObject(u, "choices");
            cJSON_AddItemToObject(u, "usage", usage_json(t));
            emit(st, u);
        }
    }
    emit(st, NULL);
    st->done = true;
    return true;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    srv_stream *st = cls;
    (void)pos;
    while (st->pos == st->len) {
        if (st->done) return MHD_CONTENT_READER_END_OF_STREAM;
        if (!stream_fill(st)) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = st->len - st->pos < max ? st->len - st->pos : max;
    memcpy(buf, st->buf + st->pos, n);
    st->pos += n;
    return (ssize_t)n;
}

static void stream_free(void *cls) {
    srv_stream *st = cls;
    if (!st->done) srv_task_cancel(st->t); /* the client left before the end */
    srv_task_release(st->t);
    free(st->o.echo);
    free(st->buf);
    free(st);
}

static enum MHD_Result start_stream(srv_server *S, struct MHD_Connection *c, srv_ep ep,
                                    srv_task *t) {
    srv_stream *st = calloc(1, sizeof *st);
    if (!st) {
        srv_task_cancel(t);
        srv_task_release(t);
        return answer(S, c, ep, 500, "application/json", NULL);
    }
    st->S = S;
    st->t = t;
    st->c = c;
    out_init(S, &st->o, t);
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, st, stream_free);
    if (!r) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    srv_metrics_http(S->metrics, ep, 200);
    return ret;
}

/* ---- endpoints ------------------------------------------------------------------------ */

static enum MHD_Result handle_generate(srv_server *S, struct MHD_Connection *c, srv_conn *cs) {
    srv_endpoint which = cs->ep == SRV_EP_CHAT ? SRV_CHAT : SRV_COMPLETION;
    srv_task *t = srv_task_new();
    if (!t) return answer(S, c, cs->ep, 500, "application/json", NULL);
    srv_error err;
    int rc = srv_request_parse(which, cs->body, cs->len, &t->req, &err);
    if (!rc) rc = prepare(S, t, &err);
    if (!rc && t->max_gen == 0) { /* completions with max_tokens 0: nothing to run */
        t->finish = SRV_FINISH_LENGTH;
        out_ctx o;
        out_init(S, &o, t);
        enum MHD_Result ret = answer_json(S, c, cs->ep, 200, final_json(S, &o, t));
        free(o.echo);
        srv_task_release(t);
        return ret;
    }
    if (!rc) rc = srv_engine_submit(S->engine, t, &err);
    if (rc) {
        srv_task_release(t);
        return answer_error(S, c, cs->ep, &err);
    }
    if (t->req.stream) return start_stream(S, c, cs->ep, t);
    return wait_and_answer(S, c, cs->ep, t);
}

static enum MHD_Result handle_models(srv_server *S, struct MHD_Connection *c, const char *url) {
    if (!strcmp(url, "/v1/models")) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "object", "list");
        cJSON *data = cJSON_AddArrayToObject(j, "data");
        cJSON_AddItemToArray(data, model_json(S));
        return answer_json(S, c, SRV_EP_MODELS, 200, j);
    }
    const char *id = url + strlen("/v1/models/");
    if (!strcmp(id, S->cfg->model_id)) return answer_json(S, c, SRV_EP_MODELS, 200, model_json(S));
    srv_error e;
    srv_error_set(&e, 404, "invalid_request_error", "model_not_found", "model",
                  "The model '%.200s' does not exist or you do not have access to it.", id);
    return answer_error(S, c, SRV_EP_MODELS, &e);
}

static srv_ep route(const char *url) {
    if (!strcmp(url, "/v1/chat/completions")) return SRV_EP_CHAT;
    if (!strcmp(url, "/v1/completions")) return SRV_EP_COMPLETIONS;
    if (!strcmp(url, "/v1/models") || !strncmp(url, "/v1/models/", 11)) return SRV_EP_MODELS;
    if (!strcmp(url, "/health")) return SRV_EP_HEALTH;
    if (!strcmp(url, "/metrics")) return SRV_EP_METRICS;
    return SRV_EP_OTHER;
}

static enum MHD_Result dispatch(srv_server *S, struct MHD_Connection *c, srv_conn *cs,
                                const char *url, const char *method) {
    srv_ep ep = cs->ep;
    bool post = !strcmp(method, "POST"), get = !strcmp(method, "GET");
    if (cs->too_large) {
        char msg[160];
        snprintf(msg, sizeof msg, "The request body is larger than the limit of %zu bytes.",
                 S->cfg->max_body);
        return answer_errorf(S, c, ep, 413, "invalid_request_error", "request_too_large", NULL,
                             msg);
    }
    if (ep == SRV_EP_HEALTH && get) {
        bool down = atomic_load(&S->quiesced) || srv_engine_draining(S->engine);
        return answer(S, c, ep, down ? 503 : 200, "application/json",
                      strdup(down ? "{\"status\":\"shutting down\"}" : "{\"status\":\"ok\"}"));
    }
    srv_error e;
    if (!auth_ok(S, c, &e)) return answer_error(S, c, ep, &e);
    bool want_post = ep == SRV_EP_CHAT || ep == SRV_EP_COMPLETIONS;
    if (ep != SRV_EP_OTHER && (want_post ? !post : !get)) {
        char msg[200];
        snprintf(msg, sizeof msg, "Method %.16s is not allowed on %.64s; use %s.", method, url,
                 want_post ? "POST" : "GET");
        return answer_errorf(S, c, ep, 405, "invalid_request_error", "method_not_allowed", NULL,
                             msg);
    }
    switch (ep) {
    case SRV_EP_CHAT:
    case SRV_EP_COMPLETIONS:
        return handle_generate(S, c, cs);
    case SRV_EP_MODELS:
        return handle_models(S, c, url);
    case SRV_EP_METRICS:
        return answer(S, c, ep, 200, "text/plain; version=0.0.4; charset=utf-8",
                      srv_metrics_render(S->metrics));
    default:
        break;
    }
    char msg[200];
    snprintf(msg, sizeof msg, "Invalid URL (%.16s %.128s)", method, url);
    return answer_errorf(S, c, SRV_EP_OTHER, 404, "invalid_request_error", "unknown_url", NULL,
                         msg);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
    srv_server *S = cls;
    srv_conn *cs = *con_cls;
    (void)version;
    if (!cs) {
        cs = calloc(1, sizeof *cs);
        if (!cs) return MHD_NO;
        *con_cls = cs;
        cs->ep = route(url);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > S->cfg->max_body) {
            cs->too_large = true; /* answer now: the body is not read at all */
            return dispatch(S, c, cs, url, method);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!cs->too_large && cs->len + *upload_size > S->cfg->max_body) cs->too_large = true;
        if (!cs->too_large) {
            if (cs->len + *upload_size + 1 > cs->cap) {
                size_t cap = cs->cap ? cs->cap : 4096;
                while (cap < cs->len + *upload_size + 1) cap *= 2;
                char *p = realloc(cs->body, cap);
                if (!p) return MHD_NO;
                cs->body = p;
                cs->cap = cap;
            }
            memcpy(cs->body + cs->len, upload, *upload_size);
            cs->len += *upload_size;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    return dispatch(S, c, cs, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode why) {
    (void)cls, (void)c, (void)why;
    srv_conn *cs = *con_cls;
    if (!cs) return;
    free(cs->body);
    free(cs);
    *con_cls = NULL;
}

/* ---- start and stop ------------------------------------------------------------------- */

bool srv_host_is_loopback(const char *host) {
    if (!strcmp(host, "localhost")) return true;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

srv_server *srv_server_start(lm_model *m, srv_engine *e, srv_metrics *metrics,
                             const srv_config *cfg, const char *fingerprint) {
    srv_server *S = calloc(1, sizeof *S);
    if (!S) return NULL;
    S->model = m;
    S->engine = e;
    S->metrics = metrics;
    S->cfg = cfg;
    snprintf(S->fingerprint, sizeof S->fingerprint, "%s", fingerprint);
    S->n_ctx = srv_engine_n_ctx(e);
    S->n_vocab = lm_model_n_vocab(m);
    S->id_salt = (uint64_t)time(NULL) * 0x2545F4914F6CDD1Dull ^ (uint64_t)getpid();
    struct stat sb;
    S->model_created = stat(cfg->model_path, &sb) == 0 ? (int64_t)sb.st_mtime : 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->port);
    int gai = getaddrinfo(cfg->host, port, &hints, &ai);
    if (gai != 0 || !ai) {
        fprintf(stderr, "lumen serve: error: cannot resolve --host '%s': %s\n", cfg->host,
                gai_strerror(gai));
        free(S);
        return NULL;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    S->d = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, S,
                            MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_NOTIFY_COMPLETED,
                            on_completed, S, MHD_OPTION_CONNECTION_LIMIT, 1024u,
                            MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!S->d) {
        fprintf(stderr, "lumen serve: error: cannot listen on %s:%d (%s)\n", cfg->host, cfg->port,
                errno ? strerror(errno) : "address in use?");
        free(S);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(S->d, MHD_DAEMON_INFO_BIND_PORT);
    S->port = di ? di->port : cfg->port;
    return S;
}

int srv_server_port(const srv_server *s) {
    return s->port;
}

void srv_server_quiesce(srv_server *s) {
    atomic_store(&s->quiesced, true);
    MHD_socket fd = MHD_quiesce_daemon(s->d);
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

unsigned srv_server_connections(const srv_server *s) {
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return di ? di->num_connections : 0;
}

void srv_server_stop(srv_server *s) {
    if (!s) return;
    MHD_stop_daemon(s->d);
    free(s);
}
