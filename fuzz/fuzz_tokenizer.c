/* Fuzz the tokenizer with the real model's vocabulary (LUMEN_MODEL, else the default model
 * under models/ relative to the working directory): arbitrary bytes -> tokenize ->
 * detokenize must give the input back, less the bytes the vocab has no token for (none
 * dropped for most vocabs; see tokenizer.c), with parse_special off and on. */
#include "gguf.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lm_vocab *vocab;
static bool encodable[256];

static void die(const char *what) {
    fprintf(stderr, "fuzz_tokenizer: %s: %s\n", what, lm_last_error());
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *path = getenv("LUMEN_MODEL");
    if (!path || !*path) path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    lm_gguf *g = NULL;
    if (lm_gguf_open(path, &g) != LM_OK) die(path);
    if (lm_vocab_load(g, &vocab) != LM_OK) die("vocab");
    lm_gguf_close(g);
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        lm_token t[4];
        encodable[b] = lm_vocab_tokenize(vocab, &c, 1, t, 4, false, false) == 1;
    }
    return 0;
}

static void check(const char *s, int32_t len, bool special) {
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
    char *want = malloc((size_t)len + 1);
    int32_t w = 0;
    for (int32_t i = 0; i < len; i++)
        if (encodable[(unsigned char)s[i]]) want[w++] = s[i];
    if (need != w || memcmp(back, want, (size_t)w) != 0) abort();
    free(want);
    free(back);
    free(t);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size > (1 << 16)) return 0;
    check((const char *)data, (int32_t)size, false);
    check((const char *)data, (int32_t)size, true);
    return 0;
}
