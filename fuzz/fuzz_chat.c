/* Fuzz the chat templates: the input is split at NUL bytes into role, content, role,
 * content, ...; the first byte picks add_assistant. Every template must render without
 * crashing and honour the -needed contract (needed = length + 1 for the NUL). */
#include "chat.h"

#include <stdlib.h>
#include <string.h>

#define MAX_MSGS 64

static size_t split(const char *s, size_t n, lm_chat_message *m, char **copy) {
    *copy = malloc(n + 1);
    memcpy(*copy, s, n);
    (*copy)[n] = '\0';
    size_t k = 0, field = 0;
    char *p = *copy, *end = *copy + n;
    while (p <= end && k < MAX_MSGS) {
        if (field == 0)
            m[k].role = p, m[k].content = "";
        else
            m[k++].content = p;
        field ^= 1;
        p += strlen(p) + 1;
    }
    return field ? k + 1 : k; /* a trailing role without content counts */
}

static void check(const char *name, const lm_chat_message *m, size_t n, bool add) {
    int32_t need = lm_chat_render(name, m, n, add, NULL, 0);
    if (need >= 0 || need == INT32_MIN) abort(); /* the NUL alone needs 1 byte */
    char *buf = malloc((size_t)-need);
    int32_t len = lm_chat_render(name, m, n, add, buf, -need);
    if (len != -need - 1 || buf[len] != '\0' || strlen(buf) != (size_t)len) abort();
    if (lm_chat_render(name, m, n, add, buf, len) != need) abort();
    free(buf);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size == 0 || size > (1 << 16)) return 0;
    bool add = data[0] & 1;
    lm_chat_message m[MAX_MSGS + 1];
    char *copy;
    size_t n = split((const char *)data + 1, size - 1, m, &copy);
    for (const char *const *name = lm_chat_templates(); *name; name++) check(*name, m, n, add);
    char *tmpl = malloc(size + 1); /* detection on arbitrary text */
    memcpy(tmpl, data, size);
    tmpl[size] = '\0';
    (void)lm_chat_detect(tmpl);
    free(tmpl);
    free(copy);
    return 0;
}
