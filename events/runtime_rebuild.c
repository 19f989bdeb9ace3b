/* SPDX-License-Identifier: MIT */
/* <service> --rebuild and --verify: the service's state from the log alone.
 * Reads the input topics from offset 0 up to the ends captured at start, in
 * record-time order, through the ordinary batch (handlers, inbox, offsets,
 * timers on the records' clock), relays nothing, and sets what it would emit
 * against what the service already published. */
#include "runtime_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "binding.h"
#include "log.h"

#define RB_WINDOW_MS 50  /* one batch spans at most this much record time */
#define RB_POLL_MS 200   /* one consumer poll */
#define RB_IDLE_MS 30000 /* records missing and none arriving: give up */
#define RB_META_MS 10000 /* metadata and watermark queries */
#define RB_TIMER_LOOPS 100000
#ifndef RB_QUEUE_MAX
#define RB_QUEUE_MAX 20000 /* records held per partition before it is paused */
#endif

/* One partition read: an input one feeds the handlers, an emitted one tells
 * which of the service's events are already published (a topic may be both). */
typedef struct rb_part {
    char topic[TOPIC_MAX];
    int32_t partition;
    bool input, emitted;
    int64_t end;            /* high watermark at start: offsets below it are read */
    int64_t next;           /* next offset expected from the broker */
    rd_kafka_message_t **q; /* input records read, not applied yet */
    size_t head, n, cap;
    bool paused; /* RB_QUEUE_MAX records held: no fetching until half are applied */
} rb_part;

typedef struct rebuild {
    ev_runtime *rt;
    rd_kafka_t *rk;
    rb_part *parts;
    size_t n_parts, cap_parts;
    ev_rt_ids *published; /* the service's events on its emitted topics */
    ev_rt_ids *would;     /* what the rebuild would emit */
    int64_t t_start;      /* wall clock at start: timers due by then fire */
    uint64_t records;     /* input records applied, skipped or deduped */
    size_t kept, matched, dlq_rows;
} rebuild;

/* ---- the partitions ---- */

static rb_part *part_add(rebuild *b, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < b->n_parts; i++)
        if (b->parts[i].partition == partition && strcmp(b->parts[i].topic, topic) == 0)
            return &b->parts[i];
    if (b->n_parts == b->cap_parts) {
        size_t cap = b->cap_parts ? b->cap_parts * 2 : 16;
        rb_part *np = realloc(b->parts, cap * sizeof(*np));
        if (np == NULL)
            return NULL;
        b->parts = np;
        b->cap_parts = cap;
    }
    rb_part *p = &b->parts[b->n_parts++];
    *p = (rb_part){.partition = partition};
    ev_rt_scopy(p->topic, sizeof(p->topic), topic);
    return p;
}

static rb_part *part_find(rebuild *b, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < b->n_parts; i++)
        if (b->parts[i].partition == partition && strcmp(b->parts[i].topic, topic) == 0)
            return &b->parts[i];
    return NULL;
}

/* The partitions of topic with their watermarks; a topic that does not exist
 * has none. Refuses a partition whose log no longer starts at offset 0. */
static int topic_parts(rebuild *b, const char *topic, bool input, ev_error *err)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(b->rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    if (t == NULL)
        return ev_error_set(err, EV_ENOMEM, "topic %s: out of memory", topic);
    rd_kafka_resp_err_t e = rd_kafka_metadata(b->rk, 0, t, &md, RB_META_MS);
    rd_kafka_topic_destroy(t);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return ev_error_set(err, EV_EBUS, "metadata of %s: %s", topic,
                            rd_kafka_err2str(e));
    int rc = 0;
    int n =
        md->topic_cnt == 1 && md->topics[0].err == 0 ? md->topics[0].partition_cnt : 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        int32_t id = md->topics[0].partitions[i].id;
        int64_t lo = 0, hi = 0;
        e = rd_kafka_query_watermark_offsets(b->rk, topic, id, &lo, &hi, RB_META_MS);
        rb_part *p = e == 0 ? part_add(b, topic, id) : NULL;
        if (e != 0)
            rc = ev_error_set(err, EV_EBUS, "watermarks of %s [%d]: %s", topic, (int)id,
                              rd_kafka_err2str(e));
        else if (p == NULL)
            rc = ev_error_set(err, EV_ENOMEM, "partitions: out of memory");
        else if (lo > 0)
            rc = ev_error_set(err, EV_EINVAL,
                              "%s [%d] starts at offset %" PRId64 ", not 0: retention or "
                              "compaction removed records, so the log no longer holds "
                              "the whole history and a rebuild from it would be wrong",
                              topic, (int)id, lo);
        if (rc == 0) {
            p->end = hi;
            p->input = p->input || input;
            p->emitted = p->emitted || !input;
        }
    }
    rd_kafka_metadata_destroy(md);
    return rc;
}

