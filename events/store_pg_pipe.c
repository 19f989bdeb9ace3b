/* SPDX-License-Identifier: MIT */
/* Pipelined transactions on PostgreSQL (libpq pipeline mode): statements that
 * return no rows are sent without waiting; a read, ev_stmt_changes or the
 * commit sends a Sync and reads every answer up to it, in order. A batch then
 * costs a round trip per read, not one per statement. */
#include <stdlib.h>
#include <string.h>

#include "store_pg_internal.h"

/* Unanswered statements before a Sync is forced: the server's answers must
 * not fill the socket while libpq still writes (both would block). */
#define PIPE_MAX_UNANSWERED 256

static int lost(ev_store *s, const char *what, ev_error *err)
{
    return pg_res_fail(s, NULL, what, err);
}

static int push(ev_store *s, ev_stmt *st, bool keep, ev_error *err)
{
    pg_conn *pc = pg_of(s);
    if (pc->n_sent == pc->cap_sent) {
        size_t cap = pc->cap_sent ? pc->cap_sent * 2 : 64;
        pg_sent *q = realloc(pc->sent, cap * sizeof(*q));
        if (q == NULL)
            return ev_error_set(err, EV_ENOMEM, "store: pipeline: out of memory");
        pc->sent = q;
        pc->cap_sent = cap;
    }
    pc->sent[pc->n_sent++] = (pg_sent){.st = st, .keep = keep};
    if (st != NULL)
        st->pending++;
    return 0;
}

int pg_pipe_push(ev_store *s)
{
    return push(s, NULL, false, NULL);
}

/* The first failure of the transaction, kept for every later call. */
static void note_failure(ev_store *s, const PGresult *res, const char *what)
{
    pg_conn *pc = pg_of(s);
    if (pc->failed)
        return;
    pc->failed = true;
    pg_res_fail(s, res, what, &pc->first);
}

static void take_answer(ev_store *s, const pg_sent *e, PGresult *res)
{
    pg_conn *pc = pg_of(s);
    ExecStatusType t = PQresultStatus(res);
    if (e != NULL && e->st != NULL)
        e->st->pending--;
    if (t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK) {
        if (e != NULL && e->st != NULL)
            e->st->changes = pg_changes(res);
        if (e != NULL && e->keep) {
            PQclear(pc->kept);
            pc->kept = res;
            return;
        }
    } else if (t != PGRES_PIPELINE_ABORTED) { /* aborted: after the failure */
        note_failure(s, res, e != NULL && e->st != NULL ? "step" : "transaction");
    }
    PQclear(res);
}

/* Sends a Sync; a Sync ends a segment of the pipeline: an error aborts the
 * statements after it up to the Sync only. */
static bool send_sync(ev_store *s)
{
    pg_conn *pc = pg_of(s);
    if (PQpipelineSync(pc->c) != 1 || push(s, NULL, false, NULL) != 0) {
        note_failure(s, NULL, "pipeline");
        return false;
    }
    pc->sent[pc->n_sent - 1].sync = true;
    return true;
}

/* Sends a Sync and reads every answer up to it. */
static void drain(ev_store *s)
{
    pg_conn *pc = pg_of(s);
    if (pc->n_sent == 0)
        return;
    size_t next = 0;
    if (send_sync(s)) {
        int nulls = 0;
        while (next < pc->n_sent) {
            PGresult *res = PQgetResult(pc->c);
            if (res == NULL) {
                /* one NULL ends each statement's answer; two in a row, or a
                 * dead connection: nothing more will come */
                if (++nulls > 1 || PQstatus(pc->c) != CONNECTION_OK) {
                    note_failure(s, NULL, "pipeline");
                    break;
                }
                continue;
            }
            nulls = 0;
            const pg_sent *e = &pc->sent[next++];
            if (PQresultStatus(res) == PGRES_PIPELINE_SYNC || e->sync) {
                if (PQresultStatus(res) != PGRES_PIPELINE_SYNC || !e->sync)
                    note_failure(s, res, "pipeline"); /* out of step */
                PQclear(res);
                continue;
            }
            take_answer(s, e, res);
        }
    }
    for (; next < pc->n_sent; next++) { /* never answered: the connection is gone */
        if (pc->sent[next].st != NULL)
            pc->sent[next].st->pending--;
    }
    pc->n_sent = 0;
}

int pg_pipe_error(ev_store *s, ev_error *err)
{
    pg_conn *pc = pg_of(s);
    if (!pc->failed)
        return 0;
    if (err != NULL)
        *err = pc->first;
    if (pc->first.code == EV_ERETRY)
        s->conflict = true;
    return pc->first.code;
}

/* Sends sql with the schema as $1, unanswered. */
static int send_schema_sql(ev_store *s, const char *sql, ev_error *err)
{
    const char *vals[1] = {s->schema};
    if (PQsendQueryParams(pg_of(s)->c, sql, 1, NULL, vals, NULL, NULL, 0) != 1)
        return lost(s, "serial lock", err);
    return push(s, NULL, false, err);
}

