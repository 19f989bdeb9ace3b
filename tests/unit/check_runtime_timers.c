/* SPDX-License-Identifier: MIT */
/* Timers fired by the runtime's batch (events/runtime_timers.c through
 * ev_rt_run_batch), no broker: what a fired timer costs in statements, the
 * optimistic attempt a failing timer aborts, retries and dead letters, re-arming,
 * the next due time, and instances sharing one PostgreSQL schema. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "runtime_internal.h"
#include "store_fixture.h"

#define BACKOFF_MS 100

static const ev_migration migrations[] = {
    {1, "CREATE TABLE fired(key TEXT PRIMARY KEY NOT NULL, n BIGINT NOT NULL)"},
};

/* The handler's knobs: timers of fail_key fail with fail_code; rearm_key's
 * timer arms itself again; calls counts the failing timer's handler calls. */
static const char *fail_key;
static int fail_code;
static int calls;
static const char *rearm_key;

/* One statement per timer: fired(key).n counts how often it was applied. */
static int on_timer(ev_ctx *ctx, const ev_timer *t, ev_error *err)
{
    if (fail_key != NULL && strcmp(t->key, fail_key) == 0) {
        calls++;
        return ev_error_set(err, fail_code, "test: timer %s fails", t->key);
    }
    int rc =
        ev_store_exec(ev_store_bind(ev_ctx_store(ctx), err,
                                    "INSERT INTO fired(key, n) VALUES(?1, 1)"
                                    " ON CONFLICT(key) DO UPDATE SET n = fired.n + 1",
                                    "s", t->key),
                      err);
    if (rc == 0 && rearm_key != NULL && strcmp(t->key, rearm_key) == 0)
        rc = ev_timer_arm(ctx, t->key, t->kind, 500, err);
    return rc;
}

static const ev_service_def def = {
    .name = "timers",
    .migrations = migrations,
    .n_migrations = 1,
    .on_timer = on_timer,
};
static ev_config cfg = {.retry_backoff_ms = BACKOFF_MS, .max_attempts = 5};

/* A runtime without consumer and producer: enough for batches of timers. */
static ev_runtime *rt_open(void)
{
    ev_runtime *rt = calloc(1, sizeof(*rt));
    ck_assert_ptr_nonnull(rt);
    rt->def = &def;
    rt->cfg = &cfg;
    rt->store = sf_open_with(migrations, N_OF(migrations));
    rt->resend_from = INT64_MAX;
    rt->next_timer_due = INT64_MAX;
    snprintf(rt->source, sizeof(rt->source), "/choreo/timers");
    snprintf(rt->dlq_topic, sizeof(rt->dlq_topic), "dlq.timers");
    return rt;
}

static void rt_close(ev_runtime *rt)
{
    ev_store_close(rt->store);
    free(rt->parts);
    free(rt->snap);
    free(rt->mq);
    free(rt->done);
    free(rt);
}

/* Arms key/t due at due, as a handler of an earlier batch did. */
static void arm(ev_runtime *rt, const char *key, int64_t due)
{
    ev_timer t = sf_timer(key, "t", due);
    OK(ev_store_timer_set(rt->store, &t, &e_));
    if (due < rt->next_timer_due)
        rt->next_timer_due = due;
}

/* A batch of no records at clock now that fires the due timers; the
 * statements it ran. */
static uint64_t batch_at(ev_runtime *rt, int64_t now)
{
    rt->clock_ms = now;
    uint64_t before = ev_store_stmts_run(rt->store);
    OK(ev_rt_run_batch(rt, NULL, 0, false, true, &e_));
    return ev_store_stmts_run(rt->store) - before;
}

/* How often key's timer was applied (0: never). */
static int64_t fired(ev_runtime *rt, const char *key)
{
    int64_t n = 0;
    OK(ev_store_query_int(
        ev_store_bind(rt->store, &e_, "SELECT n FROM fired WHERE key = ?1", "s", key), 0,
        &n, NULL, &e_));
    return n;
}

/* The outbox's dead letters: how many, the key of the last. */
typedef struct dead {
    size_t n;
    char key[32];
} dead;

static int collect_dead(void *arg, int64_t id, const char *topic, const char *key,
                        const void *value, size_t len, const char *headers_json)
{
    (void)id, (void)value, (void)len, (void)headers_json;
    dead *d = arg;
    if (strcmp(topic, "dlq.timers") == 0) {
        d->n++;
        snprintf(d->key, sizeof(d->key), "%s", key != NULL ? key : "");
    }
    return 0;
}

static dead dead_letters(ev_runtime *rt)
{
    dead d = {0};
    OK(ev_store_outbox_each(rt->store, 0, 0, collect_dead, &d, &e_));
    return d;
}

