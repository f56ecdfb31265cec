/* The server's request parser, through `lumen serve --parse-request` (the same code the
 * server runs, with no model and no HTTP): valid requests of each shape with every field,
 * and every invalid field with its status, param, code and message. The expected texts are
 * the OpenAI API's wording for the same mistakes. */
#include "helpers/test_util.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(serve_request, .timeout = 300);

/* Run the parser on body; returns the exit code, *out the output (stdout + stderr). */
static int parse(const char *endpoint, const char *body, char **out) {
    char path[] = "/tmp/lumen_req_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    size_t n = strlen(body);
    cr_assert_eq(write(fd, body, n), (ssize_t)n);
    close(fd);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s serve --parse-request %s < %s", lm_test_cli(), endpoint, path);
    int rc = lm_test_run(cmd, out);
    unlink(path);
    return rc;
}

static char *ok(const char *endpoint, const char *body) {
    char *out = NULL;
    int rc = parse(endpoint, body, &out);
    cr_assert_eq(rc, 0, "body %s\n-> %s", body, out);
    return out;
}

#define HAS(out, s) cr_expect(strstr(out, s) != NULL, "expected %s in\n%s", s, out)

/* ---- valid requests ------------------------------------------------------------------- */

Test(serve_request, chat_minimal_gets_openai_defaults) {
    char *o = ok("chat", "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}");
    HAS(o, "\"endpoint\":\"chat\"");
    HAS(o, "\"model\":\"x\"");
    HAS(o, "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]");
    HAS(o, "\"max_tokens\":-1"); /* until the context ends */
    HAS(o, "\"temperature\":1,\"top_p\":1,");
    HAS(o, "\"presence_penalty\":0,\"frequency_penalty\":0");
    HAS(o, "\"seed\":null");
    HAS(o, "\"stop\":[]");
    HAS(o, "\"stream\":false,\"include_usage\":false,\"logprobs\":false");
    HAS(o, "\"response_format\":\"text\"");
    free(o);
}

Test(serve_request, chat_every_field) {
    const char *body =
        "{\"model\":\"lumen\",\"messages\":["
        "{\"role\":\"developer\",\"content\":\"Be brief.\",\"name\":\"d\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"one\"},"
        "{\"type\":\"text\",\"text\":\"two\"}]},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[],\"refusal\":null,"
        "\"function_call\":null,\"audio\":null,\"annotations\":[]},"
        "{\"role\":\"system\",\"content\":\"s\"}],"
        "\"max_tokens\":5,\"max_completion_tokens\":7,\"temperature\":0.5,\"top_p\":0.25,"
        "\"presence_penalty\":1.5,\"frequency_penalty\":-0.5,\"seed\":42,"
        "\"stop\":[\"\\n\\n\",\"END\"],\"stream\":true,\"stream_options\":{\"include_usage\":true},"
        "\"n\":1,\"logit_bias\":{\"42\":-100,\"7\":2.5},\"user\":\"u-1\",\"logprobs\":true,"
        "\"top_logprobs\":3,\"response_format\":{\"type\":\"json_object\"},\"top_k\":40,"
        "\"min_p\":0.05,\"repetition_penalty\":1.1,\"ignore_eos\":true,\"store\":false,"
        "\"metadata\":{\"a\":\"b\"},"
        "\"service_tier\":\"auto\",\"parallel_tool_calls\":true,\"tools\":[],"
        "\"tool_choice\":\"none\",\"modalities\":[\"text\"]}";
    char *o = ok("chat", body);
    HAS(o, "{\"role\":\"system\",\"content\":\"Be brief.\"}"); /* developer -> system */
    HAS(o, "{\"role\":\"user\",\"content\":\"one\\ntwo\"}");   /* parts joined */
    HAS(o, "{\"role\":\"assistant\",\"content\":\"\"}");
    HAS(o, "\"max_tokens\":7"); /* max_completion_tokens wins */
    HAS(o, "\"temperature\":0.5,\"top_p\":0.25,\"presence_penalty\":1.5,"
           "\"frequency_penalty\":-0.5,\"top_k\":40,\"min_p\":0.05,\"repetition_penalty\":1.1,"
           "\"ignore_eos\":true");
    HAS(o, "\"seed\":\"42\"");
    HAS(o, "\"stop\":[\"\\n\\n\",\"END\"]");
    HAS(o, "\"stream\":true,\"include_usage\":true,\"logprobs\":true,\"top_logprobs\":3");
    HAS(o, "\"logit_bias\":{\"42\":-100,\"7\":2.5}");
    HAS(o, "\"user\":\"u-1\"");
    HAS(o, "\"response_format\":\"json_object\"");
    free(o);
}

