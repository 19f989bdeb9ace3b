/* SPDX-License-Identifier: MIT */
/* choreo load: registers customers and stock, places N orders (optionally at a
 * rate), follows the orders topic until every order ended, and reports
 * throughput and placed->confirmed latency from the events' own times. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "binding.h"
#include "cli.h"
#include "envelope.h"

static const char usage[] =
    "usage: choreo load --orders N [--rate R] [--customers C] [--skus S] [--timeout D]\n"
    "\n"
    "Registers C customers with ample credit and S skus with ample stock, waits\n"
    "until payments and inventory have read them, places N orders (R per second,\n"
    "or as fast as the broker takes them), then reads the orders topic until every\n"
    "order is completed, rejected or cancelled. Reports orders completed per second\n"
    "and the placed->confirmed latency (p50, p90, p99, max) from the events' own\n"
    "time attributes, and the same measured by this process's clock (wall).\n"
    "Exit 1 when some order did not end within --timeout.\n"
    "\n"
    "Options:\n"
    "  -n, --orders N         orders to place (required)\n"
    "  -r, --rate R           orders per second (default: unlimited)\n"
    "      --customers C      customers to register (default 10)\n"
    "      --skus S           skus to stock (default 10)\n"
    "      --timeout D        give up waiting for outcomes after D (default "
    "120s)\n" CLI_COMMON_HELP;

enum { OPT_CUSTOMERS = CLI_OPT_FIRST_LOCAL, OPT_SKUS, OPT_TIMEOUT };

typedef struct order_state {
    int64_t placed_ms;    /* event time of order.placed */
    int64_t confirmed_ms; /* event time of order.confirmed, 0 = not yet */
    int64_t sent_mono;    /* this process's clock at send */
    int64_t seen_mono;    /* ... when its order.confirmed was read */
    const char *end;      /* terminal type, NULL = not yet */
} order_state;

typedef struct load {
    cli_ctx *ctx;
    long orders, rate, customers, skus;
    int64_t timeout_ms;
    char run[16];
    ev_producer *p;
    size_t delivery_errors;
    order_state *st;
    size_t n_end, n_confirmed, n_completed, n_rejected, n_cancelled;
    int64_t t_start, t_placed, t_last_end; /* monotonic */
} load;

static void on_delivery(void *arg, void *opaque, int err, const char *errstr,
                        const char *topic, int32_t partition, int64_t offset)
{
    load *l = arg;
    (void)opaque;
    (void)partition;
    (void)offset;
    if (err != 0 && l->delivery_errors++ < 5)
        fprintf(stderr, "choreo load: delivery to %s failed: %s\n", topic, errstr);
}

/* Builds, validates and queues one event; *time_ms gets its time attribute. */
static int send_event(load *l, const char *type, json_t *data, int64_t *time_ms)
{
    ev_envelope e = {0};
    ev_error err;
    char *buf = NULL;
    size_t len = 0;
    char topic[CLI_TOPIC_MAX];
    static const ev_header ce = {"content-type", "application/cloudevents+json"};
    const ev_event_route *r = ev_contract_route(l->ctx->contract, type);
    const char *key = json_string_value(json_object_get(data, r ? r->key_field : ""));
    int rc = CLI_FAIL;
    if (r == NULL || key == NULL) {
        json_decref(data);
        return cli_fail(l->ctx, "%s: no route or key in the contract", type);
    }
    if (ev_schema_validate_type(l->ctx->schemas, type, data, &err) != 0) {
        json_decref(data);
        return cli_fail(l->ctx, "generated %s is invalid: %s", type, err.text);
    }
    char subject[EV_SUBJECT_MAX];
    snprintf(subject, sizeof(subject), "%s", key);
    if (ev_envelope_init(&e, type, CLI_SOURCE, subject, data, &err) != 0 ||
        ev_envelope_serialize(&e, NULL, &buf, &len, &err) != 0) {
        cli_fail(l->ctx, "%s: %s", type, err.text);
        goto cleanup;
    }
    cli_topic(l->ctx, r->topic, topic);
    if (ev_producer_send(l->p, topic, -1, subject, buf, len, &ce, 1, NULL, &err) != 0) {
        cli_fail(l->ctx, "send %s: %s", type, err.text);
        goto cleanup;
    }
    if (time_ms != NULL)
        *time_ms = ev_time_parse(e.time);
    rc = CLI_OK;
cleanup:
    free(buf);
    ev_envelope_clear(&e);
    return rc;
}

