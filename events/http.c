/* SPDX-License-Identifier: MIT */
/* libmicrohttpd server for /healthz and /metrics: address parsing, one request
 * handler, responses built from the readiness callback and ev_metrics_render. */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"

struct ev_http {
    struct MHD_Daemon *daemon;
    ev_metrics *metrics;
    ev_http_ready_fn ready;
    void *ready_arg;
    uint16_t port;
};

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Splits "host:port" / "[v6]:port" / ":port" into host (may be "") and port. */
static int split_addr(const char *addr, char *host, size_t host_cap, char *port,
                      size_t port_cap, ev_error *err)
{
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon[1] == '\0')
        return ev_error_set(err, EV_EINVAL, "http addr %s: want host:port", addr);
    const char *h = addr;
    size_t hlen = (size_t)(colon - addr);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen >= host_cap || strlen(colon + 1) >= port_cap)
        return ev_error_set(err, EV_EINVAL, "http addr %s: too long", addr);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    snprintf(port, port_cap, "%s", colon + 1);
    char *end = NULL;
    long p = strtol(port, &end, 10);
    if (end == port || *end != '\0' || p < 0 || p > 65535)
        return ev_error_set(err, EV_EINVAL, "http addr %s: bad port", addr);
    return 0;
}

int ev_http_resolve(const char *addr, struct addrinfo **res, ev_error *err)
{
    char host[256], port[16];
    int rc = split_addr(addr, host, sizeof(host), port, sizeof(port), err);
    if (rc != 0)
        return rc;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    if (host[0] == '\0')
        hints.ai_family = AF_INET;
    int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, res);
    if (gai != 0)
        return ev_error_set(err, EV_EINVAL, "http addr %s: %s", addr, gai_strerror(gai));
    return 0;
}

enum MHD_Result ev_http_respond(struct MHD_Connection *conn, unsigned status,
                                const char *ctype, const void *body, size_t len,
                                enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, mode);
    if (r == NULL) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free((void *)body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status,
                               const char *ctype, char *body, size_t len, bool owned)
{
    return ev_http_respond(conn, status, ctype, body, len,
                           owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
}

int ev_http_request_start(const char *method, size_t *upload_data_size, void **req_cls)
{
    static int first_call_marker;
    if (*req_cls == NULL) {
        *req_cls = &first_call_marker;
        return EV_HTTP_AGAIN;
    }
    if (*upload_data_size != 0) {
        *upload_data_size = 0; /* a body is ignored */
        return EV_HTTP_AGAIN;
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
        strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return EV_HTTP_NOT_ALLOWED;
    return EV_HTTP_SERVE;
}

static enum MHD_Result respond_text(struct MHD_Connection *conn, unsigned status,
                                    const char *text)
{
    return respond(conn, status, "text/plain; charset=utf-8", (char *)text, strlen(text),
                   false);
}

static enum MHD_Result serve_metrics(ev_http *h, struct MHD_Connection *conn)
{
    char *body = NULL;
    size_t len = 0;
    ev_error err;
    if (h->metrics == NULL)
        return respond(conn, MHD_HTTP_OK, PROM_CONTENT_TYPE, (char *)"", 0, false);
    if (ev_metrics_render(h->metrics, &body, &len, &err) != 0) {
        ev_log(EV_LOG_WARN, "metrics render failed", "error=%s", ev_error_name(err.code));
        return respond_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "render failed\n");
    }
    return respond(conn, MHD_HTTP_OK, PROM_CONTENT_TYPE, body, len, true);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
    ev_http *h = cls;
    (void)version;
    (void)upload_data;
    int start = ev_http_request_start(method, upload_data_size, req_cls);
    if (start == EV_HTTP_AGAIN)
        return MHD_YES;
    if (start == EV_HTTP_NOT_ALLOWED)
        return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    if (strcmp(url, "/healthz") == 0) {
        bool ok = h->ready == NULL || h->ready(h->ready_arg);
        return ok ? respond_text(conn, MHD_HTTP_OK, "ok\n")
                  : respond_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready\n");
    }
    if (strcmp(url, "/metrics") == 0)
        return serve_metrics(h, conn);
    return respond_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

static int start_daemon(ev_http *h, const struct addrinfo *ai, ev_error *err)
{
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h->daemon =
        MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR,
                         ai->ai_addr, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                         MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_END);
    if (h->daemon == NULL)
        return ev_error_set(err, EV_EIO, "http: cannot listen");
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : 0;
    return 0;
}

int ev_http_start(ev_http **out, const char *addr, ev_metrics *metrics,
                  ev_http_ready_fn ready, void *ready_arg, ev_error *err)
{
    struct addrinfo *res = NULL;
    ev_http *h = NULL;
    int rc;
    if (out == NULL)
        return ev_error_set(err, EV_EINVAL, "http: null out");
    *out = NULL;
    if (addr == NULL || addr[0] == '\0')
        return 0;
    rc = ev_http_resolve(addr, &res, err);
    if (rc != 0)
        goto cleanup;
    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        rc = ev_error_set(err, EV_ENOMEM, "http: out of memory");
        goto cleanup;
    }
    h->metrics = metrics;
    h->ready = ready;
    h->ready_arg = ready_arg;
    rc = start_daemon(h, res, err);
    if (rc != 0) {
        ev_error_set(err, rc, "http addr %s: cannot listen", addr);
        goto cleanup;
    }
    ev_log(EV_LOG_INFO, "http listening", "addr=%s port=%u", addr, (unsigned)h->port);
    *out = h;
    h = NULL;
cleanup:
    free(h);
    if (res != NULL)
        freeaddrinfo(res);
    return rc;
}

uint16_t ev_http_port(const ev_http *h)
{
    return h ? h->port : 0;
}

void ev_http_stop(ev_http *h)
{
    if (h == NULL)
        return;
    MHD_stop_daemon(h->daemon);
    free(h);
}
