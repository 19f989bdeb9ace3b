/* SPDX-License-Identifier: MIT */
/* orders: the life cycle of an order. Keeps every fact it has seen per order
 * (they arrive in any order across topics) and decides when enough is known. */
#include "orders.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

/* Status of a row: UNPLACED holds facts seen before order.placed. */
#define ORD_UNPLACED "UNPLACED"
#define ORD_PENDING "PENDING"
#define ORD_CONFIRMED "CONFIRMED"
#define ORD_REJECTED "REJECTED"
#define ORD_CANCELLED "CANCELLED"
#define ORD_COMPLETED "COMPLETED"

#define ORD_TIMER "order.timeout"

static const ev_migration ord_migrations[] = {
    {1, "CREATE TABLE orders ("
        " order_id TEXT PRIMARY KEY,"
        " customer_id TEXT NOT NULL DEFAULT '',"
        " total_cents BIGINT NOT NULL DEFAULT 0,"
        " currency TEXT NOT NULL DEFAULT '',"
        " status TEXT NOT NULL DEFAULT 'UNPLACED',"
        " reserved BIGINT NOT NULL DEFAULT 0,"
        " out_of_stock BIGINT NOT NULL DEFAULT 0,"
        " authorized BIGINT NOT NULL DEFAULT 0,"
        " declined BIGINT NOT NULL DEFAULT 0,"
        " dispatched BIGINT NOT NULL DEFAULT 0,"
        " cancel_requested BIGINT NOT NULL DEFAULT 0,"
        " payment_id TEXT NOT NULL DEFAULT '',"
        " reason TEXT NOT NULL DEFAULT '',"
        " updated_at BIGINT NOT NULL DEFAULT 0)"},
    /* The order.placed event (id, flow): every decision on the order is an
     * event of its flow, derived from it (ev_emit_deferred). */
    {2, "ALTER TABLE orders ADD COLUMN origin_id TEXT NOT NULL DEFAULT '';"
        "ALTER TABLE orders ADD COLUMN origin_corr TEXT NOT NULL DEFAULT '';"},
};

typedef struct ord_row {
    char status[16];
    int reserved, out_of_stock, authorized, declined, dispatched, cancel_requested;
    char payment_id[EV_ID_MAX];
    char origin_id[EV_ID_MAX], origin_corr[EV_ID_MAX]; /* its order.placed */
} ord_row;

/* ---- SQL helpers -------------------------------------------------------- */

static const char *ord_str(const json_t *data, const char *field)
{
    return json_string_value(json_object_get(data, field));
}

/* The columns of an ord_row, as ord_read reads them. */
#define ORD_COLS                                                                         \
    "status, reserved, out_of_stock, authorized, declined, dispatched,"                  \
    " cancel_requested, payment_id, origin_id, origin_corr"

/* Steps st (a SELECT or RETURNING of ORD_COLS) into *r; *found false when it
 * gives no row. */
static int ord_read(ev_stmt *st, ord_row *r, bool *found, ev_error *err)
{
    if (!st)
        return err->code;
    memset(r, 0, sizeof(*r));
    int rc = ev_stmt_step(st, err);
    *found = rc == 1;
    if (rc != 1)
        return rc;
    ev_stmt_text_copy(st, 0, r->status, sizeof(r->status));
    r->reserved = ev_stmt_int(st, 1) != 0;
    r->out_of_stock = ev_stmt_int(st, 2) != 0;
    r->authorized = ev_stmt_int(st, 3) != 0;
    r->declined = ev_stmt_int(st, 4) != 0;
    r->dispatched = ev_stmt_int(st, 5) != 0;
    r->cancel_requested = ev_stmt_int(st, 6) != 0;
    ev_stmt_text_copy(st, 7, r->payment_id, sizeof(r->payment_id));
    ev_stmt_text_copy(st, 8, r->origin_id, sizeof(r->origin_id));
    ev_stmt_text_copy(st, 9, r->origin_corr, sizeof(r->origin_corr));
    ev_stmt_reset(st);
    return 0;
}

/* Reads the row of an order; *found false when there is none. */
static int ord_load(ev_ctx *ctx, const char *order_id, ord_row *r, bool *found,
                    ev_error *err)
{
    return ord_read(ev_store_bind(ev_ctx_store(ctx), err,
                                  "SELECT " ORD_COLS " FROM orders WHERE order_id = ?1",
                                  "s", order_id),
                    r, found, err);
}

