/* SPDX-License-Identifier: MIT */
/* JSON Schema validator: the format keyword, asserted for every format that
 * draft-07 defines (any other format name is an annotation), and the content
 * keywords contentEncoding (base64) and contentMediaType (application/json). */
#include <arpa/inet.h>
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

/* Internationalized mail (RFC 6531) has the same shape: UTF-8 on both sides. */
static bool is_idn_email(const char *s, size_t n)
{
    return is_email(s, n);
}

/* ---- host names and addresses ---------------------------------------------- */

/* RFC 3986 dec-octet "0".."255" (no leading zero) of s[0..n). */
static bool dec_octet(const char *s, size_t n)
{
    return n >= 1 && n <= 3 && digits(s, n) && (n == 1 || s[0] != '0') &&
           dec(s, n) <= 255;
}

/* Dotted quad "a.b.c.d" (RFC 2673 section 3.2). */
static bool is_ipv4(const char *s, size_t n)
{
    size_t parts = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.')
            continue;
        if (++parts > 4 || !dec_octet(s + start, i - start))
            return false;
        start = i + 1;
    }
    return parts == 4;
}

/* RFC 4291 section 2.2 text forms, as inet_pton reads them. */
static bool is_ipv6(const char *s, size_t n)
{
    char buf[INET6_ADDRSTRLEN + 1];
    unsigned char addr[16];
    if (n == 0 || n >= sizeof(buf) || memchr(s, '\0', n) != NULL)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return inet_pton(AF_INET6, buf, addr) == 1;
}

/* One label: ASCII letters, digits and '-' (not first or last), 1..63 long;
 * with idn, UTF-8 code points too (their A-label is at least "xn--" plus one
 * character per code point, which bounds the length). */
static bool host_label(const char *s, size_t n, bool idn)
{
    size_t cps = 0;
    bool wide = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x80 && idn) {
            wide = true;
            cps += (ch & 0xC0) != 0x80;
            continue;
        }
        if (!isalnum(ch) && ch != '-')
            return false;
        cps++;
    }
    return n > 0 && s[0] != '-' && s[n - 1] != '-' && cps + (wide ? 4 : 0) <= 63;
}

/* RFC 1123 section 2.1 host names: dot-separated labels, 253 characters at most. */
static bool hostname_of(const char *s, size_t n, bool idn)
{
    if (n == 0 || (!idn && n > 253))
        return false;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.')
            continue;
        if (!host_label(s + start, i - start, idn))
            return false;
        start = i + 1;
    }
    return true;
}

static bool is_hostname(const char *s, size_t n)
{
    return hostname_of(s, n, false);
}

/* IDNA2008 host names in UTF-8. Only the shape is checked (labels, lengths,
 * the ASCII rules): the code point tables of RFC 5892 are not applied. */
static bool is_idn_hostname(const char *s, size_t n)
{
    return hostname_of(s, n, true);
}

/* ---- URIs (RFC 3986 appendix A) and IRIs (RFC 3987) -------------------------- */

/* Characters allowed as themselves in a URI component besides unreserved,
 * sub-delims and '%' escapes: extra lists ":@/?" as the component allows. */
static bool uri_chars(const char *s, size_t n, const char *extra, bool iri)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '%') {
            if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
                !isxdigit((unsigned char)s[i + 2]))
                return false;
            i += 2;
        } else if (!(isalnum(ch) || strchr("-._~!$&'()*+,;=", ch) != NULL ||
                     (ch != '\0' && strchr(extra, ch) != NULL) || (iri && ch >= 0x80))) {
            return false;
        }
    }
    return true;
}

/* authority = [ userinfo "@" ] host [ ":" port ]; host an IP-literal in
 * brackets (IPv6), or a reg-name (IPv4 addresses included). */
static bool uri_authority(const char *s, size_t n, bool iri)
{
    const char *at = memchr(s, '@', n);
    if (at != NULL) {
        size_t u = (size_t)(at - s);
        if (!uri_chars(s, u, ":", iri))
            return false;
        s += u + 1;
        n -= u + 1;
    }
    size_t host = n;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL || !is_ipv6(s + 1, (size_t)(close - s) - 1))
            return false;
        host = (size_t)(close - s) + 1;
    } else {
        const char *colon = memchr(s, ':', n);
        if (colon != NULL)
            host = (size_t)(colon - s);
        if (!uri_chars(s, host, "", iri))
            return false;
    }
    if (host == n)
        return true;
    return s[host] == ':' && digits(s + host + 1, n - host - 1);
}

