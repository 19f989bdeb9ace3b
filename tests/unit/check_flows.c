/* SPDX-License-Identifier: MIT */
/* Unit tests of the flow projection: events in any order, duplicates, a missing
 * step, a timer-driven outcome, stuck flows and what they wait for, the memory bound. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "contract.h"
#include "flows.h"

#define CONTRACT EV_SCHEMA_DIR "/choreography.json"
#define T0 1700000000000LL /* an event time, unix ms */

static ev_contract *contract;
static ev_flows *fl;

static void setup_with(const ev_flows_opts *o)
{
    ev_error err;
    ck_assert_msg(ev_contract_load(&contract, CONTRACT, &err) == 0, "%s", err.text);
    ck_assert_msg(ev_flows_new(&fl, contract, o, &err) == 0, "%s", err.text);
}

static void setup(void)
{
    setup_with(NULL);
}

static void teardown(void)
{
    ev_flows_free(fl);
    ev_contract_free(contract);
    fl = NULL;
    contract = NULL;
}

static ev_flow_result add(const char *type, const char *key, int64_t ms,
                          const char *reason)
{
    ev_flow_event e = {.type = type,
                       .key = key,
                       .correlationid = "corr-1",
                       .reason = reason,
                       .time_ms = T0 + ms};
    return ev_flows_add(fl, &e);
}

/* A number at a dotted path of the summary ("totals.in_flight"). */
static json_int_t total(const char *name)
{
    json_t *s = ev_flows_summary(fl, T0 + 60000);
    json_int_t v =
        json_integer_value(json_object_get(json_object_get(s, "totals"), name));
    json_decref(s);
    return v;
}

/* A member of the summary's entry for step type. */
static json_t *step_entry(json_t *summary, const char *type)
{
    size_t i;
    json_t *st;
    json_array_foreach(json_object_get(summary, "steps"), i,
                       st) if (strcmp(json_string_value(json_object_get(st, "type")),
                                      type) == 0) return st;
    ck_abort_msg("no step %s", type);
    return NULL;
}

static json_int_t outcome_total(const char *type, const char *reason)
{
    json_t *s = ev_flows_summary(fl, T0 + 60000);
    json_int_t n = 0;
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(s, "outcomes"), i, o)
    {
        if (strcmp(json_string_value(json_object_get(o, "type")), type) == 0 &&
            strcmp(json_string_value(json_object_get(o, "reason")), reason) == 0)
            n += json_integer_value(json_object_get(o, "total"));
    }
    json_decref(s);
    return n;
}

/* The happy path of one order, with event times 10 ms apart. */
static const char *const happy[] = {
    "order.placed",       "inventory.reserved",  "payment.authorized", "order.confirmed",
    "shipment.scheduled", "shipment.dispatched", "order.completed",
};
#define N_HAPPY (sizeof(happy) / sizeof(happy[0]))

START_TEST(steps_follow_the_flow_table)
{
    json_t *s = ev_flows_summary(fl, T0);
    json_t *steps = json_object_get(s, "steps");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(steps, 0), "type")),
                     "order.placed");
    ck_assert(
        json_is_true(json_object_get(step_entry(s, "order.completed"), "terminal")));
    ck_assert_str_eq(json_string_value(
                         json_object_get(step_entry(s, "payment.authorized"), "service")),
                     "payments");
    ck_assert(ev_flows_is_step(fl, "order.placed"));
    ck_assert(!ev_flows_is_step(fl, "notification.sent"));
    json_decref(s);
}
END_TEST

START_TEST(in_order_flow_completes_with_latencies)
{
    for (size_t i = 0; i < N_HAPPY; i++) {
        ck_assert_int_eq(add(happy[i], "o-1", (int64_t)i * 10, NULL), EV_FLOW_APPLIED);
        ck_assert_uint_eq(ev_flows_in_flight(fl), i + 1 < N_HAPPY ? 1 : 0);
    }
    ck_assert_int_eq(outcome_total("order.completed", ""), 1);
    json_t *s = ev_flows_summary(fl, T0 + 1000);
    json_t *lat = json_object_get(step_entry(s, "payment.authorized"), "latency_ms");
    ck_assert_int_eq(json_integer_value(json_object_get(lat, "n")), 1);
    ck_assert(json_real_value(json_object_get(lat, "p99")) == 10.0);
    ck_assert_int_eq(
        json_integer_value(json_object_get(step_entry(s, "order.placed"), "per_min")), 1);
    json_decref(s);
}
END_TEST

