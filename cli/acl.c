/* SPDX-License-Identifier: MIT */
/* choreo acl: least privilege from the contract. Each service's Kafka ACLs are
 * derived from schemas/choreography.json, printed, and with --apply created. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: choreo acl [SERVICE...] [--apply] [--principal-prefix P] [--json]\n"
    "\n"
    "Prints the Kafka ACLs each principal needs, derived from the contract\n"
    "(schemas/choreography.json), topic and group names with the prefix:\n"
    "  a service   READ on the topics of the types it consumes, WRITE on the topics\n"
    "              of the types it emits and on its DLQ (dlq.<service>), READ on its\n"
    "              own consumer group (<prefix><service>); nothing else\n"
    "  cli         the command line's own principal: WRITE on the topics of the types\n"
    "              the contract says `cli` produces, READ on every topic of the\n"
    "              system (tail, trace, flows, dlq list), DESCRIBE on the services'\n"
    "              groups (watch)\n"
    "Every binding is LITERAL, host *, ALLOW; READ and WRITE imply DESCRIBE, and\n"
    "WRITE on a topic lets an idempotent producer get its producer id. With no\n"
    "SERVICE, every service of the contract and cli.\n"
    "\n"
    "--apply creates the missing bindings through the Admin API (CreateAcls) and\n"
    "prints each one's status: created, exists, or extra (held by one of these\n"
    "principals but not derived from the contract; left as it is). It needs a\n"
    "principal allowed to alter ACLs (the admin of choreo-broker start --secure).\n"
    "\n"
    "Options:\n"
    "      --apply            create the bindings (idempotent)\n"
    "      --principal-prefix P  principal of a service: P<service> (default "
    "User:)\n" CLI_COMMON_HELP;

enum { OPT_APPLY = CLI_OPT_FIRST_LOCAL, OPT_PRINCIPAL_PREFIX };

#define ACL_CLI "cli"
#define ACL_PRINCIPAL_MAX 256
#define ACL_HOST_MAX 64
#define ACL_TIMEOUT_MS 10000

typedef struct acl_binding {
    const char *service; /* borrowed: the contract's name or ACL_CLI */
    char principal[ACL_PRINCIPAL_MAX];
    rd_kafka_ResourceType_t type;
    char name[CLI_TOPIC_MAX];
    rd_kafka_ResourcePatternType_t pattern;
    char host[ACL_HOST_MAX];
    rd_kafka_AclOperation_t op;
    rd_kafka_AclPermissionType_t perm;
    const char *status; /* --apply: "created", "exists", "extra", "failed" */
    char error[160];    /* why it failed */
} acl_binding;

typedef struct acl_list {
    acl_binding *v; /* owned */
    size_t n, cap;
    size_t derived; /* v[0..derived) come from the contract; the rest are extras */
} acl_list;

static bool same(const acl_binding *a, const acl_binding *b)
{
    return a->type == b->type && a->pattern == b->pattern && a->op == b->op &&
           a->perm == b->perm && strcmp(a->name, b->name) == 0 &&
           strcmp(a->principal, b->principal) == 0 && strcmp(a->host, b->host) == 0;
}

static acl_binding *list_find(const acl_list *l, const acl_binding *b, size_t upto)
{
    for (size_t i = 0; i < upto && i < l->n; i++)
        if (same(&l->v[i], b))
            return &l->v[i];
    return NULL;
}

/* Appends b unless the list holds it already. CLI_OK or CLI_FAIL (out of memory). */
static int list_push(acl_list *l, const acl_binding *b)
{
    if (list_find(l, b, l->n) != NULL)
        return CLI_OK;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        acl_binding *v = realloc(l->v, cap * sizeof(*v));
        if (v == NULL)
            return CLI_FAIL;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *b;
    return CLI_OK;
}

