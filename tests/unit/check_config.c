/* SPDX-License-Identifier: MIT */
/* Unit tests of the configuration: defaults per service, CHOREO_* variables,
 * flags overriding them, strict numbers with errors that name the setting. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"

static const char *const all_vars[] = {
    "CHOREO_BROKERS",
    "CHOREO_TOPIC_PREFIX",
    "CHOREO_DATA_DIR",
    "CHOREO_SCHEMA_DIR",
    "CHOREO_HTTP_ADDR",
    "CHOREO_SQLITE_SYNC",
    "CHOREO_LOG_LEVEL",
    "CHOREO_ORDER_TIMEOUT_MS",
    "CHOREO_DISPATCH_DELAY_MS",
    "CHOREO_MAX_RECORD",
    "CHOREO_MAX_ATTEMPTS",
    "CHOREO_RETRY_BACKOFF_MS",
    "CHOREO_BATCH_SIZE",
    "CHOREO_INBOX_TTL_MS",
    "CHOREO_TOPIC_PARTITIONS",
    "CHOREO_TOPIC_REPLICATION",
    "CHOREO_STORE",
    "CHOREO_STORE_SCHEMA",
};

static void clean_env(void)
{
    for (size_t i = 0; i < sizeof(all_vars) / sizeof(all_vars[0]); i++)
        unsetenv(all_vars[i]);
}

static const struct {
    const char *service;
    const char *data_dir;
    const char *http_addr;
} default_cases[] = {
    {"orders", "var/orders", "127.0.0.1:9101"},
    {"inventory", "var/inventory", "127.0.0.1:9102"},
    {"payments", "var/payments", "127.0.0.1:9103"},
    {"shipping", "var/shipping", "127.0.0.1:9104"},
    {"notifications", "var/notifications", "127.0.0.1:9105"},
    {"auditor", "var/auditor", ""},
    {NULL, "var/choreo", ""},
};

START_TEST(defaults_per_service)
{
    clean_env();
    ev_config c;
    ev_error err;
    ck_assert_int_eq(ev_config_from_env(&c, default_cases[_i].service, &err), 0);
    ck_assert_str_eq(c.service,
                     default_cases[_i].service ? default_cases[_i].service : "");
    ck_assert_str_eq(c.data_dir, default_cases[_i].data_dir);
    ck_assert_str_eq(c.http_addr, default_cases[_i].http_addr);
    ck_assert_str_eq(c.brokers, "127.0.0.1:9092");
    ck_assert_str_eq(c.topic_prefix, "");
    ck_assert_str_eq(c.schema_dir, EV_SCHEMA_DIR);
    ck_assert_str_eq(c.synchronous, "FULL");
    ck_assert_int_eq(c.log_level, EV_LOG_INFO);
    ck_assert_int_eq(c.order_timeout_ms, 30000);
    ck_assert_int_eq(c.dispatch_delay_ms, 1000);
    ck_assert_int_eq(c.max_record, 65536);
    ck_assert_int_eq(c.max_attempts, 5);
    ck_assert_int_eq(c.retry_backoff_ms, 200);
    ck_assert_int_eq(c.batch_size, 500);
    ck_assert_int_eq(c.inbox_ttl_ms, 7LL * 86400000);
    ck_assert_int_eq(c.topic_partitions, 3);
    ck_assert_int_eq(c.topic_replication, 0); /* min(3, brokers) when creating */
    ck_assert_str_eq(c.store, "sqlite");
    ck_assert_str_eq(c.store_schema,
                     default_cases[_i].service ? default_cases[_i].service : "choreo");
}
END_TEST

START_TEST(store_and_topic_settings)
{
    clean_env();
    setenv("CHOREO_TOPIC_PARTITIONS", "12", 1);
    setenv("CHOREO_TOPIC_REPLICATION", "2", 1);
    setenv("CHOREO_STORE", "postgresql://u:secret@db:5432/choreo", 1);
    setenv("CHOREO_STORE_SCHEMA", "orders_eu", 1);
    ev_config c;
    ev_error err;
    ck_assert_int_eq(ev_config_from_env(&c, "orders", &err), 0);
    ck_assert_int_eq(c.topic_partitions, 12);
    ck_assert_int_eq(c.topic_replication, 2);
    ck_assert_str_eq(c.store, "postgresql://u:secret@db:5432/choreo");
    ck_assert_str_eq(c.store_schema, "orders_eu");
    ck_assert_int_eq(ev_config_set(&c, "topic-partitions", "0", &err), EV_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.text, "--topic-partitions"));
    ck_assert_int_eq(ev_config_set(&c, "store", "", &err), EV_EINVAL);
    char longv[1100];
    memset(longv, 'x', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    memcpy(longv, "postgresql://u:pw@h/", 20);
    ck_assert_int_eq(ev_config_set(&c, "store", longv, &err), EV_EINVAL);
    ck_assert_ptr_null(strstr(err.text, "pw@")); /* the value is never echoed */
    clean_env();
}
END_TEST

