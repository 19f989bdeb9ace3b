/* SPDX-License-Identifier: MIT */
/* The envelope's serializer: compact JSON written directly (jansson's
 * JSON_COMPACT output, byte for byte), under the record size limit. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope_internal.h"

/* ---- serialize -------------------------------------------------------- */

typedef struct writer {
    char *buf;
    size_t len, cap, max;
    bool too_big, nomem;
} writer;

/* Capacity for n more bytes (and a NUL), whatever the record limit. */
static int grow(writer *w, size_t n)
{
    if (w->len + n + 1 <= w->cap)
        return 0;
    size_t cap = w->cap * 2;
    while (cap < w->len + n + 1)
        cap *= 2;
    char *b = realloc(w->buf, cap);
    if (b == NULL) {
        w->nomem = true;
        return -1;
    }
    w->buf = b;
    w->cap = cap;
    return 0;
}

/* Room for n more bytes within the record limit; -1 with the flag set. */
static inline int reserve(writer *w, size_t n)
{
    if (w->len + n + 1 <= w->cap && w->len + n <= w->max)
        return 0;
    if (w->len + n > w->max) {
        w->too_big = true;
        return -1;
    }
    return grow(w, n);
}

static inline int put(writer *w, const char *s, size_t n)
{
    if (reserve(w, n) != 0)
        return -1;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    return 0;
}

static int dump_cb(const char *buffer, size_t size, void *data)
{
    return put(data, buffer, size);
}

/* ,"name":"value" with JSON escaping (values are at most EV_SOURCE_MAX bytes). */
static int put_attr(writer *w, const char *name, const char *value)
{
    static const char hex[] = "0123456789abcdef";
    size_t nl = strlen(name), vl = strlen(value);
    if (w->too_big || w->nomem || grow(w, nl + 6 * vl + 6) != 0)
        return -1;
    char *o = w->buf + w->len;
    *o++ = ',';
    *o++ = '"';
    memcpy(o, name, nl);
    o += nl;
    memcpy(o, "\":\"", 3);
    o += 3;
    const unsigned char *p = (const unsigned char *)value, *end = p + vl;
    while (p < end) {
        const unsigned char *run = ev_env_plain_run(p, end);
        memcpy(o, p, (size_t)(run - p));
        o += run - p;
        p = run;
        if (p == end)
            break;
        if (*p == '"' || *p == '\\') {
            *o++ = '\\';
            *o++ = (char)*p;
        } else if (*p < 0x20) {
            memcpy(o, "\\u00", 4);
            o[4] = hex[*p >> 4];
            o[5] = hex[*p & 15];
            o += 6;
        } else {
            *o++ = (char)*p; /* UTF-8, checked by check_out_attrs */
        }
        p++;
    }
    *o++ = '"';
    size_t len = (size_t)(o - w->buf);
    if (len > w->max) { /* as put would have refused it: nothing written */
        w->too_big = true;
        return -1;
    }
    w->len = len;
    return 0;
}

/* ---- fast dump: jansson's JSON_COMPACT output, written directly ---- */

#define FD_MAX_DEPTH 64 /* deeper (or self-containing) values go through jansson */

/* A string with jansson's escapes (\uXXXX upper case); false on invalid UTF-8. */
static bool fd_string(writer *w, const char *str, size_t n)
{
    static const char hex[] = "0123456789ABCDEF", ctl[] = "\"\\\b\f\n\r\t",
                      named[] = "\"\\bfnrt";
    const unsigned char *s = (const unsigned char *)str, *end = s + n;
    put(w, "\"", 1);
    while (s < end) {
        const unsigned char *run = s;
        s = ev_env_plain_run(s, end);
        if (s > run)
            put(w, (const char *)run, (size_t)(s - run));
        if (s == end)
            break;
        if (*s >= 0x80) {
            size_t k = ev_env_utf8_seq(s, (size_t)(end - s));
            if (k == 0)
                return false;
            put(w, (const char *)s, k);
            s += k;
            continue;
        }
        char esc[6] = {'\\', 'u', '0', '0', hex[*s >> 4], hex[*s & 15]};
        const char *q = *s != 0 ? strchr(ctl, *s) : NULL;
        size_t len = 6;
        if (q != NULL) {
            esc[1] = named[q - ctl];
            len = 2;
        }
        put(w, esc, len);
        s++;
    }
    return put(w, "\"", 1) == 0 || w->too_big || w->nomem;
}

static void fd_integer(writer *w, json_int_t v)
{
    char buf[24], *p = buf + sizeof(buf);
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--p = '-';
    put(w, p, (size_t)(buf + sizeof(buf) - p));
}

static bool fd_value(writer *w, const json_t *v, int depth);

