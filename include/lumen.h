/* lumen.h: the public C API of Lumen, an inference engine for GGUF language models.
 *
 * Conventions:
 * - Handles are opaque; whoever creates one frees it; every *_free accepts NULL.
 * - Functions that can fail return lm_status; on failure lm_last_error() gives a
 *   message naming the file, tensor, field or parameter at fault (per thread).
 * - Functions that fill a caller's buffer return the number of bytes/items written,
 *   or the negated size needed when the buffer is too small.
 */
#ifndef LUMEN_H
#define LUMEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LM_API_VERSION    1
#define LM_VERSION_STRING "0.1.0"

/* Status codes: one table generates the enum and the messages. */
#define LM_STATUS_TABLE(X)                                                                         \
    X(OK, 0, "success")                                                                            \
    X(ERR_INVALID_ARG, 1, "invalid argument")                                                      \
    X(ERR_IO, 2, "I/O error")                                                                      \
    X(ERR_FORMAT, 3, "malformed GGUF file")                                                        \
    X(ERR_UNSUPPORTED, 4, "unsupported feature")                                                   \
    X(ERR_NOMEM, 5, "out of memory")                                                               \
    X(ERR_MODEL, 6, "invalid model")                                                               \
    X(ERR_CONTEXT_FULL, 7, "context is full")                                                      \
    X(ERR_BACKEND, 8, "backend error")                                                             \
    X(ERR_LIMIT, 9, "resource limit exceeded")                                                     \
    X(ERR_INTERRUPTED, 10, "interrupted")                                                          \
    X(ERR_TOKENIZER, 11, "tokenizer error")

typedef enum lm_status {
#define LM_X_ENUM(name, code, msg) LM_##name = code,
    LM_STATUS_TABLE(LM_X_ENUM)
#undef LM_X_ENUM
} lm_status;

/* Short fixed text for a status code. */
const char *lm_status_str(lm_status s);
/* Detail of the last failure on this thread ("" if none). */
const char *lm_last_error(void);

/* Logging: by default warnings and errors go to stderr. */
typedef enum lm_log_level { LM_LOG_DEBUG, LM_LOG_INFO, LM_LOG_WARN, LM_LOG_ERROR } lm_log_level;
typedef void (*lm_log_fn)(lm_log_level level, const char *msg, void *user);
void lm_log_set(lm_log_fn fn, void *user, lm_log_level min_level);

/* ---- model ---------------------------------------------------------------------------- */

typedef struct lm_model lm_model;
typedef struct lm_context lm_context;
typedef struct lm_sampler lm_sampler;

typedef struct lm_model_params {
    const char *backend; /* "cpu" (default; NULL means cpu), "vulkan", "cuda": lm_backends() */
    int32_t device;      /* the backend's device, an index as lm_devices() lists it; -1 = the
                            backend's default (LUMEN_VULKAN_DEVICE / LUMEN_CUDA_DEVICE, else the
                            first usable one). Out of range: LM_ERR_INVALID_ARG naming the valid
                            ones. The CPU has one device, 0. */
    int32_t n_threads;   /* CPU threads; 0 = number of cores */
    bool vocab_only;     /* load metadata and tokenizer only, no weights */
    size_t max_memory;   /* refuse models needing more bytes than this; 0 = device's */
} lm_model_params;

lm_model_params lm_model_default_params(void);
lm_status lm_model_load(const char *path, const lm_model_params *params, lm_model **out);
void lm_model_free(lm_model *model);

int32_t lm_model_n_vocab(const lm_model *model);
int32_t lm_model_n_ctx_train(const lm_model *model);
int32_t lm_model_n_embd(const lm_model *model);
int32_t lm_model_n_layer(const lm_model *model);
/* Bytes of weights held by the backend. */
uint64_t lm_model_size(const lm_model *model);
/* Architecture name as in general.architecture, e.g. "llama". */
const char *lm_model_arch(const lm_model *model);
/* One-line description ("llama 135M Q4_1 ..."); returns length or -needed. */
int32_t lm_model_desc(const lm_model *model, char *buf, size_t size);

/* Metadata and tensor table (for `lumen info`). Values are rendered as text; long arrays
 * are abbreviated. Return length written or -needed; -1 on a bad index. */
