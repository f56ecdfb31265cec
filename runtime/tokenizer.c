/* Tokenizers loaded from GGUF tokenizer.ggml.* metadata: GPT-2 style byte-level BPE
 * (tokenizer.ggml.model = gpt2, here) and SentencePiece style (= llama, tokenizer_spm.c).
 *
 * Pipeline of lm_vocab_tokenize:
 *   1. added tokens are cut out whole, longest first: USER_DEFINED ones always, CONTROL
 *      ones when parse_special (as llama.cpp, and as Hugging Face, which always splits
 *      its non-special added tokens out);
 *   2. each remaining fragment goes to the vocab's model:
 *   BPE 3. the fragment is split into well-formed UTF-8 runs and invalid bytes; an invalid
 *      byte becomes a word of its own (a byte-level vocab has a token for nearly every
 *      byte), so invalid UTF-8 round trips too, instead of becoming U+FFFD;
 *   BPE 4. valid runs go through the pre-tokenizer's regex stages (PCRE2, UTF + UCP); each
 *      stage splits every piece of the previous one, keeping the gaps between matches;
 *   BPE 5. each final piece (word) is mapped byte -> GPT-2 unicode -> initial token ids
 *      and merged by rank (a heap of adjacent pairs, lowest rank then leftmost first).
 *   SPM 3-5: see tokenizer_spm.c (spaces to U+2581, merges by score, byte fallback).
 *
 * Round trip: detokenize(tokenize(s)) == s with the bytes the vocab has no token for
 * removed; for most vocabs that is none. SmolLM2 lacks 21 (0x04, 0x06, ..., 0xF5..0xFF):
 * they are dropped, as HF's BPE without an unk token drops them (the GGUF's unknown id is
 * <|endoftext|>, which must not appear in the middle of a prompt). SPM vocabs with byte
 * tokens round trip every byte, except that a literal U+2581 comes back as a space.
 *
 * An unknown tokenizer.ggml.model or tokenizer.ggml.pre is refused (LM_ERR_TOKENIZER,
 * naming it): a wrong pre-tokenizer silently changes the ids. A missing pre is "default"
 * (the GPT-2 regex).
 *
 * Thread safety: the vocab is read-only after load; regexes are compiled (and JITed)
 * once; each tokenize call has its own PCRE2 match data and scratch buffers. */
#include "tokenizer_impl.h"
#include "lm_internal.h"
#include "unicode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- pre-tokenizer table: one row per tokenizer.ggml.pre family ---------------------- */

#define LM__RE_GPT2                                                                                \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define LM__RE_LLAMA3                                                                              \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"                       \
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define LM__RE_QWEN2                                                                               \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"                            \
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/* Names are those llama.cpp maps to the same regex. */
static const lm__pre_row lm__pre_table[] = {
    {{"gpt-2", "default", "phi-2", "jina-es", "jina-de", "mpt", "olmo", "gigachat", "jina-v1-en",
      "jina-v2-es", "jina-v2-de", "jina-v2-code", "roberta-bpe", "jais", NULL},
     {LM__RE_GPT2, NULL},
     false,
     false},
    /* HF: Sequence[Digits(individual_digits), ByteLevel] */
    {{"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b", NULL},
     {"\\p{N}", LM__RE_GPT2, NULL},
     false,
     false},
    /* Llama 3 */
    {{"llama3", "llama-bpe", "llama-v3", "falcon3", "dbrx", "smaug-bpe", NULL},
     {LM__RE_LLAMA3, NULL},
     true,
     true},
    /* Qwen2, Qwen2.5, Qwen3 */
    {{"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez", NULL},
     {LM__RE_QWEN2, NULL},
     false,
     false},
};

#define LM__N_PRE (sizeof lm__pre_table / sizeof lm__pre_table[0])

static const lm__pre_row *lm__pre_find(const char *name, size_t len) {
    for (size_t i = 0; i < LM__N_PRE; i++) {
        for (const char *const *nm = lm__pre_table[i].names; *nm; nm++) {
            if (strlen(*nm) == len && memcmp(*nm, name, len) == 0) return &lm__pre_table[i];
        }
    }
    return NULL;
}

/* ---- the vocab ------------------------------------------------------------------------ */

static const char *lm__tok_text(const lm_vocab *v, int32_t id, size_t *len) {
    *len = (size_t)(v->text_off[id + 1] - v->text_off[id]);
    return v->text_blob + v->text_off[id];
}

