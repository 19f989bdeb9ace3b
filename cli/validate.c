/* SPDX-License-Identifier: MIT */
/* choreo validate: envelopes (or bare data of one type) against the envelope
 * rules and schemas/<type>.json, one JSON document or NDJSON, with locations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "envelope.h"

static const char usage[] =
    "usage: choreo validate FILE|- [--type TYPE]\n"
    "\n"
    "Checks CloudEvents envelopes (specversion, attributes, size, UTF-8, duplicate\n"
    "keys, depth) and their data against schemas/<type>.json. With --type TYPE the\n"
    "input is bare data of that type. The input is one JSON document, a JSON array\n"
    "of them, or NDJSON (one per line). Errors give the line and the JSON pointer.\n"
    "Exit 0 when everything is valid, 1 when anything is not.\n"
    "\n"
    "Options:\n"
    "  -t, --type TYPE        the input is data of TYPE, not envelopes\n" CLI_COMMON_HELP;

typedef struct tally {
    size_t valid, invalid;
    json_t *records; /* --json */
} tally;

static void report(cli_ctx *ctx, tally *t, size_t line, const char *type, const char *id,
                   const char *error)
{
    if (error == NULL)
        t->valid++;
    else
        t->invalid++;
    if (ctx->json) {
        json_array_append_new(t->records,
                              json_pack("{s:I, s:b, s:s?, s:s?, s:s?}", "line",
                                        (json_int_t)line, "valid", error == NULL, "type",
                                        type, "id", id, "error", error));
    } else if (error == NULL) {
        printf("line %zu: ok %s %s\n", line, type, id ? id : "");
    } else {
        printf("line %zu: invalid%s%s: %s\n", line, type ? " " : "", type ? type : "",
               error);
    }
}

/* One record's bytes; line is where it starts. */
static void check_record(cli_ctx *ctx, const char *type, const char *buf, size_t len,
                         size_t line, tally *t)
{
    ev_envelope e = {0};
    ev_error err;
    char why[EV_ERROR_TEXT + 64];
    if (type != NULL) {
        json_error_t je;
        json_t *data = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
        if (data == NULL) {
            snprintf(why, sizeof(why), "not JSON: %s (column %d)", je.text, je.column);
            report(ctx, t, line + (size_t)(je.line > 0 ? je.line - 1 : 0), type, NULL,
                   why);
            return;
        }
        int rc = ev_schema_validate_type(ctx->schemas, type, data, &err);
        report(ctx, t, line, type, NULL, rc == 0 ? NULL : err.text);
        json_decref(data);
        return;
    }
    if (ev_envelope_parse(&e, buf, len, NULL, &err) != 0) {
        snprintf(why, sizeof(why), "%s: %s", ev_error_name(err.code), err.text);
        report(ctx, t, line, NULL, NULL, why);
        return;
    }
    if (!ev_schema_has_type(ctx->schemas, e.type)) {
        report(ctx, t, line, e.type, e.id, "unknown event type (no schema)");
    } else if (ev_schema_validate_type(ctx->schemas, e.type,
                                       e.data ? e.data : json_null(), &err) != 0) {
        /* The schema's pointer is into data; make it one into the envelope. */
        snprintf(why, sizeof(why), "/data%s", err.text);
        report(ctx, t, line, e.type, e.id, why);
    } else {
        report(ctx, t, line, e.type, e.id, NULL);
    }
    ev_envelope_clear(&e);
}

/* True when the first non-blank line is a JSON document by itself. */
static bool is_ndjson(const char *buf, size_t len)
{
    const char *p = buf + strspn(buf, " \t\r\n");
    const char *end = memchr(p, '\n', len - (size_t)(p - buf));
    if (end == NULL)
        return false;
    json_t *v = json_loadb(p, (size_t)(end - p), 0, NULL);
    bool ok = v != NULL;
    json_decref(v);
    return ok;
}

static void check_lines(cli_ctx *ctx, const char *type, char *buf, size_t len, tally *t)
{
    size_t line = 1;
    char *p = buf, *end = buf + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (strspn(p, " \t\r") < n)
            check_record(ctx, type, p, n, line, t);
        p += n + 1;
        line++;
    }
}

/* One document; a top-level array is a list of records. */
static void check_document(cli_ctx *ctx, const char *type, const char *buf, size_t len,
                           tally *t)
{
    json_t *all = json_loadb(buf, len, 0, NULL);
    if (!json_is_array(all)) {
        json_decref(all);
        check_record(ctx, type, buf, len, 1, t);
        return;
    }
    size_t i;
    json_t *v;
    json_array_foreach(all, i, v)
    {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (s != NULL)
            check_record(ctx, type, s, strlen(s), i + 1, t);
        free(s);
    }
    json_decref(all);
}

int cli_validate(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"type", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    const char *type = NULL;
    char *buf = NULL;
    size_t len = 0;
    tally t = {0};
    int c, rc;
    ctx->usage = usage;
    while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "t:", opts, NULL)) != -1) {
        if (c == 't') {
            type = optarg;
            continue;
        }
        rc = cli_common_opt(ctx, c, optarg);
        if (rc != CLI_CONTINUE)
            return rc;
    }
    if (optind != argc - 1)
        return cli_usage_error(ctx, "expected one FILE (or - for stdin)");
    if (cli_schemas(ctx) == NULL)
        return CLI_FAIL;
    if (type != NULL && !ev_schema_has_type(ctx->schemas, type))
        return cli_fail(ctx, "unknown event type '%s'; `choreo flow` lists the types",
                        type);
    if (cli_read_file(ctx, argv[optind], &buf, &len) != CLI_OK)
        return CLI_FAIL;
    t.records = ctx->json ? json_array() : NULL;
    if (is_ndjson(buf, len))
        check_lines(ctx, type, buf, len, &t);
    else
        check_document(ctx, type, buf, len, &t);
    if (ctx->json) {
        json_t *o = json_pack("{s:I, s:I, s:o}", "valid", (json_int_t)t.valid, "invalid",
                              (json_int_t)t.invalid, "records", t.records);
        cli_print_json(o);
        json_decref(o);
    } else {
        printf("%zu valid, %zu invalid\n", t.valid, t.invalid);
    }
    free(buf);
    return t.invalid == 0 && t.valid > 0 ? CLI_OK : CLI_FAIL;
}
