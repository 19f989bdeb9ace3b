/* SPDX-License-Identifier: MIT */
/* Unit tests of the logfmt logger: line layout, where fields, quoting, levels,
 * truncation, and whole lines under concurrent writers. */
#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "envelope.h"
#include "log.h"

static int pipe_fds[2];

/* Sends log lines into a non-blocking pipe. */
static void capture(void)
{
    ck_assert_int_eq(pipe(pipe_fds), 0);
    fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
    ev_log_set_fd(pipe_fds[1]);
}

/* What one write produced, NUL-terminated; "" when nothing was written. */
static const char *captured(void)
{
    static char buf[EV_LOG_LINE * 2];
    ssize_t n = read(pipe_fds[0], buf, sizeof(buf) - 1);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

/* The line without its "ts=... " prefix, after checking the timestamp. */
static const char *after_ts(const char *line)
{
    ck_assert_msg(strncmp(line, "ts=", 3) == 0, "line: %s", line);
    const char *sp = strchr(line, ' ');
    ck_assert_ptr_nonnull(sp);
    char ts[EV_TIME_MAX] = {0};
    ck_assert_uint_lt((size_t)(sp - line - 3), sizeof(ts));
    memcpy(ts, line + 3, (size_t)(sp - line - 3));
    ck_assert_msg(ev_time_parse(ts) > 0, "ts %s", ts);
    ck_assert_uint_eq(strlen(ts), 24);
    return sp + 1;
}

START_TEST(line_has_fields_in_order)
{
    capture();
    ev_log_init("orders");
    ev_log_set_level(EV_LOG_INFO);
    ev_log_where w = {"orders", 2, 17, "e-1"};
    ev_log_at(EV_LOG_INFO, &w, "order confirmed", "order_id=%s attempt=%d", "o-1", 3);
    ck_assert_str_eq(after_ts(captured()),
                     "level=info service=orders msg=\"order confirmed\" topic=orders "
                     "partition=2 offset=17 event_id=e-1 order_id=o-1 attempt=3\n");
}
END_TEST

START_TEST(absent_where_fields_are_left_out)
{
    capture();
    ev_log_init("shipping");
    ev_log_where w = {NULL, -1, -1, "e-2"};
    ev_log_at(EV_LOG_WARN, &w, "skipped", NULL);
    ck_assert_str_eq(after_ts(captured()),
                     "level=warn service=shipping msg=skipped event_id=e-2\n");
    ev_log_where w2 = {"payments", 0, -1, NULL};
    ev_log_at(EV_LOG_ERROR, &w2, "x", NULL);
    ck_assert_str_eq(after_ts(captured()),
                     "level=error service=shipping msg=x topic=payments partition=0\n");
    ev_log(EV_LOG_INFO, "plain", NULL);
    ck_assert_str_eq(after_ts(captured()), "level=info service=shipping msg=plain\n");
}
END_TEST

START_TEST(levels_filter_lines)
{
    capture();
    ev_log_init("inventory");
    ev_log_set_level(EV_LOG_WARN);
    ev_log(EV_LOG_INFO, "hidden", NULL);
    ev_log(EV_LOG_DEBUG, "hidden", NULL);
    ck_assert_str_eq(captured(), "");
    ck_assert(ev_log_enabled(EV_LOG_ERROR));
    ck_assert(!ev_log_enabled(EV_LOG_INFO));
    ev_log(EV_LOG_ERROR, "shown", NULL);
    ck_assert_ptr_nonnull(strstr(captured(), "level=error"));
}
END_TEST

START_TEST(level_from_environment)
{
    capture();
    setenv("CHOREO_LOG_LEVEL", "debug", 1);
    ev_log_init("payments");
    ck_assert(ev_log_enabled(EV_LOG_DEBUG));
    ck_assert_str_eq(captured(), "");
    setenv("CHOREO_LOG_LEVEL", "loud", 1);
    ev_log_init("payments");
    ck_assert(!ev_log_enabled(EV_LOG_DEBUG));
    ck_assert(ev_log_enabled(EV_LOG_INFO));
    ck_assert_ptr_nonnull(strstr(captured(), "level=warn"));
    unsetenv("CHOREO_LOG_LEVEL");
}
END_TEST

static const struct {
    const char *in;
    int level;
} level_cases[] = {
    {"error", EV_LOG_ERROR},
    {"warn", EV_LOG_WARN},
    {"info", EV_LOG_INFO},
    {"debug", EV_LOG_DEBUG},
    {"INFO", -1},
    {"", -1},
    {"warning", -1},
    {NULL, -1},
};

START_TEST(level_parse_table)
{
    ck_assert_int_eq(ev_log_level_parse(level_cases[_i].in), level_cases[_i].level);
    if (level_cases[_i].level >= 0)
        ck_assert_str_eq(ev_log_level_name(level_cases[_i].level), level_cases[_i].in);
}
END_TEST

static const struct {
    const char *in;
    size_t cap;
    const char *out;
} quote_cases[] = {
    {"plain", 64, "plain"},
    {"o-1/x:y", 64, "o-1/x:y"},
    {"two words", 64, "\"two words\""},
    {"", 64, "\"\""},
    {"a=b", 64, "\"a=b\""},
    {"say \"hi\"", 64, "\"say \\\"hi\\\"\""},
    {"back\\slash", 64, "back\\slash"},
    {"back\\ slash", 64, "\"back\\\\ slash\""},
    {"line\nbreak", 64, "\"line\\nbreak\""},
    {"tab\there", 64, "\"tab\\there\""},
    {"bell\a", 64, "\"bell\\u0007\""},
    {"caf\xc3\xa9", 64, "caf\xc3\xa9"},
    {"long value here", 8, "\"long \""},
    {"plain-but-long", 6, "plain"},
    {"x y", 2, ""},
};

START_TEST(quote_table)
{
    char out[64];
    const char *r = ev_log_quote(out, quote_cases[_i].cap, quote_cases[_i].in);
    ck_assert_ptr_eq(r, out);
    ck_assert_str_eq(out, quote_cases[_i].out);
}
END_TEST

START_TEST(long_line_is_cut_whole)
{
    capture();
    ev_log_init("notifications");
    char *big = malloc(10000);
    memset(big, 'v', 9999);
    big[9999] = '\0';
    ev_log(EV_LOG_INFO, "big", "value=%s", big);
    const char *line = captured();
    ck_assert_uint_eq(strlen(line), EV_LOG_LINE);
    ck_assert_str_eq(line + EV_LOG_LINE - 4, "...\n");
    ev_log(EV_LOG_INFO, big, NULL); /* an over-long message is cut too */
    line = captured();
    ck_assert_uint_le(strlen(line), EV_LOG_LINE);
    ck_assert_int_eq(line[strlen(line) - 1], '\n');
    free(big);
}
END_TEST

#define THREADS 4
#define LINES 300

static void *writer(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < LINES; i++)
        ev_log(EV_LOG_INFO, "concurrent line", "thread=%d i=%d pad=%s", id, i,
               "0123456789012345678901234567890123456789");
    return NULL;
}

