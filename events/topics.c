/* SPDX-License-Identifier: MIT */
/* Topics made sure to exist before a program subscribes or publishes: created
 * through the Admin API when missing, waited for when it may not create them. */
#include "topics.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "envelope.h"
#include "log.h"

#define DEFAULT_POLL_MS 1000
#define WAIT_LOG_MS 30000
#define METADATA_MS 5000
#define SETTLE_MS 5000
#define SETTLE_POLL_MS 100

/* The topic's metadata entry; NULL when the cluster does not have it. */
static const rd_kafka_metadata_topic_t *md_topic(const struct rd_kafka_metadata *md,
                                                 const char *name)
{
    for (int i = 0; i < md->topic_cnt; i++)
        if (strcmp(md->topics[i].topic, name) == 0)
            return &md->topics[i];
    return NULL;
}

/* Exists, and every partition has a leader. */
static bool topic_ready(const rd_kafka_metadata_topic_t *t)
{
    if (t == NULL || t->err != RD_KAFKA_RESP_ERR_NO_ERROR || t->partition_cnt < 1)
        return false;
    for (int p = 0; p < t->partition_cnt; p++)
        if (t->partitions[p].leader < 0)
            return false;
    return true;
}

/* Appends name to the comma-separated list of cap bytes, "..." once full. */
static void list_add(char *list, size_t cap, const char *name)
{
    if (list == NULL || cap < 4)
        return;
    size_t used = strlen(list);
    int n = snprintf(list + used, cap - used, "%s%s", used ? "," : "", name);
    if (n < 0 || (size_t)n >= cap - used)
        snprintf(list + cap - 4, 4, "...");
}

/* topics[i] appears earlier in topics. */
static bool listed(const char *const *topics, size_t i)
{
    for (size_t k = 0; k < i; k++)
        if (strcmp(topics[k], topics[i]) == 0)
            return true;
    return false;
}

int ev_topics_missing(rd_kafka_t *rk, const char *const *topics, int timeout_ms,
                      size_t *n_missing, char *list, size_t cap, int *n_brokers,
                      ev_error *err)
{
    *n_missing = 0;
    if (list != NULL && cap > 0)
        list[0] = '\0';
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return ev_error_set(err, EV_EBUS, "topic metadata: %s", rd_kafka_err2str(e));
    for (size_t i = 0; topics != NULL && topics[i] != NULL; i++) {
        if (listed(topics, i) || topic_ready(md_topic(md, topics[i])))
            continue;
        (*n_missing)++;
        list_add(list, cap, topics[i]);
    }
    if (n_brokers != NULL)
        *n_brokers = md->broker_cnt;
    rd_kafka_metadata_destroy(md);
    return 0;
}

/* The missing ones among topics as NewTopic requests; *n of them. */
static int new_topics(rd_kafka_t *rk, const char *const *topics, int partitions,
                      int replication, int timeout_ms, rd_kafka_NewTopic_t ***out,
                      size_t *n, ev_error *err)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return ev_error_set(err, EV_EBUS, "topic metadata: %s", rd_kafka_err2str(e));
    if (replication <= 0)
        replication = md->broker_cnt < EV_TOPICS_MAX_AUTO_RF ? md->broker_cnt
                                                             : EV_TOPICS_MAX_AUTO_RF;
    if (replication < 1)
        replication = 1;
    size_t total = 0;
    while (topics != NULL && topics[total] != NULL)
        total++;
    int rc = 0;
    *n = 0;
    *out = calloc(total ? total : 1, sizeof(**out));
    if (*out == NULL)
        rc = ev_error_set(err, EV_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < total; i++) {
        if (md_topic(md, topics[i]) != NULL || listed(topics, i))
            continue; /* exists (maybe not ready yet: waited for by the caller) */
        char errstr[256];
        rd_kafka_NewTopic_t *t = rd_kafka_NewTopic_new(topics[i], partitions, replication,
                                                       errstr, sizeof(errstr));
        if (t == NULL)
            rc = ev_error_set(err, EV_EINVAL, "topic %s: %s", topics[i], errstr);
        else
            (*out)[(*n)++] = t;
    }
    rd_kafka_metadata_destroy(md);
    return rc;
}

/* The CreateTopics result: 0 when each topic was made or exists already. */
static int create_result(rd_kafka_event_t *ev, int *created, ev_error *err)
{
    if (ev == NULL)
        return ev_error_set(err, EV_ETIMEOUT, "create topics: no answer in time");
    if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return ev_error_set(err, EV_EBUS, "create topics: %s",
                            rd_kafka_event_error_string(ev));
    size_t nr = 0;
    const rd_kafka_topic_result_t **tr =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &nr);
    int rc = 0;
    for (size_t i = 0; i < nr; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
        const char *name = rd_kafka_topic_result_name(tr[i]);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            (*created)++;
            ev_log(EV_LOG_INFO, "topic created", "topic=%s", name);
        } else if (e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS && rc == 0) {
            const char *why = rd_kafka_topic_result_error_string(tr[i]);
            rc = ev_error_set(err, EV_EBUS, "create topic %s: %s (%s)", name,
                              rd_kafka_err2name(e), why ? why : "");
        }
    }
    return rc;
}

