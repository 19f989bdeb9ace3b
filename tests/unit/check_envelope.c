/* SPDX-License-Identifier: MIT */
/* Unit tests of the CloudEvents envelope: parse errors per fixture, round trips,
 * derived ids, correlation/causation, limits, UUIDs and RFC 3339 time. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "envelope.h"

#define FIX EV_SCHEMA_DIR "/../tests/fixtures/envelope"

/* Reads a whole file; NUL-terminated, *len without the NUL. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static char *fixture(const char *sub, const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s/%s", FIX, sub, name);
    return slurp(path, len);
}

/* ---- every bad input gives its code ---------------------------------- */

static const struct bad_case {
    const char *file;
    int code;
    const char *says; /* substring of the error text */
} bad_cases[] = {
    {"utf8-overlong.json", EV_EUTF8, "UTF-8"},
    {"utf8-overlong3.json", EV_EUTF8, "UTF-8"},
    {"utf8-surrogate.json", EV_EUTF8, "UTF-8"},
    {"utf8-above-max.json", EV_EUTF8, "UTF-8"},
    {"utf8-f5.json", EV_EUTF8, "UTF-8"},
    {"utf8-lone-continuation.json", EV_EUTF8, "UTF-8"},
    {"utf8-truncated.json", EV_EUTF8, "UTF-8"},
    {"utf8-at-end.json", EV_EUTF8, "UTF-8"},
    {"utf8-after-backslash.json", EV_EUTF8, "UTF-8"},
    {"depth-33.json", EV_EDEPTH, "deeper than 32"},
    {"depth-huge.json", EV_EDEPTH, "deeper"},
    {"dup-key.json", EV_EDUPKEY, "duplicate"},
    {"dup-key-in-data.json", EV_EDUPKEY, "duplicate"},
    {"malformed.json", EV_EPARSE, ""},
    {"truncated.json", EV_EPARSE, ""},
    {"trailing-garbage.json", EV_EPARSE, ""},
    {"empty.json", EV_EPARSE, ""},
    {"nul-escape.json", EV_EPARSE, ""},
    {"not-object-array.json", EV_EPARSE, "not a JSON object"},
    {"not-object-string.json", EV_EPARSE, "not a JSON object"},
    {"missing-id.json", EV_EATTR, "id missing"},
    {"id-number.json", EV_EATTR, "id is not a string"},
    {"id-empty.json", EV_EATTR, "id is empty"},
    {"missing-source.json", EV_EATTR, "source missing"},
    {"source-null.json", EV_EATTR, "source is not a string"},
    {"missing-type.json", EV_EATTR, "type missing"},
    {"type-array.json", EV_EATTR, "type is not a string"},
    {"subject-number.json", EV_EATTR, "subject"},
    {"correlationid-object.json", EV_EATTR, "correlationid"},
    {"datacontenttype-number.json", EV_EATTR, "datacontenttype"},
    {"specversion-0.3.json", EV_ESPEC, "0.3"},
    {"specversion-missing.json", EV_ESPEC, "missing"},
    {"specversion-number.json", EV_ESPEC, "not a string"},
    {"time-month-13.json", EV_EATTR, "time"},
    {"time-feb-30.json", EV_EATTR, "time"},
    {"time-no-offset.json", EV_EATTR, "time"},
    {"time-space.json", EV_EATTR, "time"},
    {"time-number.json", EV_EATTR, "time"},
    {"id-too-long.json", EV_EATTR, "id longer than 63"},
    {"type-too-long.json", EV_EATTR, "type longer"},
    {"source-too-long.json", EV_EATTR, "source longer"},
    {"subject-too-long.json", EV_EATTR, "subject longer"},
    {"time-too-long.json", EV_EATTR, "time longer"},
    {"data-base64.json", EV_EATTR, "data_base64"},
};

