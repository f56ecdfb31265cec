/* Vulkan instance (with the validation layer on request), device listing and selection,
 * and the logical device with the features the shaders need. */
#include "vk_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *lm__vk_result_str(VkResult r) {
    switch (r) {
    case VK_SUCCESS:
        return "VK_SUCCESS";
    case VK_ERROR_OUT_OF_HOST_MEMORY:
        return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY:
        return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED:
        return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST:
        return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_LAYER_NOT_PRESENT:
        return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT:
        return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT:
        return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER:
        return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS:
        return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_OUT_OF_POOL_MEMORY:
        return "VK_ERROR_OUT_OF_POOL_MEMORY";
    case VK_TIMEOUT:
        return "VK_TIMEOUT";
    default:
        return "VkResult error";
    }
}

lm_status lm__vk_fail(VkResult r, const char *what) {
    lm_status s = r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY
                      ? LM_ERR_NOMEM
                      : LM_ERR_BACKEND;
    return lm__error(s, "vulkan: %s failed: %s (%d)", what, lm__vk_result_str(r), (int)r);
}

/* ---- instance ---- */

static int lm__vk_env_on(const char *name) {
    const char *e = getenv(name);
    return e && *e && strcmp(e, "0") != 0;
}

static VKAPI_ATTR VkBool32 VKAPI_CALL
lm__vk_debug_cb(VkDebugUtilsMessageSeverityFlagBitsEXT sev, VkDebugUtilsMessageTypeFlagsEXT types,
                const VkDebugUtilsMessengerCallbackDataEXT *data, void *user) {
    lm__vk *v = user;
    if (sev & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) {
        if (v) v->n_validation_errors++;
        lm__log(LM_LOG_ERROR, "vulkan validation: %s", data->pMessage);
    } else {
        lm__log(LM_LOG_WARN, "vulkan validation: %s", data->pMessage);
    }
    return VK_FALSE;
}

static int lm__vk_has_layer(const char *name) {
    uint32_t n = 0;
    if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0) return 0;
    VkLayerProperties *p = LM_MALLOC(n * sizeof *p);
    int found = 0;
    if (p && vkEnumerateInstanceLayerProperties(&n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++) found |= strcmp(p[i].layerName, name) == 0;
    LM_FREE(p);
    return found;
}

/* An instance extension of the loader/drivers (layer NULL) or of a layer. */
static int lm__vk_has_inst_ext(const char *layer, const char *name) {
    uint32_t n = 0;
    if (vkEnumerateInstanceExtensionProperties(layer, &n, NULL) != VK_SUCCESS || n == 0) return 0;
    VkExtensionProperties *p = LM_MALLOC(n * sizeof *p);
    int found = 0;
    if (p && vkEnumerateInstanceExtensionProperties(layer, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++) found |= strcmp(p[i].extensionName, name) == 0;
    LM_FREE(p);
    return found;
}

/* An instance for Vulkan 1.2; with `v` and LUMEN_VULKAN_VALIDATE set, the Khronos layer
 * and a messenger that counts its errors. */
static lm_status lm__vk_instance(lm__vk *v, VkInstance *out, VkDebugUtilsMessengerEXT *msg) {
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                             .pApplicationName = "lumen",
                             .pEngineName = "lumen",
                             .apiVersion = VK_API_VERSION_1_2};
    const char *exts[4], *layers[1];
    uint32_t n_ext = 0, n_layer = 0;
    VkInstanceCreateFlags flags = 0;
    const char *khr = "VK_LAYER_KHRONOS_validation";
    /* with the layer: core and synchronization validation (barriers are ours to get right) */
    const VkValidationFeatureEnableEXT enables[] = {
        VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT};
    VkValidationFeaturesEXT features = {.sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT,
                                        .enabledValidationFeatureCount = 1,
                                        .pEnabledValidationFeatures = enables};
    const void *next = NULL;
    int validate = v && lm__vk_env_on("LUMEN_VULKAN_VALIDATE");
    if (validate) {
        if (lm__vk_has_layer(khr) && lm__vk_has_inst_ext(NULL, VK_EXT_DEBUG_UTILS_EXTENSION_NAME)) {
            layers[n_layer++] = khr;
            exts[n_ext++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
            if (lm__vk_has_inst_ext(khr, VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME)) {
                exts[n_ext++] = VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME;
                next = &features;
            }
        } else {
            lm__log(LM_LOG_WARN, "LUMEN_VULKAN_VALIDATE is set but VK_LAYER_KHRONOS_validation "
                                 "is not installed (Debian: vulkan-validationlayers)");
            validate = 0;
        }
    }
#ifdef VK_KHR_portability_enumeration
    /* MoltenVK and other portability drivers are listed only when asked for */
    if (lm__vk_has_inst_ext(NULL, VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME)) {
        exts[n_ext++] = VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME;
        flags |= VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR;
    }
#endif
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                               .pNext = next,
                               .flags = flags,
                               .pApplicationInfo = &app,
                               .enabledLayerCount = n_layer,
                               .ppEnabledLayerNames = layers,
                               .enabledExtensionCount = n_ext,
                               .ppEnabledExtensionNames = exts};
    VkResult r = vkCreateInstance(&ci, NULL, out);
    if (r != VK_SUCCESS) {
        *out = VK_NULL_HANDLE;
        return lm__error(LM_ERR_BACKEND, "vulkan: no usable Vulkan loader/driver (%s)",
                         lm__vk_result_str(r));
    }
    *msg = VK_NULL_HANDLE;
    if (validate) {
        PFN_vkCreateDebugUtilsMessengerEXT create = (PFN_vkCreateDebugUtilsMessengerEXT)(void (*)(
            void))vkGetInstanceProcAddr(*out, "vkCreateDebugUtilsMessengerEXT");
        VkDebugUtilsMessengerCreateInfoEXT mi = {
            .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
            .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                               VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
            .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
            .pfnUserCallback = lm__vk_debug_cb,
            .pUserData = v};
        if (create) create(*out, &mi, NULL, msg);
        lm__log(LM_LOG_INFO, "vulkan: validation layer enabled");
    }
    return LM_OK;
}

