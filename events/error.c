/* SPDX-License-Identifier: MIT */
/* Error codes and the caller-owned error record every events/ function fills.
 * Action functions return 0 or a negative EV_E* code; text says what happened. */
#include "error.h"

#include <stdio.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (RFC 3629), 0 when there is none. */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xbf;
    size_t len = c < 0x80                 ? 1
                 : c >= 0xc2 && c <= 0xdf ? 2
                 : c >= 0xe0 && c <= 0xef ? 3
                 : c >= 0xf0 && c <= 0xf4 ? 4
                                          : 0;
    if (c == 0xe0 || c == 0xf0)
        lo = c == 0xe0 ? 0xa0 : 0x90;
    if (c == 0xed || c == 0xf4)
        hi = c == 0xed ? 0x9f : 0x8f;
    if (len > 1 && (s[1] < lo || s[1] > hi))
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

/* Every byte that does not start a valid UTF-8 sequence becomes '?': a text
 * cut inside a character (here or by a %.*s of the caller), or quoting bad
 * input, stays text that JSON, headers and logs accept. */
static void utf8_scrub(char *text)
{
    unsigned char *s = (unsigned char *)text;
    while (*s != '\0') {
        size_t k = utf8_seq(s);
        if (k == 0)
            *s++ = '?';
        else
            s += k;
    }
}

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
    utf8_scrub(err->text);
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