/* A URI reference (absolute when absolute is set): [scheme ":"]
 * ["//" authority] path ["?" query] ["#" fragment]. */
static bool uri_ref(const char *s, size_t n, bool absolute, bool iri)
{
    size_t i = 0;
    if (n > 0 && isalpha((unsigned char)s[0])) {
        i = 1;
        while (i < n && (isalnum((unsigned char)s[i]) || strchr("+-.", s[i]) != NULL))
            i++;
        i = i < n && s[i] == ':' ? i + 1 : 0;
    }
    if (absolute && i == 0)
        return false;
    if (i + 1 < n && s[i] == '/' && s[i + 1] == '/') {
        size_t a = i + 2, e = a;
        while (e < n && s[e] != '/' && s[e] != '?' && s[e] != '#')
            e++;
        if (!uri_authority(s + a, e - a, iri))
            return false;
        i = e;
    }
    size_t path = i;
    while (i < n && s[i] != '?' && s[i] != '#')
        i++;
    const char *colon = memchr(s + path, ':', i - path);
    const char *slash = memchr(s + path, '/', i - path);
    if (path == 0 && colon != NULL && (slash == NULL || colon < slash))
        return false; /* a relative path's first segment has no ':' */
    if (!uri_chars(s + path, i - path, ":@/", iri))
        return false;
    size_t q = i;
    if (i < n && s[i] == '?') {
        while (i < n && s[i] != '#')
            i++;
        if (!uri_chars(s + q + 1, i - q - 1, ":@/?", iri))
            return false;
    }
    return i == n || uri_chars(s + i + 1, n - i - 1, ":@/?", iri);
}

static bool is_uri(const char *s, size_t n)
{
    return uri_ref(s, n, true, false);
}

static bool is_uri_reference(const char *s, size_t n)
{
    return uri_ref(s, n, false, false);
}

static bool is_iri(const char *s, size_t n)
{
    return uri_ref(s, n, true, true);
}

static bool is_iri_reference(const char *s, size_t n)
{
    return uri_ref(s, n, false, true);
}

/* RFC 6570 level 4: literals, and expressions "{" [operator] varspec *("," varspec) "}"
 * with varspec = varname [":" 1*4DIGIT | "*"]. */
static bool template_expr(const char *s, size_t n)
{
    if (n > 0 && strchr("+#./;?&=,!@|", s[0]) != NULL) {
        s++;
        n--;
    }
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != ',')
            continue;
        const char *v = s + start;
        size_t len = i - start, name = 0;
        while (name < len && (isalnum((unsigned char)v[name]) || v[name] == '_' ||
                              v[name] == '.' || v[name] == '%'))
            name++;
        if (name == 0 || !uri_chars(v, name, "", false))
            return false;
        bool prefix = name < len && v[name] == ':' && len - name - 1 >= 1 &&
                      len - name - 1 <= 4 && digits(v + name + 1, len - name - 1);
        if (name != len && !prefix && !(name + 1 == len && v[name] == '*'))
            return false;
        start = i + 1;
    }
    return true;
}

static bool is_uri_template(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '{') {
            const char *close = memchr(s + i, '}', n - i);
            if (close == NULL || !template_expr(s + i + 1, (size_t)(close - s) - i - 1))
                return false;
            i = (size_t)(close - s);
        } else if (ch <= ' ' || strchr("\"'<>\\^`{|}", ch) != NULL) {
            return false;
        } else if (ch == '%' && !uri_chars(s + i, n - i < 3 ? n - i : 3, "", false)) {
            return false;
        }
    }
    return true;
}

/* ---- JSON pointers and regular expressions --------------------------------- */

/* RFC 6901: "" or "/" tokens, '~' only as "~0" or "~1". */
static bool is_json_pointer(const char *s, size_t n)
{
    if (n > 0 && s[0] != '/')
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '~' && (i + 1 == n || (s[i + 1] != '0' && s[i + 1] != '1')))
            return false;
    return true;
}

