/* lumen devices: what each compiled-in backend can run on (the indices --device takes). */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEV_MAX 32

/* Every backend Lumen has, compiled in or not, so the listing says what is missing. */
static const char *const all_backends[] = {"cpu", "vulkan", "cuda"};
#define N_ALL (sizeof all_backends / sizeof all_backends[0])

static bool compiled_in(const char *name) {
    for (const char *const *b = lm_backends(); *b; b++)
        if (!strcmp(*b, name)) return true;
    return false;
}

static void print_text(const char *backend, lm_status s, const lm_device_info *d, int32_t n) {
    printf("%s:\n", backend);
    if (!compiled_in(backend)) {
        printf("  not compiled in (%s)\n", !strcmp(backend, "cuda")
                                               ? "nvcc was not found at configure time"
                                               : "the Vulkan SDK was not found at configure time");
        return;
    }
    if (s != LM_OK) {
        printf("  %s\n", lm_last_error());
        return;
    }
    if (n == 0) printf("  no device\n");
    for (int32_t i = 0; i < n; i++) {
        char mem[32] = "memory unknown";
        if (d[i].memory) cli_bytes(d[i].memory, mem, sizeof mem);
        printf("  %d  %s\n", d[i].index, d[i].name);
        printf("     type %s", d[i].type);
        if (d[i].n_cores) printf(", %d cores", d[i].n_cores);
        printf(", %s%s\n", mem, d[i].memory ? " memory" : "");
        if (d[i].detail[0]) printf("     %s\n", d[i].detail);
        if (!d[i].usable) printf("     not usable: %s\n", d[i].why_not);
    }
}

/* What a GPU backend reports beyond the common fields (Vulkan today). */
static void json_gpu(cJSON *j, const lm_device_info *d) {
    cJSON_AddStringToObject(j, "driver", d->driver);
    cJSON_AddNumberToObject(j, "subgroup_size", d->subgroup_size);
    cJSON_AddBoolToObject(j, "fp16", d->fp16);
    cJSON_AddBoolToObject(j, "int8", d->int8);
    cJSON_AddBoolToObject(j, "fp64", d->fp64);
    cJSON_AddBoolToObject(j, "storage16", d->storage16);
    cJSON_AddBoolToObject(j, "storage8", d->storage8);
    cJSON_AddBoolToObject(j, "cooperative_matrix", d->cooperative_matrix);
    cJSON_AddNumberToObject(j, "max_buffer_range", (double)d->max_buffer_range);
}

static cJSON *json_backend(const char *backend, lm_status s, const lm_device_info *d, int32_t n) {
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "backend", backend);
    cJSON_AddBoolToObject(b, "compiled_in", compiled_in(backend));
    if (compiled_in(backend) && s != LM_OK) cJSON_AddStringToObject(b, "error", lm_last_error());
    cJSON *arr = cJSON_AddArrayToObject(b, "devices");
    for (int32_t i = 0; compiled_in(backend) && s == LM_OK && i < n; i++) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "index", d[i].index);
        cJSON_AddStringToObject(j, "name", d[i].name);
        cJSON_AddStringToObject(j, "type", d[i].type);
        cJSON_AddNumberToObject(j, "memory", (double)d[i].memory);
        if (d[i].n_cores) cJSON_AddNumberToObject(j, "cores", d[i].n_cores);
        cJSON_AddStringToObject(j, "detail", d[i].detail);
        if (d[i].subgroup_size || d[i].driver[0]) json_gpu(j, &d[i]);
        cJSON_AddBoolToObject(j, "usable", d[i].usable);
        if (!d[i].usable) cJSON_AddStringToObject(j, "why_not", d[i].why_not);
        cJSON_AddItemToArray(arr, j);
    }
    return b;
}

int cmd_devices(const cli_opts *o) {
    lm_device_info *d = calloc(DEV_MAX, sizeof *d);
    if (!d) {
        fprintf(stderr, "lumen devices: error: out of memory\n");
        return 1;
    }
    cJSON *root = o->json ? cJSON_CreateArray() : NULL;
    for (size_t k = 0; k < N_ALL; k++) {
        int32_t n = 0;
        lm_status s = compiled_in(all_backends[k]) ? lm_devices(all_backends[k], d, DEV_MAX, &n)
                                                   : LM_ERR_UNSUPPORTED;
        if (n > DEV_MAX) n = DEV_MAX;
        if (root)
            cJSON_AddItemToArray(root, json_backend(all_backends[k], s, d, n));
        else
            print_text(all_backends[k], s, d, n);
    }
    if (root) {
        char *text = cJSON_Print(root);
        if (text) puts(text);
        free(text);
        cJSON_Delete(root);
    }
    free(d);
    return 0;
}
