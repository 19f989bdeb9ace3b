/* SPDX-License-Identifier: MIT */
/* Flow: an order asks for more than the stock holds: inventory rejects it,
 * payments never authorizes, orders rejects it (out_of_stock), nothing held.
 * An order whose first line fits and second does not holds nothing either:
 * the line taken is given back in the same transaction. */
#include <stdio.h>
#include <string.h>

#include "flow.h"

/* The sku o-mixed's inventory.rejected names, into arg. */
static void mixed_short(void *arg, const flow_rec *r)
{
    if (strcmp(r->order_id, "o-mixed") == 0 && strcmp(r->type, "inventory.rejected") == 0)
        snprintf(arg, 64, "%s", json_string_value(json_object_get(r->data, "sku")));
}

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
    FLOW_CHECK(f,
               flow_produce(f, "order.placed",
                            json_pack("{s:s, s:s, s:[{s:s, s:i, s:i}, {s:s, s:i, s:i}],"
                                      " s:i, s:s}",
                                      "order_id", "o-mixed", "customer_id", "c1", "items",
                                      "sku", "sku-a", "qty", 1, "unit_price_cents", 100,
                                      "sku", "sku-none", "qty", 1, "unit_price_cents",
                                      100, "total_cents", 200, "currency", "EUR"),
                            NULL) == 0,
               "place o-mixed");

    static const char *const ids[] = {"o-big", "o-nosku", "o-mixed"};
    for (size_t i = 0; i < 3; i++) {
        const char *o = flow_wait_outcome(f, ids[i], 30000);
        FLOW_CHECK(f, o && strcmp(o, "rejected") == 0, "%s outcome %s", ids[i],
                   o ? o : "none");
        flow_rec r;
        if (FLOW_CHECK(f, flow_wait_type(f, ids[i], "order.rejected", 1000, &r),
                       "rejected"))
            FLOW_CHECK(f, flow_count(f, ids[i], "inventory.rejected") == 1,
                       "%s inventory.rejected", ids[i]);
    }
    char short_sku[64] = "";
    flow_each(f, mixed_short, short_sku);
    FLOW_CHECK(f, strcmp(short_sku, "sku-none") == 0, "o-mixed short of %s", short_sku);
    json_t *inv = flow_dump(f, "inventory");
    json_t *stock = json_object_get(inv, "stock");
    size_t i;
    json_t *row;
    bool seen = false;
    json_array_foreach(stock, i, row)
    {
        if (strcmp(json_string_value(json_object_get(row, "sku")), "sku-a") != 0)
            continue;
        seen = true;
        FLOW_CHECK(f,
                   json_integer_value(json_object_get(row, "available")) == 2 &&
                       json_integer_value(json_object_get(row, "reserved")) == 0,
                   "sku-a given back: available %lld reserved %lld",
                   (long long)json_integer_value(json_object_get(row, "available")),
                   (long long)json_integer_value(json_object_get(row, "reserved")));
    }
    FLOW_CHECK(f, seen, "inventory dump has sku-a");
    json_decref(inv);
    flow_check_invariants(f, ids, 3);
    FLOW_CHECK(f, flow_count(f, NULL, "payment.authorized") == 0, "nothing authorized");
    FLOW_CHECK(f, flow_count(f, NULL, "inventory.reserved") == 0, "nothing reserved");
    FLOW_CHECK(f, flow_count(f, "o-big", "notification.sent") == 1, "rejection mailed");
    return flow_end(f);
}