Test(serve_request, chat_json_schema) {
    char *o = ok("chat", "{\"messages\":[{\"role\":\"user\",\"content\":\"j\"}],"
                         "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{"
                         "\"name\":\"person-1\",\"strict\":true,\"description\":\"d\","
                         "\"schema\":{\"type\":\"object\",\"properties\":{\"age\":{\"type\":"
                         "\"integer\"}},\"required\":[\"age\"],\"additionalProperties\":false}}}}");
    HAS(o, "\"response_format\":\"json_schema\",\"schema_name\":\"person-1\"");
    HAS(o, "\"schema\":{\"type\":\"object\",\"properties\":{\"age\":{\"type\":\"integer\"}}");
    free(o);
}

Test(serve_request, nulls_mean_not_given) {
    char *o = ok("chat", "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],"
                         "\"temperature\":null,\"stop\":null,\"seed\":null,\"max_tokens\":null,"
                         "\"stream\":null,\"stream_options\":null,\"response_format\":null}");
    HAS(o, "\"temperature\":1,");
    HAS(o, "\"max_tokens\":-1");
    HAS(o, "\"stream\":false");
    free(o);
}

Test(serve_request, seed_is_int64_and_stop_a_string) {
    char *o = ok("chat", "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"seed\":-1,"
                         "\"stop\":\"###\"}");
    HAS(o, "\"seed\":\"18446744073709551615\""); /* -1 as the uint64 the sampler takes */
    HAS(o, "\"stop\":[\"###\"]");
    free(o);
}

Test(serve_request, completion_prompt_shapes) {
    char *o = ok("completions", "{\"model\":\"m\",\"prompt\":\"Once upon\",\"max_tokens\":0,"
                                "\"echo\":true,\"best_of\":1,\"suffix\":null}");
    HAS(o, "\"endpoint\":\"completions\"");
    HAS(o, "\"prompt\":\"Once upon\"");
    HAS(o, "\"echo\":true,\"max_tokens\":0");
    free(o);
    o = ok("completions", "{\"prompt\":[\"only one\"],\"logprobs\":2}");
    HAS(o, "\"prompt\":\"only one\"");
    HAS(o, "\"logprobs\":true,\"top_logprobs\":2");
    free(o);
    o = ok("completions", "{\"prompt\":[1,2,3]}");
    HAS(o, "\"prompt\":null,\"prompt_ids\":[1,2,3]");
    free(o);
    o = ok("completions", "{\"prompt\":[[4,5]],\"stream\":true}");
    HAS(o, "\"prompt_ids\":[4,5]");
    HAS(o, "\"stream\":true");
    free(o);
}

Test(serve_request, invalid_utf8_is_replaced_not_passed_on) {
    char *o = ok("chat", "{\"messages\":[{\"role\":\"user\",\"content\":\"a\xff\xfe"
                         "b\"}]}");
    HAS(o, "\"content\":\"a\xEF\xBF\xBD\xEF\xBF\xBD"
           "b\"");
    free(o);
}

/* ---- invalid requests ----------------------------------------------------------------- */

typedef struct bad_case {
    const char *endpoint;
    const char *body;
    const char *param; /* NULL: "param":null */
    const char *code;
    const char *message; /* a part of the message */
} bad_case;

#define MSG       "\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]"
#define RF(x)     "{" MSG ",\"response_format\":" x "}"
#define SCHEMA(x) RF("{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"n\",\"schema\":" x "}}")
#define SP        "response_format.json_schema.schema"

