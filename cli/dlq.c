/* SPDX-License-Identifier: MIT */
/* choreo dlq: a service's dead letters with the headers the runtime wrote
 * (original topic/partition/offset, error, service, time), and their replay. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "binding.h"
#include "cli.h"
#include "envelope.h"

static const char usage[] =
    "usage: choreo dlq list SERVICE\n"
    "       choreo dlq replay SERVICE [--id EVENT_ID | --offset N]\n"
    "\n"
    "list prints every record of dlq.<SERVICE>: its offset, the original topic,\n"
    "partition and offset, the error, the time, and the event id and type when the\n"
    "record is an event. replay sends the original bytes (same key, same headers\n"
    "but the dead-letter ones) back to the original topic: every dead letter, or\n"
    "the one whose event id is --id, or the one at dlq offset --offset. A timer's\n"
    "dead letter goes to the first topic SERVICE consumes, where the service arms\n"
    "that timer again, due at once: it fires in the service's own transaction and\n"
    "its events keep their ids, so a replay acts at most once downstream.\n"
    "\n"
    "Options:\n"
    "      --id EVENT_ID      replay only the dead letter of this event\n"
    "      --offset N         replay only the dead letter at this dlq "
    "offset\n" CLI_COMMON_HELP;

enum { OPT_ID = CLI_OPT_FIRST_LOCAL, OPT_OFFSET };

static const char *const dlq_headers[] = {
    "original.topic",
    "original.partition",
    "original.offset",
    "error",
    "service",
    "time",
    NULL,
};

static bool is_dlq_header(const char *name)
{
    for (size_t i = 0; dlq_headers[i] != NULL; i++)
        if (strcmp(name, dlq_headers[i]) == 0)
            return true;
    return false;
}

/* The record's headers as a JSON object of strings. */
static json_t *headers_json(const rd_kafka_message_t *m)
{
    json_t *o = json_object();
    rd_kafka_headers_t *hdrs = NULL;
    const char *name;
    const void *val;
    size_t size;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return o;
    for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &size) ==
                       RD_KAFKA_RESP_ERR_NO_ERROR;
         i++) {
        json_t *s = json_stringn(val ? val : "", val ? size : 0);
        if (s != NULL)
            json_object_set_new(o, name, s);
    }
    return o;
}

/* One dead letter as JSON: offset, key, headers, event id/type, value. */
static json_t *entry_json(const rd_kafka_message_t *m)
{
    ev_envelope e = {0};
    ev_error err;
    json_t *o = json_pack("{s:I, s:i}", "offset", (json_int_t)m->offset, "partition",
                          (int)m->partition);
    json_object_set_new(o, "headers", headers_json(m));
    if (m->key != NULL)
        json_object_set_new(o, "key", json_stringn(m->key, m->key_len));
    if (ev_binding_parse_message(&e, m, NULL, &err) == 0) {
        json_object_set_new(o, "id", json_string(e.id));
        json_object_set_new(o, "type", json_string(e.type));
    }
    ev_envelope_clear(&e);
    json_t *raw = json_stringn(m->payload ? m->payload : "", m->payload ? m->len : 0);
    json_object_set_new(o, "value", raw ? raw : json_null());
    return o;
}

static const char *hget(const json_t *entry, const char *name)
{
    const char *v =
        json_string_value(json_object_get(json_object_get(entry, "headers"), name));
    return v ? v : "-";
}

static void print_entry(const json_t *e)
{
    const char *value = json_string_value(json_object_get(e, "value"));
    printf("dlq@%d/%lld  from %s/%s@%s  at %s  by %s\n",
           (int)json_integer_value(json_object_get(e, "partition")),
           (long long)json_integer_value(json_object_get(e, "offset")),
           hget(e, "original.topic"), hget(e, "original.partition"),
           hget(e, "original.offset"), hget(e, "time"), hget(e, "service"));
    printf("  error: %s\n", hget(e, "error"));
    if (json_object_get(e, "id") != NULL)
        printf("  event: %s %s\n", json_string_value(json_object_get(e, "type")),
               json_string_value(json_object_get(e, "id")));
    printf("  value: %.100s%s\n", value ? value : "(not UTF-8)",
           value && strlen(value) > 100 ? "..." : "");
}