/* One derived binding: LITERAL, host *, ALLOW. */
static int allow(acl_list *l, const char *service, const char *principal,
                 rd_kafka_ResourceType_t type, const char *name,
                 rd_kafka_AclOperation_t op)
{
    acl_binding b = {.service = service,
                     .type = type,
                     .pattern = RD_KAFKA_RESOURCE_PATTERN_LITERAL,
                     .op = op,
                     .perm = RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW};
    snprintf(b.principal, sizeof(b.principal), "%s", principal);
    snprintf(b.name, sizeof(b.name), "%s", name);
    snprintf(b.host, sizeof(b.host), "*");
    return list_push(l, &b);
}

static int allow_topic(cli_ctx *ctx, acl_list *l, const char *service,
                       const char *principal, const char *topic,
                       rd_kafka_AclOperation_t op)
{
    char name[CLI_TOPIC_MAX];
    cli_topic(ctx, topic, name);
    return allow(l, service, principal, RD_KAFKA_RESOURCE_TOPIC, name, op);
}

/* A service: READ what it consumes, WRITE what it emits and its DLQ, its group. */
static int derive_service(cli_ctx *ctx, acl_list *l, const char *svc,
                          const char *principal)
{
    const ev_contract *c = ctx->contract;
    const char *const *in = ev_contract_service_topics(c, svc);
    const char *const *out = ev_contract_emits(c, svc);
    char name[CLI_TOPIC_MAX];
    int rc = CLI_OK;
    for (size_t i = 0; rc == CLI_OK && in != NULL && in[i] != NULL; i++)
        rc = allow_topic(ctx, l, svc, principal, in[i], RD_KAFKA_ACL_OPERATION_READ);
    for (size_t i = 0; rc == CLI_OK && out != NULL && out[i] != NULL; i++) {
        const ev_event_route *r = ev_contract_route(c, out[i]);
        if (r != NULL)
            rc = allow_topic(ctx, l, svc, principal, r->topic,
                             RD_KAFKA_ACL_OPERATION_WRITE);
    }
    cli_dlq_topic(ctx, svc, name);
    if (rc == CLI_OK)
        rc = allow(l, svc, principal, RD_KAFKA_RESOURCE_TOPIC, name,
                   RD_KAFKA_ACL_OPERATION_WRITE);
    cli_service_group(ctx, svc, name, sizeof(name));
    if (rc == CLI_OK)
        rc = allow(l, svc, principal, RD_KAFKA_RESOURCE_GROUP, name,
                   RD_KAFKA_ACL_OPERATION_READ);
    return rc;
}

/* The command line: WRITE what `cli` produces, READ every topic and DLQ,
 * DESCRIBE the services' groups. */
static int derive_cli(cli_ctx *ctx, acl_list *l, const char *principal)
{
    const ev_contract *c = ctx->contract;
    const char *const *topics = ev_contract_topics(c);
    const char *const *svc = ev_contract_services(c);
    size_t n = 0;
    const ev_event_route *routes = ev_contract_routes(c, &n);
    char name[CLI_TOPIC_MAX];
    int rc = CLI_OK;
    for (size_t i = 0; rc == CLI_OK && i < n; i++)
        if (strcmp(routes[i].producer, ACL_CLI) == 0)
            rc = allow_topic(ctx, l, ACL_CLI, principal, routes[i].topic,
                             RD_KAFKA_ACL_OPERATION_WRITE);
    for (size_t i = 0; rc == CLI_OK && topics[i] != NULL; i++)
        rc = allow_topic(ctx, l, ACL_CLI, principal, topics[i],
                         RD_KAFKA_ACL_OPERATION_READ);
    for (size_t i = 0; rc == CLI_OK && svc[i] != NULL; i++) {
        cli_dlq_topic(ctx, svc[i], name);
        rc = allow(l, ACL_CLI, principal, RD_KAFKA_RESOURCE_TOPIC, name,
                   RD_KAFKA_ACL_OPERATION_READ);
    }
    for (size_t i = 0; rc == CLI_OK && svc[i] != NULL; i++) {
        cli_service_group(ctx, svc[i], name, sizeof(name));
        rc = allow(l, ACL_CLI, principal, RD_KAFKA_RESOURCE_GROUP, name,
                   RD_KAFKA_ACL_OPERATION_DESCRIBE);
    }
    return rc;
}

