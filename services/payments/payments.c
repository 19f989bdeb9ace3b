/* SPDX-License-Identifier: MIT */
/* payments: customers' credit and one payment per order, authorized once both
 * the order and its reservation are known, refunded when the order is cancelled. */
#include "payments.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

/* Payment states: NONE (waiting for facts), AUTHORIZED, DECLINED, REFUNDED,
 * VOID (cancelled before a decision: never authorized). */
static const ev_migration pay_migrations[] = {
    {1, "CREATE TABLE customers ("
        " customer_id TEXT PRIMARY KEY,"
        " name TEXT NOT NULL DEFAULT '',"
        " email TEXT NOT NULL DEFAULT '',"
        " credit_limit_cents BIGINT NOT NULL DEFAULT 0,"
        " outstanding_cents BIGINT NOT NULL DEFAULT 0 CHECK (outstanding_cents >= 0));"
        "CREATE TABLE payments ("
        " order_id TEXT PRIMARY KEY,"
        " customer_id TEXT NOT NULL DEFAULT '',"
        " amount_cents BIGINT NOT NULL DEFAULT 0,"
        " placed BIGINT NOT NULL DEFAULT 0,"
        " reserved BIGINT NOT NULL DEFAULT 0,"
        " status TEXT NOT NULL DEFAULT 'NONE',"
        " payment_id TEXT NOT NULL DEFAULT '',"
        " reason TEXT NOT NULL DEFAULT '',"
        " updated_at BIGINT NOT NULL DEFAULT 0);"},
    /* The order.placed event (id, flow): the decision, taken once both facts
     * are known, is an event of the order's flow derived from it. */
    {2, "ALTER TABLE payments ADD COLUMN origin_id TEXT NOT NULL DEFAULT '';"
        "ALTER TABLE payments ADD COLUMN origin_corr TEXT NOT NULL DEFAULT '';"},
};

typedef struct pay_row {
    char customer_id[EV_SUBJECT_MAX];
    int64_t amount;
    int placed, reserved;
    char status[16];
    char payment_id[EV_SUBJECT_MAX];
    char origin_id[EV_ID_MAX], origin_corr[EV_ID_MAX]; /* its order.placed */
} pay_row;

/* ---- SQL helpers -------------------------------------------------------- */

/* The columns of a pay_row, as pay_read reads them. */
#define PAY_COLS                                                                         \
    "customer_id, amount_cents, placed, reserved, status, payment_id, origin_id,"        \
    " origin_corr"

/* Steps st (a SELECT or RETURNING of PAY_COLS) into *r; *found false when it
 * gives no row. */
static int pay_read(ev_stmt *st, pay_row *r, bool *found, ev_error *err)
{
    if (!st)
        return err->code;
    memset(r, 0, sizeof(*r));
    int rc = ev_stmt_step(st, err);
    *found = rc == 1;
    if (rc != 1)
        return rc;
    ev_stmt_text_copy(st, 0, r->customer_id, sizeof(r->customer_id));
    r->amount = ev_stmt_int(st, 1);
    r->placed = ev_stmt_int(st, 2) != 0;
    r->reserved = ev_stmt_int(st, 3) != 0;
    ev_stmt_text_copy(st, 4, r->status, sizeof(r->status));
    ev_stmt_text_copy(st, 5, r->payment_id, sizeof(r->payment_id));
    ev_stmt_text_copy(st, 6, r->origin_id, sizeof(r->origin_id));
    ev_stmt_text_copy(st, 7, r->origin_corr, sizeof(r->origin_corr));
    ev_stmt_reset(st);
    return 0;
}

static int pay_load(ev_ctx *ctx, const char *order_id, pay_row *r, bool *found,
                    ev_error *err)
{
    return pay_read(ev_store_bind(ev_ctx_store(ctx), err,
                                  "SELECT " PAY_COLS " FROM payments WHERE order_id = ?1",
                                  "s", order_id),
                    r, found, err);
}

static int pay_set_status(ev_ctx *ctx, const char *order_id, const char *status,
                          const char *payment_id, const char *reason, ev_error *err)
{
    return ev_store_exec(
        ev_store_bind(ev_ctx_store(ctx), err,
                      "UPDATE payments SET status = ?2, payment_id = ?3, reason = ?4,"
                      " updated_at = ?5 WHERE order_id = ?1",
                      "ssssi", order_id, status, payment_id, reason,
                      (int64_t)ev_ctx_now_ms(ctx)),
        err);
}

