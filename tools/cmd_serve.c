/* lumen serve: the OpenAI-compatible HTTP server (options and startup; see serve_*.c). */
#include "cli.h"
#include "serve_json_schema.h"
#include "serve_request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int cmd_serve(const cli_opts *o) {
    if (o->parse_request) return parse_request_mode(o->parse_request);
    fprintf(stderr, "lumen serve: error: the HTTP server is not built yet\n");
    return 1;
}