/* The contract's name of a service (borrowed), ACL_CLI, or NULL when unknown. */
static const char *known(const ev_contract *c, const char *name)
{
    if (strcmp(name, ACL_CLI) == 0)
        return ACL_CLI;
    const char *const *svc = ev_contract_services(c);
    for (size_t i = 0; svc[i] != NULL; i++)
        if (strcmp(svc[i], name) == 0)
            return svc[i];
    return NULL;
}

static int derive_one(cli_ctx *ctx, acl_list *l, const char *svc, const char *prefix)
{
    char principal[ACL_PRINCIPAL_MAX];
    int n = snprintf(principal, sizeof(principal), "%s%s", prefix, svc);
    if (n < 0 || (size_t)n >= sizeof(principal))
        return cli_fail(ctx, "principal %s%s too long", prefix, svc);
    int rc = strcmp(svc, ACL_CLI) == 0 ? derive_cli(ctx, l, principal)
                                       : derive_service(ctx, l, svc, principal);
    return rc == CLI_OK ? CLI_OK : cli_fail(ctx, "out of memory");
}

/* The bindings of the named principals (all services then cli when none). */
static int derive(cli_ctx *ctx, char **names, int n, const char *prefix, acl_list *l)
{
    const char *const *svc = ev_contract_services(ctx->contract);
    int rc = CLI_OK;
    if (n == 0) {
        for (size_t i = 0; rc == CLI_OK && svc[i] != NULL; i++)
            rc = derive_one(ctx, l, svc[i], prefix);
        if (rc == CLI_OK)
            rc = derive_one(ctx, l, ACL_CLI, prefix);
    }
    for (int i = 0; rc == CLI_OK && i < n; i++)
        rc = derive_one(ctx, l, known(ctx->contract, names[i]), prefix);
    l->derived = l->n;
    return rc;
}

/* ---- the Admin API ---- */

/* What to do about the refusals an operator can mend. */
static const struct {
    rd_kafka_resp_err_t code;
    const char *hint;
} hints[] = {
    {RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED,
     "this principal may not alter ACLs; run it as the admin (its credentials file)"},
    {RD_KAFKA_RESP_ERR_SECURITY_DISABLED,
     "the broker has no authorizer (choreo-broker start --secure turns ACLs on)"},
};

static const char *hint_of(rd_kafka_resp_err_t code)
{
    for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++)
        if (hints[i].code == code)
            return hints[i].hint;
    return NULL;
}

/* The admin request's answer on q, or NULL after printing why. */
static rd_kafka_event_t *admin_wait(cli_ctx *ctx, rd_kafka_queue_t *q, const char *what)
{
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, ACL_TIMEOUT_MS + 1000);
    if (ev == NULL) {
        cli_fail(ctx, "%s: no answer within %d s", what, ACL_TIMEOUT_MS / 1000);
        return NULL;
    }
    rd_kafka_resp_err_t e = rd_kafka_event_error(ev);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        return ev;
    const char *hint = hint_of(e);
    cli_fail(ctx, "%s: %s: %s", what, rd_kafka_err2name(e),
             hint != NULL ? hint : rd_kafka_event_error_string(ev));
    rd_kafka_event_destroy(ev);
    return NULL;
}

static rd_kafka_AdminOptions_t *admin_options(rd_kafka_t *rk, rd_kafka_admin_op_t op)
{
    char errstr[256];
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, op);
    if (o != NULL)
        rd_kafka_AdminOptions_set_request_timeout(o, ACL_TIMEOUT_MS, errstr,
                                                  sizeof(errstr));
    return o;
}

/* The service whose principal this is among the derived bindings, or NULL. */
static const char *selected(const acl_list *l, const char *principal)
{
    for (size_t i = 0; i < l->derived; i++)
        if (strcmp(l->v[i].principal, principal) == 0)
            return l->v[i].service;
    return NULL;
}

