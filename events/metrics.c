/* SPDX-License-Identifier: MIT */
/* Metrics registry: relaxed atomic counters per event type, fixed-bucket
 * histograms, gauges and per-partition lag, rendered in Prometheus text format. */
#include "metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "stats.h"

#define TYPE_NAME_MAX 64
#define TOPIC_NAME_MAX 160
#define MAX_BUCKETS 16

typedef struct type_slot {
    char name[TYPE_NAME_MAX];
    _Atomic uint64_t c[EV_MC_COUNT];
} type_slot;

typedef struct hist_def {
    const char *name;
    const char *help;
    double scale; /* rendered value = base unit value * scale */
    size_t n_bounds;
    uint64_t bounds[MAX_BUCKETS]; /* upper bounds in base units, increasing */
} hist_def;

typedef struct hist {
    _Atomic uint64_t buckets[MAX_BUCKETS + 1]; /* last one: above every bound */
    _Atomic uint64_t count;
    _Atomic uint64_t sum;
} hist;

typedef struct lag_slot {
    char topic[TOPIC_NAME_MAX];
    int32_t partition;
    int64_t lag;
} lag_slot;

struct ev_metrics {
    char service[64];
    int64_t start_unix_ms;
    pthread_mutex_t lock; /* type registration and the lag table */
    _Atomic size_t n_types;
    type_slot types[EV_METRICS_MAX_TYPES + 1]; /* last: "other" */
    hist hists[EV_MH_COUNT];
    _Atomic int64_t gauges[EV_MG_COUNT];
    bool runtime; /* render and readiness from ev_runtime_stats_get */
    lag_slot lags[EV_METRICS_MAX_PARTS];
    size_t n_lags;
    /* summary state: touched by the thread calling ev_metrics_tick only */
    int64_t summary_interval_ms;
    int64_t last_summary_ms;
    uint64_t last_consumed;
    uint64_t last_produced;
};

static const char *const counter_names[EV_MC_COUNT] = {
    [EV_MC_CONSUMED] = "consumed",
    [EV_MC_APPLIED] = "applied",
    [EV_MC_PRODUCED] = "produced",
    [EV_MC_DEDUPED] = "deduped",
    [EV_MC_DEAD_LETTERED] = "dead_lettered",
    [EV_MC_SKIPPED] = "skipped",
    [EV_MC_RETRIED] = "retried",
};

static const char *const counter_help[EV_MC_COUNT] = {
    [EV_MC_CONSUMED] = "Records read from subscribed topics, by type.",
    [EV_MC_APPLIED] = "Events handled and committed, by type.",
    [EV_MC_PRODUCED] = "Events handed from the outbox to the producer, by type.",
    [EV_MC_DEDUPED] = "Events skipped because their id was already applied, by type.",
    [EV_MC_DEAD_LETTERED] = "Records sent to the dead-letter topic, by type.",
    [EV_MC_SKIPPED] = "Events of a type this service does not handle, by type.",
    [EV_MC_RETRIED] = "Handler runs that asked for a retry, by type.",
};

#define LATENCY_BOUNDS_US                                                                \
    {                                                                                    \
        100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,    \
            1000000, 2500000                                                             \
    }

/* A hop's stages take from tens of microseconds to milliseconds. */
#define HOP_BOUNDS_US                                                                    \
    {                                                                                    \
        50, 100, 200, 300, 400, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000, 25000,    \
            100000, 1000000                                                              \
    }

