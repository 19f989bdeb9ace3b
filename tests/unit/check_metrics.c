/* SPDX-License-Identifier: MIT */
/* Tests of events/metrics: per-type counters, histogram buckets, gauges, lag,
 * and the Prometheus text the registry renders. */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "log.h"
#include "metrics.h"

static char *render(ev_metrics *m)
{
    char *out = NULL;
    size_t len = 0;
    ev_error err;
    ck_assert_int_eq(ev_metrics_render(m, &out, &len, &err), 0);
    ck_assert_uint_eq(strlen(out), len);
    return out;
}

/* True when text holds line as a whole line. */
static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
        bool starts = p == text || p[-1] == '\n';
        if (starts && (p[n] == '\n' || p[n] == '\0'))
            return true;
    }
    return false;
}

START_TEST(counters_render_per_type)
{
    static const struct {
        ev_metric_counter c;
        const char *type;
        uint64_t n;
    } bumps[] = {
        {EV_MC_CONSUMED, "order.placed", 2},     {EV_MC_CONSUMED, "order.placed", 3},
        {EV_MC_CONSUMED, "payment.declined", 1}, {EV_MC_PRODUCED, "order.confirmed", 7},
        {EV_MC_DEDUPED, "order.placed", 1},      {EV_MC_DEAD_LETTERED, NULL, 1},
        {EV_MC_SKIPPED, "x.unknown", 4},
    };
    static const char *const want[] = {
        "choreo_events_consumed_total{service=\"orders\",type=\"order.placed\"} 5",
        "choreo_events_consumed_total{service=\"orders\",type=\"payment.declined\"} 1",
        "choreo_events_consumed_total{service=\"orders\",type=\"order.confirmed\"} 0",
        "choreo_events_produced_total{service=\"orders\",type=\"order.confirmed\"} 7",
        "choreo_events_deduped_total{service=\"orders\",type=\"order.placed\"} 1",
        "choreo_events_dead_lettered_total{service=\"orders\",type=\"unknown\"} 1",
        "choreo_events_skipped_total{service=\"orders\",type=\"x.unknown\"} 4",
        "# TYPE choreo_events_consumed_total counter",
    };
    ev_metrics *m = ev_metrics_new("orders");
    ck_assert_ptr_nonnull(m);
    for (size_t i = 0; i < sizeof(bumps) / sizeof(bumps[0]); i++)
        ev_metrics_count(m, bumps[i].c, bumps[i].type, bumps[i].n);
    char *text = render(m);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_msg(has_line(text, want[i]), "missing line: %s\n%s", want[i], text);
    ck_assert_uint_eq(ev_metrics_counter_total(m, EV_MC_CONSUMED), 6);
    ck_assert_uint_eq(ev_metrics_counter_get(m, EV_MC_CONSUMED, "order.placed"), 5);
    ck_assert_uint_eq(ev_metrics_counter_get(m, EV_MC_CONSUMED, "nope"), 0);
    free(text);
    ev_metrics_free(m);
}
END_TEST

/* Every counter kind renders under its own family name. */
START_TEST(every_counter_has_a_family)
{
    static const struct {
        ev_metric_counter c;
        const char *line;
    } cases[] = {
        {EV_MC_CONSUMED, "choreo_events_consumed_total{service=\"s\",type=\"t\"} 1"},
        {EV_MC_APPLIED, "choreo_events_applied_total{service=\"s\",type=\"t\"} 2"},
        {EV_MC_PRODUCED, "choreo_events_produced_total{service=\"s\",type=\"t\"} 3"},
        {EV_MC_DEDUPED, "choreo_events_deduped_total{service=\"s\",type=\"t\"} 4"},
        {EV_MC_DEAD_LETTERED,
         "choreo_events_dead_lettered_total{service=\"s\",type=\"t\"} 5"},
        {EV_MC_SKIPPED, "choreo_events_skipped_total{service=\"s\",type=\"t\"} 6"},
        {EV_MC_RETRIED, "choreo_events_retried_total{service=\"s\",type=\"t\"} 7"},
    };
    ck_assert_uint_eq(sizeof(cases) / sizeof(cases[0]), EV_MC_COUNT);
    ev_metrics *m = ev_metrics_new("s");
    for (size_t i = 0; i < EV_MC_COUNT; i++)
        ev_metrics_count(m, cases[i].c, "t", i + 1);
    char *text = render(m);
    for (size_t i = 0; i < EV_MC_COUNT; i++)
        ck_assert_msg(has_line(text, cases[i].line), "missing: %s\n%s", cases[i].line,
                      text);
    ck_assert_ptr_null(strstr(text, "(null)"));
    free(text);
    ev_metrics_free(m);
}
END_TEST

