/* SPDX-License-Identifier: MIT */
/* JSON Schema validator: the format keyword, asserted for the formats
 * listed in the table below (any other format name is an annotation). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema_internal.h"

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

/* The value of n decimal digits (checked by the caller). */
static int dec(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

/* RFC 3339 full-date "YYYY-MM-DD", the day within its month (section 5.7). */
static bool is_date(const char *s, size_t n)
{
    static const unsigned char mdays[12] = {31, 29, 31, 30, 31, 30,
                                            31, 31, 30, 31, 30, 31};
    if (n != 10 || s[4] != '-' || s[7] != '-' || !digits(s, 4) || !digits(s + 5, 2) ||
        !digits(s + 8, 2))
        return false;
    int y = dec(s, 4), m = dec(s + 5, 2), d = dec(s + 8, 2);
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m >= 1 && m <= 12 && d >= 1 && d <= mdays[m - 1] && (m != 2 || d < 29 || leap);
}

/* RFC 3339 full-time "HH:MM:SS[.frac](Z|+HH:MM|-HH:MM)": hours to 23, minutes
 * to 59, seconds to 60 (a leap second), offsets to 23:59. */
static bool is_time(const char *s, size_t n)
{
    if (n < 9 || s[2] != ':' || s[5] != ':' || !digits(s, 2) || !digits(s + 3, 2) ||
        !digits(s + 6, 2) || dec(s, 2) > 23 || dec(s + 3, 2) > 59 || dec(s + 6, 2) > 60)
        return false;
    size_t i = 8;
    if (s[i] == '.') {
        size_t f = ++i;
        while (i < n && isdigit((unsigned char)s[i]))
            i++;
        if (i == f)
            return false;
    }
    if (i + 1 == n && (s[i] == 'Z' || s[i] == 'z'))
        return true;
    return i + 6 == n && (s[i] == '+' || s[i] == '-') && digits(s + i + 1, 2) &&
           s[i + 3] == ':' && digits(s + i + 4, 2) && dec(s + i + 1, 2) <= 23 &&
           dec(s + i + 4, 2) <= 59;
}

static bool is_date_time(const char *s, size_t n)
{
    return n > 11 && (s[10] == 'T' || s[10] == 't') && is_date(s, 10) &&
           is_time(s + 11, n - 11);
}

static bool is_email(const char *s, size_t n)
{
    const char *at = memchr(s, '@', n);
    if (at == NULL || at == s || at == s + n - 1 ||
        memchr(at + 1, '@', n - 1 - (size_t)(at - s)))
        return false;
    for (size_t i = 0; i < n; i++)
        if (isspace((unsigned char)s[i]))
            return false;
    return true;
}

static const struct format {
    const char *name;
    bool (*ok)(const char *s, size_t n);
} formats[] = {
    {"date-time", is_date_time},
    {"date", is_date},
    {"time", is_time},
    {"email", is_email},
};

static int ck_format(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (!json_is_string(v))
        return 0;
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
        if (strcmp(formats[i].name, n->format) == 0 &&
            !formats[i].ok(json_string_value(v), json_string_length(v)))
            return ev_sch_fail(c, p, "format", "not a valid %s", n->format);
    }
    return 0;
}

static int kc_format(cctx *cc, snode *n, json_t *v, size_t off)
{
    (void)off;
    if (!json_is_string(v))
        return ev_sch_bad(cc, n, "must be a string");
    n->format = json_string_value(v);
    return 0;
}

const ev_sch_keyword ev_sch_kw_format[EV_SCH_N_FORMAT] = {
    {"format", kc_format, 0, ck_format},
};