/* Topics are read in parallel: a flow's events come in any order. */
START_TEST(out_of_order_events_give_the_same_flow)
{
    static const int order[] = {6, 2, 4, 0, 5, 1, 3};
    for (size_t i = 0; i < N_HAPPY; i++)
        ck_assert_int_eq(add(happy[order[i]], "o-1", order[i] * 10, NULL),
                         EV_FLOW_APPLIED);
    ck_assert_uint_eq(ev_flows_in_flight(fl), 0);
    ck_assert_int_eq(total("finished"), 1);
    ck_assert_int_eq(outcome_total("order.completed", ""), 1);
    json_t *s = ev_flows_summary(fl, T0 + 1000);
    /* every edge of the path measured once, cause to effect */
    for (size_t i = 1; i < N_HAPPY; i++) {
        json_t *lat = json_object_get(step_entry(s, happy[i]), "latency_ms");
        ck_assert_int_eq(json_integer_value(json_object_get(lat, "n")), 1);
        ck_assert(json_real_value(json_object_get(lat, "p50")) == 10.0);
    }
    json_decref(s);
    /* the finished flow is kept whole: its steps, in time order */
    json_t *done = ev_flows_list(fl, T0 + 1000, EV_FLOWS_FINISHED, "completed", NULL, 0);
    ck_assert_uint_eq(json_array_size(done), 1);
    json_t *steps = json_object_get(json_array_get(done, 0), "steps");
    ck_assert_uint_eq(json_array_size(steps), N_HAPPY);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(steps, 0), "time")),
                     "2023-11-14T22:13:20.000Z");
    json_decref(done);
}
END_TEST

START_TEST(duplicates_count_once)
{
    for (size_t i = 0; i < N_HAPPY; i++) {
        ck_assert_int_eq(add(happy[i], "o-1", (int64_t)i, NULL), EV_FLOW_APPLIED);
        if (i + 1 < N_HAPPY)
            ck_assert_int_eq(add(happy[i], "o-1", (int64_t)i, NULL), EV_FLOW_DUPLICATE);
    }
    /* a redelivery after the end changes nothing either */
    ck_assert_int_eq(add("order.completed", "o-1", 6, NULL), EV_FLOW_DUPLICATE);
    ck_assert_int_eq(total("events"), (json_int_t)N_HAPPY);
    ck_assert_int_eq(total("duplicates"), (json_int_t)N_HAPPY);
    ck_assert_int_eq(outcome_total("order.completed", ""), 1);
    ck_assert_int_eq(total("flows"), 1);
}
END_TEST

START_TEST(unknown_types_and_bad_events_are_ignored)
{
    ck_assert_int_eq(add("notification.sent", "o-1", 0, NULL), EV_FLOW_NOT_STEP);
    ck_assert_int_eq(add("no.such.type", "o-1", 0, NULL), EV_FLOW_NOT_STEP);
    ev_flow_event e = {.type = "order.placed", .key = "", .time_ms = T0};
    ck_assert_int_eq(ev_flows_add(fl, &e), EV_FLOW_INVALID);
    e.key = "o-1";
    e.time_ms = -1;
    ck_assert_int_eq(ev_flows_add(fl, &e), EV_FLOW_INVALID);
    ck_assert_int_eq(total("not_steps"), 2);
    ck_assert_int_eq(total("invalid"), 2);
    ck_assert_int_eq(total("flows"), 0);
}
END_TEST

/* inventory.reserved never seen: the flow goes on from the step it reached. */
START_TEST(missing_step_does_not_hold_the_flow)
{
    add("order.placed", "o-1", 0, NULL);
    add("payment.authorized", "o-1", 20, NULL);
    json_t *l = ev_flows_list(fl, T0 + 40000, EV_FLOWS_STUCK, NULL, NULL, 0);
    ck_assert_uint_eq(json_array_size(l), 1);
    json_t *f0 = json_array_get(l, 0);
    ck_assert_str_eq(json_string_value(json_object_get(f0, "step")),
                     "payment.authorized");
    ck_assert_str_eq(json_string_value(json_object_get(f0, "service")), "orders");
    json_t *w = json_object_get(f0, "waiting_for");
    ck_assert_uint_eq(json_array_size(w), 2);
    ck_assert_str_eq(json_string_value(json_array_get(w, 0)), "order.confirmed");
    json_decref(l);
    /* no cause seen, no latency for payment.authorized */
    json_t *s = ev_flows_summary(fl, T0);
    ck_assert_int_eq(
        json_integer_value(json_object_get(
            json_object_get(step_entry(s, "payment.authorized"), "latency_ms"), "n")),
        0);
    ck_assert_int_eq(json_integer_value(json_object_get(
                         step_entry(s, "payment.authorized"), "in_flight")),
                     1);
    json_decref(s);
    add("order.confirmed", "o-1", 30, NULL);
    l = ev_flows_list(fl, T0 + 40000, EV_FLOWS_STUCK, NULL, NULL, 0);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(l, 0), "service")),
                     "shipping");
    json_decref(l);
}
END_TEST

