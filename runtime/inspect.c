/* lm_devices (what `lumen devices` prints), the device check behind
 * lm_model_params.device, and lm_context_set_layer_fn (what `lumen verify` compares). */
#include "inspect.h"

#include "../kernels/cpu/cpu_internal.h"
#include "context.h"
#include "lm_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const *lm_backends(void) {
    return lm_backend_names();
}

static bool lm__backend_compiled(const char *name) {
    for (const char *const *b = lm_backend_names(); *b; b++)
        if (!strcmp(*b, name)) return true;
    return false;
}

/* "cuda, vulkan, cpu" */
static void lm__backend_list(char *buf, size_t n) {
    buf[0] = '\0';
    for (const char *const *b = lm_backend_names(); *b; b++) {
        size_t len = strlen(buf);
        snprintf(buf + len, n - len, "%s%s", len ? ", " : "", *b);
    }
}

/* ---- CPU: one device; its model name, cores and the SIMD level the backend picked ---- */

static lm_status lm__devices_cpu(lm_device_info *out, int32_t cap, int32_t *n) {
    *n = 1;
    if (cap < 1) return LM_OK;
    lm_backend_config cfg = {.n_threads = 1, .device = 0};
    lm_backend *be = NULL;
    LM_TRY(lm_backend_create("cpu", &cfg, &be));
    lm_device_info *d = &out[0];
    memset(d, 0, sizeof *d);
    snprintf(d->backend, sizeof d->backend, "cpu");
    snprintf(d->type, sizeof d->type, "cpu");
    /* the device name is "<model> (1 threads, <level>)": keep the model */
    snprintf(d->name, sizeof d->name, "%s", be->ops->device_name(be));
    char *paren = strstr(d->name, " (");
    if (paren) *paren = '\0';
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    d->n_cores = cores > 0 ? (int32_t)cores : 1;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    d->memory = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    char supported[64] = "";
    for (int l = 0; l < LM__CPU_LEVEL_COUNT; l++) {
        if (!lm__cpu_level_supported((lm__cpu_level)l)) continue;
        size_t len = strlen(supported);
        snprintf(supported + len, sizeof supported - len, "%s%s", len ? ", " : "",
                 lm__cpu_level_name((lm__cpu_level)l));
    }
    snprintf(d->detail, sizeof d->detail, "SIMD level %s (supported: %s; LUMEN_CPU_LEVEL)",
             lm__cpu_level_name(lm__cpu_get_level(be)), supported);
    d->usable = true;
    lm_backend_destroy(be);
    return LM_OK;
}

/* ---- Vulkan: lm_vulkan_list_devices ---- */

#ifdef LM_HAVE_VULKAN
/* The structured facts, and the detail line: "Vulkan 1.3.230, llvmpipe (Mesa 22.3.6 (LLVM
 * 15.0.6)), vendor 0x10005, device 0x0000; subgroup 8; binding max 128 MiB; fp16, int8,
 * fp64, 16-bit storage, 8-bit storage" */
static void lm__vulkan_detail(const lm_vulkan_device_info *v, lm_device_info *d) {
    snprintf(d->driver, sizeof d->driver, "%s%s%s", v->driver_name,
             v->driver_name[0] && v->driver_info[0] ? " " : "", v->driver_info);
    d->subgroup_size = (int32_t)v->subgroup_size;
    d->fp16 = v->fp16 != 0;
    d->int8 = v->int8 != 0;
    d->fp64 = v->fp64 != 0;
    d->storage16 = v->storage16 != 0;
    d->storage8 = v->storage8 != 0;
    d->cooperative_matrix = v->cooperative_matrix != 0;
    d->max_buffer_range = v->max_storage_range;
    char drv[160] = "";
    if (v->driver_name[0])
        snprintf(drv, sizeof drv, ", %.48s%s%.96s%s", v->driver_name, v->driver_info[0] ? " (" : "",
                 v->driver_info, v->driver_info[0] ? ")" : "");
    char feat[80] = ""; /* the optional shader features it offers */
    const struct {
        int32_t on;
        const char *name;
    } f[] = {{v->fp16, "fp16"},
             {v->int8, "int8"},
             {v->fp64, "fp64"},
             {v->storage16, "16-bit storage"},
             {v->storage8, "8-bit storage"},
             {v->cooperative_matrix, "cooperative matrix"}};
    for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) {
        size_t len = strlen(feat);
        if (f[k].on) snprintf(feat + len, sizeof feat - len, "%s%s", len ? ", " : "", f[k].name);
    }
    /* VK_MAKE_API_VERSION: variant 29-31, major 22-28, minor 12-21, patch 0-11 */
    snprintf(d->detail, sizeof d->detail,
             "Vulkan %u.%u.%u%s, vendor 0x%04x, device 0x%04x; subgroup %u; binding max %llu MiB; "
             "%s",
             (v->api_version >> 22) & 0x7f, (v->api_version >> 12) & 0x3ff, v->api_version & 0xfff,
             drv, v->vendor_id, v->device_id, v->subgroup_size,
             (unsigned long long)(v->max_storage_range >> 20),
             feat[0] ? feat : "no optional features");
}

