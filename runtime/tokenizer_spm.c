/* SentencePiece-style tokenizer (tokenizer.ggml.model = llama): Llama 2, Mistral, Phi-3,
 * Gemma. The GGUF holds the pieces, their scores and types; no merges list.
 *
 * One fragment of text (added tokens are already cut out by tokenizer.c):
 *   1. with add_space_prefix, a space goes first when the fragment starts the text or
 *      follows an added token (llama.cpp's rule); every space becomes U+2581 ("▁");
 *   2. the text is split into UTF-8 characters (an invalid byte is a symbol of its own);
 *   3. adjacent symbols whose concatenation is a NORMAL or USER_DEFINED piece are merged,
 *      highest score first, leftmost first on equal scores (SentencePiece's BPE encoder and
 *      llama.cpp's llm_tokenizer_spm; control, byte and unused pieces are never formed, as
 *      in SentencePiece, so plain text cannot turn into <eos>);
 *   4. each symbol left is its piece, or (byte fallback) one <0xXX> token per byte, or
 *      <unk> for a byte without one.
 * Merging is a heap of candidate bigrams: O(n log n) for a fragment of n characters. */
#include "lm_internal.h"
#include "tokenizer_impl.h"
#include "unicode.h"

#include <math.h>
#include <string.h>

struct lm__spm_sym {
    size_t off;         /* into the escaped buffer */
    uint32_t n;         /* bytes; 0 once merged into the left neighbour */
    int32_t prev, next; /* -1 at the ends */
    int32_t id;         /* piece id, -1 if the text is no mergeable piece */
};

struct lm__spm_bigram {
    float score;
    int32_t left, right;
    uint32_t size; /* bytes of the merged text: a changed neighbour makes the entry stale */
    int32_t id;
};

lm_status lm__spm_load_scores(lm_vocab *v, const lm_gguf *g) {
    const char *key = "tokenizer.ggml.scores";
    v->score = LM_CALLOC((size_t)v->n_tokens, sizeof *v->score);
    if (!v->score) return lm__error(LM_ERR_NOMEM, "tokenizer: out of memory for scores");
    const lm_gguf_value *val = lm_gguf_get(g, key);
    if (!val) return LM_OK; /* all equal: merges go leftmost first */
    if (val->type != LM_GGUF_ARRAY ||
        (val->v.arr.type != LM_GGUF_FLOAT32 && val->v.arr.type != LM_GGUF_FLOAT64))
        return lm__error(LM_ERR_TOKENIZER, "tokenizer: '%s' must be an array of floats", key);
    if (val->v.arr.n != (uint64_t)v->n_tokens)
        return lm__error(LM_ERR_TOKENIZER, "tokenizer: '%s' has %llu entries, tokens has %d", key,
                         (unsigned long long)val->v.arr.n, v->n_tokens);
    for (int32_t i = 0; i < v->n_tokens; i++) {
        double x = lm_gguf_arr_f64(val, (uint64_t)i);
        if (isnan(x)) /* would break the heap's order */
            return lm__error(LM_ERR_TOKENIZER, "tokenizer: '%s'[%d] is NaN", key, i);
        v->score[i] = (float)x;
    }
    return LM_OK;
}

void lm__spm_state_free(lm__tok_state *st) {
    LM_FREE(st->buf);
    LM_FREE(st->spm_syms);
    LM_FREE(st->spm_heap);
}

/* Id of a piece that merging may produce, -1 otherwise. */
static int32_t lm__spm_piece_id(const lm_vocab *v, const char *s, size_t n) {
    int32_t id = lm__vocab_find_text(v, s, n);
    if (id < 0) return -1;
    uint8_t t = v->type[id];
    return t == LM__TT_NORMAL || t == LM__TT_USER_DEFINED ? id : -1;
}

/* Heap order: higher score first, then the leftmost. */
static bool lm__bigram_before(const lm__spm_bigram *a, const lm__spm_bigram *b) {
    return a->score != b->score ? a->score > b->score : a->left < b->left;
}

