/* SPDX-License-Identifier: MIT */
/* The store tests' fixtures: a temporary directory per SQLite test, a schema
 * per PostgreSQL test (dropped after, even after a failure), and helpers. */
#include "store_fixture.h"

#include <ftw.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

ev_store_kind sf_backend;
const char *sf_pg_url;
char sf_tmpdir[128];
char sf_dbpath[256];
char sf_schema[64];

static pid_t run_pid;       /* the runner's: prefix of every schema of this run */
static char basedir[64];    /* made and removed by the parent, even after a failure */
static char dropped[4][64]; /* schemas this test made, dropped in its teardown */
static size_t n_dropped;

/* ---- PostgreSQL administration (own connection, libpq) ----------------------- */

static void pg_quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* The first column of the first row of sql ($1 = param) as an integer;
 * INT64_MIN with the error on stderr. Runs in the parent's fixtures too. */
int64_t sf_admin_query(const char *sql, const char *param)
{
    int64_t v = INT64_MIN;
    PGconn *c = PQconnectdb(sf_pg_url);
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

bool sf_schema_exists(const char *name)
{
    return sf_admin_query("SELECT count(*) FROM pg_namespace WHERE nspname = $1", name) >
           0;
}

/* A fresh schema name "t_<runner pid>_<pid>_<n>" into out, dropped at teardown. */
void sf_new_schema(char *out, size_t cap)
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
    sf_backend = EV_STORE_SQLITE;
    snprintf(sf_tmpdir, sizeof(sf_tmpdir), "%s/t.XXXXXX", basedir);
    ck_assert_ptr_nonnull(mkdtemp(sf_tmpdir));
    snprintf(sf_dbpath, sizeof(sf_dbpath), "%s/data/orders/svc.db", sf_tmpdir);
}

static void teardown_sqlite(void)
{
    nftw(sf_tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
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
    sf_admin_query(sql, NULL);
}

static void setup_pg(void)
{
    sf_backend = EV_STORE_POSTGRES;
    n_dropped = 0;
    sf_new_schema(sf_schema, sizeof(sf_schema));
}

static void teardown_pg(void)
{
    char sql[128];
    for (size_t i = 0; i < n_dropped; i++) {
        snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS \"%.63s\" CASCADE", dropped[i]);
        sf_admin_query(sql, NULL);
    }
}

/* ---- helpers ------------------------------------------------------------------- */

/* The store options of the current backend: the SQLite file, or url + schema. */
ev_store_opts sf_base_opts(void)
{
    ev_store_opts o = {0};
    if (sf_backend == EV_STORE_POSTGRES) {
        o.url = sf_pg_url;
        o.schema = sf_schema;
    } else {
        o.path = sf_dbpath;
    }
    return o;
}

ev_store *sf_open_opts(const ev_store_opts *o)
{
    ev_store *s = NULL;
    ev_error err = {0};
    int rc = ev_store_open(&s, o, &err);
    ck_assert_msg(rc == 0, "open: %s", err.text);
    return s;
}

ev_store *sf_open_with(const ev_migration *m, size_t n)
{
    ev_store_opts o = sf_base_opts();
    o.migrations = m;
    o.n_migrations = n;
    return sf_open_opts(&o);
}

ev_store *sf_open_default(void)
{
    return sf_open_with(NULL, 0);
}

ev_store *sf_open_owner(const char *owner)
{
    ev_store_opts o = sf_base_opts();
    o.owner = owner;
    return sf_open_opts(&o);
}

/* Whether the store of the current test exists (file, or schema). */
bool sf_store_exists(void)
{
    struct stat sb;
    return sf_backend == EV_STORE_POSTGRES ? sf_schema_exists(sf_schema)
                                           : stat(sf_dbpath, &sb) == 0;
}

