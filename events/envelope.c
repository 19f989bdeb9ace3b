/* SPDX-License-Identifier: MIT */
/* The CloudEvents 1.0 structured-mode envelope: build, derive, parse, serialize,
 * with the record limits of DESIGN.md; plus UUIDs and RFC 3339 time. */
#include "envelope.h"

#include <math.h>
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

/* SHA-1 (FIPS 180-4) of namespace || name, for UUIDv5: libuuid's own is about
 * three times slower, and derived ids are made for every emitted event. */
static uint32_t rol32(uint32_t x, int n)
{
    return x << n | x >> (32 - n);
}

/* One round, unrolled by the callers with the five words rotating by name
 * (no moves); w is the 16-word rolling schedule. */
#define SHA1_W(i)                                                                        \
    (w[(i)&15] = rol32(                                                                  \
         w[((i) + 13) & 15] ^ w[((i) + 8) & 15] ^ w[((i) + 2) & 15] ^ w[(i)&15], 1))
#define SHA1_R(a, b, c, d, e, f, k, wi)                                                  \
    do {                                                                                 \
        e += rol32(a, 5) + (f) + (k) + (wi);                                             \
        b = rol32(b, 30);                                                                \
    } while (0)
#define SHA1_F1(b, c, d) ((d) ^ ((b) & ((c) ^ (d))))
#define SHA1_F2(b, c, d) ((b) ^ (c) ^ (d))
#define SHA1_F3(b, c, d) (((b) & (c)) | ((d) & ((b) | (c))))
#define SHA1_5(F, k, i, W)                                                               \
    do {                                                                                 \
        SHA1_R(a, b, c, d, e, F(b, c, d), k, W(i));                                      \
        SHA1_R(e, a, b, c, d, F(a, b, c), k, W(i + 1));                                  \
        SHA1_R(d, e, a, b, c, F(e, a, b), k, W(i + 2));                                  \
        SHA1_R(c, d, e, a, b, F(d, e, a), k, W(i + 3));                                  \
        SHA1_R(b, c, d, e, a, F(c, d, e), k, W(i + 4));                                  \
    } while (0)
#define SHA1_W0(i) w[i]

static void sha1_block(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[16];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    SHA1_5(SHA1_F1, 0x5a827999u, 0, SHA1_W0);
    SHA1_5(SHA1_F1, 0x5a827999u, 5, SHA1_W0);
    SHA1_5(SHA1_F1, 0x5a827999u, 10, SHA1_W0);
    SHA1_R(a, b, c, d, e, SHA1_F1(b, c, d), 0x5a827999u, w[15]);
    SHA1_R(e, a, b, c, d, SHA1_F1(a, b, c), 0x5a827999u, SHA1_W(16));
    SHA1_R(d, e, a, b, c, SHA1_F1(e, a, b), 0x5a827999u, SHA1_W(17));
    SHA1_R(c, d, e, a, b, SHA1_F1(d, e, a), 0x5a827999u, SHA1_W(18));
    SHA1_R(b, c, d, e, a, SHA1_F1(c, d, e), 0x5a827999u, SHA1_W(19));
    for (int i = 20; i < 40; i += 5)
        SHA1_5(SHA1_F2, 0x6ed9eba1u, i, SHA1_W);
    for (int i = 40; i < 60; i += 5)
        SHA1_5(SHA1_F3, 0x8f1bbcdcu, i, SHA1_W);
    for (int i = 60; i < 80; i += 5)
        SHA1_5(SHA1_F2, 0xca62c1d6u, i, SHA1_W);
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}
#undef SHA1_W0
#undef SHA1_5
#undef SHA1_F3
#undef SHA1_F2
#undef SHA1_F1
#undef SHA1_R
#undef SHA1_W

