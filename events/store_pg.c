/* SPDX-License-Identifier: MIT */
/* The PostgreSQL backend of the store: one schema per service, shared by its
 * instances; REPEATABLE READ transactions, races reported as conflicts. */
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_pg_internal.h"

#define BYTEA_OID 17
/* A session that waits on a lock longer than lock_timeout gives up (a
 * conflict: the batch runs again), and an instance frozen inside a
 * transaction (SIGSTOP, a long GC-like pause, a lost host) loses its session
 * after idle_in_transaction_session_timeout, releasing the rows it held for
 * the instance that took its partitions over. A batch never idles that long. */
#define SESSION_SQL                                                                      \
    "SET client_min_messages = warning; SET lock_timeout = '10s';"                       \
    " SET idle_in_transaction_session_timeout = '20s'"

static const char runtime_tables[] =
    "CREATE TABLE IF NOT EXISTS inbox("
    " event_id TEXT PRIMARY KEY, seen_at BIGINT NOT NULL);"
    /* seen_at grows with the insertion order: a BRIN index finds what to prune
     * at almost no cost per insert (a b-tree costs one more insert per event) */
    "DO $$BEGIN IF EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = current_schema()"
    " AND indexname = 'inbox_seen_at' AND indexdef NOT LIKE '%USING brin%')"
    " THEN DROP INDEX inbox_seen_at; END IF; END$$;"
    "CREATE INDEX IF NOT EXISTS inbox_seen_at ON inbox USING brin(seen_at);"
    "CREATE TABLE IF NOT EXISTS outbox("
    " id BIGSERIAL PRIMARY KEY, topic TEXT NOT NULL, key TEXT,"
    " value BYTEA NOT NULL, headers TEXT, created_at BIGINT NOT NULL,"
    " owner TEXT NOT NULL DEFAULT '');"
    /* the outbox holds only what is not yet delivered: its primary key serves
     * the relay's walk, an owner index would cost every row two more writes */
    "DROP INDEX IF EXISTS outbox_owner;"
    "CREATE TABLE IF NOT EXISTS offsets("
    " topic TEXT NOT NULL, partition BIGINT NOT NULL, next_offset BIGINT NOT NULL,"
    " PRIMARY KEY(topic, partition));"
    "CREATE TABLE IF NOT EXISTS timers("
    " key TEXT NOT NULL, kind TEXT NOT NULL, due_at BIGINT NOT NULL,"
    " correlationid TEXT NOT NULL DEFAULT '', causationid TEXT NOT NULL DEFAULT '',"
    " PRIMARY KEY(key, kind));"
    "CREATE INDEX IF NOT EXISTS timers_due_at ON timers(due_at);"
    "CREATE TABLE IF NOT EXISTS ev_migrations("
    " version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);";

/* ---- errors ---- */

/* The inbox's primary key (its default name). */
#define PG_INBOX_KEY "inbox_pkey"

/* SQLSTATEs of a lost race: serialization failure, deadlock, unique key taken
 * by a concurrent transaction. The whole transaction runs again. */
static bool sqlstate_conflict(const char *state)
{
    return strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
           strcmp(state, "23505") == 0 || strcmp(state, "55P03") == 0;
}

static const char *sqlstate_name(const char *state)
{
    if (strcmp(state, "53100") == 0)
        return "disk_full";
    if (strncmp(state, "23", 2) == 0)
        return "constraint";
    if (strcmp(state, "25006") == 0)
        return "readonly";
    if (strncmp(state, "08", 2) == 0)
        return "connection";
    if (strcmp(state, "40001") == 0)
        return "serialization_failure";
    if (strcmp(state, "40P01") == 0)
        return "deadlock";
    if (strcmp(state, "55P03") == 0)
        return "lock_timeout";
    if (strncmp(state, "42", 2) == 0)
        return "sql_error";
    return "postgres_error";
}

/* The first line of libpq's message, without its "ERROR:  " prefix. */
static void first_line(char *out, size_t cap, const char *msg)
{
    if (msg == NULL)
        msg = "";
    if (strncmp(msg, "ERROR:  ", 8) == 0)
        msg += 8;
    size_t n = strcspn(msg, "\n");
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), msg);
}

