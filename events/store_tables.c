/* SPDX-License-Identifier: MIT */
/* The runtime's tables in the store, written once for both backends: inbox
 * (dedup), outbox (events to publish, per owner), offsets, timers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_backend.h"

/* ev_store_exec; a failed step (not a failed bind: st NULL) names what in err. */
static int exec_as(const char *what, ev_error *err, ev_stmt *st)
{
    int rc = ev_store_exec(st, err);
    if (rc != 0 && st != NULL && err != NULL && strncmp(err->text, "store: ", 7) == 0) {
        char text[EV_ERROR_TEXT];
        snprintf(text, sizeof(text), "%s", err->text + 7);
        ev_error_set(err, rc, "store: %s: %s", what, text);
    }
    return rc;
}

/* The backend keeps these rows for the flush of a pipelined transaction. */
static bool deferring(ev_store *s, const void *op)
{
    return op != NULL && ev_store_pipelined(s);
}

/* Before a read of the inbox or outbox: what is kept goes out first. */
static int settle(ev_store *s, ev_error *err)
{
    return s != NULL && deferring(s, (const void *)s->be->pipe_settle)
               ? s->be->pipe_settle(s, err)
               : 0;
}

static int count_rows(ev_store *s, const char *sql, int64_t *n, const char *what,
                      ev_error *err)
{
    if (s == NULL || n == NULL)
        return ev_error_set(err, EV_EINVAL, "store: %s: NULL argument", what);
    int settled = settle(s, err);
    if (settled != 0)
        return settled;
    return ev_store_query_int(ev_store_stmt(s, sql, err), 0, n, NULL, err);
}

/* ---- inbox ---- */

int ev_store_inbox_seen(ev_store *s, const char *event_id, bool *seen, ev_error *err)
{
    if (s == NULL || event_id == NULL || seen == NULL)
        return ev_error_set(err, EV_EINVAL, "store: inbox seen: NULL argument");
    int settled = settle(s, err);
    if (settled != 0)
        return settled;
    int64_t one = 0;
    return ev_store_query_int(
        ev_store_bind(s, err, "SELECT 1 FROM inbox WHERE event_id = ?1", "s", event_id),
        0, &one, seen, err);
}

int ev_store_inbox_add(ev_store *s, const char *event_id, int64_t now_ms, ev_error *err)
{
    if (s == NULL || event_id == NULL || event_id[0] == '\0')
        return ev_error_set(err, EV_EINVAL, "store: inbox add: empty event id");
    int settled = settle(s, err);
    if (settled != 0)
        return settled;
    return exec_as(
        "inbox add", err,
        ev_store_bind(s, err, s->be->sql[EV_SQL_INBOX_ADD], "si", event_id, now_ms));
}

int ev_store_inbox_claim(ev_store *s, const char *event_id, int64_t now_ms, bool *fresh,
                         ev_error *err)
{
    if (s == NULL || event_id == NULL || event_id[0] == '\0' || fresh == NULL)
        return ev_error_set(err, EV_EINVAL, "store: inbox claim: empty event id");
    if (deferring(s, s->be->inbox_defer)) {
        /* kept for the flush, taken as fresh: a duplicate fails the flush and
         * the careful run (not pipelined) asks (a round trip per event else) */
        int rc = s->be->inbox_defer(s, event_id, now_ms, err);
        *fresh = rc == 0;
        return rc;
    }
    ev_stmt *st =
        ev_store_bind(s, err, s->be->sql[EV_SQL_INBOX_ADD], "si", event_id, now_ms);
    int rc = exec_as("inbox claim", err, st);
    *fresh = rc == 0 && ev_stmt_changes(st) == 1;
    return rc;
}

int ev_store_inbox_prune_n(ev_store *s, int64_t older_than_ms, int64_t *removed,
                           ev_error *err)
{
    if (s == NULL)
        return ev_error_set(err, EV_EINVAL, "store: inbox prune: NULL store");
    int settled = settle(s, err);
    if (settled != 0)
        return settled;
    ev_stmt *st =
        ev_store_bind(s, err, "DELETE FROM inbox WHERE seen_at < ?1", "i", older_than_ms);
    int ret = exec_as("inbox prune", err, st);
    if (ret == 0 && removed != NULL)
        *removed = ev_stmt_changes(st);
    return ret;
}