static const bad_case bad_cases[] = {
    /* the body itself */
    {"chat", "{\"messages\": [}", NULL, "invalid_json", "could not parse the JSON body"},
    {"chat", "{} x", NULL, "invalid_json", "unexpected data at byte 3"},
    {"chat", "[]", NULL, "invalid_json", "must be a JSON object, but got an array"},
    {"chat", "", NULL, "invalid_json", "could not parse"},
    {"chat", "{}", "messages", "missing_required_parameter",
     "Missing required parameter: 'messages'."},
    {"completions", "{}", "prompt", "missing_required_parameter",
     "Missing required parameter: 'prompt'."},
    {"chat", "{" MSG ",\"foo\":1}", "foo", "unknown_parameter",
     "Unrecognized request argument supplied: foo"},
    {"chat", "{" MSG ",\"prompt\":\"x\"}", "prompt", "unknown_parameter", "Unrecognized"},
    {"completions", "{\"prompt\":\"x\",\"messages\":[]}", "messages", "unknown_parameter",
     "Unrecognized"},
    {"chat", "{" MSG ",\"top_p\":0.5,\"top_p\":0.5}", "top_p", "invalid_value", "Duplicate key"},
    /* messages */
    {"chat", "{\"messages\":{}}", "messages", "invalid_type",
     "Invalid type for 'messages': expected an array, but got an object instead."},
    {"chat", "{\"messages\":[]}", "messages", "invalid_value", "empty array"},
    {"chat", "{\"messages\":[1]}", "messages[0]", "invalid_type", "expected an object"},
    {"chat", "{\"messages\":[{\"content\":\"a\"}]}", "messages[0].role",
     "missing_required_parameter", "Missing required parameter: 'messages[0].role'."},
    {"chat", "{\"messages\":[{\"role\":\"robot\",\"content\":\"a\"}]}", "messages[0].role",
     "invalid_value", "expected one of 'system', 'developer', 'user', 'assistant'"},
    {"chat", "{\"messages\":[{\"role\":\"tool\",\"content\":\"a\"}]}", "messages[0].role",
     "unsupported_parameter", "tool and function messages are not supported"},
    {"chat", "{\"messages\":[{\"role\":\"user\"}]}", "messages[0].content",
     "missing_required_parameter", "Missing required parameter"},
    {"chat", "{\"messages\":[{\"role\":\"user\",\"content\":5}]}", "messages[0].content",
     "invalid_type", "expected a string or an array of parts, but got a number"},
    {"chat",
     "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{}}]}]}",
     "messages[0].content[0].type", "unsupported_parameter", "only text content parts"},
    {"chat", "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}",
     "messages[0].content[0].text", "missing_required_parameter",
     "Missing required parameter: 'messages[0].content[0].text'."},
    {"chat", "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":1}]}]}",
     "messages[0].content[0].text", "invalid_type", "expected a string, but got a number"},
    {"chat", "{\"messages\":[{\"role\":\"user\",\"content\":\"a\",\"foo\":1}]}", "messages[0].foo",
     "unknown_parameter", "Unrecognized"},
    {"chat",
     "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\","
     "\"tool_calls\":[{\"id\":\"x\"}]}]}",
     "messages[1].tool_calls", "unsupported_parameter", "not supported"},
    /* numbers */
    {"chat", "{" MSG ",\"temperature\":\"hot\"}", "temperature", "invalid_type",
     "Invalid type for 'temperature': expected a number, but got a string instead."},
    {"chat", "{" MSG ",\"temperature\":3}", "temperature", "invalid_value",
     "Invalid 'temperature': expected a value in [0, 2], but got 3 instead."},
    {"chat", "{" MSG ",\"top_p\":1.5}", "top_p", "invalid_value", "in [0, 1]"},
    {"chat", "{" MSG ",\"presence_penalty\":-3}", "presence_penalty", "invalid_value",
     "in [-2, 2]"},
    {"chat", "{" MSG ",\"frequency_penalty\":2.5}", "frequency_penalty", "invalid_value",
     "in [-2, 2]"},
    {"chat", "{" MSG ",\"max_tokens\":0}", "max_tokens", "invalid_value", "in [1, "},
    {"chat", "{" MSG ",\"max_completion_tokens\":1.5}", "max_completion_tokens", "invalid_type",
     "expected an integer"},
    {"completions", "{\"prompt\":\"a\",\"max_tokens\":-1}", "max_tokens", "invalid_value",
     "in [0, "},
    {"chat", "{" MSG ",\"seed\":1.5}", "seed", "invalid_type", "expected an integer"},
    {"chat", "{" MSG ",\"seed\":1e30}", "seed", "invalid_value", "expected a value in"},
    {"chat", "{" MSG ",\"n\":2}", "n", "unsupported_parameter", "values other than 1"},
    {"chat", "{" MSG ",\"n\":0}", "n", "invalid_value", "in [1, 128]"},
    {"chat", "{" MSG ",\"top_k\":-1}", "top_k", "invalid_value", "in [0, "},
    {"chat", "{" MSG ",\"min_p\":2}", "min_p", "invalid_value", "in [0, 1]"},
    {"chat", "{" MSG ",\"repetition_penalty\":0}", "repetition_penalty", "invalid_value",
     "(0, 10]"},
    {"chat", "{" MSG ",\"ignore_eos\":1}", "ignore_eos", "invalid_type", "expected a boolean"},
    /* stop */
    {"chat", "{" MSG ",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "stop", "invalid_value",
     "at most 4 stop sequences, but got 5."},
    {"chat", "{" MSG ",\"stop\":\"\"}", "stop", "invalid_value", "must not be empty"},
    {"chat", "{" MSG ",\"stop\":[1]}", "stop[0]", "invalid_type", "expected a string"},
    {"chat", "{" MSG ",\"stop\":{}}", "stop", "invalid_type",
     "expected a string or an array of strings"},
    /* streaming */
    {"chat", "{" MSG ",\"stream\":\"yes\"}", "stream", "invalid_type", "expected a boolean"},
    {"chat", "{" MSG ",\"stream_options\":{\"include_usage\":true}}", "stream_options",
     "invalid_value", "only allowed when 'stream' is true"},
    {"chat", "{" MSG ",\"stream\":true,\"stream_options\":{\"foo\":1}}", "stream_options.foo",
     "unknown_parameter", "Unrecognized"},
    {"chat", "{" MSG ",\"stream\":true,\"stream_options\":{\"include_usage\":1}}",
     "stream_options.include_usage", "invalid_type", "expected a boolean"},
    /* logit_bias, user, logprobs */
    {"chat", "{" MSG ",\"logit_bias\":[]}", "logit_bias", "invalid_type", "expected an object"},
    {"chat", "{" MSG ",\"logit_bias\":{\"abc\":1}}", "logit_bias.abc", "invalid_value",
     "keys must be token ids"},
    {"chat", "{" MSG ",\"logit_bias\":{\"5\":200}}", "logit_bias.5", "invalid_value",
     "in [-100, 100]"},
    {"chat", "{" MSG ",\"user\":5}", "user", "invalid_type", "expected a string"},
    {"chat", "{" MSG ",\"logprobs\":\"yes\"}", "logprobs", "invalid_type", "expected a boolean"},
    {"chat", "{" MSG ",\"logprobs\":true,\"top_logprobs\":21}", "top_logprobs", "invalid_value",
     "in [0, 20]"},
    {"chat", "{" MSG ",\"top_logprobs\":2}", "top_logprobs", "invalid_value",
     "requires 'logprobs' to be true"},
    {"completions", "{\"prompt\":\"a\",\"logprobs\":6}", "logprobs", "invalid_value", "in [0, 5]"},
    /* completions */
    {"completions", "{\"prompt\":[\"a\",\"b\"]}", "prompt", "unsupported_parameter",
     "more than one prompt"},
    {"completions", "{\"prompt\":[]}", "prompt", "invalid_value", "empty array"},
    {"completions", "{\"prompt\":[1,-1]}", "prompt[1]", "invalid_value", "in [0, "},
    {"completions", "{\"prompt\":{}}", "prompt", "invalid_type", "expected a string, an array"},
    {"completions", "{\"prompt\":\"a\",\"suffix\":\"b\"}", "suffix", "unsupported_parameter",
     "not supported"},
    {"completions", "{\"prompt\":\"a\",\"best_of\":2}", "best_of", "unsupported_parameter",
     "values other than 1"},
    {"completions", "{\"prompt\":\"a\",\"echo\":true,\"logprobs\":1}", "echo",
     "unsupported_parameter", "together with 'logprobs'"},
    /* tools and friends */
    {"chat", "{" MSG ",\"tools\":[{\"type\":\"function\"}]}", "tools", "unsupported_parameter",
     "Unsupported parameter: 'tools' is not supported by this server."},
    {"chat", "{" MSG ",\"tool_choice\":\"required\"}", "tool_choice", "unsupported_parameter",
     "not supported"},
    {"chat", "{" MSG ",\"modalities\":[\"audio\"]}", "modalities", "unsupported_parameter",
     "not supported"},
    /* response_format */
    {"chat", RF("\"json\""), "response_format", "invalid_type", "expected an object"},
    {"chat", RF("{}"), "response_format.type", "missing_required_parameter", "Missing"},
    {"chat", RF("{\"type\":\"xml\"}"), "response_format.type", "invalid_value",
     "expected one of 'text', 'json_object', 'json_schema', but got 'xml' instead."},
    {"chat", RF("{\"type\":\"json_schema\"}"), "response_format.json_schema",
     "missing_required_parameter", "Missing"},
    {"chat", RF("{\"type\":\"json_schema\",\"json_schema\":{\"schema\":{}}}"),
     "response_format.json_schema.name", "missing_required_parameter", "Missing"},
    {"chat", RF("{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"a b\"}}"),
     "response_format.json_schema.name", "invalid_value", "1 to 64 of a-z"},
    {"chat", RF("{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"a\",\"schema\":[]}}"),
     "response_format.json_schema.schema", "invalid_type", "expected an object"},
    {"chat", RF("{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"a\",\"foo\":1}}"),
     "response_format.json_schema.foo", "unknown_parameter", "Unrecognized"},
    {"chat", RF("{\"type\":\"json_object\",\"json_schema\":{}}"), "response_format.json_schema",
     "unknown_parameter", "Unrecognized"},
    /* schemas outside the supported subset: 400 naming the keyword and the place */
    {"chat", SCHEMA("{\"type\":\"integer\",\"minimum\":3}"), SP, "unsupported_schema",
     "Invalid schema at '#': keyword 'minimum' is not supported"},
    {"chat",
     SCHEMA("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\","
            "\"pattern\":\"x+\"}}}"),
     SP, "unsupported_schema", "at '#/properties/a': keyword 'pattern' is not supported"},
    {"chat",
     SCHEMA("{\"$defs\":{\"N\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/N\"}}},"
            "\"$ref\":\"#/$defs/N\"}"),
     SP, "unsupported_schema", "recursive '$ref' is not supported"},
    {"chat", SCHEMA("{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"string\",\"maxLength\":2}]}"),
     SP, "unsupported_schema", "must start differently"},
    {"chat", SCHEMA("{\"type\":\"object\",\"properties\":{\"a\":true},\"required\":[\"b\"]}"), SP,
     "unsupported_schema", "required property 'b' is not in 'properties'"},
    {"chat", SCHEMA("{\"enum\":[]}"), SP, "unsupported_schema", "'enum' needs 1 to 64 values"},
    {"chat", SCHEMA("{\"type\":\"string\",\"minLength\":5,\"maxLength\":2}"), SP,
     "unsupported_schema", "'minLength' is larger than 'maxLength'"},
    {"chat", SCHEMA("{\"type\":\"date\"}"), SP, "unsupported_schema", "unknown type 'date'"},
    {"chat", SCHEMA("{\"$ref\":\"http://x/y\"}"), SP, "unsupported_schema", "only '#/$defs/NAME'"},
    {"chat", SCHEMA("{\"allOf\":[]}"), SP, "unsupported_schema", "keyword 'allOf'"},
};

