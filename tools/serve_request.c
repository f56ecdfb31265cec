/* lumen serve: request parsing. Every field of the body is checked against one table; an
 * unknown field, a wrong type or a value out of range gives a 400 that names the field (as
 * OpenAI does), and nothing is allocated from a size the client chose before it is checked
 * against a limit. */
#include "serve_request.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors --------------------------------------------------------------------------- */

int srv_error_set(srv_error *e, int status, const char *type, const char *code, const char *param,
                  const char *fmt, ...) {
    e->status = status;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return status;
}

char *srv_error_json(const srv_error *e) {
    cJSON *root = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(root, "error");
    char *msg = srv_utf8_clean(e->message, strlen(e->message), NULL);
    char *par = srv_utf8_clean(e->param, strlen(e->param), NULL);
    if (!err || !msg || !par) {
        cJSON_Delete(root);
        free(msg);
        free(par);
        return NULL;
    }
    cJSON_AddStringToObject(err, "message", msg);
    cJSON_AddStringToObject(err, "type", e->type ? e->type : "invalid_request_error");
    if (*par)
        cJSON_AddStringToObject(err, "param", par);
    else
        cJSON_AddNullToObject(err, "param");
    if (e->code)
        cJSON_AddStringToObject(err, "code", e->code);
    else
        cJSON_AddNullToObject(err, "code");
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    free(msg);
    free(par);
    return text;
}

#define INVALID "invalid_request_error"

static const char *jtype(const cJSON *v) {
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "an invalid value";
}

static int bad_type(srv_error *e, const char *param, const char *want, const cJSON *v) {
    return srv_error_set(e, 400, INVALID, "invalid_type", param,
                         "Invalid type for '%s': expected %s, but got %s instead.", param, want,
                         jtype(v));
}

static int bad_value(srv_error *e, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad_value(srv_error *e, const char *param, const char *fmt, ...) {
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return srv_error_set(e, 400, INVALID, "invalid_value", param, "Invalid '%s': %s", param, why);
}

static int unsupported(srv_error *e, const char *param, const char *why) {
    return srv_error_set(e, 400, INVALID, "unsupported_parameter", param,
                         "Unsupported parameter: '%s' %s.", param, why);
}

/* ---- typed getters -------------------------------------------------------------------- */

static int get_number(srv_error *e, const cJSON *v, const char *param, double lo, double hi,
                      double *out) {
    if (!cJSON_IsNumber(v)) return bad_type(e, param, "a number", v);
    double d = v->valuedouble;
    if (!isfinite(d) || d < lo || d > hi)
        return bad_value(e, param, "expected a value in [%g, %g], but got %g instead.", lo, hi, d);
    *out = d;
    return 0;
}

static int get_int(srv_error *e, const cJSON *v, const char *param, double lo, double hi,
                   int64_t *out) {
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return bad_type(e, param, "an integer", v);
    double d = 0;
    if (get_number(e, v, param, lo, hi, &d)) return e->status;
    *out = (int64_t)d;
    return 0;
}

static int get_bool(srv_error *e, const cJSON *v, const char *param, bool *out) {
    if (!cJSON_IsBool(v)) return bad_type(e, param, "a boolean", v);
    *out = cJSON_IsTrue(v);
    return 0;
}

static int get_string(srv_error *e, const cJSON *v, const char *param, char **out) {
    if (!cJSON_IsString(v) || !v->valuestring) return bad_type(e, param, "a string", v);
    char *s = strdup(v->valuestring);
    if (!s) return srv_error_set(e, 500, "server_error", NULL, param, "out of memory");
    free(*out);
    *out = s;
    return 0;
}

static int oom(srv_error *e) {
    return srv_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
}

/* ---- fields --------------------------------------------------------------------------- */

typedef int (*field_fn)(const cJSON *v, const char *param, srv_request *r, srv_error *e);

static int f_model(const cJSON *v, const char *param, srv_request *r, srv_error *e) {
    return get_string(e, v, param, &r->model);
}

/* Message content: a string, or an array of {"type": "text", "text": ...} parts. */
static int message_content(const cJSON *v, const char *param, char **out, srv_error *e) {
    if (cJSON_IsNull(v)) {
        free(*out);
        *out = strdup("");
        return *out ? 0 : oom(e);
    }
    if (cJSON_IsString(v)) return get_string(e, v, param, out);
    if (!cJSON_IsArray(v)) return bad_type(e, param, "a string or an array of parts", v);
    int n = cJSON_GetArraySize(v);
    if (n > SRV_MAX_PARTS) return bad_value(e, param, "at most %d parts.", SRV_MAX_PARTS);
    size_t total = 1;
    char p[320];
    int i = 0;
    for (const cJSON *part = v->child; part; part = part->next, i++) {
        snprintf(p, sizeof p, "%s[%d]", param, i);
        if (!cJSON_IsObject(part)) return bad_type(e, p, "an object", part);
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(type)) {
            snprintf(p, sizeof p, "%s[%d].type", param, i);
            return type ? bad_type(e, p, "a string", type)
                        : srv_error_set(e, 400, INVALID, "missing_required_parameter", p,
                                        "Missing required parameter: '%s'.", p);
        }
        if (strcmp(type->valuestring, "text")) {
            snprintf(p, sizeof p, "%s[%d].type", param, i);
            return unsupported(e, p, "only text content parts are supported");
        }
        snprintf(p, sizeof p, "%s[%d].text", param, i);
        if (!text)
            return srv_error_set(e, 400, INVALID, "missing_required_parameter", p,
                                 "Missing required parameter: '%s'.", p);
        if (!cJSON_IsString(text)) return bad_type(e, p, "a string", text);
        total += strlen(text->valuestring) + 1;
    }
    char *s = malloc(total);
    if (!s) return oom(e);
    size_t at = 0;
    for (const cJSON *part = v->child; part; part = part->next) {
        size_t l = strlen(cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring);
        if (at) s[at++] = '\n';
        memcpy(s + at, cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring, l);
        at += l;
    }
    s[at] = '\0';
    free(*out);
    *out = s;
    return 0;
}

