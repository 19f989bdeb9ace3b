/* SPDX-License-Identifier: MIT */
/* choreo watch: the system's consumer groups sampled over a sliding window —
 * members, assignment, committed vs end offsets, lag, rate, and a Burrow-like
 * status per group: OK, WARN (lag growing), STALL (no progress), STOP. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "envelope.h"

static const char usage[] =
    "usage: choreo watch [--group G] [--interval D] [--window D] [--once] [--json]\n"
    "\n"
    "Samples every consumer group of the system (ids starting with the topic prefix;\n"
    "with no prefix, the groups named like the services) or just --group G, and\n"
    "shows state, members and their assignment, committed and end offset and lag\n"
    "per partition, the consume rate and a status over a sliding window of samples:\n"
    "  OK     lag is 0, or the group is making progress\n"
    "  WARN   lag grew at every sample of the window\n"
    "  STALL  lag > 0 and a partition's committed offset did not move in the window\n"
    "  STOP   lag > 0 and the group has no members\n"
    "Services commit offsets to Kafka every 5 s, so STALL and WARN are only judged\n"
    "over windows of 5.5 s or more. On a terminal the screen refreshes every "
    "--interval.\n"
    "With --once, samples are taken over one --window (a sample every --interval,\n"
    "at least two) and printed once; exit 1 when a group is STOP or STALL.\n"
    "\n"
    "Options:\n"
    "  -g, --group G          only this group (its id, or a service name)\n"
    "  -i, --interval D       time between samples (default 2s; 500ms with --once)\n"
    "  -w, --window D         the sliding window of the status (default 10s; 6s\n"
    "                         with --once)\n"
    "      --once             sample one window, print, exit\n" CLI_COMMON_HELP;

enum { OPT_ONCE = CLI_OPT_FIRST_LOCAL };

#define WIN_MAX 64
/* Services commit offsets every 5 s (auto.commit.interval.ms): STALL and WARN
 * need a window longer than that. */
#define STALL_MIN_MS 5500

typedef struct wpart {
    char topic[CLI_TOPIC_MAX];
    int32_t partition;
    char owner[320];
    int64_t committed[WIN_MAX]; /* -1 = never committed */
    int64_t end[WIN_MAX];
    int64_t low;
} wpart;

typedef struct wgroup {
    char id[256];
    char state[32];
    size_t n_members;
    json_t *members; /* [{id, client_id, host, assignment}] of the last sample */
    wpart *parts;
    size_t n_parts, cap_parts;
    bool present;
} wgroup;

typedef struct watch {
    cli_ctx *ctx;
    rd_kafka_t *rk;
    const char *only;
    int64_t interval_ms, window_ms;
    bool once;
    int64_t t[WIN_MAX]; /* sample times, monotonic ms */
    size_t n;           /* samples held */
    wgroup *groups;
    size_t n_groups;
} watch;

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

/* ---- membership of the system ---- */

static bool is_system_group(const cli_ctx *ctx, const char *group)
{
    const char *prefix = ctx->cfg.topic_prefix;
    if (prefix[0] != '\0')
        return strncmp(group, prefix, strlen(prefix)) == 0;
    const char *const *svc = ev_contract_services(ctx->contract);
    for (size_t i = 0; svc != NULL && svc[i] != NULL; i++)
        if (strcmp(svc[i], group) == 0)
            return true;
    return false;
}

/* The service whose group this is, or NULL. */
static const char *group_service(const cli_ctx *ctx, const char *group)
{
    const char *const *svc = ev_contract_services(ctx->contract);
    char id[256];
    for (size_t i = 0; svc != NULL && svc[i] != NULL; i++) {
        cli_service_group(ctx, svc[i], id, sizeof(id));
        if (strcmp(id, group) == 0)
            return svc[i];
    }
    return NULL;
}

/* ---- one sample ---- */

