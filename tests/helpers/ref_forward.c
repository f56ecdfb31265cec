/* Reference forward pass in double precision; see ref_forward.h. Written for clarity, not
 * speed: every position of every layer is computed at once, attention as a full [n][n]
 * score matrix with the causal (and sliding-window) mask. */
#include "ref_forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* What a family does, from its public description (not from the runtime's table). */
typedef struct ref_family {
    const char *arch;
    bool neox;         /* rotate (x[i], x[i + d/2]) (GPT-NeoX / HF rotate_half) */
    bool gelu;         /* GeGLU with the tanh GELU, else SwiGLU */
    bool embd_scale;   /* embeddings * sqrt(n_embd) (Gemma) */
    int swa_pattern;   /* layer il is local iff il % p != p - 1 (Gemma 2: 2, Gemma 3: 6) */
    int swa_default;   /* window when the file gives none (Gemma 2: 4096) */
    double local_base; /* local layers' RoPE theta, unscaled (Gemma 3: 10000); 0: global */
    double attn_cap;   /* default soft-caps (Gemma 2: 50 and 30) */
    double final_cap;
} ref_family;

static const ref_family ref_families[] = {
    {"llama", false, false, false, 0, 0, 0, 0, 0},
    {"mistral", false, false, false, 0, 0, 0, 0, 0},
    {"qwen2", true, false, false, 0, 0, 0, 0, 0},
    {"qwen3", true, false, false, 0, 0, 0, 0, 0},
    {"phi3", true, false, false, 0, 0, 0, 0, 0},
    {"gemma", true, true, true, 0, 0, 0, 0, 0},
    {"gemma2", true, true, true, 2, 4096, 0, 50, 30},
    {"gemma3", true, true, true, 6, 0, 10000, 0, 0},
};

static const ref_family *ref_family_of(const char *arch) {
    for (size_t i = 0; i < sizeof ref_families / sizeof ref_families[0]; i++)
        if (arch && strcmp(ref_families[i].arch, arch) == 0) return &ref_families[i];
    return NULL;
}

/* Y[t][r] = sum_c W[r][c] X[t][c] (+ b[r]) for row-major W [rows][cols]. */
static void ref_linear(const float *W, const float *b, const double *X, int n, int rows, int cols,
                       double *Y) {
    for (int t = 0; t < n; t++)
        for (int r = 0; r < rows; r++) {
            double s = b ? (double)b[r] : 0.0;
            for (int c = 0; c < cols; c++)
                s += (double)W[(size_t)r * cols + c] * X[(size_t)t * cols + c];
            Y[(size_t)t * rows + r] = s;
        }
}

/* y = x / sqrt(mean(x^2) + eps) * w over each of the count vectors of length d. */
static void ref_rmsnorm(double *y, const double *x, const float *w, int count, int d, double eps) {
    for (int i = 0; i < count; i++) {
        const double *xi = x + (size_t)i * d;
        double ss = 0;
        for (int j = 0; j < d; j++) ss += xi[j] * xi[j];
        double inv = 1.0 / sqrt(ss / d + eps);
        for (int j = 0; j < d; j++) y[(size_t)i * d + j] = xi[j] * inv * (double)w[j];
    }
}

static double ref_gelu_tanh(double x) {
    const double k = 0.79788456080286535588; /* sqrt(2 / pi) */
    return 0.5 * x * (1.0 + tanh(k * (x + 0.044715 * x * x * x)));
}

static double ref_silu(double x) {
    return x / (1.0 + exp(-x));
}

/* RoPE of one head vector at position p: its first d dimensions form d/2 pairs, pair j
 * turning by p * scale * theta^(-2j/d) / factor[j], both outputs then times mscale
 * (LongRoPE); dimensions past d are left as they are. */
typedef struct ref_rope {
    bool neox;
    double theta, scale, mscale;
    const float *factors;
} ref_rope;

static void ref_rotate(double *v, int d, int p, const ref_rope *r) {
    for (int j = 0; j < d / 2; j++) {
        double ang = p * r->scale * pow(r->theta, -2.0 * j / d);
        if (r->factors) ang /= (double)r->factors[j];
        int a = r->neox ? j : 2 * j, b = r->neox ? j + d / 2 : 2 * j + 1;
        double x0 = v[a], x1 = v[b];
        v[a] = (x0 * cos(ang) - x1 * sin(ang)) * r->mscale;
        v[b] = (x0 * sin(ang) + x1 * cos(ang)) * r->mscale;
    }
}