/* Fields of an assistant message echoed back by a client: accepted when empty. */
static bool empty_value(const cJSON *v) {
    return cJSON_IsNull(v) || ((cJSON_IsArray(v) || cJSON_IsObject(v)) && !v->child);
}

static int one_message(const cJSON *m, const char *param, srv_message *out, srv_error *e) {
    char p[256];
    if (!cJSON_IsObject(m)) return bad_type(e, param, "an object", m);
    const cJSON *role = NULL, *content = NULL;
    for (const cJSON *f = m->child; f; f = f->next) {
        snprintf(p, sizeof p, "%s.%s", param, f->string);
        if (!strcmp(f->string, "role"))
            role = f;
        else if (!strcmp(f->string, "content"))
            content = f;
        else if (!strcmp(f->string, "name")) {
            if (!cJSON_IsString(f) && !cJSON_IsNull(f)) return bad_type(e, p, "a string", f);
        } else if (!strcmp(f->string, "tool_calls") || !strcmp(f->string, "function_call") ||
                   !strcmp(f->string, "audio") || !strcmp(f->string, "refusal") ||
                   !strcmp(f->string, "annotations")) {
            if (!empty_value(f)) return unsupported(e, p, "is not supported by this server");
        } else
            return srv_error_set(e, 400, INVALID, "unknown_parameter", p,
                                 "Unrecognized request argument supplied: %s", p);
    }
    snprintf(p, sizeof p, "%s.role", param);
    if (!role)
        return srv_error_set(e, 400, INVALID, "missing_required_parameter", p,
                             "Missing required parameter: '%s'.", p);
    if (!cJSON_IsString(role)) return bad_type(e, p, "a string", role);
    static const char *const roles[][2] = {{"system", "system"},
                                           {"developer", "system"},
                                           {"user", "user"},
                                           {"assistant", "assistant"}};
    out->role = NULL;
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (!strcmp(role->valuestring, roles[i][0])) out->role = roles[i][1];
    if (!out->role) {
        if (!strcmp(role->valuestring, "tool") || !strcmp(role->valuestring, "function"))
            return unsupported(e, p, "tool and function messages are not supported");
        return bad_value(e, p,
                         "expected one of 'system', 'developer', 'user', 'assistant', but got "
                         "'%.64s' instead.",
                         role->valuestring);
    }
    snprintf(p, sizeof p, "%s.content", param);
    if (!content && strcmp(out->role, "assistant"))
        return srv_error_set(e, 400, INVALID, "missing_required_parameter", p,
                             "Missing required parameter: '%s'.", p);
    if (!content) {
        out->content = strdup("");
        return out->content ? 0 : oom(e);
    }
    return message_content(content, p, &out->content, e);
}

