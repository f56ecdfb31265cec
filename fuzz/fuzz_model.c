/* libFuzzer target for model loading from GGUF bytes: hyper-parameter and tensor checks,
 * then (when a file passes them) a context and a two-token decode.
 *
 *   fuzz_model --make-seeds DIR   writes tiny valid models (made by the test helpers'
 *                                 generator, so nothing binary lives in git) and exits. */
#include "helpers/tiny_model.h"
#include "lumen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static int fd = -1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* lm_model_load opens a path: hand it an in-memory file */
    if (fd < 0) fd = memfd_create("lumen-fuzz-model", 0);
    if (fd < 0 || ftruncate(fd, 0) != 0) return 0;
    if (size && pwrite(fd, data, size, 0) != (ssize_t)size) return 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    lm_model_params mp = lm_model_default_params();
    mp.n_threads = 1;
    lm_model *m = NULL;
    if (lm_model_load(path, &mp, &m) != LM_OK) return 0;
    lm_context_params cp = lm_context_default_params();
    cp.n_ctx = 8;
    cp.n_batch = 4;
    lm_context *ctx = NULL;
    if (lm_context_create(m, &cp, &ctx) == LM_OK) {
        lm_token t[2] = {0, lm_model_n_vocab(m) - 1};
        lm_batch b = lm_batch_simple(t, 2);
        lm_decode(ctx, &b);
        lm_context_free(ctx);
    }
    lm_model_free(m);
    return 0;
}

static int make_seeds(const char *dir) {
    lm_type types[] = {LM_TYPE_F32, LM_TYPE_Q8_0, LM_TYPE_Q4_1};
    int bad = 0;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        lm_tiny_spec spec = lm_tiny_default_spec();
        spec.n_embd = 32;
        spec.n_ff = 32;
        spec.n_layer = 1;
        spec.wtype = types[i];
        spec.tied = i != 1;
        char path[4096];
        snprintf(path, sizeof path, "%s/tiny_%zu.gguf", dir, i);
        bad += !lm_tiny_write(&spec, path);
    }
    /* one seed per family, so mutations reach its tensors and keys (biases, q/k norms,
     * post-norms, sliding window, fused tensors, RoPE factor vectors) */
    static const char *const archs[] = {"qwen2", "qwen3", "gemma2", "gemma3", "phi3", "llama"};
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++) {
        lm_tiny_spec spec = lm_tiny_default_spec();
        spec.arch = archs[i];
        spec.n_embd = 32;
        spec.n_ff = 32;
        spec.n_layer = 2;
        spec.head_dim = strcmp(archs[i], "gemma3") == 0 ? 16 : 0;
        spec.n_swa = 2;
        spec.longrope = strcmp(archs[i], "phi3") == 0;
        spec.n_ctx_orig = 4;
        spec.rope_freqs = strcmp(archs[i], "llama") == 0;
        char path[4096];
        snprintf(path, sizeof path, "%s/tiny_%s.gguf", dir, archs[i]);
        bad += !lm_tiny_write(&spec, path);
    }
    return bad;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    for (int i = 1; i + 1 < *argc; i++)
        if (strcmp((*argv)[i], "--make-seeds") == 0) exit(make_seeds((*argv)[i + 1]) ? 1 : 0);
    return 0;
}
