/* Option parsing, model discovery, Ctrl-C handling and the generation loop shared by the
 * CLI commands. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

void cli_error(lm_status s) {
    const char *detail = lm_last_error();
    if (detail && *detail)
        fprintf(stderr, "lumen: error: %s\n", detail);
    else
        fprintf(stderr, "lumen: error: %s\n", lm_status_str(s));
}

/* ---- options -------------------------------------------------------------------------- */

typedef struct cli_optdef {
    const char *lng;
    char shrt;
    unsigned group;
    const char *arg;
    const char *help;
} cli_optdef;

static const cli_optdef cli_optdefs[] = {
    {"model", 'm', CLI_MODEL, "FILE",
     "GGUF model (default: $LUMEN_MODEL, then models/" LM_DEFAULT_MODEL_FILE ")"},
    {"prompt", 'p', CLI_PROMPT, "TEXT", "prompt text"},
    {"n-predict", 'n', CLI_GEN, "N", "tokens to generate (default 128; -1 = until the end)"},
    {"temp", 0, CLI_GEN, "T", "temperature; 0 = greedy (default 0.8)"},
    {"top-k", 0, CLI_GEN, "K", "keep the K most likely tokens; 0 = off (default 40)"},
    {"top-p", 0, CLI_GEN, "P", "nucleus sampling; 1 = off (default 0.95)"},
    {"min-p", 0, CLI_GEN, "P", "drop tokens below P x the top probability (default 0.05)"},
    {"repeat-penalty", 0, CLI_GEN, "R", "penalise repeated tokens; 1 = off (default 1)"},
    {"repeat-last-n", 0, CLI_GEN, "N", "tokens the penalties look back on; -1 = all (default 64)"},
    {"frequency-penalty", 0, CLI_GEN, "F", "subtract F x count (default 0)"},
    {"presence-penalty", 0, CLI_GEN, "F", "subtract F once a token appeared (default 0)"},
    {"ignore-eos", 0, CLI_GEN, NULL, "keep generating past end-of-generation tokens"},
    {"seed", 0, CLI_GEN, "N", "random seed (default: from the clock)"},
    {"threads", 't', CLI_THREADS, "N", "CPU threads (default: all cores)"},
    {"backend", 0, CLI_BACKEND, "NAME", "compute backend (default cpu); compiled in:"},
    {"device", 0, CLI_BACKEND, "N|NAME",
     "device by index or part of its name ('lumen devices'; default: "
     "$LUMEN_VULKAN_DEVICE or $LUMEN_CUDA_DEVICE, else the first usable)"},
    {"kv-type", 0, CLI_BACKEND, "f16|q8_0",
     "KV cache type (default $LUMEN_KV_TYPE, else f16); q8_0 takes 53% of the memory"},
    {"n-predict", 'n', CLI_VERIFY, "N", "decode steps compared after the prompt (default 4)"},
    {"output", 'o', CLI_DEVICES, "text|json", "output format (default text)"},
    {"tol", 0, CLI_VERIFY, "X",
     "relative tolerance: max|a-b| / max|a| per layer and on the logits (default 1e-3)"},
    {"ctx", 'c', CLI_CTX, "N", "context size in tokens (default: min(training, 4096))"},
    {"quiet", 'q', CLI_QUIET, NULL, "do not print load time and speed to stderr"},
    {"template", 0, CLI_CHAT, "NAME",
     "chat template for chat and run --chat (default: from the model)"},
    {"system", 's', CLI_CHAT, "TEXT", "system message (chat, and run --chat)"},
    {"chat", 0, CLI_RUN_CHAT, NULL, "send the prompt as a user message through the chat template"},
    {"file", 'f', CLI_PPL, "FILE", "text to score (UTF-8)"},
    {"ctx", 'c', CLI_PPL, "N",
     "window size in tokens; each window scores its second half "
     "(default 512)"},
    {"batch", 'b', CLI_PPL, "N", "tokens per decode call (default: min(ctx, 512))"},
    {"chunks", 0, CLI_PPL, "N", "score at most N windows (default: all that fit)"},
    {"allow-requantize", 0, CLI_QUANTIZE, NULL,
     "accept an already-quantized input (dequantized first: lower quality)"},
    {"ids", 0, CLI_TOKENIZE, NULL, "print only the token ids"},
    {"no-special", 0, CLI_TOKENIZE, NULL, "treat special-token text as plain text"},
    {"host", 0, CLI_SERVE, "ADDR", "address to listen on (default 127.0.0.1)"},
    {"port", 0, CLI_SERVE, "N", "TCP port; 0 = any free one (default 8080)"},
    {"api-key", 0, CLI_SERVE, "KEY",
     "require 'Authorization: Bearer KEY' (default $LUMEN_API_KEY)"},
    {"insecure-no-auth", 0, CLI_SERVE, NULL, "allow a non-loopback --host without an API key"},
    {"parallel", 0, CLI_SERVE, "N", "sequences decoded together, each with its own KV (default 8)"},
    {"queue", 0, CLI_SERVE, "N", "requests waiting for a sequence before 503 (default 64)"},
    {"alias", 0, CLI_SERVE, "NAME", "model id in the API (default: the file name)"},
    {"parse-request", 0, CLI_SERVE, "chat|completions",
     "check a request body from stdin, print it as parsed; no model, no server"},
};
#define CLI_N_OPTDEFS (sizeof cli_optdefs / sizeof cli_optdefs[0])

