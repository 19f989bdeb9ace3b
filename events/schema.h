/* SPDX-License-Identifier: MIT */
/* JSON Schema draft-07 validation over jansson: a set of schemas loaded from a
 * directory, $ref inside and across documents, errors with a JSON pointer. */
#ifndef EV_SCHEMA_H
#define EV_SCHEMA_H

#include <jansson.h>
#include <stdbool.h>

#include "error.h"

typedef struct ev_schema_set ev_schema_set;

/* An empty set; NULL on allocation failure. Free with ev_schema_set_free. */
ev_schema_set *ev_schema_set_new(void);
void ev_schema_set_free(ev_schema_set *s);

/* Adds a schema document under uri (its $id, when present, is registered too).
 * schema is borrowed (the set takes its own reference). Compiles it once and
 * resolves every $ref it can (later adds resolve the rest). EV_EINVAL for a
 * malformed schema, a pattern POSIX regex cannot express (lookaround), or a
 * URI already registered for another schema; nothing is kept on failure. */
int ev_schema_set_add(ev_schema_set *s, const char *uri, json_t *schema, ev_error *err);

/* Loads every *.json of dir: each under "<file name>" (e.g. "order.placed.json")
 * and under its $id. choreography.json is skipped. A file's base URI is
 * "file://<absolute path>" unless its $id says otherwise, so relative refs
 * such as "envelope.json#/definitions/x" reach sibling files. Fails with
 * EV_EIO (no dir), EV_EPARSE (bad JSON), EV_EINVAL (bad schema) or
 * EV_ENOTFOUND (a $ref that resolves to nothing). */
int ev_schema_set_load_dir(ev_schema_set *s, const char *dir, ev_error *err);

/* Resolves references starting with uri_prefix by reading files under dir
 * (used to serve the official suite's remotes/ from disk). */
int ev_schema_set_map_remote(ev_schema_set *s, const char *uri_prefix, const char *dir,
                             ev_error *err);

/* EV_ENOTFOUND naming the first $ref of s that resolves to nothing (after
 * trying the remote maps), 0 when every reference resolves. */
int ev_schema_set_check(ev_schema_set *s, ev_error *err);

/* Validates instance against the document registered as uri. EV_ENOTFOUND
 * when no such schema, EV_ESCHEMA on mismatch with err->text
 * "<json pointer>: <keyword>: <what>" for the first failure, e.g.
 * "/items/0/qty: minimum: 0 is less than 1"; the root is printed as "/"
 * ("/: required: missing property \"order_id\""). A schema that cannot be
 * evaluated fails with EV_ENOTFOUND (unresolved $ref) or EV_EDEPTH ($ref loop).
 * Read-only on s: concurrent validations of one set are safe. */
int ev_schema_validate(ev_schema_set *s, const char *uri, const json_t *instance,
                       ev_error *err);

/* Validates instance against an anonymous schema (references resolve in s).
 * schema is compiled for this call only; not safe concurrently with other
 * calls on s. */
int ev_schema_validate_doc(ev_schema_set *s, json_t *schema, const json_t *instance,
                           ev_error *err);

/* Data of an event type: validates against "<type>.json". EV_EUNKNOWN when the
 * set has no schema for type. */
int ev_schema_validate_type(ev_schema_set *s, const char *type, const json_t *data,
                            ev_error *err);
bool ev_schema_has_type(ev_schema_set *s, const char *type);

#endif
