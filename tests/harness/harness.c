/* SPDX-License-Identifier: MIT */
/* Shared helpers of the integration and flow tests: isolated topic prefixes and
 * data dirs, child processes, producing to and reading from the real broker. */
#include "harness.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "envelope.h"

#define SEND_TIMEOUT_MS 10000

/* ---- places ---- */

int64_t harness_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void harness_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

const char *harness_brokers(void)
{
    const char *b = getenv("CHOREO_BROKERS");
    return b != NULL && b[0] != '\0' ? b : "127.0.0.1:9092";
}

const char *harness_build_dir(void)
{
    const char *b = getenv("CHOREO_BUILD");
    return b != NULL && b[0] != '\0' ? b : "build";
}

const char *harness_build_path(char *out, size_t cap, const char *rel)
{
    snprintf(out, cap, "%s/%s", harness_build_dir(), rel);
    return out;
}

const char *harness_source_path(char *out, size_t cap, const char *rel)
{
    const char *build = harness_build_dir();
    const char *bases[] = {".", NULL, NULL, NULL};
    char up1[PATH_MAX], up2[PATH_MAX], up3[PATH_MAX];
    snprintf(up1, sizeof(up1), "%s/..", build);
    snprintf(up2, sizeof(up2), "%s/../..", build);
    snprintf(up3, sizeof(up3), "%s/../../..", build);
    bases[1] = up1;
    bases[2] = up2;
    bases[3] = up3;
    for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
        snprintf(out, cap, "%s/%s", bases[i], rel);
        if (access(out, F_OK) == 0) {
            char real[PATH_MAX];
            if (realpath(out, real) != NULL)
                snprintf(out, cap, "%s", real);
            return out;
        }
    }
    snprintf(out, cap, "%s", rel);
    return out;
}

void harness_prefix(char *out, size_t cap)
{
    char u[EV_UUID_LEN];
    ev_uuid4(u);
    snprintf(out, cap, "t-%d-%.8s-", (int)getpid(), u);
}

const char *harness_topic(char *out, size_t cap, const char *prefix, const char *name)
{
    snprintf(out, cap, "%s%s", prefix ? prefix : "", name);
    return out;
}

int harness_tmpdir(char *out, size_t cap)
{
    const char *t = getenv("TMPDIR");
    int n = snprintf(out, cap, "%s/choreo-test-XXXXXX", t && t[0] ? t : "/tmp");
    if (n < 0 || (size_t)n >= cap)
        return -1;
    return mkdtemp(out) != NULL ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int harness_rmtree(const char *dir)
{
    if (dir == NULL || dir[0] == '\0' || strcmp(dir, "/") == 0)
        return -1;
    return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- processes ---- */

static void child_env(char *const env[])
{
    for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
        const char *eq = strchr(env[i], '=');
        if (eq == NULL) {
            unsetenv(env[i]);
            continue;
        }
        char name[256];
        size_t n = (size_t)(eq - env[i]);
        if (n >= sizeof(name))
            continue;
        memcpy(name, env[i], n);
        name[n] = '\0';
        setenv(name, eq + 1, 1);
    }
}

static void child_log(const char *log_path, bool both)
{
    if (log_path == NULL)
        return;
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    if (both)
        dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
}

pid_t harness_spawn(const char *prog, char *const argv[], char *const env[],
                    const char *log_path)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* a crashed test leaves no process behind */
    child_env(env);
    child_log(log_path, true);
    execv(prog, argv);
    fprintf(stderr, "harness: exec %s: %s\n", prog, strerror(errno));
    _exit(127);
}

static int status_code(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return -2;
}

bool harness_exited(pid_t pid, int *status)
{
    int st = 0;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r != pid)
        return r < 0; /* already reaped or not ours: treat as gone */
    if (status != NULL)
        *status = status_code(st);
    return true;
}

int harness_stop(pid_t pid, int timeout_ms)
{
    return harness_stop_sig(pid, SIGTERM, timeout_ms);
}

int harness_stop_sig(pid_t pid, int sig, int timeout_ms)
{
    if (pid <= 0)
        return -1;
    kill(pid, sig != 0 ? sig : SIGTERM);
    int64_t deadline = harness_now_ms() + timeout_ms;
    int status = 0;
    while (harness_now_ms() < deadline) {
        if (harness_exited(pid, &status))
            return status;
        harness_sleep_ms(20);
    }
    harness_kill9(pid);
    return -1;
}

void harness_kill9(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
}

