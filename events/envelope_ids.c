/* SPDX-License-Identifier: MIT */
/* Event ids and time: UUIDv4, name-based UUIDv5 in choreo's namespace,
 * derived ids, RFC 3339 timestamps and the clocks. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

#include "envelope_internal.h"

/* choreo's UUIDv5 namespace; never change it, derived ids depend on it. */
static const uuid_t ev_namespace = {0xc0, 0xe0, 0xf6, 0xa2, 0x5b, 0x7d, 0x4e, 0x1a,
                                    0x9c, 0x3f, 0x2d, 0x8b, 0x6a, 0x4e, 0x7f, 0x10};

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

bool ev_env_time_parse(const char *s, int64_t *out)
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
    if (s == NULL || !ev_env_time_parse(s, &t))
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
