/* SPDX-License-Identifier: MIT */
/* JSON Schema validator: the keywords on single values (type, enum, const,
 * numeric bounds, string length, pattern), checks and compilers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema_internal.h"

/* ---- instance helpers ---------------------------------------------------- */

static unsigned type_of(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_NULL:
        return T_NULL;
    case JSON_TRUE:
    case JSON_FALSE:
        return T_BOOL;
    case JSON_OBJECT:
        return T_OBJECT;
    case JSON_ARRAY:
        return T_ARRAY;
    case JSON_INTEGER:
        return T_NUMBER | T_INTEGER;
    case JSON_REAL:
        return T_NUMBER | (ev_sch_real_is_integral(json_real_value(v)) ? T_INTEGER : 0);
    case JSON_STRING:
        return T_STRING;
    }
    return 0;
}

static const char *const type_names[] = {"null",   "boolean", "object", "array",
                                         "number", "string",  "integer"};

static const char *type_name(const json_t *v)
{
    if (json_is_integer(v))
        return "integer";
    unsigned t = type_of(v) & ~(unsigned)T_INTEGER;
    for (size_t i = 0; i < 7; i++)
        if (t == 1u << i)
            return type_names[i];
    return "?";
}

static int num_cmp(const json_t *a, const json_t *b)
{
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        return (x > y) - (x < y);
    }
    double x = json_number_value(a), y = json_number_value(b);
    return (x > y) - (x < y);
}

/* Deep equality where 1 and 1.0 are the same number. */
bool ev_sch_json_same(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return num_cmp(a, b) == 0;
    if (json_typeof(a) != json_typeof(b))
        return false;
    if (json_is_string(a))
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b),
                      json_string_length(a)) == 0;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!ev_sch_json_same(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    }
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b))
            return false;
        const char *key;
        json_t *va;
        json_object_foreach((json_t *)a, key, va)
        {
            const json_t *vb = json_object_get(b, key);
            if (vb == NULL || !ev_sch_json_same(va, vb))
                return false;
        }
        return true;
    }
    return true; /* null, true, false */
}

static size_t utf8_length(const char *s, size_t n)
{
    size_t cps = 0;
    for (size_t i = 0; i < n; i++)
        cps += ((unsigned char)s[i] & 0xC0) != 0x80;
    return cps;
}

static const char *fmt_num(const json_t *v, char *buf, size_t n)
{
    if (json_is_integer(v))
        snprintf(buf, n, "%lld", (long long)json_integer_value(v));
    else
        snprintf(buf, n, "%.15g", json_number_value(v));
    return buf;
}

/* ---- checks -------------------------------------------------------------- */

static int ck_type(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (type_of(v) & n->types)
        return 0;
    char want[80] = "";
    size_t len = 0;
    for (size_t i = 0; i < 7; i++) {
        if (n->types & (1u << i)) {
            int k = snprintf(want + len, sizeof(want) - len, "%s%s", len ? "|" : "",
                             type_names[i]);
            if (k > 0 && (size_t)k < sizeof(want) - len)
                len += (size_t)k;
        }
    }
    return ev_sch_fail(c, p, "type", "expected %s, got %s", want, type_name(v));
}

/* Short text of a scalar for messages: "abc", 12, true; objects and arrays by
 * type name. Appended to buf (size cap) at *len. */
static void put_scalar(const json_t *v, char *buf, size_t cap, size_t *len)
{
    char num[32];
    const char *fmt = json_is_string(v) ? "\"%s\"" : "%s";
    const char *text = json_is_string(v)   ? json_string_value(v)
                       : json_is_number(v) ? fmt_num(v, num, sizeof(num))
                       : json_is_true(v)   ? "true"
                       : json_is_false(v)  ? "false"
                       : json_is_null(v)   ? "null"
                                           : type_name(v);
    int k = snprintf(buf + *len, cap - *len, fmt, text);
    if (k > 0)
        *len = *len + (size_t)k < cap ? *len + (size_t)k : cap - 1; /* truncated */
}

static int ck_enum(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    size_t count = json_array_size(n->enum_vals);
    for (size_t i = 0; i < count; i++)
        if (ev_sch_json_same(v, json_array_get(n->enum_vals, i)))
            return 0;
    if (c->quiet)
        return EV_ESCHEMA;
    char got[48], allowed[EV_ERROR_TEXT];
    size_t glen = 0, alen = 0;
    put_scalar(v, got, sizeof(got), &glen);
    for (size_t i = 0; i < count && alen + 1 < sizeof(allowed); i++) {
        if (i > 0)
            allowed[alen++] = '|';
        put_scalar(json_array_get(n->enum_vals, i), allowed, sizeof(allowed), &alen);
    }
    allowed[alen] = '\0';
    return ev_sch_fail(c, p, "enum", "%s is not one of %s", got, allowed);
}

static int ck_const(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    return ev_sch_json_same(v, n->const_val)
               ? 0
               : ev_sch_fail(c, p, "const", "value differs from const");
}

static bool is_multiple(const json_t *v, const json_t *m)
{
    if (json_is_integer(v) && json_is_integer(m))
        return json_integer_value(v) % json_integer_value(m) == 0;
    double q = json_number_value(v) / json_number_value(m);
    if (!isfinite(q))
        return false;
    return fabs(q - nearbyint(q)) <= 1e-9 * fabs(q);
}

