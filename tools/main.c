/* lumen: the command-line front end. Uses include/lumen.h only. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const cli_command commands[] = {
    {"run", "Complete a prompt and stream the text to stdout.", "-p TEXT [options]",
     CLI_MODEL | CLI_PROMPT | CLI_GEN | CLI_THREADS | CLI_BACKEND | CLI_CTX | CLI_QUIET | CLI_CHAT |
         CLI_RUN_CHAT,
     cmd_run, 0, NULL},
    {"chat", "Chat with the model, one message per line on stdin; /clear forgets, /exit quits.",
     "[options]", CLI_MODEL | CLI_GEN | CLI_THREADS | CLI_BACKEND | CLI_CTX | CLI_QUIET | CLI_CHAT,
     cmd_chat, 0, NULL},
    {"info", "Show a model's metadata, hyper-parameters and tensors.", "[-m FILE]", CLI_MODEL,
     cmd_info, 0, NULL},
    {"tokenize", "Show the token ids and pieces of a text.", "-p TEXT [options]",
     CLI_MODEL | CLI_PROMPT | CLI_TOKENIZE, cmd_tokenize, 0, NULL},
    {"quantize", "Convert a GGUF model's weights to a smaller type (llama.cpp's mixes).",
     "IN.gguf OUT.gguf TYPE [options]", CLI_THREADS | CLI_QUANTIZE, cmd_quantize, 3,
     cmd_quantize_help},
    {"perplexity", "Measure how well the model predicts a text (PPL and its standard error).",
     "-f FILE [options]", CLI_MODEL | CLI_THREADS | CLI_BACKEND | CLI_PPL, cmd_perplexity, 0, NULL},
    {"serve", "Serve the model over HTTP with the OpenAI API (chat, completions, streaming).",
     "[options]",
     CLI_MODEL | CLI_THREADS | CLI_BACKEND | CLI_CTX | CLI_QUIET | CLI_CHAT | CLI_SERVE, cmd_serve,
     0, cmd_serve_help},
    {"devices", "List the devices of every backend compiled in (CPU, Vulkan, CUDA).", "[-o json]",
     CLI_DEVICES, cmd_devices, 0, NULL},
    {"verify", "Compare a backend with the CPU oracle layer by layer on the same tokens.",
     "--backend vulkan|cuda [-m FILE] [-p TEXT] [-n N] [--tol X]",
     CLI_MODEL | CLI_PROMPT | CLI_THREADS | CLI_BACKEND | CLI_VERIFY, cmd_verify, 0,
     cmd_verify_help},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

/* Commands that parse their own options. */
static const struct {
    const char *name, *summary;
    int (*main)(int argc, char **argv);
} own_commands[] = {
    {"bench", "Measure prefill/decode tokens/s and memory bandwidth; --ops times each op.",
     cmd_bench},
};
#define N_OWN (sizeof own_commands / sizeof own_commands[0])

static void usage(FILE *f) {
    fprintf(f,
            "lumen %s: run GGUF language models\n\nusage: lumen COMMAND [options]\n\n"
            "commands:\n",
            LM_VERSION_STRING);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    for (size_t i = 0; i < N_OWN; i++)
        fprintf(f, "  %-10s %s\n", own_commands[i].name, own_commands[i].summary);
    fprintf(f, "\n'lumen COMMAND --help' lists a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("lumen %s (API %d)\n", LM_VERSION_STRING, LM_API_VERSION);
        return 0;
    }
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(argv[1], commands[i].name)) continue;
        cli_opts o;
        bool done;
        if (cli_parse(&commands[i], argc - 2, argv + 2, &o, &done)) return 1;
        if (done) return 0;
        return commands[i].run(&o);
    }
    for (size_t i = 0; i < N_OWN; i++)
        if (!strcmp(argv[1], own_commands[i].name)) return own_commands[i].main(argc - 2, argv + 2);
    fprintf(stderr, "lumen: error: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 1;
}