static const hist_def hist_defs[EV_MH_COUNT] = {
    [EV_MH_BATCH_SIZE] = {"choreo_batch_size",
                          "Records per poll batch.",
                          1.0,
                          10,
                          {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}},
    [EV_MH_COMMIT_US] = {"choreo_commit_seconds",
                         "Time to commit a batch's store transaction.", 1e-6, 14,
                         LATENCY_BOUNDS_US},
    [EV_MH_BATCH_US] = {"choreo_batch_seconds",
                        "Time to apply a batch, from begin to commit.", 1e-6, 14,
                        LATENCY_BOUNDS_US},
    [EV_MH_HOP_TRANSIT_US] = {"choreo_hop_transit_seconds",
                              "Per record: from its timestamp (whole milliseconds, taken "
                              "at its producer's send call: 0.5 ms too much on average) "
                              "to the poll that returned it.",
                              1e-6, 16, HOP_BOUNDS_US},
    [EV_MH_HOP_PARSE_US] = {"choreo_hop_parse_seconds",
                            "Per polled batch that emitted: parsing and validating its "
                            "records.",
                            1e-6, 16, HOP_BOUNDS_US},
    [EV_MH_HOP_HANDLER_US] = {"choreo_hop_handler_seconds",
                              "Per polled batch that emitted: inbox claims and handlers, "
                              "with their state writes and emitted events.",
                              1e-6, 16, HOP_BOUNDS_US},
    [EV_MH_HOP_COMMITTED_US] = {"choreo_hop_committed_seconds",
                                "Per polled batch that emitted: from the poll that "
                                "returned it to the end of its commit.",
                                1e-6, 16, HOP_BOUNDS_US},
    [EV_MH_HOP_STAY_US] = {"choreo_hop_stay_seconds",
                           "Per polled batch that emitted: from the poll that returned "
                           "it to its first emitted record handed to the producer.",
                           1e-6, 16, HOP_BOUNDS_US},
    [EV_MH_HOP_RELAY_US] = {"choreo_hop_relay_seconds",
                            "Per relay after a batch: from its commit to the first "
                            "outbox row handed to the producer.",
                            1e-6, 16, HOP_BOUNDS_US},
    [EV_MH_HOP_QUEUE_US] = {"choreo_hop_queue_seconds",
                            "Per produced record: from the send call to its request "
                            "buffer (queue, linger.ms); librdkafka's statistics, each "
                            "window's mean.",
                            1e-6, 16, HOP_BOUNDS_US},
    [EV_MH_HOP_OUTBUF_US] = {"choreo_hop_outbuf_seconds",
                             "Per produced record: in the request buffer before it is "
                             "sent; librdkafka's statistics, each window's mean.",
                             1e-6, 16, HOP_BOUNDS_US},
    [EV_MH_HOP_RTT_US] = {"choreo_hop_rtt_seconds",
                          "Per produce request: sent to the broker's answer (acks=all); "
                          "librdkafka's statistics, each window's mean.",
                          1e-6, 16, HOP_BOUNDS_US},
};

static const struct {
    const char *name;
    const char *help;
} gauge_defs[EV_MG_COUNT] = {
    [EV_MG_READY] = {"choreo_ready", "1 when connected to Kafka and assigned."},
    [EV_MG_ASSIGNED] = {"choreo_assigned_partitions", "Partitions assigned."},
    [EV_MG_OUTBOX_BACKLOG] = {"choreo_outbox_backlog", "Outbox rows not yet delivered."},
    [EV_MG_TIMERS_PENDING] = {"choreo_timers_pending", "Armed timers."},
};

static int64_t now_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

ev_metrics *ev_metrics_new(const char *service)
{
    ev_metrics *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return NULL;
    }
    snprintf(m->service, sizeof(m->service), "%s", service ? service : "");
    snprintf(m->types[EV_METRICS_MAX_TYPES].name, TYPE_NAME_MAX, "other");
    m->start_unix_ms = now_unix_ms();
    m->summary_interval_ms = 60000;
    return m;
}

void ev_metrics_free(ev_metrics *m)
{
    if (m == NULL)
        return;
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* ---- hot path ---- */

static type_slot *type_find(ev_metrics *m, const char *type, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(m->types[i].name, type) == 0)
            return &m->types[i];
    }
    return NULL;
}