/* Reads fd until EOF or the deadline into a growing buffer. */
static int read_all(int fd, int64_t deadline, char **out)
{
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    if (buf == NULL)
        return -1;
    for (;;) {
        int64_t left = deadline - harness_now_ms();
        if (left <= 0)
            break;
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, (int)left) <= 0)
            continue;
        if (len + 1024 > cap) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL)
                break;
            buf = nb;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    if (out != NULL)
        *out = buf;
    else
        free(buf);
    return 0;
}

int harness_run(const char *prog, char *const argv[], char *const env[], int timeout_ms,
                const char *log_path, char **out)
{
    int fds[2];
    if (out != NULL)
        *out = NULL;
    if (pipe(fds) != 0)
        return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        child_env(env);
        dup2(fds[1], STDOUT_FILENO);
        close(fds[1]);
        child_log(log_path, false);
        execv(prog, argv);
        fprintf(stderr, "harness: exec %s: %s\n", prog, strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    int64_t deadline = harness_now_ms() + timeout_ms;
    read_all(fds[0], deadline, out);
    close(fds[0]);
    int status = 0;
    while (harness_now_ms() < deadline) {
        if (harness_exited(pid, &status))
            return status;
        harness_sleep_ms(10);
    }
    harness_kill9(pid);
    return -1;
}

void harness_dump_log(const char *path, size_t max)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    if (size > (long)max)
        fseek(f, size - (long)max, SEEK_SET);
    else
        fseek(f, 0, SEEK_SET);
    fprintf(stderr, "---- %s (last %zu bytes)\n", path, max);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        fwrite(buf, 1, n, stderr);
    fprintf(stderr, "---- end of %s\n", path);
    fclose(f);
}

/* ---- producing ---- */

struct harness_producer {
    ev_producer *p;
    int failed;
};

static void on_dr(void *arg, void *opaque, int err, const char *errstr, const char *topic,
                  int32_t partition, int64_t offset)
{
    (void)opaque;
    (void)partition;
    (void)offset;
    harness_producer *hp = arg;
    if (err != 0) {
        hp->failed++;
        fprintf(stderr, "harness: delivery to %s failed: %s\n", topic, errstr);
    }
}

harness_producer *harness_producer_new(const char *brokers)
{
    harness_producer *hp = calloc(1, sizeof(*hp));
    if (hp == NULL)
        return NULL;
    ev_error err = {0};
    if (ev_producer_new(&hp->p, brokers ? brokers : harness_brokers(), "harness", on_dr,
                        hp, &err) != 0) {
        fprintf(stderr, "harness: producer: %s\n", err.text);
        free(hp);
        return NULL;
    }
    return hp;
}

int harness_produce(harness_producer *p, const char *topic, const char *key,
                    const void *value, size_t len, const ev_header *headers,
                    size_t n_headers)
{
    ev_error err = {0};
    if (ev_producer_send(p->p, topic, -1, key, value, len, headers, n_headers, NULL,
                         &err) != 0) {
        fprintf(stderr, "harness: produce to %s: %s\n", topic, err.text);
        return -1;
    }
    return 0;
}

int harness_producer_flush(harness_producer *p, int timeout_ms)
{
    ev_error err = {0};
    int rc = ev_producer_flush(p->p, timeout_ms, &err);
    if (rc != 0)
        fprintf(stderr, "harness: flush: %s\n", err.text);
    return rc == 0 && p->failed == 0 ? 0 : -1;
}

rd_kafka_t *harness_producer_handle(harness_producer *p)
{
    return ev_producer_handle(p->p);
}

void harness_producer_free(harness_producer *p)
{
    if (p == NULL)
        return;
    ev_producer_free(p->p);
    free(p);
}

char *harness_envelope(const char *type, const char *id, const char *subject,
                       json_t *data)
{
    ev_envelope e;
    ev_error err = {0};
    if (ev_envelope_init(&e, type, "/choreo/test", subject, data, &err) != 0) {
        fprintf(stderr, "harness: envelope: %s\n", err.text);
        return NULL;
    }
    if (id != NULL) {
        snprintf(e.id, sizeof(e.id), "%s", id);
        snprintf(e.correlationid, sizeof(e.correlationid), "%s", id);
    }
    char *out = NULL;
    size_t len = 0;
    ev_limits big = {.max_record = 1 << 24, .max_depth = 32};
    if (ev_envelope_serialize(&e, &big, &out, &len, &err) != 0)
        fprintf(stderr, "harness: serialize: %s\n", err.text);
    ev_envelope_clear(&e);
    return out;
}

