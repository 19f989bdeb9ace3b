/* SPDX-License-Identifier: MIT */
/* A service's own store, SQLite (a file in its data dir) or PostgreSQL (a
 * schema of its own, shared by its instances): the runtime's tables inbox
 * (dedup), outbox (events to publish), offsets and timers, the service's
 * migrations, and statements by SQL text with typed binds and columns. */
#ifndef EV_STORE_H
#define EV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "error.h"

typedef struct ev_store ev_store;
typedef struct ev_stmt ev_stmt;

typedef enum { EV_STORE_SQLITE, EV_STORE_POSTGRES } ev_store_kind;

/* A service's own schema change; versions start at 1 and increase. sql runs on
 * both backends (several statements allowed); pg_sql, when set, replaces it on
 * PostgreSQL where the dialects truly differ. Use BIGINT for integers. */
typedef struct ev_migration {
    int version;
    const char *sql;
    const char *pg_sql;
} ev_migration;

typedef struct ev_store_opts {
    const char *path;        /* SQLite: database file, created with its directory */
    const char *url;         /* "postgresql://..." (libpq URI) selects PostgreSQL;
                                NULL, "" or "sqlite" = SQLite at path */
    const char *schema;      /* PostgreSQL: this service's schema (created) */
    const char *owner;       /* PostgreSQL: this instance, marks its outbox rows;
                                NULL = "" (SQLite: always "", one writer) */
    const char *synchronous; /* SQLite: "FULL" (default when NULL) or "NORMAL" */
    const ev_migration *migrations; /* service tables, may be NULL */
    size_t n_migrations;
    bool readonly;       /* for --dump: no migrations, no writes */
    int busy_timeout_ms; /* SQLite: wait on a locked database; 0 = 5000, <0 = none */
} ev_store_opts;

/* Opens the store, creates the runtime tables and applies pending migrations
 * in one transaction each (on PostgreSQL under an advisory lock, so instances
 * starting together apply each once). Migrations must have strictly
 * increasing versions >= 1 (else EV_EINVAL); the applied ones are recorded in
 * table ev_migrations. A failing migration returns EV_ESTORE with the
 * database's message and leaves the store at the previous version; a store at
 * a migration version newer than the last one given is EV_ESTORE too.
 * Readonly: SQLite opens an existing file read-only (EV_ENOTFOUND when it does
 * not exist); PostgreSQL sets the session read-only (EV_ENOTFOUND when the
 * schema does not exist); neither creates nor migrates anything.
 * Errors: EV_EINVAL (opts), EV_EIO (creating the directory), EV_ESTORE,
 * EV_ERETRY (locked past the busy timeout), EV_ENOMEM. Messages never carry
 * the URL's password. On success *out is owned by the caller: release with
 * ev_store_close. A store is used by one thread at a time. */
int ev_store_open(ev_store **out, const ev_store_opts *opts, ev_error *err);
/* Releases the statements and closes the connection; an open transaction is
 * rolled back. NULL is a no-op. */
void ev_store_close(ev_store *s);
ev_store_kind ev_store_backend(const ev_store *s);
/* Process-wide, once, before any store is opened in a process whose stores
 * are each used by one thread: SQLite's multi-thread mode and no allocation
 * statistics. Later calls are no-ops. */
void ev_store_tune_process(void);

/* ---- statements ---- */

/* A prepared statement cached by SQL text, reset and unbound, ready to bind.
 * Parameters are written ?1, ?2... (or ?, numbered in order) on both backends;
 * PostgreSQL gets $1, $2... Borrowed; NULL with err set on a prepare error.
 * sql must hold exactly one statement (else EV_EINVAL). Fetching a statement
 * resets it, so do not fetch the same text again while stepping through it. */
ev_stmt *ev_store_stmt(ev_store *s, const char *sql, ev_error *err);
/* Binds parameter i (from 1); values are copied. 0 or EV_EINVAL/EV_ENOMEM. */
int ev_stmt_bind_text(ev_stmt *st, int i, const char *v); /* NULL binds NULL */
int ev_stmt_bind_int(ev_stmt *st, int i, int64_t v);
int ev_stmt_bind_blob(ev_stmt *st, int i, const void *v, size_t len);
int ev_stmt_bind_null(ev_stmt *st, int i);
/* Runs or advances the statement: 1 = a row is ready to read, 0 = done (the
 * statement is reset), negative = error (reset too; see the error codes below). */
int ev_stmt_step(ev_stmt *st, ev_error *err);
/* Columns of the current row, from 0. Text and blobs are borrowed until the
 * next step or reset. A NULL reads as 0, NULL (text) or len 0. */
