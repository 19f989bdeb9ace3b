/* SPDX-License-Identifier: MIT */
/* Unit tests of events/store: WAL setup, runtime tables, migrations, dedup,
 * outbox, offsets, timers, transactions, statement cache and error paths. */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"

static char basedir[64]; /* made and removed by the parent, even after a failure */
static char tmpdir[128]; /* one per test, inside basedir */
static char dbpath[256];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void setup_base(void)
{
    snprintf(basedir, sizeof(basedir), "/tmp/check_store.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(basedir));
}

static void teardown_base(void)
{
    nftw(basedir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "%s/t.XXXXXX", basedir);
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(dbpath, sizeof(dbpath), "%s/data/orders/svc.db", tmpdir);
}

static void teardown(void)
{
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static ev_store *open_with(const ev_migration *m, size_t n)
{
    ev_store *s = NULL;
    ev_error err = {0};
    ev_store_opts o = {.path = dbpath, .migrations = m, .n_migrations = n};
    int rc = ev_store_open(&s, &o, &err);
    ck_assert_msg(rc == 0, "open: %s", err.text);
    return s;
}

static ev_store *open_default(void)
{
    return open_with(NULL, 0);
}

/* One integer from a query (PRAGMA or SELECT) through the statement cache. */
static int64_t query_int(ev_store *s, const char *sql)
{
    ev_error err = {0};
    sqlite3_stmt *st = ev_store_stmt(s, sql, &err);
    ck_assert_msg(st != NULL, "%s: %s", sql, err.text);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return v;
}

static int64_t count_of(ev_store *s, int (*fn)(ev_store *, int64_t *, ev_error *))
{
    int64_t n = -1;
    ev_error err = {0};
    ck_assert_msg(fn(s, &n, &err) == 0, "%s", err.text);
    return n;
}

static bool seen(ev_store *s, const char *id)
{
    bool b = false;
    ev_error err = {0};
    ck_assert_msg(ev_store_inbox_seen(s, id, &b, &err) == 0, "%s", err.text);
    return b;
}

static int64_t offset_of(ev_store *s, const char *topic, int32_t part)
{
    int64_t next = -2;
    ev_error err = {0};
    ck_assert_msg(ev_store_offset_get(s, topic, part, &next, &err) == 0, "%s", err.text);
    return next;
}

static ev_timer timer(const char *key, const char *kind, int64_t due)
{
    ev_timer t = {.due_at = due};
    snprintf(t.key, sizeof(t.key), "%s", key);
    snprintf(t.kind, sizeof(t.kind), "%s", kind);
    snprintf(t.correlationid, sizeof(t.correlationid), "corr-%s", key);
    snprintf(t.causationid, sizeof(t.causationid), "cause-%s", key);
    return t;
}

#define OK(call)                                                                         \
    do {                                                                                 \
        ev_error e_ = {0};                                                               \
        int rc_ = (call);                                                                \
        ck_assert_msg(rc_ == 0, "%s -> %d %s", #call, rc_, e_.text);                     \
    } while (0)
/* Calls use `&e_` as their error record. */

/* ---- open ------------------------------------------------------------------------- */

static const struct {
    const char *sync;
    int64_t want;
} sync_cases[] = {{NULL, 2}, {"FULL", 2}, {"NORMAL", 1}, {"normal", 1}};

START_TEST(open_creates_dir_and_sets_pragmas)
{
    ev_store *s = NULL;
    ev_error err = {0};
    ev_store_opts o = {.path = dbpath, .synchronous = sync_cases[_i].sync};
    ck_assert_msg(ev_store_open(&s, &o, &err) == 0, "%s", err.text);
    struct stat sb;
    ck_assert_int_eq(stat(dbpath, &sb), 0);
    ck_assert(S_ISREG(sb.st_mode));
    sqlite3_stmt *st = ev_store_stmt(s, "PRAGMA journal_mode", &err);
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_reset(st);
    ck_assert_int_eq(query_int(s, "PRAGMA synchronous"), sync_cases[_i].want);
    ck_assert_int_eq(query_int(s, "PRAGMA foreign_keys"), 1);
    ck_assert_int_eq(query_int(s, "PRAGMA busy_timeout"), 5000);
    ck_assert_int_eq(query_int(s, "PRAGMA user_version"), 1);
    ck_assert(!ev_store_in_tx(s));
    ev_store_close(s);
}
END_TEST

START_TEST(open_creates_runtime_tables)
{
    static const char *const names[] = {"inbox",        "outbox",        "offsets",
                                        "timers",       "ev_migrations", "inbox_seen_at",
                                        "timers_due_at"};
    ev_store *s = open_default();
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        ev_error err = {0};
        sqlite3_stmt *st =
            ev_store_stmt(s, "SELECT count(*) FROM sqlite_master WHERE name = ?", &err);
        ck_assert_ptr_nonnull(st);
        sqlite3_bind_text(st, 1, names[i], -1, SQLITE_STATIC);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
        ck_assert_msg(sqlite3_column_int(st, 0) == 1, "missing %s", names[i]);
        sqlite3_reset(st);
    }
    ev_store_close(s);
}
END_TEST

static const struct {
    bool empty_path;
    const char *sync;
    int want;
} bad_open_cases[] = {
    {false, "OFF", EV_EINVAL},
    {true, NULL, EV_EINVAL},
};

START_TEST(open_rejects_bad_options)
{
    ev_store *s = NULL;
    ev_error err = {0};
    ev_store_opts o = {.path = bad_open_cases[_i].empty_path ? "" : dbpath,
                       .synchronous = bad_open_cases[_i].sync};
    ck_assert_int_eq(ev_store_open(&s, &o, &err), bad_open_cases[_i].want);
    ck_assert_int_eq(err.code, bad_open_cases[_i].want);
    ck_assert_msg(strstr(err.text, "store:") != NULL, "%s", err.text);
    ck_assert_ptr_null(s);
    struct stat sb;
    ck_assert_int_ne(stat(dbpath, &sb), 0); /* nothing created */
}
END_TEST

START_TEST(open_garbage_file_is_store_error)
{
    snprintf(dbpath, sizeof(dbpath), "%s/garbage.db", tmpdir);
    FILE *f = fopen(dbpath, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 512; i++)
        fputs("this is not a database ", f);
    fclose(f);
    ev_store *s = NULL;
    ev_error err = {0};
    ev_store_opts o = {.path = dbpath};
    ck_assert_int_eq(ev_store_open(&s, &o, &err), EV_ESTORE);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err.text, "not_a_database") != NULL, "%s", err.text);
}
END_TEST