static int consumer_new(rebuild *b, ev_error *err)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char group[TOPIC_MAX + 16];
    snprintf(group, sizeof(group), "%s.rebuild", b->rt->group);
    int rc = ev_bus_conf_env(conf, err);
    const char *kv[][2] = {{"bootstrap.servers", b->rt->cfg->brokers},
                           {"group.id", group},
                           {"enable.auto.commit", "false"},
                           {"enable.auto.offset.store", "false"},
                           {"auto.offset.reset", "error"}};
    for (size_t i = 0; rc == 0 && i < sizeof(kv) / sizeof(kv[0]); i++)
        if (rd_kafka_conf_set(conf, kv[i][0], kv[i][1], errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK)
            rc = ev_error_set(err, EV_EINVAL, "%s: %s", kv[i][0], errstr);
    if (rc != 0) {
        rd_kafka_conf_destroy(conf);
        return rc;
    }
    b->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (b->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return ev_error_set(err, EV_EBUS, "consumer: %s", errstr);
    }
    return 0;
}

/* Every partition to read, from offset 0 (an empty one needs no reading). */
static int assign_all(rebuild *b, ev_error *err)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    for (size_t i = 0; i < b->n_parts; i++) {
        rb_part *p = &b->parts[i];
        if (p->end > 0)
            rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = 0;
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(b->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return ev_error_set(err, EV_EBUS, "assign: %s", rd_kafka_err2str(e));
    return 0;
}

/* The input topics and the topics of the emitted types. */
static int plan(rebuild *b, ev_error *err)
{
    ev_runtime *rt = b->rt;
    int rc = 0;
    for (size_t i = 0; rc == 0 && rt->topics[i] != NULL; i++)
        rc = topic_parts(b, rt->topics[i], true, err);
    for (size_t i = 0; rc == 0 && rt->def->emits && rt->def->emits[i]; i++) {
        const ev_event_route *r = ev_contract_route(rt->contract, rt->def->emits[i]);
        char t[TOPIC_MAX];
        rc = ev_config_topic(rt->cfg, r->topic, t, sizeof(t), err);
        if (rc == 0)
            rc = topic_parts(b, t, false, err);
    }
    return rc == 0 ? assign_all(b, err) : rc;
}

/* ---- reading ---- */

static bool part_read(const rb_part *p)
{
    return p->next >= p->end;
}

/* Notes a published event of this service (an emitted topic's record). */
static int note_published(rebuild *b, const rd_kafka_message_t *m, ev_error *err)
{
    ev_envelope ev;
    ev_error why = {0};
    if (ev_binding_parse(&ev, m->payload ? m->payload : "", m->payload ? m->len : 0,
                         ev_binding_headers_of(m), &b->rt->limits, true, &why) != 0)
        return 0;
    int rc = 0;
    if (strcmp(ev.source, b->rt->source) == 0)
        rc = ev_rt_ids_add(b->published, ev.id, ev.type, rd_kafka_topic_name(m->rkt),
                           m->partition, m->offset);
    ev_envelope_clear(&ev);
    return rc == 0 ? 0 : ev_error_set(err, EV_ENOMEM, "event ids: out of memory");
}

static int enqueue(rb_part *p, rd_kafka_message_t *m)
{
    if (p->head + p->n == p->cap) {
        if (p->head > 0) {
            memmove(p->q, p->q + p->head, p->n * sizeof(*p->q));
            p->head = 0;
        }
        if (p->n == p->cap) {
            size_t cap = p->cap ? p->cap * 2 : 256;
            rd_kafka_message_t **q = realloc(p->q, cap * sizeof(*q));
            if (q == NULL)
                return -1;
            p->q = q;
            p->cap = cap;
        }
    }
    p->q[p->head + p->n++] = m;
    return 0;
}

/* Holds back a partition far ahead in record time (bounded memory), or lets
 * it go on from the next offset it needs (what was fetched meanwhile is
 * dropped by the seek, or ignored by take as already seen). */
static int pause_part(rebuild *b, rb_part *p, bool pause, ev_error *err)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = p->next;
    rd_kafka_resp_err_t e = pause ? rd_kafka_pause_partitions(b->rk, l)
                                  : rd_kafka_resume_partitions(b->rk, l);
    rd_kafka_error_t *se = NULL;
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR && !pause)
        se = rd_kafka_seek_partitions(b->rk, l, RB_META_MS);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR && se == NULL && l->elems[0].err != 0)
        e = l->elems[0].err;
    int rc = 0;
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR || se != NULL)
        rc = ev_error_set(err, EV_EBUS, "%s %s [%d]: %s", pause ? "pause" : "resume",
                          p->topic, (int)p->partition,
                          se ? rd_kafka_error_string(se) : rd_kafka_err2str(e));
    if (se != NULL)
        rd_kafka_error_destroy(se);
    rd_kafka_topic_partition_list_destroy(l);
    if (rc == 0)
        p->paused = pause;
    return rc;
}

