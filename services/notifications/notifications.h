/* SPDX-License-Identifier: MIT */
/* The notifications service's definition: its handler table, emitted types, tables,
 * timers and dump, run by events/runtime.c. */
#ifndef CHOREO_NOTIFICATIONS_H
#define CHOREO_NOTIFICATIONS_H

#include "runtime.h"

extern const ev_service_def notifications_def;

#endif
