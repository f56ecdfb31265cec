/* Tensor view helpers and the backend registry. */
#include "backend.h"

#include "lm_internal.h"
#include "quant.h"

#include <string.h>

void lm_tensor_init(lm_tensor *t, lm_buffer *buf, size_t offset, lm_type type, int64_t ne0,
                    int64_t ne1, int64_t ne2, int64_t ne3) {
    lm_type_traits tr = lm_type_get((uint32_t)type);
    memset(t, 0, sizeof *t);
    t->buf = buf;
    t->offset = offset;
    t->type = type;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->ne[2] = ne2;
    t->ne[3] = ne3;
    t->nb[0] = (size_t)tr.size; /* one element, or one block for block types */
    t->nb[1] = lm_row_size(type, ne0);
    t->nb[2] = t->nb[1] * (size_t)ne1;
    t->nb[3] = t->nb[2] * (size_t)ne2;
}

/* Bytes from the first to one past the last byte the view touches; for a contiguous
 * tensor that is its size. Works for strided views too. */
size_t lm_tensor_nbytes(const lm_tensor *t) {
    for (int i = 0; i < 4; i++)
        if (t->ne[i] <= 0) return 0;
    size_t n = lm_row_size(t->type, t->ne[0]);
    for (int i = 1; i < 4; i++) n += (size_t)(t->ne[i] - 1) * t->nb[i];
    return n;
}

int64_t lm_tensor_nelements(const lm_tensor *t) {
    return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
}

/* ---- registry: one row per backend compiled in ---- */

typedef lm_status (*lm__backend_ctor)(const lm_backend_config *cfg, lm_backend **out);

static const struct {
    const char *name;
    lm__backend_ctor create;
} lm__registry[] = {
#ifdef LM_HAVE_CUDA
    {"cuda", lm_cuda_backend_create},
#endif
#ifdef LM_HAVE_VULKAN
    {"vulkan", lm_vulkan_backend_create},
#endif
    {"cpu", lm_cpu_backend_create},
};

#define LM__N_BACKENDS (sizeof lm__registry / sizeof lm__registry[0])

const char *const *lm_backend_names(void) {
    static const char *names[LM__N_BACKENDS + 1];
    for (size_t i = 0; i < LM__N_BACKENDS; i++) names[i] = lm__registry[i].name;
    names[LM__N_BACKENDS] = NULL;
    return names;
}

lm_status lm_backend_mul_mat_n(lm_backend *be, int n, const lm_tensor *const *w, const lm_tensor *x,
                               lm_tensor *const *dst) {
    if (be->ops->mul_mat_n) return be->ops->mul_mat_n(be, n, w, x, dst);
    for (int i = 0; i < n; i++) LM_TRY(be->ops->mul_mat(be, w[i], x, dst[i]));
    return LM_OK;
}

lm_status lm_backend_norm_mul_mat_n(lm_backend *be, const lm_tensor *x, const lm_tensor *norm,
                                    float eps, lm_tensor *xn, int n, const lm_tensor *const *w,
                                    lm_tensor *const *dst) {
    if (be->ops->norm_mul_mat_n) return be->ops->norm_mul_mat_n(be, x, norm, eps, xn, n, w, dst);
    LM_TRY(be->ops->rms_norm(be, x, norm, eps, xn));
    return lm_backend_mul_mat_n(be, n, w, xn, dst);
}

lm_status lm_backend_create(const char *name, const lm_backend_config *cfg, lm_backend **out) {
    if (!out) return lm__error(LM_ERR_INVALID_ARG, "lm_backend_create: out is NULL");
    *out = NULL;
    if (!name) name = "cpu";
    const lm_backend_config defaults = {0, -1}; /* -1: the backend picks its device */
    if (!cfg) cfg = &defaults;
    for (size_t i = 0; i < LM__N_BACKENDS; i++) {
        if (strcmp(name, lm__registry[i].name) != 0) continue;
        lm_backend *be = NULL;
        LM_TRY(lm__registry[i].create(cfg, &be));
        if (be->ops->version != LM_BACKEND_INTERFACE_VERSION) {
            int v = be->ops->version;
            lm_backend_destroy(be);
            return lm__error(LM_ERR_BACKEND, "backend '%s': interface version %d, expected %d",
                             name, v, LM_BACKEND_INTERFACE_VERSION);
        }
        *out = be;
        return LM_OK;
    }
    char avail[256] = "";
    for (size_t i = 0; i < LM__N_BACKENDS; i++) {
        if (i) strncat(avail, ", ", sizeof avail - strlen(avail) - 1);
        strncat(avail, lm__registry[i].name, sizeof avail - strlen(avail) - 1);
    }
    return lm__error(LM_ERR_UNSUPPORTED, "backend '%s' is not compiled in (available: %s)", name,
                     avail);
}

void lm_backend_destroy(lm_backend *be) {
    if (be && be->ops && be->ops->destroy) be->ops->destroy(be);
}
