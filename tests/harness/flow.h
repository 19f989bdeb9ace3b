/* SPDX-License-Identifier: MIT */
/* Event-flow test helpers: an isolated run (topic prefix, data dirs, stores) of
 * the five services, one or more instances each, on the real broker; a
 * collector of every record, waits with deadlines, dumps and the invariants. */
#ifndef CHOREO_FLOW_H
#define CHOREO_FLOW_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FLOW_N_SERVICES 5
/* Instances a service may run at once (idx 0..FLOW_MAX_INSTANCES-1). */
#define FLOW_MAX_INSTANCES 4

extern const char *const flow_services[FLOW_N_SERVICES];

/* The services' store in a run. FLOW_STORE_ENV: PostgreSQL when the
 * environment has CHOREO_FLOW_STORE=postgresql, SQLite when it is unset, empty
 * or "sqlite" (any other value fails the run). PostgreSQL needs CHOREO_TEST_PG
 * (a libpq URI, see tests/pg-server), else flow_new fails saying so. */
typedef enum flow_store {
    FLOW_STORE_ENV = 0,
    FLOW_STORE_SQLITE,   /* <data dir>/<service>.db of each instance */
    FLOW_STORE_POSTGRES, /* CHOREO_TEST_PG, a fresh schema per service */
} flow_store;

typedef struct flow_opts {
    int64_t order_timeout_ms;  /* 0 = 20000 */
    int64_t dispatch_delay_ms; /* 0 = 300 */
    const char *extra_env;     /* "NAME=value NAME=value" for every service, or NULL */
    flow_store store;          /* 0 = FLOW_STORE_ENV */
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
 * temporary directory /tmp/choreo-flow-<name>-XXXXXX, every topic of the
 * contract and the DLQs created, the collector reading them all from the
 * beginning. On PostgreSQL every service gets CHOREO_STORE=<CHOREO_TEST_PG> and
 * CHOREO_STORE_SCHEMA=<a fresh schema "flow_<name>_<service>_<pid>_<random>">,
 * shared by its instances; on SQLite CHOREO_STORE is unset for the services.
 * NULL on failure (printed). */
flow *flow_new(const char *name, const flow_opts *opts);
/* Stops every instance of every service and the collector; when the run
 * passed, removes the data dirs and drops the PostgreSQL schemas, else keeps
 * them and prints their names with the tail of every instance's log. Returns
 * the process exit code: 0 when no check failed. */
int flow_end(flow *f);
/* The run's topic prefix (borrowed). */
const char *flow_prefix(const flow *f);
/* True when the run's services store on PostgreSQL. */
bool flow_uses_pg(const flow *f);
/* The service's PostgreSQL schema (borrowed), NULL on SQLite or for an
 * unknown service. */
const char *flow_schema(flow *f, const char *service);

/* ---- checks ---- */

/* Records a failure (printed with file:line) when !cond; returns cond. */
bool flow_check_at(flow *f, bool cond, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
#define FLOW_CHECK(f, cond, ...)                                                         \
    flow_check_at((f), (cond), __FILE__, __LINE__, __VA_ARGS__)
bool flow_failed(const flow *f);
void flow_note(flow *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- services ---- */

/* Instances: idx 0 is "the service" of the calls without idx. Every instance
 * of a service runs in the same consumer group with the same store settings
 * (on PostgreSQL the same schema), its HTTP off, its own data dir
 * (flow_instance_dir) and its own log, <run dir>/<service>.<idx>.log. On
 * SQLite each instance has a store of its own in its data dir, so a second
 * instance shares no state with the first: allowed (to show that it is
 * wrong), with a note printed. An instance that exits on its own is a failed
 * check once noticed (flow_running, flow_instances_running, waits). */

/* Starts (or restarts) instance 0 of one service, or of all five with NULL;
 * 0 when started or already running, -1 on an unknown service or spawn error. */
int flow_start(flow *f, const char *service);
/* Starts instance idx of service (0 when it already runs); -1 on bad args. */
int flow_start_instance(flow *f, const char *service, int idx);
/* Stops EVERY running instance of the service, each as flow_stop_instance:
 * "the service is down" (a kill -9 of a single-instance service, as the
 * existing tests do, is the same as before instances existed). flow_start
 * afterwards restarts instance 0 only. 0, or -1 on an unknown service. */
int flow_stop(flow *f, const char *service, int sig);
/* sig 0: SIGTERM, wait (20 s, then SIGKILL) and check it exited with status 0;
 * else send sig (e.g. SIGKILL), wait and reap. 0 (also when it was not
 * running), -1 on bad args. */
int flow_stop_instance(flow *f, const char *service, int idx, int sig);
/* Instance 0 of the service is running. */
bool flow_running(flow *f, const char *service);
/* How many instances of the service are running. */
int flow_instances_running(flow *f, const char *service);
/* The pid of instance idx, 0 when it is not running, -1 on bad args. */
pid_t flow_instance_pid(flow *f, const char *service, int idx);
/* Instance 0's data dir (borrowed): the maildir of notifications lives there. */
const char *flow_data_dir(flow *f, const char *service);
/* Instance idx's data dir (borrowed): "<run dir>/<service>" for 0, else
 * "<run dir>/<service>.<idx>"; NULL on bad args. */
const char *flow_instance_dir(flow *f, const char *service, int idx);

/* The service's --dump (with instance 0's environment, so from the shared
 * schema on PostgreSQL) as JSON (owned by caller), NULL on failure. */
json_t *flow_dump(flow *f, const char *service);
/* Runs a service's binary to its end with instance 0's environment plus
 * extra_env ("NAME=value ...", may be NULL; later words win) and the
 * arguments args (NULL-terminated, at most 14; e.g. {"--verify", NULL}):
 * bin_rel names another binary of the build dir (a fixture,
 * "tests/integration/svc_x", or "bin/choreo" with the run's prefix), NULL =
 * the service's own. stdout into *out (malloc'd, may be NULL), stderr
 * appended to <run dir>/<service>.run.log. The exit status as harness_run
 * (-1 on a timeout or spawn failure). */
int flow_run_service(flow *f, const char *service, const char *bin_rel,
                     const char *extra_env, const char *const *args, int timeout_ms,
                     char **out);
/* True when the service's store has consumed every record now on its topics
 * and its outbox is empty. On PostgreSQL that is the schema's offsets and
 * outbox tables, shared by all its instances; on SQLite instance 0's file. */
bool flow_caught_up(flow *f, const char *service);
/* Waits until every service with a running instance is caught up and no new
 * record appeared for a moment (the system is quiet). */
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
/* A shop: customers c0..c<n_customers-1> (c<i>@example.com, credit limits[i]) and
 * SKUs sku-0..sku-<n_skus-1> (stock[i] units each), then waits (FLOW_CHECK) until
 * payments knows the last customer, inventory has the last SKU and, with at_rest,
 * until nothing flows. */
void flow_setup_shop(flow *f, int n_customers, const int64_t *limits, int n_skus,
                     const int64_t *stock, bool at_rest, int64_t timeout_ms);

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

/* The due time (unix ms) of a service's timer, -1 when it has none (read from
 * its store as flow_caught_up does). */
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
