/* Tokenizer: exact ids against Hugging Face's tokenizers (fixtures for SmolLM2's byte-level
 * BPE and Gemma 3's SentencePiece vocab), round trips on random text and bytes, buffer
 * contracts, special tokens, EOG, SPM merging on a tiny vocab against a naive reference,
 * and load errors. */
#include "helpers/test_util.h"
#include "gguf.h"
#include "tokenizer.h"
#include "unicode.h"

#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers -------------------------------------------------------------------------- */

/* Gemma 3 270M, fetched by scripts/setup.sh like the default model. */
static const char *gemma_path(void) {
    const char *env = getenv("LUMEN_GEMMA_MODEL");
    return env && *env ? env : LM_SOURCE_DIR "/models/gemma-3-270m-q4_k_m.gguf";
}

/* A model's vocab; the gguf is closed at once, so this also checks that the vocab owns
 * copies of everything it needs. A missing model fails the test, saying how to get it. */
static lm_vocab *load_vocab_at(const char *path) {
    if (access(path, R_OK) != 0)
        cr_assert_fail("model not found at %s (run scripts/setup.sh)", path);
    lm_gguf *g = NULL;
    lm_status s = lm_gguf_open(path, &g);
    cr_assert_eq(s, LM_OK, "open %s: %s", path, lm_last_error());
    lm_vocab *v = NULL;
    s = lm_vocab_load(g, &v);
    cr_assert_eq(s, LM_OK, "vocab: %s", lm_last_error());
    lm_gguf_close(g);
    return v;
}

static lm_vocab *load_model_vocab(void) {
    return load_vocab_at(lm_test_model_path());
}

/* Tokenize into a malloc'd array (count in *n). */
static lm_token *tokenize(const lm_vocab *v, const char *s, size_t len, bool special, int32_t *n) {
    int32_t need = lm_vocab_tokenize(v, s, (int32_t)len, NULL, 0, false, special);
    cr_assert(need <= 0, "tokenize with n_max 0 returned %d", need);
    lm_token *t = malloc(sizeof *t * (size_t)(-need + 1));
    *n = lm_vocab_tokenize(v, s, (int32_t)len, t, -need, false, special);
    cr_assert_eq(*n, -need);
    return t;
}

/* Detokenize into a malloc'd buffer (length in *len). */
static char *detokenize(const lm_vocab *v, const lm_token *t, int32_t n, bool special,
                        int32_t *len) {
    int32_t need = lm_vocab_detokenize(v, t, n, NULL, 0, special);
    cr_assert(need <= 0);
    char *buf = malloc((size_t)(-need) + 1);
    *len = lm_vocab_detokenize(v, t, n, buf, -need, special);
    cr_assert_eq(*len, -need);
    return buf;
}

/* Bytes the vocab has a token for; the others are dropped by tokenize (21 for SmolLM2). */
static void encodable_bytes(const lm_vocab *v, bool enc[256]) {
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        lm_token t[4];
        enc[b] = lm_vocab_tokenize(v, &c, 1, t, 4, false, false) == 1;
    }
}

/* s without the bytes the vocab cannot encode: what detokenize(tokenize(s)) must give. */
static size_t expected_round_trip(const lm_vocab *v, const char *s, size_t len, char *out) {
    bool enc[256];
    encodable_bytes(v, enc);
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (enc[(unsigned char)s[i]]) out[n++] = s[i];
    return n;
}

