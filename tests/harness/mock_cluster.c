/* SPDX-License-Identifier: MIT */
/* librdkafka's mock cluster for unit tests: up and down, with check's
 * assertions on every step. */
#include "mock_cluster.h"

#include <check.h>

void harness_mock_up(harness_mock *m, int brokers, bool with_client)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
    m->owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    ck_assert_ptr_nonnull(m->owner);
    m->mc = rd_kafka_mock_cluster_new(m->owner, brokers);
    ck_assert_ptr_nonnull(m->mc);
    m->client = NULL;
    if (!with_client)
        return;
    conf = rd_kafka_conf_new();
    ck_assert_int_eq(rd_kafka_conf_set(conf, "bootstrap.servers",
                                       rd_kafka_mock_cluster_bootstraps(m->mc), errstr,
                                       sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    m->client = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    ck_assert_ptr_nonnull(m->client);
}

void harness_mock_down(harness_mock *m)
{
    if (m->client != NULL)
        rd_kafka_destroy(m->client);
    rd_kafka_mock_cluster_destroy(m->mc);
    rd_kafka_destroy(m->owner);
}
