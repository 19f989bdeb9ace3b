/* SPDX-License-Identifier: MIT */
/* choreo flows: every flow at once, projected from the topics — steps with
 * flows in flight and latencies, outcomes, stuck flows and whom they wait for. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flows_feed.h"

static const char usage[] =
    "usage: choreo flows [--since D | --from-beginning] [--state S] [--step TYPE]\n"
    "                    [--stuck-after D] [--watch] [--json]\n"
    "\n"
    "Reads the topics that hold the steps of the contract's \"flow\" table (from\n"
    "--since ago, through offsets-for-times, or from the beginning) and rebuilds\n"
    "every flow (an order: its events by data.order_id) with no help from the\n"
    "services. Prints the steps with the flows in flight at each, the events per\n"
    "minute and the latency from the step before (p50/p90/p99, event times); the\n"
    "outcomes by reason; and the stuck flows: no next step within --stuck-after,\n"
    "with the step awaited, the service that should emit it and its consumer group.\n"
    "With --state or --step, lists those flows instead. Memory holds the unfinished\n"
    "flows only (and the last finished ones whole, for --state completed etc.).\n"
    "\n"
    "Options:\n"
    "      --since D          read events from D ago (default 1h)\n"
    "      --from-beginning   read every event the topics hold\n"
    "      --state S          list flows in-flight, stuck, completed, rejected or\n"
    "                         cancelled (finished ones: the last kept)\n"
    "      --step TYPE        list flows whose current step is TYPE\n"
    "      --stuck-after D    no next step within D is stuck (default 30s)\n"
    "      --window D         outcomes are also counted over the last D (default 1h)\n"
    "      --limit N          at most N flows per list (default 50)\n"
    "      --watch            keep reading; refresh the screen every --interval\n"
    "      --interval D       refresh period of --watch (default 1s)\n"
    "      --timeout D        give up reading to the end after D (default "
    "5m)\n" CLI_COMMON_HELP;

enum {
    OPT_SINCE = CLI_OPT_FIRST_LOCAL,
    OPT_BEGINNING,
    OPT_STATE,
    OPT_STEP,
    OPT_STUCK,
    OPT_WINDOW,
    OPT_LIMIT,
    OPT_WATCH,
    OPT_INTERVAL,
    OPT_TIMEOUT,
};

typedef struct flows_cmd {
    cli_ctx *ctx;
    ev_flows_opts o;
    int64_t since, interval, timeout;
    bool beginning, watch, list;
    ev_flows_state state;
    const char *outcome, *step;
    long limit;
} flows_cmd;

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

/* ---- text ---- */

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static json_int_t jint(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static void fmt_ms(char *out, size_t cap, double ms, json_int_t n)
{
    if (n == 0)
        snprintf(out, cap, "-");
    else if (ms < 10000)
        snprintf(out, cap, "%.0f", ms);
    else
        snprintf(out, cap, "%.1fs", ms / 1000.0);
}

static void print_steps(const flows_cmd *c, const json_t *r)
{
    cli_ctx *ctx = c->ctx;
    printf("\n%s%-22s %-14s %9s %6s %8s %6s %8s %8s %8s%s\n", cli_color(ctx, CLI_BOLD),
           "STEP", "SERVICE", "IN FLIGHT", "STUCK", "EVENTS", "/MIN", "p50 ms", "p90 ms",
           "p99 ms", cli_color(ctx, CLI_RESET));
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(r, "steps"), i, s)
    {
        const json_t *l = json_object_get(s, "latency_ms");
        char p50[24], p90[24], p99[24];
        json_int_t n = jint(l, "n");
        fmt_ms(p50, sizeof(p50), json_real_value(json_object_get(l, "p50")), n);
        fmt_ms(p90, sizeof(p90), json_real_value(json_object_get(l, "p90")), n);
        fmt_ms(p99, sizeof(p99), json_real_value(json_object_get(l, "p99")), n);
        bool term = json_is_true(json_object_get(s, "terminal"));
        char inflight[24];
        snprintf(inflight, sizeof(inflight), "%lld", (long long)jint(s, "in_flight"));
        printf("%-22s %-14s %9s %6lld %8lld %6lld %8s %8s %8s\n", jstr(s, "type"),
               jstr(s, "service"), term ? "(end)" : inflight, (long long)jint(s, "stuck"),
               (long long)jint(s, "events"), (long long)jint(s, "per_min"), p50, p90,
               p99);
    }
}

static void print_outcomes(const flows_cmd *c, const json_t *r)
{
    cli_ctx *ctx = c->ctx;
    printf("\n%s%-22s %-18s %8s %10s%s\n", cli_color(ctx, CLI_BOLD), "OUTCOME", "REASON",
           "TOTAL", "IN WINDOW", cli_color(ctx, CLI_RESET));
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(r, "outcomes"), i, o)
        printf("%-22s %-18s %8lld %10lld\n", jstr(o, "type"),
               jstr(o, "reason")[0] ? jstr(o, "reason") : "-",
               (long long)jint(o, "total"), (long long)jint(o, "in_window"));
    if (json_array_size(json_object_get(r, "outcomes")) == 0)
        printf("(none yet)\n");
}

