/* SPDX-License-Identifier: MIT */
/* JSON Schema validator: URI references (RFC 3986 section 5), the URI and
 * node registry, $ref resolution, remote documents and schema directories. */
#include <ctype.h>
#include <dirent.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema_internal.h"

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
            ev_sch_sb_putn(out, in, k);
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
        ev_sch_sb_putc(&m, '/');
    } else {
        size_t k = b->path.n;
        while (k > 0 && b->path.p[k - 1] != '/')
            k--;
        ev_sch_sb_putn(&m, b->path.p, k);
    }
    ev_sch_sb_putn(&m, r->path.p, r->path.n);
    if (m.oom)
        path->oom = true;
    else if (m.p != NULL)
        remove_dots(m.p, m.n, path);
    free(m.p);
}

/* Resolves reference ref against base; a new string owned by the caller, NULL
 * on allocation failure. */
char *ev_sch_uri_resolve(const char *base, const char *ref)
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
        ev_sch_sb_putn(&path, b.path.p, b.path.n);
        if (!r.query.has)
            query = &b.query;
    } else {
        merged_path(&b, &r, &path);
    }
    sbuf o = {0};
    if (scheme->has) {
        ev_sch_sb_putn(&o, scheme->p, scheme->n);
        ev_sch_sb_putc(&o, ':');
    }
    if (auth->has) {
        ev_sch_sb_puts(&o, "//");
        ev_sch_sb_putn(&o, auth->p, auth->n);
    }
    if (path.oom)
        o.oom = true;
    else if (path.p != NULL)
        ev_sch_sb_putn(&o, path.p, path.n);
    free(path.p);
    if (query->has) {
        ev_sch_sb_putc(&o, '?');
        ev_sch_sb_putn(&o, query->p, query->n);
    }
    if (r.frag.has) {
        ev_sch_sb_putc(&o, '#');
        ev_sch_sb_putn(&o, r.frag.p, r.frag.n);
    }
    return ev_sch_sb_take(&o);
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
int ev_sch_reg_put(registry *r, char *skey, const void *pkey, snode *val)
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

snode *ev_sch_reg_get(const registry *r, const char *skey, const void *pkey)
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
void ev_sch_reg_pop(registry *r)
{
    rentry *e = &r->e[r->n - 1];
    size_t h = entry_hash(e) & (r->nb - 1);
    r->bucket[h] = e->next;
    free(e->skey);
    r->n--;
}

/* ---- $ref resolution ----------------------------------------------------- */

/* The value of the two hex digits at s, or -1. */
static long hex2(const char *s)
{
    long v = 0;
    for (int i = 0; i < 2; i++) {
        if (!isxdigit((unsigned char)s[i]))
            return -1;
        v = v * 16 +
            (isdigit((unsigned char)s[i]) ? s[i] - '0' : (tolower(s[i]) - 'a' + 10));
    }
    return v;
}

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

static char *pct_decode(const char *s)
{
    sbuf o = {0};
    for (; *s != '\0'; s++) {
        long v = *s == '%' ? hex2(s + 1) : -1;
        if (v > 0) {
            ev_sch_sb_putc(&o, (char)v);
            s += 2;
        } else {
            ev_sch_sb_putc(&o, *s);
        }
    }
    return ev_sch_sb_take(&o);
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
        int rc = ev_sch_add_doc(s, uri, NULL, doc, err);
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
    *out = ev_sch_reg_get(&s->reg, NULL, cur);
    if (*out != NULL)
        return 0;
    char *h = strchr(*base, '#');
    if (h != NULL)
        *h = '\0';
    mark m = ev_sch_mark_take(s);
    const char *b = ev_sch_intern(s, *base);
    *base = NULL;
    if (b == NULL)
        return EV_ENOMEM;
    cctx cc = {s, err, NULL};
    *out = ev_sch_compile_node(&cc, cur, b);
    if (*out != NULL)
        return 0;
    ev_sch_rollback(s, m);
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
            char *nb = ev_sch_uri_resolve(base, id);
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
    snode *root = ev_sch_reg_get(&s->reg, res, NULL);
    int rc = 0;
    if (root == NULL && (!anchor || ev_sch_reg_get(&s->reg, uri, NULL) == NULL)) {
        rc = load_remote(s, res, err);
        root = ev_sch_reg_get(&s->reg, res, NULL);
    }
    free(res);
    if (rc != 0)
        return rc;
    if (anchor)
        *out = ev_sch_reg_get(&s->reg, uri, NULL);
    else if (root != NULL && frag[0] == '\0')
        *out = root;
    else if (root != NULL)
        rc = resolve_pointer(s, root, frag, out, err);
    return rc;
}

/* Resolves every pending $ref from index from on; new documents and nodes the
 * resolution brings in are resolved too. */
int ev_sch_link_refs(ev_schema_set *s, size_t from, ev_error *err)
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
int ev_sch_link_all(ev_schema_set *s, ev_error *err)
{
    int rc = ev_sch_link_refs(s, 0, err);
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
int ev_sch_add_doc(ev_schema_set *s, const char *base, const char *alias, json_t *doc,
                   ev_error *err)
{
    mark m = ev_sch_mark_take(s);
    cctx cc = {s, err, NULL};
    const char *b = ev_sch_intern(s, uri_norm(base));
    int rc = b == NULL || ev_sch_pv_push(&s->docs, doc) != 0 ? EV_ENOMEM : 0;
    if (rc != 0) {
        ev_error_set(err, rc, "schema: out of memory");
        goto cleanup;
    }
    json_incref(doc); /* the set's reference, dropped by rollback or free */
    snode *root = ev_sch_compile_node(&cc, doc, b);
    rc = root != NULL ? 0 : err->code;
    if (rc == 0)
        rc = ev_sch_register_uri(s, strdup(b), root, err);
    if (rc == 0 && alias != NULL)
        rc = ev_sch_register_uri(s, uri_norm(alias), root, err);
cleanup:
    if (rc != 0)
        ev_sch_rollback(s, m);
    return rc;
}

/* ---- loading ------------------------------------------------------------- */

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
        if (name == NULL || ev_sch_pv_push(names, name) != 0) {
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
    int rc = ev_sch_add_doc(s, base, name, doc, err);
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
        rc = ev_sch_link_all(s, err);
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
    return ev_sch_link_all(s, err != NULL ? err : &scratch);
}
