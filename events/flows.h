/* SPDX-License-Identifier: MIT */
/* The flow projection: every flow (one order) rebuilt from its events against the
 * contract's "flow" table, in bounded memory, with the aggregates of `choreo flows`. */
#ifndef EV_FLOWS_H
#define EV_FLOWS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "contract.h"
#include "error.h"

/* Steps (types named in the "flow" table) a contract may have. */
#define EV_FLOWS_MAX_STEPS 16

typedef struct ev_flows ev_flows;

typedef struct ev_flows_opts {
    int64_t stuck_after_ms; /* no next step within this: stuck (0: 30 s) */
    size_t max_flows;       /* unfinished flows held; beyond, the least recently
                               updated is dropped and counted (0: 1,000,000) */
    size_t keep_finished;   /* finished flows kept whole, for late events and
                               listing; older ones leave a 64-bit hash (0: 4096) */
    int64_t window_ms;      /* outcomes are also counted over this window (0: 1 h) */
} ev_flows_opts;

/* One event as the projection sees it; strings are borrowed for the call. */
typedef struct ev_flow_event {
    const char *type;
    const char *key;           /* the flow: the order id */
    const char *correlationid; /* NULL or "" when absent */
    const char *reason;        /* data.reason of an outcome; NULL when none */
    int64_t time_ms;           /* the event's time, unix ms */
} ev_flow_event;

typedef enum {
    EV_FLOW_APPLIED,   /* a new step of a flow */
    EV_FLOW_DUPLICATE, /* that step of that flow was seen already */
    EV_FLOW_NOT_STEP,  /* a type the flow table does not name: ignored */
    EV_FLOW_LATE,      /* a step of a flow finished long ago: counted only */
    EV_FLOW_INVALID,   /* no key or no time: ignored */
} ev_flow_result;

/* A projection over contract c's "flow" table (c is borrowed and must outlive
 * it); o may be NULL for the defaults. EV_EINVAL when the table is missing or
 * names more than EV_FLOWS_MAX_STEPS types. */
int ev_flows_new(ev_flows **out, const ev_contract *c, const ev_flows_opts *o,
                 ev_error *err);
void ev_flows_free(ev_flows *f);

/* Whether type is a step of the flow (cheap: for skipping records unparsed). */
bool ev_flows_is_step(const ev_flows *f, const char *type);

/* Applies one event. Tolerates any order across topics, duplicates, gaps and
 * unknown types; never fails (an allocation failure drops the flow, counted). */
ev_flow_result ev_flows_add(ev_flows *f, const ev_flow_event *e);

/* Bytes the projection holds (tables, flows, aggregates). */
size_t ev_flows_memory(const ev_flows *f);
/* Unfinished flows held now. */
size_t ev_flows_in_flight(const ev_flows *f);

/* The aggregates at time now (unix ms), as one JSON object (owned by caller):
 * {"stuck_after_ms", "window_ms",
 *  "steps": [{"type", "service", "terminal", "in_flight", "stuck", "events",
 *             "per_min", "latency_ms": {"n", "p50", "p90", "p99"}}],
 *  "edges": [{"from", "to", "n", "p50_ms", "p90_ms", "p99_ms"}],
 *  "outcomes": [{"type", "reason", "total", "in_window"}],
 *  "totals": {"flows", "in_flight", "stuck", "finished", "events", "duplicates",
 *             "not_steps", "late", "invalid", "dropped", "memory_bytes"}}
 * Steps in the flow table's order; latencies are cause to effect (the step
 * before in the table to this one), from event times; per_min counts the
 * events of the last 60 s before now. NULL on allocation failure. */
json_t *ev_flows_summary(const ev_flows *f, int64_t now);

/* States of a flow, as ev_flows_list filters them. */
typedef enum {
    EV_FLOWS_ANY,
    EV_FLOWS_IN_FLIGHT, /* not finished (stuck ones included) */
    EV_FLOWS_STUCK,
    EV_FLOWS_FINISHED, /* ended with the outcome type whose last dotted part
                          is outcome ("completed", "rejected", "cancelled") */
} ev_flows_state;

/* Flows in state (outcome: see EV_FLOWS_FINISHED; NULL = any outcome) whose
 * current step is step (NULL = any), at most limit (0 = all), as a JSON array
 * (owned by caller) of {"order_id", "correlationid", "state", "step",
 * "first_time", "last_time", "waiting_ms", "waiting_for", "service", "outcome",
 * "reason", "steps": [{"type", "time", "since_cause_ms"}]}. Stuck flows come
 * longest waiting first, others most recently updated first. Finished flows
 * are only those still kept whole (keep_finished). */
json_t *ev_flows_list(const ev_flows *f, int64_t now, ev_flows_state state,
                      const char *outcome, const char *step, size_t limit);

#endif