int ev_store_inbox_prune(ev_store *s, int64_t older_than_ms, ev_error *err)
{
    return ev_store_inbox_prune_n(s, older_than_ms, NULL, err);
}

int ev_store_inbox_count(ev_store *s, int64_t *n, ev_error *err)
{
    return count_rows(s, "SELECT count(*) FROM inbox", n, "inbox count", err);
}

/* ---- outbox ---- */

int ev_store_outbox_add(ev_store *s, const char *topic, const char *key,
                        const void *value, size_t len, const char *headers_json,
                        int64_t *id_out, ev_error *err)
{
    if (s == NULL || topic == NULL || topic[0] == '\0' || (value == NULL && len > 0))
        return ev_error_set(err, EV_EINVAL,
                            "store: outbox add: topic and value required");
    if (id_out == NULL && deferring(s, s->be->outbox_defer)) /* written at the flush */
        return s->be->outbox_defer(s, topic, key, value, len, headers_json,
                                   ev_store_wall_ms(), err);
    int settled = settle(s, err); /* the ids follow the calls */
    if (settled != 0)
        return settled;
    ev_stmt *st = ev_store_stmt(
        s, s->be->sql[id_out != NULL ? EV_SQL_OUTBOX_ADD : EV_SQL_OUTBOX_PUT], err);
    if (st == NULL)
        return err->code;
    int rc = ev_stmt_bind_text(st, 1, topic);
    if (rc == 0)
        rc = ev_stmt_bind_text(st, 2, key);
    if (rc == 0)
        rc = ev_stmt_bind_blob(st, 3, value, len);
    if (rc == 0)
        rc = ev_stmt_bind_text(st, 4, headers_json);
    if (rc == 0)
        rc = ev_stmt_bind_int(st, 5, ev_store_wall_ms());
    if (rc == 0)
        rc = ev_stmt_bind_text(st, 6, s->owner);
    if (rc != 0) {
        ev_stmt_reset(st);
        return ev_error_set(err, rc, "store: outbox add: bind failed");
    }
    int64_t id = 0;
    if (id_out == NULL) {
        rc = ev_store_exec(st, err);
    } else if (s->be->last_id != NULL) {
        rc = ev_store_exec(st, err);
        id = rc == 0 ? s->be->last_id(s) : 0;
    } else {
        rc = ev_store_query_int(st, 0, &id, NULL, err);
    }
    if (rc == 0 && id_out != NULL)
        *id_out = id;
    return rc;
}

int ev_store_outbox_each(ev_store *s, int64_t from_id, size_t limit, ev_outbox_fn fn,
                         void *arg, ev_error *err)
{
    if (s == NULL || fn == NULL)
        return ev_error_set(err, EV_EINVAL, "store: outbox each: NULL argument");
    int settled = settle(s, err);
    if (settled != 0)
        return settled;
    int64_t lim = limit == 0 || limit > INT32_MAX ? INT32_MAX : (int64_t)limit;
    ev_stmt *st =
        ev_store_bind(s, err,
                      EV_SQL_REPLAN "SELECT id, topic, key, value, headers FROM outbox "
                                    "WHERE owner = ?1 AND id >= ?2 ORDER BY id LIMIT ?3",
                      "sii", s->owner, from_id, lim);
    if (st == NULL)
        return err->code;
    int rc, ret = 0;
    while (ret == 0 && (rc = ev_stmt_step(st, err)) == 1) {
        size_t len = 0;
        const void *value = ev_stmt_blob(st, 3, &len);
        ret = fn(arg, ev_stmt_int(st, 0), ev_stmt_text(st, 1), ev_stmt_text(st, 2),
                 value != NULL ? value : "", len, ev_stmt_text(st, 4));
    }
    if (ret != 0) {
        ev_stmt_reset(st);
        return ret;
    }
    return rc;
}

int ev_store_outbox_delete(ev_store *s, int64_t id, ev_error *err)
{
    if (s == NULL)
        return ev_error_set(err, EV_EINVAL, "store: outbox delete: NULL store");
    int settled = settle(s, err);
    if (settled != 0)
        return settled;
    return exec_as("outbox delete", err,
                   ev_store_bind(s, err, "DELETE FROM outbox WHERE id = ?1", "i", id));
}

