/* SPDX-License-Identifier: MIT */
/* Flow: the happy path. One order is reserved, authorized, confirmed,
 * scheduled, dispatched and completed; the customer gets mails. */
#include <string.h>

#include "flow.h"

int main(void)
{
    flow *f = flow_new("happy", NULL);
    if (!f)
        return 1;
    flow_start(f, NULL);
    FLOW_CHECK(f, flow_register(f, "c1", "c1@example.com", 100000) == 0, "register");
    FLOW_CHECK(f, flow_add_stock(f, "sku-1", 10) == 0, "stock");
    FLOW_CHECK(f, flow_wait_customer(f, "c1", 30000), "payments knows c1");
    FLOW_CHECK(f, flow_wait_stock(f, "sku-1", 10, 30000), "inventory has sku-1");
    FLOW_CHECK(f, flow_place(f, "o1", "c1", "sku-1", 3, 1500) == 0, "place");

    const char *o = flow_wait_outcome(f, "o1", 30000);
    FLOW_CHECK(f, o && strcmp(o, "completed") == 0, "o1 outcome %s", o ? o : "none");
    static const char *const steps[] = {"inventory.reserved",  "payment.authorized",
                                        "order.confirmed",     "shipment.scheduled",
                                        "shipment.dispatched", "order.completed"};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
        FLOW_CHECK(f, flow_wait_type(f, "o1", steps[i], 10000, NULL), "o1 %s", steps[i]);
    flow_rec placed, confirmed;
    if (flow_wait_type(f, "o1", "order.placed", 1000, &placed) &&
        flow_wait_type(f, "o1", "order.confirmed", 1000, &confirmed))
        FLOW_CHECK(f, strcmp(confirmed.correlationid, placed.id) == 0,
                   "order.confirmed correlates to order.placed");
    FLOW_CHECK(f, flow_wait_type(f, "o1", "notification.sent", 15000, NULL), "mail sent");

    static const char *const ids[] = {"o1"};
    flow_check_invariants(f, ids, 1);
    return flow_end(f);
}
