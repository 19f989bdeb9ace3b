/* SPDX-License-Identifier: MIT */
/* Kafka for the CLI: handles that fail fast when the broker is away, topic
 * metadata, consumer groups (legacy ListGroups), committed and end offsets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "cli.h"
#include "envelope.h"
#include "topics.h"

#define ADMIN_TIMEOUT_MS 5000

/* Keeps librdkafka's last error, without the broker name prefix and the
 * "(after N ms in state ...)" tail, for the "cannot reach" message. */
static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    cli_ctx *ctx = opaque;
    (void)rk;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN && ctx->kafka_error[0] != '\0')
        return; /* the cause came first: keep it */
    ctx->kafka_error_code = err;
    const char *sep = strstr(reason, ": ");
    const char *slash = strchr(reason, '/');
    if (sep != NULL && slash != NULL && slash < sep)
        reason = sep + 2;
    snprintf(ctx->kafka_error, sizeof(ctx->kafka_error), "%s", reason);
    char *tail = strstr(ctx->kafka_error, " (after ");
    if (tail != NULL)
        *tail = '\0';
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    const char *lvl = getenv("CHOREO_LOG_LEVEL");
    if (lvl != NULL && strcmp(lvl, "debug") == 0)
        fprintf(stderr, "librdkafka level=%d fac=%s %s\n", level, fac, buf);
}

static int set(cli_ctx *ctx, rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char errstr[256];
    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
        return cli_fail(ctx, "kafka property %s: %s", name, errstr);
    return CLI_OK;
}

static rd_kafka_conf_t *make_conf(cli_ctx *ctx, rd_kafka_type_t type, const char *group)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char private_group[64];
    ev_error err;
    int rc = set(ctx, conf, "bootstrap.servers", ctx->cfg.brokers);
    if (rc == CLI_OK)
        rc = set(ctx, conf, "client.id", "choreo-cli");
    if (rc == CLI_OK && type == RD_KAFKA_CONSUMER) {
        /* assign() needs a group id; this one never joins nor commits. */
        snprintf(private_group, sizeof(private_group), "choreo-cli-%ld-%lld",
                 (long)getpid(), (long long)ev_now_ms());
        rc = set(ctx, conf, "group.id", group != NULL ? group : private_group);
        if (rc == CLI_OK)
            rc = set(ctx, conf, "enable.auto.commit", "false");
        if (rc == CLI_OK)
            rc = set(ctx, conf, "enable.auto.offset.store", "false");
        if (rc == CLI_OK)
            rc = set(ctx, conf, "enable.partition.eof", "true");
    }
    if (rc == CLI_OK && ev_bus_conf_env(conf, &err) != 0)
        rc = cli_fail(ctx, "%s", err.text);
    if (rc != CLI_OK) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, ctx);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    return conf;
}

/* A metadata round trip; gives up early once every broker is known down. */
static int reach(cli_ctx *ctx, rd_kafka_t *rk)
{
    int64_t deadline = ev_mono_ms() + CLI_REACH_TIMEOUT_MS;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__TIMED_OUT;
    int down = 0;
    while (ev_mono_ms() < deadline) {
        const struct rd_kafka_metadata *md = NULL;
        e = rd_kafka_metadata(rk, 0, NULL, &md, 1000);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_metadata_destroy(md);
            return CLI_OK;
        }
        rd_kafka_poll(rk, 0);
        if (ctx->kafka_error_code != 0)
            down++; /* an error was reported: refused, unresolvable, ... */
        if (down >= 2)
            break;
    }
    const char *why =
        ctx->kafka_error[0] != '\0' ? ctx->kafka_error : rd_kafka_err2str(e);
    if (ctx->kafka_error_code == RD_KAFKA_RESP_ERR__AUTHENTICATION)
        return cli_fail(ctx,
                        "authentication to Kafka at %s failed: %s; check "
                        "CHOREO_KAFKA_sasl_username and CHOREO_KAFKA_sasl_password "
                        "(a credentials file of choreo-broker start --secure)",
                        ctx->cfg.brokers, why);
    if (ctx->kafka_error_code == RD_KAFKA_RESP_ERR__SSL)
        return cli_fail(ctx,
                        "TLS with Kafka at %s failed: %s; check "
                        "CHOREO_KAFKA_ssl_ca_location and CHOREO_KAFKA_security_protocol",
                        ctx->cfg.brokers, why);
    return cli_fail(ctx,
                    "cannot reach Kafka at %s: %s; start one with `make demo` or set "
                    "CHOREO_BROKERS",
                    ctx->cfg.brokers, why);
}