static wgroup *find_group(watch *w, const char *id)
{
    for (size_t i = 0; i < w->n_groups; i++)
        if (strcmp(w->groups[i].id, id) == 0)
            return &w->groups[i];
    wgroup *g = realloc(w->groups, (w->n_groups + 1) * sizeof(*g));
    if (g == NULL)
        return NULL;
    w->groups = g;
    g = &w->groups[w->n_groups++];
    memset(g, 0, sizeof(*g));
    snprintf(g->id, sizeof(g->id), "%s", id);
    return g;
}

static wpart *find_part(wgroup *g, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < g->n_parts; i++)
        if (g->parts[i].partition == partition && strcmp(g->parts[i].topic, topic) == 0)
            return &g->parts[i];
    if (g->n_parts == g->cap_parts) {
        size_t cap = g->cap_parts ? g->cap_parts * 2 : 16;
        wpart *p = realloc(g->parts, cap * sizeof(*p));
        if (p == NULL)
            return NULL;
        g->parts = p;
        g->cap_parts = cap;
    }
    wpart *p = &g->parts[g->n_parts++];
    memset(p, 0, sizeof(*p));
    snprintf(p->topic, sizeof(p->topic), "%s", topic);
    p->partition = partition;
    for (size_t i = 0; i < WIN_MAX; i++)
        p->committed[i] = p->end[i] = -2; /* not observed yet */
    return p;
}

static json_t *members_json(const cli_group *cg, wgroup *g)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < cg->n_members; i++) {
        const cli_member *m = &cg->members[i];
        json_t *asg = json_array();
        for (int j = 0; j < m->assigned->cnt; j++) {
            const rd_kafka_topic_partition_t *tp = &m->assigned->elems[j];
            char name[CLI_TOPIC_MAX + 16];
            snprintf(name, sizeof(name), "%s/%d", tp->topic, (int)tp->partition);
            json_array_append_new(asg, json_string(name));
            wpart *p = find_part(g, tp->topic, tp->partition);
            if (p != NULL)
                snprintf(p->owner, sizeof(p->owner), "%s@%s", m->client_id, m->host);
        }
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:o}", "id", m->id,
                                             "client_id", m->client_id, "host", m->host,
                                             "assignment", asg));
    }
    return arr;
}

/* Every partition the group reads: committed, assigned, its service's topics. */
static void collect_parts(watch *w, wgroup *g)
{
    rd_kafka_topic_partition_list_t *c = NULL;
    const char *svc = group_service(w->ctx, g->id);
    const char *const *topics =
        svc ? ev_contract_service_topics(w->ctx->contract, svc) : NULL;
    for (size_t i = 0; topics != NULL && topics[i] != NULL; i++) {
        char full[CLI_TOPIC_MAX];
        int n = 0;
        cli_topic(w->ctx, topics[i], full);
        if (cli_partition_count(w->ctx, w->rk, full, &n) != CLI_OK)
            continue;
        for (int32_t p = 0; p < n; p++)
            find_part(g, full, p);
    }
    for (size_t i = 0; i < g->n_parts; i++)
        g->parts[i].committed[w->n] = -1;
    if (cli_group_committed(w->ctx, w->rk, g->id, &c) != CLI_OK)
        return;
    for (int i = 0; i < c->cnt; i++) {
        wpart *p = find_part(g, c->elems[i].topic, c->elems[i].partition);
        if (p != NULL)
            p->committed[w->n] = c->elems[i].offset >= 0 ? c->elems[i].offset : -1;
    }
    rd_kafka_topic_partition_list_destroy(c);
}

/* End offsets at sample slot w->n; partitions first seen now get the same
 * values in the earlier slots (no change observed). */
