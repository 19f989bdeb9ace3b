/* SPDX-License-Identifier: MIT */
/* choreo produce: builds the envelope of an event, validates its data against
 * the schema, sends it keyed by the contract and reports the delivery. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "cli.h"
#include "binding.h"
#include "envelope.h"

#define CLI_MAX_HEADERS 12

static const char usage[] =
    "usage: choreo produce TYPE [--data JSON | -f FILE] [options]\n"
    "       choreo produce TYPE < events.ndjson      (one data object per line)\n"
    "       choreo produce --raw TOPIC [--data BYTES] [--key K] < bytes\n"
    "\n"
    "Builds a CloudEvents envelope (source /choreo/cli) around the data, validates\n"
    "the data against schemas/TYPE.json (nothing is sent when it is invalid), sends\n"
    "it to the type's topic keyed by the contract's key field, waits for the\n"
    "delivery report and prints id, topic, partition and offset. NDJSON on stdin\n"
    "streams at broker speed and prints one summary line.\n"
    "\n"
    "Options:\n"
    "  -d, --data JSON        the event's data\n"
    "  -f, --file FILE        read the data (one JSON document) from FILE\n"
    "  -k, --key K            record key (default: the data's key field)\n"
    "      --id ID            event id (default: a new UUIDv4)\n"
    "      --correlation ID   correlation id (default: the event's own id)\n"
    "      --subject S        subject (default: the key)\n"
    "      --binary           CloudEvents binary mode: attributes in ce_* headers,\n"
    "                         the data as the value (default: structured mode)\n"
    "      --raw TOPIC        send the bytes of --data or stdin as they "
    "are\n" CLI_COMMON_HELP;

enum { OPT_ID = CLI_OPT_FIRST_LOCAL, OPT_CORRELATION, OPT_SUBJECT, OPT_RAW, OPT_BINARY };

/* Delivery bookkeeping shared by single and bulk sends. */
typedef struct delivery {
    cli_ctx *ctx;
    size_t delivered, failed;
    int err;
    char errstr[256];
    char topic[CLI_TOPIC_MAX];
    int32_t partition;
    int64_t offset;
} delivery;

static void on_delivery(void *arg, void *opaque, int err, const char *errstr,
                        const char *topic, int32_t partition, int64_t offset)
{
    delivery *d = arg;
    (void)opaque;
    if (err != 0) {
        if (d->failed++ < 5)
            fprintf(stderr, "%s: delivery to %s failed: %s\n", d->ctx->name, topic,
                    errstr);
        d->err = err;
        snprintf(d->errstr, sizeof(d->errstr), "%s", errstr ? errstr : "");
        return;
    }
    d->delivered++;
    snprintf(d->topic, sizeof(d->topic), "%s", topic);
    d->partition = partition;
    d->offset = offset;
}

static int parse_args(cli_ctx *ctx, int argc, char **argv, cli_produce_opts *o)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"data", required_argument, NULL, 'd'},
        {"file", required_argument, NULL, 'f'},
        {"key", required_argument, NULL, 'k'},
        {"id", required_argument, NULL, OPT_ID},
        {"correlation", required_argument, NULL, OPT_CORRELATION},
        {"subject", required_argument, NULL, OPT_SUBJECT},
        {"raw", required_argument, NULL, OPT_RAW},
        {"binary", no_argument, NULL, OPT_BINARY},
        {NULL, 0, NULL, 0},
    };
    int c, r;
    while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "d:f:k:", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            o->data = optarg;
            break;
        case 'f':
            o->file = optarg;
            break;
        case 'k':
            o->key = optarg;
            break;
        case OPT_ID:
            o->id = optarg;
            break;
        case OPT_CORRELATION:
            o->correlation = optarg;
            break;
        case OPT_SUBJECT:
            o->subject = optarg;
            break;
        case OPT_RAW:
            o->raw = optarg;
            break;
        case OPT_BINARY:
            o->binary = true;
            break;
        default:
            r = cli_common_opt(ctx, c, optarg);
            if (r != CLI_CONTINUE)
                return r;
        }
    }
    if (o->raw == NULL && optind != argc - 1)
        return cli_usage_error(ctx, "expected one event TYPE (e.g. order.placed)");
    if (o->raw != NULL && optind != argc)
        return cli_usage_error(ctx, "--raw TOPIC takes no TYPE");
    if (o->data != NULL && o->file != NULL)
        return cli_usage_error(ctx, "--data and --file exclude each other");
    if (o->raw != NULL && (o->file || o->id || o->correlation || o->subject || o->binary))
        return cli_usage_error(ctx,
                               "--raw sends bytes as given: only --data and --key apply");
    o->type = o->raw ? NULL : argv[optind];
    return CLI_CONTINUE;
}

