/* SPDX-License-Identifier: MIT */
/* Raw broker baseline for `make bench`: produce -> consume of event-sized records
 * through librdkafka on this machine; prints messages/s and end-to-end latency. */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct opts {
    const char *brokers;
    char topic[128];
    long count;       /* throughput phase */
    long rate;        /* fixed-rate phase, msgs/s */
    long duration_ms; /* fixed-rate phase */
    long size;        /* record bytes */
    int partitions;
} opts;

typedef struct shared {
    uint32_t *lat_us; /* per sequence number; 0 = not seen yet */
    long cap;
    atomic_long received;
    atomic_bool stop;
    rd_kafka_t *consumer;
} shared;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char errstr[256];
    if (rd_kafka_conf_set(conf, k, v, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "raw: %s=%s: %s\n", k, v, errstr);
        return -1;
    }
    return 0;
}

static rd_kafka_t *client_new(rd_kafka_type_t type, const opts *o)
{
    char errstr[256], group[160];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int rc = conf_set(conf, "bootstrap.servers", o->brokers);
    if (type == RD_KAFKA_PRODUCER) {
        /* the services' producer settings (events/bus.h) */
        rc |= conf_set(conf, "enable.idempotence", "true");
        rc |= conf_set(conf, "acks", "all");
        rc |= conf_set(conf, "linger.ms", "5");
    } else {
        snprintf(group, sizeof(group), "%s-g", o->topic);
        rc |= conf_set(conf, "group.id", group);
        rc |= conf_set(conf, "enable.auto.commit", "false");
    }
    if (rc != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "raw: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

static int create_topic(rd_kafka_t *rk, const opts *o)
{
    char errstr[256];
    rd_kafka_NewTopic_t *nt =
        rd_kafka_NewTopic_new(o->topic, o->partitions, 1, errstr, sizeof(errstr));
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
    int rc = -1;
    if (ev != NULL) {
        size_t n = 0;
        const rd_kafka_topic_result_t **res = rd_kafka_CreateTopics_result_topics(
            rd_kafka_event_CreateTopics_result(ev), &n);
        rd_kafka_resp_err_t err =
            n == 1 ? rd_kafka_topic_result_error(res[0]) : rd_kafka_event_error(ev);
        rc = err == RD_KAFKA_RESP_ERR_NO_ERROR ||
                     err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS
                 ? 0
                 : -1;
        if (rc != 0)
            fprintf(stderr, "raw: create topic %s: %s\n", o->topic,
                    rd_kafka_err2str(err));
        rd_kafka_event_destroy(ev);
    } else {
        fprintf(stderr, "raw: create topic %s: no answer\n", o->topic);
    }
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    return rc;
}

static void on_message(shared *sh, const rd_kafka_message_t *msg)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *val = NULL;
    size_t len = 0;
    int64_t stamp[2];
    if (rd_kafka_message_headers(msg, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(hdrs, "bench-t", &val, &len) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        len != sizeof(stamp))
        return;
    memcpy(stamp, val, sizeof(stamp));
    int64_t us = (mono_ns() - stamp[1]) / 1000;
    if (stamp[0] >= 0 && stamp[0] < sh->cap)
        sh->lat_us[stamp[0]] = us > 0 ? (uint32_t)us : 1;
    atomic_fetch_add(&sh->received, 1);
}

static void *consume_loop(void *arg)
{
    shared *sh = arg;
    while (!atomic_load(&sh->stop)) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(sh->consumer, 100);
        if (msg == NULL)
            continue;
        if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR)
            on_message(sh, msg);
        else if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            fprintf(stderr, "raw: consume: %s\n", rd_kafka_message_errstr(msg));
        rd_kafka_message_destroy(msg);
    }
    return NULL;
}

static int produce_one(rd_kafka_t *p, const opts *o, const char *payload, long seq)
{
    int64_t stamp[2] = {seq, 0};
    char key[32];
    snprintf(key, sizeof(key), "order-%ld", seq);
    for (;;) {
        stamp[1] = mono_ns();
        rd_kafka_headers_t *h = rd_kafka_headers_new(2);
        rd_kafka_header_add(h, "content-type", -1, "application/cloudevents+json", -1);
        rd_kafka_header_add(h, "bench-t", -1, stamp, sizeof(stamp));
        rd_kafka_resp_err_t err = rd_kafka_producev(
            p, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_KEY(key, strlen(key)),
            RD_KAFKA_V_VALUE((void *)payload, (size_t)o->size),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
            RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            return 0;
        rd_kafka_headers_destroy(h);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            fprintf(stderr, "raw: produce: %s\n", rd_kafka_err2str(err));
            return -1;
        }
        rd_kafka_poll(p, 1);
    }
}

