/* SPDX-License-Identifier: MIT */
/* Event-flow test helpers: isolated runs of the five services against the
 * real broker, a record collector, deadline waits, dumps and invariants. */
#include "flow.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "contract.h"
#include "envelope.h"

const char *const flow_services[FLOW_N_SERVICES] = {"orders", "inventory", "payments",
                                                    "shipping", "notifications"};

#define FLOW_MAX_TOPICS 24

struct flow {
    char name[64];
    char prefix[128];
    char base[256];
    char brokers[512];
    char build[512];
    char data_dirs[FLOW_N_SERVICES][320];
    flow_opts opts;
    pid_t pids[FLOW_N_SERVICES];
    ev_contract *contract;
    rd_kafka_t *prod;
    rd_kafka_t *cons;
    char topics[FLOW_MAX_TOPICS][64]; /* unprefixed */
    int parts[FLOW_MAX_TOPICS];
    size_t n_topics;
    pthread_t thr;
    bool thr_started;
    volatile int stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    flow_rec *recs;
    size_t n_recs, cap_recs;
    int64_t seen[FLOW_MAX_TOPICS][16]; /* collector: next offset per partition */
    int delivery_failures;
    int failures;
};

/* ---- small things ------------------------------------------------------- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int svc_index(const char *service)
{
    for (int i = 0; i < FLOW_N_SERVICES; i++)
        if (strcmp(flow_services[i], service) == 0)
            return i;
    return -1;
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
    int i = svc_index(service);
    return i < 0 ? NULL : f->data_dirs[i];
}

/* ---- Kafka -------------------------------------------------------------- */

static void flow_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    flow *f = opaque;
    if (m->err) {
        fprintf(stderr, "flow %s: delivery failed: %s\n", f->name,
                rd_kafka_err2str(m->err));
        f->delivery_failures++;
    }
}

static rd_kafka_t *flow_kafka(flow *f, rd_kafka_type_t type)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", f->brokers, errstr, sizeof(errstr));
    rd_kafka_conf_set_opaque(conf, f);
    if (type == RD_KAFKA_PRODUCER) {
        rd_kafka_conf_set(conf, "linger.ms", "0", errstr, sizeof(errstr));
        rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof(errstr));
        rd_kafka_conf_set_dr_msg_cb(conf, flow_dr);
    } else {
        char group[200];
        snprintf(group, sizeof(group), "%scollector", f->prefix);
        rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr));
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
        rd_kafka_conf_set(conf, "enable.partition.eof", "false", errstr, sizeof(errstr));
    }
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    if (!rk)
        fprintf(stderr, "flow %s: kafka: %s\n", f->name, errstr);
    return rk;
}

static void full_topic(const flow *f, const char *topic, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s", f->prefix, topic);
}