/* ---- physical devices, best first ---- */

static int lm__vk_type_rank(VkPhysicalDeviceType t) {
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
        return 0;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
        return 1;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
        return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU:
        return 4;
    default:
        return 3;
    }
}

static const char *lm__vk_type_name(VkPhysicalDeviceType t) {
    static const char *names[] = {"discrete", "integrated", "virtual", "other", "cpu"};
    return names[lm__vk_type_rank(t)];
}

/* The devices sorted by type rank (stable). *out is malloc'd. */
static lm_status lm__vk_devices(VkInstance inst, VkPhysicalDevice **out, uint32_t *n) {
    *out = NULL;
    *n = 0;
    VkResult r = vkEnumeratePhysicalDevices(inst, n, NULL);
    if (r != VK_SUCCESS) return lm__vk_fail(r, "vkEnumeratePhysicalDevices");
    if (*n == 0) return LM_OK;
    VkPhysicalDevice *d = LM_MALLOC(*n * sizeof *d);
    if (!d) return lm__error(LM_ERR_NOMEM, "vulkan: cannot list %u devices", *n);
    r = vkEnumeratePhysicalDevices(inst, n, d);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) {
        LM_FREE(d);
        return lm__vk_fail(r, "vkEnumeratePhysicalDevices");
    }
    for (uint32_t i = 1; i < *n; i++) { /* insertion sort: a handful of devices */
        VkPhysicalDeviceProperties pi;
        vkGetPhysicalDeviceProperties(d[i], &pi);
        VkPhysicalDevice x = d[i];
        uint32_t j = i;
        for (; j > 0; j--) {
            VkPhysicalDeviceProperties pj;
            vkGetPhysicalDeviceProperties(d[j - 1], &pj);
            if (lm__vk_type_rank(pj.deviceType) <= lm__vk_type_rank(pi.deviceType)) break;
            d[j] = d[j - 1];
        }
        d[j] = x;
    }
    *out = d;
    return LM_OK;
}

static int lm__vk_compute_queue(VkPhysicalDevice pd, uint32_t *fam) {
    uint32_t n = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, NULL);
    VkQueueFamilyProperties q[16];
    if (n > 16) n = 16;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, q);
    for (uint32_t i = 0; i < n; i++)
        if (q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
            *fam = i;
            return 1;
        }
    return 0;
}

