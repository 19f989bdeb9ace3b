/* SPDX-License-Identifier: MIT */
/* events/store on PostgreSQL only: instances racing on one schema (dedup,
 * optimistic updates, timers and outbox claims), lost connections, schema
 * isolation, passwords kept out of messages. */
#include <check.h>
#include <pthread.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>

#include "store_fixture.h"

/* ---- PostgreSQL: instances racing on one schema -------------------------------- */

START_TEST(inbox_add_of_id_another_instance_committed_is_conflict)
{
    ev_store *a = sf_open_default();
    ev_store *b = sf_open_default();
    OK(ev_store_begin(a, &e_));
    OK(ev_store_begin(b, &e_));
    ck_assert(!sf_seen(b, "e1")); /* b's snapshot starts here */
    OK(ev_store_inbox_add(a, "e1", 1, &e_));
    OK(ev_store_commit(a, &e_));
    ev_error err = {0};
    ck_assert_int_eq(ev_store_inbox_add(b, "e1", 2, &err), EV_ERETRY);
    ck_assert_msg(strstr(err.text, "conflict") != NULL, "%s", err.text);
    ck_assert(ev_store_conflict(b));
    ck_assert(!ev_store_conflict(a));
    OK(ev_store_rollback(b, &e_));
    OK(ev_store_begin(b, &e_));
    ck_assert(!ev_store_conflict(b));
    ck_assert(sf_seen(b, "e1"));
    OK(ev_store_commit(b, &e_));
    ck_assert_int_eq(sf_query_int(b, "SELECT seen_at FROM inbox WHERE event_id='e1'"), 1);
    ev_store_close(b);
    ev_store_close(a);
}
END_TEST

/* The server ends the session in the middle of a transaction (a restart, or
 * idle_in_transaction_session_timeout for a frozen instance): the failed
 * statement is a retry, and the next transaction runs on a new connection. */
START_TEST(lost_connection_is_a_retry_and_reconnects)
{
    ev_store *a = sf_open_default();
    OK(ev_store_begin(a, &e_));
    OK(ev_store_inbox_add(a, "e1", 1, &e_));
    char pid[24];
    snprintf(pid, sizeof(pid), "%lld",
             (long long)sf_query_int(a, "SELECT pg_backend_pid()"));
    ck_assert_int_eq(sf_admin_query("SELECT pg_terminate_backend($1::int)::int", pid), 1);
    ev_error err = {0};
    ck_assert_int_eq(ev_store_inbox_add(a, "e2", 2, &err), EV_ERETRY);
    ck_assert_msg(strstr(err.text, "(connection)") != NULL, "%s", err.text);
    ck_assert(ev_store_conflict(a));
    OK(ev_store_rollback(a, &e_));
    OK(ev_store_begin(a, &e_)); /* connects again */
    ck_assert(!ev_store_conflict(a));
    ck_assert(!sf_seen(a, "e1")); /* the lost transaction left nothing */
    OK(ev_store_inbox_add(a, "e3", 3, &e_));
    OK(ev_store_commit(a, &e_));
    OK(ev_store_begin(a, &e_));
    ck_assert(sf_seen(a, "e3"));
    OK(ev_store_commit(a, &e_));
    ev_store_close(a);
}
END_TEST

static const ev_migration acct_mig[] = {
    {1, "CREATE TABLE acct(id BIGINT PRIMARY KEY, bal BIGINT NOT NULL);"
        "INSERT INTO acct VALUES(1, 100);"},
};

static int set_balance(ev_store *s, int64_t bal, ev_error *err)
{
    return ev_store_exec(
        ev_store_bind(s, err, "UPDATE acct SET bal = ?1 WHERE id = 1", "i", bal), err);
}

START_TEST(update_of_row_changed_since_read_is_conflict)
{
    ev_store *a = sf_open_with(acct_mig, 1);
    ev_store *b = sf_open_with(acct_mig, 1);
    const char *read = "SELECT bal FROM acct WHERE id = 1";
    OK(ev_store_begin(a, &e_));
    OK(ev_store_begin(b, &e_));
    int64_t bal_a = sf_query_int(a, read), bal_b = sf_query_int(b, read);
    OK(set_balance(a, bal_a + 10, &e_));
    OK(ev_store_commit(a, &e_));
    ev_error err = {0};
    ck_assert_int_eq(set_balance(b, bal_b - 30, &err), EV_ERETRY);
    ck_assert(ev_store_conflict(b));
    OK(ev_store_rollback(b, &e_));
    OK(ev_store_begin(b, &e_)); /* the retry reads a's write */
    bal_b = sf_query_int(b, read);
    ck_assert_int_eq(bal_b, 110);
    OK(set_balance(b, bal_b - 30, &e_));
    OK(ev_store_commit(b, &e_));
    ck_assert_int_eq(sf_query_int(a, read), 80);
    ev_store_close(b);
    ev_store_close(a);
}
END_TEST