int pg_res_fail(ev_store *s, const PGresult *res, const char *what, ev_error *err)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    char msg[EV_ERROR_TEXT];
    first_line(msg, sizeof(msg), res ? PQresultErrorMessage(res) : NULL);
    if (msg[0] == '\0')
        first_line(msg, sizeof(msg), PQerrorMessage(conn_of(s)));
    /* A FATAL error ends the session: in pipeline mode its answer can come
     * before libpq has seen the connection close. */
    const char *severity =
        res ? PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED) : NULL;
    bool session_ended = severity != NULL && (strcmp(severity, "FATAL") == 0 ||
                                              strcmp(severity, "PANIC") == 0);
    if (session_ended || PQstatus(conn_of(s)) != CONNECTION_OK) {
        /* The server went away (restarted, or ended this idle session): the
         * transaction is lost, run it again on a new connection. */
        s->broken = s->conflict = true;
        return ev_error_set(err, EV_ERETRY, "store: %s: %s (connection)", what, msg);
    }
    if (state == NULL)
        state = "XX000";
    /* The inbox's key met by the claims of a pipelined batch (store_pg_bulk.c):
     * a duplicate, which the careful run skips; not a race to run again. */
    const char *key = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
    if (strcmp(state, "23505") == 0 && key != NULL && strcmp(key, PG_INBOX_KEY) == 0)
        return ev_error_set(err, EV_ESTORE, "store: %s: %s (duplicate)", what, msg);
    bool conflict = sqlstate_conflict(state);
    if (conflict)
        s->conflict = true;
    return ev_error_set(err, conflict ? EV_ERETRY : EV_ESTORE, "store: %s: %s (%s)", what,
                        msg, conflict ? "conflict" : sqlstate_name(state));
}

/* ---- open ---- */

static int pg_script(ev_store *s, const char *sql, const char *what, ev_error *err)
{
    bool piped = pg_pipe_pause(s);
    PGresult *res = PQexec(conn_of(s), sql);
    ExecStatusType t = PQresultStatus(res);
    int ret = 0;
    if (t != PGRES_COMMAND_OK && t != PGRES_TUPLES_OK)
        ret = pg_res_fail(s, res, what, err);
    PQclear(res);
    pg_pipe_resume(s, piped);
    return ret;
}

/* One row's first column as text into out; found false when no row. */
static int pg_query1(ev_store *s, const char *sql, const char *param, bool *found,
                     ev_error *err)
{
    const char *vals[1] = {param};
    PGresult *res =
        PQexecParams(conn_of(s), sql, param ? 1 : 0, NULL, vals, NULL, NULL, 0);
    int ret = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        ret = pg_res_fail(s, res, "query", err);
    else
        *found = PQntuples(res) > 0;
    PQclear(res);
    return ret;
}

static int use_schema(ev_store *s, bool readonly, ev_error *err)
{
    char *id = PQescapeIdentifier(conn_of(s), s->schema, strlen(s->schema));
    if (id == NULL)
        return ev_error_set(err, EV_ENOMEM, "store: schema name: out of memory");
    char sql[256];
    int ret = 0;
    if (readonly) {
        bool found = false;
        ret = pg_query1(s, "SELECT 1 FROM pg_namespace WHERE nspname = $1", s->schema,
                        &found, err);
        if (ret == 0 && !found)
            ret = ev_error_set(err, EV_ENOTFOUND, "store: no schema %s", s->schema);
        snprintf(sql, sizeof(sql),
                 "SET search_path TO %s; SET default_transaction_read_only = on", id);
    } else {
        snprintf(sql, sizeof(sql), "SET search_path TO %s", id);
    }
    if (ret == 0)
        ret = pg_script(s, sql, "search_path", err);
    PQfreemem(id);
    return ret;
}

/* Masks every copy of secret (n bytes) in msg. */
static void mask(char *msg, const char *secret, size_t n)
{
    if (n == 0)
        return;
    for (char *hit = msg; (hit = memmem(hit, strlen(hit), secret, n)) != NULL; hit += n)
        memset(hit, '*', n);
}

/* Masks the URL's password in msg, as user:PASSWORD@ and as password=...:
 * libpq quotes a malformed URI whole in its message. */
