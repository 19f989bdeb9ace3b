/* SPDX-License-Identifier: MIT */
/* Saga load driver for `make bench` when `choreo load` is absent: places orders (at a
 * rate, or as fast as they complete) and reports completed/s and placed->confirmed. */
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "envelope.h"
#include "metrics.h"

#define SKUS 50
#define CUSTOMERS 100

typedef struct opts {
    const char *brokers;
    const char *prefix;
    long rate;    /* orders/s; 0 = as fast as they complete */
    long seconds; /* placing time */
    long window;  /* max orders in flight at rate 0 */
    long grace_s; /* wait for completions after placing */
} opts;

typedef struct run {
    opts o;
    char run_id[16];
    ev_producer *prod;
    rd_kafka_t *cons;
    long cap;
    int64_t *placed_ns, *confirmed_ns, *completed_ns;
    atomic_long placed, confirmed, completed, rejected;
    atomic_bool stop;
} run;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int send_event(run *r, const char *type, const char *topic, const char *key,
                      json_t *data)
{
    ev_envelope e = {0};
    ev_error err = {0};
    char *buf = NULL, full[256];
    size_t len = 0;
    static const ev_header ce = {"content-type", "application/cloudevents+json"};
    snprintf(full, sizeof(full), "%s%s", r->o.prefix, topic);
    int rc = ev_envelope_init(&e, type, "/choreo/bench", key, data, &err);
    if (rc == 0)
        rc = ev_envelope_serialize(&e, NULL, &buf, &len, &err);
    if (rc == 0)
        rc = ev_producer_send(r->prod, full, -1, key, buf, len, &ce, 1, NULL, &err);
    if (rc != 0)
        fprintf(stderr, "saga: send %s: %s\n", type, err.text);
    free(buf);
    ev_envelope_clear(&e);
    return rc;
}

static int seed(run *r)
{
    char id[64];
    int rc = 0;
    for (int i = 0; rc == 0 && i < CUSTOMERS; i++) {
        snprintf(id, sizeof(id), "bench-%s-c%d", r->run_id, i);
        rc = send_event(r, "customer.registered", "customers", id,
                        json_pack("{s:s, s:s, s:s, s:I}", "customer_id", id, "name",
                                  "Bench Customer", "email", "bench@example.com",
                                  "credit_limit_cents", (json_int_t)1000000000000LL));
    }
    for (int i = 0; rc == 0 && i < SKUS; i++) {
        snprintf(id, sizeof(id), "bench-%s-s%d", r->run_id, i);
        rc = send_event(r, "stock.added", "inventory", id,
                        json_pack("{s:s, s:I}", "sku", id, "qty", (json_int_t)100000000));
    }
    ev_error err = {0};
    return rc == 0 ? ev_producer_flush(r->prod, 30000, &err) : rc;
}

/* The ends of topic's partitions into l (high watermarks). */
static bool topic_ends(rd_kafka_t *rk, const char *topic,
                       rd_kafka_topic_partition_list_t *l)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    bool ok = t != NULL &&
              rd_kafka_metadata(rk, 0, t, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
              md->topic_cnt == 1;
    for (int i = 0; ok && i < md->topics[0].partition_cnt; i++) {
        int32_t p = md->topics[0].partitions[i].id;
        int64_t lo = 0, hi = 0;
        ok = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 5000) ==
             RD_KAFKA_RESP_ERR_NO_ERROR;
        if (ok)
            rd_kafka_topic_partition_list_add(l, topic, p)->offset = hi;
    }
    if (md != NULL)
        rd_kafka_metadata_destroy(md);
    if (t != NULL)
        rd_kafka_topic_destroy(t);
    return ok;
}

/* True when group's committed offsets reach every end in ends. */
static bool group_reached(rd_kafka_t *rk, const char *group,
                          const rd_kafka_topic_partition_list_t *ends)
{
    char errstr[256];
    bool ok = false;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_ListConsumerGroupOffsets_t *req =
        rd_kafka_ListConsumerGroupOffsets_new(group, NULL);
    rd_kafka_AdminOptions_t *o =
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
    rd_kafka_AdminOptions_set_request_timeout(o, 5000, errstr, sizeof(errstr));
    rd_kafka_ListConsumerGroupOffsets(rk, &req, 1, o, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 6000);
    size_t n = 0;
    const rd_kafka_group_result_t **gr =
        ev != NULL && rd_kafka_event_error(ev) == RD_KAFKA_RESP_ERR_NO_ERROR
            ? rd_kafka_ListConsumerGroupOffsets_result_groups(
                  rd_kafka_event_ListConsumerGroupOffsets_result(ev), &n)
            : NULL;
    const rd_kafka_topic_partition_list_t *got =
        n == 1 && rd_kafka_group_result_error(gr[0]) == NULL
            ? rd_kafka_group_result_partitions(gr[0])
            : NULL;
    if (got != NULL) {
        ok = true;
        for (int i = 0; ok && i < ends->cnt; i++) {
            const rd_kafka_topic_partition_t *e = &ends->elems[i];
            const rd_kafka_topic_partition_t *c =
                rd_kafka_topic_partition_list_find(got, e->topic, e->partition);
            ok = e->offset == 0 || (c != NULL && c->offset >= e->offset);
        }
    }
    if (ev != NULL)
        rd_kafka_event_destroy(ev);
    rd_kafka_ListConsumerGroupOffsets_destroy(req);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
    return ok;
}

