/* SPDX-License-Identifier: MIT */
/* The five services' declarations against schemas/choreography.json: handled
 * types = consumes, emits = emits, timers, and their tables and dumps (on
 * SQLite, and on PostgreSQL when CHOREO_TEST_PG is set). */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "contract.h"
#include "harness.h"
#include "schema.h"
#include "store.h"

/* The services' definitions are compiled into this test (their statics carry
 * a per-service prefix, so the five files share one translation unit). */
#include "../../services/inventory/inventory.c"
#include "../../services/notifications/notifications.c"
#include "../../services/orders/orders.c"
#include "../../services/payments/payments.c"
#include "../../services/shipping/shipping.c"

static const ev_service_def *const defs[] = {
    &orders_def, &inventory_def, &payments_def, &shipping_def, &notifications_def,
};
#define N_DEFS (sizeof(defs) / sizeof(defs[0]))

static ev_contract *contract;
static char tmpdir[64];

static void setup(void)
{
    ev_error err = {0};
    int rc = ev_contract_load(&contract, EV_SCHEMA_DIR "/choreography.json", &err);
    ck_assert_msg(rc == 0, "contract: %s", err.text);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_services.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void teardown(void)
{
    ev_contract_free(contract);
    contract = NULL;
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static bool in_list(const char *const *list, const char *s)
{
    for (size_t i = 0; list && list[i]; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

static size_t list_len(const char *const *list)
{
    size_t n = 0;
    while (list && list[n])
        n++;
    return n;
}

/* The handler table's types, NULL-terminated, in a caller's array. */
static size_t handler_types(const ev_service_def *d, const char **out, size_t cap)
{
    size_t n = 0;
    for (const ev_handler *h = d->handlers; h->type && n + 1 < cap; h++)
        out[n++] = h->type;
    out[n] = NULL;
    return n;
}

/* The handler table has exactly the types the contract says it consumes. */
START_TEST(test_handlers_equal_consumes)
{
    const ev_service_def *d = defs[_i];
    const char *const *consumes = ev_contract_consumes(contract, d->name);
    ck_assert_msg(consumes != NULL, "%s not in the contract", d->name);
    const char *types[64];
    size_t n = handler_types(d, types, 64);
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(in_list(consumes, types[i]), "%s handles %s, not in consumes",
                      d->name, types[i]);
        for (size_t j = i + 1; j < n; j++)
            ck_assert_msg(strcmp(types[i], types[j]) != 0, "%s handles %s twice", d->name,
                          types[i]);
    }
    for (size_t i = 0; consumes[i]; i++)
        ck_assert_msg(in_list(types, consumes[i]), "%s consumes %s without a handler",
                      d->name, consumes[i]);
}
END_TEST

/* def.emits equals the contract's emits, and the contract names this
 * service as the producer of each. */
START_TEST(test_emits_equal_contract)
{
    const ev_service_def *d = defs[_i];
    const char *const *emits = ev_contract_emits(contract, d->name);
    ck_assert_msg(emits != NULL, "%s not in the contract", d->name);
    ck_assert_uint_eq(list_len(d->emits), list_len(emits));
    for (size_t i = 0; d->emits[i]; i++) {
        ck_assert_msg(in_list(emits, d->emits[i]), "%s emits %s, not in the contract",
                      d->name, d->emits[i]);
        const ev_event_route *r = ev_contract_route(contract, d->emits[i]);
        ck_assert_ptr_nonnull(r);
        ck_assert_str_eq(r->producer, d->name);
    }
}
END_TEST

/* A service has a timer callback exactly when the contract lists timers. */
START_TEST(test_timers_match_contract)
{
    const ev_service_def *d = defs[_i];
    json_t *svc =
        json_object_get(json_object_get(ev_contract_json(contract), "services"), d->name);
    json_t *timers = json_object_get(svc, "timers");
    bool declared = json_array_size(timers) > 0;
    ck_assert_msg(declared == (d->on_timer != NULL), "%s: timers %s, on_timer %s",
                  d->name, declared ? "declared" : "none", d->on_timer ? "set" : "NULL");
}
END_TEST

/* Every consumed and emitted type has a schema. */
START_TEST(test_types_have_schemas)
{
    const ev_service_def *d = defs[_i];
    ev_schema_set *set = ev_schema_set_new();
    ev_error err = {0};
    ck_assert_ptr_nonnull(set);
    ck_assert_msg(ev_schema_set_load_dir(set, EV_SCHEMA_DIR, &err) == 0, "%s", err.text);
    const char *types[64];
    handler_types(d, types, 64);
    for (size_t i = 0; types[i]; i++)
        ck_assert_msg(ev_schema_has_type(set, types[i]), "no schema for %s", types[i]);
    for (size_t i = 0; d->emits[i]; i++)
        ck_assert_msg(ev_schema_has_type(set, d->emits[i]), "no schema for %s",
                      d->emits[i]);
    ev_schema_set_free(set);
}
END_TEST

/* The migrations apply on a fresh database, again on reopen, and the dump of
 * an empty database is a JSON object naming the service. */
START_TEST(test_migrations_and_empty_dump)
{
    const ev_service_def *d = defs[_i];
    char path[256];
    snprintf(path, sizeof(path), "%s/%s/svc.db", tmpdir, d->name);
    ev_store_opts o = {
        .path = path, .migrations = d->migrations, .n_migrations = d->n_migrations};
    for (int round = 0; round < 2; round++) {
        ev_store *s = NULL;
        ev_error err = {0};
        ck_assert_msg(ev_store_open(&s, &o, &err) == 0, "%s: %s", d->name, err.text);
        ck_assert_ptr_nonnull(d->dump);
        json_t *out = NULL;
        ck_assert_msg(d->dump(s, &out, &err) == 0, "%s dump: %s", d->name, err.text);
        ck_assert(json_is_object(out));
        ck_assert_str_eq(json_string_value(json_object_get(out, "service")), d->name);
        json_decref(out);
        ev_store_close(s);
    }
}
END_TEST

/* notifications' migration 2 (seq replaces SQLite's rowid) keeps the mails of
 * a database made at migration 1 in the order they came, and later mails
 * follow them. */
START_TEST(test_notifications_upgrade_keeps_mail_order)
{
    static const char *const ids[] = {"z", "a", "m", "b"};
    char path[256];
    snprintf(path, sizeof(path), "%s/notifications-v1/svc.db", tmpdir);
    ev_store_opts o = {.path = path, .migrations = ntf_migrations, .n_migrations = 1};
    ev_store *s = NULL;
    ev_error err = {0};
    ck_assert_msg(ev_store_open(&s, &o, &err) == 0, "%s", err.text);
    for (size_t i = 0; i < 3; i++)
        ck_assert_msg(ev_store_exec(ev_store_bind(s, &err,
                                                  "INSERT INTO mails(event_id, order_id,"
                                                  " template, subject, body)"
                                                  " VALUES(?1, 'o1', 't', 's', 'b')",
                                                  "s", ids[i]),
                                    &err) == 0,
                      "%s", err.text);
    ev_store_close(s);
    o.n_migrations = sizeof(ntf_migrations) / sizeof(ntf_migrations[0]);
    ck_assert_msg(ev_store_open(&s, &o, &err) == 0, "%s", err.text);
    ck_assert_msg(ev_store_exec(ev_store_bind(s, &err,
                                              "INSERT INTO mails(event_id, order_id,"
                                              " template, subject, body, seq)"
                                              " VALUES(?1, 'o1', 't', 's', 'b',"
                                              " (SELECT COALESCE(MAX(seq), 0) + 1"
                                              " FROM mails WHERE order_id = 'o1'))",
                                              "s", ids[3]),
                                &err) == 0,
                  "%s", err.text);
    json_t *out = NULL;
    ck_assert_msg(ntf_dump(s, &out, &err) == 0, "%s", err.text);
    json_t *mails = json_object_get(out, "mails");
    ck_assert_uint_eq(json_array_size(mails), 4);
    for (size_t i = 0; i < 4; i++)
        ck_assert_str_eq(
            json_string_value(json_object_get(json_array_get(mails, i), "event_id")),
            ids[i]);
    json_decref(out);
    ev_store_close(s);
}
END_TEST

/* The same SQL on PostgreSQL: the migrations apply on a fresh schema, again
 * on reopen, and the dump of the empty schema works, read-only too. */
START_TEST(test_migrations_and_empty_dump_pg)
{
    const ev_service_def *d = defs[_i];
    char schema[64];
    ck_assert_int_eq(harness_pg_fresh_schema(schema, sizeof(schema), d->name), 0);
    ev_store_opts o = {.url = harness_pg_uri(),
                       .schema = schema,
                       .migrations = d->migrations,
                       .n_migrations = d->n_migrations};
    for (int round = 0; round < 3; round++) {
        ev_store *s = NULL;
        ev_error err = {0};
        o.readonly = round == 2;
        ck_assert_msg(ev_store_open(&s, &o, &err) == 0, "%s: %s", d->name, err.text);
        json_t *out = NULL;
        ck_assert_msg(d->dump(s, &out, &err) == 0, "%s dump: %s", d->name, err.text);
        ck_assert_str_eq(json_string_value(json_object_get(out, "service")), d->name);
        json_decref(out);
        ev_store_close(s);
    }
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS \"%s\" CASCADE", schema);
    ck_assert_int_eq(harness_pg_exec(sql), 0);
}
END_TEST

static Suite *services_suite(void)
{
    Suite *s = suite_create("services");
    TCase *tc = tcase_create("contract");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_handlers_equal_consumes, 0, N_DEFS);
    tcase_add_loop_test(tc, test_emits_equal_contract, 0, N_DEFS);
    tcase_add_loop_test(tc, test_timers_match_contract, 0, N_DEFS);
    tcase_add_loop_test(tc, test_types_have_schemas, 0, N_DEFS);
    tcase_add_loop_test(tc, test_migrations_and_empty_dump, 0, N_DEFS);
    tcase_add_test(tc, test_notifications_upgrade_keeps_mail_order);
    suite_add_tcase(s, tc);
    if (!harness_pg_uri()) {
        fprintf(stderr,
                "check_services: CHOREO_TEST_PG unset, PostgreSQL cases skipped\n");
        return s;
    }
    tc = tcase_create("postgresql");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_migrations_and_empty_dump_pg, 0, N_DEFS);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(services_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