int32_t lm_model_meta_count(const lm_model *model);
int32_t lm_model_meta_key(const lm_model *model, int32_t i, char *buf, size_t size);
int32_t lm_model_meta_value(const lm_model *model, int32_t i, char *buf, size_t size);

typedef struct lm_tensor_desc {
    const char *name;
    const char *type; /* "Q4_1", "F32", ... */
    int32_t n_dims;
    int64_t ne[4];
    uint64_t n_bytes;
} lm_tensor_desc;
int32_t lm_model_tensor_count(const lm_model *model);
lm_status lm_model_tensor_info(const lm_model *model, int32_t i, lm_tensor_desc *out);

/* ---- tokens --------------------------------------------------------------------------- */

typedef int32_t lm_token;
#define LM_TOKEN_NULL (-1)

lm_token lm_token_bos(const lm_model *model); /* LM_TOKEN_NULL if none */
lm_token lm_token_eos(const lm_model *model);
/* True for tokens that end generation (EOS, EOT, <|im_end|>, ...). */
bool lm_token_is_eog(const lm_model *model, lm_token token);
/* True if the model wants BOS prepended when add_special is set. */
bool lm_model_add_bos(const lm_model *model);

/* Tokenize len bytes of text. add_special: add BOS/EOS as the model asks. parse_special:
 * recognise special/control token texts (e.g. "<|im_start|>") as single tokens.
 * Returns the number of tokens, or -needed when n_max is too small. */
int32_t lm_tokenize(const lm_model *model, const char *text, int32_t len, lm_token *tokens,
                    int32_t n_max, bool add_special, bool parse_special);
/* Bytes of one token (may be a partial UTF-8 sequence). special: render control tokens.
 * Returns bytes written or -needed. */
int32_t lm_token_to_piece(const lm_model *model, lm_token token, char *buf, int32_t size,
                          bool special);
/* Concatenated bytes of tokens. Returns bytes written or -needed. */
int32_t lm_detokenize(const lm_model *model, const lm_token *tokens, int32_t n, char *buf,
                      int32_t size, bool special);

/* ---- chat templates ------------------------------------------------------------------- */

typedef struct lm_chat_message {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
} lm_chat_message;

/* Render messages with a template. tmpl: a known template name ("chatml", ...) or NULL
 * to recognise it from the model's tokenizer.chat_template. add_assistant: open an
 * assistant turn at the end. Returns bytes written (excluding NUL) or -needed; on an
 * unknown template name returns INT32_MIN and sets lm_last_error(). */
int32_t lm_chat_apply(const lm_model *model, const char *tmpl, const lm_chat_message *msgs,
                      size_t n_msgs, bool add_assistant, char *buf, int32_t size);
/* Names of the templates Lumen knows, NULL-terminated. */
const char *const *lm_chat_templates(void);

/* ---- context and decoding ------------------------------------------------------------- */

/* Element type of the KV cache, numbered as GGUF types. Q8_0 (blocks of 32 values with an
 * f16 scale, as ggml's) takes 53 % of F16's memory; it needs head_dim % 32 == 0. */
typedef enum lm_kv_type {
    LM_KV_DEFAULT = 0, /* F16, unless the environment sets LUMEN_KV_TYPE=f16|q8_0 */
    LM_KV_F16 = 1,
    LM_KV_Q8_0 = 8,
} lm_kv_type;

typedef struct lm_context_params {
    int32_t n_ctx;      /* positions per sequence; 0 = min(model's training context, 4096) */
    int32_t n_batch;    /* max tokens per lm_decode call */
    int32_t n_seq_max;  /* sequences with their own KV slot */
    int32_t n_threads;  /* 0 = model's */
    lm_kv_type kv_type; /* other values: LM_ERR_INVALID_ARG; CUDA: F16 only (UNSUPPORTED) */
} lm_context_params;

/* "f16" or "q8_0" (any case) -> *out; LM_ERR_INVALID_ARG naming the valid ones otherwise. */
lm_status lm_kv_type_from_name(const char *name, lm_kv_type *out);
/* "f16", "q8_0", or NULL for a value that is not a KV type. */
const char *lm_kv_type_name(lm_kv_type t);

lm_context_params lm_context_default_params(void);
lm_status lm_context_create(lm_model *model, const lm_context_params *params, lm_context **out);
void lm_context_free(lm_context *ctx);
int32_t lm_context_n_ctx(const lm_context *ctx);

