/* SPDX-License-Identifier: MIT */
/* Flow: kill -9 of each service in turn during a burst of 200 orders (some
 * out of stock, some over credit, some cancelled), each restarted at once.
 * Afterwards every order has exactly one terminal outcome and the invariants
 * hold, from the events and from every service's dump; every mail sent is
 * in the maildir once. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "flow.h"

#define N_ORDERS 200

static char ids[N_ORDERS][16];
static const char *id_ptrs[N_ORDERS];

static size_t total_records(flow *f)
{
    static const char *const topics[] = {"orders", "inventory", "payments", "shipments",
                                         "notifications"};
    size_t n = 0;
    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++)
        n += flow_count_topic(f, topics[i]);
    return n;
}

/* Waits until the records grew by at least step (or a deadline), then kills
 * the service with SIGKILL and starts it again. */
static void kill_after(flow *f, const char *svc, size_t step)
{
    size_t from = total_records(f);
    for (int i = 0; i < 200 && total_records(f) < from + step; i++)
        flow_wait_type(f, NULL, "no.such.type", 50, NULL);
    flow_note(f, "kill -9 %s after %zu records", svc, total_records(f));
    flow_stop(f, svc, SIGKILL);
    FLOW_CHECK(f, flow_start(f, svc) == 0, "restart %s", svc);
}

static void setup(flow *f)
{
    static const int64_t limits[] = {1000000, 1000000, 1000000, 1000000, 3000};
    static const int64_t stock[] = {60, 60, 60, 60, 5};
    flow_setup_shop(f, 5, limits, 5, stock, true, 30000);
}

static void place(flow *f, int i)
{
    char cid[16], sku[16];
    snprintf(ids[i], sizeof(ids[i]), "o%03d", i);
    id_ptrs[i] = ids[i];
    snprintf(cid, sizeof(cid), "c%d", i % 5);
    snprintf(sku, sizeof(sku), "sku-%d", (i / 5) % 5);
    FLOW_CHECK(f, flow_place(f, ids[i], cid, sku, 1 + i % 3, 100 * (1 + i % 4)) == 0,
               "place %s", ids[i]);
    if (i % 10 == 7)
        FLOW_CHECK(f, flow_cancel(f, ids[i]) == 0, "cancel %s", ids[i]);
}

int main(void)
{
    flow_opts o = {.order_timeout_ms = 90000, .dispatch_delay_ms = 200};
    flow *f = flow_new("crash-burst", &o);
    if (!f)
        return 1;
    flow_start(f, NULL);
    setup(f);
    for (int i = 0; i < N_ORDERS / 2; i++)
        place(f, i);
    kill_after(f, "orders", 100);
    for (int i = N_ORDERS / 2; i < N_ORDERS; i++)
        place(f, i);
    kill_after(f, "inventory", 150);
    kill_after(f, "payments", 150);
    kill_after(f, "shipping", 150);
    kill_after(f, "notifications", 150);

    size_t outcomes[3] = {0};
    for (int i = 0; i < N_ORDERS; i++) {
        const char *out = flow_wait_outcome(f, ids[i], 90000);
        if (!FLOW_CHECK(f, out != NULL, "%s has no outcome", ids[i]))
            break;
        outcomes[out[0] == 'c' ? (out[1] == 'o' ? 0 : 2) : 1]++;
    }
    flow_note(f, "%zu completed, %zu rejected, %zu cancelled", outcomes[0], outcomes[1],
              outcomes[2]);
    FLOW_CHECK(f, outcomes[0] > 0 && outcomes[1] > 0 && outcomes[2] > 0,
               "every kind of outcome happened");
    flow_check_invariants(f, id_ptrs, N_ORDERS);

    json_t *d = flow_dump(f, "notifications");
    char newdir[600];
    snprintf(newdir, sizeof(newdir), "%s/maildir/new", flow_data_dir(f, "notifications"));
    json_int_t sent = d ? json_integer_value(json_object_get(d, "sent")) : -1;
    FLOW_CHECK(f, d && json_integer_value(json_object_get(d, "pending")) == 0,
               "mails pending");
    FLOW_CHECK(f, flow_count_files(newdir) == (long)sent, "%ld mail files, %lld sent",
               flow_count_files(newdir), (long long)sent);
    FLOW_CHECK(f, (json_int_t)flow_count(f, NULL, "notification.sent") == sent,
               "%zu notification.sent, %lld mails",
               flow_count(f, NULL, "notification.sent"), (long long)sent);
    json_decref(d);
    return flow_end(f);
}