void cli_print_help(const cli_command *cmd) {
    printf("usage: lumen %s %s\n\n%s\n\noptions:\n", cmd->name, cmd->usage, cmd->summary);
    for (size_t i = 0; i < CLI_N_OPTDEFS; i++) {
        const cli_optdef *d = &cli_optdefs[i];
        if (!(cmd->flags & d->group)) continue;
        char left[64];
        if (d->shrt)
            snprintf(left, sizeof left, "-%c, --%s%s%s", d->shrt, d->lng, d->arg ? " " : "",
                     d->arg ? d->arg : "");
        else
            snprintf(left, sizeof left, "    --%s%s%s", d->lng, d->arg ? " " : "",
                     d->arg ? d->arg : "");
        if (d->group == CLI_BACKEND && !strcmp(d->lng, "backend"))
            printf("  %-28s %s %s\n", left, d->help, cli_backend_list());
        else
            printf("  %-28s %s\n", left, d->help);
    }
    printf("  %-28s %s\n", "-h, --help", "show this help");
    if (cmd->help_extra) cmd->help_extra();
}

static int cli_num(const char *opt, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "lumen: error: --%s expects a number in [%g, %g], got '%s'\n", opt, lo, hi,
                s);
        return 1;
    }
    *out = v;
    return 0;
}

/* Integers must be written as integers: "2.7" for a count is an error, not 2. */
static int cli_int(const char *opt, const char *s, double lo, double hi, double *out) {
    if (cli_num(opt, s, lo, hi, out)) return 1;
    if (*out != (double)(long long)*out) {
        fprintf(stderr, "lumen: error: --%s expects an integer, got '%s'\n", opt, s);
        return 1;
    }
    return 0;
}

static int cli_seed(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-') {
        fprintf(stderr, "lumen: error: --seed expects an integer in [0, 2^64), got '%s'\n", s);
        return 1;
    }
    *out = v;
    return 0;
}