START_TEST(too_many_types_fall_into_other)
{
    ev_metrics *m = ev_metrics_new("s");
    char type[32];
    for (int i = 0; i < EV_METRICS_MAX_TYPES + 5; i++) {
        snprintf(type, sizeof(type), "t.%d", i);
        ev_metrics_count(m, EV_MC_CONSUMED, type, 1);
    }
    ck_assert_uint_eq(ev_metrics_counter_get(m, EV_MC_CONSUMED, "other"), 5);
    ck_assert_uint_eq(ev_metrics_counter_total(m, EV_MC_CONSUMED),
                      EV_METRICS_MAX_TYPES + 5);
    char *text = render(m);
    ck_assert(
        has_line(text, "choreo_events_consumed_total{service=\"s\",type=\"other\"} 5"));
    free(text);
    ev_metrics_free(m);
}
END_TEST

START_TEST(histogram_buckets_are_cumulative)
{
    static const struct {
        ev_metric_hist h;
        uint64_t v;
    } obs[] = {
        {EV_MH_BATCH_SIZE, 1},      {EV_MH_BATCH_SIZE, 3},  {EV_MH_BATCH_SIZE, 500},
        {EV_MH_BATCH_SIZE, 5000},   {EV_MH_COMMIT_US, 800}, {EV_MH_COMMIT_US, 1000},
        {EV_MH_COMMIT_US, 3000000},
    };
    static const char *const want[] = {
        "# TYPE choreo_batch_size histogram",
        "choreo_batch_size_bucket{service=\"o\",le=\"1\"} 1",
        "choreo_batch_size_bucket{service=\"o\",le=\"2\"} 1",
        "choreo_batch_size_bucket{service=\"o\",le=\"5\"} 2",
        "choreo_batch_size_bucket{service=\"o\",le=\"500\"} 3",
        "choreo_batch_size_bucket{service=\"o\",le=\"1000\"} 3",
        "choreo_batch_size_bucket{service=\"o\",le=\"+Inf\"} 4",
        "choreo_batch_size_sum{service=\"o\"} 5504",
        "choreo_batch_size_count{service=\"o\"} 4",
        "choreo_commit_seconds_bucket{service=\"o\",le=\"0.0005\"} 0",
        "choreo_commit_seconds_bucket{service=\"o\",le=\"0.001\"} 2",
        "choreo_commit_seconds_bucket{service=\"o\",le=\"2.5\"} 2",
        "choreo_commit_seconds_bucket{service=\"o\",le=\"+Inf\"} 3",
        "choreo_commit_seconds_sum{service=\"o\"} 3.0018",
        "choreo_commit_seconds_count{service=\"o\"} 3",
        "choreo_batch_seconds_count{service=\"o\"} 0",
    };
    ev_metrics *m = ev_metrics_new("o");
    for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
        ev_metrics_observe(m, obs[i].h, obs[i].v);
    char *text = render(m);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_msg(has_line(text, want[i]), "missing line: %s\n%s", want[i], text);
    free(text);
    ev_metrics_free(m);
}
END_TEST

