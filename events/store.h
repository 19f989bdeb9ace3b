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
    const char *path;               /* database file; created with its directory */
    const char *synchronous;        /* "FULL" (default when NULL) or "NORMAL" */
    const ev_migration *migrations; /* service tables, may be NULL */
    size_t n_migrations;
    bool readonly;       /* for --dump: no migrations, no writes */
    int busy_timeout_ms; /* wait on a locked database; 0 = 5000, <0 = none */
} ev_store_opts;

/* Opens (creating) the database, sets WAL and synchronous, creates the runtime
 * tables and applies pending migrations in one transaction each.
 * Migrations must have strictly increasing versions >= 1 (else EV_EINVAL); the
 * applied ones are recorded in table ev_migrations, the runtime tables' own
 * version in PRAGMA user_version. A failing migration returns EV_ESTORE with
 * sqlite's message and leaves the database at the previous version; a database
 * at a migration version newer than the last one given is EV_ESTORE too.
 * Readonly opens an existing file with SQLITE_OPEN_READONLY (EV_ENOTFOUND when
 * it does not exist), sets query_only and creates or migrates nothing.
 * Errors: EV_EINVAL (opts), EV_EIO (creating the directory), EV_ESTORE (sqlite),
 * EV_ERETRY (database locked past the busy timeout), EV_ENOMEM.
 * On success *out is owned by the caller: release with ev_store_close.
 * A store is used by one thread at a time (its statement cache is not locked). */
int ev_store_open(ev_store **out, const ev_store_opts *opts, ev_error *err);
/* Finalizes the cached statements and closes the connection; an open
 * transaction is rolled back. NULL is a no-op. */
void ev_store_close(ev_store *s);

/* The connection, borrowed, for a service's own queries. */
sqlite3 *ev_store_db(ev_store *s);
/* A prepared statement cached by sql text: reset and bindings cleared, ready
 * to bind. Borrowed; NULL with err set on a prepare error. The cache is keyed
 * by the text's content (sql itself is copied, not kept); the statement lives
 * until ev_store_close. sql must hold exactly one statement (else EV_EINVAL).
 * Fetching a statement resets it, so do not fetch the same text again while
 * still stepping through it. */
sqlite3_stmt *ev_store_stmt(ev_store *s, const char *sql, ev_error *err);
/* The cached statement for sql with its parameters bound in order from fmt,
 * one letter per parameter: 's' text (const char *, copied), 'i' int64_t.
 * Borrowed; NULL with err set when preparing or binding fails. */
sqlite3_stmt *ev_store_bind(ev_store *s, ev_error *err, const char *sql, const char *fmt,
                            ...);
/* Steps st to its end and resets it. st may be the NULL of a failed
 * ev_store_bind: then err already says why and its code is returned. */
int ev_store_exec(sqlite3_stmt *st, ev_error *err);
/* Number of statements in the cache (for tests and metrics). */
size_t ev_store_stmt_count(const ev_store *s);

/* Errors of all functions below: EV_ESTORE with sqlite's message (and
 * "disk_full", "io_error", "readonly", "constraint"... in parentheses),
 * EV_ERETRY when the database stayed locked (SQLITE_BUSY), EV_EINVAL on a NULL
 * or oversized argument, EV_ENOMEM. After a failed statement inside a
 * transaction, roll back: on a full disk or an I/O error SQLite may already
 * have rolled back the whole transaction itself. */

int ev_store_begin(ev_store *s, ev_error *err); /* BEGIN IMMEDIATE */
int ev_store_commit(ev_store *s, ev_error *err);
/* Rolls back the open transaction; 0 when none is open (safe in cleanup). */
int ev_store_rollback(ev_store *s, ev_error *err);
/* True while a transaction is open. */
bool ev_store_in_tx(ev_store *s);
/* One nested savepoint at a time, named "ev" (outside a transaction it starts
 * one). release keeps the work since the savepoint; rollback_to undoes it and
 * ends the savepoint too (ROLLBACK TO ev; RELEASE ev), so every savepoint ends
 * in exactly one of the two. */
int ev_store_savepoint(ev_store *s, ev_error *err);
int ev_store_release(ev_store *s, ev_error *err);
int ev_store_rollback_to(ev_store *s, ev_error *err);

/* inbox: ids of applied events. Adding an id that is already there is a no-op
 * returning 0 (idempotent; the first seen_at stays), so a replayed batch never
 * fails on its own dedup rows. event_id must be non-empty. */
int ev_store_inbox_seen(ev_store *s, const char *event_id, bool *seen, ev_error *err);
int ev_store_inbox_add(ev_store *s, const char *event_id, int64_t now_ms, ev_error *err);
/* Deletes rows with seen_at < older_than_ms; *removed (may be NULL) gets how many. */
int ev_store_inbox_prune(ev_store *s, int64_t older_than_ms, ev_error *err);
int ev_store_inbox_prune_n(ev_store *s, int64_t older_than_ms, int64_t *removed,
                           ev_error *err);
int ev_store_inbox_count(ev_store *s, int64_t *n, ev_error *err);

/* outbox: records waiting to be published, in id order. headers_json is a JSON
 * object of string values or NULL. *id_out may be NULL. topic is required;
 * key may be NULL (no key); value may be NULL when len is 0. Ids only grow
 * (AUTOINCREMENT): a deleted id is never reused. */
int ev_store_outbox_add(ev_store *s, const char *topic, const char *key,
                        const void *value, size_t len, const char *headers_json,
                        int64_t *id_out, ev_error *err);
/* Called per row with borrowed columns, valid only during the call (value is
 * never NULL, key and headers_json may be); a nonzero return stops the walk and
 * is returned. Rows with id >= from_id in id order, at most limit (0 = all).
 * fn may call other store functions (ev_store_outbox_delete included) but not
 * ev_store_outbox_each. */
typedef int (*ev_outbox_fn)(void *arg, int64_t id, const char *topic, const char *key,
                            const void *value, size_t len, const char *headers_json);
int ev_store_outbox_each(ev_store *s, int64_t from_id, size_t limit, ev_outbox_fn fn,
                         void *arg, ev_error *err);
/* Deleting an id that is not there returns 0 (a repeated delivery report). */
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

/* key and kind must be non-empty and NUL-terminated within their arrays. */
int ev_store_timer_set(ev_store *s, const ev_timer *t, ev_error *err);
/* Deleting a timer that is not there returns 0. */
int ev_store_timer_delete(ev_store *s, const char *key, const char *kind, ev_error *err);
/* The timer (key, kind) into *out when *found; out may be NULL. */
int ev_store_timer_get(ev_store *s, const char *key, const char *kind, ev_timer *out,
                       bool *found, ev_error *err);
/* Up to cap timers with due_at <= now_ms, earliest first. */
int ev_store_timers_due(ev_store *s, int64_t now_ms, ev_timer *out, size_t cap, size_t *n,
                        ev_error *err);
/* Earliest due time, or INT64_MAX when none. */
int ev_store_timers_next(ev_store *s, int64_t *due_at, ev_error *err);
int ev_store_timers_count(ev_store *s, int64_t *n, ev_error *err);

#endif
