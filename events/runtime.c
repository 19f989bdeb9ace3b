/* SPDX-License-Identifier: MIT */
/* The service loop of DESIGN.md "Effectively-once per service": setup, poll a
 * batch, relay, housekeeping and a clean stop on SIGTERM, with teardown. */
#include "runtime_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "binding.h"
#include "log.h"
#include "topics.h"

#define RESUME_RETRY_MS 100 /* a failed seek of a held partition is tried again */
#define POLL_MS 100
#define HOUSEKEEP_MS 1000
#define PRUNE_MS 60000
#define SUMMARY_MS 60000
#define STOP_FLUSH_MS 10000
/* Records of types the service does not handle wait (SQLite store) up to this
 * long for a record it handles, to be skipped in that record's transaction: a
 * batch of skips alone would cost a commit and an fsync for its offsets only. */
#define CARRY_MS 50

/* ---- partitions ---- */

static part_state *part_find(ev_runtime *rt, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < rt->n_parts; i++) {
        part_state *p = &rt->parts[i];
        if (p->partition == partition && strcmp(p->topic, topic) == 0)
            return p;
    }
    return NULL;
}

part_state *ev_rt_part_get(ev_runtime *rt, const char *topic, int32_t partition)
{
    part_state *p = part_find(rt, topic, partition);
    if (p != NULL)
        return p;
    if (rt->n_parts == rt->cap_parts) {
        size_t cap = rt->cap_parts ? rt->cap_parts * 2 : 16;
        part_state *np = realloc(rt->parts, cap * sizeof(*np));
        if (np == NULL)
            return NULL;
        rt->parts = np;
        rt->cap_parts = cap;
    }
    char *t = strdup(topic);
    if (t == NULL)
        return NULL;
    p = &rt->parts[rt->n_parts++];
    *p = (part_state){.topic = t, .partition = partition, .next = -1, .retry_offset = -1};
    return p;
}

/* ev_start_fn: the DB is authoritative for where a partition starts. */
static int start_offset(void *arg, const char *topic, int32_t partition, int64_t *next)
{
    ev_runtime *rt = arg;
    ev_error err = {0};
    int rc = ev_store_offset_get(rt->store, topic, partition, next, &err);
    if (rc != 0) {
        ev_log_where w = {topic, partition, -1, NULL};
        char q[200];
        ev_log_at(EV_LOG_ERROR, &w, "reading start offset failed", "error=%s",
                  ev_log_quote(q, sizeof(q), err.text));
        return rc;
    }
    part_state *p = ev_rt_part_get(rt, topic, partition);
    if (p != NULL) {
        p->next = *next;
        p->dirty = false;
        p->hold = false;
        p->retry_offset = -1;
        p->attempts = 0;
        p->resume_at = 0;
    }
    return 0;
}

/* ---- setup ---- */

static int topics_build(ev_runtime *rt, ev_error *err)
{
    size_t n = 0;
    for (const ev_handler *h = rt->def->handlers; h && h->type; h++)
        n++;
    rt->topics = calloc(n + 1, sizeof(char *));
    if (rt->topics == NULL)
        return ev_error_set(err, EV_ENOMEM, "out of memory");
    size_t k = 0;
    for (const ev_handler *h = rt->def->handlers; h && h->type; h++) {
        const ev_event_route *r = ev_contract_route(rt->contract, h->type);
        if (r == NULL)
            return ev_error_set(err, EV_EUNKNOWN,
                                "handled type %s is not in the contract", h->type);
        if (!ev_schema_has_type(rt->schemas, h->type))
            return ev_error_set(err, EV_EUNKNOWN, "no schema for handled type %s",
                                h->type);
        char t[TOPIC_MAX];
        int rc = ev_config_topic(rt->cfg, r->topic, t, sizeof(t), err);
        if (rc != 0)
            return rc;
        bool dup = false;
        for (size_t i = 0; i < k; i++)
            dup = dup || strcmp(rt->topics[i], t) == 0;
        if (!dup && (rt->topics[k++] = strdup(t)) == NULL)
            return ev_error_set(err, EV_ENOMEM, "out of memory");
    }
    if (k == 0)
        return ev_error_set(err, EV_EINVAL, "service %s handles no event type",
                            rt->def->name);
    return 0;
}