bool ev_stmt_is_null(ev_stmt *st, int col);
int64_t ev_stmt_int(ev_stmt *st, int col);
const char *ev_stmt_text(ev_stmt *st, int col);
/* Column col's text copied into buf of cap bytes ("" for NULL, cut to fit). */
void ev_stmt_text_copy(ev_stmt *st, int col, char *buf, size_t cap);
const void *ev_stmt_blob(ev_stmt *st, int col, size_t *len);
/* Rows changed by the last INSERT/UPDATE/DELETE run through st. */
int64_t ev_stmt_changes(ev_stmt *st);
/* Ends a statement before its last row. */
void ev_stmt_reset(ev_stmt *st);

/* The cached statement for sql with its parameters bound in order from fmt,
 * one letter per parameter: 's' text (const char *, copied; NULL binds NULL),
 * 'i' int64_t. Borrowed; NULL with err set when preparing or binding fails. */
ev_stmt *ev_store_bind(ev_store *s, ev_error *err, const char *sql, const char *fmt, ...);
/* Steps st to its end and resets it. st may be the NULL of a failed
 * ev_store_bind: then err already says why and its code is returned. */
int ev_store_exec(ev_stmt *st, ev_error *err);
/* The first column of the first row into *v (found true), or dflt (found
 * false, may be NULL) when there is no row or it is NULL; resets st. st may be
 * a failed ev_store_bind's NULL, as for ev_store_exec. */
int ev_store_query_int(ev_stmt *st, int64_t dflt, int64_t *v, bool *found, ev_error *err);
/* The first column of the first row as text into buf ("" when no row). */
int ev_store_query_text(ev_stmt *st, char *buf, size_t cap, bool *found, ev_error *err);
/* Number of statements in the cache (for tests and metrics). */
size_t ev_store_stmt_count(const ev_store *s);

/* Errors of all functions below: EV_ESTORE with the database's message (and
 * "disk_full", "io_error", "readonly", "constraint"... in parentheses),
 * EV_ERETRY when the store stayed locked (SQLite) or the transaction lost a
 * race with another instance (PostgreSQL: serialization failure, deadlock, a
 * unique key another transaction took): then ev_store_conflict is true and the
 * whole transaction must be rolled back and run again. EV_EINVAL on a NULL or
 * oversized argument, EV_ENOMEM. After a failed statement inside a
 * transaction, roll back: on a full disk or an I/O error SQLite may already
 * have rolled back the whole transaction itself, and PostgreSQL accepts
 * nothing more in it but a rollback (or a rollback to the savepoint). */

/* SQLite: BEGIN IMMEDIATE. PostgreSQL: REPEATABLE READ, so that a decision
 * read from a row another instance changes meanwhile fails with a conflict
 * instead of being applied on stale data (each decision must write the row it
 * read: a conditional UPDATE, or an upsert). */
int ev_store_begin(ev_store *s, ev_error *err);
/* The same transaction, pipelined where the backend can (PostgreSQL; on
 * SQLite it is ev_store_begin): a statement that returns no rows is sent
 * without waiting for its answer, so a batch costs a round trip per read, not
 * per statement. Its error (a conflict included) comes later: from the next
 * statement that returns rows, from ev_store_flush, or from the commit; and
 * ev_stmt_changes of such a statement waits for its answer first. So a caller
 * that must know which statement failed (one record of a batch) uses a plain
 * transaction. No savepoints in it. */
int ev_store_begin_pipelined(ev_store *s, ev_error *err);
/* Waits for every answer of a pipelined transaction: 0, or the first error of
 * a statement sent earlier (0 at once outside one). */
int ev_store_flush(ev_store *s, ev_error *err);
/* True when a statement of the open pipelined transaction failed after its
 * call returned: an error seen since may belong to an earlier statement. */
bool ev_store_deferred_failed(ev_store *s);
int ev_store_commit(ev_store *s, ev_error *err);
/* On PostgreSQL, on: each transaction first waits until no other instance of
 * the service (the same schema) runs one in this mode (a session advisory
 * lock, released at commit or rollback). Rows every batch touches (a SKU's
 * stock, a customer's credit) then cost instances a wait instead of a lost
 * race and a batch done again. No effect on SQLite. */
void ev_store_set_serial(ev_store *s, bool on);
/* Rolls back the open transaction; 0 when none is open (safe in cleanup). */
int ev_store_rollback(ev_store *s, ev_error *err);
/* True while a transaction is open. */
bool ev_store_in_tx(ev_store *s);
/* True when the open transaction (or the last one) failed because another
 * instance won a race on the same rows; cleared by ev_store_begin. */
bool ev_store_conflict(const ev_store *s);
/* One nested savepoint at a time, named "ev" (outside a transaction it starts
 * one). release keeps the work since the savepoint; rollback_to undoes it and
 * ends the savepoint too (ROLLBACK TO ev; RELEASE ev), so every savepoint ends
 * in exactly one of the two. */
