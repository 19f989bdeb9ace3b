/* SPDX-License-Identifier: MIT */
/* Behaviour of events/schema*.c beyond the official suite: error text (pointer,
 * keyword, what), $ref across files and base URIs, regex translation, API. */
#include <check.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema.h"

/* tests/fixtures/schema/<rel> of this checkout (EV_SCHEMA_DIR is <repo>/schemas). */
static void fixture(char *buf, size_t n, const char *rel)
{
    const char *dir = EV_SCHEMA_DIR;
    const char *slash = strrchr(dir, '/');
    int len = slash != NULL ? (int)(slash - dir) : 0;
    int k = snprintf(buf, n, "%.*s/tests/fixtures/schema/%s", len, dir, rel);
    ck_assert(k > 0 && (size_t)k < n);
}

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    ck_assert_msg(j != NULL, "bad test JSON %s: %s", text, jerr.text);
    return j;
}

/* Validates instance against schema (both JSON text) with validate_doc. */
static int check_doc(ev_schema_set *s, const char *schema, const char *instance,
                     ev_error *err)
{
    json_t *sc = parse(schema), *in = parse(instance);
    int rc = ev_schema_validate_doc(s, sc, in, err);
    json_decref(sc);
    json_decref(in);
    return rc;
}

/* ---- error messages: "<pointer>: <keyword>: <what>" ---------------------- */

