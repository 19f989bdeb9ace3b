/* SPDX-License-Identifier: MIT */
/* Inside the PostgreSQL backend: its connection and statements, shared by
 * store_pg.c (statements, sessions) and store_pg_pipe.c (pipelined batches). */
#ifndef EV_STORE_PG_INTERNAL_H
#define EV_STORE_PG_INTERNAL_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "store_backend.h"

#define PG_MAX_PARAMS 32
/* The serial lock of a service's instances (ev_store_set_serial), $1 = schema. */
#define PG_SERIAL_LOCK_SQL "SELECT pg_advisory_lock(hashtext('choreo-batch:' || $1))"
#define PG_SERIAL_UNLOCK_SQL "SELECT pg_advisory_unlock(hashtext('choreo-batch:' || $1))"
#define PG_NAME_MAX 24

typedef struct pg_stmt {
    char name[PG_NAME_MAX];
    int n_params;
    bool has_rows;             /* a SELECT or a RETURNING: its answer is always awaited */
    char *vals[PG_MAX_PARAMS]; /* owned; NULL = SQL NULL */
    int lens[PG_MAX_PARAMS];
    int fmts[PG_MAX_PARAMS]; /* 1 = binary (blobs) */
    PGresult *res;           /* rows of the current execution */
    int row, n_rows;
    unsigned char *blob; /* a bytea column decoded, until the next step */
    char *replan;        /* EV_SQL_REPLAN: the text, planned on every run; else NULL */
} pg_stmt;

/* One statement sent in pipeline mode, answered in order. */
typedef struct pg_sent {
    ev_stmt *st; /* NULL: a transaction verb */
    bool keep;   /* its rows are wanted: the answer goes to pg_conn.kept */
    bool sync;   /* not a statement: a Sync, answered PGRES_PIPELINE_SYNC */
} pg_sent;

/* An array literal being built ("{a,b,..." without its closing brace). */
typedef struct pg_buf {
    char *p;
    size_t len, cap;
} pg_buf;

/* Rows of the pipelined transaction written at its flush (store_pg_bulk.c):
 * inbox (event_id, seen_at), outbox (topic, key, value, headers, created_at). */
typedef struct pg_bulk {
    pg_buf in[2];
    pg_buf out[5];
    size_t n_in, n_out;
} pg_bulk;

typedef struct pg_conn {
    PGconn *c;
    bool pipe;      /* a pipelined transaction is open */
    bool failed;    /* a statement of it failed: first says how */
    ev_error first; /* that statement's error */
    pg_sent *sent;  /* sent, not yet answered */
    size_t n_sent, cap_sent;
    PGresult *kept; /* the answer of the last kept statement */
    pg_bulk bulk;   /* rows kept for the flush */
} pg_conn;

static inline pg_conn *pg_of(ev_store *s)
{
    return (pg_conn *)s->conn;
}

static inline PGconn *conn_of(ev_store *s)
{
    return pg_of(s)->c;
}

static inline pg_stmt *pq(ev_stmt *st)
{
    return (pg_stmt *)st->impl;
}

/* err from a failed result (NULL: the connection's message); sets s->conflict
 * on a lost race and s->broken on a lost connection. */
int pg_res_fail(ev_store *s, const PGresult *res, const char *what, ev_error *err);
/* The row count of a command's answer. */
int64_t pg_changes(const PGresult *res);

/* store_pg_pipe.c */
int pg_pipe_begin(ev_store *s, const char *begin_sql, ev_error *err);
/* Sends st's execution; awaits its answer (into pg_conn.kept) only when it has
 * rows, or when too many are unanswered. */
int pg_pipe_send(ev_store *s, ev_stmt *st, ev_error *err);
int pg_pipe_flush(ev_store *s, ev_error *err);
/* Sends the kept rows (store_pg_bulk.c) without waiting: before a read of them. */
int pg_pipe_settle(ev_store *s, ev_error *err);
/* The first error of the pipelined transaction into err (0: none). */
int pg_pipe_error(ev_store *s, ev_error *err);
bool pg_pipe_active(ev_store *s);
bool pg_pipe_failed(ev_store *s);
int pg_pipe_commit(ev_store *s, const char *commit_sql, ev_error *err);
void pg_pipe_abort(ev_store *s);
/* Leaves pipeline mode for a synchronous call (prepare, script) and enters it
 * again: pause returns whether it was on, resume takes that. */
bool pg_pipe_pause(ev_store *s);
void pg_pipe_resume(ev_store *s, bool was_on);
void pg_pipe_free(pg_conn *pc);
/* Notes a statement sent (unanswered, its answer not kept). */
int pg_pipe_push(ev_store *s);

/* store_pg_bulk.c: the inbox's claims and the outbox's rows of a pipelined
 * transaction, kept until pg_bulk_send (at its flush and commit). */
int pg_bulk_inbox(ev_store *s, const char *event_id, int64_t at, ev_error *err);
int pg_bulk_outbox(ev_store *s, const char *topic, const char *key, const void *value,
                   size_t len, const char *headers, int64_t at, ev_error *err);
bool pg_bulk_pending(ev_store *s);
int pg_bulk_send(ev_store *s);
void pg_bulk_clear(pg_conn *pc);
void pg_bulk_free(pg_conn *pc);

#endif
