/* SPDX-License-Identifier: MIT */
/* Kafka through librdkafka: an idempotent producer with delivery reports and a
 * consumer that stores offsets by hand and starts where the service's DB says. */
#include "bus.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

extern char **environ;

#define ENV_PREFIX "CHOREO_KAFKA_"
#define PROP_MAX 128
#define DEFAULT_BLOCK_MS 30000

struct ev_producer {
    rd_kafka_t *rk;
    ev_delivery_fn dr;
    void *dr_arg;
    int block_ms;
    ev_producer_stats_fn stats;
    void *stats_arg;
    bool lingers; /* linger.ms > 0: a kick has something to cut short */
};

struct ev_consumer {
    rd_kafka_t *rk;
    ev_start_fn start;
    void *start_arg;
    int n_assigned;
    bool closed;
    bool ever_assigned; /* a rebalance gave it an assignment (maybe empty) */
};

typedef struct prop {
    const char *name;
    const char *value;
} prop;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- configuration ---- */

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value,
                    const char *origin, ev_error *err)
{
    char errstr[512];
    rd_kafka_conf_res_t r = rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr));
    if (r == RD_KAFKA_CONF_OK)
        return 0;
    /* errstr may quote the value: never show it. */
    return ev_error_set(err, EV_EINVAL, "kafka property %s%s%s: %s", name,
                        origin ? " from " : "", origin ? origin : "",
                        r == RD_KAFKA_CONF_UNKNOWN ? "unknown property"
                                                   : "invalid value");
}

static int conf_set_all(rd_kafka_conf_t *conf, const prop *props, size_t n, ev_error *err)
{
    for (size_t i = 0; i < n; i++) {
        int rc = conf_set(conf, props[i].name, props[i].value, NULL, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* "CHOREO_KAFKA_client_id=x" -> name "client.id"; false when not ours. */
static bool env_prop_name(const char *entry, char *name, size_t cap, const char **value)
{
    size_t plen = strlen(ENV_PREFIX);
    if (strncmp(entry, ENV_PREFIX, plen) != 0)
        return false;
    const char *p = entry + plen;
    const char *eq = strchr(p, '=');
    if (eq == NULL || eq == p || (size_t)(eq - p) >= cap)
        return false;
    size_t n = (size_t)(eq - p);
    for (size_t i = 0; i < n; i++)
        name[i] = p[i] == '_' ? '.' : (char)tolower((unsigned char)p[i]);
    name[n] = '\0';
    *value = eq + 1;
    return true;
}

int ev_bus_conf_env(rd_kafka_conf_t *conf, ev_error *err)
{
    for (char **e = environ; e != NULL && *e != NULL; e++) {
        char name[PROP_MAX];
        const char *value = NULL;
        if (!env_prop_name(*e, name, sizeof(name), &value))
            continue;
        char origin[PROP_MAX + 16];
        snprintf(origin, sizeof(origin), "%.*s", (int)(strchr(*e, '=') - *e), *e);
        int rc = conf_set(conf, name, value, origin, err);
        if (rc != 0)
            return rc;
        ev_log(EV_LOG_DEBUG, "kafka property from environment", "property=%s", name);
    }
    return 0;
}

/* A connection failure no retry will mend: wrong credentials, a certificate
 * not trusted. */
static bool fail_is_security(const char *buf)
{
    return strstr(buf, "SASL authentication error") != NULL ||
           strstr(buf, "SSL handshake failed") != NULL;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    ev_log_level lv = level <= 3   ? EV_LOG_ERROR
                      : level == 4 ? EV_LOG_WARN
                      : level <= 6 ? EV_LOG_INFO
                                   : EV_LOG_DEBUG;
    if (lv < EV_LOG_INFO && strcmp(fac, "CONFWARN") == 0)
        lv = EV_LOG_INFO; /* CHOREO_KAFKA_* reach producer and consumer alike */
    /* The error callback reports FAIL lines once, when the handle is polled;
     * security failures show at once: a service waiting for its topics does not
     * poll yet, and its only clue would be "broker transport failure". */
    if (strcmp(fac, "FAIL") == 0)
        lv = fail_is_security(buf) ? EV_LOG_ERROR : EV_LOG_DEBUG;
    if (!ev_log_enabled(lv))
        return;
    char q[512];
    ev_log(lv, "librdkafka", "client=%s facility=%s detail=%s", rd_kafka_name(rk), fac,
           ev_log_quote(q, sizeof(q), buf));
}

static void error_cb(rd_kafka_t *rk, int code, const char *reason, void *opaque)
{
    (void)opaque;
    char q[512];
    bool fatal = code == RD_KAFKA_RESP_ERR__FATAL;
    /* All brokers down and transport failures are transient: librdkafka reconnects. */
    ev_log(fatal ? EV_LOG_ERROR : EV_LOG_WARN, "kafka error",
           "client=%s code=%s reason=%s", rd_kafka_name(rk),
           rd_kafka_err2name((rd_kafka_resp_err_t)code),
           ev_log_quote(q, sizeof(q), reason));
}

/* A conf with brokers, client id, the given defaults, then the environment. */
static int conf_build(rd_kafka_conf_t **out, const char *brokers, const char *client_id,
                      const prop *defaults, size_t n_defaults, ev_error *err)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf == NULL)
        return ev_error_set(err, EV_ENOMEM, "rd_kafka_conf_new failed");
    int rc = conf_set(conf, "bootstrap.servers", brokers ? brokers : "127.0.0.1:9092",
                      NULL, err);
    if (rc == 0 && client_id != NULL)
        rc = conf_set(conf, "client.id", client_id, NULL, err);
    if (rc == 0)
        rc = conf_set_all(conf, defaults, n_defaults, err);
    if (rc == 0)
        rc = ev_bus_conf_env(conf, err);
    if (rc != 0) {
        rd_kafka_conf_destroy(conf);
        return rc;
    }
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    *out = conf;
    return 0;
}

/* ---- producer ---- */

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    ev_producer *p = opaque;
    if (p == NULL || p->dr == NULL)
        return;
    const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
    int code = m->err ? EV_EBUS : 0;
    p->dr(p->dr_arg, m->_private, code, m->err ? rd_kafka_err2str(m->err) : "", topic,
          m->partition, m->offset);
}