static int cli_set(cli_opts *o, const char *name, const char *val) {
    double v = 0;
#define NUM(lo, hi)                                                                                \
    if (cli_num(name, val, lo, hi, &v)) return 1
#define INT(lo, hi)                                                                                \
    if (cli_int(name, val, lo, hi, &v)) return 1
    if (!strcmp(name, "model"))
        o->model = val;
    else if (!strcmp(name, "prompt"))
        o->prompt = val;
    else if (!strcmp(name, "n-predict")) {
        INT(-1, 1e9);
        o->n_predict = (int32_t)v;
    } else if (!strcmp(name, "temp")) {
        NUM(0, 100);
        o->sp.temperature = (float)v;
    } else if (!strcmp(name, "top-k")) {
        INT(0, 1e9);
        o->sp.top_k = (int32_t)v;
    } else if (!strcmp(name, "top-p")) {
        NUM(0, 1);
        o->sp.top_p = (float)v;
    } else if (!strcmp(name, "min-p")) {
        NUM(0, 1);
        o->sp.min_p = (float)v;
    } else if (!strcmp(name, "repeat-penalty")) {
        NUM(0, 100);
        o->sp.repeat_penalty = (float)v;
    } else if (!strcmp(name, "repeat-last-n")) {
        INT(-1, 1e9);
        o->sp.penalty_last_n = (int32_t)v;
    } else if (!strcmp(name, "frequency-penalty")) {
        NUM(-100, 100);
        o->sp.frequency_penalty = (float)v;
    } else if (!strcmp(name, "presence-penalty")) {
        NUM(-100, 100);
        o->sp.presence_penalty = (float)v;
    } else if (!strcmp(name, "seed")) {
        if (cli_seed(val, &o->sp.seed)) return 1;
        o->seed_set = true;
    } else if (!strcmp(name, "threads")) {
        INT(1, 1024);
        o->threads = (int32_t)v;
    } else if (!strcmp(name, "ctx")) {
        INT(1, 1 << 24);
        o->ctx = (int32_t)v;
    } else if (!strcmp(name, "batch")) {
        INT(1, 1 << 24);
        o->batch = (int32_t)v;
    } else if (!strcmp(name, "chunks")) {
        INT(1, 1e9);
        o->chunks = (int32_t)v;
    } else if (!strcmp(name, "file"))
        o->file = val;
    else if (!strcmp(name, "template"))
        o->chat_template = val;
    else if (!strcmp(name, "system"))
        o->system = val;
    else if (!strcmp(name, "backend"))
        o->backend = val;
    else if (!strcmp(name, "device"))
        o->device = val;
    else if (!strcmp(name, "kv-type")) {
        if (lm_kv_type_from_name(val, &o->kv_type) != LM_OK) {
            fprintf(stderr, "lumen: error: --kv-type: %s\n", lm_last_error());
            return 1;
        }
    } else if (!strcmp(name, "output")) {
        if (strcmp(val, "text") && strcmp(val, "json")) {
            fprintf(stderr, "lumen: error: --output expects text or json, got '%s'\n", val);
            return 1;
        }
        o->json = !strcmp(val, "json");
    } else if (!strcmp(name, "tol")) {
        NUM(0, 1e9);
        o->tol = v;
    } else if (!strcmp(name, "host"))
        o->host = val;
    else if (!strcmp(name, "api-key"))
        o->api_key = val;
    else if (!strcmp(name, "alias"))
        o->alias = val;
    else if (!strcmp(name, "parse-request"))
        o->parse_request = val;
    else if (!strcmp(name, "port")) {
        INT(0, 65535);
        o->port = v == 0 ? -1 : (int32_t)v; /* 0 = unset: -1 asks for any free port */
    } else if (!strcmp(name, "parallel")) {
        INT(1, 256);
        o->parallel = (int32_t)v;
    } else if (!strcmp(name, "queue")) {
        INT(1, 100000);
        o->queue = (int32_t)v;
    }
#undef NUM
#undef INT
    return 0;
}

static void cli_defaults(cli_opts *o) {
    memset(o, 0, sizeof *o);
    o->n_predict = 128;
    o->sp = lm_sampler_default_params();
}

static const cli_optdef *cli_find(const cli_command *cmd, const char *arg, bool *is_short) {
    for (size_t i = 0; i < CLI_N_OPTDEFS; i++) {
        const cli_optdef *d = &cli_optdefs[i];
        if (!(cmd->flags & d->group)) continue;
        if (arg[1] == '-' && !strcmp(arg + 2, d->lng)) {
            *is_short = false;
            return d;
        }
        if (arg[1] != '-' && d->shrt && arg[1] == d->shrt && arg[2] == '\0') {
            *is_short = true;
            return d;
        }
    }
    return NULL;
}

int cli_parse(const cli_command *cmd, int argc, char **argv, cli_opts *o, bool *done) {
    cli_defaults(o);
    if (cmd->flags & CLI_VERIFY) o->n_predict = 4; /* a few steps: ~1 s each on lavapipe */
    *done = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cli_print_help(cmd);
            *done = true;
            return 0;
        }
        bool is_short;
        const cli_optdef *d = a[0] == '-' && a[1] ? cli_find(cmd, a, &is_short) : NULL;
        if (!d && (a[0] != '-' || !a[1]) && o->n_pos < cmd->max_pos) {
            o->pos[o->n_pos++] = a;
            continue;
        }
        if (!d && a[0] != '-' && cmd->max_pos > 0) {
            fprintf(stderr, "lumen %s: error: unexpected argument '%s' (usage: lumen %s %s)\n",
                    cmd->name, a, cmd->name, cmd->usage);
            return 1;
        }
        if (!d) {
            fprintf(stderr, "lumen %s: error: unknown option '%s' (see lumen %s --help)\n",
                    cmd->name, a, cmd->name);
            return 1;
        }
        if (!d->arg) {
            if (!strcmp(d->lng, "quiet")) o->quiet = true;
            if (!strcmp(d->lng, "ids")) o->ids_only = true;
            if (!strcmp(d->lng, "no-special")) o->no_special = true;
            if (!strcmp(d->lng, "chat")) o->as_chat = true;
            if (!strcmp(d->lng, "ignore-eos")) o->ignore_eos = true;
            if (!strcmp(d->lng, "allow-requantize")) o->allow_requantize = true;
            if (!strcmp(d->lng, "insecure-no-auth")) o->insecure_no_auth = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "lumen %s: error: option '%s' needs a value (%s)\n", cmd->name, a,
                    d->arg);
            return 1;
        }
        if (cli_set(o, d->lng, argv[++i])) return 1;
    }
    if (!o->seed_set) o->sp.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    return 0;
}