/* Moves a customer's outstanding amount by delta. */
static int pay_outstanding(ev_ctx *ctx, const char *customer_id, int64_t delta,
                           ev_error *err)
{
    return ev_store_exec(
        ev_store_bind(ev_ctx_store(ctx), err,
                      "UPDATE customers SET outstanding_cents = outstanding_cents + ?2"
                      " WHERE customer_id = ?1",
                      "si", customer_id, delta),
        err);
}

/* ---- decisions ---------------------------------------------------------- */

static int pay_decline(ev_ctx *ctx, const char *order_id, const pay_row *r,
                       const char *reason, ev_error *err)
{
    int rc = pay_set_status(ctx, order_id, "DECLINED", "", reason, err);
    if (rc < 0)
        return rc;
    ev_log(EV_LOG_DEBUG, "payment declined", "order_id=%s reason=%s", order_id, reason);
    return ev_emit_deferred(
        ctx, "payment.declined",
        json_pack("{s:s, s:s}", "order_id", order_id, "reason", reason), r->origin_id,
        r->origin_corr, NULL, err);
}

/* The customer's credit limit and outstanding amount; *known false when the
 * customer is not registered. */
static int pay_credit(ev_ctx *ctx, const char *customer_id, int64_t *limit,
                      int64_t *outstanding, bool *known, ev_error *err)
{
    ev_stmt *st =
        ev_store_bind(ev_ctx_store(ctx), err,
                      "SELECT credit_limit_cents, outstanding_cents FROM customers"
                      " WHERE customer_id = ?1",
                      "s", customer_id);
    if (!st)
        return err->code;
    int rc = ev_stmt_step(st, err);
    *known = rc == 1;
    *limit = *known ? ev_stmt_int(st, 0) : 0;
    *outstanding = *known ? ev_stmt_int(st, 1) : 0;
    if (rc != 1)
        return rc;
    ev_stmt_reset(st);
    return 0;
}

/* Authorizes against the customer's remaining credit, or declines. The
 * charge is one UPDATE conditional on the credit left; when it changes no
 * row the customer's row is read for the reason and written all the same (a
 * decline adds 0), so on PostgreSQL a concurrent charge, refund or new limit
 * is a conflict either way and the decision is retried on the current row.
 * An unknown customer has no row to write: a registration committed
 * meanwhile counts as arriving after the order, as the topics' interleaving
 * may have it on one instance too. */
static int pay_authorize(ev_ctx *ctx, const char *order_id, const pay_row *r,
                         ev_error *err)
{
    ev_stmt *st = ev_store_bind(
        ev_ctx_store(ctx), err,
        "UPDATE customers SET outstanding_cents = outstanding_cents + ?2"
        " WHERE customer_id = ?1 AND outstanding_cents + ?2 <= credit_limit_cents",
        "si", r->customer_id, r->amount);
    int rc = ev_store_exec(st, err);
    if (rc < 0)
        return rc;
    if (ev_stmt_changes(st) != 1) {
        int64_t limit = 0, outstanding = 0;
        bool known = false;
        rc = pay_credit(ctx, r->customer_id, &limit, &outstanding, &known, err);
        if (rc < 0)
            return rc;
        if (!known)
            return pay_decline(ctx, order_id, r, "unknown_customer", err);
        rc = pay_outstanding(ctx, r->customer_id, 0, err);
        return rc < 0 ? rc : pay_decline(ctx, order_id, r, "credit_limit", err);
    }
    char pid[EV_ID_MAX];
    ev_derived_id(pid, "pay-", order_id);
    rc = pay_set_status(ctx, order_id, "AUTHORIZED", pid, "", err);
    if (rc < 0)
        return rc;
    ev_log(EV_LOG_DEBUG, "payment authorized", "order_id=%s amount_cents=%lld", order_id,
           (long long)r->amount);
    return ev_emit_deferred(ctx, "payment.authorized",
                            json_pack("{s:s, s:s, s:I}", "order_id", order_id,
                                      "payment_id", pid, "amount_cents",
                                      (json_int_t)r->amount),
                            r->origin_id, r->origin_corr, NULL, err);
}

/* Decides once both the order and its reservation are known, on the row
 * the upsert st wrote and returned (when it wrote none, the row as it is). */
