/* SPDX-License-Identifier: MIT */
/* Failed records and timers: the retry backoff, retry or give up, and dead
 * letters to dlq.<service> with the original bytes, headers and the reason. */
#include "runtime_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define MAX_BACKOFF_MS 60000

/* Adds the record's own headers (string-valued ones) to obj. */
static void dlq_copy_headers(json_t *obj, const rd_kafka_message_t *m)
{
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    const char *name;
    const void *val;
    size_t size;
    for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &size) ==
                       RD_KAFKA_RESP_ERR_NO_ERROR;
         i++) {
        json_t *s = json_stringn(val ? val : "", val ? size : 0);
        if (s != NULL &&
            memchr(json_string_value(s), '\0', json_string_length(s)) == NULL)
            json_object_set_new(obj, name, s);
        else
            json_decref(s);
    }
}

static int dlq_write(ev_runtime *rt, const char *key, const void *value, size_t len,
                     json_t *headers, int code, const char *text, ev_error *err)
{
    char tbuf[EV_TIME_MAX];
    char ebuf[EV_ERROR_TEXT + 32];
    ev_time_format(tbuf, ev_now_ms());
    snprintf(ebuf, sizeof(ebuf), "%s: %s", ev_error_name(code), text);
    json_t *ej = json_string(ebuf);
    json_object_set_new(headers, "error", ej ? ej : json_string(ev_error_name(code)));
    json_object_set_new(headers, "service", json_string(rt->def->name));
    json_object_set_new(headers, "time", json_string(tbuf));
    char *hj = json_dumps(headers, JSON_COMPACT);
    if (hj == NULL)
        return ev_error_set(err, EV_ENOMEM, "dlq headers: out of memory");
    int rc =
        ev_store_outbox_add(rt->store, rt->dlq_topic, key, value, len, hj, NULL, err);
    free(hj);
    if (rc == 0) {
        rt->st.dead_lettered++;
        rt->relay_pending = true;
    }
    return rc;
}

/* A consumed record to dlq.<service>, same key, original bytes and headers. */
int ev_rt_dlq_record(ev_runtime *rt, const rd_kafka_message_t *m, int code,
                     const char *text, ev_error *err)
{
    json_t *h = json_object();
    if (h == NULL)
        return ev_error_set(err, EV_ENOMEM, "dlq: out of memory");
    dlq_copy_headers(h, m);
    char num[32];
    json_object_set_new(h, "original.topic", json_string(rd_kafka_topic_name(m->rkt)));
    snprintf(num, sizeof(num), "%" PRId32, m->partition);
    json_object_set_new(h, "original.partition", json_string(num));
    snprintf(num, sizeof(num), "%" PRId64, m->offset);
    json_object_set_new(h, "original.offset", json_string(num));
    char *key = m->key ? strndup(m->key, m->key_len) : NULL;
    int rc = dlq_write(rt, key, m->payload ? m->payload : "", m->payload ? m->len : 0, h,
                       code, text, err);
    free(key);
    json_decref(h);
    if (rc == 0) {
        ev_log_where w = {rd_kafka_topic_name(m->rkt), m->partition, m->offset, NULL};
        char q[EV_ERROR_TEXT * 2];
        ev_log_at(EV_LOG_WARN, &w, "dead-lettered", "dlq=%s error=%s reason=%s",
                  rt->dlq_topic, ev_error_name(code), ev_log_quote(q, sizeof(q), text));
    }
    return rc;
}

int ev_rt_dlq_timer(ev_runtime *rt, const ev_envelope *syn, int code, const char *text,
                    ev_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = ev_envelope_serialize(syn, NULL, &buf, &len, err);
    if (rc != 0)
        return rc;
    json_t *h = json_object();
    json_object_set_new(h, "original.topic", json_string("timer"));
    json_object_set_new(h, "timer.key", json_string(syn->subject));
    json_object_set_new(h, "timer.kind", json_string(syn->type));
    rc = dlq_write(rt, syn->subject, buf, len, h, code, text, err);
    json_decref(h);
    free(buf);
    return rc;
}

int64_t ev_rt_backoff_ms(const ev_config *cfg, int attempts)
{
    int64_t b = cfg->retry_backoff_ms > 0 ? cfg->retry_backoff_ms : 0;
    for (int i = 1; i < attempts && b < MAX_BACKOFF_MS; i++)
        b *= 2;
    return b > MAX_BACKOFF_MS ? MAX_BACKOFF_MS : b;
}

/* EV_ERETRY from a handler: hold the partition at this record, or give up. */
int ev_rt_retry_or_dlq(ev_runtime *rt, part_state *p, const rd_kafka_message_t *m,
                       int code, const ev_error *why, ev_error *err)
{
    if (rt->rebuild) { /* no consumer to hold: the rebuild stops */
        ev_error_set(err, code,
                     "%s [%" PRId32 "] at offset %" PRId64
                     " failed during the rebuild: %.120s",
                     rd_kafka_topic_name(m->rkt), m->partition, m->offset, why->text);
        return -1;
    }
    if (p->retry_offset != m->offset) {
        p->retry_offset = m->offset;
        p->attempts = 0;
    }
    p->attempts++;
    rt->st.retried++;
    if (p->attempts >= rt->cfg->max_attempts) {
        char text[EV_ERROR_TEXT];
        snprintf(text, sizeof(text), "gave up after %d attempts: %.120s", p->attempts,
                 why->text);
        p->retry_offset = -1;
        p->attempts = 0;
        return ev_rt_dlq_record(rt, m, code, text, err) == 0 ? 1 : -1;
    }
    p->hold = true;
    int64_t wait = ev_rt_backoff_ms(rt->cfg, p->attempts);
    p->resume_at = ev_mono_ms() + (wait > 0 ? wait : 1);
    ev_error e = {0};
    const char *topic = rd_kafka_topic_name(m->rkt);
    if (ev_consumer_pause(rt->cons, topic, m->partition, true, &e) != 0 ||
        ev_consumer_seek(rt->cons, topic, m->partition, m->offset, &e) != 0) {
        ev_log_where w = {topic, m->partition, m->offset, NULL};
        ev_log_at(EV_LOG_WARN, &w, "retry pause/seek failed", "error=%s", e.text);
    }
    ev_log_where w = {topic, m->partition, m->offset, NULL};
    ev_log_at(EV_LOG_INFO, &w, "retry scheduled", "attempt=%d backoff_ms=%" PRId64,
              p->attempts, wait);
    return 0;
}
