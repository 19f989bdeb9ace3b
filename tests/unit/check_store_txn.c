/* SPDX-License-Identifier: MIT */
/* events/store on both backends: transactions, savepoints and persistence
 * across reopening; migrations (order, failure, PostgreSQL variants). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_fixture.h"

/* ---- transactions and persistence ---------------------------------------------- */

static void write_one_of_each(ev_store *s, const char *tag)
{
    char id[32];
    snprintf(id, sizeof(id), "ev-%s", tag);
    OK(ev_store_inbox_add(s, id, 1, &e_));
    OK(ev_store_outbox_add(s, "orders", tag, tag, strlen(tag), NULL, NULL, &e_));
    OK(ev_store_offset_set(s, tag, 0, 42, &e_));
    ev_timer t = sf_timer(tag, "timeout", 5000);
    OK(ev_store_timer_set(s, &t, &e_));
}

static bool has_one_of_each(ev_store *s, const char *tag)
{
    char id[32];
    snprintf(id, sizeof(id), "ev-%s", tag);
    bool found = false;
    OK(ev_store_timer_get(s, tag, "timeout", NULL, &found, &e_));
    bool in = sf_seen(s, id);
    bool off = sf_offset_of(s, tag, 0) == 42;
    ck_assert(in == off && off == found);
    return in;
}

START_TEST(everything_survives_close_and_reopen)
{
    ev_store *s = sf_open_default();
    OK(ev_store_begin(s, &e_));
    ck_assert(ev_store_in_tx(s));
    write_one_of_each(s, "a");
    OK(ev_store_commit(s, &e_));
    write_one_of_each(s, "b"); /* autocommit */
    ev_store_close(s);
    s = sf_open_default();
    ck_assert(has_one_of_each(s, "a"));
    ck_assert(has_one_of_each(s, "b"));
    ck_assert_int_eq(sf_count_of(s, ev_store_outbox_count), 2);
    ck_assert_int_eq(sf_count_of(s, ev_store_timers_count), 2);
    ev_timer t;
    bool found = false;
    OK(ev_store_timer_get(s, "a", "timeout", &t, &found, &e_));
    ck_assert(found);
    ck_assert_int_eq(t.due_at, 5000);
    ck_assert_str_eq(t.correlationid, "corr-a");
    ck_assert_str_eq(t.causationid, "cause-a");
    ev_store_close(s);
}
END_TEST

START_TEST(rollback_leaves_nothing)
{
    ev_store *s = sf_open_default();
    OK(ev_store_begin(s, &e_));
    write_one_of_each(s, "a");
    OK(ev_store_rollback(s, &e_));
    ck_assert(!ev_store_in_tx(s));
    OK(ev_store_rollback(s, &e_)); /* none open: still 0 */
    ck_assert(!has_one_of_each(s, "a"));
    ck_assert_int_eq(sf_count_of(s, ev_store_outbox_count), 0);
    ck_assert_int_eq(sf_count_of(s, ev_store_timers_count), 0);
    ev_store_close(s);
    s = sf_open_default();
    ck_assert(!has_one_of_each(s, "a"));
    ev_store_close(s);
}
END_TEST

START_TEST(savepoint_rollback_to_undoes_inner_part_only)
{
    ev_store *s = sf_open_default();
    OK(ev_store_begin(s, &e_));
    write_one_of_each(s, "outer");
    OK(ev_store_savepoint(s, &e_));
    write_one_of_each(s, "inner");
    OK(ev_store_rollback_to(s, &e_));
    ck_assert(ev_store_in_tx(s));
    OK(ev_store_savepoint(s, &e_));
    write_one_of_each(s, "kept");
    OK(ev_store_release(s, &e_));
    write_one_of_each(s, "after");
    OK(ev_store_commit(s, &e_));
    ev_store_close(s);
    s = sf_open_default();
    ck_assert(has_one_of_each(s, "outer"));
    ck_assert(!has_one_of_each(s, "inner"));
    ck_assert(has_one_of_each(s, "kept"));
    ck_assert(has_one_of_each(s, "after"));
    ev_store_close(s);
}
END_TEST

START_TEST(rollback_to_ends_the_savepoint)
{
    ev_store *s = sf_open_default();
    OK(ev_store_begin(s, &e_));
    OK(ev_store_savepoint(s, &e_));
    OK(ev_store_rollback_to(s, &e_));
    ev_error err = {0};
    ck_assert_int_eq(ev_store_release(s, &err), EV_ESTORE); /* nothing left to end */
    ck_assert_msg(strstr(err.text, BY_BACKEND("no such savepoint", "does not exist")),
                  "%s", err.text);
    OK(ev_store_rollback(s, &e_));
    ck_assert_int_eq(ev_store_release(s, &err), EV_ESTORE); /* no transaction */
    ck_assert_msg(strstr(err.text, BY_BACKEND("no such savepoint", "transaction block")),
                  "%s", err.text);
    ev_store_close(s);
}
END_TEST

/* ---- migrations ---------------------------------------------------------------- */