/* The first 16 bytes of SHA-1(ns || name). */
static void sha1_ns(unsigned char out[16], const unsigned char ns[16], const char *name,
                    size_t n)
{
    uint32_t h[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    unsigned char blk[64];
    uint64_t bits = (uint64_t)(16 + n) * 8;
    size_t used = 0, fill = 16;
    memcpy(blk, ns, 16);
    for (;;) {
        size_t take = n - used < 64 - fill ? n - used : 64 - fill;
        memcpy(blk + fill, name + used, take);
        used += take;
        fill += take;
        if (fill < 64)
            break;
        sha1_block(h, blk);
        fill = 0;
    }
    blk[fill++] = 0x80;
    if (fill > 56) {
        memset(blk + fill, 0, 64 - fill);
        sha1_block(h, blk);
        fill = 0;
    }
    memset(blk + fill, 0, 56 - fill);
    for (int i = 0; i < 8; i++)
        blk[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
    sha1_block(h, blk);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            out[4 * i + j] = (unsigned char)(h[i] >> (24 - 8 * j));
}

static void uuid_format(char out[EV_UUID_LEN], const unsigned char u[16])
{
    static const char hex[] = "0123456789abcdef";
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[u[i] >> 4];
        *p++ = hex[u[i] & 15];
    }
    *p = '\0';
}

void ev_uuid5(char out[EV_UUID_LEN], const char *name)
{
    unsigned char u[16];
    sha1_ns(u, ev_namespace, name, strlen(name));
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x50); /* version 5 */
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    uuid_format(out, u);
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

/* ---- fast path -------------------------------------------------------- */

/* One pass over the record that fills the envelope and builds data with
 * jansson's constructors, for the records services exchange. It only accepts
 * what the jansson path below accepts, with an equal result; anything else
 * (every error, escaped top-level keys, integers over 18 digits, deep nesting,
 * many extension attributes...) makes it give up, and the caller takes the
 * jansson path, which also words the exact error. */

#define FP_MAX_DEPTH 64 /* deeper records take the jansson path (bounded stack) */
#define FP_MAX_KEYS 32  /* keys per object checked for duplicates without building */

typedef struct fp {
    const unsigned char *s, *end;
    int max_depth;
} fp;

typedef struct span {
    const unsigned char *p;
    size_t n;
} span;

enum { S_PLAIN, S_QUOTE, S_BSLASH, S_CTRL, S_HIGH };

#define C4 S_CTRL, S_CTRL, S_CTRL, S_CTRL
#define X4 S_HIGH, S_HIGH, S_HIGH, S_HIGH
#define X32 X4, X4, X4, X4, X4, X4, X4, X4
static const unsigned char str_class[256] = {
    C4,           C4,  C4,  C4,  C4, C4, C4, C4, ['"'] = S_QUOTE, ['\\'] = S_BSLASH,
    [0x80] = X32, X32, X32, X32,
};
#undef X32
#undef X4
#undef C4

static void fp_ws(fp *p)
{
    while (p->s < p->end &&
           (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
        p->s++;
}

static bool fp_char(fp *p, unsigned char c)
{
    if (p->s == p->end || *p->s != c)
        return false;
    p->s++;
    return true;
}

static bool fp_u4(const unsigned char *s, const unsigned char *end, uint32_t *v)
{
    if (end - s < 6 || s[0] != '\\' || s[1] != 'u')
        return false;
    uint32_t r = 0;
    for (int i = 2; i < 6; i++) {
        unsigned char c = s[i];
        unsigned h = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (h == 16)
            return false;
        r = r << 4 | h;
    }
    *v = r;
    return true;
}

/* The escape at s (a backslash): its code point and length; false where
 * jansson refuses it (unknown escape, \u0000, lone or reversed surrogates). */
static bool fp_escape(const unsigned char *s, const unsigned char *end, uint32_t *cp,
                      size_t *len)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    if (end - s < 2)
        return false;
    if (s[1] != 'u') {
        const char *q = s[1] ? strchr(from, s[1]) : NULL;
        if (q == NULL)
            return false;
        *cp = (unsigned char)to[q - from];
        *len = 2;
        return true;
    }
    uint32_t v, lo;
    if (!fp_u4(s, end, &v) || v == 0 || (v >= 0xdc00 && v <= 0xdfff))
        return false;
    *len = 6;
    if (v >= 0xd800 && v <= 0xdbff) {
        if (!fp_u4(s + 6, end, &lo) || lo < 0xdc00 || lo > 0xdfff)
            return false;
        v = 0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00);
        *len = 12;
    }
    *cp = v;
    return true;
}

/* Past the bytes of s that need no attention in a string (a quote, a backslash,
 * a control character or a byte above 0x7f stops it), 4 at a time (S_PLAIN is 0). */
static const unsigned char *plain_run(const unsigned char *s, const unsigned char *end)
{
    while (end - s >= 4 &&
           (str_class[s[0]] | str_class[s[1]] | str_class[s[2]] | str_class[s[3]]) == 0)
        s += 4;
    while (s < end && str_class[*s] == S_PLAIN)
        s++;
    return s;
}

/* The string after an opening quote, to its closing quote: raw bytes in *raw,
 * *esc when it holds escapes. UTF-8, control characters and escapes checked. */
static bool fp_string(fp *p, span *raw, bool *esc)
{
    const unsigned char *s = p->s, *end = p->end;
    *esc = false;
    for (;;) {
        s = plain_run(s, end);
        if (s == end)
            return false;
        size_t k = 0;
        uint32_t cp;
        switch (str_class[*s]) {
        case S_QUOTE:
            *raw = (span){p->s, (size_t)(s - p->s)};
            p->s = s + 1;
            return true;
        case S_BSLASH:
            *esc = true;
            if (!fp_escape(s, end, &cp, &k))
                return false;
            break;
        case S_HIGH:
            k = utf8_seq(s, (size_t)(end - s));
            break;
        default:
            return false;
        }
        if (k == 0)
            return false;
        s += k;
    }
}

static size_t utf8_put(unsigned char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xc0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decodes a checked raw string into out (room for raw.n bytes; never longer). */
static size_t fp_decode(span raw, char *out)
{
    unsigned char *o = (unsigned char *)out;
    const unsigned char *s = raw.p, *end = raw.p + raw.n;
    while (s < end) {
        uint32_t cp;
        size_t k;
        if (*s != '\\' || !fp_escape(s, end, &cp, &k)) {
            *o++ = *s++;
            continue;
        }
        o += utf8_put(o, cp);
        s += k;
    }
    return (size_t)(o - (unsigned char *)out);
}

/* A decoded copy of raw: in small when it fits, else malloc'd into *heap. */
static char *fp_text(span raw, bool esc, char *small, size_t cap, char **heap, size_t *n)
{
    *heap = NULL;
    *n = raw.n;
    if (!esc)
        return (char *)raw.p;
    char *dst = raw.n < cap ? small : (*heap = malloc(raw.n + 1));
    if (dst != NULL)
        *n = fp_decode(raw, dst);
    return dst;
}

static bool is_digit(const unsigned char *s, const unsigned char *end)
{
    return s < end && *s >= '0' && *s <= '9';
}

static const unsigned char *skip_digits(const unsigned char *s, const unsigned char *end)
{
    while (is_digit(s, end))
        s++;
    return s;
}

/* A number as jansson reads it: an integer without fraction or exponent (here
 * up to 18 digits), else a real through strtod (overflow refused). */
static bool fp_number(fp *p, json_t **out)
{
    const unsigned char *s = p->s, *end = p->end, *start = s;
    bool real = false;
    if (*s == '-')
        s++;
    const unsigned char *d0 = s;
    if (!is_digit(s, end) || (*s == '0' && is_digit(s + 1, end)))
        return false;
    s = skip_digits(s, end);
    size_t ndig = (size_t)(s - d0);
    if (s < end && *s == '.') {
        real = true;
        if (!is_digit(++s, end))
            return false;
        s = skip_digits(s, end);
    }
    if (s < end && (*s == 'e' || *s == 'E')) {
        real = true;
        if (++s < end && (*s == '+' || *s == '-'))
            s++;
        if (!is_digit(s, end))
            return false;
        s = skip_digits(s, end);
    }
    p->s = s;
    if (!real) {
        if (ndig > 18)
            return false;
        json_int_t v = 0;
        for (const unsigned char *q = d0; q < s; q++)
            v = v * 10 + (*q - '0');
        if (out != NULL)
            *out = json_integer(*start == '-' ? -v : v);
        return out == NULL || *out != NULL;
    }
    char tmp[64], *e = NULL;
    size_t n = (size_t)(s - start);
    if (n >= sizeof(tmp))
        return false;
    memcpy(tmp, start, n);
    tmp[n] = '\0';
    double d = strtod(tmp, &e);
    if (e != tmp + n || d == HUGE_VAL || d == -HUGE_VAL)
        return false;
    if (out != NULL)
        *out = json_real(d);
    return out == NULL || *out != NULL;
}

static bool fp_value(fp *p, int depth, json_t **out);

static bool fp_array(fp *p, int depth, json_t **out)
{
    json_t *arr = NULL;
    if (out != NULL && (arr = json_array()) == NULL)
        return false;
    p->s++;
    fp_ws(p);
    bool ok = fp_char(p, ']');
    while (!ok) {
        json_t *v = NULL;
        if (!fp_value(p, depth + 1, out ? &v : NULL) ||
            (out != NULL && json_array_append_new(arr, v) != 0))
            break;
        fp_ws(p);
        if (fp_char(p, ']'))
            ok = true;
        else if (fp_char(p, ','))
            fp_ws(p);
        else
            break;
    }
    if (ok && out != NULL)
        *out = arr;
    else
        json_decref(arr);
    return ok;
}

/* Built: sets key = value, false on a duplicate key. */
static bool fp_member_build(fp *p, int depth, json_t *obj, span k, bool esc)
{
    char small[128], *heap = NULL;
    size_t n = 0;
    const char *key = fp_text(k, esc, small, sizeof(small), &heap, &n);
    json_t *v = NULL;
    bool ok = key != NULL && fp_value(p, depth + 1, &v);
    if (ok) {
        size_t before = json_object_size(obj);
        ok = json_object_setn_new_nocheck(obj, key, n, v) == 0 &&
             json_object_size(obj) == before + 1;
    }
    free(heap);
    return ok;
}

/* Unbuilt: keys compared raw (escaped keys give up), then the value checked. */
static bool fp_member_check(fp *p, int depth, span *keys, size_t *nk, span k, bool esc)
{
    if (esc || *nk == FP_MAX_KEYS)
        return false;
    for (size_t i = 0; i < *nk; i++)
        if (keys[i].n == k.n && memcmp(keys[i].p, k.p, k.n) == 0)
            return false;
    keys[(*nk)++] = k;
    return fp_value(p, depth + 1, NULL);
}

static bool fp_object(fp *p, int depth, json_t **out)
{
    json_t *obj = NULL;
    span keys[FP_MAX_KEYS];
    size_t nk = 0;
    if (out != NULL && (obj = json_object()) == NULL)
        return false;
    p->s++;
    fp_ws(p);
    bool ok = fp_char(p, '}');
    while (!ok) {
        span k;
        bool esc;
        if (!fp_char(p, '"') || !fp_string(p, &k, &esc))
            break;
        fp_ws(p);
        if (!fp_char(p, ':'))
            break;
        fp_ws(p);
        if (out != NULL ? !fp_member_build(p, depth, obj, k, esc)
                        : !fp_member_check(p, depth, keys, &nk, k, esc))
            break;
        fp_ws(p);
        if (fp_char(p, '}'))
            ok = true;
        else if (fp_char(p, ','))
            fp_ws(p);
        else
            break;
    }
    if (ok && out != NULL)
        *out = obj;
    else
        json_decref(obj);
    return ok;
}

static bool fp_lit(fp *p, const char *lit, size_t n)
{
    if ((size_t)(p->end - p->s) < n || memcmp(p->s, lit, n) != 0)
        return false;
    p->s += n;
    return true;
}

/* The value at p->s (no leading space); depth = its level if a container.
 * out NULL: checked, not built. */
static bool fp_value(fp *p, int depth, json_t **out)
{
    if (p->s == p->end)
        return false;
    unsigned char c = *p->s;
    if ((c == '{' || c == '[') && depth > p->max_depth)
        return false;
    if (c == '{')
        return fp_object(p, depth, out);
    if (c == '[')
        return fp_array(p, depth, out);
    if (c == '-' || (c >= '0' && c <= '9'))
        return fp_number(p, out);
    json_t *v = NULL;
    if (c == '"') {
        span raw;
        bool esc;
        p->s++;
        if (!fp_string(p, &raw, &esc))
            return false;
        if (out == NULL)
            return true;
        char small[256], *heap = NULL;
        size_t n = 0;
        const char *t = fp_text(raw, esc, small, sizeof(small), &heap, &n);
        v = t ? json_stringn_nocheck(t, n) : NULL;
        free(heap);
    } else if (fp_lit(p, "true", 4)) {
        v = json_true();
    } else if (fp_lit(p, "false", 5)) {
        v = json_false();
    } else if (fp_lit(p, "null", 4)) {
        v = json_null();
    } else {
        return false;
    }
    if (out != NULL)
        *out = v;
    return v != NULL;
}

/* Top-level members the fast path knows; attr_specs come first, same order. */
enum { T_SPEC = 7, T_DCT, T_DSCHEMA, T_DATA, T_DATA64, T_COUNT };
static const char *const top_names[T_COUNT] = {
    "id",          "source",      "type",
    "subject",     "time",        "correlationid",
    "causationid", "specversion", "datacontenttype",
    "dataschema",  "data",        "data_base64",
};

typedef struct fp_env {
    unsigned seen; /* bit per top_names entry */
    span ext[FP_MAX_KEYS];
    size_t n_ext;
    json_t *data;
} fp_env;

static int top_index(span k)
{
    static const unsigned char len[T_COUNT] = {2, 6, 4, 7, 4, 13, 11, 11, 15, 10, 4, 11};
    for (int i = 0; i < T_COUNT; i++)
        if (len[i] == k.n && top_names[i][0] == k.p[0] &&
            memcmp(top_names[i], k.p, k.n) == 0)
            return i;
    return -1;
}

/* A string attribute's value into its envelope field (length rules of copy_attr). */
static bool fp_attr(fp *p, ev_envelope *out, const attr_spec *a)
{
    span v;
    bool esc;
    if (!fp_char(p, '"') || !fp_string(p, &v, &esc))
        return false;
    char tmp[EV_SOURCE_MAX * 6], *heap = NULL;
    size_t n = 0;
    const char *t = fp_text(v, esc, tmp, sizeof(tmp), &heap, &n);
    bool ok = t != NULL && n < a->cap && (n > 0 || !a->required);
    if (ok) {
        memcpy((char *)out + a->off, t, n);
        ((char *)out + a->off)[n] = '\0';
    }
    free(heap);
    return ok;
}

static bool fp_top_member(fp *p, ev_envelope *out, fp_env *env, span k, bool build)
{
    int i = top_index(k);
    if (i < 0) { /* extension attribute: any value, no duplicates */
        if (env->n_ext == FP_MAX_KEYS)
            return false;
        for (size_t j = 0; j < env->n_ext; j++)
            if (env->ext[j].n == k.n && memcmp(env->ext[j].p, k.p, k.n) == 0)
                return false;
        env->ext[env->n_ext++] = k;
        return fp_value(p, 2, NULL);
    }
    if ((env->seen & 1u << i) != 0 || i == T_DATA64)
        return false;
    env->seen |= 1u << i;
    if (i < T_SPEC)
        return fp_attr(p, out, &attr_specs[i]);
    if (i == T_DATA)
        return fp_value(p, 2, build ? &env->data : NULL);
    span v;
    bool esc;
    if (!fp_char(p, '"') || !fp_string(p, &v, &esc))
        return false;
    return i != T_SPEC || (!esc && v.n == 3 && memcmp(v.p, "1.0", 3) == 0);
}

static bool fp_envelope(fp *p, ev_envelope *out, fp_env *env, bool build)
{
    fp_ws(p);
    if (!fp_char(p, '{'))
        return false;
    fp_ws(p);
    for (;;) {
        span k;
        bool esc;
        if (!fp_char(p, '"') || !fp_string(p, &k, &esc) || esc)
            return false;
        fp_ws(p);
        if (!fp_char(p, ':'))
            return false;
        fp_ws(p);
        if (!fp_top_member(p, out, env, k, build))
            return false;
        fp_ws(p);
        if (fp_char(p, '}'))
            break;
        if (!fp_char(p, ','))
            return false;
        fp_ws(p);
    }
    fp_ws(p);
    unsigned need = 1u << T_SPEC | 1u << 0 | 1u << 1 | 1u << 2;
    int64_t t;
    return p->s == p->end && (env->seen & need) == need &&
           (out->time[0] == '\0' || time_parse(out->time, &t));
}

/* true: out is what the jansson path would give (data built only when build). */
static bool fast_parse(ev_envelope *out, const void *buf, size_t len, int max_depth,
                       bool build)
{
    fp p = {buf, (const unsigned char *)buf + len,
            max_depth < FP_MAX_DEPTH ? max_depth : FP_MAX_DEPTH};
    fp_env env = {0};
    if (len > 0 && fp_envelope(&p, out, &env, build)) {
        out->data = env.data;
        return true;
    }
    json_decref(env.data);
    memset(out, 0, sizeof(*out));
    return false;
}

bool ev_envelope_peek_type(const void *buf, size_t len, char type[EV_TYPE_MAX])
{
    fp p = {buf, (const unsigned char *)buf + len, ev_limits_default.max_depth};
    if (buf == NULL || type == NULL)
        return false;
    fp_ws(&p);
    if (!fp_char(&p, '{'))
        return false;
    for (;;) {
        span k, v;
        bool esc;
        fp_ws(&p);
        if (!fp_char(&p, '"') || !fp_string(&p, &k, &esc) || esc)
            return false;
        fp_ws(&p);
        if (!fp_char(&p, ':'))
            return false;
        fp_ws(&p);
        if (k.n == 4 && memcmp(k.p, "type", 4) == 0) {
            if (!fp_char(&p, '"') || !fp_string(&p, &v, &esc) || esc || v.n == 0 ||
                v.n >= EV_TYPE_MAX)
                return false;
            memcpy(type, v.p, v.n);
            type[v.n] = '\0';
            return true;
        }
        if (!fp_value(&p, 2, NULL))
            return false;
        fp_ws(&p);
        if (!fp_char(&p, ','))
            return false;
    }
}

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
    if (fast_parse(out, buf, len, max_depth, build))
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
        const unsigned char *run = plain_run(p, end);
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
        s = plain_run(s, end);
        if (s > run)
            put(w, (const char *)run, (size_t)(s - run));
        if (s == end)
            break;
        if (*s >= 0x80) {
            size_t k = utf8_seq(s, (size_t)(end - s));
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

int ev_envelope_data_str(const ev_envelope *e, const char *field, const char **out,
                         ev_error *err)
{
    *out = json_string_value(json_object_get(e->data, field));
    if (*out == NULL || **out == '\0')
        return ev_error_set(err, EV_ESCHEMA, "%s without %s", e->type, field);
    return 0;
}

void ev_derived_id(char out[EV_ID_MAX], const char *prefix, const char *key)
{
    size_t p = strlen(prefix), n = strlen(key);
    if (p + n < EV_ID_MAX) {
        memcpy(out, prefix, p);
        memcpy(out + p, key, n + 1);
        return;
    }
    char u[EV_UUID_LEN];
    ev_uuid5(u, key);
    snprintf(out, EV_ID_MAX, "%s%s", prefix, u);
}