/* ---- transitions -------------------------------------------------------- */

/* Moves the order to status, emits type with data (stolen) in the order's
 * flow (r: its row before the move, with its order.placed) and drops the
 * timeout timer when the order leaves PENDING. */
static int ord_transition(ev_ctx *ctx, const char *order_id, const ord_row *r,
                          const char *status, const char *reason, const char *type,
                          json_t *data, ev_error *err)
{
    int rc = ev_store_exec(
        ev_store_bind(ev_ctx_store(ctx), err,
                      "UPDATE orders SET status = ?2, reason = ?3, updated_at = ?4"
                      " WHERE order_id = ?1",
                      "sssi", order_id, status, reason ? reason : "",
                      (int64_t)ev_ctx_now_ms(ctx)),
        err);
    if (rc < 0) {
        json_decref(data);
        return rc;
    }
    rc = ev_emit_deferred(ctx, type, data, r->origin_id, r->origin_corr, NULL, err);
    if (rc < 0)
        return rc;
    if (strcmp(r->status, ORD_PENDING) == 0) /* armed while pending, only then */
        rc = ev_timer_disarm(ctx, order_id, ORD_TIMER, err);
    ev_log(EV_LOG_DEBUG, "order transition", "order_id=%s status=%s reason=%s", order_id,
           status, reason ? reason : "-");
    return rc;
}

static int ord_reject(ev_ctx *ctx, const char *order_id, const ord_row *r,
                      const char *reason, ev_error *err)
{
    json_t *d = json_pack("{s:s, s:s}", "order_id", order_id, "reason", reason);
    return ord_transition(ctx, order_id, r, ORD_REJECTED, reason, "order.rejected", d,
                          err);
}

static int ord_cancel(ev_ctx *ctx, const char *order_id, const ord_row *r,
                      const char *reason, ev_error *err)
{
    json_t *d = json_pack("{s:s, s:s}", "order_id", order_id, "reason", reason);
    return ord_transition(ctx, order_id, r, ORD_CANCELLED, reason, "order.cancelled", d,
                          err);
}

/* Decides what the known facts of a placed order (its row r) allow. */
static int ord_decide(ev_ctx *ctx, const char *order_id, const ord_row *r, ev_error *err)
{
    if (strcmp(r->status, ORD_PENDING) == 0) {
        if (r->out_of_stock)
            return ord_reject(ctx, order_id, r, "out_of_stock", err);
        if (r->declined)
            return ord_reject(ctx, order_id, r, "payment_declined", err);
        if (r->reserved && r->authorized) {
            json_t *d = json_pack("{s:s, s:s}", "order_id", order_id, "payment_id",
                                  r->payment_id);
            return ord_transition(ctx, order_id, r, ORD_CONFIRMED, NULL,
                                  "order.confirmed", d, err);
        }
        return 0;
    }
    if (strcmp(r->status, ORD_CONFIRMED) == 0 && r->dispatched) {
        json_t *d = json_pack("{s:s}", "order_id", order_id);
        return ord_transition(ctx, order_id, r, ORD_COMPLETED, NULL, "order.completed", d,
                              err);
    }
    return 0;
}

/* ---- handlers ----------------------------------------------------------- */

/* Every decision writes the order's row it read (upsert or UPDATE), so on
 * PostgreSQL a concurrent change to it is a conflict (retried). The paths that
 * write nothing rest on states that never go back (placed, final, no longer
 * PENDING), so a stale read of them decides as a current one would. */

