/* SPDX-License-Identifier: MIT */
/* Flow: an event type no one knows, well formed, on every input topic: each
 * service skips it (tolerant reader), nothing is dead-lettered, the saga goes
 * on. */
#include <stdio.h>
#include <string.h>

#include "envelope.h"
#include "flow.h"

static const char *const topics[] = {"customers", "inventory", "orders", "payments",
                                     "shipments"};

int main(void)
{
    flow *f = flow_new("unknown-type", NULL);
    if (!f)
        return 1;
    flow_start(f, NULL);
    for (size_t t = 0; t < sizeof(topics) / sizeof(topics[0]); t++) {
        ev_envelope e = {0};
        ev_error err = {0};
        char *buf = NULL;
        size_t len = 0;
        int rc = ev_envelope_init(
            &e, "order.gift_wrapped", "/choreo/test", "o1",
            json_pack("{s:s, s:s}", "order_id", "o1", "paper", "red"), &err);
        if (rc == 0)
            rc = ev_envelope_serialize(&e, NULL, &buf, &len, &err);
        FLOW_CHECK(f, rc == 0 && flow_produce_raw(f, topics[t], "o1", buf, len) == 0,
                   "unknown type on %s", topics[t]);
        free(buf);
        ev_envelope_clear(&e);
    }
    FLOW_CHECK(f, flow_register(f, "c1", "c1@example.com", 100000) == 0, "register");
    FLOW_CHECK(f, flow_add_stock(f, "sku-u", 3) == 0, "stock");
    FLOW_CHECK(f, flow_wait_customer(f, "c1", 30000), "payments knows c1");
    FLOW_CHECK(f, flow_wait_stock(f, "sku-u", 3, 30000), "inventory has sku-u");
    FLOW_CHECK(f, flow_place(f, "o1", "c1", "sku-u", 1, 100) == 0, "place o1");
    const char *o = flow_wait_outcome(f, "o1", 30000);
    FLOW_CHECK(f, o && strcmp(o, "completed") == 0, "o1 outcome %s", o ? o : "none");
    static const char *const ids[] = {"o1"};
    flow_check_invariants(f, ids, 1);
    for (size_t s = 0; s < FLOW_N_SERVICES; s++) {
        char dlq[64];
        snprintf(dlq, sizeof(dlq), "dlq.%s", flow_services[s]);
        FLOW_CHECK(f, flow_count_topic(f, dlq) == 0, "%s holds %zu records", dlq,
                   flow_count_topic(f, dlq));
    }
    return flow_end(f);
}
