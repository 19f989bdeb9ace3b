/* SPDX-License-Identifier: MIT */
/* Synthetic flows for `make bench`: N orders' whole happy path (7 step events,
 * structured-mode envelopes, causation chained) and two notifications each,
 * produced to the prefixed topics as fast as the broker takes them. */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

static const struct step {
    const char *type, *topic, *source;
} path[] = {
    {"order.placed", "orders", "/choreo/cli"},
    {"inventory.reserved", "inventory", "/choreo/inventory"},
    {"payment.authorized", "payments", "/choreo/payments"},
    {"order.confirmed", "orders", "/choreo/orders"},
    {"notification.sent", "notifications", "/choreo/notifications"},
    {"shipment.scheduled", "shipments", "/choreo/shipping"},
    {"shipment.dispatched", "shipments", "/choreo/shipping"},
    {"order.completed", "orders", "/choreo/orders"},
    {"notification.sent", "notifications", "/choreo/notifications"},
};
#define N_PATH (sizeof(path) / sizeof(path[0]))

static json_t *data_of(const char *type, const char *oid)
{
    if (strcmp(type, "order.placed") == 0)
        return json_pack("{s:s, s:s, s:[{s:s, s:i, s:i}], s:i, s:s}", "order_id", oid,
                         "customer_id", "c-1", "items", "sku", "sku-1", "qty", 1,
                         "unit_price_cents", 250, "total_cents", 250, "currency", "EUR");
    if (strcmp(type, "notification.sent") == 0)
        return json_pack("{s:s, s:s, s:s, s:s}", "order_id", oid, "channel", "email",
                         "template", "order_confirmed", "to", "ann@example.com");
    return json_pack("{s:s, s:s, s:s}", "order_id", oid, "payment_id", "pay-1",
                     "shipment_id", "shp-1");
}

static int produce_flow(rd_kafka_t *rk, const char *prefix, long i)
{
    char oid[48], topic[256];
    ev_envelope prev = {0}, e = {0};
    ev_error err;
    snprintf(oid, sizeof(oid), "bf-%ld", i);
    for (size_t k = 0; k < N_PATH; k++) {
        json_t *d = data_of(path[k].type, oid);
        int rc = k == 0 ? ev_envelope_init(&e, path[k].type, path[k].source, oid, d, &err)
                        : ev_envelope_derive(&e, &prev, path[k].type, path[k].source, oid,
                                             0, d, &err);
        char *buf = NULL;
        size_t len = 0;
        if (rc == 0)
            rc = ev_envelope_serialize(&e, NULL, &buf, &len, &err);
        if (rc != 0) {
            fprintf(stderr, "flows: %s\n", err.text);
            return -1;
        }
        snprintf(topic, sizeof(topic), "%s%s", prefix, path[k].topic);
        rd_kafka_resp_err_t r;
        while ((r = rd_kafka_producev(
                    rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(oid, strlen(oid)),
                    RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                    RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 100);
        if (r != RD_KAFKA_RESP_ERR_NO_ERROR) {
            free(buf);
            fprintf(stderr, "flows: produce: %s\n", rd_kafka_err2str(r));
            return -1;
        }
        if (strcmp(path[k].type, "notification.sent") != 0) {
            ev_envelope_clear(&prev);
            prev = e;
        } else {
            ev_envelope_clear(&e);
        }
        memset(&e, 0, sizeof(e));
    }
    ev_envelope_clear(&prev);
    return 0;
}

int main(int argc, char **argv)
{
    const char *brokers = "127.0.0.1:9092", *prefix = "";
    long n = 100000;
    char errstr[256];
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--brokers") == 0)
            brokers = argv[i + 1];
        else if (strcmp(argv[i], "--prefix") == 0)
            prefix = argv[i + 1];
        else if (strcmp(argv[i], "--flows") == 0)
            n = strtol(argv[i + 1], NULL, 10);
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "linger.ms", "20", errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "queue.buffering.max.messages", "500000", errstr,
                          sizeof(errstr))) {
        fprintf(stderr, "flows: %s\n", errstr);
        return 1;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "flows: %s\n", errstr);
        return 1;
    }
    int64_t t0 = ev_mono_ms();
    int rc = 0;
    for (long i = 0; i < n && rc == 0; i++) {
        rc = produce_flow(rk, prefix, i);
        rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, 60000);
    int left = rd_kafka_outq_len(rk);
    rd_kafka_destroy(rk);
    printf("{\"flows\":%ld,\"records\":%ld,\"step_events\":%ld,\"produce_s\":%.3f,"
           "\"unsent\":%d}\n",
           n, n * (long)N_PATH, n * (long)(N_PATH - 2),
           (double)(ev_mono_ms() - t0) / 1000.0, left);
    return rc == 0 && left == 0 ? 0 : 1;
}