/* ---- building one record ---- */

/* snprintf of s into out (cap bytes); false when it was cut short. */
static bool copy_fits(char *out, size_t cap, const char *s)
{
    int k = snprintf(out, cap, "%s", s);
    return k >= 0 && (size_t)k < cap;
}

/* rec->key: --key, else the data's key field (a string or an integer). Never
 * cut short: a cut key would partition differently from the data's, and could
 * end inside a UTF-8 sequence (it is the subject too). */
static int record_key(const cli_produce_opts *o, const ev_event_route *route,
                      const json_t *data, cli_record *rec, char *why, size_t cap)
{
    const json_t *v = json_object_get(data, route->key_field);
    char num[32];
    const char *key = o->key;
    if (key == NULL && json_is_string(v))
        key = json_string_value(v);
    if (key == NULL && json_is_integer(v)) {
        snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
        key = num;
    }
    if (key == NULL) {
        snprintf(why, cap, "data has no key field '%s'; give --key", route->key_field);
        return CLI_FAIL;
    }
    if (!copy_fits(rec->key, sizeof(rec->key), key)) {
        snprintf(why, cap, "key %s%s is longer than %zu bytes; give a shorter --key",
                 o->key ? "--key" : "field ", o->key ? "" : route->key_field,
                 sizeof(rec->key) - 1);
        return CLI_FAIL;
    }
    return CLI_OK;
}

/* Validates data (borrowed) and serializes its envelope into rec. On failure
 * *why says what is wrong; returns CLI_FAIL. */
static int build(cli_ctx *ctx, const cli_produce_opts *o, const ev_event_route *route,
                 json_t *data, cli_record *rec, char *why, size_t cap)
{
    ev_error err;
    ev_envelope env = {0};
    int rc = CLI_FAIL;
    if (ev_schema_validate_type(cli_schemas(ctx), o->type, data, &err) != 0) {
        snprintf(why, cap, "%s data is invalid at %s", o->type, err.text);
        return CLI_FAIL;
    }
    if (record_key(o, route, data, rec, why, cap) != CLI_OK)
        return CLI_FAIL;
    json_incref(data);
    if (ev_envelope_init(&env, o->type, CLI_SOURCE, o->subject ? o->subject : rec->key,
                         data, &err) != 0) {
        snprintf(why, cap, "%s", err.text);
        goto cleanup;
    }
    if (o->id != NULL) {
        snprintf(env.id, sizeof(env.id), "%s", o->id);
        snprintf(env.correlationid, sizeof(env.correlationid), "%s", o->id);
    }
    if (o->correlation != NULL)
        snprintf(env.correlationid, sizeof(env.correlationid), "%s", o->correlation);
    snprintf(rec->id, sizeof(rec->id), "%s", env.id);
    if (o->binary) {
        rec->head = env;
        rec->head.data = NULL;
        rec->binary = true;
        rec->value = json_dumps(env.data, JSON_COMPACT);
        rec->len = rec->value ? strlen(rec->value) : 0;
        if (rec->value == NULL) {
            snprintf(why, cap, "out of memory");
            goto cleanup;
        }
    } else if (ev_envelope_serialize(&env, NULL, &rec->value, &rec->len, &err) != 0) {
        snprintf(why, cap, "%s", err.text);
        goto cleanup;
    }
    rc = CLI_OK;
cleanup:
    ev_envelope_clear(&env);
    return rc;
}

static json_t *parse_data(const char *text, size_t len, char *why, size_t cap)
{
    json_error_t je;
    json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (v == NULL)
        snprintf(why, cap, "data is not JSON: %s (line %d column %d)", je.text, je.line,
                 je.column);
    else if (!json_is_object(v)) {
        snprintf(why, cap, "data must be a JSON object");
        json_decref(v);
        v = NULL;
    }
    return v;
}

int cli_produce_build(cli_ctx *ctx, const cli_produce_opts *o,
                      const ev_event_route *route, const char *text, size_t len,
                      cli_record *rec, char *why, size_t cap)
{
    json_t *data = parse_data(text, len, why, cap);
    int rc = data != NULL ? build(ctx, o, route, data, rec, why, cap) : CLI_FAIL;
    json_decref(data);
    return rc;
}

