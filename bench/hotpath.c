/* SPDX-License-Identifier: MIT */
/* Fixed-input driver of the libevents hot path for callgrind: per event (one transaction
 * per batch, no savepoint per event, as the runtime's optimistic batch) parse, validate,
 * dedup, handler state write, outbox write; then as many skipped records. */
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "envelope.h"
#include "error.h"
#include "schema.h"
#include "store.h"

/* A handler's own tables, like inventory's: stock per sku, reservation per order. */
static const ev_migration hot_migrations[] = {
    {1, "CREATE TABLE stock (sku TEXT PRIMARY KEY, available BIGINT NOT NULL,"
        " reserved BIGINT NOT NULL DEFAULT 0);"
        "CREATE TABLE reservations (order_id TEXT PRIMARY KEY, status TEXT NOT NULL,"
        " updated_at BIGINT NOT NULL);"},
};

typedef struct hot {
    ev_store *store;
    ev_schema_set *schemas;
    char **records;
    size_t *lens;
    char **skips; /* records of types the handler does not take */
    size_t *skip_lens;
    size_t n_events;
    size_t batch;
    size_t applied, deduped, skipped;
} hot;

#define NOINLINE __attribute__((noinline))

static NOINLINE int hot_parse(hot *h, size_t i, ev_envelope *ev, ev_error *err)
{
    return ev_envelope_parse(ev, h->records[i], h->lens[i], NULL, err);
}

static NOINLINE int hot_validate(hot *h, const ev_envelope *ev, ev_error *err)
{
    return ev_schema_validate_type(h->schemas, ev->type, ev->data, err);
}

static NOINLINE int hot_dedup(hot *h, const ev_envelope *ev, bool *seen, ev_error *err)
{
    return ev_store_inbox_seen(h->store, ev->id, seen, err);
}

/* What inventory does on order.placed: reserve each line, record the order. */
static NOINLINE int hot_handler(hot *h, const ev_envelope *ev, ev_error *err)
{
    json_t *items = json_object_get(ev->data, "items");
    size_t i;
    json_t *line;
    json_array_foreach(items, i, line)
    {
        int rc = ev_store_exec(
            ev_store_bind(h->store, err,
                          "UPDATE stock SET available = available - ?1,"
                          " reserved = reserved + ?1 WHERE sku = ?2",
                          "is", (int64_t)json_integer_value(json_object_get(line, "qty")),
                          json_string_value(json_object_get(line, "sku"))),
            err);
        if (rc != 0)
            return rc;
    }
    return ev_store_exec(ev_store_bind(h->store, err,
                                       "INSERT INTO reservations (order_id, status,"
                                       " updated_at) VALUES (?1, ?2, ?3)",
                                       "ssi", ev->subject, "RESERVED",
                                       (int64_t)1764000000000),
                         err);
}

/* What ev_emit does: derive, validate the new data, serialize, outbox row. */
static NOINLINE int hot_emit(hot *h, const ev_envelope *cause, ev_error *err)
{
    ev_envelope out = {0};
    char *buf = NULL;
    size_t len = 0;
    json_t *data = json_pack("{s:s, s:O}", "order_id", cause->subject, "items",
                             json_object_get(cause->data, "items"));
    int rc = ev_envelope_derive(&out, cause, "inventory.reserved", "/choreo/inventory",
                                cause->subject, 0, data, err);
    if (rc == 0)
        rc = ev_schema_validate_type(h->schemas, out.type, out.data, err);
    if (rc == 0)
        rc = ev_envelope_serialize(&out, NULL, &buf, &len, err);
    if (rc == 0)
        rc = ev_store_outbox_add(h->store, "inventory", cause->subject, buf, len,
                                 "{\"content-type\":\"application/cloudevents+json\"}",
                                 NULL, err);
    free(buf);
    ev_envelope_clear(&out);
    return rc;
}

static NOINLINE int hot_one(hot *h, size_t i, ev_error *err)
{
    ev_envelope ev = {0};
    bool seen = false;
    /* no savepoint: the runtime's optimistic batch takes one per record only
     * when a record of the batch failed */
    int rc = hot_parse(h, i, &ev, err);
    if (rc == 0)
        rc = hot_validate(h, &ev, err);
    if (rc == 0)
        rc = hot_dedup(h, &ev, &seen, err);
    if (rc == 0 && seen)
        h->deduped++;
    if (rc == 0 && !seen)
        rc = hot_handler(h, &ev, err);
    if (rc == 0 && !seen)
        rc = hot_emit(h, &ev, err);
    if (rc == 0 && !seen) {
        rc = ev_store_inbox_add(h->store, ev.id, 1764000000000, err);
        h->applied++;
    }
    ev_envelope_clear(&ev);
    return rc;
}

/* One transaction per batch, as the runtime does, with the batch's offset. */
static NOINLINE int hot_batch(hot *h, size_t from, size_t to, ev_error *err)
{
    int rc = ev_store_begin(h->store, err);
    for (size_t i = from; rc == 0 && i < to; i++)
        rc = hot_one(h, i, err);
    if (rc == 0)
        rc = ev_store_offset_set(h->store, "orders", 0, (int64_t)to, err);
    if (rc == 0)
        return ev_store_commit(h->store, err);
    ev_store_rollback(h->store, NULL);
    return rc;
}

