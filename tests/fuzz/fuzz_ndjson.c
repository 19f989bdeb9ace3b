/* SPDX-License-Identifier: MIT */
/* Fuzz target: the NDJSON input of `choreo produce TYPE`. The input is stdin;
 * each line it yields is built as data of every type of the contract: a record
 * is built exactly when the data is valid, and the record parses back to it. */
#include <string.h>

#include "cli.h"
#include "fuzz.h"

static cli_ctx ctx;
static const ev_event_route *routes;
static size_t n_routes;

static void init(void)
{
    ev_error err;
    FUZZ_CHECK(ev_config_from_env(&ctx.cfg, NULL, &err) == 0, "%s", err.text);
    snprintf(ctx.cfg.schema_dir, sizeof(ctx.cfg.schema_dir), "%s", EV_SCHEMA_DIR);
    ctx.name = "choreo produce";
    ev_contract *c = cli_contract(&ctx);
    FUZZ_CHECK(c != NULL && cli_schemas(&ctx) != NULL, "cannot load %s", EV_SCHEMA_DIR);
    routes = ev_contract_routes(c, &n_routes);
    FUZZ_CHECK(n_routes > 0, "no routes");
}

/* The data's key as the record must carry it, whole; NULL when it has none. */
static const char *data_key(const ev_event_route *r, const json_t *data, char num[32])
{
    const json_t *key = json_object_get(data, r->key_field);
    if (json_is_integer(key)) {
        snprintf(num, 32, "%lld", (long long)json_integer_value(key));
        return num;
    }
    return json_string_value(key);
}

/* The record of a built line: an envelope of the type, source and key asked,
 * whose data is the line's and is valid. */
static void check_record(const ev_event_route *r, const cli_record *rec,
                         const json_t *data)
{
    ev_envelope e;
    ev_error err;
    char num[32];
    const char *key = data_key(r, data, num);
    FUZZ_CHECK(key != NULL && strcmp(rec->key, key) == 0,
               "%s: key \"%s\" is not the data's", r->type, rec->key);
    int rc = ev_envelope_parse(&e, rec->value, rec->len, NULL, &err);
    FUZZ_CHECK(rc == 0, "%s: record does not parse: %s", r->type, err.text);
    FUZZ_CHECK(strcmp(e.type, r->type) == 0 && strcmp(e.source, CLI_SOURCE) == 0,
               "%s: record of type %s from %s", r->type, e.type, e.source);
    FUZZ_CHECK(strcmp(e.id, rec->id) == 0 && strcmp(e.subject, rec->key) == 0 &&
                   strcmp(e.correlationid, e.id) == 0,
               "%s: id/subject/correlation not the record's", r->type);
    FUZZ_CHECK(e.data != NULL && json_equal(e.data, data), "%s: data changed", r->type);
    FUZZ_CHECK(ev_schema_validate_type(ctx.schemas, r->type, e.data, &err) == 0,
               "%s: record data invalid: %s", r->type, err.text);
    ev_envelope_clear(&e);
}

/* One line as data of every type. */
static void on_line(void *arg, const char *line, size_t len, size_t lineno)
{
    size_t *lines = arg;
    FUZZ_CHECK(lineno > *lines, "line %zu after line %zu", lineno, *lines);
    *lines = lineno;
    FUZZ_CHECK(len > 0 && strspn(line, " \t\r\n") < len, "blank line passed on");
    FUZZ_CHECK(memchr(line, '\n', len) == NULL || line[len - 1] == '\n',
               "newline inside a line");
    json_t *data = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
    for (size_t i = 0; i < n_routes; i++) {
        const ev_event_route *r = &routes[i];
        cli_produce_opts o = {.type = r->type};
        cli_record rec = {0};
        char why[400] = "";
        int rc = cli_produce_build(&ctx, &o, r, line, len, &rec, why, sizeof(why));
        char num[32];
        const char *key = data_key(r, data, num);
        bool valid = json_is_object(data) && key != NULL &&
                     ev_schema_validate_type(ctx.schemas, r->type, data, NULL) == 0;
        if (rc == CLI_OK)
            check_record(r, &rec, data);
        else
            FUZZ_CHECK(why[0] != '\0' && rec.value == NULL, "%s: failed without a reason",
                       r->type);
        /* Valid data with a key that fits, in a record under the size limit, is
         * sent; a key that does not fit is refused, never cut. */
        bool fits = key != NULL && strlen(key) < sizeof(rec.key);
        FUZZ_CHECK(rc == CLI_OK || !valid || !fits || len > 60000,
                   "%s: valid data refused: %s", r->type, why);
        FUZZ_CHECK(rc != CLI_OK || fits, "%s: a key of %zu bytes was accepted", r->type,
                   strlen(key));
        free(rec.value);
    }
    json_decref(data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (routes == NULL)
        init();
    if (size == 0)
        return 0;
    FILE *in = fmemopen((void *)data, size, "r");
    FUZZ_CHECK(in != NULL, "fmemopen");
    size_t lines = 0;
    size_t total = cli_ndjson_read(in, on_line, &lines);
    FUZZ_CHECK(total >= lines, "%zu lines read, line %zu seen", total, lines);
    size_t newlines = 0;
    for (size_t i = 0; i < size; i++)
        newlines += data[i] == '\n';
    FUZZ_CHECK(total == newlines + (data[size - 1] != '\n'), "%zu lines, %zu newlines",
               total, newlines);
    fclose(in);
    return 0;
}
