/* SPDX-License-Identifier: MIT */
/* The flow projection: steps from the contract's "flow" table, one compact
 * record per unfinished flow in an open-addressing table, applied events. */
#include "flows_internal.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_STUCK_MS 30000
#define DEFAULT_MAX_FLOWS 1000000
#define DEFAULT_KEEP 4096
#define DEFAULT_WINDOW_MS 3600000

/* ---- the steps, from the flow table ---- */

int fl_step_of(const ev_flows *f, const char *type)
{
    for (size_t i = 0; type != NULL && i < f->n_steps; i++)
        if (strcmp(f->steps[i].type, type) == 0)
            return (int)i;
    return -1;
}

static int add_step(ev_flows *f, const ev_contract *c, const char *type, ev_error *err)
{
    if (fl_step_of(f, type) >= 0)
        return 0;
    if (f->n_steps == EV_FLOWS_MAX_STEPS)
        return ev_error_set(err, EV_EINVAL, "flow table: more than %d steps",
                            EV_FLOWS_MAX_STEPS);
    const ev_event_route *r = ev_contract_route(c, type);
    fl_step *s = &f->steps[f->n_steps];
    s->type = type;
    s->service = r ? r->producer : "?";
    s->order = (int)f->n_steps++;
    return 0;
}

/* Every type of the table, keys and alternatives, in order of appearance. */
static int collect_steps(ev_flows *f, const ev_contract *c, json_t *flow, ev_error *err)
{
    const char *type;
    json_t *groups;
    json_object_foreach(flow, type, groups)
    {
        if (type[0] == '$')
            continue;
        if (!json_is_array(groups))
            return ev_error_set(err, EV_EINVAL, "flow table: %.60s is not a list", type);
        int rc = add_step(f, c, type, err);
        size_t i, j;
        json_t *alts, *a;
        json_array_foreach(groups, i, alts)
        {
            json_array_foreach(alts, j, a)
            {
                if (rc == 0 && json_string_value(a) == NULL)
                    rc = ev_error_set(err, EV_EINVAL,
                                      "flow table: %.60s names a "
                                      "non-string",
                                      type);
                if (rc == 0)
                    rc = add_step(f, c, json_string_value(a), err);
            }
        }
        if (rc != 0)
            return rc;
    }
    return f->n_steps > 0 ? 0 : ev_error_set(err, EV_EINVAL, "flow table is empty");
}

/* Groups, terminal flags and the pred/succ masks (indices of the final order). */
static int link_steps(ev_flows *f, json_t *flow, ev_error *err)
{
    const char *type;
    json_t *groups;
    json_object_foreach(flow, type, groups)
    {
        if (type[0] == '$')
            continue;
        fl_step *s = &f->steps[fl_step_of(f, type)];
        s->terminal = json_array_size(groups) == 0;
        size_t i, j;
        json_t *alts, *a;
        json_array_foreach(groups, i, alts)
        {
            if (s->n_groups == FL_GROUPS_MAX)
                return ev_error_set(err, EV_EINVAL,
                                    "flow table: %.60s has more than %d "
                                    "groups",
                                    type, FL_GROUPS_MAX);
            uint32_t mask = 0;
            json_array_foreach(alts, j, a)
            {
                int to = fl_step_of(f, json_string_value(a));
                mask |= 1u << to;
                s->succ |= 1u << to;
                f->steps[to].pred |= 1u << (s - f->steps);
            }
            s->groups[s->n_groups++] = mask;
        }
    }
    return 0;
}

/* Longest path from a step without predecessors (cycles cut at n steps). */
static void depths(ev_flows *f)
{
    for (size_t round = 0; round < f->n_steps; round++)
        for (size_t i = 0; i < f->n_steps; i++)
            for (size_t j = 0; j < f->n_steps; j++)
                if ((f->steps[i].succ >> j & 1) && f->steps[j].depth <= f->steps[i].depth)
                    f->steps[j].depth = f->steps[i].depth + 1;
}

static int cmp_step(const void *a, const void *b)
{
    const fl_step *x = a, *y = b;
    return x->depth != y->depth ? x->depth - y->depth : x->order - y->order;
}