/* The types the handler above takes; every other type is skipped. */
static bool hot_handles(const char *type)
{
    static const char *const handled[] = {"order.placed", "payment.declined",
                                          "order.rejected", "order.cancelled"};
    for (size_t i = 0; i < sizeof(handled) / sizeof(handled[0]); i++)
        if (strcmp(handled[i], type) == 0)
            return true;
    return false;
}

/* What the runtime does with a record of a type it has no handler for (the
 * tolerant reader): peek the type, check the record without building data. */
static NOINLINE int hot_skip(hot *h, size_t i, ev_error *err)
{
    char type[EV_TYPE_MAX];
    ev_envelope ev;
    if (!ev_envelope_peek_type(h->skips[i], h->skip_lens[i], type) || hot_handles(type))
        return ev_error_set(err, EV_EINVAL, "skip record %zu: type not peeked", i);
    int rc = ev_envelope_parse_head(&ev, h->skips[i], h->skip_lens[i], NULL, err);
    h->skipped += rc == 0;
    ev_envelope_clear(&ev);
    return rc;
}

/* Skipped records, timed and counted apart (--toggle-collect=hot_skip_all too). */
NOINLINE int hot_skip_all(hot *h, ev_error *err);
NOINLINE int hot_skip_all(hot *h, ev_error *err)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < h->n_events; i++)
        rc = hot_skip(h, i, err);
    return rc;
}