static lm_status lm__devices_vulkan(lm_device_info *out, int32_t cap, int32_t *n) {
    LM_TRY(lm_vulkan_list_devices(NULL, 0, n));
    int32_t k = *n < cap ? *n : cap;
    if (k <= 0) return LM_OK;
    lm_vulkan_device_info *v = LM_CALLOC((size_t)k, sizeof *v);
    if (!v) return lm__error(LM_ERR_NOMEM, "vulkan: cannot allocate the device list");
    int32_t n2 = 0;
    lm_status s = lm_vulkan_list_devices(v, k, &n2);
    for (int32_t i = 0; s == LM_OK && i < k && i < n2; i++) {
        lm_device_info *d = &out[i];
        memset(d, 0, sizeof *d);
        snprintf(d->backend, sizeof d->backend, "vulkan");
        d->index = v[i].index;
        snprintf(d->name, sizeof d->name, "%s", v[i].name);
        snprintf(d->type, sizeof d->type, "%s", v[i].type ? v[i].type : "other");
        lm__vulkan_detail(&v[i], d);
        d->memory = v[i].memory;
        d->usable = v[i].usable != 0;
        snprintf(d->why_not, sizeof d->why_not, "%s", v[i].why_not);
    }
    if (s == LM_OK && n2 < *n) *n = n2;
    LM_FREE(v);
    return s;
}
#endif

/* ---- CUDA: no listing call; each index is opened until the driver says there is none ---- */

#ifdef LM_HAVE_CUDA
static lm_status lm__devices_cuda(lm_device_info *out, int32_t cap, int32_t *n) {
    *n = 0;
    for (int32_t i = 0; i < 64; i++) { /* an index wins over LUMEN_CUDA_DEVICE */
        lm_backend_config cfg = {.n_threads = 0, .device = i};
        lm_backend *be = NULL;
        lm_status s = lm_backend_create("cuda", &cfg, &be);
        if (s == LM_ERR_INVALID_ARG && i > 0) break; /* past the last device */
        if (s != LM_OK && (i == 0 && (s == LM_ERR_BACKEND || s == LM_ERR_INVALID_ARG))) return s;
        if (i < cap) {
            lm_device_info *d = &out[i];
            memset(d, 0, sizeof *d);
            snprintf(d->backend, sizeof d->backend, "cuda");
            d->index = i;
            snprintf(d->type, sizeof d->type, "discrete");
            d->usable = s == LM_OK;
            if (be) {
                snprintf(d->name, sizeof d->name, "%s", be->ops->device_name(be));
                d->memory = be->ops->device_memory ? be->ops->device_memory(be) : 0;
                snprintf(d->detail, sizeof d->detail, "memory: free now");
            } else {
                snprintf(d->name, sizeof d->name, "CUDA device %d", i);
                snprintf(d->why_not, sizeof d->why_not, "%s", lm_last_error());
            }
        }
        lm_backend_destroy(be);
        (*n)++;
    }
    return LM_OK;
}
#endif

