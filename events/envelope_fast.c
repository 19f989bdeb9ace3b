/* SPDX-License-Identifier: MIT */
/* The envelope's fast parser: one pass over a record that fills the envelope
 * and builds data, for the records services exchange; and the type peek. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "envelope_internal.h"

/* ---- fast path -------------------------------------------------------- */

/* One pass over the record that fills the envelope and builds data with
 * jansson's constructors, for the records services exchange. It only accepts
 * what the jansson path (envelope.c) accepts, with an equal result; anything else
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

/* The string after an opening quote, to its closing quote: raw bytes in *raw,
 * *esc when it holds escapes. UTF-8, control characters and escapes checked. */
static bool fp_string(fp *p, span *raw, bool *esc)
{
    const unsigned char *s = p->s, *end = p->end;
    *esc = false;
    for (;;) {
        s = ev_env_plain_run(s, end);
        if (s == end)
            return false;
        size_t k = 0;
        uint32_t cp;
        switch (ev_env_str_class[*s]) {
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
            k = ev_env_utf8_seq(s, (size_t)(end - s));
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

/* Top-level members the fast path knows; ev_env_attr_specs come first, same order. */
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
        return fp_attr(p, out, &ev_env_attr_specs[i]);
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
           (out->time[0] == '\0' || ev_env_time_parse(out->time, &t));
}

/* true: out is what the jansson path would give (data built only when build). */
bool ev_env_fast_parse(ev_envelope *out, const void *buf, size_t len, int max_depth,
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