static int f_messages(const cJSON *v, const char *param, srv_request *r, srv_error *e) {
    if (!cJSON_IsArray(v)) return bad_type(e, param, "an array", v);
    int n = cJSON_GetArraySize(v);
    if (n == 0) return bad_value(e, param, "empty array. Expected an array with minimum length 1.");
    if (n > SRV_MAX_MESSAGES)
        return bad_value(e, param, "at most %d messages, but got %d.", SRV_MAX_MESSAGES, n);
    r->messages = calloc((size_t)n, sizeof *r->messages);
    if (!r->messages) return oom(e);
    int i = 0;
    char p[64];
    for (const cJSON *m = v->child; m; m = m->next, i++) {
        snprintf(p, sizeof p, "%s[%d]", param, i);
        r->n_messages = (size_t)i + 1; /* so a failure frees what was made */
        if (one_message(m, p, &r->messages[i], e)) return e->status;
    }
    return 0;
}

/* prompt: a string, [string], [int, ...] or [[int, ...]]; one prompt only. */
static int f_prompt(const cJSON *v, const char *param, srv_request *r, srv_error *e) {
    if (cJSON_IsString(v)) return get_string(e, v, param, &r->prompt);
    if (!cJSON_IsArray(v))
        return bad_type(e, param, "a string, an array of strings or an array of token ids", v);
    int n = cJSON_GetArraySize(v);
    if (n == 0) return bad_value(e, param, "empty array. Expected a prompt.");
    const cJSON *first = v->child;
    if (cJSON_IsString(first) || cJSON_IsArray(first)) {
        if (n != 1) return unsupported(e, param, "with more than one prompt (batch of prompts)");
        if (cJSON_IsString(first)) return get_string(e, first, "prompt[0]", &r->prompt);
        v = first;
        param = "prompt[0]";
        n = cJSON_GetArraySize(v);
        if (n == 0) return bad_value(e, param, "empty array. Expected token ids.");
    }
    if (n > SRV_MAX_PROMPT_IDS)
        return bad_value(e, param, "at most %d token ids.", SRV_MAX_PROMPT_IDS);
    r->prompt_ids = malloc((size_t)n * sizeof *r->prompt_ids);
    if (!r->prompt_ids) return oom(e);
    int i = 0;
    char p[64];
    for (const cJSON *t = v->child; t; t = t->next, i++) {
        snprintf(p, sizeof p, "%s[%d]", param, i);
        int64_t id = 0;
        if (get_int(e, t, p, 0, INT32_MAX, &id)) return e->status;
        r->prompt_ids[i] = (int32_t)id;
    }
    r->n_prompt_ids = n;
    return 0;
}

static int f_max_tokens(const cJSON *v, const char *param, srv_request *r, srv_error *e) {
    int64_t n = 0;
    /* completions allow 0 (with echo: the prompt back); chat wants at least one token */
    if (get_int(e, v, param, r->endpoint == SRV_CHAT ? 1 : 0, SRV_MAX_TOKENS, &n)) return e->status;
    /* max_completion_tokens wins over the deprecated max_tokens */
    if (!strcmp(param, "max_completion_tokens") || r->max_tokens < 0) r->max_tokens = (int32_t)n;
    return 0;
}

static int f_temperature(const cJSON *v, const char *param, srv_request *r, srv_error *e) {
    return get_number(e, v, param, 0, 2, &r->temperature);
}
static int f_top_p(const cJSON *v, const char *param, srv_request *r, srv_error *e) {
    return get_number(e, v, param, 0, 1, &r->top_p);
}
static int f_presence(const cJSON *v, const char *param, srv_request *r, srv_error *e) {
    return get_number(e, v, param, -2, 2, &r->presence_penalty);
}
static int f_frequency(const cJSON *v, const char *param, srv_request *r, srv_error *e) {
    return get_number(e, v, param, -2, 2, &r->frequency_penalty);
}

static int f_seed(const cJSON *v, const char *param, srv_request *r, srv_error *e) {
    int64_t s = 0;
    /* int64 as OpenAI; 2^63 itself is one past the largest double below it */
    if (get_int(e, v, param, -9223372036854775808.0, 9223372036854774784.0, &s)) return e->status;
    r->seed = (uint64_t)s;
    r->has_seed = true;
    return 0;
}

