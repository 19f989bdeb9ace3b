/* SPDX-License-Identifier: MIT */
/* Flow: the services scaled out on a shared PostgreSQL store, 3 instances each
 * of orders, inventory and payments and 2 each of shipping and notifications,
 * 1,000 orders against limited stock and credit. Mid-burst one instance of
 * each service is killed -9 and another started. Then payments is stopped for
 * the last orders, which time out. Afterwards every order has exactly one
 * outcome, stock and credit add up (dumps against events), no order was
 * cancelled twice nor both cancelled and confirmed, and every mail was sent
 * once across the notifications instances. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "flow.h"

#define N_ORDERS 1000
#define N_TIMEOUT 30 /* the last orders, placed while payments is down */
#define N_CUSTOMERS 20
#define N_SKUS 10
#define TIMEOUT_MS 15000

static const struct {
    const char *service;
    int instances;
} scale[] = {
    {"orders", 3},   {"inventory", 3},     {"payments", 3},
    {"shipping", 2}, {"notifications", 2},
};
#define N_SCALE (sizeof(scale) / sizeof(scale[0]))

static char ids[N_ORDERS][16];
static const char *id_ptrs[N_ORDERS];

static void start_all(flow *f)
{
    for (size_t s = 0; s < N_SCALE; s++)
        for (int i = 0; i < scale[s].instances; i++)
            FLOW_CHECK(f, flow_start_instance(f, scale[s].service, i) == 0,
                       "start %s #%d", scale[s].service, i);
}

/* Credit for about two thirds of a customer's orders; stock for about half of
 * all units ordered: every kind of outcome, and races for the last units. */
static void setup(flow *f)
{
    char cid[16], email[64], sku[16];
    for (int c = 0; c < N_CUSTOMERS; c++) {
        snprintf(cid, sizeof(cid), "c%02d", c);
        snprintf(email, sizeof(email), "c%02d@example.com", c);
        int64_t limit = c % 4 == 3 ? 4000 : 100000000;
        FLOW_CHECK(f, flow_register(f, cid, email, limit) == 0, "register %s", cid);
    }
    for (int k = 0; k < N_SKUS; k++) {
        snprintf(sku, sizeof(sku), "sku-%d", k);
        FLOW_CHECK(f, flow_add_stock(f, sku, 100) == 0, "stock %s", sku);
    }
    FLOW_CHECK(f, flow_add_stock(f, "sku-t", 1000) == 0, "stock sku-t");
    FLOW_CHECK(f, flow_wait_customer(f, "c19", 60000), "payments knows c19");
    FLOW_CHECK(f, flow_wait_stock(f, "sku-t", 1000, 60000), "inventory has sku-t");
    FLOW_CHECK(f, flow_wait_stock(f, "sku-9", 100, 60000), "inventory has sku-9");
}

static void place(flow *f, int i)
{
    char cid[16], sku[16];
    snprintf(ids[i], sizeof(ids[i]), "o%04d", i);
    id_ptrs[i] = ids[i];
    snprintf(cid, sizeof(cid), "c%02d", i % N_CUSTOMERS);
    snprintf(sku, sizeof(sku), "sku-%d", (i / 3) % N_SKUS);
    if (i >= N_ORDERS - N_TIMEOUT) /* stock and credit ample: only payments is missing */
        snprintf(sku, sizeof(sku), "sku-t"), snprintf(cid, sizeof(cid), "c00");
    FLOW_CHECK(f, flow_place(f, ids[i], cid, sku, 1 + i % 3, 150 * (1 + i % 4)) == 0,
               "place %s", ids[i]);
    if (i % 25 == 11 && i < N_ORDERS - N_TIMEOUT)
        FLOW_CHECK(f, flow_cancel(f, ids[i]) == 0, "cancel %s", ids[i]);
}

/* kill -9 instance 1 of every service, then start instance 3 in its place
 * (a new member: the group rebalances twice). */
static void crash_and_replace(flow *f)
{
    for (size_t s = 0; s < N_SCALE; s++) {
        flow_note(f, "kill -9 %s #1 after %zu records", scale[s].service,
                  flow_count_topic(f, "orders"));
        flow_stop_instance(f, scale[s].service, 1, SIGKILL);
    }
    for (size_t s = 0; s < N_SCALE; s++)
        FLOW_CHECK(f, flow_start_instance(f, scale[s].service, 3) == 0, "start %s #3",
                   scale[s].service);
}

typedef struct tally {
    const char *order_id;
    size_t cancelled_ids, timeouts, confirmed;
    char first_cancel[64];
} tally;