static type_slot *type_slot_for(ev_metrics *m, const char *type)
{
    if (type == NULL || type[0] == '\0')
        type = "unknown";
    if (strlen(type) >= TYPE_NAME_MAX)
        return &m->types[EV_METRICS_MAX_TYPES];
    size_t n = atomic_load_explicit(&m->n_types, memory_order_acquire);
    type_slot *slot = type_find(m, type, n);
    if (slot != NULL)
        return slot;
    pthread_mutex_lock(&m->lock);
    n = atomic_load_explicit(&m->n_types, memory_order_relaxed);
    slot = type_find(m, type, n);
    if (slot == NULL && n < EV_METRICS_MAX_TYPES) {
        slot = &m->types[n];
        snprintf(slot->name, TYPE_NAME_MAX, "%s", type);
        atomic_store_explicit(&m->n_types, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&m->lock);
    return slot != NULL ? slot : &m->types[EV_METRICS_MAX_TYPES];
}

void ev_metrics_count(ev_metrics *m, ev_metric_counter c, const char *type, uint64_t n)
{
    if (m == NULL || (unsigned)c >= EV_MC_COUNT)
        return;
    type_slot *slot = type_slot_for(m, type);
    atomic_fetch_add_explicit(&slot->c[c], n, memory_order_relaxed);
}

const char *ev_metrics_peek_type(const void *value, size_t len, char *out, size_t cap)
{
    static const char key[] = "\"type\":\"";
    const char *v = value;
    size_t scan = len < 2048 ? len : 2048;
    const char *hit = v ? memmem(v, scan, key, sizeof(key) - 1) : NULL;
    snprintf(out, cap, "unknown");
    if (hit == NULL || cap == 0)
        return out;
    const char *start = hit + sizeof(key) - 1;
    const char *end = memchr(start, '"', (size_t)(v + len - start));
    size_t n = end ? (size_t)(end - start) : 0;
    if (n == 0 || n >= cap || memchr(start, '\\', n) != NULL)
        return out;
    memcpy(out, start, n);
    out[n] = '\0';
    return out;
}

void ev_metrics_count_record(ev_metrics *m, ev_metric_counter c, const void *value,
                             size_t len)
{
    char type[TYPE_NAME_MAX];
    if (m == NULL)
        return;
    ev_metrics_count(m, c, ev_metrics_peek_type(value, len, type, sizeof(type)), 1);
}

int64_t ev_metrics_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void ev_metrics_observe(ev_metrics *m, ev_metric_hist h, uint64_t value)
{
    ev_metrics_observe_n(m, h, value, 1);
}

void ev_metrics_observe_n(ev_metrics *m, ev_metric_hist h, uint64_t value, uint64_t n)
{
    if (m == NULL || (unsigned)h >= EV_MH_COUNT || n == 0)
        return;
    const hist_def *d = &hist_defs[h];
    size_t b = 0;
    while (b < d->n_bounds && value > d->bounds[b])
        b++;
    hist *hs = &m->hists[h];
    atomic_fetch_add_explicit(&hs->buckets[b], n, memory_order_relaxed);
    atomic_fetch_add_explicit(&hs->count, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&hs->sum, value * n, memory_order_relaxed);
}

void ev_metrics_gauge_set(ev_metrics *m, ev_metric_gauge g, int64_t value)
{
    if (m == NULL || (unsigned)g >= EV_MG_COUNT)
        return;
    atomic_store_explicit(&m->gauges[g], value, memory_order_relaxed);
}

int64_t ev_metrics_gauge_get(const ev_metrics *m, ev_metric_gauge g)
{
    if (m == NULL || (unsigned)g >= EV_MG_COUNT)
        return 0;
    return atomic_load_explicit(&((ev_metrics *)m)->gauges[g], memory_order_relaxed);
}

/* ---- lag ---- */

static void lag_set_locked(ev_metrics *m, const char *topic, int32_t partition,
                           int64_t lag)
{
    size_t i = 0;
    while (i < m->n_lags &&
           !(m->lags[i].partition == partition && strcmp(m->lags[i].topic, topic) == 0))
        i++;
    if (lag < 0) {
        if (i < m->n_lags)
            m->lags[i] = m->lags[--m->n_lags];
        return;
    }
    if (i == m->n_lags) {
        if (m->n_lags == EV_METRICS_MAX_PARTS || strlen(topic) >= TOPIC_NAME_MAX)
            return;
        m->n_lags++;
        snprintf(m->lags[i].topic, TOPIC_NAME_MAX, "%s", topic);
        m->lags[i].partition = partition;
    }
    m->lags[i].lag = lag;
}

void ev_metrics_lag_set(ev_metrics *m, const char *topic, int32_t partition, int64_t lag)
{
    if (m == NULL || topic == NULL)
        return;
    pthread_mutex_lock(&m->lock);
    lag_set_locked(m, topic, partition, lag);
    pthread_mutex_unlock(&m->lock);
}

void ev_metrics_lag_update(ev_metrics *m, rd_kafka_t *consumer)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (m == NULL || consumer == NULL)
        return;
    if (rd_kafka_assignment(consumer, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    rd_kafka_position(consumer, parts);
    pthread_mutex_lock(&m->lock);
    m->n_lags = 0;
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *p = &parts->elems[i];
        int64_t lo = -1, hi = -1;
        if (p->offset < 0 ||
            rd_kafka_get_watermark_offsets(consumer, p->topic, p->partition, &lo, &hi) !=
                RD_KAFKA_RESP_ERR_NO_ERROR ||
            hi < 0)
            continue;
        lag_set_locked(m, p->topic, p->partition, hi > p->offset ? hi - p->offset : 0);
    }
    pthread_mutex_unlock(&m->lock);
    atomic_store_explicit(&m->gauges[EV_MG_ASSIGNED], parts->cnt, memory_order_relaxed);
    rd_kafka_topic_partition_list_destroy(parts);
}

/* ---- readers ---- */

uint64_t ev_metrics_counter_total(const ev_metrics *m, ev_metric_counter c)
{
    if (m == NULL || (unsigned)c >= EV_MC_COUNT)
        return 0;
    ev_metrics *mm = (ev_metrics *)m;
    size_t n = atomic_load_explicit(&mm->n_types, memory_order_acquire);
    uint64_t sum =
        atomic_load_explicit(&mm->types[EV_METRICS_MAX_TYPES].c[c], memory_order_relaxed);
    for (size_t i = 0; i < n; i++)
        sum += atomic_load_explicit(&mm->types[i].c[c], memory_order_relaxed);
    return sum;
}

uint64_t ev_metrics_counter_get(const ev_metrics *m, ev_metric_counter c,
                                const char *type)
{
    if (m == NULL || (unsigned)c >= EV_MC_COUNT || type == NULL)
        return 0;
    ev_metrics *mm = (ev_metrics *)m;
    size_t n = atomic_load_explicit(&mm->n_types, memory_order_acquire);
    type_slot *slot = type_find(mm, type, n);
    if (slot == NULL && strcmp(type, "other") == 0)
        slot = &mm->types[EV_METRICS_MAX_TYPES];
    return slot ? atomic_load_explicit(&slot->c[c], memory_order_relaxed) : 0;
}

int64_t ev_metrics_lag_total(const ev_metrics *m)
{
    if (m == NULL)
        return 0;
    ev_metrics *mm = (ev_metrics *)m;
    int64_t sum = 0;
    pthread_mutex_lock(&mm->lock);
    for (size_t i = 0; i < mm->n_lags; i++)
        sum += mm->lags[i].lag;
    pthread_mutex_unlock(&mm->lock);
    return sum;
}

void ev_metrics_attach_runtime(ev_metrics *m)
{
    if (m != NULL)
        m->runtime = true;
}

bool ev_metrics_ready(void *arg)
{
    const ev_metrics *m = arg;
    if (m != NULL && m->runtime) {
        ev_runtime_stats st;
        ev_runtime_stats_get(&st);
        return st.running == 1 && st.assigned > 0;
    }
    return ev_metrics_gauge_get(m, EV_MG_READY) == 1;
}

/* ---- rendering ---- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* A label value with \, " and newline escaped, as the format requires. */
static void sb_label(sbuf *b, const char *s)
{
    char tmp[2 * TOPIC_NAME_MAX + 1];
    size_t j = 0;
    for (size_t i = 0; s[i] != '\0' && j + 2 < sizeof(tmp); i++) {
        char c = s[i];
        if (c == '\\' || c == '"' || c == '\n') {
            tmp[j++] = '\\';
            c = c == '\n' ? 'n' : c;
        }
        tmp[j++] = c;
    }
    tmp[j] = '\0';
    sb_printf(b, "\"%s\"", tmp);
}

static void render_head(sbuf *b, const char *name, const char *help, const char *kind)
{
    sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind);
}

