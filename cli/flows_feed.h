/* SPDX-License-Identifier: MIT */
/* The flow projection fed from the topics, shared by `choreo flows` and
 * `choreo board`: reading, the report as JSON, the groups of stuck services. */
#ifndef CLI_FLOWS_FEED_H
#define CLI_FLOWS_FEED_H

#include "cli.h"
#include "flows.h"

typedef struct cli_flows_feed {
    cli_ctx *ctx;
    ev_flows *flows;
    cli_reader *reader;
    char **topics;     /* prefixed topics of the flow's steps */
    const char *from;  /* "beginning" or "since" */
    int64_t since_ms;  /* unix ms, with "since" */
    uint64_t records;  /* records read */
    uint64_t unparsed; /* records of a step type that do not parse */
    int64_t started;   /* monotonic ms at open */
    int64_t read_ms;   /* time spent reading to the end (to_end) */
    rd_kafka_t *admin; /* for consumer group queries, made on first use */
    json_t *groups;    /* service -> {"group", "members", "lag", "status"} */
    int64_t groups_at; /* monotonic ms of the last group query */
} cli_flows_feed;

/* Opens the projection (o may be NULL) and a reader of the topics that hold
 * the flow's steps, from the beginning or since_ms; to_end stops at the end
 * offsets seen now. CLI_OK or CLI_FAIL with the message printed. */
int cli_flows_feed_open(cli_ctx *ctx, const ev_flows_opts *o, bool from_beginning,
                        int64_t since_ms, bool to_end, cli_flows_feed *feed);
/* Reads records for up to budget_ms (waiting at most wait_ms for the first):
 * CLI_READ_DONE once to_end has read everything, CLI_READ_ERROR on a fatal
 * error (printed), CLI_READ_MSG when records were applied, else CLI_READ_NONE. */
int cli_flows_feed_poll(cli_flows_feed *feed, int wait_ms, int budget_ms);
void cli_flows_feed_close(cli_flows_feed *feed);

/* The report at wall time now, owned by caller: the projection's summary with
 * "brokers", "prefix", "from", "since", "now", "read" {"records",
 * "flow_events", "seconds", "events_per_s", "max_rss_kb"}, "stuck" (at most
 * limit, each with its service's "group", "members", "lag" and "status" in
 * the words of `choreo trace`, refreshed at most every groups_every_ms) and
 * "flows": the list of state/outcome/step (none when list is false). */
json_t *cli_flows_report(cli_flows_feed *feed, int64_t now, size_t limit, bool list,
                         ev_flows_state state, const char *outcome, const char *step,
                         int64_t groups_every_ms);

#endif