/* What no record lost or written twice rests on; the environment may not weaken
 * it. Values as rd_kafka_conf_get reports them (acks=all reads back as -1). */
static const prop durable[] = {
    {"enable.idempotence", "true"},
    {"acks", "-1"},
};

/* EV_EINVAL when conf's effective value of a durable property differs. */
static int producer_check_durable(rd_kafka_conf_t *conf, ev_error *err)
{
    for (size_t i = 0; i < sizeof(durable) / sizeof(durable[0]); i++) {
        char v[32] = "";
        size_t len = sizeof(v);
        rd_kafka_conf_res_t r = rd_kafka_conf_get(conf, durable[i].name, v, &len);
        if (r != RD_KAFKA_CONF_OK || strcmp(v, durable[i].value) != 0)
            return ev_error_set(err, EV_EINVAL,
                                "kafka property %s=%s from CHOREO_KAFKA_* refused: the "
                                "producer needs enable.idempotence=true and acks=all",
                                durable[i].name, v);
    }
    return 0;
}

/* avg * cnt of one of librdkafka's rolling windows ({"avg": us, "cnt": n}). */
static void window_add(json_t *win, int64_t *us, int64_t *n)
{
    json_int_t cnt = json_integer_value(json_object_get(win, "cnt"));
    if (cnt <= 0)
        return;
    *us += (int64_t)json_integer_value(json_object_get(win, "avg")) * cnt;
    *n += cnt;
}

static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    (void)rk;
    ev_producer *p = opaque;
    json_t *root = json_loadb(json, len, 0, NULL);
    json_t *brokers = json_object_get(root, "brokers");
    ev_producer_window w = {0};
    const char *name;
    json_t *b;
    json_object_foreach(brokers, name, b)
    {
        window_add(json_object_get(b, "int_latency"), &w.queue_us, &w.queue_n);
        window_add(json_object_get(b, "outbuf_latency"), &w.outbuf_us, &w.outbuf_n);
        window_add(json_object_get(b, "rtt"), &w.rtt_us, &w.rtt_n);
    }
    json_decref(root);
    if (p != NULL && p->stats != NULL)
        p->stats(p->stats_arg, &w);
    return 0; /* librdkafka frees json */
}

