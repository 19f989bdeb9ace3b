/* SPDX-License-Identifier: MIT */
/* Event-flow test helpers: an isolated run (topic prefix, data dirs) of the
 * five service processes on the real broker, a collector of every record,
 * waits with deadlines, service dumps and the saga's invariants. */
#ifndef CHOREO_FLOW_H
#define CHOREO_FLOW_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FLOW_N_SERVICES 5

extern const char *const flow_services[FLOW_N_SERVICES];

typedef struct flow_opts {
    int64_t order_timeout_ms;  /* 0 = 20000 */
    int64_t dispatch_delay_ms; /* 0 = 300 */
    const char *extra_env;     /* "NAME=value NAME=value" for every service, or NULL */
} flow_opts;

/* One record seen on a topic of the run. type is "" when the value is not an
 * envelope (poison, DLQ copies of poison). */
typedef struct flow_rec {
    char topic[160]; /* without the prefix */
    int32_t partition;
    int64_t offset;
    char key[160];
    char id[64];
    char type[64];
    char order_id[160]; /* data.order_id or "" */
    char correlationid[64];
    char causationid[64];
    json_t *data; /* owned by the collector */
    char *value;  /* raw bytes, NUL-terminated copy */
    size_t len;
} flow_rec;

typedef struct flow flow;

/* A new run named name: prefix "t-<name>-<random>-", data dirs under a fresh
 * temporary directory, every topic of the contract and the DLQs created, the
 * collector reading them all from the beginning. NULL on failure (printed). */
flow *flow_new(const char *name, const flow_opts *opts);
/* Stops every service and the collector, removes the data dirs when the run
 * passed; returns the process exit code: 0 when no check failed. */
int flow_end(flow *f);

/* ---- checks ---- */

/* Records a failure (printed with file:line) when !cond; returns cond. */
bool flow_check_at(flow *f, bool cond, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
#define FLOW_CHECK(f, cond, ...)                                                         \
    flow_check_at((f), (cond), __FILE__, __LINE__, __VA_ARGS__)
bool flow_failed(const flow *f);
void flow_note(flow *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- services ---- */

/* Starts (or restarts) one service, or all five with NULL. */
int flow_start(flow *f, const char *service);
/* SIGTERM and wait (sig 0) or kill with sig (e.g. SIGKILL) and reap. */
int flow_stop(flow *f, const char *service, int sig);
bool flow_running(flow *f, const char *service);
const char *flow_data_dir(flow *f, const char *service);

/* The service's --dump as JSON (owned by caller), NULL on failure. */
json_t *flow_dump(flow *f, const char *service);
/* True when the service's DB has consumed every record now on its topics. */
bool flow_caught_up(flow *f, const char *service);
/* Waits until every running service is caught up and no new record appeared
 * for a moment (the system is quiet). */
bool flow_wait_quiet(flow *f, int64_t timeout_ms);

/* ---- producing ---- */

/* A CLI-style event: fresh envelope, topic and key from the contract. The
 * produced envelope is returned in id_out (may be NULL). data is stolen. */
int flow_produce(flow *f, const char *type, json_t *data, char *id_out);
/* Exact bytes to topic (unprefixed name) with key. */
int flow_produce_raw(flow *f, const char *topic, const char *key, const void *value,
                     size_t len);

int flow_register(flow *f, const char *customer_id, const char *email, int64_t limit);
int flow_add_stock(flow *f, const char *sku, int64_t qty);
/* One line order: total = qty * unit_price. */
int flow_place(flow *f, const char *order_id, const char *customer_id, const char *sku,
               int64_t qty, int64_t unit_price);
int flow_cancel(flow *f, const char *order_id);
/* Waits until payments knows the customers and inventory has added >= qty of
 * the sku (so the saga does not race its own setup). */
bool flow_wait_customer(flow *f, const char *customer_id, int64_t timeout_ms);
bool flow_wait_stock(flow *f, const char *sku, int64_t added, int64_t timeout_ms);

/* ---- records ---- */

/* Waits for a record of type (about order_id when not NULL); returns a copy
 * in out (may be NULL; out->data and out->value are then NULL). */
bool flow_wait_type(flow *f, const char *order_id, const char *type, int64_t timeout_ms,
                    flow_rec *out);
/* Distinct event ids of type about order_id (order_id NULL = any). */
size_t flow_count(flow *f, const char *order_id, const char *type);
/* Records on topic (unprefixed), envelopes or not. */
size_t flow_count_topic(flow *f, const char *topic);
/* The terminal outcome of an order: "completed", "rejected", "cancelled",
 * or NULL when none came before the deadline. */
const char *flow_wait_outcome(flow *f, const char *order_id, int64_t timeout_ms);
/* Calls fn for every record (under the collector's lock). */
void flow_each(flow *f, void (*fn)(void *arg, const flow_rec *r), void *arg);

/* The due time (unix ms) of a service's timer, -1 when it has none. */
int64_t flow_timer_due(flow *f, const char *service, const char *key, const char *kind);
/* Produces again the exact bytes of every record seen so far on the
 * non-DLQ topics (same key, same id): a duplicate delivery of everything.
 * Returns how many were sent, -1 on a produce failure. */
long flow_replay_all(flow *f);
/* Regular files in dir (e.g. a maildir's new/), -1 when unreadable. */
long flow_count_files(const char *dir);

/* ---- invariants ---- */

/* From the events and every service's dump: each order of ids ends in exactly
 * one of completed, rejected, cancelled; stock added = available + reserved +
 * shipped with none negative and nothing reserved left; outstanding =
 * authorized not refunded, within the credit limit; cancelled and rejected
 * orders carry no net charge. */
void flow_check_invariants(flow *f, const char *const *order_ids, size_t n);

#endif
