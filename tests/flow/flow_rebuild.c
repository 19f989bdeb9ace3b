/* SPDX-License-Identifier: MIT */
/* Flow: every service rebuilt from the log. A burst of 300 orders (completed,
 * declined for credit and for an unknown customer, out of stock, cancelled by
 * the customer, timed out while inventory was down), then per service:
 * --verify finds the rebuilt state equal to the live one and the would-be
 * emitted ids equal to the published ones; --rebuild into an empty store gives
 * the live dump, and orders started on it resumes where the rebuild ended
 * (nothing re-emitted). A build with a broken handler fails --verify. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flow.h"
#include "harness.h"

#define N_BURST 240
#define N_STALLED 60
#define N_ORDERS (N_BURST + N_STALLED)
#define RUN_MS 120000

static const char *const VERIFY[] = {"--verify", NULL};
static const char *const REBUILD[] = {"--rebuild", NULL};
static const char *const DUMP[] = {"--dump", NULL};

static char ids[N_ORDERS][16];
static const char *id_ptrs[N_ORDERS];

static void setup(flow *f)
{
    static const int64_t limits[] = {100000000, 100000000, 100000000, 100000000, 50};
    static const int64_t stock[] = {1000, 1000, 1000, 1000};
    flow_setup_shop(f, 5, limits, 4, stock, true, 30000);
}

/* Kinds by i % 10: 6 over c4's credit, 7 an unknown customer, 8 a sku never
 * stocked; the others complete. */
static void place(flow *f, int i)
{
    char cid[16], sku[16];
    snprintf(ids[i], sizeof(ids[i]), "o%03d", i);
    id_ptrs[i] = ids[i];
    int kind = i % 10;
    snprintf(cid, sizeof(cid), kind == 6 ? "c4" : kind == 7 ? "cx" : "c%d", i % 4);
    snprintf(sku, sizeof(sku), kind == 8 ? "sku-z" : "sku-%d", i % 4);
    FLOW_CHECK(f, flow_place(f, ids[i], cid, sku, 1 + i % 3, 100 * (1 + i % 4)) == 0,
               "place %s", ids[i]);
}

/* Inventory down: the even orders are cancelled by the customer, the odd ones
 * time out; then inventory comes back and releases what it reserves. */
static void stalled(flow *f)
{
    flow_stop(f, "inventory", 0);
    for (int i = N_BURST; i < N_ORDERS; i++) {
        place(f, i);
        if (i % 2 == 0)
            FLOW_CHECK(f, flow_cancel(f, ids[i]) == 0, "cancel %s", ids[i]);
    }
    for (int i = N_BURST; i < N_ORDERS; i++) {
        const char *out = flow_wait_outcome(f, ids[i], 60000);
        FLOW_CHECK(f, out && strcmp(out, "cancelled") == 0, "%s outcome %s", ids[i],
                   out ? out : "none");
    }
    FLOW_CHECK(f, flow_start(f, "inventory") == 0, "inventory back");
}

/* Arrays of objects sorted by their text: dumps compared regardless of the
 * order of equal-keyed rows. */
static void normalize(json_t *j)
{
    size_t i;
    json_t *v;
    const char *k;
    if (json_is_object(j)) {
        json_object_foreach(j, k, v) normalize(v);
        return;
    }
    if (!json_is_array(j))
        return;
    size_t n = json_array_size(j);
    char **txt = calloc(n ? n : 1, sizeof(*txt));
    json_array_foreach(j, i, v)
    {
        normalize(v);
        txt[i] = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    }
    for (size_t a = 1; a < n; a++) /* insertion sort, small arrays */
        for (size_t b = a; b > 0 && strcmp(txt[b - 1], txt[b]) > 0; b--) {
            char *t = txt[b];
            txt[b] = txt[b - 1];
            txt[b - 1] = t;
        }
    json_array_clear(j);
    for (size_t a = 0; a < n; a++) {
        json_array_append_new(j, json_loads(txt[a], JSON_DECODE_ANY, NULL));
        free(txt[a]);
    }
    free(txt);
}

static void verify_all(flow *f)
{
    for (int i = 0; i < FLOW_N_SERVICES; i++) {
        const char *svc = flow_services[i];
        char *out = NULL;
        int st = flow_run_service(f, svc, NULL, NULL, VERIFY, RUN_MS, &out);
        const char *line = out ? strstr(out, "verify ") : NULL;
        FLOW_CHECK(f, st == 0, "%s --verify exit %d:\n%s", svc, st, out ? out : "");
        FLOW_CHECK(f,
                   line && strstr(line, "dump identical (0 differences), emitted ids: "
                                        "0 missing, 0 extra"),
                   "%s --verify says %s", svc, line ? line : "nothing");
        flow_note(f, "%s", line ? line : "");
        free(out);
    }
}