static void hide_password(char *msg, const char *url)
{
    const char *p = strstr(url, "://");
    if (p != NULL) {
        p += 3;
        size_t auth = strcspn(p, "@/?");
        const char *colon = memchr(p, ':', auth);
        if (p[auth] == '@' && colon != NULL)
            mask(msg, colon + 1, (size_t)(p + auth - (colon + 1)));
    }
    for (const char *q = strstr(url, "password="); q != NULL;
         q = strstr(q + 1, "password=")) {
        q += strlen("password=");
        mask(msg, q, strcspn(q, "& "));
    }
}

/* libpq's connection error, first line, with the password masked first. */
static void connect_error(char *out, size_t cap, PGconn *c, const char *url)
{
    char *full = strdup(PQerrorMessage(c));
    if (full == NULL) {
        snprintf(out, cap, "connection failed");
        return;
    }
    hide_password(full, url);
    first_line(out, cap, full);
    free(full);
}

static int pg_open(ev_store *s, const ev_store_opts *o, ev_error *err)
{
    const char *schema = o->schema;
    if (schema == NULL || schema[0] == '\0' || strlen(schema) >= sizeof(s->schema))
        return ev_error_set(err, EV_EINVAL,
                            "store: a schema name (1-63 bytes) is needed");
    snprintf(s->schema, sizeof(s->schema), "%s", schema);
    pg_conn *pc = calloc(1, sizeof(*pc));
    if (pc == NULL)
        return ev_error_set(err, EV_ENOMEM, "store: connect: out of memory");
    s->conn = pc;
    PGconn *c = pc->c = PQconnectdb(o->url);
    if (c == NULL)
        return ev_error_set(err, EV_ENOMEM, "store: connect: out of memory");
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[EV_ERROR_TEXT];
        connect_error(msg, sizeof(msg), c, o->url);
        return ev_error_set(err, EV_ESTORE, "store: connect: %s (connection)", msg);
    }
    int ret = pg_script(s, SESSION_SQL, "session", err);
    if (ret == 0 && !o->readonly) {
        char *id = PQescapeIdentifier(c, schema, strlen(schema));
        char sql[160];
        snprintf(sql, sizeof(sql), "CREATE SCHEMA IF NOT EXISTS %s", id ? id : "\"\"");
        PQfreemem(id);
        ret = s->be->lock(s, true, err);
        if (ret == 0)
            ret = pg_script(s, sql, "create schema", err);
        if (ret == 0)
            ret = s->be->lock(s, false, err);
    }
    if (ret == 0)
        ret = use_schema(s, o->readonly, err);
    return ret;
}

/* After a lost connection: a new session with the same settings (the cached
 * statements were dropped by the caller, they are prepared again on use). */
static int pg_reconnect(ev_store *s, ev_error *err)
{
    pg_pipe_pause(s); /* what was unanswered is lost with the session */
    PQreset(conn_of(s));
    if (PQstatus(conn_of(s)) != CONNECTION_OK) {
        char msg[EV_ERROR_TEXT];
        first_line(msg, sizeof(msg), PQerrorMessage(conn_of(s)));
        s->conflict = true; /* still down: retried after a backoff */
        return ev_error_set(err, EV_ERETRY, "store: reconnect: %s (connection)", msg);
    }
    s->broken = false;
    s->serial_held = false; /* session locks end with the session */
    int ret = pg_script(s, SESSION_SQL, "session", err);
    if (ret == 0)
        ret = use_schema(s, s->readonly, err);
    return ret;
}

static void pg_close(ev_store *s)
{
    pg_conn *pc = pg_of(s);
    pg_pipe_pause(s);
    PQfinish(pc->c);
    pg_pipe_free(pc);
    free(pc);
    s->conn = NULL;
}

static int pg_runtime_tables(ev_store *s, ev_error *err)
{
    return pg_script(s, runtime_tables, "runtime tables", err);
}

static int pg_serial_lock(ev_store *s, bool take, ev_error *err)
{
    bool found = false;
    int rc = pg_query1(s, take ? PG_SERIAL_LOCK_SQL : PG_SERIAL_UNLOCK_SQL, s->schema,
                       &found, err);
    s->serial_held = take ? rc == 0 : (rc != 0 && s->serial_held);
    return rc;
}