/* One consumed record: checked for gaps, noted, queued. 0 or an error. */
static int take(rebuild *b, rd_kafka_message_t *m, ev_error *err)
{
    rb_part *p = part_find(b, rd_kafka_topic_name(m->rkt), m->partition);
    if (p == NULL || m->offset >= p->end || m->offset < p->next) { /* or seen */
        rd_kafka_message_destroy(m);
        return 0;
    }
    int rc = 0;
    if (m->offset != p->next)
        rc = ev_error_set(err, EV_EINVAL,
                          "%s [%d] has no records at offsets %" PRId64 "..%" PRId64
                          " (compaction removed them): the log no longer holds the whole "
                          "history",
                          p->topic, (int)p->partition, p->next, m->offset - 1);
    p->next = m->offset + 1;
    if (rc == 0 && p->emitted)
        rc = note_published(b, m, err);
    if (rc == 0 && p->input) {
        if (enqueue(p, m) != 0)
            rc = ev_error_set(err, EV_ENOMEM, "record queue: out of memory");
        else
            return p->n >= RB_QUEUE_MAX ? pause_part(b, p, true, err) : 0;
    }
    rd_kafka_message_destroy(m);
    return rc;
}

/* Partitions whose last records are not data (transaction markers) are read
 * once the consumer's position passed their end. */
