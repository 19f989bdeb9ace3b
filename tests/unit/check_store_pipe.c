/* SPDX-License-Identifier: MIT */
/* Unit tests of pipelined transactions (ev_store_begin_pipelined): on
 * PostgreSQL a write is sent without waiting, and its error, a lost race
 * included, comes from the next read, ev_store_flush or the commit; nothing of
 * a failed transaction stays. On SQLite the same calls are a plain
 * transaction. */
#include <check.h>
#include <pthread.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store_fixture.h"

#define BIG_LEN ((size_t)700 * 1024) /* 1.4 MB in hex: sent every 3 rows */
#define BIG_ROWS 10

static const char table_sql[] = "CREATE TABLE t(k TEXT PRIMARY KEY, v BIGINT NOT NULL)";
static const ev_migration migrations[] = {{1, table_sql, NULL}};

static ev_store *open_store(void)
{
    return sf_open_with(migrations, 1);
}

static int put(ev_store *s, const char *k, int64_t v, ev_error *err)
{
    return ev_store_exec(
        ev_store_bind(s, err, "INSERT INTO t(k, v) VALUES(?1, ?2)", "si", k, v), err);
}

/* v of k, or -1 when there is no row; fails the test on an error. */
static int64_t get(ev_store *s, const char *k)
{
    int64_t v = -1;
    OK(ev_store_query_int(ev_store_bind(s, &e_, "SELECT v FROM t WHERE k = ?1", "s", k),
                          -1, &v, NULL, &e_));
    return v;
}

static int64_t count(ev_store *s)
{
    return sf_query_int(s, "SELECT count(*) FROM t");
}

START_TEST(writes_then_a_read_see_each_other_and_commit)
{
    ev_store *s = open_store();
    OK(ev_store_begin_pipelined(s, &e_));
    for (int i = 0; i < 3; i++) {
        char k[8];
        snprintf(k, sizeof(k), "k%d", i);
        OK(put(s, k, i * 10, &e_));
    }
    ck_assert_int_eq(get(s, "k2"), 20); /* the read waits for the writes */
    OK(ev_store_flush(s, &e_));
    ck_assert(!ev_store_deferred_failed(s));
    OK(ev_store_commit(s, &e_));
    ck_assert(!ev_store_in_tx(s));
    ev_store_close(s);
    s = open_store();
    ck_assert_int_eq(count(s), 3);
    ev_store_close(s);
}
END_TEST

START_TEST(changes_of_a_sent_update_waits_for_its_answer)
{
    ev_store *s = open_store();
    ev_error err = {0};
    OK(put(s, "a", 1, &e_));
    OK(ev_store_begin_pipelined(s, &e_));
    ev_stmt *st = ev_store_bind(s, &err, "UPDATE t SET v = v + 1 WHERE k = ?1", "s", "a");
    OK(ev_store_exec(st, &e_));
    ck_assert_int_eq(ev_stmt_changes(st), 1);
    st = ev_store_bind(s, &err, "UPDATE t SET v = v + 1 WHERE k = ?1", "s", "missing");
    OK(ev_store_exec(st, &e_));
    ck_assert_int_eq(ev_stmt_changes(st), 0);
    OK(ev_store_commit(s, &e_));
    ck_assert_int_eq(get(s, "a"), 2);
    ev_store_close(s);
}
END_TEST

/* A write that fails is only known later: at the next read, which returns
 * its error, and the commit fails; nothing of the transaction stays. */
START_TEST(a_failed_write_fails_the_next_read_and_the_commit)
{
    ev_store *s = open_store();
    ev_error err = {0};
    OK(ev_store_begin_pipelined(s, &e_));
    OK(put(s, "kept?", 1, &e_));
    ck_assert_int_eq(
        ev_store_exec(
            ev_store_bind(s, &err, "INSERT INTO t(k, v) VALUES(?1, NULL)", "s", "null-v"),
            &err),
        0); /* sent, not yet answered */
    ck_assert(!ev_store_deferred_failed(s));
    int64_t v = 0;
    err = (ev_error){0};
    int rc = ev_store_query_int(
        ev_store_bind(s, &err, "SELECT v FROM t WHERE k = ?1", "s", "kept?"), -1, &v,
        NULL, &err);
    ck_assert_int_eq(rc, EV_ESTORE);
    ck_assert_msg(strstr(err.text, "(constraint)") != NULL, "%s", err.text);
    ck_assert(ev_store_deferred_failed(s));
    ck_assert(!ev_store_conflict(s));
    err = (ev_error){0};
    ck_assert_int_eq(ev_store_commit(s, &err), EV_ESTORE);
    OK(ev_store_rollback(s, &e_));
    ck_assert(!ev_store_in_tx(s));
    ck_assert_int_eq(count(s), 0);
    /* the connection serves the next transaction */
    OK(ev_store_begin_pipelined(s, &e_));
    OK(put(s, "after", 7, &e_));
    OK(ev_store_commit(s, &e_));
    ck_assert_int_eq(get(s, "after"), 7);
    ev_store_close(s);
}
END_TEST