static int pay_decide(ev_ctx *ctx, const char *order_id, ev_stmt *st, ev_error *err)
{
    pay_row r;
    bool found;
    int rc = pay_read(st, &r, &found, err);
    if (rc == 0 && !found)
        rc = pay_load(ctx, order_id, &r, &found, err);
    if (rc < 0 || !found || !r.placed || !r.reserved || strcmp(r.status, "NONE") != 0)
        return rc;
    return pay_authorize(ctx, order_id, &r, err);
}

/* ---- handlers ----------------------------------------------------------- */

static int pay_on_customer(ev_ctx *ctx, const ev_envelope *ev, ev_error *err)
{
    const char *id = json_string_value(json_object_get(ev->data, "customer_id"));
    const char *name = json_string_value(json_object_get(ev->data, "name"));
    const char *email = json_string_value(json_object_get(ev->data, "email"));
    json_t *limit = json_object_get(ev->data, "credit_limit_cents");
    if (!id || !json_is_integer(limit))
        return ev_error_set(err, EV_ESCHEMA, "customer.registered incomplete");
    return ev_store_exec(
        ev_store_bind(ev_ctx_store(ctx), err,
                      "INSERT INTO customers(customer_id, name, email,"
                      " credit_limit_cents) VALUES(?1, ?2, ?3, ?4)"
                      " ON CONFLICT(customer_id) DO UPDATE SET name = ?2,"
                      " email = ?3, credit_limit_cents = ?4",
                      "sssi", id, name ? name : "", email ? email : "",
                      (int64_t)json_integer_value(limit)),
        err);
}

/* A repeated order.placed changes nothing (WHERE), but on PostgreSQL the
 * upsert still locks the row (it returns none: pay_decide reads it, current). */
static int pay_on_placed(ev_ctx *ctx, const ev_envelope *ev, ev_error *err)
{
    const char *id;
    int rc = ev_envelope_data_str(ev, "order_id", &id, err);
    if (rc < 0)
        return rc;
    const char *customer = json_string_value(json_object_get(ev->data, "customer_id"));
    json_t *total = json_object_get(ev->data, "total_cents");
    if (!customer || !json_is_integer(total))
        return ev_error_set(err, EV_ESCHEMA, "order.placed incomplete");
    return pay_decide(
        ctx, id,
        ev_store_bind(ev_ctx_store(ctx), err,
                      "INSERT INTO payments(order_id, customer_id, amount_cents, placed,"
                      " updated_at, origin_id, origin_corr)"
                      " VALUES(?1, ?2, ?3, 1, ?4, ?5, ?6)"
                      " ON CONFLICT(order_id) DO UPDATE SET customer_id = ?2,"
                      " amount_cents = ?3, placed = 1, updated_at = ?4, origin_id = ?5,"
                      " origin_corr = ?6 WHERE payments.placed = 0 RETURNING " PAY_COLS,
                      "ssiiss", id, customer, (int64_t)json_integer_value(total),
                      (int64_t)ev_ctx_now_ms(ctx), ev->id,
                      ev->correlationid[0] ? ev->correlationid : ev->id),
        err);
}

static int pay_on_reserved(ev_ctx *ctx, const ev_envelope *ev, ev_error *err)
{
    const char *id;
    int rc = ev_envelope_data_str(ev, "order_id", &id, err);
    if (rc < 0)
        return rc;
    return pay_decide(
        ctx, id,
        ev_store_bind(ev_ctx_store(ctx), err,
                      "INSERT INTO payments(order_id, reserved, updated_at)"
                      " VALUES(?1, 1, ?2) ON CONFLICT(order_id) DO UPDATE SET"
                      " reserved = 1, updated_at = ?2 RETURNING " PAY_COLS,
                      "si", id, (int64_t)ev_ctx_now_ms(ctx)),
        err);
}

/* Refunds an authorized payment; a payment not decided yet is voided so that
 * a late reservation never charges a cancelled order. Every path that acts
 * writes the row it read (a row another instance inserted meanwhile makes the
 * INSERT a unique-key conflict, retried); DECLINED, REFUNDED and VOID are
 * final, so ignoring them never rests on a stale read. */
