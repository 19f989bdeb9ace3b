/* SPDX-License-Identifier: MIT */
/* choreo trace: one flow's events from every topic as a causal tree (by
 * causationid) with the emitting service and the time between steps, the
 * outcome, and — from the contract's "flow" — the step a stuck flow waits for. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "cli.h"
#include "envelope.h"

static const char usage[] =
    "usage: choreo trace ORDER_ID | --correlation ID [options]\n"
    "\n"
    "Reads every topic of the contract from the beginning and keeps the events of\n"
    "one flow: those whose subject or data.order_id is ORDER_ID (or whose\n"
    "correlationid is ID). Prints them as a tree by causationid with the emitting\n"
    "service, the time since the cause and where each record is, then the outcome.\n"
    "When the flow has not ended, the \"flow\" section of choreography.json tells\n"
    "which step is missing and which service should emit it, with that service's\n"
    "consumer group (members and lag) to tell a stopped service from a slow one.\n"
    "\n"
    "Options:\n"
    "  -c, --correlation ID   trace by correlation id instead of order id\n"
    "      --timeout D        give up reading after D (default 30s)\n" CLI_COMMON_HELP;

enum { OPT_TIMEOUT = CLI_OPT_FIRST_LOCAL };

typedef struct tev {
    ev_envelope e;
    char topic[CLI_TOPIC_MAX];
    int32_t partition;
    int64_t offset;
    int64_t t_ms;
    long parent; /* index, -1 = root */
} tev;

typedef struct trace {
    cli_ctx *ctx;
    const char *order_id, *correlation;
    int64_t timeout_ms;
    tev *ev;
    size_t n, cap;
    size_t duplicates;
} trace;

/* ---- collecting ---- */

static bool belongs(const trace *t, const ev_envelope *e)
{
    if (t->correlation != NULL)
        return strcmp(e->correlationid, t->correlation) == 0 ||
               strcmp(e->id, t->correlation) == 0;
    const char *oid = json_string_value(json_object_get(e->data, "order_id"));
    return strcmp(e->subject, t->order_id) == 0 ||
           (oid != NULL && strcmp(oid, t->order_id) == 0);
}

static bool seen_id(const trace *t, const char *id)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->ev[i].e.id, id) == 0)
            return true;
    return false;
}

static int keep(trace *t, const rd_kafka_message_t *m)
{
    ev_envelope e = {0};
    ev_error err;
    if (ev_binding_parse_message(&e, m, NULL, &err) != 0)
        return CLI_OK; /* not an event: tail and dlq show those */
    if (!belongs(t, &e) || seen_id(t, e.id)) {
        t->duplicates += belongs(t, &e) ? 1 : 0;
        ev_envelope_clear(&e);
        return CLI_OK;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 32;
        tev *v = realloc(t->ev, cap * sizeof(*v));
        if (v == NULL) {
            ev_envelope_clear(&e);
            return cli_fail(t->ctx, "out of memory");
        }
        t->ev = v;
        t->cap = cap;
    }
    tev *v = &t->ev[t->n++];
    v->e = e;
    snprintf(v->topic, sizeof(v->topic), "%s", rd_kafka_topic_name(m->rkt));
    v->partition = m->partition;
    v->offset = m->offset;
    v->t_ms = ev_time_parse(e.time);
    v->parent = -1;
    return CLI_OK;
}

static int collect(trace *t)
{
    char **topics = cli_contract_topics(t->ctx);
    cli_reader *r = NULL;
    if (topics == NULL)
        return CLI_FAIL;
    cli_reader_opts ro = {.topics = topics, .start = CLI_START_BEGINNING, .to_end = true};
    int rc = cli_reader_open(t->ctx, &ro, &r);
    int64_t deadline = ev_mono_ms() + t->timeout_ms;
    while (rc == CLI_OK) {
        rd_kafka_message_t *m = NULL;
        int got = cli_reader_next(r, 500, &m);
        if (got == CLI_READ_DONE)
            break;
        if (got == CLI_READ_ERROR)
            rc = CLI_FAIL;
        if (got == CLI_READ_MSG) {
            rc = keep(t, m);
            rd_kafka_message_destroy(m);
        }
        if (rc == CLI_OK && ev_mono_ms() > deadline)
            rc = cli_fail(t->ctx, "reading the topics took longer than --timeout");
    }
    cli_reader_free(r);
    cli_strv_free(topics);
    return rc;
}

