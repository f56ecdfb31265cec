/* The GGUF reader against hostile files: every fault of the catalogue through both entry
 * points, and every truncation of a valid file. A 0-byte file is LM_ERR_FORMAT ("empty
 * file"), like any other file that is not GGUF: LM_ERR_IO is only for open/stat/mmap. */
#include "gguf.h"
#include "helpers/gguf_faults.h"
#include "helpers/test_util.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void expect_fault(const lm_gguf_fault *f, lm_status s, lm_gguf *g, const char *via) {
    cr_expect_eq(s, f->status, "%s via %s: status %d (%s), expected %d; message: %s", f->name, via,
                 s, lm_status_str(s), f->status, lm_last_error());
    cr_expect_null(g, "%s via %s: handle returned on failure", f->name, via);
    cr_expect(strstr(lm_last_error(), f->message) != NULL,
              "%s via %s: message\n  '%s'\nlacks\n  '%s'", f->name, via, lm_last_error(),
              f->message);
    lm_gguf_close(g);
}

Test(gguf_malformed, catalogue_is_large_and_distinct) {
    cr_assert_geq(lm_gguf_n_faults, 60);
    for (size_t i = 0; i < lm_gguf_n_faults; i++) {
        for (size_t j = 0; j < i; j++) {
            cr_expect_str_neq(lm_gguf_faults[i].name, lm_gguf_faults[j].name);
            cr_expect_neq(lm_gguf_faults[i].build, lm_gguf_faults[j].build, "%s",
                          lm_gguf_faults[i].name);
        }
    }
}

Test(gguf_malformed, base_file_is_valid) {
    uint8_t *d;
    size_t n;
    cr_assert(lm_gguf_fault_base(&d, &n));
    lm_gguf *g = NULL;
    cr_assert_eq(lm_gguf_open_memory(d, n, NULL, &g), LM_OK, "%s", lm_last_error());
    cr_expect_eq(lm_gguf_n_tensors(g), 3);
    lm_gguf_close(g);
    free(d);
}

Test(gguf_malformed, every_fault_from_memory) {
    for (size_t i = 0; i < lm_gguf_n_faults; i++) {
        const lm_gguf_fault *f = &lm_gguf_faults[i];
        uint8_t *d = NULL;
        size_t n = 0;
        cr_assert(f->build(&d, &n), "%s: build failed", f->name);
        /* An exact-size heap copy, so ASan catches any read past the end. */
        uint8_t *exact = malloc(n ? n : 1);
        if (n) memcpy(exact, d, n);
        free(d);
        lm_gguf *g = NULL;
        lm_status s = lm_gguf_open_memory(exact, n, NULL, &g);
        expect_fault(f, s, g, "memory");
        cr_expect(strncmp(lm_last_error(), "<memory>: ", 10) == 0, "%s: %s", f->name,
                  lm_last_error());
        free(exact);
    }
}

Test(gguf_malformed, every_fault_from_file) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/lm_gguf_fault_%d.gguf", (int)getpid());
    for (size_t i = 0; i < lm_gguf_n_faults; i++) {
        const lm_gguf_fault *f = &lm_gguf_faults[i];
        cr_assert(lm_gguf_fault_write(i, path), "%s: cannot write %s", f->name, path);
        lm_gguf *g = NULL;
        lm_status s = lm_gguf_open(path, &g);
        expect_fault(f, s, g, "file");
        cr_expect(strncmp(lm_last_error(), path, strlen(path)) == 0,
                  "%s: message does not start with the path: %s", f->name, lm_last_error());
    }
    unlink(path);
}

/* Every prefix shorter than the end of the last tensor's data must fail; longer ones only
 * lose trailing padding and stay valid. */
Test(gguf_malformed, every_truncation) {
    uint8_t *d;
    size_t n;
    cr_assert(lm_gguf_fault_base(&d, &n));
    lm_gguf *g = NULL;
    cr_assert_eq(lm_gguf_open_memory(d, n, NULL, &g), LM_OK);
    size_t need = 0;
    for (int64_t i = 0; i < lm_gguf_n_tensors(g); i++) {
        const lm_gguf_tensor *t = lm_gguf_tensor_at(g, i);
        size_t end = (size_t)(lm_gguf_data_offset(g) + t->offset + t->n_bytes);
        if (end > need) need = end;
    }
    lm_gguf_close(g);
    cr_assert_lt(need, n, "the base file should end with padding");
    for (size_t cut = 0; cut <= n; cut++) {
        uint8_t *exact = malloc(cut ? cut : 1);
        memcpy(exact, d, cut);
        g = NULL;
        lm_status s = lm_gguf_open_memory(exact, cut, NULL, &g);
        if (cut < need) {
            cr_expect_eq(s, LM_ERR_FORMAT, "cut at %zu of %zu: status %d: %s", cut, n, s,
                         lm_last_error());
            cr_expect_null(g);
            cr_expect(strlen(lm_last_error()) > 10, "cut at %zu: no message", cut);
        } else {
            cr_expect_eq(s, LM_OK, "cut at %zu (>= %zu) should be valid: %s", cut, need,
                         lm_last_error());
        }
        lm_gguf_close(g);
        free(exact);
    }
    free(d);
}

