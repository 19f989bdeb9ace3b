/* SPDX-License-Identifier: MIT */
/* Unit tests of the event contract: schemas/choreography.json routes every type
 * of DESIGN.md, is consistent with itself, and has a schema file per type. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "contract.h"
#include "envelope.h"
#include "schema.h"

#define CONTRACT EV_SCHEMA_DIR "/choreography.json"
#define FIX EV_SCHEMA_DIR "/../tests/fixtures/envelope"

static ev_contract *load(void)
{
    ev_contract *c = NULL;
    ev_error err;
    int rc = ev_contract_load(&c, CONTRACT, &err);
    ck_assert_msg(rc == 0, "%s", err.text);
    ck_assert_ptr_nonnull(c);
    return c;
}

static size_t count(const char *const *list)
{
    size_t n = 0;
    while (list != NULL && list[n] != NULL)
        n++;
    return n;
}

static bool contains(const char *const *list, const char *s)
{
    for (size_t i = 0; list != NULL && list[i] != NULL; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

/* The contract table of DESIGN.md. */
static const ev_event_route design_routes[] = {
    {"customer.registered", "customers", "customer_id", "cli"},
    {"stock.added", "inventory", "sku", "cli"},
    {"order.placed", "orders", "order_id", "cli"},
    {"order.cancel_requested", "orders", "order_id", "cli"},
    {"order.confirmed", "orders", "order_id", "orders"},
    {"order.rejected", "orders", "order_id", "orders"},
    {"order.cancelled", "orders", "order_id", "orders"},
    {"order.completed", "orders", "order_id", "orders"},
    {"inventory.reserved", "inventory", "order_id", "inventory"},
    {"inventory.rejected", "inventory", "order_id", "inventory"},
    {"inventory.released", "inventory", "order_id", "inventory"},
    {"payment.authorized", "payments", "order_id", "payments"},
    {"payment.declined", "payments", "order_id", "payments"},
    {"payment.refunded", "payments", "order_id", "payments"},
    {"shipment.scheduled", "shipments", "order_id", "shipping"},
    {"shipment.cancelled", "shipments", "order_id", "shipping"},
    {"shipment.dispatched", "shipments", "order_id", "shipping"},
    {"shipment.returned", "shipments", "order_id", "shipping"},
    {"notification.sent", "notifications", "order_id", "notifications"},
};
#define N_DESIGN (sizeof(design_routes) / sizeof(design_routes[0]))

START_TEST(routes_every_type_of_the_design)
{
    ev_contract *c = load();
    const ev_event_route *want = &design_routes[_i];
    const ev_event_route *r = ev_contract_route(c, want->type);
    ck_assert_msg(r != NULL, "%s not routed", want->type);
    ck_assert_str_eq(r->type, want->type);
    ck_assert_str_eq(r->topic, want->topic);
    ck_assert_str_eq(r->key_field, want->key_field);
    ck_assert_str_eq(r->producer, want->producer);
    ev_contract_free(c);
}
END_TEST

START_TEST(has_no_types_beyond_the_design)
{
    ev_contract *c = load();
    size_t n;
    const ev_event_route *r = ev_contract_routes(c, &n);
    ck_assert_uint_eq(n, N_DESIGN);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(r[i].type, design_routes[i].type); /* file order */
    ck_assert_ptr_null(ev_contract_route(c, "order.exploded"));
    ck_assert_ptr_null(ev_contract_route(c, NULL));
    ev_contract_free(c);
}
END_TEST

START_TEST(topics_and_services_in_file_order)
{
    ev_contract *c = load();
    static const char *const topics[] = {"customers", "inventory", "orders",
                                         "payments",  "shipments", "notifications"};
    static const char *const services[] = {"orders", "inventory", "payments", "shipping",
                                           "notifications"};
    const char *const *t = ev_contract_topics(c);
    ck_assert_uint_eq(count(t), 6);
    for (size_t i = 0; i < 6; i++)
        ck_assert_str_eq(t[i], topics[i]);
    const char *const *s = ev_contract_services(c);
    ck_assert_uint_eq(count(s), 5);
    for (size_t i = 0; i < 5; i++)
        ck_assert_str_eq(s[i], services[i]);
    ck_assert_ptr_nonnull(json_object_get(ev_contract_json(c), "flow"));
    ev_contract_free(c);
}
END_TEST