START_TEST(bad_input_gives_its_code)
{
    const struct bad_case *c = &bad_cases[_i];
    size_t len;
    char *buf = fixture("bad", c->file, &len);
    ev_envelope e;
    ev_error err;
    ev_error_clear(&err);
    int rc = ev_envelope_parse(&e, buf, len, NULL, &err);
    ck_assert_msg(rc == c->code, "%s: got %s (%s), want %s", c->file, ev_error_name(rc),
                  err.text, ev_error_name(c->code));
    ck_assert_int_eq(err.code, c->code);
    ck_assert_msg(strstr(err.text, c->says) != NULL, "%s: text \"%s\" lacks \"%s\"",
                  c->file, err.text, c->says);
    ck_assert_ptr_null(e.data);
    ck_assert_str_eq(e.id, "");
    free(buf);
}
END_TEST

/* ---- good fixtures parse and survive serialize -> parse -------------- */

static const char *const good_files[] = {
    "minimal.json",     "full.json",        "extensions.json",
    "time-offset.json", "unicode.json",     "brackets-in-strings.json",
    "depth-32.json",    "data-array.json",  "empty-optional.json",
    "id-63.json",       "subject-127.json",
};

static void assert_same(const ev_envelope *a, const ev_envelope *b)
{
    ck_assert_str_eq(a->id, b->id);
    ck_assert_str_eq(a->type, b->type);
    ck_assert_str_eq(a->source, b->source);
    ck_assert_str_eq(a->subject, b->subject);
    ck_assert_str_eq(a->time, b->time);
    ck_assert_str_eq(a->correlationid, b->correlationid);
    ck_assert_str_eq(a->causationid, b->causationid);
    ck_assert((a->data == NULL) == (b->data == NULL));
    if (a->data != NULL)
        ck_assert(json_equal(a->data, b->data));
}

START_TEST(good_fixture_round_trips)
{
    size_t len, out_len;
    char *buf = fixture("good", good_files[_i], &len), *out = NULL;
    ev_envelope a, b;
    ev_error err;
    int rc = ev_envelope_parse(&a, buf, len, NULL, &err);
    ck_assert_msg(rc == 0, "%s: %s", good_files[_i], err.text);
    ck_assert_int_eq(ev_envelope_serialize(&a, NULL, &out, &out_len, &err), 0);
    ck_assert_uint_eq(strlen(out), out_len);
    rc = ev_envelope_parse(&b, out, out_len, NULL, &err);
    ck_assert_msg(rc == 0, "%s reparse: %s", good_files[_i], err.text);
    assert_same(&a, &b);
    ev_envelope_clear(&a);
    ev_envelope_clear(&b);
    free(out);
    free(buf);
}
END_TEST

START_TEST(full_fixture_fields)
{
    size_t len;
    char *buf = fixture("good", "full.json", &len);
    ev_envelope e;
    ck_assert_int_eq(ev_envelope_parse(&e, buf, len, NULL, NULL), 0);
    ck_assert_str_eq(e.id, "0b6f0d52-3f7e-4f43-9a55-5c2a9b1f0e11");
    ck_assert_str_eq(e.source, "/choreo/orders");
    ck_assert_str_eq(e.type, "order.confirmed");
    ck_assert_str_eq(e.subject, "o-1");
    ck_assert_str_eq(e.time, "2026-11-24T10:00:00.123Z");
    ck_assert_str_eq(e.correlationid, "c-1");
    ck_assert_str_eq(e.causationid, "k-1");
    ck_assert_str_eq(json_string_value(json_object_get(e.data, "payment_id")), "p-1");
    ev_envelope_clear(&e);
    ck_assert_ptr_null(e.data);
    ev_envelope_clear(&e); /* safe twice */
    free(buf);
}
END_TEST

/* ---- build, derive, serialize ---------------------------------------- */