static void sample_ends(watch *w, wgroup *g)
{
    for (size_t i = 0; i < g->n_parts; i++) {
        wpart *p = &g->parts[i];
        int64_t lo = 0, hi = -1;
        if (rd_kafka_query_watermark_offsets(w->rk, p->topic, p->partition, &lo, &hi,
                                             5000) == 0) {
            p->low = lo;
            p->end[w->n] = hi;
        } else {
            p->end[w->n] = w->n > 0 ? p->end[w->n - 1] : -1;
        }
        if (p->committed[w->n] == -2)
            p->committed[w->n] = -1;
        for (size_t k = 0; k < w->n; k++) {
            if (p->end[k] == -2)
                p->end[k] = p->end[w->n];
            if (p->committed[k] == -2)
                p->committed[k] = p->committed[w->n];
        }
    }
}

static void shift_window(watch *w, size_t keep)
{
    if (w->n < keep)
        return;
    size_t drop = w->n - keep + 1;
    memmove(w->t, w->t + drop, (w->n - drop) * sizeof(w->t[0]));
    for (size_t i = 0; i < w->n_groups; i++) {
        wgroup *g = &w->groups[i];
        for (size_t j = 0; j < g->n_parts; j++) {
            memmove(g->parts[j].committed, g->parts[j].committed + drop,
                    (w->n - drop) * sizeof(int64_t));
            memmove(g->parts[j].end, g->parts[j].end + drop,
                    (w->n - drop) * sizeof(int64_t));
        }
    }
    w->n -= drop;
}

static size_t window_slots(const watch *w)
{
    int64_t k = w->window_ms / (w->interval_ms > 0 ? w->interval_ms : 1) + 1;
    return (size_t)(k < 2 ? 2 : k > WIN_MAX ? WIN_MAX : k);
}

