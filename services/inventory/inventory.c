/* SPDX-License-Identifier: MIT */
/* inventory: stock per sku and one reservation per order, all lines or none.
 * Per sku, added = available + reserved + shipped, and none is ever negative. */
#include "inventory.h"

#include <string.h>

#include "log.h"

/* Reservation states: RESERVED holds stock; SHIPPED left with a dispatch;
 * REJECTED, RELEASED, RETURNED and CLOSED (a release seen before the order)
 * hold nothing. Instances of the service share these rows (PostgreSQL): stock
 * is taken only by an UPDATE conditional on what is available, and a status
 * changes only from the status its handler read (inv_set_status). */
static const ev_migration inv_migrations[] = {
    {1, "CREATE TABLE stock ("
        " sku TEXT PRIMARY KEY,"
        " available BIGINT NOT NULL DEFAULT 0 CHECK (available >= 0),"
        " reserved BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),"
        " shipped BIGINT NOT NULL DEFAULT 0 CHECK (shipped >= 0),"
        " added BIGINT NOT NULL DEFAULT 0 CHECK (added >= 0));"
        "CREATE TABLE reservations ("
        " order_id TEXT PRIMARY KEY,"
        " status TEXT NOT NULL,"
        " updated_at BIGINT NOT NULL DEFAULT 0);"
        "CREATE TABLE reservation_items ("
        " order_id TEXT NOT NULL,"
        " sku TEXT NOT NULL,"
        " qty BIGINT NOT NULL CHECK (qty > 0),"
        " PRIMARY KEY (order_id, sku));"},
    /* The order.placed event (id, flow) of a reservation: its release, by the
     * first of payment.declined, order.rejected or order.cancelled, is an
     * event of the order's flow derived from it (ev_emit_deferred). */
    {2, "ALTER TABLE reservations ADD COLUMN origin_id TEXT NOT NULL DEFAULT '';"
        "ALTER TABLE reservations ADD COLUMN origin_corr TEXT NOT NULL DEFAULT '';"},
};

/* ---- SQL helpers -------------------------------------------------------- */

/* The reservation's status into buf ("" when there is none). */
static int inv_status(ev_ctx *ctx, const char *order_id, char *buf, size_t cap,
                      ev_error *err)
{
    return ev_store_query_text(
        ev_store_bind(ev_ctx_store(ctx), err,
                      "SELECT status FROM reservations WHERE order_id = ?1", "s",
                      order_id),
        buf, cap, NULL, err);
}

/* Moves the reservation from the status its handler read (from, "" = none)
 * to status to. When another instance changed it meanwhile no row changes:
 * EV_ERETRY, and the handler runs again on what is there now. */
static int inv_set_status(ev_ctx *ctx, const char *order_id, const char *from,
                          const char *to, ev_error *err)
{
    ev_store *s = ev_ctx_store(ctx);
    int64_t now = ev_ctx_now_ms(ctx);
    ev_stmt *st = NULL;
    if (from[0])
        st = ev_store_bind(s, err,
                           "UPDATE reservations SET status = ?2, updated_at = ?3"
                           " WHERE order_id = ?1 AND status = ?4",
                           "ssis", order_id, to, now, from);
    else
        st = ev_store_bind(s, err,
                           "INSERT INTO reservations(order_id, status, updated_at)"
                           " VALUES(?1, ?2, ?3) ON CONFLICT(order_id) DO NOTHING",
                           "ssi", order_id, to, now);
    int rc = ev_store_exec(st, err);
    if (rc == 0 && ev_stmt_changes(st) != 1)
        rc = ev_error_set(err, EV_ERETRY, "reservation of %s is no longer %s", order_id,
                          from[0] ? from : "new");
    return rc;
}

/* ---- stock moves -------------------------------------------------------- */

enum { INV_RELEASE, INV_SHIP, INV_RESTOCK };

static const char *const inv_move_sql[] = {
    [INV_RELEASE] = "UPDATE stock SET reserved = reserved - ?2,"
                    " available = available + ?2 WHERE sku = ?1",
    [INV_SHIP] = "UPDATE stock SET reserved = reserved - ?2,"
                 " shipped = shipped + ?2 WHERE sku = ?1",
    [INV_RESTOCK] = "UPDATE stock SET shipped = shipped - ?2,"
                    " available = available + ?2 WHERE sku = ?1",
};

/* The reservation's lines as [{sku, qty}] in sku order into *items (owned by
 * the caller). */