static int ck_multiple_of(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (!json_is_number(v) || is_multiple(v, n->multiple_of))
        return 0;
    char a[32], b[32];
    return ev_sch_fail(c, p, "multipleOf", "%s is not a multiple of %s",
                       fmt_num(v, a, 32), fmt_num(n->multiple_of, b, 32));
}

/* Shared by the four bounds: fails when num_cmp(v, limit) has a bad sign. */
static int bound(const json_t *v, const json_t *limit, int bad_sign, bool strict,
                 const ipath *p, vctx *c, const char *kw, const char *what)
{
    if (!json_is_number(v))
        return 0;
    int r = num_cmp(v, limit);
    if (r != bad_sign && !(strict && r == 0))
        return 0;
    char a[32], b[32];
    return ev_sch_fail(c, p, kw, "%s is %s %s", fmt_num(v, a, 32), what,
                       fmt_num(limit, b, 32));
}

static int ck_maximum(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    return bound(v, n->maximum, 1, false, p, c, "maximum", "greater than");
}

static int ck_exclusive_maximum(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    return bound(v, n->exclusive_maximum, 1, true, p, c, "exclusiveMaximum",
                 "not less than");
}

static int ck_minimum(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    return bound(v, n->minimum, -1, false, p, c, "minimum", "less than");
}

static int ck_exclusive_minimum(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    return bound(v, n->exclusive_minimum, -1, true, p, c, "exclusiveMinimum",
                 "not greater than");
}

static int ck_max_length(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (!json_is_string(v))
        return 0;
    size_t len = utf8_length(json_string_value(v), json_string_length(v));
    if (len <= n->max_length)
        return 0;
    return ev_sch_fail(c, p, "maxLength", "length %zu is greater than %zu", len,
                       n->max_length);
}

static int ck_min_length(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (!json_is_string(v))
        return 0;
    size_t len = utf8_length(json_string_value(v), json_string_length(v));
    if (len >= n->min_length)
        return 0;
    return ev_sch_fail(c, p, "minLength", "length %zu is less than %zu", len,
                       n->min_length);
}

static int ck_pattern(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (!json_is_string(v) || ev_sch_re_search_ok(&n->pattern, json_string_value(v)))
        return 0;
    return ev_sch_fail(c, p, "pattern", "does not match \"%s\"", n->pattern_src);
}

/* ---- compilers ----------------------------------------------------------- */

static int kc_number(cctx *cc, snode *n, json_t *v, size_t off)
{
    if (!json_is_number(v))
        return ev_sch_bad(cc, n, "must be a number");
    *FIELD(n, off, const json_t *) = v;
    return 0;
}

static int kc_multiple_of(cctx *cc, snode *n, json_t *v, size_t off)
{
    if (!json_is_number(v) || json_number_value(v) <= 0)
        return ev_sch_bad(cc, n, "must be a number greater than 0");
    return kc_number(cc, n, v, off);
}

static int type_bit(const char *name, unsigned *bit)
{
    for (size_t i = 0; i < 7; i++) {
        if (strcmp(type_names[i], name) == 0) {
            *bit = 1u << i;
            return 0;
        }
    }
    return -1;
}

static int kc_type(cctx *cc, snode *n, json_t *v, size_t off)
{
    (void)off;
    unsigned bit;
    if (json_is_string(v)) {
        if (type_bit(json_string_value(v), &bit) != 0)
            return ev_sch_bad(cc, n, "unknown type");
        n->types = bit;
        return 0;
    }
    if (!json_is_array(v))
        return ev_sch_bad(cc, n, "must be a string or an array of strings");
    for (size_t i = 0; i < json_array_size(v); i++) {
        const char *t = json_string_value(json_array_get(v, i));
        if (t == NULL || type_bit(t, &bit) != 0)
            return ev_sch_bad(cc, n, "unknown type");
        n->types |= bit;
    }
    return 0;
}

static int kc_enum(cctx *cc, snode *n, json_t *v, size_t off)
{
    if (!json_is_array(v))
        return ev_sch_bad(cc, n, "must be an array");
    return ev_sch_kc_any(cc, n, v, off);
}

static int kc_pattern(cctx *cc, snode *n, json_t *v, size_t off)
{
    (void)off;
    if (!json_is_string(v))
        return ev_sch_bad(cc, n, "must be a string");
    if (!ev_sch_re_compile(&n->pattern, json_string_value(v)))
        return ev_sch_bad(cc, n, "unsupported regular expression");
    n->has_pattern = true;
    n->pattern_src = json_string_value(v);
    return 0;
}

const ev_sch_keyword ev_sch_kw_value[EV_SCH_N_VALUE] = {
    {"type", kc_type, 0, ck_type},
    {"enum", kc_enum, OFF(enum_vals), ck_enum},
    {"const", ev_sch_kc_any, OFF(const_val), ck_const},
    {"multipleOf", kc_multiple_of, OFF(multiple_of), ck_multiple_of},
    {"maximum", kc_number, OFF(maximum), ck_maximum},
    {"exclusiveMaximum", kc_number, OFF(exclusive_maximum), ck_exclusive_maximum},
    {"minimum", kc_number, OFF(minimum), ck_minimum},
    {"exclusiveMinimum", kc_number, OFF(exclusive_minimum), ck_exclusive_minimum},
    {"maxLength", ev_sch_kc_count, OFF(max_length), ck_max_length},
    {"minLength", ev_sch_kc_count, OFF(min_length), ck_min_length},
    {"pattern", kc_pattern, 0, ck_pattern},
};
