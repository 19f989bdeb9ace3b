/* SPDX-License-Identifier: MIT */
/* The flow projection as JSON: the aggregates (steps, edges, outcomes, totals)
 * and lists of flows by state, with what a stuck flow waits for. */
#include "flows_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- percentiles ---- */

/* The middle of bucket b's range of milliseconds. */
static double bucket_value(size_t b)
{
    if (b < 32)
        return (double)b;
    int e = 5 + (int)((b - 32) / 16);
    double width = (double)(1ULL << (e - 4));
    return (double)(16 + (b - 32) % 16) * width + (width - 1) / 2.0;
}

static double quantile(const uint32_t *b, uint64_t n, double q)
{
    if (n == 0)
        return 0.0;
    uint64_t rank = (uint64_t)(q * (double)n + 0.5), seen = 0;
    if (rank == 0)
        rank = 1;
    for (size_t i = 0; i < FL_HIST_BUCKETS; i++) {
        seen += b[i];
        if (seen >= rank)
            return bucket_value(i);
    }
    return bucket_value(FL_HIST_BUCKETS - 1);
}

static json_t *latency_json(const uint32_t *b, uint64_t n, const char *suffix)
{
    char k50[16], k90[16], k99[16];
    snprintf(k50, sizeof(k50), "p50%s", suffix);
    snprintf(k90, sizeof(k90), "p90%s", suffix);
    snprintf(k99, sizeof(k99), "p99%s", suffix);
    return json_pack("{s:I, s:f, s:f, s:f}", "n", (json_int_t)n, k50,
                     quantile(b, n, 0.50), k90, quantile(b, n, 0.90), k99,
                     quantile(b, n, 0.99));
}

/* ---- aggregates ---- */

static bool is_stuck(const ev_flows *f, const fl_flow *fl, int64_t now)
{
    int64_t since = 0;
    return fl_awaited(f, fl, &since) != 0 && now - since > f->o.stuck_after_ms;
}

static json_t *steps_json(const ev_flows *f, int64_t now)
{
    uint64_t stuck[EV_FLOWS_MAX_STEPS] = {0};
    for (uint32_t i = f->live_head; i != FL_NIL; i = f->pool[i].next)
        if (is_stuck(f, &f->pool[i], now))
            stuck[f->pool[i].current]++;
    json_t *arr = json_array();
    for (size_t s = 0; s < f->n_steps; s++) {
        const fl_step *st = &f->steps[s];
        uint32_t merged[FL_HIST_BUCKETS] = {0};
        uint64_t n = 0;
        for (size_t e = 0; e < f->n_edges; e++) {
            if (f->edges[e].to != s)
                continue;
            for (size_t k = 0; k < FL_HIST_BUCKETS; k++)
                merged[k] += f->edges[e].h.b[k];
            n += f->edges[e].h.n;
        }
        json_array_append_new(
            arr, json_pack("{s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:o}", "type", st->type,
                           "service", st->service, "terminal", st->terminal, "in_flight",
                           (json_int_t)st->in_flight, "stuck", (json_int_t)stuck[s],
                           "events", (json_int_t)st->events, "per_min",
                           (json_int_t)fl_ring_sum(&st->rate, now / 1000), "latency_ms",
                           latency_json(merged, n, "")));
    }
    return arr;
}

static json_t *edges_json(const ev_flows *f)
{
    json_t *arr = json_array();
    for (size_t e = 0; e < f->n_edges; e++) {
        const fl_edge *ed = &f->edges[e];
        json_t *o = latency_json(ed->h.b, ed->h.n, "_ms");
        json_object_set_new(o, "from", json_string(f->steps[ed->from].type));
        json_object_set_new(o, "to", json_string(f->steps[ed->to].type));
        json_array_append_new(arr, o);
    }
    return arr;
}

static json_t *outcomes_json(const ev_flows *f, int64_t now)
{
    json_t *arr = json_array();
    int64_t period = now / (f->o.window_ms / FL_SLOTS);
    for (size_t i = 0; i < f->n_outcomes; i++) {
        const fl_outcome *o = &f->outcomes[i];
        json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:I}", "type",
                                             f->steps[o->step].type, "reason", o->reason,
                                             "total", (json_int_t)o->total, "in_window",
                                             (json_int_t)fl_ring_sum(&o->win, period)));
    }
    return arr;
}

json_t *ev_flows_summary(const ev_flows *f, int64_t now)
{
    uint64_t stuck = 0;
    for (uint32_t i = f->live_head; i != FL_NIL; i = f->pool[i].next)
        stuck += is_stuck(f, &f->pool[i], now);
    json_t *totals =
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "flows",
                  (json_int_t)f->n_flows, "in_flight", (json_int_t)f->n_live, "stuck",
                  (json_int_t)stuck, "finished", (json_int_t)f->finished, "events",
                  (json_int_t)f->events, "duplicates", (json_int_t)f->duplicates,
                  "not_steps", (json_int_t)f->not_steps, "late", (json_int_t)f->late,
                  "invalid", (json_int_t)f->invalid, "dropped", (json_int_t)f->dropped,
                  "memory_bytes", (json_int_t)ev_flows_memory(f));
    return json_pack("{s:I, s:I, s:o, s:o, s:o, s:o}", "stuck_after_ms",
                     (json_int_t)f->o.stuck_after_ms, "window_ms",
                     (json_int_t)f->o.window_ms, "steps", steps_json(f, now), "edges",
                     edges_json(f), "outcomes", outcomes_json(f, now), "totals", totals);
}

/* ---- lists of flows ---- */

static json_t *time_json(int64_t ms)
{
    char t[EV_TIME_MAX];
    ev_time_format(t, ms);
    return json_string(t);
}