static int check_emits(ev_runtime *rt, ev_error *err)
{
    for (size_t i = 0; rt->def->emits != NULL && rt->def->emits[i] != NULL; i++) {
        const char *t = rt->def->emits[i];
        if (ev_contract_route(rt->contract, t) == NULL)
            return ev_error_set(err, EV_EUNKNOWN,
                                "emitted type %s is not in the contract", t);
        if (!ev_schema_has_type(rt->schemas, t))
            return ev_error_set(err, EV_EUNKNOWN, "no schema for emitted type %s", t);
    }
    return 0;
}

/* This process's name for its outbox rows: host, pid and a random part. */
static void instance_id(char *out, size_t cap)
{
    char host[64] = "host";
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    char uuid[EV_UUID_LEN];
    ev_uuid4(uuid);
    snprintf(out, cap, "%s-%ld-%.8s", host, (long)getpid(), uuid);
}

int ev_rt_open_store(ev_store **out, const ev_service_def *def, const ev_config *cfg,
                     bool readonly, const char *owner, ev_error *err)
{
    char path[1024];
    int n = snprintf(path, sizeof(path), "%s/%s.db", cfg->data_dir, def->name);
    if (n < 0 || (size_t)n >= sizeof(path))
        return ev_error_set(err, EV_EINVAL, "data dir path too long");
    ev_store_opts o = {.path = path,
                       .url = cfg->store,
                       .schema = cfg->store_schema,
                       .owner = owner,
                       .synchronous = cfg->synchronous[0] ? cfg->synchronous : NULL,
                       .migrations = def->migrations,
                       .n_migrations = def->n_migrations,
                       .readonly = readonly};
    return ev_store_open(out, &o, err);
}

int ev_rt_load_contract(ev_runtime *rt, ev_error *err)
{
    char path[1024];
    int n = snprintf(path, sizeof(path), "%s/choreography.json", rt->cfg->schema_dir);
    if (n < 0 || (size_t)n >= sizeof(path))
        return ev_error_set(err, EV_EINVAL, "schema dir path too long");
    int rc = ev_contract_load(&rt->contract, path, err);
    if (rc != 0)
        return rc;
    rt->schemas = ev_schema_set_new();
    if (rt->schemas == NULL)
        return ev_error_set(err, EV_ENOMEM, "out of memory");
    rc = ev_schema_set_load_dir(rt->schemas, rt->cfg->schema_dir, err);
    if (rc == 0)
        rc = topics_build(rt, err);
    if (rc == 0)
        rc = check_emits(rt, err);
    return rc;
}

/* Every topic the service reads or writes, its DLQ included, exists before it
 * subscribes: a group that subscribed to a missing topic would not see it
 * appear until librdkafka's next metadata refresh (5 minutes by default). */
