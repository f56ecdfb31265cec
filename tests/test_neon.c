/* The NEON level, which no machine here runs natively: scripts/check_neon.sh cross-compiles
 * the CPU kernels for AArch64 and runs tests/neon/neon_check.c under qemu-aarch64, which
 * compares every NEON kernel's outputs with the scalar oracle's bit for bit on fresh
 * random inputs (this run's seed is passed on). Skipped, with the reason, where the cross
 * tools are absent (the script fails instead under CI=true). On this host, "neon" is a
 * known level name that is refused as unsupported unless the CPU is AArch64. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cpu/cpu_internal.h"
#include "helpers/test_util.h"

Test(neon, kernels_bit_identical_under_qemu, .timeout = 600) {
    char cmd[4096];
    /* objects go to this build tree, so parallel builds never share them */
    snprintf(cmd, sizeof cmd, "LUMEN_TEST_SEED=%llu '%s/scripts/check_neon.sh' '%s/neon'",
             (unsigned long long)lm_test_seed(), LM_SOURCE_DIR, LM_BINARY_DIR);
    char *out = NULL;
    const int rc = lm_test_run(cmd, &out);
    cr_assert(out, "could not run %s", cmd);
    if (rc == 0 && strncmp(out, "SKIP:", 5) == 0) {
        cr_log_info("%s", out);
        const char *reason = out + 5;
        while (*reason == ' ') reason++;
        char why[512];
        snprintf(why, sizeof why, "%s", reason);
        why[strcspn(why, "\n")] = '\0';
        free(out);
        cr_skip_test("%s", why);
    }
    cr_assert_eq(rc, 0, "check_neon.sh failed (exit %d):\n%s", rc, out);
    cr_assert(strstr(out, "neon_check: OK"), "no OK line:\n%s", out);
    cr_log_info("%s", out);
    free(out);
}

Test(neon, level_name_and_host_support) {
    lm__cpu_level l = LM__CPU_SCALAR;
    cr_assert_eq(lm__cpu_level_parse("neon", &l), LM_OK, "%s", lm_last_error());
    cr_assert_eq(l, LM__CPU_NEON);
    cr_assert_str_eq(lm__cpu_level_name(LM__CPU_NEON), "neon");
    cr_assert_eq(lm__cpu_level_parse("arm", &l), LM_ERR_INVALID_ARG);
    cr_assert(strstr(lm_last_error(), "neon"), "the known levels are named: %s", lm_last_error());
#if defined(__aarch64__)
    cr_assert_eq(lm__cpu_level_best(), LM__CPU_NEON);
#else
    /* x86: the level exists by name only, and asking for it is a clear error */
    cr_assert(!lm__cpu_level_supported(LM__CPU_NEON));
    cr_assert_neq(lm__cpu_level_best(), LM__CPU_NEON);
    lm__cpu_kernels k;
    cr_assert(!lm__cpu_kernels_neon(&k), "NEON kernels compiled into an x86 build");
    lm_backend_config cfg = {1, 0};
    lm_backend *be = NULL;
    setenv("LUMEN_CPU_LEVEL", "neon", 1);
    cr_assert_eq(lm_backend_create("cpu", &cfg, &be), LM_ERR_UNSUPPORTED);
    unsetenv("LUMEN_CPU_LEVEL");
    cr_assert(strstr(lm_last_error(), "neon") && strstr(lm_last_error(), "not available"), "%s",
              lm_last_error());
#endif
}