static const struct {
    const char *service;
    const char *topics[6];
} service_topics[] = {
    {"orders", {"orders", "inventory", "payments", "shipments"}},
    {"inventory", {"inventory", "orders", "payments", "shipments"}},
    {"payments", {"customers", "orders", "inventory"}},
    {"shipping", {"orders"}},
    {"notifications", {"customers", "orders", "shipments", "payments"}},
};

START_TEST(service_topics_are_distinct_consumed_topics)
{
    ev_contract *c = load();
    const char *svc = service_topics[_i].service;
    const char *const *got = ev_contract_service_topics(c, svc);
    size_t n = 0;
    while (service_topics[_i].topics[n] != NULL)
        n++;
    ck_assert_uint_eq(count(got), n);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(got[i], service_topics[_i].topics[i]);
    /* every consumed type's topic is among them */
    for (const char *const *t = ev_contract_consumes(c, svc); *t != NULL; t++)
        ck_assert(contains(got, ev_contract_route(c, *t)->topic));
    ev_contract_free(c);
}
END_TEST

START_TEST(producers_and_emits_agree)
{
    ev_contract *c = load();
    size_t n;
    const ev_event_route *r = ev_contract_routes(c, &n);
    const char *const *services = ev_contract_services(c);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(r[i].producer, "cli") == 0)
            continue;
        ck_assert_msg(contains(services, r[i].producer), "%s: producer %s unknown",
                      r[i].type, r[i].producer);
        ck_assert_msg(contains(ev_contract_emits(c, r[i].producer), r[i].type),
                      "%s does not list %s in emits", r[i].producer, r[i].type);
    }
    for (const char *const *s = services; *s != NULL; s++)
        for (const char *const *t = ev_contract_emits(c, *s); *t != NULL; t++)
            ck_assert_str_eq(ev_contract_route(c, *t)->producer, *s);
    ck_assert_ptr_null(ev_contract_consumes(c, "billing"));
    ck_assert_ptr_null(ev_contract_emits(c, "billing"));
    ck_assert_ptr_null(ev_contract_service_topics(c, "billing"));
    ev_contract_free(c);
}
END_TEST

START_TEST(flow_names_only_known_types)
{
    ev_contract *c = load();
    json_t *flow = json_object_get(ev_contract_json(c), "flow");
    const char *type;
    json_t *steps;
    json_object_foreach(flow, type, steps)
    {
        if (type[0] == '$')
            continue;
        ck_assert_msg(ev_contract_route(c, type) != NULL, "flow: %s unknown", type);
        size_t i, j;
        json_t *alts, *alt;
        json_array_foreach(steps, i, alts)
        {
            json_array_foreach(alts, j, alt)
            {
                ck_assert_msg(ev_contract_route(c, json_string_value(alt)) != NULL,
                              "flow: %s -> %s unknown", type, json_string_value(alt));
            }
        }
    }
    ev_contract_free(c);
}
END_TEST

START_TEST(every_type_has_a_schema_file)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s.json", EV_SCHEMA_DIR, design_routes[_i].type);
    ck_assert_msg(access(path, R_OK) == 0, "missing %s", path);
}
END_TEST

/* ---- the schemas compile and accept the design's examples ------------- */

static ev_schema_set *schemas(void)
{
    ev_schema_set *s = ev_schema_set_new();
    ck_assert_ptr_nonnull(s);
    ev_error err;
    int rc = ev_schema_set_load_dir(s, EV_SCHEMA_DIR, &err);
    ck_assert_msg(rc == 0, "%s", err.text);
    return s;
}

