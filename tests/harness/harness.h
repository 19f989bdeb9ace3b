/* SPDX-License-Identifier: MIT */
/* Shared helpers of the integration and flow tests: isolated topic prefixes and
 * data dirs, child processes, producing to and reading from the real broker. */
#ifndef HARNESS_H
#define HARNESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bus.h"

/* ---- places ---- */

/* CHOREO_BROKERS, or 127.0.0.1:9092. */
const char *harness_brokers(void);
/* CHOREO_BUILD (set by tests/run-all), or "build". */
const char *harness_build_dir(void);
/* "<build dir>/<rel>" into out (e.g. "bin/orders"); returns out. */
const char *harness_build_path(char *out, size_t cap, const char *rel);
/* A path of the source tree (e.g. "tests/fixtures/runtime", "schemas"): tried
 * relative to the working directory, then to the build dir's parents. */
const char *harness_source_path(char *out, size_t cap, const char *rel);

/* A fresh topic prefix "t-<pid>-<random>-". */
void harness_prefix(char *out, size_t cap);
/* "<prefix><name>" into out; returns out. */
const char *harness_topic(char *out, size_t cap, const char *prefix, const char *name);
/* A fresh directory (mkdtemp under $TMPDIR or /tmp); 0 or -1. */
int harness_tmpdir(char *out, size_t cap);
/* Removes dir and everything under it; 0 or -1. */
int harness_rmtree(const char *dir);

/* ---- processes ---- */

/* Starts prog (argv NULL-terminated, argv[0] included) with the current
 * environment changed by env (NULL-terminated, may be NULL): "K=V" sets,
 * "K" alone unsets. stdout and stderr are appended to log_path (NULL =
 * inherited). The child gets SIGTERM when the spawning thread dies (a crashed
 * test leaves nothing behind). Returns the pid, or -1. */
pid_t harness_spawn(const char *prog, char *const argv[], char *const env[],
                    const char *log_path);
/* SIGTERM, then waits up to timeout_ms: the exit status (0..255), -2 when it
 * died of a signal, -1 when it had to be killed -9 after the deadline. */
int harness_stop(pid_t pid, int timeout_ms);
/* As harness_stop with sig (0 = SIGTERM) instead of SIGTERM: with SIGKILL,
 * -2 once it is reaped. */
int harness_stop_sig(pid_t pid, int sig, int timeout_ms);
/* SIGKILL and reap. */
void harness_kill9(pid_t pid);
/* True (and *status as for harness_stop) once pid has exited; reaps it. */
bool harness_exited(pid_t pid, int *status);
/* Runs prog to completion within timeout_ms, stdout captured into *out
 * (malloc'd, NUL-terminated; may be NULL), stderr to log_path (NULL =
 * inherited). Returns the exit status, -2 on a signal, -1 on timeout/failure. */
int harness_run(const char *prog, char *const argv[], char *const env[], int timeout_ms,
                const char *log_path, char **out);
/* The last max bytes of a log file on stderr (for failure messages). */
void harness_dump_log(const char *path, size_t max);

/* ---- producing ---- */

typedef struct harness_producer harness_producer;

/* An idempotent producer on brokers (NULL = harness_brokers()); NULL on error. */
harness_producer *harness_producer_new(const char *brokers);
/* Queues one record (partition by key); 0 or -1. */
int harness_produce(harness_producer *p, const char *topic, const char *key,
                    const void *value, size_t len, const ev_header *headers,
                    size_t n_headers);
/* Waits until all are delivered: 0 when every record so far was delivered,
 * -1 on a timeout or any delivery failure. */
int harness_producer_flush(harness_producer *p, int timeout_ms);
void harness_producer_free(harness_producer *p);
/* Its librdkafka handle (borrowed), for metadata and watermark queries: a
 * consumer's would wait behind its fetches. */
rd_kafka_t *harness_producer_handle(harness_producer *p);

/* A CloudEvents envelope as JSON text (malloc'd): id NULL = a new UUIDv4,
 * subject may be NULL; data is stolen. NULL on error. */
char *harness_envelope(const char *type, const char *id, const char *subject,
                       json_t *data);
/* One record, delivered before returning (10 s deadline); 0 or -1. */
int harness_send_raw(const char *topic, const char *key, const void *value, size_t len,
                     const ev_header *headers, size_t n_headers);
/* One event (envelope as above, header content-type cloudevents), delivered
 * before returning; 0 or -1. data is stolen. */