static int add_stop(const cJSON *v, const char *param, srv_request *r, srv_error *e) {
    if (!cJSON_IsString(v)) return bad_type(e, param, "a string", v);
    size_t n = strlen(v->valuestring);
    if (n == 0) return bad_value(e, param, "stop sequences must not be empty.");
    if (n > SRV_MAX_STOP_BYTES)
        return bad_value(e, param, "a stop sequence is at most %d bytes, but got %zu.",
                         SRV_MAX_STOP_BYTES, n);
    if (get_string(e, v, param, &r->stop[r->n_stop])) return e->status;
    r->n_stop++;
    return 0;
}

static int f_stop(const cJSON *v, const char *param, srv_request *r, srv_error *e) {
    if (cJSON_IsString(v)) return add_stop(v, param, r, e);
    if (!cJSON_IsArray(v)) return bad_type(e, param, "a string or an array of strings", v);
    int n = cJSON_GetArraySize(v);
    if (n > SRV_MAX_STOP)
        return bad_value(e, param, "at most %d stop sequences, but got %d.", SRV_MAX_STOP, n);
    int i = 0;
    char p[32];
    for (const cJSON *s = v->child; s; s = s->next, i++) {
        snprintf(p, sizeof p, "stop[%d]", i);
        if (add_stop(s, p, r, e)) return e->status;
    }
    return 0;
}

static int f_stream(const cJSON *v, const char *param, srv_request *r, srv_error *e) {
    return get_bool(e, v, param, &r->stream);
}

static int f_stream_options(const cJSON *v, const char *param, srv_request *r, srv_error *e) {
    if (!cJSON_IsObject(v)) return bad_type(e, param, "an object", v);
    for (const cJSON *f = v->child; f; f = f->next) {
        char p[160];
        snprintf(p, sizeof p, "stream_options.%s", f->string);
        if (!strcmp(f->string, "include_usage")) {
            if (!cJSON_IsNull(f) && get_bool(e, f, p, &r->include_usage)) return e->status;
        } else if (!strcmp(f->string, "include_obfuscation")) {
            bool b; /* OpenAI's padding of stream chunks: nothing to do here */
            if (!cJSON_IsNull(f) && get_bool(e, f, p, &b)) return e->status;
        } else
            return srv_error_set(e, 400, INVALID, "unknown_parameter", p,
                                 "Unrecognized request argument supplied: %s", p);
    }
    return 0;
}

static int f_n(const cJSON *v, const char *param, srv_request *r, srv_error *e) {
    int64_t n = 0;
    if (get_int(e, v, param, 1, 128, &n)) return e->status;
    if (n != 1) return unsupported(e, param, "values other than 1 are not supported");
    return 0;
}

static int f_best_of(const cJSON *v, const char *param, srv_request *r, srv_error *e) {
    return f_n(v, param, r, e);
}

static int f_logit_bias(const cJSON *v, const char *param, srv_request *r, srv_error *e) {
    if (!cJSON_IsObject(v)) return bad_type(e, param, "an object", v);
    int n = cJSON_GetArraySize(v);
    if (n > SRV_MAX_LOGIT_BIAS)
        return bad_value(e, param, "at most %d entries, but got %d.", SRV_MAX_LOGIT_BIAS, n);
    if (n == 0) return 0;
    r->bias = malloc((size_t)n * sizeof *r->bias);
    if (!r->bias) return oom(e);
    for (const cJSON *f = v->child; f; f = f->next) {
        char p[160], *end;
        snprintf(p, sizeof p, "logit_bias.%s", f->string);
        long id = strtol(f->string, &end, 10);
        if (!*f->string || *end || id < 0 || id > INT32_MAX || f->string[0] == '+' ||
            f->string[0] == ' ')
            return bad_value(e, p, "keys must be token ids (decimal integers).");
        double b = 0;
        if (get_number(e, f, p, -100, 100, &b)) return e->status;
        r->bias[r->n_bias++] = (srv_bias){(int32_t)id, (float)b};
    }
    return 0;
}

static int f_user(const cJSON *v, const char *param, srv_request *r, srv_error *e) {
    return get_string(e, v, param, &r->user);
}

static int f_logprobs(const cJSON *v, const char *param, srv_request *r, srv_error *e) {
    if (r->endpoint == SRV_CHAT) return get_bool(e, v, param, &r->logprobs);
    int64_t n = 0; /* completions: the number of alternatives, 0..5 */
    if (get_int(e, v, param, 0, 5, &n)) return e->status;
    r->logprobs = true;
    r->top_logprobs = (int32_t)n;
    return 0;
}

