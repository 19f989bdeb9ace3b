/* SPDX-License-Identifier: MIT */
/* events/bus against the real broker: produce/consume round trip with headers,
 * start offsets from the start function, CHOREO_KAFKA_* properties. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "harness.h"
#include "log.h"

#define WAIT_MS 30000

typedef struct dr_seen {
    int ok;
    int failed;
    int64_t offset;
    void *opaque;
} dr_seen;

static void on_dr(void *arg, void *opaque, int err, const char *errstr, const char *topic,
                  int32_t partition, int64_t offset)
{
    (void)errstr;
    (void)topic;
    (void)partition;
    dr_seen *s = arg;
    if (err != 0) {
        s->failed++;
        return;
    }
    s->ok++;
    s->offset = offset;
    s->opaque = opaque;
}

typedef struct start_req {
    int calls;
    int64_t p0_start; /* start offset for partition 0; -1 = beginning */
} start_req;

static int on_start(void *arg, const char *topic, int32_t partition, int64_t *next)
{
    (void)topic;
    start_req *r = arg;
    r->calls++;
    *next = partition == 0 ? r->p0_start : -1;
    return 0;
}

/* Polls c until a message of topic arrives; returns it (caller destroys). */
static rd_kafka_message_t *poll_one(ev_consumer *c, int32_t partition)
{
    int64_t deadline = harness_now_ms() + WAIT_MS;
    while (harness_now_ms() < deadline) {
        rd_kafka_message_t *msgs[16];
        size_t n = 0;
        ev_error err = {0};
        ck_assert_int_eq(ev_consumer_poll(c, msgs, 16, 200, &n, &err), 0);
        rd_kafka_message_t *hit = NULL;
        for (size_t i = 0; i < n; i++) {
            if (hit == NULL && (partition < 0 || msgs[i]->partition == partition))
                hit = msgs[i];
            else
                rd_kafka_message_destroy(msgs[i]);
        }
        if (hit != NULL)
            return hit;
    }
    return NULL;
}

static const char *msg_header(rd_kafka_message_t *m, const char *name, char *buf,
                              size_t cap)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t len = 0;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(h, name, &v, &len) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    snprintf(buf, cap, "%.*s", (int)len, (const char *)v);
    return buf;
}

START_TEST(round_trip_with_headers)
{
    char prefix[64], topic[128], group[128];
    harness_prefix(prefix, sizeof(prefix));
    harness_topic(topic, sizeof(topic), prefix, "bus");
    harness_topic(group, sizeof(group), prefix, "g");
    ck_assert_int_eq(harness_create_topic(topic, 3, 10000), 0);

    dr_seen seen = {0};
    ev_producer *p = NULL;
    ev_error err = {0};
    ck_assert_msg(
        ev_producer_new(&p, harness_brokers(), "check-bus", on_dr, &seen, &err) == 0,
        "%s", err.text);
    ev_header h[] = {{"content-type", "application/cloudevents+json"},
                     {"x-trace", "abc"}};
    const char *value = "{\"hello\":\"world\"}";
    ck_assert_int_eq(ev_producer_send(p, topic, -1, "key-1", value, strlen(value), h, 2,
                                      (void *)&seen, &err),
                     0);
    ck_assert_msg(ev_producer_flush(p, WAIT_MS, &err) == 0, "%s", err.text);
    ck_assert_int_eq(seen.ok, 1);
    ck_assert_int_eq(seen.failed, 0);
    ck_assert_ptr_eq(seen.opaque, &seen);
    ck_assert_int_ge(seen.offset, 0);
    ck_assert_int_eq(ev_producer_outq_len(p), 0);

    start_req sr = {0, -1};
    const char *topics[] = {topic, NULL};
    ev_consumer *c = NULL;
    ck_assert_msg(
        ev_consumer_new(&c, harness_brokers(), group, topics, on_start, &sr, &err) == 0,
        "%s", err.text);
    rd_kafka_message_t *m = poll_one(c, -1);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(sr.calls, 3); /* one start question per assigned partition */
    ck_assert(ev_consumer_assigned(c));
    ck_assert_int_eq((int)m->len, (int)strlen(value));
    ck_assert(memcmp(m->payload, value, m->len) == 0);
    ck_assert_int_eq((int)m->key_len, 5);
    ck_assert(memcmp(m->key, "key-1", 5) == 0);
    char buf[128];
    ck_assert_str_eq(msg_header(m, "content-type", buf, sizeof(buf)),
                     "application/cloudevents+json");
    ck_assert_str_eq(msg_header(m, "x-trace", buf, sizeof(buf)), "abc");
    ck_assert_int_eq(ev_consumer_store(c, topic, m->partition, m->offset + 1, &err), 0);
    rd_kafka_message_destroy(m);
    ck_assert_int_eq(ev_consumer_close(c, &err), 0);
    ev_consumer_free(c);
    ev_producer_free(p);
}
END_TEST