/* Waits until received reaches want or timeout; returns the time it did (ns). */
static int64_t wait_received(shared *sh, long want, int64_t timeout_ns)
{
    int64_t deadline = mono_ns() + timeout_ns;
    while (atomic_load(&sh->received) < want) {
        if (mono_ns() > deadline)
            return -1;
        usleep(200);
    }
    return mono_ns();
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Percentiles (ms) of lat_us[from, to): seen entries only. */
static void percentiles(const uint32_t *lat_us, long from, long to, const double *ps,
                        double *out, size_t n_ps, long *seen)
{
    uint32_t *v = malloc(sizeof(uint32_t) * (size_t)(to - from + 1));
    long n = 0;
    for (long i = from; v != NULL && i < to; i++)
        if (lat_us[i] != 0)
            v[n++] = lat_us[i];
    *seen = n;
    if (v == NULL || n == 0) {
        for (size_t i = 0; i < n_ps; i++)
            out[i] = -1;
        free(v);
        return;
    }
    qsort(v, (size_t)n, sizeof(uint32_t), cmp_u32);
    for (size_t i = 0; i < n_ps; i++) {
        long idx = (long)(ps[i] * (double)n + 0.999999) - 1;
        idx = idx < 0 ? 0 : idx >= n ? n - 1 : idx;
        out[i] = v[idx] / 1000.0;
    }
    free(v);
}

/* An order.placed envelope like the CLI's, padded with spaces to o->size. */
static char *make_payload(const opts *o)
{
    static const char sample[] =
        "{\"specversion\":\"1.0\",\"id\":\"6f1c3a52-8d0e-4b7a-9c51-2e4f7a9b0c13\","
        "\"source\":\"/choreo/"
        "cli\",\"type\":\"order.placed\",\"subject\":\"order-000001\","
        "\"time\":\"2026-11-24T10:00:00.123Z\",\"datacontenttype\":\"application/json\","
        "\"correlationid\":\"6f1c3a52-8d0e-4b7a-9c51-2e4f7a9b0c13\",\"data\":{"
        "\"order_id\":\"order-000001\",\"customer_id\":\"cust-0001\",\"items\":[{\"sku\":"
        "\"sku-0001\",\"qty\":1,\"unit_price_cents\":1250}],\"total_cents\":1250,"
        "\"currency\":\"EUR\"}}";
    char *p = malloc((size_t)o->size + 1);
    if (p == NULL)
        return NULL;
    memset(p, ' ', (size_t)o->size);
    size_t n =
        sizeof(sample) - 1 < (size_t)o->size ? sizeof(sample) - 1 : (size_t)o->size;
    memcpy(p, sample, n);
    p[o->size] = '\0';
    return p;
}

static int assign_all(rd_kafka_t *c, const opts *o)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(o->partitions);
    for (int i = 0; i < o->partitions; i++)
        rd_kafka_topic_partition_list_add(l, o->topic, i)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t err = rd_kafka_assign(c, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        fprintf(stderr, "raw: assign: %s\n", rd_kafka_err2str(err));
    return err == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
}

/* Sends seq [from, to) at rate msgs/s (0 = as fast as possible). */
static int produce_range(rd_kafka_t *p, const opts *o, const char *payload, long from,
                         long to, long rate)
{
    int64_t t0 = mono_ns();
    for (long seq = from; seq < to; seq++) {
        if (rate > 0) {
            int64_t due = t0 + (seq - from) * 1000000000LL / rate;
            int64_t now;
            while ((now = mono_ns()) < due) {
                rd_kafka_poll(p, 0);
                if (due - now > 200000)
                    usleep((useconds_t)((due - now) / 2000));
            }
        }
        if (produce_one(p, o, payload, seq) != 0)
            return -1;
        rd_kafka_poll(p, 0);
    }
    return 0;
}

static void print_result(const opts *o, shared *sh, long warm, double tput_s,
                         double total_s)
{
    static const double ps[] = {0.5, 0.9, 0.99, 1.0};
    double t[4], f[4];
    long tn, fn;
    percentiles(sh->lat_us, warm, warm + o->count, ps, t, 4, &tn);
    percentiles(sh->lat_us, warm + o->count, sh->cap, ps, f, 4, &fn);
    printf(
        "{\"record_bytes\":%ld,\"partitions\":%d,\"acks\":\"all\",\"linger_ms\":5,"
        "\"throughput\":{\"messages\":%ld,\"seconds\":%.3f,\"msgs_per_s\":%.0f,"
        "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f},"
        "\"fixed_rate\":{\"rate\":%ld,\"messages\":%ld,\"p50_ms\":%.3f,\"p90_ms\":%.3f,"
        "\"p99_ms\":%.3f,\"max_ms\":%.3f},\"seconds_total\":%.3f}\n",
        o->size, o->partitions, tn, tput_s, tput_s > 0 ? (double)tn / tput_s : 0.0, t[0],
        t[1], t[2], t[3], o->rate, fn, f[0], f[1], f[2], f[3], total_s);
}

static int run(const opts *o, rd_kafka_t *prod, shared *sh, const char *payload)
{
    const long warm = 100;
    int64_t start = mono_ns();
    if (produce_range(prod, o, payload, 0, warm, 0) != 0 ||
        wait_received(sh, warm, 30 * 1000000000LL) < 0) {
        fprintf(stderr, "raw: warm-up records never arrived\n");
        return -1;
    }
    int64_t t0 = mono_ns();
    if (produce_range(prod, o, payload, warm, warm + o->count, 0) != 0)
        return -1;
    int64_t t1 = wait_received(sh, warm + o->count, 120 * 1000000000LL);
    if (t1 < 0) {
        fprintf(stderr, "raw: throughput phase timed out\n");
        return -1;
    }
    long fixed = o->rate * o->duration_ms / 1000;
    if (produce_range(prod, o, payload, warm + o->count, warm + o->count + fixed,
                      o->rate) != 0 ||
        wait_received(sh, warm + o->count + fixed, 60 * 1000000000LL) < 0) {
        fprintf(stderr, "raw: fixed-rate phase timed out\n");
        return -1;
    }
    print_result(o, sh, warm, (double)(t1 - t0) / 1e9, (double)(mono_ns() - start) / 1e9);
    return 0;
}

static int parse_args(opts *o, int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        char *end = NULL;
        long n = strtol(v, &end, 10);
        bool num = end != v && *end == '\0' && n > 0;
        if (strcmp(k, "--brokers") == 0)
            o->brokers = v;
        else if (strcmp(k, "--topic") == 0)
            snprintf(o->topic, sizeof(o->topic), "%s", v);
        else if (strcmp(k, "--count") == 0 && num)
            o->count = n;
        else if (strcmp(k, "--rate") == 0 && num)
            o->rate = n;
        else if (strcmp(k, "--duration-ms") == 0 && num)
            o->duration_ms = n;
        else if (strcmp(k, "--size") == 0 && num && n >= 16)
            o->size = n;
        else if (strcmp(k, "--partitions") == 0 && num && n < 1000)
            o->partitions = (int)n;
        else
            return -1;
    }
    return argc % 2 == 1 ? 0 : -1;
}

