/* libFuzzer target for what `lumen serve` does with a request body before any model work:
 *
 *   byte 0 even: the rest is a request body for /v1/chat/completions (bit 1 clear) or
 *     /v1/completions: parse it; a success must respect every limit, a failure must give
 *     a 400/500 whose OpenAI-shaped error JSON parses back; a json_schema request's schema
 *     is compiled as the server would.
 *   byte 0 odd: the rest is "SCHEMA\0WALK": the schema is compiled (invalid ones must fail
 *     cleanly), then WALK drives the constrained-decoding automaton byte by byte among the
 *     bytes it allows: it must never reach a dead end (some byte or the end always allowed),
 *     and every document it can end must parse as JSON. The raw WALK bytes are fed too.
 *
 *   fuzz_serve_request --make-seeds DIR   writes a seed corpus and exits.
 *
 * CMake compiles tools/serve_request.c into fuzz_serve* targets; the schema automaton is
 * included here as source (it has no other dependency). */
#include "serve_json_schema.c"
#include "serve_request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static void check_error(const srv_error *e, int rc) {
    if (rc != e->status || (rc != 400 && rc != 500) || !e->message[0]) __builtin_trap();
    char *j = srv_error_json(e);
    if (!j) return; /* out of memory */
    cJSON *back = cJSON_Parse(j);
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(back, "error");
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(err, "message")) ||
        !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(err, "type")))
        __builtin_trap();
    cJSON_Delete(back);
    free(j);
}

static void check_request(const srv_request *r) {
    if (r->n_stop > SRV_MAX_STOP || r->top_logprobs > SRV_MAX_TOP_LOGPROBS ||
        r->n_bias > SRV_MAX_LOGIT_BIAS || r->temperature < 0 || r->temperature > 2 ||
        r->top_p < 0 || r->top_p > 1 || r->max_tokens < -1)
        __builtin_trap();
    for (int i = 0; i < r->n_stop; i++)
        if (!r->stop[i][0] || strlen(r->stop[i]) > SRV_MAX_STOP_BYTES) __builtin_trap();
    if (r->endpoint == SRV_CHAT) {
        if (r->n_messages < 1 || r->n_messages > SRV_MAX_MESSAGES) __builtin_trap();
        for (size_t i = 0; i < r->n_messages; i++)
            if (!r->messages[i].role || !r->messages[i].content) __builtin_trap();
    } else if (!r->prompt && r->n_prompt_ids < 1)
        __builtin_trap();
    char *j = srv_request_to_json(r);
    cJSON *back = j ? cJSON_Parse(j) : NULL;
    if (j && !back) __builtin_trap(); /* the dump is always valid JSON */
    cJSON_Delete(back);
    free(j);
    if (r->format != SRV_FMT_TEXT) {
        srv_error e;
        srv_schema *s = srv_schema_compile(r->schema, &e);
        if (!s && (e.status != 400 && e.status != 500)) __builtin_trap();
        srv_schema_free(s);
    }
}

/* Tokens cut from the walk bytes (1 to 4 bytes each) plus a few plain string pieces: the
 * fast paths of srv_json_allows must agree with feeding the bytes. */
#define N_TOK 48
typedef struct fake_vocab {
    char bytes[N_TOK * 4 + 64];
    int32_t off[N_TOK + 8];
    uint8_t eog[N_TOK + 8];
    int16_t plain[N_TOK + 8];
    srv_token_table tt;
} fake_vocab;