int cli_kafka_new(cli_ctx *ctx, rd_kafka_type_t type, const char *group, rd_kafka_t **out)
{
    char errstr[512];
    rd_kafka_conf_t *conf = make_conf(ctx, type, group);
    if (conf == NULL)
        return CLI_FAIL;
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return cli_fail(ctx, "cannot create a Kafka client: %s", errstr);
    }
    ctx->kafka_error[0] = '\0';
    ctx->kafka_error_code = 0;
    if (reach(ctx, rk) != CLI_OK) {
        rd_kafka_destroy(rk);
        return CLI_FAIL;
    }
    if (type == RD_KAFKA_CONSUMER)
        rd_kafka_poll_set_consumer(rk);
    *out = rk;
    return CLI_OK;
}

int cli_partition_count(cli_ctx *ctx, rd_kafka_t *rk, const char *topic, int *n)
{
    /* All topics: asking for one by name would auto-create it on many brokers.
     * Kept for a moment: callers ask about several topics in a row. */
    static const struct rd_kafka_metadata *md;
    static const rd_kafka_t *md_rk;
    static int64_t md_at;
    *n = 0;
    if (md == NULL || md_rk != rk || ev_mono_ms() - md_at > 500) {
        if (md != NULL)
            rd_kafka_metadata_destroy(md);
        md = NULL;
        rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, ADMIN_TIMEOUT_MS);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            md = NULL;
            return cli_fail(ctx, "metadata of %s: %s", topic, rd_kafka_err2str(e));
        }
        md_rk = rk;
        md_at = ev_mono_ms();
    }
    for (int i = 0; i < md->topic_cnt; i++)
        if (strcmp(md->topics[i].topic, topic) == 0 &&
            md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR)
            *n = md->topics[i].partition_cnt;
    return CLI_OK;
}

int64_t cli_end_offset(rd_kafka_t *rk, const char *topic, int32_t partition)
{
    int64_t lo = -1, hi = -1;
    int64_t deadline = ev_mono_ms() + 3000;
    /* A topic just created has no leader for a moment: retry briefly. */
    while (rd_kafka_query_watermark_offsets(rk, topic, partition, &lo, &hi,
                                            ADMIN_TIMEOUT_MS) !=
           RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (ev_mono_ms() >= deadline)
            return -1;
        usleep(100 * 1000);
    }
    return hi;
}

/* ---- consumer groups ---- */

typedef struct reader {
    const unsigned char *p;
    size_t n, at;
    bool bad;
} reader;

static int32_t get_i32(reader *r, size_t size)
{
    int32_t v = 0;
    if (r->bad || r->n - r->at < size) {
        r->bad = true;
        return 0;
    }
    for (size_t i = 0; i < size; i++)
        v = (int32_t)(((uint32_t)v << 8) | r->p[r->at + i]);
    r->at += size;
    if (size == 2)
        v = (int16_t)v;
    return v;
}

/* ConsumerProtocol Assignment: version, [topic, [partition]], user data. */
static rd_kafka_topic_partition_list_t *parse_assignment(const void *buf, size_t len)
{
    reader r = {buf, len, 0, false};
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    char topic[CLI_TOPIC_MAX];
    if (len == 0)
        return l;
    (void)get_i32(&r, 2);
    int32_t nt = get_i32(&r, 4);
    for (int32_t i = 0; i < nt && !r.bad; i++) {
        int32_t tl = get_i32(&r, 2);
        if (tl < 0 || (size_t)tl >= sizeof(topic) || r.n - r.at < (size_t)tl) {
            r.bad = true;
            break;
        }
        memcpy(topic, r.p + r.at, (size_t)tl);
        topic[tl] = '\0';
        r.at += (size_t)tl;
        int32_t np = get_i32(&r, 4);
        for (int32_t j = 0; j < np && !r.bad; j++) {
            int32_t part = get_i32(&r, 4);
            if (!r.bad)
                rd_kafka_topic_partition_list_add(l, topic, part);
        }
    }
    return l;
}

