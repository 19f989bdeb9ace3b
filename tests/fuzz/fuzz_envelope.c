/* SPDX-License-Identifier: MIT */
/* Fuzz target: envelope parsing. The fast path against the jansson path it must
 * agree with, parse against parse_head and peek_type, limits, and a serialize
 * round trip. envelope.c is compiled in to reach its static jansson path. */
#include "../../events/envelope.c"

#include "fuzz.h"

static bool str_eq(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

/* Equal attributes and data (data ignored when !with_data). */
static bool same_envelope(const ev_envelope *a, const ev_envelope *b, bool with_data)
{
    if (!str_eq(a->id, b->id) || !str_eq(a->type, b->type) ||
        !str_eq(a->source, b->source) || !str_eq(a->subject, b->subject) ||
        !str_eq(a->time, b->time) || !str_eq(a->correlationid, b->correlationid) ||
        !str_eq(a->causationid, b->causationid))
        return false;
    if (!with_data || (a->data == NULL && b->data == NULL))
        return true;
    return a->data != NULL && b->data != NULL && json_equal(a->data, b->data);
}

static bool all_zero(const ev_envelope *e)
{
    const unsigned char *p = (const unsigned char *)e;
    for (size_t i = 0; i < sizeof(*e); i++)
        if (p[i] != 0)
            return false;
    return true;
}

/* What every failed parse promises: out zeroed, err filled with the same code. */
static void check_failure(int rc, const ev_envelope *out, const ev_error *err)
{
    FUZZ_CHECK(rc < 0, "rc %d", rc);
    FUZZ_CHECK(all_zero(out), "out not zeroed after error %d", rc);
    FUZZ_CHECK(err->code == rc, "err code %d, rc %d", err->code, rc);
    FUZZ_CHECK(memchr(err->text, '\0', sizeof(err->text)) != NULL, "text unterminated");
    FUZZ_CHECK(ev_env_utf8_valid(err->text, strlen(err->text)), "text not UTF-8: %s",
               err->text);
}

/* Whatever the fast path accepts, the jansson path accepts with an equal result. */
static void check_paths(const uint8_t *data, size_t size, int max_depth, bool build)
{
    ev_envelope fast, slow;
    ev_error err;
    memset(&fast, 0, sizeof(fast));
    memset(&slow, 0, sizeof(slow));
    bool fast_ok = size > 0 && ev_env_fast_parse(&fast, data, size, max_depth, build);
    int rc = jansson_parse(&slow, data, size, max_depth, build, &err);
    if (rc != 0)
        check_failure(rc, &slow, &err);
    if (fast_ok) {
        FUZZ_CHECK(rc == 0, "fast path accepts, jansson path says %d: %s", rc, err.text);
        FUZZ_CHECK(same_envelope(&fast, &slow, true), "the paths differ (depth %d)",
                   max_depth);
        FUZZ_CHECK(build || fast.data == NULL, "data built by the head-only fast path");
    } else {
        FUZZ_CHECK(all_zero(&fast), "fast path gave up without zeroing out");
    }
    ev_envelope_clear(&fast);
    ev_envelope_clear(&slow);
}

/* serialize(parse(x)) parses back equal, and is a fixed point. */
static void check_round_trip(const ev_envelope *e)
{
    char *out = NULL, *again = NULL;
    size_t len = 0, len2 = 0;
    ev_error err;
    int rc = ev_envelope_serialize(e, NULL, &out, &len, &err);
    FUZZ_CHECK(rc == 0 || rc == EV_ETOOBIG, "serialize: %d %s", rc, err.text);
    if (rc != 0)
        return;
    ev_envelope back;
    rc = ev_envelope_parse(&back, out, len, NULL, &err);
    FUZZ_CHECK(rc == 0, "serialized record does not parse: %s: %.*s", err.text,
               (int)(len < 400 ? len : 400), out);
    FUZZ_CHECK(same_envelope(e, &back, true), "round trip changed the envelope");
    rc = ev_envelope_serialize(&back, NULL, &again, &len2, &err);
    FUZZ_CHECK(rc == 0 && len2 == len && memcmp(out, again, len) == 0,
               "serialize is not stable: %.*s", (int)(len < 400 ? len : 400), out);
    ev_envelope_clear(&back);
    free(out);
    free(again);
}

/* Limits: what passes a stricter limit passes the default, and what passes
 * the default passes a looser one, with the same result. */
static void check_limits(const uint8_t *data, size_t size, const ev_envelope *def,
                         int def_rc)
{
    static const ev_limits limits[] = {{0, 4}, {64, 0}, {0, 100}};
    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        ev_envelope e;
        ev_error err;
        bool looser = limits[i].max_depth > ev_limits_default.max_depth;
        int rc = ev_envelope_parse(&e, data, size, &limits[i], &err);
        if (rc != 0)
            check_failure(rc, &e, &err);
        if (!looser && rc == 0)
            FUZZ_CHECK(def_rc == 0 && same_envelope(&e, def, true),
                       "passes limits %zu/%d but not the default (%d)",
                       limits[i].max_record, limits[i].max_depth, def_rc);
        if (looser && def_rc == 0)
            FUZZ_CHECK(rc == 0 && same_envelope(&e, def, true),
                       "passes the default but not limits %zu/%d (%d)",
                       limits[i].max_record, limits[i].max_depth, rc);
        ev_envelope_clear(&e);
    }
}

static void check_peek(const uint8_t *data, size_t size, const ev_envelope *e, int rc)
{
    char type[EV_TYPE_MAX];
    memset(type, 'x', sizeof(type));
    if (!ev_envelope_peek_type(data, size, type))
        return;
    size_t n = strnlen(type, sizeof(type));
    FUZZ_CHECK(n > 0 && n < sizeof(type), "peeked type of %zu bytes", n);
    if (rc == 0)
        FUZZ_CHECK(str_eq(type, e->type), "peeked \"%s\", parsed \"%s\"", type, e->type);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ev_envelope full, head;
    ev_error err, err2;
    int rc = ev_envelope_parse(&full, data, size, NULL, &err);
    int rc_head = ev_envelope_parse_head(&head, data, size, NULL, &err2);
    FUZZ_CHECK(rc == rc_head, "parse %d (%s), parse_head %d (%s)", rc, err.text, rc_head,
               err2.text);
    if (rc != 0) {
        check_failure(rc, &full, &err);
        check_failure(rc_head, &head, &err2);
    } else {
        FUZZ_CHECK(head.data == NULL, "parse_head built data");
        FUZZ_CHECK(same_envelope(&full, &head, false), "parse and parse_head differ");
        FUZZ_CHECK(full.id[0] && full.source[0] && full.type[0], "required attr empty");
        int64_t t;
        FUZZ_CHECK(full.time[0] == '\0' || ev_env_time_parse(full.time, &t),
                   "time \"%s\" accepted but not RFC 3339", full.time);
    }
    if (size <= ev_limits_default.max_record) {
        check_paths(data, size, ev_limits_default.max_depth, true);
        check_paths(data, size, ev_limits_default.max_depth, false);
        check_paths(data, size, 100, true);
    }
    check_limits(data, size, &full, rc);
    check_peek(data, size, &full, rc);
    if (rc == 0)
        check_round_trip(&full);
    ev_envelope_clear(&full);
    ev_envelope_clear(&head);
    return 0;
}
