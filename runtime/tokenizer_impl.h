/* Internals shared by the tokenizer files: tokenizer.c (loading, byte-level BPE, pieces,
 * the lm_vocab_* entry points) and tokenizer_spm.c (SentencePiece-style merging). Nothing
 * outside runtime/tokenizer*.c includes this. */
#ifndef LM_TOKENIZER_IMPL_H
#define LM_TOKENIZER_IMPL_H

#include "tokenizer.h"

#include <pcre2.h>

/* tokenizer.ggml.token_type values (llama.cpp's) */
enum {
    LM__TT_UNDEFINED = 0,
    LM__TT_NORMAL = 1,
    LM__TT_UNKNOWN = 2,
    LM__TT_CONTROL = 3,
    LM__TT_USER_DEFINED = 4,
    LM__TT_UNUSED = 5,
    LM__TT_BYTE = 6,
};

#define LM__MAX_STAGES 3

/* tokenizer.ggml.model: "gpt2" (byte-level BPE) or "llama" (SentencePiece style). */
typedef enum lm__vocab_kind { LM__VOCAB_BPE, LM__VOCAB_SPM } lm__vocab_kind;

typedef struct lm__pre_row {
    const char *names[16];              /* tokenizer.ggml.pre values, NULL-ended */
    const char *stages[LM__MAX_STAGES]; /* regexes applied in order, NULL-ended */
    bool ignore_merges;                 /* a word that is itself a token skips BPE */
    bool add_bos;                       /* default when add_bos_token is absent */
} lm__pre_row;

typedef struct lm__merge_slot {
    uint64_t key; /* (left << 32 | right) + 1; 0 = empty */
    int32_t rank;
    int32_t merged;
} lm__merge_slot;

struct lm_vocab {
    lm__vocab_kind kind;
    int32_t n_tokens;
    char *text_blob;     /* token texts, back to back */
    uint64_t *text_off;  /* n_tokens + 1 offsets into text_blob */
    char *piece_blob;    /* decoded bytes of each token (normal: byte-level or ▁ decoded) */
    uint64_t *piece_off; /* n_tokens + 1 */
    uint8_t *type;       /* token_type, LM__TT_* */
    uint8_t *eog;        /* 1 for end-of-generation tokens */
    float *score;        /* SPM: tokenizer.ggml.scores (all 0 when absent); BPE: NULL */

    int32_t *str_map; /* open addressing: token id or -1, hashed by text */
    uint64_t str_cap; /* power of two */
    lm__merge_slot *merges;
    uint64_t merge_cap;    /* power of two */
    int32_t byte_tok[256]; /* BPE: token of the byte's GPT-2 char; SPM: <0xXX>; -1 if none */

    /* CONTROL / USER_DEFINED tokens, found in the text by hash of their text (SPM: with
     * U+2581 read as a space, as in the input); for each first byte, the distinct text
     * lengths, longest first. */
    int32_t n_special;
    int32_t *special_id;   /* n_special token ids */
    char *special_blob;    /* their (normalized) texts */
    uint64_t *special_off; /* n_special + 1 */
    int32_t *special_map;  /* open addressing: index into special_id or -1 */
    uint64_t special_cap;  /* power of two */
    uint32_t *special_len; /* distinct lengths, grouped by first byte */
    int32_t special_len_start[257];

    lm_token bos, eos, eot, eom, unk, pad;
    bool add_bos, add_eos;
    bool add_space_prefix; /* SPM: a space before the text and after each special token */
    const lm__pre_row *pre;
    pcre2_code *re[LM__MAX_STAGES];
    int n_re;
    char *chat_template;
};

/* BPE scratch */
typedef struct lm__sym {
    int32_t id;
    int32_t prev, next; /* -1 at the ends */
} lm__sym;

typedef struct lm__pair {
    int32_t rank, left; /* heap order: rank, then position */
    int32_t lid, rid;   /* ids when pushed: stale entries are skipped */
} lm__pair;

/* SPM scratch (tokenizer_spm.c) */
typedef struct lm__spm_sym lm__spm_sym;
typedef struct lm__spm_bigram lm__spm_bigram;

/* Per-call state: output cursor, PCRE2 match data and scratch buffers. */
typedef struct lm__tok_state {
    const lm_vocab *v;
    lm_token *out;
    int32_t n_max, n;
    bool oom;
    bool prev_special; /* SPM: the last thing emitted was a special token (or nothing yet) */
    pcre2_match_data *md;
    lm__sym *syms;
    size_t syms_cap;
    lm__pair *heap;
    size_t heap_n, heap_cap;
    char *buf; /* SPM: the escaped fragment */
    size_t buf_cap;
    lm__spm_sym *spm_syms;
    size_t spm_syms_cap;
    lm__spm_bigram *spm_heap;
    size_t spm_heap_n, spm_heap_cap;
} lm__tok_state;

/* Token id of a text, -1 if none (the last id when texts repeat). */
int32_t lm__vocab_find_text(const lm_vocab *v, const char *s, size_t n);
void lm__tok_emit(lm__tok_state *st, lm_token t);
/* Make *p hold at least `need` elements of `elem` bytes; false (st->oom set) on failure. */
bool lm__tok_grow(lm__tok_state *st, void **p, size_t *cap, size_t need, size_t elem);

/* tokenizer_spm.c */
lm_status lm__spm_load_scores(lm_vocab *v, const lm_gguf *g);
/* One fragment of text without special tokens. */
void lm__spm_tokenize(lm__tok_state *st, const char *s, size_t n);
void lm__spm_state_free(lm__tok_state *st);

#endif