START_TEST(init_serialize_parse_round_trip)
{
    ev_envelope a, b;
    ev_error err;
    json_t *data = json_pack("{s:s, s:[{s:s, s:i}]}", "order_id", "o-9", "items", "sku",
                             "s\"1", "qty", 3);
    ck_assert_int_eq(
        ev_envelope_init(&a, "order.placed", "/choreo/cli", "o-9", data, &err), 0);
    ck_assert_uint_eq(strlen(a.id), 36);
    ck_assert_str_eq(a.correlationid, a.id);
    ck_assert_str_eq(a.causationid, "");
    ck_assert_int_ne(ev_time_parse(a.time), -1);
    char *out;
    size_t len;
    ck_assert_int_eq(ev_envelope_serialize(&a, NULL, &out, &len, &err), 0);
    ck_assert_int_eq(ev_envelope_parse(&b, out, len, NULL, &err), 0);
    assert_same(&a, &b);
    ev_envelope_clear(&a);
    ev_envelope_clear(&b);
    free(out);
}
END_TEST

START_TEST(serialize_writes_attributes_in_order)
{
    ev_envelope e = {0};
    snprintf(e.id, sizeof(e.id), "i-1");
    snprintf(e.source, sizeof(e.source), "/choreo/orders");
    snprintf(e.type, sizeof(e.type), "order.confirmed");
    snprintf(e.subject, sizeof(e.subject), "o \"1\"\n");
    snprintf(e.time, sizeof(e.time), "2026-11-24T10:00:00.123Z");
    snprintf(e.correlationid, sizeof(e.correlationid), "c-1");
    snprintf(e.causationid, sizeof(e.causationid), "k-1");
    e.data = json_pack("{s:s,s:i}", "order_id", "o-1", "n", 2);
    char *out;
    size_t len;
    ck_assert_int_eq(ev_envelope_serialize(&e, NULL, &out, &len, NULL), 0);
    ck_assert_str_eq(out,
                     "{\"specversion\":\"1.0\",\"id\":\"i-1\",\"source\":\"/choreo/"
                     "orders\",\"type\":\"order.confirmed\",\"subject\":\"o "
                     "\\\"1\\\"\\u000a\",\"time\":\"2026-11-24T10:00:00.123Z\","
                     "\"datacontenttype\":\"application/json\",\"correlationid\":"
                     "\"c-1\",\"causationid\":\"k-1\",\"data\":{\"order_id\":\"o-1\","
                     "\"n\":2}}");
    free(out);
    ev_envelope_clear(&e);
}
END_TEST

START_TEST(serialize_rejects_bad_attributes)
{
    ev_envelope e = {0};
    char *out = (char *)1;
    size_t len;
    ev_error err;
    ck_assert_int_eq(ev_envelope_serialize(&e, NULL, &out, &len, &err), EV_EATTR);
    ck_assert_ptr_null(out);
    snprintf(e.id, sizeof(e.id), "i");
    snprintf(e.source, sizeof(e.source), "/s");
    snprintf(e.type, sizeof(e.type), "t");
    snprintf(e.subject, sizeof(e.subject), "bad \xc0\xaf");
    ck_assert_int_eq(ev_envelope_serialize(&e, NULL, &out, &len, &err), EV_EUTF8);
    ck_assert_ptr_nonnull(strstr(err.text, "subject"));
}
END_TEST