START_TEST(flush_returns_the_error_of_a_write_sent_earlier)
{
    ev_store *s = open_store();
    ev_error err = {0};
    OK(put(s, "dup", 1, &e_));
    OK(ev_store_begin_pipelined(s, &e_));
    ck_assert_int_eq(ev_store_exec(ev_store_bind(s, &err,
                                                 "UPDATE t SET v = 1 / (v - 1) "
                                                 "WHERE k = ?1",
                                                 "s", "dup"),
                                   &err),
                     0);
    OK(put(s, "x", 1, &e_));
    err = (ev_error){0};
    ck_assert_int_eq(ev_store_flush(s, &err), EV_ESTORE);
    ck_assert_msg(strstr(err.text, "division by zero") != NULL, "%s", err.text);
    err = (ev_error){0};
    ck_assert_int_eq(ev_store_flush(s, &err), EV_ESTORE); /* it stays failed */
    ck_assert_int_eq(ev_store_commit(s, &err), EV_ESTORE);
    OK(ev_store_rollback(s, &e_));
    ck_assert_int_eq(get(s, "dup"), 1);
    ck_assert_int_eq(get(s, "x"), -1);
    ev_store_close(s);
}
END_TEST

/* More unanswered writes than the pipeline holds: it syncs on its own. */
START_TEST(thousands_of_writes_in_one_transaction)
{
    ev_store *s = open_store();
    OK(ev_store_begin_pipelined(s, &e_));
    for (int i = 0; i < 3000; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        OK(put(s, k, i, &e_));
    }
    OK(ev_store_commit(s, &e_));
    ck_assert_int_eq(count(s), 3000);
    ck_assert_int_eq(get(s, "k2999"), 2999);
    ev_store_close(s);
}
END_TEST

/* Another instance changed the row after this transaction's snapshot: the
 * write sent without waiting is a conflict, known at the flush. */
START_TEST(a_lost_race_of_a_sent_write_is_a_conflict)
{
    ev_store *a = open_store();
    ev_store *b = open_store();
    OK(put(a, "row", 1, &e_));
    OK(ev_store_begin_pipelined(b, &e_));
    ck_assert_int_eq(get(b, "row"), 1); /* b's snapshot */
    OK(ev_store_begin(a, &e_));
    OK(ev_store_exec(ev_store_bind(a, &e_, "UPDATE t SET v = 2 WHERE k = ?1", "s", "row"),
                     &e_));
    OK(ev_store_commit(a, &e_));
    ev_error err = {0};
    ck_assert_int_eq(
        ev_store_exec(
            ev_store_bind(b, &err, "UPDATE t SET v = 3 WHERE k = ?1", "s", "row"), &err),
        0);
    err = (ev_error){0};
    ck_assert_int_eq(ev_store_flush(b, &err), EV_ERETRY);
    ck_assert(ev_store_conflict(b));
    ck_assert_msg(strstr(err.text, "(conflict)") != NULL, "%s", err.text);
    OK(ev_store_rollback(b, &e_));
    ck_assert_int_eq(get(a, "row"), 2);
    ev_store_close(b);
    ev_store_close(a);
}
END_TEST

