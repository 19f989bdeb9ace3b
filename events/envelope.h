/* SPDX-License-Identifier: MIT */
/* The CloudEvents 1.0 structured-mode envelope: build, derive, parse, serialize,
 * with the record limits of DESIGN.md; plus UUIDs and RFC 3339 time. */
#ifndef EV_ENVELOPE_H
#define EV_ENVELOPE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define EV_ID_MAX 64
#define EV_TYPE_MAX 64
#define EV_SOURCE_MAX 128
#define EV_SUBJECT_MAX 128
#define EV_TIME_MAX 32
#define EV_UUID_LEN 37 /* 36 chars + NUL */

typedef struct ev_limits {
    size_t max_record; /* bytes, default 65536 */
    int max_depth;     /* nesting levels, default 32 */
} ev_limits;

extern const ev_limits ev_limits_default;

typedef struct ev_envelope {
    char id[EV_ID_MAX];
    char type[EV_TYPE_MAX];
    char source[EV_SOURCE_MAX];
    char subject[EV_SUBJECT_MAX];  /* "" when absent */
    char time[EV_TIME_MAX];        /* "" when absent */
    char correlationid[EV_ID_MAX]; /* "" when absent */
    char causationid[EV_ID_MAX];   /* "" when absent */
    json_t *data;                  /* owned; NULL when absent */
} ev_envelope;

/* Parses a structured-mode record. Checks in this order: size (EV_ETOOBIG),
 * UTF-8 (EV_EUTF8), depth (EV_EDEPTH), JSON syntax (EV_EPARSE), duplicate keys
 * (EV_EDUPKEY), specversion (EV_ESPEC), required attributes id/source/type and
 * the types of all known attributes (EV_EATTR). lim may be NULL for defaults.
 * A missing specversion is EV_ESPEC; a record that is valid JSON but not an
 * object is EV_EPARSE. Depth counts objects and arrays, the envelope object
 * itself being level 1; a zero field of lim means its default. Optional
 * attributes may be "" (same as absent); time, when set, must be RFC 3339.
 * On success out owns its data; release with ev_envelope_clear. On error out
 * is zeroed and err->text names the offending attribute. */
int ev_envelope_parse(ev_envelope *out, const void *buf, size_t len, const ev_limits *lim,
                      ev_error *err);

/* As ev_envelope_parse, with the same checks and errors, but out->data stays
 * NULL: the data value is checked (syntax, UTF-8, depth, duplicate keys)
 * without being built. For records that are only counted or skipped. */
int ev_envelope_parse_head(ev_envelope *out, const void *buf, size_t len,
                           const ev_limits *lim, ev_error *err);

/* Reads the top-level "type" attribute of a structured-mode record without
 * parsing the rest: scans top-level members only (a "type" inside data or
 * inside a string is never taken) and stops at the first "type". false when
 * it cannot say (not an object, escapes in a key or in the value, not a
 * string, empty or over EV_TYPE_MAX - 1 bytes, malformed before it). true
 * says nothing about the rest of the record: parse it before trusting it. */
bool ev_envelope_peek_type(const void *buf, size_t len, char type[EV_TYPE_MAX]);

/* A new event made by a person or the CLI: UUIDv4 id, time now, correlationid
 * = its own id, no causationid. data is stolen (even on error). */
int ev_envelope_init(ev_envelope *out, const char *type, const char *source,
                     const char *subject, json_t *data, ev_error *err);

/* An event derived from cause: id = UUIDv5(cause->id, type, index),
 * correlationid = cause's (or cause's id when it has none), causationid =
 * cause->id, time now. data is stolen (even on error). */
int ev_envelope_derive(ev_envelope *out, const ev_envelope *cause, const char *type,
                       const char *source, const char *subject, unsigned index,
                       json_t *data, ev_error *err);

/* Serializes to compact JSON; *out is owned by caller (free()), *len its size
 * without the NUL. Fails with EV_ETOOBIG over lim->max_record (lim may be NULL). */
int ev_envelope_serialize(const ev_envelope *e, const ev_limits *lim, char **out,
                          size_t *len, ev_error *err);

/* The non-empty string field of e's data object, borrowed from e->data;
 * EV_ESCHEMA naming the type and field when it is missing, empty or not a
 * string. */
int ev_envelope_data_str(const ev_envelope *e, const char *field, const char **out,
                         ev_error *err);

/* Releases data and zeroes the struct; safe on a zeroed envelope. */
void ev_envelope_clear(ev_envelope *e);

/* Random UUIDv4, lowercase. */
void ev_uuid4(char out[EV_UUID_LEN]);
/* Name-based UUIDv5 (SHA-1) in choreo's fixed namespace, lowercase. */
void ev_uuid5(char out[EV_UUID_LEN], const char *name);

/* A business id derived from key, the same on every retry: "<prefix><key>", or
 * "<prefix><UUIDv5(key)>" when that would not fit in EV_ID_MAX - 1 characters.
 * out must hold EV_ID_MAX bytes. */
void ev_derived_id(char out[EV_ID_MAX], const char *prefix, const char *key);

/* RFC 3339 UTC with milliseconds, e.g. 2026-11-24T10:00:00.123Z. */
void ev_time_format(char out[EV_TIME_MAX], int64_t unix_ms);
/* Parses such a time (any RFC 3339 offset); -1 when invalid. */
int64_t ev_time_parse(const char *s);
/* Wall clock and monotonic clock in milliseconds. */
int64_t ev_now_ms(void);
int64_t ev_mono_ms(void);

#endif