static uint64_t lm__hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static uint64_t lm__hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static uint64_t lm__pow2_at_least(uint64_t n) {
    uint64_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

int32_t lm__vocab_find_text(const lm_vocab *v, const char *s, size_t n) {
    uint64_t mask = v->str_cap - 1;
    for (uint64_t i = lm__hash_bytes(s, n) & mask;; i = (i + 1) & mask) {
        int32_t id = v->str_map[i];
        if (id < 0) return -1;
        size_t len;
        const char *t = lm__tok_text(v, id, &len);
        if (len == n && memcmp(t, s, n) == 0) return id;
    }
}

/* Later duplicates replace earlier ones (as llama.cpp's token_to_id map does). */
static void lm__insert_text(lm_vocab *v, int32_t id) {
    size_t n;
    const char *s = lm__tok_text(v, id, &n);
    uint64_t mask = v->str_cap - 1;
    for (uint64_t i = lm__hash_bytes(s, n) & mask;; i = (i + 1) & mask) {
        int32_t cur = v->str_map[i];
        size_t len = 0;
        const char *t = cur >= 0 ? lm__tok_text(v, cur, &len) : NULL;
        if (cur < 0 || (len == n && memcmp(t, s, n) == 0)) {
            v->str_map[i] = id;
            return;
        }
    }
}

static lm__merge_slot *lm__merge_slot_for(const lm_vocab *v, int32_t a, int32_t b) {
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    uint64_t mask = v->merge_cap - 1;
    for (uint64_t i = lm__hash_u64(key) & mask;; i = (i + 1) & mask) {
        lm__merge_slot *s = &v->merges[i];
        if (s->key == key || s->key == 0) return s; /* caller fills an empty slot */
    }
}

static const lm__merge_slot *lm__merge_find(const lm_vocab *v, int32_t a, int32_t b) {
    const lm__merge_slot *s = lm__merge_slot_for(v, a, b);
    return s->key ? s : NULL;
}

void lm_vocab_free(lm_vocab *v) {
    if (!v) return;
    for (int i = 0; i < v->n_re; i++) pcre2_code_free(v->re[i]);
    LM_FREE(v->text_blob);
    LM_FREE(v->text_off);
    LM_FREE(v->piece_blob);
    LM_FREE(v->piece_off);
    LM_FREE(v->type);
    LM_FREE(v->eog);
    LM_FREE(v->str_map);
    LM_FREE(v->merges);
    LM_FREE(v->special_len);
    LM_FREE(v->special_id);
    LM_FREE(v->special_blob);
    LM_FREE(v->special_off);
    LM_FREE(v->special_map);
    LM_FREE(v->score);
    LM_FREE(v->chat_template);
    LM_FREE(v);
}

/* ---- loading -------------------------------------------------------------------------- */

static lm_status lm__nomem(const char *what) {
    return lm__error(LM_ERR_NOMEM, "tokenizer: out of memory for %s", what);
}

/* A string array value for key, or an error naming the key. */
static lm_status lm__str_array(const lm_gguf *g, const char *key, uint64_t *n,
                               const lm_gguf_value **items) {
    const lm_gguf_value *val = lm_gguf_get(g, key);
    if (!val) return lm__error(LM_ERR_MODEL, "tokenizer: missing key '%s'", key);
    if (val->type != LM_GGUF_ARRAY || val->v.arr.type != LM_GGUF_STRING)
        return lm__error(LM_ERR_TOKENIZER, "tokenizer: '%s' is %s, expected an array of strings",
                         key, lm_gguf_type_name(val->type));
    *n = val->v.arr.n;
    *items = val->v.arr.items;
    return LM_OK;
}

static lm_status lm__load_tokens(lm_vocab *v, const lm_gguf *g) {
    uint64_t n = 0;
    const lm_gguf_value *items = NULL;
    LM_TRY(lm__str_array(g, "tokenizer.ggml.tokens", &n, &items));
    if (n == 0 || n > (uint64_t)INT32_MAX - 2)
        return lm__error(LM_ERR_TOKENIZER, "tokenizer: 'tokenizer.ggml.tokens' has %llu entries",
                         (unsigned long long)n);
    v->n_tokens = (int32_t)n;
    uint64_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (!lm__add_ok(total, items[i].v.str.len, &total))
            return lm__error(LM_ERR_TOKENIZER, "tokenizer: token texts too large");
    }
    v->text_off = LM_MALLOC((n + 1) * sizeof *v->text_off);
    v->text_blob = LM_MALLOC(total ? total : 1);
    v->type = LM_MALLOC(n);
    v->eog = LM_CALLOC(n, 1);
    if (!v->text_off || !v->text_blob || !v->type || !v->eog) return lm__nomem("tokens");
    uint64_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        v->text_off[i] = off;
        if (items[i].v.str.len) memcpy(v->text_blob + off, items[i].v.str.data, items[i].v.str.len);
        off += items[i].v.str.len;
    }
    v->text_off[n] = off;
    v->str_cap = lm__pow2_at_least(n * 2);
    v->str_map = LM_MALLOC(v->str_cap * sizeof *v->str_map);
    if (!v->str_map) return lm__nomem("token map");
    memset(v->str_map, 0xff, v->str_cap * sizeof *v->str_map);
    for (int32_t i = 0; i < v->n_tokens; i++) lm__insert_text(v, i);
    return LM_OK;
}

static lm_status lm__load_types(lm_vocab *v, const lm_gguf *g) {
    const char *key = "tokenizer.ggml.token_type";
    const lm_gguf_value *val = lm_gguf_get(g, key);
    if (!val) {
        memset(v->type, LM__TT_NORMAL, (size_t)v->n_tokens);
        return LM_OK;
    }
    if (val->type != LM_GGUF_ARRAY || val->v.arr.type == LM_GGUF_STRING ||
        val->v.arr.type == LM_GGUF_ARRAY || val->v.arr.type == LM_GGUF_FLOAT32 ||
        val->v.arr.type == LM_GGUF_FLOAT64 || val->v.arr.type == LM_GGUF_BOOL)
        return lm__error(LM_ERR_TOKENIZER, "tokenizer: '%s' must be an integer array", key);
    if (val->v.arr.n != (uint64_t)v->n_tokens)
        return lm__error(LM_ERR_TOKENIZER, "tokenizer: '%s' has %llu entries, tokens has %d", key,
                         (unsigned long long)val->v.arr.n, v->n_tokens);
    for (int32_t i = 0; i < v->n_tokens; i++) {
        int64_t t = lm_gguf_arr_i64(val, (uint64_t)i);
        if (t < 0 || t > LM__TT_BYTE)
            return lm__error(LM_ERR_TOKENIZER, "tokenizer: '%s'[%d] = %lld is not a token type",
                             key, i, (long long)t);
        v->type[i] = (uint8_t)(t == LM__TT_UNDEFINED ? LM__TT_NORMAL : t);
    }
    return LM_OK;
}