static void assert_round_trip(const lm_vocab *v, const char *s, size_t len, uint64_t seed) {
    int32_t n, out_len;
    lm_token *t = tokenize(v, s, len, false, &n);
    char *back = detokenize(v, t, n, false, &out_len);
    char *want = malloc(len + 1);
    size_t want_len = expected_round_trip(v, s, len, want);
    cr_assert(out_len == (int32_t)want_len && memcmp(back, want, want_len) == 0,
              "round trip failed (len %zu -> %d, expected %zu, seed %llu)", len, out_len, want_len,
              (unsigned long long)seed);
    free(want);
    free(t);
    free(back);
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* ---- reference fixture ---------------------------------------------------------------- */

typedef struct fixture_line {
    char *text;
    size_t len;
    lm_token ids[4096];
    int32_t n_ids;
    bool special;
    char *decoded; /* HF's decode of ids, when the fixture has it (else NULL) */
    size_t decoded_len;
} fixture_line;

/* Hex digits up to a tab or the line's end into a malloc'd buffer. */
static char *parse_hex(const char *p, size_t *len) {
    size_t n = strcspn(p, "\t\n");
    *len = n / 2;
    char *out = malloc(*len + 1);
    for (size_t i = 0; i < *len; i++) out[i] = (char)(hexval(p[2 * i]) * 16 + hexval(p[2 * i + 1]));
    return out;
}

/* "<text hex>\t<ids>[\t<decoded hex>]" */
static bool parse_fixture_line(char *line, bool special, fixture_line *f) {
    char *tab = strchr(line, '\t');
    if (!tab) return false;
    f->text = parse_hex(line, &f->len);
    f->n_ids = 0;
    char *p = tab + 1;
    while (*p && *p != '\n' && *p != '\t') {
        char *end;
        long id = strtol(p, &end, 10);
        if (end == p) break;
        cr_assert_lt(f->n_ids, 4096);
        f->ids[f->n_ids++] = (lm_token)id;
        p = end;
    }
    f->decoded = *p == '\t' ? parse_hex(p + 1, &f->decoded_len) : NULL;
    f->special = special;
    return true;
}

static void check_fixture_line(const lm_vocab *v, const fixture_line *f, int line_no) {
    /* Fixture prompts without special text give the same ids either way. */
    for (int mode = f->special; mode <= 1; mode++) {
        int32_t n;
        lm_token *t = tokenize(v, f->text, f->len, mode == 1, &n);
        cr_assert_eq(n, f->n_ids, "line %d: %d tokens, expected %d", line_no, n, f->n_ids);
        for (int32_t i = 0; i < n; i++)
            cr_assert_eq(t[i], f->ids[i], "line %d token %d: %d, expected %d", line_no, i, t[i],
                         f->ids[i]);
        int32_t len;
        char *back = detokenize(v, t, n, true, &len);
        char *want = malloc(f->len + 1);
        size_t want_len =
            f->decoded ? f->decoded_len : expected_round_trip(v, f->text, f->len, want);
        if (f->decoded) memcpy(want, f->decoded, want_len);
        cr_assert(len == (int32_t)want_len && memcmp(back, want, want_len) == 0,
                  "line %d: detokenize differs from HF's decode", line_no);
        free(want);
        free(back);
        free(t);
    }
}

static void check_fixture(lm_vocab *v, const char *name, int min_prompts) {
    FILE *fp = fopen(lm_test_fixture(name), "r");
    cr_assert_not_null(fp, "missing fixture: run scripts/ref/make_tokenizer_fixtures.py");
    static char line[1 << 16];
    static fixture_line f;
    int line_no = 0, checked = 0;
    bool special = false;
    while (fgets(line, sizeof line, fp)) {
        line_no++;
        if (line[0] == '#') {
            special = strncmp(line, "# special", 9) == 0;
            continue;
        }
        cr_assert(parse_fixture_line(line, special, &f), "line %d malformed", line_no);
        check_fixture_line(v, &f, line_no);
        free(f.text);
        free(f.decoded);
        special = false;
        checked++;
    }
    fclose(fp);
    cr_assert_geq(checked, min_prompts, "only %d fixture prompts in %s", checked, name);
}

Test(tokenizer, matches_hf_fixture) {
    lm_vocab *v = load_model_vocab();
    check_fixture(v, "tokenizer_smollm2.txt", 16);
    lm_vocab_free(v);
}

/* Gemma 3 (SentencePiece): the same prompts plus some reaching its added tokens; ids equal
 * HF's, detokenize equals HF's decode (the prompt itself, for all of them). */
Test(tokenizer, gemma3_matches_hf_fixture) {
    lm_vocab *v = load_vocab_at(gemma_path());
    check_fixture(v, "tokenizer_gemma3.txt", 25);
    lm_vocab_free(v);
}

/* ---- round trips ---------------------------------------------------------------------- */

/* A random code point, biased towards what text has: ASCII, spaces, digits, accents,
 * CJK, emoji with joiners and modifiers, combining marks, anything else. */
static uint32_t random_cp(lm_test_rng *r) {
    static const uint32_t picks[] = {' ', '\n', '\t', '\'', 0x200D, 0xFE0F, 0x1F3FD, 0x0301};
    uint64_t k = lm_test_rng_u64(r) % 10, x = lm_test_rng_u64(r);
    switch (k) {
    case 0:
    case 1:
    case 2:
        return 0x20 + (uint32_t)(x % 95);
    case 3:
        return picks[x % (sizeof picks / sizeof picks[0])];
    case 4:
        return '0' + (uint32_t)(x % 10);
    case 5:
        return 0xA0 + (uint32_t)(x % 0x250);
    case 6:
        return 0x4E00 + (uint32_t)(x % 0x5000);
    case 7:
        return 0x1F300 + (uint32_t)(x % 0x300);
    case 8:
        return (uint32_t)(x % 0x80); /* controls and NUL too */
    default: {
        uint32_t cp = (uint32_t)(x % 0x110000);
        return cp >= 0xD800 && cp <= 0xDFFF ? 0xFFFD : cp;
    }
    }
}

Test(tokenizer, round_trip_random_utf8) {
    lm_vocab *v = load_model_vocab();
    uint64_t seed = lm_test_seed();
    lm_test_rng r = {seed};
    char s[1024];
    for (int iter = 0; iter < 400; iter++) {
        size_t len = 0, n_cp = lm_test_rng_u64(&r) % 200;
        for (size_t i = 0; i < n_cp; i++) len += (size_t)lm_utf8_encode(random_cp(&r), s + len);
        cr_assert(lm_utf8_valid(s, len));
        assert_round_trip(v, s, len, seed);
    }
    lm_vocab_free(v);
}

/* Invalid UTF-8 is tokenized byte by byte, so even arbitrary bytes round trip. */
Test(tokenizer, random_bytes_deterministic_and_round_trip) {
    lm_vocab *v = load_model_vocab();
    uint64_t seed = lm_test_seed();
    lm_test_rng r = {seed};
    char s[512];
    for (int iter = 0; iter < 300; iter++) {
        size_t len = lm_test_rng_u64(&r) % sizeof s;
        for (size_t i = 0; i < len; i++) s[i] = (char)lm_test_rng_u64(&r);
        int32_t n1, n2;
        lm_token *a = tokenize(v, s, len, true, &n1);
        lm_token *b = tokenize(v, s, len, true, &n2);
        cr_assert(n1 == n2 && memcmp(a, b, sizeof *a * (size_t)n1) == 0, "seed %llu",
                  (unsigned long long)seed);
        for (int32_t i = 0; i < n1; i++) cr_assert(a[i] >= 0 && a[i] < lm_vocab_n_tokens(v));
        free(a);
        free(b);
        assert_round_trip(v, s, len, seed);
    }
    lm_vocab_free(v);
}

Test(tokenizer, invalid_utf8_and_nul_bytes) {
    lm_vocab *v = load_model_vocab();
    static const char *cases[] = {"\xff",
                                  "a\xc3",
                                  "\xc3\x28",
                                  "\xed\xa0\x80 surrogate",
                                  "\xf4\x90\x80\x80",
                                  "\xc0\xaf overlong",
                                  "ok \xe2\x82 cut"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_round_trip(v, cases[i], strlen(cases[i]), 0);
    const char nul[] = "a\0b\0\0 c\0";
    assert_round_trip(v, nul, sizeof nul - 1, 0);
    int32_t n;
    lm_token *t = tokenize(v, nul, sizeof nul - 1, false, &n);
    cr_assert_gt(n, 3);
    free(t);
    lm_vocab_free(v);
}

Test(tokenizer, bytes_without_tokens_are_dropped) {
    lm_vocab *v = load_model_vocab();
    bool enc[256];
    encodable_bytes(v, enc);
    int missing = 0;
    for (int b = 0; b < 256; b++) missing += !enc[b];
    cr_assert_eq(missing, 21, "SmolLM2 lacks 21 byte tokens, found %d missing", missing);
    cr_assert_not(enc[0x04]);
    cr_assert_not(enc[0xff]);
    cr_assert(enc[0x00] && enc['\n'] && enc[0x80]);
    lm_token t[8];
    cr_assert_eq(lm_vocab_tokenize(v, "\x04\xff", 2, t, 8, false, false), 0);
    lm_vocab_free(v);
}

Test(tokenizer, long_inputs_are_fast_enough) {
    lm_vocab *v = load_model_vocab();
    size_t len = 300000;
    char *s = malloc(len);
    memset(s, 'a', len); /* one huge word: BPE must not be quadratic */
    assert_round_trip(v, s, len, 0);
    memset(s, ' ', len);
    assert_round_trip(v, s, len, 0);
    for (size_t i = 0; i < len; i++) s[i] = "ab1 .\n"[i % 6];
    assert_round_trip(v, s, len, 0);
    free(s);
    lm_vocab_free(v);
}

/* ---- contracts ------------------------------------------------------------------------ */

Test(tokenizer, needed_size_contracts) {
    lm_vocab *v = load_model_vocab();
    const char *text = "Hello world, this is a test.";
    lm_token t[64];
    int32_t n = lm_vocab_tokenize(v, text, (int32_t)strlen(text), t, 64, false, false);
    cr_assert_gt(n, 2);
    cr_assert_eq(lm_vocab_tokenize(v, text, (int32_t)strlen(text), NULL, 0, false, false), -n);
    cr_assert_eq(lm_vocab_tokenize(v, text, (int32_t)strlen(text), t, n - 1, false, false), -n);
    cr_assert_eq(lm_vocab_tokenize(v, text, 0, t, 64, false, false), 0);

    char buf[64];
    int32_t need = lm_vocab_token_to_piece(v, t[1], buf, 0, false);
    cr_assert_eq(need, -6, "' world' is one token of 6 bytes, got %d", need);
    cr_assert_eq(lm_vocab_token_to_piece(v, t[1], buf, 5, false), -6);
    cr_assert_eq(lm_vocab_token_to_piece(v, t[1], buf, 6, false), 6);
    cr_assert(memcmp(buf, " world", 6) == 0);

    int32_t len = (int32_t)strlen(text);
    cr_assert_eq(lm_vocab_detokenize(v, t, n, buf, len - 1, false), -len);
    cr_assert_eq(lm_vocab_detokenize(v, t, n, buf, len, false), len);
    cr_assert(memcmp(buf, text, (size_t)len) == 0);
    cr_assert_eq(lm_vocab_detokenize(v, t, 0, buf, 0, false), 0);
    cr_assert_eq(lm_vocab_token_to_piece(v, -1, buf, 64, true), 0);
    cr_assert_eq(lm_vocab_token_to_piece(v, lm_vocab_n_tokens(v), buf, 64, true), 0);
    lm_vocab_free(v);
}

Test(tokenizer, special_tokens_both_ways) {
    lm_vocab *v = load_model_vocab();
    const char *text = "<|im_start|>user\nhi<|im_end|>";
    int32_t n;
    lm_token *t = tokenize(v, text, strlen(text), true, &n);
    cr_assert_eq(t[0], 1);
    cr_assert_eq(t[n - 1], 2);
    char buf[64];
    cr_assert_eq(lm_vocab_token_to_piece(v, 1, buf, sizeof buf, false), 0);
    cr_assert_eq(lm_vocab_token_to_piece(v, 1, buf, sizeof buf, true), 12);
    cr_assert(memcmp(buf, "<|im_start|>", 12) == 0);
    int32_t len;
    char *plain = detokenize(v, t, n, false, &len);
    cr_assert(len == 7 && memcmp(plain, "user\nhi", 7) == 0);
    free(plain);
    free(t);

    t = tokenize(v, text, strlen(text), false, &n);
    cr_assert_gt(n, 4);
    for (int32_t i = 0; i < n; i++) cr_assert(t[i] > 16, "special id %d in plain text", t[i]);
    free(t);
    /* longest match first: "<|endoftext|>" is not cut into a shorter special */
    t = tokenize(v, "<|endoftext|><file_sep>", 23, true, &n);
    cr_assert(n == 2 && t[0] == 0 && t[1] == 5);
    free(t);
    lm_vocab_free(v);
}

Test(tokenizer, ids_eog_and_bos) {
    lm_vocab *v = load_model_vocab();
    cr_assert_eq(lm_vocab_n_tokens(v), 49152);
    cr_assert_eq(lm_vocab_bos(v), 1);
    cr_assert_eq(lm_vocab_eos(v), 2);
    cr_assert_not(lm_vocab_add_bos(v));
    cr_assert(lm_vocab_is_eog(v, 2));
    cr_assert(lm_vocab_is_eog(v, 0)); /* <|endoftext|> */
    cr_assert_not(lm_vocab_is_eog(v, 1));
    cr_assert_not(lm_vocab_is_eog(v, 100));
    cr_assert_not(lm_vocab_is_eog(v, -1));
    cr_assert_not(lm_vocab_is_eog(v, 1 << 20));
    lm_token t[8];
    cr_assert_eq(lm_vocab_tokenize(v, "Hi", 2, t, 8, true, false), 1); /* no BOS for SmolLM2 */
    const char *tmpl = lm_vocab_chat_template(v);
    cr_assert(tmpl && strstr(tmpl, "<|im_start|>"));
    lm_vocab_free(v);
}

typedef struct thread_arg {
    const lm_vocab *v;
    const char *text;
    lm_token out[512];
    int32_t n;
} thread_arg;

static void *tokenize_thread(void *p) {
    thread_arg *a = p;
    for (int i = 0; i < 50; i++)
        a->n = lm_vocab_tokenize(a->v, a->text, (int32_t)strlen(a->text), a->out, 512, false, true);
    return NULL;
}

Test(tokenizer, concurrent_tokenize) {
    lm_vocab *v = load_model_vocab();
    const char *text = "<|im_start|>user\nCount 1234567 naïve 😀 words   here\n<|im_end|>";
    thread_arg args[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){.v = v, .text = text};
        pthread_create(&th[i], NULL, tokenize_thread, &args[i]);
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 1; i < 4; i++) {
        cr_assert_eq(args[i].n, args[0].n);
        cr_assert(memcmp(args[i].out, args[0].out, sizeof(lm_token) * (size_t)args[0].n) == 0);
    }
    lm_vocab_free(v);
}

/* ---- small synthetic vocabularies and load errors ------------------------------------- */

typedef struct mini_opts {
    bool no_tokens, bad_merge, unknown_merge, bos_out_of_range, short_types, bad_size;
    bool no_add_bos; /* leave tokenizer.ggml.add_bos_token out: the pre row's default */
    const char *model, *pre;
} mini_opts;

/* A tiny gpt2 vocab: the bytes 'a' 'b' 'c' ' ' (as GPT-2 'Ġ'), "ab", "abc", "Ġa". */
static lm_status load_mini(const mini_opts *o, lm_vocab **out) {
    static const char *tokens[] = {
        "<s>",      "</s>", "a",   "b",        "c",
        "\xc4\xa0", "ab",   "abc", "\xc4\240a" /* octal: 'a' is not eaten */};
    const char *merges[] = {"a b", "ab c", "\xc4\xa0 a"};
    int32_t types[] = {3, 3, 1, 1, 1, 1, 1, 1, 1};
    if (o->bad_merge) merges[1] = "abc";
    if (o->unknown_merge) merges[1] = "ab zz";
    lm_gguf_writer *w = NULL;
    cr_assert_eq(lm_gguf_writer_create(3, &w), LM_OK);
    lm_gguf_writer_add_str(w, "general.architecture", "llama");
    lm_gguf_writer_add_u32(w, "llama.vocab_size", o->bad_size ? 10 : 9);
    lm_gguf_writer_add_str(w, "tokenizer.ggml.model", o->model ? o->model : "gpt2");
    lm_gguf_writer_add_str(w, "tokenizer.ggml.pre", o->pre ? o->pre : "gpt-2");
    if (!o->no_tokens) lm_gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", tokens, 9);
    lm_gguf_writer_add_i32_arr(w, "tokenizer.ggml.token_type", types, o->short_types ? 8 : 9);
    lm_gguf_writer_add_str_arr(w, "tokenizer.ggml.merges", merges, 3);
    lm_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", o->bos_out_of_range ? 9 : 0);
    lm_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 1);
    if (!o->no_add_bos) lm_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", true);
    void *data;
    size_t size;
    cr_assert_eq(lm_gguf_writer_write_memory(w, &data, &size), LM_OK);
    lm_gguf_writer_free(w);
    lm_gguf *g = NULL;
    cr_assert_eq(lm_gguf_open_memory(data, size, NULL, &g), LM_OK, "%s", lm_last_error());
    lm_status s = lm_vocab_load(g, out);
    lm_gguf_close(g);
    free(data);
    return s;
}

