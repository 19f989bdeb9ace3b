/* SPDX-License-Identifier: MIT */
/* JSON Schema validator: the keywords on arrays and objects and the
 * combinations (items, properties, dependencies, if, allOf...). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema_internal.h"

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
                return ev_sch_fail(c, p, kw, "%zu items, at most %zu allowed", size,
                                   fixed);
        }
        ipath ip = {p, NULL, i};
        int rc = ev_sch_validate_child(sub, json_array_get(v, i), &ip, c, kw);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int ck_max_items(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (!json_is_array(v) || json_array_size(v) <= n->max_items)
        return 0;
    return ev_sch_fail(c, p, "maxItems", "%zu items, at most %zu allowed",
                       json_array_size(v), n->max_items);
}

static int ck_min_items(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (!json_is_array(v) || json_array_size(v) >= n->min_items)
        return 0;
    return ev_sch_fail(c, p, "minItems", "%zu items, at least %zu required",
                       json_array_size(v), n->min_items);
}

static int ck_unique_items(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (!n->unique_items || !json_is_array(v))
        return 0;
    size_t size = json_array_size(v);
    for (size_t i = 0; i < size; i++)
        for (size_t j = i + 1; j < size; j++)
            if (ev_sch_json_same(json_array_get(v, i), json_array_get(v, j)))
                return ev_sch_fail(c, p, "uniqueItems", "items %zu and %zu are equal", i,
                                   j);
    return 0;
}

static int ck_contains(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (!json_is_array(v))
        return 0;
    for (size_t i = 0; i < json_array_size(v); i++) {
        ipath ip = {p, NULL, i};
        int rc = ev_sch_try_validate(n->contains, json_array_get(v, i), &ip, c);
        if (rc == 0 || ev_sch_is_hard(rc))
            return rc;
    }
    return ev_sch_fail(c, p, "contains", "no item matches");
}

static int ck_max_props(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (!json_is_object(v) || json_object_size(v) <= n->max_props)
        return 0;
    return ev_sch_fail(c, p, "maxProperties", "%zu properties, at most %zu allowed",
                       json_object_size(v), n->max_props);
}

static int ck_min_props(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (!json_is_object(v) || json_object_size(v) >= n->min_props)
        return 0;
    return ev_sch_fail(c, p, "minProperties", "%zu properties, at least %zu required",
                       json_object_size(v), n->min_props);
}

static int ck_required(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    if (!json_is_object(v))
        return 0;
    for (size_t i = 0; i < json_array_size(n->required); i++) {
        const char *key = json_string_value(json_array_get(n->required, i));
        if (json_object_get(v, key) == NULL)
            return ev_sch_fail(c, p, "required", "missing property \"%s\"", key);
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
        int rc = ev_sch_validate_child(n->props[i].sub, child, &ip, c, "properties");
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
            if (!ev_sch_re_search_ok(&n->pprops[i].re, key))
                continue;
            matched = true;
            int rc = ev_sch_validate_child(n->pprops[i].sub, child, &ip, c,
                                           "patternProperties");
            if (rc != 0)
                return rc;
        }
        const snode *extra = n->additional_props;
        if (matched || extra == NULL || json_object_get(n->props_obj, key) != NULL)
            continue;
        if (extra->boolean == 0)
            return ev_sch_fail(c, p, "additionalProperties",
                               "property \"%s\" is not allowed", key);
        int rc = ev_sch_validate_node(extra, child, &ip, c);
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
                return ev_sch_fail(c, p, "dependencies",
                                   "property \"%s\" requires \"%s\"", d->key, need);
        }
        if (d->sub != NULL) {
            int rc = ev_sch_validate_child(d->sub, v, p, c, "dependencies");
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
            return ev_sch_hard(c, EV_ENOMEM, p, "propertyNames", "out of memory");
        ipath ip = {p, key, 0};
        int rc = ev_sch_try_validate(n->property_names, name, &ip, c);
        json_decref(name);
        if (ev_sch_is_hard(rc))
            return rc;
        if (rc != 0)
            return ev_sch_fail(c, p, "propertyNames",
                               "property name \"%s\" is not allowed", key);
    }
    return 0;
}

static int ck_if(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    int rc = ev_sch_try_validate(n->if_s, v, p, c);
    if (ev_sch_is_hard(rc))
        return rc;
    const snode *next = rc == 0 ? n->then_s : n->else_s;
    return next != NULL ? ev_sch_validate_child(next, v, p, c, rc == 0 ? "then" : "else")
                        : 0;
}

static int ck_all_of(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    for (size_t i = 0; i < n->all_of.n; i++) {
        int rc = ev_sch_validate_child(n->all_of.v[i], v, p, c, "allOf");
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int ck_any_of(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    for (size_t i = 0; i < n->any_of.n; i++) {
        int rc = ev_sch_try_validate(n->any_of.v[i], v, p, c);
        if (rc == 0 || ev_sch_is_hard(rc))
            return rc;
    }
    return ev_sch_fail(c, p, "anyOf", "no subschema matches");
}

static int ck_one_of(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    size_t first = SIZE_MAX;
    for (size_t i = 0; i < n->one_of.n; i++) {
        int rc = ev_sch_try_validate(n->one_of.v[i], v, p, c);
        if (ev_sch_is_hard(rc))
            return rc;
        if (rc != 0)
            continue;
        if (first != SIZE_MAX)
            return ev_sch_fail(c, p, "oneOf", "subschemas %zu and %zu both match", first,
                               i);
        first = i;
    }
    return first != SIZE_MAX ? 0 : ev_sch_fail(c, p, "oneOf", "no subschema matches");
}

static int ck_not(const snode *n, const json_t *v, const ipath *p, vctx *c)
{
    int rc = ev_sch_try_validate(n->not_s, v, p, c);
    if (ev_sch_is_hard(rc))
        return rc;
    return rc == 0 ? ev_sch_fail(c, p, "not", "value matches the forbidden schema") : 0;
}

/* ---- compilers ----------------------------------------------------------- */