static lm_status lm__load_merges(lm_vocab *v, const lm_gguf *g) {
    const char *key = "tokenizer.ggml.merges";
    uint64_t n = 0;
    const lm_gguf_value *items = NULL;
    LM_TRY(lm__str_array(g, key, &n, &items));
    if (n > (uint64_t)INT32_MAX) return lm__error(LM_ERR_TOKENIZER, "tokenizer: too many merges");
    v->merge_cap = lm__pow2_at_least(n * 2 + 1);
    v->merges = LM_CALLOC(v->merge_cap, sizeof *v->merges);
    if (!v->merges) return lm__nomem("merges");
    uint64_t skipped = 0;
    for (uint64_t i = 0; i < n; i++) {
        const char *s = items[i].v.str.data;
        size_t len = (size_t)items[i].v.str.len;
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp || sp + 1 == s + len)
            return lm__error(LM_ERR_TOKENIZER, "tokenizer: '%s'[%llu] = '%.*s' is not 'a b'", key,
                             (unsigned long long)i, (int)(len > 64 ? 64 : len), s);
        size_t la = (size_t)(sp - s), lb = len - la - 1;
        int32_t a = lm__vocab_find_text(v, s, la), b = lm__vocab_find_text(v, sp + 1, lb);
        if (a < 0 || b < 0)
            return lm__error(LM_ERR_TOKENIZER,
                             "tokenizer: '%s'[%llu] = '%.*s': '%.*s' is not in the vocabulary", key,
                             (unsigned long long)i, (int)(len > 64 ? 64 : len), s,
                             (int)(a < 0 ? la : lb), a < 0 ? s : sp + 1);
        /* The merged text must be a token too; the pieces are adjacent in s. */
        char buf[256];
        char *joined = la + lb <= sizeof buf ? buf : LM_MALLOC(la + lb);
        if (!joined) return lm__nomem("merge text");
        memcpy(joined, s, la);
        memcpy(joined + la, sp + 1, lb);
        int32_t m = lm__vocab_find_text(v, joined, la + lb);
        if (joined != buf) LM_FREE(joined);
        lm__merge_slot *slot = lm__merge_slot_for(v, a, b);
        if (m < 0 || slot->key) { /* useless or duplicate: the first rank wins */
            skipped += m < 0;
            continue;
        }
        slot->key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
        slot->rank = (int32_t)i;
        slot->merged = m;
    }
    if (skipped)
        lm__log(LM_LOG_WARN, "tokenizer: %llu merges produce texts not in the vocabulary (ignored)",
                (unsigned long long)skipped);
    return LM_OK;
}

/* Optional token id key: absent leaves *out; present must be a valid id. */
static lm_status lm__load_id(lm_vocab *v, const lm_gguf *g, const char *key, lm_token *out) {
    if (!lm_gguf_get(g, key)) return LM_OK;
    uint32_t id;
    LM_TRY(lm_gguf_get_u32(g, key, &id));
    if (id >= (uint32_t)v->n_tokens)
        return lm__error(LM_ERR_TOKENIZER, "tokenizer: '%s' = %u is out of range (%d tokens)", key,
                         id, v->n_tokens);
    *out = (lm_token)id;
    return LM_OK;
}

static lm_status lm__load_bool(const lm_gguf *g, const char *key, bool *out) {
    if (!lm_gguf_get(g, key)) return LM_OK;
    return lm_gguf_get_bool(g, key, out);
}

/* Defaults when a key is absent are llama.cpp's: SPM vocabs have <s> = 1, </s> = 2, <unk> = 0,
 * add a BOS and a space prefix; BPE vocabs add a BOS only for pre-tokenizers that want one
 * (Llama 3). */
static lm_status lm__load_ids(lm_vocab *v, const lm_gguf *g) {
    v->bos = v->eos = v->eot = v->eom = v->unk = v->pad = LM_TOKEN_NULL;
    bool spm = v->kind == LM__VOCAB_SPM;
    if (spm && v->n_tokens > 2) v->unk = 0, v->bos = 1, v->eos = 2;
    LM_TRY(lm__load_id(v, g, "tokenizer.ggml.bos_token_id", &v->bos));
    LM_TRY(lm__load_id(v, g, "tokenizer.ggml.eos_token_id", &v->eos));
    LM_TRY(lm__load_id(v, g, "tokenizer.ggml.eot_token_id", &v->eot));
    LM_TRY(lm__load_id(v, g, "tokenizer.ggml.eom_token_id", &v->eom));
    LM_TRY(lm__load_id(v, g, "tokenizer.ggml.unknown_token_id", &v->unk));
    LM_TRY(lm__load_id(v, g, "tokenizer.ggml.padding_token_id", &v->pad));
    v->add_bos = spm || v->pre->add_bos;
    v->add_eos = false;
    v->add_space_prefix = spm;
    LM_TRY(lm__load_bool(g, "tokenizer.ggml.add_bos_token", &v->add_bos));
    LM_TRY(lm__load_bool(g, "tokenizer.ggml.add_eos_token", &v->add_eos));
    if (spm) LM_TRY(lm__load_bool(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix));
    if (v->add_bos && v->bos < 0)
        return lm__error(
            LM_ERR_TOKENIZER,
            "tokenizer: add_bos_token is set but tokenizer.ggml.bos_token_id is missing");
    if (v->add_eos && v->eos < 0)
        return lm__error(
            LM_ERR_TOKENIZER,
            "tokenizer: add_eos_token is set but tokenizer.ggml.eos_token_id is missing");
    return LM_OK;
}