int ev_topics_create(rd_kafka_t *rk, const char *const *topics, int partitions,
                     int replication, int timeout_ms, int *created, ev_error *err)
{
    int made = 0;
    if (created != NULL)
        *created = 0;
    if (partitions < 1)
        return ev_error_set(err, EV_EINVAL, "create topics: partitions must be >= 1");
    rd_kafka_NewTopic_t **nt = NULL;
    size_t n = 0;
    rd_kafka_queue_t *q = NULL;
    rd_kafka_AdminOptions_t *o = NULL;
    rd_kafka_event_t *ev = NULL;
    int rc = new_topics(rk, topics, partitions, replication, timeout_ms, &nt, &n, err);
    if (rc != 0 || n == 0)
        goto cleanup;
    q = rd_kafka_queue_new(rk);
    o = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    char errstr[256];
    rd_kafka_AdminOptions_set_operation_timeout(o, timeout_ms, errstr, sizeof(errstr));
    rd_kafka_AdminOptions_set_request_timeout(o, timeout_ms, errstr, sizeof(errstr));
    rd_kafka_CreateTopics(rk, nt, n, o, q);
    ev = rd_kafka_queue_poll(q, timeout_ms + 1000);
    rc = create_result(ev, &made, err);
cleanup:
    if (created != NULL)
        *created = made;
    if (ev != NULL)
        rd_kafka_event_destroy(ev);
    for (size_t i = 0; i < n; i++)
        rd_kafka_NewTopic_destroy(nt[i]);
    free(nt);
    if (o != NULL)
        rd_kafka_AdminOptions_destroy(o);
    if (q != NULL)
        rd_kafka_queue_destroy(q);
    return rc;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* One round: 1 when everything is there, 0 when something is still missing
 * (its names in list) with the reason in why. Creating again after a refusal
 * is cheap and notices ACLs granted meanwhile. */
static int ensure_round(rd_kafka_t *rk, const char *const *topics,
                        const ev_topics_ensure_opts *o, char *list, size_t cap,
                        ev_error *why)
{
    size_t missing = 0;
    if (ev_topics_missing(rk, topics, METADATA_MS, &missing, list, cap, NULL, why) != 0)
        return 0;
    if (missing == 0)
        return 1;
    if (ev_topics_create(rk, topics, o->partitions, o->replication, METADATA_MS, NULL,
                         why) != 0)
        return 0;
    if (ev_topics_missing(rk, topics, METADATA_MS, &missing, list, cap, NULL, why) != 0)
        return 0;
    if (missing == 0)
        return 1;
    ev_error_set(why, EV_ENOTFOUND, "not ready yet (a partition without a leader)");
    return 0;
}

int ev_topics_ensure(rd_kafka_t *rk, const char *const *topics,
                     const ev_topics_ensure_opts *o, ev_error *err)
{
    int poll = o->poll_ms > 0 ? o->poll_ms : DEFAULT_POLL_MS;
    int64_t t0 = ev_mono_ms();
    int64_t last_log = 0;
    char list[512];
    for (;;) {
        ev_error why = {0};
        if (ensure_round(rk, topics, o, list, sizeof(list), &why) == 1) {
            if (last_log != 0)
                ev_log(EV_LOG_INFO, "topics ready", "waited_ms=%lld",
                       (long long)(ev_mono_ms() - t0));
            return 0;
        }
        int64_t now = ev_mono_ms();
        /* Just created topics get their leaders within a moment: not worth a
         * warning unless it lasts, or the cluster refused. */
        bool settling = why.code == EV_ENOTFOUND && now - t0 < SETTLE_MS;
        if (!settling && (last_log == 0 || now - last_log >= WAIT_LOG_MS)) {
            char q[EV_ERROR_TEXT * 2];
            ev_log(EV_LOG_WARN, "topics missing, waiting for them", "topics=%s reason=%s",
                   list, ev_log_quote(q, sizeof(q), why.text));
            last_log = now;
        }
        if ((o->stop != NULL && *o->stop) || (o->wait_ms >= 0 && now - t0 >= o->wait_ms))
            return ev_error_set(err, EV_ETIMEOUT, "topics missing: %s (%s)", list,
                                why.text);
        sleep_ms(settling && poll > SETTLE_POLL_MS ? SETTLE_POLL_MS : poll);
    }
}
