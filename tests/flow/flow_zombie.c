/* SPDX-License-Identifier: MIT */
/* Flow: a zombie instance. On the shared PostgreSQL store, inventory and
 * payments run 2 instances each. In the middle of a burst instance 0 of each is
 * stopped with SIGSTOP (frozen with whatever batch it holds) for longer than
 * the session timeout, so instance 1 takes its partitions over and goes on
 * from the offsets in the store; more orders and stock arrive meanwhile. Then
 * SIGCONT: the zombie resumes, commits or fails what it held, and rejoins.
 * Nothing is applied twice: stock and credit add up exactly (dumps against
 * events) and every order has one outcome. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "flow.h"

#define N_ORDERS 300
#define SESSION_MS 10000 /* the services' session.timeout.ms */

static char ids[N_ORDERS][16];
static const char *id_ptrs[N_ORDERS];
static const char *const zombies[] = {"inventory", "payments"};

static void place(flow *f, int i)
{
    char cid[16], sku[16];
    snprintf(ids[i], sizeof(ids[i]), "z%03d", i);
    id_ptrs[i] = ids[i];
    snprintf(cid, sizeof(cid), "c%d", i % 6);
    snprintf(sku, sizeof(sku), "sku-%d", i % 4);
    FLOW_CHECK(f, flow_place(f, ids[i], cid, sku, 1 + i % 2, 200) == 0, "place %s",
               ids[i]);
}

static void signal_zombies(flow *f, int sig)
{
    for (size_t z = 0; z < sizeof(zombies) / sizeof(zombies[0]); z++) {
        pid_t pid = flow_instance_pid(f, zombies[z], 0);
        FLOW_CHECK(f, pid > 0 && kill(pid, sig) == 0, "signal %d to %s #0", sig,
                   zombies[z]);
    }
}

int main(void)
{
    flow_opts o = {.order_timeout_ms = 120000,
                   .dispatch_delay_ms = 200,
                   .store = FLOW_STORE_POSTGRES};
    flow *f = flow_new("zombie", &o);
    if (!f)
        return 1;
    flow_start(f, NULL);
    for (size_t z = 0; z < sizeof(zombies) / sizeof(zombies[0]); z++)
        FLOW_CHECK(f, flow_start_instance(f, zombies[z], 1) == 0, "%s #1", zombies[z]);
    static const int64_t limits[] = {100000000, 100000000, 100000000,
                                     100000000, 100000000, 6000};
    static const int64_t stock[] = {60, 60, 60, 60};
    flow_setup_shop(f, 6, limits, 4, stock, false, 60000);

    for (int i = 0; i < N_ORDERS / 2; i++)
        place(f, i);
    signal_zombies(f, SIGSTOP); /* frozen mid-burst, possibly inside a batch */
    flow_note(f, "SIGSTOP inventory #0 and payments #0 after %zu records on orders",
              flow_count_topic(f, "orders"));
    for (int i = N_ORDERS / 2; i < N_ORDERS; i++)
        place(f, i);
    for (int k = 0; k < 4; k++) {
        char sku[16];
        snprintf(sku, sizeof(sku), "sku-%d", k);
        FLOW_CHECK(f, flow_add_stock(f, sku, 20) == 0, "more stock %s", sku);
    }
    /* Every order ends while the zombies sleep: instance 1 took over. */
    for (int i = 0; i < N_ORDERS; i++)
        FLOW_CHECK(f, flow_wait_outcome(f, ids[i], 3 * SESSION_MS + 60000) != NULL,
                   "%s no outcome while the zombies sleep", ids[i]);
    signal_zombies(f, SIGCONT);
    flow_note(f, "SIGCONT");
    FLOW_CHECK(f, flow_wait_quiet(f, 120000), "system at rest after the zombies woke");
    for (size_t z = 0; z < sizeof(zombies) / sizeof(zombies[0]); z++)
        FLOW_CHECK(f, flow_instances_running(f, zombies[z]) == 2, "%s: both running",
                   zombies[z]);
    flow_check_invariants(f, id_ptrs, N_ORDERS);
    return flow_end(f);
}
