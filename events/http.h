/* SPDX-License-Identifier: MIT */
/* The health and metrics listener (libmicrohttpd, its own thread): GET /healthz
 * answers 200 only when the service is ready, GET /metrics the Prometheus text. */
#ifndef EV_HTTP_H
#define EV_HTTP_H

#include <stdbool.h>
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

#endif