static int topics_ensure(ev_runtime *rt, ev_error *err)
{
    size_t n = 0, cap = 2;
    while (rt->topics[n] != NULL)
        n++;
    for (size_t i = 0; rt->def->emits != NULL && rt->def->emits[i] != NULL; i++)
        cap++;
    char(*names)[TOPIC_MAX] = calloc(cap, TOPIC_MAX);
    const char **all = calloc(n + cap + 1, sizeof(*all));
    int rc = 0;
    if (names == NULL || all == NULL) {
        rc = ev_error_set(err, EV_ENOMEM, "out of memory");
        goto cleanup;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        all[k++] = rt->topics[i];
    all[k++] = rt->dlq_topic;
    for (size_t i = 0; rt->def->emits != NULL && rt->def->emits[i] != NULL; i++) {
        const ev_event_route *r = ev_contract_route(rt->contract, rt->def->emits[i]);
        if (r != NULL &&
            ev_config_topic(rt->cfg, r->topic, names[i], TOPIC_MAX, err) == 0)
            all[k++] = names[i];
    }
    ev_topics_ensure_opts o = {.partitions = rt->cfg->topic_partitions,
                               .replication = rt->cfg->topic_replication,
                               .wait_ms = -1,
                               .stop = rt->stop};
    rc = ev_topics_ensure(ev_producer_handle(rt->prod), all, &o, err);
cleanup:
    free(names);
    free(all);
    return rc;
}

static int call_start(ev_runtime *rt, ev_error *err)
{
    if (rt->def->start == NULL)
        return 0;
    ev_ctx ctx = {.rt = rt, .now_ms = ev_now_ms()};
    int rc = ev_store_begin(rt->store, err);
    if (rc != 0)
        return rc;
    rc = rt->def->start(&ctx, err);
    if (rc == 0 && ctx.failed != 0)
        rc = ev_error_set(err, ctx.failed, "%s", ctx.fail_err.text);
    if (rc == 0)
        return ev_store_commit(rt->store, err);
    ev_error e2 = {0};
    ev_store_rollback(rt->store, &e2);
    return rc;
}

static int rt_open(ev_runtime *rt, ev_error *err)
{
    const ev_config *cfg = rt->cfg;
    rt->limits = ev_limits_default;
    if (cfg->max_record > 0)
        rt->limits.max_record = (size_t)cfg->max_record;
    rt->resend_from = INT64_MAX;
    rt->relay_pending = true; /* re-publish whatever a previous run left */
    snprintf(rt->source, sizeof(rt->source), "/choreo/%s", rt->def->name);
    char dlq[TOPIC_MAX];
    snprintf(dlq, sizeof(dlq), "dlq.%s", rt->def->name);
    int rc = ev_config_topic(cfg, dlq, rt->dlq_topic, sizeof(rt->dlq_topic), err);
    if (rc == 0)
        rc = ev_config_topic(cfg, rt->def->name, rt->group, sizeof(rt->group), err);
    if (rc == 0)
        rc = ev_rt_load_contract(rt, err);
    if (rc == 0)
        rc = ev_rt_open_store(&rt->store, rt->def, cfg, false, rt->instance, err);
    if (rc == 0)
        rc = call_start(rt, err);
    if (rc == 0)
        rc = ev_store_timers_next(rt->store, &rt->next_timer_due, err);
    if (rc == 0)
        rc = ev_rt_producer_new(rt, err);
    if (rc != 0)
        return rc;
    rc = topics_ensure(rt, err);
    if (rc != 0)
        return rc;
    ev_rt_producer_warm(rt);
    return ev_consumer_new(&rt->cons, cfg->brokers, rt->group,
                           (const char *const *)rt->topics, start_offset, rt, err);
}

/* The health and metrics listener; failing to listen is logged, not fatal. */
static void http_start(ev_runtime *rt)
{
    rt->metrics = ev_metrics_new(rt->def->name);
    if (rt->metrics == NULL)
        return;
    ev_metrics_attach_runtime(rt->metrics);
    ev_error e = {0};
    if (ev_http_start(&rt->http, rt->cfg->http_addr, rt->metrics, ev_metrics_ready,
                      rt->metrics, &e) != 0) {
        char q[200];
        ev_log(EV_LOG_WARN, "health and metrics listener not started", "addr=%s error=%s",
               rt->cfg->http_addr, ev_log_quote(q, sizeof(q), e.text));
        rt->http = NULL;
    } else if (rt->http != NULL) {
        ev_log(EV_LOG_INFO, "health and metrics listening", "addr=%s port=%u",
               rt->cfg->http_addr, (unsigned)ev_http_port(rt->http));
    }
}

static void rt_free(ev_runtime *rt)
{
    ev_http_stop(rt->http);
    ev_metrics_free(rt->metrics);
    ev_consumer_free(rt->cons);
    ev_producer_free_now(rt->prod); /* flushed by the caller when it could */
    ev_rt_free_state(rt);
}

void ev_rt_free_state(ev_runtime *rt)
{
    ev_store_close(rt->store);
    ev_schema_set_free(rt->schemas);
    ev_contract_free(rt->contract);
    for (size_t i = 0; rt->topics != NULL && rt->topics[i] != NULL; i++)
        free(rt->topics[i]);
    free(rt->topics);
    for (size_t i = 0; i < rt->n_parts; i++)
        free(rt->parts[i].topic);
    free(rt->parts);
    free(rt->done);
    free(rt->snap);
    free(rt->mq);
}

/* ---- the loop ---- */

/* Whether the consumer still owns the partition (a rebalance may have moved it). */
static bool still_assigned(ev_runtime *rt, const char *topic, int32_t partition)
{
    rd_kafka_topic_partition_list_t *a = NULL;
    if (rd_kafka_assignment(ev_consumer_handle(rt->cons), &a) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        a == NULL)
        return true; /* cannot tell: try again */
    bool mine = rd_kafka_topic_partition_list_find(a, topic, partition) != NULL;
    rd_kafka_topic_partition_list_destroy(a);
    return mine;
}

/* A partition held for a retry restarts at its record. When the seek fails
 * (it times out while the consumer rebalances or the leader moves), it stays
 * paused and is tried again shortly, or forgotten if it was revoked meanwhile
 * (its next owner starts from the store). */
static void resume_due(ev_runtime *rt, int64_t mono)
{
    for (size_t i = 0; i < rt->n_parts; i++) {
        part_state *p = &rt->parts[i];
        if (p->resume_at == 0 || mono < p->resume_at)
            continue;
        p->resume_at = 0;
        int64_t at = p->retry_offset >= 0 ? p->retry_offset : p->next;
        ev_error e = {0};
        ev_log_where w = {p->topic, p->partition, at, NULL};
        if (at >= 0 && ev_consumer_seek(rt->cons, p->topic, p->partition, at, &e) != 0) {
            bool mine = still_assigned(rt, p->topic, p->partition);
            if (mine)
                p->resume_at = mono + RESUME_RETRY_MS;
            ev_log_at(EV_LOG_WARN, &w,
                      mine ? "retry resume failed, trying again"
                           : "retry resume dropped, partition revoked",
                      "error=%s", e.text);
            continue;
        }
        if (ev_consumer_pause(rt->cons, p->topic, p->partition, false, &e) != 0)
            ev_log_at(EV_LOG_WARN, &w, "retry resume failed", "error=%s", e.text);
    }
}

static int poll_timeout(const ev_runtime *rt)
{
    int64_t t = POLL_MS;
    if (rt->relay_pending || rt->resend_from != INT64_MAX)
        t = 5;
    int64_t mono = ev_mono_ms();
    if (rt->carry > 0)
        t = rt->carry_until - mono < t ? rt->carry_until - mono : t;
    if (rt->hold_until > mono) {
        int64_t d = rt->hold_until - mono;
        t = d < t ? d : t;
    } else if (rt->next_timer_due != INT64_MAX) {
        int64_t d = rt->next_timer_due - ev_now_ms();
        t = d < t ? d : t;
    }
    for (size_t i = 0; i < rt->n_parts; i++) {
        int64_t d = rt->parts[i].resume_at - mono;
        if (rt->parts[i].resume_at != 0 && d < t)
            t = d;
    }
    return t < 0 ? 0 : (int)t;
}

static void log_summary(ev_runtime *rt)
{
    const ev_runtime_stats *s = &rt->st;
    ev_log(EV_LOG_INFO, "summary",
           "consumed=%" PRIu64 " applied=%" PRIu64 " produced=%" PRIu64
           " deduped=%" PRIu64 " dead_lettered=%" PRIu64 " skipped=%" PRIu64
           " retried=%" PRIu64 " timers_fired=%" PRIu64 " batches=%" PRIu64
           " outbox_backlog=%" PRId64 " timers_pending=%" PRId64 " assigned=%d",
           s->consumed, s->applied, s->produced, s->deduped, s->dead_lettered, s->skipped,
           s->retried, s->timers_fired, s->batches, s->outbox_backlog, s->timers_pending,
           s->assigned);
}

static void housekeep(ev_runtime *rt, bool force)
{
    int64_t mono = ev_mono_ms();
    if (!force && mono - rt->last_housekeep < HOUSEKEEP_MS)
        return;
    rt->last_housekeep = mono;
    ev_rt_claim_orphans(rt, mono);
    ev_error e = {0};
    int64_t n = 0;
    if (ev_store_outbox_count(rt->store, &n, &e) == 0)
        rt->st.outbox_backlog = n;
    if (ev_store_timers_count(rt->store, &n, &e) == 0)
        rt->st.timers_pending = n;
    rd_kafka_topic_partition_list_t *a = NULL;
    if (rd_kafka_assignment(ev_consumer_handle(rt->cons), &a) == 0 && a != NULL) {
        rt->st.assigned = a->cnt;
        rd_kafka_topic_partition_list_destroy(a);
    }
    ev_runtime_stats_publish(&rt->st);
    ev_metrics_lag_update(rt->metrics, ev_consumer_handle(rt->cons));
    if (force || mono - rt->last_summary >= SUMMARY_MS) {
        rt->last_summary = mono;
        log_summary(rt);
    }
}

/* The per-hop figures of a poll that returned n records: each one's transit
 * from its timestamp (whole wall-clock ms at its producer's send call) to now. */
static void hop_polled(ev_runtime *rt, rd_kafka_message_t **msgs, size_t n)
{
    rt->hop_poll_us = ev_metrics_now_us();
    rt->hop_parse_us = rt->hop_handler_us = 0;
    if (rt->metrics == NULL)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t wall_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    for (size_t i = 0; i < n; i++) {
        rd_kafka_timestamp_type_t kind;
        int64_t at = rd_kafka_message_timestamp(msgs[i], &kind);
        if (at > 0 && wall_us >= at * 1000)
            ev_metrics_observe(rt->metrics, EV_MH_HOP_TRANSIT_US,
                               (uint64_t)(wall_us - at * 1000));
    }
}

/* Whether a consumed record is one the batch will only skip (a type with no
 * handler, not a replayed timer); false when the peek cannot say. */
static bool skip_only(const ev_runtime *rt, const rd_kafka_message_t *m)
{
    const rd_kafka_headers_t *h = ev_binding_headers_of(m);
    const void *v = NULL;
    size_t len = 0;
    char type[EV_TYPE_MAX];
    if (h != NULL && rd_kafka_header_get_last(h, "timer.kind", &v, &len) == 0)
        return false;
    if (m->payload == NULL || !ev_binding_peek_type(m->payload, m->len, h, type))
        return false;
    for (const ev_handler *x = rt->def->handlers; x != NULL && x->type != NULL; x++) {
        if (strcmp(x->type, type) == 0)
            return false;
    }
    return true;
}

/* Whether the polled records (n, the first carried from earlier polls) wait
 * for the next poll instead of a batch of their own: all are skips, there is
 * room and time left, and the store is this instance's own (SQLite). */
static bool carry_on(ev_runtime *rt, rd_kafka_message_t **msgs, size_t n, size_t cap)
{
    if (n == 0 || n >= cap || ev_store_backend(rt->store) != EV_STORE_SQLITE)
        return false;
    int64_t mono = ev_mono_ms();
    if (rt->carry > 0 && mono >= rt->carry_until)
        return false;
    for (size_t i = rt->carry; i < n; i++) {
        if (!skip_only(rt, msgs[i]))
            return false;
    }
    if (rt->carry == 0)
        rt->carry_until = mono + CARRY_MS;
    rt->carry = n;
    return true;
}

static int rt_loop(ev_runtime *rt, rd_kafka_message_t **msgs, volatile sig_atomic_t *stop,
                   ev_error *err)
{
    size_t cap = (size_t)rt->cfg->batch_size;
    int rc = 0;
    rt->last_summary = rt->last_housekeep = ev_mono_ms();
    while (rc == 0 && !*stop) {
        resume_due(rt, ev_mono_ms());
        size_t got = 0;
        rc = ev_consumer_poll(rt->cons, msgs + rt->carry, cap - rt->carry,
                              poll_timeout(rt), &got, err);
        if (rc != 0)
            break;
        if (got > 0)
            hop_polled(rt, msgs + rt->carry, got);
        size_t n = rt->carry + got;
        ev_producer_poll(rt->prod, 0);
        bool prune = ev_mono_ms() - rt->last_prune >= PRUNE_MS;
        bool held = ev_mono_ms() < rt->hold_until; /* timers wait out a hold */
        bool timers = !held && ev_now_ms() >= rt->next_timer_due;
        if (timers || prune || rt->n_done > 0 || !carry_on(rt, msgs, n, cap)) {
            rt->carry = 0;
            if (n > 0 || timers || prune || rt->n_done > 0)
                rc = ev_rt_run_batch(rt, msgs, n, prune, !held, err);
            for (size_t i = 0; i < n; i++)
                rd_kafka_message_destroy(msgs[i]);
        }
        if (rc == 0)
            rc = ev_rt_producer_check(rt, err);
        if (rc == 0) {
            ev_rt_relay(rt);
            housekeep(rt, false);
        }
        rt->hop_poll_us = rt->hop_commit_us = 0; /* a later relay is not this hop's */
    }
    for (size_t i = 0; i < rt->carry; i++) /* read again after a restart */
        rd_kafka_message_destroy(msgs[i]);
    rt->carry = 0;
    return rc;
}

/* Stop: publish what is committed (bounded), delete delivered rows, leave. */
static int rt_shutdown(ev_runtime *rt, ev_error *err)
{
    int64_t deadline = ev_mono_ms() + STOP_FLUSH_MS;
    while (ev_mono_ms() < deadline) {
        ev_rt_relay(rt);
        ev_producer_poll(rt->prod, 50);
        if (!rt->relay_pending && rt->resend_from == INT64_MAX &&
            ev_producer_outq_len(rt->prod) == 0)
            break;
    }
    int pending = ev_producer_outq_len(rt->prod);
    if (pending > 0 || rt->relay_pending)
        ev_log(EV_LOG_WARN,
               "stopping with undelivered outbox rows, kept for the next start",
               "in_flight=%d", pending);
    int rc = 0;
    if (rt->n_done > 0)
        rc = ev_rt_run_batch(rt, NULL, 0, false, false, err);
    ev_error e = {0};
    if (ev_consumer_close(rt->cons, &e) != 0)
        ev_log(EV_LOG_WARN, "consumer close", "error=%s", e.text);
    housekeep(rt, true);
    return rc;
}

int ev_service_run(const ev_service_def *def, const ev_config *cfg,
                   volatile sig_atomic_t *stop, ev_error *err)
{
    if (def == NULL || def->name == NULL || cfg == NULL || stop == NULL ||
        cfg->batch_size < 1)
        return ev_error_set(err, EV_EINVAL, "service run: bad argument");
    ev_runtime *rt = calloc(1, sizeof(*rt));
    rd_kafka_message_t **msgs = calloc((size_t)cfg->batch_size, sizeof(*msgs));
    int rc = 0;
    if (rt == NULL || msgs == NULL) {
        rc = ev_error_set(err, EV_ENOMEM, "out of memory");
        goto cleanup;
    }
    rt->def = def;
    rt->cfg = cfg;
    rt->stop = stop;
    instance_id(rt->instance, sizeof(rt->instance));
    ev_store_tune_process();
    rc = rt_open(rt, err);
    if (rc != 0)
        goto cleanup;
    char q[600];
    ev_log(EV_LOG_INFO, "started", "group=%s dlq=%s brokers=%s", rt->group, rt->dlq_topic,
           ev_log_quote(q, sizeof(q), cfg->brokers));
    rt->st.running = 1;
    ev_runtime_stats_publish(&rt->st);
    http_start(rt);
    rc = rt_loop(rt, msgs, stop, err);
    if (rc == 0)
        rc = rt_shutdown(rt, err);
    rt->st.running = 0;
    ev_runtime_stats_publish(&rt->st);
    if (rc == 0)
        ev_log(EV_LOG_INFO, "stopped", NULL);
cleanup:
    if (rt != NULL)
        rt_free(rt);
    free(rt);
    free(msgs);
    return rc;
}