/* --rebuild into an empty store of each service: same dump as the live one.
 * pg: into a fresh PostgreSQL schema (from SQLite to PostgreSQL), else into an
 * empty SQLite data dir. */
static void rebuild_all(flow *f, const char *base, bool pg)
{
    for (int i = 0; i < FLOW_N_SERVICES; i++) {
        const char *svc = flow_services[i];
        char env[1400], schema[64], base_name[32], *out = NULL;
        snprintf(base_name, sizeof(base_name), "rebuilt_%s", svc);
        if (pg && harness_pg_fresh_schema(schema, sizeof(schema), base_name) != 0) {
            FLOW_CHECK(f, false, "a fresh schema for %s", svc);
            continue;
        }
        if (pg)
            snprintf(env, sizeof(env),
                     "CHOREO_DATA_DIR=%s/rebuilt-pg-%s CHOREO_STORE=%s "
                     "CHOREO_STORE_SCHEMA=%s",
                     base, svc, harness_pg_uri(), schema);
        else
            snprintf(env, sizeof(env),
                     "CHOREO_DATA_DIR=%s/rebuilt-%s CHOREO_STORE CHOREO_STORE_SCHEMA",
                     base, svc);
        int st = flow_run_service(f, svc, NULL, env, REBUILD, RUN_MS, &out);
        FLOW_CHECK(f, st == 0 && out && strstr(out, ", 0 not published"),
                   "%s --rebuild exit %d:\n%s", svc, st, out ? out : "");
        free(out);
        st = flow_run_service(f, svc, NULL, env, REBUILD, RUN_MS, NULL);
        FLOW_CHECK(f, st == 1, "%s --rebuild refuses a store that is not empty", svc);
        st = flow_run_service(f, svc, NULL, env, DUMP, RUN_MS, &out);
        json_t *rebuilt = out ? json_loads(out, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
        json_t *live = flow_dump(f, svc);
        free(out);
        normalize(rebuilt);
        normalize(live);
        FLOW_CHECK(f, rebuilt && live && json_equal(rebuilt, live),
                   "%s: rebuilt dump (%s) equals the live dump", svc,
                   pg ? "PostgreSQL" : "SQLite");
        json_decref(rebuilt);
        json_decref(live);
        char sql[200];
        snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS \"%s\" CASCADE", schema);
        if (pg && !flow_failed(f))
            harness_pg_exec(sql);
    }
}

static size_t orders_emitted;

static void count_orders_emitted(void *arg, const flow_rec *r)
{
    (void)arg;
    if (strcmp(r->topic, "orders") == 0 && strncmp(r->type, "order.", 6) == 0 &&
        strcmp(r->type, "order.placed") != 0 &&
        strcmp(r->type, "order.cancel_requested") != 0 &&
        strcmp(r->order_id, "o-after") != 0)
        orders_emitted++;
}

/* orders restarted on its rebuilt store: new orders go on, the old ones are
 * not read or emitted again. */
static void resume(flow *f, const char *base)
{
    char cmd[1400];
    orders_emitted = 0;
    flow_each(f, count_orders_emitted, NULL);
    size_t before = orders_emitted;
    flow_stop(f, "orders", 0);
    snprintf(cmd, sizeof(cmd),
             "rm -f '%s'/orders.db* && cp '%s'/rebuilt-orders/orders.db '%s'/",
             flow_data_dir(f, "orders"), base, flow_data_dir(f, "orders"));
    FLOW_CHECK(f, system(cmd) == 0, "orders store replaced by the rebuilt one");
    FLOW_CHECK(f, flow_start(f, "orders") == 0, "orders on the rebuilt store");
    FLOW_CHECK(f, flow_place(f, "o-after", "c0", "sku-0", 1, 100) == 0, "place o-after");
    const char *out = flow_wait_outcome(f, "o-after", 60000);
    FLOW_CHECK(f, out && strcmp(out, "completed") == 0, "o-after %s", out ? out : "none");
    FLOW_CHECK(f, flow_wait_quiet(f, 60000), "quiet after o-after");
    orders_emitted = 0;
    flow_each(f, count_orders_emitted, NULL);
    FLOW_CHECK(f, orders_emitted == before,
               "orders re-emitted nothing: %zu events before, %zu after", before,
               orders_emitted);
}

/* A build whose payment.declined handler is wrong (it would confirm without a
 * payment id, which the schema refuses: the record is dead-lettered and the
 * order times out): --verify says where. */