static int setup_reference_data(load *l)
{
    char id[64], email[96];
    int rc = CLI_OK;
    for (long i = 0; rc == CLI_OK && i < l->customers; i++) {
        snprintf(id, sizeof(id), "ld-%s-c%ld", l->run, i);
        snprintf(email, sizeof(email), "%s@load.example", id);
        rc = send_event(l, "customer.registered",
                        json_pack("{s:s, s:s, s:s, s:I}", "customer_id", id, "name",
                                  "Load Customer", "email", email, "credit_limit_cents",
                                  (json_int_t)1000000000000LL),
                        NULL);
    }
    for (long i = 0; rc == CLI_OK && i < l->skus; i++) {
        snprintf(id, sizeof(id), "ld-%s-s%ld", l->run, i);
        rc = send_event(
            l, "stock.added",
            json_pack("{s:s, s:I}", "sku", id, "qty", (json_int_t)(l->orders + 1000)),
            NULL);
    }
    ev_error err;
    if (rc == CLI_OK && ev_producer_flush(l->p, 30000, &err) != 0)
        rc = cli_fail(l->ctx, "setup events: %s", err.text);
    return rc;
}

/* True once group has committed up to the end of every partition of topic. */
static bool group_read_all(load *l, rd_kafka_t *rk, const char *group, const char *topic)
{
    rd_kafka_topic_partition_list_t *c = NULL;
    int n = 0;
    bool all = true;
    if (cli_partition_count(l->ctx, rk, topic, &n) != CLI_OK ||
        cli_group_committed(l->ctx, rk, group, &c) != CLI_OK)
        return false;
    for (int32_t p = 0; p < n && all; p++) {
        int64_t end = cli_end_offset(rk, topic, p);
        rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_find(c, topic, p);
        int64_t done = tp != NULL && tp->offset >= 0 ? tp->offset : 0;
        all = end <= 0 || done >= end;
    }
    rd_kafka_topic_partition_list_destroy(c);
    return all;
}

/* Payments must know the customers and inventory the stock before orders come:
 * they are on other topics, so nothing else orders them. */
static int wait_setup_read(load *l)
{
    static const struct {
        const char *service, *topic;
    } needs[] = {{"payments", "customers"}, {"inventory", "inventory"}};
    rd_kafka_t *rk = NULL;
    int64_t deadline = ev_mono_ms() + 30000;
    int rc = cli_kafka_new(l->ctx, RD_KAFKA_PRODUCER, NULL, &rk);
    for (size_t i = 0; rc == CLI_OK && i < 2; i++) {
        char group[256], topic[CLI_TOPIC_MAX];
        cli_service_group(l->ctx, needs[i].service, group, sizeof(group));
        cli_topic(l->ctx, needs[i].topic, topic);
        while (!group_read_all(l, rk, group, topic)) {
            if (ev_mono_ms() > deadline) {
                rc = cli_fail(l->ctx,
                              "group %s has not read %s after 30 s; are the "
                              "services running? (`choreo watch`)",
                              group, topic);
                break;
            }
            usleep(200 * 1000);
        }
    }
    if (rk != NULL)
        rd_kafka_destroy(rk);
    return rc;
}

/* ---- outcomes ---- */