/* A batch of tokens from one or more sequences. Within a sequence, positions must continue
 * that sequence's KV cache (pos == current length, then +1 for each further token). */
typedef struct lm_batch {
    int32_t n_tokens;
    const lm_token *token;
    const int32_t *pos;    /* NULL: continue each sequence from its current length */
    const int32_t *seq_id; /* NULL: all in sequence 0 */
    const int8_t *logits;  /* NULL: logits for the last token only */
} lm_batch;

/* Convenience: a single-sequence batch (sequence 0, positions continue). */
lm_batch lm_batch_simple(const lm_token *tokens, int32_t n);

/* Run the model over a batch. Errors: LM_ERR_CONTEXT_FULL when a sequence would exceed
 * n_ctx, LM_ERR_INVALID_ARG for bad ids/positions, LM_ERR_INTERRUPTED on abort. The KV
 * cache is unchanged when decode fails before computing. */
lm_status lm_decode(lm_context *ctx, const lm_batch *batch);
/* Logits of the i-th token that asked for them in the last batch (i < 0: from the end). */
const float *lm_get_logits(lm_context *ctx, int32_t i);
/* Tokens currently cached for a sequence. */
int32_t lm_kv_seq_len(const lm_context *ctx, int32_t seq_id);
/* Bytes of KV cache one decode step reads for a sequence holding n_past positions: every
 * layer's K and V rows the new token attends to (at most the window on sliding layers). */
uint64_t lm_kv_read_bytes(const lm_context *ctx, int32_t n_past);
/* Drop positions >= p0 of a sequence (p0 = 0 clears it). */
lm_status lm_kv_seq_trim(lm_context *ctx, int32_t seq_id, int32_t p0);
/* Copy the first n positions of sequence src into dst (prefix reuse). */
lm_status lm_kv_seq_copy(lm_context *ctx, int32_t src, int32_t dst, int32_t n);

/* Abort: decode polls fn between layers; a true return stops it with LM_ERR_INTERRUPTED. */
typedef bool (*lm_abort_fn)(void *user);
void lm_context_set_abort(lm_context *ctx, lm_abort_fn fn, void *user);

/* Timings of this context since creation or the last reset. */
typedef struct lm_perf {
    double t_load_ms;
    double t_prefill_ms;
    int64_t n_prefill;
    double t_decode_ms;
    int64_t n_decode;
} lm_perf;
lm_perf lm_context_perf(const lm_context *ctx);
void lm_context_perf_reset(lm_context *ctx);

/* ---- sampling ------------------------------------------------------------------------- */

typedef struct lm_sampler_params {
    float temperature;      /* <= 0: greedy */
    int32_t top_k;          /* <= 0: off */
    float top_p;            /* >= 1: off */
    float min_p;            /* <= 0: off */
    float repeat_penalty;   /* 1: off */
    int32_t penalty_last_n; /* tokens considered for penalties; 0: off, -1: all accepted */
    float frequency_penalty;
    float presence_penalty;
    uint64_t seed;
} lm_sampler_params;

lm_sampler_params lm_sampler_default_params(void);
lm_status lm_sampler_create(const lm_sampler_params *params, int32_t n_vocab, lm_sampler **out);
void lm_sampler_free(lm_sampler *s);
/* Pick a token from logits (n_vocab floats; not modified). */
lm_token lm_sampler_sample(lm_sampler *s, const float *logits);
/* Record a token of the sequence (prompt or generated) for the penalties. */
void lm_sampler_accept(lm_sampler *s, lm_token token);
/* Forget accepted tokens and reseed. */
void lm_sampler_reset(lm_sampler *s, uint64_t seed);

/* ---- quantization --------------------------------------------------------------------- */

/* A target of lm_quantize_file: its name as llama.cpp's quantize spells it ("Q4_K_M"), the
 * general.file_type it writes (llama.cpp's LLAMA_FTYPE numbering), the bits per weight of
 * its main block type (mixes keep some tensors at more), and what it does. */
typedef struct lm_quantize_type {
    const char *name;
    int32_t ftype;
    float bpw;
    const char *desc;
} lm_quantize_type;
/* The targets in a fixed order; *n receives their count. */
const lm_quantize_type *lm_quantize_types(int32_t *n);