/* Waits (up to timeout_s) until the services have applied what seed() sent:
 * inventory's group has committed past the stock, payments' past the
 * customers (a service commits to Kafka after its store's commit). A group of
 * several instances may still be rebalancing when the first order comes, and
 * the order would meet no stock: a rejection the bench would count against
 * the configuration. */
static void wait_seeded(run *r, int timeout_s)
{
    static const char *const svc[][2] = {{"inventory", "inventory"},
                                         {"payments", "customers"}};
    rd_kafka_t *rk = ev_producer_handle(r->prod);
    int64_t deadline = mono_ns() + (int64_t)timeout_s * 1000000000LL;
    for (size_t i = 0; i < sizeof(svc) / sizeof(svc[0]); i++) {
        char group[256], topic[256];
        snprintf(group, sizeof(group), "%s%s", r->o.prefix, svc[i][0]);
        snprintf(topic, sizeof(topic), "%s%s", r->o.prefix, svc[i][1]);
        rd_kafka_topic_partition_list_t *ends = rd_kafka_topic_partition_list_new(8);
        bool ok = topic_ends(rk, topic, ends);
        while (ok && !group_reached(rk, group, ends) && mono_ns() < deadline)
            usleep(100000);
        if (!ok || mono_ns() >= deadline)
            fprintf(stderr, "saga: %s did not confirm the seed within %d s\n", group,
                    timeout_s);
        rd_kafka_topic_partition_list_destroy(ends);
    }
}

static int place(run *r, long n)
{
    char oid[64], cid[64], sku[64];
    snprintf(oid, sizeof(oid), "bench-%s-o%ld", r->run_id, n);
    snprintf(cid, sizeof(cid), "bench-%s-c%ld", r->run_id, n % CUSTOMERS);
    snprintf(sku, sizeof(sku), "bench-%s-s%ld", r->run_id, n % SKUS);
    json_t *data =
        json_pack("{s:s, s:s, s:[{s:s, s:i, s:i}], s:i, s:s}", "order_id", oid,
                  "customer_id", cid, "items", "sku", sku, "qty", 1, "unit_price_cents",
                  1250, "total_cents", 1250, "currency", "EUR");
    r->placed_ns[n] = mono_ns();
    int rc = send_event(r, "order.placed", "orders", oid, data);
    if (rc == 0)
        atomic_fetch_add(&r->placed, 1);
    return rc;
}

/* Copies the string value of "key":" in buf into out; false when absent. */
static bool peek_str(const char *buf, size_t len, const char *key, char *out, size_t cap)
{
    char pat[40];
    int n = snprintf(pat, sizeof(pat), "\"%s\":\"", key);
    const char *hit = memmem(buf, len < 2048 ? len : 2048, pat, (size_t)n);
    if (hit == NULL)
        return false;
    const char *s = hit + n;
    const char *e = memchr(s, '"', (size_t)(buf + len - s));
    if (e == NULL || (size_t)(e - s) >= cap)
        return false;
    memcpy(out, s, (size_t)(e - s));
    out[e - s] = '\0';
    return true;
}

static void on_record(run *r, const rd_kafka_message_t *m)
{
    char type[64], subject[128], mine[48];
    if (!peek_str(m->payload, m->len, "type", type, sizeof(type)) ||
        !peek_str(m->payload, m->len, "subject", subject, sizeof(subject)))
        return;
    int k = snprintf(mine, sizeof(mine), "bench-%s-o", r->run_id);
    if (strncmp(subject, mine, (size_t)k) != 0)
        return;
    char *end = NULL;
    long n = strtol(subject + k, &end, 10);
    if (end == subject + k || *end != '\0' || n < 0 || n >= r->cap)
        return;
    int64_t now = mono_ns();
    if (strcmp(type, "order.confirmed") == 0 && r->confirmed_ns[n] == 0) {
        r->confirmed_ns[n] = now;
        atomic_fetch_add(&r->confirmed, 1);
    } else if (strcmp(type, "order.completed") == 0 && r->completed_ns[n] == 0) {
        r->completed_ns[n] = now;
        atomic_fetch_add(&r->completed, 1);
    } else if (strcmp(type, "order.rejected") == 0 ||
               strcmp(type, "order.cancelled") == 0) {
        atomic_fetch_add(&r->rejected, 1);
    }
}

