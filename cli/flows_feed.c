/* SPDX-License-Identifier: MIT */
/* The flow projection fed from the topics that hold the flow's steps: records
 * peeked, parsed and applied; the report with the groups of stuck services. */
#include "flows_feed.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "binding.h"
#include "envelope.h"

const char *cli_group_verdict(int members, int64_t lag)
{
    return members == 0 ? "the service is not running; start it"
           : lag > 0    ? "the service is behind; see `choreo watch`"
                        : "caught up; check its log and `choreo dlq list`";
}

/* The distinct prefixed topics of the flow's step types, NULL-terminated. */
static char **step_topics(cli_ctx *ctx, const ev_flows *flows)
{
    size_t n_routes = 0, n = 0;
    const ev_event_route *r = ev_contract_routes(ctx->contract, &n_routes);
    char **out = calloc(n_routes + 1, sizeof(*out));
    for (size_t i = 0; out != NULL && i < n_routes; i++) {
        if (!ev_flows_is_step(flows, r[i].type))
            continue;
        char name[CLI_TOPIC_MAX];
        bool dup = false;
        cli_topic(ctx, r[i].topic, name);
        for (size_t j = 0; j < n && !dup; j++)
            dup = strcmp(out[j], name) == 0;
        if (!dup && (out[n++] = strdup(name)) == NULL) {
            cli_strv_free(out);
            return NULL;
        }
    }
    return out;
}

int cli_flows_feed_open(cli_ctx *ctx, const ev_flows_opts *o, bool from_beginning,
                        int64_t since_ms, bool to_end, cli_flows_feed *feed)
{
    ev_error err;
    memset(feed, 0, sizeof(*feed));
    feed->ctx = ctx;
    feed->started = ev_mono_ms();
    feed->from = from_beginning ? "beginning" : "since";
    feed->since_ms = since_ms;
    if (cli_contract(ctx) == NULL)
        return CLI_FAIL;
    if (ev_flows_new(&feed->flows, ctx->contract, o, &err) != 0)
        return cli_fail(ctx, "%s", err.text);
    feed->topics = step_topics(ctx, feed->flows);
    feed->groups = json_object();
    if (feed->topics == NULL || feed->groups == NULL)
        return cli_fail(ctx, "out of memory");
    cli_reader_opts ro = {.topics = feed->topics,
                          .start = from_beginning ? CLI_START_BEGINNING : CLI_START_TIME,
                          .since_ms = since_ms,
                          .to_end = to_end};
    return cli_reader_open(ctx, &ro, &feed->reader);
}

/* The flow an event belongs to: data.order_id, else the subject. */
static void apply(cli_flows_feed *feed, const rd_kafka_message_t *m)
{
    char type[EV_TYPE_MAX];
    ev_envelope e = {0};
    ev_error err;
    feed->records++;
    if (!ev_binding_peek_type(m->payload, m->len, ev_binding_headers_of(m), type) ||
        !ev_flows_is_step(feed->flows, type))
        return; /* not a step (or unreadable): the services' DLQs deal with those */
    if (ev_binding_parse_message(&e, m, NULL, &err) != 0) {
        feed->unparsed++;
        return;
    }
    const char *key = json_string_value(json_object_get(e.data, "order_id"));
    ev_flow_event fe = {.type = e.type,
                        .key = key ? key : e.subject,
                        .correlationid = e.correlationid,
                        .reason = json_string_value(json_object_get(e.data, "reason")),
                        .time_ms = ev_time_parse(e.time)};
    if (fe.time_ms < 0)
        fe.time_ms = rd_kafka_message_timestamp(m, NULL);
    ev_flows_add(feed->flows, &fe);
    ev_envelope_clear(&e);
}

int cli_flows_feed_poll(cli_flows_feed *feed, int wait_ms, int budget_ms)
{
    int64_t until = ev_mono_ms() + budget_ms;
    int got, rc = CLI_READ_NONE;
    do {
        rd_kafka_message_t *m = NULL;
        got = cli_reader_next(feed->reader, rc == CLI_READ_MSG ? 0 : wait_ms, &m);
        if (got == CLI_READ_MSG) {
            apply(feed, m);
            rd_kafka_message_destroy(m);
            rc = CLI_READ_MSG;
        }
    } while (got == CLI_READ_MSG && ev_mono_ms() < until);
    if (got == CLI_READ_DONE || got == CLI_READ_ERROR) {
        if (feed->read_ms == 0)
            feed->read_ms = ev_mono_ms() - feed->started;
        return got;
    }
    return rc;
}

void cli_flows_feed_close(cli_flows_feed *feed)
{
    cli_reader_free(feed->reader);
    cli_strv_free(feed->topics);
    ev_flows_free(feed->flows);
    json_decref(feed->groups);
    if (feed->admin != NULL)
        rd_kafka_destroy(feed->admin);
    memset(feed, 0, sizeof(*feed));
}