typedef struct selector {
    const char *id;
    long offset; /* -1 = any */
} selector;

static bool selected(const selector *s, const json_t *e)
{
    if (s->offset >= 0 && json_integer_value(json_object_get(e, "offset")) != s->offset)
        return false;
    if (s->id != NULL) {
        const char *id = json_string_value(json_object_get(e, "id"));
        return id != NULL && strcmp(id, s->id) == 0;
    }
    return true;
}

/* Reads the whole DLQ; with replay, sends each selected entry back. */
typedef struct replay {
    ev_producer *p;
    const char *service;
    size_t sent;
    int failed;
} replay;

static void on_delivery(void *arg, void *opaque, int err, const char *errstr,
                        const char *topic, int32_t partition, int64_t offset)
{
    replay *r = arg;
    long long from = (long long)(intptr_t)opaque;
    if (err != 0) {
        fprintf(stderr, "choreo dlq: replay of dlq offset %lld to %s failed: %s\n", from,
                topic, errstr);
        r->failed++;
        return;
    }
    printf("replayed dlq offset %lld -> %s/%d@%lld\n", from, topic, (int)partition,
           (long long)offset);
}

static int replay_one(cli_ctx *ctx, replay *r, const rd_kafka_message_t *m, json_t *e)
{
    ev_error err;
    ev_header hs[16];
    size_t nh = 0;
    const char *topic = json_string_value(
        json_object_get(json_object_get(e, "headers"), "original.topic"));
    char timer_topic[CLI_TOPIC_MAX];
    if (topic == NULL)
        return cli_fail(ctx, "dlq offset %lld has no original.topic; not replayed",
                        (long long)m->offset);
    if (strcmp(topic, "timer") == 0) { /* back to the service, which re-arms it */
        const char *const *in = ev_contract_service_topics(ctx->contract, r->service);
        if (in == NULL || in[0] == NULL)
            return cli_fail(ctx,
                            "dlq offset %lld: %s consumes no topic to replay its "
                            "timer through",
                            (long long)m->offset, r->service);
        cli_topic(ctx, in[0], timer_topic);
        topic = timer_topic;
    }
    const char *name;
    json_t *v;
    json_object_foreach(json_object_get(e, "headers"), name, v)
    {
        if (!is_dlq_header(name) && nh < 16)
            hs[nh++] = (ev_header){name, json_string_value(v)};
    }
    char *key = m->key ? strndup(m->key, m->key_len) : NULL;
    int rc = ev_producer_send(r->p, topic, -1, key, m->payload, m->len, hs, nh,
                              (void *)(intptr_t)m->offset, &err);
    free(key);
    if (rc != 0)
        return cli_fail(ctx, "replay to %s: %s", topic, err.text);
    r->sent++;
    return CLI_OK;
}

static int walk(cli_ctx *ctx, const char *topic, const selector *s, replay *r,
                json_t *list)
{
    char *topics[] = {(char *)topic, NULL};
    cli_reader_opts ro = {.topics = topics, .start = CLI_START_BEGINNING, .to_end = true};
    cli_reader *rd = NULL;
    int rc = cli_reader_open(ctx, &ro, &rd);
    while (rc == CLI_OK) {
        rd_kafka_message_t *m = NULL;
        int got = cli_reader_next(rd, 1000, &m);
        if (got == CLI_READ_DONE)
            break;
        if (got == CLI_READ_ERROR)
            rc = CLI_FAIL;
        if (got != CLI_READ_MSG)
            continue;
        json_t *e = entry_json(m);
        if (selected(s, e) && r != NULL && replay_one(ctx, r, m, e) != CLI_OK)
            r->failed++;
        else if (selected(s, e) && r == NULL)
            json_array_append(list, e);
        json_decref(e);
        rd_kafka_message_destroy(m);
    }
    cli_reader_free(rd);
    return rc;
}

