/* SPDX-License-Identifier: MIT */
/* events/store's runtime tables on both backends: inbox (dedup, claim,
 * prune), outbox (walk, bytes, delete), offsets, timers, and no preparing on
 * the hot path. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_fixture.h"

/* ---- inbox --------------------------------------------------------------------- */

START_TEST(inbox_claim_says_fresh_once_and_savepoint_undoes_it)
{
    ev_store *s = sf_open_default();
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
    ck_assert(sf_seen(s, "e1"));
    ck_assert(!sf_seen(s, "e2"));
    ck_assert_int_eq(sf_query_int(s, "SELECT seen_at FROM inbox WHERE event_id='e1'"),
                     10);
    ev_error err = {0};
    ck_assert_int_eq(ev_store_inbox_claim(s, "", 1, &fresh, &err), EV_EINVAL);
    ev_store_close(s);
}
END_TEST

START_TEST(outbox_delete_ids_removes_exactly_those)
{
    ev_store *s = sf_open_default();
    int64_t id[8];
    for (int i = 0; i < 8; i++)
        OK(ev_store_outbox_add(s, "t", NULL, "v", 1, NULL, &id[i], &e_));
    int64_t del[] = {id[5], id[1], id[2], id[2], id[6], id[4]}; /* runs 1-2 and 4-6 */
    OK(ev_store_outbox_delete_ids(s, del, 6, &e_));
    ck_assert_int_eq(sf_count_of(s, ev_store_outbox_count), 3);
    for (int i = 0; i < 8; i++) {
        char q[96];
        snprintf(q, sizeof(q), "SELECT count(*) FROM outbox WHERE id = %lld",
                 (long long)id[i]);
        ck_assert_int_eq(sf_query_int(s, q), i == 0 || i == 3 || i == 7);
    }
    OK(ev_store_outbox_delete_ids(s, NULL, 0, &e_));
    ev_store_close(s);
}
END_TEST

START_TEST(inbox_dedups_and_add_is_idempotent)
{
    ev_store *s = sf_open_default();
    ck_assert(!sf_seen(s, "e1"));
    OK(ev_store_inbox_add(s, "e1", 100, &e_));
    ck_assert(sf_seen(s, "e1"));
    ck_assert(!sf_seen(s, "e2"));
    OK(ev_store_inbox_add(s, "e1", 999, &e_)); /* no-op, first seen_at kept */
    ck_assert_int_eq(sf_count_of(s, ev_store_inbox_count), 1);
    ck_assert_int_eq(sf_query_int(s, "SELECT seen_at FROM inbox WHERE event_id='e1'"),
                     100);
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
    ev_store *s = sf_open_default();
    OK(ev_store_inbox_add(s, "a", 100, &e_));
    OK(ev_store_inbox_add(s, "b", 200, &e_));
    OK(ev_store_inbox_add(s, "c", 300, &e_));
    int64_t removed = -1;
    OK(ev_store_inbox_prune_n(s, 200, &removed, &e_));
    ck_assert_int_eq(removed, 1);
    ck_assert(!sf_seen(s, "a"));
    ck_assert(sf_seen(s, "b"));
    ck_assert(sf_seen(s, "c"));
    OK(ev_store_inbox_prune(s, 301, &e_));
    ck_assert_int_eq(sf_count_of(s, ev_store_inbox_count), 0);
    ev_store_close(s);
}
END_TEST

/* ---- outbox -------------------------------------------------------------------- */

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
    ev_store *s = sf_open_default();
    int64_t ids[N_OUTBOX];
    fill_outbox(s, ids);
    sf_walk w = sf_walk_of(s);
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
    sf_walk part = {0};
    OK(ev_store_outbox_each(s, ids[2], 2, sf_collect, &part, &e_));
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
    ev_store *s = sf_open_default();
    for (size_t i = 0; i < N_OF(binary_values); i++)
        OK(ev_store_outbox_add(s, "bin", NULL, binary_values[i].bytes,
                               binary_values[i].len, NULL, NULL, &e_));
    sf_walk w = sf_walk_of(s);
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
    ev_store *s = sf_open_default();
    int64_t ids[N_OUTBOX];
    fill_outbox(s, ids);
    sf_walk w = {.stop_after = 2};
    ev_error err = {0};
    ck_assert_int_eq(ev_store_outbox_each(s, 0, 0, sf_collect, &w, &err), 7);
    ck_assert_uint_eq(w.n, 2);
    /* the statement was reset: a new walk starts from the beginning */
    ck_assert_uint_eq(sf_walk_of(s).n, N_OUTBOX);
    ev_store_close(s);
}
END_TEST