static void expect_load_error(const mini_opts *o, lm_status want, const char *text) {
    lm_vocab *v = (lm_vocab *)1;
    lm_status s = load_mini(o, &v);
    cr_assert_eq(s, want, "status %d (%s), expected %d", s, lm_last_error(), want);
    cr_assert_null(v);
    cr_assert(strstr(lm_last_error(), text), "message '%s' lacks '%s'", lm_last_error(), text);
}

Test(tokenizer_mini, merges_and_add_bos) {
    lm_vocab *v = NULL;
    cr_assert_eq(load_mini(&(mini_opts){0}, &v), LM_OK, "%s", lm_last_error());
    lm_token t[16];
    int32_t n = lm_vocab_tokenize(v, "abc ab abcc", 11, t, 16, true, false);
    /* words "abc" " ab" " abcc": rank 0 "a b" beats rank 2 "Ġ a", so " ab" is Ġ + ab */
    lm_token want[] = {0, 7, 5, 6, 5, 7, 4};
    cr_assert_eq(n, 7, "n = %d", n);
    for (int i = 0; i < 7; i++) cr_assert_eq(t[i], want[i], "token %d: %d", i, t[i]);
    lm_vocab_free(v);
}

/* Every pre-tokenizer row compiles and splits (the names the families use: Qwen2,
 * 2.5 and 3 write qwen2, Llama 3 llama-bpe; Phi-3 and Mistral are SPM). */