START_TEST(concurrent_lines_stay_whole)
{
    char path[] = "/tmp/check_log_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    fcntl(fd, F_SETFL, O_APPEND);
    ev_log_set_fd(fd);
    ev_log_init("orders");
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    FILE *f = fdopen(fd, "r");
    ck_assert_ptr_nonnull(f);
    rewind(f);
    char line[512];
    int n = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        int th, i;
        const char *rest = after_ts(line);
        ck_assert_msg(
            sscanf(rest,
                   "level=info service=orders msg=\"concurrent line\" thread=%d "
                   "i=%d pad=0123456789012345678901234567890123456789\n",
                   &th, &i) == 2,
            "mangled: %s", line);
        n++;
    }
    ck_assert_int_eq(n, THREADS * LINES);
    fclose(f);
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("format");
    tcase_add_test(tc, line_has_fields_in_order);
    tcase_add_test(tc, absent_where_fields_are_left_out);
    tcase_add_test(tc, levels_filter_lines);
    tcase_add_test(tc, level_from_environment);
    tcase_add_loop_test(tc, level_parse_table, 0,
                        sizeof(level_cases) / sizeof(level_cases[0]));
    tcase_add_loop_test(tc, quote_table, 0, sizeof(quote_cases) / sizeof(quote_cases[0]));
    tcase_add_test(tc, long_line_is_cut_whole);
    tcase_add_test(tc, concurrent_lines_stay_whole);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(log_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
