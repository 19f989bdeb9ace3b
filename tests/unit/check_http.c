/* SPDX-License-Identifier: MIT */
/* Tests of events/http: real requests over loopback to /healthz and /metrics,
 * status codes for readiness, unknown paths and methods, and bad addresses. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "http.h"
#include "metrics.h"

typedef struct reply {
    int status;
    char head[2048];
    char *body; /* owned */
} reply;

static int connect_loopback(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* One HTTP/1.0 request; reads until the server closes. */
static reply request(uint16_t port, const char *method, const char *path)
{
    int fd = connect_loopback(port);
    char req[256];
    int n = snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
                     method, path);
    ck_assert_int_eq(write(fd, req, (size_t)n), n);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    ssize_t got;
    while ((got = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)got;
        if (len + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
    }
    close(fd);
    buf[len] = '\0';
    reply r = {0};
    ck_assert_int_eq(sscanf(buf, "HTTP/1.%*d %d", &r.status), 1);
    char *sep = strstr(buf, "\r\n\r\n");
    ck_assert_ptr_nonnull(sep);
    snprintf(r.head, sizeof(r.head), "%.*s", (int)(sep - buf), buf);
    r.body = strdup(sep + 4);
    free(buf);
    return r;
}

static atomic_bool ready_flag;

static bool flag_ready(void *arg)
{
    (void)arg;
    return atomic_load(&ready_flag);
}

START_TEST(healthz_follows_readiness)
{
    ev_metrics *m = ev_metrics_new("orders");
    ev_http *h = NULL;
    ev_error err;
    atomic_store(&ready_flag, false);
    ck_assert_int_eq(ev_http_start(&h, "127.0.0.1:0", m, flag_ready, NULL, &err), 0);
    ck_assert_uint_gt(ev_http_port(h), 0);
    reply r = request(ev_http_port(h), "GET", "/healthz");
    ck_assert_int_eq(r.status, 503);
    free(r.body);
    atomic_store(&ready_flag, true);
    r = request(ev_http_port(h), "GET", "/healthz");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "ok\n");
    free(r.body);
    ev_http_stop(h);
    ev_metrics_free(m);
}
END_TEST

START_TEST(healthz_from_ready_gauge)
{
    ev_metrics *m = ev_metrics_new("orders");
    ev_http *h = NULL;
    ck_assert_int_eq(ev_http_start(&h, "127.0.0.1:0", m, ev_metrics_ready, m, NULL), 0);
    reply r = request(ev_http_port(h), "GET", "/healthz");
    ck_assert_int_eq(r.status, 503);
    free(r.body);
    ev_metrics_gauge_set(m, EV_MG_READY, 1);
    r = request(ev_http_port(h), "GET", "/healthz");
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    ev_http_stop(h);
    ev_metrics_free(m);
}
END_TEST

START_TEST(metrics_serves_prometheus_text)
{
    ev_metrics *m = ev_metrics_new("payments");
    ev_metrics_count(m, EV_MC_PRODUCED, "payment.authorized", 42);
    ev_http *h = NULL;
    ck_assert_int_eq(ev_http_start(&h, "127.0.0.1:0", m, NULL, NULL, NULL), 0);
    reply r = request(ev_http_port(h), "GET", "/metrics");
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(strstr(r.head, "text/plain; version=0.0.4") != NULL, "%s", r.head);
    ck_assert_msg(strstr(r.body, "choreo_events_produced_total{service=\"payments\","
                                 "type=\"payment.authorized\"} 42\n") != NULL,
                  "%s", r.body);
    free(r.body);
    ev_http_stop(h);
    ev_metrics_free(m);
}
END_TEST

START_TEST(other_paths_and_methods)
{
    static const struct {
        const char *method, *path;
        int status;
    } cases[] = {
        {"GET", "/nope", 404},       {"GET", "/", 404},         {"POST", "/healthz", 405},
        {"DELETE", "/metrics", 405}, {"HEAD", "/healthz", 200}, {"GET", "/healthz", 200},
    };
    ev_http *h = NULL;
    ck_assert_int_eq(ev_http_start(&h, "127.0.0.1:0", NULL, NULL, NULL, NULL), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        reply r = request(ev_http_port(h), cases[i].method, cases[i].path);
        ck_assert_msg(r.status == cases[i].status, "%s %s: %d", cases[i].method,
                      cases[i].path, r.status);
        free(r.body);
    }
    ev_http_stop(h);
}
END_TEST

START_TEST(bad_addresses_are_errors)
{
    static const struct {
        const char *addr;
        int code;
    } cases[] = {
        {"127.0.0.1", EV_EINVAL},       {"127.0.0.1:", EV_EINVAL},
        {"127.0.0.1:99999", EV_EINVAL}, {"127.0.0.1:8x", EV_EINVAL},
        {"[::1]:-1", EV_EINVAL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ev_http *h = (ev_http *)&cases[i];
        ev_error err;
        ck_assert_msg(ev_http_start(&h, cases[i].addr, NULL, NULL, NULL, &err) ==
                          cases[i].code,
                      "%s", cases[i].addr);
        ck_assert_ptr_null(h);
        ck_assert_int_eq(err.code, cases[i].code);
    }
}
END_TEST

START_TEST(empty_address_means_off)
{
    ev_http *h = (ev_http *)&h;
    ck_assert_int_eq(ev_http_start(&h, "", NULL, NULL, NULL, NULL), 0);
    ck_assert_ptr_null(h);
    ck_assert_uint_eq(ev_http_port(h), 0);
    ev_http_stop(h);
}
END_TEST

START_TEST(port_in_use_is_eio)
{
    ev_http *a = NULL, *b = NULL;
    ev_error err;
    ck_assert_int_eq(ev_http_start(&a, "127.0.0.1:0", NULL, NULL, NULL, &err), 0);
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)ev_http_port(a));
    ck_assert_int_eq(ev_http_start(&b, addr, NULL, NULL, NULL, &err), EV_EIO);
    ck_assert_ptr_null(b);
    ck_assert_msg(strstr(err.text, addr) != NULL, "%s", err.text);
    ev_http_stop(a);
}
END_TEST

/* The forms compose.yaml uses: all IPv4 interfaces. */
START_TEST(address_forms_listen)
{
    static const char *const addrs[] = {"0.0.0.0:0", ":0"};
    for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
        ev_http *h = NULL;
        ev_error err;
        ck_assert_msg(ev_http_start(&h, addrs[i], NULL, NULL, NULL, &err) == 0, "%s: %s",
                      addrs[i], err.text);
        reply r = request(ev_http_port(h), "GET", "/healthz");
        ck_assert_int_eq(r.status, 200);
        free(r.body);
        ev_http_stop(h);
    }
}
END_TEST

START_TEST(ipv6_loopback)
{
    ev_http *h = NULL;
    ev_error err;
    int rc = ev_http_start(&h, "[::1]:0", NULL, NULL, NULL, &err);
    if (rc == EV_EIO || rc == EV_EINVAL)
        return; /* no IPv6 on this host: nothing to check */
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_gt(ev_http_port(h), 0);
    ev_http_stop(h);
}
END_TEST

static Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, healthz_follows_readiness);
    tcase_add_test(tc, healthz_from_ready_gauge);
    tcase_add_test(tc, metrics_serves_prometheus_text);
    tcase_add_test(tc, other_paths_and_methods);
    tcase_add_test(tc, bad_addresses_are_errors);
    tcase_add_test(tc, empty_address_means_off);
    tcase_add_test(tc, port_in_use_is_eio);
    tcase_add_test(tc, address_forms_listen);
    tcase_add_test(tc, ipv6_loopback);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(http_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
