/* SPDX-License-Identifier: MIT */
/* Event-flow test helpers: isolated runs of the five services (one or more
 * instances each, on SQLite or PostgreSQL) against the real broker, a record
 * collector, deadline waits, dumps and invariants. Processes, producing and
 * reading the broker go through harness.c. */
#include "flow.h"

#include <dirent.h>
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "contract.h"
#include "envelope.h"
#include "harness.h"

const char *const flow_services[FLOW_N_SERVICES] = {"orders", "inventory", "payments",
                                                    "shipping", "notifications"};

#define FLOW_MAX_TOPICS 24
#define FLOW_PARTITIONS 3
#define FLOW_TOPIC_MAX 200
#define FLOW_STOP_MS 20000
#define FLOW_DUMP_MS 30000
#define FLOW_PRODUCE_MS 15000
#define FLOW_SCHEMA_MAX 64
#define FLOW_DIR_MAX 320

struct flow {
    char name[64];
    char prefix[128];
    char base[256];
    char dirs[FLOW_N_SERVICES][FLOW_MAX_INSTANCES][FLOW_DIR_MAX];
    bool pg;
    char schemas[FLOW_N_SERVICES][FLOW_SCHEMA_MAX]; /* "" on SQLite */
    bool pg_ready[FLOW_N_SERVICES];                 /* its runtime tables exist */
    flow_opts opts;
    pid_t pids[FLOW_N_SERVICES][FLOW_MAX_INSTANCES];
    ev_contract *contract;
    harness_producer *prod;
    rd_kafka_t *cons;
    char topics[FLOW_MAX_TOPICS][64];           /* unprefixed */
    char full[FLOW_MAX_TOPICS][FLOW_TOPIC_MAX]; /* prefixed */
    const char *fullp[FLOW_MAX_TOPICS];
    size_t n_topics;
    pthread_t thr;
    bool thr_started;
    volatile int stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    flow_rec *recs;
    size_t n_recs, cap_recs;
    int64_t seen[FLOW_MAX_TOPICS][FLOW_PARTITIONS]; /* collector: next offsets */
    int failures;
};

/* ---- small things ------------------------------------------------------- */

static int svc_index(const char *service)
{
    for (int i = 0; service && i < FLOW_N_SERVICES; i++)
        if (strcmp(flow_services[i], service) == 0)
            return i;
    return -1;
}

/* The service's index when idx is a valid instance, else -1. */
static int svc_instance(const char *service, int idx)
{
    return idx >= 0 && idx < FLOW_MAX_INSTANCES ? svc_index(service) : -1;
}

bool flow_check_at(flow *f, bool cond, const char *file, int line, const char *fmt, ...)
{
    if (cond)
        return true;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL %s:%d [%s] ", file, line, f->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    f->failures++;
    return false;
}

bool flow_failed(const flow *f)
{
    return f->failures > 0;
}

void flow_note(flow *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "flow %s: ", f->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

const char *flow_data_dir(flow *f, const char *service)
{
    return flow_instance_dir(f, service, 0);
}

const char *flow_instance_dir(flow *f, const char *service, int idx)
{
    int i = svc_instance(service, idx);
    return i < 0 ? NULL : f->dirs[i][idx];
}

const char *flow_prefix(const flow *f)
{
    return f->prefix;
}

bool flow_uses_pg(const flow *f)
{
    return f->pg;
}

const char *flow_schema(flow *f, const char *service)
{
    int i = svc_index(service);
    return i < 0 || !f->pg ? NULL : f->schemas[i];
}

/* ---- Kafka -------------------------------------------------------------- */

static void full_topic(const flow *f, const char *topic, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s", f->prefix, topic);
}

static void add_topic(flow *f, const char *topic)
{
    if (f->n_topics == FLOW_MAX_TOPICS) {
        flow_note(f, "more than %d topics, %s left out", FLOW_MAX_TOPICS, topic);
        return;
    }
    size_t i = f->n_topics++;
    snprintf(f->topics[i], sizeof(f->topics[i]), "%s", topic);
    full_topic(f, topic, f->full[i], sizeof(f->full[i]));
    f->fullp[i] = f->full[i];
}

/* Every topic of the contract plus dlq.<service>, FLOW_PARTITIONS each. */
static int flow_create_topics(flow *f)
{
    const char *const *t = ev_contract_topics(f->contract);
    char dlq[64];
    for (size_t i = 0; t && t[i]; i++)
        add_topic(f, t[i]);
    for (int i = 0; i < FLOW_N_SERVICES; i++) {
        snprintf(dlq, sizeof(dlq), "dlq.%s", flow_services[i]);
        add_topic(f, dlq);
    }
    return harness_create_topics(f->fullp, f->n_topics, FLOW_PARTITIONS, 30000);
}

/* ---- collector ---------------------------------------------------------- */

static int topic_index(const flow *f, const char *full)
{
    for (size_t i = 0; i < f->n_topics; i++)
        if (strcmp(f->full[i], full) == 0)
            return (int)i;
    return -1;
}

static void rec_fill(flow_rec *r, const rd_kafka_message_t *m, const char *topic)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->topic, sizeof(r->topic), "%s", topic);
    r->partition = m->partition;
    r->offset = m->offset;
    if (m->key)
        snprintf(r->key, sizeof(r->key), "%.*s", (int)m->key_len, (const char *)m->key);
    r->len = m->len;
    r->value = malloc(m->len + 1);
    if (r->value) {
        if (m->len)
            memcpy(r->value, m->payload, m->len);
        r->value[m->len] = '\0';
    }
    ev_envelope e = {0};
    ev_error err = {0};
    if (m->len && ev_envelope_parse(&e, m->payload, m->len, NULL, &err) == 0) {
        snprintf(r->id, sizeof(r->id), "%s", e.id);
        snprintf(r->type, sizeof(r->type), "%s", e.type);
        snprintf(r->correlationid, sizeof(r->correlationid), "%s", e.correlationid);
        snprintf(r->causationid, sizeof(r->causationid), "%s", e.causationid);
        const char *oid = json_string_value(json_object_get(e.data, "order_id"));
        snprintf(r->order_id, sizeof(r->order_id), "%s", oid ? oid : "");
        r->data = e.data ? json_incref(e.data) : NULL;
        ev_envelope_clear(&e);
    }
}

