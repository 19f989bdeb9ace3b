/* SPDX-License-Identifier: MIT */
/* The outbox relay: committed outbox rows to the idempotent producer, delivery
 * reports, a recreated producer after a fatal error, other instances' orphans. */
#include "runtime_internal.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define RELAY_CHUNK 1000
#define RELAY_MAX_INFLIGHT 50000
#define MAX_HEADERS 64
#define CLAIM_EVERY_MS 5000
#define ORPHAN_MS 15000
/* A relayed burst under this many rows is sent at once (flushing up to
 * KICK_MS) rather than after linger.ms; bigger ones are load, where linger.ms
 * batching pays. Measured at 100 orders/s: p50 35 -> 11 ms, p99 130 -> 31. */
#define KICK_MAX_ROWS 256
#define KICK_MS 1
/* librdkafka's statistics of the producer (the per-hop histograms) this often. */
#define STATS_MS 1000

void ev_rt_on_delivery(void *arg, void *opaque, int err, const char *errstr,
                       const char *topic, int32_t partition, int64_t offset)
{
    ev_runtime *rt = arg;
    int64_t id = (int64_t)(intptr_t)opaque;
    if (err != 0) {
        rt->st.delivery_errors++;
        if (id < rt->resend_from)
            rt->resend_from = id;
        ev_log_where w = {topic, partition, -1, NULL};
        char q[200];
        ev_log_at(EV_LOG_WARN, &w, "delivery failed, will resend",
                  "outbox_id=%" PRId64 " error=%s", id,
                  ev_log_quote(q, sizeof(q), errstr));
        return;
    }
    (void)offset;
    rt->st.produced++;
    if (rt->n_done == rt->cap_done) {
        size_t cap = rt->cap_done ? rt->cap_done * 2 : 1024;
        int64_t *nd = realloc(rt->done, cap * sizeof(*nd));
        if (nd == NULL)
            return; /* row stays in the outbox: resent after a restart, deduped */
        rt->done = nd;
        rt->cap_done = cap;
    }
    rt->done[rt->n_done++] = id;
}

static size_t headers_parse(const char *hj, json_t **owner, ev_header *out, size_t cap)
{
    static const ev_header ce = {"content-type", "application/cloudevents+json"};
    *owner = NULL;
    if (hj == NULL)
        return 0;
    if (strcmp(hj, CE_HEADERS) == 0) {
        out[0] = ce;
        return 1;
    }
    json_t *obj = json_loads(hj, 0, NULL);
    if (!json_is_object(obj)) {
        json_decref(obj);
        return 0;
    }
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        if (n < cap && json_is_string(v))
            out[n++] = (ev_header){k, json_string_value(v)};
    }
    *owner = obj;
    return n;
}

typedef struct relay_walk {
    ev_runtime *rt;
    size_t rows;
    ev_error err;
} relay_walk;

/* The per-hop figures of the batch just committed, at its first relayed row:
 * its parse and handler time, its poll to its commit, its commit to now, and
 * its poll to now (the hop's stay in this service). */
static void hop_relayed(ev_runtime *rt)
{
    int64_t now = ev_metrics_now_us();
    if (rt->hop_poll_us != 0 && rt->hop_commit_us != 0) {
        ev_metrics_observe(rt->metrics, EV_MH_HOP_PARSE_US, (uint64_t)rt->hop_parse_us);
        ev_metrics_observe(rt->metrics, EV_MH_HOP_HANDLER_US,
                           (uint64_t)rt->hop_handler_us);
        ev_metrics_observe(rt->metrics, EV_MH_HOP_COMMITTED_US,
                           (uint64_t)(rt->hop_commit_us - rt->hop_poll_us));
        ev_metrics_observe(rt->metrics, EV_MH_HOP_STAY_US,
                           (uint64_t)(now - rt->hop_poll_us));
    }
    if (rt->hop_commit_us != 0)
        ev_metrics_observe(rt->metrics, EV_MH_HOP_RELAY_US,
                           (uint64_t)(now - rt->hop_commit_us));
    rt->hop_commit_us = rt->hop_poll_us = 0;
}

static int relay_row(void *arg, int64_t id, const char *topic, const char *key,
                     const void *value, size_t len, const char *headers_json)
{
    relay_walk *w = arg;
    ev_runtime *rt = w->rt;
    ev_header hdrs[MAX_HEADERS];
    json_t *owner = NULL;
    if (w->rows == 0 && (rt->hop_commit_us != 0 || rt->hop_poll_us != 0))
        hop_relayed(rt);
    size_t nh = headers_parse(headers_json, &owner, hdrs, MAX_HEADERS);
    int rc = ev_producer_send(rt->prod, topic, -1, key, value, len, hdrs, nh,
                              (void *)(intptr_t)id, &w->err);
    json_decref(owner);
    if (rc != 0)
        return rc;
    rt->relay_hwm = id;
    w->rows++;
    ev_metrics_count_record(rt->metrics, EV_MC_PRODUCED, value, len);
    return 0;
}

