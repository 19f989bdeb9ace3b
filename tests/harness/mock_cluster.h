/* SPDX-License-Identifier: MIT */
/* librdkafka's in-process mock cluster for unit tests (no broker): a handle
 * that hosts it, and optionally a client handle bootstrapped on it. */
#ifndef MOCK_CLUSTER_H
#define MOCK_CLUSTER_H

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdbool.h>

typedef struct harness_mock {
    rd_kafka_t *owner; /* hosts the mock cluster */
    rd_kafka_mock_cluster_t *mc;
    rd_kafka_t *client; /* what the code under test uses; NULL without with_client */
} harness_mock;

/* Starts a mock cluster of brokers brokers (the test fails if it cannot); with
 * with_client, also a producer handle whose bootstrap.servers is the cluster. */
void harness_mock_up(harness_mock *m, int brokers, bool with_client);
/* Destroys the client, the cluster and its host, in that order. */
void harness_mock_down(harness_mock *m);

#endif