/* ---- the groups of the services stuck flows wait for ---- */

static json_t *query_group(cli_flows_feed *feed, const char *svc)
{
    cli_ctx *ctx = feed->ctx;
    const char *const *in = ev_contract_service_topics(ctx->contract, svc);
    char group[256];
    char **topics = calloc(16, sizeof(char *));
    int64_t lag = 0;
    int members = 0;
    json_t *out = NULL;
    for (size_t k = 0; topics != NULL && in != NULL && in[k] != NULL && k < 15; k++) {
        topics[k] = malloc(CLI_TOPIC_MAX);
        if (topics[k] != NULL)
            cli_topic(ctx, in[k], topics[k]);
    }
    cli_service_group(ctx, svc, group, sizeof(group));
    if (topics != NULL &&
        cli_group_lag(ctx, feed->admin, group, (const char *const *)topics, &lag,
                      &members) == CLI_OK)
        out = json_pack("{s:s, s:i, s:I, s:s}", "group", group, "members", members, "lag",
                        (json_int_t)lag, "status", cli_group_verdict(members, lag));
    cli_strv_free(topics);
    return out;
}

static void add_groups(cli_flows_feed *feed, json_t *stuck, int64_t every_ms)
{
    size_t i;
    json_t *s;
    if (json_array_size(stuck) == 0)
        return;
    if (ev_mono_ms() - feed->groups_at >= every_ms) {
        json_object_clear(feed->groups);
        feed->groups_at = ev_mono_ms();
    }
    if (feed->admin == NULL &&
        cli_kafka_new(feed->ctx, RD_KAFKA_PRODUCER, NULL, &feed->admin) != CLI_OK)
        return;
    json_array_foreach(stuck, i, s)
    {
        const char *svc = json_string_value(json_object_get(s, "service"));
        if (svc == NULL)
            continue;
        json_t *g = json_object_get(feed->groups, svc);
        if (g == NULL && (g = query_group(feed, svc)) != NULL)
            json_object_set_new(feed->groups, svc, g);
        const char *k;
        json_t *v;
        json_object_foreach(g, k, v) json_object_set(s, k, v);
    }
}

static json_t *read_json(const cli_flows_feed *feed, const json_t *summary)
{
    struct rusage ru = {0};
    getrusage(RUSAGE_SELF, &ru);
    const json_t *totals = json_object_get(summary, "totals");
    json_int_t events = json_integer_value(json_object_get(totals, "events")) +
                        json_integer_value(json_object_get(totals, "duplicates"));
    int64_t ms = feed->read_ms ? feed->read_ms : ev_mono_ms() - feed->started;
    double secs = (double)ms / 1000.0;
    return json_pack("{s:I, s:I, s:f, s:f, s:I}", "records", (json_int_t)feed->records,
                     "flow_events", events, "seconds", secs, "events_per_s",
                     secs > 0 ? (double)feed->records / secs : 0.0, "max_rss_kb",
                     (json_int_t)ru.ru_maxrss);
}

json_t *cli_flows_report(cli_flows_feed *feed, int64_t now, size_t limit, bool list,
                         ev_flows_state state, const char *outcome, const char *step,
                         int64_t groups_every_ms)
{
    cli_ctx *ctx = feed->ctx;
    char t_now[EV_TIME_MAX], t_since[EV_TIME_MAX];
    ev_time_format(t_now, now);
    ev_time_format(t_since, feed->since_ms);
    json_t *r = ev_flows_summary(feed->flows, now);
    json_t *stuck = ev_flows_list(feed->flows, now, EV_FLOWS_STUCK, NULL, NULL, limit);
    json_t *flows = list ? ev_flows_list(feed->flows, now, state, outcome, step, limit)
                         : json_array();
    if (r == NULL || stuck == NULL || flows == NULL) {
        json_decref(r);
        json_decref(stuck);
        json_decref(flows);
        return NULL;
    }
    add_groups(feed, stuck, groups_every_ms);
    if (state == EV_FLOWS_STUCK)
        add_groups(feed, flows, groups_every_ms);
    json_object_set_new(r, "brokers", json_string(ctx->cfg.brokers));
    json_object_set_new(r, "prefix", json_string(ctx->cfg.topic_prefix));
    json_object_set_new(r, "from", json_string(feed->from));
    json_object_set_new(r, "since",
                        strcmp(feed->from, "since") == 0 ? json_string(t_since)
                                                         : json_null());
    json_object_set_new(r, "now", json_string(t_now));
    json_object_set_new(r, "read", read_json(feed, r));
    json_object_set_new(r, "stuck", stuck);
    json_object_set_new(r, "flows", flows);
    return r;
}