START_TEST(outbox_delete_during_walk_and_ids_not_reused)
{
    ev_store *s = sf_open_default();
    int64_t ids[N_OUTBOX];
    fill_outbox(s, ids);
    sf_walk w = {.del = s};
    OK(ev_store_outbox_each(s, 0, 0, sf_collect, &w, &e_));
    ck_assert_uint_eq(w.n, N_OUTBOX);
    ck_assert_int_eq(sf_count_of(s, ev_store_outbox_count), 0);
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
    ev_store *s = sf_open_default();
    ck_assert_int_eq(sf_offset_of(s, "orders", 0), -1);
    OK(ev_store_offset_set(s, "orders", 0, 10, &e_));
    OK(ev_store_offset_set(s, "orders", 1, 20, &e_));
    OK(ev_store_offset_set(s, "payments", 0, 30, &e_));
    OK(ev_store_offset_set(s, "orders", 0, 11, &e_));
    ck_assert_int_eq(sf_offset_of(s, "orders", 0), 11);
    OK(ev_store_offset_set(s, "orders", 0, 7, &e_)); /* never backwards */
    ck_assert_int_eq(sf_offset_of(s, "orders", 0), 11);
    ck_assert_int_eq(sf_offset_of(s, "orders", 1), 20);
    ck_assert_int_eq(sf_offset_of(s, "payments", 0), 30);
    ev_store_close(s);
}
END_TEST

/* ---- timers -------------------------------------------------------------------- */

START_TEST(timers_fire_once)
{
    ev_store *s = sf_open_default();
    ck_assert_int_eq(sf_next_due(s), INT64_MAX);
    ev_timer t1 = sf_timer("o-1", "timeout", 1000);
    ev_timer t2 = sf_timer("o-2", "dispatch", 2000);
    OK(ev_store_timer_set(s, &t2, &e_));
    OK(ev_store_timer_set(s, &t1, &e_));
    ck_assert_int_eq(sf_next_due(s), 1000);
    ev_timer out[4];
    ck_assert_uint_eq(sf_due(s, 999, out, 4), 0);
    ck_assert_uint_eq(sf_due(s, 1500, out, 4), 1);
    ck_assert_str_eq(out[0].key, "o-1");
    ck_assert_str_eq(out[0].kind, "timeout");
    ck_assert_str_eq(out[0].correlationid, "corr-o-1");
    ck_assert_int_eq(out[0].due_at, 1000);
    OK(ev_store_begin(s, &e_));
    OK(ev_store_timer_delete(s, out[0].key, out[0].kind, &e_));
    OK(ev_store_commit(s, &e_));
    ck_assert_uint_eq(sf_due(s, 1500, out, 4), 0);
    ck_assert_int_eq(sf_next_due(s), 2000);
    t2.due_at = 10000; /* set again moves it */
    OK(ev_store_timer_set(s, &t2, &e_));
    ck_assert_uint_eq(sf_due(s, 5000, out, 4), 0);
    ck_assert_int_eq(sf_next_due(s), 10000);
    ck_assert_int_eq(sf_count_of(s, ev_store_timers_count), 1);
    OK(ev_store_timer_delete(s, "o-2", "dispatch", &e_));
    OK(ev_store_timer_delete(s, "o-2", "dispatch", &e_)); /* gone: still 0 */
    ck_assert_int_eq(sf_next_due(s), INT64_MAX);
    ev_store_close(s);
}
END_TEST

