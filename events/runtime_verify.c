/* SPDX-License-Identifier: MIT */
/* ev_service_rebuild: --rebuild into the service's own (empty) store, or
 * --verify: a rebuild into a scratch store, compared with the live store
 * through --dump and with the event ids already on the topics. */
#include "runtime_internal.h"

#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a set of event ids ---- */

typedef struct id_entry {
    char id[EV_ID_MAX];
    char type[EV_TYPE_MAX];
    char where[TOPIC_MAX + 48];
} id_entry;

struct ev_rt_ids {
    id_entry *v;
    size_t n, cap;
    bool sorted;
};

ev_rt_ids *ev_rt_ids_new(void)
{
    return calloc(1, sizeof(ev_rt_ids));
}

void ev_rt_ids_free(ev_rt_ids *s)
{
    if (s != NULL)
        free(s->v);
    free(s);
}

int ev_rt_ids_add(ev_rt_ids *s, const char *id, const char *type, const char *topic,
                  int32_t partition, int64_t offset)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        id_entry *v = realloc(s->v, cap * sizeof(*v));
        if (v == NULL)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    id_entry *e = &s->v[s->n++];
    ev_rt_scopy(e->id, sizeof(e->id), id);
    ev_rt_scopy(e->type, sizeof(e->type), type);
    if (partition >= 0)
        snprintf(e->where, sizeof(e->where), "%s [%d] @ %" PRId64, topic, (int)partition,
                 offset);
    else
        snprintf(e->where, sizeof(e->where), "outbox row %" PRId64 " for %s", offset,
                 topic);
    s->sorted = false;
    return 0;
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const id_entry *)a)->id, ((const id_entry *)b)->id);
}

bool ev_rt_ids_has(ev_rt_ids *s, const char *id)
{
    if (s == NULL || s->n == 0)
        return false;
    if (!s->sorted) {
        qsort(s->v, s->n, sizeof(*s->v), cmp_entry);
        s->sorted = true;
    }
    id_entry key;
    ev_rt_scopy(key.id, sizeof(key.id), id);
    return bsearch(&key, s->v, s->n, sizeof(*s->v), cmp_entry) != NULL;
}

/* Prints every id of a that b lacks; returns how many. */
static size_t ids_missing(ev_rt_ids *a, ev_rt_ids *b, const char *what)
{
    size_t n = 0;
    ev_rt_ids_has(a, ""); /* sorts a: the lines come in id order */
    for (size_t i = 0; a != NULL && i < a->n; i++) {
        if (ev_rt_ids_has(b, a->v[i].id))
            continue;
        printf("event %s (%s, %s) %s\n", a->v[i].id, a->v[i].type, a->v[i].where, what);
        n++;
    }
    return n;
}

/* ---- comparing two dumps ---- */

/* The field that names the elements of both arrays (every element an object
 * with a distinct string value there), or NULL: then they pair by index. */
static const char *array_key(const json_t *a, const json_t *b)
{
    static const char *const keys[] = {"event_id",    "order_id",    "sku",
                                       "customer_id", "shipment_id", NULL};
    for (size_t k = 0; keys[k] != NULL; k++) {
        bool ok = json_array_size(a) + json_array_size(b) > 0;
        for (int side = 0; side < 2 && ok; side++) {
            json_t *seen_side = json_object();
            size_t i;
            json_t *e;
            json_array_foreach(side ? b : a, i, e)
            {
                const char *v = json_string_value(json_object_get(e, keys[k]));
                ok = ok && v != NULL && json_object_get(seen_side, v) == NULL;
                if (ok)
                    json_object_set_new(seen_side, v, json_true());
            }
            json_decref(seen_side);
        }
        if (ok)
            return keys[k];
    }
    return NULL;
}

static void print_value(const char *label, const json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
    printf("%s %s", label, s ? s : "(absent)");
    free(s);
}

static size_t diff(const char *path, const json_t *live, const json_t *rebuilt);

static size_t diff_keyed(const char *path, const json_t *a, const json_t *b,
                         const char *key)
{
    json_t *ma = json_object(), *mb = json_object();
    size_t i, n = 0;
    json_t *e;
    json_array_foreach(a, i, e)
        json_object_set(ma, json_string_value(json_object_get(e, key)), e);
    json_array_foreach(b, i, e)
        json_object_set(mb, json_string_value(json_object_get(e, key)), e);
    const char *k;
    json_t *v;
    char sub[512];
    json_object_foreach(ma, k, v)
    {
        snprintf(sub, sizeof(sub), "%s[%s]", path, k);
        n += diff(sub, v, json_object_get(mb, k));
    }
    json_object_foreach(mb, k, v)
    {
        snprintf(sub, sizeof(sub), "%s[%s]", path, k);
        if (json_object_get(ma, k) == NULL)
            n += diff(sub, NULL, v);
    }
    json_decref(ma);
    json_decref(mb);
    return n;
}