static json_t *load_json(const char *sub, const char *name)
{
    char path[512];
    json_error_t jerr;
    snprintf(path, sizeof(path), "%s/%s/%s", FIX, sub, name);
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    ck_assert_msg(j != NULL, "%s: %s", path, jerr.text);
    return j;
}

START_TEST(every_type_schema_compiles)
{
    ev_schema_set *s = schemas();
    ck_assert_msg(ev_schema_has_type(s, design_routes[_i].type), "no schema for %s",
                  design_routes[_i].type);
    ev_schema_set_free(s);
}
END_TEST

START_TEST(design_example_validates)
{
    ev_schema_set *s = schemas();
    char name[128];
    snprintf(name, sizeof(name), "%s.json", design_routes[_i].type);
    json_t *data = load_json("valid", name);
    ev_error err;
    int rc = ev_schema_validate_type(s, design_routes[_i].type, data, &err);
    ck_assert_msg(rc == 0, "%s: %s", name, err.text);
    json_decref(data);
    ev_schema_set_free(s);
}
END_TEST

static const char *const invalid_files[] = {
    "customer.registered-email.json",     "inventory.reserved-no-sku.json",
    "notification.sent-channel.json",     "order.cancelled-reason.json",
    "order.placed-currency-lower.json",   "order.placed-id-65.json",
    "order.placed-id-empty.json",         "order.placed-items-empty.json",
    "order.placed-line-no-price.json",    "order.placed-no-customer.json",
    "order.placed-qty-string.json",       "order.placed-qty-zero.json",
    "order.placed-total-negative.json",   "order.placed-total-real.json",
    "order.rejected-reason.json",         "payment.declined-reason.json",
    "shipment.scheduled-not-object.json", "stock.added-qty-negative.json",
};

START_TEST(invalid_example_is_rejected)
{
    ev_schema_set *s = schemas();
    json_t *doc = load_json("invalid", invalid_files[_i]);
    const char *type = json_string_value(json_object_get(doc, "type"));
    ck_assert_ptr_nonnull(type);
    ev_error err;
    ev_error_clear(&err);
    int rc = ev_schema_validate_type(s, type, json_object_get(doc, "data"), &err);
    ck_assert_msg(rc == EV_ESCHEMA, "%s: got %d (%s)", invalid_files[_i], rc, err.text);
    ck_assert_str_ne(err.text, "");
    json_decref(doc);
    ev_schema_set_free(s);
}
END_TEST

START_TEST(our_envelopes_match_envelope_schema)
{
    ev_schema_set *s = schemas();
    ev_error err;
    static const char *const files[] = {"full.json", "minimal.json", "extensions.json",
                                        "time-offset.json", "unicode.json"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        json_t *env = load_json("good", files[i]);
        ck_assert_msg(ev_schema_validate(s, "envelope.json", env, &err) == 0, "%s: %s",
                      files[i], err.text);
        json_decref(env);
    }
    /* what the serializer writes conforms too */
    ev_envelope e;
    ck_assert_int_eq(ev_envelope_init(&e, "order.completed", "/choreo/orders", "o-1",
                                      json_pack("{s:s}", "order_id", "o-1"), &err),
                     0);
    char *buf;
    size_t len;
    ck_assert_int_eq(ev_envelope_serialize(&e, NULL, &buf, &len, &err), 0);
    json_t *env = json_loadb(buf, len, 0, NULL);
    ck_assert_msg(ev_schema_validate(s, "envelope.json", env, &err) == 0, "%s", err.text);
    json_t *bad =
        json_pack("{s:s,s:s,s:s}", "specversion", "0.3", "id", "x", "source", "/s");
    ck_assert_int_eq(ev_schema_validate(s, "envelope.json", bad, &err), EV_ESCHEMA);
    json_decref(bad);
    json_decref(env);
    free(buf);
    ev_envelope_clear(&e);
    ev_schema_set_free(s);
}
END_TEST