static long order_index(const load *l, const char *subject)
{
    char prefix[32];
    long idx;
    int n = snprintf(prefix, sizeof(prefix), "ld-%s-o", l->run);
    if (n < 0 || strncmp(subject, prefix, (size_t)n) != 0 ||
        !cli_parse_long(subject + n, 0, l->orders - 1, &idx))
        return -1;
    return idx;
}

static void apply(load *l, const ev_envelope *e)
{
    long i = order_index(l, e->subject);
    if (i < 0)
        return;
    order_state *s = &l->st[i];
    if (strcmp(e->type, "order.confirmed") == 0 && s->confirmed_ms == 0) {
        s->confirmed_ms = ev_time_parse(e->time);
        s->seen_mono = ev_mono_ms();
        l->n_confirmed++;
        return;
    }
    static const char *const ends[] = {"order.completed", "order.rejected",
                                       "order.cancelled"};
    for (size_t k = 0; k < 3; k++) {
        if (strcmp(e->type, ends[k]) != 0 || s->end != NULL)
            continue;
        s->end = ends[k];
        l->n_end++;
        l->n_completed += k == 0;
        l->n_rejected += k == 1;
        l->n_cancelled += k == 2;
        l->t_last_end = ev_mono_ms();
    }
}

static void drain(load *l, cli_reader *r, int timeout_ms)
{
    rd_kafka_message_t *m = NULL;
    while (cli_reader_next(r, timeout_ms, &m) == CLI_READ_MSG) {
        ev_envelope e = {0};
        ev_error err;
        if (ev_binding_parse_message(&e, m, NULL, &err) == 0)
            apply(l, &e);
        ev_envelope_clear(&e);
        rd_kafka_message_destroy(m);
        m = NULL;
        timeout_ms = 0;
    }
}

static int place_orders(load *l, cli_reader *r)
{
    char oid[64], cid[64], sku[64];
    l->t_start = ev_mono_ms();
    for (long i = 0; i < l->orders; i++) {
        if (l->rate > 0) {
            int64_t due = l->t_start + (int64_t)((double)i * 1000.0 / (double)l->rate);
            while (ev_mono_ms() < due)
                drain(l, r, (int)(due - ev_mono_ms()));
        }
        snprintf(oid, sizeof(oid), "ld-%s-o%ld", l->run, i);
        snprintf(cid, sizeof(cid), "ld-%s-c%ld", l->run, i % l->customers);
        snprintf(sku, sizeof(sku), "ld-%s-s%ld", l->run, (i / l->customers) % l->skus);
        json_t *data =
            json_pack("{s:s, s:s, s:[{s:s, s:i, s:i}], s:i, s:s}", "order_id", oid,
                      "customer_id", cid, "items", "sku", sku, "qty", 1,
                      "unit_price_cents", 100, "total_cents", 100, "currency", "EUR");
        l->st[i].sent_mono = ev_mono_ms();
        if (send_event(l, "order.placed", data, &l->st[i].placed_ms) != CLI_OK)
            return CLI_FAIL;
        ev_producer_poll(l->p, 0);
        if (i % 256 == 0)
            drain(l, r, 0);
    }
    ev_error err;
    if (ev_producer_flush(l->p, 60000, &err) != 0)
        return cli_fail(l->ctx, "placing orders: %s", err.text);
    l->t_placed = ev_mono_ms();
    return CLI_OK;
}

