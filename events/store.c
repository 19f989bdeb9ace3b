/* SPDX-License-Identifier: MIT */
/* One SQLite database per service: WAL, migrations, and the runtime's tables
 * inbox (dedup), outbox (events to publish), offsets, timers. */
#include "store.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

/* Version of the runtime tables below, kept in PRAGMA user_version. */
#define RUNTIME_VERSION 1
#define BUSY_TIMEOUT_DEFAULT 5000
#define CACHE_INITIAL 32

static const char runtime_schema[] =
    "CREATE TABLE IF NOT EXISTS inbox("
    " event_id TEXT PRIMARY KEY NOT NULL, seen_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS inbox_seen_at ON inbox(seen_at);"
    "CREATE TABLE IF NOT EXISTS outbox("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, key TEXT,"
    " value BLOB NOT NULL, headers TEXT, created_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS offsets("
    " topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,"
    " PRIMARY KEY(topic, partition)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS timers("
    " key TEXT NOT NULL, kind TEXT NOT NULL, due_at INTEGER NOT NULL,"
    " correlationid TEXT NOT NULL DEFAULT '', causationid TEXT NOT NULL DEFAULT '',"
    " PRIMARY KEY(key, kind)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS timers_due_at ON timers(due_at);"
    "CREATE TABLE IF NOT EXISTS ev_migrations("
    " version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);"
    "PRAGMA user_version = 1;";

typedef struct stmt_slot {
    char *sql; /* owned copy; NULL = empty slot */
    uint64_t hash;
    sqlite3_stmt *stmt;
} stmt_slot;

struct ev_store {
    sqlite3 *db;
    bool readonly;
    stmt_slot *slots;
    size_t cap; /* power of two */
    size_t len;
};

/* ---- errors ---------------------------------------------------------------- */

static const struct {
    int rc;
    const char *name;
} rc_names[] = {
    {SQLITE_FULL, "disk_full"},     {SQLITE_IOERR, "io_error"},
    {SQLITE_BUSY, "busy"},          {SQLITE_LOCKED, "locked"},
    {SQLITE_READONLY, "readonly"},  {SQLITE_CONSTRAINT, "constraint"},
    {SQLITE_CORRUPT, "corrupt"},    {SQLITE_NOTADB, "not_a_database"},
    {SQLITE_CANTOPEN, "cant_open"}, {SQLITE_PERM, "permission"},
    {SQLITE_TOOBIG, "too_big"},     {SQLITE_NOMEM, "no_memory"},
    {SQLITE_ERROR, "sql_error"},    {SQLITE_MISUSE, "misuse"},
    {SQLITE_RANGE, "range"},        {SQLITE_SCHEMA, "schema_changed"},
};

static const char *rc_name(int rc)
{
    for (size_t i = 0; i < sizeof(rc_names) / sizeof(rc_names[0]); i++) {
        if (rc_names[i].rc == (rc & 0xff))
            return rc_names[i].name;
    }
    return "sqlite_error";
}

static int rc_code(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
        return EV_ERETRY;
    case SQLITE_NOMEM:
        return EV_ENOMEM;
    default:
        return EV_ESTORE;
    }
}

/* Fills err from a failed sqlite call rc on db (db may be NULL). */
static int db_fail(sqlite3 *db, int rc, const char *what, ev_error *err)
{
    const char *msg = db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    return ev_error_set(err, rc_code(rc), "store: %s: %s (%s)", what, msg, rc_name(rc));
}