int ev_producer_new(ev_producer **out, const char *brokers, const char *client_id,
                    ev_delivery_fn dr, void *dr_arg, ev_error *err)
{
    return ev_producer_new_stats(out, brokers, client_id, dr, dr_arg, NULL, NULL, 0, err);
}

int ev_producer_new_stats(ev_producer **out, const char *brokers, const char *client_id,
                          ev_delivery_fn dr, void *dr_arg, ev_producer_stats_fn stats,
                          void *stats_arg, int interval_ms, ev_error *err)
{
    static const prop defaults[] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"linger.ms", "5"},
    };
    *out = NULL;
    ev_producer *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return ev_error_set(err, EV_ENOMEM, "out of memory");
    p->dr = dr;
    p->dr_arg = dr_arg;
    p->block_ms = DEFAULT_BLOCK_MS;
    p->stats = stats;
    p->stats_arg = stats_arg;
    rd_kafka_conf_t *conf = NULL;
    int rc = conf_build(&conf, brokers, client_id, defaults,
                        sizeof(defaults) / sizeof(defaults[0]), err);
    if (rc == 0)
        rc = producer_check_durable(conf, err);
    if (rc == 0 && stats != NULL && interval_ms > 0) {
        char v[16];
        snprintf(v, sizeof(v), "%d", interval_ms);
        rc = conf_set(conf, "statistics.interval.ms", v, NULL, err);
        rd_kafka_conf_set_stats_cb(conf, stats_cb);
    }
    if (rc != 0)
        goto fail;
    char linger[32] = "";
    size_t llen = sizeof(linger);
    p->lingers =
        rd_kafka_conf_get(conf, "linger.ms", linger, &llen) != RD_KAFKA_CONF_OK ||
        strtod(linger, NULL) > 0;
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    char errstr[512];
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (p->rk == NULL) {
        rc = ev_error_set(err, EV_EBUS, "kafka producer: %s", errstr);
        goto fail;
    }
    *out = p;
    return 0;
fail:
    if (conf != NULL)
        rd_kafka_conf_destroy(conf);
    free(p);
    return rc;
}

void ev_producer_free(ev_producer *p)
{
    if (p == NULL)
        return;
    rd_kafka_resp_err_t e = rd_kafka_flush(p->rk, 10000);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        ev_log(EV_LOG_WARN, "producer closed with undelivered messages", "pending=%d",
               rd_kafka_outq_len(p->rk));
    rd_kafka_destroy(p->rk);
    free(p);
}

void ev_producer_free_now(ev_producer *p)
{
    if (p == NULL)
        return;
    p->dr = NULL;
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_destroy(p->rk);
    free(p);
}

void ev_producer_set_block(ev_producer *p, int block_ms)
{
    p->block_ms = block_ms < 0 ? 0 : block_ms;
}

static int headers_build(rd_kafka_headers_t **out, const ev_header *h, size_t n,
                         ev_error *err)
{
    *out = NULL;
    if (n == 0)
        return 0;
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(n);
    for (size_t i = 0; i < n; i++) {
        if (h[i].name == NULL)
            continue;
        rd_kafka_resp_err_t e =
            rd_kafka_header_add(hdrs, h[i].name, -1, h[i].value, h[i].value ? -1 : 0);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_headers_destroy(hdrs);
            return ev_error_set(err, EV_EBUS, "header %s: %s", h[i].name,
                                rd_kafka_err2str(e));
        }
    }
    *out = hdrs;
    return 0;
}

int ev_producer_send(ev_producer *p, const char *topic, int32_t partition,
                     const char *key, const void *value, size_t len,
                     const ev_header *headers, size_t n_headers, void *opaque,
                     ev_error *err)
{
    rd_kafka_headers_t *hdrs = NULL;
    int rc = headers_build(&hdrs, headers, n_headers, err);
    if (rc != 0)
        return rc;
    int64_t deadline = mono_ms() + p->block_ms;
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            p->rk, RD_KAFKA_V_TOPIC(topic),
            RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA : partition),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
            RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_HEADERS(hdrs),
            RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            return 0; /* headers now owned by the message */
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || mono_ms() >= deadline) {
            if (hdrs != NULL)
                rd_kafka_headers_destroy(hdrs);
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                return ev_error_set(err, EV_ERETRY, "produce to %s: local queue full",
                                    topic);
            return ev_error_set(err, EV_EBUS, "produce to %s: %s", topic,
                                rd_kafka_err2str(e));
        }
        rd_kafka_poll(p->rk, 50); /* serve delivery reports to make room */
    }
}

