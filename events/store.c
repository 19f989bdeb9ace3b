/* SPDX-License-Identifier: MIT */
/* The store's front: statements cached by SQL text, transactions, migrations,
 * and the runtime's tables (inbox, outbox, offsets, timers) over either backend. */
#include "store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_backend.h"

#define CACHE_INITIAL 32

int64_t ev_store_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- statement cache ---- */

static uint64_t hash_sql(const char *sql)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)sql; *p != '\0'; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}

static stmt_slot *cache_find(stmt_slot *slots, size_t cap, const char *sql, uint64_t h)
{
    size_t i = (size_t)h & (cap - 1);
    while (slots[i].sql != NULL) {
        if (slots[i].hash == h && strcmp(slots[i].sql, sql) == 0)
            return &slots[i];
        i = (i + 1) & (cap - 1);
    }
    return &slots[i]; /* the empty slot where sql belongs */
}

static int cache_grow(ev_store *s)
{
    size_t cap = s->cap == 0 ? CACHE_INITIAL : s->cap * 2;
    stmt_slot *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return EV_ENOMEM;
    for (size_t i = 0; i < s->cap; i++) {
        if (s->slots[i].sql != NULL)
            *cache_find(slots, cap, s->slots[i].sql, s->slots[i].hash) = s->slots[i];
    }
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
    return 0;
}

static void stmt_free(ev_stmt *st)
{
    if (st == NULL)
        return;
    st->store->be->finalize(st);
    free(st->sql);
    free(st);
}

static void cache_free(ev_store *s)
{
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[i].sql != NULL)
            stmt_free(s->slots[i].stmt);
    free(s->slots);
    s->slots = NULL;
    s->cap = s->len = 0;
}

static int cache_add(ev_store *s, const char *sql, uint64_t h, ev_stmt **out,
                     ev_error *err)
{
    ev_stmt *st = calloc(1, sizeof(*st));
    if (st == NULL || (st->sql = strdup(sql)) == NULL ||
        ((s->len + 1) * 2 > s->cap && cache_grow(s) != 0)) {
        if (st != NULL)
            free(st->sql);
        free(st);
        return ev_error_set(err, EV_ENOMEM, "store: prepare: out of memory");
    }
    st->store = s;
    st->hash = h;
    int ret = s->be->prepare(s, st, err);
    if (ret != 0) {
        free(st->sql);
        free(st);
        return ret;
    }
    *cache_find(s->slots, s->cap, sql, h) = (stmt_slot){st->sql, h, st};
    s->len++;
    *out = st;
    return 0;
}

/* The cached statement for sql into *out, reset and unbound; 0 or EV_E*. */
static int lookup(ev_store *s, const char *sql, ev_stmt **out, ev_error *err)
{
    *out = NULL;
    if (s == NULL || sql == NULL)
        return ev_error_set(err, EV_EINVAL, "store: stmt: NULL argument");
    uint64_t h = hash_sql(sql);
    if (s->cap > 0) {
        stmt_slot *slot = cache_find(s->slots, s->cap, sql, h);
        if (slot->sql != NULL) {
            s->be->reset(slot->stmt);
            *out = slot->stmt;
            return 0;
        }
    }
    return cache_add(s, sql, h, out, err);
}

ev_stmt *ev_store_stmt(ev_store *s, const char *sql, ev_error *err)
{
    ev_stmt *st = NULL;
    lookup(s, sql, &st, err);
    return st;
}

size_t ev_store_stmt_count(const ev_store *s)
{
    return s != NULL ? s->len : 0;
}

/* ---- statements ---- */

int ev_stmt_bind_text(ev_stmt *st, int i, const char *v)
{
    if (v == NULL)
        return st->store->be->bind_null(st, i);
    return st->store->be->bind_text(st, i, v, strlen(v));
}

int ev_stmt_bind_int(ev_stmt *st, int i, int64_t v)
{
    return st->store->be->bind_int(st, i, v);
}

int ev_stmt_bind_blob(ev_stmt *st, int i, const void *v, size_t len)
{
    return st->store->be->bind_blob(st, i, v, len);
}

int ev_stmt_bind_null(ev_stmt *st, int i)
{
    return st->store->be->bind_null(st, i);
}

int ev_stmt_step(ev_stmt *st, ev_error *err)
{
    if (st == NULL)
        return ev_error_set(err, EV_EINVAL, "store: step: NULL statement");
    return st->store->be->step(st, err);
}

bool ev_stmt_is_null(ev_stmt *st, int col)
{
    return st->store->be->is_null(st, col);
}

int64_t ev_stmt_int(ev_stmt *st, int col)
{
    return st->store->be->col_int(st, col);
}