static int fail(ev_store *s, int rc, const char *what, ev_error *err)
{
    return db_fail(s->db, rc, what, err);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- statement cache ----------------------------------------------------------- */

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

static void cache_free(ev_store *s)
{
    for (size_t i = 0; i < s->cap; i++) {
        if (s->slots[i].sql != NULL) {
            sqlite3_finalize(s->slots[i].stmt);
            free(s->slots[i].sql);
        }
    }
    free(s->slots);
    s->slots = NULL;
    s->cap = s->len = 0;
}

static bool only_space(const char *p)
{
    for (; *p != '\0'; p++) {
        if (strchr(" \t\r\n;", *p) == NULL)
            return false;
    }
    return true;
}

static int cache_add(ev_store *s, const char *sql, uint64_t h, sqlite3_stmt **out,
                     ev_error *err)
{
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    int ret = 0;
    int rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, &tail);
    if (rc != SQLITE_OK)
        return fail(s, rc, "prepare", err);
    if (st == NULL || (tail != NULL && !only_space(tail))) {
        ret = ev_error_set(err, EV_EINVAL, "store: prepare: need exactly one statement");
        goto fail_stmt;
    }
    if ((s->len + 1) * 2 > s->cap && cache_grow(s) != 0)
        goto fail_nomem;
    char *copy = strdup(sql);
    if (copy == NULL)
        goto fail_nomem;
    *cache_find(s->slots, s->cap, sql, h) = (stmt_slot){copy, h, st};
    s->len++;
    *out = st;
    return 0;
fail_nomem:
    ret = ev_error_set(err, EV_ENOMEM, "store: prepare: out of memory");
fail_stmt:
    sqlite3_finalize(st);
    return ret;
}

/* The cached statement for sql into *out, reset and unbound; 0 or EV_E*. */
static int lookup(ev_store *s, const char *sql, sqlite3_stmt **out, ev_error *err)
{
    *out = NULL;
    if (s == NULL || sql == NULL)
        return ev_error_set(err, EV_EINVAL, "store: stmt: NULL argument");
    uint64_t h = hash_sql(sql);
    if (s->cap > 0) {
        stmt_slot *slot = cache_find(s->slots, s->cap, sql, h);
        if (slot->sql != NULL) {
            sqlite3_reset(slot->stmt); /* its rc repeats the last step's error */
            sqlite3_clear_bindings(slot->stmt);
            *out = slot->stmt;
            return 0;
        }
    }
    return cache_add(s, sql, h, out, err);
}

sqlite3_stmt *ev_store_stmt(ev_store *s, const char *sql, ev_error *err)
{
    sqlite3_stmt *st = NULL;
    lookup(s, sql, &st, err);
    return st;
}

size_t ev_store_stmt_count(const ev_store *s)
{
    return s != NULL ? s->len : 0;
}