static json_t *flow_steps_json(const ev_flows *f, const fl_flow *fl)
{
    json_t *arr = json_array();
    for (size_t s = 0; s < f->n_steps; s++) {
        if (!(fl->seen >> s & 1))
            continue;
        int64_t t = fl_step_time(fl, s), cause = -1;
        for (size_t p = 0; p < f->n_steps; p++)
            if ((fl->seen >> p & 1) && (f->steps[s].pred >> p & 1))
                cause = t - fl_step_time(fl, p);
        json_t *o =
            json_pack("{s:s, s:o}", "type", f->steps[s].type, "time", time_json(t));
        if (cause >= 0)
            json_object_set_new(o, "since_cause_ms", json_integer(cause));
        json_array_append_new(arr, o);
    }
    return arr;
}

static const char *state_of(const ev_flows *f, const fl_flow *fl, int64_t now)
{
    if (!fl->done)
        return is_stuck(f, fl, now) ? "stuck" : "in-flight";
    const char *t = f->steps[fl->outcome].type, *dot = strrchr(t, '.');
    return dot ? dot + 1 : t;
}

static json_t *flow_json(const ev_flows *f, const fl_flow *fl, int64_t now)
{
    int64_t since = 0;
    uint32_t want = fl_awaited(f, fl, &since);
    json_t *waiting = json_array();
    const char *service = NULL;
    for (size_t s = 0; s < f->n_steps; s++)
        if (want >> s & 1) {
            json_array_append_new(waiting, json_string(f->steps[s].type));
            service = service ? service : f->steps[s].service;
        }
    const char *reason = fl->reason != FL_NONE ? f->outcomes[fl->reason].reason : "";
    int64_t last = fl->t0;
    for (size_t s = 0; s < f->n_steps; s++)
        if ((fl->seen >> s & 1) && fl_step_time(fl, s) > last)
            last = fl_step_time(fl, s);
    json_t *o = json_pack(
        "{s:s, s:s?, s:s, s:s?, s:o, s:o, s:I, s:o, s:s?, s:s?, s:s?, s:o}", "order_id",
        fl->key, "correlationid", fl->corr[0] ? fl->corr : NULL, "state",
        state_of(f, fl, now), "step",
        fl->current != FL_NONE ? f->steps[fl->current].type : NULL, "first_time",
        time_json(fl->t0), "last_time", time_json(last), "waiting_ms",
        (json_int_t)(want ? now - since : 0), "waiting_for", waiting, "service", service,
        "outcome", fl->done ? f->steps[fl->outcome].type : NULL, "reason",
        fl->done && reason[0] ? reason : NULL, "steps", flow_steps_json(f, fl));
    return o;
}

typedef struct pick {
    uint32_t idx;
    int64_t key; /* larger first */
} pick;

static int cmp_pick(const void *a, const void *b)
{
    const pick *x = a, *y = b;
    return x->key < y->key   ? 1
           : x->key > y->key ? -1
                             : (x->idx > y->idx) - (x->idx < y->idx);
}

static bool wanted(const ev_flows *f, const fl_flow *fl, int64_t now,
                   ev_flows_state state, const char *outcome, int step)
{
    if (step >= 0 && fl->current != step)
        return false;
    switch (state) {
    case EV_FLOWS_ANY:
        return true;
    case EV_FLOWS_IN_FLIGHT:
        return !fl->done;
    case EV_FLOWS_STUCK:
        return !fl->done && is_stuck(f, fl, now);
    case EV_FLOWS_FINISHED:
        return fl->done &&
               (outcome == NULL || strcmp(state_of(f, fl, now), outcome) == 0);
    }
    return false;
}

/* Candidates of one list (live or finished), appended to *v. */
static bool gather(const ev_flows *f, uint32_t head, int64_t now, ev_flows_state state,
                   const char *outcome, int step, pick **v, size_t *n, size_t *cap)
{
    for (uint32_t i = head; i != FL_NIL; i = f->pool[i].next) {
        const fl_flow *fl = &f->pool[i];
        if (!wanted(f, fl, now, state, outcome, step))
            continue;
        if (*n == *cap) {
            size_t c = *cap ? *cap * 2 : 256;
            pick *p = realloc(*v, c * sizeof(*p));
            if (p == NULL)
                return false;
            *v = p;
            *cap = c;
        }
        int64_t since = 0;
        bool stuck = !fl->done && fl_awaited(f, fl, &since) != 0;
        (*v)[*n].idx = i;
        (*v)[(*n)++].key = state == EV_FLOWS_STUCK && stuck ? now - since : fl->updated;
    }
    return true;
}

json_t *ev_flows_list(const ev_flows *f, int64_t now, ev_flows_state state,
                      const char *outcome, const char *step, size_t limit)
{
    pick *v = NULL;
    size_t n = 0, cap = 0;
    int s = step != NULL ? fl_step_of(f, step) : -1;
    json_t *arr = json_array();
    if (arr == NULL || (step != NULL && s < 0))
        return arr;
    bool ok = state == EV_FLOWS_FINISHED ||
              gather(f, f->live_head, now, state, outcome, s, &v, &n, &cap);
    if (ok && (state == EV_FLOWS_FINISHED || state == EV_FLOWS_ANY))
        ok = gather(f, f->done_head, now, state, outcome, s, &v, &n, &cap);
    if (!ok) {
        free(v);
        json_decref(arr);
        return NULL;
    }
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_pick);
    for (size_t i = 0; i < n && (limit == 0 || i < limit); i++)
        json_array_append_new(arr, flow_json(f, &f->pool[v[i].idx], now));
    free(v);
    return arr;
}