static const ev_migration mig[] = {
    {1, "CREATE TABLE orders(id TEXT PRIMARY KEY, state TEXT NOT NULL);"},
    {2, "INSERT INTO orders VALUES('seed', 'new');"},
    {3, "ALTER TABLE orders ADD COLUMN total BIGINT NOT NULL DEFAULT 0;"},
    {4, "CREATE TABLE half(a BIGINT); INSERT INTO nosuch VALUES(1);"},
    {5, "CREATE TABL broken(a BIGINT);"},
};

START_TEST(migrations_apply_once_and_in_order)
{
    ev_store *s = sf_open_with(mig, 2);
    ck_assert_int_eq(sf_query_int(s, "SELECT max(version) FROM ev_migrations"), 2);
    ev_store_close(s);
    s = sf_open_with(mig, 2); /* nothing new: the seed row is not inserted twice */
    ck_assert_int_eq(sf_query_int(s, "SELECT count(*) FROM orders"), 1);
    ck_assert_int_eq(sf_query_int(s, "SELECT count(*) FROM ev_migrations"), 2);
    ev_store_close(s);
    s = sf_open_with(mig, 3);
    ck_assert_int_eq(sf_query_int(s, "SELECT max(version) FROM ev_migrations"), 3);
    ck_assert_int_eq(sf_query_int(s, "SELECT total FROM orders WHERE id='seed'"), 0);
    ck_assert_int_eq(sf_query_int(s, "SELECT count(*) FROM orders"), 1);
    ev_store_close(s);
}
END_TEST

START_TEST(migration_pg_sql_replaces_sql_on_postgresql)
{
    static const ev_migration m[] = {
        {1, "CREATE TABLE dialect(v TEXT); INSERT INTO dialect VALUES('sqlite');",
         "CREATE TABLE dialect(v TEXT); INSERT INTO dialect VALUES('postgresql');"},
    };
    ev_store *s = sf_open_with(m, 1);
    char v[16];
    OK(ev_store_query_text(ev_store_stmt(s, "SELECT v FROM dialect", &e_), v, sizeof(v),
                           NULL, &e_));
    ck_assert_str_eq(v, BY_BACKEND("sqlite", "postgresql"));
    ev_store_close(s);
}
END_TEST

static const struct {
    size_t upto;
    const char *sq_text;
    const char *pg_text;
} bad_mig_cases[] = {
    {4, "no such table: nosuch", "\"nosuch\" does not exist"},
    {5, "syntax error", "syntax error"},
};

START_TEST(failing_migration_keeps_previous_version)
{
    ev_store_close(sf_open_with(mig, 3));
    ev_store *s = NULL;
    ev_error err = {0};
    ev_store_opts o = sf_base_opts();
    o.migrations = mig;
    if (bad_mig_cases[_i].upto == 5) { /* skip 4, fail on 5 */
        static const ev_migration m[] = {mig[0], mig[1], mig[2], mig[4]};
        o.migrations = m;
        o.n_migrations = 4;
    } else {
        o.n_migrations = bad_mig_cases[_i].upto;
    }
    ck_assert_int_eq(ev_store_open(&s, &o, &err), EV_ESTORE);
    ck_assert_ptr_null(s);
    const char *text = BY_BACKEND(bad_mig_cases[_i].sq_text, bad_mig_cases[_i].pg_text);
    ck_assert_msg(strstr(err.text, text) != NULL, "%s", err.text);
    ck_assert_msg(strstr(err.text, "migration") != NULL, "%s", err.text);
    s = sf_open_with(mig, 3);
    ck_assert_int_eq(sf_query_int(s, "SELECT max(version) FROM ev_migrations"), 3);
    ck_assert(!sf_has_object(s, "half"));
    ev_store_close(s);
}
END_TEST

START_TEST(migrations_bad_order_or_newer_db_rejected)
{
    static const ev_migration unordered[] = {{2, "SELECT 1"}, {1, "SELECT 1"}};
    static const ev_migration zero[] = {{0, "SELECT 1"}};
    ev_store *s = NULL;
    ev_error err = {0};
    ev_store_opts o = sf_base_opts();
    o.migrations = unordered;
    o.n_migrations = 2;
    ck_assert_int_eq(ev_store_open(&s, &o, &err), EV_EINVAL);
    o.migrations = zero;
    o.n_migrations = 1;
    ck_assert_int_eq(ev_store_open(&s, &o, &err), EV_EINVAL);
    ev_store_close(sf_open_with(mig, 3));
    o.migrations = mig;
    o.n_migrations = 2;
    ck_assert_int_eq(ev_store_open(&s, &o, &err), EV_ESTORE);
    ck_assert_msg(strstr(err.text, "newer") != NULL, "%s", err.text);
    ck_assert_ptr_null(s);
}
END_TEST

/* ---- suite --------------------------------------------------------------------- */

static const test_ref neutral_tests[] = {
    T(everything_survives_close_and_reopen),
    T(rollback_leaves_nothing),
    T(savepoint_rollback_to_undoes_inner_part_only),
    T(rollback_to_ends_the_savepoint),
    T(migrations_apply_once_and_in_order),
    T(migration_pg_sql_replaces_sql_on_postgresql),
    LOOP(failing_migration_keeps_previous_version, bad_mig_cases),
    T(migrations_bad_order_or_newer_db_rejected),
};

int main(void)
{
    return sf_run("store_txn", neutral_tests, N_OF(neutral_tests), NULL, 0, NULL, 0);
}