START_TEST(timers_due_skips_timers_another_instance_holds)
{
    ev_store *a = sf_open_default();
    ev_store *b = sf_open_default();
    ev_timer t = sf_timer("o-1", "timeout", 1000);
    OK(ev_store_timer_set(a, &t, &e_));
    ev_timer out[2];
    OK(ev_store_begin(a, &e_));
    OK(ev_store_begin(b, &e_));
    ck_assert_uint_eq(sf_due(a, 5000, out, 2), 1); /* a holds the row */
    ck_assert_uint_eq(sf_due(b, 5000, out, 2), 0);
    OK(ev_store_rollback(a, &e_)); /* a died before firing: b gets it */
    ck_assert_uint_eq(sf_due(b, 5000, out, 2), 1);
    ck_assert_str_eq(out[0].key, "o-1");
    OK(ev_store_commit(b, &e_));
    ev_store_close(b);
    ev_store_close(a);
}
END_TEST

START_TEST(outbox_walk_sees_own_rows_until_others_claimed)
{
    ev_store *a = sf_open_owner("a");
    ev_store *b = sf_open_owner("b");
    int64_t ids[4];
    OK(ev_store_outbox_add(a, "t", "a1", "1", 1, NULL, &ids[0], &e_));
    OK(ev_store_outbox_add(b, "t", "b1", "2", 1, NULL, &ids[1], &e_));
    OK(ev_store_outbox_add(a, "t", "a2", "3", 1, NULL, &ids[2], &e_));
    OK(ev_store_outbox_add(b, "t", "b2", "4", 1, NULL, &ids[3], &e_));
    sf_walk wa = sf_walk_of(a), wb = sf_walk_of(b);
    ck_assert_uint_eq(wa.n, 2);
    ck_assert_int_eq(wa.rows[0].id, ids[0]);
    ck_assert_int_eq(wa.rows[1].id, ids[2]);
    ck_assert_uint_eq(wb.n, 2);
    ck_assert_int_eq(wb.rows[0].id, ids[1]);
    ck_assert_int_eq(wb.rows[1].id, ids[3]);
    int64_t claimed = -1, min_id = -1;
    OK(ev_store_outbox_claim(b, sf_now_ms() + 1000, &claimed, &min_id, &e_));
    ck_assert_int_eq(claimed, 2);
    ck_assert_int_eq(min_id, ids[0]);
    ck_assert(!ev_store_in_tx(b));
    wb = sf_walk_of(b);
    ck_assert_uint_eq(wb.n, 4);
    for (size_t i = 0; i < 4; i++)
        ck_assert_int_eq(wb.rows[i].id, ids[i]);
    ck_assert_uint_eq(sf_walk_of(a).n, 0);
    OK(ev_store_outbox_claim(b, sf_now_ms() + 1000, &claimed, &min_id, &e_));
    ck_assert_int_eq(claimed, 0);
    ck_assert_int_eq(min_id, INT64_MAX);
    ev_store_close(b);
    ev_store_close(a);
}
END_TEST

/* The relay's read of the outbox is planned on every run (EV_SQL_REPLAN), not
 * by its prepared statement: a generic plan made while the outbox was empty
 * scans and sorts it, which once it has churned reads every dead row. */
START_TEST(relay_read_is_planned_on_every_run)
{
    ev_store *a = sf_open_owner("a");
    for (int i = 0; i < 10; i++)
        (void)sf_walk_of(a);
    int64_t runs = -1;
    OK(ev_store_query_int(
        ev_store_stmt(a,
                      "SELECT coalesce(sum(generic_plans + custom_plans),"
                      " 0) FROM pg_prepared_statements WHERE statement"
                      " LIKE '/* replanned */ SELECT id%'",
                      &e_),
        -1, &runs, NULL, &e_));
    ck_assert_int_eq(runs, 0);
    int64_t n = -1;
    OK(ev_store_outbox_count(a, &n, &e_));
    OK(ev_store_outbox_count(a, &n, &e_));
    OK(ev_store_query_int(
        ev_store_stmt(a,
                      "SELECT coalesce(sum(generic_plans + custom_plans),"
                      " 0) FROM pg_prepared_statements WHERE statement"
                      " = 'SELECT count(*) FROM outbox'",
                      &e_),
        -1, &runs, NULL, &e_));
    ck_assert_int_eq(runs, 2); /* the others run their prepared plan */
    ev_store_close(a);
}
END_TEST