static int kc_items(cctx *cc, snode *n, json_t *v, size_t off)
{
    (void)off;
    if (json_is_array(v))
        return json_array_size(v) == 0 ? 0 : ev_sch_compile_subs(cc, n, v, &n->items_arr);
    return ev_sch_compile_sub(cc, n, v, &n->items_one);
}

static int kc_unique(cctx *cc, snode *n, json_t *v, size_t off)
{
    (void)off;
    if (!json_is_boolean(v))
        return ev_sch_bad(cc, n, "must be a boolean");
    n->unique_items = json_is_true(v);
    return 0;
}

static int kc_required(cctx *cc, snode *n, json_t *v, size_t off)
{
    if (!json_is_array(v))
        return ev_sch_bad(cc, n, "must be an array of strings");
    for (size_t i = 0; i < json_array_size(v); i++)
        if (!json_is_string(json_array_get(v, i)))
            return ev_sch_bad(cc, n, "must be an array of strings");
    return ev_sch_kc_any(cc, n, v, off);
}

static int kc_properties(cctx *cc, snode *n, json_t *v, size_t off)
{
    (void)off;
    if (!json_is_object(v))
        return ev_sch_bad(cc, n, "must be an object of schemas");
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
        int rc = ev_sch_compile_sub(cc, n, sub, &e->sub);
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
        return ev_sch_bad(cc, n, "must be an object of schemas");
    n->pprops = calloc(json_object_size(v) + 1, sizeof(*n->pprops));
    if (n->pprops == NULL)
        return ev_error_set(cc->err, EV_ENOMEM, "schema: out of memory");
    const char *key;
    json_t *sub;
    json_object_foreach(v, key, sub)
    {
        patsub *e = &n->pprops[n->n_pprops];
        if (!ev_sch_re_compile(&e->re, key))
            return ev_sch_bad(cc, n, "unsupported regular expression");
        n->n_pprops++;
        int rc = ev_sch_compile_sub(cc, n, sub, &e->sub);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int kc_dependencies(cctx *cc, snode *n, json_t *v, size_t off)
{
    (void)off;
    if (!json_is_object(v))
        return ev_sch_bad(cc, n, "must be an object");
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
                    return ev_sch_bad(cc, n, "must list property names");
            d->names = dep;
        } else {
            int rc = ev_sch_compile_sub(cc, n, dep, &d->sub);
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
        return ev_sch_bad(cc, n, "must be an object of schemas");
    const char *key;
    json_t *sub;
    json_object_foreach(v, key, sub)
    {
        snode *ignored;
        int rc = ev_sch_compile_sub(cc, n, sub, &ignored);
        if (rc != 0)
            return rc;
    }
    return 0;
}

const ev_sch_keyword ev_sch_kw_struct[EV_SCH_N_STRUCT] = {
    {"maxItems", ev_sch_kc_count, OFF(max_items), ck_max_items},
    {"minItems", ev_sch_kc_count, OFF(min_items), ck_min_items},
    {"uniqueItems", kc_unique, 0, ck_unique_items},
    {"items", kc_items, 0, ck_items},
    {"additionalItems", ev_sch_kc_schema, OFF(additional_items), NULL},
    {"contains", ev_sch_kc_schema, OFF(contains), ck_contains},
    {"maxProperties", ev_sch_kc_count, OFF(max_props), ck_max_props},
    {"minProperties", ev_sch_kc_count, OFF(min_props), ck_min_props},
    {"required", kc_required, OFF(required), ck_required},
    {"properties", kc_properties, 0, ck_properties},
    {"patternProperties", kc_pattern_props, 0, ck_extra_props},
    {"additionalProperties", ev_sch_kc_schema, OFF(additional_props), ck_extra_props},
    {"dependencies", kc_dependencies, 0, ck_dependencies},
    {"propertyNames", ev_sch_kc_schema, OFF(property_names), ck_property_names},
    {"if", ev_sch_kc_schema, OFF(if_s), ck_if},
    {"then", ev_sch_kc_schema, OFF(then_s), NULL},
    {"else", ev_sch_kc_schema, OFF(else_s), NULL},
    {"allOf", ev_sch_kc_schema_list, OFF(all_of), ck_all_of},
    {"anyOf", ev_sch_kc_schema_list, OFF(any_of), ck_any_of},
    {"oneOf", ev_sch_kc_schema_list, OFF(one_of), ck_one_of},
    {"not", ev_sch_kc_schema, OFF(not_s), ck_not},
    {"definitions", kc_definitions, 0, NULL},
};
