/* lumen tokenize: token ids and pieces of a text. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Print a piece with control bytes escaped so every token stays on one line. */
static void print_piece(const char *p, int32_t n) {
    putchar('\'');
    for (int32_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\n')
            fputs("\\n", stdout);
        else if (c == '\t')
            fputs("\\t", stdout);
        else if (c == '\'' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    putchar('\'');
}

int cmd_tokenize(const cli_opts *o) {
    if (!o->prompt) {
        fprintf(stderr, "lumen tokenize: error: no text given (-p TEXT)\n");
        return 1;
    }
    lm_model *m = cli_load_model(o, true);
    if (!m) return 1;
    int32_t len = (int32_t)strlen(o->prompt);
    int32_t need = lm_tokenize(m, o->prompt, len, NULL, 0, false, !o->no_special);
    if (need == INT32_MIN) {
        cli_error(LM_ERR_TOKENIZER);
        lm_model_free(m);
        return 1;
    }
    int32_t cap = need < 0 ? -need : need;
    lm_token *toks = malloc(((size_t)cap + 1) * sizeof *toks);
    int32_t n = toks ? lm_tokenize(m, o->prompt, len, toks, cap + 1, false, !o->no_special) : -1;
    if (n < 0) {
        cli_error(LM_ERR_TOKENIZER);
        free(toks);
        lm_model_free(m);
        return 1;
    }
    char piece[512];
    for (int32_t i = 0; i < n; i++) {
        if (o->ids_only) {
            printf("%s%d", i ? " " : "", toks[i]);
            continue;
        }
        int32_t pl = lm_token_to_piece(m, toks[i], piece, sizeof piece, true);
        printf("%6d -> ", toks[i]);
        print_piece(piece, pl > 0 ? pl : 0);
        putchar('\n');
    }
    if (o->ids_only) putchar('\n');
    free(toks);
    lm_model_free(m);
    return 0;
}