static bool fd_object(writer *w, const json_t *v, int depth)
{
    put(w, "{", 1);
    bool first = true;
    for (void *it = json_object_iter((json_t *)v); it != NULL;
         it = json_object_iter_next((json_t *)v, it)) {
        if (!first)
            put(w, ",", 1);
        first = false;
        if (!fd_string(w, json_object_iter_key(it), json_object_iter_key_len(it)))
            return false;
        put(w, ":", 1);
        if (!fd_value(w, json_object_iter_value(it), depth + 1))
            return false;
    }
    put(w, "}", 1);
    return true;
}

/* false: give up (the caller dumps with jansson, which decides). */
static bool fd_value(writer *w, const json_t *v, int depth)
{
    if (depth > FD_MAX_DEPTH)
        return false;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return fd_object(w, v, depth);
    case JSON_ARRAY:
        put(w, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i > 0)
                put(w, ",", 1);
            if (!fd_value(w, json_array_get(v, i), depth + 1))
                return false;
        }
        put(w, "]", 1);
        return true;
    case JSON_STRING:
        return fd_string(w, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        fd_integer(w, json_integer_value(v));
        return true;
    case JSON_TRUE:
        return put(w, "true", 4) == 0 || w->too_big || w->nomem;
    case JSON_FALSE:
        return put(w, "false", 5) == 0 || w->too_big || w->nomem;
    case JSON_NULL:
        return put(w, "null", 4) == 0 || w->too_big || w->nomem;
    default: /* reals: jansson's own formatting */
        return json_dump_callback(v, dump_cb, w, JSON_COMPACT | JSON_ENCODE_ANY) == 0 ||
               w->too_big || w->nomem;
    }
}

/* data as json_dump_callback(JSON_COMPACT | JSON_ENCODE_ANY) writes it; nonzero
 * when it cannot be encoded (the writer's flags say why when it is size/memory). */
static int dump_data(writer *w, const json_t *data)
{
    size_t mark = w->len;
    if (fd_value(w, data, 1))
        return 0;
    if (w->too_big || w->nomem)
        return -1;
    w->len = mark;
    return json_dump_callback(data, dump_cb, w, JSON_COMPACT | JSON_ENCODE_ANY);
}

static int check_out_attrs(const ev_envelope *e, ev_error *err)
{
    if (e->id[0] == '\0' || e->source[0] == '\0' || e->type[0] == '\0')
        return ev_error_set(err, EV_EATTR, "envelope needs id, source and type");
    for (size_t i = 0; i < sizeof(ev_env_attr_specs) / sizeof(ev_env_attr_specs[0]);
         i++) {
        const char *v = (const char *)e + ev_env_attr_specs[i].off;
        size_t n = strnlen(v, ev_env_attr_specs[i].cap);
        if (n == ev_env_attr_specs[i].cap)
            return ev_error_set(err, EV_EATTR, "attribute %s not terminated",
                                ev_env_attr_specs[i].name);
        if (!ev_env_utf8_valid(v, n))
            return ev_error_set(err, EV_EUTF8, "attribute %s is not UTF-8",
                                ev_env_attr_specs[i].name);
    }
    return 0;
}

static void put_attrs(writer *w, const ev_envelope *e)
{
    static const char head[] = "{\"specversion\":\"1.0\"";
    put(w, head, sizeof(head) - 1);
    put_attr(w, "id", e->id);
    put_attr(w, "source", e->source);
    put_attr(w, "type", e->type);
    if (e->subject[0])
        put_attr(w, "subject", e->subject);
    if (e->time[0])
        put_attr(w, "time", e->time);
    put_attr(w, "datacontenttype", "application/json");
    if (e->correlationid[0])
        put_attr(w, "correlationid", e->correlationid);
    if (e->causationid[0])
        put_attr(w, "causationid", e->causationid);
}

int ev_envelope_serialize(const ev_envelope *e, const ev_limits *lim, char **out,
                          size_t *len, ev_error *err)
{
    if (e == NULL || out == NULL || len == NULL)
        return ev_error_set(err, EV_EINVAL, "envelope serialize: null argument");
    *out = NULL;
    *len = 0;
    int rc = check_out_attrs(e, err);
    if (rc != 0)
        return rc;
    writer w = {.cap = 1024, .max = lim && lim->max_record ? lim->max_record : 65536};
    w.buf = malloc(w.cap);
    if (w.buf == NULL)
        return ev_error_set(err, EV_ENOMEM, "envelope serialize: out of memory");
    put_attrs(&w, e);
    if (e->data != NULL && !w.too_big && !w.nomem) {
        put(&w, ",\"data\":", 8);
        if (dump_data(&w, e->data) != 0 && !w.too_big && !w.nomem)
            rc = ev_error_set(err, EV_EINVAL, "data cannot be encoded as JSON");
    }
    put(&w, "}", 1);
    if (w.too_big)
        rc = ev_error_set(err, EV_ETOOBIG, "record over the %zu byte limit", w.max);
    else if (w.nomem)
        rc = ev_error_set(err, EV_ENOMEM, "envelope serialize: out of memory");
    if (rc != 0) {
        free(w.buf);
        return rc;
    }
    w.buf[w.len] = '\0';
    *out = w.buf;
    *len = w.len;
    return 0;
}