/* Empty string if the device has what the shaders need, else what it lacks. */
static void lm__vk_usable(VkPhysicalDevice pd, char *why, size_t size) {
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(pd, &p);
    VkPhysicalDeviceVulkan12Features f12 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    VkPhysicalDeviceVulkan11Features f11 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES, .pNext = &f12};
    VkPhysicalDeviceFeatures2 f = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                   .pNext = &f11};
    uint32_t fam;
    why[0] = '\0';
    if (p.apiVersion < VK_API_VERSION_1_2) {
        snprintf(why, size, "Vulkan %u.%u (1.2 needed)", VK_API_VERSION_MAJOR(p.apiVersion),
                 VK_API_VERSION_MINOR(p.apiVersion));
        return;
    }
    vkGetPhysicalDeviceFeatures2(pd, &f);
    if (!f11.storageBuffer16BitAccess)
        snprintf(why, size, "no storageBuffer16BitAccess");
    else if (!f12.storageBuffer8BitAccess)
        snprintf(why, size, "no storageBuffer8BitAccess");
    else if (!lm__vk_compute_queue(pd, &fam))
        snprintf(why, size, "no compute queue");
    else if (p.limits.maxComputeWorkGroupInvocations < 256 ||
             p.limits.maxComputeSharedMemorySize < 16384)
        snprintf(why, size, "compute limits below 256 invocations / 16 KiB shared memory");
}

static uint64_t lm__vk_local_heap(VkPhysicalDevice pd) {
    VkPhysicalDeviceMemoryProperties m;
    vkGetPhysicalDeviceMemoryProperties(pd, &m);
    uint64_t best = 0;
    for (uint32_t i = 0; i < m.memoryHeapCount; i++)
        if ((m.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) &&
            m.memoryHeaps[i].size > best)
            best = m.memoryHeaps[i].size;
    return best;
}

static int lm__vk_has_dev_ext(VkPhysicalDevice pd, const char *name);

/* Driver, subgroup, arithmetic and storage features for `lumen devices`. Chains only what
 * the device's API version has: a 1.1 device must not see 1.2 structures. */
static void lm__vk_describe(VkPhysicalDevice pd, const VkPhysicalDeviceProperties *p,
                            lm_vulkan_device_info *o) {
    o->max_storage_range = p->limits.maxStorageBufferRange;
    o->cooperative_matrix = lm__vk_has_dev_ext(pd, "VK_KHR_cooperative_matrix");
    if (p->apiVersion < VK_API_VERSION_1_1) return;
    VkPhysicalDeviceDriverProperties drv = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    VkPhysicalDeviceSubgroupProperties sub = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
                                      .pNext = &sub};
    int v12 = p->apiVersion >= VK_API_VERSION_1_2;
    if (v12) sub.pNext = &drv;
    vkGetPhysicalDeviceProperties2(pd, &p2);
    o->subgroup_size = sub.subgroupSize;
    o->driver_version = p->driverVersion;
    if (v12) {
        snprintf(o->driver_name, sizeof o->driver_name, "%s", drv.driverName);
        snprintf(o->driver_info, sizeof o->driver_info, "%s", drv.driverInfo);
    }

    VkPhysicalDeviceVulkan12Features f12 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    VkPhysicalDeviceVulkan11Features f11 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES, .pNext = v12 ? &f12 : NULL};
    VkPhysicalDeviceFeatures2 f = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                   .pNext = &f11};
    vkGetPhysicalDeviceFeatures2(pd, &f);
    o->fp64 = f.features.shaderFloat64 != 0;
    o->storage16 = f11.storageBuffer16BitAccess != 0;
    o->fp16 = f12.shaderFloat16 != 0;
    o->int8 = f12.shaderInt8 != 0;
    o->storage8 = f12.storageBuffer8BitAccess != 0;
}

lm_status lm_vulkan_list_devices(lm_vulkan_device_info *out, int32_t cap, int32_t *n_devices) {
    if (!n_devices || cap < 0 || (cap > 0 && !out))
        return lm__error(LM_ERR_INVALID_ARG, "lm_vulkan_list_devices: bad arguments");
    *n_devices = 0;
    VkInstance inst;
    VkDebugUtilsMessengerEXT msg;
    LM_TRY(lm__vk_instance(NULL, &inst, &msg));
    VkPhysicalDevice *d;
    uint32_t n;
    lm_status s = lm__vk_devices(inst, &d, &n);
    if (s != LM_OK) {
        vkDestroyInstance(inst, NULL);
        return s;
    }
    for (uint32_t i = 0; i < n && (int32_t)i < cap; i++) {
        VkPhysicalDeviceProperties p;
        vkGetPhysicalDeviceProperties(d[i], &p);
        lm_vulkan_device_info *o = &out[i];
        memset(o, 0, sizeof *o);
        o->index = (int32_t)i;
        snprintf(o->name, sizeof o->name, "%s", p.deviceName);
        o->type = lm__vk_type_name(p.deviceType);
        o->vendor_id = p.vendorID;
        o->device_id = p.deviceID;
        o->api_version = p.apiVersion;
        o->memory = lm__vk_local_heap(d[i]);
        lm__vk_usable(d[i], o->why_not, sizeof o->why_not);
        o->usable = o->why_not[0] == '\0';
        lm__vk_describe(d[i], &p, o);
    }
    *n_devices = (int32_t)n;
    LM_FREE(d);
    vkDestroyInstance(inst, NULL);
    return LM_OK;
}

