/* SPDX-License-Identifier: MIT */
/* Rows of a pipelined transaction that nobody reads before the commit, the
 * inbox's claims and the outbox's events, kept in memory and written in one
 * statement each (arrays through unnest) at the flush: a batch costs two
 * statements for them, not two per event. The server's work per statement
 * (bind, locks, executor) is what a saga's throughput on PostgreSQL pays. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_pg_internal.h"

/* A duplicate among the claims fails the insert on the inbox's key (pg_res_fail:
 * not a race): the batch runs again carefully, asking claim by claim. */
static const char inbox_sql[] =
    "INSERT INTO inbox(event_id, seen_at) SELECT * FROM unnest($1::text[], $2::bigint[])";
/* In the order of the calls: the outbox's ids are the relay's order. */
static const char outbox_sql[] =
    "INSERT INTO outbox(topic, key, value, headers, created_at, owner)"
    " SELECT t, k, v, h, c, $6 FROM unnest($1::text[], $2::text[], $3::bytea[],"
    " $4::text[], $5::bigint[]) WITH ORDINALITY AS u(t, k, v, h, c, n) ORDER BY n";

/* Kept bytes (the outbox's values, in hex) that are sent without waiting for
 * the flush. */
#define BULK_SEND_BYTES (4u << 20)

static bool grow(pg_buf *b, size_t more)
{
    if (b->len + more + 2 <= b->cap) /* room for the closing brace and NUL */
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 2)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL)
        return false;
    b->p = p;
    b->cap = cap;
    return true;
}

/* Starts the next element of an array literal: "{" or ",". */
static bool next(pg_buf *b)
{
    if (!grow(b, 1))
        return false;
    b->p[b->len] = b->len == 0 ? '{' : ',';
    b->len++;
    return true;
}

static bool put_text(pg_buf *b, const char *v)
{
    if (!next(b))
        return false;
    if (v == NULL) {
        if (!grow(b, 4))
            return false;
        memcpy(b->p + b->len, "NULL", 4);
        b->len += 4;
        return true;
    }
    size_t n = strlen(v);
    if (!grow(b, 2 * n + 2))
        return false;
    b->p[b->len++] = '"';
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '"' || v[i] == '\\')
            b->p[b->len++] = '\\';
        b->p[b->len++] = v[i];
    }
    b->p[b->len++] = '"';
    return true;
}

static bool put_int(pg_buf *b, int64_t v)
{
    if (!next(b) || !grow(b, 24))
        return false;
    b->len += (size_t)snprintf(b->p + b->len, 24, "%lld", (long long)v);
    return true;
}

/* A bytea element in hex: "\\x..." (the backslash escaped in the literal). */
static bool put_hex(pg_buf *b, const void *v, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    if (!next(b) || !grow(b, 2 * len + 5))
        return false;
    memcpy(b->p + b->len, "\"\\\\x", 4);
    b->len += 4;
    const unsigned char *p = v;
    for (size_t i = 0; i < len; i++) {
        b->p[b->len++] = hex[p[i] >> 4];
        b->p[b->len++] = hex[p[i] & 15];
    }
    b->p[b->len++] = '"';
    return true;
}

/* The literal, closed (the buffer keeps room for it). */
static const char *literal(pg_buf *b)
{
    b->p[b->len] = '}';
    b->p[b->len + 1] = '\0';
    return b->p;
}

static int oom(const char *what, ev_error *err)
{
    return ev_error_set(err, EV_ENOMEM, "store: %s: out of memory", what);
}

int pg_bulk_inbox(ev_store *s, const char *event_id, int64_t at, ev_error *err)
{
    pg_bulk *b = &pg_of(s)->bulk;
    if (!put_text(&b->in[0], event_id) || !put_int(&b->in[1], at))
        return oom("inbox claim", err);
    b->n_in++;
    return 0;
}

int pg_bulk_outbox(ev_store *s, const char *topic, const char *key, const void *value,
                   size_t len, const char *headers, int64_t at, ev_error *err)
{
    pg_bulk *b = &pg_of(s)->bulk;
    if (!put_text(&b->out[0], topic) || !put_text(&b->out[1], key) ||
        !put_hex(&b->out[2], value, len) || !put_text(&b->out[3], headers) ||
        !put_int(&b->out[4], at))
        return oom("outbox add", err);
    b->n_out++;
    /* big values go out before they pile up (the order stays the calls') */
    return b->out[2].len >= BULK_SEND_BYTES ? pg_pipe_settle(s, err) : 0;
}

bool pg_bulk_pending(ev_store *s)
{
    const pg_bulk *b = &pg_of(s)->bulk;
    return b->n_in > 0 || b->n_out > 0;
}

/* Sends the kept rows' statements, unanswered; -1 when libpq cannot. */
int pg_bulk_send(ev_store *s)
{
    pg_conn *pc = pg_of(s);
    pg_bulk *b = &pc->bulk;
    int ret = 0;
    if (b->n_in > 0) {
        const char *vals[2] = {literal(&b->in[0]), literal(&b->in[1])};
        if (PQsendQueryParams(pc->c, inbox_sql, 2, NULL, vals, NULL, NULL, 0) != 1 ||
            pg_pipe_push(s) != 0)
            ret = -1;
    }
    if (ret == 0 && b->n_out > 0) {
        const char *vals[6] = {literal(&b->out[0]), literal(&b->out[1]),
                               literal(&b->out[2]), literal(&b->out[3]),
                               literal(&b->out[4]), s->owner};
        if (PQsendQueryParams(pc->c, outbox_sql, 6, NULL, vals, NULL, NULL, 0) != 1 ||
            pg_pipe_push(s) != 0)
            ret = -1;
    }
    pg_bulk_clear(pc);
    return ret;
}

void pg_bulk_clear(pg_conn *pc)
{
    pg_bulk *b = &pc->bulk;
    for (size_t i = 0; i < 2; i++)
        b->in[i].len = 0;
    for (size_t i = 0; i < 5; i++)
        b->out[i].len = 0;
    b->n_in = b->n_out = 0;
}

void pg_bulk_free(pg_conn *pc)
{
    pg_bulk *b = &pc->bulk;
    for (size_t i = 0; i < 2; i++)
        free(b->in[i].p);
    for (size_t i = 0; i < 5; i++)
        free(b->out[i].p);
    *b = (pg_bulk){0};
}