START_TEST(open_under_a_file_is_io_error)
{
    char file[300];
    snprintf(file, sizeof(file), "%s/plainfile", tmpdir);
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    snprintf(dbpath, sizeof(dbpath), "%s/plainfile/sub/svc.db", tmpdir);
    ev_store *s = NULL;
    ev_error err = {0};
    ev_store_opts o = {.path = dbpath};
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
    ev_store_opts o = {.path = dbpath, .readonly = true};
    ck_assert_int_eq(ev_store_open(&s, &o, &err), EV_ENOTFOUND);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err.text, "no database at") != NULL, "%s", err.text);
    struct stat sb;
    ck_assert_int_ne(stat(dbpath, &sb), 0); /* nothing created */
}
END_TEST

START_TEST(open_readonly_reads_while_writer_runs)
{
    ev_store *w = open_default();
    OK(ev_store_outbox_add(w, "t", "k", "v", 1, NULL, NULL, &e_));
    ev_store *r = NULL;
    ev_error err = {0};
    static const ev_migration m[] = {{1, "CREATE TABLE never(a)"}};
    ev_store_opts o = {
        .path = dbpath, .readonly = true, .migrations = m, .n_migrations = 1};
    ck_assert_msg(ev_store_open(&r, &o, &err) == 0, "%s", err.text);
    ck_assert_int_eq(count_of(r, ev_store_outbox_count), 1);
    ck_assert_int_eq(
        query_int(r, "SELECT count(*) FROM sqlite_master WHERE name='never'"), 0);
    int rc = ev_store_outbox_add(r, "t", "k", "v", 1, NULL, NULL, &err);
    ck_assert_int_eq(rc, EV_ESTORE);
    ck_assert_msg(strstr(err.text, "readonly") != NULL, "%s", err.text);
    ev_store_close(r);
    ev_store_close(w);
    /* and again with the writer gone (no -wal file left) */
    ck_assert_msg(ev_store_open(&r, &o, &err) == 0, "%s", err.text);
    ck_assert_int_eq(count_of(r, ev_store_outbox_count), 1);
    ev_store_close(r);
}
END_TEST

/* ---- inbox ------------------------------------------------------------------------ */

START_TEST(inbox_dedups_and_add_is_idempotent)
{
    ev_store *s = open_default();
    ck_assert(!seen(s, "e1"));
    OK(ev_store_inbox_add(s, "e1", 100, &e_));
    ck_assert(seen(s, "e1"));
    ck_assert(!seen(s, "e2"));
    OK(ev_store_inbox_add(s, "e1", 999, &e_)); /* no-op, first seen_at kept */
    ck_assert_int_eq(count_of(s, ev_store_inbox_count), 1);
    ck_assert_int_eq(query_int(s, "SELECT seen_at FROM inbox WHERE event_id='e1'"), 100);
    ev_error err = {0};
    ck_assert_int_eq(ev_store_inbox_add(s, "", 1, &err), EV_EINVAL);
    ck_assert_int_eq(ev_store_inbox_add(s, NULL, 1, &err), EV_EINVAL);
    ev_store_close(s);
}
END_TEST