/* A statistics window observed as its mean, count times: sum and count exact;
 * the hop histograms have sub-millisecond buckets. */
START_TEST(window_observed_n_times)
{
    static const char *const want[] = {
        "# TYPE choreo_hop_rtt_seconds histogram",
        "choreo_hop_rtt_seconds_bucket{service=\"o\",le=\"0.0003\"} 0",
        "choreo_hop_rtt_seconds_bucket{service=\"o\",le=\"0.0004\"} 7",
        "choreo_hop_rtt_seconds_bucket{service=\"o\",le=\"+Inf\"} 8",
        "choreo_hop_rtt_seconds_sum{service=\"o\"} 0.00448",
        "choreo_hop_rtt_seconds_count{service=\"o\"} 8",
        "choreo_hop_transit_seconds_count{service=\"o\"} 0",
    };
    ev_metrics *m = ev_metrics_new("o");
    ev_metrics_observe_n(m, EV_MH_HOP_RTT_US, 320, 7);
    ev_metrics_observe_n(m, EV_MH_HOP_RTT_US, 2240, 1);
    ev_metrics_observe_n(m, EV_MH_HOP_RTT_US, 5000, 0); /* an empty window */
    char *text = render(m);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_msg(has_line(text, want[i]), "missing line: %s\n%s", want[i], text);
    free(text);
    ev_metrics_free(m);
}
END_TEST