static void print_waiting(const json_t *f)
{
    size_t j;
    json_t *a;
    printf("waiting %.1f s for ", (double)jint(f, "waiting_ms") / 1000.0);
    json_array_foreach(json_object_get(f, "waiting_for"), j, a)
        printf("%s%s", j ? "|" : "", json_string_value(a));
    printf(" from %s\n", jstr(f, "service"));
    if (json_object_get(f, "group") != NULL)
        printf("      group %s: %lld member%s, lag %lld — %s\n", jstr(f, "group"),
               (long long)jint(f, "members"), jint(f, "members") == 1 ? "" : "s",
               (long long)jint(f, "lag"), jstr(f, "status"));
}

static void print_flow(const flows_cmd *c, const json_t *f)
{
    const char *state = jstr(f, "state");
    printf("%s%-24s%s %-10s at %-22s ", cli_color(c->ctx, CLI_BOLD), jstr(f, "order_id"),
           cli_color(c->ctx, CLI_RESET), state, jstr(f, "step"));
    if (strcmp(state, "stuck") == 0 || strcmp(state, "in-flight") == 0) {
        if (json_array_size(json_object_get(f, "waiting_for")) > 0)
            print_waiting(f);
        else
            printf("since %s\n", jstr(f, "last_time"));
        return;
    }
    printf("%s%s%s  %s\n", jstr(f, "outcome"), jstr(f, "reason")[0] ? " " : "",
           jstr(f, "reason"), jstr(f, "last_time"));
}

static void print_list(const flows_cmd *c, const char *title, const json_t *list,
                       json_int_t total)
{
    printf("\n%s%s: %lld%s\n", cli_color(c->ctx, CLI_BOLD), title, (long long)total,
           cli_color(c->ctx, CLI_RESET));
    size_t i;
    json_t *f;
    json_array_foreach(list, i, f) print_flow(c, f);
    if (total > (json_int_t)json_array_size(list))
        printf("... and %lld more (--limit)\n",
               (long long)(total - (json_int_t)json_array_size(list)));
}

static void print_text(const flows_cmd *c, const json_t *r, bool screen)
{
    const json_t *rd = json_object_get(r, "read"), *tot = json_object_get(r, "totals");
    if (screen)
        fputs("\033[H\033[2J", stdout);
    printf("choreo flows  brokers=%s  prefix=%s  from %s  now %s\n", jstr(r, "brokers"),
           jstr(r, "prefix")[0] ? jstr(r, "prefix") : "-",
           json_is_string(json_object_get(r, "since")) ? jstr(r, "since")
                                                       : "the beginning",
           jstr(r, "now"));
    printf(
        "%lld records read, %lld flow events (%lld duplicates, %lld late), %lld flows: "
        "%lld in flight, %lld finished\n",
        (long long)jint(rd, "records"), (long long)jint(rd, "flow_events"),
        (long long)jint(tot, "duplicates"), (long long)jint(tot, "late"),
        (long long)jint(tot, "flows"), (long long)jint(tot, "in_flight"),
        (long long)jint(tot, "finished"));
    if (c->list) {
        char title[128];
        snprintf(title, sizeof(title), "flows%s%s%s%s", c->state ? " " : "",
                 c->state ? (c->outcome                   ? c->outcome
                             : c->state == EV_FLOWS_STUCK ? "stuck"
                                                          : "in flight")
                          : "",
                 c->step ? " at " : "", c->step ? c->step : "");
        const json_t *l = json_object_get(r, "flows");
        print_list(c, title, l, (json_int_t)json_array_size(l));
    } else {
        char title[96];
        print_steps(c, r);
        print_outcomes(c, r);
        snprintf(title, sizeof(title), "stuck (no next step within %.0f s)",
                 (double)jint(r, "stuck_after_ms") / 1000.0);
        print_list(c, title, json_object_get(r, "stuck"), jint(tot, "stuck"));
    }
    fflush(stdout);
}

/* ---- running ---- */

static int emit(flows_cmd *c, cli_flows_feed *feed, bool screen)
{
    json_t *r = cli_flows_report(feed, ev_now_ms(), (size_t)c->limit, c->list, c->state,
                                 c->outcome, c->step, c->watch ? 3000 : 0);
    if (r == NULL)
        return cli_fail(c->ctx, "out of memory");
    if (c->ctx->json)
        cli_print_json(r);
    else
        print_text(c, r, screen);
    fflush(stdout);
    json_decref(r);
    return CLI_OK;
}