/* Partitions of c's current assignment (0 while a rebalance took them all). */
static int assigned_count(ev_consumer *c)
{
    rd_kafka_topic_partition_list_t *a = NULL;
    int n = 0;
    if (rd_kafka_assignment(ev_consumer_handle(c), &a) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        n = a->cnt;
        rd_kafka_topic_partition_list_destroy(a);
    }
    return n;
}

static void poll_drop(ev_consumer *c)
{
    rd_kafka_message_t *msgs[16];
    size_t n = 0;
    ev_error err = {0};
    ev_consumer_poll(c, msgs, 16, 50, &n, &err);
    for (size_t i = 0; i < n; i++)
        rd_kafka_message_destroy(msgs[i]);
}

/* Cooperative-sticky: a second member joining takes half of the partitions
 * from the first, which keeps the other half without giving them back (an
 * eager protocol revokes all six and assigns three again: nine start calls). */
START_TEST(joining_member_moves_only_some_partitions)
{
    char prefix[64], topic[128], group[128];
    harness_prefix(prefix, sizeof(prefix));
    harness_topic(topic, sizeof(topic), prefix, "coop");
    harness_topic(group, sizeof(group), prefix, "g");
    ck_assert_int_eq(harness_create_topic(topic, 6, 10000), 0);
    const char *topics[] = {topic, NULL};
    ev_consumer *a = NULL, *b = NULL;
    start_req sa = {0, -1}, sb = {0, -1};
    ev_error err = {0};
    ck_assert_int_eq(
        ev_consumer_new(&a, harness_brokers(), group, topics, on_start, &sa, &err), 0);
    int64_t deadline = harness_now_ms() + WAIT_MS;
    while (assigned_count(a) < 6 && harness_now_ms() < deadline)
        poll_drop(a);
    ck_assert_int_eq(assigned_count(a), 6);
    ck_assert_str_eq(rd_kafka_rebalance_protocol(ev_consumer_handle(a)), "COOPERATIVE");
    ck_assert_int_eq(
        ev_consumer_new(&b, harness_brokers(), group, topics, on_start, &sb, &err), 0);
    deadline = harness_now_ms() + WAIT_MS;
    while ((assigned_count(a) != 3 || assigned_count(b) != 3) &&
           harness_now_ms() < deadline) {
        poll_drop(a);
        poll_drop(b);
    }
    ck_assert_int_eq(assigned_count(a), 3);
    ck_assert_int_eq(assigned_count(b), 3);
    ck_assert_int_eq(sa.calls, 6); /* the kept three were never assigned again */
    ck_assert_int_eq(sb.calls, 3);
    ck_assert_int_eq(ev_consumer_close(b, &err), 0);
    ev_consumer_free(b);
    ck_assert_int_eq(ev_consumer_close(a, &err), 0);
    ev_consumer_free(a);
}
END_TEST

START_TEST(start_function_sets_position)
{
    char prefix[64], topic[128], group[128];
    harness_prefix(prefix, sizeof(prefix));
    harness_topic(topic, sizeof(topic), prefix, "pos");
    harness_topic(group, sizeof(group), prefix, "g");
    ck_assert_int_eq(harness_create_topic(topic, 3, 10000), 0);
    dr_seen seen = {0};
    ev_producer *p = NULL;
    ev_error err = {0};
    ck_assert_int_eq(ev_producer_new(&p, harness_brokers(), NULL, on_dr, &seen, &err), 0);
    for (int i = 0; i < 5; i++) {
        char v[16];
        snprintf(v, sizeof(v), "m%d", i);
        ck_assert_int_eq(
            ev_producer_send(p, topic, 0, NULL, v, strlen(v), NULL, 0, NULL, &err), 0);
    }
    ck_assert_int_eq(ev_producer_flush(p, WAIT_MS, &err), 0);
    ck_assert_int_eq(seen.ok, 5);

    start_req sr = {0, 3};
    const char *topics[] = {topic, NULL};
    ev_consumer *c = NULL;
    ck_assert_int_eq(
        ev_consumer_new(&c, harness_brokers(), group, topics, on_start, &sr, &err), 0);
    rd_kafka_message_t *m = poll_one(c, 0);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(m->offset, 3); /* where the start function said, not 0 */
    ck_assert(memcmp(m->payload, "m3", 2) == 0);
    rd_kafka_message_destroy(m);

    /* Seek back re-reads. */
    ck_assert_int_eq(ev_consumer_seek(c, topic, 0, 1, &err), 0);
    m = poll_one(c, 0);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(m->offset, 1);
    rd_kafka_message_destroy(m);
    ck_assert_int_eq(ev_consumer_close(c, &err), 0);
    ev_consumer_free(c);
    ev_producer_free(p);
}
END_TEST

