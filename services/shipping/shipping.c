/* SPDX-License-Identifier: MIT */
/* shipping: one shipment per confirmed order, dispatched by a timer unless the
 * order is cancelled first; a cancel that crossed the dispatch is a return. */
#include "shipping.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

#define SHP_TIMER "shipment.dispatch"

/* Shipment states: SCHEDULED, DISPATCHED, CANCELLED, RETURNED, and
 * CANCEL_SEEN (order.cancelled came first: never schedule). */
static const ev_migration shp_migrations[] = {
    {1, "CREATE TABLE shipments ("
        " order_id TEXT PRIMARY KEY,"
        " shipment_id TEXT NOT NULL DEFAULT '',"
        " status TEXT NOT NULL,"
        " updated_at BIGINT NOT NULL DEFAULT 0)"},
};

/* ---- SQL helpers -------------------------------------------------------- */

/* The shipment's status and id ("" when there is none). */
static int shp_load(ev_ctx *ctx, const char *order_id, char *status, size_t scap,
                    char *sid, size_t icap, ev_error *err)
{
    status[0] = '\0';
    sid[0] = '\0';
    ev_stmt *st = ev_store_bind(
        ev_ctx_store(ctx), err,
        "SELECT status, shipment_id FROM shipments WHERE order_id = ?1", "s", order_id);
    if (!st)
        return err->code;
    int rc = ev_stmt_step(st, err);
    if (rc != 1)
        return rc;
    ev_stmt_text_copy(st, 0, status, scap);
    ev_stmt_text_copy(st, 1, sid, icap);
    ev_stmt_reset(st);
    return 0;
}

static int shp_set(ev_ctx *ctx, const char *order_id, const char *sid, const char *status,
                   ev_error *err)
{
    return ev_store_exec(
        ev_store_bind(ev_ctx_store(ctx), err,
                      "INSERT INTO shipments(order_id, shipment_id, status, updated_at)"
                      " VALUES(?1, ?2, ?3, ?4) ON CONFLICT(order_id) DO UPDATE SET"
                      " shipment_id = ?2, status = ?3, updated_at = ?4",
                      "sssi", order_id, sid, status, (int64_t)ev_ctx_now_ms(ctx)),
        err);
}

/* Sets the status and emits type {order_id, shipment_id}. */
static int shp_move(ev_ctx *ctx, const char *order_id, const char *sid,
                    const char *status, const char *type, ev_error *err)
{
    int rc = shp_set(ctx, order_id, sid, status, err);
    if (rc < 0)
        return rc;
    ev_log(EV_LOG_DEBUG, "shipment", "order_id=%s shipment_id=%s status=%s", order_id,
           sid, status);
    return ev_emit(ctx, type,
                   json_pack("{s:s, s:s}", "order_id", order_id, "shipment_id", sid),
                   err);
}

/* ---- handlers ----------------------------------------------------------- */

/* Every transition below upserts the shipment's row it read, so on PostgreSQL
 * a concurrent change to it is a conflict (retried). The paths that write
 * nothing rest on states that never go back (a row exists; not SCHEDULED any
 * more), so a stale read of them decides as a current one would. */

/* Schedules the shipment: the row first, inserted only if the order has none
 * (a repeated confirmation, or one after the cancel was seen, inserts
 * nothing and is ignored). */
static int shp_on_confirmed(ev_ctx *ctx, const ev_envelope *ev, ev_error *err)
{
    const char *id;
    char status[16], sid[EV_ID_MAX];
    int rc = ev_envelope_data_str(ev, "order_id", &id, err);
    if (rc < 0)
        return rc;
    ev_derived_id(sid, "shp-", id);
    ev_stmt *st =
        ev_store_bind(ev_ctx_store(ctx), err,
                      "INSERT INTO shipments(order_id, shipment_id, status, updated_at)"
                      " VALUES(?1, ?2, 'SCHEDULED', ?3) ON CONFLICT(order_id) DO NOTHING",
                      "ssi", id, sid, (int64_t)ev_ctx_now_ms(ctx));
    rc = ev_store_exec(st, err);
    if (rc == 0 && ev_stmt_changes(st) != 1) {
        char had[EV_ID_MAX];
        rc = shp_load(ctx, id, status, sizeof(status), had, sizeof(had), err);
        if (rc == 0)
            ev_log(EV_LOG_INFO, "confirmed order already handled",
                   "order_id=%s status=%s", id, status);
        return rc;
    }
    if (rc < 0)
        return rc;
    ev_log(EV_LOG_DEBUG, "shipment", "order_id=%s shipment_id=%s status=SCHEDULED", id,
           sid);
    rc = ev_emit(ctx, "shipment.scheduled",
                 json_pack("{s:s, s:s}", "order_id", id, "shipment_id", sid), err);
    if (rc < 0)
        return rc;
    return ev_timer_arm(ctx, id, SHP_TIMER, ev_ctx_config(ctx)->dispatch_delay_ms, err);
}

