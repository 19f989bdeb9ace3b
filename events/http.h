/* SPDX-License-Identifier: MIT */
/* The health and metrics listener (libmicrohttpd, its own thread): GET /healthz
 * answers 200 only when the service is ready, GET /metrics the Prometheus text. */
#ifndef EV_HTTP_H
#define EV_HTTP_H

#include <microhttpd.h>
#include <netdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "metrics.h"

typedef struct ev_http ev_http;

/* Readiness predicate; called from the server's thread, so it must be
 * thread-safe (ev_metrics_ready reads an atomic gauge). */
typedef bool (*ev_http_ready_fn)(void *arg);

/* Listens on addr: "host:port", "[v6]:port" or ":port" (all IPv4 interfaces);
 * port 0 picks a free one (see ev_http_port). NULL or "" = off: *out = NULL and
 * 0 returned. metrics is borrowed and must outlive the server; ready may be
 * NULL (then /healthz is always 200). EV_EINVAL on a bad address, EV_EIO when
 * it cannot listen. */
int ev_http_start(ev_http **out, const char *addr, ev_metrics *metrics,
                  ev_http_ready_fn ready, void *ready_arg, ev_error *err);

/* The bound TCP port; 0 for NULL. */
uint16_t ev_http_port(const ev_http *h);

/* Stops the thread, closes the socket, frees h; NULL is a no-op. */
void ev_http_stop(ev_http *h);

/* ---- for other libmicrohttpd servers (choreo board) ---- */

/* addr ("host:port", "[v6]:port", ":port" = all IPv4 interfaces) resolved for
 * listening; *res is the caller's (freeaddrinfo). EV_EINVAL says why not. */
int ev_http_resolve(const char *addr, struct addrinfo **res, ev_error *err);

/* The start of an access handler, for GET and HEAD servers: EV_HTTP_AGAIN
 * (return MHD_YES: the first call, or a request body, which is ignored),
 * EV_HTTP_NOT_ALLOWED (answer 405), or EV_HTTP_SERVE. */
enum { EV_HTTP_SERVE, EV_HTTP_AGAIN, EV_HTTP_NOT_ALLOWED };
int ev_http_request_start(const char *method, size_t *upload_data_size, void **req_cls);

/* Queues a response of len bytes of body (freed by libmicrohttpd with
 * MHD_RESPMEM_MUST_FREE, also when it fails), uncached; a 405 says
 * "Allow: GET, HEAD". */
enum MHD_Result ev_http_respond(struct MHD_Connection *conn, unsigned status,
                                const char *ctype, const void *body, size_t len,
                                enum MHD_ResponseMemoryMode mode);

#endif
