/* lumen info: metadata, hyper-parameters and the tensor table of a model. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>

int cmd_info(const cli_opts *o) {
    lm_model *m = cli_load_model(o, false);
    if (!m) return 1;
    char desc[128], key[256];
    size_t vcap = 4096;
    char *val = malloc(vcap);
    if (!val) {
        lm_model_free(m);
        return 1;
    }
    lm_model_desc(m, desc, sizeof desc);
    printf("model: %s\n", desc);
    printf("architecture: %s, %d layers, embedding %d, context %d, vocabulary %d\n",
           lm_model_arch(m), lm_model_n_layer(m), lm_model_n_embd(m), lm_model_n_ctx_train(m),
           lm_model_n_vocab(m));
    printf("weights: %.2f MiB\n\nmetadata (%d keys):\n", lm_model_size(m) / 1048576.0,
           lm_model_meta_count(m));
    for (int32_t i = 0; i < lm_model_meta_count(m); i++) {
        int32_t n = lm_model_meta_key(m, i, key, sizeof key);
        if (n < 0) continue;
        n = lm_model_meta_value(m, i, val, vcap);
        if (n < 0 && n != -1) { /* -needed: grow once */
            char *bigger = realloc(val, (size_t)(-n));
            if (bigger) {
                val = bigger;
                vcap = (size_t)(-n);
                n = lm_model_meta_value(m, i, val, vcap);
            }
        }
        printf("  %-40s %s\n", key, n >= 0 ? val : "(unprintable)");
    }
    printf("\ntensors (%d):\n  %-32s %-6s %-24s %s\n", lm_model_tensor_count(m), "name", "type",
           "shape", "bytes");
    for (int32_t i = 0; i < lm_model_tensor_count(m); i++) {
        lm_tensor_desc t;
        if (lm_model_tensor_info(m, i, &t) != LM_OK) continue;
        char shape[96];
        int off = snprintf(shape, sizeof shape, "[");
        for (int d = 0; d < t.n_dims && off < (int)sizeof shape; d++)
            off += snprintf(shape + off, sizeof shape - (size_t)off, "%s%lld", d ? ", " : "",
                            (long long)t.ne[d]);
        if (off < (int)sizeof shape) snprintf(shape + off, sizeof shape - (size_t)off, "]");
        printf("  %-32s %-6s %-24s %llu\n", t.name, t.type, shape, (unsigned long long)t.n_bytes);
    }
    free(val);
    lm_model_free(m);
    return 0;
}