/* A statement first seen inside the pipeline is prepared there too. */
START_TEST(statements_prepared_inside_the_pipeline)
{
    ev_store *s = open_store();
    OK(ev_store_begin_pipelined(s, &e_));
    OK(put(s, "p", 5, &e_));
    char sql[96];
    for (int i = 0; i < 40; i++) { /* each text is new: prepared on first use */
        snprintf(sql, sizeof(sql), "UPDATE t SET v = v + %d WHERE k = ?1", i);
        OK(ev_store_exec(ev_store_bind(s, &e_, sql, "s", "p"), &e_));
    }
    OK(ev_store_commit(s, &e_));
    ck_assert_int_eq(get(s, "p"), 5 + 39 * 40 / 2);
    ev_store_close(s);
}
END_TEST

/* The server ends the session while writes are unanswered (a restart, or
 * idle_in_transaction_session_timeout for an instance frozen past it): the
 * FATAL answer is a retry on a lost connection, never a store error, and the
 * next transaction runs on a new connection. */
START_TEST(a_session_ended_under_a_pipeline_is_a_retry_and_reconnects)
{
    ev_store *s = open_store();
    OK(ev_store_begin_pipelined(s, &e_));
    OK(put(s, "lost", 1, &e_));
    char pid[24];
    snprintf(pid, sizeof(pid), "%lld",
             (long long)sf_query_int(s, "SELECT pg_backend_pid()"));
    ck_assert_int_eq(sf_admin_query("SELECT pg_terminate_backend($1::int)::int", pid), 1);
    ev_error err = {0};
    int rc = put(s, "after", 2, &err);
    if (rc == 0)
        rc = ev_store_flush(s, &err);
    ck_assert_msg(rc == EV_ERETRY, "%d %s", rc, err.text);
    ck_assert_msg(strstr(err.text, "(connection)") != NULL, "%s", err.text);
    ck_assert(ev_store_conflict(s));
    OK(ev_store_rollback(s, &e_));
    OK(ev_store_begin_pipelined(s, &e_)); /* connects again */
    OK(put(s, "new", 3, &e_));
    OK(ev_store_commit(s, &e_));
    ck_assert_int_eq(count(s), 1);
    ev_store_close(s);
}
END_TEST

typedef struct racer {
    ev_store *s;
    int flush_rc, commit_rc;
    char why[EV_ERROR_TEXT];
} racer;

static void *serial_racer(void *arg)
{
    racer *r = arg;
    ev_error err = {0};
    ev_store_set_serial(r->s, true);
    r->flush_rc = ev_store_begin_pipelined(r->s, &err);
    if (r->flush_rc == 0)
        r->flush_rc = ev_store_exec(
            ev_store_bind(r->s, &err, "UPDATE t SET v = v + 10 WHERE k = ?1", "s", "row"),
            &err);
    if (r->flush_rc == 0)
        r->flush_rc = ev_store_flush(r->s, &err); /* waits for the other's turn */
    r->commit_rc = r->flush_rc == 0 ? ev_store_commit(r->s, &err) : -1;
    if (r->flush_rc != 0 || r->commit_rc != 0)
        ev_store_rollback(r->s, NULL);
    snprintf(r->why, sizeof(r->why), "%s", err.text);
    return NULL;
}

/* Two instances in serial mode take turns: the second waits for the first's
 * commit and then sees its row, where a plain transaction loses the race
 * (a_lost_race_of_a_sent_write_is_a_conflict). The lock ends with the turn. */
START_TEST(serial_transactions_take_turns_instead_of_conflicting)
{
    ev_store *a = open_store();
    ev_store *b = open_store();
    OK(put(a, "row", 1, &e_));
    ev_store_set_serial(a, true);
    OK(ev_store_begin_pipelined(a, &e_));
    OK(ev_store_exec(ev_store_bind(a, &e_, "UPDATE t SET v = 2 WHERE k = ?1", "s", "row"),
                     &e_));
    OK(ev_store_flush(a, &e_)); /* a holds the turn and the row */
    racer r = {.s = b};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, serial_racer, &r), 0);
    /* until b waits for its turn (an advisory lock not granted), 10 s at most */
    long waiting = 0;
    for (int i = 0; i < 1000 && waiting != 1; i++) {
        waiting = sf_admin_query("SELECT count(*) FROM pg_locks"
                                 " WHERE locktype = 'advisory' AND NOT granted",
                                 NULL);
        if (waiting != 1)
            nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    ck_assert_int_eq(waiting, 1);
    OK(ev_store_commit(a, &e_));
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_msg(r.flush_rc == 0 && r.commit_rc == 0, "flush %d commit %d: %s",
                  r.flush_rc, r.commit_rc, r.why);
    ck_assert_int_eq(get(a, "row"), 12);
    ck_assert_int_eq(
        sf_admin_query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'", NULL),
        0);
    ev_store_close(b);
    ev_store_close(a);
}
END_TEST

