/* SPDX-License-Identifier: MIT */
/* The service loop of DESIGN.md "Effectively-once per service": poll a batch,
 * apply it in one transaction (dedup, handlers, outbox, offsets), relay the
 * outbox, fire timers, dead-letter bad records, stop cleanly on SIGTERM. */
#ifndef EV_RUNTIME_H
#define EV_RUNTIME_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "contract.h"
#include "envelope.h"
#include "error.h"
#include "stats.h"
#include "store.h"

typedef struct ev_ctx ev_ctx;

/* Applies one event to the service's state. Return 0; EV_ERETRY for a
 * transient failure (retried with backoff, dead-lettered after max_attempts);
 * any other negative code dead-letters the record with err->text. Whatever the
 * handler wrote is rolled back when it fails. */
typedef int (*ev_handler_fn)(ev_ctx *ctx, const ev_envelope *ev, ev_error *err);

typedef struct ev_handler {
    const char *type;
    ev_handler_fn fn;
} ev_handler;

/* A due timer (armed by ev_timer_arm); same return convention as handlers. */
typedef int (*ev_timer_fn)(ev_ctx *ctx, const ev_timer *t, ev_error *err);

/* Prints the service's state as JSON: *out owned by caller. */
typedef int (*ev_dump_fn)(ev_store *s, json_t **out, ev_error *err);

typedef struct ev_service_def {
    const char *name;               /* "orders": group id, source, DLQ name */
    const ev_handler *handlers;     /* terminated by {NULL, NULL} */
    const char *const *emits;       /* emitted types, NULL-terminated */
    const ev_migration *migrations; /* the service's own tables */
    size_t n_migrations;
    ev_timer_fn on_timer; /* may be NULL */
    ev_dump_fn dump;      /* may be NULL */
    /* Called once after the store is open, before the loop (may be NULL). */
    int (*start)(ev_ctx *ctx, ev_error *err);
    /* Called once per batch just before COMMIT when the batch applied a record
     * or fired a timer (may be NULL): makes the batch's effects outside the
     * database durable (one fsync per batch, not per event). Any nonzero
     * return rolls the whole batch back; the partitions it read are sought
     * back to the batch's first offsets and paused, timers wait too, and the
     * batch runs again after the retry backoff (doubling per consecutive
     * failure up to a minute; never dead-lettered: no record is at fault).
     * So handlers' outside effects must be safe to repeat (same file names). */
    int (*before_commit)(ev_ctx *ctx, ev_error *err);
} ev_service_def;

/* Runs until *stop becomes nonzero: finishes the batch, flushes the outbox,
 * commits offsets, closes. Consumed topics are the topics of the handled types
 * in the contract. Returns 0 after a clean stop. Process-wide, once, when
 * SQLite is not in use yet: SQLite's multi-thread mode (a connection is used
 * by one thread at a time, as the runtime does) and no allocation statistics. */
int ev_service_run(const ev_service_def *def, const ev_config *cfg,
                   volatile sig_atomic_t *stop, ev_error *err);

/* The service's state from the log alone. Reads the input topics from offset
 * 0 up to their ends at start, merged by record time, through the handlers
 * (timers fire on the records' clock, then those due by the start), relaying
 * nothing; the would-be events already on the topics leave the outbox, the
 * others stay for the next start to relay, and the offsets let a normal start
 * resume where the rebuild ended. Refuses a partition that no longer starts
 * at offset 0 or has a gap (retention, compaction: EV_EINVAL saying so).
 * verify false (--rebuild): into cfg's store, which must be empty (EV_EINVAL).
 * verify true (--verify): into a scratch SQLite store, then prints every
 * difference between its --dump and the live store's and between the ids it
 * would emit and those the service published; *differences gets how many.
 * Prints a summary on stdout. 0, or an error (EV_ERETRY: a record or batch
 * failed transiently, the store holds the rebuild so far). */
int ev_service_rebuild(const ev_service_def *def, const ev_config *cfg, bool verify,
                       size_t *differences, volatile sig_atomic_t *stop, ev_error *err);

/* A service's whole main(): config from env and flags (--brokers, --data-dir,
 * --topic-prefix, --log-level, --http-addr, --dump, --rebuild, --verify,
 * --help), SIGINT/SIGTERM, run. Returns the process exit code (0 ok, 1
 * failure or --verify found differences, 2 usage). */
int ev_service_main(const ev_service_def *def, int argc, char **argv);

/* ---- counters, for health and metrics: ev_runtime_stats, ev_runtime_stats_get
 * (stats.h, included above) ---- */

/* ---- for handlers ---- */

/* Emits an event derived from the event (or timer) being handled: envelope by
 * ev_envelope_derive with index = number of emits so far in this handler call,
 * data validated against its schema, topic and key from the contract, written
 * to the outbox in the current transaction. data is stolen. */
int ev_emit(ev_ctx *ctx, const char *type, json_t *data, ev_error *err);

/* Emits an event of a deferred action: one that waited, in the store, for a
 * second fact and is released by the event being handled. It belongs to the
 * flow of the stored fact it acts for (origin_id, in flow correlationid;
 * NULL or "" = origin_id's own flow), whatever event released it: id =
 * UUIDv5 of (origin_id, type, 0), so the same whichever fact came last (at
 * most one event of a type per origin); causationid = causationid, or when
 * NULL the event being handled. With no origin_id it is ev_emit. data is
 * stolen. */
int ev_emit_deferred(ev_ctx *ctx, const char *type, json_t *data, const char *origin_id,
                     const char *correlationid, const char *causationid, ev_error *err);

/* Arms (or moves) the timer (key, kind) to fire after delay_ms, carrying the
 * current event's correlation and causation. */
int ev_timer_arm(ev_ctx *ctx, const char *key, const char *kind, int64_t delay_ms,
                 ev_error *err);
int ev_timer_disarm(ev_ctx *ctx, const char *key, const char *kind, ev_error *err);

ev_store *ev_ctx_store(ev_ctx *ctx);         /* borrowed */
const ev_config *ev_ctx_config(ev_ctx *ctx); /* borrowed */
const char *ev_ctx_service(ev_ctx *ctx);
int64_t ev_ctx_now_ms(ev_ctx *ctx); /* wall clock of this batch */
/* A cached prepared statement on the service's store (ev_store_stmt). */
ev_stmt *ev_ctx_stmt(ev_ctx *ctx, const char *sql, ev_error *err);

#endif