static int pay_on_cancelled(ev_ctx *ctx, const ev_envelope *ev, ev_error *err)
{
    const char *id;
    pay_row r;
    bool found;
    int rc = ev_envelope_data_str(ev, "order_id", &id, err);
    if (rc == 0)
        rc = pay_load(ctx, id, &r, &found, err);
    if (rc < 0)
        return rc;
    if (!found)
        return ev_store_exec(
            ev_store_bind(ev_ctx_store(ctx), err,
                          "INSERT INTO payments(order_id, status, updated_at)"
                          " VALUES(?1, 'VOID', ?2)",
                          "si", id, (int64_t)ev_ctx_now_ms(ctx)),
            err);
    if (strcmp(r.status, "NONE") == 0)
        return pay_set_status(ctx, id, "VOID", "", "cancelled", err);
    if (strcmp(r.status, "AUTHORIZED") != 0)
        return 0;
    rc = pay_set_status(ctx, id, "REFUNDED", r.payment_id, "cancelled", err);
    if (rc == 0)
        rc = pay_outstanding(ctx, r.customer_id, -r.amount, err);
    if (rc < 0)
        return rc;
    ev_log(EV_LOG_DEBUG, "payment refunded", "order_id=%s amount_cents=%lld", id,
           (long long)r.amount);
    return ev_emit(ctx, "payment.refunded",
                   json_pack("{s:s, s:s, s:I}", "order_id", id, "payment_id",
                             r.payment_id, "amount_cents", (json_int_t)r.amount),
                   err);
}

/* ---- dump --------------------------------------------------------------- */

static void pay_customer_row(ev_stmt *st, json_t *out)
{
    json_array_append_new(out,
                          json_pack("{s:s, s:s, s:I, s:I}", "customer_id",
                                    ev_stmt_text(st, 0), "email", ev_stmt_text(st, 1),
                                    "credit_limit_cents", (json_int_t)ev_stmt_int(st, 2),
                                    "outstanding_cents", (json_int_t)ev_stmt_int(st, 3)));
}

static void pay_payment_row(ev_stmt *st, json_t *out)
{
    json_array_append_new(
        out, json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "order_id", ev_stmt_text(st, 0),
                       "customer_id", ev_stmt_text(st, 1), "amount_cents",
                       (json_int_t)ev_stmt_int(st, 2), "status", ev_stmt_text(st, 3),
                       "payment_id", ev_stmt_text(st, 4), "reason", ev_stmt_text(st, 5)));
}

/* Appends row(st) to out for every row of sql. */
static int pay_dump_rows(ev_store *s, const char *sql, void (*row)(ev_stmt *, json_t *),
                         json_t *out, ev_error *err)
{
    ev_stmt *st = ev_store_stmt(s, sql, err);
    int rc = st ? ev_stmt_step(st, err) : err->code;
    for (; rc == 1; rc = ev_stmt_step(st, err))
        row(st, out);
    return rc;
}

static int pay_dump(ev_store *s, json_t **out, ev_error *err)
{
    json_t *customers = json_array();
    json_t *payments = json_array();
    int rc = pay_dump_rows(s,
                           "SELECT customer_id, email, credit_limit_cents,"
                           " outstanding_cents FROM customers ORDER BY customer_id",
                           pay_customer_row, customers, err);
    if (rc == 0)
        rc = pay_dump_rows(s,
                           "SELECT order_id, customer_id, amount_cents, status,"
                           " payment_id, reason FROM payments ORDER BY order_id",
                           pay_payment_row, payments, err);
    if (rc < 0) {
        json_decref(customers);
        json_decref(payments);
        return rc;
    }
    *out = json_pack("{s:s, s:o, s:o}", "service", "payments", "customers", customers,
                     "payments", payments);
    return *out ? 0 : ev_error_set(err, EV_ENOMEM, "payments dump: out of memory");
}

static const ev_handler pay_handlers[] = {
    {"customer.registered", pay_on_customer},
    {"order.placed", pay_on_placed},
    {"inventory.reserved", pay_on_reserved},
    {"order.cancelled", pay_on_cancelled},
    {NULL, NULL},
};

static const char *const pay_emits[] = {"payment.authorized", "payment.declined",
                                        "payment.refunded", NULL};

const ev_service_def payments_def = {
    .name = "payments",
    .handlers = pay_handlers,
    .emits = pay_emits,
    .migrations = pay_migrations,
    .n_migrations = sizeof(pay_migrations) / sizeof(pay_migrations[0]),
    .dump = pay_dump,
};
