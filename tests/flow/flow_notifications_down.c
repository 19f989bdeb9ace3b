/* SPDX-License-Identifier: MIT */
/* Flow: notifications is down. Checkout still confirms and completes; when
 * notifications comes back, the mails arrive (once each). */
#include <string.h>

#include "flow.h"

int main(void)
{
    flow *f = flow_new("notifications-down", NULL);
    if (!f)
        return 1;
    flow_start(f, "orders");
    flow_start(f, "inventory");
    flow_start(f, "payments");
    flow_start(f, "shipping");
    FLOW_CHECK(f, flow_register(f, "c1", "c1@example.com", 100000) == 0, "register");
    FLOW_CHECK(f, flow_add_stock(f, "sku-n", 5) == 0, "stock");
    FLOW_CHECK(f, flow_wait_customer(f, "c1", 30000), "payments knows c1");
    FLOW_CHECK(f, flow_wait_stock(f, "sku-n", 5, 30000), "inventory has sku-n");
    FLOW_CHECK(f, flow_place(f, "o1", "c1", "sku-n", 1, 100) == 0, "place o1");
    FLOW_CHECK(f, flow_place(f, "o2", "c1", "sku-n", 50, 100) == 0, "place o2");
    const char *o1 = flow_wait_outcome(f, "o1", 30000);
    FLOW_CHECK(f, o1 && strcmp(o1, "completed") == 0, "o1 outcome %s", o1 ? o1 : "none");
    const char *o2 = flow_wait_outcome(f, "o2", 30000);
    FLOW_CHECK(f, o2 && strcmp(o2, "rejected") == 0, "o2 outcome %s", o2 ? o2 : "none");
    static const char *const ids[] = {"o1", "o2"};
    flow_check_invariants(f, ids, 2);
    FLOW_CHECK(f, flow_count(f, NULL, "notification.sent") == 0, "no mail while down");

    flow_start(f, "notifications");
    /* o1: confirmed + dispatched; o2: rejected. */
    int64_t n = 0;
    for (int i = 0; i < 300 && n < 3; i++) {
        flow_wait_type(f, "o1", "no.such.type", 100, NULL);
        n = (int64_t)flow_count(f, NULL, "notification.sent");
    }
    FLOW_CHECK(f, n == 3, "%lld notification.sent after the restart", (long long)n);
    FLOW_CHECK(f, flow_wait_quiet(f, 60000), "quiet");
    FLOW_CHECK(f, flow_count(f, NULL, "notification.sent") == 3, "exactly three mails");
    char newdir[600];
    snprintf(newdir, sizeof(newdir), "%s/maildir/new", flow_data_dir(f, "notifications"));
    FLOW_CHECK(f, flow_count_files(newdir) == 3, "%ld files in new/",
               flow_count_files(newdir));
    json_t *d = flow_dump(f, "notifications");
    FLOW_CHECK(f,
               d && json_integer_value(json_object_get(d, "sent")) == 3 &&
                   json_integer_value(json_object_get(d, "pending")) == 0,
               "dump: 3 sent, 0 pending");
    json_decref(d);
    return flow_end(f);
}