/* Resets st and drops its bindings (which may point at caller memory). */
static void finish(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Steps st once expecting no row or one row left unread; resets it. */
static int step_done(ev_store *s, sqlite3_stmt *st, const char *what, ev_error *err)
{
    int rc = sqlite3_step(st);
    int ret = 0;
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        ret = fail(s, rc, what, err);
    finish(st);
    return ret;
}

static int exec_cached(ev_store *s, const char *sql, const char *what, ev_error *err)
{
    sqlite3_stmt *st = NULL;
    int got = lookup(s, sql, &st, err);
    if (got != 0)
        return got;
    return step_done(s, st, what, err);
}

static int bind_fail(ev_store *s, sqlite3_stmt *st, int rc, const char *what,
                     ev_error *err)
{
    int ret = fail(s, rc, what, err);
    finish(st);
    return ret;
}

/* One int64 from a single-row query already bound; dflt when NULL or no row. */
static int query_int64(ev_store *s, sqlite3_stmt *st, int64_t dflt, int64_t *out,
                       const char *what, ev_error *err)
{
    int rc = sqlite3_step(st);
    int ret = 0;
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        *out = sqlite3_column_int64(st, 0);
    else if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        *out = dflt;
    else
        ret = fail(s, rc, what, err);
    finish(st);
    return ret;
}

static int count_rows(ev_store *s, const char *sql, int64_t *n, const char *what,
                      ev_error *err)
{
    if (s == NULL || n == NULL)
        return ev_error_set(err, EV_EINVAL, "store: %s: NULL argument", what);
    sqlite3_stmt *st = NULL;
    int got = lookup(s, sql, &st, err);
    if (got != 0)
        return got;
    return query_int64(s, st, 0, n, what, err);
}

/* ---- open, schema, migrations ------------------------------------------------------ */

/* mkdir -p of path's parent directory. */
static int make_parent(const char *path, ev_error *err)
{
    char dir[4096];
    int n = snprintf(dir, sizeof(dir), "%s", path);
    if (n < 0 || (size_t)n >= sizeof(dir))
        return ev_error_set(err, EV_EINVAL, "store: path too long");
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        return 0;
    *slash = '\0';
    for (char *p = dir + 1; p <= slash; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            return ev_error_set(err, EV_EIO, "store: mkdir %s: %s", dir, strerror(errno));
        *p = c;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return ev_error_set(err, EV_EIO, "store: %s is not a directory", dir);
    return 0;
}

static int exec_sql(ev_store *s, const char *sql, const char *what, ev_error *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
    if (rc == SQLITE_OK)
        return 0;
    int ret = ev_error_set(err, rc_code(rc), "store: %s: %s (%s)", what,
                           msg != NULL ? msg : sqlite3_errstr(rc), rc_name(rc));
    sqlite3_free(msg);
    return ret;
}

static int pragma_text(ev_store *s, const char *sql, char *out, size_t cap, ev_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    int ret = 0;
    if (rc == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(st, 0);
        snprintf(out, cap, "%s", v != NULL ? (const char *)v : "");
    } else {
        ret = fail(s, rc, sql, err);
    }
    sqlite3_finalize(st);
    return ret;
}

/* The PRAGMAs for opts->synchronous, or NULL when it is neither FULL nor NORMAL. */
static const char *sync_pragmas(const ev_store_opts *opts)
{
    const char *sync = opts->synchronous;
    if (sync == NULL || strcasecmp(sync, "FULL") == 0)
        return "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;";
    if (strcasecmp(sync, "NORMAL") == 0)
        return "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;";
    return NULL;
}

static int set_pragmas(ev_store *s, const ev_store_opts *opts, ev_error *err)
{
    int ms = opts->busy_timeout_ms == 0 ? BUSY_TIMEOUT_DEFAULT : opts->busy_timeout_ms;
    sqlite3_busy_timeout(s->db, ms < 0 ? 0 : ms);
    if (s->readonly)
        return exec_sql(s, "PRAGMA foreign_keys=ON; PRAGMA query_only=ON;", "pragma",
                        err);
    char mode[16];
    int ret = pragma_text(s, "PRAGMA journal_mode=WAL", mode, sizeof(mode), err);
    if (ret != 0)
        return ret;
    if (strcasecmp(mode, "wal") != 0)
        return ev_error_set(err, EV_ESTORE, "store: journal_mode is %s, not wal", mode);
    return exec_sql(s, sync_pragmas(opts), "pragma", err);
}

static int user_version(ev_store *s, int64_t *v, ev_error *err)
{
    sqlite3_stmt *st = NULL;
    int got = lookup(s, "PRAGMA user_version", &st, err);
    if (got != 0)
        return got;
    return query_int64(s, st, 0, v, "user_version", err);
}

static int create_runtime(ev_store *s, ev_error *err)
{
    int64_t v = 0;
    int ret = user_version(s, &v, err);
    if (ret != 0 || v == RUNTIME_VERSION)
        return ret;
    if (v > RUNTIME_VERSION)
        return ev_error_set(err, EV_ESTORE,
                            "store: runtime tables at version %lld, newer than %d",
                            (long long)v, RUNTIME_VERSION);
    ret = ev_store_begin(s, err);
    if (ret != 0)
        return ret;
    ret = exec_sql(s, runtime_schema, "runtime tables", err);
    if (ret == 0)
        ret = ev_store_commit(s, err);
    if (ret != 0)
        ev_store_rollback(s, NULL);
    return ret;
}

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

/* Whether version is recorded; inside the write transaction, so another
 * instance opening the same database at the same time cannot apply it twice. */
static int migration_done(ev_store *s, int version, bool *done, ev_error *err)
{
    sqlite3_stmt *st = NULL;
    int ret = lookup(s, "SELECT count(*) FROM ev_migrations WHERE version = ?", &st, err);
    if (ret != 0)
        return ret;
    sqlite3_bind_int(st, 1, version);
    int64_t n = 0;
    ret = query_int64(s, st, 0, &n, "migrations", err);
    *done = n > 0;
    return ret;
}

static int apply_one(ev_store *s, const ev_migration *m, ev_error *err)
{
    char what[48];
    snprintf(what, sizeof(what), "migration %d", m->version);
    int ret = ev_store_begin(s, err);
    if (ret != 0)
        return ret;
    bool done = false;
    ret = migration_done(s, m->version, &done, err);
    if (ret == 0 && !done)
        ret = exec_sql(s, m->sql, what, err);
    if (ret == 0 && !done) {
        sqlite3_stmt *st = NULL;
        ret = lookup(s, "INSERT INTO ev_migrations(version, applied_at) VALUES(?, ?)",
                     &st, err);
        if (ret == 0) {
            sqlite3_bind_int(st, 1, m->version);
            sqlite3_bind_int64(st, 2, wall_ms());
            ret = step_done(s, st, what, err);
        }
    }
    if (ret == 0)
        ret = ev_store_commit(s, err);
    if (ret != 0)
        ev_store_rollback(s, NULL);
    return ret;
}

static int apply_migrations(ev_store *s, const ev_store_opts *opts, ev_error *err)
{
    int ret = 0;
    sqlite3_stmt *st = NULL;
    int got = lookup(s, "SELECT max(version) FROM ev_migrations", &st, err);
    if (got != 0)
        return got;
    int64_t done = 0;
    ret = query_int64(s, st, 0, &done, "migrations", err);
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
            ret = apply_one(s, &opts->migrations[i], err);
    }
    return ret;
}

static int open_db(ev_store *s, const ev_store_opts *opts, ev_error *err)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if (opts->readonly) {
        struct stat sb;
        if (stat(opts->path, &sb) != 0)
            return ev_error_set(err, errno == ENOENT ? EV_ENOTFOUND : EV_EIO,
                                "store: no database at %s: %s", opts->path,
                                strerror(errno));
        flags = SQLITE_OPEN_READONLY;
    } else {
        int ret = make_parent(opts->path, err);
        if (ret != 0)
            return ret;
    }
    int rc = sqlite3_open_v2(opts->path, &s->db, flags, NULL);
    if (rc != SQLITE_OK) {
        char what[256];
        snprintf(what, sizeof(what), "open %s", opts->path);
        return db_fail(s->db, rc, what, err);
    }
    sqlite3_extended_result_codes(s->db, 1);
    return 0;
}

