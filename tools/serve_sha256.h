/* lumen serve: SHA-256 of the model file, for system_fingerprint. */
#ifndef LM_SERVE_SHA256_H
#define LM_SERVE_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct srv_sha256 {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t n;
} srv_sha256;

void srv_sha256_init(srv_sha256 *c);
void srv_sha256_update(srv_sha256 *c, const void *data, size_t n);
void srv_sha256_final(srv_sha256 *c, uint8_t out[32]);
/* Hash a whole file; returns 0, or -1 if it cannot be read. */
int srv_sha256_file(const char *path, uint8_t out[32]);

#endif
