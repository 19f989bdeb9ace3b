/* SPDX-License-Identifier: MIT */
/* Internals shared by the runtime's files (runtime*.c only, never services or
 * the CLI): the loop's state, the handler context, the calls across files. */
#ifndef EV_RUNTIME_INTERNAL_H
#define EV_RUNTIME_INTERNAL_H

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bus.h"
#include "http.h"
#include "metrics.h"
#include "runtime.h"
#include "schema.h"
#include "stats.h"

#define CE_HEADERS "{\"content-type\":\"application/cloudevents+json\"}"
#define TOPIC_MAX 256

typedef enum { REC_APPLIED, REC_SKIPPED, REC_DEDUPED, REC_RETRY, REC_DLQ } rec_result;

typedef struct fast_fail {
    bool set;
    size_t index; /* in the batch */
    rec_result res;
    int code;
    ev_error why;
    bool handler_ran; /* log "handler failed" with id and type */
    char id[EV_ID_MAX];
    char type[EV_TYPE_MAX];
} fast_fail;

typedef struct metric_note {
    ev_metric_counter c;
    bool labeled;
    char type[EV_TYPE_MAX];
    const void *val; /* the record's bytes, alive until the batch ends */
    size_t len;
} metric_note;

/* Per assigned partition: where the DB says we are, and any retry in progress. */
typedef struct part_state {
    char *topic;
    int32_t partition;
    int64_t next;         /* next offset to apply; -1 unknown */
    bool dirty;           /* next changed in this batch */
    bool hold;            /* a retry stopped this partition for the rest of the batch */
    int64_t retry_offset; /* record being retried; -1 none */
    int attempts;
    int64_t resume_at; /* monotonic ms when a paused partition restarts; 0 = running */
} part_state;

typedef struct ev_runtime {
    const ev_service_def *def;
    const ev_config *cfg;
    ev_store *store;
    ev_contract *contract;
    ev_schema_set *schemas;
    ev_producer *prod;
    ev_consumer *cons;
    ev_limits limits;
    char source[EV_SOURCE_MAX];
    char dlq_topic[TOPIC_MAX];
    char group[TOPIC_MAX];
    char **topics; /* consumed, prefixed, NULL-terminated */
    part_state *parts;
    size_t n_parts, cap_parts;
    int64_t relay_hwm;   /* last outbox id handed to the producer */
    int64_t resend_from; /* lowest id whose delivery failed; INT64_MAX none */
    bool relay_pending;  /* outbox may hold rows not yet sent */
    int64_t *done;       /* delivered ids waiting for deletion */
    size_t n_done, cap_done;
    int64_t next_timer_due;
    int64_t last_prune, last_summary, last_housekeep; /* monotonic ms */
    int fatal; /* a delivery callback hit a condition needing exit */
    ev_runtime_stats st;
    ev_metrics *metrics; /* per-type counters and histograms for /metrics */
    ev_http *http;       /* /healthz and /metrics; NULL when off */
    /* Optimistic batches: records run without a savepoint each; the first one
     * that fails aborts the attempt (FAST_ABORT), which is rolled back and run
     * again with savepoints ("careful"), reusing the failed record's verdict. */
    bool careful;
    fast_fail fail;  /* the verdict that aborted the optimistic attempt */
    bool diverged;   /* careful run: a record before fail.index failed too */
    metric_note *mq; /* per-record counters, counted once the batch commits */
    size_t n_mq, cap_mq;
    part_state *snap; /* parts as they were before the attempt */
    size_t cap_snap;
    /* def->before_commit failed: the batch was rolled back, its partitions
     * paused until hold_until (monotonic ms) and timers wait as well. */
    int64_t hold_until;
    int hold_attempts; /* consecutive before_commit failures */
    volatile sig_atomic_t *stop;
    char instance[128];    /* this process, the owner of its outbox rows */
    int conflict_attempts; /* consecutive batches lost to another instance */
    int64_t serial_until;  /* batches wait for the other instances' until then */
    int64_t last_claim;    /* monotonic ms of the last orphaned-outbox claim */
    /* One hop's stages (EV_MH_HOP_*), monotonic microseconds: the batch's
     * parse and handler time (summed by runtime_batch.c), when the poll
     * returned its records and when it committed (0: none waiting). */
    int64_t hop_parse_us, hop_handler_us;
    int64_t hop_poll_us, hop_commit_us;
    /* Polled records that are all skips, waiting (runtime.c's CARRY_MS, until
     * carry_until, monotonic ms) at the head of the loop's record array. */
    size_t carry;
    int64_t carry_until;
    /* --rebuild/--verify (runtime_rebuild.c): no consumer, no producer; a
     * record or batch to retry stops the rebuild; batches run on clock_ms. */
    bool rebuild;
    int64_t clock_ms; /* the batch's time; 0 = the wall clock */
} ev_runtime;

struct ev_ctx {
    ev_runtime *rt;
    const ev_envelope *cause;    /* NULL in def->start */
    const char *emit_causation;  /* overrides causationid of emitted events */
    const char *timer_causation; /* causationid of timers armed here */
    unsigned n_emits;
    int failed; /* first ev_emit/ev_timer error, sticky */
    ev_error fail_err;
    int64_t now_ms;
};