static const struct msg_case {
    const char *schema, *instance;
    int rc;
    const char *text; /* exact err->text, "" for valid */
} msg_cases[] = {
    {"{\"type\":\"object\",\"required\":[\"order_id\"]}", "{}", EV_ESCHEMA,
     "/: required: missing property \"order_id\""},
    {"{\"properties\":{\"items\":{\"items\":{\"properties\":{\"qty\":{\"minimum\":1}}}}}"
     "}",
     "{\"items\":[{\"qty\":3},{\"qty\":0}]}", EV_ESCHEMA,
     "/items/1/qty: minimum: 0 is less than 1"},
    {"{\"type\":\"string\"}", "5", EV_ESCHEMA, "/: type: expected string, got integer"},
    {"{\"type\":[\"string\",\"null\"]}", "1.5", EV_ESCHEMA,
     "/: type: expected null|string, got number"},
    {"{\"type\":\"integer\"}", "2.0", 0, ""},
    {"{\"enum\":[\"a\",\"b\"]}", "\"c\"", EV_ESCHEMA,
     "/: enum: \"c\" is not one of \"a\"|\"b\""},
    {"{\"properties\":{\"r\":{\"enum\":[1,null,true,[1]]}}}", "{\"r\":{}}", EV_ESCHEMA,
     "/r: enum: object is not one of 1|null|true|array"},
    {"{\"enum\":[1,[2]]}", "[2.0]", 0, ""},
    {"{\"const\":{\"a\":1}}", "{\"a\":2}", EV_ESCHEMA,
     "/: const: value differs from const"},
    {"{\"multipleOf\":2}", "7", EV_ESCHEMA, "/: multipleOf: 7 is not a multiple of 2"},
    {"{\"multipleOf\":0.01}", "19.99", 0, ""},
    {"{\"maximum\":3}", "3.5", EV_ESCHEMA, "/: maximum: 3.5 is greater than 3"},
    {"{\"exclusiveMaximum\":3}", "3", EV_ESCHEMA,
     "/: exclusiveMaximum: 3 is not less than 3"},
    {"{\"exclusiveMinimum\":1}", "1.0", EV_ESCHEMA,
     "/: exclusiveMinimum: 1 is not greater than 1"},
    {"{\"maxLength\":2}", "\"h\\u00e9\\u00e9\"", EV_ESCHEMA,
     "/: maxLength: length 3 is greater than 2"},
    {"{\"maxLength\":2}", "\"\\u00e9\\ud83d\\ude00\"", 0, ""},
    {"{\"minLength\":2}", "\"\\u00e9\"", EV_ESCHEMA,
     "/: minLength: length 1 is less than 2"},
    {"{\"pattern\":\"^\\\\d+$\"}", "\"12a\"", EV_ESCHEMA,
     "/: pattern: does not match \"^\\d+$\""},
    {"{\"properties\":{\"a\":{}},\"additionalProperties\":false}", "{\"a\":1,\"b\":2}",
     EV_ESCHEMA, "/: additionalProperties: property \"b\" is not allowed"},
    {"{\"properties\":{\"a/b\":{\"properties\":{\"c~d\":{\"type\":\"string\"}}}}}",
     "{\"a/b\":{\"c~d\":1}}", EV_ESCHEMA,
     "/a~1b/c~0d: type: expected string, got integer"},
    {"{\"items\":[{}],\"additionalItems\":false}", "[1,2]", EV_ESCHEMA,
     "/: additionalItems: 2 items, at most 1 allowed"},
    {"{\"items\":{\"type\":\"string\"}}", "[\"a\",3]", EV_ESCHEMA,
     "/1: type: expected string, got integer"},
    {"{\"maxItems\":1}", "[1,2]", EV_ESCHEMA, "/: maxItems: 2 items, at most 1 allowed"},
    {"{\"minItems\":1}", "[]", EV_ESCHEMA, "/: minItems: 0 items, at least 1 required"},
    {"{\"uniqueItems\":true}", "[1,{\"a\":[1]},1.0]", EV_ESCHEMA,
     "/: uniqueItems: items 0 and 2 are equal"},
    {"{\"uniqueItems\":true}", "[1,true,\"1\",[1],{\"a\":1},{\"a\":2}]", 0, ""},
    {"{\"contains\":{\"const\":5}}", "[1,2]", EV_ESCHEMA, "/: contains: no item matches"},
    {"{\"maxProperties\":1}", "{\"a\":1,\"b\":2}", EV_ESCHEMA,
     "/: maxProperties: 2 properties, at most 1 allowed"},
    {"{\"minProperties\":1}", "{}", EV_ESCHEMA,
     "/: minProperties: 0 properties, at least 1 required"},
    {"{\"dependencies\":{\"card\":[\"billing\"]}}", "{\"card\":1}", EV_ESCHEMA,
     "/: dependencies: property \"card\" requires \"billing\""},
    {"{\"propertyNames\":{\"maxLength\":2}}", "{\"ab\":1,\"abc\":2}", EV_ESCHEMA,
     "/: propertyNames: property name \"abc\" is not allowed"},
    {"{\"if\":{\"properties\":{\"k\":{\"const\":\"a\"}}},\"then\":{\"required\":[\"x\"]},"
     "\"else\":{\"required\":[\"y\"]}}",
     "{\"k\":\"a\"}", EV_ESCHEMA, "/: required: missing property \"x\""},
    {"{\"if\":{\"properties\":{\"k\":{\"const\":\"a\"}}},\"then\":{\"required\":[\"x\"]},"
     "\"else\":{\"required\":[\"y\"]}}",
     "{\"k\":\"b\"}", EV_ESCHEMA, "/: required: missing property \"y\""},
    {"{\"anyOf\":[{\"type\":\"string\"},{\"minimum\":2}]}", "1", EV_ESCHEMA,
     "/: anyOf: no subschema matches"},
    {"{\"oneOf\":[{\"type\":\"integer\"},{\"minimum\":2}]}", "3", EV_ESCHEMA,
     "/: oneOf: subschemas 0 and 1 both match"},
    {"{\"oneOf\":[{\"type\":\"integer\"},{\"minimum\":2}]}", "1", 0, ""},
    {"{\"not\":{\"type\":\"null\"}}", "null", EV_ESCHEMA,
     "/: not: value matches the forbidden schema"},
    {"{\"allOf\":[{\"type\":\"object\"},{\"properties\":{\"a\":{\"type\":\"string\"}}}]}",
     "{\"a\":1}", EV_ESCHEMA, "/a: type: expected string, got integer"},
    {"false", "{}", EV_ESCHEMA, "/: false: no value is allowed here"},
    {"{\"properties\":{\"x\":false}}", "{\"x\":1}", EV_ESCHEMA,
     "/x: properties: no value is allowed here"},
    {"{\"definitions\":{\"pos\":{\"minimum\":1}},\"properties\":{\"n\":{\"$ref\":\"#/"
     "definitions/"
     "pos\"}}}",
     "{\"n\":0}", EV_ESCHEMA, "/n: minimum: 0 is less than 1"},
    {"{\"format\":\"date-time\"}", "\"2026-11-24T10:00:00.123Z\"", 0, ""},
    {"{\"format\":\"date-time\"}", "\"2026-11-24T10:00:00+01:00\"", 0, ""},
    {"{\"format\":\"date-time\"}", "\"yesterday\"", EV_ESCHEMA,
     "/: format: not a valid date-time"},
    /* RFC 3339 ranges (section 5.7): day of the month, hours, seconds, offset. */
    {"{\"format\":\"date-time\"}", "\"2024-02-29T23:59:60Z\"", 0, ""},
    {"{\"format\":\"date-time\"}", "\"1990-02-31T15:59:59Z\"", EV_ESCHEMA,
     "/: format: not a valid date-time"},
    {"{\"format\":\"date-time\"}", "\"2023-02-29T10:00:00Z\"", EV_ESCHEMA,
     "/: format: not a valid date-time"},
    {"{\"format\":\"date-time\"}", "\"2026-11-24T24:00:00Z\"", EV_ESCHEMA,
     "/: format: not a valid date-time"},
    {"{\"format\":\"date-time\"}", "\"2026-11-24T10:00:61Z\"", EV_ESCHEMA,
     "/: format: not a valid date-time"},
    {"{\"format\":\"date-time\"}", "\"1990-12-31T15:59:59-24:00\"", EV_ESCHEMA,
     "/: format: not a valid date-time"},
    {"{\"format\":\"date\"}", "\"2100-02-29\"", EV_ESCHEMA,
     "/: format: not a valid date"},
    {"{\"format\":\"time\"}", "\"10:60:00Z\"", EV_ESCHEMA, "/: format: not a valid time"},
    {"{\"format\":\"email\"}", "\"a@b.example\"", 0, ""},
    {"{\"format\":\"email\"}", "\"a b@c\"", EV_ESCHEMA, "/: format: not a valid email"},
    {"{\"format\":\"uri-template\"}", "\"anything\"", 0, ""},
    {"{\"format\":\"uri-template\"}", "\"/a/{b,c*}{?d:3}\"", 0, ""},
    {"{\"format\":\"uri-template\"}", "\"/a/{b\"", EV_ESCHEMA,
     "/: format: not a valid uri-template"},
    /* Every draft-07 format is asserted: URIs with their authority and escapes. */
    {"{\"format\":\"uri\"}", "\"https://user@example.com:8443/p?q=1#f\"", 0, ""},
    {"{\"format\":\"uri\"}", "\"http://[::1]:80/\"", 0, ""},
    {"{\"format\":\"uri\"}", "\"/relative\"", EV_ESCHEMA, "/: format: not a valid uri"},
    {"{\"format\":\"uri\"}", "\"http://host:port/\"", EV_ESCHEMA,
     "/: format: not a valid uri"},
    {"{\"format\":\"uri\"}", "\"http://a/%zz\"", EV_ESCHEMA,
     "/: format: not a valid uri"},
    {"{\"format\":\"uri-reference\"}", "\"../a?b#c\"", 0, ""},
    {"{\"format\":\"uri-reference\"}", "\"a:b\"", 0, ""},
    {"{\"format\":\"uri-reference\"}", "\"a b\"", EV_ESCHEMA,
     "/: format: not a valid uri-reference"},
    {"{\"format\":\"iri\"}", "\"http://\u00e9xample.org/\u00e4\"", 0, ""},
    {"{\"format\":\"uri\"}", "\"http://\u00e9xample.org/\"", EV_ESCHEMA,
     "/: format: not a valid uri"},
    {"{\"format\":\"hostname\"}", "\"a-b.example\"", 0, ""},
    {"{\"format\":\"hostname\"}", "\"a..b\"", EV_ESCHEMA,
     "/: format: not a valid hostname"},
    {"{\"format\":\"ipv4\"}", "\"192.168.0.1\"", 0, ""},
    {"{\"format\":\"ipv4\"}", "\"192.168.0.01\"", EV_ESCHEMA,
     "/: format: not a valid ipv4"},
    {"{\"format\":\"ipv6\"}", "\"fe80::1:2\"", 0, ""},
    {"{\"format\":\"ipv6\"}", "\"1:2:3\"", EV_ESCHEMA, "/: format: not a valid ipv6"},
    {"{\"format\":\"json-pointer\"}", "\"/a~1b/~0\"", 0, ""},
    {"{\"format\":\"json-pointer\"}", "\"/a~2\"", EV_ESCHEMA,
     "/: format: not a valid json-pointer"},
    {"{\"format\":\"relative-json-pointer\"}", "\"01/a\"", EV_ESCHEMA,
     "/: format: not a valid relative-json-pointer"},
    {"{\"format\":\"regex\"}", "\"^[a-z]+(-[0-9]{2})?$\"", 0, ""},
    {"{\"format\":\"regex\"}", "\"(a\"", EV_ESCHEMA, "/: format: not a valid regex"},
    {"{\"format\":\"idn-email\"}", "\"\u00e9@\u00e9.example\"", 0, ""},
    {"{\"format\":\"no-such-format\"}", "\"anything\"", 0, ""},
    {"{\"format\":\"ipv4\"}", "12", 0, ""},
    /* Content: base64 must decode, application/json must parse (after decoding). */
    {"{\"contentEncoding\":\"base64\"}", "\"aGk=\"", 0, ""},
    {"{\"contentEncoding\":\"base64\"}", "\"aGk\"", EV_ESCHEMA,
     "/: contentEncoding: not valid base64"},
    {"{\"contentEncoding\":\"base64\"}", "\"a=Gk\"", EV_ESCHEMA,
     "/: contentEncoding: not valid base64"},
    {"{\"contentMediaType\":\"application/json\",\"contentEncoding\":\"base64\"}",
     "\"WzFd\"", 0, ""},
    {"{\"contentMediaType\":\"application/json\"}", "\"[1,\"", EV_ESCHEMA,
     "/: contentMediaType: not valid application/json"},
    {"{\"contentMediaType\":\"text/plain\",\"contentEncoding\":\"7bit\"}", "\"x\"", 0,
     ""},
    {"{\"$ref\":\"#\"}", "1", EV_EDEPTH, "/: $ref: schema recursion deeper than 512"},
    {"{\"properties\":{\"a\":{\"$ref\":\"nope.json#/x\"}}}", "{\"a\":1}", EV_ENOTFOUND,
     "/a: $ref: unresolved reference \"nope.json#/x\""},
};