Test(tokenizer_mini, pre_tokenizers) {
    const char *pres[] = {"gpt-2", "default", "smollm", "llama3",    "llama-bpe",
                          "qwen2", "falcon3", "megrez", "stablelm2", "roberta-bpe"};
    for (size_t i = 0; i < sizeof pres / sizeof pres[0]; i++) {
        lm_vocab *v = NULL;
        cr_assert_eq(load_mini(&(mini_opts){.pre = pres[i]}, &v), LM_OK, "%s: %s", pres[i],
                     lm_last_error());
        lm_token t[8];
        cr_assert_eq(lm_vocab_tokenize(v, "ab abc", 6, t, 8, false, false), 3, "%s", pres[i]);
        cr_assert(t[0] == 6 && t[1] == 5 && t[2] == 7, "%s: %d %d %d", pres[i], t[0], t[1], t[2]);
        lm_vocab_free(v);
    }
}

Test(tokenizer_mini, load_errors) {
    expect_load_error(&(mini_opts){.no_tokens = true}, LM_ERR_MODEL, "tokenizer.ggml.tokens");
    expect_load_error(&(mini_opts){.bad_merge = true}, LM_ERR_TOKENIZER,
                      "tokenizer.ggml.merges'[1]");
    expect_load_error(&(mini_opts){.unknown_merge = true}, LM_ERR_TOKENIZER, "'zz'");
    expect_load_error(&(mini_opts){.bos_out_of_range = true}, LM_ERR_TOKENIZER,
                      "tokenizer.ggml.bos_token_id");
    expect_load_error(&(mini_opts){.short_types = true}, LM_ERR_TOKENIZER,
                      "tokenizer.ggml.token_type");
    expect_load_error(&(mini_opts){.bad_size = true}, LM_ERR_TOKENIZER, "llama.vocab_size");
    expect_load_error(&(mini_opts){.model = "bert"}, LM_ERR_TOKENIZER,
                      "tokenizer.ggml.model 'bert' is not supported");
    expect_load_error(&(mini_opts){.pre = "no-such-pre"}, LM_ERR_TOKENIZER,
                      "tokenizer.ggml.pre 'no-such-pre' is not supported");
}

