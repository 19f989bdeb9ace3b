/* SPDX-License-Identifier: MIT */
/* events/store's statements on both backends: binding and reading each type,
 * and the prepared-statement cache. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_fixture.h"

/* ---- statements ---------------------------------------------------------------- */

static const ev_migration kv_mig[] = {
    {1, "CREATE TABLE kv(k TEXT PRIMARY KEY, i BIGINT, b BLOB)",
     "CREATE TABLE kv(k TEXT PRIMARY KEY, i BIGINT, b BYTEA)"},
};

static const struct {
    const char *k;
    bool has_i;
    int64_t i;
    const char *b; /* NULL binds NULL */
    size_t len;
} kv_rows[] = {
    {"a", true, 42, "\0x\xff", 3},
    {"b", true, INT64_MIN, "", 0},
    {"c", true, INT64_MAX, "text", 4},
    {"n", false, 0, NULL, 0},
};

START_TEST(stmt_binds_and_reads_each_type)
{
    ev_store *s = sf_open_with(kv_mig, 1);
    ev_error err = {0};
    for (size_t r = 0; r < N_OF(kv_rows); r++) {
        ev_stmt *st =
            ev_store_stmt(s, "INSERT INTO kv(k, i, b) VALUES(?1, ?2, ?3)", &err);
        ck_assert_msg(st != NULL, "%s", err.text);
        ck_assert_int_eq(ev_stmt_bind_text(st, 1, kv_rows[r].k), 0);
        ck_assert_int_eq(kv_rows[r].has_i ? ev_stmt_bind_int(st, 2, kv_rows[r].i)
                                          : ev_stmt_bind_null(st, 2),
                         0);
        ck_assert_int_eq(kv_rows[r].b
                             ? ev_stmt_bind_blob(st, 3, kv_rows[r].b, kv_rows[r].len)
                             : ev_stmt_bind_null(st, 3),
                         0);
        ck_assert_msg(ev_stmt_step(st, &err) == 0, "%s", err.text);
        ck_assert_int_eq(ev_stmt_changes(st), 1);
    }
    ev_stmt *st = ev_store_stmt(s, "SELECT k, i, b FROM kv ORDER BY k", &err);
    for (size_t r = 0; r < N_OF(kv_rows); r++) {
        ck_assert_int_eq(ev_stmt_step(st, &err), 1);
        ck_assert_str_eq(ev_stmt_text(st, 0), kv_rows[r].k);
        char copy[4] = "zzz", cut[1] = "z";
        ev_stmt_text_copy(st, 0, copy, sizeof(copy));
        ck_assert_str_eq(copy, kv_rows[r].k);
        ev_stmt_text_copy(st, 0, cut, sizeof(cut)); /* cut to fit: "" */
        ck_assert_str_eq(cut, "");
        ev_stmt_text_copy(st, 1, copy, sizeof(copy)); /* NULL: "", else the digits */
        ck_assert(kv_rows[r].has_i ? copy[0] != '\0' : strcmp(copy, "") == 0);
        ck_assert(ev_stmt_is_null(st, 1) == !kv_rows[r].has_i);
        ck_assert_int_eq(ev_stmt_int(st, 1), kv_rows[r].i);
        ck_assert(ev_stmt_is_null(st, 2) == (kv_rows[r].b == NULL));
        size_t len = 99;
        const void *b = ev_stmt_blob(st, 2, &len);
        ck_assert_uint_eq(len, kv_rows[r].len);
        ck_assert(len == 0 || memcmp(b, kv_rows[r].b, len) == 0);
    }
    ck_assert_int_eq(ev_stmt_step(st, &err), 0);
    char k[8];
    bool found = false;
    OK(ev_store_query_text(
        ev_store_bind(s, &e_, "SELECT k FROM kv WHERE i = ?1", "i", (int64_t)42), k,
        sizeof(k), &found, &e_));
    ck_assert(found);
    ck_assert_str_eq(k, "a");
    OK(ev_store_query_text(
        ev_store_bind(s, &e_, "SELECT k FROM kv WHERE i = ?1", "i", (int64_t)7), k,
        sizeof(k), &found, &e_));
    ck_assert(!found);
    ck_assert_str_eq(k, "");
    st = ev_store_stmt(s, "DELETE FROM kv WHERE k <> ?1", &err);
    ck_assert_int_eq(ev_stmt_bind_text(st, 1, "n"), 0);
    OK(ev_store_exec(st, &e_));
    ck_assert_int_eq(ev_stmt_changes(st), 3);
    ev_store_close(s);
}
END_TEST

