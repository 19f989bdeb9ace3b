/* SPDX-License-Identifier: MIT */
/* JSON Schema draft-07 validation over jansson: a set of schemas loaded from a
 * directory, $ref inside and across documents, errors with a JSON pointer.
 * This file: the set, compilation and validation dispatch, the public API. */
#include "schema.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema_internal.h"

/* ---- growable string and pointer vector ---------------------------------- */

void ev_sch_sb_putn(sbuf *b, const char *s, size_t n)
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

void ev_sch_sb_puts(sbuf *b, const char *s)
{
    ev_sch_sb_putn(b, s, strlen(s));
}
void ev_sch_sb_putc(sbuf *b, char c)
{
    ev_sch_sb_putn(b, &c, 1);
}

/* The built string, owned by the caller; NULL when an allocation failed. */
char *ev_sch_sb_take(sbuf *b)
{
    if (b->oom) {
        free(b->p);
        return NULL;
    }
    return b->p != NULL ? b->p : strdup("");
}
int ev_sch_pv_push(pvec *a, void *x)
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

/* ---- the set's bookkeeping ----------------------------------------------- */

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
void ev_sch_rollback(ev_schema_set *s, mark m)
{
    s->pending.n = m.pending;
    while (s->reg.n > m.reg)
        ev_sch_reg_pop(&s->reg);
    while (s->nodes.n > m.nodes)
        node_free(s->nodes.v[--s->nodes.n]);
    while (s->bases.n > m.bases)
        free(s->bases.v[--s->bases.n]);
    while (s->docs.n > m.docs)
        json_decref(s->docs.v[--s->docs.n]);
}

/* Keeps str (owned, may be NULL) for the set's lifetime; NULL on failure. */
const char *ev_sch_intern(ev_schema_set *s, char *str)
{
    if (str == NULL || ev_sch_pv_push(&s->bases, str) != 0) {
        free(str);
        return NULL;
    }
    return str;
}