static bool armed(ev_runtime *rt, const char *key, int64_t *due)
{
    ev_timer t;
    bool found = false;
    OK(ev_store_timer_get(rt->store, key, "t", &t, &found, &e_));
    if (found && due != NULL)
        *due = t.due_at;
    return found;
}

/* A fired timer costs its handler's statements only: it is taken with the
 * others in one statement, and fired without a savepoint of its own. */
START_TEST(fired_timer_costs_only_its_handlers_statements)
{
    ev_runtime *rt = rt_open();
    static const size_t sizes[2] = {2, 12};
    uint64_t stmts[2];
    for (size_t k = 0; k < 2; k++) {
        for (size_t i = 0; i < sizes[k]; i++) {
            char key[32];
            snprintf(key, sizeof(key), "o-%zu-%zu", k, i);
            arm(rt, key, 1000 + (int64_t)i);
        }
        stmts[k] = batch_at(rt, 2000 + (int64_t)k);
        ck_assert_int_eq(sf_count_of(rt->store, ev_store_timers_count), 0);
    }
    ck_assert_uint_eq(rt->st.timers_fired, sizes[0] + sizes[1]);
    ck_assert_int_eq(fired(rt, "o-1-11"), 1);
    fprintf(stderr, "%s: batch of %zu timers: %llu statements, of %zu: %llu\n",
            BY_BACKEND("sqlite", "postgresql"), sizes[0], (unsigned long long)stmts[0],
            sizes[1], (unsigned long long)stmts[1]);
    ck_assert_uint_eq(stmts[1] - stmts[0], (sizes[1] - sizes[0]) * 1);
    ck_assert_uint_le(stmts[0], sizes[0] + 4); /* begin, take, next?, commit */
    ck_assert_int_eq(rt->next_timer_due, INT64_MAX);
    rt_close(rt);
}
END_TEST

/* A timer that fails for good in the optimistic attempt aborts it; the careful
 * run fires every timer again, each once, and dead-letters that one. */
START_TEST(failing_timer_aborts_the_attempt_then_is_dead_lettered_once)
{
    ev_runtime *rt = rt_open();
    fail_key = "bad";
    fail_code = EV_EINVAL;
    arm(rt, "a", 1000);
    arm(rt, "bad", 1001);
    arm(rt, "c", 1002);
    batch_at(rt, 2000);
    ck_assert_int_eq(calls, 2); /* the optimistic attempt, then the careful run */
    ck_assert_int_eq(fired(rt, "a"), 1);
    ck_assert_int_eq(fired(rt, "c"), 1);
    ck_assert_uint_eq(rt->st.timers_fired, 3);
    ck_assert_uint_eq(rt->st.dead_lettered, 1);
    ck_assert_uint_eq(rt->st.retried, 0);
    ck_assert(!armed(rt, "bad", NULL));
    ck_assert_int_eq(sf_count_of(rt->store, ev_store_timers_count), 0);
    dead d = dead_letters(rt);
    ck_assert_uint_eq(d.n, 1);
    ck_assert_str_eq(d.key, "bad");
    ck_assert_int_eq(rt->next_timer_due, INT64_MAX);
    rt_close(rt);
}
END_TEST

/* EV_ERETRY in the optimistic attempt: aborted, then the careful run sets the
 * timer again after the backoff; it fires when that is due. */
START_TEST(retried_timer_is_set_again_after_the_backoff)
{
    ev_runtime *rt = rt_open();
    fail_key = "again";
    fail_code = EV_ERETRY;
    arm(rt, "again", 1000);
    arm(rt, "b", 1000);
    arm(rt, "later", 9000);
    batch_at(rt, 2000);
    ck_assert_int_eq(calls, 2);
    ck_assert_int_eq(fired(rt, "b"), 1);
    ck_assert_uint_eq(rt->st.retried, 1);
    ck_assert_uint_eq(rt->st.dead_lettered, 0);
    int64_t due = 0;
    ck_assert(armed(rt, "again", &due));
    ck_assert_int_eq(due, 2000 + BACKOFF_MS);
    ck_assert_int_eq(rt->next_timer_due, 2000 + BACKOFF_MS);
    ck_assert_uint_le(batch_at(rt, 2050), 2); /* not due yet: begin, commit */
    fail_key = NULL;
    batch_at(rt, 2000 + BACKOFF_MS);
    ck_assert_int_eq(fired(rt, "again"), 1);
    ck_assert(!armed(rt, "again", NULL));
    ck_assert_int_eq(rt->next_timer_due, 9000);
    ck_assert_uint_eq(dead_letters(rt).n, 0);
    rt_close(rt);
}
END_TEST