static int cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int ev_store_outbox_delete_ids(ev_store *s, int64_t *ids, size_t n, ev_error *err)
{
    if (s == NULL || (ids == NULL && n > 0))
        return ev_error_set(err, EV_EINVAL, "store: outbox delete: NULL argument");
    int settled = settle(s, err);
    if (settled != 0)
        return settled;
    if (n == 0)
        return 0; /* ids may be NULL: nothing delivered */
    qsort(ids, n, sizeof(*ids), cmp_id);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n;) {
        size_t j = i;
        while (j + 1 < n && (ids[j + 1] == ids[j] || ids[j + 1] == ids[j] + 1))
            j++;
        rc =
            exec_as("outbox delete", err,
                    ev_store_bind(s, err, "DELETE FROM outbox WHERE id BETWEEN ?1 AND ?2",
                                  "ii", ids[i], ids[j]));
        i = j + 1;
    }
    return rc;
}

int ev_store_outbox_count(ev_store *s, int64_t *n, ev_error *err)
{
    return count_rows(s, "SELECT count(*) FROM outbox", n, "outbox count", err);
}

static int claim_rows(ev_store *s, int64_t older_than_ms, int64_t *claimed,
                      int64_t *min_id, ev_error *err)
{
    ev_stmt *st = ev_store_bind(s, err,
                                "UPDATE outbox SET owner = ?1 WHERE owner <> ?1 "
                                "AND created_at < ?2 RETURNING id",
                                "si", s->owner, older_than_ms);
    if (st == NULL)
        return err->code;
    int rc;
    while ((rc = ev_stmt_step(st, err)) == 1) {
        int64_t id = ev_stmt_int(st, 0);
        (*claimed)++;
        *min_id = id < *min_id ? id : *min_id;
    }
    return rc;
}

int ev_store_outbox_claim(ev_store *s, int64_t older_than_ms, int64_t *claimed,
                          int64_t *min_id, ev_error *err)
{
    if (s == NULL || claimed == NULL || min_id == NULL)
        return ev_error_set(err, EV_EINVAL, "store: outbox claim: NULL argument");
    int settled = settle(s, err);
    if (settled != 0)
        return settled;
    *claimed = 0;
    *min_id = INT64_MAX;
    bool own = !ev_store_in_tx(s);
    int rc = own ? ev_store_begin(s, err) : 0;
    if (rc == 0)
        rc = claim_rows(s, older_than_ms, claimed, min_id, err);
    if (own && rc == 0)
        rc = ev_store_commit(s, err);
    if (own && rc != 0) {
        ev_store_rollback(s, NULL);
        *claimed = 0;
        *min_id = INT64_MAX;
    }
    return rc;
}

/* ---- offsets ---- */

int ev_store_offset_get(ev_store *s, const char *topic, int32_t partition, int64_t *next,
                        ev_error *err)
{
    if (s == NULL || topic == NULL || next == NULL)
        return ev_error_set(err, EV_EINVAL, "store: offset get: NULL argument");
    return ev_store_query_int(
        ev_store_bind(
            s, err, "SELECT next_offset FROM offsets WHERE topic = ?1 AND partition = ?2",
            "si", topic, (int64_t)partition),
        -1, next, NULL, err);
}

int ev_store_offset_set(ev_store *s, const char *topic, int32_t partition, int64_t next,
                        ev_error *err)
{
    if (s == NULL || topic == NULL || topic[0] == '\0')
        return ev_error_set(err, EV_EINVAL, "store: offset set: topic required");
    return exec_as(
        "offset set", err,
        ev_store_bind(
            s, err,
            "INSERT INTO offsets(topic, partition, next_offset) VALUES(?1, ?2, ?3)"
            " ON CONFLICT(topic, partition) DO UPDATE"
            " SET next_offset = excluded.next_offset"
            " WHERE offsets.next_offset < excluded.next_offset",
            "sii", topic, (int64_t)partition, next));
}

/* ---- timers ---- */

static bool fits(const char *v, size_t cap, bool nonempty)
{
    size_t n = strnlen(v, cap);
    return n < cap && (!nonempty || n > 0);
}