START_TEST(environment_overrides_defaults)
{
    clean_env();
    setenv("CHOREO_BROKERS", "k1:9092,k2:9092", 1);
    setenv("CHOREO_TOPIC_PREFIX", "t-42-", 1);
    setenv("CHOREO_DATA_DIR", "/tmp/x", 1);
    setenv("CHOREO_SCHEMA_DIR", "/opt/schemas", 1);
    setenv("CHOREO_HTTP_ADDR", "", 1); /* "" = off */
    setenv("CHOREO_SQLITE_SYNC", "normal", 1);
    setenv("CHOREO_LOG_LEVEL", "debug", 1);
    setenv("CHOREO_ORDER_TIMEOUT_MS", "1500", 1);
    setenv("CHOREO_DISPATCH_DELAY_MS", "0", 1);
    setenv("CHOREO_MAX_RECORD", "131072", 1);
    setenv("CHOREO_MAX_ATTEMPTS", "3", 1);
    setenv("CHOREO_RETRY_BACKOFF_MS", "50", 1);
    setenv("CHOREO_BATCH_SIZE", "", 1); /* empty number = unset */
    setenv("CHOREO_INBOX_TTL_MS", "60000", 1);
    ev_config c;
    ev_error err;
    ck_assert_int_eq(ev_config_from_env(&c, "orders", &err), 0);
    ck_assert_str_eq(c.brokers, "k1:9092,k2:9092");
    ck_assert_str_eq(c.topic_prefix, "t-42-");
    ck_assert_str_eq(c.data_dir, "/tmp/x");
    ck_assert_str_eq(c.schema_dir, "/opt/schemas");
    ck_assert_str_eq(c.http_addr, "");
    ck_assert_str_eq(c.synchronous, "NORMAL");
    ck_assert_int_eq(c.log_level, EV_LOG_DEBUG);
    ck_assert_int_eq(c.order_timeout_ms, 1500);
    ck_assert_int_eq(c.dispatch_delay_ms, 0);
    ck_assert_int_eq(c.max_record, 131072);
    ck_assert_int_eq(c.max_attempts, 3);
    ck_assert_int_eq(c.retry_backoff_ms, 50);
    ck_assert_int_eq(c.batch_size, 500);
    ck_assert_int_eq(c.inbox_ttl_ms, 60000);
    clean_env();
}
END_TEST

START_TEST(flags_override_environment)
{
    clean_env();
    setenv("CHOREO_BATCH_SIZE", "10", 1);
    ev_config c;
    ev_error err;
    ck_assert_int_eq(ev_config_from_env(&c, "shipping", &err), 0);
    ck_assert_int_eq(c.batch_size, 10);
    static const char *const flags[][2] = {
        {"brokers", "b:1"},        {"topic-prefix", "p-"},     {"data-dir", "d"},
        {"schema-dir", "s"},       {"http-addr", ":0"},        {"log-level", "error"},
        {"order-timeout-ms", "7"}, {"dispatch-delay-ms", "8"}, {"max-record", "2048"},
        {"max-attempts", "9"},     {"retry-backoff-ms", "10"}, {"batch-size", "11"},
        {"sqlite-sync", "FULL"},   {"inbox-ttl-ms", "12000"},
    };
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        ck_assert_msg(ev_config_set(&c, flags[i][0], flags[i][1], &err) == 0, "%s: %s",
                      flags[i][0], err.text);
    ck_assert_str_eq(c.brokers, "b:1");
    ck_assert_str_eq(c.topic_prefix, "p-");
    ck_assert_str_eq(c.data_dir, "d");
    ck_assert_str_eq(c.schema_dir, "s");
    ck_assert_str_eq(c.http_addr, ":0");
    ck_assert_int_eq(c.log_level, EV_LOG_ERROR);
    ck_assert_int_eq(c.order_timeout_ms, 7);
    ck_assert_int_eq(c.dispatch_delay_ms, 8);
    ck_assert_int_eq(c.max_record, 2048);
    ck_assert_int_eq(c.max_attempts, 9);
    ck_assert_int_eq(c.retry_backoff_ms, 10);
    ck_assert_int_eq(c.batch_size, 11);
    ck_assert_str_eq(c.synchronous, "FULL");
    ck_assert_int_eq(c.inbox_ttl_ms, 12000);
    clean_env();
}
END_TEST

static const struct {
    const char *flag;
    const char *value;
    int code;
    const char *says;
} bad_flags[] = {
    {"batch-size", "abc", EV_EINVAL, "--batch-size: \"abc\" is not an integer"},
    {"batch-size", "12x", EV_EINVAL, "not an integer"},
    {"batch-size", " 12", EV_EINVAL, "not an integer"},
    {"batch-size", "+12", EV_EINVAL, "not an integer"},
    {"batch-size", "", EV_EINVAL, "not an integer"},
    {"batch-size", "1e3", EV_EINVAL, "not an integer"},
    {"batch-size", "0", EV_EINVAL, "--batch-size: 0 is out of range 1..100000"},
    {"batch-size", "-5", EV_EINVAL, "out of range"},
    {"max-attempts", "0", EV_EINVAL, "--max-attempts"},
    {"order-timeout-ms", "99999999999999999999", EV_EINVAL, "out of range"},
    {"order-timeout-ms", "0", EV_EINVAL, "out of range"},
    {"max-record", "100", EV_EINVAL, "out of range"},
    {"retry-backoff-ms", "-1", EV_EINVAL, "out of range"},
    {"log-level", "verbose", EV_EINVAL, "--log-level"},
    {"sqlite-sync", "OFF", EV_EINVAL, "FULL or NORMAL"},
    {"brokers", "", EV_EINVAL, "--brokers: must not be empty"},
    {"data-dir", "", EV_EINVAL, "--data-dir"},
    {"nonsense", "1", EV_ENOTFOUND, "--nonsense: not a configuration flag"},
    {"--brokers", "x", EV_ENOTFOUND, "not a configuration flag"},
};

