/* Fuzz the tokenizer: arbitrary bytes -> tokenize -> detokenize must give the input back,
 * with parse_special off and on, for
 *   - the real byte-level BPE vocab (LUMEN_MODEL, else the default model under models/
 *     relative to the working directory), less the bytes it has no token for (see
 *     tokenizer.c);
 *   - the Gemma 3 SentencePiece vocab when its file is there (LUMEN_GEMMA_MODEL, else
 *     models/gemma-3-270m-q4_k_m.gguf), with U+2581 read back as a space;
 *   - two small SentencePiece vocabs built here (byte fallback, merges by score, a
 *     user-defined token, control tokens): one without and one with add_space_prefix. The
 *     latter round trips with parse_special off (the prefix goes before the text only);
 *     with it on, a prefix also follows each control token, so only validity is checked. */
#include "gguf.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct fuzz_vocab {
    lm_vocab *v;
    bool encodable[256]; /* bytes with a token (BPE may lack some) */
    bool spm;            /* U+2581 comes back as a space */
    bool special_round_trip;
} fuzz_vocab;

static fuzz_vocab vocabs[4];
static int n_vocabs;

static void die(const char *what) {
    fprintf(stderr, "fuzz_tokenizer: %s: %s\n", what, lm_last_error());
    abort();
}

static void add_vocab(lm_vocab *v, bool spm, bool special_round_trip) {
    fuzz_vocab *f = &vocabs[n_vocabs++];
    f->v = v, f->spm = spm, f->special_round_trip = special_round_trip;
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        lm_token t[4];
        f->encodable[b] = lm_vocab_tokenize(v, &c, 1, t, 4, false, false) >= 1;
    }
}

static lm_vocab *load_file(const char *path) {
    lm_gguf *g = NULL;
    lm_vocab *v = NULL;
    if (lm_gguf_open(path, &g) != LM_OK) die(path);
    if (lm_vocab_load(g, &v) != LM_OK) die(path);
    lm_gguf_close(g);
    return v;
}

/* <unk> <s> </s>, 256 byte tokens, pieces over "ab▁" with scores, "<u>" user-defined. */
static lm_vocab *small_spm(bool prefix) {
    static const char *const pieces[] = {"\xe2\x96\x81",
                                         "a",
                                         "b",
                                         "ab",
                                         "ba",
                                         "aa",
                                         "\xe2\x96\x81"
                                         "a",
                                         "\xe2\x96\x81"
                                         "ab",
                                         "abab",
                                         "\xc3\xa9",
                                         "<u>"};
    enum { N_PIECES = sizeof pieces / sizeof pieces[0], N = 3 + 256 + N_PIECES };
    static char bytes[256][8];
    const char *tokens[N] = {"<unk>", "<s>", "</s>"};
    int32_t types[N] = {2, 3, 3};
    float scores[N] = {0};
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        tokens[3 + b] = bytes[b], types[3 + b] = 6;
    }
    for (int i = 0; i < N_PIECES; i++) {
        tokens[259 + i] = pieces[i];
        types[259 + i] = i == N_PIECES - 1 && !prefix ? 4 : 1;
        scores[259 + i] = -(float)(i % 4); /* ties on purpose */
    }
    lm_gguf_writer *w = NULL;
    void *data = NULL;
    size_t size = 0;
    lm_gguf *g = NULL;
    lm_vocab *v = NULL;
    if (lm_gguf_writer_create(3, &w) != LM_OK) die("writer");
    lm_gguf_writer_add_str(w, "tokenizer.ggml.model", "llama");
    lm_gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", tokens, N);
    lm_gguf_writer_add_i32_arr(w, "tokenizer.ggml.token_type", types, N);
    lm_gguf_writer_add_f32_arr(w, "tokenizer.ggml.scores", scores, N);
    lm_gguf_writer_add_bool(w, "tokenizer.ggml.add_space_prefix", prefix);
    if (lm_gguf_writer_write_memory(w, &data, &size) != LM_OK) die("write");
    lm_gguf_writer_free(w);
    if (lm_gguf_open_memory(data, size, NULL, &g) != LM_OK) die("small spm");
    if (lm_vocab_load(g, &v) != LM_OK) die("small spm");
    lm_gguf_close(g);
    free(data);
    return v;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *path = getenv("LUMEN_MODEL");
    if (!path || !*path) path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    add_vocab(load_file(path), false, true);
    const char *gemma = getenv("LUMEN_GEMMA_MODEL");
    if (!gemma || !*gemma) gemma = "models/gemma-3-270m-q4_k_m.gguf";
    if (access(gemma, R_OK) == 0) add_vocab(load_file(gemma), true, true);
    add_vocab(small_spm(false), true, true);
    add_vocab(small_spm(true), true, false);
    return 0;
}

/* What detokenize(tokenize(s)) must give. */
static int32_t expected(const fuzz_vocab *f, const char *s, int32_t len, char *want) {
    int32_t w = 0;
    for (int32_t i = 0; i < len; i++) {
        if (f->spm && i + 3 <= len && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
            want[w++] = ' ', i += 2;
        } else if (f->encodable[(unsigned char)s[i]]) {
            want[w++] = s[i];
        }
    }
    return w;
}

static void check(const fuzz_vocab *f, const char *s, int32_t len, bool special) {
    const lm_vocab *vocab = f->v;
    int32_t n = -lm_vocab_tokenize(vocab, s, len, NULL, 0, false, special);
    if (n < 0) abort(); /* an empty result is 0, never positive with n_max 0 */
    lm_token *t = malloc(sizeof *t * (size_t)(n + 1));
    if (lm_vocab_tokenize(vocab, s, len, t, n, false, special) != n) abort();
    if (n > 0 && lm_vocab_tokenize(vocab, s, len, t, n - 1, false, special) != -n) abort();
    for (int32_t i = 0; i < n; i++)
        if (t[i] < 0 || t[i] >= lm_vocab_n_tokens(vocab)) abort();
    int32_t need = -lm_vocab_detokenize(vocab, t, n, NULL, 0, special);
    char *back = malloc((size_t)need + 1);
    if (lm_vocab_detokenize(vocab, t, n, back, need, special) != need) abort();
    if (!special || f->special_round_trip) {
        char *want = malloc((size_t)len + 1);
        int32_t w = expected(f, s, len, want);
        if (need != w || memcmp(back, want, (size_t)w) != 0) abort();
        free(want);
    }
    free(back);
    free(t);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size > (1 << 16)) return 0;
    for (int i = 0; i < n_vocabs; i++) {
        check(&vocabs[i], (const char *)data, (int32_t)size, false);
        check(&vocabs[i], (const char *)data, (int32_t)size, true);
    }
    return 0;
}
