/* SPDX-License-Identifier: MIT */
/* Unit tests of the CloudEvents Kafka binding: binary mode (ce_* headers, data
 * as the value) parsed with the structured mode's checks and error codes. */
#include <check.h>
#include <string.h>

#include "binding.h"

static const char data[] = "{\"order_id\":\"o1\",\"reason\":\"customer\"}";

/* A binary record's headers: NULL-terminated name/value pairs. */
static rd_kafka_headers_t *headers(const char *const *kv)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    for (size_t i = 0; kv[i] != NULL; i += 2)
        rd_kafka_header_add(h, kv[i], -1, kv[i + 1], -1);
    return h;
}

#define BASE                                                                             \
    "ce_specversion", "1.0", "ce_id", "id-1", "ce_source", "/kcat", "ce_type",           \
        "order.cancel_requested"

START_TEST(binary_record_parses_like_structured)
{
    const char *kv[] = {
        BASE,           "ce_subject",       "o1", "ce_correlationid", "c-9",
        "content-type", "application/json", NULL};
    rd_kafka_headers_t *h = headers(kv);
    ck_assert_int_eq(ev_binding_mode_of(h), EV_MODE_BINARY);
    ev_envelope e;
    ev_error err = {0};
    ck_assert_msg(ev_binding_parse(&e, data, strlen(data), h, NULL, false, &err) == 0,
                  "%s", err.text);
    ck_assert_str_eq(e.id, "id-1");
    ck_assert_str_eq(e.type, "order.cancel_requested");
    ck_assert_str_eq(e.subject, "o1");
    ck_assert_str_eq(e.correlationid, "c-9");
    ck_assert_str_eq(json_string_value(json_object_get(e.data, "order_id")), "o1");
    ev_envelope_clear(&e);
    char type[EV_TYPE_MAX];
    ck_assert(ev_binding_peek_type(data, strlen(data), h, type));
    ck_assert_str_eq(type, "order.cancel_requested");
    rd_kafka_headers_destroy(h);
}
END_TEST

static const struct {
    const char *name;
    const char *kv[16];
    const char *value;
    int code;
} bad[] = {
    {"no id",
     {"ce_specversion", "1.0", "ce_source", "/s", "ce_type", "t.x", NULL},
     data,
     EV_EATTR},
    {"old specversion",
     {"ce_specversion", "0.3", "ce_id", "1", "ce_source", "/s", "ce_type", "t.x", NULL},
     data,
     EV_ESPEC},
    {"text data", {BASE, "content-type", "text/plain", NULL}, data, EV_EATTR},
    {"upper-case attribute", {BASE, "ce_Subject", "o1", NULL}, data, EV_EATTR},
    {"attribute named data", {BASE, "ce_data", "x", NULL}, data, EV_EATTR},
    {"repeated attribute", {BASE, "ce_type", "other.type", NULL}, data, EV_EDUPKEY},
    {"header not UTF-8", {BASE, "ce_subject", "o\xff", NULL}, data, EV_EUTF8},
    {"data not JSON", {BASE, NULL}, "{\"order_id\":", EV_EPARSE},
    {"data with a duplicate key", {BASE, NULL}, "{\"a\":1,\"a\":2}", EV_EDUPKEY},
    {"time not RFC 3339", {BASE, "ce_time", "yesterday", NULL}, data, EV_EATTR},
};

START_TEST(bad_binary_records_get_the_structured_codes)
{
    rd_kafka_headers_t *h = headers(bad[_i].kv);
    ev_envelope e;
    ev_error err = {0};
    int rc =
        ev_binding_parse(&e, bad[_i].value, strlen(bad[_i].value), h, NULL, false, &err);
    ck_assert_msg(rc == bad[_i].code, "%s: got %d (%s), want %d", bad[_i].name, rc,
                  err.text, bad[_i].code);
    ck_assert_ptr_null(e.data);
    rd_kafka_headers_destroy(h);
}
END_TEST

START_TEST(binary_record_over_the_limit_is_too_big)
{
    const char *kv[] = {BASE, NULL};
    rd_kafka_headers_t *h = headers(kv);
    ev_limits lim = {.max_record = 60, .max_depth = 32};
    ev_envelope e;
    ev_error err = {0};
    /* the value fits alone, not with the headers */
    ck_assert_int_eq(ev_binding_parse(&e, data, strlen(data), h, &lim, false, &err),
                     EV_ETOOBIG);
    lim.max_record = 10;
    ck_assert_int_eq(ev_binding_parse(&e, data, strlen(data), h, &lim, true, &err),
                     EV_ETOOBIG);
    rd_kafka_headers_destroy(h);
}
END_TEST

START_TEST(cloudevents_content_type_is_structured)
{
    const char *kv[] = {"content-type", "application/cloudevents+json", "ce_specversion",
                        "1.0", NULL};
    rd_kafka_headers_t *h = headers(kv);
    ck_assert_int_eq(ev_binding_mode_of(h), EV_MODE_STRUCTURED);
    ck_assert_int_eq(ev_binding_mode_of(NULL), EV_MODE_STRUCTURED);
    ev_envelope e;
    ev_error err = {0};
    /* the value is parsed as an envelope: this one has no specversion */
    ck_assert_int_eq(ev_binding_parse(&e, data, strlen(data), h, NULL, false, &err),
                     EV_ESPEC);
    rd_kafka_headers_destroy(h);
}
END_TEST

START_TEST(headers_of_an_envelope_round_trip)
{
    ev_envelope src;
    ev_error err = {0};
    ck_assert_int_eq(ev_envelope_init(&src, "stock.added", "/choreo/cli", "sku-1",
                                      json_pack("{s:s,s:i}", "sku", "sku-1", "qty", 3),
                                      &err),
                     0);
    ev_header hs[12];
    size_t n = ev_binding_headers(&src, hs, 12);
    ck_assert_uint_eq(n, 8); /* no causationid */
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    for (size_t i = 0; i < n; i++)
        rd_kafka_header_add(h, hs[i].name, -1, hs[i].value, -1);
    char *value = json_dumps(src.data, JSON_COMPACT);
    ev_envelope got;
    ck_assert_msg(ev_binding_parse(&got, value, strlen(value), h, NULL, false, &err) == 0,
                  "%s", err.text);
    ck_assert_str_eq(got.id, src.id);
    ck_assert_str_eq(got.time, src.time);
    ck_assert_str_eq(got.correlationid, src.id);
    ck_assert(json_equal(got.data, src.data));
    free(value);
    ev_envelope_clear(&got);
    ev_envelope_clear(&src);
    rd_kafka_headers_destroy(h);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("binding");
    TCase *tc = tcase_create("binding");
    tcase_add_test(tc, binary_record_parses_like_structured);
    tcase_add_loop_test(tc, bad_binary_records_get_the_structured_codes, 0,
                        sizeof(bad) / sizeof(bad[0]));
    tcase_add_test(tc, binary_record_over_the_limit_is_too_big);
    tcase_add_test(tc, cloudevents_content_type_is_structured);
    tcase_add_test(tc, headers_of_an_envelope_round_trip);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
