/* SPDX-License-Identifier: MIT */
/* Error codes and the caller-owned error record every events/ function fills.
 * Action functions return 0 or a negative EV_E* code; text says what happened. */
#ifndef EV_ERROR_H
#define EV_ERROR_H

#include <stdarg.h>

enum {
    EV_OK = 0,
    EV_EINVAL = -1,     /* bad argument or usage */
    EV_ENOMEM = -2,     /* allocation failed */
    EV_EPARSE = -3,     /* malformed JSON */
    EV_ETOOBIG = -4,    /* record larger than the limit */
    EV_EDEPTH = -5,     /* nesting deeper than the limit */
    EV_EDUPKEY = -6,    /* duplicate object key */
    EV_EUTF8 = -7,      /* invalid UTF-8 */
    EV_EATTR = -8,      /* envelope attribute missing or mistyped */
    EV_ESPEC = -9,      /* specversion is not 1.0 */
    EV_ESCHEMA = -10,   /* data does not match its schema */
    EV_EUNKNOWN = -11,  /* unknown event type or schema */
    EV_EIO = -12,       /* file system error */
    EV_ESTORE = -13,    /* SQLite error */
    EV_EBUS = -14,      /* Kafka error */
    EV_ERETRY = -15,    /* transient failure: try again later */
    EV_ETIMEOUT = -16,  /* deadline passed */
    EV_ENOTFOUND = -17, /* no such thing */
};

#define EV_ERROR_TEXT 160

typedef struct ev_error {
    int code;
    char text[EV_ERROR_TEXT];
} ev_error;

/* Fills err (may be NULL) with code and a printf-style message; returns code.
 * A message longer than the buffer is truncated with "...". */
int ev_error_set(ev_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clears err to EV_OK and an empty text. */
void ev_error_clear(ev_error *err);

/* Short lowercase name of a code ("parse", "too_big", ...); static storage. */
const char *ev_error_name(int code);

#endif
