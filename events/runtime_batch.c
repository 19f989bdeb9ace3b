/* SPDX-License-Identifier: MIT */
/* One batch in one transaction: each record's verdict (dedup, handler, skip,
 * retry, dead letter), optimistic then careful attempts, before_commit, commit. */
#include "binding.h"
#include "runtime_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define FAST_ABORT 1 /* internal: the optimistic attempt met a failing record */
/* After a batch lost a race with another instance, this instance's batches
 * wait their turn (ev_store_set_serial) for this long since the last loss. */
#define SERIAL_MS 10000

/* ---- applying one record ---- */

static const ev_handler *handler_for(const ev_service_def *def, const char *type)
{
    for (const ev_handler *h = def->handlers; h != NULL && h->type != NULL; h++) {
        if (strcmp(h->type, type) == 0)
            return h;
    }
    return NULL;
}

/* Runs the handler; the verdict for a parsed, known, valid, new event. */
static rec_result run_handler(ev_runtime *rt, const ev_handler *h, const ev_envelope *ev,
                              int64_t now, int *code, ev_error *herr)
{
    ev_ctx ctx = {.rt = rt, .cause = ev, .now_ms = now};
    int rc = h->fn(&ctx, ev, herr);
    if (rc == 0 && ctx.failed != 0) {
        rc = ctx.failed;
        *herr = ctx.fail_err;
    }
    if (rc != 0 && herr->text[0] == '\0')
        ev_error_set(herr, rc, "handler failed: %s", ev_error_name(rc));
    *code = rc;
    if (rc == 0)
        return REC_APPLIED;
    return rc == EV_ERETRY ? REC_RETRY : REC_DLQ;
}

/* Decides what one record is: the verdict and, on failure, f->code, f->why
 * (and the event's id and type when its handler ran). Store errors of the
 * runtime itself go to *fatal. */
static rec_result apply_record(ev_runtime *rt, const rd_kafka_message_t *m, int64_t now,
                               fast_fail *f, int *fatal, ev_error *err)
{
    ev_envelope ev;
    rec_result res;
    int64_t t0 = ev_metrics_now_us(), t1 = 0; /* per-hop figures: parse, handler */
    f->code = ev_binding_parse(&ev, m->payload, m->payload ? m->len : 0,
                               ev_binding_headers_of(m), &rt->limits, false, &f->why);
    if (f->code != 0)
        return REC_DLQ;
    ev_log_where w = {rd_kafka_topic_name(m->rkt), m->partition, m->offset, ev.id};
    const ev_handler *h = handler_for(rt->def, ev.type);
    if (h == NULL) {
        ev_log_at(EV_LOG_DEBUG, &w, "skipped unknown type", "type=%s", ev.type);
        res = REC_SKIPPED;
        goto cleanup;
    }
    f->code = ev_schema_validate_type(rt->schemas, ev.type,
                                      ev.data ? ev.data : json_null(), &f->why);
    if (f->code != 0) {
        res = REC_DLQ;
        goto cleanup;
    }
    t1 = ev_metrics_now_us();
    /* The id goes in first (one statement, not a lookup and an insert): a
     * failing handler undoes it with its attempt or savepoint. */
    bool fresh = false;
    *fatal = ev_store_inbox_claim(rt->store, ev.id, now, &fresh, err);
    if (*fatal != 0 || !fresh) {
        if (*fatal == 0)
            ev_log_at(EV_LOG_DEBUG, &w, "duplicate skipped", "type=%s", ev.type);
        res = REC_DEDUPED;
        goto cleanup;
    }
    res = run_handler(rt, h, &ev, now, &f->code, &f->why);
    if (res == REC_APPLIED) {
        ev_log_at(EV_LOG_DEBUG, &w, "applied", "type=%s", ev.type);
    } else {
        f->handler_ran = true;
        ev_rt_scopy(f->id, sizeof(f->id), ev.id);
        ev_rt_scopy(f->type, sizeof(f->type), ev.type);
    }
cleanup:
    ev_envelope_clear(&ev);
    if (t1 != 0) {
        rt->hop_parse_us += t1 - t0;
        rt->hop_handler_us += ev_metrics_now_us() - t1;
    }
    return res;
}