static int cmp_part(const void *a, const void *b)
{
    const wpart *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    return c != 0 ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

static int take_sample(watch *w)
{
    cli_group *gs = NULL;
    size_t n = 0;
    shift_window(w, window_slots(w));
    if (cli_groups_list(w->ctx, w->rk, w->only, is_system_group, &gs, &n) != CLI_OK)
        return CLI_FAIL;
    for (size_t i = 0; i < w->n_groups; i++)
        w->groups[i].present = false;
    for (size_t i = 0; i < n; i++) {
        wgroup *g = find_group(w, gs[i].id);
        if (g == NULL)
            break;
        g->present = true;
        snprintf(g->state, sizeof(g->state), "%s", gs[i].state);
        g->n_members = gs[i].n_members;
        for (size_t j = 0; j < g->n_parts; j++)
            g->parts[j].owner[0] = '\0';
        json_decref(g->members);
        g->members = members_json(&gs[i], g);
        collect_parts(w, g);
        sample_ends(w, g);
        qsort(g->parts, g->n_parts, sizeof(*g->parts), cmp_part);
    }
    cli_groups_free(gs, n);
    w->t[w->n++] = ev_mono_ms();
    return CLI_OK;
}

/* ---- status ---- */

static int64_t part_lag(const wpart *p, size_t k)
{
    int64_t from = p->committed[k] >= 0 ? p->committed[k] : p->low;
    return p->end[k] > from ? p->end[k] - from : 0;
}

static int64_t group_lag(const wgroup *g, size_t k)
{
    int64_t lag = 0;
    for (size_t i = 0; i < g->n_parts; i++)
        lag += part_lag(&g->parts[i], k);
    return lag;
}

static double group_rate(const watch *w, const wgroup *g)
{
    if (w->n < 2 || w->t[w->n - 1] <= w->t[0])
        return 0.0;
    int64_t moved = 0;
    for (size_t i = 0; i < g->n_parts; i++) {
        const wpart *p = &g->parts[i];
        if (p->committed[0] >= 0 && p->committed[w->n - 1] > p->committed[0])
            moved += p->committed[w->n - 1] - p->committed[0];
    }
    return (double)moved * 1000.0 / (double)(w->t[w->n - 1] - w->t[0]);
}

/* A partition with lag at every sample whose committed offset never moved. */
static const wpart *stalled_part(const watch *w, const wgroup *g)
{
    for (size_t i = 0; i < g->n_parts; i++) {
        const wpart *p = &g->parts[i];
        bool stuck = true;
        for (size_t k = 0; k < w->n && stuck; k++)
            stuck = part_lag(p, k) > 0 && p->committed[k] == p->committed[0];
        if (stuck)
            return p;
    }
    return NULL;
}

static bool lag_growing(const watch *w, const wgroup *g)
{
    for (size_t k = 1; k < w->n; k++)
        if (group_lag(g, k) < group_lag(g, k - 1))
            return false;
    return group_lag(g, w->n - 1) > group_lag(g, 0);
}

static const char *group_status(const watch *w, const wgroup *g, char *why, size_t cap)
{
    int64_t lag = group_lag(g, w->n - 1);
    const wpart *p;
    if (lag == 0) {
        snprintf(why, cap, "caught up");
        return "OK";
    }
    if (g->n_members == 0) {
        snprintf(why, cap, "no members while lag is %lld", (long long)lag);
        return "STOP";
    }
    int64_t span = w->n > 1 ? w->t[w->n - 1] - w->t[0] : 0;
    if (span < STALL_MIN_MS) {
        /* Offsets are committed every few seconds: a shorter window would
         * call every busy group stalled. */
        snprintf(why, cap, "lag %lld; window %.1f s too short to judge progress (< %d s)",
                 (long long)lag, (double)span / 1000.0, STALL_MIN_MS / 1000);
        return "OK";
    }
    p = stalled_part(w, g);
    if (p != NULL) {
        int n = snprintf(why, cap,
                         "%s/%d committed offset %lld not moving for %.1f s, lag %lld",
                         p->topic, (int)p->partition, (long long)p->committed[w->n - 1],
                         (double)(w->t[w->n - 1] - w->t[0]) / 1000.0,
                         (long long)part_lag(p, w->n - 1));
        (void)n;
        return "STALL";
    }
    if (lag_growing(w, g)) {
        snprintf(why, cap, "lag grew from %lld to %lld", (long long)group_lag(g, 0),
                 (long long)lag);
        return "WARN";
    }
    snprintf(why, cap, "consuming");
    return "OK";
}

/* ---- output ---- */

static json_t *group_json(const watch *w, const wgroup *g)
{
    char why[CLI_TOPIC_MAX + 200];
    const char *status = group_status(w, g, why, sizeof(why));
    json_t *parts = json_array();
    size_t k = w->n - 1;
    for (size_t i = 0; i < g->n_parts; i++) {
        const wpart *p = &g->parts[i];
        json_t *o =
            json_pack("{s:s, s:i, s:I, s:I, s:I, s:s?}", "topic", p->topic, "partition",
                      (int)p->partition, "committed", (json_int_t)p->committed[k], "end",
                      (json_int_t)p->end[k], "lag", (json_int_t)part_lag(p, k), "owner",
                      p->owner[0] ? p->owner : NULL);
        json_array_append_new(parts, o);
    }
    return json_pack("{s:s, s:s, s:i, s:O, s:o, s:I, s:f, s:s, s:s}", "group", g->id,
                     "state", g->state, "member_count", (int)g->n_members, "members",
                     g->members ? g->members : json_null(), "partitions", parts, "lag",
                     (json_int_t)group_lag(g, k), "rate", group_rate(w, g), "status",
                     status, "reason", why);
}

static json_t *watch_json(const watch *w)
{
    json_t *groups = json_array();
    for (size_t i = 0; i < w->n_groups; i++)
        if (w->groups[i].present)
            json_array_append_new(groups, group_json(w, &w->groups[i]));
    return json_pack("{s:o, s:I, s:i}", "groups", groups, "window_ms",
                     (json_int_t)(w->n > 1 ? w->t[w->n - 1] - w->t[0] : 0), "samples",
                     (int)w->n);
}

static const char *status_color(const char *status)
{
    return strcmp(status, "OK") == 0     ? CLI_GREEN
           : strcmp(status, "WARN") == 0 ? CLI_YELLOW
                                         : CLI_RED;
}

static void print_group(const watch *w, const json_t *g)
{
    cli_ctx *ctx = w->ctx;
    const char *status = json_string_value(json_object_get(g, "status"));
    printf("%s%-28s%s %-12s %7d %9lld %9.1f  %s%-5s%s %s\n", cli_color(ctx, CLI_BOLD),
           json_string_value(json_object_get(g, "group")), cli_color(ctx, CLI_RESET),
           json_string_value(json_object_get(g, "state")),
           (int)json_integer_value(json_object_get(g, "member_count")),
           (long long)json_integer_value(json_object_get(g, "lag")),
           json_real_value(json_object_get(g, "rate")),
           cli_color(ctx, status_color(status)), status, cli_color(ctx, CLI_RESET),
           json_string_value(json_object_get(g, "reason")));
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(g, "partitions"), i, p)
    {
        char tp[CLI_TOPIC_MAX + 16], committed[24];
        json_int_t c = json_integer_value(json_object_get(p, "committed"));
        if (c < 0 && json_integer_value(json_object_get(p, "end")) <= 0)
            continue; /* empty and never read: noise */
        snprintf(committed, sizeof(committed), "%lld", (long long)c);
        snprintf(tp, sizeof(tp), "%s/%d", json_string_value(json_object_get(p, "topic")),
                 (int)json_integer_value(json_object_get(p, "partition")));
        const char *owner = json_string_value(json_object_get(p, "owner"));
        printf("    %-30s committed %7s  end %7lld  lag %6lld  %s\n", tp,
               c < 0 ? "-" : committed,
               (long long)json_integer_value(json_object_get(p, "end")),
               (long long)json_integer_value(json_object_get(p, "lag")),
               owner ? owner : "(unassigned)");
    }
}