static int f_top_logprobs(const cJSON *v, const char *param, srv_request *r, srv_error *e) {
    int64_t n = 0;
    if (get_int(e, v, param, 0, SRV_MAX_TOP_LOGPROBS, &n)) return e->status;
    r->top_logprobs = (int32_t)n;
    return 0;
}

static int f_echo(const cJSON *v, const char *param, srv_request *r, srv_error *e) {
    return get_bool(e, v, param, &r->echo);
}

static int json_schema_spec(const cJSON *v, srv_request *r, srv_error *e) {
    const char *param = "response_format.json_schema";
    if (!cJSON_IsObject(v)) return bad_type(e, param, "an object", v);
    const cJSON *name = NULL;
    for (const cJSON *f = v->child; f; f = f->next) {
        char p[256];
        snprintf(p, sizeof p, "%s.%s", param, f->string);
        if (!strcmp(f->string, "name")) {
            name = f;
            if (get_string(e, f, p, &r->schema_name)) return e->status;
            size_t n = strlen(f->valuestring);
            bool ok = n >= 1 && n <= 64;
            for (size_t i = 0; ok && i < n; i++) {
                char c = f->valuestring[i];
                ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '_' || c == '-';
            }
            if (!ok) return bad_value(e, p, "expected 1 to 64 of a-z, A-Z, 0-9, '_' and '-'.");
        } else if (!strcmp(f->string, "schema")) {
            if (cJSON_IsNull(f)) continue;
            if (!cJSON_IsObject(f)) return bad_type(e, p, "an object", f);
            cJSON_Delete(r->schema);
            r->schema = cJSON_Duplicate(f, true);
            if (!r->schema) return oom(e);
        } else if (!strcmp(f->string, "strict")) {
            bool b = false;
            if (!cJSON_IsNull(f) && get_bool(e, f, p, &b)) return e->status;
        } else if (!strcmp(f->string, "description")) {
            if (!cJSON_IsNull(f) && !cJSON_IsString(f)) return bad_type(e, p, "a string", f);
        } else
            return srv_error_set(e, 400, INVALID, "unknown_parameter", p,
                                 "Unrecognized request argument supplied: %s", p);
    }
    if (!name)
        return srv_error_set(e, 400, INVALID, "missing_required_parameter",
                             "response_format.json_schema.name",
                             "Missing required parameter: 'response_format.json_schema.name'.");
    return 0;
}

static int f_response_format(const cJSON *v, const char *param, srv_request *r, srv_error *e) {
    if (!cJSON_IsObject(v)) return bad_type(e, param, "an object", v);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(v, "type");
    if (!type)
        return srv_error_set(e, 400, INVALID, "missing_required_parameter", "response_format.type",
                             "Missing required parameter: 'response_format.type'.");
    if (!cJSON_IsString(type)) return bad_type(e, "response_format.type", "a string", type);
    const char *t = type->valuestring;
    if (!strcmp(t, "text"))
        r->format = SRV_FMT_TEXT;
    else if (!strcmp(t, "json_object"))
        r->format = SRV_FMT_JSON_OBJECT;
    else if (!strcmp(t, "json_schema"))
        r->format = SRV_FMT_JSON_SCHEMA;
    else
        return bad_value(e, "response_format.type",
                         "expected one of 'text', 'json_object', 'json_schema', but got '%.64s' "
                         "instead.",
                         t);
    for (const cJSON *f = v->child; f; f = f->next) {
        char p[160];
        snprintf(p, sizeof p, "response_format.%s", f->string);
        if (!strcmp(f->string, "type")) continue;
        if (!strcmp(f->string, "json_schema") && r->format == SRV_FMT_JSON_SCHEMA) {
            if (json_schema_spec(f, r, e)) return e->status;
            continue;
        }
        return srv_error_set(e, 400, INVALID, "unknown_parameter", p,
                             "Unrecognized request argument supplied: %s", p);
    }
    if (r->format == SRV_FMT_JSON_SCHEMA && !r->schema_name)
        return srv_error_set(e, 400, INVALID, "missing_required_parameter",
                             "response_format.json_schema",
                             "Missing required parameter: 'response_format.json_schema'.");
    return 0;
}

static int f_top_k(const cJSON *v, const char *param, srv_request *r, srv_error *e) {
    int64_t k = 0;
    if (get_int(e, v, param, 0, 1 << 20, &k)) return e->status;
    r->top_k = (int32_t)k;
    return 0;
}
static int f_min_p(const cJSON *v, const char *param, srv_request *r, srv_error *e) {
    return get_number(e, v, param, 0, 1, &r->min_p);
}
static int f_repetition(const cJSON *v, const char *param, srv_request *r, srv_error *e) {
    if (get_number(e, v, param, 0, 10, &r->repeat_penalty)) return e->status;
    if (r->repeat_penalty == 0) return bad_value(e, param, "expected a value in (0, 10].");
    return 0;
}

