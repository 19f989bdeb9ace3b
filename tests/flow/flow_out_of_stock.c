/* SPDX-License-Identifier: MIT */
/* Flow: an order asks for more than the stock holds: inventory rejects it,
 * payments never authorizes, orders rejects it (out_of_stock), nothing held. */
#include <string.h>

#include "flow.h"

int main(void)
{
    flow *f = flow_new("out-of-stock", NULL);
    if (!f)
        return 1;
    flow_start(f, NULL);
    FLOW_CHECK(f, flow_register(f, "c1", "c1@example.com", 100000) == 0, "register");
    FLOW_CHECK(f, flow_add_stock(f, "sku-a", 2) == 0, "stock");
    FLOW_CHECK(f, flow_wait_customer(f, "c1", 30000), "payments knows c1");
    FLOW_CHECK(f, flow_wait_stock(f, "sku-a", 2, 30000), "inventory has sku-a");
    FLOW_CHECK(f, flow_place(f, "o-big", "c1", "sku-a", 5, 100) == 0, "place o-big");
    FLOW_CHECK(f, flow_place(f, "o-nosku", "c1", "sku-none", 1, 100) == 0,
               "place o-nosku");

    static const char *const ids[] = {"o-big", "o-nosku"};
    for (size_t i = 0; i < 2; i++) {
        const char *o = flow_wait_outcome(f, ids[i], 30000);
        FLOW_CHECK(f, o && strcmp(o, "rejected") == 0, "%s outcome %s", ids[i],
                   o ? o : "none");
        flow_rec r;
        if (FLOW_CHECK(f, flow_wait_type(f, ids[i], "order.rejected", 1000, &r),
                       "rejected"))
            FLOW_CHECK(f, flow_count(f, ids[i], "inventory.rejected") == 1,
                       "%s inventory.rejected", ids[i]);
    }
    flow_check_invariants(f, ids, 2);
    FLOW_CHECK(f, flow_count(f, NULL, "payment.authorized") == 0, "nothing authorized");
    FLOW_CHECK(f, flow_count(f, NULL, "inventory.reserved") == 0, "nothing reserved");
    FLOW_CHECK(f, flow_count(f, "o-big", "notification.sent") == 1, "rejection mailed");
    return flow_end(f);
}
