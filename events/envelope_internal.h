/* SPDX-License-Identifier: MIT */
/* Internals shared by the envelope's files (envelope*.c only): the attribute
 * table, UTF-8 checks, RFC 3339 parsing and the fast parser's entry point. */
#ifndef EV_ENVELOPE_INTERNAL_H
#define EV_ENVELOPE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envelope.h"

typedef struct attr_spec {
    const char *name;
    size_t off; /* offset of the buffer in ev_envelope */
    size_t cap;
    bool required;
} attr_spec;

/* Bytes in a JSON string: plain, or the ones that stop a plain run. */
enum { S_PLAIN, S_QUOTE, S_BSLASH, S_CTRL, S_HIGH };

extern const unsigned char ev_env_str_class[256];

/* Past the bytes of s that need no attention in a string (a quote, a backslash,
 * a control character or a byte above 0x7f stops it), 4 at a time (S_PLAIN is 0). */
static inline const unsigned char *ev_env_plain_run(const unsigned char *s,
                                                    const unsigned char *end)
{
    while (end - s >= 4 && (ev_env_str_class[s[0]] | ev_env_str_class[s[1]] |
                            ev_env_str_class[s[2]] | ev_env_str_class[s[3]]) == 0)
        s += 4;
    while (s < end && ev_env_str_class[*s] == S_PLAIN)
        s++;
    return s;
}

/* The string attributes ev_envelope keeps, in the order of the fast parser's
 * top-level names (envelope.c). */
#define EV_ENV_N_ATTRS 7
extern const attr_spec ev_env_attr_specs[EV_ENV_N_ATTRS];

/* Length of the well-formed UTF-8 sequence at s (n bytes left), 0 if none. */
size_t ev_env_utf8_seq(const unsigned char *s, size_t n);
bool ev_env_utf8_valid(const char *str, size_t n);

/* RFC 3339 time to Unix ms; false when s is not one (envelope_ids.c). */
bool ev_env_time_parse(const char *s, int64_t *out);

/* true: out is what the jansson path would give (data built only when build);
 * false: out is zeroed and the caller takes the jansson path (envelope_fast.c). */
bool ev_env_fast_parse(ev_envelope *out, const void *buf, size_t len, int max_depth,
                       bool build);

#endif
