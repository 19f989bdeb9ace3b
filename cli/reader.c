/* SPDX-License-Identifier: MIT */
/* Reads the partitions of a set of topics by assign() (no group joins, no
 * commits): from the end, the beginning or a time; to the end or following. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "envelope.h"

#define REFRESH_MS 1000

typedef struct part {
    char topic[CLI_TOPIC_MAX];
    int32_t partition;
    int64_t end; /* high watermark when opened (to_end) */
    bool done;
} part;

struct cli_reader {
    cli_ctx *ctx;
    rd_kafka_t *rk;
    cli_reader_opts o;
    part *parts;
    size_t n_parts, cap_parts, n_done;
    char **missing; /* topics not there yet (followed mode), NULL-terminated */
    int64_t next_refresh;
};

static part *find_part(cli_reader *r, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < r->n_parts; i++)
        if (r->parts[i].partition == partition && strcmp(r->parts[i].topic, topic) == 0)
            return &r->parts[i];
    return NULL;
}

static int add_part(cli_reader *r, const char *topic, int32_t partition)
{
    if (r->n_parts == r->cap_parts) {
        size_t cap = r->cap_parts ? r->cap_parts * 2 : 16;
        part *p = realloc(r->parts, cap * sizeof(*p));
        if (p == NULL)
            return cli_fail(r->ctx, "out of memory");
        r->parts = p;
        r->cap_parts = cap;
    }
    part *p = &r->parts[r->n_parts++];
    memset(p, 0, sizeof(*p));
    snprintf(p->topic, sizeof(p->topic), "%s", topic);
    p->partition = partition;
    p->end = -1;
    return CLI_OK;
}

static void mark_done(cli_reader *r, part *p)
{
    if (p != NULL && !p->done) {
        p->done = true;
        r->n_done++;
    }
}

/* Start offsets of l's partitions for this reader's start mode. */
static int start_offsets(cli_reader *r, rd_kafka_topic_partition_list_t *l, cli_start s)
{
    for (int i = 0; i < l->cnt; i++)
        l->elems[i].offset = s == CLI_START_BEGINNING ? RD_KAFKA_OFFSET_BEGINNING
                             : s == CLI_START_END     ? RD_KAFKA_OFFSET_END
                                                      : r->o.since_ms;
    if (s != CLI_START_TIME)
        return CLI_OK;
    rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(r->rk, l, 10000);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return cli_fail(r->ctx, "offsets for --since: %s", rd_kafka_err2str(e));
    for (int i = 0; i < l->cnt; i++)
        if (l->elems[i].offset < 0)
            l->elems[i].offset = RD_KAFKA_OFFSET_END;
    return CLI_OK;
}

/* With to_end: the end of each partition now, and which are already read. */
static void snapshot_ends(cli_reader *r, const rd_kafka_topic_partition_list_t *l)
{
    for (int i = 0; i < l->cnt; i++) {
        part *p = find_part(r, l->elems[i].topic, l->elems[i].partition);
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(r->rk, p->topic, p->partition, &lo, &hi,
                                             5000) != 0) {
            mark_done(r, p);
            continue;
        }
        p->end = hi;
        int64_t from = l->elems[i].offset;
        if (from == RD_KAFKA_OFFSET_BEGINNING)
            from = lo;
        else if (from == RD_KAFKA_OFFSET_END)
            from = hi;
        if (from >= hi)
            mark_done(r, p);
    }
}