static int inv_items(ev_ctx *ctx, const char *order_id, json_t **items, ev_error *err)
{
    ev_stmt *st = ev_store_bind(
        ev_ctx_store(ctx), err,
        "SELECT sku, qty FROM reservation_items WHERE order_id = ?1 ORDER BY sku", "s",
        order_id);
    if (!st)
        return err->code;
    *items = json_array();
    int rc = ev_stmt_step(st, err);
    for (; rc == 1; rc = ev_stmt_step(st, err))
        json_array_append_new(*items, json_pack("{s:s, s:I}", "sku", ev_stmt_text(st, 0),
                                                "qty", (json_int_t)ev_stmt_int(st, 1)));
    if (rc < 0) {
        json_decref(*items);
        *items = NULL;
    }
    return rc;
}

/* Moves every line of the order's reservation (its status already moved by
 * inv_set_status, so only once); items (may be NULL) gets the lines as
 * [{sku, qty}], owned by the caller. */
static int inv_move(ev_ctx *ctx, const char *order_id, int move, json_t **items,
                    ev_error *err)
{
    json_t *lines = NULL;
    int rc = inv_items(ctx, order_id, &lines, err);
    size_t i;
    json_t *it;
    json_array_foreach(lines, i, it)
    {
        if (rc == 0)
            rc = ev_store_exec(
                ev_store_bind(ev_ctx_store(ctx), err, inv_move_sql[move], "si",
                              json_string_value(json_object_get(it, "sku")),
                              (int64_t)json_integer_value(json_object_get(it, "qty"))),
                err);
    }
    if (rc == 0 && items)
        *items = json_incref(lines);
    json_decref(lines);
    return rc;
}

/* ---- handlers ----------------------------------------------------------- */

static int inv_on_stock_added(ev_ctx *ctx, const ev_envelope *ev, ev_error *err)
{
    const char *sku = json_string_value(json_object_get(ev->data, "sku"));
    json_int_t qty = json_integer_value(json_object_get(ev->data, "qty"));
    if (!sku || qty <= 0)
        return ev_error_set(err, EV_ESCHEMA, "stock.added needs sku and qty > 0");
    return ev_store_exec(
        ev_store_bind(ev_ctx_store(ctx), err,
                      "INSERT INTO stock(sku, available, added) VALUES(?1, ?2, ?2)"
                      " ON CONFLICT(sku) DO UPDATE SET available = stock.available + ?2,"
                      " added = stock.added + ?2",
                      "si", sku, (int64_t)qty),
        err);
}

/* The order's lines summed per sku into *want {sku: qty}. */
static int inv_lines(const ev_envelope *ev, json_t **want, ev_error *err)
{
    json_t *items = json_object_get(ev->data, "items");
    if (!json_is_array(items) || json_array_size(items) == 0)
        return ev_error_set(err, EV_ESCHEMA, "order.placed without items");
    *want = json_object();
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        const char *sku = json_string_value(json_object_get(it, "sku"));
        json_int_t qty = json_integer_value(json_object_get(it, "qty"));
        if (!sku || qty <= 0) {
            json_decref(*want);
            *want = NULL;
            return ev_error_set(err, EV_ESCHEMA, "order.placed item %zu invalid", i);
        }
        json_int_t had = json_integer_value(json_object_get(*want, sku));
        json_object_set_new(*want, sku, json_integer(had + qty));
    }
    return 0;
}

/* The first sku short of stock: *short_sku NULL when all lines fit. */
static int inv_check(ev_ctx *ctx, json_t *want, const char **short_sku, int64_t *avail,
                     ev_error *err)
{
    const char *sku;
    json_t *q;
    *short_sku = NULL;
    json_object_foreach(want, sku, q)
    {
        int rc = ev_store_query_int(
            ev_store_bind(ev_ctx_store(ctx), err,
                          "SELECT available FROM stock WHERE sku = ?1", "s", sku),
            0, avail, NULL, err);
        if (rc < 0)
            return rc;
        if (*avail < json_integer_value(q)) {
            *short_sku = sku;
            return 0;
        }
    }
    return 0;
}

/* Takes qty of sku from available into reserved, only if that many are still
 * available: another instance may have taken them since inv_check read the
 * row; then nothing changes and the handler is retried (EV_ERETRY). */
static int inv_take(ev_ctx *ctx, const char *order_id, const char *sku, int64_t qty,
                    ev_error *err)
{
    ev_stmt *st = ev_store_bind(ev_ctx_store(ctx), err,
                                "UPDATE stock SET available = available - ?2,"
                                " reserved = reserved + ?2"
                                " WHERE sku = ?1 AND available >= ?2",
                                "si", sku, qty);
    int rc = ev_store_exec(st, err);
    if (rc == 0 && ev_stmt_changes(st) != 1)
        rc = ev_error_set(err, EV_ERETRY, "stock of %s taken meanwhile (order_id=%s)",
                          sku, order_id);
    if (rc == 0)
        rc = ev_store_exec(
            ev_store_bind(ev_ctx_store(ctx), err,
                          "INSERT INTO reservation_items(order_id, sku, qty)"
                          " VALUES(?1, ?2, ?3)",
                          "ssi", order_id, sku, qty),
            err);
    return rc;
}

