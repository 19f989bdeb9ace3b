/* SPDX-License-Identifier: MIT */
/* The flow projection's state, shared by flows.c (applying events) and
 * flows_view.c (aggregates and lists as JSON). Not a public header. */
#ifndef EV_FLOWS_INTERNAL_H
#define EV_FLOWS_INTERNAL_H

#include "envelope.h"
#include "flows.h"

#define FL_NIL UINT32_MAX
#define FL_NONE 0xff
#define FL_GROUPS_MAX 4
#define FL_EDGES_MAX 64
#define FL_OUTCOMES_MAX 16
#define FL_REASON_MAX 32
#define FL_HIST_BUCKETS 640 /* 0..31 ms exact, then 16 sub-buckets per power of two */
#define FL_SLOTS 60         /* rate: 60 one-second slots; outcomes: 60 window slots */
#define FL_GONE_SLOTS (1u << 17)
#define FL_CORR_MAX 40

typedef struct fl_hist {
    uint64_t n;
    uint32_t b[FL_HIST_BUCKETS];
} fl_hist;

/* Counts per time slot: slot i holds the count of period stamp[i]. */
typedef struct fl_ring {
    uint32_t count[FL_SLOTS];
    int64_t stamp[FL_SLOTS];
} fl_ring;

typedef struct fl_step {
    const char *type;    /* borrowed from the contract document */
    const char *service; /* producer of the type; "?" when unknown */
    bool terminal;       /* an empty list in the flow table: an outcome */
    int depth;           /* longest path from a first step */
    int order;           /* first appearance in the flow table */
    size_t n_groups;
    uint32_t groups[FL_GROUPS_MAX]; /* each: the alternatives, a mask of steps */
    uint32_t pred, succ;            /* masks of steps with an edge to / from it */
    uint64_t in_flight, events;
    fl_ring rate; /* events per second of event time */
} fl_step;

typedef struct fl_edge {
    uint8_t from, to;
    fl_hist h; /* cause to effect, ms */
} fl_edge;

typedef struct fl_outcome {
    uint8_t step;
    char reason[FL_REASON_MAX]; /* "" when the event had none */
    uint64_t total;
    fl_ring win; /* periods of window_ms / FL_SLOTS */
} fl_outcome;

/* One flow. Step times are ms after t0 (the earliest event seen). */
typedef struct fl_flow {
    uint64_t hash;
    char key[EV_ID_MAX];
    char corr[FL_CORR_MAX];
    int64_t t0;
    int64_t updated; /* event time of the last step applied */
    int32_t dt[EV_FLOWS_MAX_STEPS];
    uint32_t seen; /* mask of steps */
    uint32_t prev, next;
    uint8_t current, outcome, reason; /* step, step, outcome class; FL_NONE */
    bool done;
} fl_flow;

struct ev_flows {
    ev_flows_opts o;
    fl_step steps[EV_FLOWS_MAX_STEPS];
    size_t n_steps;
    int8_t edge_of[EV_FLOWS_MAX_STEPS][EV_FLOWS_MAX_STEPS]; /* -1: none */
    fl_edge *edges;
    size_t n_edges;
    fl_outcome outcomes[FL_OUTCOMES_MAX];
    size_t n_outcomes;
    /* flows: a pool indexed by uint32, an open-addressing table of pool
     * index + 1, two lists (unfinished by last update; finished by end). */
    fl_flow *pool;
    uint32_t pool_cap, pool_used, free_head;
    uint32_t *slots;
    uint32_t slot_cap, n_table;
    uint32_t live_head, live_tail, done_head, done_tail;
    size_t n_live, n_done;
    uint64_t *gone; /* hashes of flows finished and forgotten */
    uint64_t n_flows, events, duplicates, not_steps, late, invalid, dropped, finished;
};

static inline int64_t fl_step_time(const fl_flow *fl, size_t s)
{
    return fl->t0 + fl->dt[s];
}

/* Step index of type, -1 when not a step. */
int fl_step_of(const ev_flows *f, const char *type);
/* The steps a live flow waits for (a mask: the unmet groups of its current
 * step) and since when; 0 when it waits for nothing. */
uint32_t fl_awaited(const ev_flows *f, const fl_flow *fl, int64_t *since);
/* Sum of a ring's slots whose period is within (now - FL_SLOTS, now]. */
uint64_t fl_ring_sum(const fl_ring *r, int64_t now_period);

#endif
