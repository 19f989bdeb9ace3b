/* SPDX-License-Identifier: MIT */
/* choreo: the command line of the system. A table of subcommands; global
 * options before the subcommand name; every subcommand parses its own flags. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"

typedef struct cli_command {
    const char *name;
    const char *summary;
    cli_run_fn run;
} cli_command;

static const cli_command commands[] = {
    {"produce", "build, validate and send an event (or NDJSON of them)", cli_produce},
    {"tail", "print events of the system's topics as they arrive", cli_tail},
    {"watch", "consumer groups: members, lag, rate and status", cli_watch},
    {"trace", "the causal tree of one order's flow, and its missing step", cli_trace},
    {"flow", "the choreography as text or Graphviz dot", cli_flow},
    {"topics", "list or create the system's topics", cli_topics},
    {"validate", "check envelopes or data against the schemas", cli_validate},
    {"dlq", "list or replay a service's dead letters", cli_dlq},
    {"load", "place many orders and report throughput and latency", cli_load},
    {"acl", "each service's Kafka ACLs from the contract; --apply creates them", cli_acl},
    {"flows", "every flow at once: steps in flight, latency, outcomes, stuck", cli_flows},
    {"board", "the live flow board in a browser (HTTP, Server-Sent Events)", cli_board},
    {NULL, NULL, NULL},
};

static const char usage[] =
    "usage: choreo [-b BROKERS] [--topic-prefix P] COMMAND [ARGS...]\n"
    "\n"
    "Commands:\n";

static void print_usage(FILE *f)
{
    fputs(usage, f);
    for (const cli_command *c = commands; c->name != NULL; c++)
        fprintf(f, "  %-9s %s\n", c->name, c->summary);
    fputs("\nRun `choreo COMMAND --help` for a command's options.\n"
          "Environment: CHOREO_BROKERS, CHOREO_TOPIC_PREFIX, CHOREO_SCHEMA_DIR,\n"
          "CHOREO_KAFKA_<property>. Exit codes: 0 ok, 1 failure, 2 usage.\n",
          f);
}

static const cli_command *find_command(const char *name)
{
    for (const cli_command *c = commands; c->name != NULL; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

/* Global options: those common to every command, before the command name. */
static int parse_global(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "+" CLI_COMMON_SHORT, opts, NULL)) != -1) {
        if (c == 'h') {
            print_usage(stdout);
            return CLI_OK;
        }
        int r = cli_common_opt(ctx, c, optarg);
        if (r != CLI_CONTINUE)
            return r;
    }
    return CLI_CONTINUE;
}

int main(int argc, char **argv)
{
    cli_ctx ctx = {0};
    ev_error err;
    char name[64];
    int rc = CLI_FAIL;

    ctx.name = "choreo";
    ev_log_init("choreo");
    if (ev_config_from_env(&ctx.cfg, NULL, &err) != 0) {
        fprintf(stderr, "choreo: %s\n", err.text);
        return CLI_USAGE;
    }
    ev_log_set_level((ev_log_level)ctx.cfg.log_level);
    ctx.color = isatty(STDOUT_FILENO) && getenv("NO_COLOR") == NULL;
    rc = parse_global(&ctx, argc, argv);
    if (rc != CLI_CONTINUE)
        goto cleanup;
    if (optind >= argc) {
        print_usage(stderr);
        rc = CLI_USAGE;
        goto cleanup;
    }
    const cli_command *cmd = find_command(argv[optind]);
    if (cmd == NULL) {
        fprintf(stderr,
                "choreo: unknown command '%s'; run `choreo --help` for the list\n",
                argv[optind]);
        rc = CLI_USAGE;
        goto cleanup;
    }
    snprintf(name, sizeof(name), "choreo %s", cmd->name);
    ctx.name = name;
    int first = optind;
    argv[first] = name;
    optind = 0; /* GNU getopt: reinitialise for the subcommand's own parse */
    rc = cmd->run(&ctx, argc - first, argv + first);
cleanup:
    cli_ctx_free(&ctx);
    return rc;
}
