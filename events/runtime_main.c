/* SPDX-License-Identifier: MIT */
/* A service's whole main() (ev_service_main): config from env and flags,
 * --help and --dump, SIGINT/SIGTERM, then ev_service_run. */
#include "runtime_internal.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static volatile sig_atomic_t main_stop;

static void on_signal(int sig)
{
    (void)sig;
    main_stop = 1;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: blocking calls return early */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    struct sigaction ign;
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, NULL);
}

static void usage(FILE *f, const char *name)
{
    fprintf(f,
            "usage: %s [options]\n"
            "Runs the %s service until SIGINT/SIGTERM.\n\n"
            "  --brokers HOSTS        CHOREO_BROKERS (127.0.0.1:9092)\n"
            "  --topic-prefix P       CHOREO_TOPIC_PREFIX\n"
            "  --data-dir DIR         CHOREO_DATA_DIR (var/%s)\n"
            "  --schema-dir DIR       CHOREO_SCHEMA_DIR\n"
            "  --http-addr ADDR       CHOREO_HTTP_ADDR (\"\" = off)\n"
            "  --log-level L          CHOREO_LOG_LEVEL: error, warn, info, debug\n"
            "  --sqlite-sync S        CHOREO_SQLITE_SYNC: FULL or NORMAL\n"
            "  --batch-size N  --max-attempts N  --retry-backoff-ms N  --max-record N\n"
            "  --inbox-ttl-ms N  --order-timeout-ms N  --dispatch-delay-ms N\n"
            "  --dump                 print the service's state as JSON and exit\n"
            "  --rebuild              rebuild an empty store from the topics, exit\n"
            "  --verify               rebuild into a scratch store, compare it with\n"
            "                         the live one and the published events\n"
            "  --help                 this text\n"
            "CHOREO_KAFKA_<property> sets any librdkafka property.\n"
            "Exit status: 0 ok, 1 failure (or --verify found a difference), 2 usage.\n",
            name, name, name);
}

typedef struct main_args {
    bool dump;
    bool help;
    bool rebuild;
    bool verify;
} main_args;

/* The flags without a value. */
static bool *bool_flag(main_args *a, const char *name)
{
    static const char *const names[] = {"dump", "help", "rebuild", "verify"};
    bool *flags[] = {&a->dump, &a->help, &a->rebuild, &a->verify};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(name, names[i]) == 0)
            return flags[i];
    return NULL;
}

/* GNU long flags, "--x v" and "--x=v"; 0, or 2 on a usage error. */
static int parse_args(ev_config *cfg, int argc, char **argv, main_args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            fprintf(stderr, "%s: unexpected argument %s\n", argv[0], arg);
            return 2;
        }
        char name[64];
        const char *eq = strchr(arg + 2, '=');
        size_t len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
        if (len >= sizeof(name)) {
            fprintf(stderr, "%s: unknown flag %.70s\n", argv[0], arg);
            return 2;
        }
        memcpy(name, arg + 2, len);
        name[len] = '\0';
        bool *flag = bool_flag(a, name);
        if (flag != NULL) {
            if (eq != NULL) {
                fprintf(stderr, "%s: --%s takes no value\n", argv[0], name);
                return 2;
            }
            *flag = true;
            continue;
        }
        const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (value == NULL) {
            fprintf(stderr, "%s: --%s needs a value\n", argv[0], name);
            return 2;
        }
        ev_error err = {0};
        if (ev_config_set(cfg, name, value, &err) != 0) {
            fprintf(stderr, "%s: %s\n", argv[0], err.text);
            return 2;
        }
    }
    return 0;
}

static int dump_state(const ev_service_def *def, const ev_config *cfg)
{
    ev_store *s = NULL;
    json_t *out = NULL;
    ev_error err = {0};
    int rc = ev_rt_open_store(&s, def, cfg, true, NULL, &err);
    if (rc == 0 && def->dump != NULL) {
        rc = def->dump(s, &out, &err);
    } else if (rc == 0) {
        int64_t ob = 0, tm = 0;
        rc = ev_store_outbox_count(s, &ob, &err);
        if (rc == 0)
            rc = ev_store_timers_count(s, &tm, &err);
        out = json_pack("{s:I,s:I}", "outbox", (json_int_t)ob, "timers", (json_int_t)tm);
    }
    if (rc == 0 && out != NULL) {
        json_dumpf(out, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
        fputc('\n', stdout);
        fflush(stdout);
    } else if (rc != 0) {
        fprintf(stderr, "%s: dump: %s\n", def->name, err.text);
    }
    json_decref(out);
    ev_store_close(s);
    return rc == 0 ? 0 : 1;
}

static int rebuild(const ev_service_def *def, const ev_config *cfg, bool verify)
{
    size_t differences = 0;
    ev_error err = {0};
    int rc = ev_service_rebuild(def, cfg, verify, &differences, &main_stop, &err);
    fflush(stdout);
    if (rc != 0) {
        fprintf(stderr, "%s: %s: %s\n", def->name, verify ? "verify" : "rebuild",
                err.text);
        return 1;
    }
    return differences > 0 ? 1 : 0;
}

int ev_service_main(const ev_service_def *def, int argc, char **argv)
{
    if (def == NULL || def->name == NULL)
        return 2;
    ev_log_init(def->name);
    ev_config cfg;
    ev_error err = {0};
    if (ev_config_from_env(&cfg, def->name, &err) != 0) {
        fprintf(stderr, "%s: %s\n", def->name, err.text);
        return 2;
    }
    main_args a = {0};
    int rc = parse_args(&cfg, argc, argv, &a);
    if (rc != 0)
        return rc;
    if (a.help) {
        usage(stdout, def->name);
        return 0;
    }
    ev_log_set_level((ev_log_level)cfg.log_level);
    if (a.dump + a.rebuild + a.verify > 1) {
        fprintf(stderr, "%s: --dump, --rebuild and --verify exclude each other\n",
                def->name);
        return 2;
    }
    if (a.dump)
        return dump_state(def, &cfg);
    install_signals();
    if (a.rebuild || a.verify)
        return rebuild(def, &cfg, a.verify);
    rc = ev_service_run(def, &cfg, &main_stop, &err);
    if (rc != 0) {
        char q[EV_ERROR_TEXT * 2];
        ev_log(EV_LOG_ERROR, "service failed", "error=%s reason=%s", ev_error_name(rc),
               ev_log_quote(q, sizeof(q), err.text));
        return 1;
    }
    return 0;
}
