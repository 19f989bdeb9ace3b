/* SPDX-License-Identifier: MIT */
/* events/store: opening a store on both backends (options, runtime tables,
 * read-only), SQLite's file handling (pragmas, bad files, busy, full disk) and
 * the argument checks. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_fixture.h"

/* ---- open ---------------------------------------------------------------------- */

static const struct {
    const char *sync;
    int64_t want;
} sync_cases[] = {{NULL, 2}, {"FULL", 2}, {"NORMAL", 1}, {"normal", 1}};

START_TEST(open_creates_dir_and_sets_pragmas)
{
    ev_store_opts o = sf_base_opts();
    o.synchronous = sync_cases[_i].sync;
    ev_store *s = sf_open_opts(&o);
    struct stat sb;
    ck_assert_int_eq(stat(sf_dbpath, &sb), 0);
    ck_assert(S_ISREG(sb.st_mode));
    char mode[16];
    OK(ev_store_query_text(ev_store_stmt(s, "PRAGMA journal_mode", &e_), mode,
                           sizeof(mode), NULL, &e_));
    ck_assert_str_eq(mode, "wal");
    ck_assert_int_eq(sf_query_int(s, "PRAGMA synchronous"), sync_cases[_i].want);
    ck_assert_int_eq(sf_query_int(s, "PRAGMA foreign_keys"), 1);
    ck_assert_int_eq(sf_query_int(s, "PRAGMA busy_timeout"), 5000);
    ck_assert_int_eq(sf_query_int(s, "PRAGMA user_version"), 2);
    ck_assert(!ev_store_in_tx(s));
    ev_store_close(s);
}
END_TEST

START_TEST(open_creates_runtime_tables)
{
    static const char *const names[] = {"inbox",        "outbox",        "offsets",
                                        "timers",       "ev_migrations", "inbox_seen_at",
                                        "timers_due_at"};
    ev_store *s = sf_open_default();
    ck_assert_int_eq(ev_store_backend(s), sf_backend);
    for (size_t i = 0; i < N_OF(names); i++)
        ck_assert_msg(sf_has_object(s, names[i]), "missing %s", names[i]);
    ev_store_close(s);
}
END_TEST

#define LONG_NAME "s234567890123456789012345678901234567890123456789012345678901234"

static const struct {
    unsigned on;
    const char *url;    /* NULL = the backend's */
    const char *schema; /* NULL = the test's */
    const char *sync;
    bool empty_path;
    const char *text;
} bad_open_cases[] = {
    {ON_BOTH, "mysql://localhost/x", NULL, NULL, false, "postgresql://"},
    {ON_SQ, NULL, NULL, "OFF", false, "synchronous"},
    {ON_SQ, NULL, NULL, NULL, true, "path"},
    {ON_PG, NULL, "", NULL, false, "schema"},
    {ON_PG, NULL, LONG_NAME, NULL, false, "schema"},
};

START_TEST(open_rejects_bad_options)
{
    if ((bad_open_cases[_i].on & ON_THIS) == 0)
        return;
    ev_store_opts o = sf_base_opts();
    if (bad_open_cases[_i].url != NULL)
        o.url = bad_open_cases[_i].url;
    if (bad_open_cases[_i].schema != NULL)
        o.schema = bad_open_cases[_i].schema;
    if (bad_open_cases[_i].empty_path)
        o.path = "";
    o.synchronous = bad_open_cases[_i].sync;
    ev_store *s = NULL;
    ev_error err = {0};
    ck_assert_int_eq(ev_store_open(&s, &o, &err), EV_EINVAL);
    ck_assert_int_eq(err.code, EV_EINVAL);
    ck_assert_msg(strstr(err.text, "store:") != NULL, "%s", err.text);
    ck_assert_msg(strstr(err.text, bad_open_cases[_i].text) != NULL, "%s", err.text);
    ck_assert_ptr_null(s);
    ck_assert(!sf_store_exists()); /* nothing created */
}
END_TEST