/* Scratch of one run: [n][...] per quantity. */
typedef struct ref_bufs {
    double *x, *h, *q, *k, *v, *att, *o, *g, *u, *s;
} ref_bufs;

static void ref_bufs_free(ref_bufs *b) {
    double **p = (double **)b;
    for (size_t i = 0; i < sizeof *b / sizeof(double *); i++) free(p[i]);
}

static bool ref_bufs_alloc(ref_bufs *b, const lm_tiny_model *m, int n) {
    const lm_tiny_spec *s = &m->spec;
    size_t E = (size_t)s->n_embd, nq = (size_t)s->n_head * m->head_dim,
           nkv = (size_t)s->n_head_kv * m->head_dim, F = (size_t)s->n_ff;
    size_t N = (size_t)n;
    b->x = calloc(N * E, sizeof(double));
    b->h = calloc(N * E, sizeof(double));
    b->q = calloc(N * nq, sizeof(double));
    b->k = calloc(N * nkv, sizeof(double));
    b->v = calloc(N * nkv, sizeof(double));
    b->att = calloc(N * nq, sizeof(double));
    b->o = calloc(N * E, sizeof(double));
    b->g = calloc(N * F, sizeof(double));
    b->u = calloc(N * F, sizeof(double));
    b->s = calloc(N * N, sizeof(double));
    double **p = (double **)b;
    for (size_t i = 0; i < sizeof *b / sizeof(double *); i++)
        if (!p[i]) return false;
    return true;
}

/* Softmax attention of head hh over the full [n][n] score matrix, masked causally and,
 * when window > 0, to the last `window` positions (key j visible from i iff i - j < window). */
static void ref_attend_head(const lm_tiny_model *m, ref_bufs *b, int n, int hh, int window,
                            double cap) {
    const lm_tiny_spec *s = &m->spec;
    int hd = m->head_dim, nq = s->n_head * hd, nkv = s->n_head_kv * hd;
    int kh = hh / (s->n_head / s->n_head_kv); /* consecutive query heads share a KV head */
    double scale = 1.0 / sqrt((double)hd);
    for (int i = 0; i < n; i++) {
        double *row = b->s + (size_t)i * n, mx = -INFINITY, sum = 0;
        for (int j = 0; j < n; j++) {
            bool visible = j <= i && (window == 0 || i - j < window);
            if (!visible) {
                row[j] = -INFINITY;
                continue;
            }
            double d = 0;
            for (int c = 0; c < hd; c++)
                d += b->q[(size_t)i * nq + hh * hd + c] * b->k[(size_t)j * nkv + kh * hd + c];
            d *= scale;
            if (cap > 0) d = cap * tanh(d / cap);
            row[j] = d;
            if (d > mx) mx = d;
        }
        for (int j = 0; j < n; j++) sum += row[j] = row[j] == -INFINITY ? 0 : exp(row[j] - mx);
        for (int c = 0; c < hd; c++) {
            double a = 0;
            for (int j = 0; j < n; j++) a += row[j] / sum * b->v[(size_t)j * nkv + kh * hd + c];
            b->att[(size_t)i * nq + hh * hd + c] = a;
        }
    }
}