lm_status lm_devices(const char *backend, lm_device_info *out, int32_t cap, int32_t *n_devices) {
    if (!n_devices || cap < 0 || (cap > 0 && !out))
        return lm__error(LM_ERR_INVALID_ARG, "lm_devices: bad arguments");
    *n_devices = 0;
    if (!backend) backend = "cpu";
    if (!lm__backend_compiled(backend)) {
        char list[128];
        lm__backend_list(list, sizeof list);
        return lm__error(LM_ERR_UNSUPPORTED, "backend '%s' is not compiled in (available: %s)",
                         backend, list);
    }
    if (!strcmp(backend, "cpu")) return lm__devices_cpu(out, cap, n_devices);
#ifdef LM_HAVE_VULKAN
    if (!strcmp(backend, "vulkan")) return lm__devices_vulkan(out, cap, n_devices);
#endif
#ifdef LM_HAVE_CUDA
    if (!strcmp(backend, "cuda")) return lm__devices_cuda(out, cap, n_devices);
#endif
    return lm__error(LM_ERR_UNSUPPORTED, "lm_devices: no device list for backend '%s'", backend);
}

/* ---- lm_model_params.device -> lm_backend_config.device ---- */

/* "0 (llvmpipe ...), 1 (...)": the valid indices with their names */
static void lm__device_choices(const lm_device_info *d, int32_t n, char *buf, size_t size) {
    buf[0] = '\0';
    for (int32_t i = 0; i < n; i++) {
        size_t len = strlen(buf);
        snprintf(buf + len, size - len, "%s%d (%s%s)", len ? ", " : "", d[i].index, d[i].name,
                 d[i].usable ? "" : ", not usable");
    }
}

lm_status lm__device_config(const char *backend, int32_t device, lm_backend_config *cfg) {
    if (!backend) backend = "cpu";
    cfg->device = -1; /* the backends' default: their environment variable or the first usable */
    if (device == -1) return LM_OK;
    if (device < -1)
        return lm__error(LM_ERR_INVALID_ARG, "device %d: expected an index >= 0 or -1 (default)",
                         device);
    /* CUDA lists devices by opening each: let the backend check the index itself */
    if (!strcmp(backend, "cuda")) {
        cfg->device = device;
        return LM_OK;
    }
    lm_device_info d[16];
    int32_t n = 0;
    LM_TRY(lm_devices(backend, d, 16, &n));
    if (n > 16) n = 16;
    char choices[1024];
    lm__device_choices(d, n, choices, sizeof choices);
    if (device >= n)
        return lm__error(LM_ERR_INVALID_ARG, "%s: device %d does not exist; devices: %s", backend,
                         device, choices);
    if (!d[device].usable)
        return lm__error(LM_ERR_UNSUPPORTED, "%s: device %d (%s) is not usable: %s; devices: %s",
                         backend, device, d[device].name, d[device].why_not, choices);
    if (!strcmp(backend, "vulkan")) {
        const char *env = getenv("LUMEN_VULKAN_DEVICE");
        if (env && *env)
            lm__log(LM_LOG_INFO, "vulkan: device %d given, LUMEN_VULKAN_DEVICE=%s not used", device,
                    env);
    }
    cfg->device = device;
    return LM_OK;
}

/* ---- per-layer callback: a host copy of each layer's output through the context hook ---- */

static void lm__layer_copy(int layer, const lm_tensor *x, void *user) {
    lm_context *c = user;
    size_t bytes = lm_tensor_nbytes(x);
    /* a copy per layer: only while inspecting, next to a device sync per layer anyway */
    float *buf = LM_MALLOC(bytes ? bytes : 1);
    if (!buf) {
        lm__log(LM_LOG_ERROR, "layer %d: cannot allocate %zu bytes for its state", layer, bytes);
        return;
    }
    if (c->be->ops->download(c->be, x->buf, x->offset, buf, bytes) == LM_OK)
        c->layer_fn(layer, buf, (int32_t)x->ne[0], (int32_t)x->ne[1], c->layer_user);
    else
        lm__log(LM_LOG_ERROR, "layer %d: cannot read its state back: %s", layer, lm_last_error());
    LM_FREE(buf);
}

void lm_context_set_layer_fn(lm_context *ctx, lm_layer_fn fn, void *user) {
    if (!ctx) return;
    ctx->layer_fn = fn;
    ctx->layer_user = user;
    ctx->hook = fn ? lm__layer_copy : NULL;
    ctx->hook_user = fn ? ctx : NULL;
}