Test(serve_request, every_invalid_field_gives_a_400_naming_it) {
    char want[512];
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        char *out = NULL;
        int rc = parse(c->endpoint, c->body, &out);
        cr_expect_eq(rc, 1, "case %zu (%s): expected a failure, got\n%s", i, c->body, out);
        cr_expect(strstr(out, "lumen serve: HTTP 400") != NULL, "case %zu: %s", i, out);
        cr_expect(strstr(out, "{\"error\":{\"message\":\"") == out, "case %zu: shape\n%s", i, out);
        cr_expect(strstr(out, "\"type\":\"invalid_request_error\"") != NULL, "case %zu", i);
        if (c->param)
            snprintf(want, sizeof want, "\"param\":\"%s\"", c->param);
        else
            snprintf(want, sizeof want, "\"param\":null");
        cr_expect(strstr(out, want) != NULL, "case %zu (%s): want %s in\n%s", i, c->body, want,
                  out);
        snprintf(want, sizeof want, "\"code\":\"%s\"", c->code);
        cr_expect(strstr(out, want) != NULL, "case %zu (%s): want %s in\n%s", i, c->body, want,
                  out);
        cr_expect(strstr(out, c->message) != NULL, "case %zu (%s): want '%s' in\n%s", i, c->body,
                  c->message, out);
        free(out);
    }
}

