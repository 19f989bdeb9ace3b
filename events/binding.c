/* SPDX-License-Identifier: MIT */
/* The CloudEvents Kafka protocol binding: structured or binary mode per record.
 * A binary record is rewritten as the structured envelope it stands for and
 * parsed by envelope.c, so both modes get exactly the same checks. */
#include "binding.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CE_PREFIX "ce_"
#define ATTR_NAME_MAX 20

typedef struct buf {
    char *p;
    size_t len, cap;
    bool failed;
} buf;

static void put(buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (q == NULL) {
            b->failed = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* A header's value as a JSON string literal; EV_EUTF8 when it is not UTF-8. */
static int put_string(buf *b, const char *name, const void *val, size_t size,
                      ev_error *err)
{
    json_t *s = json_stringn(val != NULL ? val : "", val != NULL ? size : 0);
    char *text = s ? json_dumps(s, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    json_decref(s);
    if (text == NULL)
        return ev_error_set(err, EV_EUTF8, "header %.40s is not UTF-8 text", name);
    puts_(b, text);
    free(text);
    return 0;
}

static bool attr_name_ok(const char *a)
{
    size_t n = strlen(a);
    if (n == 0 || n > ATTR_NAME_MAX || strcmp(a, "data") == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((a[i] >= 'a' && a[i] <= 'z') || (a[i] >= '0' && a[i] <= '9')))
            return false;
    return true;
}

/* application/json, or any type with a +json suffix, parameters allowed. */
static bool json_media(const void *val, size_t size)
{
    char t[128];
    size_t n = size < sizeof(t) - 1 ? size : sizeof(t) - 1;
    memcpy(t, val, n);
    t[n] = '\0';
    t[strcspn(t, "; ")] = '\0';
    size_t tl = strlen(t);
    return strcasecmp(t, "application/json") == 0 ||
           (tl > 5 && strcasecmp(t + tl - 5, "+json") == 0);
}

static bool header_is(const char *name, const char *want)
{
    return strcasecmp(name, want) == 0;
}

ev_binding_mode ev_binding_mode_of(const rd_kafka_headers_t *hdrs)
{
    const void *v = NULL;
    size_t n = 0;
    if (hdrs == NULL || rd_kafka_header_get_last(hdrs, "ce_specversion", &v, &n) !=
                            RD_KAFKA_RESP_ERR_NO_ERROR)
        return EV_MODE_STRUCTURED;
    if (rd_kafka_header_get_last(hdrs, "content-type", &v, &n) ==
            RD_KAFKA_RESP_ERR_NO_ERROR &&
        v != NULL && n >= 23 && strncasecmp(v, "application/cloudevents", 23) == 0)
        return EV_MODE_STRUCTURED;
    return EV_MODE_BINARY;
}

/* One header into the envelope text being built; 0 or an error. */
static int put_header(buf *b, const char *name, const void *val, size_t size,
                      ev_error *err)
{
    const char *attr = NULL;
    if (header_is(name, "content-type")) {
        if (val == NULL || !json_media(val, size))
            return ev_error_set(
                err, EV_EATTR, "binary mode: data is not JSON (content-type %.*s)",
                (int)(size < 60 ? size : 60), val ? (const char *)val : "");
        attr = "datacontenttype";
    } else if (strncmp(name, CE_PREFIX, strlen(CE_PREFIX)) == 0) {
        attr = name + strlen(CE_PREFIX);
        if (!attr_name_ok(attr))
            return ev_error_set(err, EV_EATTR, "binary mode: bad attribute header %.40s",
                                name);
    } else {
        return 0; /* another header: not an attribute */
    }
    puts_(b, b->len > 1 ? ",\"" : "\"");
    puts_(b, attr);
    puts_(b, "\":");
    return put_string(b, name, val, size, err);
}

/* The structured envelope a binary record stands for, into b. */
static int to_structured(buf *b, const void *value, size_t len,
                         const rd_kafka_headers_t *hdrs, ev_error *err)
{
    puts_(b, "{");
    const char *name = NULL;
    const void *val = NULL;
    size_t size = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && rd_kafka_header_get_all(hdrs, i, &name, &val, &size) ==
                                      RD_KAFKA_RESP_ERR_NO_ERROR;
         i++)
        rc = put_header(b, name, val, size, err);
    if (rc == 0 && len > 0) {
        puts_(b, b->len > 1 ? ",\"data\":" : "\"data\":");
        put(b, value, len);
    }
    puts_(b, "}");
    if (rc == 0 && b->failed)
        rc = ev_error_set(err, EV_ENOMEM, "binary mode: out of memory");
    return rc;
}

int ev_binding_parse(ev_envelope *out, const void *value, size_t len,
                     const rd_kafka_headers_t *hdrs, const ev_limits *lim, bool head,
                     ev_error *err)
{
    int (*parse)(ev_envelope *, const void *, size_t, const ev_limits *, ev_error *) =
        head ? ev_envelope_parse_head : ev_envelope_parse;
    if (ev_binding_mode_of(hdrs) == EV_MODE_STRUCTURED)
        return parse(out, value, len, lim, err);
    memset(out, 0, sizeof(*out));
    size_t max = lim && lim->max_record ? lim->max_record : ev_limits_default.max_record;
    if (len > max)
        return ev_error_set(err, EV_ETOOBIG, "record of %zu bytes over the limit of %zu",
                            len, max);
    buf b = {0};
    int rc = to_structured(&b, value, len, hdrs, err);
    if (rc == 0)
        rc = parse(out, b.p, b.len, lim, err);
    free(b.p);
    return rc;
}

const rd_kafka_headers_t *ev_binding_headers_of(const rd_kafka_message_t *m)
{
    rd_kafka_headers_t *h = NULL;
    /* rd_kafka_message_headers takes a non-const message: it parses lazily */
    rd_kafka_message_t *mm = (rd_kafka_message_t *)m;
    return rd_kafka_message_headers(mm, &h) == RD_KAFKA_RESP_ERR_NO_ERROR ? h : NULL;
}

int ev_binding_parse_message(ev_envelope *out, const rd_kafka_message_t *m,
                             const ev_limits *lim, ev_error *err)
{
    return ev_binding_parse(out, m->payload, m->payload ? m->len : 0,
                            ev_binding_headers_of(m), lim, false, err);
}

bool ev_binding_peek_type(const void *value, size_t len, const rd_kafka_headers_t *hdrs,
                          char type[EV_TYPE_MAX])
{
    if (ev_binding_mode_of(hdrs) == EV_MODE_STRUCTURED)
        return ev_envelope_peek_type(value, len, type);
    const void *v = NULL;
    size_t n = 0;
    if (rd_kafka_header_get_last(hdrs, "ce_type", &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        v == NULL || n == 0 || n >= EV_TYPE_MAX || memchr(v, '\0', n) != NULL)
        return false;
    memcpy(type, v, n);
    type[n] = '\0';
    return true;
}

size_t ev_binding_headers(const ev_envelope *e, ev_header *out, size_t cap)
{
    const struct {
        const char *name;
        const char *value;
    } all[] = {
        {"ce_specversion", "1.0"},
        {"ce_id", e->id},
        {"ce_source", e->source},
        {"ce_type", e->type},
        {"ce_subject", e->subject},
        {"ce_time", e->time},
        {"ce_correlationid", e->correlationid},
        {"ce_causationid", e->causationid},
        {"content-type", "application/json"},
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]) && n < cap; i++)
        if (all[i].value[0] != '\0')
            out[n++] = (ev_header){all[i].name, all[i].value};
    return n;
}