/* <arch>.vocab_size, when present, must match the token count. */
static lm_status lm__check_vocab_size(const lm_vocab *v, const lm_gguf *g) {
    lm_gguf_str arch;
    if (!lm_gguf_get(g, "general.architecture")) return LM_OK;
    LM_TRY(lm_gguf_get_str(g, "general.architecture", &arch));
    char key[160];
    snprintf(key, sizeof key, "%.*s.vocab_size", (int)(arch.len > 128 ? 128 : arch.len), arch.data);
    if (!lm_gguf_get(g, key)) return LM_OK;
    uint32_t n;
    LM_TRY(lm_gguf_get_u32(g, key, &n));
    if (n != (uint32_t)v->n_tokens)
        return lm__error(LM_ERR_TOKENIZER, "tokenizer: '%s' = %u but tokenizer.ggml.tokens has %d",
                         key, n, v->n_tokens);
    return LM_OK;
}

static void lm__mark_eog(lm_vocab *v) {
    static const char *const names[] = {"<|im_end|>",    "<|eot_id|>", "<end_of_turn>",
                                        "<|endoftext|>", "<|end|>",    "<|eom_id|>"};
    lm_token ids[] = {v->eos, v->eot, v->eom};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (ids[i] >= 0) v->eog[ids[i]] = 1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int32_t id = lm__vocab_find_text(v, names[i], strlen(names[i]));
        if (id >= 0) v->eog[id] = 1;
    }
}

/* Decode "<0xAB>" byte tokens (SentencePiece style); -1 if not of that form. */
static int lm__byte_token_value(const char *t, size_t n) {
    if (n != 6 || memcmp(t, "<0x", 3) != 0 || t[5] != '>') return -1;
    unsigned v;
    char hex[3] = {t[3], t[4], 0};
    if (sscanf(hex, "%2x", &v) != 1) return -1;
    return (int)v;
}

/* Bytes a normal token stands for: its text's code points mapped back through GPT-2's
 * byte table; code points outside the table (and invalid UTF-8) are kept as they are. */
static size_t lm__decode_bytelevel(const char *t, size_t n, char *out) {
    const unsigned char *u = (const unsigned char *)t;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int l = lm_utf8_decode(u + i, n - i, &cp);
        int b = l ? lm_unicode_to_byte(cp) : -1;
        if (b >= 0) {
            out[o++] = (char)b;
        } else {
            size_t k = l ? (size_t)l : 1;
            memcpy(out + o, t + i, k);
            o += k;
        }
        i += l ? (size_t)l : 1;
    }
    return o;
}

/* SPM: the text with each U+2581 (the escaped space) back to a space. */
static size_t lm__decode_spm(const char *t, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (n - i >= 3 && memcmp(t + i, "\xe2\x96\x81", 3) == 0) {
            out[o++] = ' ';
            i += 3;
        } else {
            out[o++] = t[i++];
        }
    }
    return o;
}

/* The token each byte falls back to: the GPT-2 char's token (BPE) or <0xXX> (SPM). */
static void lm__build_byte_tokens(lm_vocab *v) {
    for (int b = 0; b < 256; b++) {
        char c[8];
        int l = v->kind == LM__VOCAB_SPM ? snprintf(c, sizeof c, "<0x%02X>", b)
                                         : lm_utf8_encode(lm_byte_to_unicode((uint8_t)b), c);
        v->byte_tok[b] = lm__vocab_find_text(v, c, (size_t)l);
    }
}

/* Pieces are never longer than texts, so the text blob's size bounds the piece blob. */
static lm_status lm__build_pieces(lm_vocab *v) {
    int32_t n = v->n_tokens;
    v->piece_blob = LM_MALLOC(v->text_off[n] ? v->text_off[n] : 1);
    v->piece_off = LM_MALLOC(((size_t)n + 1) * sizeof *v->piece_off);
    if (!v->piece_blob || !v->piece_off) return lm__nomem("pieces");
    uint64_t off = 0;
    for (int32_t i = 0; i < n; i++) {
        size_t len;
        const char *t = lm__tok_text(v, i, &len);
        v->piece_off[i] = off;
        int byte = v->type[i] == LM__TT_BYTE ? lm__byte_token_value(t, len) : -1;
        if (byte >= 0) {
            v->piece_blob[off++] = (char)byte;
        } else if (v->type[i] == LM__TT_NORMAL) {
            off += v->kind == LM__VOCAB_SPM ? lm__decode_spm(t, len, v->piece_blob + off)
                                            : lm__decode_bytelevel(t, len, v->piece_blob + off);
        } else { /* control, user-defined, unknown: their text, verbatim */
            memcpy(v->piece_blob + off, t, len);
            off += len;
        }
    }
    v->piece_off[n] = off;
    lm__build_byte_tokens(v);
    return LM_OK;
}

static bool lm__is_special_type(uint8_t t) {
    return t == LM__TT_CONTROL || t == LM__TT_USER_DEFINED;
}

static int lm__cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static const char *lm__special_text(const lm_vocab *v, int32_t k, size_t *len) {
    *len = (size_t)(v->special_off[k + 1] - v->special_off[k]);
    return v->special_blob + v->special_off[k];
}

