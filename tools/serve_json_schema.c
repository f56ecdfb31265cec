/* lumen serve: JSON schema -> node tree -> byte-level pushdown automaton -> logit mask.
 *
 * The one invariant everything rests on: every prefix the automaton accepts can still be
 * completed into a valid document (no dead ends), so masking tokens one step at a time
 * never corners the model. That is why numbers and strings reserve room for the bytes they
 * still need, surrogate escapes are refused at their second digit, and schema nesting is
 * bounded well below the frame stack.
 *
 * Generation is a subset of what a schema allows: object properties come in the order they
 * are declared, no properties beyond the declared ones, canonical string escapes. Anything
 * produced validates; not every valid document can be produced. */
#include "serve_json_schema.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NODES        4096
#define MAX_PROPS        64 /* per object: a 64-bit mask tracks them */
#define MAX_LITS         64 /* enum values */
#define MAX_LIT_BYTES    1024
#define MAX_SCHEMA_DEPTH 12 /* frames: each level needs about two */
#define MAX_REFS         64
#define WS_MAX           16 /* whitespace run at one place */
#define NUM_MAX          24 /* bytes in a number */
#define EXP_MAX          2  /* exponent digits: 1e99 at most, never an infinity */

typedef enum nkind {
    N_ANY,
    N_OBJECT,
    N_ARRAY,
    N_STRING,
    N_NUMBER,
    N_INTEGER,
    N_LITS,
    N_UNION
} nkind;

typedef struct node {
    nkind kind;
    /* object: declared properties, in order; free_keys: any keys, values `extra` */
    int32_t n_props;
    char **keys; /* JSON text with quotes */
    int32_t *key_lens;
    struct node **props;
    bool *required;
    bool free_keys;
    struct node *extra;
    /* array */
    struct node *items;
    int32_t min_items, max_items; /* max -1: unbounded */
    /* string */
    int32_t min_len, max_len;
    /* literals (enum, const, true/false/null) */
    int32_t n_lits;
    char **lits;
    int32_t *lens;
    /* union: alternatives that start with different bytes */
    int32_t n_alts;
    struct node **alts;
    struct node *next_alloc;
} node;

struct srv_schema {
    node *root, *any, *any_obj, *any_arr, *any_str, *all;
    int32_t n_nodes;
};

static const char *const tfn_lits[3] = {"true", "false", "null"};
static const int32_t tfn_lens[3] = {4, 5, 4};

/* ---- compile -------------------------------------------------------------------------- */

typedef struct cctx {
    srv_schema *s;
    srv_error *e;
    const cJSON *root;
    struct {
        const cJSON *def;
        node *n;
        bool busy;
    } refs[MAX_REFS];
    int n_refs;
} cctx;

#define SCHEMA_PARAM "response_format.json_schema.schema"

static node *fail(cctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static node *fail(cctx *c, const char *path, const char *fmt, ...) {
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    srv_error_set(c->e, 400, "invalid_request_error", "unsupported_schema", SCHEMA_PARAM,
                  "Invalid schema at '%s': %s", path, why);
    return NULL;
}

static node *new_node(cctx *c, nkind k, const char *path) {
    if (c->s->n_nodes >= MAX_NODES) return fail(c, path, "more than %d schema nodes", MAX_NODES);
    node *n = calloc(1, sizeof *n);
    if (!n) return fail(c, path, "out of memory");
    n->kind = k;
    n->max_items = n->max_len = -1;
    n->next_alloc = c->s->all;
    c->s->all = n;
    c->s->n_nodes++;
    return n;
}

typedef struct bset {
    uint64_t w[4];
} bset;

static void bset_add(bset *b, unsigned char ch) {
    b->w[ch >> 6] |= 1ull << (ch & 63);
}

static void bset_range(bset *b, unsigned char lo, unsigned char hi) {
    for (unsigned ch = lo; ch <= hi; ch++) bset_add(b, (unsigned char)ch);
}

/* Bytes a value of this node can start with. */
static bset first_bytes(const node *n) {
    bset b = {{0}};
    switch (n->kind) {
    case N_ANY:
        bset_add(&b, '{'), bset_add(&b, '['), bset_add(&b, '"'), bset_add(&b, 't');
        bset_add(&b, 'f'), bset_add(&b, 'n');
        /* fallthrough */
    case N_NUMBER:
    case N_INTEGER:
        bset_add(&b, '-');
        bset_range(&b, '0', '9');
        break;
    case N_OBJECT:
        bset_add(&b, '{');
        break;
    case N_ARRAY:
        bset_add(&b, '[');
        break;
    case N_STRING:
        bset_add(&b, '"');
        break;
    case N_LITS:
        for (int32_t i = 0; i < n->n_lits; i++) bset_add(&b, (unsigned char)n->lits[i][0]);
        break;
    case N_UNION:
        for (int32_t i = 0; i < n->n_alts; i++) {
            bset a = first_bytes(n->alts[i]);
            for (int k = 0; k < 4; k++) b.w[k] |= a.w[k];
        }
        break;
    }
    return b;
}

static node *compile(cctx *c, const cJSON *j, const char *path, int depth);

static const char *const annotations[] = {
    "title",  "description", "$schema",   "$id",        "examples", "default",     "$comment",
    "format", "readOnly",    "writeOnly", "deprecated", "$defs",    "definitions", "strict",
};
static const char *const assertions[] = {
    "type",      "properties", "required", "additionalProperties",
    "items",     "minItems",   "maxItems", "enum",
    "const",     "anyOf",      "oneOf",    "$ref",
    "minLength", "maxLength",
};

static bool in_list(const char *k, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(k, list[i])) return true;
    return false;
}