/* Assigns every partition of the topics that exist; others go to missing. */
static int assign_topics(cli_reader *r, char **topics, cli_start s, char ***missing)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    size_t n_missing = 0;
    int rc = CLI_OK;
    for (size_t i = 0; topics[i] != NULL && rc == CLI_OK; i++) {
        int n = 0;
        rc = cli_partition_count(r->ctx, r->rk, topics[i], &n);
        if (rc == CLI_OK && n == 0 && missing != NULL)
            (*missing)[n_missing++] = strdup(topics[i]);
        for (int32_t p = 0; rc == CLI_OK && p < n; p++) {
            if (find_part(r, topics[i], p) != NULL)
                continue;
            rd_kafka_topic_partition_list_add(l, topics[i], p);
            rc = add_part(r, topics[i], p);
        }
    }
    if (rc == CLI_OK && l->cnt > 0)
        rc = start_offsets(r, l, s);
    if (rc == CLI_OK && r->o.to_end)
        snapshot_ends(r, l);
    if (rc == CLI_OK && l->cnt > 0) {
        rd_kafka_error_t *e = rd_kafka_incremental_assign(r->rk, l);
        if (e != NULL) {
            rc = cli_fail(r->ctx, "assign: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

int cli_reader_open(cli_ctx *ctx, const cli_reader_opts *o, cli_reader **out)
{
    size_t n = 0;
    cli_reader *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return cli_fail(ctx, "out of memory");
    r->ctx = ctx;
    r->o = *o;
    while (o->topics[n] != NULL)
        n++;
    r->missing = calloc(n + 1, sizeof(char *));
    if (r->missing == NULL ||
        cli_kafka_new(ctx, RD_KAFKA_CONSUMER, NULL, &r->rk) != CLI_OK)
        goto fail;
    if (assign_topics(r, o->topics, o->start, o->to_end ? NULL : &r->missing) != CLI_OK)
        goto fail;
    r->next_refresh = ev_mono_ms() + REFRESH_MS;
    *out = r;
    return CLI_OK;
fail:
    cli_reader_free(r);
    return CLI_FAIL;
}

/* Followed mode: topics created since we started are read from the start. */
static int refresh(cli_reader *r)
{
    if (r->missing[0] == NULL || ev_mono_ms() < r->next_refresh)
        return CLI_OK;
    r->next_refresh = ev_mono_ms() + REFRESH_MS;
    size_t n = 0;
    while (r->missing[n] != NULL)
        n++;
    char **still = calloc(n + 1, sizeof(char *));
    if (still == NULL)
        return cli_fail(r->ctx, "out of memory");
    int rc = assign_topics(r, r->missing, CLI_START_BEGINNING, &still);
    cli_strv_free(r->missing);
    r->missing = still;
    return rc;
}

int cli_reader_next(cli_reader *r, int timeout_ms, rd_kafka_message_t **msg)
{
    if (r->o.to_end && r->n_done == r->n_parts)
        return CLI_READ_DONE;
    if (refresh(r) != CLI_OK)
        return CLI_READ_ERROR;
    rd_kafka_message_t *m = rd_kafka_consumer_poll(r->rk, timeout_ms);
    if (m == NULL)
        return CLI_READ_NONE;
    const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
    part *p = find_part(r, topic, m->partition);
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (r->o.to_end)
            mark_done(r, p);
        rd_kafka_message_destroy(m);
        return r->o.to_end && r->n_done == r->n_parts ? CLI_READ_DONE : CLI_READ_NONE;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        bool fatal = m->err == RD_KAFKA_RESP_ERR__FATAL;
        if (fatal)
            cli_fail(r->ctx, "consume %s: %s", topic, rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return fatal ? CLI_READ_ERROR : CLI_READ_NONE;
    }
    if (r->o.to_end && p != NULL) {
        if (m->offset >= p->end) {
            mark_done(r, p);
            rd_kafka_message_destroy(m);
            return CLI_READ_NONE;
        }
        if (m->offset + 1 >= p->end)
            mark_done(r, p);
    }
    *msg = m;
    return CLI_READ_MSG;
}

rd_kafka_t *cli_reader_handle(cli_reader *r)
{
    return r->rk;
}

void cli_reader_free(cli_reader *r)
{
    if (r == NULL)
        return;
    if (r->rk != NULL) {
        rd_kafka_consumer_close(r->rk);
        rd_kafka_destroy(r->rk);
    }
    cli_strv_free(r->missing);
    free(r->parts);
    free(r);
}