/* Special token id whose (normalized) text is s[0..n), -1 if none; later ids win. */
static int32_t lm__special_find(const lm_vocab *v, const char *s, size_t n) {
    uint64_t mask = v->special_cap - 1;
    for (uint64_t i = lm__hash_bytes(s, n) & mask;; i = (i + 1) & mask) {
        int32_t k = v->special_map[i];
        if (k < 0) return -1;
        size_t len;
        const char *t = lm__special_text(v, k, &len);
        if (len == n && memcmp(t, s, n) == 0) return v->special_id[k];
    }
}

static void lm__special_insert(lm_vocab *v, int32_t k) {
    size_t n;
    const char *s = lm__special_text(v, k, &n);
    uint64_t mask = v->special_cap - 1;
    for (uint64_t i = lm__hash_bytes(s, n) & mask;; i = (i + 1) & mask) {
        int32_t cur = v->special_map[i];
        size_t len = 0;
        const char *t = cur >= 0 ? lm__special_text(v, cur, &len) : NULL;
        if (cur < 0 || (len == n && memcmp(t, s, n) == 0)) {
            v->special_map[i] = k;
            return;
        }
    }
}

/* The special tokens' texts (SPM: U+2581 as a space, so either spelling in the input
 * matches, as in SentencePiece, which matches user-defined pieces after escaping) and
 * their hash map. */
static lm_status lm__collect_specials(lm_vocab *v) {
    int32_t count = 0;
    for (int32_t i = 0; i < v->n_tokens; i++)
        count += lm__is_special_type(v->type[i]) && v->text_off[i + 1] > v->text_off[i];
    v->n_special = count;
    uint64_t total = 0;
    for (int32_t i = 0; i < v->n_tokens; i++)
        if (lm__is_special_type(v->type[i])) total += v->text_off[i + 1] - v->text_off[i];
    v->special_id = LM_MALLOC(((size_t)count + 1) * sizeof *v->special_id);
    v->special_off = LM_MALLOC(((size_t)count + 1) * sizeof *v->special_off);
    v->special_blob = LM_MALLOC(total ? total : 1);
    v->special_cap = lm__pow2_at_least((uint64_t)count * 2 + 1);
    v->special_map = LM_MALLOC(v->special_cap * sizeof *v->special_map);
    if (!v->special_id || !v->special_off || !v->special_blob || !v->special_map)
        return lm__nomem("special tokens");
    memset(v->special_map, 0xff, v->special_cap * sizeof *v->special_map);
    int32_t k = 0;
    uint64_t off = 0;
    v->special_off[0] = 0;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        size_t len;
        const char *t = lm__tok_text(v, i, &len);
        if (!lm__is_special_type(v->type[i]) || len == 0) continue;
        v->special_id[k] = i;
        v->special_off[k] = off;
        if (v->kind == LM__VOCAB_SPM) {
            off += lm__decode_spm(t, len, v->special_blob + off);
        } else {
            memcpy(v->special_blob + off, t, len);
            off += len;
        }
        v->special_off[++k] = off;
    }
    for (k = 0; k < count; k++) lm__special_insert(v, k);
    return LM_OK;
}

/* For each first byte, the distinct lengths of the special texts starting with it, longest
 * first. Matching then costs one hash lookup per length, not one compare per special
 * token: Gemma has over 6,000 control texts starting with '<'. */
static lm_status lm__build_specials(lm_vocab *v) {
    LM_TRY(lm__collect_specials(v));
    size_t count = (size_t)v->n_special;
    uint64_t *keys = LM_MALLOC((count + 1) * sizeof *keys);
    v->special_len = LM_MALLOC((count + 1) * sizeof *v->special_len);
    if (!keys || !v->special_len) {
        LM_FREE(keys);
        return lm__nomem("special tokens");
    }
    for (size_t k = 0; k < count; k++) {
        size_t len;
        const char *t = lm__special_text(v, (int32_t)k, &len);
        if (len > UINT32_MAX) len = UINT32_MAX; /* cannot match: inputs are < 2 GiB */
        /* first byte ascending, then length descending */
        keys[k] = (uint64_t)(unsigned char)t[0] << 32 | (UINT32_MAX - (uint32_t)len);
    }
    qsort(keys, count, sizeof *keys, lm__cmp_u64);
    int32_t n = 0;
    size_t j = 0;
    for (int b = 0; b < 256; b++) {
        v->special_len_start[b] = n;
        for (; j < count && keys[j] >> 32 == (uint64_t)b; j++) {
            uint32_t len = UINT32_MAX - (uint32_t)keys[j];
            if (n == v->special_len_start[b] || v->special_len[n - 1] != len)
                v->special_len[n++] = len;
        }
    }
    v->special_len_start[256] = n;
    LM_FREE(keys);
    return LM_OK;
}

static lm_status lm__unknown_pre(lm_gguf_str pre) {
    char known[1024] = "";
    size_t k = 0;
    for (size_t i = 0; i < LM__N_PRE; i++)
        for (const char *const *nm = lm__pre_table[i].names; *nm && k < sizeof known; nm++)
            k += (size_t)snprintf(known + k, sizeof known - k, "%s%s", k ? ", " : "", *nm);
    return lm__error(LM_ERR_TOKENIZER,
                     "tokenizer: tokenizer.ggml.pre '%.*s' is not supported (known: %s)",
                     (int)(pre.len > 64 ? 64 : pre.len), pre.data, known);
}

