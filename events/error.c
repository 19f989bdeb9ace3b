/* SPDX-License-Identifier: MIT */
/* Error codes and the caller-owned error record every events/ function fills.
 * Action functions return 0 or a negative EV_E* code; text says what happened. */
#include "error.h"

#include <stdio.h>
#include <string.h>

int ev_error_set(ev_error *err, int code, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof(err->text))
        memcpy(err->text + sizeof(err->text) - 4, "...", 4);
    return code;
}

void ev_error_clear(ev_error *err)
{
    if (err == NULL)
        return;
    err->code = EV_OK;
    err->text[0] = '\0';
}

static const char *const names[] = {
    "ok",       "invalid",       "no_memory", "parse",     "too_big",
    "too_deep", "duplicate_key", "utf8",      "attribute", "specversion",
    "schema",   "unknown_type",  "io",        "store",     "bus",
    "retry",    "timeout",       "not_found",
};

const char *ev_error_name(int code)
{
    int i = -code;
    if (i < 0 || (size_t)i >= sizeof(names) / sizeof(names[0]))
        return "error";
    return names[i];
}
