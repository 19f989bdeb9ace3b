/* SPDX-License-Identifier: MIT */
/* notifications: mails the customer on the order's milestones, as files in a
 * maildir under the data dir, and says so with notification.sent. */
#include "notifications.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* A mail is PENDING until its recipient is known (the order and the customer
 * may arrive after the milestone: topics are not ordered), then SENT. */
static const ev_migration ntf_migrations[] = {
    {1, "CREATE TABLE customers ("
        " customer_id TEXT PRIMARY KEY,"
        " email TEXT NOT NULL);"
        "CREATE TABLE orders ("
        " order_id TEXT PRIMARY KEY,"
        " customer_id TEXT NOT NULL);"
        "CREATE TABLE mails ("
        " event_id TEXT PRIMARY KEY,"
        " order_id TEXT NOT NULL,"
        " template TEXT NOT NULL,"
        " subject TEXT NOT NULL,"
        " body TEXT NOT NULL,"
        " at TEXT NOT NULL DEFAULT '',"
        " to_addr TEXT NOT NULL DEFAULT '',"
        " status TEXT NOT NULL DEFAULT 'PENDING');"
        "CREATE INDEX mails_order ON mails(order_id, status);"
        "CREATE INDEX orders_customer ON orders(customer_id);"},
};

/* What each milestone says: the detail field names a value of its data. */
typedef struct ntf_template {
    const char *type;
    const char *name;
    const char *subject;
    const char *phrase;
    const char *detail_field;
} ntf_template;

static const ntf_template ntf_templates[] = {
    {"order.confirmed", "order_confirmed", "confirmed", "is confirmed, payment",
     "payment_id"},
    {"order.rejected", "order_rejected", "rejected", "could not go ahead, reason",
     "reason"},
    {"order.cancelled", "order_cancelled", "cancelled", "was cancelled, reason",
     "reason"},
    {"shipment.dispatched", "shipment_dispatched", "dispatched",
     "left our warehouse, shipment", "shipment_id"},
    {"payment.refunded", "payment_refunded", "refunded", "was refunded, payment",
     "payment_id"},
};

/* ---- SQL helpers -------------------------------------------------------- */

/* The first column of every row as a JSON array of strings (*out owned). */
static int ntf_column(sqlite3_stmt *st, json_t **out, ev_error *err)
{
    if (!st)
        return err->code ? err->code : EV_ESTORE;
    *out = json_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(*out,
                              json_string((const char *)sqlite3_column_text(st, 0)));
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        json_decref(*out);
        *out = NULL;
        return ev_error_set(err, EV_ESTORE, "notifications sql: %s", sqlite3_errstr(rc));
    }
    return 0;
}

/* ---- maildir ------------------------------------------------------------ */

static int ntf_mkdir(const char *path, ev_error *err)
{
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        return ev_error_set(err, EV_ERETRY, "mkdir %s: %s", path, strerror(errno));
    return 0;
}

