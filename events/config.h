/* SPDX-License-Identifier: MIT */
/* Configuration every program reads: CHOREO_* environment variables, each one
 * overridable by a long flag of the same name (--brokers, --data-dir, ...). */
#ifndef EV_CONFIG_H
#define EV_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#ifndef EV_SCHEMA_DIR
#define EV_SCHEMA_DIR "schemas"
#endif

typedef struct ev_config {
    char service[32];
    char brokers[512];         /* CHOREO_BROKERS, default 127.0.0.1:9092 */
    char topic_prefix[128];    /* CHOREO_TOPIC_PREFIX, default "" */
    char data_dir[512];        /* CHOREO_DATA_DIR, default var/<service> */
    char schema_dir[512];      /* CHOREO_SCHEMA_DIR, default EV_SCHEMA_DIR */
    char http_addr[128];       /* CHOREO_HTTP_ADDR, default per service; "" = off */
    char synchronous[16];      /* CHOREO_SQLITE_SYNC, FULL or NORMAL */
    int log_level;             /* CHOREO_LOG_LEVEL as ev_log_level */
    int64_t order_timeout_ms;  /* CHOREO_ORDER_TIMEOUT_MS, 30000 */
    int64_t dispatch_delay_ms; /* CHOREO_DISPATCH_DELAY_MS, 1000 */
    int64_t max_record;        /* CHOREO_MAX_RECORD, 65536 */
    int max_attempts;          /* CHOREO_MAX_ATTEMPTS: tries before DLQ, 5 */
    int64_t retry_backoff_ms;  /* CHOREO_RETRY_BACKOFF_MS: first backoff, 200 */
    int batch_size;            /* CHOREO_BATCH_SIZE, 500 */
    int64_t inbox_ttl_ms;      /* CHOREO_INBOX_TTL_MS, 7 days */
    int topic_partitions;      /* CHOREO_TOPIC_PARTITIONS: of topics created, 3 */
    int topic_replication;     /* CHOREO_TOPIC_REPLICATION, 0 = min(3, brokers) */
    char store[1024];          /* CHOREO_STORE: "sqlite" or postgresql://... URI */
    char store_schema[64];     /* CHOREO_STORE_SCHEMA, default the service name */
} ev_config;

/* Defaults, then the environment. service may be NULL (the CLI: data_dir
 * var/choreo, no http_addr). An empty variable counts as unset, except
 * CHOREO_TOPIC_PREFIX and CHOREO_HTTP_ADDR where "" is a value. Numbers are
 * strict base-10 integers within a range; errors name the variable. */
int ev_config_from_env(ev_config *c, const char *service, ev_error *err);

/* Applies one long flag without the dashes: brokers, topic-prefix, data-dir,
 * schema-dir, http-addr, log-level, sqlite-sync, order-timeout-ms,
 * dispatch-delay-ms, max-record, max-attempts, retry-backoff-ms, batch-size,
 * inbox-ttl-ms, topic-partitions, topic-replication, store, store-schema.
 * store may hold a password: it is never logged nor put in an error text. Errors name the
 * flag ("--batch-size: ..."). EV_ENOTFOUND when name is not a config flag, EV_EINVAL on a
 * bad value. */
int ev_config_set(ev_config *c, const char *name, const char *value, ev_error *err);

/* "<prefix><topic>" into out; EV_EINVAL when it does not fit. */
int ev_config_topic(const ev_config *c, const char *topic, char *out, size_t cap,
                    ev_error *err);

#endif