/* The pre-tokenizer row (BPE only; SPM has no pre-tokenizer and ignores the key). */
static lm_status lm__find_pre(lm_vocab *v, const lm_gguf *g) {
    lm_gguf_str pre = {7, "default"};
    if (lm_gguf_get(g, "tokenizer.ggml.pre"))
        LM_TRY(lm_gguf_get_str(g, "tokenizer.ggml.pre", &pre));
    v->pre = lm__pre_find(pre.data, (size_t)pre.len);
    if (!v->pre) {
        if (v->kind == LM__VOCAB_BPE) return lm__unknown_pre(pre);
        v->pre = &lm__pre_table[0];
    }
    return LM_OK;
}

static lm_status lm__compile_pre(lm_vocab *v) {
    if (v->kind != LM__VOCAB_BPE) return LM_OK;
    for (int i = 0; i < LM__MAX_STAGES && v->pre->stages[i]; i++) {
        int err;
        PCRE2_SIZE erroff;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)v->pre->stages[i], PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_UCP, &err, &erroff, NULL);
        if (!re) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            return lm__error(LM_ERR_TOKENIZER, "tokenizer: pre-tokenizer regex %d: %s at %zu", i,
                             (const char *)msg, (size_t)erroff);
        }
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional speed-up; interpreter otherwise */
        v->re[v->n_re++] = re;
    }
    return LM_OK;
}

static lm_status lm__load_template(lm_vocab *v, const lm_gguf *g) {
    if (!lm_gguf_get(g, "tokenizer.chat_template")) return LM_OK;
    lm_gguf_str s;
    LM_TRY(lm_gguf_get_str(g, "tokenizer.chat_template", &s));
    v->chat_template = LM_MALLOC((size_t)s.len + 1);
    if (!v->chat_template) return lm__nomem("chat template");
    memcpy(v->chat_template, s.data, (size_t)s.len);
    v->chat_template[s.len] = '\0';
    return LM_OK;
}

static lm_status lm__check_model(lm_vocab *v, const lm_gguf *g) {
    lm_gguf_str model;
    LM_TRY(lm_gguf_get_str(g, "tokenizer.ggml.model", &model));
    if (lm_gguf_str_eq(model, "gpt2")) {
        v->kind = LM__VOCAB_BPE;
        return LM_OK;
    }
    if (lm_gguf_str_eq(model, "llama")) {
        v->kind = LM__VOCAB_SPM;
        return LM_OK;
    }
    return lm__error(LM_ERR_TOKENIZER,
                     "tokenizer: tokenizer.ggml.model '%.*s' is not supported (known: gpt2, llama)",
                     (int)(model.len > 64 ? 64 : model.len), model.data);
}

static lm_status lm__load_all(lm_vocab *v, const lm_gguf *g) {
    LM_TRY(lm__check_model(v, g));
    LM_TRY(lm__find_pre(v, g));
    LM_TRY(lm__load_tokens(v, g));
    LM_TRY(lm__check_vocab_size(v, g));
    LM_TRY(lm__load_types(v, g));
    if (v->kind == LM__VOCAB_BPE)
        LM_TRY(lm__load_merges(v, g));
    else
        LM_TRY(lm__spm_load_scores(v, g));
    LM_TRY(lm__load_ids(v, g));
    LM_TRY(lm__build_pieces(v));
    LM_TRY(lm__build_specials(v));
    LM_TRY(lm__compile_pre(v));
    LM_TRY(lm__load_template(v, g));
    lm__mark_eog(v);
    return LM_OK;
}

lm_status lm_vocab_load(const lm_gguf *g, lm_vocab **out) {
    if (!g || !out) return lm__error(LM_ERR_INVALID_ARG, "lm_vocab_load: NULL argument");
    *out = NULL;
    lm_vocab *v = LM_CALLOC(1, sizeof *v);
    if (!v) return lm__nomem("vocab");
    lm_status s = lm__load_all(v, g);
    if (s != LM_OK) {
        lm_vocab_free(v);
        return s;
    }
    *out = v;
    return LM_OK;
}

int32_t lm_vocab_n_tokens(const lm_vocab *v) {
    return v->n_tokens;
}
lm_token lm_vocab_bos(const lm_vocab *v) {
    return v->bos;
}
lm_token lm_vocab_eos(const lm_vocab *v) {
    return v->eos;
}
bool lm_vocab_add_bos(const lm_vocab *v) {
    return v->add_bos;
}
const char *lm_vocab_chat_template(const lm_vocab *v) {
    return v->chat_template;
}

bool lm_vocab_is_eog(const lm_vocab *v, lm_token t) {
    return t >= 0 && t < v->n_tokens && v->eog[t];
}

lm_token lm_vocab_find_token(const lm_vocab *v, const char *text, size_t len) {
    int32_t id = lm__vocab_find_text(v, text, len);
    return id >= 0 ? id : LM_TOKEN_NULL;
}

bool lm_vocab_is_control(const lm_vocab *v, lm_token t) {
    return t >= 0 && t < v->n_tokens && v->type[t] == LM__TT_CONTROL;
}

/* ---- tokenizing ----------------------------------------------------------------------- */

void lm__tok_emit(lm__tok_state *st, lm_token t) {
    if (st->n < st->n_max) st->out[st->n] = t;
    st->n++;
}

bool lm__tok_grow(lm__tok_state *st, void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = c <= SIZE_MAX / elem ? LM_REALLOC(*p, c * elem) : NULL;
    if (!q) {
        st->oom = true;
        return false;
    }
    *p = q, *cap = c;
    return true;
}

