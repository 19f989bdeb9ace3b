/* SPDX-License-Identifier: MIT */
/* Flow: duplicate delivery of every event type. After four orders came to rest
 * (completed, rejected twice, cancelled), every record of every topic is
 * produced again, same bytes and ids: nothing new happens, no state moves. */
#include <string.h>

#include "flow.h"

static json_t *snapshot(flow *f)
{
    json_t *all = json_object();
    for (size_t i = 0; i < FLOW_N_SERVICES; i++)
        json_object_set_new(all, flow_services[i], flow_dump(f, flow_services[i]));
    return all;
}

static const char *const types[] = {
    "customer.registered",    "stock.added",         "order.placed",
    "order.cancel_requested", "order.confirmed",     "order.rejected",
    "order.cancelled",        "order.completed",     "inventory.reserved",
    "inventory.rejected",     "inventory.released",  "payment.authorized",
    "payment.declined",       "payment.refunded",    "shipment.scheduled",
    "shipment.cancelled",     "shipment.dispatched", "shipment.returned",
    "notification.sent",
};
#define N_TYPES (sizeof(types) / sizeof(types[0]))

int main(void)
{
    flow_opts o = {.dispatch_delay_ms = 300};
    flow *f = flow_new("duplicates", &o);
    if (!f)
        return 1;
    flow_start(f, NULL);
    FLOW_CHECK(f, flow_register(f, "c1", "c1@example.com", 5000) == 0, "register");
    FLOW_CHECK(f, flow_add_stock(f, "sku-1", 3) == 0, "stock");
    FLOW_CHECK(f, flow_wait_customer(f, "c1", 30000), "payments knows c1");
    FLOW_CHECK(f, flow_wait_stock(f, "sku-1", 3, 30000), "inventory has sku-1");
    flow_place(f, "o-ok", "c1", "sku-1", 1, 1000);
    flow_place(f, "o-oos", "c1", "sku-1", 9, 10);
    flow_place(f, "o-poor", "c1", "sku-1", 1, 9000);
    const char *out = flow_wait_outcome(f, "o-ok", 30000);
    FLOW_CHECK(f, out && strcmp(out, "completed") == 0, "o-ok %s", out ? out : "none");
    flow_place(f, "o-cxl", "c1", "sku-1", 1, 1000);
    FLOW_CHECK(f, flow_wait_type(f, "o-cxl", "inventory.reserved", 30000, NULL),
               "reserved");
    flow_cancel(f, "o-cxl");
    static const char *const ids[] = {"o-ok", "o-oos", "o-poor", "o-cxl"};
    for (size_t i = 0; i < 4; i++)
        FLOW_CHECK(f, flow_wait_outcome(f, ids[i], 30000) != NULL, "%s outcome", ids[i]);
    FLOW_CHECK(f, flow_wait_quiet(f, 60000), "quiet before the duplicates");

    size_t before[N_TYPES];
    for (size_t t = 0; t < N_TYPES; t++) {
        before[t] = flow_count(f, NULL, types[t]);
        FLOW_CHECK(f,
                   before[t] > 0 || strcmp(types[t], "shipment.returned") == 0 ||
                       strcmp(types[t], "shipment.cancelled") == 0 ||
                       strcmp(types[t], "payment.refunded") == 0,
                   "%s seen before the replay", types[t]);
    }
    json_t *snap = snapshot(f);
    char newdir[600];
    snprintf(newdir, sizeof(newdir), "%s/maildir/new", flow_data_dir(f, "notifications"));
    long mails = flow_count_files(newdir);
    FLOW_CHECK(f, mails > 0, "mails delivered");

    long sent = flow_replay_all(f);
    FLOW_CHECK(f, sent > 20, "replayed %ld records", sent);
    FLOW_CHECK(f, flow_wait_quiet(f, 60000), "quiet after the duplicates");
    for (size_t t = 0; t < N_TYPES; t++)
        FLOW_CHECK(f, flow_count(f, NULL, types[t]) == before[t],
                   "%s: %zu distinct, was %zu", types[t], flow_count(f, NULL, types[t]),
                   before[t]);
    json_t *again = snapshot(f);
    FLOW_CHECK(f, json_equal(snap, again), "state moved under duplicates");
    FLOW_CHECK(f, flow_count_files(newdir) == mails, "mails %ld, was %ld",
               flow_count_files(newdir), mails);
    for (size_t i = 0; i < FLOW_N_SERVICES; i++) {
        char dlq[64];
        snprintf(dlq, sizeof(dlq), "dlq.%s", flow_services[i]);
        FLOW_CHECK(f, flow_count_topic(f, dlq) == 0, "%s is empty", dlq);
    }
    json_decref(snap);
    json_decref(again);
    flow_check_invariants(f, ids, 4);
    return flow_end(f);
}
