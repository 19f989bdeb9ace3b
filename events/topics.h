/* SPDX-License-Identifier: MIT */
/* Topics made sure to exist before a program subscribes or publishes: created
 * through the Admin API when missing, waited for when it may not create them. */
#ifndef EV_TOPICS_H
#define EV_TOPICS_H

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* The replication factor a topic gets when none is asked for: min(3, brokers). */
#define EV_TOPICS_MAX_AUTO_RF 3

/* How many of topics (full names, NULL-terminated) are missing on rk's cluster
 * or not ready yet (a partition without a leader), into *n_missing; their names,
 * comma-separated, into list (truncated with "..." to cap; may be NULL). The
 * cluster's broker count into *n_brokers (may be NULL).
 * Errors: EV_EBUS when the metadata request fails (broker down, auth). */
int ev_topics_missing(rd_kafka_t *rk, const char *const *topics, int timeout_ms,
                      size_t *n_missing, char *list, size_t cap, int *n_brokers,
                      ev_error *err);

/* Creates the topics among topics that do not exist, with partitions and
 * replication (<= 0: min(3, brokers)). A topic that exists, or that another
 * client creates meanwhile, is fine. *created (may be NULL) gets how many this
 * call made. Errors: EV_EINVAL (partitions < 1), EV_EBUS naming the first topic
 * the broker refused and why (TOPIC_AUTHORIZATION_FAILED, POLICY_VIOLATION...),
 * EV_ETIMEOUT, EV_ENOMEM. */
int ev_topics_create(rd_kafka_t *rk, const char *const *topics, int partitions,
                     int replication, int timeout_ms, int *created, ev_error *err);

/* What a service does before it subscribes: creates the missing topics; when
 * it may not (any refusal), logs which are missing and checks again every
 * poll_ms (logging every 30 s) until all exist with a leader per partition.
 * Returns 0 then, or EV_ETIMEOUT when *stop became nonzero first (stop may be
 * NULL) or wait_ms passed (wait_ms < 0: no limit). A broker that is down is
 * waited for the same way. rk is any client of the cluster (borrowed). */
typedef struct ev_topics_ensure_opts {
    int partitions;  /* >= 1 */
    int replication; /* <= 0: min(3, brokers) */
    int poll_ms;     /* 0 = 1000 */
    int64_t wait_ms; /* < 0: until stop */
    volatile sig_atomic_t *stop;
} ev_topics_ensure_opts;

int ev_topics_ensure(rd_kafka_t *rk, const char *const *topics,
                     const ev_topics_ensure_opts *o, ev_error *err);

#endif