/* <data_dir>/maildir with tmp, new and cur; EV_ERETRY on any failure. */
static int ntf_maildir(ev_ctx *ctx, char *dir, size_t cap, ev_error *err)
{
    static const char *const subs[] = {"", "/tmp", "/new", "/cur"};
    const char *data = ev_ctx_config(ctx)->data_dir;
    char path[1024];
    if ((size_t)snprintf(dir, cap, "%s/maildir", data) >= cap)
        return ev_error_set(err, EV_EINVAL, "maildir path too long");
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        if ((size_t)snprintf(path, sizeof(path), "%s%s", dir, subs[i]) >= sizeof(path))
            return ev_error_set(err, EV_EINVAL, "maildir path too long");
        int rc = ntf_mkdir(path, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int ntf_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Mails written since the last sync: made durable once per batch by
 * ntf_before_commit, before the batch's SENT rows commit. Up to NTF_SYNC_FDS
 * files are fsynced one by one; a bigger batch syncs the file system once. */
#define NTF_SYNC_FDS 32

static struct {
    bool dirty;    /* a mail was written since the last sync */
    bool whole_fs; /* more than NTF_SYNC_FDS: syncfs instead */
    int fds[NTF_SYNC_FDS];
    size_t n_fds;
    char dir[600]; /* the maildir */
} ntf_sync = {.dirty = false};

static void ntf_sync_forget(void)
{
    for (size_t i = 0; i < ntf_sync.n_fds; i++)
        close(ntf_sync.fds[i]);
    ntf_sync.n_fds = 0;
}

/* Keeps fd (now owned here) for the batch's sync. */
static void ntf_sync_note(const char *dir, int fd)
{
    ntf_sync.dirty = true;
    snprintf(ntf_sync.dir, sizeof(ntf_sync.dir), "%s", dir);
    if (!ntf_sync.whole_fs && ntf_sync.n_fds < NTF_SYNC_FDS) {
        ntf_sync.fds[ntf_sync.n_fds++] = fd;
        return;
    }
    close(fd);
    ntf_sync.whole_fs = true;
    ntf_sync_forget();
}

/* fsync of the path (a directory), or syncfs of its file system. */
static int ntf_sync_path(const char *path, bool whole_fs)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = whole_fs ? syncfs(fd) : fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/* ev_service_def.before_commit: the batch's mails reach the disk (files, then
 * new/'s entries) before their SENT rows commit; on failure the batch is
 * rolled back and re-run, rewriting the same files. */
static int ntf_before_commit(ev_ctx *ctx, ev_error *err)
{
    (void)ctx;
    if (!ntf_sync.dirty)
        return 0;
    char newdir[700];
    snprintf(newdir, sizeof(newdir), "%s/new", ntf_sync.dir);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < ntf_sync.n_fds; i++)
        rc = fsync(ntf_sync.fds[i]);
    if (rc == 0 && ntf_sync.whole_fs)
        rc = ntf_sync_path(ntf_sync.dir, true);
    if (rc == 0)
        rc = ntf_sync_path(newdir, false);
    if (rc != 0)
        return ev_error_set(err, EV_ERETRY, "sync %s: %s", ntf_sync.dir, strerror(errno));
    ntf_sync_forget();
    ntf_sync.dirty = false;
    ntf_sync.whole_fs = false;
    return 0;
}

/* Delivers text as new/<name>: written to tmp/, renamed, made durable by
 * ntf_before_commit. A mail already in new/ (a re-run batch) is written
 * again: the same name and bytes, and durable only once synced. */
static int ntf_deliver(ev_ctx *ctx, const char *name, const char *text, ev_error *err)
{
    char dir[600], tmp[1024], dst[1024];
    int rc = ntf_maildir(ctx, dir, sizeof(dir), err);
    if (rc < 0)
        return rc;
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s/tmp/%s", dir, name) >= sizeof(tmp) ||
        (size_t)snprintf(dst, sizeof(dst), "%s/new/%s", dir, name) >= sizeof(dst))
        return ev_error_set(err, EV_EINVAL, "mail path too long");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return ev_error_set(err, EV_ERETRY, "open %s: %s", tmp, strerror(errno));
    if (ntf_write_all(fd, text, strlen(text)) < 0 || rename(tmp, dst) < 0) {
        rc = ev_error_set(err, EV_ERETRY, "deliver %s: %s", dst, strerror(errno));
        close(fd);
        unlink(tmp);
        return rc;
    }
    ntf_sync_note(dir, fd);
    return 0;
}

/* ---- mails -------------------------------------------------------------- */

/* Copies s with control characters replaced, so no value can add a header. */
static void ntf_clean(char *out, size_t cap, const char *s)
{
    size_t i = 0;
    for (; s && s[i] && i + 1 < cap; i++)
        out[i] = (unsigned char)s[i] < 0x20 ? '?' : s[i];
    out[i] = '\0';
}