static int ord_on_placed(ev_ctx *ctx, const ev_envelope *ev, ev_error *err)
{
    const char *id;
    int rc = ev_envelope_data_str(ev, "order_id", &id, err);
    if (rc < 0)
        return rc;
    const char *customer = ord_str(ev->data, "customer_id");
    const char *currency = ord_str(ev->data, "currency");
    int64_t total = json_integer_value(json_object_get(ev->data, "total_cents"));
    char origin_corr[EV_ID_MAX];
    snprintf(origin_corr, sizeof(origin_corr), "%s",
             ev->correlationid[0] ? ev->correlationid : ev->id);
    /* Places a new order or one whose facts came first (UNPLACED); a placed
     * one is left as it is and the upsert returns no row. */
    ord_row now; /* the row the upsert wrote */
    bool found;
    rc = ord_read(
        ev_store_bind(ev_ctx_store(ctx), err,
                      "INSERT INTO orders(order_id, customer_id, total_cents, currency,"
                      " status, updated_at, origin_id, origin_corr)"
                      " VALUES(?1, ?2, ?3, ?4, 'PENDING', ?5, ?6, ?7)"
                      " ON CONFLICT(order_id) DO UPDATE SET customer_id = ?2,"
                      " total_cents = ?3, currency = ?4, status = 'PENDING',"
                      " updated_at = ?5, origin_id = ?6, origin_corr = ?7"
                      " WHERE orders.status = 'UNPLACED' RETURNING " ORD_COLS,
                      "ssisiss", id, customer ? customer : "", total,
                      currency ? currency : "", (int64_t)ev_ctx_now_ms(ctx), ev->id,
                      origin_corr),
        &now, &found, err);
    if (rc < 0)
        return rc;
    if (!found) {
        ev_log(EV_LOG_WARN, "order placed again, ignored", "order_id=%s event_id=%s", id,
               ev->id);
        return 0;
    }
    rc = ev_timer_arm(ctx, id, ORD_TIMER, ev_ctx_config(ctx)->order_timeout_ms, err);
    if (rc < 0)
        return rc;
    if (now.cancel_requested)
        return ord_cancel(ctx, id, &now, "customer", err);
    return ord_decide(ctx, id, &now, err);
}

/* A fact about an order from another service: sets its flag, then decides.
 * The upsert writes the order's row before ord_decide reads it, so on
 * PostgreSQL a concurrent change to the row is a conflict (retried), never a
 * decision on stale facts. sql binds ?1 order_id, ?2 now and, when
 * with_payment, ?3 payment_id. */
static int ord_fact(ev_ctx *ctx, const ev_envelope *ev, const char *sql,
                    bool with_payment, ev_error *err)
{
    const char *id;
    int rc = ev_envelope_data_str(ev, "order_id", &id, err);
    if (rc < 0)
        return rc;
    ev_store *s = ev_ctx_store(ctx);
    int64_t now = ev_ctx_now_ms(ctx);
    const char *pay = ord_str(ev->data, "payment_id");
    ev_stmt *st = with_payment
                      ? ev_store_bind(s, err, sql, "sis", id, now, pay ? pay : "")
                      : ev_store_bind(s, err, sql, "si", id, now);
    ord_row r;
    bool found;
    rc = ord_read(st, &r, &found, err);
    if (rc < 0)
        return rc;
    if (!found)
        return ev_error_set(err, EV_ESTORE, "order %s: upsert returned no row", id);
    return ord_decide(ctx, id, &r, err);
}

#define ORD_FACT_SQL(col)                                                                \
    "INSERT INTO orders(order_id, " col ", updated_at) VALUES(?1, 1, ?2)"                \
    " ON CONFLICT(order_id) DO UPDATE SET " col " = 1, updated_at = ?2"                  \
    " RETURNING " ORD_COLS

static int ord_on_reserved(ev_ctx *ctx, const ev_envelope *ev, ev_error *err)
{
    return ord_fact(ctx, ev, ORD_FACT_SQL("reserved"), false, err);
}

static int ord_on_out_of_stock(ev_ctx *ctx, const ev_envelope *ev, ev_error *err)
{
    return ord_fact(ctx, ev, ORD_FACT_SQL("out_of_stock"), false, err);
}

static int ord_on_declined(ev_ctx *ctx, const ev_envelope *ev, ev_error *err)
{
    return ord_fact(ctx, ev, ORD_FACT_SQL("declined"), false, err);
}

static int ord_on_authorized(ev_ctx *ctx, const ev_envelope *ev, ev_error *err)
{
    return ord_fact(ctx, ev,
                    "INSERT INTO orders(order_id, authorized, payment_id, updated_at)"
                    " VALUES(?1, 1, ?3, ?2) ON CONFLICT(order_id) DO UPDATE SET"
                    " authorized = 1, payment_id = ?3, updated_at = ?2"
                    " RETURNING " ORD_COLS,
                    true, err);
}

