/* lumen serve: constrained decoding for response_format json_object / json_schema.
 *
 * A JSON schema (a supported subset, see docs/server.md) compiles to a tree of nodes; a
 * byte-level pushdown automaton walks it as text is generated. Before each sample every
 * token whose bytes the automaton would refuse gets its logit set to -inf, so what comes out
 * always parses and matches the schema (unless max_tokens or the context cuts it short).
 * Pure C + cJSON: no model needed (fuzz/fuzz_serve_request.c drives it directly). */
#ifndef LM_SERVE_JSON_SCHEMA_H
#define LM_SERVE_JSON_SCHEMA_H

#include "serve_request.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct srv_schema srv_schema;

/* Compile a schema; NULL schema = any JSON object (json_object). On an unsupported or
 * malformed schema returns NULL with a 400 in *err naming the keyword and where it is. */
srv_schema *srv_schema_compile(const cJSON *schema, srv_error *err);
void srv_schema_free(srv_schema *s);

#define SRV_JSON_MAX_DEPTH 32

typedef struct srv_json_frame {
    const void *node;
    const char *const *lits; /* literal frames: candidate texts */
    const int32_t *lens;
    uint64_t mask;  /* literal candidates still matching / object properties seen */
    int32_t count;  /* array items, string code points, next property index */
    int32_t pos;    /* literal position, number length, \u digits */
    uint8_t kind;   /* frame kind (serve_json_schema.c) */
    uint8_t phase;  /* where in that kind's grammar */
    uint8_t ws;     /* whitespace run here */
    uint8_t extra;  /* number: integer only; utf-8: lo bound; string: is a key */
    uint8_t extra2; /* utf-8: hi bound */
} srv_json_frame;

typedef struct srv_json_state {
    const srv_schema *schema;
    int32_t depth; /* frames in use */
    bool done;     /* the document is complete: only the end may follow */
    bool failed;
    int32_t result; /* the literal a frame completed with (which property key) */
    srv_json_frame f[SRV_JSON_MAX_DEPTH];
} srv_json_state;

void srv_json_init(srv_json_state *st, const srv_schema *s);
/* Feed bytes; returns false (and marks the state failed) if they cannot continue a valid
 * document. */
bool srv_json_feed(srv_json_state *st, const char *bytes, size_t n);
/* True when the text so far is a whole document (the generation may end here). */
bool srv_json_can_end(const srv_json_state *st);
/* Copy only the frames in use (the state is large; the mask copies it per token). */
void srv_json_copy(srv_json_state *dst, const srv_json_state *src);

/* The vocabulary as bytes, for masking: token t is bytes[off[t] .. off[t+1]). */
typedef struct srv_token_table {
    const char *bytes;
    const int32_t *off;
    const uint8_t *eog;   /* 1 for tokens that end generation */
    const int16_t *plain; /* code points of a token that may sit anywhere inside a string
                           * (no quote, backslash or control byte; whole UTF-8), else -1 */
    int32_t n;
} srv_token_table;

/* Fill plain[0..n) for a table whose bytes/off are set. */
void srv_token_table_classify(const srv_token_table *tt, int16_t *plain);
/* May token t come next? */
bool srv_json_allows(const srv_json_state *st, const srv_token_table *tt, int32_t t);
/* Set logits[t] = -inf for every token that cannot come next. Returns the number of
 * tokens left allowed (0: nothing can follow; the caller stops). */
int32_t srv_json_mask(const srv_json_state *st, const srv_token_table *tt, float *logits);

#endif