static int shp_on_cancelled(ev_ctx *ctx, const ev_envelope *ev, ev_error *err)
{
    const char *id;
    char status[16], sid[EV_ID_MAX];
    int rc = ev_envelope_data_str(ev, "order_id", &id, err);
    if (rc == 0)
        rc = shp_load(ctx, id, status, sizeof(status), sid, sizeof(sid), err);
    if (rc < 0)
        return rc;
    if (!status[0])
        return shp_set(ctx, id, "", "CANCEL_SEEN", err);
    if (strcmp(status, "SCHEDULED") == 0) {
        rc = ev_timer_disarm(ctx, id, SHP_TIMER, err);
        return rc < 0 ? rc
                      : shp_move(ctx, id, sid, "CANCELLED", "shipment.cancelled", err);
    }
    if (strcmp(status, "DISPATCHED") == 0)
        return shp_move(ctx, id, sid, "RETURNED", "shipment.returned", err);
    return 0;
}

/* shipment.dispatch: the point of no return, unless cancelled before: one
 * UPDATE conditional on SCHEDULED. */
static int shp_on_timer(ev_ctx *ctx, const ev_timer *t, ev_error *err)
{
    char sid[EV_ID_MAX];
    if (strcmp(t->kind, SHP_TIMER) != 0)
        return 0;
    ev_stmt *st =
        ev_store_bind(ev_ctx_store(ctx), err,
                      "UPDATE shipments SET status = 'DISPATCHED', updated_at = ?2"
                      " WHERE order_id = ?1 AND status = 'SCHEDULED'"
                      " RETURNING shipment_id",
                      "si", t->key, (int64_t)ev_ctx_now_ms(ctx));
    if (st == NULL)
        return err->code;
    int rc = ev_stmt_step(st, err);
    if (rc == 1)
        ev_stmt_text_copy(st, 0, sid, sizeof(sid));
    ev_stmt_reset(st);
    if (rc <= 0)
        return rc; /* no longer scheduled (cancelled) */
    ev_log(EV_LOG_DEBUG, "shipment", "order_id=%s shipment_id=%s status=DISPATCHED",
           t->key, sid);
    return ev_emit(ctx, "shipment.dispatched",
                   json_pack("{s:s, s:s}", "order_id", t->key, "shipment_id", sid), err);
}

/* ---- dump --------------------------------------------------------------- */

static int shp_dump(ev_store *s, json_t **out, ev_error *err)
{
    json_t *list = json_array();
    ev_stmt *st = ev_store_stmt(s,
                                "SELECT order_id, shipment_id, status FROM shipments"
                                " ORDER BY order_id",
                                err);
    int rc = st ? ev_stmt_step(st, err) : err->code;
    for (; rc == 1; rc = ev_stmt_step(st, err))
        json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "order_id",
                                              ev_stmt_text(st, 0), "shipment_id",
                                              ev_stmt_text(st, 1), "status",
                                              ev_stmt_text(st, 2)));
    if (rc < 0) {
        json_decref(list);
        return rc;
    }
    *out = json_pack("{s:s, s:o}", "service", "shipping", "shipments", list);
    return *out ? 0 : ev_error_set(err, EV_ENOMEM, "shipping dump: out of memory");
}

static const ev_handler shp_handlers[] = {
    {"order.confirmed", shp_on_confirmed},
    {"order.cancelled", shp_on_cancelled},
    {NULL, NULL},
};

static const char *const shp_emits[] = {"shipment.scheduled", "shipment.dispatched",
                                        "shipment.cancelled", "shipment.returned", NULL};

const ev_service_def shipping_def = {
    .name = "shipping",
    .handlers = shp_handlers,
    .emits = shp_emits,
    .migrations = shp_migrations,
    .n_migrations = sizeof(shp_migrations) / sizeof(shp_migrations[0]),
    .on_timer = shp_on_timer,
    .dump = shp_dump,
};