/* Without add_bos_token, Llama 3's pre-tokenizer asks for a BOS (as llama.cpp), GPT-2's not. */
Test(tokenizer_mini, add_bos_default_per_pre) {
    const char *pres[] = {"gpt-2", "llama-bpe", "qwen2"};
    bool want[] = {false, true, false};
    for (int i = 0; i < 3; i++) {
        lm_vocab *v = NULL;
        cr_assert_eq(load_mini(&(mini_opts){.pre = pres[i], .no_add_bos = true}, &v), LM_OK);
        cr_assert_eq(lm_vocab_add_bos(v), want[i], "%s", pres[i]);
        lm_vocab_free(v);
    }
}

/* ---- SentencePiece-style vocabularies ------------------------------------------------- */

/* A tiny SPM vocab: <unk> <s> </s>, the 256 byte tokens, then pieces scored by spm_scores
 * (or the override), a user-defined "<ud>" and a user-defined run of two spaces. */
enum {
    T_UNK,
    T_BOS,
    T_EOS,
    T_BYTE0,
    T_SP = T_BYTE0 + 256, /* "▁" */
    T_A,
    T_B,
    T_C,
    T_AB,
    T_BC,
    T_SPA,  /* "▁a" */
    T_SPAB, /* "▁ab" */
    T_AA,
    T_EACUTE, /* "é" */
    T_UD,     /* "<ud>", user-defined */
    T_SPSP,   /* "  ", user-defined (llama.cpp's converter stores spaces, not ▁) */
    N_SPM
};
#define N_PIECES (N_SPM - T_SP)
static const char *const spm_pieces[N_PIECES] = {"\xe2\x96\x81",
                                                 "a",
                                                 "b",
                                                 "c",
                                                 "ab",
                                                 "bc",
                                                 "\xe2\x96\x81"
                                                 "a",
                                                 "\xe2\x96\x81"
                                                 "ab",
                                                 "aa",
                                                 "\xc3\xa9",
                                                 "<ud>",
                                                 "  "};
static const float spm_scores[N_PIECES] = {-1, -2, -3, -4, -5, -6, -7, -8, -9, -10, 0, 0};

typedef struct spm_opts {
    int prefix, add_bos; /* add_space_prefix / add_bos_token: -1 absent, else the value */
    bool add_eos, no_ids, no_scores;
    const float *scores; /* N_PIECES scores instead of spm_scores */
    bool short_scores, nan_score, string_scores;
    const char *pre;
} spm_opts;

static spm_opts spm_default(void) {
    return (spm_opts){.prefix = 0, .add_bos = -1};
}

static lm_status load_spm(const spm_opts *o, lm_vocab **out) {
    static char bytes[256][8];
    const char *tokens[N_SPM];
    int32_t types[N_SPM];
    float scores[N_SPM];
    tokens[T_UNK] = "<unk>", tokens[T_BOS] = "<s>", tokens[T_EOS] = "</s>";
    types[T_UNK] = 2, types[T_BOS] = 3, types[T_EOS] = 3;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        tokens[T_BYTE0 + b] = bytes[b], types[T_BYTE0 + b] = 6;
    }
    for (int i = 0; i < N_PIECES; i++) {
        tokens[T_SP + i] = spm_pieces[i];
        types[T_SP + i] = T_SP + i >= T_UD ? 4 : 1;
        scores[T_SP + i] = o->scores ? o->scores[i] : spm_scores[i];
    }
    for (int i = 0; i < T_SP; i++) scores[i] = i < T_BYTE0 ? -1000.0f : 0.0f;
    if (o->nan_score) scores[T_AB] = NAN;
    lm_gguf_writer *w = NULL;
    cr_assert_eq(lm_gguf_writer_create(3, &w), LM_OK);
    lm_gguf_writer_add_str(w, "general.architecture", "llama");
    lm_gguf_writer_add_str(w, "tokenizer.ggml.model", "llama");
    if (o->pre) lm_gguf_writer_add_str(w, "tokenizer.ggml.pre", o->pre);
    lm_gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", tokens, N_SPM);
    lm_gguf_writer_add_i32_arr(w, "tokenizer.ggml.token_type", types, N_SPM);
    if (o->string_scores)
        lm_gguf_writer_add_str_arr(w, "tokenizer.ggml.scores", tokens, N_SPM);
    else if (!o->no_scores)
        lm_gguf_writer_add_f32_arr(w, "tokenizer.ggml.scores", scores, o->short_scores ? 5 : N_SPM);
    if (!o->no_ids) {
        lm_gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", T_UNK);
        lm_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", T_BOS);
        lm_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", T_EOS);
    }
    if (o->prefix >= 0) lm_gguf_writer_add_bool(w, "tokenizer.ggml.add_space_prefix", o->prefix);
    if (o->add_bos >= 0) lm_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", o->add_bos);
    if (o->add_eos) lm_gguf_writer_add_bool(w, "tokenizer.ggml.add_eos_token", true);
    void *data;
    size_t size;
    cr_assert_eq(lm_gguf_writer_write_memory(w, &data, &size), LM_OK);
    lm_gguf_writer_free(w);
    lm_gguf *g = NULL;
    cr_assert_eq(lm_gguf_open_memory(data, size, NULL, &g), LM_OK, "%s", lm_last_error());
    lm_status s = lm_vocab_load(g, out);
    lm_gguf_close(g);
    free(data);
    return s;
}

static lm_vocab *spm_vocab(spm_opts o) {
    lm_vocab *v = NULL;
    cr_assert_eq(load_spm(&o, &v), LM_OK, "%s", lm_last_error());
    return v;
}

/* Tokenize and compare with the expected ids (-1 ends the list). */
static void expect_ids(const lm_vocab *v, const char *text, bool add_special, bool special,
                       const lm_token *want) {
    lm_token t[64];
    int32_t n = lm_vocab_tokenize(v, text, (int32_t)strlen(text), t, 64, add_special, special);
    int32_t k = 0;
    while (want[k] >= 0) k++;
    cr_assert_eq(n, k, "'%s': %d tokens, expected %d", text, n, k);
    for (int32_t i = 0; i < n; i++)
        cr_assert_eq(t[i], want[i], "'%s' token %d: %d, expected %d", text, i, t[i], want[i]);
}

#define IDS(...) ((const lm_token[]){__VA_ARGS__, -1})
#define NONE     ((const lm_token[]){-1})

