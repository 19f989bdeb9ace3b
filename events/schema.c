/* SPDX-License-Identifier: MIT */
/* JSON Schema draft-07 validation over jansson: a set of schemas loaded from a
 * directory, $ref inside and across documents, errors with a JSON pointer. */
#include "schema.h"

#include <ctype.h>
#include <dirent.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How deep validation may nest (subschemas plus $ref hops) before a schema is
 * declared cyclic: a {"$ref": "#"} loop must end in an error, not a crash. */
#define MAX_DEPTH 512
#define MAX_OPS 34

/* ---- growable string and pointer vector ---------------------------------- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (np == NULL) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_puts(sbuf *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}
static void sb_putc(sbuf *b, char c)
{
    sb_putn(b, &c, 1);
}

/* The built string, owned by the caller; NULL when an allocation failed. */
static char *sb_take(sbuf *b)
{
    if (b->oom) {
        free(b->p);
        return NULL;
    }
    return b->p != NULL ? b->p : strdup("");
}

typedef struct pvec {
    void **v;
    size_t n, cap;
} pvec;

static int pv_push(pvec *a, void *x)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        void **nv = realloc(a->v, cap * sizeof(*nv));
        if (nv == NULL)
            return EV_ENOMEM;
        a->v = nv;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 0;
}

/* ---- URI references (RFC 3986 section 5) --------------------------------- */

typedef struct span {
    const char *p;
    size_t n;
    bool has;
} span;

typedef struct uriparts {
    span scheme, auth, path, query, frag;
} uriparts;

static void uri_split(const char *u, uriparts *o)
{
    memset(o, 0, sizeof(*o));
    const char *s = u;
    const char *q = s;
    if (isalpha((unsigned char)*q)) {
        while (isalnum((unsigned char)*q) || *q == '+' || *q == '-' || *q == '.')
            q++;
        if (*q == ':') {
            o->scheme = (span){s, (size_t)(q - s), true};
            s = q + 1;
        }
    }
    if (s[0] == '/' && s[1] == '/') {
        s += 2;
        size_t n = strcspn(s, "/?#");
        o->auth = (span){s, n, true};
        s += n;
    }
    size_t n = strcspn(s, "?#");
    o->path = (span){s, n, true};
    s += n;
    if (*s == '?') {
        s++;
        n = strcspn(s, "#");
        o->query = (span){s, n, true};
        s += n;
    }
    if (*s == '#')
        o->frag = (span){s + 1, strlen(s + 1), true};
}

static bool starts(const char *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n >= l && memcmp(p, lit, l) == 0;
}

static bool equals(const char *p, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(p, lit, n) == 0;
}

/* Drops the last segment (and its '/') written to out since start. */
static void drop_segment(sbuf *out, size_t start)
{
    size_t i = out->n;
    while (i > start && out->p[i - 1] != '/')
        i--;
    if (i > start)
        i--;
    out->n = i;
    if (out->p != NULL)
        out->p[i] = '\0';
}

/* remove_dot_segments of RFC 3986 section 5.2.4, appended to out. */
static void remove_dots(const char *in, size_t n, sbuf *out)
{
    size_t start = out->n;
    while (n > 0) {
        if (starts(in, n, "../") || starts(in, n, "./")) {
            size_t k = in[0] == '.' && in[1] == '.' ? 3 : 2;
            in += k;
            n -= k;
        } else if (starts(in, n, "/./")) {
            in += 2;
            n -= 2;
        } else if (equals(in, n, "/.")) {
            n = 1;
        } else if (starts(in, n, "/../")) {
            in += 3;
            n -= 3;
            drop_segment(out, start);
        } else if (equals(in, n, "/..")) {
            n = 1;
            drop_segment(out, start);
        } else if (equals(in, n, ".") || equals(in, n, "..")) {
            n = 0;
        } else {
            size_t k = in[0] == '/' ? 1 : 0;
            while (k < n && in[k] != '/')
                k++;
            sb_putn(out, in, k);
            in += k;
            n -= k;
        }
    }
}

/* Target path of a relative-path reference (RFC 3986 5.2.2 and 5.2.3). */
static void merged_path(const uriparts *b, const uriparts *r, sbuf *path)
{
    sbuf m = {0};
    if (b->auth.has && b->path.n == 0) {
        sb_putc(&m, '/');
    } else {
        size_t k = b->path.n;
        while (k > 0 && b->path.p[k - 1] != '/')
            k--;
        sb_putn(&m, b->path.p, k);
    }
    sb_putn(&m, r->path.p, r->path.n);
    if (m.oom)
        path->oom = true;
    else if (m.p != NULL)
        remove_dots(m.p, m.n, path);
    free(m.p);
}

/* Resolves reference ref against base; a new string owned by the caller, NULL
 * on allocation failure. */
static char *uri_resolve(const char *base, const char *ref)
{
    uriparts b, r;
    uri_split(base, &b);
    uri_split(ref, &r);
    const span *scheme = r.scheme.has ? &r.scheme : &b.scheme;
    const span *auth = r.scheme.has || r.auth.has ? &r.auth : &b.auth;
    const span *query = &r.query;
    sbuf path = {0};
    if (r.scheme.has || r.auth.has || (r.path.n > 0 && r.path.p[0] == '/')) {
        remove_dots(r.path.p, r.path.n, &path);
    } else if (r.path.n == 0) {
        sb_putn(&path, b.path.p, b.path.n);
        if (!r.query.has)
            query = &b.query;
    } else {
        merged_path(&b, &r, &path);
    }
    sbuf o = {0};
    if (scheme->has) {
        sb_putn(&o, scheme->p, scheme->n);
        sb_putc(&o, ':');
    }
    if (auth->has) {
        sb_puts(&o, "//");
        sb_putn(&o, auth->p, auth->n);
    }
    if (path.oom)
        o.oom = true;
    else if (path.p != NULL)
        sb_putn(&o, path.p, path.n);
    free(path.p);
    if (query->has) {
        sb_putc(&o, '?');
        sb_putn(&o, query->p, query->n);
    }
    if (r.frag.has) {
        sb_putc(&o, '#');
        sb_putn(&o, r.frag.p, r.frag.n);
    }
    return sb_take(&o);
}

/* A copy of uri without an empty trailing fragment ("x#" -> "x"). */
static char *uri_norm(const char *uri)
{
    size_t n = strlen(uri);
    if (n > 0 && uri[n - 1] == '#' && strchr(uri, '#') == uri + n - 1)
        n--;
    return strndup(uri, n);
}

/* ---- registry: URI -> node and json_t* -> node, newest entry first -------- */

typedef struct snode snode;

typedef struct rentry {
    char *skey;       /* owned; NULL for a pointer key */
    const void *pkey; /* json_t* of a compiled schema */
    snode *val;
    size_t next; /* index + 1 of the next entry in the bucket, 0 ends */
} rentry;

typedef struct registry {
    rentry *e;
    size_t n, cap;
    size_t *bucket; /* index + 1 of the newest entry, 0 empty */
    size_t nb;      /* power of two */
} registry;

static size_t hash_str(const char *s)
{
    size_t h = 1469598103934665603u;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static size_t hash_ptr(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15u;
    return (size_t)(x >> 17);
}

static size_t entry_hash(const rentry *e)
{
    return e->skey != NULL ? hash_str(e->skey) : hash_ptr(e->pkey);
}

static int reg_rehash(registry *r, size_t nb)
{
    size_t *b = calloc(nb, sizeof(*b));
    if (b == NULL)
        return EV_ENOMEM;
    free(r->bucket);
    r->bucket = b;
    r->nb = nb;
    for (size_t i = 0; i < r->n; i++) {
        size_t h = entry_hash(&r->e[i]) & (nb - 1);
        r->e[i].next = b[h];
        b[h] = i + 1;
    }
    return 0;
}

/* Adds an entry (skey is stolen, also on failure); it shadows older ones. */
static int reg_put(registry *r, char *skey, const void *pkey, snode *val)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        rentry *ne = realloc(r->e, cap * sizeof(*ne));
        if (ne == NULL) {
            free(skey);
            return EV_ENOMEM;
        }
        r->e = ne;
        r->cap = cap;
    }
    if (r->nb < 2 * (r->n + 1) && reg_rehash(r, r->nb ? r->nb * 4 : 64) != 0) {
        free(skey);
        return EV_ENOMEM;
    }
    rentry *e = &r->e[r->n];
    *e = (rentry){skey, pkey, val, 0};
    size_t h = entry_hash(e) & (r->nb - 1);
    e->next = r->bucket[h];
    r->bucket[h] = ++r->n;
    return 0;
}