/* Registers uri (stolen) for n. Outside validate_doc a URI names one schema. */
int ev_sch_register_uri(ev_schema_set *s, char *uri, snode *n, ev_error *err)
{
    if (uri == NULL)
        return ev_error_set(err, EV_ENOMEM, "schema: out of memory");
    snode *old = ev_sch_reg_get(&s->reg, uri, NULL);
    if (old == n) {
        free(uri);
        return 0;
    }
    if (old != NULL && !s->shadow) {
        ev_error_set(err, EV_EINVAL, "schema: %s: registered twice", uri);
        free(uri);
        return EV_EINVAL;
    }
    if (ev_sch_reg_put(&s->reg, uri, NULL, n) != 0)
        return ev_error_set(err, EV_ENOMEM, "schema: out of memory");
    return 0;
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
int ev_sch_fail(vctx *c, const ipath *p, const char *kw, const char *fmt, ...)
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
int ev_sch_hard(vctx *c, int code, const ipath *p, const char *kw, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(c, code, p, kw, fmt, ap);
    va_end(ap);
    return code;
}

/* ---- validation ---------------------------------------------------------- */

int ev_sch_validate_node(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (n->boolean == 1)
        return 0;
    if (n->boolean == 0)
        return ev_sch_fail(c, p, "false", "no value is allowed here");
    if (c->depth >= MAX_DEPTH)
        return ev_sch_hard(c, EV_EDEPTH, p, "$ref", "schema recursion deeper than %d",
                           MAX_DEPTH);
    c->depth++;
    int rc = 0;
    for (size_t i = 0; i < n->n_ops && rc == 0; i++)
        rc = n->ops[i](n, v, p, c);
    c->depth--;
    return rc;
}

/* Validates without reporting a mismatch (hard errors still carry text). */
int ev_sch_try_validate(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    bool quiet = c->quiet;
    c->quiet = true;
    int rc = ev_sch_validate_node(n, v, p, c);
    c->quiet = quiet;
    return rc;
}

/* A subschema at a child location; a false subschema is blamed on kw. */
int ev_sch_validate_child(const snode *sub, const json_t *v, const ipath *p, vctx *c,
                          const char *kw)
{
    if (sub->boolean == 0)
        return ev_sch_fail(c, p, kw, "no value is allowed here");
    return ev_sch_validate_node(sub, v, p, c);
}

static int ck_ref(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (n->ref == NULL)
        return ev_sch_hard(c, EV_ENOTFOUND, p, "$ref", "unresolved reference \"%s\"",
                           n->ref_uri);
    return ev_sch_validate_node(n->ref, v, p, c);
}

/* ---- compilation --------------------------------------------------------- */

int ev_sch_bad(cctx *cc, const snode *n, const char *what)
{
    return ev_error_set(cc->err, EV_EINVAL, "schema %s: %s: %s",
                        n->base[0] != '\0' ? n->base : "(anonymous)", cc->kw, what);
}

int ev_sch_compile_sub(cctx *cc, snode *n, json_t *v, snode **out)
{
    const char *kw = cc->kw;
    *out = ev_sch_compile_node(cc, v, n->base);
    cc->kw = kw;
    return *out != NULL ? 0 : cc->err->code;
}

int ev_sch_compile_subs(cctx *cc, snode *n, json_t *v, subs *out)
{
    if (!json_is_array(v) || json_array_size(v) == 0)
        return ev_sch_bad(cc, n, "must be a non-empty array of schemas");
    out->v = calloc(json_array_size(v), sizeof(*out->v));
    if (out->v == NULL)
        return ev_error_set(cc->err, EV_ENOMEM, "schema: out of memory");
    for (size_t i = 0; i < json_array_size(v); i++) {
        int rc = ev_sch_compile_sub(cc, n, json_array_get(v, i), &out->v[out->n]);
        if (rc != 0)
            return rc;
        out->n++;
    }
    return 0;
}

#define FIELD(n, off, type) ((type *)((char *)(n) + (off)))
/* Keyword compilers: off is the offset of the snode field they fill. */
int ev_sch_kc_count(cctx *cc, snode *n, json_t *v, size_t off)
{
    double d = json_number_value(v);
    if (json_is_integer(v) && json_integer_value(v) >= 0)
        *FIELD(n, off, size_t) = (size_t)json_integer_value(v);
    else if (json_is_real(v) && d >= 0 && ev_sch_real_is_integral(d) && d < 1e18)
        *FIELD(n, off, size_t) = (size_t)d;
    else
        return ev_sch_bad(cc, n, "must be a non-negative integer");
    return 0;
}

int ev_sch_kc_schema(cctx *cc, snode *n, json_t *v, size_t off)
{
    return ev_sch_compile_sub(cc, n, v, FIELD(n, off, snode *));
}

int ev_sch_kc_schema_list(cctx *cc, snode *n, json_t *v, size_t off)
{
    return ev_sch_compile_subs(cc, n, v, FIELD(n, off, subs));
}

int ev_sch_kc_any(cctx *cc, snode *n, json_t *v, size_t off)
{
    (void)cc;
    *FIELD(n, off, const json_t *) = v;
    return 0;
}

/* Draft-07 keywords in checking order, table after table. */
static const struct {
    const ev_sch_keyword *v;
    size_t n;
} tables[] = {
    {ev_sch_kw_value, EV_SCH_N_VALUE},
    {ev_sch_kw_format, EV_SCH_N_FORMAT},
    {ev_sch_kw_struct, EV_SCH_N_STRUCT},
};

static void add_op(snode *n, check_fn fn)
{
    for (size_t i = 0; i < n->n_ops; i++)
        if (n->ops[i] == fn)
            return;
    n->ops[n->n_ops++] = fn;
}

static int compile_keywords(cctx *cc, snode *n, json_t *j, bool checks)
{
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
        for (size_t i = 0; i < tables[t].n; i++) {
            const ev_sch_keyword *k = &tables[t].v[i];
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
    }
    return 0;
}

/* Draft-07 ignores the siblings of $ref, but subschemas below them may carry
 * an $id that another $ref names: they are compiled for their identifiers
 * only (no checks), and dropped again if they do not compile. */
static void compile_ref_siblings(cctx *cc, snode *n, json_t *j)
{
    mark m = ev_sch_mark_take(cc->s);
    ev_error scratch;
    cctx quiet = {cc->s, &scratch, NULL};
    if (compile_keywords(&quiet, n, j, false) != 0)
        ev_sch_rollback(cc->s, m);
}

/* $id: a new base URI (registered for n) or, for "#name", a plain-name anchor. */
static int compile_id(cctx *cc, snode *n, json_t *id)
{
    if (!json_is_string(id)) {
        cc->kw = "$id";
        return ev_sch_bad(cc, n, "must be a string");
    }
    char *full = ev_sch_uri_resolve(n->base, json_string_value(id));
    if (full == NULL)
        return ev_error_set(cc->err, EV_ENOMEM, "schema: out of memory");
    char *hash = strchr(full, '#');
    if (hash != NULL && hash[1] != '\0') {
        char *anchor = strdup(full);
        int rc = ev_sch_register_uri(cc->s, anchor, n, cc->err);
        if (rc != 0 || json_string_value(id)[0] == '#') {
            free(full);
            return rc;
        }
    }
    if (hash != NULL)
        *hash = '\0';
    const char *base = ev_sch_intern(cc->s, full);
    if (base == NULL)
        return ev_error_set(cc->err, EV_ENOMEM, "schema: out of memory");
    n->base = base;
    return ev_sch_register_uri(cc->s, strdup(base), n, cc->err);
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
    if (ev_sch_pv_push(&s->nodes, n) != 0) {
        free(n);
        return NULL;
    }
    if (ev_sch_reg_put(&s->reg, NULL, j, n) != 0)
        return NULL; /* n is owned by s->nodes already */
    return n;
}

/* Compiles schema j (borrowed; the set keeps the document alive). NULL on
 * error, with cc->err filled. */
snode *ev_sch_compile_node(cctx *cc, json_t *j, const char *base)
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
            rc = ev_sch_bad(cc, n, "must be a string");
        else if ((n->ref_uri = ev_sch_uri_resolve(base, json_string_value(ref))) ==
                     NULL ||
                 ev_sch_pv_push(&cc->s->pending, n) != 0)
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
    ev_sch_rollback(s, (mark){0, 0, 0, 0, 0});
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
    int rc = ev_sch_add_doc(s, uri, NULL, schema, err);
    return rc != 0 ? rc : ev_sch_link_all(s, err);
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

static int run(const snode *n, const json_t *instance, ev_error *err)
{
    ev_error_clear(err);
    if (instance == NULL)
        return ev_error_set(err, EV_EINVAL, "schema: null instance");
    vctx c = {err, err == NULL, 0}; /* nobody reads the text: do not build it */
    return ev_sch_validate_node(n, instance, NULL, &c);
}

/* The node registered as uri ("x" and "x#" are the same), or NULL. */
static const snode *lookup(const ev_schema_set *s, const char *uri)
{
    size_t len = strlen(uri);
    if (len == 0 || uri[len - 1] != '#')
        return ev_sch_reg_get(&s->reg, uri, NULL);
    char buf[512];
    if (len > sizeof(buf))
        return NULL;
    memcpy(buf, uri, len - 1);
    buf[len - 1] = '\0';
    return ev_sch_reg_get(&s->reg, buf, NULL);
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
    mark m = ev_sch_mark_take(s);
    bool shadow = s->shadow;
    s->shadow = true;
    int rc = ev_sch_add_doc(s, "", NULL, schema, err);
    if (rc == 0)
        rc = ev_sch_link_refs(s, m.pending, err);
    if (rc == 0)
        rc = run(lookup(s, ""), instance, err);
    ev_sch_rollback(s, m);
    s->shadow = shadow;
    return rc;
}

static const snode *lookup_type(const ev_schema_set *s, const char *type)
{
    char name[256];
    int k = snprintf(name, sizeof(name), "%s.json", type);
    if (k < 0 || (size_t)k >= sizeof(name))
        return NULL;
    return ev_sch_reg_get(&s->reg, name, NULL);
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