START_TEST(inbox_prune_removes_old_rows_only)
{
    ev_store *s = open_default();
    OK(ev_store_inbox_add(s, "a", 100, &e_));
    OK(ev_store_inbox_add(s, "b", 200, &e_));
    OK(ev_store_inbox_add(s, "c", 300, &e_));
    int64_t removed = -1;
    OK(ev_store_inbox_prune_n(s, 200, &removed, &e_));
    ck_assert_int_eq(removed, 1);
    ck_assert(!seen(s, "a"));
    ck_assert(seen(s, "b"));
    ck_assert(seen(s, "c"));
    OK(ev_store_inbox_prune(s, 301, &e_));
    ck_assert_int_eq(count_of(s, ev_store_inbox_count), 0);
    ev_store_close(s);
}
END_TEST

/* ---- outbox ----------------------------------------------------------------------- */

typedef struct row {
    int64_t id;
    char topic[32];
    char key[32];
    bool has_key;
    char value[32];
    size_t len;
    char headers[64];
    bool has_headers;
} row;

typedef struct walk {
    row rows[16];
    size_t n;
    int stop_after; /* return 7 after this many rows; 0 = never */
    ev_store *del;  /* delete each row while walking */
} walk;

static int collect(void *arg, int64_t id, const char *topic, const char *key,
                   const void *value, size_t len, const char *headers_json)
{
    walk *w = arg;
    ck_assert_ptr_nonnull(value);
    ck_assert_uint_lt(w->n, 16);
    row *r = &w->rows[w->n++];
    r->id = id;
    snprintf(r->topic, sizeof(r->topic), "%s", topic);
    r->has_key = key != NULL;
    snprintf(r->key, sizeof(r->key), "%s", key != NULL ? key : "");
    ck_assert_uint_lt(len, sizeof(r->value));
    memcpy(r->value, value, len);
    r->len = len;
    r->has_headers = headers_json != NULL;
    snprintf(r->headers, sizeof(r->headers), "%s", headers_json ? headers_json : "");
    if (w->del != NULL)
        OK(ev_store_outbox_delete(w->del, id, &e_));
    return w->stop_after != 0 && (int)w->n >= w->stop_after ? 7 : 0;
}

static const struct {
    const char *topic;
    const char *key;
    const char *value;
    size_t len;
    const char *headers;
} outbox_rows[] = {
    {"orders", "o-1", "{\"a\":1}", 7, "{\"traceparent\":\"x\"}"},
    {"orders", NULL, "\0bin", 4, NULL},
    {"payments", "o-2", "", 0, NULL},
    {"orders", "o-3", "v3", 2, "{}"},
    {"shipping", "o-4", "v4", 2, NULL},
};
#define N_OUTBOX (sizeof(outbox_rows) / sizeof(outbox_rows[0]))

static void fill_outbox(ev_store *s, int64_t *ids)
{
    for (size_t i = 0; i < N_OUTBOX; i++)
        OK(ev_store_outbox_add(s, outbox_rows[i].topic, outbox_rows[i].key,
                               outbox_rows[i].value, outbox_rows[i].len,
                               outbox_rows[i].headers, &ids[i], &e_));
}

START_TEST(outbox_each_walks_rows_in_order)
{
    ev_store *s = open_default();
    int64_t ids[N_OUTBOX];
    fill_outbox(s, ids);
    walk w = {0};
    OK(ev_store_outbox_each(s, 0, 0, collect, &w, &e_));
    ck_assert_uint_eq(w.n, N_OUTBOX);
    for (size_t i = 0; i < N_OUTBOX; i++) {
        ck_assert_int_eq(w.rows[i].id, ids[i]);
        ck_assert(i == 0 || ids[i] > ids[i - 1]);
        ck_assert_str_eq(w.rows[i].topic, outbox_rows[i].topic);
        ck_assert(w.rows[i].has_key == (outbox_rows[i].key != NULL));
        ck_assert(w.rows[i].has_headers == (outbox_rows[i].headers != NULL));
        ck_assert_uint_eq(w.rows[i].len, outbox_rows[i].len);
        ck_assert_mem_eq(w.rows[i].value, outbox_rows[i].value, outbox_rows[i].len);
    }
    walk part = {0};
    OK(ev_store_outbox_each(s, ids[2], 2, collect, &part, &e_));
    ck_assert_uint_eq(part.n, 2);
    ck_assert_int_eq(part.rows[0].id, ids[2]);
    ck_assert_int_eq(part.rows[1].id, ids[3]);
    ev_store_close(s);
}
END_TEST

START_TEST(outbox_each_stops_on_callback_value)
{
    ev_store *s = open_default();
    int64_t ids[N_OUTBOX];
    fill_outbox(s, ids);
    walk w = {.stop_after = 2};
    ev_error err = {0};
    ck_assert_int_eq(ev_store_outbox_each(s, 0, 0, collect, &w, &err), 7);
    ck_assert_uint_eq(w.n, 2);
    /* the statement was reset: a new walk starts from the beginning */
    walk again = {0};
    OK(ev_store_outbox_each(s, 0, 0, collect, &again, &e_));
    ck_assert_uint_eq(again.n, N_OUTBOX);
    ev_store_close(s);
}
END_TEST