static void lm__bigram_push(lm__tok_state *st, lm__spm_bigram b) {
    if (!lm__tok_grow(st, (void **)&st->spm_heap, &st->spm_heap_cap, st->spm_heap_n + 1, sizeof b))
        return;
    lm__spm_bigram *h = st->spm_heap;
    size_t i = st->spm_heap_n++;
    while (i > 0 && lm__bigram_before(&b, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = b;
}

static lm__spm_bigram lm__bigram_pop(lm__tok_state *st) {
    lm__spm_bigram *h = st->spm_heap;
    lm__spm_bigram top = h[0], last = h[--st->spm_heap_n];
    size_t i = 0, n = st->spm_heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && lm__bigram_before(&h[c + 1], &h[c])) c++;
        if (!lm__bigram_before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (n) h[i] = last;
    return top;
}

static void lm__try_bigram(lm__tok_state *st, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const lm__spm_sym *l = &st->spm_syms[left], *r = &st->spm_syms[right];
    size_t size = (size_t)l->n + r->n; /* the two symbols are adjacent in buf */
    int32_t id = lm__spm_piece_id(st->v, st->buf + l->off, size);
    if (id >= 0)
        lm__bigram_push(st, (lm__spm_bigram){st->v->score[id], left, right, (uint32_t)size, id});
}

/* Escape the fragment into st->buf; its length, or SIZE_MAX on failure. */
static size_t lm__spm_escape(lm__tok_state *st, const char *s, size_t n, bool prefix) {
    size_t pre = prefix ? 1 : 0, spaces = pre;
    for (size_t i = 0; i < n; i++) spaces += s[i] == ' ';
    size_t len = n + pre + 2 * spaces; /* ' ' (1 byte) -> U+2581 (3 bytes) */
    if (len > INT32_MAX) {             /* symbol indices are int32_t; the input is < 2 GiB */
        st->oom = true;
        return SIZE_MAX;
    }
    if (!lm__tok_grow(st, (void **)&st->buf, &st->buf_cap, len + 1, 1)) return SIZE_MAX;
    size_t o = 0;
    for (size_t i = 0; i < n + pre; i++) {
        char c = i < pre ? ' ' : s[i - pre];
        if (c == ' ') {
            memcpy(st->buf + o, "\xe2\x96\x81", 3);
            o += 3;
        } else {
            st->buf[o++] = c;
        }
    }
    return o;
}

/* A symbol left after merging: its piece, else one byte token per byte. */
static void lm__spm_output(lm__tok_state *st, const lm__spm_sym *sym) {
    if (sym->id >= 0) {
        lm__tok_emit(st, sym->id);
        return;
    }
    const lm_vocab *v = st->v;
    for (uint32_t j = 0; j < sym->n; j++) {
        int32_t b = v->byte_tok[(unsigned char)st->buf[sym->off + j]];
        if (b >= 0)
            lm__tok_emit(st, b);
        else if (v->unk >= 0)
            lm__tok_emit(st, v->unk);
    }
}

void lm__spm_tokenize(lm__tok_state *st, const char *s, size_t n) {
    const lm_vocab *v = st->v;
    bool prefix = v->add_space_prefix && st->prev_special;
    st->prev_special = false;
    size_t len = lm__spm_escape(st, s, n, prefix);
    if (len == SIZE_MAX) return;
    if (!lm__tok_grow(st, (void **)&st->spm_syms, &st->spm_syms_cap, len, sizeof *st->spm_syms))
        return;
    lm__spm_sym *sym = st->spm_syms;
    int32_t m = 0;
    for (size_t i = 0; i < len; m++) {
        int l = lm_utf8_decode((const unsigned char *)st->buf + i, len - i, NULL);
        if (l == 0) l = 1; /* an invalid byte: a symbol that falls back to its byte token */
        sym[m] = (lm__spm_sym){i, (uint32_t)l, m - 1, m + 1, lm__spm_piece_id(v, st->buf + i, l)};
        i += (size_t)l;
    }
    if (m == 0) return;
    sym[m - 1].next = -1;

    st->spm_heap_n = 0;
    for (int32_t i = 1; i < m; i++) lm__try_bigram(st, i - 1, i);
    while (st->spm_heap_n > 0) {
        lm__spm_bigram b = lm__bigram_pop(st);
        lm__spm_sym *l = &sym[b.left], *r = &sym[b.right];
        if (l->n == 0 || r->n == 0 || l->next != b.right || l->n + r->n != b.size) continue;
        l->n = b.size;
        l->id = b.id;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = b.left;
        lm__try_bigram(st, l->prev, b.left);
        lm__try_bigram(st, b.left, l->next);
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next) lm__spm_output(st, &sym[i]);
}