START_TEST(derive_is_deterministic)
{
    ev_envelope cause, a, b, c, d;
    ck_assert_int_eq(ev_envelope_init(&cause, "order.placed", "/cli", "o-1", NULL, NULL),
                     0);
    ck_assert_int_eq(ev_envelope_derive(&a, &cause, "inventory.reserved",
                                        "/choreo/inventory", "o-1", 0, json_object(),
                                        NULL),
                     0);
    ck_assert_int_eq(ev_envelope_derive(&b, &cause, "inventory.reserved",
                                        "/choreo/inventory", "o-1", 0, json_object(),
                                        NULL),
                     0);
    ck_assert_int_eq(ev_envelope_derive(&c, &cause, "inventory.reserved",
                                        "/choreo/inventory", "o-1", 1, json_object(),
                                        NULL),
                     0);
    ck_assert_int_eq(ev_envelope_derive(&d, &cause, "inventory.rejected",
                                        "/choreo/inventory", "o-1", 0, json_object(),
                                        NULL),
                     0);
    ck_assert_str_eq(a.id, b.id);
    ck_assert_str_ne(a.id, c.id);
    ck_assert_str_ne(a.id, d.id);
    ck_assert_int_eq(a.id[14], '5'); /* version nibble */
    char name[200], want[EV_UUID_LEN];
    snprintf(name, sizeof(name), "%s/inventory.reserved/0", cause.id);
    ev_uuid5(want, name);
    ck_assert_str_eq(a.id, want);
    ev_envelope_clear(&a);
    ev_envelope_clear(&b);
    ev_envelope_clear(&c);
    ev_envelope_clear(&d);
}
END_TEST

START_TEST(derive_sets_correlation_and_causation)
{
    ev_envelope root, child, grandchild, orphan_cause = {0}, orphan;
    ck_assert_int_eq(ev_envelope_init(&root, "order.placed", "/cli", NULL, NULL, NULL),
                     0);
    ck_assert_int_eq(ev_envelope_derive(&child, &root, "inventory.reserved", "/inv", "o",
                                        0, NULL, NULL),
                     0);
    ck_assert_int_eq(ev_envelope_derive(&grandchild, &child, "payment.authorized", "/pay",
                                        "o", 0, NULL, NULL),
                     0);
    ck_assert_str_eq(child.correlationid, root.id);
    ck_assert_str_eq(child.causationid, root.id);
    ck_assert_str_eq(grandchild.correlationid, root.id);
    ck_assert_str_eq(grandchild.causationid, child.id);
    ck_assert_str_eq(grandchild.subject, "o");
    /* a cause from another producer without a correlationid starts the flow */
    snprintf(orphan_cause.id, sizeof(orphan_cause.id), "foreign-1");
    ck_assert_int_eq(
        ev_envelope_derive(&orphan, &orphan_cause, "t", "/s", NULL, 0, NULL, NULL), 0);
    ck_assert_str_eq(orphan.correlationid, "foreign-1");
    ck_assert_str_eq(orphan.causationid, "foreign-1");
    ck_assert_str_eq(orphan.subject, "");
}
END_TEST

START_TEST(build_errors_release_data)
{
    ev_envelope e, cause = {0};
    ev_error err;
    char longtype[EV_TYPE_MAX + 1];
    memset(longtype, 't', sizeof(longtype) - 1);
    longtype[EV_TYPE_MAX] = '\0';
    ck_assert_int_eq(ev_envelope_init(&e, NULL, "/s", NULL, json_object(), &err),
                     EV_EINVAL);
    ck_assert_int_eq(ev_envelope_init(&e, "t", "", NULL, json_object(), &err), EV_EINVAL);
    ck_assert_int_eq(ev_envelope_init(&e, longtype, "/s", NULL, json_object(), &err),
                     EV_EINVAL);
    ck_assert_ptr_null(e.data);
    ck_assert_int_eq(
        ev_envelope_derive(&e, &cause, "t", "/s", NULL, 0, json_object(), &err),
        EV_EINVAL);
    ck_assert_int_eq(
        ev_envelope_derive(&e, NULL, "t", "/s", NULL, 0, json_object(), &err), EV_EINVAL);
    ck_assert_int_eq(ev_envelope_parse(NULL, "{}", 2, NULL, &err), EV_EINVAL);
    /* leaks of the stolen data would fail this test under LeakSanitizer */
}
END_TEST

/* ---- limits ----------------------------------------------------------- */