/* One integer from a query through the statement cache. */
int64_t sf_query_int(ev_store *s, const char *sql)
{
    int64_t v = 0;
    bool found = false;
    ev_error err = {0};
    int rc = ev_store_query_int(ev_store_stmt(s, sql, &err), 0, &v, &found, &err);
    ck_assert_msg(rc == 0 && found, "%s: %d %s", sql, rc, err.text);
    return v;
}

/* Whether a table or index of that name is in the store's schema. */
bool sf_has_object(ev_store *s, const char *name)
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

int64_t sf_count_of(ev_store *s, int (*fn)(ev_store *, int64_t *, ev_error *))
{
    int64_t n = -1;
    ev_error err = {0};
    ck_assert_msg(fn(s, &n, &err) == 0, "%s", err.text);
    return n;
}

bool sf_seen(ev_store *s, const char *id)
{
    bool b = false;
    ev_error err = {0};
    ck_assert_msg(ev_store_inbox_seen(s, id, &b, &err) == 0, "%s", err.text);
    return b;
}

int64_t sf_offset_of(ev_store *s, const char *topic, int32_t part)
{
    int64_t next = -2;
    ev_error err = {0};
    ck_assert_msg(ev_store_offset_get(s, topic, part, &next, &err) == 0, "%s", err.text);
    return next;
}

ev_timer sf_timer(const char *key, const char *kind, int64_t due)
{
    ev_timer t = {.due_at = due};
    snprintf(t.key, sizeof(t.key), "%s", key);
    snprintf(t.kind, sizeof(t.kind), "%s", kind);
    snprintf(t.correlationid, sizeof(t.correlationid), "corr-%s", key);
    snprintf(t.causationid, sizeof(t.causationid), "cause-%s", key);
    return t;
}

int64_t sf_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int sf_collect(void *arg, int64_t id, const char *topic, const char *key,
               const void *value, size_t len, const char *headers_json)
{
    sf_walk *w = arg;
    ck_assert_ptr_nonnull(value);
    ck_assert_uint_lt(w->n, 16);
    sf_row *r = &w->rows[w->n++];
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

sf_walk sf_walk_of(ev_store *s)
{
    sf_walk w = {0};
    OK(ev_store_outbox_each(s, 0, 0, sf_collect, &w, &e_));
    return w;
}
size_t sf_due(ev_store *s, int64_t now, ev_timer *out, size_t cap)
{
    size_t n = 99;
    ev_error err = {0};
    ck_assert_msg(ev_store_timers_due(s, now, out, cap, &n, &err) == 0, "%s", err.text);
    return n;
}

int64_t sf_next_due(ev_store *s)
{
    int64_t v = 0;
    OK(ev_store_timers_next(s, &v, &e_));
    return v;
}
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

int sf_run(const char *name, const test_ref *neutral, size_t n_neutral,
           const test_ref *sqlite_only, size_t n_sqlite, const test_ref *pg_only,
           size_t n_pg)
{
    sf_pg_url = getenv("CHOREO_TEST_PG");
    if (sf_pg_url != NULL && sf_pg_url[0] == '\0')
        sf_pg_url = NULL;
    Suite *su = suite_create(name);
    TCase *tc;
    if (n_neutral > 0) {
        tc = sqlite_tcase("sqlite");
        add_tests(tc, neutral, n_neutral);
        suite_add_tcase(su, tc);
    }
    if (n_sqlite > 0) {
        tc = sqlite_tcase("sqlite-only");
        add_tests(tc, sqlite_only, n_sqlite);
        suite_add_tcase(su, tc);
    }
    if (sf_pg_url == NULL) {
        fprintf(stderr, "check_%s: CHOREO_TEST_PG unset, PostgreSQL cases skipped\n",
                name);
    } else if (n_neutral + n_pg > 0) {
        tc = tcase_create("postgresql");
        tcase_add_unchecked_fixture(tc, setup_pg_base, teardown_pg_base);
        tcase_add_checked_fixture(tc, setup_pg, teardown_pg);
        add_tests(tc, neutral, n_neutral);
        add_tests(tc, pg_only, n_pg);
        suite_add_tcase(su, tc);
    }
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