static void log_handler_failed(const rd_kafka_message_t *m, const fast_fail *f)
{
    if (!f->handler_ran)
        return;
    ev_log_where w = {rd_kafka_topic_name(m->rkt), m->partition, m->offset, f->id};
    char q[EV_ERROR_TEXT * 2];
    ev_log_at(f->res == REC_RETRY ? EV_LOG_INFO : EV_LOG_WARN, &w, "handler failed",
              "type=%s error=%s reason=%s", f->type, ev_error_name(f->code),
              ev_log_quote(q, sizeof(q), f->why.text));
}

/* Per-type counter: label = the peeked type, NULL when the peek could not say. */
static void count_now(ev_runtime *rt, ev_metric_counter c, const char *label,
                      const void *val, size_t len)
{
    if (label != NULL)
        ev_metrics_count(rt->metrics, c, label, 1);
    else
        ev_metrics_count_record(rt->metrics, c, val, len);
}

/* Noted for after the commit (an aborted attempt must not count). */
static void count_rec(ev_runtime *rt, ev_metric_counter c, const char *label,
                      const void *val, size_t len)
{
    if (rt->metrics == NULL)
        return;
    if (rt->n_mq == rt->cap_mq) {
        size_t cap = rt->cap_mq ? rt->cap_mq * 2 : 256;
        metric_note *q = realloc(rt->mq, cap * sizeof(*q));
        if (q == NULL) {
            count_now(rt, c, label, val, len); /* counted even if aborted */
            return;
        }
        rt->mq = q;
        rt->cap_mq = cap;
    }
    metric_note *n = &rt->mq[rt->n_mq++];
    n->c = c;
    n->labeled = label != NULL;
    if (label != NULL)
        ev_rt_scopy(n->type, sizeof(n->type), label);
    n->val = val;
    n->len = len;
}

static void count_flush(ev_runtime *rt)
{
    for (size_t i = 0; i < rt->n_mq; i++) {
        const metric_note *n = &rt->mq[i];
        count_now(rt, n->c, n->labeled ? n->type : NULL, n->val, n->len);
    }
    rt->n_mq = 0;
}

/* Tolerant reader, fast: a record whose top-level type has no handler is
 * checked without building its data and skipped (not in the inbox, offset
 * advances). false when the full path must run (it also dead-letters a record
 * that does not parse, with the same error as always). */
static bool skip_fast(ev_runtime *rt, const rd_kafka_message_t *m, const char *type,
                      const void *val, size_t len)
{
    if (type == NULL || handler_for(rt->def, type) != NULL)
        return false;
    ev_envelope ev;
    ev_error why = {0};
    if (ev_binding_parse(&ev, val, len, ev_binding_headers_of(m), &rt->limits, true,
                         &why) != 0)
        return false;
    ev_log_where w = {rd_kafka_topic_name(m->rkt), m->partition, m->offset, ev.id};
    ev_log_at(EV_LOG_DEBUG, &w, "skipped unknown type", "type=%s", ev.type);
    ev_envelope_clear(&ev);
    rt->st.skipped++;
    count_rec(rt, EV_MC_SKIPPED, type, val, len);
    return true;
}

/* The verdict on record index: the aborted optimistic attempt's when this is
 * the record that aborted it and nothing before it failed this time (its
 * handler runs once per attempt), else from applying it now. */
static rec_result verdict(ev_runtime *rt, const rd_kafka_message_t *m, size_t index,
                          int64_t now, fast_fail *f, int *fatal, ev_error *err)
{
    if (rt->careful && rt->fail.set && index == rt->fail.index && !rt->diverged) {
        *f = rt->fail;
        return f->res;
    }
    return apply_record(rt, m, now, f, fatal, err);
}

/* A failed record, in a careful run: undo its writes, retry or dead-letter.
 * 1 = offset advances, 0 = held for a retry, negative = fatal. */