int ev_store_open(ev_store **out, const ev_store_opts *opts, ev_error *err)
{
    if (out == NULL || opts == NULL || opts->path == NULL || opts->path[0] == '\0')
        return ev_error_set(err, EV_EINVAL, "store: open: path is required");
    *out = NULL;
    if (sync_pragmas(opts) == NULL)
        return ev_error_set(err, EV_EINVAL, "store: synchronous must be FULL or NORMAL");
    int ret = check_migrations(opts, err);
    if (ret != 0)
        return ret;
    ev_store *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return ev_error_set(err, EV_ENOMEM, "store: out of memory");
    s->readonly = opts->readonly;
    ret = open_db(s, opts, err);
    if (ret == 0)
        ret = set_pragmas(s, opts, err);
    if (ret == 0 && !s->readonly)
        ret = create_runtime(s, err);
    if (ret == 0 && !s->readonly)
        ret = apply_migrations(s, opts, err);
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
    sqlite3_close_v2(s->db);
    free(s);
}

sqlite3 *ev_store_db(ev_store *s)
{
    return s != NULL ? s->db : NULL;
}

/* ---- transactions -------------------------------------------------------------- */

static int tx(ev_store *s, const char *sql, const char *what, ev_error *err)
{
    if (s == NULL)
        return ev_error_set(err, EV_EINVAL, "store: %s: NULL store", what);
    return exec_cached(s, sql, what, err);
}

