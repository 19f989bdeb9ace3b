/* SPDX-License-Identifier: MIT */
/* The CloudEvents Kafka protocol binding: a record is in structured mode (the
 * envelope is the value) or in binary mode (attributes in ce_* headers, the
 * data as the value), recognized per record and checked the same way. */
#ifndef EV_BINDING_H
#define EV_BINDING_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>

#include "bus.h"
#include "envelope.h"
#include "error.h"

typedef enum { EV_MODE_STRUCTURED, EV_MODE_BINARY } ev_binding_mode;

/* Binary when the record has a ce_specversion header and its content-type is
 * not application/cloudevents*; structured otherwise (also with no headers:
 * our own records before the content-type header, and raw producers). hdrs
 * may be NULL. */
ev_binding_mode ev_binding_mode_of(const rd_kafka_headers_t *hdrs);

/* Parses a record in either mode into out, with ev_envelope_parse's checks,
 * limits and error codes. Binary mode: each ce_<name> header is the attribute
 * <name> (names must be CloudEvents attribute names: a-z and 0-9, at most 20;
 * else EV_EATTR; a repeated header is EV_EDUPKEY), content-type is
 * datacontenttype and must be JSON (application/json or a +json type, or
 * absent; else EV_EATTR), the value is the data (an empty value is no data).
 * The size limit counts the headers with the value. head: as
 * ev_envelope_parse_head (data checked, not built). */
int ev_binding_parse(ev_envelope *out, const void *value, size_t len,
                     const rd_kafka_headers_t *hdrs, const ev_limits *lim, bool head,
                     ev_error *err);

/* The headers of a consumed record (borrowed from m), NULL when none. */
const rd_kafka_headers_t *ev_binding_headers_of(const rd_kafka_message_t *m);
/* ev_binding_parse of a consumed record's value and headers (not head). */
int ev_binding_parse_message(ev_envelope *out, const rd_kafka_message_t *m,
                             const ev_limits *lim, ev_error *err);

/* The type of a record in either mode without parsing it (see
 * ev_envelope_peek_type); false when it cannot say. */
bool ev_binding_peek_type(const void *value, size_t len, const rd_kafka_headers_t *hdrs,
                          char type[EV_TYPE_MAX]);

/* Binary-mode headers for e, to send with its data serialized as the value:
 * ce_specversion, ce_id, ce_source, ce_type, then the optional attributes that
 * are set, and content-type: application/json. Values are borrowed from e
 * (and static strings). Returns how many were written to out (cap >= 10). */
size_t ev_binding_headers(const ev_envelope *e, ev_header *out, size_t cap);

#endif
