/* SPDX-License-Identifier: MIT */
/* The runtime's test service "counter": test.add {key, n} adds n to a per-key
 * counter and emits test.added {key, total, n}; knobs in the environment. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime.h"

/* Knobs (read once at start):
 *   CHOREO_TEST_SLOW_MS       sleep this long in every test.add
 *   CHOREO_TEST_FAIL_KEY      for these keys (comma-separated), return
 *                             EV_ERETRY the first
 *   CHOREO_TEST_FAIL_TIMES    ... this many times (per key, per process)
 *   CHOREO_TEST_PERM_FAIL_KEY for this key, always EV_ERETRY
 *   CHOREO_TEST_COMMIT_FAIL_TIMES  before_commit fails this many times
 *   CHOREO_TEST_TIMER_FAIL_TIMES   the remind timer fails for good (EV_EINVAL,
 *                             dead-lettered) this many times (per process)
 * Data knobs: n < 0 is a permanent handler error; key "bad-emit" emits a
 * schema-invalid test.added; remind_ms arms a timer "remind" for the key. */
static long slow_ms;
#define MAX_FAIL_KEYS 16
static char fail_keys[MAX_FAIL_KEYS][32];
static long failed_so_far[MAX_FAIL_KEYS];
static size_t n_fail_keys;
static long fail_times;
static const char *perm_fail_key;
static long commit_fail_times;
static long commit_failed_so_far;
static long timer_fail_times;
static long timer_failed_so_far;

static const ev_migration migrations[] = {
    {1, "CREATE TABLE counters(key TEXT PRIMARY KEY NOT NULL, total BIGINT NOT NULL,"
        " adds BIGINT NOT NULL)"},
};