const char *ev_stmt_text(ev_stmt *st, int col)
{
    return st->store->be->col_text(st, col);
}

void ev_stmt_text_copy(ev_stmt *st, int col, char *buf, size_t cap)
{
    const char *v = ev_stmt_text(st, col);
    if (cap > 0)
        snprintf(buf, cap, "%s", v ? v : "");
}

const void *ev_stmt_blob(ev_stmt *st, int col, size_t *len)
{
    return st->store->be->col_blob(st, col, len);
}

int64_t ev_stmt_changes(ev_stmt *st)
{
    if (st == NULL)
        return 0;
    /* a pipelined execution not yet answered: wait for it (if it failed: 0
     * rows, and the transaction fails) */
    if (st->pending > 0 && st->store->be->pipe_flush != NULL)
        st->store->be->pipe_flush(st->store, NULL);
    return st->changes;
}

void ev_stmt_reset(ev_stmt *st)
{
    if (st != NULL)
        st->store->be->reset(st);
}

static int bind_fail(ev_stmt *st, int rc, int i, ev_error *err)
{
    ev_stmt_reset(st);
    return ev_error_set(err, rc == EV_ENOMEM ? EV_ENOMEM : EV_ESTORE,
                        "store: bind parameter %d: %s", i, ev_error_name(rc));
}

ev_stmt *ev_store_bind(ev_store *s, ev_error *err, const char *sql, const char *fmt, ...)
{
    ev_stmt *st = ev_store_stmt(s, sql, err);
    if (st == NULL)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    int rc = 0, i = 0;
    for (; fmt[i] != '\0' && rc == 0; i++) {
        if (fmt[i] == 's')
            rc = ev_stmt_bind_text(st, i + 1, va_arg(ap, const char *));
        else
            rc = ev_stmt_bind_int(st, i + 1, va_arg(ap, int64_t));
    }
    va_end(ap);
    if (rc != 0) {
        bind_fail(st, rc, i, err);
        return NULL;
    }
    return st;
}

int ev_store_exec(ev_stmt *st, ev_error *err)
{
    if (st == NULL)
        return err != NULL && err->code != 0 ? err->code : EV_ESTORE;
    int rc;
    while ((rc = ev_stmt_step(st, err)) == 1)
        ;
    return rc;
}

int ev_store_query_int(ev_stmt *st, int64_t dflt, int64_t *v, bool *found, ev_error *err)
{
    if (found != NULL)
        *found = false;
    *v = dflt;
    if (st == NULL)
        return err != NULL && err->code != 0 ? err->code : EV_ESTORE;
    int rc = ev_stmt_step(st, err);
    if (rc != 1)
        return rc;
    if (!ev_stmt_is_null(st, 0)) {
        *v = ev_stmt_int(st, 0);
        if (found != NULL)
            *found = true;
    }
    ev_stmt_reset(st);
    return 0;
}

int ev_store_query_text(ev_stmt *st, char *buf, size_t cap, bool *found, ev_error *err)
{
    if (found != NULL)
        *found = false;
    if (cap > 0)
        buf[0] = '\0';
    if (st == NULL)
        return err != NULL && err->code != 0 ? err->code : EV_ESTORE;
    int rc = ev_stmt_step(st, err);
    if (rc != 1)
        return rc;
    const char *v = ev_stmt_text(st, 0);
    if (v != NULL && found != NULL)
        *found = true;
    int n = snprintf(buf, cap, "%s", v != NULL ? v : "");
    ev_stmt_reset(st);
    if (n < 0 || (size_t)n >= cap)
        return ev_error_set(err, EV_ESTORE, "store: text column longer than %zu bytes",
                            cap ? cap - 1 : 0);
    return 0;
}

/* ---- transactions ---- */

static int tx(ev_store *s, int verb, const char *what, ev_error *err)
{
    if (s == NULL)
        return ev_error_set(err, EV_EINVAL, "store: %s: NULL store", what);
    const char *sql = s->be->tx_sql[verb];
    if (!s->be->tx_cached)
        return s->be->script(s, sql, what, err);
    ev_stmt *st = NULL;
    int rc = lookup(s, sql, &st, err);
    return rc != 0 ? rc : ev_store_exec(st, err);
}

static int begin(ev_store *s, bool pipelined, ev_error *err)
{
    if (s == NULL)
        return ev_error_set(err, EV_EINVAL, "store: begin: NULL store");
    s->conflict = false;
    s->tx_seq++;
    s->tx_undone = false;
    if (s->broken && s->be->reconnect != NULL) {
        cache_free(s); /* prepared on the lost connection */
        int rc = s->be->reconnect(s, err);
        if (rc != 0)
            return rc;
    }
    if (pipelined && s->be->pipe_begin != NULL)
        return s->be->pipe_begin(s, s->be->tx_sql[EV_TX_BEGIN], err);
    if (s->serial && !s->serial_held && s->be->serial_lock != NULL) {
        int rc = s->be->serial_lock(s, true, err);
        if (rc != 0)
            return rc;
    }
    return tx(s, EV_TX_BEGIN, "begin", err);
}

