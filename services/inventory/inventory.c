/* SPDX-License-Identifier: MIT */
/* inventory: stock per sku and one reservation per order, all lines or none.
 * Per sku, added = available + reserved + shipped, and none is ever negative. */
#include "inventory.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Reservation states: RESERVED holds stock; SHIPPED left with a dispatch;
 * REJECTED, RELEASED, RETURNED and CLOSED (a release seen before the order)
 * hold nothing. Instances of the service share these rows (PostgreSQL): stock
 * is taken only by an UPDATE conditional on what is available, and a status
 * changes only by an UPDATE conditional on the status it moves from
 * (inv_move_status): each step is one statement, no read before it. */
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
    /* The reservation's lines in its own row, as the JSON object {sku: qty}
     * with the skus in order: each step on a reservation is then one
     * statement on its row plus one per line on stock. Reservations made
     * before this keep their lines in reservation_items (inv_lines_of). */
    {3, "ALTER TABLE reservations ADD COLUMN lines TEXT NOT NULL DEFAULT '';"},
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

/* Logs why an event changes nothing for the order: its reservation's status
 * (read only on this rare path). */
static int inv_ignored(ev_ctx *ctx, const char *what, const char *order_id,
                       const ev_envelope *ev, ev_error *err)
{
    char status[16];
    int rc = inv_status(ctx, order_id, status, sizeof(status), err);
    if (rc == 0)
        ev_log(EV_LOG_INFO, what, "order_id=%s status=%s event_id=%s", order_id,
               status[0] ? status : "none", ev->id);
    return rc;
}

/* The lines {sku: qty} as [{sku, qty}] in the object's order. */
static json_t *inv_items_of(json_t *lines)
{
    json_t *items = json_array();
    const char *sku;
    json_t *q;
    json_object_foreach(lines, sku, q)
    {
        json_array_append_new(items, json_pack("{s:s, s:I}", "sku", sku, "qty",
                                               (json_int_t)json_integer_value(q)));
    }
    return items;
}

/* The reservation's lines as [{sku, qty}] in sku order into *items (owned by
 * the caller): from its row's text, or, for a reservation made before
 * migration 3 (text ""), from reservation_items. */