#define COUNT(a) (sizeof a / sizeof a[0])

static int get_count(cctx *c, const cJSON *j, const char *key, const char *path, int32_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble > 1e6) {
        fail(c, path, "'%s' must be an integer in [0, 1000000]", key);
        return 1;
    }
    *out = (int32_t)v->valuedouble;
    return 0;
}

static node *literals(cctx *c, const cJSON *vals, int n, const char *path) {
    if (n < 1 || n > MAX_LITS) return fail(c, path, "'enum' needs 1 to %d values", MAX_LITS);
    node *nd = new_node(c, N_LITS, path);
    if (!nd) return NULL;
    nd->lits = calloc((size_t)n, sizeof *nd->lits);
    nd->lens = calloc((size_t)n, sizeof *nd->lens);
    if (!nd->lits || !nd->lens) return fail(c, path, "out of memory");
    for (const cJSON *v = vals; v && nd->n_lits < n; v = v->next) {
        char *t = cJSON_PrintUnformatted(v);
        if (!t) return fail(c, path, "out of memory");
        size_t len = strlen(t);
        char *clean = srv_utf8_clean(t, len, &len);
        free(t);
        if (!clean) return fail(c, path, "out of memory");
        nd->lits[nd->n_lits] = clean;
        nd->lens[nd->n_lits++] = (int32_t)len;
        if (len == 0 || len > MAX_LIT_BYTES)
            return fail(c, path, "an enum value is longer than %d bytes", MAX_LIT_BYTES);
        for (int32_t k = 0; k + 1 < nd->n_lits; k++)
            if (!strcmp(nd->lits[k], clean)) return fail(c, path, "'enum' repeats a value");
    }
    return nd;
}