/* In a pipeline an inbox claim is sent blind (PostgreSQL): a duplicate fails
 * the attempt without being a race, and the careful run's claim sees it. The
 * same for an id another instance committed after this transaction began. */
START_TEST(a_blind_inbox_claim_of_a_duplicate_fails_the_attempt_not_as_a_race)
{
    ev_store *a = open_store();
    ev_store *b = open_store();
    bool pg = sf_backend == EV_STORE_POSTGRES;
    OK(ev_store_inbox_add(b, "old", 1, &e_));
    OK(ev_store_begin_pipelined(b, &e_));
    ck_assert_int_eq(get(b, "none"), -1); /* b's snapshot, on PostgreSQL */
    if (pg) { /* another instance applies "late" now (SQLite: b holds the lock) */
        OK(ev_store_begin(a, &e_));
        OK(ev_store_inbox_add(a, "late", 2, &e_));
        OK(ev_store_commit(a, &e_));
    }
    bool fresh = false;
    OK(ev_store_inbox_claim(b, "new", 3, &fresh, &e_));
    ck_assert(fresh);
    OK(ev_store_inbox_claim(b, "old", 3, &fresh, &e_));
    ck_assert(fresh == pg); /* PostgreSQL has not answered yet */
    ev_error err = {0};
    int rc = ev_store_flush(b, &err);
    if (pg) {
        ck_assert_int_eq(rc, EV_ESTORE);
        ck_assert(ev_store_deferred_failed(b));
        ck_assert(!ev_store_conflict(b));
        ck_assert_msg(strstr(err.text, "(duplicate)") != NULL, "%s", err.text);
    } else {
        ck_assert_int_eq(rc, 0);
    }
    OK(ev_store_rollback(b, &e_));
    /* the careful run asks, one claim at a time */
    OK(ev_store_begin(b, &e_));
    const char *ids[] = {"old", "new", "late"};
    const bool want[] = {false, true, !pg};
    for (int i = 0; i < 3; i++) {
        OK(ev_store_inbox_claim(b, ids[i], 4, &fresh, &e_));
        ck_assert_msg(fresh == want[i], "%s", ids[i]);
    }
    OK(ev_store_commit(b, &e_));
    int64_t n = 0;
    OK(ev_store_inbox_count(b, &n, &e_));
    ck_assert_int_eq(n, 3);
    ev_store_close(b);
    ev_store_close(a);
}
END_TEST

/* Outbox rows of a pipelined transaction (kept for its flush on PostgreSQL):
 * every byte, NULL key and headers, quotes and backslashes, in the order of
 * the calls; a read of the outbox inside the transaction sees them. */