int harness_send_event(const char *topic, const char *key, const char *type,
                       const char *id, json_t *data);

/* Creates topic with partitions (fine when it exists); 0 or -1. */
int harness_create_topic(const char *topic, int partitions, int timeout_ms);
/* The same for n topics (full names) in one request; 0 when all exist. */
int harness_create_topics(const char *const *topics, size_t n, int partitions,
                          int timeout_ms);

/* ---- reading ---- */

typedef struct harness_record {
    char *topic;
    int32_t partition;
    int64_t offset;
    char *key;   /* NULL when none */
    char *value; /* NUL-terminated copy; NULL for a null value */
    size_t len;
    json_t *headers; /* object: name -> string (last one wins) */
    json_t *event;   /* the value parsed as JSON; NULL when it is not JSON */
} harness_record;

typedef struct harness_records {
    harness_record *v;
    size_t n, cap;
} harness_records;

void harness_records_free(harness_records *r);

typedef bool (*harness_pred)(const harness_records *got, void *arg);

/* Reads topic (full name) from the beginning of every partition into got
 * until pred(got, arg) holds (0) or timeout_ms passes (-1); waits for the
 * topic to exist. pred NULL = read until timeout. got is reset first. */
int harness_read(const char *topic, harness_pred pred, void *arg, int timeout_ms,
                 harness_records *got);
/* A consumer of a fresh group on harness_brokers() (no auto commit, the
 * CHOREO_KAFKA_* settings applied), for harness_assign_beginning and
 * rd_kafka_consumer_poll; NULL on error. Owned by the caller:
 * rd_kafka_consumer_close and rd_kafka_destroy. */
rd_kafka_t *harness_consumer_new(void);
/* Assigns partitions 0..partitions-1 of each of the n topics (full names) to
 * rk from the beginning; 0 or -1. */
int harness_assign_beginning(rd_kafka_t *rk, const char *const *topics, size_t n,
                             int partitions);
/* Until topic holds at least n records of type (NULL = any record). */
int harness_wait_events(const char *topic, const char *type, size_t n, int timeout_ms,
                        harness_records *got);

/* Helpers on collected records. */
size_t harness_count_type(const harness_records *r, const char *type);
const char *harness_header(const harness_record *r, const char *name);
/* A string attribute of the envelope ("id", "type", "causationid", ...). */
const char *harness_event_str(const harness_record *r, const char *attr);
json_t *harness_event_data(const harness_record *r); /* borrowed */
/* The first record whose envelope has attr == value; NULL when none. */
const harness_record *harness_find(const harness_records *r, const char *attr,
                                   const char *value);

/* ---- a broker of one's own (for broker restarts) ---- */

/* broker/choreo-broker start|stop with CHOREO_BROKERS unset: a single node on
 * 127.0.0.1:port (its controller on port+1), state in data_dir; 0 or -1. */
int harness_broker_start(int port, const char *data_dir, const char *log_path);
int harness_broker_stop(int port, const char *data_dir, const char *log_path);
/* A TCP port that is free now on 127.0.0.1 with port+1 free too; -1 if none. */
int harness_free_port_pair(void);

/* ---- a PostgreSQL of the tests ---- */

/* CHOREO_TEST_PG (a libpq URI; tests/run-all and tests/run-unit start a private
 * server and set it), or NULL when unset or empty: PostgreSQL cases then skip.
 * Borrowed (the environment's). */
const char *harness_pg_uri(void);
/* Runs sql (one or more statements) on that server over a connection of its
 * own; 0, or -1 with the error on stderr (also when there is no server). */
int harness_pg_exec(const char *sql);
/* A fresh schema name "<base>_<pid>_<random>" into out: base lowercased, other
 * characters than [a-z0-9_] made '_', cut so the name fits in 63 bytes. Drops
 * a schema of that name if one exists (CASCADE) but does not create it: the
 * service creates its own (pass the name as CHOREO_STORE_SCHEMA). 0, or -1 when
 * base is empty or starts with a digit, cap is too small or the drop failed. */
int harness_pg_fresh_schema(char *out, size_t cap, const char *base);
/* The first column of the first row of sql's result as an integer (for counts);
 * INT64_MIN, with the error on stderr, on any failure, no row or a NULL. */
int64_t harness_pg_query_int(const char *sql);

/* Wall-clock deadline helpers (monotonic ms). */
int64_t harness_now_ms(void);
void harness_sleep_ms(long ms);

#endif