START_TEST(outbox_delete_during_walk_and_ids_not_reused)
{
    ev_store *s = open_default();
    int64_t ids[N_OUTBOX];
    fill_outbox(s, ids);
    walk w = {.del = s};
    OK(ev_store_outbox_each(s, 0, 0, collect, &w, &e_));
    ck_assert_uint_eq(w.n, N_OUTBOX);
    ck_assert_int_eq(count_of(s, ev_store_outbox_count), 0);
    OK(ev_store_outbox_delete(s, ids[0], &e_)); /* already gone: still 0 */
    int64_t id = 0;
    OK(ev_store_outbox_add(s, "t", "k", "v", 1, NULL, &id, &e_));
    ck_assert_int_gt(id, ids[N_OUTBOX - 1]);
    ev_store_close(s);
}
END_TEST

/* ---- offsets ---------------------------------------------------------------------- */

START_TEST(offsets_set_get_overwrite)
{
    ev_store *s = open_default();
    ck_assert_int_eq(offset_of(s, "orders", 0), -1);
    OK(ev_store_offset_set(s, "orders", 0, 10, &e_));
    OK(ev_store_offset_set(s, "orders", 1, 20, &e_));
    OK(ev_store_offset_set(s, "payments", 0, 30, &e_));
    OK(ev_store_offset_set(s, "orders", 0, 11, &e_));
    ck_assert_int_eq(offset_of(s, "orders", 0), 11);
    ck_assert_int_eq(offset_of(s, "orders", 1), 20);
    ck_assert_int_eq(offset_of(s, "payments", 0), 30);
    ck_assert_int_eq(offset_of(s, "payments", 2), -1);
    ev_store_close(s);
}
END_TEST

/* ---- transactions and persistence ----------------------------------------------- */

static void write_one_of_each(ev_store *s, const char *tag)
{
    char id[32];
    snprintf(id, sizeof(id), "ev-%s", tag);
    OK(ev_store_inbox_add(s, id, 1, &e_));
    OK(ev_store_outbox_add(s, "orders", tag, tag, strlen(tag), NULL, NULL, &e_));
    OK(ev_store_offset_set(s, tag, 0, 42, &e_));
    ev_timer t = timer(tag, "timeout", 5000);
    OK(ev_store_timer_set(s, &t, &e_));
}

static bool has_one_of_each(ev_store *s, const char *tag)
{
    char id[32];
    snprintf(id, sizeof(id), "ev-%s", tag);
    bool found = false;
    OK(ev_store_timer_get(s, tag, "timeout", NULL, &found, &e_));
    bool in = seen(s, id);
    bool off = offset_of(s, tag, 0) == 42;
    ck_assert(in == off && off == found);
    return in;
}

START_TEST(everything_survives_close_and_reopen)
{
    ev_store *s = open_default();
    OK(ev_store_begin(s, &e_));
    ck_assert(ev_store_in_tx(s));
    write_one_of_each(s, "a");
    OK(ev_store_commit(s, &e_));
    write_one_of_each(s, "b"); /* autocommit */
    ev_store_close(s);
    s = open_default();
    ck_assert(has_one_of_each(s, "a"));
    ck_assert(has_one_of_each(s, "b"));
    ck_assert_int_eq(count_of(s, ev_store_outbox_count), 2);
    ck_assert_int_eq(count_of(s, ev_store_timers_count), 2);
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
    ev_store *s = open_default();
    OK(ev_store_begin(s, &e_));
    write_one_of_each(s, "a");
    OK(ev_store_rollback(s, &e_));
    ck_assert(!ev_store_in_tx(s));
    OK(ev_store_rollback(s, &e_)); /* none open: still 0 */
    ck_assert(!has_one_of_each(s, "a"));
    ck_assert_int_eq(count_of(s, ev_store_outbox_count), 0);
    ck_assert_int_eq(count_of(s, ev_store_timers_count), 0);
    ev_store_close(s);
    s = open_default();
    ck_assert(!has_one_of_each(s, "a"));
    ev_store_close(s);
}
END_TEST