/* One binding the broker holds: marks the derived one "exists", or appends it
 * as an extra when it belongs to a selected principal. */
static int take_existing(acl_list *l, const rd_kafka_AclBinding_t *a)
{
    acl_binding b = {.type = rd_kafka_AclBinding_restype(a),
                     .pattern = rd_kafka_AclBinding_resource_pattern_type(a),
                     .op = rd_kafka_AclBinding_operation(a),
                     .perm = rd_kafka_AclBinding_permission_type(a),
                     .status = "extra"};
    snprintf(b.principal, sizeof(b.principal), "%s", rd_kafka_AclBinding_principal(a));
    snprintf(b.name, sizeof(b.name), "%s", rd_kafka_AclBinding_name(a));
    snprintf(b.host, sizeof(b.host), "%s", rd_kafka_AclBinding_host(a));
    acl_binding *d = list_find(l, &b, l->derived);
    if (d != NULL) {
        d->status = "exists";
        return CLI_OK;
    }
    b.service = selected(l, b.principal);
    return b.service != NULL ? list_push(l, &b) : CLI_OK;
}

/* DescribeAcls of every binding; see take_existing. librdkafka 2.0.2 gives a
 * refused DescribeAcls (a principal that may not describe the cluster) as an
 * empty answer without an error: CreateAcls then says why. */
static int mark_existing(cli_ctx *ctx, rd_kafka_t *rk, rd_kafka_queue_t *q, acl_list *l)
{
    char errstr[256];
    int rc = CLI_FAIL;
    rd_kafka_AclBindingFilter_t *f = rd_kafka_AclBindingFilter_new(
        RD_KAFKA_RESOURCE_ANY, NULL, RD_KAFKA_RESOURCE_PATTERN_ANY, NULL, NULL,
        RD_KAFKA_ACL_OPERATION_ANY, RD_KAFKA_ACL_PERMISSION_TYPE_ANY, errstr,
        sizeof(errstr));
    rd_kafka_AdminOptions_t *o = admin_options(rk, RD_KAFKA_ADMIN_OP_DESCRIBEACLS);
    rd_kafka_event_t *ev = NULL;
    if (f == NULL || o == NULL) {
        cli_fail(ctx, "describe ACLs: %s", f == NULL ? errstr : "out of memory");
        goto cleanup;
    }
    rd_kafka_DescribeAcls(rk, f, o, q);
    ev = admin_wait(ctx, q, "describe ACLs");
    if (ev == NULL)
        goto cleanup;
    size_t n = 0;
    const rd_kafka_AclBinding_t **acls =
        rd_kafka_DescribeAcls_result_acls(rd_kafka_event_DescribeAcls_result(ev), &n);
    rc = CLI_OK;
    for (size_t i = 0; rc == CLI_OK && i < n; i++)
        rc = take_existing(l, acls[i]);
    if (rc != CLI_OK)
        cli_fail(ctx, "out of memory");
cleanup:
    if (ev != NULL)
        rd_kafka_event_destroy(ev);
    if (o != NULL)
        rd_kafka_AdminOptions_destroy(o);
    if (f != NULL)
        rd_kafka_AclBinding_destroy(f);
    return rc;
}

/* Why a binding was refused: the error's name, then what to do, else the
 * broker's message (for a forwarded refusal Kafka sends a request dump). */
static void refusal(const rd_kafka_error_t *e, char *out, size_t cap)
{
    rd_kafka_resp_err_t code =
        e != NULL ? rd_kafka_error_code(e) : RD_KAFKA_RESP_ERR__FAIL;
    const char *hint = hint_of(code);
    if (hint == NULL)
        hint = e != NULL ? rd_kafka_error_string(e) : "no result";
    snprintf(out, cap, "%s: %.100s", rd_kafka_err2name(code), hint);
}

/* The CreateAcls results, in the order of the request (the missing bindings);
 * the first refusal printed, the others counted. */