static bool lm__pair_less(const lm__pair *a, const lm__pair *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->left < b->left;
}

static void lm__heap_push(lm__tok_state *st, lm__pair p) {
    if (!lm__tok_grow(st, (void **)&st->heap, &st->heap_cap, st->heap_n + 1, sizeof p)) return;
    size_t i = st->heap_n++;
    while (i > 0 && lm__pair_less(&p, &st->heap[(i - 1) / 2])) {
        st->heap[i] = st->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    st->heap[i] = p;
}

static lm__pair lm__heap_pop(lm__tok_state *st) {
    lm__pair top = st->heap[0], last = st->heap[--st->heap_n];
    size_t i = 0, n = st->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && lm__pair_less(&st->heap[c + 1], &st->heap[c])) c++;
        if (!lm__pair_less(&st->heap[c], &last)) break;
        st->heap[i] = st->heap[c];
        i = c;
    }
    if (n) st->heap[i] = last;
    return top;
}

static void lm__try_pair(lm__tok_state *st, int32_t left) {
    if (left < 0 || st->syms[left].next < 0) return;
    int32_t a = st->syms[left].id, b = st->syms[st->syms[left].next].id;
    const lm__merge_slot *m = lm__merge_find(st->v, a, b);
    if (m) lm__heap_push(st, (lm__pair){m->rank, left, a, b});
}

static void lm__merge_word(lm__tok_state *st, int32_t n) {
    lm__sym *s = st->syms;
    st->heap_n = 0;
    for (int32_t i = 0; i + 1 < n; i++) lm__try_pair(st, i);
    while (st->heap_n > 0) {
        lm__pair p = lm__heap_pop(st);
        int32_t r = s[p.left].next;
        if (r < 0 || s[p.left].id != p.lid || s[r].id != p.rid) continue; /* stale */
        s[p.left].id = lm__merge_find(st->v, p.lid, p.rid)->merged;
        s[p.left].next = s[r].next;
        if (s[r].next >= 0) s[s[r].next].prev = p.left;
        s[r].id = -1;
        lm__try_pair(st, s[p.left].prev);
        lm__try_pair(st, p.left);
    }
}

/* BPE over one pre-token word of raw bytes. */
static void lm__bpe_word(lm__tok_state *st, const char *w, size_t n) {
    const lm_vocab *v = st->v;
    if (v->pre->ignore_merges && n <= 64) {
        char buf[256];
        size_t l = 0;
        for (size_t i = 0; i < n; i++)
            l += (size_t)lm_utf8_encode(lm_byte_to_unicode((uint8_t)w[i]), buf + l);
        int32_t id = lm__vocab_find_text(v, buf, l);
        if (id >= 0) {
            lm__tok_emit(st, id);
            return;
        }
    }
    if (!lm__tok_grow(st, (void **)&st->syms, &st->syms_cap, n, sizeof *st->syms)) return;
    /* Bytes without a token are skipped, so their neighbours may merge: what HF's BPE
     * without unk does (SmolLM2's vocab lacks e.g. 0x04 and 0xF5..0xFF). */
    int32_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = v->byte_tok[(uint8_t)w[i]];
        if (id >= 0) st->syms[m] = (lm__sym){id, m - 1, m + 1}, m++;
    }
    if (m == 0) return;
    st->syms[m - 1].next = -1;
    lm__merge_word(st, m);
    for (int32_t i = 0; i >= 0; i = st->syms[i].next) lm__tok_emit(st, st->syms[i].id);
}

/* Split s[0..n) with regex stage k (matches and the gaps between them are pieces) and
 * hand each piece to the next stage; after the last stage pieces are BPE words. */
static void lm__pretokenize(lm__tok_state *st, int k, const char *s, size_t n) {
    if (n == 0) return;
    if (k == st->v->n_re) {
        lm__bpe_word(st, s, n);
        return;
    }
    size_t pos = 0, gap = 0;
    while (pos < n) {
        int rc = pcre2_match(st->v->re[k], (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, st->md, NULL);
        if (rc < 0) break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(st->md);
        size_t b = ov[0], e = ov[1];
        if (e == b) { /* empty match: step over one character */
            pos = b + 1;
            while (pos < n && ((unsigned char)s[pos] & 0xC0) == 0x80) pos++;
            continue;
        }
        lm__pretokenize(st, k + 1, s + gap, b - gap);
        lm__pretokenize(st, k + 1, s + b, e - b);
        gap = pos = e;
    }
    lm__pretokenize(st, k + 1, s + gap, n - gap);
}

/* A fragment without special tokens: valid UTF-8 runs are pre-tokenized, each invalid
 * byte is a word of its own. */
static void lm__tokenize_plain(lm__tok_state *st, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0, i = 0;
    while (i < n) {
        int l = lm_utf8_decode(u + i, n - i, NULL);
        if (l > 0) {
            i += (size_t)l;
            continue;
        }
        lm__pretokenize(st, 0, s + run, i - run);
        lm__bpe_word(st, s + i, 1);
        run = ++i;
    }
    lm__pretokenize(st, 0, s + run, n - run);
}

/* Longest added-token text at s[0..n) that may be cut out here (USER_DEFINED always,
 * CONTROL when parse_special), -1 if none. */
static int32_t lm__match_special(const lm_vocab *v, const char *s, size_t n, bool parse_special,
                                 size_t *len) {
    unsigned char c = (unsigned char)s[0];
    for (int32_t k = v->special_len_start[c]; k < v->special_len_start[c + 1]; k++) {
        size_t l = v->special_len[k];
        if (l > n) continue;
        int32_t id = lm__special_find(v, s, l);
        if (id < 0) continue;
        if (v->type[id] == LM__TT_USER_DEFINED ||
            (parse_special && v->type[id] == LM__TT_CONTROL)) {
            *len = l;
            return id;
        }
    }
    return -1;
}

static void lm__tokenize_fragment(lm__tok_state *st, const char *s, size_t n) {
    if (n == 0) return;
    if (st->v->kind == LM__VOCAB_SPM)
        lm__spm_tokenize(st, s, n);
    else
        lm__tokenize_plain(st, s, n);
}

static void lm__tokenize_text(lm__tok_state *st, const char *s, size_t n, bool parse_special) {
    const lm_vocab *v = st->v;
    size_t start = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t l;
        int32_t id = v->special_len_start[c] == v->special_len_start[c + 1]
                         ? -1
                         : lm__match_special(v, s + i, n - i, parse_special, &l);
        if (id < 0) {
            i++;
            continue;
        }
        lm__tokenize_fragment(st, s + start, i - start);
        lm__tok_emit(st, id);
        st->prev_special = true;
        start = i += l;
    }
    lm__tokenize_fragment(st, s + start, n - start);
}