int ev_producer_poll(ev_producer *p, int timeout_ms)
{
    return rd_kafka_poll(p->rk, timeout_ms);
}

int ev_producer_flush(ev_producer *p, int timeout_ms, ev_error *err)
{
    rd_kafka_resp_err_t e = rd_kafka_flush(p->rk, timeout_ms);
    if (e == RD_KAFKA_RESP_ERR__TIMED_OUT)
        return ev_error_set(err, EV_ETIMEOUT, "flush: %d messages not delivered in %d ms",
                            rd_kafka_outq_len(p->rk), timeout_ms);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return ev_error_set(err, EV_EBUS, "flush: %s", rd_kafka_err2str(e));
    return 0;
}

int ev_producer_warm(ev_producer *p, const char *const *topics, int timeout_ms)
{
    int loaded = 0;
    for (size_t i = 0; p != NULL && topics != NULL && topics[i] != NULL; i++) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, topics[i], NULL);
        if (rkt == NULL)
            continue;
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t e = rd_kafka_metadata(p->rk, 0, rkt, &md, timeout_ms);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR && md != NULL && md->topic_cnt == 1 &&
            md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
            loaded++;
        else
            ev_log(EV_LOG_DEBUG, "topic metadata not loaded", "topic=%s error=%s",
                   topics[i],
                   rd_kafka_err2name(e != RD_KAFKA_RESP_ERR_NO_ERROR || md == NULL ||
                                             md->topic_cnt < 1
                                         ? e
                                         : md->topics[0].err));
        if (md != NULL)
            rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
    }
    return loaded;
}

void ev_producer_kick(ev_producer *p, int wait_ms)
{
    if (p != NULL && p->lingers && rd_kafka_outq_len(p->rk) > 0)
        rd_kafka_flush(p->rk, wait_ms < 0 ? 0 : wait_ms);
}

int ev_producer_outq_len(ev_producer *p)
{
    return rd_kafka_outq_len(p->rk);
}

rd_kafka_t *ev_producer_handle(ev_producer *p)
{
    return p->rk;
}

/* ---- consumer ---- */

static void count_assigned(ev_consumer *c)
{
    rd_kafka_topic_partition_list_t *a = NULL;
    if (rd_kafka_assignment(c->rk, &a) == RD_KAFKA_RESP_ERR_NO_ERROR && a != NULL) {
        c->n_assigned = a->cnt;
        rd_kafka_topic_partition_list_destroy(a);
    }
}

static void set_start_offsets(ev_consumer *c, rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &parts->elems[i];
        int64_t next = -1;
        if (c->start != NULL && c->start(c->start_arg, tp->topic, tp->partition, &next)) {
            /* Kafka's committed offset is never ahead of the DB: at worst re-reads. */
            ev_log_where w = {tp->topic, tp->partition, -1, NULL};
            ev_log_at(EV_LOG_ERROR, &w, "start offset unknown, using committed", NULL);
            tp->offset = RD_KAFKA_OFFSET_STORED;
            continue;
        }
        tp->offset = next < 0 ? RD_KAFKA_OFFSET_BEGINNING : next;
        ev_log_where w = {tp->topic, tp->partition, next, NULL};
        ev_log_at(EV_LOG_INFO, &w, "partition assigned", NULL);
    }
}

static void log_assign_error(const char *what, rd_kafka_error_t *e,
                             rd_kafka_resp_err_t re)
{
    if (e != NULL) {
        ev_log(EV_LOG_ERROR, what, "error=%s", rd_kafka_error_name(e));
        rd_kafka_error_destroy(e);
    } else if (re != RD_KAFKA_RESP_ERR_NO_ERROR) {
        ev_log(EV_LOG_ERROR, what, "error=%s", rd_kafka_err2name(re));
    }
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    ev_consumer *c = opaque;
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        c->ever_assigned = true;
        set_start_offsets(c, parts);
        if (coop)
            log_assign_error("incremental assign failed",
                             rd_kafka_incremental_assign(rk, parts), 0);
        else
            log_assign_error("assign failed", NULL, rd_kafka_assign(rk, parts));
        /* A partition paused before a revoke comes back running. */
        rd_kafka_resume_partitions(rk, parts);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        ev_log(EV_LOG_INFO, "partitions revoked", "count=%d lost=%d", parts->cnt,
               rd_kafka_assignment_lost(rk));
        if (coop)
            log_assign_error("incremental unassign failed",
                             rd_kafka_incremental_unassign(rk, parts), 0);
        else
            log_assign_error("unassign failed", NULL, rd_kafka_assign(rk, NULL));
    } else {
        ev_log(EV_LOG_ERROR, "rebalance failed", "error=%s", rd_kafka_err2name(err));
        rd_kafka_assign(rk, NULL);
    }
    count_assigned(c);
}