static const ev_header ce_header = {"content-type", "application/cloudevents+json"};

/* The record's headers: content-type for structured mode, ce_* for binary. */
static size_t record_headers(const cli_record *rec, ev_header *out, size_t cap)
{
    if (rec->binary)
        return ev_binding_headers(&rec->head, out, cap);
    out[0] = ce_header;
    return 1;
}

static int open_producer(cli_ctx *ctx, delivery *d, ev_producer **p)
{
    rd_kafka_t *probe = NULL;
    ev_error err;
    if (cli_kafka_new(ctx, RD_KAFKA_PRODUCER, NULL, &probe) != CLI_OK)
        return CLI_FAIL;
    rd_kafka_destroy(probe);
    if (ev_producer_new(p, ctx->cfg.brokers, "choreo-cli", on_delivery, d, &err) != 0)
        return cli_fail(ctx, "producer: %s", err.text);
    return CLI_OK;
}

static int report_one(cli_ctx *ctx, const delivery *d, const char *id, const char *type,
                      const char *key)
{
    if (d->delivered != 1)
        return cli_fail(ctx,
                        "not delivered: %s; is the broker healthy? try `choreo topics`",
                        d->errstr[0] ? d->errstr : "timed out");
    if (ctx->json) {
        json_t *o = json_pack("{s:s?, s:s?, s:s, s:i, s:I, s:s}", "id", id, "type", type,
                              "topic", d->topic, "partition", (int)d->partition, "offset",
                              (json_int_t)d->offset, "key", key);
        cli_print_json(o);
        json_decref(o);
    } else if (id != NULL) {
        printf("id=%s type=%s topic=%s partition=%d offset=%lld key=%s\n", id, type,
               d->topic, (int)d->partition, (long long)d->offset, key);
    } else {
        printf("topic=%s partition=%d offset=%lld key=%s\n", d->topic, (int)d->partition,
               (long long)d->offset, key);
    }
    return CLI_OK;
}

/* Sends one record and waits for its delivery report. */
static int send_one(cli_ctx *ctx, const char *topic, const cli_record *rec,
                    const char *type)
{
    delivery d = {.ctx = ctx};
    ev_producer *p = NULL;
    ev_error err;
    char full[CLI_TOPIC_MAX];
    int rc = open_producer(ctx, &d, &p);
    if (rc != CLI_OK)
        return rc;
    cli_topic(ctx, topic, full);
    ev_header hdrs[CLI_MAX_HEADERS];
    size_t nh = type ? record_headers(rec, hdrs, CLI_MAX_HEADERS) : 0;
    if (ev_producer_send(p, full, -1, rec->key[0] ? rec->key : NULL, rec->value, rec->len,
                         nh ? hdrs : NULL, nh, NULL, &err) != 0) {
        rc = cli_fail(ctx, "send to %s: %s", full, err.text);
        goto cleanup;
    }
    if (ev_producer_flush(p, 30000, &err) != 0)
        snprintf(d.errstr, sizeof(d.errstr), "%s", err.text);
    rc = report_one(ctx, &d, type ? rec->id : NULL, type, rec->key);
cleanup:
    ev_producer_free(p);
    return rc;
}

static int produce_single(cli_ctx *ctx, const cli_produce_opts *o,
                          const ev_event_route *route)
{
    char why[400];
    char *text = NULL;
    size_t len = 0;
    cli_record rec = {0};
    int rc = CLI_FAIL;
    if (o->data != NULL) {
        len = strlen(o->data);
    } else if (cli_read_file(ctx, o->file, &text, &len) != CLI_OK) {
        return CLI_FAIL;
    }
    if (cli_produce_build(ctx, o, route, o->data ? o->data : text, len, &rec, why,
                          sizeof(why)) != CLI_OK) {
        cli_fail(ctx, "%s; nothing sent", why);
        goto cleanup;
    }
    rc = send_one(ctx, route->topic, &rec, o->type);
cleanup:
    free(rec.value);
    free(text);
    return rc;
}

/* ---- bulk NDJSON ---- */

size_t cli_ndjson_read(FILE *in, cli_line_fn fn, void *arg)
{
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, in)) >= 0) {
        lineno++;
        if (strspn(line, " \t\r\n") == (size_t)n)
            continue;
        fn(arg, line, (size_t)n, lineno);
    }
    free(line);
    return lineno;
}