/* Stuck: no next step within stuck_after of the current one. */
START_TEST(stuck_names_the_awaited_step_and_service)
{
    add("order.placed", "o-1", 0, NULL);
    add("inventory.reserved", "o-1", 100, NULL);
    json_t *l = ev_flows_list(fl, T0 + 100 + 29000, EV_FLOWS_STUCK, NULL, NULL, 0);
    ck_assert_uint_eq(json_array_size(l), 0); /* not yet */
    json_decref(l);
    l = ev_flows_list(fl, T0 + 100 + 31000, EV_FLOWS_STUCK, NULL, NULL, 0);
    ck_assert_uint_eq(json_array_size(l), 1);
    json_t *f0 = json_array_get(l, 0);
    ck_assert_str_eq(json_string_value(json_object_get(f0, "order_id")), "o-1");
    ck_assert_str_eq(json_string_value(json_object_get(f0, "state")), "stuck");
    ck_assert_str_eq(json_string_value(json_object_get(f0, "service")), "payments");
    ck_assert_str_eq(
        json_string_value(json_array_get(json_object_get(f0, "waiting_for"), 1)),
        "payment.declined");
    ck_assert_int_eq(json_integer_value(json_object_get(f0, "waiting_ms")), 31000);
    ck_assert_str_eq(json_string_value(json_object_get(f0, "correlationid")), "corr-1");
    json_decref(l);
    /* --step filters on the step reached */
    l = ev_flows_list(fl, T0 + 40000, EV_FLOWS_IN_FLIGHT, NULL, "order.placed", 0);
    ck_assert_uint_eq(json_array_size(l), 0);
    json_decref(l);
    l = ev_flows_list(fl, T0 + 40000, EV_FLOWS_IN_FLIGHT, NULL, "inventory.reserved", 0);
    ck_assert_uint_eq(json_array_size(l), 1);
    json_decref(l);
}
END_TEST

/* The orders service's timeout timer ends a flow that waits for inventory. */
START_TEST(timer_driven_outcome_ends_a_stuck_flow)
{
    add("order.placed", "o-1", 0, NULL);
    json_t *l = ev_flows_list(fl, T0 + 31000, EV_FLOWS_STUCK, NULL, NULL, 0);
    ck_assert_uint_eq(json_array_size(l), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(l, 0), "service")),
                     "inventory");
    json_decref(l);
    ck_assert_int_eq(add("order.cancelled", "o-1", 30000, "timeout"), EV_FLOW_APPLIED);
    l = ev_flows_list(fl, T0 + 31000, EV_FLOWS_STUCK, NULL, NULL, 0);
    ck_assert_uint_eq(json_array_size(l), 0);
    json_decref(l);
    ck_assert_uint_eq(ev_flows_in_flight(fl), 0);
    ck_assert_int_eq(outcome_total("order.cancelled", "timeout"), 1);
    l = ev_flows_list(fl, T0 + 31000, EV_FLOWS_FINISHED, "cancelled", NULL, 0);
    ck_assert_uint_eq(json_array_size(l), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(l, 0), "reason")),
                     "timeout");
    json_decref(l);
    /* the outcome counts in the window that holds its time, not after */
    json_t *s = ev_flows_summary(fl, T0 + 31000);
    json_t *o = json_array_get(json_object_get(s, "outcomes"), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "in_window")), 1);
    json_decref(s);
    s = ev_flows_summary(fl, T0 + 2 * 3600 * 1000);
    o = json_array_get(json_object_get(s, "outcomes"), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "in_window")), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "total")), 1);
    json_decref(s);
}
END_TEST