int ev_store_begin(ev_store *s, ev_error *err)
{
    return tx(s, "BEGIN IMMEDIATE", "begin", err);
}

int ev_store_commit(ev_store *s, ev_error *err)
{
    return tx(s, "COMMIT", "commit", err);
}

int ev_store_rollback(ev_store *s, ev_error *err)
{
    if (s != NULL && sqlite3_get_autocommit(s->db))
        return 0;
    return tx(s, "ROLLBACK", "rollback", err);
}

bool ev_store_in_tx(ev_store *s)
{
    return s != NULL && !sqlite3_get_autocommit(s->db);
}

int ev_store_savepoint(ev_store *s, ev_error *err)
{
    return tx(s, "SAVEPOINT ev", "savepoint", err);
}

int ev_store_release(ev_store *s, ev_error *err)
{
    return tx(s, "RELEASE ev", "release", err);
}

int ev_store_rollback_to(ev_store *s, ev_error *err)
{
    int ret = tx(s, "ROLLBACK TO ev", "rollback to", err);
    if (ret == 0)
        ret = tx(s, "RELEASE ev", "release", err);
    return ret;
}

/* ---- inbox ----------------------------------------------------------------------- */

int ev_store_inbox_seen(ev_store *s, const char *event_id, bool *seen, ev_error *err)
{
    if (s == NULL || event_id == NULL || seen == NULL)
        return ev_error_set(err, EV_EINVAL, "store: inbox seen: NULL argument");
    sqlite3_stmt *st = NULL;
    int got = lookup(s, "SELECT 1 FROM inbox WHERE event_id = ?", &st, err);
    if (got != 0)
        return got;
    int rc = sqlite3_bind_text(st, 1, event_id, -1, SQLITE_STATIC);
    if (rc != SQLITE_OK)
        return bind_fail(s, st, rc, "inbox seen", err);
    rc = sqlite3_step(st);
    int ret = 0;
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        *seen = rc == SQLITE_ROW;
    else
        ret = fail(s, rc, "inbox seen", err);
    finish(st);
    return ret;
}

int ev_store_inbox_add(ev_store *s, const char *event_id, int64_t now_ms, ev_error *err)
{
    if (s == NULL || event_id == NULL || event_id[0] == '\0')
        return ev_error_set(err, EV_EINVAL, "store: inbox add: empty event id");
    sqlite3_stmt *st = NULL;
    int got = lookup(s, "INSERT OR IGNORE INTO inbox(event_id, seen_at) VALUES(?, ?)",
                     &st, err);
    if (got != 0)
        return got;
    int rc = sqlite3_bind_text(st, 1, event_id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, now_ms);
    if (rc != SQLITE_OK)
        return bind_fail(s, st, rc, "inbox add", err);
    return step_done(s, st, "inbox add", err);
}

int ev_store_inbox_prune_n(ev_store *s, int64_t older_than_ms, int64_t *removed,
                           ev_error *err)
{
    if (s == NULL)
        return ev_error_set(err, EV_EINVAL, "store: inbox prune: NULL store");
    sqlite3_stmt *st = NULL;
    int got = lookup(s, "DELETE FROM inbox WHERE seen_at < ?", &st, err);
    if (got != 0)
        return got;
    sqlite3_bind_int64(st, 1, older_than_ms);
    int ret = step_done(s, st, "inbox prune", err);
    if (ret == 0 && removed != NULL)
        *removed = sqlite3_changes64(s->db);
    return ret;
}

int ev_store_inbox_prune(ev_store *s, int64_t older_than_ms, ev_error *err)
{
    return ev_store_inbox_prune_n(s, older_than_ms, NULL, err);
}

int ev_store_inbox_count(ev_store *s, int64_t *n, ev_error *err)
{
    return count_rows(s, "SELECT count(*) FROM inbox", n, "inbox count", err);
}

/* ---- outbox ------------------------------------------------------------------------ */

