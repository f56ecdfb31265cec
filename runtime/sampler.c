/* Sampler: penalties, greedy, top-k, temperature, top-p, min-p and a seeded RNG.
 *
 * Pipeline per call (the brief's llama.cpp-like order):
 *   1. copy the logits; NaN -> -inf, +inf -> FLT_MAX (so softmax stays finite);
 *   2. penalties over the last penalty_last_n accepted tokens:
 *      repeat (positive logit / penalty, negative * penalty), frequency (- count * f),
 *      presence (- p if count > 0);
 *   3. temperature <= 0: argmax (first maximum on ties) and stop;
 *   4. top-k (a size-k heap scan; nothing is fully sorted anywhere);
 *   5. softmax of (logit - max) / temperature over the survivors;
 *   6. top-p: smallest prefix (by probability) with cumulative >= top_p, at least one
 *      (found by quickselect on mass, expected O(n));
 *   7. min-p: drop p < min_p * p_max;
 *   8. draw from the renormalised survivors with xoshiro256** (seeded by splitmix64).
 * Temperature is applied before top-p/min-p (unlike recent llama.cpp, which scales last).
 * When every logit is NaN/-inf the result is token 0, the same first-maximum rule as
 * greedy. Seed 0 is an ordinary, fixed seed: runs are reproducible for every seed, and
 * callers wanting variety (the CLI without --seed) pass a time-based one.
 * All buffers are allocated at create; a sample call allocates nothing.
 */
#include "lm_internal.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* A candidate token: v is its logit, later its probability. */
typedef struct lm__cand {
    float v;
    int32_t id;
} lm__cand;

struct lm_sampler {
    lm_sampler_params p;
    int32_t n_vocab;
    float *work;      /* n_vocab: sanitised, penalised logits */
    lm__cand *cand;   /* n_vocab: surviving candidates */
    int32_t *counts;  /* n_vocab: occurrences in the penalty window */
    lm_token *hist;   /* ring of the last penalty_last_n accepted tokens (when > 0) */
    int32_t hist_len; /* tokens in the ring */
    int32_t hist_pos; /* next slot to write */
    uint64_t rng[4];  /* xoshiro256** state */
};

/* ---- RNG: xoshiro256**, seeded by splitmix64; integer-only, so the same everywhere ---- */

static uint64_t lm__splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t lm__rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

static uint64_t lm__rng_next(uint64_t s[4]) {
    uint64_t result = lm__rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = lm__rotl(s[3], 45);
    return result;
}

static void lm__rng_seed(uint64_t s[4], uint64_t seed) {
    /* splitmix64 never yields an all-zero xoshiro state, whatever the seed */
    for (int i = 0; i < 4; i++) s[i] = lm__splitmix64(&seed);
}