Test(tokenizer_spm, merges_by_score_then_leftmost) {
    lm_vocab *v = spm_vocab(spm_default());
    expect_ids(v, "abc", false, false, IDS(T_AB, T_C)); /* "ab" (-5) beats "bc" (-6) */
    expect_ids(v, "aaa", false, false, IDS(T_AA, T_A)); /* equal scores: leftmost first */
    expect_ids(v, "aaaa", false, false, IDS(T_AA, T_AA));
    expect_ids(v, "ab ab", false, false, IDS(T_AB, T_SPAB)); /* "ab" first, then "▁"+"ab" */
    expect_ids(v, "a b", false, false, IDS(T_A, T_SP, T_B)); /* no "▁b" piece */
    lm_vocab_free(v);
    float swapped[N_PIECES];
    memcpy(swapped, spm_scores, sizeof swapped);
    swapped[T_BC - T_SP] = -4.5f; /* now "bc" beats "ab" */
    spm_opts o = spm_default();
    o.scores = swapped;
    v = spm_vocab(o);
    expect_ids(v, "abc", false, false, IDS(T_A, T_BC));
    lm_vocab_free(v);
}

/* Characters without a piece fall back to their UTF-8 bytes' <0xXX> tokens. */
Test(tokenizer_spm, byte_fallback) {
    lm_vocab *v = spm_vocab(spm_default());
    expect_ids(v, "x", false, false, IDS(T_BYTE0 + 'x'));
    expect_ids(v, "\xc3\xa9", false, false, IDS(T_EACUTE));
    expect_ids(v,
               "\xc3\xbc"
               "a",
               false, false, IDS(T_BYTE0 + 0xC3, T_BYTE0 + 0xBC, T_A));
    expect_ids(v, "\xf0\x9f\x98\x80", false, false,
               IDS(T_BYTE0 + 0xF0, T_BYTE0 + 0x9F, T_BYTE0 + 0x98, T_BYTE0 + 0x80));
    expect_ids(v, "a\xff\xc3", false, false, IDS(T_A, T_BYTE0 + 0xFF, T_BYTE0 + 0xC3));
    char buf[16];
    lm_token t[] = {T_BYTE0 + 0xC3, T_BYTE0 + 0xBC, T_SP, T_BYTE0 + 0};
    cr_assert_eq(lm_vocab_detokenize(v, t, 4, buf, sizeof buf, false), 4);
    cr_assert(memcmp(buf, "\xc3\xbc \0", 4) == 0);
    lm_vocab_free(v);
}

/* add_space_prefix: a space before the text and after each special token; detokenize
 * drops the first one again. Absent, it defaults to true (llama.cpp's SPM default). */
Test(tokenizer_spm, add_space_prefix) {
    spm_opts o = spm_default();
    o.prefix = -1;
    lm_vocab *v = spm_vocab(o);
    expect_ids(v, "ab", false, false, IDS(T_SPAB));
    expect_ids(v, "", false, false, NONE);
    expect_ids(v, "<s>ab</s>a", false, true, IDS(T_BOS, T_SPAB, T_EOS, T_SPA));
    expect_ids(v, "a<ud>a", false, false, IDS(T_SPA, T_UD, T_SPA));
    const char *text = "ab a c";
    int32_t n, len;
    lm_token *t = tokenize(v, text, strlen(text), false, &n);
    char *back = detokenize(v, t, n, false, &len);
    cr_assert(len == 6 && memcmp(back, text, 6) == 0, "'%.*s'", len, back);
    free(back);
    free(t);
    lm_vocab_free(v);
    o.prefix = 0;
    v = spm_vocab(o);
    expect_ids(v, "ab", false, false, IDS(T_AB));
    expect_ids(v, "<s>ab", false, true, IDS(T_BOS, T_AB));
    lm_token one[] = {T_SPA};
    char buf[8];
    cr_assert_eq(lm_vocab_detokenize(v, one, 1, buf, sizeof buf, false), 2); /* " a" kept */
    lm_vocab_free(v);
}

/* Control tokens only with parse_special; user-defined ones always, also a user-defined
 * run of spaces, which matches "▁" in the input too (SentencePiece reads U+2581 as a space). */
Test(tokenizer_spm, special_and_user_defined_tokens) {
    lm_vocab *v = spm_vocab(spm_default());
    expect_ids(v, "a<s>b", false, true, IDS(T_A, T_BOS, T_B));
    expect_ids(v, "<s>", false, false, IDS(T_BYTE0 + '<', T_BYTE0 + 's', T_BYTE0 + '>'));
    expect_ids(v, "a<ud>b", false, false, IDS(T_A, T_UD, T_B));
    expect_ids(v, "a<ud>b", false, true, IDS(T_A, T_UD, T_B));
    expect_ids(v, "a  b", false, false, IDS(T_A, T_SPSP, T_B));
    expect_ids(v,
               "a \xe2\x96\x81"
               "b",
               false, false, IDS(T_A, T_SPSP, T_B));
    expect_ids(v, "a   b", false, false, IDS(T_A, T_SPSP, T_SP, T_B)); /* longest first */
    char buf[16];
    lm_token t[] = {T_BOS, T_A, T_UD, T_EOS};
    cr_assert_eq(lm_vocab_detokenize(v, t, 4, buf, sizeof buf, false), 5);
    cr_assert(memcmp(buf, "a<ud>", 5) == 0);
    cr_assert_eq(lm_vocab_detokenize(v, t, 4, buf, sizeof buf, true), 12);
    cr_assert(memcmp(buf, "<s>a<ud></s>", 12) == 0);
    lm_vocab_free(v);
}

/* BOS/EOS follow add_bos_token / add_eos_token; absent, SPM adds a BOS (llama.cpp), and
 * absent id keys default to <unk> = 0, <s> = 1, </s> = 2. */
