/* SPDX-License-Identifier: MIT */
/* Unit tests of events/store on both backends: runtime tables, migrations,
 * dedup, outbox, offsets, timers, transactions, statements and error paths;
 * SQLite's file handling, and PostgreSQL's races between instances. */
#include <check.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

/* The backend the shared test bodies run on, set by each TCase's fixture. */
static ev_store_kind backend;
static const char *pg_url; /* CHOREO_TEST_PG, NULL when unset */
static pid_t run_pid;      /* the runner's: prefix of every schema of this run */

static char basedir[64]; /* made and removed by the parent, even after a failure */
static char tmpdir[128]; /* one per test, inside basedir */
static char dbpath[256];

static char schema[64];     /* this test's main schema */
static char dropped[4][64]; /* schemas this test made, dropped in its teardown */
static size_t n_dropped;

#define BY_BACKEND(sq, pg) (backend == EV_STORE_POSTGRES ? (pg) : (sq))
#define ON_SQ 1u
#define ON_PG 2u
#define ON_BOTH (ON_SQ | ON_PG)
#define ON_THIS BY_BACKEND(ON_SQ, ON_PG)
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- PostgreSQL administration (own connection, libpq) ----------------------- */

static void pg_quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* The first column of the first row of sql ($1 = param) as an integer;
 * INT64_MIN with the error on stderr. Runs in the parent's fixtures too. */
