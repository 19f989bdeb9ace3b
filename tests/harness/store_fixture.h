/* SPDX-License-Identifier: MIT */
/* The store tests' fixtures (tests/unit/check_store_*.c): each test body runs on
 * SQLite and, when CHOREO_TEST_PG is set, on PostgreSQL in a schema of its own;
 * helpers that open the store of the current test and read from it. */
#ifndef STORE_FIXTURE_H
#define STORE_FIXTURE_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* The backend the shared test bodies run on, set by each TCase's fixture. */
extern ev_store_kind sf_backend;
extern const char *sf_pg_url; /* CHOREO_TEST_PG, NULL when unset */
extern char sf_tmpdir[128];   /* one per test (SQLite) */
extern char sf_dbpath[256];   /* the SQLite file of the test */
extern char sf_schema[64];    /* the test's main PostgreSQL schema */

#define BY_BACKEND(sq, pg) (sf_backend == EV_STORE_POSTGRES ? (pg) : (sq))
#define ON_SQ 1u
#define ON_PG 2u
#define ON_BOTH (ON_SQ | ON_PG)
#define ON_THIS BY_BACKEND(ON_SQ, ON_PG)
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

#define OK(call)                                                                         \
    do {                                                                                 \
        ev_error e_ = {0};                                                               \
        int rc_ = (call);                                                                \
        ck_assert_msg(rc_ == 0, "%s -> %d %s", #call, rc_, e_.text);                     \
    } while (0)
/* Calls use `&e_` as their error record. */

/* A fresh schema name "t_<runner pid>_<pid>_<n>" into out, dropped at teardown. */
void sf_new_schema(char *out, size_t cap);
/* The first column of the first row of sql ($1 = param) as an integer over an
 * own libpq connection; INT64_MIN with the error on stderr. */
int64_t sf_admin_query(const char *sql, const char *param);
bool sf_schema_exists(const char *name);

/* The store options of the current backend: the SQLite file, or url + schema. */
ev_store_opts sf_base_opts(void);
/* Opens (the test fails when it cannot); the store is the caller's. */
ev_store *sf_open_opts(const ev_store_opts *o);
ev_store *sf_open_with(const ev_migration *m, size_t n);
ev_store *sf_open_default(void);
ev_store *sf_open_owner(const char *owner);
/* Whether the store of the current test exists (file, or schema). */
bool sf_store_exists(void);
/* One integer from a query through the statement cache. */
int64_t sf_query_int(ev_store *s, const char *sql);
/* Whether a table or index of that name is in the store's schema. */
bool sf_has_object(ev_store *s, const char *name);
int64_t sf_count_of(ev_store *s, int (*fn)(ev_store *, int64_t *, ev_error *));
bool sf_seen(ev_store *s, const char *id);
int64_t sf_offset_of(ev_store *s, const char *topic, int32_t part);
ev_timer sf_timer(const char *key, const char *kind, int64_t due);
int64_t sf_now_ms(void);
/* The timers due at now (at most cap, into out); the earliest due time. */
size_t sf_due(ev_store *s, int64_t now, ev_timer *out, size_t cap);
int64_t sf_next_due(ev_store *s);

/* An outbox walk: the rows seen, in order. */
typedef struct sf_row {
    int64_t id;
    char topic[32];
    char key[32];
    bool has_key;
    char value[32];
    size_t len;
    char headers[64];
    bool has_headers;
} sf_row;

typedef struct sf_walk {
    sf_row rows[16];
    size_t n;
    int stop_after; /* return 7 after this many rows; 0 = never */
    ev_store *del;  /* delete each row while walking */
} sf_walk;

/* ev_store_outbox_each's callback filling a walk (arg). */
int sf_collect(void *arg, int64_t id, const char *topic, const char *key,
               const void *value, size_t len, const char *headers_json);
/* Every outbox row, from the start. */
sf_walk sf_walk_of(ev_store *s);

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

/* Runs the suite name: neutral tests on SQLite and PostgreSQL, the others on
 * their backend only (PostgreSQL skipped, said on stderr, without
 * CHOREO_TEST_PG). Any list may be NULL. Returns main's exit status. */
int sf_run(const char *name, const test_ref *neutral, size_t n_neutral,
           const test_ref *sqlite_only, size_t n_sqlite, const test_ref *pg_only,
           size_t n_pg);

#endif
