/* The lumen CLI: shared option parsing and helpers. Uses include/lumen.h only. */
#ifndef LM_CLI_H
#define LM_CLI_H

#include "lumen.h"

#include <stdbool.h>
#include <stdint.h>

#define LM_DEFAULT_MODEL_FILE "SmolLM2-135M-Instruct.Q4_1.gguf"

/* Which options a command accepts (so --help lists exactly those). */
enum {
    CLI_MODEL = 1 << 0,
    CLI_PROMPT = 1 << 1,
    CLI_GEN = 1 << 2, /* -n, sampling options, --seed */
    CLI_THREADS = 1 << 3,
    CLI_CTX = 1 << 4,
    CLI_QUIET = 1 << 5,
    CLI_CHAT = 1 << 6, /* --template, --system */
    CLI_TOKENIZE = 1 << 7,
    CLI_RUN_CHAT = 1 << 8,  /* --chat */
    CLI_PPL = 1 << 9,       /* -f, --ctx (a window), --batch, --chunks */
    CLI_QUANTIZE = 1 << 10, /* --allow-requantize */
    CLI_BACKEND = 1 << 11,  /* --backend, --device */
    CLI_VERIFY = 1 << 12,   /* verify: -n steps, --tol */
    CLI_DEVICES = 1 << 13,  /* devices: -o text|json */
    CLI_SERVE = 1 << 20,    /* serve: --host, --port, --api-key, ... */
};

#define CLI_MAX_POS 3 /* positional arguments a command may take */

typedef struct cli_opts {
    const char *model;
    const char *prompt;
    int32_t n_predict;
    lm_sampler_params sp;
    bool seed_set;
    int32_t threads;
    int32_t ctx;
    bool quiet;
    const char *chat_template;
    const char *system;
    bool ids_only;
    bool no_special;
    bool as_chat;
    bool ignore_eos;
    const char *file;
    int32_t batch;
    int32_t chunks;
    bool allow_requantize;
    const char *backend;          /* NULL: cpu */
    const char *device;           /* an index or part of a name; NULL: the backend's default */
    lm_kv_type kv_type;           /* LM_KV_DEFAULT: $LUMEN_KV_TYPE, else f16 */
    double tol;                   /* verify: relative tolerance (0: the default) */
    bool json;                    /* devices: -o json */
    const char *pos[CLI_MAX_POS]; /* positional arguments, in order */
    int n_pos;
    /* serve (0/NULL: the defaults in cmd_serve.c) */
    const char *host, *api_key, *alias, *parse_request;
    int32_t port, parallel, queue;
    bool insecure_no_auth;
} cli_opts;

typedef struct cli_command {
    const char *name;
    const char *summary;
    const char *usage;
    unsigned flags;
    int (*run)(const cli_opts *o);
    int max_pos;              /* positional arguments accepted (0: none) */
    void (*help_extra)(void); /* printed after the options by --help (optional) */
} cli_command;

/* Parse argv after the command name; prints help and returns 0 for --help (*done = true),
 * prints an error and returns 1 for bad options. */
int cli_parse(const cli_command *cmd, int argc, char **argv, cli_opts *o, bool *done);
void cli_print_help(const cli_command *cmd);
/* Load the model named by -m, $LUMEN_MODEL or the default; prints the error and returns
 * NULL on failure. */
lm_model *cli_load_model(const cli_opts *o, bool vocab_only);
/* The same on a given backend and device (NULL: o->backend, o->device). */
lm_model *cli_load_model_on(const cli_opts *o, const char *backend, const char *device);
/* Check backend (NULL: cpu) against those compiled in and turn device ("N" or a
 * case-insensitive part of a device name; NULL: -1, the backend's default) into an index.
 * Prints an error naming the valid choices and returns 1 when either is unknown. */
int cli_resolve_device(const char *cmd, const char *backend, const char *device, int32_t *index);
/* "cuda, vulkan, cpu": the backends compiled in. */
const char *cli_backend_list(void);
/* Print "lumen: <status>: <detail>" to stderr. */
void cli_error(lm_status s);

/* Ctrl-C: the first press asks generation to stop; a second one exits. */
void cli_install_sigint(void);
bool cli_interrupted(void);
void cli_clear_interrupt(void);
bool cli_abort_cb(void *user);

/* Generate up to n tokens after the context's current state; streams pieces to stdout.
 * out/n_out (optional) collect the generated tokens. Returns LM_OK, or the error. */
lm_status cli_generate(lm_context *ctx, const lm_model *m, lm_sampler *smp, int32_t n,
                       lm_token *out, int32_t *n_out, bool stream, bool ignore_eos);
/* Print load and speed figures to stderr. */
void cli_print_perf(const lm_context *ctx);

/* A progress line on stderr: "[#####     ]  50% text". On a terminal it is redrawn in
 * place; elsewhere (a pipe, a log file) a line is printed when log_line is true or the
 * percentage crossed another tenth. cli_progress_end finishes it (a newline if needed).
 * cli_progress_clear erases it before other output (terminal only). */
void cli_progress(double frac, bool log_line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void cli_progress_end(void);
void cli_progress_clear(void);
/* "12.3 MiB", "1.50 GiB", ... into buf. */
const char *cli_bytes(uint64_t n, char *buf, size_t size);
/* Read a whole file (NUL-terminated, malloc'd); NULL with errno set on failure. */
char *cli_read_file(const char *path, size_t *len);

int cmd_run(const cli_opts *o);
int cmd_chat(const cli_opts *o);
int cmd_info(const cli_opts *o);
int cmd_tokenize(const cli_opts *o);
int cmd_serve(const cli_opts *o);
void cmd_serve_help(void);
int cmd_quantize(const cli_opts *o);
void cmd_quantize_help(void);
int cmd_perplexity(const cli_opts *o);
int cmd_devices(const cli_opts *o);
int cmd_verify(const cli_opts *o);
void cmd_verify_help(void);
/* bench parses its own options (llama-bench style lists: -p 128,512) */
int cmd_bench(int argc, char **argv);

#endif