static int consumer_conf(rd_kafka_conf_t **conf, ev_consumer *c, const char *brokers,
                         const char *group, ev_error *err)
{
    static const prop defaults[] = {
        {"enable.auto.commit", "true"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "earliest"},
        {"partition.assignment.strategy", "cooperative-sticky"},
        {"allow.auto.create.topics", "false"},
        {"session.timeout.ms", "10000"},
        {"enable.partition.eof", "false"},
    };
    int rc = conf_build(conf, brokers, group, defaults,
                        sizeof(defaults) / sizeof(defaults[0]), err);
    if (rc != 0)
        return rc;
    rc = conf_set(*conf, "group.id", group, NULL, err);
    if (rc != 0) {
        rd_kafka_conf_destroy(*conf);
        *conf = NULL;
        return rc;
    }
    rd_kafka_conf_set_opaque(*conf, c);
    rd_kafka_conf_set_rebalance_cb(*conf, rebalance_cb);
    return 0;
}

static int consumer_subscribe(ev_consumer *c, const char *const *topics, ev_error *err)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
    for (size_t i = 0; topics != NULL && topics[i] != NULL; i++)
        rd_kafka_topic_partition_list_add(l, topics[i], RD_KAFKA_PARTITION_UA);
    int rc = 0;
    if (l->cnt == 0)
        rc = ev_error_set(err, EV_EINVAL, "consumer: no topics to subscribe to");
    if (rc == 0) {
        rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, l);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
            rc = ev_error_set(err, EV_EBUS, "subscribe: %s", rd_kafka_err2str(e));
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

int ev_consumer_new(ev_consumer **out, const char *brokers, const char *group,
                    const char *const *topics, ev_start_fn start, void *start_arg,
                    ev_error *err)
{
    *out = NULL;
    if (group == NULL || group[0] == '\0')
        return ev_error_set(err, EV_EINVAL, "consumer: empty group id");
    ev_consumer *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return ev_error_set(err, EV_ENOMEM, "out of memory");
    c->start = start;
    c->start_arg = start_arg;
    rd_kafka_conf_t *conf = NULL;
    int rc = consumer_conf(&conf, c, brokers, group, err);
    if (rc != 0)
        goto fail;
    char errstr[512];
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (c->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        rc = ev_error_set(err, EV_EBUS, "kafka consumer: %s", errstr);
        goto fail;
    }
    rd_kafka_poll_set_consumer(c->rk);
    rc = consumer_subscribe(c, topics, err);
    if (rc != 0)
        goto fail;
    *out = c;
    return 0;
fail:
    if (c->rk != NULL)
        rd_kafka_destroy_flags(c->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    free(c);
    return rc;
}

/* A message carrying an error: logs it; returns EV_EBUS only when fatal. */
static int consumer_event(ev_consumer *c, rd_kafka_message_t *m, ev_error *err)
{
    rd_kafka_resp_err_t e = m->err;
    ev_log_where w = {m->rkt ? rd_kafka_topic_name(m->rkt) : NULL, m->partition, -1,
                      NULL};
    if (e == RD_KAFKA_RESP_ERR__PARTITION_EOF)
        return 0;
    if (e == RD_KAFKA_RESP_ERR__FATAL) {
        char reason[256];
        rd_kafka_fatal_error(c->rk, reason, sizeof(reason));
        return ev_error_set(err, EV_EBUS, "consumer fatal error: %s", reason);
    }
    char q[256];
    ev_log_at(EV_LOG_WARN, &w, "consumer error", "code=%s reason=%s",
              rd_kafka_err2name(e), ev_log_quote(q, sizeof(q), rd_kafka_err2str(e)));
    return 0;
}

int ev_consumer_poll(ev_consumer *c, rd_kafka_message_t **msgs, size_t cap,
                     int timeout_ms, size_t *n, ev_error *err)
{
    *n = 0;
    int64_t deadline = mono_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    while (*n < cap) {
        int64_t left = deadline - mono_ms();
        int wait = *n > 0 || left <= 0 ? 0 : (int)left;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, wait);
        if (m == NULL) {
            if (*n > 0 || left <= 0)
                break;
            continue;
        }
        if (m->err) {
            int rc = consumer_event(c, m, err);
            rd_kafka_message_destroy(m);
            if (rc != 0)
                return rc;
            continue;
        }
        msgs[(*n)++] = m;
    }
    return 0;
}