static void copy_member(cli_member *m, const struct rd_kafka_group_member_info *in)
{
    snprintf(m->id, sizeof(m->id), "%s", in->member_id ? in->member_id : "");
    snprintf(m->client_id, sizeof(m->client_id), "%s",
             in->client_id ? in->client_id : "");
    snprintf(m->host, sizeof(m->host), "%s", in->client_host ? in->client_host : "");
    m->assigned =
        parse_assignment(in->member_assignment, (size_t)in->member_assignment_size);
}

static int copy_group(cli_group *g, const struct rd_kafka_group_info *in)
{
    snprintf(g->id, sizeof(g->id), "%s", in->group);
    snprintf(g->state, sizeof(g->state), "%s", in->state ? in->state : "");
    snprintf(g->protocol, sizeof(g->protocol), "%s",
             in->protocol_type ? in->protocol_type : "");
    g->n_members = in->member_cnt > 0 ? (size_t)in->member_cnt : 0;
    g->members = g->n_members ? calloc(g->n_members, sizeof(*g->members)) : NULL;
    if (g->n_members && g->members == NULL)
        return -1;
    for (size_t i = 0; i < g->n_members; i++)
        copy_member(&g->members[i], &in->members[i]);
    return 0;
}

void cli_groups_free(cli_group *g, size_t n)
{
    if (g == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < g[i].n_members; j++)
            rd_kafka_topic_partition_list_destroy(g[i].members[j].assigned);
        free(g[i].members);
    }
    free(g);
}

static int cmp_group(const void *a, const void *b)
{
    return strcmp(((const cli_group *)a)->id, ((const cli_group *)b)->id);
}

int cli_groups_list(cli_ctx *ctx, rd_kafka_t *rk, const char *one_group,
                    cli_group_filter keep, cli_group **out, size_t *n)
{
    const struct rd_kafka_group_list *gl = NULL;
    rd_kafka_resp_err_t e = rd_kafka_list_groups(rk, one_group, &gl, ADMIN_TIMEOUT_MS);
    *out = NULL;
    *n = 0;
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return cli_fail(ctx, "cannot list consumer groups: %s", rd_kafka_err2str(e));
    cli_group *g = calloc((size_t)gl->group_cnt + 1, sizeof(*g));
    size_t k = 0;
    for (int i = 0; g != NULL && i < gl->group_cnt; i++) {
        const struct rd_kafka_group_info *in = &gl->groups[i];
        if (in->err == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND ||
            (in->err == RD_KAFKA_RESP_ERR_NO_ERROR && in->state != NULL &&
             strcmp(in->state, "Dead") == 0))
            continue; /* DescribeGroups of an unknown id answers "Dead" */
        if (one_group == NULL && keep != NULL && !keep(ctx, in->group))
            continue;
        if (copy_group(&g[k], in) != 0)
            break;
        k++;
    }
    rd_kafka_group_list_destroy(gl);
    if (g == NULL)
        return cli_fail(ctx, "out of memory");
    qsort(g, k, sizeof(*g), cmp_group);
    *out = g;
    *n = k;
    return CLI_OK;
}

int cli_group_committed(cli_ctx *ctx, rd_kafka_t *rk, const char *group,
                        rd_kafka_topic_partition_list_t **out)
{
    char errstr[256];
    int rc = CLI_FAIL;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_event_t *ev = NULL;
    rd_kafka_ListConsumerGroupOffsets_t *req =
        rd_kafka_ListConsumerGroupOffsets_new(group, NULL);
    rd_kafka_AdminOptions_t *o =
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
    rd_kafka_AdminOptions_set_request_timeout(o, ADMIN_TIMEOUT_MS, errstr,
                                              sizeof(errstr));
    rd_kafka_ListConsumerGroupOffsets(rk, &req, 1, o, q);
    ev = rd_kafka_queue_poll(q, ADMIN_TIMEOUT_MS + 1000);
    if (ev == NULL) {
        cli_fail(ctx, "committed offsets of group %s: timed out", group);
        goto cleanup;
    }
    if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        cli_fail(ctx, "committed offsets of group %s: %s", group,
                 rd_kafka_event_error_string(ev));
        goto cleanup;
    }
    size_t n = 0;
    const rd_kafka_group_result_t **gr = rd_kafka_ListConsumerGroupOffsets_result_groups(
        rd_kafka_event_ListConsumerGroupOffsets_result(ev), &n);
    if (n != 1 || rd_kafka_group_result_error(gr[0]) != NULL) {
        cli_fail(ctx, "committed offsets of group %s: %s", group,
                 n == 1 ? rd_kafka_error_string(rd_kafka_group_result_error(gr[0]))
                        : "no answer");
        goto cleanup;
    }
    const rd_kafka_topic_partition_list_t *pl = rd_kafka_group_result_partitions(gr[0]);
    *out = pl ? rd_kafka_topic_partition_list_copy(pl)
              : rd_kafka_topic_partition_list_new(0);
    rc = CLI_OK;