START_TEST(open_garbage_file_is_store_error)
{
    snprintf(sf_dbpath, sizeof(sf_dbpath), "%s/garbage.db", sf_tmpdir);
    FILE *f = fopen(sf_dbpath, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 512; i++)
        fputs("this is not a database ", f);
    fclose(f);
    ev_store *s = NULL;
    ev_error err = {0};
    ev_store_opts o = sf_base_opts();
    ck_assert_int_eq(ev_store_open(&s, &o, &err), EV_ESTORE);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err.text, "not_a_database") != NULL, "%s", err.text);
}
END_TEST

START_TEST(open_under_a_file_is_io_error)
{
    char file[300];
    snprintf(file, sizeof(file), "%s/plainfile", sf_tmpdir);
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    snprintf(sf_dbpath, sizeof(sf_dbpath), "%s/plainfile/sub/svc.db", sf_tmpdir);
    ev_store *s = NULL;
    ev_error err = {0};
    ev_store_opts o = sf_base_opts();
    ck_assert_int_eq(ev_store_open(&s, &o, &err), EV_EIO);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err.text, "plainfile") != NULL, "%s", err.text);
    ck_assert_msg(strstr(err.text, "Not a directory") != NULL, "%s", err.text);
}
END_TEST

START_TEST(open_readonly_missing_is_not_found)
{
    ev_store *s = NULL;
    ev_error err = {0};
    ev_store_opts o = sf_base_opts();
    o.readonly = true;
    ck_assert_int_eq(ev_store_open(&s, &o, &err), EV_ENOTFOUND);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err.text, BY_BACKEND("no database at", "no schema")) != NULL,
                  "%s", err.text);
    ck_assert(!sf_store_exists()); /* nothing created */
}
END_TEST

START_TEST(open_readonly_reads_while_writer_runs)
{
    ev_store *w = sf_open_default();
    OK(ev_store_outbox_add(w, "t", "k", "v", 1, NULL, NULL, &e_));
    ev_store *r = NULL;
    ev_error err = {0};
    static const ev_migration m[] = {{1, "CREATE TABLE never(a BIGINT)"}};
    ev_store_opts o = sf_base_opts();
    o.readonly = true;
    o.migrations = m;
    o.n_migrations = 1;
    ck_assert_msg(ev_store_open(&r, &o, &err) == 0, "%s", err.text);
    ck_assert_int_eq(sf_count_of(r, ev_store_outbox_count), 1);
    ck_assert(!sf_has_object(r, "never"));
    int rc = ev_store_outbox_add(r, "t", "k", "v", 1, NULL, NULL, &err);
    ck_assert_int_eq(rc, EV_ESTORE);
    ck_assert_msg(strstr(err.text, "readonly") != NULL, "%s", err.text);
    ev_store_close(r);
    ev_store_close(w);
    /* and again with the writer gone (no -wal file left) */
    ck_assert_msg(ev_store_open(&r, &o, &err) == 0, "%s", err.text);
    ck_assert_int_eq(sf_count_of(r, ev_store_outbox_count), 1);
    ev_store_close(r);
}
END_TEST

START_TEST(busy_database_is_retry)
{
    ev_store *a = sf_open_default();
    ev_store_opts o = sf_base_opts();
    o.busy_timeout_ms = -1;
    ev_store *b = sf_open_opts(&o);
    ev_error err = {0};
    OK(ev_store_begin(a, &e_));
    ck_assert_int_eq(ev_store_begin(b, &err), EV_ERETRY);
    ck_assert_msg(strstr(err.text, "locked") != NULL, "%s", err.text);
    ck_assert_msg(strstr(err.text, "busy") != NULL, "%s", err.text);
    ck_assert(ev_store_conflict(b));
    OK(ev_store_commit(a, &e_));
    OK(ev_store_begin(b, &e_));
    ck_assert(!ev_store_conflict(b));
    OK(ev_store_commit(b, &e_));
    ev_store_close(b);
    ev_store_close(a);
}
END_TEST

