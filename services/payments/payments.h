/* SPDX-License-Identifier: MIT */
/* The payments service's definition: its handler table, emitted types, tables,
 * timers and dump, run by events/runtime.c. */
#ifndef CHOREO_PAYMENTS_H
#define CHOREO_PAYMENTS_H

#include "runtime.h"

extern const ev_service_def payments_def;

#endif