static int take_created(cli_ctx *ctx, rd_kafka_event_t *ev, acl_binding **miss,
                        size_t n_miss)
{
    size_t n = 0, failed = 0;
    const rd_kafka_acl_result_t **r =
        rd_kafka_CreateAcls_result_acls(rd_kafka_event_CreateAcls_result(ev), &n);
    for (size_t i = 0; i < n_miss; i++) {
        const rd_kafka_error_t *e = i < n ? rd_kafka_acl_result_error(r[i]) : NULL;
        miss[i]->status = i < n && e == NULL ? "created" : "failed";
        if (i < n && e == NULL)
            continue;
        refusal(e, miss[i]->error, sizeof(miss[i]->error));
        if (failed++ == 0)
            cli_fail(ctx, "create ACL %s %s %s for %s: %s",
                     rd_kafka_ResourceType_name(miss[i]->type), miss[i]->name,
                     rd_kafka_AclOperation_name(miss[i]->op), miss[i]->principal,
                     miss[i]->error);
    }
    if (failed > 1)
        cli_fail(ctx, "%zu more bindings not created", failed - 1);
    return failed == 0 ? CLI_OK : CLI_FAIL;
}

/* CreateAcls of the derived bindings the broker does not hold yet. */
static int create_missing(cli_ctx *ctx, rd_kafka_t *rk, rd_kafka_queue_t *q, acl_list *l)
{
    char errstr[256];
    size_t n = 0;
    int rc = CLI_FAIL;
    rd_kafka_AclBinding_t **nb = calloc(l->derived + 1, sizeof(*nb));
    acl_binding **miss = calloc(l->derived + 1, sizeof(*miss));
    rd_kafka_AdminOptions_t *o = admin_options(rk, RD_KAFKA_ADMIN_OP_CREATEACLS);
    rd_kafka_event_t *ev = NULL;
    if (nb == NULL || miss == NULL || o == NULL) {
        cli_fail(ctx, "out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < l->derived; i++) {
        acl_binding *b = &l->v[i];
        if (b->status != NULL)
            continue;
        nb[n] = rd_kafka_AclBinding_new(b->type, b->name, b->pattern, b->principal,
                                        b->host, b->op, b->perm, errstr, sizeof(errstr));
        if (nb[n] == NULL) {
            cli_fail(ctx, "ACL binding for %s: %s", b->principal, errstr);
            goto cleanup;
        }
        miss[n++] = b;
    }
    rc = CLI_OK;
    if (n == 0)
        goto cleanup;
    rd_kafka_CreateAcls(rk, nb, n, o, q);
    ev = admin_wait(ctx, q, "create ACLs");
    rc = ev != NULL ? take_created(ctx, ev, miss, n) : CLI_FAIL;
cleanup:
    if (ev != NULL)
        rd_kafka_event_destroy(ev);
    for (size_t i = 0; nb != NULL && i < n; i++)
        rd_kafka_AclBinding_destroy(nb[i]);
    free(nb);
    free(miss);
    if (o != NULL)
        rd_kafka_AdminOptions_destroy(o);
    return rc;
}

static int apply(cli_ctx *ctx, acl_list *l)
{
    rd_kafka_t *rk = NULL;
    int rc = cli_kafka_new(ctx, RD_KAFKA_PRODUCER, NULL, &rk);
    if (rc != CLI_OK)
        return rc;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rc = mark_existing(ctx, rk, q, l);
    if (rc == CLI_OK)
        rc = create_missing(ctx, rk, q, l);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- output ---- */

static json_t *binding_json(const acl_binding *b)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "service",
                          b->service, "principal", b->principal, "resource_type",
                          rd_kafka_ResourceType_name(b->type), "resource_name", b->name,
                          "pattern_type", rd_kafka_ResourcePatternType_name(b->pattern),
                          "host", b->host, "operation", rd_kafka_AclOperation_name(b->op),
                          "permission", rd_kafka_AclPermissionType_name(b->perm));
    if (o != NULL && b->status != NULL)
        json_object_set_new(o, "status", json_string(b->status));
    if (o != NULL && b->error[0] != '\0')
        json_object_set_new(o, "error", json_string(b->error));
    return o;
}