/* A valid record of exactly len bytes (len >= 100). */
static char *record_of(size_t len)
{
    static const char head[] = "{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"/"
                               "s\",\"type\":\"t\",\"data\":\"";
    char *buf = malloc(len + 1);
    ck_assert_ptr_nonnull(buf);
    size_t h = sizeof(head) - 1;
    memcpy(buf, head, h);
    memset(buf + h, 'x', len - h - 2);
    memcpy(buf + len - 2, "\"}", 3);
    return buf;
}

START_TEST(size_limit_is_inclusive)
{
    ev_envelope e;
    ev_error err;
    char *ok = record_of(65536), *big = record_of(65537);
    ck_assert_int_eq(ev_envelope_parse(&e, ok, 65536, NULL, &err), 0);
    ev_envelope_clear(&e);
    ck_assert_int_eq(ev_envelope_parse(&e, big, 65537, NULL, &err), EV_ETOOBIG);
    ck_assert_ptr_nonnull(strstr(err.text, "65537"));
    ev_limits small = {.max_record = 1000, .max_depth = 32};
    ck_assert_int_eq(ev_envelope_parse(&e, ok, 1001, &small, &err), EV_ETOOBIG);
    free(ok);
    free(big);
}
END_TEST

START_TEST(serialize_checks_size_limit)
{
    ev_envelope e;
    char *pad = malloc(70000), *out = NULL;
    memset(pad, 'y', 69999);
    pad[69999] = '\0';
    ck_assert_int_eq(
        ev_envelope_init(&e, "t", "/s", NULL, json_pack("{s:s}", "p", pad), NULL), 0);
    size_t len;
    ev_error err;
    ck_assert_int_eq(ev_envelope_serialize(&e, NULL, &out, &len, &err), EV_ETOOBIG);
    ck_assert_ptr_null(out);
    ev_limits big = {.max_record = 100000, .max_depth = 32};
    ck_assert_int_eq(ev_envelope_serialize(&e, &big, &out, &len, &err), 0);
    ck_assert_uint_gt(len, 70000);
    free(out);
    free(pad);
    ev_envelope_clear(&e);
}
END_TEST

START_TEST(depth_limit_is_configurable)
{
    static const char rec[] =
        "{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"/s\",\"type\":\"t\","
        "\"data\":{\"a\":[1]}}";
    ev_envelope e;
    ev_limits three = {.max_record = 0, .max_depth = 3}, two = {.max_depth = 2};
    ck_assert_int_eq(ev_envelope_parse(&e, rec, sizeof(rec) - 1, &three, NULL), 0);
    ev_envelope_clear(&e);
    ck_assert_int_eq(ev_envelope_parse(&e, rec, sizeof(rec) - 1, &two, NULL), EV_EDEPTH);
}
END_TEST

START_TEST(utf8_error_wins_over_depth)
{
    char rec[] = "[[[[\xc0\xaf]]]]";
    ev_limits two = {.max_depth = 2};
    ev_envelope e;
    ck_assert_int_eq(ev_envelope_parse(&e, rec, sizeof(rec) - 1, &two, NULL), EV_EUTF8);
}
END_TEST

/* ---- time and UUIDs --------------------------------------------------- */

static const struct time_case {
    const char *text;
    int64_t ms; /* -1: invalid */
} time_cases[] = {
    {"1970-01-01T00:00:00Z", 0},
    {"1970-01-01T00:00:00.000Z", 0},
    {"2026-11-24T10:00:00.123Z", 1795514400123LL},
    {"2026-11-24T11:00:00.123+01:00", 1795514400123LL},
    {"2026-11-24T04:30:00.123-05:30", 1795514400123LL},
    {"2026-11-24t10:00:00.123z", 1795514400123LL},
    {"2026-11-24T10:00:00.1Z", 1795514400100LL},
    {"2026-11-24T10:00:00.123456789Z", 1795514400123LL},
    {"2024-02-29T00:00:00Z", 1709164800000LL},
    {"2000-02-29T23:59:59.999-00:00", 951868799999LL},
    {"1969-12-31T23:59:59.999Z", -1}, /* valid, but equals the error value */
    {"2023-02-29T00:00:00Z", -1},
    {"1900-02-29T00:00:00Z", -1},
    {"2026-04-31T00:00:00Z", -1},
    {"2026-00-10T00:00:00Z", -1},
    {"2026-11-24T24:00:00Z", -1},
    {"2026-11-24T10:60:00Z", -1},
    {"2026-11-24T10:00:61Z", -1},
    {"2026-11-24T10:00:00", -1},
    {"2026-11-24T10:00:00.Z", -1},
    {"2026-11-24T10:00:00+0100", -1},
    {"2026-11-24T10:00:00+24:00", -1},
    {"2026-11-24 10:00:00Z", -1},
    {"2026-11-24T10:00:00Zjunk", -1},
    {"26-11-24T10:00:00Z", -1},
    {"", -1},
};