START_TEST(error_text_names_pointer_and_keyword)
{
    const struct msg_case *c = &msg_cases[_i];
    ev_schema_set *s = ev_schema_set_new();
    ck_assert_ptr_nonnull(s);
    ev_error err;
    int rc = check_doc(s, c->schema, c->instance, &err);
    ck_assert_msg(rc == c->rc, "%s on %s: rc %d (%s), want %d", c->schema, c->instance,
                  rc, err.text, c->rc);
    ck_assert_str_eq(err.text, c->text);
    ev_schema_set_free(s);
}
END_TEST

/* ---- $ref resolution: pointers, anchors, base URIs ----------------------- */

static const struct ref_case {
    const char *name, *schema, *instance;
    int rc;
} ref_cases[] = {
    {"anchor",
     "{\"allOf\":[{\"$ref\":\"#foo\"}],\"definitions\":{\"A\":{\"$id\":\"#foo\","
     "\"type\":\"integer\"}}}",
     "\"a\"", EV_ESCHEMA},
    {"anchor ok",
     "{\"allOf\":[{\"$ref\":\"#foo\"}],\"definitions\":{\"A\":{\"$id\":\"#foo\","
     "\"type\":\"integer\"}}}",
     "1", 0},
    {"anchor under changed base",
     "{\"$id\":\"http://localhost:1234/root\",\"allOf\":[{\"$ref\":\"http://"
     "localhost:1234/"
     "nested.json#foo\"}],\"definitions\":{\"A\":{\"$id\":\"nested.json\","
     "\"definitions\":{"
     "\"B\":{\"$id\":\"#foo\",\"type\":\"integer\"}}}}}",
     "\"a\"", EV_ESCHEMA},
    {"urn base",
     "{\"$id\":\"urn:uuid:deadbeef-1234-ffff-ffff-4321feebdaed\",\"properties\":{"
     "\"foo\":{\"$ref\":\"#/definitions/bar\"}},\"definitions\":{\"bar\":{\"type\":"
     "\"string\"}}}",
     "{\"foo\":12}", EV_ESCHEMA},
    {"ref siblings ignored",
     "{\"definitions\":{\"r\":{\"type\":\"array\"}},\"properties\":{"
     "\"foo\":{\"$ref\":\"#/definitions/r\",\"maxItems\":1}}}",
     "{\"foo\":[1,2,3]}", 0},
    {"percent and tilde",
     "{\"definitions\":{\"a b~/\":{\"type\":\"integer\"}},\"$ref\":\"#/"
     "definitions/a%20b~0~1\"}",
     "\"x\"", EV_ESCHEMA},
    {"nearest parent id",
     "{\"$id\":\"http://example.com/a.json\",\"definitions\":{\"x\":{\"$id\":\"http://"
     "example.com/b/"
     "c.json\",\"not\":{\"definitions\":{\"y\":{\"$id\":\"d.json\",\"type\":"
     "\"number\"}}}}},\"allOf\":[{\"$ref\":\"http://example.com/b/d.json\"}]}",
     "\"a\"", EV_ESCHEMA},
    {"dot segments",
     "{\"$id\":\"http://x.test/a/b/c.json\",\"allOf\":[{\"$ref\":\"../"
     "d.json\"}],\"definitions\":{\"d\":{\"$id\":\"http://x.test/a/"
     "d.json\",\"type\":\"integer\"}}}",
     "\"s\"", EV_ESCHEMA},
    {"pointer into unknown keyword",
     "{\"x-lib\":{\"n\":{\"minimum\":5}},\"$ref\":\"#/x-lib/n\"}", "4", EV_ESCHEMA},
    {"pointer through array", "{\"allOf\":[{\"minimum\":5},{\"$ref\":\"#/allOf/0\"}]}",
     "6", 0},
    {"id in pointer path",
     "{\"$id\":\"http://p.test/root.json\",\"x-lib\":{\"$id\":\"sub/"
     "\",\"n\":{\"$ref\":\"t.json\"}},\"definitions\":{\"t\":{\"$id\":"
     "\"http://p.test/sub/t.json\",\"type\":\"string\"}},\"allOf\":[{"
     "\"$ref\":\"#/x-lib/n\"}]}",
     "1", EV_ESCHEMA},
    {"ref to if",
     "{\"$ref\":\"http://example.com/ref/if\",\"if\":{\"$id\":\"http://example.com/ref/"
     "if\",\"type\":\"integer\"}}",
     "\"foo\"", EV_ESCHEMA},
    {"ref to if ok",
     "{\"$ref\":\"http://example.com/ref/if\",\"if\":{\"$id\":\"http://example.com/ref/"
     "if\",\"type\":\"integer\"}}",
     "12", 0},
    {"sibling id keeps base",
     "{\"$id\":\"http://s.test/base/\",\"definitions\":{\"foo\":{\"$id\":\"http://s.test/"
     "foo.json\",\"type\":\"string\"},\"base_foo\":{\"$id\":\"foo.json\",\"type\":"
     "\"number\"}},\"allOf\":[{\"$id\":\"http://s.test/\",\"$ref\":\"foo.json\"}]}",
     "\"a\"", EV_ESCHEMA},
    {"sibling id keeps base ok",
     "{\"$id\":\"http://s.test/base/\",\"definitions\":{\"foo\":{\"$id\":\"http://s.test/"
     "foo.json\",\"type\":\"string\"},\"base_foo\":{\"$id\":\"foo.json\",\"type\":"
     "\"number\"}},\"allOf\":[{\"$id\":\"http://s.test/\",\"$ref\":\"foo.json\"}]}",
     "1", 0},
    {"urn with query",
     "{\"$id\":\"urn:example:weather?=op=map&lat=39.56\",\"properties\":{\"foo\":{\"$"
     "ref\":\"#/definitions/bar\"}},\"definitions\":{\"bar\":{\"type\":\"string\"}}}",
     "{\"foo\":12}", EV_ESCHEMA},
    {"empty pointer tokens",
     "{\"definitions\":{\"\":{\"definitions\":{\"\":{\"type\":\"number\"}}}},\"allOf\":[{"
     "\"$ref\":\"#/definitions//definitions/\"}]}",
     "\"a\"", EV_ESCHEMA},
    {"empty pointer tokens ok",
     "{\"definitions\":{\"\":{\"definitions\":{\"\":{\"type\":\"number\"}}}},\"allOf\":[{"
     "\"$ref\":\"#/definitions//definitions/\"}]}",
     "1", 0},
    {"quote in pointer",
     "{\"properties\":{\"foo\\\"bar\":{\"$ref\":\"#/definitions/"
     "foo%22bar\"}},\"definitions\":{\"foo\\\"bar\":{\"type\":\"number\"}}}",
     "{\"foo\\\"bar\":\"1\"}", EV_ESCHEMA},
    {"absolute-path ref",
     "{\"$id\":\"http://example.com/ref/"
     "absref.json\",\"definitions\":{\"a\":{\"$id\":\"http://example.com/ref/absref/"
     "foobar.json\",\"type\":\"number\"},\"b\":{\"$id\":\"http://example.com/absref/"
     "foobar.json\",\"type\":\"string\"}},\"allOf\":[{\"$ref\":\"/absref/"
     "foobar.json\"}]}",
     "12", EV_ESCHEMA},
    {"absolute-path ref ok",
     "{\"$id\":\"http://example.com/ref/"
     "absref.json\",\"definitions\":{\"a\":{\"$id\":\"http://example.com/ref/absref/"
     "foobar.json\",\"type\":\"number\"},\"b\":{\"$id\":\"http://example.com/absref/"
     "foobar.json\",\"type\":\"string\"}},\"allOf\":[{\"$ref\":\"/absref/"
     "foobar.json\"}]}",
     "\"a\"", 0},
    {"id inside enum is no identifier",
     "{\"definitions\":{\"e\":{\"enum\":[{\"$id\":\"http://i.test/"
     "x.json\",\"type\":\"null\"}]},\"real\":{\"$id\":\"http://i.test/"
     "x.json\",\"type\":\"string\"}},\"anyOf\":[{\"$ref\":\"#/definitions/"
     "e\"},{\"$ref\":\"http://i.test/x.json\"}]}",
     "null", EV_ESCHEMA},
    {"relative uris and defs",
     "{\"$id\":\"http://example.com/"
     "schema-relative-uri-defs1.json\",\"properties\":{\"foo\":{\"$id\":\"schema-"
     "relative-uri-defs2.json\",\"definitions\":{\"inner\":{\"properties\":{\"bar\":{"
     "\"type\":\"string\"}}}},\"allOf\":[{\"$ref\":\"#/definitions/"
     "inner\"}]}},\"allOf\":[{\"$ref\":\"schema-relative-uri-defs2.json\"}]}",
     "{\"foo\":{\"bar\":1},\"bar\":\"a\"}", EV_ESCHEMA},
    {"relative uris and defs outer",
     "{\"$id\":\"http://example.com/"
     "schema-relative-uri-defs1.json\",\"properties\":{\"foo\":{\"$id\":\"schema-"
     "relative-uri-defs2.json\",\"definitions\":{\"inner\":{\"properties\":{\"bar\":{"
     "\"type\":\"string\"}}}},\"allOf\":[{\"$ref\":\"#/definitions/"
     "inner\"}]}},\"allOf\":[{\"$ref\":\"schema-relative-uri-defs2.json\"}]}",
     "{\"foo\":{\"bar\":\"a\"},\"bar\":1}", EV_ESCHEMA},
    {"relative uris and defs ok",
     "{\"$id\":\"http://example.com/"
     "schema-relative-uri-defs1.json\",\"properties\":{\"foo\":{\"$id\":\"schema-"
     "relative-uri-defs2.json\",\"definitions\":{\"inner\":{\"properties\":{\"bar\":{"
     "\"type\":\"string\"}}}},\"allOf\":[{\"$ref\":\"#/definitions/"
     "inner\"}]}},\"allOf\":[{\"$ref\":\"schema-relative-uri-defs2.json\"}]}",
     "{\"foo\":{\"bar\":\"a\"},\"bar\":\"a\"}", 0},
    {"remote mapped", "{\"$ref\":\"http://remote.test/int.json\"}", "3", EV_ESCHEMA},
    {"remote mapped ok", "{\"$ref\":\"http://remote.test/int.json\"}", "12", 0},
    {"remote missing", "{\"$ref\":\"http://remote.test/none.json\"}", "12", EV_ENOTFOUND},
};

