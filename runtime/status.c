/* Status strings, the per-thread error message and the log sink. */
#include "lm_internal.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static _Thread_local char lm__err_buf[1024];

const char *lm_status_str(lm_status s) {
    switch (s) {
#define LM_X_CASE(name, code, msg)                                                                 \
    case LM_##name:                                                                                \
        return msg;
        LM_STATUS_TABLE(LM_X_CASE)
#undef LM_X_CASE
    }
    return "unknown status";
}

const char *lm_last_error(void) {
    return lm__err_buf;
}

void lm__clear_error(void) {
    lm__err_buf[0] = '\0';
}

lm_status lm__verror(lm_status s, const char *fmt, va_list ap) {
    vsnprintf(lm__err_buf, sizeof lm__err_buf, fmt, ap);
    return s;
}

lm_status lm__error(lm_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    lm__verror(s, fmt, ap);
    va_end(ap);
    return s;
}

void lm__error_prefix(const char *prefix) {
    /* bounded so the prefix always fits; a very long message loses its tail */
    char msg[sizeof lm__err_buf];
    memcpy(msg, lm__err_buf, sizeof msg);
    snprintf(lm__err_buf, sizeof lm__err_buf, "%.200s: %.800s", prefix, msg);
}

static lm_log_fn lm__log_fn;
static void *lm__log_user;
static lm_log_level lm__log_min = LM_LOG_WARN;

void lm_log_set(lm_log_fn fn, void *user, lm_log_level min_level) {
    lm__log_fn = fn;
    lm__log_user = user;
    lm__log_min = min_level;
}

void lm__log(lm_log_level level, const char *fmt, ...) {
    if (level < lm__log_min) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (lm__log_fn) {
        lm__log_fn(level, msg, lm__log_user);
        return;
    }
    static const char *names[] = {"debug", "info", "warning", "error"};
    fprintf(stderr, "lumen: %s: %s\n", names[level], msg);
}

double lm__time_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