typedef struct bulk {
    cli_ctx *ctx;
    const cli_produce_opts *o;
    const ev_event_route *route;
    ev_producer *p;
    const char *topic;
    size_t lines, sent, invalid;
} bulk;

/* One NDJSON line (a cli_line_fn): validated, built and queued, or counted
 * invalid with the first few reasons printed. */
static void bulk_line(void *arg, const char *line, size_t len, size_t lineno)
{
    bulk *b = arg;
    char why[400] = "";
    cli_record rec = {0};
    ev_error err;
    b->lines = lineno;
    if (cli_produce_build(b->ctx, b->o, b->route, line, len, &rec, why, sizeof(why)) ==
        CLI_OK) {
        ev_header hdrs[CLI_MAX_HEADERS];
        size_t nh = record_headers(&rec, hdrs, CLI_MAX_HEADERS);
        if (ev_producer_send(b->p, b->topic, -1, rec.key, rec.value, rec.len, hdrs, nh,
                             NULL, &err) == 0)
            b->sent++;
        else
            snprintf(why, sizeof(why), "send: %s", err.text);
    }
    if (why[0] != '\0' && b->invalid++ < 10)
        fprintf(stderr, "%s: line %zu: %s; not sent\n", b->ctx->name, b->lines, why);
    free(rec.value);
    ev_producer_poll(b->p, 0);
}

static int produce_bulk(cli_ctx *ctx, const cli_produce_opts *o,
                        const ev_event_route *route)
{
    delivery d = {.ctx = ctx};
    ev_producer *p = NULL;
    ev_error err;
    char topic[CLI_TOPIC_MAX];
    if (open_producer(ctx, &d, &p) != CLI_OK)
        return CLI_FAIL;
    cli_topic(ctx, route->topic, topic);
    bulk b = {ctx, o, route, p, topic, 0, 0, 0};
    int64_t t0 = ev_mono_ms();
    b.lines = cli_ndjson_read(stdin, bulk_line, &b);
    if (ev_producer_flush(p, 60000, &err) != 0)
        cli_fail(ctx, "flush: %s", err.text);
    double secs = (double)(ev_mono_ms() - t0) / 1000.0;
    double rate = secs > 0 ? (double)d.delivered / secs : (double)d.delivered;
    size_t errors = b.invalid + d.failed + (b.sent - d.delivered - d.failed);
    if (ctx->json) {
        json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:f, s:f}", "type", o->type,
                              "topic", topic, "sent", (json_int_t)b.sent, "delivered",
                              (json_int_t)d.delivered, "errors", (json_int_t)errors,
                              "seconds", secs, "rate", rate);
        cli_print_json(j);
        json_decref(j);
    } else {
        printf("produced %zu %s to %s: %zu errors, %.0f records/s (%.2f s)\n",
               d.delivered, o->type, topic, errors, rate, secs);
    }
    ev_producer_free(p);
    return errors == 0 ? CLI_OK : CLI_FAIL;
}

/* ---- raw ---- */

static int produce_raw(cli_ctx *ctx, const cli_produce_opts *o)
{
    cli_record rec = {0};
    int rc;
    if (o->data != NULL) {
        rec.value = strdup(o->data);
        rec.len = strlen(o->data);
        if (rec.value == NULL)
            return cli_fail(ctx, "out of memory");
    } else if (cli_read_file(ctx, "-", &rec.value, &rec.len) != CLI_OK) {
        return CLI_FAIL;
    }
    snprintf(rec.key, sizeof(rec.key), "%s", o->key ? o->key : "");
    rc = send_one(ctx, o->raw, &rec, NULL);
    free(rec.value);
    return rc;
}

int cli_produce(cli_ctx *ctx, int argc, char **argv)
{
    cli_produce_opts o = {0};
    ctx->usage = usage;
    int rc = parse_args(ctx, argc, argv, &o);
    if (rc != CLI_CONTINUE)
        return rc;
    if (o.raw != NULL)
        return produce_raw(ctx, &o);
    ev_contract *c = cli_contract(ctx);
    if (c == NULL || cli_schemas(ctx) == NULL)
        return CLI_FAIL;
    const ev_event_route *route = ev_contract_route(c, o.type);
    if (route == NULL)
        return cli_fail(ctx, "unknown event type '%s'; `choreo flow` lists the types",
                        o.type);
    if (o.data != NULL || o.file != NULL)
        return produce_single(ctx, &o, route);
    return produce_bulk(ctx, &o, route);
}