static void print_json(const acl_list *l)
{
    json_t *all = json_array();
    for (size_t i = 0; i < l->n; i++)
        json_array_append_new(all, binding_json(&l->v[i]));
    cli_print_json(all);
    json_decref(all);
}

static void print_text(const acl_list *l, bool applied)
{
    int wp = 9, wn = 4;
    for (size_t i = 0; i < l->n; i++) {
        int p = (int)strlen(l->v[i].principal), n = (int)strlen(l->v[i].name);
        wp = p > wp ? p : wp;
        wn = n > wn ? n : wn;
    }
    int wh = applied ? 4 : 0; /* host is the last column unless status follows */
    printf("%-*s  %-8s  %-*s  %-8s  %-9s  %-10s  %-*s%s\n", wp, "principal", "resource",
           wn, "name", "pattern", "operation", "permission", wh, "host",
           applied ? "  status" : "");
    for (size_t i = 0; i < l->n; i++) {
        const acl_binding *b = &l->v[i];
        printf("%-*s  %-8s  %-*s  %-8s  %-9s  %-10s  %-*s", wp, b->principal,
               rd_kafka_ResourceType_name(b->type), wn, b->name,
               rd_kafka_ResourcePatternType_name(b->pattern),
               rd_kafka_AclOperation_name(b->op),
               rd_kafka_AclPermissionType_name(b->perm), wh, b->host);
        if (applied)
            printf("  %s", b->status != NULL ? b->status : "-");
        printf("\n");
    }
}

/* ---- command ---- */

static int parse_args(cli_ctx *ctx, int argc, char **argv, bool *apply_opt,
                      const char **prefix)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"apply", no_argument, NULL, OPT_APPLY},
        {"principal-prefix", required_argument, NULL, OPT_PRINCIPAL_PREFIX},
        {NULL, 0, NULL, 0},
    };
    int c, rc;
    while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, opts, NULL)) != -1) {
        if (c == OPT_APPLY) {
            *apply_opt = true;
        } else if (c == OPT_PRINCIPAL_PREFIX) {
            if (strchr(optarg, ':') == NULL)
                return cli_usage_error(ctx,
                                       "--principal-prefix wants TYPE:[NAME-PREFIX] "
                                       "(User:), not '%s'",
                                       optarg);
            *prefix = optarg;
        } else {
            rc = cli_common_opt(ctx, c, optarg);
            if (rc != CLI_CONTINUE)
                return rc;
        }
    }
    return CLI_CONTINUE;
}

int cli_acl(cli_ctx *ctx, int argc, char **argv)
{
    bool do_apply = false;
    const char *prefix = "User:";
    acl_list l = {0};
    ctx->usage = usage;
    int rc = parse_args(ctx, argc, argv, &do_apply, &prefix);
    if (rc != CLI_CONTINUE)
        return rc;
    if (cli_contract(ctx) == NULL)
        return CLI_FAIL;
    for (int i = optind; i < argc; i++)
        if (known(ctx->contract, argv[i]) == NULL)
            return cli_usage_error(ctx,
                                   "unknown service '%s': the contract's services or "
                                   "'cli' (see `choreo flow`)",
                                   argv[i]);
    rc = derive(ctx, argv + optind, argc - optind, prefix, &l);
    if (rc == CLI_OK && do_apply)
        rc = apply(ctx, &l);
    bool answered = rc == CLI_OK;
    for (size_t i = 0; i < l.n && !answered; i++)
        answered = l.v[i].status != NULL;
    if (answered) {
        if (ctx->json)
            print_json(&l);
        else
            print_text(&l, do_apply);
    }
    if (l.n > l.derived && !ctx->json)
        fprintf(stderr,
                "%s: %zu binding(s) of these principals are not derived from the "
                "contract (status extra); left as they are\n",
                ctx->name, l.n - l.derived);
    free(l.v);
    return rc;
}