static void positions(rebuild *b)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; i < b->n_parts; i++)
        if (!part_read(&b->parts[i]))
            rd_kafka_topic_partition_list_add(l, b->parts[i].topic,
                                              b->parts[i].partition);
    if (l->cnt > 0 && rd_kafka_position(b->rk, l) == 0) {
        for (int i = 0; i < l->cnt; i++) {
            rb_part *p = part_find(b, l->elems[i].topic, l->elems[i].partition);
            if (p != NULL && l->elems[i].offset >= p->end && p->n == 0)
                p->next = p->end;
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* Reads what the broker has for a while; an error when nothing came for
 * RB_IDLE_MS while records are still missing. */
static int fill(rebuild *b, int64_t *idle_since, ev_error *err)
{
    rd_kafka_message_t *m = rd_kafka_consumer_poll(b->rk, RB_POLL_MS);
    if (m == NULL) {
        positions(b);
        if (ev_mono_ms() - *idle_since > RB_IDLE_MS)
            return ev_error_set(err, EV_ETIMEOUT,
                                "no record arrived for %d s while some are missing "
                                "(is the broker reachable?)",
                                RB_IDLE_MS / 1000);
        return 0;
    }
    *idle_since = ev_mono_ms();
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        rd_kafka_message_destroy(m);
        return 0;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        bool transient = m->err == RD_KAFKA_RESP_ERR__TRANSPORT;
        int rc = transient ? 0
                           : ev_error_set(err, EV_EBUS, "reading %s [%d]: %s",
                                          m->rkt ? rd_kafka_topic_name(m->rkt) : "?",
                                          (int)m->partition, rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return rc;
    }
    return take(b, m, err);
}

/* ---- merging by record time ---- */

#define PICK_WAIT -1 /* a partition has records to come: read more */
#define PICK_DONE -2 /* every input record was applied */

static int64_t rec_time(const rd_kafka_message_t *m)
{
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    return ts > 0 ? ts : 0;
}

/* The input partition whose next record is the earliest; ties go to the
 * earlier partition in the plan. */
static int pick(const rebuild *b)
{
    int best = PICK_DONE;
    int64_t best_ts = INT64_MAX;
    for (size_t i = 0; i < b->n_parts; i++) {
        const rb_part *p = &b->parts[i];
        if (!p->input)
            continue;
        if (p->n == 0) {
            if (!part_read(p))
                return PICK_WAIT;
            continue;
        }
        int64_t ts = rec_time(p->q[p->head]);
        if (ts < best_ts) {
            best_ts = ts;
            best = (int)i;
        }
    }
    return best;
}

static rd_kafka_message_t *pop(rebuild *b, int i)
{
    rb_part *p = &b->parts[i];
    rd_kafka_message_t *m = p->q[p->head++];
    if (--p->n == 0)
        p->head = 0;
    return m;
}

/* Lets the paused partitions that are half drained fetch again. */
static int resume_drained(rebuild *b, ev_error *err)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < b->n_parts; i++)
        if (b->parts[i].paused && b->parts[i].n <= RB_QUEUE_MAX / 2)
            rc = pause_part(b, &b->parts[i], false, err);
    return rc;
}

