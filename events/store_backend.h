/* SPDX-License-Identifier: MIT */
/* Inside the store: what a backend (store_sqlite.c, store_pg.c) implements for
 * store.c, which keeps the statement cache, migrations and runtime tables. */
#ifndef EV_STORE_BACKEND_H
#define EV_STORE_BACKEND_H

/* A statement whose SQL starts with this comment is planned on every run
 * (PostgreSQL: not a prepared statement's cached generic plan). For reads of
 * tables that churn (the outbox: every row inserted and deleted within
 * seconds): a generic plan made while the table was empty scans and sorts
 * it, and once it is full of dead rows that scan costs more than planning. */
#define EV_SQL_REPLAN "/* replanned */ "

#include "store.h"

/* Transaction verbs, indexes of ev_store_ops.tx_sql. */
enum {
    EV_TX_BEGIN,
    EV_TX_COMMIT,
    EV_TX_ROLLBACK,
    EV_TX_SAVEPOINT,
    EV_TX_RELEASE,
    EV_TX_ROLLBACK_TO,
    EV_TX_N
};

/* The outbox insert both dialects share. */
#define OUTBOX_PUT_SQL                                                                   \
    "INSERT INTO outbox(topic, key, value, headers, created_at, owner) "                 \
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6)"

/* The runtime tables' SQL where the dialects differ. */
enum {
    EV_SQL_INBOX_ADD,
    EV_SQL_TIMERS_DUE,
    EV_SQL_OUTBOX_ADD, /* gives the new row's id (RETURNING or last_id) */
    EV_SQL_OUTBOX_PUT, /* the same insert when nobody wants the id */
    EV_SQL_N
};

struct ev_stmt {
    ev_store *store;
    char *sql; /* owned copy, the cache key */
    uint64_t hash;
    void *impl; /* the backend's statement */
    int64_t changes;
    int pending; /* executions sent but not yet answered (pipelined) */
};

typedef struct ev_store_ops {
    const char *name;
    /* Connects and sets the session up (SQLite: file, WAL, pragmas;
     * PostgreSQL: connection, schema, search_path). s->conn is the result. */
    int (*open)(ev_store *s, const ev_store_opts *o, ev_error *err);
    void (*close)(ev_store *s);
    /* Runs one or more statements without parameters. */
    int (*script)(ev_store *s, const char *sql, const char *what, ev_error *err);
    /* Applies the runtime tables (idempotent), in the caller's transaction. */
    int (*runtime_tables)(ev_store *s, ev_error *err);
    /* Serializes migrations across instances (PostgreSQL advisory lock). */
    int (*lock)(ev_store *s, bool on, ev_error *err);
    int (*prepare)(ev_store *s, ev_stmt *st, ev_error *err);
    void (*finalize)(ev_stmt *st);
    void (*reset)(ev_stmt *st); /* also drops the bindings */
    int (*bind_text)(ev_stmt *st, int i, const char *v, size_t len);
    int (*bind_int)(ev_stmt *st, int i, int64_t v);
    int (*bind_blob)(ev_stmt *st, int i, const void *v, size_t len);
    int (*bind_null)(ev_stmt *st, int i);
    int (*step)(ev_stmt *st, ev_error *err); /* 1 row, 0 done (reset), < 0 */
    bool (*is_null)(ev_stmt *st, int col);
    int64_t (*col_int)(ev_stmt *st, int col);
    const char *(*col_text)(ev_stmt *st, int col);
    const void *(*col_blob)(ev_stmt *st, int col, size_t *len);
    bool (*in_tx)(ev_store *s);
    /* Connects again after a lost connection (NULL: never lost). */
    int (*reconnect)(ev_store *s, ev_error *err);
    /* The id of the row the last INSERT made, when sql[EV_SQL_OUTBOX_ADD] has
     * no RETURNING (SQLite: the rowid, cheaper than RETURNING); NULL = the
     * statement returns it. */
    int64_t (*last_id)(ev_store *s);
    /* Pipelined transactions (NULL: begin_pipelined is a plain begin). begin
     * opens one; flush waits for every answer and returns the first deferred
     * error; active says one is open; commit ends it (a deferred error fails
     * it); abort drops what is unanswered, before the rollback. */
    int (*pipe_begin)(ev_store *s, const char *begin_sql, ev_error *err);
    int (*pipe_flush)(ev_store *s, ev_error *err);
    bool (*pipe_active)(ev_store *s);
    bool (*pipe_failed)(ev_store *s);
    int (*pipe_commit)(ev_store *s, const char *commit_sql, ev_error *err);
    void (*pipe_abort)(ev_store *s);
    /* Rows a pipelined transaction writes and nobody reads before its flush,
     * kept and written in one statement each at the flush (NULL: written one
     * by one). An inbox claim is then taken as fresh: a duplicate fails the
     * flush (ev_store_deferred_failed, not a conflict), and the careful run
     * asks. pipe_settle sends what is kept (unanswered): before a read of those
     * tables, and by ev_store_flush; pipe_flush only waits for answers. */
    int (*inbox_defer)(ev_store *s, const char *event_id, int64_t at, ev_error *err);
    int (*outbox_defer)(ev_store *s, const char *topic, const char *key,
                        const void *value, size_t len, const char *headers, int64_t at,
                        ev_error *err);
    int (*pipe_settle)(ev_store *s, ev_error *err);
    /* Takes (waits for) or releases the service's serial lock, outside a
     * transaction (NULL: one instance per store, nothing to wait for). */
    int (*serial_lock)(ev_store *s, bool take, ev_error *err);
    /* Transaction verbs run as cached statements (true) or as scripts. */
    bool tx_cached;
    const char *tx_sql[EV_TX_N];
    const char *sql[EV_SQL_N];
} ev_store_ops;

typedef struct stmt_slot {
    char *sql; /* NULL = empty slot */
    uint64_t hash;
    ev_stmt *stmt;
} stmt_slot;

struct ev_store {
    const ev_store_ops *be;
    void *conn; /* the backend's connection */
    bool readonly;
    bool conflict;    /* a race with another instance failed this transaction */
    bool broken;      /* the connection was lost: reconnect before the next one */
    bool serial;      /* transactions wait for the other instances' (serial lock) */
    bool serial_held; /* this session holds the serial lock */
    uint64_t tx_seq;  /* transactions begun (ev_store_tx_seq) */
    bool tx_undone;   /* a savepoint of the open transaction was rolled back */
    char owner[128];  /* outbox rows of this instance */
    char schema[64];  /* PostgreSQL */
    stmt_slot *slots;
    size_t cap; /* power of two */
    size_t len;
};

/* A pipelined transaction is open (its statements are answered later). */
bool ev_store_pipelined(ev_store *s);

extern const ev_store_ops ev_store_sqlite;
extern const ev_store_ops ev_store_pg;

/* Wall clock in ms (created_at, applied_at). */
int64_t ev_store_wall_ms(void);

#endif