START_TEST(ref_resolves_per_draft07)
{
    const struct ref_case *c = &ref_cases[_i];
    ev_schema_set *s = ev_schema_set_new();
    char dir[PATH_MAX];
    fixture(dir, sizeof(dir), "remote");
    ev_error err;
    ck_assert_int_eq(ev_schema_set_map_remote(s, "http://remote.test/", dir, &err), 0);
    int rc = check_doc(s, c->schema, c->instance, &err);
    ck_assert_msg(rc == c->rc, "%s: rc %d (%s), want %d", c->name, rc, err.text, c->rc);
    ev_schema_set_free(s);
}
END_TEST

/* ---- ECMA patterns through POSIX regex ----------------------------------- */

static const struct re_case {
    const char *pattern, *subject;
    bool match;
} re_cases[] = {
    {"^\\d{3}$", "123", true},
    {"^\\d{3}$", "12a", false},
    {"^[\\w.-]+$", "a.b-c_9", true},
    {"^[\\w.-]+$", "a b", false},
    {"^\\s*$", " \t", true},
    {"^\\S+$", "a b", false},
    {"^[^\\d]+$", "abc", true},
    {"^[^\\d]+$", "a1", false},
    {"^\\u00e9$", "\xc3\xa9", true},
    {"^.$", "\xc3\xa9", true},
    {"^.$", "\n", false},
    {"^[a\\-z]$", "-", true},
    {"^[a\\-z]$", "b", false},
    {"\\.", "a", false},
    {"\\.", ".", true},
    {"^a{2}$", "aa", true},
    {"^\\/x$", "/x", true},
    {"^[\\]]$", "]", true},
    {"x{", "x{", true},
    {"^(?:ab)+$", "abab", true},
    {"^a+?$", "aaa", true},
    {"^[-a]$", "-", true},
    {"^[\\^]$", "^", true},
    {"^\\w+@\\w+\\.\\w+$", "a@b.io", true},
    {"\\bfoo\\b", "a foo b", true},
    {"\\bfoo\\b", "afoob", false},
    {"^[A-Z]{3}$", "EUR", true},
    {"^[A-Z]{3}$", "eur", false},
    {"^(a{3}){3}$", "aaaaaaaaa", true},
    {"^(a{3}){3}$", "aaaaaaaa", false},
    {"^a{2}?b*?$", "aab", true},
    {"^(a?){10}b$", "aaab", true},
    {"^(a*|b)+c$", "aabbc", true},
};