static void print_table(const watch *w, const json_t *all, bool screen)
{
    char now[EV_TIME_MAX];
    ev_time_format(now, ev_now_ms());
    if (screen)
        fputs("\033[H\033[2J", stdout);
    printf("choreo watch  brokers=%s  prefix=%s  %s  window %.1f s / %d samples\n",
           w->ctx->cfg.brokers,
           w->ctx->cfg.topic_prefix[0] ? w->ctx->cfg.topic_prefix : "-", now,
           (double)json_integer_value(json_object_get(all, "window_ms")) / 1000.0,
           (int)json_integer_value(json_object_get(all, "samples")));
    printf("%-28s %-12s %7s %9s %9s  %s\n", "GROUP", "STATE", "MEMBERS", "LAG", "RATE/s",
           "STATUS");
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(all, "groups"), i, g) print_group(w, g);
    if (json_array_size(json_object_get(all, "groups")) == 0)
        printf("(no consumer groups of this system yet; are the services running?)\n");
    fflush(stdout);
}

static bool any_bad(const json_t *all)
{
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(all, "groups"), i, g)
    {
        const char *s = json_string_value(json_object_get(g, "status"));
        if (strcmp(s, "STOP") == 0 || strcmp(s, "STALL") == 0)
            return true;
    }
    return false;
}

static void sleep_ms(int64_t ms)
{
    int64_t until = ev_mono_ms() + ms;
    while (!stop_flag && ev_mono_ms() < until)
        usleep(50 * 1000);
}

static int run_once(watch *w)
{
    int64_t start = ev_mono_ms();
    do {
        if (w->n > 0)
            sleep_ms(w->interval_ms);
        if (take_sample(w) != CLI_OK)
            return CLI_FAIL;
    } while (!stop_flag && (w->n < 2 || ev_mono_ms() - start < w->window_ms));
    json_t *all = watch_json(w);
    if (w->ctx->json)
        cli_print_json(all);
    else
        print_table(w, all, false);
    int rc = any_bad(all) ? CLI_FAIL : CLI_OK;
    json_decref(all);
    return rc;
}

