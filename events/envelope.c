/* SPDX-License-Identifier: MIT */
/* The CloudEvents 1.0 structured-mode envelope: build, derive and parse (the
 * reference path; envelope_fast.c has the fast one) with the record limits of
 * DESIGN.md. Serializing is envelope_serialize.c, ids and time envelope_ids.c. */
#include "envelope.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope_internal.h"

const ev_limits ev_limits_default = {.max_record = 65536, .max_depth = 32};

/* ---- UTF-8 and nesting pre-scan ---------------------------------------- */

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), 0 when invalid. s[0] >= 0x80. */
size_t ev_env_utf8_seq(const unsigned char *s, size_t n)
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

bool ev_env_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = ev_env_utf8_seq(s + i, n - i);
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
            size_t k = ev_env_utf8_seq(s + i, n - i);
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

/* ---- parse ------------------------------------------------------------ */

const attr_spec ev_env_attr_specs[] = {
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
    for (size_t i = 0; i < sizeof(ev_env_attr_specs) / sizeof(ev_env_attr_specs[0]);
         i++) {
        int rc = copy_attr(out, root, &ev_env_attr_specs[i], err);
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
    if (out->time[0] != '\0' && !ev_env_time_parse(out->time, &t))
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

/* String bytes by class, for the fast parser and the serializer. */
#define C4 S_CTRL, S_CTRL, S_CTRL, S_CTRL
#define X4 S_HIGH, S_HIGH, S_HIGH, S_HIGH
#define X32 X4, X4, X4, X4, X4, X4, X4, X4
const unsigned char ev_env_str_class[256] = {
    C4,           C4,  C4,  C4,  C4, C4, C4, C4, ['"'] = S_QUOTE, ['\\'] = S_BSLASH,
    [0x80] = X32, X32, X32, X32,
};
#undef X32
#undef X4
#undef C4

/* The reference path, for every record the fast path gives up on: prescan,
 * then jansson builds the whole record and the attributes are read from it.
 * Words the exact error; out is zeroed on error. */
static int jansson_parse(ev_envelope *out, const void *buf, size_t len, int max_depth,
                         bool build, ev_error *err)
{
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
    if (build)
        out->data = json_incref(json_object_get(root, "data"));
cleanup:
    json_decref(root);
    if (rc != 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

static int parse_impl(ev_envelope *out, const void *buf, size_t len, const ev_limits *lim,
                      bool build, ev_error *err)
{
    if (out == NULL || (buf == NULL && len > 0))
        return ev_error_set(err, EV_EINVAL, "envelope parse: null argument");
    memset(out, 0, sizeof(*out));
    size_t max_record = lim && lim->max_record ? lim->max_record : 65536;
    int max_depth = lim && lim->max_depth > 0 ? lim->max_depth : 32;
    if (len > max_record)
        return ev_error_set(err, EV_ETOOBIG, "record of %zu bytes over the %zu limit",
                            len, max_record);
    if (ev_env_fast_parse(out, buf, len, max_depth, build))
        return 0;
    return jansson_parse(out, buf, len, max_depth, build, err);
}

int ev_envelope_parse(ev_envelope *out, const void *buf, size_t len, const ev_limits *lim,
                      ev_error *err)
{
    return parse_impl(out, buf, len, lim, true, err);
}

int ev_envelope_parse_head(ev_envelope *out, const void *buf, size_t len,
                           const ev_limits *lim, ev_error *err)
{
    return parse_impl(out, buf, len, lim, false, err);
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

/* "<cause id>/<type>/<index>", truncated to cap like snprintf (ids never are). */
static void derive_name(char *out, size_t cap, const char *id, const char *type,
                        unsigned index)
{
    char num[16], *q = num + sizeof(num);
    do {
        *--q = (char)('0' + index % 10);
        index /= 10;
    } while (index != 0);
    const char *parts[] = {id, "/", type, "/"};
    size_t n = 0;
    for (size_t i = 0; i < 4; i++) {
        size_t k = strnlen(parts[i], cap - 1 - n);
        memcpy(out + n, parts[i], k);
        n += k;
    }
    size_t k = (size_t)(num + sizeof(num) - q);
    k = k < cap - 1 - n ? k : cap - 1 - n;
    memcpy(out + n, q, k);
    out[n + k] = '\0';
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
    derive_name(name, sizeof(name), cause->id, type, index);
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

int ev_envelope_data_str(const ev_envelope *e, const char *field, const char **out,
                         ev_error *err)
{
    *out = json_string_value(json_object_get(e->data, field));
    if (*out == NULL || **out == '\0')
        return ev_error_set(err, EV_ESCHEMA, "%s without %s", e->type, field);
    return 0;
}
