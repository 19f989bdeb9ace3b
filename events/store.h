/* SPDX-License-Identifier: MIT */
/* One SQLite database per service: WAL, migrations, and the runtime's tables
 * inbox (dedup), outbox (events to publish), offsets, timers. */
#ifndef EV_STORE_H
#define EV_STORE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "error.h"

typedef struct ev_store ev_store;

/* A service's own schema change; versions start at 1 and increase. */
typedef struct ev_migration {
    int version;
    const char *sql;
} ev_migration;

typedef struct ev_store_opts {
    const char *path;         /* database file; created with its directory */
    const char *synchronous;  /* "FULL" (default when NULL) or "NORMAL" */
    const ev_migration *migrations; /* service tables, may be NULL */
    size_t n_migrations;
    bool readonly;            /* for --dump: no migrations, no writes */
} ev_store_opts;

/* Opens (creating) the database, sets WAL and synchronous, creates the runtime
 * tables and applies pending migrations in one transaction each. */
int ev_store_open(ev_store **out, const ev_store_opts *opts, ev_error *err);
void ev_store_close(ev_store *s);

/* The connection, borrowed, for a service's own queries. */
sqlite3 *ev_store_db(ev_store *s);
/* A prepared statement cached by sql text: reset and bindings cleared, ready
 * to bind. Borrowed; NULL with err set on a prepare error. */
sqlite3_stmt *ev_store_stmt(ev_store *s, const char *sql, ev_error *err);

int ev_store_begin(ev_store *s, ev_error *err); /* BEGIN IMMEDIATE */
int ev_store_commit(ev_store *s, ev_error *err);
int ev_store_rollback(ev_store *s, ev_error *err);
/* One nested savepoint at a time, named "ev". */
int ev_store_savepoint(ev_store *s, ev_error *err);
int ev_store_release(ev_store *s, ev_error *err);
int ev_store_rollback_to(ev_store *s, ev_error *err);

/* inbox: ids of applied events. */
int ev_store_inbox_seen(ev_store *s, const char *event_id, bool *seen, ev_error *err);
int ev_store_inbox_add(ev_store *s, const char *event_id, int64_t now_ms, ev_error *err);
int ev_store_inbox_prune(ev_store *s, int64_t older_than_ms, ev_error *err);

/* outbox: records waiting to be published, in id order. headers_json is a JSON
 * object of string values or NULL. *id_out may be NULL. */
int ev_store_outbox_add(ev_store *s, const char *topic, const char *key,
                        const void *value, size_t len, const char *headers_json,
                        int64_t *id_out, ev_error *err);
/* Called per row with borrowed columns; a nonzero return stops the walk and is
 * returned. Rows with id >= from_id, at most limit. */
typedef int (*ev_outbox_fn)(void *arg, int64_t id, const char *topic, const char *key,
                            const void *value, size_t len, const char *headers_json);
int ev_store_outbox_each(ev_store *s, int64_t from_id, size_t limit, ev_outbox_fn fn,
                         void *arg, ev_error *err);
int ev_store_outbox_delete(ev_store *s, int64_t id, ev_error *err);
int ev_store_outbox_count(ev_store *s, int64_t *n, ev_error *err);

/* offsets: next offset to read per topic partition; *next = -1 when unknown. */
int ev_store_offset_get(ev_store *s, const char *topic, int32_t partition, int64_t *next,
                        ev_error *err);
int ev_store_offset_set(ev_store *s, const char *topic, int32_t partition, int64_t next,
                        ev_error *err);

/* timers: one row per (key, kind); setting again moves its due time. */
typedef struct ev_timer {
    char key[EV_SUBJECT_MAX];
    char kind[32];
    int64_t due_at; /* unix ms */
    char correlationid[EV_ID_MAX];
    char causationid[EV_ID_MAX];
} ev_timer;

int ev_store_timer_set(ev_store *s, const ev_timer *t, ev_error *err);
int ev_store_timer_delete(ev_store *s, const char *key, const char *kind, ev_error *err);
/* Up to cap timers with due_at <= now_ms, earliest first. */
int ev_store_timers_due(ev_store *s, int64_t now_ms, ev_timer *out, size_t cap,
                        size_t *n, ev_error *err);
/* Earliest due time, or INT64_MAX when none. */
int ev_store_timers_next(ev_store *s, int64_t *due_at, ev_error *err);
int ev_store_timers_count(ev_store *s, int64_t *n, ev_error *err);

#endif