static void *consume_loop(void *arg)
{
    run *r = arg;
    while (!atomic_load(&r->stop)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->cons, 100);
        if (m == NULL)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && m->payload != NULL)
            on_record(r, m);
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

/* A consumer of the orders topic from its current end (no group rebalance). */
static int consumer_open(run *r)
{
    char errstr[256], topic[256], group[64];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    snprintf(group, sizeof(group), "bench-saga-%s", r->run_id);
    if (rd_kafka_conf_set(conf, "bootstrap.servers", r->o.brokers, errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK) {
        fprintf(stderr, "saga: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    r->cons = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (r->cons == NULL) {
        fprintf(stderr, "saga: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    snprintf(topic, sizeof(topic), "%sorders", r->o.prefix);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    for (int p = 0; p < 64; p++) {
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(r->cons, topic, p, &lo, &hi, 10000) !=
            RD_KAFKA_RESP_ERR_NO_ERROR)
            break;
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = hi;
    }
    int rc =
        l->cnt > 0 && rd_kafka_assign(r->cons, l) == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
    if (rc != 0)
        fprintf(stderr, "saga: cannot read %s (does it exist?)\n", topic);
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* p50/p90/p99/max in ms of to[i] - from[i] over entries where both are set. */
static void lat_json(const run *r, const int64_t *to, char *out, size_t cap)
{
    int64_t *d = malloc(sizeof(int64_t) * (size_t)(r->cap + 1));
    long n = 0;
    for (long i = 0; d != NULL && i < r->cap; i++)
        if (r->placed_ns[i] != 0 && to[i] != 0)
            d[n++] = to[i] - r->placed_ns[i];
    if (n == 0) {
        snprintf(out, cap, "null");
        free(d);
        return;
    }
    qsort(d, (size_t)n, sizeof(int64_t), cmp_i64);
    static const double ps[] = {0.5, 0.9, 0.99, 1.0};
    double v[4];
    for (int i = 0; i < 4; i++) {
        long idx = (long)(ps[i] * (double)n + 0.999999) - 1;
        v[i] = (double)d[idx < 0 ? 0 : idx >= n ? n - 1 : idx] / 1e6;
    }
    snprintf(out, cap, "{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f,\"n\":%ld}",
             v[0], v[1], v[2], v[3], n);
    free(d);
}

static void wait_until(run *r, int64_t due)
{
    int64_t now;
    while ((now = mono_ns()) < due) {
        ev_producer_poll(r->prod, 0);
        if (due - now > 200000)
            usleep((useconds_t)((due - now) / 2000));
    }
}

static int place_all(run *r, int64_t t0)
{
    int64_t end = t0 + r->o.seconds * 1000000000LL;
    for (long n = 0; n < r->cap; n++) {
        if (r->o.rate > 0) {
            wait_until(r, t0 + n * 1000000000LL / r->o.rate);
        } else {
            while (atomic_load(&r->placed) -
                       (atomic_load(&r->completed) + atomic_load(&r->rejected)) >=
                   r->o.window) {
                ev_producer_poll(r->prod, 1);
                if (mono_ns() >= end)
                    return 0;
            }
        }
        if (mono_ns() >= end)
            return 0;
        if (place(r, n) != 0)
            return -1;
        ev_producer_poll(r->prod, 0);
    }
    return 0;
}

static void report(run *r, int64_t t0, int64_t t_placed)
{
    long placed = atomic_load(&r->placed);
    int64_t last = t0;
    for (long i = 0; i < r->cap; i++)
        if (r->completed_ns[i] > last)
            last = r->completed_ns[i];
    long completed = atomic_load(&r->completed);
    double span = (double)(last - t0) / 1e9;
    char conf[160], comp[160];
    lat_json(r, r->confirmed_ns, conf, sizeof(conf));
    lat_json(r, r->completed_ns, comp, sizeof(comp));
    printf("{\"rate\":%ld,\"placed\":%ld,\"confirmed\":%ld,\"completed\":%ld,"
           "\"rejected\":%ld,\"seconds\":%.3f,\"placed_per_s\":%.1f,"
           "\"completed_per_s\":%.1f,\"latency_ms\":%s,\"placed_completed_ms\":%s}\n",
           r->o.rate, placed, atomic_load(&r->confirmed), completed,
           atomic_load(&r->rejected), span,
           (double)placed / ((double)(t_placed - t0) / 1e9 + 1e-9),
           span > 0 ? (double)completed / span : 0.0, conf, comp);
}

static int parse_args(opts *o, int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        char *end = NULL;
        long v = strtol(argv[i + 1], &end, 10);
        bool num = end != argv[i + 1] && *end == '\0' && v >= 0;
        if (strcmp(argv[i], "--brokers") == 0)
            o->brokers = argv[i + 1];
        else if (strcmp(argv[i], "--prefix") == 0)
            o->prefix = argv[i + 1];
        else if (strcmp(argv[i], "--rate") == 0 && num)
            o->rate = v;
        else if (strcmp(argv[i], "--seconds") == 0 && num && v > 0)
            o->seconds = v;
        else if (strcmp(argv[i], "--window") == 0 && num && v > 0)
            o->window = v;
        else if (strcmp(argv[i], "--grace") == 0 && num)
            o->grace_s = v;
        else
            return -1;
    }
    return argc % 2 == 1 ? 0 : -1;
}

int main(int argc, char **argv)
{
    static run r;
    r.o = (opts){.brokers = getenv("CHOREO_BROKERS"),
                 .prefix = getenv("CHOREO_TOPIC_PREFIX"),
                 .seconds = 10,
                 .window = 2000,
                 .grace_s = 30};
    if (r.o.brokers == NULL || r.o.brokers[0] == '\0')
        r.o.brokers = "127.0.0.1:9092";
    if (r.o.prefix == NULL)
        r.o.prefix = "";
    if (parse_args(&r.o, argc, argv) != 0) {
        fprintf(stderr, "usage: saga [--brokers B] [--prefix P] [--rate N (0 = max)] "
                        "[--seconds S] [--window N] [--grace S]\n");
        return 2;
    }
    snprintf(r.run_id, sizeof(r.run_id), "%lx%x", (long)time(NULL) & 0xfffff,
             (unsigned)getpid());
    r.cap = (r.o.rate > 0 ? r.o.rate : 20000) * r.o.seconds + 1;
    r.placed_ns = calloc((size_t)r.cap, sizeof(int64_t));
    r.confirmed_ns = calloc((size_t)r.cap, sizeof(int64_t));
    r.completed_ns = calloc((size_t)r.cap, sizeof(int64_t));
    ev_error err = {0};
    pthread_t th;
    int rc = 1;
    /* At a fixed rate each order is sent at once (linger.ms 0, as Kafka's
     * EndToEndLatency does): the driver's own 5 ms batching is no saga hop.
     * CHOREO_KAFKA_LINGER_MS, when set, wins. */
    if (r.o.rate > 0)
        setenv("CHOREO_KAFKA_LINGER_MS", "0", 0);
    if (r.placed_ns == NULL || r.confirmed_ns == NULL || r.completed_ns == NULL ||
        ev_producer_new(&r.prod, r.o.brokers, "bench-saga", NULL, NULL, &err) != 0 ||
        consumer_open(&r) != 0 || pthread_create(&th, NULL, consume_loop, &r) != 0) {
        fprintf(stderr, "saga: setup failed %s\n", err.text);
        return 1;
    }
    char warm[3][256];
    const char *topics[] = {warm[0], warm[1], warm[2], NULL};
    snprintf(warm[0], sizeof(warm[0]), "%scustomers", r.o.prefix);
    snprintf(warm[1], sizeof(warm[1]), "%sinventory", r.o.prefix);
    snprintf(warm[2], sizeof(warm[2]), "%sorders", r.o.prefix);
    ev_producer_warm(r.prod, topics,
                     5000); /* no first-send metadata wait in the figures */
    if (seed(&r) == 0) {
        wait_seeded(&r, 30); /* customers and stock applied before the first order */
        int64_t t0 = mono_ns();
        rc = place_all(&r, t0) == 0 ? 0 : 1;
        int64_t t_placed = mono_ns();
        ev_producer_flush(r.prod, 30000, &err);
        int64_t deadline = mono_ns() + r.o.grace_s * 1000000000LL;
        while (mono_ns() < deadline &&
               atomic_load(&r.completed) + atomic_load(&r.rejected) <
                   atomic_load(&r.placed))
            usleep(10000);
        atomic_store(&r.stop, true);
        pthread_join(th, NULL);
        report(&r, t0, t_placed);
    } else {
        atomic_store(&r.stop, true);
        pthread_join(th, NULL);
    }
    rd_kafka_consumer_close(r.cons);
    rd_kafka_destroy(r.cons);
    ev_producer_free(r.prod);
    free(r.placed_ns);
    free(r.confirmed_ns);
    free(r.completed_ns);
    return rc;
}
