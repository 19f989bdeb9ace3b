/* SPDX-License-Identifier: MIT */
/* events/runtime against the real broker through the counter test service:
 * dedup, dead letters, tolerant reader, retries, timers, kill -9, broker bounce. */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "log.h"

#define WAIT_MS 60000
#define STOP_MS 30000

typedef struct svc {
    char prefix[64];
    char dir[PATH_MAX];
    char log[PATH_MAX + 16];
    char bin[PATH_MAX];
    char in[160], out[160], dlq[160];
    char env_buf[16][256];
    char *env[24];
    size_t n_env;
    pid_t pid;
} svc;

/* Fails the test with the service's log on stderr. */
#define SVC_ASSERT(s, cond, ...)                                                         \
    do {                                                                                 \
        bool ok_ = (cond);                                                               \
        if (!ok_)                                                                        \
            harness_dump_log((s)->log, 6000);                                            \
        ck_assert_msg(ok_, __VA_ARGS__);                                                 \
    } while (0)

static void svc_env(svc *s, const char *kv)
{
    ck_assert_uint_lt(s->n_env, 16);
    snprintf(s->env_buf[s->n_env], sizeof(s->env_buf[0]), "%s", kv);
    s->env[s->n_env] = s->env_buf[s->n_env];
    s->env[++s->n_env] = NULL;
}

static void svc_init(svc *s)
{
    memset(s, 0, sizeof(*s));
    harness_prefix(s->prefix, sizeof(s->prefix));
    ck_assert_int_eq(harness_tmpdir(s->dir, sizeof(s->dir)), 0);
    snprintf(s->log, sizeof(s->log), "%s/service.log", s->dir);
    harness_build_path(s->bin, sizeof(s->bin), "tests/integration/svc_counter");
    harness_topic(s->in, sizeof(s->in), s->prefix, "in");
    harness_topic(s->out, sizeof(s->out), s->prefix, "out");
    harness_topic(s->dlq, sizeof(s->dlq), s->prefix, "dlq.counter");
    char kv[PATH_MAX + 64], fixtures[PATH_MAX];
    snprintf(kv, sizeof(kv), "CHOREO_TOPIC_PREFIX=%s", s->prefix);
    svc_env(s, kv);
    snprintf(kv, sizeof(kv), "CHOREO_DATA_DIR=%s", s->dir);
    svc_env(s, kv);
    harness_source_path(fixtures, sizeof(fixtures), "tests/fixtures/runtime");
    snprintf(kv, sizeof(kv), "CHOREO_SCHEMA_DIR=%s", fixtures);
    svc_env(s, kv);
    svc_env(s, "CHOREO_HTTP_ADDR=");
    svc_env(s, "CHOREO_KAFKA_session_timeout_ms=6000");
    svc_env(s, "CHOREO_RETRY_BACKOFF_MS=20");
    ck_assert_int_eq(harness_create_topic(s->in, 3, 10000), 0);
}

static void svc_start(svc *s)
{
    char *argv[] = {s->bin, NULL};
    s->pid = harness_spawn(s->bin, argv, s->env, s->log);
    ck_assert_int_gt(s->pid, 0);
}

/* SIGTERM: the service must stop cleanly (exit 0) in time. */
static void svc_stop(svc *s)
{
    int st = harness_stop(s->pid, STOP_MS);
    s->pid = 0;
    SVC_ASSERT(s, st == 0, "service stop status %d", st);
}

static void svc_done(svc *s)
{
    if (s->pid > 0)
        svc_stop(s);
    harness_rmtree(s->dir);
}

static json_t *svc_dump(svc *s)
{
    char *argv[] = {s->bin, "--dump", NULL};
    char *out = NULL;
    int st = harness_run(s->bin, argv, s->env, 20000, s->log, &out);
    json_t *j = st == 0 && out != NULL ? json_loads(out, 0, NULL) : NULL;
    free(out);
    return j;
}

static json_int_t dump_int(json_t *d, const char *key)
{
    return json_integer_value(json_object_get(d, key));
}