START_TEST(pattern_translates_ecma_escapes)
{
    const struct re_case *c = &re_cases[_i];
    char schema[256], instance[64];
    json_t *pat = json_string(c->pattern), *subj = json_string(c->subject);
    char *ps = json_dumps(pat, JSON_ENCODE_ANY), *ss = json_dumps(subj, JSON_ENCODE_ANY);
    snprintf(schema, sizeof(schema), "{\"pattern\":%s}", ps);
    snprintf(instance, sizeof(instance), "%s", ss);
    free(ps);
    free(ss);
    json_decref(pat);
    json_decref(subj);
    ev_schema_set *s = ev_schema_set_new();
    ev_error err;
    int rc = check_doc(s, schema, instance, &err);
    ck_assert_msg(rc == (c->match ? 0 : EV_ESCHEMA), "/%s/ on \"%s\": rc %d (%s)",
                  c->pattern, c->subject, rc, err.text);
    ev_schema_set_free(s);
}
END_TEST

/* Lookaround has no ERE form; a quantifier of a quantifier is not ECMA 262 and
 * makes glibc's regcomp copy the tree endlessly, as nested counted repetition
 * does, and loops or long runs of what can match empty take it exponential
 * time or quadratic memory: all refused when the schema is added, never left to
 * hang. */