static int make_edges(ev_flows *f, ev_error *err)
{
    memset(f->edge_of, -1, sizeof(f->edge_of));
    f->edges = calloc(FL_EDGES_MAX, sizeof(*f->edges));
    if (f->edges == NULL)
        return ev_error_set(err, EV_ENOMEM, "flows: out of memory");
    for (size_t i = 0; i < f->n_steps; i++)
        for (size_t j = 0; j < f->n_steps; j++) {
            if (!(f->steps[i].succ >> j & 1))
                continue;
            if (f->n_edges == FL_EDGES_MAX)
                return ev_error_set(err, EV_EINVAL, "flow table: too many edges");
            f->edge_of[i][j] = (int8_t)f->n_edges;
            f->edges[f->n_edges].from = (uint8_t)i;
            f->edges[f->n_edges++].to = (uint8_t)j;
        }
    return 0;
}

static int load_table(ev_flows *f, const ev_contract *c, ev_error *err)
{
    json_t *flow = json_object_get(ev_contract_json(c), "flow");
    if (!json_is_object(flow))
        return ev_error_set(err, EV_EINVAL, "contract has no \"flow\" table");
    int rc = collect_steps(f, c, flow, err);
    if (rc == 0)
        rc = link_steps(f, flow, err);
    if (rc != 0)
        return rc;
    depths(f);
    /* Display order: by depth, then as written; masks are rebuilt after. */
    qsort(f->steps, f->n_steps, sizeof(f->steps[0]), cmp_step);
    for (size_t i = 0; i < f->n_steps; i++) {
        f->steps[i].n_groups = 0;
        f->steps[i].pred = f->steps[i].succ = 0;
    }
    rc = link_steps(f, flow, err);
    return rc == 0 ? make_edges(f, err) : rc;
}