/* draft-handrews-relative-json-pointer-01: a non-negative integer, then "#" or
 * a JSON pointer. */
static bool is_relative_json_pointer(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && isdigit((unsigned char)s[i]))
        i++;
    if (i == 0 || (s[0] == '0' && i > 1))
        return false;
    return (i + 1 == n && s[i] == '#') || is_json_pointer(s + i, n - i);
}

/* A pattern this validator compiles (the ECMA 262 subset of schema_regex.c). */
static bool is_regex(const char *s, size_t n)
{
    if (memchr(s, '\0', n) != NULL)
        return false;
    regex_t re;
    if (!ev_sch_re_compile(&re, s))
        return false;
    regfree(&re);
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
    {"idn-email", is_idn_email},
    {"hostname", is_hostname},
    {"idn-hostname", is_idn_hostname},
    {"ipv4", is_ipv4},
    {"ipv6", is_ipv6},
    {"uri", is_uri},
    {"uri-reference", is_uri_reference},
    {"iri", is_iri},
    {"iri-reference", is_iri_reference},
    {"uri-template", is_uri_template},
    {"json-pointer", is_json_pointer},
    {"relative-json-pointer", is_relative_json_pointer},
    {"regex", is_regex},
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

/* ---- contentEncoding and contentMediaType --------------------------------- */

static int b64_value(unsigned char ch)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *at = ch != '\0' ? strchr(alphabet, ch) : NULL;
    return at != NULL ? (int)(at - alphabet) : -1;
}

/* RFC 4648 section 4 base64 with padding into out (room for n bytes); the
 * decoded length, or -1 when s is not base64. */
static long b64_decode(const char *s, size_t n, unsigned char *out)
{
    if (n % 4 != 0)
        return -1;
    size_t len = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            bool last = i + 4 == n;
            if (last && s[i + k] == '=' && k >= 2 && (k == 3 || s[i + 3] == '=')) {
                v[k] = 0;
                pad++;
            } else if ((v[k] = b64_value((unsigned char)s[i + k])) < 0) {
                return -1;
            }
        }
        unsigned long w = ((unsigned long)v[0] << 18) | ((unsigned long)v[1] << 12) |
                          ((unsigned long)v[2] << 6) | (unsigned long)v[3];
        out[len++] = (unsigned char)(w >> 16);
        if (pad < 2)
            out[len++] = (unsigned char)(w >> 8);
        if (pad < 1)
            out[len++] = (unsigned char)w;
    }
    return (long)len;
}

/* A string in contentEncoding "base64" must decode; with contentMediaType
 * "application/json" the (decoded) text must be JSON. Other encodings and
 * media types are annotations. */
static int ck_content(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (!json_is_string(v))
        return 0;
    const char *text = json_string_value(v);
    size_t len = json_string_length(v);
    unsigned char *buf = NULL;
    int rc = 0;
    if (n->content_encoding != NULL && strcmp(n->content_encoding, "base64") == 0) {
        buf = malloc(len + 1);
        if (buf == NULL)
            return ev_sch_hard(c, EV_ENOMEM, p, "contentEncoding", "out of memory");
        long k = b64_decode(text, len, buf);
        if (k < 0) {
            rc = ev_sch_fail(c, p, "contentEncoding", "not valid base64");
            goto cleanup;
        }
        text = (const char *)buf;
        len = (size_t)k;
    }
    if (n->content_media != NULL && strcmp(n->content_media, "application/json") == 0) {
        json_t *doc = json_loadb(text, len, JSON_DECODE_ANY, NULL);
        if (doc == NULL)
            rc = ev_sch_fail(c, p, "contentMediaType", "not valid application/json");
        json_decref(doc);
    }
cleanup:
    free(buf);
    return rc;
}

static int kc_string(cctx *cc, snode *n, json_t *v, size_t off)
{
    if (!json_is_string(v))
        return ev_sch_bad(cc, n, "must be a string");
    *FIELD(n, off, const char *) = json_string_value(v);
    return 0;
}

const ev_sch_keyword ev_sch_kw_format[EV_SCH_N_FORMAT] = {
    {"format", kc_format, 0, ck_format},
    {"contentEncoding", kc_string, OFF(content_encoding), ck_content},
    {"contentMediaType", kc_string, OFF(content_media), ck_content},
};