static int bind_outbox(sqlite3_stmt *st, const char *topic, const char *key,
                       const void *value, size_t len, const char *headers_json)
{
    int rc = sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && key != NULL)
        rc = sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && len == 0)
        rc = sqlite3_bind_zeroblob(st, 3, 0);
    else if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob64(st, 3, value, len, SQLITE_STATIC);
    if (rc == SQLITE_OK && headers_json != NULL)
        rc = sqlite3_bind_text(st, 4, headers_json, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 5, wall_ms());
    return rc;
}

int ev_store_outbox_add(ev_store *s, const char *topic, const char *key,
                        const void *value, size_t len, const char *headers_json,
                        int64_t *id_out, ev_error *err)
{
    if (s == NULL || topic == NULL || topic[0] == '\0' || (value == NULL && len > 0))
        return ev_error_set(err, EV_EINVAL,
                            "store: outbox add: topic and value required");
    sqlite3_stmt *st = NULL;
    int got = lookup(s,
                     "INSERT INTO outbox(topic, key, value, headers, "
                     "created_at) VALUES(?, ?, ?, ?, ?)",
                     &st, err);
    if (got != 0)
        return got;
    int rc = bind_outbox(st, topic, key, value, len, headers_json);
    if (rc != SQLITE_OK)
        return bind_fail(s, st, rc, "outbox add", err);
    int ret = step_done(s, st, "outbox add", err);
    if (ret == 0 && id_out != NULL)
        *id_out = sqlite3_last_insert_rowid(s->db);
    return ret;
}

static int outbox_row(sqlite3_stmt *st, ev_outbox_fn fn, void *arg)
{
    const void *value = sqlite3_column_blob(st, 3);
    size_t len = (size_t)sqlite3_column_bytes(st, 3);
    return fn(arg, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1),
              (const char *)sqlite3_column_text(st, 2), value != NULL ? value : "", len,
              (const char *)sqlite3_column_text(st, 4));
}