/* Uniform double in [0, 1) with 53 random bits. */
static double lm__rng_uniform(uint64_t s[4]) {
    return (double)(lm__rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- parameters ---------------------------------------------------------------------- */

lm_sampler_params lm_sampler_default_params(void) {
    lm_sampler_params p = {
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .penalty_last_n = 64,
        .frequency_penalty = 0.0f,
        .presence_penalty = 0.0f,
        .seed = 0,
    };
    return p;
}

static lm_status lm__bad(const char *name, double v, const char *rule) {
    return lm__error(LM_ERR_INVALID_ARG, "sampler: %s must be %s (got %g)", name, rule, v);
}

static lm_status lm__check_params(const lm_sampler_params *p, int32_t n_vocab) {
    if (n_vocab <= 0) return lm__bad("n_vocab", n_vocab, "> 0");
    if (!isfinite(p->temperature)) return lm__bad("temperature", p->temperature, "finite");
    if (!(p->top_p >= 0.0f) || isinf(p->top_p))
        return lm__bad("top_p", p->top_p, "finite and >= 0");
    if (!isfinite(p->min_p)) return lm__bad("min_p", p->min_p, "finite");
    if (!(p->repeat_penalty > 0.0f) || isinf(p->repeat_penalty))
        return lm__bad("repeat_penalty", p->repeat_penalty, "finite and > 0");
    if (p->penalty_last_n < -1) return lm__bad("penalty_last_n", p->penalty_last_n, ">= -1");
    if (!isfinite(p->frequency_penalty))
        return lm__bad("frequency_penalty", p->frequency_penalty, "finite");
    if (!isfinite(p->presence_penalty))
        return lm__bad("presence_penalty", p->presence_penalty, "finite");
    return LM_OK;
}

/* ---- lifetime ------------------------------------------------------------------------ */

lm_status lm_sampler_create(const lm_sampler_params *params, int32_t n_vocab, lm_sampler **out) {
    if (!out) return lm__error(LM_ERR_INVALID_ARG, "sampler: out is NULL");
    *out = NULL;
    lm_sampler_params p = params ? *params : lm_sampler_default_params();
    LM_TRY(lm__check_params(&p, n_vocab));

    lm_sampler *s = LM_CALLOC(1, sizeof *s);
    if (!s) return lm__error(LM_ERR_NOMEM, "sampler: out of memory");
    s->p = p;
    s->n_vocab = n_vocab;
    s->work = LM_MALLOC((size_t)n_vocab * sizeof *s->work);
    s->cand = LM_MALLOC((size_t)n_vocab * sizeof *s->cand);
    s->counts = LM_CALLOC((size_t)n_vocab, sizeof *s->counts);
    if (p.penalty_last_n > 0) s->hist = LM_MALLOC((size_t)p.penalty_last_n * sizeof *s->hist);
    if (!s->work || !s->cand || !s->counts || (p.penalty_last_n > 0 && !s->hist)) {
        lm_sampler_free(s);
        return lm__error(LM_ERR_NOMEM, "sampler: out of memory (n_vocab %d)", (int)n_vocab);
    }
    lm__rng_seed(s->rng, p.seed);
    *out = s;
    return LM_OK;
}

void lm_sampler_free(lm_sampler *s) {
    if (!s) return;
    LM_FREE(s->work);
    LM_FREE(s->cand);
    LM_FREE(s->counts);
    LM_FREE(s->hist);
    LM_FREE(s);
}

void lm_sampler_reset(lm_sampler *s, uint64_t seed) {
    if (!s) return;
    memset(s->counts, 0, (size_t)s->n_vocab * sizeof *s->counts);
    s->hist_len = 0;
    s->hist_pos = 0;
    s->p.seed = seed;
    lm__rng_seed(s->rng, seed);
}

/* Out-of-range tokens are ignored: there is no status to report them through. */
void lm_sampler_accept(lm_sampler *s, lm_token token) {
    if (!s || token < 0 || token >= s->n_vocab) return;
    int32_t n = s->p.penalty_last_n;
    if (n == 0) return;
    if (n > 0) {
        if (s->hist_len == n)
            s->counts[s->hist[s->hist_pos]]--; /* evict the oldest */
        else
            s->hist_len++;
        s->hist[s->hist_pos] = token;
        s->hist_pos = (s->hist_pos + 1) % n;
    }
    s->counts[token]++;
}

/* ---- pipeline steps ------------------------------------------------------------------ */

static bool lm__penalties_on(const lm_sampler_params *p) {
    return p->penalty_last_n != 0 && (p->repeat_penalty != 1.0f || p->frequency_penalty != 0.0f ||
                                      p->presence_penalty != 0.0f);
}

/* Branch-free so the copy loop vectorises: NaN -> -inf, +inf -> FLT_MAX. */
static float lm__sanitize(float x) {
    x = x != x ? -INFINITY : x;
    return x > FLT_MAX ? FLT_MAX : x;
}

static float lm__penalize(const lm_sampler_params *p, float x, int32_t count) {
    x = x > 0.0f ? x / p->repeat_penalty : x * p->repeat_penalty;
    x -= (float)count * p->frequency_penalty + p->presence_penalty;
    return lm__sanitize(x);
}

/* Max of x[0..n) with 8 independent accumulators: a single running max is a serial
 * dependency chain and costs several times more. x holds no NaN. */
static float lm__max(const float *x, int32_t n) {
    float m[8];
    for (int j = 0; j < 8; j++) m[j] = -INFINITY;
    int32_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) m[j] = x[i + j] > m[j] ? x[i + j] : m[j];
    for (; i < n; i++) m[0] = x[i] > m[0] ? x[i] : m[0];
    for (int j = 1; j < 8; j++) m[0] = m[j] > m[0] ? m[j] : m[0];
    return m[0];
}

/* Step 1-2: s->work = sanitised, penalised logits. Returns the index of the first
 * maximum (the greedy choice). */
static int32_t lm__prepare(lm_sampler *s, const float *logits) {
    const int32_t n = s->n_vocab;
    for (int32_t i = 0; i < n; i++) s->work[i] = lm__sanitize(logits[i]);
    if (lm__penalties_on(&s->p))
        for (int32_t i = 0; i < n; i++)
            if (s->counts[i] > 0) s->work[i] = lm__penalize(&s->p, s->work[i], s->counts[i]);
    float mx = lm__max(s->work, n);
    int32_t best = 0;
    while (best < n - 1 && s->work[best] != mx) best++;
    return best;
}

/* Candidate order: higher value first, lower id first on ties. A strict total order, so
 * every selection below is deterministic. */
static bool lm__before(lm__cand a, lm__cand b) {
    return a.v > b.v || (a.v == b.v && a.id < b.id);
}

static void lm__swap(lm__cand *a, lm__cand *b) {
    lm__cand t = *a;
    *a = *b;
    *b = t;
}

/* Sift down in a heap with the worst candidate on top. */
static void lm__sift_worst(lm__cand *h, int32_t n, int32_t i) {
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && lm__before(h[m], h[l])) m = l;
        if (r < n && lm__before(h[m], h[r])) m = r;
        if (m == i) return;
        lm__swap(&h[i], &h[m]);
        i = m;
    }
}

