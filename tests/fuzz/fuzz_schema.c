/* SPDX-License-Identifier: MIT */
/* Fuzz target: schema validation. The input, parsed as JSON, is an instance of
 * every schema of schemas/, and (an object or boolean) a schema for a fixed set
 * of instances and itself: no crash, no hang, only the documented errors. */
#include <dirent.h>
#include <string.h>

#include "fuzz.h"
#include "schema.h"

#define MAX_SCHEMAS 64

static ev_schema_set *set;
static char *names[MAX_SCHEMAS];
static size_t n_names;
static json_t *fixed; /* array of instances for fuzzed schemas */
static json_t *good_order, *bad_order;

static const char fixed_text[] =
    "[null, true, false, 0, -1, 1.5, 1e300, 9223372036854775807, \"\", \"a\", \"ABC\","
    " \"a@b.c\", \"2026-11-24T10:00:00.123Z\", \"\\u00e9t\\u00e9\", [], [1, \"a\", null],"
    " [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],"
    " {}, {\"a\": 1, \"b\": {\"c\": [true]}},"
    " {\"order_id\": \"o-1\", \"customer_id\": \"c-1\", \"items\": [{\"sku\": \"s\","
    " \"qty\": 1, \"unit_price_cents\": 100}], \"total_cents\": 100, \"currency\": "
    "\"EUR\"}]";

static void load_names(void)
{
    DIR *d = opendir(EV_SCHEMA_DIR);
    FUZZ_CHECK(d != NULL, "cannot open %s", EV_SCHEMA_DIR);
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len <= 5 || strcmp(e->d_name + len - 5, ".json") != 0 ||
            strcmp(e->d_name, "choreography.json") == 0)
            continue;
        FUZZ_CHECK(n_names < MAX_SCHEMAS, "more than %d schemas", MAX_SCHEMAS);
        names[n_names] = strdup(e->d_name);
        FUZZ_CHECK(names[n_names] != NULL, "out of memory");
        n_names++;
    }
    closedir(d);
}

static void init(void)
{
    ev_error err;
    set = ev_schema_set_new();
    FUZZ_CHECK(set != NULL, "out of memory");
    FUZZ_CHECK(ev_schema_set_load_dir(set, EV_SCHEMA_DIR, &err) == 0, "%s", err.text);
    load_names();
    fixed = json_loads(fixed_text, 0, NULL);
    FUZZ_CHECK(json_is_array(fixed), "fixed instances do not parse");
    good_order = json_array_get(fixed, json_array_size(fixed) - 1);
    bad_order = json_object();
}

/* Error texts are UTF-8 whatever they quote (they end up in JSON and logs). */
static void check_text(const ev_error *err)
{
    json_t *j = json_string(err->text);
    FUZZ_CHECK(j != NULL, "error text is not UTF-8: %s", err->text);
    json_decref(j);
}

/* The set is unchanged by what was validated before: a known order still
 * passes order.placed.json and an empty object still fails it. */
static void check_set_intact(void)
{
    ev_error err;
    int rc = ev_schema_validate(set, "order.placed.json", good_order, &err);
    FUZZ_CHECK(rc == 0, "a valid order fails now: %s", err.text);
    rc = ev_schema_validate(set, "order.placed.json", bad_order, &err);
    FUZZ_CHECK(rc == EV_ESCHEMA, "an empty order passes now (%d)", rc);
}

/* The input as an instance of every project schema. */
static void check_instance(const json_t *v)
{
    for (size_t i = 0; i < n_names; i++) {
        ev_error err;
        int rc = ev_schema_validate(set, names[i], v, &err);
        FUZZ_CHECK(rc == 0 || rc == EV_ESCHEMA, "%s: %d %s", names[i], rc, err.text);
        FUZZ_CHECK(rc == 0 || (err.text[0] == '/' && err.code == rc), "%s: text \"%s\"",
                   names[i], err.text);
        if (rc != 0)
            check_text(&err);
        int quiet = ev_schema_validate(set, names[i], v, NULL);
        FUZZ_CHECK(quiet == rc, "%s: %d with an error record, %d without", names[i], rc,
                   quiet);
    }
}

/* The input as a schema: only the documented errors, and the set intact. */
static void check_schema(json_t *schema)
{
    size_t n = json_array_size(fixed);
    for (size_t i = 0; i <= n; i++) {
        const json_t *inst = i < n ? json_array_get(fixed, i) : schema;
        ev_error err;
        int rc = ev_schema_validate_doc(set, schema, inst, &err);
        FUZZ_CHECK(rc == 0 || rc == EV_ESCHEMA || rc == EV_EINVAL || rc == EV_ENOTFOUND ||
                       rc == EV_EDEPTH,
                   "instance %zu: %d %s", i, rc, err.text);
        FUZZ_CHECK(rc == 0 || err.code == rc, "code %d, rc %d", err.code, rc);
        if (rc != 0)
            check_text(&err);
        if (rc == EV_EINVAL)
            break; /* the schema does not compile: the same for every instance */
    }
    check_set_intact();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (set == NULL)
        init();
    json_t *v = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (v == NULL)
        return 0;
    check_instance(v);
    if (json_is_object(v) || json_is_boolean(v))
        check_schema(v);
    json_decref(v);
    return 0;
}