/* ---- load errors ------------------------------------------------------ */

static const struct {
    const char *doc;
    int code;
    const char *says;
} bad_docs[] = {
    {"{\"events\": ", EV_EPARSE, ""},
    {"[]", EV_EPARSE, "needs objects"},
    {"{\"events\": {}}", EV_EPARSE, "needs objects"},
    {"{\"events\": {\"a.b\": {\"topic\": \"t\", \"key\": \"k\"}}, \"services\": {}}",
     EV_EPARSE, "a.b needs topic"},
    {"{\"events\": {\"a.b\": {\"topic\": \"t\", \"key\": \"k\", \"producer\": \"cli\"}},"
     " \"services\": {\"s\": {\"consumes\": [\"c.d\"]}}}",
     EV_EUNKNOWN, "c.d"},
    {"{\"events\": {\"a.b\": {\"topic\": \"t\", \"key\": \"k\", \"producer\": \"cli\"}},"
     " \"services\": {\"s\": {\"emits\": \"a.b\"}}}",
     EV_EPARSE, "not an array"},
    {"{\"events\": {\"a.b\": {\"topic\": \"t\", \"key\": \"k\", \"producer\": \"cli\"}},"
     " \"services\": {\"s\": 3}}",
     EV_EPARSE, "not an object"},
    {"{\"events\": {\"a.b\": {\"topic\": \"t\", \"key\": \"k\", \"producer\": \"cli\"},"
     " \"a.b\": {}}, \"services\": {}}",
     EV_EPARSE, "duplicate"},
};

START_TEST(bad_contracts_are_rejected)
{
    char path[] = "/tmp/check_contract_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    size_t len = strlen(bad_docs[_i].doc);
    ck_assert_int_eq(write(fd, bad_docs[_i].doc, len), (ssize_t)len);
    close(fd);
    ev_contract *c = (ev_contract *)1;
    ev_error err;
    int rc = ev_contract_load(&c, path, &err);
    unlink(path);
    ck_assert_msg(rc == bad_docs[_i].code, "got %d (%s)", rc, err.text);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(err.text, bad_docs[_i].says) != NULL, "%s", err.text);
}
END_TEST

START_TEST(missing_file_is_an_io_error)
{
    ev_contract *c;
    ev_error err;
    ck_assert_int_eq(ev_contract_load(&c, "/nonexistent/choreography.json", &err),
                     EV_EIO);
    ck_assert_int_eq(ev_contract_load(NULL, CONTRACT, &err), EV_EINVAL);
    ev_contract_free(NULL);
}
END_TEST

static Suite *contract_suite(void)
{
    Suite *s = suite_create("contract");
    TCase *tc = tcase_create("contract");
    tcase_add_loop_test(tc, routes_every_type_of_the_design, 0, N_DESIGN);
    tcase_add_test(tc, has_no_types_beyond_the_design);
    tcase_add_test(tc, topics_and_services_in_file_order);
    tcase_add_loop_test(tc, service_topics_are_distinct_consumed_topics, 0,
                        sizeof(service_topics) / sizeof(service_topics[0]));
    tcase_add_test(tc, producers_and_emits_agree);
    tcase_add_test(tc, flow_names_only_known_types);
    tcase_add_loop_test(tc, every_type_has_a_schema_file, 0, N_DESIGN);
    tcase_add_loop_test(tc, every_type_schema_compiles, 0, N_DESIGN);
    tcase_add_loop_test(tc, design_example_validates, 0, N_DESIGN);
    tcase_add_loop_test(tc, invalid_example_is_rejected, 0,
                        sizeof(invalid_files) / sizeof(invalid_files[0]));
    tcase_add_test(tc, our_envelopes_match_envelope_schema);
    tcase_add_loop_test(tc, bad_contracts_are_rejected, 0,
                        sizeof(bad_docs) / sizeof(bad_docs[0]));
    tcase_add_test(tc, missing_file_is_an_io_error);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(contract_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