static void count_one(void *arg, const flow_rec *r)
{
    tally *t = arg;
    if (strcmp(r->order_id, t->order_id) != 0)
        return;
    if (strcmp(r->type, "order.confirmed") == 0)
        t->confirmed = 1;
    if (strcmp(r->type, "order.cancelled") != 0)
        return;
    const char *reason = json_string_value(json_object_get(r->data, "reason"));
    if (t->first_cancel[0] == '\0') {
        snprintf(t->first_cancel, sizeof(t->first_cancel), "%s", r->id);
        t->cancelled_ids = 1;
    } else if (strcmp(t->first_cancel, r->id) != 0) {
        t->cancelled_ids++;
    }
    if (reason != NULL && strcmp(reason, "timeout") == 0)
        t->timeouts = 1;
}

/* Every order cancelled at most once (one event id), never also confirmed
 * when cancelled by its timeout; the last orders all timed out. */
static void check_cancels(flow *f)
{
    size_t timeouts = 0;
    for (int i = 0; i < N_ORDERS; i++) {
        tally t = {.order_id = ids[i]};
        flow_each(f, count_one, &t);
        FLOW_CHECK(f, t.cancelled_ids <= 1, "%s cancelled with %zu ids", ids[i],
                   t.cancelled_ids);
        FLOW_CHECK(f, !(t.timeouts && t.confirmed), "%s timed out after confirmation",
                   ids[i]);
        timeouts += t.timeouts;
        if (i >= N_ORDERS - N_TIMEOUT)
            FLOW_CHECK(f, t.timeouts == 1, "%s (payments down) did not time out", ids[i]);
    }
    flow_note(f, "%zu orders timed out", timeouts);
}

/* Mails: one file per sent mail over every notifications instance's maildir. */
static void check_mails(flow *f)
{
    json_t *d = flow_dump(f, "notifications");
    json_int_t sent = d ? json_integer_value(json_object_get(d, "sent")) : -1;
    FLOW_CHECK(f, d && json_integer_value(json_object_get(d, "pending")) == 0,
               "mails pending");
    long files = 0;
    for (int i = 0; i < FLOW_MAX_INSTANCES; i++) {
        char dir[700];
        const char *base = flow_instance_dir(f, "notifications", i);
        snprintf(dir, sizeof(dir), "%s/maildir/new", base ? base : "/nonexistent");
        long n = flow_count_files(dir);
        files += n > 0 ? n : 0;
    }
    FLOW_CHECK(f, files == (long)sent, "%ld mail files, %lld sent", files,
               (long long)sent);
    FLOW_CHECK(f, (json_int_t)flow_count(f, NULL, "notification.sent") == sent,
               "%zu notification.sent, %lld mails",
               flow_count(f, NULL, "notification.sent"), (long long)sent);
    json_decref(d);
}

int main(void)
{
    flow_opts o = {.order_timeout_ms = TIMEOUT_MS,
                   .dispatch_delay_ms = 200,
                   .store = FLOW_STORE_POSTGRES};
    flow *f = flow_new("scale-out", &o);
    if (!f)
        return 1;
    start_all(f);
    setup(f);
    for (int i = 0; i < N_ORDERS / 2; i++)
        place(f, i);
    crash_and_replace(f);
    for (int i = N_ORDERS / 2; i < N_ORDERS - N_TIMEOUT; i++)
        place(f, i);
    for (int i = 0; i < N_ORDERS - N_TIMEOUT; i++) /* before payments goes down */
        FLOW_CHECK(f, flow_wait_outcome(f, ids[i], 120000) != NULL, "%s no outcome",
                   ids[i]);
    flow_stop(f, "payments", 0);
    for (int i = N_ORDERS - N_TIMEOUT; i < N_ORDERS; i++)
        place(f, i);
    for (int i = N_ORDERS - N_TIMEOUT; i < N_ORDERS; i++)
        FLOW_CHECK(f, flow_wait_outcome(f, ids[i], TIMEOUT_MS + 60000) != NULL,
                   "%s no outcome", ids[i]);
    for (int i = 0; i < 3; i++)
        FLOW_CHECK(f, flow_start_instance(f, "payments", i) == 0, "restart payments");

    size_t outcomes[3] = {0};
    for (int i = 0; i < N_ORDERS; i++) {
        const char *out = flow_wait_outcome(f, ids[i], 1000);
        if (out != NULL)
            outcomes[out[0] == 'c' ? (out[1] == 'o' ? 0 : 2) : 1]++;
    }
    flow_note(f, "%zu completed, %zu rejected, %zu cancelled", outcomes[0], outcomes[1],
              outcomes[2]);
    FLOW_CHECK(f, outcomes[0] > 0 && outcomes[1] > 0 && outcomes[2] > 0,
               "every kind of outcome happened");
    FLOW_CHECK(f, flow_wait_quiet(f, 120000), "system at rest");
    flow_check_invariants(f, id_ptrs, N_ORDERS);
    check_cancels(f);
    check_mails(f);
    return flow_end(f);
}