static void render_counters(const ev_metrics *m, sbuf *b)
{
    ev_metrics *mm = (ev_metrics *)m;
    size_t n = atomic_load_explicit(&mm->n_types, memory_order_acquire);
    for (size_t c = 0; c < EV_MC_COUNT; c++) {
        char name[80];
        snprintf(name, sizeof(name), "choreo_events_%s_total", counter_names[c]);
        render_head(b, name, counter_help[c], "counter");
        for (size_t i = 0; i <= EV_METRICS_MAX_TYPES; i++) {
            if (i >= n && i != EV_METRICS_MAX_TYPES)
                continue;
            uint64_t v = atomic_load_explicit(&mm->types[i].c[c], memory_order_relaxed);
            if (i == EV_METRICS_MAX_TYPES && v == 0)
                continue;
            sb_printf(b, "%s{service=", name);
            sb_label(b, m->service);
            sb_printf(b, ",type=");
            sb_label(b, m->types[i].name);
            sb_printf(b, "} %" PRIu64 "\n", v);
        }
    }
}

static void render_hist(const ev_metrics *m, sbuf *b, ev_metric_hist h)
{
    const hist_def *d = &hist_defs[h];
    hist *hs = &((ev_metrics *)m)->hists[h];
    uint64_t cum = 0;
    render_head(b, d->name, d->help, "histogram");
    for (size_t i = 0; i <= d->n_bounds; i++) {
        cum += atomic_load_explicit(&hs->buckets[i], memory_order_relaxed);
        sb_printf(b, "%s_bucket{service=", d->name);
        sb_label(b, m->service);
        if (i < d->n_bounds)
            sb_printf(b, ",le=\"%.9g\"} %" PRIu64 "\n", (double)d->bounds[i] * d->scale,
                      cum);
        else
            sb_printf(b, ",le=\"+Inf\"} %" PRIu64 "\n", cum);
    }
    /* count is read after the buckets so that +Inf <= count never breaks */
    uint64_t count = atomic_load_explicit(&hs->count, memory_order_relaxed);
    uint64_t sum = atomic_load_explicit(&hs->sum, memory_order_relaxed);
    sb_printf(b, "%s_sum{service=", d->name);
    sb_label(b, m->service);
    sb_printf(b, "} %.9g\n%s_count{service=", (double)sum * d->scale, d->name);
    sb_label(b, m->service);
    sb_printf(b, "} %" PRIu64 "\n", count > cum ? count : cum);
}