/* ---- report ---- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t pct(const int64_t *v, size_t n, double q)
{
    if (n == 0)
        return -1;
    size_t k = (size_t)ceil(q * (double)n);
    return v[k == 0 ? 0 : k - 1];
}

static json_t *latency_json(int64_t *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_i64);
    return json_pack("{s:I, s:I, s:I, s:I, s:I}", "count", (json_int_t)n, "p50_ms",
                     (json_int_t)pct(v, n, 0.50), "p90_ms", (json_int_t)pct(v, n, 0.90),
                     "p99_ms", (json_int_t)pct(v, n, 0.99), "max_ms",
                     (json_int_t)pct(v, n, 1.0));
}

static json_t *report_json(load *l)
{
    int64_t *ev = calloc((size_t)l->orders + 1, sizeof(int64_t));
    int64_t *wall = calloc((size_t)l->orders + 1, sizeof(int64_t));
    size_t n = 0;
    for (long i = 0; ev != NULL && wall != NULL && i < l->orders; i++) {
        if (l->st[i].confirmed_ms == 0)
            continue;
        ev[n] = l->st[i].confirmed_ms - l->st[i].placed_ms;
        wall[n++] = l->st[i].seen_mono - l->st[i].sent_mono;
    }
    int64_t end = l->t_last_end ? l->t_last_end : ev_mono_ms();
    double secs = (double)(end - l->t_start) / 1000.0;
    json_t *o = json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:o, s:o}", "run", l->run,
        "placed", (json_int_t)l->orders, "confirmed", (json_int_t)l->n_confirmed,
        "completed", (json_int_t)l->n_completed, "rejected", (json_int_t)l->n_rejected,
        "cancelled", (json_int_t)l->n_cancelled, "unfinished",
        (json_int_t)((size_t)l->orders - l->n_end), "seconds", secs, "place_rate",
        (double)l->orders * 1000.0 / (double)(l->t_placed - l->t_start + 1),
        "completed_per_s", secs > 0 ? (double)l->n_completed / secs : 0.0,
        "latency_placed_confirmed", latency_json(ev, n), "wall_latency_placed_confirmed",
        latency_json(wall, n));
    free(ev);
    free(wall);
    return o;
}

static void print_latency(const char *label, const json_t *v)
{
    printf("  %-32s %8lld %8lld %8lld %8lld\n", label,
           (long long)json_integer_value(json_object_get(v, "p50_ms")),
           (long long)json_integer_value(json_object_get(v, "p90_ms")),
           (long long)json_integer_value(json_object_get(v, "p99_ms")),
           (long long)json_integer_value(json_object_get(v, "max_ms")));
}

static void print_report(const json_t *o)
{
#define I(k) ((long long)json_integer_value(json_object_get(o, k)))
    printf("load run %s\n", json_string_value(json_object_get(o, "run")));
    printf("  placed %lld (%.0f/s), confirmed %lld, completed %lld, rejected %lld, "
           "cancelled %lld, unfinished %lld\n",
           I("placed"), json_real_value(json_object_get(o, "place_rate")), I("confirmed"),
           I("completed"), I("rejected"), I("cancelled"), I("unfinished"));
    printf("  %.2f s from the first order placed to the last outcome: %.1f orders "
           "completed/s\n",
           json_real_value(json_object_get(o, "seconds")),
           json_real_value(json_object_get(o, "completed_per_s")));
    printf("\n  %-32s %8s %8s %8s %8s\n", "latency (ms)", "p50", "p90", "p99", "max");
    print_latency("placed->confirmed (event time)",
                  json_object_get(o, "latency_placed_confirmed"));
    print_latency("placed->confirmed (wall)",
                  json_object_get(o, "wall_latency_placed_confirmed"));
#undef I
}

/* ---- main ---- */

static int parse_args(cli_ctx *ctx, int argc, char **argv, load *l)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"orders", required_argument, NULL, 'n'},
        {"rate", required_argument, NULL, 'r'},
        {"customers", required_argument, NULL, OPT_CUSTOMERS},
        {"skus", required_argument, NULL, OPT_SKUS},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {NULL, 0, NULL, 0},
    };
    int c, r;
    while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "n:r:", opts, NULL)) != -1) {
        long *target = c == 'n'             ? &l->orders
                       : c == 'r'           ? &l->rate
                       : c == OPT_CUSTOMERS ? &l->customers
                       : c == OPT_SKUS      ? &l->skus
                                            : NULL;
        if (target != NULL) {
            if (!cli_parse_long(optarg, c == 'r' ? 0 : 1, 10000000L, target))
                return cli_usage_error(ctx, "bad number '%s'", optarg);
        } else if (c == OPT_TIMEOUT) {
            if (!cli_parse_duration(optarg, &l->timeout_ms) || l->timeout_ms == 0)
                return cli_usage_error(ctx, "--timeout wants a duration like 60s");
        } else {
            r = cli_common_opt(ctx, c, optarg);
            if (r != CLI_CONTINUE)
                return r;
        }
    }
    if (optind != argc)
        return cli_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
    if (l->orders == 0)
        return cli_usage_error(ctx, "--orders N is required");
    return CLI_CONTINUE;
}