static int f_ignore_eos(const cJSON *v, const char *param, srv_request *r, srv_error *e) {
    return get_bool(e, v, param, &r->ignore_eos);
}

/* Accepted for compatibility, no effect here. */
static int f_ignore(const cJSON *v, const char *param, srv_request *r, srv_error *e) {
    return 0;
}

/* Features Lumen does not have: accepted only when empty (clients send "tools": []). */
static int f_unsupported(const cJSON *v, const char *param, srv_request *r, srv_error *e) {
    if (empty_value(v)) return 0;
    if (!strcmp(param, "tool_choice") && cJSON_IsString(v) &&
        (!strcmp(v->valuestring, "none") || !strcmp(v->valuestring, "auto")))
        return 0;
    if (!strcmp(param, "modalities") && cJSON_IsArray(v) && cJSON_GetArraySize(v) == 1 &&
        cJSON_IsString(v->child) && !strcmp(v->child->valuestring, "text"))
        return 0;
    return unsupported(e, param, "is not supported by this server");
}

enum { EP_CHAT = 1, EP_COMP = 2, EP_BOTH = 3 };

static const struct field {
    const char *name;
    int endpoints;
    field_fn fn;
} fields[] = {
    {"model", EP_BOTH, f_model},
    {"messages", EP_CHAT, f_messages},
    {"prompt", EP_COMP, f_prompt},
    {"max_tokens", EP_BOTH, f_max_tokens},
    {"max_completion_tokens", EP_CHAT, f_max_tokens},
    {"temperature", EP_BOTH, f_temperature},
    {"top_p", EP_BOTH, f_top_p},
    {"presence_penalty", EP_BOTH, f_presence},
    {"frequency_penalty", EP_BOTH, f_frequency},
    {"seed", EP_BOTH, f_seed},
    {"stop", EP_BOTH, f_stop},
    {"stream", EP_BOTH, f_stream},
    {"stream_options", EP_BOTH, f_stream_options},
    {"n", EP_BOTH, f_n},
    {"best_of", EP_COMP, f_best_of},
    {"logit_bias", EP_BOTH, f_logit_bias},
    {"user", EP_BOTH, f_user},
    {"logprobs", EP_BOTH, f_logprobs},
    {"top_logprobs", EP_CHAT, f_top_logprobs},
    {"response_format", EP_CHAT, f_response_format},
    {"echo", EP_COMP, f_echo},
    /* Lumen extensions (what clients send through extra_body to other servers) */
    {"top_k", EP_BOTH, f_top_k},
    {"min_p", EP_BOTH, f_min_p},
    {"repetition_penalty", EP_BOTH, f_repetition},
    {"ignore_eos", EP_BOTH, f_ignore_eos},
    /* accepted, no effect */
    {"store", EP_CHAT, f_ignore},
    {"metadata", EP_CHAT, f_ignore},
    {"service_tier", EP_BOTH, f_ignore},
    {"parallel_tool_calls", EP_CHAT, f_ignore},
    /* not supported: accepted only when empty */
    {"suffix", EP_COMP, f_unsupported},
    {"tools", EP_CHAT, f_unsupported},
    {"tool_choice", EP_CHAT, f_unsupported},
    {"functions", EP_CHAT, f_unsupported},
    {"function_call", EP_CHAT, f_unsupported},
    {"audio", EP_CHAT, f_unsupported},
    {"modalities", EP_CHAT, f_unsupported},
    {"prediction", EP_CHAT, f_unsupported},
    {"reasoning_effort", EP_CHAT, f_unsupported},
    {"web_search_options", EP_CHAT, f_unsupported},
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

static int parse_fields(const cJSON *root, srv_request *r, srv_error *e) {
    int mask = r->endpoint == SRV_CHAT ? EP_CHAT : EP_COMP;
    for (const cJSON *f = root->child; f; f = f->next) {
        for (const cJSON *g = root->child; g != f; g = g->next)
            if (!strcmp(g->string, f->string))
                return srv_error_set(e, 400, INVALID, "invalid_value", f->string,
                                     "Duplicate key in the request body: '%s'.", f->string);
        const struct field *fd = NULL;
        for (size_t i = 0; i < N_FIELDS && !fd; i++)
            if ((fields[i].endpoints & mask) && !strcmp(fields[i].name, f->string)) fd = &fields[i];
        if (!fd)
            return srv_error_set(e, 400, INVALID, "unknown_parameter", f->string,
                                 "Unrecognized request argument supplied: %s", f->string);
        /* null means "not given", as in the OpenAI API */
        if (cJSON_IsNull(f)) continue;
        if (fd->fn(f, f->string, r, e)) return e->status;
    }
    return 0;
}

static int check_combination(const cJSON *root, srv_request *r, srv_error *e) {
    const char *need = r->endpoint == SRV_CHAT ? "messages" : "prompt";
    if (r->endpoint == SRV_CHAT ? !r->messages : !r->prompt && !r->prompt_ids)
        return srv_error_set(e, 400, INVALID, "missing_required_parameter", need,
                             "Missing required parameter: '%s'.", need);
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (so && !cJSON_IsNull(so) && !r->stream)
        return srv_error_set(e, 400, INVALID, "invalid_value", "stream_options",
                             "Invalid 'stream_options': only allowed when 'stream' is true.");
    const cJSON *tl = cJSON_GetObjectItemCaseSensitive(root, "top_logprobs");
    if (r->endpoint == SRV_CHAT && tl && !cJSON_IsNull(tl) && !r->logprobs)
        return srv_error_set(e, 400, INVALID, "invalid_value", "top_logprobs",
                             "Invalid 'top_logprobs': requires 'logprobs' to be true.");
    if (r->echo && r->logprobs)
        return unsupported(e, "echo", "together with 'logprobs' is not supported");
    return 0;
}

int srv_request_parse(srv_endpoint ep, const char *body, size_t len, srv_request *out,
                      srv_error *err) {
    memset(out, 0, sizeof *out);
    memset(err, 0, sizeof *err);
    out->endpoint = ep;
    out->max_tokens = -1;
    out->temperature = 1.0;
    out->top_p = 1.0;
    out->repeat_penalty = 1.0;
    const char *end = NULL;
    cJSON *root = body ? cJSON_ParseWithLengthOpts(body, len, &end, false) : NULL;
    if (!root) {
        size_t at = end && body && end >= body ? (size_t)(end - body) : 0;
        return srv_error_set(err, 400, INVALID, "invalid_json", NULL,
                             "We could not parse the JSON body of your request (error near "
                             "byte %zu). The body must be a JSON object.",
                             at);
    }
    /* only whitespace may follow the value */
    for (const char *p = end; p < body + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            cJSON_Delete(root);
            return srv_error_set(err, 400, INVALID, "invalid_json", NULL,
                                 "We could not parse the JSON body of your request (unexpected "
                                 "data at byte %zu).",
                                 (size_t)(p - body));
        }
    int rc = 0;
    if (!cJSON_IsObject(root))
        rc = srv_error_set(err, 400, INVALID, "invalid_json", NULL,
                           "The request body must be a JSON object, but got %s.", jtype(root));
    if (!rc) rc = parse_fields(root, out, err);
    if (!rc) rc = check_combination(root, out, err);
    cJSON_Delete(root);
    if (rc) {
        srv_request_free(out);
        out->endpoint = ep;
    }
    return rc;
}

void srv_request_free(srv_request *r) {
    if (!r) return;
    free(r->model);
    for (size_t i = 0; i < r->n_messages; i++) free(r->messages[i].content);
    free(r->messages);
    free(r->prompt);
    free(r->prompt_ids);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    free(r->bias);
    free(r->user);
    cJSON_Delete(r->schema);
    free(r->schema_name);
    memset(r, 0, sizeof *r);
}

/* ---- UTF-8 ---------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1..4), 0 if invalid, -need if cut short. */
static int utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    int len;
    unsigned lo = 0x80, hi = 0xBF; /* range of the second byte */
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n) return -len;
        unsigned b = s[i];
        if (i == 1 ? b < lo || b > hi : b < 0x80 || b > 0xBF) return 0;
    }
    return len;
}

