/* Device listing and selection behind lm_devices / lm_model_params.device, and the host
 * side of the per-layer callback `lumen verify` uses (inspect.c). */
#ifndef LM_INSPECT_H
#define LM_INSPECT_H

#include "backend.h"

/* Check params' device against the backend's devices and fill cfg->device: -1 keeps the
 * backend's default (its environment variable, else the first usable device). Errors name
 * the valid choices. */
lm_status lm__device_config(const char *backend, int32_t device, lm_backend_config *cfg);

#endif
