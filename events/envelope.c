/* SPDX-License-Identifier: MIT */
/* The CloudEvents 1.0 structured-mode envelope: build, derive, parse, serialize,
 * with the record limits of DESIGN.md; plus UUIDs and RFC 3339 time. */
#include "envelope.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

const ev_limits ev_limits_default = {.max_record = 65536, .max_depth = 32};

/* choreo's UUIDv5 namespace; never change it, derived ids depend on it. */
static const uuid_t ev_namespace = {0xc0, 0xe0, 0xf6, 0xa2, 0x5b, 0x7d, 0x4e, 0x1a,
                                    0x9c, 0x3f, 0x2d, 0x8b, 0x6a, 0x4e, 0x7f, 0x10};

/* ---- UTF-8 and nesting pre-scan ---------------------------------------- */

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), 0 when invalid. s[0] >= 0x80. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xbf;
    size_t len;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4;
    else
        return 0;
    if (n < len)
        return 0;
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

static bool utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = utf8_seq(s + i, n - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

enum { C_PLAIN, C_QUOTE, C_BSLASH, C_OPEN, C_CLOSE, C_HIGH };

#define H4 C_HIGH, C_HIGH, C_HIGH, C_HIGH
#define H32 H4, H4, H4, H4, H4, H4, H4, H4
static const unsigned char byte_class[256] = {
    ['"'] = C_QUOTE,
    ['\\'] = C_BSLASH,
    ['{'] = C_OPEN,
    ['['] = C_OPEN,
    ['}'] = C_CLOSE,
    [']'] = C_CLOSE,
    [0x80] = H32,
    H32,
    H32,
    H32,
};
#undef H32
#undef H4

/* One pass over the record: validates UTF-8 and measures container nesting
 * outside strings (the envelope object itself is level 1). UTF-8 errors win. */
static int prescan(const unsigned char *s, size_t n, int max_depth, ev_error *err)
{
    size_t i = 0, deep_at = (size_t)-1;
    int depth = 0;
    bool in_str = false;
    while (i < n) {
        while (byte_class[s[i]] == C_PLAIN)
            if (++i == n)
                goto done;
        switch (byte_class[s[i]]) {
        case C_QUOTE:
            in_str = !in_str;
            break;
        case C_BSLASH:
            if (in_str && i + 1 < n && s[i + 1] < 0x80)
                i++;
            break;
        case C_OPEN:
            if (!in_str && ++depth > max_depth && deep_at == (size_t)-1)
                deep_at = i;
            break;
        case C_CLOSE:
            if (!in_str)
                depth--;
            break;
        default: {
            size_t k = utf8_seq(s + i, n - i);
            if (k == 0)
                return ev_error_set(err, EV_EUTF8, "invalid UTF-8 at byte %zu", i);
            i += k;
            continue;
        }
        }
        i++;
    }
done:
    if (deep_at != (size_t)-1)
        return ev_error_set(err, EV_EDEPTH, "nesting deeper than %d at byte %zu",
                            max_depth, deep_at);
    return 0;
}

/* ---- time ------------------------------------------------------------- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, unsigned *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (unsigned)((int64_t)yoe + era * 400 + (*m <= 2));
}

static char *put_digits(char *p, unsigned v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

/* 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z in ms. */
#define EV_TIME_MIN (-62167219200000LL)
#define EV_TIME_LAST (253402300799999LL)

void ev_time_format(char out[EV_TIME_MAX], int64_t unix_ms)
{
    if (unix_ms < EV_TIME_MIN)
        unix_ms = EV_TIME_MIN;
    if (unix_ms > EV_TIME_LAST)
        unix_ms = EV_TIME_LAST;
    int64_t secs = unix_ms / 1000, ms = unix_ms % 1000;
    if (ms < 0) {
        ms += 1000;
        secs--;
    }
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    unsigned y, m, d;
    civil_from_days(days, &y, &m, &d);
    char *p = out;
    p = put_digits(p, y, 4);
    *p++ = '-';
    p = put_digits(p, m, 2);
    *p++ = '-';
    p = put_digits(p, d, 2);
    *p++ = 'T';
    p = put_digits(p, (unsigned)(sod / 3600), 2);
    *p++ = ':';
    p = put_digits(p, (unsigned)(sod / 60 % 60), 2);
    *p++ = ':';
    p = put_digits(p, (unsigned)(sod % 60), 2);
    *p++ = '.';
    p = put_digits(p, (unsigned)ms, 3);
    *p++ = 'Z';
    *p = '\0';
}

/* Reads exactly n digits at *s; false when one is missing. */
static bool get_digits(const char **s, int n, unsigned *v)
{
    unsigned r = 0;
    for (int i = 0; i < n; i++) {
        char c = (*s)[i];
        if (c < '0' || c > '9')
            return false;
        r = r * 10 + (unsigned)(c - '0');
    }
    *s += n;
    *v = r;
    return true;
}

static bool expect(const char **s, char c)
{
    if (**s != c)
        return false;
    (*s)++;
    return true;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
    static const unsigned char dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dim[m - 1];
}

/* Offset "Z" or "+hh:mm"/"-hh:mm" in minutes east of UTC. */
static bool parse_offset(const char **s, int64_t *minutes)
{
    char c = **s;
    if (c == 'Z' || c == 'z') {
        (*s)++;
        *minutes = 0;
        return true;
    }
    if (c != '+' && c != '-')
        return false;
    (*s)++;
    unsigned hh, mm;
    if (!get_digits(s, 2, &hh) || !expect(s, ':') || !get_digits(s, 2, &mm) || hh > 23 ||
        mm > 59)
        return false;
    *minutes = (int64_t)(hh * 60 + mm) * (c == '-' ? -1 : 1);
    return true;
}

static bool time_parse(const char *s, int64_t *out)
{
    unsigned y, mo, d, h, mi, sec, ms = 0;
    if (!get_digits(&s, 4, &y) || !expect(&s, '-') || !get_digits(&s, 2, &mo) ||
        !expect(&s, '-') || !get_digits(&s, 2, &d))
        return false;
    if (*s != 'T' && *s != 't')
        return false;
    s++;
    if (!get_digits(&s, 2, &h) || !expect(&s, ':') || !get_digits(&s, 2, &mi) ||
        !expect(&s, ':') || !get_digits(&s, 2, &sec))
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
        sec > 60)
        return false;
    if (*s == '.') {
        s++;
        if (*s < '0' || *s > '9')
            return false;
        for (unsigned scale = 100; *s >= '0' && *s <= '9'; s++, scale /= 10)
            ms += (unsigned)(*s - '0') * scale;
    }
    int64_t off;
    if (!parse_offset(&s, &off) || *s != '\0')
        return false;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    *out = secs * 1000 + ms - off * 60000;
    return true;
}

