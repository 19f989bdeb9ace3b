/* SPDX-License-Identifier: MIT */
/* Configuration every program reads: CHOREO_* environment variables, each one
 * overridable by a long flag of the same name (--brokers, --data-dir, ...). */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

typedef enum { OPT_STR, OPT_STR_EMPTY, OPT_I64, OPT_INT, OPT_LEVEL, OPT_SYNC } opt_kind;

typedef struct opt_spec {
    const char *flag;
    const char *env;
    opt_kind kind;
    size_t off;
    size_t size;
    int64_t min, max;
} opt_spec;

#define FIELD(m) offsetof(ev_config, m), sizeof(((ev_config *)0)->m)
#define DAY_MS 86400000LL

static const opt_spec opts[] = {
    {"brokers", "CHOREO_BROKERS", OPT_STR, FIELD(brokers), 0, 0},
    {"topic-prefix", "CHOREO_TOPIC_PREFIX", OPT_STR_EMPTY, FIELD(topic_prefix), 0, 0},
    {"data-dir", "CHOREO_DATA_DIR", OPT_STR, FIELD(data_dir), 0, 0},
    {"schema-dir", "CHOREO_SCHEMA_DIR", OPT_STR, FIELD(schema_dir), 0, 0},
    {"http-addr", "CHOREO_HTTP_ADDR", OPT_STR_EMPTY, FIELD(http_addr), 0, 0},
    {"log-level", "CHOREO_LOG_LEVEL", OPT_LEVEL, FIELD(log_level), 0, 0},
    {"sqlite-sync", "CHOREO_SQLITE_SYNC", OPT_SYNC, FIELD(synchronous), 0, 0},
    {"order-timeout-ms", "CHOREO_ORDER_TIMEOUT_MS", OPT_I64, FIELD(order_timeout_ms), 1,
     365 * DAY_MS},
    {"dispatch-delay-ms", "CHOREO_DISPATCH_DELAY_MS", OPT_I64, FIELD(dispatch_delay_ms),
     0, 365 * DAY_MS},
    {"max-record", "CHOREO_MAX_RECORD", OPT_I64, FIELD(max_record), 1024, 1 << 30},
    {"max-attempts", "CHOREO_MAX_ATTEMPTS", OPT_INT, FIELD(max_attempts), 1, 1000},
    {"retry-backoff-ms", "CHOREO_RETRY_BACKOFF_MS", OPT_I64, FIELD(retry_backoff_ms), 0,
     DAY_MS},
    {"batch-size", "CHOREO_BATCH_SIZE", OPT_INT, FIELD(batch_size), 1, 100000},
    {"inbox-ttl-ms", "CHOREO_INBOX_TTL_MS", OPT_I64, FIELD(inbox_ttl_ms), 1000,
     3650 * DAY_MS},
    {"topic-partitions", "CHOREO_TOPIC_PARTITIONS", OPT_INT, FIELD(topic_partitions), 1,
     10000},
    {"topic-replication", "CHOREO_TOPIC_REPLICATION", OPT_INT, FIELD(topic_replication),
     1, 32},
    {"store", "CHOREO_STORE", OPT_STR, FIELD(store), 0, 0},
    {"store-schema", "CHOREO_STORE_SCHEMA", OPT_STR, FIELD(store_schema), 0, 0},
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

static const struct {
    const char *service;
    const char *addr;
} default_http[] = {
    {"orders", "127.0.0.1:9101"},        {"inventory", "127.0.0.1:9102"},
    {"payments", "127.0.0.1:9103"},      {"shipping", "127.0.0.1:9104"},
    {"notifications", "127.0.0.1:9105"},
};

static int set_defaults(ev_config *c, const char *service, ev_error *err)
{
    memset(c, 0, sizeof(*c));
    if (service != NULL && strlen(service) >= sizeof(c->service))
        return ev_error_set(err, EV_EINVAL, "service name longer than %zu bytes",
                            sizeof(c->service) - 1);
    snprintf(c->service, sizeof(c->service), "%s", service ? service : "");
    snprintf(c->brokers, sizeof(c->brokers), "127.0.0.1:9092");
    snprintf(c->data_dir, sizeof(c->data_dir), "var/%s", service ? service : "choreo");
    snprintf(c->schema_dir, sizeof(c->schema_dir), "%s", EV_SCHEMA_DIR);
    snprintf(c->synchronous, sizeof(c->synchronous), "FULL");
    for (size_t i = 0; service && i < sizeof(default_http) / sizeof(default_http[0]); i++)
        if (strcmp(service, default_http[i].service) == 0)
            snprintf(c->http_addr, sizeof(c->http_addr), "%s", default_http[i].addr);
    c->log_level = EV_LOG_INFO;
    c->order_timeout_ms = 30000;
    c->dispatch_delay_ms = 1000;
    c->max_record = 65536;
    c->max_attempts = 5;
    c->retry_backoff_ms = 200;
    c->batch_size = 500;
    c->inbox_ttl_ms = 7 * DAY_MS;
    c->topic_partitions = 3;
    snprintf(c->store, sizeof(c->store), "sqlite");
    snprintf(c->store_schema, sizeof(c->store_schema), "%s",
             service ? service : "choreo");
    return 0;
}

/* Strict base-10 integer: optional '-', digits only, whole string, in range. */
static int parse_int(const opt_spec *o, const char *label, const char *v, int64_t *out,
                     ev_error *err)
{
    const char *p = v[0] == '-' ? v + 1 : v;
    if (*p < '0' || *p > '9')
        return ev_error_set(err, EV_EINVAL, "%s: \"%.40s\" is not an integer", label, v);
    errno = 0;
    char *end = NULL;
    long long n = strtoll(v, &end, 10);
    if (*end != '\0')
        return ev_error_set(err, EV_EINVAL, "%s: \"%.40s\" is not an integer", label, v);
    if (errno == ERANGE || n < o->min || n > o->max)
        return ev_error_set(err, EV_EINVAL, "%s: %.40s is out of range %lld..%lld", label,
                            v, (long long)o->min, (long long)o->max);
    *out = n;
    return 0;
}

static int set_str(ev_config *c, const opt_spec *o, const char *label, const char *v,
                   ev_error *err)
{
    size_t n = strlen(v);
    if (n == 0 && o->kind == OPT_STR)
        return ev_error_set(err, EV_EINVAL, "%s: must not be empty", label);
    if (n >= o->size)
        return ev_error_set(err, EV_EINVAL, "%s: longer than %zu bytes", label,
                            o->size - 1);
    memcpy((char *)c + o->off, v, n + 1);
    return 0;
}

static int set_sync(ev_config *c, const char *label, const char *v, ev_error *err)
{
    if (strcasecmp(v, "full") == 0)
        snprintf(c->synchronous, sizeof(c->synchronous), "FULL");
    else if (strcasecmp(v, "normal") == 0)
        snprintf(c->synchronous, sizeof(c->synchronous), "NORMAL");
    else
        return ev_error_set(err, EV_EINVAL, "%s: \"%.40s\" is not FULL or NORMAL", label,
                            v);
    return 0;
}

static int apply(ev_config *c, const opt_spec *o, const char *label, const char *v,
                 ev_error *err)
{
    int64_t n = 0;
    int rc;
    switch (o->kind) {
    case OPT_STR:
    case OPT_STR_EMPTY:
        return set_str(c, o, label, v, err);
    case OPT_SYNC:
        return set_sync(c, label, v, err);
    case OPT_LEVEL:
        rc = ev_log_level_parse(v);
        if (rc < 0)
            return ev_error_set(err, EV_EINVAL,
                                "%s: \"%.40s\" is not error, warn, info or debug", label,
                                v);
        c->log_level = rc;
        return 0;
    case OPT_I64:
    case OPT_INT:
        rc = parse_int(o, label, v, &n, err);
        if (rc != 0)
            return rc;
        if (o->kind == OPT_INT)
            *(int *)((char *)c + o->off) = (int)n;
        else
            *(int64_t *)((char *)c + o->off) = n;
        return 0;
    }
    return ev_error_set(err, EV_EINVAL, "%s: unhandled option", label);
}

int ev_config_from_env(ev_config *c, const char *service, ev_error *err)
{
    if (c == NULL)
        return ev_error_set(err, EV_EINVAL, "config: null argument");
    int rc = set_defaults(c, service, err);
    for (size_t i = 0; rc == 0 && i < N_OPTS; i++) {
        const char *v = getenv(opts[i].env);
        if (v == NULL)
            continue;
        /* An empty variable means "unset" except where "" is a value. */
        if (v[0] == '\0' && opts[i].kind != OPT_STR_EMPTY)
            continue;
        rc = apply(c, &opts[i], opts[i].env, v, err);
    }
    return rc;
}

int ev_config_set(ev_config *c, const char *name, const char *value, ev_error *err)
{
    if (c == NULL || name == NULL || value == NULL)
        return ev_error_set(err, EV_EINVAL, "config: null argument");
    for (size_t i = 0; i < N_OPTS; i++) {
        if (strcmp(name, opts[i].flag) != 0)
            continue;
        char label[48];
        snprintf(label, sizeof(label), "--%s", opts[i].flag);
        return apply(c, &opts[i], label, value, err);
    }
    return ev_error_set(err, EV_ENOTFOUND, "--%.60s: not a configuration flag", name);
}

int ev_config_topic(const ev_config *c, const char *topic, char *out, size_t cap,
                    ev_error *err)
{
    if (c == NULL || topic == NULL || topic[0] == '\0' || out == NULL || cap == 0)
        return ev_error_set(err, EV_EINVAL, "config topic: bad argument");
    int n = snprintf(out, cap, "%s%s", c->topic_prefix, topic);
    if (n < 0 || (size_t)n >= cap)
        return ev_error_set(err, EV_EINVAL, "topic name %s%.40s longer than %zu bytes",
                            c->topic_prefix, topic, cap - 1);
    return 0;
}