static void render_gauges(const ev_metrics *m, const ev_runtime_stats *st, sbuf *b)
{
    int64_t v[EV_MG_COUNT];
    for (size_t g = 0; g < EV_MG_COUNT; g++)
        v[g] = ev_metrics_gauge_get(m, (ev_metric_gauge)g);
    if (st != NULL) {
        v[EV_MG_READY] = st->running == 1 && st->assigned > 0;
        v[EV_MG_ASSIGNED] = st->assigned;
        v[EV_MG_OUTBOX_BACKLOG] = st->outbox_backlog;
        v[EV_MG_TIMERS_PENDING] = st->timers_pending;
    }
    for (size_t g = 0; g < EV_MG_COUNT; g++) {
        render_head(b, gauge_defs[g].name, gauge_defs[g].help, "gauge");
        sb_printf(b, "%s{service=", gauge_defs[g].name);
        sb_label(b, m->service);
        sb_printf(b, "} %" PRId64 "\n", v[g]);
    }
    render_head(b, "choreo_start_time_seconds", "Process start, Unix time.", "gauge");
    sb_printf(b, "choreo_start_time_seconds{service=");
    sb_label(b, m->service);
    sb_printf(b, "} %.3f\n", (double)m->start_unix_ms / 1000.0);
}

/* The service loop's own totals (events/stats.h), one counter each. */
static void render_runtime(const ev_metrics *m, const ev_runtime_stats *st, sbuf *b)
{
    const struct {
        const char *name, *help;
        uint64_t v;
    } rows[] = {
        {"consumed", "Records read from subscribed topics.", st->consumed},
        {"applied", "Records handled and committed.", st->applied},
        {"delivered", "Outbox records delivered (events and dead letters).",
         st->produced},
        {"emitted", "Events written to the outbox by handlers.", st->emitted},
        {"deduped", "Records skipped: id already applied.", st->deduped},
        {"dead_lettered", "Records written to the dead-letter topic.", st->dead_lettered},
        {"skipped", "Records of a type the service does not handle.", st->skipped},
        {"retried", "Handler or timer runs that asked for a retry.", st->retried},
        {"timers_fired", "Timers fired.", st->timers_fired},
        {"batches", "Committed batch transactions.", st->batches},
        {"delivery_errors", "Failed deliveries (resent).", st->delivery_errors},
    };
    char name[80];
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        snprintf(name, sizeof(name), "choreo_runtime_%s_total", rows[i].name);
        render_head(b, name, rows[i].help, "counter");
        sb_printf(b, "%s{service=", name);
        sb_label(b, m->service);
        sb_printf(b, "} %" PRIu64 "\n", rows[i].v);
    }
    render_head(b, "choreo_last_commit_timestamp_seconds",
                "Unix time of the last committed batch; 0 before the first.", "gauge");
    sb_printf(b, "choreo_last_commit_timestamp_seconds{service=");
    sb_label(b, m->service);
    sb_printf(b, "} %.3f\n", (double)st->last_commit_ms / 1000.0);
}

