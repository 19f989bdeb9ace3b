/* SPDX-License-Identifier: MIT */
/* Kafka through librdkafka: an idempotent producer with delivery reports and a
 * consumer that stores offsets by hand and starts where the service's DB says. */
#ifndef EV_BUS_H
#define EV_BUS_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Applies every CHOREO_KAFKA_<property> of the environment to conf (the
 * property name with '_' turned into '.', e.g. CHOREO_KAFKA_security_protocol).
 * Values are never logged. */
int ev_bus_conf_env(rd_kafka_conf_t *conf, ev_error *err);

/* ---- producer ---- */

typedef struct ev_producer ev_producer;

/* Delivery report: err is 0 or EV_EBUS with errstr; opaque as given to send. */
typedef void (*ev_delivery_fn)(void *arg, void *opaque, int err, const char *errstr,
                               const char *topic, int32_t partition, int64_t offset);

/* enable.idempotence=true, acks=all, linger.ms=5; CHOREO_KAFKA_* may change
 * any setting but those two: EV_EINVAL, naming the property, when the
 * environment turns idempotence off or acks below all. dr may be NULL. */
int ev_producer_new(ev_producer **out, const char *brokers, const char *client_id,
                    ev_delivery_fn dr, void *dr_arg, ev_error *err);

/* One window of librdkafka's statistics of a producer, over its brokers: per
 * message, the time from the send call to its request buffer (queue and
 * linger) and in that buffer before it is sent; per produce request, the round
 * trip to the broker's answer. Microseconds summed, and counts. */
typedef struct ev_producer_window {
    int64_t queue_us, queue_n;
    int64_t outbuf_us, outbuf_n;
    int64_t rtt_us, rtt_n;
} ev_producer_window;
typedef void (*ev_producer_stats_fn)(void *arg, const ev_producer_window *w);

/* ev_producer_new with librdkafka's statistics every interval_ms, each window
 * handed to stats (from the thread serving delivery reports); stats may be
 * NULL or interval_ms 0 for none. */
int ev_producer_new_stats(ev_producer **out, const char *brokers, const char *client_id,
                          ev_delivery_fn dr, void *dr_arg, ev_producer_stats_fn stats,
                          void *stats_arg, int interval_ms, ev_error *err);
void ev_producer_free(ev_producer *p); /* flushes up to 10 s first */
/* Frees without waiting: what is not delivered yet is dropped (the runtime's
 * outbox still holds it). No delivery report is called. NULL is a no-op. */
void ev_producer_free_now(ev_producer *p);

typedef struct ev_header {
    const char *name;
    const char *value; /* NUL-terminated */
} ev_header;

/* Copies key, value and headers. Serves delivery reports while the local queue
 * is full. partition -1 = by key. */
int ev_producer_send(ev_producer *p, const char *topic, int32_t partition,
                     const char *key, const void *value, size_t len,
                     const ev_header *headers, size_t n_headers, void *opaque,
                     ev_error *err);
/* Serves delivery reports; returns how many were served. */
int ev_producer_poll(ev_producer *p, int timeout_ms);
/* Waits until everything sent is delivered or failed; EV_ETIMEOUT otherwise. */
int ev_producer_flush(ev_producer *p, int timeout_ms, ev_error *err);
/* Loads the partition metadata of topics (full names, NULL-terminated) so that
 * the first send to each does not wait for librdkafka's periodic scan of new
 * topics (measured: 80-480 ms on the first records). Best effort, waits at
 * most timeout_ms per topic; a topic missing on the broker is created as a
 * send would create it. Returns how many topics were loaded. */
int ev_producer_warm(ev_producer *p, const char *const *topics, int timeout_ms);
/* Sends what is queued now instead of after linger.ms: librdkafka ignores
 * linger.ms while a flush runs, so this flushes for at most wait_ms (serving
 * delivery reports meanwhile). For a caller that has just queued a burst.
 * Nothing to do (no wait) when linger.ms is 0. */
void ev_producer_kick(ev_producer *p, int wait_ms);
/* Messages still waiting for a delivery report. */
int ev_producer_outq_len(ev_producer *p);

rd_kafka_t *ev_producer_handle(ev_producer *p); /* borrowed */
/* How long ev_producer_send waits for room in a full local queue before it
 * gives up with EV_ERETRY (default 30000 ms; the runtime uses a short wait). */
void ev_producer_set_block(ev_producer *p, int block_ms);

/* ---- consumer ---- */

typedef struct ev_consumer ev_consumer;

/* Where to start a newly assigned partition: set *next to an offset, or to -1
 * to start from the beginning of the partition. Nonzero return = error. */
typedef int (*ev_start_fn)(void *arg, const char *topic, int32_t partition,
                           int64_t *next);

/* Subscribes group to topics (full names, NULL-terminated). Auto commit of
 * stored offsets on (for lag watching), auto offset store off, start positions
 * from start() on every assignment. */
int ev_consumer_new(ev_consumer **out, const char *brokers, const char *group,
                    const char *const *topics, ev_start_fn start, void *start_arg,
                    ev_error *err);

/* Up to cap messages within timeout_ms; *n may be 0. Errors that are events
 * (partition EOF, transient broker errors) are logged, not returned. Each
 * message is owned by the caller: rd_kafka_message_destroy. */
int ev_consumer_poll(ev_consumer *c, rd_kafka_message_t **msgs, size_t cap,
                     int timeout_ms, size_t *n, ev_error *err);
/* Marks next offsets for Kafka's commit (after the DB commit). */
int ev_consumer_store(ev_consumer *c, const char *topic, int32_t partition, int64_t next,
                      ev_error *err);
/* Moves a partition's position (e.g. to re-read a record to retry). */
int ev_consumer_seek(ev_consumer *c, const char *topic, int32_t partition, int64_t offset,
                     ev_error *err);
/* Stops (pause true) or restarts fetching a partition; a retry backoff. */
int ev_consumer_pause(ev_consumer *c, const char *topic, int32_t partition, bool pause,
                      ev_error *err);
bool ev_consumer_assigned(ev_consumer *c);
/* Commits stored offsets and leaves the group. */
int ev_consumer_close(ev_consumer *c, ev_error *err);
void ev_consumer_free(ev_consumer *c);
rd_kafka_t *ev_consumer_handle(ev_consumer *c); /* borrowed */

#endif