START_TEST(savepoint_rollback_to_undoes_inner_part_only)
{
    ev_store *s = open_default();
    OK(ev_store_begin(s, &e_));
    write_one_of_each(s, "outer");
    OK(ev_store_savepoint(s, &e_));
    write_one_of_each(s, "inner");
    OK(ev_store_rollback_to(s, &e_));
    ck_assert(ev_store_in_tx(s));
    ev_error ended = {0}; /* rollback_to ended the savepoint too */
    ck_assert_int_eq(ev_store_release(s, &ended), EV_ESTORE);
    ck_assert_msg(strstr(ended.text, "no such savepoint") != NULL, "%s", ended.text);
    ck_assert(ev_store_in_tx(s));
    OK(ev_store_savepoint(s, &e_));
    write_one_of_each(s, "kept");
    OK(ev_store_release(s, &e_));
    write_one_of_each(s, "after");
    OK(ev_store_commit(s, &e_));
    ev_store_close(s);
    s = open_default();
    ck_assert(has_one_of_each(s, "outer"));
    ck_assert(!has_one_of_each(s, "inner"));
    ck_assert(has_one_of_each(s, "kept"));
    ck_assert(has_one_of_each(s, "after"));
    ev_error err = {0};
    ck_assert_int_eq(ev_store_release(s, &err), EV_ESTORE); /* no savepoint open */
    ck_assert_msg(strstr(err.text, "no such savepoint") != NULL, "%s", err.text);
    ev_store_close(s);
}
END_TEST

START_TEST(busy_database_is_retry)
{
    ev_store *a = open_default();
    ev_store *b = NULL;
    ev_error err = {0};
    ev_store_opts o = {.path = dbpath, .busy_timeout_ms = -1};
    ck_assert_msg(ev_store_open(&b, &o, &err) == 0, "%s", err.text);
    OK(ev_store_begin(a, &e_));
    ck_assert_int_eq(ev_store_begin(b, &err), EV_ERETRY);
    ck_assert_msg(strstr(err.text, "locked") != NULL, "%s", err.text);
    ck_assert_msg(strstr(err.text, "busy") != NULL, "%s", err.text);
    OK(ev_store_commit(a, &e_));
    OK(ev_store_begin(b, &e_));
    OK(ev_store_commit(b, &e_));
    ev_store_close(b);
    ev_store_close(a);
}
END_TEST

START_TEST(full_disk_is_store_error)
{
    ev_store *s = open_default();
    /* A page budget stands in for a full disk: same SQLITE_FULL path. */
    ck_assert_int_ge(query_int(s, "PRAGMA max_page_count = 12"), 1);
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
    ck_assert_int_eq(count_of(s, ev_store_outbox_count), 0);
    ev_store_close(s);
}
END_TEST

/* ---- migrations ------------------------------------------------------------------- */

static const ev_migration mig[] = {
    {1, "CREATE TABLE orders(id TEXT PRIMARY KEY, state TEXT NOT NULL);"},
    {2, "INSERT INTO orders VALUES('seed', 'new');"},
    {3, "ALTER TABLE orders ADD COLUMN total INTEGER NOT NULL DEFAULT 0;"},
    {4, "CREATE TABLE half(a); INSERT INTO nosuch VALUES(1);"},
    {5, "CREATE TABL broken(a);"},
};

START_TEST(migrations_apply_once_and_in_order)
{
    ev_store *s = open_with(mig, 2);
    ck_assert_int_eq(query_int(s, "SELECT max(version) FROM ev_migrations"), 2);
    ev_store_close(s);
    s = open_with(mig, 2); /* nothing new: the seed row is not inserted twice */
    ck_assert_int_eq(query_int(s, "SELECT count(*) FROM orders"), 1);
    ck_assert_int_eq(query_int(s, "SELECT count(*) FROM ev_migrations"), 2);
    ev_store_close(s);
    s = open_with(mig, 3);
    ck_assert_int_eq(query_int(s, "SELECT max(version) FROM ev_migrations"), 3);
    ck_assert_int_eq(query_int(s, "SELECT total FROM orders WHERE id='seed'"), 0);
    ck_assert_int_eq(query_int(s, "SELECT count(*) FROM orders"), 1);
    ev_store_close(s);
}
END_TEST

static const struct {
    size_t upto;
    const char *text;
} bad_mig_cases[] = {
    {4, "no such table: nosuch"},
    {5, "syntax error"},
};

START_TEST(failing_migration_keeps_previous_version)
{
    ev_store_close(open_with(mig, 3));
    ev_store *s = NULL;
    ev_error err = {0};
    ev_store_opts o = {.path = dbpath, .migrations = mig, .n_migrations = 0};
    if (bad_mig_cases[_i].upto == 5) { /* skip 4, fail on 5 */
        static const ev_migration m[] = {mig[0], mig[1], mig[2], mig[4]};
        o.migrations = m;
        o.n_migrations = 4;
    } else {
        o.n_migrations = bad_mig_cases[_i].upto;
    }
    ck_assert_int_eq(ev_store_open(&s, &o, &err), EV_ESTORE);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err.text, bad_mig_cases[_i].text) != NULL, "%s", err.text);
    ck_assert_msg(strstr(err.text, "migration") != NULL, "%s", err.text);
    s = open_with(mig, 3);
    ck_assert_int_eq(query_int(s, "SELECT max(version) FROM ev_migrations"), 3);
    ck_assert_int_eq(query_int(s, "SELECT count(*) FROM sqlite_master WHERE name='half'"),
                     0);
    ev_store_close(s);
}
END_TEST