static int run(flows_cmd *c)
{
    cli_flows_feed feed;
    int64_t since = ev_now_ms() - c->since;
    int rc = cli_flows_feed_open(c->ctx, &c->o, c->beginning, since, !c->watch, &feed);
    int64_t deadline = ev_mono_ms() + c->timeout, next = ev_mono_ms() + c->interval;
    bool screen = c->watch && !c->ctx->json && isatty(STDOUT_FILENO);
    while (rc == CLI_OK && !stop_flag) {
        int got = cli_flows_feed_poll(&feed, 200, 200);
        if (got == CLI_READ_ERROR)
            rc = CLI_FAIL;
        else if (got == CLI_READ_DONE)
            break;
        else if (!c->watch && ev_mono_ms() > deadline)
            rc = cli_fail(c->ctx, "reading the topics took longer than --timeout");
        else if (c->watch && ev_mono_ms() >= next) {
            rc = emit(c, &feed, screen);
            next = ev_mono_ms() + c->interval;
        }
    }
    if (rc == CLI_OK && !c->watch)
        rc = emit(c, &feed, false);
    cli_flows_feed_close(&feed);
    return rc;
}

static int parse_state(flows_cmd *c, const char *s)
{
    static const char *const finished[] = {"completed", "rejected", "cancelled", NULL};
    c->list = true;
    if (strcmp(s, "in-flight") == 0) {
        c->state = EV_FLOWS_IN_FLIGHT;
        return CLI_CONTINUE;
    }
    if (strcmp(s, "stuck") == 0) {
        c->state = EV_FLOWS_STUCK;
        return CLI_CONTINUE;
    }
    for (size_t i = 0; finished[i] != NULL; i++)
        if (strcmp(s, finished[i]) == 0) {
            c->state = EV_FLOWS_FINISHED;
            c->outcome = finished[i];
            return CLI_CONTINUE;
        }
    return cli_usage_error(c->ctx,
                           "--state wants in-flight, stuck, completed, rejected "
                           "or cancelled, not '%s'",
                           s);
}

static int parse_duration_opt(cli_ctx *ctx, const char *name, const char *arg,
                              int64_t *out)
{
    if (!cli_parse_duration(arg, out) || *out <= 0)
        return cli_usage_error(ctx, "--%s wants a duration like 30s, not '%s'", name,
                               arg);
    return CLI_CONTINUE;
}

static int parse_opt(flows_cmd *c, int opt, const char *arg)
{
    switch (opt) {
    case OPT_SINCE:
        return parse_duration_opt(c->ctx, "since", arg, &c->since);
    case OPT_BEGINNING:
        c->beginning = true;
        return CLI_CONTINUE;
    case OPT_STATE:
        return parse_state(c, arg);
    case OPT_STEP:
        c->step = arg;
        c->list = true;
        return CLI_CONTINUE;
    case OPT_STUCK:
        return parse_duration_opt(c->ctx, "stuck-after", arg, &c->o.stuck_after_ms);
    case OPT_WINDOW:
        return parse_duration_opt(c->ctx, "window", arg, &c->o.window_ms);
    case OPT_LIMIT:
        return cli_parse_long(arg, 1, 1000000, &c->limit)
                   ? CLI_CONTINUE
                   : cli_usage_error(c->ctx, "--limit wants a number from 1, not '%s'",
                                     arg);
    case OPT_WATCH:
        c->watch = true;
        return CLI_CONTINUE;
    case OPT_INTERVAL:
        return parse_duration_opt(c->ctx, "interval", arg, &c->interval);
    case OPT_TIMEOUT:
        return parse_duration_opt(c->ctx, "timeout", arg, &c->timeout);
    }
    return cli_common_opt(c->ctx, opt, arg);
}

static int parse_args(flows_cmd *c, int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"since", required_argument, NULL, OPT_SINCE},
        {"from-beginning", no_argument, NULL, OPT_BEGINNING},
        {"state", required_argument, NULL, OPT_STATE},
        {"step", required_argument, NULL, OPT_STEP},
        {"stuck-after", required_argument, NULL, OPT_STUCK},
        {"window", required_argument, NULL, OPT_WINDOW},
        {"limit", required_argument, NULL, OPT_LIMIT},
        {"watch", no_argument, NULL, OPT_WATCH},
        {"interval", required_argument, NULL, OPT_INTERVAL},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT, opts, NULL)) != -1) {
        int r = parse_opt(c, opt, optarg);
        if (r != CLI_CONTINUE)
            return r;
    }
    if (optind != argc)
        return cli_usage_error(c->ctx, "unexpected argument '%s'", argv[optind]);
    if (cli_contract(c->ctx) == NULL)
        return CLI_FAIL;
    ev_flows *probe = NULL;
    ev_error err;
    if (c->step != NULL && ev_flows_new(&probe, c->ctx->contract, NULL, &err) == 0 &&
        !ev_flows_is_step(probe, c->step)) {
        ev_flows_free(probe);
        return cli_usage_error(c->ctx,
                               "--step %s is not a step of the flow; `choreo flow` "
                               "shows the chain",
                               c->step);
    }
    ev_flows_free(probe);
    return CLI_CONTINUE;
}

int cli_flows(cli_ctx *ctx, int argc, char **argv)
{
    flows_cmd c = {.ctx = ctx,
                   .since = 3600000,
                   .interval = 1000,
                   .timeout = 300000,
                   .limit = 50,
                   .state = EV_FLOWS_ANY};
    ctx->usage = usage;
    int rc = parse_args(&c, argc, argv);
    if (rc != CLI_CONTINUE)
        return rc;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    return run(&c);
}