START_TEST(bad_flag_values_are_rejected)
{
    clean_env();
    ev_config c, before;
    ev_error err;
    ck_assert_int_eq(ev_config_from_env(&c, "orders", &err), 0);
    before = c;
    int rc = ev_config_set(&c, bad_flags[_i].flag, bad_flags[_i].value, &err);
    ck_assert_int_eq(rc, bad_flags[_i].code);
    ck_assert_msg(strstr(err.text, bad_flags[_i].says) != NULL,
                  "text \"%s\" lacks \"%s\"", err.text, bad_flags[_i].says);
    ck_assert(memcmp(&c, &before, sizeof(c)) == 0); /* nothing half-applied */
}
END_TEST

static const struct {
    const char *var;
    const char *value;
} bad_env[] = {
    {"CHOREO_BATCH_SIZE", "lots"}, {"CHOREO_ORDER_TIMEOUT_MS", "30s"},
    {"CHOREO_MAX_RECORD", "64k"},  {"CHOREO_LOG_LEVEL", "trace"},
    {"CHOREO_SQLITE_SYNC", "yes"}, {"CHOREO_MAX_ATTEMPTS", "-1"},
    {"CHOREO_INBOX_TTL_MS", "1"},
};

START_TEST(bad_environment_names_the_variable)
{
    clean_env();
    setenv(bad_env[_i].var, bad_env[_i].value, 1);
    ev_config c;
    ev_error err;
    ck_assert_int_eq(ev_config_from_env(&c, "payments", &err), EV_EINVAL);
    ck_assert_msg(strncmp(err.text, bad_env[_i].var, strlen(bad_env[_i].var)) == 0, "%s",
                  err.text);
    clean_env();
}
END_TEST

START_TEST(too_long_values_are_rejected)
{
    clean_env();
    ev_config c;
    ev_error err;
    char longs[600];
    memset(longs, 'a', sizeof(longs) - 1);
    longs[sizeof(longs) - 1] = '\0';
    ck_assert_int_eq(ev_config_from_env(&c, longs, &err), EV_EINVAL);
    ck_assert_int_eq(ev_config_from_env(&c, "orders", &err), 0);
    ck_assert_int_eq(ev_config_set(&c, "brokers", longs, &err), EV_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.text, "longer than 511"));
    setenv("CHOREO_TOPIC_PREFIX", longs, 1);
    ck_assert_int_eq(ev_config_from_env(&c, "orders", &err), EV_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.text, "CHOREO_TOPIC_PREFIX"));
    clean_env();
}
END_TEST

START_TEST(topic_names_take_the_prefix)
{
    clean_env();
    ev_config c;
    ev_error err;
    char out[32];
    ck_assert_int_eq(ev_config_from_env(&c, "orders", &err), 0);
    ck_assert_int_eq(ev_config_topic(&c, "orders", out, sizeof(out), &err), 0);
    ck_assert_str_eq(out, "orders");
    ck_assert_int_eq(ev_config_set(&c, "topic-prefix", "t-1234-", &err), 0);
    ck_assert_int_eq(ev_config_topic(&c, "dlq.orders", out, sizeof(out), &err), 0);
    ck_assert_str_eq(out, "t-1234-dlq.orders");
    ck_assert_int_eq(ev_config_topic(&c, "notifications-and-more", out, 20, &err),
                     EV_EINVAL);
    ck_assert_int_eq(ev_config_topic(&c, "", out, sizeof(out), &err), EV_EINVAL);
    ck_assert_int_eq(ev_config_topic(&c, NULL, out, sizeof(out), &err), EV_EINVAL);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_loop_test(tc, defaults_per_service, 0,
                        sizeof(default_cases) / sizeof(default_cases[0]));
    tcase_add_test(tc, store_and_topic_settings);
    tcase_add_test(tc, environment_overrides_defaults);
    tcase_add_test(tc, flags_override_environment);
    tcase_add_loop_test(tc, bad_flag_values_are_rejected, 0,
                        sizeof(bad_flags) / sizeof(bad_flags[0]));
    tcase_add_loop_test(tc, bad_environment_names_the_variable, 0,
                        sizeof(bad_env) / sizeof(bad_env[0]));
    tcase_add_test(tc, too_long_values_are_rejected);
    tcase_add_test(tc, topic_names_take_the_prefix);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