static const char *const unsupported_res[] = {
    "^(?=x)",
    "a++++++++++++++++++++++++++++++++",
    "a**",
    "a{2}{3}",
    "a+?+",
    "(a{2}+)+$",
    "((a{100}){100}){100}",
    "^(()*){40}$",
    "^((){100}){100}$",
    "^(a?){5000}$",
};

START_TEST(unsupported_regex_rejected_at_add)
{
    ev_schema_set *s = ev_schema_set_new();
    json_t *sc =
        json_pack("{s:{s:{s:s}}}", "properties", "a", "pattern", unsupported_res[_i]);
    ev_error err;
    ck_assert_int_eq(ev_schema_set_add(s, "la.json", sc, &err), EV_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.text, "pattern"));
    ck_assert(!ev_schema_has_type(s, "la"));
    json_decref(sc);
    ev_schema_set_free(s);
}
END_TEST

/* ---- load_dir and event types -------------------------------------------- */

static ev_schema_set *load_cross(void)
{
    char dir[PATH_MAX];
    fixture(dir, sizeof(dir), "cross");
    ev_schema_set *s = ev_schema_set_new();
    ev_error err;
    ck_assert_msg(ev_schema_set_load_dir(s, dir, &err) == 0, "%s", err.text);
    return s;
}

static const struct type_case {
    const char *type, *data;
    int rc;
    const char *text;
} type_cases[] = {
    {"order.placed",
     "{\"order_id\":\"o1\",\"items\":[{\"sku\":\"a\",\"qty\":1}],"
     "\"total_cents\":100}",
     0, ""},
    {"order.placed", "{\"order_id\":\"\",\"items\":[{\"sku\":\"a\",\"qty\":1}]}",
     EV_ESCHEMA, "/order_id: minLength: length 0 is less than 1"},
    {"order.placed",
     "{\"order_id\":\"o1\",\"items\":[{\"sku\":\"a\",\"qty\":1}],"
     "\"total_cents\":-1}",
     EV_ESCHEMA, "/total_cents: minimum: -1 is less than 0"},
    {"order.placed", "{\"order_id\":\"o1\",\"items\":[{\"sku\":\"a\",\"qty\":0}]}",
     EV_ESCHEMA, "/items/0/qty: minimum: 0 is less than 1"},
    {"order.placed", "{\"items\":[]}", EV_ESCHEMA,
     "/: required: missing property \"order_id\""},
    {"customer.registered", "{\"customer_id\":\"c1\",\"email\":\"a@b.c\"}", 0, ""},
    {"customer.registered", "{\"customer_id\":\"c1\",\"email\":\"nope\"}", EV_ESCHEMA,
     "/email: format: not a valid email"},
    {"order.shipped", "{}", EV_EUNKNOWN, "schema: unknown event type \"order.shipped\""},
    {"choreography", "{}", EV_EUNKNOWN, "schema: unknown event type \"choreography\""},
};