int ev_store_outbox_each(ev_store *s, int64_t from_id, size_t limit, ev_outbox_fn fn,
                         void *arg, ev_error *err)
{
    if (s == NULL || fn == NULL)
        return ev_error_set(err, EV_EINVAL, "store: outbox each: NULL argument");
    sqlite3_stmt *st = NULL;
    int got = lookup(s,
                     "SELECT id, topic, key, value, headers FROM outbox "
                     "WHERE id >= ? ORDER BY id LIMIT ?",
                     &st, err);
    if (got != 0)
        return got;
    sqlite3_bind_int64(st, 1, from_id);
    sqlite3_bind_int64(st, 2, limit == 0 || limit > INT64_MAX ? -1 : (int64_t)limit);
    int ret = 0;
    int rc = SQLITE_DONE;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        ret = outbox_row(st, fn, arg);
        if (ret != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = fail(s, rc, "outbox each", err);
    finish(st);
    return ret;
}

int ev_store_outbox_delete(ev_store *s, int64_t id, ev_error *err)
{
    if (s == NULL)
        return ev_error_set(err, EV_EINVAL, "store: outbox delete: NULL store");
    sqlite3_stmt *st = NULL;
    int got = lookup(s, "DELETE FROM outbox WHERE id = ?", &st, err);
    if (got != 0)
        return got;
    sqlite3_bind_int64(st, 1, id);
    return step_done(s, st, "outbox delete", err);
}

int ev_store_outbox_count(ev_store *s, int64_t *n, ev_error *err)
{
    return count_rows(s, "SELECT count(*) FROM outbox", n, "outbox count", err);
}

/* ---- offsets ------------------------------------------------------------------------
 */

int ev_store_offset_get(ev_store *s, const char *topic, int32_t partition, int64_t *next,
                        ev_error *err)
{
    if (s == NULL || topic == NULL || next == NULL)
        return ev_error_set(err, EV_EINVAL, "store: offset get: NULL argument");
    sqlite3_stmt *st = NULL;
    int got = lookup(
        s, "SELECT next_offset FROM offsets WHERE topic = ? AND partition = ?", &st, err);
    if (got != 0)
        return got;
    int rc = sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
    if (rc != SQLITE_OK)
        return bind_fail(s, st, rc, "offset get", err);
    sqlite3_bind_int(st, 2, partition);
    return query_int64(s, st, -1, next, "offset get", err);
}

int ev_store_offset_set(ev_store *s, const char *topic, int32_t partition, int64_t next,
                        ev_error *err)
{
    if (s == NULL || topic == NULL || topic[0] == '\0')
        return ev_error_set(err, EV_EINVAL, "store: offset set: topic required");
    sqlite3_stmt *st = NULL;
    int got = lookup(s,
                     "INSERT OR REPLACE INTO offsets(topic, partition, "
                     "next_offset) VALUES(?, ?, ?)",
                     &st, err);
    if (got != 0)
        return got;
    int rc = sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
    if (rc != SQLITE_OK)
        return bind_fail(s, st, rc, "offset set", err);
    sqlite3_bind_int(st, 2, partition);
    sqlite3_bind_int64(st, 3, next);
    return step_done(s, st, "offset set", err);
}

/* ---- timers -------------------------------------------------------------------------
 */

static bool fits(const char *v, size_t cap, bool nonempty)
{
    size_t n = strnlen(v, cap);
    return n < cap && (!nonempty || n > 0);
}

int ev_store_timer_set(ev_store *s, const ev_timer *t, ev_error *err)
{
    if (s == NULL || t == NULL || !fits(t->key, sizeof(t->key), true) ||
        !fits(t->kind, sizeof(t->kind), true) ||
        !fits(t->correlationid, sizeof(t->correlationid), false) ||
        !fits(t->causationid, sizeof(t->causationid), false))
        return ev_error_set(err, EV_EINVAL, "store: timer set: key and kind required");
    sqlite3_stmt *st = NULL;
    int got = lookup(s,
                     "INSERT OR REPLACE INTO timers(key, kind, due_at, "
                     "correlationid, causationid) VALUES(?, ?, ?, ?, ?)",
                     &st, err);
    if (got != 0)
        return got;
    int rc = sqlite3_bind_text(st, 1, t->key, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 2, t->kind, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 3, t->due_at);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 4, t->correlationid, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 5, t->causationid, -1, SQLITE_STATIC);
    if (rc != SQLITE_OK)
        return bind_fail(s, st, rc, "timer set", err);
    return step_done(s, st, "timer set", err);
}

static int bind_key_kind(sqlite3_stmt *st, const char *key, const char *kind)
{
    int rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
    return rc;
}

int ev_store_timer_delete(ev_store *s, const char *key, const char *kind, ev_error *err)
{
    if (s == NULL || key == NULL || kind == NULL)
        return ev_error_set(err, EV_EINVAL, "store: timer delete: NULL argument");
    sqlite3_stmt *st = NULL;
    int got = lookup(s, "DELETE FROM timers WHERE key = ? AND kind = ?", &st, err);
    if (got != 0)
        return got;
    int rc = bind_key_kind(st, key, kind);
    if (rc != SQLITE_OK)
        return bind_fail(s, st, rc, "timer delete", err);
    return step_done(s, st, "timer delete", err);
}