int harness_send_raw(const char *topic, const char *key, const void *value, size_t len,
                     const ev_header *headers, size_t n_headers)
{
    harness_producer *p = harness_producer_new(NULL);
    if (p == NULL)
        return -1;
    int rc = harness_produce(p, topic, key, value, len, headers, n_headers);
    if (rc == 0)
        rc = harness_producer_flush(p, SEND_TIMEOUT_MS);
    harness_producer_free(p);
    return rc;
}

int harness_send_event(const char *topic, const char *key, const char *type,
                       const char *id, json_t *data)
{
    static const ev_header ce = {"content-type", "application/cloudevents+json"};
    char *v = harness_envelope(type, id, key, data);
    if (v == NULL)
        return -1;
    int rc = harness_send_raw(topic, key, v, strlen(v), &ce, 1);
    free(v);
    return rc;
}

int harness_create_topic(const char *topic, int partitions, int timeout_ms)
{
    return harness_create_topics(&topic, 1, partitions, timeout_ms);
}

/* 0 when the CreateTopics result ev says every topic exists now (created or
 * already there); -1 with the reasons on stderr. */
static int topics_result(rd_kafka_event_t *ev, size_t n)
{
    const rd_kafka_CreateTopics_result_t *res =
        ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
    if (res == NULL) {
        fprintf(stderr, "harness: create topics: no result\n");
        return -1;
    }
    size_t cnt = 0;
    const rd_kafka_topic_result_t **t = rd_kafka_CreateTopics_result_topics(res, &cnt);
    if (cnt != n) {
        fprintf(stderr, "harness: create topics: %s\n",
                rd_kafka_err2str(rd_kafka_event_error(ev)));
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < cnt; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(t[i]);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR &&
            e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            fprintf(stderr, "harness: create topic %s: %s\n",
                    rd_kafka_topic_result_name(t[i]), rd_kafka_err2str(e));
            rc = -1;
        }
    }
    return rc;
}

int harness_create_topics(const char *const *topics, size_t n, int partitions,
                          int timeout_ms)
{
    rd_kafka_NewTopic_t **nt = calloc(n ? n : 1, sizeof(*nt));
    harness_producer *hp = nt != NULL ? harness_producer_new(NULL) : NULL;
    if (hp == NULL) {
        free(nt);
        return -1;
    }
    rd_kafka_t *rk = ev_producer_handle(hp->p);
    char errstr[256];
    int rc = -1;
    size_t made = 0;
    for (; made < n; made++) {
        nt[made] =
            rd_kafka_NewTopic_new(topics[made], partitions, 1, errstr, sizeof(errstr));
        if (nt[made] == NULL) {
            fprintf(stderr, "harness: create topic %s: %s\n", topics[made], errstr);
            goto cleanup;
        }
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o =
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(o, timeout_ms, errstr, sizeof(errstr));
    rd_kafka_CreateTopics(rk, nt, n, o, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 1000);
    rc = topics_result(ev, n);
    if (ev != NULL)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
cleanup:
    rd_kafka_NewTopic_destroy_array(nt, made);
    free(nt);
    harness_producer_free(hp);
    return rc;
}

/* ---- reading ---- */

void harness_records_free(harness_records *r)
{
    for (size_t i = 0; i < r->n; i++) {
        harness_record *x = &r->v[i];
        free(x->topic);
        free(x->key);
        free(x->value);
        json_decref(x->headers);
        json_decref(x->event);
    }
    free(r->v);
    memset(r, 0, sizeof(*r));
}

static json_t *message_headers(const rd_kafka_message_t *m)
{
    json_t *obj = json_object();
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return obj;
    const char *name;
    const void *val;
    size_t size;
    for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &size) ==
                       RD_KAFKA_RESP_ERR_NO_ERROR;
         i++) {
        json_t *s = json_stringn(val ? val : "", val ? size : 0);
        if (s != NULL)
            json_object_set_new(obj, name, s);
    }
    return obj;
}

static int records_add(harness_records *r, const rd_kafka_message_t *m)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        harness_record *nv = realloc(r->v, cap * sizeof(*nv));
        if (nv == NULL)
            return -1;
        r->v = nv;
        r->cap = cap;
    }
    harness_record *x = &r->v[r->n++];
    memset(x, 0, sizeof(*x));
    x->topic = strdup(rd_kafka_topic_name(m->rkt));
    x->partition = m->partition;
    x->offset = m->offset;
    x->key = m->key ? strndup(m->key, m->key_len) : NULL;
    if (m->payload != NULL) {
        x->value = malloc(m->len + 1);
        if (x->value != NULL) {
            memcpy(x->value, m->payload, m->len);
            x->value[m->len] = '\0';
        }
        x->len = m->len;
        x->event = json_loadb(m->payload, m->len, 0, NULL);
    }
    x->headers = message_headers(m);
    return 0;
}