/* Prints each difference as "dump <path>: live X, rebuilt Y"; returns how many. */
static size_t diff(const char *path, const json_t *live, const json_t *rebuilt)
{
    char sub[512];
    size_t n = 0;
    if (live != NULL && rebuilt != NULL && json_equal(live, rebuilt))
        return 0;
    if (json_is_object(live) && json_is_object(rebuilt)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)live, k, v)
        {
            snprintf(sub, sizeof(sub), "%s%s%s", path, path[0] ? "." : "", k);
            n += diff(sub, v, json_object_get(rebuilt, k));
        }
        json_object_foreach((json_t *)rebuilt, k, v)
        {
            snprintf(sub, sizeof(sub), "%s%s%s", path, path[0] ? "." : "", k);
            if (json_object_get(live, k) == NULL)
                n += diff(sub, NULL, v);
        }
        return n;
    }
    if (json_is_array(live) && json_is_array(rebuilt)) {
        const char *key = array_key(live, rebuilt);
        if (key != NULL)
            return diff_keyed(path, live, rebuilt, key);
        size_t len = json_array_size(live) > json_array_size(rebuilt)
                         ? json_array_size(live)
                         : json_array_size(rebuilt);
        for (size_t i = 0; i < len; i++) {
            snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
            n += diff(sub, json_array_get(live, i), json_array_get(rebuilt, i));
        }
        return n;
    }
    printf("dump %s:", path[0] ? path : "(whole)");
    print_value(" live", live);
    print_value(", rebuilt", rebuilt);
    printf("\n");
    return 1;
}

/* ---- verify ---- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int live_dump(const ev_service_def *def, const ev_config *cfg, json_t **out,
                     ev_error *err)
{
    ev_store *s = NULL;
    int rc = ev_rt_open_store(&s, def, cfg, true, NULL, err);
    if (rc == 0)
        rc = def->dump(s, out, err);
    ev_store_close(s);
    return rc;
}

static int verify(const ev_service_def *def, const ev_config *cfg, size_t *differences,
                  volatile sig_atomic_t *stop, ev_error *err)
{
    const char *tmp = getenv("TMPDIR");
    ev_config *sc = malloc(sizeof(*sc));
    if (sc == NULL)
        return ev_error_set(err, EV_ENOMEM, "out of memory");
    *sc = *cfg;
    snprintf(sc->data_dir, sizeof(sc->data_dir), "%s/choreo-verify-%s-XXXXXX",
             tmp && tmp[0] ? tmp : "/tmp", def->name);
    if (mkdtemp(sc->data_dir) == NULL) {
        free(sc);
        return ev_error_set(err, EV_EIO, "scratch dir: cannot create");
    }
    sc->store[0] = '\0'; /* SQLite in the scratch dir */
    snprintf(sc->synchronous, sizeof(sc->synchronous), "NORMAL");
    char name[600];
    snprintf(name, sizeof(name), "a scratch store (%s)", sc->data_dir);
    ev_rt_rebuild_opts o = {.dump = def->dump != NULL, .store_name = name};
    ev_rt_rebuild_result res = {0};
    json_t *live = NULL;
    int rc = ev_rt_rebuild(def, sc, &o, &res, stop, err);
    if (rc == 0 && def->dump != NULL)
        rc = live_dump(def, cfg, &live, err);
    if (rc == 0) {
        size_t d = def->dump != NULL ? diff("", live, res.dump) : 0;
        size_t m = ids_missing(res.published, res.would,
                               "is published, but the rebuild would not emit it");
        size_t x = ids_missing(res.would, res.published,
                               "would be emitted by the rebuild, but is not published");
        printf("verify %s: dump %s (%zu difference%s), emitted ids: %zu missing, %zu "
               "extra\n",
               def->name, d ? "differs" : "identical", d, d == 1 ? "" : "s", m, x);
        *differences = d + m + x;
    }
    json_decref(live);
    json_decref(res.dump);
    ev_rt_ids_free(res.published);
    ev_rt_ids_free(res.would);
    nftw(sc->data_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(sc);
    return rc;
}

int ev_service_rebuild(const ev_service_def *def, const ev_config *cfg, bool verify_only,
                       size_t *differences, volatile sig_atomic_t *stop, ev_error *err)
{
    if (def == NULL || def->name == NULL || cfg == NULL || differences == NULL ||
        cfg->batch_size < 1)
        return ev_error_set(err, EV_EINVAL, "rebuild: bad argument");
    *differences = 0;
    if (verify_only)
        return verify(def, cfg, differences, stop, err);
    char name[1200];
    if (cfg->store[0] && strcmp(cfg->store, "sqlite") != 0)
        snprintf(name, sizeof(name), "PostgreSQL schema %s", cfg->store_schema);
    else
        snprintf(name, sizeof(name), "%s/%s.db", cfg->data_dir, def->name);
    ev_rt_rebuild_opts o = {.require_fresh = true, .store_name = name};
    return ev_rt_rebuild(def, cfg, &o, NULL, stop, err);
}
