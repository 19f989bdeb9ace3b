/* SPDX-License-Identifier: MIT */
/* What a handler sees: ev_emit (validated, keyed, written to the outbox in the
 * batch's transaction) and the ev_ctx accessors. */
#include "runtime_internal.h"

#include <stdio.h>
#include <stdlib.h>

#include "log.h"

void ev_rt_ctx_fail(ev_ctx *ctx, int rc, const ev_error *err)
{
    if (ctx->failed != 0)
        return;
    ctx->failed = rc;
    if (err != NULL)
        ctx->fail_err = *err;
    else
        ev_error_set(&ctx->fail_err, rc, "%s", ev_error_name(rc));
}

/* The record key (and subject) of an event: its data's key field. */
static int key_of(const json_t *data, const char *field, char *out, size_t cap,
                  ev_error *err)
{
    const json_t *v = json_is_object(data) ? json_object_get(data, field) : NULL;
    int n = -1;
    if (json_is_string(v))
        n = snprintf(out, cap, "%s", json_string_value(v));
    else if (json_is_integer(v))
        n = snprintf(out, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    if (n < 0)
        return ev_error_set(err, EV_ESCHEMA, "data has no string key field %s", field);
    if ((size_t)n >= cap)
        return ev_error_set(err, EV_ESCHEMA, "key field %s longer than %zu bytes", field,
                            cap - 1);
    return 0;
}

/* Where a deferred event comes from (ev_emit_deferred); NULL for ev_emit. */
typedef struct emit_origin {
    const char *id, *correlationid, *causationid;
} emit_origin;

static int emit_checked(ev_ctx *ctx, const char *type, json_t *data, const emit_origin *o,
                        ev_error *err)
{
    ev_runtime *rt = ctx->rt;
    const ev_event_route *r = ev_contract_route(rt->contract, type);
    char subject[EV_SUBJECT_MAX];
    int rc;
    if (ctx->cause == NULL)
        rc = ev_error_set(err, EV_EINVAL, "emit %s: no event or timer being handled",
                          type);
    else if (r == NULL)
        rc = ev_error_set(err, EV_EUNKNOWN, "emit %s: type not in the contract", type);
    else
        rc = key_of(data, r->key_field, subject, sizeof(subject), err);
    if (rc == 0) {
        rc = ev_schema_validate_type(rt->schemas, type, data, err);
        if (rc == EV_ESCHEMA)
            ev_error_set(err, EV_ESCHEMA, "emit %s: invalid data: %.100s", type,
                         err ? err->text : "");
    }
    if (rc != 0) {
        json_decref(data);
        return rc;
    }
    ev_envelope out, origin = {0};
    const ev_envelope *from = ctx->cause;
    if (o != NULL) { /* the id comes from the origin, the same whatever released it */
        ev_rt_scopy(origin.id, sizeof(origin.id), o->id);
        ev_rt_scopy(origin.correlationid, sizeof(origin.correlationid),
                    o->correlationid && o->correlationid[0] ? o->correlationid : o->id);
        from = &origin;
    }
    rc = ev_envelope_derive(&out, from, type, rt->source, subject, o ? 0 : ctx->n_emits,
                            data, err);
    if (rc != 0)
        return rc;
    const char *causation =
        o ? (o->causationid && o->causationid[0] ? o->causationid : ctx->cause->id)
          : NULL;
    if (ctx->emit_causation != NULL && ctx->emit_causation[0] != '\0' &&
        (o == NULL || o->causationid == NULL || !o->causationid[0]))
        causation = ctx->emit_causation;
    if (causation != NULL)
        snprintf(out.causationid, sizeof(out.causationid), "%s", causation);
    char *buf = NULL;
    size_t len = 0;
    char topic[TOPIC_MAX];
    rc = ev_envelope_serialize(&out, &rt->limits, &buf, &len, err);
    if (rc == 0)
        rc = ev_config_topic(rt->cfg, r->topic, topic, sizeof(topic), err);
    if (rc == 0)
        rc = ev_store_outbox_add(rt->store, topic, subject, buf, len, CE_HEADERS, NULL,
                                 err);
    if (rc == 0) {
        ctx->n_emits++;
        rt->st.emitted++;
        rt->relay_pending = true;
        ev_log_where w = {topic, -1, -1, out.id};
        ev_log_at(EV_LOG_DEBUG, &w, "emitted", "type=%s causation=%s", type,
                  out.causationid);
    }
    free(buf);
    ev_envelope_clear(&out);
    return rc;
}

int ev_emit(ev_ctx *ctx, const char *type, json_t *data, ev_error *err)
{
    if (ctx == NULL || type == NULL) {
        json_decref(data);
        return ev_error_set(err, EV_EINVAL, "emit: null argument");
    }
    ev_error local = {0};
    int rc = emit_checked(ctx, type, data, NULL, &local);
    if (rc != 0) {
        ev_rt_ctx_fail(ctx, rc, &local);
        if (err != NULL)
            *err = local;
    }
    return rc;
}

int ev_emit_deferred(ev_ctx *ctx, const char *type, json_t *data, const char *origin_id,
                     const char *correlationid, const char *causationid, ev_error *err)
{
    if (ctx == NULL || type == NULL) {
        json_decref(data);
        return ev_error_set(err, EV_EINVAL, "emit: null argument");
    }
    if (origin_id == NULL || origin_id[0] == '\0') /* not known: an ordinary emit */
        return ev_emit(ctx, type, data, err);
    emit_origin o = {origin_id, correlationid, causationid};
    ev_error local = {0};
    int rc = emit_checked(ctx, type, data, &o, &local);
    if (rc != 0) {
        ev_rt_ctx_fail(ctx, rc, &local);
        if (err != NULL)
            *err = local;
    }
    return rc;
}

ev_store *ev_ctx_store(ev_ctx *ctx)
{
    return ctx->rt->store;
}

const ev_config *ev_ctx_config(ev_ctx *ctx)
{
    return ctx->rt->cfg;
}

const char *ev_ctx_service(ev_ctx *ctx)
{
    return ctx->rt->def->name;
}

int64_t ev_ctx_now_ms(ev_ctx *ctx)
{
    return ctx->now_ms;
}

ev_stmt *ev_ctx_stmt(ev_ctx *ctx, const char *sql, ev_error *err)
{
    return ev_store_stmt(ctx->rt->store, sql, err);
}