/* Sends one pending mail to addr: the file, its row, notification.sent. */
static int ntf_send(ev_ctx *ctx, const char *event_id, const char *addr, ev_error *err)
{
    sqlite3_stmt *st =
        ev_store_bind(ev_ctx_store(ctx), err,
                      "SELECT order_id, template, subject, body, at FROM mails"
                      " WHERE event_id = ?1 AND status = 'PENDING'",
                      "s", event_id);
    if (!st)
        return err->code;
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        return 0;
    }
    char order_id[EV_SUBJECT_MAX], tmpl[64], text[2048], name[EV_ID_MAX + 8];
    snprintf(order_id, sizeof(order_id), "%s", (const char *)sqlite3_column_text(st, 0));
    snprintf(tmpl, sizeof(tmpl), "%s", (const char *)sqlite3_column_text(st, 1));
    int n = snprintf(text, sizeof(text),
                     "From: choreo shop <shop@choreo.invalid>\r\nTo: <%s>\r\n"
                     "Subject: %s\r\nDate: %s\r\nMessage-ID: <%s@choreo.invalid>\r\n"
                     "X-Choreo-Order: %s\r\nX-Choreo-Template: %s\r\n"
                     "Content-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n",
                     addr, (const char *)sqlite3_column_text(st, 2),
                     (const char *)sqlite3_column_text(st, 4), event_id, order_id, tmpl,
                     (const char *)sqlite3_column_text(st, 3));
    sqlite3_reset(st);
    if (n < 0 || (size_t)n >= sizeof(text))
        return ev_error_set(err, EV_EINVAL, "mail for %s too long", order_id);
    snprintf(name, sizeof(name), "%s.eml", event_id);
    int rc = ntf_deliver(ctx, name, text, err);
    if (rc == 0)
        rc = ev_store_exec(ev_store_bind(ev_ctx_store(ctx), err,
                                         "UPDATE mails SET status = 'SENT', to_addr = ?2"
                                         " WHERE event_id = ?1",
                                         "ss", event_id, addr),
                           err);
    if (rc < 0)
        return rc;
    ev_log(EV_LOG_DEBUG, "mail sent", "order_id=%s template=%s mail=%s", order_id, tmpl,
           name);
    return ev_emit(ctx, "notification.sent",
                   json_pack("{s:s, s:s, s:s, s:s}", "order_id", order_id, "channel",
                             "email", "template", tmpl, "to", addr),
                   err);
}

/* Sends the order's pending mails once its customer's address is known. */
static int ntf_flush(ev_ctx *ctx, const char *order_id, ev_error *err)
{
    sqlite3_stmt *st =
        ev_store_bind(ev_ctx_store(ctx), err,
                      "SELECT c.email FROM orders o JOIN customers c"
                      " ON c.customer_id = o.customer_id WHERE o.order_id = ?1",
                      "s", order_id);
    if (!st)
        return err->code;
    char addr[256] = "";
    if (sqlite3_step(st) == SQLITE_ROW)
        snprintf(addr, sizeof(addr), "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    if (!addr[0])
        return 0;
    json_t *ids = NULL;
    int rc = ntf_column(ev_store_bind(ev_ctx_store(ctx), err,
                                      "SELECT event_id FROM mails WHERE order_id = ?1"
                                      " AND status = 'PENDING' ORDER BY rowid",
                                      "s", order_id),
                        &ids, err);
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id)
    {
        if (rc == 0)
            rc = ntf_send(ctx, json_string_value(id), addr, err);
    }
    json_decref(ids);
    return rc;
}

/* ---- handlers ----------------------------------------------------------- */

static int ntf_on_customer(ev_ctx *ctx, const ev_envelope *ev, ev_error *err)
{
    const char *id = json_string_value(json_object_get(ev->data, "customer_id"));
    const char *email = json_string_value(json_object_get(ev->data, "email"));
    if (!id || !email)
        return ev_error_set(err, EV_ESCHEMA, "customer.registered incomplete");
    int rc = ev_store_exec(
        ev_store_bind(ev_ctx_store(ctx), err,
                      "INSERT INTO customers(customer_id, email) VALUES(?1, ?2)"
                      " ON CONFLICT(customer_id) DO UPDATE SET email = ?2",
                      "ss", id, email),
        err);
    json_t *orders = NULL;
    if (rc == 0)
        rc = ntf_column(
            ev_store_bind(ev_ctx_store(ctx), err,
                          "SELECT DISTINCT o.order_id FROM orders o JOIN mails m"
                          " ON m.order_id = o.order_id WHERE o.customer_id = ?1"
                          " AND m.status = 'PENDING' ORDER BY o.order_id",
                          "s", id),
            &orders, err);
    size_t i;
    json_t *o;
    json_array_foreach(orders, i, o)
    {
        if (rc == 0)
            rc = ntf_flush(ctx, json_string_value(o), err);
    }
    json_decref(orders);
    return rc;
}