/* Index of the device LUMEN_VULKAN_DEVICE names: a number or a case-insensitive part of
 * its name. */
static lm_status lm__vk_pick_env(VkPhysicalDevice *d, uint32_t n, const char *env, uint32_t *pick) {
    char *end;
    long idx = strtol(env, &end, 10);
    if (*end == '\0') {
        if (idx < 0 || (uint32_t)idx >= n)
            return lm__error(LM_ERR_INVALID_ARG,
                             "vulkan: LUMEN_VULKAN_DEVICE=%s but there are %u devices", env, n);
        *pick = (uint32_t)idx;
        return LM_OK;
    }
    char lenv[256];
    size_t k = 0;
    for (; env[k] && k + 1 < sizeof lenv; k++) lenv[k] = (char)tolower((unsigned char)env[k]);
    lenv[k] = '\0';
    for (uint32_t i = 0; i < n; i++) {
        VkPhysicalDeviceProperties p;
        vkGetPhysicalDeviceProperties(d[i], &p);
        char lname[VK_MAX_PHYSICAL_DEVICE_NAME_SIZE];
        for (k = 0; p.deviceName[k] && k + 1 < sizeof lname; k++)
            lname[k] = (char)tolower((unsigned char)p.deviceName[k]);
        lname[k] = '\0';
        if (strstr(lname, lenv)) {
            *pick = i;
            return LM_OK;
        }
    }
    return lm__error(LM_ERR_INVALID_ARG, "vulkan: no device name contains LUMEN_VULKAN_DEVICE=%s",
                     env);
}

/* cfg->device when it is an index (an explicit choice wins over the environment, as
 * command-line flags do), else the device LUMEN_VULKAN_DEVICE names, else the first
 * usable one. */
static lm_status lm__vk_pick(VkPhysicalDevice *d, uint32_t n, const lm_backend_config *cfg,
                             uint32_t *pick) {
    const char *env = getenv("LUMEN_VULKAN_DEVICE");
    char why[160];
    int32_t dev = cfg ? cfg->device : -1;
    if (dev < -1)
        return lm__error(LM_ERR_INVALID_ARG, "vulkan: device %d: expected an index or -1", dev);
    if (dev >= 0) {
        if ((uint32_t)dev >= n)
            return lm__error(LM_ERR_INVALID_ARG, "vulkan: device %d requested but there are %u",
                             dev, n);
        *pick = (uint32_t)dev;
    } else if (env && *env) {
        LM_TRY(lm__vk_pick_env(d, n, env, pick));
    } else { /* the first usable device */
        for (*pick = 0; *pick < n; (*pick)++) {
            lm__vk_usable(d[*pick], why, sizeof why);
            if (!why[0]) return LM_OK;
        }
        return lm__error(LM_ERR_UNSUPPORTED, "vulkan: none of the %u devices is usable", n);
    }
    lm__vk_usable(d[*pick], why, sizeof why);
    if (why[0]) {
        VkPhysicalDeviceProperties p;
        vkGetPhysicalDeviceProperties(d[*pick], &p);
        return lm__error(LM_ERR_UNSUPPORTED, "vulkan: device %u (%s) is not usable: %s", *pick,
                         p.deviceName, why);
    }
    return LM_OK;
}

static int lm__vk_has_dev_ext(VkPhysicalDevice pd, const char *name) {
    uint32_t n = 0;
    if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) != VK_SUCCESS || !n) return 0;
    VkExtensionProperties *p = LM_MALLOC(n * sizeof *p);
    int found = 0;
    if (p && vkEnumerateDeviceExtensionProperties(pd, NULL, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++) found |= strcmp(p[i].extensionName, name) == 0;
    LM_FREE(p);
    return found;
}