Test(serve_request, limits_are_enforced) {
    /* 4097 messages: over SRV_MAX_MESSAGES, refused before they are copied */
    size_t cap = 64 + 4097 * 40;
    char *body = malloc(cap), *p = body;
    p += sprintf(p, "{\"messages\":[");
    for (int i = 0; i < 4097; i++)
        p += sprintf(p, "%s{\"role\":\"user\",\"content\":\"m\"}", i ? "," : "");
    sprintf(p, "]}");
    char *out = NULL;
    cr_expect_eq(parse("chat", body, &out), 1);
    cr_expect(strstr(out, "at most 4096 messages, but got 4097") != NULL, "%s", out);
    free(out);
    /* a 257-byte stop sequence */
    p = body + sprintf(body, "{" MSG ",\"stop\":\"");
    memset(p, 'x', 257);
    sprintf(p + 257, "\"}");
    cr_expect_eq(parse("chat", body, &out), 1);
    cr_expect(strstr(out, "at most 256 bytes, but got 257") != NULL, "%s", out);
    free(out);
    free(body);
}

Test(serve_request, bad_endpoint_name) {
    char *out = NULL;
    cr_expect_eq(parse("embeddings", "{}", &out), 1);
    cr_expect(strstr(out, "expects 'chat' or 'completions'") != NULL, "%s", out);
    free(out);
}