static int cmp_time(const void *a, const void *b)
{
    const tev *x = a, *y = b;
    return x->t_ms < y->t_ms ? -1 : x->t_ms > y->t_ms ? 1 : strcmp(x->e.id, y->e.id);
}

static void link_parents(trace *t)
{
    qsort(t->ev, t->n, sizeof(*t->ev), cmp_time);
    for (size_t i = 0; i < t->n; i++)
        for (size_t j = 0; j < t->n && t->ev[i].e.causationid[0]; j++)
            if (j != i && strcmp(t->ev[j].e.id, t->ev[i].e.causationid) == 0)
                t->ev[i].parent = (long)j;
}

/* ---- the flow's state ---- */

static bool has_type(const trace *t, const char *type)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->ev[i].e.type, type) == 0)
            return true;
    return false;
}

static const tev *outcome(const trace *t, json_t *flow)
{
    for (size_t i = t->n; i-- > 0;) {
        json_t *next = json_object_get(flow, t->ev[i].e.type);
        if (json_is_array(next) && json_array_size(next) == 0)
            return &t->ev[i];
    }
    return NULL;
}

/* Steps after present events whose alternatives are all absent. */
static json_t *missing_steps(const trace *t, json_t *flow)
{
    json_t *out = json_array();
    const char *type;
    json_t *steps;
    json_object_foreach(flow, type, steps)
    {
        if (type[0] == '$' || !has_type(t, type))
            continue;
        size_t i;
        json_t *alts;
        json_array_foreach(steps, i, alts)
        {
            size_t j;
            json_t *a;
            bool any = false;
            json_array_foreach(alts, j, a) any = any || has_type(t, json_string_value(a));
            if (any || json_array_size(alts) == 0)
                continue;
            const ev_event_route *r = ev_contract_route(
                t->ctx->contract, json_string_value(json_array_get(alts, 0)));
            json_array_append_new(out, json_pack("{s:s, s:O, s:s}", "after", type,
                                                 "waiting_for", alts, "service",
                                                 r ? r->producer : "?"));
        }
    }
    return out;
}

/* Adds group, members and lag of the service expected to act. */
static void add_group_state(trace *t, json_t *missing)
{
    rd_kafka_t *rk = NULL;
    size_t i;
    json_t *m;
    if (json_array_size(missing) == 0 ||
        cli_kafka_new(t->ctx, RD_KAFKA_PRODUCER, NULL, &rk) != CLI_OK)
        return;
    json_array_foreach(missing, i, m)
    {
        const char *svc = json_string_value(json_object_get(m, "service"));
        const char *const *in = ev_contract_service_topics(t->ctx->contract, svc);
        char group[256];
        char **topics = calloc(16, sizeof(char *));
        int64_t lag = 0;
        int members = 0;
        for (size_t k = 0; topics != NULL && in != NULL && in[k] != NULL && k < 15; k++) {
            topics[k] = malloc(CLI_TOPIC_MAX);
            if (topics[k] != NULL)
                cli_topic(t->ctx, in[k], topics[k]);
        }
        cli_service_group(t->ctx, svc, group, sizeof(group));
        if (cli_group_lag(t->ctx, rk, group, (const char *const *)topics, &lag,
                          &members) == CLI_OK) {
            json_object_set_new(m, "group", json_string(group));
            json_object_set_new(m, "members", json_integer(members));
            json_object_set_new(m, "lag", json_integer(lag));
            json_object_set_new(m, "status",
                                json_string(cli_group_verdict(members, lag)));
        }
        cli_strv_free(topics);
    }
    rd_kafka_destroy(rk);
}