START_TEST(env_property_applied)
{
    setenv("CHOREO_KAFKA_client_id", "choreo-env-client", 1);
    setenv("CHOREO_KAFKA_queue_buffering_max_messages", "1234", 1);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    ev_error err = {0};
    ck_assert_int_eq(ev_bus_conf_env(conf, &err), 0);
    char buf[128];
    size_t len = sizeof(buf);
    ck_assert_int_eq(rd_kafka_conf_get(conf, "client.id", buf, &len), RD_KAFKA_CONF_OK);
    ck_assert_str_eq(buf, "choreo-env-client");
    len = sizeof(buf);
    ck_assert_int_eq(rd_kafka_conf_get(conf, "queue.buffering.max.messages", buf, &len),
                     RD_KAFKA_CONF_OK);
    ck_assert_str_eq(buf, "1234");
    rd_kafka_conf_destroy(conf);

    /* The environment wins over the program's own client id. */
    ev_producer *p = NULL;
    ck_assert_int_eq(ev_producer_new(&p, harness_brokers(), "own-id", NULL, NULL, &err),
                     0);
    ck_assert(strstr(rd_kafka_name(ev_producer_handle(p)), "choreo-env-client") != NULL);
    ev_producer_free(p);
    unsetenv("CHOREO_KAFKA_client_id");
    unsetenv("CHOREO_KAFKA_queue_buffering_max_messages");
}
END_TEST

static const struct bad_prop {
    const char *env;
    const char *value;
    const char *property;
    const char *what;
} bad_props[] = {
    {"CHOREO_KAFKA_no_such_property", "secret-value-1", "no.such.property", "unknown"},
    {"CHOREO_KAFKA_acks", "secret-value-2", "acks", "invalid"},
    {"CHOREO_KAFKA_sasl_password_bogus", "hunter2", "sasl.password.bogus", "unknown"},
};

START_TEST(bad_property_named_value_hidden)
{
    const struct bad_prop *b = &bad_props[_i];
    setenv(b->env, b->value, 1);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    ev_error err = {0};
    ck_assert_int_eq(ev_bus_conf_env(conf, &err), EV_EINVAL);
    ck_assert_msg(strstr(err.text, b->property) != NULL, "%s", err.text);
    ck_assert_msg(strstr(err.text, b->env) != NULL, "%s", err.text);
    ck_assert_msg(strstr(err.text, b->what) != NULL, "%s", err.text);
    ck_assert_msg(strstr(err.text, b->value) == NULL, "value leaked: %s", err.text);
    rd_kafka_conf_destroy(conf);

    /* Producer and consumer construction fail with the same clear error. */
    ev_producer *p = NULL;
    ev_error perr = {0};
    ck_assert_int_eq(ev_producer_new(&p, harness_brokers(), NULL, NULL, NULL, &perr),
                     EV_EINVAL);
    ck_assert_ptr_null(p);
    ck_assert(strstr(perr.text, b->property) != NULL);
    ck_assert(strstr(perr.text, b->value) == NULL);
    unsetenv(b->env);
}
END_TEST

START_TEST(consumer_rejects_empty_group_and_topics)
{
    ev_consumer *c = NULL;
    ev_error err = {0};
    const char *none[] = {NULL};
    ck_assert_int_eq(ev_consumer_new(&c, harness_brokers(), "", none, NULL, NULL, &err),
                     EV_EINVAL);
    ck_assert_int_eq(ev_consumer_new(&c, harness_brokers(), "g", none, NULL, NULL, &err),
                     EV_EINVAL);
    ck_assert_ptr_null(c);
}
END_TEST

static Suite *bus_suite(void)
{
    Suite *s = suite_create("bus");
    TCase *tc = tcase_create("broker");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, round_trip_with_headers);
    tcase_add_test(tc, start_function_sets_position);
    tcase_add_test(tc, joining_member_moves_only_some_partitions);
    tcase_add_test(tc, env_property_applied);
    tcase_add_loop_test(tc, bad_property_named_value_hidden, 0,
                        (int)(sizeof(bad_props) / sizeof(bad_props[0])));
    tcase_add_test(tc, consumer_rejects_empty_group_and_topics);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    ev_log_init("check_bus");
    ev_log_set_level(EV_LOG_WARN);
    SRunner *sr = srunner_create(bus_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