START_TEST(outbox_rows_of_a_pipeline_keep_their_bytes_and_order)
{
    static const struct {
        const char *topic, *key, *value;
        size_t len;
        const char *headers;
    } rows[] = {
        {"orders", "o-\"1\\", "{\"a\":\"\\\"\"}", 10, "{\"t\":\"\\x00\"}"},
        {"orders", NULL, "\0bin\xff\\x", 7, NULL},
        {"pay,ments", "{o}", "", 0, "NULL"},
        {"orders", "NULL", "v", 1, ""},
    };
    ev_store *s = open_store();
    OK(ev_store_begin_pipelined(s, &e_));
    for (size_t i = 0; i < N_OF(rows); i++) {
        OK(ev_store_outbox_add(s, rows[i].topic, rows[i].key, rows[i].value, rows[i].len,
                               rows[i].headers, NULL, &e_));
        if (i == 1) {
            int64_t n = 0;
            OK(ev_store_outbox_count(s, &n, &e_)); /* sees what is kept */
            ck_assert_int_eq(n, 2);
        }
    }
    OK(ev_store_flush(s, &e_));
    OK(ev_store_commit(s, &e_));
    sf_walk w = sf_walk_of(s);
    ck_assert_uint_eq(w.n, N_OF(rows));
    for (size_t i = 0; i < N_OF(rows); i++) {
        ck_assert(i == 0 || w.rows[i].id > w.rows[i - 1].id);
        ck_assert_str_eq(w.rows[i].topic, rows[i].topic);
        ck_assert(w.rows[i].has_key == (rows[i].key != NULL));
        ck_assert_str_eq(w.rows[i].key, rows[i].key ? rows[i].key : "");
        ck_assert(w.rows[i].has_headers == (rows[i].headers != NULL));
        ck_assert_str_eq(w.rows[i].headers, rows[i].headers ? rows[i].headers : "");
        ck_assert_uint_eq(w.rows[i].len, rows[i].len);
        ck_assert_mem_eq(w.rows[i].value, rows[i].value, rows[i].len);
    }
    /* a rolled back pipeline leaves none of its kept rows behind */
    OK(ev_store_begin_pipelined(s, &e_));
    OK(ev_store_outbox_add(s, "orders", "k", "x", 1, NULL, NULL, &e_));
    bool fresh = false;
    OK(ev_store_inbox_claim(s, "gone", 1, &fresh, &e_));
    OK(ev_store_rollback(s, &e_));
    OK(ev_store_begin_pipelined(s, &e_));
    OK(ev_store_commit(s, &e_));
    int64_t n = 0;
    OK(ev_store_outbox_count(s, &n, &e_));
    ck_assert_int_eq(n, (int64_t)N_OF(rows));
    OK(ev_store_inbox_count(s, &n, &e_));
    ck_assert_int_eq(n, 0);
    ev_store_close(s);
}
END_TEST

/* Big outbox values go out before the flush; order and bytes are kept. */
typedef struct big_walk {
    size_t n;
    int64_t last_id;
    bool ok;
} big_walk;

static int big_row(void *arg, int64_t id, const char *topic, const char *key,
                   const void *value, size_t len, const char *headers_json)
{
    (void)topic;
    (void)headers_json;
    big_walk *w = arg;
    char want[8];
    snprintf(want, sizeof(want), "b%zu", w->n);
    const unsigned char *v = value;
    w->ok = w->ok && id > w->last_id && key != NULL && strcmp(key, want) == 0 &&
            len == BIG_LEN && v[0] == (unsigned char)w->n && v[len - 1] == 0xff;
    w->last_id = id;
    w->n++;
    return 0;
}

START_TEST(big_outbox_values_of_a_pipeline_keep_their_order)
{
    unsigned char *v = malloc(BIG_LEN);
    ck_assert_ptr_nonnull(v);
    memset(v, 0xff, BIG_LEN);
    ev_store *s = open_store();
    OK(ev_store_begin_pipelined(s, &e_));
    for (size_t i = 0; i < BIG_ROWS; i++) {
        char key[8];
        snprintf(key, sizeof(key), "b%zu", i);
        v[0] = (unsigned char)i;
        OK(ev_store_outbox_add(s, "big", key, v, BIG_LEN, NULL, NULL, &e_));
    }
    OK(ev_store_flush(s, &e_));
    OK(ev_store_commit(s, &e_));
    big_walk w = {.ok = true};
    OK(ev_store_outbox_each(s, 0, 0, big_row, &w, &e_));
    ck_assert_uint_eq(w.n, BIG_ROWS);
    ck_assert(w.ok);
    ev_store_close(s);
    free(v);
}
END_TEST

static const test_ref both[] = {
    T(writes_then_a_read_see_each_other_and_commit),
    T(changes_of_a_sent_update_waits_for_its_answer),
    T(thousands_of_writes_in_one_transaction),
    T(statements_prepared_inside_the_pipeline),
    T(a_blind_inbox_claim_of_a_duplicate_fails_the_attempt_not_as_a_race),
    T(outbox_rows_of_a_pipeline_keep_their_bytes_and_order),
    T(big_outbox_values_of_a_pipeline_keep_their_order),
};

static const test_ref pg_only[] = {
    T(a_failed_write_fails_the_next_read_and_the_commit),
    T(flush_returns_the_error_of_a_write_sent_earlier),
    T(a_lost_race_of_a_sent_write_is_a_conflict),
    T(serial_transactions_take_turns_instead_of_conflicting),
    T(a_session_ended_under_a_pipeline_is_a_retry_and_reconnects),
};

int main(void)
{
    return sf_run("store_pipe", both, N_OF(both), NULL, 0, pg_only, N_OF(pg_only));
}