static long env_long(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        return 0;
    char *end = NULL;
    long n = strtol(v, &end, 10);
    return end != NULL && *end == '\0' && n > 0 ? n : 0;
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* One upsert that adds n and returns the new total: the row is written before
 * its total is read, so concurrent adds to a key conflict instead of losing one. */
static int add_to(ev_ctx *ctx, const char *key, json_int_t n, json_int_t *total,
                  ev_error *err)
{
    int64_t v = 0;
    bool found = false;
    int rc = ev_store_query_int(
        ev_store_bind(ev_ctx_store(ctx), err,
                      "INSERT INTO counters(key, total, adds) VALUES(?1, ?2, 1)"
                      " ON CONFLICT(key) DO UPDATE SET total = counters.total +"
                      " excluded.total, adds = counters.adds + 1 RETURNING total",
                      "si", key, (int64_t)n),
        0, &v, &found, err);
    if (rc < 0)
        return rc;
    if (!found)
        return ev_error_set(err, EV_ESTORE, "counter upsert: no total returned");
    *total = v;
    return 0;
}

static int get_total(ev_ctx *ctx, const char *key, json_int_t *total, ev_error *err)
{
    int64_t v = 0;
    bool found = false;
    int rc = ev_store_query_int(ev_store_bind(ev_ctx_store(ctx), err,
                                              "SELECT total FROM counters WHERE key = ?1",
                                              "s", key),
                                0, &v, &found, err);
    *total = v;
    return rc;
}

/* Test knobs that make the handler fail; 0 when it should go on. */
static int knob_failure(const char *key, json_int_t n, ev_error *err)
{
    if (perm_fail_key != NULL && strcmp(key, perm_fail_key) == 0)
        return ev_error_set(err, EV_ERETRY, "test: key %s always fails", key);
    for (size_t i = 0; i < n_fail_keys; i++) {
        if (strcmp(key, fail_keys[i]) != 0 || failed_so_far[i] >= fail_times)
            continue;
        failed_so_far[i]++;
        return ev_error_set(err, EV_ERETRY, "test: transient failure %ld of %ld",
                            failed_so_far[i], fail_times);
    }
    if (n < 0)
        return ev_error_set(err, EV_EINVAL, "test: negative n %" JSON_INTEGER_FORMAT, n);
    return 0;
}

static int on_add(ev_ctx *ctx, const ev_envelope *ev, ev_error *err)
{
    const char *key = json_string_value(json_object_get(ev->data, "key"));
    json_int_t n = json_integer_value(json_object_get(ev->data, "n"));
    if (key == NULL)
        return ev_error_set(err, EV_ESCHEMA, "no key");
    if (slow_ms > 0)
        pause_ms(slow_ms);
    int rc = knob_failure(key, n, err);
    if (rc != 0)
        return rc;
    if (strcmp(key, "bad-emit") == 0)
        return ev_emit(ctx, "test.added",
                       json_pack("{s:s,s:s}", "key", key, "total", "x"), err);
    json_int_t total = 0;
    rc = add_to(ctx, key, n, &total, err);
    if (rc == 0)
        rc = ev_emit(ctx, "test.added",
                     json_pack("{s:s,s:I,s:I}", "key", key, "total", total, "n", n), err);
    json_t *remind = json_object_get(ev->data, "remind_ms");
    if (rc == 0 && json_is_integer(remind))
        rc = ev_timer_arm(ctx, key, "remind", json_integer_value(remind), err);
    return rc;
}

static int on_timer(ev_ctx *ctx, const ev_timer *t, ev_error *err)
{
    if (strcmp(t->kind, "remind") != 0)
        return 0;
    if (timer_failed_so_far < timer_fail_times) {
        timer_failed_so_far++;
        return ev_error_set(err, EV_EINVAL, "test: timer failure %ld of %ld",
                            timer_failed_so_far, timer_fail_times);
    }
    json_int_t total = 0;
    int rc = get_total(ctx, t->key, &total, err);
    if (rc != 0)
        return rc;
    return ev_emit(ctx, "test.reminded",
                   json_pack("{s:s,s:I}", "key", t->key, "total", total), err);
}

/* Fails the first commit_fail_times batches that did work. */
static int before_commit(ev_ctx *ctx, ev_error *err)
{
    (void)ctx;
    if (commit_failed_so_far >= commit_fail_times)
        return 0;
    commit_failed_so_far++;
    return ev_error_set(err, EV_EIO, "test: before commit failure %ld of %ld",
                        commit_failed_so_far, commit_fail_times);
}

static int dump(ev_store *s, json_t **out, ev_error *err)
{
    ev_stmt *st =
        ev_store_stmt(s, "SELECT key, total, adds FROM counters ORDER BY key", err);
    if (st == NULL)
        return err->code ? err->code : EV_ESTORE;
    json_t *counters = json_object();
    json_int_t sum = 0, adds = 0;
    int rc = ev_stmt_step(st, err);
    for (; rc == 1; rc = ev_stmt_step(st, err)) {
        json_int_t total = ev_stmt_int(st, 1);
        json_int_t a = ev_stmt_int(st, 2);
        json_object_set_new(counters, ev_stmt_text(st, 0),
                            json_pack("{s:I,s:I}", "total", total, "adds", a));
        sum += total;
        adds += a;
    }
    if (rc < 0) {
        json_decref(counters);
        return rc;
    }
    *out = json_pack("{s:o,s:I,s:I}", "counters", counters, "sum", sum, "adds", adds);
    return 0;
}

static const ev_handler handlers[] = {
    {"test.add", on_add},
    {NULL, NULL},
};

static const char *const emits[] = {"test.added", "test.reminded", NULL};

static const ev_service_def counter_def = {
    .name = "counter",
    .handlers = handlers,
    .emits = emits,
    .migrations = migrations,
    .n_migrations = sizeof(migrations) / sizeof(migrations[0]),
    .on_timer = on_timer,
    .dump = dump,
    .before_commit = before_commit,
};

int main(int argc, char **argv)
{
    slow_ms = env_long("CHOREO_TEST_SLOW_MS");
    const char *keys = getenv("CHOREO_TEST_FAIL_KEY");
    while (keys != NULL && *keys != '\0' && n_fail_keys < MAX_FAIL_KEYS) {
        size_t n = strcspn(keys, ",");
        snprintf(fail_keys[n_fail_keys++], sizeof(fail_keys[0]), "%.*s",
                 (int)(n < 31 ? n : 31), keys);
        keys += n + (keys[n] == ',');
    }
    fail_times = env_long("CHOREO_TEST_FAIL_TIMES");
    perm_fail_key = getenv("CHOREO_TEST_PERM_FAIL_KEY");
    commit_fail_times = env_long("CHOREO_TEST_COMMIT_FAIL_TIMES");
    timer_fail_times = env_long("CHOREO_TEST_TIMER_FAIL_TIMES");
    return ev_service_main(&counter_def, argc, argv);
}