START_TEST(full_disk_is_store_error)
{
    ev_store *s = sf_open_default();
    /* A page budget stands in for a full disk: same SQLITE_FULL path. */
    ck_assert_int_ge(sf_query_int(s, "PRAGMA max_page_count = 12"), 1);
    static char big[8192];
    memset(big, 'x', sizeof(big));
    ev_error err = {0};
    int rc = 0;
    OK(ev_store_begin(s, &e_));
    for (int i = 0; i < 64 && rc == 0; i++)
        rc = ev_store_outbox_add(s, "t", NULL, big, sizeof(big), NULL, NULL, &err);
    ck_assert_int_eq(rc, EV_ESTORE);
    ck_assert_msg(strstr(err.text, "disk_full") != NULL, "%s", err.text);
    ck_assert_msg(strstr(err.text, "full") != NULL, "%s", err.text);
    OK(ev_store_rollback(s, &e_));
    ck_assert_int_eq(sf_count_of(s, ev_store_outbox_count), 0);
    ev_store_close(s);
}
END_TEST

/* ---- argument checks ----------------------------------------------------------- */

START_TEST(null_arguments_are_einval)
{
    ev_store *s = sf_open_default();
    ev_error err = {0};
    bool b;
    int64_t n;
    size_t z;
    int got[] = {
        ev_store_open(NULL, NULL, &err),
        ev_store_inbox_seen(s, NULL, &b, &err),
        ev_store_inbox_seen(NULL, "x", &b, &err),
        ev_store_outbox_add(s, NULL, "k", "v", 1, NULL, NULL, &err),
        ev_store_outbox_add(s, "t", "k", NULL, 1, NULL, NULL, &err),
        ev_store_outbox_each(s, 0, 0, NULL, NULL, &err),
        ev_store_outbox_count(s, NULL, &err),
        ev_store_outbox_claim(s, 0, NULL, &n, &err),
        ev_store_offset_get(s, NULL, 0, &n, &err),
        ev_store_offset_set(s, "", 0, 1, &err),
        ev_store_timer_set(s, NULL, &err),
        ev_store_timer_delete(s, NULL, "k", &err),
        ev_store_timers_due(s, 0, NULL, 1, &z, &err),
        ev_store_timers_next(s, NULL, &err),
        ev_store_begin(NULL, &err),
        ev_stmt_step(NULL, &err),
    };
    for (size_t i = 0; i < N_OF(got); i++)
        ck_assert_msg(got[i] == EV_EINVAL, "case %zu -> %d", i, got[i]);
    ck_assert_ptr_null(ev_store_stmt(NULL, "SELECT 1", &err));
    ck_assert_int_eq(err.code, EV_EINVAL);
    ck_assert_ptr_null(ev_store_stmt(s, NULL, &err));
    ck_assert_int_eq(err.code, EV_EINVAL);
    ev_store_close(NULL);
    ev_store_close(s);
}
END_TEST

/* ---- suite --------------------------------------------------------------------- */

static const test_ref neutral_tests[] = {
    T(open_creates_runtime_tables),        LOOP(open_rejects_bad_options, bad_open_cases),
    T(open_readonly_missing_is_not_found), T(open_readonly_reads_while_writer_runs),
    T(null_arguments_are_einval),
};

static const test_ref sqlite_only_tests[] = {
    LOOP(open_creates_dir_and_sets_pragmas, sync_cases),
    T(open_under_a_file_is_io_error),
    T(open_garbage_file_is_store_error),
    T(busy_database_is_retry),
    T(full_disk_is_store_error),
};

int main(void)
{
    return sf_run("store_open", neutral_tests, N_OF(neutral_tests), sqlite_only_tests,
                  N_OF(sqlite_only_tests), NULL, 0);
}