static int inv_reserve(ev_ctx *ctx, const char *order_id, json_t *want, ev_error *err)
{
    const char *sku;
    json_t *q;
    json_t *items = json_array();
    int rc = inv_set_status(ctx, order_id, "", "RESERVED", err);
    json_object_foreach(want, sku, q)
    {
        int64_t qty = json_integer_value(q);
        if (rc == 0)
            rc = inv_take(ctx, order_id, sku, qty, err);
        if (rc == 0)
            json_array_append_new(
                items, json_pack("{s:s, s:I}", "sku", sku, "qty", (json_int_t)qty));
    }
    if (rc < 0) {
        json_decref(items);
        return rc;
    }
    return ev_emit(ctx, "inventory.reserved",
                   json_pack("{s:s, s:o}", "order_id", order_id, "items", items), err);
}

static int inv_reject(ev_ctx *ctx, const char *order_id, json_t *want, const char *sku,
                      int64_t avail, ev_error *err)
{
    json_t *d = json_pack("{s:s, s:s, s:I, s:I}", "order_id", order_id, "sku", sku,
                          "requested", json_integer_value(json_object_get(want, sku)),
                          "available", (json_int_t)avail);
    int rc = inv_set_status(ctx, order_id, "", "REJECTED", err);
    if (rc < 0) {
        json_decref(d);
        return rc;
    }
    return ev_emit(ctx, "inventory.rejected", d, err);
}

/* Reserves every line or none. A second order.placed for a known order, or
 * one after its release was seen, is ignored. */
static int inv_on_placed(ev_ctx *ctx, const ev_envelope *ev, ev_error *err)
{
    const char *id;
    char status[16];
    json_t *want = NULL;
    int rc = ev_envelope_data_str(ev, "order_id", &id, err);
    if (rc == 0)
        rc = inv_status(ctx, id, status, sizeof(status), err);
    if (rc < 0)
        return rc;
    if (status[0]) {
        ev_log(EV_LOG_INFO, "order already handled", "order_id=%s status=%s event_id=%s",
               id, status, ev->id);
        return 0;
    }
    rc = inv_lines(ev, &want, err);
    if (rc < 0)
        return rc;
    const char *short_sku;
    int64_t avail = 0;
    rc = inv_check(ctx, want, &short_sku, &avail, err);
    if (rc == 0 && short_sku)
        rc = inv_reject(ctx, id, want, short_sku, avail, err);
    else if (rc == 0)
        rc = inv_reserve(ctx, id, want, err);
    json_decref(want);
    if (rc == 0)
        rc = ev_store_exec(
            ev_store_bind(ev_ctx_store(ctx), err,
                          "UPDATE reservations SET origin_id = ?2, origin_corr = ?3"
                          " WHERE order_id = ?1",
                          "sss", id, ev->id,
                          ev->correlationid[0] ? ev->correlationid : ev->id),
            err);
    return rc;
}

/* payment.declined, order.rejected, order.cancelled: gives back a held
 * reservation (once: the state says whether one is held). */
static int inv_on_release(ev_ctx *ctx, const ev_envelope *ev, ev_error *err)
{
    const char *id;
    char status[16];
    int rc = ev_envelope_data_str(ev, "order_id", &id, err);
    if (rc == 0)
        rc = inv_status(ctx, id, status, sizeof(status), err);
    if (rc < 0)
        return rc;
    if (!status[0])
        return inv_set_status(ctx, id, "", "CLOSED", err);
    if (strcmp(status, "RESERVED") != 0)
        return 0;
    json_t *items = NULL;
    char origin[EV_ID_MAX] = "", corr[EV_ID_MAX] = "";
    rc = inv_set_status(ctx, id, status, "RELEASED", err);
    if (rc == 0)
        rc = inv_move(ctx, id, INV_RELEASE, &items, err);
    if (rc == 0)
        rc = ev_store_query_text(ev_store_bind(ev_ctx_store(ctx), err,
                                               "SELECT origin_id FROM reservations"
                                               " WHERE order_id = ?1",
                                               "s", id),
                                 origin, sizeof(origin), NULL, err);
    if (rc == 0)
        rc = ev_store_query_text(ev_store_bind(ev_ctx_store(ctx), err,
                                               "SELECT origin_corr FROM reservations"
                                               " WHERE order_id = ?1",
                                               "s", id),
                                 corr, sizeof(corr), NULL, err);
    if (rc < 0) {
        json_decref(items);
        return rc;
    }
    ev_log(EV_LOG_DEBUG, "reservation released", "order_id=%s cause=%s", id, ev->type);
    return ev_emit_deferred(ctx, "inventory.released",
                            json_pack("{s:s, s:o}", "order_id", id, "items", items),
                            origin, corr, NULL, err);
}