/* ---- model discovery ------------------------------------------------------------------ */

static const char *cli_default_model(void) {
    const char *env = getenv("LUMEN_MODEL");
    if (env && *env) return env;
    static const char *candidates[] = {
        "models/" LM_DEFAULT_MODEL_FILE,
        LM_SOURCE_DIR "/models/" LM_DEFAULT_MODEL_FILE,
    };
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++)
        if (access(candidates[i], R_OK) == 0) return candidates[i];
    return NULL;
}

const char *cli_backend_list(void) {
    static char list[128];
    list[0] = '\0';
    for (const char *const *b = lm_backends(); *b; b++) {
        size_t len = strlen(list);
        snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "", *b);
    }
    return list;
}

/* A device name matches when it contains the text, ignoring case. */
static bool cli_name_has(const char *name, const char *text) {
    size_t n = strlen(name), k = strlen(text);
    for (size_t i = 0; i + k <= n; i++) {
        size_t j = 0;
        while (j < k && tolower((unsigned char)name[i + j]) == tolower((unsigned char)text[j])) j++;
        if (j == k) return true;
    }
    return false;
}

int cli_resolve_device(const char *cmd, const char *backend, const char *device, int32_t *index) {
    if (!backend) backend = "cpu";
    const char *sp = cmd && *cmd ? " " : "";
    if (!cmd) cmd = "";
    bool known = false;
    for (const char *const *b = lm_backends(); *b; b++) known |= !strcmp(*b, backend);
    if (!known) {
        fprintf(stderr, "lumen%s%s: error: unknown backend '%s' (compiled in: %s)\n", sp, cmd,
                backend, cli_backend_list());
        return 1;
    }
    *index = -1;
    if (!device) return 0;
    char *end;
    errno = 0;
    long v = strtol(device, &end, 10);
    bool numeric = *device && !*end && !errno;
    if (numeric && v >= 0 && v <= INT32_MAX && !strcmp(backend, "cuda")) {
        *index = (int32_t)v; /* CUDA lists devices by opening them: the backend checks */
        return 0;
    }
    lm_device_info d[16];
    int32_t n = 0;
    lm_status s = lm_devices(backend, d, 16, &n);
    if (s != LM_OK) {
        fprintf(stderr, "lumen%s%s: error: --device %s: %s\n", sp, cmd, device, lm_last_error());
        return 1;
    }
    if (n > 16) n = 16;
    for (int32_t i = 0; i < n; i++)
        if (numeric ? v == d[i].index : cli_name_has(d[i].name, device)) {
            *index = d[i].index;
            return 0;
        }
    fprintf(stderr, "lumen%s%s: error: --device %s: no such %s device; %s:", sp, cmd, device,
            backend, n ? "devices" : "there are none");
    for (int32_t i = 0; i < n; i++)
        fprintf(stderr, "%s %d (%s)", i ? "," : "", d[i].index, d[i].name);
    fprintf(stderr, " (see lumen devices)\n");
    return 1;
}

static lm_model *cli_load(const cli_opts *o, const char *backend, const char *device,
                          bool vocab_only) {
    const char *path = o->model ? o->model : cli_default_model();
    if (!path) {
        fprintf(stderr, "lumen: error: no model given (-m FILE) and the default model "
                        "models/" LM_DEFAULT_MODEL_FILE " was not found; run scripts/setup.sh "
                        "to fetch it\n");
        return NULL;
    }
    lm_model_params mp = lm_model_default_params();
    mp.n_threads = o->threads;
    mp.vocab_only = vocab_only;
    mp.backend = backend;
    if (!vocab_only && cli_resolve_device("", backend, device, &mp.device)) return NULL;
    lm_model *m = NULL;
    lm_status s = lm_model_load(path, &mp, &m);
    if (s != LM_OK) {
        cli_error(s);
        return NULL;
    }
    return m;
}

lm_model *cli_load_model(const cli_opts *o, bool vocab_only) {
    return cli_load(o, o->backend, o->device, vocab_only);
}

lm_model *cli_load_model_on(const cli_opts *o, const char *backend, const char *device) {
    return cli_load(o, backend ? backend : o->backend, device ? device : o->device, false);
}

/* ---- Ctrl-C --------------------------------------------------------------------------- */

static volatile sig_atomic_t cli_sigint_count;

