/* SPDX-License-Identifier: MIT */
/* Flow: events across topics in the "wrong" order. The test plays the other
 * services: each service under test gets facts before the event they follow
 * from, and still decides right once enough is known. */
#include <string.h>

#include "flow.h"

static json_t *placed(const char *order_id, const char *customer, int64_t total)
{
    return json_pack("{s:s, s:s, s:[{s:s, s:i, s:I}], s:I, s:s}", "order_id", order_id,
                     "customer_id", customer, "items", "sku", "sku-w", "qty", 1,
                     "unit_price_cents", (json_int_t)total, "total_cents",
                     (json_int_t)total, "currency", "EUR");
}

/* orders, shipping and notifications under test. */
static void orders_shipping_notifications(flow *f)
{
    flow_start(f, "orders");
    flow_start(f, "shipping");
    flow_start(f, "notifications");
    /* orders: authorized and reserved before the order itself. */
    flow_produce(f, "payment.authorized",
                 json_pack("{s:s, s:s, s:i}", "order_id", "o-a", "payment_id", "pay-o-a",
                           "amount_cents", 500),
                 NULL);
    flow_produce(f, "inventory.reserved",
                 json_pack("{s:s, s:[{s:s, s:i}]}", "order_id", "o-a", "items", "sku",
                           "sku-w", "qty", 1),
                 NULL);
    FLOW_CHECK(f, flow_wait_quiet(f, 30000), "orders took the early facts");
    FLOW_CHECK(f, flow_count(f, "o-a", "order.confirmed") == 0,
               "no confirm before placed");
    flow_produce(f, "order.placed", placed("o-a", "c-a", 500), NULL);
    const char *o = flow_wait_outcome(f, "o-a", 30000);
    FLOW_CHECK(f, o && strcmp(o, "completed") == 0, "o-a outcome %s", o ? o : "none");

    /* shipping: the cancel comes before the confirm: never scheduled. */
    flow_produce(f, "order.cancelled",
                 json_pack("{s:s, s:s}", "order_id", "o-b", "reason", "customer"), NULL);
    flow_produce(f, "order.confirmed",
                 json_pack("{s:s, s:s}", "order_id", "o-b", "payment_id", "pay-o-b"),
                 NULL);

    /* notifications: the milestone before the order and the customer. */
    flow_produce(f, "order.confirmed",
                 json_pack("{s:s, s:s}", "order_id", "o-c", "payment_id", "pay-o-c"),
                 NULL);
    FLOW_CHECK(f, flow_wait_quiet(f, 30000), "quiet");
    FLOW_CHECK(f, flow_count(f, "o-b", "shipment.scheduled") == 0, "o-b never scheduled");
    FLOW_CHECK(f, flow_count(f, "o-c", "notification.sent") == 0, "o-c mail waits");
    flow_produce(f, "order.placed", placed("o-c", "c-late", 100), NULL);
    flow_register(f, "c-late", "late@example.com", 1000);
    flow_rec r;
    FLOW_CHECK(f, flow_wait_type(f, "o-c", "notification.sent", 30000, &r),
               "o-c mail once the customer is known");
    json_t *d = flow_dump(f, "notifications");
    size_t i;
    json_t *m;
    bool found = false;
    json_array_foreach(json_object_get(d, "mails"), i, m)
    {
        const char *oid = json_string_value(json_object_get(m, "order_id"));
        const char *to = json_string_value(json_object_get(m, "to"));
        if (strcmp(oid, "o-c") == 0)
            found = to && strcmp(to, "late@example.com") == 0;
    }
    FLOW_CHECK(f, found, "o-c mailed to late@example.com");
    json_decref(d);
}

/* payments and inventory under test. */
static void payments_inventory(flow *f)
{
    flow_start(f, "payments");
    flow_start(f, "inventory");
    flow_register(f, "c-p", "p@example.com", 10000);
    flow_add_stock(f, "sku-w", 5);
    FLOW_CHECK(f, flow_wait_customer(f, "c-p", 30000), "payments knows c-p");
    FLOW_CHECK(f, flow_wait_stock(f, "sku-w", 5, 30000), "inventory has sku-w");
    /* payments: the reservation before the order. */
    flow_produce(f, "inventory.reserved",
                 json_pack("{s:s, s:[{s:s, s:i}]}", "order_id", "o-d", "items", "sku",
                           "sku-w", "qty", 1),
                 NULL);
    FLOW_CHECK(f, flow_wait_quiet(f, 30000), "payments took the reservation");
    FLOW_CHECK(f, flow_count(f, "o-d", "payment.authorized") == 0,
               "nothing before placed");
    flow_produce(f, "order.placed", placed("o-d", "c-p", 700), NULL);
    FLOW_CHECK(f, flow_wait_type(f, "o-d", "payment.authorized", 30000, NULL),
               "o-d authorized once both are known");
    /* inventory: the cancel before the order holds nothing afterwards. */
    flow_produce(f, "order.cancelled",
                 json_pack("{s:s, s:s}", "order_id", "o-e", "reason", "customer"), NULL);
    flow_produce(f, "order.placed", placed("o-e", "c-p", 100), NULL);
    FLOW_CHECK(f, flow_wait_quiet(f, 30000), "quiet");
    FLOW_CHECK(f, flow_count(f, "o-d", "payment.authorized") == 1, "o-d authorized once");
    FLOW_CHECK(f, flow_count(f, "o-e", "inventory.reserved") == 0, "o-e never reserved");
    json_t *inv = flow_dump(f, "inventory");
    json_t *s = inv ? json_array_get(json_object_get(inv, "stock"), 0) : NULL;
    FLOW_CHECK(f,
               s && json_integer_value(json_object_get(s, "available")) == 4 &&
                   json_integer_value(json_object_get(s, "reserved")) == 1,
               "only o-d holds stock");
    json_decref(inv);
}

int main(void)
{
    flow_opts o = {.order_timeout_ms = 120000};
    flow *a = flow_new("wrong-order-a", &o);
    if (!a)
        return 1;
    orders_shipping_notifications(a);
    int rc = flow_end(a);
    flow *b = flow_new("wrong-order-b", &o);
    if (!b)
        return 1;
    payments_inventory(b);
    return flow_end(b) | rc;
}
