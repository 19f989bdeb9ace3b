/* SPDX-License-Identifier: MIT */
/* Flow: payments is down, so an order stays pending until its timeout:
 * cancelled (timeout), inventory releases. When payments comes back the
 * order carries no charge. */
#include <string.h>

#include "flow.h"

int main(void)
{
    flow_opts o = {.order_timeout_ms = 2000};
    flow *f = flow_new("timeout", &o);
    if (!f)
        return 1;
    flow_start(f, "orders");
    flow_start(f, "inventory");
    flow_start(f, "shipping");
    flow_start(f, "notifications");
    FLOW_CHECK(f, flow_register(f, "c1", "c1@example.com", 100000) == 0, "register");
    FLOW_CHECK(f, flow_add_stock(f, "sku-t", 4) == 0, "stock");
    FLOW_CHECK(f, flow_wait_stock(f, "sku-t", 4, 30000), "inventory has sku-t");
    FLOW_CHECK(f, flow_place(f, "o1", "c1", "sku-t", 3, 100) == 0, "place o1");
    FLOW_CHECK(f, flow_wait_type(f, "o1", "inventory.reserved", 30000, NULL), "reserved");

    const char *out = flow_wait_outcome(f, "o1", 30000);
    FLOW_CHECK(f, out && strcmp(out, "cancelled") == 0, "o1 outcome %s",
               out ? out : "none");
    flow_rec r;
    if (FLOW_CHECK(f, flow_wait_type(f, "o1", "order.cancelled", 1000, &r), "cancelled"))
        FLOW_CHECK(f, flow_wait_type(f, "o1", "inventory.released", 15000, NULL),
                   "released after the timeout");
    /* the reason is timeout */
    json_t *ord = flow_dump(f, "orders");
    json_t *row = ord ? json_array_get(json_object_get(ord, "orders"), 0) : NULL;
    const char *reason = row ? json_string_value(json_object_get(row, "reason")) : NULL;
    FLOW_CHECK(f, reason && strcmp(reason, "timeout") == 0, "reason %s",
               reason ? reason : "none");
    json_decref(ord);

    flow_start(f, "payments");
    static const char *const ids[] = {"o1"};
    flow_check_invariants(f, ids, 1);
    FLOW_CHECK(f, flow_count(f, "o1", "order.confirmed") == 0, "never confirmed");
    return flow_end(f);
}