static int64_t admin_query(const char *sql, const char *param)
{
    int64_t v = INT64_MIN;
    PGconn *c = PQconnectdb(pg_url);
    PQsetNoticeProcessor(c, pg_quiet, NULL);
    PGresult *r = PQexecParams(c, sql, param != NULL, NULL, &param, NULL, NULL, 0);
    ExecStatusType t = PQresultStatus(r);
    if (t == PGRES_TUPLES_OK && PQntuples(r) > 0)
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    else if (t == PGRES_COMMAND_OK)
        v = 0;
    else
        fprintf(stderr, "check_store: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return v;
}

static bool schema_exists(const char *name)
{
    return admin_query("SELECT count(*) FROM pg_namespace WHERE nspname = $1", name) > 0;
}

/* A fresh schema name "t_<runner pid>_<pid>_<n>" into out, dropped at teardown. */
static void new_schema(char *out, size_t cap)
{
    static unsigned counter;
    ck_assert_uint_lt(n_dropped, N_OF(dropped));
    snprintf(out, cap, "t_%ld_%ld_%u", (long)run_pid, (long)getpid(), ++counter);
    snprintf(dropped[n_dropped++], sizeof(dropped[0]), "%s", out);
}

/* ---- fixtures ------------------------------------------------------------------ */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void setup_base(void)
{
    run_pid = getpid();
    snprintf(basedir, sizeof(basedir), "/tmp/check_store.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(basedir));
}

static void teardown_base(void)
{
    nftw(basedir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup_sqlite(void)
{
    backend = EV_STORE_SQLITE;
    snprintf(tmpdir, sizeof(tmpdir), "%s/t.XXXXXX", basedir);
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(dbpath, sizeof(dbpath), "%s/data/orders/svc.db", tmpdir);
}

static void teardown_sqlite(void)
{
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup_pg_base(void)
{
    run_pid = getpid();
}

/* Schemas of tests that failed before their teardown ran. */
static void teardown_pg_base(void)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "DO $$DECLARE n text; BEGIN FOR n IN SELECT nspname FROM pg_namespace"
             " WHERE nspname LIKE 't\\_%ld\\_%%' LOOP"
             " EXECUTE format('DROP SCHEMA %%I CASCADE', n); END LOOP; END$$",
             (long)run_pid);
    admin_query(sql, NULL);
}

static void setup_pg(void)
{
    backend = EV_STORE_POSTGRES;
    n_dropped = 0;
    new_schema(schema, sizeof(schema));
}

static void teardown_pg(void)
{
    char sql[128];
    for (size_t i = 0; i < n_dropped; i++) {
        snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS \"%.63s\" CASCADE", dropped[i]);
        admin_query(sql, NULL);
    }
}

/* ---- helpers ------------------------------------------------------------------- */

#define OK(call)                                                                         \
    do {                                                                                 \
        ev_error e_ = {0};                                                               \
        int rc_ = (call);                                                                \
        ck_assert_msg(rc_ == 0, "%s -> %d %s", #call, rc_, e_.text);                     \
    } while (0)
/* Calls use `&e_` as their error record. */

/* The store options of the current backend: the SQLite file, or url + schema. */
static ev_store_opts base_opts(void)
{
    ev_store_opts o = {0};
    if (backend == EV_STORE_POSTGRES) {
        o.url = pg_url;
        o.schema = schema;
    } else {
        o.path = dbpath;
    }
    return o;
}

static ev_store *open_opts(const ev_store_opts *o)
{
    ev_store *s = NULL;
    ev_error err = {0};
    int rc = ev_store_open(&s, o, &err);
    ck_assert_msg(rc == 0, "open: %s", err.text);
    return s;
}

static ev_store *open_with(const ev_migration *m, size_t n)
{
    ev_store_opts o = base_opts();
    o.migrations = m;
    o.n_migrations = n;
    return open_opts(&o);
}

static ev_store *open_default(void)
{
    return open_with(NULL, 0);
}

static ev_store *open_owner(const char *owner)
{
    ev_store_opts o = base_opts();
    o.owner = owner;
    return open_opts(&o);
}

/* Whether the store of the current test exists (file, or schema). */
static bool store_exists(void)
{
    struct stat sb;
    return backend == EV_STORE_POSTGRES ? schema_exists(schema) : stat(dbpath, &sb) == 0;
}

/* One integer from a query through the statement cache. */
static int64_t query_int(ev_store *s, const char *sql)
{
    int64_t v = 0;
    bool found = false;
    ev_error err = {0};
    int rc = ev_store_query_int(ev_store_stmt(s, sql, &err), 0, &v, &found, &err);
    ck_assert_msg(rc == 0 && found, "%s: %d %s", sql, rc, err.text);
    return v;
}

/* Whether a table or index of that name is in the store's schema. */
static bool has_object(ev_store *s, const char *name)
{
    const char *sql =
        BY_BACKEND("SELECT count(*) FROM sqlite_master WHERE name = ?1",
                   "SELECT count(*) FROM pg_class c JOIN pg_namespace n"
                   " ON n.oid = c.relnamespace"
                   " WHERE n.nspname = current_schema() AND c.relname = ?1");
    int64_t n = -1;
    ev_error err = {0};
    int rc =
        ev_store_query_int(ev_store_bind(s, &err, sql, "s", name), -1, &n, NULL, &err);
    ck_assert_msg(rc == 0, "%s: %s", name, err.text);
    return n > 0;
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

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- open ---------------------------------------------------------------------- */

static const struct {
    const char *sync;
    int64_t want;
} sync_cases[] = {{NULL, 2}, {"FULL", 2}, {"NORMAL", 1}, {"normal", 1}};

START_TEST(open_creates_dir_and_sets_pragmas)
{
    ev_store_opts o = base_opts();
    o.synchronous = sync_cases[_i].sync;
    ev_store *s = open_opts(&o);
    struct stat sb;
    ck_assert_int_eq(stat(dbpath, &sb), 0);
    ck_assert(S_ISREG(sb.st_mode));
    char mode[16];
    OK(ev_store_query_text(ev_store_stmt(s, "PRAGMA journal_mode", &e_), mode,
                           sizeof(mode), NULL, &e_));
    ck_assert_str_eq(mode, "wal");
    ck_assert_int_eq(query_int(s, "PRAGMA synchronous"), sync_cases[_i].want);
    ck_assert_int_eq(query_int(s, "PRAGMA foreign_keys"), 1);
    ck_assert_int_eq(query_int(s, "PRAGMA busy_timeout"), 5000);
    ck_assert_int_eq(query_int(s, "PRAGMA user_version"), 2);
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
    ck_assert_int_eq(ev_store_backend(s), backend);
    for (size_t i = 0; i < N_OF(names); i++)
        ck_assert_msg(has_object(s, names[i]), "missing %s", names[i]);
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
    ev_store_opts o = base_opts();
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
    ck_assert(!store_exists()); /* nothing created */
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
    ev_store_opts o = base_opts();
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
    ev_store_opts o = base_opts();
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
    ev_store_opts o = base_opts();
    o.readonly = true;
    ck_assert_int_eq(ev_store_open(&s, &o, &err), EV_ENOTFOUND);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err.text, BY_BACKEND("no database at", "no schema")) != NULL,
                  "%s", err.text);
    ck_assert(!store_exists()); /* nothing created */
}
END_TEST

START_TEST(open_readonly_reads_while_writer_runs)
{
    ev_store *w = open_default();
    OK(ev_store_outbox_add(w, "t", "k", "v", 1, NULL, NULL, &e_));
    ev_store *r = NULL;
    ev_error err = {0};
    static const ev_migration m[] = {{1, "CREATE TABLE never(a BIGINT)"}};
    ev_store_opts o = base_opts();
    o.readonly = true;
    o.migrations = m;
    o.n_migrations = 1;
    ck_assert_msg(ev_store_open(&r, &o, &err) == 0, "%s", err.text);
    ck_assert_int_eq(count_of(r, ev_store_outbox_count), 1);
    ck_assert(!has_object(r, "never"));
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

/* ---- inbox --------------------------------------------------------------------- */

START_TEST(inbox_claim_says_fresh_once_and_savepoint_undoes_it)
{
    ev_store *s = open_default();
    bool fresh = false;
    OK(ev_store_begin(s, &e_));
    OK(ev_store_inbox_claim(s, "e1", 10, &fresh, &e_));
    ck_assert(fresh);
    OK(ev_store_inbox_claim(s, "e1", 11, &fresh, &e_));
    ck_assert(!fresh); /* a duplicate */
    OK(ev_store_savepoint(s, &e_));
    OK(ev_store_inbox_claim(s, "e2", 12, &fresh, &e_));
    ck_assert(fresh);
    OK(ev_store_rollback_to(s, &e_)); /* its handler failed */
    OK(ev_store_commit(s, &e_));
    ck_assert(seen(s, "e1"));
    ck_assert(!seen(s, "e2"));
    ck_assert_int_eq(query_int(s, "SELECT seen_at FROM inbox WHERE event_id='e1'"), 10);
    ev_error err = {0};
    ck_assert_int_eq(ev_store_inbox_claim(s, "", 1, &fresh, &err), EV_EINVAL);
    ev_store_close(s);
}
END_TEST

START_TEST(outbox_delete_ids_removes_exactly_those)
{
    ev_store *s = open_default();
    int64_t id[8];
    for (int i = 0; i < 8; i++)
        OK(ev_store_outbox_add(s, "t", NULL, "v", 1, NULL, &id[i], &e_));
    int64_t del[] = {id[5], id[1], id[2], id[2], id[6], id[4]}; /* runs 1-2 and 4-6 */
    OK(ev_store_outbox_delete_ids(s, del, 6, &e_));
    ck_assert_int_eq(count_of(s, ev_store_outbox_count), 3);
    for (int i = 0; i < 8; i++) {
        char q[96];
        snprintf(q, sizeof(q), "SELECT count(*) FROM outbox WHERE id = %lld",
                 (long long)id[i]);
        ck_assert_int_eq(query_int(s, q), i == 0 || i == 3 || i == 7);
    }
    OK(ev_store_outbox_delete_ids(s, NULL, 0, &e_));
    ev_store_close(s);
}
END_TEST

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
    OK(ev_store_begin(s, &e_)); /* and inside a transaction */
    OK(ev_store_inbox_add(s, "e1", 999, &e_));
    OK(ev_store_commit(s, &e_));
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

/* ---- outbox -------------------------------------------------------------------- */

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

static walk walk_of(ev_store *s)
{
    walk w = {0};
    OK(ev_store_outbox_each(s, 0, 0, collect, &w, &e_));
    return w;
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
#define N_OUTBOX N_OF(outbox_rows)

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
    walk w = walk_of(s);
    ck_assert_uint_eq(w.n, N_OUTBOX);
    for (size_t i = 0; i < N_OUTBOX; i++) {
        ck_assert_int_eq(w.rows[i].id, ids[i]);
        ck_assert(i == 0 || ids[i] > ids[i - 1]);
        ck_assert_str_eq(w.rows[i].topic, outbox_rows[i].topic);
        ck_assert(w.rows[i].has_key == (outbox_rows[i].key != NULL));
        ck_assert(w.rows[i].has_headers == (outbox_rows[i].headers != NULL));
        ck_assert_str_eq(w.rows[i].headers,
                         outbox_rows[i].headers ? outbox_rows[i].headers : "");
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

static const struct {
    const char *bytes;
    size_t len;
} binary_values[] = {
    {"\0", 1},
    {"a\0b\0", 4},
    {"\xff\xfe\x80\xc3\x28", 5},      /* invalid UTF-8 */
    {"\\x00\\\0\xc0\xaf\xed\xa0", 9}, /* escapes lookalikes, overlong, surrogate */
};

START_TEST(outbox_value_bytes_round_trip)
{
    ev_store *s = open_default();
    for (size_t i = 0; i < N_OF(binary_values); i++)
        OK(ev_store_outbox_add(s, "bin", NULL, binary_values[i].bytes,
                               binary_values[i].len, NULL, NULL, &e_));
    walk w = walk_of(s);
    ck_assert_uint_eq(w.n, N_OF(binary_values));
    for (size_t i = 0; i < N_OF(binary_values); i++) {
        ck_assert_uint_eq(w.rows[i].len, binary_values[i].len);
        ck_assert_mem_eq(w.rows[i].value, binary_values[i].bytes, binary_values[i].len);
    }
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
    ck_assert_uint_eq(walk_of(s).n, N_OUTBOX);
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

/* ---- offsets ------------------------------------------------------------------- */

START_TEST(offsets_set_get_only_forward)
{
    ev_store *s = open_default();
    ck_assert_int_eq(offset_of(s, "orders", 0), -1);
    OK(ev_store_offset_set(s, "orders", 0, 10, &e_));
    OK(ev_store_offset_set(s, "orders", 1, 20, &e_));
    OK(ev_store_offset_set(s, "payments", 0, 30, &e_));
    OK(ev_store_offset_set(s, "orders", 0, 11, &e_));
    ck_assert_int_eq(offset_of(s, "orders", 0), 11);
    OK(ev_store_offset_set(s, "orders", 0, 7, &e_)); /* never backwards */
    ck_assert_int_eq(offset_of(s, "orders", 0), 11);
    ck_assert_int_eq(offset_of(s, "orders", 1), 20);
    ck_assert_int_eq(offset_of(s, "payments", 0), 30);
    ev_store_close(s);
}
END_TEST

/* ---- transactions and persistence ---------------------------------------------- */

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
    ev_store_close(s);
}
END_TEST

START_TEST(rollback_to_ends_the_savepoint)
{
    ev_store *s = open_default();
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

START_TEST(busy_database_is_retry)
{
    ev_store *a = open_default();
    ev_store_opts o = base_opts();
    o.busy_timeout_ms = -1;
    ev_store *b = open_opts(&o);
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

START_TEST(migration_pg_sql_replaces_sql_on_postgresql)
{
    static const ev_migration m[] = {
        {1, "CREATE TABLE dialect(v TEXT); INSERT INTO dialect VALUES('sqlite');",
         "CREATE TABLE dialect(v TEXT); INSERT INTO dialect VALUES('postgresql');"},
    };
    ev_store *s = open_with(m, 1);
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
    ev_store_close(open_with(mig, 3));
    ev_store *s = NULL;
    ev_error err = {0};
    ev_store_opts o = base_opts();
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
    s = open_with(mig, 3);
    ck_assert_int_eq(query_int(s, "SELECT max(version) FROM ev_migrations"), 3);
    ck_assert(!has_object(s, "half"));
    ev_store_close(s);
}
END_TEST

START_TEST(migrations_bad_order_or_newer_db_rejected)
{
    static const ev_migration unordered[] = {{2, "SELECT 1"}, {1, "SELECT 1"}};
    static const ev_migration zero[] = {{0, "SELECT 1"}};
    ev_store *s = NULL;
    ev_error err = {0};
    ev_store_opts o = base_opts();
    o.migrations = unordered;
    o.n_migrations = 2;
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

/* ---- timers -------------------------------------------------------------------- */

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
    for (size_t i = 0; i < N_OF(rows); i++) {
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
    ev_store *s = open_with(kv_mig, 1);
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
    ev_store *s = open_default();
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
    ev_store *s = open_default();
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
    ev_store *s = open_default();
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
    ck_assert_int_eq(count_of(s, ev_store_inbox_count), 9);
    ev_store_close(s);
}
END_TEST

/* ---- argument checks ----------------------------------------------------------- */

START_TEST(null_arguments_are_einval)
{
    ev_store *s = open_default();
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

/* ---- PostgreSQL: instances racing on one schema -------------------------------- */

START_TEST(inbox_add_of_id_another_instance_committed_is_conflict)
{
    ev_store *a = open_default();
    ev_store *b = open_default();
    OK(ev_store_begin(a, &e_));
    OK(ev_store_begin(b, &e_));
    ck_assert(!seen(b, "e1")); /* b's snapshot starts here */
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
    ck_assert(seen(b, "e1"));
    OK(ev_store_commit(b, &e_));
    ck_assert_int_eq(query_int(b, "SELECT seen_at FROM inbox WHERE event_id='e1'"), 1);
    ev_store_close(b);
    ev_store_close(a);
}
END_TEST

/* The server ends the session in the middle of a transaction (a restart, or
 * idle_in_transaction_session_timeout for a frozen instance): the failed
 * statement is a retry, and the next transaction runs on a new connection. */
START_TEST(lost_connection_is_a_retry_and_reconnects)
{
    ev_store *a = open_default();
    OK(ev_store_begin(a, &e_));
    OK(ev_store_inbox_add(a, "e1", 1, &e_));
    char pid[24];
    snprintf(pid, sizeof(pid), "%lld",
             (long long)query_int(a, "SELECT pg_backend_pid()"));
    ck_assert_int_eq(admin_query("SELECT pg_terminate_backend($1::int)::int", pid), 1);
    ev_error err = {0};
    ck_assert_int_eq(ev_store_inbox_add(a, "e2", 2, &err), EV_ERETRY);
    ck_assert_msg(strstr(err.text, "(connection)") != NULL, "%s", err.text);
    ck_assert(ev_store_conflict(a));
    OK(ev_store_rollback(a, &e_));
    OK(ev_store_begin(a, &e_)); /* connects again */
    ck_assert(!ev_store_conflict(a));
    ck_assert(!seen(a, "e1")); /* the lost transaction left nothing */
    OK(ev_store_inbox_add(a, "e3", 3, &e_));
    OK(ev_store_commit(a, &e_));
    OK(ev_store_begin(a, &e_));
    ck_assert(seen(a, "e3"));
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
    ev_store *a = open_with(acct_mig, 1);
    ev_store *b = open_with(acct_mig, 1);
    const char *read = "SELECT bal FROM acct WHERE id = 1";
    OK(ev_store_begin(a, &e_));
    OK(ev_store_begin(b, &e_));
    int64_t bal_a = query_int(a, read), bal_b = query_int(b, read);
    OK(set_balance(a, bal_a + 10, &e_));
    OK(ev_store_commit(a, &e_));
    ev_error err = {0};
    ck_assert_int_eq(set_balance(b, bal_b - 30, &err), EV_ERETRY);
    ck_assert(ev_store_conflict(b));
    OK(ev_store_rollback(b, &e_));
    OK(ev_store_begin(b, &e_)); /* the retry reads a's write */
    bal_b = query_int(b, read);
    ck_assert_int_eq(bal_b, 110);
    OK(set_balance(b, bal_b - 30, &e_));
    OK(ev_store_commit(b, &e_));
    ck_assert_int_eq(query_int(a, read), 80);
    ev_store_close(b);
    ev_store_close(a);
}
END_TEST

START_TEST(timers_due_skips_timers_another_instance_holds)
{
    ev_store *a = open_default();
    ev_store *b = open_default();
    ev_timer t = timer("o-1", "timeout", 1000);
    OK(ev_store_timer_set(a, &t, &e_));
    ev_timer out[2];
    OK(ev_store_begin(a, &e_));
    OK(ev_store_begin(b, &e_));
    ck_assert_uint_eq(due(a, 5000, out, 2), 1); /* a holds the row */
    ck_assert_uint_eq(due(b, 5000, out, 2), 0);
    OK(ev_store_rollback(a, &e_)); /* a died before firing: b gets it */
    ck_assert_uint_eq(due(b, 5000, out, 2), 1);
    ck_assert_str_eq(out[0].key, "o-1");
    OK(ev_store_commit(b, &e_));
    ev_store_close(b);
    ev_store_close(a);
}
END_TEST

START_TEST(outbox_walk_sees_own_rows_until_others_claimed)
{
    ev_store *a = open_owner("a");
    ev_store *b = open_owner("b");
    int64_t ids[4];
    OK(ev_store_outbox_add(a, "t", "a1", "1", 1, NULL, &ids[0], &e_));
    OK(ev_store_outbox_add(b, "t", "b1", "2", 1, NULL, &ids[1], &e_));
    OK(ev_store_outbox_add(a, "t", "a2", "3", 1, NULL, &ids[2], &e_));
    OK(ev_store_outbox_add(b, "t", "b2", "4", 1, NULL, &ids[3], &e_));
    walk wa = walk_of(a), wb = walk_of(b);
    ck_assert_uint_eq(wa.n, 2);
    ck_assert_int_eq(wa.rows[0].id, ids[0]);
    ck_assert_int_eq(wa.rows[1].id, ids[2]);
    ck_assert_uint_eq(wb.n, 2);
    ck_assert_int_eq(wb.rows[0].id, ids[1]);
    ck_assert_int_eq(wb.rows[1].id, ids[3]);
    int64_t claimed = -1, min_id = -1;
    OK(ev_store_outbox_claim(b, now_ms() + 1000, &claimed, &min_id, &e_));
    ck_assert_int_eq(claimed, 2);
    ck_assert_int_eq(min_id, ids[0]);
    ck_assert(!ev_store_in_tx(b));
    wb = walk_of(b);
    ck_assert_uint_eq(wb.n, 4);
    for (size_t i = 0; i < 4; i++)
        ck_assert_int_eq(wb.rows[i].id, ids[i]);
    ck_assert_uint_eq(walk_of(a).n, 0);
    OK(ev_store_outbox_claim(b, now_ms() + 1000, &claimed, &min_id, &e_));
    ck_assert_int_eq(claimed, 0);
    ck_assert_int_eq(min_id, INT64_MAX);
    ev_store_close(b);
    ev_store_close(a);
}
END_TEST

START_TEST(schemas_are_isolated)
{
    static const ev_migration m[] = {{1, "CREATE TABLE only_x(a BIGINT)"}};
    ev_store *x = open_with(m, 1);
    OK(ev_store_outbox_add(x, "t", "k", "v", 1, NULL, NULL, &e_));
    OK(ev_store_inbox_add(x, "e1", 1, &e_));
    char other[64];
    new_schema(other, sizeof(other));
    ev_store_opts o = base_opts();
    o.schema = other;
    ev_store *y = open_opts(&o);
    ck_assert(!has_object(y, "only_x"));
    ev_error err = {0};
    ck_assert_ptr_null(ev_store_stmt(y, "SELECT count(*) FROM only_x", &err));
    ck_assert_int_eq(err.code, EV_ESTORE);
    ck_assert_msg(strstr(err.text, "does not exist") != NULL, "%s", err.text);
    ck_assert_int_eq(count_of(y, ev_store_outbox_count), 0);
    ck_assert(!seen(y, "e1"));
    ck_assert(has_object(x, "only_x"));
    ck_assert_int_eq(count_of(x, ev_store_outbox_count), 1);
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
    ev_store_opts o = {.url = password_urls[_i], .schema = schema};
    ck_assert_int_eq(ev_store_open(&s, &o, &err), EV_ESTORE);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err.text, "connect") != NULL, "%s", err.text);
    ck_assert_msg(strstr(err.text, "s3cretpw") == NULL, "%s", err.text);
}
END_TEST

/* ---- suite --------------------------------------------------------------------- */

typedef struct test_ref {
    const TTest *const *test;
    size_t loops; /* 0 = a plain test */
} test_ref;

#define T(name)                                                                          \
    {                                                                                    \
        &name, 0                                                                         \
    }
#define LOOP(name, cases)                                                                \
    {                                                                                    \
        &name, N_OF(cases)                                                               \
    }

static const test_ref neutral_tests[] = {
    T(open_creates_runtime_tables),
    LOOP(open_rejects_bad_options, bad_open_cases),
    T(open_readonly_missing_is_not_found),
    T(open_readonly_reads_while_writer_runs),
    T(inbox_dedups_and_add_is_idempotent),
    T(inbox_claim_says_fresh_once_and_savepoint_undoes_it),
    T(outbox_delete_ids_removes_exactly_those),
    T(inbox_prune_removes_old_rows_only),
    T(outbox_each_walks_rows_in_order),
    T(outbox_value_bytes_round_trip),
    T(outbox_each_stops_on_callback_value),
    T(outbox_delete_during_walk_and_ids_not_reused),
    T(offsets_set_get_only_forward),
    T(everything_survives_close_and_reopen),
    T(rollback_leaves_nothing),
    T(savepoint_rollback_to_undoes_inner_part_only),
    T(rollback_to_ends_the_savepoint),
    T(migrations_apply_once_and_in_order),
    T(migration_pg_sql_replaces_sql_on_postgresql),
    LOOP(failing_migration_keeps_previous_version, bad_mig_cases),
    T(migrations_bad_order_or_newer_db_rejected),
    T(timers_fire_once),
    T(timers_due_earliest_first_up_to_cap),
    T(timer_set_rejects_bad_fields),
    T(stmt_binds_and_reads_each_type),
    T(stmt_cache_same_sql_same_statement_reset),
    T(stmt_cache_grows_and_keeps_statements),
    LOOP(stmt_cache_prepare_errors, bad_sql_cases),
    T(hot_path_prepares_nothing_after_warm_up),
    T(null_arguments_are_einval),
};

static const test_ref sqlite_only_tests[] = {
    LOOP(open_creates_dir_and_sets_pragmas, sync_cases),
    T(open_under_a_file_is_io_error),
    T(open_garbage_file_is_store_error),
    T(busy_database_is_retry),
    T(full_disk_is_store_error),
};

static const test_ref pg_only_tests[] = {
    T(inbox_add_of_id_another_instance_committed_is_conflict),
    T(lost_connection_is_a_retry_and_reconnects),
    T(update_of_row_changed_since_read_is_conflict),
    T(timers_due_skips_timers_another_instance_holds),
    T(outbox_walk_sees_own_rows_until_others_claimed),
    T(schemas_are_isolated),
    LOOP(connect_error_never_shows_password, password_urls),
};

static void add_tests(TCase *tc, const test_ref *refs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (refs[i].loops == 0)
            tcase_add_test(tc, *refs[i].test);
        else
            tcase_add_loop_test(tc, *refs[i].test, 0, (int)refs[i].loops);
    }
}

static TCase *sqlite_tcase(const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_add_unchecked_fixture(tc, setup_base, teardown_base);
    tcase_add_checked_fixture(tc, setup_sqlite, teardown_sqlite);
    return tc;
}

static Suite *store_suite(void)
{
    Suite *su = suite_create("store");
    TCase *tc = sqlite_tcase("sqlite");
    add_tests(tc, neutral_tests, N_OF(neutral_tests));
    suite_add_tcase(su, tc);
    tc = sqlite_tcase("sqlite-only");
    add_tests(tc, sqlite_only_tests, N_OF(sqlite_only_tests));
    suite_add_tcase(su, tc);
    if (pg_url == NULL) {
        fprintf(stderr, "check_store: CHOREO_TEST_PG unset, PostgreSQL cases skipped\n");
        return su;
    }
    tc = tcase_create("postgresql");
    tcase_add_unchecked_fixture(tc, setup_pg_base, teardown_pg_base);
    tcase_add_checked_fixture(tc, setup_pg, teardown_pg);
    add_tests(tc, neutral_tests, N_OF(neutral_tests));
    add_tests(tc, pg_only_tests, N_OF(pg_only_tests));
    suite_add_tcase(su, tc);
    return su;
}

int main(void)
{
    pg_url = getenv("CHOREO_TEST_PG");
    if (pg_url != NULL && pg_url[0] == '\0')
        pg_url = NULL;
    SRunner *sr = srunner_create(store_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