static snode *reg_get(const registry *r, const char *skey, const void *pkey)
{
    if (r->nb == 0)
        return NULL;
    size_t h = (skey != NULL ? hash_str(skey) : hash_ptr(pkey)) & (r->nb - 1);
    for (size_t i = r->bucket[h]; i != 0; i = r->e[i - 1].next) {
        const rentry *e = &r->e[i - 1];
        if (skey != NULL ? e->skey != NULL && strcmp(e->skey, skey) == 0
                         : e->skey == NULL && e->pkey == pkey)
            return e->val;
    }
    return NULL;
}

/* Removes the newest entry: it is the head of its bucket. */
static void reg_pop(registry *r)
{
    rentry *e = &r->e[r->n - 1];
    size_t h = entry_hash(e) & (r->nb - 1);
    r->bucket[h] = e->next;
    free(e->skey);
    r->n--;
}

/* ---- compiled schema nodes ----------------------------------------------- */

typedef struct ipath {
    const struct ipath *up;
    const char *key; /* NULL: an array index */
    size_t index;
} ipath;

typedef struct vctx {
    ev_error *err;
    bool quiet; /* inside anyOf/oneOf/not/if/contains: mismatches are not reported */
    unsigned depth;
} vctx;

typedef int (*check_fn)(const snode *n, const json_t *v, const ipath *p, vctx *c);

typedef struct named {
    const char *key; /* borrowed from the schema document */
    snode *sub;
} named;

typedef struct patsub {
    regex_t re;
    snode *sub;
} patsub;

typedef struct depend {
    const char *key;
    const json_t *names; /* array form, or NULL */
    snode *sub;          /* schema form, or NULL */
} depend;

typedef struct subs {
    snode **v;
    size_t n;
} subs;

enum {
    T_NULL = 1,
    T_BOOL = 2,
    T_OBJECT = 4,
    T_ARRAY = 8,
    T_NUMBER = 16,
    T_STRING = 32,
    T_INTEGER = 64,
};

struct snode {
    const json_t *json;
    const char *base; /* base URI, owned by the set */
    int boolean;      /* -1: an object schema; 0/1: the false/true schema */
    char *ref_uri;    /* absolute $ref target, owned; NULL when no $ref */
    snode *ref;       /* resolved $ref target */
    check_fn ops[MAX_OPS];
    size_t n_ops;
    unsigned types;
    const json_t *enum_vals, *const_val;
    const json_t *multiple_of, *maximum, *exclusive_maximum, *minimum, *exclusive_minimum;
    size_t max_length, min_length, max_items, min_items, max_props, min_props;
    regex_t pattern;
    bool has_pattern, unique_items;
    const char *pattern_src, *format;
    snode *items_one;
    subs items_arr, all_of, any_of, one_of;
    snode *additional_items, *contains;
    const json_t *required;
    named *props;
    size_t n_props;
    const json_t *props_obj;
    patsub *pprops;
    size_t n_pprops;
    snode *additional_props, *property_names;
    depend *deps;
    size_t n_deps;
    snode *if_s, *then_s, *else_s, *not_s;
};

typedef struct remote {
    char *prefix, *dir;
} remote;

struct ev_schema_set {
    snode true_node, false_node;
    pvec nodes;   /* snode*, owned */
    pvec docs;    /* json_t*, one reference each */
    pvec bases;   /* char*, owned base URIs */
    pvec pending; /* snode* with a $ref not yet resolved */
    registry reg;
    remote *remotes;
    size_t n_remotes;
    bool shadow; /* inside ev_schema_validate_doc: ids may shadow older ones */
};

typedef struct mark {
    size_t nodes, docs, bases, pending, reg;
} mark;

static mark mark_take(const ev_schema_set *s)
{
    return (mark){s->nodes.n, s->docs.n, s->bases.n, s->pending.n, s->reg.n};
}

static void node_free(snode *n)
{
    free(n->ref_uri);
    if (n->has_pattern)
        regfree(&n->pattern);
    for (size_t i = 0; i < n->n_pprops; i++)
        regfree(&n->pprops[i].re);
    free(n->pprops);
    free(n->props);
    free(n->deps);
    free(n->items_arr.v);
    free(n->all_of.v);
    free(n->any_of.v);
    free(n->one_of.v);
    free(n);
}

/* Undoes everything added since m, newest first. */
static void rollback(ev_schema_set *s, mark m)
{
    s->pending.n = m.pending;
    while (s->reg.n > m.reg)
        reg_pop(&s->reg);
    while (s->nodes.n > m.nodes)
        node_free(s->nodes.v[--s->nodes.n]);
    while (s->bases.n > m.bases)
        free(s->bases.v[--s->bases.n]);
    while (s->docs.n > m.docs)
        json_decref(s->docs.v[--s->docs.n]);
}

/* Keeps str (owned, may be NULL) for the set's lifetime; NULL on failure. */
static const char *intern(ev_schema_set *s, char *str)
{
    if (str == NULL || pv_push(&s->bases, str) != 0) {
        free(str);
        return NULL;
    }
    return str;
}

/* Registers uri (stolen) for n. Outside validate_doc a URI names one schema. */
static int register_uri(ev_schema_set *s, char *uri, snode *n, ev_error *err)
{
    if (uri == NULL)
        return ev_error_set(err, EV_ENOMEM, "schema: out of memory");
    snode *old = reg_get(&s->reg, uri, NULL);
    if (old == n) {
        free(uri);
        return 0;
    }
    if (old != NULL && !s->shadow) {
        ev_error_set(err, EV_EINVAL, "schema: %s: registered twice", uri);
        free(uri);
        return EV_EINVAL;
    }
    if (reg_put(&s->reg, uri, NULL, n) != 0)
        return ev_error_set(err, EV_ENOMEM, "schema: out of memory");
    return 0;
}

/* ---- regular expressions: ECMA 262 subset -> POSIX extended --------------- */

static locale_t utf8_locale;
static pthread_once_t utf8_once = PTHREAD_ONCE_INIT;

static void utf8_init(void)
{
    utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    if (utf8_locale == (locale_t)0)
        utf8_locale = newlocale(LC_CTYPE_MASK, "C.utf8", (locale_t)0);
}

/* Regexes are compiled and run in a UTF-8 locale so '.' and classes see code
 * points; the thread's own locale is restored afterwards. */
static locale_t utf8_enter(void)
{
    pthread_once(&utf8_once, utf8_init);
    return utf8_locale != (locale_t)0 ? uselocale(utf8_locale) : (locale_t)0;
}

static void utf8_leave(locale_t old)
{
    if (old != (locale_t)0)
        uselocale(old);
}

static bool re_search_ok(const regex_t *re, const char *s)
{
    locale_t old = utf8_enter();
    int rc = regexec(re, s, 0, NULL, 0);
    utf8_leave(old);
    return rc == 0;
}

static void put_utf8(sbuf *o, unsigned long cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    sb_putn(o, b, n);
}

static long hex_n(const char *s, int n)
{
    long v = 0;
    for (int i = 0; i < n; i++) {
        if (!isxdigit((unsigned char)s[i]))
            return -1;
        v = v * 16 +
            (isdigit((unsigned char)s[i]) ? s[i] - '0' : (tolower(s[i]) - 'a' + 10));
    }
    return v;
}

/* Decodes a literal escape (\n \t \uXXXX \xHH ... or an escaped symbol) at s
 * (just after the backslash). Returns the code point, -1 when s is not one;
 * *len gets the characters consumed. */
static long re_literal_escape(const char *s, size_t *len)
{
    static const char from[] = "ntrfv", to[] = "\n\t\r\f\v";
    const char *hit = *s != '\0' ? strchr(from, *s) : NULL;
    *len = 1;
    if (hit != NULL)
        return to[hit - from];
    if (*s == 'x') {
        *len = 3;
        return hex_n(s + 1, 2);
    }
    if (*s == 'u') {
        long cp = hex_n(s + 1, 4);
        *len = 5;
        if (cp >= 0xD800 && cp < 0xDC00 && s[5] == '\\' && s[6] == 'u') {
            long lo = hex_n(s + 7, 4);
            if (lo >= 0xDC00 && lo < 0xE000) {
                *len = 11;
                return 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
        }
        return cp;
    }
    if (*s != '\0' && !isalnum((unsigned char)*s))
        return (unsigned char)*s;
    return -1;
}

static void re_put_literal(sbuf *o, long cp)
{
    if (cp < 0x80 && strchr(".[]()*+?{}|^$\\", (int)cp) != NULL)
        sb_putc(o, '\\');
    put_utf8(o, (unsigned long)cp);
}

/* An escape outside a class; returns the input after it, NULL if unsupported. */
static const char *re_escape(const char *s, sbuf *o)
{
    static const char *const classes[][2] = {
        {"d", "[0-9]"},         {"D", "[^0-9]"},      {"w", "[A-Za-z0-9_]"},
        {"W", "[^A-Za-z0-9_]"}, {"s", "[[:space:]]"}, {"S", "[^[:space:]]"},
        {"b", "\\b"},           {"B", "\\B"},
    };
    for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
        if (*s == classes[i][0][0]) {
            sb_puts(o, classes[i][1]);
            return s + 1;
        }
    }
    if (*s >= '1' && *s <= '9') {
        sb_putc(o, '\\');
        sb_putc(o, *s);
        return s + 1;
    }
    size_t len;
    long cp = re_literal_escape(s, &len);
    if (cp <= 0)
        return NULL;
    re_put_literal(o, cp);
    return s + len;
}

