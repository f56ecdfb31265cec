/* Reader for the reference-logits fixture (see ref_logits.h). Line based: each line is a
 * keyword and its values; '#' lines and blank lines are skipped. */
#include "ref_logits.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lm__ref_parser {
    lm_ref_logits *out;
    lm_ref_prompt *cur; /* open record (after `prompt`, before `end`) */
    int seen;           /* bit per record line: 1 ids, 2 top, 4 probe, 8 stats */
    int line;
    char *err;
    size_t err_size;
} lm__ref_parser;

static int lm__ref_fail(lm__ref_parser *p, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (p->err && p->err_size) snprintf(p->err, p->err_size, "line %d: %s", p->line, msg);
    return -1;
}

/* Next integer of the line; advances *s. */
static int lm__ref_int(lm__ref_parser *p, char **s, int32_t *v) {
    char *end;
    errno = 0;
    long x = strtol(*s, &end, 10);
    if (end == *s || errno || x < INT32_MIN || x > INT32_MAX)
        return lm__ref_fail(p, "expected an integer at '%.20s'", *s);
    *v = (int32_t)x;
    *s = end;
    return 0;
}

static int lm__ref_num(lm__ref_parser *p, char **s, double *v) {
    char *end;
    *v = strtod(*s, &end);
    if (end == *s) return lm__ref_fail(p, "expected a number at '%.20s'", *s);
    *s = end;
    return 0;
}

static int lm__ref_token_id(lm__ref_parser *p, char **s, int32_t *v) {
    if (lm__ref_int(p, s, v)) return -1;
    if (*v < 0 || (p->out->n_vocab > 0 && *v >= p->out->n_vocab))
        return lm__ref_fail(p, "token id %d out of range", (int)*v);
    return 0;
}

static int lm__ref_eol(lm__ref_parser *p, char *s) {
    s += strspn(s, " \t\r");
    return *s ? lm__ref_fail(p, "unexpected '%.20s'", s) : 0;
}

static int lm__hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int lm__ref_prompt(lm__ref_parser *p, char *s) {
    if (p->cur) return lm__ref_fail(p, "'prompt' before 'end' of the previous record");
    s += strspn(s, " \t");
    size_t n = strcspn(s, " \t\r");
    if (n % 2) return lm__ref_fail(p, "odd number of hex digits");
    lm_ref_logits *r = p->out;
    lm_ref_prompt *grown = realloc(r->prompts, (size_t)(r->n_prompts + 1) * sizeof *grown);
    if (!grown) return lm__ref_fail(p, "out of memory");
    r->prompts = grown;
    p->cur = &r->prompts[r->n_prompts++];
    memset(p->cur, 0, sizeof *p->cur);
    p->seen = 0;
    if (!(p->cur->text = malloc(n / 2 + 1))) return lm__ref_fail(p, "out of memory");
    for (size_t i = 0; i < n / 2; i++) {
        int hi = lm__hexval(s[2 * i]), lo = lm__hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return lm__ref_fail(p, "bad hex digit");
        p->cur->text[i] = (char)(hi * 16 + lo);
    }
    p->cur->text[n / 2] = '\0';
    p->cur->text_len = n / 2;
    return lm__ref_eol(p, s + n);
}

static int lm__ref_ids(lm__ref_parser *p, char *s) {
    int32_t n = 0;
    if (lm__ref_int(p, &s, &n)) return -1;
    if (n <= 0 || n > 1 << 20) return lm__ref_fail(p, "bad token count %d", (int)n);
    if (!(p->cur->ids = malloc((size_t)n * sizeof *p->cur->ids)))
        return lm__ref_fail(p, "out of memory");
    p->cur->n_ids = n;
    for (int32_t i = 0; i < n; i++)
        if (lm__ref_token_id(p, &s, &p->cur->ids[i])) return -1;
    return lm__ref_eol(p, s);
}

static int lm__ref_top(lm__ref_parser *p, char *s) {
    for (int i = 0; i < LM_REF_TOP; i++) {
        double v;
        if (lm__ref_token_id(p, &s, &p->cur->top_id[i])) return -1;
        if (*s++ != ':') return lm__ref_fail(p, "expected id:logit in entry %d", i);
        if (lm__ref_num(p, &s, &v)) return -1;
        p->cur->top_logit[i] = (float)v;
    }
    return lm__ref_eol(p, s);
}

static int lm__ref_probe(lm__ref_parser *p, char *s) {
    for (int i = 0; i < LM_REF_PROBES; i++) {
        double v;
        if (lm__ref_num(p, &s, &v)) return -1;
        p->cur->probe[i] = (float)v;
    }
    return lm__ref_eol(p, s);
}