START_TEST(timers_due_earliest_first_up_to_cap)
{
    ev_store *s = sf_open_default();
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
        ev_timer t = sf_timer(rows[i].key, rows[i].kind, rows[i].due);
        OK(ev_store_timer_set(s, &t, &e_));
    }
    ev_timer out[8];
    ck_assert_uint_eq(sf_due(s, 500, out, 3), 3);
    ck_assert_str_eq(out[0].key, "a");
    ck_assert_str_eq(out[0].kind, "t");
    ck_assert_str_eq(out[1].key, "a");
    ck_assert_str_eq(out[1].kind, "u");
    ck_assert_str_eq(out[2].key, "b");
    ck_assert_uint_eq(sf_due(s, 500, out, 8), 4);
    ck_assert_uint_eq(sf_due(s, 500, NULL, 0), 0);
    ev_store_close(s);
}
END_TEST

START_TEST(timer_set_rejects_bad_fields)
{
    ev_store *s = sf_open_default();
    ev_error err = {0};
    ev_timer t = sf_timer("", "timeout", 1);
    ck_assert_int_eq(ev_store_timer_set(s, &t, &err), EV_EINVAL);
    t = sf_timer("k", "", 1);
    ck_assert_int_eq(ev_store_timer_set(s, &t, &err), EV_EINVAL);
    t = sf_timer("k", "kind", 1);
    memset(t.kind, 'x', sizeof(t.kind)); /* not NUL-terminated */
    ck_assert_int_eq(ev_store_timer_set(s, &t, &err), EV_EINVAL);
    ck_assert_int_eq(sf_count_of(s, ev_store_timers_count), 0);
    ev_store_close(s);
}
END_TEST

END_TEST

static void one_round(ev_store *s, int i)
{
    char id[32];
    snprintf(id, sizeof(id), "ev-%d", i);
    OK(ev_store_begin(s, &e_));
    sf_seen(s, id);
    OK(ev_store_savepoint(s, &e_));
    OK(ev_store_inbox_add(s, id, i, &e_));
    OK(ev_store_release(s, &e_));
    int64_t oid = 0;
    OK(ev_store_outbox_add(s, "t", id, "v", 1, NULL, &oid, &e_));
    OK(ev_store_offset_set(s, "t", 0, i, &e_));
    sf_offset_of(s, "t", 0);
    ev_timer t = sf_timer(id, "timeout", i);
    OK(ev_store_timer_set(s, &t, &e_));
    OK(ev_store_commit(s, &e_));
    sf_walk w = {.del = s};
    OK(ev_store_outbox_each(s, 0, 0, sf_collect, &w, &e_));
    ev_timer out[4];
    sf_due(s, i, out, 4);
    sf_next_due(s);
    OK(ev_store_timer_delete(s, id, "timeout", &e_));
    OK(ev_store_inbox_prune(s, 0, &e_));
    sf_count_of(s, ev_store_outbox_count);
}

START_TEST(hot_path_prepares_nothing_after_warm_up)
{
    ev_store *s = sf_open_default();
    one_round(s, 1);
    size_t warm = ev_store_stmt_count(s);
    for (int i = 2; i < 10; i++)
        one_round(s, i);
    ck_assert_uint_eq(ev_store_stmt_count(s), warm);
    ck_assert_int_eq(sf_count_of(s, ev_store_inbox_count), 9);
    ev_store_close(s);
}
END_TEST

/* ---- suite --------------------------------------------------------------------- */

static const test_ref neutral_tests[] = {
    T(inbox_dedups_and_add_is_idempotent),
    T(inbox_claim_says_fresh_once_and_savepoint_undoes_it),
    T(outbox_delete_ids_removes_exactly_those),
    T(inbox_prune_removes_old_rows_only),
    T(outbox_each_walks_rows_in_order),
    T(outbox_value_bytes_round_trip),
    T(outbox_each_stops_on_callback_value),
    T(outbox_delete_during_walk_and_ids_not_reused),
    T(offsets_set_get_only_forward),
    T(timers_fire_once),
    T(timers_due_earliest_first_up_to_cap),
    T(timer_set_rejects_bad_fields),
    T(hot_path_prepares_nothing_after_warm_up),
};

int main(void)
{
    return sf_run("store_tables", neutral_tests, N_OF(neutral_tests), NULL, 0, NULL, 0);
}