typedef struct rclass {
    sbuf body;
    bool neg, rbracket, dash, caret;
} rclass;

static void class_literal(rclass *k, long cp)
{
    if (cp == ']')
        k->rbracket = true;
    else if (cp == '-')
        k->dash = true;
    else if (cp == '^')
        k->caret = true;
    else
        put_utf8(&k->body, (unsigned long)cp);
}

/* One escape inside a class; NULL if unsupported. */
static const char *class_escape(const char *s, rclass *k)
{
    static const char *const sets[][2] = {
        {"d", "0-9"}, {"w", "A-Za-z0-9_"}, {"s", "[:space:]"}};
    for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
        if (*s == sets[i][0][0]) {
            sb_puts(&k->body, sets[i][1]);
            return s + 1;
        }
    }
    if (*s == 'b') {
        class_literal(k, '\b');
        return s + 1;
    }
    size_t len;
    long cp = re_literal_escape(s, &len);
    if (cp <= 0)
        return NULL;
    class_literal(k, cp);
    return s + len;
}

static void class_emit(rclass *k, sbuf *o)
{
    bool bare = !k->neg && !k->rbracket && k->body.n == 0;
    if (bare && !k->dash) {
        sb_puts(o, "\\^");
        return;
    }
    sb_putc(o, '[');
    if (k->neg)
        sb_putc(o, '^');
    if (bare) {
        sb_puts(o, k->caret ? "-^]" : "-]");
        return;
    }
    if (k->rbracket)
        sb_putc(o, ']');
    if (k->body.p != NULL)
        sb_putn(o, k->body.p, k->body.n);
    if (k->caret)
        sb_putc(o, '^');
    if (k->dash)
        sb_putc(o, '-');
    sb_putc(o, ']');
}

/* A bracket class starting after '['; returns the input after ']' or NULL. */
static const char *re_class(const char *s, sbuf *o)
{
    rclass k = {0};
    if (*s == '^') {
        k.neg = true;
        s++;
    }
    const char *first = s;
    while (s != NULL && *s != '\0' && *s != ']') {
        if (*s == '\\') {
            s = class_escape(s + 1, &k);
        } else if (*s == '-' && (s == first || s[1] == ']')) {
            k.dash = true;
            s++;
        } else if (*s == '^') {
            k.caret = true;
            s++;
        } else if (*s == '[' && (s[1] == ':' || s[1] == '.' || s[1] == '=')) {
            s = NULL;
        } else {
            sb_putc(&k.body, *s++);
        }
    }
    bool empty = k.body.n == 0 && !k.rbracket && !k.dash && !k.caret;
    if (s == NULL || *s != ']' || empty || k.body.oom) {
        free(k.body.p);
        return NULL;
    }
    class_emit(&k, o);
    free(k.body.p);
    return s + 1;
}

/* Length of a {n}, {n,} or {n,m} quantifier at s, 0 when it is not one. */
static size_t quantifier_len(const char *s)
{
    size_t i = 1;
    if (!isdigit((unsigned char)s[i]))
        return 0;
    while (isdigit((unsigned char)s[i]))
        i++;
    if (s[i] == ',') {
        i++;
        while (isdigit((unsigned char)s[i]))
            i++;
    }
    return s[i] == '}' ? i + 1 : 0;
}

/* One atom (or anchor) at s into o; returns the input after it, NULL
 * if unsupported. */
static const char *re_atom(const char *s, sbuf *o)
{
    switch (*s) {
    case '\\':
        return re_escape(s + 1, o);
    case '[':
        return re_class(s + 1, o);
    case '{':
        sb_puts(o, "\\{");
        return s + 1;
    case '}':
        sb_puts(o, "\\}");
        return s + 1;
    case '.':
        sb_puts(o, "[^\n\r]");
        return s + 1;
    default:
        sb_putc(o, *s);
        return s + 1;
    }
}

/* What regcomp makes of a quantifier (at s: {n} {n,} {n,m} * + ?): copies of
 * the atom (one per repetition; *, + and ? counted as 2), whether the result
 * matches empty, whether it loops (repeats more than once). */
typedef struct re_quant {
    double copies;
    bool min0, loops;
} re_quant;

static re_quant quantifier_of(const char *s)
{
    if (*s != '{')
        return (re_quant){2, *s != '+', *s != '?'};
    char *end;
    double lo = strtod(s + 1, &end), hi = lo;
    bool open = end[0] == ',' && !isdigit((unsigned char)end[1]);
    if (end[0] == ',')
        hi = open ? lo + 1 : strtod(end + 1, NULL);
    return (re_quant){hi > 1 ? hi : 1, lo == 0, hi > 1 || open};
}

/* regcomp's work, estimated while translating; over a limit the pattern is
 * refused (unsupported) rather than left to take minutes and gigabytes. It
 * copies a repeated atom once per repetition: nested counted repetitions
 * ((a{1000}){1000}){1000} make RE_MAX_NODES nodes. Its memory grows with the
 * square of the nodes that can match empty ((a?){5000}: 400 MB), and its time
 * doubles with each loop over what can match empty ((a*)* or (a?)+: twenty
 * take a second). */
#define RE_MAX_NODES 100000.0
#define RE_MAX_EMPTY 4000.0
#define RE_MAX_LOOPS 16.0
#define RE_MAX_NEST 64

typedef struct re_size {
    double nodes, empty, loops; /* nodes, nodes that can match empty, loops over such */
} re_size;

typedef struct re_frame { /* one open group */
    re_size all, last; /* the group so far; its last atom (what a quantifier repeats) */
    bool alt_empty;    /* an earlier alternative matches empty */
    bool seq_empty;    /* this alternative before the last atom does */
    bool last_empty;   /* the last atom does */
} re_frame;

typedef struct re_cost {
    re_frame f[RE_MAX_NEST + 1];
    int depth;
} re_cost;

static const re_frame frame_start = {.seq_empty = true, .last_empty = true};

static bool cost_ok(re_size s)
{
    return s.nodes <= RE_MAX_NODES && s.empty <= RE_MAX_EMPTY && s.loops <= RE_MAX_LOOPS;
}

/* Makes the last atom of f a, which matches empty or not. */
static bool cost_set_last(re_frame *f, re_size a, bool empty)
{
    if (empty)
        a.empty = a.nodes;
    f->all.nodes += a.nodes - f->last.nodes;
    f->all.empty += a.empty - f->last.empty;
    f->all.loops += a.loops - f->last.loops;
    f->last = a;
    f->last_empty = empty;
    return cost_ok(f->all);
}

static bool cost_atom(re_cost *c, re_size a, bool empty)
{
    re_frame *f = &c->f[c->depth];
    f->seq_empty = f->seq_empty && f->last_empty;
    f->last = (re_size){0, 0, 0};
    return cost_set_last(f, a, empty);
}

static bool cost_repeat(re_cost *c, re_quant q)
{
    re_frame *f = &c->f[c->depth];
    re_size a = {f->last.nodes * q.copies, f->last.empty * q.copies,
                 f->last.loops * q.copies + (f->last_empty && q.loops ? 1 : 0)};
    return cost_set_last(f, a, f->last_empty || q.min0);
}

/* '(' opens a group, ')' closes one into an atom, '|' starts an alternative. */
static bool cost_group(re_cost *c, char ch)
{
    re_frame *f = &c->f[c->depth];
    bool empty = f->alt_empty || (f->seq_empty && f->last_empty);
    if (ch == '(') {
        if (c->depth == RE_MAX_NEST)
            return false;
        c->f[++c->depth] = frame_start;
        return true;
    }
    if (ch == '|') {
        re_size all = {f->all.nodes + 1, f->all.empty, f->all.loops};
        *f = frame_start;
        f->all = all;
        f->alt_empty = empty;
        return cost_ok(all);
    }
    if (c->depth == 0) /* unbalanced: regcomp says so */
        return cost_atom(c, (re_size){1, 0, 0}, false);
    c->depth--;
    return cost_atom(c, (re_size){f->all.nodes + 2, f->all.empty, f->all.loops}, empty);
}

/* True when the atom at s matches the empty string: anchors, \b, \B and
 * back-references (which may). */
static bool atom_empty(const char *s)
{
    return *s == '^' || *s == '$' ||
           (*s == '\\' && s[1] != '\0' && strchr("bB123456789", s[1]));
}

/* Translates an ECMA 262 pattern to POSIX ERE: \d \w \s (and negations),
 * escapes, classes, (?:), lazy quantifiers (same match/no-match answer).
 * Lookaround, a quantifier of a quantifier (a** is not ECMA) and other
 * constructs without an ERE form fail with -1, as do patterns too big. */