START_TEST(migrations_bad_order_or_newer_db_rejected)
{
    static const ev_migration unordered[] = {{2, "SELECT 1"}, {1, "SELECT 1"}};
    static const ev_migration zero[] = {{0, "SELECT 1"}};
    ev_store *s = NULL;
    ev_error err = {0};
    ev_store_opts o = {.path = dbpath, .migrations = unordered, .n_migrations = 2};
    ck_assert_int_eq(ev_store_open(&s, &o, &err), EV_EINVAL);
    o.migrations = zero;
    o.n_migrations = 1;
    ck_assert_int_eq(ev_store_open(&s, &o, &err), EV_EINVAL);
    ev_store_close(open_with(mig, 3));
    o.migrations = mig;
    o.n_migrations = 2;
    ck_assert_int_eq(ev_store_open(&s, &o, &err), EV_ESTORE);
    ck_assert_msg(strstr(err.text, "newer") != NULL, "%s", err.text);
    ck_assert_ptr_null(s);
}
END_TEST

/* ---- timers ----------------------------------------------------------------------- */

static size_t due(ev_store *s, int64_t now, ev_timer *out, size_t cap)
{
    size_t n = 99;
    ev_error err = {0};
    ck_assert_msg(ev_store_timers_due(s, now, out, cap, &n, &err) == 0, "%s", err.text);
    return n;
}

static int64_t next_due(ev_store *s)
{
    int64_t v = 0;
    OK(ev_store_timers_next(s, &v, &e_));
    return v;
}

START_TEST(timers_fire_once)
{
    ev_store *s = open_default();
    ck_assert_int_eq(next_due(s), INT64_MAX);
    ev_timer t1 = timer("o-1", "timeout", 1000);
    ev_timer t2 = timer("o-2", "dispatch", 2000);
    OK(ev_store_timer_set(s, &t2, &e_));
    OK(ev_store_timer_set(s, &t1, &e_));
    ck_assert_int_eq(next_due(s), 1000);
    ev_timer out[4];
    ck_assert_uint_eq(due(s, 999, out, 4), 0);
    ck_assert_uint_eq(due(s, 1500, out, 4), 1);
    ck_assert_str_eq(out[0].key, "o-1");
    ck_assert_str_eq(out[0].kind, "timeout");
    ck_assert_str_eq(out[0].correlationid, "corr-o-1");
    ck_assert_int_eq(out[0].due_at, 1000);
    OK(ev_store_begin(s, &e_));
    OK(ev_store_timer_delete(s, out[0].key, out[0].kind, &e_));
    OK(ev_store_commit(s, &e_));
    ck_assert_uint_eq(due(s, 1500, out, 4), 0);
    ck_assert_int_eq(next_due(s), 2000);
    t2.due_at = 10000; /* set again moves it */
    OK(ev_store_timer_set(s, &t2, &e_));
    ck_assert_uint_eq(due(s, 5000, out, 4), 0);
    ck_assert_int_eq(next_due(s), 10000);
    ck_assert_int_eq(count_of(s, ev_store_timers_count), 1);
    OK(ev_store_timer_delete(s, "o-2", "dispatch", &e_));
    OK(ev_store_timer_delete(s, "o-2", "dispatch", &e_)); /* gone: still 0 */
    ck_assert_int_eq(next_due(s), INT64_MAX);
    ev_store_close(s);
}
END_TEST

START_TEST(timers_due_earliest_first_up_to_cap)
{
    ev_store *s = open_default();
    static const struct {
        const char *key;
        const char *kind;
        int64_t due;
    } rows[] = {{"c", "t", 300},
                {"a", "t", 100},
                {"b", "t", 200},
                {"a", "u", 100},
                {"d", "t", 900}};
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        ev_timer t = timer(rows[i].key, rows[i].kind, rows[i].due);
        OK(ev_store_timer_set(s, &t, &e_));
    }
    ev_timer out[8];
    ck_assert_uint_eq(due(s, 500, out, 3), 3);
    ck_assert_str_eq(out[0].key, "a");
    ck_assert_str_eq(out[0].kind, "t");
    ck_assert_str_eq(out[1].key, "a");
    ck_assert_str_eq(out[1].kind, "u");
    ck_assert_str_eq(out[2].key, "b");
    ck_assert_uint_eq(due(s, 500, out, 8), 4);
    ck_assert_uint_eq(due(s, 500, NULL, 0), 0);
    ev_store_close(s);
}
END_TEST

START_TEST(timer_set_rejects_bad_fields)
{
    ev_store *s = open_default();
    ev_error err = {0};
    ev_timer t = timer("", "timeout", 1);
    ck_assert_int_eq(ev_store_timer_set(s, &t, &err), EV_EINVAL);
    t = timer("k", "", 1);
    ck_assert_int_eq(ev_store_timer_set(s, &t, &err), EV_EINVAL);
    t = timer("k", "kind", 1);
    memset(t.kind, 'x', sizeof(t.kind)); /* not NUL-terminated */
    ck_assert_int_eq(ev_store_timer_set(s, &t, &err), EV_EINVAL);
    ck_assert_int_eq(count_of(s, ev_store_timers_count), 0);
    ev_store_close(s);
}
END_TEST