/* Copies src into dst of cap bytes, truncating. */
static inline void ev_rt_scopy(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strnlen(src, cap - 1) : 0;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

/* ---- runtime.c ---- */

/* The state of an assigned partition, created on first sight; NULL on
 * allocation failure. Borrowed: lives as long as rt. */
part_state *ev_rt_part_get(ev_runtime *rt, const char *topic, int32_t partition);
/* Loads the contract and the schemas, builds rt->topics and checks the
 * handled and emitted types against both. */
int ev_rt_load_contract(ev_runtime *rt, ev_error *err);
/* Opens the service's store (read-write with owner, or readonly for --dump). */
int ev_rt_open_store(ev_store **out, const ev_service_def *def, const ev_config *cfg,
                     bool readonly, const char *owner, ev_error *err);

/* ---- runtime_batch.c ---- */

/* Applies msgs (may be 0), due timers, deletions and pruning in one
 * transaction; 0, or a fatal error (a batch to retry is held, returns 0). */
int ev_rt_run_batch(ev_runtime *rt, rd_kafka_message_t **msgs, size_t n, bool prune,
                    bool timers, ev_error *err);

/* ---- runtime_ctx.c ---- */

/* Records the first ev_emit/ev_timer_* failure of a handler call (sticky). */
void ev_rt_ctx_fail(ev_ctx *ctx, int rc, const ev_error *err);

/* ---- runtime_dlq.c ---- */

/* A consumed record to dlq.<service>, same key, original bytes and headers. */
int ev_rt_dlq_record(ev_runtime *rt, const rd_kafka_message_t *m, int code,
                     const char *text, ev_error *err);
/* A failed timer to dlq.<service>, as its synthetic envelope syn. */
int ev_rt_dlq_timer(ev_runtime *rt, const ev_envelope *syn, int code, const char *text,
                    ev_error *err);
/* EV_ERETRY from a handler: hold the partition at this record (0), or give up
 * and dead-letter it (1); -1 when dead-lettering failed. */
int ev_rt_retry_or_dlq(ev_runtime *rt, part_state *p, const rd_kafka_message_t *m,
                       int code, const ev_error *why, ev_error *err);
/* The retry backoff after attempts failures: retry_backoff_ms, doubling, capped. */
int64_t ev_rt_backoff_ms(const ev_config *cfg, int attempts);

/* ---- runtime_timers.c ---- */

/* Fires the due timers (up to a fixed number per batch) inside the batch's
 * transaction; nonzero only for fatal errors. */
int ev_rt_fire_due_timers(ev_runtime *rt, int64_t now, ev_error *err);
/* A timer's dead letter sent back by `choreo dlq replay` (header timer.kind,
 * the timer's synthetic envelope as value): *handled true. When it is this
 * service's timer it is armed again, due now, in the batch's transaction (it
 * fires as it would have: its handler decides on the current state and its
 * events keep their derived ids); another service's is skipped. 0, or a
 * store error. */
int ev_rt_timer_replay(ev_runtime *rt, const rd_kafka_message_t *m, int64_t now,
                       bool *handled, ev_error *err);

/* ---- runtime_rebuild.c, runtime_verify.c ---- */

/* A set of event ids, each with its type and where it was seen. */
typedef struct ev_rt_ids ev_rt_ids;
ev_rt_ids *ev_rt_ids_new(void); /* NULL on allocation failure */
void ev_rt_ids_free(ev_rt_ids *s);
/* 0, or -1 on allocation failure; where: topic [partition] @ offset (partition
 * -1: an outbox row, offset its id). */
int ev_rt_ids_add(ev_rt_ids *s, const char *id, const char *type, const char *topic,
                  int32_t partition, int64_t offset);
bool ev_rt_ids_has(ev_rt_ids *s, const char *id);

typedef struct ev_rt_rebuild_opts {
    bool require_fresh;     /* refuse a store that holds anything */
    bool quiet;             /* no summary on stdout */
    bool dump;              /* res->dump gets the rebuilt state */
    const char *store_name; /* for the summary */
} ev_rt_rebuild_opts;

typedef struct ev_rt_rebuild_result {
    json_t *dump;         /* owned by the caller */
    ev_rt_ids *published; /* the service's events on its topics; owned */
    ev_rt_ids *would;     /* what the rebuild would emit; owned */
    size_t kept;          /* would-be events not published */
} ev_rt_rebuild_result;

/* Rebuilds the service's store of cfg from its input topics (runtime_rebuild.c). */
int ev_rt_rebuild(const ev_service_def *def, const ev_config *cfg,
                  const ev_rt_rebuild_opts *o, ev_rt_rebuild_result *res,
                  volatile sig_atomic_t *stop, ev_error *err);

/* ---- runtime_relay.c ---- */

/* ev_delivery_fn of the producer (arg is rt): counts, queues the outbox id for
 * deletion, or marks it for a resend. */
void ev_rt_on_delivery(void *arg, void *opaque, int err, const char *errstr,
                       const char *topic, int32_t partition, int64_t offset);
/* Hands outbox rows after the high-water mark to the producer. */
void ev_rt_relay(ev_runtime *rt);
/* rt->prod with the runtime's delivery reports and statistics. */
int ev_rt_producer_new(ev_runtime *rt, ev_error *err);
/* Loads the metadata of the topics the service emits to. Best effort. */
void ev_rt_producer_warm(ev_runtime *rt);
/* Recreates the producer after a fatal error and resends the whole outbox. */
int ev_rt_producer_check(ev_runtime *rt, ev_error *err);
/* A shared store: takes over outbox rows other instances left unsent. */
void ev_rt_claim_orphans(ev_runtime *rt, int64_t mono);

/* Frees what the runtime holds besides its Kafka clients and HTTP listener:
 * the store, schemas, contract, topic names, partitions and batch buffers. */
void ev_rt_free_state(ev_runtime *rt);

#endif