static json_int_t dump_counter(json_t *d, const char *key, const char *field)
{
    json_t *c = json_object_get(json_object_get(d, "counters"), key);
    return c ? json_integer_value(json_object_get(c, field)) : -1;
}

/* Polls --dump until sum and adds reach the given totals. */
static json_t *wait_dump(svc *s, json_int_t sum, json_int_t adds, int timeout_ms)
{
    int64_t deadline = harness_now_ms() + timeout_ms;
    json_t *d = NULL;
    while (harness_now_ms() < deadline) {
        json_decref(d);
        d = svc_dump(s);
        if (d != NULL && dump_int(d, "sum") == sum && dump_int(d, "adds") == adds)
            return d;
        usleep(200 * 1000);
    }
    return d;
}

static void send_add(svc *s, const char *id, const char *key, json_int_t n)
{
    json_t *data = json_pack("{s:s,s:I}", "key", key, "n", n);
    ck_assert_int_eq(harness_send_event(s->in, key, "test.add", id, data), 0);
}

static void send_raw(svc *s, const char *key, const char *value)
{
    static const ev_header h = {"x-origin", "check_runtime"};
    ck_assert_int_eq(harness_send_raw(s->in, key, value, strlen(value), &h, 1), 0);
}

typedef struct causes {
    const char *type;
    size_t want;          /* distinct causation ids wanted */
    const char *must_see; /* a causation id that must be present, or NULL */
} causes;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Distinct causation ids among records of type; fills sorted ids when given. */
static size_t distinct_causes(const harness_records *r, const char *type,
                              const char **ids)
{
    const char **v = malloc((r->n + 1) * sizeof(*v));
    size_t n = 0, d = 0;
    for (size_t i = 0; i < r->n; i++) {
        const char *t = harness_event_str(&r->v[i], "type");
        const char *c = harness_event_str(&r->v[i], "causationid");
        if (t != NULL && c != NULL && strcmp(t, type) == 0)
            v[n++] = c;
    }
    qsort(v, n, sizeof(*v), cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || strcmp(v[i], v[i - 1]) != 0) {
            if (ids != NULL)
                ids[d] = v[i];
            d++;
        }
    }
    free(v);
    return d;
}

static bool have_causes(const harness_records *got, void *arg)
{
    const causes *c = arg;
    if (c->must_see != NULL && harness_find(got, "causationid", c->must_see) == NULL)
        return false;
    return distinct_causes(got, c->type, NULL) >= c->want;
}

static size_t count_attr(const harness_records *r, const char *attr, const char *value)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++) {
        const char *v = harness_event_str(&r->v[i], attr);
        n += v != NULL && strcmp(v, value) == 0;
    }
    return n;
}

/* ---- tests ---- */

START_TEST(same_event_three_times_applied_once)
{
    svc s;
    svc_init(&s);
    svc_start(&s);
    for (int i = 0; i < 3; i++)
        send_add(&s, "dup-1", "k", 5);
    send_add(&s, "sentinel-1", "k", 100);

    /* Same key: one partition in, one partition out, in order. */
    causes c = {"test.added", 2, "sentinel-1"};
    harness_records got;
    SVC_ASSERT(&s, harness_read(s.out, have_causes, &c, WAIT_MS, &got) == 0,
               "no output for the sentinel");
    ck_assert_uint_eq(count_attr(&got, "causationid", "dup-1"), 1);
    ck_assert_uint_eq(harness_count_type(&got, "test.added"), 2);
    const harness_record *r = harness_find(&got, "causationid", "dup-1");
    ck_assert_str_eq(harness_header(r, "content-type"), "application/cloudevents+json");
    ck_assert_str_eq(r->key, "k");
    ck_assert_str_eq(harness_event_str(r, "source"), "/choreo/counter");
    ck_assert_str_eq(harness_event_str(r, "subject"), "k");
    ck_assert_str_eq(harness_event_str(r, "correlationid"), "dup-1");
    harness_records_free(&got);

    json_t *d = wait_dump(&s, 105, 2, WAIT_MS);
    SVC_ASSERT(&s, d != NULL && dump_counter(d, "k", "adds") == 2, "dump: adds");
    ck_assert_int_eq(dump_counter(d, "k", "total"), 105);
    json_decref(d);
    svc_done(&s);
}
END_TEST