/* Reported before the first tensor (i_tensor 0) and after each one is written. */
typedef struct lm_quantize_progress {
    int32_t i_tensor, n_tensors;  /* tensors written so far, of n */
    const char *name;             /* the tensor just written (NULL before the first) */
    const char *type_in;          /* its type in the input file ("F32") */
    const char *type_out;         /* its type in the output ("Q4_K") */
    uint64_t bytes_in, bytes_out; /* tensor bytes read and written so far */
    uint64_t total_in;            /* tensor bytes of the whole input */
} lm_quantize_progress;
/* Return false to cancel (lm_quantize_file then fails with LM_ERR_INTERRUPTED). */
typedef bool (*lm_quantize_progress_fn)(const lm_quantize_progress *p, void *user);

typedef struct lm_quantize_params {
    const char *type;      /* a name from lm_quantize_types(), any case */
    int32_t n_threads;     /* 0 = number of cores */
    bool allow_requantize; /* accept already-quantized input tensors (dequantized first) */
    lm_quantize_progress_fn progress; /* optional */
    void *progress_user;
} lm_quantize_params;

typedef struct lm_quantize_stats {
    int32_t n_tensors;
    int32_t n_quantized;          /* tensors whose type changed */
    int32_t n_requantized;        /* of those, tensors that were already quantized */
    int32_t n_fallback;           /* tensors whose rows did not fit the target's block size */
    uint64_t bytes_in, bytes_out; /* tensor data */
    uint64_t n_elements;
    double t_ms;
} lm_quantize_stats;

lm_quantize_params lm_quantize_default_params(void);
/* Quantize the GGUF model at in to out: every key kept (general.file_type,
 * general.quantization_version and general.quantized_by set, split keys dropped), 2-D
 * weights converted by the type's recipe (llama.cpp's mixes: see docs), 1-D tensors and
 * norms kept as they are. The file is written to "<out>.tmp" and renamed to out when
 * complete: on failure nothing is left at out (an existing out is untouched). Notes (row
 * fallbacks, re-quantization) go to the log at LM_LOG_WARN. stats may be NULL.
 * Errors: LM_ERR_INVALID_ARG (unknown type: the message lists the valid ones; NULL paths),
 * LM_ERR_IO (cannot read in, cannot create or write out), LM_ERR_FORMAT/LM_ERR_LIMIT (a
 * malformed input), LM_ERR_UNSUPPORTED (a quantized input without allow_requantize, a
 * tensor type Lumen cannot convert), LM_ERR_MODEL (non-finite weights), LM_ERR_NOMEM,
 * LM_ERR_INTERRUPTED (progress returned false). */
lm_status lm_quantize_file(const char *in, const char *out, const lm_quantize_params *params,
                           lm_quantize_stats *stats);

/* ---- benchmarking (lumen bench) ------------------------------------------------------- */

/* The backend holding the model's weights ("cpu") and its device, as the backend names it
 * ("AMD EPYC 7B13 (2 threads)"). Never NULL. */
const char *lm_model_backend_name(const lm_model *model);
const char *lm_model_device_name(const lm_model *model);

/* Sustained main-memory read bandwidth, STREAM-like: n_threads threads (0 = cores) each sum
 * their share of a buffer of *bytes bytes (0 = max(256 MiB, 8 x the last-level cache); the
 * size used is written back), touched once first; the best of 6 passes, in bytes/s.
 * Errors: LM_ERR_NOMEM, LM_ERR_INVALID_ARG. */
lm_status lm_bench_mem_bandwidth(int32_t n_threads, size_t *bytes, double *bytes_per_s);
/* Peak single-precision multiply-add rate: n_threads threads (0 = cores) run independent
 * FMA chains on the widest vector unit the CPU has; FLOP/s (an FMA counts 2) in *flops_per_s.
 * *isa (optional) names the unit used ("avx512f", "avx2+fma", "sse2", "scalar"). */
lm_status lm_bench_flops_peak(int32_t n_threads, double *flops_per_s, const char **isa);

