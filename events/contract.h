/* SPDX-License-Identifier: MIT */
/* The event contract read from schemas/choreography.json: which topic and key
 * each event type has, and what each service consumes and emits. */
#ifndef EV_CONTRACT_H
#define EV_CONTRACT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef struct ev_contract ev_contract;

typedef struct ev_event_route {
    const char *type;      /* "order.placed" */
    const char *topic;     /* unprefixed: "orders" */
    const char *key_field; /* field of data that is the record key: "order_id" */
    const char *producer;  /* service name or "cli" */
} ev_event_route;

/* Loads path (a choreography.json). */
int ev_contract_load(ev_contract **out, const char *path, ev_error *err);
void ev_contract_free(ev_contract *c);

/* Route of a type; NULL when the type is not in the contract. Borrowed. */
const ev_event_route *ev_contract_route(const ev_contract *c, const char *type);
/* All routes, in file order. */
const ev_event_route *ev_contract_routes(const ev_contract *c, size_t *n);
/* Distinct topic names (unprefixed), in file order; NULL-terminated, borrowed. */
const char *const *ev_contract_topics(const ev_contract *c);
/* Names of the services, NULL-terminated, borrowed. */
const char *const *ev_contract_services(const ev_contract *c);
/* A service's consumed / emitted types and consumed topics; NULL-terminated
 * arrays, borrowed; NULL when the service is unknown. */
const char *const *ev_contract_consumes(const ev_contract *c, const char *service);
const char *const *ev_contract_emits(const ev_contract *c, const char *service);
const char *const *ev_contract_service_topics(const ev_contract *c, const char *service);
/* The whole document, borrowed (for `choreo flow` and `trace`). */
json_t *ev_contract_json(const ev_contract *c);

#endif
