/* SPDX-License-Identifier: MIT */
/* Unit tests of the producer's durability settings on librdkafka's mock cluster:
 * idempotence and acks=all as it reads them back, and CHOREO_KAFKA_* overrides
 * that would weaken them refused with the property named. */
#include <check.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "log.h"
#include "mock_cluster.h"

/* Three mock brokers with the topic "t-conf" (3 partitions, 3 replicas). */
static void conf_cluster(harness_mock *m)
{
    harness_mock_up(m, 3, false);
    ck_assert_int_eq(rd_kafka_mock_topic_create(m->mc, "t-conf", 3, 3), 0);
}

/* The producer's effective value of a property, as librdkafka reports it. */
static const char *effective(ev_producer *p, const char *name, char *buf, size_t cap)
{
    size_t len = cap;
    buf[0] = '\0';
    ck_assert_int_eq(
        rd_kafka_conf_get(rd_kafka_conf(ev_producer_handle(p)), name, buf, &len),
        RD_KAFKA_CONF_OK);
    return buf;
}

static void on_delivery(void *arg, void *opaque, int err, const char *errstr,
                        const char *topic, int32_t partition, int64_t offset)
{
    (void)opaque;
    (void)errstr;
    (void)topic;
    (void)partition;
    (void)offset;
    int *delivered = arg;
    if (err == 0)
        (*delivered)++;
}

START_TEST(producer_is_idempotent_with_acks_all)
{
    harness_mock m;
    conf_cluster(&m);
    ev_producer *p = NULL;
    ev_error err = {0};
    int delivered = 0;
    ck_assert_int_eq(ev_producer_new(&p, rd_kafka_mock_cluster_bootstraps(m.mc), "conf",
                                     on_delivery, &delivered, &err),
                     0);
    char v[64];
    ck_assert_str_eq(effective(p, "enable.idempotence", v, sizeof(v)), "true");
    ck_assert_str_eq(effective(p, "acks", v, sizeof(v)), "-1");
    ck_assert_str_eq(effective(p, "request.required.acks", v, sizeof(v)), "-1");
    ck_assert_int_eq(ev_producer_send(p, "t-conf", -1, "k", "v", 1, NULL, 0, NULL, &err),
                     0);
    ck_assert_int_eq(ev_producer_flush(p, 10000, &err), 0);
    ck_assert_int_eq(delivered, 1);
    ev_producer_free(p);
    harness_mock_down(&m);
}
END_TEST

static const struct env_case {
    const char *env[2][2]; /* up to two NAME, value pairs; NULL name = none */
    const char *says;      /* in the error; NULL = accepted */
} env_cases[] = {
    {{{"CHOREO_KAFKA_acks", "1"}}, "acks=1"},
    {{{"CHOREO_KAFKA_acks", "0"}}, "acks=0"},
    {{{"CHOREO_KAFKA_request_required_acks", "1"}}, "acks=1"},
    {{{"CHOREO_KAFKA_enable_idempotence", "false"}}, "enable.idempotence=false"},
    {{{"CHOREO_KAFKA_enable_idempotence", "false"}, {"CHOREO_KAFKA_acks", "1"}},
     "enable.idempotence=false"},
    {{{"CHOREO_KAFKA_acks", "all"}}, NULL},
    {{{"CHOREO_KAFKA_acks", "-1"}}, NULL},
    {{{"CHOREO_KAFKA_enable_idempotence", "true"}}, NULL},
    {{{"CHOREO_KAFKA_linger_ms", "50"}}, NULL},
};

START_TEST(environment_may_not_weaken_durability)
{
    const struct env_case *c = &env_cases[_i];
    harness_mock m;
    conf_cluster(&m);
    for (int k = 0; k < 2 && c->env[k][0]; k++)
        setenv(c->env[k][0], c->env[k][1], 1);
    ev_producer *p = NULL;
    ev_error err = {0};
    int rc = ev_producer_new(&p, rd_kafka_mock_cluster_bootstraps(m.mc), "conf", NULL,
                             NULL, &err);
    if (c->says == NULL) {
        ck_assert_msg(rc == 0, "%s=%s refused: %s", c->env[0][0], c->env[0][1], err.text);
        ev_producer_free(p);
    } else {
        ck_assert_int_eq(rc, EV_EINVAL);
        ck_assert_ptr_null(p);
        ck_assert_msg(strstr(err.text, c->says) != NULL, "text \"%s\" lacks \"%s\"",
                      err.text, c->says);
        ck_assert_msg(strstr(err.text, "CHOREO_KAFKA_") != NULL, "%s", err.text);
    }
    for (int k = 0; k < 2 && c->env[k][0]; k++)
        unsetenv(c->env[k][0]);
    harness_mock_down(&m);
}
END_TEST

int main(void)
{
    ev_log_init("check_bus_conf");
    ev_log_set_level(EV_LOG_ERROR);
    Suite *s = suite_create("bus_conf");
    TCase *tc = tcase_create("bus_conf");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, producer_is_idempotent_with_acks_all);
    tcase_add_loop_test(tc, environment_may_not_weaken_durability, 0,
                        sizeof(env_cases) / sizeof(env_cases[0]));
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