int pg_pipe_begin(ev_store *s, const char *begin_sql, ev_error *err)
{
    pg_conn *pc = pg_of(s);
    pc->failed = false;
    pc->first = (ev_error){0};
    pg_bulk_clear(pc);
    if (PQenterPipelineMode(pc->c) != 1)
        return lost(s, "begin", err);
    pc->pipe = true;
    /* the lock first, in the same round trip: the transaction's snapshot is
     * taken after the wait, so it sees what the previous holder committed */
    if (s->serial && !s->serial_held) {
        s->serial_held = true; /* if it failed, the release is harmless */
        int rc = send_schema_sql(s, PG_SERIAL_LOCK_SQL, err);
        if (rc == 0 && !send_sync(s)) /* BEGIN must open the next segment */
            rc = pg_pipe_error(s, err);
        if (rc != 0) {
            pg_pipe_abort(s);
            return rc;
        }
    }
    if (PQsendQueryParams(pc->c, begin_sql, 0, NULL, NULL, NULL, NULL, 0) != 1) {
        pg_pipe_abort(s);
        return lost(s, "begin", err);
    }
    return push(s, NULL, false, err);
}

int pg_pipe_send(ev_store *s, ev_stmt *st, ev_error *err)
{
    pg_conn *pc = pg_of(s);
    pg_stmt *q = pq(st);
    if (pc->failed) /* the transaction can only roll back now */
        return pg_pipe_error(s, err);
    int sent =
        q->replan != NULL
            ? PQsendQueryParams(pc->c, q->replan, q->n_params, NULL,
                                (const char *const *)q->vals, q->lens, q->fmts, 0)
            : PQsendQueryPrepared(pc->c, q->name, q->n_params,
                                  (const char *const *)q->vals, q->lens, q->fmts, 0);
    if (sent != 1) {
        note_failure(s, NULL, "step");
        return pg_pipe_error(s, err);
    }
    int rc = push(s, st, q->has_rows, err);
    if (rc != 0)
        return rc;
    if (q->has_rows || pc->n_sent >= PIPE_MAX_UNANSWERED)
        drain(s);
    return pg_pipe_error(s, err);
}

/* The kept rows' statements go out before a flush or the commit. */
static void send_bulk(ev_store *s)
{
    if (!pg_of(s)->failed && pg_bulk_pending(s) && pg_bulk_send(s) != 0)
        note_failure(s, NULL, "step");
    pg_bulk_clear(pg_of(s));
}

int pg_pipe_settle(ev_store *s, ev_error *err)
{
    send_bulk(s);
    return pg_pipe_error(s, err);
}

int pg_pipe_flush(ev_store *s, ev_error *err)
{
    drain(s);
    return pg_pipe_error(s, err);
}

bool pg_pipe_active(ev_store *s)
{
    return s->conn != NULL && pg_of(s)->pipe;
}

bool pg_pipe_failed(ev_store *s)
{
    return pg_of(s)->failed;
}

/* Out of pipeline mode, with nothing unanswered (a lost connection: marked
 * broken, the next transaction connects again). */
static void leave(ev_store *s)
{
    pg_conn *pc = pg_of(s);
    drain(s);
    PQclear(pc->kept);
    pc->kept = NULL;
    if (PQexitPipelineMode(pc->c) != 1)
        s->broken = true;
    pc->pipe = false;
}

int pg_pipe_commit(ev_store *s, const char *commit_sql, ev_error *err)
{
    pg_conn *pc = pg_of(s);
    int rc = 0;
    bool unlocking = false;
    send_bulk(s);
    if (!pc->failed) {
        if (PQsendQueryParams(pc->c, commit_sql, 0, NULL, NULL, NULL, NULL, 0) != 1)
            note_failure(s, NULL, "commit");
        else
            rc = push(s, NULL, false, err);
        if (rc == 0 && !pc->failed && s->serial_held) { /* released in the same trip */
            rc = send_schema_sql(s, PG_SERIAL_UNLOCK_SQL, err);
            unlocking = rc == 0;
        }
    }
    drain(s);
    if (unlocking && !pc->failed)
        s->serial_held = false; /* else still held: released after the rollback */
    if (rc == 0)
        rc = pg_pipe_error(s, err);
    leave(s);
    return rc;
}

void pg_pipe_abort(ev_store *s)
{
    pg_bulk_clear(pg_of(s));
    leave(s);
}

bool pg_pipe_pause(ev_store *s)
{
    if (!pg_pipe_active(s))
        return false;
    leave(s);
    return true;
}

void pg_pipe_resume(ev_store *s, bool was_on)
{
    pg_conn *pc = pg_of(s);
    if (was_on && PQenterPipelineMode(pc->c) == 1)
        pc->pipe = true;
    else if (was_on)
        note_failure(s, NULL, "pipeline");
}

void pg_pipe_free(pg_conn *pc)
{
    pg_bulk_free(pc);
    PQclear(pc->kept);
    free(pc->sent);
}