/* A handler may arm its own timer again: taken (deleted) before it ran. */
START_TEST(timer_rearmed_by_its_handler_stays_armed)
{
    ev_runtime *rt = rt_open();
    rearm_key = "loop";
    arm(rt, "loop", 1000);
    batch_at(rt, 2000);
    int64_t due = 0;
    ck_assert(armed(rt, "loop", &due));
    ck_assert_int_eq(due, 2500);
    ck_assert_int_eq(rt->next_timer_due, 2500);
    batch_at(rt, 2500);
    ck_assert_int_eq(fired(rt, "loop"), 2);
    ck_assert(armed(rt, "loop", &due));
    ck_assert_int_eq(due, 3000);
    rt_close(rt);
}
END_TEST

/* More due than one batch takes: the next batch goes on at once. */
START_TEST(timers_beyond_one_batch_fire_in_the_next)
{
    ev_runtime *rt = rt_open();
    for (int i = 0; i < 70; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%02d", i);
        arm(rt, key, 1000 + i);
    }
    arm(rt, "z", 5000);
    batch_at(rt, 2000);
    ck_assert_uint_eq(rt->st.timers_fired, 64);
    ck_assert_int_eq(rt->next_timer_due, 2000);
    ck_assert_int_eq(fired(rt, "k63"), 1);
    ck_assert_int_eq(fired(rt, "k64"), 0);
    batch_at(rt, 2001);
    ck_assert_uint_eq(rt->st.timers_fired, 70);
    ck_assert_int_eq(fired(rt, "k69"), 1);
    ck_assert_int_eq(rt->next_timer_due, 5000);
    rt_close(rt);
}
END_TEST

/* A timer another instance (here: another connection) armed is not in
 * next_timer_due until the runtime asks the store again. */
START_TEST(timer_armed_elsewhere_is_found_by_the_refresh)
{
    ev_runtime *rt = rt_open();
    arm(rt, "mine", 1000);
    batch_at(rt, 2000);
    ck_assert_int_eq(rt->next_timer_due, INT64_MAX);
    ev_store *other = sf_open_with(migrations, N_OF(migrations));
    ev_timer t = sf_timer("theirs", "t", 2500);
    OK(ev_store_timer_set(other, &t, &e_));
    ev_store_close(other);
    batch_at(rt, 3000);
    ck_assert_int_eq(fired(rt, "theirs"), 0);
    OK(ev_rt_timers_refresh(rt, &e_));
    ck_assert_int_eq(rt->next_timer_due, 2500);
    batch_at(rt, 3000);
    ck_assert_int_eq(fired(rt, "theirs"), 1);
    rt_close(rt);
}
END_TEST

/* Two instances on one schema: a timer the other holds is skipped and not
 * waited for; when its holder rolls back (died), the refresh finds it and it
 * fires here, once. */
START_TEST(timer_held_by_another_instance_fires_once)
{
    ev_runtime *a = rt_open();
    ev_runtime *b = rt_open();
    arm(a, "t1", 1000);
    arm(b, "t1", 1000);
    ev_timer out[4];
    size_t n = 0;
    int64_t next = 0;
    OK(ev_store_begin(a->store, &e_));
    OK(ev_store_timers_take(a->store, 2000, out, 4, &n, &next, &e_));
    ck_assert_uint_eq(n, 1);
    batch_at(b, 2000); /* b's take skips it */
    ck_assert_uint_eq(b->st.timers_fired, 0);
    ck_assert_int_eq(b->next_timer_due, INT64_MAX);
    OK(ev_store_rollback(a->store, &e_));
    OK(ev_rt_timers_refresh(b, &e_));
    ck_assert_int_eq(b->next_timer_due, 1000);
    batch_at(b, 2001);
    ck_assert_uint_eq(b->st.timers_fired, 1);
    batch_at(a, 2002); /* nothing left for a */
    ck_assert_uint_eq(a->st.timers_fired, 0);
    ck_assert_int_eq(fired(a, "t1"), 1);
    rt_close(b);
    rt_close(a);
}
END_TEST

static const test_ref neutral_tests[] = {
    T(fired_timer_costs_only_its_handlers_statements),
    T(failing_timer_aborts_the_attempt_then_is_dead_lettered_once),
    T(retried_timer_is_set_again_after_the_backoff),
    T(timer_rearmed_by_its_handler_stays_armed),
    T(timers_beyond_one_batch_fire_in_the_next),
    T(timer_armed_elsewhere_is_found_by_the_refresh),
};

static const test_ref pg_only_tests[] = {
    T(timer_held_by_another_instance_fires_once),
};

int main(void)
{
    ev_log_set_level(EV_LOG_ERROR);
    return sf_run("runtime_timers", neutral_tests, N_OF(neutral_tests), NULL, 0,
                  pg_only_tests, N_OF(pg_only_tests));
}
