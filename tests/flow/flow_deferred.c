/* SPDX-License-Identifier: MIT */
/* Flow: a deferred action keeps its flow. Whatever fact arrives last (the
 * customer, the order, the stock, the payment), the event that a waiting
 * action emits carries the correlation id of the order's flow, and `choreo
 * trace ORDER` shows it in the order's tree (its cause is one of the order's
 * events). Run A is the whole system; runs B to D play the other services,
 * sending facts with a correlation of their own, as a foreign flow would. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow.h"
#include "harness.h"

#define WAIT_MS 30000

static json_t *placed(const char *order_id, const char *customer)
{
    return json_pack("{s:s, s:s, s:[{s:s, s:i, s:i}], s:i, s:s}", "order_id", order_id,
                     "customer_id", customer, "items", "sku", "sku-d", "qty", 1,
                     "unit_price_cents", 500, "total_cents", 500, "currency", "EUR");
}

/* The topic of a type sent here. */
static const char *topic_of(const char *type)
{
    static const char *const map[][2] = {
        {"order.", "orders"},       {"inventory.", "inventory"}, {"payment.", "payments"},
        {"customer.", "customers"}, {"shipment.", "shipments"},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strncmp(type, map[i][0], strlen(map[i][0])) == 0)
            return map[i][1];
    return "orders";
}

/* An event of flow corr (NULL = its own) keyed by key; its id into id_out. */
static void send_in(flow *f, const char *type, const char *key, json_t *data,
                    const char *corr, char *id_out)
{
    char *text = harness_envelope(type, NULL, key, data);
    json_t *e = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (corr != NULL)
        json_object_set_new(e, "correlationid", json_string(corr));
    const char *id = json_string_value(json_object_get(e, "id"));
    if (id_out != NULL)
        snprintf(id_out, 64, "%s", id ? id : "");
    char *out = e ? json_dumps(e, JSON_COMPACT) : NULL;
    FLOW_CHECK(f, out && flow_produce_raw(f, topic_of(type), key, out, strlen(out)) == 0,
               "send %s for %s", type, key);
    free(out);
    json_decref(e);
}

/* The record of type about order (waited for) has correlation corr and,
 * when cause is not NULL, causation cause. */
static void check_flow(flow *f, const char *order, const char *type, const char *corr,
                       const char *cause)
{
    flow_rec r;
    bool got = flow_wait_type(f, order, type, WAIT_MS, &r);
    FLOW_CHECK(f, got, "%s: %s emitted", order, type);
    if (!got)
        return;
    FLOW_CHECK(f, strcmp(r.correlationid, corr) == 0,
               "%s: %s carries the order's flow %s, not %s", order, type, corr,
               r.correlationid);
    FLOW_CHECK(f, cause == NULL || strcmp(r.causationid, cause) == 0,
               "%s: %s caused by %s, not %s", order, type, cause ? cause : "",
               r.causationid);
}

/* choreo trace ORDER --json: every event but the order's first has its cause
 * in the tree, and type is there. */