/* Truncation through a real file too, at a spread of points (mmap path). */
Test(gguf_malformed, truncated_files) {
    uint8_t *d;
    size_t n;
    cr_assert(lm_gguf_fault_base(&d, &n));
    char path[64];
    snprintf(path, sizeof path, "/tmp/lm_gguf_cut_%d.gguf", (int)getpid());
    for (size_t cut = 0; cut < n - 64; cut += 7) {
        cr_assert(lm_gguf_write_bytes(path, d, cut));
        lm_gguf *g = NULL;
        lm_status s = lm_gguf_open(path, &g);
        cr_expect_eq(s, LM_ERR_FORMAT, "cut at %zu: %s", cut, lm_last_error());
        lm_gguf_close(g);
    }
    unlink(path);
    free(d);
}

Test(gguf_malformed, io_errors) {
    lm_gguf *g = NULL;
    cr_expect_eq(lm_gguf_open("/nonexistent/dir/x.gguf", &g), LM_ERR_IO);
    cr_expect(strstr(lm_last_error(), "/nonexistent/dir/x.gguf: cannot open") != NULL, "%s",
              lm_last_error());
    cr_expect_eq(lm_gguf_open("/tmp", &g), LM_ERR_IO);
    cr_expect(strstr(lm_last_error(), "not a regular file") != NULL, "%s", lm_last_error());
    cr_expect_null(g);
}

/* Limits are LM_ERR_LIMIT, checked after the structural bound (the file can hold it). */
Test(gguf_malformed, limits) {
    uint8_t *d;
    size_t n;
    cr_assert(lm_gguf_fault_base(&d, &n));
    lm_gguf *g = NULL;
    lm_gguf_limits lim = {.max_kv = 3};
    cr_expect_eq(lm_gguf_open_memory(d, n, &lim, &g), LM_ERR_LIMIT);
    cr_expect(strstr(lm_last_error(), "key-value count 12 exceeds the limit 3"), "%s",
              lm_last_error());
    lim = (lm_gguf_limits){.max_tensors = 2};
    cr_expect_eq(lm_gguf_open_memory(d, n, &lim, &g), LM_ERR_LIMIT);
    cr_expect(strstr(lm_last_error(), "tensor count 3 exceeds the limit 2"), "%s", lm_last_error());
    lim = (lm_gguf_limits){.max_string = 8};
    cr_expect_eq(lm_gguf_open_memory(d, n, &lim, &g), LM_ERR_LIMIT);
    cr_expect(strstr(lm_last_error(), "key length 20 exceeds the limit 8"), "%s", lm_last_error());
    lim = (lm_gguf_limits){.max_depth = 1};
    cr_expect_eq(lm_gguf_open_memory(d, n, &lim, &g), LM_ERR_LIMIT);
    cr_expect(strstr(lm_last_error(), "'test.nested': arrays nested deeper than the limit 1"), "%s",
              lm_last_error());
    cr_expect_null(g);
    free(d);
}

/* Random byte flips of the valid file: any status is fine, a crash or leak is not. */
Test(gguf_malformed, random_corruption) {
    uint8_t *d;
    size_t n;
    cr_assert(lm_gguf_fault_base(&d, &n));
    lm_test_rng rng = {lm_test_seed()};
    uint8_t *m = malloc(n);
    int ok = 0;
    for (int it = 0; it < 20000; it++) {
        memcpy(m, d, n);
        int flips = 1 + (int)(lm_test_rng_u64(&rng) % 4);
        for (int k = 0; k < flips; k++) {
            size_t at = (size_t)(lm_test_rng_u64(&rng) % n);
            m[at] = (lm_test_rng_u64(&rng) & 1) ? (uint8_t)lm_test_rng_u64(&rng)
                                                : (uint8_t)(m[at] ^ (1u << (it % 8)));
        }
        lm_gguf *g = NULL;
        lm_status s = lm_gguf_open_memory(m, n, NULL, &g);
        if (s == LM_OK) {
            ok++;
            char buf[256];
            for (int64_t i = 0; i < lm_gguf_n_kv(g); i++)
                lm_gguf_value_to_text(&lm_gguf_kv_at(g, i)->value, 4, buf, sizeof buf);
        } else {
            cr_expect(s == LM_ERR_FORMAT || s == LM_ERR_LIMIT, "status %d: %s", s, lm_last_error());
        }
        lm_gguf_close(g);
    }
    cr_log_info("random corruption: %d of 20000 still valid", ok);
    free(m);
    free(d);
}