/* Hands outbox rows after the high-water mark to the producer. */
void ev_rt_relay(ev_runtime *rt)
{
    if (rt->resend_from != INT64_MAX) {
        if (rt->resend_from - 1 < rt->relay_hwm)
            rt->relay_hwm = rt->resend_from - 1;
        rt->resend_from = INT64_MAX;
        rt->relay_pending = true;
    }
    if (!rt->relay_pending || ev_producer_outq_len(rt->prod) > RELAY_MAX_INFLIGHT)
        return;
    relay_walk w = {.rt = rt};
    ev_error e = {0};
    int rc = ev_store_outbox_each(rt->store, rt->relay_hwm + 1, RELAY_CHUNK, relay_row,
                                  &w, &e);
    if (w.rows > 0 && w.rows < KICK_MAX_ROWS)
        ev_producer_kick(rt->prod, KICK_MS); /* not after linger.ms: a hop less */
    if (rc == 0 && w.rows < RELAY_CHUNK)
        rt->relay_pending = false;
    if (rc != 0 && rc != EV_ERETRY) {
        char q[200];
        ev_log(EV_LOG_WARN, "outbox relay stalled", "error=%s",
               ev_log_quote(q, sizeof(q), w.err.text[0] ? w.err.text : e.text));
    }
}

#define WARM_MS 1000
#define MAX_WARM 16

/* Loads the metadata of the topics the service emits to, so that the first
 * relayed rows do not wait for librdkafka to discover them. Best effort. */
void ev_rt_producer_warm(ev_runtime *rt)
{
    char names[MAX_WARM][TOPIC_MAX];
    const char *topics[MAX_WARM + 1];
    size_t n = 0;
    for (size_t i = 0; rt->def->emits != NULL && rt->def->emits[i] != NULL; i++) {
        const ev_event_route *r = ev_contract_route(rt->contract, rt->def->emits[i]);
        ev_error e = {0};
        if (n == MAX_WARM || r == NULL ||
            ev_config_topic(rt->cfg, r->topic, names[n], TOPIC_MAX, &e) != 0)
            continue;
        bool dup = false;
        for (size_t k = 0; k < n; k++)
            dup = dup || strcmp(topics[k], names[n]) == 0;
        if (!dup) {
            topics[n] = names[n];
            n++;
        }
    }
    topics[n] = NULL;
    int loaded = ev_producer_warm(rt->prod, topics, WARM_MS);
    ev_log(EV_LOG_DEBUG, "producer topics loaded", "count=%d of=%zu", loaded, n);
}

/* ev_producer_stats_fn (arg is rt): a window of the producer's statistics
 * into the per-hop histograms, as its means. */
static void on_producer_stats(void *arg, const ev_producer_window *w)
{
    ev_runtime *rt = arg;
    const struct {
        ev_metric_hist h;
        int64_t us, n;
    } part[] = {{EV_MH_HOP_QUEUE_US, w->queue_us, w->queue_n},
                {EV_MH_HOP_OUTBUF_US, w->outbuf_us, w->outbuf_n},
                {EV_MH_HOP_RTT_US, w->rtt_us, w->rtt_n}};
    for (size_t i = 0; i < sizeof(part) / sizeof(part[0]); i++) {
        if (part[i].n > 0)
            ev_metrics_observe_n(rt->metrics, part[i].h,
                                 (uint64_t)(part[i].us / part[i].n), (uint64_t)part[i].n);
    }
}

int ev_rt_producer_new(ev_runtime *rt, ev_error *err)
{
    int rc = ev_producer_new_stats(&rt->prod, rt->cfg->brokers, rt->def->name,
                                   ev_rt_on_delivery, rt, on_producer_stats, rt, STATS_MS,
                                   err);
    if (rc == 0)
        ev_producer_set_block(rt->prod, 100);
    return rc;
}

/* A fatal producer error (idempotence state lost) makes it unusable: start a
 * new one and resend every outbox row; consumers drop the duplicates by id. */
int ev_rt_producer_check(ev_runtime *rt, ev_error *err)
{
    char reason[256];
    if (rd_kafka_fatal_error(ev_producer_handle(rt->prod), reason, sizeof(reason)) ==
        RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    char q[300];
    ev_log(EV_LOG_ERROR, "producer fatal error, recreating it", "reason=%s",
           ev_log_quote(q, sizeof(q), reason));
    ev_producer_free_now(rt->prod);
    rt->prod = NULL;
    rt->relay_hwm = 0;
    rt->resend_from = INT64_MAX;
    rt->relay_pending = true;
    int rc = ev_rt_producer_new(rt, err);
    if (rc == 0)
        ev_rt_producer_warm(rt);
    return rc;
}

/* A shared store (PostgreSQL): outbox rows another instance wrote and did not
 * relay for ORPHAN_MS (it died, or cannot reach the broker) are taken over and
 * sent from here; consumers drop any copies by id. */
void ev_rt_claim_orphans(ev_runtime *rt, int64_t mono)
{
    if (ev_store_backend(rt->store) != EV_STORE_POSTGRES ||
        mono - rt->last_claim < CLAIM_EVERY_MS)
        return;
    rt->last_claim = mono;
    int64_t claimed = 0, min_id = INT64_MAX;
    ev_error e = {0};
    if (ev_store_outbox_claim(rt->store, ev_now_ms() - ORPHAN_MS, &claimed, &min_id,
                              &e) != 0) {
        char q[200];
        ev_log(EV_LOG_DEBUG, "outbox claim failed", "error=%s",
               ev_log_quote(q, sizeof(q), e.text));
        return;
    }
    if (claimed == 0)
        return;
    ev_log(EV_LOG_INFO, "relaying another instance's outbox rows",
           "rows=%" PRId64 " from_id=%" PRId64, claimed, min_id);
    if (min_id < rt->resend_from)
        rt->resend_from = min_id;
}