int64_t ev_time_parse(const char *s)
{
    int64_t t;
    if (s == NULL || !time_parse(s, &t))
        return -1;
    return t;
}

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ev_now_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

int64_t ev_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

/* ---- UUIDs ------------------------------------------------------------ */

void ev_uuid4(char out[EV_UUID_LEN])
{
    uuid_t u;
    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
}

void ev_uuid5(char out[EV_UUID_LEN], const char *name)
{
    uuid_t u;
    uuid_generate_sha1(u, ev_namespace, name, strlen(name));
    uuid_unparse_lower(u, out);
}

/* ---- parse ------------------------------------------------------------ */

typedef struct attr_spec {
    const char *name;
    size_t off; /* offset of the buffer in ev_envelope */
    size_t cap;
    bool required;
} attr_spec;

static const attr_spec attr_specs[] = {
    {"id", offsetof(ev_envelope, id), EV_ID_MAX, true},
    {"source", offsetof(ev_envelope, source), EV_SOURCE_MAX, true},
    {"type", offsetof(ev_envelope, type), EV_TYPE_MAX, true},
    {"subject", offsetof(ev_envelope, subject), EV_SUBJECT_MAX, false},
    {"time", offsetof(ev_envelope, time), EV_TIME_MAX, false},
    {"correlationid", offsetof(ev_envelope, correlationid), EV_ID_MAX, false},
    {"causationid", offsetof(ev_envelope, causationid), EV_ID_MAX, false},
};

/* Known attributes we do not keep but whose type we check. */
static const char *const string_only_attrs[] = {"datacontenttype", "dataschema"};

static int check_spec(json_t *root, ev_error *err)
{
    json_t *v = json_object_get(root, "specversion");
    if (v == NULL)
        return ev_error_set(err, EV_ESPEC, "specversion missing");
    if (!json_is_string(v))
        return ev_error_set(err, EV_ESPEC, "specversion is not a string");
    if (strcmp(json_string_value(v), "1.0") != 0)
        return ev_error_set(err, EV_ESPEC, "specversion \"%.16s\" is not 1.0",
                            json_string_value(v));
    return 0;
}

