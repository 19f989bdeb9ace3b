/* SPDX-License-Identifier: MIT */
/* logfmt lines on stderr: ts, level, service, msg, then key=value pairs,
 * with topic/partition/offset/event_id whenever a record is involved. */
#ifndef EV_LOG_H
#define EV_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { EV_LOG_ERROR = 0, EV_LOG_WARN, EV_LOG_INFO, EV_LOG_DEBUG } ev_log_level;

/* Where a line is about; any field may be NULL / -1 to leave it out. */
typedef struct ev_log_where {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *event_id;
} ev_log_where;

/* Sets the service name printed on every line (borrowed, must outlive logging)
 * and the level from CHOREO_LOG_LEVEL (default info). */
void ev_log_init(const char *service);
void ev_log_set_level(ev_log_level level);
/* Parses "error|warn|info|debug"; returns -1 when unknown. */
int ev_log_level_parse(const char *s);
bool ev_log_enabled(ev_log_level level);

/* One line: msg is quoted as needed; kvfmt is a printf format of extra
 * "key=value" pairs (may be NULL). Values holding spaces or quotes must be
 * passed through ev_log_quote by the caller. */
void ev_log(ev_log_level level, const char *msg, const char *kvfmt, ...)
    __attribute__((format(printf, 3, 4)));
void ev_log_at(ev_log_level level, const ev_log_where *where, const char *msg,
               const char *kvfmt, ...) __attribute__((format(printf, 4, 5)));

/* Writes s as a logfmt value (quoted and escaped when needed) into out;
 * returns out. A value that does not fit is cut (still closed by a quote). */
const char *ev_log_quote(char *out, size_t cap, const char *s);

/* Lowercase name of a level ("info"); "unknown" when out of range. */
const char *ev_log_level_name(ev_log_level level);

/* Sends lines to fd instead of stderr (2); for tests. Each line is one
 * write(2) of at most EV_LOG_LINE bytes (longer lines end in "..."). */
void ev_log_set_fd(int fd);
#define EV_LOG_LINE 4096

#endif