static int record_failed(ev_runtime *rt, part_state *p, const rd_kafka_message_t *m,
                         size_t index, const fast_fail *f, ev_error *err)
{
    if (rt->fail.set && index < rt->fail.index)
        rt->diverged = true;
    log_handler_failed(m, f);
    int rc = ev_store_rollback_to(rt->store, err);
    if (rc != 0)
        return rc;
    if (f->res == REC_RETRY) {
        int r = ev_rt_retry_or_dlq(rt, p, m, f->code, &f->why, err);
        return r < 0 ? (err->code ? err->code : EV_ESTORE) : r;
    }
    rc = ev_rt_dlq_record(rt, m, f->code, f->why.text, err);
    return rc == 0 ? 1 : rc;
}

/* One record inside the batch transaction: 0, FAST_ABORT (optimistic attempt
 * met a failure), or a fatal error. */
static int process_record(ev_runtime *rt, const rd_kafka_message_t *m, size_t index,
                          int64_t now, ev_error *err)
{
    part_state *p = ev_rt_part_get(rt, rd_kafka_topic_name(m->rkt), m->partition);
    if (p == NULL)
        return ev_error_set(err, EV_ENOMEM, "partition table: out of memory");
    if (p->hold || p->resume_at != 0)
        return 0; /* re-read after the retry backoff */
    if (p->next >= 0 && m->offset < p->next)
        return 0; /* already applied (re-delivered across a rebalance) */
    rt->st.consumed++;
    const void *val = m->payload ? m->payload : "";
    size_t len = m->payload ? m->len : 0;
    char type[EV_TYPE_MAX];
    const char *label =
        ev_binding_peek_type(val, len, ev_binding_headers_of(m), type) ? type : NULL;
    count_rec(rt, EV_MC_CONSUMED, label, val, len);
    bool timer = false;
    int rc = ev_rt_timer_replay(rt, m, now, &timer, err);
    if (rc != 0)
        return rc;
    if (timer || skip_fast(rt, m, label, val, len)) {
        if (p->retry_offset == m->offset)
            p->retry_offset = -1;
        goto advance;
    }
    rc = rt->careful ? ev_store_savepoint(rt->store, err) : 0;
    if (rc != 0)
        return rc;
    int fatal = 0;
    fast_fail f = {0};
    rec_result res = verdict(rt, m, index, now, &f, &fatal, err);
    f.res = res; /* record_failed retries or dead-letters by it */
    if (fatal != 0)
        return fatal;
    if (ev_store_conflict(rt->store)) /* the batch runs again, nobody's fault */
        return ev_error_set(err, EV_ERETRY, "%s", f.why.text);
    if (res == REC_APPLIED || res == REC_SKIPPED || res == REC_DEDUPED) {
        rc = rt->careful ? ev_store_release(rt->store, err) : 0;
        rt->st.applied += res == REC_APPLIED;
        rt->st.skipped += res == REC_SKIPPED;
        rt->st.deduped += res == REC_DEDUPED;
        static const ev_metric_counter mc[] = {
            [REC_APPLIED] = EV_MC_APPLIED,
            [REC_SKIPPED] = EV_MC_SKIPPED,
            [REC_DEDUPED] = EV_MC_DEDUPED,
        };
        count_rec(rt, mc[res], label, val, len);
        if (p->retry_offset == m->offset)
            p->retry_offset = -1;
        if (rc != 0)
            return rc;
        goto advance;
    }
    if (!rt->careful) {
        /* a pipelined statement of an earlier record may be what failed: then
         * the careful run decides this record again */
        f.set = !ev_store_deferred_failed(rt->store);
        f.index = index;
        rt->fail = f;
        return FAST_ABORT;
    }
    count_rec(rt, res == REC_RETRY ? EV_MC_RETRIED : EV_MC_DEAD_LETTERED, label, val,
              len);
    rc = record_failed(rt, p, m, index, &f, err);
    if (rc <= 0)
        return rc; /* held (0) or fatal */
advance:
    p->next = m->offset + 1;
    p->dirty = true;
    return 0;
}