static int run(load *l)
{
    char topic[CLI_TOPIC_MAX];
    char *topics[] = {topic, NULL};
    cli_reader *r = NULL;
    ev_error err;
    cli_topic(l->ctx, "orders", topic);
    if (ev_producer_new(&l->p, l->ctx->cfg.brokers, "choreo-load", on_delivery, l,
                        &err) != 0)
        return cli_fail(l->ctx, "producer: %s", err.text);
    /* A producer's first records to a topic wait for its metadata: load it
     * now so that the first orders' latency is not that wait. */
    char t_cust[CLI_TOPIC_MAX], t_inv[CLI_TOPIC_MAX];
    cli_topic(l->ctx, "customers", t_cust);
    cli_topic(l->ctx, "inventory", t_inv);
    const char *const warm[] = {topic, t_cust, t_inv, NULL};
    ev_producer_warm(l->p, warm, 5000);
    int rc = setup_reference_data(l);
    if (rc == CLI_OK)
        rc = wait_setup_read(l);
    /* From a second ago: the reader is positioned before the first order. */
    cli_reader_opts ro = {
        .topics = topics, .start = CLI_START_TIME, .since_ms = ev_now_ms() - 1000};
    if (rc == CLI_OK)
        rc = cli_reader_open(l->ctx, &ro, &r);
    if (rc == CLI_OK)
        rc = place_orders(l, r);
    int64_t deadline = ev_mono_ms() + l->timeout_ms;
    while (rc == CLI_OK && l->n_end < (size_t)l->orders && ev_mono_ms() < deadline)
        drain(l, r, 200);
    cli_reader_free(r);
    ev_producer_free(l->p);
    return rc;
}

int cli_load(cli_ctx *ctx, int argc, char **argv)
{
    load l = {.ctx = ctx, .customers = 10, .skus = 10, .timeout_ms = 120000};
    char uuid[EV_UUID_LEN];
    ctx->usage = usage;
    int rc = parse_args(ctx, argc, argv, &l);
    if (rc != CLI_CONTINUE)
        return rc;
    if (cli_contract(ctx) == NULL || cli_schemas(ctx) == NULL)
        return CLI_FAIL;
    rd_kafka_t *probe = NULL;
    if (cli_kafka_new(ctx, RD_KAFKA_PRODUCER, NULL, &probe) != CLI_OK)
        return CLI_FAIL;
    rd_kafka_destroy(probe);
    ev_uuid4(uuid);
    snprintf(l.run, sizeof(l.run), "%.8s", uuid);
    l.st = calloc((size_t)l.orders, sizeof(*l.st));
    if (l.st == NULL)
        return cli_fail(ctx, "out of memory");
    rc = run(&l);
    if (rc == CLI_OK) {
        json_t *o = report_json(&l);
        if (ctx->json)
            cli_print_json(o);
        else
            print_report(o);
        json_decref(o);
        if (l.n_end < (size_t)l.orders)
            rc = cli_fail(ctx,
                          "%zu of %ld orders did not end within --timeout; see "
                          "`choreo watch` and `choreo trace ld-%s-o<N>`",
                          (size_t)l.orders - l.n_end, l.orders, l.run);
    }
    free(l.st);
    return rc;
}