/* ---- statement cache -------------------------------------------------------------- */

START_TEST(stmt_cache_same_sql_same_statement_reset)
{
    ev_store *s = open_default();
    ev_error err = {0};
    char a[] = "SELECT ?1 UNION ALL SELECT 2";
    char b[sizeof(a)];
    memcpy(b, a, sizeof(a));
    size_t before = ev_store_stmt_count(s);
    sqlite3_stmt *st = ev_store_stmt(s, a, &err);
    ck_assert_ptr_nonnull(st);
    ck_assert_uint_eq(ev_store_stmt_count(s), before + 1);
    sqlite3_bind_int(st, 1, 41);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(st, 0), 41);
    ck_assert(sqlite3_stmt_busy(st));
    sqlite3_stmt *again = ev_store_stmt(s, b, &err); /* other buffer, same text */
    ck_assert_ptr_eq(again, st);
    ck_assert_uint_eq(ev_store_stmt_count(s), before + 1);
    ck_assert(!sqlite3_stmt_busy(again));
    ck_assert_int_eq(sqlite3_step(again), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_type(again, 0), SQLITE_NULL); /* bindings cleared */
    sqlite3_reset(again);
    ev_store_close(s);
}
END_TEST

START_TEST(stmt_cache_grows_and_keeps_statements)
{
    ev_store *s = open_default();
    ev_error err = {0};
    sqlite3_stmt *sts[200];
    char sql[64];
    for (int i = 0; i < 200; i++) {
        snprintf(sql, sizeof(sql), "SELECT %d", i);
        sts[i] = ev_store_stmt(s, sql, &err);
        ck_assert_msg(sts[i] != NULL, "%s", err.text);
    }
    for (int i = 0; i < 200; i++) {
        snprintf(sql, sizeof(sql), "SELECT %d", i);
        ck_assert_ptr_eq(ev_store_stmt(s, sql, &err), sts[i]);
        ck_assert_int_eq(sqlite3_step(sts[i]), SQLITE_ROW);
        ck_assert_int_eq(sqlite3_column_int(sts[i], 0), i);
        sqlite3_reset(sts[i]);
    }
    ev_store_close(s);
}
END_TEST

static const struct {
    const char *sql;
    int code;
    const char *text;
} bad_sql_cases[] = {
    {"SELEC 1", EV_ESTORE, "syntax error"},
    {"SELECT * FROM nosuch", EV_ESTORE, "no such table"},
    {"SELECT 1; SELECT 2", EV_EINVAL, "one statement"},
    {"", EV_EINVAL, "one statement"},
};

START_TEST(stmt_cache_prepare_errors)
{
    ev_store *s = open_default();
    ev_error err = {0};
    size_t before = ev_store_stmt_count(s);
    ck_assert_ptr_null(ev_store_stmt(s, bad_sql_cases[_i].sql, &err));
    ck_assert_int_eq(err.code, bad_sql_cases[_i].code);
    ck_assert_msg(strstr(err.text, bad_sql_cases[_i].text) != NULL, "%s", err.text);
    ck_assert_uint_eq(ev_store_stmt_count(s), before);
    ck_assert_ptr_null(ev_store_stmt(s, bad_sql_cases[_i].sql, NULL)); /* err NULL ok */
    ev_store_close(s);
}
END_TEST

static void one_round(ev_store *s, int i)
{
    char id[32];
    snprintf(id, sizeof(id), "ev-%d", i);
    OK(ev_store_begin(s, &e_));
    seen(s, id);
    OK(ev_store_savepoint(s, &e_));
    OK(ev_store_inbox_add(s, id, i, &e_));
    OK(ev_store_release(s, &e_));
    int64_t oid = 0;
    OK(ev_store_outbox_add(s, "t", id, "v", 1, NULL, &oid, &e_));
    OK(ev_store_offset_set(s, "t", 0, i, &e_));
    offset_of(s, "t", 0);
    ev_timer t = timer(id, "timeout", i);
    OK(ev_store_timer_set(s, &t, &e_));
    OK(ev_store_commit(s, &e_));
    walk w = {.del = s};
    OK(ev_store_outbox_each(s, 0, 0, collect, &w, &e_));
    ev_timer out[4];
    due(s, i, out, 4);
    next_due(s);
    OK(ev_store_timer_delete(s, id, "timeout", &e_));
    OK(ev_store_inbox_prune(s, 0, &e_));
    count_of(s, ev_store_outbox_count);
}