int ev_store_savepoint(ev_store *s, ev_error *err);
int ev_store_release(ev_store *s, ev_error *err);
int ev_store_rollback_to(ev_store *s, ev_error *err);
/* The number of transactions begun on s so far: names the open one, so that
 * work noted outside the store can tell the transaction it belongs to. */
uint64_t ev_store_tx_seq(const ev_store *s);
/* True when a savepoint of the open transaction was rolled back: some of its
 * writes are undone. False otherwise: every write since begin is in it. */
bool ev_store_tx_undone(const ev_store *s);

/* inbox: ids of applied events. Adding an id that is already there is a no-op
 * returning 0 (the first seen_at stays). On PostgreSQL an id that another
 * instance added since this transaction began is a conflict (EV_ERETRY): that
 * is what fences a zombie instance. event_id must be non-empty. */
int ev_store_inbox_seen(ev_store *s, const char *event_id, bool *seen, ev_error *err);
int ev_store_inbox_add(ev_store *s, const char *event_id, int64_t now_ms, ev_error *err);
/* Adds event_id as ev_store_inbox_add does, in one statement; *fresh is true
 * when it was not there yet (apply the event), false for a duplicate. Undone
 * with the transaction or savepoint when the event then fails. */
int ev_store_inbox_claim(ev_store *s, const char *event_id, int64_t now_ms, bool *fresh,
                         ev_error *err);
/* Deletes rows with seen_at < older_than_ms; *removed (may be NULL) gets how many. */
int ev_store_inbox_prune(ev_store *s, int64_t older_than_ms, ev_error *err);
int ev_store_inbox_prune_n(ev_store *s, int64_t older_than_ms, int64_t *removed,
                           ev_error *err);
int ev_store_inbox_count(ev_store *s, int64_t *n, ev_error *err);

/* outbox: records waiting to be published, in id order, each marked with the
 * owner (opts.owner) that wrote it. headers_json is a JSON object of string
 * values or NULL. *id_out may be NULL. topic is required; key may be NULL (no
 * key); value may be NULL when len is 0. Ids only grow: a deleted id is never
 * reused, and one owner's ids grow in the order it commits them. */
int ev_store_outbox_add(ev_store *s, const char *topic, const char *key,
                        const void *value, size_t len, const char *headers_json,
                        int64_t *id_out, ev_error *err);
/* Called per row with borrowed columns, valid only during the call (value is
 * never NULL, key and headers_json may be); a nonzero return stops the walk and
 * is returned. This owner's rows with id >= from_id in id order, at most limit
 * (0 = all).
 * fn may call other store functions (ev_store_outbox_delete included) but not
 * ev_store_outbox_each. */
typedef int (*ev_outbox_fn)(void *arg, int64_t id, const char *topic, const char *key,
                            const void *value, size_t len, const char *headers_json);
int ev_store_outbox_each(ev_store *s, int64_t from_id, size_t limit, ev_outbox_fn fn,
                         void *arg, ev_error *err);
/* Deleting an id that is not there returns 0 (a repeated delivery report). */
int ev_store_outbox_delete(ev_store *s, int64_t id, ev_error *err);
/* Deletes the n ids (delivered rows; any order, duplicates allowed): sorted in
 * place, one statement per run of consecutive ids. */
int ev_store_outbox_delete_ids(ev_store *s, int64_t *ids, size_t n, ev_error *err);
int ev_store_outbox_count(ev_store *s, int64_t *n, ev_error *err);
/* Takes over other owners' rows written before older_than_ms (an instance that
 * died, or cannot reach the broker: its rows are then sent twice, and
 * consumers drop the copies by id). *claimed gets how many, *min_id the
 * smallest id taken (INT64_MAX when none). Own transaction when none is open. */
int ev_store_outbox_claim(ev_store *s, int64_t older_than_ms, int64_t *claimed,
                          int64_t *min_id, ev_error *err);

/* offsets: next offset to read per topic partition; *next = -1 when unknown.
 * An offset only moves forward: setting a lower one keeps the stored one, so
 * an instance that lost a partition (a zombie committing its last batch of
 * records it merely skipped) cannot move its new owner's position back. */
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
/* Up to cap timers with due_at <= now_ms, earliest first. On PostgreSQL the
 * rows are locked for this transaction and rows another instance holds are
 * skipped, so one timer fires on one instance. */
int ev_store_timers_due(ev_store *s, int64_t now_ms, ev_timer *out, size_t cap, size_t *n,
                        ev_error *err);
/* Earliest due time, or INT64_MAX when none. */
int ev_store_timers_next(ev_store *s, int64_t *due_at, ev_error *err);
int ev_store_timers_count(ev_store *s, int64_t *n, ev_error *err);

#endif
