/* SPDX-License-Identifier: MIT */
/* choreo tail: the events of the system's topics as they arrive, filtered by
 * type and key; one coloured line each on a terminal, JSON lines otherwise. */
#include <fnmatch.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "binding.h"
#include "cli.h"
#include "envelope.h"

static const char usage[] =
    "usage: choreo tail [TOPIC...] [options]\n"
    "\n"
    "Prints the events of TOPICs (default: every topic of the contract, with the\n"
    "prefix) without joining a consumer group. On a terminal one coloured line per\n"
    "event: time, topic/partition@offset, type, subject, short id, data; otherwise\n"
    "JSON lines: the envelope plus topic, partition, offset and partitionkey.\n"
    "\n"
    "Options:\n"
    "  -t, --type GLOB        only types matching GLOB (e.g. 'order.*')\n"
    "  -k, --key K            only records with key K\n"
    "      --from-beginning   start at the beginning of each partition\n"
    "      --since DURATION   start at events newer than DURATION ago (5m, 1h)\n"
    "  -n, --count N          stop after N events\n"
    "      --until GLOB       stop with exit 0 at the first event of a matching type\n"
    "      --timeout DURATION stop after DURATION; exit 1 if --until/-n not reached\n"
    "      --pretty           coloured lines even when not on a "
    "terminal\n" CLI_COMMON_HELP
    "\nExample: choreo tail --from-beginning --key o-1 --until 'order.confirmed' "
    "--timeout 30s\n";

enum {
    OPT_FROM_BEGINNING = CLI_OPT_FIRST_LOCAL,
    OPT_SINCE,
    OPT_UNTIL,
    OPT_TIMEOUT,
    OPT_PRETTY
};

typedef struct tail_opts {
    const char *type, *key, *until;
    cli_start start;
    int64_t since_ms;
    long count;
    int64_t timeout_ms; /* 0 = none */
    bool pretty;
} tail_opts;

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static int parse_opt(cli_ctx *ctx, int c, tail_opts *o)
{
    int64_t ms = 0;
    switch (c) {
    case 't':
        o->type = optarg;
        return CLI_CONTINUE;
    case 'k':
        o->key = optarg;
        return CLI_CONTINUE;
    case 'n':
        if (!cli_parse_long(optarg, 1, 1000000000L, &o->count))
            return cli_usage_error(ctx, "-n wants a positive number, not '%s'", optarg);
        return CLI_CONTINUE;
    case OPT_FROM_BEGINNING:
        o->start = CLI_START_BEGINNING;
        return CLI_CONTINUE;
    case OPT_SINCE:
        if (!cli_parse_duration(optarg, &ms))
            return cli_usage_error(ctx, "--since wants a duration like 5m, not '%s'",
                                   optarg);
        o->start = CLI_START_TIME;
        o->since_ms = ev_now_ms() - ms;
        return CLI_CONTINUE;
    case OPT_UNTIL:
        o->until = optarg;
        return CLI_CONTINUE;
    case OPT_TIMEOUT:
        if (!cli_parse_duration(optarg, &o->timeout_ms) || o->timeout_ms == 0)
            return cli_usage_error(ctx, "--timeout wants a duration like 30s, not '%s'",
                                   optarg);
        return CLI_CONTINUE;
    case OPT_PRETTY:
        o->pretty = true;
        return CLI_CONTINUE;
    default:
        return cli_common_opt(ctx, c, optarg);
    }
}

static int parse_args(cli_ctx *ctx, int argc, char **argv, tail_opts *o)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"type", required_argument, NULL, 't'},
        {"key", required_argument, NULL, 'k'},
        {"count", required_argument, NULL, 'n'},
        {"from-beginning", no_argument, NULL, OPT_FROM_BEGINNING},
        {"since", required_argument, NULL, OPT_SINCE},
        {"until", required_argument, NULL, OPT_UNTIL},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"pretty", no_argument, NULL, OPT_PRETTY},
        {NULL, 0, NULL, 0},
    };
    int c, r;
    while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "t:k:n:", opts, NULL)) != -1) {
        r = parse_opt(ctx, c, o);
        if (r != CLI_CONTINUE)
            return r;
    }
    return CLI_CONTINUE;
}