/* Decode's compute roof: the rate, in weight bytes/s, at which the model's backend runs a
 * decode step's matrix ops as the forward pass calls them (q, k, v as one op, wo, gate and up
 * as one, down, the output head; one column) while their weights are in cache, so that
 * memory is not what bounds them. Each distinct op (its weights' types and shapes) is timed on
 * one layer's tensors (a weight's first rows when it passes its share of a quarter of the
 * host's last-level cache: a row group costs the same whatever N is), in batches of calls for at
 * least min_time_s (<= 0: 0.05 s) after a warm-up, the best batch; the roof is one step's matrix
 * bytes over their summed times. It includes what a call costs besides its kernels (x's
 * quantization, the threads' start and finish), and none of the step's other ops. Decode is
 * bandwidth-bound where lm_bench_mem_bandwidth is the lower of the two. Not while a context
 * of the model decodes (they share the backend). Errors: LM_ERR_INVALID_ARG (NULL, a
 * vocab_only model), LM_ERR_NOMEM, the backend's own. */
typedef struct lm_bench_roof {
    double bytes_per_s;  /* one step's matrix weight bytes over their in-cache time */
    uint64_t step_bytes; /* those bytes: every projection of every layer, and the head */
    int32_t n_ops;       /* distinct matrix ops timed */
} lm_bench_roof;
lm_status lm_bench_decode_roof(const lm_model *model, double min_time_s, lm_bench_roof *out);

/* Decode's step roof: the seconds a whole decode step takes when its weights come from cache:
 * all of its work (attention over n_past + i cached positions, norms, the threads' hand-offs,
 * the logits' download) but the weights' memory traffic. The model's step runs on a copy
 * whose layers read the weights of the first layer with the same tensor types, shapes and
 * layouts (a few layers' weights, which stay in cache where cached_bytes fits the host's
 * last-level cache: see fits) and whose head is its first rows (the compute roof's cut); the
 * rest of the head's rows are added from the slope between a timing of those rows in cache
 * and of half of them. Still in the step: the KV cache's reads (their memory traffic too, at
 * depth), and the logits' download and final soft-cap of the head rows only. n_gen
 * single-token steps after n_past positions are filled (as a tg test after its depth and
 * prompt), in a context like *cp (NULL: defaults; n_ctx and n_seq_max are set here; only
 * created, and so checked, where the copy fits), for at least min_time_s (<= 0: 0.2 s) after a
 * warm-up run; the best run's mean step. Weight bytes per token over step_s bound decode where
 * memory does not; the matrix ops' roof (lm_bench_decode_roof) is above it by the step's other
 * work. Not while a context of the model decodes. Errors: LM_ERR_INVALID_ARG (NULL, vocab_only,
 * n_past < 0, n_gen < 1, either above 2^24), LM_ERR_NOMEM, lm_context_create's and the backend's
 * own. */
typedef struct lm_bench_step_roof {
    double step_s;         /* seconds per decode step, weights in cache; 0 where !fits */
    int32_t layer_kinds;   /* distinct layers (tensor types and shapes) whose weights were read */
    int64_t head_rows;     /* the head's rows in the timed step (all: the head fits the cache) */
    uint64_t cached_bytes; /* the distinct layers' and the head rows' weight bytes */
    bool fits; /* cached_bytes <= the host's last-level cache: else not a roof, and not timed */
} lm_bench_step_roof;
lm_status lm_bench_decode_step_roof(const lm_model *model, const lm_context_params *cp,
                                    int32_t n_past, int32_t n_gen, double min_time_s,
                                    lm_bench_step_roof *out);

/* One timed op case of `lumen bench --ops`: a row of the op-case table shared with the op
 * tests (runtime/op_cases.c), run on a backend with random inputs. */
typedef struct lm_bench_op_result {
    char desc[192];   /* "mul_mat Q4_1 k=576 n=1536 m=1" (the op tests' description) */
    const char *op;   /* "mul_mat" */
    const char *type; /* weights / cache / table type ("Q4_1"; "F32" for plain ops) */
    int64_t k, n, m;  /* the case's shape fields (see runtime/op_cases.h) */
    int32_t n_calls;  /* timed calls */
    double t_mean_us; /* mean wall time per call (begin + op + end + sync) */
    double t_sd_us;   /* its standard deviation over the calls */
    double bytes;     /* bytes one call must move at least: operands read + results written */
    double flops;     /* floating-point (or integer multiply-add) operations, 2 per MAC */
    int32_t n_copies; /* copies of the weights / caches cycled so they come from memory */
    char device[160]; /* the backend's device name */
} lm_bench_op_result;