/* Every topic of the contract plus dlq.<service>, 3 partitions each. */
static int flow_create_topics(flow *f)
{
    const char *const *t = ev_contract_topics(f->contract);
    for (size_t i = 0; t && t[i] && f->n_topics < FLOW_MAX_TOPICS; i++)
        snprintf(f->topics[f->n_topics++], 64, "%s", t[i]);
    for (int i = 0; i < FLOW_N_SERVICES; i++)
        snprintf(f->topics[f->n_topics++], 64, "dlq.%s", flow_services[i]);
    rd_kafka_NewTopic_t *nt[FLOW_MAX_TOPICS];
    char errstr[256], name[200];
    for (size_t i = 0; i < f->n_topics; i++) {
        full_topic(f, f->topics[i], name, sizeof(name));
        nt[i] = rd_kafka_NewTopic_new(name, 3, 1, errstr, sizeof(errstr));
        f->parts[i] = 3;
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(f->prod);
    rd_kafka_CreateTopics(f->prod, nt, f->n_topics, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    int rc = 0;
    const rd_kafka_CreateTopics_result_t *res =
        ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
    if (!res) {
        fprintf(stderr, "flow %s: create topics: no result\n", f->name);
        rc = -1;
    } else {
        size_t n;
        const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);
        for (size_t i = 0; i < n; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
            if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                fprintf(stderr, "flow %s: create %s: %s\n", f->name,
                        rd_kafka_topic_result_name(tr[i]), rd_kafka_err2str(e));
                rc = -1;
            }
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy_array(nt, f->n_topics);
    return rc;
}

/* ---- collector ---------------------------------------------------------- */

static int topic_index(const flow *f, const char *full)
{
    size_t pl = strlen(f->prefix);
    if (strncmp(full, f->prefix, pl) != 0)
        return -1;
    for (size_t i = 0; i < f->n_topics; i++)
        if (strcmp(f->topics[i], full + pl) == 0)
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
    if (ti < 0 || m->partition < 0 || m->partition >= 16)
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
    rd_kafka_poll_set_consumer(f->cons);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(64);
    char name[200];
    for (size_t i = 0; i < f->n_topics; i++) {
        full_topic(f, f->topics[i], name, sizeof(name));
        for (int p = 0; p < f->parts[i]; p++)
            rd_kafka_topic_partition_list_add(l, name, p)->offset =
                RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(f->cons, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        fprintf(stderr, "flow %s: assign: %s\n", f->name, rd_kafka_err2str(e));
        return -1;
    }
    if (pthread_create(&f->thr, NULL, collector, f) != 0)
        return -1;
    f->thr_started = true;
    return 0;
}

/* ---- life cycle --------------------------------------------------------- */

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

flow *flow_new(const char *name, const flow_opts *opts)
{
    flow *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
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
    snprintf(f->brokers, sizeof(f->brokers), "%s",
             env_or("CHOREO_BROKERS", "127.0.0.1:9092"));
    snprintf(f->build, sizeof(f->build), "%s", env_or("CHOREO_BUILD", "build"));
    snprintf(f->base, sizeof(f->base), "/tmp/choreo-flow-%s-XXXXXX", name);
    ev_error err = {0};
    if (!mkdtemp(f->base)) {
        fprintf(stderr, "flow %s: mkdtemp: %s\n", name, strerror(errno));
        goto fail;
    }
    for (int i = 0; i < FLOW_N_SERVICES; i++) {
        snprintf(f->data_dirs[i], sizeof(f->data_dirs[i]), "%s/%s", f->base,
                 flow_services[i]);
        mkdir(f->data_dirs[i], 0755);
    }
    if (ev_contract_load(&f->contract, EV_SCHEMA_DIR "/choreography.json", &err) < 0) {
        fprintf(stderr, "flow %s: contract: %s\n", name, err.text);
        goto fail;
    }
    f->prod = flow_kafka(f, RD_KAFKA_PRODUCER);
    f->cons = flow_kafka(f, RD_KAFKA_CONSUMER);
    if (!f->prod || !f->cons || flow_create_topics(f) < 0 || flow_start_collector(f) < 0)
        goto fail;
    flow_note(f, "prefix %s, data %s", f->prefix, f->base);
    return f;
fail:
    f->failures++;
    flow_end(f);
    return NULL;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Prints the tail of each service's log (for a failed run). */
static void flow_show_logs(flow *f)
{
    for (int i = 0; i < FLOW_N_SERVICES; i++) {
        char cmd[700];
        snprintf(cmd, sizeof(cmd), "tail -n 15 '%s/log' 2>/dev/null | sed 's/^/  %s| /'",
                 f->data_dirs[i], flow_services[i]);
        if (system(cmd) != 0)
            continue;
    }
}

int flow_end(flow *f)
{
    if (!f)
        return 1;
    for (int i = 0; i < FLOW_N_SERVICES; i++)
        flow_stop(f, flow_services[i], 0);
    f->stop = 1;
    if (f->thr_started)
        pthread_join(f->thr, NULL);
    if (f->cons) {
        rd_kafka_consumer_close(f->cons);
        rd_kafka_destroy(f->cons);
    }
    if (f->prod) {
        rd_kafka_flush(f->prod, 5000);
        rd_kafka_destroy(f->prod);
    }
    for (size_t i = 0; i < f->n_recs; i++) {
        free(f->recs[i].value);
        json_decref(f->recs[i].data);
    }
    free(f->recs);
    ev_contract_free(f->contract);
    int failed = f->failures > 0;
    if (failed) {
        flow_show_logs(f);
        fprintf(stderr, "flow %s: FAILED (%d checks), data kept in %s\n", f->name,
                f->failures, f->base);
    } else {
        fprintf(stderr, "flow %s: ok\n", f->name);
        if (f->base[0] && strstr(f->base, "XXXXXX") == NULL)
            nftw(f->base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
    return failed;
}

/* ---- processes ---------------------------------------------------------- */

/* In a child: the run's environment for service i. */
static void child_env(flow *f, int i)
{
    char v[64];
    setenv("CHOREO_BROKERS", f->brokers, 1);
    setenv("CHOREO_TOPIC_PREFIX", f->prefix, 1);
    setenv("CHOREO_DATA_DIR", f->data_dirs[i], 1);
    setenv("CHOREO_HTTP_ADDR", "", 1);
    snprintf(v, sizeof(v), "%lld", (long long)f->opts.order_timeout_ms);
    setenv("CHOREO_ORDER_TIMEOUT_MS", v, 1);
    snprintf(v, sizeof(v), "%lld", (long long)f->opts.dispatch_delay_ms);
    setenv("CHOREO_DISPATCH_DELAY_MS", v, 1);
    if (!getenv("CHOREO_RETRY_BACKOFF_MS"))
        setenv("CHOREO_RETRY_BACKOFF_MS", "50", 1);
    if (f->opts.extra_env) {
        char *copy = strdup(f->opts.extra_env); /* lives until exec */
        for (char *tok = copy; tok && *tok;) {
            char *sp = strchr(tok, ' ');
            if (sp)
                *sp = '\0';
            if (*tok)
                putenv(tok);
            tok = sp ? sp + 1 : NULL;
        }
    }
}

int flow_start(flow *f, const char *service)
{
    if (!service) {
        int rc = 0;
        for (int i = 0; i < FLOW_N_SERVICES; i++)
            rc |= flow_start(f, flow_services[i]);
        return rc;
    }
    int i = svc_index(service);
    if (i < 0 || f->pids[i] > 0)
        return i < 0 ? -1 : 0;
    char bin[700], logp[400];
    snprintf(bin, sizeof(bin), "%s/bin/%s", f->build, service);
    snprintf(logp, sizeof(logp), "%s/log", f->data_dirs[i]);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* a crashed test leaves no service behind */
        int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        child_env(f, i);
        execl(bin, bin, (char *)NULL);
        _exit(127);
    }
    f->pids[i] = pid;
    return 0;
}

bool flow_running(flow *f, const char *service)
{
    int i = svc_index(service);
    if (i < 0 || f->pids[i] <= 0)
        return false;
    int st;
    if (waitpid(f->pids[i], &st, WNOHANG) == f->pids[i]) {
        FLOW_CHECK(f, false, "%s exited on its own (status %d)", service, st);
        f->pids[i] = 0;
        return false;
    }
    return true;
}

int flow_stop(flow *f, const char *service, int sig)
{
    int i = svc_index(service);
    if (i < 0 || f->pids[i] <= 0)
        return 0;
    pid_t pid = f->pids[i];
    kill(pid, sig ? sig : SIGTERM);
    int st = 0;
    int64_t deadline = mono_ms() + 20000;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (mono_ms() > deadline) {
            flow_note(f, "%s did not stop, killing", service);
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            break;
        }
        nap_ms(10);
    }
    f->pids[i] = 0;
    if (!sig)
        FLOW_CHECK(f, WIFEXITED(st) && WEXITSTATUS(st) == 0,
                   "%s stopped with status %d (see its log)", service, st);
    return 0;
}

json_t *flow_dump(flow *f, const char *service)
{
    int i = svc_index(service);
    if (i < 0)
        return NULL;
    char bin[700];
    snprintf(bin, sizeof(bin), "%s/bin/%s", f->build, service);
    int p[2];
    if (pipe(p) < 0)
        return NULL;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        child_env(f, i);
        execl(bin, bin, "--dump", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    json_error_t je;
    FILE *in = fdopen(p[0], "r");
    json_t *out = in ? json_loadf(in, JSON_DISABLE_EOF_CHECK, &je) : NULL;
    if (in)
        fclose(in);
    else
        close(p[0]);
    int st;
    if (pid > 0)
        waitpid(pid, &st, 0);
    return out;
}

/* ---- quiescence --------------------------------------------------------- */

/* The next offset the service's DB holds for a topic partition, -1 if none;
 * outbox rows in *outbox. */
static int64_t db_offset(sqlite3 *db, const char *topic, int partition)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(
            db, "SELECT next_offset FROM offsets WHERE topic = ?1 AND partition = ?2", -1,
            &st, NULL) != SQLITE_OK)
        return -2;
    sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, partition);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    else if (rc != SQLITE_DONE)
        v = -2;
    sqlite3_finalize(st);
    return v;
}

static int64_t db_outbox(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM outbox", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

bool flow_caught_up(flow *f, const char *service)
{
    int i = svc_index(service);
    char path[400], name[200];
    snprintf(path, sizeof(path), "%s/%s.db", f->data_dirs[i], service);
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return false;
    }
    sqlite3_busy_timeout(db, 2000);
    bool ok = db_outbox(db) == 0;
    const char *const *topics = ev_contract_service_topics(f->contract, service);
    for (size_t t = 0; ok && topics && topics[t]; t++) {
        full_topic(f, topics[t], name, sizeof(name));
        for (int p = 0; ok && p < 3; p++) {
            int64_t lo = 0, hi = 0;
            if (rd_kafka_query_watermark_offsets(f->prod, name, p, &lo, &hi, 5000)) {
                ok = false;
                break;
            }
            int64_t next = db_offset(db, name, p);
            ok = hi == 0 || next >= hi;
        }
    }
    sqlite3_close(db);
    return ok;
}

/* The collector has read everything now on every topic; *total = the sum
 * of high watermarks. */
static bool collector_caught_up(flow *f, int64_t *total)
{
    char name[200];
    *total = 0;
    bool ok = true;
    for (size_t t = 0; t < f->n_topics; t++) {
        full_topic(f, f->topics[t], name, sizeof(name));
        for (int p = 0; p < f->parts[t]; p++) {
            int64_t lo = 0, hi = 0;
            if (rd_kafka_query_watermark_offsets(f->prod, name, p, &lo, &hi, 5000))
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
        if (flow_running(f, flow_services[i]) && !flow_caught_up(f, flow_services[i]))
            return false;
    return collector_caught_up(f, total);
}

bool flow_wait_quiet(flow *f, int64_t timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;
    int64_t last = -1;
    int stable = 0;
    while (mono_ms() < deadline) {
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
        nap_ms(150);
    }
    return false;
}

/* ---- producing ---------------------------------------------------------- */

static int produce_bytes(flow *f, const char *full, const char *key, const void *value,
                         size_t len)
{
    int before = f->delivery_failures;
    rd_kafka_resp_err_t e = rd_kafka_producev(
        f->prod, RD_KAFKA_V_TOPIC(full), RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
        RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADER("content-type", "application/cloudevents+json", -1),
        RD_KAFKA_V_END);
    if (e) {
        fprintf(stderr, "flow %s: produce %s: %s\n", f->name, full, rd_kafka_err2str(e));
        return -1;
    }
    if (rd_kafka_flush(f->prod, 15000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return -1;
    return f->delivery_failures == before ? 0 : -1;
}

int flow_produce_raw(flow *f, const char *topic, const char *key, const void *value,
                     size_t len)
{
    char full[200];
    full_topic(f, topic, full, sizeof(full));
    return produce_bytes(f, full, key, value, len);
}

int flow_produce(flow *f, const char *type, json_t *data, char *id_out)
{
    const ev_event_route *r = ev_contract_route(f->contract, type);
    if (!r) {
        json_decref(data);
        return -1;
    }
    const char *key = json_string_value(json_object_get(data, r->key_field));
    char keybuf[200];
    snprintf(keybuf, sizeof(keybuf), "%s", key ? key : "");
    ev_envelope e = {0};
    ev_error err = {0};
    char *buf = NULL;
    size_t len = 0;
    int rc = ev_envelope_init(&e, type, "/choreo/test", keybuf, data, &err);
    if (rc == 0)
        rc = ev_envelope_serialize(&e, NULL, &buf, &len, &err);
    if (rc == 0 && id_out)
        snprintf(id_out, EV_ID_MAX, "%s", e.id);
    if (rc == 0)
        rc = flow_produce_raw(f, r->topic, keybuf, buf, len);
    else
        fprintf(stderr, "flow %s: envelope %s: %s\n", f->name, type, err.text);
    free(buf);
    ev_envelope_clear(&e);
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
    int64_t deadline = mono_ms() + timeout_ms;
    do {
        json_t *d = flow_dump(f, service);
        bool ok = d && pred(d, arg);
        json_decref(d);
        if (ok)
            return true;
        nap_ms(100);
    } while (mono_ms() < deadline);
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
    int64_t deadline = mono_ms() + timeout_ms;
    const char *o = NULL;
    pthread_mutex_lock(&f->mu);
    while (!(o = outcome_locked(f, order_id)) && mono_ms() < deadline) {
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

int64_t flow_timer_due(flow *f, const char *service, const char *key, const char *kind)
{
    int i = svc_index(service);
    char path[400];
    if (i < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/%s.db", f->data_dirs[i], service);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t due = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_busy_timeout(db, 2000) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT due_at FROM timers WHERE key = ?1 AND kind = ?2",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            due = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return due;
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
    json_t *shp = flow_running(f, "shipping") ? flow_dump(f, "shipping") : NULL;
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
