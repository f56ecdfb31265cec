/* Tokenizer: exact ids against Hugging Face's tokenizer (fixture), round trips on random
 * text and bytes, buffer contracts, special tokens, EOG, and load errors. */
#include "helpers/test_util.h"
#include "gguf.h"
#include "tokenizer.h"
#include "unicode.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers -------------------------------------------------------------------------- */

/* The model's vocab; the gguf is closed at once, so this also checks that the vocab owns
 * copies of everything it needs. */
static lm_vocab *load_model_vocab(void) {
    lm_gguf *g = NULL;
    lm_status s = lm_gguf_open(lm_test_model_path(), &g);
    cr_assert_eq(s, LM_OK, "open %s: %s", lm_test_model_path(), lm_last_error());
    lm_vocab *v = NULL;
    s = lm_vocab_load(g, &v);
    cr_assert_eq(s, LM_OK, "vocab: %s", lm_last_error());
    lm_gguf_close(g);
    return v;
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
} fixture_line;

static bool parse_fixture_line(char *line, bool special, fixture_line *f) {
    char *tab = strchr(line, '\t');
    if (!tab) return false;
    size_t hex_len = (size_t)(tab - line);
    f->len = hex_len / 2;
    f->text = malloc(f->len + 1);
    for (size_t i = 0; i < f->len; i++)
        f->text[i] = (char)(hexval(line[2 * i]) * 16 + hexval(line[2 * i + 1]));
    f->n_ids = 0;
    for (char *p = tab + 1; *p && *p != '\n';) {
        char *end;
        long id = strtol(p, &end, 10);
        if (end == p) break;
        f->ids[f->n_ids++] = (lm_token)id;
        p = end;
    }
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
        size_t want_len = expected_round_trip(v, f->text, f->len, want);
        cr_assert(len == (int32_t)want_len && memcmp(back, want, want_len) == 0,
                  "line %d: detokenize differs", line_no);
        free(want);
        free(back);
        free(t);
    }
}

Test(tokenizer, matches_hf_fixture) {
    lm_vocab *v = load_model_vocab();
    FILE *fp = fopen(lm_test_fixture("tokenizer_smollm2.txt"), "r");
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
        special = false;
        checked++;
    }
    fclose(fp);
    cr_assert_geq(checked, 16, "only %d fixture prompts", checked);
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
    lm_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", true);
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

/* Every pre-tokenizer row compiles and splits; an unknown name falls back to GPT-2's. */
Test(tokenizer_mini, pre_tokenizers) {
    const char *pres[] = {"gpt-2", "smollm", "llama3", "llama-bpe", "qwen2", "no-such-pre"};
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
    expect_load_error(&(mini_opts){.model = "bert"}, LM_ERR_UNSUPPORTED, "'bert'");
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