static lm_status lm__vk_logical(lm__vk *v) {
    VkPhysicalDeviceFeatures2 have = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    vkGetPhysicalDeviceFeatures2(v->pdev, &have);
    v->has_f64 = have.features.shaderFloat64 != 0;

    VkPhysicalDeviceVulkan12Features f12 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
        .storageBuffer8BitAccess = VK_TRUE};
    VkPhysicalDeviceVulkan11Features f11 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
        .pNext = &f12,
        .storageBuffer16BitAccess = VK_TRUE};
    VkPhysicalDeviceFeatures2 want = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                      .pNext = &f11};
    want.features.shaderFloat64 = v->has_f64 ? VK_TRUE : VK_FALSE;

    const char *exts[2];
    uint32_t n_ext = 0;
    v->has_budget = lm__vk_has_dev_ext(v->pdev, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
    if (v->has_budget) exts[n_ext++] = VK_EXT_MEMORY_BUDGET_EXTENSION_NAME;
    if (lm__vk_has_dev_ext(v->pdev, "VK_KHR_portability_subset"))
        exts[n_ext++] = "VK_KHR_portability_subset"; /* required where offered */

    const float prio = 1.0f;
    VkDeviceQueueCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                  .queueFamilyIndex = v->qfam,
                                  .queueCount = 1,
                                  .pQueuePriorities = &prio};
    VkDeviceCreateInfo di = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                             .pNext = &want,
                             .queueCreateInfoCount = 1,
                             .pQueueCreateInfos = &qi,
                             .enabledExtensionCount = n_ext,
                             .ppEnabledExtensionNames = exts};
    VkResult r = vkCreateDevice(v->pdev, &di, NULL, &v->dev);
    if (r != VK_SUCCESS) {
        v->dev = VK_NULL_HANDLE;
        return lm__vk_fail(r, "vkCreateDevice");
    }
    vkGetDeviceQueue(v->dev, v->qfam, 0, &v->queue);
    return LM_OK;
}

lm_status lm__vk_device_open(lm__vk *v, const lm_backend_config *cfg) {
    LM_TRY(lm__vk_instance(v, &v->inst, &v->messenger));
    VkPhysicalDevice *d;
    uint32_t n, pick = 0;
    LM_TRY(lm__vk_devices(v->inst, &d, &n));
    if (n == 0) {
        LM_FREE(d);
        return lm__error(LM_ERR_UNSUPPORTED, "vulkan: no Vulkan devices (is a driver such as "
                                             "mesa-vulkan-drivers installed?)");
    }
    lm_status s = lm__vk_pick(d, n, cfg, &pick);
    if (s == LM_OK) v->pdev = d[pick];
    LM_FREE(d);
    LM_TRY(s);
    vkGetPhysicalDeviceProperties(v->pdev, &v->props);
    vkGetPhysicalDeviceMemoryProperties(v->pdev, &v->mem_props);
    lm__vk_compute_queue(v->pdev, &v->qfam);
    v->uma = v->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU ||
             v->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
    /* lavapipe runs each workgroup as a task with a fixed cost: a few big ones per core
     * (the shaders loop over their items) instead of thousands of small ones */
    /* LUMEN_VULKAN_F32=1: the float variants even where doubles exist (to try them) */
    const char *f32 = getenv("LUMEN_VULKAN_F32");
    v->force_f32 = f32 && *f32 && strcmp(f32, "0") != 0;
    const char *fa = getenv("LUMEN_VULKAN_ATTENTION");
    v->flash_attention = fa && strcmp(fa, "flash") == 0;
    const char *mg = getenv("LUMEN_VULKAN_MAX_GROUPS");
    v->max_groups = mg && *mg ? (uint32_t)strtoul(mg, NULL, 10)
                    : v->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU ? 64
                                                                         : 0;
    VkDeviceSize align = v->props.limits.minStorageBufferOffsetAlignment;
    v->bind_align = align < 4 ? 4 : align;
    v->max_range = v->props.limits.maxStorageBufferRange & ~(v->bind_align - 1);
    LM_TRY(lm__vk_logical(v));
    snprintf(v->name, sizeof v->name, "%s (Vulkan %u.%u, %s, device %u)", v->props.deviceName,
             VK_API_VERSION_MAJOR(v->props.apiVersion), VK_API_VERSION_MINOR(v->props.apiVersion),
             lm__vk_type_name(v->props.deviceType), pick);
    return LM_OK;
}

void lm__vk_device_close(lm__vk *v) {
    if (v->dev) vkDestroyDevice(v->dev, NULL);
    if (v->messenger) {
        PFN_vkDestroyDebugUtilsMessengerEXT destroy =
            (PFN_vkDestroyDebugUtilsMessengerEXT)(void (*)(void))vkGetInstanceProcAddr(
                v->inst, "vkDestroyDebugUtilsMessengerEXT");
        if (destroy) destroy(v->inst, v->messenger, NULL);
    }
    if (v->inst) vkDestroyInstance(v->inst, NULL);
}