/* After a commit or rollback: the other instances may go on. */
static void serial_release(ev_store *s)
{
    if (s->serial_held && s->be->serial_lock != NULL)
        s->be->serial_lock(s, false, NULL);
}

void ev_store_set_serial(ev_store *s, bool on)
{
    if (s != NULL)
        s->serial = on;
}

int ev_store_begin(ev_store *s, ev_error *err)
{
    return begin(s, false, err);
}

int ev_store_begin_pipelined(ev_store *s, ev_error *err)
{
    return begin(s, true, err);
}

bool ev_store_pipelined(ev_store *s)
{
    return s != NULL && s->be->pipe_active != NULL && s->be->pipe_active(s);
}

int ev_store_flush(ev_store *s, ev_error *err)
{
    if (!ev_store_pipelined(s))
        return 0;
    int rc = s->be->pipe_settle != NULL ? s->be->pipe_settle(s, err) : 0;
    return rc != 0 ? rc : s->be->pipe_flush(s, err);
}

bool ev_store_deferred_failed(ev_store *s)
{
    return ev_store_pipelined(s) && s->be->pipe_failed(s);
}

int ev_store_commit(ev_store *s, ev_error *err)
{
    int rc = ev_store_pipelined(s)
                 ? s->be->pipe_commit(s, s->be->tx_sql[EV_TX_COMMIT], err)
                 : tx(s, EV_TX_COMMIT, "commit", err);
    if (s != NULL && !s->be->in_tx(s))
        serial_release(s);
    return rc;
}

int ev_store_rollback(ev_store *s, ev_error *err)
{
    if (ev_store_pipelined(s))
        s->be->pipe_abort(s);
    int rc = 0;
    if (s != NULL && s->be->in_tx(s))
        rc = tx(s, EV_TX_ROLLBACK, "rollback", err);
    if (s != NULL && !s->be->in_tx(s))
        serial_release(s);
    return rc;
}

bool ev_store_in_tx(ev_store *s)
{
    return s != NULL && s->be->in_tx(s);
}

bool ev_store_conflict(const ev_store *s)
{
    return s != NULL && s->conflict;
}

int ev_store_savepoint(ev_store *s, ev_error *err)
{
    return tx(s, EV_TX_SAVEPOINT, "savepoint", err);
}

uint64_t ev_store_tx_seq(const ev_store *s)
{
    return s != NULL ? s->tx_seq : 0;
}

bool ev_store_tx_undone(const ev_store *s)
{
    return s != NULL && s->tx_undone;
}

int ev_store_release(ev_store *s, ev_error *err)
{
    return tx(s, EV_TX_RELEASE, "release", err);
}

int ev_store_rollback_to(ev_store *s, ev_error *err)
{
    if (s != NULL)
        s->tx_undone = true;
    int ret = tx(s, EV_TX_ROLLBACK_TO, "rollback to", err);
    if (ret == 0)
        ret = tx(s, EV_TX_RELEASE, "release", err);
    return ret;
}

/* ---- open, migrations ---- */

static int check_migrations(const ev_store_opts *opts, ev_error *err)
{
    if (opts->n_migrations > 0 && opts->migrations == NULL)
        return ev_error_set(err, EV_EINVAL, "store: migrations is NULL");
    int last = 0;
    for (size_t i = 0; i < opts->n_migrations; i++) {
        const ev_migration *m = &opts->migrations[i];
        if (m->version <= last || m->sql == NULL)
            return ev_error_set(err, EV_EINVAL,
                                "store: migration %zu: version %d must be > %d, sql set",
                                i, m->version, last);
        last = m->version;
    }
    return 0;
}

/* Runs fn(s, arg) in a transaction of its own. */
static int in_tx(ev_store *s, int (*fn)(ev_store *, const void *, ev_error *),
                 const void *arg, ev_error *err)
{
    int ret = ev_store_begin(s, err);
    if (ret == 0)
        ret = fn(s, arg, err);
    if (ret == 0)
        return ev_store_commit(s, err);
    ev_store_rollback(s, NULL);
    return ret;
}

static int runtime_tables(ev_store *s, const void *arg, ev_error *err)
{
    (void)arg;
    return s->be->runtime_tables(s, err);
}

/* Inside its transaction, so an instance that opens the same store at the
 * same time cannot apply it twice. */