static int list_dlq(cli_ctx *ctx, const char *topic)
{
    selector all = {NULL, -1};
    json_t *list = json_array();
    int rc = walk(ctx, topic, &all, NULL, list);
    if (rc == CLI_OK && ctx->json) {
        cli_print_json(list);
    } else if (rc == CLI_OK) {
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) print_entry(e);
        printf("%zu dead letter%s in %s\n", json_array_size(list),
               json_array_size(list) == 1 ? "" : "s", topic);
    }
    json_decref(list);
    return rc;
}

static int replay_dlq(cli_ctx *ctx, const char *service, const char *topic,
                      const selector *s)
{
    replay r = {.service = service};
    ev_error err;
    if (ev_producer_new(&r.p, ctx->cfg.brokers, "choreo-cli", on_delivery, &r, &err) != 0)
        return cli_fail(ctx, "producer: %s", err.text);
    int rc = walk(ctx, topic, s, &r, NULL);
    if (ev_producer_flush(r.p, 30000, &err) != 0)
        rc = cli_fail(ctx, "replay: %s", err.text);
    ev_producer_free(r.p);
    if (rc == CLI_OK && r.sent == 0 && (s->id != NULL || s->offset >= 0))
        return cli_fail(ctx, "no dead letter in %s matches; see `choreo dlq list`",
                        topic);
    if (rc == CLI_OK)
        printf("%zu record%s replayed from %s\n", r.sent, r.sent == 1 ? "" : "s", topic);
    return rc == CLI_OK && r.failed == 0 ? CLI_OK : CLI_FAIL;
}

static bool known_service(cli_ctx *ctx, const char *name)
{
    const char *const *svc = ev_contract_services(ctx->contract);
    for (size_t i = 0; svc[i] != NULL; i++)
        if (strcmp(svc[i], name) == 0)
            return true;
    return false;
}

int cli_dlq(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"id", required_argument, NULL, OPT_ID},
        {"offset", required_argument, NULL, OPT_OFFSET},
        {NULL, 0, NULL, 0},
    };
    selector s = {NULL, -1};
    char topic[CLI_TOPIC_MAX];
    int c, rc;
    ctx->usage = usage;
    while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, opts, NULL)) != -1) {
        if (c == OPT_ID) {
            s.id = optarg;
        } else if (c == OPT_OFFSET) {
            if (!cli_parse_long(optarg, 0, LONG_MAX, &s.offset))
                return cli_usage_error(ctx, "--offset wants a number, not '%s'", optarg);
        } else {
            rc = cli_common_opt(ctx, c, optarg);
            if (rc != CLI_CONTINUE)
                return rc;
        }
    }
    if (argc - optind != 2)
        return cli_usage_error(ctx, "expected `list SERVICE` or `replay SERVICE`");
    bool replay_cmd = strcmp(argv[optind], "replay") == 0;
    if (!replay_cmd && strcmp(argv[optind], "list") != 0)
        return cli_usage_error(ctx, "unknown action '%s': list or replay", argv[optind]);
    if (!replay_cmd && (s.id != NULL || s.offset >= 0))
        return cli_usage_error(ctx, "--id and --offset apply to replay");
    if (cli_contract(ctx) == NULL)
        return CLI_FAIL;
    if (!known_service(ctx, argv[optind + 1]))
        return cli_fail(ctx, "unknown service '%s'; `choreo flow` lists the services",
                        argv[optind + 1]);
    cli_dlq_topic(ctx, argv[optind + 1], topic);
    return replay_cmd ? replay_dlq(ctx, argv[optind + 1], topic, &s)
                      : list_dlq(ctx, topic);
}