rd_kafka_t *harness_consumer_new(void)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[256], group[64], u[EV_UUID_LEN];
    ev_uuid4(u);
    snprintf(group, sizeof(group), "harness-reader-%s", u);
    ev_error err = {0};
    if (rd_kafka_conf_set(conf, "bootstrap.servers", harness_brokers(), errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK ||
        ev_bus_conf_env(conf, &err) != 0) {
        fprintf(stderr, "harness: reader conf: %s%s\n", errstr, err.text);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "harness: reader: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

/* Partition count of topic once it exists; -1 at the deadline. */
static int wait_partitions(rd_kafka_t *rk, const char *topic, int64_t deadline)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    int cnt = -1;
    while (cnt <= 0 && harness_now_ms() < deadline) {
        const struct rd_kafka_metadata *md = NULL;
        if (rd_kafka_metadata(rk, 0, rkt, &md, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
                cnt = md->topics[0].partition_cnt;
            rd_kafka_metadata_destroy(md);
        }
        if (cnt <= 0)
            harness_sleep_ms(200);
    }
    rd_kafka_topic_destroy(rkt);
    return cnt;
}

int harness_assign_beginning(rd_kafka_t *rk, const char *const *topics, size_t n,
                             int partitions)
{
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new((int)n * partitions);
    for (size_t t = 0; t < n; t++)
        for (int i = 0; i < partitions; i++)
            rd_kafka_topic_partition_list_add(l, topics[t], i)->offset =
                RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        fprintf(stderr, "harness: assign: %s\n", rd_kafka_err2str(e));
    return e == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
}

int harness_read(const char *topic, harness_pred pred, void *arg, int timeout_ms,
                 harness_records *got)
{
    memset(got, 0, sizeof(*got));
    int64_t deadline = harness_now_ms() + timeout_ms;
    rd_kafka_t *rk = harness_consumer_new();
    if (rk == NULL)
        return -1;
    int rc = -1;
    int parts = wait_partitions(rk, topic, deadline);
    if (parts <= 0 || harness_assign_beginning(rk, &topic, 1, parts) != 0)
        goto cleanup;
    while (rc != 0 && harness_now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        for (int k = 0; m != NULL && k < 1000; k++) {
            if (!m->err)
                records_add(got, m);
            rd_kafka_message_destroy(m);
            m = rd_kafka_consumer_poll(rk, 0);
        }
        if (m != NULL)
            rd_kafka_message_destroy(m);
        if (pred != NULL && pred(got, arg))
            rc = 0;
    }
cleanup:
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

typedef struct type_count {
    const char *type;
    size_t n;
} type_count;

static bool has_type_count(const harness_records *got, void *arg)
{
    const type_count *tc = arg;
    return harness_count_type(got, tc->type) >= tc->n;
}

int harness_wait_events(const char *topic, const char *type, size_t n, int timeout_ms,
                        harness_records *got)
{
    type_count tc = {type, n};
    return harness_read(topic, has_type_count, &tc, timeout_ms, got);
}

size_t harness_count_type(const harness_records *r, const char *type)
{
    if (type == NULL)
        return r->n;
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++) {
        const char *t = harness_event_str(&r->v[i], "type");
        n += t != NULL && strcmp(t, type) == 0;
    }
    return n;
}

const char *harness_header(const harness_record *r, const char *name)
{
    return json_string_value(json_object_get(r->headers, name));
}

const char *harness_event_str(const harness_record *r, const char *attr)
{
    return json_is_object(r->event) ? json_string_value(json_object_get(r->event, attr))
                                    : NULL;
}

json_t *harness_event_data(const harness_record *r)
{
    return json_is_object(r->event) ? json_object_get(r->event, "data") : NULL;
}

const harness_record *harness_find(const harness_records *r, const char *attr,
                                   const char *value)
{
    for (size_t i = 0; i < r->n; i++) {
        const char *v = harness_event_str(&r->v[i], attr);
        if (v != NULL && strcmp(v, value) == 0)
            return &r->v[i];
    }
    return NULL;
}

/* ---- a broker of one's own ---- */

static int broker_cmd(const char *cmd, int port, const char *data_dir,
                      const char *log_path)
{
    char script[PATH_MAX], portbuf[16];
    harness_source_path(script, sizeof(script), "broker/choreo-broker");
    snprintf(portbuf, sizeof(portbuf), "%d", port);
    char *argv[] = {"/bin/sh",    script,           (char *)cmd, "--port", portbuf,
                    "--data-dir", (char *)data_dir, "--timeout", "90",     NULL};
    char *env[] = {"CHOREO_BROKERS", NULL};
    int st = harness_run("/bin/sh", argv, env, 150000, log_path, NULL);
    if (st != 0)
        fprintf(stderr, "harness: choreo-broker %s --port %d: status %d\n", cmd, port,
                st);
    return st == 0 ? 0 : -1;
}

int harness_broker_start(int port, const char *data_dir, const char *log_path)
{
    return broker_cmd("start", port, data_dir, log_path);
}

int harness_broker_stop(int port, const char *data_dir, const char *log_path)
{
    return broker_cmd("stop", port, data_dir, log_path);
}

static bool port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

int harness_free_port_pair(void)
{
    unsigned seed = (unsigned)getpid() ^ (unsigned)harness_now_ms();
    for (int i = 0; i < 200; i++) {
        int port = 20000 + (int)(rand_r(&seed) % 30000);
        if (port_free(port) && port_free(port + 1))
            return port;
    }
    return -1;
}

/* ---- a PostgreSQL of the tests ---- */

#define PG_NAME_MAX 63 /* NAMEDATALEN - 1 */

const char *harness_pg_uri(void)
{
    const char *u = getenv("CHOREO_TEST_PG");
    return u != NULL && u[0] != '\0' ? u : NULL;
}

static void pg_quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* A connection to harness_pg_uri() (10 s connect timeout unless the URI says
 * otherwise), notices silenced; NULL with the error on stderr. */
static PGconn *pg_connect(void)
{
    const char *uri = harness_pg_uri();
    if (uri == NULL) {
        fprintf(stderr, "harness: CHOREO_TEST_PG is unset: no PostgreSQL\n");
        return NULL;
    }
    const char *keys[] = {"connect_timeout", "dbname", NULL};
    const char *vals[] = {"10", uri, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "harness: postgresql (CHOREO_TEST_PG): %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, pg_quiet, NULL);
    return c;
}

/* sql's result on a new connection (closed again); NULL, with the error on
 * stderr, unless it succeeded. Owned by the caller (PQclear). */
static PGresult *pg_run(const char *sql)
{
    PGconn *c = pg_connect();
    if (c == NULL)
        return NULL;
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fprintf(stderr, "harness: postgresql: %s: %s", sql, PQerrorMessage(c));
        PQclear(r);
        r = NULL;
    }
    PQfinish(c);
    return r;
}

int harness_pg_exec(const char *sql)
{
    PGresult *r = pg_run(sql);
    if (r == NULL)
        return -1;
    PQclear(r);
    return 0;
}

int harness_pg_fresh_schema(char *out, size_t cap, const char *base)
{
    if (base == NULL || base[0] == '\0' || isdigit((unsigned char)base[0]))
        return -1;
    char u[EV_UUID_LEN], tail[32];
    ev_uuid4(u);
    int nt = snprintf(tail, sizeof(tail), "_%d_%.8s", (int)getpid(), u);
    size_t keep = strlen(base);
    if (keep > PG_NAME_MAX - (size_t)nt)
        keep = PG_NAME_MAX - (size_t)nt;
    if (keep + (size_t)nt >= cap)
        return -1;
    for (size_t i = 0; i < keep; i++) {
        char ch = (char)tolower((unsigned char)base[i]);
        out[i] = isalnum((unsigned char)ch) || ch == '_' ? ch : '_';
    }
    memcpy(out + keep, tail, (size_t)nt + 1);
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS \"%s\" CASCADE", out);
    return harness_pg_exec(sql);
}

int64_t harness_pg_query_int(const char *sql)
{
    int64_t v = INT64_MIN;
    PGresult *r = pg_run(sql);
    if (r == NULL)
        return INT64_MIN;
    if (PQntuples(r) < 1 || PQnfields(r) < 1 || PQgetisnull(r, 0, 0)) {
        fprintf(stderr, "harness: postgresql: %s: no value\n", sql);
        goto cleanup;
    }
    const char *text = PQgetvalue(r, 0, 0);
    char *end = NULL;
    errno = 0;
    long long n = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0') {
        fprintf(stderr, "harness: postgresql: %s: not an integer: %s\n", sql, text);
        goto cleanup;
    }
    v = (int64_t)n;
cleanup:
    PQclear(r);
    return v;
}