START_TEST(validate_type_uses_dir_and_cross_file_refs)
{
    const struct type_case *c = &type_cases[_i];
    ev_schema_set *s = load_cross();
    json_t *data = parse(c->data);
    ev_error err;
    int rc = ev_schema_validate_type(s, c->type, data, &err);
    ck_assert_msg(rc == c->rc, "%s %s: rc %d (%s)", c->type, c->data, rc, err.text);
    ck_assert_str_eq(err.text, c->text);
    ck_assert(ev_schema_has_type(s, c->type) == (c->rc != EV_EUNKNOWN));
    json_decref(data);
    ev_schema_set_free(s);
}
END_TEST

START_TEST(load_dir_registers_file_name_id_and_file_uri)
{
    ev_schema_set *s = load_cross();
    char path[PATH_MAX], uri[PATH_MAX + 8];
    fixture(path, sizeof(path), "cross/order.placed.json");
    char *abs = realpath(path, NULL);
    ck_assert_ptr_nonnull(abs);
    snprintf(uri, sizeof(uri), "file://%s", abs);
    free(abs);
    json_t *bad = parse("{\"customer_id\":1,\"email\":\"a@b\"}");
    json_t *order = parse("{}");
    const char *ids[] = {"customer.registered.json",
                         "https://choreo.example/schemas/customer.registered.json",
                         "https://choreo.example/schemas/customer.registered.json#"};
    ev_error err;
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        ck_assert_int_eq(ev_schema_validate(s, ids[i], bad, &err), EV_ESCHEMA);
    ck_assert_int_eq(ev_schema_validate(s, "order.placed.json", order, &err), EV_ESCHEMA);
    ck_assert_int_eq(ev_schema_validate(s, uri, order, &err), EV_ESCHEMA);
    ck_assert_int_eq(ev_schema_validate(s, "choreography.json", order, &err),
                     EV_ENOTFOUND);
    ck_assert_int_eq(ev_schema_validate(s, "README.txt", order, &err), EV_ENOTFOUND);
    ck_assert_int_eq(ev_schema_set_check(s, &err), 0);
    json_decref(bad);
    json_decref(order);
    ev_schema_set_free(s);
}
END_TEST

static const struct dir_case {
    const char *dir;
    int rc;
    const char *needle; /* in err->text */
} dir_cases[] = {
    {"broken_ref", EV_ENOTFOUND, "missing.json#/definitions/x"},
    {"bad_json", EV_EPARSE, "x.json"},
    {"bad_schema", EV_EINVAL, "type"},
    {"no_such_dir", EV_EIO, "no_such_dir"},
};

START_TEST(load_dir_reports_broken_directories)
{
    const struct dir_case *c = &dir_cases[_i];
    char dir[PATH_MAX];
    fixture(dir, sizeof(dir), c->dir);
    ev_schema_set *s = ev_schema_set_new();
    ev_error err;
    int rc = ev_schema_set_load_dir(s, dir, &err);
    ck_assert_msg(rc == c->rc, "%s: rc %d (%s)", c->dir, rc, err.text);
    ck_assert_msg(strstr(err.text, c->needle) != NULL, "%s: %s", c->dir, err.text);
    ev_schema_set_free(s);
}
END_TEST

/* ---- set API ------------------------------------------------------------- */

START_TEST(ref_resolves_when_target_added_later)
{
    ev_schema_set *s = ev_schema_set_new();
    json_t *a = parse("{\"properties\":{\"n\":{\"$ref\":\"b.json#/definitions/n\"}}}");
    json_t *b = parse("{\"definitions\":{\"n\":{\"type\":\"integer\"}}}");
    json_t *in = parse("{\"n\":\"x\"}");
    ev_error err;
    ck_assert_int_eq(ev_schema_set_add(s, "a.json", a, &err), 0);
    ck_assert_int_eq(ev_schema_validate(s, "a.json", in, &err), EV_ENOTFOUND);
    ck_assert_int_eq(ev_schema_set_check(s, &err), EV_ENOTFOUND);
    ck_assert_int_eq(ev_schema_set_add(s, "b.json", b, &err), 0);
    ck_assert_int_eq(ev_schema_set_check(s, &err), 0);
    ck_assert_int_eq(ev_schema_validate(s, "a.json", in, &err), EV_ESCHEMA);
    ck_assert_str_eq(err.text, "/n: type: expected integer, got string");
    json_decref(a);
    json_decref(b);
    json_decref(in);
    ev_schema_set_free(s);
}
END_TEST