static int ord_on_dispatched(ev_ctx *ctx, const ev_envelope *ev, ev_error *err)
{
    return ord_fact(ctx, ev, ORD_FACT_SQL("dispatched"), false, err);
}

/* Accepted while the order is pending or confirmed; remembered when the order
 * is not placed yet; otherwise ignored and logged. */
static int ord_on_cancel_requested(ev_ctx *ctx, const ev_envelope *ev, ev_error *err)
{
    const char *id;
    int rc = ev_envelope_data_str(ev, "order_id", &id, err);
    if (rc < 0)
        return rc;
    ord_row r;
    bool found;
    rc = ord_load(ctx, id, &r, &found, err);
    if (rc < 0)
        return rc;
    if (!found || strcmp(r.status, ORD_UNPLACED) == 0)
        return ord_fact(ctx, ev, ORD_FACT_SQL("cancel_requested"), false, err);
    if (strcmp(r.status, ORD_PENDING) == 0 || strcmp(r.status, ORD_CONFIRMED) == 0)
        return ord_cancel(ctx, id, &r, "customer", err);
    ev_log(EV_LOG_INFO, "cancel request ignored", "order_id=%s status=%s event_id=%s", id,
           r.status, ev->id);
    return 0;
}

/* order.timeout: cancels the order only if it is still pending. */
static int ord_on_timer(ev_ctx *ctx, const ev_timer *t, ev_error *err)
{
    if (strcmp(t->kind, ORD_TIMER) != 0)
        return 0;
    ord_row r;
    bool found;
    int rc = ord_load(ctx, t->key, &r, &found, err);
    if (rc < 0 || !found || strcmp(r.status, ORD_PENDING) != 0)
        return rc;
    return ord_cancel(ctx, t->key, &r, "timeout", err);
}

/* ---- dump --------------------------------------------------------------- */

/* Appends the current row of the dump's query to orders and counts it. */
static void ord_dump_row(ev_stmt *st, json_t *orders, json_t *counts)
{
    const char *status = ev_stmt_text(st, 2);
    json_array_append_new(
        orders,
        json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s}", "order_id", ev_stmt_text(st, 0),
                  "customer_id", ev_stmt_text(st, 1), "status", status, "total_cents",
                  (json_int_t)ev_stmt_int(st, 3), "currency", ev_stmt_text(st, 4),
                  "payment_id", ev_stmt_text(st, 5), "reason", ev_stmt_text(st, 6)));
    json_int_t n = json_integer_value(json_object_get(counts, status));
    json_object_set_new(counts, status, json_integer(n + 1));
}

static int ord_dump(ev_store *s, json_t **out, ev_error *err)
{
    json_t *orders = json_array();
    json_t *counts = json_object();
    ev_stmt *st = ev_store_stmt(s,
                                "SELECT order_id, customer_id, status, total_cents,"
                                " currency, payment_id, reason FROM orders"
                                " ORDER BY order_id",
                                err);
    int rc = st ? ev_stmt_step(st, err) : err->code;
    for (; rc == 1; rc = ev_stmt_step(st, err))
        ord_dump_row(st, orders, counts);
    if (rc < 0)
        goto fail;
    *out = json_pack("{s:s, s:o, s:o}", "service", "orders", "orders", orders, "counts",
                     counts);
    return *out ? 0 : ev_error_set(err, EV_ENOMEM, "orders dump: out of memory");
fail:
    json_decref(orders);
    json_decref(counts);
    return rc;
}

static const ev_handler ord_handlers[] = {
    {"order.placed", ord_on_placed},
    {"order.cancel_requested", ord_on_cancel_requested},
    {"inventory.reserved", ord_on_reserved},
    {"inventory.rejected", ord_on_out_of_stock},
    {"payment.authorized", ord_on_authorized},
    {"payment.declined", ord_on_declined},
    {"shipment.dispatched", ord_on_dispatched},
    {NULL, NULL},
};

static const char *const ord_emits[] = {"order.confirmed", "order.rejected",
                                        "order.cancelled", "order.completed", NULL};

const ev_service_def orders_def = {
    .name = "orders",
    .handlers = ord_handlers,
    .emits = ord_emits,
    .migrations = ord_migrations,
    .n_migrations = sizeof(ord_migrations) / sizeof(ord_migrations[0]),
    .on_timer = ord_on_timer,
    .dump = ord_dump,
};