static int apply_one(ev_store *s, const void *arg, ev_error *err)
{
    const ev_migration *m = arg;
    char what[48];
    snprintf(what, sizeof(what), "migration %d", m->version);
    int64_t n = 0;
    int ret = ev_store_query_int(
        ev_store_bind(s, err, "SELECT count(*) FROM ev_migrations WHERE version = ?1",
                      "i", (int64_t)m->version),
        0, &n, NULL, err);
    if (ret != 0 || n > 0)
        return ret;
    const char *sql = m->pg_sql != NULL && s->be == &ev_store_pg ? m->pg_sql : m->sql;
    ret = s->be->script(s, sql, what, err);
    if (ret == 0)
        ret = ev_store_exec(ev_store_bind(s, err,
                                          "INSERT INTO ev_migrations(version, applied_at)"
                                          " VALUES(?1, ?2)",
                                          "ii", (int64_t)m->version, ev_store_wall_ms()),
                            err);
    return ret;
}

static int apply_migrations(ev_store *s, const ev_store_opts *opts, ev_error *err)
{
    int64_t done = 0;
    int ret = ev_store_query_int(
        ev_store_stmt(s, "SELECT max(version) FROM ev_migrations", err), 0, &done, NULL,
        err);
    if (ret != 0)
        return ret;
    int last =
        opts->n_migrations > 0 ? opts->migrations[opts->n_migrations - 1].version : 0;
    if (done > last)
        return ev_error_set(
            err, EV_ESTORE,
            "store: database at migration %lld, newer than this service's %d",
            (long long)done, last);
    for (size_t i = 0; i < opts->n_migrations && ret == 0; i++) {
        if (opts->migrations[i].version > done)
            ret = in_tx(s, apply_one, &opts->migrations[i], err);
    }
    return ret;
}

/* Setup attempts: an instance starting while others of its service run can
 * lose a deadlock or a lock timeout to their batches (the runtime tables'
 * CREATE INDEX IF NOT EXISTS locks its table): then it runs again. */
#define SETUP_ATTEMPTS 8

static int setup(ev_store *s, const ev_store_opts *opts, ev_error *err)
{
    int ret = s->be->lock(s, true, err);
    if (ret != 0)
        return ret;
    for (int attempt = 1;; attempt++) {
        ret = in_tx(s, runtime_tables, NULL, err);
        if (ret == 0)
            ret = apply_migrations(s, opts, err);
        if (ret != EV_ERETRY || s->broken || attempt == SETUP_ATTEMPTS)
            break;
        s->conflict = false;
        long ms = 50L << (attempt < 6 ? attempt : 6); /* 100 ms .. 3.2 s */
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    ev_error e2 = {0};
    int unlock = s->be->lock(s, false, &e2);
    if (ret == 0 && unlock != 0)
        *err = e2, ret = unlock;
    return ret;
}

static bool is_pg(const char *url)
{
    return url != NULL && (strncmp(url, "postgresql://", 13) == 0 ||
                           strncmp(url, "postgres://", 11) == 0);
}

int ev_store_open(ev_store **out, const ev_store_opts *opts, ev_error *err)
{
    if (out == NULL || opts == NULL)
        return ev_error_set(err, EV_EINVAL, "store: open: NULL argument");
    *out = NULL;
    const char *url = opts->url;
    if (url != NULL && url[0] != '\0' && strcmp(url, "sqlite") != 0 && !is_pg(url))
        return ev_error_set(err, EV_EINVAL,
                            "store: \"sqlite\" or a postgresql:// URI expected");
    int ret = check_migrations(opts, err);
    if (ret != 0)
        return ret;
    ev_store *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return ev_error_set(err, EV_ENOMEM, "store: out of memory");
    s->be = is_pg(url) ? &ev_store_pg : &ev_store_sqlite;
    s->readonly = opts->readonly;
    /* A SQLite file has one writer, whatever its process: every row is its own. */
    snprintf(s->owner, sizeof(s->owner), "%s",
             opts->owner && s->be == &ev_store_pg ? opts->owner : "");
    ret = s->be->open(s, opts, err);
    if (ret == 0 && !s->readonly)
        ret = setup(s, opts, err);
    if (ret != 0) {
        ev_store_close(s);
        return ret;
    }
    *out = s;
    return 0;
}

void ev_store_close(ev_store *s)
{
    if (s == NULL)
        return;
    cache_free(s);
    if (s->conn != NULL)
        s->be->close(s);
    free(s);
}

ev_store_kind ev_store_backend(const ev_store *s)
{
    return s != NULL && s->be == &ev_store_pg ? EV_STORE_POSTGRES : EV_STORE_SQLITE;
}