static node *object_node(cctx *c, const cJSON *j, const char *path, int depth) {
    node *n = new_node(c, N_OBJECT, path);
    if (!n) return NULL;
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(j, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(j, "required");
    const cJSON *addl = cJSON_GetObjectItemCaseSensitive(j, "additionalProperties");
    char p[512];
    if (props && !cJSON_IsObject(props)) return fail(c, path, "'properties' must be an object");
    if (req && !cJSON_IsArray(req)) return fail(c, path, "'required' must be an array");
    int np = props ? cJSON_GetArraySize(props) : 0;
    if (np > MAX_PROPS) return fail(c, path, "more than %d properties", MAX_PROPS);
    if (np == 0) {
        /* no declared properties: a free-form object unless additionalProperties is false */
        if (cJSON_IsFalse(addl)) return n;
        n->free_keys = true;
        if (cJSON_IsObject(addl)) {
            snprintf(p, sizeof p, "%s/additionalProperties", path);
            if (!(n->extra = compile(c, addl, p, depth + 1))) return NULL;
        } else if (addl && !cJSON_IsTrue(addl))
            return fail(c, path, "'additionalProperties' must be a boolean or a schema");
        if (req && cJSON_GetArraySize(req) > 0)
            return fail(c, path, "'required' names properties that are not in 'properties'");
        return n;
    }
    n->keys = calloc((size_t)np, sizeof *n->keys);
    n->key_lens = calloc((size_t)np, sizeof *n->key_lens);
    n->props = calloc((size_t)np, sizeof *n->props);
    n->required = calloc((size_t)np, sizeof *n->required);
    if (!n->keys || !n->key_lens || !n->props || !n->required)
        return fail(c, path, "out of memory");
    for (const cJSON *pr = props->child; pr; pr = pr->next) {
        int32_t i = n->n_props;
        cJSON *key = cJSON_CreateString(pr->string);
        char *t = key ? cJSON_PrintUnformatted(key) : NULL;
        cJSON_Delete(key);
        size_t len = t ? strlen(t) : 0;
        n->keys[i] = t ? srv_utf8_clean(t, len, &len) : NULL;
        free(t);
        if (!n->keys[i]) return fail(c, path, "out of memory");
        n->key_lens[i] = (int32_t)len;
        n->n_props++;
        for (int32_t k = 0; k < i; k++)
            if (!strcmp(n->keys[k], n->keys[i]))
                return fail(c, path, "property '%.64s' is declared twice", pr->string);
        snprintf(p, sizeof p, "%s/properties/%.100s", path, pr->string);
        if (!(n->props[i] = compile(c, pr, p, depth + 1))) return NULL;
    }
    for (const cJSON *r = req ? req->child : NULL; r; r = r->next) {
        if (!cJSON_IsString(r)) return fail(c, path, "'required' must list strings");
        int32_t found = -1;
        for (int32_t i = 0; i < np; i++) {
            const cJSON *pr = cJSON_GetArrayItem(props, i);
            if (!strcmp(pr->string, r->valuestring)) found = i;
        }
        if (found < 0)
            return fail(c, path, "required property '%.64s' is not in 'properties'",
                        r->valuestring);
        n->required[found] = true;
    }
    return n;
}

static node *typed_node(cctx *c, const cJSON *j, const char *type, const char *path, int depth) {
    char p[512];
    if (!strcmp(type, "object")) return object_node(c, j, path, depth);
    if (!strcmp(type, "array")) {
        node *n = new_node(c, N_ARRAY, path);
        if (!n) return NULL;
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(j, "items");
        snprintf(p, sizeof p, "%s/items", path);
        n->items = items ? compile(c, items, p, depth + 1) : c->s->any;
        n->min_items = 0;
        if (!n->items || get_count(c, j, "minItems", path, &n->min_items) ||
            get_count(c, j, "maxItems", path, &n->max_items))
            return NULL;
        if (n->max_items >= 0 && n->min_items > n->max_items)
            return fail(c, path, "'minItems' is larger than 'maxItems'");
        return n;
    }
    if (!strcmp(type, "string")) {
        node *n = new_node(c, N_STRING, path);
        if (!n) return NULL;
        n->min_len = 0;
        if (get_count(c, j, "minLength", path, &n->min_len) ||
            get_count(c, j, "maxLength", path, &n->max_len))
            return NULL;
        if (n->max_len >= 0 && n->min_len > n->max_len)
            return fail(c, path, "'minLength' is larger than 'maxLength'");
        return n;
    }
    if (!strcmp(type, "number")) return new_node(c, N_NUMBER, path);
    if (!strcmp(type, "integer")) return new_node(c, N_INTEGER, path);
    if (!strcmp(type, "boolean") || !strcmp(type, "null")) {
        node *n = new_node(c, N_LITS, path);
        if (!n) return NULL;
        bool b = !strcmp(type, "boolean");
        n->lits = (char **)(b ? tfn_lits : tfn_lits + 2);
        n->lens = (int32_t *)(b ? tfn_lens : tfn_lens + 2);
        n->n_lits = b ? 2 : 1;
        return n;
    }
    return fail(c, path, "unknown type '%.32s'", type);
}

/* Alternatives become one node: nested unions flatten, literal sets merge, integer joins
 * number; what is left must start with different bytes (the automaton picks by the first). */
static node *make_union(cctx *c, node **alts, int n, const char *path) {
    node *flat[64];
    int nf = 0;
    for (int i = 0; i < n; i++) {
        node *a = alts[i];
        int na = a->kind == N_UNION ? a->n_alts : 1;
        for (int k = 0; k < na; k++) {
            node *x = a->kind == N_UNION ? a->alts[k] : a;
            if (nf >= 64) return fail(c, path, "more than 64 alternatives");
            flat[nf++] = x;
        }
    }
    node *num = NULL;
    for (int i = 0; i < nf; i++)
        if (flat[i]->kind == N_NUMBER) num = flat[i];
    node *out[64];
    int no = 0;
    node *lits = NULL;
    for (int i = 0; i < nf; i++) {
        node *x = flat[i];
        if (x->kind == N_INTEGER && num) continue;
        if (x->kind == N_LITS) {
            if (!lits) {
                lits = new_node(c, N_LITS, path);
                if (!lits) return NULL;
                lits->lits = calloc(MAX_LITS, sizeof *lits->lits);
                lits->lens = calloc(MAX_LITS, sizeof *lits->lens);
                if (!lits->lits || !lits->lens) return fail(c, path, "out of memory");
                out[no++] = lits;
            }
            for (int32_t k = 0; k < x->n_lits; k++) {
                bool dup = false;
                for (int32_t m = 0; m < lits->n_lits; m++)
                    dup |= !strcmp(lits->lits[m], x->lits[k]);
                if (dup) continue;
                if (lits->n_lits >= MAX_LITS) return fail(c, path, "more than %d values", MAX_LITS);
                lits->lens[lits->n_lits] = x->lens[k];
                if (!(lits->lits[lits->n_lits++] = strdup(x->lits[k])))
                    return fail(c, path, "out of memory");
            }
            continue;
        }
        out[no++] = x;
    }
    if (no == 1) return out[0];
    bset seen = {{0}};
    for (int i = 0; i < no; i++) {
        bset b = first_bytes(out[i]);
        for (int k = 0; k < 4; k++) {
            if (seen.w[k] & b.w[k])
                return fail(c, path,
                            "alternatives (anyOf/oneOf/type list) must start differently, e.g. "
                            "a string, a number, an object, null; these overlap");
            seen.w[k] |= b.w[k];
        }
    }
    node *u = new_node(c, N_UNION, path);
    if (!u) return NULL;
    u->alts = calloc((size_t)no, sizeof *u->alts);
    if (!u->alts) return fail(c, path, "out of memory");
    memcpy(u->alts, out, (size_t)no * sizeof *out);
    u->n_alts = no;
    return u;
}

static node *ref_node(cctx *c, const cJSON *ref, const char *path, int depth) {
    if (!cJSON_IsString(ref)) return fail(c, path, "'$ref' must be a string");
    const char *r = ref->valuestring, *name = NULL, *section = NULL;
    if (!strncmp(r, "#/$defs/", 8)) section = "$defs", name = r + 8;
    if (!strncmp(r, "#/definitions/", 14)) section = "definitions", name = r + 14;
    if (!name || strchr(name, '/') || strchr(name, '~'))
        return fail(c, path,
                    "only '#/$defs/NAME' and '#/definitions/NAME' references are supported");
    const cJSON *defs = cJSON_GetObjectItemCaseSensitive(c->root, section);
    const cJSON *def = defs ? cJSON_GetObjectItemCaseSensitive(defs, name) : NULL;
    if (!def) return fail(c, path, "'$ref' to '%.100s' which is not defined", r);
    for (int i = 0; i < c->n_refs; i++)
        if (c->refs[i].def == def) {
            if (c->refs[i].busy) return fail(c, path, "recursive '$ref' is not supported");
            return c->refs[i].n;
        }
    if (c->n_refs >= MAX_REFS) return fail(c, path, "more than %d references", MAX_REFS);
    int k = c->n_refs++;
    c->refs[k].def = def;
    c->refs[k].busy = true;
    char p[512];
    snprintf(p, sizeof p, "#/%s/%.100s", section, name);
    node *n = compile(c, def, p, depth + 1);
    c->refs[k].n = n;
    c->refs[k].busy = false;
    return n;
}

static node *compile(cctx *c, const cJSON *j, const char *path, int depth) {
    if (depth > MAX_SCHEMA_DEPTH)
        return fail(c, path, "schemas nested deeper than %d levels", MAX_SCHEMA_DEPTH);
    if (cJSON_IsTrue(j)) return c->s->any;
    if (!cJSON_IsObject(j)) return fail(c, path, "a schema must be an object or true");
    int n_assert = 0;
    for (const cJSON *k = j->child; k; k = k->next) {
        if (in_list(k->string, assertions, COUNT(assertions)))
            n_assert++;
        else if (!in_list(k->string, annotations, COUNT(annotations)))
            return fail(c, path, "keyword '%.64s' is not supported", k->string);
    }
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(j, "$ref");
    const cJSON *any = cJSON_GetObjectItemCaseSensitive(j, "anyOf");
    if (!any) any = cJSON_GetObjectItemCaseSensitive(j, "oneOf");
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(j, "enum");
    const cJSON *cn = cJSON_GetObjectItemCaseSensitive(j, "const");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
    if ((ref || any) && n_assert > 1)
        return fail(c, path, "'$ref', 'anyOf' and 'oneOf' cannot be combined with other keywords");
    if (ref) return ref_node(c, ref, path, depth);
    if (cn) return literals(c, cn, 1, path);
    if (en) {
        if (!cJSON_IsArray(en)) return fail(c, path, "'enum' must be an array");
        return literals(c, en->child, cJSON_GetArraySize(en), path);
    }
    char p[512];
    if (any) {
        int n = cJSON_IsArray(any) ? cJSON_GetArraySize(any) : 0;
        if (n < 1 || n > 64) return fail(c, path, "'anyOf'/'oneOf' needs 1 to 64 schemas");
        node *alts[64];
        int i = 0;
        for (const cJSON *a = any->child; a; a = a->next, i++) {
            snprintf(p, sizeof p, "%s/anyOf/%d", path, i);
            if (!(alts[i] = compile(c, a, p, depth + 1))) return NULL;
        }
        return make_union(c, alts, n, path);
    }
    if (cJSON_IsString(type)) return typed_node(c, j, type->valuestring, path, depth);
    if (cJSON_IsArray(type)) {
        int n = cJSON_GetArraySize(type);
        if (n < 1 || n > 7) return fail(c, path, "'type' lists 1 to 7 types");
        node *alts[8];
        int i = 0;
        for (const cJSON *t = type->child; t; t = t->next, i++) {
            if (!cJSON_IsString(t)) return fail(c, path, "'type' must list strings");
            if (!(alts[i] = typed_node(c, j, t->valuestring, path, depth))) return NULL;
        }
        return make_union(c, alts, n, path);
    }
    if (type) return fail(c, path, "'type' must be a string or an array of strings");
    /* no type: what the keywords imply */
    if (cJSON_GetObjectItemCaseSensitive(j, "properties") ||
        cJSON_GetObjectItemCaseSensitive(j, "additionalProperties"))
        return object_node(c, j, path, depth);
    if (cJSON_GetObjectItemCaseSensitive(j, "items")) return typed_node(c, j, "array", path, depth);
    return n_assert ? fail(c, path, "keywords without a 'type'") : c->s->any;
}

srv_schema *srv_schema_compile(const cJSON *schema, srv_error *err) {
    srv_schema *s = calloc(1, sizeof *s);
    if (!s) {
        srv_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
        return NULL;
    }
    cctx c = {.s = s, .e = err, .root = schema};
    s->any = new_node(&c, N_ANY, "#");
    s->any_obj = new_node(&c, N_OBJECT, "#");
    s->any_arr = new_node(&c, N_ARRAY, "#");
    s->any_str = new_node(&c, N_STRING, "#");
    if (!s->any || !s->any_obj || !s->any_arr || !s->any_str) {
        srv_schema_free(s);
        return NULL;
    }
    s->any_obj->free_keys = true;
    s->any_arr->items = s->any;
    s->any_arr->min_items = 0;
    s->any_str->min_len = 0;
    s->root = schema ? compile(&c, schema, "#", 0) : s->any_obj;
    if (!s->root) {
        srv_schema_free(s);
        return NULL;
    }
    return s;
}

void srv_schema_free(srv_schema *s) {
    if (!s) return;
    for (node *n = s->all, *next; n; n = next) {
        next = n->next_alloc;
        for (int32_t i = 0; i < n->n_props; i++) free(n->keys[i]);
        free(n->keys);
        free(n->key_lens);
        free(n->props);
        free(n->required);
        if (n->lits != (char **)tfn_lits && n->lits != (char **)tfn_lits + 2) {
            for (int32_t i = 0; i < n->n_lits; i++) free(n->lits[i]);
            free(n->lits);
            free(n->lens);
        }
        free(n->alts);
        free(n);
    }
    free(s);
}

/* ---- the automaton -------------------------------------------------------------------- */

enum { K_VALUE, K_OBJ, K_ARR, K_STR, K_NUM, K_LIT };
enum { R_OK, R_REJECT, R_DONE, R_DONE_REFEED };
/* object phases; the key and value are child frames */
enum { O_START, O_KEY_NEXT, O_IN_KEY, O_COLON, O_IN_VALUE, O_AFTER };
enum { A_START, A_NEXT, A_IN, A_AFTER };
enum { S_CHARS, S_ESC, S_U, S_UTF8 };
/* number states; the accepting ones are ZERO, INT, FRAC, EXP */
enum { NS_START, NS_MINUS, NS_ZERO, NS_INT, NS_DOT, NS_FRAC, NS_E, NS_ESIGN, NS_EXP };

static bool is_ws(int ch) {
    return ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t';
}
static bool is_digit(int ch) {
    return ch >= '0' && ch <= '9';
}

static int step(srv_json_state *st, int ch);

static bool push(srv_json_state *st, int kind, const node *n) {
    if (st->depth >= SRV_JSON_MAX_DEPTH) return false;
    srv_json_frame *f = &st->f[st->depth++];
    memset(f, 0, sizeof *f);
    f->kind = (uint8_t)kind;
    f->node = n;
    return true;
}

static int32_t lit_done(const srv_json_frame *f) {
    for (int32_t i = 0; i < 64; i++)
        if ((f->mask >> i & 1) && f->lens[i] == f->pos) return i;
    return -1;
}

static int step_lit(srv_json_frame *f, int ch, int32_t *result) {
    uint64_t m = 0;
    bool longer = false;
    for (int32_t i = 0; i < 64; i++)
        if ((f->mask >> i & 1) && f->lens[i] > f->pos && (unsigned char)f->lits[i][f->pos] == ch) {
            m |= 1ull << i;
            longer |= f->lens[i] > f->pos + 1;
        }
    if (m) {
        f->mask = m;
        f->pos++;
        if (!longer) { /* nothing can extend: complete now */
            *result = lit_done(f);
            return R_DONE;
        }
        return R_OK;
    }
    int32_t done = lit_done(f);
    if (done < 0) return R_REJECT;
    *result = done;
    return R_DONE_REFEED;
}

static bool num_accepting(int phase) {
    return phase == NS_ZERO || phase == NS_INT || phase == NS_FRAC || phase == NS_EXP;
}

static int step_num(srv_json_frame *f, int ch) {
    bool integer = f->extra, room = f->pos < NUM_MAX - 3, d = is_digit(ch);
    int next = -1;
    switch (f->phase) {
    case NS_START:
        next = ch == '-' ? NS_MINUS : ch == '0' ? NS_ZERO : d ? NS_INT : -1;
        break;
    case NS_MINUS:
        next = ch == '0' ? NS_ZERO : d ? NS_INT : -1;
        break;
    case NS_ZERO:
    case NS_INT:
        if (d && f->phase == NS_INT && room) next = NS_INT;
        if (!integer && room && ch == '.') next = NS_DOT;
        if (!integer && room && (ch == 'e' || ch == 'E')) next = NS_E;
        break;
    case NS_DOT:
        next = d ? NS_FRAC : -1;
        break;
    case NS_FRAC:
        if (d && room) next = NS_FRAC;
        if (room && (ch == 'e' || ch == 'E')) next = NS_E;
        break;
    case NS_E:
        next = ch == '+' || ch == '-' ? NS_ESIGN : d ? NS_EXP : -1;
        break;
    case NS_ESIGN:
        next = d ? NS_EXP : -1;
        break;
    case NS_EXP:
        next = d && f->count < EXP_MAX ? NS_EXP : -1;
        break;
    }
    if (next < 0) return num_accepting(f->phase) ? R_DONE_REFEED : R_REJECT;
    if (next == NS_EXP) f->count++;
    f->phase = (uint8_t)next;
    f->pos++;
    return R_OK;
}

static int utf8_lead(srv_json_frame *f, int ch) {
    int need = 0;
    unsigned lo = 0x80, hi = 0xBF;
    if (ch >= 0xC2 && ch <= 0xDF)
        need = 1;
    else if (ch >= 0xE0 && ch <= 0xEF) {
        need = 2;
        lo = ch == 0xE0 ? 0xA0 : lo;
        hi = ch == 0xED ? 0x9F : hi;
    } else if (ch >= 0xF0 && ch <= 0xF4) {
        need = 3;
        lo = ch == 0xF0 ? 0x90 : lo;
        hi = ch == 0xF4 ? 0x8F : hi;
    } else
        return R_REJECT;
    f->phase = S_UTF8;
    f->pos = need;
    f->extra = (uint8_t)lo;
    f->extra2 = (uint8_t)hi;
    return R_OK;
}

static int hex_value(int ch) {
    if (is_digit(ch)) return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

static int step_str(srv_json_frame *f, int ch) {
    const node *n = f->node;
    bool full = n->max_len >= 0 && f->count >= n->max_len;
    switch (f->phase) {
    case S_CHARS:
        if (ch == '"') return f->count >= n->min_len ? R_DONE : R_REJECT;
        if (full || ch < 0x20) return R_REJECT;
        f->count++;
        if (ch == '\\') f->phase = S_ESC;
        return ch < 0x80 ? R_OK : utf8_lead(f, ch);
    case S_ESC:
        if (ch == 'u') {
            f->phase = S_U;
            f->pos = 0;
            f->mask = 0;
            return R_OK;
        }
        if (!strchr("\"\\/bfnrt", ch) || !ch) return R_REJECT;
        f->phase = S_CHARS;
        return R_OK;
    case S_U: {
        int v = hex_value(ch);
        if (v < 0) return R_REJECT;
        f->mask = f->mask * 16 + (uint64_t)v;
        /* a lone surrogate half would be a dead end (we never pair them): refuse D8..DF */
        if (f->pos == 1 && f->mask >= 0xD8 && f->mask <= 0xDF) return R_REJECT;
        if (++f->pos == 4) f->phase = S_CHARS;
        return R_OK;
    }
    case S_UTF8:
        if (ch < f->extra || ch > f->extra2) return R_REJECT;
        f->extra = 0x80;
        f->extra2 = 0xBF;
        if (--f->pos == 0) f->phase = S_CHARS;
        return R_OK;
    }
    return R_REJECT;
}

/* A value frame turns into the frame of what it sees first. */
static int start_value(srv_json_state *st, srv_json_frame *f, const node *n, int ch,
                       int32_t *result) {
    const srv_schema *s = st->schema;
    if (n->kind == N_UNION) {
        for (int32_t i = 0; i < n->n_alts; i++) {
            bset b = first_bytes(n->alts[i]);
            if (b.w[ch >> 6] >> (ch & 63) & 1) return start_value(st, f, n->alts[i], ch, result);
        }
        return R_REJECT;
    }
    if (n->kind == N_ANY) {
        if (ch == '{') n = s->any_obj;
        if (ch == '[') n = s->any_arr;
        if (ch == '"') n = s->any_str;
        if (ch == 't' || ch == 'f' || ch == 'n') {
            f->kind = K_LIT;
            f->lits = tfn_lits;
            f->lens = tfn_lens;
            f->mask = 7;
            f->pos = 0;
            return step_lit(f, ch, result);
        }
    }
    f->node = n;
    f->ws = 0;
    f->count = 0;
    f->pos = 0;
    f->phase = 0;
    switch (n->kind) {
    case N_OBJECT:
        f->kind = K_OBJ;
        return ch == '{' ? R_OK : R_REJECT;
    case N_ARRAY:
        f->kind = K_ARR;
        return ch == '[' ? R_OK : R_REJECT;
    case N_STRING:
        f->kind = K_STR;
        return ch == '"' ? R_OK : R_REJECT;
    case N_ANY:
    case N_NUMBER:
    case N_INTEGER:
        f->kind = K_NUM;
        f->extra = n->kind == N_INTEGER;
        f->phase = NS_START;
        return step_num(f, ch);
    case N_LITS:
        f->kind = K_LIT;
        f->lits = (const char *const *)n->lits;
        f->lens = n->lens;
        f->mask = n->n_lits == 64 ? ~0ull : (1ull << n->n_lits) - 1;
        return step_lit(f, ch, result);
    case N_UNION:
        break;
    }
    return R_REJECT;
}

static bool ws_ok(srv_json_frame *f) {
    if (f->ws >= WS_MAX) return false;
    f->ws++;
    return true;
}

/* Any required property left from index i on? */
static bool required_left(const node *n, int32_t i) {
    for (; i < n->n_props; i++)
        if (n->required[i]) return true;
    return false;
}

static int key_start(srv_json_state *st, srv_json_frame *f, int ch) {
    const node *n = f->node;
    f->phase = O_IN_KEY;
    if (n->free_keys) {
        if (!push(st, K_STR, st->schema->any_str)) return R_REJECT;
        return R_OK; /* the quote opened it */
    }
    uint64_t m = 0;
    for (int32_t i = f->count; i < n->n_props; i++) {
        m |= 1ull << i;
        if (n->required[i]) break; /* properties come in order: none may skip a required one */
    }
    if (!m || !push(st, K_LIT, n)) return R_REJECT;
    srv_json_frame *k = &st->f[st->depth - 1];
    k->lits = (const char *const *)n->keys;
    k->lens = n->key_lens;
    k->mask = m;
    return step(st, ch);
}

static int step_obj(srv_json_state *st, srv_json_frame *f, int ch) {
    const node *n = f->node;
    bool can_close = n->free_keys || !required_left(n, f->count);
    bool more_keys = n->free_keys || f->count < n->n_props;
    if (is_ws(ch)) return ws_ok(f) ? R_OK : R_REJECT;
    f->ws = 0;
    switch (f->phase) {
    case O_START:
        if (ch == '}') return can_close ? R_DONE : R_REJECT;
        /* fallthrough */
    case O_KEY_NEXT:
        return ch == '"' && more_keys ? key_start(st, f, ch) : R_REJECT;
    case O_COLON: {
        if (ch != ':') return R_REJECT;
        const node *v = n->free_keys ? (n->extra ? n->extra : st->schema->any) : n->props[f->pos];
        f->phase = O_IN_VALUE;
        return push(st, K_VALUE, v) ? R_OK : R_REJECT;
    }
    case O_AFTER:
        if (ch == '}') return can_close ? R_DONE : R_REJECT;
        if (ch == ',' && more_keys) {
            f->phase = O_KEY_NEXT;
            return R_OK;
        }
        return R_REJECT;
    }
    return R_REJECT;
}

static int step_arr(srv_json_state *st, srv_json_frame *f, int ch) {
    const node *n = f->node;
    if (is_ws(ch)) return ws_ok(f) ? R_OK : R_REJECT;
    f->ws = 0;
    switch (f->phase) {
    case A_START:
        if (ch == ']') return n->min_items == 0 ? R_DONE : R_REJECT;
        if (n->max_items == 0) return R_REJECT;
        /* fallthrough */
    case A_NEXT:
        f->phase = A_IN;
        if (!push(st, K_VALUE, n->items)) return R_REJECT;
        return step(st, ch);
    case A_AFTER:
        if (ch == ']') return f->count >= n->min_items ? R_DONE : R_REJECT;
        if (ch == ',' && (n->max_items < 0 || f->count < n->max_items)) {
            f->phase = A_NEXT;
            return R_OK;
        }
        return R_REJECT;
    }
    return R_REJECT;
}

static int step(srv_json_state *st, int ch) {
    srv_json_frame *f = &st->f[st->depth - 1];
    switch (f->kind) {
    case K_VALUE:
        if (is_ws(ch)) return st->depth > 1 && ws_ok(f) ? R_OK : R_REJECT;
        return start_value(st, f, f->node, ch, &st->result);
    case K_OBJ:
        return step_obj(st, f, ch);
    case K_ARR:
        return step_arr(st, f, ch);
    case K_STR:
        return step_str(f, ch);
    case K_NUM:
        return step_num(f, ch);
    case K_LIT:
        return step_lit(f, ch, &st->result);
    }
    return R_REJECT;
}

static void child_done(srv_json_frame *p, int32_t result) {
    if (p->kind == K_OBJ) {
        if (p->phase == O_IN_KEY) {
            const node *n = p->node;
            if (!n->free_keys) {
                p->pos = result; /* the property whose value comes next */
                p->count = result + 1;
            }
            p->phase = O_COLON;
        } else
            p->phase = O_AFTER;
    } else if (p->kind == K_ARR) {
        p->count++;
        p->phase = A_AFTER;
    }
    p->ws = 0;
}

static bool feed_byte(srv_json_state *st, int ch) {
    if (st->done || st->failed || st->depth <= 0) return false;
    for (;;) {
        st->result = -1;
        int r = step(st, ch);
        if (r == R_REJECT) return false;
        if (r == R_OK) return true;
        int32_t result = st->result;
        if (--st->depth == 0) {
            st->done = true;
            return r == R_DONE; /* nothing may follow the document */
        }
        child_done(&st->f[st->depth - 1], result);
        if (r == R_DONE) return true;
    }
}

void srv_json_init(srv_json_state *st, const srv_schema *s) {
    st->schema = s;
    st->done = st->failed = false;
    st->depth = 0;
    push(st, K_VALUE, s->root);
}

bool srv_json_feed(srv_json_state *st, const char *bytes, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!feed_byte(st, (unsigned char)bytes[i])) {
            st->failed = true;
            return false;
        }
    return true;
}

bool srv_json_can_end(const srv_json_state *st) {
    if (st->done) return true;
    if (st->failed || st->depth != 1) return false;
    const srv_json_frame *f = &st->f[0];
    if (f->kind == K_NUM) return num_accepting(f->phase);
    if (f->kind == K_LIT) return lit_done(f) >= 0;
    return false;
}

void srv_json_copy(srv_json_state *dst, const srv_json_state *src) {
    size_t head = offsetof(srv_json_state, f);
    memcpy(dst, src, head + (size_t)src->depth * sizeof src->f[0]);
}

void srv_token_table_classify(const srv_token_table *tt, int16_t *plain) {
    for (int32_t t = 0; t < tt->n; t++) {
        const char *p = tt->bytes + tt->off[t];
        size_t len = (size_t)(tt->off[t + 1] - tt->off[t]);
        int cps = 0;
        bool ok = len > 0 && !tt->eog[t];
        for (size_t i = 0; ok && i < len; i++) {
            unsigned char ch = (unsigned char)p[i];
            ok = ch >= 0x20 && ch != '"' && ch != '\\';
            cps += (ch & 0xC0) != 0x80;
        }
        /* whole UTF-8 only: a string frame checks sequences byte by byte */
        char *clean = ok ? srv_utf8_clean(p, len, NULL) : NULL;
        ok = ok && clean && strlen(clean) == len && !memcmp(clean, p, len) && cps < INT16_MAX;
        free(clean);
        plain[t] = ok ? (int16_t)cps : -1;
    }
}

/* Room left in the string being written, or -1 when not inside plain string text. */
static int32_t string_room(const srv_json_state *st) {
    if (st->done || st->failed || st->depth <= 0) return -1;
    const srv_json_frame *f = &st->f[st->depth - 1];
    if (f->kind != K_STR || f->phase != S_CHARS) return -1;
    const node *n = f->node;
    return n->max_len < 0 ? INT32_MAX : n->max_len - f->count;
}

bool srv_json_allows(const srv_json_state *st, const srv_token_table *tt, int32_t t) {
    if (tt->eog[t]) return srv_json_can_end(st);
    int32_t room = string_room(st);
    if (tt->plain && tt->plain[t] >= 0 && tt->plain[t] <= room) return true;
    srv_json_state tmp;
    srv_json_copy(&tmp, st);
    int32_t o = tt->off[t], len = tt->off[t + 1] - o;
    return len > 0 && srv_json_feed(&tmp, tt->bytes + o, (size_t)len);
}

int32_t srv_json_mask(const srv_json_state *st, const srv_token_table *tt, float *logits) {
    bool end = srv_json_can_end(st);
    bool first[256];
    srv_json_state tmp;
    for (int b = 0; b < 256; b++) {
        srv_json_copy(&tmp, st);
        first[b] = srv_json_feed(&tmp, (const char *)&(unsigned char){(unsigned char)b}, 1);
    }
    /* inside a string most tokens are plain text: no need to run them through */
    int32_t room = string_room(st);
    int32_t allowed = 0;
    for (int32_t t = 0; t < tt->n; t++) {
        int32_t o = tt->off[t], len = tt->off[t + 1] - o;
        bool ok;
        if (tt->eog[t])
            ok = end;
        else if (len <= 0 || !first[(unsigned char)tt->bytes[o]])
            ok = false;
        else if (len == 1 || (tt->plain && tt->plain[t] >= 0 && tt->plain[t] <= room))
            ok = true;
        else {
            srv_json_copy(&tmp, st);
            ok = srv_json_feed(&tmp, tt->bytes + o, (size_t)len);
        }
        if (ok)
            allowed++;
        else
            logits[t] = -INFINITY;
    }
    return allowed;
}