static int one_partition_op(ev_consumer *c, const char *topic, int32_t partition,
                            int64_t offset, int op, ev_error *err)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    const char *what = "store";
    if (op == 0) {
        e = rd_kafka_offsets_store(c->rk, l);
    } else if (op == 1) {
        what = "seek";
        rd_kafka_error_t *re = rd_kafka_seek_partitions(c->rk, l, 5000);
        if (re != NULL) {
            e = rd_kafka_error_code(re);
            rd_kafka_error_destroy(re);
        }
    } else {
        what = op == 2 ? "pause" : "resume";
        e = op == 2 ? rd_kafka_pause_partitions(c->rk, l)
                    : rd_kafka_resume_partitions(c->rk, l);
    }
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        e = l->elems[0].err;
    rd_kafka_topic_partition_list_destroy(l);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return ev_error_set(err, EV_EBUS, "%s %s[%d]: %s", what, topic, (int)partition,
                            rd_kafka_err2str(e));
    return 0;
}

int ev_consumer_store(ev_consumer *c, const char *topic, int32_t partition, int64_t next,
                      ev_error *err)
{
    return one_partition_op(c, topic, partition, next, 0, err);
}

int ev_consumer_seek(ev_consumer *c, const char *topic, int32_t partition, int64_t offset,
                     ev_error *err)
{
    return one_partition_op(c, topic, partition,
                            offset < 0 ? RD_KAFKA_OFFSET_BEGINNING : offset, 1, err);
}

int ev_consumer_pause(ev_consumer *c, const char *topic, int32_t partition, bool pause,
                      ev_error *err)
{
    return one_partition_op(c, topic, partition, RD_KAFKA_OFFSET_INVALID, pause ? 2 : 3,
                            err);
}

bool ev_consumer_assigned(ev_consumer *c)
{
    return c->n_assigned > 0;
}

int ev_consumer_close(ev_consumer *c, ev_error *err)
{
    if (c->closed)
        return 0;
    c->closed = true;
    rd_kafka_resp_err_t e = rd_kafka_consumer_close(c->rk);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return ev_error_set(err, EV_EBUS, "consumer close: %s", rd_kafka_err2str(e));
    return 0;
}

/* librdkafka before 2.3 aborts destroying a cooperative-sticky consumer that
 * joined its group but never received an assignment (its assignor state is
 * still NULL: confluentinc/librdkafka#4312). Such a handle, closed already
 * (it left the group), is left to the process exit instead; kept reachable. */
static rd_kafka_t *abandoned[4];

static bool abandon(ev_consumer *c)
{
    if (c->ever_assigned || rd_kafka_version() >= 0x020300ff)
        return false;
    for (size_t i = 0; i < sizeof(abandoned) / sizeof(abandoned[0]); i++) {
        if (abandoned[i] == NULL) {
            abandoned[i] = c->rk;
            ev_log(EV_LOG_DEBUG, "consumer never assigned: handle left to exit",
                   "client=%s", rd_kafka_name(c->rk));
            return true;
        }
    }
    return false;
}

void ev_consumer_free(ev_consumer *c)
{
    if (c == NULL)
        return;
    if (abandon(c)) {
        free(c);
        return;
    }
    if (c->closed)
        rd_kafka_destroy(c->rk);
    else
        rd_kafka_destroy_flags(c->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    free(c);
}

rd_kafka_t *ev_consumer_handle(ev_consumer *c)
{
    return c->rk;
}