/* Instances of one service starting together migrate one at a time. */
static int pg_lock(ev_store *s, bool on, ev_error *err)
{
    const char *sql = on ? "SELECT pg_advisory_lock(hashtext('choreo:' || $1))"
                         : "SELECT pg_advisory_unlock(hashtext('choreo:' || $1))";
    bool found = false;
    return pg_query1(s, sql, s->schema, &found, err);
}

/* ---- statements ---- */

/* sql with ?N as $N and bare ? numbered in order, outside quotes, into out;
 * the highest parameter number into *n. -1 when out is too small, -2 when sql
 * is not exactly one statement. */
static int translate(const char *sql, char *out, size_t cap, int *n)
{
    size_t o = 0;
    int next = 0, max = 0;
    char quote = 0;
    bool body = false, ended = false;
    for (const char *p = sql; *p != '\0'; p++) {
        if (o + 12 >= cap)
            return -1;
        if (quote == 0 && *p == ';') {
            ended = true;
        } else if (quote == 0 && strchr(" \t\r\n", *p) == NULL) {
            if (ended)
                return -2; /* a second statement */
            body = true;
        }
        if (quote != 0) {
            quote = *p == quote ? 0 : quote;
        } else if (*p == '\'' || *p == '"') {
            quote = *p;
        } else if (*p == '?') {
            int k = 0;
            while (p[1] >= '0' && p[1] <= '9')
                k = k * 10 + (*++p - '0');
            k = k > 0 ? k : ++next;
            max = k > max ? k : max;
            o += (size_t)snprintf(out + o, cap - o, "$%d", k);
            continue;
        }
        out[o++] = *p;
    }
    out[o] = '\0';
    *n = max;
    return body ? 0 : -2;
}