/* The prefixed topics to read: the arguments or the contract's. */
static char **tail_topics(cli_ctx *ctx, int argc, char **argv)
{
    if (optind >= argc)
        return cli_contract_topics(ctx);
    char **t = calloc((size_t)(argc - optind) + 1, sizeof(char *));
    for (int i = optind; t != NULL && i < argc; i++) {
        t[i - optind] = malloc(CLI_TOPIC_MAX);
        if (t[i - optind] == NULL) {
            cli_strv_free(t);
            return NULL;
        }
        cli_topic(ctx, argv[i], t[i - optind]);
    }
    return t;
}

/* ---- output ---- */

/* e as its structured-mode JSON object; NULL on failure. */
static json_t *event_object(const ev_envelope *e)
{
    char *buf = NULL;
    size_t len = 0;
    ev_error err;
    json_error_t je;
    json_t *o = NULL;
    if (ev_envelope_serialize(e, NULL, &buf, &len, &err) == 0)
        o = json_loadb(buf, len, 0, &je);
    free(buf);
    return o;
}

static void print_json_line(const rd_kafka_message_t *m, const ev_envelope *e,
                            const char *error)
{
    json_t *o = NULL;
    bool binary = ev_binding_mode_of(ev_binding_headers_of(m)) == EV_MODE_BINARY;
    if (e != NULL && binary) {
        o = event_object(e); /* the envelope the ce_* headers and the value stand for */
        if (o != NULL)
            json_object_set_new(o, "contentmode", json_string("binary"));
    } else if (e != NULL) {
        json_error_t je;
        o = json_loadb(m->payload, m->len, 0, &je);
    }
    if (o == NULL) {
        o = json_object();
        json_object_set_new(o, "error", json_string(error ? error : "not an event"));
        json_t *raw = json_stringn(m->payload ? m->payload : "", m->payload ? m->len : 0);
        json_object_set_new(o, "raw", raw ? raw : json_null());
    }
    json_object_set_new(o, "topic", json_string(rd_kafka_topic_name(m->rkt)));
    json_object_set_new(o, "partition", json_integer(m->partition));
    json_object_set_new(o, "offset", json_integer(m->offset));
    if (m->key != NULL)
        json_object_set_new(o, "partitionkey", json_stringn(m->key, m->key_len));
    cli_print_json(o);
    json_decref(o);
}

static const char *type_color(const char *type)
{
    static const struct {
        const char *prefix, *color;
    } colors[] = {
        {"order.", CLI_CYAN},           {"inventory.", CLI_YELLOW},
        {"payment.", CLI_GREEN},        {"shipment.", CLI_BLUE},
        {"notification.", CLI_MAGENTA}, {"customer.", CLI_MAGENTA},
        {"stock.", CLI_YELLOW},
    };
    for (size_t i = 0; i < sizeof(colors) / sizeof(colors[0]); i++)
        if (strncmp(type, colors[i].prefix, strlen(colors[i].prefix)) == 0)
            return colors[i].color;
    return "";
}

static void print_pretty(cli_ctx *ctx, const rd_kafka_message_t *m, const ev_envelope *e,
                         const char *error)
{
    char where[CLI_TOPIC_MAX + 48];
    char summary[96];
    snprintf(where, sizeof(where), "%s/%d@%lld", rd_kafka_topic_name(m->rkt),
             (int)m->partition, (long long)m->offset);
    if (e == NULL) {
        snprintf(summary, sizeof(summary), "%.*s", (int)(m->len < 60 ? m->len : 60),
                 m->payload ? (const char *)m->payload : "");
        printf("%-12s  %s%-24s%s  %s%-22s%s %s\n", "-", cli_color(ctx, CLI_DIM), where,
               cli_color(ctx, CLI_RESET), cli_color(ctx, CLI_RED), "(not an event)",
               cli_color(ctx, CLI_RESET), error ? error : summary);
        return;
    }
    char *data = e->data ? json_dumps(e->data, JSON_COMPACT) : NULL;
    snprintf(summary, sizeof(summary), "%s", data ? data : "");
    if (data != NULL && strlen(data) >= sizeof(summary))
        memcpy(summary + sizeof(summary) - 4, "...", 4);
    free(data);
    const char *t = strlen(e->time) >= 23 ? e->time + 11 : e->time;
    printf("%-12.12s  %s%-24s%s  %s%s%-22s%s  %-14s %s%.8s%s  %s\n", t,
           cli_color(ctx, CLI_DIM), where, cli_color(ctx, CLI_RESET),
           cli_color(ctx, CLI_BOLD), cli_color(ctx, type_color(e->type)), e->type,
           cli_color(ctx, CLI_RESET), e->subject, cli_color(ctx, CLI_DIM), e->id,
           cli_color(ctx, CLI_RESET), summary);
}

