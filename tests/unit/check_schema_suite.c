/* SPDX-License-Identifier: MIT */
/* Conformance: every case of the official JSON-Schema-Test-Suite draft7 files
 * (optional/ excluded) through ev_schema_validate and ev_schema_validate_doc. */
#include <check.h>
#include <dirent.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema.h"

#define DEFAULT_SUITE "/usr/share/json-schema-test-suite"
#define REMOTE_PREFIX "http://localhost:1234/"
#define METASCHEMA_URI "http://json-schema.org/draft-07/schema"

typedef struct tally {
    size_t cases, passed;
} tally;

static const char *suite_dir(void)
{
    const char *d = getenv("JSON_SCHEMA_TEST_SUITE");
    return d != NULL && d[0] != '\0' ? d : DEFAULT_SUITE;
}

/* tests/fixtures/<rel> of this checkout (EV_SCHEMA_DIR is <repo>/schemas). */
static void fixture_path(char *buf, size_t n, const char *rel)
{
    const char *dir = EV_SCHEMA_DIR;
    const char *slash = strrchr(dir, '/');
    int len = slash != NULL ? (int)(slash - dir) : 0;
    int k = snprintf(buf, n, "%.*s/tests/fixtures/%s", len, dir, rel);
    ck_assert(k > 0 && (size_t)k < n);
}

static bool run_case(ev_schema_set *s, const char *uri, json_t *schema, const json_t *t,
                     const char *where)
{
    const json_t *data = json_object_get(t, "data");
    int want = json_is_true(json_object_get(t, "valid")) ? 0 : EV_ESCHEMA;
    ev_error e1, e2;
    int r1 = ev_schema_validate(s, uri, data, &e1);
    int r2 = ev_schema_validate_doc(s, schema, data, &e2);
    if (r1 == want && r2 == want)
        return true;
    printf("FAIL %s | %s: want %d, validate %d (%s), validate_doc %d (%s)\n", where,
           json_string_value(json_object_get(t, "description")), want, r1,
           r1 ? e1.text : "", r2, r2 ? e2.text : "");
    return false;
}

static void run_group(json_t *meta, const char *remotes, const char *file, size_t gi,
                      json_t *g, tally *t)
{
    ev_schema_set *s = ev_schema_set_new();
    ck_assert_ptr_nonnull(s);
    ev_error err;
    ck_assert_int_eq(ev_schema_set_map_remote(s, REMOTE_PREFIX, remotes, &err), 0);
    ck_assert_msg(ev_schema_set_add(s, METASCHEMA_URI, meta, &err) == 0, "%s", err.text);
    char uri[PATH_MAX], where[PATH_MAX];
    snprintf(uri, sizeof(uri), "urn:suite:%s:%zu", file, gi);
    snprintf(where, sizeof(where), "%s | %s", file,
             json_string_value(json_object_get(g, "description")));
    json_t *schema = json_object_get(g, "schema");
    int rc = ev_schema_set_add(s, uri, schema, &err);
    if (rc != 0)
        printf("FAIL %s: add: %s\n", where, err.text);
    const json_t *tests = json_object_get(g, "tests");
    for (size_t i = 0; i < json_array_size(tests); i++) {
        t->cases++;
        if (rc == 0 && run_case(s, uri, schema, json_array_get(tests, i), where))
            t->passed++;
    }
    ev_schema_set_free(s);
}

static void run_file(json_t *meta, const char *dir, const char *remotes, const char *name,
                     tally *t)
{
    char path[PATH_MAX];
    int k = snprintf(path, sizeof(path), "%s/%s", dir, name);
    ck_assert(k > 0 && (size_t)k < sizeof(path));
    json_error_t jerr;
    json_t *groups = json_load_file(path, JSON_ALLOW_NUL, &jerr);
    ck_assert_msg(groups != NULL, "%s: %s", path, jerr.text);
    for (size_t i = 0; i < json_array_size(groups); i++)
        run_group(meta, remotes, name, i, json_array_get(groups, i), t);
    json_decref(groups);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted *.json names of dir (subdirectories such as optional/ excluded). */
static size_t list_json(const char *dir, char ***out)
{
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "no test suite at %s (set JSON_SCHEMA_TEST_SUITE)", dir);
    char **names = NULL;
    size_t n = 0;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len <= 5 || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        names = realloc(names, (n + 1) * sizeof(*names));
        ck_assert_ptr_nonnull(names);
        names[n] = strdup(e->d_name);
        ck_assert_ptr_nonnull(names[n]);
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof(*names), name_cmp);
    *out = names;
    return n;
}

START_TEST(draft7_non_optional_cases_all_pass)
{
    char dir[PATH_MAX], remotes[PATH_MAX], meta_path[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/tests/draft7", suite_dir());
    snprintf(remotes, sizeof(remotes), "%s/remotes", suite_dir());
    fixture_path(meta_path, sizeof(meta_path), "schema/draft-07-schema.json");
    json_error_t jerr;
    json_t *meta = json_load_file(meta_path, 0, &jerr);
    ck_assert_msg(meta != NULL, "%s: %s", meta_path, jerr.text);
    char **names;
    size_t n = list_json(dir, &names);
    tally t = {0, 0};
    for (size_t i = 0; i < n; i++) {
        run_file(meta, dir, remotes, names[i], &t);
        free(names[i]);
    }
    free(names);
    json_decref(meta);
    printf("draft7: %zu/%zu passed\n", t.passed, t.cases);
    fflush(stdout);
    ck_assert_uint_gt(t.cases, 0);
    ck_assert_uint_eq(t.passed, t.cases);
}
END_TEST

static Suite *schema_suite(void)
{
    Suite *s = suite_create("schema_suite");
    TCase *tc = tcase_create("draft7");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, draft7_non_optional_cases_all_pass);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(schema_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