static int copy_attr(ev_envelope *out, json_t *root, const attr_spec *a, ev_error *err)
{
    json_t *v = json_object_get(root, a->name);
    if (v == NULL) {
        if (a->required)
            return ev_error_set(err, EV_EATTR, "attribute %s missing", a->name);
        return 0;
    }
    if (!json_is_string(v))
        return ev_error_set(err, EV_EATTR, "attribute %s is not a string", a->name);
    size_t len = json_string_length(v);
    if (len == 0 && a->required)
        return ev_error_set(err, EV_EATTR, "attribute %s is empty", a->name);
    if (len >= a->cap)
        return ev_error_set(err, EV_EATTR, "attribute %s longer than %zu bytes", a->name,
                            a->cap - 1);
    memcpy((char *)out + a->off, json_string_value(v), len + 1);
    return 0;
}

static int read_attrs(ev_envelope *out, json_t *root, ev_error *err)
{
    for (size_t i = 0; i < sizeof(attr_specs) / sizeof(attr_specs[0]); i++) {
        int rc = copy_attr(out, root, &attr_specs[i], err);
        if (rc != 0)
            return rc;
    }
    for (size_t i = 0; i < sizeof(string_only_attrs) / sizeof(string_only_attrs[0]);
         i++) {
        json_t *v = json_object_get(root, string_only_attrs[i]);
        if (v != NULL && !json_is_string(v))
            return ev_error_set(err, EV_EATTR, "attribute %s is not a string",
                                string_only_attrs[i]);
    }
    if (json_object_get(root, "data_base64") != NULL)
        return ev_error_set(err, EV_EATTR, "attribute data_base64 is not supported");
    int64_t t;
    if (out->time[0] != '\0' && !time_parse(out->time, &t))
        return ev_error_set(err, EV_EATTR, "attribute time is not RFC 3339");
    return 0;
}

static int load_json(json_t **root, const char *buf, size_t len, ev_error *err)
{
    json_error_t jerr;
    *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (*root != NULL)
        return 0;
    if (json_error_code(&jerr) == json_error_duplicate_key ||
        strstr(jerr.text, "duplicate object key") != NULL)
        return ev_error_set(err, EV_EDUPKEY, "%s at byte %d", jerr.text, jerr.position);
    if (json_error_code(&jerr) == json_error_out_of_memory)
        return ev_error_set(err, EV_ENOMEM, "out of memory parsing record");
    return ev_error_set(err, EV_EPARSE, "%s at byte %d", jerr.text, jerr.position);
}