static void fake_vocab_init(fake_vocab *v, const uint8_t *w, size_t n) {
    static const char *const extra[] = {"ab", " the", "\xc3\xa9t\xc3\xa9", "x\"", "\\n"};
    int32_t len = 0, t = 0;
    for (size_t i = 0; i < n && t < N_TOK; t++) {
        size_t k = (size_t)(w[i] % 4) + 1;
        if (k > n - i) k = n - i;
        v->off[t] = len;
        memcpy(v->bytes + len, w + i, k);
        len += (int32_t)k;
        i += k;
    }
    for (size_t e = 0; e < sizeof extra / sizeof *extra; e++, t++) {
        v->off[t] = len;
        memcpy(v->bytes + len, extra[e], strlen(extra[e]));
        len += (int32_t)strlen(extra[e]);
    }
    v->off[t] = len;
    memset(v->eog, 0, sizeof v->eog);
    v->tt = (srv_token_table){v->bytes, v->off, v->eog, NULL, t};
    srv_token_table_classify(&v->tt, v->plain);
    v->tt.plain = v->plain;
}

static void check_allows(const srv_json_state *st, const fake_vocab *v) {
    for (int32_t t = 0; t < v->tt.n; t++) {
        srv_json_state tmp;
        srv_json_copy(&tmp, st);
        int32_t o = v->off[t], len = v->off[t + 1] - o;
        bool slow = len > 0 && srv_json_feed(&tmp, v->bytes + o, (size_t)len);
        if (srv_json_allows(st, &v->tt, t) != slow) __builtin_trap();
    }
}

/* Walk the automaton: each walk byte picks one of the allowed next bytes (or the end). */
static void walk(const srv_schema *s, const uint8_t *w, size_t n) {
    srv_json_state st, tmp;
    srv_json_init(&st, s);
    static fake_vocab v;
    fake_vocab_init(&v, w, n);
    char text[4096];
    size_t len = 0;
    for (size_t i = 0; i < n && len < sizeof text; i++) {
        check_allows(&st, &v);
        uint8_t allowed[256];
        int na = 0;
        for (int b = 1; b < 256; b++) {
            srv_json_copy(&tmp, &st);
            char c = (char)b;
            if (srv_json_feed(&tmp, &c, 1)) allowed[na++] = (uint8_t)b;
        }
        bool end = srv_json_can_end(&st);
        if (na == 0 && !end) __builtin_trap(); /* a dead end */
        if (na == 0 || (end && w[i] == 0)) break;
        char c = (char)allowed[w[i] % na];
        if (!srv_json_feed(&st, &c, 1)) __builtin_trap();
        text[len++] = c;
    }
    if (srv_json_can_end(&st)) {
        cJSON *doc = cJSON_ParseWithLength(text, len);
        if (!doc) __builtin_trap();
        cJSON_Delete(doc);
    }
    /* the same bytes unguided: refusals must be clean */
    srv_json_init(&st, s);
    srv_json_feed(&st, (const char *)w, n);
    (void)srv_json_can_end(&st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > (1 << 20)) return 0;
    const char *body = (const char *)data + 1;
    size_t n = size - 1;
    if (!(data[0] & 1)) {
        srv_request r;
        srv_error e;
        int rc = srv_request_parse(data[0] & 2 ? SRV_COMPLETION : SRV_CHAT, body, n, &r, &e);
        if (rc)
            check_error(&e, rc);
        else
            check_request(&r);
        srv_request_free(&r);
        return 0;
    }
    const char *nul = memchr(body, 0, n);
    size_t slen = nul ? (size_t)(nul - body) : n;
    cJSON *schema = cJSON_ParseWithLength(body, slen);
    srv_error e;
    srv_schema *s = srv_schema_compile(schema && !cJSON_IsNull(schema) ? schema : NULL, &e);
    if (s) {
        size_t off = nul ? slen + 1 : n;
        walk(s, (const uint8_t *)body + off, n - off > 64 ? 64 : n - off);
    } else if (e.status != 400 && e.status != 500)
        __builtin_trap();
    srv_schema_free(s);
    cJSON_Delete(schema);
    return 0;
}

/* ---- seed corpus ----------------------------------------------------------------------- */

