/* SPDX-License-Identifier: MIT */
/* Flow: the customer cancels a confirmed order before its dispatch: refund,
 * release, shipment cancelled, never dispatched. A cancel of a rejected order
 * is ignored. */
#include <string.h>

#include "flow.h"

int main(void)
{
    flow_opts o = {.dispatch_delay_ms = 60000};
    flow *f = flow_new("cancel-confirmed", &o);
    if (!f)
        return 1;
    flow_start(f, NULL);
    FLOW_CHECK(f, flow_register(f, "c1", "c1@example.com", 100000) == 0, "register");
    FLOW_CHECK(f, flow_add_stock(f, "sku-c", 5) == 0, "stock");
    FLOW_CHECK(f, flow_wait_customer(f, "c1", 30000), "payments knows c1");
    FLOW_CHECK(f, flow_wait_stock(f, "sku-c", 5, 30000), "inventory has sku-c");
    FLOW_CHECK(f, flow_place(f, "o1", "c1", "sku-c", 2, 700) == 0, "place o1");
    FLOW_CHECK(f, flow_wait_type(f, "o1", "shipment.scheduled", 30000, NULL),
               "scheduled");
    FLOW_CHECK(f, flow_cancel(f, "o1") == 0, "cancel o1");

    const char *out = flow_wait_outcome(f, "o1", 30000);
    FLOW_CHECK(f, out && strcmp(out, "cancelled") == 0, "o1 outcome %s",
               out ? out : "none");
    static const char *const steps[] = {"payment.refunded", "inventory.released",
                                        "shipment.cancelled"};
    for (size_t i = 0; i < 3; i++)
        FLOW_CHECK(f, flow_wait_type(f, "o1", steps[i], 15000, NULL), "o1 %s", steps[i]);

    /* A rejected order cannot be cancelled. */
    FLOW_CHECK(f, flow_place(f, "o2", "c1", "sku-c", 99, 1) == 0, "place o2");
    const char *o2 = flow_wait_outcome(f, "o2", 30000);
    FLOW_CHECK(f, o2 && strcmp(o2, "rejected") == 0, "o2 outcome %s", o2 ? o2 : "none");
    FLOW_CHECK(f, flow_cancel(f, "o2") == 0, "cancel o2");

    static const char *const ids[] = {"o1", "o2"};
    flow_check_invariants(f, ids, 2);
    FLOW_CHECK(f, flow_count(f, "o1", "shipment.dispatched") == 0, "o1 never dispatched");
    FLOW_CHECK(f, flow_count(f, "o2", "order.cancelled") == 0, "o2 cancel ignored");
    return flow_end(f);
}
