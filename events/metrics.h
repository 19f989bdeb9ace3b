/* SPDX-License-Identifier: MIT */
/* A service's metrics: per-type event counters, fixed-bucket histograms and gauges,
 * cheap to bump from the hot path (relaxed atomics), rendered as Prometheus text. */
#ifndef EV_METRICS_H
#define EV_METRICS_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct ev_metrics ev_metrics;

/* Per-type counters: choreo_events_<name>_total{service,type}. */
typedef enum {
    EV_MC_CONSUMED = 0,  /* read from a subscribed topic (re-reads not counted) */
    EV_MC_APPLIED,       /* handled and committed */
    EV_MC_PRODUCED,      /* handed from the outbox to the idempotent producer */
    EV_MC_DEDUPED,       /* skipped: id already in the inbox */
    EV_MC_DEAD_LETTERED, /* sent to the DLQ */
    EV_MC_SKIPPED,       /* unknown type on a subscribed topic */
    EV_MC_RETRIED,       /* handler asked for a retry (EV_ERETRY) */
    EV_MC_COUNT
} ev_metric_counter;

/* Histograms with fixed buckets; values are observed in the base unit given. */
typedef enum {
    EV_MH_BATCH_SIZE = 0, /* records per poll batch; base unit: record */
    EV_MH_COMMIT_US,      /* store commit (one fsync); base unit: microsecond,
                             rendered as choreo_commit_seconds */
    EV_MH_BATCH_US,       /* whole batch apply, begin..commit; microsecond,
                             rendered as choreo_batch_seconds */
    /* One hop of a record through a service, in microseconds (bench/report's
     * per-hop breakdown); rendered as choreo_hop_<stage>_seconds: */
    EV_MH_HOP_TRANSIT_US, /* per record: its timestamp (whole ms, taken at its
                             producer's send call) to the poll that returned it */
    /* per polled batch that emitted records, relayed right after its commit: */
    EV_MH_HOP_PARSE_US,     /* parsing and validating its records */
    EV_MH_HOP_HANDLER_US,   /* inbox claims and handlers (state writes, emitted
                               events into the outbox) */
    EV_MH_HOP_COMMITTED_US, /* the poll that returned it to its commit's end */
    EV_MH_HOP_STAY_US,      /* the poll that returned it to its first emitted
                               record handed to the producer */
    EV_MH_HOP_RELAY_US,     /* per relay after a batch: its commit to the first row
                               handed to the producer */
    /* the producer, from librdkafka's statistics windows (observed as each
     * window's mean, count times): */
    EV_MH_HOP_QUEUE_US,  /* per record: send call to its request buffer
                            (queue and linger.ms) */
    EV_MH_HOP_OUTBUF_US, /* per record: in the request buffer before sending */
    EV_MH_HOP_RTT_US,    /* per produce request: to the broker's answer (acks=all) */
    EV_MH_COUNT
} ev_metric_hist;

/* Gauges: choreo_<name>{service}. */
typedef enum {
    EV_MG_READY = 0,      /* 1 when connected and assigned */
    EV_MG_ASSIGNED,       /* partitions assigned */
    EV_MG_OUTBOX_BACKLOG, /* outbox rows not yet delivered */
    EV_MG_TIMERS_PENDING, /* armed timers */
    EV_MG_COUNT
} ev_metric_gauge;

/* Up to this many distinct event types are counted by name; more fall into
 * type="other". Up to EV_METRICS_MAX_PARTS partitions report lag. */
#define EV_METRICS_MAX_TYPES 64
#define EV_METRICS_MAX_PARTS 128

/* A registry for service (copied; e.g. "orders"). NULL on allocation failure.
 * The process start time is taken now. */
ev_metrics *ev_metrics_new(const char *service);
void ev_metrics_free(ev_metrics *m);

/* ---- hot path: thread-safe, lock-free, never fail; m may be NULL (no-op) ---- */

/* Adds n to the counter of type (e.g. "order.placed"); type NULL or "" counts
 * under type="unknown". First use of a type takes a short lock. */
void ev_metrics_count(ev_metrics *m, ev_metric_counter c, const char *type, uint64_t n);
/* Same for a Kafka record: the type is read from the CloudEvents structured
 * JSON by a bounded scan for "type":"..." (no parse); "unknown" when absent. */
void ev_metrics_count_record(ev_metrics *m, ev_metric_counter c, const void *value,
                             size_t len);
/* Copies the envelope type of a record into out ("unknown" when not found). */
const char *ev_metrics_peek_type(const void *value, size_t len, char *out, size_t cap);
/* Monotonic clock in microseconds, for EV_MH_*_US observations. */
int64_t ev_metrics_now_us(void);
/* Observes value (in the histogram's base unit). */
void ev_metrics_observe(ev_metrics *m, ev_metric_hist h, uint64_t value);
/* Observes value n times (a window's mean and count: sum and count exact). */
void ev_metrics_observe_n(ev_metrics *m, ev_metric_hist h, uint64_t value, uint64_t n);
void ev_metrics_gauge_set(ev_metrics *m, ev_metric_gauge g, int64_t value);
int64_t ev_metrics_gauge_get(const ev_metrics *m, ev_metric_gauge g);

/* Consumer lag of one partition (end offset - position); lag < 0 removes it. */
void ev_metrics_lag_set(ev_metrics *m, const char *topic, int32_t partition, int64_t lag);
/* Sets lag of every partition assigned to consumer from librdkafka's cached
 * positions and watermarks (no broker round trip), and the assigned gauge.
 * Partitions not yet fetched are left out. Call about once a second. */
void ev_metrics_lag_update(ev_metrics *m, rd_kafka_t *consumer);

/* Links m to the service loop of this process: rendering adds its published
 * totals (ev_runtime_stats_get) as choreo_runtime_*_total, takes the outbox,
 * timers and assigned gauges from it, and READY becomes running && assigned > 0
 * (no gauge_set needed). Scrapes see values at most ~1 s old. */
void ev_metrics_attach_runtime(ev_metrics *m);

/* ---- readers ---- */

/* Sum over types of a counter; sum of lag over partitions. */
uint64_t ev_metrics_counter_total(const ev_metrics *m, ev_metric_counter c);
uint64_t ev_metrics_counter_get(const ev_metrics *m, ev_metric_counter c,
                                const char *type);
int64_t ev_metrics_lag_total(const ev_metrics *m);

/* For ev_http_start's ready callback (arg is the ev_metrics): with a runtime
 * attached, true while it runs with partitions assigned; otherwise true when
 * the EV_MG_READY gauge is 1. */
bool ev_metrics_ready(void *arg);

/* Prometheus text exposition format 0.0.4 (# HELP, # TYPE, samples); *out is
 * owned by the caller (free()), *len its size without the NUL. */
int ev_metrics_render(const ev_metrics *m, char **out, size_t *len, ev_error *err);

/* Logs one info line "metrics summary" with totals and rates since the last
 * summary once every interval (60 s unless set); cheap when it is not time.
 * now_ms is a monotonic clock (ev_mono_ms). */
void ev_metrics_tick(ev_metrics *m, int64_t now_ms);
void ev_metrics_set_summary_interval(ev_metrics *m, int64_t interval_ms);
/* Logs the summary line now (e.g. at shutdown). */
void ev_metrics_log_summary(ev_metrics *m, int64_t now_ms);

#endif