START_TEST(time_parse_table)
{
    const struct time_case *c = &time_cases[_i];
    ck_assert_msg(ev_time_parse(c->text) == c->ms, "%s: got %lld want %lld", c->text,
                  (long long)ev_time_parse(c->text), (long long)c->ms);
}
END_TEST

START_TEST(time_format_round_trips)
{
    static const int64_t values[] = {0,
                                     1,
                                     999,
                                     1000,
                                     -1000,
                                     -86400001,
                                     951868799999,
                                     1709164800000,
                                     1795514400123LL,
                                     4102444800000LL,
                                     253402300799999LL};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char out[EV_TIME_MAX];
        ev_time_format(out, values[i]);
        ck_assert_uint_eq(strlen(out), 24);
        if (values[i] != -1)
            ck_assert_msg(ev_time_parse(out) == values[i], "%s", out);
    }
    char out[EV_TIME_MAX];
    ev_time_format(out, 1795514400123LL);
    ck_assert_str_eq(out, "2026-11-24T10:00:00.123Z");
    ev_time_format(out, -1);
    ck_assert_str_eq(out, "1969-12-31T23:59:59.999Z");
    ck_assert_int_le(ev_mono_ms(), ev_mono_ms());
    ck_assert_int_gt(ev_now_ms(), 1700000000000LL);
}
END_TEST

START_TEST(uuids_have_version_and_form)
{
    char a[EV_UUID_LEN], b[EV_UUID_LEN], c[EV_UUID_LEN];
    ev_uuid4(a);
    ev_uuid4(b);
    ck_assert_str_ne(a, b);
    ck_assert_uint_eq(strlen(a), 36);
    ck_assert_int_eq(a[14], '4');
    ck_assert_ptr_nonnull(strchr("89ab", a[19]));
    for (int i = 0; i < 36; i++)
        ck_assert_ptr_nonnull(strchr("0123456789abcdef-", a[i]));
    ev_uuid5(b, "x/y/0");
    ev_uuid5(c, "x/y/0");
    ck_assert_str_eq(b, c);
    ck_assert_int_eq(b[14], '5');
    ev_uuid5(c, "x/y/1");
    ck_assert_str_ne(b, c);
}
END_TEST

/* ev_uuid5 is RFC 4122 UUIDv5: the same bytes as libuuid's uuid_generate_sha1
 * in choreo's namespace, for names around every SHA-1 padding boundary. */
START_TEST(uuid5_matches_libuuid)
{
    static const uuid_t ns = {0xc0, 0xe0, 0xf6, 0xa2, 0x5b, 0x7d, 0x4e, 0x1a,
                              0x9c, 0x3f, 0x2d, 0x8b, 0x6a, 0x4e, 0x7f, 0x10};
    static const size_t lens[] = {0,  1,  38, 39,  40,  47,  48,  55,
                                  56, 63, 64, 103, 104, 119, 120, 200};
    char name[256], got[EV_UUID_LEN], want[EV_UUID_LEN];
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        for (size_t j = 0; j < lens[i]; j++)
            name[j] = (char)('a' + (j * 7 + i) % 26);
        name[lens[i]] = '\0';
        uuid_t u;
        uuid_generate_sha1(u, ns, name, lens[i]);
        uuid_unparse_lower(u, want);
        ev_uuid5(got, name);
        ck_assert_msg(strcmp(got, want) == 0, "len %zu: %s != %s", lens[i], got, want);
    }
}
END_TEST

