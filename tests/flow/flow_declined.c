/* SPDX-License-Identifier: MIT */
/* Flow: payment declined. Over the credit limit, and an unknown customer:
 * payments declines, orders rejects (payment_declined), inventory releases. */
#include <string.h>

#include "flow.h"

int main(void)
{
    flow *f = flow_new("declined", NULL);
    if (!f)
        return 1;
    flow_start(f, NULL);
    FLOW_CHECK(f, flow_register(f, "c-poor", "poor@example.com", 1000) == 0, "register");
    FLOW_CHECK(f, flow_add_stock(f, "sku-d", 10) == 0, "stock");
    FLOW_CHECK(f, flow_wait_customer(f, "c-poor", 30000), "payments knows c-poor");
    FLOW_CHECK(f, flow_wait_stock(f, "sku-d", 10, 30000), "inventory has sku-d");
    FLOW_CHECK(f, flow_place(f, "o-over", "c-poor", "sku-d", 2, 600) == 0,
               "place o-over");
    FLOW_CHECK(f, flow_place(f, "o-who", "c-nobody", "sku-d", 1, 100) == 0,
               "place o-who");

    static const char *const ids[] = {"o-over", "o-who"};
    static const char *const reasons[] = {"credit_limit", "unknown_customer"};
    for (size_t i = 0; i < 2; i++) {
        const char *o = flow_wait_outcome(f, ids[i], 30000);
        FLOW_CHECK(f, o && strcmp(o, "rejected") == 0, "%s outcome %s", ids[i],
                   o ? o : "none");
        FLOW_CHECK(f, flow_wait_type(f, ids[i], "inventory.released", 15000, NULL),
                   "%s released", ids[i]);
        FLOW_CHECK(f, flow_count(f, ids[i], "payment.declined") == 1, "%s declined",
                   ids[i]);
    }
    flow_check_invariants(f, ids, 2);
    json_t *inv = flow_dump(f, "inventory");
    json_t *s = inv ? json_array_get(json_object_get(inv, "stock"), 0) : NULL;
    FLOW_CHECK(f, s && json_integer_value(json_object_get(s, "available")) == 10,
               "all stock available again");
    json_decref(inv);
    json_t *pay = flow_dump(f, "payments");
    json_t *p;
    size_t i;
    json_array_foreach(json_object_get(pay, "payments"), i, p)
    {
        const char *oid = json_string_value(json_object_get(p, "order_id"));
        const char *why = json_string_value(json_object_get(p, "reason"));
        for (size_t k = 0; k < 2; k++)
            if (strcmp(oid, ids[k]) == 0)
                FLOW_CHECK(f, why && strcmp(why, reasons[k]) == 0, "%s reason %s", oid,
                           why ? why : "none");
    }
    json_decref(pay);
    return flow_end(f);
}