static void render_lag(const ev_metrics *m, sbuf *b)
{
    ev_metrics *mm = (ev_metrics *)m;
    render_head(b, "choreo_consumer_lag",
                "Records between the consumer position and the partition end.", "gauge");
    pthread_mutex_lock(&mm->lock);
    for (size_t i = 0; i < mm->n_lags; i++) {
        sb_printf(b, "choreo_consumer_lag{service=");
        sb_label(b, m->service);
        sb_printf(b, ",topic=");
        sb_label(b, mm->lags[i].topic);
        sb_printf(b, ",partition=\"%" PRId32 "\"} %" PRId64 "\n", mm->lags[i].partition,
                  mm->lags[i].lag);
    }
    pthread_mutex_unlock(&mm->lock);
}

int ev_metrics_render(const ev_metrics *m, char **out, size_t *len, ev_error *err)
{
    if (m == NULL || out == NULL || len == NULL)
        return ev_error_set(err, EV_EINVAL, "metrics render: null argument");
    sbuf b = {.p = malloc(4096), .cap = 4096};
    if (b.p == NULL)
        return ev_error_set(err, EV_ENOMEM, "metrics render: out of memory");
    b.p[0] = '\0';
    render_counters(m, &b);
    for (size_t h = 0; h < EV_MH_COUNT; h++)
        render_hist(m, &b, (ev_metric_hist)h);
    ev_runtime_stats st;
    if (m->runtime) {
        ev_runtime_stats_get(&st);
        render_runtime(m, &st, &b);
    }
    render_gauges(m, m->runtime ? &st : NULL, &b);
    render_lag(m, &b);
    if (b.oom) {
        free(b.p);
        return ev_error_set(err, EV_ENOMEM, "metrics render: out of memory");
    }
    *out = b.p;
    *len = b.len;
    return 0;
}

/* ---- summary ---- */

void ev_metrics_set_summary_interval(ev_metrics *m, int64_t interval_ms)
{
    if (m != NULL && interval_ms > 0)
        m->summary_interval_ms = interval_ms;
}

void ev_metrics_log_summary(ev_metrics *m, int64_t now_ms)
{
    if (m == NULL)
        return;
    uint64_t consumed = ev_metrics_counter_total(m, EV_MC_CONSUMED);
    uint64_t produced = ev_metrics_counter_total(m, EV_MC_PRODUCED);
    double secs = m->last_summary_ms > 0 && now_ms > m->last_summary_ms
                      ? (double)(now_ms - m->last_summary_ms) / 1000.0
                      : 0.0;
    double crate = secs > 0 ? (double)(consumed - m->last_consumed) / secs : 0.0;
    double prate = secs > 0 ? (double)(produced - m->last_produced) / secs : 0.0;
    ev_log(EV_LOG_INFO, "metrics summary",
           "consumed=%" PRIu64 " produced=%" PRIu64 " deduped=%" PRIu64
           " dead_lettered=%" PRIu64 " skipped=%" PRIu64 " retried=%" PRIu64
           " consumed_per_s=%.1f produced_per_s=%.1f lag=%" PRId64 " outbox=%" PRId64
           " timers=%" PRId64 " assigned=%" PRId64 " ready=%" PRId64,
           consumed, produced, ev_metrics_counter_total(m, EV_MC_DEDUPED),
           ev_metrics_counter_total(m, EV_MC_DEAD_LETTERED),
           ev_metrics_counter_total(m, EV_MC_SKIPPED),
           ev_metrics_counter_total(m, EV_MC_RETRIED), crate, prate,
           ev_metrics_lag_total(m), ev_metrics_gauge_get(m, EV_MG_OUTBOX_BACKLOG),
           ev_metrics_gauge_get(m, EV_MG_TIMERS_PENDING),
           ev_metrics_gauge_get(m, EV_MG_ASSIGNED), ev_metrics_gauge_get(m, EV_MG_READY));
    m->last_summary_ms = now_ms;
    m->last_consumed = consumed;
    m->last_produced = produced;
}

void ev_metrics_tick(ev_metrics *m, int64_t now_ms)
{
    if (m == NULL)
        return;
    if (m->last_summary_ms == 0) {
        m->last_summary_ms = now_ms;
        return;
    }
    if (now_ms - m->last_summary_ms >= m->summary_interval_ms)
        ev_metrics_log_summary(m, now_ms);
}