static int re_translate(const char *s, sbuf *o)
{
    re_cost cost = {.f[0] = frame_start};
    bool ok = true, after_quant = false, lazy_ok = false;
    while (ok && s != NULL && *s != '\0') {
        char ch = *s;
        size_t qn = ch == '{' ? quantifier_len(s) : 0;
        bool quant = ch == '*' || ch == '+' || ch == '?' || qn > 0;
        if (quant && after_quant) {
            if (ch != '?' || !lazy_ok)
                return -1;
            lazy_ok = false;
            s++;
            continue;
        }
        if (quant) {
            ok = cost_repeat(&cost, quantifier_of(s));
            sb_putn(o, s, qn ? qn : 1);
            s += qn ? qn : 1;
        } else if (ch == '(' || ch == ')' || ch == '|') {
            if (ch == '(' && s[1] == '?' && s[2] != ':')
                return -1;
            ok = cost_group(&cost, ch);
            sb_putc(o, ch);
            s += ch == '(' && s[1] == '?' ? 3 : 1;
        } else {
            ok = cost_atom(&cost, (re_size){1, 0, 0}, atom_empty(s));
            s = re_atom(s, o);
        }
        after_quant = lazy_ok = quant;
    }
    return !ok || s == NULL || o->oom ? -1 : 0;
}

/* Compiles an ECMA pattern into re; false when unsupported. */
static bool re_compile(regex_t *re, const char *ecma)
{
    sbuf ere = {0};
    if (re_translate(ecma, &ere) != 0 || ere.oom) {
        free(ere.p);
        return false;
    }
    locale_t old = utf8_enter();
    int rc = regcomp(re, ere.p != NULL ? ere.p : "", REG_EXTENDED | REG_NOSUB);
    utf8_leave(old);
    free(ere.p);
    return rc == 0;
}

/* ---- instance helpers ---------------------------------------------------- */

static bool real_is_integral(double d)
{
    return isfinite(d) && d == floor(d);
}

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
        return T_NUMBER | (real_is_integral(json_real_value(v)) ? T_INTEGER : 0);
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
static bool json_same(const json_t *a, const json_t *b)
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
            if (!json_same(json_array_get(a, i), json_array_get(b, i)))
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
            if (vb == NULL || !json_same(va, vb))
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

/* ---- errors -------------------------------------------------------------- */

static void render_path(const ipath *p, char *buf, size_t cap, size_t *len)
{
    if (p == NULL)
        return;
    render_path(p->up, buf, cap, len);
    char tmp[32];
    const char *seg = p->key;
    if (seg == NULL) {
        snprintf(tmp, sizeof(tmp), "%zu", p->index);
        seg = tmp;
    }
    if (*len + 1 < cap)
        buf[(*len)++] = '/';
    for (; *seg != '\0' && *len + 2 < cap; seg++) {
        if (*seg == '~' || *seg == '/') {
            buf[(*len)++] = '~';
            buf[(*len)++] = *seg == '~' ? '0' : '1';
        } else {
            buf[(*len)++] = *seg;
        }
    }
    buf[*len] = '\0';
}

static int report(vctx *c, int code, const ipath *p, const char *kw, const char *fmt,
                  va_list ap)
{
    char ptr[EV_ERROR_TEXT] = "/";
    char what[EV_ERROR_TEXT];
    size_t len = 0;
    if (p != NULL)
        render_path(p, ptr, sizeof(ptr), &len);
    vsnprintf(what, sizeof(what), fmt, ap);
    return ev_error_set(c->err, code, "%s: %s: %s", ptr, kw, what);
}

/* A mismatch: EV_ESCHEMA, with text unless inside a speculative branch. */
__attribute__((format(printf, 4, 5))) static int
fail(vctx *c, const ipath *p, const char *kw, const char *fmt, ...)
{
    if (c->quiet)
        return EV_ESCHEMA;
    va_list ap;
    va_start(ap, fmt);
    report(c, EV_ESCHEMA, p, kw, fmt, ap);
    va_end(ap);
    return EV_ESCHEMA;
}

/* A broken schema (unresolved $ref, endless recursion): always reported. */
__attribute__((format(printf, 5, 6))) static int
hard(vctx *c, int code, const ipath *p, const char *kw, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(c, code, p, kw, fmt, ap);
    va_end(ap);
    return code;
}

static bool is_hard(int rc)
{
    return rc != 0 && rc != EV_ESCHEMA;
}

/* ---- validation ---------------------------------------------------------- */

static int validate_node(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (n->boolean == 1)
        return 0;
    if (n->boolean == 0)
        return fail(c, p, "false", "no value is allowed here");
    if (c->depth >= MAX_DEPTH)
        return hard(c, EV_EDEPTH, p, "$ref", "schema recursion deeper than %d",
                    MAX_DEPTH);
    c->depth++;
    int rc = 0;
    for (size_t i = 0; i < n->n_ops && rc == 0; i++)
        rc = n->ops[i](n, v, p, c);
    c->depth--;
    return rc;
}

/* Validates without reporting a mismatch (hard errors still carry text). */
static int try_validate(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    bool quiet = c->quiet;
    c->quiet = true;
    int rc = validate_node(n, v, p, c);
    c->quiet = quiet;
    return rc;
}

/* A subschema at a child location; a false subschema is blamed on kw. */
static int validate_child(const snode *sub, const json_t *v, const ipath *p, vctx *c,
                          const char *kw)
{
    if (sub->boolean == 0)
        return fail(c, p, kw, "no value is allowed here");
    return validate_node(sub, v, p, c);
}

static int ck_ref(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (n->ref == NULL)
        return hard(c, EV_ENOTFOUND, p, "$ref", "unresolved reference \"%s\"",
                    n->ref_uri);
    return validate_node(n->ref, v, p, c);
}

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
    return fail(c, p, "type", "expected %s, got %s", want, type_name(v));
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
        if (json_same(v, json_array_get(n->enum_vals, i)))
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
    return fail(c, p, "enum", "%s is not one of %s", got, allowed);
}

static int ck_const(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    return json_same(v, n->const_val) ? 0
                                      : fail(c, p, "const", "value differs from const");
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
    return fail(c, p, "multipleOf", "%s is not a multiple of %s", fmt_num(v, a, 32),
                fmt_num(n->multiple_of, b, 32));
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
    return fail(c, p, kw, "%s is %s %s", fmt_num(v, a, 32), what, fmt_num(limit, b, 32));
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
    return fail(c, p, "maxLength", "length %zu is greater than %zu", len, n->max_length);
}

static int ck_min_length(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (!json_is_string(v))
        return 0;
    size_t len = utf8_length(json_string_value(v), json_string_length(v));
    if (len >= n->min_length)
        return 0;
    return fail(c, p, "minLength", "length %zu is less than %zu", len, n->min_length);
}

static int ck_pattern(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (!json_is_string(v) || re_search_ok(&n->pattern, json_string_value(v)))
        return 0;
    return fail(c, p, "pattern", "does not match \"%s\"", n->pattern_src);
}

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
            return fail(c, p, "format", "not a valid %s", n->format);
    }
    return 0;
}

