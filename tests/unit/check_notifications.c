/* SPDX-License-Identifier: MIT */
/* notifications' handlers and before_commit on both stores, driven as the
 * runtime drives them: statements per event, the mail's bytes whichever way
 * it was sent, and which files a batch publishes when a record or a whole
 * attempt is undone. */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime_internal.h"
#include "store_fixture.h"

/* Statements the service issues (prepared-statement fetches), counted by
 * wrapping its calls: notifications.c is compiled into this test. */
static int n_stmts;
#define ev_store_bind(s, ...) (n_stmts++, ev_store_bind(s, __VA_ARGS__))
#define ev_ctx_stmt(c, ...) (n_stmts++, ev_ctx_stmt(c, __VA_ARGS__))
#include "../../services/notifications/notifications.c"
#undef ev_store_bind
#undef ev_ctx_stmt

#define DATE "2026-12-04T10:00:00.000Z"
#define ADDR "ann@example.com"

/* ---- a runtime around the service, without Kafka -------------------------- */

static ev_config cfg;
static ev_runtime rt;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rig_up(void)
{
    ev_error err = {0};
    ck_assert_msg(ev_config_from_env(&cfg, "notifications", &err) == 0, "%s", err.text);
    snprintf(cfg.data_dir, sizeof(cfg.data_dir), "/tmp/check_notifications.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(cfg.data_dir));
    cfg.topic_prefix[0] = '\0';
    rt =
        (ev_runtime){.def = &notifications_def, .cfg = &cfg, .limits = ev_limits_default};
    snprintf(rt.source, sizeof(rt.source), "/choreo/notifications");
    ck_assert_msg(ev_rt_load_contract(&rt, &err) == 0, "%s", err.text);
    rt.store = sf_open_with(ntf_migrations, N_OF(ntf_migrations));
}

static void rig_down(void)
{
    ev_rt_free_state(&rt);
    nftw(cfg.data_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Runs the handler of type on an event with that id and data (stolen). */
static int apply(const char *type, const char *id, json_t *data)
{
    ev_envelope ev;
    ev_error err = {0};
    ck_assert_int_eq(ev_envelope_init(&ev, type, "/test", id, data, &err), 0);
    snprintf(ev.id, sizeof(ev.id), "%s", id);
    snprintf(ev.correlationid, sizeof(ev.correlationid), "flow-%s", id);
    snprintf(ev.time, sizeof(ev.time), "%s", DATE);
    const ev_handler *h = notifications_def.handlers;
    while (h->type != NULL && strcmp(h->type, type) != 0)
        h++;
    ck_assert_ptr_nonnull(h->type);
    ev_ctx ctx = {.rt = &rt, .cause = &ev, .now_ms = 1};
    int rc = h->fn(&ctx, &ev, &err);
    if (rc == 0)
        rc = ctx.failed;
    ck_assert_msg(rc == 0, "%s %s: %s", type, id, err.text);
    ev_envelope_clear(&ev);
    return rc;
}

static void customer(const char *cid, const char *email)
{
    apply("customer.registered", cid,
          json_pack("{s:s, s:s, s:s, s:i}", "customer_id", cid, "name", "Ann", "email",
                    email, "credit_limit_cents", 100000));
}

static void placed(const char *oid, const char *cid)
{
    char id[64];
    snprintf(id, sizeof(id), "placed-%s", oid);
    apply("order.placed", id,
          json_pack("{s:s, s:s, s:[{s:s, s:i, s:i}], s:i, s:s}", "order_id", oid,
                    "customer_id", cid, "items", "sku", "s1", "qty", 1,
                    "unit_price_cents", 100, "total_cents", 100, "currency", "EUR"));
}

static void confirmed(const char *id, const char *oid)
{
    apply("order.confirmed", id,
          json_pack("{s:s, s:s}", "order_id", oid, "payment_id", "pay-1"));
}

static void dispatched(const char *id, const char *oid)
{
    apply("shipment.dispatched", id,
          json_pack("{s:s, s:s}", "order_id", oid, "shipment_id", "shp-1"));
}

static int before_commit(void)
{
    ev_ctx ctx = {.rt = &rt, .now_ms = 1};
    ev_error err = {0};
    int rc = notifications_def.before_commit(&ctx, &err);
    if (rc == 0)
        rc = ev_store_flush(rt.store, &err);
    ck_assert_msg(rc == 0, "before_commit: %s", err.text);
    return rc;
}

/* A batch that commits after its before_commit. */
static void commit(void)
{
    before_commit();
    OK(ev_store_commit(rt.store, &e_));
}

/* <maildir>/<sub>/<id>.eml: its bytes into buf (true), or false when absent. */
static bool mail_file(const char *sub, const char *id, char *buf, size_t cap)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/maildir/%s/%s.eml", cfg.data_dir, sub, id);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    return true;
}

static bool published(const char *id)
{
    char buf[2048];
    return mail_file("new", id, buf, sizeof(buf));
}

static bool left_in_tmp(const char *id)
{
    char buf[2048];
    return mail_file("tmp", id, buf, sizeof(buf));
}

/* The mail's status and to in the dump ("" when there is no such mail). */
static void mail_row(const char *id, char status[16], char to[64])
{
    json_t *out = NULL;
    status[0] = to[0] = '\0';
    OK(ntf_dump(rt.store, &out, &e_));
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(out, "mails"), i, m)
    {
        if (strcmp(json_string_value(json_object_get(m, "event_id")), id) != 0)
            continue;
        snprintf(status, 16, "%s", json_string_value(json_object_get(m, "status")));
        snprintf(to, 64, "%s", json_string_value(json_object_get(m, "to")));
    }
    json_decref(out);
}

typedef struct sent_walk {
    size_t n;
    char ids[8][64]; /* "to" of the first ones */
} sent_walk;

static int collect_sent(void *arg, int64_t id, const char *topic, const char *key,
                        const void *value, size_t len, const char *headers_json)
{
    (void)id;
    (void)key;
    (void)headers_json;
    sent_walk *w = arg;
    ck_assert_str_eq(topic, "notifications");
    json_t *ev = json_loadb(value, len, 0, NULL);
    ck_assert_ptr_nonnull(ev);
    ck_assert_str_eq(json_string_value(json_object_get(ev, "type")), "notification.sent");
    if (w->n < 8)
        snprintf(w->ids[w->n], sizeof(w->ids[0]), "%s",
                 json_string_value(json_object_get(json_object_get(ev, "data"), "to")));
    w->n++;
    json_decref(ev);
    return 0;
}

static sent_walk sent_events(void)
{
    sent_walk w = {0};
    OK(ev_store_outbox_each(rt.store, 0, 0, collect_sent, &w, &e_));
    return w;
}

/* The mail of an order.confirmed with id (payment pay-1) for oid to ADDR, as
 * every version of the service wrote it. */
static void expected_confirmed(char *buf, size_t cap, const char *id, const char *oid)
{
    snprintf(buf, cap,
             "From: choreo shop <shop@choreo.invalid>\r\nTo: <" ADDR ">\r\n"
             "Subject: Your order %s: confirmed\r\nDate: " DATE "\r\n"
             "Message-ID: <%s@choreo.invalid>\r\nX-Choreo-Order: %s\r\n"
             "X-Choreo-Template: order_confirmed\r\n"
             "Content-Type: text/plain; charset=utf-8\r\n\r\n"
             "Hello,\r\n\r\nyour order %s is confirmed, payment pay-1.\r\n\r\n"
             "-- choreo shop\r\n",
             oid, id, oid, oid);
}

/* ---- statements ------------------------------------------------------------- */

/* The bench's order: order.placed after the customer, then two milestones,
 * each batch on its own. order.placed with no mail pending costs 1 statement
 * (was 3: the address and the pending mails were read). A milestone whose address is
 * known costs 3 statements (was 6: the pending mail was inserted, looked up and updated),
 * and before_commit none: no savepoint was rolled back, so every row the
 * transaction wrote is in it. */
START_TEST(milestone_with_known_address_takes_three_statements)
{
    rig_up();
    OK(ev_store_begin(rt.store, &e_));
    customer("c1", ADDR);
    commit();
    OK(ev_store_begin_pipelined(rt.store, &e_));
    n_stmts = 0;
    placed("o1", "c1"); /* no mail pending: the order's row only */
    ck_assert_int_eq(n_stmts, 1);
    commit();
    static const char *const ids[] = {"m-conf", "m-disp"};
    for (size_t i = 0; i < 2; i++) {
        OK(ev_store_begin_pipelined(rt.store, &e_));
        n_stmts = 0;
        if (i == 0)
            confirmed(ids[i], "o1");
        else
            dispatched(ids[i], "o1");
        ck_assert_int_eq(n_stmts, 3);
        before_commit();
        ck_assert_int_eq(n_stmts, 3);
        OK(ev_store_commit(rt.store, &e_));
        char status[16], to[64];
        mail_row(ids[i], status, to);
        ck_assert_str_eq(status, "SENT");
        ck_assert_str_eq(to, ADDR);
        ck_assert(published(ids[i]));
        ck_assert(!left_in_tmp(ids[i]));
    }
    sent_walk w = sent_events();
    ck_assert_uint_eq(w.n, 2);
    ck_assert_str_eq(w.ids[0], ADDR);
    rig_down();
}
END_TEST

/* The mail sent at once has the bytes of one that waited for its address. */
START_TEST(mail_bytes_same_sent_at_once_or_after_waiting)
{
    rig_up();
    OK(ev_store_begin(rt.store, &e_));
    customer("c1", ADDR);
    placed("o1", "c1");
    confirmed("m-now", "o1");   /* address known: sent at once */
    confirmed("m-later", "o2"); /* order unknown: pending */
    char status[16], to[64];
    mail_row("m-later", status, to);
    ck_assert_str_eq(status, "PENDING");
    placed("o2", "c1"); /* releases it */
    commit();
    char want[2048], got[2048];
    expected_confirmed(want, sizeof(want), "m-now", "o1");
    ck_assert(mail_file("new", "m-now", got, sizeof(got)));
    ck_assert_str_eq(got, want);
    expected_confirmed(want, sizeof(want), "m-later", "o2");
    ck_assert(mail_file("new", "m-later", got, sizeof(got)));
    ck_assert_str_eq(got, want);
    ck_assert_uint_eq(sent_events().n, 2);
    rig_down();
}
END_TEST

/* Milestones before the customer registered wait, and go out in the order
 * they came once the address is known; a later milestone follows them. */
START_TEST(milestones_before_the_address_keep_their_order)
{
    rig_up();
    OK(ev_store_begin(rt.store, &e_));
    dispatched("m-b", "o1"); /* ids not in arrival order */
    placed("o1", "c1");
    confirmed("m-a", "o1");
    char status[16], to[64];
    mail_row("m-a", status, to);
    ck_assert_str_eq(status, "PENDING");
    customer("c1", ADDR);
    dispatched("m-c", "o1");
    commit();
    json_t *out = NULL;
    OK(ntf_dump(rt.store, &out, &e_));
    static const char *const order[] = {"m-b", "m-a", "m-c"};
    json_t *mails = json_object_get(out, "mails");
    ck_assert_uint_eq(json_array_size(mails), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *m = json_array_get(mails, i);
        ck_assert_str_eq(json_string_value(json_object_get(m, "event_id")), order[i]);
        ck_assert_str_eq(json_string_value(json_object_get(m, "status")), "SENT");
        ck_assert(published(order[i]));
    }
    json_decref(out);
    rig_down();
}
END_TEST

/* ---- before_commit's check --------------------------------------------------- */

/* A careful run: a record rolled back to its savepoint leaves no mail, the
 * next record's is published. */
START_TEST(mail_of_a_record_rolled_back_is_not_published)
{
    rig_up();
    OK(ev_store_begin(rt.store, &e_));
    customer("c1", ADDR);
    placed("o1", "c1");
    placed("o2", "c1");
    commit();
    OK(ev_store_begin(rt.store, &e_));
    OK(ev_store_savepoint(rt.store, &e_));
    confirmed("m-undone", "o1");
    OK(ev_store_rollback_to(rt.store, &e_));
    OK(ev_store_savepoint(rt.store, &e_));
    confirmed("m-kept", "o2");
    OK(ev_store_release(rt.store, &e_));
    commit();
    ck_assert(!published("m-undone"));
    ck_assert(!left_in_tmp("m-undone"));
    ck_assert(published("m-kept"));
    char status[16], to[64];
    mail_row("m-undone", status, to);
    ck_assert_str_eq(status, "");
    ck_assert_uint_eq(sent_events().n, 1);
    rig_down();
}
END_TEST

/* An optimistic attempt rolled back, then the careful run: a mail both wrote
 * is published once (the check passes), one only the aborted attempt wrote
 * is not, nor one whose record the careful run rolled back. */
START_TEST(mail_written_by_both_attempts_is_published_once)
{
    rig_up();
    OK(ev_store_begin(rt.store, &e_));
    customer("c1", ADDR);
    placed("o1", "c1");
    placed("o2", "c1");
    placed("o3", "c1");
    confirmed("m-pending", "o4"); /* released by order.placed in both attempts */
    commit();
    for (int round = 0; round < 2; round++) {
        if (round == 0)
            OK(ev_store_begin_pipelined(rt.store, &e_));
        else
            OK(ev_store_begin(rt.store, &e_));
        confirmed("m-both", "o1");
        placed("o4", "c1");
        if (round == 0) {
            confirmed("m-first", "o2");
            OK(ev_store_rollback(rt.store, &e_));
            continue;
        }
        OK(ev_store_savepoint(rt.store, &e_));
        confirmed("m-careful-undone", "o3");
        OK(ev_store_rollback_to(rt.store, &e_));
    }
    commit();
    ck_assert(published("m-both"));
    ck_assert(published("m-pending"));
    static const char *const gone[] = {"m-first", "m-careful-undone"};
    for (size_t i = 0; i < 2; i++) {
        ck_assert(!published(gone[i]));
        ck_assert(!left_in_tmp(gone[i]));
    }
    ck_assert(!left_in_tmp("m-both"));
    ck_assert_uint_eq(sent_events().n, 2);
    rig_down();
}
END_TEST

/* An attempt rolled back as a whole, then one with no savepoint undone:
 * before_commit asks the store nothing, publishes what the second wrote and
 * drops what only the first wrote. */
START_TEST(whole_transaction_publishes_its_own_mails_unasked)
{
    rig_up();
    OK(ev_store_begin(rt.store, &e_));
    customer("c1", ADDR);
    placed("o1", "c1");
    placed("o2", "c1");
    commit();
    OK(ev_store_begin_pipelined(rt.store, &e_));
    confirmed("m-both", "o1");
    confirmed("m-first", "o2");
    OK(ev_store_rollback(rt.store, &e_));
    OK(ev_store_begin_pipelined(rt.store, &e_));
    confirmed("m-both", "o1");
    n_stmts = 0;
    before_commit();
    ck_assert_int_eq(n_stmts, 0);
    OK(ev_store_commit(rt.store, &e_));
    ck_assert(published("m-both"));
    ck_assert(!left_in_tmp("m-both"));
    ck_assert(!published("m-first"));
    ck_assert(!left_in_tmp("m-first"));
    ck_assert_uint_eq(sent_events().n, 1);
    rig_down();
}
END_TEST

/* A batch of 70 mails, every 5th undone: the check costs a statement per
 * NTF_CHECK_IDS distinct mails, and publishes exactly the kept ones. */
START_TEST(check_asks_per_chunk_of_mails)
{
    enum { N = 70 };
    rig_up();
    OK(ev_store_begin(rt.store, &e_));
    customer("c1", ADDR);
    char oid[32], id[32];
    for (int i = 0; i < N; i++) {
        snprintf(oid, sizeof(oid), "o%02d", i);
        placed(oid, "c1");
    }
    commit();
    OK(ev_store_begin(rt.store, &e_));
    for (int i = 0; i < N; i++) {
        snprintf(oid, sizeof(oid), "o%02d", i);
        snprintf(id, sizeof(id), "m%02d", i);
        OK(ev_store_savepoint(rt.store, &e_));
        confirmed(id, oid);
        if (i % 5 == 0)
            OK(ev_store_rollback_to(rt.store, &e_));
        else
            OK(ev_store_release(rt.store, &e_));
    }
    n_stmts = 0;
    before_commit();
    ck_assert_int_eq(n_stmts, (N + NTF_CHECK_IDS - 1) / NTF_CHECK_IDS);
    OK(ev_store_commit(rt.store, &e_));
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "m%02d", i);
        ck_assert_msg(published(id) == (i % 5 != 0), "%s", id);
        ck_assert_msg(!left_in_tmp(id), "%s", id);
    }
    ck_assert_uint_eq(sent_events().n, N - N / 5);
    rig_down();
}
END_TEST

static const test_ref neutral_tests[] = {
    T(milestone_with_known_address_takes_three_statements),
    T(mail_bytes_same_sent_at_once_or_after_waiting),
    T(milestones_before_the_address_keep_their_order),
    T(mail_of_a_record_rolled_back_is_not_published),
    T(mail_written_by_both_attempts_is_published_once),
    T(check_asks_per_chunk_of_mails),
    T(whole_transaction_publishes_its_own_mails_unasked),
};

int main(void)
{
    ev_log_init("check_notifications");
    return sf_run("notifications", neutral_tests, N_OF(neutral_tests), NULL, 0, NULL, 0);
}