START_TEST(add_rejects_bad_schema_and_duplicate_uri)
{
    ev_schema_set *s = ev_schema_set_new();
    json_t *ok = parse("{\"$id\":\"http://d.test/x.json\",\"type\":\"integer\"}");
    json_t *other = parse("{\"$id\":\"http://d.test/x.json\",\"type\":\"string\"}");
    json_t *bad = parse("{\"properties\":{\"a\":{\"minimum\":\"1\"}}}");
    json_t *one = parse("1");
    ev_error err;
    ck_assert_int_eq(ev_schema_set_add(s, "x.json", ok, &err), 0);
    ck_assert_int_eq(ev_schema_set_add(s, "x.json", other, &err), EV_EINVAL);
    ck_assert_int_eq(ev_schema_set_add(s, "y.json", other, &err), EV_EINVAL);
    ck_assert_int_eq(ev_schema_set_add(s, "z.json", bad, &err), EV_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.text, "minimum"));
    ck_assert_int_eq(ev_schema_validate(s, "y.json", one, &err), EV_ENOTFOUND);
    ck_assert_int_eq(ev_schema_validate(s, "http://d.test/x.json", one, &err), 0);
    ck_assert_int_eq(ev_schema_set_add(s, NULL, ok, &err), EV_EINVAL);
    ck_assert_int_eq(ev_schema_validate(s, "x.json", NULL, &err), EV_EINVAL);
    ck_assert_int_eq(ev_schema_validate_type(NULL, "x", one, &err), EV_EINVAL);
    json_decref(ok);
    json_decref(other);
    json_decref(bad);
    json_decref(one);
    ev_schema_set_free(s);
}
END_TEST

START_TEST(validate_doc_keeps_nothing)
{
    ev_schema_set *s = ev_schema_set_new();
    json_t *persistent = parse("{\"$id\":\"http://t.test/p.json\",\"type\":\"integer\"}");
    ev_error err;
    ck_assert_int_eq(ev_schema_set_add(s, "p.json", persistent, &err), 0);
    /* the anonymous schema reuses the persistent $id: it shadows it, then goes */
    ck_assert_int_eq(
        check_doc(s,
                  "{\"$id\":\"http://t.test/p.json\",\"definitions\":{\"q\":{"
                  "\"$id\":\"q.json\"}},\"type\":\"string\"}",
                  "\"a\"", &err),
        0);
    json_t *one = parse("1");
    ck_assert_int_eq(ev_schema_validate(s, "http://t.test/p.json", one, &err), 0);
    ck_assert_int_eq(ev_schema_validate(s, "http://t.test/q.json", one, &err),
                     EV_ENOTFOUND);
    ck_assert_int_eq(ev_schema_validate(s, "", one, &err), EV_ENOTFOUND);
    json_decref(one);
    json_decref(persistent);
    ev_schema_set_free(s);
}
END_TEST

typedef struct worker {
    ev_schema_set *s;
    int bad;
} worker;

static void *validate_many(void *arg)
{
    worker *w = arg;
    json_t *good = parse("{\"order_id\":\"o1\",\"items\":[{\"sku\":\"a\",\"qty\":2}]}");
    json_t *bad = parse("{\"order_id\":\"o1\",\"items\":[{\"sku\":\"a\",\"qty\":0}]}");
    for (int i = 0; i < 2000; i++) {
        ev_error err;
        if (ev_schema_validate_type(w->s, "order.placed", good, &err) != 0 ||
            ev_schema_validate_type(w->s, "order.placed", bad, &err) != EV_ESCHEMA)
            w->bad++;
    }
    json_decref(good);
    json_decref(bad);
    return NULL;
}

START_TEST(concurrent_validation_of_one_set)
{
    ev_schema_set *s = load_cross();
    pthread_t t[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){s, 0};
        ck_assert_int_eq(pthread_create(&t[i], NULL, validate_many, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(w[i].bad, 0);
    }
    ev_schema_set_free(s);
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *schema_suite(void)
{
    Suite *s = suite_create("schema");
    TCase *tc = tcase_create("messages");
    tcase_add_loop_test(tc, error_text_names_pointer_and_keyword, 0, N(msg_cases));
    suite_add_tcase(s, tc);
    tc = tcase_create("refs");
    tcase_add_loop_test(tc, ref_resolves_per_draft07, 0, N(ref_cases));
    tcase_add_test(tc, ref_resolves_when_target_added_later);
    suite_add_tcase(s, tc);
    tc = tcase_create("regex");
    tcase_add_loop_test(tc, pattern_translates_ecma_escapes, 0, N(re_cases));
    tcase_add_loop_test(tc, unsupported_regex_rejected_at_add, 0, N(unsupported_res));
    suite_add_tcase(s, tc);
    tc = tcase_create("dir");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, validate_type_uses_dir_and_cross_file_refs, 0, N(type_cases));
    tcase_add_test(tc, load_dir_registers_file_name_id_and_file_uri);
    tcase_add_loop_test(tc, load_dir_reports_broken_directories, 0, N(dir_cases));
    tcase_add_test(tc, concurrent_validation_of_one_set);
    suite_add_tcase(s, tc);
    tc = tcase_create("api");
    tcase_add_test(tc, add_rejects_bad_schema_and_duplicate_uri);
    tcase_add_test(tc, validate_doc_keeps_nothing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(schema_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