static int lm__ref_stats(lm__ref_parser *p, char *s) {
    if (lm__ref_num(p, &s, &p->cur->mean) || lm__ref_num(p, &s, &p->cur->std)) return -1;
    return lm__ref_eol(p, s);
}

static int lm__ref_header(lm__ref_parser *p, const char *key, char *s) {
    if (!strcmp(key, "n_vocab")) {
        if (lm__ref_int(p, &s, &p->out->n_vocab)) return -1;
        if (p->out->n_vocab <= 0) return lm__ref_fail(p, "bad n_vocab");
        return lm__ref_eol(p, s);
    }
    if (!strcmp(key, "probes")) {
        for (int i = 0; i < LM_REF_PROBES; i++)
            if (lm__ref_token_id(p, &s, &p->out->probe_ids[i])) return -1;
        return lm__ref_eol(p, s);
    }
    return lm__ref_fail(p, "unknown key '%s' outside a record", key);
}

/* One record line: ids, top, probe, stats (each once) or end. */
static int lm__ref_record(lm__ref_parser *p, const char *key, char *s) {
    static const char *const keys[] = {"ids", "top", "probe", "stats"};
    static int (*const fns[])(lm__ref_parser *, char *) = {lm__ref_ids, lm__ref_top, lm__ref_probe,
                                                           lm__ref_stats};
    if (!strcmp(key, "end")) {
        if (p->seen != 15) return lm__ref_fail(p, "record lacks ids/top/probe/stats");
        p->cur = NULL;
        return lm__ref_eol(p, s);
    }
    for (int i = 0; i < 4; i++) {
        if (strcmp(key, keys[i])) continue;
        if (p->seen & (1 << i)) return lm__ref_fail(p, "'%s' twice in a record", key);
        p->seen |= 1 << i;
        return fns[i](p, s);
    }
    return lm__ref_fail(p, "unknown key '%s' in a record", key);
}

static int lm__ref_line(lm__ref_parser *p, char *s) {
    s += strspn(s, " \t\r");
    if (!*s || *s == '#') return 0;
    char key[16];
    size_t n = strcspn(s, " \t\r");
    if (n >= sizeof key) return lm__ref_fail(p, "unknown key '%.20s'", s);
    memcpy(key, s, n);
    key[n] = '\0';
    if (!strcmp(key, "prompt")) return lm__ref_prompt(p, s + n);
    return p->cur ? lm__ref_record(p, key, s + n) : lm__ref_header(p, key, s + n);
}

static char *lm__ref_read(const char *path, lm__ref_parser *p) {
    FILE *f = fopen(path, "rb");
    if (!f) return lm__ref_fail(p, "cannot open %s: %s", path, strerror(errno)), NULL;
    size_t cap = 1 << 16, len = 0, got;
    char *buf = malloc(cap);
    while (buf && (got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len < 2) {
            char *grown = realloc(buf, cap *= 2);
            if (!grown) free(buf);
            buf = grown;
        }
    }
    fclose(f);
    if (!buf) return lm__ref_fail(p, "out of memory"), NULL;
    buf[len] = '\0';
    return buf;
}

int lm_ref_logits_load(const char *path, lm_ref_logits *out, char *err, size_t err_size) {
    memset(out, 0, sizeof *out);
    lm__ref_parser p = {.out = out, .err = err, .err_size = err_size};
    if (err && err_size) err[0] = '\0';
    char *buf = lm__ref_read(path, &p);
    if (!buf) return -1;
    int rc = 0;
    for (char *line = buf, *next; line && !rc; line = next) {
        p.line++;
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        rc = lm__ref_line(&p, line);
    }
    if (!rc && p.cur) rc = lm__ref_fail(&p, "last record has no 'end'");
    if (!rc && (out->n_vocab <= 0 || out->n_prompts == 0))
        rc = lm__ref_fail(&p, "no n_vocab or no records");
    free(buf);
    if (rc) lm_ref_logits_free(out);
    return rc;
}

void lm_ref_logits_free(lm_ref_logits *r) {
    if (!r) return;
    for (int32_t i = 0; i < r->n_prompts; i++) {
        free(r->prompts[i].text);
        free(r->prompts[i].ids);
    }
    free(r->prompts);
    memset(r, 0, sizeof *r);
}

const lm_ref_prompt *lm_ref_logits_find(const lm_ref_logits *r, const char *text) {
    for (int32_t i = 0; i < r->n_prompts; i++)
        if (!strcmp(r->prompts[i].text, text)) return &r->prompts[i];
    return NULL;
}
