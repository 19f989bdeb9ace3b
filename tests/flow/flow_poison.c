/* SPDX-License-Identifier: MIT */
/* Flow: poison records on every input topic (not JSON, not an envelope,
 * invalid UTF-8, empty, a known type with invalid data) go to the DLQ of
 * each service that reads them, and the saga goes on. */
#include <string.h>

#include "contract.h"
#include "flow.h"

static const char *const topics[] = {"customers", "inventory", "orders", "payments",
                                     "shipments"};
#define N_TOPICS (sizeof(topics) / sizeof(topics[0]))

static const char *const garbage[] = {"not json {", "{\"a\":1}", "\xff\xfe\x80", ""};
#define N_GARBAGE (sizeof(garbage) / sizeof(garbage[0]))

/* A known type of each topic with data its schema refuses. */
typedef struct bad_event {
    const char *type;
    const char *data;
} bad_event;

static const bad_event bad[] = {
    {"customer.registered", "{\"customer_id\":\"cx\",\"name\":\"x\",\"email\":\"x@y.z\","
                            "\"credit_limit_cents\":\"lots\"}"},
    {"stock.added", "{\"sku\":\"sku-p\",\"qty\":-1}"},
    {"order.placed", "{\"order_id\":\"o-bad\",\"customer_id\":\"c1\"}"},
    {"payment.authorized", "{\"order_id\":\"o-bad\",\"payment_id\":\"p\"}"},
    {"shipment.dispatched", "{\"order_id\":\"o-bad\"}"},
};
#define N_BAD (sizeof(bad) / sizeof(bad[0]))

static bool consumes(const char *const *list, const char *s)
{
    for (size_t i = 0; list && list[i]; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

int main(void)
{
    flow *f = flow_new("poison", NULL);
    if (!f)
        return 1;
    ev_contract *c = NULL;
    ev_error err = {0};
    if (ev_contract_load(&c, EV_SCHEMA_DIR "/choreography.json", &err) < 0) {
        FLOW_CHECK(f, false, "contract: %s", err.text);
        return flow_end(f);
    }
    flow_start(f, NULL);
    for (size_t t = 0; t < N_TOPICS; t++)
        for (size_t g = 0; g < N_GARBAGE; g++)
            FLOW_CHECK(
                f,
                flow_produce_raw(f, topics[t], "k", garbage[g], strlen(garbage[g])) == 0,
                "poison %zu on %s", g, topics[t]);
    for (size_t b = 0; b < N_BAD; b++)
        FLOW_CHECK(
            f, flow_produce(f, bad[b].type, json_loads(bad[b].data, 0, NULL), NULL) == 0,
            "bad %s", bad[b].type);

    FLOW_CHECK(f, flow_register(f, "c1", "c1@example.com", 100000) == 0, "register");
    FLOW_CHECK(f, flow_add_stock(f, "sku-p", 3) == 0, "stock");
    FLOW_CHECK(f, flow_wait_customer(f, "c1", 30000), "payments knows c1");
    FLOW_CHECK(f, flow_wait_stock(f, "sku-p", 3, 30000), "inventory has sku-p");
    FLOW_CHECK(f, flow_place(f, "o1", "c1", "sku-p", 1, 100) == 0, "place o1");
    const char *o = flow_wait_outcome(f, "o1", 30000);
    FLOW_CHECK(f, o && strcmp(o, "completed") == 0, "o1 outcome %s", o ? o : "none");
    static const char *const ids[] = {"o1"};
    flow_check_invariants(f, ids, 1);

    for (size_t s = 0; s < FLOW_N_SERVICES; s++) {
        const char *svc = flow_services[s];
        const char *const *st = ev_contract_service_topics(c, svc);
        size_t want = 0;
        for (size_t t = 0; st && st[t]; t++)
            want += N_GARBAGE;
        for (size_t b = 0; b < N_BAD; b++)
            want += consumes(ev_contract_consumes(c, svc), bad[b].type);
        char dlq[64];
        snprintf(dlq, sizeof(dlq), "dlq.%s", svc);
        FLOW_CHECK(f, flow_count_topic(f, dlq) == want, "%s: %zu records, want %zu", dlq,
                   flow_count_topic(f, dlq), want);
    }
    ev_contract_free(c);
    return flow_end(f);
}