typedef struct bad_case {
    const char *value; /* NULL = built in the test */
    const char *error; /* prefix of the DLQ error header */
} bad_case;

START_TEST(bad_records_dead_lettered_and_next_processed)
{
    svc s;
    svc_init(&s);
    svc_env(&s, "CHOREO_MAX_RECORD=4096");
    svc_start(&s);

    char *schema_bad = harness_envelope("test.add", "bad-schema", "k",
                                        json_pack("{s:s,s:s}", "key", "k", "n", "x"));
    char pad[10001];
    memset(pad, 'p', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    char *big =
        harness_envelope("test.add", "bad-big", "k",
                         json_pack("{s:s,s:i,s:s}", "key", "k", "n", 1, "pad", pad));
    char *neg = harness_envelope("test.add", "bad-handler", "k",
                                 json_pack("{s:s,s:i}", "key", "k", "n", -1));
    char *emit = harness_envelope("test.add", "bad-emit", "k",
                                  json_pack("{s:s,s:i}", "key", "bad-emit", "n", 1));
    const bad_case cases[] = {
        {"this is {not json", "parse:"},
        {schema_bad, "schema:"},
        {big, "too_big:"},
        {neg, "invalid:"},
        {emit, "schema:"},
        {"{\"specversion\":\"0.3\",\"id\":\"x\",\"source\":\"/s\",\"type\":\"test.add\"}",
         "specversion:"},
    };
    const size_t n_cases = sizeof(cases) / sizeof(cases[0]);
    for (size_t i = 0; i < n_cases; i++)
        send_raw(&s, "k", cases[i].value);
    send_add(&s, "good-1", "k", 7);

    harness_records dlq, out;
    SVC_ASSERT(&s, harness_wait_events(s.dlq, NULL, n_cases, WAIT_MS, &dlq) == 0,
               "dead letters missing");
    ck_assert_uint_eq(dlq.n, n_cases);
    int64_t prev = -1;
    for (size_t i = 0; i < n_cases; i++) {
        const harness_record *r = &dlq.v[i];
        const char *err = harness_header(r, "error");
        ck_assert_msg(err != NULL &&
                          strncmp(err, cases[i].error, strlen(cases[i].error)) == 0,
                      "case %zu: error header %s, want %s", i, err ? err : "(none)",
                      cases[i].error);
        ck_assert_str_eq(harness_header(r, "original.topic"), s.in);
        ck_assert_ptr_nonnull(harness_header(r, "original.partition"));
        int64_t off = strtoll(harness_header(r, "original.offset"), NULL, 10);
        ck_assert_int_gt(off, prev); /* same partition, in order */
        prev = off;
        ck_assert_str_eq(harness_header(r, "service"), "counter");
        ck_assert_ptr_nonnull(harness_header(r, "time"));
        ck_assert_str_eq(harness_header(r, "x-origin"), "check_runtime");
        ck_assert_str_eq(r->key, "k");
        ck_assert_uint_eq(r->len, strlen(cases[i].value));
        ck_assert(memcmp(r->value, cases[i].value, r->len) == 0);
    }
    causes c = {"test.added", 1, "good-1"};
    SVC_ASSERT(&s, harness_read(s.out, have_causes, &c, WAIT_MS, &out) == 0,
               "valid event after the bad ones not processed");
    ck_assert_uint_eq(out.n, 1); /* the bad-emit event published nothing */
    harness_records_free(&dlq);
    harness_records_free(&out);
    json_t *d = wait_dump(&s, 7, 1, WAIT_MS);
    SVC_ASSERT(&s, d != NULL && dump_int(d, "sum") == 7, "dump sum");
    json_decref(d);
    free(schema_bad);
    free(big);
    free(neg);
    free(emit);
    svc_done(&s);
}
END_TEST

START_TEST(unknown_type_skipped_not_dead_lettered)
{
    svc s;
    svc_init(&s);
    svc_start(&s);
    json_t *data = json_pack("{s:s}", "key", "k");
    ck_assert_int_eq(harness_send_event(s.in, "k", "test.other", "other-1", data), 0);
    send_raw(&s, "k", "garbage after the unknown type");
    send_add(&s, "good-2", "k", 3);

    /* Same partition: had the unknown type been dead-lettered, it would come
     * before the garbage record in the DLQ. */
    harness_records dlq, out;
    SVC_ASSERT(&s, harness_wait_events(s.dlq, NULL, 1, WAIT_MS, &dlq) == 0, "no DLQ");
    causes c = {"test.added", 1, "good-2"};
    SVC_ASSERT(&s, harness_read(s.out, have_causes, &c, WAIT_MS, &out) == 0,
               "event after the unknown type not processed");
    ck_assert_uint_eq(dlq.n, 1);
    ck_assert(strncmp(harness_header(&dlq.v[0], "error"), "parse:", 6) == 0);
    ck_assert_uint_eq(out.n, 1);
    harness_records_free(&dlq);
    harness_records_free(&out);
    svc_done(&s);
}
END_TEST

START_TEST(retryable_error_retried_then_applied_once)
{
    svc s;
    svc_init(&s);
    svc_env(&s, "CHOREO_TEST_FAIL_KEY=kr");
    svc_env(&s, "CHOREO_TEST_FAIL_TIMES=3");
    svc_env(&s, "CHOREO_MAX_ATTEMPTS=5");
    svc_start(&s);
    send_add(&s, "retry-1", "kr", 7);
    send_add(&s, "retry-2", "kr", 1); /* behind it in the same partition */

    causes c = {"test.added", 2, "retry-2"};
    harness_records out;
    SVC_ASSERT(&s, harness_read(s.out, have_causes, &c, WAIT_MS, &out) == 0,
               "not applied");
    ck_assert_uint_eq(count_attr(&out, "causationid", "retry-1"), 1);
    /* Order kept: retry-1 (total 7) before retry-2 (total 8). */
    const harness_record *r2 = harness_find(&out, "causationid", "retry-2");
    ck_assert_int_eq(json_integer_value(json_object_get(harness_event_data(r2), "total")),
                     8);
    harness_records_free(&out);
    json_t *d = wait_dump(&s, 8, 2, WAIT_MS);
    SVC_ASSERT(&s, d != NULL && dump_counter(d, "kr", "adds") == 2, "applied once each");
    json_decref(d);
    svc_done(&s);
}
END_TEST

/* Several records of one batch fail for now (in different partitions): each
 * is retried, none dead-lettered, each applied once. The careful run must
 * give every failing record its own verdict, not only the one that stopped
 * the optimistic attempt. */
START_TEST(retryable_errors_of_one_batch_all_retried)
{
    static const char *keys[] = {"ka", "kb", "kc", "kd", "ke", "kf", "kg", "kh"};
    svc s;
    svc_init(&s);
    svc_env(&s, "CHOREO_TEST_FAIL_KEY=ka,kb,kc,kd,ke,kf,kg,kh");
    svc_env(&s, "CHOREO_TEST_FAIL_TIMES=2");
    svc_env(&s, "CHOREO_MAX_ATTEMPTS=4");
    for (size_t i = 0; i < (sizeof(keys) / sizeof(keys[0]));
         i++) { /* before the start: one batch */
        char id[16];
        snprintf(id, sizeof(id), "multi-%zu", i);
        send_add(&s, id, keys[i], 1);
    }
    svc_start(&s);
    causes c = {"test.added", (sizeof(keys) / sizeof(keys[0])), NULL};
    harness_records out;
    SVC_ASSERT(&s, harness_read(s.out, have_causes, &c, WAIT_MS, &out) == 0,
               "not all applied");
    harness_records_free(&out);
    json_t *d = wait_dump(&s, (json_int_t)(sizeof(keys) / sizeof(keys[0])),
                          (sizeof(keys) / sizeof(keys[0])), WAIT_MS);
    for (size_t i = 0; d != NULL && i < (sizeof(keys) / sizeof(keys[0])); i++)
        SVC_ASSERT(&s, dump_counter(d, keys[i], "adds") == 1, "%s applied once", keys[i]);
    SVC_ASSERT(&s, d != NULL, "dump");
    json_decref(d);
    harness_records dlq;
    harness_read(s.dlq, NULL, NULL, 1000, &dlq); /* all it holds after 1 s */
    SVC_ASSERT(&s, dlq.n == 0, "%zu dead-lettered", dlq.n);
    harness_records_free(&dlq);
    svc_done(&s);
}
END_TEST

START_TEST(permanent_retry_dead_lettered_after_max_attempts)
{
    svc s;
    svc_init(&s);
    svc_env(&s, "CHOREO_TEST_PERM_FAIL_KEY=kp");
    svc_env(&s, "CHOREO_MAX_ATTEMPTS=3");
    svc_start(&s);
    send_add(&s, "perm-1", "kp", 1);
    send_add(&s, "after-perm", "kp2", 2);

    harness_records dlq, out;
    SVC_ASSERT(&s, harness_wait_events(s.dlq, NULL, 1, WAIT_MS, &dlq) == 0, "no DLQ");
    const char *err = harness_header(&dlq.v[0], "error");
    ck_assert_msg(strstr(err, "retry:") == err && strstr(err, "3 attempts") != NULL, "%s",
                  err);
    ck_assert_str_eq(harness_event_str(&dlq.v[0], "id"), "perm-1");
    causes c = {"test.added", 1, "after-perm"};
    SVC_ASSERT(&s, harness_read(s.out, have_causes, &c, WAIT_MS, &out) == 0,
               "next event not processed");
    ck_assert_ptr_null(harness_find(&out, "causationid", "perm-1"));
    harness_records_free(&dlq);
    harness_records_free(&out);
    json_t *d = wait_dump(&s, 2, 1, WAIT_MS);
    SVC_ASSERT(&s, d != NULL && dump_counter(d, "kp", "adds") == -1, "kp never applied");
    json_decref(d);
    svc_done(&s);
}
END_TEST

START_TEST(timer_fires_with_causation_of_arming_event)
{
    svc s;
    svc_init(&s);
    svc_start(&s);
    json_t *data = json_pack("{s:s,s:i,s:i}", "key", "kt", "n", 3, "remind_ms", 300);
    ck_assert_int_eq(harness_send_event(s.in, "kt", "test.add", "arm-1", data), 0);
    harness_records out;
    SVC_ASSERT(&s, harness_wait_events(s.out, "test.reminded", 1, WAIT_MS, &out) == 0,
               "timer did not fire");
    const harness_record *r = harness_find(&out, "type", "test.reminded");
    ck_assert_str_eq(harness_event_str(r, "causationid"), "arm-1");
    ck_assert_str_eq(harness_event_str(r, "correlationid"), "arm-1");
    ck_assert_int_eq(json_integer_value(json_object_get(harness_event_data(r), "total")),
                     3);
    ck_assert_uint_eq(harness_count_type(&out, "test.reminded"), 1);
    harness_records_free(&out);
    svc_done(&s);
}
END_TEST

/* choreo dlq replay of the service's dead letters (all of them, twice). */
static void cli_replay(svc *s)
{
    char bin[PATH_MAX];
    harness_build_path(bin, sizeof(bin), "bin/choreo");
    char *argv[] = {bin, "dlq", "replay", "counter", NULL};
    char *out = NULL;
    int st = harness_run(bin, argv, s->env, 30000, s->log, &out);
    SVC_ASSERT(s, st == 0, "choreo dlq replay: exit %d: %s", st, out ? out : "");
    free(out);
}

START_TEST(timer_dead_letter_replayed_by_rearming)
{
    svc s;
    svc_init(&s);
    svc_env(&s, "CHOREO_TEST_TIMER_FAIL_TIMES=1");
    svc_start(&s);
    json_t *data = json_pack("{s:s,s:i,s:i}", "key", "kd", "n", 4, "remind_ms", 100);
    ck_assert_int_eq(harness_send_event(s.in, "kd", "test.add", "arm-d", data), 0);
    harness_records dlq, out;
    SVC_ASSERT(&s, harness_wait_events(s.dlq, NULL, 1, WAIT_MS, &dlq) == 0,
               "the failed timer was not dead-lettered");
    ck_assert_str_eq(harness_header(&dlq.v[0], "original.topic"), "timer");
    ck_assert_str_eq(harness_header(&dlq.v[0], "timer.kind"), "remind");
    harness_records_free(&dlq);
    cli_replay(&s);
    SVC_ASSERT(&s, harness_wait_events(s.out, "test.reminded", 1, WAIT_MS, &out) == 0,
               "the replayed timer did not fire");
    const harness_record *r = harness_find(&out, "type", "test.reminded");
    ck_assert_str_eq(harness_event_str(r, "causationid"), "arm-d");
    ck_assert_str_eq(harness_event_str(r, "correlationid"), "arm-d");
    ck_assert_int_eq(json_integer_value(json_object_get(harness_event_data(r), "total")),
                     4);
    char first[64];
    snprintf(first, sizeof(first), "%s", harness_event_str(r, "id"));
    harness_records_free(&out);
    /* A second replay fires it again with the same id: consumers drop it. */
    cli_replay(&s);
    SVC_ASSERT(&s, harness_wait_events(s.out, "test.reminded", 2, WAIT_MS, &out) == 0,
               "the second replay did not fire");
    for (size_t i = 0; i < out.n; i++) {
        const char *type = harness_event_str(&out.v[i], "type");
        if (type != NULL && strcmp(type, "test.reminded") == 0)
            ck_assert_str_eq(harness_event_str(&out.v[i], "id"), first);
    }
    harness_records_free(&out);
    json_t *d = svc_dump(&s);
    SVC_ASSERT(&s, d != NULL && dump_counter(d, "kd", "total") == 4,
               "the counter untouched by the replays");
    json_decref(d);
    svc_done(&s);
}
END_TEST

/* n events over 10 keys, values 1..n; returns their sum. */
static json_int_t send_many(svc *s, const char *tag, int n)
{
    harness_producer *p = harness_producer_new(NULL);
    ck_assert_ptr_nonnull(p);
    static const ev_header ce = {"content-type", "application/cloudevents+json"};
    json_int_t sum = 0;
    for (int i = 0; i < n; i++) {
        char id[64], key[16];
        snprintf(id, sizeof(id), "%s-%d", tag, i);
        snprintf(key, sizeof(key), "k%d", i % 10);
        char *v = harness_envelope("test.add", id, key,
                                   json_pack("{s:s,s:i}", "key", key, "n", i + 1));
        ck_assert_int_eq(harness_produce(p, s->in, key, v, strlen(v), &ce, 1), 0);
        free(v);
        sum += i + 1;
    }
    ck_assert_int_eq(harness_producer_flush(p, WAIT_MS), 0);
    harness_producer_free(p);
    return sum;
}

/* Every input has exactly one output id; repeated outputs share it. */
static void check_outputs(svc *s, int n)
{
    causes c = {"test.added", (size_t)n, NULL};
    harness_records out;
    SVC_ASSERT(s, harness_read(s->out, have_causes, &c, WAIT_MS * 2, &out) == 0,
               "outputs missing");
    size_t dups = 0;
    for (size_t i = 0; i < out.n; i++) {
        const char *cause = harness_event_str(&out.v[i], "causationid");
        const char *id = harness_event_str(&out.v[i], "id");
        const harness_record *first = harness_find(&out, "causationid", cause);
        ck_assert_str_eq(harness_event_str(first, "id"), id);
        dups += first != &out.v[i];
    }
    ck_assert_uint_eq(distinct_causes(&out, "test.added", NULL), (size_t)n);
    fprintf(stderr, "outputs: %zu records, %d distinct, %zu repeated\n", out.n, n, dups);
    harness_records_free(&out);
}

/* Occurrences of needle in the file at path. */
static size_t count_in_file(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char line[4096];
    size_t n = 0;
    while (fgets(line, sizeof(line), f) != NULL)
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

START_TEST(before_commit_failure_rolls_back_and_retries)
{
    svc s;
    svc_init(&s);
    svc_env(&s, "CHOREO_TEST_COMMIT_FAIL_TIMES=3");
    const int n = 60;
    json_int_t sum = send_many(&s, "hook", n);
    json_t *data = json_pack("{s:s,s:i,s:i}", "key", "kt", "n", 1, "remind_ms", 100);
    ck_assert_int_eq(harness_send_event(s.in, "kt", "test.add", "arm-hook", data), 0);
    svc_start(&s);

    /* Each failed batch was undone and read again: every add applied once,
     * no output of a rolled-back batch published, the timer fired once. */
    json_t *d = wait_dump(&s, sum + 1, n + 1, WAIT_MS);
    SVC_ASSERT(&s, d != NULL && dump_int(d, "adds") == n + 1,
               "not exactly once: sum %lld adds %lld", (long long)dump_int(d, "sum"),
               (long long)dump_int(d, "adds"));
    json_decref(d);
    harness_records out;
    SVC_ASSERT(&s, harness_wait_events(s.out, "test.reminded", 1, WAIT_MS, &out) == 0,
               "timer did not fire");
    ck_assert_uint_eq(harness_count_type(&out, "test.reminded"), 1);
    harness_records_free(&out);
    causes c = {"test.added", (size_t)n + 1, NULL};
    SVC_ASSERT(&s, harness_read(s.out, have_causes, &c, WAIT_MS, &out) == 0,
               "outputs missing");
    ck_assert_uint_eq(harness_count_type(&out, "test.added"), (size_t)n + 1);
    harness_records_free(&out);
    size_t holds = count_in_file(s.log, "batch rolled back for a retry");
    SVC_ASSERT(&s, holds == 3, "%zu rolled-back batches logged, want 3", holds);
    svc_done(&s);
}
END_TEST

START_TEST(kill9_mid_batch_then_restart_exactly_once)
{
    svc s;
    svc_init(&s);
    svc_env(&s, "CHOREO_TEST_SLOW_MS=4");
    svc_env(&s, "CHOREO_BATCH_SIZE=50");
    const int n = 500;
    json_int_t sum = send_many(&s, "kill", n);
    svc_start(&s);
    harness_records out;
    SVC_ASSERT(&s, harness_wait_events(s.out, "test.added", 100, WAIT_MS, &out) == 0,
               "no progress before the kill");
    harness_records_free(&out);
    harness_kill9(s.pid);
    s.pid = 0;
    json_t *mid = svc_dump(&s);
    ck_assert_ptr_nonnull(mid);
    fprintf(stderr, "killed after %lld adds\n", (long long)dump_int(mid, "adds"));
    ck_assert_int_lt(dump_int(mid, "adds"), n);
    json_decref(mid);

    svc_start(&s);
    json_t *d = wait_dump(&s, sum, n, WAIT_MS * 2);
    SVC_ASSERT(&s, d != NULL && dump_int(d, "sum") == sum && dump_int(d, "adds") == n,
               "not exactly once: sum %lld adds %lld", (long long)dump_int(d, "sum"),
               (long long)dump_int(d, "adds"));
    json_decref(d);
    check_outputs(&s, n);
    svc_done(&s);
}
END_TEST

START_TEST(broker_restart_loses_nothing)
{
    char bdir[PATH_MAX], blog[PATH_MAX + 32], brokers[64];
    ck_assert_int_eq(harness_tmpdir(bdir, sizeof(bdir)), 0);
    snprintf(blog, sizeof(blog), "%s/choreo-broker.log", bdir);
    int port = harness_free_port_pair();
    ck_assert_int_gt(port, 0);
    if (harness_broker_start(port, bdir, blog) != 0)
        harness_dump_log(blog, 4000);
    ck_assert_msg(access(blog, F_OK) == 0, "no broker log");
    snprintf(brokers, sizeof(brokers), "127.0.0.1:%d", port);
    setenv("CHOREO_BROKERS", brokers, 1); /* this test's process only (forked) */

    svc s;
    svc_init(&s);
    /* Slow, small fetches: the outage hits both consuming and publishing. */
    svc_env(&s, "CHOREO_TEST_SLOW_MS=25");
    svc_env(&s, "CHOREO_BATCH_SIZE=20");
    svc_env(&s, "CHOREO_KAFKA_fetch_message_max_bytes=2000");
    svc_env(&s, "CHOREO_KAFKA_queued_min_messages=10");
    const int n = 400;
    json_int_t sum = send_many(&s, "bounce", n);
    svc_start(&s);
    harness_records out;
    SVC_ASSERT(&s, harness_wait_events(s.out, "test.added", 50, WAIT_MS, &out) == 0,
               "no progress before the broker stop");
    harness_records_free(&out);
    ck_assert_int_eq(harness_broker_stop(port, bdir, blog), 0);
    json_t *mid = svc_dump(&s);
    ck_assert_ptr_nonnull(mid);
    fprintf(stderr, "broker stopped after %lld adds\n", (long long)dump_int(mid, "adds"));
    ck_assert_int_lt(dump_int(mid, "adds"), n); /* the outage came mid-run */
    json_decref(mid);
    ck_assert_int_eq(harness_broker_start(port, bdir, blog), 0);

    json_t *d = wait_dump(&s, sum, n, WAIT_MS * 2);
    SVC_ASSERT(&s, d != NULL && dump_int(d, "sum") == sum && dump_int(d, "adds") == n,
               "lost or doubled across the broker restart");
    json_decref(d);
    check_outputs(&s, n);
    svc_stop(&s);
    harness_broker_stop(port, bdir, blog);
    harness_rmtree(s.dir);
    harness_rmtree(bdir);
}
END_TEST

START_TEST(main_flags_and_exit_codes)
{
    svc s;
    svc_init(&s);
    char *help[] = {s.bin, "--help", NULL};
    char *out = NULL;
    ck_assert_int_eq(harness_run(s.bin, help, s.env, 10000, s.log, &out), 0);
    ck_assert(strstr(out, "--dump") != NULL);
    free(out);
    char *bad[] = {s.bin, "--no-such-flag", "1", NULL};
    ck_assert_int_eq(harness_run(s.bin, bad, s.env, 10000, s.log, NULL), 2);
    char *missing[] = {s.bin, "--batch-size", NULL};
    ck_assert_int_eq(harness_run(s.bin, missing, s.env, 10000, s.log, NULL), 2);
    char *badnum[] = {s.bin, "--batch-size=abc", NULL};
    ck_assert_int_eq(harness_run(s.bin, badnum, s.env, 10000, s.log, NULL), 2);
    /* --dump before any run: no database yet is a failure, not a crash. */
    char *dump[] = {s.bin, "--dump", "--data-dir", s.dir, NULL};
    int st = harness_run(s.bin, dump, s.env, 10000, s.log, NULL);
    ck_assert_msg(st == 0 || st == 1, "dump status %d", st);
    harness_rmtree(s.dir);
}
END_TEST

static Suite *runtime_suite(void)
{
    Suite *s = suite_create("runtime");
    TCase *tc = tcase_create("broker");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, main_flags_and_exit_codes);
    tcase_add_test(tc, same_event_three_times_applied_once);
    tcase_add_test(tc, bad_records_dead_lettered_and_next_processed);
    tcase_add_test(tc, unknown_type_skipped_not_dead_lettered);
    tcase_add_test(tc, retryable_error_retried_then_applied_once);
    tcase_add_test(tc, retryable_errors_of_one_batch_all_retried);
    tcase_add_test(tc, permanent_retry_dead_lettered_after_max_attempts);
    tcase_add_test(tc, timer_fires_with_causation_of_arming_event);
    tcase_add_test(tc, timer_dead_letter_replayed_by_rearming);
    tcase_add_test(tc, before_commit_failure_rolls_back_and_retries);
    tcase_add_test(tc, kill9_mid_batch_then_restart_exactly_once);
    suite_add_tcase(s, tc);
    TCase *bounce = tcase_create("own-broker");
    tcase_set_timeout(bounce, 600);
    tcase_add_test(bounce, broker_restart_loses_nothing);
    suite_add_tcase(s, bounce);
    return s;
}

int main(void)
{
    ev_log_init("check_runtime");
    ev_log_set_level(EV_LOG_WARN);
    SRunner *sr = srunner_create(runtime_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
