/* SPDX-License-Identifier: MIT */
/* Flow: the maildir cannot be written. notifications retries with backoff
 * (checkout completes meanwhile) and delivers once it can; with few attempts
 * allowed it gives the milestone up to dlq.notifications and goes on. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "flow.h"

/* Makes <data>/maildir a regular file: no directory can be made below it. */
static void block_maildir(flow *f, char *path, size_t cap)
{
    snprintf(path, cap, "%s/maildir", flow_data_dir(f, "notifications"));
    FILE *fp = fopen(path, "w");
    FLOW_CHECK(f, fp != NULL, "block %s", path);
    if (fp)
        fclose(fp);
}

static void setup(flow *f)
{
    flow_start(f, NULL);
    FLOW_CHECK(f, flow_register(f, "c1", "c1@example.com", 100000) == 0, "register");
    FLOW_CHECK(f, flow_add_stock(f, "sku-m", 5) == 0, "stock");
    FLOW_CHECK(f, flow_wait_customer(f, "c1", 30000), "payments knows c1");
    FLOW_CHECK(f, flow_wait_stock(f, "sku-m", 5, 30000), "inventory has sku-m");
}

/* Retries until the maildir is writable again, then delivers. */
static void retried(flow *f)
{
    char path[600];
    block_maildir(f, path, sizeof(path));
    setup(f);
    FLOW_CHECK(f, flow_place(f, "o1", "c1", "sku-m", 1, 100) == 0, "place o1");
    const char *o = flow_wait_outcome(f, "o1", 30000);
    FLOW_CHECK(f, o && strcmp(o, "completed") == 0, "o1 %s despite the mail failure",
               o ? o : "none");
    FLOW_CHECK(f, flow_count(f, "o1", "notification.sent") == 0, "no mail yet");
    FLOW_CHECK(f, unlink(path) == 0, "unblock the maildir");
    for (int i = 0; i < 300 && flow_count(f, "o1", "notification.sent") < 2; i++)
        flow_wait_type(f, "o1", "no.such.type", 100, NULL);
    FLOW_CHECK(f, flow_count(f, "o1", "notification.sent") == 2, "%zu mails for o1",
               flow_count(f, "o1", "notification.sent"));
    FLOW_CHECK(f, flow_wait_quiet(f, 60000), "quiet");
    FLOW_CHECK(f, flow_count_topic(f, "dlq.notifications") == 0, "nothing dead-lettered");
    char newdir[700];
    snprintf(newdir, sizeof(newdir), "%s/new", path);
    FLOW_CHECK(f, flow_count_files(newdir) == 2, "%ld files", flow_count_files(newdir));
}

/* Gives up after max attempts: the record goes to the DLQ, the rest flows. */
static void gave_up(flow *f)
{
    char path[600];
    block_maildir(f, path, sizeof(path));
    setup(f);
    FLOW_CHECK(f, flow_place(f, "o2", "c1", "sku-m", 50, 100) == 0, "place o2");
    const char *o = flow_wait_outcome(f, "o2", 30000);
    FLOW_CHECK(f, o && strcmp(o, "rejected") == 0, "o2 %s", o ? o : "none");
    for (int i = 0; i < 300 && flow_count_topic(f, "dlq.notifications") < 1; i++)
        flow_wait_type(f, "o2", "no.such.type", 100, NULL);
    FLOW_CHECK(f, flow_count_topic(f, "dlq.notifications") == 1, "%zu dead letters",
               flow_count_topic(f, "dlq.notifications"));
    FLOW_CHECK(f, unlink(path) == 0, "unblock the maildir");
    FLOW_CHECK(f, flow_place(f, "o3", "c1", "sku-m", 50, 100) == 0, "place o3");
    FLOW_CHECK(f, flow_wait_type(f, "o3", "notification.sent", 30000, NULL),
               "later mails flow again");
    FLOW_CHECK(f, flow_count(f, "o2", "notification.sent") == 0,
               "o2's mail was given up");
}

int main(void)
{
    flow_opts a = {.extra_env = "CHOREO_MAX_ATTEMPTS=1000"};
    flow *f = flow_new("maildir-retry", &a);
    if (!f)
        return 1;
    retried(f);
    int rc = flow_end(f);
    flow_opts b = {.extra_env = "CHOREO_MAX_ATTEMPTS=3"};
    f = flow_new("maildir-dlq", &b);
    if (!f)
        return 1;
    gave_up(f);
    return flow_end(f) | rc;
}