/* shipment.dispatched: the reserved goods leave. A dispatch that crossed a
 * release changes no counts (its shipment.returned will not either). */
static int inv_on_dispatched(ev_ctx *ctx, const ev_envelope *ev, ev_error *err)
{
    const char *id;
    char status[16];
    int rc = ev_envelope_data_str(ev, "order_id", &id, err);
    if (rc == 0)
        rc = inv_status(ctx, id, status, sizeof(status), err);
    if (rc < 0)
        return rc;
    if (strcmp(status, "RESERVED") != 0) {
        ev_log(EV_LOG_INFO, "dispatch without reservation", "order_id=%s status=%s", id,
               status[0] ? status : "none");
        return 0;
    }
    rc = inv_set_status(ctx, id, status, "SHIPPED", err);
    return rc < 0 ? rc : inv_move(ctx, id, INV_SHIP, NULL, err);
}

/* shipment.returned: shipped goods come back to available. */
static int inv_on_returned(ev_ctx *ctx, const ev_envelope *ev, ev_error *err)
{
    const char *id;
    char status[16];
    int rc = ev_envelope_data_str(ev, "order_id", &id, err);
    if (rc == 0)
        rc = inv_status(ctx, id, status, sizeof(status), err);
    if (rc < 0 || strcmp(status, "SHIPPED") != 0)
        return rc;
    rc = inv_set_status(ctx, id, status, "RETURNED", err);
    if (rc == 0)
        rc = inv_move(ctx, id, INV_RESTOCK, NULL, err);
    if (rc == 0)
        ev_log(EV_LOG_DEBUG, "shipment restocked", "order_id=%s", id);
    return rc;
}

/* ---- dump --------------------------------------------------------------- */

static json_t *inv_dump_stock(ev_stmt *st)
{
    return json_pack("{s:s, s:I, s:I, s:I, s:I}", "sku", ev_stmt_text(st, 0), "available",
                     (json_int_t)ev_stmt_int(st, 1), "reserved",
                     (json_int_t)ev_stmt_int(st, 2), "shipped",
                     (json_int_t)ev_stmt_int(st, 3), "added",
                     (json_int_t)ev_stmt_int(st, 4));
}

static json_t *inv_dump_reservation(ev_stmt *st)
{
    return json_pack("{s:s, s:s}", "order_id", ev_stmt_text(st, 0), "status",
                     ev_stmt_text(st, 1));
}

/* Every row of sql, made an object by row, appended to out. */
static int inv_dump_query(ev_store *s, const char *sql, json_t *out,
                          json_t *(*row)(ev_stmt *), ev_error *err)
{
    ev_stmt *st = ev_store_stmt(s, sql, err);
    if (!st)
        return err->code;
    int rc = ev_stmt_step(st, err);
    for (; rc == 1; rc = ev_stmt_step(st, err))
        json_array_append_new(out, row(st));
    return rc;
}

static int inv_dump(ev_store *s, json_t **out, ev_error *err)
{
    json_t *stock = json_array();
    json_t *res = json_array();
    int rc = inv_dump_query(s,
                            "SELECT sku, available, reserved, shipped, added FROM stock"
                            " ORDER BY sku",
                            stock, inv_dump_stock, err);
    if (rc == 0)
        rc = inv_dump_query(s,
                            "SELECT order_id, status FROM reservations ORDER BY order_id",
                            res, inv_dump_reservation, err);
    if (rc < 0) {
        json_decref(stock);
        json_decref(res);
        return rc;
    }
    *out = json_pack("{s:s, s:o, s:o}", "service", "inventory", "stock", stock,
                     "reservations", res);
    return *out ? 0 : ev_error_set(err, EV_ENOMEM, "inventory dump: out of memory");
}

static const ev_handler inv_handlers[] = {
    {"stock.added", inv_on_stock_added},    {"order.placed", inv_on_placed},
    {"payment.declined", inv_on_release},   {"order.rejected", inv_on_release},
    {"order.cancelled", inv_on_release},    {"shipment.dispatched", inv_on_dispatched},
    {"shipment.returned", inv_on_returned}, {NULL, NULL},
};

static const char *const inv_emits[] = {"inventory.reserved", "inventory.rejected",
                                        "inventory.released", NULL};

const ev_service_def inventory_def = {
    .name = "inventory",
    .handlers = inv_handlers,
    .emits = inv_emits,
    .migrations = inv_migrations,
    .n_migrations = sizeof(inv_migrations) / sizeof(inv_migrations[0]),
    .dump = inv_dump,
};
