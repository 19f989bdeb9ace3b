/* SPDX-License-Identifier: MIT */
/* choreo topics: the system's topics (the contract's and every dlq.<service>)
 * with partitions and end offsets; --create makes them through the Admin API. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "envelope.h"

static const char usage[] =
    "usage: choreo topics [--create [--partitions N] [--replication R]]\n"
    "\n"
    "Lists the system's topics (the contract's topics and dlq.<service> for each\n"
    "service, with the prefix): partitions and the end offset of each partition.\n"
    "--create creates them first (CreateTopics); topics that exist are left as they "
    "are.\n"
    "\n"
    "Options:\n"
    "      --create           create the missing topics\n"
    "  -p, --partitions N     partitions of created topics (default 3, or\n"
    "                         CHOREO_TOPIC_PARTITIONS)\n"
    "  -r, --replication R    replication factor of created topics (default "
    "min(3, brokers))\n" CLI_COMMON_HELP;

enum { OPT_CREATE = CLI_OPT_FIRST_LOCAL };

/* The contract's topics then the DLQs, prefixed; NULL-terminated, owned. */
static char **system_topics(cli_ctx *ctx)
{
    char **t = cli_contract_topics(ctx);
    if (t == NULL)
        return NULL;
    const char *const *svc = ev_contract_services(ctx->contract);
    size_t n = 0, m = 0;
    while (t[n] != NULL)
        n++;
    while (svc[m] != NULL)
        m++;
    char **all = realloc(t, (n + m + 1) * sizeof(char *));
    if (all == NULL) {
        cli_strv_free(t);
        return NULL;
    }
    for (size_t i = 0; i < m; i++) {
        all[n + i] = malloc(CLI_TOPIC_MAX);
        if (all[n + i] != NULL)
            cli_dlq_topic(ctx, svc[i], all[n + i]);
        all[n + i + 1] = NULL;
        if (all[n + i] == NULL) {
            cli_strv_free(all);
            return NULL;
        }
    }
    return all;
}

static json_t *describe(cli_ctx *ctx, rd_kafka_t *rk, const char *topic)
{
    int n = 0;
    json_t *ends = json_array();
    json_int_t total = 0;
    if (cli_partition_count(ctx, rk, topic, &n) != CLI_OK)
        n = 0;
    for (int32_t p = 0; p < n; p++) {
        int64_t end = cli_end_offset(rk, topic, p);
        json_array_append_new(ends, json_integer(end));
        total += end > 0 ? end : 0;
    }
    return json_pack("{s:s, s:b, s:i, s:o, s:I}", "topic", topic, "exists", n > 0,
                     "partitions", n, "end_offsets", ends, "total", total);
}

static void print_row(json_t *d)
{
    const char *topic = json_string_value(json_object_get(d, "topic"));
    if (!json_is_true(json_object_get(d, "exists"))) {
        printf("%-32s missing (create with `choreo topics --create`)\n", topic);
        return;
    }
    printf("%-32s %10d  %9lld  ", topic,
           (int)json_integer_value(json_object_get(d, "partitions")),
           (long long)json_integer_value(json_object_get(d, "total")));
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(d, "end_offsets"), i, e)
        printf("%s%zu:%lld", i ? " " : "", i, (long long)json_integer_value(e));
    printf("\n");
}

/* After CreateTopics the broker's metadata may lag a moment behind: waits up to
 * 5 s until every topic shows (the listing then says what is true). */
static void wait_visible(cli_ctx *ctx, rd_kafka_t *rk, char **topics)
{
    int64_t deadline = ev_mono_ms() + 5000;
    for (size_t i = 0; topics[i] != NULL;) {
        int n = 0;
        if (cli_partition_count(ctx, rk, topics[i], &n) != CLI_OK)
            return;
        if (n > 0) {
            i++;
            continue;
        }
        if (ev_mono_ms() >= deadline)
            return;
        nanosleep(&(struct timespec){0, 200 * 1000000L}, NULL);
    }
}

static int list(cli_ctx *ctx, rd_kafka_t *rk, char **topics)
{
    json_t *all = json_array();
    for (size_t i = 0; topics[i] != NULL; i++)
        json_array_append_new(all, describe(ctx, rk, topics[i]));
    if (ctx->json) {
        cli_print_json(all);
    } else {
        size_t i;
        json_t *d;
        printf("%-32s %10s  %9s  %s\n", "topic", "partitions", "end total",
               "end offset per partition");
        json_array_foreach(all, i, d) print_row(d);
    }
    json_decref(all);
    return CLI_OK;
}

int cli_topics(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"create", no_argument, NULL, OPT_CREATE},
        {"partitions", required_argument, NULL, 'p'},
        {"replication", required_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    bool create = false;
    long partitions = ctx->cfg.topic_partitions, replication = ctx->cfg.topic_replication;
    int c, rc;
    rd_kafka_t *rk = NULL;
    char **topics = NULL;
    ctx->usage = usage;
    while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "p:r:", opts, NULL)) != -1) {
        if (c == OPT_CREATE) {
            create = true;
        } else if (c == 'p' || c == 'r') {
            if (!cli_parse_long(optarg, 1, 10000, c == 'p' ? &partitions : &replication))
                return cli_usage_error(ctx, "-%c wants a positive number, not '%s'", c,
                                       optarg);
        } else {
            rc = cli_common_opt(ctx, c, optarg);
            if (rc != CLI_CONTINUE)
                return rc;
        }
    }
    if (optind != argc)
        return cli_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
    topics = system_topics(ctx);
    if (topics == NULL)
        return CLI_FAIL;
    rc = cli_kafka_new(ctx, RD_KAFKA_PRODUCER, NULL, &rk);
    if (rc == CLI_OK && create) {
        rc = cli_topics_create(ctx, rk, topics, (int)partitions, (int)replication);
        if (rc == CLI_OK)
            wait_visible(ctx, rk, topics);
    }
    if (rc == CLI_OK)
        rc = list(ctx, rk, topics);
    if (rk != NULL)
        rd_kafka_destroy(rk);
    cli_strv_free(topics);
    return rc;
}