static void collect_one(flow *f, const rd_kafka_message_t *m)
{
    int ti = topic_index(f, rd_kafka_topic_name(m->rkt));
    if (ti < 0 || m->partition < 0 || m->partition >= FLOW_PARTITIONS)
        return;
    flow_rec r;
    rec_fill(&r, m, f->topics[ti]);
    pthread_mutex_lock(&f->mu);
    if (f->n_recs == f->cap_recs) {
        size_t cap = f->cap_recs ? f->cap_recs * 2 : 1024;
        flow_rec *n = realloc(f->recs, cap * sizeof(*n));
        if (!n) {
            pthread_mutex_unlock(&f->mu);
            free(r.value);
            json_decref(r.data);
            return;
        }
        f->recs = n;
        f->cap_recs = cap;
    }
    f->recs[f->n_recs++] = r;
    if (m->offset + 1 > f->seen[ti][m->partition])
        f->seen[ti][m->partition] = m->offset + 1;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void *collector(void *arg)
{
    flow *f = arg;
    while (!f->stop) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(f->cons, 100);
        if (!m)
            continue;
        if (!m->err)
            collect_one(f, m);
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

static int flow_start_collector(flow *f)
{
    f->cons = harness_consumer_new();
    if (!f->cons)
        return -1;
    rd_kafka_poll_set_consumer(f->cons);
    if (harness_assign_beginning(f->cons, f->fullp, f->n_topics, FLOW_PARTITIONS) != 0)
        return -1;
    if (pthread_create(&f->thr, NULL, collector, f) != 0)
        return -1;
    f->thr_started = true;
    return 0;
}

/* ---- store -------------------------------------------------------------- */

/* The run's store: opts, else CHOREO_FLOW_STORE; -1 (printed) when unknown. */
static int store_kind(flow *f, flow_store *out)
{
    *out = f->opts.store;
    if (*out == FLOW_STORE_SQLITE || *out == FLOW_STORE_POSTGRES)
        return 0;
    if (*out != FLOW_STORE_ENV) {
        fprintf(stderr, "flow %s: flow_opts.store %d is not a flow_store\n", f->name,
                (int)*out);
        return -1;
    }
    const char *v = getenv("CHOREO_FLOW_STORE");
    if (!v || !*v || strcmp(v, "sqlite") == 0)
        *out = FLOW_STORE_SQLITE;
    else if (strcmp(v, "postgresql") == 0)
        *out = FLOW_STORE_POSTGRES;
    else {
        fprintf(stderr, "flow %s: CHOREO_FLOW_STORE=%s: want postgresql or sqlite\n",
                f->name, v);
        return -1;
    }
    return 0;
}

/* Picks the store; on PostgreSQL a fresh schema per service. -1 (printed). */
static int flow_pick_store(flow *f)
{
    flow_store kind;
    if (store_kind(f, &kind) != 0)
        return -1;
    f->pg = kind == FLOW_STORE_POSTGRES;
    if (!f->pg)
        return 0;
    if (!harness_pg_uri()) {
        fprintf(stderr,
                "flow %s: the run is on PostgreSQL (CHOREO_FLOW_STORE=postgresql or "
                "flow_opts.store) but CHOREO_TEST_PG is unset: export the URI that "
                "'sh tests/pg-server start --data-dir DIR' prints\n",
                f->name);
        return -1;
    }
    for (int i = 0; i < FLOW_N_SERVICES; i++) {
        char base[128];
        snprintf(base, sizeof(base), "flow_%s_%s", f->name, flow_services[i]);
        if (harness_pg_fresh_schema(f->schemas[i], sizeof(f->schemas[i]), base) != 0) {
            fprintf(stderr, "flow %s: no PostgreSQL schema for %s (base %s)\n", f->name,
                    flow_services[i], base);
            return -1;
        }
    }
    return 0;
}

/* Drops the run's schemas (a passed run); a failed drop is only noted. */
static void drop_schemas(flow *f)
{
    for (int i = 0; f->pg && i < FLOW_N_SERVICES; i++) {
        char sql[FLOW_SCHEMA_MAX + 64];
        if (!f->schemas[i][0])
            continue;
        snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS \"%s\" CASCADE", f->schemas[i]);
        if (harness_pg_exec(sql) != 0)
            flow_note(f, "schema %s of %s not dropped", f->schemas[i], flow_services[i]);
    }
}

static void note_store(flow *f)
{
    if (!f->pg) {
        flow_note(f, "store sqlite (<data dir>/<service>.db)");
        return;
    }
    flow_note(f,
              "store postgresql (CHOREO_TEST_PG), schemas orders=%s inventory=%s "
              "payments=%s shipping=%s notifications=%s",
              f->schemas[0], f->schemas[1], f->schemas[2], f->schemas[3], f->schemas[4]);
}

/* ---- life cycle --------------------------------------------------------- */

/* The run's directory and the data dir names: instance 0's made now, the
 * others when they start. */
static int flow_make_dirs(flow *f)
{
    snprintf(f->base, sizeof(f->base), "/tmp/choreo-flow-%s-XXXXXX", f->name);
    if (!mkdtemp(f->base)) {
        fprintf(stderr, "flow %s: mkdtemp: %s\n", f->name, strerror(errno));
        f->base[0] = '\0';
        return -1;
    }
    for (int i = 0; i < FLOW_N_SERVICES; i++)
        for (int k = 0; k < FLOW_MAX_INSTANCES; k++) {
            char *d = f->dirs[i][k];
            int n = k == 0 ? snprintf(d, FLOW_DIR_MAX, "%s/%s", f->base, flow_services[i])
                           : snprintf(d, FLOW_DIR_MAX, "%s/%s.%d", f->base,
                                      flow_services[i], k);
            if (n < 0 || n >= FLOW_DIR_MAX)
                return -1;
        }
    for (int i = 0; i < FLOW_N_SERVICES; i++)
        mkdir(f->dirs[i][0], 0755);
    return 0;
}

static void flow_init(flow *f, const char *name, const flow_opts *opts)
{
    setvbuf(stderr, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    snprintf(f->name, sizeof(f->name), "%s", name);
    if (opts)
        f->opts = *opts;
    if (!f->opts.order_timeout_ms)
        f->opts.order_timeout_ms = 20000;
    if (!f->opts.dispatch_delay_ms)
        f->opts.dispatch_delay_ms = 300;
    char u[EV_UUID_LEN];
    ev_uuid4(u);
    snprintf(f->prefix, sizeof(f->prefix), "t-%s-%.8s-", name, u);
}

flow *flow_new(const char *name, const flow_opts *opts)
{
    flow *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    flow_init(f, name, opts);
    ev_error err = {0};
    if (flow_pick_store(f) != 0 || flow_make_dirs(f) != 0)
        goto fail;
    if (ev_contract_load(&f->contract, EV_SCHEMA_DIR "/choreography.json", &err) < 0) {
        fprintf(stderr, "flow %s: contract: %s\n", name, err.text);
        goto fail;
    }
    f->prod = harness_producer_new(NULL);
    if (!f->prod || flow_create_topics(f) < 0 || flow_start_collector(f) < 0)
        goto fail;
    flow_note(f, "prefix %s, data %s", f->prefix, f->base);
    note_store(f);
    return f;
fail:
    f->failures++;
    flow_end(f);
    return NULL;
}

static void log_path(const flow *f, int i, int k, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s.%d.log", f->base, flow_services[i], k);
}

/* Prints the tail of every instance's log (for a failed run). */
static void flow_show_logs(flow *f)
{
    char path[400];
    for (int i = 0; f->base[0] && i < FLOW_N_SERVICES; i++)
        for (int k = 0; k < FLOW_MAX_INSTANCES; k++) {
            log_path(f, i, k, path, sizeof(path));
            if (access(path, F_OK) == 0)
                harness_dump_log(path, 3000);
        }
}

/* Stops the collector, frees the producer, the records and the contract. */
static void flow_release(flow *f)
{
    f->stop = 1;
    if (f->thr_started)
        pthread_join(f->thr, NULL);
    if (f->cons) {
        rd_kafka_consumer_close(f->cons);
        rd_kafka_destroy(f->cons);
    }
    harness_producer_free(f->prod);
    for (size_t i = 0; i < f->n_recs; i++) {
        free(f->recs[i].value);
        json_decref(f->recs[i].data);
    }
    free(f->recs);
    ev_contract_free(f->contract);
}

int flow_end(flow *f)
{
    if (!f)
        return 1;
    for (int i = 0; i < FLOW_N_SERVICES; i++)
        flow_stop(f, flow_services[i], 0);
    flow_release(f);
    int failed = f->failures > 0;
    if (failed) {
        flow_show_logs(f);
        fprintf(stderr, "flow %s: FAILED (%d checks), data kept in %s\n", f->name,
                f->failures, f->base[0] ? f->base : "(none)");
        if (f->pg)
            note_store(f); /* the schemas are kept: name them */
    } else {
        fprintf(stderr, "flow %s: ok\n", f->name);
        if (f->base[0])
            harness_rmtree(f->base);
        drop_schemas(f);
    }
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
    return failed;
}

/* ---- processes ---------------------------------------------------------- */

#define FLOW_ENV_MAX 48

/* A child's environment changes for harness_spawn/harness_run: "K=V" sets,
 * "K" unsets. */
typedef struct flow_env {
    char *v[FLOW_ENV_MAX + 1];
    size_t n;
    char buf[8192];
    size_t used;
    bool over;
} flow_env;

static void env_add(flow_env *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void env_add(flow_env *e, const char *fmt, ...)
{
    size_t room = sizeof(e->buf) - e->used;
    if (e->over || e->n == FLOW_ENV_MAX) {
        e->over = true;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(e->buf + e->used, room, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= room) {
        e->over = true;
        return;
    }
    e->v[e->n++] = e->buf + e->used;
    e->v[e->n] = NULL;
    e->used += (size_t)len + 1;
}

/* Every space-separated word of words ("NAME=value" or "NAME" to unset). */
static void env_add_words(flow_env *e, const char *words)
{
    for (const char *w = words; w && *w;) {
        size_t len = strcspn(w, " ");
        if (len > 0)
            env_add(e, "%.*s", (int)len, w);
        w += len + (w[len] == ' ');
    }
}

/* The run's environment for instance k of service i; -1 when it does not fit. */
static int env_of(flow *f, int i, int k, flow_env *e)
{
    memset(e, 0, sizeof(*e));
    env_add(e, "CHOREO_BROKERS=%s", harness_brokers());
    env_add(e, "CHOREO_TOPIC_PREFIX=%s", f->prefix);
    env_add(e, "CHOREO_DATA_DIR=%s", f->dirs[i][k]);
    env_add(e, "CHOREO_HTTP_ADDR=");
    env_add(e, "CHOREO_ORDER_TIMEOUT_MS=%lld", (long long)f->opts.order_timeout_ms);
    env_add(e, "CHOREO_DISPATCH_DELAY_MS=%lld", (long long)f->opts.dispatch_delay_ms);
    if (!getenv("CHOREO_RETRY_BACKOFF_MS"))
        env_add(e, "CHOREO_RETRY_BACKOFF_MS=50");
    if (f->pg) {
        env_add(e, "CHOREO_STORE=%s", harness_pg_uri());
        env_add(e, "CHOREO_STORE_SCHEMA=%s", f->schemas[i]);
    } else {
        env_add(e, "CHOREO_STORE");
        env_add(e, "CHOREO_STORE_SCHEMA");
    }
    env_add_words(e, f->opts.extra_env);
    if (e->over)
        fprintf(stderr, "flow %s: the environment of %s does not fit\n", f->name,
                flow_services[i]);
    return e->over ? -1 : 0;
}

static void service_bin(const char *service, char *out, size_t cap)
{
    char rel[64];
    snprintf(rel, sizeof(rel), "bin/%s", service);
    harness_build_path(out, cap, rel);
}

int flow_start(flow *f, const char *service)
{
    if (service)
        return flow_start_instance(f, service, 0);
    int rc = 0;
    for (int i = 0; i < FLOW_N_SERVICES; i++)
        rc |= flow_start_instance(f, flow_services[i], 0);
    return rc;
}

int flow_start_instance(flow *f, const char *service, int idx)
{
    int i = svc_instance(service, idx);
    if (i < 0)
        return -1;
    if (f->pids[i][idx] > 0)
        return 0;
    flow_env e;
    if (env_of(f, i, idx, &e) != 0)
        return -1;
    if (idx > 0 && !f->pg)
        flow_note(f,
                  "note: %s.%d on SQLite has a store of its own in %s: it shares no "
                  "state with the other instances",
                  service, idx, f->dirs[i][idx]);
    char bin[700], logp[400];
    service_bin(service, bin, sizeof(bin));
    log_path(f, i, idx, logp, sizeof(logp));
    mkdir(f->dirs[i][idx], 0755);
    char *argv[] = {bin, NULL};
    pid_t pid = harness_spawn(bin, argv, e.v, logp);
    if (pid < 0)
        return -1;
    f->pids[i][idx] = pid;
    return 0;
}

/* Instance k of service i is running; one that exited on its own is a
 * failed check (and forgotten). */
static bool instance_alive(flow *f, int i, int k)
{
    pid_t pid = f->pids[i][k];
    int status = 0;
    if (pid <= 0)
        return false;
    if (!harness_exited(pid, &status))
        return true;
    f->pids[i][k] = 0;
    FLOW_CHECK(f, false, "%s.%d exited on its own (status %d, see its log)",
               flow_services[i], k, status);
    return false;
}

bool flow_running(flow *f, const char *service)
{
    int i = svc_index(service);
    return i >= 0 && instance_alive(f, i, 0);
}

int flow_instances_running(flow *f, const char *service)
{
    int i = svc_index(service);
    int n = 0;
    for (int k = 0; i >= 0 && k < FLOW_MAX_INSTANCES; k++)
        n += instance_alive(f, i, k);
    return n;
}

pid_t flow_instance_pid(flow *f, const char *service, int idx)
{
    int i = svc_instance(service, idx);
    if (i < 0)
        return -1;
    return instance_alive(f, i, idx) ? f->pids[i][idx] : 0;
}

int flow_stop_instance(flow *f, const char *service, int idx, int sig)
{
    int i = svc_instance(service, idx);
    if (i < 0)
        return -1;
    pid_t pid = f->pids[i][idx];
    if (pid <= 0)
        return 0;
    int st = harness_stop_sig(pid, sig, FLOW_STOP_MS);
    f->pids[i][idx] = 0;
    if (st == -1)
        flow_note(f, "%s.%d did not stop in %d ms, killed", service, idx, FLOW_STOP_MS);
    if (!sig)
        FLOW_CHECK(f, st == 0, "%s.%d stopped with status %d (see its log)", service, idx,
                   st);
    return 0;
}

int flow_stop(flow *f, const char *service, int sig)
{
    if (svc_index(service) < 0)
        return -1;
    for (int k = 0; k < FLOW_MAX_INSTANCES; k++)
        flow_stop_instance(f, service, k, sig);
    return 0;
}

json_t *flow_dump(flow *f, const char *service)
{
    int i = svc_index(service);
    flow_env e;
    if (i < 0 || env_of(f, i, 0, &e) != 0)
        return NULL;
    char bin[700];
    service_bin(service, bin, sizeof(bin));
    char *argv[] = {bin, "--dump", NULL};
    char *out = NULL;
    harness_run(bin, argv, e.v, FLOW_DUMP_MS, NULL, &out);
    json_t *j = out ? json_loads(out, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
    free(out);
    return j;
}

int flow_run_service(flow *f, const char *service, const char *bin_rel,
                     const char *extra_env, const char *const *args, int timeout_ms,
                     char **out)
{
    int i = svc_index(service);
    flow_env e;
    if (out != NULL)
        *out = NULL;
    if (i < 0 || env_of(f, i, 0, &e) != 0)
        return -1;
    env_add_words(&e, extra_env);
    if (e.over)
        return -1;
    char bin[700];
    if (bin_rel != NULL)
        harness_build_path(bin, sizeof(bin), bin_rel);
    else
        service_bin(service, bin, sizeof(bin));
    char *argv[16] = {bin};
    for (size_t k = 0; args != NULL && args[k] != NULL && k + 2 < 16; k++)
        argv[k + 1] = (char *)args[k];
    char log[700];
    snprintf(log, sizeof(log), "%s/%s.run.log", f->base, service);
    return harness_run(bin, argv, e.v, timeout_ms, log, out);
}

/* ---- reading a service's store ------------------------------------------ */

/* SQL text built piece by piece; over when it did not fit. */
typedef struct sql_buf {
    char s[4096];
    size_t n;
    bool over;
} sql_buf;

static void sql_add(sql_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sql_add(sql_buf *b, const char *fmt, ...)
{
    size_t room = sizeof(b->s) - b->n;
    va_list ap;
    va_start(ap, fmt);
    int len = b->over ? 0 : vsnprintf(b->s + b->n, room, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= room)
        b->over = true;
    else
        b->n += (size_t)len;
}

/* v quoted with q: '...' a string literal, "..." an identifier; q doubled. */
static void sql_quote(sql_buf *b, const char *v, char q)
{
    sql_add(b, "%c", q);
    for (const char *p = v; *p; p++) {
        if (*p == q)
            sql_add(b, "%c", q); /* doubled inside */
        sql_add(b, "%c", *p);
    }
    sql_add(b, "%c", q);
}

/* A runtime table of service i: "<schema>".<table> on PostgreSQL. */
static void sql_table(sql_buf *b, const flow *f, int i, const char *table)
{
    if (f->pg) {
        sql_quote(b, f->schemas[i], '"');
        sql_add(b, ".");
    }
    sql_add(b, "%s", table);
}

/* The runtime tables of service i exist in its schema (the service created
 * them); remembered once true, so that polls before that print no errors. */
static bool pg_ready(flow *f, int i)
{
    if (f->pg_ready[i])
        return true;
    sql_buf b = {0};
    sql_add(&b, "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = ");
    sql_quote(&b, f->schemas[i], '\'');
    sql_add(&b, " AND tablename IN ('outbox', 'offsets', 'timers')");
    f->pg_ready[i] = !b.over && harness_pg_query_int(b.s) == 3;
    return f->pg_ready[i];
}

/* The integer of sql on instance 0's SQLite file; INT64_MIN when unreadable. */
static int64_t sqlite_int(flow *f, int i, const char *sql)
{
    char path[FLOW_DIR_MAX + 64];
    snprintf(path, sizeof(path), "%s/%s.db", f->dirs[i][0], flow_services[i]);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v = INT64_MIN;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_busy_timeout(db, 2000) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* The integer (first column, first row) of sql on service i's store: its
 * PostgreSQL schema or instance 0's SQLite file; INT64_MIN when unreadable
 * now (no store yet, a busy file, an error). */
static int64_t store_int(flow *f, int i, const sql_buf *b)
{
    if (b->over) {
        flow_note(f, "a query on %s's store is too long", flow_services[i]);
        return INT64_MIN;
    }
    if (f->pg)
        return pg_ready(f, i) ? harness_pg_query_int(b->s) : INT64_MIN;
    return sqlite_int(f, i, b->s);
}

/* Appends "('<topic>', p, hi), ..." for every partition of the service's
 * topics that holds records; *rows gets how many; false when a watermark
 * could not be read. */
static bool watermark_rows(flow *f, const char *service, sql_buf *b, size_t *rows)
{
    const char *const *topics = ev_contract_service_topics(f->contract, service);
    char name[FLOW_TOPIC_MAX];
    *rows = 0;
    for (size_t t = 0; topics && topics[t]; t++) {
        full_topic(f, topics[t], name, sizeof(name));
        for (int p = 0; p < FLOW_PARTITIONS; p++) {
            int64_t lo = 0, hi = 0;
            if (rd_kafka_query_watermark_offsets(harness_producer_handle(f->prod), name,
                                                 p, &lo, &hi, 5000))
                return false;
            if (hi == 0)
                continue;
            sql_add(b, *rows ? ", (" : "(");
            sql_quote(b, name, '\'');
            sql_add(b, ", %d, %lld)", p, (long long)hi);
            ++*rows;
        }
    }
    return true;
}

/* One query, the same on both backends: outbox rows plus partitions whose
 * stored next offset is below the high watermark; 0 = caught up. */
bool flow_caught_up(flow *f, const char *service)
{
    int i = svc_index(service);
    if (i < 0)
        return false;
    sql_buf rows = {0}, b = {0};
    size_t n = 0;
    if (!watermark_rows(f, service, &rows, &n))
        return false;
    if (n > 0)
        sql_add(&b, "WITH w(topic, part, hi) AS (VALUES %s) ", rows.over ? "" : rows.s);
    sql_add(&b, "SELECT (SELECT count(*) FROM ");
    sql_table(&b, f, i, "outbox");
    sql_add(&b, ")");
    if (n > 0) {
        sql_add(&b, " + (SELECT count(*) FROM w LEFT JOIN ");
        sql_table(&b, f, i, "offsets");
        sql_add(&b, " o ON o.topic = w.topic AND o.partition = w.part"
                    " WHERE COALESCE(o.next_offset, -1) < w.hi)");
    }
    b.over |= rows.over;
    return store_int(f, i, &b) == 0;
}

int64_t flow_timer_due(flow *f, const char *service, const char *key, const char *kind)
{
    int i = svc_index(service);
    if (i < 0)
        return -1;
    sql_buf b = {0};
    sql_add(&b, "SELECT COALESCE((SELECT due_at FROM ");
    sql_table(&b, f, i, "timers");
    sql_add(&b, " WHERE key = ");
    sql_quote(&b, key, '\'');
    sql_add(&b, " AND kind = ");
    sql_quote(&b, kind, '\'');
    sql_add(&b, "), -1)");
    int64_t due = store_int(f, i, &b);
    return due == INT64_MIN ? -1 : due;
}

/* ---- quiescence --------------------------------------------------------- */

/* The collector has read everything now on every topic; *total = the sum
 * of high watermarks. */
static bool collector_caught_up(flow *f, int64_t *total)
{
    *total = 0;
    bool ok = true;
    for (size_t t = 0; t < f->n_topics; t++) {
        for (int p = 0; p < FLOW_PARTITIONS; p++) {
            int64_t lo = 0, hi = 0;
            if (rd_kafka_query_watermark_offsets(harness_producer_handle(f->prod),
                                                 f->full[t], p, &lo, &hi, 5000))
                return false;
            *total += hi;
            pthread_mutex_lock(&f->mu);
            if (f->seen[t][p] < hi)
                ok = false;
            pthread_mutex_unlock(&f->mu);
        }
    }
    return ok;
}

static bool all_quiet_once(flow *f, int64_t *total)
{
    for (int i = 0; i < FLOW_N_SERVICES; i++)
        if (flow_instances_running(f, flow_services[i]) > 0 &&
            !flow_caught_up(f, flow_services[i]))
            return false;
    return collector_caught_up(f, total);
}

bool flow_wait_quiet(flow *f, int64_t timeout_ms)
{
    int64_t deadline = harness_now_ms() + timeout_ms;
    int64_t last = -1;
    int stable = 0;
    while (harness_now_ms() < deadline) {
        int64_t total;
        if (all_quiet_once(f, &total)) {
            stable = total == last ? stable + 1 : 0;
            last = total;
            if (stable >= 2)
                return true;
        } else {
            stable = 0;
            last = -1;
        }
        harness_sleep_ms(150);
    }
    return false;
}

/* ---- producing ---------------------------------------------------------- */

int flow_produce_raw(flow *f, const char *topic, const char *key, const void *value,
                     size_t len)
{
    static const ev_header ce = {"content-type", "application/cloudevents+json"};
    char full[FLOW_TOPIC_MAX];
    full_topic(f, topic, full, sizeof(full));
    if (harness_produce(f->prod, full, key, value, len, &ce, 1) != 0)
        return -1;
    return harness_producer_flush(f->prod, FLOW_PRODUCE_MS);
}

int flow_produce(flow *f, const char *type, json_t *data, char *id_out)
{
    const ev_event_route *r = ev_contract_route(f->contract, type);
    if (!r) {
        json_decref(data);
        return -1;
    }
    const char *key = json_string_value(json_object_get(data, r->key_field));
    char keybuf[200], id[EV_UUID_LEN];
    snprintf(keybuf, sizeof(keybuf), "%s", key ? key : "");
    ev_uuid4(id);
    char *v = harness_envelope(type, id, keybuf, data);
    if (!v) {
        fprintf(stderr, "flow %s: no envelope for %s\n", f->name, type);
        return -1;
    }
    if (id_out)
        snprintf(id_out, EV_ID_MAX, "%s", id);
    int rc = flow_produce_raw(f, r->topic, keybuf, v, strlen(v));
    free(v);
    return rc;
}

int flow_register(flow *f, const char *customer_id, const char *email, int64_t limit)
{
    return flow_produce(f, "customer.registered",
                        json_pack("{s:s, s:s, s:s, s:I}", "customer_id", customer_id,
                                  "name", customer_id, "email", email,
                                  "credit_limit_cents", (json_int_t)limit),
                        NULL);
}

int flow_add_stock(flow *f, const char *sku, int64_t qty)
{
    return flow_produce(f, "stock.added",
                        json_pack("{s:s, s:I}", "sku", sku, "qty", (json_int_t)qty),
                        NULL);
}

void flow_setup_shop(flow *f, int n_customers, const int64_t *limits, int n_skus,
                     const int64_t *stock, bool at_rest, int64_t timeout_ms)
{
    char cid[16], email[64], sku[16];
    for (int c = 0; c < n_customers; c++) {
        snprintf(cid, sizeof(cid), "c%d", c);
        snprintf(email, sizeof(email), "c%d@example.com", c);
        FLOW_CHECK(f, flow_register(f, cid, email, limits[c]) == 0, "register %s", cid);
    }
    for (int k = 0; k < n_skus; k++) {
        snprintf(sku, sizeof(sku), "sku-%d", k);
        FLOW_CHECK(f, flow_add_stock(f, sku, stock[k]) == 0, "stock %s", sku);
    }
    FLOW_CHECK(f, flow_wait_customer(f, cid, timeout_ms), "payments knows %s", cid);
    FLOW_CHECK(f, flow_wait_stock(f, sku, stock[n_skus - 1], timeout_ms),
               "inventory has %s", sku);
    if (at_rest)
        FLOW_CHECK(f, flow_wait_quiet(f, timeout_ms), "setup at rest");
}

int flow_place(flow *f, const char *order_id, const char *customer_id, const char *sku,
               int64_t qty, int64_t unit_price)
{
    return flow_produce(f, "order.placed",
                        json_pack("{s:s, s:s, s:[{s:s, s:I, s:I}], s:I, s:s}", "order_id",
                                  order_id, "customer_id", customer_id, "items", "sku",
                                  sku, "qty", (json_int_t)qty, "unit_price_cents",
                                  (json_int_t)unit_price, "total_cents",
                                  (json_int_t)(qty * unit_price), "currency", "EUR"),
                        NULL);
}

int flow_cancel(flow *f, const char *order_id)
{
    return flow_produce(
        f, "order.cancel_requested",
        json_pack("{s:s, s:s}", "order_id", order_id, "reason", "changed my mind"), NULL);
}

/* Polls a service's dump until pred holds. */
static bool wait_dump(flow *f, const char *service, bool (*pred)(json_t *, const void *),
                      const void *arg, int64_t timeout_ms)
{
    int64_t deadline = harness_now_ms() + timeout_ms;
    do {
        json_t *d = flow_dump(f, service);
        bool ok = d && pred(d, arg);
        json_decref(d);
        if (ok)
            return true;
        harness_sleep_ms(100);
    } while (harness_now_ms() < deadline);
    return false;
}

static json_t *find_by(json_t *arr, const char *field, const char *value)
{
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        const char *v = json_string_value(json_object_get(o, field));
        if (v && strcmp(v, value) == 0)
            return o;
    }
    return NULL;
}

static bool has_customer(json_t *d, const void *arg)
{
    return find_by(json_object_get(d, "customers"), "customer_id", arg) != NULL;
}

bool flow_wait_customer(flow *f, const char *customer_id, int64_t timeout_ms)
{
    return wait_dump(f, "payments", has_customer, customer_id, timeout_ms);
}

typedef struct stock_want {
    const char *sku;
    int64_t added;
} stock_want;

static bool has_stock(json_t *d, const void *arg)
{
    const stock_want *w = arg;
    json_t *s = find_by(json_object_get(d, "stock"), "sku", w->sku);
    return s && json_integer_value(json_object_get(s, "added")) >= w->added;
}

bool flow_wait_stock(flow *f, const char *sku, int64_t added, int64_t timeout_ms)
{
    stock_want w = {sku, added};
    return wait_dump(f, "inventory", has_stock, &w, timeout_ms);
}

/* ---- records ------------------------------------------------------------ */

static bool rec_match(const flow_rec *r, const char *order_id, const char *type)
{
    return strcmp(r->type, type) == 0 &&
           (!order_id || strcmp(r->order_id, order_id) == 0);
}

bool flow_wait_type(flow *f, const char *order_id, const char *type, int64_t timeout_ms,
                    flow_rec *out)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t end = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + timeout_ms;
    ts.tv_sec = end / 1000;
    ts.tv_nsec = (end % 1000) * 1000000L;
    size_t from = 0;
    bool found = false;
    pthread_mutex_lock(&f->mu);
    for (;;) {
        for (; from < f->n_recs && !found; from++) {
            if (rec_match(&f->recs[from], order_id, type)) {
                found = true;
                if (out) {
                    *out = f->recs[from];
                    out->data = NULL;
                    out->value = NULL;
                }
            }
        }
        if (found || pthread_cond_timedwait(&f->cv, &f->mu, &ts) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&f->mu);
    return found;
}

/* Distinct ids among matching records (the lock is held). */
static size_t count_locked(flow *f, const char *order_id, const char *type)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n_recs; i++) {
        if (!rec_match(&f->recs[i], order_id, type))
            continue;
        bool dup = false;
        for (size_t j = 0; j < i && !dup; j++)
            dup = rec_match(&f->recs[j], order_id, type) &&
                  strcmp(f->recs[j].id, f->recs[i].id) == 0;
        n += !dup;
    }
    return n;
}

size_t flow_count(flow *f, const char *order_id, const char *type)
{
    pthread_mutex_lock(&f->mu);
    size_t n = count_locked(f, order_id, type);
    pthread_mutex_unlock(&f->mu);
    return n;
}

size_t flow_count_topic(flow *f, const char *topic)
{
    size_t n = 0;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->n_recs; i++)
        n += strcmp(f->recs[i].topic, topic) == 0;
    pthread_mutex_unlock(&f->mu);
    return n;
}

static const char *const terminal_types[] = {"order.completed", "order.rejected",
                                             "order.cancelled"};
static const char *const terminal_names[] = {"completed", "rejected", "cancelled"};

/* The first terminal outcome already seen, or NULL (the lock is held). */
static const char *outcome_locked(flow *f, const char *order_id)
{
    for (size_t i = 0; i < f->n_recs; i++)
        for (size_t t = 0; t < 3; t++)
            if (rec_match(&f->recs[i], order_id, terminal_types[t]))
                return terminal_names[t];
    return NULL;
}

const char *flow_wait_outcome(flow *f, const char *order_id, int64_t timeout_ms)
{
    int64_t deadline = harness_now_ms() + timeout_ms;
    const char *o = NULL;
    pthread_mutex_lock(&f->mu);
    while (!(o = outcome_locked(f, order_id)) && harness_now_ms() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&f->cv, &f->mu, &ts);
    }
    pthread_mutex_unlock(&f->mu);
    return o;
}

void flow_each(flow *f, void (*fn)(void *arg, const flow_rec *r), void *arg)
{
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->n_recs; i++)
        fn(arg, &f->recs[i]);
    pthread_mutex_unlock(&f->mu);
}

long flow_replay_all(flow *f)
{
    pthread_mutex_lock(&f->mu);
    size_t n = f->n_recs;
    flow_rec *copy = calloc(n ? n : 1, sizeof(*copy));
    size_t k = 0;
    for (size_t i = 0; copy && i < n; i++) {
        if (strncmp(f->recs[i].topic, "dlq.", 4) == 0 || !f->recs[i].value)
            continue;
        copy[k] = f->recs[i];
        copy[k].data = NULL;
        copy[k].value = malloc(f->recs[i].len + 1);
        if (copy[k].value)
            memcpy(copy[k].value, f->recs[i].value, f->recs[i].len + 1);
        k++;
    }
    pthread_mutex_unlock(&f->mu);
    if (!copy)
        return -1;
    long sent = 0;
    for (size_t i = 0; i < k; i++) {
        if (sent >= 0 && copy[i].value &&
            flow_produce_raw(f, copy[i].topic, copy[i].key, copy[i].value, copy[i].len) ==
                0)
            sent++;
        else
            sent = -1;
        free(copy[i].value);
    }
    free(copy);
    return sent;
}

long flow_count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* ---- invariants --------------------------------------------------------- */

/* Derived types that happen at most once per order. */
static const char *const once_types[] = {
    "order.confirmed",     "order.rejected",     "order.cancelled",
    "order.completed",     "inventory.reserved", "inventory.rejected",
    "inventory.released",  "payment.authorized", "payment.declined",
    "payment.refunded",    "shipment.scheduled", "shipment.cancelled",
    "shipment.dispatched", "shipment.returned",
};

static void check_order_events(flow *f, const char *id)
{
    size_t n[3];
    for (size_t t = 0; t < 3; t++)
        n[t] = flow_count(f, id, terminal_types[t]);
    FLOW_CHECK(f, n[0] + n[1] + n[2] == 1,
               "order %s: %zu completed, %zu rejected, %zu cancelled (want exactly one)",
               id, n[0], n[1], n[2]);
    for (size_t t = 0; t < sizeof(once_types) / sizeof(once_types[0]); t++) {
        size_t c = flow_count(f, id, once_types[t]);
        FLOW_CHECK(f, c <= 1, "order %s: %zu distinct %s", id, c, once_types[t]);
    }
    size_t auth = flow_count(f, id, "payment.authorized");
    size_t refund = flow_count(f, id, "payment.refunded");
    if (n[0] == 1)
        FLOW_CHECK(
            f,
            auth == 1 && refund == 0 && flow_count(f, id, "order.confirmed") == 1 &&
                flow_count(f, id, "shipment.dispatched") == 1,
            "order %s completed without confirm/authorize/dispatch or refunded", id);
    else
        FLOW_CHECK(f, auth == refund,
                   "order %s not completed but charged (%zu auth, %zu refund)", id, auth,
                   refund);
}

static void check_stock(flow *f, json_t *inv)
{
    size_t i;
    json_t *s;
    FLOW_CHECK(f, inv != NULL, "no inventory dump");
    json_array_foreach(json_object_get(inv, "stock"), i, s)
    {
        const char *sku = json_string_value(json_object_get(s, "sku"));
        json_int_t av = json_integer_value(json_object_get(s, "available"));
        json_int_t re = json_integer_value(json_object_get(s, "reserved"));
        json_int_t sh = json_integer_value(json_object_get(s, "shipped"));
        json_int_t ad = json_integer_value(json_object_get(s, "added"));
        FLOW_CHECK(f, av >= 0 && re >= 0 && sh >= 0, "sku %s negative", sku);
        FLOW_CHECK(f, ad == av + re + sh, "sku %s: added %lld != %lld + %lld + %lld", sku,
                   (long long)ad, (long long)av, (long long)re, (long long)sh);
        FLOW_CHECK(f, re == 0, "sku %s: %lld still reserved at rest", sku, (long long)re);
    }
}

static void check_money(flow *f, json_t *pay)
{
    size_t i, j;
    json_t *c, *p;
    FLOW_CHECK(f, pay != NULL, "no payments dump");
    json_array_foreach(json_object_get(pay, "customers"), i, c)
    {
        const char *cid = json_string_value(json_object_get(c, "customer_id"));
        json_int_t out = json_integer_value(json_object_get(c, "outstanding_cents"));
        json_int_t lim = json_integer_value(json_object_get(c, "credit_limit_cents"));
        json_int_t sum = 0;
        json_array_foreach(json_object_get(pay, "payments"), j, p)
        {
            const char *pc = json_string_value(json_object_get(p, "customer_id"));
            const char *st = json_string_value(json_object_get(p, "status"));
            if (pc && strcmp(pc, cid) == 0 && strcmp(st, "AUTHORIZED") == 0)
                sum += json_integer_value(json_object_get(p, "amount_cents"));
        }
        FLOW_CHECK(f, out == sum, "customer %s: outstanding %lld != authorized %lld", cid,
                   (long long)out, (long long)sum);
        FLOW_CHECK(f, out <= lim, "customer %s: outstanding %lld over limit %lld", cid,
                   (long long)out, (long long)lim);
    }
}

static const char *upper_outcome(const char *o)
{
    if (!o)
        return "";
    return strcmp(o, "completed") == 0  ? "COMPLETED"
           : strcmp(o, "rejected") == 0 ? "REJECTED"
                                        : "CANCELLED";
}

/* The shipment of an order agrees with its outcome. */
static void check_shipment(flow *f, const char *id, const char *o, json_t *shp)
{
    json_t *row = shp ? find_by(json_object_get(shp, "shipments"), "order_id", id) : NULL;
    const char *st = row ? json_string_value(json_object_get(row, "status")) : "NONE";
    if (strcmp(o, "completed") == 0)
        FLOW_CHECK(f, strcmp(st, "DISPATCHED") == 0, "order %s completed, shipment %s",
                   id, st);
    else if (strcmp(o, "rejected") == 0)
        FLOW_CHECK(f, strcmp(st, "NONE") == 0, "order %s rejected, shipment %s", id, st);
    else
        FLOW_CHECK(f, strcmp(st, "SCHEDULED") != 0 && strcmp(st, "DISPATCHED") != 0,
                   "order %s cancelled, shipment %s", id, st);
}

static void check_order_dumps(flow *f, const char *id, json_t *ord, json_t *pay,
                              json_t *shp)
{
    pthread_mutex_lock(&f->mu);
    const char *o = outcome_locked(f, id);
    pthread_mutex_unlock(&f->mu);
    json_t *row = ord ? find_by(json_object_get(ord, "orders"), "order_id", id) : NULL;
    FLOW_CHECK(f, row != NULL, "order %s not in the orders dump", id);
    if (row && o)
        FLOW_CHECK(f,
                   strcmp(json_string_value(json_object_get(row, "status")),
                          upper_outcome(o)) == 0,
                   "order %s: dump says %s, events say %s", id,
                   json_string_value(json_object_get(row, "status")), o);
    json_t *p = pay ? find_by(json_object_get(pay, "payments"), "order_id", id) : NULL;
    const char *ps = p ? json_string_value(json_object_get(p, "status")) : "";
    if (o)
        FLOW_CHECK(f, (strcmp(ps, "AUTHORIZED") == 0) == (strcmp(o, "completed") == 0),
                   "order %s (%s): payment status %s", id, o, ps);
    if (o && shp)
        check_shipment(f, id, o, shp);
}

void flow_check_invariants(flow *f, const char *const *order_ids, size_t n)
{
    FLOW_CHECK(f, flow_wait_quiet(f, 60000), "the system did not come to rest");
    json_t *inv = flow_dump(f, "inventory");
    json_t *pay = flow_dump(f, "payments");
    json_t *ord = flow_dump(f, "orders");
    json_t *shp =
        flow_instances_running(f, "shipping") > 0 ? flow_dump(f, "shipping") : NULL;
    for (size_t i = 0; i < n; i++) {
        check_order_events(f, order_ids[i]);
        check_order_dumps(f, order_ids[i], ord, pay, shp);
    }
    json_decref(shp);
    check_stock(f, inv);
    check_money(f, pay);
    json_decref(inv);
    json_decref(pay);
    json_decref(ord);
}
