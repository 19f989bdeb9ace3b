/* SPDX-License-Identifier: MIT */
/* inventory: stock per sku and one reservation per order, all lines or none.
 * Per sku, added = available + reserved + shipped, and none is ever negative. */
#include "inventory.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

/* Reservation states: RESERVED holds stock; SHIPPED left with a dispatch;
 * REJECTED, RELEASED, RETURNED and CLOSED (a release seen before the order)
 * hold nothing. */
static const ev_migration inv_migrations[] = {
    {1, "CREATE TABLE stock ("
        " sku TEXT PRIMARY KEY,"
        " available INTEGER NOT NULL DEFAULT 0 CHECK (available >= 0),"
        " reserved INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),"
        " shipped INTEGER NOT NULL DEFAULT 0 CHECK (shipped >= 0),"
        " added INTEGER NOT NULL DEFAULT 0 CHECK (added >= 0));"
        "CREATE TABLE reservations ("
        " order_id TEXT PRIMARY KEY,"
        " status TEXT NOT NULL,"
        " updated_at INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE reservation_items ("
        " order_id TEXT NOT NULL,"
        " sku TEXT NOT NULL,"
        " qty INTEGER NOT NULL CHECK (qty > 0),"
        " PRIMARY KEY (order_id, sku));"},
};

/* ---- SQL helpers -------------------------------------------------------- */

/* One int64 column of the first row; *found false when no row. */
static int inv_int(sqlite3_stmt *st, int64_t *v, bool *found, ev_error *err)
{
    if (!st)
        return err->code ? err->code : EV_ESTORE;
    int rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW;
    *v = *found ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return ev_error_set(err, EV_ESTORE, "inventory sql: %s", sqlite3_errstr(rc));
    return 0;
}

/* The reservation's status into buf ("" when there is none). */
static int inv_status(ev_ctx *ctx, const char *order_id, char *buf, size_t cap,
                      ev_error *err)
{
    sqlite3_stmt *st = ev_store_bind(
        ev_ctx_store(ctx), err, "SELECT status FROM reservations WHERE order_id = ?1",
        "s", order_id);
    if (!st)
        return err->code;
    int rc = sqlite3_step(st);
    snprintf(buf, cap, "%s",
             rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : "");
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return ev_error_set(err, EV_ESTORE, "inventory status: %s", sqlite3_errstr(rc));
    return 0;
}

static int inv_set_status(ev_ctx *ctx, const char *order_id, const char *status,
                          ev_error *err)
{
    return ev_store_exec(
        ev_store_bind(ev_ctx_store(ctx), err,
                      "INSERT INTO reservations(order_id, status, updated_at)"
                      " VALUES(?1, ?2, ?3) ON CONFLICT(order_id) DO UPDATE SET"
                      " status = ?2, updated_at = ?3",
                      "ssi", order_id, status, (int64_t)ev_ctx_now_ms(ctx)),
        err);
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

/* Moves every line of the order's reservation; items (may be NULL) collects
 * the lines as [{sku, qty}]. */
static int inv_move(ev_ctx *ctx, const char *order_id, int move, json_t *items,
                    ev_error *err)
{
    sqlite3_stmt *st = ev_store_bind(
        ev_ctx_store(ctx), err,
        "SELECT sku, qty FROM reservation_items WHERE order_id = ?1 ORDER BY sku", "s",
        order_id);
    if (!st)
        return err->code;
    int rc, ret = 0;
    while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *sku = (const char *)sqlite3_column_text(st, 0);
        int64_t qty = sqlite3_column_int64(st, 1);
        ret = ev_store_exec(
            ev_store_bind(ev_ctx_store(ctx), err, inv_move_sql[move], "si", sku, qty),
            err);
        if (ret == 0 && items)
            json_array_append_new(
                items, json_pack("{s:s, s:I}", "sku", sku, "qty", (json_int_t)qty));
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = ev_error_set(err, EV_ESTORE, "inventory move: %s", sqlite3_errstr(rc));
    sqlite3_reset(st);
    return ret;
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
                      " ON CONFLICT(sku) DO UPDATE SET available = available + ?2,"
                      " added = added + ?2",
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
        bool found;
        int rc =
            inv_int(ev_store_bind(ev_ctx_store(ctx), err,
                                  "SELECT available FROM stock WHERE sku = ?1", "s", sku),
                    avail, &found, err);
        if (rc < 0)
            return rc;
        if (*avail < json_integer_value(q)) {
            *short_sku = sku;
            return 0;
        }
    }
    return 0;
}