static void ref_attention(const lm_tiny_model *m, const ref_family *f, int32_t n_ctx, int il,
                          ref_bufs *b, int n) {
    const lm_tiny_spec *s = &m->spec;
    const lm_tiny_layer *L = &m->layers[il];
    int E = s->n_embd, hd = m->head_dim, nq = s->n_head * hd, nkv = s->n_head_kv * hd;
    ref_rmsnorm(b->h, b->x, L->attn_norm, n, E, s->rms_eps);
    ref_linear(L->wq, L->bq, b->h, n, nq, E, b->q);
    ref_linear(L->wk, L->bk, b->h, n, nkv, E, b->k);
    ref_linear(L->wv, L->bv, b->h, n, nkv, E, b->v);
    if (L->q_norm) { /* per-head RMS norm of q and k */
        ref_rmsnorm(b->q, b->q, L->q_norm, n * s->n_head, hd, s->rms_eps);
        ref_rmsnorm(b->k, b->k, L->k_norm, n * s->n_head_kv, hd, s->rms_eps);
    }
    /* local layers: Gemma 3 gives them their own theta without scaling */
    int window = s->n_swa ? s->n_swa : f->swa_default;
    bool local = f->swa_pattern > 0 && il % f->swa_pattern != f->swa_pattern - 1;
    ref_rope r = {f->neox, s->rope_base, s->rope_scale > 0 ? 1.0 / s->rope_scale : 1.0,
                  m->rope_attn_factor, m->rope_freqs};
    if (m->rope_short) r.factors = n_ctx > s->n_ctx_orig ? m->rope_long : m->rope_short;
    if (local && f->local_base > 0) r.theta = f->local_base, r.scale = 1.0;
    for (int p = 0; p < n; p++) {
        for (int hh = 0; hh < s->n_head; hh++)
            ref_rotate(b->q + (size_t)p * nq + hh * hd, m->n_rot, p, &r);
        for (int hh = 0; hh < s->n_head_kv; hh++)
            ref_rotate(b->k + (size_t)p * nkv + hh * hd, m->n_rot, p, &r);
    }
    double cap = s->attn_softcap > 0 ? s->attn_softcap : f->attn_cap;
    for (int hh = 0; hh < s->n_head; hh++) ref_attend_head(m, b, n, hh, local ? window : 0, cap);
    ref_linear(L->wo, NULL, b->att, n, E, nq, b->o);
    if (L->attn_post_norm) ref_rmsnorm(b->o, b->o, L->attn_post_norm, n, E, s->rms_eps);
    for (size_t i = 0; i < (size_t)n * E; i++) b->x[i] += b->o[i];
}

static void ref_ffn(const lm_tiny_model *m, const ref_family *f, int il, ref_bufs *b, int n) {
    const lm_tiny_spec *s = &m->spec;
    const lm_tiny_layer *L = &m->layers[il];
    int E = s->n_embd, F = s->n_ff;
    ref_rmsnorm(b->h, b->x, L->ffn_norm, n, E, s->rms_eps);
    ref_linear(L->w_gate, NULL, b->h, n, F, E, b->g);
    ref_linear(L->w_up, NULL, b->h, n, F, E, b->u);
    for (size_t i = 0; i < (size_t)n * F; i++)
        b->g[i] = (f->gelu ? ref_gelu_tanh(b->g[i]) : ref_silu(b->g[i])) * b->u[i];
    ref_linear(L->w_down, NULL, b->g, n, E, F, b->o);
    if (L->ffn_post_norm) ref_rmsnorm(b->o, b->o, L->ffn_post_norm, n, E, s->rms_eps);
    for (size_t i = 0; i < (size_t)n * E; i++) b->x[i] += b->o[i];
}

bool lm_ref_forward(const lm_tiny_model *m, int32_t n_ctx, const int32_t *toks, int n,
                    double *out) {
    const ref_family *f = ref_family_of(m->spec.arch);
    if (!f || n <= 0) return false;
    const lm_tiny_spec *s = &m->spec;
    int E = s->n_embd, V = m->n_vocab;
    ref_bufs b;
    memset(&b, 0, sizeof b);
    if (!ref_bufs_alloc(&b, m, n)) {
        ref_bufs_free(&b);
        return false;
    }
    double es = f->embd_scale ? sqrt((double)E) : 1.0;
    for (int p = 0; p < n; p++)
        for (int i = 0; i < E; i++)
            b.x[(size_t)p * E + i] = es * (double)m->tok_embd[(size_t)toks[p] * E + i];
    for (int il = 0; il < s->n_layer; il++) {
        ref_attention(m, f, n_ctx, il, &b, n);
        ref_ffn(m, f, il, &b, n);
    }
    ref_rmsnorm(b.h, b.x, m->out_norm, n, E, s->rms_eps);
    ref_linear(m->output, NULL, b.h, n, V, E, out);
    double cap = s->final_softcap > 0 ? s->final_softcap : f->final_cap;
    if (cap > 0)
        for (size_t i = 0; i < (size_t)n * V; i++) out[i] = cap * tanh(out[i] / cap);
    ref_bufs_free(&b);
    return true;
}