char *srv_utf8_clean(const char *s, size_t len, size_t *n_out) {
    char *o = malloc(len * 3 + 1); /* each bad byte becomes 3 */
    if (!o) return NULL;
    const unsigned char *u = (const unsigned char *)s;
    size_t j = 0;
    for (size_t i = 0; i < len;) {
        int l = utf8_seq(u + i, len - i);
        if (l > 0 && !(l == 1 && u[i] == 0)) {
            memcpy(o + j, u + i, (size_t)l);
            j += (size_t)l;
            i += (size_t)l;
        } else {
            memcpy(o + j, "\xEF\xBF\xBD", 3);
            j += 3;
            i++;
        }
    }
    o[j] = '\0';
    if (n_out) *n_out = j;
    return o;
}

size_t srv_utf8_complete_prefix(const char *s, size_t len) {
    /* only the last 3 bytes can start an unfinished sequence */
    size_t start = len > 3 ? len - 3 : 0;
    for (size_t i = start; i < len; i++) {
        int l = utf8_seq((const unsigned char *)s + i, len - i);
        if (l < 0) return i;
    }
    return len;
}

/* ---- the checked request as JSON (lumen serve --parse-request, tests) ------------------ */

static void add_text(cJSON *o, const char *key, const char *s) {
    if (!s) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    char *c = srv_utf8_clean(s, strlen(s), NULL);
    cJSON_AddStringToObject(o, key, c ? c : "");
    free(c);
}

