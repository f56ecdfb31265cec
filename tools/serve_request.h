/* lumen serve: the JSON body of an OpenAI request -> a checked internal request, and errors
 * in the OpenAI shape. No HTTP here, so the parser can be fuzzed on its own
 * (fuzz/fuzz_serve_request.c). */
#ifndef LM_SERVE_REQUEST_H
#define LM_SERVE_REQUEST_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits on what one request may ask for (the body size is the HTTP layer's). */
#define SRV_MAX_STOP         4    /* stop sequences, as OpenAI */
#define SRV_MAX_STOP_BYTES   256  /* bytes per stop sequence */
#define SRV_MAX_MESSAGES     4096 /* chat messages */
#define SRV_MAX_PARTS        256  /* content parts per message */
#define SRV_MAX_LOGIT_BIAS   1024 /* logit_bias entries */
#define SRV_MAX_TOP_LOGPROBS 20   /* chat top_logprobs (completions logprobs <= 5) */
#define SRV_MAX_PROMPT_IDS   (1 << 20)
#define SRV_MAX_TOKENS       (1 << 24) /* max_tokens ceiling before the context check */

typedef enum srv_endpoint { SRV_CHAT, SRV_COMPLETION } srv_endpoint;

typedef enum srv_format { SRV_FMT_TEXT, SRV_FMT_JSON_OBJECT, SRV_FMT_JSON_SCHEMA } srv_format;

typedef struct srv_message {
    const char *role; /* "system", "user" or "assistant" ("developer" becomes "system") */
    char *content;    /* text parts joined by "\n" */
} srv_message;

typedef struct srv_bias {
    int32_t token;
    float bias;
} srv_bias;

typedef struct srv_request {
    srv_endpoint endpoint;
    char *model; /* NULL: whatever is served */
    /* chat */
    srv_message *messages;
    size_t n_messages;
    /* completions: a text prompt, or token ids */
    char *prompt;
    int32_t *prompt_ids;
    int32_t n_prompt_ids;
    bool echo;
    /* generation */
    int32_t max_tokens; /* -1: until the context ends */
    double temperature, top_p, presence_penalty, frequency_penalty;
    int32_t top_k;                /* Lumen extension; 0: off */
    double min_p, repeat_penalty; /* Lumen extensions; 0 / 1: off */
    bool ignore_eos;              /* Lumen extension: end-of-generation tokens are never sampled */
    bool has_seed;
    uint64_t seed;
    char *stop[SRV_MAX_STOP];
    int n_stop;
    bool stream, include_usage;
    bool logprobs;        /* chat: logprobs; completions: logprobs != null */
    int32_t top_logprobs; /* alternatives per token */
    srv_bias *bias;
    int32_t n_bias;
    char *user;
    srv_format format;
    cJSON *schema; /* json_schema: the schema object (owned); NULL = any object */
    char *schema_name;
} srv_request;

typedef struct srv_error {
    int status;       /* HTTP status */
    const char *type; /* "invalid_request_error", "authentication_error", ... */
    const char *code; /* NULL or e.g. "context_length_exceeded" */
    char param[160];  /* the field at fault ("messages[2].role"), "" for none */
    char message[640];
} srv_error;

/* Parse and check a request body. Returns 0 and fills *out (free with srv_request_free),
 * or returns the HTTP status (400) and fills *err; *out is then empty. */
int srv_request_parse(srv_endpoint ep, const char *body, size_t len, srv_request *out,
                      srv_error *err);
void srv_request_free(srv_request *r);
/* The checked request as JSON (malloc'd): what `lumen serve --parse-request` prints. */
char *srv_request_to_json(const srv_request *r);

/* Fill an error; param may be NULL; returns status. */
int srv_error_set(srv_error *e, int status, const char *type, const char *code, const char *param,
                  const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* {"error": {"message", "type", "param", "code"}} as malloc'd text (NULL on OOM). */
char *srv_error_json(const srv_error *e);

/* The first len bytes of s with invalid UTF-8 replaced by U+FFFD (JSON needs valid text);
 * malloc'd, NUL-terminated. *n_out (optional) gets the length. */
char *srv_utf8_clean(const char *s, size_t len, size_t *n_out);
/* Length of the longest prefix of s[0..len) that does not end inside a UTF-8 sequence
 * which could still be completed by more bytes. */
size_t srv_utf8_complete_prefix(const char *s, size_t len);

#endif