/* Fires the timers due by until, in due order, each at its due time. */
static int timers_until(rebuild *b, int64_t until, ev_error *err)
{
    ev_runtime *rt = b->rt;
    for (int loops = 0; rt->next_timer_due <= until; loops++) {
        if (loops > RB_TIMER_LOOPS)
            return ev_error_set(err, EV_EINVAL, "timers re-arm themselves endlessly");
        if (rt->next_timer_due > rt->clock_ms)
            rt->clock_ms = rt->next_timer_due;
        int rc = ev_rt_run_batch(rt, NULL, 0, false, true, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* One batch in record-time order: records of one short time window, cut
 * before the next timer is due; the batch's clock is its last record's time. */
static int apply_some(rebuild *b, rd_kafka_message_t **msgs, ev_error *err)
{
    ev_runtime *rt = b->rt;
    size_t cap = (size_t)rt->cfg->batch_size, n = 0;
    int64_t first = -1, last = 0;
    for (int i = pick(b); i >= 0 && n < cap; i = pick(b)) {
        int64_t ts = rec_time(b->parts[i].q[b->parts[i].head]);
        if (first < 0) {
            int rc = timers_until(b, ts, err);
            if (rc != 0)
                return rc;
            first = ts;
        } else if (ts >= rt->next_timer_due || ts - first > RB_WINDOW_MS) {
            break;
        }
        msgs[n++] = pop(b, i);
        last = ts;
    }
    if (n == 0)
        return 0;
    if (last > rt->clock_ms)
        rt->clock_ms = last;
    int rc = ev_rt_run_batch(rt, msgs, n, false, true, err);
    for (size_t i = 0; i < n; i++)
        rd_kafka_message_destroy(msgs[i]);
    b->records += n;
    return rc;
}

static int replay(rebuild *b, volatile sig_atomic_t *stop, ev_error *err)
{
    rd_kafka_message_t **msgs = calloc((size_t)b->rt->cfg->batch_size, sizeof(*msgs));
    if (msgs == NULL)
        return ev_error_set(err, EV_ENOMEM, "out of memory");
    int64_t idle_since = ev_mono_ms();
    int rc = 0;
    while (rc == 0) {
        if (stop != NULL && *stop) {
            rc = ev_error_set(err, EV_EINVAL, "interrupted");
            break;
        }
        int i = pick(b);
        bool unread = false;
        for (size_t k = 0; k < b->n_parts; k++)
            unread = unread || !part_read(&b->parts[k]);
        if (i == PICK_DONE && !unread)
            break;
        if (i >= 0)
            rc = apply_some(b, msgs, err);
        else
            rc = fill(b, &idle_since, err);
        if (rc == 0)
            rc = resume_drained(b, err);
    }
    free(msgs);
    if (rc == 0) /* what the live service had fired by the time the rebuild began */
        rc = timers_until(b, b->t_start, err);
    return rc;
}

/* ---- the outbox: published or not ---- */

static int outbox_row(void *arg, int64_t id, const char *topic, const char *key,
                      const void *value, size_t len, const char *headers_json)
{
    rebuild *b = arg;
    (void)key;
    (void)headers_json;
    ev_error e = {0};
    if (strcmp(topic, b->rt->dlq_topic) == 0) { /* dead-lettered live already */
        b->dlq_rows++;
        return ev_store_outbox_delete(b->rt->store, id, &e);
    }
    json_t *j = json_loadb(value, len, 0, NULL);
    const char *eid = json_string_value(json_object_get(j, "id"));
    const char *type = json_string_value(json_object_get(j, "type"));
    int rc = ev_rt_ids_add(b->would, eid ? eid : "?", type ? type : "?", topic, -1, id);
    if (rc == 0 && eid != NULL && ev_rt_ids_has(b->published, eid)) {
        b->matched++;
        rc = ev_store_outbox_delete(b->rt->store, id, &e);
    } else if (rc == 0) {
        b->kept++;
    }
    json_decref(j);
    return rc;
}

/* Drops the rows whose event is already on the topics, and the dead letters;
 * the others stay for the next start to relay. */
static int settle_outbox(rebuild *b, ev_error *err)
{
    int rc = ev_store_begin(b->rt->store, err);
    if (rc == 0)
        rc = ev_store_outbox_each(b->rt->store, 0, 0, outbox_row, b, err);
    if (rc == 0)
        return ev_store_commit(b->rt->store, err);
    ev_error e2 = {0};
    ev_store_rollback(b->rt->store, &e2);
    return rc;
}

/* ---- setup ---- */

/* Refuses a store that already holds state (--rebuild writes into it). */
static int check_fresh(rebuild *b, ev_error *err)
{
    int64_t inbox = 0, outbox = 0, timers = 0;
    int rc = ev_store_inbox_count(b->rt->store, &inbox, err);
    if (rc == 0)
        rc = ev_store_outbox_count(b->rt->store, &outbox, err);
    if (rc == 0)
        rc = ev_store_timers_count(b->rt->store, &timers, err);
    for (size_t i = 0; rc == 0 && i < b->n_parts; i++) {
        int64_t next = -1;
        if (b->parts[i].input)
            rc = ev_store_offset_get(b->rt->store, b->parts[i].topic,
                                     b->parts[i].partition, &next, err);
        if (rc == 0 && next >= 0)
            inbox++;
    }
    if (rc == 0 && (inbox > 0 || outbox > 0 || timers > 0))
        rc = ev_error_set(err, EV_EINVAL,
                          "the store is not empty (it has offsets, inbox, outbox or "
                          "timer rows): rebuild into a fresh store (a new data dir or "
                          "CHOREO_STORE_SCHEMA), or use --verify");
    return rc;
}

static int rt_setup(ev_runtime *rt, ev_error *err)
{
    rt->limits = ev_limits_default;
    if (rt->cfg->max_record > 0)
        rt->limits.max_record = (size_t)rt->cfg->max_record;
    rt->resend_from = INT64_MAX;
    rt->next_timer_due = INT64_MAX;
    rt->rebuild = true;
    snprintf(rt->source, sizeof(rt->source), "/choreo/%s", rt->def->name);
    char dlq[TOPIC_MAX];
    snprintf(dlq, sizeof(dlq), "dlq.%s", rt->def->name);
    snprintf(rt->instance, sizeof(rt->instance), "rebuild-%ld", (long)getpid());
    int rc = ev_config_topic(rt->cfg, dlq, rt->dlq_topic, sizeof(rt->dlq_topic), err);
    if (rc == 0)
        rc = ev_config_topic(rt->cfg, rt->def->name, rt->group, sizeof(rt->group), err);
    if (rc == 0)
        rc = ev_rt_load_contract(rt, err);
    if (rc == 0)
        rc = ev_rt_open_store(&rt->store, rt->def, rt->cfg, false, rt->instance, err);
    if (rc == 0)
        rc = ev_store_timers_next(rt->store, &rt->next_timer_due, err);
    return rc;
}

static void print_summary(const rebuild *b, const char *store_name)
{
    const ev_runtime_stats *s = &b->rt->st;
    size_t parts = 0;
    for (size_t i = 0; i < b->n_parts; i++)
        parts += b->parts[i].input;
    int64_t pending = 0;
    ev_error e = {0};
    ev_store_timers_count(b->rt->store, &pending, &e);
    printf("%s rebuild into %s: %" PRIu64 " records from %zu input partitions\n"
           "  applied %" PRIu64 ", skipped %" PRIu64 ", duplicates %" PRIu64
           ", dead letters %" PRIu64 "; timers fired %" PRIu64 ", pending %" PRId64 "\n"
           "  would emit %zu events: %zu already published, %zu not published (kept "
           "in the outbox for the next start to relay)\n",
           b->rt->def->name, store_name, b->records, parts, s->applied, s->skipped,
           s->deduped, s->dead_lettered, s->timers_fired, pending, b->matched + b->kept,
           b->matched, b->kept);
}

int ev_rt_rebuild(const ev_service_def *def, const ev_config *cfg,
                  const ev_rt_rebuild_opts *o, ev_rt_rebuild_result *res,
                  volatile sig_atomic_t *stop, ev_error *err)
{
    ev_runtime *rt = calloc(1, sizeof(*rt));
    rebuild b = {.rt = rt, .t_start = ev_now_ms()};
    b.published = ev_rt_ids_new();
    b.would = ev_rt_ids_new();
    int rc = 0;
    if (rt == NULL || b.published == NULL || b.would == NULL) {
        rc = ev_error_set(err, EV_ENOMEM, "out of memory");
        goto cleanup;
    }
    rt->def = def;
    rt->cfg = cfg;
    ev_store_tune_process();
    rc = rt_setup(rt, err);
    if (rc == 0)
        rc = consumer_new(&b, err);
    if (rc == 0)
        rc = plan(&b, err);
    if (rc == 0 && o->require_fresh)
        rc = check_fresh(&b, err);
    if (rc == 0)
        rc = replay(&b, stop, err);
    if (rc == 0)
        rc = settle_outbox(&b, err);
    if (rc == 0 && !o->quiet)
        print_summary(&b, o->store_name);
    if (rc == 0 && res != NULL && o->dump && def->dump != NULL)
        rc = def->dump(rt->store, &res->dump, err);
    if (rc == 0 && res != NULL) {
        res->published = b.published;
        res->would = b.would;
        b.published = b.would = NULL;
        res->kept = b.kept;
    }
cleanup: /* records first: rd_kafka_destroy waits for every one to be freed */
    for (size_t i = 0; i < b.n_parts; i++) {
        for (size_t k = 0; k < b.parts[i].n; k++)
            rd_kafka_message_destroy(b.parts[i].q[b.parts[i].head + k]);
        free(b.parts[i].q);
    }
    if (b.rk != NULL) {
        rd_kafka_consumer_close(b.rk);
        rd_kafka_destroy(b.rk);
    }
    free(b.parts);
    ev_rt_ids_free(b.published);
    ev_rt_ids_free(b.would);
    if (rt != NULL)
        ev_rt_free_state(rt);
    free(rt);
    return rc;
}