/* Everything callgrind counts (--toggle-collect=hot_run). */
NOINLINE int hot_run(hot *h, ev_error *err);
NOINLINE int hot_run(hot *h, ev_error *err)
{
    for (size_t from = 0; from < h->n_events; from += h->batch) {
        size_t to = from + h->batch < h->n_events ? from + h->batch : h->n_events;
        int rc = hot_batch(h, from, to, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* order.placed number i with fixed id and time: the same bytes on every run. */
static int make_record(size_t i, char **out, size_t *len, ev_error *err)
{
    char order[32], cust[32], sku1[32], sku2[32], name[64];
    snprintf(order, sizeof(order), "order-%06zu", i);
    snprintf(cust, sizeof(cust), "cust-%04zu", i % 100);
    snprintf(sku1, sizeof(sku1), "sku-%04zu", i % 50);
    snprintf(sku2, sizeof(sku2), "sku-%04zu", (i + 7) % 50);
    json_t *data =
        json_pack("{s:s, s:s, s:[{s:s, s:i, s:i}, {s:s, s:i, s:i}], s:i, s:s}",
                  "order_id", order, "customer_id", cust, "items", "sku", sku1, "qty", 1,
                  "unit_price_cents", 1250, "sku", sku2, "qty", 2, "unit_price_cents",
                  499, "total_cents", 2248, "currency", "EUR");
    ev_envelope e = {0};
    int rc = ev_envelope_init(&e, "order.placed", "/choreo/cli", order, data, err);
    if (rc != 0)
        return rc;
    snprintf(name, sizeof(name), "hotpath/%zu", i);
    ev_uuid5(e.id, name);
    snprintf(e.correlationid, sizeof(e.correlationid), "%s", e.id);
    snprintf(e.time, sizeof(e.time), "2026-11-24T10:00:00.123Z");
    rc = ev_envelope_serialize(&e, NULL, out, len, err);
    ev_envelope_clear(&e);
    return rc;
}

/* Record i of a type the handler skips: order.confirmed or inventory.reserved
 * (with the order's lines), derived from order.placed number i. */
static int make_skip(size_t i, char **out, size_t *len, ev_error *err)
{
    char order[32], name[64];
    snprintf(order, sizeof(order), "order-%06zu", i);
    ev_envelope cause = {0};
    snprintf(name, sizeof(name), "hotpath/%zu", i);
    ev_uuid5(cause.id, name);
    json_t *data =
        i % 2 == 0
            ? json_pack("{s:s, s:s}", "order_id", order, "payment_id", "pay-000000001")
            : json_pack("{s:s, s:[{s:s, s:i}, {s:s, s:i}]}", "order_id", order, "items",
                        "sku", "sku-0001", "qty", 1, "sku", "sku-0008", "qty", 2);
    ev_envelope e = {0};
    int rc = ev_envelope_derive(&e, &cause,
                                i % 2 == 0 ? "order.confirmed" : "inventory.reserved",
                                "/choreo/orders", order, 0, data, err);
    if (rc != 0)
        return rc;
    snprintf(e.time, sizeof(e.time), "2026-11-24T10:00:00.456Z");
    rc = ev_envelope_serialize(&e, NULL, out, len, err);
    ev_envelope_clear(&e);
    return rc;
}

/* 50 SKUs sku-0000..sku-0049 with ample stock, in one transaction. */
static int seed_stock(ev_store *s, ev_error *err)
{
    char sku[32];
    int rc = ev_store_begin(s, err);
    for (int i = 0; rc == 0 && i < 50; i++) {
        snprintf(sku, sizeof(sku), "sku-%04d", i);
        rc = ev_store_exec(ev_store_bind(s, err,
                                         "INSERT INTO stock (sku, available)"
                                         " VALUES (?1, ?2)",
                                         "si", sku, (int64_t)1000000000),
                           err);
    }
    if (rc == 0)
        return ev_store_commit(s, err);
    ev_store_rollback(s, NULL);
    return rc;
}

static int setup(hot *h, const char *dir, const char *schema_dir, ev_error *err)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/hotpath.db", dir);
    ev_store_opts so = {.path = path,
                        .migrations = hot_migrations,
                        .n_migrations =
                            sizeof(hot_migrations) / sizeof(hot_migrations[0])};
    int rc = ev_store_open(&h->store, &so, err);
    if (rc != 0)
        return rc;
    h->schemas = ev_schema_set_new();
    if (h->schemas == NULL)
        return ev_error_set(err, EV_ENOMEM, "schema set");
    rc = ev_schema_set_load_dir(h->schemas, schema_dir, err);
    if (rc != 0)
        return rc;
    rc = seed_stock(h->store, err);
    if (rc != 0)
        return rc;
    h->records = calloc(h->n_events, sizeof(char *));
    h->lens = calloc(h->n_events, sizeof(size_t));
    if (h->records == NULL || h->lens == NULL)
        return ev_error_set(err, EV_ENOMEM, "records");
    h->skips = calloc(h->n_events, sizeof(char *));
    h->skip_lens = calloc(h->n_events, sizeof(size_t));
    if (h->skips == NULL || h->skip_lens == NULL)
        return ev_error_set(err, EV_ENOMEM, "records");
    for (size_t i = 0; i < h->n_events && rc == 0; i++)
        rc = make_record(i, &h->records[i], &h->lens[i], err);
    for (size_t i = 0; i < h->n_events && rc == 0; i++)
        rc = make_skip(i, &h->skips[i], &h->skip_lens[i], err);
    return rc;
}

static void teardown(hot *h, const char *dir)
{
    static const char *const files[] = {"hotpath.db", "hotpath.db-wal", "hotpath.db-shm"};
    char path[600];
    ev_store_close(h->store);
    ev_schema_set_free(h->schemas);
    for (size_t i = 0; h->records != NULL && i < h->n_events; i++)
        free(h->records[i]);
    free(h->records);
    free(h->lens);
    for (size_t i = 0; h->skips != NULL && i < h->n_events; i++)
        free(h->skips[i]);
    free(h->skips);
    free(h->skip_lens);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

static double elapsed(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static bool parse_size(const char *s, size_t *out)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v <= 0)
        return false;
    *out = (size_t)v;
    return true;
}

int main(int argc, char **argv)
{
    hot h = {.n_events = 2000, .batch = 500};
    ev_store_tune_process(); /* as ev_service_run does */
    const char *schema_dir = getenv("CHOREO_SCHEMA_DIR");
    if (schema_dir == NULL || schema_dir[0] == '\0')
        schema_dir = EV_SCHEMA_DIR;
    for (int i = 1; i < argc; i += 2) {
        bool ok = i + 1 < argc;
        if (ok && strcmp(argv[i], "--events") == 0)
            ok = parse_size(argv[i + 1], &h.n_events);
        else if (ok && strcmp(argv[i], "--batch") == 0)
            ok = parse_size(argv[i + 1], &h.batch);
        else if (ok && strcmp(argv[i], "--schemas") == 0)
            schema_dir = argv[i + 1];
        else
            ok = false;
        if (!ok) {
            fprintf(stderr, "usage: hotpath [--events N] [--batch N] [--schemas DIR]\n");
            return 2;
        }
    }
    char dir[] = "/tmp/choreo-hotpath-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("hotpath: mkdtemp");
        return 1;
    }
    ev_error err = {0};
    int rc = setup(&h, dir, schema_dir, &err);
    struct timespec t0, t1, t2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (rc == 0)
        rc = hot_run(&h, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc == 0)
        rc = hot_skip_all(&h, &err);
    clock_gettime(CLOCK_MONOTONIC, &t2);
    double secs = elapsed(&t0, &t1), skip_secs = elapsed(&t1, &t2);
    if (rc == 0)
        printf("{\"events\":%zu,\"applied\":%zu,\"deduped\":%zu,\"skipped\":%zu,"
               "\"batch\":%zu,\"seconds\":%.6f,\"ns_per_event\":%.0f,"
               "\"ns_per_skip\":%.0f}\n",
               h.n_events, h.applied, h.deduped, h.skipped, h.batch, secs,
               secs * 1e9 / (double)h.n_events, skip_secs * 1e9 / (double)h.n_events);
    else
        fprintf(stderr, "hotpath: %s: %s\n", ev_error_name(err.code), err.text);
    teardown(&h, dir);
    return rc == 0 ? 0 : 1;
}
