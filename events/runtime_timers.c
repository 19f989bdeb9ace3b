/* SPDX-License-Identifier: MIT */
/* Timers: ev_timer_arm/ev_timer_disarm for handlers, and firing the due ones
 * inside the batch, each in its own savepoint, retried or dead-lettered. */
#include "binding.h"
#include "runtime_internal.h"

#include <stdio.h>

#include "log.h"

#define TIMERS_PER_BATCH 64

int ev_timer_arm(ev_ctx *ctx, const char *key, const char *kind, int64_t delay_ms,
                 ev_error *err)
{
    if (ctx == NULL || key == NULL || kind == NULL)
        return ev_error_set(err, EV_EINVAL, "timer arm: null argument");
    ev_timer t = {0};
    int nk = snprintf(t.key, sizeof(t.key), "%s", key);
    int nd = snprintf(t.kind, sizeof(t.kind), "%s", kind);
    if (nk < 0 || (size_t)nk >= sizeof(t.key) || nd < 0 || (size_t)nd >= sizeof(t.kind))
        return ev_error_set(err, EV_EINVAL, "timer %s/%s: key or kind too long", key,
                            kind);
    t.due_at = ctx->now_ms + (delay_ms < 0 ? 0 : delay_ms);
    if (ctx->cause != NULL) {
        const char *corr =
            ctx->cause->correlationid[0] ? ctx->cause->correlationid : ctx->cause->id;
        snprintf(t.correlationid, sizeof(t.correlationid), "%s", corr);
        snprintf(t.causationid, sizeof(t.causationid), "%s",
                 ctx->timer_causation ? ctx->timer_causation : ctx->cause->id);
    }
    ev_error local = {0};
    int rc = ev_store_timer_set(ctx->rt->store, &t, &local);
    if (rc != 0) {
        ev_rt_ctx_fail(ctx, rc, &local);
        if (err != NULL)
            *err = local;
        return rc;
    }
    if (t.due_at < ctx->rt->next_timer_due)
        ctx->rt->next_timer_due = t.due_at;
    return 0;
}

int ev_timer_disarm(ev_ctx *ctx, const char *key, const char *kind, ev_error *err)
{
    if (ctx == NULL || key == NULL || kind == NULL)
        return ev_error_set(err, EV_EINVAL, "timer disarm: null argument");
    ev_error local = {0};
    int rc = ev_store_timer_delete(ctx->rt->store, key, kind, &local);
    if (rc != 0) {
        ev_rt_ctx_fail(ctx, rc, &local);
        if (err != NULL)
            *err = local;
    }
    return rc;
}

/* One due timer in its own savepoint; nonzero only for fatal errors. */
static int fire_timer(ev_runtime *rt, const ev_timer *t, int64_t now, ev_error *err)
{
    ev_envelope syn = {0};
    char name[EV_SUBJECT_MAX + 40];
    snprintf(name, sizeof(name), "%.*s/%.*s", (int)sizeof(t->key), t->key,
             (int)sizeof(t->kind), t->kind);
    ev_uuid5(syn.id, name);
    ev_rt_scopy(syn.type, sizeof(syn.type), t->kind);
    ev_rt_scopy(syn.source, sizeof(syn.source), rt->source);
    ev_rt_scopy(syn.subject, sizeof(syn.subject), t->key);
    ev_time_format(syn.time, now);
    ev_rt_scopy(syn.correlationid, sizeof(syn.correlationid), t->correlationid);
    ev_rt_scopy(syn.causationid, sizeof(syn.causationid), t->causationid);
    int rc = ev_store_savepoint(rt->store, err);
    if (rc == 0) /* deleted first so that a handler may re-arm it */
        rc = ev_store_timer_delete(rt->store, t->key, t->kind, err);
    if (rc != 0)
        return rc;
    ev_ctx ctx = {.rt = rt,
                  .cause = &syn,
                  .now_ms = now,
                  .emit_causation = t->causationid,
                  .timer_causation = t->causationid};
    ev_error why = {0};
    int code = rt->def->on_timer ? rt->def->on_timer(&ctx, t, &why) : 0;
    if (code == 0 && ctx.failed != 0) {
        code = ctx.failed;
        why = ctx.fail_err;
    }
    rt->st.timers_fired++;
    if (ev_store_conflict(rt->store))
        return ev_error_set(err, EV_ERETRY, "%s", why.text);
    if (code == 0)
        return ev_store_release(rt->store, err);
    rc = ev_store_rollback_to(rt->store, err);
    if (rc != 0)
        return rc;
    char q[EV_ERROR_TEXT * 2];
    ev_log(code == EV_ERETRY ? EV_LOG_INFO : EV_LOG_WARN, "timer failed",
           "key=%s kind=%s error=%s reason=%s", t->key, t->kind, ev_error_name(code),
           ev_log_quote(q, sizeof(q), why.text));
    if (code == EV_ERETRY) {
        ev_timer again = *t;
        again.due_at = now + ev_rt_backoff_ms(rt->cfg, 1);
        rt->st.retried++;
        return ev_store_timer_set(rt->store, &again, err);
    }
    rc = ev_store_timer_delete(rt->store, t->key, t->kind, err);
    return rc == 0 ? ev_rt_dlq_timer(rt, &syn, code, why.text, err) : rc;
}