int ev_flows_new(ev_flows **out, const ev_contract *c, const ev_flows_opts *o,
                 ev_error *err)
{
    if (out == NULL || c == NULL)
        return ev_error_set(err, EV_EINVAL, "flows: null argument");
    *out = NULL;
    ev_flows *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return ev_error_set(err, EV_ENOMEM, "flows: out of memory");
    if (o != NULL)
        f->o = *o;
    f->o.stuck_after_ms =
        f->o.stuck_after_ms > 0 ? f->o.stuck_after_ms : DEFAULT_STUCK_MS;
    f->o.max_flows = f->o.max_flows > 0 ? f->o.max_flows : DEFAULT_MAX_FLOWS;
    f->o.keep_finished = f->o.keep_finished > 0 ? f->o.keep_finished : DEFAULT_KEEP;
    f->o.window_ms = f->o.window_ms >= FL_SLOTS ? f->o.window_ms : DEFAULT_WINDOW_MS;
    f->live_head = f->live_tail = f->done_head = f->done_tail = f->free_head = FL_NIL;
    int rc = load_table(f, c, err);
    f->gone = rc == 0 ? calloc(FL_GONE_SLOTS, sizeof(*f->gone)) : NULL;
    if (rc == 0 && f->gone == NULL)
        rc = ev_error_set(err, EV_ENOMEM, "flows: out of memory");
    if (rc != 0) {
        ev_flows_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

void ev_flows_free(ev_flows *f)
{
    if (f == NULL)
        return;
    free(f->edges);
    free(f->pool);
    free(f->slots);
    free(f->gone);
    free(f);
}

bool ev_flows_is_step(const ev_flows *f, const char *type)
{
    return f != NULL && fl_step_of(f, type) >= 0;
}

size_t ev_flows_memory(const ev_flows *f)
{
    return sizeof(*f) + FL_EDGES_MAX * sizeof(fl_edge) +
           FL_GONE_SLOTS * sizeof(uint64_t) + (size_t)f->pool_cap * sizeof(fl_flow) +
           (size_t)f->slot_cap * sizeof(uint32_t);
}

size_t ev_flows_in_flight(const ev_flows *f)
{
    return f->n_live;
}

/* ---- aggregates ---- */

static size_t hist_bucket(int64_t v)
{
    if (v < 32)
        return v < 0 ? 0 : (size_t)v;
    int e = 63 - __builtin_clzll((unsigned long long)v);
    size_t b = 32 + (size_t)(e - 5) * 16 + (size_t)((v >> (e - 4)) & 15);
    return b < FL_HIST_BUCKETS ? b : FL_HIST_BUCKETS - 1;
}

static void hist_add(fl_hist *h, int64_t ms)
{
    h->b[hist_bucket(ms)]++;
    h->n++;
}

/* Counts one in the slot of period p; an older period than the slot's is lost. */
static void ring_add(fl_ring *r, int64_t p)
{
    size_t i = (size_t)(p % FL_SLOTS);
    if (r->stamp[i] > p)
        return;
    if (r->stamp[i] < p) {
        r->stamp[i] = p;
        r->count[i] = 0;
    }
    r->count[i]++;
}

uint64_t fl_ring_sum(const fl_ring *r, int64_t now_period)
{
    uint64_t n = 0;
    for (size_t i = 0; i < FL_SLOTS; i++)
        if (r->stamp[i] > now_period - FL_SLOTS && r->stamp[i] <= now_period)
            n += r->count[i];
    return n;
}

static uint8_t outcome_class(ev_flows *f, uint8_t step, const char *reason)
{
    char r[FL_REASON_MAX];
    snprintf(r, sizeof(r), "%s", reason ? reason : "");
    /* The last class is kept for "(other)": reasons past the first fifteen. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < f->n_outcomes; i++)
            if (f->outcomes[i].step == step && strcmp(f->outcomes[i].reason, r) == 0)
                return (uint8_t)i;
        if (f->n_outcomes < FL_OUTCOMES_MAX - (size_t)(pass == 0)) {
            fl_outcome *o = &f->outcomes[f->n_outcomes];
            o->step = step;
            memcpy(o->reason, r, sizeof(r));
            return (uint8_t)f->n_outcomes++;
        }
        snprintf(r, sizeof(r), "%s", "(other)");
    }
    return FL_NONE;
}

/* ---- the table of flows ---- */

static uint64_t hash_key(const char *k)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *k != '\0'; k++)
        h = (h ^ (unsigned char)*k) * 1099511628211ULL;
    return h != 0 ? h : 1;
}

static uint32_t *find_slot(const ev_flows *f, uint64_t h, const char *key)
{
    if (f->slot_cap == 0)
        return NULL;
    uint32_t mask = f->slot_cap - 1;
    for (uint32_t i = (uint32_t)h & mask; f->slots[i] != 0; i = (i + 1) & mask) {
        const fl_flow *fl = &f->pool[f->slots[i] - 1];
        if (fl->hash == h && strcmp(fl->key, key) == 0)
            return &f->slots[i];
    }
    return NULL;
}

static void put_slot(ev_flows *f, uint32_t idx)
{
    uint32_t mask = f->slot_cap - 1;
    uint32_t i = (uint32_t)f->pool[idx].hash & mask;
    while (f->slots[i] != 0)
        i = (i + 1) & mask;
    f->slots[i] = idx + 1;
}

static bool grow_table(ev_flows *f)
{
    if ((size_t)(f->n_table + 1) * 2 <= f->slot_cap)
        return true;
    uint32_t cap = f->slot_cap ? f->slot_cap * 2 : 1024;
    uint32_t *s = calloc(cap, sizeof(*s));
    if (s == NULL || cap < f->slot_cap) {
        free(s);
        return false;
    }
    uint32_t *old = f->slots, old_cap = f->slot_cap;
    f->slots = s;
    f->slot_cap = cap;
    for (uint32_t i = 0; i < old_cap; i++)
        if (old[i] != 0)
            put_slot(f, old[i] - 1);
    free(old);
    return true;
}

/* Linear probing delete: later entries of the run move back into the hole. */
static void delete_slot(ev_flows *f, uint32_t *slot)
{
    uint32_t mask = f->slot_cap - 1;
    uint32_t i = (uint32_t)(slot - f->slots), j = i;
    f->slots[i] = 0;
    for (;;) {
        j = (j + 1) & mask;
        if (f->slots[j] == 0)
            break;
        uint32_t k = (uint32_t)f->pool[f->slots[j] - 1].hash & mask;
        bool move = i <= j ? (k <= i || k > j) : (k <= i && k > j);
        if (move) {
            f->slots[i] = f->slots[j];
            f->slots[j] = 0;
            i = j;
        }
    }
    f->n_table--;
}

static void list_unlink(ev_flows *f, uint32_t idx, uint32_t *head, uint32_t *tail)
{
    fl_flow *fl = &f->pool[idx];
    if (fl->prev != FL_NIL)
        f->pool[fl->prev].next = fl->next;
    else
        *head = fl->next;
    if (fl->next != FL_NIL)
        f->pool[fl->next].prev = fl->prev;
    else
        *tail = fl->prev;
    fl->prev = fl->next = FL_NIL;
}

static void list_append(ev_flows *f, uint32_t idx, uint32_t *head, uint32_t *tail)
{
    fl_flow *fl = &f->pool[idx];
    fl->prev = *tail;
    fl->next = FL_NIL;
    if (*tail != FL_NIL)
        f->pool[*tail].next = idx;
    else
        *head = idx;
    *tail = idx;
}

static uint32_t alloc_flow(ev_flows *f)
{
    if (f->free_head != FL_NIL) {
        uint32_t idx = f->free_head;
        f->free_head = f->pool[idx].next;
        return idx;
    }
    if (f->pool_used == f->pool_cap) {
        uint32_t cap = f->pool_cap ? f->pool_cap * 2 : 1024;
        fl_flow *p =
            cap > f->pool_cap ? realloc(f->pool, (size_t)cap * sizeof(*p)) : NULL;
        if (p == NULL)
            return FL_NIL;
        f->pool = p;
        f->pool_cap = cap;
    }
    return f->pool_used++;
}

/* Takes flow idx out of the table and its list; its slot goes to the free list. */
static void forget(ev_flows *f, uint32_t idx)
{
    fl_flow *fl = &f->pool[idx];
    uint32_t *slot = find_slot(f, fl->hash, fl->key);
    if (slot != NULL)
        delete_slot(f, slot);
    if (fl->done) {
        list_unlink(f, idx, &f->done_head, &f->done_tail);
        f->n_done--;
    } else {
        list_unlink(f, idx, &f->live_head, &f->live_tail);
        f->n_live--;
        if (fl->current != FL_NONE)
            f->steps[fl->current].in_flight--;
    }
    fl->next = f->free_head;
    f->free_head = idx;
}

/* The set of forgotten finished flows: 4-way buckets of 64-bit hashes. */
static bool gone_has(const ev_flows *f, uint64_t h)
{
    size_t b = (size_t)(h & (FL_GONE_SLOTS / 4 - 1)) * 4;
    for (size_t i = 0; i < 4; i++)
        if (f->gone[b + i] == h)
            return true;
    return false;
}

static void gone_add(ev_flows *f, uint64_t h)
{
    size_t b = (size_t)(h & (FL_GONE_SLOTS / 4 - 1)) * 4;
    for (size_t i = 0; i < 4; i++)
        if (f->gone[b + i] == 0) {
            f->gone[b + i] = h;
            return;
        }
    memmove(&f->gone[b], &f->gone[b + 1], 3 * sizeof(uint64_t)); /* oldest out */
    f->gone[b + 3] = h;
}

static fl_flow *new_flow(ev_flows *f, uint64_t h, const char *key, int64_t t)
{
    if (!grow_table(f))
        return NULL;
    uint32_t idx = alloc_flow(f);
    if (idx == FL_NIL)
        return NULL;
    fl_flow *fl = &f->pool[idx];
    memset(fl, 0, sizeof(*fl));
    fl->hash = h;
    snprintf(fl->key, sizeof(fl->key), "%s", key);
    fl->t0 = t;
    fl->current = fl->outcome = fl->reason = FL_NONE;
    put_slot(f, idx);
    f->n_table++;
    list_append(f, idx, &f->live_head, &f->live_tail);
    f->n_live++;
    f->n_flows++;
    return fl;
}

/* ---- applying an event ---- */

uint32_t fl_awaited(const ev_flows *f, const fl_flow *fl, int64_t *since)
{
    if (fl->done || fl->current == FL_NONE)
        return 0;
    const fl_step *s = &f->steps[fl->current];
    uint32_t want = 0;
    for (size_t g = 0; g < s->n_groups; g++)
        if ((s->groups[g] & fl->seen) == 0)
            want |= s->groups[g];
    if (since != NULL)
        *since = fl_step_time(fl, fl->current);
    return want;
}

/* The step the flow has reached: the deepest seen, the latest of equals. */
static uint8_t current_step(const ev_flows *f, const fl_flow *fl)
{
    uint8_t best = FL_NONE;
    for (size_t s = 0; s < f->n_steps; s++) {
        if (!(fl->seen >> s & 1))
            continue;
        if (best == FL_NONE || f->steps[s].depth > f->steps[best].depth ||
            (f->steps[s].depth == f->steps[best].depth && fl->dt[s] >= fl->dt[best]))
            best = (uint8_t)s;
    }
    return best;
}

static void set_time(fl_flow *fl, size_t s, int64_t t)
{
    if (fl->seen != 0 && t < fl->t0) {
        int64_t shift = fl->t0 - t;
        for (size_t i = 0; i < EV_FLOWS_MAX_STEPS; i++)
            if (fl->seen >> i & 1)
                fl->dt[i] = (int32_t)(fl->dt[i] + shift > INT32_MAX ? INT32_MAX
                                                                    : fl->dt[i] + shift);
        fl->t0 = t;
    }
    if (fl->seen == 0)
        fl->t0 = t;
    int64_t d = t - fl->t0;
    fl->dt[s] = (int32_t)(d > INT32_MAX ? INT32_MAX : d);
}

/* Cause to effect for every edge into s and out of s whose other end is seen;
 * an effect timed before its cause came by another path (a customer's cancel
 * after payment) and is not measured. */
static void record_latency(ev_flows *f, const fl_flow *fl, size_t s)
{
    int64_t t = fl_step_time(fl, s);
    for (size_t p = 0; p < f->n_steps; p++) {
        if (!(fl->seen >> p & 1) || p == s)
            continue;
        int64_t tp = fl_step_time(fl, p);
        if ((f->steps[s].pred >> p & 1) && t >= tp)
            hist_add(&f->edges[f->edge_of[p][s]].h, t - tp);
        if ((f->steps[s].succ >> p & 1) && tp >= t)
            hist_add(&f->edges[f->edge_of[s][p]].h, tp - t);
    }
}

static void finish(ev_flows *f, fl_flow *fl, size_t s, const ev_flow_event *e)
{
    uint32_t idx = (uint32_t)(fl - f->pool);
    list_unlink(f, idx, &f->live_head, &f->live_tail);
    f->n_live--;
    if (fl->current != FL_NONE)
        f->steps[fl->current].in_flight--;
    fl->current = (uint8_t)s;
    fl->outcome = (uint8_t)s;
    fl->done = true;
    fl->reason = outcome_class(f, (uint8_t)s, e->reason);
    if (fl->reason != FL_NONE) {
        fl_outcome *o = &f->outcomes[fl->reason];
        o->total++;
        ring_add(&o->win, e->time_ms / (f->o.window_ms / FL_SLOTS));
    }
    f->finished++;
    list_append(f, idx, &f->done_head, &f->done_tail);
    f->n_done++;
    if (f->n_done > f->o.keep_finished) {
        uint32_t old = f->done_head;
        gone_add(f, f->pool[old].hash);
        forget(f, old);
    }
}

static void advance(ev_flows *f, fl_flow *fl)
{
    uint32_t idx = (uint32_t)(fl - f->pool);
    uint8_t cur = current_step(f, fl);
    if (cur != fl->current) {
        if (fl->current != FL_NONE)
            f->steps[fl->current].in_flight--;
        f->steps[cur].in_flight++;
        fl->current = cur;
    }
    list_unlink(f, idx, &f->live_head, &f->live_tail); /* most recent last */
    list_append(f, idx, &f->live_head, &f->live_tail);
    if (f->n_live > f->o.max_flows && f->live_head != idx) {
        forget(f, f->live_head);
        f->dropped++;
    }
}

ev_flow_result ev_flows_add(ev_flows *f, const ev_flow_event *e)
{
    char key[EV_ID_MAX];
    if (e == NULL || e->key == NULL || e->key[0] == '\0' || e->time_ms < 0) {
        f->invalid++;
        return EV_FLOW_INVALID;
    }
    int s = fl_step_of(f, e->type);
    if (s < 0) {
        f->not_steps++;
        return EV_FLOW_NOT_STEP;
    }
    ev_derived_id(key, "", e->key);
    uint64_t h = hash_key(key);
    uint32_t *slot = find_slot(f, h, key);
    fl_flow *fl = slot ? &f->pool[*slot - 1] : NULL;
    if (fl == NULL && gone_has(f, h)) {
        f->late++;
        return EV_FLOW_LATE;
    }
    if (fl == NULL && (fl = new_flow(f, h, key, e->time_ms)) == NULL) {
        f->dropped++;
        return EV_FLOW_INVALID;
    }
    if (fl->seen >> s & 1) {
        f->duplicates++;
        return EV_FLOW_DUPLICATE;
    }
    f->events++;
    f->steps[s].events++;
    ring_add(&f->steps[s].rate, e->time_ms / 1000);
    set_time(fl, (size_t)s, e->time_ms);
    fl->seen |= 1u << s;
    if (fl->updated < e->time_ms)
        fl->updated = e->time_ms;
    if (e->correlationid != NULL && e->correlationid[0] != '\0' &&
        (fl->corr[0] == '\0' || f->steps[s].depth == 0))
        snprintf(fl->corr, sizeof(fl->corr), "%s", e->correlationid);
    record_latency(f, fl, (size_t)s);
    if (fl->done)
        return EV_FLOW_APPLIED; /* a late step of a finished flow: times only */
    if (f->steps[s].terminal)
        finish(f, fl, (size_t)s, e);
    else
        advance(f, fl);
    return EV_FLOW_APPLIED;
}
