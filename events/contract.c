/* SPDX-License-Identifier: MIT */
/* The event contract read from schemas/choreography.json: which topic and key
 * each event type has, and what each service consumes and emits. */
#include "contract.h"

#include <stdlib.h>
#include <string.h>

typedef struct service_entry {
    const char *name;
    const char **consumes; /* NULL-terminated */
    const char **emits;
    const char **topics;
} service_entry;

struct ev_contract {
    json_t *doc;
    ev_event_route *routes;
    size_t n_routes;
    const char **topics;
    const char **services;
    service_entry *svcs;
    size_t n_svcs;
};

/* A string member of an object, non-empty; NULL otherwise. */
static const char *member_str(json_t *obj, const char *name)
{
    const char *s = json_string_value(json_object_get(obj, name));
    return s != NULL && s[0] != '\0' ? s : NULL;
}

/* Appends s to the NULL-terminated list *list of *n entries unless present. */
static int list_add_unique(const char ***list, size_t *n, const char *s)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*list)[i], s) == 0)
            return 0;
    const char **l = realloc(*list, (*n + 2) * sizeof(*l));
    if (l == NULL)
        return EV_ENOMEM;
    l[(*n)++] = s;
    l[*n] = NULL;
    *list = l;
    return 0;
}

static int load_routes(ev_contract *c, json_t *events, ev_error *err)
{
    size_t n_topics = 0;
    c->routes = calloc(json_object_size(events) + 1, sizeof(*c->routes));
    c->topics = calloc(1, sizeof(*c->topics));
    if (c->routes == NULL || c->topics == NULL)
        return ev_error_set(err, EV_ENOMEM, "contract: out of memory");
    const char *type;
    json_t *ev;
    json_object_foreach(events, type, ev)
    {
        ev_event_route *r = &c->routes[c->n_routes];
        r->type = type;
        r->topic = member_str(ev, "topic");
        r->key_field = member_str(ev, "key");
        r->producer = member_str(ev, "producer");
        if (r->topic == NULL || r->key_field == NULL || r->producer == NULL)
            return ev_error_set(err, EV_EPARSE,
                                "contract: event %.60s needs topic, key and producer",
                                type);
        if (list_add_unique(&c->topics, &n_topics, r->topic) != 0)
            return ev_error_set(err, EV_ENOMEM, "contract: out of memory");
        c->n_routes++;
    }
    return 0;
}

/* Reads member name of a service ("consumes"/"emits") into *out. */
static int load_types(ev_contract *c, const char *svc, json_t *obj, const char *name,
                      const char ***out, ev_error *err)
{
    json_t *arr = json_object_get(obj, name);
    size_t n = 0;
    *out = calloc(1, sizeof(**out));
    if (*out == NULL)
        return ev_error_set(err, EV_ENOMEM, "contract: out of memory");
    if (arr == NULL)
        return 0;
    if (!json_is_array(arr))
        return ev_error_set(err, EV_EPARSE, "contract: %s.%s is not an array", svc, name);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        const char *t = json_string_value(v);
        if (t == NULL)
            return ev_error_set(err, EV_EPARSE, "contract: %s.%s[%zu] is not a string",
                                svc, name, i);
        if (ev_contract_route(c, t) == NULL)
            return ev_error_set(err, EV_EUNKNOWN, "contract: %s %s unknown type %.60s",
                                svc, name, t);
        if (list_add_unique(out, &n, t) != 0)
            return ev_error_set(err, EV_ENOMEM, "contract: out of memory");
    }
    return 0;
}

static int load_service(ev_contract *c, const char *name, json_t *obj, ev_error *err)
{
    service_entry *s = &c->svcs[c->n_svcs++];
    s->name = name;
    c->services[c->n_svcs - 1] = name;
    if (!json_is_object(obj))
        return ev_error_set(err, EV_EPARSE, "contract: service %.60s is not an object",
                            name);
    int rc = load_types(c, name, obj, "consumes", &s->consumes, err);
    if (rc == 0)
        rc = load_types(c, name, obj, "emits", &s->emits, err);
    if (rc != 0)
        return rc;
    size_t n = 0;
    s->topics = calloc(1, sizeof(*s->topics));
    if (s->topics == NULL)
        return ev_error_set(err, EV_ENOMEM, "contract: out of memory");
    for (const char **t = s->consumes; *t != NULL; t++)
        if (list_add_unique(&s->topics, &n, ev_contract_route(c, *t)->topic) != 0)
            return ev_error_set(err, EV_ENOMEM, "contract: out of memory");
    return 0;
}