static const char *const chat_seeds[] = {
    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}",
    "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\","
    "\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]},"
    "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[]}],\"max_completion_tokens\":8,"
    "\"temperature\":0.5,\"top_p\":0.9,\"stop\":[\"\\n\",\"END\"],\"seed\":-3,\"n\":1}",
    "{\"messages\":[{\"role\":\"developer\",\"content\":\"x\"}],\"stream\":true,"
    "\"stream_options\":{\"include_usage\":true},\"logprobs\":true,\"top_logprobs\":3,"
    "\"logit_bias\":{\"42\":-100,\"7\":2.5},\"user\":\"u\",\"presence_penalty\":1,"
    "\"frequency_penalty\":-1}",
    "{\"messages\":[{\"role\":\"user\",\"content\":\"j\"}],\"response_format\":{\"type\":"
    "\"json_object\"}}",
    "{\"messages\":[{\"role\":\"user\",\"content\":\"j\"}],\"response_format\":{\"type\":"
    "\"json_schema\",\"json_schema\":{\"name\":\"p\",\"strict\":true,\"schema\":{\"type\":"
    "\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":20},\"age\":"
    "{\"type\":\"integer\"},\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"a\",\"b\"]},"
    "\"maxItems\":3},\"ok\":{\"type\":[\"boolean\",\"null\"]}},\"required\":[\"name\",\"age\"]}}}}",
    "{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}],\"tools\":[{}]}",
    "{\"messages\":[],\"temperature\":\"hot\"}",
};

static const char *const completion_seeds[] = {
    "{\"model\":\"m\",\"prompt\":\"Once upon\",\"max_tokens\":16,\"echo\":true}",
    "{\"prompt\":[\"one\"],\"logprobs\":2,\"best_of\":1,\"suffix\":null}",
    ("{\"prompt\":[1,2,3],\"stop\":\"x\",\"stream\":true,\"top_k\":5,\"min_p\":0.1,"
     "\"repetition_penalty\":1.1}"),
    "{\"prompt\":[[4,5]],\"max_tokens\":0}",
};

static const char *const schema_seeds[] = {
    "null",
    "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"number\"},\"b\":{\"type\":"
    "\"string\",\"minLength\":1}},\"required\":[\"b\"]}",
    "{\"$defs\":{\"P\":{\"type\":\"object\",\"properties\":{\"x\":{\"const\":1}}}},\"type\":"
    "\"array\",\"items\":{\"anyOf\":[{\"$ref\":\"#/$defs/P\"},{\"type\":\"null\"}]},"
    "\"minItems\":1}",
    "{\"enum\":[1,10,\"ten\",true,null,[1]]}",
    "{\"type\":\"integer\"}",
    "{\"type\":\"object\",\"additionalProperties\":{\"type\":\"boolean\"}}",
};

static int write_seed(const char *dir, const char *name, int i, char tag, const char *text) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s_%d", dir, name, i);
    FILE *f = fopen(path, "wb");
    if (!f) return 1;
    fputc(tag, f);
    fputs(text, f);
    if (tag & 1) fwrite("\0\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x00", 1, 12, f);
    return fclose(f) != 0;
}

static int make_seeds(const char *dir) {
    int bad = 0;
    for (size_t i = 0; i < sizeof chat_seeds / sizeof *chat_seeds; i++)
        bad += write_seed(dir, "chat", (int)i, 0, chat_seeds[i]);
    for (size_t i = 0; i < sizeof completion_seeds / sizeof *completion_seeds; i++)
        bad += write_seed(dir, "completion", (int)i, 2, completion_seeds[i]);
    for (size_t i = 0; i < sizeof schema_seeds / sizeof *schema_seeds; i++)
        bad += write_seed(dir, "schema", (int)i, 1, schema_seeds[i]);
    return bad;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    for (int i = 1; i + 1 < *argc; i++)
        if (strcmp((*argv)[i], "--make-seeds") == 0) exit(make_seeds((*argv)[i + 1]) ? 1 : 0);
    return 0;
}