/* ---- output ---- */

static const char *service_of(const ev_envelope *e)
{
    const char *s = strrchr(e->source, '/');
    return s != NULL && s[1] != '\0' ? s + 1 : e->source;
}

static void fmt_delta(char *out, size_t cap, int64_t ms)
{
    if (ms < 1000 && ms > -1000)
        snprintf(out, cap, "+%lldms", (long long)ms);
    else
        snprintf(out, cap, "+%.2fs", (double)ms / 1000.0);
}

/* Characters on screen: UTF-8 continuation bytes take no column. */
static size_t visual_width(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static void print_node(const trace *t, size_t i, const char *indent, bool last, bool root)
{
    if (strlen(indent) > 200)
        return; /* a causation cycle in bad data: stop, do not recurse forever */
    const tev *v = &t->ev[i];
    cli_ctx *ctx = t->ctx;
    char delta[32] = "";
    char child_indent[512];
    if (v->parent >= 0)
        fmt_delta(delta, sizeof(delta), v->t_ms - t->ev[v->parent].t_ms);
    else if (!root)
        snprintf(delta, sizeof(delta), "%s", "(cause not found)");
    const char *branch = root ? "" : last ? "└─ " : "├─ ";
    int width = 44 - (int)(visual_width(indent) + visual_width(branch));
    printf("%s%s%s%-*s%s %-14s %-10s %s%s/%d@%lld  %.8s%s\n", indent, branch,
           cli_color(ctx, CLI_BOLD), width > 0 ? width : 0, v->e.type,
           cli_color(ctx, CLI_RESET), service_of(&v->e), delta, cli_color(ctx, CLI_DIM),
           v->topic, (int)v->partition, (long long)v->offset, v->e.id,
           cli_color(ctx, CLI_RESET));
    snprintf(child_indent, sizeof(child_indent), "%s%s", indent,
             root   ? ""
             : last ? "   "
                    : "│  ");
    size_t last_child = SIZE_MAX;
    for (size_t j = 0; j < t->n; j++)
        if (t->ev[j].parent == (long)i)
            last_child = j;
    for (size_t j = 0; j < t->n; j++)
        if (t->ev[j].parent == (long)i)
            print_node(t, j, child_indent, j == last_child, false);
}

static void print_missing(const trace *t, json_t *missing)
{
    size_t i;
    json_t *m;
    json_array_foreach(missing, i, m)
    {
        size_t j;
        json_t *a;
        printf("%swaiting for ", cli_color(t->ctx, CLI_YELLOW));
        json_array_foreach(json_object_get(m, "waiting_for"), j, a)
            printf("%s%s", j ? "|" : "", json_string_value(a));
        printf(
            " from %s%s (after %s)\n", json_string_value(json_object_get(m, "service")),
            cli_color(t->ctx, CLI_RESET), json_string_value(json_object_get(m, "after")));
        if (json_object_get(m, "group") == NULL)
            continue;
        json_int_t members = json_integer_value(json_object_get(m, "members"));
        json_int_t lag = json_integer_value(json_object_get(m, "lag"));
        printf("  group %s: %lld member%s, lag %lld — %s\n",
               json_string_value(json_object_get(m, "group")), (long long)members,
               members == 1 ? "" : "s", (long long)lag,
               json_string_value(json_object_get(m, "status")));
    }
}

static void print_text(const trace *t, const tev *end, json_t *missing)
{
    printf("flow %s: %zu event%s", t->order_id ? t->order_id : t->correlation, t->n,
           t->n == 1 ? "" : "s");
    if (t->duplicates > 0)
        printf(" (%zu duplicate records ignored)", t->duplicates);
    printf("\n");
    for (size_t i = 0; i < t->n; i++)
        if (t->ev[i].parent < 0)
            print_node(t, i, "", true, true);
    int64_t span = t->n ? t->ev[t->n - 1].t_ms - t->ev[0].t_ms : 0;
    if (end != NULL) {
        const char *reason = json_string_value(json_object_get(end->e.data, "reason"));
        printf("outcome: %s%s%s%s after %.3f s\n", end->e.type, reason ? " (" : "",
               reason ? reason : "", reason ? ")" : "",
               (double)(end->t_ms - t->ev[0].t_ms) / 1000.0);
    } else {
        printf("outcome: none yet (%.3f s since the first event)\n",
               (double)span / 1000.0);
        print_missing(t, missing);
    }
}

static json_t *trace_json(const trace *t, const tev *end, json_t *missing)
{
    json_t *events = json_array();
    for (size_t i = 0; i < t->n; i++) {
        const tev *v = &t->ev[i];
        json_t *o = json_pack(
            "{s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:s?, s:s?}", "id", v->e.id, "type",
            v->e.type, "service", service_of(&v->e), "time", v->e.time, "topic", v->topic,
            "partition", (int)v->partition, "offset", (json_int_t)v->offset,
            "causationid", v->e.causationid[0] ? v->e.causationid : NULL, "correlationid",
            v->e.correlationid[0] ? v->e.correlationid : NULL);
        if (v->parent >= 0)
            json_object_set_new(o, "since_cause_ms",
                                json_integer(v->t_ms - t->ev[v->parent].t_ms));
        json_array_append_new(events, o);
    }
    return json_pack("{s:s?, s:s?, s:o, s:s?, s:O}", "order_id", t->order_id,
                     "correlation", t->correlation, "events", events, "outcome",
                     end ? end->e.type : NULL, "missing", missing);
}

static int parse_args(cli_ctx *ctx, int argc, char **argv, trace *t)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"correlation", required_argument, NULL, 'c'},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {NULL, 0, NULL, 0},
    };
    int c, r;
    while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "c:", opts, NULL)) != -1) {
        if (c == 'c') {
            t->correlation = optarg;
        } else if (c == OPT_TIMEOUT) {
            if (!cli_parse_duration(optarg, &t->timeout_ms) || t->timeout_ms == 0)
                return cli_usage_error(ctx, "--timeout wants a duration like 30s");
        } else {
            r = cli_common_opt(ctx, c, optarg);
            if (r != CLI_CONTINUE)
                return r;
        }
    }
    if (t->correlation == NULL && optind == argc - 1)
        t->order_id = argv[optind];
    else if (t->correlation == NULL || optind != argc)
        return cli_usage_error(ctx, "expected one ORDER_ID, or --correlation ID");
    return CLI_CONTINUE;
}