int main(int argc, char **argv)
{
    opts o = {.brokers = getenv("CHOREO_BROKERS"),
              .count = 200000,
              .rate = 1000,
              .duration_ms = 5000,
              .size = 450,
              .partitions = 3};
    if (o.brokers == NULL || o.brokers[0] == '\0')
        o.brokers = "127.0.0.1:9092";
    snprintf(o.topic, sizeof(o.topic), "bench-raw-%ld-%d", (long)time(NULL), getpid());
    if (parse_args(&o, argc, argv) != 0) {
        fprintf(stderr, "usage: raw [--brokers B] [--topic T] [--count N] [--rate R] "
                        "[--duration-ms D] [--size BYTES] [--partitions P]\n");
        return 2;
    }
    int rc = 1;
    shared sh = {.cap = 100 + o.count + o.rate * o.duration_ms / 1000};
    char *payload = make_payload(&o);
    sh.lat_us = calloc((size_t)sh.cap, sizeof(uint32_t));
    rd_kafka_t *prod = client_new(RD_KAFKA_PRODUCER, &o);
    sh.consumer = client_new(RD_KAFKA_CONSUMER, &o);
    pthread_t th;
    bool started = false;
    if (payload == NULL || sh.lat_us == NULL || prod == NULL || sh.consumer == NULL ||
        create_topic(prod, &o) != 0 || assign_all(sh.consumer, &o) != 0)
        goto cleanup;
    if (pthread_create(&th, NULL, consume_loop, &sh) != 0)
        goto cleanup;
    started = true;
    rc = run(&o, prod, &sh, payload) == 0 ? 0 : 1;
cleanup:
    atomic_store(&sh.stop, true);
    if (started)
        pthread_join(th, NULL);
    if (sh.consumer != NULL) {
        rd_kafka_consumer_close(sh.consumer);
        rd_kafka_destroy(sh.consumer);
    }
    if (prod != NULL) {
        rd_kafka_flush(prod, 10000);
        rd_kafka_destroy(prod);
    }
    free(sh.lat_us);
    free(payload);
    return rc;
}