START_TEST(data_str_reads_a_required_string)
{
    ev_envelope e = {0};
    snprintf(e.type, sizeof(e.type), "order.placed");
    e.data = json_pack("{s:s, s:s, s:i}", "order_id", "o-1", "empty", "", "n", 3);
    const char *v = NULL;
    ev_error err = {0};
    ck_assert_int_eq(ev_envelope_data_str(&e, "order_id", &v, &err), 0);
    ck_assert_str_eq(v, "o-1");
    static const char *const bad[] = {"empty", "n", "missing"};
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(ev_envelope_data_str(&e, bad[i], &v, &err), EV_ESCHEMA);
        ck_assert_ptr_nonnull(strstr(err.text, bad[i]));
    }
    ev_envelope_clear(&e);
}
END_TEST

START_TEST(derived_id_is_prefixed_key_or_its_uuid5)
{
    char out[EV_ID_MAX], u[EV_UUID_LEN], want[EV_ID_MAX], key[80];
    ev_derived_id(out, "pay-", "o-1");
    ck_assert_str_eq(out, "pay-o-1");
    memset(key, 'k', 59); /* "pay-" + 59 = 63 characters: still fits */
    key[59] = '\0';
    ev_derived_id(out, "pay-", key);
    ck_assert_uint_eq(strlen(out), 63);
    ck_assert_str_eq(out + 4, key);
    memset(key, 'k', 60); /* 64 characters would not fit: uuid5 of the key */
    key[60] = '\0';
    ev_derived_id(out, "pay-", key);
    ev_uuid5(u, key);
    snprintf(want, sizeof(want), "pay-%s", u);
    ck_assert_str_eq(out, want);
}
END_TEST

static Suite *envelope_suite(void)
{
    Suite *s = suite_create("envelope");
    TCase *tc = tcase_create("parse");
    tcase_add_loop_test(tc, bad_input_gives_its_code, 0,
                        sizeof(bad_cases) / sizeof(bad_cases[0]));
    tcase_add_loop_test(tc, good_fixture_round_trips, 0,
                        sizeof(good_files) / sizeof(good_files[0]));
    tcase_add_test(tc, full_fixture_fields);
    tcase_add_test(tc, uuid5_matches_libuuid);
    tcase_add_test(tc, data_str_reads_a_required_string);
    tcase_add_test(tc, derived_id_is_prefixed_key_or_its_uuid5);
    suite_add_tcase(s, tc);
    tc = tcase_create("build");
    tcase_add_test(tc, init_serialize_parse_round_trip);
    tcase_add_test(tc, serialize_writes_attributes_in_order);
    tcase_add_test(tc, serialize_rejects_bad_attributes);
    tcase_add_test(tc, derive_is_deterministic);
    tcase_add_test(tc, derive_sets_correlation_and_causation);
    tcase_add_test(tc, build_errors_release_data);
    suite_add_tcase(s, tc);
    tc = tcase_create("limits");
    tcase_add_test(tc, size_limit_is_inclusive);
    tcase_add_test(tc, serialize_checks_size_limit);
    tcase_add_test(tc, depth_limit_is_configurable);
    tcase_add_test(tc, utf8_error_wins_over_depth);
    suite_add_tcase(s, tc);
    tc = tcase_create("time_uuid");
    tcase_add_loop_test(tc, time_parse_table, 0,
                        sizeof(time_cases) / sizeof(time_cases[0]));
    tcase_add_test(tc, time_format_round_trips);
    tcase_add_test(tc, uuids_have_version_and_form);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(envelope_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