/* Step 4: the k best of s->work into s->cand[0..k) (heap order). O(n log k), and
 * O(n) in practice: few tokens beat the heap's worst. */
static int32_t lm__top_k(lm_sampler *s, int32_t k) {
    lm__cand *h = s->cand;
    for (int32_t i = 0; i < k; i++) h[i] = (lm__cand){s->work[i], i};
    for (int32_t i = k / 2 - 1; i >= 0; i--) lm__sift_worst(h, k, i);
    /* ids rise during the scan, so a tie never beats the heap top: strict > suffices,
     * and a threshold in a register keeps the common no-insert path tight */
    float thr = h[0].v;
    for (int32_t i = k; i < s->n_vocab; i++) {
        if (s->work[i] > thr) {
            h[0] = (lm__cand){s->work[i], i};
            lm__sift_worst(h, k, 0);
            thr = h[0].v;
        }
    }
    return k;
}

static int32_t lm__all(lm_sampler *s) {
    for (int32_t i = 0; i < s->n_vocab; i++) s->cand[i] = (lm__cand){s->work[i], i};
    return s->n_vocab;
}

/* Step 5: logits -> probabilities of (v - max) / temp over c[0..n); max is the largest
 * logit (known from step 1). Four partial sums: one is a serial add chain. */
static void lm__softmax(lm__cand *c, int32_t n, float max, float temp) {
    const float inv_t = 1.0f / temp;
    double sum[4] = {0.0, 0.0, 0.0, 0.0};
    for (int32_t i = 0; i < n; i++) {
        /* subtract before scaling: FLT_MAX / temp would overflow */
        c[i].v = expf((c[i].v - max) * inv_t);
        sum[i & 3] += c[i].v;
    }
    const float inv = (float)(1.0 / (sum[0] + sum[1] + sum[2] + sum[3]));
    for (int32_t i = 0; i < n; i++) c[i].v *= inv;
}

/* Partition c[lo..hi) around a median-of-three pivot: better ones first. Returns the
 * pivot's final index. */
static int32_t lm__partition(lm__cand *c, int32_t lo, int32_t hi) {
    int32_t mid = lo + (hi - lo) / 2, last = hi - 1;
    if (lm__before(c[mid], c[lo])) lm__swap(&c[mid], &c[lo]);
    if (lm__before(c[last], c[lo])) lm__swap(&c[last], &c[lo]);
    if (lm__before(c[last], c[mid])) lm__swap(&c[last], &c[mid]);
    lm__swap(&c[mid], &c[last]); /* the median is the pivot, parked at the end */
    lm__cand piv = c[last];
    int32_t store = lo;
    for (int32_t i = lo; i < last; i++) { /* branch-free Lomuto: the test is a coin flip */
        lm__cand x = c[i];
        bool b = lm__before(x, piv);
        c[i] = c[store];
        c[store] = x;
        store += b;
    }
    lm__swap(&c[store], &c[last]);
    return store;
}