cleanup:
    if (ev != NULL)
        rd_kafka_event_destroy(ev);
    rd_kafka_ListConsumerGroupOffsets_destroy(req);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
    return rc;
}

/* Adds every partition of the existing topics that l does not hold yet. */
static void add_topic_partitions(cli_ctx *ctx, rd_kafka_t *rk,
                                 rd_kafka_topic_partition_list_t *l,
                                 const char *const *topics)
{
    for (size_t i = 0; topics != NULL && topics[i] != NULL; i++) {
        int n = 0;
        if (cli_partition_count(ctx, rk, topics[i], &n) != CLI_OK)
            continue;
        for (int32_t p = 0; p < n; p++)
            if (rd_kafka_topic_partition_list_find(l, topics[i], p) == NULL)
                rd_kafka_topic_partition_list_add(l, topics[i], p)->offset =
                    RD_KAFKA_OFFSET_INVALID;
    }
}

int cli_group_lag(cli_ctx *ctx, rd_kafka_t *rk, const char *group,
                  const char *const *topics, int64_t *lag, int *members)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    cli_group *g = NULL;
    size_t ng = 0;
    *lag = 0;
    *members = 0;
    if (cli_groups_list(ctx, rk, group, NULL, &g, &ng) != CLI_OK)
        return CLI_FAIL;
    if (ng == 1)
        *members = (int)g[0].n_members;
    cli_groups_free(g, ng);
    if (cli_group_committed(ctx, rk, group, &l) != CLI_OK)
        return CLI_FAIL;
    add_topic_partitions(ctx, rk, l, topics);
    for (int i = 0; i < l->cnt; i++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_topic_partition_t *p = &l->elems[i];
        if (rd_kafka_query_watermark_offsets(rk, p->topic, p->partition, &lo, &hi,
                                             ADMIN_TIMEOUT_MS) != 0)
            continue;
        int64_t from = p->offset >= 0 ? p->offset : lo;
        if (hi > from)
            *lag += hi - from;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return CLI_OK;
}

int cli_topics_create(cli_ctx *ctx, rd_kafka_t *rk, char **topics, int partitions,
                      int replication)
{
    ev_error err = {0};
    size_t n = 0;
    while (topics[n] != NULL)
        n++;
    bool *existed = calloc(n ? n : 1, sizeof(*existed));
    if (existed == NULL)
        return cli_fail(ctx, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *one[] = {topics[i], NULL};
        size_t missing = 1;
        ev_topics_missing(rk, one, ADMIN_TIMEOUT_MS, &missing, NULL, 0, NULL, &err);
        existed[i] = missing == 0;
    }
    int brokers = 0;
    size_t ignored = 0;
    ev_topics_missing(rk, NULL, ADMIN_TIMEOUT_MS, &ignored, NULL, 0, &brokers, &err);
    int rf = replication > 0 ? replication : brokers < 3 ? brokers : 3;
    int rc = CLI_OK;
    if (ev_topics_create(rk, (const char *const *)topics, partitions, replication,
                         ADMIN_TIMEOUT_MS, NULL, &err) != 0)
        rc = cli_fail(ctx, "%s", err.text);
    for (size_t i = 0; rc == CLI_OK && !ctx->json && i < n; i++) {
        if (existed[i])
            printf("exists   %s\n", topics[i]);
        else
            printf("created  %s (%d partitions, replication %d)\n", topics[i], partitions,
                   rf);
    }
    free(existed);
    return rc;
}