int ev_store_timer_set(ev_store *s, const ev_timer *t, ev_error *err)
{
    if (s == NULL || t == NULL || !fits(t->key, sizeof(t->key), true) ||
        !fits(t->kind, sizeof(t->kind), true) ||
        !fits(t->correlationid, sizeof(t->correlationid), false) ||
        !fits(t->causationid, sizeof(t->causationid), false))
        return ev_error_set(err, EV_EINVAL, "store: timer set: key and kind required");
    return exec_as(
        "timer set", err,
        ev_store_bind(s, err,
                      "INSERT INTO timers(key, kind, due_at, correlationid, causationid)"
                      " VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(key, kind) DO UPDATE SET"
                      " due_at = excluded.due_at, correlationid = excluded.correlationid,"
                      " causationid = excluded.causationid",
                      "ssiss", t->key, t->kind, t->due_at, t->correlationid,
                      t->causationid));
}

int ev_store_timer_delete(ev_store *s, const char *key, const char *kind, ev_error *err)
{
    if (s == NULL || key == NULL || kind == NULL)
        return ev_error_set(err, EV_EINVAL, "store: timer delete: NULL argument");
    return exec_as("timer delete", err,
                   ev_store_bind(s, err,
                                 "DELETE FROM timers WHERE key = ?1 AND kind = ?2", "ss",
                                 key, kind));
}

static int copy_col(char *dst, size_t cap, ev_stmt *st, int col)
{
    const char *v = ev_stmt_text(st, col);
    int n = snprintf(dst, cap, "%s", v != NULL ? v : "");
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* Reads the row (key, kind, due_at, correlationid, causationid) into t. */
static int timer_row(ev_stmt *st, ev_timer *t, ev_error *err)
{
    memset(t, 0, sizeof(*t));
    t->due_at = ev_stmt_int(st, 2);
    if (copy_col(t->key, sizeof(t->key), st, 0) != 0 ||
        copy_col(t->kind, sizeof(t->kind), st, 1) != 0 ||
        copy_col(t->correlationid, sizeof(t->correlationid), st, 3) != 0 ||
        copy_col(t->causationid, sizeof(t->causationid), st, 4) != 0)
        return ev_error_set(err, EV_ESTORE, "store: timer %s: field too long", t->key);
    return 0;
}

/* Up to cap rows of st into out; *n of them. */
static int timer_rows(ev_stmt *st, ev_timer *out, size_t cap, size_t *n, ev_error *err)
{
    int rc, ret = 0;
    while ((rc = ev_stmt_step(st, err)) == 1) {
        if (ret == 0 && *n < cap)
            ret = timer_row(st, &out[*n], err);
        if (ret == 0 && *n < cap)
            (*n)++;
    }
    return rc != 0 ? rc : ret;
}

int ev_store_timer_get(ev_store *s, const char *key, const char *kind, ev_timer *out,
                       bool *found, ev_error *err)
{
    if (s == NULL || key == NULL || kind == NULL || found == NULL)
        return ev_error_set(err, EV_EINVAL, "store: timer get: NULL argument");
    ev_stmt *st = ev_store_bind(s, err,
                                "SELECT key, kind, due_at, correlationid, causationid "
                                "FROM timers WHERE key = ?1 AND kind = ?2",
                                "ss", key, kind);
    if (st == NULL)
        return err->code;
    ev_timer t;
    size_t n = 0;
    int rc = timer_rows(st, &t, 1, &n, err);
    *found = rc == 0 && n == 1;
    if (*found && out != NULL)
        *out = t;
    return rc;
}

int ev_store_timers_due(ev_store *s, int64_t now_ms, ev_timer *out, size_t cap, size_t *n,
                        ev_error *err)
{
    if (s == NULL || n == NULL || (out == NULL && cap > 0))
        return ev_error_set(err, EV_EINVAL, "store: timers due: NULL argument");
    *n = 0;
    if (cap == 0)
        return 0;
    ev_stmt *st = ev_store_bind(s, err, s->be->sql[EV_SQL_TIMERS_DUE], "ii", now_ms,
                                cap > INT32_MAX ? (int64_t)INT32_MAX : (int64_t)cap);
    if (st == NULL)
        return err->code;
    return timer_rows(st, out, cap, n, err);
}

int ev_store_timers_next(ev_store *s, int64_t *due_at, ev_error *err)
{
    if (s == NULL || due_at == NULL)
        return ev_error_set(err, EV_EINVAL, "store: timers next: NULL argument");
    return ev_store_query_int(ev_store_stmt(s, "SELECT min(due_at) FROM timers", err),
                              INT64_MAX, due_at, NULL, err);
}

int ev_store_timers_count(ev_store *s, int64_t *n, ev_error *err)
{
    return count_rows(s, "SELECT count(*) FROM timers", n, "timers count", err);
}