static void broken(flow *f)
{
    char *out = NULL;
    int st = flow_run_service(f, "orders", "tests/integration/svc_orders_broken", NULL,
                              VERIFY, RUN_MS, &out);
    FLOW_CHECK(f, st == 1, "broken orders --verify exit %d", st);
    FLOW_CHECK(f,
               out && strstr(out, "dump orders[o007].status: live \"REJECTED\", "
                                  "rebuilt \"CANCELLED\""),
               "the status difference of o007 is printed");
    FLOW_CHECK(f,
               out && strstr(out, "(order.rejected, ") &&
                   strstr(out, "is published, but the rebuild would not emit it"),
               "the missing order.rejected events are printed");
    FLOW_CHECK(f,
               out && strstr(out, "(order.cancelled, ") &&
                   strstr(out, "would be emitted by the rebuild, but is not published"),
               "the extra order.cancelled events are printed");
    const char *line = out ? strstr(out, "verify orders: dump differs") : NULL;
    FLOW_CHECK(f, line != NULL, "verdict: %s", line ? line : "none");
    flow_note(f, "broken: %.*s", line ? (int)strcspn(line, "\n") : 0, line ? line : "");
    free(out);
}

/* Deletes the records of the first non-empty partition of the customers
 * topic, as retention would; 0 or -1. */
static int expire_customers(flow *f)
{
    char topic[300];
    snprintf(topic, sizeof(topic), "%scustomers", flow_prefix(f));
    harness_producer *p = harness_producer_new(NULL);
    rd_kafka_t *rk = p ? harness_producer_handle(p) : NULL;
    int rc = -1;
    for (int32_t part = 0; rk != NULL && rc != 0 && part < 3; part++) {
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(rk, topic, part, &lo, &hi, 10000) != 0 ||
            hi == 0)
            continue;
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic, part)->offset = hi;
        rd_kafka_DeleteRecords_t *del = rd_kafka_DeleteRecords_new(l);
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_DeleteRecords(rk, &del, 1, NULL, q);
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
        rc = ev != NULL && rd_kafka_event_error(ev) == 0 ? 0 : -1;
        const rd_kafka_DeleteRecords_result_t *res =
            ev ? rd_kafka_event_DeleteRecords_result(ev) : NULL;
        const rd_kafka_topic_partition_list_t *done =
            res ? rd_kafka_DeleteRecords_result_offsets(res) : NULL;
        if (done == NULL || done->cnt != 1 || done->elems[0].err != 0)
            rc = -1;
        if (ev != NULL)
            rd_kafka_event_destroy(ev);
        rd_kafka_queue_destroy(q);
        rd_kafka_DeleteRecords_destroy(del);
    }
    harness_producer_free(p);
    return rc;
}

/* A log that no longer starts at offset 0: rebuild and verify refuse. */
static void retention(flow *f)
{
    FLOW_CHECK(f, expire_customers(f) == 0, "customers records deleted");
    int st = flow_run_service(f, "payments", NULL, NULL, VERIFY, RUN_MS, NULL);
    FLOW_CHECK(f, st == 1, "payments --verify refuses a truncated log: exit %d", st);
    char log[700];
    snprintf(log, sizeof(log), "%s.run.log", flow_data_dir(f, "payments"));
    FILE *in = fopen(log, "r");
    char line[2048];
    bool said = false;
    while (in != NULL && fgets(line, sizeof(line), in) != NULL)
        said =
            said || (strstr(line, "customers [") && strstr(line, ", not 0: retention"));
    if (in != NULL)
        fclose(in);
    FLOW_CHECK(f, said, "it says which partition and why (%s)", log);
}

int main(void)
{
    flow_opts o = {.order_timeout_ms = 8000, .dispatch_delay_ms = 300};
    flow *f = flow_new("rebuild", &o);
    if (!f)
        return 1;
    char base[256];
    if (harness_tmpdir(base, sizeof(base)) != 0)
        return 1;
    flow_start(f, NULL);
    setup(f);
    for (int i = 0; i < N_BURST; i++)
        place(f, i);
    size_t outcomes[3] = {0};
    for (int i = 0; i < N_BURST; i++) {
        const char *out = flow_wait_outcome(f, ids[i], 90000);
        if (!FLOW_CHECK(f, out != NULL, "%s has no outcome", ids[i]))
            break;
        outcomes[out[0] == 'c' ? (out[1] == 'o' ? 0 : 2) : 1]++;
    }
    stalled(f);
    FLOW_CHECK(f, flow_wait_quiet(f, 60000), "quiet after the burst");
    flow_note(f,
              "%zu completed, %zu rejected, %zu cancelled in the burst, %d cancelled "
              "while inventory was down",
              outcomes[0], outcomes[1], outcomes[2], N_STALLED);
    flow_check_invariants(f, id_ptrs, N_ORDERS);
    if (!flow_failed(f)) {
        verify_all(f);
        rebuild_all(f, base, false);
        if (harness_pg_uri() != NULL)
            rebuild_all(f, base, true);
        broken(f);
        if (!flow_uses_pg(f))
            resume(f, base);
        retention(f);
    }
    if (!flow_failed(f))
        harness_rmtree(base);
    else
        fprintf(stderr, "rebuilt stores kept in %s\n", base);
    return flow_end(f);
}