Test(tokenizer_spm, bos_eos) {
    spm_opts o = spm_default();
    o.no_ids = true;
    lm_vocab *v = spm_vocab(o);
    cr_assert(lm_vocab_add_bos(v));
    cr_assert_eq(lm_vocab_bos(v), T_BOS);
    cr_assert_eq(lm_vocab_eos(v), T_EOS);
    cr_assert(lm_vocab_is_eog(v, T_EOS));
    expect_ids(v, "a", true, false, IDS(T_BOS, T_A));
    expect_ids(v, "a", false, false, IDS(T_A));
    lm_vocab_free(v);
    o = spm_default();
    o.add_bos = 0;
    o.add_eos = true;
    v = spm_vocab(o);
    expect_ids(v, "a", true, false, IDS(T_A, T_EOS));
    lm_vocab_free(v);
    o.no_scores = true; /* no scores: all equal, merges go leftmost first */
    v = spm_vocab(o);
    expect_ids(v, "abc", false, false, IDS(T_AB, T_C));
    expect_ids(v, "bcab", false, false, IDS(T_BC, T_AB));
    lm_vocab_free(v);
}

Test(tokenizer_spm, load_errors) {
    lm_vocab *v = (lm_vocab *)1;
    spm_opts o = spm_default();
    o.short_scores = true;
    cr_assert_eq(load_spm(&o, &v), LM_ERR_TOKENIZER);
    cr_assert(strstr(lm_last_error(), "'tokenizer.ggml.scores' has 5 entries"), "%s",
              lm_last_error());
    cr_assert_null(v);
    o = spm_default();
    o.string_scores = true;
    cr_assert_eq(load_spm(&o, &v), LM_ERR_TOKENIZER);
    cr_assert(strstr(lm_last_error(), "'tokenizer.ggml.scores' must be an array of floats"));
    o = spm_default();
    o.nan_score = true;
    cr_assert_eq(load_spm(&o, &v), LM_ERR_TOKENIZER);
    cr_assert(strstr(lm_last_error(), "NaN"), "%s", lm_last_error());
    o = spm_default();
    o.pre = "whatever"; /* SPM has no pre-tokenizer: the key is ignored */
    cr_assert_eq(load_spm(&o, &v), LM_OK, "%s", lm_last_error());
    lm_vocab_free(v);
}

/* The straightforward O(n^2) form of SPM merging, for comparison: escape, split into
 * characters, then repeatedly merge the adjacent pair whose concatenation is a normal or
 * user-defined piece of highest score (leftmost on ties); leftovers become byte tokens. */
static int32_t naive_spm(const char *text, const float *scores, bool prefix, lm_token *out) {
    char buf[1024];
    size_t n = 0;
    if (prefix) memcpy(buf, "\xe2\x96\x81", 3), n = 3;
    for (const char *p = text; *p; p++) {
        if (*p == ' ')
            memcpy(buf + n, "\xe2\x96\x81", 3), n += 3;
        else
            buf[n++] = *p;
    }
    size_t start[512], len[512];
    int m = 0;
    for (size_t i = 0; i < n; m++) {
        int l = lm_utf8_decode((const unsigned char *)buf + i, n - i, NULL);
        start[m] = i, len[m] = l ? (size_t)l : 1, i += len[m];
    }
    for (;;) {
        int best = -1, best_id = -1;
        for (int i = 0; i + 1 < m; i++) {
            for (int id = T_SP; id < T_UD; id++) { /* normal pieces ("<ud>" cannot form) */
                const char *pc = spm_pieces[id - T_SP];
                if (strlen(pc) == len[i] + len[i + 1] &&
                    memcmp(buf + start[i], pc, strlen(pc)) == 0 &&
                    (best < 0 || scores[id - T_SP] > scores[best_id - T_SP]))
                    best = i, best_id = id;
            }
        }
        if (best < 0) break;
        len[best] += len[best + 1];
        memmove(start + best + 1, start + best + 2, sizeof *start * (size_t)(m - best - 2));
        memmove(len + best + 1, len + best + 2, sizeof *len * (size_t)(m - best - 2));
        m--;
    }
    int32_t k = 0;
    for (int i = 0; i < m; i++) {
        int id = -1;
        for (int p = T_SP; p < T_UD; p++)
            if (strlen(spm_pieces[p - T_SP]) == len[i] &&
                memcmp(buf + start[i], spm_pieces[p - T_SP], len[i]) == 0)
                id = p;
        if (id >= 0)
            out[k++] = id;
        else
            for (size_t j = 0; j < len[i]; j++)
                out[k++] = T_BYTE0 + (unsigned char)buf[start[i] + j];
    }
    return k;
}

/* Random texts over the vocab's characters and random scores with many ties: Lumen's heap
 * merging gives exactly the naive algorithm's ids, and detokenize gives the text back. */
Test(tokenizer_spm, random_against_naive_reference) {
    uint64_t seed = lm_test_seed();
    lm_test_rng r = {seed};
    static const char *const alphabet[] = {"a", "b", "c", " ", "x", "\xc3\xa9", "\xc3\xbc"};
    for (int round = 0; round < 40; round++) {
        float scores[N_PIECES];
        for (int i = 0; i < N_PIECES; i++) scores[i] = -(float)(lm_test_rng_u64(&r) % 4);
        spm_opts o = spm_default();
        o.scores = scores;
        o.prefix = (int)(round & 1);
        lm_vocab *v = spm_vocab(o);
        for (int iter = 0; iter < 50; iter++) {
            char text[256] = "";
            size_t n_chars = lm_test_rng_u64(&r) % 40;
            for (size_t i = 0; i < n_chars; i++)
                strcat(text, alphabet[lm_test_rng_u64(&r) % (sizeof alphabet / sizeof *alphabet)]);
            /* "  " is a user-defined token: keep single spaces for the naive reference */
            for (char *p = strstr(text, "  "); p; p = strstr(text, "  ")) p[1] = 'x';
            lm_token want[1024];
            int32_t n_want = naive_spm(text, scores, o.prefix && text[0], want);
            int32_t n;
            lm_token *got = tokenize(v, text, strlen(text), false, &n);
            cr_assert_eq(n, n_want, "'%s' (seed %llu): %d tokens, naive %d", text,
                         (unsigned long long)seed, n, n_want);
            for (int32_t i = 0; i < n; i++)
                cr_assert_eq(got[i], want[i], "'%s' (seed %llu) token %d", text,
                             (unsigned long long)seed, i);
            int32_t len;
            char *back = detokenize(v, got, n, false, &len);
            cr_assert(len == (int32_t)strlen(text) && memcmp(back, text, (size_t)len) == 0,
                      "'%s' round trip", text);
            free(back);
            free(got);
        }
        lm_vocab_free(v);
    }
}

/* ---- Gemma 3 (SentencePiece, 262,144 tokens) ------------------------------------------ */