START_TEST(gauges_and_lag)
{
    ev_metrics *m = ev_metrics_new("inventory");
    ev_metrics_gauge_set(m, EV_MG_OUTBOX_BACKLOG, 12);
    ev_metrics_gauge_set(m, EV_MG_TIMERS_PENDING, 3);
    ck_assert(!ev_metrics_ready(m));
    ev_metrics_gauge_set(m, EV_MG_READY, 1);
    ck_assert(ev_metrics_ready(m));
    ev_metrics_lag_set(m, "orders", 0, 10);
    ev_metrics_lag_set(m, "orders", 1, 5);
    ev_metrics_lag_set(m, "orders", 0, 7); /* replaces */
    ev_metrics_lag_set(m, "inventory", 2, 1);
    ev_metrics_lag_set(m, "inventory", 2, -1); /* removes */
    ck_assert_int_eq(ev_metrics_lag_total(m), 12);
    char *text = render(m);
    static const char *const want[] = {
        "choreo_outbox_backlog{service=\"inventory\"} 12",
        "choreo_timers_pending{service=\"inventory\"} 3",
        "choreo_ready{service=\"inventory\"} 1",
        "# TYPE choreo_consumer_lag gauge",
        "choreo_consumer_lag{service=\"inventory\",topic=\"orders\",partition=\"0\"} 7",
        "choreo_consumer_lag{service=\"inventory\",topic=\"orders\",partition=\"1\"} 5",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_msg(has_line(text, want[i]), "missing line: %s\n%s", want[i], text);
    ck_assert_ptr_null(strstr(text, "topic=\"inventory\""));
    free(text);
    ev_metrics_free(m);
}
END_TEST

START_TEST(label_values_are_escaped)
{
    ev_metrics *m = ev_metrics_new("a\"b\\c\nd");
    ev_metrics_count(m, EV_MC_SKIPPED, "q\"t", 1);
    char *text = render(m);
    ck_assert_msg(has_line(text,
                           "choreo_events_skipped_total{service=\"a\\\"b\\\\c\\nd\","
                           "type=\"q\\\"t\"} 1"),
                  "%s", text);
    free(text);
    ev_metrics_free(m);
}
END_TEST

/* Checks one sample line "name{labels} value" against the current family. */
static void check_sample(const char *line, const char *family)
{
    ck_assert_msg(family[0] != '\0', "sample before any TYPE: %s", line);
    ck_assert_msg(strncmp(line, family, strlen(family)) == 0, "sample %s outside %s",
                  line, family);
    const char *brace = strchr(line, '{');
    const char *close = strrchr(line, '}');
    ck_assert_msg(brace && close && close > brace && close[1] == ' ', "bad: %s", line);
    char *end = NULL;
    strtod(close + 2, &end);
    ck_assert_msg(end != close + 2 && *end == '\0', "bad value: %s", line);
}

/* Every sample line follows the # TYPE line of its family. */
START_TEST(render_is_well_formed)
{
    ev_metrics *m = ev_metrics_new("payments");
    ev_metrics_count(m, EV_MC_CONSUMED, "order.placed", 1);
    ev_metrics_observe(m, EV_MH_BATCH_US, 1234);
    ev_metrics_lag_set(m, "payments", 0, 0);
    char *text = render(m);
    char family[128] = "";
    size_t samples = 0;
    for (char *line = text; *line != '\0';) {
        char *nl = strchr(line, '\n');
        ck_assert_msg(nl != NULL, "last line not terminated");
        *nl = '\0';
        if (strncmp(line, "# TYPE ", 7) == 0) {
            ck_assert_int_eq(sscanf(line + 7, "%127s", family), 1);
        } else if (strncmp(line, "# HELP ", 7) != 0) {
            check_sample(line, family);
            samples++;
        }
        line = nl + 1;
    }
    ck_assert_uint_gt(samples, 20);
    free(text);
    ev_metrics_free(m);
}
END_TEST

START_TEST(null_registry_is_a_noop)
{
    ev_metrics_count(NULL, EV_MC_CONSUMED, "x", 1);
    ev_metrics_observe(NULL, EV_MH_BATCH_SIZE, 1);
    ev_metrics_gauge_set(NULL, EV_MG_READY, 1);
    ev_metrics_lag_set(NULL, "t", 0, 1);
    ev_metrics_lag_update(NULL, NULL);
    ev_metrics_tick(NULL, 1);
    ck_assert(!ev_metrics_ready(NULL));
    ck_assert_uint_eq(ev_metrics_counter_total(NULL, EV_MC_CONSUMED), 0);
    char *out = NULL;
    size_t len = 0;
    ev_error err;
    ck_assert_int_eq(ev_metrics_render(NULL, &out, &len, &err), EV_EINVAL);
    ev_metrics_free(NULL);
}
END_TEST

/* Runs fn with log lines sent to a temp file; returns them (caller frees). */
static char *capture_log(void (*fn)(ev_metrics *), ev_metrics *m)
{
    FILE *tmp = tmpfile();
    ck_assert_ptr_nonnull(tmp);
    ev_log_set_fd(fileno(tmp));
    fn(m);
    ev_log_set_fd(STDERR_FILENO);
    ck_assert_int_eq(fseek(tmp, 0, SEEK_END), 0);
    long n = ftell(tmp);
    ck_assert_int_ge(n, 0);
    rewind(tmp);
    char *buf = calloc(1, (size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, tmp), (size_t)n);
    fclose(tmp);
    return buf;
}

static void ticks(ev_metrics *m)
{
    ev_metrics_set_summary_interval(m, 1000);
    ev_metrics_tick(m, 5000); /* starts the interval */
    ev_metrics_count(m, EV_MC_CONSUMED, "order.confirmed", 10);
    ev_metrics_tick(m, 5500); /* too early */
    ev_metrics_tick(m, 6000); /* logs: 10 in 1 s */
    ev_metrics_count(m, EV_MC_CONSUMED, "order.confirmed", 1);
    ev_metrics_tick(m, 6999); /* too early */
}

START_TEST(summary_once_per_interval)
{
    ev_log_init("shipping");
    ev_metrics *m = ev_metrics_new("shipping");
    char *out = capture_log(ticks, m);
    const char *first = strstr(out, "metrics summary");
    ck_assert_msg(first != NULL, "no summary in: %s", out);
    ck_assert_ptr_null(strstr(first + 1, "metrics summary"));
    ck_assert_msg(strstr(out, "consumed=10 ") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "consumed_per_s=10.0") != NULL, "%s", out);
    free(out);
    ev_metrics_free(m);
}
END_TEST