START_TEST(stmt_cache_same_sql_same_statement_reset)
{
    ev_store *s = sf_open_default();
    ev_error err = {0};
    char a[] = "SELECT CAST(?1 AS BIGINT) UNION ALL SELECT 2";
    char b[sizeof(a)];
    memcpy(b, a, sizeof(a));
    size_t before = ev_store_stmt_count(s);
    ev_stmt *st = ev_store_stmt(s, a, &err);
    ck_assert_msg(st != NULL, "%s", err.text);
    ck_assert_uint_eq(ev_store_stmt_count(s), before + 1);
    ck_assert_int_eq(ev_stmt_bind_int(st, 1, 41), 0);
    ck_assert_int_eq(ev_stmt_step(st, &err), 1);
    ck_assert_int_eq(ev_stmt_int(st, 0), 41);
    ev_stmt *again = ev_store_stmt(s, b, &err); /* other buffer, same text */
    ck_assert_ptr_eq(again, st);
    ck_assert_uint_eq(ev_store_stmt_count(s), before + 1);
    ck_assert_int_eq(ev_stmt_step(again, &err), 1); /* first row again: reset */
    ck_assert(ev_stmt_is_null(again, 0));           /* bindings cleared */
    ev_stmt_reset(again);
    ev_store_close(s);
}
END_TEST

START_TEST(stmt_cache_grows_and_keeps_statements)
{
    ev_store *s = sf_open_default();
    ev_error err = {0};
    ev_stmt *sts[200];
    char sql[64];
    for (int i = 0; i < 200; i++) {
        snprintf(sql, sizeof(sql), "SELECT %d", i);
        sts[i] = ev_store_stmt(s, sql, &err);
        ck_assert_msg(sts[i] != NULL, "%s", err.text);
    }
    for (int i = 0; i < 200; i++) {
        snprintf(sql, sizeof(sql), "SELECT %d", i);
        ck_assert_ptr_eq(ev_store_stmt(s, sql, &err), sts[i]);
        ck_assert_int_eq(ev_stmt_step(sts[i], &err), 1);
        ck_assert_int_eq(ev_stmt_int(sts[i], 0), i);
        ev_stmt_reset(sts[i]);
    }
    ev_store_close(s);
}
END_TEST

static const struct {
    const char *sql;
    int code;
    const char *sq_text;
    const char *pg_text;
} bad_sql_cases[] = {
    {"SELEC 1", EV_ESTORE, "syntax error", "syntax error"},
    {"SELECT * FROM nosuch", EV_ESTORE, "no such table", "does not exist"},
    {"SELECT 1; SELECT 2", EV_EINVAL, "one statement", "one statement"},
    {"", EV_EINVAL, "one statement", "one statement"},
};

START_TEST(stmt_cache_prepare_errors)
{
    ev_store *s = sf_open_default();
    ev_error err = {0};
    size_t before = ev_store_stmt_count(s);
    ck_assert_ptr_null(ev_store_stmt(s, bad_sql_cases[_i].sql, &err));
    ck_assert_int_eq(err.code, bad_sql_cases[_i].code);
    const char *text = BY_BACKEND(bad_sql_cases[_i].sq_text, bad_sql_cases[_i].pg_text);
    ck_assert_msg(strstr(err.text, text) != NULL, "%s", err.text);
    ck_assert_uint_eq(ev_store_stmt_count(s), before);
    ck_assert_ptr_null(ev_store_stmt(s, bad_sql_cases[_i].sql, NULL)); /* err NULL ok */
    ev_store_close(s);
}
/* ---- suite --------------------------------------------------------------------- */

static const test_ref neutral_tests[] = {
    T(stmt_binds_and_reads_each_type),
    T(stmt_cache_same_sql_same_statement_reset),
    T(stmt_cache_grows_and_keeps_statements),
    LOOP(stmt_cache_prepare_errors, bad_sql_cases),
};

int main(void)
{
    return sf_run("store_stmt", neutral_tests, N_OF(neutral_tests), NULL, 0, NULL, 0);
}