static int load_services(ev_contract *c, json_t *services, ev_error *err)
{
    size_t n = json_object_size(services);
    c->svcs = calloc(n + 1, sizeof(*c->svcs));
    c->services = calloc(n + 1, sizeof(*c->services));
    if (c->svcs == NULL || c->services == NULL)
        return ev_error_set(err, EV_ENOMEM, "contract: out of memory");
    const char *name;
    json_t *obj;
    json_object_foreach(services, name, obj)
    {
        int rc = load_service(c, name, obj, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int ev_contract_load(ev_contract **out, const char *path, ev_error *err)
{
    if (out == NULL || path == NULL)
        return ev_error_set(err, EV_EINVAL, "contract: null argument");
    *out = NULL;
    json_error_t jerr;
    int rc;
    ev_contract *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return ev_error_set(err, EV_ENOMEM, "contract: out of memory");
    c->doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (c->doc == NULL) {
        int code =
            json_error_code(&jerr) == json_error_cannot_open_file ? EV_EIO : EV_EPARSE;
        rc = ev_error_set(err, code, "%s: %s", path, jerr.text);
        goto fail;
    }
    json_t *events = json_object_get(c->doc, "events");
    json_t *services = json_object_get(c->doc, "services");
    if (!json_is_object(events) || !json_is_object(services)) {
        rc = ev_error_set(err, EV_EPARSE, "%s: needs objects \"events\" and \"services\"",
                          path);
        goto fail;
    }
    rc = load_routes(c, events, err);
    if (rc == 0)
        rc = load_services(c, services, err);
    if (rc != 0)
        goto fail;
    *out = c;
    return 0;
fail:
    ev_contract_free(c);
    return rc;
}

void ev_contract_free(ev_contract *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n_svcs; i++) {
        free(c->svcs[i].consumes);
        free(c->svcs[i].emits);
        free(c->svcs[i].topics);
    }
    free(c->svcs);
    free(c->services);
    free(c->topics);
    free(c->routes);
    json_decref(c->doc);
    free(c);
}

const ev_event_route *ev_contract_route(const ev_contract *c, const char *type)
{
    if (c == NULL || type == NULL)
        return NULL;
    for (size_t i = 0; i < c->n_routes; i++)
        if (strcmp(c->routes[i].type, type) == 0)
            return &c->routes[i];
    return NULL;
}

const ev_event_route *ev_contract_routes(const ev_contract *c, size_t *n)
{
    if (n != NULL)
        *n = c ? c->n_routes : 0;
    return c ? c->routes : NULL;
}

const char *const *ev_contract_topics(const ev_contract *c)
{
    return c ? c->topics : NULL;
}

const char *const *ev_contract_services(const ev_contract *c)
{
    return c ? c->services : NULL;
}

static const service_entry *find_service(const ev_contract *c, const char *service)
{
    for (size_t i = 0; c != NULL && service != NULL && i < c->n_svcs; i++)
        if (strcmp(c->svcs[i].name, service) == 0)
            return &c->svcs[i];
    return NULL;
}

const char *const *ev_contract_consumes(const ev_contract *c, const char *service)
{
    const service_entry *s = find_service(c, service);
    return s ? s->consumes : NULL;
}

const char *const *ev_contract_emits(const ev_contract *c, const char *service)
{
    const service_entry *s = find_service(c, service);
    return s ? s->emits : NULL;
}

const char *const *ev_contract_service_topics(const ev_contract *c, const char *service)
{
    const service_entry *s = find_service(c, service);
    return s ? s->topics : NULL;
}

json_t *ev_contract_json(const ev_contract *c)
{
    return c ? c->doc : NULL;
}