static int inv_lines_of(ev_ctx *ctx, const char *order_id, const char *text,
                        json_t **items, ev_error *err)
{
    if (text[0]) {
        json_t *lines = json_loads(text, 0, NULL);
        *items = json_is_object(lines) ? inv_items_of(lines) : NULL;
        json_decref(lines);
        return *items ? 0
                      : ev_error_set(err, EV_ESTORE, "reservation of %s: bad lines %.40s",
                                     order_id, text);
    }
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

/* A reservation moved by inv_move_status: its lines and its order.placed. */
typedef struct inv_moved {
    bool moved;
    json_t *items; /* [{sku, qty}], owned; NULL when not moved */
    char origin_id[EV_ID_MAX], origin_corr[EV_ID_MAX];
} inv_moved;

/* Moves the reservation from status from to status to, in one statement
 * conditional on from, which returns the row's lines and origin. m->moved
 * false when it is not in from (no row, or another status: on PostgreSQL a
 * move by another instance since this transaction's snapshot is a conflict,
 * and the batch runs again). */
static int inv_move_status(ev_ctx *ctx, const char *order_id, const char *from,
                           const char *to, inv_moved *m, ev_error *err)
{
    *m = (inv_moved){.moved = false};
    ev_stmt *st = ev_store_bind(ev_ctx_store(ctx), err,
                                "UPDATE reservations SET status = ?2, updated_at = ?3"
                                " WHERE order_id = ?1 AND status = ?4"
                                " RETURNING lines, origin_id, origin_corr",
                                "ssis", order_id, to, ev_ctx_now_ms(ctx), from);
    if (st == NULL)
        return err->code;
    int rc = ev_stmt_step(st, err);
    char *lines = NULL;
    if (rc == 1) {
        m->moved = true;
        lines = strdup(ev_stmt_text(st, 0));
        ev_stmt_text_copy(st, 1, m->origin_id, sizeof(m->origin_id));
        ev_stmt_text_copy(st, 2, m->origin_corr, sizeof(m->origin_corr));
        ev_stmt_reset(st);
        rc = lines ? inv_lines_of(ctx, order_id, lines, &m->items, err)
                   : ev_error_set(err, EV_ENOMEM, "reservation lines: out of memory");
    }
    free(lines);
    return rc < 0 ? rc : 0;
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

/* Moves every line of items [{sku, qty}] (its reservation's status already
 * moved, so only once), one statement per line, in sku order. */
static int inv_move(ev_ctx *ctx, json_t *items, int move, ev_error *err)
{
    int rc = 0;
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        if (rc == 0)
            rc = ev_store_exec(
                ev_store_bind(ev_ctx_store(ctx), err, inv_move_sql[move], "si",
                              json_string_value(json_object_get(it, "sku")),
                              (int64_t)json_integer_value(json_object_get(it, "qty"))),
                err);
    }
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

/* The order's lines summed per sku, skus in order, as JSON text into *text
 * (malloc'd). */
static int inv_want(const ev_envelope *ev, char **text, ev_error *err)
{
    json_t *items = json_object_get(ev->data, "items");
    if (!json_is_array(items) || json_array_size(items) == 0)
        return ev_error_set(err, EV_ESCHEMA, "order.placed without items");
    json_t *want = json_object();
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        const char *sku = json_string_value(json_object_get(it, "sku"));
        json_int_t qty = json_integer_value(json_object_get(it, "qty"));
        if (!sku || qty <= 0) {
            json_decref(want);
            return ev_error_set(err, EV_ESCHEMA, "order.placed item %zu invalid", i);
        }
        json_int_t had = json_integer_value(json_object_get(want, sku));
        json_object_set_new(want, sku, json_integer(had + qty));
    }
    *text = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(want);
    return *text ? 0 : ev_error_set(err, EV_ENOMEM, "order lines: out of memory");
}

/* Takes qty of sku from available into reserved, only if that many are
 * available (*taken false otherwise, nothing changed). */
static int inv_take(ev_ctx *ctx, const char *sku, int64_t qty, bool *taken, ev_error *err)
{
    ev_stmt *st = ev_store_bind(ev_ctx_store(ctx), err,
                                "UPDATE stock SET available = available - ?2,"
                                " reserved = reserved + ?2"
                                " WHERE sku = ?1 AND available >= ?2",
                                "si", sku, qty);
    int rc = ev_store_exec(st, err);
    *taken = rc == 0 && ev_stmt_changes(st) == 1;
    return rc;
}

/* Not every line fits: gives back the lines taken (the same transaction, so
 * nobody saw them), marks the reservation REJECTED and says which sku fell
 * short with what it has. */
static int inv_reject(ev_ctx *ctx, const char *order_id, json_t *taken, const char *sku,
                      int64_t requested, ev_error *err)
{
    int64_t avail = 0;
    inv_moved m = {.moved = false};
    int rc = inv_move(ctx, taken, INV_RELEASE, err);
    if (rc == 0)
        rc = ev_store_query_int(
            ev_store_bind(ev_ctx_store(ctx), err,
                          "SELECT available FROM stock WHERE sku = ?1", "s", sku),
            0, &avail, NULL, err);
    if (rc == 0)
        rc = inv_move_status(ctx, order_id, "RESERVED", "REJECTED", &m, err);
    json_decref(m.items);
    if (rc == 0 && !m.moved) /* the row this handler inserted */
        rc = ev_error_set(err, EV_ESTORE, "reservation of %s vanished", order_id);
    if (rc < 0)
        return rc;
    return ev_emit(ctx, "inventory.rejected",
                   json_pack("{s:s, s:s, s:I, s:I}", "order_id", order_id, "sku", sku,
                             "requested", (json_int_t)requested, "available",
                             (json_int_t)avail),
                   err);
}

/* Reserves every line or none, optimistically: the reservation row with its
 * lines first (a second order.placed for a known order, or one after its
 * release was seen, inserts nothing and is ignored), then each line, in sku
 * order, by an UPDATE conditional on what is available; the first line short
 * of stock gives the others back and rejects. On PostgreSQL a stock row
 * another instance changed since this transaction's snapshot makes it
 * conflict and run again. */
static int inv_on_placed(ev_ctx *ctx, const ev_envelope *ev, ev_error *err)
{
    const char *id;
    char *text = NULL;
    int rc = ev_envelope_data_str(ev, "order_id", &id, err);
    if (rc == 0)
        rc = inv_want(ev, &text, err);
    if (rc < 0)
        return rc;
    ev_stmt *st = ev_store_bind(ev_ctx_store(ctx), err,
                                "INSERT INTO reservations(order_id, status, updated_at,"
                                " origin_id, origin_corr, lines)"
                                " VALUES(?1, 'RESERVED', ?2, ?3, ?4, ?5)"
                                " ON CONFLICT(order_id) DO NOTHING",
                                "sisss", id, ev_ctx_now_ms(ctx), ev->id,
                                ev->correlationid[0] ? ev->correlationid : ev->id, text);
    rc = ev_store_exec(st, err);
    json_t *want = rc == 0 ? json_loads(text, 0, NULL) : NULL; /* skus in order */
    free(text);
    if (rc == 0 && ev_stmt_changes(st) != 1) {
        json_decref(want);
        return inv_ignored(ctx, "order already handled", id, ev, err);
    }
    if (rc == 0 && want == NULL)
        rc = ev_error_set(err, EV_ENOMEM, "order lines: out of memory");
    const char *sku, *short_sku = NULL;
    json_t *q;
    json_t *taken = json_array();
    json_object_foreach(want, sku, q)
    {
        int64_t qty = json_integer_value(q);
        bool ok = false;
        if (rc == 0 && short_sku == NULL)
            rc = inv_take(ctx, sku, qty, &ok, err);
        if (rc == 0 && short_sku == NULL && !ok)
            short_sku = sku;
        if (rc == 0 && ok)
            json_array_append_new(
                taken, json_pack("{s:s, s:I}", "sku", sku, "qty", (json_int_t)qty));
    }
    if (rc == 0 && short_sku != NULL)
        rc = inv_reject(ctx, id, taken, short_sku,
                        json_integer_value(json_object_get(want, short_sku)), err);
    else if (rc == 0)
        rc = ev_emit(ctx, "inventory.reserved",
                     json_pack("{s:s, s:O}", "order_id", id, "items", taken), err);
    json_decref(taken);
    json_decref(want);
    return rc;
}

/* payment.declined, order.rejected, order.cancelled: gives back a held
 * reservation (once: only the move from RESERVED does); a release seen
 * before the order closes it, so that a late order.placed reserves nothing. */
static int inv_on_release(ev_ctx *ctx, const ev_envelope *ev, ev_error *err)
{
    const char *id;
    inv_moved m = {.moved = false};
    int rc = ev_envelope_data_str(ev, "order_id", &id, err);
    if (rc < 0)
        return rc;
    rc = inv_move_status(ctx, id, "RESERVED", "RELEASED", &m, err);
    if (rc == 0 && !m.moved) /* nothing held: closes an order not seen yet */
        return ev_store_exec(
            ev_store_bind(ev_ctx_store(ctx), err,
                          "INSERT INTO reservations(order_id, status, updated_at)"
                          " VALUES(?1, 'CLOSED', ?2) ON CONFLICT(order_id) DO NOTHING",
                          "si", id, ev_ctx_now_ms(ctx)),
            err);
    if (rc == 0)
        rc = inv_move(ctx, m.items, INV_RELEASE, err);
    if (rc < 0) {
        json_decref(m.items);
        return rc;
    }
    ev_log(EV_LOG_DEBUG, "reservation released", "order_id=%s cause=%s", id, ev->type);
    return ev_emit_deferred(ctx, "inventory.released",
                            json_pack("{s:s, s:o}", "order_id", id, "items", m.items),
                            m.origin_id, m.origin_corr, NULL, err);
}

/* A shipment's step on the reservation: from status from to status to, its
 * lines moved by move; otherwise (logged as what) nothing changes. */
static int inv_on_shipment(ev_ctx *ctx, const ev_envelope *ev, const char *from,
                           const char *to, int move, const char *what, ev_error *err)
{
    const char *id;
    inv_moved m = {.moved = false};
    int rc = ev_envelope_data_str(ev, "order_id", &id, err);
    if (rc == 0)
        rc = inv_move_status(ctx, id, from, to, &m, err);
    if (rc == 0 && !m.moved)
        return what ? inv_ignored(ctx, what, id, ev, err) : 0;
    if (rc == 0)
        rc = inv_move(ctx, m.items, move, err);
    json_decref(m.items);
    return rc;
}

/* shipment.dispatched: the reserved goods leave. A dispatch that crossed a
 * release changes no counts (its shipment.returned will not either). */
static int inv_on_dispatched(ev_ctx *ctx, const ev_envelope *ev, ev_error *err)
{
    return inv_on_shipment(ctx, ev, "RESERVED", "SHIPPED", INV_SHIP,
                           "dispatch without reservation", err);
}

/* shipment.returned: shipped goods come back to available. */
static int inv_on_returned(ev_ctx *ctx, const ev_envelope *ev, ev_error *err)
{
    return inv_on_shipment(ctx, ev, "SHIPPED", "RETURNED", INV_RESTOCK, NULL, err);
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