char *srv_request_to_json(const srv_request *r) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "endpoint", r->endpoint == SRV_CHAT ? "chat" : "completions");
    add_text(o, "model", r->model);
    if (r->endpoint == SRV_CHAT) {
        cJSON *ms = cJSON_AddArrayToObject(o, "messages");
        for (size_t i = 0; ms && i < r->n_messages; i++) {
            cJSON *m = cJSON_CreateObject();
            cJSON_AddItemToArray(ms, m);
            add_text(m, "role", r->messages[i].role);
            add_text(m, "content", r->messages[i].content);
        }
    } else {
        add_text(o, "prompt", r->prompt);
        if (r->prompt_ids)
            cJSON_AddItemToObject(o, "prompt_ids",
                                  cJSON_CreateIntArray(r->prompt_ids, r->n_prompt_ids));
        cJSON_AddBoolToObject(o, "echo", r->echo);
    }
    cJSON_AddNumberToObject(o, "max_tokens", r->max_tokens);
    cJSON_AddNumberToObject(o, "temperature", r->temperature);
    cJSON_AddNumberToObject(o, "top_p", r->top_p);
    cJSON_AddNumberToObject(o, "presence_penalty", r->presence_penalty);
    cJSON_AddNumberToObject(o, "frequency_penalty", r->frequency_penalty);
    cJSON_AddNumberToObject(o, "top_k", r->top_k);
    cJSON_AddNumberToObject(o, "min_p", r->min_p);
    cJSON_AddNumberToObject(o, "repetition_penalty", r->repeat_penalty);
    cJSON_AddBoolToObject(o, "ignore_eos", r->ignore_eos);
    if (r->has_seed) {
        char s[32]; /* as text: a uint64 does not fit a double */
        snprintf(s, sizeof s, "%llu", (unsigned long long)r->seed);
        cJSON_AddStringToObject(o, "seed", s);
    } else
        cJSON_AddNullToObject(o, "seed");
    cJSON *stop = cJSON_AddArrayToObject(o, "stop");
    for (int i = 0; stop && i < r->n_stop; i++) {
        char *c = srv_utf8_clean(r->stop[i], strlen(r->stop[i]), NULL);
        cJSON_AddItemToArray(stop, cJSON_CreateString(c ? c : ""));
        free(c);
    }
    cJSON_AddBoolToObject(o, "stream", r->stream);
    cJSON_AddBoolToObject(o, "include_usage", r->include_usage);
    cJSON_AddBoolToObject(o, "logprobs", r->logprobs);
    cJSON_AddNumberToObject(o, "top_logprobs", r->top_logprobs);
    cJSON *bias = cJSON_AddObjectToObject(o, "logit_bias");
    for (int32_t i = 0; bias && i < r->n_bias; i++) {
        char k[16];
        snprintf(k, sizeof k, "%d", r->bias[i].token);
        cJSON_AddNumberToObject(bias, k, r->bias[i].bias);
    }
    add_text(o, "user", r->user);
    static const char *const fmts[] = {"text", "json_object", "json_schema"};
    cJSON_AddStringToObject(o, "response_format", fmts[r->format]);
    add_text(o, "schema_name", r->schema_name);
    if (r->schema)
        cJSON_AddItemToObject(o, "schema", cJSON_Duplicate(r->schema, true));
    else
        cJSON_AddNullToObject(o, "schema");
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}
