/* SPDX-License-Identifier: MIT */
/* The choreo command line: the context every subcommand receives, the shared
 * option parsing, Kafka handles and admin queries, and the partition reader. */
#ifndef CLI_H
#define CLI_H

#include <getopt.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "contract.h"
#include "envelope.h"
#include "error.h"
#include "schema.h"

/* Exit codes. CLI_CONTINUE is never an exit code: "option handled, go on". */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2, CLI_CONTINUE = -1 };

#define CLI_SOURCE "/choreo/cli"
#define CLI_TOPIC_MAX 256
#define CLI_REACH_TIMEOUT_MS 5000

typedef struct cli_ctx {
    ev_config cfg;
    const char *name;       /* "choreo tail": prefix of every message */
    const char *usage;      /* the subcommand's --help text */
    bool json;              /* --json: machine output */
    bool color;             /* stdout is a terminal and NO_COLOR is unset */
    ev_contract *contract;  /* loaded by cli_contract() */
    ev_schema_set *schemas; /* loaded by cli_schemas() */
    char kafka_error[256];  /* last error librdkafka reported */
    int kafka_error_code;
} cli_ctx;

typedef int (*cli_run_fn)(cli_ctx *ctx, int argc, char **argv);

/* Subcommands (cli/<name>.c). argv[0] is "choreo <name>". */
int cli_produce(cli_ctx *ctx, int argc, char **argv);
int cli_tail(cli_ctx *ctx, int argc, char **argv);
int cli_watch(cli_ctx *ctx, int argc, char **argv);
int cli_trace(cli_ctx *ctx, int argc, char **argv);
int cli_flow(cli_ctx *ctx, int argc, char **argv);
int cli_topics(cli_ctx *ctx, int argc, char **argv);
int cli_validate(cli_ctx *ctx, int argc, char **argv);
int cli_dlq(cli_ctx *ctx, int argc, char **argv);
int cli_load(cli_ctx *ctx, int argc, char **argv);
int cli_acl(cli_ctx *ctx, int argc, char **argv);
int cli_flows(cli_ctx *ctx, int argc, char **argv);
int cli_board(cli_ctx *ctx, int argc, char **argv);

/* What a service's consumer group says of the service, in the words of
 * `choreo trace` (cli/flows_feed.c): not running, behind, or caught up. */
const char *cli_group_verdict(int members, int64_t lag);

/* ---- options (cli/options.c) ---- */

/* Long option values above the ASCII range, shared by every subcommand. */
enum {
    CLI_OPT_JSON = 0x100,
    CLI_OPT_PREFIX,
    CLI_OPT_SCHEMA_DIR,
    CLI_OPT_FIRST_LOCAL = 0x200, /* subcommands number their own from here */
};

/* The options every subcommand accepts; put first in its long option table. */
#define CLI_COMMON_OPTIONS                                                               \
    {"brokers", required_argument, NULL, 'b'},                                           \
        {"topic-prefix", required_argument, NULL, CLI_OPT_PREFIX},                       \
        {"schema-dir", required_argument, NULL, CLI_OPT_SCHEMA_DIR},                     \
        {"json", no_argument, NULL, CLI_OPT_JSON},                                       \
    {                                                                                    \
        "help", no_argument, NULL, 'h'                                                   \
    }
#define CLI_COMMON_SHORT "b:h"
#define CLI_COMMON_HELP                                                                  \
    "  -b, --brokers HOSTS    Kafka bootstrap servers (CHOREO_BROKERS)\n"                \
    "      --topic-prefix P   prefix of every topic (CHOREO_TOPIC_PREFIX)\n"             \
    "      --schema-dir DIR   schemas and choreography.json (CHOREO_SCHEMA_DIR)\n"       \
    "      --json             machine-readable output\n"                                 \
    "  -h, --help             this help\n"

/* Handles a common option returned by getopt_long: CLI_CONTINUE when handled,
 * CLI_OK after printing --help, CLI_USAGE on an unknown option or bad value. */
int cli_common_opt(cli_ctx *ctx, int opt, const char *arg);

