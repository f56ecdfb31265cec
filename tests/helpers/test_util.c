#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *lm_test_model_path(void) {
    const char *env = getenv("LUMEN_MODEL");
    if (env && *env) return env;
    return LM_SOURCE_DIR "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

const char *lm_test_fixture(const char *name) {
    static _Thread_local char buf[4096];
    snprintf(buf, sizeof buf, "%s/tests/fixtures/%s", LM_SOURCE_DIR, name);
    return buf;
}

const char *lm_test_cli(void) {
    return LM_BINARY_DIR "/lumen";
}

uint64_t lm_test_seed(void) {
    const char *env = getenv("LUMEN_TEST_SEED");
    uint64_t seed;
    if (env && *env) {
        seed = strtoull(env, NULL, 0);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
    }
    fprintf(stderr, "[seed] LUMEN_TEST_SEED=%llu\n", (unsigned long long)seed);
    return seed;
}

uint64_t lm_test_rng_u64(lm_test_rng *r) {
    /* splitmix64: good enough for test inputs, any seed (even 0) works */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float lm_test_rng_uniform(lm_test_rng *r) {
    return (float)((lm_test_rng_u64(r) >> 40) * (1.0 / 16777216.0));
}

float lm_test_rng_normal(lm_test_rng *r) {
    double u1 = ((lm_test_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (lm_test_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void lm_test_fill_normal(lm_test_rng *r, float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * lm_test_rng_normal(r);
}

double lm_test_max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || isnan(d)) m = isnan(d) ? INFINITY : d;
    }
    return m;
}

int lm_test_run(const char *cmd, char **output) {
    char *full = malloc(strlen(cmd) + 16);
    sprintf(full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    free(full);
    if (!p) return -1;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (cap - len < 2) buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    int st = pclose(p);
    if (output)
        *output = buf;
    else
        free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