static void check_trace(flow *f, const char *order, const char *type)
{
    const char *const args[] = {"trace", order, "--json", NULL};
    char *out = NULL;
    int st = flow_run_service(f, "orders", "bin/choreo", NULL, args, WAIT_MS, &out);
    json_t *t = out ? json_loads(out, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
    FLOW_CHECK(f, st == 0 && t, "choreo trace %s: exit %d", order, st);
    size_t i, roots = 0;
    json_t *e;
    bool seen = false;
    json_array_foreach(json_object_get(t, "events"), i, e)
    {
        const char *et = json_string_value(json_object_get(e, "type"));
        bool has_parent = json_object_get(e, "since_cause_ms") != NULL;
        roots += !has_parent;
        if (et && strcmp(et, type) == 0) {
            seen = true;
            FLOW_CHECK(f, has_parent, "trace %s: %s sits in the order's tree", order,
                       type);
        }
    }
    FLOW_CHECK(f, seen, "trace %s shows %s", order, type);
    json_decref(t);
    free(out);
}

/* A: the whole system. The customer arrives last: payments declines, the
 * rejection's mail waits for the address; then an order of a known customer. */
static int run_system(void)
{
    flow *f = flow_new("deferred-a", NULL);
    if (!f)
        return 1;
    flow_start(f, NULL);
    flow_add_stock(f, "sku-d", 10);
    flow_register(f, "c-known", "known@example.com", 100000);
    FLOW_CHECK(f, flow_wait_stock(f, "sku-d", 10, WAIT_MS), "stock");
    FLOW_CHECK(f, flow_wait_customer(f, "c-known", WAIT_MS), "customer");
    char p1[64], p2[64];
    FLOW_CHECK(f, flow_produce(f, "order.placed", placed("o-late", "c-late"), p1) == 0,
               "place o-late");
    flow_rec rej;
    FLOW_CHECK(f, flow_wait_type(f, "o-late", "order.rejected", WAIT_MS, &rej),
               "o-late rejected (unknown customer)");
    FLOW_CHECK(f, flow_wait_quiet(f, WAIT_MS), "quiet");
    FLOW_CHECK(f, flow_count(f, "o-late", "notification.sent") == 0, "the mail waits");
    char cust[64];
    send_in(f, "customer.registered", "c-late",
            json_pack("{s:s, s:s, s:s, s:i}", "customer_id", "c-late", "name", "Late",
                      "email", "late@example.com", "credit_limit_cents", 1000),
            NULL, cust);
    check_flow(f, "o-late", "notification.sent", p1, rej.id);
    check_flow(f, "o-late", "inventory.released", p1, NULL);
    check_trace(f, "o-late", "notification.sent");
    check_trace(f, "o-late", "inventory.released");

    FLOW_CHECK(f, flow_produce(f, "order.placed", placed("o-known", "c-known"), p2) == 0,
               "place o-known");
    const char *out = flow_wait_outcome(f, "o-known", WAIT_MS);
    FLOW_CHECK(f, out && strcmp(out, "completed") == 0, "o-known %s", out ? out : "none");
    static const char *const types[] = {"inventory.reserved",  "payment.authorized",
                                        "order.confirmed",     "shipment.scheduled",
                                        "shipment.dispatched", "order.completed",
                                        "notification.sent"};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        check_flow(f, "o-known", types[i], p2, NULL);
    check_trace(f, "o-known", "order.completed");
    return flow_end(f);
}

/* B: payments alone; the stock arrives last, then first. */
static int run_payments(void)
{
    flow *f = flow_new("deferred-b", NULL);
    if (!f)
        return 1;
    flow_start(f, "payments");
    flow_register(f, "c-p", "p@example.com", 100000);
    FLOW_CHECK(f, flow_wait_customer(f, "c-p", WAIT_MS), "customer");
    char p[64], r[64];
    json_t *items = json_pack("[{s:s, s:i}]", "sku", "sku-d", "qty", 1);
    send_in(f, "order.placed", "o-p1", placed("o-p1", "c-p"), NULL, p);
    FLOW_CHECK(f, flow_wait_quiet(f, WAIT_MS), "payments took the order");
    send_in(f, "inventory.reserved", "o-p1",
            json_pack("{s:s, s:O}", "order_id", "o-p1", "items", items), "foreign-1", r);
    check_flow(f, "o-p1", "payment.authorized", p, r);
    check_trace(f, "o-p1", "payment.authorized");

    send_in(f, "inventory.reserved", "o-p2",
            json_pack("{s:s, s:O}", "order_id", "o-p2", "items", items), "foreign-2", r);
    FLOW_CHECK(f, flow_wait_quiet(f, WAIT_MS), "payments took the reservation");
    send_in(f, "order.placed", "o-p2", placed("o-p2", "c-p"), NULL, p);
    check_flow(f, "o-p2", "payment.authorized", p, p);
    check_trace(f, "o-p2", "payment.authorized");
    json_decref(items);
    return flow_end(f);
}

/* C: orders alone; the facts arrive after the order, then before it. */
static int run_orders(void)
{
    flow_opts o = {.order_timeout_ms = 120000};
    flow *f = flow_new("deferred-c", &o);
    if (!f)
        return 1;
    flow_start(f, "orders");
    char p[64], a[64];
    json_t *items = json_pack("[{s:s, s:i}]", "sku", "sku-d", "qty", 1);
    static const char *const orders[] = {"o-o1", "o-o2"};
    for (int k = 0; k < 2; k++) {
        const char *oid = orders[k];
        if (k == 0) {
            send_in(f, "order.placed", oid, placed(oid, "c-o"), NULL, p);
            FLOW_CHECK(f, flow_wait_quiet(f, WAIT_MS), "orders took %s", oid);
        }
        send_in(f, "inventory.reserved", oid,
                json_pack("{s:s, s:O}", "order_id", oid, "items", items), "foreign-r",
                NULL);
        send_in(f, "payment.authorized", oid,
                json_pack("{s:s, s:s, s:i}", "order_id", oid, "payment_id", "pay-x",
                          "amount_cents", 500),
                "foreign-a", a);
        if (k == 1) {
            FLOW_CHECK(f, flow_wait_quiet(f, WAIT_MS), "orders took the facts");
            FLOW_CHECK(f, flow_count(f, oid, "order.confirmed") == 0, "not yet placed");
            send_in(f, "order.placed", oid, placed(oid, "c-o"), NULL, p);
        }
        check_flow(f, oid, "order.confirmed", p, NULL);
        check_trace(f, oid, "order.confirmed");
    }
    json_decref(items);
    return flow_end(f);
}

/* D: notifications alone; the order arrives last, then the customer. */
static int run_notifications(void)
{
    flow *f = flow_new("deferred-d", NULL);
    if (!f)
        return 1;
    flow_start(f, "notifications");
    char p[64], m[64];
    send_in(f, "customer.registered", "c-n",
            json_pack("{s:s, s:s, s:s, s:i}", "customer_id", "c-n", "name", "N", "email",
                      "n@example.com", "credit_limit_cents", 1000),
            NULL, NULL);
    /* the order's id is chosen first: the milestone is of its flow */
    send_in(f, "order.cancel_requested", "o-n1",
            json_pack("{s:s, s:s}", "order_id", "o-n1", "reason", "customer"), NULL, p);
    send_in(f, "order.cancelled", "o-n1",
            json_pack("{s:s, s:s}", "order_id", "o-n1", "reason", "customer"), p, m);
    FLOW_CHECK(f, flow_wait_quiet(f, WAIT_MS), "the mail waits for the order");
    FLOW_CHECK(f, flow_count(f, "o-n1", "notification.sent") == 0, "no mail yet");
    send_in(f, "order.placed", "o-n1", placed("o-n1", "c-n"), p, NULL);
    check_flow(f, "o-n1", "notification.sent", p, m);
    check_trace(f, "o-n1", "notification.sent");

    send_in(f, "order.placed", "o-n2", placed("o-n2", "c-n2"), NULL, p);
    send_in(f, "order.confirmed", "o-n2",
            json_pack("{s:s, s:s}", "order_id", "o-n2", "payment_id", "pay-n2"), p, m);
    FLOW_CHECK(f, flow_wait_quiet(f, WAIT_MS), "the mail waits for the customer");
    send_in(f, "customer.registered", "c-n2",
            json_pack("{s:s, s:s, s:s, s:i}", "customer_id", "c-n2", "name", "N2",
                      "email", "n2@example.com", "credit_limit_cents", 1000),
            NULL, NULL);
    check_flow(f, "o-n2", "notification.sent", p, m);
    check_trace(f, "o-n2", "notification.sent");
    return flow_end(f);
}

int main(void)
{
    int rc = run_system();
    rc |= run_payments();
    rc |= run_orders();
    rc |= run_notifications();
    return rc;
}
