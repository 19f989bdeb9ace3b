/* SPDX-License-Identifier: MIT */
/* The service loop's published totals: written by the loop about once a second,
 * read by any thread (metrics, health) without depending on the runtime. */
#ifndef EV_STATS_H
#define EV_STATS_H

#include <stdint.h>

/* Totals since the process started, published by the loop about once a second
 * and after each stop (the loop runs in one thread; readers may be others). */
typedef struct ev_runtime_stats {
    uint64_t consumed;      /* records read from subscribed topics (not re-reads) */
    uint64_t applied;       /* handled and committed */
    uint64_t produced;      /* outbox records delivered (events and dead letters) */
    uint64_t emitted;       /* events written to the outbox by handlers */
    uint64_t deduped;       /* skipped: id already in the inbox */
    uint64_t dead_lettered; /* written to dlq.<service> */
    uint64_t skipped;       /* unknown type on a subscribed topic */
    uint64_t retried;       /* EV_ERETRY from a handler or timer */
    uint64_t timers_fired;
    uint64_t batches; /* committed transactions */
    uint64_t delivery_errors;
    int64_t last_commit_ms; /* wall clock of the last commit; 0 = none yet */
    int64_t last_batch_us;  /* duration of the last batch, begin..commit */
    int64_t outbox_backlog; /* outbox rows not yet deleted (delivered or not) */
    int64_t timers_pending; /* armed timers */
    int assigned;           /* partitions assigned */
    int running;            /* 1 from start until the loop has stopped */
} ev_runtime_stats;

/* A consistent copy of the latest counters; thread-safe. */
void ev_runtime_stats_get(ev_runtime_stats *out);

/* The loop's side: makes *st the copy readers get; thread-safe. */
void ev_runtime_stats_publish(const ev_runtime_stats *st);

#endif