/* After the end, events of the flow still arrive from slower topics. */
START_TEST(late_steps_of_finished_flows)
{
    teardown();
    ev_flows_opts o = {.keep_finished = 1};
    setup_with(&o);
    add("order.placed", "o-1", 0, NULL);
    add("order.rejected", "o-1", 50, "out_of_stock");
    /* kept whole: the late step still gives its latency */
    ck_assert_int_eq(add("inventory.rejected", "o-1", 20, NULL), EV_FLOW_APPLIED);
    add("order.placed", "o-2", 0, NULL);
    add("order.rejected", "o-2", 50, "out_of_stock");
    /* o-1 is forgotten now: only its hash is left */
    ck_assert_int_eq(add("inventory.reserved", "o-1", 20, NULL), EV_FLOW_LATE);
    ck_assert_uint_eq(ev_flows_in_flight(fl), 0);
    ck_assert_int_eq(total("late"), 1);
    ck_assert_int_eq(outcome_total("order.rejected", "out_of_stock"), 2);
    json_t *s = ev_flows_summary(fl, T0);
    json_t *lat = json_object_get(step_entry(s, "order.rejected"), "latency_ms");
    ck_assert_int_eq(json_integer_value(json_object_get(lat, "n")), 1);
    ck_assert(json_real_value(json_object_get(lat, "p50")) == 30.0);
    json_decref(s);
}
END_TEST

/* 1M flows pass through; only the unfinished ones hold memory. */
START_TEST(memory_is_bounded_for_a_million_flows)
{
    char key[32];
    size_t after_100k = 0;
    for (int i = 0; i < 1000000; i++) {
        snprintf(key, sizeof(key), "o-%d", i);
        for (size_t k = 0; k < N_HAPPY; k++)
            add(happy[k], key, (int64_t)i + (int64_t)k, NULL);
        if (i == 99999) /* the finished flows kept whole fill up early */
            after_100k = ev_flows_memory(fl);
    }
    ck_assert_uint_eq(ev_flows_in_flight(fl), 0);
    ck_assert_int_eq(outcome_total("order.completed", ""), 1000000);
    ck_assert_uint_eq(ev_flows_memory(fl), after_100k);
    ck_assert_msg(ev_flows_memory(fl) < 8u << 20, "%zu bytes", ev_flows_memory(fl));
}
END_TEST

/* Flows that never end are capped: the least recently updated are dropped. */
START_TEST(unfinished_flows_are_capped)
{
    teardown();
    ev_flows_opts o = {.max_flows = 100000};
    setup_with(&o);
    char key[32];
    for (int i = 0; i < 1000000; i++) {
        snprintf(key, sizeof(key), "o-%d", i);
        add("order.placed", key, i, NULL);
    }
    ck_assert_uint_eq(ev_flows_in_flight(fl), 100000);
    ck_assert_int_eq(total("dropped"), 900000);
    ck_assert_msg(ev_flows_memory(fl) < 64u << 20, "%zu bytes", ev_flows_memory(fl));
    /* the newest are kept */
    json_t *l = ev_flows_list(fl, T0 + 1000000, EV_FLOWS_IN_FLIGHT, NULL, NULL, 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(l, 0), "order_id")),
                     "o-999999");
    json_decref(l);
    json_t *s = ev_flows_summary(fl, T0);
    ck_assert_int_eq(
        json_integer_value(json_object_get(step_entry(s, "order.placed"), "in_flight")),
        100000);
    json_decref(s);
}
END_TEST

START_TEST(bad_flow_tables_are_rejected)
{
    ev_contract *c = NULL;
    ev_flows *f = NULL;
    ev_error err;
    char path[] = "/tmp/check_flows_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *fp = fdopen(fd, "w");
    fputs("{\"events\":{\"a.b\":{\"topic\":\"t\",\"key\":\"k\",\"producer\":\"p\"}},"
          "\"services\":{}}",
          fp);
    fclose(fp);
    ck_assert_int_eq(ev_contract_load(&c, path, &err), 0);
    ck_assert_int_eq(ev_flows_new(&f, c, NULL, &err), EV_EINVAL);
    ck_assert(strstr(err.text, "flow") != NULL);
    ck_assert_ptr_null(f);
    ev_contract_free(c);
    unlink(path);
}
END_TEST

static Suite *flows_suite(void)
{
    Suite *s = suite_create("flows");
    TCase *tc = tcase_create("flows");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, steps_follow_the_flow_table);
    tcase_add_test(tc, in_order_flow_completes_with_latencies);
    tcase_add_test(tc, out_of_order_events_give_the_same_flow);
    tcase_add_test(tc, duplicates_count_once);
    tcase_add_test(tc, unknown_types_and_bad_events_are_ignored);
    tcase_add_test(tc, missing_step_does_not_hold_the_flow);
    tcase_add_test(tc, stuck_names_the_awaited_step_and_service);
    tcase_add_test(tc, timer_driven_outcome_ends_a_stuck_flow);
    tcase_add_test(tc, late_steps_of_finished_flows);
    tcase_add_test(tc, memory_is_bounded_for_a_million_flows);
    tcase_add_test(tc, unfinished_flows_are_capped);
    tcase_add_test(tc, bad_flow_tables_are_rejected);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(flows_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