/* ---- the loop ---- */

typedef struct tail_state {
    size_t shown;
    bool until_seen;
} tail_state;

static bool key_matches(const rd_kafka_message_t *m, const char *key)
{
    return key == NULL || (m->key != NULL && m->key_len == strlen(key) &&
                           memcmp(m->key, key, m->key_len) == 0);
}

/* Filters, prints and counts one record. */
static void handle(cli_ctx *ctx, const tail_opts *o, const rd_kafka_message_t *m,
                   tail_state *st)
{
    ev_envelope e = {0};
    ev_error err;
    bool ok = ev_binding_parse_message(&e, m, NULL, &err) == 0;
    if (!key_matches(m, o->key))
        goto cleanup;
    if ((o->type || o->until) && !ok)
        goto cleanup;
    if (o->type != NULL && fnmatch(o->type, e.type, 0) != 0)
        goto cleanup;
    if (o->pretty)
        print_pretty(ctx, m, ok ? &e : NULL, ok ? NULL : err.text);
    else
        print_json_line(m, ok ? &e : NULL, ok ? NULL : err.text);
    fflush(stdout);
    st->shown++;
    if (o->until != NULL && fnmatch(o->until, e.type, 0) == 0)
        st->until_seen = true;
cleanup:
    ev_envelope_clear(&e);
}

static bool finished(const tail_opts *o, const tail_state *st)
{
    if (o->until != NULL)
        return st->until_seen;
    return o->count > 0 && st->shown >= (size_t)o->count;
}

static int run(cli_ctx *ctx, const tail_opts *o, cli_reader *r)
{
    tail_state st = {0};
    int64_t deadline = o->timeout_ms ? ev_mono_ms() + o->timeout_ms : INT64_MAX;
    while (!stop_flag && !finished(o, &st) && ev_mono_ms() < deadline) {
        rd_kafka_message_t *m = NULL;
        int got = cli_reader_next(r, 200, &m);
        if (got == CLI_READ_ERROR)
            return CLI_FAIL;
        if (got != CLI_READ_MSG)
            continue;
        handle(ctx, o, m, &st);
        rd_kafka_message_destroy(m);
    }
    if (finished(o, &st) || (o->until == NULL && o->count == 0))
        return CLI_OK;
    if (stop_flag)
        return CLI_FAIL;
    if (o->until != NULL)
        return cli_fail(ctx, "no %s event%s%s within the timeout", o->until,
                        o->key ? " with key " : "", o->key ? o->key : "");
    return cli_fail(ctx, "only %zu of %ld events within the timeout", st.shown, o->count);
}

int cli_tail(cli_ctx *ctx, int argc, char **argv)
{
    tail_opts o = {.start = CLI_START_END};
    cli_reader *r = NULL;
    ctx->usage = usage;
    int rc = parse_args(ctx, argc, argv, &o);
    if (rc != CLI_CONTINUE)
        return rc;
    o.pretty = o.pretty || (!ctx->json && isatty(STDOUT_FILENO));
    if (o.pretty && !isatty(STDOUT_FILENO))
        ctx->color = false;
    char **topics = tail_topics(ctx, argc, argv);
    if (topics == NULL)
        return CLI_FAIL;
    cli_reader_opts ro = {.topics = topics, .start = o.start, .since_ms = o.since_ms};
    rc = cli_reader_open(ctx, &ro, &r);
    if (rc == CLI_OK) {
        struct sigaction sa = {.sa_handler = on_signal};
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        rc = run(ctx, &o, r);
    }
    cli_reader_free(r);
    cli_strv_free(topics);
    return rc;
}
