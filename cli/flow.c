/* SPDX-License-Identifier: MIT */
/* choreo flow: schemas/choreography.json rendered for people (per service what
 * it consumes and emits, then the chain of steps) or as Graphviz dot. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: choreo flow [--dot | --json]\n"
    "\n"
    "Renders the choreography (schemas/choreography.json): per service the event\n"
    "types it consumes and emits, the topic and key of each type, and the chain of\n"
    "steps a flow goes through. --dot prints a Graphviz digraph (services as boxes,\n"
    "events as ellipses): choreo flow --dot | dot -Tsvg > flow.svg\n"
    "\n"
    "Options:\n"
    "      --dot              Graphviz dot instead of text\n" CLI_COMMON_HELP;

enum { OPT_DOT = CLI_OPT_FIRST_LOCAL };

static void print_list(const char *label, const char *const *v)
{
    printf("    %-9s", label);
    for (size_t i = 0; v != NULL && v[i] != NULL; i++)
        printf("%s%s", i ? ", " : "", v[i]);
    printf("%s\n", v == NULL || v[0] == NULL ? "-" : "");
}

static void print_chain(cli_ctx *ctx, json_t *flow)
{
    const char *type;
    json_t *steps;
    printf("\nchain (after each event, one of the alternatives follows):\n");
    json_object_foreach(flow, type, steps)
    {
        if (type[0] == '$')
            continue;
        if (json_array_size(steps) == 0) {
            printf("  %-22s  (end of the flow)\n", type);
            continue;
        }
        size_t i;
        json_t *alts;
        json_array_foreach(steps, i, alts)
        {
            size_t j;
            json_t *t;
            printf("  %-22s  -> ", i == 0 ? type : "");
            json_array_foreach(alts, j, t)
            {
                const ev_event_route *r =
                    ev_contract_route(ctx->contract, json_string_value(t));
                printf("%s%s", j ? " | " : "", json_string_value(t));
                if (j + 1 == json_array_size(alts) && r != NULL)
                    printf("   (by %s)", r->producer);
            }
            printf("\n");
        }
    }
}

static void print_text(cli_ctx *ctx)
{
    ev_contract *c = ctx->contract;
    const char *const *svc = ev_contract_services(c);
    size_t n = 0;
    const ev_event_route *r = ev_contract_routes(c, &n);
    printf("services:\n");
    for (size_t i = 0; svc[i] != NULL; i++) {
        printf("  %s\n", svc[i]);
        print_list("consumes", ev_contract_consumes(c, svc[i]));
        print_list("emits", ev_contract_emits(c, svc[i]));
    }
    printf("\nevents:\n  %-24s %-16s %-12s %s\n", "type", "topic", "key", "producer");
    for (size_t i = 0; i < n; i++) {
        char topic[CLI_TOPIC_MAX];
        cli_topic(ctx, r[i].topic, topic);
        printf("  %-24s %-16s %-12s %s\n", r[i].type, topic, r[i].key_field,
               r[i].producer);
    }
    json_t *flow = json_object_get(ev_contract_json(c), "flow");
    if (json_is_object(flow))
        print_chain(ctx, flow);
}

static void print_dot(cli_ctx *ctx)
{
    ev_contract *c = ctx->contract;
    const char *const *svc = ev_contract_services(c);
    size_t n = 0;
    const ev_event_route *r = ev_contract_routes(c, &n);
    printf("digraph choreo {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n");
    printf("  \"cli\" [shape=box, style=dashed];\n");
    for (size_t i = 0; svc[i] != NULL; i++)
        printf("  \"%s\" [shape=box, style=filled, fillcolor=lightgrey];\n", svc[i]);
    for (size_t i = 0; i < n; i++) {
        printf("  \"%s\" [shape=ellipse];\n", r[i].type);
        printf("  \"%s\" -> \"%s\";\n", r[i].producer, r[i].type);
    }
    for (size_t i = 0; svc[i] != NULL; i++) {
        const char *const *in = ev_contract_consumes(c, svc[i]);
        for (size_t j = 0; in != NULL && in[j] != NULL; j++)
            printf("  \"%s\" -> \"%s\" [color=grey40];\n", in[j], svc[i]);
    }
    printf("}\n");
}

int cli_flow(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"dot", no_argument, NULL, OPT_DOT},
        {NULL, 0, NULL, 0},
    };
    bool dot = false;
    int c, r;
    ctx->usage = usage;
    while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, opts, NULL)) != -1) {
        if (c == OPT_DOT) {
            dot = true;
            continue;
        }
        r = cli_common_opt(ctx, c, optarg);
        if (r != CLI_CONTINUE)
            return r;
    }
    if (optind != argc)
        return cli_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
    if (cli_contract(ctx) == NULL)
        return CLI_FAIL;
    if (ctx->json)
        cli_print_json(ev_contract_json(ctx->contract));
    else if (dot)
        print_dot(ctx);
    else
        print_text(ctx);
    return CLI_OK;
}