static void cli_on_sigint(int sig) {
    (void)sig;
    if (++cli_sigint_count >= 2) _exit(130);
}

void cli_install_sigint(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = cli_on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

bool cli_interrupted(void) {
    return cli_sigint_count > 0;
}
void cli_clear_interrupt(void) {
    cli_sigint_count = 0;
}
bool cli_abort_cb(void *user) {
    (void)user;
    return cli_interrupted();
}

/* ---- generation ----------------------------------------------------------------------- */

lm_status cli_generate(lm_context *ctx, const lm_model *m, lm_sampler *smp, int32_t n,
                       lm_token *out, int32_t *n_out, bool stream, bool ignore_eos) {
    char piece[256];
    int32_t made = 0;
    lm_status s = LM_OK;
    for (int32_t i = 0; n < 0 || i < n; i++) {
        if (cli_interrupted()) break;
        const float *logits = lm_get_logits(ctx, -1);
        if (!logits) return LM_ERR_INVALID_ARG;
        lm_token t = lm_sampler_sample(smp, logits);
        if (lm_token_is_eog(m, t) && !ignore_eos) break;
        lm_sampler_accept(smp, t);
        if (out) out[made] = t;
        made++;
        if (stream) {
            int32_t len = lm_token_to_piece(m, t, piece, sizeof piece, false);
            if (len > 0) {
                fwrite(piece, 1, (size_t)len, stdout);
                fflush(stdout);
            }
        }
        if (lm_kv_seq_len(ctx, 0) >= lm_context_n_ctx(ctx)) {
            fprintf(stderr, "\nlumen: warning: context full (%d tokens); stopping\n",
                    lm_context_n_ctx(ctx));
            break;
        }
        lm_batch b = lm_batch_simple(&t, 1);
        s = lm_decode(ctx, &b);
        if (s != LM_OK) break;
    }
    if (n_out) *n_out = made;
    if (s == LM_ERR_INTERRUPTED) s = LM_OK;
    return s;
}

void cli_print_perf(const lm_context *ctx) {
    lm_perf p = lm_context_perf(ctx);
    fprintf(stderr,
            "\nlumen: load %.0f ms | prefill %lld tokens in %.0f ms (%.1f tok/s) | "
            "decode %lld tokens in %.0f ms (%.1f tok/s)\n",
            p.t_load_ms, (long long)p.n_prefill, p.t_prefill_ms,
            p.t_prefill_ms > 0 ? p.n_prefill * 1e3 / p.t_prefill_ms : 0.0, (long long)p.n_decode,
            p.t_decode_ms, p.t_decode_ms > 0 ? p.n_decode * 1e3 / p.t_decode_ms : 0.0);
}

/* ---- progress ------------------------------------------------------------------------- */

static int cli_progress_tenth = -1; /* last tenth logged when stderr is not a terminal */
static bool cli_progress_open;      /* a bar is drawn on the terminal line */

void cli_progress(double frac, bool log_line, const char *fmt, ...) {
    if (frac < 0) frac = 0;
    if (frac > 1) frac = 1;
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (isatty(STDERR_FILENO)) {
        enum { W = 30 };
        /* one terminal line, or \r cannot redraw it */
        struct winsize ws;
        int cols = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col ? ws.ws_col : 80;
        int room = cols - (W + 8);
        if (room < 0) room = 0;
        if ((int)strlen(text) > room) text[room] = '\0';
        char bar[W + 1];
        int fill = (int)(frac * W + 0.5);
        for (int i = 0; i < W; i++) bar[i] = i < fill ? '#' : '.';
        bar[W] = '\0';
        fprintf(stderr, "\r[%s] %3d%% %s\033[K", bar, (int)(frac * 100), text);
        fflush(stderr);
        cli_progress_open = true;
        return;
    }
    int tenth = (int)(frac * 10);
    if (!log_line && tenth == cli_progress_tenth) return;
    cli_progress_tenth = tenth;
    fprintf(stderr, "%3d%% %s\n", (int)(frac * 100), text);
}

void cli_progress_end(void) {
    if (cli_progress_open) fputc('\n', stderr);
    cli_progress_open = false;
    cli_progress_tenth = -1;
}

void cli_progress_clear(void) {
    if (cli_progress_open) fputs("\r\033[K", stderr);
}

const char *cli_bytes(uint64_t n, char *buf, size_t size) {
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, size, u ? "%.2f %s" : "%.0f %s", v, units[u]);
    return buf;
}

char *cli_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) break;
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (!buf || err) {
        free(buf);
        errno = err ? err : ENOMEM;
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}