/* Tokens with p < (1 - top_p) / n together hold less than 1 - top_p, so the others form
 * a best-first prefix with mass > top_p, which contains the nucleus: drop the rest in one
 * cheap pass (most of a real vocabulary) before the quickselect. */
static int32_t lm__top_p_prefilter(lm__cand *c, int32_t n, float p) {
    float t = (float)((1.0 - (double)p) / n * 0.999); /* margin for rounding */
    int32_t m = 0;
    for (int32_t i = 0; i < n; i++) {
        c[m] = c[i];
        m += c[i].v >= t;
    }
    return m > 0 ? m : n; /* cannot happen (the best has p >= 1/n); be safe */
}

/* Step 6: top-p. A token is kept when the mass of the tokens ranked before it is < p,
 * i.e. the smallest best-first prefix with mass >= p, and at least the best token.
 * Quickselect on mass finds that set in expected O(n) without sorting; the kept tokens
 * end in c[0..m), unordered. */
static int32_t lm__top_p(lm__cand *c, int32_t n, float p) {
    n = lm__top_p_prefilter(c, n, p);
    int32_t lo = 0, hi = n; /* c[0..lo) kept, c[hi..n) dropped, c[lo..hi) undecided */
    double need = p;        /* mass the undecided part must still supply */
    while (hi - lo > 1) {
        int32_t k = lm__partition(c, lo, hi);
        double above = 0.0;
        for (int32_t i = lo; i < k; i++) above += c[i].v;
        if (above >= need) { /* the pivot and all below it are dropped */
            hi = k;
            continue;
        }
        need -= above + c[k].v; /* all above and the pivot are kept */
        lo = k + 1;
        if (need <= 0.0) return lo;
    }
    if (hi - lo == 1 && need > 0.0) lo++;
    /* p <= 0 keeps nothing above: then c[0] is the best token (the range shrank onto it) */
    return lo > 0 ? lo : 1;
}

/* Step 7: keep p >= min_p * p_max, compacting in place (order kept). */
static int32_t lm__min_p(lm__cand *c, int32_t n, float min_p) {
    float pmax = c[0].v;
    for (int32_t i = 1; i < n; i++) pmax = c[i].v > pmax ? c[i].v : pmax;
    float cut = min_p * pmax;
    int32_t m = 0;
    for (int32_t i = 0; i < n; i++)
        if (c[i].v >= cut) c[m++] = c[i];
    return m; /* 0 only when min_p > 1 */
}

/* Step 8: draw from c[0..n) in proportion to v (need not sum to 1). */
static lm_token lm__draw(lm_sampler *s, const lm__cand *c, int32_t n) {
    double total = 0.0;
    for (int32_t i = 0; i < n; i++) total += c[i].v;
    double u = lm__rng_uniform(s->rng) * total, cum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        cum += c[i].v;
        if (u < cum) return c[i].id;
    }
    /* rounding left u at the very top: the last token with mass */
    for (int32_t i = n - 1; i > 0; i--)
        if (c[i].v > 0.0f) return c[i].id;
    return c[0].id;
}

lm_token lm_sampler_sample(lm_sampler *s, const float *logits) {
    if (!s || !logits) {
        lm__error(LM_ERR_INVALID_ARG, "sampler: %s is NULL", s ? "logits" : "sampler");
        return LM_TOKEN_NULL;
    }
    const lm_sampler_params *p = &s->p;
    int32_t best = lm__prepare(s, logits);
    /* greedy, or nothing finite to sample from: the first maximum */
    if (p->temperature <= 0.0f || s->work[best] == -INFINITY) return best;

    int32_t n = p->top_k > 0 && p->top_k < s->n_vocab ? lm__top_k(s, p->top_k) : lm__all(s);
    lm__softmax(s->cand, n, s->work[best], p->temperature);
    if (p->top_p < 1.0f) n = lm__top_p(s->cand, n, p->top_p);
    if (p->min_p > 0.0f) {
        int32_t m = lm__min_p(s->cand, n, p->min_p);
        if (m == 0) return best; /* min_p > 1 leaves nothing: keep the best one */
        n = m;
    }
    return lm__draw(s, s->cand, n);
}