static int ntf_on_placed(ev_ctx *ctx, const ev_envelope *ev, ev_error *err)
{
    const char *id = json_string_value(json_object_get(ev->data, "order_id"));
    const char *customer = json_string_value(json_object_get(ev->data, "customer_id"));
    if (!id || !customer)
        return ev_error_set(err, EV_ESCHEMA, "order.placed incomplete");
    int rc =
        ev_store_exec(ev_store_bind(ev_ctx_store(ctx), err,
                                    "INSERT OR IGNORE INTO orders(order_id, customer_id)"
                                    " VALUES(?1, ?2)",
                                    "ss", id, customer),
                      err);
    return rc < 0 ? rc : ntf_flush(ctx, id, err);
}

/* A milestone: queues its mail (keyed by the event id) and sends what it can. */
static int ntf_on_milestone(ev_ctx *ctx, const ev_envelope *ev, ev_error *err)
{
    const ntf_template *t = NULL;
    for (size_t i = 0; i < sizeof(ntf_templates) / sizeof(ntf_templates[0]); i++)
        if (strcmp(ntf_templates[i].type, ev->type) == 0)
            t = &ntf_templates[i];
    const char *id = json_string_value(json_object_get(ev->data, "order_id"));
    if (!t || !id)
        return ev_error_set(err, EV_ESCHEMA, "%s: no template or order_id", ev->type);
    char oid[EV_SUBJECT_MAX], detail[EV_SUBJECT_MAX], subject[300], body[600];
    ntf_clean(oid, sizeof(oid), id);
    ntf_clean(detail, sizeof(detail),
              json_string_value(json_object_get(ev->data, t->detail_field)));
    snprintf(subject, sizeof(subject), "Your order %s: %s", oid, t->subject);
    snprintf(body, sizeof(body),
             "Hello,\r\n\r\nyour order %s %s %s.\r\n\r\n-- choreo shop", oid, t->phrase,
             detail);
    int rc = ev_store_exec(
        ev_store_bind(ev_ctx_store(ctx), err,
                      "INSERT OR IGNORE INTO mails(event_id, order_id, template,"
                      " subject, body, at) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                      "ssssss", ev->id, id, t->name, subject, body, ev->time),
        err);
    return rc < 0 ? rc : ntf_flush(ctx, id, err);
}

/* ---- dump --------------------------------------------------------------- */

static int ntf_dump(ev_store *s, json_t **out, ev_error *err)
{
    sqlite3 *db = ev_store_db(s);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(
            db,
            "SELECT event_id, order_id, template, to_addr, status FROM mails"
            " ORDER BY order_id, rowid",
            -1, &st, NULL) != SQLITE_OK)
        return ev_error_set(err, EV_ESTORE, "notifications dump: %s", sqlite3_errmsg(db));
    json_t *mails = json_array();
    json_int_t sent = 0, pending = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *status = (const char *)sqlite3_column_text(st, 4);
        if (strcmp(status, "SENT") == 0)
            sent++;
        else
            pending++;
        json_array_append_new(
            mails, json_pack("{s:s, s:s, s:s, s:s, s:s}", "event_id",
                             (const char *)sqlite3_column_text(st, 0), "order_id",
                             (const char *)sqlite3_column_text(st, 1), "template",
                             (const char *)sqlite3_column_text(st, 2), "to",
                             (const char *)sqlite3_column_text(st, 3), "status", status));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(mails);
        return ev_error_set(err, EV_ESTORE, "notifications dump: %s", sqlite3_errstr(rc));
    }
    *out = json_pack("{s:s, s:o, s:I, s:I}", "service", "notifications", "mails", mails,
                     "sent", sent, "pending", pending);
    return *out ? 0 : ev_error_set(err, EV_ENOMEM, "notifications dump: out of memory");
}

static const ev_handler ntf_handlers[] = {
    {"customer.registered", ntf_on_customer}, {"order.placed", ntf_on_placed},
    {"order.confirmed", ntf_on_milestone},    {"order.rejected", ntf_on_milestone},
    {"order.cancelled", ntf_on_milestone},    {"shipment.dispatched", ntf_on_milestone},
    {"payment.refunded", ntf_on_milestone},   {NULL, NULL},
};

static const char *const ntf_emits[] = {"notification.sent", NULL};

const ev_service_def notifications_def = {
    .name = "notifications",
    .handlers = ntf_handlers,
    .emits = ntf_emits,
    .migrations = ntf_migrations,
    .n_migrations = sizeof(ntf_migrations) / sizeof(ntf_migrations[0]),
    .dump = ntf_dump,
    .before_commit = ntf_before_commit,
};