int ev_envelope_parse(ev_envelope *out, const void *buf, size_t len, const ev_limits *lim,
                      ev_error *err)
{
    if (out == NULL || (buf == NULL && len > 0))
        return ev_error_set(err, EV_EINVAL, "envelope parse: null argument");
    memset(out, 0, sizeof(*out));
    size_t max_record = lim && lim->max_record ? lim->max_record : 65536;
    int max_depth = lim && lim->max_depth > 0 ? lim->max_depth : 32;
    if (len > max_record)
        return ev_error_set(err, EV_ETOOBIG, "record of %zu bytes over the %zu limit",
                            len, max_record);
    int rc = prescan(buf, len, max_depth, err);
    if (rc != 0)
        return rc;
    json_t *root = NULL;
    rc = load_json(&root, buf, len, err);
    if (rc != 0)
        return rc;
    if (!json_is_object(root)) {
        rc = ev_error_set(err, EV_EPARSE, "envelope is not a JSON object");
        goto cleanup;
    }
    rc = check_spec(root, err);
    if (rc == 0)
        rc = read_attrs(out, root, err);
    if (rc != 0)
        goto cleanup;
    out->data = json_incref(json_object_get(root, "data"));
cleanup:
    json_decref(root);
    if (rc != 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

/* ---- build ------------------------------------------------------------ */

/* Copies s (NULL = "") into dst of cap bytes; false when it does not fit. */
static bool copy_str(char *dst, size_t cap, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n >= cap)
        return false;
    if (n > 0)
        memcpy(dst, s, n);
    dst[n] = '\0';
    return true;
}

static int fill_common(ev_envelope *out, const char *type, const char *source,
                       const char *subject, ev_error *err)
{
    if (type == NULL || type[0] == '\0' || source == NULL || source[0] == '\0')
        return ev_error_set(err, EV_EINVAL, "event needs a type and a source");
    if (!copy_str(out->type, sizeof(out->type), type))
        return ev_error_set(err, EV_EINVAL, "type longer than %d bytes", EV_TYPE_MAX - 1);
    if (!copy_str(out->source, sizeof(out->source), source))
        return ev_error_set(err, EV_EINVAL, "source longer than %d bytes",
                            EV_SOURCE_MAX - 1);
    if (!copy_str(out->subject, sizeof(out->subject), subject))
        return ev_error_set(err, EV_EINVAL, "subject longer than %d bytes",
                            EV_SUBJECT_MAX - 1);
    ev_time_format(out->time, ev_now_ms());
    return 0;
}

int ev_envelope_init(ev_envelope *out, const char *type, const char *source,
                     const char *subject, json_t *data, ev_error *err)
{
    if (out == NULL) {
        json_decref(data);
        return ev_error_set(err, EV_EINVAL, "envelope init: null envelope");
    }
    memset(out, 0, sizeof(*out));
    int rc = fill_common(out, type, source, subject, err);
    if (rc != 0) {
        json_decref(data);
        memset(out, 0, sizeof(*out));
        return rc;
    }
    ev_uuid4(out->id);
    memcpy(out->correlationid, out->id, EV_UUID_LEN);
    out->data = data;
    return 0;
}

int ev_envelope_derive(ev_envelope *out, const ev_envelope *cause, const char *type,
                       const char *source, const char *subject, unsigned index,
                       json_t *data, ev_error *err)
{
    int rc;
    if (out == NULL || cause == NULL || cause->id[0] == '\0') {
        rc = ev_error_set(err, EV_EINVAL, "envelope derive: needs a cause with an id");
        goto fail;
    }
    memset(out, 0, sizeof(*out));
    rc = fill_common(out, type, source, subject, err);
    if (rc != 0)
        goto fail;
    char name[EV_ID_MAX + EV_TYPE_MAX + 16];
    snprintf(name, sizeof(name), "%s/%s/%u", cause->id, type, index);
    ev_uuid5(out->id, name);
    const char *corr = cause->correlationid[0] ? cause->correlationid : cause->id;
    copy_str(out->correlationid, sizeof(out->correlationid), corr);
    copy_str(out->causationid, sizeof(out->causationid), cause->id);
    out->data = data;
    return 0;
fail:
    json_decref(data);
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    return rc;
}

void ev_envelope_clear(ev_envelope *e)
{
    if (e == NULL)
        return;
    json_decref(e->data);
    memset(e, 0, sizeof(*e));
}

/* ---- serialize -------------------------------------------------------- */

typedef struct writer {
    char *buf;
    size_t len, cap, max;
    bool too_big, nomem;
} writer;

static int put(writer *w, const char *s, size_t n)
{
    if (w->len + n > w->max) {
        w->too_big = true;
        return -1;
    }
    if (w->len + n + 1 > w->cap) {
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
    }
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
    char tmp[EV_SOURCE_MAX * 6 + 64];
    size_t n = 0;
    tmp[n++] = ',';
    tmp[n++] = '"';
    size_t nl = strlen(name);
    memcpy(tmp + n, name, nl);
    n += nl;
    memcpy(tmp + n, "\":\"", 3);
    n += 3;
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (*p == '"' || *p == '\\') {
            tmp[n++] = '\\';
            tmp[n++] = (char)*p;
        } else if (*p < 0x20) {
            n += (size_t)snprintf(tmp + n, 7, "\\u%04x", *p);
        } else {
            tmp[n++] = (char)*p;
        }
    }
    tmp[n++] = '"';
    return put(w, tmp, n);
}

static int check_out_attrs(const ev_envelope *e, ev_error *err)
{
    if (e->id[0] == '\0' || e->source[0] == '\0' || e->type[0] == '\0')
        return ev_error_set(err, EV_EATTR, "envelope needs id, source and type");
    for (size_t i = 0; i < sizeof(attr_specs) / sizeof(attr_specs[0]); i++) {
        const char *v = (const char *)e + attr_specs[i].off;
        size_t n = strnlen(v, attr_specs[i].cap);
        if (n == attr_specs[i].cap)
            return ev_error_set(err, EV_EATTR, "attribute %s not terminated",
                                attr_specs[i].name);
        if (!utf8_valid(v, n))
            return ev_error_set(err, EV_EUTF8, "attribute %s is not UTF-8",
                                attr_specs[i].name);
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
        if (json_dump_callback(e->data, dump_cb, &w, JSON_COMPACT | JSON_ENCODE_ANY) !=
                0 &&
            !w.too_big && !w.nomem)
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