START_TEST(hot_path_prepares_nothing_after_warm_up)
{
    ev_store *s = open_default();
    one_round(s, 1);
    size_t warm = ev_store_stmt_count(s);
    for (int i = 2; i < 10; i++)
        one_round(s, i);
    ck_assert_uint_eq(ev_store_stmt_count(s), warm);
    size_t live = 0; /* every statement on the connection is a cached one */
    for (sqlite3_stmt *p = sqlite3_next_stmt(ev_store_db(s), NULL); p != NULL;
         p = sqlite3_next_stmt(ev_store_db(s), p))
        live++;
    ck_assert_uint_eq(live, warm);
    ck_assert_int_eq(count_of(s, ev_store_inbox_count), 9);
    ev_store_close(s);
}
END_TEST

/* ---- argument checks -------------------------------------------------------------- */

START_TEST(null_arguments_are_einval)
{
    ev_store *s = open_default();
    ev_error err = {0};
    bool b;
    int64_t n;
    size_t z;
    ev_timer t[1];
    int got[] = {
        ev_store_open(NULL, NULL, &err),
        ev_store_inbox_seen(s, NULL, &b, &err),
        ev_store_inbox_seen(NULL, "x", &b, &err),
        ev_store_outbox_add(s, NULL, "k", "v", 1, NULL, NULL, &err),
        ev_store_outbox_add(s, "t", "k", NULL, 1, NULL, NULL, &err),
        ev_store_outbox_each(s, 0, 0, NULL, NULL, &err),
        ev_store_outbox_count(s, NULL, &err),
        ev_store_offset_get(s, NULL, 0, &n, &err),
        ev_store_offset_set(s, "", 0, 1, &err),
        ev_store_timer_set(s, NULL, &err),
        ev_store_timer_delete(s, NULL, "k", &err),
        ev_store_timers_due(s, 0, NULL, 1, &z, &err),
        ev_store_timers_next(s, NULL, &err),
        ev_store_begin(NULL, &err),
    };
    for (size_t i = 0; i < sizeof(got) / sizeof(got[0]); i++)
        ck_assert_msg(got[i] == EV_EINVAL, "case %zu -> %d", i, got[i]);
    (void)t;
    ev_store_close(NULL);
    ck_assert_ptr_null(ev_store_db(NULL));
    ck_assert_ptr_nonnull(ev_store_db(s));
    ev_store_close(s);
}
END_TEST

static Suite *store_suite(void)
{
    Suite *su = suite_create("store");
    TCase *tc = tcase_create("store");
    tcase_add_unchecked_fixture(tc, setup_base, teardown_base);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, open_creates_dir_and_sets_pragmas, 0,
                        sizeof(sync_cases) / sizeof(sync_cases[0]));
    tcase_add_test(tc, open_creates_runtime_tables);
    tcase_add_loop_test(tc, open_rejects_bad_options, 0,
                        sizeof(bad_open_cases) / sizeof(bad_open_cases[0]));
    tcase_add_test(tc, open_under_a_file_is_io_error);
    tcase_add_test(tc, open_garbage_file_is_store_error);
    tcase_add_test(tc, open_readonly_missing_is_not_found);
    tcase_add_test(tc, open_readonly_reads_while_writer_runs);
    tcase_add_test(tc, inbox_dedups_and_add_is_idempotent);
    tcase_add_test(tc, inbox_prune_removes_old_rows_only);
    tcase_add_test(tc, outbox_each_walks_rows_in_order);
    tcase_add_test(tc, outbox_each_stops_on_callback_value);
    tcase_add_test(tc, outbox_delete_during_walk_and_ids_not_reused);
    tcase_add_test(tc, offsets_set_get_overwrite);
    tcase_add_test(tc, everything_survives_close_and_reopen);
    tcase_add_test(tc, rollback_leaves_nothing);
    tcase_add_test(tc, savepoint_rollback_to_undoes_inner_part_only);
    tcase_add_test(tc, busy_database_is_retry);
    tcase_add_test(tc, full_disk_is_store_error);
    tcase_add_test(tc, migrations_apply_once_and_in_order);
    tcase_add_loop_test(tc, failing_migration_keeps_previous_version, 0,
                        sizeof(bad_mig_cases) / sizeof(bad_mig_cases[0]));
    tcase_add_test(tc, migrations_bad_order_or_newer_db_rejected);
    tcase_add_test(tc, timers_fire_once);
    tcase_add_test(tc, timers_due_earliest_first_up_to_cap);
    tcase_add_test(tc, timer_set_rejects_bad_fields);
    tcase_add_test(tc, stmt_cache_same_sql_same_statement_reset);
    tcase_add_test(tc, stmt_cache_grows_and_keeps_statements);
    tcase_add_loop_test(tc, stmt_cache_prepare_errors, 0,
                        sizeof(bad_sql_cases) / sizeof(bad_sql_cases[0]));
    tcase_add_test(tc, hot_path_prepares_nothing_after_warm_up);
    tcase_add_test(tc, null_arguments_are_einval);
    suite_add_tcase(su, tc);
    return su;
}

int main(void)
{
    SRunner *sr = srunner_create(store_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