/* ---- the batch transaction ---- */

static int delete_delivered(ev_runtime *rt, ev_error *err)
{
    return ev_store_outbox_delete_ids(rt->store, rt->done, rt->n_done, err);
}

static int store_offsets(ev_runtime *rt, ev_error *err)
{
    for (size_t i = 0; i < rt->n_parts; i++) {
        part_state *p = &rt->parts[i];
        if (!p->dirty)
            continue;
        int rc = ev_store_offset_set(rt->store, p->topic, p->partition, p->next, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* After the commit: Kafka's committed offsets follow the DB (for lag watching). */
static void after_commit(ev_runtime *rt, size_t n_deleted)
{
    for (size_t i = 0; i < rt->n_parts; i++) {
        part_state *p = &rt->parts[i];
        p->hold = false;
        if (!p->dirty)
            continue;
        p->dirty = false;
        ev_error e = {0};
        if (rt->cons != NULL &&
            ev_consumer_store(rt->cons, p->topic, p->partition, p->next, &e) != 0) {
            ev_log_where w = {p->topic, p->partition, p->next, NULL};
            ev_log_at(EV_LOG_DEBUG, &w, "offset store skipped", "error=%s", e.text);
        }
    }
    if (n_deleted > 0) {
        memmove(rt->done, rt->done + n_deleted,
                (rt->n_done - n_deleted) * sizeof(*rt->done));
        rt->n_done -= n_deleted;
    }
}

static int batch_body(ev_runtime *rt, rd_kafka_message_t **msgs, size_t n, int64_t now,
                      bool prune, bool timers, ev_error *err)
{
    int rc = delete_delivered(rt, err);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = process_record(rt, msgs[i], i, now, err);
    if (rc == 0 && timers)
        rc = ev_rt_fire_due_timers(rt, now, err);
    if (rc == 0 && prune) {
        rc = ev_store_inbox_prune(rt->store, now - rt->cfg->inbox_ttl_ms, err);
        rt->last_prune = ev_mono_ms();
    }
    if (rc == 0)
        rc = store_offsets(rt, err);
    return rc;
}

/* What an aborted optimistic attempt must give back: counters and partitions. */
static bool snap_take(ev_runtime *rt, ev_runtime_stats *st, size_t *n_parts)
{
    if (rt->cap_snap < rt->n_parts) {
        part_state *q = realloc(rt->snap, rt->n_parts * sizeof(*q));
        if (q == NULL)
            return false;
        rt->snap = q;
        rt->cap_snap = rt->n_parts;
    }
    if (rt->n_parts > 0)
        memcpy(rt->snap, rt->parts, rt->n_parts * sizeof(*rt->parts));
    *st = rt->st;
    *n_parts = rt->n_parts;
    return true;
}

static void snap_restore(ev_runtime *rt, const ev_runtime_stats *st, size_t n_parts)
{
    rt->st = *st;
    if (n_parts > 0)
        memcpy(rt->parts, rt->snap, n_parts * sizeof(*rt->parts));
    for (size_t i = n_parts; i < rt->n_parts; i++) { /* met during the attempt */
        part_state *p = &rt->parts[i];
        *p = (part_state){
            .topic = p->topic, .partition = p->partition, .next = -1, .retry_offset = -1};
    }
    rt->n_mq = 0;
}

/* The optimistic attempt is pipelined (PostgreSQL: a round trip per read, not
 * per statement); a failure it cannot pin on one record runs the batch again,
 * carefully: one statement at a time, a savepoint per record. */
static int attempt(ev_runtime *rt, rd_kafka_message_t **msgs, size_t n, int64_t now,
                   bool prune, bool timers, ev_error *err)
{
    int rc = rt->careful ? ev_store_begin(rt->store, err)
                         : ev_store_begin_pipelined(rt->store, err);
    if (rc == 0)
        rc = batch_body(rt, msgs, n, now, prune, timers, err);
    if (rc == 0)
        rc = ev_store_flush(rt->store, err);
    if (rc != 0 && rc != FAST_ABORT && !rt->careful && !ev_store_conflict(rt->store) &&
        ev_store_deferred_failed(rt->store)) {
        rt->fail.set = false;
        return FAST_ABORT;
    }
    return rc;
}

/* The state a batch started from, to undo it without the database's help. */
typedef struct batch_start {
    bool taken; /* the partition snapshot exists */
    ev_runtime_stats st;
    size_t n_parts;
    int64_t timer_due;
    uint64_t work; /* applied + timers fired */
} batch_start;

/* The service's before_commit hook, if the batch did any work. */
static int call_before_commit(ev_runtime *rt, const batch_start *bs, int64_t now,
                              ev_error *why)
{
    if (rt->def->before_commit == NULL ||
        rt->st.applied + rt->st.timers_fired == bs->work)
        return 0;
    ev_ctx ctx = {.rt = rt, .now_ms = now};
    int rc = rt->def->before_commit(&ctx, why);
    if (rc == 0 && ctx.failed != 0) {
        rc = ctx.failed;
        *why = ctx.fail_err;
    }
    if (rc == 0)
        rc = ev_store_flush(rt->store, why); /* its pipelined writes */
    if (rc != 0 && why->text[0] == '\0')
        ev_error_set(why, rc, "before commit failed: %s", ev_error_name(rc));
    if (rc == 0)
        rt->hold_attempts = 0;
    return rc;
}

/* Pauses the record's partition until hold_until and seeks it back to the
 * record (the first of its partition in the batch: records come in order). */
static int hold_partition(ev_runtime *rt, const rd_kafka_message_t *m)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    part_state *p = ev_rt_part_get(rt, topic, m->partition);
    if (p == NULL)
        return EV_ENOMEM;
    if (p->resume_at == rt->hold_until)
        return 0; /* an earlier record of the batch held it */
    p->resume_at = rt->hold_until;
    ev_error e = {0};
    if (ev_consumer_pause(rt->cons, topic, m->partition, true, &e) != 0 ||
        ev_consumer_seek(rt->cons, topic, m->partition, m->offset, &e) != 0) {
        ev_log_where w = {topic, m->partition, m->offset, NULL};
        ev_log_at(EV_LOG_WARN, &w, "hold pause/seek failed", "error=%s", e.text);
    }
    return 0;
}

/* Backoff after a batch lost a race with another instance: short, doubling,
 * with jitter so that the two do not meet again (5 ms .. ~0.6 s). */
static int64_t conflict_backoff_ms(int attempts)
{
    int shift = attempts < 7 ? attempts : 7;
    int64_t base = (int64_t)5 << shift;
    return base / 2 + (int64_t)(rand() % (int)(base / 2 + 1));
}

/* before_commit failed, or the batch lost a race with another instance
 * (conflict): the whole batch is undone and re-read after a backoff, never
 * dead-lettered. Fatal only when the rollback fails or there is no snapshot. */
static int batch_retry(ev_runtime *rt, rd_kafka_message_t **msgs, size_t n,
                       const batch_start *bs, bool conflict, const ev_error *why,
                       ev_error *err)
{
    rt->n_mq = 0;
    int rc = ev_store_rollback(rt->store, err);
    if (rc == 0 && rt->rebuild) /* nothing to pause: the rebuild stops */
        rc = ev_error_set(err, why->code ? why->code : EV_ERETRY,
                          "batch failed during the rebuild: %s", why->text);
    if (rc == 0 && !bs->taken)
        rc = ev_error_set(err, why->code ? why->code : EV_ERETRY,
                          "batch retry (no snapshot to retry from): %s", why->text);
    if (rc != 0)
        return rc;
    snap_restore(rt, &bs->st, bs->n_parts);
    rt->next_timer_due = bs->timer_due;
    int attempts = conflict ? ++rt->conflict_attempts : ++rt->hold_attempts;
    if (conflict) { /* rows the instances share are hot: take turns for a while */
        rt->serial_until = ev_mono_ms() + SERIAL_MS;
        ev_store_set_serial(rt->store, true);
    }
    rt->st.retried++;
    int64_t wait =
        conflict ? conflict_backoff_ms(attempts) : ev_rt_backoff_ms(rt->cfg, attempts);
    rt->hold_until = ev_mono_ms() + (wait > 0 ? wait : 1);
    for (size_t i = 0; i < n; i++) {
        if (hold_partition(rt, msgs[i]) != 0)
            return ev_error_set(err, EV_ENOMEM, "partition table: out of memory");
    }
    char q[EV_ERROR_TEXT * 2];
    ev_log(conflict ? EV_LOG_INFO : EV_LOG_WARN,
           conflict ? "batch lost a race with another instance, rolled back for a retry"
                    : "before commit failed, batch rolled back for a retry",
           "records=%zu attempt=%d backoff_ms=%" PRId64 " error=%s reason=%s", n,
           attempts, wait, ev_error_name(why->code),
           ev_log_quote(q, sizeof(q), why->text));
    return 0;
}

/* Applies msgs (may be 0), due timers, deletions and pruning in one transaction:
 * first without a savepoint per record; if a record fails, that attempt is
 * rolled back and the batch runs again with savepoints (bench/hotpath: a
 * savepoint per record cost ~10,000 instructions/event). */
int ev_rt_run_batch(ev_runtime *rt, rd_kafka_message_t **msgs, size_t n, bool prune,
                    bool timers, ev_error *err)
{
    int64_t t0 = ev_metrics_now_us();
    int64_t now = rt->clock_ms > 0 ? rt->clock_ms : ev_now_ms();
    size_t n_deleted = rt->n_done;
    batch_start bs = {.timer_due = rt->next_timer_due,
                      .work = rt->st.applied + rt->st.timers_fired};
    rt->fail.set = false;
    rt->diverged = false;
    rt->n_mq = 0;
    if (rt->serial_until != 0 && ev_mono_ms() >= rt->serial_until) {
        rt->serial_until = 0;
        ev_store_set_serial(rt->store, false);
    }
    bs.taken = snap_take(rt, &bs.st, &bs.n_parts);
    rt->careful = !bs.taken;
    int rc = attempt(rt, msgs, n, now, prune, timers, err);
    if (rc == FAST_ABORT) {
        ev_error e2 = {0};
        rc = ev_store_rollback(rt->store, &e2);
        snap_restore(rt, &bs.st, bs.n_parts);
        rt->careful = true;
        if (rc == 0)
            rc = attempt(rt, msgs, n, now, prune, timers, err);
        else
            *err = e2;
    }
    rt->careful = false;
    ev_error why = {0};
    if (rc == 0 && call_before_commit(rt, &bs, now, &why) != 0)
        return batch_retry(rt, msgs, n, &bs, ev_store_conflict(rt->store), &why, err);
    int64_t c0 = ev_metrics_now_us();
    if (rc == 0)
        rc = ev_store_commit(rt->store, err);
    int64_t c1 = ev_metrics_now_us();
    if (rc != 0 && ev_store_conflict(rt->store) && bs.taken) {
        ev_error lost = *err;
        return batch_retry(rt, msgs, n, &bs, true, &lost, err);
    }
    if (rc != 0) {
        ev_error e2 = {0};
        ev_store_rollback(rt->store, &e2);
        rt->n_mq = 0;
        return rc;
    }
    rt->conflict_attempts = 0;
    count_flush(rt);
    after_commit(rt, n_deleted);
    rt->st.batches++;
    rt->st.last_commit_ms = ev_now_ms();
    rt->st.last_batch_us = c1 - t0;
    rt->hop_commit_us = c1;
    if (n > 0)
        ev_metrics_observe(rt->metrics, EV_MH_BATCH_SIZE, n);
    ev_metrics_observe(rt->metrics, EV_MH_COMMIT_US, (uint64_t)(c1 - c0));
    ev_metrics_observe(rt->metrics, EV_MH_BATCH_US, (uint64_t)(c1 - t0));
    return 0;
}
