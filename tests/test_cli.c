/* The lumen CLI as a user runs it: the README's commands on the default model, --help,
 * bad options, and Ctrl-C. */
#include "helpers/test_util.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void need_model(void) {
    if (access(lm_test_model_path(), R_OK) != 0)
        cr_skip_test("default model not found at %s (run scripts/setup.sh)", lm_test_model_path());
}

TestSuite(cli, .init = need_model, .timeout = 300);

static char *run(int *rc, const char *fmt, const char *arg) {
    char cmd[4096];
    char inner[3072];
    snprintf(inner, sizeof inner, fmt, arg ? arg : "");
    snprintf(cmd, sizeof cmd, "LUMEN_MODEL='%s' %s %s", lm_test_model_path(), lm_test_cli(), inner);
    char *out = NULL;
    *rc = lm_test_run(cmd, &out);
    return out;
}

/* `lumen args` exits 0 and prints `want`. */
static void expect_output(const char *args, const char *want) {
    int rc;
    char *out = run(&rc, "%s", args);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, want) != NULL, "%s", out);
    free(out);
}

Test(cli, run_greedy_says_paris) {
    int rc;
    char *out = run(&rc, "run -p 'The capital of France is' -n 8 --temp 0 -t 2%s", NULL);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "The capital of France is Paris") != NULL, "%s", out);
    /* speed figures go to stderr after a run */
    cr_assert(strstr(out, "prefill") && strstr(out, "tok/s"), "%s", out);
    free(out);
}

/* A q8_0 KV cache keeps the greedy answer (its logits move by < 0.9 on this model:
 * test_e2e) */
Test(cli, run_with_q8_0_kv_cache) {
    expect_output("run -p 'The capital of France is' -n 4 --temp 0 -q --kv-type q8_0",
                  "The capital of France is Paris");
}

Test(cli, quiet_removes_the_figures) {
    int rc;
    char *out = run(&rc, "run -p 'Hello' -n 2 --temp 0 -q%s", NULL);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "tok/s") == NULL, "%s", out);
    free(out);
}

Test(cli, seeded_sampling_is_reproducible) {
    int rc1, rc2;
    char *a = run(&rc1, "run -p 'Once upon a time' -n 16 --temp 1 --seed 7 -q%s", NULL);
    char *b = run(&rc2, "run -p 'Once upon a time' -n 16 --temp 1 --seed 7 -q%s", NULL);
    cr_assert_eq(rc1, 0);
    cr_assert_eq(rc2, 0);
    cr_assert_str_eq(a, b);
    free(a);
    free(b);
}

Test(cli, chat_works_piped) {
    int rc;
    char *out = run(&rc, "chat --temp 0 -q < /dev/null%s", NULL);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "printf 'What is the capital of France?\\n/exit\\n' | LUMEN_MODEL='%s' %s chat "
             "--temp 0 -n 32 -q",
             lm_test_model_path(), lm_test_cli());
    rc = lm_test_run(cmd, &out);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "Paris") != NULL, "%s", out);
    free(out);
}

Test(cli, run_chat_template) {
    expect_output("run --chat -p 'What is the capital of France?' -n 24 --temp 0 -q", "Paris");
    int rc;
    char *out = run(&rc, "run --chat --template nosuch -p 'hi' -n 2%s", NULL);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "nosuch") != NULL, "%s", out);
    free(out);
}

Test(cli, tokenize_prints_ids_and_pieces) {
    expect_output("tokenize -p 'The capital of France is' --ids", "504 3575 282 4649 314");
    expect_output("tokenize -p '<|im_start|>user'", "'<|im_start|>'");
}

Test(cli, info_lists_metadata_and_tensors) {
    int rc;
    char *out = run(&rc, "info%s", NULL);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "general.architecture") && strstr(out, "\"llama\""), "%s", out);
    cr_assert(strstr(out, "token_embd.weight") && strstr(out, "Q8_0"), "%s", out);
    cr_assert(strstr(out, "tensors (272)") != NULL, "%s", out);
    free(out);
}

Test(cli, help_is_truthful) {
    const char *cmds[] = {"run", "chat", "info", "tokenize"};
    for (size_t i = 0; i < 4; i++) {
        int rc;
        char *out = run(&rc, "%s --help", cmds[i]);
        cr_assert_eq(rc, 0, "%s", out);
        cr_assert(strstr(out, "usage: lumen") != NULL, "%s", out);
        free(out);
    }
    int rc;
    char *out = run(&rc, "run --help%s", NULL);
    const char *opts[] = {"--model", "--prompt", "--n-predict", "--temp", "--top-k", "--top-p",
                          "--min-p", "--seed",   "--threads",   "--ctx",  "--quiet"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        cr_assert(strstr(out, opts[i]) != NULL, "run --help lacks %s", opts[i]);
    free(out);
    out = run(&rc, "--help%s", NULL);
    cr_assert_eq(rc, 0);
    cr_assert(strstr(out, "tokenize") != NULL, "%s", out);
    free(out);
}

Test(cli, bad_usage_exits_1_with_a_message) {
    struct {
        const char *args, *msg;
    } cases[] = {
        {"run -p hi --bogus", "unknown option '--bogus'"},
        {"run -p hi --temp", "needs a value"},
        {"run -p hi --temp abc", "--temp expects a number"},
        {"run -p hi -n 1 --top-p 2", "--top-p expects a number"},
        {"run -n 4", "no prompt given"},
        {"frobnicate", "unknown command 'frobnicate'"},
        {"run -m /nonexistent/model.gguf -p hi", "/nonexistent/model.gguf"},
        {"info -m /", "/"},
        {"run -p 'one two three four' --ctx 2 -n 1 -q", "context holds 2"},
        {"run -p hi --kv-type q4_0", "KV cache type 'q4_0' is not one of: f16, q8_0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc;
        char *out = run(&rc, "%s", cases[i].args);
        cr_assert_eq(rc, 1, "'%s' exited %d: %s", cases[i].args, rc, out);
        cr_assert(strstr(out, cases[i].msg) != NULL, "'%s': no '%s' in: %s", cases[i].args,
                  cases[i].msg, out);
        free(out);
    }
}

/* Ctrl-C during generation stops it cleanly: exit status 0, a note on stderr. */
Test(cli, sigint_stops_generation) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        setenv("LUMEN_MODEL", lm_test_model_path(), 1);
        execl(lm_test_cli(), "lumen", "run", "-p", "Tell me a long story.", "-n", "-1", "--temp",
              "0.8", "--seed", "1", "--ignore-eos", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    /* wait until text is streaming, then interrupt */
    char buf[4096];
    ssize_t got = read(fds[0], buf, sizeof buf - 1);
    cr_assert_gt(got, 0);
    struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
    kill(pid, SIGINT);
    size_t total = 0;
    static char all[1 << 20];
    while ((got = read(fds[0], all + total, sizeof all - 1 - total)) > 0) total += (size_t)got;
    all[total] = '\0';
    close(fds[0]);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    cr_assert(strstr(all, "interrupted") != NULL, "%s", all);
}