START_TEST(peek_type_of_records)
{
    static const struct {
        const char *record;
        const char *want;
    } cases[] = {
        {"{\"specversion\":\"1.0\",\"id\":\"x\",\"source\":\"/s\","
         "\"type\":\"order.placed\",\"data\":{\"type\":\"inner\"}}",
         "order.placed"},
        {"{\"id\":\"x\"}", "unknown"},
        {"{\"type\":\"\"}", "unknown"},
        {"{\"type\":\"a\\\"b\"}", "unknown"},
        {"{\"type\":\"unterminated", "unknown"},
        {"not json at all", "unknown"},
        {"", "unknown"},
    };
    char out[64];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *r = cases[i].record;
        ck_assert_str_eq(ev_metrics_peek_type(r, strlen(r), out, sizeof(out)),
                         cases[i].want);
    }
    ck_assert_str_eq(ev_metrics_peek_type(NULL, 0, out, sizeof(out)), "unknown");
    char tiny[4];
    const char *r = "{\"type\":\"order.placed\"}";
    ck_assert_str_eq(ev_metrics_peek_type(r, strlen(r), tiny, sizeof(tiny)), "unk");
    ev_metrics *m = ev_metrics_new("orders");
    ev_metrics_count_record(m, EV_MC_APPLIED, r, strlen(r));
    ev_metrics_count_record(m, EV_MC_APPLIED, r, 5); /* cut short: unknown */
    ck_assert_uint_eq(ev_metrics_counter_get(m, EV_MC_APPLIED, "order.placed"), 1);
    ck_assert_uint_eq(ev_metrics_counter_get(m, EV_MC_APPLIED, "unknown"), 1);
    ev_metrics_free(m);
}
END_TEST

/* No service loop runs in this process: its totals are zero and not ready,
 * whatever the READY gauge says. */
START_TEST(attached_runtime_totals_and_readiness)
{
    ev_metrics *m = ev_metrics_new("orders");
    ev_metrics_gauge_set(m, EV_MG_READY, 1);
    ev_metrics_gauge_set(m, EV_MG_OUTBOX_BACKLOG, 9);
    ck_assert(ev_metrics_ready(m));
    ev_metrics_attach_runtime(m);
    ck_assert(!ev_metrics_ready(m));
    char *text = render(m);
    static const char *const want[] = {
        "# TYPE choreo_runtime_consumed_total counter",
        "choreo_runtime_consumed_total{service=\"orders\"} 0",
        "choreo_runtime_delivered_total{service=\"orders\"} 0",
        "choreo_runtime_batches_total{service=\"orders\"} 0",
        "choreo_ready{service=\"orders\"} 0",
        "choreo_outbox_backlog{service=\"orders\"} 0",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_msg(has_line(text, want[i]), "missing line: %s\n%s", want[i], text);
    free(text);
    ev_metrics_free(m);
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, counters_render_per_type);
    tcase_add_test(tc, every_counter_has_a_family);
    tcase_add_test(tc, too_many_types_fall_into_other);
    tcase_add_test(tc, histogram_buckets_are_cumulative);
    tcase_add_test(tc, window_observed_n_times);
    tcase_add_test(tc, gauges_and_lag);
    tcase_add_test(tc, label_values_are_escaped);
    tcase_add_test(tc, render_is_well_formed);
    tcase_add_test(tc, null_registry_is_a_noop);
    tcase_add_test(tc, peek_type_of_records);
    tcase_add_test(tc, attached_runtime_totals_and_readiness);
    tcase_add_test(tc, summary_once_per_interval);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(metrics_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