static bool lm__memmem(const char *s, size_t n, const char *w, size_t wn) {
    for (size_t i = 0; i + wn <= n; i++)
        if (s[i] == w[0] && memcmp(s + i, w, wn) == 0) return true;
    return false;
}

int32_t lm_vocab_tokenize(const lm_vocab *v, const char *text, int32_t len, lm_token *out,
                          int32_t n_max, bool add_special, bool parse_special) {
    if (!v || len < 0 || (len > 0 && !text) || n_max < 0 || (n_max > 0 && !out)) {
        lm__error(LM_ERR_INVALID_ARG, "lm_tokenize: bad arguments");
        return INT32_MIN;
    }
    lm__tok_state st = {.v = v, .out = out, .n_max = n_max, .prev_special = true};
    if (v->n_re > 0 && !(st.md = pcre2_match_data_create(1, NULL))) {
        lm__error(LM_ERR_NOMEM, "lm_tokenize: out of memory");
        return INT32_MIN;
    }
    /* SPM: U+2581 in the input is a space (SentencePiece and HF's Gemma read it so) */
    char *norm = NULL;
    if (v->kind == LM__VOCAB_SPM && len >= 3 && lm__memmem(text, (size_t)len, "\xe2\x96\x81", 3)) {
        if (!(norm = LM_MALLOC((size_t)len)))
            st.oom = true;
        else
            len = (int32_t)lm__decode_spm(text, (size_t)len, norm), text = norm;
    }
    if (add_special && v->add_bos) lm__tok_emit(&st, v->bos);
    if (!st.oom) lm__tokenize_text(&st, text, (size_t)len, parse_special);
    if (add_special && v->add_eos) lm__tok_emit(&st, v->eos);
    pcre2_match_data_free(st.md);
    LM_FREE(st.syms);
    LM_FREE(st.heap);
    lm__spm_state_free(&st);
    LM_FREE(norm);
    if (st.oom) {
        lm__error(LM_ERR_NOMEM, "lm_tokenize: out of memory");
        return INT32_MIN;
    }
    return st.n <= n_max ? st.n : -st.n;
}

/* ---- pieces --------------------------------------------------------------------------- */

static size_t lm__piece(const lm_vocab *v, lm_token t, bool special, const char **p) {
    if (t < 0 || t >= v->n_tokens) return 0;
    uint8_t ty = v->type[t];
    if (ty == LM__TT_UNUSED) return 0;
    if ((ty == LM__TT_CONTROL || ty == LM__TT_UNKNOWN) && !special) return 0;
    *p = v->piece_blob + v->piece_off[t];
    return (size_t)(v->piece_off[t + 1] - v->piece_off[t]);
}

int32_t lm_vocab_token_to_piece(const lm_vocab *v, lm_token t, char *buf, int32_t size,
                                bool special) {
    const char *p = NULL;
    size_t n = lm__piece(v, t, special, &p);
    if (n > (size_t)INT32_MAX) return INT32_MIN;
    if ((int32_t)n > size) return -(int32_t)n;
    if (n) memcpy(buf, p, n);
    return (int32_t)n;
}

/* With add_space_prefix, tokenize put a space before the text: the first piece drops it
 * (as llama.cpp and HF's Metaspace decoder do), so the text round trips. */
int32_t lm_vocab_detokenize(const lm_vocab *v, const lm_token *tokens, int32_t n, char *buf,
                            int32_t size, bool special) {
    uint64_t total = 0;
    bool strip = v->kind == LM__VOCAB_SPM && v->add_space_prefix;
    for (int32_t i = 0; i < n; i++) {
        const char *p = NULL;
        size_t l = lm__piece(v, tokens[i], special, &p);
        if (strip && l > 0) {
            if (v->type[tokens[i]] == LM__TT_NORMAL && p[0] == ' ') p++, l--;
            strip = false;
        }
        if (total + l <= (uint64_t)(size > 0 ? size : 0) && l) memcpy(buf + total, p, l);
        total += l;
    }
    if (total > (uint64_t)INT32_MAX) {
        lm__error(LM_ERR_LIMIT, "lm_detokenize: output exceeds INT32_MAX bytes");
        return INT32_MIN;
    }
    return total <= (uint64_t)(size > 0 ? size : 0) ? (int32_t)total : -(int32_t)total;
}
