/* SPDX-License-Identifier: MIT */
/* Flow: a cancel that crosses the dispatch. shipping is down when its dispatch
 * timer falls due; the customer cancels meanwhile; shipping comes back,
 * dispatches (point of no return), then sees the cancel: shipment.returned,
 * refund, stock back. Also: a cancel of a completed order is ignored. */
#include <string.h>

#include "envelope.h"
#include "flow.h"

int main(void)
{
    flow_opts o = {.dispatch_delay_ms = 1500};
    flow *f = flow_new("cancel-dispatch", &o);
    if (!f)
        return 1;
    flow_start(f, NULL);
    FLOW_CHECK(f, flow_register(f, "c1", "c1@example.com", 100000) == 0, "register");
    FLOW_CHECK(f, flow_add_stock(f, "sku-x", 6) == 0, "stock");
    FLOW_CHECK(f, flow_wait_customer(f, "c1", 30000), "payments knows c1");
    FLOW_CHECK(f, flow_wait_stock(f, "sku-x", 6, 30000), "inventory has sku-x");
    FLOW_CHECK(f, flow_place(f, "o1", "c1", "sku-x", 2, 900) == 0, "place o1");
    FLOW_CHECK(f, flow_wait_type(f, "o1", "shipment.scheduled", 30000, NULL),
               "scheduled");
    flow_stop(f, "shipping", 9);

    /* Wait (by the clock, not a guess) until the dispatch is overdue. */
    int64_t due = flow_timer_due(f, "shipping", "o1", "shipment.dispatch");
    FLOW_CHECK(f, due > 0, "shipping holds a dispatch timer for o1");
    while (due > 0 && ev_now_ms() <= due + 50)
        flow_wait_type(f, "o1", "no.such.type", 100, NULL);
    FLOW_CHECK(f, flow_cancel(f, "o1") == 0, "cancel o1");
    FLOW_CHECK(f, flow_wait_type(f, "o1", "order.cancelled", 30000, NULL),
               "o1 cancelled");
    flow_start(f, "shipping");

    FLOW_CHECK(f, flow_wait_type(f, "o1", "shipment.dispatched", 30000, NULL),
               "o1 dispatched after the cancel");
    FLOW_CHECK(f, flow_wait_type(f, "o1", "shipment.returned", 30000, NULL),
               "o1 returned");
    FLOW_CHECK(f, flow_wait_type(f, "o1", "payment.refunded", 30000, NULL),
               "o1 refunded");
    FLOW_CHECK(f, flow_count(f, "o1", "shipment.cancelled") == 0, "not cancelled");

    /* o2 completes; its late cancel is ignored. */
    FLOW_CHECK(f, flow_place(f, "o2", "c1", "sku-x", 1, 900) == 0, "place o2");
    const char *o2 = flow_wait_outcome(f, "o2", 30000);
    FLOW_CHECK(f, o2 && strcmp(o2, "completed") == 0, "o2 outcome %s", o2 ? o2 : "none");
    FLOW_CHECK(f, flow_cancel(f, "o2") == 0, "cancel o2");

    static const char *const ids[] = {"o1", "o2"};
    flow_check_invariants(f, ids, 2);
    const char *o1 = flow_wait_outcome(f, "o1", 1000);
    FLOW_CHECK(f, o1 && strcmp(o1, "cancelled") == 0, "o1 outcome %s", o1 ? o1 : "none");
    FLOW_CHECK(f, flow_count(f, "o2", "order.cancelled") == 0, "o2 cancel ignored");
    json_t *inv = flow_dump(f, "inventory");
    json_t *s = inv ? json_array_get(json_object_get(inv, "stock"), 0) : NULL;
    FLOW_CHECK(f,
               s && json_integer_value(json_object_get(s, "available")) == 5 &&
                   json_integer_value(json_object_get(s, "shipped")) == 1,
               "o1 restocked, o2 shipped");
    json_decref(inv);
    return flow_end(f);
}