static int inv_reserve(ev_ctx *ctx, const char *order_id, json_t *want, ev_error *err)
{
    const char *sku;
    json_t *q;
    json_t *items = json_array();
    json_object_foreach(want, sku, q)
    {
        int64_t qty = json_integer_value(q);
        int rc =
            ev_store_exec(ev_store_bind(ev_ctx_store(ctx), err,
                                        "UPDATE stock SET available = available - ?2,"
                                        " reserved = reserved + ?2 WHERE sku = ?1",
                                        "si", sku, qty),
                          err);
        if (rc == 0)
            rc = ev_store_exec(
                ev_store_bind(ev_ctx_store(ctx), err,
                              "INSERT INTO reservation_items(order_id, sku, qty)"
                              " VALUES(?1, ?2, ?3)",
                              "ssi", order_id, sku, qty),
                err);
        if (rc < 0) {
            json_decref(items);
            return rc;
        }
        json_array_append_new(
            items, json_pack("{s:s, s:I}", "sku", sku, "qty", (json_int_t)qty));
    }
    int rc = inv_set_status(ctx, order_id, "RESERVED", err);
    if (rc < 0) {
        json_decref(items);
        return rc;
    }
    return ev_emit(ctx, "inventory.reserved",
                   json_pack("{s:s, s:o}", "order_id", order_id, "items", items), err);
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
    if (rc == 0 && short_sku) {
        json_t *d =
            json_pack("{s:s, s:s, s:I, s:I}", "order_id", id, "sku", short_sku,
                      "requested", json_integer_value(json_object_get(want, short_sku)),
                      "available", (json_int_t)avail);
        rc = inv_set_status(ctx, id, "REJECTED", err);
        if (rc == 0)
            rc = ev_emit(ctx, "inventory.rejected", d, err);
        else
            json_decref(d);
    } else if (rc == 0) {
        rc = inv_reserve(ctx, id, want, err);
    }
    json_decref(want);
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
        return inv_set_status(ctx, id, "CLOSED", err);
    if (strcmp(status, "RESERVED") != 0)
        return 0;
    json_t *items = json_array();
    rc = inv_move(ctx, id, INV_RELEASE, items, err);
    if (rc == 0)
        rc = inv_set_status(ctx, id, "RELEASED", err);
    if (rc < 0) {
        json_decref(items);
        return rc;
    }
    ev_log(EV_LOG_DEBUG, "reservation released", "order_id=%s cause=%s", id, ev->type);
    return ev_emit(ctx, "inventory.released",
                   json_pack("{s:s, s:o}", "order_id", id, "items", items), err);
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
    rc = inv_move(ctx, id, INV_SHIP, NULL, err);
    return rc < 0 ? rc : inv_set_status(ctx, id, "SHIPPED", err);
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
    rc = inv_move(ctx, id, INV_RESTOCK, NULL, err);
    if (rc == 0)
        ev_log(EV_LOG_DEBUG, "shipment restocked", "order_id=%s", id);
    return rc < 0 ? rc : inv_set_status(ctx, id, "RETURNED", err);
}

/* ---- dump --------------------------------------------------------------- */

static int inv_dump_query(sqlite3 *db, const char *sql, json_t *out, bool stock,
                          ev_error *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return ev_error_set(err, EV_ESTORE, "inventory dump: %s", sqlite3_errmsg(db));
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(st, 0);
        if (stock)
            json_array_append_new(
                out, json_pack("{s:s, s:I, s:I, s:I, s:I}", "sku", k, "available",
                               (json_int_t)sqlite3_column_int64(st, 1), "reserved",
                               (json_int_t)sqlite3_column_int64(st, 2), "shipped",
                               (json_int_t)sqlite3_column_int64(st, 3), "added",
                               (json_int_t)sqlite3_column_int64(st, 4)));
        else
            json_array_append_new(out,
                                  json_pack("{s:s, s:s}", "order_id", k, "status",
                                            (const char *)sqlite3_column_text(st, 1)));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return ev_error_set(err, EV_ESTORE, "inventory dump: %s", sqlite3_errstr(rc));
    return 0;
}

static int inv_dump(ev_store *s, json_t **out, ev_error *err)
{
    json_t *stock = json_array();
    json_t *res = json_array();
    int rc = inv_dump_query(ev_store_db(s),
                            "SELECT sku, available, reserved, shipped, added FROM stock"
                            " ORDER BY sku",
                            stock, true, err);
    if (rc == 0)
        rc = inv_dump_query(ev_store_db(s),
                            "SELECT order_id, status FROM reservations ORDER BY order_id",
                            res, false, err);
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
