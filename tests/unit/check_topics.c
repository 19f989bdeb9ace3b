/* SPDX-License-Identifier: MIT */
/* Unit tests of topic provisioning on librdkafka's mock cluster: missing topics
 * are named, and a program that may not create them waits until they appear. */
#include <check.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "envelope.h"
#include "log.h"
#include "mock_cluster.h"
#include "topics.h"

START_TEST(missing_topics_are_named)
{
    harness_mock m;
    harness_mock_up(&m, 3, true);
    ck_assert_int_eq(rd_kafka_mock_topic_create(m.mc, "t-orders", 3, 3), 0);
    const char *topics[] = {"t-orders", "t-customers", "t-dlq.orders", NULL};
    size_t missing = 0;
    int brokers = 0;
    char list[128];
    ev_error err = {0};
    ck_assert_int_eq(ev_topics_missing(m.client, topics, 5000, &missing, list,
                                       sizeof(list), &brokers, &err),
                     0);
    ck_assert_uint_eq(missing, 2);
    ck_assert_str_eq(list, "t-customers,t-dlq.orders");
    ck_assert_int_eq(brokers, 3);
    harness_mock_down(&m);
}
END_TEST

START_TEST(list_truncates_with_ellipsis)
{
    harness_mock m;
    harness_mock_up(&m, 1, true);
    const char *topics[] = {"a-very-long-topic-name-one", "a-very-long-topic-name-two",
                            NULL};
    size_t missing = 0;
    char list[20];
    ev_error err = {0};
    ck_assert_int_eq(ev_topics_missing(m.client, topics, 5000, &missing, list,
                                       sizeof(list), NULL, &err),
                     0);
    ck_assert_uint_eq(missing, 2);
    ck_assert_uint_eq(strlen(list), sizeof(list) - 1);
    ck_assert_str_eq(list + strlen(list) - 3, "...");
    harness_mock_down(&m);
}
END_TEST

typedef struct later {
    rd_kafka_mock_cluster_t *mc;
    int delay_ms;
} later;

static void *create_later(void *arg)
{
    later *l = arg;
    usleep((useconds_t)l->delay_ms * 1000);
    rd_kafka_mock_topic_create(l->mc, "t-late", 3, 1);
    return NULL;
}

/* The mock cluster has no CreateTopics: as on a cluster whose ACLs refuse it,
 * ensure must wait, then return once someone else made the topic. */
START_TEST(ensure_waits_for_topics_it_cannot_create)
{
    harness_mock m;
    harness_mock_up(&m, 1, true);
    later l = {m.mc, 1500};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, create_later, &l), 0);
    const char *topics[] = {"t-late", NULL};
    ev_topics_ensure_opts o = {.partitions = 3, .poll_ms = 100, .wait_ms = 20000};
    ev_error err = {0};
    int64_t t0 = ev_mono_ms();
    int rc = ev_topics_ensure(m.client, topics, &o, &err);
    int64_t took = ev_mono_ms() - t0;
    pthread_join(th, NULL);
    ck_assert_msg(rc == 0, "ensure: %s", err.text);
    ck_assert_int_ge(took, 1400); /* it did wait for the topic */
    harness_mock_down(&m);
}
END_TEST

START_TEST(ensure_gives_up_on_stop_naming_the_topics)
{
    harness_mock m;
    harness_mock_up(&m, 1, true);
    volatile sig_atomic_t stop = 0;
    const char *topics[] = {"t-never", NULL};
    ev_topics_ensure_opts o = {.partitions = 3, .poll_ms = 50, .wait_ms = 300};
    ev_error err = {0};
    ck_assert_int_eq(ev_topics_ensure(m.client, topics, &o, &err), EV_ETIMEOUT);
    ck_assert_ptr_nonnull(strstr(err.text, "t-never"));
    stop = 1;
    o.wait_ms = -1;
    o.stop = &stop;
    ck_assert_int_eq(ev_topics_ensure(m.client, topics, &o, &err), EV_ETIMEOUT);
    harness_mock_down(&m);
}
END_TEST

START_TEST(create_rejects_zero_partitions)
{
    harness_mock m;
    harness_mock_up(&m, 1, true);
    const char *topics[] = {"t-x", NULL};
    ev_error err = {0};
    ck_assert_int_eq(ev_topics_create(m.client, topics, 0, 1, 1000, NULL, &err),
                     EV_EINVAL);
    harness_mock_down(&m);
}
END_TEST

int main(void)
{
    ev_log_init("check_topics");
    ev_log_set_level(EV_LOG_ERROR);
    Suite *s = suite_create("topics");
    TCase *tc = tcase_create("topics");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, missing_topics_are_named);
    tcase_add_test(tc, list_truncates_with_ellipsis);
    tcase_add_test(tc, ensure_waits_for_topics_it_cannot_create);
    tcase_add_test(tc, ensure_gives_up_on_stop_naming_the_topics);
    tcase_add_test(tc, create_rejects_zero_partitions);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