int ev_rt_fire_due_timers(ev_runtime *rt, int64_t now, ev_error *err)
{
    if (now < rt->next_timer_due)
        return 0;
    ev_timer due[TIMERS_PER_BATCH];
    size_t n = 0;
    int rc = ev_store_timers_due(rt->store, now, due, TIMERS_PER_BATCH, &n, err);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = fire_timer(rt, &due[i], now, err);
    if (rc == 0)
        rc = ev_store_timers_next(rt->store, &rt->next_timer_due, err);
    return rc;
}

/* The timer of a replayed dead letter, when it is this service's: its kind
 * (header timer.kind), key, flow and cause, due now. */
static bool replayed_timer(ev_runtime *rt, const rd_kafka_message_t *m, const void *kind,
                           size_t kind_len, int64_t now, ev_timer *t)
{
    ev_envelope syn;
    ev_error why = {0};
    if (ev_binding_parse(&syn, m->payload ? m->payload : "", m->payload ? m->len : 0,
                         ev_binding_headers_of(m), &rt->limits, true, &why) != 0)
        return false;
    bool mine = rt->def->on_timer != NULL && strcmp(syn.source, rt->source) == 0 &&
                kind_len == strlen(syn.type) && memcmp(kind, syn.type, kind_len) == 0 &&
                kind_len < sizeof(t->kind) && syn.subject[0] != '\0' &&
                strlen(syn.subject) < sizeof(t->key);
    if (mine) {
        *t = (ev_timer){.due_at = now};
        ev_rt_scopy(t->key, sizeof(t->key), syn.subject);
        ev_rt_scopy(t->kind, sizeof(t->kind), syn.type);
        ev_rt_scopy(t->correlationid, sizeof(t->correlationid), syn.correlationid);
        ev_rt_scopy(t->causationid, sizeof(t->causationid), syn.causationid);
    }
    ev_envelope_clear(&syn);
    return mine;
}

int ev_rt_timer_replay(ev_runtime *rt, const rd_kafka_message_t *m, int64_t now,
                       bool *handled, ev_error *err)
{
    const rd_kafka_headers_t *h = ev_binding_headers_of(m);
    const void *kind = NULL;
    size_t kind_len = 0;
    *handled = false;
    if (h == NULL ||
        rd_kafka_header_get_last(h, "timer.kind", &kind, &kind_len) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        kind == NULL)
        return 0;
    *handled = true;
    ev_timer t;
    ev_log_where w = {rd_kafka_topic_name(m->rkt), m->partition, m->offset, NULL};
    if (!replayed_timer(rt, m, kind, kind_len, now, &t)) {
        ev_log_at(EV_LOG_DEBUG, &w, "skipped another service's timer replay", NULL);
        rt->st.skipped++;
        return 0;
    }
    int rc = ev_store_timer_set(rt->store, &t, err);
    if (rc != 0)
        return rc;
    if (t.due_at < rt->next_timer_due)
        rt->next_timer_due = t.due_at;
    rt->st.applied++;
    ev_log_at(EV_LOG_INFO, &w, "timer re-armed from its dead letter", "key=%s kind=%s",
              t.key, t.kind);
    return 0;
}