int cli_trace(cli_ctx *ctx, int argc, char **argv)
{
    trace t = {.ctx = ctx, .timeout_ms = 30000};
    ctx->usage = usage;
    int rc = parse_args(ctx, argc, argv, &t);
    if (rc != CLI_CONTINUE)
        return rc;
    if (cli_contract(ctx) == NULL)
        return CLI_FAIL;
    rc = collect(&t);
    if (rc == CLI_OK && t.n == 0)
        rc = cli_fail(ctx,
                      "no events of %s '%s' in the system's topics (prefix '%s'); check "
                      "the id and CHOREO_TOPIC_PREFIX",
                      t.order_id ? "order" : "correlation id",
                      t.order_id ? t.order_id : t.correlation, ctx->cfg.topic_prefix);
    if (rc == CLI_OK) {
        json_t *flow = json_object_get(ev_contract_json(ctx->contract), "flow");
        link_parents(&t);
        const tev *end = outcome(&t, flow);
        json_t *missing = end ? json_array() : missing_steps(&t, flow);
        add_group_state(&t, missing);
        if (ctx->json) {
            json_t *j = trace_json(&t, end, missing);
            cli_print_json(j);
            json_decref(j);
        } else {
            print_text(&t, end, missing);
        }
        json_decref(missing);
    }
    for (size_t i = 0; i < t.n; i++)
        ev_envelope_clear(&t.ev[i].e);
    free(t.ev);
    return rc;
}