/* Tokens a plain (parse_special = false) text may give: none that renders as nothing. */
static void assert_no_control(const lm_vocab *v, const lm_token *t, int32_t n, const char *what) {
    char buf[256];
    for (int32_t i = 0; i < n; i++)
        cr_assert_neq(lm_vocab_token_to_piece(v, t[i], buf, sizeof buf, false), 0,
                      "%s: token %d (%d) is a control token", what, i, t[i]);
}

Test(tokenizer, gemma3_vocab) {
    lm_vocab *v = load_vocab_at(gemma_path());
    cr_assert_eq(lm_vocab_n_tokens(v), 262144);
    cr_assert_eq(lm_vocab_bos(v), 2);
    cr_assert_eq(lm_vocab_eos(v), 1);
    cr_assert(lm_vocab_add_bos(v));
    cr_assert(lm_vocab_is_eog(v, 1));
    cr_assert(lm_vocab_is_eog(v, 106)); /* <end_of_turn> */
    cr_assert_not(lm_vocab_is_eog(v, 105));
    cr_assert_null(lm_vocab_chat_template(v), "this GGUF (a base model) has no template");
    lm_token t[16];
    /* BOS added; no space prefix (add_space_prefix = false) */
    cr_assert_eq(lm_vocab_tokenize(v, "Hello world", 11, t, 16, true, false), 3);
    cr_assert(t[0] == 2 && t[1] == 9259 && t[2] == 1902);
    /* user-defined "\n" and "<table>" always; control "<eos>" only with parse_special */
    int32_t n = lm_vocab_tokenize(v, "<table>\n<eos>", 13, t, 16, false, false);
    cr_assert(n > 3 && t[0] == 168 && t[1] == 107, "n %d: %d %d", n, t[0], t[1]);
    assert_no_control(v, t, n, "<eos> as text");
    cr_assert_eq(lm_vocab_tokenize(v, "<table>\n<eos>", 13, t, 16, false, true), 3);
    cr_assert(t[0] == 168 && t[1] == 107 && t[2] == 1);
    char buf[32];
    cr_assert_eq(lm_vocab_token_to_piece(v, 138, buf, sizeof buf, false), 2); /* "  " */
    cr_assert_eq(lm_vocab_token_to_piece(v, 1902, buf, sizeof buf, false), 6);
    cr_assert(memcmp(buf, " world", 6) == 0);
    cr_assert_eq(lm_vocab_token_to_piece(v, 238 + 0xE2, buf, sizeof buf, false), 1); /* <0xE2> */
    cr_assert_eq((unsigned char)buf[0], 0xE2);
    lm_vocab_free(v);
}

/* Every byte has a token (<0xXX> fallback), so any input round trips exactly, except that
 * U+2581 in the input is read as a space (as SentencePiece and HF do). */
static void assert_gemma_round_trip(const lm_vocab *v, const char *s, size_t len, bool special,
                                    uint64_t seed) {
    int32_t n, out_len;
    lm_token *t = tokenize(v, s, len, special, &n);
    if (!special) assert_no_control(v, t, n, "random text");
    char *back = detokenize(v, t, n, true, &out_len);
    char *want = malloc(len + 1);
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        if (i + 3 <= len && memcmp(s + i, "\xe2\x96\x81", 3) == 0)
            want[w++] = ' ', i += 2;
        else
            want[w++] = s[i];
    }
    cr_assert(out_len == (int32_t)w && memcmp(back, want, w) == 0,
              "round trip failed (len %zu -> %d, expected %zu, seed %llu)", len, out_len, w,
              (unsigned long long)seed);
    free(want);
    free(back);
    free(t);
}

Test(tokenizer, gemma3_round_trips) {
    lm_vocab *v = load_vocab_at(gemma_path());
    uint64_t seed = lm_test_seed();
    lm_test_rng r = {seed};
    char s[1024];
    for (int iter = 0; iter < 200; iter++) {
        size_t len = 0, n_cp = lm_test_rng_u64(&r) % 200;
        for (size_t i = 0; i < n_cp; i++) len += (size_t)lm_utf8_encode(random_cp(&r), s + len);
        assert_gemma_round_trip(v, s, len, iter & 1, seed);
        len = lm_test_rng_u64(&r) % 512;
        for (size_t i = 0; i < len; i++) s[i] = (char)lm_test_rng_u64(&r);
        assert_gemma_round_trip(v, s, len, iter & 1, seed);
    }
    /* long inputs: merging is a heap, not quadratic; runs of spaces and '<' (over 6,000
     * control texts start with it) stay fast */
    size_t len = 100000;
    char *big = malloc(len);
    const char *pats[] = {"a", " ", "ab1 .\n<", "<"};
    for (int p = 0; p < 4; p++) {
        size_t k = strlen(pats[p]);
        for (size_t i = 0; i < len; i++) big[i] = pats[p][i % k];
        assert_gemma_round_trip(v, big, len, true, 0);
    }
    free(big);
    lm_vocab_free(v);
}

/* ---- unicode helpers ------------------------------------------------------------------ */

Test(unicode, byte_level_mapping_is_a_bijection) {
    bool seen[324] = {0};
    for (int b = 0; b < 256; b++) {
        uint32_t cp = lm_byte_to_unicode((uint8_t)b);
        cr_assert_lt(cp, 324);
        cr_assert_not(seen[cp]);
        seen[cp] = true;
        cr_assert_eq(lm_unicode_to_byte(cp), b);
    }
    cr_assert_eq(lm_byte_to_unicode(' '), 0x120);  /* 'Ġ' */
    cr_assert_eq(lm_byte_to_unicode('\n'), 0x10A); /* 'Ċ' */
    cr_assert_eq(lm_unicode_to_byte(0x4E00), -1);
}

Test(unicode, utf8_validation) {
    cr_assert(lm_utf8_valid("h\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10));
    cr_assert_not(lm_utf8_valid("\xc0\x80", 2));
    cr_assert_not(lm_utf8_valid("\xed\xa0\x80", 3));
    cr_assert_not(lm_utf8_valid("\xf4\x90\x80\x80", 4));
    cr_assert_not(lm_utf8_valid("\xe2\x82", 2));
    cr_assert(lm_utf8_valid("\0", 1));
}
