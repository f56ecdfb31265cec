/* lumen serve: the HTTP side (libmicrohttpd, one thread per connection): routing, API key,
 * request checks and tokenization, OpenAI-shaped answers and Server-Sent Events. */
#ifndef LM_SERVE_HTTP_H
#define LM_SERVE_HTTP_H

#include "lumen.h"
#include "serve_engine.h"
#include "serve_metrics.h"

typedef struct srv_server srv_server;

/* Start listening. fingerprint: system_fingerprint for every answer. Prints what is wrong
 * and returns NULL on failure (address in use, bad --host, ...). */
srv_server *srv_server_start(lm_model *m, srv_engine *e, srv_metrics *metrics,
                             const srv_config *cfg, const char *fingerprint);
/* The port actually bound (--port 0 picks a free one). */
int srv_server_port(const srv_server *s);
/* Stop accepting connections; /health answers 503 from now on. */
void srv_server_quiesce(srv_server *s);
/* Connections still open. */
unsigned srv_server_connections(const srv_server *s);
/* Close everything and free (waits for the connection threads). */
void srv_server_stop(srv_server *s);

/* True for loopback addresses (127.0.0.0/8, ::1, localhost). */
bool srv_host_is_loopback(const char *host);

#endif