START_TEST(schemas_are_isolated)
{
    static const ev_migration m[] = {{1, "CREATE TABLE only_x(a BIGINT)"}};
    ev_store *x = sf_open_with(m, 1);
    OK(ev_store_outbox_add(x, "t", "k", "v", 1, NULL, NULL, &e_));
    OK(ev_store_inbox_add(x, "e1", 1, &e_));
    char other[64];
    sf_new_schema(other, sizeof(other));
    ev_store_opts o = sf_base_opts();
    o.schema = other;
    ev_store *y = sf_open_opts(&o);
    ck_assert(!sf_has_object(y, "only_x"));
    ev_error err = {0};
    ck_assert_ptr_null(ev_store_stmt(y, "SELECT count(*) FROM only_x", &err));
    ck_assert_int_eq(err.code, EV_ESTORE);
    ck_assert_msg(strstr(err.text, "does not exist") != NULL, "%s", err.text);
    ck_assert_int_eq(sf_count_of(y, ev_store_outbox_count), 0);
    ck_assert(!sf_seen(y, "e1"));
    ck_assert(sf_has_object(x, "only_x"));
    ck_assert_int_eq(sf_count_of(x, ev_store_outbox_count), 1);
    ev_store_close(y);
    ev_store_close(x);
}
END_TEST

static const char *const password_urls[] = {
    "postgresql://choreo:s3cretpw@127.0.0.1:1/choreo", /* nothing listens */
    "postgresql://choreo:s3cretpw@[::1",               /* malformed */
    "postgres://choreo:s3cretpw@127.0.0.1:1/choreo?sslmode=bogus",
};

START_TEST(connect_error_never_shows_password)
{
    ev_store *s = NULL;
    ev_error err = {0};
    ev_store_opts o = {.url = password_urls[_i], .schema = sf_schema};
    ck_assert_int_eq(ev_store_open(&s, &o, &err), EV_ESTORE);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err.text, "connect") != NULL, "%s", err.text);
    ck_assert_msg(strstr(err.text, "s3cretpw") == NULL, "%s", err.text);
}
END_TEST

/* ---- suite --------------------------------------------------------------------- */

/* An instance starting while another's batch holds a table its setup locks
 * (CREATE INDEX IF NOT EXISTS) and then waits for one the setup holds: the
 * server ends the deadlock by failing the setup, which runs again and opens. */
typedef struct opener {
    ev_store *s;
    int rc;
    ev_error err;
} opener;

static void *open_in_thread(void *arg)
{
    opener *o = arg;
    ev_store_opts opts = sf_base_opts();
    o->rc = ev_store_open(&o->s, &opts, &o->err);
    return NULL;
}

START_TEST(setup_that_loses_a_deadlock_runs_again)
{
    ev_store *a = sf_open_default();
    OK(ev_store_begin(a, &e_));
    OK(ev_store_timer_set(a, &(ev_timer){.key = "k", .kind = "t", .due_at = 1}, &e_));
    opener o = {0};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, open_in_thread, &o), 0);
    /* the setup waits for the timers table a holds */
    int64_t waiting = 0;
    for (int i = 0; i < 200 && waiting == 0; i++) {
        waiting = sf_admin_query("SELECT count(*) FROM pg_locks WHERE NOT granted", NULL);
        if (waiting == 0)
            usleep(10 * 1000);
    }
    ck_assert_int_eq(waiting, 1);
    /* a now waits for the inbox the setup holds: a deadlock, the setup loses */
    OK(ev_store_inbox_add(a, "e1", 1, &e_));
    OK(ev_store_commit(a, &e_));
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_msg(o.rc == 0, "open: %s", o.err.text);
    ev_store_close(o.s);
    ev_store_close(a);
}
END_TEST

static const test_ref pg_only_tests[] = {
    T(inbox_add_of_id_another_instance_committed_is_conflict),
    T(lost_connection_is_a_retry_and_reconnects),
    T(update_of_row_changed_since_read_is_conflict),
    T(timers_due_skips_timers_another_instance_holds),
    T(outbox_walk_sees_own_rows_until_others_claimed),
    T(relay_read_is_planned_on_every_run),
    T(schemas_are_isolated),
    T(setup_that_loses_a_deadlock_runs_again),
    LOOP(connect_error_never_shows_password, password_urls),
};

int main(void)
{
    return sf_run("store_pg", NULL, 0, NULL, 0, pg_only_tests, N_OF(pg_only_tests));
}
