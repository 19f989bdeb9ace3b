/* SPDX-License-Identifier: MIT */
/* notifications: mails the customer on the order's milestones, as files in a
 * maildir under the data dir, and says so with notification.sent. */
#include "notifications.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* A mail is PENDING until its recipient is known (the order and the customer
 * may arrive after the milestone: topics are not ordered), then SENT. Rows of
 * orders and customers may be placeholders (customer_id or email ''): every
 * decision on an order's mails writes the order's and the customer's row
 * (ntf_note_order, ntf_note_customer), so that two instances deciding at once
 * on the same mails conflict and one retries instead of both missing the
 * other's rows (PostgreSQL, REPEATABLE READ). seq orders an order's mails as
 * they came; sent_token names the delivery whose file may be published.
 * Every handler that can make an order's address known (order.placed,
 * customer.registered, a milestone) sends the order's pending mails in the
 * same transaction, so an order whose address is known has none: a milestone
 * then inserts its mail SENT at once, after the order's other mails. */
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
    {2,
     "ALTER TABLE mails ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;"
     "ALTER TABLE mails ADD COLUMN sent_token TEXT NOT NULL DEFAULT '';"
     "UPDATE mails SET seq = rowid;",
     "ALTER TABLE mails ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;"
     "ALTER TABLE mails ADD COLUMN sent_token TEXT NOT NULL DEFAULT '';"},
    /* The milestone's flow: its notification.sent belongs to it whichever
     * event released the mail (ev_emit_deferred). */
    {3, "ALTER TABLE mails ADD COLUMN corr TEXT NOT NULL DEFAULT '';"},
    /* The order's pending mails, counted in its row: an order.placed that
     * finds none decides nothing on mails and writes the order's row only
     * (that row is where it meets a concurrent milestone). */
    {4, "ALTER TABLE orders ADD COLUMN pending BIGINT NOT NULL DEFAULT 0;"
        "UPDATE orders SET pending = (SELECT count(*) FROM mails m"
        " WHERE m.order_id = orders.order_id AND m.status = 'PENDING');"},
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
static int ntf_column(ev_stmt *st, json_t **out, ev_error *err)
{
    if (!st)
        return err->code ? err->code : EV_ESTORE;
    *out = json_array();
    int rc = ev_stmt_step(st, err);
    for (; rc == 1; rc = ev_stmt_step(st, err))
        json_array_append_new(*out, json_string(ev_stmt_text(st, 0)));
    if (rc < 0) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
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
    int rc = ntf_mkdir(data, err); /* a store elsewhere (PostgreSQL) made none */
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        if ((size_t)snprintf(path, sizeof(path), "%s%s", dir, subs[i]) >= sizeof(path))
            return ev_error_set(err, EV_EINVAL, "maildir path too long");
        rc = ntf_mkdir(path, err);
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

/* Mails written to tmp/ in this batch, published to new/ by ntf_before_commit
 * before the batch commits: only those whose row the committing transaction
 * marked SENT with the batch's token. A mail of a rolled-back record or
 * attempt is dropped there (another instance may have sent it since); one
 * written again by a re-run attempt is published once. The first
 * NTF_SYNC_FDS keep their fd for fsync; a bigger batch syncs the file system
 * once. */
#define NTF_SYNC_FDS 32

typedef struct ntf_written {
    char event_id[EV_ID_MAX];
    size_t order;   /* when it was written: the last write of an id counts */
    uint64_t tx;    /* the store's transaction that wrote its row */
    int fd;         /* -1 when not kept */
    bool ok;        /* its row carries the token: publish */
    bool published; /* renamed into new/ */
} ntf_written;

/* token: the batch's, from its first mail to ntf_sync_forget; every attempt
 * of the batch marks its rows with it. Rows carry it only as the committing
 * transaction wrote them (an undone write takes the mark with it), and no
 * other batch or instance uses it, so "row has the token" = "this commit
 * sends that file" for any attempt's write. */
static struct {
    ntf_written *mails;
    size_t n, cap;
    bool whole_fs; /* more than NTF_SYNC_FDS: syncfs instead */
    char dir[600]; /* the maildir */
    char token[EV_UUID_LEN];
} ntf_sync = {.mails = NULL};

/* The batch's token, drawn with its first mail. */
static const char *ntf_sync_token(void)
{
    if (ntf_sync.token[0] == '\0')
        ev_uuid4(ntf_sync.token);
    return ntf_sync.token;
}

/* tmp/<event_id>.eml or new/<event_id>.eml of the maildir into path. */
static int ntf_path(char *path, size_t cap, const char *dir, const char *sub,
                    const char *event_id)
{
    int n = snprintf(path, cap, "%s/%s/%s.eml", dir, sub, event_id);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static void ntf_sync_close_fds(void)
{
    for (size_t i = 0; i < ntf_sync.n; i++) {
        if (ntf_sync.mails[i].fd >= 0)
            close(ntf_sync.mails[i].fd);
        ntf_sync.mails[i].fd = -1;
    }
}

/* Forgets the batch's mails; failed (the batch rolls back): removes their
 * files, published ones too (their rows go back to PENDING). */
static void ntf_sync_forget(bool failed)
{
    char path[1024];
    ntf_sync_close_fds();
    for (size_t i = 0; failed && i < ntf_sync.n; i++) {
        const ntf_written *w = &ntf_sync.mails[i];
        const char *sub = w->published ? "new" : "tmp";
        if (ntf_path(path, sizeof(path), ntf_sync.dir, sub, w->event_id) == 0)
            unlink(path);
    }
    ntf_sync.n = 0;
    ntf_sync.whole_fs = false;
    ntf_sync.token[0] = '\0';
}

/* Keeps the mail written to tmp/ (fd now owned here) for the batch's sync. */
static int ntf_sync_note(const char *dir, const char *event_id, int fd, uint64_t tx,
                         ev_error *err)
{
    if (ntf_sync.n == ntf_sync.cap) {
        size_t cap = ntf_sync.cap ? ntf_sync.cap * 2 : 64;
        ntf_written *m = realloc(ntf_sync.mails, cap * sizeof(*m));
        if (!m) {
            close(fd);
            return ev_error_set(err, EV_ERETRY, "mail %s: out of memory", event_id);
        }
        ntf_sync.mails = m;
        ntf_sync.cap = cap;
    }
    ntf_written *w = &ntf_sync.mails[ntf_sync.n++];
    *w = (ntf_written){.order = ntf_sync.n, .fd = fd, .tx = tx};
    snprintf(w->event_id, sizeof(w->event_id), "%s", event_id);
    snprintf(ntf_sync.dir, sizeof(ntf_sync.dir), "%s", dir);
    if (ntf_sync.n > NTF_SYNC_FDS) {
        ntf_sync.whole_fs = true;
        ntf_sync_close_fds();
    }
    return 0;
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

/* By event id, then by when written. */
static int ntf_written_cmp(const void *a, const void *b)
{
    const ntf_written *x = a, *y = b;
    int c = strcmp(x->event_id, y->event_id);
    if (c != 0)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Ids the check asks about per statement, with the token as many
 * parameters as the store binds (32 on PostgreSQL); unused slots repeat an
 * id, so the text stays one prepared statement. */
#define NTF_CHECK_IDS 31
static const char ntf_check_sql[] =
    "SELECT event_id FROM mails WHERE sent_token = ?1 AND event_id IN ("
    " ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,"
    " ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32)";

/* Marks ok the last write of id among the sorted mails [from, to). */
static void ntf_sync_mark(size_t from, size_t to, const char *id)
{
    ntf_written key = {.order = SIZE_MAX};
    snprintf(key.event_id, sizeof(key.event_id), "%s", id);
    /* the first entry after id's run, minus one */
    size_t lo = from, hi = to;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ntf_written_cmp(&ntf_sync.mails[mid], &key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo > from && strcmp(ntf_sync.mails[lo - 1].event_id, id) == 0)
        ntf_sync.mails[lo - 1].ok = true;
}

/* The distinct ids of the sorted mails from *i on, up to NTF_CHECK_IDS of
 * them, asked in one statement: marks ok those whose row carries the token
 * (the last write of each: earlier ones share its name and are not
 * published twice). *i moves past them. */
static int ntf_sync_check_chunk(ev_ctx *ctx, size_t *i, ev_error *err)
{
    ev_stmt *st = ev_ctx_stmt(ctx, ntf_check_sql, err);
    if (st == NULL)
        return err->code ? err->code : EV_ESTORE;
    int rc = ev_stmt_bind_text(st, 1, ntf_sync.token);
    size_t from = *i, k = 0;
    const char *last = NULL;
    for (; *i < ntf_sync.n && rc == 0; (*i)++) {
        const char *id = ntf_sync.mails[*i].event_id;
        if (last != NULL && strcmp(last, id) == 0)
            continue;
        if (k == NTF_CHECK_IDS)
            break;
        last = id;
        rc = ev_stmt_bind_text(st, (int)(2 + k++), id);
    }
    for (; k < NTF_CHECK_IDS && rc == 0; k++)
        rc = ev_stmt_bind_text(st, (int)(2 + k), last);
    if (rc != 0)
        return ev_error_set(err, rc, "mail check: bind failed");
    rc = ev_stmt_step(st, err);
    for (; rc == 1; rc = ev_stmt_step(st, err))
        ntf_sync_mark(from, *i, ev_stmt_text(st, 0));
    return rc;
}

/* Marks the mails this transaction sent (their row has the batch's token):
 * a statement per NTF_CHECK_IDS distinct mails, not one per mail. */
static int ntf_sync_check(ev_ctx *ctx, ev_error *err)
{
    qsort(ntf_sync.mails, ntf_sync.n, sizeof(ntf_sync.mails[0]), ntf_written_cmp);
    for (size_t i = 0; i < ntf_sync.n; i++)
        ntf_sync.mails[i].ok = false;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < ntf_sync.n;)
        rc = ntf_sync_check_chunk(ctx, &i, err);
    return rc;
}

/* The marked mails' bytes reach the disk, then they move to new/ and new/'s
 * entries reach the disk; the others' files are removed from tmp/ (after the
 * renames: a dropped attempt may share its name with a published mail). */
static int ntf_sync_publish(void)
{
    char tmp[1024], dst[1024], newdir[700];
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < ntf_sync.n; i++)
        if (ntf_sync.mails[i].ok && ntf_sync.mails[i].fd >= 0)
            rc = fsync(ntf_sync.mails[i].fd);
    if (rc == 0 && ntf_sync.whole_fs)
        rc = ntf_sync_path(ntf_sync.dir, true);
    for (size_t i = 0; rc == 0 && i < ntf_sync.n; i++) {
        ntf_written *w = &ntf_sync.mails[i];
        if (!w->ok)
            continue;
        if (ntf_path(tmp, sizeof(tmp), ntf_sync.dir, "tmp", w->event_id) < 0 ||
            ntf_path(dst, sizeof(dst), ntf_sync.dir, "new", w->event_id) < 0)
            return -1;
        rc = rename(tmp, dst);
        w->published = rc == 0;
    }
    snprintf(newdir, sizeof(newdir), "%s/new", ntf_sync.dir);
    if (rc == 0)
        rc = ntf_sync_path(newdir, false);
    for (size_t i = 0; rc == 0 && i < ntf_sync.n; i++)
        if (!ntf_sync.mails[i].ok && ntf_path(tmp, sizeof(tmp), ntf_sync.dir, "tmp",
                                              ntf_sync.mails[i].event_id) == 0)
            unlink(tmp);
    return rc;
}

/* Marks the mails this transaction sent when none of its writes was undone
 * (no savepoint rolled back: the optimistic attempt, or a careful one where
 * every record went through): every row it wrote is in it, so the last write
 * of each id in this transaction is sent, without asking the store. Writes
 * of an earlier, rolled-back attempt or batch are not. */
static void ntf_sync_trust(uint64_t tx)
{
    qsort(ntf_sync.mails, ntf_sync.n, sizeof(ntf_sync.mails[0]), ntf_written_cmp);
    for (size_t i = 0; i < ntf_sync.n; i++) {
        ntf_written *w = &ntf_sync.mails[i];
        bool last = i + 1 == ntf_sync.n ||
                    strcmp(w->event_id, ntf_sync.mails[i + 1].event_id) != 0;
        w->ok = last && w->tx == tx;
    }
}

/* ev_service_def.before_commit: the batch's mails reach new/ and the disk
 * before their SENT rows commit; on failure their files are removed, the
 * batch is rolled back and re-run, writing them again. */
static int ntf_before_commit(ev_ctx *ctx, ev_error *err)
{
    if (ntf_sync.n == 0) {
        ntf_sync.token[0] = '\0'; /* drawn, but no row carries it */
        return 0;
    }
    ev_store *store = ev_ctx_store(ctx);
    int rc = 0;
    if (ev_store_tx_undone(store))
        rc = ntf_sync_check(ctx, err);
    else
        ntf_sync_trust(ev_store_tx_seq(store));
    if (rc == 0 && ntf_sync_publish() != 0)
        rc = ev_error_set(err, EV_ERETRY, "sync %s: %s", ntf_sync.dir, strerror(errno));
    ntf_sync_forget(rc != 0);
    return rc;
}

/* Writes text as tmp/<event_id>.eml, published by ntf_before_commit if this
 * delivery (its row with the batch's token) commits. A mail written again (a
 * re-run batch) gets the same name and bytes. */
static int ntf_deliver(ev_ctx *ctx, const char *event_id, const char *text, ev_error *err)
{
    char dir[600], tmp[1024];
    int rc = ntf_maildir(ctx, dir, sizeof(dir), err);
    if (rc < 0)
        return rc;
    if (ntf_path(tmp, sizeof(tmp), dir, "tmp", event_id) < 0)
        return ev_error_set(err, EV_EINVAL, "mail path too long");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return ev_error_set(err, EV_ERETRY, "open %s: %s", tmp, strerror(errno));
    if (ntf_write_all(fd, text, strlen(text)) < 0) {
        rc = ev_error_set(err, EV_ERETRY, "write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return rc;
    }
    return ntf_sync_note(dir, event_id, fd, ev_store_tx_seq(ev_ctx_store(ctx)), err);
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

/* A mail, composed. */
typedef struct ntf_mail {
    char order_id[EV_SUBJECT_MAX];
    char corr[EV_ID_MAX]; /* the milestone's flow */
    char tmpl[64];
    char text[2048];
} ntf_mail;

/* A mail's row as stored: what the milestone said, read back or in memory. */
typedef struct ntf_fields {
    const char *order_id, *tmpl, *subject, *body, *at, *corr;
} ntf_fields;

/* The mail of the row f, whose id is event_id, addressed to addr, into *m. */
static int ntf_compose(const ntf_fields *f, const char *event_id, const char *addr,
                       ntf_mail *m, ev_error *err)
{
    snprintf(m->order_id, sizeof(m->order_id), "%s", f->order_id);
    snprintf(m->tmpl, sizeof(m->tmpl), "%s", f->tmpl);
    snprintf(m->corr, sizeof(m->corr), "%s", f->corr);
    int n = snprintf(m->text, sizeof(m->text),
                     "From: choreo shop <shop@choreo.invalid>\r\nTo: <%s>\r\n"
                     "Subject: %s\r\nDate: %s\r\nMessage-ID: <%s@choreo.invalid>\r\n"
                     "X-Choreo-Order: %s\r\nX-Choreo-Template: %s\r\n"
                     "Content-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n",
                     addr, f->subject, f->at, event_id, m->order_id, m->tmpl, f->body);
    if (n < 0 || (size_t)n >= sizeof(m->text))
        return ev_error_set(err, EV_EINVAL, "mail for %s too long", m->order_id);
    return 0;
}

/* The file and notification.sent of a mail whose row now says SENT to addr
 * with the batch's token: an event of the milestone's flow caused by the
 * milestone, whichever event released the mail. */
static int ntf_release(ev_ctx *ctx, const char *event_id, const char *addr,
                       const ntf_mail *m, ev_error *err)
{
    int rc = ntf_deliver(ctx, event_id, m->text, err);
    if (rc < 0)
        return rc;
    ev_log(EV_LOG_DEBUG, "mail sent", "order_id=%s template=%s mail=%s.eml", m->order_id,
           m->tmpl, event_id);
    return ev_emit_deferred(ctx, "notification.sent",
                            json_pack("{s:s, s:s, s:s, s:s}", "order_id", m->order_id,
                                      "channel", "email", "template", m->tmpl, "to",
                                      addr),
                            event_id, m->corr, event_id, err);
}

/* Sends one pending mail to addr: takes its row from PENDING to SENT first (a
 * mail sent meanwhile by another instance changes no row and is skipped),
 * then ntf_release. */
static int ntf_send(ev_ctx *ctx, const char *event_id, const char *addr, ev_error *err)
{
    ev_stmt *st =
        ev_store_bind(ev_ctx_store(ctx), err,
                      "UPDATE mails SET status = 'SENT', to_addr = ?2, sent_token = ?3"
                      " WHERE event_id = ?1 AND status = 'PENDING'"
                      " RETURNING order_id, template, subject, body, at, corr",
                      "sss", event_id, addr, ntf_sync_token());
    if (st == NULL)
        return err->code;
    int rc = ev_stmt_step(st, err);
    if (rc <= 0)
        return rc; /* no row: not pending any more */
    ntf_fields f = {ev_stmt_text(st, 0), ev_stmt_text(st, 1), ev_stmt_text(st, 2),
                    ev_stmt_text(st, 3), ev_stmt_text(st, 4), ev_stmt_text(st, 5)};
    ntf_mail m;
    rc = ntf_compose(&f, event_id, addr, &m, err);
    ev_stmt_reset(st);
    return rc < 0 ? rc : ntf_release(ctx, event_id, addr, &m, err);
}

/* Writes the order's row: its customer, or "" (a milestone, before the order
 * is known), which never replaces a customer; *pending: its pending mails. */
static int ntf_note_order(ev_ctx *ctx, const char *order_id, const char *customer_id,
                          int64_t *pending, ev_error *err)
{
    return ev_store_query_int(
        ev_store_bind(ev_ctx_store(ctx), err,
                      "INSERT INTO orders(order_id, customer_id) VALUES(?1, ?2)"
                      " ON CONFLICT(order_id) DO UPDATE SET customer_id = CASE"
                      " WHEN orders.customer_id = '' THEN excluded.customer_id"
                      " ELSE orders.customer_id END RETURNING pending",
                      "ss", order_id, customer_id),
        0, pending, NULL, err);
}

/* Writes the customer's row: the address, or "" (not registered yet), which
 * never replaces an address. */
static int ntf_note_customer(ev_ctx *ctx, const char *customer_id, const char *email,
                             ev_error *err)
{
    return ev_store_exec(
        ev_store_bind(ev_ctx_store(ctx), err,
                      "INSERT INTO customers(customer_id, email) VALUES(?1, ?2)"
                      " ON CONFLICT(customer_id) DO UPDATE SET email = CASE"
                      " WHEN excluded.email = '' THEN customers.email"
                      " ELSE excluded.email END",
                      "ss", customer_id, email),
        err);
}

/* The address of the order's customer into addr ("" while either is
 * unknown), writing the customer's row (ntf_migrations says why): one
 * statement, the upsert returns the row it wrote. */
static int ntf_address(ev_ctx *ctx, const char *order_id, char *addr, size_t cap,
                       ev_error *err)
{
    addr[0] = '\0';
    return ev_store_query_text(
        ev_store_bind(ev_ctx_store(ctx), err,
                      "INSERT INTO customers(customer_id, email)"
                      " SELECT customer_id, '' FROM orders"
                      " WHERE order_id = ?1 AND customer_id <> ''"
                      " ON CONFLICT(customer_id) DO UPDATE SET email = customers.email"
                      " RETURNING email",
                      "s", order_id),
        addr, cap, NULL, err);
}

/* Sends the order's pending mails once its customer's address is known. */
static int ntf_flush(ev_ctx *ctx, const char *order_id, ev_error *err)
{
    char addr[256];
    int rc = ntf_address(ctx, order_id, addr, sizeof(addr), err);
    if (rc < 0 || !addr[0])
        return rc;
    json_t *ids = NULL;
    rc = ntf_column(ev_store_bind(ev_ctx_store(ctx), err,
                                  "SELECT event_id FROM mails WHERE order_id = ?1"
                                  " AND status = 'PENDING' ORDER BY seq, event_id",
                                  "s", order_id),
                    &ids, err);
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id)
    {
        if (rc == 0)
            rc = ntf_send(ctx, json_string_value(id), addr, err);
    }
    if (rc == 0 && json_array_size(ids) > 0)
        rc = ev_store_exec(
            ev_store_bind(ev_ctx_store(ctx), err,
                          "UPDATE orders SET pending = 0 WHERE order_id = ?1", "s",
                          order_id),
            err);
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
    int rc = ntf_note_customer(ctx, id, email, err);
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
    int64_t pending = 0;
    int rc = ntf_note_order(ctx, id, customer, &pending, err);
    return rc < 0 || pending == 0 ? rc : ntf_flush(ctx, id, err);
}

/* Stores a milestone's mail f (id event_id) after the order's other mails:
 * PENDING while addr is "", else SENT to addr at once (the order has no
 * pending mail then: see ntf_migrations), with its file and
 * notification.sent. A mail already stored (a redelivery past the inbox's
 * pruning) is left as it is. */
static int ntf_store_mail(ev_ctx *ctx, const char *event_id, const ntf_fields *f,
                          const char *addr, ev_error *err)
{
    if (!addr[0]) { /* pending, counted in the order's row */
        ev_stmt *st = ev_store_bind(
            ev_ctx_store(ctx), err,
            "INSERT INTO mails(event_id, order_id, template, subject, body, at,"
            " corr, seq) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7,"
            " (SELECT COALESCE(MAX(seq), 0) + 1 FROM mails WHERE order_id = ?2))"
            " ON CONFLICT(event_id) DO NOTHING",
            "sssssss", event_id, f->order_id, f->tmpl, f->subject, f->body, f->at,
            f->corr);
        int rc = ev_store_exec(st, err);
        if (rc == 0 && ev_stmt_changes(st) == 1)
            rc = ev_store_exec(
                ev_store_bind(
                    ev_ctx_store(ctx), err,
                    "UPDATE orders SET pending = pending + 1 WHERE order_id = ?1", "s",
                    f->order_id),
                err);
        return rc;
    }
    ntf_mail m;
    int rc = ntf_compose(f, event_id, addr, &m, err);
    if (rc < 0)
        return rc;
    bool inserted = false;
    char got[EV_ID_MAX];
    rc = ev_store_query_text(
        ev_store_bind(
            ev_ctx_store(ctx), err,
            "INSERT INTO mails(event_id, order_id, template, subject, body, at, corr,"
            " seq, status, to_addr, sent_token) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7,"
            " (SELECT COALESCE(MAX(seq), 0) + 1 FROM mails WHERE order_id = ?2),"
            " 'SENT', ?8, ?9) ON CONFLICT(event_id) DO NOTHING RETURNING event_id",
            "sssssssss", event_id, f->order_id, f->tmpl, f->subject, f->body, f->at,
            f->corr, addr, ntf_sync_token()),
        got, sizeof(got), &inserted, err);
    if (rc < 0 || !inserted)
        return rc;
    return ntf_release(ctx, event_id, addr, &m, err);
}

/* A milestone: its mail, sent at once when the order's address is known,
 * else queued until it is. */
static int ntf_on_milestone(ev_ctx *ctx, const ev_envelope *ev, ev_error *err)
{
    const ntf_template *t = NULL;
    for (size_t i = 0; i < sizeof(ntf_templates) / sizeof(ntf_templates[0]); i++)
        if (strcmp(ntf_templates[i].type, ev->type) == 0)
            t = &ntf_templates[i];
    const char *id = json_string_value(json_object_get(ev->data, "order_id"));
    if (!t || !id)
        return ev_error_set(err, EV_ESCHEMA, "%s: no template or order_id", ev->type);
    char oid[EV_SUBJECT_MAX], detail[EV_SUBJECT_MAX], subject[300], body[600], addr[256];
    ntf_clean(oid, sizeof(oid), id);
    ntf_clean(detail, sizeof(detail),
              json_string_value(json_object_get(ev->data, t->detail_field)));
    snprintf(subject, sizeof(subject), "Your order %s: %s", oid, t->subject);
    snprintf(body, sizeof(body),
             "Hello,\r\n\r\nyour order %s %s %s.\r\n\r\n-- choreo shop", oid, t->phrase,
             detail);
    ntf_fields f = {id,   t->name,  subject,
                    body, ev->time, ev->correlationid[0] ? ev->correlationid : ev->id};
    int64_t pending = 0; /* none once the address is known */
    int rc = ntf_note_order(ctx, id, "", &pending, err);
    if (rc == 0)
        rc = ntf_address(ctx, id, addr, sizeof(addr), err);
    return rc < 0 ? rc : ntf_store_mail(ctx, ev->id, &f, addr, err);
}

/* ---- dump --------------------------------------------------------------- */

static int ntf_dump(ev_store *s, json_t **out, ev_error *err)
{
    ev_stmt *st = ev_store_stmt(s,
                                "SELECT event_id, order_id, template, to_addr, status"
                                " FROM mails ORDER BY order_id, seq, event_id",
                                err);
    if (!st)
        return err->code;
    json_t *mails = json_array();
    json_int_t sent = 0, pending = 0;
    int rc = ev_stmt_step(st, err);
    for (; rc == 1; rc = ev_stmt_step(st, err)) {
        const char *status = ev_stmt_text(st, 4);
        if (strcmp(status, "SENT") == 0)
            sent++;
        else
            pending++;
        json_array_append_new(mails, json_pack("{s:s, s:s, s:s, s:s, s:s}", "event_id",
                                               ev_stmt_text(st, 0), "order_id",
                                               ev_stmt_text(st, 1), "template",
                                               ev_stmt_text(st, 2), "to",
                                               ev_stmt_text(st, 3), "status", status));
    }
    if (rc < 0) {
        json_decref(mails);
        return rc;
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