static int run_live(watch *w)
{
    bool screen = !w->ctx->json && isatty(STDOUT_FILENO);
    while (!stop_flag) {
        if (take_sample(w) != CLI_OK)
            return CLI_FAIL;
        json_t *all = watch_json(w);
        if (w->ctx->json)
            cli_print_json(all);
        else
            print_table(w, all, screen);
        fflush(stdout);
        json_decref(all);
        sleep_ms(w->interval_ms);
    }
    return CLI_OK;
}

static bool group_exists(watch *w, const char *id)
{
    cli_group *gs = NULL;
    size_t n = 0;
    if (cli_groups_list(w->ctx, w->rk, id, NULL, &gs, &n) != CLI_OK)
        return false;
    cli_groups_free(gs, n);
    return n == 1;
}

/* --group G: the group of service G under the prefix, or G itself. */
static int resolve_group(watch *w, const char *name, char *out, size_t cap)
{
    cli_service_group(w->ctx, name, out, cap);
    if (group_exists(w, out))
        return CLI_OK;
    snprintf(out, cap, "%s", name);
    if (group_exists(w, out))
        return CLI_OK;
    return cli_fail(
        w->ctx, "no consumer group '%s' on %s; `choreo watch` lists the system's groups",
        name, w->ctx->cfg.brokers);
}

static void watch_free(watch *w)
{
    for (size_t i = 0; i < w->n_groups; i++) {
        json_decref(w->groups[i].members);
        free(w->groups[i].parts);
    }
    free(w->groups);
    if (w->rk != NULL)
        rd_kafka_destroy(w->rk);
}

static int parse_args(cli_ctx *ctx, int argc, char **argv, watch *w, const char **group)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"group", required_argument, NULL, 'g'},
        {"interval", required_argument, NULL, 'i'},
        {"window", required_argument, NULL, 'w'},
        {"once", no_argument, NULL, OPT_ONCE},
        {NULL, 0, NULL, 0},
    };
    int c, r;
    while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "g:i:w:", opts, NULL)) != -1) {
        if (c == 'g') {
            *group = optarg;
        } else if (c == 'i' || c == 'w') {
            int64_t *d = c == 'i' ? &w->interval_ms : &w->window_ms;
            if (!cli_parse_duration(optarg, d) || *d < 100)
                return cli_usage_error(
                    ctx, "-%c wants a duration of 100ms or more, not '%s'", c, optarg);
        } else if (c == OPT_ONCE) {
            w->once = true;
        } else {
            r = cli_common_opt(ctx, c, optarg);
            if (r != CLI_CONTINUE)
                return r;
        }
    }
    if (optind != argc)
        return cli_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
    if (w->interval_ms == 0)
        w->interval_ms = w->once ? 500 : 2000;
    if (w->window_ms == 0)
        w->window_ms = w->once ? 6000 : 10000;
    return CLI_CONTINUE;
}

int cli_watch(cli_ctx *ctx, int argc, char **argv)
{
    watch w = {.ctx = ctx};
    const char *group = NULL;
    char group_id[256];
    ctx->usage = usage;
    int rc = parse_args(ctx, argc, argv, &w, &group);
    if (rc != CLI_CONTINUE)
        return rc;
    if (cli_contract(ctx) == NULL)
        return CLI_FAIL;
    rc = cli_kafka_new(ctx, RD_KAFKA_PRODUCER, NULL, &w.rk);
    if (rc == CLI_OK && group != NULL) {
        rc = resolve_group(&w, group, group_id, sizeof(group_id));
        w.only = group_id;
    }
    if (rc == CLI_OK) {
        struct sigaction sa = {.sa_handler = on_signal};
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        rc = w.once ? run_once(&w) : run_live(&w);
    }
    watch_free(&w);
    return rc;
}