/* Called after each case (i of n); return false to stop early. */
typedef bool (*lm_bench_op_fn)(const lm_bench_op_result *r, int32_t i, int32_t n, void *user);

typedef struct lm_bench_ops_params {
    const char *backend; /* NULL = "cpu" */
    int32_t n_threads;   /* 0 = cores */
    const char *filter;  /* run cases whose desc contains this (NULL or "" = all) */
    double min_time_s;   /* time each case for at least this long (<= 0: 0.25 s) */
    size_t cold_bytes;   /* weights/caches are cycled over copies filling this many bytes,
                            so each call reads them from memory (0 = max(128 MiB, 4 x LLC));
                            less than one operand's size (1): a single copy, kept in cache */
    int32_t device;      /* the backend's device index; -1 = its default (as lm_model_params) */
} lm_bench_ops_params;

lm_bench_ops_params lm_bench_ops_default_params(void);
/* Number of bench op cases that match filter (NULL: all). */
int32_t lm_bench_ops_count(const char *filter);
/* Time every matching case of the bench op table. Errors: LM_ERR_INVALID_ARG (no case
 * matches the filter: the message says so), backend creation errors, LM_ERR_NOMEM, an op's
 * own error, LM_ERR_INTERRUPTED when fn returned false. */
lm_status lm_bench_ops(const lm_bench_ops_params *params, lm_bench_op_fn fn, void *user);

/* ---- backends and devices (lumen devices, --backend, --device) ------------------------- */

/* Names of the backends compiled in ("cuda", "vulkan", "cpu"), NULL-terminated. */
const char *const *lm_backends(void);

typedef struct lm_device_info {
    char backend[16];  /* "cpu", "vulkan" or "cuda" */
    int32_t index;     /* what lm_model_params.device selects */
    char name[256];    /* "llvmpipe (LLVM 15.0.7, 256 bits)", "AMD EPYC 7B13" */
    char type[16];     /* "cpu", "discrete", "integrated", "virtual" or "other" */
    char detail[256];  /* backend-specific facts on one line (SIMD level, API version, ...) */
    uint64_t memory;   /* bytes of device memory; 0 = unknown (the CPU: main memory) */
    int32_t n_cores;   /* CPU: cores online; 0 elsewhere */
    bool usable;       /* Lumen can run on it */
    char why_not[160]; /* when not usable: what is missing */
    /* GPU facts (Vulkan); 0 / false / empty where the backend does not report them */
    char driver[256];          /* driver name and version: "llvmpipe Mesa 22.3.6 (LLVM 15.0.6)" */
    int32_t subgroup_size;     /* threads that run in lockstep (Vulkan subgroup); 0 = unknown */
    bool fp16, int8, fp64;     /* shader arithmetic on halves, 8-bit integers, doubles */
    bool storage16, storage8;  /* 16- and 8-bit values in storage buffers */
    bool cooperative_matrix;   /* matrix-multiply units (VK_KHR_cooperative_matrix) */
    uint64_t max_buffer_range; /* bytes one buffer binding can see; 0 = unknown */
} lm_device_info;

/* The devices of one backend, in lm_model_params.device order: fills out[0 .. min(cap, n))
 * and sets *n_devices (out may be NULL with cap 0 to count). Errors: LM_ERR_UNSUPPORTED
 * (backend not compiled in: the message lists those that are), LM_ERR_BACKEND (its driver
 * cannot be used: the message says why, e.g. "no CUDA device: ..."). */
lm_status lm_devices(const char *backend, lm_device_info *out, int32_t cap, int32_t *n_devices);

/* ---- inspection (lumen verify) --------------------------------------------------------- */

/* Called by lm_decode after each layer with that layer's output, the hidden state (residual
 * stream) of the batch's tokens copied to the host: x[t * n_embd + i] for t < n_tokens (a
 * chunk of at most n_batch tokens). Each call syncs the device and copies the state, so
 * decoding is slower while one is set. */
typedef void (*lm_layer_fn)(int32_t layer, const float *x, int32_t n_embd, int32_t n_tokens,
                            void *user);
/* Set (fn non-NULL) or clear the context's layer callback. */
void lm_context_set_layer_fn(lm_context *ctx, lm_layer_fn fn, void *user);

#ifdef __cplusplus
}
#endif
#endif