/* Prints "<name>: <message>" on stderr; returns CLI_FAIL. */
int cli_fail(cli_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same with a hint to --help; returns CLI_USAGE. */
int cli_usage_error(cli_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* "500ms", "5s", "2m", "1h", "1d"; a bare number is seconds. */
bool cli_parse_duration(const char *s, int64_t *ms);
/* Whole decimal number within [min, max]. */
bool cli_parse_long(const char *s, long min, long max, long *out);

/* The contract and the schemas from cfg.schema_dir, loaded once; NULL after
 * printing the reason. Borrowed (freed by cli_ctx_free). */
ev_contract *cli_contract(cli_ctx *ctx);
ev_schema_set *cli_schemas(cli_ctx *ctx);
void cli_ctx_free(cli_ctx *ctx);

/* The prefixed name of topic into out (CLI_TOPIC_MAX). */
void cli_topic(const cli_ctx *ctx, const char *topic, char *out);
/* The prefixed topics of the contract, NULL-terminated, owned by caller
 * (cli_strv_free). NULL on failure, message printed. */
char **cli_contract_topics(cli_ctx *ctx);
/* The consumer group id of a service ("<prefix><service>"), into out. */
void cli_service_group(const cli_ctx *ctx, const char *service, char *out, size_t cap);
/* "<prefix>dlq.<service>" into out (CLI_TOPIC_MAX). */
void cli_dlq_topic(const cli_ctx *ctx, const char *service, char *out);
void cli_strv_free(char **v);

/* Reads a whole file ("-" = stdin); *out owned by caller, NUL-terminated. */
int cli_read_file(cli_ctx *ctx, const char *path, char **out, size_t *len);

/* ---- Kafka (cli/admin.c) ---- */

/* A librdkafka handle on ctx->cfg.brokers with CHOREO_KAFKA_* applied and its
 * logs kept quiet; checks the broker answers a metadata request within
 * CLI_REACH_TIMEOUT_MS. A consumer gets group id group (NULL: a private id
 * that never joins, for assign()), no auto commit, partition EOF events.
 * Prints "cannot reach Kafka at ..." and returns CLI_FAIL when unreachable. */
int cli_kafka_new(cli_ctx *ctx, rd_kafka_type_t type, const char *group,
                  rd_kafka_t **out);

/* Partition count of topic; 0 when the topic does not exist. */
int cli_partition_count(cli_ctx *ctx, rd_kafka_t *rk, const char *topic, int *n);

/* A consumer group as the legacy ListGroups/DescribeGroups calls give it. */
typedef struct cli_member {
    char id[256];
    char client_id[128];
    char host[128];
    rd_kafka_topic_partition_list_t *assigned; /* owned, may be empty */
} cli_member;

typedef struct cli_group {
    char id[256];
    char state[32];
    char protocol[32];
    size_t n_members;
    cli_member *members; /* owned */
} cli_group;

/* Groups whose id passes keep(); when one_group is set only that one
 * (EV_ENOTFOUND style: *n = 0 when unknown). *out owned (cli_groups_free). */
typedef bool (*cli_group_filter)(const cli_ctx *ctx, const char *group);
int cli_groups_list(cli_ctx *ctx, rd_kafka_t *rk, const char *one_group,
                    cli_group_filter keep, cli_group **out, size_t *n);
void cli_groups_free(cli_group *g, size_t n);

/* Committed offsets of group (Admin ListConsumerGroupOffsets, all partitions
 * it has committed). *out owned by caller. */
int cli_group_committed(cli_ctx *ctx, rd_kafka_t *rk, const char *group,
                        rd_kafka_topic_partition_list_t **out);

/* High watermark of a partition; -1 when unknown. */
int64_t cli_end_offset(rd_kafka_t *rk, const char *topic, int32_t partition);

/* Total lag of a group over its committed partitions and those of topics
 * (prefixed names, may be NULL): sum of end - committed (end - low when never
 * committed). *members = members of the group (0 when unknown or empty). */
int cli_group_lag(cli_ctx *ctx, rd_kafka_t *rk, const char *group,
                  const char *const *topics, int64_t *lag, int *members);

/* Creates topics (existing ones are fine). Prints per topic; CLI_OK/FAIL. */
int cli_topics_create(cli_ctx *ctx, rd_kafka_t *rk, char **topics, int partitions,
                      int replication);

/* ---- partition reader (cli/reader.c) ---- */

typedef enum { CLI_START_END, CLI_START_BEGINNING, CLI_START_TIME } cli_start;

typedef struct cli_reader_opts {
    char **topics; /* prefixed names, NULL-terminated (borrowed) */
    cli_start start;
    int64_t since_ms; /* unix ms, for CLI_START_TIME */
    bool to_end;      /* stop at the end offsets seen when opening */
} cli_reader_opts;

typedef struct cli_reader cli_reader;

enum { CLI_READ_NONE = 10, CLI_READ_MSG, CLI_READ_DONE, CLI_READ_ERROR };

/* Assigns every partition of the topics (no group join, nothing committed).
 * Topics that do not exist yet are picked up from their beginning when they
 * appear (followed mode only). CLI_OK, or CLI_FAIL with the message printed. */
int cli_reader_open(cli_ctx *ctx, const cli_reader_opts *o, cli_reader **out);
/* CLI_READ_MSG with *msg (owned by caller: rd_kafka_message_destroy),
 * CLI_READ_NONE when nothing came within timeout_ms, CLI_READ_DONE when to_end
 * and every partition is read, CLI_READ_ERROR on a fatal error (printed). */
int cli_reader_next(cli_reader *r, int timeout_ms, rd_kafka_message_t **msg);
rd_kafka_t *cli_reader_handle(cli_reader *r); /* borrowed */
void cli_reader_free(cli_reader *r);

/* ---- produce's records and NDJSON input (cli/produce.c) ---- */

typedef struct cli_produce_opts {
    const char *type, *data, *file, *key, *id, *correlation, *subject, *raw;
    bool binary; /* CloudEvents binary mode: ce_* headers, the data as the value */
} cli_produce_opts;

typedef struct cli_record {
    char key[EV_SUBJECT_MAX];
    char id[EV_ID_MAX];
    char *value; /* the serialized envelope (binary: the data), owned (free()) */
    size_t len;
    ev_envelope head; /* the envelope's attributes (data NULL): binary headers */
    bool binary;
} cli_record;

/* The record of one data document (--data, --file or an NDJSON line; text is
 * borrowed, len bytes): a JSON object without duplicate keys, valid against
 * schemas/<o->type>.json, keyed by o->key or the data's route->key_field, in a
 * new envelope (o->id, o->correlation, o->subject applied), serialized into
 * rec. CLI_OK, or CLI_FAIL with the reason in why (cap bytes). */
int cli_produce_build(cli_ctx *ctx, const cli_produce_opts *o,
                      const ev_event_route *route, const char *text, size_t len,
                      cli_record *rec, char *why, size_t cap);

/* Called with each line that is not blank (line borrowed, len bytes with its
 * newline if it has one; lineno counts from 1, blank lines included). */
typedef void (*cli_line_fn)(void *arg, const char *line, size_t len, size_t lineno);

/* Reads in to its end as produce reads NDJSON: fn for every line that holds
 * more than spaces, tabs and line ends. Returns the number of lines read. */
size_t cli_ndjson_read(FILE *in, cli_line_fn fn, void *arg);

/* ---- output helpers (cli/options.c) ---- */

/* Prints a JSON value as one compact line on stdout. */
void cli_print_json(const json_t *v);
/* ANSI colour escape when ctx->color, "" otherwise. */
const char *cli_color(const cli_ctx *ctx, const char *ansi);

#define CLI_BOLD "\033[1m"
#define CLI_DIM "\033[2m"
#define CLI_RED "\033[31m"
#define CLI_GREEN "\033[32m"
#define CLI_YELLOW "\033[33m"
#define CLI_BLUE "\033[34m"
#define CLI_MAGENTA "\033[35m"
#define CLI_CYAN "\033[36m"
#define CLI_RESET "\033[0m"

#endif