static int pg_prepare(ev_store *s, ev_stmt *st, ev_error *err)
{
    static unsigned counter;
    size_t cap = strlen(st->sql) * 2 + 16;
    char *text = malloc(cap);
    pg_stmt *q = calloc(1, sizeof(*q));
    int ret = 0;
    if (text == NULL || q == NULL) {
        ret = ev_error_set(err, EV_ENOMEM, "store: prepare: out of memory");
        goto cleanup;
    }
    int tr = translate(st->sql, text, cap, &q->n_params);
    if (tr == -2) {
        ret = ev_error_set(err, EV_EINVAL, "store: prepare: need exactly one statement");
        goto cleanup;
    }
    if (tr != 0 || q->n_params > PG_MAX_PARAMS) {
        ret = ev_error_set(err, EV_EINVAL, "store: prepare: too many parameters");
        goto cleanup;
    }
    snprintf(q->name, sizeof(q->name), "ev%u", ++counter);
    if (strncmp(st->sql, EV_SQL_REPLAN, strlen(EV_SQL_REPLAN)) == 0 &&
        (q->replan = strdup(text)) == NULL) {
        ret = ev_error_set(err, EV_ENOMEM, "store: prepare: out of memory");
        goto cleanup;
    }
    bool piped = pg_pipe_pause(s);
    if (piped && (ret = pg_pipe_error(s, err)) != 0) { /* the transaction failed */
        pg_pipe_resume(s, piped);
        goto cleanup;
    }
    PGresult *res = PQprepare(conn_of(s), q->name, text, 0, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        ret = pg_res_fail(s, res, "prepare", err);
    PQclear(res);
    if (ret == 0) { /* does it answer with rows? Then a pipeline waits for them */
        res = PQdescribePrepared(conn_of(s), q->name);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            ret = pg_res_fail(s, res, "prepare", err);
        else
            q->has_rows = PQnfields(res) > 0;
        PQclear(res);
    }
    pg_pipe_resume(s, piped);
cleanup:
    free(text);
    if (ret != 0) {
        if (q != NULL)
            free(q->replan);
        free(q);
        return ret;
    }
    st->impl = q;
    return 0;
}

static void clear_result(pg_stmt *q)
{
    PQclear(q->res);
    q->res = NULL;
    q->row = q->n_rows = 0;
    PQfreemem(q->blob);
    q->blob = NULL;
}

static void pg_reset(ev_stmt *st)
{
    pg_stmt *q = pq(st);
    clear_result(q);
    for (int i = 0; i < q->n_params; i++) {
        free(q->vals[i]);
        q->vals[i] = NULL;
        q->lens[i] = q->fmts[i] = 0;
    }
}

static void pg_finalize(ev_stmt *st)
{
    if (st->impl == NULL)
        return;
    pg_reset(st);
    char sql[64];
    snprintf(sql, sizeof(sql), "DEALLOCATE %s", pq(st)->name);
    if (st->store->conn != NULL && PQstatus(conn_of(st->store)) == CONNECTION_OK) {
        bool piped = pg_pipe_pause(st->store); /* answers it is still owed */
        PQclear(PQexec(conn_of(st->store), sql));
        pg_pipe_resume(st->store, piped);
    }
    free(pq(st)->replan);
    free(st->impl);
    st->impl = NULL;
}

/* Sets parameter i (from 1) to len bytes of v (copied; v NULL = SQL NULL). */
static int set_param(ev_stmt *st, int i, const void *v, size_t len, int fmt)
{
    pg_stmt *q = pq(st);
    if (i < 1 || i > q->n_params || len > INT32_MAX)
        return EV_EINVAL;
    char *copy = NULL;
    if (v != NULL) {
        copy = malloc(len + 1);
        if (copy == NULL)
            return EV_ENOMEM;
        memcpy(copy, v, len);
        copy[len] = '\0';
    }
    free(q->vals[i - 1]);
    q->vals[i - 1] = copy;
    q->lens[i - 1] = (int)len;
    q->fmts[i - 1] = fmt;
    return 0;
}

static int pg_bind_text(ev_stmt *st, int i, const char *v, size_t len)
{
    return set_param(st, i, v, len, 0);
}

static int pg_bind_int(ev_stmt *st, int i, int64_t v)
{
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%lld", (long long)v);
    return set_param(st, i, buf, (size_t)n, 0);
}

static int pg_bind_blob(ev_stmt *st, int i, const void *v, size_t len)
{
    return set_param(st, i, v != NULL ? v : "", len, 1);
}

static int pg_bind_null(ev_stmt *st, int i)
{
    return set_param(st, i, NULL, 0, 0);
}

int64_t pg_changes(const PGresult *res)
{
    const char *tuples = PQcmdTuples((PGresult *)res);
    return tuples[0] != '\0' ? strtoll(tuples, NULL, 10) : 0;
}

/* Runs the statement with its parameters; 1 with rows, 0 without (in a
 * pipelined transaction, a statement without rows is only sent). */
static int execute(ev_stmt *st, ev_error *err)
{
    pg_stmt *q = pq(st);
    ev_store *s = st->store;
    if (pg_pipe_active(s)) {
        int rc = pg_pipe_send(s, st, err);
        if (rc != 0 || !q->has_rows)
            return rc;
        q->res = pg_of(s)->kept;
        pg_of(s)->kept = NULL;
    } else if (q->replan != NULL) {
        q->res = PQexecParams(conn_of(s), q->replan, q->n_params, NULL,
                              (const char *const *)q->vals, q->lens, q->fmts, 0);
    } else {
        q->res = PQexecPrepared(conn_of(s), q->name, q->n_params,
                                (const char *const *)q->vals, q->lens, q->fmts, 0);
    }
    ExecStatusType t = PQresultStatus(q->res);
    if (t == PGRES_TUPLES_OK) {
        q->n_rows = PQntuples(q->res);
        q->row = -1;
        st->changes = pg_changes(q->res);
        return 1;
    }
    if (t == PGRES_COMMAND_OK) {
        st->changes = pg_changes(q->res);
        return 0;
    }
    return pg_res_fail(s, q->res, "step", err);
}

static int pg_step(ev_stmt *st, ev_error *err)
{
    pg_stmt *q = pq(st);
    int ret = 1;
    if (q->res == NULL)
        ret = execute(st, err);
    if (ret == 1) {
        PQfreemem(q->blob);
        q->blob = NULL;
        if (++q->row < q->n_rows)
            return 1;
        ret = 0;
    }
    pg_reset(st);
    return ret;
}

static bool pg_is_null(ev_stmt *st, int col)
{
    pg_stmt *q = pq(st);
    return q->res == NULL || q->row < 0 || col >= PQnfields(q->res) ||
           PQgetisnull(q->res, q->row, col);
}

static int64_t pg_col_int(ev_stmt *st, int col)
{
    if (pg_is_null(st, col))
        return 0;
    const char *v = PQgetvalue(pq(st)->res, pq(st)->row, col);
    if (v[0] == 't' || v[0] == 'f') /* a boolean expression */
        return v[0] == 't';
    return strtoll(v, NULL, 10);
}

static const char *pg_col_text(ev_stmt *st, int col)
{
    if (pg_is_null(st, col))
        return NULL;
    return PQgetvalue(pq(st)->res, pq(st)->row, col);
}

static const void *pg_col_blob(ev_stmt *st, int col, size_t *len)
{
    *len = 0;
    if (pg_is_null(st, col))
        return NULL;
    pg_stmt *q = pq(st);
    const char *v = PQgetvalue(q->res, q->row, col);
    if (PQftype(q->res, col) != BYTEA_OID) {
        *len = (size_t)PQgetlength(q->res, q->row, col);
        return v;
    }
    PQfreemem(q->blob);
    q->blob = PQunescapeBytea((const unsigned char *)v, len);
    return q->blob;
}

static bool pg_in_tx(ev_store *s)
{
    PGTransactionStatusType t = PQtransactionStatus(conn_of(s));
    return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

const ev_store_ops ev_store_pg = {
    .name = "postgresql",
    .open = pg_open,
    .close = pg_close,
    .script = pg_script,
    .runtime_tables = pg_runtime_tables,
    .lock = pg_lock,
    .prepare = pg_prepare,
    .finalize = pg_finalize,
    .reset = pg_reset,
    .bind_text = pg_bind_text,
    .bind_int = pg_bind_int,
    .bind_blob = pg_bind_blob,
    .bind_null = pg_bind_null,
    .step = pg_step,
    .is_null = pg_is_null,
    .col_int = pg_col_int,
    .col_text = pg_col_text,
    .col_blob = pg_col_blob,
    .in_tx = pg_in_tx,
    .reconnect = pg_reconnect,
    .pipe_begin = pg_pipe_begin,
    .pipe_flush = pg_pipe_flush,
    .pipe_active = pg_pipe_active,
    .pipe_failed = pg_pipe_failed,
    .pipe_commit = pg_pipe_commit,
    .pipe_abort = pg_pipe_abort,
    .inbox_defer = pg_bulk_inbox,
    .outbox_defer = pg_bulk_outbox,
    .pipe_settle = pg_pipe_settle,
    .serial_lock = pg_serial_lock,
    .tx_cached = false,
    .tx_sql = {[EV_TX_BEGIN] = "BEGIN ISOLATION LEVEL REPEATABLE READ",
               [EV_TX_COMMIT] = "COMMIT",
               [EV_TX_ROLLBACK] = "ROLLBACK",
               [EV_TX_SAVEPOINT] = "SAVEPOINT ev",
               [EV_TX_RELEASE] = "RELEASE SAVEPOINT ev",
               [EV_TX_ROLLBACK_TO] = "ROLLBACK TO SAVEPOINT ev"},
    /* a row another transaction committed after this one's snapshot is still
     * a serialization failure under REPEATABLE READ: the zombie fence */
    .sql = {[EV_SQL_INBOX_ADD] = "INSERT INTO inbox(event_id, seen_at) VALUES(?1, ?2) "
                                 "ON CONFLICT (event_id) DO NOTHING",
            [EV_SQL_TIMERS_DUE] = "SELECT key, kind, due_at, correlationid, causationid "
                                  "FROM timers WHERE due_at <= ?1 "
                                  "ORDER BY due_at, key, kind LIMIT ?2 "
                                  "FOR UPDATE SKIP LOCKED",
            [EV_SQL_OUTBOX_ADD] = OUTBOX_PUT_SQL " RETURNING id",
            [EV_SQL_OUTBOX_PUT] = OUTBOX_PUT_SQL},
};