static int copy_col(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    int n = snprintf(dst, cap, "%s", v != NULL ? (const char *)v : "");
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* Reads the row (key, kind, due_at, correlationid, causationid) into t. */
static int timer_row(sqlite3_stmt *st, ev_timer *t, ev_error *err)
{
    memset(t, 0, sizeof(*t));
    t->due_at = sqlite3_column_int64(st, 2);
    if (copy_col(t->key, sizeof(t->key), st, 0) != 0 ||
        copy_col(t->kind, sizeof(t->kind), st, 1) != 0 ||
        copy_col(t->correlationid, sizeof(t->correlationid), st, 3) != 0 ||
        copy_col(t->causationid, sizeof(t->causationid), st, 4) != 0)
        return ev_error_set(err, EV_ESTORE, "store: timer %s: field too long", t->key);
    return 0;
}

int ev_store_timer_get(ev_store *s, const char *key, const char *kind, ev_timer *out,
                       bool *found, ev_error *err)
{
    if (s == NULL || key == NULL || kind == NULL || found == NULL)
        return ev_error_set(err, EV_EINVAL, "store: timer get: NULL argument");
    sqlite3_stmt *st = NULL;
    int got = lookup(s,
                     "SELECT key, kind, due_at, correlationid, causationid "
                     "FROM timers WHERE key = ? AND kind = ?",
                     &st, err);
    if (got != 0)
        return got;
    int rc = bind_key_kind(st, key, kind);
    if (rc != SQLITE_OK)
        return bind_fail(s, st, rc, "timer get", err);
    rc = sqlite3_step(st);
    int ret = 0;
    *found = rc == SQLITE_ROW;
    if (rc == SQLITE_ROW && out != NULL)
        ret = timer_row(st, out, err);
    else if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = fail(s, rc, "timer get", err);
    finish(st);
    return ret;
}

int ev_store_timers_due(ev_store *s, int64_t now_ms, ev_timer *out, size_t cap, size_t *n,
                        ev_error *err)
{
    if (s == NULL || n == NULL || (out == NULL && cap > 0))
        return ev_error_set(err, EV_EINVAL, "store: timers due: NULL argument");
    *n = 0;
    if (cap == 0)
        return 0;
    sqlite3_stmt *st = NULL;
    int got = lookup(s,
                     "SELECT key, kind, due_at, correlationid, causationid "
                     "FROM timers WHERE due_at <= ? "
                     "ORDER BY due_at, key, kind LIMIT ?",
                     &st, err);
    if (got != 0)
        return got;
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int64(st, 2, cap > INT64_MAX ? INT64_MAX : (int64_t)cap);
    int ret = 0;
    int rc = SQLITE_DONE;
    while (ret == 0 && *n < cap && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        ret = timer_row(st, &out[*n], err);
        if (ret == 0)
            (*n)++;
    }
    if (ret == 0 && *n < cap && rc != SQLITE_DONE)
        ret = fail(s, rc, "timers due", err);
    finish(st);
    return ret;
}

int ev_store_timers_next(ev_store *s, int64_t *due_at, ev_error *err)
{
    if (s == NULL || due_at == NULL)
        return ev_error_set(err, EV_EINVAL, "store: timers next: NULL argument");
    sqlite3_stmt *st = NULL;
    int got = lookup(s, "SELECT min(due_at) FROM timers", &st, err);
    if (got != 0)
        return got;
    return query_int64(s, st, INT64_MAX, due_at, "timers next", err);
}

int ev_store_timers_count(ev_store *s, int64_t *n, ev_error *err)
{
    return count_rows(s, "SELECT count(*) FROM timers", n, "timers count", err);
}

sqlite3_stmt *ev_store_bind(ev_store *s, ev_error *err, const char *sql, const char *fmt,
                            ...)
{
    sqlite3_stmt *st = ev_store_stmt(s, sql, err);
    if (st == NULL)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    int rc = SQLITE_OK;
    for (int i = 0; fmt[i] != '\0' && rc == SQLITE_OK; i++) {
        if (fmt[i] == 's')
            rc = sqlite3_bind_text(st, i + 1, va_arg(ap, const char *), -1,
                                   SQLITE_TRANSIENT);
        else
            rc = sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
    }
    va_end(ap);
    if (rc != SQLITE_OK) {
        ev_error_set(err, EV_ESTORE, "store: bind: %s", sqlite3_errmsg(s->db));
        return NULL;
    }
    return st;
}

int ev_store_exec(sqlite3_stmt *st, ev_error *err)
{
    if (st == NULL)
        return err != NULL && err->code != 0 ? err->code : EV_ESTORE;
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return ev_error_set(err, EV_ESTORE, "store: step: %s",
                            sqlite3_errmsg(sqlite3_db_handle(st)));
    return 0;
}