static int ck_items(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (!json_is_array(v))
        return 0;
    size_t size = json_array_size(v);
    size_t fixed = n->items_one != NULL ? size : n->items_arr.n;
    for (size_t i = 0; i < size; i++) {
        const snode *sub = n->items_one;
        const char *kw = "items";
        if (sub == NULL && i < fixed) {
            sub = n->items_arr.v[i];
        } else if (sub == NULL) {
            sub = n->additional_items;
            kw = "additionalItems";
            if (sub == NULL)
                break;
            if (sub->boolean == 0)
                return fail(c, p, kw, "%zu items, at most %zu allowed", size, fixed);
        }
        ipath ip = {p, NULL, i};
        int rc = validate_child(sub, json_array_get(v, i), &ip, c, kw);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int ck_max_items(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (!json_is_array(v) || json_array_size(v) <= n->max_items)
        return 0;
    return fail(c, p, "maxItems", "%zu items, at most %zu allowed", json_array_size(v),
                n->max_items);
}

static int ck_min_items(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (!json_is_array(v) || json_array_size(v) >= n->min_items)
        return 0;
    return fail(c, p, "minItems", "%zu items, at least %zu required", json_array_size(v),
                n->min_items);
}

static int ck_unique_items(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (!n->unique_items || !json_is_array(v))
        return 0;
    size_t size = json_array_size(v);
    for (size_t i = 0; i < size; i++)
        for (size_t j = i + 1; j < size; j++)
            if (json_same(json_array_get(v, i), json_array_get(v, j)))
                return fail(c, p, "uniqueItems", "items %zu and %zu are equal", i, j);
    return 0;
}

static int ck_contains(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (!json_is_array(v))
        return 0;
    for (size_t i = 0; i < json_array_size(v); i++) {
        ipath ip = {p, NULL, i};
        int rc = try_validate(n->contains, json_array_get(v, i), &ip, c);
        if (rc == 0 || is_hard(rc))
            return rc;
    }
    return fail(c, p, "contains", "no item matches");
}

static int ck_max_props(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (!json_is_object(v) || json_object_size(v) <= n->max_props)
        return 0;
    return fail(c, p, "maxProperties", "%zu properties, at most %zu allowed",
                json_object_size(v), n->max_props);
}

static int ck_min_props(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (!json_is_object(v) || json_object_size(v) >= n->min_props)
        return 0;
    return fail(c, p, "minProperties", "%zu properties, at least %zu required",
                json_object_size(v), n->min_props);
}

static int ck_required(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (!json_is_object(v))
        return 0;
    for (size_t i = 0; i < json_array_size(n->required); i++) {
        const char *key = json_string_value(json_array_get(n->required, i));
        if (json_object_get(v, key) == NULL)
            return fail(c, p, "required", "missing property \"%s\"", key);
    }
    return 0;
}

static int ck_properties(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (!json_is_object(v))
        return 0;
    for (size_t i = 0; i < n->n_props; i++) {
        const json_t *child = json_object_get(v, n->props[i].key);
        if (child == NULL)
            continue;
        ipath ip = {p, n->props[i].key, 0};
        int rc = validate_child(n->props[i].sub, child, &ip, c, "properties");
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* patternProperties and additionalProperties: one pass over the keys. */
static int ck_extra_props(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (!json_is_object(v))
        return 0;
    const char *key;
    json_t *child;
    json_object_foreach((json_t *)v, key, child)
    {
        ipath ip = {p, key, 0};
        bool matched = false;
        for (size_t i = 0; i < n->n_pprops; i++) {
            if (!re_search_ok(&n->pprops[i].re, key))
                continue;
            matched = true;
            int rc = validate_child(n->pprops[i].sub, child, &ip, c, "patternProperties");
            if (rc != 0)
                return rc;
        }
        const snode *extra = n->additional_props;
        if (matched || extra == NULL || json_object_get(n->props_obj, key) != NULL)
            continue;
        if (extra->boolean == 0)
            return fail(c, p, "additionalProperties", "property \"%s\" is not allowed",
                        key);
        int rc = validate_node(extra, child, &ip, c);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int ck_dependencies(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (!json_is_object(v))
        return 0;
    for (size_t i = 0; i < n->n_deps; i++) {
        const depend *d = &n->deps[i];
        if (json_object_get(v, d->key) == NULL)
            continue;
        for (size_t j = 0; j < json_array_size(d->names); j++) {
            const char *need = json_string_value(json_array_get(d->names, j));
            if (json_object_get(v, need) == NULL)
                return fail(c, p, "dependencies", "property \"%s\" requires \"%s\"",
                            d->key, need);
        }
        if (d->sub != NULL) {
            int rc = validate_child(d->sub, v, p, c, "dependencies");
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

static int ck_property_names(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (!json_is_object(v))
        return 0;
    const char *key;
    json_t *child;
    json_object_foreach((json_t *)v, key, child)
    {
        (void)child;
        json_t *name = json_string(key);
        if (name == NULL)
            return hard(c, EV_ENOMEM, p, "propertyNames", "out of memory");
        ipath ip = {p, key, 0};
        int rc = try_validate(n->property_names, name, &ip, c);
        json_decref(name);
        if (is_hard(rc))
            return rc;
        if (rc != 0)
            return fail(c, p, "propertyNames", "property name \"%s\" is not allowed",
                        key);
    }
    return 0;
}

static int ck_if(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    int rc = try_validate(n->if_s, v, p, c);
    if (is_hard(rc))
        return rc;
    const snode *next = rc == 0 ? n->then_s : n->else_s;
    return next != NULL ? validate_child(next, v, p, c, rc == 0 ? "then" : "else") : 0;
}

static int ck_all_of(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    for (size_t i = 0; i < n->all_of.n; i++) {
        int rc = validate_child(n->all_of.v[i], v, p, c, "allOf");
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int ck_any_of(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    for (size_t i = 0; i < n->any_of.n; i++) {
        int rc = try_validate(n->any_of.v[i], v, p, c);
        if (rc == 0 || is_hard(rc))
            return rc;
    }
    return fail(c, p, "anyOf", "no subschema matches");
}

static int ck_one_of(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    size_t first = SIZE_MAX;
    for (size_t i = 0; i < n->one_of.n; i++) {
        int rc = try_validate(n->one_of.v[i], v, p, c);
        if (is_hard(rc))
            return rc;
        if (rc != 0)
            continue;
        if (first != SIZE_MAX)
            return fail(c, p, "oneOf", "subschemas %zu and %zu both match", first, i);
        first = i;
    }
    return first != SIZE_MAX ? 0 : fail(c, p, "oneOf", "no subschema matches");
}

static int ck_not(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    int rc = try_validate(n->not_s, v, p, c);
    if (is_hard(rc))
        return rc;
    return rc == 0 ? fail(c, p, "not", "value matches the forbidden schema") : 0;
}

/* ---- compilation --------------------------------------------------------- */

typedef struct cctx {
    ev_schema_set *s;
    ev_error *err;
    const char *kw; /* keyword being compiled, for messages */
} cctx;

static int bad(cctx *cc, const snode *n, const char *what)
{
    return ev_error_set(cc->err, EV_EINVAL, "schema %s: %s: %s",
                        n->base[0] != '\0' ? n->base : "(anonymous)", cc->kw, what);
}

static snode *compile_node(cctx *cc, json_t *j, const char *base);

static int compile_sub(cctx *cc, snode *n, json_t *v, snode **out)
{
    const char *kw = cc->kw;
    *out = compile_node(cc, v, n->base);
    cc->kw = kw;
    return *out != NULL ? 0 : cc->err->code;
}

static int compile_subs(cctx *cc, snode *n, json_t *v, subs *out)
{
    if (!json_is_array(v) || json_array_size(v) == 0)
        return bad(cc, n, "must be a non-empty array of schemas");
    out->v = calloc(json_array_size(v), sizeof(*out->v));
    if (out->v == NULL)
        return ev_error_set(cc->err, EV_ENOMEM, "schema: out of memory");
    for (size_t i = 0; i < json_array_size(v); i++) {
        int rc = compile_sub(cc, n, json_array_get(v, i), &out->v[out->n]);
        if (rc != 0)
            return rc;
        out->n++;
    }
    return 0;
}

#define FIELD(n, off, type) ((type *)((char *)(n) + (off)))

/* Keyword compilers: off is the offset of the snode field they fill. */
static int kc_number(cctx *cc, snode *n, json_t *v, size_t off)
{
    if (!json_is_number(v))
        return bad(cc, n, "must be a number");
    *FIELD(n, off, const json_t *) = v;
    return 0;
}

static int kc_multiple_of(cctx *cc, snode *n, json_t *v, size_t off)
{
    if (!json_is_number(v) || json_number_value(v) <= 0)
        return bad(cc, n, "must be a number greater than 0");
    return kc_number(cc, n, v, off);
}

static int kc_count(cctx *cc, snode *n, json_t *v, size_t off)
{
    double d = json_number_value(v);
    if (json_is_integer(v) && json_integer_value(v) >= 0)
        *FIELD(n, off, size_t) = (size_t)json_integer_value(v);
    else if (json_is_real(v) && d >= 0 && real_is_integral(d) && d < 1e18)
        *FIELD(n, off, size_t) = (size_t)d;
    else
        return bad(cc, n, "must be a non-negative integer");
    return 0;
}

static int kc_schema(cctx *cc, snode *n, json_t *v, size_t off)
{
    return compile_sub(cc, n, v, FIELD(n, off, snode *));
}

static int kc_schema_list(cctx *cc, snode *n, json_t *v, size_t off)
{
    return compile_subs(cc, n, v, FIELD(n, off, subs));
}

static int kc_any(cctx *cc, snode *n, json_t *v, size_t off)
{
    (void)cc;
    *FIELD(n, off, const json_t *) = v;
    return 0;
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
            return bad(cc, n, "unknown type");
        n->types = bit;
        return 0;
    }
    if (!json_is_array(v))
        return bad(cc, n, "must be a string or an array of strings");
    for (size_t i = 0; i < json_array_size(v); i++) {
        const char *t = json_string_value(json_array_get(v, i));
        if (t == NULL || type_bit(t, &bit) != 0)
            return bad(cc, n, "unknown type");
        n->types |= bit;
    }
    return 0;
}

static int kc_enum(cctx *cc, snode *n, json_t *v, size_t off)
{
    if (!json_is_array(v))
        return bad(cc, n, "must be an array");
    return kc_any(cc, n, v, off);
}

static int kc_pattern(cctx *cc, snode *n, json_t *v, size_t off)
{
    (void)off;
    if (!json_is_string(v))
        return bad(cc, n, "must be a string");
    if (!re_compile(&n->pattern, json_string_value(v)))
        return bad(cc, n, "unsupported regular expression");
    n->has_pattern = true;
    n->pattern_src = json_string_value(v);
    return 0;
}

static int kc_format(cctx *cc, snode *n, json_t *v, size_t off)
{
    (void)off;
    if (!json_is_string(v))
        return bad(cc, n, "must be a string");
    n->format = json_string_value(v);
    return 0;
}

static int kc_items(cctx *cc, snode *n, json_t *v, size_t off)
{
    (void)off;
    if (json_is_array(v))
        return json_array_size(v) == 0 ? 0 : compile_subs(cc, n, v, &n->items_arr);
    return compile_sub(cc, n, v, &n->items_one);
}

static int kc_unique(cctx *cc, snode *n, json_t *v, size_t off)
{
    (void)off;
    if (!json_is_boolean(v))
        return bad(cc, n, "must be a boolean");
    n->unique_items = json_is_true(v);
    return 0;
}

static int kc_required(cctx *cc, snode *n, json_t *v, size_t off)
{
    if (!json_is_array(v))
        return bad(cc, n, "must be an array of strings");
    for (size_t i = 0; i < json_array_size(v); i++)
        if (!json_is_string(json_array_get(v, i)))
            return bad(cc, n, "must be an array of strings");
    return kc_any(cc, n, v, off);
}

static int kc_properties(cctx *cc, snode *n, json_t *v, size_t off)
{
    (void)off;
    if (!json_is_object(v))
        return bad(cc, n, "must be an object of schemas");
    n->props_obj = v;
    n->props = calloc(json_object_size(v) + 1, sizeof(*n->props));
    if (n->props == NULL)
        return ev_error_set(cc->err, EV_ENOMEM, "schema: out of memory");
    const char *key;
    json_t *sub;
    json_object_foreach(v, key, sub)
    {
        named *e = &n->props[n->n_props];
        e->key = key;
        int rc = compile_sub(cc, n, sub, &e->sub);
        if (rc != 0)
            return rc;
        n->n_props++;
    }
    return 0;
}

static int kc_pattern_props(cctx *cc, snode *n, json_t *v, size_t off)
{
    (void)off;
    if (!json_is_object(v))
        return bad(cc, n, "must be an object of schemas");
    n->pprops = calloc(json_object_size(v) + 1, sizeof(*n->pprops));
    if (n->pprops == NULL)
        return ev_error_set(cc->err, EV_ENOMEM, "schema: out of memory");
    const char *key;
    json_t *sub;
    json_object_foreach(v, key, sub)
    {
        patsub *e = &n->pprops[n->n_pprops];
        if (!re_compile(&e->re, key))
            return bad(cc, n, "unsupported regular expression");
        n->n_pprops++;
        int rc = compile_sub(cc, n, sub, &e->sub);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int kc_dependencies(cctx *cc, snode *n, json_t *v, size_t off)
{
    (void)off;
    if (!json_is_object(v))
        return bad(cc, n, "must be an object");
    n->deps = calloc(json_object_size(v) + 1, sizeof(*n->deps));
    if (n->deps == NULL)
        return ev_error_set(cc->err, EV_ENOMEM, "schema: out of memory");
    const char *key;
    json_t *dep;
    json_object_foreach(v, key, dep)
    {
        depend *d = &n->deps[n->n_deps];
        d->key = key;
        if (json_is_array(dep)) {
            for (size_t i = 0; i < json_array_size(dep); i++)
                if (!json_is_string(json_array_get(dep, i)))
                    return bad(cc, n, "must list property names");
            d->names = dep;
        } else {
            int rc = compile_sub(cc, n, dep, &d->sub);
            if (rc != 0)
                return rc;
        }
        n->n_deps++;
    }
    return 0;
}

static int kc_definitions(cctx *cc, snode *n, json_t *v, size_t off)
{
    (void)off;
    if (!json_is_object(v))
        return bad(cc, n, "must be an object of schemas");
    const char *key;
    json_t *sub;
    json_object_foreach(v, key, sub)
    {
        snode *ignored;
        int rc = compile_sub(cc, n, sub, &ignored);
        if (rc != 0)
            return rc;
    }
    return 0;
}

#define OFF(field) offsetof(snode, field)

/* Draft-07 keywords in checking order (the order decides which failure is
 * reported first). A NULL check means another keyword's check covers it. */
static const struct keyword {
    const char *name;
    int (*compile)(cctx *cc, snode *n, json_t *v, size_t off);
    size_t off;
    check_fn check;
} keywords[] = {
    {"type", kc_type, 0, ck_type},
    {"enum", kc_enum, OFF(enum_vals), ck_enum},
    {"const", kc_any, OFF(const_val), ck_const},
    {"multipleOf", kc_multiple_of, OFF(multiple_of), ck_multiple_of},
    {"maximum", kc_number, OFF(maximum), ck_maximum},
    {"exclusiveMaximum", kc_number, OFF(exclusive_maximum), ck_exclusive_maximum},
    {"minimum", kc_number, OFF(minimum), ck_minimum},
    {"exclusiveMinimum", kc_number, OFF(exclusive_minimum), ck_exclusive_minimum},
    {"maxLength", kc_count, OFF(max_length), ck_max_length},
    {"minLength", kc_count, OFF(min_length), ck_min_length},
    {"pattern", kc_pattern, 0, ck_pattern},
    {"format", kc_format, 0, ck_format},
    {"maxItems", kc_count, OFF(max_items), ck_max_items},
    {"minItems", kc_count, OFF(min_items), ck_min_items},
    {"uniqueItems", kc_unique, 0, ck_unique_items},
    {"items", kc_items, 0, ck_items},
    {"additionalItems", kc_schema, OFF(additional_items), NULL},
    {"contains", kc_schema, OFF(contains), ck_contains},
    {"maxProperties", kc_count, OFF(max_props), ck_max_props},
    {"minProperties", kc_count, OFF(min_props), ck_min_props},
    {"required", kc_required, OFF(required), ck_required},
    {"properties", kc_properties, 0, ck_properties},
    {"patternProperties", kc_pattern_props, 0, ck_extra_props},
    {"additionalProperties", kc_schema, OFF(additional_props), ck_extra_props},
    {"dependencies", kc_dependencies, 0, ck_dependencies},
    {"propertyNames", kc_schema, OFF(property_names), ck_property_names},
    {"if", kc_schema, OFF(if_s), ck_if},
    {"then", kc_schema, OFF(then_s), NULL},
    {"else", kc_schema, OFF(else_s), NULL},
    {"allOf", kc_schema_list, OFF(all_of), ck_all_of},
    {"anyOf", kc_schema_list, OFF(any_of), ck_any_of},
    {"oneOf", kc_schema_list, OFF(one_of), ck_one_of},
    {"not", kc_schema, OFF(not_s), ck_not},
    {"definitions", kc_definitions, 0, NULL},
};

_Static_assert(sizeof(keywords) / sizeof(keywords[0]) <= MAX_OPS, "MAX_OPS too small");

static void add_op(snode *n, check_fn fn)
{
    for (size_t i = 0; i < n->n_ops; i++)
        if (n->ops[i] == fn)
            return;
    n->ops[n->n_ops++] = fn;
}

static int compile_keywords(cctx *cc, snode *n, json_t *j, bool checks)
{
    for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++) {
        const struct keyword *k = &keywords[i];
        json_t *v = json_object_get(j, k->name);
        if (v == NULL)
            continue;
        cc->kw = k->name;
        int rc = k->compile(cc, n, v, k->off);
        if (rc != 0)
            return rc;
        if (checks && k->check != NULL)
            add_op(n, k->check);
    }
    return 0;
}

/* Draft-07 ignores the siblings of $ref, but subschemas below them may carry
 * an $id that another $ref names: they are compiled for their identifiers
 * only (no checks), and dropped again if they do not compile. */
static void compile_ref_siblings(cctx *cc, snode *n, json_t *j)
{
    mark m = mark_take(cc->s);
    ev_error scratch;
    cctx quiet = {cc->s, &scratch, NULL};
    if (compile_keywords(&quiet, n, j, false) != 0)
        rollback(cc->s, m);
}

/* $id: a new base URI (registered for n) or, for "#name", a plain-name anchor. */
static int compile_id(cctx *cc, snode *n, json_t *id)
{
    if (!json_is_string(id)) {
        cc->kw = "$id";
        return bad(cc, n, "must be a string");
    }
    char *full = uri_resolve(n->base, json_string_value(id));
    if (full == NULL)
        return ev_error_set(cc->err, EV_ENOMEM, "schema: out of memory");
    char *hash = strchr(full, '#');
    if (hash != NULL && hash[1] != '\0') {
        char *anchor = strdup(full);
        int rc = register_uri(cc->s, anchor, n, cc->err);
        if (rc != 0 || json_string_value(id)[0] == '#') {
            free(full);
            return rc;
        }
    }
    if (hash != NULL)
        *hash = '\0';
    const char *base = intern(cc->s, full);
    if (base == NULL)
        return ev_error_set(cc->err, EV_ENOMEM, "schema: out of memory");
    n->base = base;
    return register_uri(cc->s, strdup(base), n, cc->err);
}

static snode *node_new(ev_schema_set *s, const json_t *j, const char *base)
{
    snode *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return NULL;
    n->json = j;
    n->base = base;
    n->boolean = -1;
    n->max_length = n->max_items = n->max_props = SIZE_MAX;
    if (pv_push(&s->nodes, n) != 0) {
        free(n);
        return NULL;
    }
    if (reg_put(&s->reg, NULL, j, n) != 0)
        return NULL; /* n is owned by s->nodes already */
    return n;
}

/* Compiles schema j (borrowed; the set keeps the document alive). NULL on
 * error, with cc->err filled. */
static snode *compile_node(cctx *cc, json_t *j, const char *base)
{
    if (json_is_true(j))
        return &cc->s->true_node;
    if (json_is_false(j))
        return &cc->s->false_node;
    if (!json_is_object(j)) {
        ev_error_set(cc->err, EV_EINVAL, "schema %s: %s: must be an object or a boolean",
                     base[0] != '\0' ? base : "(anonymous)", cc->kw ? cc->kw : "(root)");
        return NULL;
    }
    snode *n = node_new(cc->s, j, base);
    if (n == NULL) {
        ev_error_set(cc->err, EV_ENOMEM, "schema: out of memory");
        return NULL;
    }
    json_t *ref = json_object_get(j, "$ref");
    int rc = 0;
    if (ref != NULL) { /* draft-07: $ref alone decides, even over a sibling $id */
        cc->kw = "$ref";
        if (!json_is_string(ref))
            rc = bad(cc, n, "must be a string");
        else if ((n->ref_uri = uri_resolve(base, json_string_value(ref))) == NULL ||
                 pv_push(&cc->s->pending, n) != 0)
            rc = ev_error_set(cc->err, EV_ENOMEM, "schema: out of memory");
        n->ops[n->n_ops++] = ck_ref;
        if (rc == 0)
            compile_ref_siblings(cc, n, j);
        return rc == 0 ? n : NULL;
    }
    json_t *id = json_object_get(j, "$id");
    if (id != NULL)
        rc = compile_id(cc, n, id);
    if (rc == 0)
        rc = compile_keywords(cc, n, j, true);
    return rc == 0 ? n : NULL;
}

/* ---- $ref resolution ----------------------------------------------------- */

static int add_doc(ev_schema_set *s, const char *base, const char *alias, json_t *doc,
                   ev_error *err);

static char *pct_decode(const char *s)
{
    sbuf o = {0};
    for (; *s != '\0'; s++) {
        long v = *s == '%' ? hex_n(s + 1, 2) : -1;
        if (v > 0) {
            sb_putc(&o, (char)v);
            s += 2;
        } else {
            sb_putc(&o, *s);
        }
    }
    return sb_take(&o);
}

/* Loads resource uri from a mapped remote directory. 0 when there is no such
 * file (the reference stays unresolved), or a hard error. */
static int load_remote(ev_schema_set *s, const char *uri, ev_error *err)
{
    for (size_t i = 0; i < s->n_remotes; i++) {
        const remote *r = &s->remotes[i];
        size_t plen = strlen(r->prefix);
        if (strncmp(uri, r->prefix, plen) != 0)
            continue;
        char path[PATH_MAX];
        int k = snprintf(path, sizeof(path), "%s/%s", r->dir, uri + plen);
        if (k < 0 || (size_t)k >= sizeof(path))
            return 0;
        json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, NULL);
        if (doc == NULL)
            continue;
        int rc = add_doc(s, uri, NULL, doc, err);
        json_decref(doc);
        return rc == EV_ENOMEM ? rc : 0;
    }
    return 0;
}

/* Steps one JSON pointer token down from cur; NULL if absent. */
static json_t *pointer_step(json_t *cur, char *tok)
{
    char *w = tok;
    for (const char *r = tok; *r != '\0'; r++) {
        if (r[0] == '~' && (r[1] == '0' || r[1] == '1')) {
            *w++ = r[1] == '0' ? '~' : '/';
            r++;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    if (json_is_object(cur))
        return json_object_get(cur, tok);
    if (!json_is_array(cur) || !digits(tok, strlen(tok)) || tok[0] == '\0' ||
        (tok[0] == '0' && tok[1] != '\0') || strlen(tok) > 18)
        return NULL;
    return json_array_get(cur, (size_t)strtoull(tok, NULL, 10));
}

/* The node of schema value cur, compiled now (with base *base, taken) when no
 * keyword compiled it. */
static int target_node(ev_schema_set *s, json_t *cur, char **base, snode **out,
                       ev_error *err)
{
    if (json_is_boolean(cur)) {
        *out = json_is_true(cur) ? &s->true_node : &s->false_node;
        return 0;
    }
    *out = reg_get(&s->reg, NULL, cur);
    if (*out != NULL)
        return 0;
    char *h = strchr(*base, '#');
    if (h != NULL)
        *h = '\0';
    mark m = mark_take(s);
    const char *b = intern(s, *base);
    *base = NULL;
    if (b == NULL)
        return EV_ENOMEM;
    cctx cc = {s, err, NULL};
    *out = compile_node(&cc, cur, b);
    if (*out != NULL)
        return 0;
    rollback(s, m);
    return err->code;
}

/* Walks pointer (percent-encoded, after '#') from root; the target's base is
 * root's changed by every $id on the way. Compiles the target if needed. */
static int resolve_pointer(ev_schema_set *s, snode *root, const char *frag, snode **out,
                           ev_error *err)
{
    char *ptr = pct_decode(frag);
    char *base = strdup(root->base);
    int rc = ptr == NULL || base == NULL ? EV_ENOMEM : 0;
    json_t *cur = rc == 0 && ptr[0] == '/' ? (json_t *)root->json : NULL;
    for (char *tok = cur != NULL ? ptr + 1 : NULL; tok != NULL && cur != NULL;) {
        char *slash = strchr(tok, '/');
        if (slash != NULL)
            *slash = '\0';
        cur = pointer_step(cur, tok);
        tok = slash != NULL ? slash + 1 : NULL;
        const char *id = json_string_value(json_object_get(cur, "$id"));
        if (id != NULL && tok != NULL) {
            char *nb = uri_resolve(base, id);
            free(base);
            base = nb;
            if (base == NULL)
                rc = EV_ENOMEM;
        }
    }
    if (rc == 0 && cur != NULL)
        rc = target_node(s, cur, &base, out, err);
    free(ptr);
    free(base);
    return rc == EV_ENOMEM ? rc : 0;
}

/* Finds the node uri (absolute, maybe with a fragment) names; *out stays NULL
 * when nothing does. Only allocation failure is an error. */
static int resolve_uri(ev_schema_set *s, const char *uri, snode **out, ev_error *err)
{
    *out = NULL;
    const char *hash = strchr(uri, '#');
    const char *frag = hash != NULL ? hash + 1 : "";
    bool anchor = frag[0] != '\0' && frag[0] != '/';
    char *res = strndup(uri, hash != NULL ? (size_t)(hash - uri) : strlen(uri));
    if (res == NULL)
        return EV_ENOMEM;
    snode *root = reg_get(&s->reg, res, NULL);
    int rc = 0;
    if (root == NULL && (!anchor || reg_get(&s->reg, uri, NULL) == NULL)) {
        rc = load_remote(s, res, err);
        root = reg_get(&s->reg, res, NULL);
    }
    free(res);
    if (rc != 0)
        return rc;
    if (anchor)
        *out = reg_get(&s->reg, uri, NULL);
    else if (root != NULL && frag[0] == '\0')
        *out = root;
    else if (root != NULL)
        rc = resolve_pointer(s, root, frag, out, err);
    return rc;
}

/* Resolves every pending $ref from index from on; new documents and nodes the
 * resolution brings in are resolved too. */
static int link_refs(ev_schema_set *s, size_t from, ev_error *err)
{
    for (size_t i = from; i < s->pending.n; i++) {
        snode *n = s->pending.v[i];
        if (n->ref != NULL)
            continue;
        ev_error scratch;
        if (resolve_uri(s, n->ref_uri, &n->ref, &scratch) == EV_ENOMEM)
            return ev_error_set(err, EV_ENOMEM, "schema: out of memory");
    }
    return 0;
}

/* Resolves all pending references and forgets the resolved ones. */
static int link_all(ev_schema_set *s, ev_error *err)
{
    int rc = link_refs(s, 0, err);
    size_t w = 0;
    for (size_t i = 0; i < s->pending.n; i++) {
        snode *n = s->pending.v[i];
        if (n->ref == NULL)
            s->pending.v[w++] = n;
    }
    s->pending.n = w;
    return rc;
}

/* Compiles doc under base (and alias), registering both. Undone on failure. */
static int add_doc(ev_schema_set *s, const char *base, const char *alias, json_t *doc,
                   ev_error *err)
{
    mark m = mark_take(s);
    cctx cc = {s, err, NULL};
    const char *b = intern(s, uri_norm(base));
    int rc = b == NULL || pv_push(&s->docs, doc) != 0 ? EV_ENOMEM : 0;
    if (rc != 0) {
        ev_error_set(err, rc, "schema: out of memory");
        goto cleanup;
    }
    json_incref(doc); /* the set's reference, dropped by rollback or free */
    snode *root = compile_node(&cc, doc, b);
    rc = root != NULL ? 0 : err->code;
    if (rc == 0)
        rc = register_uri(s, strdup(b), root, err);
    if (rc == 0 && alias != NULL)
        rc = register_uri(s, uri_norm(alias), root, err);
cleanup:
    if (rc != 0)
        rollback(s, m);
    return rc;
}

/* ---- public API ---------------------------------------------------------- */

ev_schema_set *ev_schema_set_new(void)
{
    ev_schema_set *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->true_node.boolean = 1;
    s->true_node.base = "";
    s->false_node.boolean = 0;
    s->false_node.base = "";
    return s;
}

void ev_schema_set_free(ev_schema_set *s)
{
    if (s == NULL)
        return;
    rollback(s, (mark){0, 0, 0, 0, 0});
    free(s->nodes.v);
    free(s->docs.v);
    free(s->bases.v);
    free(s->pending.v);
    free(s->reg.e);
    free(s->reg.bucket);
    for (size_t i = 0; i < s->n_remotes; i++) {
        free(s->remotes[i].prefix);
        free(s->remotes[i].dir);
    }
    free(s->remotes);
    free(s);
}

int ev_schema_set_add(ev_schema_set *s, const char *uri, json_t *schema, ev_error *err)
{
    ev_error scratch;
    if (err == NULL)
        err = &scratch;
    if (s == NULL || uri == NULL || schema == NULL)
        return ev_error_set(err, EV_EINVAL, "schema: null argument");
    int rc = add_doc(s, uri, NULL, schema, err);
    return rc != 0 ? rc : link_all(s, err);
}

int ev_schema_set_check(ev_schema_set *s, ev_error *err)
{
    if (s == NULL)
        return ev_error_set(err, EV_EINVAL, "schema: null argument");
    for (size_t i = 0; i < s->pending.n; i++) {
        const snode *n = s->pending.v[i];
        if (n->ref == NULL)
            return ev_error_set(err, EV_ENOTFOUND,
                                "schema: $ref: unresolved \"%s\" (in %s)", n->ref_uri,
                                n->base);
    }
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.json names of dir except choreography.json, sorted. */
static int list_dir(const char *dir, pvec *names, ev_error *err)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return ev_error_set(err, EV_EIO, "schema: cannot open directory %s", dir);
    int rc = 0;
    const struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len <= 5 || strcmp(e->d_name + len - 5, ".json") != 0 ||
            strcmp(e->d_name, "choreography.json") == 0)
            continue;
        char *name = strdup(e->d_name);
        if (name == NULL || pv_push(names, name) != 0) {
            free(name);
            rc = ev_error_set(err, EV_ENOMEM, "schema: out of memory");
        }
    }
    closedir(d);
    if (names->n > 0)
        qsort(names->v, names->n, sizeof(char *), name_cmp);
    return rc;
}

static int load_file(ev_schema_set *s, const char *dir, const char *name, ev_error *err)
{
    char path[PATH_MAX], base[PATH_MAX + 8];
    int k = snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (k < 0 || (size_t)k >= sizeof(path))
        return ev_error_set(err, EV_EINVAL, "schema: path too long: %s/%s", dir, name);
    json_error_t jerr;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL)
        return ev_error_set(err, EV_EPARSE, "schema %s: line %d: %s", name, jerr.line,
                            jerr.text);
    snprintf(base, sizeof(base), "file://%s", path);
    int rc = add_doc(s, base, name, doc, err);
    json_decref(doc);
    return rc;
}

int ev_schema_set_load_dir(ev_schema_set *s, const char *dir, ev_error *err)
{
    ev_error scratch;
    if (err == NULL)
        err = &scratch;
    if (s == NULL || dir == NULL)
        return ev_error_set(err, EV_EINVAL, "schema: null argument");
    pvec names = {0};
    char *abs = realpath(dir, NULL);
    int rc = abs == NULL ? ev_error_set(err, EV_EIO, "schema: no directory %s", dir)
                         : list_dir(abs, &names, err);
    for (size_t i = 0; rc == 0 && i < names.n; i++)
        rc = load_file(s, abs, names.v[i], err);
    if (rc == 0)
        rc = link_all(s, err);
    if (rc == 0)
        rc = ev_schema_set_check(s, err);
    for (size_t i = 0; i < names.n; i++)
        free(names.v[i]);
    free(names.v);
    free(abs);
    return rc;
}

int ev_schema_set_map_remote(ev_schema_set *s, const char *uri_prefix, const char *dir,
                             ev_error *err)
{
    if (s == NULL || uri_prefix == NULL || dir == NULL)
        return ev_error_set(err, EV_EINVAL, "schema: null argument");
    remote *nr = realloc(s->remotes, (s->n_remotes + 1) * sizeof(*nr));
    if (nr == NULL)
        return ev_error_set(err, EV_ENOMEM, "schema: out of memory");
    s->remotes = nr;
    remote r = {strdup(uri_prefix), strdup(dir)};
    if (r.prefix == NULL || r.dir == NULL) {
        free(r.prefix);
        free(r.dir);
        return ev_error_set(err, EV_ENOMEM, "schema: out of memory");
    }
    s->remotes[s->n_remotes++] = r;
    ev_error scratch;
    return link_all(s, err != NULL ? err : &scratch);
}

static int run(const snode *n, const json_t *instance, ev_error *err)
{
    ev_error_clear(err);
    if (instance == NULL)
        return ev_error_set(err, EV_EINVAL, "schema: null instance");
    vctx c = {err, err == NULL, 0}; /* nobody reads the text: do not build it */
    return validate_node(n, instance, NULL, &c);
}

/* The node registered as uri ("x" and "x#" are the same), or NULL. */
static const snode *lookup(const ev_schema_set *s, const char *uri)
{
    size_t len = strlen(uri);
    if (len == 0 || uri[len - 1] != '#')
        return reg_get(&s->reg, uri, NULL);
    char buf[512];
    if (len > sizeof(buf))
        return NULL;
    memcpy(buf, uri, len - 1);
    buf[len - 1] = '\0';
    return reg_get(&s->reg, buf, NULL);
}

int ev_schema_validate(ev_schema_set *s, const char *uri, const json_t *instance,
                       ev_error *err)
{
    if (s == NULL || uri == NULL)
        return ev_error_set(err, EV_EINVAL, "schema: null argument");
    const snode *n = lookup(s, uri);
    if (n == NULL)
        return ev_error_set(err, EV_ENOTFOUND, "schema %s: not found", uri);
    return run(n, instance, err);
}

int ev_schema_validate_doc(ev_schema_set *s, json_t *schema, const json_t *instance,
                           ev_error *err)
{
    ev_error scratch;
    if (err == NULL)
        err = &scratch;
    if (s == NULL || schema == NULL)
        return ev_error_set(err, EV_EINVAL, "schema: null argument");
    mark m = mark_take(s);
    bool shadow = s->shadow;
    s->shadow = true;
    int rc = add_doc(s, "", NULL, schema, err);
    if (rc == 0)
        rc = link_refs(s, m.pending, err);
    if (rc == 0)
        rc = run(lookup(s, ""), instance, err);
    rollback(s, m);
    s->shadow = shadow;
    return rc;
}

static const snode *lookup_type(const ev_schema_set *s, const char *type)
{
    char name[256];
    int k = snprintf(name, sizeof(name), "%s.json", type);
    if (k < 0 || (size_t)k >= sizeof(name))
        return NULL;
    return reg_get(&s->reg, name, NULL);
}

int ev_schema_validate_type(ev_schema_set *s, const char *type, const json_t *data,
                            ev_error *err)
{
    if (s == NULL || type == NULL)
        return ev_error_set(err, EV_EINVAL, "schema: null argument");
    const snode *n = lookup_type(s, type);
    if (n == NULL)
        return ev_error_set(err, EV_EUNKNOWN, "schema: unknown event type \"%s\"", type);
    return run(n, data, err);
}

bool ev_schema_has_type(ev_schema_set *s, const char *type)
{
    return s != NULL && type != NULL && lookup_type(s, type) != NULL;
}
