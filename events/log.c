/* SPDX-License-Identifier: MIT */
/* logfmt lines on stderr: ts, level, service, msg, then key=value pairs,
 * with topic/partition/offset/event_id whenever a record is involved. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "envelope.h"

static const char *log_service;
static atomic_int log_level = EV_LOG_INFO;
static atomic_int log_fd = 2;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

const char *ev_log_level_name(ev_log_level level)
{
    if ((int)level < 0 || (size_t)level >= sizeof(level_names) / sizeof(level_names[0]))
        return "unknown";
    return level_names[level];
}

int ev_log_level_parse(const char *s)
{
    for (size_t i = 0; s != NULL && i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcmp(s, level_names[i]) == 0)
            return (int)i;
    return -1;
}

void ev_log_init(const char *service)
{
    log_service = service;
    const char *env = getenv("CHOREO_LOG_LEVEL");
    int level = env && env[0] ? ev_log_level_parse(env) : EV_LOG_INFO;
    ev_log_set_level(level < 0 ? EV_LOG_INFO : (ev_log_level)level);
    if (level < 0) {
        char q[64];
        ev_log(EV_LOG_WARN, "unknown log level, using info", "value=%s",
               ev_log_quote(q, sizeof(q), env));
    }
}

void ev_log_set_level(ev_log_level level)
{
    atomic_store(&log_level, (int)level);
}

bool ev_log_enabled(ev_log_level level)
{
    return (int)level <= atomic_load(&log_level);
}

void ev_log_set_fd(int fd)
{
    atomic_store(&log_fd, fd);
}

static bool needs_quotes(const char *s)
{
    if (*s == '\0')
        return true;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == '=' || *p == '"' || *p == 0x7f)
            return true;
    return false;
}

/* The escaped form of c into esc (NUL-terminated); its length. */
static size_t escape_char(unsigned char c, char esc[8])
{
    switch (c) {
    case '"':
        return (size_t)snprintf(esc, 8, "\\\"");
    case '\\':
        return (size_t)snprintf(esc, 8, "\\\\");
    case '\n':
        return (size_t)snprintf(esc, 8, "\\n");
    case '\r':
        return (size_t)snprintf(esc, 8, "\\r");
    case '\t':
        return (size_t)snprintf(esc, 8, "\\t");
    default:
        if (c < 0x20 || c == 0x7f)
            return (size_t)snprintf(esc, 8, "\\u%04x", c);
        esc[0] = (char)c;
        esc[1] = '\0';
        return 1;
    }
}

const char *ev_log_quote(char *out, size_t cap, const char *s)
{
    if (out == NULL || cap == 0)
        return "";
    if (s == NULL)
        s = "";
    if (!needs_quotes(s)) {
        snprintf(out, cap, "%s", s);
        return out;
    }
    if (cap < 3) {
        out[0] = '\0';
        return out;
    }
    size_t n = 0;
    out[n++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        size_t k = escape_char(*p, esc);
        if (n + k + 2 > cap)
            break;
        memcpy(out + n, esc, k);
        n += k;
    }
    out[n++] = '"';
    out[n] = '\0';
    return out;
}

/* Appends to line at *n; on overflow *n sticks at cap. */
static void append(char *line, size_t cap, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void append(char *line, size_t cap, size_t *n, const char *fmt, ...)
{
    if (*n >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(line + *n, cap - *n, fmt, ap);
    va_end(ap);
    *n = k < 0 ? cap : *n + (size_t)k > cap ? cap : *n + (size_t)k;
}

static void write_all(const char *buf, size_t len)
{
    int fd = atomic_load(&log_fd);
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        buf += w;
        len -= (size_t)w;
    }
}

static void put_where(char *line, size_t cap, size_t *n, const ev_log_where *w)
{
    char q[512];
    if (w == NULL)
        return;
    if (w->topic != NULL)
        append(line, cap, n, " topic=%s", ev_log_quote(q, sizeof(q), w->topic));
    if (w->partition >= 0)
        append(line, cap, n, " partition=%d", (int)w->partition);
    if (w->offset >= 0)
        append(line, cap, n, " offset=%lld", (long long)w->offset);
    if (w->event_id != NULL)
        append(line, cap, n, " event_id=%s", ev_log_quote(q, sizeof(q), w->event_id));
}

static void vlog(ev_log_level level, const ev_log_where *where, const char *msg,
                 const char *kvfmt, va_list ap)
{
    char line[EV_LOG_LINE];
    const size_t cap = sizeof(line) - 1; /* room for the newline */
    size_t n = 0;
    char ts[EV_TIME_MAX], q[1024];
    ev_time_format(ts, ev_now_ms());
    append(line, cap, &n, "ts=%s level=%s", ts, ev_log_level_name(level));
    if (log_service != NULL)
        append(line, cap, &n, " service=%s", ev_log_quote(q, sizeof(q), log_service));
    append(line, cap, &n, " msg=%s", ev_log_quote(q, sizeof(q), msg ? msg : ""));
    put_where(line, cap, &n, where);
    if (kvfmt != NULL && kvfmt[0] != '\0' && n < cap) {
        line[n++] = ' ';
        int k = n < cap ? vsnprintf(line + n, cap - n, kvfmt, ap) : 0;
        n = k < 0 ? n : n + (size_t)k > cap ? cap : n + (size_t)k;
    }
    if (n >= cap) { /* truncated: mark it */
        n = cap;
        memcpy(line + n - 3, "...", 3);
    }
    line[n++] = '\n';
    write_all(line, n);
}

void ev_log(ev_log_level level, const char *msg, const char *kvfmt, ...)
{
    if (!ev_log_enabled(level))
        return;
    va_list ap;
    va_start(ap, kvfmt);
    vlog(level, NULL, msg, kvfmt, ap);
    va_end(ap);
}

void ev_log_at(ev_log_level level, const ev_log_where *where, const char *msg,
               const char *kvfmt, ...)
{
    if (!ev_log_enabled(level))
        return;
    va_list ap;
    va_start(ap, kvfmt);
    vlog(level, where, msg, kvfmt, ap);
    va_end(ap);
}
